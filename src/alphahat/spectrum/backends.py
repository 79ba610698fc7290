"""Spectrum backends: how the eigenvalues λ = σ² of a layer's N × M matrices (N ≥ M) are computed.

===========  ==================================================================================
backend      method
===========  ==================================================================================
``svd``      singular values of each matrix in float64, LAPACK ``gesdd`` (``scipy.linalg.svd``);
             λ = σ². The reference: every other backend is checked against it.
``gram``     λ = eigenvalues of the smaller Gram matrix G = WᵀW (M × M), formed in float64
             (blocked over rows, so a float32 tensor is never copied whole to float64) and
             diagonalised by LAPACK ``syevd`` (``numpy.linalg.eigvalsh``); conv slices batched.
             *Guarded* (see below): a matrix the guard rejects is recomputed with ``svd``.
``float32``  singular values in float32 (``sgesdd``), squared in float64. Not guarded: the user
             asked for speed over the last digits (relative error of λ ≈ M · 6e-8 · λ_max / λ).
``torch``    the ``gram`` algorithm (float64, same guard, SVD fallback) with torch on
             ``device`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``); ``float32`` with a device is
             ``torch.linalg.svdvals`` in float32 there. With a ``float32_tolerance`` τ the
             Gram matrix is first formed and diagonalised in float32, guarded like the
             float64 one with ε₃₂ = 2⁻²³ and τ in place of 1e-6 (below); a layer it does
             not resolve goes on to float64. The matrices may be a layer's torch tensors on
             their device (:class:`~alphahat.layers.device.DeviceMatrices`): only the
             eigenvalues then come to the host.
``auto``     ``gram``; ``torch`` when a ``device`` is given (``float32`` too).
===========  ==================================================================================

**Accuracy of the Gram path.** Forming G and diagonalising it in float64 gives each eigenvalue
an absolute error of order ε · λ_max (ε = 2⁻⁵²), where the SVD's error is of order ε · σ · σ_max:
large eigenvalues are as accurate as the SVD's (relative error ~1e-13), small ones lose
precision as λ_max / λ grows. We bound the error of every eigenvalue by

    δ = M · ε · λ_max        (measured: the largest error is 0.03–0.07 δ, see docs/performance.md)

and accept the Gram eigenvalues of a matrix only when

1. λ_min ≥ 4 δ: every eigenvalue is then certainly positive and far above NumPy's rank tolerance
   (σ_max · N · ε)², so ``matrix_rank`` (= M) and the entropy's ln(rank) equal the SVD's; and
   λ_max · M · ε is a normal float64 (no underflow);
2. (checked by the caller after the fit, :meth:`LayerSpectrum.resolves`) no eigenvalue lies
   within 4 δ of the fit's cut-off (1e-5 by default), so the same eigenvalues enter the fit, and
   δ ≤ 1e-6 · x_min, so every tail eigenvalue λ ≥ x_min — all that α, D and σ depend on — has a
   relative error below 1e-6 (in practice ~1e-10).

A rejected matrix is recomputed with the SVD (its row says ``svd (gram guard)``). Rank-deficient
matrices (LoRA products, zero rows) are always rejected by rule 1.

**The float32 Gram path** (torch, on request: ``float32_tolerance`` τ). The same two rules with
δ₃₂ = M · ε₃₂ · λ_max (ε₃₂ = 2⁻²³ ≈ 1.2e-7) and, in rule 2, δ₃₂ ≤ τ · x_min: every tail
eigenvalue then has a relative error below τ. Since x_min ≤ λ_max, rule 2 can only hold when
M · ε₃₂ ≤ τ, so the float32 pass is not even tried otherwise (at τ = 1e-6, the float64 rule,
that is M ≤ 8: float32 is a speed-for-accuracy trade the user chooses, never the default).
For the same x_min, α = 1 + n / Σ ln(λᵢ/x_min) then moves by at most about 2 τ (α − 1)²
(each logarithm by at most 2 τ): the rows agree with the float64 analysis to that tolerance,
not to 1e-13 (and a KS near-tie between two x_min candidates may be resolved differently).
Torch must multiply float32 matrices in float32: where TF32 or bf16 products are allowed
(``torch.set_float32_matmul_precision("high")``) the float32 pass is skipped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from alphahat._imports import require
from alphahat.errors import LayerError
from alphahat.layers.device import DeviceMatrices

FloatArray = npt.NDArray[np.float64]
#: What the torch backend takes: host matrices, or a layer's tensors on their device.
MatrixInput = Sequence[npt.NDArray[np.generic]] | DeviceMatrices

SpectrumBackend = Literal["auto", "svd", "gram", "float32", "torch"]
#: Accepted values of ``backend``.
SPECTRUM_BACKENDS: tuple[str, ...] = ("auto", "svd", "gram", "float32", "torch")

_EPS = float(np.finfo(np.float64).eps)
_TINY = float(np.finfo(np.float64).tiny)
#: Gram eigenvalues are accepted when λ_min ≥ this many error bounds δ = M · ε · λ_max.
GRAM_RANK_MARGIN = 4.0
#: ... and when δ ≤ this times the fit's x_min (relative error bound of every tail eigenvalue).
GRAM_TAIL_RTOL = 1e-6
#: Rows of a matrix upcast to float64 at a time while forming the Gram matrix (bytes).
_BLOCK_BYTES = 64 * 1024 * 1024

_DEVICE_PREFIXES = ("cpu", "cuda", "mps", "xpu")


def check_backend(backend: str, device: str | None) -> None:
    """Validate a backend name and device string (no import of torch here).

    Raises:
        ValueError: unknown backend, malformed device, or a device with a CPU-only backend.
    """
    if backend not in SPECTRUM_BACKENDS:
        raise ValueError(
            f"backend must be one of {', '.join(map(repr, SPECTRUM_BACKENDS))}; got {backend!r}"
        )
    if device is None:
        return
    kind, _, index = str(device).partition(":")
    if (
        kind not in _DEVICE_PREFIXES
        or (index and not index.isdigit())
        or (":" in device and not index)
    ):
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N', 'mps' or 'xpu'; got {device!r}")
    if backend in ("svd", "gram") and kind != "cpu":
        raise ValueError(
            f"backend {backend!r} runs on the CPU with NumPy/SciPy; for device {device!r} use "
            "backend 'auto', 'torch' or 'float32'"
        )


def uses_torch(backend: str, device: str | None) -> bool:
    """Whether this backend/device pair computes with torch."""
    return backend == "torch" or (backend in ("auto", "float32") and device is not None)


def check_device_available(device: str | None) -> None:
    """Raise :class:`ValueError` when a torch device is requested but absent here."""
    if device is None or device == "cpu":
        return
    torch = require("torch", f"device {device!r}")
    kind = device.partition(":")[0]
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r}: torch {torch.__version__} sees no CUDA GPU "
                "(a CPU-only build, or no driver); use --device cpu"
            )
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
    elif kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r}: MPS is not available in this torch build")


#: The error of weights that are finite but whose eigenvalues are not.
OVERFLOW_MESSAGE = "eigenvalues overflow float64 (weights larger than about 1e154)"


def _counts_message(nan: int, inf: int) -> str:
    """'weights contain 3 NaN and 1 Inf value(s)'."""
    parts = [f"{nan} NaN" if nan else "", f"{inf} Inf" if inf else ""]
    return f"weights contain {' and '.join(p for p in parts if p)} value(s)"


def non_finite_message(matrix: npt.NDArray[np.generic]) -> str:
    """'weights contain 3 NaN and 1 Inf value(s)' for a NumPy array."""
    return _counts_message(int(np.isnan(matrix).sum()), int(np.isinf(matrix).sum()))


def _raise_non_finite(matrices: Sequence[npt.NDArray[np.generic]]) -> None:
    """The Gram matrix is not finite: say whether the weights are, or λ overflows."""
    for w in matrices:
        if not np.isfinite(w).all():
            raise LayerError(non_finite_message(np.asarray(w)))
    raise LayerError(OVERFLOW_MESSAGE)


def gram_matrix(matrix: npt.NDArray[np.generic], scale: float = 1.0) -> FloatArray:
    """G = (s·W)ᵀ(s·W) in float64 for an N × M matrix, summed over blocks of rows.

    Each block is upcast to float64 on its own (≤ 64 MiB), so the peak extra memory is one
    block plus the M × M result, whatever N is.
    """
    N, M = matrix.shape
    rows = max(1, _BLOCK_BYTES // (8 * max(M, 1)))
    gram: FloatArray | None = None
    for start in range(0, N, rows):
        block = np.asarray(matrix[start : start + rows], dtype=np.float64)
        if scale != 1.0:
            block = block * scale  # never in place: the block may be the caller's array
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported by the caller
            part = block.T @ block  # numpy uses syrk for Bᵀ·B of one buffer
            if gram is None:
                gram = part
            else:
                gram += part
    return gram if gram is not None else np.zeros((M, M), dtype=np.float64)


def error_bound(lambda_max: float, M: int, eps: float = _EPS) -> float:
    """δ = M · ε · λ_max, the bound used for the error of each Gram eigenvalue."""
    return M * eps * lambda_max


def gram_accepted(evals: FloatArray, M: int, eps: float = _EPS) -> bool:
    """Rule 1 of the guard on one matrix's ascending Gram eigenvalues (see the module doc)."""
    if evals.size == 0:
        return False
    lambda_max = float(evals[-1])
    delta = error_bound(lambda_max, M, eps)
    return bool(
        math.isfinite(lambda_max) and delta >= _TINY and evals[0] >= GRAM_RANK_MARGIN * delta
    )


def gram_eigenvalues(
    matrices: Sequence[npt.NDArray[np.generic]], scale: float = 1.0
) -> tuple[FloatArray, float] | None:
    """Pooled ascending Gram eigenvalues and their error bound δ, or None if the guard rejects.

    Conv slices (several matrices) are diagonalised as one batch.

    Raises:
        LayerError: NaN/Inf weights, or eigenvalues that overflow float64.
    """
    N, M = matrices[0].shape
    if len(matrices) == 1:
        grams = gram_matrix(matrices[0], scale)[None]
    else:
        stack = np.stack([np.asarray(w, dtype=np.float64) for w in matrices])
        if scale != 1.0:
            stack *= scale
        with np.errstate(over="ignore", invalid="ignore"):
            grams = np.matmul(stack.transpose(0, 2, 1), stack)
        del stack
    if not np.isfinite(grams).all():
        _raise_non_finite(matrices)
    try:
        evals = np.linalg.eigvalsh(grams)  # ascending, per matrix
    except np.linalg.LinAlgError:
        return None  # the SVD path reports it
    del grams
    if not all(gram_accepted(e, M) for e in evals):
        return None
    delta = max(error_bound(float(e[-1]), M) for e in evals)
    pooled = np.sort(evals.ravel())
    return pooled, delta


def float32_singular_values(matrix: npt.NDArray[np.generic], scale: float = 1.0) -> FloatArray:
    """Singular values in float32 (LAPACK ``sgesdd``), returned as float64, descending."""
    import scipy.linalg

    with np.errstate(over="ignore", invalid="ignore"):  # checked just below
        w = np.asarray(matrix, dtype=np.float32)
        if scale != 1.0:
            w = w * np.float32(scale)
    if not np.isfinite(w).all():
        if not np.isfinite(np.asarray(matrix)).all():
            raise LayerError(non_finite_message(np.asarray(matrix)))
        raise LayerError("weights overflow float32 (use the float64 backends 'svd' or 'gram')")
    try:
        values = scipy.linalg.svd(w, compute_uv=False, check_finite=False)
    except np.linalg.LinAlgError as exc:
        raise LayerError(f"SVD did not converge ({exc})") from exc
    return np.asarray(values, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# torch

#: ε of float32 (2⁻²³): the float32 Gram path's bound is δ = M · ε₃₂ · λ_max.
FLOAT32_EPS = float(np.finfo(np.float32).eps)


def _torch_stack(torch: Any, matrices: MatrixInput, device: str) -> Any:
    """The matrices as one (k, N, M) tensor on ``device``, in their stored precision.

    NumPy matrices are sent to ``device``; the torch tensors of a
    :class:`~alphahat.layers.device.DeviceMatrices` are stacked where they are.
    """
    if isinstance(matrices, DeviceMatrices):
        # a contiguous copy in the host path's layout (a transposed view multiplied as is may
        # round differently), so that both paths give the same eigenvalues
        return torch.stack(list(matrices.tensors))
    arrays = [np.asarray(w) for w in matrices]
    dtype = np.float64 if any(a.dtype == np.float64 for a in arrays) else np.float32
    host = np.stack([a.astype(dtype, copy=False) for a in arrays])
    return torch.from_numpy(host).to(device)


def _torch_non_finite(torch: Any, stored: Any) -> LayerError:
    """The error of a stack whose Gram matrix or float32 copy is not finite."""
    nan = int(torch.isnan(stored).sum())
    inf = int(torch.isinf(stored).sum())
    return LayerError(_counts_message(nan, inf) if nan or inf else OVERFLOW_MESSAGE)


def float32_matmul_exact(torch: Any, device: str) -> bool:
    """Whether torch multiplies float32 matrices in float32 on ``device`` (no TF32 or bf16).

    The float32 Gram bound assumes float32 products; a process that allowed TF32 (10-bit
    mantissa) or bf16 passes (``torch.set_float32_matmul_precision("high")``, which training
    scripts often set) gets no float32 Gram path, rather than an error bound that is wrong.
    Nothing global is changed here: the training that shares the process keeps its settings.

    Torch's per-backend settings (``torch.backends.fp32_precision`` and the device's
    ``matmul.fp32_precision``: ``none``/``ieee`` exact, ``tf32``/``bf16`` not) are read where
    they exist: once a script has used them, torch refuses to answer the older getters
    (``get_float32_matmul_precision``, ``allow_tf32`` raise ``RuntimeError``).
    """
    backends = torch.backends
    cuda = device.startswith("cuda")
    matmul = (
        backends.cuda.matmul if cuda else getattr(getattr(backends, "mkldnn", None), "matmul", None)
    )
    local = getattr(matmul, "fp32_precision", None)
    if local is not None:
        settings = (getattr(backends, "fp32_precision", "none"), local)
        return all(setting in ("none", "ieee") for setting in settings)
    if torch.get_float32_matmul_precision() != "highest":  # a torch without those settings
        return False
    return not (cuda and bool(backends.cuda.matmul.allow_tf32))


def torch_gram_eigenvalues(
    matrices: MatrixInput, scale: float, device: str, precision: str = "float64"
) -> tuple[FloatArray, float] | None:
    """:func:`gram_eigenvalues` computed with torch on ``device``.

    ``precision`` ``float64``: G = WᵀW and its eigenvalues in float64, δ = M · ε · λ_max.
    ``float32``: both in float32 (the weights as stored, upcast to float32 at most), with
    δ = M · ε₃₂ · λ_max (ε₃₂ = 2⁻²³) in rule 1; rule 2 is checked against the caller's
    tolerance (:meth:`alphahat.spectrum.LayerSpectrum.resolves`). None: the guard rejects
    the matrix (or, for float32, torch would not multiply in float32: TF32 allowed).

    Raises:
        LayerError: NaN/Inf weights, or eigenvalues that overflow float64.
    """
    torch = require("torch", "the torch spectrum backend")
    dtype, eps = (torch.float64, _EPS) if precision == "float64" else (torch.float32, FLOAT32_EPS)
    with torch.no_grad():
        stored = _torch_stack(torch, matrices, device)
        if dtype == torch.float32 and not float32_matmul_exact(torch, str(stored.device)):
            return None
        w = stored.to(dtype)
        if scale != 1.0:
            w = w * scale
        grams = w.mT @ w
        del w
        if not bool(torch.isfinite(grams).all()):
            if dtype == torch.float32 and bool(torch.isfinite(stored).all()):
                return None  # float32 overflows where float64 would not
            raise _torch_non_finite(torch, stored)
        del stored
        try:
            evals = torch.linalg.eigvalsh(grams).to(torch.float64).cpu().numpy()
        except RuntimeError:
            return None
    M = evals.shape[-1]
    if not all(gram_accepted(e, M, eps) for e in evals):
        return None
    delta = max(error_bound(float(e[-1]), M, eps) for e in evals)
    return np.sort(evals.ravel()), delta


def torch_singular_values(
    matrices: MatrixInput, scale: float, device: str, precision: str
) -> FloatArray:
    """Pooled singular values (float64 array) from ``torch.linalg.svdvals`` on ``device``."""
    torch = require("torch", "the torch spectrum backend")
    dtype = torch.float64 if precision == "float64" else torch.float32
    with torch.no_grad():
        stored = _torch_stack(torch, matrices, device)
        w = stored.to(dtype)
        if scale != 1.0:
            w = w * scale
        if not bool(torch.isfinite(w).all()):
            if not bool(torch.isfinite(stored).all()):
                raise _torch_non_finite(torch, stored)
            raise LayerError("weights overflow float32 (use a float64 backend)")
        del stored
        try:
            svals = torch.linalg.svdvals(w)
        except RuntimeError as exc:
            raise LayerError(f"SVD did not converge ({exc})") from exc
        return np.asarray(svals.to(torch.float64).cpu().numpy().ravel(), dtype=np.float64)
