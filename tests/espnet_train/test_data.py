"""The training loader applies the augmentation the data block asks for (and only in training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from espnet_train.config import DataConfig
from espnet_train.data import make_loader

from tests._fixtures import Pipeline


def _by_key(split: Path, data: DataConfig, *, train: bool) -> dict[str, torch.Tensor]:
    loader, _ = make_loader(str(split), data, None, train=train, seed=3)
    out = {}
    for batch in loader:
        for key, speech, length in zip(
            batch["keys"], batch["speech"], batch["speech_lengths"], strict=True
        ):
            out[key] = speech[: int(length)]
    return out


def _data(pipeline: Pipeline, **kwargs: object) -> DataConfig:
    return DataConfig(train=str(pipeline.data / "train"), valid=str(pipeline.data / "dev"),
                      num_workers=0, **kwargs)  # type: ignore[arg-type]


def test_speed_perturbation_changes_training_lengths_only(pipeline: Pipeline) -> None:
    split = pipeline.data / "train"
    plain = _by_key(split, _data(pipeline), train=True)
    slow = _by_key(split, _data(pipeline, speed_perturb=[0.9]), train=True)
    assert plain.keys() == slow.keys() and plain
    for key, audio in plain.items():
        assert abs(len(slow[key]) / len(audio) - 1 / 0.9) < 0.01, key
    # validation data is never augmented
    valid = _by_key(split, _data(pipeline, speed_perturb=[0.9]), train=False)
    assert all(len(valid[k]) == len(a) for k, a in plain.items())


def test_noise_is_mixed_into_training_audio(pipeline: Pipeline, tmp_path: Path) -> None:
    noise = tmp_path / "hum.wav"
    rng = np.random.default_rng(0)
    sf.write(noise, (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
    split = pipeline.data / "train"
    plain = _by_key(split, _data(pipeline), train=True)
    noisy = _by_key(split, _data(pipeline, noise=str(noise), noise_snr_db=(5.0, 5.0)),
                    train=True)
    for key, audio in plain.items():
        assert len(noisy[key]) == len(audio)
        diff = noisy[key] - audio
        snr = 10 * torch.log10(audio.pow(2).sum() / diff.pow(2).sum())
        assert abs(float(snr) - 5.0) < 0.5, (key, float(snr))
