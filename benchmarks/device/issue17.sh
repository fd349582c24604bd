#!/usr/bin/env bash
# Issue 17's device figures in one run (a lent GPU machine, 15 minutes of device time a session):
#   1. the LibriSpeech-shaped synthetic corpus (python -m espnet_data.synth.librispeech) on every
#      core, then create_dataset's shards of it (espnet_data.write_splits, original FLAC bytes);
#   2. the LibriSpeech conformer trained by espnet-train from those shards in bf16
#      (benchmarks/trainer.py recipe: sustained audio-s/s over 200 steps, fraction_of_bare,
#      gpu_busy_fraction, peak memory);
#   3. create_dataset's scaling with 1/4/8/16 workers (benchmarks/create_dataset.py, synthesis);
#   4. batched greedy and beam search on the GPU beside the CPU (benchmarks/decode_gpu.py).
# Each step has its own time limit and writes into $OUT as it ends, so a slow step costs only itself.
#
#   device run: bash benchmarks/device/issue17.sh        (carry: [".whl"]; ~9 min on an H200, 16 cores)
#   CPU check:  OUT=/tmp/o TINY=1 PY="uv run --locked python" bash benchmarks/device/issue17.sh
set -uo pipefail
OUT=${OUT:?set OUT to the folder for the results}
mkdir -p "$OUT"
exec > >(tee "$OUT/issue17.log") 2>&1
start=$(date +%s)
PY=${PY:-python3}
if [ "$PY" = python3 ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
for p in packages/*/src; do PYTHONPATH="$PWD/$p${PYTHONPATH:+:$PYTHONPATH}"; done
export PYTHONPATH PYTHONUNBUFFERED=1
{ nvidia-smi || true; $PY -c "import torch, lightning; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'lightning', lightning.__version__)"; nproc; } > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
work=${WORK:-/tmp/issue17}
mkdir -p "$work"
stamp() { echo "== $1 at $(( $(date +%s) - start )) s"; }
if [ "${TINY:-0}" = 1 ]; then
  hours=0.05 eval_hours=0.01 device=cpu train_args=(--tiny --steps 12 --warmup 3 --profile-steps 3)
  workers_list=1,2 decode_args=(--device cpu --seconds 10 --passes 1)
else
  hours=${HOURS:-40} eval_hours=0.02 device=cuda train_args=(--steps 200 --warmup 10 --profile-steps 10 --max-seconds 600)
  workers_list=1,4,8,16 decode_args=(--device cuda --seconds 240 --passes 2)
fi

stamp "corpus: $hours h of train-clean-100"
timeout 200 $PY -m espnet_data.synth.librispeech --out "$work/corpus" --hours "$hours" --eval-hours "$eval_hours" \
  --parts train-clean-100 dev-clean || echo "corpus: exit $?"
cp "$work/corpus/synth.json" "$OUT/corpus.synth.json" 2>/dev/null
stamp "shards"
timeout 90 $PY - "$work" <<'EOF' || echo "shards: exit $?"
import json, os, sys, time
from pathlib import Path
from espnet_data import ShardOptions, write_splits
from espnet_data.corpora import LibriSpeechCorpus
work = Path(sys.argv[1])
corpus = LibriSpeechCorpus(root=str(work / "corpus"), download=False)
t = time.perf_counter()
s = write_splits(corpus, ["train", "dev-clean"], work / "data", options=ShardOptions(max_duration=36.0),
                 utterances_per_shard=200, num_workers=os.cpu_count() or 1, progress=False)
wall = time.perf_counter() - t
json.dump({"wall_s": wall, **{k: {x: v[x] for x in ("num_utterances", "hours", "num_shards", "stored_original")}
           for k, v in s.items()}}, open(os.environ["OUT"] + "/shards.json", "w"), indent=1)
print("shards:", round(wall, 1), "s", {k: v["hours"] for k, v in s.items()})
EOF
stamp "trainer"
timeout 360 $PY benchmarks/trainer.py recipe --device "$device" "${train_args[@]}" --shards "$work/data/train" \
  --valid "$work/data/dev-clean" --work "$work/train" --out "$OUT/trainer.cuda.json" || echo "trainer: exit $?"
cp "$work/train/exp/logs/train.log" "$OUT/train.log" 2>/dev/null
stamp "create_dataset scaling"
BENCH_WORKERS=$workers_list BENCH_WORKLOADS=synth timeout 150 $PY benchmarks/run.py create_dataset || echo "create_dataset: exit $?"
cp benchmarks/out/create_dataset.json "$OUT/" 2>/dev/null
stamp "decode"
timeout 150 $PY benchmarks/decode_gpu.py "${decode_args[@]}" --out "$OUT/decode_gpu.json" || echo "decode: exit $?"
stamp "done"
