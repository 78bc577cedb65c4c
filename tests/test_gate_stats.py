"""Statistics of the release gate: references (scipy, hand tables) and error rates by simulation.

The simulations draw paired test sets like the gate sees them: 2,000 samples, baseline accuracy 0.85, 9% of
pairs discordant and symmetric (the candidate is as good, but not identical), and one column cutting the test set
into five slices, one of them 15%. ``pytest -s -k measured tests/test_gate_stats.py`` prints the measured
false-alarm rates and power.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import numpy as np
import pytest
from scipy import stats

from _reference import scipy_percentile_bootstrap
from deployable.config import ComparisonConfig
from deployable.core.records import Comparison, Interval
from deployable.gate.stats import (
    FAIL,
    INCONCLUSIVE,
    OVERALL,
    PASS,
    compare,
    holm,
    mcnemar_exact,
    non_inferiority,
    paired_bootstrap_interval,
    samples_needed,
)

ALPHA = ComparisonConfig().alpha
SIZES = (300, 500, 600, 400, 200)  # region=0 is the 15% slice of a 2,000-sample test set


def _pairs(n: int, better: int, worse: int) -> tuple[np.ndarray, np.ndarray]:
    """``(correct_candidate, correct_baseline)`` of ``n`` samples with exactly these discordant counts."""
    c, b = np.ones(n, bool), np.ones(n, bool)
    b[:better] = False
    c[better : better + worse] = False
    return c, b


def _binomial_ceiling(rate: float, trials: int) -> float:
    """``rate`` plus three binomial standard errors: the most a procedure with that true rate should show."""
    return rate + 3 * math.sqrt(rate * (1 - rate) / trials)


# ---------------------------------------------------------------------------------------------------------------------
# Simulation
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """A population of paired test sets, and the comparison settings.

    ``drop[k]``: the population accuracy of the candidate on slice k is ``drop[k]`` lower (iid: baseline-right
    samples turn wrong with a higher probability). ``planted[k]``: after drawing, exactly ``round(planted[k] · n_k)``
    samples of slice k that both models get right become wrong for the candidate (the "extra 5% of that slice's
    samples that the baseline gets right" of the acceptance wording).
    """

    trials: int
    seed: int
    sizes: tuple[int, ...] = SIZES
    accuracy: float = 0.85
    discordance: float = 0.09
    drop: tuple[float, ...] = (0.0,) * len(SIZES)
    planted: tuple[float, ...] = (0.0,) * len(SIZES)
    margin: float = 0.01
    slice_margin: float = 0.02
    slices: bool = True


def _draw(s: Scenario) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Correctness of candidate and baseline, shape ``(trials, N)`` each, and the slice masks, shape ``(N,)``."""
    rng = np.random.default_rng(s.seed)
    n = sum(s.sizes)
    region = np.repeat(np.arange(len(s.sizes)), s.sizes)
    b = rng.random((s.trials, n)) < s.accuracy
    # Half the discordance each way: P(better) = P(worse) = discordance / 2 before any drop.
    q_worse = (s.discordance / 2 + np.asarray(s.drop)[region]) / s.accuracy
    q_better = s.discordance / 2 / (1 - s.accuracy)
    u = rng.random((s.trials, n))
    c = np.where(b, u >= q_worse, u < q_better)
    rows = np.arange(s.trials)[:, None]
    for k, share in enumerate(s.planted):
        if share:
            idx = np.flatnonzero(region == k)
            keys = np.where(b[:, idx] & c[:, idx], rng.random((s.trials, idx.size)), np.inf)
            c[rows, idx[np.argsort(keys, axis=1)[:, : round(share * idx.size)]]] = False
    groups = {f"region={k}": region == k for k in range(len(s.sizes))} if s.slices else {}
    return c, b, groups


@functools.cache
def _simulate(s: Scenario) -> tuple[list[str], np.ndarray, list[list[Comparison]]]:
    """Group names, outcomes of shape ``(trials, groups)``, and every trial's records (cached across tests)."""
    c, b, groups = _draw(s)
    cfg = ComparisonConfig(margin=s.margin, slice_margin=s.slice_margin)
    records = [compare("candidate", c[t], b[t], groups, cfg) for t in range(s.trials)]
    names = [r.group for r in records[0]]
    outcomes = np.array([[r.outcome for r in trial] for trial in records])
    return names, outcomes, records


NULL = Scenario(trials=400, seed=11)
# Every group exactly at its margin (iid): the least favourable configuration for the false-FAIL rate.
BOUNDARY = Scenario(trials=400, seed=12, drop=(0.02,) * len(SIZES), margin=0.02)
# The acceptance scenario: a 5-point regression planted in the 15% slice.
PLANTED_5 = Scenario(trials=300, seed=13, planted=(0.05, 0, 0, 0, 0))
PLANTED_10 = Scenario(trials=300, seed=14, planted=(0.10, 0, 0, 0, 0))


# ---------------------------------------------------------------------------------------------------------------------
# mcnemar_exact
# ---------------------------------------------------------------------------------------------------------------------


def test_mcnemar_matches_binomtest_on_a_grid() -> None:
    grid = [(b, w) for b in range(0, 31, 3) for w in range(0, 31, 2)]
    grid += [(0, 1), (1, 0), (0, 25), (25, 0), (500, 440), (1000, 1000), (3, 97)]
    for better, worse in grid:
        expected = 1.0 if better + worse == 0 else stats.binomtest(worse, better + worse, 0.5).pvalue
        assert mcnemar_exact(better, worse) == pytest.approx(expected, rel=1e-9, abs=1e-300), (better, worse)


def test_mcnemar_edge_cases() -> None:
    assert mcnemar_exact(0, 0) == 1.0  # no discordant pair: no evidence either way
    assert mcnemar_exact(7, 7) == 1.0
    assert mcnemar_exact(0, 10) == pytest.approx(2 * 0.5**10)  # all one way: both tails of the most extreme outcome
    assert mcnemar_exact(3, 9) == mcnemar_exact(9, 3)  # symmetric in the direction
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="better"):
            mcnemar_exact(bad, 3)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------------
# paired_bootstrap_interval
# ---------------------------------------------------------------------------------------------------------------------


def _paired_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return x.mean(axis=axis) - y.mean(axis=axis)


@pytest.mark.parametrize(("n", "discordance", "level", "seed"), [(200, 0.12, 0.95, 0), (800, 0.06, 0.9, 1)])
def test_paired_bootstrap_matches_scipy(n: int, discordance: float, level: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    b = rng.random(n) < 0.85
    c = b ^ (rng.random(n) < discordance)
    n_resamples = 6000
    ours = paired_bootstrap_interval(c, b, level=level, n_resamples=n_resamples, seed=seed)
    low, high = scipy_percentile_bootstrap(
        _paired_difference, c.astype(float), b.astype(float), n_resamples=n_resamples, level=level, seed=seed + 100,
        paired=True,
    )  # fmt: skip
    # Monte Carlo error of a bootstrap quantile: sd * sqrt(a(1-a)/B) / phi(z_a) (normal bootstrap distribution);
    # two independent estimates differ by sqrt(2) of that; allow 4 of those plus one step of the 1/n grid.
    sd = math.sqrt(((c ^ b).mean() - ours.value**2) / n)
    a = (1 - level) / 2
    se = sd * math.sqrt(a * (1 - a) / n_resamples) / stats.norm.pdf(stats.norm.isf(a))
    tol = 4 * math.sqrt(2) * se + 1 / n
    assert ours.value == pytest.approx(c.mean() - b.mean())
    assert ours.low == pytest.approx(low, abs=tol)
    assert ours.high == pytest.approx(high, abs=tol)
    assert ours.level == level
    # The width itself is the paired one (disagreement), far narrower than two independent accuracies' noise.
    unpaired_sd = math.sqrt((c.mean() * (1 - c.mean()) + b.mean() * (1 - b.mean())) / n)
    assert ours.high - ours.low < 2 * stats.norm.isf(a) * unpaired_sd * 0.8


def test_paired_bootstrap_is_seeded_and_accepts_01_numbers() -> None:
    c, b = _pairs(100, 7, 12)
    one = paired_bootstrap_interval(c, b, level=0.9, n_resamples=500, seed=3)
    assert paired_bootstrap_interval(c.astype(int), b.astype(float), level=0.9, n_resamples=500, seed=3) == one
    assert paired_bootstrap_interval(c, b, level=0.9, n_resamples=500, seed=4) != one
    assert one.low <= one.value == -0.05 <= one.high


def test_paired_bootstrap_of_identical_models_is_a_point() -> None:
    c = np.arange(50) % 3 == 0
    assert paired_bootstrap_interval(c, c, level=0.95, n_resamples=200, seed=0) == Interval(0.0, 0.0, 0.0, 0.95)


@pytest.mark.parametrize(
    ("c", "b", "kwargs", "match"),
    [
        ([1, 0, 1], [1, 0], {}, "same samples"),
        ([1, 0, np.nan], [1, 0, 1], {}, "0/1"),
        ([1, 0, 2], [1, 0, 1], {}, "0/1"),
        (["a", "b"], [1, 0], {}, "dtype"),
        ([], [], {}, "at least one"),
        ([[1, 0]], [[1, 0]], {}, "1-D"),
        ([1, 0], [1, 0], {"level": 1.0}, "level"),
        ([1, 0], [1, 0], {"n_resamples": 0}, "n_resamples"),
    ],
)
def test_paired_bootstrap_rejects_bad_input(c: list, b: list, kwargs: dict, match: str) -> None:
    args = {"level": 0.95, "n_resamples": 100, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        paired_bootstrap_interval(np.asarray(c), np.asarray(b), **args)


# ---------------------------------------------------------------------------------------------------------------------
# holm
# ---------------------------------------------------------------------------------------------------------------------


def _holm_rejects(p: np.ndarray, alpha: float) -> np.ndarray:
    """Holm's step-down as written in the 1979 paper: walk up the sorted p-values until one misses its level."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    reject = np.zeros(len(p), bool)
    for step, i in enumerate(order):
        if p[i] > alpha / (len(p) - step):
            break
        reject[i] = True
    return reject


def test_holm_hand_table() -> None:
    # p = [0.01, 0.04, 0.03, 0.005], m = 4. Sorted: 0.005, 0.01, 0.03, 0.04 with multipliers 4, 3, 2, 1:
    # 0.020, 0.030, 0.060, 0.040 -> running maximum 0.020, 0.030, 0.060, 0.060 -> back in input order:
    # 0.01 -> 0.03, 0.04 -> 0.06, 0.03 -> 0.06, 0.005 -> 0.02.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # [0.9, 0.8, 0.01]: 3*0.01 = 0.03, 2*0.8 = 1.6 -> capped 1, then max(1, 0.9) = 1.
    assert holm([0.9, 0.8, 0.01]) == pytest.approx([1.0, 1.0, 0.03])
    # Ties share the larger multiplier: [0.02, 0.02] -> 2*0.02 both.
    assert holm([0.02, 0.02]) == pytest.approx([0.04, 0.04])
    assert holm([0.3]) == pytest.approx([0.3])
    assert holm([]).shape == (0,)


@pytest.mark.parametrize("seed", range(5))
def test_holm_properties_and_step_down_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.beta(0.3, 2.0, size=rng.integers(2, 12))
    adj = holm(p)
    assert np.all(adj >= p) and np.all(adj <= 1)
    order = np.argsort(p)
    assert np.all(np.diff(adj[order]) >= 0)  # monotone: a smaller p never gets a larger adjusted p
    perm = rng.permutation(p.size)
    assert holm(p[perm]) == pytest.approx(adj[perm])  # each p keeps its adjusted value whatever the order
    for alpha in (0.01, 0.05, 0.1, 0.2):
        assert np.array_equal(adj <= alpha, _holm_rejects(p, alpha)), alpha


def test_holm_rejects_bad_input() -> None:
    for bad in ([0.1, np.nan], [0.1, 1.2], [-0.1], [[0.1]]):
        with pytest.raises(ValueError, match="p_values"):
            holm(bad)


# ---------------------------------------------------------------------------------------------------------------------
# non_inferiority
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high", "margin", "expected"),
    [
        (-0.0199, 0.01, 0.02, PASS),
        (-0.02, 0.01, 0.02, INCONCLUSIVE),  # a bound exactly at the margin decides nothing
        (-0.05, -0.02, 0.02, INCONCLUSIVE),
        (-0.05, -0.0201, 0.02, FAIL),
        (-0.05, 0.03, 0.02, INCONCLUSIVE),
        (0.0, 0.01, 0.0, INCONCLUSIVE),  # margin 0: PASS needs evidence of improvement
        (0.001, 0.01, 0.0, PASS),
        (-0.01, -0.001, 0.0, FAIL),
        (-1.0, 1.0, 0.5, INCONCLUSIVE),
    ],
)
def test_non_inferiority_boundaries(low: float, high: float, margin: float, expected: str) -> None:
    assert non_inferiority(Interval(value=(low + high) / 2, low=low, high=high), margin) == expected


def test_non_inferiority_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="margin"):
        non_inferiority(Interval(0.0, -0.1, 0.1), -0.01)
    with pytest.raises(ValueError, match="finite"):
        non_inferiority(Interval(0.0, float("nan"), 0.1), 0.01)
    with pytest.raises(ValueError, match="low <= high"):
        non_inferiority(Interval(0.0, 0.1, -0.1), 0.01)


# ---------------------------------------------------------------------------------------------------------------------
# samples_needed
# ---------------------------------------------------------------------------------------------------------------------


def test_samples_needed_formula_and_undecidable_cases() -> None:
    c, b = _pairs(1000, 50, 50)  # d = 0, p_d = 0.1
    z = stats.norm.isf(0.05) + stats.norm.ppf(0.8)
    assert samples_needed(c, b, 0.01, alpha=0.05) == math.ceil(z**2 * 0.1 / 0.01**2)  # 6183
    c, b = _pairs(1000, 30, 70)  # d = -0.04, p_d = 0.1: FAIL side, gap 0.03
    assert samples_needed(c, b, 0.01, alpha=0.05) == math.ceil(z**2 * (0.1 - 0.04**2) / 0.03**2)
    # More power, a smaller alpha or a difference nearer the margin all need more samples.
    assert samples_needed(c, b, 0.01, alpha=0.05, power=0.9) > samples_needed(c, b, 0.01, alpha=0.05)
    assert samples_needed(c, b, 0.01, alpha=0.01) > samples_needed(c, b, 0.01, alpha=0.05)
    assert samples_needed(c, b, 0.03, alpha=0.05) > samples_needed(c, b, 0.01, alpha=0.05)
    assert samples_needed(*_pairs(300, 0, 0), 0.01, alpha=0.05) is None  # no discordance: no variance to plan from
    assert samples_needed(*_pairs(300, 3, 9), 0.02, alpha=0.05) is None  # d = -6/300 = -0.02: exactly at the margin
    with pytest.raises(ValueError, match="alpha"):
        samples_needed(c, b, 0.01, alpha=0.6)
    with pytest.raises(ValueError, match="power"):
        samples_needed(c, b, 0.01, alpha=0.05, power=1.0)


@pytest.mark.parametrize(
    ("p_better", "p_worse", "expected"), [(0.05, 0.05, PASS), (0.03, 0.07, FAIL)], ids=["pass-side", "fail-side"]
)
def test_samples_needed_decides_in_about_power_of_studies(p_better: float, p_worse: float, expected: str) -> None:
    """A study of the planned size (overall only: one group, so both sides are at alpha) decides ~80% of the time."""
    planned = samples_needed(*_pairs(1000, round(1000 * p_better), round(1000 * p_worse)), 0.01, alpha=ALPHA)
    assert planned is not None
    rng = np.random.default_rng(7)
    trials = 300
    u = rng.random((trials, planned))
    b = rng.random((trials, planned)) < 0.5  # the baseline's own accuracy does not enter the paired difference
    c = b.copy()
    c[u < p_better] = True
    b[u < p_better] = False
    c[(u >= p_better) & (u < p_better + p_worse)] = False
    b[(u >= p_better) & (u < p_better + p_worse)] = True
    cfg = ComparisonConfig()
    decided = np.mean([compare("c", c[t], b[t], {}, cfg)[0].outcome == expected for t in range(trials)])
    assert 0.68 <= decided <= 0.9, decided  # loosely: a normal approximation, checked with 300 studies


# ---------------------------------------------------------------------------------------------------------------------
# compare: records and procedure
# ---------------------------------------------------------------------------------------------------------------------


def test_compare_records() -> None:
    rng = np.random.default_rng(0)
    n = 1000
    b = rng.random(n) < 0.85
    c = b ^ (rng.random(n) < 0.08)
    groups = {"lang=en": np.arange(n) < 600, "lang=fr": np.arange(n) >= 600, "lang=xx": np.arange(n) < 10}
    cfg = ComparisonConfig(min_slice_n=20)
    out = compare("int8", c, b, groups, cfg)
    assert [r.group for r in out] == [OVERALL, "lang=en", "lang=fr"]  # lang=xx has 10 < 20 samples
    assert [r.margin for r in out] == [cfg.margin, cfg.slice_margin, cfg.slice_margin]
    assert holm([r.p_value for r in out]) == pytest.approx([r.p_adjusted for r in out])
    for r, mask in zip(out, [np.ones(n, bool), groups["lang=en"], groups["lang=fr"]], strict=True):
        assert r.variant == "int8" and r.n == mask.sum()
        assert r.better == np.sum(c[mask] & ~b[mask]) and r.worse == np.sum(~c[mask] & b[mask])
        assert r.candidate_accuracy == pytest.approx(c[mask].mean())
        assert r.difference.value == pytest.approx(c[mask].mean() - b[mask].mean())
        assert r.p_value == pytest.approx(stats.binomtest(r.worse, r.better + r.worse, 0.5).pvalue)
        assert r.difference.low <= r.difference.value <= r.difference.high
        assert r.outcome == non_inferiority(r.difference, r.margin)
        assert (r.n_needed is not None) == (r.outcome == INCONCLUSIVE)
        # No FAIL: every upper bound is at the final Holm level alpha/3, the lower bound at alpha.
        assert r.difference.level == pytest.approx(1 - cfg.alpha - cfg.alpha / 3)
        assert Comparison.from_json(r.to_json()) == r
    assert compare("int8", c, b, groups, cfg) == out  # seeded


def test_compare_rejects_bad_groups() -> None:
    c, b = _pairs(100, 5, 5)
    with pytest.raises(ValueError, match="reserved"):
        compare("v", c, b, {OVERALL: np.ones(100, bool)}, ComparisonConfig())
    with pytest.raises(ValueError, match="boolean mask"):
        compare("v", c, b, {"a=1": np.arange(100) % 2}, ComparisonConfig())
    with pytest.raises(ValueError, match="boolean mask"):
        compare("v", c, b, {"a=1": np.ones(99, bool)}, ComparisonConfig())


def test_small_slice_without_discordance_is_not_a_pass() -> None:
    """20 identical answers prove little: the bootstrap alone says [0, 0] (a PASS); the adjusted Wald hull does not."""
    c, b = _pairs(20, 0, 0)
    assert paired_bootstrap_interval(c, b, level=0.9, n_resamples=1000, seed=0) == Interval(0.0, 0.0, 0.0, 0.9)
    (only,) = compare("v", c, b, {}, ComparisonConfig(margin=0.02))
    assert only.outcome == INCONCLUSIVE and only.difference.low < -0.05
    assert only.n_needed is None  # no discordance to plan from


def _step_down_data(worse_a: int, worse_b: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """1,000 samples: slice a (first 300) and slice b (next 300) with 10 better pairs each, the rest identical."""
    ca, ba = _pairs(300, 10, worse_a)
    cb, bb = _pairs(300, 10, worse_b)
    c = np.concatenate([ca, cb, np.ones(400, bool)])
    b = np.concatenate([ba, bb, np.ones(400, bool)])
    idx = np.arange(1000)
    return c, b, {"s=a": idx < 300, "s=b": (idx >= 300) & (idx < 600)}


def test_compare_steps_down_like_holm() -> None:
    """A slice FAILed only once another group has failed: Holm's step-down, which Bonferroni would not do."""
    cfg = ComparisonConfig()
    for worse_b in range(15, 60):
        regressed = {r.group: r for r in compare("v", *_step_down_data(80, worse_b), cfg)}
        if regressed["s=b"].outcome == FAIL:
            break
    else:
        pytest.fail("slice b never FAILed")
    assert regressed[OVERALL].outcome == regressed["s=a"].outcome == FAIL
    # Slice b was FAILed in the last step, when overall and slice a had failed: at alpha/1, not alpha/3.
    assert regressed["s=b"].difference.level == pytest.approx(1 - 2 * cfg.alpha)
    assert non_inferiority(regressed["s=b"].difference, cfg.slice_margin) == FAIL
    # The same slice b next to a harmless slice a is tested at alpha/3 and is not (yet) FAILed.
    calm = {r.group: r for r in compare("v", *_step_down_data(10, worse_b), cfg)}
    assert calm["s=b"].outcome == INCONCLUSIVE
    assert calm["s=b"].difference.level == pytest.approx(1 - cfg.alpha - cfg.alpha / 3)
    assert calm["s=b"].n_needed is not None and calm["s=b"].n_needed > 300


# ---------------------------------------------------------------------------------------------------------------------
# compare: error rates by simulation
# ---------------------------------------------------------------------------------------------------------------------


def test_null_false_alarm_rate() -> None:
    """No true difference anywhere: no group should FAIL, family-wise, in more than alpha of test sets."""
    names, outcomes, _ = _simulate(NULL)
    assert len(names) == 1 + len(SIZES)
    any_fail = (outcomes == FAIL).any(axis=1).mean()
    assert any_fail <= _binomial_ceiling(ALPHA, NULL.trials)
    assert (outcomes[:, 0] == FAIL).mean() <= ALPHA
    # Not vacuous: the overall group (2,000 samples, 9% discordance, 1-point margin) does PASS in part of them.
    assert (outcomes[:, 0] == PASS).mean() > 0.2


def test_boundary_false_fail_rate() -> None:
    """Every group exactly at its margin: the hardest case for strong control, close to alpha but not above."""
    _, outcomes, _ = _simulate(BOUNDARY)
    any_fail = (outcomes == FAIL).any(axis=1).mean()
    assert any_fail <= _binomial_ceiling(ALPHA, BOUNDARY.trials)
    assert any_fail >= 0.01  # a correction far stricter than Holm's would lose power for nothing


def test_single_group_error_rates_at_the_margin() -> None:
    """One group at d = -margin: both one-sided claims err at about alpha (the 1 - 2 alpha interval)."""
    s = Scenario(trials=1000, seed=15, sizes=(2000,), drop=(0.01,), slices=False)
    _, outcomes, _ = _simulate(s)
    for outcome in (PASS, FAIL):
        rate = (outcomes[:, 0] == outcome).mean()
        assert ALPHA / 3 <= rate <= _binomial_ceiling(ALPHA, s.trials), (outcome, rate)


def test_planted_regression_is_never_passed() -> None:
    """A 5-point regression in the 15% slice: the slice is never PASSed, overall never FAILs falsely."""
    names, outcomes, _ = _simulate(PLANTED_5)
    slice_ = names.index("region=0")
    assert (outcomes[:, slice_] == PASS).mean() == 0.0
    # The population difference overall is -0.75 points, within the 1-point margin: a FAIL there would be false.
    assert (outcomes[:, 0] == FAIL).mean() <= _binomial_ceiling(ALPHA, PLANTED_5.trials)
    # Measured power to FAIL it is ~0.1 (see test_measured_error_rates): 300 samples cannot separate -5 from the
    # -2 margin at 9% discordance after a correction for six groups. Still found more often than by chance.
    assert (outcomes[:, slice_] == FAIL).mean() >= 0.05


def test_planted_ten_point_regression_is_found_in_most_trials() -> None:
    names, outcomes, _ = _simulate(PLANTED_10)
    assert (outcomes[:, names.index("region=0")] == FAIL).mean() >= 0.8
    others = [i for i, name in enumerate(names) if name not in (OVERALL, "region=0")]
    assert (outcomes[:, others] == FAIL).any(axis=1).mean() <= _binomial_ceiling(ALPHA, PLANTED_10.trials)


@pytest.mark.parametrize(
    ("drop", "label"), [(0.03, "3 points worse"), (-0.03, "3 points better")], ids=["worse", "better"]
)
def test_small_sample_decides_little(drop: float, label: str) -> None:
    """60 samples with a 3-point true difference: mostly INCONCLUSIVE, with a size that would decide."""
    s = Scenario(trials=400, seed=16, sizes=(60,), drop=(drop,), slices=False)
    _, outcomes, records = _simulate(s)
    assert (outcomes[:, 0] == INCONCLUSIVE).mean() >= 0.8, label
    needed = [t[0].n_needed for t in records if t[0].outcome == INCONCLUSIVE and t[0].n_needed is not None]
    assert np.median(needed) > 60


def test_small_sample_never_passes_a_real_regression() -> None:
    s = Scenario(trials=400, seed=17, sizes=(60,), drop=(0.10,), slices=False)
    _, outcomes, _ = _simulate(s)
    assert (outcomes[:, 0] == PASS).sum() == 0


def test_measured_error_rates() -> None:
    """Prints the measured rates (``pytest -s -k measured``) and checks how power moves with the margin.

    The same test sets under slice margins 0.02, 0.01 and 0: a smaller margin can only add FAILs (the bounds do not
    depend on the margin, and Holm's step-down is monotone), so the FAILed trials are nested.
    """
    rows = []
    _, out, _ = _simulate(NULL)
    rows.append(("null: any group FAIL", (out == FAIL).any(axis=1).mean(), NULL.trials))
    rows.append(("null: overall FAIL", (out[:, 0] == FAIL).mean(), NULL.trials))
    _, out, _ = _simulate(BOUNDARY)
    rows.append(("every group at -margin (iid): any FAIL", (out == FAIL).any(axis=1).mean(), BOUNDARY.trials))
    planted = {
        "5-pt planted, slice_margin 0.02, disc 9%": PLANTED_5,
        "5-pt planted, slice_margin 0.01, disc 9%": replace(PLANTED_5, slice_margin=0.01),
        "5-pt planted, slice_margin 0.00, disc 9%": replace(PLANTED_5, slice_margin=0.0),
        "5-pt planted, slice_margin 0.02, disc 3%": replace(PLANTED_5, discordance=0.03, trials=200),
        "5-pt planted, slice_margin 0.00, disc 3% (defaults)": replace(
            PLANTED_5, discordance=0.03, slice_margin=0.0, trials=200
        ),
        "10-pt planted, slice_margin 0.02, disc 9%": PLANTED_10,
    }
    failed = {}
    for name, s in planted.items():
        names, out, _ = _simulate(s)
        failed[name] = out[:, names.index("region=0")] == FAIL
        rows.append((f"{name}: slice FAIL", failed[name].mean(), s.trials))
        rows.append((f"{name}: slice not PASS", (out[:, names.index("region=0")] != PASS).mean(), s.trials))
    print()
    for name, rate, trials in rows:
        print(f"{name:<58} {rate:6.3f}  (± {math.sqrt(max(rate * (1 - rate), 1e-12) / trials):.3f}, {trials} trials)")
    by_margin = [failed[f"5-pt planted, slice_margin {m}, disc 9%"] for m in ("0.02", "0.01", "0.00")]
    assert np.all(by_margin[0] <= by_margin[1]) and np.all(by_margin[1] <= by_margin[2])
    assert by_margin[2].mean() > by_margin[0].mean() + 0.2
    assert failed["10-pt planted, slice_margin 0.02, disc 9%"].mean() > by_margin[0].mean()


def test_planted_5_point_regression_is_found_with_the_default_margins() -> None:
    """The acceptance scenario with the shipped defaults: a 5-point regression planted in the 15% slice of 2,000
    samples, on top of 3% symmetric disagreement elsewhere, is FAILed in most trials (and never PASSed)."""
    default = ComparisonConfig()
    s = replace(PLANTED_5, discordance=0.03, slice_margin=default.slice_margin, margin=default.margin, trials=200)
    names, out, _ = _simulate(s)
    col = out[:, names.index("region=0")]
    found = (col == FAIL).mean()
    assert found >= 0.7, f"planted regression FAILed in {found:.3f} of {s.trials} trials"
    assert not (col == PASS).any()
    null = replace(NULL, discordance=0.03, slice_margin=default.slice_margin, margin=default.margin, trials=300)
    _, out, _ = _simulate(null)
    rate = (out == FAIL).any(axis=1).mean()
    assert rate <= default.alpha + 3 * math.sqrt(default.alpha * (1 - default.alpha) / null.trials), rate
