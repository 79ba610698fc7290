"""Simpson's-paradox check: whether the pooled trend runs against the within-group trends.

Pure computation on :class:`~alphahat.compare.stats.TrendStats`. For one metric, with the
pooled OLS slope b_pool (all models together) and the slopes b_g of the groups with a defined
trend (n_g ≥ 3 models each):

* within-group slope (size-weighted) b_within = Σ n_g b_g / Σ n_g;
* groups_up / groups_down: how many b_g are > 0 / < 0;
* **paradox** when at least two groups have a trend, sign(b_pool) ≠ 0, sign(b_within) =
  −sign(b_pool), and a strict majority of those groups also has the sign of b_within: the
  aggregate says "accuracy rises with the metric" and the groups say it falls (or the reverse).

Which view to trust depends on what the metric measures (Martin & Mahoney's contest
post-mortem). A **shape** metric is unchanged when W is multiplied by a constant (α, the KS
distance D, stable rank, entropy): it reflects how well each model of one series is trained
as hyperparameters vary, so its within-group trend is the one to read; across series its level
shifts with the architecture. A **scale** metric (log norms, log spectral norm) moves with the
architecture (depth, width) and tracks coarse differences between series, but within a series it
can run against quality. **Mixed** metrics (α̂ = α·log₁₀λ_max, log₁₀Σλ^α) combine the two and
were built to remove the paradox; when they still show one, compare models within a group.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from alphahat.compare.stats import TrendStats

MetricKind = Literal["shape", "scale", "mixed", "other"]
#: What each model-level metric measures (see the module docstring).
METRIC_KINDS: Mapping[str, MetricKind] = {
    "alpha": "shape",
    "D": "shape",
    "stable_rank": "shape",
    "entropy": "shape",
    "log_norm": "scale",
    "log_spectral_norm": "scale",
    "alpha_weighted": "mixed",
    "log_alpha_norm": "mixed",
}
ParadoxStatus = Literal["paradox", "consistent", "not-applicable"]
#: Pooled trends with a slope p-value at or above this are called "not significant".
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class SimpsonsCheck:
    """Pooled vs within-group trend of one metric (definitions: module docstring)."""

    metric: str
    kind: MetricKind
    status: ParadoxStatus
    pooled_slope: float
    pooled_p_value: float
    pooled_kendall_tau: float
    within_slope: float
    within_kendall_tau: float
    groups_used: int
    groups_up: int
    groups_down: int
    verdict: str

    @property
    def paradox(self) -> bool:
        """Whether the pooled trend runs against the within-group trends."""
        return self.status == "paradox"


def _sign(value: float) -> int:
    if not math.isfinite(value) or value == 0:
        return 0
    return 1 if value > 0 else -1


def _word(sign: int) -> str:
    return {1: "rises", -1: "falls", 0: "is flat"}[sign]


def check_simpsons_paradox(
    metric: str, pooled: TrendStats, groups: Mapping[str, TrendStats]
) -> SimpsonsCheck:
    """Compare the pooled trend of ``metric`` with its groups' trends; say which to trust."""
    kind = METRIC_KINDS.get(metric, "other")
    used = {g: s for g, s in groups.items() if s.ok}
    total = sum(s.n for s in used.values())
    within = sum(s.n * s.slope for s in used.values()) / total if total else math.nan
    within_tau = sum(s.n * s.kendall_tau for s in used.values()) / total if total else math.nan
    up = sum(s.slope > 0 for s in used.values())
    down = sum(s.slope < 0 for s in used.values())
    pooled_sign, within_sign = _sign(pooled.slope) if pooled.ok else 0, _sign(within)
    majority = (down if within_sign < 0 else up) * 2 > len(used)

    def result(status: ParadoxStatus, verdict: str) -> SimpsonsCheck:
        return SimpsonsCheck(
            metric=metric,
            kind=kind,
            status=status,
            pooled_slope=pooled.slope,
            pooled_p_value=pooled.slope_p_value,
            pooled_kendall_tau=pooled.kendall_tau,
            within_slope=within,
            within_kendall_tau=within_tau,
            groups_used=len(used),
            groups_up=up,
            groups_down=down,
            verdict=verdict,
        )

    if len(used) < 2 or pooled_sign == 0 or within_sign == 0:
        why = (
            f"only {len(used)} group(s) with a trend (each needs ≥ 3 models)"
            if len(used) < 2
            else "the pooled trend is undefined or flat"
            if pooled_sign == 0
            else "the within-group trends cancel out"
        )
        return result("not-applicable", f"{metric}: no paradox check: {why}.")
    numbers = (
        f"pooled slope {pooled.slope:+.3g} (τ = {pooled.kendall_tau:+.2f}), within-group slope "
        f"{within:+.3g} (size-weighted; {down} of {len(used)} groups falling, {up} rising)"
    )
    weak = (
        f" The pooled trend is not significant (p = {pooled.slope_p_value:.2g})."
        if not pooled.slope_p_value < SIGNIFICANCE
        else ""
    )
    if pooled_sign == within_sign or not majority:
        agreement = "agree" if pooled_sign == within_sign else "do not clearly disagree"
        return result(
            "consistent",
            f"{metric}: pooled and within-group trends {agreement}: {numbers}.{weak}",
        )
    reading = {
        "shape": (
            f"{metric} is a shape metric (unchanged when W is scaled): trust the within-group "
            f"trend to rank models of one series as their hyperparameters vary; the pooled "
            f"trend mixes series whose {metric} levels differ with the architecture"
        ),
        "scale": (
            f"{metric} is a scale metric: its pooled trend follows the coarse differences "
            f"between groups (depth, width), but inside a group accuracy {_word(within_sign)} "
            f"as it grows, so do not use it to rank models within one series"
        ),
        "mixed": (
            f"{metric} mixes shape and scale and was meant to remove this paradox; here it "
            f"does not, so rank models within a group by the within-group trend and do not "
            f"read the pooled fit as a ranking across groups"
        ),
        "other": (
            f"rank models within a group by the within-group trend; the pooled fit mixes "
            f"groups whose {metric} levels differ"
        ),
    }[kind]
    return result(
        "paradox",
        f"{metric}: Simpson's paradox: accuracy {_word(pooled_sign)} with {metric} across all "
        f"models but {_word(within_sign)} within groups; {numbers}. {reading}.{weak}",
    )
