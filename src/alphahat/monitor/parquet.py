"""The monitor's journal as Parquet: a folder with one part file per complete step.

Layout of ``alpha.parquet/``::

    _alphahat_journal.json    {"alphahat_journal": 1, "format": "parquet", "key": {...}}
    part-00000001.parquet     the first step recorded: its layer rows, alerts and model means
    part-00000002.parquet     the second, …

A part's table holds the step's layer rows, one per layer, with the columns of
:meth:`~alphahat.monitor.journal.MonitorRecords.layer_rows`: ``step``, ``epoch``, then the
row's columns, each typed ``int64``, ``float64``, ``string`` or ``bool`` (every column of
``Report.details`` is there, null where a row has none). So ``pandas.read_parquet`` or
``pyarrow.dataset`` of the folder gives the per-layer-and-step table of the whole run (they skip
names starting with ``_`` or ``.``: the key file and temporary files). The part's key-value
metadata ``alphahat`` (JSON) holds what makes reading back exact: each layer row's own keys in
order (a column a row lacks is null in the table but absent from the row), the columns stored as
JSON text (a column of mixed types), the integers of a float column, and the step's alert and
step records.

Durability: the records of a step are buffered until its ``step`` record (the monitor writes it
last) arrives; then the part is written to a temporary file in the folder
(``.part-NNNNNNNN.parquet.XXXX.tmp``), fsync'd, renamed into place and the folder fsync'd. A
kill loses at most the unfinished step, which a resumed monitor analyses again, once; leftover
temporary files are ignored when reading and removed when the journal is reopened for writing.

Values read back equal the JSON-lines journal's: every record is put through that journal's
JSON encoding before it is stored (tuples become lists, NumPy scalars Python numbers), floats
are stored as float64 (bit for bit: NaN, ±inf and -0.0 included) and None as null.

Needs pyarrow (``pip install 'alphahat[parquet]'``), imported only when a Parquet journal is
opened or read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alphahat._imports import require
from alphahat.engine.files import sync_folder, write_atomic
from alphahat.engine.journal import JOURNAL_VERSION, JournalContents, JournalError, normalized

#: The journal's header, beside its parts (ignored by Parquet readers: it starts with ``_``).
KEY_FILE = "_alphahat_journal.json"
#: The key of the parts' metadata.
META_KEY = b"alphahat"
#: Version of the parts' metadata.
PART_VERSION = 1
_PART = re.compile(r"part-(\d{8,})\.parquet")
#: Arrow type names (a part's schema) → the column kinds written here.
_KINDS = {"int64": "int64", "double": "float64", "string": "string", "bool": "bool"}
#: Kinds of all-null columns that no earlier part typed: what the column holds when it is not
#: null (stable types make the folder one table for pandas; exactness does not depend on them).
_INT_COLUMNS = frozenset(
    {
        "step", "layer_id", "N", "M", "num_matrices", "num_evals", "num_pl_spikes",
        "matrix_rank", "slice_id", "num_fingers", "num_spikes", "rand_num_spikes", "num_traps",
        "detX_num", "ERG_gap", "farms_submatrices",
    }
)  # fmt: skip
_TEXT_COLUMNS = frozenset(
    {"name", "kind", "shape", "dtype", "note", "spectrum_method", "warning", "status", "reason"}
)
#: Columns typed float64 even when their first values are integers (an epoch may be 1 or 1.5).
_FIRST_KIND = {"epoch": "float64"}
_INT64 = 2**63
_EXACT_IN_FLOAT = 2**53


def parquet_modules() -> tuple[Any, Any]:
    """``pyarrow`` and ``pyarrow.parquet`` (a :class:`MissingDependencyError` when missing)."""
    pq = require("pyarrow.parquet", "a Parquet monitor journal")
    import pyarrow

    return pyarrow, pq


def part_name(number: int) -> str:
    """The file name of part ``number`` (zero-padded: names sort in recording order)."""
    return f"part-{number:08d}.parquet"


def _parts(folder: Path) -> list[tuple[int, Path]]:
    found = []
    for entry in folder.iterdir():
        match = _PART.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), entry))
    return sorted(found)


def _is_ours(name: str) -> bool:
    """A file this journal writes: the key, a part, or a temporary file of either."""
    if name == KEY_FILE or _PART.fullmatch(name):
        return True
    return _is_temporary(name)


def _is_temporary(name: str) -> bool:
    return name.endswith(".tmp") and (name.startswith(".part-") or name.startswith(f".{KEY_FILE}."))


# -- reading ----------------------------------------------------------------------------------


@dataclass
class ParquetContents(JournalContents):
    """A Parquet journal as read back, with what a writer continuing it needs."""

    kinds: dict[str, str] = field(default_factory=dict)
    next_part: int = 1


def read_key(folder: Path) -> dict[str, Any]:
    """The key of the Parquet journal in ``folder``.

    Raises:
        JournalError: no key file, or not a journal header.
    """
    path = folder / KEY_FILE
    try:
        header = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise JournalError(
            f"{folder}: not a monitor journal (no {KEY_FILE} in the folder)"
        ) from None
    except OSError as exc:
        raise JournalError(f"{path}: cannot read the journal: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if (
        not isinstance(header, dict)
        or header.get("alphahat_journal") != JOURNAL_VERSION
        or header.get("format") != "parquet"
        or not isinstance(header.get("key"), dict)
    ):
        raise JournalError(f"{path}: not an alphahat Parquet journal header")
    return dict(header["key"])


def read_parquet_journal(folder: str | Path) -> ParquetContents:
    """The key and records of the Parquet journal in ``folder``, in recording order.

    Raises:
        JournalError: not a journal's folder, or a part that cannot be read (named).
        MissingDependencyError: pyarrow is not installed.
    """
    folder = Path(folder)
    key = read_key(folder)
    pa, pq = parquet_modules()
    contents = ParquetContents(key)
    try:
        parts = _parts(folder)
    except OSError as exc:
        raise JournalError(f"{folder}: cannot read the journal: {exc.strerror or exc}") from exc
    for number, path in parts:
        records, kinds = _read_part(pa, pq, path)
        contents.records += records
        for name, kind in kinds.items():
            contents.kinds.setdefault(name, kind)
        contents.next_part = number + 1
    return contents


def _read_part(pa: Any, pq: Any, path: Path) -> tuple[list[dict[str, Any]], dict[str, str]]:
    try:
        table = pq.read_table(path)
    except (OSError, ValueError, pa.ArrowException):
        raise JournalError(
            f"{path}: a part of the monitor journal is damaged (not a readable Parquet file); "
            "move it out of the folder to read the other steps"
        ) from None
    raw = (table.schema.metadata or {}).get(META_KEY)
    try:
        meta = json.loads(raw) if raw is not None else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        meta = None
    if not isinstance(meta, dict) or meta.get("version") != PART_VERSION:
        raise JournalError(f"{path}: not a part of a monitor journal (no alphahat metadata)")
    kinds = {f.name: _KINDS.get(str(f.type), str(f.type)) for f in table.schema}
    try:
        return _decode(table, meta), kinds
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError):
        raise JournalError(
            f"{path}: a part of the monitor journal is damaged (its metadata does not match "
            "its table); move it out of the folder to read the other steps"
        ) from None


def _decode(table: Any, meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The records of one part, from its table and metadata."""
    names: list[str] = table.column_names
    columns: dict[str, list[Any]] = {}
    json_columns, int_rows = set(meta["json"]), dict(meta["ints"])
    for name in names:
        values = table.column(name).to_pylist()
        if name in json_columns:
            values = [None if v is None else json.loads(v) for v in values]
        for i in int_rows.get(name, ()):
            values[i] = int(values[i])
        columns[name] = values
    row_keys: list[str] = meta["row_keys"]  # the row key of each column after step, epoch
    column_of = dict(zip(row_keys, names[2:], strict=True))
    orders: list[list[str]] = meta["orders"]
    records: list[dict[str, Any]] = []
    for entry in meta["records"]:
        if "record" in entry and "table_row" not in entry:
            records.append(dict(entry["record"]))
            continue
        i = int(entry["table_row"])
        row = {key: columns[column_of[key]][i] for key in orders[int(entry["keys"])]}
        top = entry.get("record")
        if top is None:
            top = {
                "type": "layer", "step": columns["step"][i], "epoch": columns["epoch"][i],
                "layer_id": row.get("layer_id"), "name": row.get("name"),
            }  # fmt: skip
        records.append({**top, "row": row})
    return records


# -- writing ----------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if -_INT64 <= value < _INT64 else "big"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "other"


def _default_kind(name: str) -> str:
    if name in _INT_COLUMNS:
        return "int64"
    return "string" if name in _TEXT_COLUMNS else "float64"


def _column(
    pa: Any, name: str, values: Sequence[Any], present: Sequence[bool], kind: str | None
) -> tuple[Any, str, bool, list[int]]:
    """One column: (Arrow array, its kind, stored as JSON text, rows holding an integer).

    ``kind`` is the column's kind in the journal's earlier parts (None: not there yet). The
    integers of a float64 column (beside floats, or in a column that is float64 elsewhere) are
    stored as floats and their rows listed, to be read back as integers.
    """
    cells: list[Any] = [v if here else None for v, here in zip(values, present, strict=True)]
    found = {_kind(v) for v in cells if v is not None}
    if not found:
        kind = kind or _default_kind(name)
        return pa.nulls(len(cells), _arrow_type(pa, kind)), kind, False, []
    floats = found == {"int", "float"} or (
        found == {"int"} and (kind or _FIRST_KIND.get(name)) == "float64"
    )
    ints = [i for i, v in enumerate(cells) if _kind(v) == "int"]
    if floats and all(abs(cells[i]) <= _EXACT_IN_FLOAT for i in ints):
        as_floats = [None if v is None else float(v) for v in cells]
        return pa.array(as_floats, pa.float64()), "float64", False, ints
    simple = {"int": "int64", "float": "float64", "str": "string", "bool": "bool"}
    if len(found) == 1 and (only := next(iter(found))) in simple:
        kind = simple[only]
        return pa.array(cells, _arrow_type(pa, kind)), kind, False, []
    # mixed (or nested) values: each as its JSON text, absent ones null
    texts = [
        json.dumps(v, allow_nan=True, ensure_ascii=False) if here else None
        for v, here in zip(values, present, strict=True)
    ]
    return pa.array(texts, pa.string()), "string", True, []


def _arrow_type(pa: Any, kind: str) -> Any:
    types: dict[str, Callable[[], Any]] = {
        "int64": pa.int64, "float64": pa.float64, "string": pa.string, "bool": pa.bool_,
    }  # fmt: skip
    return types.get(kind, pa.float64)()


def encode_part(pa: Any, records: Sequence[Mapping[str, Any]], kinds: dict[str, str]) -> Any:
    """The Arrow table (with its ``alphahat`` metadata) of one step's records.

    ``kinds`` holds the columns' kinds in the journal so far; new columns are added to it.
    """
    from alphahat.report import DETAIL_COLUMNS

    layers = [r for r in records if r.get("type") == "layer" and isinstance(r.get("row"), dict)]
    row_keys: list[str] = []
    seen: set[str] = set()
    for record in layers:
        for key in record["row"]:
            if key not in seen:
                seen.add(key)
                row_keys.append(key)
    row_keys += [c for c in DETAIL_COLUMNS if c not in seen]  # stable columns across parts
    names, used = [], {"step", "epoch"}
    for key in row_keys:  # a row's own "step" or "epoch" gets a column name of its own
        name = key
        while name in used:
            name += "_"
        used.add(name)
        names.append(name)
    orders: list[list[str]] = []
    order_index: dict[tuple[str, ...], int] = {}
    entries: list[dict[str, Any]] = []
    table_rows = 0
    for record in records:
        if not (record.get("type") == "layer" and isinstance(record.get("row"), dict)):
            entries.append({"record": dict(record)})
            continue
        row = record["row"]
        keys = tuple(row)
        if keys not in order_index:
            order_index[keys] = len(orders)
            orders.append(list(keys))
        entry: dict[str, Any] = {"table_row": table_rows, "keys": order_index[keys]}
        table_rows += 1
        top = {k: v for k, v in record.items() if k != "row"}
        usual = {
            "type": "layer", "step": record.get("step"), "epoch": record.get("epoch"),
            "layer_id": row.get("layer_id"), "name": row.get("name"),
        }  # fmt: skip
        if list(top.items()) != list(usual.items()):
            entry["record"] = top
        entries.append(entry)
    arrays: list[Any] = []
    stored_json: list[str] = []
    stored_ints: dict[str, list[int]] = {}
    every = [True] * len(layers)
    for name, values, present in (
        ("step", [r.get("step") for r in layers], every),
        ("epoch", [r.get("epoch") for r in layers], every),
        *(
            (name, [r["row"].get(key) for r in layers], [key in r["row"] for r in layers])
            for name, key in zip(names, row_keys, strict=True)
        ),
    ):
        array, kind, as_json, ints = _column(pa, name, values, present, kinds.get(name))
        kinds.setdefault(name, kind)
        arrays.append(array)
        if as_json:
            stored_json.append(name)
        if ints:
            stored_ints[name] = ints
    meta = {
        "version": PART_VERSION, "row_keys": row_keys, "orders": orders, "records": entries,
        "json": stored_json, "ints": stored_ints,
    }  # fmt: skip
    text = json.dumps(meta, allow_nan=True, ensure_ascii=False)
    return pa.table(arrays, names=["step", "epoch", *names], metadata={META_KEY: text})


class ParquetJournal:
    """An open Parquet journal: :meth:`append` records; each complete step becomes one part."""

    def __init__(self, path: Path, next_part: int, kinds: dict[str, str]) -> None:
        self.path = path
        self._next = next_part
        self._kinds = kinds
        self._pending: list[dict[str, Any]] = []
        self._pa, self._pq = parquet_modules()

    @classmethod
    def create(
        cls, path: str | Path, key: Mapping[str, Any], found: ParquetContents | None = None
    ) -> ParquetJournal:
        """Continue the journal ``found`` in the folder ``path``, or start it afresh.

        Starting afresh removes the journal's own files (key, parts, temporary files) and
        refuses a folder holding anything else. Continuing removes leftover temporary files.

        Raises:
            JournalError: the folder holds other files, or cannot be written.
        """
        path = Path(path)
        try:
            if found is not None:
                for entry in path.iterdir():
                    if _is_temporary(entry.name):
                        entry.unlink(missing_ok=True)
                return cls(path, found.next_part, dict(found.kinds))
            if path.is_dir():
                entries = list(path.iterdir())
                foreign = sorted(e.name for e in entries if not _is_ours(e.name))
                if foreign:
                    raise JournalError(
                        f"{path}: not a monitor journal (the folder holds {foreign[0]!r}); "
                        "give the journal a folder of its own"
                    )
                (path / KEY_FILE).unlink(missing_ok=True)  # no longer the old run's journal
                for entry in entries:
                    entry.unlink(missing_ok=True)
            else:
                path.mkdir()
            header = {"alphahat_journal": JOURNAL_VERSION, "format": "parquet", "key": dict(key)}
            text = json.dumps(normalized(header), allow_nan=True, ensure_ascii=False)
            write_atomic(path / KEY_FILE, text + "\n")
            sync_folder(path)
        except OSError as exc:
            raise JournalError(f"{path}: cannot write the journal: {exc.strerror or exc}") from exc
        return cls(path, 1, {})

    def append(self, record: Mapping[str, Any]) -> None:
        """Buffer ``record``; on a ``step`` record, write its step's records as one part."""
        record = normalized(record)  # the values the JSON-lines journal would read back
        if not isinstance(record.get("row"), dict):
            return  # a record the JSON-lines journal would not read back either
        self._pending.append(record)
        if record.get("type") != "step":
            return
        step = record.get("step")
        done = [r for r in self._pending if r.get("step") == step]
        self._pending = [r for r in self._pending if r.get("step") != step]
        self._write(done)

    def _write(self, records: Sequence[Mapping[str, Any]]) -> None:
        table = encode_part(self._pa, records, self._kinds)
        sink = self._pa.BufferOutputStream()
        self._pq.write_table(table, sink)
        while (self.path / part_name(self._next)).exists():  # never replace a part
            self._next += 1
        path = self.path / part_name(self._next)
        write_atomic(path, sink.getvalue().to_pybytes())
        sync_folder(self.path)
        self._next += 1

    def close(self) -> None:
        """Forget the records of an unfinished step (a resumed monitor analyses it again)."""
        self._pending.clear()


def looks_like_parquet_file(path: Path) -> bool:
    """Whether ``path`` is a file starting with Parquet's magic bytes."""
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"PAR1"
    except OSError:
        return False


__all__ = [
    "KEY_FILE",
    "ParquetContents",
    "ParquetJournal",
    "encode_part",
    "looks_like_parquet_file",
    "parquet_modules",
    "part_name",
    "read_key",
    "read_parquet_journal",
]
