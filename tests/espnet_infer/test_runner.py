"""run_inference: sharded, resumable decoding; local, process-pool and MPI backends agree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from espnet_infer import DecodeConfig, InferenceConfig, ParallelConfig, run_inference
from espnet_infer.runner import plan_tasks

from tests._fixtures import Pipeline, read_samples


def _config(pipeline: Pipeline, out: Path, **kwargs: object) -> InferenceConfig:
    decode = kwargs.pop("decode", DecodeConfig(method="ctc_greedy"))
    return InferenceConfig(
        model_dir=str(pipeline.model_dir),
        test_sets={"dev": str(pipeline.data / "dev"), "test": str(pipeline.data / "test")},
        output_dir=str(out),
        decode=decode,  # type: ignore[arg-type]
        max_seconds=6.0,
        **kwargs,  # type: ignore[arg-type]
    )


def _results(out: Path) -> dict[str, str]:
    return {name: (out / name / "hyp.txt").read_text() for name in ("dev", "test")}


@pytest.fixture(scope="module")
def local_run(pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("infer") / "local"
    run_inference(_config(pipeline, out))
    return out


def test_plan_is_one_task_per_shard(pipeline: Pipeline, tmp_path: Path) -> None:
    tasks = plan_tasks(_config(pipeline, tmp_path))
    assert [(t.test_set, Path(t.shard).name) for t in tasks] == [
        ("dev", "shard-000000.tar"), ("dev", "shard-000001.tar"),
        ("test", "shard-000000.tar"), ("test", "shard-000001.tar"),
    ]
    assert tasks[3].output == str(tmp_path / "test" / "shards" / "shard-000001.jsonl")


def test_local_run_writes_shards_and_merged_files(pipeline: Pipeline, local_run: Path) -> None:
    summary = json.loads((local_run / "summary.json").read_text())
    assert summary["decoded_shards"] == 4 and summary["skipped_shards"] == 0
    for name in ("dev", "test"):
        keys = sorted(s["key"] for s in read_samples(pipeline.data / name))
        shards = sorted((local_run / name / "shards").glob("*.jsonl"))
        assert [p.name for p in shards] == ["shard-000000.jsonl", "shard-000001.jsonl"]
        rows = [json.loads(line) for line in (local_run / name / "hyp.jsonl").read_text().splitlines()]
        assert [r["key"] for r in rows] == keys  # every utterance once, sorted
        assert (local_run / name / "ref.txt").read_text().splitlines() == [
            f"{r['key']} {r['ref']}" for r in rows
        ]
        assert (local_run / name / "hyp.txt").read_text().splitlines() == [
            f"{r['key']} {r['hyp']}" for r in rows
        ]
        assert summary["sets"][name]["utterances"] == len(keys) == 6
    assert not list(local_run.rglob("*.tmp"))


@pytest.mark.slow
def test_processes_backend_gives_the_local_hyps(
    pipeline: Pipeline, local_run: Path, tmp_path: Path
) -> None:
    config = _config(pipeline, tmp_path, parallel=ParallelConfig(
        backend="processes", num_workers=2, threads_per_worker=1))
    result = run_inference(config)
    assert result["decoded_shards"] == 4 and result["workers"] == 2
    assert _results(tmp_path) == _results(local_run)


def test_rerun_decodes_only_the_missing_shard(
    pipeline: Pipeline, local_run: Path, tmp_path: Path
) -> None:
    out = Path(shutil.copytree(local_run, tmp_path / "out"))
    missing = out / "test" / "shards" / "shard-000001.jsonl"
    kept = out / "dev" / "shards" / "shard-000000.jsonl"
    kept_stat = kept.stat().st_mtime_ns
    missing.unlink()
    result = run_inference(_config(pipeline, out))
    assert result["decoded_shards"] == 1 and result["skipped_shards"] == 3
    assert missing.is_file()
    assert kept.stat().st_mtime_ns == kept_stat
    assert _results(out) == _results(local_run)
    again = run_inference(_config(pipeline, out))
    assert again["decoded_shards"] == 0 and again["skipped_shards"] == 4


def test_beam_search_runs(pipeline: Pipeline, tmp_path: Path) -> None:
    decode = DecodeConfig(method="beam_search", beam_size=2)
    result = run_inference(_config(pipeline, tmp_path, decode=decode))
    assert result["decode"]["method"] == "beam_search"
    assert len((tmp_path / "test" / "hyp.txt").read_text().splitlines()) == 6


MPIEXEC = shutil.which("mpiexec") or shutil.which("mpiexec", path=str(Path(sys.executable).parent))


@pytest.mark.mpi
@pytest.mark.slow
@pytest.mark.skipif(MPIEXEC is None, reason="mpiexec not found (install espnet-infer[mpi])")
def test_mpi_backend_gives_the_local_hyps(
    pipeline: Pipeline, local_run: Path, tmp_path: Path
) -> None:
    config = _config(pipeline, tmp_path / "mpi")
    body = {
        "model_dir": config.model_dir, "test_sets": config.test_sets,
        "output_dir": config.output_dir, "max_seconds": config.max_seconds,
        "decode": {"method": "ctc_greedy"}, "parallel": {"threads_per_worker": 1},
    }
    conf = tmp_path / "inference.yaml"
    conf.write_text(yaml.safe_dump(body))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [MPIEXEC, "-n", "2", sys.executable, "-m", "espnet_infer.cli", "--config", str(conf),
         "--parallel.backend", "mpi"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = Path(config.output_dir)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backend"] == "mpi" and summary["workers"] == 2
    assert summary["decoded_shards"] == 4
    assert _results(out) == _results(local_run)
