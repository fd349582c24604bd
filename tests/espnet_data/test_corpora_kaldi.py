"""Tests for espnet_data.corpora.kaldi: Kaldi/ESPnet2 data directories as a corpus."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from espnet_data import Corpus, read_index, write_split
from espnet_data.corpora import KaldiDirCorpus
from espnet_data.corpora.kaldi import Recording, Segment, parse_segment, parse_wav_scp_value
from espnet_data.testing import tone


def _write(folder: Path, name: str, lines: list[str] | bytes) -> None:
    data = lines if isinstance(lines, bytes) else "".join(f"{line}\n" for line in lines).encode()
    (folder / name).write_bytes(data)


@pytest.fixture
def audio(tmp_path: Path) -> dict[str, Path]:
    """Recordings: 2 s at 16 kHz (wav), 1.5 s at 8 kHz (flac), 2 s (wav) for pipes."""
    files = {
        "rec1": (tmp_path / "rec1.wav", tone(2.0, 16000, 300.0)),
        "rec2": (tmp_path / "rec2.flac", tone(1.5, 8000, 500.0)),
        "rec3": (tmp_path / "rec3.wav", tone(2.0, 16000, 700.0)),
    }
    for path, samples in files.values():
        sf.write(path, samples, 8000 if path.suffix == ".flac" else 16000, subtype="PCM_16")
    return {name: path for name, (path, _) in files.items()}


def _reference(path: Path, start: float = 0.0, end: float | None = None) -> np.ndarray:
    data, rate = sf.read(path, dtype="float32")
    return data[round(start * rate) : None if end is None else round(end * rate)]


@pytest.fixture
def whole_dir(tmp_path: Path, audio: dict[str, Path]) -> Path:
    """A data dir without segments: files, a pipe, a failing pipe, an ark, bad entries."""
    folder = tmp_path / "whole"
    folder.mkdir()
    ark = tmp_path / "audio.ark"
    blob = audio["rec3"].read_bytes()
    ark.write_bytes(b"other " + b"junk" * 3 + b"rec5 " + blob)
    offset = len(b"other " + b"junk" * 3 + b"rec5 ")
    _write(folder, "wav.scp", [
        f"rec1 {audio['rec1']}",
        f"rec2 {audio['rec2']}",
        f"rec3 cat {audio['rec3']} |",
        "rec4 echo broken >&2; false |",
        f"rec5 {ark}:{offset}",
        f"rec6 {tmp_path / 'gone.wav'}",
        f"rec7 {audio['rec1']}",
    ])
    _write(folder, "text", [
        "rec1 HELLO  WORLD", "rec2 EIGHT KILO", "rec3 FROM A PIPE", "rec4 NEVER", "rec5 IN AN ARK",
        "rec6 NO FILE", "orphan NO RECORDING",
    ])  # rec7: no text
    _write(folder, "utt2spk", ["rec1 spk1", "rec2 spk1", "rec3 spk2", "rec5 spk2", "rec7 spk3"])
    return folder


@pytest.fixture
def seg_dir(tmp_path: Path, audio: dict[str, Path]) -> Path:
    """A data dir with segments over a file and a (counted) pipe, with bad segments."""
    folder = tmp_path / "seg"
    folder.mkdir()
    counter = tmp_path / "pipe_runs.txt"
    _write(folder, "wav.scp", [
        f"recA {audio['rec1']}",
        f"recP echo run >> {counter}; cat {audio['rec3']} |",
    ])
    _write(folder, "segments", [
        "a-1 recA 0.00 1.00",
        "a-2 recA 1.00 -1",
        "p-1 recP 0.50 1.50",
        "p-2 recP 1.50 2.30",  # 0.3 s past the end: within Kaldi's overshoot, clipped
        "x-backwards recA 1.0 0.5",
        "x-late recA 3.0 4.0",
        "x-long recA 0.0 9.0",
        "x-norec nosuch 0 1",
        "x-nan recA a b",
    ])
    _write(folder, "text", [
        "a-1 ONE", "a-2 TWO", "p-1 THREE", "p-2 FOUR", "x-backwards B", "x-late L", "x-long G",
        "x-norec N", "x-nan Q", "x-nosegment NO SEGMENT",
    ])
    _write(folder, "utt2spk", ["a-1 A", "a-2 A", "p-1 P", "p-2 P"])
    return folder


def test_wav_scp_values() -> None:
    assert parse_wav_scp_value("r", "/a/b.wav") == Recording("r", path="/a/b.wav")
    assert parse_wav_scp_value("r", "sox x.sph -t wav - |") == Recording(
        "r", command="sox x.sph -t wav -"
    )
    assert parse_wav_scp_value("r", "/a/raw.ark:1234") == Recording(
        "r", path="/a/raw.ark", offset=1234
    )


def test_segment_values() -> None:
    recs = {"r": Recording("r", path="x.wav")}
    assert parse_segment("r 0.5 1.25", recs) == Segment(recs["r"], 0.5, 1.25)
    assert parse_segment("r 0 -1", recs) == Segment(recs["r"], 0.0, None)
    assert "not after its start" in str(parse_segment("r 2 1", recs))
    assert "not numbers" in str(parse_segment("r x 1", recs))
    assert ">= 0" in str(parse_segment("r -1 1", recs))
    assert "needs <recording-id>" in str(parse_segment("r 1", recs))
    assert "not in wav.scp" in str(parse_segment("q 0 1", recs))


def test_entries_of_a_directory_without_segments(whole_dir: Path) -> None:
    corpus = KaldiDirCorpus(dirs={"train": str(whole_dir)})
    assert isinstance(corpus, Corpus) and corpus.splits() == ["train"]
    entries = {e.key: e for e in corpus.entries("train")}
    assert list(entries) == sorted(entries)
    assert set(entries) == {f"rec{i}" for i in range(1, 8)} | {"orphan"}
    assert entries["rec1"].text == "HELLO  WORLD" and entries["rec1"].speaker == "spk1"
    assert entries["rec7"].text is None and entries["rec4"].speaker == ""


def test_files_pipes_and_arks_decode(whole_dir: Path, audio: dict[str, Path]) -> None:
    corpus = KaldiDirCorpus(dirs={"train": str(whole_dir)})
    entries = {e.key: e for e in corpus.entries("train")}
    for key, path in (("rec1", "rec1"), ("rec2", "rec2"), ("rec3", "rec3"), ("rec5", "rec3")):
        samples, rate = corpus.load_audio(entries[key])
        assert rate == (8000 if key == "rec2" else 16000)
        np.testing.assert_array_equal(samples, _reference(audio[path]))


def test_a_piped_wav_that_declares_no_data_size_is_read_whole(
    tmp_path: Path, audio: dict[str, Path]
) -> None:
    blob = bytearray(audio["rec3"].read_bytes())  # PCM_16 from soundfile: data at byte 36
    assert blob[36:40] == b"data"
    blob[40:44] = bytes(4)  # what a writer that cannot seek back leaves
    streamed = tmp_path / "streamed.wav"
    streamed.write_bytes(bytes(blob))
    folder = tmp_path / "pipe"
    folder.mkdir()
    _write(folder, "wav.scp", [f"r cat {streamed} |"])
    _write(folder, "text", ["r A PIPE"])
    corpus = KaldiDirCorpus(dirs={"test": str(folder)})
    samples, _ = corpus.load_audio(corpus.entries("test")[0])
    np.testing.assert_array_equal(samples, _reference(audio["rec3"]))


def test_bad_entries_are_rejected_with_key_and_reason(tmp_path: Path, whole_dir: Path) -> None:
    corpus = KaldiDirCorpus(dirs={"train": str(whole_dir)})
    summary = write_split(corpus, "train", tmp_path / "data/train", utterances_per_shard=3)
    rejected = {r["key"]: r for r in summary["rejected"]}
    assert set(rejected) == {"rec4", "rec6", "rec7", "orphan"}
    assert "exited with 1: broken" in rejected["rec4"]["reason"]
    assert "gone.wav (wav.scp of rec6) does not exist" in rejected["rec6"]["reason"]
    assert rejected["rec7"]["code"] == "missing_transcript"
    assert "orphan has no recording: it is not in wav.scp" in rejected["orphan"]["reason"]
    rows = {r["key"]: r for r in read_index(tmp_path / "data/train")}
    assert set(rows) == {"rec1", "rec2", "rec3", "rec5"}
    assert rows["rec1"]["text"] == "HELLO WORLD" and rows["rec3"]["speaker"] == "spk2"
    assert rows["rec2"]["duration"] == pytest.approx(1.5)  # resampled from 8 kHz


def test_segments_cut_their_recordings(seg_dir: Path, audio: dict[str, Path]) -> None:
    corpus = KaldiDirCorpus(dirs={"dev": str(seg_dir)})
    entries = {e.key: e for e in corpus.entries("dev")}
    expected = {
        "a-1": _reference(audio["rec1"], 0.0, 1.0),
        "a-2": _reference(audio["rec1"], 1.0),
        "p-1": _reference(audio["rec3"], 0.5, 1.5),
        "p-2": _reference(audio["rec3"], 1.5),
    }
    for key, want in expected.items():
        samples, rate = corpus.load_audio(entries[key])
        assert rate == 16000
        np.testing.assert_array_equal(samples, want)
    # the pipe ran once for both of its segments
    assert (seg_dir.parent / "pipe_runs.txt").read_text() == "run\n"
    # the cache does not travel to worker processes
    assert pickle.loads(pickle.dumps(corpus))._cache is None


def test_bad_segments_are_rejected_with_reasons(tmp_path: Path, seg_dir: Path) -> None:
    corpus = KaldiDirCorpus(dirs={"dev": str(seg_dir)})
    summary = write_split(corpus, "dev", tmp_path / "dev", utterances_per_shard=4, num_workers=2)
    reasons = {r["key"]: r["reason"] for r in summary["rejected"]}
    assert set(reasons) == {"x-backwards", "x-late", "x-long", "x-norec", "x-nan", "x-nosegment"}
    assert "end 0.5 is not after its start 1.0" in reasons["x-backwards"]
    assert "starts at 3.00 s, after the end of recording recA (2.00 s)" in reasons["x-late"]
    assert "ends at 9.00 s, past the end of recording recA" in reasons["x-long"]
    assert "recording nosuch of the segment is not in wav.scp" in reasons["x-norec"]
    assert "not numbers" in reasons["x-nan"]
    assert "x-nosegment has no recording: it is not in segments" in reasons["x-nosegment"]
    rows = read_index(tmp_path / "dev")
    assert [(r["key"], r["duration"]) for r in rows] == [
        ("a-1", 1.0), ("a-2", 1.0), ("p-1", 1.0), ("p-2", 0.5),
    ]


def test_a_line_that_is_not_utf8_or_repeats_a_key_rejects_only_its_utterance(
    tmp_path: Path, whole_dir: Path
) -> None:
    text = (whole_dir / "text").read_bytes()
    _write(whole_dir, "text", text + b"rec3 AGAIN\n" + b"rec2 CAF\xc9\n")
    utt2spk = (whole_dir / "utt2spk").read_bytes()
    _write(whole_dir, "utt2spk", utt2spk.replace(b"rec5 spk2", b"rec5 spk\xff"))
    corpus = KaldiDirCorpus(dirs={"train": str(whole_dir)})
    summary = write_split(corpus, "train", tmp_path / "train", utterances_per_shard=10)
    codes = [(r["key"], r["code"]) for r in summary["rejected"]]
    assert ("rec2", "duplicate_key") in codes and ("rec3", "duplicate_key") in codes
    reasons = {r["key"]: r["reason"] for r in summary["rejected"]}
    assert "utt2spk line 4 is not valid UTF-8" in reasons["rec5"]
    rows = {r["key"]: r["text"] for r in read_index(tmp_path / "train")}
    assert rows == {"rec1": "HELLO WORLD", "rec2": "EIGHT KILO", "rec3": "FROM A PIPE"}
    entries = KaldiDirCorpus(dirs={"train": str(whole_dir)}).entries("train")
    again = [e for e in entries if e.key == "rec2"][1]
    with pytest.raises(ValueError, match="text line 9 repeats key rec2 of line 2"):
        corpus.load_audio(again)


def test_config_errors_name_the_fix(tmp_path: Path, whole_dir: Path) -> None:
    with pytest.raises(ValueError, match="needs dirs"):
        KaldiDirCorpus(dirs={})
    (whole_dir / "text").unlink()
    corpus = KaldiDirCorpus(dirs={"train": str(whole_dir), "test": str(tmp_path / "nowhere")})
    with pytest.raises(FileNotFoundError, match=r"whole/text is missing: dirs\['train'\]"):
        corpus.entries("train")
    with pytest.raises(FileNotFoundError, match=r"nowhere/wav.scp is missing"):
        corpus.entries("test")
    with pytest.raises(ValueError, match=r"'dev'.*\['train', 'test'\]"):
        corpus.entries("dev")


# --- issue 21: multi-channel recordings are mixed down, or one channel is chosen -------


@pytest.mark.parametrize("how", ["file", "segment", "pipe"])
def test_right_only_stereo_recording_is_mixed_down_or_a_channel_chosen(
    tmp_path: Path, how: str
) -> None:
    right = tone(1.0, 16000, 440.0)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([np.zeros_like(right), right], axis=1), 16000, subtype="PCM_16")
    right = sf.read(path, dtype="float32")[0][:, 1]
    folder = tmp_path / "st"
    folder.mkdir()
    _write(folder, "wav.scp", [f"rec {path}" if how != "pipe" else f"rec cat {path} |"])
    if how == "file":
        _write(folder, "text", ["rec HELLO"])
    else:
        _write(folder, "segments", ["utt rec 0.25 0.75"])
        _write(folder, "text", ["utt HELLO"])
        right = right[4000:12000]
    mixed = KaldiDirCorpus(dirs={"train": str(folder)})
    (entry,) = mixed.entries("train")
    audio, rate = mixed.load_audio(entry)
    np.testing.assert_allclose(audio, right / 2, atol=1 / 32768)
    summary = write_split(mixed, "train", tmp_path / f"out-{how}")
    assert summary["rejected"] == [] and summary["num_utterances"] == 1
    chosen = KaldiDirCorpus(dirs={"train": str(folder)}, channel=1)
    np.testing.assert_array_equal(chosen.load_audio(entry)[0], right)
    silent = KaldiDirCorpus(dirs={"train": str(folder)}, channel=0)
    assert not np.any(silent.load_audio(entry)[0])  # the empty channel, as asked
    with pytest.raises(ValueError, match="has 2 channels: there is no channel 2"):
        KaldiDirCorpus(dirs={"train": str(folder)}, channel=2).load_audio(entry)
