#!/usr/bin/env bash
# Make the peer venv `benchmarks/.peer`: ESPnet2 (espnet==202611) on Python 3.12.
#
# Usage (from the repository root, once; takes several minutes, ~3 GB of downloads):
#   bash benchmarks/peer/setup.sh
#   PEER_PYTHON=/path/to/python3.12 bash benchmarks/peer/setup.sh   # another 3.12
#   PEER_FORCE=1 bash benchmarks/peer/setup.sh                      # rebuild from scratch
#
# The peer is never a dependency of this project: it lives in its own git-ignored
# venv and the benchmarks talk to it through subprocess scripts that print JSON.
# espnet 202611 needs Python >=3.12,<3.14, torch >=2.11,<2.15 (not 2.12.*) and
# torchaudio >=2.11,<2.12; torch 2.11.0 is also what this project's lock pins,
# so both sides run the same torch release.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$(dirname "$here")/.peer"
espnet_version="202611"
torch_version="2.11.0"
torchaudio_version="2.11.0"

export UV_PYTHON_DOWNLOADS=never

find_python() {
    if [[ -n "${PEER_PYTHON:-}" ]]; then echo "$PEER_PYTHON"; return; fi
    local candidate
    for candidate in \
        "$(command -v python3.12 2>/dev/null || true)" \
        "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12; do
        # pyenv shims exist even when they cannot run 3.12, so ask the interpreter itself.
        if [[ -n "$candidate" && -x "$candidate" ]] \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
            echo "$candidate"; return
        fi
    done
    echo "error: no Python 3.12 found; install one (e.g. 'pyenv install 3.12') or set PEER_PYTHON=/path/to/python3.12" >&2
    exit 1
}

python="$(find_python)"
echo "peer python: $python ($("$python" --version))"

if [[ "${PEER_FORCE:-0}" == "1" && -d "$venv" ]]; then
    rm -rf "$venv"
fi
if [[ ! -x "$venv/bin/python" ]]; then
    uv venv --python "$python" "$venv"
fi

start=$(date +%s)
uv pip install --python "$venv/bin/python" \
    "espnet==$espnet_version" \
    "torch==$torch_version" \
    "torchaudio==$torchaudio_version"

"$venv/bin/python" - <<'PY'
import espnet, torch, torchaudio
from espnet2.asr.espnet_model import ESPnetASRModel  # noqa: F401
from espnet2.bin.asr_inference import Speech2Text  # noqa: F401
print(f"peer ready: espnet {espnet.__version__}, torch {torch.__version__}, torchaudio {torchaudio.__version__}")
PY
echo "peer setup took $(( $(date +%s) - start )) s; venv at $venv"
