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
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from alphahat.layers import LayerFilter
from alphahat.metrics import fit_threshold
from alphahat.plot._mpl import short_title
from alphahat.plot.layer import (
    DEFAULT_EVALS_THRESHOLD,
    MarchenkoPasturLike,
    alpha_vs_xmin_plot,
    diagnostic_fit,
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


def marchenko_pastur_fitter() -> Callable[..., Any] | None:
    """``alphahat.fit.marchenko_pastur.fit_marchenko_pastur`` when this version has it."""
    try:
        from alphahat.fit import marchenko_pastur  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None
    fitter = getattr(marchenko_pastur, "fit_marchenko_pastur", None)
    return fitter if callable(fitter) else None


def _check_choice(name: str, values: Sequence[str], allowed: Sequence[str]) -> tuple[str, ...]:
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


def layer_figure(
    kind: str,
    eigenvalues: npt.ArrayLike,
    *,
    title: str,
    evals_threshold: float = DEFAULT_EVALS_THRESHOLD,
    mp_fit: MarchenkoPasturLike | None = None,
    randomized_eigenvalues: npt.ArrayLike | None = None,
) -> Figure:
    """One per-layer figure of ``kind`` (see :data:`LAYER_PLOT_KINDS`) as a new Figure."""
    if kind == "diagnostics":
        return fit_diagnostics(eigenvalues, evals_threshold=evals_threshold, title=title)
    if kind == "mp-fit":
        if mp_fit is None:
            raise ValueError("the 'mp-fit' figure needs a Marchenko–Pastur fit")
        ax = mp_fit_plot(eigenvalues, mp_fit)
    elif kind == "randomized":
        if randomized_eigenvalues is None:
            raise ValueError("the 'randomized' figure needs the randomized eigenvalues")
        ax = randomized_esd_plot(
            eigenvalues, randomized_eigenvalues, evals_threshold=evals_threshold
        )
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
        fit = diagnostic_fit(eigenvalues, evals_threshold=evals_threshold)
        ax = draw(eigenvalues, fit, evals_threshold=evals_threshold)
    fig = ax.figure
    fig.suptitle(short_title(title, 80), fontsize=9)
    return fig  # type: ignore[return-value]


def _lookup(mapping: Mapping[str, Any], name: str, what: str) -> Any:
    if name not in mapping:
        raise ValueError(f"no {what} given for this layer")
    return mapping[name]


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
            (``analyze(..., keep_eigenvalues=True)``).
        directory: output folder.
        kinds: any of :data:`PLOT_KINDS`.
        layers: which layers get per-layer figures: ids, names, glob patterns or kinds, as
            ``analyze``'s ``layers`` (default: every layer with eigenvalues).
        formats: ``"png"`` and/or ``"svg"``.
        dpi: resolution of PNG files.
        mp_fits: Marchenko–Pastur fits by layer name for ``mp-fit`` (default: fitted here with
            ``alphahat.fit.marchenko_pastur`` where this version has it).
        randomized_eigenvalues: ESDs of the randomized matrices by layer name, for
            ``randomized``.

    Returns:
        :class:`SavedPlots`: the files written and the layers skipped, with reasons.
    """
    kinds = _check_choice("plot kind(s)", kinds, PLOT_KINDS)
    formats = _check_choice("plot format(s)", formats, PLOT_FORMATS)
    frame = layer_table(report)
    layer_kinds = [k for k in kinds if k in LAYER_PLOT_KINDS]
    evals: Mapping[str, Any] = getattr(report, "eigenvalues", {}) or {}
    if layer_kinds and not evals:
        raise ValueError(
            "per-layer figures need the eigenvalues: analyse with keep_eigenvalues=True"
        )
    fit_mp = None
    if "mp-fit" in layer_kinds and mp_fits is None:
        fit_mp = marchenko_pastur_fitter()
        if fit_mp is None:
            raise ValueError(
                "the 'mp-fit' figure needs Marchenko–Pastur fits: pass mp_fits= "
                "(alphahat.fit.marchenko_pastur is not available in this version)"
            )
    if "randomized" in layer_kinds and randomized_eigenvalues is None:
        raise ValueError(
            "the 'randomized' figure needs randomized_eigenvalues= (the ESD of each layer's "
            "element-shuffled matrix)"
        )
    threshold = float(report.options.get("evals_threshold", DEFAULT_EVALS_THRESHOLD))
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
                mp_fit = None
                if kind == "mp-fit":
                    if mp_fits is not None:
                        mp_fit = _lookup(mp_fits, name, "Marchenko–Pastur fit")
                    elif fit_mp is not None:
                        mp_fit = fit_mp(values, N=int(row["N"]), M=int(row["M"]))
                random = None
                if kind == "randomized" and randomized_eigenvalues is not None:
                    random = _lookup(randomized_eigenvalues, name, "randomized eigenvalues")
                fig = layer_figure(
                    kind,
                    values,
                    title=title,
                    evals_threshold=fit_threshold(values, int(row["N"]), threshold),
                    mp_fit=mp_fit,
                    randomized_eigenvalues=random,
                )
            except (ValueError, ArithmeticError) as exc:
                message = f"no {kind!r} figure: {exc}"
                skipped.append((name, message))
                continue
            write(fig, plot_file_stem(layer_id, name, kind))
    return SavedPlots(tuple(files), tuple(skipped))


__all__ = [
    "LAYER_PLOT_KINDS",
    "MODEL_PLOT_KINDS",
    "PLOT_FORMATS",
    "PLOT_KINDS",
    "SavedPlots",
    "layer_figure",
    "marchenko_pastur_fitter",
    "model_plot_file_stem",
    "plot_file_name",
    "plot_file_stem",
    "render_figure",
    "safe_file_stem",
    "save_plots",
]
