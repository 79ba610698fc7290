"""Forged and broken safetensors files: a clean error naming the file, or failed rows.

Each file is laid out by hand (tests/hostile/hostile_inputs.py). A header problem that makes
the whole file unreadable is a SourceError naming the path; a problem of one entry fails that
tensor only (status ``failed`` with the reason) and the good tensor beside it is still analysed
with the right numbers. Nothing is allocated from a header's claims.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from hostile_inputs import (
    eigenvalues,
    finishes_within,
    good_matrix,
    log10_frobenius_sq,
    make_fifo,
    safetensors_bytes,
    traced_peak,
    write_safetensors,
)

import alphahat
from alphahat.errors import SourceError

GOOD = good_matrix(1, (40, 20))  # float64, 6400 bytes
GOOD_ENTRY = {"dtype": "F64", "shape": [40, 20], "data_offsets": [0, 6400]}


def with_bad_entry(tmp_path: Path, entry: object, extra: bytes = b"") -> Path:
    """A file holding the good tensor and one forged entry named ``bad.weight``."""
    header = {"good.weight": GOOD_ENTRY, "bad.weight": entry}
    path = tmp_path / "forged.safetensors"
    path.write_bytes(safetensors_bytes(header, GOOD.astype("<f8").tobytes() + extra))
    return path


def assert_good_row_intact(report) -> None:
    row = report.details.set_index("name").loc["good.weight"]
    assert row["status"] == "fitted", row["reason"]
    assert row["log_norm"] == pytest.approx(log10_frobenius_sq(GOOD), rel=1e-12)
    assert row["lambda_max"] == pytest.approx(eigenvalues(GOOD)[-1], rel=1e-12)


def failed_reason(report, name: str = "bad.weight") -> str:
    coverage = report.coverage.set_index("name")
    assert coverage.loc[name, "status"] == "failed", coverage.loc[name, "reason"]
    return str(coverage.loc[name, "reason"])


def expect_source_error(path: Path, *fragments: str) -> str:
    for call in (alphahat.analyze, alphahat.describe):
        with pytest.raises(SourceError) as info:
            call(path)
        message = str(info.value)
        assert str(path) in message, message
        assert "\n" not in message, message
        for fragment in fragments:
            assert fragment.lower() in message.lower(), message
    return message


# ----------------------------------------------------------------- whole-file problems


@pytest.mark.parametrize(
    ("claimed", "fragment"),
    [(2**64 - 1, "header claims"), (2**63, "header claims"), (10**9, "header claims")],
)
def test_forged_header_length_is_refused_without_allocating(tmp_path, claimed, fragment):
    path = tmp_path / "huge_header.safetensors"
    path.write_bytes(safetensors_bytes({"a": {}}, bytes(64), claimed_len=claimed))
    _, peak = traced_peak(lambda: expect_source_error(path, fragment))
    assert peak < 20 * 2**20, f"allocated {peak} bytes for a forged header"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        pytest.param(b'{"a": 1, "a": 2}', "appears twice", id="duplicate_key"),
        pytest.param(b'{"w": {"shape": [' + b"9" * 5000 + b"]}}", "", id="5000_digit_int"),
        pytest.param(b"[" * 200_000 + b"]" * 200_000, "nested too deeply", id="deep_nesting"),
        pytest.param(b'{"w": "\xff\xfe"}', "utf-8", id="not_utf8"),
        pytest.param(b'{"w": ', "not json", id="cut_json"),
        pytest.param(b"null", "not a json object", id="null"),
        pytest.param(b'"text"', "not a json object", id="string"),
    ],
)
def test_malformed_json_header_is_a_clean_error(tmp_path, raw, fragment):
    path = tmp_path / "bad_json.safetensors"
    path.write_bytes(safetensors_bytes(raw, bytes(16)))
    expect_source_error(path, fragment)


@pytest.mark.parametrize("size", [0, 1, 7])
def test_file_shorter_than_the_length_prefix(tmp_path, size):
    path = tmp_path / "tiny.safetensors"
    path.write_bytes(b"\x08" * size)
    expect_source_error(path, "safetensors")


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = make_fifo(tmp_path / "model.safetensors")
    finished, result = finishes_within(20, lambda: alphahat.describe(fifo))
    assert finished, "reading a FIFO blocked"
    assert isinstance(result, SourceError), result
    assert str(fifo) in str(result) and "regular file" in str(result)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_symlink_to_a_device_is_refused(tmp_path):
    link = tmp_path / "endless.safetensors"
    link.symlink_to("/dev/zero")
    finished, result = finishes_within(20, lambda: alphahat.describe(link))
    assert finished, "reading /dev/zero did not end"
    assert isinstance(result, SourceError), result
    assert str(link) in str(result)


def test_folder_with_a_fifo_shard_is_refused_without_blocking(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    write_safetensors(folder / "model-00001-of-00002.safetensors", {"a.weight": GOOD})
    make_fifo(folder / "model-00002-of-00002.safetensors")
    finished, result = finishes_within(20, lambda: alphahat.describe(folder))
    assert finished, "a FIFO shard blocked"
    assert isinstance(result, SourceError), result
    assert "model-00002-of-00002.safetensors" in str(result)


# ----------------------------------------------------------------- one forged entry


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ({"dtype": "F32", "shape": [2**62, 2**62], "data_offsets": [0, 64]}, "needs more than"),
        ({"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 2**82]}, "truncated"),
        ({"dtype": "F32", "shape": [2**70, 4], "data_offsets": [0, 64]}, "invalid shape"),
        ({"dtype": "F32", "shape": [1] * 100_000, "data_offsets": [0, 4]}, "invalid shape"),
        ({"dtype": "F32", "shape": [-4, 4], "data_offsets": [0, 64]}, "invalid shape"),
        ({"dtype": "F32", "shape": [4.0, 4], "data_offsets": [0, 64]}, "invalid shape"),
        ({"dtype": "F32", "shape": [True, 4], "data_offsets": [0, 16]}, "invalid shape"),
        ({"dtype": "F32", "shape": "4x4", "data_offsets": [0, 64]}, "invalid shape"),
        ({"dtype": "F32", "shape": [float("nan"), 4], "data_offsets": [0, 64]}, "invalid shape"),
        ({"dtype": ["F32"], "shape": [4, 4], "data_offsets": [0, 64]}, "dtype"),
        ({"dtype": {"x": 1}, "shape": [4, 4], "data_offsets": [0, 64]}, "dtype"),
        ({"dtype": None, "shape": [4, 4], "data_offsets": [0, 64]}, "dtype"),
        ({"dtype": "F128", "shape": [4, 4], "data_offsets": [0, 64]}, "F128"),
        ({"dtype": "F32", "shape": [4, 4], "data_offsets": [-64, 0]}, "data_offsets"),
        ({"dtype": "F32", "shape": [4, 4], "data_offsets": [64, 0]}, "data_offsets"),
        ({"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64, 128]}, "data_offsets"),
        ({"dtype": "F32", "shape": [4, 4], "data_offsets": [0.0, 64.0]}, "data_offsets"),
        ({"dtype": "F32", "shape": [4, 4], "data_offsets": "0-64"}, "data_offsets"),
        ({"dtype": "F32", "shape": [4, 4], "data_offsets": [2**64, 2**64 + 64]}, "truncated"),
        ({"dtype": "F32", "shape": [4, 4]}, "data_offsets"),
        ({"shape": [4, 4], "data_offsets": [0, 64]}, "dtype"),
        ("not an object", "not an object"),
        ([1, 2, 3], "not an object"),
    ],
)
def test_forged_entry_fails_alone(tmp_path, entry, fragment):
    path = with_bad_entry(tmp_path, entry)
    report, peak = traced_peak(lambda: alphahat.analyze(path))
    assert peak < 50 * 2**20, f"allocated {peak} bytes for a forged entry"
    reason = failed_reason(report)
    assert fragment.lower() in reason.lower(), reason
    assert_good_row_intact(report)
    row = (
        report.details.set_index("name").loc["bad.weight"]
        if "bad.weight" in set(report.details["name"])
        else None
    )
    if row is not None:
        assert row["status"] == "failed"
        assert math.isnan(row["alpha"]) and math.isnan(row["log_norm"])


def test_overlapping_offsets_fail_the_later_tensor(tmp_path):
    """Two entries claiming the same bytes: the second one (by offset) fails, naming the first."""
    other = good_matrix(2, (40, 20))
    data = GOOD.astype("<f8").tobytes() + other.astype("<f8").tobytes()
    header = {
        "good.weight": GOOD_ENTRY,
        "inside.weight": {"dtype": "F64", "shape": [20, 20], "data_offsets": [1600, 4800]},
        "straddle.weight": {"dtype": "F64", "shape": [40, 20], "data_offsets": [3200, 9600]},
        "alias.weight": {"dtype": "F64", "shape": [40, 20], "data_offsets": [0, 6400]},
        "other.weight": {"dtype": "F64", "shape": [40, 20], "data_offsets": [6400, 12800]},
        "empty.weight": {"dtype": "F64", "shape": [0, 20], "data_offsets": [800, 800]},
    }
    path = tmp_path / "overlap.safetensors"
    path.write_bytes(safetensors_bytes(header, data))
    report = alphahat.analyze(path)
    for name in ("inside.weight", "straddle.weight", "alias.weight"):
        reason = failed_reason(report, name)
        assert "overlap" in reason and "good.weight" in reason, reason
    assert_good_row_intact(report)
    rows = report.details.set_index("name")
    assert rows.loc["other.weight", "status"] == "fitted"
    assert rows.loc["other.weight", "log_norm"] == pytest.approx(
        log10_frobenius_sq(other), rel=1e-12
    )
    # a zero-size tensor overlaps nothing; it is skipped as empty, not failed
    assert report.coverage.set_index("name").loc["empty.weight", "status"] == "skipped"


def test_data_cut_inside_a_tensor(tmp_path):
    path = write_safetensors(tmp_path / "cut.safetensors", {"good.weight": GOOD, "z": GOOD})
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) - 100])
    report = alphahat.analyze(path)
    assert "truncated" in failed_reason(report, "z")
    assert_good_row_intact(report)


def test_file_shrinking_after_the_header_was_read(tmp_path):
    """A tensor whose bytes vanish between planning and reading fails alone (TOCTOU)."""
    path = write_safetensors(tmp_path / "m.safetensors", {"good.weight": GOOD, "z.weight": GOOD})
    with alphahat.sources.open_source(path) as source:
        refs = {r.name: r for r in source.tensors()}
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) - 100)
        np.testing.assert_array_equal(refs["good.weight"].load(), GOOD)
        with pytest.raises(SourceError, match="truncated"):
            refs["z.weight"].load()


def test_metadata_of_any_shape_is_ignored(tmp_path):
    header = {"__metadata__": [1, {"x": None}], "good.weight": GOOD_ENTRY}
    path = tmp_path / "meta.safetensors"
    path.write_bytes(safetensors_bytes(header, GOOD.astype("<f8").tobytes()))
    assert_good_row_intact(alphahat.analyze(path))


def test_hostile_tensor_names_are_data(tmp_path):
    """Names with markup, control characters, path syntax or 10 kB stay intact in the table."""
    names = ["[/bold]", "\x1b[31mred\x1b[0m", "line\nbreak", "../../etc/passwd", "n" * 10_000, ""]
    tensors = {name: good_matrix(i, (30, 15)) for i, name in enumerate(names)}
    path = write_safetensors(tmp_path / "names.safetensors", tensors)
    report = alphahat.analyze(path)
    assert sorted(report.details["name"]) == sorted(names)
    assert (report.details["status"] == "fitted").all()
    assert struct.calcsize("<Q") == 8  # the layout helper's assumption
