"""Small server-rendered SVG line charts (no JavaScript chart library: users have no internet either)."""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import mark_safe

COLORS = ["#7b3fe4", "#1f9d55", "#d97706", "#dc2626", "#2563eb", "#6b7280"]


def line_chart(series: dict[str, list[tuple[float, float]]], *, width: int = 640, height: int = 220,
               y_min: float | None = None, y_max: float | None = None, x_label: str = "", title: str = "") -> str:
    points = [p for values in series.values() for p in values]
    if not points:
        return mark_safe('<p class="muted">Nothing to chart yet.</p>')
    if len(points) == 1:  # a lone dot on an invented axis says less than the figure itself
        (name, ((x, y),)), = [(n, v) for n, v in series.items() if v]
        return mark_safe(f'<p class="muted">{escape(name)}: {y:.4g} at {escape(x_label)} {x:g} (one point so far; '
                         'the chart starts at the second).</p>')
    left, right, top, bottom = 44, 12, 12, 30
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0 = min(ys) if y_min is None else y_min
    y1 = max(ys) if y_max is None else y_max
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - 1, y1 + 1

    def sx(x):
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y):
        return top + (1 - (y - y0) / (y1 - y0)) * (height - top - bottom)

    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for i in range(5):
        v = y0 + (y1 - y0) * i / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{sy(v):.1f}" y2="{sy(v):.1f}" stroke="#eee"/>'
                     f'<text x="{left - 6}" y="{sy(v) + 4:.1f}" font-size="10" text-anchor="end" fill="#666">'
                     f'{v:.3g}</text>')
    parts.append(f'<text x="{width / 2:.0f}" y="{height - 6}" font-size="10" text-anchor="middle" fill="#666">'
                 f'{escape(x_label)} {x0:g} – {x1:g}</text>')
    for n, (name, values) in enumerate(series.items()):
        color = COLORS[n % len(COLORS)]
        values = sorted(values)
        path = " ".join(f"{'M' if i == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for i, (x, y) in enumerate(values))
        parts.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in values if len(values) <= 40 else []:
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}">'
                         f'<title>{escape(name)}: {y:.4g} @ {x:g}</title></circle>')
        parts.append(f'<text x="{left + 8 + n * 120}" y="{top + 10}" font-size="11" fill="{color}">'
                     f'■ {escape(name)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))
