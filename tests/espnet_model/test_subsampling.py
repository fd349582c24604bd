from __future__ import annotations

import pytest
import torch
from espnet_model.subsampling import Conv2dSubsampling, min_input_frames, subsampled_lengths


@pytest.mark.parametrize(
    ("layer", "formula"),
    [
        ("conv2d", lambda t: ((t - 1) // 2 - 1) // 2),
        ("conv2d6", lambda t: ((t - 1) // 2 - 2) // 3),
        ("conv2d8", lambda t: (((t - 1) // 2 - 1) // 2 - 1) // 2),
    ],
)
def test_length_formula_matches_output(layer: str, formula) -> None:  # type: ignore[no-untyped-def]
    sub = Conv2dSubsampling(20, 8, layer)  # type: ignore[arg-type]
    for t in (min_input_frames(layer), 23, 40, 101):  # type: ignore[arg-type]
        out, lengths = sub(torch.randn(1, t, 20), torch.tensor([t]))
        assert out.shape == (1, formula(t), 8)
        assert lengths.item() == formula(t) == subsampled_lengths(torch.tensor(t), layer).item()  # type: ignore[arg-type]


def test_errors() -> None:
    with pytest.raises(ValueError, match="input_layer='conv4'"):
        Conv2dSubsampling(80, 8, "conv4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 7"):
        Conv2dSubsampling(80, 8)(torch.randn(1, 5, 80), torch.tensor([5]))


@pytest.mark.parametrize("layer", ["conv2d", "conv2d6"])
def test_layouts_agree(layer: str) -> None:
    # fp32 training runs the convolutions in plain layout, inference in channels_last.
    sub = Conv2dSubsampling(20, 8, layer)
    x = torch.randn(2, 40, 20)
    lengths = torch.tensor([40, 31])
    trained, _ = sub(x, lengths)
    with torch.no_grad():
        inferred, _ = sub(x, lengths)
    torch.testing.assert_close(trained.detach(), inferred, atol=1e-5, rtol=1e-5)
    trained.sum().backward()
    assert sub.conv[0].weight.grad is not None and sub.conv[0].weight.grad.shape == (8, 1, 3, 3)


@pytest.mark.parametrize("layer", ["conv2d", "conv2d6"])
def test_ragged_batch_is_convolved_per_utterance_with_the_same_result(
    layer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 45% of this batch is padding (above RAGGED_PADDING); one utterance is shorter than
    # the layer's minimum and is convolved over the padding it needs, as in a whole batch.
    sub = Conv2dSubsampling(20, 8, layer)
    x = torch.randn(3, 60, 20)
    lengths = torch.tensor([60, 25, 5])
    valid = (torch.arange(subsampled_lengths(torch.tensor(60), layer))[None]
             < subsampled_lengths(lengths, layer).clamp(min=1)[:, None])[..., None]

    def run() -> tuple[torch.Tensor, list[torch.Tensor]]:
        sub.zero_grad()
        out, out_lengths = sub(x, lengths)
        out.masked_fill(~valid, 0.0).square().sum().backward()
        assert out_lengths.tolist() == subsampled_lengths(lengths, layer).clamp(min=1).tolist()
        return out.detach().masked_fill(~valid, 0.0), [p.grad.clone() for p in sub.parameters()]

    ragged, ragged_grads = run()
    monkeypatch.setattr("espnet_model.packed.RAGGED_PADDING", 1.0)  # whole batch
    whole, whole_grads = run()
    assert ragged.shape == whole.shape
    torch.testing.assert_close(ragged, whole, atol=1e-5, rtol=1e-5)
    for a, b in zip(ragged_grads, whole_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
