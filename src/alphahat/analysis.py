"""Orchestration: source → layers → spectrum → fit → metrics → report, one layer at a time.

Options are validated here, once, at the boundary. Each layer is analysed in its own error
scope: a layer that cannot be read or fitted becomes a ``failed`` row with the reason, and
every other layer is still reported. No maths lives here.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from alphahat._version import __version__
from alphahat.engine.executors import (
    DaskExecutor,
    Executor,
    ProcessExecutor,
    SerialExecutor,
    TaskFailure,
)
from alphahat.engine.tasks import LoadedTensor, SourceSpec, cached
from alphahat.errors import AlphahatError, SourceError
from alphahat.fit import fit_power_law
from alphahat.layer_analysis import FitKind, FixFingers, check_options, fit_layer, option_columns
from alphahat.layers import (
    CONV_SCALES,
    ConvScale,
    LayerFilter,
    TensorPlan,
    layer_matrices,
    plan_tensors,
)
from alphahat.layers.conv import fft_plan, is_conv, slice_plans
from alphahat.layers.limits import ResourceLimits, parse_byte_size
from alphahat.layers.semantics import interleaved_qkv_heads
from alphahat.metrics import DEFAULT_EVALS_THRESHOLD, NAN, fit_sample, layer_metrics, vet_fit
from alphahat.report import Report, build_provenance, coverage_frame
from alphahat.sources import WeightSource, open_source
from alphahat.spectrum import (
    SpectrumBackend,
    check_backend,
    check_device_available,
    layer_spectrum,
    uses_torch,
)

#: Layers with fewer eigenvalues than this are skipped (the reference tool's default).
DEFAULT_MIN_EVALS = 8

LayerSpec = str | int


@dataclass(frozen=True)
class AnalysisOptions:
    """Validated options of :func:`analyze` (see there for their meaning)."""

    layers: LayerFilter = field(default_factory=LayerFilter)
    min_evals: int = DEFAULT_MIN_EVALS
    max_evals: int | None = None
    evals_threshold: float = DEFAULT_EVALS_THRESHOLD
    conv_scale: ConvScale = "reference"
    include_embeddings: bool = True
    keep_eigenvalues: bool = False
    max_matrix_elements: int | None = None
    max_memory: int | None = None
    # layer semantics (see alphahat.layers.semantics)
    split_fused: bool = False
    fused_heads: int | None = None
    # the reference tool's options (weightwatcher 0.7.7 names); see alphahat.layer_analysis
    fit: FitKind = "PL"
    fix_fingers: FixFingers | None = None
    xmin_max: float | None = None
    max_fingers: int = 10
    finger_thresh: float = 1.0
    xmax: int | None = None
    mp_fit: bool = False
    randomize: bool = False
    seed: int = 0
    detX: bool = False
    vectors: bool = False
    pool: bool = True
    fft: bool = False
    fft_size: int = 32
    # how eigenvalues are computed (see alphahat.spectrum.backends)
    backend: SpectrumBackend = "auto"
    device: str | None = None

    def __post_init__(self) -> None:
        check_options(self)
        check_backend(self.backend, self.device)
        _check_int("min_evals", self.min_evals, minimum=0)
        ResourceLimits(self.max_matrix_elements, self.max_memory)  # validates both
        if not isinstance(self.split_fused, bool):
            raise ValueError(f"split_fused must be True or False; got {self.split_fused!r}")
        if self.fused_heads is not None:
            _check_int("fused_heads", self.fused_heads, minimum=1)
        if self.max_evals is not None:
            _check_int("max_evals", self.max_evals, minimum=1)
            if self.max_evals < self.min_evals:
                raise ValueError(
                    f"max_evals must be ≥ min_evals={self.min_evals}; got {self.max_evals}"
                )
        if not isinstance(self.evals_threshold, int | float) or not (
            math.isfinite(self.evals_threshold) and self.evals_threshold >= 0
        ):
            raise ValueError(
                f"evals_threshold must be a finite number ≥ 0; got {self.evals_threshold!r}"
            )
        if self.conv_scale not in CONV_SCALES:
            raise ValueError(
                f"conv_scale must be one of {', '.join(map(repr, CONV_SCALES))}; "
                f"got {self.conv_scale!r}"
            )

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (for provenance)."""
        out = asdict(self)
        out["layers"] = {k: list(v) for k, v in out["layers"].items()}
        return out


def _check_int(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}; got {value!r}")


def make_options(
    layers: LayerFilter | Iterable[LayerSpec] | LayerSpec | None = None, **kwargs: Any
) -> AnalysisOptions:
    """:class:`AnalysisOptions` from user-level arguments (``layers`` as specs or a filter)."""
    if layers is None:
        layer_filter = LayerFilter()
    elif isinstance(layers, LayerFilter):
        layer_filter = layers
    elif isinstance(layers, str | int):
        layer_filter = LayerFilter.parse([layers])
    else:
        layer_filter = LayerFilter.parse(layers)
    if isinstance(kwargs.get("max_memory"), str):
        kwargs["max_memory"] = parse_byte_size(kwargs["max_memory"])
    return AnalysisOptions(layers=layer_filter, **kwargs)


ProgressCallback = Callable[[int, int, str], None]


def _analyse_layer(plan: TensorPlan, options: AnalysisOptions) -> tuple[dict[str, Any], Any]:
    """Metric columns of one layer and its eigenvalues (None when it failed before them)."""
    values = plan.ref.load()
    if options.fft and is_conv(plan):  # the conv operator's spectrum (spectrum.conv_fft)
        from alphahat.spectrum.conv_fft import conv_operator_spectrum

        matrices: list[Any] = []
        spectrum = conv_operator_spectrum(values, options.fft_size, plan.scale)
    else:
        matrices = layer_matrices(values, plan)
        spectrum = layer_spectrum(
            matrices, plan.scale, backend=options.backend, device=options.device
        )
    evals = spectrum.eigenvalues
    threshold = options.evals_threshold
    fit, fit_columns = fit_layer(fit_sample(evals, spectrum.N, threshold), options)
    if not spectrum.resolves(threshold, fit.xmin if fit.fitted else None):  # the Gram guard
        spectrum = replace(layer_spectrum(matrices, plan.scale), method="svd (gram guard)")
        evals = spectrum.eigenvalues
        fit, fit_columns = fit_layer(fit_sample(evals, spectrum.N, threshold), options)
    fit = vet_fit(fit, evals, spectrum.N, threshold)  # no α made of rounding noise
    row = layer_metrics(evals, spectrum.N, fit)
    row.update(fit_columns)
    row["spectrum_method"] = spectrum.method
    row.update(
        option_columns(
            name=plan.ref.name,
            evals=evals,
            N=spectrum.N,
            M=spectrum.M,
            matrices=matrices,
            values=values,
            scale=plan.scale,
            num_pl_spikes=int(np.count_nonzero(evals >= fit.xmin)) if fit.fitted else None,
            options=options,
        )
    )
    del values, matrices
    if fit.fitted:
        row["status"], row["reason"] = "fitted", ""
    else:
        row["status"], row["reason"] = "failed", f"power-law fit: {fit.status}: {fit.reason}"
    return row, evals


def _failed_row(reason: str) -> dict[str, Any]:
    """Metric columns of a layer that failed before it had a spectrum: all missing."""
    metrics: dict[str, Any] = layer_metrics(np.empty(0), 1, fit_power_law([]))
    metrics.update({"num_pl_spikes": None, "matrix_rank": None})
    metrics.update({"status": "failed", "reason": reason})
    return metrics


def _plan(source: WeightSource, options: AnalysisOptions) -> list[TensorPlan]:
    fused_heads = options.fused_heads
    if options.split_fused and fused_heads is None:  # the checkpoint's config.json may say
        fused_heads = interleaved_qkv_heads(source.model_config)
    plans = list(
        plan_tensors(
            source.tensors(),
            layer_filter=options.layers,
            min_evals=options.min_evals,
            max_evals=options.max_evals,
            conv_scale=options.conv_scale,
            split_fused=options.split_fused,
            fused_heads=fused_heads,
            limits=ResourceLimits(options.max_matrix_elements, options.max_memory),
            model_config=source.model_config,
        )
    )
    if not options.pool:  # one plan per conv kernel slice (layers.conv)
        plans = [
            part
            for plan in plans
            for part in slice_plans(plan, options.min_evals, options.conv_scale)
        ]
    if options.fft:
        plans = [fft_plan(plan, options.fft_size) for plan in plans]
    return plans


def _base_row(plan: TensorPlan) -> dict[str, Any]:
    row: dict[str, Any] = {
        "layer_id": plan.layer_id,
        "name": plan.ref.name,
        "kind": plan.kind or "",
        "shape": "x".join(map(str, plan.ref.shape)),
        "dtype": plan.ref.dtype,
        "note": plan.ref.note,
        "N": plan.N,
        "M": plan.M,
        "Q": plan.N / plan.M if plan.M else NAN,
        "num_matrices": plan.num_matrices,
        "num_evals": plan.num_evals,
    }
    if plan.slice_id is not None:
        row["slice_id"] = plan.slice_id
    return row


@contextlib.contextmanager
def _progress_bar(enabled: bool, total: int, done: int = 0) -> Iterator[ProgressCallback | None]:
    """A rich bar on stderr: layers done/total, elapsed, ETA, layers/s and the last layer."""
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
            return Text(f"{speed:.2f} layers/s" if speed else "… layers/s", style="cyan")

    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        RateColumn(),
        TextColumn("{task.fields[layer]}", style="dim"),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("analysing", total=total, completed=done, layer="")

        def update(done: int, _total: int, name: str) -> None:
            bar.update(task, completed=done, layer=name)

        yield update


@dataclass(frozen=True)
class ExecutionOptions:
    """How the layers are run; none of this changes a result (except a layer that times out).

    Attributes:
        workers: local worker processes (1: in this process, unless ``layer_timeout`` is set,
            which needs a worker process it can stop). Each gets cores // workers BLAS threads.
        scheduler: a Dask scheduler address (``tcp://host:port``) or a
            ``dask.distributed.Client``; the model must then be a path the workers can read.
        layer_timeout: seconds a layer may take before it is stopped and reported failed.
        journal: file to append each finished layer to (see :mod:`alphahat.report.journal`).
        resume: with a journal: True resumes it (error if it belongs to a different run),
            False starts over, None resumes a journal of the same run and else starts over.
        blas_threads: BLAS threads per layer computation (default: all cores in this process,
            cores // workers in workers; Dask workers use their own setting, 1 by default).
            LAPACK's rounding depends on it, so runs with equal ``blas_threads`` give
            bit-identical tables whatever ``workers`` is; otherwise they agree to ~1e-13.
    """

    workers: int = 1
    scheduler: Any = None
    layer_timeout: float | None = None
    journal: str | os.PathLike[str] | None = None
    resume: bool | None = None
    blas_threads: int | None = None

    def __post_init__(self) -> None:
        _check_int("workers", self.workers, minimum=1)
        if self.blas_threads is not None:
            _check_int("blas_threads", self.blas_threads, minimum=1)
        timeout = self.layer_timeout
        if timeout is not None and (
            not isinstance(timeout, int | float) or isinstance(timeout, bool) or not timeout > 0
        ):
            raise ValueError(f"layer_timeout must be a number of seconds > 0; got {timeout!r}")
        if self.scheduler is not None and self.workers > 1:
            raise ValueError(
                "workers and scheduler exclude each other: the Dask cluster has its own workers"
            )
        if self.scheduler is not None and timeout is not None:
            raise ValueError(
                "layer_timeout is not supported with a Dask scheduler (a running Dask task "
                "cannot be stopped); use the cluster's own limits"
            )


@dataclass(frozen=True)
class LayerTask:
    """One layer's work, picklable, for another process or a Dask worker.

    Either ``plan`` is the plan itself (in this process, or with the values attached for an
    in-memory model), or ``source`` says how to re-open the model: the worker opens it (headers
    only), plans it with the same ``options`` and reads the one tensor of layer
    (``layer_id``, ``name``) — no weights travel with the task.
    """

    options: AnalysisOptions
    layer_id: int | None
    name: str
    source: SourceSpec | None = None
    plan: TensorPlan | None = None


def _reopened_plans(spec: SourceSpec, options: AnalysisOptions) -> dict[tuple[Any, str], Any]:
    source = spec.open()  # kept open in the cache: its tensors load lazily
    return {(p.layer_id, p.ref.name): p for p in _plan(source, options)}


def _task_plan(task: LayerTask) -> TensorPlan:
    if task.plan is not None:
        return task.plan
    if task.source is None:
        raise ValueError("a layer task needs a plan or a source")
    spec, options = task.source, task.options
    plans = cached(("plans", spec, repr(options)), lambda: _reopened_plans(spec, options))
    plan = plans.get((task.layer_id, task.name))
    if plan is None:
        raise SourceError(
            f"{spec.path}: layer {task.name!r} not found when a worker re-opened the model "
            "(did the file change during the run?)"
        )
    return plan  # type: ignore[no-any-return]


def _run_layer(task: LayerTask) -> tuple[dict[str, Any], Any]:
    """The metric columns of one layer (a failed row on any error) and its kept eigenvalues.

    The unit of work of every executor (module level, so that it pickles by reference).
    """
    try:
        metrics, evals = _analyse_layer(_task_plan(task), task.options)
    except (AlphahatError, ValueError, ArithmeticError, MemoryError, OSError) as exc:
        return _failed_row(str(exc) or type(exc).__name__), None
    except Exception as exc:  # one layer never loses the others' results
        return _failed_row(f"internal error: {type(exc).__name__}: {exc}"), None
    return metrics, evals if task.options.keep_eigenvalues else None


@dataclass(frozen=True)
class _FailedLoad:
    """A picklable loader that raises the error the parent got reading the tensor."""

    message: str

    def __call__(self) -> Any:
        raise SourceError(self.message)


def _portable_task(
    plan: TensorPlan, options: AnalysisOptions, spec: SourceSpec | None
) -> LayerTask:
    if spec is not None:
        return LayerTask(options, plan.layer_id, plan.ref.name, source=spec)
    loader: Callable[[], Any]
    try:
        loader = LoadedTensor(plan.ref.load())
    except (AlphahatError, ValueError, OSError, MemoryError) as exc:
        loader = _FailedLoad(str(exc) or type(exc).__name__)
    plan = replace(plan, ref=replace(plan.ref, load=loader))
    return LayerTask(options, plan.layer_id, plan.ref.name, plan=plan)


def _noop() -> None:
    pass


class _FileHashes:
    """SHA-256 of files computed by a daemon thread (hashlib and reads release the GIL).

    A 100 GB checkpoint takes minutes to hash; overlapping it with the analysis hides that.
    ``cancel()`` stops it between chunks (a failed or interrupted run does not wait for it).
    """

    def __init__(
        self, files: Sequence[os.PathLike[str] | str], known: Mapping[str, str] | None = None
    ) -> None:
        import threading

        self._files = [str(f) for f in files]
        self._hashes: dict[str, str] = {f: known[f] for f in self._files if known and f in known}
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alphahat-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from alphahat.sources import file_sha256

        try:
            for name in self._files:
                if name not in self._hashes:
                    self._hashes[name] = file_sha256(name, cancelled=self._stop.is_set)
        except InterruptedError:
            return  # cancelled: result() says so
        except BaseException as exc:  # re-raised by result()
            self._error = exc

    def cancel(self) -> None:
        """Ask the thread to stop (it finishes its current chunk)."""
        self._stop.set()

    def result(self) -> dict[str, str]:
        """Path → SHA-256 hex of every file (waits for the thread)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._stop.is_set() and len(self._hashes) < len(self._files):
            raise RuntimeError("file hashing was cancelled")
        return dict(self._hashes)


def _read_ahead(todo: Sequence[TensorPlan], pending: Sequence[int]) -> Iterator[TensorPlan]:
    """The pending plans, each tensor read by a background thread while the previous computes.

    At most two tensors are in memory: the one being analysed and the next one. A read error
    is raised by ``load()`` inside the layer's own error scope, as without read-ahead.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="alphahat-read") as reader:
        ahead: TensorPlan | None = None
        for i in pending:
            plan = todo[i]
            future = reader.submit(plan.ref.load)
            if ahead is not None:
                yield ahead
            ahead = replace(plan, ref=replace(plan.ref, load=future.result))
            del plan, future
        if ahead is not None:
            yield ahead


def _executor(
    execution: ExecutionOptions, spec: SourceSpec | None
) -> tuple[Executor, Callable[[], None], str]:
    """The executor for these settings, a function to call when done, and its description."""
    if execution.scheduler is not None:
        if spec is None:
            raise ValueError(
                "a Dask scheduler needs the model as a path that its workers can open (they "
                "read their own tensors); got an in-memory model"
            )
        scheduler = execution.scheduler
        if isinstance(scheduler, str):
            from alphahat._imports import require

            distributed = require("distributed", "running on a Dask cluster (--scheduler)")
            try:
                client = distributed.Client(scheduler, timeout="30s")
            except (OSError, TimeoutError) as exc:
                raise ValueError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
            return DaskExecutor(client), client.close, f"dask {scheduler}"
        return DaskExecutor(scheduler), _noop, "dask client"
    if execution.workers > 1 or execution.layer_timeout is not None:
        pool = ProcessExecutor(
            execution.workers,
            threads=execution.blas_threads,
            timeout=execution.layer_timeout,
            preload=("alphahat.analysis",),
        )
        return pool, _noop, f"{pool.workers} processes × {pool.threads} BLAS threads"
    return SerialExecutor(), _noop, "serial"


def _blas_limit(threads: int | None) -> contextlib.AbstractContextManager[Any]:
    """Cap BLAS threads in this process for the run (restored afterwards)."""
    if threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    limiter: contextlib.AbstractContextManager[Any] = threadpool_limits(limits=threads)
    return limiter


def _journal_key(source: WeightSource, options: AnalysisOptions) -> dict[str, Any]:
    """What the rows of a journal depend on: version, options and input files (size, mtime)."""
    files: list[list[Any]] = []
    for name in source.files:
        try:
            info = os.stat(name)
            files.append([str(Path(name).resolve()), info.st_size, info.st_mtime_ns])
        except OSError:
            files.append([str(name), None, None])
    opts = options.as_dict()
    for unrelated in ("keep_eigenvalues", "include_embeddings"):  # they change no row
        opts.pop(unrelated, None)
    return {
        "alphahat_version": __version__,
        "source": source.description if not files else "",
        "files": files,
        "options": opts,
    }


def _open_journal(
    execution: ExecutionOptions,
    source: WeightSource,
    options: AnalysisOptions,
    todo: Sequence[TensorPlan],
    info: dict[str, Any],
) -> tuple[Any, dict[int, dict[str, Any]]]:
    """The journal to append to, and the rows of ``todo`` (by index) it already holds."""
    if execution.journal is None:
        return None, {}
    from alphahat.report.journal import Journal, JournalError, key_differences, read_journal

    path = Path(execution.journal)
    key = _journal_key(source, options)
    resumed: dict[int, dict[str, Any]] = {}
    kept: dict[int, dict[str, Any]] = {}
    info["journal"] = str(path)
    if path.exists() and execution.resume is not False:
        try:
            contents = read_journal(path)
            differences = key_differences(contents.key, key)
        except JournalError as exc:
            if execution.resume:
                raise
            contents, differences = None, [str(exc)]
        if differences and execution.resume:
            raise JournalError(
                f"{path}: cannot resume: it was written by a run with a different "
                f"{', '.join(differences)} (start over without --resume, or delete it)"
            )
        if differences:
            info["journal_restarted"] = (
                f"it was written by a run with a different {', '.join(differences)}"
            )
        elif contents is not None:
            index: dict[tuple[Any, Any], int] = {
                (plan.layer_id, plan.ref.name): i for i, plan in enumerate(todo)
            }
            for record in contents.records:
                i = index.get((record.get("layer_id"), record.get("name")))
                if i is not None and not record.get("transient"):
                    resumed[i], kept[i] = record["row"], record
    try:
        journal = Journal.create(path, key, [kept[i] for i in sorted(kept)])
    except OSError as exc:
        raise JournalError(f"{path}: cannot write the journal: {exc.strerror or exc}") from exc
    info["resumed_layers"] = len(resumed)
    return journal, resumed


def run_analysis(
    source: WeightSource,
    options: AnalysisOptions,
    *,
    progress: bool | ProgressCallback = False,
    execution: ExecutionOptions | None = None,
    reopen: SourceSpec | None = None,
    file_hashes: Mapping[str, str] | None = None,
) -> Report:
    """Analyse every planned layer of an open source (see :func:`analyze`).

    ``reopen`` says how another process can open the same source (needed by a Dask cluster;
    without it local workers receive each tensor's values with its task). ``file_hashes``:
    SHA-256 of the source's files already computed by the caller (``str(path)`` → hex), so
    they are not read a second time for the provenance; files it lacks are hashed as usual.
    """
    execution = execution or ExecutionOptions()
    started = time.perf_counter()
    plans = _plan(source, options)
    todo = [p for p in plans if p.status != "skipped"]
    info: dict[str, Any] = {}
    journal, rows = _open_journal(execution, source, options, todo, info)
    hashing = _FileHashes(source.files, known=file_hashes)  # while the layers compute
    pending: list[int] = []
    for i, plan in enumerate(todo):
        if i in rows:
            continue
        if plan.status == "failed":
            rows[i] = {**_base_row(plan), **_failed_row(plan.reason)}
        else:
            pending.append(i)
    eigenvalues: dict[int, Any] = {}
    callback = progress if callable(progress) else None
    done = len(todo) - len(pending)
    try:
        executor, finish, info["executor"] = _executor(execution, reopen)
        in_process = isinstance(executor, SerialExecutor)
        tasks = (
            (LayerTask(options, p.layer_id, p.ref.name, plan=p) for p in _read_ahead(todo, pending))
            if in_process
            else (_portable_task(todo[i], options, reopen) for i in pending)
        )
        limit = _blas_limit(execution.blas_threads) if in_process else contextlib.nullcontext()
        try:
            with limit, _progress_bar(progress is True, len(todo), done) as bar:
                report_progress = callback or bar
                if report_progress is not None:
                    report_progress(done, len(todo), "")
                for k, outcome in executor.map_unordered(_run_layer, tasks):
                    i = pending[k]
                    plan = todo[i]
                    transient = isinstance(outcome, TaskFailure) and outcome.transient
                    if isinstance(outcome, TaskFailure):
                        metrics, evals = _failed_row(outcome.reason), None
                    else:
                        metrics, evals = outcome
                    rows[i] = {**_base_row(plan), **metrics}
                    if evals is not None:
                        eigenvalues[i] = evals
                    if journal is not None:  # durable before anything else happens
                        journal.append(
                            {
                                "layer_id": plan.layer_id,
                                "name": plan.ref.name,
                                "transient": transient,
                                "row": rows[i],
                            }
                        )
                    done += 1
                    if report_progress is not None:
                        report_progress(done, len(todo), plan.ref.name)
        finally:
            finish()
    except BaseException:
        hashing.cancel()  # a failed or interrupted run does not wait for it
        raise
    finally:
        if journal is not None:
            journal.close()
    info["seconds"] = time.perf_counter() - started
    report = Report.from_rows(
        [rows[i] for i in range(len(todo))],
        plans=plans,
        options=options.as_dict(),
        provenance=build_provenance(source, options.as_dict(), hashes=hashing.result()),
        include_embeddings=options.include_embeddings,
        eigenvalues={todo[i].ref.name: eigenvalues[i] for i in sorted(eigenvalues)},
    )
    # LAPACK's rounding depends on the BLAS threads each layer ran with (not on the workers);
    # None: the default (all cores serially, cores // workers in workers)
    report.provenance["blas_threads_per_layer"] = execution.blas_threads
    report.run_info.update(info)
    return report


#: Options of :func:`analyze` passed as ``**reference_options``.
_REFERENCE_OPTIONS = frozenset(
    {
        "fit", "fix_fingers", "xmin_max", "max_fingers", "finger_thresh", "xmax", "mp_fit",
        "randomize", "seed", "detX", "vectors", "pool", "fft", "fft_size",
    }
)  # fmt: skip


def analyze(
    model: Any,
    *,
    layers: LayerFilter | Sequence[LayerSpec] | LayerSpec | None = None,
    min_evals: int = DEFAULT_MIN_EVALS,
    max_evals: int | None = None,
    evals_threshold: float = DEFAULT_EVALS_THRESHOLD,
    conv_scale: ConvScale = "reference",
    include_embeddings: bool = True,
    keep_eigenvalues: bool = False,
    max_matrix_elements: int | None = None,
    max_memory: int | str | None = None,
    split_fused: bool = False,
    fused_heads: int | None = None,
    base: Any = None,
    unsafe_load: bool = False,
    progress: bool | ProgressCallback = False,
    backend: SpectrumBackend = "auto",
    device: str | None = None,
    workers: int = 1,
    scheduler: Any = None,
    layer_timeout: float | None = None,
    journal: str | os.PathLike[str] | None = None,
    resume: bool | None = None,
    blas_threads: int | None = None,
    **reference_options: Any,
) -> Report:
    """Analyse every weight matrix of a model and return a :class:`~alphahat.report.Report`.

    Args:
        model: a ``torch.nn.Module``, a ``keras.Model``, a ``state_dict`` or
            ``{name: array}`` mapping, or a path to a ``.safetensors`` file, a sharded Hugging
            Face folder, a ``.pt/.bin/.pth`` state dict, a ``.npy/.npz``, ``.onnx``,
            ``.gguf``, ``.keras`` or ``.h5`` file, or a PEFT LoRA adapter folder.
        layers: which layers to analyse: layer ids, exact names, glob patterns and kinds
            (``linear``, ``embedding``, ``conv1d``, ``conv2d``, ``conv3d``); criteria of
            different types are combined with AND, several of one type with OR.
        min_evals: layers with fewer eigenvalues are skipped (with the reason).
        max_evals: layers with more eigenvalues are skipped (None: no limit).
        evals_threshold: eigenvalues ≤ this are left out of the power-law fit (not of norms).
        conv_scale: ``"reference"`` multiplies conv kernel slices by 1/√2 (λ halved), as the
            reference tool does for Conv2d (by k/√2 per slice with ``pool=False``, as it does
            there); ``"papers"`` by √(r/2), r the kernel positions (k/√2 for k × k, the
            papers' convention); ``"none"`` analyses them as stored.
        include_embeddings: whether the model summary averages embedding layers too.
        keep_eigenvalues: keep each layer's ESD in ``report.eigenvalues``.
        max_matrix_elements: layers whose matrices have more than N·M elements are skipped
            (with the reason) before being read.
        max_memory: layers whose estimated peak memory is larger are skipped (with the
            reason) before being read: bytes, or a size such as ``"8GiB"`` or ``"500MB"``
            (see :mod:`alphahat.layers.limits` for the estimate).
        split_fused: split fused q/k/v projections (``in_proj_weight``, ``c_attn``,
            ``qkv_proj``, …) into ``name [q]``, ``[k]``, ``[v]``, and PyTorch LSTM/GRU weights
            into their gates (see :mod:`alphahat.layers.semantics`); ``fused_heads``: the head
            count needed to split per-head interleaved ones (``query_key_value``; default: the
            checkpoint's ``config.json``).
        base: a base checkpoint (path, module or mapping): a LoRA adapter folder gives ΔW plus
            ``[merged]`` and ``[base]`` views of each adapted module; any other model is
            analysed as the fine-tune deltas W − W_base, tensors matched by full name.
        unsafe_load: allow a full unpickle of ``.pt/.bin`` files (runs code from the file).
        progress: show a progress bar on stderr, or a callback(done, total, layer name),
            called once at the start and after each layer finishes.
        backend: how eigenvalues are computed: ``auto`` (the float64 Gram-matrix path with
            its accuracy guard, falling back to the SVD per layer; torch when ``device`` is
            not the CPU), ``svd`` (LAPACK float64 SVD, the reference), ``gram``,
            ``float32``, ``torch``; see :mod:`alphahat.spectrum.backends`.
        device: torch device for ``torch``/``auto``/``float32``: ``cpu``, ``cuda``, ``cuda:1``.
        workers: local worker processes; each gets cores // workers BLAS threads. Results
            are identical to a serial run.
        scheduler: a Dask scheduler address (``"tcp://host:port"``) or a
            ``dask.distributed.Client``: layers run on that cluster; its workers open
            ``model`` (a path they can read) themselves.
        layer_timeout: seconds after which a layer is stopped and reported ``failed``.
        journal: append each finished layer to this file (fsync'd), so that an interrupted
            run loses nothing and a rerun resumes (see ``resume``).
        resume: True: continue the journal (error if written by a different run); False:
            start it over; None: continue it if it belongs to the same run, else start over.
        blas_threads: BLAS threads per layer (default: all cores serially, cores // workers
            with workers). Equal values give bit-identical results whatever ``workers`` is.
        reference_options: the reference tool's options, same names (weightwatcher 0.7.7):
            ``fit`` (``"PL"``, ``"TPL"``, ``"E_TPL"``), ``fix_fingers`` (``"xmin_peak"``,
            ``"clip_xmax"``), ``xmin_max``, ``max_fingers``, ``finger_thresh``, ``xmax``,
            ``mp_fit``, ``randomize`` (with ``seed``), ``detX``, ``vectors``, ``pool``,
            ``fft`` (with ``fft_size``); see :mod:`alphahat.layer_analysis` for the columns
            each adds.
    """
    unknown = sorted(set(reference_options) - _REFERENCE_OPTIONS)
    if unknown:
        raise TypeError(
            f"analyze() got unknown option(s) {', '.join(unknown)}; the reference-tool "
            f"options are {', '.join(sorted(_REFERENCE_OPTIONS))}"
        )
    options = make_options(
        layers,
        min_evals=min_evals,
        max_evals=max_evals,
        evals_threshold=evals_threshold,
        conv_scale=conv_scale,
        include_embeddings=include_embeddings,
        keep_eigenvalues=keep_eigenvalues,
        max_matrix_elements=max_matrix_elements,
        max_memory=max_memory,
        split_fused=split_fused,
        fused_heads=fused_heads,
        backend=backend,
        device=device,
        **reference_options,
    )
    execution = ExecutionOptions(workers, scheduler, layer_timeout, journal, resume, blas_threads)
    if scheduler is None and uses_torch(backend, device):
        check_device_available(device)
    base = _absolute(base)
    reopen = (
        SourceSpec.of(model, unsafe_load=unsafe_load, base=base)
        if base is None or isinstance(base, str)
        else None  # an in-memory base: workers get each tensor's values with its task
    )
    with open_source(model, unsafe_load=unsafe_load, base=base) as source:
        return run_analysis(source, options, progress=progress, execution=execution, reopen=reopen)


def describe(
    model: Any,
    *,
    layers: LayerFilter | Sequence[LayerSpec] | LayerSpec | None = None,
    min_evals: int = DEFAULT_MIN_EVALS,
    max_evals: int | None = None,
    conv_scale: ConvScale = "reference",
    max_matrix_elements: int | None = None,
    max_memory: int | str | None = None,
    split_fused: bool = False,
    fused_heads: int | None = None,
    pool: bool = True,
    base: Any = None,
    unsafe_load: bool = False,
) -> Any:
    """Every tensor of a model with what :func:`analyze` would do with it, without computing.

    Returns a pandas DataFrame, one row per tensor: ``layer_id`` (tensors with ≥ 2 dims),
    ``name``, ``kind``, ``shape``, ``dtype``, ``N``, ``M``, ``num_matrices``, ``num_evals``,
    ``status`` (``analysed``, ``skipped`` or ``failed``) and ``reason``. With ``pool=False``
    a conv layer is listed once per kernel slice (``name [slice i,j]``), as ``analyze`` would
    analyse it.
    """
    options = make_options(
        layers,
        min_evals=min_evals,
        max_evals=max_evals,
        conv_scale=conv_scale,
        max_matrix_elements=max_matrix_elements,
        max_memory=max_memory,
        split_fused=split_fused,
        fused_heads=fused_heads,
        pool=pool,
    )
    with open_source(model, unsafe_load=unsafe_load, base=base) as source:
        return coverage_frame(_plan(source, options))


def randomized_eigenvalues(
    model: Any,
    *,
    layers: LayerFilter | Sequence[LayerSpec] | LayerSpec | None = None,
    seed: int = 0,
    min_evals: int = DEFAULT_MIN_EVALS,
    max_evals: int | None = None,
    conv_scale: ConvScale = "reference",
    split_fused: bool = False,
    fused_heads: int | None = None,
    unsafe_load: bool = False,
) -> dict[str, Any]:
    """The ESD of each layer's element-shuffled weights, by layer name (for the figures).

    The shuffles are those of ``analyze(model, randomize=True, seed=seed)`` with the same
    layer options (same per-layer seed, orientation and number of replicas), so
    ``max_rand_eval`` of that report is the largest eigenvalue here. A layer that cannot be
    read or shuffled is left out.
    """
    from alphahat.spectrum.randomize import layer_randomized_spectrum

    options = make_options(
        layers,
        min_evals=min_evals,
        max_evals=max_evals,
        conv_scale=conv_scale,
        seed=seed,
        split_fused=split_fused,
        fused_heads=fused_heads,
    )
    out: dict[str, Any] = {}
    with open_source(model, unsafe_load=unsafe_load) as source:
        for plan in _plan(source, options):
            if plan.status != "analyse":
                continue
            try:
                values = plan.ref.load()
                shuffled = layer_randomized_spectrum(
                    values, layer_matrices(values, plan), plan.scale, seed=seed, name=plan.ref.name
                )
            except (AlphahatError, ValueError, ArithmeticError, MemoryError, OSError):
                continue  # its analysis row says why
            out[plan.ref.name] = shuffled.eigenvalues
    return out


def _absolute(base: Any) -> Any:
    """A path-like base as an absolute path string (workers re-open it); others unchanged."""
    if isinstance(base, str | os.PathLike):
        return str(Path(base).resolve())
    return base


__all__ = [
    "AnalysisOptions",
    "ExecutionOptions",
    "analyze",
    "describe",
    "make_options",
    "randomized_eigenvalues",
    "run_analysis",
]
