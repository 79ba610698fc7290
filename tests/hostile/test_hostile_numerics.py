"""Numerically hostile layers: each gives a correct result or a ``failed`` row with a reason.

Never a crash, a hang, a RuntimeWarning, or a wrong number with status ``fitted``. Where a
result is expected it is checked against an independent computation: the eigenvalues against
numpy's SVD of the stored values in float64, norms against a compensated sum, and α against
exact power-of-two rescaling (which commutes with floating-point rounding, so α must not move)
or against the same weights at an ordinary scale.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hostile_inputs import eigenvalues, good_matrix, log10_frobenius_sq, safetensors_bytes

import alphahat

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

BASE = good_matrix(3, (64, 32))
COMPANION = {"companion.weight": good_matrix(4, (48, 24))}
METRICS = ("alpha", "alpha_weighted", "D", "sigma", "xmin", "xmax", "log_alpha_norm")


def analyse(weights: dict, **kwargs):
    report = alphahat.analyze({**weights, **COMPANION}, keep_eigenvalues=True, **kwargs)
    rows = report.details.set_index("name")
    assert rows.loc["companion.weight", "status"] == "fitted"
    for name, row in rows.iterrows():  # no ±inf anywhere, every failure explained
        numeric = [v for v in row.values if isinstance(v, float)]
        assert not any(math.isinf(v) for v in numeric), (name, row)
        if row["status"] == "failed":
            assert isinstance(row["reason"], str) and row["reason"].strip(), name
            for col in METRICS:
                assert math.isnan(row[col]), (name, col)
        else:
            assert row["status"] == "fitted"
            assert 1 < row["alpha"] < 1e3, (name, row["alpha"])
    return report, rows


def reference_alpha() -> float:
    _, rows = analyse({"w.weight": BASE})
    return float(rows.loc["w.weight", "alpha"])


# --------------------------------------------------------------------- non-finite values


def _with_non_finite(dtype: str) -> dict[str, np.ndarray]:
    out = {}
    for name, value in (("nan", np.nan), ("inf", np.inf), ("neginf", -np.inf)):
        w = good_matrix(5, (32, 16)).astype(dtype)
        w[3, 4] = value
        out[f"{name}.weight"] = w
    return out


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_nan_and_inf_fail_naming_the_problem(dtype):
    _, rows = analyse(_with_non_finite(dtype))
    assert "NaN" in rows.loc["nan.weight", "reason"]
    assert "Inf" in rows.loc["inf.weight", "reason"]
    assert "Inf" in rows.loc["neginf.weight", "reason"]
    assert (rows.loc[["nan.weight", "inf.weight", "neginf.weight"], "status"] == "failed").all()


def test_bfloat16_nan_inf_and_huge_values_from_raw_bits(tmp_path):
    """bfloat16 bits written by hand: NaN/Inf fail; 1e38-sized values are exact and correct."""
    w32 = (good_matrix(6, (40, 20)) * 1e37).astype(np.float32)
    bits = (w32.view(np.uint32) >> 16).astype("<u2")  # truncate to bfloat16
    exact = (bits.astype(np.uint32) << 16).view(np.float32)  # the values the file holds
    bad = bits.copy()
    bad[0, 0] = 0x7FC0  # NaN
    inf = bits.copy()
    inf[1, 1] = 0x7F80  # +Inf
    data = bits.tobytes() + bad.tobytes() + inf.tobytes()
    n = bits.nbytes
    header = {
        name: {"dtype": "BF16", "shape": [40, 20], "data_offsets": [i * n, (i + 1) * n]}
        for i, name in enumerate(("huge.weight", "nan.weight", "inf.weight"))
    }
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(safetensors_bytes(header, data))
    report = alphahat.analyze(path, keep_eigenvalues=True)
    rows = report.details.set_index("name")
    assert "NaN" in rows.loc["nan.weight", "reason"]
    assert "Inf" in rows.loc["inf.weight", "reason"]
    assert rows.loc["huge.weight", "status"] == "fitted"
    np.testing.assert_allclose(report.eigenvalues["huge.weight"], eigenvalues(exact), rtol=1e-12)
    assert rows.loc["huge.weight", "log_norm"] == pytest.approx(
        log10_frobenius_sq(exact), rel=1e-13
    )


# --------------------------------------------------------------------- degenerate spectra


def test_all_zero_layer_fails_with_rank_zero():
    _, rows = analyse({"zero.weight": np.zeros((32, 16))})
    row = rows.loc["zero.weight"]
    assert row["status"] == "failed" and row["matrix_rank"] == 0
    assert math.isnan(row["log_norm"]) and math.isnan(row["stable_rank"])


@pytest.mark.parametrize("scale", [1.0, 1e14, 1e100])
def test_constant_and_rank_one_layers_never_fit_rounding_noise(scale):
    """Rank 1 at any scale: the SVD's rounding noise (σ ≈ ε·σ_max) is no power-law tail.

    Before the noise floor, a rank-1 matrix times 1e14 had 15 noise eigenvalues above the
    1e-5 threshold and was reported ``fitted``.
    """
    g = np.random.default_rng(7)
    u, v = g.standard_normal(40), g.standard_normal(16)
    weights = {"rank1.weight": np.outer(u, v) * scale, "const.weight": np.full((40, 16), scale)}
    _, rows = analyse(weights)
    for name, w in weights.items():
        row = rows.loc[name]
        assert row["status"] == "failed", (name, row["alpha"])
        assert "too_few_points" in row["reason"] and "noise floor" in row["reason"]
        assert row["matrix_rank"] == 1
        # the one eigenvalue is ‖W‖²_F: an independent closed form
        assert row["log_norm"] == pytest.approx(log10_frobenius_sq(w), rel=1e-12)
        assert row["log_spectral_norm"] == pytest.approx(log10_frobenius_sq(w), rel=1e-12)
        assert row["stable_rank"] == pytest.approx(1.0, rel=1e-10)


@pytest.mark.parametrize("shape", [(40, 20), (20, 40), (64, 64)])
def test_orthogonal_layer_is_not_fitted_on_rounding_noise(shape):
    """All σ = 1: the 'tail' differs only by rounding; α would be ~1e15 (it was, 'fitted')."""
    q, _ = np.linalg.qr(np.random.default_rng(8).standard_normal((max(shape), min(shape))))
    w = q if shape[0] >= shape[1] else q.T
    _, rows = analyse({"orth.weight": 3.0 * w})
    row = rows.loc["orth.weight"]
    assert row["status"] == "failed"
    assert "constant" in row["reason"], row["reason"]
    assert row["stable_rank"] == pytest.approx(min(shape), rel=1e-12)  # Σλ/λ_max, all λ = 9
    assert row["log_norm"] == pytest.approx(math.log10(9 * min(shape)), rel=1e-12)


# --------------------------------------------------------------------- extreme shapes


@pytest.mark.parametrize("shape", [(1, 500), (500, 1), (100_000, 2), (2, 100_000)])
def test_extreme_aspect_ratios(shape):
    w = good_matrix(9, shape)
    report = alphahat.analyze({"thin.weight": w, **COMPANION})
    coverage = report.coverage.set_index("name")
    assert coverage.loc["thin.weight", "status"] == "skipped"
    assert "min_evals" in coverage.loc["thin.weight", "reason"]
    _, rows = analyse({"thin.weight": w}, min_evals=0)
    row = rows.loc["thin.weight"]
    assert row["status"] == "failed" and "too_few_points" in row["reason"]
    assert (row["N"], row["M"]) == (max(shape), min(shape))
    assert row["Q"] == pytest.approx(max(shape) / min(shape))
    assert row["log_norm"] == pytest.approx(log10_frobenius_sq(w), rel=1e-12)
    assert row["lambda_max"] == pytest.approx(eigenvalues(w)[-1], rel=1e-12)


def test_tall_layer_with_enough_eigenvalues_is_fitted_correctly():
    w = good_matrix(10, (100_000, 12))
    report, rows = analyse({"tall.weight": w})
    assert rows.loc["tall.weight", "status"] == "fitted"
    np.testing.assert_allclose(report.eigenvalues["tall.weight"], eigenvalues(w), rtol=1e-11)
    # exact power-of-two rescaling commutes with rounding: α must not move
    _, scaled = analyse({"tall.weight": w * 2.0**-4})
    assert scaled.loc["tall.weight", "alpha"] == pytest.approx(
        rows.loc["tall.weight", "alpha"], rel=1e-12
    )


# --------------------------------------------------------------------- magnitudes


@pytest.mark.parametrize("scale", [1e-2, 1e10, 1e30, 1e100, 1e150])
def test_large_and_moderate_magnitudes_give_the_same_alpha(scale):
    """α is scale-invariant while every eigenvalue stays above the 1e-5 threshold."""
    report, rows = analyse({"w.weight": BASE * scale})
    row = rows.loc["w.weight"]
    assert row["status"] == "fitted"
    assert row["alpha"] == pytest.approx(reference_alpha(), rel=1e-9)
    assert row["log_norm"] == pytest.approx(log10_frobenius_sq(BASE, scale), rel=1e-12)
    expected = eigenvalues(BASE) * scale**2
    np.testing.assert_allclose(report.eigenvalues["w.weight"], expected, rtol=1e-10)


@pytest.mark.parametrize("scale", [1e-30, 1e-100])
def test_tiny_magnitudes_fail_the_fit_but_keep_correct_norms(scale):
    _, rows = analyse({"w.weight": BASE * scale})
    row = rows.loc["w.weight"]
    assert row["status"] == "failed"
    assert "evals_threshold" in row["reason"], row["reason"]
    assert row["log_norm"] == pytest.approx(log10_frobenius_sq(BASE, scale), rel=1e-12)
    assert row["stable_rank"] == pytest.approx(
        eigenvalues(BASE).sum() / eigenvalues(BASE).max(), rel=1e-10
    )


@pytest.mark.parametrize("scale", [1e-160, 1e-200, 1e-310])
def test_float64_underflow_fails_instead_of_returning_imprecise_numbers(scale):
    """σ² below the smallest normal float64: λ would be 0 or subnormal (digits lost)."""
    _, rows = analyse({"w.weight": BASE * scale})
    row = rows.loc["w.weight"]
    assert row["status"] == "failed"
    assert "underflow" in row["reason"], row["reason"]
    assert math.isnan(row["log_norm"])


@pytest.mark.parametrize("scale", [1e155, 1e300])
def test_float64_overflow_fails(scale):
    _, rows = analyse({"w.weight": BASE * scale})
    row = rows.loc["w.weight"]
    assert row["status"] == "failed" and "overflow" in row["reason"]


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_subnormal_stored_weights_are_analysed_as_stored(dtype):
    """float32/float16 subnormals are normal numbers in float64: the result is exact."""
    tiny = np.finfo(dtype).tiny
    w = (BASE / np.abs(BASE).max() * tiny * 0.5).astype(dtype)  # every entry subnormal
    assert (np.abs(w[w != 0]) < tiny).all()
    report, rows = analyse({"sub.weight": w}, evals_threshold=0.0)
    row = rows.loc["sub.weight"]
    np.testing.assert_allclose(report.eigenvalues["sub.weight"], eigenvalues(w), rtol=1e-10)
    assert row["log_norm"] == pytest.approx(log10_frobenius_sq(w), rel=1e-12)
    if row["status"] == "fitted":  # subnormals are coarse: compare with exact 2^k rescaling
        _, big = analyse({"sub.weight": w.astype(np.float64) * 2.0**140}, evals_threshold=0.0)
        assert row["alpha"] == pytest.approx(big.loc["sub.weight", "alpha"], rel=1e-9)


def test_float16_near_its_maximum_has_no_overflow_in_the_pipeline():
    """Entries up to 6e4: WᵀW would overflow float16 (max 65504); we upcast first."""
    w = np.clip(BASE * 8000, -65000, 65000).astype(np.float16)
    assert np.isfinite(w).all() and np.abs(w).max() > 30000
    with np.errstate(over="ignore"):
        assert not np.isfinite(w.T @ w).all()  # what a float16 computation would give
    report, rows = analyse({"f16.weight": w})
    row = rows.loc["f16.weight"]
    assert row["status"] == "fitted"
    np.testing.assert_allclose(report.eigenvalues["f16.weight"], eigenvalues(w), rtol=1e-10)
    _, exact = analyse({"f16.weight": w.astype(np.float64) * 2.0**-16})  # exact rescaling
    assert row["alpha"] == pytest.approx(exact.loc["f16.weight", "alpha"], rel=1e-12)


def test_float16_overflow_in_the_file_is_reported_as_inf(tmp_path):
    """Values saved beyond float16's range are already Inf in the file: a failed row."""
    with np.errstate(over="ignore"):
        w = (BASE * 1e5).astype(np.float16)
    header = {"f16.weight": {"dtype": "F16", "shape": [64, 32], "data_offsets": [0, w.nbytes]}}
    path = tmp_path / "f16.safetensors"
    path.write_bytes(safetensors_bytes(header, w.astype("<f2").tobytes()))
    row = alphahat.analyze(path).details.set_index("name").loc["f16.weight"]
    assert row["status"] == "failed" and "Inf" in row["reason"]
