"""inverse=True: the ESD 1/λ (the reference tool's option), against an independent numpy."""

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
