"""``alphahat allocate MODEL``: per-layer settings from α (pruning ratios, lr/wd factors, experts).

``-o ratios.json`` (or ``-f json``) writes a plain JSON object, layer name → value (the
tensor names of the model file; layers without a value are left out), that a pruning or
training script reads with ``json.load``; ``-f csv`` the whole table (α, parameter count,
value, note). MODEL is a model (analysed first, with the analysis flags) or a report written by
``alphahat analyze -o report.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from alphahat.cli._shared import (
    ANALYSIS_OPTIONS,
    EXECUTION_OPTIONS,
    EXIT_NO_LAYERS,
    SOURCE_OPTIONS,
    FormatOpt,
    ModelArg,
    OutputOpt,
    QuietOpt,
    check_output,
    checked_value,
    emit,
    fail,
    note,
    option_message,
    option_values,
    output_format,
    print_table,
    with_options,
)
from alphahat.errors import AlphahatError, OptionError

MethodOpt = Annotated[
    str,
    typer.Option(
        "--method",
        "-m",
        metavar="METHOD",
        help="alphapruning (sparsity ratios), uniform (the same ratio everywhere), tempbalance "
        "(learning-rate factors), alphadecay (weight-decay factors), alphalora (LoRA experts).",
    ),
]
TargetOpt = Annotated[
    str, typer.Option("--target", metavar="S", help="Sparsity: the parameter-weighted mean.")
]
EpsilonOpt = Annotated[
    str, typer.Option("--epsilon", metavar="EPS", help="alphapruning: the range half-width.")
]
RangeOpt = Annotated[
    str,
    typer.Option(
        "--range-mode",
        metavar="MODE",
        help="alphapruning: relative (S·[1−ε, 1+ε], the paper's code) or absolute ([S−ε, S+ε]).",
    ),
]
LowOpt = Annotated[
    str | None,
    typer.Option(
        "--low", metavar="F", help="tempbalance/alphadecay: the factor of the smallest α "
        "(default 0.5 / 0.666).", show_default=False,
    ),
]  # fmt: skip
HighOpt = Annotated[
    str | None,
    typer.Option(
        "--high", metavar="F", help="tempbalance/alphadecay: the factor of the largest α "
        "(default 1.5 / 3).", show_default=False,
    ),
]  # fmt: skip
TotalOpt = Annotated[
    str | None,
    typer.Option("--total", metavar="T", help="alphalora: experts in all.", show_default=False),
]
BetaOpt = Annotated[str, typer.Option("--beta", metavar="B", help="alphalora: the exponent.")]
GroupsOpt = Annotated[
    str | None,
    typer.Option(
        "--groups",
        metavar="REGEX",
        help=r"Map each layer from its group's mean α; the regex's first group names it, "
        r"e.g. 'layers?\.(\d+)\.' for transformer blocks (alphalora: one row per group).",
        show_default=False,
    ),
]
UndefinedOpt = Annotated[
    str,
    typer.Option(
        "--undefined",
        metavar="WHAT",
        help="Layers with no α (failed): neutral (the target ratio, factor 1) or exclude.",
    ),
]


def _parameters(method: str, given: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``method``'s function: only its own, only those given."""
    own = {
        "alphapruning": ("target", "epsilon", "range_mode", "groups", "undefined"),
        "uniform": ("target", "groups", "undefined"),
        "tempbalance": ("low", "high", "groups", "undefined"),
        "alphadecay": ("low", "high", "groups", "undefined"),
        "alphalora": ("total", "beta", "groups"),
    }.get(method, ())
    return {k: v for k, v in given.items() if k in own and v is not None}


def _report(model: str, quiet: bool, options: dict[str, Any]) -> Any:
    path = Path(model)
    values = option_values(options)
    if path.suffix.lower() == ".json" and path.is_file():
        from alphahat.pipeline.options import OPTION_TABLE
        from alphahat.report import Report

        given = [k for k, v in values.items() if v != OPTION_TABLE[k].default]
        if given and not quiet:
            note("a saved report is used as it is: the analysis flags are ignored")
        try:
            return Report.from_json(path)
        except (OSError, ValueError) as exc:
            fail(f"{model}: not a report written by 'alphahat analyze': {exc}")
    from alphahat.analysis import analyze

    return analyze(model, progress=not quiet, **values)


def _check_parameters(method: str, parameters: dict[str, Any]) -> None:
    """Check the method's parameters before any analysis, by the method itself.

    It runs on a one-layer table, so a wrong value fails before the model is analysed, with
    the message it would give after.
    """
    import pandas as pd

    from alphahat.allocation import allocate as run

    probe = pd.DataFrame({"name": ["probe"], "alpha": [3.0], "n_params": [1]})
    run(probe, method, **parameters)


@with_options(*ANALYSIS_OPTIONS, *(o for o in EXECUTION_OPTIONS if o != "resume"), *SOURCE_OPTIONS)
def allocate(
    model: ModelArg,
    method: MethodOpt = "alphapruning",
    target: TargetOpt = "0.7",
    epsilon: EpsilonOpt = "0.3",
    range_mode: RangeOpt = "relative",
    low: LowOpt = None,
    high: HighOpt = None,
    total: TotalOpt = None,
    beta: BetaOpt = "2.5",
    groups: GroupsOpt = None,
    undefined: UndefinedOpt = "neutral",
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    quiet: QuietOpt = False,
    **options: Any,
) -> None:
    """Per-layer settings from α: sparsity ratios, lr or weight-decay factors, LoRA experts."""
    from alphahat.allocation import METHODS, allocate as run, as_mapping, value_column  # noqa: I001
    from alphahat.pipeline.options import Integer, Number

    chosen = output_format(fmt, output)
    if method not in METHODS:
        fail(f"--method must be one of {', '.join(METHODS)}; got {method!r}")
    if method == "alphalora" and total is None:
        fail("--method alphalora needs --total (the number of experts to share out)")
    numbers = {"target": target, "epsilon": epsilon, "low": low, "high": high, "beta": beta}
    given: dict[str, Any] = {
        name: None if text is None else checked_value(f"--{name}", text, Number())
        for name, text in numbers.items()
    }
    given["total"] = None if total is None else checked_value("--total", total, Integer())
    given.update({"range_mode": range_mode, "groups": groups, "undefined": undefined})
    check_output(output)
    parameters = _parameters(method, given)
    try:
        _check_parameters(method, parameters)  # before any analysis
        report = _report(model, quiet, options)
        frame = run(report, method, **parameters)
    except OptionError as exc:
        name = exc.option.replace("_", "-")
        fail(exc.named(f"--{name}") if exc.option in given else option_message(exc))
    except (AlphahatError, ValueError) as exc:
        fail(str(exc))
    if frame.empty:
        fail("no layer to allocate (see 'alphahat describe' for what was analysed)", EXIT_NO_LAYERS)
    column = value_column(frame)
    if chosen == "json":
        emit(json.dumps(as_mapping(frame), indent=2, allow_nan=False) + "\n", output)
    elif chosen == "csv":
        emit(frame.to_csv(index=False, lineterminator="\n"), output)
    elif output is not None:
        emit(frame.to_string(index=False) + "\n", output)
    else:
        columns = [c for c in frame.columns if c != "note"] + ["note"]
        print_table(frame, columns, f"{model}: {method} ({column})")
    left_out = int(frame[column].isna().sum())
    if left_out and not quiet:
        note(f"{left_out} layer(s) have no value (α undefined); see the note column (-f csv)")
