"""The distribution of a weight matrix's entries, each side apart: tail laws and the bulk's shape.

For one side of W's entries — the magnitudes x = w of the positive entries, or x = −w of the
negative ones — all by maximum likelihood:

* the **tail** x ≥ x_min, x_min by the minimum KS distance of a continuous power law
  (Clauset, Shalizi & Newman 2009; :func:`alphahat.fit.fit_power_law`, its default convention:
  α̂ = 1 + n/Σ ln(x/x_min) at every candidate x_min, the exact pruned search): power law
  p(x) = (α − 1)/x_min · (x/x_min)^(−α), exponential
  λ e^(−λ(x − x_min)) and log-normal truncated at x_min (:mod:`alphahat.fit.alternatives`),
  each with its KS distance D = sup |F̂ − F| on the tail, and Vuong's likelihood-ratio tests of
  the power law against the other two (R > 0 favours the power law; p the significance of R's
  sign);
* the **whole side** x > 0: half-Gaussian p(x) = √(2/π)/s · e^(−x²/2s²), ŝ² = mean x², and
  half-Laplace (exponential) p(x) = e^(−x/b)/b, b̂ = mean x, each with D, and Vuong's test
  Laplace vs Gaussian (R > 0 favours Laplace: heavier than Gaussian).

The sides are fitted apart because trained weights are often skewed (one side's tail heavier).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special

from alphahat.fit.alternatives import (
    TailFit,
    compare_distributions,
    fit_exponential,
    fit_lognormal,
    fit_power_law_tail,
    loglikelihood_ratio,
)
from alphahat.fit.power_law import fit_power_law

FloatArray = npt.NDArray[np.float64]
NAN = math.nan
#: A side with fewer entries than this gets NaN fits.
MIN_SIDE = 10


def ks_distance(sorted_sample: FloatArray, cdf: FloatArray) -> float:
    """Sup |F̂ − F| for a sorted sample and the model CDF at its points (both sides of steps)."""
    n = sorted_sample.size
    upper = np.arange(1, n + 1) / n - cdf
    lower = cdf - np.arange(0, n) / n
    return float(max(upper.max(), lower.max()))


def _tail_cdf(fit: TailFit, tail: FloatArray) -> FloatArray:
    xmin = fit.xmin
    p = fit.parameters
    if fit.distribution == "power_law":
        out: FloatArray = 1.0 - (tail / xmin) ** (1.0 - p["alpha"])
    elif fit.distribution == "exponential":
        out = 1.0 - np.exp(-p["Lambda"] * (tail - xmin))
    else:  # log-normal truncated at xmin
        mu, sigma = p["mu"], p["sigma"]
        low = float(special.ndtr((math.log(xmin) - mu) / sigma))
        if not low < 1.0:  # a degenerate fit (μ → −∞ on a pure power-law tail): no CDF
            return np.full(tail.shape, NAN)
        out = (special.ndtr((np.log(tail) - mu) / sigma) - low) / (1.0 - low)
    return out


def _tail_columns(x: FloatArray) -> dict[str, Any]:
    law = fit_power_law(x)
    columns: dict[str, Any] = {
        "pl_alpha": law.alpha, "pl_xmin": law.xmin, "pl_D": law.D, "n_tail": law.n_tail,
    }  # fmt: skip
    if not law.fitted:
        return columns
    tail = np.sort(x[x >= law.xmin])
    power = fit_power_law_tail(tail, law.xmin, law.alpha)
    for key, fit in (
        ("exp", fit_exponential(tail, law.xmin)),
        ("ln", fit_lognormal(tail, law.xmin)),
    ):
        if not (fit.fitted and power.fitted):
            continue
        if key == "exp":
            columns["exp_Lambda"] = fit.parameters["Lambda"]
        else:
            columns["ln_mu"], columns["ln_sigma"] = fit.parameters["mu"], fit.parameters["sigma"]
        cdf = _tail_cdf(fit, tail)
        columns[f"{key}_D"] = ks_distance(tail, cdf) if np.isfinite(cdf).all() else NAN
        test = compare_distributions(power, fit)
        columns[f"R_pl_{key}"], columns[f"p_pl_{key}"] = test.R, test.p
    return columns


def _bulk_columns(x: FloatArray) -> dict[str, Any]:
    xs = np.sort(x)
    scale = math.sqrt(float(np.mean(xs * xs)))
    b = float(xs.mean())
    gauss = 0.5 * math.log(2.0 / math.pi) - math.log(scale) - xs * xs / (2.0 * scale * scale)
    laplace = -math.log(b) - xs / b
    ratio, _, p = loglikelihood_ratio(laplace, gauss)
    return {
        "gauss_scale": scale,
        "gauss_D": ks_distance(xs, special.erf(xs / (scale * math.sqrt(2.0)))),
        "laplace_scale": b,
        "laplace_D": ks_distance(xs, 1.0 - np.exp(-xs / b)),
        "R_laplace_gauss": ratio,
        "p_laplace_gauss": p,
    }


def fit_entry_side(x: npt.ArrayLike) -> dict[str, Any]:
    """The fits of one side's magnitudes x > 0 (see the module docstring), as columns.

    Columns: ``n``, ``pl_alpha``, ``pl_xmin``, ``pl_D``, ``n_tail``, ``exp_Lambda``, ``exp_D``,
    ``ln_mu``, ``ln_sigma``, ``ln_D``, ``R_pl_exp``, ``p_pl_exp``, ``R_pl_ln``, ``p_pl_ln``,
    ``gauss_scale``, ``gauss_D``, ``laplace_scale``, ``laplace_D``, ``R_laplace_gauss``,
    ``p_laplace_gauss``; NaN where undefined (fewer than :data:`MIN_SIDE` entries, a failed fit).
    """
    values = np.asarray(x, dtype=np.float64).reshape(-1)
    values = values[np.isfinite(values) & (values > 0)]
    columns: dict[str, Any] = dict.fromkeys(ENTRY_COLUMNS, NAN)
    columns["n"] = int(values.size)
    if values.size < MIN_SIDE or values.min() == values.max():
        return columns
    columns.update(_bulk_columns(values))
    columns.update(_tail_columns(values))
    return columns


ENTRY_COLUMNS = (
    "n", "pl_alpha", "pl_xmin", "pl_D", "n_tail", "exp_Lambda", "exp_D", "ln_mu", "ln_sigma",
    "ln_D", "R_pl_exp", "p_pl_exp", "R_pl_ln", "p_pl_ln", "gauss_scale", "gauss_D",
    "laplace_scale", "laplace_D", "R_laplace_gauss", "p_laplace_gauss",
)  # fmt: skip

__all__ = ["ENTRY_COLUMNS", "MIN_SIDE", "fit_entry_side", "ks_distance"]
