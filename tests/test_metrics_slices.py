"""Bootstrap intervals against scipy, and per-slice metrics against the same metrics computed on the mask."""

from __future__ import annotations

import time

import numpy as np
import pytest
import sklearn.metrics as skm

from _reference import labels_correlated_with, random_probs, scipy_percentile_bootstrap
from deployable.core.records import SliceMetrics
from deployable.evaluation.metrics import (
    accuracy_score,
    bootstrap_interval,
    expected_calibration_error,
    slice_metrics,
)

SEEDS = [0, 1, 2]
# Monte Carlo error of a 2.5 % / 97.5 % quantile from 5,000 resamples is ~0.002 here (sd of the mean ~0.02);
# two independent bootstraps differ by at most a few times that.
MC_ATOL = 0.01


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


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", ["bernoulli", "normal"])
def test_bootstrap_matches_scipy_percentile(seed, kind):
    rng = np.random.default_rng(seed)
    x = (rng.random(400) < 0.8).astype(float) if kind == "bernoulli" else rng.normal(0.5, 0.4, size=400)
    ours = bootstrap_interval(_mean, x, n_resamples=5000, seed=seed, vectorized=True)
    low, high = scipy_percentile_bootstrap(np.mean, x, n_resamples=5000, level=0.95, seed=seed + 1000)
    assert ours.value == pytest.approx(float(np.mean(x)), abs=1e-15)
    assert ours.low == pytest.approx(low, abs=MC_ATOL)
    assert ours.high == pytest.approx(high, abs=MC_ATOL)
    assert ours.level == 0.95


def _paired_accuracy(y_true, y_pred, axis=-1):
    return np.mean(y_true == y_pred, axis=axis)


@pytest.mark.parametrize("seed", SEEDS)
def test_paired_bootstrap_matches_scipy(seed):
    # Two arrays resampled with the same indices, like scipy's paired=True.
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 3, 300)
    y_pred = np.where(rng.random(300) < 0.7, y_true, rng.integers(0, 3, 300))
    ours = bootstrap_interval(_paired_accuracy, y_true, y_pred, n_resamples=5000, level=0.9, seed=seed, vectorized=True)
    low, high = scipy_percentile_bootstrap(
        _paired_accuracy, y_true, y_pred, n_resamples=5000, level=0.9, seed=seed + 1000, paired=True
    )
    assert ours.value == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=1e-15)
    assert (ours.low, ours.high) == (pytest.approx(low, abs=MC_ATOL), pytest.approx(high, abs=MC_ATOL))
    # The looped path with an unmodified scikit-learn statistic gives the same kind of interval.
    looped = bootstrap_interval(skm.accuracy_score, y_true, y_pred, n_resamples=200, level=0.9, seed=seed)
    assert looped.low == pytest.approx(low, abs=0.02) and looped.high == pytest.approx(high, abs=0.02)


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


def test_slice_metrics_is_fast():
    rng = np.random.default_rng(0)
    prob = random_probs(rng, 2000, 5)
    y = labels_correlated_with(rng, prob)
    slices = {"a": rng.integers(0, 10, 2000).astype(str).tolist(), "b": rng.integers(0, 10, 2000).astype(str)}
    slice_metrics(y[:50], prob[:50], slices={"a": slices["a"][:50]}, n_bootstrap=10)  # warm up imports
    start = time.perf_counter()
    result = slice_metrics(y, prob, slices=slices, n_bootstrap=1000)
    elapsed = time.perf_counter() - start
    assert len(result) == 20
    assert elapsed < 1.0, f"slice_metrics took {elapsed:.2f} s for 2,000 samples and 20 slices"


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
        # The interval is resampled from reordered data, so only the Monte Carlo noise may differ.
        assert x.accuracy.low == pytest.approx(z.accuracy.low, abs=0.05)


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
