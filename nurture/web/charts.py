"""Charts drawn on the server as SVG: horizontal bars, columns and lines.

Every chart is plain SVG markup with presentation attributes only (fill, stroke, font-size…):
no `style` attribute and no `<style>` element, so it passes the Content-Security-Policy
(`style-src 'self'`) inline in a page, and reads the same when saved as a file. Classes let
`static/reports.css` refine it on the page. Each chart is `role="img"` with a title and a
description naming what it shows; the page puts the figures in a table beside it, which is
the accessible version. Every text is escaped (labels are rep emails, sequence keys…).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from markupsafe import Markup, escape

PALETTE = ("#0f766e", "#f59e0b", "#6366f1", "#e11d48", "#0284c7", "#65a30d", "#a21caf",
           "#64748b")
"""Series colours: distinct in hue and lightness (the first is the admin's accent)."""

INK, MUTED, GRID, AXIS, REFERENCE = "#0f172a", "#475569", "#e2e8f0", "#94a3b8", "#b42318"
LATE = "#f59e0b"
"""A single series' columns past a boundary (speed to lead: later than 5 minutes)."""
FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif'

WIDTH = 720
"""A chart's width in units unless told (it scales to its box: viewBox); draw it about as
wide as it is shown, so its 12-unit text reads as 12 pixels."""

Format = Callable[[float], str]


def number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def percent(value: float) -> str:
    return f"{value * 100:.0f}%"


def duration_ms(value: float) -> str:
    """A duration in milliseconds, in the largest unit that keeps it readable."""
    seconds = value / 1000
    if seconds < 60:
        return _short(seconds, "s")
    if seconds < 3600:
        return _short(seconds / 60, "min")
    if seconds < 48 * 3600:
        return _short(seconds / 3600, "h")
    return _short(seconds / 86400, "d")


def _short(value: float, unit: str) -> str:
    """One decimal below ten (none when it is .0), whole numbers above."""
    shown = f"{value:.0f}" if value >= 10 else f"{value:.1f}".removesuffix(".0")
    return f"{shown} {unit}"


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]


@dataclass(frozen=True)
class Reference:
    """A marked value on the value axis (bars), or a boundary between two columns: after the
    column of index `value` minus one (columns)."""

    value: float
    label: str


@dataclass(frozen=True)
class Scale:
    """Value → position along an axis of `length`, linear from 0 or logarithmic."""

    top: float
    length: float
    log_from: float | None = None
    ticks: Sequence[float] = field(default_factory=tuple)

    def at(self, value: float) -> float:
        if self.log_from is not None:
            low, high = math.log10(self.log_from), math.log10(self.top)
            clamped = min(max(value, self.log_from), self.top)
            return (math.log10(clamped) - low) / (high - low) * self.length
        return (value / self.top) * self.length if self.top else 0.0


def linear(values: Sequence[float], length: float, minimum: float = 0.0) -> Scale:
    """A scale from 0 to a round number at or above every value, with 4-6 ticks."""
    peak = max([minimum, *values]) or 1.0
    raw = peak / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    counts = all(float(v).is_integer() for v in values)
    steps = (1, 2, 5, 10) if counts else (1, 2, 2.5, 5, 10)
    step = next(m * magnitude for m in steps if m * magnitude >= raw)
    if step < 1 and counts:
        step = 1.0  # counts: no tick between two whole numbers
    top = math.ceil(peak / step) * step
    ticks = [round(i * step, 10) for i in range(round(top / step) + 1)]
    return Scale(top, length, ticks=ticks)


DURATION_TICKS = (1_000, 10_000, 60_000, 300_000, 1_800_000, 3_600_000 * 4, 86_400_000,
                  86_400_000 * 7, 86_400_000 * 30)


def duration_scale(values: Sequence[float], length: float) -> Scale:
    """Milliseconds on a log axis from one second: seconds and weeks both readable."""
    peak = max([*values, 300_000])
    ticks = [t for t in DURATION_TICKS if t <= peak * 1.0001]
    top = next((t for t in DURATION_TICKS if t >= peak), peak)
    if ticks[-1] < top:
        ticks.append(top)
    return Scale(top, length, log_from=1_000, ticks=ticks)


class _Svg:
    def __init__(self, chart_id: str, height: float, title: str, summary: str,
                 width: int = WIDTH) -> None:
        self.parts: list[str] = []
        self.width = width
        self.chart_id, self.height = chart_id, height
        self.title, self.summary = title, summary

    def add(self, markup: str) -> None:
        self.parts.append(markup)

    def text(self, x: float, y: float, content: str, *, anchor: str = "start", size: int = 12,
             fill: str = MUTED, weight: str = "normal", css: str = "chart-text") -> None:
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
                 f'font-weight="{weight}" fill="{fill}" class="{css}">{escape(content)}</text>')

    def line(self, x1: float, y1: float, x2: float, y2: float, *, stroke: str = GRID,
             width: float = 1, dash: str | None = None, css: str = "chart-grid") -> None:
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                 f'stroke="{stroke}" stroke-width="{width}"{dashed} class="{css}"/>')

    def rect(self, x: float, y: float, w: float, h: float, fill: str, tip: str,
             css: str = "chart-bar") -> None:
        self.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{h:.1f}" '
                 f'rx="2" fill="{fill}" class="{css}"><title>{escape(tip)}</title></rect>')

    def render(self) -> Markup:
        cid = escape(self.chart_id)
        return Markup(
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
            f'viewBox="0 0 {self.width} {self.height:.0f}" width="{self.width}" '
            f'height="{self.height:.0f}" font-family="{escape(FONT)}" '
            f'aria-labelledby="{cid}-title {cid}-desc" id="{cid}">'
            f'<title id="{cid}-title">{escape(self.title)}</title>'
            f'<desc id="{cid}-desc">{escape(self.summary)}</desc>'
            + "".join(self.parts) + "</svg>")


def _at(series: Series, index: int) -> float | None:
    return series.values[index] if index < len(series.values) else None


def _fit(label: str, room: float, size: int = 12) -> str:
    """The label cut with an ellipsis to fit about `room` units at this font size."""
    most = max(3, int(room / (size * 0.62)))
    return label if len(label) <= most else label[: most - 1] + "…"


def _label_step(labels: Sequence[str], slot: float) -> int:
    """Name every how-many-th column so the axis names do not overlap (11-unit text)."""
    widest = 6.4 * max((len(x) for x in labels), default=1) + 8
    return max(1, math.ceil(widest / slot))


def _legend(svg: _Svg, names: Sequence[str], x: float, y: float) -> None:
    for index, name in enumerate(names):
        colour = PALETTE[index % len(PALETTE)]
        svg.add(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" rx="2" '
                f'fill="{colour}" class="chart-key"/>')
        shown = _fit(name, 150)
        svg.text(x + 15, y, shown, fill=INK)
        x += 15 + len(shown) * 6.8 + 18
        if x > svg.width - 120 and index < len(names) - 1:
            x, y = 16, y + 18
            svg.height += 18


def hbars(chart_id: str, title: str, summary: str, labels: Sequence[str],
          series: Sequence[Series], *, fmt: Format = number, stacked: bool = False,
          reference: Reference | None = None, notes: Sequence[str] | None = None,
          durations: bool = False, width: int = WIDTH) -> Markup:
    """One row per label, a bar per series (side by side, or stacked end to end); the value
    at the end of each bar; `notes` add a muted text after a row's values; a reference draws
    a dashed line at its value across every row."""
    many = len(series) > 1
    label_room = min(width * 0.34, max(90.0, 7.6 * max((len(x) for x in labels), default=4)))
    value_room = 9.0 * max((len(fmt(v)) for s in series for v in s.values if v is not None),
                           default=3) + 16
    note_room = 6.0 * max((len(n) for n in notes or ()), default=0) + (16 if notes else 0)
    left, right = label_room + 16, value_room + note_room
    plot = width - left - right
    bar = 16.0 if (many and not stacked) else 22.0
    row = (bar * (1 if stacked or not many else len(series))) + 14
    top = 40.0 if many or reference else 14.0
    height = top + row * max(1, len(labels)) + 30
    svg = _Svg(chart_id, height, title, summary, width)
    if many:
        _legend(svg, [s.name for s in series], 16, 18)
        grown = svg.height - height
        top, svg.height = top + grown, height + grown
    values = [v or 0.0 for s in series for v in s.values]
    if stacked:
        values = [sum((_at(s, i) or 0.0) for s in series) for i in range(len(labels))]
    if durations:
        scale = duration_scale(values, plot)
    else:
        scale = linear(values + ([reference.value] if reference else []), plot)
    bottom = top + row * max(1, len(labels))
    for tick in scale.ticks:
        x = left + scale.at(tick)
        svg.line(x, top - 4, x, bottom)
        svg.text(x, bottom + 16, fmt(tick), anchor="middle", size=11)
    for i, label in enumerate(labels):
        y = top + i * row + 7
        svg.text(left - 10, y + (row - 14) / 2 + 4, _fit(label, label_room), anchor="end",
                 fill=INK, size=12, css="chart-label")
        offset = 0.0
        end = left
        for s_index, s in enumerate(series):
            value = _at(s, i)
            colour = PALETTE[s_index % len(PALETTE)]
            if value is None:
                continue
            length = (scale.at(value) if not stacked
                      else scale.at(offset + value) - scale.at(offset))
            x = left + (scale.at(offset) if stacked else 0.0)
            yy = y if stacked or not many else y + s_index * bar
            tip = f"{label}: {s.name} {fmt(value)}" if many else f"{label}: {fmt(value)}"
            svg.rect(x, yy, length, bar - 2, colour, tip)
            if stacked:
                offset += value
                end = left + scale.at(offset)
            else:
                svg.text(x + length + 6, yy + bar / 2 + 2, fmt(value), size=11, fill=INK,
                         css="chart-value")
        if stacked:
            svg.text(end + 6, y + bar / 2 + 2, fmt(offset), size=11, fill=INK, css="chart-value")
        if notes and i < len(notes) and notes[i]:
            svg.text(width - 8, y + (row - 14) / 2 + 4, notes[i], anchor="end", size=11,
                     css="chart-note")
    svg.line(left, top - 4, left, bottom, stroke=AXIS, css="chart-axis")
    if reference is not None:
        x = left + scale.at(reference.value)
        svg.line(x, top - 8, x, bottom, stroke=REFERENCE, width=2, dash="6 4",
                 css="chart-reference")
        svg.text(x, top - 12, reference.label, anchor="middle", size=11, fill=REFERENCE,
                 weight="600", css="chart-reference-label")
    return svg.render()


def columns(chart_id: str, title: str, summary: str, labels: Sequence[str],
            series: Sequence[Series], *, fmt: Format = number, stacked: bool = True,
            boundary: Reference | None = None, width: int = WIDTH) -> Markup:
    """One column per label (stacked series, or side by side); a boundary draws a dashed
    line between the columns before and after index `boundary.value`, and a single series'
    columns after it in another colour."""
    many = len(series) > 1
    left, right, top = 56.0, 16.0, 40.0 if many or boundary else 16.0
    height = top + 220 + 44
    svg = _Svg(chart_id, height, title, summary, width)
    if many:
        _legend(svg, [s.name for s in series], 16, 18)
        top += svg.height - height
    plot_h, plot_w = 220.0, width - left - right
    totals = ([sum((_at(s, i) or 0.0) for s in series) for i in range(len(labels))]
              if stacked else [v or 0.0 for s in series for v in s.values])
    scale = linear(totals, plot_h)
    base = top + plot_h
    for tick in scale.ticks:
        y = base - scale.at(tick)
        svg.line(left, y, width - right, y)
        svg.text(left - 8, y + 4, fmt(tick), anchor="end", size=11)
    slot = plot_w / max(1, len(labels))
    column = min(56.0, slot * 0.7)
    each = column if stacked or not many else column / len(series)
    step_labels = _label_step(labels, slot)
    for i, label in enumerate(labels):
        x0 = left + i * slot + (slot - column) / 2
        offset = 0.0
        for s_index, s in enumerate(series):
            value = _at(s, i)
            if not value:
                continue
            h = scale.at(value)
            x = x0 if stacked or not many else x0 + s_index * each
            y = base - scale.at(offset) - h if stacked else base - h
            tip = f"{label}: {s.name} {fmt(value)}" if many else f"{label}: {fmt(value)}"
            colour = PALETTE[s_index % len(PALETTE)]
            if boundary is not None and not many and i >= boundary.value:
                colour = LATE
            svg.rect(x, y, each - (0 if stacked or not many else 1), h, colour, tip)
            if stacked:
                offset += value
        total = offset if stacked else None
        if total and (not many or stacked):
            svg.text(x0 + column / 2, base - scale.at(total) - 5, fmt(total), anchor="middle",
                     size=11, fill=INK, css="chart-value")
        if i % step_labels == 0:
            svg.text(x0 + column / 2, base + 17, _fit(label, slot * step_labels), anchor="middle",
                     size=11, css="chart-label")
    svg.line(left, base, width - right, base, stroke=AXIS, css="chart-axis")
    if boundary is not None:
        x = left + boundary.value * slot
        svg.line(x, top - 8, x, base, stroke=REFERENCE, width=2, dash="6 4",
                 css="chart-reference")
        svg.text(x + 6, top - 18, boundary.label, size=12, fill=REFERENCE, weight="600",
                 css="chart-reference-label")
    return svg.render()


def lines(chart_id: str, title: str, summary: str, labels: Sequence[str],
          series: Sequence[Series], *, fmt: Format = number, width: int = WIDTH) -> Markup:
    """One line per series over the labels (months), a dot at each value."""
    left, right, top = 56.0, 16.0, 40.0
    height = top + 220 + 44
    svg = _Svg(chart_id, height, title, summary, width)
    _legend(svg, [s.name for s in series], 16, 18)
    top += svg.height - height
    plot_h, plot_w = 220.0, width - left - right
    scale = linear([v or 0.0 for s in series for v in s.values], plot_h)
    base = top + plot_h
    for tick in scale.ticks:
        y = base - scale.at(tick)
        svg.line(left, y, width - right, y)
        svg.text(left - 8, y + 4, fmt(tick), anchor="end", size=11)
    slot = plot_w / max(1, len(labels))
    xs = [left + slot * (i + 0.5) for i in range(len(labels))]
    step_labels = _label_step(labels, slot)
    for i, label in enumerate(labels):
        if i % step_labels == 0:
            svg.text(xs[i], base + 17, _fit(label, slot * step_labels), anchor="middle", size=11,
                     css="chart-label")
    for s_index, s in enumerate(series):
        colour = PALETTE[s_index % len(PALETTE)]
        points = [(xs[i], base - scale.at(v)) for i, v in enumerate(s.values) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            svg.add(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2.5" '
                    f'stroke-linejoin="round" stroke-linecap="round" class="chart-line"/>')
        for i, v in enumerate(s.values):
            if v is None:
                continue
            svg.add(f'<circle cx="{xs[i]:.1f}" cy="{base - scale.at(v):.1f}" r="4" '
                    f'fill="#fff" stroke="{colour}" stroke-width="2.5" class="chart-dot">'
                    f'<title>{escape(f"{labels[i]}: {s.name} {fmt(v)}")}</title></circle>')
    svg.line(left, base, width - right, base, stroke=AXIS, css="chart-axis")
    return svg.render()
