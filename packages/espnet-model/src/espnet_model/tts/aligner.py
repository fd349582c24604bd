"""A small CTC aligner over the TTS log-mel, and token durations by forced alignment.

FastSpeech2 needs frames per token. Instead of an external aligner, a recipe trains
this model (a few minutes on a CPU) on the same audio and tokens, then
:func:`durations` force-aligns each utterance (``torchaudio.functional.forced_align``)
and turns the path into whole frames per token: a token owns the frames from its
first aligned frame up to the next token's first frame (so blank frames go to the
token before them; leading blanks go to the first token). The durations sum to the
mel frame count the TTS model computes from the same audio, because the aligner uses
the same :class:`~espnet_model.tts.features.LogMelFbank` settings
(``feats_extract_conf``) and keeps every frame (no subsampling).

Network: log-mel -> per-utterance mean/variance normalisation -> ``conv_layers`` 1-D
convolutions (ReLU, LayerNorm, dropout) -> optionally a bidirectional LSTM -> :class:`CTC`.
By default there is no LSTM: with only the convolutions' receptive field (4 layers of
kernel 5: 17 frames) a CTC spike can only sit where its token's acoustics are, while a
bidirectional LSTM is free to emit a token frames away from it (on a one-utterance
overfit test it put all spikes at the end; the convolutions found every boundary within
3 frames). It is also the fastest: about 1 s of a loaded 2-core CPU per 80 s of
22.05 kHz audio for a training step (hop 256), i.e. ~2 minutes per 2.5 h epoch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torchaudio
from torch import nn

from espnet_model._checks import check_positive
from espnet_model.ctc import CTC
from espnet_model.dropout import Dropout
from espnet_model.feedforward import layer_norm
from espnet_model.mask import pad_mask_or_none, zero_padded
from espnet_model.normalize import UtteranceMVN
from espnet_model.tts.builder import _check_keys, _closest
from espnet_model.tts.features import LogMelFbank


class CTCAligner(nn.Module):
    """Log-mel CTC model at the mel frame rate (see the module docstring).

    Args:
        vocab_size: token list size (``<blank>`` = 0).
        feats_extract: the TTS model's log-mel extractor settings.
        conv_layers / conv_channels / kernel_size: the convolution stack.
        rnn_units: LSTM units per direction (0: no LSTM).
        dropout_rate: dropout after each layer.
    """

    def __init__(
        self,
        vocab_size: int,
        feats_extract: LogMelFbank,
        conv_layers: int = 4,
        conv_channels: int = 128,
        kernel_size: int = 5,
        rnn_units: int = 0,
        dropout_rate: float = 0.1,
    ) -> None:
        super().__init__()
        check_positive("aligner_conf.conv_layers", conv_layers)
        check_positive("aligner_conf.conv_channels", conv_channels)
        check_positive("aligner_conf.rnn_units", rnn_units, allow_zero=True)
        if kernel_size % 2 != 1:
            raise ValueError(f"aligner_conf.kernel_size={kernel_size} must be odd (e.g. {kernel_size + 1})")
        self.feats_extract = feats_extract
        self.normalize = UtteranceMVN(norm_means=True, norm_vars=True)
        self.convs = nn.ModuleList(
            nn.Conv1d(feats_extract.n_mels if i == 0 else conv_channels, conv_channels, kernel_size, padding=kernel_size // 2)
            for i in range(conv_layers)
        )
        self.norms = nn.ModuleList(layer_norm(conv_channels) for _ in range(conv_layers))
        self.dropout = Dropout(dropout_rate)
        self.rnn = nn.LSTM(conv_channels, rnn_units, batch_first=True) if rnn_units else None
        self.rnn_reverse = nn.LSTM(conv_channels, rnn_units, batch_first=True) if rnn_units else None
        self.ctc = CTC(vocab_size, 2 * rnn_units if rnn_units else conv_channels)
        self.vocab_size = vocab_size
        self.sample_rate: int = feats_extract.fs

    def encode(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, S)`` waveforms -> hidden frames ``(B, T, D)`` and ``T`` lengths (every mel frame)."""
        feats, lengths = self.feats_extract(speech, speech_lengths)
        x, lengths = self.normalize(feats, lengths)
        pad = pad_mask_or_none(lengths, x.size(1))
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = zero_padded(x, pad)
            x = self.dropout(norm(torch.relu(conv(x.transpose(1, 2)).transpose(1, 2))))
        if self.rnn is not None and self.rnn_reverse is not None:
            # two directions as two LSTMs over the padded batch, the second over each utterance
            # reversed within its own length: exact for every length, and without packed
            # sequences (whose backward pass on a CPU costs far more than the LSTM itself)
            x = zero_padded(x, pad)
            flip = _reverse_index(lengths, x.size(1))
            forward_out, _ = self.rnn(x)
            backward_out, _ = self.rnn_reverse(x.gather(1, flip.expand_as(x)))
            x = self.dropout(torch.cat([forward_out, backward_out.gather(1, flip.expand_as(backward_out))], -1))
        return x, lengths

    def forward(
        self, text: torch.Tensor, text_lengths: torch.Tensor, speech: torch.Tensor, speech_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
        """The training contract: CTC loss (summed over an utterance's frames, mean over the batch)."""
        hs, hlens = self.encode(speech, speech_lengths)
        loss = self.ctc(hs, hlens, text, text_lengths)
        frames = hlens.sum().clamp(min=1)
        return loss, {"loss": loss.detach(), "loss_per_frame": loss.detach() * hs.size(0) / frames}, text.size(0)

    @torch.no_grad()
    def log_probs(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame log-probabilities ``(B, T, V)`` and lengths (evaluation mode, no dropout)."""
        hs, hlens = self.encode(speech, speech_lengths)
        return self.ctc.log_softmax(hs), hlens


def _reverse_index(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """``(B, width, 1)`` gather index that reverses frames ``[0, length)`` of each row (padding stays)."""
    t = torch.arange(width, device=lengths.device).unsqueeze(0)
    n = lengths.to(t.device).unsqueeze(1)
    return torch.where(t < n, n - 1 - t, t).unsqueeze(-1)


def path_durations(log_probs: torch.Tensor, tokens: torch.Tensor) -> list[int]:
    """Frames per token of ``tokens`` ``(L,)`` from one utterance's ``log_probs`` ``(T, V)``.

    Raises ``ValueError`` when the utterance has too few frames for its tokens (CTC
    needs one frame per token, plus one between repeated tokens).
    """
    frames, n = log_probs.size(0), tokens.numel()
    if n == 0:
        raise ValueError("cannot align empty text")
    if int(tokens.min()) <= 0 or int(tokens.max()) >= log_probs.size(1):
        raise ValueError(f"token ids must be in [1, {log_probs.size(1)}) (0 is <blank>); got {tokens.tolist()[:10]}...")
    repeats = int((tokens[1:] == tokens[:-1]).sum()) if n > 1 else 0
    if frames < n + repeats:
        raise ValueError(
            f"audio too short to align: {frames} frames for {n} tokens ({repeats} repeated pairs need a "
            f"blank between them); the utterance needs at least {n + repeats} frames"
        )
    path, _ = torchaudio.functional.forced_align(
        log_probs.float().unsqueeze(0).cpu(), tokens.view(1, -1).int().cpu(), blank=0
    )
    path = path[0]
    # first frame of each token: a non-blank frame whose label differs from the frame before
    # (or follows a blank); forced_align emits the targets in order, so the k-th start is token k
    prev = torch.cat([path.new_zeros(1), path[:-1]])
    starts = ((path != 0) & (path != prev)).nonzero().view(-1)
    if starts.numel() != n:  # defensive: forced_align's path always holds every target once
        raise RuntimeError(f"forced alignment found {starts.numel()} token starts for {n} tokens")
    bounds = torch.cat([starts.new_zeros(1), starts[1:], starts.new_tensor([frames])])
    return (bounds[1:] - bounds[:-1]).tolist()


def durations(model: CTCAligner, speech: torch.Tensor, text: torch.Tensor) -> list[int]:
    """Mel frames per token of ``text`` ``(L,)`` for one waveform ``speech`` ``(S,)``.

    The sum is the mel frame count (``S // hop_length + 1``). ``model`` is put in
    evaluation mode. Raises ``ValueError`` for empty text or too short audio.
    """
    return batch_durations(model, speech.view(1, -1), torch.tensor([speech.numel()]), text.view(1, -1),
                           torch.tensor([text.numel()]))[0]  # fmt: skip


def batch_durations(
    model: CTCAligner,
    speech: torch.Tensor,
    speech_lengths: torch.Tensor,
    text: torch.Tensor,
    text_lengths: torch.Tensor,
) -> list[list[int]]:
    """:func:`durations` for a padded batch (one network pass, one alignment per utterance)."""
    model.eval()
    log_probs, lengths = model.log_probs(speech, speech_lengths)
    return [
        path_durations(log_probs[i, : int(lengths[i])], text[i, : int(text_lengths[i])])
        for i in range(speech.size(0))
    ]


ALIGNER_KEYS = ("conv_layers", "conv_channels", "kernel_size", "rnn_units", "dropout_rate", "feats_extract_conf")


def build_aligner(conf: Mapping[str, Any], vocab_size: int, n_mels: int | None = None) -> CTCAligner:
    """A :class:`CTCAligner` from ``conf`` (its arguments plus ``feats_extract_conf``: pass the
    TTS model block's, so the durations fit its frames). ``n_mels``, when given, must agree
    with ``feats_extract_conf`` (and is its default)."""
    if not isinstance(conf, Mapping):
        raise ValueError(f"aligner conf must be a mapping, got {type(conf).__name__}")
    for key in conf:
        if key not in ALIGNER_KEYS:
            raise ValueError(f"unknown aligner key {key!r}{_closest(str(key), ALIGNER_KEYS)}; valid keys: {', '.join(ALIGNER_KEYS)}")
    feats_conf = dict(conf.get("feats_extract_conf") or {})
    _check_keys("feats_extract_conf", LogMelFbank, feats_conf)
    if n_mels is not None:
        if feats_conf.setdefault("n_mels", n_mels) != n_mels:
            raise ValueError(f"n_mels={n_mels} differs from feats_extract_conf.n_mels={feats_conf['n_mels']}")
    kwargs = {k: v for k, v in conf.items() if k != "feats_extract_conf"}
    return CTCAligner(vocab_size, LogMelFbank(**feats_conf), **kwargs)
