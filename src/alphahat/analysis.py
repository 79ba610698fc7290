"""The public entry points: :func:`analyze`, :func:`describe`, :func:`randomized_eigenvalues`.

A thin facade. Every keyword is a row of the option table
(:mod:`alphahat.pipeline.options`), where its default, allowed values and help live; the
work is :func:`alphahat.run.run_analysis` (the run) over :mod:`alphahat.pipeline` (the
science).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from alphahat.fit.esd import FitKind, FixFingers
from alphahat.layers import ConvScale, LayerFilter
from alphahat.layers.stacking import STACKED_NAME, stack_matrices
from alphahat.pipeline.core import LAYER_ERRORS
from alphahat.pipeline.options import (
    ANALYSIS_DEFAULTS as _A,
)
from alphahat.pipeline.options import (
    EXECUTION_DEFAULTS as _E,
)
from alphahat.pipeline.options import (
    SOURCE_DEFAULTS as _S,
)
from alphahat.pipeline.options import (
    AnalysisOptions,
    Estimator,
    ExecutionOptions,
    LayerSpec,
    ProgressCallback,
    SourceOptions,
    split_options,
)
from alphahat.pipeline.pairs import CrossMatrices
from alphahat.pipeline.walk import iter_layers, load_layer, plan_layers
from alphahat.report import Report, coverage_frame
from alphahat.run import run_analysis
from alphahat.sources import SourceSpec, open_source
from alphahat.spectrum import SpectrumBackend, check_device_available, uses_torch

Layers = LayerFilter | Sequence[LayerSpec] | LayerSpec | None


def _options(values: Mapping[str, Any]) -> tuple[AnalysisOptions, ExecutionOptions, SourceOptions]:
    """The option groups of a facade's keywords (its ``locals()`` less the model)."""
    return split_options({k: v for k, v in values.items() if k != "model"})


def analyze(
    model: Any,
    *,
    layers: Layers = None,
    min_evals: int = _A.min_evals,
    max_evals: int | None = _A.max_evals,
    evals_threshold: float = _A.evals_threshold,
    conv_scale: ConvScale = _A.conv_scale,
    include_embeddings: bool = _A.include_embeddings,
    keep_eigenvalues: bool = _A.keep_eigenvalues,
    keep_fits: bool = _A.keep_fits,
    max_matrix_elements: int | None = _A.max_matrix_elements,
    max_memory: int | str | None = _A.max_memory,
    split_fused: bool = _A.split_fused,
    fused_heads: int | None = _A.fused_heads,
    fit: FitKind = _A.fit,
    fix_fingers: FixFingers | None = _A.fix_fingers,
    xmin_max: float | None = _A.xmin_max,
    max_fingers: int = _A.max_fingers,
    finger_thresh: float = _A.finger_thresh,
    xmax: int | None = _A.xmax,
    estimator: Estimator = _A.estimator,
    farms_size: int = _A.farms_size,
    farms_aspect_ratio: float = _A.farms_aspect_ratio,
    farms_windows: int = _A.farms_windows,
    mp_fit: bool = _A.mp_fit,
    randomize: bool = _A.randomize,
    seed: int = _A.seed,
    detX: bool = _A.detX,  # noqa: N803 (the reference tool's name)
    vectors: bool = _A.vectors,
    stacked: bool = _A.stacked,
    intra: bool = _A.intra,
    sparsify: bool = _A.sparsify,
    inverse: bool = _A.inverse,
    pool: bool = _A.pool,
    fft: bool = _A.fft,
    fft_size: int = _A.fft_size,
    backend: SpectrumBackend = _A.backend,
    device: str | None = _A.device,
    float32_tolerance: float | None = _A.float32_tolerance,
    workers: int = _E.workers,
    scheduler: Any = _E.scheduler,
    layer_timeout: float | None = _E.layer_timeout,
    journal: str | os.PathLike[str] | None = _E.journal,
    resume: bool | None = _E.resume,
    blas_threads: int | None = _E.blas_threads,
    progress: bool | ProgressCallback = _E.progress,
    base: Any = _S.base,
    unsafe_load: bool = _S.unsafe_load,
) -> Report:
    """Analyse every weight matrix of a model and return a :class:`~alphahat.report.Report`.

    ``model`` is a ``torch.nn.Module``, a ``keras.Model``, a ``state_dict`` or
    ``{name: array}`` mapping, or a path to a ``.safetensors`` file, a sharded Hugging Face
    folder, a ``.pt/.bin/.pth`` state dict, a ``.npy/.npz``, ``.onnx``, ``.gguf``,
    ``.keras`` or ``.h5`` file, or a PEFT LoRA adapter folder.

    Every keyword is an option of the option table, where its meaning, allowed values and
    default are declared (:data:`alphahat.pipeline.OPTION_TABLE`; ``alphahat analyze --help``
    and docs/architecture.md list them). In short:

    * which layers: ``layers`` (ids, names, globs, kinds), ``min_evals``, ``max_evals``,
      ``max_matrix_elements``, ``max_memory``, ``split_fused`` / ``fused_heads``, ``pool``
      (False: one row per conv kernel slice), ``fft`` / ``fft_size`` (a conv layer's operator
      spectrum), ``conv_scale``;
    * the fit, with the reference tool's names: ``fit`` (PL, TPL, E_TPL), ``fix_fingers``
      (xmin_peak, clip_xmax) with ``xmin_max``, ``max_fingers``, ``finger_thresh``; ``xmax``;
      ``evals_threshold``; ``estimator`` (``farms``: α of W's fixed-aspect-ratio
      submatrices, with ``farms_size``, ``farms_aspect_ratio``, ``farms_windows``;
      docs/farms.md); and ``mp_fit``, ``randomize`` (with ``seed``), ``detX``, ``vectors``
      (the columns each adds: :mod:`alphahat.pipeline.core`); ``inverse`` (the ESD 1/λ);
      ``stacked`` (one row: every layer stacked into one matrix, :mod:`alphahat.layers.stacking`);
      ``intra`` with ``sparsify`` (one row per pair of consecutive layers: the singular values
      of their cross matrix, :mod:`alphahat.layers.intra`);
    * how eigenvalues are computed: ``backend``, ``device``, ``float32_tolerance`` (the
      torch backend's float32 Gram path, guarded: :mod:`alphahat.spectrum.backends`); an
      in-memory torch module's tensors on the torch backend's device stay there (only the
      eigenvalues reach the host) unless an option reads the weights themselves;
    * what the report keeps: ``include_embeddings`` (in the summary), ``keep_eigenvalues``
      (``report.eigenvalues``), ``keep_fits`` (``report.fits``: each layer's
      :class:`~alphahat.pipeline.LayerResult`, what the figures draw);
    * how it runs (never a result): ``workers``, ``scheduler`` (Dask), ``layer_timeout``,
      ``journal`` / ``resume``, ``blas_threads``, ``progress``;
    * how the model is opened: ``base`` (deltas W − W_base, or a LoRA adapter's merged
      views), ``unsafe_load``.

    Raises:
        alphahat.errors.OptionError: an option has a value it cannot take (the message names
            it, the allowed values and what was given).
        alphahat.errors.SourceError: the model cannot be read.
    """
    options, execution, source_options = _options(locals())
    if execution.scheduler is None and uses_torch(options.backend, options.device):
        check_device_available(options.device)
    base = _absolute(source_options.base)
    if options.stacked:
        return _stacked(model, options, execution, source_options.unsafe_load, base)
    if options.intra:
        return _intra(model, options, execution, source_options.unsafe_load, base)
    reopen = (
        SourceSpec.of(model, unsafe_load=source_options.unsafe_load, base=base)
        if base is None or isinstance(base, str)
        else None  # an in-memory base: workers get each tensor's values with its task
    )
    with open_source(model, unsafe_load=source_options.unsafe_load, base=base) as source:
        return run_analysis(source, options, execution=execution, reopen=reopen)


def _stacked(
    model: Any, options: AnalysisOptions, execution: Any, unsafe_load: bool, base: Any
) -> Report:
    """``stacked=True``: the planned layers' matrices stacked into one, analysed as one layer."""
    matrices = []
    with open_source(model, unsafe_load=unsafe_load, base=base) as source:
        for plan in plan_layers(source, options.replace(stacked=False)):
            if plan.status == "analyse":
                matrices.append(np.asarray(load_layer(plan).values))
    stacked = {STACKED_NAME: stack_matrices(matrices)}
    single = options.replace(stacked=False, layers=None, min_evals=0, max_evals=None)
    with open_source(stacked) as source:
        return run_analysis(source, single, execution=execution)


def _intra(
    model: Any, options: AnalysisOptions, execution: Any, unsafe_load: bool, base: Any
) -> Report:
    """``intra=True``: one layer per pair of consecutive planned layers, its cross matrix X.

    Consecutive in the order the model was built where the source knows it (a live module, a
    state dict: ``WeightSource.in_build_order``), else in natural name order.
    """
    with open_source(model, unsafe_load=unsafe_load, base=base) as source:
        plans = [p for p in plan_layers(source, options) if p.status == "analyse"]
        if source.in_build_order:  # pair layers as the model was built, not by name
            built = {ref.name: k for k, ref in enumerate(source.tensors())}
            plans.sort(key=lambda p: built.get(p.ref.name.split(" [")[0], len(built)))
        pairs = CrossMatrices(plans, options, getattr(source, "description", ""))
        single = options.replace(layers=None, min_evals=0, max_evals=None)
        return run_analysis(pairs, single, execution=execution)


def describe(
    model: Any,
    *,
    layers: Layers = None,
    min_evals: int = _A.min_evals,
    max_evals: int | None = _A.max_evals,
    conv_scale: ConvScale = _A.conv_scale,
    max_matrix_elements: int | None = _A.max_matrix_elements,
    max_memory: int | str | None = _A.max_memory,
    split_fused: bool = _A.split_fused,
    fused_heads: int | None = _A.fused_heads,
    pool: bool = _A.pool,
    fft: bool = _A.fft,
    fft_size: int = _A.fft_size,
    base: Any = _S.base,
    unsafe_load: bool = _S.unsafe_load,
) -> Any:
    """Every tensor of a model with what :func:`analyze` would do with it, without computing.

    Returns a pandas DataFrame, one row per tensor: ``layer_id`` (tensors with ≥ 2 dims),
    ``name``, ``kind``, ``shape``, ``dtype``, ``N``, ``M``, ``num_matrices``, ``num_evals``,
    ``status`` (``analysed``, ``skipped`` or ``failed``) and ``reason``. With ``pool=False``
    a conv layer is listed once per kernel slice (``name [slice i,j]``), as ``analyze`` would
    analyse it. The keywords are :func:`analyze`'s.
    """
    options, _, source_options = _options(locals())
    with open_source(
        model, unsafe_load=source_options.unsafe_load, base=source_options.base
    ) as source:
        return coverage_frame(plan_layers(source, options))


def randomized_eigenvalues(
    model: Any,
    *,
    layers: Layers = None,
    seed: int = _A.seed,
    min_evals: int = _A.min_evals,
    max_evals: int | None = _A.max_evals,
    conv_scale: ConvScale = _A.conv_scale,
    split_fused: bool = _A.split_fused,
    fused_heads: int | None = _A.fused_heads,
    unsafe_load: bool = _S.unsafe_load,
) -> dict[str, Any]:
    """The ESD of each layer's element-shuffled weights, by layer name.

    The shuffles are those of ``analyze(model, randomize=True, seed=seed)`` with the same
    layer options (same per-layer seed, orientation and number of replicas), so
    ``max_rand_eval`` of that report is the largest eigenvalue here. A layer that cannot be
    read or shuffled is left out. (``analyze(..., randomize=True, keep_fits=True)`` keeps the
    same spectra in ``report.fits[name].randomized`` while it analyses.)
    """
    options, _, source_options = _options(locals())  # first: locals() are the keywords
    from alphahat.spectrum.randomize import layer_randomized_spectrum

    out: dict[str, Any] = {}
    for layer in iter_layers(model, options, unsafe_load=source_options.unsafe_load):
        if layer.values is None:
            continue  # its analysis row says why
        try:
            shuffled = layer_randomized_spectrum(
                layer.values, layer.matrices, layer.plan.scale, seed=options.seed, name=layer.name
            )
        except LAYER_ERRORS:
            continue
        out[layer.name] = shuffled.eigenvalues
    return out


def _absolute(base: Any) -> Any:
    """A path-like base as an absolute path string (workers re-open it); others unchanged."""
    if isinstance(base, str | os.PathLike):
        return str(Path(base).resolve())
    return base


__all__ = [
    "AnalysisOptions",
    "ExecutionOptions",
    "SourceOptions",
    "analyze",
    "describe",
    "randomized_eigenvalues",
    "run_analysis",
]
