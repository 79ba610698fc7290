"""Packaging and import hygiene: no torch needed, no side effects at import, a working wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_import_has_no_side_effects_and_no_framework() -> None:
    out = run_python(
        """
        import logging, sys, warnings
        import numpy, scipy.linalg, scipy.special, pandas, rich, typer  # they add their own filters
        filters = list(warnings.filters)
        handlers = list(logging.getLogger().handlers)
        import alphahat, alphahat.analysis, alphahat.cli
        assert warnings.filters == filters, "warnings filters changed"
        assert logging.getLogger().handlers == handlers, "root logging configured"
        heavy = [m for m in ("torch", "matplotlib", "tensorflow", "keras") if m in sys.modules]
        print(heavy)
        """
    )
    assert out.strip() == "[]"


def test_analyze_safetensors_without_torch(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    save_file({"w": rng.normal(size=(50, 20)).astype(np.float32)}, str(tmp_path / "m.safetensors"))
    out = run_python(
        f"""
        import sys, alphahat
        r = alphahat.analyze({str(tmp_path / "m.safetensors")!r})
        print(r.details["status"].tolist(), "torch" in sys.modules)
        """
    )
    assert out.strip() == "['fitted'] False"


@pytest.mark.slow
def test_wheel_builds_installs_and_runs_in_a_fresh_venv(tmp_path: Path) -> None:
    """python -m build makes a wheel; a fresh venv installs it and runs `alphahat analyze`."""
    pytest.importorskip("build")
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    wheels = list(dist.glob("alphahat-*.whl"))
    assert len(wheels) == 1
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    subprocess.run(
        [str(bindir / "python"), "-m", "pip", "install", "-q", str(wheels[0])],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    from safetensors.numpy import save_file

    rng = np.random.default_rng(3)
    weights = tmp_path / "model.safetensors"
    save_file({"layer.weight": rng.standard_t(3, size=(120, 60)).astype(np.float32)}, str(weights))
    result = subprocess.run(
        [str(bindir / "alphahat"), "analyze", str(weights), "-f", "csv", "-q"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].startswith("0,layer.weight,linear,120x60,float32")
    assert ",fitted," in result.stdout
