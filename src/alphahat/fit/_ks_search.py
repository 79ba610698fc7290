"""Exact minimum-KS x_min search that does not evaluate every candidate's full KS distance.

A candidate r of a power-law fitter has a KS distance that is the maximum of its gap terms,

    D_r = max_{k=0…w_r−1} g_r(k),

one term per point (or distinct value) of its tail, so evaluating every D_r costs Σ w_r = O(n²).
For the ``"reference"`` convention, with sorted log-values L₀ ≤ … ≤ L_{n−1}, a tail start i
and exponent αᵢ, g_i(k) = | (1 − exp((1 − αᵢ)(L_{i+k} − Lᵢ))) − k / nᵢ | with nᵢ = w_i = n − i
(:class:`SortedTailTerms`); the ``"clauset"`` and ``"powerlaw"`` conventions, continuous and
discrete, have their own terms over the distinct tail values (``alphahat.fit._conventions``).
The fitter only needs the candidate of smallest D (the first one on ties) and that D, so
:func:`search_terms` (and :func:`ks_search` for the reference terms) finds it by branch and
bound, for any terms:

1. **Lower bounds.** The largest gᵢ(k) over any subset of k is a lower bound LBᵢ ≤ Dᵢ. Every
   term is computed with exactly the operations of the exhaustive computation, so LBᵢ *is* one
   of the terms Dᵢ is the maximum of: the bound holds bitwise, not merely up to rounding.
   Level 0 probes every candidate at m₀ = 8 tail quantiles k = ⌊t(w_r − 1)⌋, t = 1/8 … 1, and
   at k = 1, 2, 4 (the steep start of the fitted CDF; also k = 0 for terms that can be
   non-zero there, as with ties under ``"clauset"``): O(11 n) work.
2. **Incumbent.** The exact D of a few candidates (the smallest bounds overall, and the
   smallest bound in each of 8 groups of consecutive candidates) gives an incumbent (T, b),
   the best D found so far and its position. Candidate p is dropped once LB_p > T, or
   LB_p = T and p > b (it cannot win the first-minimum rule).
3. **Refinement.** The survivors are probed again on a grid 4× finer, plus 65 points zoomed
   in around the k where each one's bound was attained (the KS maximum is local, and the
   coarse maximum is usually next to it); bounds only rise; new incumbents are taken; repeat.
   Tails no longer than twice the grid are evaluated exactly instead.
4. **Exact stage.** Once evaluating the survivors' whole tails is cheaper than another level,
   their exact D are computed in increasing-LB order, pruning against the incumbent between
   blocks. A long tail is evaluated in pieces, starting with the piece around its bound's k,
   and abandoned as soon as its running maximum shows it cannot beat the incumbent.

The result is identical to the exhaustive computation: the same candidate and the same D bit
for bit, since D is the maximum of terms computed like those of the exhaustive computation
(``exhaustive=True`` evaluates every term with the same :meth:`GapTerms.at`; for the reference
terms also ``alphahat.fit.power_law._ks_distances``). Exactness needs no assumption on the
data (not even sortedness): a candidate is only ever ruled out by one of its own terms; the
heuristics (where to probe, whom to seed) only decide how fast.

Work is O(n·m₀) plus what the survivors need: about 10–150 terms per candidate on spectra and
Pareto samples, instead of n/2 on average. Memory is a few O(n) arrays (about 70 bytes per
candidate) plus blocks of at most ``min(chunk_elements, 2¹⁷)`` float64 elements (sized to stay
in cache; a block holds at least one tail shorter than 2¹⁴); nothing n × n.

Bitwise agreement relies on each term being a function of its (row, k) alone: the same value
whatever batch or tile it is computed in. Every term implementation is elementwise, and
applies transcendental functions (``np.exp``, ``np.power``, ``np.expm1``, ``scipy.special.zeta``)
only to contiguous float64 arrays of full shape (NumPy picks its SIMD or its scalar loop by
memory layout, and the two may differ in the last bit); the tests check the agreement.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

#: Default bound on the number of float64 elements in one block.
DEFAULT_CHUNK_ELEMENTS = 1 << 22
#: Intervals of the first probe grid (m₀); each later level is ``_REFINE`` times finer.
_FIRST_GRID = 8
_REFINE = 4
#: Small tail offsets probed at level 0 (clipped to the tail).
_SMALL_K = np.array([1, 2, 4], dtype=np.float64)
#: Points of the zoom around the largest term found so far (levels ≥ 1).
_ZOOM = 64
#: Exact evaluations per level taken to improve the incumbent.
_SEEDS = 4
#: Groups of consecutive candidates that each contribute their best-bounded one as a seed.
_SEED_GROUPS = 8
#: Rows at least this long are evaluated one by one on contiguous slices.
_LONG_ROW = 1 << 14
#: Elements per vector operation that keep the temporaries in cache (L2).
_CACHE_BLOCK = 1 << 15
#: Grids with more points than this are evaluated on 2-D tiles.
_WIDE_GRID = 64


@dataclass(frozen=True)
class KSSearch:
    """Result of :func:`ks_search`.

    Attributes:
        index: position in ``candidates`` of the candidate of minimum D (the first on ties);
            −1 when every D is NaN (or there are no candidates).
        D: its KS distance (NaN when ``index`` is −1), bitwise equal to the exhaustive value.
        Ds: per-candidate exact D where it was computed (``exact``), NaN elsewhere.
        lower_bounds: per-candidate lower bound LB ≤ D (the largest of its terms evaluated),
            equal to D where ``exact``. Every candidate not evaluated exactly has LB > D(index),
            or LB = D(index) and a later position, so ``np.nanargmin(lower_bounds) == index``
            too. A NaN bound means D is NaN (the converse need not hold).
        exact: True where ``Ds`` holds the exact D.
        evaluated: number of gap terms evaluated (work counter, for diagnostics).
    """

    index: int
    D: float
    Ds: FloatArray = field(repr=False)
    lower_bounds: FloatArray = field(repr=False)
    exact: BoolArray = field(repr=False)
    evaluated: int = 0


# ---------------------------------------------------------------------------------------------
# Gap terms
# ---------------------------------------------------------------------------------------------


class GapTerms(ABC):
    """The KS gap terms g_r(k), k = 0 … w_r − 1, of a set of candidate rows r = 0 … R − 1.

    Subclasses hold whatever the terms need (sample, exponents) and implement :meth:`params`
    and :meth:`at`; every term must be a function of its (row, k) alone, computed elementwise
    (see the module docstring on contiguous arrays).

    Attributes:
        widths: w_r, the number of terms of each row (≥ 1).
        probe_first: whether the term at k = 0 can be non-zero (it is then probed at level 0).
    """

    widths: IntArray
    probe_first: bool = False

    @abstractmethod
    def params(self, rows: IntArray) -> tuple[Any, ...]:
        """Per-row values of ``rows`` (1-D arrays of ``rows``' length), for :meth:`at`."""

    @abstractmethod
    def at(self, params: tuple[Any, ...], k: FloatArray) -> FloatArray:
        """Terms g(k), a new contiguous float64 array of ``k``'s shape.

        ``params`` come from :meth:`params`, each either 1-D (``k`` 1-D, one offset per row)
        or reshaped to a column (``k`` 2-D, one row of offsets per row); ``k`` holds exact
        integers in [0, w_r − 1] as float64.
        """

    def span(self, row: int, k0: int, k1: int) -> float:
        """max_{k0 ≤ k < k1} g_row(k) (NaN if a term is NaN)."""
        params = self.params(np.full(k1 - k0, row, dtype=np.intp))
        return float(self.at(params, np.arange(k0, k1, dtype=np.float64)).max())


def materialize(a: Any, shape: tuple[int, ...]) -> FloatArray:
    """``a`` broadcast to ``shape`` as a new contiguous array (unless it already has it)."""
    a = np.asarray(a)
    if a.shape == shape:
        return np.ascontiguousarray(a)
    out = np.empty(shape, dtype=a.dtype)
    out[...] = a
    return out


class SortedTailTerms(GapTerms):
    """The ``"reference"`` terms g_i(k) = |1 − exp((1 − αᵢ)(L_{i+k} − Lᵢ)) − k/nᵢ|.

    Row r is the tail start ``candidates[r]`` with exponent ``alphas[r]``; w_r = n − i. For
    candidate i, term k: dlog = L[i + k] − L[i]; e = (1 − α)·dlog; F = 1 − exp(e);
    g = |F − k / nᵢ|, with k and nᵢ as float64 (exact integers). Every product, difference
    and quotient is a single correctly rounded IEEE operation, so its value does not depend
    on array layout; ``np.exp`` is always applied to a contiguous float64 array.
    """

    def __init__(self, log_x: FloatArray, candidates: IntArray, alphas: FloatArray) -> None:
        self.log_x = log_x
        self.start = candidates
        self.slope = 1.0 - alphas
        self.widths = (log_x.size - candidates).astype(np.intp)
        self.n_tail = self.widths.astype(np.float64)

    def params(self, rows: IntArray) -> tuple[Any, ...]:
        start = self.start[rows]
        return start, self.log_x[start], self.slope[rows], self.n_tail[rows]

    def at(self, params: tuple[Any, ...], k: FloatArray) -> FloatArray:
        start, log_start, slope, n_tail = params
        e = self.log_x[start + k.astype(np.intp)]
        e -= log_start
        e *= slope
        np.exp(e, out=e)
        g = np.subtract(1.0, e, out=e)
        g -= k / n_tail
        return np.asarray(np.abs(g, out=g), dtype=np.float64)

    def span(self, row: int, k0: int, k1: int) -> float:
        """The same terms on a contiguous slice (no gather)."""
        start = int(self.start[row])
        e = self.log_x[start + k0 : start + k1] - self.log_x[start]
        e *= self.slope[row]
        np.exp(e, out=e)
        g = np.subtract(1.0, e, out=e)
        g -= np.arange(k0, k1, dtype=np.float64) / self.n_tail[row]
        return float(np.abs(g, out=g).max())


def _offsets(code: FloatArray, last: FloatArray, arg: FloatArray, half: FloatArray) -> FloatArray:
    """Tail offsets k (exact integers in [0, last]) for the column codes of :meth:`_Search.probe`.

    ``code`` broadcasts against the per-row ``last`` (w_r − 1), ``arg`` and ``half``.
    """
    k = np.floor(np.clip(code, 0.0, 1.0) * last)  # code in [0, 1]: a quantile (0: k = 0)
    if np.any(code < 0.0):  # −o: the offset o
        k = np.where(code < 0.0, np.minimum(-code, last), k)
    if np.any(code > 1.0):  # 2 + u: u half-widths from arg
        k = np.where(code > 1.0, np.floor(np.clip(arg + (code - 2.0) * half, 0.0, last)), k)
    return np.asarray(k, dtype=np.float64)


class _Search:
    """State of one search over ``rows`` of ``terms``: bounds, incumbent and work counter.

    Positions p = 0 … len(rows) − 1 index the searched rows; ``rows[p]`` is the terms row.
    """

    def __init__(self, terms: GapTerms, rows: IntArray, chunk: int) -> None:
        self.terms = terms
        self.rows = rows
        self.width_int = terms.widths[rows]
        self.width = self.width_int.astype(np.float64)
        self.chunk = chunk
        size = rows.size
        self.lb = np.full(size, -np.inf)
        self.arg = np.zeros(size)  # offset k of the largest term found so far
        self.Ds = np.full(size, np.nan)
        self.exact = np.zeros(size, dtype=bool)
        self.best = -1
        self.best_D = np.inf
        self.evaluated = 0

    # -- exact evaluation -------------------------------------------------------------------

    def exact_rows(self, rows: IntArray, *, abandon: bool = True) -> None:
        """Evaluate ``rows`` (positions) exactly, record their D and update the incumbent.

        With ``abandon``, a long row is given up as soon as its running maximum shows that it
        cannot beat the incumbent; it then keeps that maximum as its lower bound (not exact).
        """
        if rows.size == 0:
            return
        lengths = self.width_int[rows]
        long = lengths >= _LONG_ROW
        for p in rows[long]:
            self._exact_long(int(p), abandon)
        short = rows[~long]
        lengths = lengths[~long]
        done = 0
        limit = max(1, min(self.chunk, _CACHE_BLOCK * 4))
        while done < short.size:
            csum = np.cumsum(lengths[done:])
            take = max(1, int(np.searchsorted(csum, limit, side="right")))
            block = short[done : done + take]
            self._record(block, self._exact_flat(block))
            done += take

    def _record(self, rows: IntArray, values: FloatArray) -> None:
        self.Ds[rows] = values
        self.lb[rows] = values
        self.exact[rows] = True
        self._update_incumbent(rows, values)

    def _exact_long(self, p: int, abandon: bool) -> None:
        """Exact D of one long row, piece by piece, starting where its bound was attained."""
        width = int(self.width_int[p])
        size = max(1, min(self.chunk, _CACHE_BLOCK * 2))
        pieces = list(range(0, width, size))
        first = min(int(self.arg[p]) // size, len(pieces) - 1)
        pieces.insert(0, pieces.pop(first))
        # The bound is one of the row's own terms, so starting from it leaves the max exact.
        value = float(self.lb[p])
        row = int(self.rows[p])
        for k0 in pieces:
            k1 = min(width, k0 + size)
            piece = self.terms.span(row, k0, k1)
            value = float(np.maximum(value, piece))  # NaN propagates, as in .max()
            self.evaluated += k1 - k0
            if (
                abandon
                and self.best >= 0
                and (value > self.best_D or (value == self.best_D and p > self.best))
            ):
                self.lb[p] = value
                return
        self._record(np.array([p], dtype=np.intp), np.array([value]))

    def _exact_flat(self, rows: IntArray) -> FloatArray:
        """Exact D of short rows, on a 2-D tile or as one flat (ragged) array.

        The tile is used when the rows' widths are alike (consecutive candidates).
        """
        lengths = self.width_int[rows]
        widest = int(lengths.max())
        if rows.size * widest <= 2 * int(lengths.sum()):
            # Offsets past a row's end repeat its last term, which leaves the maximum exact.
            last = (self.width[rows] - 1.0)[:, None]
            k = np.minimum(np.arange(widest, dtype=np.float64)[None, :], last)
            params = tuple(v[:, None] for v in self.terms.params(self.rows[rows]))
            self.evaluated += int(lengths.sum())
            return np.asarray(self.terms.at(params, k).max(axis=1), dtype=np.float64)
        ends = np.cumsum(lengths)
        starts = ends - lengths
        total = int(ends[-1])
        owner = np.repeat(np.arange(rows.size), lengths)
        k = (np.arange(total, dtype=np.intp) - starts[owner]).astype(np.float64)
        g = self.terms.at(self.terms.params(self.rows[rows][owner]), k)
        self.evaluated += total
        return np.asarray(np.maximum.reduceat(g, starts), dtype=np.float64)

    def _update_incumbent(self, rows: IntArray, values: FloatArray) -> None:
        finite = ~np.isnan(values)
        if not finite.any():
            return
        vals = values[finite]
        pos = rows[finite]
        low = vals.min()
        p = int(pos[vals == low].min())
        if self.best < 0 or low < self.best_D or (low == self.best_D and p < self.best):
            self.best_D = float(low)
            self.best = p

    # -- lower bounds -----------------------------------------------------------------------

    def probe(
        self,
        rows: IntArray,
        intervals: int,
        *,
        small_k: bool = False,
        zoom: int = 0,
        zoom_halfwidth: FloatArray | None = None,
    ) -> None:
        """Raise the lower bounds of ``rows`` by evaluating more of their terms.

        Probes k = ⌊t (w_r − 1)⌋ for t = 1/intervals … 1 (tail quantiles); with ``small_k`` also
        the offsets ``_SMALL_K`` (and k = 0 when the terms say it can matter); with ``zoom``
        also ``zoom`` + 1 points spread evenly over ± ``zoom_halfwidth`` (per row) around the
        offset where the bound was attained so far. Works on tiles small enough to stay in
        cache: column by column over blocks of rows when there are few columns, on 2-D tiles
        of rows × columns when there are many.
        """
        # One code per column: t in (0, 1] a quantile, −o an offset o ≥ 1, 2 + u with u in
        # [−1, 1] a zoom position, 0 the offset 0 (g(0) is 0 for the reference terms).
        codes = [np.arange(1, intervals + 1, dtype=np.float64) / intervals]
        if small_k:
            codes.append(-_SMALL_K)
            if self.terms.probe_first:
                codes.append(np.zeros(1))
        if zoom:
            codes.append(2.0 + np.linspace(-1.0, 1.0, zoom + 1))
        code = np.concatenate(codes)
        tile = max(1, min(self.chunk, _CACHE_BLOCK))
        wide = code.size > _WIDE_GRID
        width = 1
        if wide:
            width = min(code.size, max(min(_WIDE_GRID, tile), tile // max(1, rows.size)))
        block = max(1, tile // width)
        higher = np.empty(min(block, rows.size), dtype=bool)
        for b0 in range(0, rows.size, block):
            r = rows[b0 : b0 + block]
            lb = self.lb[r]
            arg = self.arg[r]
            half = arg if zoom_halfwidth is None else zoom_halfwidth[b0 : b0 + block]
            params = self.terms.params(self.rows[r])
            last, arg_c, half_c = self.width[r] - 1.0, arg, half
            if wide:  # per-row values as columns of the 2-D tiles
                params = tuple(v[:, None] for v in params)
                last, arg_c, half_c = last[:, None], arg_c[:, None], half_c[:, None]
            for c0 in range(0, code.size, width):
                c = code[None, c0 : c0 + width] if wide else code[c0 : c0 + 1]
                k = _offsets(c, last, arg_c, half_c)
                if wide:
                    k = materialize(k, (r.size, c.shape[1]))
                g = self.terms.at(params, k)
                if wide:
                    at = g.argmax(axis=1)[:, None]
                    g = np.take_along_axis(g, at, axis=1)[:, 0]
                    k = np.take_along_axis(k, at, axis=1)[:, 0]
                np.copyto(arg, k, where=np.greater(g, lb, out=higher[: g.size]))
                # np.maximum keeps NaN: a NaN term makes D NaN too (as max() does).
                np.maximum(lb, g, out=lb)
            self.lb[r] = lb
            self.arg[r] = arg
            self.evaluated += r.size * code.size

    def alive(self, rows: IntArray) -> IntArray:
        """The rows that may still beat the incumbent (not yet exact, LB not too high)."""
        lb = self.lb[rows]
        if self.best < 0:  # no incumbent yet: only a NaN bound (a NaN D) rules a row out
            keep = ~np.isnan(lb)
        else:
            keep = (lb < self.best_D) | ((lb == self.best_D) & (rows < self.best))
        keep &= ~self.exact[rows]
        return np.asarray(rows[keep], dtype=np.intp)

    def seed(self, rows: IntArray) -> None:
        """Exact D of a few promising rows, to improve the incumbent.

        These are the ``_SEEDS`` rows of smallest lower bound, and the row of smallest bound
        in each of ``_SEED_GROUPS`` groups of consecutive rows (so distant regions get tried).
        """
        if rows.size == 0:
            return
        lb = self.lb[rows]
        count = min(_SEEDS, rows.size)
        picks = [np.argpartition(lb, count - 1)[:count]] if count else []
        if _SEED_GROUPS and rows.size > _SEED_GROUPS:
            bounds = np.linspace(0, rows.size, _SEED_GROUPS + 1).astype(np.intp)
            firsts = [b0 + int(np.argmin(lb[b0:b1])) for b0, b1 in itertools.pairwise(bounds)]
            picks.append(np.array(firsts, dtype=np.intp))
        if picks:
            self.exact_rows(rows[np.unique(np.concatenate(picks))])

    def exact_in_order(self, rows: IntArray) -> None:
        """Exact D of the rows in increasing-LB order, pruning between blocks."""
        rows = rows[np.lexsort((rows, self.lb[rows]))]
        while rows.size:
            csum = np.cumsum(self.width_int[rows])
            # Small blocks first, so the incumbent improves early; then up to one chunk.
            limit = max(self.chunk // 8, int(csum[0]))
            take = max(1, int(np.searchsorted(csum, limit, side="right")))
            self.exact_rows(rows[:take])
            rows = self.alive(rows[take:])


def search_terms(
    terms: GapTerms,
    rows: npt.ArrayLike | None = None,
    *,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    exhaustive: bool = False,
) -> KSSearch:
    """Find the row of minimum D = max_k g_r(k) among ``rows`` of ``terms``, exactly.

    Args:
        terms: the gap terms of every candidate row.
        rows: increasing terms rows to search (default: all of them); the result's positions
            (``index``, ``Ds``, …) are positions in ``rows``.
        chunk_elements: bound on float64 elements per block (blocks never exceed 2¹⁷
            elements anyway, and hold at least one tail shorter than 2¹⁴, or 64 probes).
        exhaustive: compute every D exactly (O(Σ w_r) work) instead of pruning.

    Returns:
        A :class:`KSSearch`. ``index``/``D`` equal ``np.nanargmin``/``min`` over the exhaustive
        D vector; ``Ds`` is that vector where ``exact`` (everywhere when ``exhaustive``).
    """
    if isinstance(chunk_elements, bool) or not isinstance(chunk_elements, int | np.integer):
        raise ValueError(f"chunk_elements must be a positive integer; got {chunk_elements!r}")
    if chunk_elements < 1:
        raise ValueError(f"chunk_elements must be a positive integer; got {chunk_elements!r}")
    count = terms.widths.size
    chosen = np.arange(count, dtype=np.intp) if rows is None else np.asarray(rows, np.intp)
    if chosen.ndim != 1 or (
        chosen.size and (chosen[0] < 0 or chosen[-1] >= count or np.any(np.diff(chosen) <= 0))
    ):
        raise ValueError("rows must be increasing row indices of the terms")
    state = _Search(terms, chosen, int(chunk_elements))
    positions = np.arange(chosen.size, dtype=np.intp)
    # As in the exhaustive computation: an infinite or NaN exponent gives NaN terms quietly.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if exhaustive or chosen.size == 0:
            state.exact_rows(positions, abandon=False)
        else:
            _branch_and_bound(state, positions)
    D = state.best_D if state.best >= 0 else float("nan")
    return KSSearch(
        index=state.best,
        D=D,
        Ds=state.Ds,
        lower_bounds=state.lb,
        exact=state.exact,
        evaluated=state.evaluated,
    )


def ks_search(
    log_x: npt.ArrayLike,
    candidates: npt.ArrayLike,
    alphas: npt.ArrayLike,
    *,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    exhaustive: bool = False,
) -> KSSearch:
    """:func:`search_terms` on the ``"reference"`` terms (:class:`SortedTailTerms`).

    Args:
        log_x: ln of the sorted sample, length n (sortedness only matters for speed).
        candidates: increasing tail-start indices i (0 ≤ i < n).
        alphas: the exponent αᵢ of each candidate (> 1; a NaN makes that D NaN).
        chunk_elements, exhaustive: as for :func:`search_terms`.
    """
    if chunk_elements < 1:
        raise ValueError(f"chunk_elements must be a positive integer; got {chunk_elements!r}")
    lx = np.ascontiguousarray(log_x, dtype=np.float64)
    cand = np.ascontiguousarray(candidates, dtype=np.intp)
    alpha = np.ascontiguousarray(alphas, dtype=np.float64)
    if lx.ndim != 1 or cand.ndim != 1 or alpha.shape != cand.shape:
        raise ValueError("log_x and candidates must be 1-D, alphas the shape of candidates")
    if cand.size and (cand[0] < 0 or cand[-1] >= lx.size or np.any(np.diff(cand) <= 0)):
        raise ValueError("candidates must be increasing indices into log_x")
    terms = SortedTailTerms(lx, cand, alpha)
    return search_terms(terms, chunk_elements=chunk_elements, exhaustive=exhaustive)


def _branch_and_bound(state: _Search, rows: IntArray) -> None:
    """Resolve ``rows``: each ends exact, or with a bound that rules it out."""
    intervals = _FIRST_GRID
    level = 0
    while rows.size:
        zoom = _ZOOM if level else 0
        columns = intervals + (_SMALL_K.size if level == 0 else zoom + 1)
        lengths = state.width_int[rows]
        # A tail no longer than twice the probe grid is cheaper to evaluate exactly.
        short = lengths <= 2 * columns
        state.exact_rows(rows[short])
        rows = rows[~short]
        # Zoom over ± one spacing of the previous grid around the largest term found so far.
        half = state.width[rows] * (_REFINE / intervals) if zoom else None
        state.probe(rows, intervals, small_k=level == 0, zoom=zoom, zoom_halfwidth=half)
        state.seed(state.alive(rows))
        rows = state.alive(rows)
        if rows.size == 0:
            return
        intervals *= _REFINE
        level += 1
        # Once the survivors' whole tails cost less than the next level, evaluate them.
        next_cost = rows.size * (intervals + _ZOOM + 1)
        if int(state.width_int[rows].sum()) <= 2 * next_cost:
            state.exact_in_order(rows)
            return


def minimum_ks_candidate(
    log_x: npt.ArrayLike,
    candidates: npt.ArrayLike,
    alphas: npt.ArrayLike,
    *,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> tuple[int, float]:
    """(position in ``candidates`` of the minimum-D candidate, its D); (−1, NaN) if none."""
    result = ks_search(log_x, candidates, alphas, chunk_elements=chunk_elements)
    return result.index, result.D


def ks_distances(
    log_x: npt.ArrayLike,
    candidates: npt.ArrayLike,
    alphas: npt.ArrayLike,
    *,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> FloatArray:
    """Every candidate's exact D (O(Σ nᵢ) work), bitwise equal to the pruned search's values."""
    return ks_search(log_x, candidates, alphas, chunk_elements=chunk_elements, exhaustive=True).Ds
