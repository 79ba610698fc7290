"""Command line: a thin typer layer; every command is one public API call.

Data goes to stdout (``--format table|csv|json``) or to ``-o FILE``; progress, notes and
errors go to stderr. Exit codes: 0 success, 1 no layer could be analysed, 2 bad usage (bad
option, path or file).
"""

from __future__ import annotations

import json
import math
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from alphahat._version import __version__
from alphahat.errors import AlphahatError

app = typer.Typer(
    name="alphahat",
    help="How well is a neural network trained? Ask its weights (HT-SR metrics, no data needed).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_OK, EXIT_NO_LAYERS, EXIT_USAGE = 0, 1, 2


class OutputFormat(StrEnum):
    """Output formats."""

    table = "table"
    csv = "csv"
    json = "json"


class ConvScaleOption(StrEnum):
    """Conv slice scale conventions."""

    reference = "reference"
    papers = "papers"
    none = "none"


class FitOption(StrEnum):
    """Tail fits (the reference tool's ``fit``)."""

    PL = "PL"
    TPL = "TPL"
    E_TPL = "E_TPL"


class FixFingersOption(StrEnum):
    """The reference tool's ``fix_fingers`` policies."""

    xmin_peak = "xmin_peak"
    clip_xmax = "clip_xmax"


def _printable(text: str) -> str:
    """``text`` on one line with control characters escaped (names in files are untrusted)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    typer.echo(f"alphahat: error: {_printable(message)}", err=True)
    raise typer.Exit(code)


def _note(message: str) -> None:
    typer.echo(f"alphahat: {_printable(message)}", err=True)


def _layer_specs(values: list[str] | None) -> list[str]:
    return [part for value in values or [] for part in value.split(",") if part.strip()]


def _resolve_format(fmt: OutputFormat | None, output: Path | None) -> OutputFormat:
    if fmt is not None:
        return fmt
    if output is not None and output.suffix.lower() in (".csv", ".json"):
        return OutputFormat(output.suffix.lower().lstrip("."))
    return OutputFormat.table


def _cell(value: Any) -> str:
    import pandas as pd

    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        small = value != 0 and abs(value) < 1e-3
        return f"{value:.4g}" if abs(value) >= 1e5 or small else f"{value:.3f}"
    from rich.markup import escape

    return escape(_printable(str(value)))  # a tensor named "[/x]" is text, not rich markup


def _print_table(frame: Any, columns: tuple[str, ...], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 250, soft_wrap=False)
    from rich.markup import escape

    title = escape(_printable(title))
    table = Table(title=title, title_justify="left", header_style="bold", show_lines=False)
    for col in columns:
        numeric = frame[col].dtype.kind in "iuf" if col in frame.columns else False
        table.add_column(col, justify="right" if numeric else "left", overflow="fold")
    for row in frame[list(columns)].itertuples(index=False, name=None):
        table.add_row(*(_cell(v) for v in row))
    console.print(table)


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    from alphahat.report.io import write_atomic

    try:
        write_atomic(output, text)
    except OSError as exc:
        _fail(f"{output}: cannot write: {exc.strerror or exc}")
    _note(f"wrote {output}")


ModelArg = Annotated[
    str,
    typer.Argument(
        metavar="MODEL",
        help="A .safetensors file, a sharded Hugging Face folder, a .pt/.bin/.pth state dict, "
        "a .npy/.npz, .onnx, .gguf, .keras or .h5 file, or a PEFT LoRA adapter folder.",
        show_default=False,
    ),
]
FormatOpt = Annotated[
    OutputFormat | None,
    typer.Option(
        "--format", "-f", help="table (default), csv or json; -o FILE.csv/.json implies it."
    ),
]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write the data to FILE (atomically).")
]
LayersOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--layers",
        "-l",
        help="Only these layers: ids, exact names, glob patterns or kinds (linear, embedding, "
        "conv1d, conv2d, conv3d); repeat or comma-separate; different types are ANDed.",
    ),
]
MinEvalsOpt = Annotated[
    int, typer.Option("--min-evals", min=0, help="Skip layers with fewer eigenvalues.")
]
MaxEvalsOpt = Annotated[
    int | None, typer.Option("--max-evals", min=1, help="Skip layers with more eigenvalues.")
]
ConvScaleOpt = Annotated[
    ConvScaleOption,
    typer.Option(
        "--conv-scale",
        help="reference: conv slices × 1/√2 as the reference tool does (k/√2 per slice with "
        "--no-pool, as it does there); papers: × k/√2 for a k×k kernel; none: as stored.",
    ),
]
MaxElementsOpt = Annotated[
    int | None,
    typer.Option(
        "--max-matrix-elements",
        min=1,
        help="Skip (with the reason, before reading) layers whose matrices have more elements.",
    ),
]
MaxMemoryOpt = Annotated[
    str | None,
    typer.Option(
        "--max-memory",
        metavar="SIZE",
        help="Skip (with the reason, before reading) layers whose estimated peak memory is "
        "larger: e.g. 8GiB, 500MB, 1000000.",
    ),
]
BaseOpt = Annotated[
    str | None,
    typer.Option(
        "--base",
        help="A base checkpoint: analyse W − W_base (tensors matched by full name), or for a "
        "LoRA adapter folder add the merged W + ΔW and base W views.",
        show_default=False,
    ),
]
SplitFusedOpt = Annotated[
    bool,
    typer.Option(
        "--split-fused",
        help="Split fused q/k/v projections (in_proj_weight, c_attn, qkv_proj, …) into q, k, v "
        "and PyTorch LSTM/GRU weights into their gates.",
    ),
]
FusedHeadsOpt = Annotated[
    int | None,
    typer.Option(
        "--fused-heads",
        min=1,
        help="Attention heads of per-head interleaved query_key_value weights (--split-fused; "
        "default: the checkpoint's config.json).",
    ),
]
UnsafeOpt = Annotated[
    bool,
    typer.Option(
        "--unsafe-load",
        help="Allow a full unpickle of .pt/.bin files (runs code from the file; trusted only).",
    ),
]


class BackendOption(StrEnum):
    """Spectrum backends (see alphahat.spectrum.backends)."""

    auto = "auto"
    svd = "svd"
    gram = "gram"
    float32 = "float32"
    torch = "torch"


BackendOpt = Annotated[
    BackendOption,
    typer.Option(
        "--backend",
        help="Eigenvalues by: auto (float64 Gram matrix with an accuracy guard, SVD where it "
        "fails; torch with --device), svd (LAPACK float64 SVD, the reference), gram, float32, "
        "torch.",
    ),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option("--device", help="torch device for the spectra: cpu, cuda, cuda:1, mps."),
]
WorkersOpt = Annotated[
    int,
    typer.Option(
        "--workers", "-j", min=1, help="Worker processes (BLAS threads split among them)."
    ),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Run layers on a Dask cluster: tcp://HOST:PORT (workers must see MODEL's path).",
    ),
]
ResumeOpt = Annotated[
    bool | None,
    typer.Option(
        "--resume/--no-resume",
        help="With -o FILE, finished layers are kept in FILE.partial.jsonl: continue it "
        "(default: when it is from the same model and options) or start over.",
        show_default=False,
    ),
]
BlasThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--blas-threads",
        min=1,
        help="BLAS threads per layer (default: all cores, split among --workers). Equal "
        "values give bit-identical results whatever --workers is.",
    ),
]
LayerTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--layer-timeout",
        min=0.001,
        help="Seconds a layer may take; slower ones are stopped and reported failed.",
    ),
]


FitOpt = Annotated[
    FitOption,
    typer.Option(
        "--fit",
        help="PL: power law; TPL: truncated power law above the power law's x_min (adds "
        "Lambda); E_TPL: the same above the ESD peak.",
    ),
]
FixFingersOpt = Annotated[
    FixFingersOption | None,
    typer.Option(
        "--fix-fingers",
        help="xmin_peak: x_min in [0.95, 1.5]× the ESD peak; clip_xmax: refit without up to "
        "10 top eigenvalues that bend α (adds num_fingers, raw_alpha).",
        show_default=False,
    ),
]
MpFitOpt = Annotated[
    bool,
    typer.Option(
        "--mp-fit",
        help="Marchenko–Pastur fit of the bulk (sigma_mp, bulk_min/max, num_spikes, mp_softrank).",
    ),
]
RandomizeOpt = Annotated[
    bool,
    typer.Option(
        "--randomize",
        help="Compare with the element-shuffled W (rand_* columns, correlation traps).",
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", min=0, help="Seed of --randomize.")]
DetxOpt = Annotated[
    bool, typer.Option("--detx", help="detX condition columns (detX_num, detX_val, ERG_gap).")
]
VectorsOpt = Annotated[
    bool,
    typer.Option("--vectors", help="Eigenvector localization of bulk vs tail (eigh of WᵀW)."),
]
PoolOpt = Annotated[
    bool,
    typer.Option(
        "--pool/--no-pool",
        help="Pool a conv layer's kernel slices into one ESD, or one row per slice "
        "(name [slice i,j], slice_id).",
    ),
]
FftOpt = Annotated[
    bool,
    typer.Option(
        "--fft",
        help="Conv layers: the spectrum of the circular convolution operator on an "
        "--fft-size input (Sedghi et al. 2018) instead of the kernel slices.",
    ),
]
FftSizeOpt = Annotated[
    int, typer.Option("--fft-size", min=1, help="Input side n of --fft (n×n for conv2d).")
]


@app.command()
def analyze(
    model: ModelArg,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    layers: LayersOpt = None,
    min_evals: MinEvalsOpt = 8,
    max_evals: MaxEvalsOpt = None,
    exclude_embeddings: Annotated[
        bool,
        typer.Option("--exclude-embeddings", help="Leave embedding layers out of the summary."),
    ] = False,
    conv_scale: ConvScaleOpt = ConvScaleOption.reference,
    max_matrix_elements: MaxElementsOpt = None,
    max_memory: MaxMemoryOpt = None,
    base: BaseOpt = None,
    split_fused: SplitFusedOpt = False,
    fused_heads: FusedHeadsOpt = None,
    unsafe_load: UnsafeOpt = False,
    backend: BackendOpt = BackendOption.auto,
    device: DeviceOpt = None,
    workers: WorkersOpt = 1,
    scheduler: SchedulerOpt = None,
    layer_timeout: LayerTimeoutOpt = None,
    resume: ResumeOpt = None,
    blas_threads: BlasThreadsOpt = None,
    fit: FitOpt = FitOption.PL,
    fix_fingers: FixFingersOpt = None,
    mp_fit: MpFitOpt = False,
    randomize: RandomizeOpt = False,
    seed: SeedOpt = 0,
    detx: DetxOpt = False,
    vectors: VectorsOpt = False,
    pool: PoolOpt = True,
    fft: FftOpt = False,
    fft_size: FftSizeOpt = 32,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar or notes on stderr.")
    ] = False,
) -> None:
    """Analyse every weight matrix: per-layer table (α, α̂, D, norms…) and the model summary."""
    from alphahat.analysis import analyze as run

    output_format = _resolve_format(fmt, output)
    if resume and output is None:
        _fail("--resume needs -o FILE (the finished layers are kept next to it)")
    journal = _journal_path(output)
    try:
        report = run(
            model,
            layers=_layer_specs(layers),
            min_evals=min_evals,
            max_evals=max_evals,
            conv_scale=conv_scale.value,
            include_embeddings=not exclude_embeddings,
            max_matrix_elements=max_matrix_elements,
            max_memory=max_memory,
            base=base,
            split_fused=split_fused,
            fused_heads=fused_heads,
            unsafe_load=unsafe_load,
            progress=not quiet,
            backend=backend.value,
            device=device,
            workers=workers,
            scheduler=scheduler,
            layer_timeout=layer_timeout,
            journal=journal,
            resume=resume,
            blas_threads=blas_threads,
            fit=fit.value,
            fix_fingers=None if fix_fingers is None else fix_fingers.value,
            mp_fit=mp_fit,
            randomize=randomize,
            seed=seed,
            detX=detx,
            vectors=vectors,
            pool=pool,
            fft=fft,
            fft_size=fft_size,
        )
    except (AlphahatError, ValueError) as exc:
        _fail(str(exc))
    if not quiet:
        _run_notes(report.run_info)
    summary = report.summary()
    if output_format is OutputFormat.table:
        if output is not None:
            _emit(report.details.to_string(index=False) + "\n\n" + summary.to_text() + "\n", output)
        else:
            from alphahat.report import TABLE_COLUMNS

            _print_table(report.details, TABLE_COLUMNS, f"alphahat {__version__} — {model}")
            sys.stdout.write("\n" + summary.to_text() + "\n")
    else:
        text = report.to_csv() if output_format is OutputFormat.csv else report.to_json()
        _emit(text, output)
        if output is not None and not quiet:
            typer.echo(summary.to_text(), err=True)
    if journal is not None:
        journal.unlink(missing_ok=True)  # its layers are in the output now
    failed = report.details[report.details["status"] == "failed"]
    if not quiet:
        for name, reason in zip(failed["name"], failed["reason"], strict=True):
            _note(f"layer {name} failed: {reason}")
    if summary.model.num_layers == 0:
        _fail(
            "no layer could be analysed (see the reasons above, or run 'alphahat describe')",
            EXIT_NO_LAYERS,
        )


def _journal_path(output: Path | None) -> Path | None:
    """Where ``analyze -o FILE`` keeps its finished layers until FILE is written."""
    if output is None:
        return None
    from alphahat.report.journal import JOURNAL_SUFFIX

    return output.with_name(output.name + JOURNAL_SUFFIX)


def _run_notes(info: dict[str, Any]) -> None:
    if info.get("journal_restarted"):
        _note(f"started {info['journal']} over: {info['journal_restarted']}")
    if info.get("resumed_layers"):
        _note(f"resumed: {info['resumed_layers']} layer(s) already done in {info['journal']}")


@app.command()
def describe(
    model: ModelArg,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    layers: LayersOpt = None,
    min_evals: MinEvalsOpt = 8,
    max_evals: MaxEvalsOpt = None,
    max_matrix_elements: MaxElementsOpt = None,
    max_memory: MaxMemoryOpt = None,
    base: BaseOpt = None,
    split_fused: SplitFusedOpt = False,
    fused_heads: FusedHeadsOpt = None,
    conv_scale: ConvScaleOpt = ConvScaleOption.reference,
    pool: PoolOpt = True,
    unsafe_load: UnsafeOpt = False,
) -> None:
    """List every tensor with what analyze would do with it (analysed/skipped and why)."""
    from alphahat.analysis import describe as run
    from alphahat.report import COVERAGE_COLUMNS

    output_format = _resolve_format(fmt, output)
    try:
        frame = run(
            model,
            layers=_layer_specs(layers),
            min_evals=min_evals,
            max_evals=max_evals,
            max_matrix_elements=max_matrix_elements,
            max_memory=max_memory,
            base=base,
            split_fused=split_fused,
            fused_heads=fused_heads,
            conv_scale=conv_scale.value,
            pool=pool,
            unsafe_load=unsafe_load,
        )
    except (AlphahatError, ValueError) as exc:
        _fail(str(exc))
    counts = frame["status"].value_counts().to_dict()
    line = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("analysed", "skipped", "failed"))
    if output_format is OutputFormat.table:
        if output is not None:
            _emit(frame.to_string(index=False) + "\n", output)
        else:
            _print_table(frame, COVERAGE_COLUMNS, f"{model}: {len(frame)} tensors")
            sys.stdout.write(f"\n{len(frame)} tensors: {line}\n")
    elif output_format is OutputFormat.csv:
        _emit(frame.to_csv(index=False, lineterminator="\n"), output)
    else:
        from alphahat.report import records

        _emit(json.dumps({"tensors": records(frame)}, indent=2, allow_nan=False) + "\n", output)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"alphahat {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """How well is a neural network trained? Ask its weights."""


if __name__ != "__main__":  # as __main__ (python -m alphahat.cli), main() imports the module
    from alphahat.commands import register_all  # noqa: E402  (commands need `app` defined)

    register_all(app)


def main() -> None:
    """Console-script entry point: a one-line message instead of a traceback on a bug.

    Set ``ALPHAHAT_DEBUG=1`` to see the traceback.
    """
    import os

    try:
        app(standalone_mode=True)
    except Exception as exc:  # a bug of ours: say so in one line, not a traceback
        if os.environ.get("ALPHAHAT_DEBUG"):
            raise
        typer.echo(
            f"alphahat: internal error: {type(exc).__name__}: {exc} "
            "(please report it; ALPHAHAT_DEBUG=1 shows the traceback)",
            err=True,
        )
        sys.exit(EXIT_NO_LAYERS)


if __name__ == "__main__":  # pragma: no cover
    # the command modules import `alphahat.cli`; run that module's app, not this copy's
    from alphahat.cli import main as _main

    _main()
