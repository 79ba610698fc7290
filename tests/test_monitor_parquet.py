"""The monitor's Parquet journal: read back exactly as the JSON-lines journal, atomic, resumable.

The reference for every value read back is the JSON-lines journal (``engine.journal``) of the
same records: the Parquet journal must give the same Python values, type for type and bit for
bit (``repr`` of the records compares both: ``1`` vs ``1.0``, NaN, -0.0).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

pytest.importorskip("pyarrow")
torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from alphahat.cli import app  # noqa: E402
from alphahat.engine.journal import Journal, JournalError, read_journal  # noqa: E402
from alphahat.errors import MissingDependencyError  # noqa: E402
from alphahat.monitor import AlphaBelow, Monitor, read_monitor_journal  # noqa: E402
from alphahat.monitor.parquet import (  # noqa: E402
    KEY_FILE,
    ParquetJournal,
    read_parquet_journal,
)

sys.path.insert(0, str(Path(__file__).parent))
import monitor_training as training  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _record_both(tmp_path: Path, steps: int = 3) -> tuple[Path, Path]:
    """The same analyses into a JSON-lines and a Parquet journal: a failed layer, alerts,
    an integer, a fractional and no epoch."""
    model = training.mlp()
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")  # a failed row: NaN and None values
    paths = tmp_path / "j.jsonl", tmp_path / "j.parquet"
    rule = AlphaBelow(threshold=100.0)  # fires on every fitted layer
    monitors = [Monitor(model, p, every_steps=1, alerts=(rule,), warn=False) for p in paths]
    for step, epoch in zip(range(1, steps + 1), (1, 1.5, None), strict=False):
        with torch.no_grad():
            model[2].weight.mul_(1.5)
        for monitor in monitors:
            monitor.step(step, epoch=epoch)
    for monitor in monitors:
        monitor.close()
    return paths


def test_parquet_reads_back_exactly_as_json_lines(tmp_path: Path) -> None:
    jsonl, parquet = _record_both(tmp_path)
    a, b = read_monitor_journal(jsonl), read_monitor_journal(parquet)
    assert a.steps() == b.steps() == [1, 2, 3] and a.key == b.key
    assert a.alert_rows() and a.layer_rows()[0]["status"] == "failed"
    assert repr(a.records) == repr(b.records)
    for rows in ("layer_rows", "alert_rows", "step_rows"):
        assert repr(getattr(a, rows)()) == repr(getattr(b, rows)()), rows
    assert [r["epoch"] for r in b.step_rows()] == [1, 1.5, None]
    assert type(b.step_rows()[0]["epoch"]) is int
    # the folder is one table for pandas: the layer rows, one per layer and step
    frame = pd.read_parquet(parquet)
    expected = pd.DataFrame(a.layer_rows())
    assert frame.columns.tolist()[: len(expected.columns)] == expected.columns.tolist()
    pd.testing.assert_frame_equal(
        frame[expected.columns], expected, check_dtype=False, check_exact=True
    )
    files = sorted(p.name for p in parquet.iterdir())
    assert files == [KEY_FILE, "part-00000001.parquet", "part-00000002.parquet",
                     "part-00000003.parquet"]  # fmt: skip


def _odd_records() -> list[dict[str, Any]]:
    """Records with every kind of value a row could hold, and rows of different keys."""
    first = {
        "layer_id": 0, "name": "a", "mixed": 1, "nested": {"x": [1, 2.5]}, "pair": (1, 2),
        "big": 2**70, "zero": -0.0, "inf": float("inf"), "nan": float("nan"),
        "f32": np.float32(0.1), "i64": np.int64(7), "flag": True, "none": None,
        "step": "row's own step", "later": 3, "bigmix": 2**60 + 1,
    }  # fmt: skip
    second = {
        "name": "b", "layer_id": 1, "mixed": "text", "zero": 0.0, "nan": -float("nan"),
        "flag": np.bool_(False), "later": 4.5, "only_here": "x", "bigmix": 0.5,
    }  # fmt: skip
    return [
        {"type": "layer", "step": 5, "epoch": 2, "layer_id": 0, "name": "a", "row": first},
        {"type": "layer", "step": 5, "epoch": 2, "layer_id": 9, "name": "b", "row": second},
        {"type": "note", "step": 5, "row": {"text": "a record of another type"}},
        {"type": "layer", "step": 5, "row": "not a row: neither journal reads it back"},
        {"type": "alert", "step": 5, "epoch": 2, "row": {"rule": "r", "value": 1}},
        {"type": "step", "step": 5, "epoch": 2, "row": {"alpha": 2.5}},
        {"type": "layer", "step": 6, "epoch": 2.5, "layer_id": 0, "name": "a",
         "row": {"layer_id": 0, "name": "a", "later": 7, "zero": 1e-310}},
        {"type": "step", "step": 6, "epoch": 2.5, "row": {}},
    ]  # fmt: skip


def test_any_values_read_back_as_from_json_lines(tmp_path: Path) -> None:
    records = _odd_records()
    with Journal.create(tmp_path / "j.jsonl", {"k": 1}) as reference:
        for record in records:
            reference.append(record)
    journal = ParquetJournal.create(tmp_path / "j.parquet", {"k": 1})
    for record in records:
        journal.append(record)
    journal.close()
    expected = read_journal(tmp_path / "j.jsonl")
    got = read_parquet_journal(tmp_path / "j.parquet")
    assert got.key == expected.key
    assert repr(got.records) == repr(expected.records)
    assert repr(got.records[0]["row"]["zero"]) == "-0.0"
    # typed columns where the values allow (the later step's ints in an earlier float column)
    import pyarrow.parquet as pq

    first = pq.read_table(tmp_path / "j.parquet" / "part-00000001.parquet")
    types = {f.name: str(f.type) for f in first.schema}
    assert types["layer_id"] == "int64" and types["name"] == "string"
    assert types["nan"] == "double" and types["flag"] == "bool" and types["epoch"] == "double"
    assert types["mixed"] == types["big"] == types["nested"] == "string"  # as JSON text
    assert types["later"] == "double"  # 3 and 4.5: the 3 is read back as an int
    assert types["bigmix"] == "string"  # 2**60 + 1 is no float64: JSON text
    second = pq.read_table(tmp_path / "j.parquet" / "part-00000002.parquet")
    assert str(second.schema.field("later").type) == "double"  # as in part 1: 7 read as int


def test_torn_part_write_is_ignored_and_the_step_analysed_again(tmp_path: Path) -> None:
    path = tmp_path / "j.parquet"
    model = training.mlp()
    with Monitor(model, path, every_steps=1, alerts=()) as monitor:
        first = monitor.step(1)
        monitor.step(2)
    # killed while writing step 2's part: only its temporary file, cut short, is there
    part = path / "part-00000002.parquet"
    torn = path / ".part-00000002.parquet.x1y2.tmp"
    torn.write_bytes(part.read_bytes()[:100])
    part.unlink()
    assert read_monitor_journal(path).steps() == [1]
    assert pd.read_parquet(path)["step"].tolist() == [1, 1]  # pandas skips it too
    with Monitor(model, path, every_steps=1, alerts=()) as monitor:
        assert not torn.exists()  # removed when reopened
        again = monitor.step(1)
        assert again is not None and again.resumed and again.means == first.means  # type: ignore[union-attr]
        redone = monitor.step(2)
        assert redone is not None and not redone.resumed
    records = read_monitor_journal(path)
    assert records.steps() == [1, 2] and len(records.layer_rows()) == 4


def test_damaged_part_is_a_clear_error_naming_it(tmp_path: Path) -> None:
    jsonl, parquet = _record_both(tmp_path, steps=2)
    part = parquet / "part-00000002.parquet"
    part.write_bytes(part.read_bytes()[:-30])
    message = rf"{part}: a part of the monitor journal is damaged \(not a readable Parquet file\)"
    with pytest.raises(JournalError, match=message):
        read_monitor_journal(parquet)
    with pytest.raises(JournalError, match=message):  # a resumed monitor refuses it too
        Monitor(training.mlp(), parquet)
    result = CliRunner().invoke(app, ["trend", str(parquet)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "part-00000002.parquet: a part of" in result.stderr
    # a Parquet file of someone else's in the folder, named like a part
    pd.DataFrame({"x": [1]}).to_parquet(part)
    with pytest.raises(JournalError, match=rf"{part}: not a part of a monitor journal"):
        read_monitor_journal(parquet)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"step": [2]}, metadata={b"alphahat": '{"version": 1}'}), part)
    with pytest.raises(JournalError, match=rf"{part}: .* damaged \(its metadata does not match"):
        read_monitor_journal(parquet)


def test_what_is_not_a_parquet_journal(tmp_path: Path) -> None:
    folder = tmp_path / "data.parquet"
    folder.mkdir()
    (folder / "mine.csv").write_text("a\n1\n")
    with pytest.raises(JournalError, match=rf"{folder}: not a monitor journal \(no {KEY_FILE}"):
        read_monitor_journal(folder)
    with pytest.raises(JournalError, match=rf"{folder}: not a monitor journal \(no {KEY_FILE}"):
        Monitor(training.mlp(), folder)
    with pytest.raises(JournalError, match=r"the folder holds 'mine.csv'"):
        Monitor(training.mlp(), folder, resume=False)  # never deletes what is not its own
    assert (folder / "mine.csv").exists()
    single = tmp_path / "table.parquet"
    pd.DataFrame({"x": [1.0]}).to_parquet(single)
    with pytest.raises(JournalError, match=rf"{single}: a single Parquet file, not a monitor"):
        read_monitor_journal(single)
    with pytest.raises(JournalError, match=rf"{single}: a file, not a Parquet journal's folder"):
        Monitor(training.mlp(), single)
    (folder / "mine.csv").unlink()  # an empty folder is a new journal
    Monitor(training.mlp(), folder).close()
    assert read_monitor_journal(folder).steps() == []
    # any path is Parquet when asked for; a folder stays one when reopened
    from alphahat.monitor.journal import open_monitor_journal

    plain = tmp_path / "alpha"
    open_monitor_journal(plain, {"model": "m"}, fmt="parquet")[0].close()
    assert (plain / KEY_FILE).is_file() and read_monitor_journal(plain).key["model"] == "m"
    with pytest.raises(ValueError, match="journal format must be 'jsonl' or 'parquet'; got 'csv'"):
        open_monitor_journal(plain, {}, fmt="csv")  # type: ignore[arg-type]
    (folder / KEY_FILE).write_text('{"alphahat_journal": 1, "key": {}}')
    with pytest.raises(JournalError, match=rf"{KEY_FILE}: not an alphahat Parquet journal header"):
        read_monitor_journal(folder)


def test_missing_pyarrow_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Monitor(training.mlp(), tmp_path / "old.parquet").close()
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import fails, as when not installed
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    hint = r"a Parquet monitor journal needs .*pip install 'alphahat\[parquet\]'"
    with pytest.raises(MissingDependencyError, match=hint):
        Monitor(training.mlp(), tmp_path / "new.parquet")
    assert not (tmp_path / "new.parquet").exists()  # said before anything is written
    with pytest.raises(MissingDependencyError, match=hint):
        read_monitor_journal(tmp_path / "old.parquet")
    result = CliRunner().invoke(app, ["trend", str(tmp_path / "old.parquet")])
    assert result.exit_code == 2 and "pip install 'alphahat[parquet]'" in result.stderr
