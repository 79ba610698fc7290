"""Alert rules: conditions on the rows of one analysis (and of the one before) worth a warning.

Each rule is a frozen dataclass with ``check(rows, previous) -> list[Alert]``: ``rows`` are
the fitted layers' rows of this analysis, ``previous`` those of the analysis before (by layer
name; empty at the first one). Pure: no warning, log or I/O here — the
:class:`~alphahat.monitor.Monitor` turns each :class:`Alert` into a
:class:`AlphaAlertWarning`, a log record and a journal record, and, for a rule with
``stop=True``, a request to stop training.

The thresholds are those of Heavy-Tailed Self-Regularization (Martin & Mahoney, "Implicit
self-regularization in deep neural networks", JMLR 22 (2021); "Predicting trends in the
quality of state-of-the-art neural networks without access to training or testing data",
Nature Communications 12 (2021)): a well-trained layer has 2 ≤ α ≤ 6; α < 2 is the
very-heavy-tailed (over-fitted) regime; α̂ = α · log₁₀ λ_max.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

Row = Mapping[str, Any]


class AlphaAlertWarning(UserWarning):
    """An alert rule of the α monitor fired (see :mod:`alphahat.monitor.alerts`)."""


@dataclass(frozen=True)
class Alert:
    """One rule firing on one layer at one analysis.

    Attributes:
        step: the training step of the analysis.
        rule: the rule's name (``alpha_below``, ``alpha_outside``, ``alpha_hat_jump``,
            ``new_traps``).
        layer: the layer's name.
        value: the quantity the rule tested (α, |Δα̂| or the number of new traps).
        message: one line saying what happened.
        stop: whether the rule asks training to stop.
    """

    step: int
    rule: str
    layer: str
    value: float
    message: str
    stop: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The alert as JSON-able data (a journal record's row)."""
        return {
            "step": self.step,
            "rule": self.rule,
            "layer": self.layer,
            "value": self.value,
            "message": self.message,
            "stop": self.stop,
        }


class AlertRule(Protocol):
    """A condition on the rows of one analysis (and the previous one) of a model."""

    @property
    def stop(self) -> bool:
        """Whether the rule's alerts ask training to stop."""
        ...

    def check(self, step: int, rows: Sequence[Row], previous: Mapping[str, Row]) -> list[Alert]:
        """The alerts of this analysis (``previous``: the last analysis' rows by name)."""
        ...


def _finite(row: Row, column: str) -> float | None:
    value = row.get(column)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class AlphaBelow:
    """A layer's α below ``threshold`` (default 2: the very-heavy-tailed, over-fitted regime)."""

    threshold: float = 2.0
    stop: bool = False

    def check(self, step: int, rows: Sequence[Row], previous: Mapping[str, Row]) -> list[Alert]:
        """One alert per layer with α < threshold."""
        out = []
        for row in rows:
            alpha = _finite(row, "alpha")
            if alpha is not None and alpha < self.threshold:
                message = (
                    f"step {step}: layer {row['name']}: alpha = {alpha:.3g} < {self.threshold:g}"
                )
                out.append(Alert(step, "alpha_below", str(row["name"]), alpha, message, self.stop))
        return out


@dataclass(frozen=True)
class AlphaOutside:
    """A layer's α outside [``low``, ``high``] (default [2, 6], the well-trained range)."""

    low: float = 2.0
    high: float = 6.0
    stop: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"AlphaOutside needs low < high; got [{self.low}, {self.high}]")

    def check(self, step: int, rows: Sequence[Row], previous: Mapping[str, Row]) -> list[Alert]:
        """One alert per layer with α < low or α > high."""
        out = []
        for row in rows:
            alpha = _finite(row, "alpha")
            if alpha is not None and not self.low <= alpha <= self.high:
                message = (
                    f"step {step}: layer {row['name']}: alpha = {alpha:.3g} outside "
                    f"[{self.low:g}, {self.high:g}]"
                )
                out.append(
                    Alert(step, "alpha_outside", str(row["name"]), alpha, message, self.stop)
                )
        return out


@dataclass(frozen=True)
class AlphaHatJump:
    """A layer's α̂ = α·log₁₀λ_max changed by more than ``max_change`` since the last analysis."""

    max_change: float = 1.0
    stop: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_change) and self.max_change > 0):
            raise ValueError(f"AlphaHatJump needs max_change > 0; got {self.max_change}")

    def check(self, step: int, rows: Sequence[Row], previous: Mapping[str, Row]) -> list[Alert]:
        """One alert per layer with |α̂ − α̂_previous| > max_change."""
        out = []
        for row in rows:
            name = str(row["name"])
            now = _finite(row, "alpha_weighted")
            before = _finite(previous[name], "alpha_weighted") if name in previous else None
            if now is None or before is None:
                continue
            change = abs(now - before)
            if change > self.max_change:
                message = (
                    f"step {step}: layer {name}: alpha_hat jumped {before:.3g} → {now:.3g} "
                    f"(|change| {change:.3g} > {self.max_change:g})"
                )
                out.append(Alert(step, "alpha_hat_jump", name, change, message, self.stop))
        return out


@dataclass(frozen=True)
class NewTraps:
    """A layer has more correlation traps than at the last analysis (needs ``randomize``).

    A trap is an eigenvalue of the element-shuffled W above the Marchenko–Pastur bulk edge
    (the ``num_traps`` column of ``randomize``); at the first analysis every trap is new.
    """

    stop: bool = False

    def check(self, step: int, rows: Sequence[Row], previous: Mapping[str, Row]) -> list[Alert]:
        """One alert per layer whose ``num_traps`` grew."""
        out = []
        for row in rows:
            name = str(row["name"])
            traps = _finite(row, "num_traps")
            if traps is None:
                continue
            before = _finite(previous[name], "num_traps") if name in previous else 0.0
            new = traps - (before or 0.0)
            if new > 0:
                message = (
                    f"step {step}: layer {name}: {new:g} new correlation trap(s) ({traps:g} in all)"
                )
                out.append(Alert(step, "new_traps", name, new, message, self.stop))
        return out


def needs_randomize(rules: Sequence[AlertRule]) -> bool:
    """Whether a rule reads the ``randomize`` columns."""
    return any(isinstance(rule, NewTraps) for rule in rules)


def check_rules(
    rules: Sequence[AlertRule], step: int, rows: Sequence[Row], previous: Sequence[Row]
) -> list[Alert]:
    """Every rule's alerts on the fitted ``rows``, in rule order."""
    fitted = [r for r in rows if r.get("status") == "fitted"]
    before = {str(r["name"]): r for r in previous if r.get("status") == "fitted"}
    return [alert for rule in rules for alert in rule.check(step, fitted, before)]


__all__ = [
    "Alert",
    "AlertRule",
    "AlphaAlertWarning",
    "AlphaBelow",
    "AlphaHatJump",
    "AlphaOutside",
    "NewTraps",
    "check_rules",
    "needs_randomize",
]
