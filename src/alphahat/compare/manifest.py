"""The manifest of a comparison: which model files, their accuracies, groups and extra columns.

A manifest is a CSV file with a header row. Columns (names are case-insensitive):

* ``model`` (required): path of a model file or folder, relative to the manifest's folder
  unless absolute;
* ``accuracy`` or ``error`` (exactly one): the model's test accuracy or test error, either
  as fractions in [0, 1] or as percentages in [0, 100]; ``error`` becomes accuracy =
  1 − error (fractions) or 100 − error (percentages);
* ``group`` (optional): the series the model belongs to (architecture, depth);
* any other column is kept as is (hyperparameters, train accuracy, …).

With ``scale="auto"`` the values are percentages when any of them is > 1 and fractions
otherwise (a note says which); pass ``"percent"`` or ``"fraction"`` to say so explicitly.
Every problem is reported at once, each with the manifest's file name and line number.
A model file that does not exist is not a manifest error: that model is reported as
``missing`` and the others are compared.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from alphahat.errors import AlphahatError

AccuracyScale = Literal["auto", "percent", "fraction"]
ACCURACY_SCALES: tuple[AccuracyScale, ...] = ("auto", "percent", "fraction")
#: Group name of every model when the manifest has no ``group`` column.
DEFAULT_GROUP = "all"
_RESERVED = ("model", "accuracy", "error", "group")


class ManifestError(AlphahatError):
    """The manifest cannot be used; the message lists every problem with its line."""


@dataclass(frozen=True)
class ManifestRow:
    """One model of the manifest.

    Attributes:
        line: line number in the manifest file (the header is line 1).
        model: the ``model`` cell as written.
        path: the resolved path of the model.
        accuracy: test accuracy, in the manifest's scale (see :class:`Manifest`).
        group: the group name (:data:`DEFAULT_GROUP` without a ``group`` column).
        extra: the other columns, as text.
    """

    line: int
    model: str
    path: Path
    accuracy: float
    group: str
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """``line N (model 'x')`` for messages."""
        return f"line {self.line} (model {self.model!r})"


@dataclass(frozen=True)
class Manifest:
    """A validated manifest (see the module docstring).

    Attributes:
        path: the manifest file.
        rows: its models, in file order.
        scale: ``percent`` (accuracies in [0, 100]) or ``fraction`` (in [0, 1]).
        from_error: whether accuracies were derived from an ``error`` column.
        has_groups: whether the manifest has a ``group`` column.
        extra_columns: the other columns, in file order.
        notes: things the reader inferred or should know (scale guessed, small groups).
    """

    path: Path
    rows: tuple[ManifestRow, ...]
    scale: Literal["percent", "fraction"]
    from_error: bool
    has_groups: bool
    extra_columns: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def groups(self) -> dict[str, int]:
        """Number of models per group, in order of first appearance."""
        return dict(Counter(row.group for row in self.rows))

    @property
    def unit(self) -> str:
        """``%`` or ``fraction``, for labels."""
        return "%" if self.scale == "percent" else "fraction"


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_manifest(path: str | Path, *, scale: AccuracyScale = "auto") -> Manifest:
    """Read and validate a manifest CSV (see the module docstring); raise :class:`ManifestError`."""
    path = Path(path).expanduser()
    if scale not in ACCURACY_SCALES:
        raise ValueError(
            f"scale must be one of {', '.join(map(repr, ACCURACY_SCALES))}; got {scale!r}"
        )
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            lines = list(_read_rows(handle))
    except FileNotFoundError:
        raise ManifestError(f"{path}: manifest not found") from None
    except IsADirectoryError:
        raise ManifestError(f"{path}: is a folder, not a manifest CSV file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(f"{path}: cannot read the manifest: {exc}") from None
    if not lines:
        raise ManifestError(f"{path}: the manifest is empty (it needs a header row)")
    header_line, header = lines[0]
    names = [h.strip().lower() for h in header]
    problems = _header_problems(names)
    if problems:
        raise ManifestError(f"{path}: " + "; ".join(problems))
    value_column = "accuracy" if "accuracy" in names else "error"
    extra_columns = tuple(n for n in names if n not in _RESERVED)
    base = path.parent
    problems = []
    parsed: list[tuple[int, dict[str, str], float]] = []
    for line, cells in lines[1:]:
        if len(cells) != len(names):
            problems.append(f"line {line}: {len(cells)} cells, the header has {len(names)}")
            continue
        record = {n: c.strip() for n, c in zip(names, cells, strict=True)}
        where = f"line {line} (model {record['model']!r})"
        if not record["model"]:
            problems.append(f"line {line}: empty model path")
            continue
        value = _number(record[value_column])
        if value is None:
            problems.append(f"{where}: {value_column} {record[value_column]!r} is not a number")
            continue
        if value < 0 or value > 100:
            problems.append(f"{where}: {value_column} {value:g} is outside [0, 100]")
            continue
        if "group" in names and not record["group"]:
            problems.append(f"{where}: empty group (give every model a group, or drop the column)")
            continue
        parsed.append((line, record, value))
    if not problems and not parsed:
        problems.append("no models (only a header row)")
    seen: dict[Path, int] = {}
    for line, record, _ in parsed:
        resolved = (base / Path(record["model"]).expanduser()).resolve()
        if resolved in seen:
            problems.append(
                f"line {line}: model {record['model']!r} is listed twice (first on line "
                f"{seen[resolved]})"
            )
        seen.setdefault(resolved, line)
    notes: list[str] = []
    values = [v for _, _, v in parsed]
    resolved_scale: Literal["percent", "fraction"]
    if scale == "auto":
        resolved_scale = "percent" if any(v > 1 for v in values) else "fraction"
        if values:
            how = "percentages (some are > 1)" if resolved_scale == "percent" else "fractions"
            how += "" if resolved_scale == "percent" else " (all are ≤ 1)"
            notes.append(
                f"{value_column} values read as {how}; if that is wrong, say which with "
                "--accuracy-scale (accuracy_scale=)"
            )
    else:
        resolved_scale = scale
    if resolved_scale == "fraction":
        problems += [
            f"line {line} (model {record['model']!r}): {value_column} {value:g} is > 1 but "
            "the scale is 'fraction'"
            for line, record, value in parsed
            if value > 1
        ]
    if problems:
        raise ManifestError(f"{path}: " + "; ".join(problems))
    top = 100.0 if resolved_scale == "percent" else 1.0
    rows = tuple(
        ManifestRow(
            line=line,
            model=record["model"],
            path=base / Path(record["model"]).expanduser(),
            accuracy=value if value_column == "accuracy" else top - value,
            group=record["group"] if "group" in names else DEFAULT_GROUP,
            extra={n: record[n] for n in extra_columns},
        )
        for line, record, value in parsed
    )
    if value_column == "error":
        notes.append(
            f"accuracy = {'100' if resolved_scale == 'percent' else '1'} − error, in "
            f"{'percent' if resolved_scale == 'percent' else 'fractions'}"
        )
    counts = Counter(row.group for row in rows)
    small = [f"{g!r} ({n})" for g, n in counts.items() if n < 3]
    if "group" in names and small:
        notes.append(
            "groups with fewer than 3 models have no within-group trend: " + ", ".join(small)
        )
    return Manifest(
        path=path,
        rows=rows,
        scale=resolved_scale,
        from_error=value_column == "error",
        has_groups="group" in names,
        extra_columns=extra_columns,
        notes=tuple(notes),
    )


def _read_rows(handle: object) -> list[tuple[int, list[str]]]:
    reader = csv.reader(handle)  # type: ignore[arg-type]
    out = []
    for cells in reader:
        if not cells or all(not c.strip() for c in cells):
            continue
        out.append((reader.line_num, cells))
    return out


def _header_problems(names: list[str]) -> list[str]:
    problems = []
    duplicates = sorted(n for n, k in Counter(names).items() if k > 1)
    if duplicates:
        problems.append(f"duplicate column(s) {', '.join(map(repr, duplicates))}")
    if "model" not in names:
        problems.append(f"no 'model' column (columns: {', '.join(names)})")
    if "accuracy" in names and "error" in names:
        problems.append("both 'accuracy' and 'error' columns; give exactly one")
    elif "accuracy" not in names and "error" not in names:
        problems.append("no 'accuracy' (or 'error') column")
    if "" in names:
        problems.append("a column without a name")
    return problems
