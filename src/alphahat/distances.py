"""Per-layer distances between two models of the same architecture, joined by layer name.

For each weight that both models have with the same shape (A in the first, B in the second),
with Aᵢ, Bᵢ its N × M matrices as stored (one per conv kernel position, no conv scale):

* ``delta_W`` = ‖A − B‖_F on the raw tensors (the reference tool's ``raw``);
  ``delta_b`` = ‖a − b‖₂ of the biases next to them (``name.bias``), 0 when there are none.
* ``euclidean`` = mean over i of ‖Aᵢ − Bᵢ‖_F (the reference tool's ``euclidean``).
* ``cka`` = mean over i of ‖AᵢᵀBᵢ‖²_F / (‖AᵢᵀAᵢ‖_F ‖BᵢᵀBᵢ‖_F), linear CKA (Kornblith et al.
  2019) without centering, with Aᵢ (out × in) as stored — the output units are the examples:
  1 for equal matrices (and for B = A·R, R orthogonal), 0 when the column spaces are
  orthogonal; a similarity, not a distance. The reference tool's ``cka`` is its square root
  (``compat.WeightWatcher.distances`` reports that; for conv layers the reference averages the
  per-slice roots, which is not the root of the average).
* ``spectral_distance`` = the Jensen–Shannon distance (base 2, in [0, 1]) between the two
  layers' ESDs as densities of log₁₀λ (:func:`alphahat.metrics.randomization.spectral_distance`).
* ``delta_spectral_norm`` = max over i of ‖Aᵢ − Bᵢ‖₂, the largest singular value of the change.

Layers present in only one model, or with different shapes, get a row with ``status``
``failed`` and the reason; they never stop the others.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from alphahat.layers import LayerFilter, TensorPlan
from alphahat.metrics.randomization import spectral_distance
from alphahat.pipeline import AnalysisOptions, load_layer, plan_layers
from alphahat.sources import open_source
from alphahat.spectrum import layer_spectrum, singular_values

COLUMNS = (
    "layer_id", "name", "kind", "N", "M", "delta_W", "delta_b", "b_shape", "euclidean", "cka",
    "spectral_distance", "delta_spectral_norm", "status", "reason",
)  # fmt: skip


def _frobenius(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


def cka_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Linear uncentered CKA ‖AᵀB‖²_F / (‖AᵀA‖_F ‖BᵀB‖_F) of two N × M matrices (NaN if 0)."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    denominator = float(np.linalg.norm(x.T @ x)) * float(np.linalg.norm(y.T @ y))
    return float(np.linalg.norm(x.T @ y)) ** 2 / denominator if denominator > 0 else math.nan


def _stored(values: np.ndarray) -> list[np.ndarray]:
    """The (out × in) matrices of a weight as stored, one per kernel position."""
    w = np.asarray(values)
    slices = w.reshape(w.shape[0], w.shape[1], -1)
    return [slices[:, :, k] for k in range(slices.shape[2])]


def _analysable(source: Any, layers: Sequence[str] | None) -> dict[str, TensorPlan]:
    layer_filter = LayerFilter(names=tuple(layers)) if layers else LayerFilter()
    plans = plan_layers(source, AnalysisOptions(layers=layer_filter, min_evals=0))
    return {p.ref.name: p for p in plans if p.status == "analyse"}


def _biases(source: Any) -> dict[str, Any]:
    return {r.name: r for r in source.tensors() if r.name.endswith(".bias") and r.ndim == 1}


def distances(
    model_a: Any,
    model_b: Any,
    *,
    layers: Sequence[str] | None = None,
    unsafe_load: bool = False,
) -> pd.DataFrame:
    """One row per weight matrix of ``model_a``: its distances to ``model_b`` (module docstring).

    Args:
        model_a, model_b: anything :func:`alphahat.analyze` reads (module, state dict, path).
        layers: tensor names to compare (default: every analysable weight).
        unsafe_load: allow a full unpickle of ``.pt/.bin`` files.
    """
    rows: list[dict[str, Any]] = []
    with (
        open_source(model_a, unsafe_load=unsafe_load) as first,
        open_source(model_b, unsafe_load=unsafe_load) as second,
    ):
        plans_a, plans_b = _analysable(first, layers), _analysable(second, layers)
        biases_a, biases_b = _biases(first), _biases(second)
        for name, plan in plans_a.items():
            row: dict[str, Any] = {
                "layer_id": plan.layer_id,
                "name": name,
                "kind": plan.kind,
                "N": plan.N,
                "M": plan.M,
                "status": "compared",
                "reason": "",
            }
            other = plans_b.get(name)
            if other is None or other.ref.shape != plan.ref.shape:
                row["status"] = "failed"
                row["reason"] = (
                    "not in the second model"
                    if other is None
                    else f"shapes differ: {plan.ref.shape} vs {other.ref.shape}"
                )
                rows.append(row)
                continue
            first_layer, second_layer = load_layer(plan), load_layer(other)
            a, b = np.asarray(first_layer.values), np.asarray(second_layer.values)
            mats_a, mats_b = first_layer.matrices, second_layer.matrices
            row["delta_W"] = _frobenius(a, b)
            bias = name.removesuffix(".weight") + ".bias"
            if (
                bias in biases_a
                and bias in biases_b
                and biases_a[bias].shape == biases_b[bias].shape
            ):
                row["delta_b"] = _frobenius(biases_a[bias].load(), biases_b[bias].load())
                row["b_shape"] = str(biases_a[bias].shape)
            else:
                row["delta_b"], row["b_shape"] = 0.0, "unknown"
            row["euclidean"] = float(
                np.mean([_frobenius(x, y) for x, y in zip(mats_a, mats_b, strict=True)])
            )
            row["cka"] = float(
                np.mean([cka_similarity(x, y) for x, y in zip(_stored(a), _stored(b), strict=True)])
            )
            row["delta_spectral_norm"] = max(
                float(singular_values(np.asarray(x, np.float64) - np.asarray(y, np.float64))[0])
                for x, y in zip(mats_a, mats_b, strict=True)
            )
            row["spectral_distance"] = spectral_distance(
                layer_spectrum(mats_a).eigenvalues, layer_spectrum(mats_b).eigenvalues
            )
            rows.append(row)
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["layer_id"] = frame["layer_id"].astype("Int64")
    return frame


__all__ = ["COLUMNS", "cka_similarity", "distances"]
