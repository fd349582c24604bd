"""Tests for espnet_data.batching: dynamic batches, padding accounting, collation."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
import torch
from espnet_data import Collate, DynamicBatcher, map_stage
from espnet_data.batching import pad_sequences
from espnet_data.tokenizer import CharTokenizer


def _samples(n: int = 300, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [{"key": f"u{i:04d}", "duration": round(rng.uniform(0.5, 12.0), 3)} for i in range(n)]


def _keys(batches: list[list[dict]]) -> list[str]:
    return [s["key"] for b in batches for s in b]


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("buffer_size", [1, 7, 64, 1000])
def test_batches_respect_budgets_and_keep_every_sample(shuffle, buffer_size) -> None:
    samples = _samples()
    samples.append({"key": "huge", "duration": 45.0})  # longer than the budget alone
    batcher = DynamicBatcher(
        max_seconds=40.0, max_batch_size=6, buffer_size=buffer_size, shuffle=shuffle
    )
    batches = list(batcher(iter(samples)))
    assert Counter(_keys(batches)) == Counter(s["key"] for s in samples)
    for batch in batches:
        assert 1 <= len(batch) <= 6
        assert len(batch) == 1 or max(s["duration"] for s in batch) * len(batch) <= 40.0
    assert any(b == [samples[-1]] for b in batches)
    real = sum(s["duration"] for s in samples)
    padded = sum(max(s["duration"] for s in b) * len(b) for b in batches)
    assert batcher.real_seconds == pytest.approx(real)
    assert batcher.padded_seconds == pytest.approx(padded)
    assert batcher.padding_ratio == pytest.approx(1 - real / padded)
    assert 0.0 <= batcher.padding_ratio < 0.6


def test_a_bigger_buffer_wastes_less_padding() -> None:
    def ratio(buffer_size: int) -> tuple[float, int]:
        batcher = DynamicBatcher(max_seconds=100.0, max_batch_size=8, buffer_size=buffer_size)
        batches = list(batcher(iter(_samples(400))))
        return batcher.padding_ratio, len(batches)

    one, one_count = ratio(1)
    small, _ = ratio(8)
    big, big_count = ratio(400)
    # buffer_size=1 cannot pad, but every batch holds one utterance
    assert one == 0.0 and one_count == 400
    assert big < 0.1 < 0.3 < small
    assert big_count < 100


def test_padding_ratio_is_zero_before_any_batch() -> None:
    assert DynamicBatcher().padding_ratio == 0.0


def test_set_epoch_reshuffles_deterministically() -> None:
    samples = _samples(200)

    def run(epoch: int, seed: int = 0) -> list[list[str]]:
        batcher = DynamicBatcher(max_seconds=30.0, buffer_size=50, seed=seed)
        batcher.set_epoch(epoch)
        return [[s["key"] for s in b] for b in batcher(iter(samples))]

    assert run(0) == run(0) and run(1) == run(1)
    assert run(0) != run(1)
    assert run(0, seed=1) != run(0)
    assert sorted(k for b in run(1) for k in b) == sorted(s["key"] for s in samples)
    batcher = DynamicBatcher(max_seconds=30.0, buffer_size=50)
    batcher.set_epoch(1)
    first = [[s["key"] for s in b] for b in batcher(iter(samples))]
    batcher.set_epoch(1)
    assert [[s["key"] for s in b] for b in batcher(iter(samples))] == first


def test_without_shuffle_batches_come_sorted_by_length() -> None:
    batcher = DynamicBatcher(max_seconds=30.0, buffer_size=1000, shuffle=False)
    batches = list(batcher(iter(_samples(100))))
    durations = [s["duration"] for b in batches for s in b]
    assert durations == sorted(durations)
    again = DynamicBatcher(max_seconds=30.0, buffer_size=1000, shuffle=False, seed=5)
    again.set_epoch(3)
    assert list(again(iter(_samples(100)))) == batches


def test_min_batch_size_drops_small_batches_and_does_not_count_them() -> None:
    samples = [
        {"key": "a", "duration": 1.0},
        {"key": "b", "duration": 1.0},
        {"key": "c", "duration": 3.0},
    ]
    batcher = DynamicBatcher(max_seconds=3.0, buffer_size=10, shuffle=False, min_batch_size=2)
    assert [[s["key"] for s in b] for b in batcher(iter(samples))] == [["a", "b"]]
    assert batcher.real_seconds == 2.0 and batcher.padded_seconds == 2.0


def test_empty_stream_gives_no_batches() -> None:
    assert list(DynamicBatcher()(iter([]))) == []


@pytest.mark.parametrize("kwargs", [{"max_seconds": 0}, {"max_batch_size": 0}, {"buffer_size": 0}])
def test_invalid_budgets_are_rejected(kwargs) -> None:
    with pytest.raises(ValueError, match="DynamicBatcher needs"):
        DynamicBatcher(**kwargs)


def test_pad_sequences() -> None:
    floats = pad_sequences([np.ones(3, dtype=np.float32), np.ones(1, dtype=np.float64)], 0.0)
    assert floats.dtype == torch.float32
    assert floats.tolist() == [[1, 1, 1], [1, 0, 0]]
    ints = pad_sequences([[5], [6, 7, 8]], -1)
    assert ints.dtype == torch.long and ints.tolist() == [[5, -1, -1], [6, 7, 8]]
    assert pad_sequences([], 0.0).shape == (0, 0)


def test_collate_pads_speech_with_zero_and_text_with_ignore_id() -> None:
    tokenizer = CharTokenizer.from_texts(["AB C"])
    batch = [
        {"key": "x", "text": "AB C", "audio": np.full(5, 0.5, dtype=np.float32)},
        {"key": "y", "text": "B", "audio": np.full(2, -0.5, dtype=np.float32)},
        {"key": "z", "text": "", "audio": np.full(3, 0.25, dtype=np.float32)},
    ]
    out = Collate(tokenize=tokenizer.encode)(batch)
    assert out["keys"] == ["x", "y", "z"] and out["texts"] == ["AB C", "B", ""]
    assert out["speech"].dtype == torch.float32 and out["speech"].shape == (3, 5)
    assert out["speech"][1].tolist() == [-0.5, -0.5, 0, 0, 0]
    assert out["speech_lengths"].tolist() == [5, 2, 3]
    a, b, c, space = (tokenizer.token_list.index(t) for t in ("A", "B", "C", "<space>"))
    assert out["text"].dtype == torch.long
    assert out["text"].tolist() == [[a, b, space, c], [b, -1, -1, -1], [-1, -1, -1, -1]]
    assert out["text_lengths"].tolist() == [4, 1, 0]
    other = Collate(tokenize=tokenizer.encode, ignore_id=-100)(batch)
    assert other["text"][1].tolist() == [b, -100, -100, -100]


def test_collate_without_tokenizer_has_no_text_tensor() -> None:
    out = Collate()([{"key": "x", "text": "HI", "audio": np.ones(4, dtype=np.float32)}])
    assert "text" not in out and "text_lengths" not in out
    assert out["speech"].shape == (1, 4)


def test_map_stage_lifts_a_function() -> None:
    stage = map_stage(lambda x: x * 2)
    assert list(stage(iter([1, 2, 3]))) == [2, 4, 6]


@pytest.mark.parametrize("buffer_size", [1, 50, 1000])
@pytest.mark.parametrize("min_batch_size", [1, 3])
def test_estimate_batches_is_exact_without_shuffling(buffer_size, min_batch_size) -> None:
    samples = _samples(400)
    batcher = DynamicBatcher(
        max_seconds=60.0, max_batch_size=10, buffer_size=buffer_size, shuffle=False,
        min_batch_size=min_batch_size,
    )
    estimate = batcher.estimate_batches([s["duration"] for s in samples])
    assert estimate == len(list(batcher(iter(samples))))


def test_estimate_batches_is_close_with_shuffling() -> None:
    samples = _samples(2000)
    batcher = DynamicBatcher(max_seconds=60.0, buffer_size=500, shuffle=True)
    estimate = batcher.estimate_batches([s["duration"] for s in samples])
    actual = len(list(batcher(iter(samples))))
    assert abs(actual - estimate) <= 0.05 * estimate


def test_unsorted_batches_are_the_random_baseline() -> None:
    samples = _samples(1000)
    bucketed = DynamicBatcher(max_seconds=60.0, buffer_size=1000, seed=3)
    unsorted = DynamicBatcher(max_seconds=60.0, buffer_size=1000, seed=3, sort_by_length=False)
    assert Counter(_keys(list(bucketed(iter(samples))))) == Counter(s["key"] for s in samples)
    batches = list(unsorted(iter(samples)))
    assert Counter(_keys(batches)) == Counter(s["key"] for s in samples)
    # arrival order is kept inside each batch
    assert all(_keys([b]) == sorted(_keys([b])) for b in batches)
    assert bucketed.padding_ratio < 0.1 < 0.3 < unsorted.padding_ratio


# --- length curriculum (shortest_first_epochs) ---


def _run(batcher: DynamicBatcher, samples: list[dict], epoch: int) -> list[list[dict]]:
    batcher.set_epoch(epoch)
    return list(batcher(iter(samples)))


def test_shortest_first_epochs_order_each_buffer_by_length_then_shuffle() -> None:
    samples = _samples(300)
    batcher = DynamicBatcher(max_seconds=30.0, buffer_size=100, shortest_first_epochs=2)
    for epoch in (0, 1):
        assert batcher.shortest_first
        batches = _run(batcher, samples, epoch)
        # per buffer of 100 samples, the batches' longest utterances never shrink, beyond
        # the 0.2 s length jitter that mixes near-equal lengths
        per_buffer: list[list[float]] = [[]]
        seen = 0
        for batch in batches:
            per_buffer[-1].append(max(s["duration"] for s in batch))
            seen += len(batch)
            if seen % 100 == 0:
                per_buffer.append([])
        for longest in filter(None, per_buffer):
            assert all(b >= a - 0.2 for a, b in zip(longest, longest[1:], strict=False))
            assert longest[0] < 3.0 and longest[-1] > 10.0
    shuffled = _run(batcher, samples, 2)
    assert not batcher.shortest_first
    longest = [max(s["duration"] for s in b) for b in shuffled[: len(shuffled) // 3]]
    assert longest != sorted(longest)


def test_curriculum_keeps_the_batches_and_their_count_only_the_order_changes() -> None:
    """In one buffer the batches are those of a shuffled epoch (over several, the length
    jitter of later buffers draws other numbers, as any other epoch would)."""
    samples = _samples(300)
    for epoch in (0, 3):
        plain = _run(DynamicBatcher(max_seconds=30.0, buffer_size=300), samples, epoch)
        sorted_ = _run(
            DynamicBatcher(max_seconds=30.0, buffer_size=300, shortest_first_epochs=1),
            samples, epoch,
        )
        assert Counter(tuple(_keys([b])) for b in plain) == Counter(
            tuple(_keys([b])) for b in sorted_
        )
        assert (plain == sorted_) is (epoch == 3)
    # deterministic per (seed, epoch): a resumed run re-reads the same sequence
    first = DynamicBatcher(max_seconds=30.0, buffer_size=120, shortest_first_epochs=1)
    second = DynamicBatcher(max_seconds=30.0, buffer_size=120, shortest_first_epochs=1)
    batches = _run(first, samples, 0)
    assert batches == _run(second, samples, 0)
    assert sorted(_keys(batches)) == sorted(s["key"] for s in samples)
    assert abs(len(batches) - first.estimate_batches([s["duration"] for s in samples])) <= 3


def test_curriculum_leaves_unshuffled_batches_alone() -> None:
    samples = _samples(100)
    plain = _run(DynamicBatcher(max_seconds=30.0, shuffle=False), samples, 0)
    curriculum = DynamicBatcher(max_seconds=30.0, shuffle=False, shortest_first_epochs=5)
    assert _run(curriculum, samples, 0) == plain and not curriculum.shortest_first


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shortest_first_epochs": -1}, r"shortest_first_epochs=-1 must be >= 0"),
        ({"shortest_first_epochs": 1, "sort_by_length": False}, r"needs sort_by_length=True"),
    ],
)
def test_bad_curriculum_options_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DynamicBatcher(**kwargs)
