#!/usr/bin/env bash
# From a fresh Debian/Ubuntu machine to a verified run: installs what is missing, builds epmoe, and runs the
# default job under mpirun: one rank per GPU on the CUDA backend when GPUs are visible, else 2 CPU ranks.
#   EPMOE_BUILD_DIR  build folder (default: build)
#   extra arguments go to 'epmoe run' (e.g. --preset qwen3-mini --tokens 1024)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${EPMOE_BUILD_DIR:-$root/build}

bash "$root/launch/install-deps.sh"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DEPMOE_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j "$(nproc)"

gpus=0
if command -v nvidia-smi >/dev/null 2>&1; then gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true); fi
ranks=${EPMOE_RANKS:-$([ "$gpus" -gt 0 ] && echo "$gpus" || echo 2)}
echo "# running: mpirun -np $ranks $build/src/app/epmoe run $*"
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} NCCL_NVLS_ENABLE=0
exec mpirun --oversubscribe -np "$ranks" -x OPENBLAS_NUM_THREADS -x NCCL_NVLS_ENABLE "$build/src/app/epmoe" run "$@"
