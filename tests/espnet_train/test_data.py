"""The training loader applies the augmentation the data block asks for (and only in training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from espnet_train.config import DataConfig
from espnet_train.data import make_loader, make_stream

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


def test_reverberation_applies_to_training_audio_only(pipeline: Pipeline) -> None:
    split = pipeline.data / "train"
    plain = _by_key(split, _data(pipeline), train=True)
    wet = _by_key(split, _data(pipeline, reverb=True, reverb_rt60=(0.5, 0.5)), train=True)
    for key, audio in plain.items():
        assert len(wet[key]) == len(audio)
        assert torch.allclose(wet[key].pow(2).mean(), audio.pow(2).mean(), rtol=1e-3)
        assert not torch.allclose(wet[key], audio, atol=1e-3), key
    valid = _by_key(split, _data(pipeline, reverb=True), train=False)
    assert all(torch.equal(valid[k], a) for k, a in plain.items())


# --- length curriculum: data.shortest_first_epochs ---


def _longest(batches: list[dict]) -> list[int]:
    return [int(b["speech_lengths"].max()) for b in batches]


def _epoch(split: Path, data: DataConfig, epoch: int) -> list[dict]:
    loader, dataset = make_loader(str(split), data, None, train=True, seed=3)
    dataset.set_epoch(epoch)
    return list(loader)


def test_shortest_first_epochs_then_shuffled(pipeline: Pipeline) -> None:
    split = pipeline.data / "train"
    data = _data(pipeline, max_seconds=6.0, shortest_first_epochs=1)
    first = _epoch(split, data, 0)
    assert len(first) > 4
    # one buffer holds the whole split here: the epoch runs shortest first (within the
    # 0.2 s length jitter that mixes near-equal lengths)
    longest = _longest(first)
    assert all(b >= a - 0.2 * 16000 for a, b in zip(longest, longest[1:], strict=False))
    second = _epoch(split, data, 1)
    assert _longest(second) != sorted(_longest(second))
    # after the curriculum, the epoch is the one a run without it has
    assert _keys_of(second) == _keys_of(_epoch(split, _data(pipeline, max_seconds=6.0), 1))
    assert sorted(k for b in first for k in b["keys"]) == sorted(k for b in second for k in b["keys"])


def _keys_of(batches: list[dict]) -> list[list[str]]:
    return [list(b["keys"]) for b in batches]


def test_curriculum_epoch_resumes_in_place(pipeline: Pipeline) -> None:
    """BatchStream's position (epoch, consumed) resumes a shortest-first epoch mid-way."""
    split = pipeline.data / "train"
    data = _data(pipeline, max_seconds=6.0, shortest_first_epochs=1)
    stream = make_stream(str(split), data, None, train=True, seed=3)
    stream.set_epoch(0)
    whole = []
    for batch in stream:
        whole.append(list(batch["keys"]))
        stream.consumed += 1
        if stream.consumed == 3:
            state = stream.state_dict()
    resumed = make_stream(str(split), data, None, train=True, seed=3)
    resumed.load_state_dict(state)
    resumed.set_epoch(0)
    assert [list(b["keys"]) for b in resumed] == whole[3:]


def test_curriculum_gives_every_rank_the_same_batch_count(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3 shards on 2 ranks (16 and 8 utterances): both yield the planned count."""
    split = pipeline.data / "train"
    data = _data(pipeline, max_seconds=6.0, shortest_first_epochs=1)
    monkeypatch.setenv("WORLD_SIZE", "2")
    counts = {}
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        batches = _epoch(split, data, 0)
        counts[rank] = len(batches)
        longest = _longest(batches)
        assert all(b >= a - 0.2 * 16000 for a, b in zip(longest, longest[1:], strict=False))
    assert counts[0] == counts[1] > 0
