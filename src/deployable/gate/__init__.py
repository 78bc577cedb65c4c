"""The gate stage: policy checks, the paired comparison with production, and the variant chosen per target.

A variant passes when none of its critical checks FAILs or ERRORs; every comparison with the baseline (overall and
per slice) is a check too: PASS when the paired interval shows the candidate no worse than the margin, FAIL when it
shows it worse. A comparison the sample size does not decide (INCONCLUSIVE) is a FAIL with
``policy.comparison.inconclusive: fail``; otherwise a WARN when its point estimate is past the margin (a regression
not yet significant) and UNDECIDED when it is not (a state, not a warning). Variants with the same per-sample
correctness as an earlier one share its comparison (computed once, ``Comparison.same_as``). For each target the
cheapest passing variant is chosen (latency at the target's smallest batch, then file size); the verdict is PASS
when every target has one.
"""

from deployable.gate._gate import Baseline, gate, load_baseline
from deployable.gate.select import ParetoPoint, pareto_front, select
from deployable.gate.summary import VerdictSummary, summarize

__all__ = ["Baseline", "ParetoPoint", "VerdictSummary", "gate", "load_baseline", "pareto_front", "select", "summarize"]
