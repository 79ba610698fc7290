"""x_min policies (ks, peak, fixed, xmin_max) and x_max policies (fixed, finger clipping)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alphahat.fit import fit_power_law


def sample(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.lognormal(0.0, 0.5, 900), 3.0 * (1 - rng.random(300)) ** (-1 / 1.6)])


def test_fixed_xmin_is_the_closed_form_mle_on_the_tail_above_it() -> None:
    x = sample(1)
    fit = fit_power_law(x, xmin=2.0)
    tail = np.sort(x[x >= 2.0])
    assert fit.xmin == tail[0] and fit.n_tail == tail.size
    alpha = 1 + tail.size / np.log(tail / tail[0]).sum()
    assert fit.alpha == pytest.approx(alpha, rel=1e-12)
    k = np.arange(tail.size) / tail.size
    D = np.max(np.abs(1 - (tail / tail[0]) ** (1 - alpha) - k))
    assert fit.D == pytest.approx(D, rel=1e-12)
    assert np.isfinite(fit.Ds).sum() == 1  # only that one candidate is evaluated


@pytest.mark.parametrize("convention", ["reference", "clauset", "powerlaw"])
def test_xmin_max_restricts_the_search(convention: str) -> None:
    x = sample(2)
    free = fit_power_law(x, convention=convention, all_distances=True)  # type: ignore[arg-type]
    bound = 0.8 * free.xmin
    fit = fit_power_law(x, convention=convention, xmin_max=bound)  # type: ignore[arg-type]
    assert fit.fitted and fit.xmin <= bound
    inside = (free.xmins <= bound) & np.isfinite(free.Ds)
    assert fit.D == np.min(free.Ds[inside])


def test_peak_policy_searches_the_window_around_the_log_histogram_mode() -> None:
    x = sample(3)
    counts, edges = np.histogram(np.log10(x), bins=100)
    peak = 10 ** edges[np.argmax(counts)]
    free = fit_power_law(x, all_distances=True)
    fit = fit_power_law(x, xmin="peak")
    assert 0.95 * peak <= fit.xmin <= 1.5 * peak
    window = (free.xmins >= 0.95 * peak) & (free.xmins <= 1.5 * peak) & np.isfinite(free.Ds)
    assert fit.D == np.min(free.Ds[window])
    wider = fit_power_law(x, xmin="peak", xmin_max=3 * peak)
    assert wider.D <= fit.D and wider.xmin <= 3 * peak


def test_fixed_xmax_drops_the_values_above_it_and_counts_them() -> None:
    x = sample(4)
    cut = np.quantile(x, 0.99)
    fit = fit_power_law(x, xmax=cut)
    plain = fit_power_law(x[x <= cut])
    assert fit.num_clipped == int((x > cut).sum()) > 0
    assert (fit.alpha, fit.xmin, fit.D, fit.xmax) == (plain.alpha, plain.xmin, plain.D, plain.xmax)


def clipped_by_hand(evals: np.ndarray, max_fingers: int, threshold: float) -> tuple[int, float]:
    x = np.sort(evals)
    first = fit_power_law(x).alpha
    for k in range(1, max_fingers + 1):
        alpha = fit_power_law(x[:-k]).alpha
        if alpha + threshold < first:
            return k, alpha
    return 0, first


def test_finger_clipping_on_real_esds_counts_the_values_it_drops(minilm_report) -> None:
    clipped = 0
    for evals in minilm_report.eigenvalues.values():
        evals = evals[evals > 1e-5]
        fit = fit_power_law(evals, xmax="clip")
        k, alpha = clipped_by_hand(evals, 10, 1.0)
        assert fit.num_clipped == k
        assert fit.alpha == alpha
        assert fit.raw_alpha == fit_power_law(evals).alpha
        if k:
            clipped += 1
            assert fit.xmax == np.sort(evals)[-k - 1]
    assert clipped >= 5  # real layers of MiniLM-L6 have fingers; several start at k = 1


def test_finger_clipping_limits() -> None:
    x = sample(5)
    unclipped = fit_power_law(x, xmax="clip", finger_threshold=50.0)
    assert unclipped.num_clipped == 0 and unclipped.alpha == fit_power_law(x).alpha
    assert unclipped.raw_alpha == unclipped.alpha


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"xmin": "mode"}, "xmin"),
        ({"xmin": -1.0}, "xmin"),
        ({"xmin_max": 0}, "xmin_max"),
        ({"xmax": "force"}, "xmax"),
        ({"max_fingers": 0}, "max_fingers"),
        ({"finger_threshold": math.nan}, "finger_threshold"),
        ({"peak_bins": 0}, "peak_bins"),
        ({"all_distances": "yes"}, "all_distances"),
    ],
)
def test_bad_policy_arguments_name_the_parameter(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        fit_power_law(sample(6), **kwargs)  # type: ignore[arg-type]


def test_a_fixed_xmin_above_every_value_fails_cleanly() -> None:
    fit = fit_power_law(sample(7), xmin=1e9)
    assert fit.status == "no_valid_xmin" and "x_min fixed" in fit.reason and math.isnan(fit.alpha)
