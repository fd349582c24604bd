#!/usr/bin/env bash
# Each package installs alone into a fresh venv and its public API imports without the
# packages above it (dependency direction data -> model -> train/infer -> publish -> system).
# Usage: bash .ci/isolation.sh        (uv's cache makes the torch install a hardlink copy)
set -euo pipefail
cd "$(dirname "$0")/.."
export UV_PYTHON_DOWNLOADS=never
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

check() {  # name, import names, packages to install...
  local name=$1 imports=$2; shift 2
  local venv="$root/$name"
  uv venv --quiet --python 3.11 "$venv"
  uv pip install --quiet --python "$venv/bin/python" "$@"
  "$venv/bin/python" - "$imports" <<'PY'
import importlib, importlib.util, sys
higher = {"espnet_data": [], "espnet_model": [], "espnet_train": [], "espnet_infer": [],
          "espnet_publish": [], "espnet_system": []}
for name in sys.argv[1].split(","):
    module = importlib.import_module(name)
    print(f"  {name}: {len(module.__all__)} public names import")
present = sorted(n for n in higher if importlib.util.find_spec(n) is not None)
print(f"  installed espnet packages: {present}")
if "lightning" in sys.modules:
    raise SystemExit(f"{sys.argv[1]} imported lightning")
PY
}

echo "espnet-data alone"
check data espnet_data,espnet_data.synth,espnet_data.corpora packages/espnet-data
echo "espnet-model alone"
check model espnet_model packages/espnet-model
echo "espnet-infer with data + model (no lightning)"
check infer espnet_infer,espnet_infer.scoring packages/espnet-data packages/espnet-model "packages/espnet-infer"
echo "espnet-publish with infer"
check publish espnet_publish packages/espnet-data packages/espnet-model packages/espnet-infer packages/espnet-publish
echo "isolation: ok"
