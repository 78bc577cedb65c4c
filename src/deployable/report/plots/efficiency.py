"""Latency per target and batch size."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from deployable.core.records import (
    Evaluation,
)
from deployable.report.plots._svg import (
    _LEGEND_ROW,
    BAR_OPACITY,
    GRID,
    INK,
    LABEL,
    LIGHT,
    MUTED,
    PALETTE,
    TICK,
    TICK_LEN,
    TITLE,
    _draw_legend,
    _empty,
    _esc,
    _f,
    _finite,
    _legend_rows,
    _log_text,
    _log_ticks,
    _ms,
    _nice_ticks,
    _segments,
    _short,
    _Svg,
    _text_width,
    _tick_text,
    _triangle,
)

# ---------------------------------------------------------------------------------------------------------------------
# Efficiency
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class _LatencyPanel:
    """One target's panel of :func:`latency_plot`: what it shows and how its y axis maps values to pixels."""

    target: str
    cells: dict[tuple[str, int], tuple[float, float, float]]  # (variant, batch) -> (p50, p95, p99) in ms
    batches: list[int]
    variants: list[str]
    log: bool
    lo: float
    hi: float
    ticks: list[float]
    texts: list[str]

    @classmethod
    def build(
        cls, target: str, cells: dict[tuple[str, int], tuple[float, float, float]], order: list[str]
    ) -> _LatencyPanel:
        batches = sorted({b for _, b in cells})
        variants = [v for v in order if any((v, b) in cells for b in batches)]
        finite = [x for triple in cells.values() for x in triple if _finite(x) and x > 0]
        log = bool(finite) and max(finite) / min(finite) > 30
        if log:
            lo, hi = min(finite) / 1.6, max(finite) * 1.6
            ticks = _log_ticks(lo, hi)
            texts = [_log_text(t) for t in ticks]
        else:
            ticks = _nice_ticks(0.0, max(finite, default=1.0) * 1.04, 5)
            lo, hi = 0.0, ticks[-1]
            texts = [_tick_text(t, ticks[1] - ticks[0]) for t in ticks]
        return cls(target, cells, batches, variants, log, lo, hi, ticks, texts)

    @property
    def slots(self) -> int:
        return len(self.batches) * max(1, len(self.variants))

    @property
    def gutter(self) -> float:
        """Room left of the plot for the tick labels."""
        return max(_text_width(t, TICK) for t in self.texts) + TICK_LEN + 8

    def title_width(self) -> float:
        return _text_width(_short(self.target, 28), TITLE, bold=True) + (
            _text_width("  (log scale)", TICK) if self.log else 0.0
        )

    def fraction(self, v: float) -> float:
        """Where ``v`` sits on the axis, from 0 (bottom) to 1 (top), clipped."""
        if self.log:
            t = (math.log10(v) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        else:
            t = (v - self.lo) / (self.hi - self.lo)
        return min(1.0, max(0.0, t))

    def shows(self, v: float) -> bool:
        return _finite(v) and (v > 0 or not self.log)


def latency_plot(evaluations: Iterable[Evaluation]) -> str:
    """Latency per target: a p50 bar per variant and batch size, with p95 and p99 marked above it.

    One panel per target; within a panel, batch sizes on the x axis and one bar per variant. A panel switches to a
    log scale when its values span more than a factor of 30 (a fused INT8 model next to a float one).

    Args:
        evaluations: evaluations of the variants to compare (one is fine).

    Returns:
        An inline ``<svg>`` element.
    """
    evaluations = tuple(evaluations)
    order = list(dict.fromkeys(e.variant for e in evaluations))
    targets: dict[str, dict[tuple[str, int], tuple[float, float, float]]] = {}
    for e in evaluations:
        for eff in e.efficiency:
            cells = targets.setdefault(eff.target, {})
            for lat in eff.latency:
                cells[(e.variant, lat.batch_size)] = (lat.p50_ms, lat.p95_ms, lat.p99_ms)
    panels = [_LatencyPanel.build(target, cells, order) for target, cells in targets.items() if cells]
    if not panels:
        return _empty("no latency measurements")
    color = {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(order)}

    # Horizontal layout: slots (one bar each) roomy for a few bars, narrower for many, so that a comparison of
    # many variants still fits a page; a panel is never narrower than its title.
    ylabel_w, between, right = LABEL + 12, 22.0, 10.0
    fixed = ylabel_w + sum(p.gutter for p in panels) + between * (len(panels) - 1) + right
    slot_w = min(44.0, max(16.0, (1000 - fixed) / sum(p.slots for p in panels)))
    plot_ws = [max(p.slots * slot_w + 24, 110.0, p.title_width() + 4 - p.gutter / 2) for p in panels]
    width = fixed + sum(plot_ws)
    if width < 420:  # a single small panel: widen it rather than leave a postage stamp
        plot_ws = [w + (420 - width) / len(plot_ws) for w in plot_ws]
        width = 420.0

    top, plot_h = 30.0, 190.0
    bottom = top + plot_h
    shown = [v for v in order if any(v in p.variants for p in panels)]
    items = [("box", color[v], f"{_short(v, 24)} p50") for v in shown]
    items += [("tick", INK, "p95"), ("triangle", INK, "p99")]
    legend = _legend_rows(items, width - 20)
    legend_top = bottom + TICK_LEN + 28
    label = "Latency per target and batch size"
    if any(p.log for p in panels):
        label += f" (log scale: {', '.join(p.target for p in panels if p.log)})"
    svg = _Svg(width, legend_top + _LEGEND_ROW * len(legend) + 4, label)

    x = ylabel_w
    for p, plot_w in zip(panels, plot_ws, strict=True):
        x0 = x + p.gutter
        x1 = x0 + plot_w
        x = x1 + between

        def sy(v: float, p: _LatencyPanel = p) -> float:
            return bottom - p.fraction(v) * plot_h

        svg.path(_segments((x0, sy(t), x1, sy(t)) for t in p.ticks if sy(t) < bottom - 0.5), GRID, 0.7)
        title = _esc(_short(p.target, 28))
        if p.log:
            title += f'<tspan fill="{MUTED}" font-weight="400" font-size="{_f(TICK)}">  (log scale)</tspan>'
        svg.text((x0 + x1) / 2, top - 14, title, size=TITLE, anchor="middle", bold=True, raw=True)

        group_w = plot_w / len(p.batches)
        slot = 0.8 * group_w / max(1, len(p.variants))
        bar_w = min(slot * 0.92, 64.0)
        marker = min(bar_w * 0.7, 18.0)
        for j, b in enumerate(p.batches):
            for i, v in enumerate(p.variants):
                if (v, b) not in p.cells:
                    continue
                p50, p95, p99 = p.cells[(v, b)]
                cx = x0 + (j + 0.1) * group_w + slot * (i + 0.5)
                tip = f"{v} on {p.target}, batch {b}: p50 {_ms(p50)} ms, p95 {_ms(p95)} ms, p99 {_ms(p99)} ms"
                if p.shows(p50):
                    extra = f' fill-opacity="{BAR_OPACITY}"'
                    svg.rect(
                        cx - bar_w / 2, sy(p50), bar_w, bottom - sy(p50), color[v], cls="dp-bar", title=tip, extra=extra
                    )
                if p.shows(p95):
                    svg.path(f"M{_f(cx - marker / 2)} {_f(sy(p95))}H{_f(cx + marker / 2)}", INK, 1.8)
                if p.shows(p99):
                    svg.path(_triangle(cx, sy(p99)), fill=INK)
        svg.path(f"M{_f(x0)} {_f(top)}V{_f(bottom)}H{_f(x1)}", LIGHT, 0.9)
        svg.path(_segments((x0 - TICK_LEN, sy(t), x0, sy(t)) for t in p.ticks), MUTED, 0.8)
        for t, text in zip(p.ticks, p.texts, strict=True):
            svg.text(x0 - TICK_LEN - 3, sy(t), text, anchor="end")
        for j, b in enumerate(p.batches):
            svg.text(x0 + (j + 0.5) * group_w, bottom + TICK_LEN + 9, f"batch {b}", anchor="middle")
    svg.text(10 + LABEL / 2, top + plot_h / 2, "latency per call (ms)", size=LABEL, anchor="middle", rotate=-90)
    _draw_legend(svg, legend, width / 2, legend_top)
    return svg.render()
