"""Figures on real layers (MiniLM-L6, the MTCNN O-Net conv net): content, files, no global state.

Expected values come from closed forms (the power-law density at x_min, the MP law), from the
analysis' own table (x_min, x_max, α, D of the same fit) and from numpy, never from the figure
code itself.
"""

from __future__ import annotations

import importlib.util
import math
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import alphahat  # noqa: E402
from alphahat.plot import (  # noqa: E402
    FIT_LINE_GID,
    MP_LINE_GID,
    alpha_vs_xmin_plot,
    correlation_flow_plot,
    diagnostic_fit,
    esd_linear_plot,
    esd_log_linear_plot,
    esd_log_log_plot,
    fit_diagnostics,
    ks_distance_plot,
    metric_histograms_plot,
    model_comparison_plot,
    mp_fit_plot,
    new_figure,
    randomized_esd_plot,
    save_plots,
)
from alphahat.plot.save import plot_file_name, render_figure, safe_file_stem  # noqa: E402

THRESHOLD = 1e-5


# --------------------------------------------------------------------------------------------
# fixtures: a few real layers
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm_small(minilm_block0_report: Any) -> Any:
    """MiniLM-L6's first encoder block (6 linear layers), with eigenvalues."""
    return minilm_block0_report


def _onet_path() -> Path | None:
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "data" / "onet.pt"
    return path if path.exists() else None


def _seeded_conv_net() -> dict[str, np.ndarray]:
    """O-Net's shapes with seeded heavy-tailed weights (where facenet-pytorch is missing)."""
    rng = np.random.default_rng(11)
    shapes = {
        "conv1.weight": (32, 3, 3, 3), "conv2.weight": (64, 32, 3, 3),
        "conv3.weight": (64, 64, 3, 3), "conv4.weight": (128, 64, 2, 2),
        "dense5.weight": (256, 1152), "dense6_3.weight": (10, 256),
    }  # fmt: skip
    return {k: rng.standard_t(3.0, size=s).astype(np.float32) for k, s in shapes.items()}


@pytest.fixture(scope="module")
def conv_report() -> Any:
    """The MTCNN O-Net (4 Conv2d + 2 Linear layers, real trained weights of facenet-pytorch)."""
    path = _onet_path()
    if path is None or importlib.util.find_spec("torch") is None:
        return alphahat.analyze(_seeded_conv_net(), keep_eigenvalues=True)
    return alphahat.analyze(path, keep_eigenvalues=True)


def _layer(report: Any, kind: str) -> tuple[dict[str, Any], np.ndarray]:
    rows = report.details[(report.details["kind"] == kind) & (report.details["status"] == "fitted")]
    row = rows.iloc[0].to_dict()
    return row, np.asarray(report.eigenvalues[row["name"]])


@pytest.fixture(
    scope="module",
    params=[("minilm", "linear"), ("onet", "conv2d"), ("onet", "linear")],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def real_layer(request: pytest.FixtureRequest) -> tuple[dict[str, Any], np.ndarray]:
    model, kind = request.param
    report = request.getfixturevalue("minilm_small" if model == "minilm" else "conv_report")
    return _layer(report, kind)


def _line(ax: Any, gid: str) -> Any:
    lines = [line for line in ax.get_lines() if line.get_gid() == gid]
    assert len(lines) == 1, f"expected one line {gid!r}, got {len(lines)}"
    return lines[0]


def _vlines_x(ax: Any) -> list[float]:
    """x positions of the vertical lines (axvline) of an Axes."""
    xs = []
    for line in ax.get_lines():
        x = np.asarray(line.get_xdata(), dtype=float)
        if x.size == 2 and x[0] == x[1] and list(line.get_ydata()) == [0, 1]:
            xs.append(float(x[0]))
    return xs


# --------------------------------------------------------------------------------------------
# per-layer figures
# --------------------------------------------------------------------------------------------


def test_diagnostic_fit_is_the_analysis_fit(real_layer: tuple[dict[str, Any], np.ndarray]) -> None:
    row, evals = real_layer
    fit = diagnostic_fit(evals)
    assert fit.xmin == pytest.approx(row["xmin"], rel=1e-12)
    assert fit.alpha == pytest.approx(row["alpha"], rel=1e-12)
    assert fit.D == pytest.approx(row["D"], rel=1e-12)
    # the all-distances curve has a D for every candidate but the last
    assert np.isfinite(fit.Ds).sum() >= fit.n - 1 - 1


def test_log_log_esd(real_layer: tuple[dict[str, Any], np.ndarray]) -> None:
    row, evals = real_layer
    ax = esd_log_log_plot(evals)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "eigenvalue" in ax.get_xlabel() and "density" in ax.get_ylabel()
    line = _line(ax, FIT_LINE_GID)
    x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    # the fitted line spans x_min … x_max of the analysis
    assert x.min() == pytest.approx(row["xmin"], rel=1e-12)
    assert x.max() == pytest.approx(row["xmax"], rel=1e-12)
    # closed form at x_min: (n_tail / n) (α − 1) / x_min, counted here with numpy
    sample = evals[evals > THRESHOLD]
    n_tail = int(np.count_nonzero(sample >= row["xmin"]))
    assert n_tail == row["num_pl_spikes"]
    expected = n_tail / sample.size * (row["alpha"] - 1) / row["xmin"]
    assert y[0] == pytest.approx(expected, rel=1e-12)
    # slope −α on log-log axes
    slope = np.polyfit(np.log(x), np.log(y), 1)[0]
    assert slope == pytest.approx(-row["alpha"], rel=1e-9)
    # x_min and x_max are marked
    marks = _vlines_x(ax)
    assert any(math.isclose(m, row["xmin"], rel_tol=1e-12) for m in marks)
    assert any(math.isclose(m, row["xmax"], rel_tol=1e-12) for m in marks)
    # the histogram is a density of the fitted sample: area 1
    patch = ax.patches[0]
    verts = patch.get_path().vertices
    assert verts[:, 0].min() == pytest.approx(sample.min()) and verts[:, 0].max() == pytest.approx(
        sample.max()
    )


def test_lin_lin_and_log_lin_esd(real_layer: tuple[dict[str, Any], np.ndarray]) -> None:
    row, evals = real_layer
    ax = esd_linear_plot(evals)
    assert ax.get_xscale() == "linear" and ax.get_yscale() == "linear"
    x = np.asarray(_line(ax, FIT_LINE_GID).get_xdata())
    assert (x.min(), x.max()) == pytest.approx((row["xmin"], row["xmax"]), rel=1e-12)

    ax = esd_log_linear_plot(evals)
    assert ax.get_xlabel() == "log₁₀ λ"
    line = _line(ax, FIT_LINE_GID)
    u, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    assert (u.min(), u.max()) == pytest.approx(
        (math.log10(row["xmin"]), math.log10(row["xmax"])), rel=1e-12
    )
    # density of log₁₀ λ at x_min: (n_tail/n)(α − 1) ln 10
    sample = evals[evals > THRESHOLD]
    expected = row["num_pl_spikes"] / sample.size * (row["alpha"] - 1) * math.log(10)
    assert y[0] == pytest.approx(expected, rel=1e-9)
    # its area over the tail is the tail fraction times (1 − (x_max/x_min)^(1−α))
    area = np.trapezoid(y, u)
    ratio = (row["xmax"] / row["xmin"]) ** (1 - row["alpha"])
    assert area == pytest.approx(row["num_pl_spikes"] / sample.size * (1 - ratio), rel=1e-3)


def test_ks_distance_and_alpha_vs_xmin(real_layer: tuple[dict[str, Any], np.ndarray]) -> None:
    row, evals = real_layer
    ax = ks_distance_plot(evals)
    assert ax.get_xscale() == "log"
    assert ax.get_ylabel() == "KS distance D" and "xₘᵢₙ" in ax.get_xlabel()
    curve, point = ax.get_lines()[0], ax.get_lines()[-1]
    ds = np.asarray(curve.get_ydata())
    # the chosen x_min is where the curve is lowest, and it is the analysis' (x_min, D)
    assert ds.min() == pytest.approx(row["D"], rel=1e-12)
    assert float(np.asarray(curve.get_xdata())[np.argmin(ds)]) == pytest.approx(row["xmin"])
    assert (point.get_xdata()[0], point.get_ydata()[0]) == pytest.approx((row["xmin"], row["D"]))

    ax = alpha_vs_xmin_plot(evals)
    curve = next(line for line in ax.get_lines() if len(line.get_xdata()) > 2)
    xs, alphas = np.asarray(curve.get_xdata()), np.asarray(curve.get_ydata())
    at = int(np.argmin(np.abs(xs - row["xmin"])))
    assert alphas[at] == pytest.approx(row["alpha"], rel=1e-12)
    # an independent α at the first candidate: the Hill/MLE formula on the whole sample
    sample = np.sort(evals[evals > THRESHOLD])
    mle = 1 + sample.size / np.sum(np.log(sample / sample[0]))
    assert alphas[0] == pytest.approx(mle, rel=1e-10)


def test_fit_diagnostics_has_the_four_views(minilm_small: Any) -> None:
    _, evals = _layer(minilm_small, "linear")
    fig = fit_diagnostics(evals, title="a layer")
    titles = [ax.get_title() for ax in fig.axes]
    assert len(fig.axes) == 4
    for start in ("log-log ESD", "lin-lin ESD", "log-lin ESD", "D vs xₘᵢₙ"):
        assert any(t.startswith(start) for t in titles), titles
    assert fig._suptitle is not None and fig._suptitle.get_text() == "a layer"
    # drawing into a given figure reuses it
    again = new_figure()
    assert fit_diagnostics(evals, fig=again) is again and len(again.axes) == 4


def test_failed_fit_draws_histograms_without_a_line() -> None:
    evals = np.full(30, 2.0)  # constant: no power law can be fitted
    ax = esd_log_log_plot(evals)
    assert not [line for line in ax.get_lines() if line.get_gid() == FIT_LINE_GID]
    assert "fit" in ax.get_title()
    with pytest.raises(ValueError, match="no eigenvalues > evals_threshold"):
        esd_log_log_plot(np.zeros(10))
    with pytest.raises(ValueError, match="NaN or infinite"):
        esd_linear_plot([1.0, np.nan, 2.0])


# --------------------------------------------------------------------------------------------
# MP fit and randomized ESD (closed-form stand-in and a numpy shuffle written here)
# --------------------------------------------------------------------------------------------


class ClosedFormMP:
    """MP law of the eigenvalues λ = σᵢ² of an N × M matrix (N ≥ M) with i.i.d. entries.

    s² (the entries' variance) from the bulk: Σλ / (N·M) over the eigenvalues below the first
    estimate of the edge. ρ(λ) = √((λ₊ − λ)(λ − λ₋)) / (2π N s² y λ), λ± = N s² (1 ± √y)²,
    y = M/N.
    """

    def __init__(self, evals: np.ndarray, N: int, M: int) -> None:
        self.N, self.M, self.y = N, M, M / N
        s2 = float(np.sum(evals)) / (N * M)
        bulk = evals[evals <= N * s2 * (1 + math.sqrt(self.y)) ** 2 * 1.05]
        s2 = float(np.mean(bulk)) / N
        self.sigma = math.sqrt(s2)
        self.bulk_min = N * s2 * (1 - math.sqrt(self.y)) ** 2
        self.bulk_max = N * s2 * (1 + math.sqrt(self.y)) ** 2
        self.num_spikes = int(np.count_nonzero(evals > self.bulk_max))

    def density(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        inside = (x > self.bulk_min) & (x < self.bulk_max)
        out = np.zeros_like(x)
        v = x[inside]
        out[inside] = np.sqrt((self.bulk_max - v) * (v - self.bulk_min)) / (
            2 * math.pi * self.N * self.sigma**2 * self.y * v
        )
        return out


def test_mp_fit_plot_with_a_closed_form_fit() -> None:
    rng = np.random.default_rng(5)
    N, M = 600, 200
    W = rng.normal(size=(N, M))
    for k, strength in enumerate((12.0, 18.0)):  # two rank-one spikes far above the bulk
        u, v = rng.normal(size=N), rng.normal(size=M)
        W += strength * np.outer(u / np.linalg.norm(u), v / np.linalg.norm(v)) * math.sqrt(N)
        del k
    evals = np.linalg.svd(W, compute_uv=False) ** 2
    mp = ClosedFormMP(evals, N, M)
    assert mp.num_spikes == 2
    grid = np.linspace(mp.bulk_min, mp.bulk_max, 20001)
    assert np.trapezoid(mp.density(grid), grid) == pytest.approx(1.0, abs=2e-3)
    ax = mp_fit_plot(evals, mp)
    line = _line(ax, MP_LINE_GID)
    x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    assert (x.min(), x.max()) == pytest.approx((mp.bulk_min, mp.bulk_max))
    # the MP density scaled to the bulk's share of the eigenvalues (2 spikes of 200)
    np.testing.assert_allclose(y, mp.density(x) * (M - 2) / M)
    assert any(math.isclose(m, mp.bulk_max) for m in _vlines_x(ax))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("2 spikes") for t in labels), labels
    assert "2 spikes" in ax.get_title()
    assert "eigenvalue" in ax.get_xlabel()


def test_mp_fit_plot_with_the_library_fit(minilm_small: Any) -> None:
    mp_module = pytest.importorskip("alphahat.fit.marchenko_pastur")
    row, evals = _layer(minilm_small, "linear")
    fit = mp_module.fit_marchenko_pastur(evals, N=int(row["N"]), M=int(row["M"]))
    ax = mp_fit_plot(evals, fit)
    x = np.asarray(_line(ax, MP_LINE_GID).get_xdata())
    assert (x.min(), x.max()) == pytest.approx((fit.bulk_min, fit.bulk_max))


def test_randomized_esd_plot_of_a_shuffled_real_matrix(minilm_path: Path) -> None:
    from safetensors import safe_open

    name = "encoder.layer.0.attention.self.query.weight"
    with safe_open(str(minilm_path), "np") as f:
        W = f.get_tensor(name).astype(np.float64)
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(W.reshape(-1)).reshape(W.shape)
    evals = np.linalg.svd(W, compute_uv=False) ** 2
    random_evals = np.linalg.svd(shuffled, compute_uv=False) ** 2
    # shuffling keeps the entries, so the Frobenius norm Σλ
    assert random_evals.sum() == pytest.approx(evals.sum(), rel=1e-10)
    ax = randomized_esd_plot(evals, random_evals)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "original ESD" in labels and any(t.startswith("randomized") for t in labels)
    marks = _vlines_x(ax)
    assert marks == pytest.approx([np.log10(evals.max()), np.log10(random_evals.max())])
    # the trained layer's largest eigenvalue stands out of the shuffled (random) spectrum
    assert evals.max() > 2 * random_evals.max()


# --------------------------------------------------------------------------------------------
# model figures
# --------------------------------------------------------------------------------------------


def test_correlation_flow(conv_report: Any) -> None:
    fig = correlation_flow_plot(conv_report)
    top, bottom = fig.axes
    details = conv_report.details
    fitted = details[details["status"] == "fitted"]
    xs = np.concatenate([c.get_offsets()[:, 0] for c in top.collections if len(c.get_offsets())])
    ys = np.concatenate([c.get_offsets()[:, 1] for c in top.collections if len(c.get_offsets())])
    order = np.argsort(xs)
    np.testing.assert_array_equal(xs[order], fitted["layer_id"].to_numpy(dtype=float))
    np.testing.assert_allclose(ys[order], fitted["alpha"].to_numpy(dtype=float))
    labels = [t.get_text() for t in top.get_legend().get_texts()]
    assert {"conv2d", "linear"} <= set(labels)
    assert bottom.get_ylabel() == "log₁₀ λₘₐₓ" and "layer" in bottom.get_xlabel()
    # one colour per kind
    colours = {tuple(c.get_facecolor()[0]) for c in top.collections if len(c.get_offsets())}
    assert len(colours) == 2


def test_metric_histograms(minilm_small: Any) -> None:
    fig = metric_histograms_plot(minilm_small)
    left, right = fig.axes
    fitted = int((minilm_small.details["status"] == "fitted").sum())
    heights = [p.get_height() for p in left.patches if hasattr(p, "get_height")]
    # the band patch (2 ≤ α ≤ 6) and the bars, which count every fitted layer once
    band = [p for p in left.patches if p.get_label() == "2 ≤ α ≤ 6"]
    assert len(band) == 1
    extent = band[0].get_path().transformed(band[0].get_patch_transform()).vertices[:, 0]
    assert (extent.min(), extent.max()) == pytest.approx((2.0, 6.0))
    bars = [p for p in left.patches if p not in band]
    assert sum(p.get_height() for p in bars) == fitted and heights
    assert right.get_xlabel() == "log₁₀ λₘₐₓ"


def test_model_comparison(minilm_small: Any, conv_report: Any) -> None:
    fig = model_comparison_plot({"MiniLM block 0": minilm_small, "O-Net": conv_report})
    assert len(fig.axes) == 4
    for ax in fig.axes[:2]:
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "MiniLM block 0" in labels and "O-Net" in labels
    # flows against relative depth 0 … 1
    flow = fig.axes[2].get_lines()
    assert len(flow) == 2
    for line in flow:
        x = np.asarray(line.get_xdata())
        assert x.min() >= 0 and x.max() <= 1
    with pytest.raises(ValueError, match="at least one"):
        model_comparison_plot({})


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------


def test_save_plots_writes_valid_png_and_svg_with_stable_names(
    conv_report: Any, tmp_path: Path
) -> None:
    from PIL import Image

    saved = save_plots(
        conv_report,
        tmp_path,
        kinds=["log-log", "ks-distance", "flow"],
        layers=["conv2*"],
        formats=["png", "svg"],
        dpi=50,
    )
    names = sorted(p.name for p in saved)
    assert names == sorted(
        [
            "model-flow.png", "model-flow.svg",
            "001-conv2.weight-log-log.png", "001-conv2.weight-log-log.svg",
            "001-conv2.weight-ks-distance.png", "001-conv2.weight-ks-distance.svg",
        ]
    )  # fmt: skip
    for path in saved:
        assert path.exists() and path.stat().st_size > 1000
        if path.suffix == ".png":
            with Image.open(path) as image:
                image.verify()
                assert image.format == "PNG"
        else:
            root = ET.parse(path).getroot()
            assert root.tag.endswith("svg")
    # nothing else (no temporary files) in the folder
    assert sorted(p.name for p in tmp_path.iterdir()) == names


def test_save_plots_selection_and_errors(conv_report: Any, tmp_path: Path) -> None:
    saved = save_plots(conv_report, tmp_path, kinds="lin-lin", layers=["conv1.weight"], dpi=30)
    assert [p.name for p in saved] == ["000-conv1.weight-lin-lin.png"]
    with pytest.raises(ValueError, match="unknown plot kind"):
        save_plots(conv_report, tmp_path, kinds=["pie"])
    with pytest.raises(ValueError, match="unknown plot format"):
        save_plots(conv_report, tmp_path, formats=["gif"])
    with pytest.raises(ValueError, match="no analysed layer matches"):
        save_plots(conv_report, tmp_path, layers=["nope"])
    with pytest.raises(ValueError, match="randomized_eigenvalues"):
        save_plots(conv_report, tmp_path, kinds=["randomized"])
    no_evals = type(conv_report)(conv_report.details, conv_report.coverage, conv_report.options)
    with pytest.raises(ValueError, match="keep_eigenvalues=True"):
        save_plots(no_evals, tmp_path)
    # model figures need no eigenvalues
    assert [p.name for p in save_plots(no_evals, tmp_path, kinds=["histograms"])] == [
        "model-histograms.png"
    ]
    # a layer whose eigenvalues are missing is reported, the others drawn
    partial = type(conv_report)(
        conv_report.details,
        conv_report.coverage,
        conv_report.options,
        eigenvalues={"conv1.weight": conv_report.eigenvalues["conv1.weight"]},
    )
    saved = save_plots(partial, tmp_path / "p", kinds=["log-lin"], layers=["conv1*", "conv2*"])
    assert [p.name for p in saved] == ["000-conv1.weight-log-lin.png"]
    assert [name for name, _ in saved.skipped] == ["conv2.weight"]


def test_save_plots_mp_and_randomized_from_given_inputs(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    W = rng.standard_t(4, size=(300, 100))
    report = alphahat.analyze({"w": W}, keep_eigenvalues=True)
    evals = report.eigenvalues["w"]
    shuffled = rng.permutation(W.reshape(-1)).reshape(W.shape)
    saved = save_plots(
        report,
        tmp_path,
        kinds=["mp-fit", "randomized"],
        mp_fits={"w": ClosedFormMP(evals, 300, 100)},
        randomized_eigenvalues={"w": np.linalg.svd(shuffled, compute_uv=False) ** 2},
        dpi=30,
    )
    assert [p.name for p in saved] == ["000-w-mp-fit.png", "000-w-randomized.png"]


def test_file_names_are_safe_and_unique() -> None:
    assert safe_file_stem("model.layers.0.self_attn/q:proj weight") == (
        "model.layers.0.self_attn_q_proj_weight"
    )
    assert safe_file_stem("../../etc/passwd") == "etc_passwd"
    long_a, long_b = "a" * 200 + ".x", "a" * 200 + ".y"
    assert safe_file_stem(long_a) != safe_file_stem(long_b)
    assert len(safe_file_stem(long_a)) <= 130
    assert plot_file_name(7, "encoder.layer.0.weight", "log-log", "svg") == (
        "007-encoder.layer.0.weight-log-log.svg"
    )
    assert re.fullmatch(r"[A-Za-z0-9._+-]+", plot_file_name(1234, "ü/é\\x", "flow"))


def test_rendering_is_deterministic(minilm_small: Any) -> None:
    _, evals = _layer(minilm_small, "linear")
    first = render_figure(esd_log_log_plot(evals).figure, "png", 40)
    second = render_figure(esd_log_log_plot(evals).figure, "png", 40)
    assert first == second
    svg = render_figure(esd_log_log_plot(evals).figure, "svg", 40)
    assert b"<dc:date>" not in svg


def test_plots_touch_no_global_matplotlib_state(tmp_path: Path) -> None:
    code = f"""
        import sys
        import alphahat.plot, alphahat.report.html, alphahat.html_report
        assert "matplotlib" not in sys.modules, "import alphahat.plot imported matplotlib"
        import numpy as np
        import matplotlib
        backend = matplotlib.rcParams._get_backend_or_none()
        # (reading rcParams["backend"] itself would resolve the backend through pyplot)
        def settings():
            return {{k: matplotlib.rcParams[k] for k in matplotlib.rcParams if k != "backend"}}
        rc = settings()
        ax = alphahat.plot.esd_log_log_plot(np.random.default_rng(0).pareto(2, 500) + 1)
        ax.figure.savefig({str(tmp_path / "x.png")!r})
        assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
        assert matplotlib.rcParams._get_backend_or_none() == backend
        assert settings() == rc
        print("ok")
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_missing_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from alphahat.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(MissingDependencyError, match=r"alphahat\[plot\]"):
        new_figure()


def test_plot_command(minilm_path: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from alphahat.cli import app

    out = tmp_path / "figs"
    result = CliRunner().invoke(
        app,
        [
            "plot", str(minilm_path), "--layer", "5", "-k", "log-log", "-k", "histograms",
            "-f", "png", "-f", "svg", "-o", str(out), "-q", "--dpi", "40",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "005-encoder.layer.0.attention.self.key.weight-log-log.png",
        "005-encoder.layer.0.attention.self.key.weight-log-log.svg",
        "model-histograms.png",
        "model-histograms.svg",
    ]
    bad = CliRunner().invoke(app, ["plot", str(minilm_path), "--layer", "nothing-like-this"])
    assert bad.exit_code in (1, 2)


def test_randomized_figure_from_the_cli_uses_analyze_s_shuffles(minilm_path, tmp_path, monkeypatch):
    from PIL import Image
    from typer.testing import CliRunner

    from alphahat.analysis import randomized_eigenvalues
    from alphahat.cli import app

    layers = ["encoder.layer.0.attention.self.query.weight", "encoder.layer.0.output.dense.weight"]
    shuffled = randomized_eigenvalues(minilm_path, layers=layers, seed=7)
    report = alphahat.analyze(minilm_path, layers=layers, randomize=True, seed=7)
    assert sorted(shuffled) == sorted(layers)
    for name, value in zip(report.details["name"], report.details["max_rand_eval"], strict=True):
        assert float(shuffled[name].max()) == pytest.approx(float(value), rel=1e-12)
        # a shuffle keeps the entries, so the trace Σλ = ‖W‖²_F is unchanged
        frobenius = 10 ** float(report.details.set_index("name").loc[name, "log_norm"])
        assert float(shuffled[name].sum()) == pytest.approx(frobenius, rel=1e-9)
    import alphahat.pipeline.walk as walk

    loads: list[str] = []
    real_load = walk.load_layer

    def counting_load(plan, device=None):  # type: ignore[no-untyped-def]
        loads.append(plan.ref.name)
        return real_load(plan, device)

    monkeypatch.setattr(walk, "load_layer", counting_load)
    result = CliRunner().invoke(
        app,
        [
            "plot", str(minilm_path), "-l", layers[0], "-k", "randomized",
            "--seed", "7", "-o", str(tmp_path), "-q",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert loads == [layers[0]]  # the figure draws the analysis' own shuffles: one read
    (png,) = tmp_path.glob("*-randomized.png")
    assert layers[0] in png.name
    with Image.open(png) as image:
        image.verify()


def test_figures_fit_the_sample_the_table_fitted_on_huge_rank_deficient_layers(tmp_path):
    from alphahat.metrics import fit_threshold

    rng = np.random.default_rng(11)
    # rank 40 with entries ~1e13: the SVD's rounding noise in the 60 null directions gives
    # eigenvalues far above the 1e-5 cut, which the analysis leaves out (metrics.noise_floor)
    weight = 1e13 * rng.standard_normal((200, 40)) @ rng.standard_normal((40, 100)) / 40
    report = alphahat.analyze({"big.weight": weight}, keep_eigenvalues=True)
    row = report.details.iloc[0]
    assert row["status"] == "fitted"
    evals = report.eigenvalues["big.weight"]
    cut = fit_threshold(evals, int(row["N"]), 1e-5)
    assert cut > 1e-5 and int((evals > 1e-5).sum()) > int((evals > cut).sum())
    fit = diagnostic_fit(evals, evals_threshold=cut)
    assert fit.alpha == pytest.approx(float(row["alpha"]), rel=1e-12)
    assert fit.xmin == pytest.approx(float(row["xmin"]), rel=1e-12)
    naive = diagnostic_fit(evals, evals_threshold=1e-5)  # the noise changes the fit
    assert naive.n != fit.n
    saved = save_plots(report, tmp_path, kinds=["log-log"])
    assert len(saved.files) == 1 and not saved.skipped


def test_legends_are_off_the_data(minilm_small: Any) -> None:
    """The diagnostics figure: one legend in a row above the panels; the log-log panel alone:
    its legend covers none of the drawn ESD or fitted line, over an opaque-enough frame."""
    _, evals = _layer(minilm_small, "linear")
    fig = fit_diagnostics(evals, width=8.0, height=5.6)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    assert all(ax.get_legend() is None for ax in fig.axes)
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[0] == "ESD" and any(t.startswith("power law") for t in texts)
    for ax in fig.axes:  # above every panel and its title
        assert box.y0 >= ax.get_tightbbox(renderer).y1 - 1
    assert box.y1 <= fig.bbox.y1 and box.x0 >= 0 and box.x1 <= fig.bbox.x1

    ax = esd_log_log_plot(evals)
    ax.figure.canvas.draw()
    legend = ax.get_legend()
    assert legend is not None and legend.get_frame().get_alpha() >= 0.8
    box = legend.get_window_extent(ax.figure.canvas.get_renderer())
    line = _line(ax, FIT_LINE_GID)
    points = ax.transData.transform(np.column_stack([line.get_xdata(), line.get_ydata()]))
    heights = ax.patches[0].get_path().vertices
    points = np.vstack([points, ax.transData.transform(heights[np.isfinite(heights).all(1)])])
    inside = (
        (points[:, 0] > box.x0) & (points[:, 0] < box.x1)
        & (points[:, 1] > box.y0) & (points[:, 1] < box.y1)
    )  # fmt: skip
    assert not inside.any(), points[inside]
