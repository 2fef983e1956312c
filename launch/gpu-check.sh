#!/usr/bin/env bash
# Builds the CUDA backend on the GPU machine, runs the GPU tests at 1, 2 and 4 ranks (as many as there are GPUs),
# compute-sanitizer memcheck at 1 and 2 ranks, and the benchmarks; full logs under $OUT (or ./gpu-check-out), a short
# table last.
#   launch/gpu-check.sh [all|tests|sanitize|bench|quick|probe]...   (default: all; probe only when named)
# Environment: BENCH_PRESETS, BENCH_TOKENS, BENCH_RANKS, BENCH_STREAMS, BENCH_GEMM (grouped streams cutlass: the
# EPMOE_CUDA_EXPERT_GEMM values to compare), BENCH_FILL (EPMOE_CUDA_GROUP_FILL values), BENCH_ENV (settings to
# compare, each "default" or VAR=value[,VAR=value...], e.g. "default EPMOE_CUDA_DISPATCH=nccl") override the
# benchmark matrix; BENCH_ARGS extra flags of every benchmark run (e.g. --staged); TEST_RANKS the ranks of the layer tests (default 1 2 4); BUILD_DIR the build folder.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-check-out}
LOGS="$OUT/logs"  # tarred into $OUT/logs.tgz at the end (the device tool returns at most 8 files)
mkdir -p "$LOGS"
BUILD=${BUILD_DIR:-build-gpu}
STEPS=${*:-all}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NCCL_NVLS_ENABLE=0 OPENBLAS_NUM_THREADS=1
NGPU=$(nvidia-smi -L 2>/dev/null | wc -l)
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }
has() { [[ " $STEPS " == *" $1 "* || " $STEPS " == *" all "* ]]; }
mpi() { local n=$1; shift; mpirun --allow-run-as-root --bind-to none -np "$n" -x NCCL_NVLS_ENABLE=0 -x OPENBLAS_NUM_THREADS=1 "$@"; }

note "# gpu-check $(date -u +%FT%TZ) on $(hostname): $NGPU GPU(s)"
nvidia-smi --query-gpu=index,name,pci.bus_id,memory.total,driver_version --format=csv,noheader | sed 's/^/# /' | tee -a "$SUMMARY"

t0=$(date +%s)
if ! { cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DEPMOE_WITH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
         && cmake --build "$BUILD" -j16 --target test_cuda_kernels test_cuda_layer epmoe_cuda_bench epmoe_link_probe epmoe; } >"$LOGS/build.log" 2>&1; then
  tail -40 "$LOGS/build.log"; note "BUILD FAILED"; exit 1
fi
note "# build: $(( $(date +%s) - t0 )) s"
BIN=$BUILD/tests/cuda

run_test() {  # name ranks command...
  local name=$1 n=$2; shift 2
  local log="$LOGS/test_${name}_np${n}.log" t=$(date +%s)
  mpi "$n" "$@" >"$log" 2>&1
  local rc=$?
  local cases=$(grep -Eo "test cases: *[0-9]+.*" "$log" | tail -1)
  [[ -z "$cases" ]] && cases=$(grep -Eo "All tests passed.*" "$log" | tail -1)
  note "$(printf '%-28s np=%d rc=%d %4ds  %s' "$name" "$n" "$rc" $(( $(date +%s) - t )) "$cases")"
  [[ $rc -ne 0 ]] && grep -E "FAILED|REQUIRE|CHECK|with expansion|error|Error" "$log" | head -30
  return 0
}

if has quick; then
  run_test kernels 1 $BIN/test_cuda_kernels
  run_test layer 1 $BIN/test_cuda_layer
  grep "^# ranks" "$LOGS/test_layer_np1.log" | head -30
fi

if has tests; then
  run_test kernels 1 $BIN/test_cuda_kernels
  for n in ${TEST_RANKS:-1 2 4}; do
    (( n <= NGPU )) && run_test layer "$n" $BIN/test_cuda_layer
  done
  for n in 1 2 4; do [[ -f "$LOGS/test_layer_np$n.log" ]] && grep "^# ranks" "$LOGS/test_layer_np$n.log" >>"$OUT/layer_cases.txt"; done
  (( NGPU >= 2 )) && run_test bench_smoke 2 $BIN/epmoe_cuda_bench --preset latent-mini --tokens 64 --iters 1 --warmup 0 --verify
fi

if [[ " $STEPS " == *" probe "* ]] && (( NGPU >= 2 )); then
  # NVLink round trips after idle gaps (the count exchange's latency; docs/performance.md).
  $BIN/epmoe_link_probe --a 0 --b 1 | tee "$OUT/link_probe.txt" | tee -a "$SUMMARY"
fi

if has sanitize; then
  # NCCL probes kernel images with cudaFuncGetAttributes at init (error 209, not a memory error): API errors off.
  CS="compute-sanitizer --tool memcheck --report-api-errors no --error-exitcode 99 --print-limit 20"
  run_test memcheck_kernels 1 $CS $BIN/test_cuda_kernels
  run_test memcheck_layer 1 $CS $BIN/test_cuda_layer "[layer]"
  (( NGPU >= 2 )) && run_test memcheck_layer 2 $CS $BIN/test_cuda_layer "[layer]"
  grep -H "ERROR SUMMARY" "$LOGS"/test_memcheck_*.log | sed "s|$LOGS/||" | sort | uniq -c | sed 's/^/# memcheck: /' | tee -a "$SUMMARY"
fi

if has bench; then
  RANKS=${BENCH_RANKS:-$NGPU}
  ei=0
  for envset in ${BENCH_ENV:-default}; do
  ei=$((ei + 1))  # the setting's place in BENCH_ENV: repeats of one setting keep their own logs
  extra=(); xs=(); [[ $envset != default ]] && extra=(${envset//,/ })
  for kv in "${extra[@]}"; do xs+=(-x "${kv%%=*}"); done
  for fill in ${BENCH_FILL:-0.9}; do
  for gemm in ${BENCH_GEMM:-grouped}; do
  for streams in ${BENCH_STREAMS:-4}; do
  for preset in ${BENCH_PRESETS:-deepseek-v3 qwen3-30b-a3b gpt-oss-120b}; do
    for tokens in ${BENCH_TOKENS:-4096 128}; do
      tag="${preset}_${tokens}_np${RANKS}_s${streams}_${gemm}_f${fill}"
      [[ $envset != default ]] && tag="${tag}_$(echo "$envset" | tr -c 'A-Za-z0-9.\n' '_')"
      [[ -n "${BENCH_ARGS:-}" ]] && tag="${tag}_$(echo "$BENCH_ARGS" | tr -c 'A-Za-z0-9.\n' '_')"
      (( ei > 1 )) && tag="${tag}_e$ei"
      log="$LOGS/bench_$tag.log"
      ( (( ${#extra[@]} )) && export "${extra[@]}"
        EPMOE_CUDA_GEMM_STREAMS=$streams EPMOE_CUDA_EXPERT_GEMM=$gemm EPMOE_CUDA_GROUP_FILL=$fill mpi "$RANKS" \
          -x EPMOE_CUDA_GEMM_STREAMS -x EPMOE_CUDA_EXPERT_GEMM -x EPMOE_CUDA_GROUP_FILL "${xs[@]}" \
          $BIN/epmoe_cuda_bench --preset "$preset" --tokens "$tokens" --iters 20 --warmup 5 ${BENCH_ARGS:-} \
          --json "$LOGS/bench_$tag.json" >"$log" 2>&1 ) || note "bench $tag FAILED"
      { echo "## $preset, $tokens tokens/rank, $RANKS ranks, EPMOE_CUDA_GEMM_STREAMS=$streams EPMOE_CUDA_EXPERT_GEMM=$gemm EPMOE_CUDA_GROUP_FILL=$fill ${extra[*]} ${BENCH_ARGS:-}"
        grep -v "^# rank [1-9]" "$log"; } >>"$OUT/bench.txt"
      cat "$LOGS/bench_$tag.json" >>"$OUT/bench.jsonl" 2>/dev/null
      field() { awk -v p="$1" -v c="$2" '$1==p{print $c}' "$log"; }
      printf '%-14s %5s tok np=%s %-11s total %6s ms | experts %6s ms %3s%% (no sum %3s%%, gemms %3s%%) | dispatch %5s ms %3s%% (a2a %3s%%, counts %5s) | combine %5s ms %3s%% (a2a %3s%%; slowest-expert rank %3s%%, a2a %3s%%)\n' \
        "$preset" "$tokens" "$RANKS" "$gemm/$fill${extra:+ ${extra[*]}}${BENCH_ARGS:+ $BENCH_ARGS}" "$(field total 2)" "$(field experts 2)" "$(field experts 7)" \
        "$(field experts_no_sum 7)" "$(field expert_gemms 7)" "$(field dispatch 2)" "$(field dispatch 7)" "$(field dispatch_a2a 7)" "$(field dispatch_counts 2)" \
        "$(field combine 2)" "$(field combine 7)" "$(field combine_a2a 7)" "$(field combine_crit 7)" \
        "$(field combine_a2a_crit 7)" >>"$SUMMARY"
    done
  done
  done
  done
  done
  done
fi

tar czf "$OUT/logs.tgz" -C "$OUT" logs && rm -rf "$LOGS"
echo
echo "================ summary ================"
[[ -f "$OUT/bench.txt" ]] && cat "$OUT/bench.txt"
cat "$SUMMARY"
exit 0
