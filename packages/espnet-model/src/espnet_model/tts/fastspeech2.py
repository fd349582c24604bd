"""FastSpeech2 (``tts: fastspeech2``): ESPnet2's network, argument names, defaults and
parameter names, over this project's transformer and conformer layers.

Token-averaged pitch and energy (FastPitch style) as ESPnet2; each is optional here
(``use_pitch`` / ``use_energy``, set by the builder from ``pitch_extract`` /
``energy_extract``): off, its predictor and embedding are not built. Single speaker,
``reduction_factor: 1``; ESPnet2's speaker/language/GST options are refused by the
builder unless left at their defaults.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from espnet_model._checks import check_choice
from espnet_model.attention import (
    LegacyRelPositionalEncoding,
    RelPositionalEncoding,
    is_legacy_rel_pos,
)
from espnet_model.dropout import Dropout
from espnet_model.encoders.conformer import ConformerBlock
from espnet_model.feedforward import Activation, layer_norm
from espnet_model.mask import make_non_pad_mask
from espnet_model.tts.layers import (
    DurationPredictor,
    FFTStack,
    PositionwiseType,
    Postnet,
    VariancePredictor,
    length_regulate,
    positionwise,
)

BlockType = Literal["transformer", "conformer"]


class ConformerStack(nn.Module):
    """ESPnet's legacy conformer ``Encoder`` as FastSpeech2 uses it (``embed``, ``encoders``,
    ``after_norm``), built from the project's :class:`ConformerBlock` with FastSpeech's
    position-wise blocks."""

    def __init__(
        self,
        vocab_size: int | None,
        adim: int,
        aheads: int,
        units: int,
        layers: int,
        dropout_rate: float,
        positional_dropout_rate: float,
        attention_dropout_rate: float,
        positionwise_layer_type: PositionwiseType,
        positionwise_conv_kernel_size: int,
        macaron_style: bool,
        use_cnn_module: bool,
        kernel_size: int,
        activation_type: Activation,
        legacy: bool,
    ) -> None:
        super().__init__()
        pos_enc = (LegacyRelPositionalEncoding if legacy else RelPositionalEncoding)(adim, positional_dropout_rate)
        embed: list[nn.Module] = [] if vocab_size is None else [nn.Embedding(vocab_size, adim, padding_idx=0)]
        self.embed = nn.Sequential(*embed, pos_enc)
        blocks = []
        for _ in range(layers):
            block = ConformerBlock(
                adim, aheads, units, dropout_rate, attention_dropout_rate, macaron_style,
                use_cnn_module, kernel_size, activation_type, legacy,
            )  # fmt: skip
            if positionwise_layer_type != "linear":  # ESPnet2's FastSpeech2 conformers use conv blocks
                ff = lambda: positionwise(  # noqa: E731
                    positionwise_layer_type, adim, units, positionwise_conv_kernel_size, dropout_rate
                )
                block.feed_forward = ff()
                if macaron_style:
                    block.feed_forward_macaron = ff()
            blocks.append(block)
        self.encoders = nn.ModuleList(blocks)
        self.after_norm = layer_norm(adim)

    def forward(self, xs: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        x, pos_emb = self.embed(xs)
        mask = None if keep is None else keep.unsqueeze(1)
        pad_mask = None if keep is None else ~keep.unsqueeze(-1)
        for block in self.encoders:
            x = block(x, pos_emb, mask, pad_mask)
        return self.after_norm(x)


class FastSpeech2Loss(nn.Module):
    """ESPnet2's ``FastSpeech2Loss``: L1 on the mel before and after the postnet, MSE of
    ``log(duration + 1)``, MSE of token pitch / energy; ``use_masking`` excludes padding,
    ``use_weighted_masking`` weights each utterance equally."""

    def __init__(self, use_masking: bool = True, use_weighted_masking: bool = False) -> None:
        super().__init__()
        if use_masking and use_weighted_masking:
            raise ValueError("tts_conf: set at most one of use_masking and use_weighted_masking")
        self.use_masking = use_masking
        self.use_weighted_masking = use_weighted_masking

    def _reduce(self, err: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Mean of ``err`` ``(B, T, ...)`` under ``keep`` ``(B, T)`` (all of it without masking)."""
        while keep.dim() < err.dim():
            keep = keep.unsqueeze(-1)
        keep = keep.expand_as(err)
        if self.use_weighted_masking:
            per_utt = keep.flatten(1).sum(1, keepdim=True).clamp(min=1)
            weights = keep.flatten(1).float() / per_utt / err.size(0)
            return (err.flatten(1) * weights).sum()
        if self.use_masking:
            return err.masked_select(keep).mean()
        return err.mean()

    def forward(
        self,
        after_outs: torch.Tensor | None,
        before_outs: torch.Tensor,
        d_outs: torch.Tensor,
        p_outs: torch.Tensor | None,
        e_outs: torch.Tensor | None,
        ys: torch.Tensor,
        ds: torch.Tensor,
        ps: torch.Tensor | None,
        es: torch.Tensor | None,
        ilens: torch.Tensor,
        olens: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """``l1_loss``, ``duration_loss`` and, when predicted, ``pitch_loss`` / ``energy_loss``."""
        out_keep = make_non_pad_mask(olens, ys.size(1))
        in_keep = make_non_pad_mask(ilens, ds.size(1))
        l1 = self._reduce((before_outs - ys).abs(), out_keep)
        if after_outs is not None:
            l1 = l1 + self._reduce((after_outs - ys).abs(), out_keep)
        log_ds = torch.log(ds.float() + DurationPredictor.offset)
        losses = {"l1_loss": l1, "duration_loss": self._reduce((d_outs - log_ds).square(), in_keep)}
        if p_outs is not None and ps is not None:
            losses["pitch_loss"] = self._reduce((p_outs - ps).square(), in_keep)
        if e_outs is not None and es is not None:
            losses["energy_loss"] = self._reduce((e_outs - es).square(), in_keep)
        return losses


class FastSpeech2(nn.Module):
    """The FastSpeech2 network; arguments as ESPnet2's ``FastSpeech2`` (``idim`` = vocabulary
    size with ``<sos/eos>`` last, ``odim`` = mel bins). ``forward`` takes token ids that end in
    ``eos`` and target durations; :meth:`inference` predicts durations."""

    def __init__(
        self,
        idim: int,
        odim: int,
        adim: int = 384,
        aheads: int = 4,
        elayers: int = 6,
        eunits: int = 1536,
        dlayers: int = 6,
        dunits: int = 1536,
        postnet_layers: int = 5,
        postnet_chans: int = 512,
        postnet_filts: int = 5,
        postnet_dropout_rate: float = 0.5,
        positionwise_layer_type: PositionwiseType = "conv1d",
        positionwise_conv_kernel_size: int = 1,
        use_scaled_pos_enc: bool = True,
        use_batch_norm: bool = True,
        encoder_normalize_before: bool = True,
        decoder_normalize_before: bool = True,
        reduction_factor: int = 1,
        encoder_type: BlockType = "transformer",
        decoder_type: BlockType = "transformer",
        transformer_enc_dropout_rate: float = 0.1,
        transformer_enc_positional_dropout_rate: float = 0.1,
        transformer_enc_attn_dropout_rate: float = 0.1,
        transformer_dec_dropout_rate: float = 0.1,
        transformer_dec_positional_dropout_rate: float = 0.1,
        transformer_dec_attn_dropout_rate: float = 0.1,
        conformer_rel_pos_type: str = "legacy",
        conformer_pos_enc_layer_type: str = "rel_pos",
        conformer_self_attn_layer_type: str = "rel_selfattn",
        conformer_activation_type: Activation = "swish",
        use_macaron_style_in_conformer: bool = True,
        use_cnn_in_conformer: bool = True,
        conformer_enc_kernel_size: int = 7,
        conformer_dec_kernel_size: int = 31,
        duration_predictor_layers: int = 2,
        duration_predictor_chans: int = 384,
        duration_predictor_kernel_size: int = 3,
        duration_predictor_dropout_rate: float = 0.1,
        energy_predictor_layers: int = 2,
        energy_predictor_chans: int = 384,
        energy_predictor_kernel_size: int = 3,
        energy_predictor_dropout: float = 0.5,
        energy_embed_kernel_size: int = 9,
        energy_embed_dropout: float = 0.5,
        stop_gradient_from_energy_predictor: bool = False,
        pitch_predictor_layers: int = 2,
        pitch_predictor_chans: int = 384,
        pitch_predictor_kernel_size: int = 3,
        pitch_predictor_dropout: float = 0.5,
        pitch_embed_kernel_size: int = 9,
        pitch_embed_dropout: float = 0.5,
        stop_gradient_from_pitch_predictor: bool = False,
        init_type: str = "xavier_uniform",
        init_enc_alpha: float = 1.0,
        init_dec_alpha: float = 1.0,
        use_masking: bool = False,
        use_weighted_masking: bool = False,
        apply_ff_mask: bool = False,
        use_pitch: bool = True,
        use_energy: bool = True,
    ) -> None:
        super().__init__()
        if reduction_factor != 1:
            raise ValueError(f"tts_conf.reduction_factor={reduction_factor}: only 1 is supported (ESPnet2's FastSpeech2 recipes use 1)")
        check_choice("tts_conf.encoder_type", encoder_type, ("transformer", "conformer"))
        check_choice("tts_conf.decoder_type", decoder_type, ("transformer", "conformer"))
        check_choice("tts_conf.init_type", init_type, (*_INITS, "pytorch"))
        self.idim, self.odim, self.eos, self.padding_idx = idim, odim, idim - 1, 0
        self.reduction_factor = reduction_factor
        self.encoder_type, self.decoder_type = encoder_type, decoder_type
        self.use_scaled_pos_enc = use_scaled_pos_enc
        self.stop_gradient_from_pitch_predictor = stop_gradient_from_pitch_predictor
        self.stop_gradient_from_energy_predictor = stop_gradient_from_energy_predictor
        legacy = False
        if "conformer" in (encoder_type, decoder_type):
            try:
                legacy = is_legacy_rel_pos(
                    conformer_rel_pos_type, conformer_pos_enc_layer_type, conformer_self_attn_layer_type,
                    "self_attn_layer_type",
                )  # fmt: skip
            except ValueError as err:
                raise ValueError(str(err).replace("encoder_conf.", "tts_conf.conformer_")) from None

        def stack(vocab: int | None, units: int, layers: int, kind: str, drop: float, pos_drop: float,
                  att_drop: float, normalize_before: bool, kernel: int) -> nn.Module:  # fmt: skip
            if kind == "transformer":
                return FFTStack(
                    vocab, adim, aheads, units, layers, drop, pos_drop, att_drop, normalize_before,
                    positionwise_layer_type, positionwise_conv_kernel_size, use_scaled_pos_enc, apply_ff_mask,
                )  # fmt: skip
            return ConformerStack(
                vocab, adim, aheads, units, layers, drop, pos_drop, att_drop, positionwise_layer_type,
                positionwise_conv_kernel_size, use_macaron_style_in_conformer, use_cnn_in_conformer,
                kernel, conformer_activation_type, legacy,
            )  # fmt: skip

        self.encoder = stack(
            idim, eunits, elayers, encoder_type, transformer_enc_dropout_rate,
            transformer_enc_positional_dropout_rate, transformer_enc_attn_dropout_rate,
            encoder_normalize_before, conformer_enc_kernel_size,
        )  # fmt: skip
        self.duration_predictor = DurationPredictor(
            adim, duration_predictor_layers, duration_predictor_chans, duration_predictor_kernel_size,
            duration_predictor_dropout_rate,
        )  # fmt: skip
        self.pitch_predictor: VariancePredictor | None = None
        self.pitch_embed: nn.Module | None = None
        if use_pitch:
            self.pitch_predictor = VariancePredictor(
                adim, pitch_predictor_layers, pitch_predictor_chans, pitch_predictor_kernel_size, pitch_predictor_dropout
            )
            self.pitch_embed = _value_embed(adim, pitch_embed_kernel_size, pitch_embed_dropout)
        self.energy_predictor: VariancePredictor | None = None
        self.energy_embed: nn.Module | None = None
        if use_energy:
            self.energy_predictor = VariancePredictor(
                adim, energy_predictor_layers, energy_predictor_chans, energy_predictor_kernel_size,
                energy_predictor_dropout,
            )  # fmt: skip
            self.energy_embed = _value_embed(adim, energy_embed_kernel_size, energy_embed_dropout)
        self.decoder = stack(
            None, dunits, dlayers, decoder_type, transformer_dec_dropout_rate,
            transformer_dec_positional_dropout_rate, transformer_dec_attn_dropout_rate,
            decoder_normalize_before, conformer_dec_kernel_size,
        )  # fmt: skip
        self.feat_out = nn.Linear(adim, odim * reduction_factor)
        self.postnet: Postnet | None = None
        if postnet_layers > 0:
            self.postnet = Postnet(odim, postnet_layers, postnet_chans, postnet_filts, postnet_dropout_rate, use_batch_norm)
        _initialize(self, init_type)
        if encoder_type == "transformer" and use_scaled_pos_enc:
            self.encoder.embed[-1].alpha.data = torch.tensor(float(init_enc_alpha))
        if decoder_type == "transformer" and use_scaled_pos_enc:
            self.decoder.embed[-1].alpha.data = torch.tensor(float(init_dec_alpha))
        self.criterion = FastSpeech2Loss(use_masking, use_weighted_masking)

    def _variances(
        self, hs: torch.Tensor, pad: torch.Tensor, ps: torch.Tensor | None, es: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``hs`` plus pitch / energy embeddings (targets if given, else predictions)."""
        p_outs = e_outs = None
        out = hs
        if self.pitch_predictor is not None and self.pitch_embed is not None:
            src = hs.detach() if self.stop_gradient_from_pitch_predictor else hs
            p_outs = self.pitch_predictor(src, pad).unsqueeze(-1)  # (B, T, 1)
            out = out + self.pitch_embed(p_outs if ps is None else ps)
        if self.energy_predictor is not None and self.energy_embed is not None:
            src = hs.detach() if self.stop_gradient_from_energy_predictor else hs
            e_outs = self.energy_predictor(src, pad).unsqueeze(-1)
            out = out + self.energy_embed(e_outs if es is None else es)
        return out, p_outs, e_outs

    def _decode(self, hs: torch.Tensor, olens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keep = make_non_pad_mask(olens, hs.size(1))
        zs = self.decoder(hs, keep)
        before = self.feat_out(zs).view(zs.size(0), -1, self.odim)
        if self.postnet is None:
            return before, before
        return before, before + self.postnet(before, ~keep.unsqueeze(-1))

    def forward(
        self,
        xs: torch.Tensor,
        ilens: torch.Tensor,
        ys: torch.Tensor,
        olens: torch.Tensor,
        ds: torch.Tensor,
        ps: torch.Tensor | None = None,
        es: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Teacher-forced losses. ``xs`` ``(B, T_text + 1)`` ids ending in eos, ``ds`` frames per
        token (summing to ``olens``), ``ys`` ``(B, T_feats, odim)`` normalised mel targets,
        ``ps`` / ``es`` ``(B, T_text + 1, 1)`` normalised token pitch / energy."""
        keep = make_non_pad_mask(ilens, xs.size(1))
        hs = self.encoder(xs, keep)
        d_outs = self.duration_predictor(hs, ~keep)
        hs, p_outs, e_outs = self._variances(hs, ~keep, ps, es)
        hs = length_regulate(hs, ds)
        before, after = self._decode(hs, olens)
        ys = ys[:, : before.size(1)]
        return self.criterion(
            after if self.postnet is not None else None, before, d_outs, p_outs, e_outs, ys, ds, ps, es, ilens, olens
        )

    @torch.no_grad()
    def inference(
        self, xs: torch.Tensor, ilens: torch.Tensor, ds: torch.Tensor | None = None, alpha: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(feats (B, T_feats, odim), durations (B, T_text + 1))``: durations predicted (scaled by
        ``alpha``; the eos token gets 0 frames, as in training) unless ``ds`` is given."""
        keep = make_non_pad_mask(ilens, xs.size(1))
        hs = self.encoder(xs, keep)
        if ds is None:
            ds = self.duration_predictor.inference(hs, ~keep, alpha)
            ds[torch.arange(xs.size(0), device=xs.device), ilens - 1] = 0  # eos
            empty = ds.sum(1) == 0
            if empty.any():  # ESPnet2's fallback: one frame per token rather than no output
                ds[empty] = keep[empty].long()
        hs, _, _ = self._variances(hs, ~keep, None, None)
        olens = ds.sum(1)
        _, after = self._decode(length_regulate(hs, ds), olens)
        return after, ds


class _ValueEmbed(nn.Sequential):
    """``Conv1d(1, adim, k)`` + dropout on ``(B, T, 1)`` token values -> ``(B, T, adim)``
    (ESPnet2's ``pitch_embed`` / ``energy_embed``, names ``0`` and ``1``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def _value_embed(adim: int, kernel_size: int, dropout: float) -> nn.Module:
    if kernel_size % 2 != 1:
        raise ValueError(f"tts_conf: embed kernel_size={kernel_size} must be odd (e.g. {kernel_size + 1})")
    return _ValueEmbed(nn.Conv1d(1, adim, kernel_size, padding=(kernel_size - 1) // 2), Dropout(dropout))


_INITS = {
    "xavier_uniform": nn.init.xavier_uniform_,
    "xavier_normal": nn.init.xavier_normal_,
    "kaiming_uniform": lambda p: nn.init.kaiming_uniform_(p, nonlinearity="relu"),
    "kaiming_normal": lambda p: nn.init.kaiming_normal_(p, nonlinearity="relu"),
    "normal": lambda p: nn.init.normal_(p, 0.0, 0.02),
}


def _initialize(model: nn.Module, init_type: str) -> None:
    """ESPnet2's ``initialize``: matrices by ``init_type``, biases 0, embeddings and
    LayerNorms reset to torch's defaults (``pytorch``: leave torch's init)."""
    if init_type == "pytorch":
        return
    for p in model.parameters():
        if p.dim() > 1:
            _INITS[init_type](p.data)
    for name, p in model.named_parameters():
        if ".bias" in name and p.dim() == 1:
            p.data.zero_()
    for module in model.modules():
        if isinstance(module, nn.Embedding | nn.LayerNorm):
            module.reset_parameters()


def add_eos(text: torch.Tensor, text_lengths: torch.Tensor, eos: int) -> torch.Tensor:
    """``(B, T)`` ids -> ``(B, T + 1)`` with ``eos`` after each utterance's last token."""
    xs = F.pad(text, (0, 1), value=0)
    xs[torch.arange(text.size(0), device=text.device), text_lengths] = eos
    return xs
