"""Corruption robustness (accuracy against severity) and adversarial robustness (accuracy against budget)."""

from __future__ import annotations

import numpy as np

from deployable.core.records import (
    AdversarialMetrics,
    AttackResult,
    RobustnessMetrics,
)
from deployable.report.plots._svg import (
    _LEGEND_ROW,
    GRID,
    INK,
    LABEL,
    PALETTE,
    TICK,
    TICK_LEN,
    TITLE,
    _draw_legend,
    _empty,
    _f,
    _legend_rows,
    _nice_ticks,
    _pct,
    _Svg,
    _text_width,
    _tick_text,
)

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
