"""Spectrum: eigenvalues λ = σ² of WᵀW for a layer's matrices, pooled and sorted, in float64.

Eigenvalues are those of W as stored (not divided by N). The reference method is LAPACK's
divide-and-conquer SVD (``gesdd``) of each matrix upcast to float64; faster backends (the
guarded float64 Gram-matrix path, float32, torch on a GPU) are in :mod:`.backends`, with their
accuracy rules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.linalg

from alphahat.errors import LayerError
from alphahat.layers.device import DeviceMatrices
from alphahat.spectrum.backends import (
    FLOAT32_EPS,
    GRAM_RANK_MARGIN,
    GRAM_TAIL_RTOL,
    OVERFLOW_MESSAGE,
    SPECTRUM_BACKENDS,
    MatrixInput,
    SpectrumBackend,
    check_backend,
    check_device_available,
    float32_singular_values,
    gram_eigenvalues,
    non_finite_message,
    torch_gram_eigenvalues,
    torch_singular_values,
    uses_torch,
)

__all__ = [
    "SPECTRUM_BACKENDS",
    "LayerSpectrum",
    "SpectrumBackend",
    "check_backend",
    "check_device_available",
    "uses_torch",
    "layer_spectrum",
    "more_exact",
    "singular_values",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LayerSpectrum:
    """The pooled ESD of one layer.

    Attributes:
        eigenvalues: λᵢ = σᵢ², ascending, float64, M per matrix.
        N: rows of each matrix (N ≥ M).
        M: columns of each matrix.
        num_matrices: matrices pooled (kernel positions of a conv layer, else 1).
        method: how they were computed: ``svd``, ``gram``, ``svd (gram guard)`` (the Gram
            path was rejected by its guard), ``float32``, ``torch gram``, ``torch svd``,
            ``torch float32`` (torch ones followed by ``@device``).
        error_bound: bound δ on the absolute error of each eigenvalue relative to the
            float64 SVD (0 for the SVD itself; for float32 an estimate, not checked).
        guarded: the eigenvalues must pass :meth:`resolves` before a fit may use them.
        tail_rtol: the relative error of tail eigenvalues that :meth:`resolves` accepts
            (1e-6 for the float64 Gram path, the ``float32_tolerance`` for the float32 one).
    """

    eigenvalues: FloatArray = field(repr=False)
    N: int
    M: int
    num_matrices: int
    method: str = "svd"
    error_bound: float = 0.0
    guarded: bool = False
    tail_rtol: float = GRAM_TAIL_RTOL

    def resolves(self, cutoff: float, tail_start: float | None = None) -> bool:
        """Whether a fit of λ > ``cutoff`` with tail λ ≥ ``tail_start`` matches the SVD's.

        True for unguarded spectra. For the Gram path (see :mod:`.backends`): no eigenvalue
        within 4 δ of ``cutoff`` (the same eigenvalues are fitted), and δ ≤ ``tail_rtol`` ·
        x_min (every tail eigenvalue has a relative error below ``tail_rtol``, 1e-6 in
        float64).
        """
        if not self.guarded:
            return True
        delta = self.error_bound
        evals = self.eigenvalues
        if bool(np.any(np.abs(evals - cutoff) <= GRAM_RANK_MARGIN * delta)):
            return False
        return not (
            tail_start is not None
            and math.isfinite(tail_start)
            and delta > self.tail_rtol * tail_start
        )


def singular_values(matrix: npt.NDArray[np.generic], scale: float = 1.0) -> FloatArray:
    """Singular values of ``scale · matrix`` in float64 (LAPACK ``gesdd``), descending.

    Raises:
        LayerError: the matrix has NaN or Inf entries, or the SVD does not converge.
    """
    w = np.asarray(matrix, dtype=np.float64)
    if scale != 1.0:
        w = w * scale
    if not np.isfinite(w).all():
        raise LayerError(non_finite_message(np.asarray(matrix, dtype=np.float64)))
    try:
        values: FloatArray = scipy.linalg.svd(w, compute_uv=False, check_finite=False)
    except np.linalg.LinAlgError as exc:
        raise LayerError(f"SVD did not converge ({exc})") from exc
    return values


def check_eigenvalue_range(svals: FloatArray, evals: FloatArray, size: int) -> None:
    """Raise :class:`LayerError` unless every λ = σ² is representable in float64.

    Overflow: some λ is ±inf (σ > ~1.3e154). Underflow: a numerically non-zero σ (above the
    rank tolerance σ_max · size · ε) whose square is below the smallest normal float64
    (2.2e-308), so that λ would be 0 or a subnormal number with lost precision.
    """
    if not np.isfinite(evals).all():
        raise LayerError(OVERFLOW_MESSAGE)
    if svals.size == 0:
        return
    sigma_max = float(svals.max())
    tolerance = sigma_max * size * np.finfo(np.float64).eps
    tiny = np.finfo(np.float64).tiny
    if sigma_max > 0 and bool(np.any((svals > tolerance) & (evals < tiny))):
        raise LayerError(
            "eigenvalues underflow float64 (singular values below about 1.5e-154): weights "
            f"this small cannot be analysed in float64 (largest singular value {sigma_max:.3g})"
        )


def layer_spectrum(
    matrices: MatrixInput,
    scale: float = 1.0,
    *,
    backend: SpectrumBackend | str = "svd",
    device: str | None = None,
    float32_tolerance: float | None = None,
) -> LayerSpectrum:
    """Pooled, sorted eigenvalues of all matrices of a layer (each N × M with N ≥ M).

    ``backend`` and ``device`` choose the method (see :mod:`.backends`); ``svd`` is the
    reference. A guarded result (Gram path) must be checked with :meth:`LayerSpectrum.resolves`
    by the caller that knows the fit's cut-off and x_min, and recomputed (:func:`more_exact`)
    if not. ``matrices`` may be a layer's torch tensors on their device
    (:class:`~alphahat.layers.device.DeviceMatrices`): the torch backends compute there, the
    NumPy ones read them to the host. ``float32_tolerance``: try the float32 Gram path first
    with the torch backend (see :mod:`.backends`).
    """
    if len(matrices) == 0:
        raise LayerError("no matrices to analyse")
    check_backend(backend, device)
    if isinstance(matrices, DeviceMatrices):
        if uses_torch(backend, matrices.device) and backend != "svd":
            return _torch_spectrum(matrices, scale, backend, matrices.device, float32_tolerance)
        matrices = matrices.host_matrices()
    if backend != "svd":
        fast = _fast_spectrum(matrices, scale, backend, device, float32_tolerance)
        if fast is not None:
            return fast
    return _svd_spectrum(matrices, scale, "svd" if backend == "svd" else "svd (gram guard)")


def more_exact(spectrum: LayerSpectrum, matrices: MatrixInput, scale: float) -> LayerSpectrum:
    """The spectrum again by the next more exact method, for a guarded one that did not resolve.

    The float32 Gram path goes on to the float64 one on the same device (which falls back to
    the SVD itself); the float64 Gram path goes to the float64 SVD: on the tensors' device
    for :class:`~alphahat.layers.device.DeviceMatrices` (``torch svd@…``), else LAPACK's.
    The method then ends in `` (gram guard)``.
    """
    N, M, count = spectrum.N, spectrum.M, spectrum.num_matrices
    where = spectrum.method.partition("@")[2]
    if spectrum.method.startswith("torch gram float32"):
        found = torch_gram_eigenvalues(matrices, scale, where)
        if found is not None:
            return LayerSpectrum(found[0], N, M, count, f"torch gram@{where}", found[1], True)
    if isinstance(matrices, DeviceMatrices):
        svals = torch_singular_values(matrices, scale, matrices.device, "float64")
        method = f"torch svd@{matrices.device} (gram guard)"
        return _from_singular_values(svals, N, M, count, method, 0)
    return _svd_spectrum(matrices, scale, "svd (gram guard)")


def _torch_spectrum(
    matrices: MatrixInput,
    scale: float,
    backend: str,
    where: str,
    float32_tolerance: float | None,
) -> LayerSpectrum:
    """The torch backends on ``where``: float32 SVD, or the guarded Gram path(s), else SVD."""
    if isinstance(matrices, DeviceMatrices):
        N, M = matrices.shape
    else:
        N, M = (int(d) for d in matrices[0].shape)
    count = len(matrices)
    if backend == "float32":
        svals = torch_singular_values(matrices, scale, where, "float32")
        return _from_singular_values(svals, N, M, count, f"torch float32@{where}", M)
    if float32_tolerance is not None and float32_tolerance >= M * FLOAT32_EPS:
        found = torch_gram_eigenvalues(matrices, scale, where, "float32")
        if found is not None:
            method = f"torch gram float32@{where}"
            return LayerSpectrum(
                found[0], N, M, count, method, found[1], True, float(float32_tolerance)
            )
    found = torch_gram_eigenvalues(matrices, scale, where)
    if found is None:
        svals = torch_singular_values(matrices, scale, where, "float64")
        return _from_singular_values(svals, N, M, count, f"torch svd@{where}", 0)
    return LayerSpectrum(found[0], N, M, count, f"torch gram@{where}", found[1], True)


def _fast_spectrum(
    matrices: Sequence[npt.NDArray[np.generic]],
    scale: float,
    backend: str,
    device: str | None,
    float32_tolerance: float | None,
) -> LayerSpectrum | None:
    """The non-reference backends; None when the Gram guard sends the layer to the SVD."""
    N, M = (int(d) for d in matrices[0].shape)
    count = len(matrices)
    if uses_torch(backend, device):
        return _torch_spectrum(matrices, scale, backend, device or "cpu", float32_tolerance)
    if backend == "float32":
        svals = np.concatenate([float32_singular_values(w, scale) for w in matrices])
        return _from_singular_values(svals, N, M, count, "float32", M)
    found = gram_eigenvalues(matrices, scale)  # "gram", or "auto" on the CPU
    if found is None:
        return None
    return LayerSpectrum(found[0], N, M, count, "gram", found[1], True)


def _from_singular_values(
    svals: FloatArray, N: int, M: int, count: int, method: str, float32_dims: int
) -> LayerSpectrum:
    with np.errstate(over="ignore", under="ignore"):
        evals = svals**2
    check_eigenvalue_range(svals, evals, max(N, M))
    evals.sort()
    bound = 0.0
    if float32_dims and evals.size:
        bound = float32_dims * float(np.finfo(np.float32).eps) * float(evals[-1])
    return LayerSpectrum(evals, N, M, count, method, bound, False)


def _svd_spectrum(
    matrices: Sequence[npt.NDArray[np.generic]], scale: float, method: str
) -> LayerSpectrum:
    """The reference: float64 ``gesdd`` of each matrix."""
    N, M = matrices[0].shape
    svals = np.concatenate([singular_values(w, scale) for w in matrices])
    with np.errstate(over="ignore", under="ignore"):
        evals = svals**2
    check_eigenvalue_range(svals, evals, max(int(N), int(M)))
    evals.sort()
    return LayerSpectrum(evals, int(N), int(M), len(matrices), method)
