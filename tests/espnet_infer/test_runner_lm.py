"""run_inference with a language model: fusion in every backend, results invalidated by
the LM's files and weight, an LM with other tokens refused before results are touched,
and the second decoding without the LM (InferenceConfig.without_lm)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from espnet_data.tokenizer import TokenizerMismatchError
from espnet_infer import DecodeConfig, InferenceConfig, ParallelConfig, run_inference
from espnet_infer.testing import TINY_LM, tiny_lm_folder
from espnet_model.lm import build_lm

from tests._fixtures import Pipeline

DECODE = DecodeConfig(method="beam_search", beam_size=2, lm_weight=0.5)


@pytest.fixture(scope="module")
def lm_dir(pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_lm_folder(tmp_path_factory.mktemp("lm") / "lm", pipeline.model_dir, favour="E")


def _config(pipeline: Pipeline, out: Path, lm: Path | None, **decode: object) -> InferenceConfig:
    return InferenceConfig(
        model_dir=str(pipeline.model_dir),
        test_sets={"dev": str(pipeline.data / "dev"), "test": str(pipeline.data / "test")},
        output_dir=str(out),
        decode=replace(DECODE, lm=None if lm is None else str(lm), **decode),  # type: ignore[arg-type]
        max_seconds=6.0,
    )


def _hyps(out: Path) -> dict[str, str]:
    return {name: (out / name / "hyp.txt").read_text() for name in ("dev", "test")}


@pytest.fixture(scope="module")
def lm_run(pipeline: Pipeline, lm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("infer_lm") / "out"
    result = run_inference(_config(pipeline, out, lm_dir))
    assert result["decoded_shards"] == 4 and result["decode"]["lm"] == str(lm_dir)
    return out


def test_settings_record_the_lm_files_and_weight(lm_run: Path, lm_dir: Path) -> None:
    settings = json.loads((lm_run / "dev" / "settings.json").read_text())
    assert settings["decode"]["lm"] == str(lm_dir.resolve())
    assert settings["decode"]["lm_weight"] == 0.5
    assert set(settings["lm_files"]) == {"config.yaml", "model.pt", "tokenizer/tokens.txt"}


def test_lm_or_lm_weight_changes_decode_again(
    pipeline: Pipeline, lm_run: Path, lm_dir: Path, tmp_path: Path
) -> None:
    out = Path(shutil.copytree(lm_run, tmp_path / "out"))
    lm = Path(shutil.copytree(lm_dir, tmp_path / "lm"))
    assert run_inference(_config(pipeline, out, lm_dir))["decoded_shards"] == 0
    assert run_inference(_config(pipeline, out, lm_dir, lm_weight=0.8))["decoded_shards"] == 4
    assert run_inference(_config(pipeline, out, lm_dir, lm_weight=0.8))["decoded_shards"] == 0
    assert run_inference(_config(pipeline, out, lm, lm_weight=0.8))["decoded_shards"] == 4  # moved
    state = torch.load(lm / "model.pt", weights_only=True)
    state["lm.decoder.bias"] += 0.5
    torch.save(state, lm / "model.pt")
    assert run_inference(_config(pipeline, out, lm, lm_weight=0.8))["decoded_shards"] == 4
    # no LM: lm and lm_weight leave the settings (and weight 0 is no LM)
    assert run_inference(_config(pipeline, out, None))["decoded_shards"] == 4
    settings = json.loads((out / "dev" / "settings.json").read_text())
    assert "lm_files" not in settings and "lm" not in settings["decode"]
    assert run_inference(_config(pipeline, out, lm, lm_weight=0.0))["decoded_shards"] == 0
    assert run_inference(_config(pipeline, out, None, lm_weight=0.9))["decoded_shards"] == 0


def test_an_lm_with_other_tokens_stops_the_run_before_results_are_touched(
    pipeline: Pipeline, lm_run: Path, lm_dir: Path, tmp_path: Path
) -> None:
    out = Path(shutil.copytree(lm_run, tmp_path / "out"))
    lm = Path(shutil.copytree(lm_dir, tmp_path / "lm"))
    tokens = (lm / "tokenizer" / "tokens.txt").read_text().splitlines()
    (lm / "tokenizer" / "tokens.txt").write_text("\n".join([*tokens[:-1], "x", tokens[-1]]) + "\n")
    config = yaml.safe_load((lm / "config.yaml").read_text())
    config["vocab_size"] += 1
    (lm / "config.yaml").write_text(yaml.safe_dump(config))
    torch.save(build_lm(TINY_LM, vocab_size=config["vocab_size"]).state_dict(), lm / "model.pt")
    before = {p: p.read_bytes() for p in out.rglob("*.json*")}
    with pytest.raises(TokenizerMismatchError, match=str(lm / "tokenizer" / "tokens.txt")):
        run_inference(_config(pipeline, out, lm))
    assert {p: p.read_bytes() for p in out.rglob("*.json*")} == before


def test_greedy_ctc_with_an_lm_is_refused_before_results_are_touched(
    pipeline: Pipeline, lm_run: Path, lm_dir: Path, tmp_path: Path
) -> None:
    out = Path(shutil.copytree(lm_run, tmp_path / "out"))
    with pytest.raises(ValueError, match="needs decode.method: beam_search"):
        run_inference(_config(pipeline, out, lm_dir, method="ctc_greedy"))
    assert run_inference(_config(pipeline, out, lm_dir))["decoded_shards"] == 0


def test_nbest_rows_keep_the_lm_score(pipeline: Pipeline, lm_dir: Path, tmp_path: Path) -> None:
    config = _config(pipeline, tmp_path, lm_dir, nbest=2)
    config.test_sets = {"test": config.test_sets["test"]}
    run_inference(config)
    rows = [json.loads(x) for x in (tmp_path / "test" / "hyp.jsonl").read_text().splitlines()]
    assert rows and all(set(h["scores"]) == {"att", "ctc", "lm"} for r in rows for h in r["nbest"])


def test_without_lm_decodes_into_a_sibling_folder(
    pipeline: Pipeline, lm_run: Path, lm_dir: Path, tmp_path: Path
) -> None:
    out = Path(shutil.copytree(lm_run, tmp_path / "out"))
    config = _config(pipeline, out, lm_dir)
    plain = run_inference(_config(pipeline, tmp_path / "plain", None))
    result = run_inference(config.without_lm())
    assert result["decoded_shards"] == 4 and result["decode"]["lm"] is None
    assert _hyps(out / "no_lm") == _hyps(tmp_path / "plain") and plain["decoded_shards"] == 4
    assert _hyps(out) == _hyps(lm_run)  # the run with the LM is untouched
    assert run_inference(config)["decoded_shards"] == 0
    assert run_inference(config.without_lm())["decoded_shards"] == 0
    with pytest.raises(ValueError, match="test set 'no_lm'"):
        replace(config, test_sets={"no_lm": "x"}).without_lm()


@pytest.mark.slow
def test_processes_backend_fuses_the_lm(
    pipeline: Pipeline, lm_run: Path, lm_dir: Path, tmp_path: Path
) -> None:
    config = _config(pipeline, tmp_path, lm_dir)
    config.parallel = ParallelConfig(backend="processes", num_workers=2, threads_per_worker=1)
    result = run_inference(config)
    assert result["decoded_shards"] == 4 and result["workers"] == 2
    assert _hyps(tmp_path) == _hyps(lm_run)


MPIEXEC = shutil.which("mpiexec") or shutil.which("mpiexec", path=str(Path(sys.executable).parent))


@pytest.mark.mpi
@pytest.mark.slow
@pytest.mark.skipif(MPIEXEC is None, reason="mpiexec not found (install espnet-infer[mpi])")
def test_mpi_backend_fuses_the_lm(
    pipeline: Pipeline, lm_run: Path, lm_dir: Path, tmp_path: Path
) -> None:
    """espnet-infer under mpiexec with decode.lm and lm_weight given on the command line."""
    config = _config(pipeline, tmp_path / "mpi", None)
    body = {"model_dir": config.model_dir, "test_sets": config.test_sets,
            "output_dir": config.output_dir, "max_seconds": config.max_seconds,
            "decode": {"method": "beam_search", "beam_size": 2},
            "parallel": {"threads_per_worker": 1}}
    conf = tmp_path / "inference.yaml"
    conf.write_text(yaml.safe_dump(body))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [MPIEXEC, "-n", "2", sys.executable, "-m", "espnet_infer.cli", "--config", str(conf),
         "--parallel.backend", "mpi", "--decode.lm", str(lm_dir), "--decode.lm_weight", "0.5"],
        capture_output=True, text=True, timeout=180, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = Path(config.output_dir)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["workers"] == 2 and summary["decoded_shards"] == 4
    assert summary["decode"]["lm"] == str(lm_dir) and summary["decode"]["lm_weight"] == 0.5
    assert _hyps(out) == _hyps(lm_run)
