"""TTS features: ESPnet2's log10 mel magnitude, energy and YIN pitch, token averages."""

from __future__ import annotations

import math

import pytest
import torch
from espnet_model.tts.features import Energy, LogMelFbank, Pitch, average_by_duration

CONF = {"fs": 16000, "n_fft": 512, "hop_length": 128, "n_mels": 20, "fmin": 0, "fmax": 8000}


def _sine(freq: float, seconds: float = 0.5, fs: int = 16000) -> torch.Tensor:
    return 0.5 * torch.sin(2 * math.pi * freq * torch.arange(int(seconds * fs)) / fs)


def test_log_mel_is_log10_of_the_mel_magnitude_with_centred_frames() -> None:
    fe = LogMelFbank(**CONF)
    wav = torch.randn(4000)
    feats, lengths = fe(wav[None], torch.tensor([4000]))
    assert lengths.tolist() == [4000 // 128 + 1] and feats.shape == (1, 32, 20)
    spec = torch.stft(wav, 512, 128, window=torch.hann_window(512), center=True, pad_mode="reflect", return_complex=True)
    magnitude = spec.abs().square().clamp(min=1e-10).sqrt().t()  # (T, F)
    expected = (magnitude @ fe.logmel.melmat).clamp(min=1e-10).log10()
    torch.testing.assert_close(feats[0], expected, atol=1e-4, rtol=1e-4)
    assert "logmel.melmat" in fe.state_dict()  # ESPnet2's buffer name


def test_log_mel_of_a_padded_batch_equals_each_utterance_alone() -> None:
    fe = LogMelFbank(**CONF)
    a, b = torch.randn(3000), torch.randn(2000)
    batch = torch.stack([a, torch.nn.functional.pad(b, (0, 1000))])
    feats, lengths = fe(batch, torch.tensor([3000, 2000]))
    alone, _ = fe(b[None], torch.tensor([2000]))
    torch.testing.assert_close(feats[1, : int(lengths[1])], alone[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ({"fs": 16000, "fmax": 9000}, r"feats_extract_conf.fmin=80, fmax=9000 must satisfy"),
        ({"log_base": None}, r"feats_extract_conf.log_base=None is not supported"),
        ({"n_fft": 256, "win_length": 512}, r"feats_extract_conf.win_length=512 exceeds n_fft=256"),
        ({"window": "kaiser"}, r"feats_extract_conf.window='kaiser' is not supported"),
    ],
)
def test_bad_settings_name_the_feats_extract_conf_key(conf: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LogMelFbank(**conf)


def test_average_by_duration_means_each_tokens_frames() -> None:
    x = torch.tensor([1.0, 3.0, 0.0, 5.0, 7.0, 0.0])
    d = torch.tensor([2, 0, 3, 1])
    assert average_by_duration(x, d, voiced_only=False).tolist() == [2.0, 0.0, 4.0, 0.0]
    assert average_by_duration(x, d, voiced_only=True).tolist() == [2.0, 0.0, 6.0, 0.0]


def test_energy_is_token_averaged_and_follows_loudness() -> None:
    energy = Energy(fs=16000, n_fft=512, hop_length=128)
    wav = torch.cat([_sine(300, 0.25) * 0.1, _sine(300, 0.25)])
    frames = torch.tensor([4000 // 128 * 2 + 1])
    d = torch.tensor([[31, 32]])
    values, lengths = energy(wav[None], torch.tensor([8000]), frames, d, torch.tensor([2]))
    assert values.shape == (1, 2, 1) and lengths.tolist() == [2]
    assert values[0, 1, 0] > 5 * values[0, 0, 0]


@pytest.mark.parametrize("freq", [120.0, 220.0])
def test_yin_pitch_finds_the_frequency_of_a_sine(freq: float) -> None:
    pitch = Pitch(fs=16000, n_fft=512, hop_length=128, f0min=80, f0max=400, use_log_f0=False)
    f0 = pitch.f0(_sine(freq))
    voiced = f0[3:-3]
    assert (voiced > 0).all() and abs(float(voiced.median()) - freq) < 0.03 * freq
    silent = pitch.f0(torch.zeros(4000))
    assert (silent == 0).all()


def test_pitch_is_log_and_continuous_and_token_averaged() -> None:
    pitch = Pitch(fs=16000, n_fft=512, hop_length=128, f0min=80, f0max=400)
    wav = torch.cat([_sine(200, 0.25), torch.zeros(4000)])
    frames = torch.tensor([8000 // 128 + 1])
    values, _ = pitch(wav[None], torch.tensor([8000]), frames, torch.tensor([[30, 33]]), torch.tensor([2]))
    assert values[0, :, 0].tolist() == pytest.approx([math.log(200)] * 2, abs=0.05)  # silence filled in


def test_pitch_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="YIN needs n_fft >= 402"):
        Pitch(fs=16000, n_fft=256, f0min=80)
    with pytest.raises(ValueError, match="reduction_factor=2: only 1"):
        Energy(reduction_factor=2)
