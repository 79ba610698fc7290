"""Hostile checkpoint folders: shard indexes and symlinks that point outside the folder.

A shard index (``*.safetensors.index.json``) names files; each must resolve inside the
checkpoint folder: no ``..``, no absolute path, no symlink whose target is outside (the one
exception: a Hugging Face cache snapshot's links into its own ``blobs/``). An entry that
breaks the rule fails its tensors with the reason, and the file outside is never read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hostile_inputs import (
    finishes_within,
    good_matrix,
    log10_frobenius_sq,
    make_fifo,
    write_safetensors,
)

import alphahat
import alphahat.sources.safetensors_files as st
from alphahat.errors import SourceError

WEIGHTS = {f"good{i}.weight": good_matrix(10 + i, (40, 20)) for i in range(2)}
SECRET = good_matrix(99, (30, 20))


def checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    """(folder with one good shard, a valid safetensors file outside the folder)."""
    folder = tmp_path / "ckpt"
    folder.mkdir()
    write_safetensors(folder / "model-00001-of-00002.safetensors", WEIGHTS)
    outside = write_safetensors(tmp_path / "outside.safetensors", {"evil.weight": SECRET})
    return folder, outside


def write_index(folder: Path, weight_map: dict[str, str]) -> Path:
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return index


def good_map() -> dict[str, str]:
    return dict.fromkeys(WEIGHTS, "model-00001-of-00002.safetensors")


def assert_good_shard_analysed(report) -> None:
    rows = report.details.set_index("name")
    for name, w in WEIGHTS.items():
        assert rows.loc[name, "status"] == "fitted", rows.loc[name, "reason"]
        assert rows.loc[name, "log_norm"] == pytest.approx(log10_frobenius_sq(w), rel=1e-12)


def spy_on_reads(monkeypatch) -> list[str]:
    """Record every file whose safetensors header is read."""
    seen: list[str] = []
    original = st.read_safetensors_header

    def spy(path):
        seen.append(str(Path(path).resolve()))
        return original(path)

    monkeypatch.setattr(st, "read_safetensors_header", spy)
    return seen


@pytest.mark.parametrize(
    "entry",
    [
        "../outside.safetensors",
        "./../outside.safetensors",
        "sub/../../outside.safetensors",
        "ABSOLUTE",
        "..\\outside.safetensors",
        "link.safetensors",  # a symlink in the folder pointing outside
        "linkdir/outside.safetensors",  # a symlinked folder pointing outside
        "a\x00b.safetensors",
        "x" * 5000 + ".safetensors",
        "",
        "loop.safetensors",  # a symlink loop
    ],
)
def test_index_entry_escaping_the_folder_fails_its_tensors(tmp_path, monkeypatch, entry):
    folder, outside = checkpoint(tmp_path)
    (folder / "link.safetensors").symlink_to(outside)
    (folder / "linkdir").symlink_to(tmp_path)
    (folder / "loop.safetensors").symlink_to(folder / "loop.safetensors")
    entry = str(outside) if entry == "ABSOLUTE" else entry
    write_index(folder, {**good_map(), "evil.weight": entry})
    seen = spy_on_reads(monkeypatch)
    report = alphahat.analyze(folder)
    coverage = report.coverage.set_index("name")
    assert coverage.loc["evil.weight", "status"] == "failed"
    reason = coverage.loc["evil.weight", "reason"]
    assert "outside" in reason or "missing" in reason, reason
    assert str(outside.resolve()) not in seen, "the file outside the folder was read"
    assert str(outside) not in report.provenance["files"]
    assert_good_shard_analysed(report)


def test_symlinked_shard_outside_the_folder_without_index_is_refused(tmp_path):
    folder, outside = checkpoint(tmp_path)
    (folder / "model-00002-of-00002.safetensors").symlink_to(outside)
    with pytest.raises(SourceError, match="outside") as info:
        alphahat.analyze(folder)
    assert "model-00002-of-00002.safetensors" in str(info.value)


def test_single_symlinked_file_outside_the_folder_is_refused(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    outside = write_safetensors(tmp_path / "outside.safetensors", {"evil.weight": SECRET})
    (folder / "model.safetensors").symlink_to(outside)
    with pytest.raises(SourceError, match="outside"):
        alphahat.describe(folder)
    # the file itself, passed explicitly, is the user's choice and is read
    assert alphahat.describe(folder / "model.safetensors")["name"].tolist() == ["evil.weight"]


def test_symlink_inside_the_folder_is_allowed(tmp_path):
    folder, _ = checkpoint(tmp_path)
    (folder / "sub").mkdir()
    os.replace(folder / "model-00001-of-00002.safetensors", folder / "sub" / "real.safetensors")
    (folder / "model-00001-of-00002.safetensors").symlink_to(folder / "sub" / "real.safetensors")
    write_index(folder, good_map())
    assert_good_shard_analysed(alphahat.analyze(folder))


def test_hugging_face_cache_snapshot_links_into_blobs_are_allowed(tmp_path):
    """models--org--name/snapshots/<rev>/x → ../../blobs/<sha>, as the hub's cache lays out."""
    repo = tmp_path / "hub" / "models--org--tiny"
    blobs, snapshot = repo / "blobs", repo / "snapshots" / "0123abcd"
    blobs.mkdir(parents=True)
    snapshot.mkdir(parents=True)
    write_safetensors(blobs / "5f3e9a", WEIGHTS)
    (snapshot / "model-00001-of-00002.safetensors").symlink_to("../../blobs/5f3e9a")
    (blobs / "idx").write_text(json.dumps({"weight_map": good_map()}))
    (snapshot / "model.safetensors.index.json").symlink_to("../../blobs/idx")
    assert_good_shard_analysed(alphahat.analyze(snapshot))
    # the same links from a folder that is not a cache snapshot stay refused
    other = tmp_path / "plain"
    other.mkdir()
    (other / "model.safetensors").symlink_to(blobs / "5f3e9a")
    with pytest.raises(SourceError, match="outside"):
        alphahat.describe(other)


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[1, 2]",
        b'{"weight_map": [1]}',
        b'{"weight_map": {"a": 5}}',
        b'{"weight_map": {"a": "x", "a": "y"}}',
        b"[" * 100_000,
        b'{"weight_map": {"a": "' + b"\xff" * 10 + b'"}}',
        b'{"n": ' + b"1" * 5000 + b"}",
    ],
)
def test_malformed_index_is_a_clean_error(tmp_path, content):
    folder, _ = checkpoint(tmp_path)
    index = folder / "model.safetensors.index.json"
    index.write_bytes(content)
    with pytest.raises(SourceError) as info:
        alphahat.describe(folder)
    assert str(index) in str(info.value)
    assert "\n" not in str(info.value)


def test_oversized_index_is_refused_before_parsing(tmp_path, monkeypatch):
    monkeypatch.setattr(st, "MAX_INDEX_BYTES", 1000)
    folder, _ = checkpoint(tmp_path)
    index = write_index(folder, {f"t{i}.weight": "x.safetensors" for i in range(200)})
    with pytest.raises(SourceError, match="larger than"):
        alphahat.describe(index)


def test_index_that_is_a_fifo_does_not_block(tmp_path):
    folder, _ = checkpoint(tmp_path)
    make_fifo(folder / "model.safetensors.index.json")
    finished, result = finishes_within(20, lambda: alphahat.describe(folder))
    assert finished, "a FIFO index blocked"
    assert isinstance(result, SourceError), result
    assert "regular file" in str(result)


def test_shard_that_is_a_fifo_fails_its_tensors(tmp_path):
    folder, _ = checkpoint(tmp_path)
    make_fifo(folder / "model-00002-of-00002.safetensors")
    write_index(folder, {**good_map(), "piped.weight": "model-00002-of-00002.safetensors"})
    finished, report = finishes_within(20, lambda: alphahat.analyze(folder))
    assert finished, "a FIFO shard blocked"
    reason = report.coverage.set_index("name").loc["piped.weight", "reason"]
    assert "regular file" in reason, reason
    assert_good_shard_analysed(report)
