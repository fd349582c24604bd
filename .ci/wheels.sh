#!/usr/bin/env bash
# The built wheels, not the workspace: a fresh venv installs espnet-data, espnet-model and
# espnet-infer from the wheels `just dist` builds (third-party packages from PyPI, through
# uv's cache) and transcribes with two packs, as a user who ran `pip install espnet-infer`:
#   - the ESPnet2 model-zoo pack in tests/data/espnet2_pack_tiny (ESPnet2's own greedy
#     hypotheses in expected.json);
#   - a pack espnet-publish writes here in the workspace (the workspace's transcript).
# Usage: bash .ci/wheels.sh [DIST]   (DIST: a folder `just dist` filled; default: build one)
set -euo pipefail
cd "$(dirname "$0")/.."
export UV_PYTHON_DOWNLOADS=never
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

dist=${1:-}
if [ -z "$dist" ]; then
  dist="$root/dist"
  uv run --locked python .ci/dist.py build --out-dir "$dist"
fi
version=$(uv run --locked python -c "import espnet_infer; print(espnet_infer.__version__)")
wheels=()
for name in espnet_data espnet_model espnet_infer; do
  wheels+=("$dist/$name-$version-py3-none-any.whl")
done

echo "a fresh venv with the wheels of espnet-data, espnet-model, espnet-infer $version"
uv venv --quiet --python 3.11 "$root/venv"
uv pip install --quiet --python "$root/venv/bin/python" --find-links "$dist" "${wheels[@]}"

echo "a pack written by espnet-publish in the workspace"
uv run --locked python - "$root/work" <<'PY'
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

"$root/venv/bin/python" -I - "$root/work" tests/data/espnet2_pack_tiny "$root/venv" <<'PY'
import json, sys
from pathlib import Path
from espnet_infer import Speech2Text
import espnet_infer

work, espnet2, venv = (Path(a).resolve() for a in sys.argv[1:])
assert Path(espnet_infer.__file__).resolve().is_relative_to(venv), espnet_infer.__file__
wav, want = (work / "audio.txt").read_text().split("\n")[:2]
got = Speech2Text.from_pretrained(work / "packed", method="ctc_greedy").transcribe(wav)
assert got == want, (got, want)
print(f"  the espnet-publish pack: the workspace's transcript ({len(want)} characters)")
expected = json.loads((espnet2 / "expected.json").read_text())["utterances"]
s2t = Speech2Text.from_pretrained(espnet2 / "pack", method="ctc_greedy")
for utt, hyps in expected.items():
    got = s2t.transcribe(str(espnet2 / "audio" / f"{utt}.wav"))
    assert got == hyps["greedy"]["text"], (utt, got, hyps["greedy"]["text"])
print(f"  the ESPnet2 model-zoo pack: ESPnet2's greedy hypotheses on {len(expected)} files")
higher = [m for m in ("espnet_publish", "espnet_train", "espnet_system", "lightning")
          if m in sys.modules]
assert not higher, higher
PY
echo "wheels: ok"
