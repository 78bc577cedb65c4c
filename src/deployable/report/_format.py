"""Formatting shared by the report, the cards and the RMF map: numbers as people read them, and Markdown cells.

Every formatter shows NaN and None as an em dash. ``atomic_write_text`` (from :mod:`deployable.core.locks`) is
re-exported here for the writers of the run folder.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from typing import Any

from deployable.core.locks import atomic_write_text as atomic_write_text
from deployable.core.records import RunResult

DASH = "—"


# ---------------------------------------------------------------------------------------------------------------------
# Formatting (jinja2 filters): every one shows NaN and None as an em dash
# ---------------------------------------------------------------------------------------------------------------------


def is_missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def fmt_pct(x: float | None, digits: int = 1) -> str:
    """A fraction as a percentage: ``0.9134 -> "91.3%"``."""
    return DASH if is_missing(x) else f"{100 * x:.{digits}f}%"


def fmt_num(x: float | None, digits: int = 3) -> str:
    """A plain number with ``digits`` decimals."""
    return DASH if is_missing(x) else f"{x:,.{digits}f}"


def fmt_ms(x: float | None) -> str:
    """Milliseconds: 2 decimals from 1 ms up (1 decimal from 100 ms), 2 significant digits below 1 ms."""
    if is_missing(x):
        return DASH
    if math.isinf(x):
        return "∞"
    if abs(x) >= 100:
        return f"{x:,.1f}"
    if abs(x) >= 1 or x == 0:
        return f"{x:.2f}"
    return f"{x:#.2g}" if abs(x) >= 1e-4 else f"{x:.1e}"


def fmt_int(x: int | float | None) -> str:
    """A count with thousands separators."""
    return DASH if is_missing(x) else f"{int(x):,}"


def fmt_usd(x: float | None) -> str:
    """US dollars (the unit of ``price_per_hour``): cents from $10 up, else 3 significant digits (``$0.000267``)."""
    if is_missing(x):
        return DASH
    if x == 0 or abs(x) >= 10:
        return f"${x:,.2f}"
    decimals = min(12, max(2, 2 - math.floor(math.log10(abs(x)))))
    return f"${x:.{decimals}f}"


def fmt_seconds(x: float | None) -> str:
    """Seconds with 2 decimals."""
    return DASH if is_missing(x) else f"{x:,.2f} s"


def fmt_mb(x: float | None) -> str:
    """Megabytes (MiB) with 1 decimal; kilobytes below 1 MB."""
    if is_missing(x):
        return DASH
    return f"{x:,.1f} MB" if abs(x) >= 1 or x == 0 else f"{x * 1024:,.1f} KB"


def fmt_bytes(n: int | None) -> str:
    if is_missing(n):
        return DASH
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return DASH  # pragma: no cover


def fmt_date(text: str) -> str:
    """An ISO timestamp as ``2025-03-14 09:26 UTC`` (the original string when it does not parse)."""
    try:
        when = _dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return text or DASH
    if when.tzinfo is not None:
        when = when.astimezone(_dt.timezone.utc)
        return when.strftime("%Y-%m-%d %H:%M UTC")
    return when.strftime("%Y-%m-%d %H:%M")


def fmt_short(text: str | None, n: int = 12) -> str:
    """The first ``n`` characters of a digest."""
    return DASH if not text else text[:n]


def fmt_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def fmt_compact_json(value: Any) -> str:
    """JSON on one line (for the recipe details the report has no layout for)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str, separators=(", ", ": "))


MINUS = "\u2212"


def fmt_signed(x: float | None, digits: int = 2) -> str:
    """A signed number with a real minus sign: ``-0.375 -> "−0.38"``, ``0.1 -> "+0.10"``, zero unsigned."""
    if is_missing(x):
        return DASH
    text = f"{abs(x):,.{digits}f}"
    if float(text.replace(",", "")) == 0:
        return text
    return (MINUS if x < 0 else "+") + text


def fmt_pts(x: float | None, digits: int = 2, *, signed: bool = True) -> str:
    """A difference of two fractions in percentage points: ``-0.00375 -> "−0.38 pts"``."""
    if is_missing(x):
        return DASH
    text = fmt_signed(100 * x, digits)
    if not signed:
        text = text.lstrip("+")
    return f"{text} pts"


def fmt_sig(x: float | None, digits: int = 3) -> str:
    """A number with ``digits`` significant digits (``0.0183``, ``2.4e-06``)."""
    if is_missing(x):
        return DASH
    return f"{x:.{digits}g}"


def fmt_times(x: float | None) -> str:
    """A ratio as a factor: ``3.333 -> "3.3×"``, ``781.1 -> "781×"``."""
    if is_missing(x) or math.isinf(x):
        return DASH
    return f"{x:,.1f}×" if x < 10 else f"{x:,.0f}×"


def size_ratio_text(size: int | None, source_size: int | None) -> str:
    """A file size against the source's: ``"3.9× smaller"``, ``"1.3× larger"``, ``"same size"`` (within 5%)."""
    if is_missing(size) or is_missing(source_size) or not size or not source_size:
        return DASH
    ratio = source_size / size
    if abs(ratio - 1) < 0.05:
        return "same size"
    return f"{ratio:,.1f}× smaller" if ratio > 1 else f"{1 / ratio:,.1f}× larger"


def md_cell(value: Any) -> str:
    """Text safe inside a Markdown table cell (pipes escaped, line breaks folded)."""
    return str(value).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def card_config(result: RunResult) -> dict[str, Any]:
    """``data.card`` of the run's configuration (licence, source, personal data...), empty when not set."""
    return dict((result.config.get("data") or {}).get("card") or {})


def kept_in_float(recipe: dict[str, Any]) -> str:
    """``"8 of 40 nodes in float"`` for a quantized variant whose search kept nodes in float, else ``""``."""
    nodes, done = recipe.get("excluded_nodes"), recipe.get("quantized_nodes")
    if not isinstance(nodes, list) or not nodes or isinstance(done, bool) or not isinstance(done, int):
        return ""  # not a search's record (or a malformed one): nothing to say
    return f"{len(nodes)} of {len(nodes) + done} nodes in float"
