#!/usr/bin/env python3
"""Turns launch/scaling.sh results (JSON lines) into PNGs: throughput vs ranks with the ideal line, parallel
efficiency, and per-phase stacked bars. One figure set per (sweep, preset, mode, backend, label).

usage: python3 launch/plot_scaling.py RESULTS/scaling.jsonl [--out DIR]
"""
import argparse
import collections
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PHASES = ["route", "dispatch", "experts", "combine", "shared", "latent"]


def load(path):
    runs = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                runs.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"plot_scaling.py: {path}:{n}: not JSON ({e})")
    if not runs:
        sys.exit(f"plot_scaling.py: {path} holds no results")
    return runs


def key(run):
    c = run["config"]
    return (run.get("sweep", "?"), c["preset"], c["mode"], c["backend"], run.get("label", ""))


def plot_group(k, runs, out):
    sweep, preset, mode, backend, label = k
    runs = sorted(runs, key=lambda r: r["config"]["ranks"])
    ranks = [r["config"]["ranks"] for r in runs]
    res = [r["results"][-1] for r in runs]
    tps = [x["tokens_per_s"] for x in res]
    base = tps[0] / ranks[0]
    title = f"{preset} {mode} {backend} {sweep} scaling" + (f" ({label})" if label else "")
    stem = os.path.join(out, f"{preset}_{mode}_{backend}_{sweep}" + (f"_{label}" if label else "")).replace(" ", "_")

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    ax[0].plot(ranks, tps, "o-", label="measured")
    ax[0].plot(ranks, [base * n for n in ranks], "--", color="gray", label="ideal (linear from the smallest run)")
    ax[0].set_xlabel("ranks")
    ax[0].set_ylabel("tokens/s (one layer)")
    ax[0].set_xticks(ranks)
    ax[0].legend()
    ax[0].set_title("throughput")

    eff = [t / (base * n) * 100 for t, n in zip(tps, ranks)]
    ax[1].plot(ranks, eff, "o-")
    ax[1].axhline(100, color="gray", ls="--")
    ax[1].set_ylim(0, max(110, max(eff) * 1.05))
    ax[1].set_xlabel("ranks")
    ax[1].set_ylabel("parallel efficiency (%)")
    ax[1].set_xticks(ranks)
    ax[1].set_title("efficiency")

    bottom = [0.0] * len(ranks)
    for ph in PHASES:
        vals = [x.get(f"{ph}_ms", 0.0) for x in res]
        if not any(vals):
            continue
        ax[2].bar([str(n) for n in ranks], vals, bottom=bottom, label=ph)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax[2].set_xlabel("ranks")
    ax[2].set_ylabel("ms per layer (max over ranks)")
    ax[2].legend(fontsize=8)
    ax[2].set_title("phases")
    tokens = ", ".join(str(x["tokens_per_rank"]) for x in res)
    fig.suptitle(f"{title}; tokens per rank: {tokens}")
    fig.tight_layout()
    path = stem + ".png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results")
    p.add_argument("--out", default=None, help="folder for the PNGs (default: beside the results)")
    a = p.parse_args()
    if not os.path.exists(a.results):
        sys.exit(f"plot_scaling.py: {a.results} does not exist (run launch/scaling.sh first)")
    out = a.out or os.path.dirname(os.path.abspath(a.results))
    os.makedirs(out, exist_ok=True)
    groups = collections.defaultdict(list)
    for r in load(a.results):
        groups[key(r)].append(r)
    for k, runs in sorted(groups.items()):
        print(plot_group(k, runs, out))


if __name__ == "__main__":
    main()
