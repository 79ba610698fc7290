"""Plots: the ESD views of the HT-SR papers, model figures, and saving them to files.

Needs matplotlib (``pip install 'alphahat[plot]'``), imported on the first figure, never at
import. Every function draws on a given ``ax=`` (or ``fig=`` for several panels) or on a new
figure, and returns it; nothing calls ``show()``, uses pyplot or changes the global backend.

Per layer (:mod:`alphahat.plot.layer`), from its eigenvalues and the fit to draw — the fit the
layer's row reports is ``report.fits[name].fit`` with ``analyze(..., keep_fits=True)``
(eigenvalues: ``report.fits[name].eigenvalues``):
:func:`esd_log_log_plot`, :func:`esd_linear_plot`, :func:`esd_log_linear_plot`,
:func:`ks_distance_plot`, :func:`alpha_vs_xmin_plot`, :func:`fit_diagnostics` (the first four on
one figure), :func:`mp_fit_plot` (a Marchenko–Pastur fit of the bulk) and
:func:`randomized_esd_plot`.

Per model (:mod:`alphahat.plot.model`): :func:`correlation_flow_plot`,
:func:`metric_histograms_plot`, :func:`model_comparison_plot`.

:func:`new_figure` makes an empty figure the same way (Agg canvas, outside pyplot).

Files: :func:`save_plots` (``{layer_id:03d}-{name}-{kind}.png|svg``).
"""

from alphahat.plot._mpl import new_figure
from alphahat.plot.layer import (
    FIT_LINE_GID,
    MP_LINE_GID,
    XMAX_LINE_GID,
    XMIN_LINE_GID,
    DrawableFit,
    MarchenkoPasturLike,
    alpha_vs_xmin_plot,
    as_layer_fit,
    candidate_curves,
    diagnostic_fit,
    esd_linear_plot,
    esd_log_linear_plot,
    esd_log_log_plot,
    fit_diagnostics,
    fit_sample,
    ks_distance_plot,
    mp_fit_plot,
    power_law_density,
    randomized_esd_plot,
    tail_density,
)
from alphahat.plot.model import (
    HEATMAP_GID,
    block_kind_heatmap,
    correlation_flow_plot,
    metric_histograms_plot,
    model_comparison_plot,
)
from alphahat.plot.save import (
    LAYER_PLOT_KINDS,
    MODEL_PLOT_KINDS,
    PLOT_FORMATS,
    PLOT_KINDS,
    SavedPlots,
    figure_data_uri,
    fit_of_row,
    layer_figure,
    plot_file_name,
    render_figure,
    save_plots,
)

__all__ = [
    "FIT_LINE_GID",
    "HEATMAP_GID",
    "LAYER_PLOT_KINDS",
    "MODEL_PLOT_KINDS",
    "MP_LINE_GID",
    "PLOT_FORMATS",
    "PLOT_KINDS",
    "XMAX_LINE_GID",
    "XMIN_LINE_GID",
    "DrawableFit",
    "MarchenkoPasturLike",
    "SavedPlots",
    "alpha_vs_xmin_plot",
    "as_layer_fit",
    "candidate_curves",
    "block_kind_heatmap",
    "correlation_flow_plot",
    "diagnostic_fit",
    "esd_linear_plot",
    "esd_log_linear_plot",
    "esd_log_log_plot",
    "figure_data_uri",
    "fit_diagnostics",
    "fit_of_row",
    "fit_sample",
    "ks_distance_plot",
    "layer_figure",
    "metric_histograms_plot",
    "model_comparison_plot",
    "mp_fit_plot",
    "new_figure",
    "plot_file_name",
    "power_law_density",
    "randomized_esd_plot",
    "render_figure",
    "save_plots",
    "tail_density",
]
