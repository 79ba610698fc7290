"""What every allocation shares: the per-layer α table, groups, the linear map, the budget.

Pure: pandas/numpy in, pandas/numpy out; no I/O, no framework.

* :func:`alpha_table` reads a :class:`~alphahat.report.Report` (its ``details``) or a table
  with ``name``, ``alpha`` and the parameter count (``n_params``, or ``N`` × ``M`` ×
  ``num_matrices``) into one frame: ``name``, ``alpha``, ``n_params``, ``defined`` (α is a
  finite number of a fitted layer) and ``reason`` (why not).
* :func:`group_keys` names each layer's group (a transformer block, say) from a regular
  expression, a mapping or a function; :func:`group_alphas` gives each layer its group's mean α
  (the block-wise mapping of AlphaPruning's and AlphaLoRA's public code).
* :func:`linear_map` is the map all four papers use: α ↦ low + (α − α_min)/(α_max − α_min) ·
  (high − low).
* :func:`scale_to_budget` finds the scale c with Σ nᵢ·clip(c·φᵢ, 0, 1) = S·Σ nᵢ exactly
  (piecewise linear in c, solved segment by segment, no iteration to a tolerance).
* :func:`shift_to_budget` does the same with one shift d: Σ nᵢ·clip(φᵢ + d, 0, 1) = S·Σ nᵢ.
* :func:`largest_remainder` rounds shares to integers with an exact sum (Hamilton's method).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from alphahat.errors import OptionError

#: Columns of :func:`alpha_table`.
ALPHA_TABLE_COLUMNS = ("name", "alpha", "n_params", "defined", "reason")

#: How a layer's group is given: a regular expression (its first capture group, or the whole
#: match, names the group; a name it does not match is a group of its own), a mapping from layer
#: name to group (names not in it: their own group) or a function of the name.
Groups = str | Mapping[str, str] | Callable[[str], str]


def _from_details(details: pd.DataFrame) -> pd.DataFrame:
    n_params = details["N"] * details["M"] * details["num_matrices"]
    frame = pd.DataFrame(
        {
            "name": details["name"].astype(str),
            "alpha": pd.to_numeric(details["alpha"], errors="coerce").astype("float64"),
            "n_params": n_params,
        }
    )
    status = details["status"].astype(str).to_numpy()
    reasons = details["reason"].fillna("").astype(str).to_numpy() if "reason" in details else None
    frame["status"] = status
    frame["status_reason"] = reasons if reasons is not None else ""
    return frame


def _from_table(table: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("name", "alpha") if c not in table.columns]
    if missing:
        raise ValueError(
            f"the α table has no column {missing[0]!r} (columns: name, alpha, n_params)"
        )
    if "n_params" in table.columns:
        n_params = table["n_params"]
    elif "N" in table.columns and "M" in table.columns:
        count = table["num_matrices"] if "num_matrices" in table.columns else 1
        n_params = table["N"] * table["M"] * count
    else:
        raise ValueError("the α table needs a column n_params, or N and M (parameters = N·M)")
    frame = pd.DataFrame(
        {
            "name": table["name"].astype(str),
            "alpha": pd.to_numeric(table["alpha"], errors="coerce").astype("float64"),
            "n_params": n_params,
        }
    )
    frame["status"] = table["status"].astype(str) if "status" in table.columns else "fitted"
    frame["status_reason"] = table["reason"].fillna("").astype(str) if "reason" in table else ""
    return frame


def alpha_table(source: Any) -> pd.DataFrame:
    """The per-layer α table of a report, a DataFrame or a mapping of columns.

    Args:
        source: a :class:`~alphahat.report.Report` (its ``details``: every analysed matrix,
            fitted or failed, with ``N``, ``M``, ``num_matrices``), or a DataFrame / mapping of
            columns with ``name``, ``alpha`` and ``n_params`` (or ``N`` and ``M``, times
            ``num_matrices`` if present), optionally ``status`` and ``reason``.

    Returns:
        ``name``, ``alpha`` (float, NaN where undefined), ``n_params`` (int64, the matrix's
        N·M·num_matrices), ``defined`` (α finite and the layer ``fitted``) and ``reason`` (why
        α is undefined: the failure's reason, or "α undefined"; "" where defined), in the
        source's order.

    Raises:
        ValueError: a column is missing, a name repeats, or a parameter count is not a
            positive integer.
    """
    details = getattr(source, "details", None)
    if isinstance(details, pd.DataFrame):
        frame = _from_details(details)
    elif isinstance(source, pd.DataFrame):
        frame = _from_table(source)
    elif isinstance(source, Mapping):
        try:
            table = pd.DataFrame(dict(source))
        except ValueError as exc:
            raise ValueError(f"the α mapping is not a table of columns: {exc}") from None
        frame = _from_table(table)
    else:
        raise ValueError(
            "allocations read a Report, a DataFrame or a mapping of columns "
            f"(name, alpha, n_params); got {type(source).__name__}"
        )
    counts = pd.to_numeric(frame["n_params"], errors="coerce").to_numpy(dtype="float64")
    bad = ~np.isfinite(counts) | (counts < 1) | (counts != np.round(counts))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"layer {frame['name'].iloc[i]!r}: the parameter count must be a positive integer; "
            f"got {frame['n_params'].iloc[i]!r}"
        )
    repeated = frame["name"][frame["name"].duplicated()]
    if len(repeated):
        raise ValueError(f"layer {repeated.iloc[0]!r} appears twice in the α table")
    alpha = frame["alpha"].to_numpy(dtype="float64")
    fitted = frame["status"].to_numpy() == "fitted"
    defined = np.isfinite(alpha) & fitted
    reason = np.where(
        defined,
        "",
        np.where(
            fitted,
            "α undefined",
            "failed: " + frame["status_reason"].astype(str).to_numpy(dtype=object),
        ),
    )
    return pd.DataFrame(
        {
            "name": frame["name"].to_numpy(dtype=object),
            "alpha": np.where(defined, alpha, np.nan),
            "n_params": counts.astype("int64"),
            "defined": defined,
            "reason": reason.astype(object),
        },
        columns=list(ALPHA_TABLE_COLUMNS),
    )


def group_keys(names: Any, groups: Groups) -> list[str]:
    """The group of each layer name (see :data:`Groups`)."""
    names = [str(n) for n in names]
    if isinstance(groups, str):
        try:
            pattern = re.compile(groups)
        except re.error as exc:
            raise OptionError("groups", "a valid regular expression", groups) from exc
        keys = []
        for name in names:
            match = pattern.search(name)
            if match is None:
                keys.append(name)
            elif pattern.groups and match.group(1) is not None:
                keys.append(match.group(1))
            else:
                keys.append(match.group(0))
        return keys
    if isinstance(groups, Mapping):
        return [str(groups.get(name, name)) for name in names]
    if callable(groups):
        return [str(groups(name)) for name in names]
    raise OptionError("groups", "a regular expression, a mapping or a function", groups)


def group_alphas(table: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """Each layer's group mean of the defined α (NaN for a group with none defined)."""
    alpha = pd.Series(table["alpha"].to_numpy(dtype="float64"))
    means = alpha.groupby(pd.Series(keys)).transform("mean")  # skips NaN
    return means.to_numpy(dtype="float64")


def linear_map(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """The linear map low + (v − v_min)/(v_max − v_min)·(high − low); all equal → (low + high)/2.

    ``values`` must be finite. The map is increasing: the largest value gets ``high``.
    """
    values = np.asarray(values, dtype="float64")
    if values.size == 0:
        return values.copy()
    v_min, v_max = float(values.min()), float(values.max())
    if v_max == v_min:
        return np.full(values.shape, (low + high) / 2.0)
    return low + (values - v_min) / (v_max - v_min) * (high - low)


def scale_to_budget(phi: np.ndarray, weights: np.ndarray, budget: float) -> np.ndarray:
    """The ratios r = clip(c·φ, 0, 1) with the c ≥ 0 for which Σ wᵢ·rᵢ = ``budget``.

    g(c) = Σ wᵢ·clip(c·φᵢ, 0, 1) is continuous, piecewise linear and non-decreasing in c; its
    breakpoints are c = 1/φᵢ (φᵢ > 0). Between two breakpoints g(c) = Σ_{saturated} wᵢ +
    c·Σ_{free} wᵢφᵢ, so the root is found exactly, segment by segment, starting from the
    unconstrained scale budget/Σ wᵢφᵢ (the papers' rescaling when no ratio exceeds 1).

    Raises:
        ValueError: the budget is out of reach (more than Σ_{φ>0} wᵢ, or negative).
    """
    phi = np.asarray(phi, dtype="float64")
    weights = np.asarray(weights, dtype="float64")
    out = np.zeros_like(phi)
    positive = phi > 0
    reachable = float(weights[positive].sum())
    if budget < 0 or budget > reachable * (1 + 1e-15):
        raise ValueError(
            f"the budget {budget:g} is out of reach: at most {reachable:g} of the parameters "
            "can be allocated with these ratios (ratios are capped at 1)"
        )
    if budget == 0 or not positive.any():
        return out
    order = np.argsort(-phi[positive], kind="stable")  # largest φ saturates first
    idx = np.flatnonzero(positive)[order]
    saturated_weight = 0.0
    free_weight = float(np.sum(weights[idx] * phi[idx]))
    scale = math.inf
    for k in range(len(idx) + 1):
        if k > 0:
            i = idx[k - 1]
            saturated_weight += float(weights[i])
            free_weight -= float(weights[i] * phi[i])
        if k == len(idx) or free_weight <= 0:
            scale = math.inf  # every positive layer saturated: budget == reachable
            break
        scale = (budget - saturated_weight) / free_weight
        upper = 1.0 / phi[idx[k]]  # next layer saturates beyond this scale
        if scale <= upper:
            break
    if math.isinf(scale):
        out[positive] = 1.0
        return out
    out[positive] = np.minimum(scale * phi[positive], 1.0)
    return out


def shift_to_budget(phi: np.ndarray, weights: np.ndarray, budget: float) -> np.ndarray:
    """The ratios r = clip(φ + d, 0, 1) with the shift d for which Σ wᵢ·rᵢ = ``budget``.

    g(d) = Σ wᵢ·clip(φᵢ + d, 0, 1) is continuous, piecewise linear and non-decreasing; its
    breakpoints are d = −φᵢ and d = 1 − φᵢ. g is evaluated at every breakpoint, the segment
    holding the budget is found and d solved on it exactly (slope: the weight of the layers
    strictly inside (0, 1) there). Without clipping d = (budget − Σwᵢφᵢ)/Σwᵢ.

    Raises:
        ValueError: the budget is negative or more than Σ wᵢ.
    """
    phi = np.asarray(phi, dtype="float64")
    weights = np.asarray(weights, dtype="float64")
    total = float(weights.sum())
    if budget < 0 or budget > total * (1 + 1e-15):
        raise ValueError(f"the budget {budget:g} is out of reach (0 to {total:g})")
    if phi.size == 0:
        return phi.copy()
    free = float(np.sum(weights * phi))
    shift = (budget - free) / total
    trial: np.ndarray = phi + shift
    if trial.min() >= 0 and trial.max() <= 1:
        return trial  # no layer clipped: the plain shift
    points = np.unique(np.concatenate([-phi, 1.0 - phi]))
    values = np.sum(weights[None, :] * np.clip(phi[None, :] + points[:, None], 0, 1), axis=1)
    k = int(np.searchsorted(values, budget, side="left"))
    if k == 0:
        lowest: np.ndarray = np.clip(phi + points[0], 0.0, 1.0)
        return lowest
    if k == len(points):
        return np.ones_like(phi)
    left, right = points[k - 1], points[k]
    inside = (phi + (left + right) / 2 > 0) & (phi + (left + right) / 2 < 1)
    slope = float(weights[inside].sum())
    shift = right if slope == 0 else left + (budget - values[k - 1]) / slope
    ratios: np.ndarray = np.clip(phi + shift, 0.0, 1.0)
    return ratios


def largest_remainder(shares: np.ndarray, total: int) -> np.ndarray:
    """Integers proportional to ``shares`` with sum ``total`` (Hamilton's method).

    Each gets ⌊qᵢ⌋ of its quota qᵢ = total·sᵢ/Σ s; the units left go one each to the largest
    remainders qᵢ − ⌊qᵢ⌋ (ties: the earlier layer).
    """
    shares = np.asarray(shares, dtype="float64")
    if shares.size == 0:
        return np.zeros(0, dtype="int64")
    quotas = shares / shares.sum() * total
    floors = np.floor(quotas)
    left = int(round(total - floors.sum()))
    order = np.argsort(-(quotas - floors), kind="stable")
    floors[order[:left]] += 1
    counts: np.ndarray = floors.astype("int64")
    return counts
