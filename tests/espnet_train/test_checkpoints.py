"""Checkpoints are read with weights_only=True; the best-N ranking lives inside the folder."""

from __future__ import annotations

import dataclasses
import json
import logging
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from espnet_train import train
from espnet_train.checkpoints import (
    RANKING_FILE,
    UnsafeCheckpointError,
    best_checkpoints,
    load_checkpoint,
    rank_checkpoints,
    read_ranking,
    stored_score,
    write_ranking,
)

from tests._fixtures import Pipeline, training_config


class _Planted:
    """Unpickling this creates ``marker``: a stand-in for code a planted checkpoint would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.marker), "w")


def _plant(path: Path, marker: Path, *, legacy: bool = False) -> Path:
    payload = {"state_dict": {"model.w": torch.zeros(1)}, "epoch": 0, "hook": _Planted(marker)}
    path.parent.mkdir(parents=True, exist_ok=True)
    if legacy:  # a bare pickle, not torch's zip format
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path)
    return path


@pytest.fixture
def moved(pipeline: Pipeline, tmp_path: Path) -> Path:
    """A copy of the shared pipeline's finished experiment folder, somewhere else."""
    return Path(shutil.copytree(pipeline.exp_dir, tmp_path / "moved"))


def _rerun_config(pipeline: Pipeline, exp: Path, **extra: object):  # noqa: ANN202
    return training_config(pipeline.data, pipeline.tokenizer, pipeline.stats, exp, max_epochs=2, **extra)


# ------------------------------------------------------------------ weights_only


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "bare-pickle"])
def test_a_planted_pickle_is_refused_without_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, legacy: bool
) -> None:
    # even where torch is told to default to full unpickling
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "ran"
    path = _plant(tmp_path / "epoch000.ckpt", marker, legacy=legacy)
    with pytest.raises(UnsafeCheckpointError, match=r"epoch000\.ckpt: refused to load") as err:
        load_checkpoint(path)
    assert "move it out of the folder" in str(err.value)
    assert not marker.exists()


def test_an_unreadable_checkpoint_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"model.w": torch.zeros(1000)}}, bad)
    bad.write_bytes(bad.read_bytes()[:200])  # truncated
    with pytest.raises(ValueError, match=r"last\.ckpt: not a readable checkpoint"):
        load_checkpoint(bad)
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"last\.ckpt: refused to load .* or it is damaged"):
        load_checkpoint(bad)
    with pytest.raises(FileNotFoundError, match=r"absent\.ckpt"):
        load_checkpoint(tmp_path / "absent.ckpt")


def test_checkpoints_of_a_run_hold_only_plain_values(pipeline: Pipeline) -> None:
    for path in sorted((pipeline.exp_dir / "checkpoints").glob("*.ckpt")):
        ckpt = load_checkpoint(path)  # weights_only=True
        assert ckpt["espnet_train_config"]["optim"]["lr"] == 0.002, path


def test_a_planted_epoch_checkpoint_does_not_run_on_rerun(pipeline: Pipeline, moved: Path) -> None:
    """The issue's case: epoch000.ckpt replaced, then espnet-train run again."""
    marker = moved / "ran"
    _plant(moved / "checkpoints" / "epoch000.ckpt", marker)
    with pytest.raises(UnsafeCheckpointError, match=r"checkpoints/epoch000\.ckpt: refused"):
        train(_rerun_config(pipeline, moved))
    assert not marker.exists()


def test_a_planted_last_checkpoint_does_not_run_on_resume(
    pipeline: Pipeline, moved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = moved / "ran"
    _plant(moved / "checkpoints" / "last.ckpt", marker)
    with pytest.raises(UnsafeCheckpointError, match=r"checkpoints/last\.ckpt: refused"):
        train(_rerun_config(pipeline, moved))
    assert not marker.exists()


def test_lightning_resumes_with_weights_only(
    pipeline: Pipeline, moved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lightning as L

    seen: list[object] = []
    fit = L.Trainer.fit

    def spy(self: L.Trainer, *args: object, **kwargs: object) -> None:
        seen.append(kwargs.get("weights_only"))
        fit(self, *args, **kwargs)

    monkeypatch.setattr(L.Trainer, "fit", spy)
    train(_rerun_config(pipeline, moved))
    assert seen == [True]


# ------------------------------------------------------------------ the ranking


def test_the_ranking_is_kept_in_the_folder_relative_to_it(pipeline: Pipeline) -> None:
    ckpt_dir = pipeline.exp_dir / "checkpoints"
    data = json.loads((ckpt_dir / RANKING_FILE).read_text())
    assert data["monitor"] == "valid/loss" and data["mode"] == "min"
    files = [e["file"] for e in data["checkpoints"]]
    assert sorted(files) == ["epoch000.ckpt", "epoch001.ckpt"]
    scores = [e["score"] for e in data["checkpoints"]]
    assert scores == sorted(scores)  # best (lowest loss) first
    for entry in data["checkpoints"]:
        assert stored_score(load_checkpoint(ckpt_dir / entry["file"]), "valid/loss") == pytest.approx(entry["score"])


def test_a_moved_folder_exports_the_same_model(pipeline: Pipeline, moved: Path) -> None:
    before = json.loads((pipeline.exp_dir / "train_summary.json").read_text())
    train(_rerun_config(pipeline, moved))
    after = json.loads((moved / "train_summary.json").read_text())
    assert after["averaged"] == before["averaged"]
    assert "last.ckpt" not in after["averaged"]
    a = torch.load(pipeline.model_dir / "model.pt", weights_only=True)
    b = torch.load(moved / "model" / "model.pt", weights_only=True)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0, msg=key)


def test_integer_buffers_of_the_model_are_the_best_checkpoints(pipeline: Pipeline) -> None:
    ckpt_dir = pipeline.exp_dir / "checkpoints"
    ranked = read_ranking(ckpt_dir, monitor="valid/loss")
    assert ranked is not None
    states = [load_checkpoint(p)["state_dict"] for p, _ in ranked]
    model = torch.load(pipeline.model_dir / "model.pt", weights_only=True)
    ints = [k for k, v in model.items() if not v.is_floating_point()]
    assert ints, "the tiny model has BatchNorm step counters"
    assert any(not torch.equal(states[0][f"model.{k}"], states[1][f"model.{k}"]) for k in ints)
    for key in ints:
        assert torch.equal(model[key], states[0][f"model.{key}"]), key


def test_a_missing_ranking_is_rebuilt_from_stored_scores(
    pipeline: Pipeline, moved: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (moved / "checkpoints" / RANKING_FILE).unlink()
    ranked = rank_checkpoints(moved / "checkpoints", monitor="valid/loss", mode="min")
    expected = read_ranking(pipeline.exp_dir / "checkpoints", monitor="valid/loss")
    assert [(p.name, s) for p, s in ranked] == [(p.name, pytest.approx(s)) for p, s in expected or []]
    with caplog.at_level(logging.WARNING, logger="espnet_train"):
        train(_rerun_config(pipeline, moved))
    assert f"{RANKING_FILE} is missing" in caplog.text
    summary = json.loads((moved / "train_summary.json").read_text())
    assert summary["averaged"] == [p.name for p, _ in ranked]


def test_a_moved_folder_keeps_its_best_n_when_training_goes_on(pipeline: Pipeline, moved: Path) -> None:
    cfg = _rerun_config(pipeline, moved)
    train(dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, max_epochs=3)))
    ckpt_dir = moved / "checkpoints"
    ranked = read_ranking(ckpt_dir, monitor="valid/loss")
    assert ranked is not None and len(ranked) == 2  # the best 2 of all three epochs
    history = load_checkpoint(ckpt_dir / "last.ckpt")["callbacks"]["EpochHistory"]["history"]
    losses = {f"epoch{row['epoch'] - 1:03d}.ckpt": row["valid/loss"] for row in history}
    assert len(losses) == 3
    expected = sorted(losses.items(), key=lambda kv: kv[1])[:2]
    assert [(p.name, s) for p, s in ranked] == [(n, pytest.approx(s)) for n, s in expected]
    assert sorted(p.name for p in ckpt_dir.glob("epoch*.ckpt")) == sorted(n for n, _ in expected)


def test_ranking_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no epoch checkpoint to average"):
        best_checkpoints(tmp_path, 2, monitor="valid/loss", mode="min")
    torch.save({"state_dict": {}}, tmp_path / "last.ckpt")
    with pytest.raises(FileNotFoundError, match="last.ckpt is never averaged"):
        best_checkpoints(tmp_path, 2, monitor="valid/loss", mode="min")
    write_ranking(tmp_path, {str(tmp_path / "epoch003.ckpt"): 1.0}, monitor="valid/loss", mode="min")
    with pytest.raises(FileNotFoundError, match=r"epoch003\.ckpt.*do not exist"):
        best_checkpoints(tmp_path, 2, monitor="valid/loss", mode="min")
    with pytest.raises(ValueError, match="ranks by 'valid/loss' but monitor is 'valid/acc'"):
        best_checkpoints(tmp_path, 2, monitor="valid/acc", mode="max")
    (tmp_path / RANKING_FILE).unlink()
    torch.save({"state_dict": {}, "callbacks": {}}, tmp_path / "epoch000.ckpt")
    with pytest.raises(ValueError, match=r"epoch000\.ckpt: stores no 'valid/loss' score"):
        best_checkpoints(tmp_path, 2, monitor="valid/loss", mode="min")
