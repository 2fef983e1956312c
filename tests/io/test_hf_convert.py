#!/usr/bin/env python3
"""epmoe convert on synthetic Hugging Face directories written by the `safetensors` package.

usage: test_hf_convert.py EPMOE SCRATCH_DIR FAMILY      FAMILY: qwen3 | mixtral | deepseek-fp8 | gpt-oss-bf16 |
                                                                 gpt-oss-mxfp4 | bad

For each family the script writes config.json, the safetensors shards (two, with model.safetensors.index.json) and
non-MoE tensors that must be ignored, runs `epmoe convert`, reads the result with h5py and checks, for every expert
and on random tokens, that the contract's layer math on the converted tensors (docs/checkpoint-format.md, step 5,
plus the router and shared expert) equals the math done the model's own way on the original tensors: Hugging Face
layouts (GPT-OSS interleaved gate/up, [in, out] orientation), dequantization of FP8 block scales and MXFP4.
`bad` checks that broken directories fail cleanly with the file named.
"""
import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
from safetensors import TensorSpec, serialize_file

RNG = np.random.default_rng(2024)
TORCH_NAMES = {"BF16": "bfloat16", "F32": "float32", "F16": "float16", "U8": "uint8", "F8_E4M3": "float8_e4m3fn"}
FP4 = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0], np.float32)


def bf16_bits(x):
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_round(x):
    return (bf16_bits(x).astype(np.uint32) << 16).view(np.float32)


def fp8_e4m3_decode(b):
    b = b.astype(np.int32)
    sign = np.where(b >> 7, -1.0, 1.0)
    e = (b >> 3) & 0xF
    m = b & 0x7
    val = np.where(e == 0, m / 8.0 * 2.0 ** -6, (1 + m / 8.0) * 2.0 ** (e - 7))
    return (sign * val).astype(np.float32)


class Tensors:
    """Tensors for the safetensors writer: name -> dict(dtype, shape, data bytes), plus their float values."""

    def __init__(self):
        self.raw = {}
        self.values = {}

    def add(self, name, array, dtype):
        if dtype == "BF16":
            value = bf16_round(array)
            data = bf16_bits(array)
        elif dtype == "F32":
            value = np.asarray(array, np.float32)
            data = value
        elif dtype == "F16":
            value = np.asarray(array, np.float16).astype(np.float32)
            data = np.asarray(array, np.float16)
        elif dtype in ("U8", "F8_E4M3"):
            value = np.asarray(array, np.uint8)
            data = value
        else:
            raise ValueError(dtype)
        data = np.ascontiguousarray(data)  # kept alive in self.raw while serialize_file reads it
        self.raw[name] = (TORCH_NAMES[dtype], list(np.shape(array)), data)
        self.values[name] = value
        return value

    def write(self, directory):
        names = sorted(self.raw)
        halves = [names[: len(names) // 2], names[len(names) // 2:]]
        weight_map = {}
        for i, part in enumerate(halves):
            file = f"model-{i + 1:05d}-of-00002.safetensors"
            specs = {n: TensorSpec(dtype=self.raw[n][0], shape=self.raw[n][1], data_ptr=self.raw[n][2].ctypes.data,
                                   data_len=self.raw[n][2].nbytes) for n in part}
            serialize_file(specs, os.path.join(directory, file), {"format": "pt"})
            weight_map.update({n: file for n in part})
        with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f)


def rand(*shape, scale=0.1):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def silu(x):
    return x / (1 + np.exp(-x))


def sigmoid(x):
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


# ---- the contract's math on a converted file (docs/checkpoint-format.md) ----

def contract_expert(f, layer, e, x):
    a = dict(f.attrs)
    g = f[f"layers/{layer}"]
    w13, w2 = g["experts/w13"][e], g["experts/w2"][e]
    h = x @ w13.T
    if "experts/b13" in g:
        h = h + g["experts/b13"][e]
    act = a["activation"].decode() if isinstance(a["activation"], bytes) else a["activation"]
    I = int(a["moe_intermediate_size"])
    gate, up = h[:, :I], h[:, I:]
    if act == "silu":
        out = silu(gate) * up
    elif act == "swigluoai":
        limit, alpha = float(a["swiglu_limit"]), float(a["swiglu_alpha"])
        gate = np.minimum(gate, limit)
        up = np.clip(up, -limit, limit)
        out = (up + 1) * gate * sigmoid(alpha * gate)
    else:
        raise ValueError(act)
    y = out @ w2.T
    if "experts/b2" in g:
        y = y + g["experts/b2"][e]
    return y


def contract_shared(f, layer, x):
    g = f[f"layers/{layer}"]
    Is = int(f.attrs["shared_intermediate_size"])
    h = x @ g["shared/w13"][:].T
    return (silu(h[:, :Is]) * h[:, Is:]) @ g["shared/w2"][:].T


def check(name, got, want, tol):
    err = np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30)
    if not err <= tol:
        raise SystemExit(f"FAIL {name}: relative error {err:.3g} > {tol}")


def run_convert(epmoe, hf, out, *extra):
    r = subprocess.run([epmoe, "convert", "--hf", hf, "--out", out, *extra], capture_output=True, text=True)
    print(r.stdout + r.stderr)
    if r.returncode != 0:
        raise SystemExit(f"FAIL: epmoe convert exited {r.returncode}")


# ---- families ----

def make_llama_style(directory, family):
    """Qwen3-MoE, Mixtral and DeepSeek-V3 (FP8): per-expert gate/up/down matrices in [out, in] orientation."""
    D, I, E, K, L = 192, 160, 8, 2, 3  # > 128: FP8 weights span 2 x 2 scale blocks
    t = Tensors()
    cfg = {"hidden_size": D, "num_hidden_layers": L, "num_experts_per_tok": K, "hidden_act": "silu",
           "intermediate_size": 4 * D, "vocab_size": 100}
    if family == "qwen3":
        cfg.update(model_type="qwen3_moe", moe_intermediate_size=I, num_experts=E, norm_topk_prob=True)
        block, names = "mlp", ("gate_proj", "up_proj", "down_proj")
    elif family == "mixtral":
        cfg.update(model_type="mixtral", intermediate_size=I, num_local_experts=E)
        block, names = "block_sparse_moe", ("w1", "w3", "w2")
    else:
        cfg.update(model_type="deepseek_v3", moe_intermediate_size=I, n_routed_experts=E, n_group=4, topk_group=2,
                   topk_method="noaux_tc", scoring_func="sigmoid", norm_topk_prob=True, routed_scaling_factor=2.5,
                   n_shared_experts=1, first_k_dense_replace=1)
        block, names = "mlp", ("gate_proj", "up_proj", "down_proj")
    t.add("model.embed_tokens.weight", rand(100, D), "BF16")  # not MoE: ignored
    for layer in range(L):
        p = f"model.layers.{layer}."
        t.add(p + "self_attn.q_proj.weight", rand(D, D), "BF16")
        if family == "deepseek-fp8" and layer == 0:  # dense first layer: skipped
            for n, shape in (("gate_proj", (4 * D, D)), ("up_proj", (4 * D, D)), ("down_proj", (D, 4 * D))):
                t.add(p + f"mlp.{n}.weight", rand(*shape), "BF16")
            continue
        t.add(p + f"{block}.gate.weight", rand(E, D), "BF16")
        if family == "deepseek-fp8":
            t.add(p + "mlp.gate.e_score_correction_bias", rand(E, scale=0.01), "F32")
            for n, shape in (("gate_proj", (I, D)), ("up_proj", (I, D)), ("down_proj", (D, I))):
                t.add(p + f"mlp.shared_experts.{n}.weight", rand(*shape), "BF16")
        for e in range(E):
            for n, shape in zip(names, ((I, D), (I, D), (D, I))):
                name = p + f"{block}.experts.{e}.{n}.weight"
                if family == "deepseek-fp8":
                    # e4m3 bytes (no NaN) with one scale per 128x128 block (shapes < 128: one block)
                    q = RNG.integers(0, 0x7E, size=shape, dtype=np.uint8) | (RNG.integers(0, 2, size=shape, dtype=np.uint8) << 7)
                    t.add(name, q, "F8_E4M3")
                    blocks = (-(-shape[0] // 128), -(-shape[1] // 128))
                    t.add(name + "_scale_inv", (RNG.random(blocks) * 1e-2 + 1e-3).astype(np.float32), "F32")
                else:
                    t.add(name, rand(*shape), "BF16")
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(cfg, f)
    t.write(directory)
    return cfg, t, block, names


def check_llama_style(out, cfg, t, block, names, family):
    D, E = cfg["hidden_size"], 8
    x = rand(5, D, scale=1.0)
    moe_layers = [1, 2] if family == "deepseek-fp8" else [0, 1, 2]
    with h5py.File(out, "r") as f:
        assert int(f.attrs["num_layers"]) == len(moe_layers), dict(f.attrs)
        for k, layer in enumerate(moe_layers):
            p = f"model.layers.{layer}.{block}."
            check("router", f[f"layers/{k}/router/weight"][:], t.values[p + "gate.weight"], 0)
            for e in range(E):
                def w(n):
                    v = t.values[p + f"experts.{e}.{n}.weight"]
                    if family == "deepseek-fp8":
                        scale = t.values[p + f"experts.{e}.{n}.weight_scale_inv"]
                        full = np.kron(scale, np.ones((128, 128), np.float32))[: v.shape[0], : v.shape[1]]
                        v = fp8_e4m3_decode(v) * full
                    return v
                gate, up, down = (w(n) for n in names)
                want = (silu(x @ gate.T) * (x @ up.T)) @ down.T  # the model's own expert MLP
                # FP8 dequantized values are stored as bfloat16: relative rounding 2^-9
                check(f"layer {layer} expert {e}", contract_expert(f, k, e, x), want,
                      1e-2 if family == "deepseek-fp8" else 1e-5)
            if family == "deepseek-fp8":
                s = p + "shared_experts."
                want = (silu(x @ t.values[s + "gate_proj.weight"].T) * (x @ t.values[s + "up_proj.weight"].T)) @ \
                    t.values[s + "down_proj.weight"].T
                check("shared", contract_shared(f, k, x), want, 1e-5)
                check("correction bias", f[f"layers/{k}/router/e_score_correction_bias"][:],
                      bf16_round(t.values[p + "gate.e_score_correction_bias"]), 0)
        a = f.attrs
        if family == "deepseek-fp8":
            assert a["topk_method"] in (b"grouped", "grouped") and int(a["n_group"]) == 4 and int(a["topk_group"]) == 2
            assert float(a["routed_scaling_factor"]) == 2.5 and int(a["num_shared_experts"]) == 1
            assert a["scoring_func"] in (b"sigmoid", "sigmoid")
        assert int(a["norm_topk_prob"]) == 1


def make_gpt_oss(directory, mxfp4):
    D, I, E, K, L = 64, 64, 4, 2, 2
    t = Tensors()
    cfg = {"model_type": "gpt_oss", "hidden_size": D, "intermediate_size": I, "num_local_experts": E,
           "num_experts_per_tok": K, "num_hidden_layers": L, "swiglu_limit": 7.0, "vocab_size": 100}
    t.add("model.embed_tokens.weight", rand(100, D), "BF16")
    for layer in range(L):
        p = f"model.layers.{layer}.mlp."
        t.add(p + "router.weight", rand(E, D), "BF16")
        t.add(p + "router.bias", rand(E), "BF16")
        t.add(p + "experts.gate_up_proj_bias", rand(E, 2 * I), "BF16")
        t.add(p + "experts.down_proj_bias", rand(E, D), "BF16")
        if mxfp4:
            for n, (rows, cols) in (("gate_up_proj", (2 * I, D)), ("down_proj", (D, I))):
                t.add(p + f"experts.{n}_blocks", RNG.integers(0, 256, size=(E, rows, cols // 32, 16), dtype=np.uint8), "U8")
                t.add(p + f"experts.{n}_scales", RNG.integers(120, 128, size=(E, rows, cols // 32), dtype=np.uint8), "U8")
        else:
            t.add(p + "experts.gate_up_proj", rand(E, D, 2 * I), "BF16")  # [E, in, out]
            t.add(p + "experts.down_proj", rand(E, I, D), "BF16")
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(cfg, f)
    t.write(directory)
    return cfg, t


def mxfp4_decode(blocks, scales):
    """[E, rows, nb, 16] u8 + [E, rows, nb] -> [E, rows, nb*32] (low nibble first), as transformers dequantizes."""
    lo, hi = FP4[blocks & 0x0F], FP4[blocks >> 4]
    vals = np.stack([lo, hi], axis=-1).reshape(*blocks.shape[:-1], 32)
    vals = vals * np.ldexp(np.float32(1), scales.astype(np.int32) - 127)[..., None]
    return vals.reshape(blocks.shape[0], blocks.shape[1], -1).astype(np.float32)


def check_gpt_oss(out, cfg, t, mxfp4):
    D, I, E = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_local_experts"]
    x = rand(6, D, scale=1.0)
    with h5py.File(out, "r") as f:
        for layer in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{layer}.mlp."
            v = t.values
            if mxfp4:  # the original checkpoint: [E, out, in]; transformers transposes to [E, in, out]
                gate_up = mxfp4_decode(v[p + "experts.gate_up_proj_blocks"], v[p + "experts.gate_up_proj_scales"]).transpose(0, 2, 1)
                down = mxfp4_decode(v[p + "experts.down_proj_blocks"], v[p + "experts.down_proj_scales"]).transpose(0, 2, 1)
            else:
                gate_up, down = v[p + "experts.gate_up_proj"], v[p + "experts.down_proj"]
            for e in range(E):
                # transformers' GptOssExperts.forward
                gu = x @ gate_up[e] + v[p + "experts.gate_up_proj_bias"][e]
                gate, up = gu[..., ::2], gu[..., 1::2]
                gate = np.minimum(gate, 7.0)
                up = np.clip(up, -7.0, 7.0)
                glu = gate * sigmoid(gate * 1.702)
                want = ((up + 1) * glu) @ down[e] + v[p + "experts.down_proj_bias"][e]
                check(f"layer {layer} expert {e}", contract_expert(f, layer, e, x), want, 1e-5)
            check("router bias", f[f"layers/{layer}/router/bias"][:], v[p + "router.bias"], 0)
        assert f.attrs["activation"] in (b"swigluoai", "swigluoai")


def check_bad(epmoe, scratch):
    def expect_failure(hf, pattern, *extra):
        out = os.path.join(scratch, "bad_out.h5")
        r = subprocess.run([epmoe, "convert", "--hf", hf, "--out", out, *extra], capture_output=True, text=True)
        text = r.stdout + r.stderr
        if r.returncode == 0 or pattern not in text or os.path.exists(out):
            raise SystemExit(f"FAIL: convert of {hf} should fail naming '{pattern}' (exit {r.returncode}):\n{text}")
        print(f"ok: {pattern}: {text.strip()}")

    missing = os.path.join(scratch, "bad_missing")
    os.makedirs(missing, exist_ok=True)
    expect_failure(missing, "config.json")
    unknown = os.path.join(scratch, "bad_unknown")
    os.makedirs(unknown, exist_ok=True)
    with open(os.path.join(unknown, "config.json"), "w") as f:
        json.dump({"model_type": "llama", "hidden_size": 8, "num_hidden_layers": 1}, f)
    expect_failure(unknown, "model_type 'llama'")
    good = os.path.join(scratch, "bad_truncated")
    os.makedirs(good, exist_ok=True)
    make_llama_style(good, "qwen3")
    shard = os.path.join(good, "model-00002-of-00002.safetensors")
    with open(shard, "r+b") as f:
        f.truncate(os.path.getsize(shard) // 2)
    expect_failure(good, "model-00002-of-00002.safetensors")
    with open(shard, "wb") as f:
        f.write(b"\xff" * 64)
    expect_failure(good, "header length")
    with open(os.path.join(good, "config.json"), "w") as f:
        f.write("{ not json")
    expect_failure(good, "malformed JSON")


def main():
    epmoe, scratch, family = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(scratch, exist_ok=True)
    if family == "bad":
        check_bad(epmoe, scratch)
        return
    hf = os.path.join(scratch, f"hf_{family}")
    shutil.rmtree(hf, ignore_errors=True)
    os.makedirs(hf)
    out = os.path.join(scratch, f"converted_{family}.h5")
    if family.startswith("gpt-oss"):
        mxfp4 = family.endswith("mxfp4")
        cfg, t = make_gpt_oss(hf, mxfp4)
        run_convert(epmoe, hf, out)
        check_gpt_oss(out, cfg, t, mxfp4)
    else:
        cfg, t, block, names = make_llama_style(hf, family)
        run_convert(epmoe, hf, out)
        check_llama_style(out, cfg, t, block, names, family)
        if family == "qwen3":  # --layers picks model layers
            part = os.path.join(scratch, "converted_qwen3_layers.h5")
            run_convert(epmoe, hf, part, "--layers", "1-2")
            with h5py.File(part, "r") as f, h5py.File(out, "r") as full:
                assert int(f.attrs["num_layers"]) == 2
                check("--layers 1-2", f["layers/0/experts/w13"][:], full["layers/1/experts/w13"][:], 0)
    print(f"PASS {family}")


if __name__ == "__main__":
    main()
