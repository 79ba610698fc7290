"""From α to per-layer settings: the published allocations, each from its paper's equations.

Every function takes a :class:`~alphahat.report.Report` (or a per-layer α table, see
:func:`~alphahat.allocation.core.alpha_table`) and the method's parameters, with the paper's
defaults, and returns one row per layer: ``name``, ``alpha``, ``n_params``, the allocated value
and ``note`` (why a layer got a neutral value or none). With ``groups`` (a transformer block,
say) each layer is given its group's mean α first — the ``block_wise`` mapping of the
AlphaPruning and AlphaLoRA code — and the table has a ``group`` column.

Layers whose α is undefined (a failed layer, a NaN α) are never guessed at: ``undefined``
says what they get — the method's neutral value (the target sparsity; a factor of 1, the
base learning rate or weight decay, as the public code leaves untuned layers) or nothing
(``"exclude"``: the value is NaN and the budget is met by the other layers alone).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import pandas as pd

from alphahat.allocation.core import (
    Groups,
    alpha_table,
    group_alphas,
    group_keys,
    largest_remainder,
    linear_map,
    scale_to_budget,
    shift_to_budget,
)
from alphahat.errors import OptionError

#: The column of each allocation's value, by function.
VALUE_COLUMNS = {
    "sparsity_ratios": "sparsity",
    "learning_rate_factors": "lr_factor",
    "weight_decay_factors": "weight_decay_factor",
    "lora_expert_counts": "experts",
}

Undefined = Literal["neutral", "exclude"]


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise OptionError(name, "one of " + ", ".join(repr(c) for c in choices), value)


def _check_number(name: str, value: object, requirement: str, ok: Callable[[float], bool]) -> float:
    """``value`` as a float, or an :class:`OptionError` naming ``requirement``."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        raise OptionError(name, requirement, value)
    number = float(value)
    if not np.isfinite(number) or not ok(number):
        raise OptionError(name, requirement, value)
    return number


def _prepared(source: Any, groups: Groups | None) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """The α table, the α each layer is mapped from (its group's mean with groups), the keys."""
    table = alpha_table(source)
    if groups is None:
        return table, table["alpha"].to_numpy(dtype="float64"), list(table["name"])
    keys = group_keys(table["name"], groups)
    mapped = np.where(table["defined"].to_numpy(), group_alphas(table, keys), np.nan)
    table.insert(1, "group", keys)
    return table, mapped, keys


def _result(
    table: pd.DataFrame,
    mapped: np.ndarray,
    column: str,
    values: np.ndarray,
    notes: np.ndarray,
    grouped: bool,
) -> pd.DataFrame:
    out = table.drop(columns=["defined", "reason"]).copy()
    if grouped:
        out.insert(list(out.columns).index("alpha") + 1, "group_alpha", mapped)
    out[column] = values
    out["note"] = notes
    return out.reset_index(drop=True)


def _linear_factors(
    source: Any,
    column: str,
    method: str,
    methods: tuple[str, ...],
    low: float,
    high: float,
    groups: Groups | None,
    undefined: Undefined,
) -> pd.DataFrame:
    _check_choice("method", method, methods)
    _check_choice("undefined", undefined, ("neutral", "exclude"))
    low = _check_number("low", low, "a number > 0", lambda v: v > 0)
    high = _check_number("high", high, f"a number ≥ low ({low:g})", lambda v: v >= low)
    table, mapped, _ = _prepared(source, groups)
    defined = table["defined"].to_numpy()
    values = np.full(len(table), 1.0 if undefined == "neutral" else np.nan)
    if method == "uniform":
        values[defined] = 1.0
    else:
        values[defined] = linear_map(mapped[defined], low, high)
    fill = "factor 1 (α undefined)" if undefined == "neutral" else "excluded (α undefined)"
    notes = np.where(defined, "", table["reason"].astype(str) + "; " + fill)
    return _result(table, mapped, column, values, notes.astype(object), groups is not None)


def sparsity_ratios(
    source: Any,
    target: float = 0.7,
    *,
    method: Literal["alphapruning", "uniform"] = "alphapruning",
    epsilon: float = 0.3,
    range_mode: Literal["relative", "absolute"] = "relative",
    groups: Groups | None = None,
    undefined: Undefined = "neutral",
) -> pd.DataFrame:
    r"""Layer-wise pruning ratios from α: AlphaPruning (Lu et al., NeurIPS 2024).

    H. Lu, Y. Zhou, S. Liu, Z. Wang, M. W. Mahoney, Y. Yang, "AlphaPruning: Using Heavy-Tailed
    Self Regularization Theory for Improved Layer-wise Pruning of Large Language Models",
    NeurIPS 2024 (arXiv:2410.10912). A layer with a larger α (a lighter tail: less well
    trained) is pruned more. With qᵢ the layer's α, the allocation is the linear map

        φᵢ = s₁ + (qᵢ − q_min)/(q_max − q_min)·(s₂ − s₁)

    followed by the one adjustment that meets the global target S on the parameter count
    nᵢ = NᵢMᵢ exactly, with every ratio in [0, 1]:

    * ``range_mode="relative"`` (default), as the paper's public code (``prune_*_ww``):
      (s₁, s₂) = (1 − ε, 1 + ε) and one scale c,
      sᵢ = min(c·φᵢ, 1) with Σ nᵢ·sᵢ = S·Σ nᵢ (c = S·Σnᵢ/Σnᵢφᵢ when no sᵢ reaches 1), so the
      ratios lie in ≈ S·[1 − ε, 1 + ε];
    * ``range_mode="absolute"``: (s₁, s₂) = (S − ε, S + ε) and one shift d,
      sᵢ = clip(φᵢ + d, 0, 1) with Σ nᵢ·sᵢ = S·Σ nᵢ (d = S − Σnᵢφᵢ/Σnᵢ when nothing is
      clipped): the ratios span exactly 2ε, [S − ε + d, S + ε + d].

    A ratio is never above 1 (nor below 0): the excess goes to the other layers (c or d is
    found exactly on its piecewise-linear equation, not by iteration). All α equal (or one
    layer): every ratio is S. The paper's defaults: S = 0.7, ε = 0.3 for magnitude
    pruning of LLaMA-7B (0.2 with Wanda or SparseGPT), α from the Hill estimator with x_min at
    the ESD peak (``fix_fingers="xmin_peak"`` here) and α averaged per transformer block
    (the code's default ``mapping_type="block_wise"``) — pass ``groups`` (e.g.
    ``r"layers?\.(\d+)\."``) to do the same.

    ``method="uniform"``: every layer gets S (the baseline the paper compares with).

    Args:
        source: a Report or an α table (see :func:`~alphahat.allocation.core.alpha_table`).
        target: S, the parameter-weighted mean sparsity, in [0, 1].
        epsilon: ε ≥ 0, the half-width of the range (≤ 1 with ``"relative"``).
        groups: map each layer from its group's mean α (see
            :data:`~alphahat.allocation.core.Groups`).
        undefined: ``"neutral"``: a layer with undefined α gets S; ``"exclude"``: NaN, and
            the budget S·Σnᵢ is taken over the layers with a defined α only.

    Returns:
        ``name`` [, ``group``], ``alpha`` [, ``group_alpha``], ``n_params``, ``sparsity``
        (the fraction of the layer's weights to remove), ``note``.
    """
    _check_choice("method", method, ("alphapruning", "uniform"))
    _check_choice("range_mode", range_mode, ("relative", "absolute"))
    _check_choice("undefined", undefined, ("neutral", "exclude"))
    target = _check_number("target", target, "a number in [0, 1]", lambda v: 0 <= v <= 1)
    limit = 1 if range_mode == "relative" else float("inf")
    requirement = "a number in [0, 1]" if range_mode == "relative" else "a number ≥ 0"
    epsilon = _check_number("epsilon", epsilon, requirement, lambda v: 0 <= v <= limit)
    table, mapped, _ = _prepared(source, groups)
    defined = table["defined"].to_numpy()
    weights = table["n_params"].to_numpy(dtype="float64")
    values = np.full(len(table), target if undefined == "neutral" else np.nan)
    if method == "uniform" or not defined.any():
        values[defined] = target
    else:
        s1, s2 = (
            (1 - epsilon, 1 + epsilon)
            if range_mode == "relative"
            else (target - epsilon, target + epsilon)
        )
        phi = linear_map(mapped[defined], s1, s2)
        adjust = scale_to_budget if range_mode == "relative" else shift_to_budget
        values[defined] = adjust(phi, weights[defined], target * weights[defined].sum())
    fill = "target sparsity (α undefined)" if undefined == "neutral" else "excluded (α undefined)"
    notes = np.where(defined, "", table["reason"].astype(str) + "; " + fill)
    return _result(table, mapped, "sparsity", values, notes.astype(object), groups is not None)


def learning_rate_factors(
    source: Any,
    *,
    method: Literal["tempbalance", "uniform"] = "tempbalance",
    low: float = 0.5,
    high: float = 1.5,
    groups: Groups | None = None,
    undefined: Undefined = "neutral",
) -> pd.DataFrame:
    """Layer-wise learning-rate factors from α: TempBalance (Zhou et al., NeurIPS 2023).

    Y. Zhou, T. Pang, K. Liu, C. H. Martin, M. W. Mahoney, Y. Yang, "Temperature Balancing,
    Layer-wise Weight Analysis, and Neural Network Training", NeurIPS 2023 (arXiv:2312.00359).
    A layer with a larger α (under-trained) gets a larger learning rate, one with a smaller α a
    smaller one; the layer's rate is ηᵢ = η·fᵢ with

        fᵢ = low + (αᵢ − α_min)/(α_max − α_min)·(high − low)

    (the paper's ``tb_linear_map``; defaults (low, high) = (0.5, 1.5), its ``lr_min_ratio``
    and ``lr_max_ratio``). The paper recomputes α and the factors every epoch; call this on a
    fresh report each time. All α equal (or one layer): (low + high)/2. ``method="uniform"``:
    1 everywhere. Turn the factors into optimizer groups with
    :func:`~alphahat.allocation.param_groups`.

    Args:
        undefined: ``"neutral"``: a layer with undefined α gets 1 (the base rate, as the paper's
            code leaves the layers it does not balance); ``"exclude"``: NaN.

    Returns:
        ``name`` [, ``group``], ``alpha`` [, ``group_alpha``], ``n_params``, ``lr_factor``,
        ``note``.
    """
    return _linear_factors(
        source, "lr_factor", method, ("tempbalance", "uniform"), low, high, groups, undefined
    )


def weight_decay_factors(
    source: Any,
    *,
    method: Literal["alphadecay", "uniform"] = "alphadecay",
    low: float = 0.666,
    high: float = 3.0,
    groups: Groups | None = None,
    undefined: Undefined = "neutral",
) -> pd.DataFrame:
    """Module-wise weight-decay factors from α: AlphaDecay (He et al., 2025).

    D. He, A. Jaiswal, S. Tu, L. Shen, G. Yuan, S. Liu, L. Yin, "AlphaDecay: Module-wise
    Weight Decay for Heavy-Tailed Balancing in LLMs", arXiv:2506.14562 (2025). Modules with a
    heavier tail (smaller α: stronger feature learning) get a weaker decay, lighter-tailed
    ones (larger α) a stronger one; each module's decay is λᵢ = λ·fᵢ with the same linear map
    as TempBalance,

        fᵢ = low + (αᵢ − α_min)/(α_max − α_min)·(high − low),

    with the public code's defaults (low, high) = (0.666, 3) (``wd_min_ratio``,
    ``wd_max_ratio``; α increasing with the decay, ``alpha_positively_with_WD``). The paper
    recomputes α every 500 steps; call this on a fresh report each time. All α equal (or one
    module): (low + high)/2. ``method="uniform"``: 1 everywhere.

    Args:
        undefined: ``"neutral"``: a module with undefined α gets 1 (the base decay, as the
            code leaves the modules it does not balance); ``"exclude"``: NaN.

    Returns:
        ``name`` [, ``group``], ``alpha`` [, ``group_alpha``], ``n_params``,
        ``weight_decay_factor``, ``note``.
    """
    return _linear_factors(
        source,
        "weight_decay_factor",
        method,
        ("alphadecay", "uniform"),
        low,
        high,
        groups,
        undefined,
    )


def lora_expert_counts(
    source: Any,
    total: int,
    *,
    method: Literal["alphalora", "uniform"] = "alphalora",
    beta: float = 2.5,
    groups: Groups | None = None,
) -> pd.DataFrame:
    r"""How many LoRA experts each layer gets from α: AlphaLoRA (Qing et al., EMNLP 2024).

    P. Qing, C. Gao, Y. Zhou, X. Diao, Y. Yang, S. Vosoughi, "AlphaLoRA: Assigning LoRA
    Experts Based on Layer Training Quality", EMNLP 2024 (arXiv:2410.10054). A layer with a
    larger α (less well trained) gets more experts: with T experts in all,

        sᵢ = T·αᵢ^β / Σⱼ αⱼ^β,

    rounded to integers that sum to T exactly by the largest-remainder method (each gets ⌊sᵢ⌋,
    the units left go to the largest fractional parts; ties to the earlier layer). Defaults:
    β = 2.5; the paper's Mistral-7B setting is T = 160 over 32 blocks, with α the mean over
    each block's linear layers — pass ``groups`` (e.g. ``r"layers?\.(\d+)\."``) to get one
    row per block as the paper does. ``method="uniform"``: equal shares (the MoLA baseline).
    A layer may get 0 experts; layers (or groups) with no defined α get none (``<NA>``) and T
    is shared by the others.

    Args:
        total: T ≥ 0, the number of experts to share out.
        beta: β ≥ 0, the exponent (β = 0: uniform).
        groups: one row per group (``name`` is the group, ``alpha`` its mean α, ``n_layers``
            its member count, ``n_params`` its sum), see
            :data:`~alphahat.allocation.core.Groups`.

    Returns:
        ``name``, ``alpha``, [``n_layers``,] ``n_params``, ``experts`` (Int64), ``note``.
    """
    _check_choice("method", method, ("alphalora", "uniform"))
    if isinstance(total, bool) or not isinstance(total, int | np.integer) or total < 0:
        raise OptionError("total", "an integer ≥ 0", total)
    beta = _check_number("beta", beta, "a number ≥ 0", lambda v: v >= 0)
    table = alpha_table(source)
    if groups is not None:
        keys = group_keys(table["name"], groups)
        summary = (
            table.assign(key=keys)
            .groupby("key", sort=False)  # groups in the order they first appear
            .agg(alpha=("alpha", "mean"), n_layers=("name", "size"), n_params=("n_params", "sum"))
        )
        table = pd.DataFrame(
            {
                "name": [str(k) for k in summary.index],
                "alpha": summary["alpha"].to_numpy(dtype="float64"),  # the mean skips NaN
                "n_layers": summary["n_layers"].to_numpy(dtype="int64"),
                "n_params": summary["n_params"].to_numpy(dtype="int64"),
            }
        )
        table["defined"] = np.isfinite(table["alpha"].to_numpy())
        table["reason"] = np.where(table["defined"], "", "no layer of the group has a defined α")
    alpha = table["alpha"].to_numpy(dtype="float64")
    defined = table["defined"].to_numpy()
    if defined.any() and method == "alphalora" and (alpha[defined] <= 0).any():
        raise ValueError("AlphaLoRA needs α > 0 (α^β); the α table has α ≤ 0")
    experts = pd.array([pd.NA] * len(table), dtype="Int64")
    if defined.any():
        shares = np.ones(int(defined.sum())) if method == "uniform" else alpha[defined] ** beta
        experts[defined] = largest_remainder(shares, int(total))
    elif total > 0:
        raise ValueError("no layer has a defined α: the experts cannot be shared out")
    out = table.drop(columns=["defined", "reason"]).copy()
    out["experts"] = experts
    notes = np.where(defined, "", table["reason"].astype(str) + "; no experts")
    out["note"] = notes.astype(object)
    return out.reset_index(drop=True)


#: The allocations by method name (the command line's ``--method``).
METHODS = {
    "alphapruning": ("sparsity_ratios", "alphapruning"),
    "uniform": ("sparsity_ratios", "uniform"),
    "tempbalance": ("learning_rate_factors", "tempbalance"),
    "alphadecay": ("weight_decay_factors", "alphadecay"),
    "alphalora": ("lora_expert_counts", "alphalora"),
}


def allocate(source: Any, method: str, **parameters: Any) -> pd.DataFrame:
    """The allocation ``method`` (a key of :data:`METHODS`) of ``source`` with ``parameters``."""
    if method not in METHODS:
        raise OptionError("method", "one of " + ", ".join(repr(m) for m in METHODS), method)
    function, name = METHODS[method]
    allocations: dict[str, Callable[..., pd.DataFrame]] = {
        "sparsity_ratios": sparsity_ratios,
        "learning_rate_factors": learning_rate_factors,
        "weight_decay_factors": weight_decay_factors,
        "lora_expert_counts": lora_expert_counts,
    }
    return allocations[function](source, method=name, **parameters)


def value_column(frame: pd.DataFrame) -> str:
    """The column of ``frame`` that holds the allocated value."""
    for column in VALUE_COLUMNS.values():
        if column in frame.columns:
            return column
    raise ValueError(
        "not an allocation table (no sparsity, lr_factor, weight_decay_factor or experts column)"
    )


def as_mapping(frame: pd.DataFrame) -> dict[str, float | int]:
    """Layer name → allocated value, leaving out layers with none (plain Python numbers)."""
    column = value_column(frame)
    out: dict[str, float | int] = {}
    for name, value in zip(frame["name"], frame[column], strict=True):
        if value is pd.NA or (isinstance(value, float) and not np.isfinite(value)):
            continue
        out[str(name)] = int(value) if column == "experts" else float(value)
    return out
