"""Errors in alphahat's own words: each names the file or option and quotes no other tool.

Each test builds its bad input, runs the command as a user does (the console script, so
warnings and stderr are what a terminal shows) and checks the one line it prints.
"""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import alphahat
from alphahat.errors import OptionError

#: text of other tools that must never reach the user
FOREIGN = (
    "weights_only", "UserWarning", "Input should be", "Value error", "Invalid value",
    "Traceback", "torch.load", "site-packages", "pydantic",
)  # fmt: skip


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("alphahat")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300)


def invoke(*args: str) -> subprocess.CompletedProcess[str]:
    """The command run in this process (fast), its outcome as :func:`run_cli` gives it."""
    from typer.testing import CliRunner

    from alphahat.cli import app

    result = CliRunner().invoke(app, list(args))
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def one_error_line(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The error line of a failed command, checked for its shape and for foreign text."""
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("alphahat: error: ")
    for text in FOREIGN:
        assert text not in result.stderr, (text, result.stderr)
    assert result.stdout == ""  # no empty table
    return lines[0]


def weights(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


# --------------------------------------------------------------------------- pickles


class _Opens:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (builtins.open, ("/etc/hostname",))


class _Runs:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("true",))


@pytest.mark.parametrize(
    ("how", "payload", "expected"),
    [("zip", _Opens, "io.open"), ("legacy", _Runs, "system"), ("plain-pickle", _Runs, "system")],
)
def test_a_pickle_that_is_not_weights_is_named_in_one_line(tmp_path, how, payload, expected):
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    if how == "plain-pickle":  # protocol 4: torch warns about it when it reads one
        import pickle

        path.write_bytes(pickle.dumps({"fc.weight": np.ones((4, 4)), "x": payload()}, protocol=4))
    else:
        state = {"fc.weight": torch.ones(4, 4), "x": payload()}
        torch.save(state, path, _use_new_zipfile_serialization=how == "zip")
    # the console script for the pickle torch warns about, in this process for the others
    run = run_cli if how == "plain-pickle" else invoke
    line = one_error_line(run("analyze", str(path)))
    assert str(path) in line
    assert "not tensors" in line and expected in line
    assert "could run code" in line and "--unsafe-load" in line


def test_a_text_file_named_model_pt_says_what_it_is_not(tmp_path):
    pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\n")
    line = one_error_line(invoke("describe", str(path)))
    assert str(path) in line
    assert "neither a zip checkpoint nor a pickle" in line
    assert "starts with b'version https://git-lfs" in line
    assert "(101)" not in line and "unsafe" not in line


# --------------------------------------------------------------------------- nothing analysed


def test_layers_matching_nothing_names_the_pattern_and_real_names(tmp_path):
    rng = np.random.default_rng(0)
    path = weights(
        tmp_path / "w.npz",
        **{f"block{i}.weight": rng.standard_t(3, size=(40, 20)) for i in range(4)},
    )
    line = one_error_line(invoke("analyze", str(path), "--layers", "zzz*"), code=1)
    assert "--layers 'zzz*' matched none of the 4 matrices of w.npz" in line
    assert "block0.weight, block1.weight, block2.weight, …" in line


def test_all_skipped_gives_the_grouped_reasons(tmp_path):
    path = weights(tmp_path / "tiny.npz", bias=np.ones(5), scale=np.ones(3), small=np.ones((3, 2)))
    line = one_error_line(invoke("analyze", str(path), "-q"), code=1)
    assert "all 3 tensor(s) of tiny.npz were skipped" in line
    assert '2 × "1-D tensor' in line and '1 × "2 eigenvalue(s) < min_evals=8"' in line


def test_a_missing_output_folder_is_named_before_any_work(tmp_path):
    # the model is not even readable: the output is checked first
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"\x00" * 16)
    output = tmp_path / "missing" / "dir" / "out.csv"
    line = one_error_line(invoke("analyze", str(model), "-o", str(output)))
    assert f"-o {output}: cannot write: the folder {output.parent} does not exist" in line
    line = one_error_line(invoke("report", str(model), "-o", str(output)))
    assert str(output.parent) in line
    for args in (
        ["traps", str(model), "-o", str(output)],
        ["traps", str(model), "--html", str(output)],
        ["randomize", str(model), "-o", str(output)],
        ["weights", str(model), "-o", str(output)],
        ["allocate", str(model), "-o", str(output)],
    ):
        assert str(output.parent) in one_error_line(invoke(*args)), args
    assert "is a file" in one_error_line(invoke("weights", str(model), "--figures", str(model)))


def test_quiet_leaves_stderr_empty(tmp_path):
    """-q: no progress bar and no notes (not even "wrote FILE"), whichever command."""
    rng = np.random.default_rng(0)
    model = weights(
        tmp_path / "m.npz", **{f"l{i}.w": rng.standard_normal((80, 40)) for i in range(3)}
    )
    for command, extra in (("analyze", ["-f", "csv"]), ("weights", ["--max-entries", "500"]),
                           ("allocate", []), ("randomize", [])):  # fmt: skip
        out = tmp_path / f"{command}.out"
        done = invoke(command, str(model), "-o", str(out), "-q", *extra)
        assert done.returncode == 0, (command, done.stderr)
        assert done.stderr == "", (command, done.stderr)
        assert out.stat().st_size > 0
        loud = invoke(command, str(model), "-o", str(out), *extra)
        assert f"wrote {out}" in loud.stderr, (command, loud.stderr)


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("args", "flag", "given"),
    [
        (["analyze", "M", "--min-evals", "-3"], "--min-evals", "-3"),
        (["analyze", "M", "--fit", "xx"], "--fit", "'xx'"),
        (["analyze", "M", "--max-memory", "3zz"], "--max-memory", "'3zz'"),
        (["analyze", "M", "-f", "xml"], "--format", "'xml'"),
        (["analyze", "M", "--columns", "bogus"], "--columns", "'bogus'"),
        (["describe", "M", "--fused-heads", "0"], "--fused-heads", "0"),
        (["plot", "M", "--dpi", "5"], "--dpi", "'5'"),
        (["report", "M", "--max-diagnostics", "-1"], "--max-diagnostics", "'-1'"),
        (["compare", "M", "--bootstrap", "-1"], "--bootstrap", "'-1'"),
        (["compare", "M", "--confidence", "2"], "--confidence", "'2'"),
        (["zoo", "build", "D", "--jobs", "0"], "--jobs", "'0'"),
    ],
)
def test_option_errors_have_one_shape(tmp_path, args, flag, given):
    args = [str(tmp_path / "m.npz") if a == "M" else str(tmp_path / "zoo") if a == "D" else a
            for a in args]  # fmt: skip
    line = one_error_line(invoke(*args))
    assert line.startswith(f"alphahat: error: {flag} must be ")
    assert line.endswith(f"; got {given}")


@pytest.mark.parametrize(
    ("keywords", "name"),
    [
        ({"min_evals": -3}, "min_evals"),
        ({"fit": "xx"}, "fit"),
        ({"layers": 3.5}, "layers"),
        ({"max_memory": "3zz"}, "max_memory"),
        ({"workers": 0}, "workers"),
        ({"device": "gpu"}, "device"),
    ],
)
def test_python_option_errors_have_the_same_shape(tmp_path, keywords, name):
    path = weights(tmp_path / "w.npz", a=np.ones((8, 8)))
    with pytest.raises(OptionError) as caught:
        alphahat.analyze(path, **keywords)
    message = str(caught.value)
    assert message.startswith(f"{name} must be ") and "; got " in message
    assert not any(text in message for text in FOREIGN)


# --------------------------------------------------------------------------- control bytes


def test_control_bytes_in_a_file_name_are_escaped_everywhere(tmp_path):
    rng = np.random.default_rng(0)
    path = weights(tmp_path / "m\x1b[2J\x07.npz", a=rng.standard_t(3, size=(80, 40)))
    table = invoke("analyze", str(path), "-q")
    assert table.returncode == 0, table.stderr
    assert "Model summary — m\\x1b[2J\\x07.npz" in table.stdout
    with_csv = invoke("analyze", str(path), "-f", "csv", "-o", str(tmp_path / "o.csv"))
    bad = invoke("analyze", str(path), "--min-evals", "x")
    missing = run_cli("describe", str(tmp_path / "gone\x1b]0;x\x07.npz"))
    for result in (table, with_csv, bad, missing):
        assert "\x1b" not in result.stdout + result.stderr
        assert "\x07" not in result.stdout + result.stderr
    assert "\\x1b]0;x\\x07" in missing.stderr
