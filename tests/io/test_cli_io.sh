#!/usr/bin/env bash
# The checkpoint commands under mpirun at 2 ranks: make-checkpoint, inspect (--load), and bad inputs that must end
# with a non-zero exit, one message naming the file, no hang (timeout) and no partial output file.
#   test_cli_io.sh EPMOE MPIEXEC SCRATCH_DIR
set -u
epmoe=$1
mpiexec=$2
dir=$3/cli
rm -rf "$dir" && mkdir -p "$dir"
failures=0
run() {  # run WANT_RC(0|nonzero) PATTERN ARGS...: runs 'epmoe ARGS' on 2 ranks, checks the exit code and output
  local want=$1 pattern=$2
  shift 2
  local out rc
  out=$(timeout 120 "$mpiexec" -n 2 --oversubscribe "$epmoe" "$@" 2>&1)
  rc=$?
  if [[ $rc == 124 ]]; then echo "FAIL (hang): epmoe $*"; failures=$((failures + 1)); return; fi
  if [[ $want == 0 && $rc != 0 ]] || [[ $want != 0 && $rc == 0 ]]; then
    echo "FAIL (exit $rc, wanted $want): epmoe $*"; echo "$out"; failures=$((failures + 1)); return
  fi
  if ! grep -q -- "$pattern" <<<"$out"; then
    echo "FAIL (no '$pattern' in output): epmoe $*"; echo "$out"; failures=$((failures + 1)); return
  fi
  if [[ $want != 0 ]] && [[ $(grep -c "epmoe: error" <<<"$out") != 1 ]]; then
    echo "FAIL (error not printed exactly once): epmoe $*"; echo "$out"; failures=$((failures + 1)); return
  fi
  echo "ok: epmoe $* (exit $rc)"
}

run 0 "wrote $dir/q.h5" make-checkpoint --preset qwen3-mini --out "$dir/q.h5" --dtype f16 --layers 2 --seed 7
run 0 "verdict: valid" inspect "$dir/q.h5"
run 0 "^      1 " inspect "$dir/q.h5" --load --placement round-robin
run nonzero "$dir/missing.h5" inspect "$dir/missing.h5"
echo "not hdf5" >"$dir/text.h5"
run nonzero "not an HDF5 file" inspect "$dir/text.h5"
head -c 20000 "$dir/q.h5" >"$dir/trunc.h5"
run nonzero "truncated or corrupted" inspect "$dir/trunc.h5"
run nonzero "$dir/nodir/x.h5" make-checkpoint --preset qwen3-mini --out "$dir/nodir/x.h5"
run nonzero "unknown preset" make-checkpoint --preset nope --out "$dir/y.h5"
run nonzero "missing FILE" inspect
if ls "$dir" | grep -q -e tmp -e '^y.h5$'; then echo "FAIL: partial files left: $(ls "$dir")"; failures=$((failures + 1)); fi
echo "$failures failure(s)"
[[ $failures == 0 ]]
