"""Griffin-Lim and HiFi-GAN: round trip, the two optimisation steps, compatibility checks."""

from __future__ import annotations

import math

import pytest
import torch
from espnet_model.tts import (
    GriffinLim,
    HiFiGAN,
    OptimizationStep,
    build_feats_extract,
    build_hifigan,
    check_vocoder,
)

FEATS = {"fs": 16000, "n_fft": 512, "hop_length": 128, "n_mels": 40, "fmin": 0, "fmax": 8000}
SMALL = {
    "feats_extract_conf": FEATS, "segment_size": 8,
    "generator_params": {"channels": 16, "upsample_scales": [8, 4, 4], "upsample_kernel_sizes": [16, 8, 8],
                         "resblock_kernel_sizes": [3], "resblock_dilations": [[1, 3]]},
    "discriminator_params": {"scales": 2, "periods": [2, 3],
                             "scale_discriminator_params": {"channels": 16, "max_downsample_channels": 32, "max_groups": 4},
                             "period_discriminator_params": {"channels": 4, "max_downsample_channels": 8}},
}  # fmt: skip


def _sine(freq: float = 440.0, n: int = 16000) -> torch.Tensor:
    return 0.5 * torch.sin(2 * math.pi * freq * torch.arange(n) / 16000)


def test_griffin_lim_round_trip_on_a_sine() -> None:
    fe = build_feats_extract({"feats_extract_conf": FEATS})
    wav = _sine()
    mel, _ = fe(wav[None], torch.tensor([wav.numel()]))
    out = GriffinLim(FEATS, n_iter=32).inference(mel[0])
    assert out.shape == ((mel.size(1) - 1) * 128,) and out.dtype == torch.float32
    spectrum = torch.fft.rfft(out[2000:14000]).abs()
    assert abs(int(spectrum.argmax()) * 16000 / 12000 - 440) < 5  # the same tone comes back
    again, _ = fe(out[None], torch.tensor([out.numel()]))
    loud = mel[0, 4:-4].max(0).values > -2  # the bands that hold the tone
    assert (again[0, 4:-4, loud] - mel[0, 4:-4, loud]).abs().mean() < 0.1
    assert torch.equal(out, GriffinLim(FEATS, n_iter=32).inference(mel[0]))  # deterministic


def test_hifigan_returns_generator_and_discriminator_steps() -> None:
    torch.manual_seed(0)
    model = build_hifigan(SMALL)
    assert isinstance(model, HiFiGAN) and model.sample_rate == 16000
    steps, stats, weight = model(torch.randn(2, 4000) * 0.1, torch.tensor([4000, 3000]))
    assert [s.name for s in steps] == ["generator", "discriminator"] and weight == 2
    assert all(isinstance(s, OptimizationStep) and s.loss.dim() == 0 and s.loss.requires_grad for s in steps)
    assert {"generator_mel_loss", "generator_adv_loss", "generator_feat_match_loss", "discriminator_loss"} <= set(stats)
    torch.testing.assert_close(
        stats["generator_loss"],
        45 * stats["generator_mel_loss"] + stats["generator_adv_loss"] + 2 * stats["generator_feat_match_loss"],
    )


def test_steps_in_the_trainers_order_update_each_side_only_from_its_loss() -> None:
    """As espnet_train does it: backward + step of the generator, then of the discriminator."""
    torch.manual_seed(0)
    model = build_hifigan(SMALL)
    g_opt = torch.optim.Adam(model.generator.parameters(), 1e-3)
    d_opt = torch.optim.Adam(model.discriminator.parameters(), 1e-3)
    steps, _, _ = model(torch.randn(2, 4000) * 0.1, torch.tensor([4000, 4000]))
    g_opt.zero_grad(set_to_none=True)
    steps[0].loss.backward(retain_graph=True)
    g_opt.step()  # in place: the discriminator's graph must not go through the generator
    d_opt.zero_grad(set_to_none=True)
    model.generator.zero_grad(set_to_none=True)
    steps[1].loss.backward()
    assert all(p.grad is None for p in model.generator.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.discriminator.parameters())
    d_opt.step()


def test_hifigan_inference_makes_one_hop_per_frame() -> None:
    model = build_hifigan(SMALL).eval()
    wav = model.inference(torch.randn(20, 40))
    assert wav.shape == (20 * 128,) and wav.abs().max() <= 1
    with pytest.raises(ValueError, match=r"mel must be \(frames, 40\)"):
        model.inference(torch.randn(20, 80))


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ({**SMALL, "generator_params": {"upsample_scales": [8, 8], "upsample_kernel_sizes": [16, 16]}},
         r"upsample_scales multiply to 64 but feats_extract_conf.hop_length=128"),
        ({**SMALL, "generator_params": {"upsample_scales": [8, 16], "upsample_kernel_sizes": [16, 16]}},
         r"upsample_kernel_sizes=\[16, 16\] must be twice upsample_scales"),
        ({**SMALL, "segment_sizes": 8}, r"unknown HiFi-GAN key 'segment_sizes' \(did you mean 'segment_size'\?\)"),
        ({**SMALL, "generator_params": {"chanels": 4}}, r"generator_params.chanels is not an argument of HiFiGANGenerator \(did you mean 'channels'\?\)"),
        ({**SMALL, "generator_params": {**SMALL["generator_params"], "in_channels": 80}}, r"in_channels=80 differs from n_mels=40"),
    ],
)  # fmt: skip
def test_bad_hifigan_conf(conf: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_hifigan(conf)


def test_check_vocoder_refuses_other_audio_settings() -> None:
    from espnet_model.tts import build_tts

    acoustic = build_tts({"tts": "fastspeech2", "normalize": None, "feats_extract_conf": FEATS,
                          "tts_conf": {"adim": 8, "aheads": 2, "elayers": 1, "dlayers": 1, "eunits": 8, "dunits": 8}}, 10)  # fmt: skip
    check_vocoder(acoustic, GriffinLim(FEATS))
    check_vocoder(acoustic, build_hifigan(SMALL))
    with pytest.raises(ValueError, match=r"sample-rate mismatch: the acoustic model makes 16000 Hz .* built for 22050 Hz"):
        check_vocoder(acoustic, GriffinLim({**FEATS, "fs": 22050}))
    with pytest.raises(ValueError, match=r"mel-setting mismatch .*n_mels: acoustic 40 vs vocoder 80"):
        check_vocoder(acoustic, GriffinLim({**FEATS, "n_mels": 80}))
    with pytest.raises(ValueError, match=r"hop_length: acoustic 128 vs vocoder 256"):
        check_vocoder(acoustic, GriffinLim({**FEATS, "n_shift": 256}))
    with pytest.raises(TypeError, match="has no sample_rate"):
        check_vocoder(acoustic, object())  # type: ignore[arg-type]
