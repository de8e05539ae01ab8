"""A drift check as one self-contained HTML page: a verdict table, then per feature the
reference and current histograms as inline SVG with PSI, KS (or chi-square) and mean shift.
No script, no stylesheet or font from elsewhere, no server: open the file anywhere."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from shared.monitoring.drift import DriftReport, FeatureDrift

WIDTH, HEIGHT, PAD = 520, 160, 28
REFERENCE_COLOUR, CURRENT_COLOUR = "#4c78a8", "#f58518"

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin-bottom:2rem}td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd;
text-align:right}th:first-child,td:first-child{text-align:left}.drifted{color:#b00020;font-weight:600}
.insufficient{color:#777}section{margin-bottom:2rem}.legend span{display:inline-block;width:.8rem;
height:.8rem;margin:0 .3rem 0 1rem;vertical-align:middle}small{color:#555}
"""


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "∞" if value > 0 else ("−∞" if value < 0 else "–")
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            return f"{value:.2e}"
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def histogram_svg(reference: Sequence[float], current: Sequence[float], labels: Sequence[str]) -> str:
    """Side-by-side bars of two share vectors over the same bins, as an inline <svg>."""
    bins = len(reference)
    if bins == 0:
        return "<p><small>no values to draw</small></p>"
    top = max(max(reference), max(current), 1e-12)
    slot = (WIDTH - 2 * PAD) / bins
    bar = max(slot / 2 - 1, 0.5)
    parts = [
        f'<svg width="{WIDTH}" height="{HEIGHT + 24}" viewBox="0 0 {WIDTH} {HEIGHT + 24}" role="img">',
        f'<line x1="{PAD}" y1="{HEIGHT}" x2="{WIDTH - PAD}" y2="{HEIGHT}" stroke="#999"/>',
    ]
    for index in range(bins):
        x = PAD + index * slot
        for offset, share, colour, who in (
            (0.0, reference[index], REFERENCE_COLOUR, "reference"),
            (bar + 1, current[index], CURRENT_COLOUR, "current"),
        ):
            height = (HEIGHT - 10) * share / top
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{HEIGHT - height:.1f}" width="{bar:.1f}" '
                f'height="{height:.1f}" fill="{colour}"><title>{html.escape(labels[index])}: '
                f"{who} {share:.2%}</title></rect>"
            )
    step = max(1, bins // 6)
    for index in range(0, bins, step):
        x = PAD + index * slot
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT + 14}" font-size="10" fill="#555">'
            f"{html.escape(labels[index][:14])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _bin_labels(entry: FeatureDrift) -> list[str]:
    if "labels" in entry.histogram:
        return [str(label) for label in entry.histogram["labels"]]
    edges = entry.histogram.get("edges", [])
    return [f"{_number(edges[i], 3)}–{_number(edges[i + 1], 3)}" for i in range(len(edges) - 1)]


def _row(entry: FeatureDrift) -> str:
    verdict = entry.status
    test = (
        f"KS D {_number(entry.ks_statistic)} · p {_number(entry.ks_pvalue)}"
        if entry.kind == "numeric"
        else f"χ² {_number(entry.chi2_statistic, 1)} · p {_number(entry.chi2_pvalue)} · "
        f"L∞ {_number(entry.linf)}"
    )
    shift = _number(entry.mean_shift_sigma, 2) if entry.kind == "numeric" else "–"
    return (
        f'<tr class="{verdict}"><td><a href="#f-{html.escape(entry.name)}">{html.escape(entry.name)}</a></td>'
        f"<td>{entry.kind}</td><td>{verdict}</td><td>{_number(entry.psi)}</td><td>{test}</td>"
        f"<td>{_number(entry.pvalue_adjusted)}</td><td>{shift}</td>"
        f"<td>{entry.reference_rows}</td><td>{entry.current_rows}</td></tr>"
    )


def _section(entry: FeatureDrift) -> str:
    reference = entry.histogram.get("reference", [])
    current = entry.histogram.get("current", [])
    reasons = "; ".join(entry.reasons) if entry.reasons else "within every threshold"
    return (
        f'<section id="f-{html.escape(entry.name)}"><h3>{html.escape(entry.name)} '
        f'<small class="{entry.status}">{entry.status}</small></h3>'
        f"<p><small>{html.escape(reasons)}</small></p>"
        f"{histogram_svg(reference, current, _bin_labels(entry))}</section>"
    )


def render(report: DriftReport, title: str = "Drift report", context: Mapping[str, Any] | None = None) -> str:
    """The whole page as a string."""
    thresholds = report.thresholds
    drifted = report.drifted
    headline = (
        f'<p class="drifted">{len(drifted)} of {len(report.features)} features drifted: '
        f"{html.escape(', '.join(drifted))}</p>"
        if drifted
        else f"<p>No drift in {len(report.features)} features.</p>"
    )
    facts = "".join(
        f"<li>{html.escape(str(key))}: {html.escape(str(value))}</li>"
        for key, value in (context or {}).items()
    )
    rules = (
        f"mean shift beyond {thresholds.mean_shift_sigma:g} reference sd; PSI above {thresholds.psi:g} and "
        f"beyond chance (chi-square on n_eff x PSI, Bonferroni at {thresholds.alpha:g}) "
        f"({thresholds.psi_bins} reference-quantile bins, open outer bins, empty-bin share "
        f"{thresholds.psi_epsilon:g}); KS (categories: chi-square) p-value {thresholds.correction}-"
        f"corrected below {thresholds.alpha:g} with D at least {thresholds.min_ks_statistic:g} (L∞ at "
        f"least {thresholds.min_linf:g}); judged from {thresholds.min_current_rows} current and "
        f"{thresholds.min_reference_rows} reference values"
    )
    legend = (
        f'<p class="legend"><span style="background:{REFERENCE_COLOUR}"></span>reference'
        f'<span style="background:{CURRENT_COLOUR}"></span>current <small>(share of values per bin; '
        "numeric bins are equal-width over the 0.5–99.5% range, outer bins take the tails)</small></p>"
    )
    header = (
        "<tr><th>feature</th><th>kind</th><th>verdict</th><th>PSI</th><th>test</th>"
        "<th>corrected p</th><th>mean shift (sd)</th><th>reference rows</th><th>current rows</th></tr>"
    )
    rows = "".join(_row(entry) for entry in report.features.values())
    sections = "".join(_section(entry) for entry in report.features.values())
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{headline}<ul>{facts}</ul><p><small>Rules: {html.escape(rules)}"
        f"</small></p><table>{header}{rows}</table>{legend}{sections}</body></html>"
    )
