#!/usr/bin/env bash
# The GPU measurements behind docs/scaling.md, in one go on a node with up to 4 GPUs: builds epmoe with the CUDA
# backend, runs launch/scaling.sh (weak scaling at 1, 2, 4 ranks) for the DeepSeek-V3, Qwen3-30B-A3B and
# GPT-OSS-120B shapes at 4096 (prefill) and 128 (decode) tokens per rank, and plots them.
#   launch/gpu-scaling.sh [RESULTS_DIR]        (default: $OUT when set, else ./results/gpu)
# Environment: PRESETS, RANKS, ITERS, WARMUP, BUILD_DIR override the defaults.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
results=${1:-${OUT:-$root/results/gpu}}
build=${BUILD_DIR:-$root/build-gpu}
presets=${PRESETS:-"deepseek-v3 qwen3-30b-a3b gpt-oss-120b"}
ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
[ "$ngpu" -gt 0 ] || { echo "gpu-scaling.sh: no GPU visible (nvidia-smi -L)" >&2; exit 2; }
ranks=${RANKS:-$(for n in 1 2 4; do [ "$n" -le "$ngpu" ] && printf '%s ' "$n"; done)}
mkdir -p "$results"
log=$results/gpu-scaling.log
: >"$log"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NCCL_NVLS_ENABLE=0 OPENBLAS_NUM_THREADS=1

nvidia-smi --query-gpu=index,name,pci.bus_id,memory.total,driver_version --format=csv,noheader | sed 's/^/# /' | tee -a "$log"
t0=$(date +%s)
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DEPMOE_WITH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
      -DEPMOE_BUILD_TESTS=OFF >>"$log" 2>&1
cmake --build "$build" -j"$(nproc)" --target epmoe >>"$log" 2>&1 || { tail -30 "$log"; exit 1; }
echo "# build: $(( $(date +%s) - t0 )) s" | tee -a "$log"

for preset in $presets; do
  for phase in prefill:4096 decode:128; do
    label=${phase%%:*} tokens=${phase##*:}
    EPMOE_BUILD_DIR=$build bash "$root/launch/scaling.sh" --weak "$tokens" --ranks "$ranks" --preset "$preset" \
      --iters "${ITERS:-20}" --warmup "${WARMUP:-5}" --results "$results" --label "$label" >>"$log" 2>&1 ||
      echo "# FAILED: $preset $label (see $log)" | tee -a "$log"
  done
done
python3 "$root/launch/plot_scaling.py" "$results/scaling.jsonl" --out "$results" >>"$log" 2>&1 || echo "# plots failed" | tee -a "$log"
# A table for docs/scaling.md.
python3 - "$results/scaling.jsonl" <<'PY' | tee -a "$log"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| preset | phase | ranks | tokens/rank | route | dispatch | experts | combine | shared | total (ms) | tokens/s | expert TFLOP/s per rank (% GEMM ceiling) | dispatch GB/s (% a2a ceiling) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    x = r["results"][-1]; c = r["config"]
    per_rank = x["expert_tflops"] / c["ranks"]  # the GEMM ceiling is one rank's
    ge = 100 * per_rank / x["ceiling_gemm_tflops"] if x["ceiling_gemm_tflops"] else 0
    di = 100 * x["dispatch_gbps"] / x["ceiling_alltoall_gbps"] if x["ceiling_alltoall_gbps"] and x["dispatch_gbps"] else 0
    print(f"| {c['preset']} | {r.get('label','')} | {c['ranks']} | {x['tokens_per_rank']} | {x['route_ms']:.3f} | {x['dispatch_ms']:.3f} | "
          f"{x['experts_ms']:.3f} | {x['combine_ms']:.3f} | {x['shared_ms']:.3f} | {x['total_ms']:.3f} | {x['tokens_per_s']:.0f} | "
          f"{per_rank:.0f} ({ge:.0f}%) | {x['dispatch_gbps']:.0f} ({di:.0f}%) |")
print("# devices:", rows[-1]["devices"][0]["host_device"] if rows else "")
PY
