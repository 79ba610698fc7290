"""Orchestration: source → layers → spectrum → fit → metrics → report, one layer at a time.

Options are validated here, once, at the boundary. Each layer is analysed in its own error
scope: a layer that cannot be read or fitted becomes a ``failed`` row with the reason, and
every other layer is still reported. No maths lives here.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from alphahat.errors import AlphahatError
from alphahat.fit import fit_power_law
from alphahat.layers import (
    CONV_SCALES,
    ConvScale,
    LayerFilter,
    TensorPlan,
    layer_matrices,
    plan_tensors,
)
from alphahat.metrics import NAN, layer_metrics
from alphahat.report import Report, build_provenance, coverage_frame
from alphahat.sources import WeightSource, open_source
from alphahat.spectrum import layer_spectrum

#: Eigenvalues at or below this are left out of the power-law fit (the reference tool's rule).
DEFAULT_EVALS_THRESHOLD = 1e-5
DEFAULT_MIN_EVALS = 8

LayerSpec = str | int


@dataclass(frozen=True)
class AnalysisOptions:
    """Validated options of :func:`analyze` (see there for their meaning)."""

    layers: LayerFilter = field(default_factory=LayerFilter)
    min_evals: int = DEFAULT_MIN_EVALS
    max_evals: int | None = None
    evals_threshold: float = DEFAULT_EVALS_THRESHOLD
    conv_scale: ConvScale = "reference"
    include_embeddings: bool = True
    keep_eigenvalues: bool = False

    def __post_init__(self) -> None:
        _check_int("min_evals", self.min_evals, minimum=0)
        if self.max_evals is not None:
            _check_int("max_evals", self.max_evals, minimum=1)
            if self.max_evals < self.min_evals:
                raise ValueError(
                    f"max_evals must be ≥ min_evals={self.min_evals}; got {self.max_evals}"
                )
        if not isinstance(self.evals_threshold, int | float) or not (
            math.isfinite(self.evals_threshold) and self.evals_threshold >= 0
        ):
            raise ValueError(
                f"evals_threshold must be a finite number ≥ 0; got {self.evals_threshold!r}"
            )
        if self.conv_scale not in CONV_SCALES:
            raise ValueError(
                f"conv_scale must be one of {', '.join(map(repr, CONV_SCALES))}; "
                f"got {self.conv_scale!r}"
            )

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (for provenance)."""
        out = asdict(self)
        out["layers"] = {k: list(v) for k, v in out["layers"].items()}
        return out


def _check_int(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}; got {value!r}")


def make_options(
    layers: LayerFilter | Iterable[LayerSpec] | LayerSpec | None = None, **kwargs: Any
) -> AnalysisOptions:
    """:class:`AnalysisOptions` from user-level arguments (``layers`` as specs or a filter)."""
    if layers is None:
        layer_filter = LayerFilter()
    elif isinstance(layers, LayerFilter):
        layer_filter = layers
    elif isinstance(layers, str | int):
        layer_filter = LayerFilter.parse([layers])
    else:
        layer_filter = LayerFilter.parse(layers)
    return AnalysisOptions(layers=layer_filter, **kwargs)


ProgressCallback = Callable[[int, int, str], None]


def _analyse_layer(plan: TensorPlan, options: AnalysisOptions) -> tuple[dict[str, Any], Any]:
    """Metric columns of one layer and its eigenvalues (None when it failed before them)."""
    values = plan.ref.load()
    matrices = layer_matrices(values, plan)
    spectrum = layer_spectrum(matrices, plan.scale)
    del values, matrices
    evals = spectrum.eigenvalues
    fit = fit_power_law(evals[evals > options.evals_threshold])
    row = layer_metrics(evals, spectrum.N, fit)
    if fit.fitted:
        row["status"], row["reason"] = "fitted", ""
    else:
        row["status"], row["reason"] = "failed", f"power-law fit: {fit.status}: {fit.reason}"
    return row, evals


def _failed_row(reason: str) -> dict[str, Any]:
    """Metric columns of a layer that failed before it had a spectrum: all missing."""
    metrics: dict[str, Any] = layer_metrics(np.empty(0), 1, fit_power_law([]))
    metrics.update({"num_pl_spikes": None, "matrix_rank": None})
    metrics.update({"status": "failed", "reason": reason})
    return metrics


def _plan(source: WeightSource, options: AnalysisOptions) -> list[TensorPlan]:
    return list(
        plan_tensors(
            source.tensors(),
            layer_filter=options.layers,
            min_evals=options.min_evals,
            max_evals=options.max_evals,
            conv_scale=options.conv_scale,
        )
    )


def _base_row(plan: TensorPlan) -> dict[str, Any]:
    return {
        "layer_id": plan.layer_id,
        "name": plan.ref.name,
        "kind": plan.kind or "",
        "shape": "x".join(map(str, plan.ref.shape)),
        "dtype": plan.ref.dtype,
        "N": plan.N,
        "M": plan.M,
        "Q": plan.N / plan.M if plan.M else NAN,
        "num_matrices": plan.num_matrices,
        "num_evals": plan.num_evals,
    }


@contextlib.contextmanager
def _progress_bar(enabled: bool, total: int) -> Iterator[ProgressCallback | None]:
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[layer]}", style="dim"),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("analysing", total=total, layer="")

        def update(done: int, _total: int, name: str) -> None:
            bar.update(task, completed=done, layer=name)

        yield update


def run_analysis(
    source: WeightSource,
    options: AnalysisOptions,
    *,
    progress: bool | ProgressCallback = False,
) -> Report:
    """Analyse every planned layer of an open source (see :func:`analyze`)."""
    plans = _plan(source, options)
    todo = [p for p in plans if p.status != "skipped"]
    rows: list[dict[str, Any]] = []
    eigenvalues: dict[str, Any] = {}
    callback = progress if callable(progress) else None
    with _progress_bar(progress is True, len(todo)) as bar:
        report_progress = callback or bar
        for done, plan in enumerate(todo):
            if report_progress is not None:
                report_progress(done, len(todo), plan.ref.name)
            row = _base_row(plan)
            if plan.status == "failed":
                row.update(_failed_row(plan.reason))
            else:
                try:
                    metrics, evals = _analyse_layer(plan, options)
                    row.update(metrics)
                    if options.keep_eigenvalues:
                        eigenvalues[plan.ref.name] = evals
                except (AlphahatError, ValueError, ArithmeticError, MemoryError, OSError) as exc:
                    row.update(_failed_row(str(exc) or type(exc).__name__))
                except Exception as exc:  # one layer never loses the others' results
                    row.update(_failed_row(f"internal error: {type(exc).__name__}: {exc}"))
            rows.append(row)
        if report_progress is not None:
            report_progress(len(todo), len(todo), "")
    return Report.from_rows(
        rows,
        plans=plans,
        options=options.as_dict(),
        provenance=build_provenance(source),
        include_embeddings=options.include_embeddings,
        eigenvalues=eigenvalues,
    )


def analyze(
    model: Any,
    *,
    layers: LayerFilter | Sequence[LayerSpec] | LayerSpec | None = None,
    min_evals: int = DEFAULT_MIN_EVALS,
    max_evals: int | None = None,
    evals_threshold: float = DEFAULT_EVALS_THRESHOLD,
    conv_scale: ConvScale = "reference",
    include_embeddings: bool = True,
    keep_eigenvalues: bool = False,
    unsafe_load: bool = False,
    progress: bool | ProgressCallback = False,
) -> Report:
    """Analyse every weight matrix of a model and return a :class:`~alphahat.report.Report`.

    Args:
        model: a ``torch.nn.Module``, a ``state_dict`` or ``{name: array}`` mapping, or a path
            to a ``.safetensors`` file, a sharded Hugging Face folder, a ``.pt/.bin/.pth``
            state dict, or a ``.npy/.npz`` file.
        layers: which layers to analyse: layer ids, exact names, glob patterns and kinds
            (``linear``, ``embedding``, ``conv1d``, ``conv2d``, ``conv3d``); criteria of
            different types are combined with AND, several of one type with OR.
        min_evals: layers with fewer eigenvalues are skipped (with the reason).
        max_evals: layers with more eigenvalues are skipped (None: no limit).
        evals_threshold: eigenvalues ≤ this are left out of the power-law fit (not of norms).
        conv_scale: ``"reference"`` multiplies conv kernel slices by 1/√2 (λ halved), as the
            reference tool does for Conv2d; ``"none"`` analyses them as stored.
        include_embeddings: whether the model summary averages embedding layers too.
        keep_eigenvalues: keep each layer's ESD in ``report.eigenvalues``.
        unsafe_load: allow a full unpickle of ``.pt/.bin`` files (runs code from the file).
        progress: show a progress bar on stderr, or a callback(done, total, layer name).
    """
    options = make_options(
        layers,
        min_evals=min_evals,
        max_evals=max_evals,
        evals_threshold=evals_threshold,
        conv_scale=conv_scale,
        include_embeddings=include_embeddings,
        keep_eigenvalues=keep_eigenvalues,
    )
    with open_source(model, unsafe_load=unsafe_load) as source:
        return run_analysis(source, options, progress=progress)


def describe(
    model: Any,
    *,
    layers: LayerFilter | Sequence[LayerSpec] | LayerSpec | None = None,
    min_evals: int = DEFAULT_MIN_EVALS,
    max_evals: int | None = None,
    conv_scale: ConvScale = "reference",
    unsafe_load: bool = False,
) -> Any:
    """Every tensor of a model with what :func:`analyze` would do with it, without computing.

    Returns a pandas DataFrame, one row per tensor: ``layer_id`` (tensors with ≥ 2 dims),
    ``name``, ``kind``, ``shape``, ``dtype``, ``N``, ``M``, ``num_matrices``, ``num_evals``,
    ``status`` (``analysed``, ``skipped`` or ``failed``) and ``reason``.
    """
    options = make_options(layers, min_evals=min_evals, max_evals=max_evals, conv_scale=conv_scale)
    with open_source(model, unsafe_load=unsafe_load) as source:
        return coverage_frame(_plan(source, options))


__all__ = ["AnalysisOptions", "analyze", "describe", "make_options", "run_analysis"]
