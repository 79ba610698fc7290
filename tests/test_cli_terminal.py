"""The first screen: the per-layer table in a terminal of 80 and 120 columns, and the help.

The terminal runs are real: ``alphahat analyze`` on MiniLM-L6 with its stdout on a
pseudo-terminal (``os.openpty``) of the given width; the table must give one line per layer,
fit the width, and print every α and α̂ whole, as the report has them.
"""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest

from alphahat.cli import app
from alphahat.cli._table import cells_wide, layout_table, shorten, shorten_all

typer_testing = pytest.importorskip("typer.testing")
runner = typer_testing.CliRunner()
ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_in_terminal(args: list[str], columns: int) -> tuple[int, str]:
    """``python -m alphahat ARGS`` with stdout and stderr on a pseudo-terminal ``columns`` wide."""
    main, child = os.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "50", "PYTHONPATH": str(ROOT / "src")}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "alphahat", *args], stdout=child, stderr=child, env=env
    )
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 1 << 16)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    code = process.wait(timeout=300)
    return code, ANSI.sub("", b"".join(chunks).decode("utf-8").replace("\r", ""))


@pytest.mark.parametrize("columns", [80, 120])
def test_minilm_table_fits_the_terminal(minilm_path: Path, minilm_report, columns: int) -> None:
    code, out = run_in_terminal(["analyze", str(minilm_path)], columns)
    assert code == 0, out
    details = minilm_report.details
    rows = [line for line in out.splitlines() if re.match(r"^\s*\d+ \S", line)]
    assert len(rows) == len(details)  # one line per layer, nothing wrapped onto a second line
    for line, (_, layer) in zip(rows, details.iterrows(), strict=True):
        cells = line.split()
        assert int(cells[0]) == layer["layer_id"]
        assert f"{layer['alpha']:.3f}" in cells  # every α whole, as its own cell
        assert f"{layer['alpha_weighted']:.3f}" in cells
        assert f"{layer['N']}×{layer['M']}" in cells
        assert cells_wide(line) <= columns, line
    # the title names the file, not the site-packages path
    title = next(line for line in out.splitlines() if line.startswith("alphahat "))
    assert "— model.safetensors" in title and "site-packages" not in title
    pooler = rows[-1]
    assert "pooler" in pooler and "under" in pooler  # α = 12.4: its warning in the row
    if columns == 120:  # wide enough for the whole names and every compact column
        assert "encoder.layer.5.attention.self.query.weight" in out
        assert "log₁₀λmax" in out and "under-trained" in out
    summary = out[out.index("Model summary") :]
    assert "(39 fitted, 0 failed, 65 skipped; averaged over 39 layers;" in summary
    assert "— model.safetensors" in summary.splitlines()[0]
    # one line of what next, on the terminal's stderr
    assert re.search(r"next: alphahat describe .* \(why 65 tensors were skipped\)", summary)
    assert "alphahat report" in summary and "-f csv" in summary


def _row(name: str, alpha: float, status: str = "fitted", reason: str = "") -> dict:
    return {
        "layer_id": 0, "name": name, "kind": "linear", "N": 384, "M": 384, "alpha": alpha,
        "alpha_weighted": alpha * 1.5, "D": 0.05, "log_spectral_norm": 1.5,
        "warning": "", "status": status, "reason": reason,
    }  # fmt: skip


def test_failed_rows_show_their_reason_and_numbers_stay_whole() -> None:
    reason = "weights contain 1 NaN value(s) in row 3"
    rows = [
        _row("model.encoder.block.0.attention.self.query.weight", 123456.789),
        _row("model.encoder.block.1.attention.self.value.weight", np.nan, "failed", reason),
    ]
    columns = ("layer_id", "name", "kind", "NxM", "alpha", "alpha_weighted", "D", "status")
    layout = layout_table(rows, columns, 60)
    text = "\n".join(layout.lines)
    assert all(cells_wide(line) <= 60 for line in layout.lines)
    assert "1.235e+05" in text.split()  # a huge α whole, never folded
    failed = "\n".join(layout.lines[3:])
    assert "failed:" in failed and "NaN" in failed and "row 3" in failed
    assert layout.common_prefix == "model.encoder.block." and layout.common_suffix == ".weight"


def test_names_are_shortened_from_the_left_then_in_the_middle() -> None:
    names = [
        "encoder.layer.5.attention.self.query",
        "encoder.layer.5.output.dense",
        "pooler.dense",
    ]
    assert shorten_all(names, 40) == names
    short = shorten_all(names, 20)
    assert short == ["e.l.5.a.self.query", "e.l.5.output.dense", "pooler.dense"]
    assert shorten("a" * 30, 9) == "aaaa…aaaa"


def test_columns_and_wide_when_not_a_terminal(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "w.npz"
    np.savez(path, **{"a.weight": rng.standard_t(3, size=(80, 40))})
    picked = runner.invoke(app, ["analyze", str(path), "-q", "--columns", "name,alpha,NxM"])
    assert picked.exit_code == 0, picked.output
    header = next(line for line in picked.stdout.splitlines() if "NxM" in line)
    assert "name" in header and "NxM" in header and "log_norm" not in header
    wide = runner.invoke(app, ["analyze", str(path), "-q", "--wide"])
    assert wide.exit_code == 0
    assert "spectrum_method" in wide.stdout and "80×40" not in wide.stdout.split("\n")[0]
    bad = runner.invoke(app, ["analyze", str(path), "-q", "--columns", "name,bogus"])
    assert bad.exit_code == 2
    assert "--columns must be column names of the table" in bad.stderr
    assert "got 'name,bogus'" in bad.stderr


# --------------------------------------------------------------------------- help

COMMANDS = [["analyze"], ["describe"], ["plot"], ["report"], ["compare"], ["zoo", "build"]]


def _command(path: list[str]):  # type: ignore[no-untyped-def]
    from typer.main import get_command

    command = get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    return command


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_help_shows_every_options_text_whole_with_plain_metavars(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    text = "".join(result.output.split())  # (help wraps lines, also after a hyphen)
    for param in _command(path).params:
        help_text = getattr(param, "help", None)
        if help_text and not getattr(param, "hidden", False):
            assert "".join(help_text.split()) in text, (param.name, help_text)
    for typer_type in ("<bool>", "<str>", "<int", "<float", "<path>", "list[", "{MODEL}"):
        assert typer_type not in result.output, typer_type
    usage = result.output.splitlines()[0]
    assert usage.endswith(("MODEL", "MANIFEST", "DIR")), usage
    assert "--layer " not in result.output  # the old spelling is hidden


def test_layer_and_layers_are_one_option(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "w.npz"
    np.savez(path, a=rng.standard_t(3, size=(80, 40)), b=rng.standard_t(3, size=(60, 30)))
    both = runner.invoke(app, ["analyze", str(path), "-q", "-f", "csv", "--layer", "a"])
    assert both.exit_code == 0 and [
        line.split(",")[1] for line in both.stdout.splitlines()[1:]
    ] == ["a"]
    help_text = runner.invoke(app, ["plot", "--help"], terminal_width=200).output
    assert "--layers PATTERN" in help_text and "rnn, bilinear" in help_text


def test_analyze_help_explains_the_columns() -> None:
    text = runner.invoke(app, ["analyze", "--help"], terminal_width=100).output
    legend = " ".join(text[text.index("The table's columns") :].split())
    for heading in ("id", "N×M", "α", "α̂", "D", "log₁₀λmax", "status"):
        assert f" {heading} " in f" {legend} ", heading
    assert "ids jump where a tensor was skipped" in legend
    assert "negative when λmax < 1" in legend and "the metric's definition" in legend
