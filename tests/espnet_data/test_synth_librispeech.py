"""Tests for espnet_data.synth.librispeech: LibriSpeech's layout, lengths, determinism, resume."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from espnet_data.corpora import LibriSpeechCorpus
from espnet_data.synth.librispeech import PARTS, draw_duration, make_librispeech, plan_librispeech

OLD = 1_000_000_000
TINY = {"hours": 0.01, "eval_hours": 0.002, "seed": 3}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth-ls") / "one"
    make_librispeech(out, num_workers=1, progress=False, **TINY)
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_is_librispeechs(tiny) -> None:
    root = tiny / "LibriSpeech"
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(PARTS)
    assert {"SPEAKERS.TXT", "CHAPTERS.TXT", "synth.json"} <= {p.name for p in root.iterdir()}
    speakers: dict[str, set[str]] = {}
    for part in PARTS:
        for flac in (root / part).glob("*/*/*.flac"):
            speaker, chapter = flac.parent.parent.name, flac.parent.name
            assert re.fullmatch(rf"{speaker}-{chapter}-\d{{4}}\.flac", flac.name)
            info = sf.info(str(flac))
            assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")
            speakers.setdefault(speaker, set()).add(part)
        for trans in (root / part).glob("*/*/*.trans.txt"):
            speaker, chapter = trans.parent.parent.name, trans.parent.name
            assert trans.name == f"{speaker}-{chapter}.trans.txt"
            keys = [line.split(" ", 1)[0] for line in trans.read_text().splitlines()]
            assert keys == sorted(p.stem for p in trans.parent.glob("*.flac"))
            assert all(re.fullmatch(r"[A-Z' ]+", line.split(" ", 1)[1]) for line in trans.read_text().splitlines())
    assert all(len(parts) == 1 for parts in speakers.values())  # a speaker reads in one part


def test_the_librispeech_reader_takes_it_as_it_is(tiny) -> None:
    corpus = LibriSpeechCorpus(root=str(tiny))
    summary = json.loads((tiny / "LibriSpeech" / "synth.json").read_text())
    assert summary["config"]["hours"] == TINY["hours"]
    train = corpus.entries("train")
    assert len(train) == summary["parts"]["train-clean-100"]["utterances"] > 0
    assert all(isinstance(e.text, str) and e.text for e in train)
    assert {e.extra["part"] for e in corpus.entries("dev")} == {"dev-clean", "dev-other"}
    audio, rate = corpus.load_audio(train[0])
    assert rate == 16000 and 1.0 < audio.size / rate <= 35.0
    hours = summary["parts"]["train-clean-100"]["hours"]
    assert 0.6 * TINY["hours"] < hours < 1.6 * TINY["hours"]


def test_same_corpus_for_any_number_of_workers(tiny, tmp_path) -> None:
    make_librispeech(tmp_path, num_workers=2, progress=False, **TINY)
    assert _files(tmp_path / "LibriSpeech") == _files(tiny / "LibriSpeech")


def test_a_rerun_renders_only_unfinished_chapters(tiny, tmp_path) -> None:
    import shutil

    shutil.copytree(tiny, tmp_path, dirs_exist_ok=True)
    root = tmp_path / "LibriSpeech"
    for path in root.rglob("*.flac"):
        os.utime(path, (OLD, OLD))
    trans = sorted(root.glob("train-clean-100/*/*/*.trans.txt"))[0]
    trans.unlink()  # killed before the chapter finished
    victim = sorted(trans.parent.glob("*.flac"))[-1]
    victim.unlink()
    (trans.parent / f".{victim.name}.99.tmp").write_bytes(b"half a file")
    make_librispeech(tmp_path, num_workers=1, progress=False, **TINY)
    assert _files(root) == _files(tiny / "LibriSpeech")
    rewritten = {p for p in root.rglob("*.flac") if p.stat().st_mtime > OLD}
    assert rewritten == set(trans.parent.glob("*.flac"))


def test_another_config_into_the_same_folder_is_refused(tiny) -> None:
    with pytest.raises(ValueError, match="make different corpora.*empty folder"):
        make_librispeech(tiny, hours=0.02, eval_hours=0.002, seed=3, progress=False)


def test_plan_is_deterministic_with_librispeechs_shape() -> None:
    plan = plan_librispeech(hours=20, seed=0)
    assert plan_librispeech(hours=20, seed=0) == plan
    assert plan_librispeech(hours=20, seed=1) != plan
    train = [c for c in plan if c.part == "train-clean-100"]
    speakers = {c.speaker for c in train}
    assert len(speakers) == 50  # 2.5 per hour, as train-clean-100 (251 in 100 h)
    assert 1.5 < len(train) / len(speakers) < 3.5  # chapters per speaker (2.3 in LibriSpeech)
    targets = [u.target_s for c in train for u in c.utterances]
    assert 19 * 3600 < sum(targets) < 21 * 3600
    assert 12.0 < statistics.mean(targets) < 13.5 and min(targets) >= 2.0 and max(targets) <= 24.5
    dev = [u.target_s for c in plan if c.part == "dev-clean" for u in c.utterances]
    assert 6.0 < statistics.mean(dev) < 8.5 and max(dev) <= 35.0
    ids = [c.speaker for c in plan]
    assert len({(c.part, c.speaker) for c in plan}) == len(set(ids))  # ids unique over parts
    keys = [u.key for c in plan for u in c.utterances]
    assert len(keys) == len(set(keys))
    assert all(u.snr_db is not None and u.snr_db <= 15 for c in plan if c.part.endswith("other")
               for u in c.utterances)


def test_draw_duration_ranges() -> None:
    import random

    rng = random.Random(0)
    train = [draw_duration(rng, "train-clean-100") for _ in range(20000)]
    test = [draw_duration(rng, "test-other") for _ in range(20000)]
    assert 2.0 <= min(train) and max(train) <= 24.5 and 12.2 < statistics.mean(train) < 13.2
    assert 1.5 <= min(test) and max(test) <= 35.0 and 6.5 < statistics.mean(test) < 8.0


def test_cli_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "espnet_data.synth.librispeech", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert "--hours" in proc.stdout and "--num-workers" in proc.stdout and "--out" in proc.stdout
