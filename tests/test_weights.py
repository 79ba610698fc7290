"""Weight-entry distributions: independent numpy/scipy computations of the fits and tests."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from alphahat.fit.entries import fit_entry_side, ks_distance
from alphahat.weights import analyze_weights, subsample


def test_ks_distance_is_scipys() -> None:
    x = np.sort(np.abs(np.random.default_rng(1).normal(size=500)))
    expected = stats.kstest(x, stats.halfnorm(scale=1.2).cdf).statistic
    assert ks_distance(x, stats.halfnorm(scale=1.2).cdf(x)) == pytest.approx(expected, rel=1e-12)


def test_side_fits_match_the_closed_forms() -> None:
    x = np.abs(np.random.default_rng(2).standard_t(3, size=20_000))
    row = fit_entry_side(x)
    # MLEs in closed form: half-Gaussian ŝ = √mean x², half-Laplace b̂ = mean x
    assert row["gauss_scale"] == pytest.approx(math.sqrt(np.mean(x * x)), rel=1e-12)
    assert row["laplace_scale"] == pytest.approx(x.mean(), rel=1e-12)
    assert row["gauss_D"] == pytest.approx(
        stats.kstest(x, stats.halfnorm(scale=row["gauss_scale"]).cdf).statistic, rel=1e-9
    )
    assert row["laplace_D"] == pytest.approx(
        stats.kstest(x, stats.expon(scale=row["laplace_scale"]).cdf).statistic, rel=1e-9
    )
    # the power-law tail: α̂ = 1 + n / Σ ln(x/x_min) at the reported x_min; t₃ tails ∝ x^−4
    tail = x[x >= row["pl_xmin"]]
    assert row["n_tail"] == tail.size
    assert row["pl_alpha"] == pytest.approx(1 + tail.size / np.log(tail / row["pl_xmin"]).sum())
    assert row["pl_alpha"] == pytest.approx(4.0, abs=0.5)
    # Vuong's test, Laplace vs Gaussian, from the pointwise log-likelihoods
    gauss = stats.halfnorm(scale=row["gauss_scale"]).logpdf(x)
    laplace = stats.expon(scale=row["laplace_scale"]).logpdf(x)
    assert row["R_laplace_gauss"] == pytest.approx((laplace - gauss).sum(), rel=1e-9)
    assert row["R_laplace_gauss"] > 0 and row["p_laplace_gauss"] < 1e-3
    # the tail is a power law, not an exponential
    assert row["R_pl_exp"] > 0 and row["p_pl_exp"] < 0.05


def test_gaussian_and_laplace_entries_are_told_apart() -> None:
    rng = np.random.default_rng(3)
    result = analyze_weights({"g": rng.normal(size=(200, 100)), "l": rng.laplace(size=(200, 100))})
    rows = result.details.set_index(["name", "side"])
    for side in ("positive", "negative"):
        assert (
            rows.loc[("g", side), "R_laplace_gauss"] < 0 < rows.loc[("l", side), "R_laplace_gauss"]
        )
        assert rows.loc[("g", side), "gauss_D"] < rows.loc[("g", side), "laplace_D"]
        assert rows.loc[("l", side), "laplace_D"] < rows.loc[("l", side), "gauss_D"]
    assert (rows["entries_used"] == 20_000).all() and (rows["status"] == "fitted").all()


def test_sides_are_fitted_apart() -> None:
    rng = np.random.default_rng(4)
    w = np.where(rng.random((200, 100)) < 0.5, rng.pareto(2.0, (200, 100)) + 1.0,
                 -np.abs(rng.normal(size=(200, 100))))  # fmt: skip
    rows = analyze_weights({"w": w}).details.set_index("side")
    assert rows.loc["positive", "n"] == int((w > 0).sum())
    assert rows.loc["positive", "pl_alpha"] == pytest.approx(3.0, abs=0.4)  # Pareto(2): x^−3
    assert rows.loc["negative", "R_laplace_gauss"] < 0  # a half-Gaussian side


def test_subsampling_is_seeded_and_counted() -> None:
    w = np.random.default_rng(5).normal(size=(300, 200))
    a = analyze_weights({"w": w}, max_entries=5000, seed=1)
    b = analyze_weights({"w": w}, max_entries=5000, seed=1)
    c = analyze_weights({"w": w}, max_entries=5000, seed=2)
    assert (a.details["entries_used"] == 5000).all() and (a.details["entries"] == 60_000).all()
    np.testing.assert_array_equal(a.samples["w"], b.samples["w"])
    assert not np.array_equal(a.samples["w"], c.samples["w"])
    assert set(a.samples["w"]) <= set(w.ravel())
    assert subsample(w, 10**6, seed=0, name="w").size == w.size
    with pytest.raises(ValueError, match="max_entries"):
        analyze_weights({"w": w}, max_entries=1)


def test_bad_layer_is_reported_and_others_kept() -> None:
    bad = np.ones((20, 10))
    bad[0, 0] = np.inf
    rows = analyze_weights({"bad": bad, "good": np.random.default_rng(0).normal(size=(40, 20))})
    frame = rows.details.set_index("name")
    assert frame.loc["bad", "status"] == "failed" and "finite" in frame.loc["bad", "reason"]
    assert (frame.loc["good", "status"] == "fitted").all()


def test_cli_weights_writes_table_and_figures(tmp_path: Path) -> None:
    from safetensors.numpy import save_file
    from typer.testing import CliRunner

    from alphahat.cli import app

    path = tmp_path / "m.safetensors"
    save_file(
        {"w": np.random.default_rng(6).standard_t(3, (120, 60)).astype(np.float32)}, str(path)
    )
    out = tmp_path / "w.csv"
    result = CliRunner().invoke(
        app,
        [
            "weights",
            str(path),
            "-o",
            str(out),
            "--figures",
            str(tmp_path / "fig"),
            "--max-entries",
            "3000",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines[0].startswith("layer_id,name,side,entries,entries_used") and len(lines) == 3
    assert ",3000," in lines[1]
    assert len(list((tmp_path / "fig").glob("*.png"))) == 1
