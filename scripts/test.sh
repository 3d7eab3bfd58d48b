#!/usr/bin/env bash
# The test command: from a fresh clone on Debian 12, installs what is missing, builds
# everything (the CUDA sources included), and runs every CTest suite. The `gpu` tests skip
# with a message where no GPU is present; then the same CUDA sources, built against the
# cpu emulator (kernels/cuda/emu/README.md), run those suites as `emu`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export PATH="$PATH:/usr/local/cuda/bin"
jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs" --timeout 900
cmake -S . -B build-emu -G Ninja -DCMAKE_BUILD_TYPE=Release -DMU_CUDA_EMU=ON
cmake --build build-emu -j "$jobs"
ctest --test-dir build-emu --output-on-failure -j "$jobs" --timeout 900
