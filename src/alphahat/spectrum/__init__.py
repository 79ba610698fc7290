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
from alphahat.spectrum.backends import (
    GRAM_RANK_MARGIN,
    GRAM_TAIL_RTOL,
    SPECTRUM_BACKENDS,
    SpectrumBackend,
    check_backend,
    check_device_available,
    float32_singular_values,
    gram_eigenvalues,
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
    """

    eigenvalues: FloatArray = field(repr=False)
    N: int
    M: int
    num_matrices: int
    method: str = "svd"
    error_bound: float = 0.0
    guarded: bool = False

    def resolves(self, cutoff: float, tail_start: float | None = None) -> bool:
        """Whether a fit of λ > ``cutoff`` with tail λ ≥ ``tail_start`` matches the SVD's.

        True for unguarded spectra. For the Gram path (see :mod:`.backends`): no eigenvalue
        within 4 δ of ``cutoff`` (the same eigenvalues are fitted), and δ ≤ 1e-6 · x_min
        (every tail eigenvalue has a relative error below 1e-6).
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
            and delta > GRAM_TAIL_RTOL * tail_start
        )


def _non_finite_message(matrix: npt.NDArray[np.generic]) -> str:
    nan = int(np.isnan(matrix).sum())
    inf = int(np.isinf(matrix).sum())
    parts = [f"{nan} NaN" if nan else "", f"{inf} Inf" if inf else ""]
    return f"weights contain {' and '.join(p for p in parts if p)} value(s)"


def singular_values(matrix: npt.NDArray[np.generic], scale: float = 1.0) -> FloatArray:
    """Singular values of ``scale · matrix`` in float64 (LAPACK ``gesdd``), descending.

    Raises:
        LayerError: the matrix has NaN or Inf entries, or the SVD does not converge.
    """
    w = np.asarray(matrix, dtype=np.float64)
    if scale != 1.0:
        w = w * scale
    if not np.isfinite(w).all():
        raise LayerError(_non_finite_message(np.asarray(matrix, dtype=np.float64)))
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
        raise LayerError("eigenvalues overflow float64 (weights larger than about 1e154)")
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
    matrices: Sequence[npt.NDArray[np.generic]],
    scale: float = 1.0,
    *,
    backend: SpectrumBackend | str = "svd",
    device: str | None = None,
) -> LayerSpectrum:
    """Pooled, sorted eigenvalues of all matrices of a layer (each N × M with N ≥ M).

    ``backend`` and ``device`` choose the method (see :mod:`.backends`); ``svd`` is the
    reference. A guarded result (Gram path) must be checked with :meth:`LayerSpectrum.resolves`
    by the caller that knows the fit's cut-off and x_min, and recomputed with ``svd`` if not.
    """
    if not matrices:
        raise LayerError("no matrices to analyse")
    check_backend(backend, device)
    N, M = matrices[0].shape
    if backend != "svd":
        fast = _fast_spectrum(matrices, scale, backend, device)
        if fast is not None:
            return fast
    return _svd_spectrum(matrices, scale, "svd" if backend == "svd" else "svd (gram guard)")


def _fast_spectrum(
    matrices: Sequence[npt.NDArray[np.generic]], scale: float, backend: str, device: str | None
) -> LayerSpectrum | None:
    """The non-reference backends; None when the Gram guard sends the layer to the SVD."""
    N, M = (int(d) for d in matrices[0].shape)
    count = len(matrices)
    if uses_torch(backend, device):
        where = device or "cpu"
        if backend == "float32":
            svals = torch_singular_values(matrices, scale, where, "float32")
            return _from_singular_values(svals, N, M, count, f"torch float32@{where}", M)
        found = torch_gram_eigenvalues(matrices, scale, where)
        if found is None:
            svals = torch_singular_values(matrices, scale, where, "float64")
            return _from_singular_values(svals, N, M, count, f"torch svd@{where}", 0)
        return LayerSpectrum(found[0], N, M, count, f"torch gram@{where}", found[1], True)
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
