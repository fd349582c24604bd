"""Griffin-Lim vocoder: the TTS log-mel back to a waveform, no training.

The acoustic model's ``feat_gen`` is ``log10`` of the mel *magnitude*
(:class:`~espnet_model.tts.features.LogMelFbank`); this inverts exactly that: ``10 **
feat`` -> linear magnitude by least squares through the same Slaney mel matrix
(torchaudio's ``InverseMelScale``) -> phase by Griffin-Lim (torchaudio, ``power=1``,
``n_iter`` iterations, zero initial phase so the output is deterministic).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torchaudio
from torch import nn

from espnet_model.tts.builder import _check_keys
from espnet_model.tts.features import LogMelFbank


def feats_extract_from_conf(feats_extract_conf: Mapping[str, Any]) -> LogMelFbank:
    """A :class:`LogMelFbank` from ESPnet2-style settings (``n_shift`` accepted for ``hop_length``)."""
    conf = dict(feats_extract_conf)
    if "n_shift" in conf:
        conf["hop_length"] = conf.pop("n_shift")
    _check_keys("feats_extract_conf", LogMelFbank, conf)
    return LogMelFbank(**conf)


class GriffinLim(nn.Module):
    """Log-mel ``(T, n_mels)`` -> waveform ``((T - 1) * hop_length,)`` (see the module docstring).

    Args:
        feats_extract_conf: the acoustic model's ``feats_extract_conf`` (or its resolved
            :attr:`~espnet_model.tts.TTSModel.feats_extract_conf`).
        n_iter: Griffin-Lim iterations (ESPnet2's default 32).
        momentum: fast Griffin-Lim momentum (torchaudio's default 0.99).
    """

    def __init__(self, feats_extract_conf: Mapping[str, Any], n_iter: int = 32, momentum: float = 0.99) -> None:
        super().__init__()
        if n_iter < 1:
            raise ValueError(f"n_iter={n_iter} must be >= 1")
        feats = feats_extract_from_conf(feats_extract_conf)
        self.n_fft, self.hop_length, self.win_length = feats.n_fft, feats.hop_length, feats.win_length
        self.n_iter, self.momentum = n_iter, momentum
        self.sample_rate: int = feats.fs
        params = feats.get_parameters()
        params["hop_length"] = params.pop("n_shift")
        self.feats_extract_conf: dict[str, Any] = params
        self.inverse_mel = torchaudio.transforms.InverseMelScale(
            n_stft=feats.n_fft // 2 + 1, n_mels=feats.n_mels, sample_rate=feats.fs, f_min=feats.fmin,
            f_max=feats.fmax, norm="slaney", mel_scale="htk" if feats.htk else "slaney", driver="gelsd",
        )  # fmt: skip
        self.register_buffer("window", feats.window.clone(), persistent=False)

    @torch.no_grad()
    def inference(self, mel: torch.Tensor) -> torch.Tensor:
        """``mel`` ``(T, n_mels)`` log10 mel magnitude -> float32 waveform."""
        if mel.dim() != 2 or mel.size(1) != self.inverse_mel.n_mels:
            raise ValueError(f"mel must be (frames, {self.inverse_mel.n_mels}), got {tuple(mel.shape)}")
        magnitude = self.inverse_mel(torch.pow(10.0, mel.float()).t().cpu())  # (freq, T)
        wav = torchaudio.functional.griffinlim(
            magnitude, self.window.cpu(), self.n_fft, self.hop_length, self.win_length, power=1.0,
            n_iter=self.n_iter, momentum=self.momentum, length=(mel.size(0) - 1) * self.hop_length, rand_init=False,
        )  # fmt: skip
        return wav.to(mel.device)

    forward = inference
