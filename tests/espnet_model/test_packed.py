from __future__ import annotations

import pytest
import torch
from espnet_model.encoders import ConformerEncoder
from espnet_model.packed import PackedFrames, ragged_lengths


def test_pack_unpack_split() -> None:
    packed = PackedFrames([3, 1], frames=4, device=torch.device("cpu"))
    x = torch.arange(8.0).view(2, 4, 1)
    flat = packed.pack(x)
    assert flat.squeeze(-1).tolist() == [0.0, 1.0, 2.0, 4.0]
    assert [t.squeeze(-1).tolist() for t in packed.split(flat)] == [[0.0, 1.0, 2.0], [4.0]]
    assert packed.unpack(flat).squeeze(-1).tolist() == [[0, 1, 2, 0], [4, 0, 0, 0]]


def test_only_ragged_cpu_batches_are_packed() -> None:
    cpu = torch.device("cpu")
    assert ragged_lengths(torch.tensor([10, 5]), 10, cpu) == [10, 5]  # 25% padding
    assert ragged_lengths(torch.tensor([10, 9]), 10, cpu) is None  # 5%
    assert ragged_lengths(torch.tensor([5]), 10, cpu) is None  # one utterance: nothing to skip
    assert ragged_lengths(torch.tensor([10, 5]), 10, torch.device("meta")) is None
    assert PackedFrames.if_ragged(torch.tensor([10, 9]), 10) is None
    packed = PackedFrames.if_ragged(torch.tensor([10, 5]), 10)
    assert packed is not None and packed.lengths == [10, 5]


def _outputs_and_grads(
    encoder: ConformerEncoder, xs: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    encoder.zero_grad()
    out, out_lengths = encoder(xs, lengths)
    valid = torch.cat([out[i, :n] for i, n in enumerate(out_lengths.tolist())])
    (valid * torch.linspace(-1, 1, valid.size(-1))).sum().backward()
    grads = {name: p.grad.clone() for name, p in encoder.named_parameters() if p.grad is not None}
    return valid, out_lengths, grads


@pytest.mark.parametrize("training", [False, True])
def test_packed_conformer_equals_padded(training: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    encoder = ConformerEncoder(
        20, output_size=16, attention_heads=2, linear_units=32, num_blocks=2,
        cnn_module_kernel=5, dropout_rate=0.0, positional_dropout_rate=0.0,
    ).train(training)
    xs = torch.randn(3, 80, 20)
    lengths = torch.tensor([80, 41, 26])  # outputs 19, 9, 5 frames: 42% padding
    packed = _outputs_and_grads(encoder, xs, lengths)
    monkeypatch.setattr("espnet_model.packed.RAGGED_PADDING", 1.0)  # the padded path
    padded = _outputs_and_grads(encoder, xs, lengths)
    assert packed[1].tolist() == padded[1].tolist() == [19, 9, 5]
    torch.testing.assert_close(packed[0], padded[0], atol=1e-5, rtol=1e-4)
    assert packed[2].keys() == padded[2].keys()
    for name, grad in packed[2].items():  # gradients reach ~400
        if training and name.endswith("depthwise_conv.bias"):
            # BatchNorm's batch statistics cancel this bias: its gradient is 0 up to rounding
            assert grad.abs().max() < 1e-2 and padded[2][name].abs().max() < 1e-2
            continue
        torch.testing.assert_close(grad, padded[2][name], atol=1e-4, rtol=1e-4, msg=name)
