from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from espnet_model.encoders import ConformerEncoder, EBranchformerEncoder, TransformerEncoder
from torch import nn

SMALL = dict(output_size=16, attention_heads=2, linear_units=32, num_blocks=2)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models run faster single-threaded, especially on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _encoders() -> list[nn.Module]:
    return [
        ConformerEncoder(20, cnn_module_kernel=5, **SMALL),  # type: ignore[arg-type]
        TransformerEncoder(20, **SMALL),  # type: ignore[arg-type]
        EBranchformerEncoder(20, cgmlp_linear_units=32, cgmlp_conv_kernel=5, **SMALL),  # type: ignore[arg-type]
    ]


@pytest.mark.parametrize("encoder", _encoders(), ids=lambda e: type(e).__name__)
def test_shapes_and_padding_invariance(encoder: nn.Module) -> None:
    encoder.eval()
    assert encoder.output_size() == 16
    long = torch.randn(1, 61, 20)
    short = torch.randn(1, 37, 20)
    alone, alone_len = encoder(short, torch.tensor([37]))
    assert alone.shape == (1, 8, 16) and alone_len.tolist() == [8]
    batch = torch.cat([torch.nn.functional.pad(short, (0, 0, 0, 24)), long])
    out, out_len = encoder(batch, torch.tensor([37, 61]))
    assert out.shape == (2, 14, 16) and out_len.tolist() == [8, 14]
    torch.testing.assert_close(out[0, :8], alone[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("encoder", _encoders(), ids=lambda e: type(e).__name__)
def test_backward_in_train_mode(encoder: nn.Module) -> None:
    encoder.train()
    out, _ = encoder(torch.randn(2, 30, 20), torch.tensor([30, 25]))
    out.sum().backward()
    assert all(p.grad is not None for p in encoder.parameters() if p.requires_grad)


def test_bad_conformer_options_name_the_key() -> None:
    with pytest.raises(ValueError, match="rel_pos_type='old'"):
        ConformerEncoder(20, rel_pos_type="old")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pos_enc_layer_type='legacy_rel_pos'"):
        ConformerEncoder(20, pos_enc_layer_type="legacy_rel_pos", **SMALL)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cnn_module_kernel=4"):
        ConformerEncoder(20, cnn_module_kernel=4, **SMALL)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="attention_heads=3"):
        TransformerEncoder(20, output_size=16, attention_heads=3)


def test_legacy_relative_positions_run_and_stay_batch_invariant() -> None:
    """``rel_pos_type: legacy`` (ESPnet2's default for conformers), outputs checked vs ESPnet2
    in test_espnet2.py; here: shapes and that padding does not leak."""
    encoder = ConformerEncoder(20, rel_pos_type="legacy", **SMALL).eval()  # type: ignore[arg-type]
    xs = torch.randn(2, 60, 20)
    out, out_len = encoder(xs, torch.tensor([40, 60]))
    alone, _ = encoder(xs[:1, :40], torch.tensor([40]))
    assert out.shape[0] == 2 and out_len.tolist() == [9, 14]
    # Legacy positions depend on the padded length (as in ESPnet), so only shapes and
    # finiteness are batch-independent here.
    assert alone.shape == (1, 9, out.shape[-1]) and torch.isfinite(out).all()
