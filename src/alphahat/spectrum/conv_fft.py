"""The spectrum of a convolution as a linear operator (Sedghi, Gupta & Long 2018).

A conv layer with kernel K of shape (c_out, c_in, k₁, …, k_d) maps an input of c_in channels on
an n × … × n grid to c_out channels. With circular padding (stride 1) this map is a linear
operator A of size (c_out·n^d) × (c_in·n^d) whose matrix is block-circulant. Its singular
values are the union, over the n^d frequencies u = (u₁, …, u_d), of the singular values of the
c_out × c_in complex matrices

    P(u) = Σ_a K[:, :, a] · exp(−2πi ⟨u, a⟩ / n),

i.e. of the d-dimensional DFT of the kernel zero-padded to n along each kernel axis (Sedghi et
al. 2018, Theorem 6, for d = 2). The layer ESD is then λ = σ² over all frequencies: n^d · M
eigenvalues with M = min(c_out, c_in). (Cross-correlation, PyTorch's convention, flips the
kernel, which maps P(u) to P(−u) and so leaves the multiset of singular values unchanged.)

Unlike the slice ESD, this spectrum depends on n; its Frobenius norm ‖A‖²_F = n^d · ‖K‖²_F.
The kernel is multiplied by ``scale`` first (the conv convention), so λ scales by ``scale²``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from alphahat.errors import LayerError
from alphahat.spectrum import LayerSpectrum

#: Complex elements per block of frequency matrices (bounds the memory to ~256 MiB per block).
DEFAULT_CHUNK_ELEMENTS = 1 << 24


def conv_operator_spectrum(
    kernel: npt.ArrayLike,
    size: int,
    scale: float = 1.0,
    *,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> LayerSpectrum:
    """Eigenvalues σ² of the circular convolution operator of ``kernel`` on a ``size``^d input.

    Args:
        kernel: weights (c_out, c_in, k₁, …, k_d), d ≥ 1, every kᵢ ≤ ``size``.
        size: n, the side of the (periodic) input grid.
        scale: multiplier of the kernel (λ scales by its square).
        chunk_elements: bound on the complex elements of frequency matrices held at once.

    Returns:
        A :class:`~alphahat.spectrum.LayerSpectrum` with n^d · M ascending eigenvalues,
        ``num_matrices`` = n^d and ``method`` ``"fft svd"``.

    Raises:
        LayerError: NaN/Inf weights, or a kernel larger than ``size`` along some axis.
    """
    weights = np.asarray(kernel, dtype=np.float64)
    if weights.ndim < 3:
        raise LayerError(f"a conv kernel has ≥ 3 dims (out, in, k₁, …); got {weights.shape}")
    if not np.all(np.isfinite(weights)):
        raise LayerError("conv kernel has NaN or Inf entries")
    c_out, c_in = weights.shape[:2]
    kernel_shape = weights.shape[2:]
    if max(kernel_shape) > size:
        raise LayerError(f"fft_size={size} is smaller than the kernel {kernel_shape}")
    weights = weights * scale
    d = len(kernel_shape)
    # DFT along every kernel axis but the first (zero-padded to n), then the first axis is
    # transformed a block of frequencies at a time, so that at most one block is in memory
    inner = np.fft.fftn(weights, s=(size,) * (d - 1), axes=tuple(range(3, 2 + d)))
    per_frequency = c_out * c_in * size ** (d - 1)
    block = max(1, chunk_elements // max(per_frequency, 1))
    positions = np.arange(kernel_shape[0])
    squares = []
    for start in range(0, size, block):
        freqs = np.arange(start, min(size, start + block))
        twiddle = np.exp(-2j * np.pi * np.outer(freqs, positions) / size)  # (U, k₁)
        matrices = np.tensordot(twiddle, inner, axes=([1], [2]))  # (U, c_out, c_in, n, …)
        matrices = np.moveaxis(matrices, (1, 2), (-2, -1)).reshape(-1, c_out, c_in)
        try:
            singular = np.linalg.svd(matrices, compute_uv=False)
        except np.linalg.LinAlgError as exc:
            raise LayerError(f"SVD of the conv operator's frequency matrices: {exc}") from exc
        squares.append(np.square(singular).ravel())
    evals = np.sort(np.concatenate(squares))
    return LayerSpectrum(
        eigenvalues=evals,
        N=max(c_out, c_in),
        M=min(c_out, c_in),
        num_matrices=size**d,
        method="fft svd",
    )


__all__ = ["conv_operator_spectrum"]
