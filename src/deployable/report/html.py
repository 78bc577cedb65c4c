"""``results.json`` and the self-contained ``report.html`` of a run.

The report is one HTML file with its CSS and figures inline: it makes no network request, needs no font and can be
mailed, archived or opened from a CI artifact as it is. It is rendered from ``templates/report.html`` with jinja2
(autoescaping on); the template gets a small view model built here, so it only lays out numbers.

Later stages add their own sections without editing this module's callers: pass :class:`ReportSection` objects
(pre-rendered HTML) to :func:`write_report`, or extend the template and override its named blocks.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jinja2
from markupsafe import Markup

from deployable.core.records import Efficiency, Evaluation, LatencyStats, RunResult, Target, Variant
from deployable.report import plots
from deployable.report._format import (
    atomic_write_text,
    fmt_bytes,
    fmt_compact_json,
    fmt_date,
    fmt_int,
    fmt_json,
    fmt_mb,
    fmt_ms,
    fmt_num,
    fmt_pct,
    fmt_pts,
    fmt_seconds,
    fmt_short,
    fmt_sig,
    fmt_signed,
    fmt_times,
    fmt_usd,
    is_missing,
    kept_in_float,
    size_ratio_text,
)

__all__ = ["ReportSection", "render_report", "write_report", "write_results_json"]

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class ReportSection:
    """An extra section a later stage (optimize, robustness, OOD, audit, gate) adds to the report.

    Attributes:
        id: HTML anchor, unique in the page (letters, digits, ``-``, ``_``).
        title: heading, shown in the navigation too (top-level sections only).
        html: the section body. Inserted as is: build it with an autoescaping template, never from raw strings.
        where: ``"top"`` after the summary and the optimization overview (a gate verdict), ``"bottom"`` after the
            dataset section and before provenance (audit findings, OOD), or ``"variant"`` at the end of one
            variant's block.
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


def write_results_json(result: RunResult, path: Path) -> Path:
    """Write ``result.to_dict()`` as indented, standard JSON (``RunResult.load`` reads it back).

    Args:
        result: the run.
        path: destination, usually ``<run folder>/results.json``; written atomically.

    Returns:
        ``path``.
    """
    text = json.dumps(result.to_dict(), indent=2, ensure_ascii=False, allow_nan=False)
    return atomic_write_text(Path(path), text + "\n")


def write_report(result: RunResult, path: Path, *, extra_sections: Iterable[ReportSection] = ()) -> Path:
    """Render the self-contained HTML report of a run and write it atomically.

    Args:
        result: the run.
        path: destination, usually ``<run folder>/report.html``.
        extra_sections: sections added by later stages (see :class:`ReportSection`).

    Returns:
        ``path``.
    """
    return atomic_write_text(Path(path), render_report(result, extra_sections=extra_sections))


def render_report(result: RunResult, *, extra_sections: Iterable[ReportSection] = ()) -> str:
    """The report as an HTML string (what :func:`write_report` writes)."""
    extra = tuple(extra_sections)
    env = _environment()
    return env.get_template("report.html").render(**_view(result, extra))


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
        compact_json=fmt_compact_json,
        signed=fmt_signed,
        pts=fmt_pts,
        sig=fmt_sig,
        times=fmt_times,
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
    finite = [(i, v) for i, v in enumerate(values) if not is_missing(v) and math.isfinite(v)]
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
        variant = _variant(result, e.variant)
        rows.append(
            {
                "evaluation": e,
                "anchor": anchor,
                "variant": variant,
                "in_float": kept_in_float(variant.recipe) if variant else "",
                "cells": cells,
                "best": set(),
            }
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
    # a rejected or no-gain variant is out of the running: the best value of a column is among the accepted ones
    rejected = [r["variant"] is not None and r["variant"].status in ("rejected", "no gain") for r in rows]
    for key, (values, higher) in metrics.items():
        values = [None if out else v for v, out in zip(values, rejected, strict=True)]
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
    if f.within_memory_budget is None or is_missing(budget):
        return {"status": "none", "text": "no memory budget", "short": "no memory budget"}
    amount = f"{budget:,.0f} MB" if float(budget).is_integer() else fmt_mb(budget)
    if f.within_memory_budget:
        return {"status": "ok", "text": f"memory within budget ({amount})", "short": "memory within budget"}
    return {"status": "bad", "text": f"memory over budget ({amount})", "short": "memory over budget"}


# ---------------------------------------------------------------------------------------------------------------------
# Optimization: the variants against the source, and how each was made
# ---------------------------------------------------------------------------------------------------------------------

ECE_WARN = 0.01  # an ECE increase above 1 point is flagged: quantization often breaks calibration


def _tolerance_limits(config: dict[str, Any]) -> dict[str, float]:
    """``optimize.tolerance`` of the run's configuration (empty when the run did not record it)."""
    tolerance = (config.get("optimize") or {}).get("tolerance") if isinstance(config, dict) else None
    if not isinstance(tolerance, dict):
        return {}
    return {k: float(tolerance[k]) for k in ("max_accuracy_drop", "min_agreement") if _number(tolerance.get(k))}


def _interval_view(x: Any) -> dict[str, float] | None:
    """``{value, low, high}`` of a recorded interval, or None when it is missing or malformed."""
    if isinstance(x, dict) and all(_number(x.get(k)) for k in ("value", "low", "high")):
        return {k: float(x[k]) for k in ("value", "low", "high")}
    return None


def _outcome(x: Any) -> str | None:
    return x if x in ("PASS", "FAIL", "UNDECIDED") else None


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _optimization(
    result: RunResult, columns: list[dict[str, Any]], anchors: dict[str, str], figure: _Figures
) -> dict[str, Any] | None:
    """The optimization overview: one row per variant against the source, and a Pareto plot per target."""
    evaluations = {e.variant: e for e in result.evaluations}
    records = {v.name: v for v in result.variants}
    names = list(dict.fromkeys([*evaluations, *records]))
    if len(names) < 2:
        return None
    source = result.source.name if result.source else None
    src_eval, src_record = evaluations.get(source or ""), records.get(source or "")
    src_size = src_record.size_bytes if src_record else None
    level = next((e.faithfulness.accuracy_delta.level for e in result.evaluations if e.faithfulness), 0.95)

    rows = []
    for name in names:
        e, v = evaluations.get(name), records.get(name)
        is_source = name == source
        status = "source" if is_source else (v.status if v else "accepted")
        accuracy = e.quality.accuracy if e else None
        faith = e.faithfulness if e else None
        delta = ci = None
        ece_delta = None
        if faith is not None:
            delta, ci = faith.accuracy_delta.value, faith.accuracy_delta
            ece_delta = faith.ece_delta
        elif e is not None and src_eval is not None and not is_source:  # no paired record: plain differences
            delta = e.quality.accuracy - src_eval.quality.accuracy
            ece_delta = e.calibration.ece - src_eval.calibration.ece
        worse = ci is not None and _number(ci.high) and ci.high < 0
        better = ci is not None and _number(ci.low) and ci.low > 0
        cells = []
        for col in columns:
            lat = _latency_at(e, col["name"], col["latency_batch"]) if e else None
            ref = _latency_at(src_eval, col["name"], col["latency_batch"]) if src_eval else None
            speedup = None
            if lat and ref and not is_source and lat.p50_ms > 0 and _number(lat.p50_ms) and _number(ref.p50_ms):
                speedup = ref.p50_ms / lat.p50_ms
            cells.append({"p50": lat.p50_ms if lat else None, "speedup": speedup})
        rows.append(
            {
                "name": name,
                "anchor": anchors.get(name),
                "kind": v.kind if v else None,
                "parent": v.parent if v else None,
                "status": status,
                "reason": v.reason if v and status in ("rejected", "no gain") else "",
                "size": v.size_bytes if v else None,
                "size_ratio": None if is_source else size_ratio_text(v.size_bytes if v else None, src_size),
                "accuracy": accuracy,
                "delta": delta,
                "ci": ci,
                "delta_class": "worse" if worse else "better" if better else "",
                "agreement": faith.agreement if faith else None,
                "ece_delta": ece_delta,
                "ece_warn": _number(ece_delta) and ece_delta > ECE_WARN,
                "cells": cells,
            }
        )

    split = next((e.split for e in result.evaluations), "test")
    plots_ = []
    for col in columns:
        points = []
        for name in names:
            e, v = evaluations.get(name), records.get(name)
            lat = _latency_at(e, col["name"], col["latency_batch"]) if e else None
            if e is None or lat is None:
                continue
            points.append(
                plots.ParetoPoint(
                    name=name,
                    latency_ms=lat.p50_ms,
                    accuracy=e.quality.accuracy,
                    size_bytes=v.size_bytes if v else None,
                    rejected=v is not None and v.status in ("rejected", "no gain"),
                )
            )
        if points:
            front = plots.pareto_front(points)
            svg = plots.pareto_plot(
                points, title=col["name"], batch_size=col["latency_batch"], y_label=f"{split} accuracy"
            )
            plots_.append(
                {
                    "target": col["name"],
                    "batch": col["latency_batch"],
                    "figure": figure(svg),
                    "front": [points[i].name for i in front],
                }
            )
    return {
        "source": source,
        "rows": rows,
        "columns": columns,
        "level": level,
        "split": split,
        "has_ci": any(r["ci"] is not None for r in rows),
        "any_warn": any(r["ece_warn"] for r in rows),
        "any_rejected": any(r["status"] == "rejected" for r in rows),
        "any_no_gain": any(r["status"] == "no gain" for r in rows),
        "plots": plots_,
    }


_SETTINGS = {
    "opset": "ONNX opset",
    "level": "optimization level",
    "method": "calibration method",
    "percentile": "calibration percentile",
    "per_channel": "per-channel scales",
    "reduce_range": "reduced range (7-bit weights)",
    "weight_type": "weight type",
    "quantized_nodes": "nodes quantized",
}
_RECIPE_PARTS = {
    "recipe",
    "parity",
    "transformer_fusions",
    "nodes_before",
    "nodes_after",
    "op_types_after",
    "tolerance_check",
    "search",
    "excluded_nodes",
    "most_sensitive",
    "note",
}


def _setting_text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return fmt_int(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _records(value: Any, *keys: str) -> list[dict[str, Any]] | None:
    """``value`` when it is a list of objects holding ``keys`` (the shape the template expects), else None."""
    if isinstance(value, list) and all(isinstance(x, dict) and set(keys) <= set(x) for x in value):
        return value
    return None


def _counts(value: Any) -> list[tuple[str, int]] | None:
    """An ``{op: count}`` mapping as pairs, most frequent first; None when ``value`` is not one."""
    if isinstance(value, dict) and all(_number(c) for c in value.values()):
        return sorted(((str(k), int(c)) for k, c in value.items()), key=lambda kc: (-kc[1], kc[0]))
    return None


def _num_or_none(x: Any) -> float | None:
    return x if _number(x) else None


def _node_row(x: dict[str, Any]) -> dict[str, Any]:
    """A graph node of a quantization record: name, op type, sensitivity (relative output error), why."""
    return {
        "node": str(x["node"]),
        "op_type": str(x.get("op_type") or ""),
        "sensitivity": _num_or_none(x.get("sensitivity")),
        "why": str(x.get("why") or ""),
    }


def _recipe_view(recipe: dict[str, Any], limits: dict[str, float]) -> dict[str, Any]:
    """The recipe of a variant, by part, for the template; what it does not know goes to ``other`` as JSON."""
    other: dict[str, Any] = {k: v for k, v in recipe.items() if k not in _RECIPE_PARTS and k not in _SETTINGS}
    settings = [(label, _setting_text(recipe[k])) for k, label in _SETTINGS.items() if k in recipe]
    view: dict[str, Any] = {"name": str(recipe.get("recipe", "")), "settings": settings}
    view.update(dict.fromkeys(("parity", "fusion", "ops_after", "tolerance", "search", "excluded", "most_sensitive")))
    view["note"] = None

    parity = recipe.get("parity")
    if isinstance(parity, dict) and all(_number(parity.get(k)) for k in ("max_abs_diff", "agreement")):
        allowed = _num_or_none(parity.get("allowed_abs_diff"))
        view["parity"] = {
            "n": _num_or_none(parity.get("n")),
            "max_abs_diff": parity["max_abs_diff"],
            "allowed_abs_diff": allowed,
            "agreement": parity["agreement"],
            "ok": parity["agreement"] == 1.0 and (allowed is None or parity["max_abs_diff"] <= allowed),
        }
    elif "parity" in recipe:
        other["parity"] = parity

    fusions = _counts(recipe["transformer_fusions"]) if "transformer_fusions" in recipe else None
    if fusions is None and "transformer_fusions" in recipe:
        other["transformer_fusions"] = recipe["transformer_fusions"]
    nodes = {}
    for key in ("nodes_before", "nodes_after"):
        if _number(recipe.get(key)):
            nodes[key] = recipe[key]
        elif key in recipe:
            other[key] = recipe[key]
    if fusions is not None or nodes:
        before, after = nodes.get("nodes_before"), nodes.get("nodes_after")
        view["fusion"] = {
            "ops": fusions,
            "before": before,
            "after": after,
            "change": after / before - 1 if before and after is not None else None,
        }
    ops_after = _counts(recipe.get("op_types_after"))
    if ops_after is not None:
        view["ops_after"] = ops_after
    elif "op_types_after" in recipe:
        other["op_types_after"] = recipe["op_types_after"]

    check = recipe.get("tolerance_check")
    if isinstance(check, dict) and all(_number(check.get(k)) for k in ("accuracy_drop", "agreement")):
        max_drop, min_agreement = limits.get("max_accuracy_drop"), limits.get("min_agreement")
        view["tolerance"] = {
            "split": str(check.get("split") or "tolerance"),
            "n": check.get("n") if _number(check.get("n")) else None,
            "accuracy": _num_or_none(check.get("accuracy")),
            "source_accuracy": _num_or_none(check.get("source_accuracy")),
            "accuracy_drop": check["accuracy_drop"],
            "agreement": check["agreement"],
            "change": _interval_view(check.get("accuracy_change")),
            "changed_share": _interval_view(check.get("changed_share")),
            "max_drop": max_drop,
            "max_changed": None if min_agreement is None else 1.0 - min_agreement,
            "accuracy_outcome": _outcome(check.get("accuracy_outcome")),
            "agreement_outcome": _outcome(check.get("agreement_outcome")),
            "outcome": _outcome(check.get("outcome")),
            "n_needed": check.get("n_needed") if _number(check.get("n_needed")) else None,
            "alpha": _num_or_none(check.get("alpha")),
            "pooled": str(check["pooled"]) if isinstance(check.get("pooled"), str) else "",
        }
    elif "tolerance_check" in recipe:
        other["tolerance_check"] = check

    search = recipe.get("search")
    if isinstance(search, bool):
        view["settings"].append(("accuracy-aware search", "on" if search else "off"))
    elif _records(search, "excluded", "accuracy_drop", "agreement", "ok") is not None:
        view["search"] = [
            {
                "excluded": _num_or_none(x["excluded"]),
                "split": str(x.get("split") or ""),
                "n": x.get("n") if _number(x.get("n")) else None,
                "change": _interval_view(x.get("accuracy_change")),
                "accuracy_drop": _num_or_none(x["accuracy_drop"]),
                "agreement": _num_or_none(x["agreement"]),
                "outcome": _outcome(x.get("outcome")) or ("PASS" if x["ok"] else None),
                "n_needed": x.get("n_needed") if _number(x.get("n_needed")) else None,
            }
            for x in search
        ]
    elif "search" in recipe:
        other["search"] = search

    excluded = _records(recipe.get("excluded_nodes"), "node")
    if excluded:
        rows = [_node_row(x) for x in excluded]
        whys = {r["why"] for r in rows}
        view["excluded"] = {"rows": rows, "common_why": whys.pop() if len(whys) == 1 else None}
    elif "excluded_nodes" in recipe and excluded is None:
        other["excluded_nodes"] = recipe["excluded_nodes"]

    sensitive = _records(recipe.get("most_sensitive"), "node")
    if sensitive:
        kept = {str(x["node"]) for x in excluded or ()}
        view["most_sensitive"] = [{**_node_row(x), "kept": str(x["node"]) in kept} for x in sensitive]
    elif "most_sensitive" in recipe and sensitive is None:
        other["most_sensitive"] = recipe["most_sensitive"]

    if isinstance(recipe.get("note"), str) and recipe["note"]:
        view["note"] = recipe["note"]
    elif recipe.get("note") not in (None, ""):
        other["note"] = recipe["note"]
    view["other"] = sorted(other.items())
    return view


ROBUSTNESS_WARN = 0.01  # a variant whose mean corruption accuracy is over 1 point below its source's is flagged


def _robustness_view(e: Evaluation, source: Any) -> dict[str, Any] | None:
    """Rows per corruption (accuracy per severity, mean flip rate, worst ECE) and the comparison with the source."""
    rob = e.robustness
    if rob is None:
        return None
    severities = sorted({r.severity for r in rob.results})
    rows = []
    for name, rs in rob.by_corruption().items():
        by_sev = {r.severity: r for r in rs}
        rows.append(
            {
                "name": name.replace("_", " "),
                "accuracy": [by_sev[s].accuracy if s in by_sev else None for s in severities],
                "flip_rate": float(sum(r.flip_rate for r in rs) / len(rs)),
                "worst_ece": max(r.ece for r in rs),
            }
        )
    delta = None if source is None else rob.mean_corruption_accuracy - source.mean_corruption_accuracy
    return {
        "severities": severities,
        "rows": rows,
        "delta": delta,
        "less_robust": delta is not None and delta < -ROBUSTNESS_WARN,
    }


def _attack_view(e: Evaluation) -> dict[str, Any] | None:
    """Rows per attack and norm with the accuracy at each budget."""
    adv = e.adversarial
    if adv is None:
        return None
    budgets = sorted({r.epsilon for r in adv.results})
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for r in adv.results:
        name = "char edits" if r.norm == "edits" else f"{r.attack.upper()} L{'∞' if r.norm == 'inf' else r.norm}"
        row = rows.setdefault((r.attack, r.norm), {"name": name, "accuracy": {}, "success": {}})
        row["accuracy"][r.epsilon] = r.accuracy
        row["success"][r.epsilon] = r.success_rate
    return {"budgets": budgets, "rows": list(rows.values())}


def _verdict_view(result: RunResult) -> dict[str, Any] | None:
    v = result.verdict
    if v is None:
        return None
    from deployable.gate.summary import VerdictSummary, summarize

    summary = summarize(v)
    failed = sorted((c for c in v.checks if c.status in ("FAIL", "ERROR")), key=lambda c: c.status != "ERROR")
    chosen = {s.variant for s in v.selections if s.variant}
    # the chosen variants' comparisons lead (or the source's when nothing passed); the others fold away. A comparison
    # shared by variants with the same per-sample results shows once; undecided slices fold under one line.
    lead = chosen or {c.variant for c in v.comparisons[:1]}
    undecided = {(c.variant, c.group) for c in summary.undecided}
    lead_rows = [c for c in v.comparisons if c.variant in lead and (c.same_as is None or c.same_as not in lead)]

    def folded(c: Any) -> bool:
        return c.group != "overall" and (c.same_as or c.variant, c.group) in undecided

    return {
        "status": v.status,
        "passed": v.passed,
        "baseline": v.baseline,
        "selections": v.selections,
        "failed": failed,
        "warnings": list(summary.warnings),
        "undecided_line": summary.undecided_line(),
        "shared": summary.shared_lines(),
        "comparisons": [c for c in lead_rows if not folded(c)],
        "undecided_comparisons": [c for c in lead_rows if folded(c)],
        "undecided_slices_line": VerdictSummary((), tuple(c for c in lead_rows if folded(c)), {}).undecided_line(),
        "other_comparisons": [c for c in v.comparisons if c.variant not in lead and c.same_as is None],
        "checks": v.checks,
    }


_BADGE = {"critical": "bad", "high": "bad", "medium": "warn", "low": "none", "info": "none"}


def _audit_view(result: RunResult, figure: Any) -> dict[str, Any] | None:
    """Findings grouped by check (most severe first), the overlap table and plot, the checks that ran."""
    from deployable.core.records import SEVERITIES

    a = result.audit
    if a is None:
        return None
    from deployable.audit.scan import convert_hint

    rank = {sev: i for i, sev in enumerate(SEVERITIES)}
    groups: dict[str, list[dict[str, Any]]] = {}
    for i, f in enumerate(sorted(a.findings, key=lambda f: (rank[f.severity], f.check))):
        previews = f.details.get("preview") if isinstance(f.details.get("preview"), dict) else {}
        hint = convert_hint(f) if f.check == "scan" and f.severity in ("critical", "high", "medium") else None
        n = f.details.get("count") if isinstance(f.details.get("count"), int) else len(f.evidence)
        groups.setdefault(f.check, []).append(
            {
                "anchor": f"finding-{i + 1}",
                "severity": f.severity,
                "badge": _BADGE[f.severity],
                "code": f.code,
                "message": f.message,
                "file": f.file,
                "member": f.member,
                "hint": hint,
                "evidence": f.evidence,
                "n_evidence": max(n, len(f.evidence)),
                "previews": list(previews.items()),
            }
        )
    blocked = next((c for c in a.checks if c.name == "scan" and c.details.get("blocked")), None)
    from deployable.report.dataset_card import missing_card_fields

    overlap = any(s.n_exact + s.n_near and s.accuracy is not None for s in a.leakage)
    return {
        "counts": a.counts,
        "checks": a.checks,
        "leakage": a.leakage,
        "leakage_plot": figure(plots.leakage_plot(a.leakage)) if overlap else None,
        "groups": [{"check": k, "findings": v} for k, v in groups.items()],
        "scanned": a.scanned_files,
        "blocking": "The scan refused the model files: the model was not loaded and the data was audited alone."
        if blocked
        else None,
        "missing_card": missing_card_fields(result),
    }


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
    taken = {"verdict", "summary", "optimization", "dataset", "audit", "provenance", *anchors}
    parts = ("quality", "calibration", "slices", "robustness", "adversarial", "ood", "efficiency", "recipe")
    taken |= {f"{a}-{part}" for a in anchors for part in parts}
    for s in extra:
        if s.id in taken:
            raise ValueError(f"ReportSection {s.id!r}: the id is already used in the report; choose another")
        taken.add(s.id)
    columns = _summary_batches(result.targets, result.evaluations)
    source = result.source.name if result.source else None
    source_rob = next((e.robustness for e in result.evaluations if e.variant == source), None)
    limits = _tolerance_limits(result.config)
    variants = []
    for e, anchor in zip(result.evaluations, anchors, strict=True):
        slice_columns: dict[str, list[Any]] = {}
        for s in e.slices:
            slice_columns.setdefault(s.column, []).append(s)
        record = _variant(result, e.variant)
        derived = e.variant != source and (e.faithfulness is not None or (record is not None and record.parent))
        variants.append(
            {
                "anchor": anchor,
                "evaluation": e,
                "record": record,
                "status": None if not derived else record.status if record else "accepted",
                "recipe": _recipe_view(record.recipe, limits) if derived and record else None,
                "ece_warn": e.faithfulness is not None and e.faithfulness.ece_delta > ECE_WARN,
                "slice_columns": slice_columns,
                "efficiency": _efficiency_view(result, e),
                "figures": {
                    "confusion": figure(plots.confusion_matrix_plot(e.quality)),
                    "reliability": figure(plots.reliability_diagram(e.calibration)),
                    "slices": figure(plots.slice_plot(e.slices, e.quality.accuracy)) if e.slices else None,
                    "latency": figure(plots.latency_plot((e,))) if e.efficiency else None,
                    "ood": figure(plots.ood_plot(e.ood)) if e.ood else None,
                    "attacks": figure(plots.attack_plot(e.adversarial)) if e.adversarial else None,
                    "robustness": figure(
                        plots.robustness_plot(
                            e.robustness, source_rob if e.variant != source else None, source or "source"
                        )
                    )
                    if e.robustness
                    else None,
                },
                "robustness": _robustness_view(e, source_rob if e.variant != source else None),
                "attacks": _attack_view(e),
                "extra": [s for s in extra if s.where == "variant" and s.variant == e.variant],
            }
        )
    comparison = None
    if len(result.evaluations) > 1 and any(e.efficiency for e in result.evaluations):
        comparison = figure(plots.latency_plot(result.evaluations))
    by_name = {e.variant: anchor for e, anchor in zip(result.evaluations, anchors, strict=True)}
    optimization = _optimization(result, columns, by_name, figure)
    test_split = next((s for s in result.dataset.splits if s.name in {e.split for e in result.evaluations}), None)
    return {
        "verdict": _verdict_view(result),
        "audit": _audit_view(result, figure),
        "run": result,
        "dataset": result.dataset,
        "test_split": test_split,
        "summary_columns": columns,
        "summary_rows": _summary(result, columns, anchors),
        "latency_comparison": comparison,
        "optimization": optimization,
        "source_name": source,
        "variants": variants,
        "top_sections": [s for s in extra if s.where == "top"],
        "bottom_sections": [s for s in extra if s.where == "bottom"],
        "palette": plots.PALETTE,
    }
