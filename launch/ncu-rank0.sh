#!/bin/bash
if [ "$OMPI_COMM_WORLD_RANK" = 0 ]; then
  exec ncu --clock-control none --metrics gpu__time_duration.sum -k 'regex:scatter|weighted|bias_act|pack_dispatch|dispatch_flags|combine_sum|rank_row|Scan|f32_to_bf16' --launch-skip 20 --launch-count 20 "$@"
else
  exec "$@"
fi
