"""A command that needs an optional extra says so at once, before any analysis.

Each command runs in a fresh interpreter where matplotlib cannot be imported
(``sys.modules["matplotlib"] = None``, as on an install without the ``plot`` extra), with the
analysis replaced by a spy that records every call: the command must exit 2 with the one-line
install hint, and the spy must never have run (nothing analysed, no progress, no file written).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = r"""
import contextlib, io, json, sys
sys.modules["matplotlib"] = None  # `import matplotlib` raises ImportError, as when not installed
import alphahat.analysis, alphahat.run
calls = []
def spy(*args, **kwargs):
    calls.append("analysis")
    raise AssertionError("the analysis ran")
alphahat.analysis.analyze = spy
alphahat.run.run_analysis = spy
import alphahat.compare
alphahat.compare.compare = spy
from alphahat.cli import app
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            app(argv, standalone_mode=True)
            code = 0
        except SystemExit as exc:
            code = exc.code
    results.append({"argv": argv, "code": code, "stderr": err.getvalue(), "calls": list(calls)})
print(json.dumps(results))
"""


def test_commands_needing_matplotlib_fail_before_analysing(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    model = tmp_path / "model.safetensors"
    weights = np.random.default_rng(0).standard_t(3, size=(64, 32)).astype(np.float32)
    save_file({"layer.weight": weights}, str(model))
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"path,accuracy,group\n{model},0.9,a\n{model},0.8,a\n")
    report, figures, page = tmp_path / "r.html", tmp_path / "figs", tmp_path / "c.html"
    commands = [
        ["report", str(model), "-o", str(report)],
        ["plot", str(model), "-o", str(figures)],
        ["compare", str(manifest), "--html", str(page)],
    ]
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(commands)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    outcomes = json.loads(result.stdout)
    assert [o["argv"][0] for o in outcomes] == ["report", "plot", "compare"]
    for outcome in outcomes:
        lines = outcome["stderr"].strip().splitlines()
        assert outcome["code"] == 2, outcome
        assert len(lines) == 1, outcome  # one line: no progress bar, no "drawing…", no traceback
        assert lines[0].startswith("alphahat: error: ")
        assert "needs the optional dependency 'matplotlib'" in lines[0]
        assert "pip install 'alphahat[plot]'" in lines[0]
        assert outcome["calls"] == [], "the analysis ran before the missing extra was found"
    assert not report.exists() and not figures.exists() and not page.exists()
