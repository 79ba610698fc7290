"""One way to walk a model: plan its tensors, then load each planned layer's matrices in turn.

* :func:`plan_layers` — every tensor of an open source as a
  :class:`~alphahat.layers.TensorPlan`, under the options (layer filter, ``min_evals`` and
  ``max_evals``, resource limits, fused splits with the checkpoint's head count, conv
  ``pool=False`` slices, ``fft`` plans). Workers re-plan with the same function, so ids agree.
* :func:`load_layer` — one plan's tensor read and turned into its N × M matrices.
* :func:`iter_layers` — the planned layers of a model, loaded one at a time (optionally the
  next one read by a background thread while the current one is used), each a
  :class:`LoadedLayer`; a layer that cannot be read is yielded with its ``error``, never
  stops the walk.
* :func:`analyse_loaded` — :func:`~alphahat.pipeline.core.analyse_layer` of a loaded layer.

Every part of alphahat that reads a model's layers goes through here: the analysis and its
workers, the randomized ESDs of the figures, SVD smoothing, distances, the reference-tool shim.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from alphahat.layers import TensorPlan, layer_matrices, plan_tensors
from alphahat.layers.conv import fft_plan, slice_plans
from alphahat.layers.semantics import interleaved_qkv_heads
from alphahat.pipeline.core import LayerResult, analyse_layer, error_reason
from alphahat.pipeline.options import ANALYSIS_DEFAULTS, AnalysisOptions
from alphahat.sources import WeightSource, open_source

Array = npt.NDArray[np.generic]


def plan_layers(source: WeightSource, options: AnalysisOptions | None = None) -> list[TensorPlan]:
    """The plan of every tensor of ``source`` (analysed, skipped or failed), in model order."""
    options = options if options is not None else ANALYSIS_DEFAULTS
    fused_heads = options.fused_heads
    if options.split_fused and fused_heads is None:  # the checkpoint's config.json may say
        fused_heads = interleaved_qkv_heads(source.model_config)
    plans = list(
        plan_tensors(
            source.tensors(),
            layer_filter=options.layers,
            min_evals=options.min_evals,
            max_evals=options.max_evals,
            conv_scale=options.conv_scale,
            split_fused=options.split_fused,
            fused_heads=fused_heads,
            limits=options.limits,
            model_config=source.model_config,
        )
    )
    if not options.pool:  # one plan per conv kernel slice (layers.conv)
        plans = [
            part
            for plan in plans
            for part in slice_plans(plan, options.min_evals, options.conv_scale)
        ]
    if options.fft:
        plans = [fft_plan(plan, options.fft_size) for plan in plans]
    return plans


@dataclass(frozen=True, eq=False)
class LoadedLayer:
    """A planned layer with its tensor read: the weight as stored and its N × M matrices.

    ``error`` is set (and ``values`` is None) when the tensor could not be read or split.
    """

    plan: TensorPlan
    values: Array | None = field(default=None, repr=False)
    matrices: tuple[Array, ...] = field(default=(), repr=False)
    error: str = ""

    @property
    def name(self) -> str:
        """The layer's full name (with its ``[part]``)."""
        return self.plan.ref.name

    @property
    def layer_id(self) -> int | None:
        """The layer's id (its position in model order)."""
        return self.plan.layer_id


def load_layer(plan: TensorPlan) -> LoadedLayer:
    """Read one planned layer's tensor and split it into its matrices (raises on errors)."""
    values = np.asarray(plan.ref.load())
    return LoadedLayer(plan, values, tuple(layer_matrices(values, plan)))


def _loaded_or_error(plan: TensorPlan) -> LoadedLayer:
    try:
        return load_layer(plan)
    except Exception as exc:  # one unreadable layer never stops the walk
        return LoadedLayer(plan, error=error_reason(exc))


def load_planned(plans: Iterable[TensorPlan], *, read_ahead: bool = False) -> Iterator[LoadedLayer]:
    """Each plan loaded in turn (:func:`load_layer`; errors yielded, not raised).

    With ``read_ahead`` the next tensor is read by a background thread while the caller works
    on the current one: at most two layers are in memory.
    """
    if not read_ahead:
        for plan in plans:
            yield _loaded_or_error(plan)
        return
    from alphahat.engine.read_ahead import read_ahead as ahead

    yield from ahead(plans, _loaded_or_error)


def iter_layers(
    model: Any,
    options: AnalysisOptions | None = None,
    *,
    unsafe_load: bool = False,
    base: Any = None,
    read_ahead: bool = False,
) -> Generator[LoadedLayer, None, None]:
    """The layers of ``model`` that the options select, each loaded (see the module docstring).

    Args:
        model: anything :func:`alphahat.analyze` reads, or an open
            :class:`~alphahat.sources.WeightSource` (left open).
        options: which layers and how they are planned (default: the defaults).
        unsafe_load, base: as for :func:`alphahat.analyze`.
        read_ahead: read the next tensor in a background thread.

    Yields:
        A :class:`LoadedLayer` per planned layer whose status is ``analyse``, in model order.
    """
    options = options if options is not None else ANALYSIS_DEFAULTS
    if isinstance(model, WeightSource):
        opened: contextlib.AbstractContextManager[WeightSource] = contextlib.nullcontext(model)
    else:
        opened = open_source(model, unsafe_load=unsafe_load, base=base)
    with opened as source:
        plans = [p for p in plan_layers(source, options) if p.status == "analyse"]
        yield from load_planned(plans, read_ahead=read_ahead)


def analyse_loaded(layer: LoadedLayer, options: AnalysisOptions | None = None) -> LayerResult:
    """:func:`~alphahat.pipeline.core.analyse_layer` of a loaded layer (raises its errors)."""
    if layer.values is None:
        raise ValueError(layer.error or f"{layer.name}: not loaded")
    return analyse_layer(
        list(layer.matrices),
        options,
        scale=layer.plan.scale,
        name=layer.name,
        weight=layer.values,
    )


__all__ = [
    "LoadedLayer",
    "analyse_loaded",
    "iter_layers",
    "load_layer",
    "load_planned",
    "plan_layers",
]
