"""The optimizer's tolerance judged with paired statistics: intervals against references, decisions, defaults."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from deployable.config import Tolerance
from deployable.core.paired import (
    adjusted_wald,
    concordant_n_to_decide,
    difference_n_to_decide,
    rate_n_to_decide,
    wilson_bounds,
)
from deployable.optimize.base import judge


def _pairs(n: int, *, better: int, worse: int, changed_tied: int = 0, classes: int = 3, seed: int = 0):
    """Labels and two models' logits on ``n`` samples with exact counts: ``better`` samples the variant gets right
    and the source wrong, ``worse`` the reverse, ``changed_tied`` where both are wrong but predict differently."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    source = y.copy()
    variant = y.copy()
    wrong = lambda v: (v + 1) % classes  # noqa: E731
    i = 0
    for _ in range(better):
        source[i] = wrong(y[i])
        i += 1
    for _ in range(worse):
        variant[i] = wrong(y[i])
        i += 1
    for _ in range(changed_tied):
        source[i], variant[i] = wrong(y[i]), (y[i] + 2) % classes
        i += 1
    perm = rng.permutation(n)
    eye = np.eye(classes, dtype=np.float32)
    return eye[variant[perm]], eye[source[perm]], y[perm]


@pytest.mark.parametrize(("k", "n", "alpha"), [(0, 40, 0.05), (7, 271, 0.05), (3, 100, 0.025), (60, 80, 0.1)])
def test_wilson_bounds_match_scipy(k: int, n: int, alpha: float) -> None:
    ci = binomtest(k, n).proportion_ci(confidence_level=1 - 2 * alpha, method="wilson")
    low, high = wilson_bounds(k, n, alpha, alpha)
    assert (low, high) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_adjusted_wald_by_hand() -> None:
    # Bonett & Price (2012): one pseudo-pair in each discordant cell
    p_plus, p_minus = 5 / 273, 4 / 273
    se = math.sqrt((p_plus + p_minus - (p_plus - p_minus) ** 2) / 273)
    low, high = adjusted_wald(4, 3, 271, 0.05, 0.05)
    assert low == pytest.approx(p_plus - p_minus - 1.6448536269514722 * se)
    assert high == pytest.approx(p_plus - p_minus + 1.6448536269514722 * se)


def test_judge_counts_and_intervals() -> None:
    logits, source, y = _pairs(271, better=4, worse=3, changed_tied=1)
    check = judge(logits, source, y, Tolerance(), split="validation")
    assert (check.n, check.n_labeled, check.better, check.worse, check.changed) == (271, 271, 4, 3, 8)
    assert check.accuracy - check.source_accuracy == pytest.approx(1 / 271)
    assert check.agreement == pytest.approx(1 - 8 / 271)
    # the accuracy interval holds the adjusted Wald bounds (the hull can only widen them), one-sided 5% each
    low, high = adjusted_wald(4, 3, 271, 0.05, 0.05)
    assert check.accuracy_change.low <= low and check.accuracy_change.high >= high
    assert check.accuracy_change.level == pytest.approx(0.9)
    assert (check.changed_share.low, check.changed_share.high) == pytest.approx(wilson_bounds(8, 271, 0.05, 0.05))


def test_the_issue_case_is_undecided_on_validation_and_accepted_pooled() -> None:
    """A fully quantized graph no worse than the source (4 better, 3 worse, 7 changed of 271 validation samples):
    the accuracy interval [-1.4, +2.1] points cannot show the 1-point default on 271 samples; pooled with the
    training split at the same rates (1,941 more) it is accepted."""
    logits, source, y = _pairs(271, better=4, worse=3)
    alone = judge(logits, source, y, Tolerance(), split="validation")
    assert (alone.accuracy_outcome, alone.agreement_outcome, alone.outcome) == ("UNDECIDED", "PASS", "UNDECIDED")
    assert alone.n_needed == difference_n_to_decide(4, 3, 271, 0.01, 0.05)
    assert alone.reason().startswith("undecidable at this sample size on validation (n=271): accuracy +0.37 points [")
    assert alone.reason().endswith(f"against the 1.00 it may drop; needs about {alone.n_needed:,} samples")
    train = _pairs(1941, better=29, worse=21, seed=1)
    pooled = judge(
        *(np.concatenate([a, b]) for a, b in zip((logits, source, y), train, strict=True)),
        Tolerance(),
        split="validation+train",
    )
    assert pooled.outcome == "PASS" and pooled.ok and pooled.reason() == ""


def test_a_clear_loss_fails_and_names_only_what_failed() -> None:
    logits, source, y = _pairs(500, better=2, worse=40)
    check = judge(logits, source, y, Tolerance(), split="validation")
    assert check.accuracy_change.high < -0.01
    assert (check.accuracy_outcome, check.agreement_outcome, check.outcome) == ("FAIL", "FAIL", "FAIL")
    assert check.n_needed is None
    assert check.reason().startswith("outside tolerance on validation (n=500): accuracy -7.60 points [")
    assert "8.4% of predictions changed [" in check.reason() and "against the 5.0% allowed" in check.reason()
    # agreement fails alone: many changed predictions that cancel out in accuracy
    logits, source, y = _pairs(500, better=40, worse=40)
    check = judge(logits, source, y, Tolerance(max_accuracy_drop=0.2), split="validation")
    assert (check.accuracy_outcome, check.agreement_outcome) == ("PASS", "FAIL")
    assert "accuracy" not in check.reason()


def test_zero_limits_are_exact() -> None:
    exact = Tolerance(max_accuracy_drop=0, min_agreement=1)
    same, source, y = _pairs(50, better=0, worse=0)
    assert judge(same, source, y, exact, split="v").outcome == "PASS"
    for counts in ({"better": 1, "worse": 0}, {"better": 0, "worse": 1}):
        logits, source, y = _pairs(50, **counts)
        check = judge(logits, source, y, exact, split="v")
        assert check.agreement_outcome == "FAIL" and check.outcome == "FAIL"
        assert check.accuracy_outcome == ("FAIL" if counts["worse"] else "PASS")


def test_unlabeled_samples_count_for_agreement_only() -> None:
    logits, source, y = _pairs(400, better=0, worse=0, changed_tied=0)
    y = np.full_like(y, -1)
    check = judge(logits, source, y, Tolerance(), split="ood")
    assert (check.n_labeled, check.accuracy_outcome, check.agreement_outcome) == (0, "PASS", "PASS")


@pytest.mark.parametrize(("better", "worse", "changed_tied"), [(3, 2, 0), (0, 1, 2), (4, 5, 0)])
def test_n_needed_samples_decide(better: int, worse: int, changed_tied: int) -> None:
    """At ``n_needed`` samples with the same rates (the arrays repeated) the undecided check decides."""
    logits, source, y = _pairs(150, better=better, worse=worse, changed_tied=changed_tied)
    check = judge(logits, source, y, Tolerance(), split="v")
    assert check.outcome == "UNDECIDED"
    needed = check.n_needed
    assert needed is not None and needed > 150
    times = math.ceil(needed / 150)
    bigger = judge(np.tile(logits, (times, 1)), np.tile(source, (times, 1)), np.tile(y, times), Tolerance(), split="v")
    assert bigger.outcome in ("PASS", "FAIL")


def test_sample_sizes_by_hand() -> None:
    z = 1.6448536269514722
    # no discordant pair: -z sqrt(2) / (n + 2) > -m  <=>  n + 2 > z sqrt(2) / m
    n = concordant_n_to_decide(0.01, 0.05)
    assert n + 2 > z * math.sqrt(2) / 0.01 >= n + 1
    assert concordant_n_to_decide(0.0, 0.05) is None
    # no event: the Wilson upper bound of 0/n is z^2 / (n + z^2), below the limit once n > z^2 (1 - limit) / limit
    n = rate_n_to_decide(0, 40, 0.05, 0.05)
    assert wilson_bounds(0, n, 0.05, 0.05)[1] < 0.05 <= wilson_bounds(0, n - 1, 0.05, 0.05)[1]
    assert rate_n_to_decide(5, 100, 0.05, 0.05) is None  # exactly at the limit
