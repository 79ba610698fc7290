"""``intra=True``: the cross matrices of consecutive planned layers, as a weight source.

Each entry of :class:`CrossMatrices` is one pair (W₀, W₁) of consecutive planned layers, named
``first → second``; reading it reads both weights (:func:`~alphahat.pipeline.walk.load_layer`)
and returns their cross matrix X (:func:`alphahat.layers.intra.cross_matrix`, ReLU-masked with
``sparsify``), whose singular values the core's spectrum stage takes. A pair of layers that
cannot be composed (a conv kernel, no shared dimension) is listed as skipped with the reason.

A middle layer belongs to two pairs. The run reads the pairs in order (also with worker
processes, which receive each cross matrix read by the run), so the second weight of one pair
is kept until the next pair has read it as its first: each layer is read once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from alphahat.layers import TensorPlan
from alphahat.layers.intra import cross_matrix, cross_shape, pair_name, relu_mask, shared_size
from alphahat.pipeline.options import AnalysisOptions
from alphahat.pipeline.walk import load_layer
from alphahat.sources import WeightSource
from alphahat.sources.base import TensorRef
from alphahat.spectrum.randomize import layer_seed

Array = npt.NDArray[np.generic]


class _LastWeight:
    """The weight read last, kept for the next pair that starts with the same layer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[Any, str] | None = None
        self._values: Array | None = None

    def read(self, plan: TensorPlan) -> Array:
        key = (plan.layer_id, plan.ref.name)
        with self._lock:
            if self._key == key and self._values is not None:
                return self._values
        values = np.asarray(load_layer(plan).values)
        with self._lock:
            self._key, self._values = key, values
        return values


class CrossMatrices(WeightSource):
    """The cross matrices of consecutive planned layers, each read when it is analysed."""

    def __init__(self, plans: Sequence[TensorPlan], options: AnalysisOptions, origin: str) -> None:
        self.description = f"intra: cross matrices of {origin or 'the model'}"
        last = _LastWeight()
        self._refs = [
            self._pair(a, b, options, last) for a, b in zip(plans, plans[1:], strict=False)
        ]

    def _pair(
        self, first: TensorPlan, second: TensorPlan, options: AnalysisOptions, last: _LastWeight
    ) -> TensorRef:
        name = pair_name(first.ref.name, second.ref.name)
        shapes = (first.ref.shape, second.ref.shape)
        single = first.num_matrices == 1 and second.num_matrices == 1
        shape = cross_shape(*shapes) if single else None
        if shape is None:
            why = (
                "pairs only single weight matrices (conv kernels are not composed)"
                if not single
                else f"the weights {list(shapes[0])} and {list(shapes[1])} share no dimension"
            )
            return TensorRef(name, (), "float64", _unreadable(name, why), skip_reason=why)
        seed = layer_seed(options.seed, name) if options.sparsify else None

        def load() -> Array:
            w0, w1 = last.read(first), last.read(second)
            if cross_shape(w0.shape, w1.shape) != shape:
                raise ValueError(f"{name}: the weights read are not of the planned shapes")
            units = shared_size(w0.shape, w1.shape)
            mask = None if seed is None or units is None else relu_mask(units, seed)
            return cross_matrix(w0, w1, mask)

        note = "cross matrix X = A·B/(‖W₀‖‖W₁‖)" + (", ReLU-masked" if seed is not None else "")
        return TensorRef(name, shape, "float64", load, "linear", self.description, note=note)

    def tensors(self) -> Iterator[TensorRef]:
        """One entry per pair, in model order."""
        return iter(self._refs)


def _unreadable(name: str, why: str) -> Any:
    def load() -> Array:
        raise ValueError(f"{name}: {why}")

    return load


__all__ = ["CrossMatrices"]
