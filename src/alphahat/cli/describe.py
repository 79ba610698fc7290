"""``alphahat describe MODEL``: every tensor, with what ``analyze`` would do with it and why."""

from __future__ import annotations

import json
import sys
from typing import Any

from alphahat.cli._shared import (
    PLANNING_OPTIONS,
    SOURCE_OPTIONS,
    FormatOpt,
    ModelArg,
    OutputOpt,
    check_output,
    display_name,
    emit,
    fail,
    option_message,
    option_values,
    output_format,
    print_fitted_table,
    print_table,
    terminal_width,
    with_options,
)
from alphahat.errors import AlphahatError, OptionError


@with_options(*PLANNING_OPTIONS, *SOURCE_OPTIONS)
def describe(
    model: ModelArg, fmt: FormatOpt = None, output: OutputOpt = None, **options: Any
) -> None:
    """List every tensor with what analyze would do with it (analysed/skipped and why)."""
    from alphahat.analysis import describe as run
    from alphahat.report import COVERAGE_COLUMNS

    chosen = output_format(fmt, output)
    check_output(output)
    try:
        frame = run(model, **option_values(options))
    except OptionError as exc:
        fail(option_message(exc))
    except (AlphahatError, ValueError) as exc:
        fail(str(exc))
    counts = frame["status"].value_counts().to_dict()
    line = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("analysed", "skipped", "failed"))
    if chosen == "table":
        if output is not None:
            emit(frame.to_string(index=False) + "\n", output)
        else:
            title = f"{display_name(model)}: {len(frame)} tensors"
            if sys.stdout.isatty():  # what fits the terminal; -f csv has every column
                from alphahat.report import records

                columns = ("layer_id", "name", "kind", "shape", "dtype", "status", "reason")
                print_fitted_table(records(frame), columns, title, terminal_width())
            else:
                print_table(frame, COVERAGE_COLUMNS, title)
            sys.stdout.write(f"\n{len(frame)} tensors: {line}\n")
    elif chosen == "csv":
        emit(frame.to_csv(index=False, lineterminator="\n"), output)
    else:
        from alphahat.report import records

        emit(json.dumps({"tensors": records(frame)}, indent=2, allow_nan=False) + "\n", output)
