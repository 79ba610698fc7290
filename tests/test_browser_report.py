"""The HTML report in a real browser: headless Chromium through selenium/chromedriver.

Checks that the page loads with no console errors and no network requests (only the file itself
and data: URIs), that clicking a column header sorts the table (and a second click reverses it),
that a layer link opens its drill-down, and saves a screenshot. Skipped only where Chromium or
chromedriver is not installed (``scripts/install-test-tools.sh`` installs the Debian packages).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("matplotlib")
webdriver = pytest.importorskip("selenium.webdriver")

import alphahat  # noqa: E402
from alphahat.html_report import write_html_report  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _find_browser() -> tuple[str, str]:
    browser = os.environ.get("ALPHAHAT_CHROMIUM") or next(
        (path for path in map(shutil.which, BROWSERS) if path), None
    )
    driver = os.environ.get("ALPHAHAT_CHROMEDRIVER") or shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip(
            "Chromium or chromedriver not found (install the Debian packages chromium and "
            "chromium-driver, e.g. with scripts/install-test-tools.sh)"
        )
    return browser, driver


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    binary, driver_path = _find_browser()
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
    except Exception as exc:  # a browser that is installed but cannot start is a failure
        pytest.fail(f"headless Chromium did not start: {exc}")
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def report_file(minilm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report of MiniLM's first block (its dense layers) plus one layer whose fit fails."""
    from safetensors import safe_open

    with safe_open(str(minilm_path), "np") as f:
        weights = {
            name: f.get_tensor(name)
            for name in f.keys()  # noqa: SIM118  (safe_open is not a mapping)
            if name.startswith("encoder.layer.0.") and name.endswith("dense.weight")
        }
    weights["zz.constant.weight"] = np.ones((64, 32), dtype=np.float32)  # fit fails: α is NaN
    report = alphahat.analyze(weights, keep_eigenvalues=True)
    assert report.details["alpha"].isna().sum() == 1
    path = tmp_path_factory.mktemp("browser") / "report.html"
    write_html_report(
        report, path, diagnostics=["encoder.layer.0.attention.output.dense.weight"], dpi=60
    )
    return path


def _column_values(driver: Any, table: str, column: int) -> list[str]:
    from selenium.webdriver.common.by import By

    cells = driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr td:nth-child({column + 1})")
    return [c.get_attribute("data-value") for c in cells]


def _as_numbers(values: list[str]) -> list[float]:
    return [float(v) if v else math.nan for v in values]


def test_report_in_headless_chromium(browser: Any, report_file: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    url = report_file.resolve().as_uri()
    browser.get(url)
    assert browser.title.startswith("alphahat report")
    # no console messages of level warning or error
    problems = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert not problems, problems
    # no network: every request is the page itself or a data: URI
    requests = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requests.append(message["params"]["request"]["url"])
    assert url in requests
    outside = [u for u in requests if u != url and not u.startswith("data:")]
    assert not outside, outside
    # every image decoded (a broken data URI has naturalWidth 0)
    widths = browser.execute_script(
        "return Array.from(document.images).map(function (i) { return i.naturalWidth; });"
    )
    assert widths and all(w > 100 for w in widths), widths

    # sorting: click the alpha header → ascending, again → descending; missing values last
    headers = browser.find_elements(By.CSS_SELECTOR, "#layers thead th")
    names = [h.get_attribute("textContent").strip().split()[0] for h in headers]
    col = names.index("alpha")
    original = _as_numbers(_column_values(browser, "layers", col))
    assert original != sorted(original), "the test needs a table that is not already sorted"
    finite = [v for v in original if not math.isnan(v)]
    missing = len(original) - len(finite)
    assert missing == 1
    headers[col].click()
    ascending = _as_numbers(_column_values(browser, "layers", col))
    assert ascending[:-missing] == sorted(finite) and math.isnan(ascending[-1])
    assert headers[col].get_attribute("aria-sort") == "ascending"
    headers[col].click()
    descending = _as_numbers(_column_values(browser, "layers", col))
    assert descending[:-missing] == sorted(finite, reverse=True) and math.isnan(descending[-1])
    assert headers[col].get_attribute("aria-sort") == "descending"
    # rows move as a whole: the name column follows the alpha column
    name_col = names.index("name")
    pairs = dict(
        zip(
            _column_values(browser, "layers", name_col),
            _column_values(browser, "layers", col),
            strict=True,
        )
    )
    assert len(pairs) == len(original)
    # sorting a text column
    headers[name_col].click()
    texts = _column_values(browser, "layers", name_col)
    assert texts == sorted(texts, key=str.lower)

    browser.execute_script("window.scrollTo(0, 0);")
    top = tmp_path / "report-top.png"
    browser.save_screenshot(str(top))

    # drill-down: the layer link opens its <details> with the figures
    link = browser.find_element(By.CSS_SELECTOR, '#layers a[href^="#layer-"]')
    target = link.get_attribute("href").split("#", 1)[1]
    details = browser.find_element(By.ID, target)
    assert details.get_attribute("open") is None
    link.click()
    # the page opens it on the 'hashchange' event, which fires after the click returns
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 10).until(lambda _: details.get_attribute("open") is not None)
    assert details.find_element(By.TAG_NAME, "img").is_displayed()

    shot = tmp_path / "report-drill-down.png"
    browser.save_screenshot(str(shot))
    from PIL import Image

    for path in (top, shot):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size[0] >= 800
            pixels = np.asarray(image.convert("L"))
        assert pixels.std() > 10  # not a blank page
    # still nothing logged after the clicks
    problems = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert not problems, problems
    keep = os.environ.get("ALPHAHAT_KEEP_SCREENSHOTS")  # a folder, to look at them
    if keep:
        for path in (top, shot):
            shutil.copy(path, Path(keep) / path.name)


def _layout(driver: Any) -> dict[str, Any]:
    """Widths, the name column's place and the row heights of the page as drawn."""
    result: dict[str, Any] = driver.execute_script(
        """
        var table = document.getElementById("layers"), wrap = table.parentElement;
        var head = table.querySelectorAll("thead th");
        var nameCol = Array.prototype.findIndex.call(head, function (th) {
          return th.textContent.trim().indexOf("name") === 0;
        });
        function box(el) { var r = el.getBoundingClientRect();
          return {left: r.left, right: r.right, width: r.width, height: r.height}; }
        var rows = Array.prototype.map.call(table.tBodies[0].rows, function (row) {
          return {cls: row.className, height: box(row).height,
                  name: box(row.cells[nameCol])};
        });
        return {inner: window.innerWidth, body: document.body.scrollWidth,
                page: document.documentElement.scrollWidth, wrap: box(wrap),
                wrapScroll: wrap.scrollWidth, table: box(table), nameCol: nameCol,
                nameHead: box(head[nameCol]), rows: rows,
                shown: Array.prototype.filter.call(head, function (th) {
                  return th.offsetParent !== null; }).length,
                columns: head.length};
        """
    )
    return result


def test_report_layout_at_1400_and_900_px(browser: Any, report_file: Path, tmp_path: Path) -> None:
    """The page never scrolls sideways; the name column stays in view; rows are one line."""
    from selenium.webdriver.common.by import By

    shots = []
    try:
        for width in (1400, 900):
            browser.set_window_size(width, 1000)
            browser.get(report_file.resolve().as_uri())
            layout = _layout(browser)
            inner = layout["inner"]
            # the page body never needs a horizontal scroll (only the table's own box may)
            assert layout["body"] <= inner and layout["page"] <= inner, (width, layout)
            name = layout["nameHead"]
            assert layout["wrap"]["left"] <= name["left"] and name["right"] <= inner
            # flagged rows (a failed fit with its long reason, warnings) are no taller
            heights = [r["height"] for r in layout["rows"]]
            assert {r["cls"] for r in layout["rows"]} >= {"", "bad"}
            assert max(heights) - min(heights) < 2, layout["rows"]
            if width == 1400:  # the compact columns fit the page: no scroll at all
                assert layout["wrapScroll"] <= layout["wrap"]["width"] + 1, layout
                assert layout["shown"] < layout["columns"]
            browser.execute_script(
                "window.scrollTo(0, document.getElementById('layers-heading')"
                ".getBoundingClientRect().top + window.scrollY - 10);"
            )
            shot = tmp_path / f"report-layers-{width}.png"
            browser.save_screenshot(str(shot))
            shots.append(shot)
            # every column on demand; the table scrolls in its box, the name stays in view
            browser.find_element(By.CSS_SELECTOR, "input[data-all-columns='layers']").click()
            browser.execute_script(
                "var w = document.getElementById('layers').parentElement;"
                "w.scrollLeft = w.scrollWidth;"
            )
            layout = _layout(browser)
            assert layout["shown"] == layout["columns"]
            assert layout["body"] <= inner and layout["page"] <= inner, (width, layout)
            assert layout["wrapScroll"] > layout["wrap"]["width"], "all columns are wider"
            for row in layout["rows"]:
                cell = row["name"]
                assert layout["wrap"]["left"] - 1 <= cell["left"] < cell["right"] <= inner
            heights = [r["height"] for r in layout["rows"]]
            assert max(heights) - min(heights) < 2
            shot = tmp_path / f"report-all-columns-{width}.png"
            browser.save_screenshot(str(shot))
            shots.append(shot)
            # the provenance is tables of text, not JSON: the BLAS row is a nested table
            blas = browser.find_element(
                By.XPATH, "//table[@id='provenance']/tbody/tr[th='blas']/td"
            )
            assert blas.find_elements(By.CSS_SELECTOR, "table.kv th")
            assert '{"' not in blas.text and "version" in blas.text
            browser.execute_script("arguments[0].scrollIntoView();", blas)
            shot = tmp_path / f"report-provenance-{width}.png"
            browser.save_screenshot(str(shot))
            shots.append(shot)
    finally:
        browser.set_window_size(1400, 1000)
    keep = os.environ.get("ALPHAHAT_KEEP_SCREENSHOTS")
    if keep:
        for path in shots:
            shutil.copy(path, Path(keep) / path.name)
