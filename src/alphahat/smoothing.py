"""SVD smoothing and sharpening: new weights keeping (or dropping) the top singular components.

For every analysable weight, the number k of components comes from the layer's pooled ESD:

* ``"svd"``: k = ⌊percent · M · (number of matrices)⌋ (the reference tool's ``svd``);
* ``"detX"``: k = ``detX_num``, the det X = 1 tail (:mod:`alphahat.metrics.detx`);
* ``"mp_spikes"``: k = ``num_spikes`` of the Marchenko–Pastur fit (the reference's ``rmt``);
* ``"pl_spikes"``: k = ``num_pl_spikes``, the eigenvalues ≥ x_min of the power-law fit (the
  reference's ``alpha_min``);
* ``"sharpen"``: k = correlation traps (spikes of the element-shuffled ESD, seeded), and those
  top components are *removed* instead of kept (the reference's ``SVDSharpness``).

Each count is the column of the layer's row that ``analyze`` reports (the layer is analysed by
the same per-layer core, :func:`alphahat.pipeline.analyse_layer`, with the option that makes
the column), so smoothing and the analysis never disagree on a layer.

Each N × M matrix (each conv kernel slice, with k spread as ⌈k / slices⌉ per slice, as the
reference does) is replaced by U_k Σ_k V_kᵀ, its best rank-k approximation, from an exact SVD in
float64 (the reference uses a randomized truncated SVD); ``"sharpen"`` gives W − U_k Σ_k V_kᵀ.
The result is a new dict of arrays, every tensor of the model in its original dtype (bfloat16
weights come back as float32) — the caller's model is never modified; :meth:`Smoothed.save`
writes it as a safetensors file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from alphahat.layers import LayerFilter
from alphahat.pipeline import (
    LAYER_ERRORS,
    AnalysisOptions,
    LoadedLayer,
    analyse_loaded,
    load_layer,
    plan_layers,
)
from alphahat.sources import open_source

SmoothingMethod = Literal["svd", "detX", "mp_spikes", "pl_spikes", "sharpen"]
SMOOTHING_METHODS: tuple[str, ...] = ("svd", "detX", "mp_spikes", "pl_spikes", "sharpen")


@dataclass(frozen=True)
class Smoothed:
    """Result of :func:`svd_smoothing`.

    Attributes:
        weights: every tensor of the model by name (smoothed ones replaced), NumPy arrays.
        details: one row per weight considered: ``name``, ``method``, ``num_components``
            (k, pooled), ``per_matrix`` (k per matrix), ``num_matrices``, ``status``, ``reason``.
    """

    weights: dict[str, npt.NDArray[np.generic]] = field(repr=False)
    details: pd.DataFrame

    def save(self, path: str | Path) -> None:
        """Write ``weights`` as a safetensors file (atomically)."""
        from safetensors.numpy import save

        from alphahat.report.io import write_atomic

        arrays = {k: np.ascontiguousarray(v) for k, v in self.weights.items()}
        write_atomic(Path(path), save(arrays))


#: The column of the layer's analysis row that gives k, and the option that computes it.
_COUNT_COLUMNS = {
    "detX": ("detX_num", "detX"),
    "mp_spikes": ("num_spikes", "mp_fit"),
    "pl_spikes": ("num_pl_spikes", None),
    "sharpen": ("num_traps", "randomize"),
}


def _component_count(
    method: str, layer: LoadedLayer, percent: float, options: AnalysisOptions
) -> int:
    """K for one layer: from ``percent``, or the column of the layer's own analysis row.

    The analysis is :func:`alphahat.pipeline.analyse_layer` with the option that computes the
    column, so k is the ``detX_num``, ``num_spikes``, ``num_pl_spikes`` or ``num_traps`` that
    ``analyze`` reports for the layer (same sample, checks, seed and shuffles).
    """
    plan = layer.plan
    if method == "svd":
        return int(percent * plan.M * plan.num_matrices)
    column, flag = _COUNT_COLUMNS[method]
    result = analyse_loaded(layer, options.replace(**{flag: True}) if flag else options)
    value = result.row.get(column)  # None (or 0) where the fit it needs failed
    return int(value) if value is not None else 0


def low_rank(matrix: npt.ArrayLike, k: int, *, remove: bool = False) -> npt.NDArray[np.float64]:
    """U_k Σ_k V_kᵀ (the best rank-k approximation), or W minus it when ``remove``."""
    w = np.asarray(matrix, dtype=np.float64)
    k = max(0, min(k, min(w.shape)))
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    top: npt.NDArray[np.float64] = (u[:, :k] * s[:k]) @ vt[:k]
    return w - top if remove else top


def svd_smoothing(
    model: Any,
    *,
    method: SmoothingMethod = "detX",
    percent: float = 0.8,
    layers: Sequence[str] | None = None,
    seed: int = 0,
    unsafe_load: bool = False,
) -> Smoothed:
    """Smoothed (or sharpened) copies of a model's weights (see the module docstring).

    Args:
        model: anything :func:`alphahat.analyze` reads.
        method: one of :data:`SMOOTHING_METHODS`.
        percent: fraction of components kept by ``"svd"`` (0 < percent ≤ 1).
        layers: tensor names to smooth (default: every analysable weight).
        seed: seed of the shuffles of ``"sharpen"``.
        unsafe_load: allow a full unpickle of ``.pt/.bin`` files.
    """
    if method not in SMOOTHING_METHODS:
        raise ValueError(
            f"method must be one of {', '.join(map(repr, SMOOTHING_METHODS))}; got {method!r}"
        )
    if not (isinstance(percent, int | float) and 0 < percent <= 1):
        raise ValueError(f"percent must be in (0, 1]; got {percent!r}")
    weights: dict[str, npt.NDArray[np.generic]] = {}
    rows = []
    layer_filter = LayerFilter(names=tuple(layers)) if layers else LayerFilter()
    options = AnalysisOptions(layers=layer_filter, min_evals=0, seed=seed)
    with open_source(model, unsafe_load=unsafe_load) as source:
        plans = {p.ref.name: p for p in plan_layers(source, options) if p.status == "analyse"}
        for ref in source.tensors():
            if ref.skip_reason is not None or ref.problem is not None:
                continue
            plan = plans.get(ref.name)
            if plan is None:
                weights[ref.name] = np.asarray(ref.load())
                continue
            # the tensor as stored (a scaled float8 weight keeps its scale tensor beside it)
            layer = load_layer(replace(plan, ref=ref))
            values = np.asarray(layer.values)
            row = {"name": ref.name, "method": method, "num_matrices": plan.num_matrices}
            try:
                count = _component_count(method, layer, percent, options)
                per_matrix = math.ceil(count / plan.num_matrices)
                smoothed = _rebuild(values, per_matrix, remove=method == "sharpen")
                weights[ref.name] = smoothed.astype(_output_dtype(values.dtype))
                row.update(num_components=count, per_matrix=per_matrix, status="smoothed")
                row["reason"] = ""
            except LAYER_ERRORS as exc:
                weights[ref.name] = values
                row.update(num_components=None, per_matrix=None, status="failed")
                row["reason"] = str(exc) or type(exc).__name__
            del layer
            rows.append(row)
    columns = ["name", "method", "num_components", "per_matrix", "num_matrices", "status", "reason"]
    return Smoothed(weights, pd.DataFrame(rows, columns=columns))


def _output_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    return dtype if dtype.kind == "f" else np.dtype(np.float32)


def _rebuild(values: npt.NDArray[np.generic], k: int, *, remove: bool) -> npt.NDArray[np.float64]:
    """Each (out × in) matrix of the tensor (each kernel position) replaced by its rank-k part."""
    w = np.asarray(values, dtype=np.float64)
    slices = w.reshape(w.shape[0], w.shape[1], -1)
    out = np.empty_like(slices)
    for i in range(slices.shape[2]):
        out[:, :, i] = low_rank(slices[:, :, i], k, remove=remove)
    return out.reshape(w.shape)


__all__ = ["SMOOTHING_METHODS", "Smoothed", "low_rank", "svd_smoothing"]
