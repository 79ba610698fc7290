"""From α to action: per-layer settings from per-layer α, as published methods compute them.

* :func:`sparsity_ratios` — layer-wise pruning ratios (AlphaPruning, NeurIPS 2024);
* :func:`learning_rate_factors` — layer-wise learning-rate factors (TempBalance, NeurIPS 2023),
  and :func:`param_groups` to hand them to a PyTorch optimizer;
* :func:`weight_decay_factors` — module-wise weight-decay factors (AlphaDecay, 2025);
* :func:`lora_expert_counts` — LoRA experts per layer (AlphaLoRA, EMNLP 2024).

Each takes a :class:`~alphahat.report.Report` (or a per-layer α table) and the method's
parameters, with the paper's defaults, and returns a DataFrame with one row per layer
(``name``, ``alpha``, ``n_params``, the value, ``note``); :func:`as_mapping` gives the plain
layer name → value mapping that ``alphahat allocate -o FILE.json`` writes.

>>> import alphahat
>>> from alphahat.allocation import sparsity_ratios
>>> report = alphahat.analyze("model.safetensors", layers=["encoder.*"])   # doctest: +SKIP
>>> ratios = sparsity_ratios(report, target=0.7, epsilon=0.3)             # doctest: +SKIP

The formulas and the papers are in each function's docstring and in
docs/from-alpha-to-action.md. Pure computation (:mod:`~alphahat.allocation.core`,
:mod:`~alphahat.allocation.methods`); only :func:`param_groups` imports torch, when called.
"""

from __future__ import annotations

from alphahat.allocation.core import (
    ALPHA_TABLE_COLUMNS,
    Groups,
    alpha_table,
    largest_remainder,
    linear_map,
    scale_to_budget,
    shift_to_budget,
)
from alphahat.allocation.methods import (
    METHODS,
    VALUE_COLUMNS,
    allocate,
    as_mapping,
    learning_rate_factors,
    lora_expert_counts,
    sparsity_ratios,
    value_column,
    weight_decay_factors,
)
from alphahat.allocation.torch_groups import param_groups

__all__ = [
    "ALPHA_TABLE_COLUMNS",
    "METHODS",
    "VALUE_COLUMNS",
    "Groups",
    "allocate",
    "alpha_table",
    "as_mapping",
    "largest_remainder",
    "learning_rate_factors",
    "linear_map",
    "lora_expert_counts",
    "param_groups",
    "scale_to_budget",
    "shift_to_budget",
    "sparsity_ratios",
    "value_column",
    "weight_decay_factors",
]
