"""The CTC aligner: training contract, and durations from forced alignment."""

from __future__ import annotations

import pytest
import torch
from espnet_model.tts import build_aligner, durations
from espnet_model.tts.aligner import batch_durations, path_durations

FEATS = {"fs": 16000, "n_fft": 512, "hop_length": 128, "n_mels": 20, "fmin": 0, "fmax": 8000}


def _log_probs(labels: list[int], vocab: int = 6) -> torch.Tensor:
    """Frame posteriors that make ``labels`` the only likely path."""
    return torch.log_softmax(10.0 * torch.nn.functional.one_hot(torch.tensor(labels), vocab).float(), -1)


def test_durations_of_a_known_path() -> None:
    #         frame: 0  1  2  3  4  5  6  7  8  9 10 11
    labels = [0, 0, 3, 3, 0, 4, 4, 4, 0, 0, 3, 0]
    d = path_durations(_log_probs(labels), torch.tensor([3, 4, 3]))
    # leading blanks go to the first token; blanks after a token stay with it
    assert d == [5, 5, 2] and sum(d) == len(labels)


def test_repeated_tokens_are_split_at_the_blank() -> None:
    d = path_durations(_log_probs([2, 2, 0, 2, 5, 5]), torch.tensor([2, 2, 5]))
    assert d == [3, 1, 2]


def test_every_frame_can_be_a_token() -> None:
    assert path_durations(_log_probs([1, 2, 3]), torch.tensor([1, 2, 3])) == [1, 1, 1]


@pytest.mark.parametrize(
    ("labels", "tokens", "message"),
    [
        ([0, 2, 2], [2, 2, 2], r"audio too short to align: 3 frames for 3 tokens \(2 repeated pairs"),
        ([0, 0], [], "cannot align empty text"),
        ([0, 1], [0], r"token ids must be in \[1, 6\)"),
    ],
)
def test_unalignable_input_is_refused(labels: list[int], tokens: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        path_durations(_log_probs(labels), torch.tensor(tokens, dtype=torch.long))


def test_aligner_contract_and_durations_sum_to_the_mel_frames() -> None:
    torch.manual_seed(0)
    model = build_aligner({"conv_layers": 2, "conv_channels": 16, "rnn_units": 8, "feats_extract_conf": FEATS}, 8, n_mels=20)
    speech = torch.randn(2, 4000) * 0.1
    lengths = torch.tensor([4000, 2600])
    text = torch.tensor([[3, 4, 4, 5], [2, 6, 0, 0]])
    text_lengths = torch.tensor([4, 2])
    loss, stats, weight = model(text, text_lengths, speech, lengths)
    assert loss.dim() == 0 and weight == 2 and set(stats) == {"loss", "loss_per_frame"}
    batch = batch_durations(model, speech, lengths, text, text_lengths)
    assert [sum(d) for d in batch] == (lengths // 128 + 1).tolist() and [len(d) for d in batch] == [4, 2]
    assert durations(model, speech[1, :2600], text[1, :2]) == batch[1]  # padding changes nothing
    assert model.sample_rate == 16000


def test_aligner_learns_on_a_tiny_overfit() -> None:
    torch.manual_seed(0)
    model = build_aligner({"conv_layers": 3, "conv_channels": 32, "rnn_units": 0, "dropout_rate": 0.0,
                           "feats_extract_conf": FEATS}, 8)  # fmt: skip
    g = torch.Generator().manual_seed(1)
    # three "phones": noise bursts of different colour, each ~0.1 s
    tones = [torch.sin(torch.arange(1600) * f) for f in (0.3, 1.1, 2.5)]
    speech = torch.cat([tones[0], tones[1], tones[2], tones[1]]).unsqueeze(0) + 0.01 * torch.randn(1, 6400, generator=g)
    text, text_lengths, lengths = torch.tensor([[3, 4, 5, 4]]), torch.tensor([4]), torch.tensor([6400])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(40):
        model.train()
        loss, _, _ = model(text, text_lengths, speech, lengths)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else float(loss.detach())
    assert float(loss.detach()) < 0.5 * first
    d = durations(model, speech[0], text[0])
    starts = torch.tensor(d).cumsum(0) - torch.tensor(d)
    assert sum(d) == 51 and all(abs(int(s) - 12.5 * i) <= 5 for i, s in enumerate(starts[1:], start=1))


def test_bad_aligner_conf() -> None:
    with pytest.raises(ValueError, match=r"unknown aligner key 'rnn_unit' \(did you mean 'rnn_units'\?\)"):
        build_aligner({"rnn_unit": 4}, 8)
    with pytest.raises(ValueError, match=r"n_mels=40 differs from feats_extract_conf.n_mels=20"):
        build_aligner({"feats_extract_conf": FEATS}, 8, n_mels=40)
    with pytest.raises(ValueError, match=r"aligner_conf.kernel_size=4 must be odd"):
        build_aligner({"kernel_size": 4}, 8)
