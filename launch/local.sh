#!/usr/bin/env bash
# One node: one MPI rank per GPU (or N CPU ranks where there is no GPU), with the environment epmoe expects.
# usage: launch/local.sh [-n RANKS] [--dry-run] [--build DIR] -- <epmoe command and flags>
#   e.g. launch/local.sh -- run --preset qwen3-30b-a3b --tokens 4096 --no-verify
#        launch/local.sh -n 4 -- bench -b 128 -e 4096 -J results/bench.json
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${EPMOE_BUILD_DIR:-$root/build}
ranks=""
dry=0
while [ $# -gt 0 ]; do
  case "$1" in
    -n) ranks=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    --build) build=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "local.sh: unknown option '$1' (put epmoe's own flags after --)" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "local.sh: give the epmoe command after --, e.g. -- run --preset qwen3-mini" >&2; exit 2; }

gpus=0
if command -v nvidia-smi >/dev/null 2>&1; then gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true); fi
if [ -z "$ranks" ]; then ranks=$([ "$gpus" -gt 0 ] && echo "$gpus" || echo 2); fi
case "$ranks" in ''|*[!0-9]*|0) echo "local.sh: -n must be a positive integer (got '$ranks')" >&2; exit 2 ;; esac

# One rank per GPU: epmoe picks device local_rank % device_count itself; bind each rank to a share of the cores.
# NVLink multicast (NVLS) stays off; OpenBLAS gets one thread per rank when ranks share cores.
cores=$(nproc)
bind="--bind-to core --map-by slot:PE=$(( cores / ranks > 0 ? cores / ranks : 1 ))"
[ "$ranks" -gt "$cores" ] && bind="--oversubscribe --bind-to none"
env_flags="-x NCCL_NVLS_ENABLE=0 -x OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} -x NCCL_DEBUG=${NCCL_DEBUG:-WARN}"
root_flags=""
[ "$(id -u)" -eq 0 ] && root_flags="--allow-run-as-root"
cmd="mpirun -np $ranks $bind $root_flags $env_flags $build/src/app/epmoe $*"
echo "# $cmd"
[ "$dry" -eq 1 ] && exit 0
export NCCL_NVLS_ENABLE=0
exec $cmd
