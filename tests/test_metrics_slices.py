"""Bootstrap intervals against scipy, and per-slice metrics against the same metrics computed on the mask.

Interval tolerances are derived from the Monte Carlo error of a bootstrap quantile (``quantile_mc_tolerance``), and
skewed cases check that the tolerance is tight enough to tell the percentile interval the code documents from the
basic (reverse-percentile) one. The speed of ``slice_metrics`` is measured by ``benchmarks/slices_speed.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sklearn.metrics as skm
from scipy import stats

from _reference import (
    labels_correlated_with,
    quantile_mc_tolerance,
    random_probs,
    scipy_bootstrap,
)
from deployable.core.records import SliceMetrics
from deployable.evaluation.metrics import (
    accuracy_score,
    bootstrap_interval,
    expected_calibration_error,
    slice_metrics,
)

SEEDS = [0, 1, 2]


def _mean(x, axis=-1):
    return np.mean(x, axis=axis)


def _data(seed: int, n: int = 2000, n_classes: int = 4):
    rng = np.random.default_rng(seed)
    prob = random_probs(rng, n, n_classes)
    y = labels_correlated_with(rng, prob, accuracy=0.75)
    slices = {
        "region": rng.choice(["north", "south", "east", "west"], size=n).tolist(),
        "length": rng.choice(["short", "medium", "long"], size=n, p=[0.6, 0.3, 0.1]).tolist(),
    }
    return y, prob, slices


# ---------------------------------------------------------------------------------------------------------------------
# bootstrap_interval
# ---------------------------------------------------------------------------------------------------------------------


def _tolerances(res, level: float, n_resamples: tuple[int, ...], grid: float = 0.0) -> tuple[float, float]:
    """Monte Carlo tolerance of the low and the high end, from scipy's bootstrap distribution ``res``."""
    a = (1 - level) / 2
    dist = res.bootstrap_distribution
    return (
        quantile_mc_tolerance(dist, a, n_resamples, grid=grid),
        quantile_mc_tolerance(dist, 1 - a, n_resamples, grid=grid),
    )


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", ["bernoulli", "normal"])
def test_bootstrap_matches_scipy_percentile(seed, kind):
    # Symmetric bootstrap distributions: percentile and basic intervals nearly coincide here, so this checks the
    # level and the resampling; the skewed test below tells the two kinds apart.
    rng = np.random.default_rng(seed)
    x = (rng.random(400) < 0.8).astype(float) if kind == "bernoulli" else rng.normal(0.5, 0.4, size=400)
    ours = bootstrap_interval(_mean, x, n_resamples=5000, seed=seed, vectorized=True)
    res = scipy_bootstrap(np.mean, x, n_resamples=5000, level=0.95, seed=seed + 1000)
    tol_low, tol_high = _tolerances(res, 0.95, (5000, 5000), grid=1 / 400 if kind == "bernoulli" else 0.0)
    assert ours.value == pytest.approx(float(np.mean(x)), abs=1e-15)
    assert ours.low == pytest.approx(res.confidence_interval.low, abs=tol_low)
    assert ours.high == pytest.approx(res.confidence_interval.high, abs=tol_high)
    assert ours.level == 0.95


# The mean of the 30 quantiles (i + 0.5) / 30 of a log-normal (sigma = 1; sample skewness 2.3): the bootstrap
# distribution of the mean is skewed to the right, so the basic interval [2m - q_high, 2m - q_low] sits well left
# of the percentile one [q_low, q_high]. 100,000 resamples make the Monte Carlo tolerance a fraction of that gap.
SKEWED = np.exp(stats.norm.ppf((np.arange(30) + 0.5) / 30))


@pytest.mark.parametrize(("level", "seed"), [(0.95, 0), (0.9, 1), (0.99, 2)])
def test_bootstrap_is_the_percentile_interval_not_the_basic_one(level, seed):
    n_resamples = 100_000
    ours = bootstrap_interval(_mean, SKEWED, n_resamples=n_resamples, level=level, seed=seed, vectorized=True)
    pct = scipy_bootstrap(np.mean, SKEWED, n_resamples=n_resamples, level=level, seed=seed + 1000)
    basic = scipy_bootstrap(np.mean, SKEWED, n_resamples=n_resamples, level=level, seed=seed + 1000, method="basic")
    tol_low, tol_high = _tolerances(pct, level, (n_resamples, n_resamples))
    # The test can tell the two kinds apart: their ends are more than three tolerances apart.
    assert abs(basic.confidence_interval.low - pct.confidence_interval.low) > 3 * tol_low
    assert abs(basic.confidence_interval.high - pct.confidence_interval.high) > 3 * tol_high
    assert ours.low == pytest.approx(pct.confidence_interval.low, abs=tol_low)
    assert ours.high == pytest.approx(pct.confidence_interval.high, abs=tol_high)
    # Skewed to the right: the estimate is nearer the low end than the high end.
    assert ours.value - ours.low < ours.high - ours.value


def _paired_accuracy(y_true, y_pred, axis=-1):
    return np.mean(y_true == y_pred, axis=axis)


@pytest.mark.parametrize("seed", SEEDS)
def test_paired_bootstrap_matches_scipy(seed):
    # Two arrays resampled with the same indices, like scipy's paired=True.
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 3, 300)
    y_pred = np.where(rng.random(300) < 0.7, y_true, rng.integers(0, 3, 300))
    ours = bootstrap_interval(_paired_accuracy, y_true, y_pred, n_resamples=5000, level=0.9, seed=seed, vectorized=True)
    res = scipy_bootstrap(_paired_accuracy, y_true, y_pred, n_resamples=5000, level=0.9, seed=seed + 1000, paired=True)
    low, high = res.confidence_interval
    tol_low, tol_high = _tolerances(res, 0.9, (5000, 5000), grid=1 / 300)
    assert ours.value == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=1e-15)
    assert (ours.low, ours.high) == (pytest.approx(low, abs=tol_low), pytest.approx(high, abs=tol_high))
    # The looped path with an unmodified scikit-learn statistic gives the same kind of interval (200 resamples).
    looped = bootstrap_interval(skm.accuracy_score, y_true, y_pred, n_resamples=200, level=0.9, seed=seed)
    tol_low, tol_high = _tolerances(res, 0.9, (200, 5000), grid=1 / 300)
    assert looped.low == pytest.approx(low, abs=tol_low) and looped.high == pytest.approx(high, abs=tol_high)


def test_vectorized_and_looped_statistics_give_the_same_interval():
    x = np.random.default_rng(0).normal(size=150)
    vec = bootstrap_interval(_mean, x, n_resamples=300, seed=3, vectorized=True)
    loop = bootstrap_interval(np.mean, x, n_resamples=300, seed=3)
    assert vec.low == pytest.approx(loop.low, abs=1e-12) and vec.high == pytest.approx(loop.high, abs=1e-12)


def test_chunking_does_not_change_the_interval(monkeypatch):
    import deployable.evaluation.metrics.slices as slices_module

    x = np.random.default_rng(0).normal(size=100)
    whole = bootstrap_interval(_mean, x, n_resamples=400, seed=5, vectorized=True)
    monkeypatch.setattr(slices_module, "_MAX_INDEX_ELEMENTS", 100 * 7)  # chunks of 7 resamples
    chunked = bootstrap_interval(_mean, x, n_resamples=400, seed=5, vectorized=True)
    assert chunked == whole


@pytest.mark.parametrize("seed", SEEDS)
def test_interval_contains_estimate_and_shrinks_with_more_samples(seed):
    rng = np.random.default_rng(seed)
    x = (rng.random(2000) < 0.7).astype(float)
    big = bootstrap_interval(_mean, x, seed=seed, vectorized=True)
    small = bootstrap_interval(_mean, x[:100], seed=seed, vectorized=True)
    for iv in (big, small):
        assert iv.low <= iv.value <= iv.high
    assert small.high - small.low > 2 * (big.high - big.low)  # width ~ 1/sqrt(n): ratio ~4.5


def test_level_seed_and_degenerate_samples():
    x = np.random.default_rng(0).normal(size=200)
    wide = bootstrap_interval(_mean, x, level=0.99, vectorized=True)
    narrow = bootstrap_interval(_mean, x, level=0.5, vectorized=True)
    assert wide.low < narrow.low < narrow.high < wide.high
    first = bootstrap_interval(_mean, x, seed=1, vectorized=True)
    assert bootstrap_interval(_mean, x, seed=1, vectorized=True) == first
    assert bootstrap_interval(_mean, x, seed=2, vectorized=True) != first
    single = bootstrap_interval(_mean, [0.3], vectorized=True)
    assert (single.value, single.low, single.high) == (0.3, 0.3, 0.3)


def test_bootstrap_rejects_bad_arguments():
    x = np.ones(10)
    with pytest.raises(ValueError, match=r"shape \(1000,\)"):
        bootstrap_interval(np.mean, x, vectorized=True)  # reduces over everything: one number, not one per resample
    with pytest.raises(ValueError, match=r"arrays\[0\] has 10, arrays\[1\] has 9"):
        bootstrap_interval(lambda a, b: 0.0, x, x[:9])
    with pytest.raises(ValueError, match=r"level"):
        bootstrap_interval(np.mean, x, level=95)
    with pytest.raises(ValueError, match=r"n_resamples"):
        bootstrap_interval(np.mean, x, n_resamples=0)
    with pytest.raises(ValueError, match=r"at least one array"):
        bootstrap_interval(np.mean)
    with pytest.raises(ValueError, match=r"non-finite"):
        bootstrap_interval(lambda a: np.nan, x, n_resamples=5)


# ---------------------------------------------------------------------------------------------------------------------
# slice_metrics
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_slices_partition_the_samples_and_match_masked_metrics(seed):
    y, prob, slices = _data(seed)
    result = slice_metrics(y, prob, slices=slices, n_bootstrap=200, seed=seed)
    pred = prob.argmax(axis=1)
    assert [(s.column, s.value) for s in result] == [("region", v) for v in ["east", "north", "south", "west"]] + [
        ("length", v) for v in ["long", "medium", "short"]
    ]
    for column, values in slices.items():
        rows = [s for s in result if s.column == column]
        assert sum(s.n for s in rows) == len(y)
        for s in rows:
            mask = np.asarray(values) == s.value
            assert s.n == int(mask.sum())
            assert s.accuracy.value == pytest.approx(skm.accuracy_score(y[mask], pred[mask]), abs=1e-12)
            assert s.accuracy.value == pytest.approx(accuracy_score(y[mask], pred[mask]), abs=1e-12)
            assert s.accuracy.low <= s.accuracy.value <= s.accuracy.high
            present = np.unique(y[mask])
            assert s.macro_f1 == pytest.approx(
                skm.f1_score(y[mask], pred[mask], labels=present, average="macro", zero_division=0), abs=1e-12
            )
            assert s.ece == pytest.approx(expected_calibration_error(y[mask], prob[mask]), abs=1e-12)


def test_slice_macro_f1_uses_only_classes_present_in_the_slice():
    prob = np.eye(3)[[0, 0, 1, 2, 2, 1]] * 0.8 + 0.2 / 3
    y = np.array([0, 0, 1, 2, 2, 1])
    pred = prob.argmax(axis=1)
    y[1] = 2  # slice "a" = samples 0-2: true {0, 2, 1}; slice "b" = samples 3-5: true {2, 1}
    result = slice_metrics(y, prob, slices={"g": ["a", "a", "a", "b", "b", "b"]}, n_bootstrap=50)
    for s, mask in zip(result, (np.arange(6) < 3, np.arange(6) >= 3), strict=True):
        present = np.unique(y[mask])
        expected = skm.f1_score(y[mask], pred[mask], labels=present, average="macro", zero_division=0)
        assert s.macro_f1 == pytest.approx(expected, abs=1e-12)
    # In slice "b" class 0 is absent from y_true: it does not pull the mean down.
    assert result[1].macro_f1 == 1.0


def _binomial_atom_and_miss(n: int, k: int, q: float, n_resamples: int) -> tuple[float, float]:
    """The exact q-quantile of a bootstrapped accuracy, and the probability that ``n_resamples`` draws miss it.

    A slice with k of n correct resamples to Binomial(n, k/n) / n, so the percentile end is, for infinitely many
    resamples, the atom j/n with j = binom.ppf(q). ``np.quantile`` (linear) of B draws interpolates between the order
    statistics at positions floor(h) and ceil(h), h = (B - 1) q (0-based); both are that atom unless more than
    floor(h) draws fall below it or fewer than ceil(h) + 1 at or below it: two binomial tails.
    """
    dist = stats.binom(n, k / n)
    j = int(dist.ppf(q))
    h = (n_resamples - 1) * q
    below, at_or_below = dist.cdf(j - 1), dist.cdf(j)
    miss = stats.binom.sf(math.floor(h), n_resamples, below) + stats.binom.cdf(math.ceil(h), n_resamples, at_or_below)
    return j / n, float(miss)


def test_slice_accuracy_interval_is_the_exact_binomial_percentile_interval():
    # (slice size, correct) chosen so that the 2.5% / 97.5% quantiles sit far from the binomial's jumps: with
    # 20,000 resamples each end is one exact atom (the miss probability is checked below), so no tolerance is needed.
    plan = {"a": (20, 19), "b": (50, 44), "c": (25, 4), "d": (30, 30)}
    correct, slice_of = [], []
    for name, (n, k) in plan.items():
        correct += [True] * k + [False] * (n - k)
        slice_of += [name] * n
    correct = np.array(correct)
    y = np.zeros(len(correct), dtype=int)
    prob = np.where(correct[:, None], [[0.8, 0.2]], [[0.3, 0.7]])
    result = slice_metrics(y, prob, slices={"g": slice_of}, n_bootstrap=20_000, level=0.95, seed=4)
    differs_from_basic = 0
    for s in result:
        n, k = plan[s.value]
        low, miss_low = _binomial_atom_and_miss(n, k, 0.025, 20_000)
        high, miss_high = _binomial_atom_and_miss(n, k, 0.975, 20_000)
        assert miss_low < 1e-6 and miss_high < 1e-6, (s.value, miss_low, miss_high)
        assert (s.n, s.accuracy.value) == (n, k / n)
        assert (s.accuracy.low, s.accuracy.high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
        basic = (2 * k / n - high, 2 * k / n - low)
        differs_from_basic += not np.allclose(basic, (low, high))
    # Percentile vs basic: "a" [0.85, 1] vs [0.9, 1.05], "b" [0.78, 0.96] vs [0.8, 0.98], "c" [0.04, 0.32] vs
    # [0, 0.28]; "d" (all correct) is [1, 1] for both.
    assert differs_from_basic == 3


def test_slice_is_independent_of_other_columns_and_deterministic():
    y, prob, slices = _data(0, n=500)
    alone = slice_metrics(y, prob, slices={"region": slices["region"]}, n_bootstrap=200)
    both = slice_metrics(y, prob, slices=slices, n_bootstrap=200)
    assert both[: len(alone)] == alone
    assert slice_metrics(y, prob, slices=slices, n_bootstrap=200) == both


def test_slice_point_estimates_do_not_depend_on_sample_order():
    y, prob, slices = _data(1, n=600)
    perm = np.random.default_rng(0).permutation(600)
    a = slice_metrics(y, prob, slices=slices, n_bootstrap=100)
    b = slice_metrics(y[perm], prob[perm], slices={k: np.asarray(v)[perm] for k, v in slices.items()}, n_bootstrap=100)
    for x, z in zip(a, b, strict=True):
        assert (x.column, x.value, x.n) == (z.column, z.value, z.n)
        assert x.accuracy.value == pytest.approx(z.accuracy.value, abs=1e-12)
        assert x.macro_f1 == pytest.approx(z.macro_f1, abs=1e-12)
        assert x.ece == pytest.approx(z.ece, abs=1e-12)
        # The interval is resampled from reordered data, so only the Monte Carlo noise of 100 resamples may differ:
        # the same derivation as above, with the density of the normal approximation (sd of a slice's accuracy).
        q = 0.025
        sd = max(math.sqrt(x.accuracy.value * (1 - x.accuracy.value) / x.n), 1 / x.n)
        se = sd * math.sqrt(q * (1 - q) / 100) / stats.norm.pdf(stats.norm.isf(q))
        assert x.accuracy.low == pytest.approx(z.accuracy.low, abs=4 * math.sqrt(2) * se + 1 / x.n)


def test_slice_metrics_list_input_single_sample_and_json():
    result = slice_metrics([1], [[0.2, 0.8]], slices={"g": ["only"]}, n_bootstrap=20)
    (s,) = result
    assert (s.n, s.accuracy.value, s.accuracy.low, s.accuracy.high, s.macro_f1) == (1, 1.0, 1.0, 1.0, 1.0)
    assert s.ece == pytest.approx(0.2)
    assert SliceMetrics.from_json(s.to_json()) == s
    # Non-string values are compared as strings.
    assert [x.value for x in slice_metrics([0, 1], [[0.9, 0.1], [0.3, 0.7]], slices={"k": [2, 1]})] == ["1", "2"]


def test_slice_metrics_rejects_bad_input():
    y, prob = [0, 1, 1], [[0.9, 0.1], [0.3, 0.7], [0.5, 0.5]]
    with pytest.raises(ValueError, match=r"slices\['g'\]: expected 3 values.*found 2"):
        slice_metrics(y, prob, slices={"g": ["a", "b"]})
    with pytest.raises(ValueError, match=r"n_classes: expected 2"):
        slice_metrics(y, prob, slices={"g": ["a"] * 3}, n_classes=3)
    bad = np.array(prob)
    bad[2, 0] = np.nan
    with pytest.raises(ValueError, match=r"y_prob.*NaN"):
        slice_metrics(y, bad, slices={"g": ["a"] * 3})
