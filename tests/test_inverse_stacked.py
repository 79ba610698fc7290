"""inverse=True (the ESD 1/λ) and stacked=True (one stacked matrix): against independent numpy."""

from __future__ import annotations

import numpy as np
import pytest

import alphahat
from alphahat.errors import OptionError


def test_inverse_analyses_one_over_lambda() -> None:
    w = np.random.default_rng(0).normal(size=(300, 100))
    evals = np.linalg.svd(w, compute_uv=False) ** 2
    report = alphahat.analyze({"w": w}, inverse=True, keep_eigenvalues=True)
    row = report.details.iloc[0]
    np.testing.assert_allclose(report.eigenvalues["w"], np.sort(1 / evals), rtol=1e-10)
    assert row["lambda_max"] == pytest.approx(1 / evals.min(), rel=1e-10)
    assert row["spectrum_method"] == "svd, inverse"
    plain = alphahat.analyze({"w": w}).details.iloc[0]
    assert plain["lambda_max"] == pytest.approx(evals.max(), rel=1e-10)


def test_inverse_leaves_zero_eigenvalues_out_and_refuses_vectors() -> None:
    w = np.zeros((40, 20))
    w[:, :15] = np.random.default_rng(1).normal(size=(40, 15))
    report = alphahat.analyze({"w": w}, inverse=True, keep_eigenvalues=True, min_evals=0)
    values = report.eigenvalues["w"]
    assert np.isfinite(values).all() and values.size <= 20 and values.min() > 0
    with pytest.raises(OptionError, match="inverse"):
        alphahat.analyze({"w": w}, inverse=True, vectors=True)


def _standardized(w: np.ndarray) -> np.ndarray:
    mad = np.median(np.abs(w - np.median(w, axis=0)), axis=0)
    return (w - np.median(w)) / mad


def test_stacked_is_one_row_of_the_stacked_matrix_conv_slices_side_by_side() -> None:
    rng = np.random.default_rng(2)
    conv = rng.normal(size=(16, 8, 3, 3))  # (out, in, kh, kw): 9 slices of 16 × 8
    dense = rng.standard_t(4, size=(30, 50))
    report = alphahat.analyze({"c.weight": conv, "d.weight": dense}, stacked=True, min_evals=0)
    assert report.details["name"].tolist() == ["Stacked Layer"]
    slices = np.hstack([conv.reshape(16, 8, -1)[:, :, k] for k in range(9)])  # 16 × 72
    width = 72
    parts = [_standardized(slices), _standardized(dense)]
    stacked = np.vstack([np.pad(p, ((0, 0), (0, width - p.shape[1]))) for p in parts])  # 46 × 72
    evals = np.linalg.svd(stacked, compute_uv=False) ** 2
    row = report.details.iloc[0]
    assert (row["N"], row["M"]) == (72, 46)  # transposed: N ≥ M
    assert row["lambda_max"] == pytest.approx(evals.max(), rel=1e-10)
    assert row["norm"] == pytest.approx(evals.sum(), rel=1e-10)


def test_stacked_takes_the_layer_filter_and_the_cli_flag(tmp_path: object) -> None:
    from typer.testing import CliRunner

    from alphahat.cli import app

    rng = np.random.default_rng(3)
    model = {"a.weight": rng.normal(size=(40, 20)), "b.weight": rng.normal(size=(30, 20))}
    only_a = alphahat.analyze(model, stacked=True, layers=["a.weight"]).details.iloc[0]
    plain = alphahat.analyze({"a": _standardized(model["a.weight"])}).details.iloc[0]
    assert only_a["lambda_max"] == pytest.approx(plain["lambda_max"], rel=1e-10)
    path = tmp_path / "m.npz"  # type: ignore[operator]
    np.savez(path, **model)
    result = CliRunner().invoke(app, ["analyze", str(path), "--stacked", "-f", "csv", "-q"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1].split(",")[1] == "Stacked Layer"
