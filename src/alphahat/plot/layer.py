"""Per-layer figures: the views of one ESD that the HT-SR papers use to judge a power-law fit.

Every function draws on ``ax`` (a matplotlib Axes; a new figure when None) and returns it; the
four-panel :func:`fit_diagnostics` takes and returns a Figure. Nothing calls ``show()`` or
touches pyplot.

Conventions:

* The histograms show the eigenvalues the fit sees: λ > ``evals_threshold`` (default 1e-5, the
  analysis' rule), n of them; densities are normalised over those n (area 1).
* The fitted power law is drawn as the density of the whole sample in the tail,
  ρ(λ) = (n_tail / n) · (α − 1)/x_min · (λ / x_min)^(−α) for x_min ≤ λ ≤ x_max, so it lies on the
  histogram where the tail starts. In the log-lin view (a density of u = log₁₀ λ) the same law is
  ρ(10ᵘ) · 10ᵘ · ln 10.
* ``fit`` is the fit to draw: a layer's :class:`~alphahat.fit.esd.LayerFit` (what its row
  reports: ``report.fits[name].fit`` with ``analyze(..., keep_fits=True)``; the histogram then
  shows λ above that fit's own cut, and with ``fit="TPL"``/``"E_TPL"`` the line is the
  truncated law x^(−α)e^(−Λx) it fitted), a :class:`~alphahat.fit.PowerLawFit` of the
  eigenvalues above ``evals_threshold``, or None: :func:`diagnostic_fit`, the default power-law
  fit. The D- and α-vs-x_min curves are those of every candidate x_min of the fitted sample; the
  chosen x_min is marked with the fit's own D and α.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from alphahat.fit import PowerLawFit, fit_power_law
from alphahat.fit.esd import LayerFit
from alphahat.pipeline.options import default
from alphahat.plot._mpl import (
    ALPHA_BAND,
    BAND_COLOR,
    FIT_COLOR,
    HIST_COLOR,
    XMAX_COLOR,
    axes_or_new,
    empty_axes,
    figure_or_new,
    short_title,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FloatArray = npt.NDArray[np.float64]

#: The option table's default cut: eigenvalues ≤ it are not fitted (nor shown).
DEFAULT_EVALS_THRESHOLD: float = default("evals_threshold")
#: Gids of the fitted tail law's line and of the x_min / x_max markers (to find them).
FIT_LINE_GID = "power-law-fit"
XMIN_LINE_GID = "fit-xmin"
XMAX_LINE_GID = "fit-xmax"
MP_LINE_GID = "marchenko-pastur-fit"
#: What the figures take as the fit to draw.
DrawableFit = LayerFit | PowerLawFit

LAMBDA = "eigenvalue λ"
LOG_LAMBDA = "log₁₀ λ"
DENSITY = "density ρ(λ)"
#: Height (inches) of the legend row above the panels of :func:`fit_diagnostics`.
LEGEND_ROW = 0.3
XMIN = "candidate xₘᵢₙ"


class MarchenkoPasturLike(Protocol):
    """What :func:`mp_fit_plot` needs of a Marchenko–Pastur fit of the bulk of an ESD."""

    @property
    def sigma(self) -> float:
        """Fitted element scale σ of the random bulk."""

    @property
    def bulk_min(self) -> float:
        """Lower edge λ₋ of the fitted bulk (units of the eigenvalues)."""

    @property
    def bulk_max(self) -> float:
        """Upper edge λ₊ of the fitted bulk (units of the eigenvalues)."""

    @property
    def num_spikes(self) -> int:
        """Number of eigenvalues counted as spikes above the bulk."""

    def density(self, x: FloatArray) -> FloatArray:
        """Fitted MP density at ``x`` (units of the eigenvalues)."""


def _eigenvalues(eigenvalues: npt.ArrayLike, what: str = "eigenvalues") -> FloatArray:
    try:
        x = np.asarray(eigenvalues, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be an array of numbers: {exc}") from None
    if x.ndim != 1:
        raise ValueError(f"{what} must be 1-D; got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} contain NaN or infinite values")
    return np.sort(x)


def fit_sample(
    eigenvalues: npt.ArrayLike, evals_threshold: float = DEFAULT_EVALS_THRESHOLD
) -> FloatArray:
    """The sorted eigenvalues > ``evals_threshold`` (what the fit and the histograms use)."""
    x = _eigenvalues(eigenvalues)
    x = x[x > evals_threshold]
    if x.size == 0:
        raise ValueError(f"no eigenvalues > evals_threshold={evals_threshold:g} to plot")
    return x


def diagnostic_fit(
    eigenvalues: npt.ArrayLike, *, evals_threshold: float = DEFAULT_EVALS_THRESHOLD
) -> PowerLawFit:
    """The analysis' power-law fit of λ > threshold, with D and α for every candidate x_min."""
    return fit_power_law(fit_sample(eigenvalues, evals_threshold), all_distances=True)


def power_law_density(fit: PowerLawFit | LayerFit, n: int, x: npt.ArrayLike) -> FloatArray:
    """(n_tail / n) · (α − 1)/x_min · (x / x_min)^(−α): the fitted law as a density of n points."""
    values = np.asarray(x, dtype=np.float64)
    scale = fit.n_tail / n * (fit.alpha - 1.0) / fit.xmin
    return np.asarray(scale * (values / fit.xmin) ** (-fit.alpha), dtype=np.float64)


def tail_density(fit: LayerFit, n: int, x: npt.ArrayLike) -> FloatArray:
    """The fitted tail law of ``fit`` as a density of n points, at ``x`` (in [x_min, x_max]).

    Power law: :func:`power_law_density` with the fit's α, x_min and tail size. Truncated power
    law (``TPL``/``E_TPL``): (n_tail / n) · x^(−α) e^(−Λx) / Z, Z = ∫_{x_min}^∞ t^(−α) e^(−Λt) dt,
    n_tail the sample's points ≥ x_min (the points it was fitted on).
    """
    values = np.asarray(x, dtype=np.float64)
    if fit.truncated is None:
        return power_law_density(fit, n, values)
    from alphahat.fit.alternatives import truncated_power_law_log_normalizer

    alpha, rate, xmin = fit.alpha, fit.Lambda, fit.xmin
    n_tail = int(np.count_nonzero(fit.sample >= xmin))
    log_z = truncated_power_law_log_normalizer(alpha, rate, xmin)
    log_density = -alpha * np.log(values) - rate * values - log_z
    return np.asarray(n_tail / n * np.exp(log_density), dtype=np.float64)


def as_layer_fit(
    eigenvalues: npt.ArrayLike,
    fit: DrawableFit | None,
    evals_threshold: float = DEFAULT_EVALS_THRESHOLD,
) -> LayerFit:
    """The fit a figure draws, as a :class:`~alphahat.fit.esd.LayerFit`.

    A LayerFit as it is; a PowerLawFit of the eigenvalues above ``evals_threshold`` wrapped; None:
    :func:`diagnostic_fit` of them.
    """
    if isinstance(fit, LayerFit):
        return fit
    sample = fit_sample(eigenvalues, evals_threshold)
    power_law = fit if fit is not None else fit_power_law(sample, all_distances=True)
    return LayerFit.of(power_law, sample, evals_threshold)


def _shown(eigenvalues: npt.ArrayLike, fit: LayerFit) -> FloatArray:
    """The eigenvalues a histogram shows: those above the fit's cut."""
    return fit_sample(eigenvalues, fit.threshold)


def _fit_title(fit: LayerFit) -> str:
    if not fit.fitted:
        return f"fit {fit.status}"
    law = f" (TPL, Λ = {fit.Lambda:.3g})" if fit.truncated is not None else ""
    return f"α = {fit.alpha:.3f}, D = {fit.D:.3f}{law}"


def _mark_xmin_xmax(ax: Axes, fit: LayerFit, log10: bool = False) -> None:
    def pos(v: float) -> float:
        return math.log10(v) if log10 else v

    if not fit.fitted:
        return
    line = ax.axvline(
        pos(fit.xmin), color=FIT_COLOR, ls="--", lw=1.2, label=f"xₘᵢₙ = {fit.xmin:.4g}"
    )
    line.set_gid(XMIN_LINE_GID)
    if math.isfinite(fit.xmax) and fit.xmax > 0:
        line = ax.axvline(
            pos(fit.xmax), color=XMAX_COLOR, ls=":", lw=1.2, label=f"xₘₐₓ = {fit.xmax:.4g}"
        )
        line.set_gid(XMAX_LINE_GID)


def _legend(ax: Axes, show: bool, loc: Literal["upper right", "upper left", "best"]) -> None:
    """A small legend at ``loc``, its frame opaque enough to read over the data (if ``show``)."""
    if show:
        ax.legend(fontsize=7, loc=loc, framealpha=0.85)


def _log_bins(x: FloatArray, bins: int) -> list[float]:
    lo, hi = float(x[0]), float(x[-1])
    if hi <= lo * (1 + 1e-12):
        lo, hi = lo / 1.1, hi * 1.1
    edges: list[float] = np.geomspace(lo, hi, bins + 1).tolist()
    return edges


def _lin_bins(x: FloatArray, bins: int) -> list[float]:
    lo, hi = float(x[0]), float(x[-1])
    if hi <= lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    edges: list[float] = np.linspace(lo, hi, bins + 1).tolist()
    return edges


def step_histogram(
    ax: Axes,
    values: FloatArray,
    edges: list[float],
    *,
    weights: FloatArray | None = None,
    density: bool = False,
    label: str = "",
) -> FloatArray:
    """A filled step histogram of ``values`` on ``edges`` (one patch); returns the heights.

    Draws what ``ax.hist(..., histtype="stepfilled")`` draws, without its walk over every
    vertex of the patch for the data limits (a third of building a figure): the limits are the
    outline's corners.
    """
    from matplotlib.patches import Polygon

    heights, _ = np.histogram(values, bins=edges, weights=weights, density=density)
    outline = np.column_stack(
        [np.repeat(edges, 2), np.concatenate([[0.0], np.repeat(heights, 2), [0.0]])]
    )
    patch = Polygon(
        outline, closed=True, facecolor=HIST_COLOR, edgecolor="none", alpha=0.55, label=label
    )
    patch.sticky_edges.y.append(0.0)  # the bars stand on the axis, as hist's
    ax.add_artist(patch)
    ax.update_datalim(outline)
    ax.autoscale_view()
    return np.asarray(heights, dtype=np.float64)


def _draw_esd_with_fit(
    ax: Axes,
    values: FloatArray,
    edges: list[float],
    fit: LayerFit,
    grid: FloatArray,
    density: Callable[[FloatArray], FloatArray],
) -> None:
    """Histogram (density) of ``values`` on ``edges``; the fitted law on ``grid`` if fitted."""
    step_histogram(ax, values, edges, density=True, label="ESD")
    if fit.fitted:
        law = "truncated power law" if fit.truncated is not None else "power law"
        (line,) = ax.plot(
            grid, density(grid), color=FIT_COLOR, lw=2, label=f"{law}, α = {fit.alpha:.2f}"
        )
        line.set_gid(FIT_LINE_GID)


def esd_log_log_plot(
    eigenvalues: npt.ArrayLike,
    fit: DrawableFit | None = None,
    *,
    ax: Axes | None = None,
    evals_threshold: float = DEFAULT_EVALS_THRESHOLD,
    bins: int = 100,
    title: str | None = None,
    legend: bool = True,
) -> Axes:
    """Log-log ESD (density on log-spaced bins) with the fitted power law over [x_min, x_max].

    The fitted line (gid :data:`FIT_LINE_GID`) is the density of :func:`power_law_density` on
    x_min … x_max; dashed and dotted vertical lines mark x_min and x_max.
    """
    fit = as_layer_fit(eigenvalues, fit, evals_threshold)
    x = _shown(eigenvalues, fit)
    ax = axes_or_new(ax)
    grid = np.geomspace(fit.xmin, fit.xmax, 200) if fit.fitted else x[:0]
    _draw_esd_with_fit(ax, x, _log_bins(x, bins), fit, grid, lambda g: tail_density(fit, x.size, g))
    _mark_xmin_xmax(ax, fit)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(LAMBDA + " (log scale)")
    ax.set_ylabel(DENSITY + " (log scale)")
    ax.set_title(
        title if title is not None else f"log-log ESD: {_fit_title(fit)}", fontsize=10, y=1.0
    )
    _legend(ax, legend, "upper right")
    return ax


def esd_linear_plot(
    eigenvalues: npt.ArrayLike,
    fit: DrawableFit | None = None,
    *,
    ax: Axes | None = None,
    evals_threshold: float = DEFAULT_EVALS_THRESHOLD,
    bins: int = 100,
    title: str | None = None,
    legend: bool = True,
) -> Axes:
    """Lin-lin ESD (density on equal bins) with the fitted power law and x_min, x_max marked."""
    fit = as_layer_fit(eigenvalues, fit, evals_threshold)
    x = _shown(eigenvalues, fit)
    ax = axes_or_new(ax)
    grid = np.linspace(fit.xmin, fit.xmax, 200) if fit.fitted else x[:0]
    _draw_esd_with_fit(ax, x, _lin_bins(x, bins), fit, grid, lambda g: tail_density(fit, x.size, g))
    _mark_xmin_xmax(ax, fit)
    ax.set_xlabel(LAMBDA)
    ax.set_ylabel(DENSITY)
    ax.set_title(
        title if title is not None else f"lin-lin ESD: {_fit_title(fit)}", fontsize=10, y=1.0
    )
    _legend(ax, legend, "upper right")
    return ax


def esd_log_linear_plot(
    eigenvalues: npt.ArrayLike,
    fit: DrawableFit | None = None,
    *,
    ax: Axes | None = None,
    evals_threshold: float = DEFAULT_EVALS_THRESHOLD,
    bins: int = 100,
    title: str | None = None,
    legend: bool = True,
) -> Axes:
    """Log-lin ESD: histogram (density) of log₁₀ λ, with the fitted law and x_min, x_max marked.

    The law's density in u = log₁₀ λ is p(λ)·λ·ln 10.
    """
    fit = as_layer_fit(eigenvalues, fit, evals_threshold)
    x = _shown(eigenvalues, fit)
    ax = axes_or_new(ax)
    u = np.log10(x)
    grid = np.linspace(math.log10(fit.xmin), math.log10(fit.xmax), 200) if fit.fitted else u[:0]

    def density_of_log(g: FloatArray) -> FloatArray:
        lam = 10.0**g
        return tail_density(fit, x.size, lam) * lam * math.log(10.0)

    _draw_esd_with_fit(ax, u, _lin_bins(u, bins), fit, grid, density_of_log)
    _mark_xmin_xmax(ax, fit, log10=True)
    ax.set_xlabel(LOG_LAMBDA)
    ax.set_ylabel("density of log₁₀ λ")
    ax.set_title(
        title if title is not None else f"log-lin ESD: {_fit_title(fit)}", fontsize=10, y=1.0
    )
    _legend(ax, legend, "upper right")
    return ax


def candidate_curves(fit: LayerFit) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(x_min, α, D) of every admissible candidate x_min of the fitted sample.

    From the fit itself (``PowerLawFit.Ds`` computes, on first access, the D of candidates
    the pruned search ruled out, exactly); a fit without per-candidate values is refitted
    exhaustively on the same sample. The chosen candidate's D and α are the fit's.
    """
    power_law = fit.power_law
    alphas, ds = power_law.alphas, power_law.Ds
    complete = alphas.size > 0 and bool(np.all(np.isfinite(ds) == np.isfinite(alphas)))
    if not complete:
        power_law = fit_power_law(fit.fitted_sample, all_distances=True)
        alphas, ds = power_law.alphas, power_law.Ds
    keep = np.isfinite(alphas) & np.isfinite(ds) & np.isfinite(power_law.xmins)
    return power_law.xmins[keep], alphas[keep], ds[keep]


def ks_distance_plot(
    eigenvalues: npt.ArrayLike,
    fit: DrawableFit | None = None,
    *,
    ax: Axes | None = None,
    evals_threshold: float = DEFAULT_EVALS_THRESHOLD,
    title: str | None = None,
    legend: bool = True,
) -> Axes:
    """KS distance D for every candidate x_min of the fitted sample, with the fit's x_min and D.

    The curve is :func:`candidate_curves`; the marker is the fit's own (x_min, D), which under
    ``xmin_peak`` need not be the curve's global minimum.
    """
    fit = as_layer_fit(eigenvalues, fit, evals_threshold)
    ax = axes_or_new(ax)
    xmins, _, ds = candidate_curves(fit)
    if xmins.size:
        ax.plot(xmins, ds, color=HIST_COLOR, lw=1.2, label="D(x_min)")
    else:
        ax.text(0.5, 0.5, "no admissible x_min", transform=ax.transAxes, ha="center")
    if fit.fitted:
        ax.axvline(fit.xmin, color=FIT_COLOR, ls="--", lw=1.2)
        ax.plot([fit.xmin], [fit.D], "o", color=FIT_COLOR, label=f"xₘᵢₙ = {fit.xmin:.4g}")
    ax.set_xscale("log")
    ax.set_xlabel(XMIN + " (log scale)")
    ax.set_ylabel("KS distance D")
    ax.set_title(
        title if title is not None else f"D vs xₘᵢₙ: {_fit_title(fit)}", fontsize=10, y=1.0
    )
    _legend(ax, legend, "best")
    return ax


def alpha_vs_xmin_plot(
    eigenvalues: npt.ArrayLike,
    fit: DrawableFit | None = None,
    *,
    ax: Axes | None = None,
    evals_threshold: float = DEFAULT_EVALS_THRESHOLD,
    title: str | None = None,
) -> Axes:
    """The power law's α for every candidate x_min, with the fit's (x_min, α); α ∈ [2, 6] shaded.

    With ``TPL``/``E_TPL`` the marker is the truncated law's α (the table's), off the curve.
    """
    fit = as_layer_fit(eigenvalues, fit, evals_threshold)
    ax = axes_or_new(ax)
    xmins, alphas, _ = candidate_curves(fit)
    ax.axhspan(*ALPHA_BAND, color=BAND_COLOR, alpha=0.12, label="2 ≤ α ≤ 6")
    if xmins.size:
        ax.plot(xmins, alphas, color=HIST_COLOR, lw=1.2, label="α(xₘᵢₙ)")
        top = max(float(np.nanpercentile(alphas, 90)), ALPHA_BAND[1]) * 1.15
        if fit.fitted:
            top = max(top, fit.alpha * 1.15)
        ax.set_ylim(max(0.0, float(np.nanmin(alphas)) - 0.5), top)
    else:
        ax.text(0.5, 0.5, "no admissible x_min", transform=ax.transAxes, ha="center")
    if fit.fitted:
        ax.axvline(fit.xmin, color=FIT_COLOR, ls="--", lw=1.2)
        ax.plot([fit.xmin], [fit.alpha], "o", color=FIT_COLOR, label=f"α = {fit.alpha:.3f}")
    ax.set_xscale("log")
    ax.set_xlabel(XMIN + " (log scale)")
    ax.set_ylabel("α")
    ax.set_title(title if title is not None else "α vs xₘᵢₙ", fontsize=10, y=1.0)
    _legend(ax, True, "upper left")
    return ax


def mp_fit_plot(
    eigenvalues: npt.ArrayLike,
    mp_fit: MarchenkoPasturLike,
    *,
    ax: Axes | None = None,
    bins: int = 100,
    title: str | None = None,
) -> Axes:
    """ESD with the fitted Marchenko–Pastur density over the bulk, its edges, and the spikes.

    The histogram is the density of all n eigenvalues; the view ends a little beyond the bulk
    (at most 3 λ₊) so the bulk stays readable. Spikes — eigenvalues above ``mp_fit.spike_edge``
    when the fit has one (λ₊ plus a Tracy–Widom margin), else above λ₊ — are ticked on the axis;
    those beyond the view are counted in the legend. The curve is ``mp_fit.density(x)`` (a
    density of the bulk, area 1) times the bulk's share of the eigenvalues, 1 − spikes/n, so its
    area matches the histogram's bulk, on [λ₋, λ₊]. A fit whose ``fitted`` is False raises
    ValueError with its reason.
    """
    x = _eigenvalues(eigenvalues)
    if x.size == 0:
        raise ValueError("no eigenvalues to plot")
    if not getattr(mp_fit, "fitted", True):
        reason = getattr(mp_fit, "reason", "") or getattr(mp_fit, "status", "failed")
        raise ValueError(f"the Marchenko–Pastur fit failed: {reason}")
    lo_edge, hi_edge = float(mp_fit.bulk_min), float(mp_fit.bulk_max)
    if not (math.isfinite(lo_edge) and math.isfinite(hi_edge) and hi_edge > lo_edge):
        raise ValueError(
            f"the Marchenko–Pastur fit has no valid bulk edges: [{lo_edge}, {hi_edge}]"
        )
    spike_edge = float(getattr(mp_fit, "spike_edge", hi_edge))
    if not (math.isfinite(spike_edge) and spike_edge >= hi_edge):
        spike_edge = hi_edge
    lam_max = float(x[-1])
    upper = max(spike_edge * 1.1, hi_edge * 1.15, min(lam_max, 3.0 * hi_edge) * 1.03)
    lower = max(0.0, min(float(x[0]), lo_edge) - 0.03 * (upper - lo_edge))
    ax = axes_or_new(ax)
    edges: list[float] = np.linspace(lower, upper, bins + 1).tolist()
    in_view = x[(x >= lower) & (x <= upper)]
    weights = np.full(in_view.size, 1.0 / (x.size * (edges[1] - edges[0])))
    heights = step_histogram(ax, in_view, edges, weights=weights, label="ESD")
    grid = np.linspace(lo_edge, hi_edge, 400)
    spikes = x[x > spike_edge]
    bulk_fraction = 1.0 - spikes.size / x.size
    density = bulk_fraction * np.asarray(mp_fit.density(grid), dtype=np.float64)
    (line,) = ax.plot(
        grid,
        density,
        color=FIT_COLOR,
        lw=2,
        label=f"MP fit × {bulk_fraction:.2f} (bulk share), σ = {float(mp_fit.sigma):.3g}",
    )
    line.set_gid(MP_LINE_GID)
    ax.axvline(hi_edge, color=XMAX_COLOR, ls="--", lw=1.2, label=f"bulk edge λ₊ = {hi_edge:.4g}")
    ax.axvline(lo_edge, color=XMAX_COLOR, ls=":", lw=1.0, label=f"λ₋ = {lo_edge:.4g}")
    if spike_edge > hi_edge:
        ax.axvline(
            spike_edge, color=FIT_COLOR, ls=":", lw=1.0, label=f"spike edge = {spike_edge:.4g}"
        )
    shown = spikes[spikes <= upper]
    beyond = spikes.size - shown.size
    if spikes.size:
        label = f"{spikes.size} spikes"
        if beyond:
            label += f" ({beyond} beyond the view, up to {lam_max:.4g})"
        ax.plot(
            shown,
            np.zeros(shown.size),
            "|",
            color=FIT_COLOR,
            markersize=14,
            mew=1.5,
            clip_on=False,
            label=label,
        )
    # the MP density diverges at 0 when Q = 1: scale the y axis to the histogram and the
    # density away from the lower edge
    inner = density[grid >= lo_edge + 0.05 * (hi_edge - lo_edge)]
    finite = inner[np.isfinite(inner)]
    top = max(float(np.max(heights)) if len(heights) else 0.0, float(finite.max(initial=0.0)))
    if top > 0:
        ax.set_ylim(0.0, top * 1.3)
    ax.set_xlim(lower, upper)
    ax.set_xlabel(LAMBDA)
    ax.set_ylabel(DENSITY)
    heading = f"MP fit: {int(mp_fit.num_spikes)} spikes"
    ax.set_title(title if title is not None else heading, fontsize=10, y=1.0)
    _legend(ax, True, "upper right")
    return ax


def randomized_esd_plot(
    eigenvalues: npt.ArrayLike,
    randomized_eigenvalues: npt.ArrayLike,
    *,
    ax: Axes | None = None,
    evals_threshold: float = DEFAULT_EVALS_THRESHOLD,
    bins: int = 100,
    title: str | None = None,
) -> Axes:
    """Original vs randomized ESD (W with its elements shuffled) as densities of log₁₀ λ.

    Both on the same bins; vertical lines mark each λ_max. A randomized ESD that keeps large
    eigenvalues (spikes beyond the original bulk) points at correlation traps.
    """
    x = np.log10(fit_sample(eigenvalues, evals_threshold))
    try:
        r = np.log10(fit_sample(randomized_eigenvalues, evals_threshold))
    except ValueError as exc:
        raise ValueError(f"randomized eigenvalues: {exc}") from None
    ax = axes_or_new(ax)
    edges = _lin_bins(np.sort(np.concatenate([x, r])), bins)
    ax.hist(
        x,
        bins=edges,
        density=True,
        histtype="stepfilled",
        color=HIST_COLOR,
        alpha=0.55,
        label="original ESD",
    )
    ax.hist(
        r,
        bins=edges,
        density=True,
        histtype="step",
        color=FIT_COLOR,
        lw=1.5,
        label="randomized (elements shuffled)",
    )
    ax.axvline(x[-1], color=HIST_COLOR, ls="--", lw=1.0, label=f"λₘₐₓ = {10 ** x[-1]:.4g}")
    ax.axvline(
        r[-1],
        color=FIT_COLOR,
        ls=":",
        lw=1.2,
        label=f"randomized λₘₐₓ = {10 ** r[-1]:.4g}",
    )
    ax.set_xlabel(LOG_LAMBDA)
    ax.set_ylabel("density of log₁₀ λ")
    ax.set_title(title if title is not None else "original vs randomized ESD", fontsize=10, y=1.0)
    _legend(ax, True, "upper left")
    return ax


def fit_diagnostics(
    eigenvalues: npt.ArrayLike,
    fit: DrawableFit | None = None,
    *,
    fig: Figure | None = None,
    evals_threshold: float = DEFAULT_EVALS_THRESHOLD,
    title: str | None = None,
    width: float = 10.0,
    height: float = 7.0,
) -> Figure:
    """The four views of a fit: log-log, lin-lin and log-lin ESD, and D vs x_min (2 × 2).

    One legend for the four panels (they draw the same ESD, law and x_min / x_max markers),
    in a row above them, off the data. ``fig``: a figure to draw on; one that this function
    drew before is reused as it is (its axes emptied, not made again: half the drawing time),
    any other is cleared.
    """
    fit = as_layer_fit(eigenvalues, fit, evals_threshold)
    x = _shown(eigenvalues, fit)
    fig, axes = _diagnostics_axes(fig, width, height, bool(title))
    top = fig.subplotpars.top
    height = fig.get_figheight()
    esd_log_log_plot(x, fit, ax=axes[0, 0], legend=False)
    # α and D once, on the first panel (not four times: text is most of the drawing time)
    esd_linear_plot(x, fit, ax=axes[0, 1], legend=False, title="lin-lin ESD")
    esd_log_linear_plot(x, fit, ax=axes[1, 0], legend=False, title="log-lin ESD")
    ks_distance_plot(x, fit, ax=axes[1, 1], legend=False, title="D vs xₘᵢₙ")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:  # above the panels' titles
        fig.legend(
            handles, labels, loc="lower center", bbox_to_anchor=(0.5, top + 0.28 / height),
            ncols=len(handles), fontsize=8, frameon=False, borderaxespad=0.0,
        )  # fmt: skip
    if title:
        fig.suptitle(short_title(title), fontsize=11)
    return fig


def _diagnostics_axes(
    fig: Figure | None, width: float, height: float, suptitle: bool
) -> tuple[Figure, Any]:
    """The 2 × 2 axes of :func:`fit_diagnostics` on ``fig`` (a new figure when None).

    The figure's own axes, emptied (:func:`empty_axes`), when ``fig`` was drawn by it before
    with the same room for a title; else new axes.
    """
    if fig is not None and getattr(fig, "_alphahat_diagnostics", None) == suptitle:
        fig.legends.clear()
        return fig, np.array([empty_axes(ax) for ax in fig.axes], dtype=object).reshape(2, 2)
    fig = figure_or_new(fig, width, height, suptitle=suptitle)
    fig.subplots_adjust(top=fig.subplotpars.top - LEGEND_ROW / height)
    axes = fig.subplots(2, 2)
    fig._alphahat_diagnostics = suptitle  # type: ignore[attr-defined]
    return fig, axes


__all__ = [
    "DEFAULT_EVALS_THRESHOLD",
    "FIT_LINE_GID",
    "MP_LINE_GID",
    "XMAX_LINE_GID",
    "XMIN_LINE_GID",
    "DrawableFit",
    "MarchenkoPasturLike",
    "alpha_vs_xmin_plot",
    "as_layer_fit",
    "candidate_curves",
    "diagnostic_fit",
    "esd_linear_plot",
    "esd_log_linear_plot",
    "esd_log_log_plot",
    "fit_diagnostics",
    "fit_sample",
    "ks_distance_plot",
    "mp_fit_plot",
    "power_law_density",
    "randomized_esd_plot",
    "tail_density",
]
