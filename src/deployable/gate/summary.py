"""What a verdict says in one line per kind: warnings to act on, comparisons undecided at this sample size, and the
variants that share a comparison (same per-sample correctness as an earlier variant).

The terminal, the model card and the report count from here, so they agree. A comparison shared by several
variants is counted once (the first variant's); its copies (``Comparison.same_as``) are not counted again.
"""

from __future__ import annotations

from dataclasses import dataclass

from deployable.core.records import CheckResult, Comparison, Verdict

__all__ = ["VerdictSummary", "summarize"]


@dataclass(frozen=True)
class VerdictSummary:
    """Counts of a verdict.

    Attributes:
        warnings: WARN checks, a shared comparison's once (non-critical checks that failed; regressions past the
            margin that are not yet significant).
        undecided: comparisons in UNDECIDED state, each shared comparison once, in the verdict's order.
        shared: first variant -> the later variants with the same per-sample correctness (same comparisons).
    """

    warnings: tuple[CheckResult, ...]
    undecided: tuple[Comparison, ...]
    shared: dict[str, tuple[str, ...]]

    def undecided_line(self, *, slices_only: bool = False) -> str | None:
        """``11 comparisons undecided at n = 44–209; the largest would need about 3,926 samples (class=x)``, or None.

        With ``slices_only``, only the slice and class comparisons (not ``overall``) are counted.
        """
        rows = [c for c in self.undecided if not (slices_only and c.group == "overall")]
        if not rows:
            return None
        k = len(rows)
        sizes = sorted(c.n for c in rows)
        at = f"n = {sizes[0]:,}" if sizes[0] == sizes[-1] else f"n = {sizes[0]:,}–{sizes[-1]:,}"
        noun = "slice and class comparison" if slices_only else "comparison"
        line = f"{k} {noun}{'s' if k != 1 else ''} undecided at {at}"
        needed = [c for c in rows if c.n_needed]
        if needed:
            top = max(needed, key=lambda c: c.n_needed or 0)
            line += f"; the largest would need about {top.n_needed:,} samples" + (f" ({top.group})" if k > 1 else "")
        sizeless = k - len(needed)
        if sizeless:
            line += f"; {sizeless} with no disagreement, so no size estimate"
        return line

    def shared_lines(self) -> list[str]:
        """``onnx-fp32, fp16: same per-sample results as source (its comparisons)`` per group of variants."""
        return [f"{', '.join(later)}: same per-sample results as {first} (its comparisons)" for first, later in
                self.shared.items()]  # fmt: skip


def summarize(verdict: Verdict) -> VerdictSummary:
    """Count a verdict's warnings and undecided comparisons, each shared comparison once."""
    undecided_keys = {
        (c.variant, c.details.get("group"))
        for c in verdict.checks
        if c.status == "UNDECIDED" and not c.details.get("same_as")
    }
    undecided = tuple(c for c in verdict.comparisons if c.same_as is None and (c.variant, c.group) in undecided_keys)
    warnings = tuple(c for c in verdict.checks if c.status == "WARN" and not c.details.get("same_as"))
    shared: dict[str, list[str]] = {}
    for c in verdict.comparisons:
        if c.same_as is not None and c.variant not in shared.get(c.same_as, []):
            shared.setdefault(c.same_as, []).append(c.variant)
    return VerdictSummary(warnings, undecided, {k: tuple(v) for k, v in shared.items()})
