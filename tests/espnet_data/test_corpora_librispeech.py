"""espnet_data.corpora.librispeech on a small tree in LibriSpeech's layout.

The tree is spoken by espnet_data's synthesiser: ``<part>/<speaker>/<chapter>/`` with
``<speaker>-<chapter>-<utt>.flac`` and ``<speaker>-<chapter>.trans.txt``.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import pickle
import shutil
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from espnet_data import Corpus, read_index, shard_paths, write_split
from espnet_data.audio import read_audio
from espnet_data.corpora import LibriSpeechCorpus
from espnet_data.corpora import librispeech as ls
from espnet_data.download import ChecksumError
from espnet_data.synth import available_voices, render
from espnet_data.synth.plan import plan_utterance

#: part -> speaker -> chapter -> number of utterances
LAYOUT: dict[str, dict[str, dict[str, int]]] = {
    "train-clean-100": {"19": {"198": 2, "227": 2}, "26": {"495": 2, "496": 2}},
    "train-clean-360": {"100": {"121669": 1}},
    "train-other-500": {"20": {"205": 1}},
    "dev-clean": {"84": {"121123": 2}},
    "dev-other": {"116": {"288045": 1}},
    "test-clean": {"1089": {"134686": 1}},
    "test-other": {"1688": {"142285": 1}},
}


def write_tree(root: Path, layout: dict[str, dict[str, dict[str, int]]]) -> dict[str, str]:
    """Speak ``layout`` into ``root/LibriSpeech``; return key -> transcript."""
    voices = available_voices()
    texts: dict[str, str] = {}
    index = 0
    for part, speakers in layout.items():
        for s, (speaker, chapters) in enumerate(speakers.items()):
            for chapter, count in chapters.items():
                folder = root / "LibriSpeech" / part / speaker / chapter
                folder.mkdir(parents=True)
                lines = []
                for u in range(count):
                    key = f"{speaker}-{chapter}-{u:04d}"
                    utt = plan_utterance("libri", index, 0, voices[(index + s) % len(voices)])
                    index += 1
                    sf.write(folder / f"{key}.flac", render(utt), 16000, subtype="PCM_16")
                    texts[key] = utt.text
                    lines.append(f"{key} {utt.text}\n")
                (folder / f"{speaker}-{chapter}.trans.txt").write_text("".join(lines))
    return texts


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A read-only tree (copy it to damage it): the corpus root and key -> text."""
    root = tmp_path_factory.mktemp("librispeech")
    return root, write_tree(root, LAYOUT)


@pytest.fixture(autouse=True)
def no_root_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ls.ROOT_ENV, raising=False)


def test_is_a_picklable_corpus_with_the_standard_splits(tree) -> None:
    root, _ = tree
    corpus = LibriSpeechCorpus(root=str(root))
    assert isinstance(corpus, Corpus)
    assert corpus.splits() == ["train", "dev", "dev-clean", "dev-other", "test-clean", "test-other"]
    assert pickle.loads(pickle.dumps(corpus)).entries("dev") == corpus.entries("dev")
    assert corpus.parts("train") == ("train-clean-100",)
    assert corpus.parts("dev") == ("dev-clean", "dev-other")
    with pytest.raises(ValueError, match=r"'valid'.*choose from"):
        corpus.entries("valid")


def test_entries_follow_the_layout(tree) -> None:
    root, texts = tree
    entries = LibriSpeechCorpus(root=str(root)).entries("train")
    assert [e.key for e in entries] == [
        "19-198-0000", "19-198-0001", "19-227-0000", "19-227-0001",
        "26-495-0000", "26-495-0001", "26-496-0000", "26-496-0001",
    ]
    assert {e.speaker for e in entries} == {"19", "26"}
    first = entries[0]
    assert first.text == texts["19-198-0000"]
    assert first.extra == {"chapter": "198", "part": "train-clean-100"}
    assert Path(first.source) == root / "LibriSpeech/train-clean-100/19/198/19-198-0000.flac"
    audio, rate = LibriSpeechCorpus(root=str(root)).load_audio(first)
    assert rate == 16000 and audio.dtype == np.float32 and audio.size > 0


def test_960_hours_by_config(tree) -> None:
    root, _ = tree
    corpus = LibriSpeechCorpus(root=str(root), train_set="train-960")
    parts = [e.extra["part"] for e in corpus.entries("train")]
    assert parts == ["train-clean-100"] * 8 + ["train-clean-360", "train-other-500"]
    assert len(LibriSpeechCorpus(root=str(root), train_set="train-clean-460").entries("train")) == 9
    with pytest.raises(ValueError, match="train_set='train-1000'"):
        LibriSpeechCorpus(train_set="train-1000")  # type: ignore[arg-type]


def test_root_from_environment_or_the_librispeech_folder(tree, monkeypatch) -> None:
    root, _ = tree
    monkeypatch.setenv(ls.ROOT_ENV, str(root))
    assert len(LibriSpeechCorpus().entries("test-clean")) == 1
    monkeypatch.delenv(ls.ROOT_ENV)
    assert len(LibriSpeechCorpus(root=str(root / "LibriSpeech")).entries("test-other")) == 1


def test_missing_part_without_download_says_where_and_how(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"\['dev-clean', 'dev-other'\].*LIBRISPEECH_ROOT.*download: true"):
        LibriSpeechCorpus(root=str(tmp_path)).entries("dev")


def test_shards_keep_every_utterance_and_its_audio(tree, tmp_path) -> None:
    root, texts = tree
    corpus = LibriSpeechCorpus(root=str(root))
    summary = write_split(corpus, "train", tmp_path / "train", utterances_per_shard=3)
    assert summary["num_utterances"] == 8 and summary["num_rejected"] == 0
    assert summary["num_shards"] == 3
    rows = read_index(tmp_path / "train")
    assert {r["key"]: r["text"] for r in rows} == {k: v for k, v in texts.items() if k.startswith(("19-", "26-"))}
    assert {r["speaker"] for r in rows} == {"19", "26"}
    assert all(r["part"] == "train-clean-100" and r["duration"] > 0.3 for r in rows)
    with tarfile.open(shard_paths(tmp_path / "train")[0]) as tar:
        flac = tar.extractfile("19-198-0000.flac").read()
        meta = json.loads(tar.extractfile("19-198-0000.json").read())
    source = root / "LibriSpeech/train-clean-100/19/198/19-198-0000.flac"
    assert flac == source.read_bytes()  # 16 kHz FLAC is stored as it is, not re-encoded
    stored, rate = read_audio(flac)
    assert rate == 16000 and np.array_equal(stored, read_audio(source)[0])
    assert meta["chapter"] == "198" and meta["speaker"] == "19"


def test_bad_utterances_are_rejected_with_key_and_reason(tree, tmp_path) -> None:
    src, _ = tree
    root = tmp_path / "copy"
    shutil.copytree(src / "LibriSpeech" / "train-clean-100", root / "LibriSpeech" / "train-clean-100")
    part = root / "LibriSpeech" / "train-clean-100"
    (part / "19/198/19-198-0001.flac").unlink()  # transcript line without audio
    trans = part / "19/227/19-227.trans.txt"  # audio without transcript line
    trans.write_text(trans.read_text().splitlines()[0] + "\n")
    (part / "26/495/26-495.trans.txt").unlink()  # a chapter without its transcript file
    bad_line = part / "26/496/26-496.trans.txt"
    first = bad_line.read_bytes().splitlines()[0]
    # a repeated line, then a line in latin-1 (not UTF-8)
    bad_line.write_bytes(first + b"\n" + first + b"\n26-496-0001 CAF\xe9 NOIR\n")
    (part / "26/496/notes.txt").write_text("not a transcript")

    summary = write_split(LibriSpeechCorpus(root=str(root)), "train", tmp_path / "train")
    codes = {r["key"]: r.get("code") for r in summary["rejected"]}
    reasons = {r["key"]: r["reason"] for r in summary["rejected"]}
    assert codes == {
        "19-198-0001": "unreadable_audio",
        "19-227-0001": "missing_transcript",
        "26-495-0000": "missing_transcript",
        "26-495-0001": "missing_transcript",
        "26-496-0000": "duplicate_key",
        "26-496-0001": "bad_text_encoding",
    }
    assert "missing audio file" in reasons["19-198-0001"]
    assert "UTF-8" in reasons["26-496-0001"]
    assert summary["num_rejected"] == 6 and summary["num_utterances"] == 3
    assert {r["key"] for r in read_index(tmp_path / "train")} == {"19-198-0000", "19-227-0000", "26-496-0000"}


@pytest.fixture
def http_dir(tmp_path) -> Iterator[tuple[Path, str]]:
    """A folder served on 127.0.0.1 (the stand-in for OpenSLR) and its base URL."""
    folder = tmp_path / "served"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{httpd.server_address[1]}/resources/12"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _archive(src: Path, part: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(src / "LibriSpeech" / part, arcname=f"LibriSpeech/{part}")
    return buffer.getvalue()


def test_download_fetches_missing_parts_once(tree, tmp_path, http_dir, monkeypatch) -> None:
    src, texts = tree
    served, url = http_dir
    (served / "resources" / "12").mkdir(parents=True)
    for part in ("dev-clean", "dev-other"):
        data = _archive(src, part)
        (served / "resources" / "12" / f"{part}.tar.gz").write_bytes(data)
        monkeypatch.setitem(ls.ARCHIVE_MD5, part, hashlib.md5(data).hexdigest())
    root = tmp_path / "root"
    dead = "http://127.0.0.1:9/resources/12"
    corpus = LibriSpeechCorpus(root=str(root), download=True, base_url=dead, mirrors=[url], retries=0)
    entries = corpus.entries("dev")
    assert [e.key for e in entries] == ["84-121123-0000", "84-121123-0001", "116-288045-0000"]
    assert entries[0].text == texts["84-121123-0000"]
    assert (root / "LibriSpeech" / "dev-other" / "116").is_dir()
    assert not list((root / "archives").iterdir())  # archives removed after extraction
    # present now: nothing is fetched again, even with the server gone
    shutil.rmtree(served / "resources")
    assert corpus.entries("dev-clean") == entries[:2]


def test_download_with_a_wrong_checksum_fails_clearly(tree, tmp_path, http_dir) -> None:
    src, _ = tree
    served, url = http_dir
    (served / "resources" / "12").mkdir(parents=True)
    (served / "resources" / "12" / "test-clean.tar.gz").write_bytes(_archive(src, "test-clean"))
    corpus = LibriSpeechCorpus(root=str(tmp_path / "root"), download=True, base_url=url)
    # the tarball made here is not OpenSLR's: its md5 cannot match the published one
    with pytest.raises(ChecksumError, match=f"expected {ls.ARCHIVE_MD5['test-clean']}"):
        corpus.entries("test-clean")
    assert not (tmp_path / "root" / "LibriSpeech").exists()


def test_archive_md5_table_covers_every_part() -> None:
    parts = {p for ps in ls.TRAIN_SETS.values() for p in ps} | set(ls.EVAL_PARTS)
    assert set(ls.ARCHIVE_MD5) == parts and len(parts) == 7
    assert all(len(v) == 32 and int(v, 16) >= 0 for v in ls.ARCHIVE_MD5.values())
