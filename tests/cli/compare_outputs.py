#!/usr/bin/env python3
"""Compares two 'epmoe run --output' files: same /topk_ids, /output and /topk_weights within a tolerance.
usage: compare_outputs.py A.h5 B.h5 TOLERANCE ROWS"""
import sys

import h5py
import numpy as np

a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
tol, rows = float(sys.argv[3]), int(sys.argv[4])
for f in (a, b):
    assert f["output"].shape[0] == rows, f"{f.filename}: /output has {f['output'].shape[0]} rows, expected {rows}"
    assert f["output"].dtype == np.float32 and f["topk_ids"].dtype == np.int32
ids_equal = np.array_equal(a["topk_ids"][()], b["topk_ids"][()])
out = np.abs(a["output"][()] - b["output"][()]).max() / max(1e-30, np.abs(a["output"][()]).max())
w = np.abs(a["topk_weights"][()] - b["topk_weights"][()]).max()
print(f"ids_equal={ids_equal} output_rel_max_diff={out:.3g} weights_max_diff={w:.3g}")
sys.exit(0 if ids_equal and out <= tol and w <= tol else 1)
