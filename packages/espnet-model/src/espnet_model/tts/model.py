""":class:`TTSModel`: raw speech and durations in, the training contract out; text in,
log-mel out (ESPnet2's ``ESPnetTTSModel`` around a FastSpeech2 network).

Features are made inside the model (``feats_extract``, then ``normalize``; pitch and
energy likewise when configured), so a training batch carries only token ids, raw
audio and durations. Parameter names are ESPnet2's (``tts.encoder...``,
``normalize.mean``...). Durations are per token of the text (``<sos/eos>`` is appended
here and always gets 0 frames); their sum may differ from the mel frame count by a
few frames (e.g. another framing rule in the aligner): the last token absorbs the
difference. More than 5% apart is refused.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from espnet_model.mask import make_non_pad_mask
from espnet_model.normalize import GlobalMVN
from espnet_model.tts.fastspeech2 import FastSpeech2, add_eos
from espnet_model.tts.features import Energy, LogMelFbank, Pitch

MAX_DURATION_MISMATCH = 0.05  # fraction of the mel frames the durations may be off by


def fix_durations(durations: torch.Tensor, durations_lengths: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """``durations`` ``(B, T)`` made to sum to ``frames`` ``(B,)`` by changing the last token
    (and, if it would go below 0, the ones before it).

    Raises ``ValueError`` naming how many utterances (rows) are more than 5% (and more
    than one frame) off, with their sums and frame counts.
    """
    durations = durations.long().clamp(min=0).clone()
    keep = make_non_pad_mask(durations_lengths, durations.size(1))
    durations = durations.masked_fill(~keep, 0)
    diff = frames.to(durations.device) - durations.sum(1)
    if not bool(diff.any()):
        return durations
    allowed = torch.clamp(frames.to(durations.device).float() * MAX_DURATION_MISMATCH, min=1.0)
    bad = (diff.abs().float() > allowed).nonzero().view(-1).tolist()
    if bad:
        sums = durations.sum(1)
        raise ValueError(
            f"durations do not match the audio: {len(bad)} of {durations.size(0)} utterances in this batch "
            f"(rows {bad[:5]}) have durations summing to {[int(sums[i]) for i in bad[:5]]} frames but "
            f"{[int(frames[i]) for i in bad[:5]]} log-mel frames (more than {MAX_DURATION_MISMATCH:.0%} apart); "
            "durations.jsonl was made with other feats_extract_conf settings (fs, hop_length) or for other "
            "audio: rerun collect_stats"
        )
    for row in diff.nonzero().view(-1).tolist():
        rest = int(diff[row])
        for t in range(int(durations_lengths[row]) - 1, -1, -1):  # from the last token back
            new = max(int(durations[row, t]) + rest, 0)
            rest -= new - int(durations[row, t])
            durations[row, t] = new
            if rest == 0:
                break
    return durations


class TTSModel(nn.Module):
    """Feature extraction + normalisation + FastSpeech2 (see the module docstring).

    Attributes:
        sample_rate: the sampling rate the model's audio must have (Hz).
        feats_extract_conf: the resolved log-mel settings (``fs``, ``n_fft``,
            ``hop_length``, ``win_length``, ``window``, ``n_mels``, ``fmin``, ``fmax``,
            ``htk``) a vocoder must share.
    """

    def __init__(
        self,
        tts: FastSpeech2,
        feats_extract: LogMelFbank,
        normalize: GlobalMVN | None = None,
        pitch_extract: Pitch | None = None,
        pitch_normalize: GlobalMVN | None = None,
        energy_extract: Energy | None = None,
        energy_normalize: GlobalMVN | None = None,
    ) -> None:
        super().__init__()
        if (pitch_extract is None) != (tts.pitch_predictor is None) or (energy_extract is None) != (
            tts.energy_predictor is None
        ):
            raise ValueError("the FastSpeech2 network's use_pitch / use_energy must follow pitch_extract / energy_extract")
        self.feats_extract = feats_extract
        self.normalize = normalize
        self.pitch_extract = pitch_extract
        self.pitch_normalize = pitch_normalize
        self.energy_extract = energy_extract
        self.energy_normalize = energy_normalize
        self.tts = tts
        self.sample_rate: int = feats_extract.fs
        params = feats_extract.get_parameters()
        params["hop_length"] = params.pop("n_shift")
        self.feats_extract_conf: dict[str, Any] = params

    @property
    def eos(self) -> int:
        return self.tts.eos

    # ------------------------------------------------------------------ features

    def collect_feats(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        durations: torch.Tensor | None = None,
        durations_lengths: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Unnormalised features for statistics (collect_stats): ``feats`` / ``feats_lengths``,
        and with durations ``(B, T_text)`` the token ``pitch`` / ``energy`` ``(B, T_text + 1, 1)``
        (and ``*_lengths``) when configured (the eos token's value is 0)."""
        feats, feats_lengths = self.feats_extract(speech, speech_lengths)
        out = {"feats": feats, "feats_lengths": feats_lengths}
        if durations is None or durations_lengths is None:
            return out
        ds, dlens = self._durations(durations, durations_lengths, feats_lengths)
        for name, extract in (("pitch", self.pitch_extract), ("energy", self.energy_extract)):
            if extract is not None:
                out[name], out[f"{name}_lengths"] = extract(speech, speech_lengths, feats_lengths, ds, dlens)
        return out

    def _durations(
        self, durations: torch.Tensor, durations_lengths: torch.Tensor, feats_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fixed durations with the eos token's 0 appended: ``(B, T_text + 1)`` and lengths."""
        ds = fix_durations(durations, durations_lengths, feats_lengths)
        ds = nn.functional.pad(ds, (0, 1))
        return ds, durations_lengths + 1

    # ------------------------------------------------------------------ training

    def forward(
        self,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        durations: torch.Tensor,
        durations_lengths: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
        """The training contract: ``(loss, stats, batch size)``.

        Args:
            text: ``(B, T_text)`` token ids (0-padded), without ``<sos/eos>``.
            text_lengths: ``(B,)``.
            speech: ``(B, S)`` float waveforms at :attr:`sample_rate`.
            speech_lengths: ``(B,)`` samples.
            durations: ``(B, T_text)`` mel frames per token.
            durations_lengths: ``(B,)``, equal to ``text_lengths``.
        """
        if not torch.equal(durations_lengths.cpu(), text_lengths.cpu()):
            rows = (durations_lengths.cpu() != text_lengths.cpu()).nonzero().view(-1).tolist()
            raise ValueError(
                f"durations_lengths != text_lengths for {len(rows)} of {text.size(0)} utterances (rows {rows[:5]}): "
                "durations must have one entry per token of the tokenised text; rerun collect_stats "
                "after changing the tokenizer"
            )
        text = text[:, : int(text_lengths.max())]
        with torch.autocast(speech.device.type, enabled=False):
            feats, feats_lengths = self.feats_extract(speech, speech_lengths)
            ds, dlens = self._durations(durations[:, : text.size(1)], durations_lengths, feats_lengths)
            pitch = energy = None
            if self.pitch_extract is not None:
                pitch, plens = self.pitch_extract(speech, speech_lengths, feats_lengths, ds, dlens)
                if self.pitch_normalize is not None:
                    pitch, _ = self.pitch_normalize(pitch, plens)
            if self.energy_extract is not None:
                energy, elens = self.energy_extract(speech, speech_lengths, feats_lengths, ds, dlens)
                if self.energy_normalize is not None:
                    energy, _ = self.energy_normalize(energy, elens)
            if self.normalize is not None:
                feats, feats_lengths = self.normalize(feats, feats_lengths)
        xs = add_eos(text.masked_fill(~make_non_pad_mask(text_lengths, text.size(1)), 0), text_lengths, self.eos)
        losses = self.tts(xs, text_lengths + 1, feats, feats_lengths, ds, pitch, energy)
        loss = sum(losses.values(), torch.zeros((), device=feats.device))
        stats = {k: v.detach() for k, v in losses.items()}
        stats["loss"] = loss.detach()
        return loss, stats, text.size(0)

    # ------------------------------------------------------------------ inference

    def _denormalize(self, feats: torch.Tensor) -> torch.Tensor:
        if self.normalize is None:
            return feats
        if self.normalize.norm_vars:
            feats = feats * self.normalize.std
        if self.normalize.norm_means:
            feats = feats + self.normalize.mean
        return feats

    @torch.no_grad()
    def inference_batch(
        self,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        alpha: float = 1.0,
        durations: torch.Tensor | None = None,
    ) -> list[dict[str, torch.Tensor]]:
        """Synthesise a batch: one ``dict(feat_gen=(frames, n_mels) log-mel, duration=(T_text,) long)``
        per utterance, ``frames == duration.sum()``.

        Args:
            text: ``(B, T_text)`` token ids (0-padded) without ``<sos/eos>``.
            text_lengths: ``(B,)``, each >= 1.
            alpha: speed control; durations are multiplied by it (> 1: slower).
            durations: ``(B, T_text)`` frames per token to use instead of predicting them.
        """
        if alpha <= 0:
            raise ValueError(f"alpha={alpha} must be > 0 (1.0 = the trained speed, 1.2 = 20% slower)")
        if text.dim() != 2 or text_lengths.dim() != 1 or text.size(0) != text_lengths.size(0):
            raise ValueError(f"text must be (B, T) ids and text_lengths (B,), got {tuple(text.shape)} and {tuple(text_lengths.shape)}")
        if text.numel() == 0 or int(text_lengths.min()) < 1:
            raise ValueError("cannot synthesise empty text: every utterance needs at least one token")
        if int(text.max()) >= self.tts.idim or int(text.min()) < 0:
            raise ValueError(f"token ids must be in [0, {self.tts.idim}); got {int(text.min())}..{int(text.max())}")
        text = text[:, : int(text_lengths.max())]
        xs = add_eos(text.masked_fill(~make_non_pad_mask(text_lengths, text.size(1)), 0), text_lengths, self.eos)
        ds = None if durations is None else nn.functional.pad(durations[:, : text.size(1)].long().clamp(min=0), (0, 1))
        if ds is not None:
            ds = ds.masked_fill(~make_non_pad_mask(text_lengths, ds.size(1)), 0)
        feats, ds = self.tts.inference(xs, text_lengths + 1, ds, alpha)
        feats = self._denormalize(feats)
        return [
            {"feat_gen": feats[i, : int(ds[i].sum())], "duration": ds[i, : int(n)]}
            for i, n in enumerate(text_lengths)
        ]

    @torch.no_grad()
    def inference(
        self, text: torch.Tensor, alpha: float = 1.0, durations: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """``text`` ``(T_text,)`` ids -> ``dict(feat_gen=(frames, n_mels), duration=(T_text,))``
        (see :meth:`inference_batch`)."""
        if text.dim() != 1:
            raise ValueError(f"text must be a 1-D tensor of token ids, got shape {tuple(text.shape)}")
        lengths = torch.tensor([text.numel()], device=text.device)
        ds = None if durations is None else durations.view(1, -1)
        return self.inference_batch(text.unsqueeze(0), lengths, alpha, ds)[0]
