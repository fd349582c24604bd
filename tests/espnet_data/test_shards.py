"""Tests for espnet_data.shards: bad samples, resampling, resuming, parallel writing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from espnet_data import (
    Entry,
    ShardDataset,
    ShardOptions,
    read_index,
    shard_paths,
    write_split,
    write_splits,
)
from espnet_data.audio import encode_flac, read_audio
from espnet_data.shards import add_member, open_shard, piece_size, plan_shards
from espnet_data.testing import ListCorpus, tone

OLD = 1_000_000_000  # an mtime (2001) that a rewritten file cannot keep


def _tones(n: int, prefix: str = "utt") -> list[Entry]:
    return [
        Entry(f"{prefix}-{i:03d}", f"WORD {i}", f"spk{i % 3}", (tone(0.2 + 0.05 * i), 16000))
        for i in range(n)
    ]


def _write(entries: list[Entry], out: Path, **kwargs) -> dict:
    return write_split(ListCorpus({"train": entries}), "train", out, **kwargs)


def _rejected(summary: dict) -> dict[str, str]:
    return {r["key"]: r["reason"] for r in summary["rejected"]}


def _tar_keys(split_dir: Path) -> list[str]:
    names = []
    for path in shard_paths(split_dir):
        with tarfile.open(path) as tar:
            names += tar.getnames()
    return names


@pytest.fixture
def good_entries(tiny_shards: Path) -> list[Entry]:
    return ListCorpus.from_dir(tiny_shards.parent / "audio").entries("train")


def test_corrupt_audio_files_are_rejected_and_good_ones_kept(tmp_path, good_entries) -> None:
    flac = encode_flac(tone(1.0), 16000)
    (tmp_path / "random.flac").write_bytes(np.random.default_rng(0).bytes(3000))
    (tmp_path / "truncated.flac").write_bytes(flac[: len(flac) // 2])
    bad = [
        Entry("bad-random", "HELLO", source=str(tmp_path / "random.flac")),
        Entry("bad-truncated", "HELLO", source=str(tmp_path / "truncated.flac")),
        Entry("bad-missing", "HELLO", source=str(tmp_path / "missing.flac")),
    ]
    entries = good_entries[:3] + bad + good_entries[3:]
    summary = _write(entries, tmp_path / "train", utterances_per_shard=4)

    good_keys = [e.key for e in good_entries]
    assert summary["num_utterances"] == len(good_entries) == 6
    assert summary["num_rejected"] == 3
    rejected = _rejected(summary)
    assert set(rejected) == {"bad-random", "bad-truncated", "bad-missing"}
    assert "cannot decode audio" in rejected["bad-random"]
    assert "random.flac" in rejected["bad-random"]
    assert "truncated.flac" in rejected["bad-truncated"]
    on_disk = json.loads((tmp_path / "train" / "summary.json").read_text())
    assert {k: v for k, v in on_disk.items() if k != "elapsed_seconds"} == {
        k: v for k, v in summary.items() if k != "elapsed_seconds"
    }
    assert [r["key"] for r in read_index(tmp_path / "train")] == good_keys
    assert sorted(_tar_keys(tmp_path / "train")) == sorted(
        f"{k}.{ext}" for k in good_keys for ext in ("flac", "json")
    )
    # each shard's companion lists its own rejects
    companion = json.loads((tmp_path / "train" / "shard-000001.json").read_text())
    assert {r["key"] for r in companion["rejected"]} == {"bad-truncated", "bad-missing"}


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_empty_transcript_is_rejected(tmp_path, text) -> None:
    entries = _tones(3)
    entries.insert(1, Entry("empty", text, source=(tone(1.0), 16000)))
    summary = _write(entries, tmp_path)
    assert _rejected(summary) == {"empty": "empty transcript"}
    assert [r["key"] for r in read_index(tmp_path)] == ["utt-000", "utt-001", "utt-002"]


def test_transcripts_are_whitespace_normalised(tmp_path) -> None:
    _write([Entry("a", "  HELLO \t  WORLD\n", source=(tone(0.5), 16000))], tmp_path)
    assert read_index(tmp_path)[0]["text"] == "HELLO WORLD"


@pytest.mark.parametrize("rate", [8000, 22050])
def test_other_sample_rates_are_resampled_by_default(tmp_path, rate) -> None:
    entries = [Entry("odd", "HELLO", source=(tone(1.25, sample_rate=rate), rate))]
    summary = _write(entries, tmp_path)
    assert summary["num_rejected"] == 0 and summary["sample_rate"] == 16000
    (row,) = read_index(tmp_path)
    assert row["duration"] == pytest.approx(1.25, abs=1e-3)
    (sample,) = list(ShardDataset(shard_paths(tmp_path)))
    assert sample["sample_rate"] == 16000
    assert abs(len(sample["audio"]) - 20000) <= 1


@pytest.mark.parametrize("rate", [8000, 22050])
def test_other_sample_rates_are_rejected_without_resampling(tmp_path, rate) -> None:
    entries = [*_tones(2), Entry("odd", "HELLO", source=(tone(1.0, sample_rate=rate), rate))]
    summary = _write(entries, tmp_path, options=ShardOptions(resample=False))
    reason = _rejected(summary)["odd"]
    assert f"{rate} Hz" in reason and "16000 Hz" in reason and "resample" in reason
    assert summary["num_utterances"] == 2


def test_a_target_rate_other_than_16k(tmp_path) -> None:
    entries = [Entry("a", "HELLO", source=(tone(1.0), 16000))]
    summary = _write(entries, tmp_path, options=ShardOptions(sample_rate=8000))
    assert summary["sample_rate"] == 8000
    (sample,) = list(ShardDataset(shard_paths(tmp_path)))
    assert sample["sample_rate"] == 8000 and len(sample["audio"]) == 8000


def test_silence_nan_and_bad_durations_are_rejected(tmp_path) -> None:
    nan = tone(1.0)
    nan[100] = np.nan
    bad = {
        "silence": np.zeros(16000, dtype=np.float32),
        "nan": nan,
        "inf": np.full(16000, np.inf, dtype=np.float32),
        "empty": np.zeros(0, dtype=np.float32),
        "short": tone(0.05),
        "long": tone(3.0),
    }
    entries = _tones(2) + [Entry(k, "HELLO", source=(a, 16000)) for k, a in bad.items()]
    options = ShardOptions(min_duration=0.1, max_duration=2.0)
    summary = _write(entries, tmp_path, options=options, utterances_per_shard=3)
    reasons = _rejected(summary)
    assert set(reasons) == set(bad)
    assert "digital silence" in reasons["silence"]
    assert "NaN" in reasons["nan"] and "NaN or Inf" in reasons["inf"]
    assert "empty audio" in reasons["empty"]
    assert "duration 0.05s" in reasons["short"] and "[0.1, 2.0]" in reasons["short"]
    assert "duration 3.00s" in reasons["long"]
    assert summary["num_utterances"] == 2
    assert summary["hours"] == pytest.approx((0.2 + 0.25) / 3600, abs=1e-4)


def test_index_rows_carry_metadata_and_extras(tmp_path) -> None:
    entry = Entry("a", "HI", "alice", (tone(0.5), 16000), extra={"lang": "en"})
    _write([entry], tmp_path)
    assert read_index(tmp_path) == [
        {
            "key": "a",
            "text": "HI",
            "speaker": "alice",
            "duration": 0.5,
            "lang": "en",
            "shard": "shard-000000.tar",
        }
    ]


def test_rerun_rewrites_only_the_missing_shard(tmp_path) -> None:
    entries = _tones(10)
    first = _write(entries, tmp_path, utterances_per_shard=3)
    assert first["num_shards"] == 4
    index = (tmp_path / "index.jsonl").read_bytes()
    for path in tmp_path.glob("shard-*"):
        os.utime(path, (OLD, OLD))
    (tmp_path / "shard-000001.tar").unlink()
    (tmp_path / "shard-000001.json").unlink()

    written = []
    second = _write(entries, tmp_path, utterances_per_shard=3, on_shard_complete=written.append)
    assert [r.shard for r in written] == ["shard-000001.tar"]
    mtimes = {p.name: p.stat().st_mtime for p in tmp_path.glob("shard-*")}
    assert mtimes.pop("shard-000001.tar") > OLD and mtimes.pop("shard-000001.json") > OLD
    assert set(mtimes.values()) == {OLD}
    assert (tmp_path / "index.jsonl").read_bytes() == index
    first.pop("elapsed_seconds"), second.pop("elapsed_seconds")
    assert second == first


def test_rerun_rewrites_a_shard_without_its_companion(tmp_path) -> None:
    entries = _tones(4)
    _write(entries, tmp_path, utterances_per_shard=2)
    index = (tmp_path / "index.jsonl").read_bytes()
    # a job killed between renaming the tar and writing its .json
    (tmp_path / "shard-000000.json").unlink()
    (tmp_path / "shard-000000.tar").write_bytes(b"half a shard")
    written = []
    _write(entries, tmp_path, utterances_per_shard=2, on_shard_complete=written.append)
    assert [r.shard for r in written] == ["shard-000000.tar"]
    assert (tmp_path / "index.jsonl").read_bytes() == index
    assert len(list(ShardDataset(shard_paths(tmp_path)))) == 4


def test_stale_temporary_files_do_not_break_a_rerun(tmp_path) -> None:
    entries = _tones(4)
    _write(entries, tmp_path, utterances_per_shard=2)
    (tmp_path / "shard-000001.tar").unlink()
    (tmp_path / "shard-000001.json").unlink()
    (tmp_path / ".shard-000001.tar.99999.tmp").write_bytes(b"garbage from a killed job")
    (tmp_path / f".shard-000001.tar.{os.getpid()}.tmp").write_bytes(b"same pid as ours")
    (tmp_path / ".index.jsonl.99999.tmp").write_text('{"broken": ')
    summary = _write(entries, tmp_path, utterances_per_shard=2)
    assert summary["num_utterances"] == 4
    assert [Path(p).name for p in shard_paths(tmp_path)] == ["shard-000000.tar", "shard-000001.tar"]
    assert [s["key"] for s in ShardDataset(shard_paths(tmp_path))] == [e.key for e in entries]


def test_rerun_with_other_shard_size_leaves_no_duplicates(tmp_path) -> None:
    entries = _tones(6)
    _write(entries, tmp_path, utterances_per_shard=1)
    assert len(shard_paths(tmp_path)) == 6
    summary = _write(entries, tmp_path, utterances_per_shard=4)
    assert summary["num_utterances"] == 6 and summary["num_shards"] == 2
    assert len(shard_paths(tmp_path)) == 2
    assert not list(tmp_path.glob("shard-00000[2-5].*"))
    keys = [s["key"] for s in ShardDataset(shard_paths(tmp_path))]
    assert keys == [e.key for e in entries]
    assert [r["key"] for r in read_index(tmp_path)] == keys


def test_rerun_with_changed_entries_rewrites_their_shards(tmp_path) -> None:
    _write(_tones(4), tmp_path, utterances_per_shard=2)
    entries = _tones(4, prefix="new")[:2] + _tones(4)[2:]
    written = []
    _write(entries, tmp_path, utterances_per_shard=2, on_shard_complete=written.append)
    assert [r.shard for r in written] == ["shard-000000.tar"]
    assert [r["key"] for r in read_index(tmp_path)] == [e.key for e in entries]


def test_duplicate_keys_keep_the_first_and_reject_the_rest(tmp_path) -> None:
    entries = _tones(3) + _tones(2)
    summary = _write(entries, tmp_path, utterances_per_shard=2)
    assert [r["key"] for r in read_index(tmp_path)] == ["utt-000", "utt-001", "utt-002"]
    assert summary["rejected_counts"] == {"duplicate_key": 2}
    reasons = _rejected(summary)
    assert set(reasons) == {"utt-000", "utt-001"}
    assert "entry #3 repeats entry #0" in reasons["utt-000"]
    assert summary["num_entries"] == 5 and summary["num_utterances"] == 3


@pytest.mark.parametrize("key", ["utt.1", ""])
def test_keys_webdataset_cannot_read_are_rejected(tmp_path, key) -> None:
    summary = _write([*_tones(1), Entry(key, "HI", source=(tone(0.5), 16000))], tmp_path)
    assert summary["rejected_counts"] == {"bad_key": 1}
    assert "'.'" in _rejected(summary)[key]
    assert [r["key"] for r in read_index(tmp_path)] == ["utt-000"]


def test_a_split_where_everything_is_rejected_is_an_error(tmp_path) -> None:
    entries = [Entry(f"e{i}", "", source=(tone(0.5), 16000)) for i in range(3)]
    with pytest.raises(ValueError, match=r"every one of the 3 entries.*empty_transcript.*summary.json"):
        _write(entries, tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text())["num_rejected"] == 3


def test_long_and_unicode_keys_round_trip(tmp_path) -> None:
    keys = ["k" * 150, "ütt-é-001", "dir/sub-utt"]
    entries = [Entry(k, "HI", source=(tone(0.3), 16000)) for k in keys]
    assert _write(entries, tmp_path)["num_utterances"] == 3
    assert [s["key"] for s in ShardDataset(shard_paths(tmp_path))] == keys


def test_parallel_writing_matches_serial(tmp_path) -> None:
    entries = _tones(9)
    entries[4] = Entry("utt-004", "", source=(tone(0.3), 16000))
    serial = _write(entries, tmp_path / "serial", utterances_per_shard=2)
    done = []
    parallel = _write(
        entries,
        tmp_path / "parallel",
        utterances_per_shard=2,
        num_workers=2,
        on_shard_complete=done.append,
    )
    assert sorted(r.shard for r in done) == [f"shard-{i:06d}.tar" for i in range(5)]
    assert (tmp_path / "serial" / "index.jsonl").read_bytes() == (
        tmp_path / "parallel" / "index.jsonl"
    ).read_bytes()
    for summary in (serial, parallel):
        summary.pop("elapsed_seconds")
    assert serial.pop("workers") == 1 and parallel.pop("workers") == 2
    assert serial == parallel
    for name in (f"shard-{i:06d}.tar" for i in range(5)):
        assert (tmp_path / "serial" / name).read_bytes() == (
            tmp_path / "parallel" / name
        ).read_bytes()


def test_shards_hold_flac_and_json_per_utterance(tiny_shards) -> None:
    rows = read_index(tiny_shards)
    assert len(rows) == 6 and len(shard_paths(tiny_shards)) == 3
    with tarfile.open(shard_paths(tiny_shards)[0]) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == [
            f"{r['key']}.{ext}" for r in rows[:2] for ext in ("flac", "json")
        ]
        meta = json.loads(tar.extractfile(members[1]).read())
        audio, rate = read_audio(tar.extractfile(members[0]).read())
    assert meta == {k: v for k, v in rows[0].items() if k != "shard"}
    assert rate == 16000 and meta["duration"] == pytest.approx(len(audio) / 16000, abs=1e-4)


def test_split_dirs_can_be_copied(tmp_path, tiny_shards) -> None:
    copy = shutil.copytree(tiny_shards, tmp_path / "copy")
    assert read_index(copy) == read_index(tiny_shards)


def test_read_index_and_shard_paths_say_to_run_create_dataset(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="create_dataset"):
        read_index(tmp_path)
    with pytest.raises(FileNotFoundError, match="create_dataset"):
        shard_paths(tmp_path)


def test_read_index_names_a_broken_line(tmp_path) -> None:
    (tmp_path / "index.jsonl").write_text('{"key": "a"}\n{"key": \n')
    with pytest.raises(ValueError, match="index.jsonl:2"):
        read_index(tmp_path)


def test_plan_shards() -> None:
    entries = _tones(5)
    assert [len(g) for g in plan_shards(entries, 2)] == [2, 2, 1]
    assert plan_shards([], 2) == []
    with pytest.raises(ValueError, match="utterances_per_shard"):
        plan_shards(entries, 0)


def test_unknown_split_names_the_choices(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"'dev'.*\['train'\]"):
        write_split(ListCorpus({"train": _tones(1)}), "dev", tmp_path)


# --- stored bytes, sizes, bad data, MPI -----------------------------------------------------

BAD = Path(__file__).parent / "bad"


def _member_bytes(split_dir: Path) -> dict[str, bytes]:
    out = {}
    for path in shard_paths(split_dir):
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                out[member.name] = tar.extractfile(member).read()
    return out


def test_flac_and_pcm16_wav_at_the_target_rate_are_stored_as_they_are(tmp_path) -> None:
    sources = {
        "flac16k": ("flac", 16000, "PCM_16"),
        "wav16k": ("wav", 16000, "PCM_16"),
        "flac8k": ("flac", 8000, "PCM_16"),
        "floatwav": ("wav", 16000, "FLOAT"),
    }
    entries = []
    for key, (ext, rate, subtype) in sources.items():
        path = tmp_path / f"{key}.{ext}"
        sf.write(path, tone(0.5, sample_rate=rate), rate, subtype=subtype)
        entries.append(Entry(key, "HI", source=str(path)))
    summary = _write(entries, tmp_path / "out")
    members = _member_bytes(tmp_path / "out")
    assert members["flac16k.flac"] == (tmp_path / "flac16k.flac").read_bytes()
    assert members["wav16k.wav"] == (tmp_path / "wav16k.wav").read_bytes()
    assert "flac8k.flac" in members and "floatwav.flac" in members  # resampled / re-encoded
    assert summary["stored_original"] == 2
    decoded = {s["key"]: s for s in ShardDataset(shard_paths(tmp_path / "out"))}
    assert all(s["sample_rate"] == 16000 and len(s["audio"]) == 8000 for s in decoded.values())
    np.testing.assert_array_equal(decoded["wav16k"]["audio"], read_audio(entries[1].source)[0])

    again = _write(entries, tmp_path / "reencoded", options=ShardOptions(keep_original=False))
    assert again["stored_original"] == 0
    assert sorted(_member_bytes(tmp_path / "reencoded")) == sorted(
        f"{k}.{e}" for k in sources for e in ("flac", "json")
    )


def test_a_corpus_that_cuts_its_files_is_not_stored_as_the_whole_file(tmp_path) -> None:
    path = tmp_path / "long.flac"
    sf.write(path, tone(1.0), 16000)

    class Segments(ListCorpus):
        def load_audio(self, entry):
            audio, rate = read_audio(entry.source)
            return audio[: rate // 2], rate

    summary = write_split(Segments({"train": [Entry("seg", "HI", source=str(path))]}), "train", tmp_path / "o")
    assert summary["stored_original"] == 0
    (sample,) = ShardDataset(shard_paths(tmp_path / "o"))
    assert len(sample["audio"]) == 8000


def test_target_shard_mb_sizes_shards_and_a_rerun_skips_them(tmp_path) -> None:
    rng = np.random.default_rng(0)
    # noise does not compress: ~1 s at 16 bits is ~30 KB of FLAC
    entries = [
        Entry(f"n{i:02d}", "HI", source=((0.3 * rng.standard_normal(16000)).astype(np.float32), 16000))
        for i in range(20)
    ]
    options = ShardOptions(target_shard_mb=0.1)
    summary = _write(entries, tmp_path, options=options)
    per_shard = summary["utterances_per_shard"]
    assert 2 <= per_shard <= 5 and summary["num_shards"] == -(-20 // per_shard)
    sizes = [Path(p).stat().st_size for p in shard_paths(tmp_path)]
    assert all(0.6e5 < s < 1.4e5 for s in sizes[:-1]), sizes
    assert summary["megabytes"] == pytest.approx(sum(sizes) / 1e6, abs=1e-3)

    written = []
    again = _write(entries, tmp_path, options=options, on_shard_complete=written.append)
    assert written == [] and again["utterances_per_shard"] == per_shard
    assert again["num_utterances"] == 20


def test_rerun_rewrites_a_shard_whose_size_changed(tmp_path) -> None:
    entries = _tones(4)
    _write(entries, tmp_path, utterances_per_shard=2)
    with open(tmp_path / "shard-000001.tar", "ab") as f:
        f.write(b"\0" * 512)  # e.g. a copy that went wrong
    written = []
    _write(entries, tmp_path, utterances_per_shard=2, on_shard_complete=written.append)
    assert [r.shard for r in written] == ["shard-000001.tar"]


def test_target_shard_mb_must_be_positive() -> None:
    with pytest.raises(ValueError, match="target_shard_mb"):
        ShardOptions(target_shard_mb=0)


class _BadFolder(ListCorpus):
    """The ``bad/`` fixtures as a corpus: transcript lines (raw bytes) + audio files."""

    @classmethod
    def load(cls, folder: Path) -> _BadFolder:
        audio = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix in (".flac", ".wav")}
        entries, seen = [], set()
        for line in (folder / "transcripts.txt").read_bytes().splitlines():
            key, _, text = line.partition(b" ")
            key = key.decode()
            entries.append(Entry(key, text.decode("utf-8", "surrogateescape"), source=str(audio[key])))
            seen.add(key)
        entries += [Entry(k, None, source=str(p)) for k, p in audio.items() if k not in seen]
        return cls({"train": entries})


def test_bad_data_folder(tmp_path) -> None:
    corpus = _BadFolder.load(BAD)
    summary = write_split(
        corpus, "train", tmp_path, utterances_per_shard=4, num_workers=2,
        options=ShardOptions(min_duration=0.1),
    )
    codes = {(r["key"], r["code"]) for r in summary["rejected"]}
    assert codes == {
        ("dup", "duplicate_key"),
        ("corrupt", "unreadable_audio"),
        ("truncated-flac", "unreadable_audio"),
        ("truncated-wav", "truncated_audio"),
        ("empty-wav", "empty_audio"),
        ("empty-file", "unreadable_audio"),
        ("short", "too_short"),
        ("silence", "bad_audio"),
        ("no-text", "missing_transcript"),
        ("empty-text", "empty_transcript"),
        ("latin1-text", "bad_text_encoding"),
    }
    reasons = _rejected(summary)
    assert "corrupt.flac" in reasons["corrupt"]
    assert "truncated-wav.wav" in reasons["truncated-wav"] and "32000 bytes" in reasons["truncated-wav"]
    assert "UTF-8" in reasons["latin1-text"]
    rows = read_index(tmp_path)
    assert [r["key"] for r in rows] == ["good-a", "good-b", "dup", "good-c", "good-d"]
    assert {r["key"]: r["text"] for r in rows}["dup"] == "FIRST TEXT"
    assert {r["key"]: r["text"] for r in rows}["good-c"] == "SEVEN EIGHT"
    assert summary["num_entries"] == 16 == summary["num_utterances"] + summary["num_rejected"]
    assert summary["rejected_counts"]["unreadable_audio"] == 3
    assert summary["stored_original"] == 3  # good-a, good-b, dup
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["rejected"] == summary["rejected"]
    samples = list(ShardDataset(shard_paths(tmp_path)))
    assert [s["key"] for s in samples] == [r["key"] for r in rows]


MPIEXEC = shutil.which("mpiexec") or shutil.which("mpiexec", path=str(Path(sys.executable).parent))

_MPI_SCRIPT = """
import json
import sys
import numpy as np
from espnet_data import Entry, write_split
from espnet_data.testing import ListCorpus, tone

written = []
entries = [Entry(f"u{i:02d}", f"W {i}", source=(tone(0.2 + 0.01 * i), 16000)) for i in range(11)]
entries.append(Entry("u03", "DUPLICATE", source=(tone(0.3), 16000)))
summary = write_split(ListCorpus({"train": entries}), "train", sys.argv[1],
                      utterances_per_shard=2, on_shard_complete=written.append)
from mpi4py import MPI
rank = MPI.COMM_WORLD.Get_rank()
with open(f"{sys.argv[1]}.rank{rank}.json", "w") as f:  # not stdout: mpiexec interleaves it
    json.dump({"utterances": summary["num_utterances"], "wrote": sorted(r.shard for r in written)}, f)
"""


@pytest.mark.mpi
@pytest.mark.slow
@pytest.mark.skipif(MPIEXEC is None, reason="mpiexec not found (install espnet-data[mpi])")
def test_mpi_ranks_write_their_own_shards_and_rank_0_the_index(tmp_path) -> None:
    script = tmp_path / "write.py"
    script.write_text(_MPI_SCRIPT)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [MPIEXEC, "-n", "2", sys.executable, str(script), str(tmp_path / "mpi")],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"mpi.rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["utterances"] for r in ranks] == [11, 11]  # every rank gets the summary
    assert ranks[0]["wrote"] == [f"shard-00000{i}.tar" for i in (0, 2, 4)]  # tasks[rank::size]
    assert ranks[1]["wrote"] == [f"shard-00000{i}.tar" for i in (1, 3, 5)]
    summary = json.loads((tmp_path / "mpi" / "summary.json").read_text())
    assert summary["backend"] == "mpi" and summary["workers"] == 2
    assert summary["rejected_counts"] == {"duplicate_key": 1}

    entries = [Entry(f"u{i:02d}", f"W {i}", source=(tone(0.2 + 0.01 * i), 16000)) for i in range(11)]
    local = _write(entries, tmp_path / "local", utterances_per_shard=2, num_workers=2)
    assert (tmp_path / "mpi" / "index.jsonl").read_bytes() == (
        tmp_path / "local" / "index.jsonl"
    ).read_bytes()
    for name in (Path(p).name for p in shard_paths(tmp_path / "local")):
        assert (tmp_path / "mpi" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    assert local["num_shards"] == summary["num_shards"] == 6


def _three_splits(n: int = 23) -> ListCorpus:
    entries = _tones(n)
    entries[5] = Entry("utt-005", "", source=(tone(0.3), 16000))  # rejected
    return ListCorpus({
        "train": entries,
        "dev": _tones(3, prefix="dev"),
        "test": _tones(1, prefix="test"),
    })


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "summary.json"
    }


@pytest.mark.parametrize("workers", [2, 3])
def test_write_splits_is_byte_identical_for_1_and_n_workers(tmp_path, workers) -> None:
    corpus = _three_splits()
    one = write_splits(corpus, corpus.splits(), tmp_path / "one", utterances_per_shard=4, num_workers=1)
    many = write_splits(corpus, corpus.splits(), tmp_path / "many", utterances_per_shard=4,
                        num_workers=workers)
    assert piece_size(27, workers) < 4  # several pieces per shard, finishing in any order
    assert _files(tmp_path / "one") == _files(tmp_path / "many")
    assert sorted(_files(tmp_path / "one")) == sorted(
        [f"{s}/index.jsonl" for s in ("train", "dev", "test")]
        + [f"train/shard-{i:06d}.{x}" for i in range(6) for x in ("tar", "json")]
        + [f"dev/shard-000000.{x}" for x in ("tar", "json")]
        + [f"test/shard-000000.{x}" for x in ("tar", "json")]
    )
    for split in corpus.splits():
        a, b = one[split], many[split]
        a.pop("elapsed_seconds"), b.pop("elapsed_seconds")
        assert a.pop("workers") == 1 and b.pop("workers") == workers
        assert a == b
    assert one["train"]["rejected_counts"] == {"empty_transcript": 1}
    assert not list((tmp_path / "many").rglob(".*"))  # no fragments or temporary files left


def test_shards_are_what_tarfile_writes(tmp_path) -> None:
    """The joined pieces are the bytes tarfile would write: readers see plain tars."""
    entries = _tones(5)
    _write(entries, tmp_path / "split", utterances_per_shard=5, num_workers=2)
    shard = tmp_path / "split" / "shard-000000.tar"
    with tarfile.open(shard) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    with open_shard(tmp_path / "again.tar") as tar:
        for name, data in members:
            add_member(tar, name, data)
    assert (tmp_path / "again.tar").read_bytes() == shard.read_bytes()
    assert [n for n, _ in members][:2] == ["utt-000.flac", "utt-000.json"]


def test_write_splits_resumes_only_the_missing_shards(tmp_path) -> None:
    corpus = _three_splits()
    write_splits(corpus, corpus.splits(), tmp_path, utterances_per_shard=4, num_workers=2)
    before = _files(tmp_path)
    for path in tmp_path.rglob("shard-*"):
        os.utime(path, (OLD, OLD))
    (tmp_path / "train" / "shard-000003.json").unlink()
    (tmp_path / "dev" / "shard-000000.tar").unlink()
    (tmp_path / "train" / ".shard-000003.tar.0001.part").write_bytes(b"a piece of a killed run")
    written = []
    write_splits(corpus, corpus.splits(), tmp_path, utterances_per_shard=4, num_workers=2,
                 on_shard_complete=written.append)
    assert sorted(r.shard for r in written) == ["shard-000000.tar", "shard-000003.tar"]
    assert _files(tmp_path) == before
    new = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("shard-*") if p.stat().st_mtime > OLD}
    assert new == {"train/shard-000003.tar", "train/shard-000003.json",
                   "dev/shard-000000.tar", "dev/shard-000000.json"}


def test_write_splits_logs_its_progress(tmp_path, caplog) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="espnet_data.progress")
    corpus = _three_splits(8)
    write_splits(corpus, corpus.splits(), tmp_path, utterances_per_shard=4, num_workers=2)
    lines = [r.getMessage() for r in caplog.records if r.name == "espnet_data.progress"]
    assert len(lines) == 1  # a short job: the final line only (one every 30 s otherwise)
    assert lines[0].startswith("create_dataset: 12/12 utt (100%)")
    assert "utt/s" in lines[0] and "audio h/s" in lines[0] and "done in" in lines[0]
    caplog.clear()
    write_splits(corpus, corpus.splits(), tmp_path, utterances_per_shard=4, num_workers=2)
    assert not [r for r in caplog.records if r.name == "espnet_data.progress"]  # nothing to do


def test_synthesised_shards_are_byte_identical_for_1_and_2_workers(tmp_path) -> None:
    """Rendering runs on one thread wherever it runs: a BLAS matmul split over threads
    rounds differently, so the 1-worker run in this process must not use more."""
    from espnet_data.corpora import MiniCorpus

    corpus = MiniCorpus(utterances={"train": 14, "dev": 3})
    for workers in (1, 2):
        write_splits(corpus, corpus.splits(), tmp_path / str(workers), utterances_per_shard=5,
                     num_workers=workers, progress=False)
    assert _files(tmp_path / "1") == _files(tmp_path / "2")
    assert len(read_index(tmp_path / "1" / "train")) == 14
