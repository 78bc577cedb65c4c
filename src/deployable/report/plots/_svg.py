"""SVG canvas and axes shared by every figure: palette, text widths, escaping, ticks, the ``_Svg`` builder,
legends and id scoping. The figure families live in the modules beside this one."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence

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


_POINT_STYLES = ("front", "dominated", "rejected")


def _point_style(kind: str, color: str = BLUE) -> dict[str, str]:
    """Fill and stroke of a scatter point: the front solid, dominated points pale, rejected ones hollow grey."""
    if kind == "front":
        return {"fill": color, "extra": f' fill-opacity="{BAR_OPACITY}" stroke="#fff" stroke-width="1"'}
    if kind == "dominated":
        return {"fill": color, "extra": f' fill-opacity="0.22" stroke="{color}" stroke-width="1.2"'}
    return {"fill": "#fff", "extra": f' fill-opacity="0.6" stroke="{GREY}" stroke-width="1.4" stroke-dasharray="3 2"'}


def _ms(x: float) -> str:
    if not _finite(x):
        return "—"
    return f"{x:,.2f}" if x >= 1 else f"{x:.3g}"
