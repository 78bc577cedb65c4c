"""The release-gate demonstration of the support-tickets example: against production, the candidate passes and a
subtly worse candidate (better on average, its training export lost most refund requests) fails, naming the class."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployable.config import load_config
from deployable.pipeline import run

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "support-tickets" / "deployable.yaml"
QUICK = [
    "optimize.recipes=[]",
    "evaluate.robustness.enabled=false",
    "evaluate.adversarial.enabled=false",
    "evaluate.efficiency={warmup: 1, min_repetitions: 3, max_seconds: 0.05}",
]


def _gate(*overrides: str):
    return run(load_config(CONFIG, overrides=[*QUICK, *overrides])).verdict


@pytest.mark.slow
def test_the_candidate_passes_and_the_subtly_worse_one_fails_on_refund_requests() -> None:
    good = _gate()
    assert good.status == "PASS", good.reasons
    overall = next(c for c in good.comparisons if c.group == "overall")
    assert overall.outcome == "PASS" and overall.difference.low > -overall.margin
    assert not [c for c in good.comparisons if c.outcome == "FAIL"]

    bad = _gate("model.head=heads/lost-refunds.safetensors")
    assert bad.status == "FAIL"
    overall = next(c for c in bad.comparisons if c.group == "overall")
    assert overall.candidate_accuracy > overall.baseline_accuracy  # better on average...
    assert overall.outcome != "FAIL"
    failed = [c for c in bad.comparisons if c.outcome == "FAIL"]
    assert [c.group for c in failed] == ["class=refund_request"]  # ...and the gate names where it is worse
    assert failed[0].worse > 3 * failed[0].better
    assert any("class=refund_request" in r for r in bad.reasons)
