"""alphahat compare: manifest validation, per-model analysis with its cache, outputs, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import save_file
from scipy import stats
from typer.testing import CliRunner

import alphahat
from alphahat.cli import app
from alphahat.compare import (
    POOLED,
    ManifestError,
    compare,
    model_metrics,
    read_manifest,
)
from alphahat.report import Report

runner = CliRunner()


def write_model(path: Path, seed: int, df: float = 3.0) -> None:
    rng = np.random.default_rng(seed)
    save_file(
        {
            "l0.weight": rng.standard_t(df, size=(96, 48)).astype(np.float32),
            "l1.weight": rng.standard_t(df, size=(64, 48)).astype(np.float32),
            "l1.bias": np.zeros(64, dtype=np.float32),
        },
        str(path),
    )


def write_manifest(folder: Path, lines: list[str]) -> Path:
    path = folder / "manifest.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def series(tmp_path: Path) -> Path:
    """Two groups of 4 models (t-distributed weights, varying tails) and a one-model group."""
    lines = ["model,accuracy,group,width"]
    for i in range(9):
        group = "solo" if i == 8 else ("a" if i < 4 else "b")
        write_model(tmp_path / f"m{i}.safetensors", seed=i, df=2.0 + 0.5 * (i % 4))
        lines.append(f"m{i}.safetensors,{90 + (i % 4) * 1.5 + (i >= 4) * 0.2},{group},{64 * i}")
    return write_manifest(tmp_path, lines)


# --- manifest ------------------------------------------------------------------------------


def test_manifest_reads_paths_groups_and_extras(series: Path) -> None:
    manifest = read_manifest(series)
    assert len(manifest.rows) == 9 and manifest.scale == "percent"
    assert manifest.groups == {"a": 4, "b": 4, "solo": 1}
    row = manifest.rows[1]
    assert row.line == 3 and row.path == series.parent / "m1.safetensors"
    assert row.accuracy == 91.5 and row.extra == {"width": "64"}
    assert any("percentages" in n for n in manifest.notes)
    assert any("'solo' (1)" in n for n in manifest.notes)


def test_manifest_error_column_and_scales(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, ["Model,Error", "a.pt,0.25", "b.pt,0.1"])
    manifest = read_manifest(path)
    assert manifest.scale == "fraction" and manifest.from_error and not manifest.has_groups
    assert [r.accuracy for r in manifest.rows] == [0.75, 0.9]
    assert [r.group for r in manifest.rows] == ["all", "all"]
    assert any("1 − error" in n for n in manifest.notes)
    percent = read_manifest(path, scale="percent")
    assert [r.accuracy for r in percent.rows] == [99.75, 99.9]
    path = write_manifest(tmp_path, ["model,error", "a.pt,7.5", "b.pt,0.5"])
    assert [r.accuracy for r in read_manifest(path).rows] == [92.5, 99.5]
    with pytest.raises(ManifestError, match=r"line 2 \(model 'a.pt'\): error 7.5 is > 1"):
        read_manifest(path, scale="fraction")


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            ["model,accuracy", "a.pt,abc", "b.pt,97", "c.pt,"],
            r"line 2 \(model 'a.pt'\): accuracy 'abc' is not a number; "
            r"line 4 \(model 'c.pt'\): accuracy '' is not a number",
        ),
        (["model,accuracy", "a.pt,nan"], "'nan' is not a number"),
        (["model,accuracy", "a.pt,101"], "line 2 .*outside"),
        (["model,accuracy", "a.pt,-1"], "outside"),
        (["path,accuracy", "a.pt,90"], "no 'model' column"),
        (["model,acc", "a.pt,90"], "no 'accuracy' \\(or 'error'\\) column"),
        (["model,accuracy,error", "a.pt,90,10"], "both 'accuracy' and 'error'"),
        (["model,accuracy,group", "a.pt,90,"], "line 2 .*empty group"),
        (
            ["model,accuracy", "a.pt,90", "./a.pt,91"],
            "line 3: model './a.pt' is listed twice \\(first on line 2\\)",
        ),
        (["model,accuracy", "a.pt,90,extra"], "line 2: 3 cells, the header has 2"),
        (["model,accuracy"], "no models"),
        ([], "empty"),
    ],
)  # fmt: skip
def test_manifest_errors_name_the_line(tmp_path: Path, lines: list[str], message: str) -> None:
    path = write_manifest(tmp_path, lines)
    with pytest.raises(ManifestError, match=message) as info:
        read_manifest(path)
    assert str(path) in str(info.value)


def test_missing_manifest_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path / "nope.csv")


# --- comparison ----------------------------------------------------------------------------


def test_compare_statistics_are_scipy_on_the_models_means(series: Path) -> None:
    result = compare(series, num_bootstrap=200)
    models = result.models
    assert list(models["status"]) == ["analysed"] * 9
    # the per-model metric is the report summary's mean, from an independent analysis
    report = alphahat.analyze(series.parent / "m2.safetensors")
    assert models.loc[2, "alpha"] == report.summary().means["alpha"]
    fitted = report.details[report.details["status"] == "fitted"]
    assert models.loc[2, "D"] == pytest.approx(fitted["D"].mean(), rel=1e-12)
    for group in ("a", "b", POOLED):
        rows = models if group == POOLED else models[models["group"] == group]
        ref = stats.linregress(rows["alpha"], rows["accuracy"])
        got = result.stats[("alpha", group)]
        assert got.slope == pytest.approx(ref.slope, rel=1e-10)
        assert got.r2 == pytest.approx(ref.rvalue**2, rel=1e-10)
        tau = stats.kendalltau(rows["alpha"], rows["accuracy"])
        assert got.kendall_tau == pytest.approx(tau.statistic, rel=1e-10)
    solo = result.stats[("alpha", "solo")]
    assert solo.status == "too-few-models" and solo.n == 1
    trends = result.trends
    assert set(trends["group"]) == {"a", "b", "solo", POOLED}
    assert len(trends) == 4 * len(result.metrics)
    assert [c.metric for c in result.checks] == list(result.metrics)
    assert models.loc[3, "width"] == "192"


def test_missing_and_broken_models_are_reported_others_kept(series: Path) -> None:
    (series.parent / "m5.safetensors").unlink()
    (series.parent / "m6.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    result = compare(series, num_bootstrap=0)
    status = dict(zip(result.models["model"], result.models["status"], strict=True))
    assert status["m5.safetensors"] == "missing" and status["m6.safetensors"] == "failed"
    assert sum(s == "analysed" for s in status.values()) == 7
    reasons = dict(zip(result.models["model"], result.models["reason"], strict=True))
    assert reasons["m5.safetensors"].startswith("line 7 (model 'm5.safetensors')")
    assert "line 8 (model 'm6.safetensors')" in reasons["m6.safetensors"]
    assert math.isnan(result.models.loc[5, "alpha"])
    assert result.stats[("alpha", "b")].n == 2  # m4, m7 are left
    assert result.stats[("alpha", "b")].status == "too-few-models"
    assert result.stats[("alpha", POOLED)].n == 7
    assert any("m5.safetensors missing" in n for n in result.notes)


def test_second_run_reanalyses_nothing(series: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import alphahat.compare.run as run_module

    calls: list[str] = []
    real = run_module.run_analysis

    def counting(source, options, **kw):  # type: ignore[no-untyped-def]
        calls.append(source.description)
        return real(source, options, **kw)

    monkeypatch.setattr(run_module, "run_analysis", counting)
    first = compare(series, num_bootstrap=50)
    assert len(calls) == 9
    cache = series.parent / ".alphahat-cache"
    assert len(list(cache.glob("*.json"))) == 9
    second = compare(series, num_bootstrap=50)
    assert len(calls) == 9  # nothing analysed again
    assert list(second.models["status"]) == ["cached"] * 9
    pd.testing.assert_frame_equal(first.trends, second.trends)
    metrics = list(first.metrics)
    pd.testing.assert_frame_equal(first.models[metrics], second.models[metrics])
    # a changed file or changed options miss the cache; a renamed file does not
    write_model(series.parent / "m0.safetensors", seed=100)
    (series.parent / "m1.safetensors").rename(series.parent / "m1-renamed.safetensors")
    text = series.read_text().replace("m1.safetensors", "m1-renamed.safetensors")
    series.write_text(text)
    third = compare(series, num_bootstrap=0)
    assert len(calls) == 10 and list(third.models["status"][:2]) == ["analysed", "cached"]
    compare(series, num_bootstrap=0, min_evals=20)
    assert len(calls) == 19
    compare(series, num_bootstrap=0, use_cache=False)
    assert len(calls) == 28


def test_cache_dir_option_and_corrupt_entries(series: Path, tmp_path: Path) -> None:
    cache = tmp_path / "elsewhere"
    compare(series, num_bootstrap=0, cache_dir=cache)
    entries = sorted(cache.glob("*.json"))
    assert len(entries) == 9 and not (series.parent / ".alphahat-cache").exists()
    entries[0].write_text("{broken")
    again = compare(series, num_bootstrap=0, cache_dir=cache)
    assert sorted(again.models["status"]) == ["analysed"] + ["cached"] * 8


def test_report_json_round_trip(series: Path) -> None:
    report = alphahat.analyze(series.parent / "m0.safetensors")
    path = series.parent / "r.json"
    report.to_json(path)
    back = Report.from_json(path)
    pd.testing.assert_frame_equal(back.details, report.details)
    pd.testing.assert_frame_equal(back.coverage, report.coverage)
    assert back.summary().means == report.summary().means
    assert model_metrics(back) == model_metrics(report)


def test_compare_option_errors(series: Path) -> None:
    with pytest.raises(ValueError, match="unknown metric.*'beta'"):
        compare(series, metrics=["alpha", "beta"])
    with pytest.raises(ValueError, match="min_evals"):
        compare(series, min_evals=-1)


# --- command line --------------------------------------------------------------------------


def test_cli_table_json_csv(series: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["compare", str(series), "-q", "--bootstrap", "100"])
    assert result.exit_code == 0, result.output
    assert "Simpson's paradox check" in result.output and "(pooled)" in result.output
    out_json = tmp_path / "c.json"
    result = runner.invoke(
        app, ["compare", str(series), "-q", "-o", str(out_json), "-m", "alpha,D"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out_json.read_text())
    assert data["metrics"] == ["alpha", "D"] and len(data["models"]) == 9
    assert {t["group"] for t in data["trends"]} == {"a", "b", "solo", POOLED}
    assert [c["metric"] for c in data["simpsons_paradox"]] == ["alpha", "D"]
    out_csv, models_csv = tmp_path / "c.csv", tmp_path / "m.csv"
    result = runner.invoke(
        app, ["compare", str(series), "-q", "-o", str(out_csv), "--models-output", str(models_csv)]
    )
    assert result.exit_code == 0, result.output
    trends = pd.read_csv(out_csv)
    assert {"metric", "group", "slope", "r2", "rmse", "kendall_tau", "slope_ci_low"} <= set(
        trends.columns
    )
    assert len(pd.read_csv(models_csv)) == 9


def test_cli_bad_manifest_exits_2_naming_the_line(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, ["model,accuracy", "a.safetensors,high"])
    result = runner.invoke(app, ["compare", str(path)])
    assert result.exit_code == 2
    assert "line 2 (model 'a.safetensors'): accuracy 'high' is not a number" in result.output
    result = runner.invoke(app, ["compare", str(path), "-m", "nope"])
    assert result.exit_code == 2


def test_cli_no_usable_model_exits_1(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, ["model,accuracy", "gone.safetensors,90"])
    result = runner.invoke(app, ["compare", str(path)])
    assert result.exit_code == 1
    assert "no such file" in result.output and "no model could be analysed" in result.output


@pytest.mark.slow  # matplotlib renders four figures and two more for the page
def test_cli_figures_and_self_contained_html(series: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    figures, page = tmp_path / "figs", tmp_path / "compare.html"
    result = runner.invoke(
        app,
        ["compare", str(series), "-q", "--bootstrap", "0", "-m", "alpha,log_spectral_norm",
         "--figures", str(figures), "--html", str(page)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in figures.iterdir())
    assert names == [
        "alpha_by_group.png", "alpha_vs_accuracy.png", "log_spectral_norm_vs_accuracy.png",
        "metrics_vs_accuracy.png",
    ]  # fmt: skip
    for path in figures.iterdir():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "Simpson" in text
    assert text.count("data:image/png;base64,") == 2
    assert "http://" not in text and "https://" not in text


def test_each_model_file_is_hashed_once(series: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache key's SHA-256 of a file serves the report's provenance too (no second read),
    and the provenance holds the true digest of the file's bytes."""
    import hashlib

    import alphahat.compare.run as run_module
    import alphahat.engine.hashing as hashing_module
    import alphahat.sources as sources_module

    hashed: list[str] = []
    opened: list[str] = []
    real = sources_module.file_sha256
    real_open = run_module.open_source

    def counting(path, **kw):  # type: ignore[no-untyped-def]
        hashed.append(str(path))
        return real(path, **kw)

    def counting_open(path, **kw):  # type: ignore[no-untyped-def]
        opened.append(str(path))
        return real_open(path, **kw)

    monkeypatch.setattr(run_module, "file_sha256", counting)
    monkeypatch.setattr(hashing_module, "file_sha256", counting)  # the provenance thread's
    monkeypatch.setattr(run_module, "open_source", counting_open)
    result = compare(series, num_bootstrap=0)
    assert len(hashed) == 9 and len(set(hashed)) == 9  # 9 files, each read once
    assert len(opened) == 9 and len(set(opened)) == 9  # each model opened once
    path = series.parent / "m0.safetensors"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert list(result.reports["m0.safetensors"].provenance["file_sha256"].values()) == [digest]
