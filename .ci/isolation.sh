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
echo "a pack made with espnet-publish transcribes in the espnet-infer venv as the model folder did"
"$root/publish/bin/python" - "$root/pack" <<'PY'
import sys
from pathlib import Path
from espnet_data.synth import make_tiny_corpus
from espnet_infer import Speech2Text
from espnet_publish import pack_model
from espnet_publish.testing import tiny_asr_model_folder

work = Path(sys.argv[1])
model = tiny_asr_model_folder(work / "model")
pack_model(model, work / "packed", model_name="tiny")
wav = make_tiny_corpus(work / "audio", num_utterances=1)[0]
text = Speech2Text.from_pretrained(model, method="ctc_greedy").transcribe(str(wav))
(work / "audio.txt").write_text(f"{wav}\n{text}\n")
PY
"$root/infer/bin/python" - "$root/pack" <<'PY'
import sys
from pathlib import Path
from espnet_infer import Speech2Text

work = Path(sys.argv[1])
wav, want = (work / "audio.txt").read_text().split("\n")[:2]
got = Speech2Text.from_pretrained(work / "packed", method="ctc_greedy").transcribe(wav)
assert got == want, (got, want)
assert not any(m.split(".")[0] in {"espnet_publish", "lightning"} for m in sys.modules)
print(f"  same transcript from the pack ({len(want.split())} words)")
PY
echo "isolation: ok"
