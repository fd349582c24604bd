from __future__ import annotations

import pytest
import torch
from espnet_model.decoder import TransformerDecoder

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
        assert [tuple(c.shape) for c in cache] == [(3, 2, 2, position + 1, 8)] * 2
        torch.testing.assert_close(logp, full[:, position], atol=1e-5, rtol=1e-5)
    # Rows reordered (a beam search's pruning): the cache follows its rows; a stepper
    # built anew carries on from it.
    order = torch.tensor([2, 0, 1])
    cache = [c[order] for c in cache]
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
