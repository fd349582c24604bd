"""The Space folder installs from its own ``requirements.txt`` in a clean venv and transcribes
(a recorded file; and, for a streaming model's app, the live microphone's chunks).

What a Space builder does, offline: build this workspace's wheels (``uv build``), make a
venv with nothing in it, ``uv pip install --offline --find-links <wheels> -r
requirements.txt`` (third-party packages from uv's cache, which ``uv sync`` filled), then
import ``app.py`` there and call ``transcribe``. It must give the workspace's transcript,
without espnet-publish or Gradio in the venv (a Space gets Gradio from ``sdk_version``).

Skipped, with the reason, when uv is not on PATH, the wheels cannot be built offline,
Python 3.11 is not found, or a package is not in uv's cache; about 30-60 s otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from espnet_publish import pack_demo, pack_model
from espnet_publish.testing import tiny_asr_model_folder

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
_OFFLINE_MISSES = (
    "the network was disabled",
    "network connectivity is disabled",
    "not found in the cache",
)

_CHECK = """
import importlib.util, json, sys
sys.path.insert(0, sys.argv[1])
import app
print(json.dumps({
    "text": app.transcribe(sys.argv[2]),
    "infer": sys.modules["espnet_infer"].__file__,
    "publish": importlib.util.find_spec("espnet_publish") is not None,
    "gradio": importlib.util.find_spec("gradio") is not None,
}))
"""

_LIVE_CHECK = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import app
from espnet_data.audio import read_audio, resample
wav, rate = read_audio(sys.argv[2])
recording = np.round(resample(wav, rate, 48000) * 32767).astype(np.int16)
session = None
for start in range(0, recording.size, 24000):
    session, text = app.live_chunk(session, (48000, recording[start : start + 24000]))
print(json.dumps({"text": app.live_stop(session)[1]}))
"""


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, **kwargs)


def test_the_space_installs_from_its_requirements_and_transcribes(
    tmp_path: Path, tiny_shards: Path
) -> None:
    if shutil.which("uv") is None:
        pytest.skip("uv is not on PATH")
    wheels = tmp_path / "wheels"
    built = _run(
        [
            "uv",
            "build",
            "--all-packages",
            "--wheel",
            "--offline",
            "--quiet",
            "--out-dir",
            str(wheels),
        ],
        cwd=ROOT,
    )
    if built.returncode:
        pytest.skip(
            f"uv build --offline failed (build backend not in uv's cache?): {built.stderr[-300:]}"
        )

    model_dir = tiny_asr_model_folder(tmp_path / "model")
    inference = tmp_path / "inference.yaml"
    inference.write_text("decode: {method: ctc_greedy}\n")
    packed = pack_model(
        model_dir, tmp_path / "packed", model_name="m", extra_files={"inference.yaml": inference}
    )
    demo = pack_demo(packed, tmp_path / "space", title="t")

    # the espnet-* lines accept the wheels just built (so a skip below is only ever the cache)
    from packaging.requirements import Requirement

    built_versions = {
        w.name.split("-")[0].replace("_", "-"): w.name.split("-")[1] for w in wheels.glob("*.whl")
    }
    lines = [
        Requirement(line)
        for line in (demo / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    ours = [r for r in lines if r.name.startswith("espnet-")]
    assert {r.name for r in ours} == {"espnet-data", "espnet-infer"}
    assert all(r.specifier.contains(built_versions[r.name]) for r in ours), ours

    venv = tmp_path / "venv"
    made = _run(["uv", "venv", "--offline", "--quiet", "--python", "3.11", str(venv)])
    if made.returncode:
        pytest.skip(f"no Python 3.11 for uv venv: {made.stderr[-300:]}")
    python = venv / "bin" / "python"
    installed = _run(
        [
            "uv",
            "pip",
            "install",
            "--offline",
            "--quiet",
            "--python",
            str(python),
            "--find-links",
            str(wheels),
            "-r",
            str(demo / "requirements.txt"),
        ]
    )
    if installed.returncode and any(m in installed.stderr for m in _OFFLINE_MISSES):
        pytest.skip(f"a requirement is not in uv's cache: {installed.stderr[-400:]}")
    assert installed.returncode == 0, installed.stderr

    flac = sorted((tiny_shards.parent / "audio").glob("*.flac"))[0]
    ran = _run([str(python), "-I", "-c", _CHECK, str(demo), str(flac)], cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    got = json.loads(ran.stdout.strip().splitlines()[-1])

    from espnet_data.audio import read_audio
    from espnet_infer import DecodeConfig, Speech2Text

    want = Speech2Text(model_dir, decode=DecodeConfig(method="ctc_greedy")).transcribe(
        [read_audio(flac)[0]]
    )[0]
    assert got["text"] == want
    assert Path(got["infer"]).is_relative_to(venv)  # the wheel, not the workspace
    assert not got["publish"] and not got["gradio"]  # requirements.txt alone, no Gradio

    # a streaming model's live microphone functions run there too (0.5 s int16 chunks)
    live_model = tiny_asr_model_folder(tmp_path / "live_model", streaming=True)
    live = pack_demo(
        pack_model(live_model, tmp_path / "live_packed", model_name="m"),
        tmp_path / "live_space",
        title="t",
    )
    assert (live / "requirements.txt").read_text() == (demo / "requirements.txt").read_text()
    ran = _run([str(python), "-I", "-c", _LIVE_CHECK, str(live), str(flac)], cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    from espnet_data.audio import resample
    from espnet_infer import Speech2TextStreaming

    wav, rate = read_audio(flac)
    recording = np.round(resample(wav, rate, 48000) * 32767).astype(np.int16)
    whole = resample(recording / np.float32(32768), 48000, 16000)
    want = Speech2TextStreaming.from_speech2text(Speech2Text(live_model)).transcribe(whole).text
    assert json.loads(ran.stdout.strip().splitlines()[-1])["text"] == want
