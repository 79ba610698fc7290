"""float8 weights (E4M3FN, E5M2) in safetensors and torch state dicts, with and without scales.

Expected values come from torch's own float8 → float32 conversion (an implementation
independent of alphahat's lookup tables), and the dequantized matrices are built here element
by element from the published scale layouts: DeepSeek-V3's ``weight_scale_inv`` per 128 × 128
block, compressed-tensors' ``weight_scale`` per tensor or per output channel."""

from __future__ import annotations

import numpy as np
import pytest

import alphahat
from alphahat.sources.base import FLOAT8_VALUES

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

RNG = np.random.default_rng(11)
DTYPES = {"float8_e4m3fn": torch.float8_e4m3fn, "float8_e5m2": torch.float8_e5m2}


def fp8(shape: tuple[int, ...], dtype: str = "float8_e4m3fn"):
    """A random float8 torch tensor and its float64 values (decoded by torch)."""
    weights = torch.from_numpy(RNG.standard_normal(shape).astype(np.float32)).to(DTYPES[dtype])
    return weights, weights.float().double().numpy()


def evals(matrix: np.ndarray) -> np.ndarray:
    return np.sort(np.linalg.svd(matrix, compute_uv=False) ** 2)


def save(path, tensors) -> str:
    safetensors_torch.save_file(tensors, str(path))
    return str(path)


@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_every_float8_code_decodes_as_torch_does(dtype):
    codes = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    expected = codes.view(DTYPES[dtype]).float().numpy()
    np.testing.assert_array_equal(FLOAT8_VALUES[dtype], expected)  # NaN where torch has NaN


@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_float8_without_a_scale_is_analysed_as_stored(tmp_path, dtype):
    weights, values = fp8((96, 64), dtype)
    path = save(tmp_path / "m.safetensors", {"mlp.up.weight": weights})
    report = alphahat.analyze(path, keep_eigenvalues=True)
    row = report.details.set_index("name").loc["mlp.up.weight"]
    assert row["dtype"] == dtype
    assert "as stored" in row["note"]
    np.testing.assert_allclose(report.eigenvalues["mlp.up.weight"], evals(values), rtol=1e-10)
    state = alphahat.analyze({"mlp.up.weight": weights}, keep_eigenvalues=True)  # torch tensor
    np.testing.assert_allclose(state.eigenvalues["mlp.up.weight"], evals(values), rtol=1e-10)


def test_block_scaled_float8_weight_is_dequantized_per_128_block(tmp_path):
    out, inp = 200, 300  # ⌈200/128⌉ × ⌈300/128⌉ = 2 × 3 blocks, the last ones partial
    weights, values = fp8((out, inp))
    scale_inv = RNG.uniform(0.5, 4.0, (2, 3)).astype(np.float32)
    path = save(
        tmp_path / "m.safetensors",
        {
            "layers.0.mlp.down_proj.weight": weights,
            "layers.0.mlp.down_proj.weight_scale_inv": torch.from_numpy(scale_inv),
        },
    )
    expected = np.empty((out, inp))
    for i in range(out):
        for j in range(inp):
            expected[i, j] = values[i, j] * float(scale_inv[i // 128, j // 128])
    report = alphahat.analyze(path, keep_eigenvalues=True)
    got = report.details.set_index("name")
    name = "layers.0.mlp.down_proj.weight"
    assert (
        got.loc[name, "note"]
        == "dequantized (float8_e4m3fn · weight_scale_inv, per 128 × 128 block)"
    )
    np.testing.assert_allclose(report.eigenvalues[name], evals(expected), rtol=1e-6)
    coverage = report.coverage.set_index("name")
    assert coverage.loc[f"{name}_scale_inv", "status"] == "skipped"
    assert "scales (weight_scale_inv) of layers.0.mlp.down_proj.weight" in str(
        coverage.loc[f"{name}_scale_inv", "reason"]
    )


@pytest.mark.parametrize(
    ("scale_shape", "how"),
    [
        ((), "per tensor"),
        ((1,), "per tensor"),
        ((64, 1), "per output channel"),
        ((64,), "per output channel"),
    ],
)
def test_compressed_tensors_weight_scale(tmp_path, scale_shape, how):
    weights, values = fp8((64, 48))
    scale = RNG.uniform(0.01, 0.1, scale_shape).astype(np.float32)
    path = save(
        tmp_path / "m.safetensors",
        {
            "q_proj.weight": weights,
            "q_proj.weight_scale": torch.from_numpy(np.array(scale)),
            "q_proj.input_scale": torch.tensor([0.5]),
        },
    )
    factors = np.asarray(scale, np.float64)
    expected = values * (factors.reshape(-1)[0] if how == "per tensor" else factors.reshape(64, 1))
    report = alphahat.analyze(path, keep_eigenvalues=True)
    row = report.details.set_index("name").loc["q_proj.weight"]
    assert row["note"] == f"dequantized (float8_e4m3fn · weight_scale, {how})"
    np.testing.assert_allclose(report.eigenvalues["q_proj.weight"], evals(expected), rtol=1e-6)


def test_unrecognised_scale_layout_fails_that_layer_only(tmp_path):
    weights, _ = fp8((64, 48))
    other, other_values = fp8((40, 32), "float8_e5m2")
    path = save(
        tmp_path / "m.safetensors",
        {
            "a.weight": weights,
            "a.weight_scale": torch.ones(7, 5),
            "b.weight": other,
        },
    )
    report = alphahat.analyze(path, keep_eigenvalues=True)
    got = report.details.set_index("name")
    assert got.loc["a.weight", "status"] == "failed"
    assert "a.weight_scale of shape [7, 5]" in got.loc["a.weight", "reason"]
    assert got.loc["b.weight", "status"] == "fitted"
    np.testing.assert_allclose(report.eigenvalues["b.weight"], evals(other_values), rtol=1e-10)


def test_nan_float8_codes_fail_the_layer_with_the_reason(tmp_path):
    weights, _ = fp8((32, 32))
    raw = weights.view(torch.uint8).clone()
    raw[3, 4] = 0x7F  # E4M3FN's NaN
    path = save(tmp_path / "m.safetensors", {"w.weight": raw.view(torch.float8_e4m3fn)})
    row = alphahat.analyze(path).details.set_index("name").loc["w.weight"]
    assert row["status"] == "failed"
    assert "1 NaN" in row["reason"]


def test_packed_float8_experts_with_per_expert_block_scales(tmp_path):
    """[experts, out, in] float8 with weight_scale_inv [experts, ⌈out/128⌉, ⌈in/128⌉]: each
    expert is its float8 values times its own block scales (written out element by element),
    and reads only its own rows of both tensors."""
    import tracemalloc

    from alphahat.layers import plan_tensors
    from alphahat.sources import open_source

    experts, out, inp = 16, 136, 96
    weights, values = fp8((experts, out, inp))
    scale_inv = RNG.uniform(0.5, 4.0, (experts, 2, 1)).astype(np.float32)
    name = "model.layers.0.mlp.experts.down_proj.weight"
    path = save(
        tmp_path / "m.safetensors",
        {name: weights, f"{name}_scale_inv": torch.from_numpy(scale_inv)},
    )
    with open_source(path) as source:
        plans = {p.ref.name: p for p in plan_tensors(source.tensors())}
        for e in (0, 5, 15):
            part = plans[f"{name} [expert {e}]"]
            assert "per 128 × 128 block" in part.ref.note
            tracemalloc.start()
            try:
                got = part.ref.load()
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            expected = np.array(
                [[values[e, i, j] * scale_inv[e, i // 128, j // 128] for j in range(inp)]
                 for i in range(out)]
            )  # fmt: skip
            np.testing.assert_allclose(got, expected, rtol=1e-6)
            assert peak < 8 * got.nbytes  # all 16 experts in float32 alone: 16 × got.nbytes
