"""Tests for espnet_data.synth (espeak-ng corpus generator); the whole file runs in seconds."""

from __future__ import annotations

import json
import random
import re
import time

import numpy as np
import pytest
import soundfile as sf
from espnet_data.synth import (
    SynthUtterance,
    UnknownVoiceError,
    available_voices,
    generate_sentence,
    make_tiny_corpus,
    plan_corpus,
    render,
    split_voices,
    vocabulary,
    voice_group,
)
from espnet_data.synth.text import number_words, ordinal_words


@pytest.fixture(scope="module")
def plan() -> list[SynthUtterance]:
    return plan_corpus("train", 24, seed=3, voices=available_voices())


def _longest_zero_run(x: np.ndarray) -> int:
    zero = np.concatenate([[0], (x == 0).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(zero))
    return int((edges[1::2] - edges[::2]).max()) if edges.size else 0


def test_voices_exclude_whisper_and_group_variants() -> None:
    voices = available_voices()
    assert "whisper" not in voices and "whisperf" not in voices
    assert "whisper" in available_voices(include_excluded=True)
    assert {"m1", "f5", "iven3", "klatt6", "Mr serious"} <= set(voices)
    assert voice_group("iven3") == voice_group("iven") == "iven"
    assert voice_group("klatt4") == "klatt" and voice_group("robosoft8") == "robosoft"
    assert voice_group("anikaRobot") == "anika" and voice_group("mike2") == voice_group("Mike")
    assert voice_group("m1") != voice_group("m2") and voice_group("f1") == "f1"


def test_split_is_by_group_and_deterministic() -> None:
    split = split_voices(seed=0, test_groups=8, dev_groups=4)
    assert split == split_voices(seed=0, test_groups=8, dev_groups=4)
    groups = {name: {voice_group(v) for v in vs} for name, vs in split.items()}
    assert len(groups["test"]) == 8 and len(groups["dev"]) == 4
    assert not groups["train"] & groups["test"]
    assert not groups["train"] & groups["dev"]
    assert not groups["dev"] & groups["test"]
    assert sorted(sum(split.values(), [])) == available_voices()
    assert split != split_voices(seed=1, test_groups=8, dev_groups=4)
    with pytest.raises(ValueError, match="no training voices"):
        split_voices(seed=0, test_groups=500, dev_groups=0)


def test_unknown_voice_error_names_the_voice() -> None:
    with pytest.raises(UnknownVoiceError, match=r"'nosuchvoice'.*available_voices"):
        plan_corpus("train", 2, seed=0, voices=["nosuchvoice"])


def test_plan_is_cheap_deterministic_and_unique(plan: list[SynthUtterance]) -> None:
    start = time.perf_counter()
    big = plan_corpus("train", 2000, seed=3, voices=available_voices())
    assert time.perf_counter() - start < 2.0
    assert big[:24] == plan  # utterance i does not depend on how many are planned
    assert plan == plan_corpus("train", 24, seed=3, voices=available_voices())
    assert plan != plan_corpus("train", 24, seed=4, voices=available_voices())
    keys = [u.key for u in big]
    assert len(set(keys)) == len(keys)
    assert all(re.fullmatch(r"mini-train-[A-Za-z0-9_]+-\d{6}", k) for k in keys)
    assert len({u.voice_group for u in plan}) == 24  # round-robin over groups
    for u in big:
        assert 140 <= u.rate <= 200 and 30 <= u.pitch <= 70 and u.speed in (0.9, 1.0, 1.1)
        assert u.snr_db is None or 15 <= u.snr_db <= 30
        assert u.voice_group == voice_group(u.speaker)
    noisy = sum(u.snr_db is not None for u in big) / len(big)
    assert 0.4 < noisy < 0.6
    assert SynthUtterance.from_dict(json.loads(json.dumps(big[5].to_dict()))) == big[5]


def test_text_vocabulary_and_format() -> None:
    vocab = vocabulary()
    assert 200 <= len(vocab) <= 400
    rng = random.Random(0)
    seen: set[str] = set()
    for _ in range(3000):
        text, spoken = generate_sentence(rng)
        assert re.fullmatch(r"[A-Z]+( [A-Z]+)*", text), text
        assert not re.search(r"\d", spoken), spoken
        seen.update(text.split())
    assert seen <= vocab
    assert len(seen) > 0.9 * len(vocab)
    assert number_words(147) == ["ONE", "HUNDRED", "FORTY", "SEVEN"]
    assert number_words(2005) == ["TWO", "THOUSAND", "FIVE"]
    assert ordinal_words(21) == ["TWENTY", "FIRST"] and ordinal_words(30) == ["THIRTIETH"]


def test_render_is_deterministic_and_independent_of_history(
    plan: list[SynthUtterance],
) -> None:
    first = render(plan[0])
    for utt in plan[1:4]:  # other renders in between must not change utterance 0
        render(utt)
    again = render(plan[0])
    assert first.tobytes() == again.tobytes()


def test_render_audio_properties_and_speed(plan: list[SynthUtterance]) -> None:
    start = time.perf_counter()
    audios = [render(u) for u in plan[:20]]
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"rendering 20 utterances took {elapsed:.1f} s"
    durations = [a.size / 16000 for a in audios]
    assert 1.2 < float(np.mean(durations)) < 4.0
    for utt, audio in zip(plan, audios, strict=False):
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert np.abs(audio).max() <= 1.0
        assert np.abs(audio).max() > 0.05, utt.key  # not silent
        assert 0.3 < audio.size / 16000 < 7.0, utt.key
        assert _longest_zero_run(audio) <= 4, utt.key  # noise floor everywhere
        quiet = np.sort(np.abs(audio))[: audio.size // 20]
        assert quiet.max() < 0.05, utt.key  # leading/trailing silence kept, noise is low


def test_other_sample_rate(plan: list[SynthUtterance]) -> None:
    audio8 = render(plan[1], sample_rate=8000)
    audio16 = render(plan[1])
    assert abs(audio8.size * 2 - audio16.size) <= 2


def test_make_tiny_corpus(tmp_path) -> None:
    paths = make_tiny_corpus(tmp_path, num_utterances=4, seed=0)
    assert len(paths) == 4 and paths == sorted(paths)
    lines = (tmp_path / "transcripts.txt").read_text().splitlines()
    rows = [json.loads(x) for x in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert [line.split()[0] for line in lines] == [p.stem for p in paths]
    assert [r["key"] for r in rows] == [p.stem for p in paths]
    for path, row in zip(paths, rows, strict=True):
        audio, rate = sf.read(str(path), dtype="int16")
        assert rate == 16000 and audio.size == row["num_samples"]
        assert _longest_zero_run(audio) <= 4
    assert not list(tmp_path.glob(".*tmp"))
    first = paths[0].read_bytes()
    paths[0].unlink()
    assert make_tiny_corpus(tmp_path, num_utterances=4, seed=0) == paths  # resumes
    assert paths[0].read_bytes() == first


@pytest.mark.parametrize("voice", ["Reed", "caleb"])
def test_synthesis_does_not_depend_on_libc_rand(voice) -> None:
    """These voices draw from libc's rand(): its per-process state (what this process, or
    the parent a pool worker was forked from, did before) must not reach the audio."""
    import ctypes

    from espnet_data.synth._espeak import synthesize

    first, _ = synthesize(voice, "my name is john smith", rate=170, pitch=50, seed=7)
    libc = ctypes.CDLL(None)
    libc.srand(12345)
    for _ in range(1000):
        libc.rand()
    again, _ = synthesize(voice, "my name is john smith", rate=170, pitch=50, seed=7)
    assert np.array_equal(first, again)
