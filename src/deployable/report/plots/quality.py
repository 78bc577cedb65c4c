"""Confusion matrix."""

from __future__ import annotations

import math

import numpy as np

from deployable.core.records import (
    QualityMetrics,
)
from deployable.report.plots._svg import (
    BLUES,
    INK,
    LABEL,
    MUTED,
    TICK,
    _blues,
    _empty,
    _f,
    _nice_ticks,
    _segments,
    _short,
    _Svg,
    _text_width,
    _tick_text,
)

# ---------------------------------------------------------------------------------------------------------------------
# Quality
# ---------------------------------------------------------------------------------------------------------------------


def confusion_matrix_plot(quality: QualityMetrics) -> str:
    """Row-normalised confusion matrix (rows: true class, columns: predicted class) with the counts annotated.

    Colour is the share of each true class predicted as each class, so classes of very different sizes are
    comparable; each cell shows its count (and its row share when there is room).

    Args:
        quality: quality record of one variant; ``per_class`` gives the label order of the matrix.

    Returns:
        An inline ``<svg>`` element.
    """
    cm = np.asarray(quality.confusion_matrix, dtype=float)
    k = cm.shape[0] if cm.ndim == 2 and cm.size else 0
    if k == 0 or cm.shape != (k, k):
        return _empty("no confusion matrix")
    labels = [c.label for c in quality.per_class] if len(quality.per_class) == k else [str(i) for i in range(k)]
    totals = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0).tolist()
    counts = cm.astype(np.int64).tolist()
    short = [_short(label) for label in labels]

    # Cell size: fill about the width of a half-page column, within readable bounds.
    label_w = max(_text_width(s, TICK) for s in short)
    colorbar_w = 14 + 12 + 4 + _text_width("100%", TICK) + 10 + LABEL + 4
    target = 540.0 if k <= 8 else 680.0
    left = 8 + LABEL + 10 + label_w + 8
    cell = min(64.0, max(14.0, (target - left - colorbar_w) / k))
    rotated = k > 4 or label_w > cell - 6  # column labels that would touch their neighbours
    # Column labels slant at 40°, which packs them cell * sin 40° apart: when that is less than a line of text
    # (many classes), they stand upright instead.
    angle = 40.0 if cell * math.sin(math.radians(40)) >= 1.1 * TICK else 90.0
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    if rotated:  # the first column's label runs down-left from under the matrix: keep it on the canvas
        left = max(left, 6 + label_w * cos - cell / 2)
    font = min(TICK, cell * 0.72)
    top, side = 8.0, cell * k
    bottom = top + side
    if rotated:
        below = label_w * sin * font / TICK + font * cos + 4
    else:
        below = font + 10
    width = left + side + colorbar_w
    height = bottom + below + LABEL + 16
    svg = _Svg(width, height, "Confusion matrix, normalised by true class")
    stops = "".join(f'<stop offset="{_f(i / (len(BLUES) - 1))}" stop-color="{c}"/>' for i, c in enumerate(BLUES))
    svg.defs.append(f'<linearGradient id="dp-ramp" x1="0" y1="1" x2="0" y2="0">{stops}</linearGradient>')

    # cells, with white gaps between them
    cell_font = min(12.0, max(8.0, cell * 0.3))
    two_lines = k <= 6 and cell >= 2.6 * cell_font
    for i in range(k):
        y = top + i * cell
        for j in range(k):
            x = left + j * cell
            s, n = share[i][j], counts[i][j]
            tip = f"true {labels[i]}, predicted {labels[j]}: {n:,} ({100 * s:.1f}% of {labels[i]})"
            svg.rect(
                x,
                y,
                cell,
                cell,
                _blues(s),
                cls="dp-cell",
                title=tip,
                extra=f' stroke="#fff" stroke-width="{_f(min(1.5, cell / 16))}"',
            )
            if n == 0 and k > 6:
                continue  # keep large matrices readable: empty cells stay blank
            text = f"{n:,}"
            if _text_width(text, cell_font) > cell - 4:
                continue  # no room: the tooltip still has it
            color = "#fff" if s > 0.55 else INK
            cx, cy = x + cell / 2, y + cell / 2
            if two_lines:
                svg.text(cx, cy - 0.55 * cell_font, text, size=cell_font, anchor="middle", fill=color)
                svg.text(
                    cx,
                    cy + 0.6 * cell_font,
                    f"{100 * s:.0f}%",
                    size=cell_font * 0.85,
                    anchor="middle",
                    fill=color,
                    extra=' fill-opacity="0.8"',
                )
            else:
                svg.text(cx, cy, text, size=cell_font, anchor="middle", fill=color)

    # class names: rows on the left, columns beneath (rotated when long or many)
    font_attr = {} if font == TICK else {"size": font}
    for i, name in enumerate(short):
        svg.text(left - 7, top + (i + 0.5) * cell, name, anchor="end", **font_attr)
    for j, name in enumerate(short):
        cx = left + (j + 0.5) * cell
        if rotated:
            # Anchor the end of the label so that its vertical centre line points at the column centre.
            shift = 0.35 * font
            ax, ay = cx + shift * sin, bottom + 8 + shift * cos
            svg.text(ax, ay, name, anchor="end", rotate=-angle, middle=False, **font_attr)
        else:
            svg.text(cx, bottom + 7 + font / 2, name, anchor="middle", **font_attr)
    svg.text(10 + LABEL / 2, top + side / 2, "true class", size=LABEL, anchor="middle", rotate=-90, fill=MUTED)
    svg.text(
        left + side / 2, bottom + below + LABEL / 2 + 6, "predicted class", size=LABEL, anchor="middle", fill=MUTED
    )

    # colour bar
    bx = left + side + 14
    svg.rect(bx, top, 12, side, "url(#dp-ramp)")
    ticks = _nice_ticks(0.0, 1.0, 5)
    svg.path(_segments((bx + 12, bottom - t * side, bx + 12 + 3, bottom - t * side) for t in ticks), MUTED, 0.8)
    for t in ticks:
        svg.text(bx + 12 + 5, bottom - t * side, _tick_text(t, ticks[1] - ticks[0], percent=True))
    label_x = bx + 12 + 5 + _text_width("100%", TICK) + 8 + LABEL / 2
    svg.text(label_x, top + side / 2, "share of true class", size=LABEL, anchor="middle", rotate=-90, fill=MUTED)
    return svg.render()
