"""The self-contained HTML report: content, no network references, size on a 500-layer model."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")

import alphahat  # noqa: E402
from alphahat.html_report import report_html, write_html_report  # noqa: E402
from alphahat.report.html import (  # noqa: E402
    html_page,
    select_diagnostic_layers,
    sortable_table,
)

EXTERNAL = re.compile(r"""(?:src|href|action|poster|srcset)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


class PageParser(HTMLParser):
    """Collects ids, links, images, scripts and table cells of a page (stdlib parser)."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.images: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self.links: list[dict[str, str | None]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        if a.get("id"):
            self.ids.add(str(a["id"]))
        if tag == "a" and a.get("href"):
            self.hrefs.append(str(a["href"]))
        if tag == "img":
            self.images.append(str(a.get("src")))
        if tag == "script":
            self.scripts.append(a)
        if tag == "link":
            self.links.append(a)


def parse(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    return parser


def assert_self_contained(page: str) -> PageParser:
    assert not EXTERNAL.search(page), EXTERNAL.search(page)
    assert "http://" not in page and "https://" not in page
    parsed = parse(page)
    assert all(s.get("src") is None for s in parsed.scripts), "external script"
    assert not parsed.links, "a <link> element (stylesheet/font) would load a file"
    assert all(src.startswith("data:image/png;base64,") for src in parsed.images)
    assert all(h.startswith("#") for h in parsed.hrefs)
    return parsed


@pytest.fixture(scope="module")
def minilm_block(minilm_block0_report: Any) -> Any:
    return minilm_block0_report


@pytest.fixture(scope="module")
def flagged_report() -> Any:
    """Synthetic model with an under-trained, a failed and skipped tensors."""
    rng = np.random.default_rng(7)
    weights = {
        "heavy.weight": rng.standard_t(2.5, size=(200, 100)),
        "gaussian.weight": rng.normal(size=(400, 100)),  # a random matrix: α ≫ 6
        "constant.weight": np.ones((30, 20)),  # rank one: no power-law tail
        "tiny.weight": rng.normal(size=(4, 3)),  # < min_evals: skipped
        "bias": rng.normal(size=10),  # 1-D: skipped
        "<script>alert(1)</script>.weight": rng.standard_t(3, size=(60, 30)),
    }
    return alphahat.analyze(weights, keep_eigenvalues=True)


def test_html_page_shell() -> None:
    page = html_page("a <title> & more", "<p>body</p>")
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>a &lt;title&gt; &amp; more</title>" in page
    assert "<style>" in page and "<script>" in page and "<p>body</p>" in page
    assert_self_contained(page)
    # the script is small
    script = page[page.index("<script>") : page.index("</script>")]
    assert len(script) < 4000


def test_sortable_table_cells_keys_links_and_escaping() -> None:
    frame = pd.DataFrame(
        {
            "name": ["b<i>", "a", "c"],
            "alpha": [3.25, float("nan"), 1e-6],
            "n": pd.array([3, None, 10], dtype="Int64"),
        }
    )
    table = sortable_table(
        frame, links={"name": ["#x", None, "#z"]}, row_classes=["warn", "", "bad"], table_id="t"
    )
    assert 'class="sortable" id="t"' in table
    assert "b&lt;i&gt;" in table and "<i>" not in table
    assert 'data-value="3.25">3.250<' in table
    assert 'data-value="">—<' in table  # NaN and <NA>: empty key (sorted last), shown as —
    assert 'data-value="1e-06">1e-06<' in table
    assert '<a href="#x">b&lt;i&gt;</a>' in table and '<a href="#z">c</a>' in table
    assert '<tr class="warn">' in table and '<tr class="bad">' in table
    with pytest.raises(ValueError, match="no column"):
        sortable_table(frame, ["nope"])
    with pytest.raises(ValueError, match="links"):
        sortable_table(frame, links={"name": ["#x"]})


def test_report_of_real_layers(minilm_block: Any, tmp_path: Path) -> None:
    drill = ["encoder.layer.0.attention.self.query.weight", "encoder.layer.0.output.dense.weight"]
    path = write_html_report(minilm_block, tmp_path / "report.html", dpi=40, diagnostics=drill)
    page = path.read_text(encoding="utf-8")
    parsed = assert_self_contained(page)
    for section in ("summary", "warnings", "figures", "layers", "diagnostics", "provenance"):
        assert section in parsed.ids
    # every layer in the table, each linking to its drill-down, which exists
    details = minilm_block.details
    for layer_id, name in zip(details["layer_id"], details["name"], strict=True):
        assert f">{name}<" in page
        linked = f'<a href="#layer-{layer_id}">{name}</a>' in page
        assert linked == (name in drill) == (f"layer-{layer_id}" in parsed.ids)
    # the images are real PNGs: model figures + one diagnostics figure per layer (+ MP panels)
    from PIL import Image

    for src in parsed.images:
        data = base64.b64decode(src.split(",", 1)[1])
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
            assert image.format == "PNG"
    mp = page.count('alt="Marchenko–Pastur fit of')
    assert len(parsed.images) == 2 + len(drill) + mp
    try:
        import alphahat.fit.marchenko_pastur  # noqa: F401

        assert mp == len(drill), "the MP panel belongs in the drill-down when the fit exists"
    except ImportError:
        assert mp == 0
    assert "2 of 6 layers (as asked)" in page
    # the summary numbers are the report's
    alpha_mean = minilm_block.summary().means["alpha"]
    assert f"{alpha_mean:.4f}" in page
    # written atomically: nothing else in the folder
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_warnings_and_escaping(flagged_report: Any) -> None:
    details = flagged_report.details
    # what the analysis found, independently of the page
    assert details.loc[details["name"] == "gaussian.weight", "warning"].item() == "under-trained"
    failed = details[details["status"] == "failed"]
    assert "constant.weight" in set(failed["name"])
    page = report_html(flagged_report, diagnostics="none")
    assert_self_contained(page)
    assert "under-trained (α &gt; 6)" in page
    assert "gaussian.weight" in page
    assert f"{len(failed)} layer(s) failed" in page
    reason = str(failed.loc[failed["name"] == "constant.weight", "reason"].item())
    assert reason and __import__("html").escape(reason) in page
    assert "tensor(s) skipped" in page and "1-D tensor" in page
    # a hostile layer name is text, never markup
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.weight" in page
    assert "No per-layer" not in page  # eigenvalues were kept
    assert "No fit-diagnostics figures in this report" in page


def test_report_without_eigenvalues_still_has_the_table(minilm_block: Any) -> None:
    bare = type(minilm_block)(minilm_block.details, minilm_block.coverage, minilm_block.options)
    page = report_html(bare)
    assert "keep_eigenvalues=True" in page
    assert page.count("<img") == 2  # the two model figures
    assert 'href="#layer-' not in page


def _synthetic(num_layers: int) -> Any:
    rng = np.random.default_rng(0)
    weights = {f"blocks.{i}.weight": rng.standard_t(3.0, size=(24, 12)) for i in range(num_layers)}
    return alphahat.analyze(weights, keep_eigenvalues=True)


def test_500_layers_stay_small(tmp_path: Path) -> None:
    report = _synthetic(500)
    details = report.details
    assert len(details) == 500
    # the "auto" choice: at most the cap, flagged layers first, evenly spread otherwise
    available = report.eigenvalues.keys()
    flagged = details[(details["status"] != "fitted") | (details["warning"] != "")]
    assert 50 < len(flagged) < 450  # small t(3) matrices: many α outside [2, 6]
    names = select_diagnostic_layers(details, available, "auto", 50)
    assert names == list(flagged["name"])[:50]
    names = select_diagnostic_layers(details, available, "auto", 450)
    assert len(names) == 450 and set(flagged["name"]) <= set(names)
    assert names == [n for n in details["name"] if n in set(names)]  # in layer order
    others = [i for i, n in enumerate(details["name"]) if n in set(names) - set(flagged["name"])]
    assert others[0] < 25 and others[-1] > 475  # spread over the depth
    assert select_diagnostic_layers(details, available, "all") == list(details["name"])
    assert select_diagnostic_layers(details, available, "none") == []
    assert select_diagnostic_layers(details, available, ["blocks.7.*"]) == ["blocks.7.weight"]
    # page size: without diagnostics, and the cost of one layer's figures (default settings)
    base = len(report_html(report, diagnostics="none").encode("utf-8"))
    capped = report_html(report, max_diagnostics=1)
    assert_self_contained(capped)
    assert "for 1 of 500 layers" in capped and "--diagnostics all" in capped
    per_layer = len(capped.encode("utf-8")) - base
    assert base < 2_000_000, base
    assert 2_000 < per_layer < 35_000, per_layer
    # even with figures for every one of the 500 layers the file stays under 20 MB
    assert base + 500 * per_layer < 20_000_000
    with pytest.raises(ValueError, match="max_diagnostics"):
        report_html(report, max_diagnostics=-1)


def test_report_command(minilm_path: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from alphahat.cli import app

    out = tmp_path / "r.html"
    result = CliRunner().invoke(
        app,
        ["report", str(minilm_path), "-l", "encoder.layer.5.*", "-o", str(out), "-q",
         "--diagnostics", "encoder.layer.5.output.dense.weight", "--title", "MiniLM block 5"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert_self_contained(page)
    assert "<title>MiniLM block 5</title>" in page
    assert page.count('<details class="layer"') == 1
    assert "encoder.layer.5.intermediate.dense.weight" in page


def test_report_command_from_a_saved_json_report(minilm_block: Any, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from alphahat.cli import app

    saved = tmp_path / "layers.json"
    minilm_block.to_json(saved)
    out = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["report", str(saved), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert_self_contained(page)
    assert '<details class="layer"' not in page and "keep_eigenvalues=True" in page
    for name in minilm_block.details["name"]:
        assert f">{name}<" in page
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = CliRunner().invoke(app, ["report", str(broken), "-o", str(out), "-q"])
    assert result.exit_code == 2
    assert "error" in result.output


def test_reused_figures_draw_what_new_figures_draw(minilm_block: Any) -> None:
    """The report draws every layer on the same two figures: the pixels equal a fresh figure's."""
    from PIL import Image

    from alphahat.html_report import layer_figures
    from alphahat.plot import figure_data_uri

    def pixels(fig: Any) -> np.ndarray:
        data = base64.b64decode(figure_data_uri(fig, dpi=40, colors=32).split(",", 1)[1])
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))

    rows = minilm_block.details.to_dict("records")
    reuse: dict[str, Any] = {}
    for row in rows[:3]:
        reused = [pixels(fig) for _, fig in layer_figures(minilm_block, row, reuse=reuse)]
        fresh = [pixels(fig) for _, fig in layer_figures(minilm_block, row)]
        assert len(reused) == len(fresh) == 2
        for a, b in zip(reused, fresh, strict=True):
            assert a.shape == b.shape and np.array_equal(a, b), row["name"]
    assert set(reuse) == {"diagnostics", "mp"}


def test_figures_drawn_on_worker_processes_are_the_same(
    minilm_block: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``workers=2`` (two processes, each sent its layers) writes the page one process writes."""
    from alphahat import html_report

    serial = report_html(minilm_block, diagnostics="all", dpi=30)
    monkeypatch.setattr(html_report, "FIGURES_PER_WORKER", 1)  # 2 workers for these 6 layers
    ticks: list[tuple[int, int]] = []
    monkeypatch.setattr(html_report, "progress_bar", _recording_bar(ticks))
    parallel = report_html(minilm_block, diagnostics="all", dpi=30, workers=2, progress=True)
    assert parallel == serial
    assert parallel.count('alt="fit diagnostics of') == len(minilm_block.details) == 6
    # the bar: the model figures, then each layer as it comes back
    assert ticks[0] == (1, 7) and sorted(ticks) == [(i, 7) for i in range(1, 8)]


def _recording_bar(ticks: list[tuple[int, int]]) -> Any:
    import contextlib

    @contextlib.contextmanager
    def bar(enabled: bool, total: int | None, **_: Any) -> Any:
        assert enabled and total == 7
        yield lambda done, total, name: ticks.append((done, total))

    return bar
