"""Log-mel filterbank frontend (Kaldi-style framing, batched).

Frames are cut without centre padding ("snip edges"), so frame ``t`` covers
samples ``[t * hop_length, t * hop_length + win_length)`` and only ever reads
valid samples of its own utterance: an utterance gets the same features
whether it is batched with longer ones or not. The number of frames is::

    feats_lengths = 1 + (max(lengths, win_length) - win_length) // hop_length

(utterances shorter than one window are zero-padded to one window).
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

from espnet_model._checks import check_positive
from espnet_model.mask import make_pad_mask


def fbank_lengths(lengths: torch.Tensor, win_length: int, hop_length: int) -> torch.Tensor:
    """Number of frames :class:`Fbank` produces for waveforms of ``lengths`` samples."""
    return 1 + (lengths.clamp(min=win_length) - win_length) // hop_length


class Fbank(nn.Module):
    """Waveform ``(B, S)`` -> log-mel features ``(B, T, n_mels)``.

    Power spectrum of a Hann-windowed frame (zero-padded to ``n_fft``) through
    an HTK mel filterbank, then ``log(mel + 1e-10)``. Padded frames are zero.

    Args:
        sample_rate: sampling rate of the input in Hz.
        n_fft: FFT size; must be ``>= win_length``.
        win_length: window length in samples (400 = 25 ms at 16 kHz).
        hop_length: frame shift in samples (160 = 10 ms at 16 kHz).
        n_mels: number of mel bins (= ``output_size``).
        fmin: lowest mel band edge in Hz.
        fmax: highest mel band edge in Hz; ``None`` means ``sample_rate / 2``.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 512,
        win_length: int = 400,
        hop_length: int = 160,
        n_mels: int = 80,
        fmin: float = 0.0,
        fmax: float | None = None,
    ) -> None:
        super().__init__()
        for key, value in (
            ("sample_rate", sample_rate),
            ("n_fft", n_fft),
            ("win_length", win_length),
            ("hop_length", hop_length),
            ("n_mels", n_mels),
        ):
            check_positive(f"frontend_conf.{key}", value)
        if win_length > n_fft:
            raise ValueError(
                f"frontend_conf.win_length={win_length} exceeds n_fft={n_fft}; "
                f"set n_fft >= win_length (e.g. n_fft={1 << (win_length - 1).bit_length()})"
            )
        fmax = float(sample_rate) / 2 if fmax is None else float(fmax)
        if not 0.0 <= fmin < fmax <= sample_rate / 2:
            raise ValueError(
                f"frontend_conf.fmin={fmin}, fmax={fmax} must satisfy "
                f"0 <= fmin < fmax <= sample_rate/2 = {sample_rate / 2}"
            )
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.output_size: int = n_mels
        fbanks = torchaudio.functional.melscale_fbanks(
            n_freqs=n_fft // 2 + 1,
            f_min=float(fmin),
            f_max=fmax,
            n_mels=n_mels,
            sample_rate=sample_rate,
            norm=None,
            mel_scale="htk",
        )
        self.register_buffer("mel_fbanks", fbanks, persistent=False)  # (n_freq, n_mels)
        window = torch.hann_window(win_length, periodic=False)
        self.register_buffer("window", window, persistent=False)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frame counts for waveforms of ``lengths`` samples."""
        return fbank_lengths(lengths, self.win_length, self.hop_length)

    def forward(
        self, speech: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if speech.dim() != 2:
            raise ValueError(
                f"speech must be (B, S) float waveforms, got shape {tuple(speech.shape)}; "
                "squeeze the channel axis of mono audio first"
            )
        speech = speech.float()
        if speech.size(1) < self.win_length:
            speech = nn.functional.pad(speech, (0, self.win_length - speech.size(1)))
        frames = speech.unfold(1, self.win_length, self.hop_length)  # (B, T, win)
        frames = frames * self.window
        spec = torch.fft.rfft(frames, n=self.n_fft)  # (B, T, n_fft // 2 + 1)
        power = spec.real.square() + spec.imag.square()
        feats = torch.log(power @ self.mel_fbanks + 1e-10)
        feats_lengths = self.output_lengths(lengths.to(speech.device))
        feats = feats.masked_fill(make_pad_mask(feats_lengths, feats.size(1)).unsqueeze(-1), 0.0)
        return feats, feats_lengths
