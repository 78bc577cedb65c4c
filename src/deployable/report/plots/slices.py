"""Accuracy per slice value with its confidence interval."""

from __future__ import annotations

from collections.abc import Sequence

from deployable.core.records import (
    SliceMetrics,
)
from deployable.report.plots._svg import (
    _LEGEND_ROW,
    BAR_OPACITY,
    BLUE,
    GRID,
    INK,
    LABEL,
    LIGHT,
    MUTED,
    ORANGE,
    RED,
    TICK,
    TICK_LEN,
    _draw_legend,
    _empty,
    _esc,
    _f,
    _finite,
    _legend_rows,
    _nice_ticks,
    _pct,
    _segments,
    _short,
    _Svg,
    _text_width,
    _tick_text,
)

# ---------------------------------------------------------------------------------------------------------------------
# Slices
# ---------------------------------------------------------------------------------------------------------------------


def slice_plot(slices: Sequence[SliceMetrics], overall_accuracy: float | None = None) -> str:
    """Accuracy per slice with its confidence interval, grouped by slice column.

    Bars start at zero (so their lengths compare honestly); whiskers are the bootstrap interval. A bar whose whole
    interval lies below the overall accuracy is drawn in red: that slice is doing measurably worse.

    Args:
        slices: slice records of one variant, in report order.
        overall_accuracy: accuracy on the whole split, drawn as a vertical line.

    Returns:
        An inline ``<svg>`` element.
    """
    if not slices:
        return _empty("no slices")
    columns: dict[str, list[SliceMetrics]] = {}
    for s in slices:
        columns.setdefault(s.column, []).append(s)
    level = slices[0].accuracy.level
    level_text = f"{100 * level:.0f}%" if _finite(level) else "95%"

    row, bar_h = 22.0, 15.0
    label_w = max(
        *(_text_width(_short(c), TICK, bold=True) for c in columns),
        *(_text_width(f"{_short(s.value)} (n={s.n:,})", TICK) for s in slices),
    )
    width = 540.0
    x0 = 10 + label_w + 10
    x1 = width - 18  # room for the last tick label ("100%") centred on the axis end
    plot_w = x1 - x0
    xmax = 1.02  # room for a whisker that ends at 100%

    def sx(v: float) -> float:
        return x0 + min(xmax, max(0.0, v)) / xmax * plot_w

    # vertical layout: a header line per column, a line per slice, a little air between columns
    top = 8.0
    y = top
    headers: list[tuple[float, str]] = []
    rows: list[tuple[float, SliceMetrics]] = []
    for column, group in columns.items():
        headers.append((y + 0.45 * row, column))
        y += 0.9 * row
        for s in group:
            rows.append((y + row / 2, s))
            y += row
        y += 0.4 * row
    bottom = y - 0.2 * row
    ticks = _nice_ticks(0.0, 1.0, 5)
    step = ticks[1] - ticks[0]
    worse_any = False
    overall = overall_accuracy if _finite(overall_accuracy) else None
    items = [("box", BLUE, f"accuracy ({level_text} CI)")]
    for _, s in rows:
        worse_any |= overall is not None and _finite(s.accuracy.high) and s.accuracy.high < overall
    if worse_any:
        items.append(("box", RED, "CI below overall"))
    if overall is not None:
        items.append(("dash", ORANGE, f"overall {_pct(overall)}"))
    legend = _legend_rows(items, width - 20)
    legend_top = bottom + TICK_LEN + 42
    svg = _Svg(
        width, legend_top + _LEGEND_ROW * len(legend) + 4, f"Accuracy per slice with {level_text} confidence intervals"
    )

    svg.path(_segments((sx(t), top, sx(t), bottom) for t in ticks[1:]), GRID, 0.7)
    for hy, column in headers:
        svg.text(x0 - 8, hy, _short(column), anchor="end", bold=True)
    for cy, s in rows:
        iv = s.accuracy
        worse = overall is not None and _finite(iv.high) and iv.high < overall
        label = f'{_esc(_short(s.value))} <tspan fill="{MUTED}">(n={s.n:,})</tspan>'
        svg.text(x0 - 8, cy, label, anchor="end", raw=True)
        if not _finite(iv.value):
            svg.text(x0 + 5, cy, "—", fill=MUTED)
            continue
        tip = f"{s.column} = {s.value} (n={s.n:,}): accuracy {_pct(iv.value)}"
        tip += f", {level_text} CI {_pct(iv.low)} – {_pct(iv.high)}"
        svg.rect(
            x0,
            cy - bar_h / 2,
            sx(iv.value) - x0,
            bar_h,
            RED if worse else BLUE,
            cls="dp-bar",
            title=tip,
            extra=f' fill-opacity="{BAR_OPACITY}"',
        )
        if _finite(iv.low) and _finite(iv.high):
            lo, hi = sx(min(iv.low, iv.value)), sx(max(iv.high, iv.value))
            d = f"M{_f(lo)} {_f(cy)}H{_f(hi)}M{_f(lo)} {_f(cy - 4)}V{_f(cy + 4)}M{_f(hi)} {_f(cy - 4)}V{_f(cy + 4)}"
            svg.path(d, INK, 1.0)
    if overall is not None:
        svg.path(f"M{_f(sx(overall))} {_f(top - 2)}V{_f(bottom)}", ORANGE, 1.4, dash="5 3")

    svg.path(f"M{_f(x0)} {_f(top)}V{_f(bottom)}H{_f(x1)}", LIGHT, 0.9)
    svg.path(_segments((sx(t), bottom, sx(t), bottom + TICK_LEN) for t in ticks), MUTED, 0.8)
    for t in ticks:
        svg.text(sx(t), bottom + TICK_LEN + 9, _tick_text(t, step, percent=True), anchor="middle")
    svg.text((x0 + x1) / 2, bottom + TICK_LEN + 27, "accuracy", size=LABEL, anchor="middle")
    _draw_legend(svg, legend, width / 2, legend_top)
    return svg.render()
