"""The α, x_min and x_max in a figure are the table's, under every fit option.

For each option that changes the fit (``fit=PL/TPL/E_TPL``, ``fix_fingers=xmin_peak/clip_xmax``,
``xmax``, ``min_evals``, conv ``pool=False``), the numbers are read back from what was drawn —
the fitted line's end points and slope (or, for a truncated power law, the exponent and rate
that reproduce its curve), the x_min marker, the (x_min, D) point of the KS panel — and compared
with the layer's row: in the diagnostics figure (:func:`alphahat.plot.fit_diagnostics` of the
kept fit), in the HTML report's drill-down, in ``save_plots``, and for reports that kept the
eigenvalues but not the fits (drawn from the row itself).

The layer of the issue: a 400×200 Student-t (3 degrees of freedom, seed 0) matrix, whose
table α is 2.27 under ``fix_fingers="xmin_peak"`` while a figure fitting again with the
default policy showed 5.78.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import alphahat  # noqa: E402
from alphahat import html_report  # noqa: E402
from alphahat.plot import (  # noqa: E402
    FIT_LINE_GID,
    XMAX_LINE_GID,
    XMIN_LINE_GID,
    diagnostic_fit,
    fit_diagnostics,
    save_plots,
)
from alphahat.plot import save as plot_save  # noqa: E402


def _student_t(rows: int, cols: int, df: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_t(df, size=(rows, cols))


ISSUE_LAYER = _student_t(400, 200, 3.0, 0)
FINGERED_LAYER = _student_t(400, 200, 4.0, 2)  # clip_xmax clips it: α 9.38 → 3.48
CONV_KERNEL = _student_t(48, 96, 3.0, 5).reshape(48, 24, 2, 2)

CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("PL", {"w.weight": ISSUE_LAYER}, {"fit": "PL"}),
    ("TPL", {"w.weight": ISSUE_LAYER}, {"fit": "TPL"}),
    ("E_TPL", {"w.weight": ISSUE_LAYER}, {"fit": "E_TPL"}),
    ("xmin_peak", {"w.weight": ISSUE_LAYER}, {"fix_fingers": "xmin_peak"}),
    ("clip_xmax", {"w.weight": FINGERED_LAYER}, {"fix_fingers": "clip_xmax"}),
    ("xmin_mid", {"w.weight": ISSUE_LAYER}, {"fix_fingers": "xmin_mid"}),
    ("farms", {"w.weight": ISSUE_LAYER}, {"estimator": "farms", "farms_size": 100}),
    ("xmax", {"w.weight": ISSUE_LAYER}, {"xmax": 3}),
    ("min_evals", {"w.weight": ISSUE_LAYER, "small.weight": ISSUE_LAYER[:60, :40]},
     {"min_evals": 100}),
    ("no_pool", {"conv.weight": CONV_KERNEL}, {"pool": False}),
]  # fmt: skip


def _lines(ax: Any, gid: str) -> list[Any]:
    return [line for line in ax.get_lines() if line.get_gid() == gid]


def _drawn_law(ax: Any, log10_x: bool = False) -> dict[str, float]:
    """x_min, x_max, α (and Λ) of the fitted line drawn on one ESD panel."""
    (line,) = _lines(ax, FIT_LINE_GID)
    x = np.asarray(line.get_xdata(), dtype=np.float64)
    y = np.asarray(line.get_ydata(), dtype=np.float64)
    if log10_x:  # a density of u = log₁₀ λ: ρ(λ)·λ·ln 10
        x = 10.0**x
        y = y / (x * math.log(10.0))
    # log ρ = c − α log λ − Λ λ: least squares over the drawn points
    design = np.column_stack([np.ones_like(x), -np.log(x), -x])
    c, alpha, rate = np.linalg.lstsq(design, np.log(y), rcond=None)[0]
    (xmin_line,) = _lines(ax, XMIN_LINE_GID)
    (xmax_line,) = _lines(ax, XMAX_LINE_GID)
    marker = float(np.asarray(xmin_line.get_xdata())[0])
    end = float(np.asarray(xmax_line.get_xdata())[0])
    if log10_x:
        marker, end = 10.0**marker, 10.0**end
    return {
        "start": float(x[0]), "end": float(x[-1]), "alpha": float(alpha),
        "Lambda": float(rate), "xmin_marker": marker, "xmax_marker": end,
    }  # fmt: skip


def assert_figure_is_the_row(fig: Any, row: dict[str, Any]) -> None:
    """The diagnostics figure ``fig`` draws exactly the row's α, x_min, x_max (and D, Λ)."""
    axes = fig.axes
    truncated = not math.isnan(float(row.get("Lambda", math.nan)))
    for ax, log10_x in ((axes[0], False), (axes[1], False), (axes[2], True)):
        drawn = _drawn_law(ax, log10_x)
        for key in ("start", "xmin_marker"):
            assert drawn[key] == pytest.approx(row["xmin"], rel=1e-12), key
        for key in ("end", "xmax_marker"):
            assert drawn[key] == pytest.approx(row["xmax"], rel=1e-12), key
        assert drawn["alpha"] == pytest.approx(row["alpha"], rel=1e-6, abs=1e-6)
        if truncated:
            assert drawn["Lambda"] == pytest.approx(row["Lambda"], rel=1e-5)
        else:
            assert drawn["Lambda"] == pytest.approx(0.0, abs=1e-6 / row["xmax"])
    assert f"α = {row['alpha']:.3f}" in axes[0].get_title()
    points = [line for line in axes[3].get_lines() if line.get_marker() == "o"]
    assert len(points) == 1
    assert float(points[0].get_xdata()[0]) == row["xmin"]
    assert float(points[0].get_ydata()[0]) == pytest.approx(row["D"], rel=1e-12)


def _fitted_rows(report: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = report.details.to_dict("records")
    fitted = [r for r in rows if r["status"] == "fitted"]
    assert fitted, "the case must fit something"
    return fitted


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def case(request: Any) -> tuple[str, Any]:
    name, weights, options = request.param
    return name, alphahat.analyze(weights, keep_fits=True, **options)


def test_the_diagnostics_figure_draws_the_rows_fit(case: tuple[str, Any]) -> None:
    name, report = case
    for row in _fitted_rows(report):
        result = report.fits[row["name"]]
        assert result.fit.alpha == row["alpha"] and result.fit.xmin == row["xmin"]
        assert_figure_is_the_row(fit_diagnostics(result.eigenvalues, result.fit), row)
    if name == "min_evals":
        assert set(report.fits) == {"w.weight"}  # the small layer was skipped, and not kept
    if name == "no_pool":
        assert len(report.fits) == 4 and all("[slice" in n for n in report.fits)


def test_the_issues_layer_would_have_been_drawn_wrong() -> None:
    """What the figures drew before: a new fit with the default policy, α 5.78 for 2.27."""
    report = alphahat.analyze({"w.weight": ISSUE_LAYER}, fix_fingers="xmin_peak", keep_fits=True)
    row = report.details.iloc[0]
    assert round(float(row["alpha"]), 2) == 2.27
    refit = diagnostic_fit(report.eigenvalues["w.weight"])
    assert round(refit.alpha, 2) == 5.78
    wrong = fit_diagnostics(report.eigenvalues["w.weight"], refit)
    with pytest.raises(AssertionError):
        assert_figure_is_the_row(wrong, row.to_dict())


def test_the_html_drill_down_draws_the_rows_fit(
    case: tuple[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, report = case
    checked: list[str] = []
    fitted = {r["name"] for r in _fitted_rows(report)}
    original = html_report.layer_figures

    def spy(report: Any, row: Any, **kwargs: Any) -> Any:
        figures = original(report, row, **kwargs)
        if row["name"] in fitted:  # now: the report draws the next layer on the same figure
            what, fig = figures[0]
            assert what == "fit diagnostics"
            assert_figure_is_the_row(fig, dict(row))
            checked.append(str(row["name"]))
        return figures

    monkeypatch.setattr(html_report, "layer_figures", spy)
    page = html_report.report_html(report, diagnostics="all", dpi=20)
    assert "fit diagnostics of" in page
    assert set(checked) == fitted


def test_save_plots_draws_the_rows_fit(
    case: tuple[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    _, report = case
    rendered: list[Any] = []
    original = plot_save.render_figure

    def spy(fig: Any, fmt: str, dpi: float) -> bytes:
        rendered.append(fig)
        return original(fig, fmt, dpi)

    monkeypatch.setattr(plot_save, "render_figure", spy)
    saved = save_plots(report, tmp_path, kinds=["diagnostics"], dpi=20)
    rows = {r["name"]: r for r in report.details.to_dict("records")}
    assert len(saved) == len(rendered) == len(report.eigenvalues)
    for fig in rendered:
        name = fig.get_suptitle().split(": ", 1)[1].rsplit(" (", 1)[0]
        if rows[name]["status"] == "fitted":
            assert_figure_is_the_row(fig, rows[name])


def test_a_report_without_fits_is_drawn_from_its_rows(case: tuple[str, Any]) -> None:
    """keep_eigenvalues without keep_fits: the figures draw the row's numbers, no new fit."""
    name, report = case
    bare = type(report)(
        report.details, report.coverage, report.options, report.provenance, report.eigenvalues
    )
    assert not bare.fits
    for row in _fitted_rows(bare):
        (what, fig), _ = html_report.layer_figures(bare, row)
        assert what == "fit diagnostics"
        assert_figure_is_the_row(fig, row)
