#!/usr/bin/env bash
# One device check for issue 17 (training at GPU scale): the trainer's recipe run on a GPU.
#
# Usage (the device tool runs it in the repository root; everything lands in $OUT):
#
#   bash benchmarks/device/gpu_check.sh                # the full run, ~5-7 min on an H200 with 16 cores
#   TINY=1 OUT=/tmp/out PY="uv run --locked python" bash benchmarks/device/gpu_check.sh   # on a CPU, minutes
#
# Needs, on the device machine: python3 with torch 2.11 (CUDA), lightning, numpy, pyyaml,
# sentencepiece, tensorboard, matplotlib (the image has them), and the wheels it lacks in
# .whl/ (carry: [".whl"]): soundfile cffi pycparser webdataset braceexpand jsonargparse
# docstring-parser typeshed-client espeakng-loader. Our own packages come from packages/*/src.
#
# Writes $OUT/trainer.cuda.json (benchmarks/trainer.py recipe: sustained audio s/s over 200
# steps, fraction_of_bare, gpu_busy_fraction, peak memory), $OUT/gpu_check.log and
# $OUT/train.log (the run's per-epoch lines), and $OUT/env.txt.
set -uo pipefail
OUT=${OUT:?set OUT to the folder for the results}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
start=$(date +%s)
PY=${PY:-python3}   # here, for the CPU check: PY="uv run --locked python"
if ! $PY -c "import soundfile, webdataset" 2>/dev/null && [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
for p in packages/*/src; do PYTHONPATH="$PWD/$p${PYTHONPATH:+:$PYTHONPATH}"; done
export PYTHONPATH PYTHONUNBUFFERED=1
{ nvidia-smi || true; $PY -c "import torch, lightning; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'lightning', lightning.__version__)"; nproc; } > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
work=${WORK:-/tmp/bench-trainer}
if [ "${TINY:-0}" = 1 ]; then
  args=(--device cpu --tiny --steps 12 --warmup 3 --profile-steps 3)
else
  args=(--device cuda --steps "${STEPS:-200}" --warmup 20 --profile-steps 20)
fi
[ -n "${SHARDS:-}" ] && args+=(--shards "$SHARDS")
timeout "${LIMIT_S:-480}" $PY benchmarks/trainer.py recipe "${args[@]}" --work "$work" --out "$OUT/trainer.cuda.json"
rc=$?
cp "$work/exp/logs/train.log" "$OUT/train.log" 2>/dev/null || grep -h "epoch " "$OUT/gpu_check.log" > "$OUT/train.log" || true
echo "gpu_check: exit $rc after $(( $(date +%s) - start )) s"
exit $rc
