"""Report figures as self-contained inline SVG strings.

Every function builds one matplotlib figure and returns it as an ``<svg>`` element ready to paste into HTML: no
XML prolog or DOCTYPE, no comments, no metadata, and text drawn as glyph paths (``svg.fonttype="path"``) so the
figure looks the same without any font installed and references nothing outside itself.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas rather than ``pyplot``: nothing is
registered in pyplot's global figure list (so nothing can leak) and the caller's interactive backend, if any, is
left alone. The output is deterministic (fixed ``svg.hashsalt``), so two runs with equal numbers give equal bytes.
When several figures share one HTML page, give each its own id namespace with :func:`scope_ids`.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable, Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, PercentFormatter

from deployable.core.records import CalibrationMetrics, Evaluation, QualityMetrics, ReliabilityBin, SliceMetrics

__all__ = [
    "PALETTE",
    "confusion_matrix_plot",
    "latency_plot",
    "reliability_diagram",
    "scope_ids",
    "slice_plot",
]

# One palette for the whole report (the HTML uses the same values): series colours in order, plus roles.
PALETTE = ("#2f6db3", "#e0823d", "#3f9b6a", "#8a63b8", "#c8504d", "#6f7b87", "#b79a2c", "#2a9aa3")
BLUE, ORANGE, GREEN, RED, GREY = PALETTE[0], PALETTE[1], PALETTE[2], PALETTE[4], "#9aa4ae"
INK, MUTED, GRID, LIGHT = "#1f2933", "#5b6673", "#e4e7eb", "#cdd5de"
GAP_FILL = (1.0, 1.0, 1.0, 0.35)  # lightens the bar beneath where accuracy exceeds confidence

_STYLE = {
    "svg.fonttype": "path",  # glyphs as paths: the SVG needs no font, local or remote
    "svg.hashsalt": "deployable-report",  # deterministic ids and bytes
    "font.family": "DejaVu Sans",  # bundled with matplotlib
    "font.size": 8.5,
    "axes.titlesize": 9.5,
    "axes.titleweight": "bold",
    "axes.labelsize": 8.5,
    "axes.labelcolor": INK,
    "axes.edgecolor": LIGHT,
    "axes.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlecolor": INK,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "xtick.labelcolor": INK,
    "ytick.labelcolor": INK,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 7.5,
    "legend.frameon": False,
    "grid.color": GRID,
    "grid.linewidth": 0.7,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "hatch.linewidth": 0.6,
}

_MAX_LABEL = 18  # longer class / slice names are shortened in the figures (tables keep them whole)


# ---------------------------------------------------------------------------------------------------------------------
# SVG plumbing
# ---------------------------------------------------------------------------------------------------------------------


def _figure(width: float, height: float, **kwargs) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained", **kwargs)
    FigureCanvasAgg(fig)
    return fig


def _to_svg(fig: Figure, label: str) -> str:
    """Render ``fig`` to an inline ``<svg>`` string and release it."""
    buf = io.StringIO()
    try:
        # "tight" as a safety net: constrained layout can leave a long rotated label just outside the canvas.
        fig.savefig(
            buf,
            format="svg",
            bbox_inches="tight",
            pad_inches=0.04,
            metadata={"Creator": None, "Date": None, "Format": None, "Type": None},
        )
    finally:
        fig.clear()
    text = buf.getvalue()
    text = text[text.index("<svg") :]  # drop the XML prolog and the DOCTYPE (it names a DTD by URL)
    text = re.sub(r"<!--.*?-->\s*", "", text, flags=re.DOTALL)
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.DOTALL)
    # matplotlib's stylesheet is ``*{...}``; inline in HTML it would apply to the whole page, so scope it.
    text = text.replace('<style type="text/css">*{', '<style type="text/css">svg.dp-plot *{', 1)
    attrs = f' class="dp-plot" role="img" aria-label="{_xml_attr(label)}"'
    return text.replace("<svg", "<svg" + attrs, 1).strip() + "\n"


def _xml_attr(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


_ID = re.compile(r'\bid="([^"]+)"')
_HREF = re.compile(r'((?:xlink:)?href)="#([^"]+)"')
_URL = re.compile(r"url\(#([^)]+)\)")


def scope_ids(svg: str, prefix: str) -> str:
    """Prefix every ``id`` in ``svg`` and every internal reference to it (``href="#…"``, ``url(#…)``).

    Inline SVGs share the HTML document's id namespace; matplotlib names ids like ``figure_1`` and the glyph
    definitions by font, so two figures on one page would otherwise collide.
    """
    svg = _ID.sub(lambda m: f'id="{prefix}{m.group(1)}"', svg)
    svg = _HREF.sub(lambda m: f'{m.group(1)}="#{prefix}{m.group(2)}"', svg)
    return _URL.sub(lambda m: f"url(#{prefix}{m.group(1)})", svg)


def _empty(message: str, width: float = 4.0, height: float = 1.2) -> str:
    with matplotlib.rc_context(_STYLE):
        fig = _figure(width, height)
        ax = fig.add_subplot()
        ax.set_axis_off()
        ax.text(0.5, 0.5, message, ha="center", va="center", color=MUTED, transform=ax.transAxes)
        return _to_svg(fig, message)


def _short(text: str, limit: int = _MAX_LABEL) -> str:
    # Ellipsis in the middle: names that share a prefix ("intent_billing_refund", "intent_billing_invoice") stay
    # distinguishable by their ends.
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2 + (limit - 1) % 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head) :]


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


# ---------------------------------------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------------------------------------


def _reliability_panel(ax, hist_ax, bins: Sequence[ReliabilityBin], title: str) -> None:
    shown = [b for b in bins if b.count > 0 and _finite(b.accuracy) and _finite(b.confidence)]
    left = np.array([b.lower for b in shown])
    width = np.array([b.upper - b.lower for b in shown])
    acc = np.array([b.accuracy for b in shown])
    conf = np.array([b.confidence for b in shown])
    ax.plot([0, 1], [0, 1], ls="--", lw=1, color=MUTED, zorder=4)
    ax.bar(left, acc, width=width, align="edge", color=BLUE, alpha=0.85, edgecolor="white", lw=0.6, zorder=2)
    # The gap between mean confidence and accuracy is what ECE averages, weighted by bin size.
    ax.bar(
        left,
        conf - acc,
        bottom=acc,
        width=width,
        align="edge",
        facecolor=GAP_FILL,
        edgecolor=RED,
        lw=0.7,
        hatch="////",
        zorder=3,
    )
    ax.set(xlim=(0, 1), ylim=(0, 1), title=title, ylabel="accuracy")
    ax.set_aspect("auto")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.grid(True, axis="y")
    ax.tick_params(labelbottom=False)

    counts = np.array([b.count for b in bins], dtype=float)
    hist_ax.bar(
        [b.lower for b in bins],
        counts,
        width=[b.upper - b.lower for b in bins],
        align="edge",
        color=LIGHT,
        edgecolor="white",
        lw=0.6,
    )
    hist_ax.set(
        xlim=(0, 1), ylim=(0, max(1.0, counts.max(initial=0)) * 1.45), xlabel="confidence (top label)", ylabel="samples"
    )
    if len(bins) <= 20:  # name the counts: a wild bar is often a bin of two samples
        for b in bins:
            if b.count > 0:
                hist_ax.text(
                    (b.lower + b.upper) / 2, b.count, f"{b.count:,}", ha="center", va="bottom", fontsize=6, color=MUTED
                )
    hist_ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    hist_ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(2, integer=True))
    if not shown:
        ax.text(0.5, 0.5, "no samples", ha="center", va="center", color=MUTED, transform=ax.transAxes)


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
    with matplotlib.rc_context(_STYLE):
        fig = _figure(7.0, 3.5)
        grid = fig.add_gridspec(2, 2, height_ratios=(3.2, 1.0))
        panels = (
            (cal.reliability, f"Before · ECE {_pct(cal.ece)}"),
            (
                cal.reliability_after_temperature,
                f"After T = {_num(cal.temperature)} · ECE {_pct(cal.ece_after_temperature)}",
            ),
        )
        for col, (bins, title) in enumerate(panels):
            ax = fig.add_subplot(grid[0, col])
            hist_ax = fig.add_subplot(grid[1, col], sharex=ax)
            _reliability_panel(ax, hist_ax, bins, title)
            if col == 1:
                ax.set_ylabel("")
                hist_ax.set_ylabel("")
        handles = [
            Patch(color=BLUE, alpha=0.85, label="accuracy"),
            Patch(facecolor=GAP_FILL, edgecolor=RED, hatch="////", label="gap to confidence"),
            Line2D([], [], ls="--", color=MUTED, label="perfect calibration"),
            Patch(color=LIGHT, label="samples per bin"),
        ]
        fig.legend(handles=handles, loc="outside lower center", ncol=4)
        return _to_svg(fig, "Reliability diagram before and after temperature scaling")


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%" if _finite(x) else "—"


def _num(x: float) -> str:
    return f"{x:.2f}" if _finite(x) else "—"


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
    k = cm.shape[0] if cm.ndim == 2 else 0
    if k == 0:
        return _empty("no confusion matrix")
    labels = [c.label for c in quality.per_class] if len(quality.per_class) == k else [str(i) for i in range(k)]
    totals = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)
    side = float(np.clip(0.42 * k + 1.9, 3.2, 6.8))
    with matplotlib.rc_context(_STYLE):
        fig = _figure(side + 0.7, side)
        ax = fig.add_subplot()
        image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
        for spine in ax.spines.values():
            spine.set_visible(False)
        fontsize = 8 if k <= 6 else 7.5 if k <= 9 else 7
        for i in range(k):
            for j in range(k):
                if cm[i, j] == 0 and k > 6:
                    continue  # keep large matrices readable: empty cells stay blank
                text = f"{int(cm[i, j]):,}"
                if k <= 6:
                    text += f"\n{100 * share[i, j]:.0f}%"
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=fontsize,
                    linespacing=1.15,
                    color="white" if share[i, j] > 0.55 else INK,
                )
        short = [_short(label) for label in labels]
        ax.set_xticks(
            range(k),
            short,
            rotation=40 if k > 4 or max(map(len, short)) > 8 else 0,
            ha="right" if k > 4 or max(map(len, short)) > 8 else "center",
            rotation_mode="anchor",
        )
        ax.set_yticks(range(k), short)
        ax.set_xticks(np.arange(k + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(k + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="white", linewidth=1.2)
        ax.tick_params(which="minor", length=0)
        ax.tick_params(which="major", length=0)
        ax.set(xlabel="predicted class", ylabel="true class")
        bar = fig.colorbar(image, ax=ax, fraction=0.045, pad=0.03)
        bar.set_label("share of true class", color=MUTED)
        bar.ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        bar.outline.set_visible(False)
        return _to_svg(fig, "Confusion matrix, normalised by true class")


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

    ys, labels, values, lows, highs, colors, headers = [], [], [], [], [], [], []
    y = 0.0
    for column, group in columns.items():
        headers.append((y, column))
        y += 0.9
        for s in group:
            iv = s.accuracy
            ys.append(y)
            labels.append(f"{_short(s.value)}  (n={s.n:,})")
            v = iv.value if _finite(iv.value) else 0.0
            values.append(v)
            lows.append(max(0.0, v - iv.low) if _finite(iv.low) and _finite(iv.value) else 0.0)
            highs.append(max(0.0, iv.high - v) if _finite(iv.high) and _finite(iv.value) else 0.0)
            worse = _finite(overall_accuracy) and _finite(iv.high) and iv.high < overall_accuracy
            colors.append(RED if worse else BLUE)
            y += 1.0
        y += 0.4

    height = float(np.clip(0.24 * y + 0.9, 1.8, 12.0))
    with matplotlib.rc_context(_STYLE):
        fig = _figure(6.4, height)
        ax = fig.add_subplot()
        ax.barh(ys, values, height=0.68, color=colors, alpha=0.85, zorder=2)
        ax.errorbar(values, ys, xerr=[lows, highs], fmt="none", ecolor=INK, elinewidth=1, capsize=2.5, zorder=3)
        for hy, column in headers:
            ax.text(
                -0.01,
                hy,
                column,
                transform=ax.get_yaxis_transform(),
                ha="right",
                va="center",
                fontweight="bold",
                color=INK,
                fontsize=8.5,
            )
        handles = [Patch(color=BLUE, alpha=0.85, label="accuracy (95% CI)")]
        if any(c == RED for c in colors):
            handles.append(Patch(color=RED, alpha=0.85, label="CI below overall"))
        if _finite(overall_accuracy):
            ax.axvline(overall_accuracy, color=ORANGE, lw=1.3, ls="--", zorder=4)
            handles.append(Line2D([], [], color=ORANGE, ls="--", label=f"overall {_pct(overall_accuracy)}"))
        ax.set_yticks(ys, labels)
        ax.set_ylim(y - 0.4, -0.6)
        ax.set_xlim(0, 1.02)  # room for a whisker that ends at 100%
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_xlabel("accuracy")
        ax.grid(True, axis="x", zorder=0)
        ax.tick_params(axis="y", length=0)
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles))
        return _to_svg(fig, "Accuracy per slice with 95% confidence intervals")


# ---------------------------------------------------------------------------------------------------------------------
# Efficiency
# ---------------------------------------------------------------------------------------------------------------------


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
    variants = list(dict.fromkeys(e.variant for e in evaluations))
    targets: dict[str, dict[tuple[str, int], tuple[float, float, float]]] = {}
    for e in evaluations:
        for eff in e.efficiency:
            cells = targets.setdefault(eff.target, {})
            for lat in eff.latency:
                cells[(e.variant, lat.batch_size)] = (lat.p50_ms, lat.p95_ms, lat.p99_ms)
    if not targets:
        return _empty("no latency measurements")

    color = {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(variants)}
    slots = [len({b for _, b in cells}) * max(1, len({v for v, _ in cells})) for cells in targets.values()]
    width = float(np.clip(1.6 + sum(0.42 * s + 0.9 for s in slots), 4.2, 9.5))
    with matplotlib.rc_context(_STYLE):
        fig = _figure(width, 3.0)
        axes = fig.subplots(1, len(targets), squeeze=False, width_ratios=[s + 2 for s in slots])[0]
        log_targets = []
        for ax, (target, cells) in zip(axes, targets.items(), strict=True):
            batches = sorted({b for _, b in cells})
            present = [v for v in variants if any((v, b) in cells for b in batches)]
            bar_w = 0.8 / max(1, len(present))
            finite = [x for triple in cells.values() for x in triple if _finite(x) and x > 0]
            log = bool(finite) and max(finite) / min(finite) > 30
            for i, v in enumerate(present):
                xs, p50, p95, p99 = [], [], [], []
                for j, b in enumerate(batches):
                    if (v, b) not in cells:
                        continue
                    xs.append(j - 0.4 + bar_w * (i + 0.5))
                    p50.append(cells[(v, b)][0])
                    p95.append(cells[(v, b)][1])
                    p99.append(cells[(v, b)][2])
                ax.bar(xs, p50, width=bar_w * 0.92, color=color[v], alpha=0.88, zorder=2)
                ax.scatter(xs, p95, marker="_", s=90, linewidths=1.6, color=INK, zorder=3)
                ax.scatter(xs, p99, marker="v", s=14, color=INK, zorder=3)
            if log:
                log_targets.append(target)
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
                ax.set_ylim(min(finite) / 1.6, max(finite) * 1.6)
            else:
                ax.set_ylim(0, (max(finite) if finite else 1.0) * 1.12)
            ax.set_xticks(range(len(batches)), [f"batch {b}" for b in batches])
            ax.set_xlim(-0.6, len(batches) - 0.4)
            ax.set_title(_short(target, 28) + ("  (log scale)" if log else ""), fontsize=8.5)
            ax.grid(True, axis="y", which="major", zorder=0)
            ax.tick_params(axis="x", length=0)
        axes[0].set_ylabel("latency per call (ms)")
        handles = [Patch(color=color[v], alpha=0.88, label=f"{_short(v, 24)} p50") for v in variants]
        handles += [
            Line2D([], [], ls="", marker="_", markersize=9, mew=1.6, color=INK, label="p95"),
            Line2D([], [], ls="", marker="v", markersize=4, color=INK, label="p99"),
        ]
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5))
        label = "Latency per target and batch size"
        if log_targets:
            label += f" (log scale: {', '.join(log_targets)})"
        return _to_svg(fig, label)
