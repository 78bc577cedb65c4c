"""Speed and size as part of acceptance: a variant that is neither faster than its parent nor smaller is no gain.

A variant within tolerance is only worth shipping if it buys something over the model it was made from. After the
evaluation has timed every variant on every target, :func:`judge_gain` compares each accepted variant with its
parent: it is a gain when, on some target and at some batch size, its p50 latency is at least ``min_gain`` lower
than its parent's, or when its file is at least ``min_gain`` smaller. Otherwise its status becomes ``"no gain"``,
with the numbers in the reason, and the gate never selects it. Below ``min_gain`` a difference is within the timing
noise of a shared machine. A variant whose latency was not measured on any target it shares with its parent is
judged on size alone only when it is smaller; otherwise its gain is unknown and it stays accepted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from deployable.core.records import Evaluation, Variant

NO_GAIN = "no gain"


def _p50s(evaluation: Evaluation | None) -> dict[tuple[str, int], float]:
    """``(target, batch_size) -> p50 ms`` of one evaluation's finite measurements."""
    if evaluation is None:
        return {}
    return {
        (eff.target, lat.batch_size): lat.p50_ms
        for eff in evaluation.efficiency
        for lat in eff.latency
        if math.isfinite(lat.p50_ms) and lat.p50_ms > 0
    }


def gain_reason(variant: Variant, parent: Variant, evaluations: dict[str, Evaluation], min_gain: float) -> str:
    """Why ``variant`` is no gain over ``parent`` ("" when it is one, or when no measurement can tell).

    Example: ``"not faster than onnx-fused on any target (edge-cpu batch 1: p50 8.67 ms vs 7.72 ms; ...) nor
    smaller (23.4 MB vs 22.9 MB)"``.
    """
    ours, theirs = _p50s(evaluations.get(variant.name)), _p50s(evaluations.get(parent.name))
    shared = [k for k in ours if k in theirs]  # in the evaluation's order of targets and batch sizes
    smaller = variant.size_bytes <= (1.0 - min_gain) * parent.size_bytes
    if smaller or any(ours[k] <= (1.0 - min_gain) * theirs[k] for k in shared):
        return ""
    if not shared:
        return ""  # speed unmeasured: not smaller, but whether it is faster is unknown
    timings = "; ".join(f"{t} batch {b}: p50 {ours[t, b]:.3g} ms vs {theirs[t, b]:.3g} ms" for t, b in shared)
    return (
        f"not faster than {parent.name} on any target ({timings}) nor smaller "
        f"({variant.size_bytes / 1e6:.1f} MB vs {parent.size_bytes / 1e6:.1f} MB), by the {min_gain:.0%} that "
        "counts as a gain"
    )


def judge_gain(variants: Sequence[Variant], evaluations: Sequence[Evaluation], min_gain: float) -> list[Variant]:
    """The variants with every accepted one that gains nothing over its parent marked ``"no gain"`` (see module).

    Args:
        variants: the run's variants, the source first.
        evaluations: their evaluations, with efficiency measured on the run's targets.
        min_gain: the smallest relative improvement in p50 latency or in file size that counts (0.05 = 5%).

    Returns:
        The same variants in the same order; the source and rejected variants unchanged.
    """
    by_name = {v.name: v for v in variants}
    evaluated = {e.variant: e for e in evaluations}
    out = []
    for v in variants:
        parent = by_name.get(v.parent) if v.parent else None
        if v.status == "accepted" and parent is not None:
            reason = gain_reason(v, parent, evaluated, min_gain)
            if reason:
                v = v.replace(status=NO_GAIN, reason=reason)
        out.append(v)
    return out
