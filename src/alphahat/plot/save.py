"""Saving figures of a report to files with stable, filesystem-safe names.

Per-layer files are ``{layer_id:03d}-{name}-{kind}.{format}`` (the name with every character
outside ``A–Z a–z 0–9 . _ + -`` replaced by ``_``; names longer than 120 characters are cut and
given an 8-hex-digit hash so they stay unique); model files are ``model-{kind}.{format}``.
Files are written atomically. One layer whose figure cannot be drawn is reported in
``SavedPlots.skipped`` and never stops the others.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from alphahat.fit import FitStatus, PowerLawFit
from alphahat.fit.esd import LayerFit, fit_threshold
from alphahat.layers import LayerFilter
from alphahat.plot._mpl import short_title
from alphahat.plot.layer import (
    DEFAULT_EVALS_THRESHOLD,
    DrawableFit,
    MarchenkoPasturLike,
    alpha_vs_xmin_plot,
    as_layer_fit,
    esd_linear_plot,
    esd_log_linear_plot,
    esd_log_log_plot,
    fit_diagnostics,
    ks_distance_plot,
    mp_fit_plot,
    randomized_esd_plot,
)
from alphahat.plot.model import correlation_flow_plot, layer_table, metric_histograms_plot
from alphahat.report.io import write_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from alphahat.report import Report

#: Per-layer figure kinds (``diagnostics`` is the four-panel figure of the first four views).
LAYER_PLOT_KINDS = (
    "diagnostics", "log-log", "lin-lin", "log-lin", "ks-distance", "alpha-xmin", "mp-fit",
    "randomized",
)  # fmt: skip
#: Model figure kinds.
MODEL_PLOT_KINDS = ("flow", "histograms")
PLOT_KINDS = LAYER_PLOT_KINDS + MODEL_PLOT_KINDS
PLOT_FORMATS = ("png", "svg")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_MAX_NAME = 120


def safe_file_stem(name: str) -> str:
    """``name`` with unsafe characters replaced by ``_``; long names cut and hashed."""
    stem = _UNSAFE.sub("_", name).strip("._") or "layer"
    if len(stem) > _MAX_NAME:
        digest = hashlib.blake2b(name.encode("utf-8"), digest_size=4).hexdigest()
        stem = f"{stem[:_MAX_NAME]}_{digest}"
    return stem


def plot_file_stem(layer_id: int, name: str, kind: str) -> str:
    """``{layer_id:03d}-{name}-{kind}`` with a filesystem-safe name."""
    return f"{int(layer_id):03d}-{safe_file_stem(name)}-{kind}"


def plot_file_name(layer_id: int, name: str, kind: str, fmt: str = "png") -> str:
    """``{layer_id:03d}-{name}-{kind}.{fmt}`` with a filesystem-safe name."""
    return f"{plot_file_stem(layer_id, name, kind)}.{fmt}"


def model_plot_file_stem(kind: str) -> str:
    """``model-{kind}``."""
    return f"model-{kind}"


@dataclass(frozen=True)
class SavedPlots:
    """What :func:`save_plots` wrote; iterating gives the files."""

    files: tuple[Path, ...]
    #: (layer name, reason) for layers that got no figure
    skipped: tuple[tuple[str, str], ...] = ()

    def __iter__(self) -> Iterator[Path]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)


def check_choice(name: str, values: Sequence[str], allowed: Sequence[str]) -> tuple[str, ...]:
    """``values`` (one or several) without repeats, each one of ``allowed`` (else ValueError)."""
    if isinstance(values, str):
        values = [values]
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ValueError(f"unknown {name} {bad}; choose from {', '.join(allowed)}")
    return tuple(dict.fromkeys(values))


def render_figure(fig: Figure, fmt: str, dpi: float) -> bytes:
    """PNG or SVG bytes of a figure (no timestamps or software tags: same input, same bytes)."""
    buffer = io.BytesIO()
    metadata: dict[str, Any] = (
        {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}
    )
    fig.savefig(buffer, format=fmt, dpi=dpi, metadata=metadata)
    return buffer.getvalue()


def figure_data_uri(fig: Figure, *, dpi: float = 80, colors: int | None = None) -> str:
    """A figure as a ``data:image/png;base64,…`` URI (for ``<img src>``).

    With ``colors``, the PNG is reduced to that many palette colours (about 4× smaller) and log
    axes lose their minor ticks (a quarter of the drawing time, unreadable at thumbnail size;
    the figure is changed).
    """
    import base64

    data = render_figure(fig, "png", dpi) if colors is None else _palette_png(fig, dpi, colors)
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _palette_png(fig: Figure, dpi: float, colors: int) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.ticker import FuncFormatter, NullLocator
    from PIL import Image  # a dependency of matplotlib

    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":
                axis.set_minor_locator(NullLocator())
                axis.set_major_formatter(FuncFormatter(power_of_ten_label))
    # drawn straight to pixels (no PNG encoded, then decoded, by savefig)
    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # type: ignore[no-untyped-call]
    width, height = canvas.get_width_height(physical=True)
    pixels = canvas.buffer_rgba()  # type: ignore[no-untyped-call]
    image = Image.frombuffer("RGBA", (width, height), pixels, "raw", "RGBA", 0, 1)
    # octree: 7× faster than median cut (and no "optimize" pass: 4× faster to encode), and the
    # files are smaller
    small = image.convert("RGB").quantize(colors=colors, method=Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    small.save(out, format="png")
    return out.getvalue()


_SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power_of_ten_label(value: float, _position: int | None = None) -> str:
    """Tick label of a log axis in plain text: ``10⁻³`` for powers of ten, else ``%g``.

    Plain Unicode instead of matplotlib's mathtext ``$10^{-3}$`` (parsed and laid out glyph
    by glyph: a quarter of a thumbnail's drawing time).
    """
    if not math.isfinite(value) or value <= 0:
        return ""
    exponent = math.log10(value)
    if abs(exponent - round(exponent)) < 1e-9:
        return "10" + str(int(round(exponent))).translate(_SUPERSCRIPTS)
    return f"{value:g}"


def layer_figure(
    kind: str,
    eigenvalues: npt.ArrayLike,
    *,
    title: str,
    fit: DrawableFit | None = None,
    evals_threshold: float = DEFAULT_EVALS_THRESHOLD,
    mp_fit: MarchenkoPasturLike | None = None,
    randomized_eigenvalues: npt.ArrayLike | None = None,
) -> Figure:
    """One per-layer figure of ``kind`` (see :data:`LAYER_PLOT_KINDS`) as a new Figure.

    ``fit`` is the fit the fit views draw (see :mod:`alphahat.plot.layer`); the histograms show
    the eigenvalues above its cut (above ``evals_threshold`` without one).
    """
    if kind == "diagnostics":
        return fit_diagnostics(eigenvalues, fit, evals_threshold=evals_threshold, title=title)
    if kind == "mp-fit":
        if mp_fit is None:
            raise ValueError("the 'mp-fit' figure needs a Marchenko–Pastur fit")
        ax = mp_fit_plot(eigenvalues, mp_fit)
    elif kind == "randomized":
        if randomized_eigenvalues is None:
            raise ValueError("the 'randomized' figure needs the randomized eigenvalues")
        cut = fit.threshold if isinstance(fit, LayerFit) else evals_threshold
        ax = randomized_esd_plot(eigenvalues, randomized_eigenvalues, evals_threshold=cut)
    else:
        draw = {
            "log-log": esd_log_log_plot,
            "lin-lin": esd_linear_plot,
            "log-lin": esd_log_linear_plot,
            "ks-distance": ks_distance_plot,
            "alpha-xmin": alpha_vs_xmin_plot,
        }.get(kind)
        if draw is None:
            raise ValueError(f"unknown layer figure kind {kind!r}; choose from {LAYER_PLOT_KINDS}")
        ax = draw(eigenvalues, as_layer_fit(eigenvalues, fit, evals_threshold))
    fig = ax.figure
    fig.suptitle(short_title(title, 80), fontsize=9)
    return fig  # type: ignore[return-value]


def _lookup(mapping: Mapping[str, Any], name: str, what: str) -> Any:
    if name not in mapping:
        raise ValueError(f"no {what} given for this layer")
    return mapping[name]


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def fit_of_row(
    row: Mapping[str, Any], eigenvalues: npt.ArrayLike, options: Mapping[str, Any]
) -> LayerFit:
    """The fit a layer's row reports, rebuilt over its eigenvalues: its α, x_min, x_max, D.

    For reports that kept the eigenvalues but not the fits: the figures then draw exactly the
    table's numbers (never a new fit). The sample is the analysis' (λ above
    max(``evals_threshold``, noise floor)), less the ``xmax`` or clipped top values; a row with
    ``Lambda`` is drawn as its truncated power law.
    """
    from alphahat.fit.alternatives import TailFit

    evals = np.sort(np.asarray(eigenvalues, dtype=np.float64))
    threshold = fit_threshold(
        evals, int(row["N"]), float(options.get("evals_threshold", DEFAULT_EVALS_THRESHOLD))
    )
    sample = evals[evals > threshold]
    nan = float("nan")
    if row.get("status") != "fitted" or _missing(row.get("alpha")):
        failed = PowerLawFit(nan, nan, nan, nan, nan, 0, sample.size, FitStatus.NO_VALID_XMIN)
        return LayerFit(failed, sample, threshold, status=failed.status, reason=str(row["reason"]))
    left_out = 0
    if not _missing(options.get("xmax")):
        left_out = abs(int(options["xmax"]))
    elif not _missing(row.get("num_fingers")):
        left_out = int(row["num_fingers"])
    spikes = int(row["num_pl_spikes"])
    alpha, xmin = float(row["alpha"]), float(row["xmin"])
    power_law = PowerLawFit(
        alpha, xmin, float(row["xmax"]), float(row["D"]), float(row["sigma"]), spikes,
        sample.size - left_out, FitStatus.FITTED,
    )  # fmt: skip
    truncated = None
    if not _missing(row.get("Lambda")):
        parameters = {"alpha": alpha, "Lambda": float(row["Lambda"])}
        truncated = TailFit("truncated_power_law", parameters, xmin, spikes, nan, FitStatus.FITTED)
    return LayerFit(
        power_law, sample, threshold, num_left_out=left_out, truncated=truncated,
        num_pl_spikes=spikes, searched_xmin=xmin,
    )  # fmt: skip


def _select(frame: pd.DataFrame, layers: Sequence[str | int] | None) -> pd.DataFrame:
    if not layers:
        return frame
    layer_filter = LayerFilter.parse(layers)
    ids: list[Any] = frame["layer_id"].tolist()
    names: list[Any] = frame["name"].tolist()
    kinds: list[Any] = frame["kind"].tolist()
    keep = [
        layer_filter.matches(int(i), str(n), str(k))
        for i, n, k in zip(ids, names, kinds, strict=True)
    ]
    chosen = frame[keep]
    if chosen.empty:
        raise ValueError(f"no analysed layer matches {list(layers)}")
    return chosen


def layer_inputs(
    report: Report,
    row: Mapping[str, Any],
    values: npt.NDArray[np.float64],
    kind: str,
    mp_fits: Mapping[str, MarchenkoPasturLike] | None = None,
    randomized: Mapping[str, npt.ArrayLike] | None = None,
) -> dict[str, Any]:
    """What one layer's figure of ``kind`` draws: the fit, the MP fit, the shuffled ESD.

    Each from the report's kept :class:`~alphahat.pipeline.LayerResult` first (what the
    analysis computed), else from the given mappings; the fit else from the row itself.
    """
    name = str(row["name"])
    result = getattr(report, "fits", {}).get(name)
    fit = result.fit if result is not None else fit_of_row(row, values, report.options)
    inputs: dict[str, Any] = {"fit": fit}
    if kind == "mp-fit":
        mp = result.mp_fit if result is not None else None
        if mp is None and mp_fits is not None:
            mp = _lookup(mp_fits, name, "Marchenko–Pastur fit")
        if mp is None:
            from alphahat.fit.marchenko_pastur import fit_marchenko_pastur

            # the fitted ESD's own matrices (FARMS: the submatrices), else the row's N × M
            N, M = (
                (result.spectrum.N, result.spectrum.M)
                if result is not None
                else (int(row["N"]), int(row["M"]))
            )
            mp = fit_marchenko_pastur(values, N=N, M=M)
        inputs["mp_fit"] = mp
    if kind == "randomized":
        shuffled = result.randomized if result is not None else None
        if shuffled is not None:
            inputs["randomized_eigenvalues"] = shuffled.eigenvalues
        elif randomized is not None:
            inputs["randomized_eigenvalues"] = _lookup(randomized, name, "randomized eigenvalues")
        else:
            raise ValueError("no randomized ESD: analyse with randomize=True and keep_fits=True")
    return inputs


def save_plots(
    report: Report,
    directory: str | Path,
    *,
    kinds: Sequence[str] = ("diagnostics",),
    layers: Sequence[str | int] | None = None,
    formats: Sequence[str] = ("png",),
    dpi: float = 100,
    mp_fits: Mapping[str, MarchenkoPasturLike] | None = None,
    randomized_eigenvalues: Mapping[str, npt.ArrayLike] | None = None,
) -> SavedPlots:
    """Draw the figures ``kinds`` of ``report`` and write them to ``directory`` (created).

    Args:
        report: an analysis report; per-layer kinds need its eigenvalues
            (``analyze(..., keep_fits=True)``, which also keeps each layer's fits, or
            ``keep_eigenvalues=True``). Every fit view draws the fit the layer's row reports:
            the kept fit, else the row's own numbers (:func:`fit_of_row`) — never a new fit.
        directory: output folder.
        kinds: any of :data:`PLOT_KINDS`.
        layers: which layers get per-layer figures: ids, names, glob patterns or kinds, as
            ``analyze``'s ``layers`` (default: every layer with eigenvalues).
        formats: ``"png"`` and/or ``"svg"``.
        dpi: resolution of PNG files.
        mp_fits: Marchenko–Pastur fits by layer name for ``mp-fit``, where the report kept
            none (``mp_fit=True`` with ``keep_fits=True`` keeps the table's; else each is
            fitted here).
        randomized_eigenvalues: ESDs of the randomized matrices by layer name, for
            ``randomized``, where the report kept none (``randomize=True`` with ``keep_fits``).

    Returns:
        :class:`SavedPlots`: the files written and the layers skipped, with reasons.
    """
    kinds = check_choice("plot kind(s)", kinds, PLOT_KINDS)
    formats = check_choice("plot format(s)", formats, PLOT_FORMATS)
    frame = layer_table(report)
    layer_kinds = [k for k in kinds if k in LAYER_PLOT_KINDS]
    evals: Mapping[str, Any] = getattr(report, "eigenvalues", {}) or {}
    if layer_kinds and not evals:
        raise ValueError(
            "per-layer figures need the eigenvalues: analyse with keep_fits=True (or "
            "keep_eigenvalues=True)"
        )
    kept = getattr(report, "fits", {}) or {}
    if (
        "randomized" in layer_kinds
        and randomized_eigenvalues is None
        and not any(r.randomized is not None for r in kept.values())
    ):
        raise ValueError(
            "the 'randomized' figure needs the ESD of each layer's element-shuffled matrix: "
            "analyse with randomize=True and keep_fits=True, or pass randomized_eigenvalues="
        )
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    skipped: list[tuple[str, str]] = []

    def write(fig: Figure, stem: str) -> None:
        for fmt in formats:
            path = out / f"{stem}.{fmt}"
            write_atomic(path, render_figure(fig, fmt, dpi))
            files.append(path)

    source = str(report.provenance.get("source", "")) if hasattr(report, "provenance") else ""
    for kind in kinds:
        if kind == "flow":
            flow = correlation_flow_plot(report, title=f"correlation flow — {source}")
            write(flow, model_plot_file_stem(kind))
        elif kind == "histograms":
            write(metric_histograms_plot(report, title=source or None), model_plot_file_stem(kind))
    if not layer_kinds:
        return SavedPlots(tuple(files))
    rows: list[dict[Any, Any]] = _select(frame, layers).to_dict("records")
    for row in rows:
        name, layer_id = str(row["name"]), int(row["layer_id"])
        if name not in evals:
            skipped.append((name, f"no eigenvalues ({row['status']}: {row['reason']})"))
            continue
        values = np.asarray(evals[name], dtype=np.float64)
        title = f"{layer_id}: {name} ({row['kind']}, {row['N']}×{row['M']})"
        for kind in layer_kinds:
            try:
                inputs = layer_inputs(report, row, values, kind, mp_fits, randomized_eigenvalues)
                fig = layer_figure(kind, values, title=title, **inputs)
            except (ValueError, ArithmeticError) as exc:
                skipped.append((name, f"no {kind!r} figure: {exc}"))
                continue
            write(fig, plot_file_stem(layer_id, name, kind))
    return SavedPlots(tuple(files), tuple(skipped))


__all__ = [
    "LAYER_PLOT_KINDS",
    "MODEL_PLOT_KINDS",
    "PLOT_FORMATS",
    "PLOT_KINDS",
    "SavedPlots",
    "check_choice",
    "figure_data_uri",
    "fit_of_row",
    "layer_figure",
    "layer_inputs",
    "model_plot_file_stem",
    "plot_file_name",
    "plot_file_stem",
    "render_figure",
    "safe_file_stem",
    "save_plots",
]
