"""Reproducible outputs: the same input, options and version give byte-identical CSV/JSON,
and every report records what produced it (versions, BLAS, seed, SHA-256 of each file)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hostile_inputs import good_matrix, write_safetensors

import alphahat


def checkpoint(root: Path) -> Path:
    """A sharded checkpoint: an index and two shards (three input files)."""
    folder = root / "ckpt"
    folder.mkdir()
    shards = {
        "model-00001-of-00002.safetensors": {f"a{i}.weight": good_matrix(60 + i) for i in range(3)},
        "model-00002-of-00002.safetensors": {"b.weight": good_matrix(70, (64, 32)).T.copy()},
    }
    weight_map = {}
    for shard, tensors in shards.items():
        write_safetensors(folder / shard, tensors)
        weight_map.update(dict.fromkeys(tensors, shard))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return folder


RUN = """
import sys, alphahat
report = alphahat.analyze(sys.argv[1], max_memory="1GiB")
report.to_csv(sys.argv[2] + ".csv")
report.to_json(sys.argv[2] + ".json")
"""


def test_two_runs_give_identical_bytes(tmp_path):
    """Two separate processes (fresh imports, fresh BLAS state) write the same bytes."""
    folder = checkpoint(tmp_path)
    outputs = []
    for run in ("first", "second"):
        stem = tmp_path / run
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(RUN), str(folder), str(stem)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(
            (stem.with_suffix(".csv").read_bytes(), stem.with_suffix(".json").read_bytes())
        )
    assert outputs[0][0] == outputs[1][0], "CSV differs between identical runs"
    assert outputs[0][1] == outputs[1][1], "JSON differs between identical runs"
    data = json.loads(outputs[0][1])
    assert len(data["layers"]) == 4 and all(r["status"] == "fitted" for r in data["layers"])


def test_provenance_records_versions_blas_seed_and_file_hashes(tmp_path):
    folder = checkpoint(tmp_path)
    report = alphahat.analyze(folder)
    prov = report.provenance
    for package in ("numpy", "scipy"):
        assert prov[package] == importlib.metadata.version(package)
    assert prov["alphahat_version"] == importlib.metadata.version("alphahat")
    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch_version = None
    assert prov["torch"] == torch_version
    assert "seed" in prov
    blas = prov["blas"]
    assert blas["numpy"]["blas"]["name"] and blas["scipy"]["lapack"]["name"]
    # every input file, the index included, with its SHA-256 computed here independently
    files = sorted(folder.iterdir())
    assert sorted(prov["files"]) == sorted(str(p) for p in files)
    for path in files:
        assert prov["file_sha256"][str(path)] == hashlib.sha256(path.read_bytes()).hexdigest()
    text = report.to_json()
    assert json.loads(text)["provenance"]["file_sha256"] == prov["file_sha256"]


def test_reports_hold_no_timestamps_or_foreign_paths(tmp_path):
    folder = checkpoint(tmp_path)
    text = alphahat.analyze(folder).to_json()
    assert not re.search(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", text), "a timestamp in the report"
    data = json.loads(text)
    # the only paths are the inputs themselves
    found = set(re.findall(r'"(/[^"]+)"', text))
    allowed = {str(folder)} | set(data["provenance"]["files"])
    assert found <= allowed | {p for p in found if not p.startswith(str(tmp_path))}, found - allowed
    for path in found:
        if path.startswith(str(tmp_path)):
            assert path in allowed, path


def test_in_memory_model_has_no_file_hashes():
    report = alphahat.analyze({"w.weight": good_matrix(80)})
    assert report.provenance["files"] == [] and report.provenance["file_sha256"] == {}


def test_changed_file_changes_its_hash(tmp_path):
    path = write_safetensors(tmp_path / "m.safetensors", {"w.weight": good_matrix(81)})
    first = alphahat.analyze(path).provenance["file_sha256"][str(path)]
    write_safetensors(path, {"w.weight": good_matrix(81) * np.float64(1 + 2**-40)})
    assert alphahat.analyze(path).provenance["file_sha256"][str(path)] != first


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_cli_output_files_are_identical_across_runs(tmp_path, fmt):
    typer_testing = pytest.importorskip("typer.testing")
    from alphahat.cli import app

    path = write_safetensors(tmp_path / "m.safetensors", {"w.weight": good_matrix(82)})
    outputs = []
    for run in ("a", "b"):
        out = tmp_path / f"{run}.{fmt}"
        result = typer_testing.CliRunner().invoke(app, ["analyze", str(path), "-q", "-o", str(out)])
        assert result.exit_code == 0, result.output
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
