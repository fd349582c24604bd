"""Per-stage logs: rotation, the header, and records copied during the stage."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from espnet_system.logs import header, process_rank, rotate, stage_log, stage_log_path, versions


def test_rotate_shifts_older_logs_up(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    for text in ("first", "second", "third"):
        rotate(log)
        log.write_text(text)
    assert log.read_text() == "third"
    assert (tmp_path / "train1.log").read_text() == "second"
    assert (tmp_path / "train2.log").read_text() == "first"


def test_rotate_keeps_at_most_keep(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    for n in range(6):
        rotate(log, keep=3)
        log.write_text(str(n))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.log", "x1.log", "x2.log", "x3.log"]
    assert (tmp_path / "x3.log").read_text() == "2"


def test_rotate_without_a_log_does_nothing(tmp_path: Path) -> None:
    rotate(tmp_path / "none.log")
    assert list(tmp_path.iterdir()) == []


def test_header_is_commented_yaml_with_config_and_versions(tmp_path: Path) -> None:
    conf = tmp_path / "training.yaml"
    text = header("train", {"training": conf}, {"seed": 3, "exp_dir": "exp"}, tmp_path)
    lines = text.splitlines()
    assert all(line.startswith("# ") or line == "#" for line in lines)
    doc = yaml.safe_load("\n".join(line[2:] for line in lines))
    assert doc["stage"] == "train"
    assert doc["config_files"] == {"training": str(conf)}
    assert doc["resolved_config"] == {"seed": 3, "exp_dir": "exp"}
    assert doc["versions"]["espnet-system"] == versions()["espnet-system"] != "not installed"
    assert "torch" in doc["versions"] and "python" in doc["versions"]
    assert doc["git"] == {"commit": "not a git checkout"}  # tmp_path is no checkout
    assert doc["command"] and doc["started"]


def test_stage_log_writes_header_then_records(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "infer.log"
    root = logging.getLogger()
    level = root.level
    with stage_log(path, "# head\n"):
        logging.getLogger("espnet_infer.x").info("decoding shard 3")
    logging.getLogger("espnet_infer.x").info("after the stage")
    text = path.read_text()
    assert text.startswith("# head\n")
    assert "decoding shard 3" in text and "after the stage" not in text
    assert root.level == level
    assert not any(isinstance(h, logging.FileHandler) and h.baseFilename == str(path)
                   for h in root.handlers)


def test_stage_log_records_the_failure(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    with pytest.raises(RuntimeError), stage_log(path, "# head\n"):
        raise RuntimeError("boom: out of memory")
    text = path.read_text()
    assert "stage failed" in text and "boom: out of memory" in text


@pytest.mark.parametrize(
    ("env", "rank"),
    [
        ({}, 0),
        ({"RANK": "3"}, 3),
        ({"SLURM_PROCID": "2", "LOCAL_RANK": "0"}, 2),
        ({"OMPI_COMM_WORLD_RANK": "5"}, 5),
        ({"LOCAL_RANK": "1"}, 1),  # Lightning's DDP launcher on one node
        ({"LOCAL_RANK": "1", "NODE_RANK": "1", "LOCAL_WORLD_SIZE": "4"}, 5),
        ({"LOCAL_RANK": "0", "NODE_RANK": "2"}, 2000),
    ],
)
def test_process_rank(env: dict[str, str], rank: int) -> None:
    assert process_rank(env) == rank


def test_stage_log_path_per_rank(tmp_path: Path) -> None:
    assert stage_log_path(tmp_path, "train", rank=0, per_rank=False) == tmp_path / "train.log"
    assert stage_log_path(tmp_path, "train", rank=2, per_rank=False) is None
    assert stage_log_path(tmp_path, "train", rank=2, per_rank=True) == tmp_path / "train.rank2.log"


def test_header_records_the_machine(tmp_path: Path) -> None:
    text = header("infer", {}, None, tmp_path)
    doc = yaml.safe_load("\n".join(line[2:] for line in text.splitlines()))
    facts = doc["machine"]
    assert facts["cuda_available"] in (True, False) and facts["torch_threads"] >= 1
    assert facts["host"] and facts["rank"] == 0 and "cuda_version" in facts
    assert doc["versions"]["safetensors"] != "not installed"


def test_stage_log_ends_with_status_and_elapsed(tmp_path: Path) -> None:
    with stage_log(tmp_path / "ok.log", "# head\n", stage="ok"):
        pass
    assert "stage ok: done in 0.0 s (ended " in (tmp_path / "ok.log").read_text()
    with pytest.raises(KeyError), stage_log(tmp_path / "bad.log", "# head\n", stage="bad"):
        raise KeyError("x")
    assert "stage bad: failed in " in (tmp_path / "bad.log").read_text()


def test_stage_log_without_a_path_writes_nothing(tmp_path: Path) -> None:
    with stage_log(None, "# head\n", stage="x"):
        logging.getLogger("espnet_infer").info("rank 1 decoding")
    assert list(tmp_path.iterdir()) == []
