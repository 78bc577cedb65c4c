"""Report figures as self-contained inline SVG strings, written by hand.

Every function returns one ``<svg>`` element ready to paste into HTML: no XML prolog, no comments, no external
reference of any kind. Text is real ``<text>`` (selectable, searchable, crisp at any zoom) in a generic font stack;
the ``viewBox`` with ``width="100%"`` and a ``max-width`` of the natural size lets a figure shrink to its column but
never grow past the size its text was laid out for.

No plotting library is involved: a figure is a few dozen rectangles, paths and labels, and building the string costs
well under a millisecond where matplotlib needed a few hundred. The price is that the layout must know how wide a
label is before any browser has measured it: ``_svg._text_width`` uses the advance widths of DejaVu Sans, the widest
of the common fonts in the stack, so a label has room in whichever font the reader's system picks.

The output is deterministic (equal inputs give equal bytes). A figure names its few ids (a hatch pattern, a colour
ramp) with fixed ``dp-`` names; when several figures share one HTML page, give each its own namespace with
:func:`scope_ids`. ``_svg`` holds the canvas and axes; each other module is one family of figures.
"""

from deployable.gate.select import ParetoPoint, pareto_front
from deployable.report.plots._svg import BLUE, GREEN, GREY, MUTED, ORANGE, PALETTE, RED, scope_ids
from deployable.report.plots.audit import leakage_plot
from deployable.report.plots.calibration import reliability_diagram
from deployable.report.plots.efficiency import latency_plot
from deployable.report.plots.ood import ood_plot
from deployable.report.plots.pareto import pareto_plot
from deployable.report.plots.quality import confusion_matrix_plot
from deployable.report.plots.robustness import attack_plot, robustness_plot
from deployable.report.plots.slices import slice_plot

__all__ = [
    "BLUE",
    "GREEN",
    "GREY",
    "MUTED",
    "ORANGE",
    "PALETTE",
    "RED",
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
