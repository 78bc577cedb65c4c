"""Reliability diagram of a variant's calibration."""

from __future__ import annotations

from collections.abc import Sequence

from deployable.core.records import (
    CalibrationMetrics,
    ReliabilityBin,
)
from deployable.report.plots._svg import (
    _LEGEND_ROW,
    BAR_OPACITY,
    BLUE,
    GRID,
    LABEL,
    LIGHT,
    MUTED,
    RED,
    SMALL,
    TICK,
    TICK_LEN,
    TITLE,
    _draw_legend,
    _empty,
    _esc,
    _f,
    _finite,
    _hatch_pattern,
    _legend_rows,
    _nice_ticks,
    _num,
    _pct,
    _segments,
    _Svg,
    _text_width,
    _tick_text,
)

# ---------------------------------------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------------------------------------


def _reliability_panel(
    svg: _Svg,
    bins: Sequence[ReliabilityBin],
    title: str,
    *,
    x0: float,
    width: float,
    top: float,
    height: float,
    hist_top: float,
    hist_height: float,
) -> None:
    """One panel: accuracy bars against the diagonal at ``(x0, top)``, the bin counts beneath at ``hist_top``."""
    bottom, hist_bottom, x1 = top + height, hist_top + hist_height, x0 + width

    def sx(v: float) -> float:
        return x0 + min(1.0, max(0.0, v)) * width

    def sy(v: float) -> float:
        return bottom - min(1.0, max(0.0, v)) * height

    ticks = _nice_ticks(0.0, 1.0, 5)
    step = ticks[1] - ticks[0]
    svg.path(_segments((x0, sy(t), x1, sy(t)) for t in ticks[1:]), GRID, 0.7)
    svg.text((x0 + x1) / 2, top - 14, title, size=TITLE, anchor="middle", bold=True)

    shown = [b for b in bins if b.count > 0 and _finite(b.accuracy) and _finite(b.confidence)]
    for b in shown:
        left, right = sx(b.lower), sx(b.upper)
        acc, conf = sy(b.accuracy), sy(b.confidence)
        tip = (
            f"confidence {_pct(b.lower)}–{_pct(b.upper)}: accuracy {_pct(b.accuracy)}, "
            f"mean confidence {_pct(b.confidence)}, {b.count:,} samples"
        )
        svg.body.append(f"<g><title>{_esc(tip)}</title>")  # one tooltip for the bar and its gap
        svg.rect(left, acc, right - left, bottom - acc, BLUE, cls="dp-acc", extra=_BAR_EDGE)
        # The gap between mean confidence and accuracy is what ECE averages, weighted by bin size.
        if abs(conf - acc) > 0.05:
            svg.rect(
                left,
                min(acc, conf),
                right - left,
                abs(conf - acc),
                "url(#dp-hatch)",
                cls="dp-gap",
                extra=f' stroke="{RED}" stroke-width="0.7"',
            )
        svg.body.append("</g>")
    svg.path(f"M{_f(x0)} {_f(bottom)}L{_f(x1)} {_f(top)}", MUTED, 1.0, dash="4 3")
    if not shown:
        svg.text((x0 + x1) / 2, (top + bottom) / 2, "no samples", size=LABEL, anchor="middle", fill=MUTED)

    # counts per bin
    h_ticks = _count_ticks(bins)
    scale = max(1.0, max((b.count for b in bins), default=0) * 1.4)  # headroom for the count labels

    def sh(v: float) -> float:
        return hist_bottom - v / scale * hist_height

    for b in bins:
        if b.count <= 0:
            continue
        left, right = sx(b.lower), sx(b.upper)
        tip = f"confidence {_pct(b.lower)}–{_pct(b.upper)}: {b.count:,} samples"
        svg.rect(
            left, sh(b.count), right - left, hist_bottom - sh(b.count), LIGHT, cls="dp-count", title=tip, extra=_EDGE
        )
        if len(bins) <= 20:  # name the counts: a wild bar is often a bin of two samples
            label = _count(b.count)
            size = min(SMALL, SMALL * (right - left) / max(1.0, _text_width(label, SMALL)))
            if size >= 7.5:
                svg.text(
                    (left + right) / 2, sh(b.count) - 2, label, size=size, anchor="middle", fill=MUTED, middle=False
                )

    # axes: spines, tick marks and labels
    svg.path(
        f"M{_f(x0)} {_f(top)}V{_f(bottom)}H{_f(x1)}M{_f(x0)} {_f(hist_top)}V{_f(hist_bottom)}H{_f(x1)}", LIGHT, 0.9
    )
    marks = [(x0 - TICK_LEN, sy(t), x0, sy(t)) for t in ticks]
    marks += [(x0 - TICK_LEN, sh(t), x0, sh(t)) for t in h_ticks]
    marks += [(sx(t), bottom, sx(t), bottom + TICK_LEN) for t in ticks]
    marks += [(sx(t), hist_bottom, sx(t), hist_bottom + TICK_LEN) for t in ticks]
    svg.path(_segments(marks), MUTED, 0.8)
    for t in ticks:
        svg.text(x0 - TICK_LEN - 3, sy(t), _tick_text(t, step, percent=True), anchor="end")
        svg.text(sx(t), hist_bottom + TICK_LEN + 9, _tick_text(t, step, percent=True), anchor="middle")
    for t in h_ticks:
        svg.text(x0 - TICK_LEN - 3, sh(t), _count(t), anchor="end")
    svg.text((x0 + x1) / 2, hist_bottom + TICK_LEN + 27, "confidence (top label)", size=LABEL, anchor="middle")


_EDGE = ' stroke="#fff" stroke-width="0.6"'  # separates neighbouring bins
_BAR_EDGE = f' fill-opacity="{BAR_OPACITY}"{_EDGE}'


def _count_ticks(bins: Sequence[ReliabilityBin]) -> list[float]:
    # Zero and the largest round number under the tallest bar: the strip is too short for more.
    most = max(1, max((b.count for b in bins), default=0))
    return [0.0, max(t for t in _nice_ticks(0.0, most, 2) if t <= most)]


def _count(n: float) -> str:
    """A sample count in at most five characters: ``1,234``, ``12k``, ``1.2M``."""
    if n < 10_000:
        return f"{n:,.0f}"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= div * 0.9995:  # 999,999 is "1M", not "1000k"
            v = n / div
            return f"{v:.1f}".rstrip("0").rstrip(".") + unit if v < 10 else f"{v:.0f}{unit}"
    return f"{n:,.0f}"  # pragma: no cover


def reliability_diagram(cal: CalibrationMetrics) -> str:
    """Reliability diagram before and after temperature scaling, with the bin counts beneath.

    Each panel plots, per confidence bin, the accuracy (bars) against the diagonal of perfect calibration; the
    hatched part of a bar is the gap to the bin's mean confidence. Empty bins are left blank.

    Args:
        cal: calibration record of one variant.

    Returns:
        An inline ``<svg>`` element.
    """
    if not cal.reliability and not cal.reliability_after_temperature:
        return _empty("no reliability bins")
    # The y tick labels of both panels (percentages above, counts beneath) set the gutters.
    texts = ["100%"] + [
        _count(t) for bins in (cal.reliability, cal.reliability_after_temperature) for t in _count_ticks(bins)
    ]
    gutter = max(_text_width(t, TICK) for t in texts) + TICK_LEN + 5
    width, left, between, right = 680.0, 8 + LABEL + 8 + gutter, gutter + 16, 20.0
    panel = (width - left - between - right) / 2
    top, height, hist_gap, hist_height = 30.0, 196.0, 10.0, 56.0
    hist_top = top + height + hist_gap
    items = [
        ("box", BLUE, "accuracy"),
        ("hatch", RED, "gap to confidence"),
        ("dash", MUTED, "perfect calibration"),
        ("box", LIGHT, "samples per bin"),
    ]
    rows = _legend_rows(items, width - 20)
    legend_top = hist_top + hist_height + TICK_LEN + 40
    svg = _Svg(
        width, legend_top + _LEGEND_ROW * len(rows) + 4, "Reliability diagram before and after temperature scaling"
    )
    svg.defs.append(_hatch_pattern())
    panels = (
        (cal.reliability, f"Before · ECE {_pct(cal.ece)}"),
        (
            cal.reliability_after_temperature,
            f"After T = {_num(cal.temperature)} · ECE {_pct(cal.ece_after_temperature)}",
        ),
    )
    for i, (bins, title) in enumerate(panels):
        _reliability_panel(
            svg,
            bins,
            title,
            x0=left + i * (panel + between),
            width=panel,
            top=top,
            height=height,
            hist_top=hist_top,
            hist_height=hist_height,
        )
    svg.text(16, top + height / 2, "accuracy", size=LABEL, anchor="middle", rotate=-90)
    svg.text(16, hist_top + hist_height / 2, "samples", size=LABEL, anchor="middle", rotate=-90)
    _draw_legend(svg, rows, width / 2, legend_top)
    return svg.render()
