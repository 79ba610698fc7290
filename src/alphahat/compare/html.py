"""The comparison as HTML: a section for any page, and a self-contained page.

Uses the page shell and sortable tables of :mod:`alphahat.report.html`; figures are inline
``data:`` PNGs (:func:`alphahat.plot.figure_data_uri`), so nothing is fetched from the network.
"""

from __future__ import annotations

import html

from alphahat.compare.core import Comparison

#: Trend columns shown in the HTML table.
HTML_TREND_COLUMNS = (
    "metric", "kind", "group", "n", "slope", "slope_ci_low", "slope_ci_high", "r2", "rmse",
    "kendall_tau", "kendall_p_value", "spearman_rho", "spearman_p_value", "status",
)  # fmt: skip


def comparison_section(comparison: Comparison, *, figures: bool = True) -> str:
    """HTML of the comparison: paradox verdicts, trends, models, and (optionally) figures."""
    from alphahat.plot import figure_data_uri
    from alphahat.report.html import sortable_table

    parts = ['<section class="alphahat-compare">', "<h2>Model comparison</h2>"]
    usable = len(comparison.reports)
    parts.append(
        f"<p>{usable} of {len(comparison.models)} models analysed, "
        f"{len(comparison.groups)} group(s); accuracy in {html.escape(comparison.accuracy_unit)}."
        "</p>"
    )
    if comparison.notes:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in comparison.notes)
        parts.append(f'<ul class="note">{items}</ul>')
    if comparison.has_groups:
        parts.append("<h3>Simpson's paradox check</h3><ul class='warnings'>")
        for check in comparison.checks:
            cls = "bad" if check.paradox else ""
            parts.append(f"<li class='{cls}'>{html.escape(check.verdict)}</li>")
        parts.append("</ul>")
    parts.append("<h3>Trends: accuracy against each metric</h3>")
    trends = comparison.trends
    row_classes = [
        "bad" if any(c.paradox and c.metric == m for c in comparison.checks) and g != "(pooled)"
        else ""
        for m, g in zip(trends["metric"], trends["group"], strict=True)
    ]  # fmt: skip
    parts.append(
        sortable_table(
            trends,
            [c for c in HTML_TREND_COLUMNS if c in trends.columns],
            table_id="compare-trends",
            row_classes=row_classes,
        )
    )
    parts.append("<h3>Models</h3>")
    models = comparison.models
    parts.append(sortable_table(models, table_id="compare-models"))
    if figures and comparison.reports:
        from alphahat.compare.figures import accuracy_scatter_grid, alpha_by_group_plot

        parts.append("<h3>Figures</h3><div class='figures'>")
        for fig, alt in (
            (accuracy_scatter_grid(comparison), "accuracy against each metric"),
            (alpha_by_group_plot(comparison), "layer alpha by group"),
        ):
            parts.append(
                f'<figure><img src="{figure_data_uri(fig)}" alt="{html.escape(alt)}">'
                f"<figcaption>{html.escape(alt)}</figcaption></figure>"
            )
        parts.append("</div>")
    parts.append("</section>")
    return "\n".join(parts)


def comparison_html(comparison: Comparison, *, title: str | None = None) -> str:
    """A complete, self-contained HTML page of the comparison."""
    from alphahat.report.html import html_page

    title = title or f"alphahat compare — {comparison.options.get('manifest', '')}"
    body = f"<h1>{html.escape(title)}</h1>\n" + comparison_section(comparison)
    return html_page(title, body)
