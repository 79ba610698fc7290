"""``alphahat analyze`` flags for the reference tool's options: each reaches ``analyze()``."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import alphahat
from alphahat.cli import app

typer_testing = pytest.importorskip("typer.testing")
safetensors_numpy = pytest.importorskip("safetensors.numpy")
runner = typer_testing.CliRunner()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(11)
    path = tmp_path_factory.mktemp("cli") / "m.safetensors"
    safetensors_numpy.save_file(
        {
            "conv.weight": rng.normal(size=(24, 12, 3, 3)),
            "fc.weight": rng.standard_t(3.0, size=(120, 60)) / 11.0,
        },
        str(path),
    )
    return path


def _cli(model: Path, *flags: str) -> pd.DataFrame:
    result = runner.invoke(app, ["analyze", str(model), "-f", "csv", "-q", *flags])
    assert result.exit_code == 0, result.output
    return pd.read_csv(io.StringIO(result.stdout))


def _same(table: pd.DataFrame, model: Path, columns: tuple[str, ...], **options: Any) -> None:
    expected = alphahat.analyze(model, **options).details
    assert list(table["name"]) == list(expected["name"])
    for col in columns:
        np.testing.assert_allclose(
            table[col].to_numpy(float), expected[col].to_numpy(float), rtol=1e-12, err_msg=col
        )


@pytest.mark.parametrize(
    ("flags", "options", "columns"),
    [
        (["--mp-fit"], {"mp_fit": True}, ("sigma_mp", "num_spikes", "bulk_max")),
        (["--detx"], {"detX": True}, ("detX_num", "detX_val")),
        (["--vectors"], {"vectors": True}, ("tail_mean_part_ratio", "bulk_mean_loc_ratio")),
        (
            ["--randomize", "--seed", "3"],
            {"randomize": True, "seed": 3},
            ("max_rand_eval", "rand_distance", "num_traps"),
        ),
        (["--fit", "TPL"], {"fit": "TPL"}, ("alpha", "Lambda", "xmin")),
        (["--fit", "E_TPL"], {"fit": "E_TPL"}, ("alpha", "Lambda", "xmin")),
        (["--fix-fingers", "xmin_peak"], {"fix_fingers": "xmin_peak"}, ("alpha", "xmin")),
        (
            ["--fix-fingers", "clip_xmax"],
            {"fix_fingers": "clip_xmax"},
            ("alpha", "num_fingers", "raw_alpha"),
        ),
        (["--conv-scale", "papers"], {"conv_scale": "papers"}, ("lambda_max", "log_norm")),
        (["--fft", "--fft-size", "6"], {"fft": True, "fft_size": 6}, ("num_evals", "alpha")),
        (["--no-pool"], {"pool": False}, ("layer_id", "slice_id", "alpha", "lambda_max")),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_flag_reaches_analyze(
    model: Path, flags: list[str], options: dict[str, Any], columns: tuple[str, ...]
) -> None:
    table = _cli(model, *flags)
    _same(table, model, columns, **options)


def test_defaults_are_the_default_analysis(model: Path) -> None:
    table = _cli(model, "--pool", "--fit", "PL")
    _same(table, model, ("alpha", "lambda_max"))
    assert "Lambda" not in table.columns and "slice_id" not in table.columns
    assert len(_cli(model, "--no-pool")) == 9 + 1  # 3×3 slices, fc


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--fft", "--no-pool"], "exclude each other"),
        (["--fit", "E_TPL", "--fix-fingers", "clip_xmax"], "clip_xmax"),
        (["--fit", "LN"], "LN"),
        (["--seed", "-1"], "--seed"),
    ],
)
def test_bad_combinations_exit_2(model: Path, flags: list[str], message: str) -> None:
    result = runner.invoke(app, ["analyze", str(model), "-q", *flags])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
