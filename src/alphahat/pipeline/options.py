"""Every option of an analysis, declared once: type, allowed values, default, help, names.

An option is one field of :class:`AnalysisOptions` (what is computed), :class:`ExecutionOptions`
(how it is run: no result depends on these) or :class:`SourceOptions` (how the model is opened),
declared with :func:`option`: its default, its :class:`Constraint` (an interval, a set of
choices, …), its help text, its command-line flag and the reference tool's name for it. This is
the only place an option's default lives. Everything else is generated from these declarations
(:data:`OPTION_TABLE`):

* validation, with one message shape for every option: ``"min_evals must be an integer ≥ 0;
  got -3"`` (:class:`~alphahat.errors.OptionError`), plus the checks that concern several
  options at once (:meth:`AnalysisOptions.__post_init__`);
* the keywords of :func:`alphahat.analyze` (their defaults are read from here; a test checks
  that the signature and the table agree);
* the command line's flags, metavars and help (:mod:`alphahat.cli`);
* the reference tool's names and values (:mod:`alphahat.compat`), and the options table of
  docs/architecture.md.

(In the spirit of scikit-learn's ``_parameter_constraints``.)
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeVar

from alphahat.errors import OptionError
from alphahat.fit.esd import FIT_KINDS, FIX_FINGERS, FitKind, FitPolicy, FixFingers
from alphahat.fit.power_law import DEFAULT_FINGER_THRESHOLD, DEFAULT_MAX_FINGERS
from alphahat.layers import CONV_SCALES, ConvScale, LayerFilter
from alphahat.layers.limits import ResourceLimits, parse_byte_size
from alphahat.spectrum import SPECTRUM_BACKENDS, SpectrumBackend, check_backend, uses_torch

T = TypeVar("T")
LayerSpec = str | int


# ---------------------------------------------------------------------------------------------
# Constraints: what values an option takes, how it reads from the command line


class Constraint:
    """The values an option accepts.

    ``check`` returns the value (normalised: a size string becomes bytes, layer specs a
    :class:`~alphahat.layers.LayerFilter`) or raises :class:`~alphahat.errors.OptionError`;
    ``parse`` reads it from command-line text; ``requirement`` completes "``name`` must be …";
    ``metavar`` is its placeholder in ``--help``.
    """

    requirement: str = "a value"
    metavar: str = "VALUE"
    optional: bool = False

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` (not None) is allowed."""
        return True

    def normalize(self, value: Any) -> Any:
        """``value`` (accepted, not None) in the form the options hold."""
        return value

    def check(self, name: str, value: Any) -> Any:
        """``value`` normalised, or :class:`OptionError` naming ``name``.

        A value :meth:`normalize` refuses with a ValueError gets the same error.
        """
        if value is None and self.optional:
            return None
        if value is None or not self.accepts(value):
            raise self.error(name, value)
        try:
            return self.normalize(value)
        except ValueError:
            raise self.error(name, value) from None

    def error(self, name: str, value: Any) -> OptionError:
        """The error of option ``name`` for a refused ``value``."""
        return OptionError(name, self.requirement, value, optional=self.optional)

    def parse(self, name: str, text: str) -> Any:
        """The value of command-line ``text`` (checked by :meth:`check` afterwards)."""
        return text


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Integer(Constraint):
    """An integer in [``minimum``, ``maximum``] (either end open when None)."""

    minimum: int | None = None
    maximum: int | None = None
    optional: bool = False
    metavar: str = "N"

    def accepts(self, value: Any) -> bool:  # noqa: D102
        if not _is_int(value):
            return False
        return (self.minimum is None or value >= self.minimum) and (
            self.maximum is None or value <= self.maximum
        )

    def normalize(self, value: Any) -> Any:  # noqa: D102
        return int(value)

    @property
    def requirement(self) -> str:  # type: ignore[override]  # noqa: D102
        if self.minimum is not None and self.maximum is not None:
            return f"an integer in [{self.minimum}, {self.maximum}]"
        if self.minimum is not None:
            return f"an integer ≥ {self.minimum}"
        return "an integer"

    def parse(self, name: str, text: str) -> Any:  # noqa: D102
        try:
            return int(text.strip())
        except ValueError:
            raise self.error(name, text) from None


@dataclass(frozen=True)
class NonZeroInteger(Integer):
    """A non-zero integer (``xmax``: how many of the largest eigenvalues to leave out)."""

    what: str = ""

    def accepts(self, value: Any) -> bool:  # noqa: D102
        return _is_int(value) and value != 0

    @property
    def requirement(self) -> str:  # type: ignore[override]  # noqa: D102
        return f"a non-zero integer{f' ({self.what})' if self.what else ''}"


@dataclass(frozen=True)
class Number(Constraint):
    """A finite number > ``above`` (or ≥ ``at_least``), and ≤ ``at_most``."""

    above: float | None = None
    at_least: float | None = None
    optional: bool = False
    unit: str = ""
    metavar: str = "X"
    at_most: float | None = None

    def accepts(self, value: Any) -> bool:  # noqa: D102
        if not _is_number(value) or not math.isfinite(value):
            return False
        return (
            (self.above is None or value > self.above)
            and (self.at_least is None or value >= self.at_least)
            and (self.at_most is None or value <= self.at_most)
        )

    @property
    def requirement(self) -> str:  # type: ignore[override]  # noqa: D102
        what = f"a number of {self.unit}" if self.unit else "a finite number"
        if self.at_most is not None and self.at_least is not None:
            return f"{what} in [{self.at_least:g}, {self.at_most:g}]"
        if self.above == 0:
            return f"{what} > 0" if self.unit else "a positive number"
        if self.above is not None:
            return f"{what} > {self.above:g}"
        if self.at_least is not None:
            return f"{what} ≥ {self.at_least:g}"
        return what

    def parse(self, name: str, text: str) -> Any:  # noqa: D102
        try:
            return float(text.strip())
        except ValueError:
            raise self.error(name, text) from None


@dataclass(frozen=True)
class Choice(Constraint):
    """One of ``values``."""

    values: tuple[Any, ...] = ()
    optional: bool = False

    def accepts(self, value: Any) -> bool:  # noqa: D102
        return isinstance(value, str) and value in self.values

    @property
    def requirement(self) -> str:  # type: ignore[override]  # noqa: D102
        return f"one of {', '.join(map(repr, self.values))}"

    @property
    def metavar(self) -> str:  # type: ignore[override]  # noqa: D102
        return "|".join(map(str, self.values))


@dataclass(frozen=True)
class Flag(Constraint):
    """True or False."""

    requirement: str = "True or False"

    def accepts(self, value: Any) -> bool:  # noqa: D102
        return isinstance(value, bool)


@dataclass(frozen=True)
class Layers(Constraint):
    """Layer ids, exact names, glob patterns and kinds, or a :class:`LayerFilter`."""

    requirement: str = (
        "a LayerFilter, or layer ids, names, glob patterns and kinds (a list or one of them)"
    )
    metavar: str = "PATTERN"
    optional: bool = True

    def accepts(self, value: Any) -> bool:  # noqa: D102
        if isinstance(value, LayerFilter | str) or _is_int(value):
            return True
        return isinstance(value, Iterable) and all(isinstance(v, str) or _is_int(v) for v in value)

    def check(self, name: str, value: Any) -> Any:  # noqa: D102
        return LayerFilter() if value is None else super().check(name, value)

    def normalize(self, value: Any) -> Any:  # noqa: D102
        if isinstance(value, LayerFilter):
            return value
        if isinstance(value, str) or _is_int(value):
            return LayerFilter.parse([value])
        return LayerFilter.parse(list(value))


@dataclass(frozen=True)
class ByteSize(Constraint):
    """Bytes: an integer ≥ 1 or a size such as ``"8GiB"``, ``"500MB"``."""

    requirement: str = "a size in bytes such as 8GiB, 512MB or 1000000"
    metavar: str = "SIZE"
    optional: bool = True

    def accepts(self, value: Any) -> bool:  # noqa: D102
        return _is_int(value) or isinstance(value, str)

    def normalize(self, value: Any) -> Any:  # noqa: D102
        return parse_byte_size(value)


@dataclass(frozen=True)
class Device(Constraint):
    """A torch device string."""

    requirement: str = "a torch device: 'cpu', 'cuda', 'cuda:N', 'mps' or 'xpu'"
    metavar: str = "DEVICE"
    optional: bool = True

    def accepts(self, value: Any) -> bool:  # noqa: D102
        return isinstance(value, str)

    def normalize(self, value: Any) -> Any:  # noqa: D102
        check_backend("auto", value)  # a ValueError for a malformed device
        return value


@dataclass(frozen=True)
class PathLike(Constraint):
    """A file path."""

    requirement: str = "a path"
    metavar: str = "PATH"
    optional: bool = True

    def accepts(self, value: Any) -> bool:  # noqa: D102
        return isinstance(value, str | os.PathLike)


@dataclass(frozen=True)
class Anything(Constraint):
    """Any value (checked where it is used: a scheduler, a base model, a callback)."""

    requirement: str = "a value"
    optional: bool = True


@dataclass(frozen=True)
class TriState(Constraint):
    """None, True or False."""

    requirement: str = "None, True or False"
    optional: bool = True

    def accepts(self, value: Any) -> bool:  # noqa: D102
        return isinstance(value, bool)


# ---------------------------------------------------------------------------------------------
# The table


_SAME = object()  # "the reference tool's default is ours"

#: The estimators of α: ``classic`` (the ESD of W) and ``farms`` (of its fixed-aspect-ratio
#: submatrices, :mod:`alphahat.spectrum.farms`).
ESTIMATORS = ("classic", "farms")
Estimator = Literal["classic", "farms"]


def _uses_intra(options: Any) -> bool:
    """Whether the options analyse cross matrices (intra and sparsify are recorded only then)."""
    return bool(options.intra)


def _uses_farms(options: Any) -> bool:
    """Whether the options estimate α with FARMS (the FARMS options are recorded only then)."""
    return bool(options.estimator == "farms")


@dataclass(frozen=True)
class OptionSpec:
    """One row of the option table.

    Attributes:
        name: the keyword of :func:`alphahat.analyze` and the field name.
        default: the default value.
        constraint: the values it accepts.
        help: one sentence for ``--help`` and the docs.
        flag: the command-line flag (``"--min-evals"``; ``"--pool/--no-pool"`` for a flag
            pair); empty when the option is not on the command line.
        short: a one-letter flag (``"-l"``).
        aliases: other spellings of the flag that are accepted (``"--layer"``).
        metavar: placeholder in ``--help`` (default: the constraint's).
        reference: the reference tool's (weightwatcher 0.7.7) keyword of the same meaning.
        reference_default: the reference tool's default where it differs from ours.
        reference_values: the reference tool's values that we spell differently.
        recorded: whether the option is part of a report's options (provenance, journal and
            cache keys); False only for what changes the in-memory report, never a number.
        recorded_if: for an option that is only recorded while it is in use (a predicate on
            the :class:`AnalysisOptions`): the FARMS options, so that the reports of analyses
            that do not use them keep their bytes and cache keys.
        changes_rows: whether the per-layer rows depend on it (journal key).
        group: ``planning``, ``fit``, ``spectrum``, ``report``, ``execution`` or ``source``.
    """

    name: str
    default: Any
    constraint: Constraint
    help: str
    flag: str = ""
    short: str = ""
    aliases: tuple[str, ...] = ()
    metavar: str = ""
    reference: str = ""
    reference_default: Any = _SAME
    reference_values: Mapping[Any, Any] = field(default_factory=dict)
    recorded: bool = True
    recorded_if: Callable[[Any], bool] | None = None
    changes_rows: bool = True
    group: str = "planning"

    def check(self, value: Any) -> Any:
        """``value`` checked and normalised (:class:`OptionError` naming this option)."""
        return self.constraint.check(self.name, value)

    def parse(self, text: str) -> Any:
        """The value written ``text`` on the command line, checked."""
        return self.check(self.constraint.parse(self.name, text))

    @property
    def flags(self) -> tuple[str, ...]:
        """The flag names (long first), e.g. ``("--layers", "--layer", "-l")``."""
        return tuple(f for f in (self.flag, *self.aliases, self.short) if f)

    @property
    def cli_name(self) -> str:
        """The (positive) long flag, as messages name the option on the command line."""
        return self.flag.split("/")[0]

    @property
    def placeholder(self) -> str:
        """The metavar of ``--help``."""
        return self.metavar or self.constraint.metavar

    def from_reference(self, value: Any) -> Any:
        """Our value for the reference tool's ``value`` of this option."""
        try:
            return self.reference_values.get(value, value)
        except TypeError:  # unhashable: not one of the spelled-differently values
            return value

    @property
    def reference_value(self) -> Any:
        """The reference tool's default, in its own spelling."""
        return self.default if self.reference_default is _SAME else self.reference_default


def option(default: T, constraint: Constraint, help: str, **spec: Any) -> T:
    """A dataclass field that is a row of the option table (see :class:`OptionSpec`)."""
    value: T = field(  # the option's row rides on the field's metadata
        default=default, metadata={"option": {"constraint": constraint, "help": help, **spec}}
    )
    return value


_SPECS: dict[type, tuple[OptionSpec, ...]] = {}


def option_specs(cls: type) -> tuple[OptionSpec, ...]:
    """The option table rows of the options dataclass ``cls``, in field order."""
    if cls not in _SPECS:
        rows = []
        for f in fields(cls):
            meta = f.metadata.get("option")
            if meta is not None:
                rows.append(OptionSpec(name=f.name, default=f.default, **meta))
        _SPECS[cls] = tuple(rows)
    return _SPECS[cls]


def _validate(instance: Any) -> None:
    """Check and normalise every field of an options dataclass against its row."""
    for spec in option_specs(type(instance)):
        value = spec.check(getattr(instance, spec.name))
        object.__setattr__(instance, spec.name, value)


@dataclass(frozen=True)
class AnalysisOptions:
    """What an analysis computes; every field is a row of the option table (module docstring).

    Construct it with the values to change (``AnalysisOptions(min_evals=0, fit="TPL")``);
    values are checked and normalised here, once, at the boundary.
    """

    # which tensors become which layers (alphahat.layers)
    layers: LayerFilter = option(
        LayerFilter(),
        Layers(),
        "Only these layers: ids, exact names, glob patterns or kinds (linear, embedding, "
        "conv1d, conv2d, conv3d, rnn, bilinear); repeat or comma-separate; different types are "
        "ANDed, several of one type ORed.",
        flag="--layers",
        short="-l",
        aliases=("--layer",),
        reference="layers",
    )
    min_evals: int = option(
        8,
        Integer(minimum=0),
        "Skip layers with fewer eigenvalues.",
        flag="--min-evals",
        reference="min_evals",
    )
    max_evals: int | None = option(
        None,
        Integer(minimum=1, optional=True),
        "Skip layers with more eigenvalues (default: no limit).",
        flag="--max-evals",
        reference="max_evals",
        reference_default=15000,
    )
    evals_threshold: float = option(
        1e-5,
        Number(at_least=0.0),
        "Eigenvalues ≤ this are left out of the power-law fit (not of the norms).",
        flag="--evals-threshold",
        group="fit",
    )
    conv_scale: ConvScale = option(
        "reference",
        Choice(CONV_SCALES),
        "Conv kernel slices: reference: × 1/√2 as the reference tool does (k/√2 per slice "
        "with --no-pool, as it does there); papers: × k/√2 for a k×k kernel; none: as stored.",
        flag="--conv-scale",
        reference="conv2d_norm",
        reference_default=True,
        reference_values={True: "reference", False: "none"},
    )
    include_embeddings: bool = option(
        True,
        Flag(),
        "Whether the model summary averages embedding layers too.",
        flag="--include-embeddings/--exclude-embeddings",
        changes_rows=False,
        group="report",
    )
    keep_eigenvalues: bool = option(
        False,
        Flag(),
        "Keep each layer's ESD in report.eigenvalues.",
        changes_rows=False,
        group="report",
    )
    keep_fits: bool = option(
        False,
        Flag(),
        "Keep each layer's LayerResult (spectrum, power-law and MP fits) in report.fits, "
        "as the figures and the HTML report draw them.",
        recorded=False,
        changes_rows=False,
        group="report",
    )
    max_matrix_elements: int | None = option(
        None,
        Integer(minimum=1, optional=True),
        "Skip (with the reason, before reading) layers whose matrices have more elements.",
        flag="--max-matrix-elements",
    )
    max_memory: int | None = option(
        None,
        ByteSize(),
        "Skip (with the reason, before reading) layers whose estimated peak memory is larger: "
        "bytes or a size such as 8GiB, 500MB (default: half of the smaller of the machine's "
        "memory and the address-space limit).",
        flag="--max-memory",
    )
    split_fused: bool = option(
        False,
        Flag(),
        "Split fused q/k/v projections (in_proj_weight, c_attn, qkv_proj, …) into q, k, v and "
        "PyTorch LSTM/GRU weights into their gates.",
        flag="--split-fused",
    )
    fused_heads: int | None = option(
        None,
        Integer(minimum=1, optional=True),
        "Attention heads of per-head interleaved query_key_value weights (with --split-fused; "
        "default: the checkpoint's config.json).",
        flag="--fused-heads",
    )
    # the fit (alphahat.fit.esd) — the reference tool's names
    fit: FitKind = option(
        "PL",
        Choice(FIT_KINDS),
        "PL: power law; TPL: truncated power law above the power law's x_min (adds Lambda); "
        "E_TPL: the same above the ESD peak.",
        flag="--fit",
        reference="fit",
        reference_values={"power_law": "PL", "truncated_power_law": "TPL"},
        group="fit",
    )
    fix_fingers: FixFingers | None = option(
        None,
        Choice(FIX_FINGERS, optional=True),
        "xmin_peak: x_min in [0.95, 1.5]× the ESD peak; clip_xmax: refit without up to "
        "max_fingers top eigenvalues that bend α (adds num_fingers, raw_alpha); xmin_mid: x_min "
        "at the median eigenvalue (TempBalance's and FARMS's fit; not the reference tool's).",
        flag="--fix-fingers",
        reference="fix_fingers",
        reference_default=False,
        reference_values={False: None},
        group="fit",
    )
    xmin_max: float | None = option(
        None,
        Number(above=0.0, optional=True),
        "With xmin_peak: the upper end of the x_min window (default 1.5 × the peak).",
        flag="--xmin-max",
        reference="xmin_max",
        group="fit",
    )
    max_fingers: int = option(
        DEFAULT_MAX_FINGERS,
        Integer(minimum=1),
        "With clip_xmax: the most top eigenvalues clipped.",
        flag="--max-fingers",
        reference="max_fingers",
        group="fit",
    )
    finger_thresh: float = option(
        DEFAULT_FINGER_THRESHOLD,
        Number(above=0.0),
        "With clip_xmax: how much lower than the unclipped α a clipped fit's α must be.",
        flag="--finger-thresh",
        reference="finger_thresh",
        group="fit",
    )
    xmax: int | None = option(
        None,
        NonZeroInteger(optional=True, what="eigenvalues to leave out"),
        "Leave the k largest eigenvalues out of the fit and of num_pl_spikes.",
        flag="--xmax",
        metavar="K",
        reference="xmax",
        reference_values={False: None, "force": None},
        group="fit",
    )
    # the estimator of α (alphahat.spectrum.farms)
    estimator: Estimator = option(
        "classic",
        Choice(ESTIMATORS),
        "classic: fit the ESD of W; farms: fit the pooled ESD of W's submatrices of one aspect "
        "ratio (FARMS, Hu et al. 2025), which removes the bias of W's shape on α.",
        flag="--estimator",
        recorded_if=_uses_farms,
        group="fit",
    )
    farms_size: int = option(
        2000,
        Integer(minimum=1),
        "With farms: the submatrices' shorter side m (capped at W's).",
        flag="--farms-size",
        recorded_if=_uses_farms,
        group="fit",
    )
    farms_aspect_ratio: float = option(
        1.0,
        Number(at_least=1.0),
        "With farms: the submatrices' aspect ratio Q = rows/columns (1: square).",
        flag="--farms-aspect-ratio",
        metavar="Q",
        recorded_if=_uses_farms,
        group="fit",
    )
    farms_windows: int = option(
        10,
        Integer(minimum=1),
        "With farms: submatrix positions per dimension, evenly spaced (overlapping where W is "
        "less than that many times the submatrix).",
        flag="--farms-windows",
        recorded_if=_uses_farms,
        group="fit",
    )
    # the reference tool's other per-layer computations (alphahat.pipeline.core)
    mp_fit: bool = option(
        False,
        Flag(),
        "Marchenko–Pastur fit of the bulk (sigma_mp, bulk_min/max, num_spikes, mp_softrank).",
        flag="--mp-fit",
        reference="mp_fit",
        group="fit",
    )
    randomize: bool = option(
        False,
        Flag(),
        "Compare with the element-shuffled W (rand_* columns, correlation traps).",
        flag="--randomize",
        reference="randomize",
        group="fit",
    )
    seed: int = option(
        0,
        Integer(minimum=0),
        "Seed of the shuffles of randomize and the masks of sparsify (each layer's own seed comes "
        "from it and its name).",
        flag="--seed",
        group="fit",
    )
    detX: bool = option(  # noqa: N815 (the reference tool's name)
        False,
        Flag(),
        "detX condition columns (detX_num, detX_val, ERG_gap).",
        flag="--detx",
        reference="detX",
        group="fit",
    )
    vectors: bool = option(
        False,
        Flag(),
        "Eigenvector localization of bulk vs tail (eigh of WᵀW).",
        flag="--vectors",
        reference="vectors",
        group="fit",
    )
    stacked: bool = option(
        False,
        Flag(),
        "Stack every analysed layer's matrix, robustly standardized and zero-padded, into one "
        "matrix and analyse it as one layer (Stacked Layer), as the reference tool does.",
        flag="--stacked",
        reference="stacked",
        group="fit",
    )
    intra: bool = option(
        False,
        Flag(),
        "Analyse the cross matrix X = W_l·W_l+1 / (‖W_l‖_F‖W_l+1‖_F) of each pair of consecutive "
        "analysed layers (aligned on their shared dimension; one row per pair, 'A X B'); its ESD "
        "is the singular values of X, as the reference tool's intra.",
        flag="--intra",
        reference="intra",
        recorded_if=_uses_intra,
        group="fit",
    )
    sparsify: bool = option(
        False,
        Flag(),
        "With intra: a seeded random ReLU gate between the two layers, X = W_l·D·W_l+1 with D "
        "a diagonal 0/1 mask (each unit on with probability 1/2; seed from seed and the pair).",
        flag="--sparsify",
        reference="sparsify",
        reference_default=True,
        recorded_if=_uses_intra,
        group="fit",
    )
    inverse: bool = option(
        False,
        Flag(),
        "Analyse the inverse ESD 1/λ (every column then describes 1/λ; λ from the SVD, zero "
        "eigenvalues left out).",
        flag="--inverse",
        reference="inverse",
        group="fit",
    )
    pool: bool = option(
        True,
        Flag(),
        "Pool a conv layer's kernel slices into one ESD, or one row per slice "
        "(name [slice i,j], slice_id).",
        flag="--pool/--no-pool",
        reference="pool",
    )
    fft: bool = option(
        False,
        Flag(),
        "Conv layers: the spectrum of the circular convolution operator on an fft_size input "
        "(Sedghi et al. 2018) instead of the kernel slices.",
        flag="--fft",
        reference="fft",
    )
    fft_size: int = option(
        32,
        Integer(minimum=1),
        "Input side n of fft (n×n for conv2d).",
        flag="--fft-size",
    )
    # how eigenvalues are computed (alphahat.spectrum.backends)
    backend: SpectrumBackend = option(
        "auto",
        Choice(SPECTRUM_BACKENDS),
        "Eigenvalues by: auto (float64 Gram matrix with an accuracy guard, SVD where it fails; "
        "torch with --device), svd (LAPACK float64 SVD, the reference), gram, float32, torch.",
        flag="--backend",
        group="spectrum",
    )
    device: str | None = option(
        None,
        Device(),
        "torch device for the spectra: cpu, cuda, cuda:1, mps.",
        flag="--device",
        group="spectrum",
    )
    float32_tolerance: float | None = option(
        None,
        Number(above=0.0, optional=True),
        "torch backend: try the Gram matrix in float32 first, kept where its guard bounds "
        "every tail eigenvalue's relative error by this (else float64). Only possible when "
        "M·1.2e-7 ≤ it.",
        flag="--float32-tolerance",
        recorded_if=lambda options: options.float32_tolerance is not None,
        group="spectrum",
    )

    def __post_init__(self) -> None:
        _validate(self)
        self._check_combinations()

    def _check_combinations(self) -> None:
        """The rules that concern several options."""
        if self.max_evals is not None and self.max_evals < self.min_evals:
            raise OptionError(
                "max_evals",
                f"an integer ≥ min_evals={self.min_evals}",
                self.max_evals,
                optional=True,
            )
        if self.fit == "E_TPL" and self.fix_fingers == "clip_xmax":
            raise OptionError(
                "fit", message="fit='E_TPL' fixes x_min at the ESD peak; it cannot use 'clip_xmax'"
            )
        if self.xmax is not None and self.fix_fingers is not None:
            raise OptionError(
                "xmax", message=f"xmax={self.xmax} cannot be combined with fix_fingers"
            )
        if self.fft and not self.pool:
            raise OptionError(
                "fft",
                message="fft=True and pool=False exclude each other: the FFT spectrum is one ESD "
                "of the whole conv operator, not of kernel slices",
            )
        if self.inverse and (self.vectors or self.fft):
            other = "vectors" if self.vectors else "fft"
            raise OptionError(
                "inverse",
                message=f"inverse=True cannot be combined with {other}=True (the inverse ESD has "
                "no eigenvectors or operator spectrum of its own here)",
            )
        if self.intra:
            others = [
                n for n in ("stacked", "randomize", "vectors", "inverse", "fft") if getattr(self, n)
            ] + (["estimator"] if self.estimator == "farms" else [])
            if others:
                raise OptionError(
                    "intra",
                    message=f"intra=True cannot be combined with {others[0]}"
                    f"{'=farms' if others[0] == 'estimator' else '=True'} (the cross matrix's ESD "
                    "is its singular values, not a weight matrix's eigenvalues)",
                )
        if self.fft and (self.randomize or self.vectors):
            other = "randomize" if self.randomize else "vectors"
            raise OptionError(
                "fft",
                message=f"fft=True cannot be combined with {other}=True (they need the real "
                "kernel slices; the FFT spectrum comes from complex frequency matrices)",
            )
        if self.estimator == "farms":
            others = [
                n
                for n in ("mp_fit", "randomize", "detX", "vectors", "fft", "inverse")
                if getattr(self, n)
            ]
            if others:
                raise OptionError(
                    "estimator",
                    message=f"estimator='farms' cannot be combined with {others[0]}=True (FARMS "
                    "fits the ESD of W's submatrices; that option describes W's own ESD)",
                )
        try:
            check_backend(self.backend, self.device)
        except ValueError as exc:
            raise OptionError("backend", message=str(exc)) from None
        if self.float32_tolerance is not None and not (
            uses_torch(self.backend, self.device) and self.backend != "float32"
        ):
            raise OptionError(
                "float32_tolerance",
                message="float32_tolerance applies to the torch Gram path: use backend='torch' "
                "or a device with backend='auto'",
            )

    @property
    def fit_policy(self) -> FitPolicy:
        """The fit options as :class:`~alphahat.fit.esd.FitPolicy`."""
        return FitPolicy(
            kind=self.fit,
            fix_fingers=self.fix_fingers,
            xmin_max=self.xmin_max,
            max_fingers=self.max_fingers,
            finger_threshold=float(self.finger_thresh),
            xmax=self.xmax,
            evals_threshold=float(self.evals_threshold),
        )

    @property
    def reads_weights(self) -> bool:
        """Whether the analysis reads the weights beyond their spectrum (on the host).

        ``randomize`` (shuffled weights), ``vectors`` (eigenvectors), FARMS (submatrices),
        ``fft`` (the kernel), ``intra`` and ``inverse`` (the exact SVD). Otherwise only the
        eigenvalues are needed, and a model's tensors on a torch device stay there
        (:class:`alphahat.layers.device.DeviceMatrices`).
        """
        return (
            self.randomize
            or self.vectors
            or self.fft
            or self.intra
            or self.inverse
            or self.estimator == "farms"
        )

    @property
    def limits(self) -> ResourceLimits:
        """``max_matrix_elements`` and ``max_memory`` as :class:`ResourceLimits`."""
        return ResourceLimits(self.max_matrix_elements, self.max_memory)

    def replace(self, **changes: Any) -> AnalysisOptions:
        """A copy with ``changes`` (checked like the original)."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The recorded options as plain JSON-able data (for reports and cache keys)."""
        out: dict[str, Any] = {}
        for spec in option_specs(AnalysisOptions):
            if not spec.recorded or (spec.recorded_if and not spec.recorded_if(self)):
                continue
            value = getattr(self, spec.name)
            if isinstance(value, LayerFilter):
                value = {k: list(v) for k, v in dataclasses.asdict(value).items()}
            out[spec.name] = value
        return out

    def rows_key(self) -> dict[str, Any]:
        """The recorded options the per-layer rows depend on (a journal's key)."""
        changing = {s.name for s in option_specs(AnalysisOptions) if s.changes_rows}
        return {k: v for k, v in self.as_dict().items() if k in changing}


ProgressCallback = Callable[[int, int, str], None]


@dataclass(frozen=True)
class ExecutionOptions:
    """How the layers are run; none of this changes a result (except a layer that times out).

    Every field is a row of the option table (module docstring).
    """

    workers: int = option(
        1,
        Integer(minimum=1),
        "Worker processes (1: in this process); each gets cores // workers BLAS threads. "
        "Results equal a serial run's.",
        flag="--workers",
        short="-j",
        group="execution",
    )
    scheduler: Any = option(
        None,
        Anything(),
        "Run layers on a Dask cluster: tcp://HOST:PORT or a dask.distributed.Client (its "
        "workers open the model, a path they can read, themselves).",
        flag="--scheduler",
        metavar="ADDRESS",
        group="execution",
    )
    layer_timeout: float | None = option(
        None,
        Number(above=0.0, optional=True, unit="seconds"),
        "Seconds a layer may take; slower ones are stopped and reported failed.",
        flag="--layer-timeout",
        metavar="SECONDS",
        group="execution",
    )
    journal: str | os.PathLike[str] | None = option(
        None,
        PathLike(),
        "Append each finished layer to this file (fsync'd): an interrupted run loses nothing "
        "and a rerun resumes.",
        group="execution",
    )
    resume: bool | None = option(
        None,
        TriState(),
        "Continue the journal of finished layers (on the command line: OUTPUT.partial.jsonl "
        "beside -o OUTPUT): yes (an error if a different run wrote it), no (start over), or by "
        "default when it is from the same model and options.",
        flag="--resume/--no-resume",
        group="execution",
    )
    blas_threads: int | None = option(
        None,
        Integer(minimum=1, optional=True),
        "BLAS threads per layer (default: all cores, split among the workers). Equal values "
        "give bit-identical results whatever the number of workers.",
        flag="--blas-threads",
        group="execution",
    )
    progress: bool | ProgressCallback = option(
        False,
        Anything(requirement="True, False or a callback(done, total, layer name)"),
        "A progress bar on stderr, or a callback(done, total, layer name) called at the start "
        "and after each layer.",
        group="execution",
    )

    def __post_init__(self) -> None:
        _validate(self)
        if not (isinstance(self.progress, bool) or callable(self.progress)):
            raise OptionError(
                "progress", "True, False or a callback(done, total, layer name)", self.progress
            )
        if self.scheduler is not None and self.workers > 1:
            raise OptionError(
                "scheduler",
                message="workers and scheduler exclude each other: the Dask cluster has its own "
                "workers",
            )
        if self.scheduler is not None and self.layer_timeout is not None:
            raise OptionError(
                "layer_timeout",
                message="layer_timeout is not supported with a Dask scheduler (a running Dask "
                "task cannot be stopped); use the cluster's own limits",
            )


@dataclass(frozen=True)
class SourceOptions:
    """How the model is opened; every field is a row of the option table."""

    base: Any = option(
        None,
        Anything(),
        "A base checkpoint (path, module or mapping): analyse W − W_base (tensors matched by "
        "full name), or for a LoRA adapter folder add the merged W + ΔW and base W views.",
        flag="--base",
        metavar="BASE",
        group="source",
    )
    unsafe_load: bool = option(
        False,
        Flag(),
        "Allow a full unpickle of .pt/.bin files (runs code from the file; trusted files only).",
        flag="--unsafe-load",
        group="source",
    )

    def __post_init__(self) -> None:
        _validate(self)


#: Every option, by name: the analysis, execution and source options.
OPTION_TABLE: Mapping[str, OptionSpec] = {
    spec.name: spec
    for cls in (AnalysisOptions, ExecutionOptions, SourceOptions)
    for spec in option_specs(cls)
}

#: The defaults (read by the keyword defaults of :func:`alphahat.analyze` and friends).
ANALYSIS_DEFAULTS = AnalysisOptions()
EXECUTION_DEFAULTS = ExecutionOptions()
SOURCE_DEFAULTS = SourceOptions()


def default(name: str) -> Any:
    """The default of option ``name``."""
    return OPTION_TABLE[name].default


def split_options(
    values: Mapping[str, Any],
) -> tuple[AnalysisOptions, ExecutionOptions, SourceOptions]:
    """The three option groups from one mapping of option names to values (checked)."""
    groups: tuple[type, ...] = (AnalysisOptions, ExecutionOptions, SourceOptions)
    names = [{s.name for s in option_specs(cls)} for cls in groups]
    unknown = sorted(set(values) - set().union(*names))
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(unknown)}")
    analysis, execution, source = (
        cls(**{k: v for k, v in values.items() if k in group})
        for cls, group in zip(groups, names, strict=True)
    )
    return analysis, execution, source


def reference_options() -> tuple[OptionSpec, ...]:
    """The rows that have a reference-tool (weightwatcher 0.7.7) name."""
    return tuple(spec for spec in OPTION_TABLE.values() if spec.reference)


__all__ = [
    "ANALYSIS_DEFAULTS",
    "ESTIMATORS",
    "EXECUTION_DEFAULTS",
    "Estimator",
    "OPTION_TABLE",
    "SOURCE_DEFAULTS",
    "AnalysisOptions",
    "Constraint",
    "ExecutionOptions",
    "LayerSpec",
    "OptionSpec",
    "ProgressCallback",
    "SourceOptions",
    "default",
    "option",
    "option_specs",
    "reference_options",
    "split_options",
]
