"""Optional dependencies, imported lazily and checked in one place."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from alphahat.errors import MissingDependencyError

#: extra that provides each optional module
_EXTRAS = {
    "torch": "torch",
    "matplotlib": "plot",
    "sklearn": "zoo",
    "distributed": "dask",
    "dask": "dask",
    "h5py": "keras",
    "onnx": "onnx",
    "gguf": "gguf",
    "transformers": "transformers",
    "lightning.pytorch": "lightning",
    "tensorboard": "tensorboard",
    "pyarrow": "parquet",
    "pyarrow.parquet": "parquet",
}
#: exact pins where an unpinned install would pull something unwanted
_PINS = {
    "torch": "torch==2.13.0",
    "sklearn": "scikit-learn",
    "lightning.pytorch": "lightning",
    "pyarrow.parquet": "pyarrow",
}


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = _EXTRAS.get(module, module)
        pin = _PINS.get(module, module)
        raise MissingDependencyError(
            f"{purpose} needs the optional dependency {module!r}, which is not installed; "
            f"install it with: pip install 'alphahat[{extra}]'  (or: pip install {pin})"
        ) from exc


def loaded(module: str) -> ModuleType | None:
    """The module if something already imported it, else None (never imports it)."""
    return sys.modules.get(module)
