"""Metric formulas against closed forms and direct computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alphahat.fit import fit_power_law
from alphahat.metrics import (
    layer_metrics,
    log_alpha_norm,
    matrix_entropy,
    norm_metrics,
    summarize,
    training_warning,
)


def test_norms_of_a_diagonal_matrix() -> None:
    # W = diag(1, 2, 3, 4) padded to 6x4: λ = σ² = 1, 4, 9, 16
    evals = np.array([1.0, 4.0, 9.0, 16.0])
    m = norm_metrics(evals, N=6)
    assert m.norm == 30.0
    assert m.log_norm == pytest.approx(math.log10(30.0), rel=1e-15)
    assert m.log_spectral_norm == pytest.approx(math.log10(16.0), rel=1e-15)
    assert m.stable_rank == pytest.approx(30 / 16, rel=1e-15)
    assert m.matrix_rank == 4


def test_entropy_of_a_flat_spectrum_is_one_and_of_a_spike_is_zero() -> None:
    assert matrix_entropy(np.full(50, 3.0), rank=50) == pytest.approx(1.0, rel=1e-14)
    assert matrix_entropy(np.array([0.0, 0.0, 5.0]), rank=1) == 0.0


def test_log_alpha_norm_matches_direct_sum_and_survives_overflow() -> None:
    evals = np.array([0.5, 2.0, 7.0, 30.0])
    direct = math.log10(sum(x**2.7 for x in evals))
    assert log_alpha_norm(evals, 2.7) == pytest.approx(direct, rel=1e-14)
    huge = np.array([1e200, 1e250])
    # Σ λ^α = 1e500 + 1e625 overflows float64; its log₁₀ does not: 625 + log₁₀(1 + 1e-125)
    assert log_alpha_norm(huge, 2.5) == pytest.approx(625.0, rel=1e-14)


def test_matrix_rank_matches_numpy_default_tolerance() -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(size=(40, 12)) @ np.diag([1.0] * 9 + [0.0] * 3)
    svals = np.linalg.svd(w, compute_uv=False)
    assert norm_metrics(np.sort(svals**2), N=40).matrix_rank == np.linalg.matrix_rank(w) == 9


def test_alpha_weighted_is_alpha_times_log_spectral_norm() -> None:
    rng = np.random.default_rng(2)
    evals = np.sort(np.linalg.svd(rng.standard_t(2.5, size=(300, 100)), compute_uv=False) ** 2)
    fit = fit_power_law(evals)
    row = layer_metrics(evals, 300, fit)
    assert row["alpha_weighted"] == pytest.approx(fit.alpha * math.log10(evals.max()), rel=1e-15)
    assert row["num_pl_spikes"] == int((evals >= fit.xmin).sum())


@pytest.mark.parametrize(
    ("alpha", "fitted", "expected"),
    [(1.5, True, "over-trained"), (6.5, True, "under-trained"), (4.0, True, ""), (1.5, False, "")],
)
def test_training_warning(alpha: float, fitted: bool, expected: str) -> None:
    assert training_warning(alpha, fitted) == expected


def test_summary_averages_fitted_layers_only_and_can_drop_embeddings() -> None:
    rows = [
        {"kind": "linear", "status": "fitted", "warning": "", "alpha": 2.0, "alpha_weighted": 1.0,
         "log_norm": 1.0, "log_spectral_norm": 0.5, "log_alpha_norm": 1.0, "stable_rank": 3.0},
        {"kind": "embedding", "status": "fitted", "warning": "under-trained", "alpha": 8.0,
         "alpha_weighted": 2.0, "log_norm": 3.0, "log_spectral_norm": 1.5, "log_alpha_norm": 2.0,
         "stable_rank": 5.0},
        {"kind": "linear", "status": "failed", "warning": "", "alpha": math.nan,
         "alpha_weighted": math.nan, "log_norm": 9.0, "log_spectral_norm": 9.0,
         "log_alpha_norm": math.nan, "stable_rank": 9.0},
    ]  # fmt: skip
    everything = summarize(rows, num_skipped=4)
    assert everything.means["alpha"] == 5.0 and everything.means["log_norm"] == 2.0
    assert (everything.num_layers, everything.num_failed, everything.num_skipped) == (2, 1, 4)
    assert everything.num_under_trained == 1
    no_embeddings = summarize(rows, include_embeddings=False)
    assert no_embeddings.means["alpha"] == 2.0 and no_embeddings.num_layers == 1


@pytest.mark.parametrize(
    "values",
    [
        np.array([0.0]),
        np.array([-3.0, 1.5, 2.0, 700.0, 710.0]),  # exp overflows without the shift
        np.array([-800.0, -790.0]),  # exp underflows without the shift
        np.linspace(-5, 5, 1001),
        np.array([1.0, np.inf]),
        np.array([-np.inf, -np.inf]),
        np.array([1.0, np.nan]),
    ],
)
def test_log_sum_exp_equals_scipy(values: np.ndarray) -> None:
    from scipy.special import logsumexp

    from alphahat.metrics import _log_sum_exp

    expected = float(logsumexp(values))
    got = _log_sum_exp(values)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected, rel=1e-14, abs=0)
    assert _log_sum_exp(np.array([])) == -math.inf
