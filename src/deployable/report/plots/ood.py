"""Out-of-distribution detection: ROC curves per score."""

from __future__ import annotations

from deployable.core.records import (
    OodMetrics,
)
from deployable.report.plots._svg import (
    _LEGEND_ROW,
    BLUE,
    GRID,
    LABEL,
    MUTED,
    ORANGE,
    PALETTE,
    TICK,
    TICK_LEN,
    TITLE,
    _draw_legend,
    _empty,
    _f,
    _legend_rows,
    _nice_ticks,
    _short,
    _Svg,
    _text_width,
    _tick_text,
)

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
