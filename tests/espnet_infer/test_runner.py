"""run_inference: sharded, resumable decoding; local, process-pool and MPI backends agree."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import webdataset as wds
import yaml
from espnet_infer import DecodeConfig, InferenceConfig, ParallelConfig, Speech2Text, run_inference
from espnet_infer.progress import Progress
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


def test_workers_get_the_largest_shards_first(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from espnet_infer import runner

    taken: list[str] = []

    def record(provider, tasks, forward, *, progress=None, loaded=None, lm=None):  # noqa: ANN001, ANN202
        taken.extend(t.shard for t in tasks)
        return []

    monkeypatch.setattr(runner, "run_local", record)
    run_inference(_config(pipeline, tmp_path))
    sizes = [os.path.getsize(shard) for shard in taken]
    assert len(taken) == 4 and sizes == sorted(sizes, reverse=True)


def test_local_run_writes_shards_and_merged_files(pipeline: Pipeline, local_run: Path) -> None:
    summary = json.loads((local_run / "summary.json").read_text())
    assert summary["decoded_shards"] == 4 and summary["skipped_shards"] == 0
    [worker] = summary["worker_spans"]  # one process decoded all 4 shards
    assert (worker["rank"], worker["shards"], worker["utterances"]) == (0, 4, 12)
    assert worker["first_started"] == 0.0
    assert 0 < worker["decode_seconds"] <= worker["last_finished"] <= summary["decode_span_seconds"]
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
    pipeline: Pipeline, local_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config(pipeline, tmp_path, parallel=ParallelConfig(
        backend="processes", num_workers=2, threads_per_worker=1))
    with caplog.at_level("INFO", logger="espnet_infer.progress"):
        result = run_inference(config)
    assert result["decoded_shards"] == 4 and result["workers"] == 2
    assert _results(tmp_path) == _results(local_run)
    # the parent's progress counts the batches of both workers
    assert any("decode: 12/12 utt" in r.message and "(done)" in r.message for r in caplog.records)


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


def test_changed_decode_settings_decode_again(
    pipeline: Pipeline, local_run: Path, tmp_path: Path
) -> None:
    out = Path(shutil.copytree(local_run, tmp_path / "out"))
    assert json.loads((out / "dev" / "settings.json").read_text())["decode"]["method"] == "ctc_greedy"
    decode = DecodeConfig(method="beam_search", beam_size=2)
    result = run_inference(_config(pipeline, out, decode=decode))
    assert result["decoded_shards"] == 4 and result["skipped_shards"] == 0
    assert json.loads((out / "dev" / "settings.json").read_text())["decode"]["beam_size"] == 2
    again = run_inference(_config(pipeline, out, decode=decode))
    assert again["decoded_shards"] == 0


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
    spans = summary["worker_spans"]  # rank r decoded tasks r and r + 2 of the 4
    assert sorted(w["rank"] for w in spans) == [0, 1] and len({w["pid"] for w in spans}) == 2
    assert [w["shards"] for w in spans] == [2, 2] and sum(w["utterances"] for w in spans) == 12
    assert max(w["last_finished"] for w in spans) == summary["decode_span_seconds"]
    assert _results(out) == _results(local_run)
    assert "decode: 12/12 utt" in proc.stderr  # rank 0's progress counts both ranks


def _wav_bytes(audio: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _shard_with_bad_samples(pipeline: Pipeline, split: Path) -> list[str]:
    """A split of one shard: three good samples, one unreadable, one with empty audio."""
    split.mkdir(parents=True)
    good = read_samples(pipeline.data / "test")[:3]
    with wds.TarWriter(str(split / "shard-000000.tar")) as sink:
        for s in good:
            sink.write({"__key__": s["key"], "wav": _wav_bytes(s["audio"]),
                        "json": json.dumps({"key": s["key"], "text": s["text"]}).encode()})
        sink.write({"__key__": "zz-broken", "flac": b"not audio",
                    "json": json.dumps({"key": "zz-broken", "text": "a b"}).encode()})
        sink.write({"__key__": "zz-empty", "wav": _wav_bytes(np.zeros(0, dtype=np.float32)),
                    "json": json.dumps({"key": "zz-empty", "text": "c d"}).encode()})
    return [s["key"] for s in good]


def test_failing_utterances_are_recorded_not_fatal(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _shard_with_bad_samples(pipeline, tmp_path / "bad")
    original = Speech2Text.nbest_padded
    doomed = len(read_samples(pipeline.data / "test")[1]["audio"])

    def flaky(self: Speech2Text, speech: torch.Tensor, lengths: torch.Tensor) -> list:
        if doomed in lengths.tolist():  # the batch fails, then this utterance alone
            raise RuntimeError("out of memory (simulated)")
        return original(self, speech, lengths)

    monkeypatch.setattr(Speech2Text, "nbest_padded", flaky)
    config = InferenceConfig(model_dir=str(pipeline.model_dir), test_sets={"bad": str(tmp_path / "bad")},
                             output_dir=str(tmp_path / "out"), decode=DecodeConfig(method="ctc_greedy"))
    result = run_inference(config)
    assert result["decoded_shards"] == 1 and result["failed_shards"] == []
    assert result["failed_utterances"] == 3 and result["sets"]["bad"]["failed"] == 3
    rows = {r["key"]: r for r in map(json.loads, (tmp_path / "out/bad/hyp.jsonl").read_text().splitlines())}
    assert sorted(rows) == sorted([*good, "zz-broken", "zz-empty"])
    assert "cannot read" in rows["zz-broken"]["error"]
    assert rows["zz-empty"]["error"] == "empty audio (0 samples)"
    assert "simulated" in rows[good[1]]["error"]
    assert "error" not in rows[good[0]] and "error" not in rows[good[2]]
    hyp_keys = [line.split()[0] for line in (tmp_path / "out/bad/hyp.txt").read_text().splitlines()]
    ref_keys = [line.split()[0] for line in (tmp_path / "out/bad/ref.txt").read_text().splitlines()]
    assert hyp_keys == [good[0], good[2]] and len(ref_keys) == 5  # scoring sees them missing
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert {f["key"] for f in summary["sets"]["bad"]["failures"]} == {good[1], "zz-broken", "zz-empty"}


def test_unreadable_shard_fails_alone_and_is_retried(pipeline: Pipeline, tmp_path: Path) -> None:
    split = tmp_path / "split"
    shutil.copytree(pipeline.data / "test", split)
    (split / "shard-000001.tar").write_bytes(b"\0" * 10 + b"garbage" * 100)
    config = InferenceConfig(model_dir=str(pipeline.model_dir), test_sets={"t": str(split)},
                             output_dir=str(tmp_path / "out"), decode=DecodeConfig(method="ctc_greedy"))
    result = run_inference(config)
    assert result["decoded_shards"] == 1 and len(result["failed_shards"]) == 1
    assert result["failed_shards"][0]["shard"].endswith("shard-000001.tar")
    assert not (tmp_path / "out/t/shards/shard-000001.jsonl").exists()  # a rerun retries it


def test_nbest_rows_in_hyp_jsonl(pipeline: Pipeline, tmp_path: Path) -> None:
    decode = DecodeConfig(method="beam_search", beam_size=2, nbest=2)
    config = _config(pipeline, tmp_path, decode=decode)
    config.test_sets = {"test": config.test_sets["test"]}
    run_inference(config)
    rows = [json.loads(x) for x in (tmp_path / "test" / "hyp.jsonl").read_text().splitlines()]
    for row in rows:
        assert 1 <= len(row["nbest"]) <= 2 and row["nbest"][0]["text"] == row["hyp"]
        assert row["score"] == row["nbest"][0]["score"]
        assert {"text", "tokens", "score", "scores"} == set(row["nbest"][0])


KILL_AFTER_FIRST_SHARD = """
import os, signal, sys
from espnet_infer import runner
from espnet_infer.cli import main

decode_shard = runner.decode_shard

def decode_then_die(env, task, progress=None):
    decode_shard(env, task, progress)  # its result file is written: now kill the run
    os.kill(os.getpid(), signal.SIGKILL)

runner.decode_shard = decode_then_die
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_killed_run_resumes_with_every_utterance_once(
    pipeline: Pipeline, local_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    config = _config(pipeline, out)
    conf = tmp_path / "inference.yaml"
    conf.write_text(yaml.safe_dump({
        "model_dir": config.model_dir, "test_sets": config.test_sets, "output_dir": str(out),
        "max_seconds": config.max_seconds, "decode": {"method": "ctc_greedy"},
    }))
    proc = subprocess.run([sys.executable, "-c", KILL_AFTER_FIRST_SHARD, "--config", str(conf)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert len(list(out.rglob("*.jsonl"))) == 1  # the largest shard (decoded first) only
    assert not (out / "summary.json").exists() and not list(out.rglob("*.tmp"))
    result = run_inference(config)
    assert result["decoded_shards"] == 3 and result["skipped_shards"] == 1
    assert _results(out) == _results(local_run)
    for name in ("dev", "test"):
        keys = [json.loads(x)["key"] for x in (out / name / "hyp.jsonl").read_text().splitlines()]
        assert len(keys) == len(set(keys)) == 6


def test_progress_counts_and_logs_eta(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()  # not a terminal: periodic log lines instead of a bar
    progress = Progress(10, desc="decode", log_every_s=0.0, stream=stream)
    with caplog.at_level("INFO", logger="espnet_infer.progress"):
        progress.update(4, 8.0)
        progress.update(1, 2.0)
        progress.close()
    assert progress.count == 5 and progress.audio_seconds == 10.0
    assert "decode: 5/10 utt" in progress.line() and "ETA" in progress.line()
    assert any("4/10 utt" in r.message for r in caplog.records)
    assert stream.getvalue() == ""


def test_threads_are_shared_among_workers_on_a_machine(pipeline: Pipeline, tmp_path: Path) -> None:
    from espnet_infer import InferenceProvider

    cores = len(os.sched_getaffinity(0))
    provider = InferenceProvider(_config(pipeline, tmp_path))
    assert provider.threads(1) is None  # one worker: torch's default
    assert provider.threads(2) == max(1, cores // 2)
    assert provider.threads(10 * cores) == 1
    pinned = InferenceProvider(_config(pipeline, tmp_path, parallel=ParallelConfig(threads_per_worker=3)))
    assert pinned.threads(4) == 3


# --- issue 21: concurrent runs, incomplete shards, model checked first, non-finite audio


def _conf_file(config: InferenceConfig, path: Path) -> Path:
    path.write_text(yaml.safe_dump({
        "model_dir": config.model_dir, "test_sets": config.test_sets,
        "output_dir": config.output_dir, "max_seconds": config.max_seconds,
        "decode": {"method": config.decode.method},
    }))
    return path


HOLD_AFTER_FIRST_SHARD = """
import sys, time
from pathlib import Path
from espnet_infer import runner
from espnet_infer.cli import main

decode_shard = runner.decode_shard
ready, go = Path(sys.argv[1]), Path(sys.argv[2])

def decode_then_wait(env, task, progress=None):
    stats = decode_shard(env, task, progress)  # one result written: hold the run here
    ready.touch()
    while not go.exists():
        time.sleep(0.05)
    return stats

runner.decode_shard = decode_then_wait
sys.exit(main(sys.argv[3:]))
"""


def _start_held_run(config: InferenceConfig, tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    """An espnet-infer process that stops after its first shard until ``go`` exists."""
    ready, go = tmp_path / "ready", tmp_path / "go"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_AFTER_FIRST_SHARD, str(ready), str(go),
         "--config", str(_conf_file(config, tmp_path / "inference.yaml"))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the held run did not start: {proc.communicate()[1][-3000:]}")
        time.sleep(0.05)
    return proc, go


@pytest.mark.slow
def test_a_second_run_fails_fast_while_one_is_running(
    pipeline: Pipeline, local_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    config = _config(pipeline, out)
    proc, go = _start_held_run(config, tmp_path)
    try:
        first = {p: p.read_bytes() for p in out.rglob("shards/*.jsonl")}
        assert len(first) == 1
        other = _config(pipeline, out, decode=DecodeConfig(method="beam_search", beam_size=2))
        for attempt in (other, config):  # new settings, and the very same settings
            start = time.monotonic()
            with pytest.raises(RuntimeError, match="in use by another espnet-infer run") as info:
                run_inference(attempt)
            assert time.monotonic() - start < 10  # fails fast: no model loaded, nothing decoded
            assert str(out / ".espnet-infer.lock") in str(info.value)
            assert f"pid {proc.pid}" in str(info.value)
        # the refused runs reset nothing and wrote nothing
        assert {p: p.read_bytes() for p in out.rglob("shards/*.jsonl")} == first
        assert json.loads((out / "dev" / "settings.json").read_text())["decode"]["method"] == "ctc_greedy"
        go.touch()
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _results(out) == _results(local_run)
    assert json.loads((out / "summary.json").read_text())["decoded_shards"] == 4


@pytest.mark.slow
def test_a_killed_run_leaves_no_stale_lock(pipeline: Pipeline, local_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = _config(pipeline, out)
    proc, _ = _start_held_run(config, tmp_path)
    proc.kill()  # SIGKILL: no cleanup code runs
    proc.communicate(timeout=60)
    assert (out / ".espnet-infer.lock").is_file()  # the file stays, its lock went with the process
    result = run_inference(config)
    assert result["decoded_shards"] == 3 and result["skipped_shards"] == 1
    assert _results(out) == _results(local_run)


ORPHAN_CHILD = """
import multiprocessing, os, sys, time
from espnet_infer.backends import _die_with_parent

def child(parent, armed):
    _die_with_parent(parent)
    open(armed, "w").close()
    time.sleep(120)

if __name__ == "__main__":
    armed = sys.argv[1]
    p = multiprocessing.get_context("spawn").Process(target=child, args=(os.getpid(), armed))
    p.start()
    print(p.pid, flush=True)
    time.sleep(120)
"""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped is dead)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_pool_workers_die_with_their_parent(tmp_path: Path) -> None:
    """A pool worker of a killed run must not write a result after another run took the
    lock: it is killed with its parent."""
    script = tmp_path / "orphan.py"
    script.write_text(ORPHAN_CHILD)
    armed = tmp_path / "armed"
    proc = subprocess.Popen([sys.executable, str(script), str(armed)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        child = int(proc.stdout.readline())
        deadline = time.monotonic() + 100  # a spawned child imports torch: slow on a busy CI
        while not armed.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert armed.exists(), "the child never armed its death signal"
        assert _alive(child)
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child), "the orphaned worker outlived its parent"
    finally:
        if proc.poll() is None:
            proc.kill()


def _truncated_split(pipeline: Pipeline, split: Path) -> str:
    """A copy of the test split whose last shard is cut at a member boundary: its last
    utterance is gone, the tar still reads cleanly. Returns the lost key."""
    shutil.copytree(pipeline.data / "test", split)
    shard = split / "shard-000001.tar"
    with tarfile.open(shard) as tar:
        members = tar.getmembers()
    lost = members[-1].name.split(".")[0]
    cut = min(m.offset for m in members if m.name.split(".")[0] == lost)
    shard.write_bytes(shard.read_bytes()[:cut])
    return lost


def test_utterances_missing_from_a_truncated_shard_are_failures(
    pipeline: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from espnet_infer.cli import main
    from espnet_infer.scoring import read_text_file, score_texts

    lost = _truncated_split(pipeline, tmp_path / "split")
    config = InferenceConfig(model_dir=str(pipeline.model_dir), test_sets={"t": str(tmp_path / "split")},
                             output_dir=str(tmp_path / "out"), decode=DecodeConfig(method="ctc_greedy"))
    result = run_inference(config)
    assert result["missing_utterances"] == 1 and result["failed_utterances"] == 1
    t = result["sets"]["t"]
    assert (t["utterances"], t["expected"], t["missing"], t["missing_keys"]) == (6, 6, 1, [lost])
    rows = {r["key"]: r for r in map(json.loads, (tmp_path / "out/t/hyp.jsonl").read_text().splitlines())}
    assert rows[lost]["hyp"] == "" and rows[lost]["missing"] is True
    assert "shard-000001.tar" in rows[lost]["error"] and "index.jsonl" in rows[lost]["error"]
    assert lost in {f["key"] for f in t["failures"]}
    ref = read_text_file(tmp_path / "out/t/ref.txt")
    hyp = read_text_file(tmp_path / "out/t/hyp.txt")
    assert len(ref) == 6 and len(hyp) == 5 and lost in ref  # scoring sees it, and refuses
    with pytest.raises(ValueError, match=rf"1 of 6 .*{lost}.*allow_incomplete"):
        score_texts(ref, hyp)
    # the CLI exits non-zero, and a rerun decodes the incomplete shard again
    capsys.readouterr()
    args = ["--model_dir", config.model_dir, "--test_sets", json.dumps(config.test_sets),
            "--output_dir", config.output_dir, "--decode.method", "ctc_greedy"]
    assert main(args) == 1
    printed = capsys.readouterr()
    assert json.loads(printed.out)["decoded_shards"] == 1
    assert "1 utterance(s)" in printed.err and lost in printed.err


def test_a_failed_shard_leaves_its_utterances_missing_not_unseen(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    split = tmp_path / "split"
    shutil.copytree(pipeline.data / "test", split)
    (split / "shard-000001.tar").write_bytes(b"\0" * 10 + b"garbage" * 100)
    config = InferenceConfig(model_dir=str(pipeline.model_dir), test_sets={"t": str(split)},
                             output_dir=str(tmp_path / "out"), decode=DecodeConfig(method="ctc_greedy"))
    result = run_inference(config)
    assert len(result["failed_shards"]) == 1 and result["sets"]["t"]["missing"] == 3
    assert len((tmp_path / "out/t/ref.txt").read_text().splitlines()) == 6
    assert len((tmp_path / "out/t/hyp.txt").read_text().splitlines()) == 3
    rows = [json.loads(x) for x in (tmp_path / "out/t/hyp.jsonl").read_text().splitlines()]
    assert sum("has no result" in r.get("error", "") for r in rows) == 3


def test_a_model_dir_typo_keeps_finished_results(
    pipeline: Pipeline, local_run: Path, tmp_path: Path
) -> None:
    out = Path(shutil.copytree(local_run, tmp_path / "out"))

    def results() -> dict[Path, bytes]:  # every file but the lock's holder note
        return {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.suffix != ".lock"}

    before = results()
    for broken in (tmp_path / "no-such-model", tmp_path / "half-model"):
        if broken.name == "half-model":  # a folder that is there, but does not load
            shutil.copytree(pipeline.model_dir, broken)
            for weights in ("model.pt", "model.safetensors"):
                (broken / weights).unlink(missing_ok=True)
        config = _config(pipeline, out)
        config.model_dir = str(broken)
        with pytest.raises(FileNotFoundError):
            run_inference(config)
        assert results() == before


def test_changed_model_weights_decode_again(
    pipeline: Pipeline, local_run: Path, tmp_path: Path
) -> None:
    model = Path(shutil.copytree(pipeline.model_dir, tmp_path / "model"))
    out = Path(shutil.copytree(local_run, tmp_path / "out"))
    config = _config(pipeline, out)
    config.model_dir = str(model)
    first = run_inference(config)  # another folder: decoded again (existing behaviour)
    assert first["decoded_shards"] == 4
    assert run_inference(config)["decoded_shards"] == 0
    state = torch.load(model / "model.pt", weights_only=True)
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name] + 0.01
    torch.save(state, model / "model.pt")
    assert run_inference(config)["decoded_shards"] == 4


def test_non_finite_audio_is_an_error_row(pipeline: Pipeline, tmp_path: Path) -> None:
    split = tmp_path / "nan"
    split.mkdir()
    good = read_samples(pipeline.data / "test")[:2]
    bad = {"zz-nan": np.nan, "zz-inf": np.inf}
    rows = []
    with wds.TarWriter(str(split / "shard-000000.tar")) as sink:
        for s in good:
            sink.write({"__key__": s["key"], "wav": _wav_bytes(s["audio"]),
                        "json": json.dumps({"key": s["key"], "text": s["text"]}).encode()})
            rows.append({"key": s["key"], "text": s["text"], "shard": "shard-000000.tar",
                         "duration": len(s["audio"]) / 16000})
        for key, value in bad.items():
            audio = good[0]["audio"].astype(np.float32).copy()
            audio[100:200] = value
            buffer = io.BytesIO()
            sf.write(buffer, audio, 16000, format="WAV", subtype="FLOAT")
            sink.write({"__key__": key, "wav": buffer.getvalue(),
                        "json": json.dumps({"key": key, "text": "a b"}).encode()})
            rows.append({"key": key, "text": "a b", "shard": "shard-000000.tar",
                         "duration": len(audio) / 16000})
    (split / "index.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = InferenceConfig(model_dir=str(pipeline.model_dir), test_sets={"nan": str(split)},
                             output_dir=str(tmp_path / "out"), decode=DecodeConfig(method="ctc_greedy"))
    result = run_inference(config)
    assert result["sets"]["nan"]["failed"] == 2 and result["sets"]["nan"]["missing"] == 0
    out = {r["key"]: r for r in map(json.loads, (tmp_path / "out/nan/hyp.jsonl").read_text().splitlines())}
    for key in bad:
        assert out[key]["hyp"] == "" and "score" not in out[key]
        assert out[key]["ref"] == "a b"  # from the sample, or the index if it did not read
        assert any(word in out[key]["error"].lower() for word in ("nan", "inf", "finite"))
    assert all("error" not in out[s["key"]] for s in good)
    hyp_keys = {line.split()[0] for line in (tmp_path / "out/nan/hyp.txt").read_text().splitlines()}
    assert hyp_keys == {s["key"] for s in good}


def test_trust_remote_code_reaches_the_model_loader(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from espnet_infer import provider as provider_module

    real = provider_module.load_model_folder
    seen: list[object] = []

    def spy(path, device="cpu", **kwargs):  # noqa: ANN001, ANN003, ANN202
        seen.append(kwargs.get("trust_remote_code"))
        return real(path, device, **kwargs)

    monkeypatch.setattr(provider_module, "load_model_folder", spy)
    config = _config(pipeline, tmp_path)
    config.test_sets = {"test": config.test_sets["test"]}
    assert config.trust_remote_code is False  # the default
    run_inference(config)
    assert seen == [False]  # loaded once, before anything was reset, and decoded with
    config.trust_remote_code = True
    (tmp_path / "test" / "shards" / "shard-000000.jsonl").unlink()
    run_inference(config)
    assert seen == [False, True]
