"""Cross matrices of consecutive layers (the reference tool's ``intra=True``, with ``sparsify``).

weightwatcher 0.7.7 (``WWIntraLayerIterator``) pairs each analysed layer with the one before it
and forms, from their weight matrices W₀ and W₁ as stored (PyTorch layout, out × in),

    X = A·B / (‖W₀‖_F ‖W₁‖_F),

where A and B are W₀ and W₁ aligned on their shared dimension s (the largest size that occurs
in both shapes): A is W₀ or W₀ᵀ with s as its columns, B is W₁ or W₁ᵀ with s as its rows.
Where the layers chain (W₀'s outputs are W₁'s inputs) alphahat always takes the composed map,
X ∝ (W₁·W₀)ᵀ = W₀ᵀ·W₁ᵀ; the reference's shape rule gives the same except where W₀ or W₁ is
square (it then takes W₀ᵀ·W₁ or W₀·W₁ᵀ). Pairs without a shared dimension are left out.
The ESD of the pair is the **singular values** σ of X, not σ²: X is
quadratic in the weights, so σ(X) is on the scale of a single layer's λ = σ²(W)
(:func:`alphahat.pipeline.core.analyse_layer` does this when ``intra`` is set).

``sparsify`` puts a ReLU gate between the two layers, as the reference's documentation says
("simulate ReLU(s) between layers"): X = A·D·B / (‖W₀‖_F ‖W₁‖_F) with D = diag(m), m a 0/1 mask
of the s shared units, each on with probability 1/2 (seeded). The reference instead draws a
**dense** s × s matrix of 0/1 entries S (``np.random.randint(2, size=(s, s))``, unseeded) and
divides by ‖W₀‖_F‖W₁‖_F + √‖S‖_F: S ≈ ½·11ᵀ plus noise is no ReLU gate — it mixes every unit
with every other (its singular values: one ≈ s/2, the others up to ≈ √s), so the reference's
X is an order of magnitude larger than A·B's and dominated by one direction
(docs/coming-from-weightwatcher.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: The separator of a pair's name, ``"A X B"`` (the reference's, without its trailing space).
PAIR_SEPARATOR = " X "


def pair_name(first: str, second: str) -> str:
    """The name of the cross matrix of ``first`` and ``second``: ``"first X second"``."""
    return f"{first}{PAIR_SEPARATOR}{second}"


def aligned_transposes(shape0: Sequence[int], shape1: Sequence[int]) -> tuple[bool, bool] | None:
    """Whether W₀ and W₁ (out × in) are transposed to share a dimension (None: they share none).

    Layers that chain (W₀'s outputs are W₁'s inputs) give the composed map, X ∝ (W₁·W₀)ᵀ =
    W₀ᵀ·W₁ᵀ. Others take the reference's rule: the shared size s is the largest size that
    occurs more than once among the four dimensions; W₀ is transposed unless its columns are
    s, W₁ unless its rows are s. Returns None when no size repeats or the aligned matrices
    still do not fit. (The reference applies its rule to chained layers too, which for a
    square W₁ gives W₀ᵀ·W₁ instead of the composition.)
    """
    if len(shape0) != 2 or len(shape1) != 2:
        return None
    if int(shape0[0]) == int(shape1[1]):  # the layers chain (out₀ = in₁): X = (W₁·W₀)ᵀ
        return True, True
    sizes = [int(shape0[0]), int(shape0[1]), int(shape1[0]), int(shape1[1])]
    repeated = [s for s in set(sizes) if sizes.count(s) > 1]
    if not repeated:
        return None
    shared = max(repeated)
    flip0, flip1 = int(shape0[1]) != shared, int(shape1[0]) != shared
    columns0 = int(shape0[0]) if flip0 else int(shape0[1])
    rows1 = int(shape1[1]) if flip1 else int(shape1[0])
    return (flip0, flip1) if columns0 == rows1 else None


def cross_shape(shape0: Sequence[int], shape1: Sequence[int]) -> tuple[int, int] | None:
    """The shape of X for weights of these shapes (None: they share no dimension)."""
    flips = aligned_transposes(shape0, shape1)
    if flips is None:
        return None
    rows = int(shape0[1]) if flips[0] else int(shape0[0])
    columns = int(shape1[0]) if flips[1] else int(shape1[1])
    return rows, columns


def shared_size(shape0: Sequence[int], shape1: Sequence[int]) -> int | None:
    """The size s of the dimension W₀ and W₁ are aligned on (None: they share none)."""
    flips = aligned_transposes(shape0, shape1)
    if flips is None:
        return None
    return int(shape0[0]) if flips[0] else int(shape0[1])


def relu_mask(size: int, seed: int) -> FloatArray:
    """A 0/1 mask of ``size`` units, each 1 with probability 1/2 (``RandomState(seed)``)."""
    mask: FloatArray = np.random.RandomState(seed).randint(2, size=size).astype(np.float64)
    return mask


def cross_matrix(
    w0: npt.ArrayLike, w1: npt.ArrayLike, mask: npt.ArrayLike | None = None
) -> FloatArray:
    """X = A·diag(mask)·B / (‖W₀‖_F ‖W₁‖_F) of the module docstring (float64).

    Raises:
        ValueError: the weights are not matrices sharing a dimension, or the mask is not one
            value per shared unit.
    """
    a = np.asarray(w0, dtype=np.float64)
    b = np.asarray(w1, dtype=np.float64)
    flips = aligned_transposes(a.shape, b.shape)
    if flips is None:
        raise ValueError(f"intra: weights {list(a.shape)} and {list(b.shape)} share no dimension")
    a = a.T if flips[0] else a
    b = b.T if flips[1] else b
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    if not norms > 0 or not np.isfinite(norms):
        raise ValueError(f"intra: ‖W₀‖_F·‖W₁‖_F = {norms:g}; the cross matrix is undefined")
    if mask is not None:
        gate = np.asarray(mask, dtype=np.float64)
        if gate.shape != (a.shape[1],):
            raise ValueError(f"intra: a mask of {a.shape[1]} units needed; got {gate.shape}")
        a = a * gate  # columns of A: the shared units
    out: FloatArray = (a @ b) / norms
    return out


__all__ = [
    "PAIR_SEPARATOR",
    "aligned_transposes",
    "cross_matrix",
    "cross_shape",
    "pair_name",
    "relu_mask",
    "shared_size",
]
