#!/bin/bash
# Runs the command under Nsight Compute on MPI rank 0 only (the other ranks run it plainly), timing the layer's own
# memory-bound kernels (routing layout, pack, scatter, activation, weighted sum, combine sum) of two forwards:
#   mpirun -np 4 -x NCCL_NVLS_ENABLE=0 launch/ncu-rank0.sh build-gpu/tests/cuda/epmoe_cuda_bench \
#       --preset qwen3-30b-a3b --tokens 4096 --iters 3 --warmup 3
# ncu serializes rank 0's kernels: the durations are of each kernel alone, not of the layer.
if [ "${OMPI_COMM_WORLD_RANK:-0}" = 0 ]; then
  exec ncu --clock-control none --metrics gpu__time_duration.sum \
    -k 'regex:scatter|weighted|bias_act|pack_dispatch|dispatch_flags|combine_sum|rank_row|Scan|f32_to_bf16' \
    --launch-skip 20 --launch-count 20 "$@"
else
  exec "$@"
fi
