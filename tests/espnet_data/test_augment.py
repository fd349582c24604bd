"""Tests for espnet_data.augment: speed perturbation, reverberation and additive noise, seeded
per sample."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from espnet_data import ShardDataset, shard_paths
from espnet_data.augment import (
    AddNoise,
    AddReverb,
    SpeedPerturb,
    augmentation_stages,
    read_noise_list,
)
from espnet_data.testing import tone
from torch.utils.data import DataLoader


def _sample(key: str = "utt", seconds: float = 1.0, freq: float = 440.0) -> dict[str, Any]:
    audio = tone(seconds, freq=freq)
    return {"key": key, "audio": audio, "sample_rate": 16000, "duration": len(audio) / 16000}


def _peak_hz(audio: np.ndarray, rate: int = 16000) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / rate)[spectrum.argmax()])


def _snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    noise = noisy.astype(np.float64) - clean
    return 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise**2))


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_changes_length_and_pitch_together(factor) -> None:
    out = SpeedPerturb([factor]).perturb(_sample())
    assert out["speed"] == factor
    assert len(out["audio"]) == pytest.approx(16000 / factor, abs=2)
    assert out["duration"] == len(out["audio"]) / 16000
    assert _peak_hz(out["audio"]) == pytest.approx(440 * factor, abs=3)


def test_speed_factor_is_drawn_per_key_epoch_and_seed() -> None:
    samples = [_sample(f"u{i:03d}", 0.2) for i in range(60)]
    stage = SpeedPerturb()
    first = [s["speed"] for s in stage(samples)]
    assert set(first) == {0.9, 1.0, 1.1}
    assert [s["speed"] for s in stage(reversed(samples))] == first[::-1]  # order does not matter
    stage.set_epoch(1)
    assert [s["speed"] for s in stage(samples)] != first
    assert [s["speed"] for s in SpeedPerturb(seed=5)(samples)] != first
    kept = [(s, out) for s, out in zip(samples, stage(samples), strict=True) if out["speed"] == 1.0]
    assert kept and all(out["audio"] is s["audio"] for s, out in kept)  # 1.0 costs nothing


def test_speed_factors_are_checked() -> None:
    with pytest.raises(ValueError, match="speed factors"):
        SpeedPerturb([])
    with pytest.raises(ValueError, match="speed factors"):
        SpeedPerturb([0.9, 3.0])


@pytest.fixture
def noise_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "white.flac", (0.1 * rng.standard_normal(48000)).astype(np.float32), 16000)
    sf.write(tmp_path / "short8k.wav", (0.2 * rng.standard_normal(1000)).astype(np.float32), 8000)
    (tmp_path / "noise.txt").write_text("# noises\nwhite.flac\n\nshort8k.wav\n")
    return tmp_path


def test_noise_is_added_at_an_snr_in_range(noise_dir) -> None:
    stage = AddNoise(noise_dir / "noise.txt", snr_db=(5.0, 15.0), seed=1)
    snrs = []
    for i in range(20):
        clean = _sample(f"u{i}", 0.8)
        noisy = stage.add(clean)
        assert len(noisy["audio"]) == len(clean["audio"]) and noisy["audio"].dtype == np.float32
        assert _snr_db(clean["audio"], noisy["audio"]) == pytest.approx(noisy["snr_db"], abs=0.01)
        assert Path(noisy["noise"]).name in {"white.flac", "short8k.wav"}
        snrs.append(noisy["snr_db"])
    assert 5.0 <= min(snrs) < max(snrs) <= 15.0
    assert {Path(stage.add(_sample(f"u{i}"))["noise"]).name for i in range(20)} == {
        "white.flac",
        "short8k.wav",  # 1000 samples at 8 kHz: resampled and repeated over 1 s
    }


def test_noise_is_seeded_per_key_and_epoch(noise_dir) -> None:
    stage = AddNoise([noise_dir / "white.flac"], seed=2)
    a = stage.add(_sample("x"))["audio"]
    np.testing.assert_array_equal(a, AddNoise([noise_dir / "white.flac"], seed=2).add(_sample("x"))["audio"])
    stage.set_epoch(1)
    assert not np.array_equal(a, stage.add(_sample("x"))["audio"])


def test_noise_prob_zero_passes_samples_through(noise_dir) -> None:
    sample = _sample()
    assert AddNoise(noise_dir / "white.flac", prob=0.0).add(sample) is sample


def test_noise_inputs_are_checked(noise_dir, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        AddNoise([noise_dir / "missing.wav"])
    with pytest.raises(FileNotFoundError, match="nolist.txt not found"):
        AddNoise(tmp_path / "nolist.txt")
    with pytest.raises(ValueError, match="snr_db"):
        AddNoise(noise_dir / "white.flac", snr_db=(20, 10))
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ValueError, match="no noise files"):
        AddNoise(tmp_path / "empty.txt")
    assert read_noise_list(noise_dir / "noise.txt") == [
        str(noise_dir / "white.flac"),
        str(noise_dir / "short8k.wav"),
    ]


def test_an_unreadable_noise_file_leaves_the_sample_clean(tmp_path, caplog) -> None:
    (tmp_path / "broken.wav").write_bytes(b"not audio at all")
    sample = _sample()
    with caplog.at_level(logging.WARNING):
        assert AddNoise([tmp_path / "broken.wav"]).add(sample) is sample
    assert "broken.wav unusable" in caplog.text


def test_augmentation_stages_builds_what_is_asked(noise_dir) -> None:
    assert augmentation_stages() == []
    stages = augmentation_stages(speed_factors=[0.9, 1.1], noise=noise_dir / "noise.txt", seed=3)
    assert [type(s) for s in stages] == [SpeedPerturb, AddNoise]
    assert stages[0].factors == [0.9, 1.1] and stages[1].seed == 3
    stages = augmentation_stages(speed_factors=[1.1], reverb=True, reverb_prob=0.5,
                                 noise=noise_dir / "noise.txt")
    assert [type(s) for s in stages] == [SpeedPerturb, AddReverb, AddNoise]  # room before noise
    assert stages[1].files is None and stages[1].prob == 0.5
    rirs = augmentation_stages(rirs=noise_dir / "white.flac")  # files alone turn it on
    assert [type(s) for s in rirs] == [AddReverb] and rirs[0].files == [str(noise_dir / "white.flac")]


def test_simulated_reverb_keeps_length_power_and_draws_per_key_and_epoch() -> None:
    stage = AddReverb(rt60=(0.3, 0.9), prob=1.0, seed=4)
    rt60s = []
    for i in range(12):
        dry = _sample(f"u{i}", 0.8)
        wet = stage.add(dry)
        assert wet["audio"].dtype == np.float32 and len(wet["audio"]) == len(dry["audio"])
        assert np.mean(wet["audio"].astype(np.float64) ** 2) == pytest.approx(
            np.mean(dry["audio"].astype(np.float64) ** 2), rel=1e-4)
        assert not np.allclose(wet["audio"], dry["audio"], atol=1e-3)
        rt60s.append(wet["rt60"])
    assert 0.3 <= min(rt60s) < max(rt60s) <= 0.9
    again = AddReverb(rt60=(0.3, 0.9), seed=4).add(_sample("u0", 0.8))
    np.testing.assert_array_equal(again["audio"], stage.add(_sample("u0", 0.8))["audio"])
    stage.set_epoch(1)
    assert stage.add(_sample("u0", 0.8))["rt60"] != rt60s[0]


def test_reverb_prob_draws_which_samples_get_a_room() -> None:
    sample = _sample()
    assert AddReverb(prob=0.0).add(sample) is sample
    stage = AddReverb(prob=0.5)
    wet = sum("rt60" in stage.add(_sample(f"u{i}", 0.1)) for i in range(200))
    assert 70 < wet < 130


def test_reverb_from_files_resamples_and_keeps_the_words_in_place(tmp_path) -> None:
    rir = np.zeros(800, dtype=np.float32)  # 100 ms at 8 kHz: silence, then the direct path
    rir[80], rir[400] = 0.9, 0.45            # 10 ms of silence; an echo 40 ms after the peak
    sf.write(tmp_path / "room.wav", rir, 8000)
    (tmp_path / "rirs.txt").write_text("room.wav\n")
    click = np.zeros(16000, dtype=np.float32)
    click[1000] = 1.0
    out = AddReverb(tmp_path / "rirs.txt").add(
        {"key": "c", "audio": click, "sample_rate": 16000, "duration": 1.0})
    assert out["rir"] == str(tmp_path / "room.wav")
    wet = np.abs(out["audio"])
    assert abs(int(np.argmax(wet)) - 1000) <= 1          # the direct path is not delayed
    echo = 1300 + int(np.argmax(wet[1300:]))              # 40 ms (640 samples) later, half as loud
    assert abs(echo - 1640) <= 1 and wet[echo] / wet.max() == pytest.approx(0.5, abs=0.1)


def test_reverb_inputs_are_checked(tmp_path, caplog) -> None:
    with pytest.raises(FileNotFoundError, match="rir list .*none.txt not found"):
        AddReverb(tmp_path / "none.txt")
    with pytest.raises(ValueError, match="rt60"):
        AddReverb(rt60=(0.9, 0.3))
    with pytest.raises(ValueError, match="prob"):
        AddReverb(prob=1.5)
    sf.write(tmp_path / "silent.wav", np.zeros(100, dtype=np.float32), 16000)
    sample = _sample()
    with caplog.at_level(logging.WARNING):
        assert AddReverb([tmp_path / "silent.wav"]).add(sample) is sample  # logged, stays dry
    assert "silent.wav unusable" in caplog.text


def _identity(x: Any) -> Any:
    return x


def test_augmented_shards_are_the_same_in_dataloader_workers(tiny_shards, noise_dir) -> None:
    def keyed(num_workers: int) -> dict[str, tuple[float, np.ndarray]]:
        stages = augmentation_stages(speed_factors=[0.9, 1.0, 1.1], noise=noise_dir / "noise.txt")
        dataset = ShardDataset(shard_paths(tiny_shards), stages=stages)
        loader = DataLoader(dataset, batch_size=None, num_workers=num_workers, collate_fn=_identity)
        return {s["key"]: (s["speed"], s["audio"]) for s in loader}

    inline, workers = keyed(0), keyed(2)
    assert sorted(inline) == sorted(workers) and len(inline) == 6
    for key, (speed, audio) in inline.items():
        assert workers[key][0] == speed
        # one thread in a worker, several inline: the resampler's sums may round differently
        np.testing.assert_allclose(workers[key][1], audio, atol=1e-6)
