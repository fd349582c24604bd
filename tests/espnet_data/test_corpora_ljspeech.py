"""espnet_data.corpora.ljspeech on a small tree in LJSpeech-1.1's layout.

The tree is spoken by espnet_data's synthesiser: ``LJSpeech-1.1/metadata.csv``
(``id|text|normalized text``) and ``LJSpeech-1.1/wavs/<id>.wav`` (16-bit, 22,050 Hz).
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import pickle
import shutil
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from espnet_data import Corpus, ShardOptions, read_index, write_split
from espnet_data.corpora import LJSpeechCorpus
from espnet_data.corpora import ljspeech as lj
from espnet_data.download import ChecksumError
from espnet_data.synth.plan import plan_single_voice
from espnet_data.synth.render import render
from espnet_data.tts import Phonemizer, read_tts_samples

#: id -> (text, normalized text), as LJSpeech writes them
CLIPS = {
    "LJ001-0001": ("Printing, in the only sense with which we are at present concerned,",
                   "Printing, in the only sense with which we are at present concerned,"),
    "LJ001-0002": ("in being comparatively modern.", "in being comparatively modern."),
    "LJ002-0010": ("In 1760 Mr. Howard visited", "In seventeen sixty Mr. Howard visited"),
    "LJ002-0011": ("the “Marshalsea” debtors' café;", "the “Marshalsea” debtors' café;"),
    "LJ003-0001": ("and £5 were paid", "and five pounds were paid"),
    "LJ050-0001": ("the Commission's report", "the Commission's report"),
    "LJ050-0002": ("of the Secret Service", "of the Secret Service"),
    "LJ050-0003": ("ended here.", "ended here."),
}  # fmt: skip


def write_tree(root: Path, clips: dict[str, tuple[str, str]]) -> Path:
    folder = root / "LJSpeech-1.1"
    (folder / "wavs").mkdir(parents=True)
    plan = plan_single_voice("lj", len(clips), seed=0, voice="f2", rate=220)
    lines = []
    for (key, (text, normalized)), utt in zip(clips.items(), plan, strict=True):
        audio = render(utt, lj.SAMPLE_RATE)[: lj.SAMPLE_RATE]  # at most 1 s: fast
        sf.write(folder / "wavs" / f"{key}.wav", audio, lj.SAMPLE_RATE, subtype="PCM_16")
        lines.append(f"{key}|{text}|{normalized}\n")
    (folder / "metadata.csv").write_text("".join(reversed(lines)), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only corpus root (copy it to damage it)."""
    root = tmp_path_factory.mktemp("ljspeech")
    write_tree(root, CLIPS)
    return root


@pytest.fixture(autouse=True)
def no_root_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(lj.ROOT_ENV, raising=False)


def test_is_a_picklable_corpus_with_espnet2s_split(tree) -> None:
    corpus = LJSpeechCorpus(root=str(tree), dev_size=2, test_size=3)
    assert isinstance(corpus, Corpus)
    assert corpus.splits() == ["train", "dev", "test"]
    assert pickle.loads(pickle.dumps(corpus)).entries("dev") == corpus.entries("dev")
    keys = {split: [e.key for e in corpus.entries(split)] for split in corpus.splits()}
    # sorted by id; the last dev_size + test_size held out, dev first
    assert keys == {
        "train": ["LJ001-0001", "LJ001-0002", "LJ002-0010"],
        "dev": ["LJ002-0011", "LJ003-0001"],
        "test": ["LJ050-0001", "LJ050-0002", "LJ050-0003"],
    }
    with pytest.raises(ValueError, match=r"'eval1'.*choose from"):
        corpus.entries("eval1")


def test_entries_use_the_normalized_column_and_one_speaker(tree) -> None:
    corpus = LJSpeechCorpus(root=str(tree / "LJSpeech-1.1"), dev_size=1, test_size=1)
    entries = {e.key: e for e in corpus.entries("train")}
    assert entries["LJ002-0010"].text == "In seventeen sixty Mr. Howard visited"
    assert entries["LJ003-0001"].text == "and five pounds were paid"
    assert {e.speaker for e in entries.values()} == {"LJ"}
    assert Path(entries["LJ001-0001"].source) == tree / "LJSpeech-1.1/wavs/LJ001-0001.wav"
    audio, rate = corpus.load_audio(entries["LJ001-0001"])
    assert rate == 22050 and audio.dtype == np.float32 and 0 < audio.size <= 22050


def test_every_normalized_text_is_phonemised(tree) -> None:
    g2p = Phonemizer()
    for entry in LJSpeechCorpus(root=str(tree), dev_size=1, test_size=1).entries("train"):
        assert "|" in g2p(entry.text), entry.key


def test_shards_keep_the_wav_files_and_read_back_as_tts_samples(tree, tmp_path) -> None:
    corpus = LJSpeechCorpus(root=str(tree), dev_size=2, test_size=3)
    options = ShardOptions(sample_rate=22050, min_duration=0.1, max_duration=12.0)
    summary = write_split(corpus, "test", tmp_path / "test", options=options, utterances_per_shard=2)
    assert summary["num_utterances"] == 3 and summary["stored_original"] == 3
    samples = list(read_tts_samples(tmp_path / "test"))
    assert [s.key for s in samples] == ["LJ050-0001", "LJ050-0002", "LJ050-0003"]
    first = samples[0]
    assert first.text == first.transcript == "the Commission's report"
    assert first.speaker == "LJ" and first.sample_rate == 22050
    expected, _ = sf.read(tree / "LJSpeech-1.1/wavs/LJ050-0001.wav", dtype="float32")
    np.testing.assert_array_equal(first.audio, expected)


def test_bad_clips_are_rejected_with_key_and_reason(tree, tmp_path) -> None:
    root = tmp_path / "root"
    shutil.copytree(tree, root)
    folder = root / "LJSpeech-1.1"
    metadata = (folder / "metadata.csv").read_bytes()
    metadata += b"LJ009-0001|no audio for this line|no audio for this line\n"
    metadata += b"LJ009-0002|caf\xe9 in latin-1|caf\xe9 in latin-1\n"
    metadata += b"LJ009-0003\n"  # no text column
    metadata += b"LJ009-0004|only the raw text\n"  # two columns: the text column is used
    (folder / "metadata.csv").write_bytes(metadata)
    for key in ("LJ009-0002", "LJ009-0003", "LJ009-0004", "LJ009-0005"):  # 0005: no line
        shutil.copy(folder / "wavs/LJ001-0001.wav", folder / "wavs" / f"{key}.wav")
    corpus = LJSpeechCorpus(root=str(root), dev_size=0, test_size=1)
    entries = {e.key: e for e in corpus.entries("train")}
    assert entries["LJ009-0004"].text == "only the raw text"
    assert entries["LJ009-0005"].text is None
    options = ShardOptions(sample_rate=22050, min_duration=0.1)
    summary = write_split(corpus, "train", tmp_path / "train", options=options)
    reasons = {r["key"]: r["code"] for r in summary["rejected"]}
    assert reasons == {
        "LJ009-0001": "unreadable_audio",
        "LJ009-0002": "bad_text_encoding",
        "LJ009-0003": "missing_transcript",
        "LJ009-0005": "missing_transcript",
    }
    assert "missing audio file" in next(
        r["reason"] for r in summary["rejected"] if r["key"] == "LJ009-0001"
    )
    assert "LJ009-0004" in {r["key"] for r in read_index(tmp_path / "train")}


def test_a_missing_corpus_says_where_it_was_looked_for(tmp_path, monkeypatch) -> None:
    with pytest.raises(FileNotFoundError, match=r"LJSpeech-1\.1/metadata\.csv.*download: true"):
        LJSpeechCorpus(root=str(tmp_path)).entries("train")
    monkeypatch.setenv(lj.ROOT_ENV, str(tmp_path / "env"))
    with pytest.raises(FileNotFoundError, match=r"\$LJSPEECH_ROOT"):
        LJSpeechCorpus().entries("dev")
    with pytest.raises(ValueError, match="dev_size=-1"):
        LJSpeechCorpus(dev_size=-1)


def test_too_many_held_out_clips_is_refused(tree) -> None:
    with pytest.raises(ValueError, match="leaves no training clip.*lists 8"):
        LJSpeechCorpus(root=str(tree), dev_size=4, test_size=4).entries("train")


@pytest.fixture
def http_dir(tmp_path) -> Iterator[tuple[Path, str]]:
    """A folder served on 127.0.0.1 (the stand-in for data.keithito.com) and its URL."""
    folder = tmp_path / "served"
    (folder / "data" / "speech").mkdir(parents=True)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield folder / "data" / "speech", f"http://127.0.0.1:{httpd.server_address[1]}/data/speech"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _archive(root: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:bz2") as tar:
        tar.add(root / "LJSpeech-1.1", arcname="LJSpeech-1.1")
    return buffer.getvalue()


def test_download_resumes_checks_and_extracts_once(tree, tmp_path, http_dir, monkeypatch) -> None:
    served, url = http_dir
    data = _archive(tree)
    (served / lj.ARCHIVE).write_bytes(data)
    monkeypatch.setattr(lj, "ARCHIVE_SHA256", hashlib.sha256(data).hexdigest())
    root = tmp_path / "root"
    (root / "archives").mkdir(parents=True)
    # half a file left by an interrupted run does not spoil the download (this server
    # ignores Range, so it is fetched afresh; resuming is tested in test_download.py)
    (root / "archives" / f"{lj.ARCHIVE}.part").write_bytes(data[: len(data) // 2])
    dead = "http://127.0.0.1:9/data/speech"
    corpus = LJSpeechCorpus(root=str(root), download=True, base_url=dead, mirrors=[url], retries=0,
                            dev_size=1, test_size=1)
    assert [e.key for e in corpus.entries("test")] == ["LJ050-0003"]
    assert (root / "LJSpeech-1.1" / "wavs" / "LJ001-0001.wav").is_file()
    assert not list((root / "archives").iterdir())  # the archive is removed once extracted
    (served / lj.ARCHIVE).unlink()  # present now: nothing is fetched again
    assert len(corpus.entries("train")) == 6


def test_download_with_a_wrong_checksum_fails_clearly(tree, tmp_path, http_dir) -> None:
    served, url = http_dir
    (served / lj.ARCHIVE).write_bytes(_archive(tree))
    corpus = LJSpeechCorpus(root=str(tmp_path / "root"), download=True, base_url=url, retries=0)
    # the archive made here is not the published one: its sha256 cannot match
    with pytest.raises(ChecksumError, match=f"expected {lj.ARCHIVE_SHA256}"):
        corpus.entries("train")
    assert not (tmp_path / "root" / "LJSpeech-1.1").exists()


def test_the_pinned_checksum_is_a_sha256() -> None:
    assert len(lj.ARCHIVE_SHA256) == 64 and int(lj.ARCHIVE_SHA256, 16) > 0
    assert f"{lj.LJSPEECH_URL}/{lj.ARCHIVE}" == "https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2"
