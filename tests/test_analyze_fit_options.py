"""``alphahat.analyze`` with the reference tool's fit options: the columns each adds, and values
equal to calling the fitting engine (``alphahat.fit``) directly on the same eigenvalues."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import alphahat
from alphahat.fit import fit_esd_truncated_power_law, fit_power_law, fit_tail
from alphahat.metrics import fit_sample


def _heavy(n: int, m: int, seed: int) -> np.ndarray:
    """A matrix with Student-t entries: a heavy-tailed ESD with a clear tail."""
    return np.random.default_rng(seed).standard_t(3.0, size=(n, m)) / math.sqrt(n)


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    return {"a.weight": _heavy(120, 60, 1), "b.weight": _heavy(90, 90, 2)}


def _run(weights: dict[str, np.ndarray], **options: Any) -> tuple[Any, dict[str, np.ndarray]]:
    report = alphahat.analyze(weights, keep_eigenvalues=True, **options)
    samples = {
        str(row["name"]): np.sort(fit_sample(report.eigenvalues[row["name"]], int(row["N"]), 1e-5))
        for row in report.details.to_dict("records")
    }
    return report.details.set_index("name"), samples


def _same(row: Any, fit: Any, spikes: int | None = None) -> None:
    assert row["status"] == "fitted"
    assert row["alpha"] == fit.alpha and row["xmin"] == fit.xmin and row["D"] == fit.D
    assert int(row["num_pl_spikes"]) == (fit.n_tail if spikes is None else spikes)
    assert math.isclose(row["alpha_weighted"], fit.alpha * math.log10(row["lambda_max"]))


def test_default_fit_is_the_engine(weights: dict[str, np.ndarray]) -> None:
    details, samples = _run(weights)
    for name, sample in samples.items():
        _same(details.loc[name], fit_power_law(sample))
        assert "Lambda" not in details.columns and "num_fingers" not in details.columns


def test_xmin_peak(weights: dict[str, np.ndarray]) -> None:
    details, samples = _run(weights, fix_fingers="xmin_peak")
    for name, sample in samples.items():
        _same(details.loc[name], fit_power_law(sample, xmin="peak"))
    for name, sample in samples.items():
        counts, edges = np.histogram(np.log10(sample), bins=100)
        cap = 1.1 * 10 ** edges[np.argmax(counts)]  # inside [0.95 p, 1.5 p], p the peak
        capped, _ = _run({name: weights[name]}, fix_fingers="xmin_peak", xmin_max=cap)
        expected = fit_power_law(sample, xmin="peak", xmin_max=cap)
        assert capped.loc[name, "xmin"] == expected.xmin <= cap


def test_clip_xmax(weights: dict[str, np.ndarray]) -> None:
    details, samples = _run(weights, fix_fingers="clip_xmax", max_fingers=4, finger_thresh=0.5)
    assert {"num_fingers", "raw_alpha"} <= set(details.columns)
    for name, sample in samples.items():
        fit = fit_power_law(sample, xmax="clip", max_fingers=4, finger_threshold=0.5)
        row = details.loc[name]
        # num_pl_spikes counts every λ ≥ x_min, the clipped ones too (as the reference does)
        _same(row, fit, spikes=int(np.count_nonzero(sample >= fit.xmin)))
        assert int(row["num_fingers"]) == fit.num_clipped
        assert row["raw_alpha"] == fit.raw_alpha == fit_power_law(sample).alpha


def test_xmax_leaves_out_the_top_eigenvalues(weights: dict[str, np.ndarray]) -> None:
    details, samples = _run(weights, xmax=3)
    for name, sample in samples.items():
        _same(details.loc[name], fit_power_law(sample[:-3]))  # the tail without the top 3
        assert details.loc[name, "lambda_max"] == sample[-1]  # norms still see every λ
    too_many, _ = _run({"a.weight": weights["a.weight"]}, xmax=-40)  # |xmax| > half of 60
    assert too_many.iloc[0]["status"] != "fitted" and "xmax=-40" in too_many.iloc[0]["reason"]


@pytest.mark.parametrize("kind", ["TPL", "E_TPL"])
def test_truncated_power_law(weights: dict[str, np.ndarray], kind: str) -> None:
    details, samples = _run(weights, fit=kind)
    assert "Lambda" in details.columns
    for name, sample in samples.items():
        row = details.loc[name]
        pl = fit_power_law(sample, xmin="ks" if kind == "TPL" else "peak")
        tpl = fit_tail(sample, pl.xmin, "truncated_power_law")
        if kind == "E_TPL":
            esd = fit_esd_truncated_power_law(sample)
            assert esd.xmin == pl.xmin and esd.parameters == tpl.parameters
        assert row["status"] == "fitted" and row["xmin"] == pl.xmin and row["D"] == pl.D
        assert row["alpha"] == tpl.parameters["alpha"]
        assert row["Lambda"] == tpl.parameters["Lambda"]
        assert math.isnan(row["sigma"])  # no closed-form standard error for the TPL
        assert math.isclose(row["alpha_weighted"], row["alpha"] * math.log10(row["lambda_max"]))


def test_option_errors() -> None:
    w = {"a.weight": _heavy(40, 20, 3)}
    for options, message in [
        ({"fit": "LN"}, "fit must be one of"),
        ({"fix_fingers": "peak"}, "fix_fingers must be"),
        ({"fit": "E_TPL", "fix_fingers": "clip_xmax"}, "cannot use 'clip_xmax'"),
        ({"xmax": 0}, "xmax must be"),
        ({"xmax": 2, "fix_fingers": "xmin_peak"}, "cannot be combined"),
        ({"xmin_max": -1.0}, "xmin_max must be"),
    ]:
        with pytest.raises(ValueError, match=message):
            alphahat.analyze(w, **options)
