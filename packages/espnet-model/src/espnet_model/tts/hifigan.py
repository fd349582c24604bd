"""HiFi-GAN vocoder (Kong et al. 2020) trained with two optimizers.

Module and argument names follow ESPnet2's ``espnet2/gan_tts/hifigan`` (``generator``:
``input_conv``, ``upsamples``, ``blocks`` of ``convs1`` / ``convs2``, ``output_conv``;
``discriminator``: ``msd`` scale and ``mpd`` period discriminators) and its loss weights
(``lambda_adv`` 1, ``lambda_mel`` 45, ``lambda_feat_match`` 2). Weight norm is torch's
parametrisation (so state-dict names carry ``parametrizations.weight``).

:class:`HiFiGAN` takes raw speech like the acoustic model: it computes the same log-mel
(``feats_extract_conf``), cuts a random ``segment_size``-frame piece of each utterance,
and returns ``[OptimizationStep(generator loss, "generator"), OptimizationStep(
discriminator loss, "discriminator")]``. The trainer backpropagates them in that order
and steps each optimizer after its own backward pass: the discriminator's loss sees the
generated audio detached, so the generator's update (made first, in place) is never
inside the graph the discriminator's backward pass walks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from espnet_model.optimization import OptimizationStep
from espnet_model.tts.builder import _check_keys, _closest
from espnet_model.tts.features import LogMelFbank

_SLOPE = 0.1  # LeakyReLU slope of HiFi-GAN


def _normed(module: nn.Module, spectral: bool = False) -> nn.Module:
    return spectral_norm(module) if spectral else weight_norm(module)


class ResidualBlock(nn.Module):
    """Dilated convolutions with residual connections (``convs1`` dilated, ``convs2`` not)."""

    def __init__(self, kernel_size: int, channels: int, dilations: Sequence[int]) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"generator_params.resblock_kernel_sizes: {kernel_size} must be odd")
        conv = lambda d: _normed(nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=(kernel_size - 1) // 2 * d))  # noqa: E731
        self.convs1 = nn.ModuleList(nn.Sequential(nn.LeakyReLU(_SLOPE), conv(d)) for d in dilations)
        self.convs2 = nn.ModuleList(nn.Sequential(nn.LeakyReLU(_SLOPE), conv(1)) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            x = x + c2(c1(x))
        return x


class HiFiGANGenerator(nn.Module):
    """Log-mel ``(B, in_channels, T)`` -> waveform ``(B, 1, T * prod(upsample_scales))``."""

    def __init__(
        self,
        in_channels: int = 80,
        out_channels: int = 1,
        channels: int = 512,
        kernel_size: int = 7,
        upsample_scales: Sequence[int] = (8, 8, 2, 2),
        upsample_kernel_sizes: Sequence[int] = (16, 16, 4, 4),
        resblock_kernel_sizes: Sequence[int] = (3, 7, 11),
        resblock_dilations: Sequence[Sequence[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
    ) -> None:
        super().__init__()
        if len(upsample_scales) != len(upsample_kernel_sizes) or any(
            k != 2 * s for s, k in zip(upsample_scales, upsample_kernel_sizes, strict=False)
        ):
            raise ValueError(
                f"generator_params.upsample_kernel_sizes={list(upsample_kernel_sizes)} must be twice "
                f"upsample_scales={list(upsample_scales)}, one per scale"
            )
        if len(resblock_kernel_sizes) != len(resblock_dilations):
            raise ValueError("generator_params: resblock_kernel_sizes and resblock_dilations need one entry per block")
        self.upsample_factor = int(torch.tensor(list(upsample_scales)).prod()) * out_channels
        self.num_blocks = len(resblock_kernel_sizes)
        self.input_conv = _normed(nn.Conv1d(in_channels, channels, kernel_size, padding=(kernel_size - 1) // 2))
        self.upsamples = nn.ModuleList()
        self.blocks = nn.ModuleList()
        ch = channels
        for i, (scale, k) in enumerate(zip(upsample_scales, upsample_kernel_sizes, strict=True)):
            ch = channels // (2 ** (i + 1))
            up = nn.ConvTranspose1d(ch * 2, ch, k, scale, padding=scale // 2 + scale % 2, output_padding=scale % 2)
            self.upsamples.append(nn.Sequential(nn.LeakyReLU(_SLOPE), _normed(up)))
            for rk, dil in zip(resblock_kernel_sizes, resblock_dilations, strict=True):
                self.blocks.append(ResidualBlock(rk, ch, dil))
        self.output_conv = nn.Sequential(
            nn.LeakyReLU(), _normed(nn.Conv1d(ch, out_channels, kernel_size, padding=(kernel_size - 1) // 2)), nn.Tanh()
        )
        for m in self.modules():  # the official initialisation: N(0, 0.01) weights, then weight norm
            if isinstance(m, nn.Conv1d | nn.ConvTranspose1d):
                with torch.no_grad():
                    m.parametrizations.weight.original1.normal_(0.0, 0.01)
                    dims = list(range(1, m.weight.dim()))  # weight_norm's dim=0
                    m.parametrizations.weight.original0.copy_(m.parametrizations.weight.original1.norm(dim=dims, keepdim=True))

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        c = self.input_conv(c)
        for i, up in enumerate(self.upsamples):
            c = up(c)
            blocks = self.blocks[i * self.num_blocks : (i + 1) * self.num_blocks]
            c = sum((block(c) for block in blocks), torch.zeros_like(c)) / self.num_blocks
        return self.output_conv(c)


class HiFiGANPeriodDiscriminator(nn.Module):
    """Waveform folded into ``(T / period, period)``, 2-D convolutions along time."""

    def __init__(
        self,
        period: int,
        kernel_sizes: Sequence[int] = (5, 3),
        channels: int = 32,
        downsample_scales: Sequence[int] = (3, 3, 3, 3, 1),
        max_downsample_channels: int = 1024,
    ) -> None:
        super().__init__()
        self.period = period
        self.convs = nn.ModuleList()
        in_ch, out_ch = 1, channels
        for scale in downsample_scales:
            conv = nn.Conv2d(in_ch, out_ch, (kernel_sizes[0], 1), (scale, 1), padding=((kernel_sizes[0] - 1) // 2, 0))
            self.convs.append(nn.Sequential(_normed(conv), nn.LeakyReLU(_SLOPE)))
            in_ch, out_ch = out_ch, min(out_ch * 4, max_downsample_channels)
        self.output_conv = _normed(nn.Conv2d(in_ch, 1, (kernel_sizes[1] - 1, 1), 1, padding=((kernel_sizes[1] - 1) // 2, 0)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b, c, t = x.shape
        if t % self.period:
            x = F.pad(x, (0, self.period - t % self.period), "reflect")
        x = x.view(b, c, -1, self.period)
        outs = []
        for layer in self.convs:
            x = layer(x)
            outs.append(x)
        outs.append(torch.flatten(self.output_conv(x), 1))
        return outs


class HiFiGANScaleDiscriminator(nn.Module):
    """1-D grouped strided convolutions over the (pooled) waveform."""

    def __init__(
        self,
        kernel_sizes: Sequence[int] = (15, 41, 5, 3),
        channels: int = 128,
        max_downsample_channels: int = 1024,
        max_groups: int = 16,
        downsample_scales: Sequence[int] = (2, 2, 4, 4, 1),
        use_spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        n = lambda m: _normed(m, use_spectral_norm)  # noqa: E731
        self.layers = nn.ModuleList(
            [nn.Sequential(n(nn.Conv1d(1, channels, kernel_sizes[0], padding=(kernel_sizes[0] - 1) // 2)), nn.LeakyReLU(_SLOPE))]
        )
        in_ch = out_ch = channels
        groups = 4
        for scale in downsample_scales:
            conv = nn.Conv1d(in_ch, out_ch, kernel_sizes[1], scale, padding=(kernel_sizes[1] - 1) // 2, groups=groups)
            self.layers.append(nn.Sequential(n(conv), nn.LeakyReLU(_SLOPE)))
            in_ch, out_ch, groups = out_ch, min(out_ch * 2, max_downsample_channels), min(groups * 4, max_groups)
        out_ch = min(in_ch * 2, max_downsample_channels)
        self.layers.append(nn.Sequential(n(nn.Conv1d(in_ch, out_ch, kernel_sizes[2], padding=(kernel_sizes[2] - 1) // 2)), nn.LeakyReLU(_SLOPE)))
        self.layers.append(n(nn.Conv1d(out_ch, 1, kernel_sizes[3], padding=(kernel_sizes[3] - 1) // 2)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for layer in self.layers:
            x = layer(x)
            outs.append(x)
        return outs


class HiFiGANMultiScaleMultiPeriodDiscriminator(nn.Module):
    """``msd``: ``scales`` scale discriminators on 1x, 2x, 4x... average-pooled audio (the first
    with spectral norm when ``follow_official_norm``); ``mpd``: one period discriminator per period."""

    def __init__(
        self,
        scales: int = 3,
        periods: Sequence[int] = (2, 3, 5, 7, 11),
        scale_discriminator_params: Mapping[str, Any] | None = None,
        period_discriminator_params: Mapping[str, Any] | None = None,
        follow_official_norm: bool = True,
    ) -> None:
        super().__init__()
        sp = dict(scale_discriminator_params or {})
        pp = dict(period_discriminator_params or {})
        self.msd = nn.Module()
        self.msd.discriminators = nn.ModuleList(  # type: ignore[assignment]
            HiFiGANScaleDiscriminator(**sp, use_spectral_norm=follow_official_norm and i == 0) for i in range(scales)
        )
        self.mpd = nn.Module()
        self.mpd.discriminators = nn.ModuleList(HiFiGANPeriodDiscriminator(p, **pp) for p in periods)  # type: ignore[assignment]

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """Each discriminator's layer outputs (its last entry is the real/fake score map)."""
        outs = []
        pooled = x
        for i, d in enumerate(self.msd.discriminators):  # type: ignore[arg-type]
            if i > 0:
                pooled = F.avg_pool1d(pooled, 4, 2, padding=2)
            outs.append(d(pooled))
        outs.extend(d(x) for d in self.mpd.discriminators)  # type: ignore[union-attr]
        return outs


def generator_adv_loss(fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """LSGAN: ``sum_d mean((1 - D_d(G(c)))^2)``."""
    return sum(((1 - outs[-1]) ** 2).mean() for outs in fake)  # type: ignore[return-value]


def discriminator_adv_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """LSGAN: ``(sum_d mean((1 - D_d(y))^2), sum_d mean(D_d(G(c))^2))``."""
    real_loss = sum(((1 - r[-1]) ** 2).mean() for r in real)
    fake_loss = sum((f[-1] ** 2).mean() for f in fake)
    return real_loss, fake_loss  # type: ignore[return-value]


def feat_match_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Mean L1 between the real (detached) and generated hidden layers of each discriminator
    (score maps excluded), summed over discriminators (ESPnet2's defaults)."""
    total = 0.0
    for r, f in zip(real, fake, strict=True):
        pairs = list(zip(r[:-1], f[:-1], strict=True))
        total = total + sum(F.l1_loss(b, a.detach()) for a, b in pairs) / max(len(pairs), 1)
    return total  # type: ignore[return-value]


class HiFiGAN(nn.Module):
    """The vocoder and its training (see the module docstring).

    Args:
        feats_extract: the acoustic model's log-mel settings (the generator's input).
        generator_params: :class:`HiFiGANGenerator` arguments (``in_channels`` is ``n_mels``;
            ``prod(upsample_scales)`` must be the hop length).
        discriminator_params: :class:`HiFiGANMultiScaleMultiPeriodDiscriminator` arguments.
        segment_size: mel frames per training segment.
        lambda_adv / lambda_mel / lambda_feat_match: generator loss weights.
    """

    def __init__(
        self,
        feats_extract: LogMelFbank,
        generator_params: Mapping[str, Any] | None = None,
        discriminator_params: Mapping[str, Any] | None = None,
        segment_size: int = 32,
        lambda_adv: float = 1.0,
        lambda_mel: float = 45.0,
        lambda_feat_match: float = 2.0,
    ) -> None:
        super().__init__()
        gen = dict(generator_params or {})
        if gen.setdefault("in_channels", feats_extract.n_mels) != feats_extract.n_mels:
            raise ValueError(f"generator_params.in_channels={gen['in_channels']} differs from n_mels={feats_extract.n_mels}; remove it")
        self.feats_extract = feats_extract
        self.generator = HiFiGANGenerator(**gen)
        if self.generator.upsample_factor != feats_extract.hop_length:
            raise ValueError(
                f"generator_params.upsample_scales multiply to {self.generator.upsample_factor} but "
                f"feats_extract_conf.hop_length={feats_extract.hop_length}: the generator must make one "
                "hop of samples per mel frame"
            )
        self.discriminator = HiFiGANMultiScaleMultiPeriodDiscriminator(**dict(discriminator_params or {}))
        if segment_size < 1:
            raise ValueError(f"segment_size={segment_size} must be >= 1 mel frames")
        self.segment_size = segment_size
        self.lambda_adv, self.lambda_mel, self.lambda_feat_match = lambda_adv, lambda_mel, lambda_feat_match
        self.sample_rate: int = feats_extract.fs
        params = feats_extract.get_parameters()
        params["hop_length"] = params.pop("n_shift")
        self.feats_extract_conf: dict[str, Any] = params

    def _segments(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Random (training) or first (evaluation) ``segment_size`` frames of each utterance's
        log-mel ``(B, n_mels, seg)`` and the matching audio ``(B, 1, seg * hop)``."""
        hop, seg = self.feats_extract.hop_length, self.segment_size
        feats, lengths = self.feats_extract(speech, speech_lengths)
        if feats.size(1) < seg:
            feats = F.pad(feats, (0, 0, 0, seg - feats.size(1)))
        speech = F.pad(speech, (0, max(0, (feats.size(1) + 1) * hop - speech.size(1))))
        most = (lengths - seg).clamp(min=0)
        starts = (torch.rand(len(most), device=most.device) * (most + 1)).long() if self.training else torch.zeros_like(most)
        mel = torch.stack([feats[i, s : s + seg] for i, s in enumerate(starts.tolist())]).transpose(1, 2)
        wav = torch.stack([speech[i, s * hop : (s + seg) * hop] for i, s in enumerate(starts.tolist())]).unsqueeze(1)
        return mel, wav

    def forward(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor
    ) -> tuple[list[OptimizationStep], dict[str, torch.Tensor], int]:
        """The multi-optimizer training contract for ``(B, S)`` waveforms at :attr:`sample_rate`."""
        mel, wav = self._segments(speech, speech_lengths)
        fake_wav = self.generator(mel)
        fake = self.discriminator(fake_wav)
        real = self.discriminator(wav)
        lengths = torch.full((wav.size(0),), wav.size(-1), device=wav.device)
        fake_mel, _ = self.feats_extract(fake_wav.squeeze(1), lengths)
        real_mel, _ = self.feats_extract(wav.squeeze(1), lengths)
        mel_loss = F.l1_loss(fake_mel, real_mel)
        adv_loss = generator_adv_loss(fake)
        fm_loss = feat_match_loss(real, fake)
        gen_loss = self.lambda_mel * mel_loss + self.lambda_adv * adv_loss + self.lambda_feat_match * fm_loss
        # the discriminator's turn: generated audio detached, so only the discriminator learns from it
        real_loss, fake_loss = discriminator_adv_loss(real, self.discriminator(fake_wav.detach()))
        dis_loss = real_loss + fake_loss
        stats = {
            "generator_loss": gen_loss.detach(), "generator_mel_loss": mel_loss.detach(),
            "generator_adv_loss": adv_loss.detach(), "generator_feat_match_loss": fm_loss.detach(),
            "discriminator_loss": dis_loss.detach(), "discriminator_real_loss": real_loss.detach(),
            "discriminator_fake_loss": fake_loss.detach(), "loss": mel_loss.detach(),
        }  # fmt: skip
        steps = [OptimizationStep(gen_loss, "generator"), OptimizationStep(dis_loss, "discriminator")]
        return steps, stats, speech.size(0)

    @torch.no_grad()
    def inference(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(T, n_mels)`` (the acoustic model's ``feat_gen``) -> waveform ``(T * hop,)``."""
        if mel.dim() != 2 or mel.size(1) != self.feats_extract.n_mels:
            raise ValueError(f"mel must be (frames, {self.feats_extract.n_mels}), got {tuple(mel.shape)}")
        return self.generator(mel.t().unsqueeze(0).to(next(self.parameters()).dtype)).view(-1)


HIFIGAN_KEYS = ("feats_extract_conf", "generator_params", "discriminator_params", "segment_size",
                "lambda_adv", "lambda_mel", "lambda_feat_match")  # fmt: skip


def build_hifigan(conf: Mapping[str, Any]) -> HiFiGAN:
    """A :class:`HiFiGAN` from its config (:data:`HIFIGAN_KEYS`); ``feats_extract_conf`` must be
    the acoustic model's so the generator reads the mel it writes. Errors name the key."""
    if not isinstance(conf, Mapping):
        raise ValueError(f"vocoder conf must be a mapping, got {type(conf).__name__}")
    for key in conf:
        if key not in HIFIGAN_KEYS:
            raise ValueError(f"unknown HiFi-GAN key {key!r}{_closest(str(key), HIFIGAN_KEYS)}; valid keys: {', '.join(HIFIGAN_KEYS)}")
    for key, cls in (("generator_params", HiFiGANGenerator), ("discriminator_params", HiFiGANMultiScaleMultiPeriodDiscriminator)):
        _check_keys(key, cls, dict(conf.get(key) or {}))
    feats_conf = dict(conf.get("feats_extract_conf") or {})
    _check_keys("feats_extract_conf", LogMelFbank, feats_conf)
    kwargs = {k: v for k, v in conf.items() if k != "feats_extract_conf"}
    return HiFiGAN(LogMelFbank(**feats_conf), **kwargs)
