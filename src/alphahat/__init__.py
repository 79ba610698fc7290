"""alphahat: how well is a neural network trained? Ask its weights (HT-SR, no data needed).

>>> import alphahat
>>> report = alphahat.analyze("model.safetensors")   # doctest: +SKIP
>>> report.details       # one row per weight matrix: alpha, alpha_weighted, D, norms, …
>>> print(report.summary())

Importing this package imports no deep-learning framework.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from alphahat._version import __version__

if TYPE_CHECKING:
    from alphahat.analysis import analyze, describe
    from alphahat.fit import PowerLawFit, fit_power_law
    from alphahat.fit.esd import LayerFit
    from alphahat.layers import LayerFilter
    from alphahat.pipeline import AnalysisOptions, LayerResult, analyse_layer, iter_layers
    from alphahat.report import Report, Summary, aggregate
    from alphahat.traps import analyze_traps, randomize_model, remove_traps
    from alphahat.weights import analyze_weights

__all__ = [
    "AnalysisOptions",
    "LayerFilter",
    "LayerFit",
    "LayerResult",
    "PowerLawFit",
    "Report",
    "Summary",
    "__version__",
    "aggregate",
    "analyse_layer",
    "analyze",
    "analyze_traps",
    "analyze_weights",
    "describe",
    "fit_power_law",
    "iter_layers",
    "randomize_model",
    "remove_traps",
]

_LAZY = {
    "AnalysisOptions": "alphahat.pipeline",
    "LayerResult": "alphahat.pipeline",
    "analyse_layer": "alphahat.pipeline",
    "iter_layers": "alphahat.pipeline",
    "analyze": "alphahat.analysis",
    "describe": "alphahat.analysis",
    "PowerLawFit": "alphahat.fit",
    "fit_power_law": "alphahat.fit",
    "LayerFit": "alphahat.fit.esd",
    "LayerFilter": "alphahat.layers",
    "Report": "alphahat.report",
    "Summary": "alphahat.report",
    "aggregate": "alphahat.report",
    "analyze_traps": "alphahat.traps",
    "randomize_model": "alphahat.traps",
    "remove_traps": "alphahat.traps",
    "analyze_weights": "alphahat.weights",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'alphahat' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
