"""Provenance of a report: what produced it, recorded so that a result can be reproduced.

Everything recorded is a function of the input files, the options and the installed software:
no timestamps, host names or temporary paths, so the same input, options and versions give
byte-identical CSV/JSON output.
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from alphahat._imports import loaded
from alphahat._version import __version__

#: build-configuration fields of numpy/scipy's BLAS and LAPACK that identify the library
_BUILD_FIELDS = ("name", "version", "openblas configuration")
#: runtime fields reported by threadpoolctl for each loaded BLAS
_RUNTIME_FIELDS = ("internal_api", "version", "num_threads", "threading_layer", "architecture")


def package_version(name: str) -> str | None:
    """Installed version of a distribution (None when it is not installed), without importing."""
    module = loaded(name)
    version = getattr(module, "__version__", None) if module is not None else None
    if isinstance(version, str):
        return version
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _build_config(module: Any) -> dict[str, Any]:
    """BLAS/LAPACK of a numpy or scipy build (``show_config(mode='dicts')``), or {}."""
    try:
        config = module.show_config(mode="dicts")
    except Exception:  # older versions print instead of returning; nothing to record
        return {}
    deps = config.get("Build Dependencies", {}) if isinstance(config, dict) else {}
    out = {}
    for part in ("blas", "lapack"):
        info = deps.get(part)
        if isinstance(info, dict):
            out[part] = {k: info[k] for k in _BUILD_FIELDS if k in info}
    return out


def _runtime_blas() -> list[dict[str, Any]]:
    """The BLAS libraries loaded in this process with their thread counts (threadpoolctl)."""
    try:
        import threadpoolctl  # type: ignore[import-untyped]
    except ImportError:
        return []
    libraries = []
    for info in threadpoolctl.threadpool_info():
        if info.get("user_api") != "blas":
            continue
        entry = {k: info.get(k) for k in _RUNTIME_FIELDS}
        entry["library"] = Path(str(info.get("filepath", ""))).name
        libraries.append(entry)
    return sorted(libraries, key=lambda e: (str(e["library"]), str(e["version"])))


def blas_info() -> dict[str, Any]:
    """BLAS/LAPACK builds of numpy and scipy, and the BLAS libraries loaded at run time."""
    import scipy

    return {
        "numpy": _build_config(np),
        "scipy": _build_config(scipy),
        "runtime": _runtime_blas(),
    }


def file_hashes(files: Sequence[Path]) -> dict[str, str]:
    """SHA-256 (hex) of each input file, keyed by the path as recorded in ``files``."""
    from alphahat.sources import file_sha256

    return {str(path): file_sha256(path) for path in files}


def provenance_record(
    description: str,
    files: Sequence[Path],
    options: Mapping[str, Any] | None = None,
    hashes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Versions, BLAS, seed and input files (with SHA-256) of an analysis.

    ``hashes`` (path → SHA-256 hex, as :func:`file_hashes` computes them) may be given when
    they were computed already, e.g. in the background while the layers were analysed.
    """
    import scipy

    options = options or {}
    return {
        "alphahat_version": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "torch": package_version("torch"),
        "blas": blas_info(),
        "seed": options.get("seed"),
        "source": description,
        "files": [str(p) for p in files],
        "file_sha256": dict(hashes) if hashes is not None else file_hashes(files),
    }
