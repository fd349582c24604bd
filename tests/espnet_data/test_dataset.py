"""Tests for espnet_data.dataset: reading shards back, alone and in DataLoader workers."""

from __future__ import annotations

import functools
import json
import shutil
import threading
import time
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import webdataset as wds
from espnet_data import Collate, DynamicBatcher, ShardDataset, map_stage, read_index, shard_paths
from espnet_data.audio import AudioError, encode_flac, read_audio
from espnet_data.dataset import decode_samples
from espnet_data.testing import ListCorpus, tone
from torch.utils.data import DataLoader


def _identity(x: Any) -> Any:
    return x


def test_round_trip_equals_what_was_written(tiny_shards: Path) -> None:
    source = {e.key: e for e in ListCorpus.from_dir(tiny_shards.parent / "audio").entries("train")}
    rows = read_index(tiny_shards)
    samples = list(ShardDataset(shard_paths(tiny_shards)))
    assert [s["key"] for s in samples] == [r["key"] for r in rows] == list(source)
    for sample, row in zip(samples, rows, strict=True):
        entry = source[sample["key"]]
        assert sample["text"] == row["text"] == entry.text
        assert sample["speaker"] == row["speaker"] == entry.speaker != ""
        assert sample["sample_rate"] == 16000
        assert sample["audio"].dtype == np.float32
        np.testing.assert_array_equal(sample["audio"], read_audio(entry.source)[0])
        assert sample["duration"] == pytest.approx(row["duration"], abs=1e-4)


def test_shard_shuffling_is_per_epoch_and_deterministic(tiny_shards: Path) -> None:
    urls = shard_paths(tiny_shards)
    keys = [r["key"] for r in read_index(tiny_shards)]

    def order(epoch: int, seed: int = 0) -> list[str]:
        dataset = ShardDataset(urls, shuffle_shards=True, seed=seed)
        dataset.set_epoch(epoch)
        return [s["key"] for s in dataset]

    orders = [order(epoch) for epoch in range(6)]
    assert all(sorted(o) == sorted(keys) for o in orders)
    assert orders == [order(epoch) for epoch in range(6)]
    assert len({tuple(o) for o in orders}) > 1
    # shards move as a whole: pairs of keys stay together
    assert all(
        {tuple(o[i : i + 2]) for i in (0, 2, 4)} == {tuple(keys[i : i + 2]) for i in (0, 2, 4)}
        for o in orders
    )
    assert [s["key"] for s in ShardDataset(urls)] == keys  # no shuffling by default


@pytest.mark.parametrize(("num_shards", "num_workers"), [(1, 2), (3, 2)])
def test_dataloader_workers_yield_each_sample_once(tiny_shards, num_shards, num_workers) -> None:
    urls = shard_paths(tiny_shards)[:num_shards]
    expected = [
        r["key"] for r in read_index(tiny_shards) if r["shard"] in {Path(u).name for u in urls}
    ]
    loader = DataLoader(
        ShardDataset(urls), batch_size=None, num_workers=num_workers, collate_fn=_identity
    )
    keys = [s["key"] for s in loader]
    assert Counter(keys) == Counter(expected)
    assert len(keys) == len(expected) == 2 * num_shards


def test_batching_stages_inside_the_dataset(tiny_shards: Path) -> None:
    batcher = DynamicBatcher(max_seconds=4.0, max_batch_size=3, buffer_size=100, seed=1)
    dataset = ShardDataset(shard_paths(tiny_shards), stages=[batcher, map_stage(Collate())])
    dataset.set_epoch(3)
    batches = list(dataset)
    keys = [k for b in batches for k in b["keys"]]
    assert sorted(keys) == sorted(r["key"] for r in read_index(tiny_shards))
    for batch in batches:
        assert batch["speech"].shape == (len(batch["keys"]), int(batch["speech_lengths"].max()))
    dataset.set_epoch(3)
    assert [b["keys"] for b in dataset] == [b["keys"] for b in batches]


def test_set_epoch_reaches_the_stages(tmp_path) -> None:
    seen = []

    class Stage:
        def set_epoch(self, epoch: int) -> None:
            seen.append(epoch)

        def __call__(self, items):
            return iter(items)

    from espnet_data import Entry, write_split

    write_split(ListCorpus({"t": [Entry("a", "A", source=(tone(0.5), 16000))]}), "t", tmp_path)
    dataset = ShardDataset(shard_paths(tmp_path), stages=[Stage()])
    dataset.set_epoch(7)
    assert [s["key"] for s in dataset] == ["a"] and seen == [7]


def test_needs_urls() -> None:
    with pytest.raises(ValueError, match="at least one shard"):
        ShardDataset([])


def _raw(key: str, **members: bytes) -> dict[str, Any]:
    return {"__key__": key, "__url__": "shard-000000.tar", **members}


def test_decode_samples_skips_broken_samples_by_default(caplog) -> None:
    good = _raw(
        "good",
        json=json.dumps({"key": "good", "text": "HI"}).encode(),
        flac=encode_flac(tone(0.5), 16000),
    )
    no_audio = _raw("no-audio", json=b'{"key": "no-audio"}')
    bad_audio = _raw("bad-audio", json=b'{"key": "bad-audio"}', flac=b"not flac")
    bad_json = _raw("bad-json", json=b"{", flac=encode_flac(tone(0.5), 16000))
    raw = [no_audio, bad_audio, good, bad_json]
    start = time.perf_counter()
    samples = list(decode_samples(iter(raw)))
    assert time.perf_counter() - start < 0.5  # no sleeping per broken sample
    assert [s["key"] for s in samples] == ["good"]
    assert samples[0]["text"] == "HI" and samples[0]["duration"] == 0.5
    skipped = [
        r.getMessage() for r in caplog.records if "skipping a broken sample" in r.getMessage()
    ]
    assert len(skipped) == 3
    for key, message in zip(["no-audio", "bad-audio", "bad-json"], skipped, strict=True):
        assert f"sample '{key}' of shard-000000.tar" in message


def test_a_broken_member_in_a_shard_is_skipped(tmp_path, caplog) -> None:
    from espnet_data import Entry, write_split

    entries = [Entry(k, "HI", source=(tone(0.5), 16000)) for k in ("a", "b", "c")]
    write_split(ListCorpus({"t": entries}), "t", tmp_path)
    # replace b's FLAC by garbage of the same size, as a bit-rotted disk would
    shard = tmp_path / "shard-000000.tar"
    data = shard.read_bytes()
    flac = encode_flac(tone(0.5), 16000)
    start = data.index(flac, data.index(b"b.flac"))
    shard.write_bytes(data[:start] + bytes(len(flac)) + data[start + len(flac) :])
    assert [s["key"] for s in ShardDataset([str(shard)])] == ["a", "c"]
    assert any("'b'" in r.getMessage() for r in caplog.records)


def test_decode_samples_error_policy_can_reraise() -> None:
    with pytest.raises(AudioError, match="no-audio: no .flac or .wav member in shard-000000.tar"):
        list(decode_samples([_raw("no-audio", json=b"{}")], handler=wds.reraise_exception))


def test_decode_samples_reads_wav_members() -> None:
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, tone(0.25, sample_rate=8000), 8000, format="WAV")
    (sample,) = decode_samples([_raw("w", json=b'{"text": "X"}', wav=buf.getvalue())])
    assert sample["key"] == "w" and sample["sample_rate"] == 8000 and sample["duration"] == 0.25


# --- DDP: equal batches per rank; streaming from URLs --------------------------------------


@pytest.fixture(scope="module")
def uneven_split(tmp_path_factory) -> Path:
    """3 shards of 4 tones: 1.0 s, 0.2 s and 1.0 s each. Two ranks get 8 s and 0.8 s."""
    from espnet_data import Entry, write_split

    seconds = [1.0] * 4 + [0.2] * 4 + [1.0] * 4
    entries = [Entry(f"u{i:02d}", "HI", source=(tone(d), 16000)) for i, d in enumerate(seconds)]
    out = tmp_path_factory.mktemp("uneven") / "train"
    write_split(ListCorpus({"train": entries}), "train", out, utterances_per_shard=4)
    return out


def _batched(urls, **kwargs) -> ShardDataset:
    batcher = DynamicBatcher(max_seconds=1.0, buffer_size=100, shuffle=False)
    return ShardDataset(urls, stages=[batcher], **kwargs)


def test_uneven_ranks_yield_as_many_batches_as_the_poorest(uneven_split) -> None:
    urls = shard_paths(uneven_split)
    plain = [list(_batched(urls, rank=r, world_size=2)) for r in (0, 1)]
    assert [len(b) for b in plain] == [8, 1]  # would deadlock under DDP
    equal = [list(_batched(urls, rank=r, world_size=2, batches_per_rank="auto")) for r in (0, 1)]
    assert [len(b) for b in equal] == [1, 1]
    assert {s["key"] for b in equal[1] for s in b} == {"u04", "u05", "u06", "u07"}
    # one rank alone: "auto" changes nothing
    assert len(list(_batched(urls, rank=0, world_size=1, batches_per_rank="auto"))) == 9


def test_a_fixed_count_repeats_a_rank_whose_data_runs_out(uneven_split) -> None:
    urls = shard_paths(uneven_split)
    counts = [len(list(_batched(urls, rank=r, world_size=2, batches_per_rank=5))) for r in (0, 1)]
    assert counts == [5, 5]


def test_rank_and_world_size_come_from_the_environment(uneven_split, monkeypatch) -> None:
    urls = shard_paths(uneven_split)
    lengths = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        dataset = _batched(urls, batches_per_rank="auto", shuffle_shards=True)
        for epoch in range(3):
            dataset.set_epoch(epoch)
            lengths.append((epoch, len(list(dataset))))
    by_epoch = {e: {n for ep, n in lengths if ep == e} for e, _ in lengths}
    assert all(len(n) == 1 for n in by_epoch.values()), lengths  # ranks agree every epoch


@pytest.mark.parametrize("num_workers", [1, 2])
def test_equal_batches_hold_with_dataloader_workers(uneven_split, num_workers) -> None:
    urls = shard_paths(uneven_split)
    totals = []
    for rank in (0, 1):
        dataset = _batched(urls, rank=rank, world_size=2, batches_per_rank=3)
        loader = DataLoader(dataset, batch_size=None, num_workers=num_workers, collate_fn=_identity)
        totals.append(len(list(loader)))
    assert totals == [3, 3]


def test_a_rank_without_shards_is_a_clear_error(uneven_split, caplog) -> None:
    with pytest.raises(ValueError, match="rank 3 of 4 gets no shard: 3 shards"):
        list(_batched(shard_paths(uneven_split), rank=3, world_size=4, batches_per_rank="auto"))
    # without equal batches asked for (e.g. validation), it reads nothing and says so
    assert list(ShardDataset(shard_paths(uneven_split), rank=3, world_size=4)) == []
    assert "rank 3 of 4 gets no shard" in caplog.text


def test_auto_needs_an_index_for_urls(uneven_split) -> None:
    urls = [f"pipe:cat {u}" for u in shard_paths(uneven_split)]
    with pytest.raises(ValueError, match="needs the split's index"):
        list(_batched(urls, rank=0, world_size=2, batches_per_rank="auto"))
    dataset = _batched(
        urls, rank=1, world_size=2, batches_per_rank="auto", index=read_index(uneven_split)
    )
    assert len(list(dataset)) == 1


def test_pipe_urls_stream_the_shards(tiny_shards) -> None:
    urls = [f"pipe:cat {u}" for u in shard_paths(tiny_shards)]
    keys = [s["key"] for s in ShardDataset(urls)]
    assert keys == [r["key"] for r in read_index(tiny_shards)]


@pytest.mark.skipif(shutil.which("curl") is None, reason="webdataset opens http URLs with curl")
def test_http_urls_stream_the_shards(tiny_shards) -> None:
    handler = functools.partial(_QuietHandler, directory=str(tiny_shards))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        urls = [f"http://127.0.0.1:{port}/{Path(u).name}" for u in shard_paths(tiny_shards)]
        samples = list(ShardDataset(urls, rank=0, world_size=1))
    finally:
        server.shutdown()
        server.server_close()
    rows = read_index(tiny_shards)
    assert [s["key"] for s in samples] == [r["key"] for r in rows]
    assert all(s["duration"] == pytest.approx(r["duration"], abs=1e-4) for s, r in zip(samples, rows, strict=True))


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass


# --- issue 21: NaN/Inf audio in a shard is an error, not a sample ---------------------


def test_non_finite_audio_in_a_shard_raises_naming_the_key_and_the_count() -> None:
    import io

    import soundfile as sf
    from espnet_data.audio import NonFiniteAudioError

    audio = tone(0.25)
    audio[100:104] = np.nan
    buf = io.BytesIO()
    sf.write(buf, audio, 16000, format="WAV", subtype="FLOAT")
    item = _raw("zz-nan", json=b'{"key": "zz-nan", "text": "A B"}', wav=buf.getvalue())
    with pytest.raises(NonFiniteAudioError) as info:
        list(decode_samples([item], handler=wds.reraise_exception))
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "'zz-nan' of shard-000000.tar" in message and "4 of 4000 samples are NaN or Inf" in message
    good = _raw("good", json=b'{"key": "good"}', flac=encode_flac(tone(0.25), 16000))
    assert [s["key"] for s in decode_samples([item, good])] == ["good"]  # default: skipped
