"""int32-packed integer weights: compressed-tensors ``pack-quantized`` and AutoAWQ GEMM.

The references are compressed-tensors' own code: ``pack_to_int32``/``unpack_from_int32`` and
``dequantize`` for its format, and its AutoAWQ converter's ``unpack_awq``/``reverse_awq_order``
for AWQ's nibble order. Packed words are random, so every bit position and every code value
is exercised, and the dequantized matrices are compared element by element."""

from __future__ import annotations

import json

import numpy as np
import pytest

import alphahat
from alphahat.layers import plan_tensors
from alphahat.layers.packed import unpack_bits
from alphahat.sources import open_source

torch = pytest.importorskip("torch")
helpers = pytest.importorskip("compressed_tensors.compressors.pack_quantized.helpers")
from compressed_tensors.quantization import QuantizationArgs  # noqa: E402
from compressed_tensors.quantization.lifecycle.forward import dequantize  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

RNG = np.random.default_rng(21)


def dequantized(path, name: str) -> np.ndarray:
    with open_source(path) as source:
        (plan,) = [p for p in plan_tensors(source.tensors()) if p.ref.name == name]
        assert plan.status == "analyse", plan.reason
        return np.asarray(plan.ref.load())


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("columns", [64, 75])
def test_unpack_bits_equals_compressed_tensors(bits, columns):
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    q = torch.from_numpy(RNG.integers(low, high + 1, (6, columns)).astype(np.int8))
    packed = helpers.pack_to_int32(q, bits)
    ours = unpack_bits(packed.numpy(), bits, columns).astype(np.int16) - (1 << (bits - 1))
    reference = helpers.unpack_from_int32(packed, bits, q.shape).numpy()
    np.testing.assert_array_equal(ours, reference)
    np.testing.assert_array_equal(ours, q.numpy())


CASES = {  # (bits, strategy, group size, symmetric)
    "int4 groups of 32, symmetric": (4, "group", 32, True),
    "int4 per channel, asymmetric": (4, "channel", None, False),
    "int4 groups of 64, asymmetric": (4, "group", 64, False),
    "int8 groups of 32, symmetric": (8, "group", 32, True),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_compressed_tensors_pack_quantized(tmp_path, case):
    bits, strategy, group, symmetric = CASES[case]
    out, inp = 48, 128
    groups = 1 if strategy == "channel" else inp // group
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    q = torch.from_numpy(RNG.integers(low, high + 1, (out, inp)).astype(np.int8))
    scale = torch.from_numpy(RNG.uniform(0.001, 0.02, (out, groups)).astype(np.float32))
    zero = (
        None
        if symmetric
        else torch.from_numpy(RNG.integers(low, high + 1, (out, groups)).astype(np.int8))
    )
    args = QuantizationArgs(num_bits=bits, strategy=strategy, group_size=group, symmetric=symmetric)
    expected = dequantize(x_q=q, scale=scale, zero_point=zero, args=args, dtype=torch.float32)
    name = "model.layers.0.mlp.up_proj"
    tensors = {
        f"{name}.weight_packed": helpers.pack_to_int32(q, bits),
        f"{name}.weight_scale": scale,
        f"{name}.weight_shape": torch.tensor([out, inp]),
        "model.layers.0.mlp.up_proj.bias": torch.zeros(out),
    }
    if zero is not None:
        tensors[f"{name}.weight_zero_point"] = helpers.pack_to_int32(zero, bits, packed_dim=0)
    path = tmp_path / "ct.safetensors"
    save_file(tensors, str(path))
    got = dequantized(path, f"{name}.weight")
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-6, atol=1e-7)
    report = alphahat.analyze(path, keep_eigenvalues=True)
    row = report.details.set_index("name").loc[f"{name}.weight"]
    assert row["shape"] == f"{out}x{inp}" and row["dtype"] == "float32"
    assert row["note"].startswith(f"dequantized (compressed-tensors int{bits}")
    assert ("asymmetric" in row["note"]) == (not symmetric)
    lam = np.sort(np.linalg.svd(expected.double().numpy(), compute_uv=False) ** 2)
    np.testing.assert_allclose(report.eigenvalues[f"{name}.weight"], lam, rtol=1e-6)
    coverage = report.coverage.set_index("name")
    for meta in ("weight_scale", "weight_shape"):
        assert (
            "compressed-tensors quantization metadata" in coverage.loc[f"{name}.{meta}", "reason"]
        )


def test_compressed_tensors_activation_order_groups(tmp_path):
    """``weight_g_idx`` gives each input column its group (act-order): W[o, i] =
    q[o, i] · scale[o, g_idx[i]], written out element by element here."""
    out, inp, groups = 16, 64, 4
    q = RNG.integers(-8, 8, (out, inp)).astype(np.int8)
    scale = RNG.uniform(0.01, 0.1, (out, groups)).astype(np.float32)
    g_idx = RNG.permutation(np.arange(inp) // (inp // groups)).astype(np.int32)
    expected = np.array([[q[o, i] * scale[o, g_idx[i]] for i in range(inp)] for o in range(out)])
    tensors = {
        "fc.weight_packed": helpers.pack_to_int32(torch.from_numpy(q), 4),
        "fc.weight_scale": torch.from_numpy(scale),
        "fc.weight_shape": torch.tensor([out, inp]),
        "fc.weight_g_idx": torch.from_numpy(g_idx),
    }
    path = tmp_path / "ct.safetensors"
    save_file(tensors, str(path))
    np.testing.assert_allclose(dequantized(path, "fc.weight"), expected, rtol=1e-6)


def test_awq_gemm_weights_equal_the_reference_unpacking(tmp_path):
    converter = pytest.importorskip(
        "compressed_tensors.entrypoints.convert.converters.autoawq"
    ).AutoAWQConverter
    inp, out, group = 256, 96, 128
    qweight = torch.from_numpy(
        RNG.integers(-(2**31), 2**31, (inp, out // 8), dtype=np.int64).astype(np.int32)
    )
    qzeros = torch.from_numpy(
        RNG.integers(-(2**31), 2**31, (inp // group, out // 8), dtype=np.int64).astype(np.int32)
    )
    scales = torch.from_numpy(RNG.uniform(0.001, 0.01, (inp // group, out)).astype(np.float16))
    iweight, izeros = converter.reverse_awq_order(*converter.unpack_awq(qweight, qzeros, 4), 4)
    iweight, izeros = (torch.bitwise_and(t.to(torch.int32), 15).double() for t in (iweight, izeros))
    rows = torch.arange(inp) // group
    expected = ((iweight - izeros[rows]) * scales.double()[rows]).T.numpy()  # (out, in)
    name = "model.layers.3.self_attn.o_proj"
    tensors = {f"{name}.qweight": qweight, f"{name}.qzeros": qzeros, f"{name}.scales": scales}
    path = tmp_path / "awq.safetensors"
    save_file(tensors, str(path))
    got = dequantized(path, f"{name}.weight")
    assert got.shape == (out, inp)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    report = alphahat.analyze(path)
    row = report.details.set_index("name").loc[f"{name}.weight"]
    assert row["note"].startswith("dequantized (AWQ int4, groups of 128")
    coverage = report.coverage.set_index("name")
    assert "metadata" in coverage.loc[f"{name}.scales", "reason"]


def _pack_lsb_first(codes: np.ndarray, bits: int, axis: int) -> np.ndarray:
    """Codes packed into int32 words along ``axis`` as one bit stream, the first code in the
    lowest bits (AutoGPTQ's ``pack``: ``qweight[row] |= intweight[j] << (bits · (j − i))``;
    3-bit codes continue across word boundaries, 32 codes in 3 words)."""
    moved = np.moveaxis(codes.astype(np.int64), axis, 0)
    count = moved.shape[0]
    words = np.zeros((count * bits // 32, *moved.shape[1:]), dtype=np.uint64)
    for k in range(count):
        for b in range(bits):  # bit b of code k is bit k·bits + b of the stream
            position = k * bits + b
            bit = ((moved[k] >> b) & 1).astype(np.uint64)
            words[position // 32] |= bit << np.uint64(position % 32)
    return np.ascontiguousarray(np.moveaxis(words.astype(np.uint32).view(np.int32), 0, axis))


def _gptq_tensors(q, zeros, scales, g_idx, bits=4):
    return {
        "m.qweight": torch.from_numpy(_pack_lsb_first(q, bits, axis=0)),
        "m.qzeros": torch.from_numpy(_pack_lsb_first(zeros, bits, axis=1)),
        "m.scales": torch.from_numpy(scales.astype(np.float16)),
        "m.g_idx": torch.from_numpy(g_idx.astype(np.int32)),
        "m.bias": torch.zeros(q.shape[1], dtype=torch.float16),
    }


def test_gptq_symmetric_checkpoint_is_scale_times_code_minus_8(tmp_path):
    """A symmetric 4-bit GPTQ (v1) layer stores its zero points 8 as 7: qzeros words are
    0x77777777, as in every such checkpoint; W = scale · (q − 8)."""
    inp, out, group = 256, 64, 128
    q = RNG.integers(0, 16, (inp, out))
    scales = RNG.uniform(0.001, 0.01, (inp // group, out)).astype(np.float16)
    tensors = _gptq_tensors(q, np.full((inp // group, out), 7), scales, np.arange(inp) // group)
    assert (tensors["m.qzeros"].numpy().view(np.uint32) == 0x77777777).all()
    path = tmp_path / "gptq.safetensors"
    save_file(tensors, str(path))
    expected = (scales.astype(np.float32)[np.arange(inp) // group] * (q - 8)).T
    np.testing.assert_allclose(dequantized(path, "m.weight"), expected, rtol=1e-6)
    row = alphahat.describe(path).set_index("name").loc["m.weight"]
    assert row["note"].startswith("dequantized (GPTQ int4, groups of 128, zero + 1, GPTQ v1")
    assert row["shape"] == f"{out}x{inp}"


@pytest.mark.parametrize("version", ["gptq", "gptq_v2"])
def test_gptq_asymmetric_act_order_and_the_checkpoint_format(tmp_path, version):
    """Random zero points and a permuted g_idx, written out element by element; with
    ``checkpoint_format: gptq_v2`` in config.json the stored zeros are used as they are."""
    inp, out, groups = 128, 32, 4
    q = RNG.integers(0, 16, (inp, out))
    stored_zeros = RNG.integers(0, 15, (groups, out))
    scales = RNG.uniform(0.001, 0.01, (groups, out)).astype(np.float16)
    g_idx = RNG.permutation(np.arange(inp) // (inp // groups))
    save_file(_gptq_tensors(q, stored_zeros, scales, g_idx), str(tmp_path / "model.safetensors"))
    config = {"quantization_config": {"quant_method": "gptq", "checkpoint_format": version}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    offset = 1 if version == "gptq" else 0
    s = scales.astype(np.float64)
    expected = np.array(
        [[s[g_idx[i], o] * (q[i, o] - (stored_zeros[g_idx[i], o] + offset)) for i in range(inp)]
         for o in range(out)]
    )  # fmt: skip
    report = alphahat.analyze(tmp_path, keep_eigenvalues=True)
    lam = np.sort(np.linalg.svd(expected, compute_uv=False) ** 2)
    np.testing.assert_allclose(report.eigenvalues["m.weight"], lam, rtol=1e-5)
    from alphahat.layers import plan_tensors as plan

    with open_source(tmp_path) as source:
        (p,) = [
            p
            for p in plan(source.tensors(), model_config=source.model_config)
            if p.ref.name == "m.weight"
        ]
        np.testing.assert_allclose(p.ref.load(), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_gptq_reconstructs_a_round_to_nearest_quantized_weight(tmp_path, bits):
    """Quantize a weight (per group of 32 inputs: scale = range/(2^b − 1), zero =
    round(−min/scale)), store it as GPTQ v1 does (zeros − 1): every dequantized value is within
    half a step of the weight."""
    inp, out, group = 128, 64, 32
    levels = (1 << bits) - 1
    w = RNG.standard_normal((inp, out))
    blocks = w.reshape(inp // group, group, out)
    scale = (blocks.max(axis=1) - blocks.min(axis=1)) / levels
    zero = np.clip(np.round(-blocks.min(axis=1) / scale), 1, levels)
    rows = np.arange(inp) // group
    q = np.clip(np.round(w / scale[rows]) + zero[rows], 0, levels).astype(np.int64)
    tensors = _gptq_tensors(q, zero.astype(np.int64) - 1, scale.astype(np.float16), rows, bits)
    path = tmp_path / "gptq.safetensors"
    save_file(tensors, str(path))
    got = dequantized(path, "m.weight")
    step = scale.astype(np.float16).astype(np.float64)[rows].T
    assert np.all(np.abs(got - w.T) <= step * 0.5 + 2e-3 * np.abs(w.T) + 1e-6)


def test_bad_packed_metadata_fails_that_layer_only(tmp_path):
    tensors = {
        # GPTQ with qzeros of the wrong width
        "a.qweight": torch.zeros((16, 64), dtype=torch.int32),
        "a.qzeros": torch.zeros((1, 5), dtype=torch.int32),
        "a.scales": torch.ones((1, 64), dtype=torch.float16),
        # compressed-tensors with a weight_shape that does not fit the packed rows
        "b.weight_packed": torch.zeros((8, 8), dtype=torch.int32),
        "b.weight_scale": torch.ones((8, 2), dtype=torch.float16),
        "b.weight_shape": torch.tensor([9, 64]),
        # a healthy layer next to them
        "c.weight": torch.from_numpy(RNG.standard_normal((32, 16)).astype(np.float32)),
    }
    path = tmp_path / "mixed.safetensors"
    save_file(tensors, str(path))
    coverage = alphahat.describe(path).set_index("name")
    assert coverage.loc["a.weight", "status"] == "failed"
    assert "GPTQ qweight [16, 64]" in coverage.loc["a.weight", "reason"]
    assert coverage.loc["b.weight", "status"] == "failed"
    assert "weight_shape [9, 64]" in coverage.loc["b.weight", "reason"]
    report = alphahat.analyze(path)
    assert report.details.set_index("name").loc["c.weight", "status"] == "fitted"


@pytest.mark.parametrize("with_global_scale", [True, False])
def test_nvfp4_weights_equal_compressed_tensors_decompression(tmp_path, with_global_scale):
    """NVFP4 (two E2M1 codes a byte, a float8 E4M3 scale per 16 inputs, a global scale):
    equal to compressed-tensors' ``unpack_fp4_from_uint8`` and ``dequantize``."""
    nvfp4 = pytest.importorskip("compressed_tensors.compressors.nvfp4.helpers")
    out, inp = 32, 96
    packed = torch.from_numpy(RNG.integers(0, 256, (out, inp // 2)).astype(np.uint8))
    scale = torch.from_numpy(RNG.uniform(0.05, 4.0, (out, inp // 16)).astype(np.float32)).to(
        torch.float8_e4m3fn
    )
    global_scale = torch.tensor([448.0 * 6.0 / 3.5], dtype=torch.float32)
    args = QuantizationArgs(
        num_bits=4, type="float", strategy="tensor_group", group_size=16, symmetric=True
    )
    unpacked = nvfp4.unpack_fp4_from_uint8(packed, out, inp, dtype=torch.float32)
    expected = dequantize(
        x_q=unpacked,
        scale=scale.float(),
        args=args,
        global_scale=global_scale if with_global_scale else None,
        dtype=torch.float32,
    )
    name = "model.layers.0.mlp.gate_proj"
    tensors = {f"{name}.weight_packed": packed, f"{name}.weight_scale": scale}
    if with_global_scale:
        tensors[f"{name}.weight_global_scale"] = global_scale
        tensors[f"{name}.input_global_scale"] = torch.tensor([1.0])
    path = tmp_path / "nvfp4.safetensors"
    save_file(tensors, str(path))
    np.testing.assert_allclose(dequantized(path, f"{name}.weight"), expected.numpy(), rtol=1e-6)
    coverage = alphahat.describe(path).set_index("name")
    assert coverage.loc[f"{name}.weight", "note"].startswith("dequantized (NVFP4")
    for meta in ("weight_scale", "weight_global_scale") if with_global_scale else ("weight_scale",):
        assert coverage.loc[f"{name}.{meta}", "status"] == "skipped"


def test_mxfp4_experts_equal_transformers_gpt_oss_dequantization(tmp_path):
    """gpt-oss MXFP4 experts (``X_blocks``, ``X_scales``): each expert equals transformers'
    ``convert_moe_packed_tensors`` (which returns them transposed, (in, out)), and is read
    alone: one expert allocates about its own share (tracemalloc counts NumPy's memory)."""
    import tracemalloc

    mxfp4 = pytest.importorskip("transformers.integrations.mxfp4")
    experts, rows, groups = 64, 24, 3
    blocks = torch.from_numpy(RNG.integers(0, 256, (experts, rows, groups, 16)).astype(np.uint8))
    scales = torch.from_numpy(RNG.integers(120, 134, (experts, rows, groups)).astype(np.uint8))
    expected = mxfp4.convert_moe_packed_tensors(blocks, scales, dtype=torch.float32).numpy()
    name = "model.layers.0.mlp.experts.gate_up_proj"
    tensors = {f"{name}_blocks": blocks, f"{name}_scales": scales}
    path = tmp_path / "mxfp4.safetensors"
    save_file(tensors, str(path))
    for e in range(experts):
        got = dequantized(path, f"{name} [expert {e}]")
        assert got.shape == (rows, groups * 32)
        np.testing.assert_array_equal(got, expected[e].T)
    with open_source(path) as source:
        plans = [p for p in plan_tensors(source.tensors()) if p.ref.name.startswith(name + " [")]
        tracemalloc.start()
        try:
            part = plans[2].ref.load()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 5 * part.nbytes  # the whole blocks tensor alone is 8 × part.nbytes
    coverage = alphahat.describe(path).set_index("name")
    assert "MXFP4 block exponents" in coverage.loc[f"{name}_scales", "reason"]
    assert coverage.loc[f"{name} [expert 1]", "note"].startswith("dequantized (MXFP4")
