"""Accuracy against latency per target, with the Pareto front the gate selects from."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from deployable.gate.select import ParetoPoint, pareto_front
from deployable.report.plots._svg import (
    _LEGEND_ROW,
    BLUE,
    GREY,
    GRID,
    INK,
    LABEL,
    LIGHT,
    MUTED,
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
    _pct,
    _point_style,
    _segments,
    _short,
    _Svg,
    _text_width,
    _tick_text,
)

# ---------------------------------------------------------------------------------------------------------------------
# Optimization: accuracy against latency
# ---------------------------------------------------------------------------------------------------------------------

_R_MAX, _R_MIN, _R_DEFAULT = 13.0, 3.0, 5.5  # point radii (px): largest file, floor, size unknown


def _size_text(n: float) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.1f} GB"


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Area shared by two boxes ``(x0, y0, x1, y1)``."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _place_label(
    cx: float,
    cy: float,
    r: float,
    w: float,
    area: tuple[float, float, float, float],
    labels: Sequence[tuple[float, float, float, float]],
    circles: Sequence[tuple[float, float, float, float]],
    lines: Sequence[tuple[float, float, float, float]],
) -> tuple[float, float, str, tuple[float, float, float, float]]:
    """Where to write a ``w`` px wide label of the point at ``(cx, cy)`` with radius ``r``.

    Tries the eight spots around the point, then rings further out (for crowded points), and takes the first that
    covers no other label, point or line and stays inside ``area``; when every spot covers something, the one
    covering least (labels count most).

    Returns:
        The text position, its anchor and the label's box ``(x0, y0, x1, y1)``.
    """
    h = TICK * 1.25
    gap, diag = r + 4, r * 0.75 + 3
    spots = [
        (cx + gap, cy, "start"),
        (cx - gap, cy, "end"),
        (cx, cy - r - 3 - h / 2, "middle"),
        (cx, cy + r + 3 + h / 2, "middle"),
        (cx + diag, cy - diag - h / 2, "start"),
        (cx + diag, cy + diag + h / 2, "start"),
        (cx - diag, cy - diag - h / 2, "end"),
        (cx - diag, cy + diag + h / 2, "end"),
    ]
    for k in (1, 2, 3):
        dy = k * (h + 2)
        spots += [
            (cx, cy - r - 3 - h / 2 - dy, "middle"),
            (cx, cy + r + 3 + h / 2 + dy, "middle"),
            (cx + gap + 8, cy - dy, "start"),
            (cx + gap + 8, cy + dy, "start"),
            (cx - gap - 8, cy - dy, "end"),
            (cx - gap - 8, cy + dy, "end"),
        ]
    best, best_cost = None, math.inf
    for lx, ly, anchor in spots:
        left = lx if anchor == "start" else lx - w if anchor == "end" else lx - w / 2
        box = (left - 3, ly - h / 2, left + w + 3, ly + h / 2)  # some air: browsers' fonts differ
        cost = 4 * sum(_overlap(box, b) for b in labels) + 2 * sum(_overlap(box, b) for b in lines)
        cost += sum(_overlap(box, b) for b in circles)
        if box[0] < area[0] or box[2] > area[2] or box[1] < area[1] or box[3] > area[3]:
            cost += 10_000
        if best is None or cost < best_cost:
            best, best_cost = (lx, ly, anchor, box), cost
        if cost == 0:
            break
    return best  # type: ignore[return-value]  # spots is never empty


def pareto_plot(
    points: Sequence[ParetoPoint], *, title: str, batch_size: int | None = None, y_label: str = "accuracy"
) -> str:
    """Accuracy against latency on one target, one labelled point per variant, the Pareto front as a step line.

    The x axis is the p50 latency (log scale when the values span more than a factor of 10), the y axis the
    accuracy. A point's area is proportional to the variant's file size. Accepted variants on the front
    (:func:`pareto_front`) are solid and joined by a step line: above and left of it, nothing was reached; dominated
    variants are pale; rejected variants are hollow, dashed and grey.

    Args:
        points: the variants, in report order (points with a missing latency or accuracy are left out).
        title: the panel title, usually the target's name.
        batch_size: the batch size the latency was measured at, for the axis label.
        y_label: the y axis label.

    Returns:
        An inline ``<svg>`` element.
    """
    shown = [p for p in points if _finite(p.latency_ms) and p.latency_ms > 0 and _finite(p.accuracy)]
    if not shown:
        return _empty("no latency measurements")
    front = [shown[i] for i in pareto_front(shown)]
    on_front = {id(p) for p in front}

    # x: latency, from 0 when linear (so distances compare as ratios of speed), logarithmic over a wide range
    lat = [p.latency_ms for p in shown]
    log = max(lat) / min(lat) > 10
    if log:
        x_lo, x_hi = min(lat) / 1.6, max(lat) * 1.6
        x_ticks = _log_ticks(x_lo, x_hi)
        x_texts = [_log_text(t) for t in x_ticks]
    else:
        x_ticks = _nice_ticks(0.0, max(lat) * 1.1, 5)
        x_lo, x_hi = 0.0, x_ticks[-1]
        x_texts = [_tick_text(t, x_ticks[1] - x_ticks[0]) for t in x_ticks]
    # y: accuracy, zoomed to the points with a margin for the circles and labels
    acc = [p.accuracy for p in shown]
    span = max(max(acc) - min(acc), 0.01)
    y_ticks = _nice_ticks(max(0.0, min(acc) - 0.18 * span), min(1.0, max(acc) + 0.18 * span), 4)
    y_lo, y_hi = y_ticks[0], y_ticks[-1]
    y_texts = [_tick_text(t, y_ticks[1] - y_ticks[0], percent=True) for t in y_ticks]

    width = 520.0
    gutter = max(_text_width(t, TICK) for t in y_texts) + TICK_LEN + 6
    x0 = 10 + LABEL + 8 + gutter
    x1 = width - 18
    top, plot_h = 34.0, 236.0
    bottom = top + plot_h

    def sx(v: float) -> float:
        if log:
            t = (math.log10(v) - math.log10(x_lo)) / (math.log10(x_hi) - math.log10(x_lo))
        else:
            t = (v - x_lo) / (x_hi - x_lo)
        return x0 + min(1.0, max(0.0, t)) * (x1 - x0)

    def sy(v: float) -> float:
        return bottom - min(1.0, max(0.0, (v - y_lo) / (y_hi - y_lo))) * plot_h

    sizes = [p.size_bytes for p in shown if p.size_bytes is not None and p.size_bytes > 0]
    largest = max(sizes, default=0)

    def radius(p: ParetoPoint) -> float:
        if not largest or p.size_bytes is None or p.size_bytes <= 0:
            return _R_DEFAULT
        return max(_R_MIN, _R_MAX * math.sqrt(p.size_bytes / largest))

    kinds = {"front": False, "dominated": False, "rejected": False}
    for p in shown:
        kinds["rejected" if p.rejected else "front" if id(p) in on_front else "dominated"] = True
    items: list[tuple[str, str, str]] = []
    if kinds["front"]:
        items.append(("front", BLUE, "Pareto-optimal"))
    if len(front) > 1:
        items.append(("step", BLUE, "Pareto front"))
    if kinds["dominated"]:
        items.append(("dominated", BLUE, "dominated"))
    if kinds["rejected"]:
        items.append(("rejected", GREY, "rejected"))
    legend = _legend_rows(items, width - 20)
    x_label = "p50 latency per call" + (f", batch {batch_size:,}" if batch_size is not None else "") + " (ms)"
    legend_top = bottom + TICK_LEN + 38
    sizes_top = legend_top + _LEGEND_ROW * len(legend) + 4
    height = sizes_top + (2 * _R_MAX + 10 if sizes else 0) + 4
    label = f"{y_label.capitalize()} against p50 latency on {title}"
    if log:
        label += " (log scale)"
    svg = _Svg(width, height, label)

    # grid, title, front (beneath the points)
    svg.path(_segments((x0, sy(t), x1, sy(t)) for t in y_ticks if sy(t) < bottom - 0.5), GRID, 0.7)
    svg.path(_segments((sx(t), top, sx(t), bottom) for t in x_ticks if sx(t) > x0 + 0.5), GRID, 0.7)
    head = _esc(_short(title, 36))
    if log:
        head += f'<tspan fill="{MUTED}" font-weight="400" font-size="{_f(TICK)}">  (log scale)</tspan>'
    svg.text((x0 + x1) / 2, top - 18, head, size=TITLE, anchor="middle", bold=True, raw=True)
    obstacles: list[tuple[float, float, float, float]] = []  # the step line: labels keep off it
    if front:
        d = f"M{_f(sx(front[0].latency_ms))} {_f(sy(front[0].accuracy))}"
        for a, b in itertools.pairwise(front):
            ax, ay, bx, by = sx(a.latency_ms), sy(a.accuracy), sx(b.latency_ms), sy(b.accuracy)
            d += f"H{_f(bx)}V{_f(by)}"
            obstacles += [(ax, ay - 2, bx, ay + 2), (bx - 2, min(ay, by), bx + 2, max(ay, by))]
        svg.path(d, BLUE, 1.6, extra=' stroke-linejoin="round" class="dp-front"')

    # points, the largest first so that a small one on top of a big one stays visible
    boxes: list[tuple[float, float, float, float]] = []
    placed: list[tuple[ParetoPoint, float, float, float]] = []
    for p in sorted(shown, key=lambda p: -radius(p)):
        cx, cy, r = sx(p.latency_ms), sy(p.accuracy), radius(p)
        kind = "rejected" if p.rejected else "front" if id(p) in on_front else "dominated"
        tip = f"{p.name}{' (rejected)' if p.rejected else ''}: p50 {_ms(p.latency_ms)} ms, {y_label} {_pct(p.accuracy)}"
        if p.size_bytes is not None:
            tip += f", file {_size_text(p.size_bytes)}"
        if kind == "front":
            tip += " · Pareto-optimal"
        style = _point_style(kind)
        svg.circle(cx, cy, r, style["fill"], extra=f' class="dp-point dp-{kind}"' + style["extra"], title=tip)
        boxes.append((cx - r, cy - r, cx + r, cy + r))
        placed.append((p, cx, cy, r))

    # labels, the front first so that it gets the best spots
    labels: list[tuple[float, float, float, float]] = []
    area = (x0, top - 6, width - 2, bottom - 1)
    for p, cx, cy, r in sorted(placed, key=lambda t: (t[0].rejected, id(t[0]) not in on_front, t[1])):
        text = _short(p.name, 24)
        others = [b for b, q in zip(boxes, placed, strict=True) if q[0] is not p]
        lx, ly, anchor, box = _place_label(cx, cy, r, _text_width(text, TICK), area, labels, others, obstacles)
        labels.append(box)
        # a label pushed away from a crowded point gets a leader line back to it
        px, py = min(max(cx, box[0] + 3), box[2] - 3), min(max(cy, box[1]), box[3])
        distance = math.hypot(px - cx, py - cy)
        if distance > r + 9:
            ux, uy = (px - cx) / distance, (py - cy) / distance
            d = f"M{_f(cx + ux * (r + 1))} {_f(cy + uy * (r + 1))}L{_f(px - ux * 2)} {_f(py - uy * 2)}"
            svg.path(d, GREY, 0.8, extra=' class="dp-leader"')
        svg.text(lx, ly, text, anchor=anchor, fill=MUTED if p.rejected else INK, extra=' class="dp-label"')

    # axes
    svg.path(f"M{_f(x0)} {_f(top)}V{_f(bottom)}H{_f(x1)}", LIGHT, 0.9)
    marks = [(x0 - TICK_LEN, sy(t), x0, sy(t)) for t in y_ticks]
    marks += [(sx(t), bottom, sx(t), bottom + TICK_LEN) for t in x_ticks]
    svg.path(_segments(marks), MUTED, 0.8)
    for t, text in zip(y_ticks, y_texts, strict=True):
        svg.text(x0 - TICK_LEN - 3, sy(t), text, anchor="end")
    for t, text in zip(x_ticks, x_texts, strict=True):
        svg.text(sx(t), bottom + TICK_LEN + 9, text, anchor="middle")
    svg.text((x0 + x1) / 2, bottom + TICK_LEN + 27, x_label, size=LABEL, anchor="middle")
    svg.text(10 + LABEL / 2, top + plot_h / 2, y_label, size=LABEL, anchor="middle", rotate=-90)
    _draw_legend(svg, legend, width / 2, legend_top)

    # size key: the smallest and the largest file, drawn at their radii
    if sizes:
        smallest = min(sizes)
        keys = [smallest, largest] if smallest != largest else [largest]
        head_text = "point area ∝ file size:"
        texts = [_size_text(s) for s in keys]
        radii = [max(_R_MIN, _R_MAX * math.sqrt(s / largest)) for s in keys]
        total = _text_width(head_text, TICK) + sum(
            2 * r + 5 + _text_width(t, TICK) + 14 for r, t in zip(radii, texts, strict=True)
        )
        x = width / 2 - total / 2
        cy = sizes_top + _R_MAX + 2
        svg.text(x, cy, head_text, fill=MUTED)
        x += _text_width(head_text, TICK) + 10
        for r, text in zip(radii, texts, strict=True):
            svg.circle(x + r, cy, r, LIGHT, extra=f' stroke="{MUTED}" stroke-width="0.8"')
            svg.text(x + 2 * r + 5, cy, text)
            x += 2 * r + 5 + _text_width(text, TICK) + 14
    return svg.render()
