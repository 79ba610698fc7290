"""A progress bar on stderr (rich): items done/total, elapsed, ETA, rate and the last item."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from alphahat.errors import printable

#: Called with (items done, total, name of the item just finished).
ProgressCallback = Callable[[int, int, str], None]


@contextlib.contextmanager
def progress_bar(
    enabled: bool,
    total: int | None,
    done: int = 0,
    *,
    description: str = "analysing",
    unit: str = "layers",
) -> Iterator[ProgressCallback | None]:
    """A rich bar on stderr while the block runs (None when not ``enabled``).

    The yielded function takes (done, total, last item's name); the bar disappears at the end.
    """
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:.2f} {unit}/s" if speed else f"… {unit}/s", style="cyan")

    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        RateColumn(),
        TextColumn("{task.fields[item]}", style="dim", markup=False),  # names are not markup
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total, completed=done, item="")

        def update(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total, item=printable(name))

        yield update


__all__ = ["ProgressCallback", "progress_bar"]
