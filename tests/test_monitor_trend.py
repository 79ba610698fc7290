"""Trends of a monitor journal: the table, the figures (read back by gid) and `alphahat trend`."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from alphahat.cli import app  # noqa: E402
from alphahat.monitor import AlphaBelow, Monitor, read_monitor_journal  # noqa: E402
from alphahat.monitor.trend import (  # noqa: E402
    ALERT_GID,
    MEAN_GID,
    layer_gid,
    trend_figure,
    trend_page,
    trend_table,
)


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four analyses of a 3-layer MLP whose weights change between them; alerts on layer 0.

    Recorded into ``monitor.jsonl`` and, where pyarrow is installed, ``monitor.parquet`` too.
    """
    folder = tmp_path_factory.mktemp("trend")
    paths = [folder / "monitor.jsonl"]
    if importlib.util.find_spec("pyarrow") is not None:
        paths.append(folder / "monitor.parquet")
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Linear(40, 30), torch.nn.ReLU(), torch.nn.Linear(30, 20), torch.nn.Linear(20, 10)
    )
    rule = AlphaBelow(threshold=3.0)
    monitors = [Monitor(model, p, every_steps=10, alerts=(rule,), warn=False) for p in paths]
    for step in (0, 10, 20, 30):
        with torch.no_grad():  # a heavier tail each time: a rank-one spike grows
            first = model[0].weight
            first += 0.5 * torch.outer(torch.randn(30), torch.randn(40))
        for monitor in monitors:
            monitor.step(step)
    for monitor in monitors:
        monitor.close()
    return paths[0]


@pytest.fixture
def parquet_journal(journal: Path) -> Path:
    """The fixture's journal in Parquet."""
    pytest.importorskip("pyarrow")
    return journal.with_suffix(".parquet")


def _lines(fig: Any) -> dict[str, Any]:
    return {line.get_gid(): line for ax in fig.axes for line in ax.get_lines() if line.get_gid()}


def test_table_is_the_mean_of_the_layer_rows(journal: Path) -> None:
    table = trend_table(journal)
    rows = pd.DataFrame(read_monitor_journal(journal).layer_rows())
    assert table["step"].tolist() == [0, 10, 20, 30]
    for metric in ("alpha", "alpha_weighted", "log_spectral_norm", "stable_rank"):
        expected = [
            rows[(rows.step == s) & (rows.status == "fitted")][metric].mean() for s in table.step
        ]
        np.testing.assert_allclose(table[metric], expected, rtol=1e-12)
    alerts = pd.DataFrame(read_monitor_journal(journal).alert_rows())
    assert table["alerts"].tolist() == [int((alerts.step == s).sum()) for s in table.step]
    assert table["layers"].tolist() == [3, 3, 3, 3]


@pytest.mark.parametrize("metric", ["alpha", "alpha_weighted", "log_spectral_norm"])
def test_figure_draws_each_layer_the_mean_and_the_alerts(journal: Path, metric: str) -> None:
    records = read_monitor_journal(journal)
    lines = _lines(trend_figure(records, metric))
    rows = pd.DataFrame(records.layer_rows())
    for name, group in rows.groupby("name"):
        x, y = lines[layer_gid(str(name))].get_data()
        assert list(x) == group["step"].tolist()
        np.testing.assert_array_equal(y, group[metric].to_numpy())
    x, y = lines[MEAN_GID].get_data()
    np.testing.assert_allclose(y, trend_table(records)[metric])
    alerts = records.alert_rows()
    assert alerts, "the fixture's rule fires"
    x, y = lines[ALERT_GID].get_data()
    value = {(r["step"], r["name"]): r[metric] for r in records.layer_rows()}
    assert list(zip(x, y, strict=True)) == [
        (a["step"], value[(a["step"], a["layer"])]) for a in alerts
    ]


def test_layers_are_coloured_by_depth(journal: Path) -> None:
    from matplotlib import colormaps

    lines = _lines(trend_figure(journal, "alpha"))
    viridis = colormaps["viridis"]
    ids = {r["name"]: r["layer_id"] for r in read_monitor_journal(journal).layer_rows()}
    assert sorted(ids.values()) == [0, 1, 2]  # positions among the ≥ 2-D tensors
    for name, layer_id in ids.items():  # the deepest layer is yellow, the first purple
        np.testing.assert_allclose(lines[layer_gid(name)].get_color(), viridis(layer_id / 2))


def test_page_holds_the_table_the_figures_and_the_alerts(journal: Path) -> None:
    page = trend_page(journal)
    assert page.startswith("<!DOCTYPE html>") and 'id="training-trends"' in page
    assert page.count("data:image/png;base64,") == 3
    for alert in read_monitor_journal(journal).alert_rows():
        assert alert["message"].replace("<", "&lt;") in page


def test_cli_prints_writes_and_plots(journal: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["trend", str(journal), "-f", "csv"])
    assert result.exit_code == 0, result.output
    printed = pd.read_csv(io.StringIO(result.stdout))
    pd.testing.assert_frame_equal(printed, trend_table(journal), check_dtype=False)
    result = runner.invoke(
        app,
        [
            "trend",
            str(journal),
            "-q",
            "--figures",
            str(tmp_path / "f"),
            "--html",
            str(tmp_path / "t.html"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "4 steps" in result.stdout
    names = sorted(p.name for p in (tmp_path / "f").iterdir())
    assert names == ["trend-alpha.png", "trend-alpha_weighted.png", "trend-log_spectral_norm.png"]
    assert "During training" in (tmp_path / "t.html").read_text()


def test_cli_reads_a_parquet_journal_as_the_json_lines_one(
    journal: Path, parquet_journal: Path
) -> None:
    runner = CliRunner()
    printed = [
        runner.invoke(app, ["trend", str(j), "-f", "csv"]) for j in (journal, parquet_journal)
    ]
    assert all(r.exit_code == 0 for r in printed), [r.output for r in printed]
    assert printed[0].stdout == printed[1].stdout
    assert "alpha" in printed[0].stdout.splitlines()[0] and len(printed[0].stdout.splitlines()) == 5


def test_cli_errors_are_one_line(journal: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    result = runner.invoke(app, ["trend", str(bad)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"alphahat: error: {bad}: not an alphahat journal (version 1)"
    other = tmp_path / "run.jsonl"
    other.write_text(json.dumps({"alphahat_journal": 1, "key": {"options": {}}}) + "\n")
    result = runner.invoke(app, ["trend", str(other)])
    assert result.exit_code == 2 and "not a monitor journal" in result.stderr
    result = runner.invoke(app, ["trend", str(journal), "-m", "alpha,nonsense"])
    assert result.exit_code == 2 and "no column nonsense" in result.stderr


def test_html_report_gets_the_training_section(journal: Path) -> None:
    import alphahat
    from alphahat.html_report import report_html

    model = torch.nn.Sequential(torch.nn.Linear(40, 30))
    report = alphahat.analyze(model)
    plain = report_html(report, diagnostics="none")
    page = report_html(report, diagnostics="none", training_journal=journal)
    assert 'id="training-trends"' not in plain and "During training" not in plain
    assert page.count('id="training-trends"') == 1 and 'href="#training-trends"' in page
    assert page.count("data:image/png;base64,") == plain.count("data:image/png;base64,") + 3


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_cli_report_takes_the_training_journal(journal: Path, tmp_path: Path, fmt: str) -> None:
    from safetensors.numpy import save_file

    if fmt == "parquet":
        pytest.importorskip("pyarrow")
        journal = journal.with_suffix(".parquet")

    weights = tmp_path / "model.safetensors"
    rng = np.random.default_rng(0)
    save_file({"layer.weight": rng.standard_t(3, size=(60, 40)).astype(np.float32)}, str(weights))
    out = tmp_path / "report.html"
    args = ["report", str(weights), "-q", "-d", "none", "--training-journal", str(journal)]
    result = CliRunner().invoke(app, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert page.count('id="training-trends"') == 1 and "Model means per analysed step" in page
