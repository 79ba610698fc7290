"""Per-layer work behind the reference-tool options of :func:`alphahat.analyze`.

Called by ``analysis._analyse_layer`` for each layer; orchestration only (the maths is in
``fit``, ``spectrum`` and ``metrics``). Options and the columns they add:

* ``fit`` — ``"PL"``: power law (default). ``"TPL"``: truncated power law x^(−α)e^(−λx) fitted
  by maximum likelihood above the power-law fit's x_min (``alpha`` is the TPL exponent, plus
  ``Lambda``). ``"E_TPL"``: the same with x_min at the ESD peak (``fix_fingers="xmin_peak"``).
* ``fix_fingers`` — ``"xmin_peak"``: x_min restricted to [0.95 p, 1.5 p] (or ``xmin_max``),
  p the peak of the log-ESD. ``"clip_xmax"``: finger clipping (``num_fingers``, ``raw_alpha``).
* ``xmax`` — an integer k: the k largest eigenvalues are left out of the fit (and of
  ``num_pl_spikes``).
* ``mp_fit`` — Marchenko–Pastur fit: ``num_spikes``, ``sigma_mp``, ``mp_softrank``,
  ``W_scale``, ``bulk_max``, ``bulk_min``.
* ``randomize`` — ESD of the element-shuffled W (seeded per layer from ``seed`` and the layer
  name), its MP fit (``rand_*``), ``max_rand_eval``, ``ww_softrank``, ``ww_maxdist``,
  ``rand_distance``, correlation traps (``num_traps``, ``trap_ratio``).
* ``detX`` — ``detX_num``, ``detX_val``, ``ERG_gap`` = detX_num − num_pl_spikes.
* ``vectors`` — eigenvector localization, bulk vs tail (:mod:`alphahat.metrics.eigenvectors`).
* ``pool`` — False: one row per conv kernel slice, ``name [slice i,j]`` with the tensor's
  ``layer_id`` and a ``slice_id`` (:mod:`alphahat.layers.conv`).
* ``fft`` — True: a conv layer's ESD is that of its circular convolution operator on an
  ``fft_size``^d input (:mod:`alphahat.spectrum.conv_fft`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from alphahat.fit import PowerLawFit, fit_power_law
from alphahat.fit.marchenko_pastur import fit_marchenko_pastur
from alphahat.metrics.detx import detx_condition
from alphahat.metrics.eigenvectors import eigenvector_columns
from alphahat.metrics.randomization import mp_columns, randomization_columns
from alphahat.spectrum.randomize import layer_randomized_spectrum

if TYPE_CHECKING:
    from alphahat.analysis import AnalysisOptions

FloatArray = npt.NDArray[np.float64]
FitKind = Literal["PL", "TPL", "E_TPL"]
FIT_KINDS: tuple[str, ...] = ("PL", "TPL", "E_TPL")
FixFingers = Literal["xmin_peak", "clip_xmax"]
FIX_FINGERS: tuple[str, ...] = ("xmin_peak", "clip_xmax")


def check_options(options: AnalysisOptions) -> None:
    """Validate the reference-tool options of :class:`~alphahat.analysis.AnalysisOptions`."""
    if options.fit not in FIT_KINDS:
        raise ValueError(
            f"fit must be one of {', '.join(map(repr, FIT_KINDS))}; got {options.fit!r}"
        )
    if options.fix_fingers is not None and options.fix_fingers not in FIX_FINGERS:
        raise ValueError(
            f"fix_fingers must be None or one of {', '.join(map(repr, FIX_FINGERS))}; "
            f"got {options.fix_fingers!r}"
        )
    if options.fit == "E_TPL" and options.fix_fingers == "clip_xmax":
        raise ValueError("fit='E_TPL' fixes x_min at the ESD peak; it cannot use 'clip_xmax'")
    if options.xmax is not None and (
        isinstance(options.xmax, bool) or not isinstance(options.xmax, int) or options.xmax == 0
    ):
        raise ValueError(
            f"xmax must be None or a non-zero integer (eigenvalues to leave out); "
            f"got {options.xmax!r}"
        )
    if options.xmax is not None and options.fix_fingers is not None:
        raise ValueError(f"xmax={options.xmax} cannot be combined with fix_fingers")
    if options.xmin_max is not None and not (
        isinstance(options.xmin_max, int | float)
        and not isinstance(options.xmin_max, bool)
        and math.isfinite(options.xmin_max)
        and options.xmin_max > 0
    ):
        raise ValueError(f"xmin_max must be None or a positive number; got {options.xmin_max!r}")
    if isinstance(options.max_fingers, bool) or not isinstance(options.max_fingers, int):
        raise ValueError(f"max_fingers must be a positive integer; got {options.max_fingers!r}")
    if options.max_fingers < 1:
        raise ValueError(f"max_fingers must be a positive integer; got {options.max_fingers!r}")
    if not (
        isinstance(options.finger_thresh, int | float)
        and math.isfinite(options.finger_thresh)
        and options.finger_thresh > 0
    ):
        raise ValueError(f"finger_thresh must be a positive number; got {options.finger_thresh!r}")
    for flag in ("mp_fit", "randomize", "detX", "vectors", "pool", "fft"):
        if not isinstance(getattr(options, flag), bool):
            raise ValueError(f"{flag} must be True or False; got {getattr(options, flag)!r}")
    seed = options.seed
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer ≥ 0; got {seed!r}")
    size = options.fft_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"fft_size must be a positive integer; got {size!r}")
    if options.fft and not options.pool:
        raise ValueError(
            "fft=True and pool=False exclude each other: the FFT spectrum is one ESD of the "
            "whole conv operator, not of kernel slices"
        )
    if options.fft and (options.randomize or options.vectors):
        option = "randomize" if options.randomize else "vectors"
        raise ValueError(
            f"fft=True cannot be combined with {option}=True (they need the real kernel "
            "slices; the FFT spectrum comes from complex frequency matrices)"
        )


def fit_layer(sample: FloatArray, options: AnalysisOptions) -> tuple[PowerLawFit, dict[str, Any]]:
    """The tail fit of a layer under ``fit``/``fix_fingers``/``xmax``, and its extra columns.

    ``sample``: the eigenvalues the fit uses (above the threshold), ascending. For ``TPL`` and
    ``E_TPL`` the returned fit carries the TPL exponent as ``alpha`` (so ``alpha_weighted`` and
    ``log_alpha_norm`` use it), the power-law fit's x_min and D, and σ = NaN (the closed-form
    standard error is the power law's only).
    """
    peak = options.fix_fingers == "xmin_peak" or options.fit == "E_TPL"
    columns: dict[str, Any] = {}
    if options.xmax is not None:
        drop = abs(options.xmax)
        if drop > sample.size / 2:
            fit = fit_power_law(sample[:0])
            reason = f"xmax={options.xmax} leaves out more than half of {sample.size} eigenvalues"
            return replace(fit, reason=reason), columns
        fit = fit_power_law(sample[: sample.size - drop])
        if fit.fitted:  # the left-out top eigenvalues are not in the tail (as the reference)
            columns["num_pl_spikes"] = fit.n_tail
    elif options.fix_fingers == "clip_xmax":
        fit = fit_power_law(
            sample,
            xmax="clip",
            max_fingers=options.max_fingers,
            finger_threshold=float(options.finger_thresh),
        )
        columns["num_fingers"] = fit.num_clipped if fit.fitted else None
        columns["raw_alpha"] = fit.raw_alpha if fit.fitted else math.nan
    elif peak:
        fit = fit_power_law(sample, xmin="peak", xmin_max=options.xmin_max)
    else:
        fit = fit_power_law(sample)
    if options.fit == "PL":
        return fit, columns
    columns["Lambda"] = math.nan
    if not fit.fitted:
        return fit, columns
    from alphahat.fit import fit_tail  # scipy.optimize/integrate: only when asked for

    tpl = fit_tail(sample, fit.xmin, "truncated_power_law")
    if not tpl.fitted:
        reason = f"truncated power law: {tpl.status}: {tpl.reason}"
        nan = math.nan
        failed = replace(fit, alpha=nan, D=nan, sigma=nan, status=tpl.status, reason=reason)
        return failed, columns
    columns["Lambda"] = float(tpl.parameters["Lambda"])
    return replace(fit, alpha=float(tpl.parameters["alpha"]), sigma=math.nan), columns


def option_columns(
    *,
    name: str,
    evals: FloatArray,
    N: int,
    M: int,
    values: npt.NDArray[np.generic],
    matrices: Sequence[npt.NDArray[np.generic]],
    scale: float,
    num_pl_spikes: int | None,
    options: AnalysisOptions,
) -> dict[str, Any]:
    """The ``mp_fit``, ``randomize``, ``detX`` and ``vectors`` columns of one layer.

    ``values``: the weight as stored and ``matrices`` its N × M matrices; ``randomize``
    shuffles them as :func:`~alphahat.spectrum.randomize.layer_randomized_spectrum` says.
    ``num_pl_spikes``: the power-law tail size (None if the fit failed).
    """
    row: dict[str, Any] = {}
    if options.mp_fit:
        row.update(mp_columns(fit_marchenko_pastur(evals, N=N, M=M)))
    if options.randomize:
        shuffled = layer_randomized_spectrum(
            values, matrices, scale, seed=options.seed, name=name, exact=options.backend == "svd"
        )
        random_fit = fit_marchenko_pastur(shuffled.eigenvalues, N=N, M=M)
        replicas = len(shuffled.replicas)
        row.update(randomization_columns(evals, shuffled.eigenvalues, random_fit, replicas))
    if options.detX:
        condition = detx_condition(evals)
        row["detX_num"] = condition.num
        row["detX_val"] = condition.value
        row["ERG_gap"] = None if num_pl_spikes is None else condition.num - num_pl_spikes
    if options.vectors:
        row.update(eigenvector_columns(matrices, num_pl_spikes, scale))
    return row


__all__ = ["FIT_KINDS", "FIX_FINGERS", "check_options", "fit_layer", "option_columns"]
