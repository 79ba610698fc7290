"""The per-layer pipeline: the options, one layer's analysis, and the walk over a model's layers.

* :mod:`~alphahat.pipeline.options` — every option, declared once (:class:`AnalysisOptions`,
  :class:`ExecutionOptions`, :class:`SourceOptions`, :data:`OPTION_TABLE`).
* :mod:`~alphahat.pipeline.core` — :func:`analyse_layer`: a layer's matrices and the options
  to a frozen :class:`LayerResult` (spectrum, the fit actually used, MP fit, metric row). Pure.
* :mod:`~alphahat.pipeline.walk` — :func:`plan_layers`, :func:`iter_layers`: the planned layers
  of a model, each loaded in turn.

>>> from alphahat.pipeline import AnalysisOptions, analyse_layer, iter_layers
>>> options = AnalysisOptions(fix_fingers="xmin_peak")
>>> for layer in iter_layers("model.safetensors", options):     # doctest: +SKIP
...     result = analyse_layer(layer.matrices, options, scale=layer.plan.scale, name=layer.name)
...     print(layer.name, result.fit.alpha, result.fit.xmin)
"""

from alphahat.pipeline.core import (
    LAYER_ERRORS,
    LayerResult,
    analyse_layer,
    error_reason,
    failed_row,
    fit_stage,
)
from alphahat.pipeline.options import (
    ANALYSIS_DEFAULTS,
    EXECUTION_DEFAULTS,
    OPTION_TABLE,
    SOURCE_DEFAULTS,
    AnalysisOptions,
    ExecutionOptions,
    OptionSpec,
    SourceOptions,
    default,
    split_options,
)
from alphahat.pipeline.walk import (
    LoadedLayer,
    analyse_loaded,
    iter_layers,
    load_layer,
    load_planned,
    plan_layers,
)

__all__ = [
    "ANALYSIS_DEFAULTS",
    "EXECUTION_DEFAULTS",
    "LAYER_ERRORS",
    "OPTION_TABLE",
    "SOURCE_DEFAULTS",
    "AnalysisOptions",
    "ExecutionOptions",
    "LayerResult",
    "LoadedLayer",
    "OptionSpec",
    "SourceOptions",
    "analyse_layer",
    "analyse_loaded",
    "default",
    "error_reason",
    "failed_row",
    "fit_stage",
    "iter_layers",
    "load_layer",
    "load_planned",
    "plan_layers",
    "split_options",
]
