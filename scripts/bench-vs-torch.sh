#!/usr/bin/env bash
# On a GPU node: mu-bench and tools/bench_torch.py back to back at the same shapes, then one
# table of ratios per preset (tools/bench_compare.py; the targets of issue 8 marked met or not).
#   scripts/bench-vs-torch.sh [BUILD_DIR] [OUT_DIR]
#   env: CONFIGS="smollm2-135m llama-3.2-1b"  BATCH=4  SEQ=2048  PYTHON=python3  PEAK_TFLOPS=989
# Writes OUT_DIR/{mu,torch}-<preset>.json and OUT_DIR/results-<preset>.md; copy the .md files to
# bench/results/ with the device in the name.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
out=${2:-bench/out}
mkdir -p "$out"
py=${PYTHON:-python3}
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -x "$build/mu-bench" ] || { echo "bench-vs-torch: $build/mu-bench is not built (cmake --build $build)" >&2; exit 1; }
for cfg in ${CONFIGS:-smollm2-135m llama-3.2-1b}; do
  echo "== $cfg: mu-bench"
  "$build/mu-bench" --config "$cfg" --batch-size "${BATCH:-4}" --seq-len "${SEQ:-2048}" \
    --peak-tflops "${PEAK_TFLOPS:-0}" --json "$out/mu-$cfg.json"
  echo "== $cfg: PyTorch"
  "$py" tools/bench_torch.py --config "$cfg" --batch-size "${BATCH:-4}" --seq-len "${SEQ:-2048}" \
    --json "$out/torch-$cfg.json"
  echo "== $cfg: ratios"
  "$py" tools/bench_compare.py "$out/mu-$cfg.json" "$out/torch-$cfg.json" --commit "$commit" \
    --out "$out/results-$cfg.md"
done
