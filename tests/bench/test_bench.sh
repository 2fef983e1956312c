#!/usr/bin/env bash
# epmoe bench on the CPU backend at tiny sizes with -c, its JSON record, and the launch scripts' dry runs.
# usage: test_bench.sh path/to/epmoe work-dir
set -u
EPMOE=${1:?usage: test_bench.sh path/to/epmoe work-dir}
WORK=${2:?}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "$(dirname "$EPMOE")/../.." && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
MPIRUN="mpirun --oversubscribe"
rm -rf "$WORK" && mkdir -p "$WORK"
passed=0
failed=0
out=$WORK/out.txt
check() {  # name expected_code pattern -- cmd...
  local name=$1 want=$2 pattern=$3
  shift 4
  timeout 300 "$@" >"$out" 2>&1
  local code=$?
  if [ "$code" -ne "$want" ] || ! grep -Eq -- "$pattern" "$out"; then
    echo "FAIL $name (exit $code, want $want, pattern /$pattern/)"; sed 's/^/    /' "$out" | tail -25
    failed=$((failed + 1))
  else
    echo "ok   $name"
    passed=$((passed + 1))
  fi
}

json=$WORK/bench.json
check "bench sweep with -c at 2 ranks" 0 "all checks passed" -- \
  $MPIRUN -np 2 "$EPMOE" bench --backend cpu -b 8 -e 32 -f 2 -n 2 -w 1 -c -J "$json" --preset deepseek-mini --pad-multiple 256
cp "$out" "$WORK/bench_table.txt"
check "bench table has header, units row and ceilings" 0 "per rank +\(ms\).*\(TFLOP/s\)" -- cat "$WORK/bench_table.txt"
check "bench preamble names every rank's host and device" 0 "#  rank 1: .* \| cpu" -- cat "$WORK/bench_table.txt"
check "bench JSON fields" 0 "^ok:" -- python3 "$here/check_bench_json.py" "$json" 2 8,16,32
check "bench never overwrites its JSON" 2 "exists; bench never overwrites" -- \
  $MPIRUN -np 2 "$EPMOE" bench --backend cpu -b 8 -e 8 -J "$json"
check "bench allreduce, synthetic zipf routing, 3 ranks" 0 "all checks passed" -- \
  $MPIRUN -np 3 "$EPMOE" bench --backend cpu -b 16 -e 16 -n 2 -c --mode allreduce --routing zipf:1.5 --preset latent-mini
check "bench hot-expert routing" 0 "all checks passed" -- \
  $MPIRUN -np 2 "$EPMOE" bench --backend cpu -b 16 -e 16 -n 1 -c --routing hot:0.9 --preset gpt-oss-mini
check "bench zipf routing with balanced placement at 3 ranks" 0 "all checks passed" -- \
  $MPIRUN -np 3 "$EPMOE" bench --backend cpu -b 16 -e 32 -n 1 -c --routing zipf:1.2 --placement balanced --preset qwen3-mini
cp "$out" "$WORK/balanced.txt"
# zipf:1.2 puts the hot experts on linear placement's rank 0 (536 of 768 pairs at 32 tokens); balanced measures the
# imposed choice's loads, not the router's, and evens them out.
check "... places by the loads of the imposed choice" 0 \
  "balanced placement, layer 0: the busiest rank gets 256 pairs of this input \(linear placement: 536, mean 256\)" -- \
  cat "$WORK/balanced.txt"
check "bench bad routing" 2 "--routing: unknown routing 'skewed'" -- $MPIRUN -np 2 "$EPMOE" bench --backend cpu --routing skewed
check "bench --gpu-lead out of range" 2 "--gpu-lead: -5 is out of range \\[0, " -- \
  $MPIRUN -np 2 "$EPMOE" bench --backend cpu -b 8 -e 8 --gpu-lead -5
check "bench min > max" 2 "--min-tokens \(64\) must not exceed --max-tokens \(8\)" -- \
  $MPIRUN -np 2 "$EPMOE" bench --backend cpu -b 64 -e 8
check "bench --backend cuda without a GPU is refused, not run on the CPU" 2 "--backend cuda" -- \
  env CUDA_VISIBLE_DEVICES= $MPIRUN -np 1 "$EPMOE" bench -b 8 -e 8 --backend cuda

check "local.sh --dry-run" 0 "mpirun -np 3 .*NCCL_NVLS_ENABLE=0.*epmoe run --preset qwen3-mini" -- \
  bash "$root/launch/local.sh" --dry-run -n 3 --build "$build" -- run --preset qwen3-mini
check "local.sh refuses a bad -n" 2 "-n must be a positive integer" -- bash "$root/launch/local.sh" -n x -- run
check "slurm.sbatch --dry-run" 0 "srun --mpi=pmix .*epmoe bench -b 128" -- \
  bash "$root/launch/slurm.sbatch" --dry-run bench -b 128
check "slurm.sbatch refuses to run outside an allocation" 2 "not inside a Slurm allocation" -- \
  env -u SLURM_JOB_ID bash "$root/launch/slurm.sbatch" run
check "epmoe refuses a world that is not what Slurm launched" 1 "Slurm started 4 tasks but this MPI job has 1" -- \
  env SLURM_STEP_NUM_TASKS=4 "$EPMOE" run --tokens 4
check "scaling.sh --dry-run" 0 "mpirun -np 2 .*bench -b 64 -e 64 .*--preset mixtral-mini" -- \
  bash "$root/launch/scaling.sh" --dry-run --weak 64 --strong 128 --ranks "1 2" --preset mixtral-mini
check "scaling.sh real weak+strong sweep" 0 "appended to" -- env EPMOE_BUILD_DIR="$build" \
  bash "$root/launch/scaling.sh" --weak 16 --strong 32 --ranks "1 2" --iters 2 --warmup 1 --results "$WORK/res" \
  -- --backend cpu
check "scaling.jsonl has 4 records" 0 "^4$" -- bash -c "wc -l < '$WORK/res/scaling.jsonl'"
check "plot_scaling.py writes the PNGs" 0 "qwen3-mini_alltoall_cpu_strong.png" -- \
  python3 "$root/launch/plot_scaling.py" "$WORK/res/scaling.jsonl" --out "$WORK/png"
check "the PNGs exist" 0 "weak.png" -- bash -c "ls '$WORK/png'/*.png"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
