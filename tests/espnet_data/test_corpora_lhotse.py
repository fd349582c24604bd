"""Tests for espnet_data.corpora.lhotse: lhotse manifests (written by lhotse here) as a corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from espnet_data import Corpus, read_index, write_split
from espnet_data.corpora import LhotseCorpus
from espnet_data.corpora._spans import Span
from espnet_data.testing import tone
from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet
from lhotse.audio import AudioSource


def _sup(sid: str, rec: str, start: float, duration: float, text: str | None,
         channel: int | list[int] = 0, speaker: str | None = "spk") -> SupervisionSegment:
    return SupervisionSegment(id=sid, recording_id=rec, start=start, duration=duration,
                              channel=channel, text=text, speaker=speaker)


@pytest.fixture
def manifests(tmp_path: Path) -> dict[str, Path]:
    """A mono and a stereo recording with supervisions, plus bad ones; written as
    recordings + supervisions and as cuts."""
    sf.write(tmp_path / "mono.flac", tone(2.0, 16000, 300.0), 16000, subtype="PCM_16")
    stereo = np.stack([tone(2.0, 8000, 200.0), tone(2.0, 8000, 900.0)], axis=1)
    sf.write(tmp_path / "stereo.wav", stereo, 8000, subtype="PCM_16")
    mono = Recording.from_file(tmp_path / "mono.flac", recording_id="rec.mono")
    two = Recording.from_file(tmp_path / "stereo.wav", recording_id="rec-stereo")
    gone = Recording(id="gone", sources=[AudioSource("file", [0], str(tmp_path / "gone.flac"))],
                     sampling_rate=16000, num_samples=16000, duration=1.0)
    url = Recording(id="web", sources=[AudioSource("url", [0], "https://example.com/x.flac")],
                    sampling_rate=16000, num_samples=16000, duration=1.0)
    sups = [
        _sup("mono.1", "rec.mono", 0.0, 1.0, "first half"),
        _sup("mono.2", "rec.mono", 1.0, 1.0, "second half", speaker="other"),
        _sup("left", "rec-stereo", 0.5, 1.0, "on the left", channel=0),
        _sup("right", "rec-stereo", 0.5, 1.0, "on the right", channel=1),
        _sup("both", "rec-stereo", 0.0, 2.0, "both sides", channel=[0, 1]),
        _sup("late", "rec-stereo", 1.5, 2.0, "too long"),
        _sup("untold", "rec.mono", 0.2, 0.5, None),
        _sup("lost", "gone", 0.0, 1.0, "missing file"),
        _sup("online", "web", 0.0, 1.0, "a url"),
    ]
    recordings = RecordingSet.from_recordings([mono, two, gone, url])
    supervisions = SupervisionSet.from_segments(sups)
    paths = {"recordings": tmp_path / "recordings.jsonl.gz", "supervisions": tmp_path / "sups.jsonl",
             "cuts": tmp_path / "cuts.jsonl.gz"}
    recordings.to_file(paths["recordings"])
    # an orphan supervision and a line that is not JSON, in the uncompressed manifest
    SupervisionSet.from_segments([*sups, _sup("orphan", "nowhere", 0, 1, "no recording")]).to_file(
        paths["supervisions"])
    with open(paths["supervisions"], "a") as f:
        f.write("{broken\n")
    cuts = CutSet.from_manifests(recordings=recordings, supervisions=supervisions)
    mixed = cuts[0].mix(cuts[0], offset_other_by=0.5)
    CutSet.from_cuts([*cuts, mixed.with_id("mixed")]).to_file(paths["cuts"])
    return paths


def test_supervisions_from_recordings_and_supervisions(manifests: dict[str, Path]) -> None:
    corpus = LhotseCorpus(recordings={"train": str(manifests["recordings"])},
                          supervisions={"train": str(manifests["supervisions"])})
    assert isinstance(corpus, Corpus) and corpus.splits() == ["train"]
    entries = {e.key: e for e in corpus.entries("train")}
    assert set(entries) == {"mono_1", "mono_2", "left", "right", "both", "late", "untold", "lost",
                            "online", "orphan", "sups_jsonl-line000011"}
    folder = manifests["cuts"].parent
    assert entries["right"].source == Span(str(folder / "stereo.wav"), 0.5, 1.0, 1)
    assert entries["both"].source == Span(str(folder / "stereo.wav"), 0.0, 2.0, None)
    assert entries["mono_2"].speaker == "other" and entries["mono_2"].extra == {"recording": "rec.mono"}
    stereo, _ = sf.read(folder / "stereo.wav", dtype="float32")
    left, rate = corpus.load_audio(entries["left"])
    assert rate == 8000
    np.testing.assert_array_equal(left, stereo[4000:12000, 0])
    np.testing.assert_array_equal(corpus.load_audio(entries["right"])[0], stereo[4000:12000, 1])
    forced = LhotseCorpus(recordings=corpus.recordings, supervisions=corpus.supervisions, channel=1)
    assert {e.key: e for e in forced.entries("train")}["left"].source.channels == 1


def test_cuts_write_shards_and_bad_segments_are_rejected(
    tmp_path: Path, manifests: dict[str, Path]
) -> None:
    corpus = LhotseCorpus(cuts={"dev": str(manifests["cuts"])})
    summary = write_split(corpus, "dev", tmp_path / "dev", utterances_per_shard=3, num_workers=2)
    codes = {r["key"]: r["code"] for r in summary["rejected"]}
    reasons = {r["key"]: r["reason"] for r in summary["rejected"]}
    assert codes == {"late": "unreadable_audio", "untold": "missing_transcript",
                     "lost": "unreadable_audio", "online": "unreadable_audio",
                     "mixed": "unreadable_audio"}
    assert "ends at 3.50 s, past the end of" in reasons["late"]
    assert "gone.flac does not exist" in reasons["lost"]
    assert "recording web's audio is a 'url' source, not a file" in reasons["online"]
    assert "cut mixed is a MixedCut" in reasons["mixed"]
    rows = {r["key"]: r for r in read_index(tmp_path / "dev")}
    assert set(rows) == {"mono_1", "mono_2", "left", "right", "both"}
    assert rows["mono_1"]["text"] == "first half" and rows["mono_1"]["speaker"] == "spk"
    assert rows["left"]["duration"] == pytest.approx(1.0)  # resampled from 8 kHz
    assert rows["both"]["duration"] == pytest.approx(2.0)


def test_one_entry_per_cut(tmp_path: Path, manifests: dict[str, Path]) -> None:
    corpus = LhotseCorpus(cuts={"train": str(manifests["cuts"])}, unit="cut")
    entries = {e.key: e for e in corpus.entries("train")}
    cut_id = next(k for k in entries if k.startswith("rec_mono"))
    # texts in time order; one supervision without text makes the cut's text unknown
    assert entries[cut_id].text is None
    sets = LhotseCorpus(recordings={"t": str(manifests["recordings"])},
                        supervisions={"t": str(manifests["supervisions"])}, unit="cut")
    by_rec = {e.key: e for e in sets.entries("t")}
    assert by_rec["rec-stereo"].text == "both sides on the left on the right too long"
    assert by_rec["rec-stereo"].speaker == "spk"
    assert by_rec["rec-stereo"].source == Span(str(manifests["cuts"].parent / "stereo.wav"))
    assert "not in" in by_rec["nowhere"].source.reason


def test_configuration_errors(manifests: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="needs cuts, or recordings and supervisions"):
        LhotseCorpus()
    with pytest.raises(ValueError, match=r"splits \['a'\] have a recordings or a supervisions"):
        LhotseCorpus(recordings={"a": "r.jsonl.gz"})
    with pytest.raises(FileNotFoundError, match="lhotse manifest .*nope.jsonl.gz does not exist"):
        LhotseCorpus(cuts={"a": str(manifests["cuts"].parent / "nope.jsonl.gz")}).entries("a")
