"""``alphahat zoo build DIR``: train a small, deterministic model zoo to compare on."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from alphahat.cli import _fail, _note
from alphahat.errors import AlphahatError

if TYPE_CHECKING:
    from alphahat.zoo import TrainedMLP, ZooModel


class ZooSizeOption(StrEnum):
    """Sizes of the zoo."""

    full = "full"
    tiny = "tiny"


def register(app: typer.Typer) -> None:
    """Add the ``alphahat zoo`` command group."""
    zoo_app = typer.Typer(
        name="zoo",
        help="A model zoo to try compare on: MLPs trained on scikit-learn's digits.",
        no_args_is_help=True,
    )

    @zoo_app.command("build")
    def build(
        directory: Annotated[
            Path, typer.Argument(metavar="DIR", help="Folder to write the zoo into.")
        ],
        size: Annotated[
            ZooSizeOption,
            typer.Option(
                "--size",
                help="full: 4 depth groups × 12 models (a few minutes on 2 cores); tiny: 2 × 4 "
                "small models (seconds, for tests).",
            ),
        ] = ZooSizeOption.full,
        jobs: Annotated[
            int, typer.Option("--jobs", "-j", min=1, help="Models trained at once (processes).")
        ] = 1,
        force: Annotated[
            bool, typer.Option("--force", help="Replace a zoo already in DIR.")
        ] = False,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
    ) -> None:
        """Train the zoo (deterministic, seeded, CPU) and write safetensors + manifest.csv."""
        from alphahat.zoo import build_zoo

        start = time.monotonic()

        def progress(done: int, total: int, model: ZooModel, trained: TrainedMLP) -> None:
            if not quiet:
                _note(
                    f"[{done}/{total}] {model.relative_path}: test accuracy "
                    f"{100 * trained.test_accuracy:.2f}%, train {100 * trained.train_accuracy:.2f}%"
                    f" ({time.monotonic() - start:.0f} s)"
                )

        try:
            manifest = build_zoo(
                directory, size=size.value, jobs=jobs, overwrite=force, progress=progress
            )
        except (AlphahatError, ValueError) as exc:
            _fail(str(exc))
        except OSError as exc:
            _fail(f"{directory}: cannot write the zoo: {exc.strerror or exc}")
        if not quiet:
            _note(f"wrote {manifest}; compare with: alphahat compare {manifest}")

    app.add_typer(zoo_app)
