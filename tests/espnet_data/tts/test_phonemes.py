"""espnet_data.tts.phonemes: espeak-ng phone tokens, deterministic and thread-safe."""

from __future__ import annotations

import pickle
import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from espnet_data.synth.text import generate_sentence
from espnet_data.tts.phonemes import WORD_BOUNDARY, Phonemizer, _word_phones


@pytest.fixture(scope="module")
def g2p() -> Phonemizer:
    return Phonemizer()


def test_ipa_phones_word_boundaries_and_pause_marks(g2p) -> None:
    assert g2p("hello, world.") == ["h", "ə", "l", "ˈoʊ", ",", "w", "ˈɜː", "l", "d", "."]
    assert g2p.phonemize("My name is John") == "m aɪ | n ˈeɪ m | ɪ z | dʒ ˈɑː n"
    tokens = g2p("Is it? Yes! Well; no: maybe")
    assert [t for t in tokens if t in ",.?!;:"] == ["?", "!", ";", ":"]
    assert tokens[-1] != WORD_BOUNDARY and WORD_BOUNDARY in tokens


def test_spelled_letters_and_numbers_read_as_words(g2p) -> None:
    # a capital letter before a pause mark is the letter's name: how the mini corpus
    # writes spelled words
    assert g2p("C, H, A.") == ["s", "ˈiː", ",", "ˈeɪ", "tʃ", ",", "ˈeɪ", "."]
    assert [t.lstrip("ˈˌ") for t in g2p("3.5")] == [
        t.lstrip("ˈˌ") for t in g2p("three point five")
    ]  # espeak stresses "point" inside a number less
    assert g2p("1,000") == g2p("one thousand")


def test_stress_and_length_marks_stay_on_their_phone(g2p) -> None:
    tokens = g2p("the Exhibition of seventeen sixty represented nothing")
    assert not any(t in ("ˈ", "ˌ", "ː") for t in tokens)
    assert "ˈɪ" in tokens and any(t.endswith("ː") for t in tokens)
    # lone marks from espeak attach: stress to the next phone, length to the previous
    assert _word_phones("ˈ_a_ː_ˌ_b") == ["ˈaː", "ˌb"]
    assert _word_phones("n__ˈeɪ_m_") == ["n", "ˈeɪ", "m"]


def test_the_same_text_gives_the_same_tokens_in_any_order(g2p) -> None:
    texts = [generate_sentence(random.Random(i))[1] for i in range(40)]
    first = [g2p(t) for t in texts]
    assert [g2p(t) for t in reversed(texts)] == first[::-1]
    assert pickle.loads(pickle.dumps(g2p))(texts[0]) == first[0]


def test_threads_get_the_tokens_one_thread_gets(g2p) -> None:
    texts = [generate_sentence(random.Random(100 + i))[1] for i in range(60)]
    expected = [g2p(t) for t in texts]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(g2p, texts * 3)) == expected * 3


def test_languages_are_kept_apart() -> None:
    us, gb = Phonemizer("en-us"), Phonemizer("en")  # espeak-ng's "en" is British
    american = us("water")
    assert gb("water") != american  # non-rhotic
    assert us("water") == american  # the voice is set again for each call


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "empty text"), ("?!", "no letter or digit"), ("50% off", r"'%' \(U\+0025\) at position 2")],
)
def test_text_it_cannot_phonemise_is_refused(g2p, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        g2p(text)


def test_an_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="no language 'xx-nowhere'"):
        Phonemizer("xx-nowhere")
