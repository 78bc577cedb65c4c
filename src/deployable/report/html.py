"""``results.json`` and the self-contained ``report.html`` of a run.

The report is one HTML file with its CSS and figures inline: it makes no network request, needs no font and can be
mailed, archived or opened from a CI artifact as it is. It is rendered from ``templates/report.html`` with jinja2
(autoescaping on); the template gets a small view model built here, so it only lays out numbers.

Later stages add their own sections without editing this module's callers: pass :class:`ReportSection` objects
(pre-rendered HTML) to :func:`write_report`, or extend the template and override its named blocks.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import math
import os
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jinja2
from markupsafe import Markup

from deployable.core.records import Efficiency, Evaluation, LatencyStats, RunResult, Target, Variant
from deployable.report import plots

__all__ = ["ReportSection", "render_report", "write_report", "write_results_json"]

TEMPLATES = Path(__file__).resolve().parent / "templates"
DASH = "—"


@dataclass(frozen=True)
class ReportSection:
    """An extra section a later stage (optimize, robustness, OOD, audit, gate) adds to the report.

    Attributes:
        id: HTML anchor, unique in the page (letters, digits, ``-``, ``_``).
        title: heading, shown in the navigation too (top-level sections only).
        html: the section body. Inserted as is: build it with an autoescaping template, never from raw strings.
        where: ``"top"`` right after the summary (a gate verdict), ``"bottom"`` after the dataset section and before
            provenance (audit findings, OOD), or ``"variant"`` at the end of one variant's block.
        variant: the variant's name, required when ``where="variant"``.
    """

    id: str
    title: str
    html: str
    where: Literal["top", "bottom", "variant"] = "bottom"
    variant: str | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z][\w-]*", self.id):
            raise ValueError(f"ReportSection.id: expected letters, digits, '-' or '_', but found {self.id!r}")
        if self.where not in ("top", "bottom", "variant"):
            raise ValueError(f"ReportSection.where: expected 'top', 'bottom' or 'variant', but found {self.where!r}")
        if (self.where == "variant") != (self.variant is not None):
            raise ValueError("ReportSection: give `variant` exactly when where='variant'")


# ---------------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------------


def _atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    A reader never sees half a file, and a failure leaves the previous file (if any) in place and no temporary file.
    The temporary file is opened with ``"x"`` (not ``mkstemp``) so it gets the usual umask permissions.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_results_json(result: RunResult, path: Path) -> Path:
    """Write ``result.to_dict()`` as indented, standard JSON (``RunResult.load`` reads it back).

    Args:
        result: the run.
        path: destination, usually ``<run folder>/results.json``; written atomically.

    Returns:
        ``path``.
    """
    text = json.dumps(result.to_dict(), indent=2, ensure_ascii=False, allow_nan=False)
    return _atomic_write_text(Path(path), text + "\n")


def write_report(result: RunResult, path: Path, *, extra_sections: Iterable[ReportSection] = ()) -> Path:
    """Render the self-contained HTML report of a run and write it atomically.

    Args:
        result: the run.
        path: destination, usually ``<run folder>/report.html``.
        extra_sections: sections added by later stages (see :class:`ReportSection`).

    Returns:
        ``path``.
    """
    return _atomic_write_text(Path(path), render_report(result, extra_sections=extra_sections))


def render_report(result: RunResult, *, extra_sections: Iterable[ReportSection] = ()) -> str:
    """The report as an HTML string (what :func:`write_report` writes)."""
    extra = tuple(extra_sections)
    env = _environment()
    return env.get_template("report.html").render(**_view(result, extra))


# ---------------------------------------------------------------------------------------------------------------------
# Formatting (jinja2 filters): every one shows NaN and None as an em dash
# ---------------------------------------------------------------------------------------------------------------------


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def fmt_pct(x: float | None, digits: int = 1) -> str:
    """A fraction as a percentage: ``0.9134 -> "91.3%"``."""
    return DASH if _missing(x) else f"{100 * x:.{digits}f}%"


def fmt_num(x: float | None, digits: int = 3) -> str:
    """A plain number with ``digits`` decimals."""
    return DASH if _missing(x) else f"{x:,.{digits}f}"


def fmt_ms(x: float | None) -> str:
    """Milliseconds: 2 decimals from 1 ms up (1 decimal from 100 ms), 2 significant digits below 1 ms."""
    if _missing(x):
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
    return DASH if _missing(x) else f"{int(x):,}"


def fmt_usd(x: float | None) -> str:
    """US dollars (the unit of ``price_per_hour``): cents from $10 up, else 3 significant digits (``$0.000267``)."""
    if _missing(x):
        return DASH
    if x == 0 or abs(x) >= 10:
        return f"${x:,.2f}"
    decimals = min(12, max(2, 2 - math.floor(math.log10(abs(x)))))
    return f"${x:.{decimals}f}"


def fmt_seconds(x: float | None) -> str:
    """Seconds with 2 decimals."""
    return DASH if _missing(x) else f"{x:,.2f} s"


def fmt_mb(x: float | None) -> str:
    """Megabytes (MiB) with 1 decimal; kilobytes below 1 MB."""
    if _missing(x):
        return DASH
    return f"{x:,.1f} MB" if abs(x) >= 1 or x == 0 else f"{x * 1024:,.1f} KB"


def fmt_bytes(n: int | None) -> str:
    if _missing(n):
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


@functools.cache
def _environment() -> jinja2.Environment:
    # compiled once per process: a report with many variants renders in milliseconds
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        pct=fmt_pct,
        num=fmt_num,
        ms=fmt_ms,
        commas=fmt_int,
        usd=fmt_usd,
        mb=fmt_mb,
        bytes=fmt_bytes,
        seconds=fmt_seconds,
        date=fmt_date,
        short=fmt_short,
        json=fmt_json,
    )
    return env


# ---------------------------------------------------------------------------------------------------------------------
# View model
# ---------------------------------------------------------------------------------------------------------------------


class _Figures:
    """Hands out figures with page-unique ids (see :func:`plots.scope_ids`)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, svg: str) -> Markup:
        self.count += 1
        return Markup(plots.scope_ids(svg, f"f{self.count}-"))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def _summary_batches(targets: Sequence[Target], evaluations: Sequence[Evaluation]) -> list[dict[str, Any]]:
    """Per target, the batch size the summary quotes latency at (the smallest) and cost at (the largest)."""
    names = [t.name for t in targets]
    for e in evaluations:  # a target measured but not declared still gets its columns
        names += [f.target for f in e.efficiency if f.target not in names]
    out = []
    for name in names:
        sizes = sorted(
            {lat.batch_size for e in evaluations for f in e.efficiency if f.target == name for lat in f.latency}
        )
        if sizes:
            out.append({"name": name, "latency_batch": sizes[0], "cost_batch": sizes[-1]})
    return out


def _latency_at(e: Evaluation, target: str, batch: int) -> LatencyStats | None:
    for f in e.efficiency:
        if f.target == target:
            for lat in f.latency:
                if lat.batch_size == batch:
                    return lat
    return None


def _best(values: Sequence[float | None], *, higher: bool) -> set[int]:
    """Indices holding the best value (only meaningful when there is more than one row)."""
    finite = [(i, v) for i, v in enumerate(values) if not _missing(v) and math.isfinite(v)]
    if len(values) < 2 or not finite:
        return set()
    best = max(v for _, v in finite) if higher else min(v for _, v in finite)
    return {i for i, v in finite if v == best}


def _summary(result: RunResult, columns: list[dict[str, Any]], anchors: list[str]) -> list[dict[str, Any]]:
    evaluations = result.evaluations
    rows: list[dict[str, Any]] = []
    for e, anchor in zip(evaluations, anchors, strict=True):
        cells = []
        for col in columns:
            lat = _latency_at(e, col["name"], col["latency_batch"])
            cost = _latency_at(e, col["name"], col["cost_batch"])
            cells.append({"p50": lat.p50_ms if lat else None, "cost": cost.cost_per_million if cost else None})
        rows.append(
            {"evaluation": e, "anchor": anchor, "variant": _variant(result, e.variant), "cells": cells, "best": set()}
        )
    metrics = {
        "accuracy": ([e.quality.accuracy for e in evaluations], True),
        "macro_f1": ([e.quality.macro_f1 for e in evaluations], True),
        "ece": ([e.calibration.ece for e in evaluations], False),
        "ece_t": ([e.calibration.ece_after_temperature for e in evaluations], False),
    }
    for j in range(len(columns)):
        metrics[f"p50_{j}"] = ([r["cells"][j]["p50"] for r in rows], False)
        metrics[f"cost_{j}"] = ([r["cells"][j]["cost"] for r in rows], False)
    for key, (values, higher) in metrics.items():
        for i in _best(values, higher=higher):
            rows[i]["best"].add(key)
    return rows


def _variant(result: RunResult, name: str) -> Variant | None:
    return next((v for v in result.variants if v.name == name), None)


def _efficiency_view(result: RunResult, e: Evaluation) -> list[dict[str, Any]]:
    targets = {t.name: t for t in result.targets}
    out = []
    for f in e.efficiency:
        out.append({"efficiency": f, "target": targets.get(f.target), "budget": _budget(f, targets.get(f.target))})
    return out


def _budget(f: Efficiency, target: Target | None) -> dict[str, str]:
    budget = target.memory_budget_mb if target is not None else None
    if f.within_memory_budget is None or _missing(budget):
        return {"status": "none", "text": "no memory budget", "short": "no memory budget"}
    amount = f"{budget:,.0f} MB" if float(budget).is_integer() else fmt_mb(budget)
    if f.within_memory_budget:
        return {"status": "ok", "text": f"memory within budget ({amount})", "short": "memory within budget"}
    return {"status": "bad", "text": f"memory over budget ({amount})", "short": "memory over budget"}


def _view(result: RunResult, extra: tuple[ReportSection, ...]) -> dict[str, Any]:
    figure = _Figures()
    names = {e.variant for e in result.evaluations}
    for s in extra:
        if s.where == "variant" and s.variant not in names:
            raise ValueError(
                f"ReportSection {s.id!r}: no evaluation of variant {s.variant!r} in this run "
                f"(evaluated: {sorted(names)})"
            )
    anchors = [f"v{i + 1}-{_slug(e.variant)}" for i, e in enumerate(result.evaluations)]
    taken = {"summary", "dataset", "provenance", *anchors}
    taken |= {f"{a}-{part}" for a in anchors for part in ("quality", "calibration", "slices", "efficiency")}
    for s in extra:
        if s.id in taken:
            raise ValueError(f"ReportSection {s.id!r}: the id is already used in the report; choose another")
        taken.add(s.id)
    columns = _summary_batches(result.targets, result.evaluations)
    variants = []
    for e, anchor in zip(result.evaluations, anchors, strict=True):
        slice_columns: dict[str, list[Any]] = {}
        for s in e.slices:
            slice_columns.setdefault(s.column, []).append(s)
        variants.append(
            {
                "anchor": anchor,
                "evaluation": e,
                "record": _variant(result, e.variant),
                "slice_columns": slice_columns,
                "efficiency": _efficiency_view(result, e),
                "figures": {
                    "confusion": figure(plots.confusion_matrix_plot(e.quality)),
                    "reliability": figure(plots.reliability_diagram(e.calibration)),
                    "slices": figure(plots.slice_plot(e.slices, e.quality.accuracy)) if e.slices else None,
                    "latency": figure(plots.latency_plot((e,))) if e.efficiency else None,
                },
                "extra": [s for s in extra if s.where == "variant" and s.variant == e.variant],
            }
        )
    comparison = None
    if len(result.evaluations) > 1 and any(e.efficiency for e in result.evaluations):
        comparison = figure(plots.latency_plot(result.evaluations))
    test_split = next((s for s in result.dataset.splits if s.name in {e.split for e in result.evaluations}), None)
    return {
        "run": result,
        "dataset": result.dataset,
        "test_split": test_split,
        "summary_columns": columns,
        "summary_rows": _summary(result, columns, anchors),
        "latency_comparison": comparison,
        "variants": variants,
        "top_sections": [s for s in extra if s.where == "top"],
        "bottom_sections": [s for s in extra if s.where == "bottom"],
        "palette": plots.PALETTE,
    }
