"""One way to walk a model: plan its tensors, then load each planned layer's matrices in turn.

* :func:`plan_layers` — every tensor of an open source as a
  :class:`~alphahat.layers.TensorPlan`, under the options (layer filter, ``min_evals`` and
  ``max_evals``, resource limits, fused splits with the checkpoint's head count, conv
  ``pool=False`` slices, ``fft`` plans). Workers re-plan with the same function, so ids agree.
* :func:`load_layer` — one plan's tensor read and turned into its N × M matrices; with a
  torch device, an in-memory module's tensor on that device stays there
  (:class:`~alphahat.layers.device.DeviceMatrices`, :func:`spectrum_device`).
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
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from alphahat.layers import TensorPlan, layer_matrices, plan_tensors
from alphahat.layers.conv import fft_plan, slice_plans
from alphahat.layers.device import DeviceMatrices
from alphahat.layers.semantics import interleaved_qkv_heads
from alphahat.pipeline.core import LayerResult, analyse_layer, error_reason
from alphahat.pipeline.options import ANALYSIS_DEFAULTS, AnalysisOptions
from alphahat.sources import WeightSource, open_source
from alphahat.sources.arrays import TorchTensorLoader, torch_device_name
from alphahat.spectrum import uses_torch

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
    A layer loaded on a torch device has ``on_device`` instead of ``values`` and ``matrices``.
    """

    plan: TensorPlan
    values: Array | None = field(default=None, repr=False)
    matrices: tuple[Array, ...] = field(default=(), repr=False)
    error: str = ""
    on_device: DeviceMatrices | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """The layer's full name (with its ``[part]``)."""
        return self.plan.ref.name

    @property
    def layer_id(self) -> int | None:
        """The layer's id (its position in model order)."""
        return self.plan.layer_id


def spectrum_device(options: AnalysisOptions) -> str | None:
    """The torch device on which layers may stay for these options, or None.

    The torch backend's device (``cpu`` without one) when only the spectrum is read from the
    weights (:attr:`~alphahat.pipeline.options.AnalysisOptions.reads_weights` False).
    """
    if not uses_torch(options.backend, options.device) or options.reads_weights:
        return None
    return options.device or "cpu"


def _on(tensor: Any, device: str) -> bool:
    """Whether a torch tensor is on ``device`` (``cuda`` matches every CUDA device)."""
    kind, _, index = device.partition(":")
    where = tensor.device
    return bool(where.type == kind and (not index or int(index) == (where.index or 0)))


def load_layer(plan: TensorPlan, device: str | None = None) -> LoadedLayer:
    """Read one planned layer's tensor and split it into its matrices (raises on errors).

    With ``device``, the tensor of an in-memory torch module that is already on that device
    (read as stored: not a part, slice or dequantized copy) is not copied to the host: the
    layer's ``on_device`` holds its matrices as torch tensors there.
    """
    loader = plan.ref.load
    if device is not None and isinstance(loader, TorchTensorLoader) and _on(loader.tensor, device):
        tensor = loader.tensor.detach()
        matrices = tuple(layer_matrices(tensor, plan))
        where = torch_device_name(tensor)
        split = partial(layer_matrices, plan=plan)
        return LoadedLayer(plan, on_device=DeviceMatrices(tensor, matrices, where, loader, split))
    values = np.asarray(loader())
    return LoadedLayer(plan, values, tuple(layer_matrices(values, plan)))


def _loaded_or_error(plan: TensorPlan, device: str | None = None) -> LoadedLayer:
    try:
        return load_layer(plan, device)
    except Exception as exc:  # one unreadable layer never stops the walk
        return LoadedLayer(plan, error=error_reason(exc))


def load_planned(
    plans: Iterable[TensorPlan], *, read_ahead: bool = False, device: str | None = None
) -> Iterator[LoadedLayer]:
    """Each plan loaded in turn (:func:`load_layer`; errors yielded, not raised).

    With ``read_ahead`` the next tensor is read by a background thread while the caller works
    on the current one: at most two layers are in memory. ``device``: as for
    :func:`load_layer` (:func:`spectrum_device` of the options).
    """
    load = partial(_loaded_or_error, device=device)
    if not read_ahead:
        for plan in plans:
            yield load(plan)
        return
    from alphahat.engine.read_ahead import read_ahead as ahead

    yield from ahead(plans, load)


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
    if layer.on_device is not None:
        return analyse_layer(layer.on_device, options, scale=layer.plan.scale, name=layer.name)
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
    "spectrum_device",
]
