"""End-to-end tests of the command line on the real MiniLM-L6 weights and on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphahat.cli import app

typer_testing = pytest.importorskip("typer.testing")
runner = typer_testing.CliRunner()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it."""
    exe = Path(sys.executable).with_name("alphahat")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300)


def test_analyze_table_on_real_model(minilm_path: Path) -> None:
    result = run_cli("analyze", str(minilm_path))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "encoder.layer.5.output.dense.weight" in out
    assert "Model summary" in out and "alpha_weighted" in out
    assert "39 fitted, 0 failed, 65 skipped; averaged over 39 layers;" in out
    assert "Traceback" not in result.stderr


def test_analyze_csv_and_json_files_agree_with_api(
    minilm_path: Path, minilm_report, tmp_path: Path
) -> None:
    csv_path, json_path = tmp_path / "out.csv", tmp_path / "out.json"
    assert run_cli("analyze", str(minilm_path), "-q", "-o", str(csv_path)).returncode == 0
    result = run_cli("analyze", str(minilm_path), "-q", "--format", "json", "-o", str(json_path))
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(csv_path)
    assert list(table["name"]) == list(minilm_report.details["name"])
    np.testing.assert_allclose(table["alpha"], minilm_report.details["alpha"], rtol=1e-15)
    data = json.loads(json_path.read_text())
    assert len(data["layers"]) == 39 and len(data["tensors"]) == 104
    assert data["summary"]["alpha"] == pytest.approx(
        minilm_report.summary().means["alpha"], rel=1e-15
    )
    assert {t["status"] for t in data["tensors"]} == {"analysed", "skipped"}
    # no temporary files are left beside the outputs (atomic writes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "out.json"]


def test_csv_to_stdout_has_no_progress_noise(minilm_path: Path) -> None:
    result = runner.invoke(
        app, ["analyze", str(minilm_path), "--format", "csv", "--layers", "linear", "-q"]
    )
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("layer_id,name,kind")
    assert len(lines) == 1 + 37  # 36 encoder matrices + the pooler
    assert all(",linear," in line for line in lines[1:])


def test_layers_filter_and_combination(minilm_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "analyze",
            str(minilm_path),
            "-f",
            "json",
            "-q",
            "-l",
            "encoder.layer.0.*",
            "-l",
            "linear",
        ],
    )
    assert result.exit_code == 0, result.output
    names = [row["name"] for row in json.loads(result.stdout)["layers"]]
    assert len(names) == 6 and all(n.startswith("encoder.layer.0.") for n in names)


def test_exclude_embeddings_changes_the_summary_count(minilm_path: Path) -> None:
    result = runner.invoke(
        app, ["analyze", str(minilm_path), "-f", "json", "-q", "--exclude-embeddings"]
    )
    summary = json.loads(result.stdout)["summary"]
    assert summary["num_layers"] == 37 and summary["include_embeddings"] is False


def test_describe_lists_every_tensor(minilm_path: Path) -> None:
    result = runner.invoke(app, ["describe", str(minilm_path), "-f", "csv"])
    assert result.exit_code == 0
    table = pd.read_csv(pd.io.common.StringIO(result.stdout))
    assert len(table) == 104
    skipped = table[table["status"] == "skipped"].set_index("name")
    assert "integer" in skipped.loc["embeddings.position_ids", "reason"]
    assert "min_evals" in skipped.loc["embeddings.token_type_embeddings.weight", "reason"]
    assert (table["status"] == "analysed").sum() == 39


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["analyze", "/no/such/model.safetensors"], "no such file"),
        (
            ["analyze", str(Path(__file__).resolve().parents[1] / "pyproject.toml")],
            "unknown weight file format",
        ),
        (["describe", "/no/such/dir"], "no such file"),
        (["analyze", "--min-evals", "-3", "x.safetensors"], ""),
        (["analyze", "--format", "xml", "x.safetensors"], ""),
    ],
)
def test_bad_usage_exits_2_with_one_line(args: list[str], message: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    if message:
        assert len(result.stderr.strip().splitlines()) == 1


def test_empty_folder_is_bad_usage(tmp_path: Path) -> None:
    result = run_cli("analyze", str(tmp_path))
    assert result.returncode == 2 and "no weights found" in result.stderr


def test_no_analysable_layer_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "tiny.npz"
    np.savez(path, bias=np.ones(5), small=np.ones((3, 2)))
    result = run_cli("analyze", str(path), "-q")
    assert result.returncode == 1
    assert "no layer could be analysed" in result.stderr


def test_failed_layer_is_reported_and_others_kept(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    bad = rng.normal(size=(64, 32))
    bad[3, 4] = np.nan
    path = tmp_path / "weights.npz"
    np.savez(path, good=rng.standard_t(3, size=(80, 40)), bad=bad)
    result = run_cli("analyze", str(path), "-f", "json")
    assert result.returncode == 0
    layers = {row["name"]: row for row in json.loads(result.stdout)["layers"]}
    assert layers["good"]["status"] == "fitted"
    assert layers["bad"]["status"] == "failed" and "NaN" in layers["bad"]["reason"]
    assert layers["bad"]["alpha"] is None
    assert "layer bad failed" in result.stderr


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("alphahat ")


@pytest.mark.parametrize("module", ["alphahat", "alphahat.cli"])
def test_python_dash_m_runs_the_cli_with_every_command(module):
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    for command in ("analyze", "describe", "plot", "report", "compare", "traps", "randomize",
                    "weights", "zoo", "allocate", "trend"):  # fmt: skip
        assert command in done.stdout
