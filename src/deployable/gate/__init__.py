"""The gate stage: policy checks, the paired comparison with production, and the variant chosen per target.

A variant passes when none of its critical checks FAILs or ERRORs; every comparison with the baseline (overall and
per slice) is a check too: PASS when the paired interval shows the candidate no worse than the margin, FAIL when it
shows it worse, and INCONCLUSIVE (a WARN, or a FAIL when ``policy.comparison.inconclusive: fail``) otherwise. For each
target the cheapest passing variant is chosen (latency at the target's smallest batch, then file size); the verdict
is PASS when every target has one.
"""

from deployable.gate._gate import Baseline, gate, load_baseline
from deployable.gate.select import ParetoPoint, pareto_front, select

__all__ = ["Baseline", "ParetoPoint", "gate", "load_baseline", "pareto_front", "select"]
