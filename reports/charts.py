"""Charts drawn on the server as inline SVG: no JavaScript, nothing fetched, prints as it shows."""

from __future__ import annotations

import math
from datetime import date

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = ["#b3446c", "#0b7a75", "#6246ea", "#b35c00", "#2f7d4f", "#3b82c4", "#b38f00", "#8a4fb3"]
OTHER_COLOUR = "#c9c4be"
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def _fmt_bucket(day: date, bucket: str) -> str:
    return day.strftime("%Y-%m") if bucket == "month" else day.isoformat()


def share_of_voice_svg(buckets: list[date], series: list[tuple[str, list[float], float]], *, bucket: str,
                       title: str, empty: str = "No dated mentions for these filters.") -> SafeString:
    """Stacked area of shares (0..1) per bucket; series (label, shares, share over the whole period) are
    drawn bottom-up, the last one is 'Other'."""
    width, height = 900, 340
    left, right, top, bottom = 48, 220, 14, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(buckets)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
             f'role="img" aria-label="{escape(title)}" class="chart">', f"<title>{escape(title)}</title>"]
    for pct in (0, 25, 50, 75, 100):
        y = top + plot_h * (1 - pct / 100)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e0db"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#6d6862" {FONT}>{pct}%</text>')
    if n == 0:
        parts.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" fill="#6d6862" '
                     f'{FONT}>{escape(empty)}</text></svg>')
        return mark_safe("".join(parts))
    # One bucket still gets a visible band: it spans the whole width.
    if n > 1:
        xs, at = [left + plot_w * i / (n - 1) for i in range(n)], list(range(n))
    else:
        xs, at = [left, left + plot_w], [0, 0]
    base = [0.0] * n
    for index, (label, values, overall) in enumerate(series):
        colour = OTHER_COLOUR if label == "Other" else PALETTE[index % len(PALETTE)]
        upper = [b + v for b, v in zip(base, values)]
        top_pts = [(x, upper[i]) for x, i in zip(xs, at)]
        low_pts = [(x, base[i]) for x, i in zip(xs, at)]
        points = " ".join(f"{x:.1f},{top + plot_h * (1 - v):.1f}" for x, v in top_pts + low_pts[::-1])
        parts.append(f'<polygon points="{points}" fill="{colour}" fill-opacity="0.85" stroke="#fff" '
                     f'stroke-width="0.6"><title>{escape(label)}: {overall:.0%} of the period</title></polygon>')
        base = upper
        legend_y = top + 16 * (len(series) - 1 - index) + 6
        parts.append(f'<rect x="{left + plot_w + 16}" y="{legend_y}" width="11" height="11" fill="{colour}"/>')
        parts.append(f'<text x="{left + plot_w + 32}" y="{legend_y + 10}" {FONT}>{escape(label[:28])} '
                     f'<tspan fill="#6d6862">{overall:.0%}</tspan></text>')
    step = max(1, math.ceil(n / 8))
    for i in range(0, n, step):
        x = xs[i] if n > 1 else left + plot_w / 2
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" stroke="#6d6862"/>')
        parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 18}" text-anchor="middle" fill="#6d6862" '
                     f'{FONT}>{_fmt_bucket(buckets[i], bucket)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))


def bar_chart_svg(items: list[tuple[str, int]], *, title: str) -> SafeString:
    """Horizontal bars, largest first, value written at the end of each bar."""
    bar_h, gap, label_w, bar_w, value_w = 18, 5, 230, 250, 40
    width = label_w + bar_w + value_w
    height = max(1, len(items)) * (bar_h + gap) + gap
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
             f'role="img" aria-label="{escape(title)}" class="chart">', f"<title>{escape(title)}</title>"]
    if not items:
        parts.append(f'<text x="{width / 2}" y="{height / 2 + 4}" text-anchor="middle" fill="#6d6862" {FONT}>'
                     "No brand pairs for these filters.</text></svg>")
        return mark_safe("".join(parts))
    peak = max(v for _, v in items) or 1
    for i, (label, value) in enumerate(items):
        y = gap + i * (bar_h + gap)
        w = max(2.0, bar_w * value / peak)
        parts.append(f'<text x="{label_w - 8}" y="{y + 14}" text-anchor="end" {FONT}>{escape(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" rx="3" fill="{PALETTE[1]}">'
                     f"<title>{escape(label)}: {value}</title></rect>")
        parts.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 14}" {FONT}>{value}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))
