"""The audit's train/test overlap per split pair."""

from __future__ import annotations

from collections.abc import Sequence

from deployable.core.records import (
    LeakageStat,
)
from deployable.report.plots._svg import (
    _LEGEND_ROW,
    BAR_OPACITY,
    BLUE,
    GREEN,
    GRID,
    LABEL,
    MUTED,
    ORANGE,
    SMALL,
    TICK,
    TICK_LEN,
    TITLE,
    _draw_legend,
    _empty,
    _f,
    _legend_rows,
    _pct,
    _Svg,
    _text_width,
    _tick_text,
)


def leakage_plot(leakage: Sequence[LeakageStat]) -> str:
    """Accuracy of the source on each split: all samples, those also found in an earlier split, and the rest.

    One group of three bars per split pair with overlap; a clean score far below the overall one means the overlap
    props up the score.
    """
    rows = [s for s in leakage if s.accuracy is not None and s.n_exact + s.n_near > 0]
    if not rows:
        return _empty("no overlap between labeled splits")
    series = (("all samples", BLUE, "accuracy"), ("overlapping", ORANGE, "accuracy_leaked"), ("without overlap", GREEN,
              "accuracy_clean"))  # fmt: skip
    names = [f"{s.split} vs {s.against}" for s in rows]
    left = 12 + max(_text_width(n, TICK) for n in names) + 8
    width, top, bar, gap = 620.0, 34.0, 13.0, 12.0
    panel = width - left - 60
    group = bar * len(series) + gap
    height = group * len(rows)
    items = [("box", color, name) for name, color, _ in series]
    legend = _legend_rows(items, width - 20)
    legend_top = top + height + TICK_LEN + 34
    svg = _Svg(width, legend_top + _LEGEND_ROW * len(legend) + 4, "Accuracy with and without overlapping samples")
    svg.text(left + panel / 2, top - 18, "Accuracy with and without samples seen in an earlier split", size=TITLE,
             anchor="middle", bold=True)  # fmt: skip
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = left + panel * t
        svg.path(f"M{_f(x)} {_f(top)}V{_f(top + height)}", GRID)
        svg.text(x, top + height + TICK_LEN + 8, _tick_text(t, 0.25, percent=True), anchor="middle")
    for i, (s, name) in enumerate(zip(rows, names, strict=True)):
        y0 = top + i * group
        svg.text(left - 8, y0 + bar * len(series) / 2, name, anchor="end")
        for k, (label, color, attr) in enumerate(series):
            value = getattr(s, attr)
            if value is None:
                continue
            n = {"accuracy": s.n, "accuracy_leaked": s.n_exact + s.n_near, "accuracy_clean": s.n_clean}[attr]
            y = y0 + k * bar
            svg.rect(left, y + 1, panel * value, bar - 2, color, extra=f' opacity="{BAR_OPACITY}"',
                     title=f"{name}, {label}: {_pct(value)} of {n}")  # fmt: skip
            svg.text(left + panel * value + 4, y + bar / 2, _pct(value), size=SMALL, fill=MUTED)
    svg.text(left + panel / 2, top + height + TICK_LEN + 22, "accuracy of the source model", size=LABEL,
             anchor="middle")  # fmt: skip
    _draw_legend(svg, legend, width / 2, legend_top)
    return svg.render()
