"""Fit: power-law fits of a sample's tail (pure numpy/scipy, no I/O, no framework types).

* :func:`fit_power_law` — continuous or discrete power law, x_min by minimum KS distance (or
  the ``peak``/fixed policies), x_max policies, three tool conventions (``reference``,
  ``clauset``, ``powerlaw``); exact and fast (pruned x_min search).
* :mod:`alphahat.fit.alternatives` — exponential, log-normal and truncated power-law fits of
  the same tail, and Vuong's likelihood-ratio test between any two.
* :mod:`alphahat.fit.bootstrap` — Clauset's goodness-of-fit p-value and bootstrap standard
  errors.
* :func:`fit_marchenko_pastur` — Marchenko–Pastur fit of an ESD's bulk (σ, bulk edges,
  Tracy–Widom spikes, MP soft rank; :mod:`alphahat.fit.marchenko_pastur`).

See docs/fitting.md for the formulas and when to use which option.
"""

from typing import TYPE_CHECKING, Any

from alphahat.fit.power_law import (
    CONVENTIONS,
    XMIN_POLICIES,
    FitStatus,
    PowerLawFit,
    esd_peak,
    fit_power_law,
)

if TYPE_CHECKING:
    from alphahat.fit.alternatives import (
        DISTRIBUTIONS,
        LikelihoodRatio,
        TailFit,
        compare_distributions,
        fit_esd_truncated_power_law,
        fit_tail,
    )
    from alphahat.fit.bootstrap import (
        BootstrapErrors,
        GoodnessOfFit,
        power_law_goodness_of_fit,
        power_law_standard_errors,
    )
    from alphahat.fit.marchenko_pastur import (
        MarchenkoPasturFit,
        MPFitStatus,
        fit_marchenko_pastur,
        marchenko_pastur_density,
        quarter_circle_density,
    )

# alternatives and bootstrap need scipy.stats/optimize/integrate: imported on first use only
_LAZY = {
    **dict.fromkeys(
        (
            "DISTRIBUTIONS",
            "LikelihoodRatio",
            "TailFit",
            "compare_distributions",
            "fit_esd_truncated_power_law",
            "fit_tail",
        ),
        "alphahat.fit.alternatives",
    ),
    **dict.fromkeys(
        (
            "BootstrapErrors",
            "GoodnessOfFit",
            "power_law_goodness_of_fit",
            "power_law_standard_errors",
        ),
        "alphahat.fit.bootstrap",
    ),
    **dict.fromkeys(
        (
            "MPFitStatus",
            "MarchenkoPasturFit",
            "fit_marchenko_pastur",
            "marchenko_pastur_density",
            "quarter_circle_density",
        ),
        "alphahat.fit.marchenko_pastur",
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'alphahat.fit' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "CONVENTIONS",
    "DISTRIBUTIONS",
    "XMIN_POLICIES",
    "BootstrapErrors",
    "FitStatus",
    "GoodnessOfFit",
    "LikelihoodRatio",
    "MPFitStatus",
    "MarchenkoPasturFit",
    "PowerLawFit",
    "TailFit",
    "compare_distributions",
    "esd_peak",
    "fit_esd_truncated_power_law",
    "fit_marchenko_pastur",
    "fit_power_law",
    "fit_tail",
    "marchenko_pastur_density",
    "power_law_goodness_of_fit",
    "power_law_standard_errors",
    "quarter_circle_density",
]
