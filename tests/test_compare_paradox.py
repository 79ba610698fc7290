"""Simpson's-paradox check on constructed data with a known paradox and without one."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from alphahat.compare.paradox import check_simpsons_paradox
from alphahat.compare.stats import trend_statistics


def groups_data(paradox: bool, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Three groups; inside each, accuracy = base_g − 2·metric (+ small noise).

    With ``paradox`` the groups with larger metric values have much larger base accuracy, so
    the pooled trend rises; without it, the bases are equal and the pooled trend falls too.
    """
    rng = np.random.default_rng(seed)
    data = {}
    for g in range(3):
        x = 3.0 * g + np.linspace(0.0, 1.0, 8)
        base = 80.0 + (15.0 * g if paradox else 0.0)
        y = base - 2.0 * (x - 3.0 * g) - 6.0 * g * (not paradox) + rng.normal(0, 0.05, 8)
        data[f"g{g}"] = (x, y)
    return data


def check(metric: str, data: dict[str, tuple[np.ndarray, np.ndarray]]):  # type: ignore[no-untyped-def]
    per_group = {g: trend_statistics(x, y, num_bootstrap=0) for g, (x, y) in data.items()}
    x = np.concatenate([v[0] for v in data.values()])
    y = np.concatenate([v[1] for v in data.values()])
    pooled = trend_statistics(x, y, num_bootstrap=0)
    return check_simpsons_paradox(metric, pooled, per_group), x, y, data


def test_known_paradox_is_flagged_with_the_numbers() -> None:
    result, x, y, data = check("alpha", groups_data(paradox=True))
    pooled_ref = stats.linregress(x, y).slope
    group_refs = [stats.linregress(*v).slope for v in data.values()]
    assert pooled_ref > 0 and all(s < 0 for s in group_refs)  # the data really has one
    assert result.status == "paradox" and result.paradox
    assert result.pooled_slope == pytest.approx(pooled_ref, rel=1e-12)
    assert result.within_slope == pytest.approx(np.mean(group_refs), rel=1e-12)  # equal sizes
    assert result.within_slope == pytest.approx(-2.0, abs=0.1)
    assert (result.groups_down, result.groups_up, result.groups_used) == (3, 0, 3)
    assert "Simpson's paradox" in result.verdict and "shape metric" in result.verdict
    assert "within-group" in result.verdict and "rises" in result.verdict


def test_scale_and_mixed_metrics_get_their_reading() -> None:
    data = groups_data(paradox=True)
    scale, *_ = check("log_spectral_norm", data)
    mixed, *_ = check("alpha_weighted", data)
    assert scale.paradox and scale.kind == "scale" and "scale metric" in scale.verdict
    assert "not use it to rank models within one series" in scale.verdict
    assert mixed.paradox and mixed.kind == "mixed"


def test_no_paradox_when_groups_and_pool_agree() -> None:
    result, x, y, _ = check("alpha", groups_data(paradox=False))
    assert stats.linregress(x, y).slope < 0
    assert result.status == "consistent" and not result.paradox
    assert "agree" in result.verdict


def test_minority_of_groups_against_pool_is_not_a_paradox() -> None:
    # two groups falling weakly, one rising strongly: the weighted within slope is positive,
    # but most groups fall, so the within-group view is itself split: no paradox claimed
    rng = np.random.default_rng(1)
    data = {}
    for g, slope in enumerate((-0.5, -0.5, 5.0)):
        x = np.linspace(0.0, 1.0, 6) + g
        data[f"g{g}"] = (x, 50 + slope * x + rng.normal(0, 0.01, 6) - 10.0 * g)
    result, *_ = check("alpha", data)
    assert result.groups_down == 2 and result.groups_up == 1
    assert result.within_slope > 0 > result.pooled_slope
    assert result.status == "consistent" and "do not clearly disagree" in result.verdict


def test_not_applicable_with_one_usable_group() -> None:
    data = groups_data(paradox=True)
    data["g1"] = (data["g1"][0][:2], data["g1"][1][:2])  # 2 models: no trend
    data.pop("g2")
    result, *_ = check("alpha", data)
    assert result.status == "not-applicable" and result.groups_used == 1
    assert "only 1 group" in result.verdict
