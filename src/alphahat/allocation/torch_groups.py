"""Allocated factors as PyTorch optimizer parameter groups (torch imported lazily)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from alphahat.errors import OptionError


def _factors_by_name(factors: pd.DataFrame | Mapping[str, float]) -> dict[str, float]:
    if isinstance(factors, pd.DataFrame):
        from alphahat.allocation.methods import as_mapping

        return {k: float(v) for k, v in as_mapping(factors).items()}
    return {str(k): float(v) for k, v in factors.items() if np.isfinite(float(v))}


def param_groups(
    model: Any,
    factors: pd.DataFrame | Mapping[str, float],
    base: float,
    *,
    key: str = "lr",
) -> list[dict[str, Any]]:
    """Optimizer parameter groups with ``key`` = ``base`` × each layer's factor.

    A layer ``mod.weight`` of the allocation (a name of the model's ``named_parameters()``,
    as :func:`alphahat.analyze` names an ``nn.Module``'s or its state dict's tensors) sets the
    factor of every parameter of module ``mod`` (its bias too), as TempBalance and AlphaDecay
    balance whole modules (a module with several allocated matrices, an LSTM's ``weight_ih``
    and ``weight_hh``, gets a group for each; its other parameters follow the first): one
    group per allocated matrix, in the model's parameter order (the
    same groups each time for the same model and layers, so a new allocation can update an
    optimizer's groups in place), then a last group with ``base`` (factor 1) for the other
    parameters. Each group also has ``names`` (its parameter names).

    >>> groups = param_groups(model, learning_rate_factors(report), 1e-3)   # doctest: +SKIP
    >>> optimizer = torch.optim.SGD(groups, lr=1e-3, momentum=0.9)           # doctest: +SKIP

    Args:
        model: a ``torch.nn.Module``.
        factors: an allocation table (``lr_factor`` / ``weight_decay_factor`` …) or a mapping
            layer name → factor (NaN: no factor).
        base: the base value (learning rate, weight decay).
        key: the group's key to set: ``"lr"`` or ``"weight_decay"``.

    Raises:
        ValueError: a layer of the allocation is not a parameter of the model (a part such as
            ``… [q]`` cannot be: an optimizer group holds whole tensors).
    """
    from alphahat._imports import require

    torch = require("torch", "param_groups")
    if not isinstance(model, torch.nn.Module):
        raise OptionError("model", "a torch.nn.Module", type(model).__name__)
    if key not in ("lr", "weight_decay"):
        raise OptionError("key", "'lr' or 'weight_decay'", key)
    by_name = _factors_by_name(factors)
    params = dict(model.named_parameters())
    unknown = [name for name in by_name if name not in params]
    if unknown:
        raise ValueError(
            f"{len(unknown)} layer(s) of the allocation are not parameters of the model, "
            f"e.g. {unknown[0]!r} (allocate on the model's own tensors, without split_fused)"
        )
    owner: dict[str, str] = {}  # module → its first allocated parameter (its bias follows it)
    for name in params:
        if name in by_name:
            owner.setdefault(name.rpartition(".")[0], name)
    groups: dict[str | None, dict[str, Any]] = {}
    for name, param in params.items():
        lead = name if name in by_name else owner.get(name.rpartition(".")[0])
        if lead is None:
            group = groups.setdefault(None, {"params": [], "names": []})
        else:
            group = groups.setdefault(lead, {"params": [], "names": [], key: base * by_name[lead]})
        group["params"].append(param)
        group["names"].append(name)
    out = [group for lead, group in groups.items() if lead is not None]
    if None in groups:
        out.append({**groups[None], key: base})
    return out
