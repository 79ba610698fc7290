"""Self-contained HTML: a page shell, sortable tables, and the report's sections without figures.

Everything a page needs is inside the one file: CSS and a small script inline, figures as
``data:image/png;base64`` URIs. Nothing is fetched from the network (no CDN, no fonts, no
external links in ``src``/``href``), so a report opens offline and can be mailed around.

* :func:`html_page` — the shell (inline CSS + the table-sorting / drill-down script) around any
  body; other pages (e.g. model comparisons) reuse it.
* :func:`sortable_table` — a pandas DataFrame as a ``<table class="sortable">``: a click on a
  header sorts by that column (numbers numerically, missing values last), a second click
  reverses the order.
* :func:`warnings_section`, :func:`layer_table_html`, :func:`provenance_section`,
  :func:`select_diagnostic_layers` — the parts of a model's report that need no figure.

The model report with its figures is :mod:`alphahat.html_report` (above this package and
:mod:`alphahat.plot`, which draws them).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from alphahat._version import __version__

if TYPE_CHECKING:
    from alphahat.report import Report


_CSS = """
:root { color-scheme: light; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0;
  --head: #f6f8fa; --warn: #9a6700; --bad: #cf222e; --ok: #1a7f37; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  margin: 0 auto; padding: 1.5rem 2rem 4rem; max-width: 1400px; }
h1 { font-size: 1.6rem; margin: 0 0 .3rem; } h2 { font-size: 1.25rem; margin: 2rem 0 .6rem;
  border-bottom: 1px solid var(--line); padding-bottom: .3rem; } h3 { font-size: 1.05rem; }
.muted { color: var(--muted); } code { font-size: 90%; }
.table-wrap { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: .25rem .5rem; vertical-align: top; }
th { background: var(--head); text-align: left; white-space: nowrap; }
td.num { text-align: right; white-space: nowrap; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: var(--muted); font-size: 80%; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; color: var(--fg); }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; color: var(--fg); }
tr.warn td { background: #fff8c5; } tr.bad td { background: #ffebe9; }
table.layers { font-size: 13px; } table.layers td { white-space: nowrap; }
table.layers th { white-space: normal; vertical-align: bottom; }
.sticky { position: sticky; left: 0; z-index: 1; background: #fff;
  box-shadow: 1px 0 0 var(--line); }
th.sticky { background: var(--head); z-index: 2; }
td.clip { max-width: 14em; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
td.sticky.clip { max-width: 26em; }
table.compact .extra { display: none; }
.table-tools { margin: .2rem 0 .4rem; font-size: 90%; color: var(--muted); }
table.kv { margin: 0; } table.kv th { font-weight: 600; background: none; }
table.kv td, table.kv th { padding: .1rem .4rem; }
.figures { display: flex; flex-wrap: wrap; gap: 1rem; }
.figures figure { margin: 0; } img { max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 90%; }
details.layer { border: 1px solid var(--line); border-radius: 6px; margin: .4rem 0;
  padding: .3rem .7rem; }
details.layer[open] { background: #fbfbfc; } details > summary { cursor: pointer; }
ul.warnings li.bad { color: var(--bad); } ul.warnings li.warn { color: var(--warn); }
.note { border-left: 3px solid var(--line); padding-left: .7rem; color: var(--muted); }
"""

# Sorts any table.sortable by the clicked header (data-value holds the sort key; "" sorts last
# in both directions; ties keep their original order) and opens a <details> that the URL
# fragment points at, so the table's links drill down to a layer's figures.
_SCRIPT = """
(function () {
  "use strict";
  function keyOf(cell) {
    var raw = cell.getAttribute("data-value");
    if (raw === null) { raw = cell.textContent.trim(); }
    if (raw === "") { return null; }
    var num = Number(raw);
    return isNaN(num) ? raw.toLowerCase() : num;
  }
  function compare(a, b) {
    if (typeof a === typeof b) { return a < b ? -1 : (a > b ? 1 : 0); }
    return typeof a === "number" ? -1 : 1;
  }
  function sortTable(th) {
    var table = th.closest("table"), body = table.tBodies[0];
    var col = Array.prototype.indexOf.call(th.parentNode.cells, th);
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(th.parentNode.cells, function (c) {
      c.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var rows = Array.prototype.map.call(body.rows, function (row, i) {
      return { row: row, key: keyOf(row.cells[col]), index: i };
    });
    rows.sort(function (x, y) {
      if (x.key === null || y.key === null) {
        return x.key === y.key ? x.index - y.index : (x.key === null ? 1 : -1);
      }
      var c = compare(x.key, y.key);
      return (ascending ? c : -c) || x.index - y.index;
    });
    rows.forEach(function (r) { body.appendChild(r.row); });
  }
  document.addEventListener("click", function (event) {
    var th = event.target.closest("table.sortable thead th");
    if (th) { sortTable(th); }
  });
  document.addEventListener("keydown", function (event) {
    var th = event.target.closest && event.target.closest("table.sortable thead th");
    if (th && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault(); sortTable(th);
    }
  });
  function showColumns(box) {
    var table = document.getElementById(box.getAttribute("data-all-columns"));
    if (table) { table.classList.toggle("compact", !box.checked); }
  }
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (box.matches && box.matches("input[data-all-columns]")) { showColumns(box); }
  });
  Array.prototype.forEach.call(  // a browser may restore a ticked box on reload
    document.querySelectorAll("input[data-all-columns]"), showColumns);
  function openTarget() {
    var id = decodeURIComponent(window.location.hash.slice(1));
    var el = id ? document.getElementById(id) : null;
    if (el && el.tagName === "DETAILS") { el.open = true; el.scrollIntoView(); }
  }
  window.addEventListener("hashchange", openTarget);
  openTarget();
})();
"""


def html_page(title: str, body_html: str) -> str:
    """A complete, self-contained HTML5 page: ``title``, inline CSS and script, ``body_html``.

    ``body_html`` is inserted as is (escape user text yourself, e.g. with :func:`html.escape`).
    Tables made by :func:`sortable_table` in it sort when a header is clicked; a link to
    ``#id`` of a ``<details>`` element opens it.
    """
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="alphahat {html.escape(__version__)}">\n'
        f"<title>{html.escape(title)}</title>\n"
        f"<style>{_CSS}</style>\n</head>\n<body>\n{body_html}\n"
        f"<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float | np.floating) and not math.isfinite(float(value))


def format_cell(value: Any) -> str:
    """Display text of one table cell (numbers to ~4 significant digits, missing as —)."""
    if _is_missing(value):
        if isinstance(value, float | np.floating) and not math.isnan(float(value)):
            return "∞" if float(value) > 0 else "−∞"
        return "—"
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating):
        v = float(value)
        small = v != 0 and abs(v) < 1e-3
        return f"{v:.4g}" if abs(v) >= 1e5 or small else f"{v:.3f}"
    return str(value)


def _sort_key(value: Any) -> str:
    if _is_missing(value):
        return ""
    if isinstance(value, bool | np.bool_):
        return str(int(bool(value)))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return repr(float(value))
    return str(value)


def sortable_table(
    frame: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    table_id: str | None = None,
    caption: str | None = None,
    links: Mapping[str, Sequence[str | None]] | None = None,
    row_classes: Sequence[str] | None = None,
    formatter: Callable[[Any], str] = format_cell,
    column_classes: Mapping[str, str] | None = None,
    table_classes: str = "",
) -> str:
    """HTML of ``frame`` as a table that sorts when a header is clicked (needs :func:`html_page`).

    Args:
        frame: the rows to show.
        columns: which columns, in order (default: all).
        table_id: ``id`` attribute of the table.
        caption: a caption (plain text; escaped here).
        links: per column, one ``href`` per row (None: no link) wrapped around that cell.
        row_classes: one CSS class per row (e.g. ``"warn"``, ``"bad"``, ``""``).
        formatter: display text of a cell value; the sort key is the raw value.
        column_classes: CSS classes of a column's header and cells (``sticky``: stays in view
            when the table scrolls sideways; ``clip``: one line, cut with an ellipsis, the
            whole text in the cell's tooltip; ``extra``: hidden while the table is
            ``compact``).
        table_classes: more CSS classes of the table (e.g. ``compact``).
    """
    cols = list(frame.columns if columns is None else columns)
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"sortable_table: no column(s) {missing} in the frame")
    links = links or {}
    for col, hrefs in links.items():
        if len(hrefs) != len(frame):
            raise ValueError(
                f"sortable_table: links[{col!r}] has {len(hrefs)} entries for {len(frame)} rows"
            )
    if row_classes is not None and len(row_classes) != len(frame):
        raise ValueError(f"sortable_table: {len(row_classes)} row classes for {len(frame)} rows")
    numeric = {c: frame[c].dtype.kind in "iuf" for c in cols}
    extra = dict(column_classes or {})

    def classes(*names: str) -> str:
        joined = " ".join(n for n in names if n)
        return f' class="{html.escape(joined, quote=True)}"' if joined else ""

    head = "".join(
        f'<th scope="col" tabindex="0" title="sort by {html.escape(c)}"'
        f"{classes(extra.get(c, ''))}>{html.escape(c).replace('_', '_<wbr>')}</th>"
        for c in cols
    )
    body: list[str] = []
    for i, row in enumerate(frame[cols].itertuples(index=False, name=None)):
        cells = []
        for col, value in zip(cols, row, strict=True):
            shown = formatter(value)
            text = html.escape(shown)
            href = links.get(col, [None] * len(frame))[i]
            if href is not None:
                text = f'<a href="{html.escape(href, quote=True)}">{text}</a>'
            cls = classes("num" if numeric[col] else "", extra.get(col, ""))
            clipped = "clip" in extra.get(col, "")
            tip = f' title="{html.escape(shown, quote=True)}"' if clipped else ""
            key = html.escape(_sort_key(value), quote=True)
            cells.append(f'<td{cls}{tip} data-value="{key}">{text}</td>')
        rcls = row_classes[i] if row_classes is not None else ""
        rattr = f' class="{html.escape(rcls, quote=True)}"' if rcls else ""
        body.append(f"<tr{rattr}>{''.join(cells)}</tr>")
    tid = f' id="{html.escape(table_id, quote=True)}"' if table_id else ""
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (
        f'<div class="table-wrap"><table{classes("sortable", table_classes)}{tid}>{cap}'
        f"<thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table></div>"
    )


def figure_html(uri: str, alt: str, caption: str = "") -> str:
    """A ``<figure>`` with the image at ``uri`` (a ``data:`` URI), its alt text and caption."""
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{uri}" alt="{html.escape(alt, quote=True)}">{cap}</figure>'


# ---------------------------------------------------------------------------------------------
# The model report
# ---------------------------------------------------------------------------------------------

#: Columns of the per-layer table of the HTML report.
REPORT_TABLE_COLUMNS = (
    "layer_id", "name", "kind", "N", "M", "num_evals", "alpha", "alpha_weighted", "D", "xmin",
    "num_pl_spikes", "log_spectral_norm", "log_norm", "log_alpha_norm", "stable_rank", "entropy",
    "warning", "status", "reason",
)  # fmt: skip
#: The columns shown before "all columns" is ticked (as the terminal's compact table).
COMPACT_TABLE_COLUMNS = (
    "layer_id", "name", "kind", "N", "M", "alpha", "alpha_weighted", "D", "log_spectral_norm",
    "warning", "status", "reason",
)  # fmt: skip
#: With ``diagnostics="auto"``, at most this many layers get fit-diagnostics figures.
DEFAULT_MAX_DIAGNOSTICS = 50
DiagnosticsChoice = str | Sequence[str | int]


def layer_anchor(layer_id: int) -> str:
    """Fragment id of a layer's drill-down section."""
    return f"layer-{int(layer_id)}"


def _rows(frame: pd.DataFrame) -> list[dict[Any, Any]]:
    rows: list[dict[Any, Any]] = frame.to_dict("records")
    return rows


def select_diagnostic_layers(
    details: pd.DataFrame,
    available: Iterable[str],
    diagnostics: DiagnosticsChoice = "auto",
    max_diagnostics: int = DEFAULT_MAX_DIAGNOSTICS,
) -> list[str]:
    """Names of the layers that get fit-diagnostics figures, in layer order.

    ``"all"``: every layer with eigenvalues; ``"none"``: no layer; ``"auto"``: all when there
    are at most ``max_diagnostics``, else the flagged ones first (failed fits, then under- and
    over-trained, by layer order) and evenly spaced others up to ``max_diagnostics``; or a list
    of layer ids, names, glob patterns or kinds (as ``analyze``'s ``layers``).
    """
    have = set(available)
    rows = [r for r in _rows(details.sort_values("layer_id", kind="stable")) if r["name"] in have]
    if isinstance(diagnostics, str) and diagnostics in ("all", "none", "auto"):
        if diagnostics == "none":
            return []
        if diagnostics == "all" or len(rows) <= max_diagnostics:
            return [str(r["name"]) for r in rows]
        flagged = [r for r in rows if r["status"] != "fitted" or r.get("warning")]
        chosen = {str(r["name"]) for r in flagged[:max_diagnostics]}
        rest = [r for r in rows if str(r["name"]) not in chosen]
        room = max_diagnostics - len(chosen)
        if room > 0 and rest:
            picks = np.unique(np.linspace(0, len(rest) - 1, room).round().astype(int))
            chosen.update(str(rest[int(i)]["name"]) for i in picks)
        return [str(r["name"]) for r in rows if str(r["name"]) in chosen]
    specs = [diagnostics] if isinstance(diagnostics, str) else list(diagnostics)
    from alphahat.layers import LayerFilter

    layer_filter = LayerFilter.parse(specs)
    return [
        str(r["name"])
        for r in rows
        if layer_filter.matches(int(r["layer_id"]), str(r["name"]), str(r["kind"]))
    ]


def _link_list(rows: Sequence[Mapping[Any, Any]], anchors: set[str], detail: str) -> str:
    items = []
    for r in rows:
        name = html.escape(str(r["name"]))
        if str(r["name"]) in anchors:
            name = f'<a href="#{layer_anchor(int(r["layer_id"]))}">{name}</a>'
        items.append(f"<li>{name} {html.escape(detail.format(**r))}</li>")
    return "<ul>" + "".join(items) + "</ul>"


def warnings_section(report: Report, anchors: set[str]) -> str:
    """Under- and over-trained and failed layers (linked where ``anchors`` say), skipped tensors."""
    details = report.details
    parts: list[str] = []
    bullets: list[str] = []
    for label, warning, cls in (
        ("under-trained (α > 6)", "under-trained", "warn"),
        ("over-trained (α < 2)", "over-trained", "warn"),
    ):
        rows = _rows(details[details["warning"] == warning])
        if rows:
            bullets.append(f'<li class="{cls}">{len(rows)} layer(s) {html.escape(label)}</li>')
            parts.append(
                f"<h3>{len(rows)} {html.escape(label)}</h3>"
                + _link_list(rows, anchors, "(α = {alpha:.3f})")
            )
    failed = _rows(details[details["status"] == "failed"])
    if failed:
        bullets.append(f'<li class="bad">{len(failed)} layer(s) failed</li>')
        parts.append(f"<h3>{len(failed)} failed</h3>" + _link_list(failed, anchors, "— {reason}"))
    coverage = report.coverage
    skipped = coverage[coverage["status"] == "skipped"]
    if len(skipped):
        counts = skipped["reason"].value_counts()
        reasons = "".join(
            f"<li>{int(n)} × {html.escape(str(reason))}</li>" for reason, n in counts.items()
        )
        bullets.append(f"<li>{len(skipped)} tensor(s) skipped</li>")
        parts.append(
            f"<h3>{len(skipped)} tensors skipped</h3><ul>{reasons}</ul>"
            "<details><summary>every skipped tensor</summary>"
            + sortable_table(
                skipped, ["layer_id", "name", "shape", "dtype", "reason"], table_id="skipped"
            )
            + "</details>"
        )
    if not bullets:
        return "<p>No warnings: every layer was fitted with 2 ≤ α ≤ 6 and no tensor skipped.</p>"
    return '<ul class="warnings">' + "".join(bullets) + "</ul>" + "".join(parts)


def layer_table_html(report: Report, anchors: set[str]) -> str:
    """The sortable per-layer table, names linked to the drill-down of the layers in ``anchors``."""
    details = report.details.sort_values("layer_id", kind="stable").reset_index(drop=True)
    columns = [c for c in REPORT_TABLE_COLUMNS if c in details.columns]
    hrefs = [
        f"#{layer_anchor(int(i))}" if str(n) in anchors else None
        for i, n in zip(details["layer_id"].tolist(), details["name"].tolist(), strict=True)
    ]
    classes = [
        "bad" if s != "fitted" else ("warn" if w else "")
        for s, w in zip(details["status"].tolist(), details["warning"].tolist(), strict=True)
    ]
    roles = {c: "" if c in COMPACT_TABLE_COLUMNS else "extra" for c in columns}
    roles |= {"name": "sticky clip", "reason": "clip"}
    hidden = sum(1 for role in roles.values() if role == "extra")
    toggle = (
        f'<p class="table-tools"><label><input type="checkbox" data-all-columns="layers"> '
        f"all {len(columns)} columns</label> (the name stays in view when the table scrolls; "
        f"CSV and JSON from <code>alphahat analyze -f csv|json</code> have every column)</p>"
        if hidden
        else ""
    )
    return toggle + sortable_table(
        details,
        columns,
        table_id="layers",
        links={"name": hrefs},
        row_classes=classes,
        column_classes=roles,
        table_classes="layers compact",
    )


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | np.generic)


def _records_html(rows: Sequence[Mapping[str, Any]]) -> str:
    """A list of flat records as a small table, one column per key."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_value_html(r.get(c, ''))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f'<table class="kv"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _value_html(value: Any) -> str:
    """One provenance value as readable HTML: text, or nested tables for dicts and lists.

    A dict of flat dicts (e.g. numpy's BLAS and LAPACK, each with name, version, …) is one
    table with a row each; a list of flat dicts (the loaded BLAS libraries) too.
    """
    if _is_scalar(value):
        return html.escape(format_cell(value) if value is not None else "—")
    if isinstance(value, Mapping):
        if all(v is None or (isinstance(v, list | tuple | dict) and not v) for v in value.values()):
            # e.g. the layer filter's empty lists: none given
            return "—"
        inner = list(value.values())
        if all(isinstance(v, Mapping) and all(map(_is_scalar, v.values())) for v in inner):
            return _records_html([{"": k, **v} for k, v in value.items()])
        rows = "".join(
            f'<tr><th scope="row">{html.escape(str(k))}</th><td>{_value_html(v)}</td></tr>'
            for k, v in value.items()
        )
        return f'<table class="kv"><tbody>{rows}</tbody></table>'
    if isinstance(value, list | tuple):
        if not value:
            return "—"
        if all(isinstance(v, Mapping) and all(map(_is_scalar, v.values())) for v in value):
            return _records_html(list(value))
        if all(map(_is_scalar, value)):
            return html.escape(", ".join(format_cell(v) for v in value))
        return "<br>".join(_value_html(v) for v in value)
    return html.escape(str(value))


def provenance_section(report: Report) -> str:
    """Versions, files, hashes and options, as a table (nested values as nested tables)."""
    items = {**report.provenance, **{f"option {k}": v for k, v in report.options.items()}}
    rows = "".join(
        f'<tr><th scope="row">{html.escape(str(key))}</th><td>{_value_html(value)}</td></tr>'
        for key, value in items.items()
    )
    return (
        '<div class="table-wrap"><table id="provenance" class="kv">'
        f"<thead><tr><th>key</th><th>value</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )


__all__ = [
    "COMPACT_TABLE_COLUMNS",
    "DEFAULT_MAX_DIAGNOSTICS",
    "REPORT_TABLE_COLUMNS",
    "figure_html",
    "format_cell",
    "html_page",
    "layer_anchor",
    "layer_table_html",
    "provenance_section",
    "select_diagnostic_layers",
    "sortable_table",
    "warnings_section",
]
