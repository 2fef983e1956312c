#!/usr/bin/env python3
"""Checks an 'epmoe bench -J' record: every field docs/benchmarking.md promises, with sane values."""
import json
import sys

path, want_ranks, want_sizes = sys.argv[1], int(sys.argv[2]), [int(x) for x in sys.argv[3].split(",")]
r = json.load(open(path))
errors = []


def need(cond, what):
    if not cond:
        errors.append(what)


for k in ["command", "versions", "config", "devices", "results"]:
    need(k in r, f"missing top-level field {k}")
v = r["versions"]
for k in ["epmoe", "git_commit", "mpi", "hdf5", "cuda", "nccl"]:
    need(isinstance(v.get(k), str) and v[k], f"versions.{k} missing or empty")
need("Open MPI" in v["mpi"] or "MPI" in v["mpi"], "versions.mpi does not name the MPI library")
c = r["config"]
for k in ["preset", "model", "backend", "mode", "placement", "pad_multiple", "routing", "ranks", "iters", "unpad_plan"]:
    need(k in c, f"config.{k} missing")
need(c["ranks"] == want_ranks, f"config.ranks {c['ranks']} != {want_ranks}")
need(len(r["devices"]) == want_ranks, "one device entry per rank")
sizes = [x["tokens_per_rank"] for x in r["results"]]
need(sizes == want_sizes, f"sizes {sizes} != {want_sizes}")
for x in r["results"]:
    for k in ["route_ms", "dispatch_ms", "experts_ms", "combine_ms", "shared_ms", "total_ms", "tokens_per_s",
              "expert_tflops", "dispatch_gbps", "combine_gbps", "slowest_rank", "ceiling_gemm_tflops",
              "ceiling_alltoall_gbps", "dispatch_bytes_per_rank", "expert_flops", "dispatch_exchange_ms",
              "combine_exchange_ms", "expert_gemms_ms", "weighted_sum_ms"]:
        need(k in x, f"results[{x.get('tokens_per_rank')}].{k} missing")
    # Parts of phases: inside their phase, and measured (the GEMMs always run; the exchanges at several ranks).
    need(0 < x["expert_gemms_ms"] <= x["experts_ms"] + 1e-9, "expert_gemms must be positive and within experts")
    need(x["dispatch_exchange_ms"] <= x["dispatch_ms"] + 1e-9, "dispatch_exchange must lie within dispatch")
    need(x["combine_exchange_ms"] <= x["combine_ms"] + 1e-9, "combine_exchange must lie within combine")
    need(0 < x["weighted_sum_ms"] <= x["experts_ms"] - x["expert_gemms_ms"] + 1e-9,
         "weighted_sum must be positive and within experts, beside the GEMMs")
    if want_ranks > 1 and c["mode"] == "alltoall":
        need(x["dispatch_exchange_ms"] > 0 and x["combine_exchange_ms"] > 0, "the exchanges must be timed")
    need(x["total_ms"] > 0 and x["experts_ms"] > 0, "times must be positive")
    need(x["total_ms"] + 1e-9 >= max(x["route_ms"], x["experts_ms"]), "total must cover each phase")
    need(x["tokens_per_s"] > 0, "tokens_per_s must be positive")
    need(0 <= x["slowest_rank"] < want_ranks, "slowest_rank out of range")
    need(x["ceiling_gemm_tflops"] > 0 and x["ceiling_alltoall_gbps"] > 0, "ceilings must be measured")
    need(x.get("check_passed") is True, "the -c check must have run and passed")
    if want_ranks > 1 and c["mode"] == "alltoall":
        need(x["dispatch_bytes_per_rank"] > 0, "dispatch bytes must be counted at several ranks")
if errors:
    print("\n".join(errors))
    sys.exit(1)
print(f"ok: {path}: {len(sizes)} sizes, {want_ranks} ranks")
