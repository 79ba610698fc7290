"""The per-layer core: one layer's matrices and the options in, a frozen :class:`LayerResult` out.

Pure computation: NumPy arrays in, dataclasses out; no threads, no I/O. The stages, in order:

1. **Spectrum** (:mod:`alphahat.spectrum`): λ = σ² of the matrices (times the conv scale),
   pooled and sorted, by the options' backend; with ``fft`` a conv kernel's operator spectrum
   (:mod:`alphahat.spectrum.conv_fft`); with ``inverse`` the inverse ESD 1/λ (:func:`inverted`);
   with ``intra`` the matrix is a cross matrix X of two layers (:mod:`alphahat.layers.intra`)
   and its ESD is X's singular values σ (the SVD's).
   With ``estimator="farms"`` the fitted ESD is instead the pooled spectrum of W's
   fixed-aspect-ratio submatrices (:mod:`alphahat.spectrum.farms`; :func:`farms_stage`),
   and the spectrum of W itself gives the norm columns.
2. **Fit** (:func:`fit_stage`): the tail fit under the options' policy
   (:func:`alphahat.fit.esd.fit_esd`: the sample, the x_min search, TPL, vetting and
   ``num_pl_spikes``). A guarded fast spectrum (the Gram path) that does not resolve the
   fit's cut-off and x_min is recomputed by the SVD and fitted again — the only retry.
3. **The reference tool's other computations**, each on request: the Marchenko–Pastur fit of
   the bulk (``mp_fit``), the element-shuffled ESD with its own MP fit and the correlation
   traps (``randomize``), the detX condition (``detX``) and eigenvector localization
   (``vectors``); they read the fit stage's ``num_pl_spikes``.
4. **Metrics** (:func:`alphahat.metrics.layer_metrics`): the row's numbers, read from the
   spectrum and the fit, never recomputed. With FARMS: α and the fit columns (D, x_min,
   x_max, σ, ``num_pl_spikes``) from the FARMS fit, the norm columns from W's own spectrum,
   α̂ = α_FARMS · log₁₀ λ_max(W), plus ``alpha_estimator`` (``farms``), ``farms_shape``
   (the submatrices' n × m) and ``farms_submatrices`` (how many were pooled).

An error (NaN weights, an SVD that does not converge, …) is raised; the caller's error scope
turns it into a ``failed`` row (:func:`failed_row`, :func:`error_reason`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from alphahat.errors import AlphahatError
from alphahat.fit import fit_power_law
from alphahat.fit.esd import LayerFit, fit_esd
from alphahat.fit.marchenko_pastur import MarchenkoPasturFit, fit_marchenko_pastur
from alphahat.layers.device import DeviceMatrices
from alphahat.metrics import layer_metrics
from alphahat.metrics.detx import detx_condition
from alphahat.metrics.eigenvectors import eigenvector_columns
from alphahat.metrics.randomization import mp_columns, randomization_columns
from alphahat.pipeline.options import ANALYSIS_DEFAULTS, AnalysisOptions
from alphahat.spectrum import LayerSpectrum, layer_spectrum, more_exact
from alphahat.spectrum.backends import MatrixInput
from alphahat.spectrum.farms import farms_submatrices
from alphahat.spectrum.randomize import RandomizedSpectrum, layer_randomized_spectrum

Array = npt.NDArray[np.generic]
FloatArray = npt.NDArray[np.float64]

#: Errors that fail one layer with their message as the reason (anything else is a bug of
#: ours, reported as an internal error; both leave the other layers untouched).
LAYER_ERRORS: tuple[type[BaseException], ...] = (
    AlphahatError,
    ValueError,
    ArithmeticError,
    MemoryError,
    OSError,
)


def error_reason(exc: BaseException) -> str:
    """The ``reason`` of a layer that failed with ``exc``."""
    if isinstance(exc, LAYER_ERRORS):
        return str(exc) or type(exc).__name__
    return f"internal error: {type(exc).__name__}: {exc}"


@dataclass(frozen=True, eq=False)
class LayerResult:
    """Everything the analysis of one layer computed.

    Attributes:
        spectrum: the layer's fitted ESD (sorted λ, N, M, matrices pooled, how it was
            computed): W's own, or with ``estimator="farms"`` its submatrices' (N × M then the
            submatrices' shape).
        fit: the tail fit the row reports (its sample, threshold, policy and x_min search).
        row: the metric columns of the layer's row (α, α̂, D, norms, the options' columns,
            ``spectrum_method``, ``status``, ``reason``); plan columns (name, shape, …) are
            the caller's. Read-only by convention.
        mp_fit: the Marchenko–Pastur fit of the bulk (with ``mp_fit``).
        randomized: the element-shuffled ESD (with ``randomize``).
        randomized_mp_fit: the MP fit of the shuffled ESD (with ``randomize``).
        matrix_spectrum: W's own ESD where it is not ``spectrum`` (with FARMS), else None.
    """

    spectrum: LayerSpectrum
    fit: LayerFit
    row: Mapping[str, Any] = field(repr=False)
    mp_fit: MarchenkoPasturFit | None = None
    randomized: RandomizedSpectrum | None = field(default=None, repr=False)
    randomized_mp_fit: MarchenkoPasturFit | None = None
    matrix_spectrum: LayerSpectrum | None = field(default=None, repr=False)

    @property
    def eigenvalues(self) -> FloatArray:
        """The layer's eigenvalues λ, ascending."""
        return self.spectrum.eigenvalues

    @property
    def status(self) -> str:
        """``fitted`` or ``failed``."""
        return str(self.row["status"])

    @property
    def reason(self) -> str:
        """Why the layer failed, or why an MP fit asked for has no numbers (else empty)."""
        return str(self.row["reason"])


def _oriented(matrices: Sequence[npt.ArrayLike] | npt.ArrayLike) -> list[Array]:
    """The matrices as 2-D arrays, each N × M with N ≥ M (a transposed view where needed)."""
    if isinstance(matrices, np.ndarray) or not isinstance(matrices, Sequence):
        items: list[Any] = [matrices]
    else:
        items = list(matrices)
    out = []
    for item in items:
        matrix = np.asarray(item)
        if matrix.ndim != 2:
            raise ValueError(f"a layer's matrices must be 2-D; got shape {matrix.shape}")
        out.append(matrix.T if matrix.shape[0] < matrix.shape[1] else matrix)
    if not out:
        raise ValueError("no matrices to analyse")
    shapes = {m.shape for m in out}
    if len(shapes) > 1:
        raise ValueError(f"a layer's matrices must have one shape; got {sorted(shapes)}")
    return out


def fit_stage(
    spectrum: LayerSpectrum,
    matrices: MatrixInput,
    scale: float,
    options: AnalysisOptions,
) -> tuple[LayerSpectrum, LayerFit]:
    """The layer's fit, and the spectrum it was made on.

    A guarded spectrum (the Gram path) must resolve the fit: no eigenvalue within its error
    bound of ``evals_threshold``, and every tail eigenvalue's relative error below 1e-6 (the
    ``float32_tolerance`` for the float32 Gram path)
    (:meth:`~alphahat.spectrum.LayerSpectrum.resolves`); where it does not, the eigenvalues
    are recomputed by the next more exact method (:func:`~alphahat.spectrum.more_exact`:
    float32 Gram → float64 Gram → float64 SVD, ``method`` ``… (gram guard)``) and fitted again.
    """
    policy = options.fit_policy
    fit = fit_esd(spectrum.eigenvalues, spectrum.N, policy)
    while not spectrum.resolves(options.evals_threshold, _tail_start(fit)):
        spectrum = more_exact(spectrum, matrices, scale)
        fit = fit_esd(spectrum.eigenvalues, spectrum.N, policy)
    return spectrum, fit


def _options_spectrum(
    matrices: MatrixInput, scale: float, options: AnalysisOptions
) -> LayerSpectrum:
    """The spectrum by the options' backend, device and float32 tolerance."""
    return layer_spectrum(
        matrices,
        scale,
        backend=options.backend,
        device=options.device,
        float32_tolerance=options.float32_tolerance,
    )


def _host(matrices: MatrixInput) -> Sequence[Array]:
    """Host matrices (a device layer's read to host memory, once)."""
    return matrices.host_matrices() if isinstance(matrices, DeviceMatrices) else matrices


def _tail_start(fit: LayerFit) -> float | None:
    return fit.searched_xmin if math.isfinite(fit.searched_xmin) else None


def farms_stage(
    spectrum: LayerSpectrum, matrices: MatrixInput, scale: float, options: AnalysisOptions
) -> tuple[LayerSpectrum, LayerSpectrum, LayerFit, dict[str, Any]]:
    """FARMS: the fitted submatrix ESD, W's own spectrum, the fit and the FARMS columns.

    The submatrices (:func:`alphahat.spectrum.farms.farms_submatrices`) go through the same
    spectrum backend and :func:`fit_stage` (its Gram guard included) as W would. W's own
    spectrum, which gives the norm columns, is recomputed by the SVD where a guarded one
    does not resolve ``evals_threshold``.
    """
    if not matrices:
        raise ValueError("estimator='farms' needs the layer's matrices")
    views, where = farms_submatrices(
        _host(matrices), options.farms_size, options.farms_aspect_ratio, options.farms_windows
    )
    sampled = _options_spectrum(views, scale, options)
    sampled, fit = fit_stage(sampled, views, scale, options)
    while not spectrum.resolves(options.evals_threshold):
        spectrum = more_exact(spectrum, matrices, scale)
    columns = {
        "alpha_estimator": "farms",
        "farms_shape": where.shape,
        "farms_submatrices": where.count * len(matrices),
    }
    return sampled, spectrum, fit, columns


@dataclass(frozen=True)
class _Extras:
    """The reference tool's other computations of one layer."""

    columns: dict[str, Any]
    mp_fit: MarchenkoPasturFit | None = None
    randomized: RandomizedSpectrum | None = None
    randomized_mp_fit: MarchenkoPasturFit | None = None

    @property
    def notes(self) -> str:
        """Why an MP fit that was asked for has no numbers (for the row's ``reason``)."""
        failed = [
            f"{what}: {fit.status}: {fit.reason}"
            for what, fit in (
                ("MP fit", self.mp_fit),
                ("MP fit of the shuffled ESD", self.randomized_mp_fit),
            )
            if fit is not None and not fit.fitted
        ]
        return "; ".join(failed)


def _extras(
    spectrum: LayerSpectrum,
    fit: LayerFit,
    matrices: MatrixInput,
    weight: Array | None,
    scale: float,
    name: str,
    options: AnalysisOptions,
) -> _Extras:
    """The ``mp_fit``, ``randomize``, ``detX`` and ``vectors`` columns (and fits) of a layer."""
    evals, N, M = spectrum.eigenvalues, spectrum.N, spectrum.M
    columns: dict[str, Any] = {}
    mp = shuffled = shuffled_mp = None
    if options.mp_fit:
        mp = fit_marchenko_pastur(evals, N=N, M=M)
        columns.update(mp_columns(mp))
    if options.randomize:
        matrices = _host(matrices)
        stored = weight if weight is not None else matrices[0]
        shuffled = layer_randomized_spectrum(
            stored, matrices, scale, seed=options.seed, name=name, exact=options.backend == "svd"
        )
        if options.inverse:
            shuffled = replace(
                shuffled,
                eigenvalues=inverted(shuffled.eigenvalues),
                replicas=tuple(inverted(r) for r in shuffled.replicas),
            )
        shuffled_mp = fit_marchenko_pastur(shuffled.eigenvalues, N=N, M=M)
        replicas = len(shuffled.replicas)
        columns.update(randomization_columns(evals, shuffled.eigenvalues, shuffled_mp, replicas))
    if options.detX:
        condition = detx_condition(evals)
        columns["detX_num"] = condition.num
        columns["detX_val"] = condition.value
        spikes = fit.num_pl_spikes
        columns["ERG_gap"] = None if spikes is None else condition.num - spikes
    if options.vectors:
        columns.update(eigenvector_columns(_host(matrices), fit.num_pl_spikes, scale))
    return _Extras(columns, mp, shuffled, shuffled_mp)


def _spectrum(
    matrices: list[Array] | DeviceMatrices,
    weight: Array | None,
    scale: float,
    options: AnalysisOptions,
) -> tuple[LayerSpectrum, MatrixInput]:
    """Stage 1: the layer's spectrum, and the matrices the other stages use.

    :class:`~alphahat.layers.device.DeviceMatrices` come here only when the options read
    nothing but the spectrum (:attr:`AnalysisOptions.reads_weights` is False).
    """
    if options.fft and weight is not None and weight.ndim >= 3:
        from alphahat.spectrum.conv_fft import conv_operator_spectrum

        return conv_operator_spectrum(weight, options.fft_size, scale), []
    if options.intra:  # a cross matrix X (alphahat.layers.intra): its ESD is σ(X), not σ²
        exact = layer_spectrum(matrices, scale, backend="svd")
        singular = np.sqrt(exact.eigenvalues)
        singular.setflags(write=False)
        return replace(exact, eigenvalues=singular, method="svd, intra σ(X)"), matrices
    if options.inverse:  # 1/λ: the small eigenvalues become the tail, so exact ones
        exact = layer_spectrum(matrices, scale, backend="svd")
        return replace(
            exact, eigenvalues=inverted(exact.eigenvalues), method="svd, inverse"
        ), matrices
    spectrum = _options_spectrum(matrices, scale, options)
    return spectrum, matrices


def inverted(eigenvalues: FloatArray) -> FloatArray:
    """The inverse ESD: 1/λ of the eigenvalues λ > 0, ascending (zeros left out), read-only.

    The reference tool's ``inverse=True`` (weightwatcher 0.7.7) inverts every eigenvalue,
    zeros included (giving inf); and for a layer of several matrices (conv kernel positions)
    it inverts the pooled ESD once per matrix, so the first matrices' values are inverted
    again and again. Here each eigenvalue is inverted once.
    """
    values = np.asarray(eigenvalues, dtype=np.float64)
    out = np.sort(1.0 / values[values > 0])
    out.setflags(write=False)
    return out


def analyse_layer(
    matrices: Sequence[npt.ArrayLike] | npt.ArrayLike | DeviceMatrices,
    options: AnalysisOptions | None = None,
    *,
    scale: float = 1.0,
    name: str = "",
    weight: npt.ArrayLike | None = None,
) -> LayerResult:
    """Analyse one layer: its spectrum, fits and metric row (see the module docstring).

    Args:
        matrices: the layer's matrix, or its matrices (one per conv kernel position, all of
            one shape); each is used as N × M with N ≥ M (transposed if needed).
            Or a layer's torch tensors on their device
            (:class:`~alphahat.layers.device.DeviceMatrices`, already N × M): with the torch
            backend only their eigenvalues reach the host, unless the options read the
            weights themselves (``randomize``, ``vectors``, FARMS, ``fft``, …).
        options: the analysis options (default: the defaults); ``layers``, ``min_evals`` and
            the other planning options do not apply to a single layer.
        scale: multiplier of the matrices before the spectrum (the conv scale convention).
        name: the layer's name, which seeds its shuffles with ``randomize``.
        weight: the tensor as stored, when it is not the one matrix given: ``randomize``
            shuffles a 2-D weight as stored, and ``fft`` needs a conv kernel (out, in, k…).

    Raises:
        alphahat.errors.LayerError: non-finite weights, or eigenvalues outside float64.
        ValueError: matrices that are not 2-D or not of one shape.
    """
    options = options if options is not None else ANALYSIS_DEFAULTS
    if isinstance(matrices, DeviceMatrices) and options.reads_weights:
        weight = matrices.host_weight()
        matrices = matrices.host_matrices()
    oriented: list[Array] | DeviceMatrices
    if isinstance(matrices, DeviceMatrices):
        oriented, stored = matrices, None  # N × M already; only the eigenvalues leave the device
    else:
        oriented = _oriented(matrices)
        stored = np.asarray(weight) if weight is not None else None
        one = isinstance(matrices, np.ndarray) or not isinstance(matrices, Sequence)
        if stored is None and one:
            stored = np.asarray(matrices)  # one matrix, as given
    spectrum, used = _spectrum(oriented, stored, scale, options)
    own: LayerSpectrum | None = None
    estimator_columns: dict[str, Any] = {}
    if options.estimator == "farms":
        spectrum, own, fit, estimator_columns = farms_stage(spectrum, used, scale, options)
    else:
        spectrum, fit = fit_stage(spectrum, used, scale, options)
    matrix = own if own is not None else spectrum
    row = layer_metrics(matrix.eigenvalues, matrix.N, fit)
    row.update(fit.columns())
    row["spectrum_method"] = spectrum.method
    row.update(estimator_columns)
    extras = _extras(spectrum, fit, used, stored, scale, name, options)
    row.update(extras.columns)
    if fit.fitted:
        row["status"], row["reason"] = "fitted", extras.notes
    else:
        reason = f"power-law fit: {fit.status}: {fit.reason}"
        row["status"], row["reason"] = "failed", "; ".join(filter(None, (reason, extras.notes)))
    return LayerResult(
        spectrum, fit, row, extras.mp_fit, extras.randomized, extras.randomized_mp_fit, own
    )


def failed_row(reason: str) -> dict[str, Any]:
    """The metric columns of a layer that failed before it had a spectrum: all missing."""
    row: dict[str, Any] = layer_metrics(np.empty(0), 1, fit_power_law([]))
    row.update({"num_pl_spikes": None, "matrix_rank": None})
    row.update({"status": "failed", "reason": reason})
    return row


__all__ = [
    "LAYER_ERRORS",
    "LayerResult",
    "analyse_layer",
    "error_reason",
    "failed_row",
    "farms_stage",
    "fit_stage",
    "inverted",
]
