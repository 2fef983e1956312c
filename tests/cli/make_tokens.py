#!/usr/bin/env python3
"""Writes a token file for 'epmoe run --input' with h5py (an independent writer): /hidden_states [T, D].
usage: make_tokens.py OUT.h5 T D [--dtype float32|float16] [--nan ROW,COL] [--seed S]"""
import argparse

import h5py
import numpy as np

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("rows", type=int)
p.add_argument("width", type=int)
p.add_argument("--dtype", default="float32")
p.add_argument("--nan", default=None)
p.add_argument("--seed", type=int, default=5)
a = p.parse_args()
x = np.random.default_rng(a.seed).uniform(-1, 1, size=(a.rows, a.width)).astype(a.dtype)
if a.nan:
    r, c = (int(v) for v in a.nan.split(","))
    x[r, c] = np.nan
with h5py.File(a.out, "w") as f:
    f.create_dataset("hidden_states", data=x)
