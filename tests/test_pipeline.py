"""The per-layer core and the model walk: what analyze does, one layer at a time, in public."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import numpy as np
import pytest

import alphahat
from alphahat.fit import fit_power_law
from alphahat.fit.esd import fit_sample
from alphahat.pipeline import (
    AnalysisOptions,
    LayerResult,
    analyse_layer,
    failed_row,
    iter_layers,
    plan_layers,
)
from alphahat.sources import open_source
from alphahat.sources.base import TensorRef, WeightSource


def _heavy(rows: int, cols: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_t(3.0, size=(rows, cols))


def _same(a: object, b: object) -> bool:
    return a == b or (
        isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    )


@pytest.mark.parametrize(
    "options",
    [{}, {"fix_fingers": "xmin_peak"}, {"fit": "TPL"}, {"xmax": 2, "mp_fit": True, "detX": True},
     {"randomize": True, "seed": 4, "vectors": True}, {"backend": "svd"}],
)  # fmt: skip
def test_analyse_layer_is_the_row_analyze_reports(options: dict[str, object]) -> None:
    w = _heavy(300, 120, 1)
    row = alphahat.analyze({"w.weight": w}, **options).details.iloc[0].to_dict()
    result = analyse_layer(w, AnalysisOptions(**options), name="w.weight")
    assert isinstance(result, LayerResult)
    for key, value in result.row.items():
        assert _same(row[key], value) or row[key] == value, key
    assert result.fit.alpha == row["alpha"] and result.fit.xmin == row["xmin"]
    assert result.fit.num_pl_spikes == row["num_pl_spikes"]
    assert (result.mp_fit is not None) == bool(options.get("mp_fit"))
    assert (result.randomized is not None) == bool(options.get("randomize"))


def test_the_fit_carries_its_sample_and_policy() -> None:
    w = _heavy(400, 200, 0)
    result = analyse_layer(w, AnalysisOptions(xmax=3))
    fit = result.fit
    np.testing.assert_array_equal(fit.sample, fit_sample(result.eigenvalues, 400, 1e-5))
    assert fit.policy is not None and fit.policy.xmax == 3 and fit.num_left_out == 3
    np.testing.assert_array_equal(fit.fitted_sample, fit.sample[:-3])
    plain = fit_power_law(fit.fitted_sample)  # the engine on the same sample: the same numbers
    assert (plain.alpha, plain.xmin, plain.D) == (fit.alpha, fit.xmin, fit.D)
    assert fit.xmax == fit.sample[-4] < result.eigenvalues[-1]


def test_orientation_and_immutability() -> None:
    w = _heavy(200, 90, 2)
    a, b = analyse_layer(w), analyse_layer(w.T)
    np.testing.assert_allclose(a.eigenvalues, b.eigenvalues, rtol=1e-12)
    assert a.spectrum.N == 200 and a.spectrum.M == 90
    assert a.fit.alpha == pytest.approx(b.fit.alpha, rel=1e-9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.fit = b.fit  # type: ignore[misc]
    with pytest.raises(ValueError, match="one shape"):
        analyse_layer([w, w[:, :50]])
    with pytest.raises(ValueError, match="2-D"):
        analyse_layer(np.ones(5))


def test_a_failed_fit_and_a_failed_layer_have_every_column() -> None:
    orthogonal = np.linalg.qr(_heavy(40, 40, 5))[0]  # every σ = 1 up to rounding
    result = analyse_layer(orthogonal, AnalysisOptions(backend="svd"))
    assert result.status == "failed" and "constant within rounding error" in result.reason
    assert math.isnan(result.row["alpha"]) and result.fit.num_pl_spikes is None
    assert set(failed_row("x")) == set(result.row) - {"spectrum_method"}


class _Source(WeightSource):
    """Three tensors, the middle one unreadable."""

    description = "test source"

    def tensors(self) -> Iterator[TensorRef]:
        good = _heavy(60, 30, 3)

        def broken() -> np.ndarray:
            raise OSError("the disk went away")

        yield TensorRef("a.weight", good.shape, "float64", lambda: good)
        yield TensorRef("b.weight", (60, 30), "float64", broken)
        yield TensorRef("c.bias", (30,), "float64", lambda: np.ones(30))


@pytest.mark.parametrize("read_ahead", [False, True])
def test_iter_layers_yields_each_planned_layer_and_keeps_going(read_ahead: bool) -> None:
    layers = list(iter_layers(_Source(), read_ahead=read_ahead))
    assert [layer.name for layer in layers] == ["a.weight", "b.weight"]
    good, bad = layers
    assert good.error == "" and good.matrices[0].shape == (60, 30)
    assert bad.values is None and bad.error == "the disk went away"
    report = alphahat.analyze(_Source())
    assert report.details.set_index("name").loc["b.weight", "reason"] == "the disk went away"


def test_plan_layers_is_what_describe_lists(tmp_path: object) -> None:
    weights = {"conv.weight": np.ones((8, 4, 3, 3)), "fc.weight": _heavy(20, 10, 4)}
    with open_source(weights) as source:
        plans = plan_layers(source, AnalysisOptions(pool=False))
    described = alphahat.describe(weights, pool=False)
    assert [p.ref.name for p in plans] == list(described["name"])
    assert sum("[slice" in p.ref.name for p in plans) == 9
