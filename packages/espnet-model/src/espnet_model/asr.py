"""Hybrid CTC/attention ASR model (ESPnet2 ``ESPnetASRModel`` conventions).

Token ids are fixed: ``0`` = ``<blank>``, ``1`` = ``<unk>``, ``vocab_size - 1`` =
``<sos/eos>``. ``forward`` returns ``(loss, stats, weight)`` where ``stats`` holds
detached ``loss``, ``loss_ctc`` (when ``ctc_weight > 0``; the final layer's CTC loss),
``loss_interctc`` and ``loss_interctc_layer<N>`` (with intermediate CTC), ``loss_att``
and ``acc`` (when ``ctc_weight < 1``) and ``weight`` is the batch size.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
from torch import nn

from espnet_model.ctc import CTC
from espnet_model.decoder import TransformerDecoder
from espnet_model.encoders.interctc import InterCTCMixin, Intermediates
from espnet_model.frontend import Fbank, StftFrontend
from espnet_model.mask import make_pad_mask
from espnet_model.normalize import GlobalMVN, UtteranceMVN
from espnet_model.specaug import SpecAug


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (only those requiring grad if ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def add_sos_eos(
    ys_pad: torch.Tensor, ys_lens: torch.Tensor, sos_eos: int, ignore_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ys_in, ys_out)``: ``[sos] + y`` padded with eos, ``y + [eos]`` padded with ignore_id."""
    batch, width = ys_pad.shape
    pad = make_pad_mask(ys_lens, width)
    body = ys_pad.masked_fill(pad, sos_eos)
    ys_in = torch.cat([body.new_full((batch, 1), sos_eos), body], dim=1)
    ys_out = torch.cat(
        [ys_pad.masked_fill(pad, ignore_id), ys_pad.new_full((batch, 1), ignore_id)], dim=1
    )
    ys_out[torch.arange(batch, device=ys_pad.device), ys_lens] = sos_eos
    return ys_in, ys_out


def label_smoothing_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    smoothing: float,
    ignore_id: int,
    normalize_length: bool,
) -> torch.Tensor:
    """ESPnet's KL label-smoothing loss: target gets ``1 - smoothing``, others share ``smoothing``.

    Summed over tokens, divided by the token count (``normalize_length``) or batch size.
    """
    vocab = logits.size(-1)
    logp = logits.float().log_softmax(dim=-1)
    valid = target != ignore_id
    tgt = target.masked_fill(~valid, 0).unsqueeze(-1)
    logp_target = logp.gather(-1, tgt).squeeze(-1)
    confidence = 1.0 - smoothing
    if smoothing > 0:
        low = smoothing / (vocab - 1)
        cross = -(confidence * logp_target + low * (logp.sum(-1) - logp_target))
        entropy = confidence * math.log(confidence) + smoothing * math.log(low)
        per_token = cross + entropy
    else:
        per_token = -logp_target
    total = per_token.masked_fill(~valid, 0.0).sum()
    denom = valid.sum().clamp(min=1) if normalize_length else logits.size(0)
    return total / denom


# Parameter names of espnet-model checkpoints written before the ESPnet2 names (0.1.0).
_OLD_NAMES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\.feed_forward(_macaron)?\.0\."), r".feed_forward\1.w_1."),
    (re.compile(r"\.feed_forward(_macaron)?\.3\."), r".feed_forward\1.w_2."),
    (re.compile(r"^decoder\.embed\.weight$"), "decoder.embed.0.weight"),
    (re.compile(r"\.cgmlp\.(norm|conv)\."), r".cgmlp.csgu.\1."),
)


def _upgrade_old_names(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any
) -> None:
    """Load-state-dict pre-hook: rename keys of older espnet-model checkpoints in place.

    Also gives ``nn.Linear``-shaped conformer pointwise weights their ``Conv1d`` axis.
    """
    own = module.state_dict(keep_vars=True)
    for key in list(state_dict):
        if not key.startswith(prefix):
            continue
        name = key[len(prefix) :]
        new = name
        for pattern, repl in _OLD_NAMES:
            new = pattern.sub(repl, new)
        if new != name and new in own and name not in own:
            state_dict[prefix + new] = state_dict.pop(key)
        value = state_dict[prefix + new]
        if ".pointwise_conv" in new and new in own and value.dim() == own[new].dim() - 1:
            state_dict[prefix + new] = value.unsqueeze(-1)


class LabelSmoothingLoss(nn.Module):
    """Module form of :func:`label_smoothing_loss` (ESPnet2's ``criterion_att``; no state)."""

    def __init__(self, smoothing: float, ignore_id: int, normalize_length: bool) -> None:
        super().__init__()
        self.smoothing = smoothing
        self.ignore_id = ignore_id
        self.normalize_length = normalize_length

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return label_smoothing_loss(
            logits, target, self.smoothing, self.ignore_id, self.normalize_length
        )


class ASRModel(nn.Module):
    """Frontend -> SpecAug -> normalisation -> encoder -> CTC and attention decoder.

    Args:
        vocab_size: number of tokens including ``<blank>`` (0), ``<unk>`` (1) and
            ``<sos/eos>`` (``vocab_size - 1``).
        frontend: feature extractor.
        encoder: any module with ``forward(xs, lengths) -> (out, out_lengths)`` and
            ``output_size()`` (or an ``output_size`` int attribute).
        decoder: attention decoder; required unless ``ctc_weight == 1``.
        specaug: SpecAugment applied in training only.
        normalize: feature normalisation.
        ctc_weight: ``loss = ctc_weight * loss_ctc + (1 - ctc_weight) * loss_att``.
        interctc_weight: intermediate CTC (the encoder's ``interctc_layer_idx``), as in
            ESPnet2: the CTC term becomes ``(1 - interctc_weight) * loss_ctc +
            interctc_weight * mean(loss of each tap)``, all through the one CTC module.
            An encoder with ``interctc_use_conditioning`` gets ``conditioning_layer``
            (``Linear(vocab_size, d_model)``) here and this model's CTC at every call.
        lsm_weight: label smoothing of the attention loss.
        ignore_id: padding id of ``text``.
        length_normalized_loss: divide the attention loss by tokens instead of utterances.
    """

    def __init__(
        self,
        vocab_size: int,
        frontend: Fbank | StftFrontend,
        encoder: nn.Module,
        decoder: TransformerDecoder | None = None,
        specaug: SpecAug | None = None,
        normalize: GlobalMVN | UtteranceMVN | None = None,
        ctc_weight: float = 0.3,
        interctc_weight: float = 0.0,
        lsm_weight: float = 0.1,
        ignore_id: int = -1,
        length_normalized_loss: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 <= ctc_weight <= 1.0:
            raise ValueError(f"model_conf.ctc_weight={ctc_weight} must be in [0, 1]")
        if not 0.0 <= lsm_weight < 1.0:
            raise ValueError(f"model_conf.lsm_weight={lsm_weight} must be in [0, 1)")
        if vocab_size < 3:
            raise ValueError(f"vocab_size={vocab_size} must be >= 3 (<blank>, <unk>, <sos/eos>)")
        self._check_interctc(encoder, ctc_weight, interctc_weight)
        if decoder is None and ctc_weight < 1.0:
            raise ValueError(
                f"model_conf.ctc_weight={ctc_weight} needs a decoder; set decoder: transformer "
                "or ctc_weight: 1.0"
            )
        self.vocab_size = vocab_size
        self.blank_id = 0
        self.unk_id = 1
        self.sos_eos_id = vocab_size - 1
        self.ignore_id = ignore_id
        self.ctc_weight = ctc_weight
        self.interctc_weight = interctc_weight
        self.lsm_weight = lsm_weight
        self.length_normalized_loss = length_normalized_loss
        self.frontend = frontend
        self.specaug = specaug
        self.normalize = normalize
        self.encoder = encoder
        size = encoder.output_size
        enc_size = int(size() if callable(size) else size)
        self.decoder = decoder if ctc_weight < 1.0 else None
        self.ctc: CTC | None = CTC(vocab_size, enc_size) if ctc_weight > 0.0 else None
        if isinstance(encoder, InterCTCMixin) and encoder.interctc_use_conditioning:
            # ESPnet2 (ESPnetASRModel.__init__) makes it here too: it needs the vocabulary
            encoder.conditioning_layer = nn.Linear(vocab_size, enc_size)
        self.criterion_att = LabelSmoothingLoss(lsm_weight, ignore_id, length_normalized_loss)
        self.register_load_state_dict_pre_hook(_upgrade_old_names)

    @staticmethod
    def _check_interctc(encoder: nn.Module, ctc_weight: float, interctc_weight: float) -> None:
        if not 0.0 <= interctc_weight < 1.0:
            raise ValueError(f"model_conf.interctc_weight={interctc_weight} must be in [0, 1)")
        taps = encoder.interctc_layer_idx if isinstance(encoder, InterCTCMixin) else ()
        if interctc_weight > 0.0 and not taps:
            raise ValueError(
                f"model_conf.interctc_weight={interctc_weight} weights intermediate CTC losses, "
                f"but the encoder ({type(encoder).__name__}) has no taps: set "
                "encoder_conf.interctc_layer_idx (conformer, transformer, e_branchformer), "
                "or interctc_weight: 0.0"
            )
        uses_ctc = interctc_weight > 0.0 or (
            isinstance(encoder, InterCTCMixin) and encoder.interctc_use_conditioning
        )
        if uses_ctc and ctc_weight == 0.0:
            raise ValueError(
                "intermediate / self-conditioned CTC (model_conf.interctc_weight, "
                "encoder_conf.interctc_use_conditioning) runs through the CTC branch, which "
                "model_conf.ctc_weight=0.0 removes: set ctc_weight > 0"
            )

    def collect_feats(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Frontend features only (for global MVN statistics)."""
        return self.frontend(speech, speech_lengths)

    def encode(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, S)`` waveforms -> encoder output ``(B, T', D)`` and lengths."""
        enc, enc_lengths, _ = self._encode(speech, speech_lengths, taps=False)
        return enc, enc_lengths

    def _encode(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, *, taps: bool
    ) -> tuple[torch.Tensor, torch.Tensor, Intermediates]:
        """Encoder output, lengths and (``taps``) the intermediate CTC taps' outputs.

        A self-conditioned encoder gets this model's CTC (as ESPnet2's ``encode`` does).
        """
        feats, lengths = self.features(speech, speech_lengths)
        encoder = self.encoder
        if not isinstance(encoder, InterCTCMixin) or not encoder.interctc_layer_idx:
            enc, enc_lengths = encoder(feats, lengths)
            return enc, enc_lengths, []
        if taps:
            return encoder.forward_with_intermediates(feats, lengths, self.ctc)
        enc, enc_lengths = encoder(feats, lengths, self.ctc)
        return enc, enc_lengths, []

    def features(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's input: frontend, SpecAugment (training only) and normalisation.

        Always in float32, as in ESPnet2 (its ``autocast_frontend: false``): under bf16
        autocast the mel projection would round the log-mel features to 8 bits.
        """
        with torch.autocast(speech.device.type, enabled=False):
            feats, lengths = self.frontend(speech, speech_lengths)
            if self.specaug is not None and self.training:
                feats, lengths = self.specaug(feats, lengths)
            if self.normalize is not None:
                feats, lengths = self.normalize(feats, lengths)
        return feats, lengths

    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        **kwargs: object,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
        """Training loss, detached stats and the batch size (extra batch keys are ignored)."""
        if not speech.size(0) == speech_lengths.size(0) == text.size(0) == text_lengths.size(0):
            raise ValueError(
                "batch sizes differ: speech "
                f"{tuple(speech.shape)}, speech_lengths {tuple(speech_lengths.shape)}, text "
                f"{tuple(text.shape)}, text_lengths {tuple(text_lengths.shape)}"
            )
        text_lengths = text_lengths.to(text.device)
        text = text[:, : int(text_lengths.max())] if text.numel() else text
        use_taps = self.ctc is not None and self.interctc_weight > 0.0
        enc, enc_lengths, taps = self._encode(speech, speech_lengths, taps=use_taps)
        stats: dict[str, torch.Tensor] = {}
        loss = enc.new_zeros(())
        if self.ctc is not None:
            loss_ctc = self.ctc(enc, enc_lengths, text, text_lengths)
            stats["loss_ctc"] = loss_ctc.detach()
            if taps:
                loss_ctc = self._interctc_loss(loss_ctc, taps, enc_lengths, text, text_lengths, stats)
            loss = loss + self.ctc_weight * loss_ctc
        if self.decoder is not None:
            loss_att, acc = self._attention_loss(enc, enc_lengths, text, text_lengths)
            stats["loss_att"] = loss_att.detach()
            stats["acc"] = acc.detach()
            loss = loss + (1.0 - self.ctc_weight) * loss_att
        stats["loss"] = loss.detach()
        return loss, stats, speech.size(0)

    def _interctc_loss(
        self,
        loss_ctc: torch.Tensor,
        taps: Intermediates,
        enc_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        stats: dict[str, torch.Tensor],
    ) -> torch.Tensor:
        """ESPnet2's ``(1 - w) * loss_ctc + w * mean(tap losses)``; the taps' stats."""
        assert self.ctc is not None
        total = loss_ctc.new_zeros(())
        for block, hidden in taps:
            loss_tap = self.ctc(hidden, enc_lengths, text, text_lengths)
            stats[f"loss_interctc_layer{block}"] = loss_tap.detach()
            total = total + loss_tap
        loss_interctc = total / len(taps)
        stats["loss_interctc"] = loss_interctc.detach()
        return (1.0 - self.interctc_weight) * loss_ctc + self.interctc_weight * loss_interctc

    def _attention_loss(
        self,
        enc: torch.Tensor,
        enc_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.decoder is not None
        ys_in, ys_out = add_sos_eos(text, text_lengths, self.sos_eos_id, self.ignore_id)
        logits = self.decoder(enc, enc_lengths, ys_in, text_lengths + 1)
        loss = self.criterion_att(logits, ys_out)
        valid = ys_out != self.ignore_id
        correct = (logits.argmax(-1) == ys_out) & valid
        acc = correct.sum().float() / valid.sum().clamp(min=1).float()
        return loss, acc
