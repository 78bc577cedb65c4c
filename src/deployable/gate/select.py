"""Choosing what ships: the Pareto front of accuracy against latency, and per target the fastest passing variant."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from deployable.core.records import RunResult, Selection


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


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


def _latency(result: RunResult, variant: str, target: str) -> float | None:
    ev = next((e for e in result.evaluations if e.variant == variant), None)
    if ev is None:
        return None
    eff = next((f for f in ev.efficiency if f.target == target), None)
    if eff is None or not eff.latency:
        return None
    smallest = min(eff.latency, key=lambda lat: lat.batch_size)
    return smallest.p50_ms if math.isfinite(smallest.p50_ms) else None


def select(result: RunResult, passing: list[str]) -> list[Selection]:
    """Per target, the fastest passing variant (p50 at the smallest batch), then the smallest; with the Pareto front."""
    sizes = {v.name: v.size_bytes for v in result.variants}
    accuracy = {e.variant: e.quality.accuracy for e in result.evaluations}
    out = []
    for target in result.targets:
        candidates = [(v, _latency(result, v, target.name)) for v in passing]
        timed = [(v, lat) for v, lat in candidates if lat is not None]
        points = [
            ParetoPoint(name=v, latency_ms=lat, accuracy=accuracy.get(v, float("nan")), size_bytes=sizes.get(v))
            for v, lat in ((v, _latency(result, v, target.name)) for v in accuracy)
            if lat is not None
        ]
        front = tuple(points[i].name for i in pareto_front(points))
        if not passing:
            out.append(Selection(target=target.name, variant=None, reason="no variant passes every critical check",
                                 pareto=front))  # fmt: skip
            continue
        if timed:
            best, lat = min(timed, key=lambda t: (t[1], sizes.get(t[0]) or 0))
            batch = min(target.batch_sizes) if target.batch_sizes else 1
            reason = f"fastest of {len(passing)} passing: p50 {lat:.3g} ms at batch {batch}"
        else:  # efficiency was not measured: the smallest file
            best, lat = min(passing, key=lambda v: sizes.get(v) or 0), None
            reason = "smallest passing variant (efficiency was not measured)"
        out.append(
            Selection(
                target=target.name,
                variant=best,
                reason=reason,
                latency_ms=lat,
                size_bytes=sizes.get(best),
                passing=tuple(passing),
                pareto=front,
            )
        )
    return out
