"""Safe loading of pickled checkpoints, and the command line's answer to hostile input.

A ``.pt/.bin/.pth`` file is loaded with ``weights_only=True``: a pickle that would run code is
refused with a message naming the file and ``--unsafe-load``, and the code never runs. The
CLI turns every such refusal into one line on stderr and exit code 2.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hostile_inputs import Payload, good_matrix, make_fifo, safetensors_bytes, write_safetensors

import alphahat
from alphahat.errors import SourceError

torch = pytest.importorskip("torch")
typer_testing = pytest.importorskip("typer.testing")
from alphahat.cli import app  # noqa: E402

runner = typer_testing.CliRunner()


class TinyNet(torch.nn.Module):
    """A whole module pickled with torch.save(model): loading it needs a full unpickle."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(20, 40)


def payload_checkpoint(path: Path, marker: Path) -> Path:
    state = {"fc.weight": torch.from_numpy(good_matrix(30, (40, 20))), "x": Payload(marker)}
    torch.save(state, path)
    return path


def refused(call, path: Path, marker: Path | None = None) -> str:
    with pytest.raises(SourceError) as info:
        call()
    message = str(info.value)
    assert str(path) in message and "--unsafe-load" in message, message
    assert "\n" not in message
    if marker is not None:
        assert not marker.exists(), "the pickle's code ran"
    return message


def test_payload_in_one_of_several_shards_is_refused(tmp_path):
    marker = tmp_path / "PWNED"
    folder = tmp_path / "ckpt"
    folder.mkdir()
    torch.save({"a.weight": torch.randn(30, 20)}, folder / "pytorch_model-00001-of-00002.bin")
    evil = payload_checkpoint(folder / "pytorch_model-00002-of-00002.bin", marker)
    refused(lambda: alphahat.analyze(folder), evil, marker)


def test_whole_pickled_module_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(TinyNet(), path)
    refused(lambda: alphahat.describe(path), path)
    # with the explicit opt-in the module is loaded and its layer analysed
    assert "fc.weight" in set(alphahat.describe(path, unsafe_load=True)["name"])


def test_old_torch_is_refused_without_the_opt_in(tmp_path, monkeypatch):
    """torch < 2.6: weights_only=True could run code (CVE-2025-32434), so it is not trusted."""
    from alphahat.sources.torch_sources import safe_loader_available

    assert [safe_loader_available(v) for v in ("2.5.1", "2.6.0", "2.13.0+cpu", "1.13")] == [
        False,
        True,
        True,
        False,
    ]
    path = tmp_path / "plain.pt"
    torch.save({"fc.weight": torch.randn(40, 20)}, path)
    monkeypatch.setattr(torch, "__version__", "2.5.1")
    message = refused(lambda: alphahat.describe(path), path)
    assert "CVE-2025-32434" in message
    assert list(alphahat.describe(path, unsafe_load=True)["name"]) == ["fc.weight"]


# ----------------------------------------------------------------------------- the CLI


def cli_error(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("alphahat: error: "), lines[0]
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("command", ["analyze", "describe"])
def test_cli_pickle_payload_is_one_line_exit_2(tmp_path, command):
    marker = tmp_path / "PWNED"
    path = payload_checkpoint(tmp_path / "evil.pt", marker)
    line = cli_error([command, str(path)])
    assert str(path) in line and "--unsafe-load" in line
    assert not marker.exists()


@pytest.mark.parametrize(
    "build",
    ["huge_header", "bad_json", "fifo", "escaping_symlink", "newline_name", "bad_max_memory"],
)
def test_cli_hostile_input_is_one_line_exit_2(tmp_path, build):
    path = tmp_path / "m.safetensors"
    args: list[str] = []
    if build == "huge_header":
        path.write_bytes(safetensors_bytes({}, claimed_len=2**63))
    elif build == "bad_json":
        path.write_bytes(safetensors_bytes(b"[" * 50_000))
    elif build == "fifo":
        make_fifo(path)
    elif build == "escaping_symlink":
        folder = tmp_path / "ckpt"
        folder.mkdir()
        outside = write_safetensors(tmp_path / "outside.safetensors", {"w": good_matrix(1)})
        (folder / "model.safetensors").symlink_to(outside)
        path = folder
    elif build == "newline_name":
        path = tmp_path / "evil\nname\x1b[31m.safetensors"
        path.write_bytes(b"garbage")
    else:
        write_safetensors(path, {"w": good_matrix(1)})
        args = ["--max-memory", "lots"]
    line = cli_error(["analyze", str(path), *args])
    if build == "newline_name":
        assert "\\n" in line and "\\x1b" in line  # escaped, not interpreted
    if build == "bad_max_memory":
        assert "--max-memory" in line


def test_cli_table_shows_hostile_tensor_names_as_text(tmp_path):
    names = ["[/bold]", "[red]x[/red]", "\x1b]0;title\x07bell"]
    path = write_safetensors(
        tmp_path / "m.safetensors", {n: good_matrix(i, (30, 15)) for i, n in enumerate(names)}
    )
    result = runner.invoke(app, ["analyze", str(path), "-q"])
    assert result.exit_code == 0, result.output
    assert "[/bold]" in result.stdout and "[red]x[/red]" in result.stdout
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout


@pytest.mark.slow
def test_console_script_refuses_a_payload_in_one_line(tmp_path):
    """The installed entry point, as a user runs it: exit 2, one line, no traceback."""
    marker = tmp_path / "PWNED"
    path = payload_checkpoint(tmp_path / "evil.bin", marker)
    exe = Path(sys.executable).with_name("alphahat")
    done = subprocess.run(
        [str(exe), "analyze", str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "--unsafe-load" in done.stderr, done.stderr
    assert not marker.exists()
    assert np.isfinite(good_matrix(0)).all()
