"""Resource limits: a layer too large to process is skipped with the reason, never read."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
from hostile_inputs import good_matrix, traced_peak, write_safetensors

import alphahat
from alphahat.layers import plan_tensors
from alphahat.layers.limits import estimated_peak_bytes, parse_byte_size
from alphahat.pipeline import AnalysisOptions, analyse_loaded, load_layer
from alphahat.sources import open_source
from alphahat.sources.base import TensorRef, WeightSource


class Guarded(WeightSource):
    """Two small layers and one huge one whose ``load()`` must never be called."""

    description = "guarded"

    def __init__(self) -> None:
        self.loaded: list[str] = []
        small = {f"small{i}.weight": good_matrix(40 + i, (60, 30)) for i in range(2)}
        self.refs = [TensorRef(n, w.shape, "float64", self._loader(n, w)) for n, w in small.items()]

        def explode() -> np.ndarray:
            raise AssertionError("the oversized tensor was read")

        self.refs.append(TensorRef("huge.weight", (200_000, 100_000), "float32", explode))

    def _loader(self, name, w):
        def load():
            self.loaded.append(name)
            return w

        return load

    def tensors(self) -> Iterator[TensorRef]:
        return iter(self.refs)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"max_matrix_elements": 10**6}, "max_matrix_elements=1000000"),
        ({"max_memory": "1GiB"}, "max_memory=1.0 GiB"),
        ({"max_memory": 500_000_000}, "max_memory=476.8 MiB"),
    ],
)
def test_oversized_layer_is_skipped_before_reading(kwargs, fragment):
    source = Guarded()
    report = alphahat.analyze(source, **kwargs)
    coverage = report.coverage.set_index("name")
    assert coverage.loc["huge.weight", "status"] == "skipped"
    assert "too large" in coverage.loc["huge.weight", "reason"]
    assert fragment in coverage.loc["huge.weight", "reason"], coverage.loc["huge.weight", "reason"]
    assert sorted(source.loaded) == ["small0.weight", "small1.weight"]
    assert (report.details["status"] == "fitted").all()
    assert report.options["max_memory"] in (None, 2**30, 500_000_000)


def test_limits_just_above_and_below_a_layer():
    w = good_matrix(50, (60, 30))
    assert alphahat.describe({"w": w}, max_matrix_elements=1800)["status"][0] == "analysed"
    assert alphahat.describe({"w": w}, max_matrix_elements=1799)["status"][0] == "skipped"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1000", 1000),
        (4096, 4096),
        ("1kB", 1000),
        ("1KiB", 1024),
        ("2 MB", 2_000_000),
        ("1.5GiB", 3 * 2**29),
        ("8g", 8 * 2**30),
        ("1e9", 10**9),
        ("1TB", 10**12),
    ],
)
def test_memory_sizes(text, expected):
    assert parse_byte_size(text) == expected


@pytest.mark.parametrize("text", ["lots", "-5", "0", "5 XB", "", True, 0, "1e-3"])
def test_bad_memory_sizes_name_the_option(text):
    with pytest.raises(ValueError, match="max_memory"):
        alphahat.describe({"w": good_matrix(1)}, max_memory=text)


@pytest.mark.parametrize("value", [0, -1, 2.5, True])
def test_bad_element_limits_name_the_option(value):
    with pytest.raises(ValueError, match="max_matrix_elements"):
        alphahat.describe({"w": good_matrix(1)}, max_matrix_elements=value)


def test_cli_limits(tmp_path):
    typer_testing = pytest.importorskip("typer.testing")
    from alphahat.cli import app

    path = write_safetensors(
        tmp_path / "m.safetensors",
        {"big.weight": good_matrix(1, (300, 200)), "ok.weight": good_matrix(2, (40, 20))},
    )
    result = typer_testing.CliRunner().invoke(
        app, ["describe", str(path), "-f", "json", "--max-matrix-elements", "10000"]
    )
    assert result.exit_code == 0, result.output
    tensors = {t["name"]: t for t in json.loads(result.stdout)["tensors"]}
    assert tensors["big.weight"]["status"] == "skipped"
    assert "max_matrix_elements=10000" in tensors["big.weight"]["reason"]
    assert tensors["ok.weight"]["status"] == "analysed"
    result = typer_testing.CliRunner().invoke(
        app, ["analyze", str(path), "-f", "csv", "-q", "--max-memory", "2MiB"]
    )
    assert result.exit_code == 0, result.output
    assert "ok.weight" in result.stdout and "big.weight" not in result.stdout


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [
        ((1000, 700), np.float32),
        ((300, 2000), np.float64),
        ((3000, 200), np.float16),
        ((128, 64, 3, 3), np.float32),
        ((4, 4, 100, 100), np.float32),
    ],
)
def test_memory_estimate_bounds_the_measured_peak(tmp_path, shape, dtype):
    """The planning estimate is at least the peak that tracemalloc sees for one layer."""
    path = write_safetensors(
        tmp_path / "m.safetensors",
        {"w.weight": np.random.default_rng(0).standard_t(3, size=shape).astype(dtype)},
    )
    with open_source(path) as source:
        plan = next(iter(plan_tensors(source.tensors(), min_evals=0)))
        estimate = estimated_peak_bytes(plan.ref, plan.N, plan.M, plan.num_matrices)
        _, peak = traced_peak(
            lambda: analyse_loaded(load_layer(plan), AnalysisOptions(min_evals=0))
        )
    assert peak <= estimate, (peak, estimate)
    assert estimate < 8 * peak + 2**21  # and not absurdly loose
