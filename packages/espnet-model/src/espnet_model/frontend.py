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
from espnet_model.mask import pad_mask_or_none, unpadded, zero_padded


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
        feats = zero_padded(feats, pad_mask_or_none(feats_lengths, feats.size(1)))
        return feats, feats_lengths


def parse_fs(fs: int | str) -> int:
    """ESPnet2 spells sampling rates ``16000`` or ``"16k"``; return Hz as ``int``."""
    if isinstance(fs, str):
        text = fs.strip().lower()
        if text.endswith("k"):
            return int(float(text[:-1]) * 1000)
        return int(float(text))
    return int(fs)


class LogMel(nn.Module):
    """Power spectrum ``(B, T, n_fft//2+1)`` -> ``log(max(power @ melmat, 1e-10))``.

    ``melmat`` is a persistent buffer named as in ESPnet2 (``frontend.logmel.melmat``),
    so a checkpoint restores the exact matrix it was trained with. It is built with
    torchaudio's Slaney (librosa default) or HTK mel scale and Slaney area normalisation.
    """

    def __init__(
        self, fs: int, n_fft: int, n_mels: int, fmin: float, fmax: float, htk: bool
    ) -> None:
        super().__init__()
        melmat = torchaudio.functional.melscale_fbanks(
            n_freqs=n_fft // 2 + 1,
            f_min=float(fmin),
            f_max=float(fmax),
            n_mels=n_mels,
            sample_rate=fs,
            norm="slaney",
            mel_scale="htk" if htk else "slaney",
        )
        self.register_buffer("melmat", melmat)  # (n_freq, n_mels)

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        return torch.matmul(power, self.melmat).clamp(min=1e-10).log()


_WINDOWS = ("hann", "hamming", "blackman", "bartlett")


class StftFrontend(nn.Module):
    """ESPnet2's ``DefaultFrontend``: centred STFT -> power -> Slaney log-mel.

    Same arguments, defaults and state-dict keys as ESPnet2 (``frontend: default``
    there), so ESPnet2 checkpoints give the same features. With ``center=True`` each
    utterance is reflect-padded at its own ends (ESPnet2 pads the padded batch, which
    only differs for the last frames of an utterance shorter than the batch's longest);
    frame count ``S // hop_length + 1`` (``(S - n_fft) // hop_length + 1`` uncentred).

    Args:
        fs: sampling rate in Hz (``16000`` or ``"16k"``).
        n_fft: FFT size.
        win_length: window length in samples; ``None`` means ``n_fft``.
        hop_length: frame shift in samples (ESPnet2's default 128; recipes use 160).
        window: ``hann`` | ``hamming`` | ``blackman`` | ``bartlett`` (periodic).
        center: pad ``n_fft // 2`` samples (reflect) on both sides of each utterance.
        normalized / onesided: only ``False`` / ``True`` (ESPnet2's defaults).
        n_mels: number of mel bins (= ``output_size``).
        fmin / fmax: mel band edges in Hz (``None``: 0 and ``fs / 2``).
        htk: HTK mel scale instead of Slaney's.
    """

    def __init__(
        self,
        fs: int | str = 16000,
        n_fft: int = 512,
        win_length: int | None = None,
        hop_length: int = 128,
        window: str = "hann",
        center: bool = True,
        normalized: bool = False,
        onesided: bool = True,
        n_mels: int = 80,
        fmin: float | None = None,
        fmax: float | None = None,
        htk: bool = False,
    ) -> None:
        super().__init__()
        sample_rate = parse_fs(fs)
        win_length = n_fft if win_length is None else win_length
        for key, value in (
            ("fs", sample_rate),
            ("n_fft", n_fft),
            ("win_length", win_length),
            ("hop_length", hop_length),
            ("n_mels", n_mels),
        ):
            check_positive(f"frontend_conf.{key}", value)
        if win_length > n_fft:
            raise ValueError(
                f"frontend_conf.win_length={win_length} exceeds n_fft={n_fft}; set n_fft >= win_length"
            )
        if window not in _WINDOWS:
            raise ValueError(
                f"frontend_conf.window={window!r} is not supported; choose one of {', '.join(_WINDOWS)}"
            )
        if normalized or not onesided:
            raise ValueError(
                f"frontend_conf.normalized={normalized}, onesided={onesided}: only "
                "normalized: false, onesided: true are supported"
            )
        fmin = 0.0 if fmin is None else float(fmin)
        fmax = sample_rate / 2 if fmax is None else float(fmax)
        self.fs = sample_rate
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.window_name = window
        self.center = center
        self.n_mels = n_mels
        self.output_size: int = n_mels
        self.register_buffer(
            "window", getattr(torch, f"{window}_window")(win_length), persistent=False
        )
        self.logmel = LogMel(sample_rate, n_fft, n_mels, fmin, fmax, htk)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frame counts for waveforms of ``lengths`` samples."""
        if self.center:
            return torch.div(lengths, self.hop_length, rounding_mode="floor") + 1
        return torch.div(lengths - self.n_fft, self.hop_length, rounding_mode="floor") + 1

    def _reflect_pad(self, speech: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Pad ``n_fft // 2`` samples on both sides, reflecting at each utterance's own end."""
        pad = self.n_fft // 2
        if pad < speech.size(1) and unpadded(lengths, speech.size(1)):  # e.g. a batch of one
            return nn.functional.pad(speech.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        pos = torch.arange(-pad, speech.size(1) + pad, device=speech.device).unsqueeze(0)
        last = (lengths.to(speech.device).clamp(min=1) - 1).unsqueeze(1)
        pos = pos.abs()
        pos = torch.where(pos > last, 2 * last - pos, pos).clamp(0, speech.size(1) - 1)
        return speech.gather(1, pos)

    def forward(
        self, speech: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if speech.dim() != 2:
            raise ValueError(
                f"speech must be (B, S) float waveforms, got shape {tuple(speech.shape)}; "
                "squeeze the channel axis of mono audio first"
            )
        speech = speech.float()
        lengths = lengths.to(speech.device)
        if self.center:
            speech = self._reflect_pad(speech, lengths)
        elif speech.size(1) < self.n_fft:
            speech = nn.functional.pad(speech, (0, self.n_fft - speech.size(1)))
        spec = torch.stft(
            speech,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=False,
            return_complex=True,
        ).transpose(1, 2)  # (B, T, F)
        power = spec.real.square() + spec.imag.square()
        feats = self.logmel(power)
        feats_lengths = self.output_lengths(lengths).clamp(min=1)
        feats = zero_padded(feats, pad_mask_or_none(feats_lengths, feats.size(1)))
        return feats, feats_lengths
