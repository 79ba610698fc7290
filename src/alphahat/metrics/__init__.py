"""Metrics: from a layer's ESD and its power-law fit to the named per-layer numbers.

All logs are log₁₀ except the entropy (natural log, normalised by ln rank). With λᵢ the
pooled eigenvalues of a layer (W as stored, not divided by N):

* ``norm`` = Σλ = ‖W‖²_F (NaN if it overflows float64);  ``log_norm`` = log₁₀ Σλ (computed
  as a log-sum-exp, finite even then)
* ``lambda_max`` = max λ = ‖W‖²₂;  ``log_spectral_norm`` = log₁₀ λ_max
* ``alpha_weighted`` = α · log₁₀ λ_max  (α̂, the weighted alpha)
* ``log_alpha_norm`` = log₁₀ Σ λᵢ^α  (log α-Shatten norm, computed as a log-sum-exp)
* ``stable_rank`` = Σλ / λ_max
* ``matrix_rank`` = #{σᵢ > σ_max · N · ε} (NumPy's default tolerance), σᵢ = √λᵢ
* ``entropy`` = −Σ pᵢ ln pᵢ / ln(rank), pᵢ = λᵢ / Σλ over λᵢ > 0 (0 for rank ≤ 1)
* ``num_pl_spikes`` = #{λᵢ ≥ x_min}, as the layer's fit counts it (:mod:`alphahat.fit.esd`)
* ``warning``: ``over-trained`` if α < 2, ``under-trained`` if α > 6, only for fitted layers.

Undefined values are NaN, never ±∞ or −1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from alphahat.fit import PowerLawFit
from alphahat.fit.esd import LayerFit, fit_sample, fit_threshold, noise_floor, vet_fit

FloatArray = npt.NDArray[np.float64]

OVER_TRAINED_ALPHA = 2.0
UNDER_TRAINED_ALPHA = 6.0
OVER_TRAINED = "over-trained"
UNDER_TRAINED = "under-trained"
_LN10 = math.log(10.0)
NAN = float("nan")


@dataclass(frozen=True)
class NormMetrics:
    """Scale metrics of an ESD (see the module docstring for the formulas)."""

    norm: float
    lambda_max: float
    log_norm: float
    log_spectral_norm: float
    stable_rank: float
    matrix_rank: int
    entropy: float


def _log10(value: float) -> float:
    return math.log10(value) if value > 0 and math.isfinite(value) else NAN


def norm_metrics(eigenvalues: FloatArray, N: int) -> NormMetrics:
    """Norm, spectral norm, stable rank, rank and entropy of a sorted ESD of N × M matrices."""
    evals = np.asarray(eigenvalues, dtype=np.float64)
    if evals.size == 0:
        return NormMetrics(NAN, NAN, NAN, NAN, NAN, 0, NAN)
    lambda_max = float(evals.max())
    svals = np.sqrt(np.clip(evals, 0.0, None))
    tol = float(svals.max()) * N * np.finfo(np.float64).eps
    rank = int(np.count_nonzero(svals > tol))
    log_total = _ln_sum(evals)  # ln Σλ, finite even where Σλ overflows float64
    if not math.isfinite(log_total):
        return NormMetrics(NAN, lambda_max, NAN, _log10(lambda_max), NAN, rank, NAN)
    with np.errstate(over="ignore"):
        total = float(evals.sum())
    return NormMetrics(
        norm=total if math.isfinite(total) else NAN,
        lambda_max=lambda_max,
        log_norm=log_total / _LN10,
        log_spectral_norm=_log10(lambda_max),
        stable_rank=math.exp(log_total - math.log(lambda_max)),
        matrix_rank=rank,
        entropy=matrix_entropy(evals, rank),
    )


def _log_sum_exp(values: FloatArray) -> float:
    """Log-sum-exp ln Σ exp(vᵢ) = m + ln Σ exp(vᵢ − m), m = max v, without overflow.

    Empty input gives −inf. The same value as ``scipy.special.logsumexp``, at a tenth of its
    per-call cost, which matters with three calls per layer on small layers.
    """
    if values.size == 0:
        return -math.inf
    top = float(values.max())
    if not math.isfinite(top):
        return top
    return top + math.log(float(np.exp(values - top).sum()))


def _ln_sum(eigenvalues: FloatArray) -> float:
    """Natural log of Σλ over positive λ, as a log-sum-exp (−inf when there is none)."""
    positive = eigenvalues[eigenvalues > 0]
    if positive.size == 0:
        return -math.inf
    return _log_sum_exp(np.log(positive))


def matrix_entropy(eigenvalues: FloatArray, rank: int) -> float:
    """Spectral entropy −Σ p ln p / ln(rank), p = λ/Σλ over positive λ; 0 when rank ≤ 1."""
    positive = eigenvalues[eigenvalues > 0]
    if positive.size == 0:
        return NAN
    if rank <= 1:
        return 0.0
    logs = np.log(positive)
    log_p = logs - _log_sum_exp(logs)  # no overflow of Σλ
    return float(-(np.exp(log_p) * log_p).sum() / math.log(rank))


def log_alpha_norm(eigenvalues: FloatArray, alpha: float) -> float:
    """log₁₀ Σ λᵢ^α over positive λ, without overflow (log-sum-exp of α ln λ)."""
    positive = eigenvalues[eigenvalues > 0]
    if positive.size == 0 or not math.isfinite(alpha):
        return NAN
    return _log_sum_exp(alpha * np.log(positive)) / _LN10


def training_warning(alpha: float, fitted: bool) -> str:
    """``over-trained`` (α < 2), ``under-trained`` (α > 6) or empty; empty for failed fits."""
    if not fitted or not math.isfinite(alpha):
        return ""
    if alpha < OVER_TRAINED_ALPHA:
        return OVER_TRAINED
    if alpha > UNDER_TRAINED_ALPHA:
        return UNDER_TRAINED
    return ""


def layer_metrics(
    eigenvalues: FloatArray, N: int, fit: LayerFit | PowerLawFit
) -> dict[str, object]:
    """The metric columns of one layer's row (fit columns NaN when the fit failed).

    ``fit`` is the layer's :class:`~alphahat.fit.esd.LayerFit` (its α, x_min, x_max, D, σ and
    ``num_pl_spikes`` are read, never recomputed), or a plain power-law fit of
    ``eigenvalues``, whose tail is then #{λ ≥ x_min}.
    """
    if isinstance(fit, PowerLawFit):
        fit = LayerFit.of(fit, eigenvalues)
    norms = norm_metrics(eigenvalues, N)
    fitted = fit.fitted
    alpha = fit.alpha if fitted else NAN
    return {
        "alpha": alpha,
        "alpha_weighted": alpha * norms.log_spectral_norm if fitted else NAN,
        "D": fit.D,
        "sigma": fit.sigma,
        "xmin": fit.xmin,
        "xmax": fit.xmax,
        "num_pl_spikes": fit.num_pl_spikes if fit.num_pl_spikes is not None else 0,
        "norm": norms.norm,
        "lambda_max": norms.lambda_max,
        "log_norm": norms.log_norm,
        "log_spectral_norm": norms.log_spectral_norm,
        "log_alpha_norm": log_alpha_norm(eigenvalues, alpha) if fitted else NAN,
        "stable_rank": norms.stable_rank,
        "entropy": norms.entropy,
        "matrix_rank": norms.matrix_rank,
        "warning": training_warning(alpha, fitted),
    }


#: Metrics averaged in a model summary.
SUMMARY_METRICS = (
    "alpha",
    "alpha_weighted",
    "log_norm",
    "log_spectral_norm",
    "log_alpha_norm",
    "stable_rank",
)


@dataclass(frozen=True)
class ModelSummary:
    """Layer-averaged metrics of a model.

    Averages are over the layers whose power-law fit succeeded (``num_layers``), excluding
    embeddings when ``include_embeddings`` is False. Counts say what was left out.
    """

    means: Mapping[str, float]
    num_layers: int
    num_analysed: int
    num_failed: int
    num_skipped: int
    num_under_trained: int
    num_over_trained: int
    include_embeddings: bool
    excluded_kinds: tuple[str, ...] = field(default=())


def summarize(
    rows: Iterable[Mapping[str, object]],
    *,
    include_embeddings: bool = True,
    num_skipped: int = 0,
) -> ModelSummary:
    """Mean of :data:`SUMMARY_METRICS` over fitted layers (see :class:`ModelSummary`)."""
    rows = list(rows)
    used = [
        r
        for r in rows
        if r.get("status") == "fitted" and (include_embeddings or r.get("kind") != "embedding")
    ]
    means = {}
    for metric in SUMMARY_METRICS:
        values = [float(r[metric]) for r in used if math.isfinite(float(r[metric]))]  # type: ignore[arg-type]
        means[metric] = float(np.mean(values)) if values else NAN
    return ModelSummary(
        means=means,
        num_layers=len(used),
        num_analysed=len(rows),
        num_failed=sum(r.get("status") == "failed" for r in rows),
        num_skipped=num_skipped,
        num_under_trained=sum(r.get("warning") == UNDER_TRAINED for r in used),
        num_over_trained=sum(r.get("warning") == OVER_TRAINED for r in used),
        include_embeddings=include_embeddings,
        excluded_kinds=() if include_embeddings else ("embedding",),
    )


__all__ = [
    "NAN",
    "OVER_TRAINED",
    "OVER_TRAINED_ALPHA",
    "SUMMARY_METRICS",
    "UNDER_TRAINED",
    "UNDER_TRAINED_ALPHA",
    "ModelSummary",
    "NormMetrics",
    "fit_sample",  # the fit's sample (alphahat.fit.esd), here for older imports
    "fit_threshold",
    "layer_metrics",
    "log_alpha_norm",
    "matrix_entropy",
    "noise_floor",
    "norm_metrics",
    "summarize",
    "training_warning",
    "vet_fit",
]
