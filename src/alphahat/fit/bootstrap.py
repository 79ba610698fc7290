"""Bootstrap for power-law fits: Clauset's goodness-of-fit p-value and standard errors.

Goodness of fit (Clauset, Shalizi & Newman 2009, §4.1, semi-parametric): with the fitted x_min,
α and n_tail of a sample of n points, each replicate draws n points — each, with probability
n_tail/n, from the fitted power law above x_min (continuous: x = x_min (1 − u)^(−1/(α−1));
discrete, ``discrete=True``: the exact inverse of P(X ≥ x) = ζ(α, x)/ζ(α, x_min), see
``alphahat.fit._discrete.discrete_power_law_quantile``), else uniformly with replacement from
the observed points below x_min — and fits it with the same procedure (x_min searched again,
by the exact pruned search of every convention, so a replicate costs what one fit costs). The
p-value is the fraction of replicates whose KS distance D is at least the observed one;
p ≤ 0.1 rules the power law out. Its resolution is 1/n_boot (the paper uses
n_boot ≥ 2500 for two-digit accuracy).

Standard errors (non-parametric): the sample is resampled with replacement and refitted; the
standard errors are the standard deviations (ddof = 1) of α, x_min and n_tail over replicates.

Replicate k always uses the k-th child of ``numpy.random.SeedSequence(seed)``, so results are
identical for any number of worker processes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from alphahat.fit._discrete import discrete_power_law_quantile
from alphahat.fit.power_law import PowerLawFit, fit_power_law

FloatArray = npt.NDArray[np.float64]
Fitter = Callable[..., PowerLawFit]


def _empty() -> FloatArray:
    return np.empty(0, dtype=np.float64)


@dataclass(frozen=True)
class GoodnessOfFit:
    """Semi-parametric bootstrap test of a power-law fit.

    Attributes:
        p_value: fraction of replicates with D ≥ the observed D (NaN if no replicate fitted).
        D: the observed KS distance.
        n_boot: replicates drawn; ``n_fitted`` of them could be fitted (the p-value uses those).
        seed: the seed used.
        Ds: D of each replicate (NaN where a replicate could not be fitted).
    """

    p_value: float
    D: float
    n_boot: int
    n_fitted: int
    seed: int
    Ds: FloatArray = field(default_factory=_empty, repr=False, compare=False)

    @property
    def plausible(self) -> bool:
        """Clauset's rule: the power law is plausible when p > 0.1."""
        return self.p_value > 0.1


@dataclass(frozen=True)
class BootstrapErrors:
    """Standard errors of a power-law fit from a non-parametric bootstrap.

    Attributes:
        alpha, xmin, n_tail: standard deviations (ddof = 1) over fitted replicates.
        n_boot, n_fitted, seed: replicates drawn, fitted, and the seed.
        alphas, xmins, n_tails: each replicate's estimates (NaN where not fitted).
    """

    alpha: float
    xmin: float
    n_tail: float
    n_boot: int
    n_fitted: int
    seed: int
    alphas: FloatArray = field(default_factory=_empty, repr=False, compare=False)
    xmins: FloatArray = field(default_factory=_empty, repr=False, compare=False)
    n_tails: FloatArray = field(default_factory=_empty, repr=False, compare=False)


def _check(n_boot: int, workers: int) -> None:
    if not isinstance(n_boot, int) or isinstance(n_boot, bool) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer; got {n_boot!r}")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be a positive integer; got {workers!r}")


def _semi_parametric_replicates(
    seeds: Sequence[np.random.SeedSequence],
    body: FloatArray,
    n: int,
    fit: tuple[float, float, int],
    fitter: Fitter,
    options: dict[str, Any],
) -> list[tuple[float, float, float, float]]:
    xmin, alpha, n_tail = fit
    discrete = bool(options.get("discrete", False))
    out = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        in_tail = int(rng.binomial(n, n_tail / n)) if body.size else n
        if discrete:
            tail = discrete_power_law_quantile(rng.random(in_tail), alpha, xmin)
        else:
            tail = xmin * (1.0 - rng.random(in_tail)) ** (-1.0 / (alpha - 1.0))
        sample = np.concatenate([tail, rng.choice(body, n - in_tail)]) if body.size else tail
        out.append(_summary(fitter(sample, **options)))
    return out


def _resampled_replicates(
    seeds: Sequence[np.random.SeedSequence],
    data: FloatArray,
    fitter: Fitter,
    options: dict[str, Any],
) -> list[tuple[float, float, float, float]]:
    return [
        _summary(fitter(np.random.default_rng(s).choice(data, data.size), **options)) for s in seeds
    ]


def _summary(fit: PowerLawFit) -> tuple[float, float, float, float]:
    if not fit.fitted:
        return (math.nan,) * 4
    return fit.D, fit.alpha, fit.xmin, float(fit.n_tail)


def _run(
    task: Callable[[Sequence[np.random.SeedSequence]], list[tuple[float, float, float, float]]],
    seed: int,
    n_boot: int,
    workers: int,
) -> FloatArray:
    seeds = np.random.SeedSequence(seed).spawn(n_boot)
    if workers == 1:
        rows = task(seeds)
    else:
        size = math.ceil(n_boot / (4 * workers))
        blocks = [seeds[i : i + size] for i in range(0, n_boot, size)]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            rows = [row for block in pool.map(task, blocks) for row in block]
    return np.asarray(rows, dtype=np.float64).reshape(n_boot, 4)


def power_law_goodness_of_fit(
    x: npt.ArrayLike,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    workers: int = 1,
    fitter: Fitter = fit_power_law,
    **options: Any,
) -> GoodnessOfFit:
    """Clauset's semi-parametric bootstrap p-value of a power-law fit of ``x``.

    ``options`` are passed to ``fitter`` (e.g. ``convention=``) for the observed sample and
    for every replicate alike. ``workers`` > 1 runs replicates in that many processes.

    Raises:
        ValueError: bad ``n_boot``/``workers``, or the observed sample cannot be fitted.
    """
    _check(n_boot, workers)
    data = np.sort(np.asarray(x, dtype=np.float64).reshape(-1))
    observed = fitter(data, **options)
    if not observed.fitted:
        raise ValueError(
            f"cannot bootstrap: the observed fit is {observed.status} ({observed.reason})"
        )
    body = data[data < observed.xmin]
    task = partial(
        _semi_parametric_replicates,
        body=body,
        n=int(data.size),
        fit=(observed.xmin, observed.alpha, observed.n_tail),
        fitter=fitter,
        options=options,
    )
    rows = _run(task, seed, n_boot, workers)
    Ds = rows[:, 0]
    fitted = np.isfinite(Ds)
    p = float(np.mean(Ds[fitted] >= observed.D)) if fitted.any() else math.nan
    Ds.setflags(write=False)
    return GoodnessOfFit(p, observed.D, n_boot, int(fitted.sum()), seed, Ds)


def power_law_standard_errors(
    x: npt.ArrayLike,
    *,
    n_boot: int = 200,
    seed: int = 0,
    workers: int = 1,
    fitter: Fitter = fit_power_law,
    **options: Any,
) -> BootstrapErrors:
    """Non-parametric bootstrap standard errors of α, x_min and n_tail of a power-law fit."""
    _check(n_boot, workers)
    data = np.asarray(x, dtype=np.float64).reshape(-1)
    task = partial(_resampled_replicates, data=data, fitter=fitter, options=options)
    rows = _run(task, seed, n_boot, workers)
    fitted = np.isfinite(rows[:, 1])

    def spread(column: int) -> float:
        values = rows[fitted, column]
        return float(np.std(values, ddof=1)) if values.size > 1 else math.nan

    columns = [rows[:, c].copy() for c in (1, 2, 3)]
    for column in columns:
        column.setflags(write=False)
    return BootstrapErrors(
        spread(1), spread(2), spread(3), n_boot, int(fitted.sum()), seed, *columns
    )
