"""``alphahat zoo build DIR``: train a small, deterministic model zoo to compare on."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from alphahat.cli._shared import Command, checked_value, fail, note
from alphahat.errors import AlphahatError

if TYPE_CHECKING:
    from alphahat.zoo import TrainedMLP, ZooModel, ZooSize


def zoo_app() -> typer.Typer:
    """The ``alphahat zoo`` command group."""
    group = typer.Typer(
        name="zoo",
        help="A model zoo to try compare on: MLPs trained on scikit-learn's digits.",
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,
    )

    @group.command("build", cls=Command)
    def build(
        directory: Annotated[
            Path, typer.Argument(metavar="DIR", help="Folder to write the zoo into.")
        ],
        size: Annotated[
            str,
            typer.Option(
                "--size",
                metavar="full|tiny",
                help="full: 4 depth groups × 12 models (a few minutes on 2 cores); tiny: 2 × 4 "
                "small models (seconds, for tests).",
            ),
        ] = "full",
        jobs: Annotated[
            str,
            typer.Option("--jobs", "-j", metavar="N", help="Models trained at once (processes)."),
        ] = "1",
        force: Annotated[
            bool, typer.Option("--force", help="Replace a zoo already in DIR.")
        ] = False,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
    ) -> None:
        """Train the zoo (deterministic, seeded, CPU) and write safetensors + manifest.csv."""
        from alphahat.pipeline.options import Integer
        from alphahat.zoo import build_zoo

        processes = checked_value("--jobs", jobs, Integer(minimum=1))
        start = time.monotonic()

        def progress(done: int, total: int, model: ZooModel, trained: TrainedMLP) -> None:
            if not quiet:
                note(
                    f"[{done}/{total}] {model.relative_path}: test accuracy "
                    f"{100 * trained.test_accuracy:.2f}%, train {100 * trained.train_accuracy:.2f}%"
                    f" ({time.monotonic() - start:.0f} s)"
                )

        try:
            manifest = build_zoo(
                directory,
                size=cast("ZooSize", size),
                jobs=processes,
                overwrite=force,
                progress=progress,
            )
        except (AlphahatError, ValueError) as exc:
            fail(str(exc))
        except OSError as exc:
            fail(f"{directory}: cannot write the zoo: {exc.strerror or exc}")
        if not quiet:
            note(f"wrote {manifest}; compare with: alphahat compare {manifest}")

    return group
