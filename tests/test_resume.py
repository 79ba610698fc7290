"""No lost results: per-layer journal with fsync, SIGKILL mid-run, resume to the same table.

The interrupted run kills itself with SIGKILL from its progress callback after exactly k
layers (the callback runs after each layer's record is fsync'd), so the test is deterministic.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import alphahat
from alphahat.report.journal import JOURNAL_SUFFIX, JournalError, journal_frame, read_journal

#: single-threaded BLAS in every run: equal rounding, and no oversubscription on small CI boxes
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def write_model(path: Path, layers: int = 8) -> Path:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(7)
    tensors = {}
    for i in range(layers):
        rows, cols = 40 + 8 * i, 24 + 4 * (i % 3)
        tensors[f"block.{i}.weight"] = rng.standard_t(3, size=(rows, cols)).astype(np.float32)
        tensors[f"block.{i}.bias"] = np.zeros(rows, np.float32)
    save_file(tensors, str(path))
    return path


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return write_model(tmp_path / "model.safetensors")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from alphahat.cli import main; main()", "analyze", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )


@pytest.mark.slow
def test_sigkill_after_k_layers_then_rerun_gives_the_uninterrupted_table(
    model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    journal = tmp_path / ("out.csv" + JOURNAL_SUFFIX)
    killer = textwrap.dedent(
        f"""
        import os, signal, alphahat
        def progress(done, total, name):
            if done == 3:
                os.kill(os.getpid(), signal.SIGKILL)
        alphahat.analyze({str(model)!r}, journal={str(journal)!r}, progress=progress)
        """
    )
    killed = subprocess.run(
        [sys.executable, "-c", killer], capture_output=True, text=True, env=ENV, timeout=120
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not out.exists()
    # the partial table is readable: exactly the 3 layers finished before the kill
    partial = journal_frame(journal)
    assert partial["name"].tolist() == ["block.0.weight", "block.1.weight", "block.2.weight"]
    assert (partial["status"] == "fitted").all()

    resumed = cli(str(model), "-o", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed: 3 layer(s) already done" in resumed.stderr
    assert not journal.exists()  # its layers are in the output now

    full = tmp_path / "full.csv"
    uninterrupted = cli(str(model), "-o", str(full), "--no-resume", "-q")
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    assert out.read_bytes() == full.read_bytes()
    assert len(full.read_text().splitlines()) == 1 + 8


class Stop(Exception):
    pass


def run_until(model: Path, journal: Path, layers: int) -> None:
    """A run that dies (an exception from the progress callback) after ``layers`` layers."""

    def progress(done: int, total: int, name: str) -> None:
        if done == layers:
            raise Stop

    with pytest.raises(Stop):
        alphahat.analyze(model, journal=journal, progress=progress, blas_threads=1)


def test_a_torn_last_record_is_ignored_and_the_run_resumes(model: Path, tmp_path: Path) -> None:
    journal = tmp_path / "run.jsonl"
    run_until(model, journal, 2)
    with journal.open("ab") as handle:  # a record cut short by a crash mid-write
        handle.write(b'{"layer_id": 2, "name": "block.2.weight", "row": {"alp')
    assert len(read_journal(journal).records) == 2
    seen: list[int] = []
    report = alphahat.analyze(
        model, journal=journal, blas_threads=1, progress=lambda d, t, n: seen.append(d)
    )
    assert report.run_info["resumed_layers"] == 2
    assert seen == [2, 3, 4, 5, 6, 7, 8]  # only the 6 missing layers ran
    fresh = alphahat.analyze(model, blas_threads=1)
    assert report.to_csv() == fresh.to_csv()
    assert len(read_journal(journal).records) == 8  # the torn bytes were dropped


def test_rows_come_from_the_journal_and_transient_failures_are_retried(
    model: Path, tmp_path: Path
) -> None:
    journal = tmp_path / "run.jsonl"
    fresh = alphahat.analyze(model, journal=journal, blas_threads=1)
    lines = journal.read_text().splitlines()
    records = [json.loads(line) for line in lines[1:]]
    records[0]["row"]["alpha"] = 123.0  # marks a row read back from the journal
    records[1]["row"].update(status="failed", reason="timed out")
    records[1]["transient"] = True  # a timeout: to be tried again
    journal.write_text("\n".join([lines[0], *map(json.dumps, records)]) + "\n")
    report = alphahat.analyze(model, journal=journal, resume=True, blas_threads=1)
    assert report.run_info["resumed_layers"] == 7
    got = report.details.set_index("name")
    want = fresh.details.set_index("name")
    assert got.loc["block.0.weight", "alpha"] == 123.0
    assert got.loc["block.1.weight", "status"] == "fitted"
    assert got.loc["block.1.weight", "alpha"] == want.loc["block.1.weight", "alpha"]


def test_a_journal_of_another_run_is_refused_or_started_over(model: Path, tmp_path: Path) -> None:
    journal = tmp_path / "run.jsonl"
    run_until(model, journal, 3)
    with pytest.raises(JournalError, match="option min_evals"):
        alphahat.analyze(model, journal=journal, resume=True, min_evals=20)
    report = alphahat.analyze(model, journal=journal, min_evals=20, blas_threads=1)
    assert "option min_evals" in report.run_info["journal_restarted"]
    assert report.run_info["resumed_layers"] == 0
    assert len(read_journal(journal).records) == len(report.details)
    with pytest.raises(JournalError, match="not an alphahat journal"):
        (tmp_path / "junk.jsonl").write_text("hello\n")
        alphahat.analyze(model, journal=tmp_path / "junk.jsonl", resume=True)


def test_resume_needs_an_output_file_on_the_command_line(model: Path) -> None:
    from typer.testing import CliRunner

    from alphahat.cli import app

    result = CliRunner().invoke(app, ["analyze", str(model), "--resume"])
    assert result.exit_code == 2
    assert "--resume needs -o FILE" in result.output
