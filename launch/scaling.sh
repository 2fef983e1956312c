#!/usr/bin/env bash
# Weak and strong scaling sweeps with 'epmoe bench', one JSON line per run appended to RESULTS/scaling.jsonl;
# launch/plot_scaling.py turns them into PNGs.
#   weak:   fixed tokens per rank (--weak T), ranks 1..N
#   strong: fixed total tokens (--strong TOTAL), tokens per rank = TOTAL / ranks
# usage: launch/scaling.sh [--weak T] [--strong TOTAL] [--ranks "1 2 4"] [--preset NAME] [--mode MODE]
#                          [--iters N] [--warmup N] [--results DIR] [--label TEXT] [--dry-run] [-- extra bench flags]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
weak=""
strong=""
ranks="1 2 4"
preset=qwen3-mini
mode=alltoall
iters=20
warmup=5
results=$root/results
label=""
dry=0
while [ $# -gt 0 ]; do
  case "$1" in
    --weak) weak=$2; shift 2 ;;
    --strong) strong=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --preset) preset=$2; shift 2 ;;
    --mode) mode=$2; shift 2 ;;
    --iters) iters=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --results) results=$2; shift 2 ;;
    --label) label=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "scaling.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
[ -n "$weak$strong" ] || { echo "scaling.sh: give --weak TOKENS_PER_RANK and/or --strong TOTAL_TOKENS" >&2; exit 2; }
for v in $weak $strong $ranks $iters $warmup; do
  case "$v" in ''|*[!0-9]*) echo "scaling.sh: '$v' is not a non-negative integer" >&2; exit 2 ;; esac
done
mkdir -p "$results"
out=$results/scaling.jsonl

run_one() {  # sweep ranks tokens_per_rank
  local sweep=$1 n=$2 t=$3
  shift 3
  local json="$results/.bench-$$-$sweep-$n-$t.json"  # one per run of this script; removed after appending
  local args=(bench -b "$t" -e "$t" -n "$iters" -w "$warmup" --preset "$preset" --mode "$mode" -J "$json" "$@")
  if [ "$dry" -eq 1 ]; then
    bash "$root/launch/local.sh" --dry-run -n "$n" -- "${args[@]}"
    return
  fi
  bash "$root/launch/local.sh" -n "$n" -- "${args[@]}"
  python3 - "$json" "$sweep" "$label" >>"$out" <<'PY'
import json, sys
path, sweep, label = sys.argv[1:4]
record = json.load(open(path))
record["sweep"] = sweep
record["label"] = label
print(json.dumps(record, separators=(",", ":")))
PY
  rm -f "$json"
}

extra=("$@")
for n in $ranks; do
  if [ -n "$weak" ]; then run_one weak "$n" "$weak" ${extra[@]+"${extra[@]}"}; fi
  if [ -n "$strong" ]; then
    per=$(( strong / n ))
    [ "$per" -ge 1 ] || { echo "scaling.sh: --strong $strong is less than one token per rank at $n ranks" >&2; exit 2; }
    run_one strong "$n" "$per" ${extra[@]+"${extra[@]}"}
  fi
done
[ "$dry" -eq 1 ] || echo "# appended to $out; plot with: python3 launch/plot_scaling.py $out"
