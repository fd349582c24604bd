"""TTS features from raw speech: ESPnet2's ``LogMelFbank`` (``feats_extract: fbank``),
``Energy`` (``energy_extract: energy``) and a pitch tracker (``pitch_extract: yin``).

ESPnet2 defines the TTS log-mel differently from the ASR one: ``log10`` of the mel
*magnitude* (``sqrt`` of the power spectrum through a Slaney mel matrix), floored at
``1e-10``; the ASR frontend takes ``ln`` of the mel power. :class:`LogMelFbank` is the
project's :class:`~espnet_model.frontend.StftFrontend` (ESPnet2's centred STFT, same
frame count ``S // hop_length + 1``) with that magnitude ``log10`` mel.

Energy and pitch are per frame, cut or zero-padded to the mel frame count, and, as
FastSpeech2 uses them (FastPitch's token averages), averaged over each token's frames.
ESPnet2's pitch extractor ``dio`` needs pyworld (not a dependency here); ``yin`` is a
torch YIN with Dio's post-processing options (continuous, log, token-averaged).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from espnet_model.frontend import LogMel, StftFrontend, parse_fs

__all__ = ["Energy", "LogMelFbank", "Pitch", "average_by_duration"]


class _MagnitudeLog10Mel(LogMel):
    """Power spectrum -> ``log10(max(sqrt(max(power, 1e-10)) @ melmat, 1e-10))`` (ESPnet2 TTS)."""

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        magnitude = power.clamp(min=1.0e-10).sqrt()
        return torch.matmul(magnitude, self.melmat).clamp(min=1.0e-10).log10()


def _renamed(err: ValueError, prefix: str) -> ValueError:
    return ValueError(str(err).replace("frontend_conf.", f"{prefix}."))


class LogMelFbank(StftFrontend):
    """Waveform ``(B, S)`` -> log10 mel magnitude ``(B, T, n_mels)`` (ESPnet2 TTS ``fbank``).

    Args (``feats_extract_conf``, ESPnet2's names and defaults):
        fs: sampling rate (``22050`` or ``"22.05k"``).
        n_fft, win_length (``None``: ``n_fft``), hop_length: STFT settings.
        window: ``hann`` | ``hamming`` | ``blackman`` | ``bartlett``.
        center: reflect-pad ``n_fft // 2`` on both sides (frames ``S // hop + 1``).
        normalized / onesided: only ``False`` / ``True``.
        n_mels, fmin, fmax: Slaney mel bands (``htk``: HTK scale).
        log_base: only ``10.0`` (ESPnet2's TTS default).
    """

    def __init__(
        self,
        fs: int | str = 16000,
        n_fft: int = 1024,
        win_length: int | None = None,
        hop_length: int = 256,
        window: str = "hann",
        center: bool = True,
        normalized: bool = False,
        onesided: bool = True,
        n_mels: int = 80,
        fmin: float | None = 80,
        fmax: float | None = 7600,
        htk: bool = False,
        log_base: float | None = 10.0,
    ) -> None:
        if log_base != 10.0:
            raise ValueError(
                f"feats_extract_conf.log_base={log_base!r} is not supported; the TTS log-mel is log10 "
                "(remove log_base or set 10.0)"
            )
        sample_rate = parse_fs(fs)
        top = sample_rate / 2 if fmax is None else float(fmax)
        low = 0.0 if fmin is None else float(fmin)
        if not 0.0 <= low < top <= sample_rate / 2:
            raise ValueError(
                f"feats_extract_conf.fmin={fmin}, fmax={fmax} must satisfy 0 <= fmin < fmax <= fs/2 = "
                f"{sample_rate / 2} (fs={sample_rate}); lower fmax for this sampling rate"
            )
        try:
            super().__init__(
                fs, n_fft, win_length, hop_length, window, center, normalized, onesided, n_mels,
                fmin, fmax, htk,
            )  # fmt: skip
        except ValueError as err:
            raise _renamed(err, "feats_extract_conf") from None
        self.fmin, self.fmax, self.htk = low, top, htk
        self.logmel = _MagnitudeLog10Mel(sample_rate, n_fft, n_mels, low, top, htk)

    def get_parameters(self) -> dict[str, int | float | str | None]:
        """The settings a vocoder must share (ESPnet2's names; ``n_shift`` = hop_length)."""
        return {
            "fs": self.fs, "n_fft": self.n_fft, "n_shift": self.hop_length,
            "win_length": self.win_length, "window": self.window_name, "n_mels": self.n_mels,
            "fmin": self.fmin, "fmax": self.fmax, "htk": self.htk,
        }  # fmt: skip


def average_by_duration(x: torch.Tensor, durations: torch.Tensor, voiced_only: bool) -> torch.Tensor:
    """Mean of ``x`` ``(T_feats,)`` over each token's frames (``durations`` ``(T_text,)``).

    A token with no frames (or, with ``voiced_only``, no frame above 0) gets 0.
    """
    ends = durations.cumsum(0)
    values = x[: int(ends[-1])] if ends.numel() else x[:0]
    keep = values > 0 if voiced_only else torch.ones_like(values, dtype=torch.bool)
    token = torch.repeat_interleave(torch.arange(durations.numel(), device=x.device), durations)
    total = x.new_zeros(durations.numel()).index_add_(0, token, torch.where(keep, values, 0.0))
    count = x.new_zeros(durations.numel()).index_add_(0, token, keep.to(x.dtype))
    return torch.where(count > 0, total / count.clamp(min=1), 0.0)


def _fit_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """``x`` ``(T,)`` cut or zero-padded to ``frames`` (ESPnet2's ``_adjust_num_frames``)."""
    return F.pad(x, (0, frames - x.numel())) if frames > x.numel() else x[:frames]


def _token_level(
    per_frame: list[torch.Tensor],
    feats_lengths: torch.Tensor,
    durations: torch.Tensor | None,
    durations_lengths: torch.Tensor | None,
    voiced_only: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-utterance frame values -> padded ``(B, T, 1)`` token averages (or frames)."""
    if durations is None or durations_lengths is None:
        fitted = [_fit_frames(v, int(n)) for v, n in zip(per_frame, feats_lengths, strict=True)]
        lengths = feats_lengths
    else:
        fitted = [
            average_by_duration(_fit_frames(v, int(n)), d[: int(dl)], voiced_only)
            for v, n, d, dl in zip(per_frame, feats_lengths, durations, durations_lengths, strict=True)
        ]
        lengths = durations_lengths
    padded = nn.utils.rnn.pad_sequence(fitted, batch_first=True)
    return padded.unsqueeze(-1), lengths


class Energy(nn.Module):
    """Frame energy ``sqrt(sum_f |STFT|^2)`` (ESPnet2 ``energy_extract: energy``), token-averaged.

    Args: ESPnet2's ``energy_extract_conf`` (STFT settings as :class:`LogMelFbank`;
    ``use_token_averaged_energy``; ``reduction_factor`` must be 1).
    """

    def __init__(
        self,
        fs: int | str = 22050,
        n_fft: int = 1024,
        win_length: int | None = None,
        hop_length: int = 256,
        window: str = "hann",
        center: bool = True,
        normalized: bool = False,
        onesided: bool = True,
        use_token_averaged_energy: bool = True,
        reduction_factor: int | None = None,
    ) -> None:
        super().__init__()
        if reduction_factor not in (None, 1):
            raise ValueError(f"energy_extract_conf.reduction_factor={reduction_factor}: only 1 is supported")
        try:
            self.stft = StftFrontend(fs, n_fft, win_length, hop_length, window, center, normalized, onesided)
        except ValueError as err:
            raise _renamed(err, "energy_extract_conf") from None
        self.use_token_averaged_energy = use_token_averaged_energy

    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        feats_lengths: torch.Tensor,
        durations: torch.Tensor | None = None,
        durations_lengths: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, T_text, 1)`` token energies (``(B, T_feats, 1)`` without token averaging)."""
        power = _power(self.stft, speech, speech_lengths)
        energy = power.sum(-1).clamp(min=1.0e-10).sqrt()  # (B, T)
        if not self.use_token_averaged_energy:
            durations = durations_lengths = None
        return _token_level(list(energy), feats_lengths, durations, durations_lengths, False)


def _power(stft: StftFrontend, speech: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``|STFT|^2`` ``(B, T, F)`` with the frontend's framing (its mel step skipped)."""
    speech = speech.float()
    if stft.center:
        speech = stft._reflect_pad(speech, lengths.to(speech.device))
    spec = torch.stft(
        speech, n_fft=stft.n_fft, hop_length=stft.hop_length, win_length=stft.win_length,
        window=stft.window, center=False, return_complex=True,
    ).transpose(1, 2)  # fmt: skip
    return spec.real.square() + spec.imag.square()


class Pitch(nn.Module):
    """F0 by YIN (``pitch_extract: yin``), with ESPnet2 Dio's options, token-averaged.

    Each frame (hop ``hop_length``, window ``n_fft`` centred like the mel frames) gets the
    first lag whose cumulative-mean-normalised difference dips below ``threshold`` (the
    deepest dip if none does); frames whose best dip stays above ``voicing`` are unvoiced
    (0). ``use_continuous_f0`` fills unvoiced frames by linear interpolation (as Dio's
    ``convert_to_continuous_f0``), ``use_log_f0`` takes ``log`` of voiced values, and
    token averages use voiced frames only.
    """

    def __init__(
        self,
        fs: int | str = 22050,
        n_fft: int = 1024,
        hop_length: int = 256,
        f0min: int = 80,
        f0max: int = 400,
        use_token_averaged_f0: bool = True,
        use_continuous_f0: bool = True,
        use_log_f0: bool = True,
        reduction_factor: int | None = None,
        threshold: float = 0.1,
        voicing: float = 0.35,
    ) -> None:
        super().__init__()
        self.fs = parse_fs(fs)
        if reduction_factor not in (None, 1):
            raise ValueError(f"pitch_extract_conf.reduction_factor={reduction_factor}: only 1 is supported")
        if not 0 < f0min < f0max < self.fs / 2:
            raise ValueError(f"pitch_extract_conf.f0min={f0min}, f0max={f0max} must satisfy 0 < f0min < f0max < fs/2")
        self.tau_min = max(2, int(self.fs / f0max))
        self.tau_max = int(self.fs / f0min) + 1
        if 2 * self.tau_max > n_fft:
            raise ValueError(
                f"pitch_extract_conf.n_fft={n_fft} is too short for f0min={f0min} at fs={self.fs}: "
                f"YIN needs n_fft >= {2 * self.tau_max}; raise n_fft or f0min"
            )
        self.n_fft, self.hop_length = n_fft, hop_length
        self.use_token_averaged_f0 = use_token_averaged_f0
        self.use_continuous_f0 = use_continuous_f0
        self.use_log_f0 = use_log_f0
        self.threshold, self.voicing = threshold, voicing

    def f0(self, wave: torch.Tensor) -> torch.Tensor:
        """``(S,)`` samples -> ``(S // hop + 1,)`` F0 in Hz (0 = unvoiced)."""
        half = self.n_fft // 2
        x = F.pad(wave.float().view(1, 1, -1), (half, half)).view(-1)
        frames = x.unfold(0, self.n_fft, self.hop_length)  # (T, n_fft)
        w = self.n_fft - self.tau_max
        n = 2 * self.n_fft
        head = torch.fft.rfft(frames[:, :w], n=n)
        corr = torch.fft.irfft(head.conj() * torch.fft.rfft(frames, n=n), n=n)[:, : self.tau_max]
        energy = F.pad(frames.square().cumsum(1), (1, 0))
        taus = torch.arange(self.tau_max)
        # YIN's difference d(tau) = sum_{j<w} (x_j - x_{j+tau})^2, exactly
        diff = energy[:, w].unsqueeze(1) + (energy[:, w + taus] - energy[:, taus]) - 2 * corr
        diff = diff.clamp(min=0)
        cmnd = diff[:, 1:] * torch.arange(1, self.tau_max) / diff[:, 1:].cumsum(1).clamp(min=1e-8)
        cmnd = torch.cat([torch.ones_like(cmnd[:, :1]), cmnd], 1)[:, self.tau_min :]
        below = cmnd < self.threshold
        first = torch.where(below.any(1), below.float().argmax(1), cmnd.argmin(1))
        # from the first dip below the threshold, walk down to its local minimum
        rising = torch.cat([cmnd[:, 1:] >= cmnd[:, :-1], torch.ones_like(below[:, :1])], 1)
        idx = torch.arange(cmnd.size(1))
        tau = (rising & (idx >= first.unsqueeze(1))).float().argmax(1)
        best = cmnd.gather(1, tau.unsqueeze(1)).squeeze(1)
        # parabolic interpolation around the minimum for a sub-sample lag
        left = cmnd.gather(1, (tau - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
        right = cmnd.gather(1, (tau + 1).clamp(max=cmnd.size(1) - 1).unsqueeze(1)).squeeze(1)
        curve = left - 2 * best + right
        shift = torch.where(curve > 0, 0.5 * (left - right) / curve.clamp(min=1e-8), 0.0).clamp(-1, 1)
        f0 = self.fs / (tau.float() + shift + self.tau_min)
        silent = frames.square().mean(1) < 1e-8
        return torch.where((best > self.voicing) | silent, 0.0, f0)

    def _post(self, f0: torch.Tensor) -> torch.Tensor:
        voiced = f0 > 0
        if self.use_continuous_f0 and voiced.any():
            idx = torch.arange(f0.numel(), dtype=torch.float32)
            known = idx[voiced]
            pos = torch.searchsorted(known, idx).clamp(1, max(known.numel() - 1, 1))
            if known.numel() == 1:
                f0 = torch.full_like(f0, float(f0[voiced][0]))
            else:
                lo, hi = known[pos - 1], known[pos]
                ratio = ((idx - lo) / (hi - lo)).clamp(0, 1)
                f0 = f0[voiced][pos - 1] * (1 - ratio) + f0[voiced][pos] * ratio
            voiced = f0 > 0
        if self.use_log_f0:
            f0 = torch.where(voiced, f0.clamp(min=1e-8).log(), 0.0)
        return f0

    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        feats_lengths: torch.Tensor,
        durations: torch.Tensor | None = None,
        durations_lengths: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, T_text, 1)`` token F0 (``(B, T_feats, 1)`` without token averaging)."""
        per_utt = [self._post(self.f0(s[: int(n)].cpu())).to(speech.device) for s, n in zip(speech, speech_lengths, strict=True)]
        if not self.use_token_averaged_f0:
            durations = durations_lengths = None
        return _token_level(per_utt, feats_lengths, durations, durations_lengths, True)
