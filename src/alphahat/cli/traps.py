"""``alphahat traps MODEL`` (one row per correlation trap) and ``alphahat randomize MODEL``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from alphahat.cli._shared import (
    EXIT_NO_LAYERS,
    SOURCE_OPTIONS,
    FormatOpt,
    ModelArg,
    OutputOpt,
    QuietOpt,
    check_output,
    display_name,
    emit,
    fail,
    note,
    option_message,
    option_values,
    output_format,
    print_table,
    require_extras,
    with_options,
)
from alphahat.errors import AlphahatError, OptionError

#: The option table's rows these commands take (see alphahat.traps.TRAP_OPTIONS).
_TRAP_FLAGS = (
    "layers", "seed", "min_evals", "max_evals", "conv_scale", "max_matrix_elements",
    "max_memory", "split_fused", "fused_heads",
)  # fmt: skip
_SHOWN = ["layer_id", "name", "replica", "mode", "lambda", "edge_ratio", "top5_mass", "rows"]


def _source_values(values: dict[str, Any]) -> dict[str, Any]:
    if values.get("base") is not None:
        fail("--base is not taken by this command (analyse the delta with analyze --base)")
    values.pop("base", None)
    return values


@with_options(*_TRAP_FLAGS, *SOURCE_OPTIONS)
def traps(
    model: ModelArg,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html", metavar="FILE", help="Also write an HTML page with a heat map per trap."
        ),
    ] = None,
    remove: Annotated[
        str | None,
        typer.Option(
            "--remove",
            metavar="METHOD",
            help="Write the model without its traps (noise or mean) to --cleaned FILE.",
        ),
    ] = None,
    cleaned: Annotated[
        Path | None,
        typer.Option("--cleaned", metavar="FILE", help="Where --remove writes the safetensors."),
    ] = None,
    quiet: QuietOpt = False,
    **options: Any,
) -> None:
    """One row per correlation trap: where it sits in W and how concentrated it is."""
    from alphahat.traps import REMOVAL_METHODS, analyze_traps, remove_traps

    chosen = output_format(fmt, output)
    if (remove is None) != (cleaned is None):
        fail("--remove METHOD and --cleaned FILE go together")
    if remove is not None and remove not in REMOVAL_METHODS:
        fail(f"--remove must be one of {', '.join(REMOVAL_METHODS)}; got {remove!r}")
    for flag, path in (("-o", output), ("--html", html), ("--cleaned", cleaned)):
        check_output(path, flag)
    if html is not None:
        require_extras(("matplotlib", "the heat maps of --html"))  # before any analysis
    values = _source_values(option_values(options))
    try:
        result = analyze_traps(model, **values)
        if remove is not None and cleaned is not None:
            unsafe = bool(values.get("unsafe_load", False))
            remove_traps(model, result, method=remove, unsafe_load=unsafe).save(cleaned)  # type: ignore[arg-type]
            note(f"wrote {cleaned}")
    except OptionError as exc:
        fail(option_message(exc))
    except (AlphahatError, ValueError, OSError) as exc:
        fail(str(exc))
    if html is not None:
        from alphahat.html_report import write_traps_html

        try:
            write_traps_html(result, html, title=f"Correlation traps — {display_name(model)}")
        except OSError as exc:
            fail(f"--html {html}: cannot write: {exc.strerror or exc}")
        note(f"wrote {html}")
    if chosen == "table" and output is not None:
        emit(result.traps.to_string(index=False) + "\n", output)
    elif chosen == "table":
        title = f"{display_name(model)}: {len(result.traps)} trap rows"
        print_table(result.traps, _SHOWN, title)
        summary = result.summary.iloc[0]
        sys.stdout.write(
            f"\n{summary['num_traps']} traps in {summary['layers_with_traps']} of "
            f"{summary['layers']} layers (seed {summary['seed']}, fingerprint "
            f"{str(summary['fingerprint'])[:16]})\n"
        )
    elif chosen == "csv":
        emit(result.to_csv(), output)
    else:
        emit(result.to_json(), output)
    if summary_layers(result) == 0:
        raise typer.Exit(EXIT_NO_LAYERS)


def summary_layers(result: Any) -> int:
    """Layers analysed (0 → exit 1)."""
    return int(result.summary.iloc[0]["layers"])


@with_options(*_TRAP_FLAGS, *SOURCE_OPTIONS)
def randomize(
    model: ModelArg,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", metavar="FILE", help="The shuffled weights (safetensors)."),
    ],
    quiet: QuietOpt = False,
    **options: Any,
) -> None:
    """Write the element-shuffled weights that analyze --randomize uses, as safetensors."""
    from alphahat.traps import randomize_model

    check_output(output)
    values = _source_values(option_values(options))
    try:
        shuffled = randomize_model(model, **values)
        shuffled.save(output)
    except OptionError as exc:
        fail(option_message(exc))
    except (AlphahatError, ValueError, OSError) as exc:
        fail(str(exc))
    note(f"wrote {output}: {len(shuffled.weights)} layers, fingerprint {shuffled.fingerprint}")
    if not shuffled.weights:
        raise typer.Exit(EXIT_NO_LAYERS)
