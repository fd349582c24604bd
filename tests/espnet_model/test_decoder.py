from __future__ import annotations

import pytest
import torch
from espnet_model._step import spare_nodes
from espnet_model.decoder import StepCache, TransformerDecoder

Case = tuple[TransformerDecoder, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _decoder_case(normalize_before: bool) -> Case:
    """A 2-layer decoder, a padded memory batch, 5-token prefixes, teacher-forced log-probs."""
    dec = TransformerDecoder(
        11, 16, attention_heads=2, linear_units=32, num_blocks=2, normalize_before=normalize_before
    ).eval()
    memory = torch.randn(3, 9, 16)
    mem_lens = torch.tensor([9, 6, 4])
    ys = torch.randint(1, 11, (3, 5))
    full = dec(memory, mem_lens, ys, torch.full((3,), 5)).log_softmax(-1)
    mem_mask = (torch.arange(9)[None] < mem_lens[:, None]).unsqueeze(1)
    return dec, memory, mem_lens, mem_mask, ys, full


@pytest.mark.parametrize("normalize_before", [True, False])
def test_one_step_with_cache_matches_full_forward(normalize_before: bool) -> None:
    dec, memory, mem_lens, mem_mask, ys, full = _decoder_case(normalize_before)
    cache = None
    for step in range(1, 6):
        logp, cache = dec.forward_one_step(ys[:, :step], memory, mem_mask, cache)
        assert logp.shape == (3, 11) and len(cache) == 2
        torch.testing.assert_close(logp, full[:, step - 1], atol=1e-5, rtol=1e-5)
        no_cache, _ = dec.forward_one_step(ys[:, :step], memory, mem_mask, None)
        torch.testing.assert_close(no_cache, logp, atol=1e-5, rtol=1e-5)
        projected, _ = dec.forward_one_step(
            ys[:, :step], memory, mem_mask, None, memory_kv=dec.memory_kv(memory)
        )
        torch.testing.assert_close(projected, logp, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("normalize_before", [True, False])
def test_incremental_step_matches_full_forward(normalize_before: bool) -> None:
    dec, memory, mem_lens, mem_mask, ys, full = _decoder_case(normalize_before)
    memory_kv = dec.memory_kv(memory)
    stepper = dec.incremental()  # weights laid out once, as a search uses it
    cache = None
    for position in range(5):
        logp, cache = stepper.step(ys[:, position], position, memory_kv, mem_mask, cache)
        assert isinstance(cache, StepCache) and len(cache) == 3
        # One node per position on each row's path; the store holds every row's nodes.
        assert cache.gathered_paths().sum(1).tolist() == [position + 1] * 3
        assert cache.store.size == 3 * (position + 1)
        torch.testing.assert_close(logp, full[:, position], atol=1e-5, rtol=1e-5)
    # Rows reordered (a beam search's pruning): the cache follows its rows; a stepper
    # built anew carries on from it.
    order = torch.tensor([2, 0, 1])
    cache = cache.select(order)
    nxt = torch.randint(1, 11, (3, 1))
    logp, _ = dec.incremental().step(
        nxt[:, 0], 5, [(k[order], v[order]) for k, v in memory_kv], mem_mask[order], cache
    )
    whole = dec(memory[order], mem_lens[order], torch.cat([ys[order], nxt], 1), torch.full((3,), 6))
    torch.testing.assert_close(logp, whole[:, -1].log_softmax(-1), atol=1e-5, rtol=1e-5)


def test_padded_targets_do_not_change_valid_positions() -> None:
    dec = TransformerDecoder(11, 16, attention_heads=2, linear_units=32, num_blocks=1).eval()
    memory = torch.randn(1, 7, 16)
    ys = torch.randint(1, 11, (1, 3))
    short = dec(memory, torch.tensor([7]), ys, torch.tensor([3]))
    padded = dec(
        memory, torch.tensor([7]), torch.cat([ys, torch.full((1, 2), -1)], 1), torch.tensor([3])
    )
    torch.testing.assert_close(padded[:, :3], short, atol=1e-5, rtol=1e-5)


def _expected(
    dec: TransformerDecoder, memory: torch.Tensor, mem_lens: torch.Tensor, ys: torch.Tensor
) -> torch.Tensor:
    """The full forward's log-probabilities after the last token of each row of ``ys``."""
    lengths = torch.full((ys.size(0),), ys.size(1))
    return dec(memory, mem_lens, ys, lengths)[:, -1].log_softmax(-1)


@pytest.mark.parametrize("normalize_before", [True, False])
def test_incremental_steps_follow_reordered_and_repeated_rows(normalize_before: bool) -> None:
    """A beam search's pattern over enough steps to fill the store (compacted then): rows
    reordered and repeated after every step, some selections composed twice; the memory
    rows follow their prefixes."""
    dec, memory, mem_lens, mem_mask, _, _ = _decoder_case(normalize_before)
    torch.manual_seed(3)
    n = 4
    utt = torch.tensor([0, 1, 2, 1])  # each row's utterance
    memory_kv = dec.memory_kv(memory)
    stepper = dec.incremental()
    ys = torch.full((n, 1), 10)
    cache, stores = None, set()
    steps = spare_nodes(n) // n + 4  # past the first store's capacity
    for position in range(steps):
        kv = [(k[utt], v[utt]) for k, v in memory_kv]
        logp, cache = stepper.step(ys[:, -1], position, kv, mem_mask[utt], cache)
        stores.add(id(cache.store))
        if position % 9 == 0 or position == steps - 1:
            torch.testing.assert_close(
                logp, _expected(dec, memory[utt], mem_lens[utt], ys), atol=1e-5, rtol=1e-5
            )
        parent = torch.randint(0, n, (n,))
        ys = torch.cat([ys[parent], torch.randint(1, 10, (n, 1))], dim=1)
        utt, cache = utt[parent], cache.select(parent)
        if position % 5 == 2:  # two selections before a step compose
            twice = torch.randperm(n)
            ys, utt, cache = ys[twice], utt[twice], cache.select(twice)
        assert len(cache) == n
    assert len(stores) > 1  # the full store was compacted into a new one
    # Only the nodes some row still used were kept: far fewer than n per position.
    assert cache.store.size < n * steps


def test_a_cache_stepped_from_twice_gives_independent_caches() -> None:
    dec, memory, mem_lens, mem_mask, ys, _ = _decoder_case(True)
    memory_kv = dec.memory_kv(memory)
    stepper = dec.incremental()
    cache = None
    for position in range(3):
        _, cache = stepper.step(ys[:, position], position, memory_kv, mem_mask, cache)
    assert cache is not None
    picked = cache.select(torch.tensor([1, 1, 0]))
    kv = [(k[[1, 1, 0]], v[[1, 1, 0]]) for k, v in memory_kv]
    first, cache_a = stepper.step(ys[[1, 1, 0], 3], 3, kv, mem_mask[[1, 1, 0]], picked)
    stepper.step(torch.tensor([4, 5, 6]), 3, kv, mem_mask[[1, 1, 0]], picked)  # another token
    again, cache_b = stepper.step(ys[[1, 1, 0], 3], 3, kv, mem_mask[[1, 1, 0]], picked)
    expected = _expected(dec, memory[[1, 1, 0]], mem_lens[[1, 1, 0]], ys[[1, 1, 0], :4])
    torch.testing.assert_close(first, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again, expected, atol=1e-5, rtol=1e-5)
    assert cache_a.store is not cache_b.store  # the later calls could not append in place
    # The first cache still continues its prefixes.
    nxt, _ = stepper.step(ys[[1, 1, 0], 4], 4, kv, mem_mask[[1, 1, 0]], cache_a)
    expected = _expected(dec, memory[[1, 1, 0]], mem_lens[[1, 1, 0]], ys[[1, 1, 0]])
    torch.testing.assert_close(nxt, expected, atol=1e-5, rtol=1e-5)


def test_incremental_step_shares_a_memory_between_consecutive_rows() -> None:
    """One memory row per group of rows (a search's utterance and its beam) scores as
    the memory repeated for every row."""
    dec, memory, mem_lens, mem_mask, ys, _ = _decoder_case(True)
    memory_kv = dec.memory_kv(memory)
    stepper = dec.incremental()
    group = torch.arange(3).repeat_interleave(2)  # rows 2u, 2u + 1 attend to memory u
    tokens = ys[[0, 1, 1, 2, 2, 0]]
    cache = shared_cache = None
    for position in range(5):
        repeated = [(k[group], v[group]) for k, v in memory_kv]
        logp, cache = stepper.step(tokens[:, position], position, repeated, mem_mask[group], cache)
        shared, shared_cache = stepper.step(
            tokens[:, position], position, memory_kv, mem_mask, shared_cache
        )
        torch.testing.assert_close(shared, logp, atol=1e-5, rtol=1e-5)
    expected = _expected(dec, memory[group], mem_lens[group], tokens)
    torch.testing.assert_close(shared, expected, atol=1e-5, rtol=1e-5)
