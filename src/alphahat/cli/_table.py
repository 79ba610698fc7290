"""The per-layer table on a terminal: a compact column set that fits the terminal's width.

Numbers are never wrapped or cut: the numeric columns get the width of their widest cell,
and the room left goes to the name (shortened when it does not fit: the part every name
shares is left off and said once in the title, then leading dotted components are cut to
their first letter, then the middle is elided) and to the status cell (a failed layer's
reason, wrapped within its cell). What is left out is in ``-f csv``/``-f json``.
"""

from __future__ import annotations

import math
import textwrap
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: The columns a terminal shows by default (``--columns``/``--wide`` for more).
COMPACT_COLUMNS = (
    "layer_id", "name", "kind", "NxM", "alpha", "alpha_weighted", "D", "log_spectral_norm",
    "status",
)  # fmt: skip
#: Columns that are not columns of the report: computed from others.
DERIVED_COLUMNS = ("NxM",)
#: Column headings of the terminal table (other columns are headed by their names).
HEADINGS = {
    "layer_id": "id",
    "NxM": "N×M",
    "alpha": "α",
    "alpha_weighted": "α̂",
    "log_spectral_norm": "log₁₀λmax",
    "log_norm": "log₁₀‖W‖²",
    "log_alpha_norm": "log₁₀Σλ^α",
}
#: Columns dropped first when even a shortened name does not fit.
_DROP_ORDER = ("log_spectral_norm", "D", "kind", "NxM")
_MIN_NAME = 12
#: right-aligned whatever their cells hold
_RIGHT = ("layer_id", "NxM")
_GAP = " "
_SHORT_STATUS = {"under-trained": "under", "over-trained": "over"}


def number_cell(value: Any) -> str:
    """A number as the tables show it: 3 decimals, 4 significant digits when tiny or huge."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        small = value != 0 and abs(value) < 1e-3
        return f"{value:.4g}" if abs(value) >= 1e5 or small else f"{value:.3f}"
    return str(value)


def status_cell(row: dict[str, Any], short: bool = False) -> str:
    """``fitted``, the training warning, or ``failed: reason``."""
    status = str(row.get("status") or "")
    if status == "failed":
        return f"failed: {row.get('reason') or 'no reason given'}"
    warning = str(row.get("warning") or "")
    if status == "fitted" and warning:
        return _SHORT_STATUS.get(warning, warning) if short else warning
    return status


def _common_affixes(names: Sequence[str]) -> tuple[str, str]:
    """The dotted prefix and suffix every name shares (each ending/starting at a dot)."""
    if len(names) < 2:
        return "", ""
    parts = [name.split(".") for name in names]
    prefix: list[str] = []
    for column in zip(*parts, strict=False):
        if len(set(column)) != 1:
            break
        prefix.append(column[0])
    suffix: list[str] = []
    for column in zip(*(p[::-1] for p in parts), strict=False):
        if len(set(column)) != 1:
            break
        suffix.append(column[0])
    shortest = min(len(p) for p in parts)
    prefix = prefix[: shortest - 1]  # every name keeps at least one component of its own
    suffix = suffix[: max(0, shortest - 1 - len(prefix))]
    head = ".".join(prefix) + "." if prefix else ""
    tail = "." + ".".join(reversed(suffix)) if suffix else ""
    return head, tail


def shorten(name: str, width: int) -> str:
    """``name`` in at most ``width`` characters.

    Leading dotted components (numbers kept) become their first letter, from the left, until
    it fits (``encoder.layer.5.attention.self.query`` → ``e.l.5.a.self.query``); if that is
    not enough, the middle is elided with ``…``.
    """
    if len(name) <= width:
        return name
    parts = name.split(".")
    for i in range(len(parts) - 1):
        if not parts[i].isdigit():
            parts[i] = parts[i][:1]
            if len(".".join(parts)) <= width:
                return ".".join(parts)
    short = ".".join(parts)
    if width < 2:
        return short[:width]
    head = (width - 1) // 2
    return short[:head] + "…" + short[len(short) - (width - 1 - head) :]


def shorten_all(names: Sequence[str], width: int) -> list[str]:
    """Each name in at most ``width`` characters, cut no more than it needs (:func:`shorten`).

    ``encoder.layer.5.attention.self.query`` → ``e.l.5.a.self.query`` and
    ``encoder.layer.5.output.dense`` → ``e.l.5.output.dense`` at 20 characters.
    """
    return [shorten(name, width) for name in names]


def cells_wide(text: str) -> int:
    """Terminal cells ``text`` takes: combining marks (the hat of α̂) none, wide characters 2."""
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * max(0, width - cells_wide(text))
    return fill + text if right else text + fill


@dataclass(frozen=True)
class Layout:
    """The terminal table to print: its lines and what was left off the names."""

    lines: tuple[str, ...]
    columns: tuple[str, ...]
    common_prefix: str = ""
    common_suffix: str = ""


def _cells(
    rows: Sequence[dict[str, Any]], col: str, short_status: bool, columns: Sequence[str]
) -> list[str]:
    if col == "NxM":
        return [
            "—" if row.get("N") is None or row.get("M") is None else f"{row['N']}×{row['M']}"
            for row in rows
        ]
    if col == "status" and "reason" not in columns and "warning" not in columns:
        return [status_cell(row, short_status) for row in rows]
    return [number_cell(row.get(col)) for row in rows]


def _fits(fixed: dict[str, int], flexible: dict[str, int], width: int | None) -> bool:
    gaps = len(_GAP) * (len(fixed) + len(flexible) - 1)
    return width is None or sum(fixed.values()) + sum(flexible.values()) + gaps <= width


def layout_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    width: int | None,
    *,
    printable: Any = str,
) -> Layout:
    """Lay ``rows`` out in ``columns`` within ``width`` characters (None: no limit).

    ``name`` and ``status`` (and ``reason``) are the flexible columns; every other cell is
    printed whole. ``printable`` escapes untrusted text (names from files).
    """
    columns = list(columns)
    names = [printable(str(row.get("name", ""))) for row in rows]
    text = {
        c: [printable(s) for s in _cells(rows, c, False, columns)] for c in columns if c != "name"
    }
    fixed = {
        c: max([cells_wide(HEADINGS.get(c, c)), *map(cells_wide, text[c])])
        for c in columns
        if c not in ("name", "status", "reason")
    }
    wrapped = [c for c in columns if c in ("status", "reason")]
    prefix = suffix = ""
    want = {c: max([cells_wide(HEADINGS.get(c, c)), *map(cells_wide, text[c])]) for c in wrapped}
    if "name" in columns:
        want["name"] = max([4, *map(len, names)])
    if not _fits(fixed, want, width) and "name" in columns:
        prefix, suffix = _common_affixes(names)
        names = [n[len(prefix) : len(n) - len(suffix)] for n in names]
        want["name"] = max([4, *map(len, names)])
    if not _fits(fixed, want, width) and "status" in text:  # under-trained → under
        text["status"] = [printable(s) for s in _cells(rows, "status", True, columns)]
        want["status"] = max([len("status"), *map(len, text["status"])])
    room = _room(fixed, want, columns, width)
    for col in _DROP_ORDER:  # a name under _MIN_NAME: drop columns rather than lose the name
        if "name" not in room or room["name"] >= min(_MIN_NAME, want["name"]):
            break
        if col not in fixed:
            continue
        del fixed[col]
        columns.remove(col)
        room = _room(fixed, want, columns, width)
    if "name" in columns:
        text["name"] = shorten_all(names, room["name"])
        room["name"] = max([4, *map(len, text["name"])])
    return Layout(_render(columns, text, fixed, room), tuple(columns), prefix, suffix)


def _room(
    fixed: dict[str, int], want: dict[str, int], columns: Sequence[str], width: int | None
) -> dict[str, int]:
    """Widths of the flexible columns: all they want, or the width shared out."""
    if width is None or _fits(fixed, want, width):
        return dict(want)
    spare = width - sum(fixed.values()) - len(_GAP) * (len(columns) - 1)
    room = dict(want)
    others = sorted((c for c in want if c != "name"), key=lambda c: want[c])
    short_other = {c: min(want[c], 24) for c in others}  # a long reason wraps
    if "name" in want:
        room["name"] = max(4, min(want["name"], spare - sum(short_other.values())))
        spare -= room["name"]
    for i, c in enumerate(others):  # the narrow ones first; what they leave goes to the next
        room[c] = max(6, min(want[c], spare // (len(others) - i)))
        spare -= room[c]
    return room


def _render(
    columns: Sequence[str],
    text: dict[str, list[str]],
    fixed: dict[str, int],
    room: dict[str, int],
) -> tuple[str, ...]:
    widths = {c: fixed.get(c, room.get(c, 0)) for c in columns}
    right = {c for c in columns if c in fixed and (c in _RIGHT or _all_numeric(text[c]))}

    def line(cells: Sequence[str]) -> str:
        out = [_pad(cell, widths[c], c in right) for c, cell in zip(columns, cells, strict=True)]
        return _GAP.join(out).rstrip()

    lines = [line([HEADINGS.get(c, c) for c in columns])]
    lines.append(_GAP.join("─" * widths[c] for c in columns))
    count = len(text[columns[0]]) if columns else 0
    for i in range(count):
        wraps = {
            c: textwrap.wrap(text[c][i], widths[c], break_on_hyphens=False) or [""]
            for c in columns
            if c not in fixed
        }
        height = max([1, *map(len, wraps.values())])
        for k in range(height):
            cells = [
                (text[c][i] if k == 0 else "")
                if c in fixed
                else (wraps[c][k] if k < len(wraps[c]) else "")
                for c in columns
            ]
            lines.append(line(cells))
    return tuple(lines)


def _all_numeric(cells: Sequence[str]) -> bool:
    def numeric(s: str) -> bool:
        try:
            float(s)
        except ValueError:
            return s == "—"
        return True

    return bool(cells) and all(numeric(s) for s in cells)
