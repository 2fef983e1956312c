#!/usr/bin/env bash
# The epmoe program as a user meets it under mpirun: defaults, help, bad flags (clear message naming the flag,
# exit code 2, no rank left hanging), refused configurations, and verified runs.
# usage: test_cli.sh path/to/epmoe
set -u
EPMOE=${1:?usage: test_cli.sh path/to/epmoe}
MPIRUN="mpirun --oversubscribe"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
passed=0
failed=0
out=$(mktemp)

# expect NAME EXPECTED_CODE PATTERN -- command...   (PATTERN: an extended regex the output must match)
expect() {
  local name=$1 want=$2 pattern=$3
  shift 4
  timeout 180 "$@" >"$out" 2>&1
  local code=$?
  if [ "$code" -eq 124 ]; then
    echo "FAIL $name: timed out (a rank hung)"
    failed=$((failed + 1))
  elif [ "$code" -ne "$want" ]; then
    echo "FAIL $name: exit code $code, expected $want"; sed 's/^/    /' "$out" | head -20
    failed=$((failed + 1))
  elif ! grep -Eq -- "$pattern" "$out"; then
    echo "FAIL $name: output does not match /$pattern/"; sed 's/^/    /' "$out" | head -20
    failed=$((failed + 1))
  else
    echo "ok   $name"
    passed=$((passed + 1))
  fi
}

expect "no command prints usage, exit 2" 2 "usage: epmoe <command>" -- "$EPMOE"
expect "--help" 0 "commands:" -- "$EPMOE" --help
expect "unknown command" 2 "unknown command 'frobnicate'" -- "$EPMOE" frobnicate
for flag in --preset --tokens --layers --mode --placement --pad-multiple --seed --iters --warmup --verify \
            --no-verify --backend --tolerance --save-expert-loads --expert-loads; do
  expect "run --help lists $flag" 0 "^  $flag" -- "$EPMOE" run --help
done
expect "run --help shows defaults" 0 "default: deepseek-mini" -- "$EPMOE" run --help

# The default job picks the CUDA backend where GPUs are visible (one rank per GPU), so use no more ranks than GPUs.
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
np_default=2
[ "${gpus:-0}" -eq 1 ] && np_default=1
expect "default job verifies" 0 "no flags given.*default job" -- $MPIRUN -np $np_default "$EPMOE" run
expect "default job reports phases" 0 "route .* dispatch .* experts .* combine .* shared .* total" -- \
  $MPIRUN -np $np_default "$EPMOE" run
expect "default job prints the unpad plan" 0 "# unpad plan: route" -- $MPIRUN -np $np_default "$EPMOE" run

expect "negative --tokens" 2 "--tokens: -5 is out of range" -- $MPIRUN -np 2 "$EPMOE" run --backend cpu --tokens -5
expect "non-numeric --iters" 2 "--iters: expected an integer, got 'abc'" -- $MPIRUN -np 2 "$EPMOE" run --backend cpu --iters abc
expect "bad --mode" 2 "--mode: unknown value 'broadcast'" -- $MPIRUN -np 2 "$EPMOE" run --backend cpu --mode broadcast
expect "bad --preset" 2 "--preset: unknown preset 'gpt-5'; available: gpt-oss-mini" -- \
  $MPIRUN -np 2 "$EPMOE" run --backend cpu --preset gpt-5
expect "--pad-multiple out of range" 2 "--pad-multiple: 5000 is out of range" -- \
  $MPIRUN -np 2 "$EPMOE" run --backend cpu --pad-multiple 5000
expect "unknown flag" 2 "unknown argument '--bogus'" -- $MPIRUN -np 2 "$EPMOE" run --backend cpu --bogus
expect "missing value" 2 "--tokens needs a value" -- $MPIRUN -np 2 "$EPMOE" run --backend cpu --tokens
expect "--verify with --no-verify" 2 "exclude each other" -- $MPIRUN -np 2 "$EPMOE" run --backend cpu --verify --no-verify
expect "more ranks than experts" 1 "more ranks \(9\) than experts \(8\)" -- \
  $MPIRUN -np 9 "$EPMOE" run --backend cpu --preset mixtral-mini --tokens 4

expect "qwen3-mini allreduce pad 256 at 3 ranks" 0 "verification passed" -- \
  $MPIRUN -np 3 "$EPMOE" run --backend cpu --preset qwen3-mini --mode allreduce --pad-multiple 256 --tokens 32
expect "gpt-oss-mini round-robin, 0 tokens, 2 ranks" 0 "verification passed" -- \
  $MPIRUN -np 2 "$EPMOE" run --backend cpu --preset gpt-oss-mini --placement round-robin --tokens 0
expect "latent-mini 4 ranks, 3 layers, warmup" 0 "verify layer 2: .* OK" -- \
  $MPIRUN -np 4 "$EPMOE" run --backend cpu --preset latent-mini --layers 3 --warmup 1 --iters 2 --tokens 16 --pad-multiple 128

# Checkpoints and token files (HDF5; the token files are written by h5py, an independent writer).
here=$(cd "$(dirname "$0")" && pwd)
data="$here/../../data"
tmp=$(mktemp -d)
trap 'rm -f "$out"; rm -rf "$tmp"' EXIT
python3 "$here/make_tokens.py" "$tmp/tokens.h5" 37 168
python3 "$here/make_tokens.py" "$tmp/tokens16.h5" 37 168 --dtype float16
python3 "$here/make_tokens.py" "$tmp/nan.h5" 37 168 --nan 30,7
python3 "$here/make_tokens.py" "$tmp/narrow.h5" 10 100
expect "run a checkpoint with an input file at 1 rank" 0 "verification passed" -- \
  $MPIRUN -np 1 "$EPMOE" run --backend cpu --checkpoint "$data/nemotron-mini.h5" --input "$tmp/tokens.h5" --output "$tmp/o1.h5"
expect "the same at 3 ranks, padded" 0 "verification passed" -- \
  $MPIRUN -np 3 "$EPMOE" run --backend cpu --checkpoint "$data/nemotron-mini.h5" --input "$tmp/tokens.h5" --output "$tmp/o3.h5" \
  --pad-multiple 256
cp "$out" "$tmp/run3.log"
expect "each of the 3 ranks reports the bytes it read" 0 "^ +2 +5 +[0-9]+" -- cat "$tmp/run3.log"
expect "outputs at 1 and 3 ranks agree, in the input's token order" 0 "ids_equal=True" -- \
  python3 "$here/compare_outputs.py" "$tmp/o1.h5" "$tmp/o3.h5" 1e-5 37
expect "balanced placement at 3 ranks: each layer's owner map from the input's loads" 0 \
  "balanced placement, layer 0: the busiest rank gets [0-9.]+ pairs of this input \(linear placement: [0-9.]+, mean" -- \
  $MPIRUN -np 3 "$EPMOE" run --backend cpu --checkpoint "$data/nemotron-mini.h5" --input "$tmp/tokens.h5" \
  --output "$tmp/o3b.h5" --placement balanced
expect "... and its outputs equal the 1-rank run's" 0 "ids_equal=True" -- \
  python3 "$here/compare_outputs.py" "$tmp/o1.h5" "$tmp/o3b.h5" 1e-5 37
expect "balanced placement with more ranks than experts" 1 "more ranks \(17\) than experts \(16\)" -- \
  $MPIRUN -np 17 "$EPMOE" run --backend cpu --checkpoint "$data/nemotron-mini.h5" --tokens 1 --placement balanced
expect "--save-expert-loads writes each layer's pairs per expert, summed over the ranks" 0 "wrote /expert_loads" -- \
  $MPIRUN -np 2 "$EPMOE" run --backend cpu --checkpoint "$data/nemotron-mini.h5" --input "$tmp/tokens.h5" \
  --save-expert-loads "$tmp/loads.h5"
expect "... one row per layer, each the 37 tokens' pairs" 0 "^loads ok" -- python3 -c "
import h5py, sys
d = h5py.File('$tmp/loads.h5', 'r')['/expert_loads'][:]
k = int(h5py.File('$data/nemotron-mini.h5', 'r').attrs['top_k'])
sums = d.sum(axis=1)
ok = d.ndim == 2 and d.shape[0] >= 1 and (sums == 37 * k).all()
print('loads ok' if ok else 'loads bad: %s %s' % (d.shape, sums))"
expect "balanced placement from a loads file at 3 ranks" 0 "balanced placement, layer 0: .* pairs of the loads in" -- \
  $MPIRUN -np 3 "$EPMOE" run --backend cpu --checkpoint "$data/nemotron-mini.h5" --input "$tmp/tokens.h5" \
  --output "$tmp/o3l.h5" --placement balanced --expert-loads "$tmp/loads.h5"
expect "... and its outputs equal the 1-rank run's" 0 "ids_equal=True" -- \
  python3 "$here/compare_outputs.py" "$tmp/o1.h5" "$tmp/o3l.h5" 1e-5 37
expect "--expert-loads without balanced placement" 2 "--expert-loads places the experts by those loads: it needs" -- \
  $MPIRUN -np 2 "$EPMOE" run --backend cpu --checkpoint "$data/nemotron-mini.h5" --expert-loads "$tmp/loads.h5"
expect "--expert-loads naming a file without loads" 1 "tokens.h5: dataset '/expert_loads' is missing" -- \
  $MPIRUN -np 2 "$EPMOE" run --backend cpu --checkpoint "$data/nemotron-mini.h5" --placement balanced \
  --expert-loads "$tmp/tokens.h5"
expect "allreduce mode with a float16 input file" 0 "verification passed" -- \
  $MPIRUN -np 2 "$EPMOE" run --backend cpu --checkpoint "$data/nemotron-mini.h5" --input "$tmp/tokens16.h5" --mode allreduce
expect "NaN in the input is refused on every rank, naming the file and dataset" 1 \
  "nan.h5: dataset /hidden_states holds a non-finite value .* at row 30, column 7" -- \
  $MPIRUN -np 3 "$EPMOE" run --backend cpu --checkpoint "$data/nemotron-mini.h5" --input "$tmp/nan.h5"
expect "an input of the wrong width" 1 "narrow.h5: dataset /hidden_states has width 100 but the model's hidden_size is 168" -- \
  $MPIRUN -np 2 "$EPMOE" run --backend cpu --checkpoint "$data/nemotron-mini.h5" --input "$tmp/narrow.h5"
expect "a missing checkpoint" 1 "/nonexistent.h5" -- $MPIRUN -np 2 "$EPMOE" run --backend cpu --checkpoint /nonexistent.h5
expect "an output folder that does not exist" 1 "--output /no/such/dir/o.h5: the folder '/no/such/dir' does not exist" -- \
  $MPIRUN -np 2 "$EPMOE" run --backend cpu --output /no/such/dir/o.h5 --tokens 4
expect "--tokens with --input" 2 "--tokens and --input exclude each other" -- \
  $MPIRUN -np 2 "$EPMOE" run --backend cpu --input "$tmp/tokens.h5" --tokens 5
expect "more ranks than a checkpoint's experts" 1 "more ranks \(17\) than experts \(16\)" -- \
  $MPIRUN -np 17 "$EPMOE" run --backend cpu --checkpoint "$data/nemotron-mini.h5" --tokens 1

# docs/unpad-timing.md carries the plan table; it must match what the code plans.
doc="$(dirname "$0")/../../docs/unpad-timing.md"
if diff <(sed -n '/<!-- plan-table:begin -->/,/<!-- plan-table:end -->/p' "$doc" | sed '1d;$d') \
        <("$EPMOE" plan --table) >"$out" 2>&1; then
  echo "ok   docs/unpad-timing.md table matches 'epmoe plan --table'"
  passed=$((passed + 1))
else
  echo "FAIL docs/unpad-timing.md table differs from 'epmoe plan --table':"; head -20 "$out"
  failed=$((failed + 1))
fi
expect "plan for one configuration" 0 "experts\[168->256->168 trim\]" -- "$EPMOE" plan --preset nemotron-mini

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
