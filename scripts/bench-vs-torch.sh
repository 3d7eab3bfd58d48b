#!/usr/bin/env bash
# On a GPU node: mu-bench and tools/bench_torch.py back to back at the same shapes, then the
# tables per preset (tools/bench_compare.py): ratios against PyTorch (issue 8) and the speed
# targets of issues 4 and 5, each marked met or not.
#   scripts/bench-vs-torch.sh [BUILD_DIR] [OUT_DIR]
#   env: CONFIGS="smollm2-135m llama-3.2-1b:16"  (PRESET or PRESET:BATCH)  BATCH=4  SEQ=2048
#        PYTHON=python3  PEAK_TFLOPS=0 (0: from the device name)  TORCH=0 (skip the PyTorch side)
#        MU_BENCH_ARGS="--runs 5" (more mu-bench flags)  TORCH_ARGS="--skip step" (more bench_torch.py flags)
# Writes OUT_DIR/{mu,torch}-<preset>-b<batch>.json and OUT_DIR/results-<preset>-b<batch>.md; copy the .md files to
# bench/results/ with the device in the name.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
out=${2:-bench/out}
mkdir -p "$out"
py=${PYTHON:-python3}
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -x "$build/mu-bench" ] || { echo "bench-vs-torch: $build/mu-bench is not built (cmake --build $build)" >&2; exit 1; }
status=0
for item in ${CONFIGS:-smollm2-135m llama-3.2-1b}; do
  cfg=${item%%:*}
  batch=${BATCH:-4}
  [ "$item" != "$cfg" ] && batch=${item#*:}
  tag=$cfg-b$batch
  echo "== $cfg, batch $batch: mu-bench"
  # shellcheck disable=SC2086  # MU_BENCH_ARGS: extra flags, word-split on purpose
  if ! "$build/mu-bench" --config "$cfg" --batch-size "$batch" --seq-len "${SEQ:-2048}" \
    --peak-tflops "${PEAK_TFLOPS:-0}" ${MU_BENCH_ARGS:-} --json "$out/mu-$tag.json"; then
    echo "bench-vs-torch: mu-bench failed at $cfg, batch $batch; going on with the next preset" >&2
    status=1
    continue
  fi
  torch_json=
  if [ "${TORCH:-1}" != 0 ]; then
    echo "== $cfg, batch $batch: PyTorch"
    # shellcheck disable=SC2086  # TORCH_ARGS: extra flags, word-split on purpose
    if "$py" tools/bench_torch.py --config "$cfg" --batch-size "$batch" --seq-len "${SEQ:-2048}" ${TORCH_ARGS:-} \
      --json "$out/torch-$tag.json"; then
      torch_json=$out/torch-$tag.json
    else
      echo "bench-vs-torch: the PyTorch side failed; the tables below leave it out" >&2
    fi
  fi
  echo "== $cfg, batch $batch: tables"
  "$py" tools/bench_compare.py "$out/mu-$tag.json" ${torch_json:+"$torch_json"} --commit "$commit" \
    --out "$out/results-$tag.md" || status=1
done
exit $status
