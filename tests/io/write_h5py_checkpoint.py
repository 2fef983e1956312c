#!/usr/bin/env python3
"""Writes contract files with h5py, as a user outside epmoe would (tests/io/test_h5py.cpp reads them).

h5py_full.h5     every optional attribute and dataset; Python int/float/bool attributes (int64, float64, an
                 HDF5 enum); datasets in float32, float16 and bfloat16 (the 2-byte HDF5 float type of the
                 contract), contiguous and chunked several experts per chunk.
h5py_minimal.h5  required attributes only (the rest take their defaults), contiguous float32.
h5py_encoders.h5 random float32 values with numpy's float16 and a round-to-nearest-even bfloat16 of each, to
                 check epmoe's encoders against an independent implementation.

Element i (row-major, whole dataset) of tensor t in layer l is value(100 * l + t, i), exactly representable in
all three types; t is the index of the dataset's name in NAMES. The C++ test computes the same.
"""
import sys

import h5py
import numpy as np

NAMES = ["router/weight", "router/bias", "router/e_score_correction_bias", "experts/w13", "experts/w2",
         "experts/b13", "experts/b2", "shared/w13", "shared/w2", "latent/down", "latent/up"]


def value(tensor_id, n):
    i = np.arange(n, dtype=np.int64)
    return (((i * 37 + tensor_id * 11) % 255) - 127).astype(np.float32) / np.float32(64)


def bfloat16_type():
    t = h5py.h5t.IEEE_F32LE.copy()
    t.set_fields(15, 7, 8, 0, 7)  # sign bit 15, exponent bits 7..14, mantissa bits 0..6
    t.set_precision(16)
    t.set_size(2)
    t.set_ebias(127)
    return t


def write(group, name, shape, dtype, tensor_id, chunks=None):
    data = value(tensor_id, int(np.prod(shape))).reshape(shape)
    if dtype == "bf16":
        # Low-level API: a dataset of the custom type; HDF5 converts the float32 data on write.
        space = h5py.h5s.create_simple(shape)
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        if chunks:
            dcpl.set_chunk(chunks)
        parent = group.require_group(name.rsplit("/", 1)[0]) if "/" in name else group
        leaf = name.rsplit("/", 1)[-1]
        dsid = h5py.h5d.create(parent.id, leaf.encode(), bfloat16_type(), space, dcpl=dcpl)
        dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, np.ascontiguousarray(data), mtype=h5py.h5t.NATIVE_FLOAT)
    else:
        group.create_dataset(name, data=data.astype(dtype), chunks=chunks)


def full(path):
    D, I, E, K, L, Is, layers = 24, 16, 6, 2, 12, 20, 2
    with h5py.File(path, "w") as f:
        f.attrs["epmoe_format"] = 1
        f.attrs["model_type"] = "custom-h5py"
        f.attrs["hidden_size"] = D
        f.attrs["moe_intermediate_size"] = I
        f.attrs["num_experts"] = E
        f.attrs["top_k"] = K
        f.attrs["num_layers"] = layers
        f.attrs["scoring_func"] = "sigmoid"
        f.attrs["topk_method"] = "grouped"
        f.attrs["n_group"] = 2
        f.attrs["topk_group"] = 1
        f.attrs["norm_topk_prob"] = True  # numpy bool: an HDF5 enum
        f.attrs["routed_scaling_factor"] = 2.5
        f.attrs["activation"] = "swigluoai"
        f.attrs["swiglu_alpha"] = 1.5
        f.attrs["swiglu_limit"] = 6.0
        f.attrs["num_shared_experts"] = 1
        f.attrs["shared_intermediate_size"] = Is
        f.attrs["latent_size"] = L
        f.attrs["an_unknown_attribute"] = "ignored"
        shapes = {"router/weight": (E, D), "router/bias": (E,), "router/e_score_correction_bias": (E,),
                  "experts/w13": (E, 2 * I, L), "experts/w2": (E, L, I), "experts/b13": (E, 2 * I),
                  "experts/b2": (E, L), "shared/w13": (2 * Is, D), "shared/w2": (D, Is), "latent/down": (L, D),
                  "latent/up": (D, L)}
        dtypes = {"router/weight": "float32", "router/bias": "float16", "router/e_score_correction_bias": "bf16",
                  "experts/w13": "bf16", "experts/w2": "float16", "experts/b13": "float32", "experts/b2": "bf16",
                  "shared/w13": "bf16", "shared/w2": "float32", "latent/down": "float16", "latent/up": "bf16"}
        chunks = {"experts/w2": (4, L, I), "experts/b2": (1, L)}  # 4 experts per chunk: allowed, just not ideal
        for layer in range(layers):
            g = f.create_group(f"layers/{layer}")
            for t, name in enumerate(NAMES):
                write(g, name, shapes[name], dtypes[name], 100 * layer + t, chunks.get(name))


def minimal(path):
    D, I, E, K = 16, 8, 4, 1
    with h5py.File(path, "w") as f:
        for k, v in dict(epmoe_format=1, hidden_size=D, moe_intermediate_size=I, num_experts=E, top_k=K,
                         num_layers=1, scoring_func="softmax", activation="relu2").items():
            f.attrs[k] = v
        g = f.create_group("layers/0")
        write(g, "router/weight", (E, D), "float32", NAMES.index("router/weight"))
        write(g, "experts/w13", (E, I, D), "float32", NAMES.index("experts/w13"))
        write(g, "experts/w2", (E, D, I), "float32", NAMES.index("experts/w2"))


def bfloat16_bits(x):
    bits = x.view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def encoders(path):
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.standard_normal(4000) * s for s in (1e-6, 1e-3, 1.0, 100.0, 3e4)]).astype(np.float32)
    with np.errstate(over="ignore"):
        x = x[np.isfinite(x.astype(np.float16))]  # values that overflow float16 are checked by the C++ unit test
    with h5py.File(path, "w") as f:
        f["x32"] = x
        f["f16_bits"] = x.astype(np.float16).view(np.uint16)
        f["bf16_bits"] = bfloat16_bits(x)


if __name__ == "__main__":
    out = sys.argv[1]
    full(f"{out}/h5py_full.h5")
    minimal(f"{out}/h5py_minimal.h5")
    encoders(f"{out}/h5py_encoders.h5")
