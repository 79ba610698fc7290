"""Randomized spectra: the ESD of W with its elements shuffled, with an explicit seed.

Shuffling the entries of W keeps their distribution (and so ‖W‖_F) but destroys every
correlation between them, so the shuffled ESD is what random-matrix theory predicts for a
matrix of the same entries: a Marchenko–Pastur bulk — unless a few entries are so large that
they alone make eigenvalues stand out ("correlation traps", which survive any shuffle).

Reproducibility: one ``numpy.random.RandomState(seed)`` per layer, shuffling each matrix's
entries in C order (``RandomState.shuffle`` of a flattened copy), replica after replica, matrix
after matrix. This is the reference tool's own draw (weightwatcher 0.7.7 shuffles with the
global NumPy state in the same order), so with the same seed the two shuffled ESDs are equal.
:func:`layer_seed` derives a layer's seed from the run's seed and the layer name, so a layer's
draw does not depend on which other layers run or in what order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from alphahat.errors import LayerError
from alphahat.spectrum import layer_spectrum

FloatArray = npt.NDArray[np.float64]

#: Replicas the reference tool pools when a layer has fewer than this many eigenvalues.
FEW_EIGENVALUES = 100
FEW_EIGENVALUES_REPLICAS = 5


def default_replicas(num_evals: int) -> int:
    """The reference tool's rule: 5 shuffles for layers of fewer than 100 eigenvalues, else 1."""
    return FEW_EIGENVALUES_REPLICAS if num_evals < FEW_EIGENVALUES else 1


def layer_seed(seed: int, name: str) -> int:
    """A 32-bit seed for one layer: SHA-256 of ``"{seed}:{name}"`` (stable across runs)."""
    digest = hashlib.sha256(f"{int(seed)}:{name}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def shuffle_entries(
    matrix: npt.NDArray[np.generic], rng: np.random.RandomState
) -> npt.NDArray[np.generic]:
    """A copy of ``matrix`` with its entries permuted uniformly at random (C order)."""
    flat = np.array(matrix, copy=True).reshape(-1)
    rng.shuffle(flat)
    return flat.reshape(matrix.shape)


def _eigenvalues(matrix: npt.NDArray[np.generic], scale: float, *, exact: bool) -> FloatArray:
    """λ = σ² of ``scale · matrix`` (either orientation), ascending.

    The layer's own spectrum path, :func:`~alphahat.spectrum.layer_spectrum`: the guarded Gram
    eigenvalues, or the SVD (``exact``, or when the guard refuses).
    """
    oriented = matrix.T if matrix.shape[0] < matrix.shape[1] else matrix
    backend = "svd" if exact else "auto"
    values: FloatArray = layer_spectrum([oriented], scale, backend=backend).eigenvalues
    return values


@dataclass(frozen=True)
class RandomizedSpectrum:
    """Eigenvalues of element-shuffled copies of a layer's matrices.

    Attributes:
        eigenvalues: λ = σ² of every shuffled matrix of every replica, pooled, ascending.
        replicas: the ESD of each replica (each sorted; matrices of one replica pooled).
        seed: the seed of the ``RandomState`` that drew the shuffles.
    """

    eigenvalues: FloatArray
    replicas: tuple[FloatArray, ...] = field(repr=False)
    seed: int


def randomized_spectrum(
    matrices: Sequence[npt.NDArray[np.generic]],
    scale: float = 1.0,
    *,
    seed: int,
    replicas: int = 1,
    exact: bool = False,
) -> RandomizedSpectrum:
    """ESD of ``scale · W`` with the entries of each matrix shuffled, ``replicas`` times.

    Eigenvalues come from the guarded float64 Gram path (:mod:`.backends`, each λ within
    δ = M·ε·λ_max of the SVD's; a shuffled matrix is full-rank and well inside the guard
    unless it has many equal entries, which falls back to the SVD), or from the SVD with
    ``exact`` (the ``svd`` backend).

    Raises:
        LayerError: no matrices, or non-finite weights.
        ValueError: ``replicas`` < 1 or a seed outside [0, 2³²).
    """
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise ValueError(f"replicas must be a positive integer; got {replicas!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32); got {seed!r}")
    if not matrices:
        raise LayerError("no matrices to randomize")
    rng = np.random.RandomState(int(seed))
    per_replica = []
    for _ in range(replicas):
        evals = np.concatenate(
            [_eigenvalues(shuffle_entries(w, rng), scale, exact=exact) for w in matrices]
        )
        evals.sort()
        evals.setflags(write=False)
        per_replica.append(evals)
    pooled = np.sort(np.concatenate(per_replica))
    pooled.setflags(write=False)
    return RandomizedSpectrum(pooled, tuple(per_replica), int(seed))


def layer_randomized_spectrum(
    values: npt.NDArray[np.generic],
    matrices: Sequence[npt.NDArray[np.generic]],
    scale: float,
    *,
    seed: int,
    name: str,
    exact: bool = False,
) -> RandomizedSpectrum:
    """The shuffles of ``analyze(randomize=True, seed=seed)`` for the layer ``name``.

    A 2-D weight ``values`` is shuffled as stored, conv kernels as their N × M ``matrices``
    (the reference tool's orientation); the seed is :func:`layer_seed` of (``seed``, ``name``)
    and the number of replicas :func:`default_replicas` of the layer's eigenvalue count.
    """
    num_evals = sum(min(w.shape) for w in matrices)
    return randomized_spectrum(
        [values] if values.ndim == 2 else matrices,
        scale,
        seed=layer_seed(seed, name),
        replicas=default_replicas(num_evals),
        exact=exact,
    )


def layer_permutations(
    index_matrices: Sequence[npt.NDArray[np.integer]],
    size: int,
    *,
    seed: int,
    name: str,
    replicas: int | None = None,
) -> tuple[npt.NDArray[np.int64], ...]:
    """The shuffles of :func:`layer_randomized_spectrum` as permutations of the stored tensor.

    ``index_matrices`` are the matrices that function shuffles, built from
    ``np.arange(size).reshape(stored shape)`` instead of the values (the weight itself for a
    2-D weight, its N × M kernel matrices for a conv weight). ``RandomState.shuffle`` draws
    the same swaps whatever the array holds, so for each replica the permutation G of the
    flat stored tensor gives the shuffled tensor ``stored.reshape(-1)[G]``, whose matrices
    are exactly the shuffled matrices of the analysis (same seed, same order of draws).
    ``replicas`` defaults to :func:`default_replicas` of the layer's eigenvalue count.
    """
    if replicas is None:
        replicas = default_replicas(sum(min(m.shape) for m in index_matrices))
    rng = np.random.RandomState(layer_seed(seed, name))
    out = []
    for _ in range(replicas):
        permutation = np.arange(size, dtype=np.int64)
        for matrix in index_matrices:
            positions = np.asarray(matrix, dtype=np.int64).reshape(-1)
            drawn = positions.copy()
            rng.shuffle(drawn)
            permutation[positions] = drawn
        permutation.setflags(write=False)
        out.append(permutation)
    return tuple(out)


__all__ = [
    "RandomizedSpectrum",
    "default_replicas",
    "layer_permutations",
    "layer_randomized_spectrum",
    "layer_seed",
    "randomized_spectrum",
    "shuffle_entries",
]
