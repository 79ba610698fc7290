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


_GLOBAL_STATE = """
import logging, os, random, signal, sys, warnings
import numpy as np

def logger_handlers():
    loggers = [logging.getLogger()] + [
        logging.getLogger(name) for name in list(logging.Logger.manager.loggerDict)
        if name.startswith("alphahat")
    ]
    found = {
        lg.name: [type(h).__name__ for h in lg.handlers if not isinstance(h, logging.NullHandler)]
        for lg in loggers
    }
    return {name: handlers for name, handlers in found.items() if handlers}  # new loggers are fine

def blas_threads():
    try:
        import threadpoolctl
    except ImportError:
        return None
    return sorted((i["filepath"], i["num_threads"]) for i in threadpoolctl.threadpool_info())

def mpl_state():
    mpl = sys.modules.get("matplotlib")
    if mpl is None:
        return None
    params = dict.copy(mpl.rcParams)  # raw values: reading "backend" must not resolve it
    return params, mpl.rcParams._get_backend_or_none() if hasattr(
        mpl.rcParams, "_get_backend_or_none") else dict.__getitem__(mpl.rcParams, "backend")

def snapshot():
    return {
        "warnings filters": list(warnings.filters),
        "logging handlers": logger_handlers(),
        "root logging level": logging.getLogger().level,
        "environment (thread counts and others)": dict(os.environ),
        "BLAS thread counts": blas_threads(),
        "matplotlib rcParams/backend": mpl_state(),
        "numpy error state": np.geterr(),
        "numpy print options": np.get_printoptions(),
        "global random state": (random.getstate(), repr(np.random.get_state())),
        "signal handlers": [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)],
        "hooks": (sys.excepthook, sys.displayhook),
        "sys.path": list(sys.path),
    }

def compare(before, after, what):
    changed = [k for k in before if before[k] != after[k]]
    assert not changed, f"importing {what} changed: {changed}"
"""


def test_importing_every_module_has_no_global_side_effects() -> None:
    """Importing alphahat, then every module of it, leaves process-wide state alone.

    Third-party libraries the modules use are imported first (they install warnings filters
    of their own); what is left to change is ours: warnings filters, logging handlers, the
    environment (thread-count variables), BLAS thread counts, matplotlib's backend and
    rcParams, numpy's error state and print options, global RNG state, signal handlers.
    """
    out = run_python(
        _GLOBAL_STATE
        + """
import importlib, pkgutil
import scipy.linalg, scipy.special, scipy.stats, scipy.optimize, scipy.integrate
import pandas, rich, typer, matplotlib
try:
    import threadpoolctl
except ImportError:
    pass
before = snapshot()
import alphahat
compare(before, snapshot(), "alphahat")
modules = sorted(
    m.name for m in pkgutil.walk_packages(alphahat.__path__, "alphahat.")
    if not m.name.endswith("__main__")
)
for name in modules:
    importlib.import_module(name)
    compare(before, snapshot(), name)
print(len(modules))
"""
    )
    assert int(out.strip()) >= 10


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


def test_ci_runs_exactly_the_readme_test_command():
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    ci_lines = [
        line
        for line in (root / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith(("#", "set ", "cd "))
    ]
    assert len(ci_lines) == 1
    assert f"```bash\n{ci_lines[0]}\n```" in readme
