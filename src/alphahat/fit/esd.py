"""The tail fit of one layer's ESD: which eigenvalues are fitted, how, and whether it is meaningful.

A layer's eigenvalues λ (ascending, float64, from :mod:`alphahat.spectrum`) become a
:class:`LayerFit` in one call, :func:`fit_esd`, which owns every decision the table's fit
columns depend on:

* **The sample.** The fit sees λ > t, t = max(``evals_threshold``, λ_max · (N · ε)²): the
  reference tool's absolute cut (1e-5 by default) and the noise floor of an SVD, the squared
  singular values below NumPy's rank tolerance σ_max · N · ε (a rank-deficient matrix has
  such values instead of exact zeros). :func:`fit_sample` and :func:`fit_threshold`.
* **The policy** (:class:`FitPolicy`, the reference tool's options): ``kind`` ``"PL"`` (power
  law, x_min of minimum KS distance), ``"TPL"`` (a truncated power law x^(−α)e^(−Λx) fitted
  by maximum likelihood above the power law's x_min; α is its exponent, σ is NaN), ``"E_TPL"``
  (the same with x_min at the ESD peak); ``fix_fingers`` ``"xmin_peak"`` (x_min within
  [0.95 p, 1.5 p], or up to ``xmin_max``, p the peak of the log-ESD) or ``"clip_xmax"``
  (finger clipping: ``num_fingers``, ``raw_alpha``) or ``"xmin_mid"`` (x_min fixed at the
  median of the sample, x_min = s[⌊n/2⌋] of the n sorted fitted eigenvalues, as TempBalance
  — Zhou et al., NeurIPS 2023 — and FARMS — Hu et al., ICML 2025 — fit; no search);
  ``xmax`` = k, the k largest eigenvalues left out of the fit and of ``num_pl_spikes``.
* **Vetting.** A tail λ ≥ x_min that spans no more than the rounding error of the eigenvalues
  (λ_max − x_min ≤ 4 · N · ε · λ_max, e.g. an orthogonal matrix, all σ = 1) would give a huge α
  made of rounding noise: such a fit is failed with status ``constant`` (:func:`vet_fit`).
* **The tail size** ``num_pl_spikes`` = #{λ ≥ x_min} (with ``xmax`` = k: the tail of the
  fitted sample, the k left-out eigenvalues excluded).

Pure: NumPy arrays in, frozen dataclasses out. The caller that computed the eigenvalues by a
guarded fast path checks the fit's x_min against that path's error bound and, where it does
not hold, calls :func:`fit_esd` again on exact eigenvalues (:mod:`alphahat.pipeline.core`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from alphahat.fit.power_law import FitStatus, PowerLawFit, fit_power_law

if TYPE_CHECKING:
    from alphahat.fit.alternatives import TailFit

FloatArray = npt.NDArray[np.float64]

FitKind = Literal["PL", "TPL", "E_TPL"]
#: Tail laws of ``fit`` (the reference tool's names).
FIT_KINDS: tuple[str, ...] = ("PL", "TPL", "E_TPL")
FixFingers = Literal["xmin_peak", "clip_xmax", "xmin_mid"]
#: Policies of ``fix_fingers`` (the reference tool's names; ``xmin_mid`` is TempBalance's and
#: FARMS's, not the reference tool's).
FIX_FINGERS: tuple[str, ...] = ("xmin_peak", "clip_xmax", "xmin_mid")

#: The tail of a fit must span more than this many ulps of λ_max per matrix dimension.
RESOLUTION_ULPS = 4.0
_EPS = float(np.finfo(np.float64).eps)
_NAN = float("nan")


def _empty() -> FloatArray:
    return np.empty(0, dtype=np.float64)


@dataclass(frozen=True)
class FitPolicy:
    """How a layer's ESD tail is fitted: the reference tool's ``fit`` options, checked.

    Built from the analysis options (:meth:`alphahat.pipeline.AnalysisOptions.fit_policy`),
    which declare and validate every one of these and hold their defaults.

    Attributes:
        kind: ``"PL"``, ``"TPL"`` or ``"E_TPL"``.
        fix_fingers: None, ``"xmin_peak"``, ``"clip_xmax"`` or ``"xmin_mid"``.
        xmin_max: upper end of the x_min window of ``xmin_peak`` (None: 1.5 × the peak).
        max_fingers: most eigenvalues ``clip_xmax`` may clip.
        finger_threshold: how much lower than the unclipped α a clipped α must be.
        xmax: the number of largest eigenvalues left out of the fit (None: none).
        evals_threshold: eigenvalues ≤ this are not fitted (the noise floor may raise it).
    """

    kind: str
    fix_fingers: str | None
    xmin_max: float | None
    max_fingers: int
    finger_threshold: float
    xmax: int | None
    evals_threshold: float

    @property
    def peak(self) -> bool:
        """Whether x_min is searched near the ESD peak (``xmin_peak`` or ``E_TPL``)."""
        return self.fix_fingers == "xmin_peak" or self.kind == "E_TPL"


@dataclass(frozen=True)
class LayerFit:
    """The fit of one layer's ESD tail, exactly as the layer's row reports it.

    Attributes:
        power_law: the power-law fit of :attr:`fitted_sample` (vetted: a tail within rounding
            error is a failed fit), with its x_min search under the policy.
        sample: the eigenvalues λ > :attr:`threshold`, ascending (what the histograms show).
        threshold: the cut actually applied, max(``evals_threshold``, noise floor).
        policy: the policy of the fit (None for a plain power-law fit of a sample).
        num_left_out: largest values of ``sample`` not fitted (``xmax`` = k, or the fingers
            clipped by ``clip_xmax``).
        truncated: with ``kind`` ``TPL``/``E_TPL``, the truncated power law fitted above
            x_min (None otherwise, or when the power law itself failed).
        status, reason: the outcome of the whole fit (``fitted``, or why not).
        num_pl_spikes: eigenvalues in the fitted tail (None when not fitted).
        num_fingers: values clipped by ``clip_xmax`` (None without it or when not fitted).
        raw_alpha: α before finger clipping (NaN without ``clip_xmax``).
        searched_xmin: the x_min the search chose, before vetting (NaN when the search or
            the truncated fit failed): what a guarded spectrum must resolve.
    """

    power_law: PowerLawFit
    sample: FloatArray = field(repr=False)
    threshold: float
    policy: FitPolicy | None = None
    num_left_out: int = 0
    truncated: TailFit | None = None
    status: FitStatus = FitStatus.FITTED
    reason: str = ""
    num_pl_spikes: int | None = None
    num_fingers: int | None = None
    raw_alpha: float = _NAN
    searched_xmin: float = _NAN

    @property
    def fitted(self) -> bool:
        """True when the fit succeeded (its α means something)."""
        return self.status is FitStatus.FITTED

    @property
    def fitted_sample(self) -> FloatArray:
        """The values the fitter saw: :attr:`sample` less the ``num_left_out`` largest."""
        return self.sample[: self.sample.size - self.num_left_out]

    @property
    def kind(self) -> str:
        """``"PL"``, ``"TPL"`` or ``"E_TPL"``: the law whose exponent is :attr:`alpha`."""
        return self.policy.kind if self.policy is not None else "PL"

    @property
    def alpha(self) -> float:
        """The reported exponent: the truncated law's (``TPL``/``E_TPL``), else the power law's."""
        if not self.fitted:
            return _NAN
        if self.truncated is not None:
            return float(self.truncated.parameters["alpha"])
        return self.power_law.alpha

    @property
    def Lambda(self) -> float:  # noqa: N802 (the reference tool's column name)
        """The truncation rate Λ of ``TPL``/``E_TPL`` (NaN otherwise)."""
        if not self.fitted or self.truncated is None:
            return _NAN
        return float(self.truncated.parameters["Lambda"])

    @property
    def xmin(self) -> float:
        """Lower end of the fitted tail (NaN when not fitted)."""
        return self.power_law.xmin if self.fitted else _NAN

    @property
    def xmax(self) -> float:
        """Largest fitted value (NaN when not fitted)."""
        return self.power_law.xmax if self.fitted else _NAN

    @property
    def D(self) -> float:  # noqa: N802 (the field's own name)
        """KS distance of the power-law fit at x_min (NaN when not fitted)."""
        return self.power_law.D if self.fitted else _NAN

    @property
    def sigma(self) -> float:
        """Standard error (α − 1)/√n_tail of the power law's α; NaN for ``TPL``/``E_TPL``."""
        if not self.fitted or self.truncated is not None:
            return _NAN
        return self.power_law.sigma

    @property
    def n_tail(self) -> int:
        """Points of the fitted sample in the tail (0 when not fitted)."""
        return self.power_law.n_tail if self.fitted else 0

    def columns(self) -> dict[str, Any]:
        """The policy's own columns: ``num_fingers`` and ``raw_alpha``, ``Lambda``."""
        out: dict[str, Any] = {}
        if self.policy is None:
            return out
        if self.policy.xmax is None and self.policy.fix_fingers == "clip_xmax":
            out["num_fingers"] = self.num_fingers
            out["raw_alpha"] = self.raw_alpha
        if self.policy.kind != "PL":
            out["Lambda"] = self.Lambda
        return out

    @classmethod
    def of(cls, power_law: PowerLawFit, sample: npt.ArrayLike, threshold: float = 0.0) -> LayerFit:
        """A plain power-law fit of ``sample`` (values > ``threshold``) as a LayerFit.

        ``num_left_out`` is the fit's ``num_clipped``; the tail count is #{λ ≥ x_min} of the
        values it fitted.
        """
        values = np.sort(np.asarray(sample, dtype=np.float64).reshape(-1))
        left_out = int(power_law.num_clipped)
        fitted = values[: values.size - left_out]
        spikes = int(np.count_nonzero(fitted >= power_law.xmin)) if power_law.fitted else None
        return cls(
            power_law,
            values,
            float(threshold),
            num_left_out=left_out,
            status=power_law.status,
            reason=power_law.reason,
            num_pl_spikes=spikes,
            searched_xmin=power_law.xmin if power_law.fitted else _NAN,
        )


def noise_floor(eigenvalues: FloatArray, N: int) -> float:
    """λ_max · (N · ε)²: eigenvalues at or below it are rounding noise of the SVD.

    They belong to singular values σ ≤ σ_max · N · ε, NumPy's ``matrix_rank`` tolerance (a
    rank-deficient matrix has such values instead of exact zeros).
    """
    if eigenvalues.size == 0:
        return 0.0
    return float(eigenvalues.max()) * (N * _EPS) ** 2


def fit_threshold(eigenvalues: FloatArray, N: int, threshold: float) -> float:
    """The cut of :func:`fit_sample`: max(``threshold``, :func:`noise_floor`).

    The threshold is the reference tool's absolute cut (1e-5 by default); the noise floor
    keeps the rounding noise of a rank-deficient matrix out of the fit when the weights are so
    large that this noise exceeds the threshold.
    """
    return max(float(threshold), noise_floor(np.asarray(eigenvalues, dtype=np.float64), N))


def fit_sample(eigenvalues: FloatArray, N: int, threshold: float) -> FloatArray:
    """The eigenvalues the power-law fit sees: λ > :func:`fit_threshold`."""
    evals = np.asarray(eigenvalues, dtype=np.float64)
    return evals[evals > fit_threshold(evals, N, threshold)]


def _too_few_reason(reason: str, kept: int, total: int, threshold: float) -> str:
    return (
        f"{reason} ({kept} of {total} eigenvalues are > evals_threshold={threshold:g} and "
        "above the numerical noise floor)"
    )


def _constant_tail(fit: PowerLawFit, evals: FloatArray, N: int) -> PowerLawFit:
    """``fit``, or a ``constant`` failure when its tail lies within rounding error."""
    if evals.size == 0:
        return fit
    lambda_max = float(evals.max())
    spread = lambda_max - fit.xmin
    resolution = RESOLUTION_ULPS * N * _EPS * lambda_max
    if spread > resolution:
        return fit
    return replace(
        fit,
        alpha=_NAN,
        xmin=_NAN,
        D=_NAN,
        sigma=_NAN,
        n_tail=0,
        status=FitStatus.CONSTANT,
        reason=(
            f"the tail λ ≥ x_min is constant within rounding error (λ_max − x_min = "
            f"{spread:.3g} ≤ {resolution:.3g}): no power law to fit"
        ),
    )


def vet_fit(fit: PowerLawFit, eigenvalues: FloatArray, N: int, threshold: float) -> PowerLawFit:
    """``fit``, or a failed copy of it when its numbers would not mean anything.

    * The tail λ ≥ x_min spans no more than the rounding error of the eigenvalues
      (λ_max − x_min ≤ 4 · N · ε · λ_max): status ``constant``.
    * Too few points: the reason says how many eigenvalues passed the threshold and the
      noise floor of :func:`fit_sample`.

    (:func:`fit_esd` applies the same checks to the fits it makes.)
    """
    evals = np.asarray(eigenvalues, dtype=np.float64)
    if fit.status is FitStatus.TOO_FEW_POINTS:
        kept = fit_sample(evals, N, threshold).size
        return replace(fit, reason=_too_few_reason(fit.reason, kept, evals.size, threshold))
    if not fit.fitted:
        return fit
    return _constant_tail(fit, evals, N)


def _power_law_of(sample: FloatArray, policy: FitPolicy) -> tuple[PowerLawFit, int, str]:
    """The policy's power-law fit of ``sample``, the values it left out, and a failure reason."""
    if policy.xmax is not None:
        drop = abs(policy.xmax)
        if drop > sample.size / 2:
            reason = f"xmax={policy.xmax} leaves out more than half of {sample.size} eigenvalues"
            return fit_power_law(sample[:0]), 0, reason
        return fit_power_law(sample[: sample.size - drop]), drop, ""
    if policy.fix_fingers == "clip_xmax":
        fit = fit_power_law(
            sample,
            xmax="clip",
            max_fingers=policy.max_fingers,
            finger_threshold=float(policy.finger_threshold),
        )
        return fit, fit.num_clipped, ""
    if policy.peak:
        return fit_power_law(sample, xmin="peak", xmin_max=policy.xmin_max), 0, ""
    if policy.fix_fingers == "xmin_mid" and sample.size:
        return fit_power_law(sample, xmin=float(sample[sample.size // 2])), 0, ""
    return fit_power_law(sample), 0, ""


def fit_esd(eigenvalues: npt.ArrayLike, N: int, policy: FitPolicy) -> LayerFit:
    """The tail fit of an ESD of N × M matrices under ``policy`` (see the module docstring).

    Args:
        eigenvalues: the layer's eigenvalues λ = σ², ascending (all of them: the sample and
            the vetting are decided here).
        N: rows of each matrix (N ≥ M), for the noise floor and the rounding resolution.
        policy: how to fit.
    """
    evals = np.asarray(eigenvalues, dtype=np.float64)
    threshold = fit_threshold(evals, N, policy.evals_threshold)
    sample = evals[evals > threshold]
    power_law, left_out, reason = _power_law_of(sample, policy)
    if reason:
        power_law = replace(power_law, reason=reason)
    clip = policy.xmax is None and policy.fix_fingers == "clip_xmax"
    num_fingers = power_law.num_clipped if clip and power_law.fitted else None
    raw_alpha = power_law.raw_alpha if clip and power_law.fitted else _NAN
    status, why = power_law.status, power_law.reason
    truncated: TailFit | None = None
    if policy.kind != "PL" and power_law.fitted:
        from alphahat.fit.alternatives import fit_tail  # scipy.optimize/integrate: on demand

        truncated = fit_tail(sample, power_law.xmin, "truncated_power_law")
        if not truncated.fitted:
            status = truncated.status
            why = f"truncated power law: {truncated.status}: {truncated.reason}"
            truncated = None
    searched_xmin = power_law.xmin if status is FitStatus.FITTED else _NAN
    if status is FitStatus.TOO_FEW_POINTS:
        why = _too_few_reason(why, sample.size, evals.size, policy.evals_threshold)
        if power_law.status is FitStatus.TOO_FEW_POINTS:
            power_law = replace(power_law, reason=why)
    elif status is FitStatus.FITTED:
        constant = _constant_tail(power_law, evals, N)
        if constant is not power_law:
            power_law, status, why, truncated = constant, constant.status, constant.reason, None
    spikes = None
    if status is FitStatus.FITTED:  # with xmax = k: the fitted tail, the k left out not in it
        spikes = (
            power_law.n_tail
            if policy.xmax is not None
            else int(np.count_nonzero(evals >= power_law.xmin))
        )
    return LayerFit(
        power_law=power_law,
        sample=sample,
        threshold=threshold,
        policy=policy,
        num_left_out=left_out,
        truncated=truncated,
        status=status,
        reason=why,
        num_pl_spikes=spikes,
        num_fingers=num_fingers,
        raw_alpha=raw_alpha,
        searched_xmin=searched_xmin,
    )


__all__ = [
    "FIT_KINDS",
    "FIX_FINGERS",
    "FitKind",
    "FitPolicy",
    "FixFingers",
    "LayerFit",
    "fit_esd",
    "fit_sample",
    "fit_threshold",
    "noise_floor",
    "vet_fit",
]
