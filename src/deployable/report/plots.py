"""Report figures as self-contained inline SVG strings, written by hand.

Every function returns one ``<svg>`` element ready to paste into HTML: no XML prolog, no comments, no external
reference of any kind. Text is real ``<text>`` (selectable, searchable, crisp at any zoom) in a generic font stack;
the ``viewBox`` with ``width="100%"`` and a ``max-width`` of the natural size lets a figure shrink to its column but
never grow past the size its text was laid out for.

No plotting library is involved: a figure is a few dozen rectangles, paths and labels, and building the string costs
well under a millisecond where matplotlib needed a few hundred. The price is that the layout must know how wide a
label is before any browser has measured it: :func:`_text_width` uses the advance widths of DejaVu Sans, the widest
of the common fonts in the stack, so a label has room in whichever font the reader's system picks.

The output is deterministic (equal inputs give equal bytes). A figure names its few ids (a hatch pattern, a colour
ramp) with fixed ``dp-`` names; when several figures share one HTML page, give each its own namespace with
:func:`scope_ids`.
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from deployable.core.records import (
    AdversarialMetrics,
    AttackResult,
    CalibrationMetrics,
    Evaluation,
    LeakageStat,
    OodMetrics,
    QualityMetrics,
    ReliabilityBin,
    RobustnessMetrics,
    SliceMetrics,
)

__all__ = [
    "PALETTE",
    "ParetoPoint",
    "attack_plot",
    "confusion_matrix_plot",
    "latency_plot",
    "leakage_plot",
    "ood_plot",
    "pareto_front",
    "pareto_plot",
    "reliability_diagram",
    "robustness_plot",
    "scope_ids",
    "slice_plot",
]

# One palette for the whole report (the HTML uses the same values): series colours in order, plus roles.
PALETTE = ("#2f6db3", "#e0823d", "#3f9b6a", "#8a63b8", "#c8504d", "#6f7b87", "#b79a2c", "#2a9aa3")
BLUE, ORANGE, GREEN, RED, GREY = PALETTE[0], PALETTE[1], PALETTE[2], PALETTE[4], "#9aa4ae"
INK, MUTED, GRID, LIGHT = "#1f2933", "#5b6673", "#e4e7eb", "#cdd5de"
GAP_FILL, GAP_OPACITY = "#ffffff", 0.35  # lightens the bar beneath where accuracy exceeds confidence
BAR_OPACITY = 0.85
# ColorBrewer "Blues" (9 classes), the ramp of the confusion matrix: share 0 -> first, share 1 -> last.
BLUES = ("#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b")

FONT_FAMILY = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif"
TICK, LABEL, TITLE, SMALL = 11.5, 12.0, 12.5, 9.5  # font sizes (px at natural size)
TICK_LEN = 4.0

_MAX_LABEL = 18  # longer class / slice names are shortened in the figures (tables and tooltips keep them whole)
_SVG_NS = "http://www.w3.org/2000/svg"


# ---------------------------------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------------------------------

# Advance widths of DejaVu Sans (1/1000 em) for ASCII 32..126; bold is ~12% wider.
_WIDTHS = (
    318, 401, 460, 838, 636, 950, 780, 275, 390, 390, 500, 838, 318, 361, 318, 337, 636, 636, 636, 636, 636, 636,
    636, 636, 636, 636, 337, 337, 838, 838, 838, 531, 1000, 684, 686, 698, 770, 632, 575, 775, 752, 295, 295, 656,
    557, 863, 748, 787, 603, 787, 695, 635, 611, 732, 684, 989, 685, 611, 685, 390, 337, 390, 838, 500, 500, 613,
    635, 550, 635, 615, 352, 635, 634, 278, 278, 579, 278, 974, 634, 612, 635, 635, 411, 521, 392, 634, 592, 818,
    592, 592, 525, 636, 337, 636, 838,
)  # fmt: skip
# non-ASCII the figures write themselves
_OTHER_WIDTHS = {"…": 1000, "—": 1000, "–": 500, "·": 318, "°": 500, "∝": 838, "×": 838}


def _text_width(text: str, size: float, *, bold: bool = False) -> float:
    """Estimated rendered width of ``text`` in px at font ``size`` (generous: DejaVu Sans metrics)."""
    total = 0
    for ch in text:
        code = ord(ch)
        if 32 <= code < 127:
            total += _WIDTHS[code - 32]
        elif ch in _OTHER_WIDTHS:
            total += _OTHER_WIDTHS[ch]
        elif unicodedata.combining(ch):
            continue
        else:
            total += 1000 if unicodedata.east_asian_width(ch) in "WF" else 760
    return total * size / 1000 * (1.12 if bold else 1.0)


# Characters XML 1.0 forbids even when escaped: a label holding one would make the whole SVG unparseable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _esc(text: str) -> str:
    """``text`` safe inside an XML element or a double-quoted attribute."""
    text = _NOT_XML.sub("\ufffd", str(text))
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _short(text: str, limit: int = _MAX_LABEL) -> str:
    # Ellipsis in the middle: names that share a prefix ("intent_billing_refund", "intent_billing_invoice") stay
    # distinguishable by their ends.
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2 + (limit - 1) % 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head) :]


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _pct(x: float | None) -> str:
    return f"{100 * x:.1f}%" if _finite(x) else "—"


def _num(x: float | None) -> str:
    return f"{x:.2f}" if _finite(x) else "—"


# ---------------------------------------------------------------------------------------------------------------------
# Axes arithmetic
# ---------------------------------------------------------------------------------------------------------------------


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values spanning ``[lo, hi]`` in about ``n`` steps.

    The step is 1, 2, 2.5 or 5 times a power of ten, the smallest such that at most ``n`` steps cover the range;
    the first tick is at or below ``lo`` and the last at or above ``hi``, so an axis can end on a labelled tick.

    Args:
        lo: lower end of the data range.
        hi: upper end of the data range.
        n: wanted number of steps (intervals); at least 1.

    Returns:
        The ticks in increasing order; empty when ``lo`` or ``hi`` is not finite.
    """
    if not (_finite(lo) and _finite(hi)):
        return []
    lo, hi = min(lo, hi), max(lo, hi)
    if hi == lo:
        pad = abs(lo) * 0.5 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(1, n)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = 10 * magnitude
    for m in (1.0, 2.0, 2.5, 5.0):
        if m * magnitude >= raw * (1 - 1e-9):
            step = m * magnitude
            break
    first = math.floor(lo / step + 1e-9)
    last = math.ceil(hi / step - 1e-9)
    return [round(k * step, 12) + 0.0 for k in range(first, last + 1)]


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten within ``[lo, hi]`` (with 2 and 5 times them when fewer than three decades fit)."""
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    ticks = [10.0**d for d in decades if lo <= 10.0**d <= hi]
    if len(ticks) < 3:
        ticks = sorted(m * 10.0**d for d in decades for m in (1, 2, 5) if lo <= m * 10.0**d <= hi)
    return ticks


def _tick_text(value: float, step: float, *, percent: bool = False) -> str:
    """A tick label with as many decimals as the step needs (``0.25`` -> 2, ``20`` -> 0)."""
    if percent:
        value, step = 100 * value, 100 * step
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0
    if abs(step * 10**decimals - round(step * 10**decimals)) > 1e-6:
        decimals += 1  # 2.5, 0.25, ...
    text = f"{value:,.{decimals}f}"
    return text + "%" if percent else text


def _log_text(value: float) -> str:
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


def _blues(share: float) -> str:
    """The colour of ``share`` in [0, 1] on the :data:`BLUES` ramp (linear in RGB between the anchors)."""
    t = min(1.0, max(0.0, share)) * (len(BLUES) - 1)
    i = min(int(t), len(BLUES) - 2)
    a, b, f = BLUES[i], BLUES[i + 1], t - i
    rgb = (round(int(a[k : k + 2], 16) * (1 - f) + int(b[k : k + 2], 16) * f) for k in (1, 3, 5))
    return "#{:02x}{:02x}{:02x}".format(*rgb)


# ---------------------------------------------------------------------------------------------------------------------
# SVG plumbing
# ---------------------------------------------------------------------------------------------------------------------


def _f(v: float) -> str:
    """A coordinate with at most two decimals and no trailing zeros."""
    text = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


class _Svg:
    """Collects the elements of one figure; :meth:`render` wraps them in the ``<svg>`` element."""

    def __init__(self, width: float, height: float, label: str) -> None:
        self.width, self.height, self.label = width, height, label
        self.defs: list[str] = []
        self.body: list[str] = []

    def rect(
        self,
        x: float,
        y: float,
        w: float,
        h: float,
        fill: str,
        *,
        cls: str | None = None,
        extra: str = "",
        title: str | None = None,
    ) -> None:
        attrs = f' class="{cls}"' if cls else ""
        head = f'<rect{attrs} x="{_f(x)}" y="{_f(y)}" width="{_f(max(0.0, w))}" height="{_f(max(0.0, h))}"'
        head += f' fill="{fill}"{extra}'
        self.body.append(f"{head}><title>{_esc(title)}</title></rect>" if title else head + "/>")

    def circle(self, cx: float, cy: float, r: float, fill: str, *, extra: str = "", title: str | None = None) -> None:
        head = f'<circle cx="{_f(cx)}" cy="{_f(cy)}" r="{_f(max(0.0, r))}" fill="{fill}"{extra}'
        self.body.append(f"{head}><title>{_esc(title)}</title></circle>" if title else head + "/>")

    def path(
        self, d: str, stroke: str = "none", width: float = 1.0, *, fill: str = "none", dash: str = "", extra: str = ""
    ) -> None:
        attrs = f' fill="{fill}"'
        if stroke != "none":
            attrs += f' stroke="{stroke}" stroke-width="{_f(width)}"'
        if dash:
            attrs += f' stroke-dasharray="{dash}"'
        self.body.append(f'<path d="{d}"{attrs}{extra}/>')

    def text(
        self,
        x: float,
        y: float,
        text: str,
        *,
        size: float = TICK,
        anchor: str = "start",
        fill: str = INK,
        bold: bool = False,
        rotate: float = 0.0,
        middle: bool = True,
        extra: str = "",
        raw: bool = False,
    ) -> None:
        """A label whose vertical centre is at ``y`` (``middle``) or whose baseline is (not ``middle``).

        ``rotate`` (degrees, clockwise) turns the label about ``(x, y)``, so a rotated ``middle`` label is still
        centred on that point.
        """
        pivot = f"{_f(x)} {_f(y)}"
        if middle:
            y += 0.35 * size  # baseline of text centred on y: half the height of digits and capitals
        attrs = f' x="{_f(x)}" y="{_f(y)}"'
        if anchor != "start":
            attrs += f' text-anchor="{anchor}"'
        if size != TICK:
            attrs += f' font-size="{_f(size)}"'
        if fill != INK:
            attrs += f' fill="{fill}"'
        if bold:
            attrs += ' font-weight="600"'
        if rotate:
            attrs += f' transform="rotate({_f(rotate)} {pivot})"'
        self.body.append(f"<text{attrs}{extra}>{text if raw else _esc(text)}</text>")

    def render(self) -> str:
        w, h = _f(self.width), _f(self.height)
        head = (
            f'<svg xmlns="{_SVG_NS}" class="dp-plot" role="img" aria-label="{_esc(self.label)}" viewBox="0 0 {w} {h}"'
            f' width="100%" style="max-width:{w}px" font-family="{FONT_FAMILY}" font-size="{_f(TICK)}" fill="{INK}">'
        )
        defs = f"<defs>{''.join(self.defs)}</defs>" if self.defs else ""
        background = f'<rect width="{w}" height="{h}" fill="#fff"/>'
        return head + defs + background + "".join(self.body) + "</svg>\n"


def _segments(points: Iterable[tuple[float, float, float, float]]) -> str:
    """Path data of separate straight segments ``(x1, y1, x2, y2)``."""
    return "".join(f"M{_f(x1)} {_f(y1)}L{_f(x2)} {_f(y2)}" for x1, y1, x2, y2 in points)


_ID = re.compile(r'\bid="([^"]+)"')
_HREF = re.compile(r'((?:xlink:)?href)="#([^"]+)"')
_URL = re.compile(r"url\(#([^)]+)\)")


def scope_ids(svg: str, prefix: str) -> str:
    """Prefix every ``id`` in ``svg`` and every internal reference to it (``href="#…"``, ``url(#…)``).

    Inline SVGs share the HTML document's id namespace: two reliability diagrams on one page would otherwise both
    define ``dp-hatch``, and the second would paint with the first one's pattern.
    """
    svg = _ID.sub(lambda m: f'id="{prefix}{m.group(1)}"', svg)
    svg = _HREF.sub(lambda m: f'{m.group(1)}="#{prefix}{m.group(2)}"', svg)
    return _URL.sub(lambda m: f"url(#{prefix}{m.group(1)})", svg)


def _empty(message: str, width: float = 420.0, height: float = 72.0) -> str:
    svg = _Svg(width, height, message)
    svg.path(f"M4.5 4.5H{_f(width - 4.5)}V{_f(height - 4.5)}H4.5Z", GRID, 1.0, dash="4 3")
    svg.text(width / 2, height / 2, message, size=LABEL, anchor="middle", fill=MUTED)
    return svg.render()


# Legend: an item is (kind, colour, label) with kind one of "box", "hatch", "dash", "tick", "triangle".
_SWATCH, _SWATCH_GAP, _ITEM_GAP, _LEGEND_ROW = 14.0, 5.0, 18.0, 18.0


def _legend_rows(items: Sequence[tuple[str, str, str]], max_width: float) -> list[list[tuple[str, str, str, float]]]:
    rows: list[list[tuple[str, str, str, float]]] = [[]]
    used = 0.0
    for kind, color, label in items:
        w = _SWATCH + _SWATCH_GAP + _text_width(label, TICK)
        if rows[-1] and used + _ITEM_GAP + w > max_width:
            rows.append([])
            used = 0.0
        used += (_ITEM_GAP if rows[-1] else 0.0) + w
        rows[-1].append((kind, color, label, w))
    return rows


def _draw_legend(svg: _Svg, rows: list[list[tuple[str, str, str, float]]], cx: float, top: float) -> None:
    """Rows of legend items, each row centred on ``cx``; the first row's centre line is at ``top + 9``."""
    for r, row in enumerate(rows):
        y = top + 9 + r * _LEGEND_ROW
        x = cx - (sum(w for *_, w in row) + _ITEM_GAP * (len(row) - 1)) / 2
        for kind, color, label, w in row:
            if kind == "box":
                svg.rect(x, y - 5, _SWATCH, 10, color, extra=f' fill-opacity="{BAR_OPACITY}"')
            elif kind == "hatch":
                svg.rect(
                    x + 0.5, y - 4.5, _SWATCH - 1, 9, "url(#dp-hatch)", extra=f' stroke="{color}" stroke-width="0.8"'
                )
            elif kind == "dash":
                svg.path(f"M{_f(x)} {_f(y)}H{_f(x + _SWATCH)}", color, 1.4, dash="3.5 2.5")
            elif kind == "tick":
                svg.path(f"M{_f(x + 2)} {_f(y)}H{_f(x + _SWATCH - 2)}", color, 1.8)
            elif kind == "triangle":
                svg.path(_triangle(x + _SWATCH / 2, y), fill=color)
            elif kind in _POINT_STYLES:
                svg.circle(x + _SWATCH / 2, y, 5.0, **_point_style(kind, color))
            elif kind == "step":
                svg.path(f"M{_f(x)} {_f(y + 4)}H{_f(x + _SWATCH / 2)}V{_f(y - 4)}H{_f(x + _SWATCH)}", color, 1.6)
            svg.text(x + _SWATCH + _SWATCH_GAP, y, label)
            x += w + _ITEM_GAP


def _triangle(x: float, y: float, size: float = 7.0) -> str:
    """A downward triangle centred on ``(x, y)``: the p99 marker."""
    h = size * 0.8
    return f"M{_f(x - size / 2)} {_f(y - h / 2)}H{_f(x + size / 2)}L{_f(x)} {_f(y + h / 2)}Z"


def _hatch_pattern() -> str:
    # Lines at 45 degrees every 5 px (matplotlib's "////"), in the gap colour, over a translucent white.
    return (
        '<pattern id="dp-hatch" patternUnits="userSpaceOnUse" width="5" height="5">'
        f'<rect width="5" height="5" fill="{GAP_FILL}" fill-opacity="{GAP_OPACITY}"/>'
        f'<path d="M-1 1L1 -1M0 5L5 0M4 6L6 4" stroke="{RED}" stroke-width="0.7"/></pattern>'
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


def _ms(x: float) -> str:
    if not _finite(x):
        return "—"
    return f"{x:,.2f}" if x >= 1 else f"{x:.3g}"


# ---------------------------------------------------------------------------------------------------------------------
# Optimization: accuracy against latency
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParetoPoint:
    """One variant in :func:`pareto_plot`: its latency on one target, its accuracy and its file size.

    ``rejected`` variants (outside the optimization tolerance) are drawn but never on the front.
    """

    name: str
    latency_ms: float
    accuracy: float
    size_bytes: int | None = None
    rejected: bool = False


def pareto_front(points: Sequence[ParetoPoint]) -> list[int]:
    """Indices of the Pareto-optimal accepted points, fastest first.

    An accepted point is dominated when another accepted point is at least as fast and at least as accurate, and
    strictly better in one of the two; the front is every accepted point nothing dominates. Rejected points and
    points with a missing (NaN) latency or accuracy take no part: they are neither on the front nor dominate.

    Args:
        points: the variants of one target.

    Returns:
        Positions in ``points``, by increasing latency (then decreasing accuracy); accuracy increases along them.
    """
    eligible = [i for i, p in enumerate(points) if not p.rejected and _finite(p.latency_ms) and _finite(p.accuracy)]
    front = []
    for i in eligible:
        a = points[i]
        beaten = any(
            b.latency_ms <= a.latency_ms
            and b.accuracy >= a.accuracy
            and (b.latency_ms < a.latency_ms or b.accuracy > a.accuracy)
            for b in (points[j] for j in eligible)
        )
        if not beaten:
            front.append(i)
    return sorted(front, key=lambda i: (points[i].latency_ms, -points[i].accuracy))


_POINT_STYLES = ("front", "dominated", "rejected")
_R_MAX, _R_MIN, _R_DEFAULT = 13.0, 3.0, 5.5  # point radii (px): largest file, floor, size unknown


def _point_style(kind: str, color: str = BLUE) -> dict[str, str]:
    """Fill and stroke of a scatter point: the front solid, dominated points pale, rejected ones hollow grey."""
    if kind == "front":
        return {"fill": color, "extra": f' fill-opacity="{BAR_OPACITY}" stroke="#fff" stroke-width="1"'}
    if kind == "dominated":
        return {"fill": color, "extra": f' fill-opacity="0.22" stroke="{color}" stroke-width="1.2"'}
    return {"fill": "#fff", "extra": f' fill-opacity="0.6" stroke="{GREY}" stroke-width="1.4" stroke-dasharray="3 2"'}


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


# ---------------------------------------------------------------------------------------------------------------------
# Out-of-distribution detection
# ---------------------------------------------------------------------------------------------------------------------

_OOD_NAMES = {"msp": "MSP", "max_logit": "max logit", "energy": "energy", "mahalanobis": "Mahalanobis"}


def ood_plot(ood: OodMetrics) -> str:
    """ROC curves of every OOD score (left) and the histogram of the best score, in against out (right).

    The ROC plots the share of OOD samples flagged (true positive rate) against the share of in-distribution samples
    flagged (false positive rate); the histogram shows each group's share of samples per score bin.
    """
    if not ood.scores:
        return _empty("no OOD scores")
    width, top, height = 680.0, 30.0, 210.0
    left = 8 + LABEL + 8 + _text_width("100%", TICK) + TICK_LEN + 5
    gap, right = 70.0, 16.0
    panel = (width - left - gap - right) / 2
    best = ood.best()
    items = [("tick", PALETTE[i % len(PALETTE)], f"{_OOD_NAMES.get(s.name, s.name)} · AUROC {s.auroc:.3f}")
             for i, s in enumerate(ood.scores)]  # fmt: skip
    items += [("box", BLUE, f"in: {ood.in_split}"), ("box", ORANGE, f"out: {_short(ood.out_split, 24)}")]
    rows = _legend_rows(items, width - 20)
    legend_top = top + height + TICK_LEN + 44
    svg = _Svg(width, legend_top + _LEGEND_ROW * len(rows) + 4, "ROC curves of the OOD scores and score histogram")

    # ROC panel
    x0 = left
    svg.text(x0 + panel / 2, top - 14, "ROC · out of distribution = positive", size=TITLE, anchor="middle", bold=True)
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = top + height * (1 - t)
        x = x0 + panel * t
        svg.path(f"M{_f(x0)} {_f(y)}H{_f(x0 + panel)}", GRID)
        svg.path(f"M{_f(x)} {_f(top)}V{_f(top + height)}", GRID)
        svg.text(x0 - TICK_LEN - 3, y, _tick_text(t, 0.25, percent=True), anchor="end")
        svg.text(x, top + height + TICK_LEN + 9, _tick_text(t, 0.25, percent=True), anchor="middle")
    svg.path(f"M{_f(x0)} {_f(top + height)}L{_f(x0 + panel)} {_f(top)}", MUTED, 1.0, dash="3.5 2.5")
    for i, s in enumerate(ood.scores):
        d = "".join(
            f"{'M' if k == 0 else 'L'}{_f(x0 + panel * fx)} {_f(top + height * (1 - ty))}"
            for k, (fx, ty) in enumerate(s.roc)
        )
        svg.path(d, PALETTE[i % len(PALETTE)], 1.8)
    svg.text(x0 + panel / 2, top + height + TICK_LEN + 26, "in-distribution flagged (FPR)", size=LABEL, anchor="middle")
    svg.text(16, top + height / 2, "OOD flagged (TPR)", size=LABEL, anchor="middle", rotate=-90)

    # histogram panel of the best score
    x1 = left + panel + gap
    title = f"{_OOD_NAMES.get(best.name, best.name)} score · share of samples"
    svg.text(x1 + panel / 2, top - 14, title, size=TITLE, anchor="middle", bold=True)
    n_in, n_out = max(1, sum(best.counts_in)), max(1, sum(best.counts_out))
    shares_in = [c / n_in for c in best.counts_in]
    shares_out = [c / n_out for c in best.counts_out]
    ymax = max([*shares_in, *shares_out, 1e-9])
    ticks = _nice_ticks(0.0, ymax, 4)
    ymax = ticks[-1] if ticks else ymax
    step = ticks[1] - ticks[0] if len(ticks) > 1 else ymax
    for t in ticks:
        y = top + height * (1 - t / ymax)
        svg.path(f"M{_f(x1)} {_f(y)}H{_f(x1 + panel)}", GRID)
        svg.text(x1 - TICK_LEN - 3, y, _tick_text(t, step, percent=True), anchor="end")
    bins = len(best.counts_in)
    bw = panel / max(1, bins)
    for k in range(bins):
        for share, color, title_text, n in (
            (shares_in[k], BLUE, "in", best.counts_in[k]),
            (shares_out[k], ORANGE, "out", best.counts_out[k]),
        ):
            h = height * share / ymax
            svg.rect(
                x1 + k * bw + 0.5,
                top + height - h,
                bw - 1,
                h,
                color,
                extra=' fill-opacity="0.55"',
                title=f"{title_text}: {n} samples in [{best.edges[k]:.3g}, {best.edges[k + 1]:.3g})",
            )
    lo, hi = best.edges[0], best.edges[-1]
    svg.text(x1, top + height + TICK_LEN + 9, f"{lo:.3g}", anchor="start")
    svg.text(x1 + panel, top + height + TICK_LEN + 9, f"{hi:.3g}", anchor="end")
    axis_label = "score (higher = more likely OOD)"
    svg.text(x1 + panel / 2, top + height + TICK_LEN + 26, axis_label, size=LABEL, anchor="middle")
    _draw_legend(svg, rows, width / 2, legend_top)
    return svg.render()


# ---------------------------------------------------------------------------------------------------------------------
# Corruption robustness
# ---------------------------------------------------------------------------------------------------------------------


def robustness_plot(rob: RobustnessMetrics, reference: RobustnessMetrics | None = None, ref_name: str = "") -> str:
    """Accuracy against severity, one line per corruption, from the clean accuracy at severity 0.

    With ``reference`` (the source's record), its mean corruption accuracy per severity is drawn dashed, so a
    variant that loses more under corruption than its source shows it.
    """
    groups = rob.by_corruption()
    if not groups:
        return _empty("no corruption results")
    width, top, height = 680.0, 30.0, 220.0
    left = 8 + LABEL + 8 + _text_width("100%", TICK) + TICK_LEN + 5
    right = 20.0
    severities = sorted({r.severity for r in rob.results})
    xs = [0, *severities]
    lo = min([rob.clean_accuracy, *(r.accuracy for r in rob.results)])
    ticks = _nice_ticks(max(0.0, lo - 0.05), 1.0, 5)
    y_lo, y_hi = ticks[0], ticks[-1]
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 0.1
    panel = width - left - right

    def px(sev: float) -> float:
        return left + panel * (sev / max(xs))

    def py(acc: float) -> float:
        return top + height * (1 - (acc - y_lo) / max(y_hi - y_lo, 1e-9))

    items = [("tick", PALETTE[i % len(PALETTE)], name.replace("_", " ")) for i, name in enumerate(groups)]
    if reference is not None:
        items.append(("dash", INK, f"{ref_name or 'source'}: mean over corruptions"))
    rows = _legend_rows(items, width - 20)
    legend_top = top + height + TICK_LEN + 44
    svg = _Svg(width, legend_top + _LEGEND_ROW * len(rows) + 4, "Accuracy against corruption severity")
    title = f"Accuracy under corruption · mean {_pct(rob.mean_corruption_accuracy)} (clean {_pct(rob.clean_accuracy)})"
    svg.text(left + panel / 2, top - 14, title, size=TITLE, anchor="middle", bold=True)
    for t in ticks:
        svg.path(f"M{_f(left)} {_f(py(t))}H{_f(left + panel)}", GRID)
        svg.text(left - TICK_LEN - 3, py(t), _tick_text(t, step, percent=True), anchor="end")
    for s in xs:
        svg.text(px(s), top + height + TICK_LEN + 9, "clean" if s == 0 else str(s), anchor="middle")
    for i, (name, rs) in enumerate(groups.items()):
        pts = [(0, rob.clean_accuracy)] + [(r.severity, r.accuracy) for r in sorted(rs, key=lambda r: r.severity)]
        d = "".join(f"{'M' if k == 0 else 'L'}{_f(px(s))} {_f(py(a))}" for k, (s, a) in enumerate(pts))
        color = PALETTE[i % len(PALETTE)]
        svg.path(d, color, 1.8)
        for s, a in pts[1:]:
            svg.circle(px(s), py(a), 2.6, color, title=f"{name} severity {s}: {_pct(a)}")
    if reference is not None:
        means = [(0, reference.clean_accuracy)] + [
            (s, float(np.mean([r.accuracy for r in reference.results if r.severity == s]))) for s in severities
        ]
        d = "".join(f"{'M' if k == 0 else 'L'}{_f(px(s))} {_f(py(a))}" for k, (s, a) in enumerate(means))
        svg.path(d, INK, 1.6, dash="5 3")
    svg.text(left + panel / 2, top + height + TICK_LEN + 26, "severity", size=LABEL, anchor="middle")
    svg.text(16, top + height / 2, "accuracy", size=LABEL, anchor="middle", rotate=-90)
    _draw_legend(svg, rows, width / 2, legend_top)
    return svg.render()


# ---------------------------------------------------------------------------------------------------------------------
# Adversarial robustness
# ---------------------------------------------------------------------------------------------------------------------


def attack_plot(adv: AdversarialMetrics) -> str:
    """Accuracy against the attack budget, one line per attack and norm, starting from the clean accuracy."""
    groups: dict[str, list[AttackResult]] = {}
    for r in adv.results:
        label = "char edits" if r.norm == "edits" else f"{r.attack.upper()} L{'∞' if r.norm == 'inf' else r.norm}"
        groups.setdefault(label, []).append(r)
    if not groups:
        return _empty("no attack results")
    budgets = sorted({r.epsilon for r in adv.results})
    width, top, height = 680.0, 30.0, 220.0
    left = 8 + LABEL + 8 + _text_width("100%", TICK) + TICK_LEN + 5
    panel = width - left - 20.0
    slots = len(budgets)

    def px(k: int) -> float:  # slot 0 is clean, then one per budget, evenly spaced (budgets grow geometrically)
        return left + panel * k / max(1, slots)

    def py(acc: float) -> float:
        return top + height * (1 - acc)

    items = [("tick", PALETTE[i % len(PALETTE)], name) for i, name in enumerate(groups)]
    rows = _legend_rows(items, width - 20)
    legend_top = top + height + TICK_LEN + 44
    svg = _Svg(width, legend_top + _LEGEND_ROW * len(rows) + 4, "Accuracy against the attack budget")
    svg.text(left + panel / 2, top - 14, "Accuracy under attack", size=TITLE, anchor="middle", bold=True)
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        svg.path(f"M{_f(left)} {_f(py(t))}H{_f(left + panel)}", GRID)
        svg.text(left - TICK_LEN - 3, py(t), _tick_text(t, 0.25, percent=True), anchor="end")
    svg.text(px(0), top + height + TICK_LEN + 9, "clean", anchor="middle")
    for k, b in enumerate(budgets, start=1):
        svg.text(px(k), top + height + TICK_LEN + 9, f"{b:g}", anchor="middle")
    for i, (name, rs) in enumerate(groups.items()):
        color = PALETTE[i % len(PALETTE)]
        pts = [(0, adv.clean_accuracy)] + [(budgets.index(r.epsilon) + 1, r.accuracy) for r in rs]
        d = "".join(f"{'M' if j == 0 else 'L'}{_f(px(k))} {_f(py(a))}" for j, (k, a) in enumerate(sorted(pts)))
        svg.path(d, color, 1.8, dash="5 3" if any(r.transferred for r in rs) else "")
        for k, a in sorted(pts)[1:]:
            svg.circle(px(k), py(a), 2.6, color, title=f"{name} at {budgets[k - 1]:g}: {_pct(a)}")
    unit = "characters edited" if any(r.norm == "edits" for r in adv.results) else "budget (epsilon)"
    svg.text(left + panel / 2, top + height + TICK_LEN + 26, unit, size=LABEL, anchor="middle")
    svg.text(16, top + height / 2, "accuracy", size=LABEL, anchor="middle", rotate=-90)
    _draw_legend(svg, rows, width / 2, legend_top)
    return svg.render()


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
