"""CLI commands beyond ``analyze`` and ``describe``, one module per command group.

Each module defines ``register(app: typer.Typer) -> None`` and imports heavy dependencies
(matplotlib, dask, …) inside the command functions only, so ``alphahat --help`` stays fast.
:mod:`alphahat.cli` calls :func:`register_all`.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Modules of this package that add commands (in the order they appear in ``--help``).
COMMAND_MODULES: tuple[str, ...] = ("plot", "report", "compare", "zoo")


def register_all(app: Any) -> None:
    """Add every command module's commands to the typer ``app``."""
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(app)
