"""Calibration metrics against torchmetrics, scikit-learn, torch and plain-loop references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from _reference import (
    adaptive_ece_loop,
    binned_loop,
    brier_loop,
    calibrated_sample,
    ece_loop,
    labels_correlated_with,
    random_probs,
    sklearn_brier,
    sklearn_log_loss,
    torch_fit_temperature,
    torchmetrics_calibration_error,
)
from deployable.core.records import CalibrationMetrics
from deployable.evaluation.metrics import (
    CalibrationErrorAccumulator,
    brier_score_loss,
    calibration_metrics,
    expected_calibration_error,
    fit_temperature,
    log_loss,
    maximum_calibration_error,
    reliability_bins,
    softmax,
)

SEEDS = [0, 1, 2, 3, 4]
# torchmetrics computes in float32.
TORCHMETRICS_ATOL = 1e-5
# Plain loops and scikit-learn run in float64 but sum in a different order.
FLOAT64_ATOL = 1e-12


def _sample(seed: int, n: int = 500, n_classes: int = 4, scale: float = 2.0):
    rng = np.random.default_rng(seed)
    prob = random_probs(rng, n, n_classes, scale=scale)
    return labels_correlated_with(rng, prob), prob


# ---------------------------------------------------------------------------------------------------------------------
# ECE / MCE / reliability
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("n_classes", "n_bins"), [(2, 15), (4, 15), (10, 15), (4, 5)])
def test_ece_and_mce_match_torchmetrics(seed, n_classes, n_bins):
    y, prob = _sample(seed, n=int(np.random.default_rng(seed).integers(50, 1500)), n_classes=n_classes)
    assert expected_calibration_error(y, prob, n_bins=n_bins) == pytest.approx(
        torchmetrics_calibration_error(y, prob, n_bins=n_bins, norm="l1"), abs=TORCHMETRICS_ATOL
    )
    assert maximum_calibration_error(y, prob, n_bins=n_bins) == pytest.approx(
        torchmetrics_calibration_error(y, prob, n_bins=n_bins, norm="max"), abs=TORCHMETRICS_ATOL
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_ece_and_mce_match_loop_reference(seed):
    y, prob = _sample(seed, n=300)
    edges = np.linspace(0, 1, 16).tolist()
    assert expected_calibration_error(y, prob) == pytest.approx(ece_loop(y, prob, edges), abs=FLOAT64_ATOL)
    assert maximum_calibration_error(y, prob) == pytest.approx(ece_loop(y, prob, edges, norm="max"), abs=FLOAT64_ATOL)


def test_confidence_on_bin_edges_and_at_one():
    # Bins [e_b, e_{b+1}): a confidence exactly on an inner edge goes to the upper bin; 1.0 belongs to the last,
    # closed bin. Quarter edges are exact in binary floating point; fifths are not (linspace has 0.6000000000000001).
    prob = np.array([[0.25, 0.75], [0.5, 0.5], [0.0, 1.0], [1.0, 0.0], [0.4, 0.6], [0.1, 0.9]])
    y = np.array([1, 0, 1, 1, 0, 1])
    edges = np.linspace(0, 1, 5).tolist()
    assert expected_calibration_error(y, prob, n_bins=4) == pytest.approx(ece_loop(y, prob, edges), abs=FLOAT64_ATOL)
    bins = reliability_bins(y, prob, n_bins=4)
    assert [b.count for b in bins] == [0, 0, 2, 4]
    assert bins[2].confidence == pytest.approx(0.55) and bins[2].accuracy == 0.5
    # Every confidence is exactly 1.0: torchmetrics' extra bin and our closed last bin then agree.
    one_hot = np.eye(3)[[0, 1, 2, 0]]
    y = np.array([0, 1, 0, 0])
    assert expected_calibration_error(y, one_hot) == pytest.approx(0.25)
    assert expected_calibration_error(y, one_hot) == pytest.approx(
        torchmetrics_calibration_error(y, one_hot, n_bins=15, norm="l1"), abs=TORCHMETRICS_ATOL
    )


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("n", "n_bins"), [(500, 15), (37, 15), (1000, 10), (7, 15)])
def test_adaptive_ece_matches_rank_loop(seed, n, n_bins):
    y, prob = _sample(seed, n=n)
    assert expected_calibration_error(y, prob, n_bins=n_bins, strategy="quantile") == pytest.approx(
        adaptive_ece_loop(y, prob, n_bins), abs=FLOAT64_ATOL
    )


def test_quantile_bins_have_equal_mass_and_tile_unit_interval():
    y, prob = _sample(3, n=1000)
    bins = reliability_bins(y, prob, n_bins=15, strategy="quantile")
    counts = [b.count for b in bins]
    assert len(bins) == 15 and sum(counts) == 1000 and max(counts) - min(counts) <= 1
    assert bins[0].lower == 0.0 and bins[-1].upper == 1.0
    assert all(a.upper == b.lower for a, b in itertools.pairwise(bins))


def test_quantile_bins_merge_ties():
    # Every confidence 0.7 and half correct: one bin, ECE = |0.5 - 0.7|.
    prob = np.tile([0.7, 0.3], (10, 1))
    y = np.array([0, 1] * 5)
    bins = reliability_bins(y, prob, strategy="quantile")
    assert [(b.count, b.confidence, b.accuracy) for b in bins if b.count] == [(10, pytest.approx(0.7), 0.5)]
    assert expected_calibration_error(y, prob, strategy="quantile") == pytest.approx(0.2)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_reliability_bins_match_loop(seed, strategy):
    y, prob = _sample(seed, n=400)
    bins = reliability_bins(y, prob, n_bins=10, strategy=strategy)
    edges = [bins[0].lower] + [b.upper for b in bins]
    if strategy == "uniform":
        np.testing.assert_allclose(edges, np.linspace(0, 1, 11), atol=0)
    for b, (count, conf, acc) in zip(bins, binned_loop(y, prob, edges), strict=True):
        assert b.count == count
        if count:
            assert b.confidence == pytest.approx(conf, abs=FLOAT64_ATOL)
            assert b.accuracy == pytest.approx(acc, abs=FLOAT64_ATOL)
        else:
            assert np.isnan(b.confidence) and np.isnan(b.accuracy)
    assert sum(b.count for b in bins) == 400


# ---------------------------------------------------------------------------------------------------------------------
# Brier and NLL
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n_classes", [2, 3, 8])
def test_brier_matches_sklearn_multiclass(seed, n_classes):
    # scikit-learn >= 1.7 supports multiclass Brier; scale_by_half=False is our (un-halved) definition.
    y, prob = _sample(seed, n=300, n_classes=n_classes)
    assert brier_score_loss(y, prob) == pytest.approx(sklearn_brier(y, prob), abs=FLOAT64_ATOL)
    assert brier_score_loss(y, prob) == pytest.approx(brier_loop(y, prob), abs=FLOAT64_ATOL)


def test_binary_brier_is_twice_the_classic_binary_score():
    import sklearn.metrics as skm

    y, prob = _sample(0, n=200, n_classes=2)
    assert brier_score_loss(y, prob) == pytest.approx(2 * skm.brier_score_loss(y, prob[:, 1]), abs=FLOAT64_ATOL)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n_classes", [2, 5])
def test_log_loss_matches_sklearn(seed, n_classes):
    y, prob = _sample(seed, n=300, n_classes=n_classes)
    assert log_loss(y, prob) == pytest.approx(sklearn_log_loss(y, prob), abs=FLOAT64_ATOL)


def test_log_loss_floors_zero_probability_at_eps():
    prob = np.array([[1.0, 0.0], [0.5, 0.5]])
    y = np.array([1, 0])
    assert log_loss(y, prob, eps=1e-12) == pytest.approx((-np.log(1e-12) - np.log(0.5)) / 2)
    assert np.isfinite(log_loss(y, prob))


# ---------------------------------------------------------------------------------------------------------------------
# Temperature scaling
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("factor", [0.5, 1.0, 3.0])
def test_fit_temperature_matches_torch_lbfgs(seed, factor):
    rng = np.random.default_rng(seed)
    z, y = calibrated_sample(rng, 2000, 5)
    ours = fit_temperature(factor * z, y)
    assert ours == pytest.approx(torch_fit_temperature(factor * z, y), rel=1e-3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_temperature_is_one_on_calibrated_data(seed):
    z, y = calibrated_sample(np.random.default_rng(seed), 20_000, 5)
    # Sampling noise of the fitted T at N = 20,000 is about 0.01.
    assert fit_temperature(z, y) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_temperature_scaling_repairs_overconfident_logits(seed):
    rng = np.random.default_rng(seed)
    z_cal, y_cal = calibrated_sample(rng, 5000, 5)
    z_test, y_test = calibrated_sample(rng, 5000, 5)
    m = calibration_metrics(y_test, 3 * z_test, calib_true=y_cal, calib_logits=3 * z_cal, fitted_on="validation")
    assert m.temperature == pytest.approx(3.0, rel=0.1)
    assert m.ece_after_temperature <= m.ece
    assert m.nll_after_temperature <= m.nll
    assert m.ece > 0.05 and m.ece_after_temperature < 0.03


def test_fit_temperature_is_deterministic_and_bounded():
    z, y = calibrated_sample(np.random.default_rng(0), 500, 3)
    assert fit_temperature(z, y) == fit_temperature(z, y)
    # Labels independent of logits: the best T is as large as allowed.
    y_random = np.random.default_rng(1).integers(0, 3, 500)
    assert 19.9 < fit_temperature(z, y_random) <= 20.0
    # Constant logits: temperature has no effect.
    assert fit_temperature(np.zeros((4, 3)), [0, 1, 2, 0]) == 1.0


# ---------------------------------------------------------------------------------------------------------------------
# calibration_metrics record
# ---------------------------------------------------------------------------------------------------------------------


def test_calibration_metrics_agrees_with_the_functions():
    rng = np.random.default_rng(4)
    z_cal, y_cal = calibrated_sample(rng, 800, 4)
    z, y = calibrated_sample(rng, 600, 4)
    z, z_cal = 2 * z, 2 * z_cal
    m = calibration_metrics(y, z, calib_true=y_cal, calib_logits=z_cal, fitted_on="val", n_bins=10)
    p = softmax(z)
    temperature = fit_temperature(z_cal, y_cal)
    p_t = softmax(z, temperature)
    assert m.n_bins == 10 and m.temperature_fitted_on == "val" and m.temperature == temperature
    assert m.ece == pytest.approx(expected_calibration_error(y, p, n_bins=10), abs=FLOAT64_ATOL)
    assert m.adaptive_ece == pytest.approx(
        expected_calibration_error(y, p, n_bins=10, strategy="quantile"), abs=FLOAT64_ATOL
    )
    assert m.mce == pytest.approx(maximum_calibration_error(y, p, n_bins=10), abs=FLOAT64_ATOL)
    assert m.brier == pytest.approx(sklearn_brier(y, p), abs=FLOAT64_ATOL)
    assert m.nll == pytest.approx(sklearn_log_loss(y, p), abs=1e-9)
    assert m.ece_after_temperature == pytest.approx(expected_calibration_error(y, p_t, n_bins=10), abs=FLOAT64_ATOL)
    assert m.nll_after_temperature == pytest.approx(sklearn_log_loss(y, p_t), abs=1e-9)
    _bins_close(m.reliability, reliability_bins(y, p, n_bins=10))
    _bins_close(m.reliability_after_temperature, reliability_bins(y, p_t, n_bins=10))
    restored = CalibrationMetrics.from_json(m.to_json())
    assert restored.to_dict() == m.to_dict()


def _bins_close(a, b) -> bool:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.count == y.count and x.lower == y.lower and x.upper == y.upper
        np.testing.assert_allclose([x.confidence, x.accuracy], [y.confidence, y.accuracy], atol=FLOAT64_ATOL)
    return True


def test_temperature_comes_from_the_calibration_split_only():
    rng = np.random.default_rng(0)
    z_cal, y_cal = calibrated_sample(rng, 500, 3)
    z, y = calibrated_sample(rng, 300, 3)
    a = calibration_metrics(y, z, calib_true=y_cal, calib_logits=z_cal)
    b = calibration_metrics(rng.permutation(y), 5 * z, calib_true=y_cal, calib_logits=z_cal)
    assert a.temperature == b.temperature == fit_temperature(z_cal, y_cal)


def test_calibration_metrics_rejects_mismatched_splits():
    z = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"calib_logits.*3 class columns"):
        calibration_metrics([0, 1, 2, 0], z, calib_true=[0, 1], calib_logits=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"calib_true has 3, calib_logits has 2"):
        calibration_metrics([0, 1, 2, 0], z, calib_true=[0, 1, 1], calib_logits=np.zeros((2, 3)))
    bad = z.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"calib_logits.*infinite"):
        calibration_metrics([0, 1, 2, 0], z, calib_true=[0, 1, 2, 0], calib_logits=bad)


# ---------------------------------------------------------------------------------------------------------------------
# Stateful accumulator
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("norm", ["l1", "max"])
def test_accumulator_batched_equals_one_shot(seed, norm):
    y, prob = _sample(seed, n=1000, n_classes=5)
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, 1000), size=9, replace=False))
    acc = CalibrationErrorAccumulator(n_bins=15, norm=norm)
    for yb, pb in zip(np.split(y, cuts), np.split(prob, cuts), strict=True):
        acc.update(yb, pb)
    acc.update(y[:1], prob[:1])  # a batch of one sample
    y_all, p_all = np.concatenate([y, y[:1]]), np.concatenate([prob, prob[:1]])
    one_shot = (expected_calibration_error if norm == "l1" else maximum_calibration_error)(y_all, p_all)
    assert acc.compute() == pytest.approx(one_shot, abs=FLOAT64_ATOL)
    _bins_close(acc.reliability(), reliability_bins(y_all, p_all))


def test_accumulator_reset_and_errors():
    y, prob = _sample(0, n=100)
    acc = CalibrationErrorAccumulator()
    with pytest.raises(ValueError, match=r"no samples"):
        acc.compute()
    acc.update(y[:50], prob[:50])
    acc.reset()
    acc.update(y[50:], prob[50:])
    assert acc.compute() == pytest.approx(expected_calibration_error(y[50:], prob[50:]), abs=FLOAT64_ATOL)
    with pytest.raises(ValueError, match=r"expected 4 class columns"):
        acc.update([0], [[0.5, 0.5]])
    with pytest.raises(ValueError, match=r"norm"):
        CalibrationErrorAccumulator(norm="l2")


# ---------------------------------------------------------------------------------------------------------------------
# Invariances and rejected input
# ---------------------------------------------------------------------------------------------------------------------

PROB_METRICS = {
    "ece": expected_calibration_error,
    "adaptive_ece": lambda y, p: expected_calibration_error(y, p, strategy="quantile"),
    "mce": maximum_calibration_error,
    "brier": brier_score_loss,
    "nll": log_loss,
}


@pytest.mark.parametrize("name", sorted(PROB_METRICS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sample_order_does_not_matter(name, seed):
    y, prob = _sample(seed, n=250)
    perm = np.random.default_rng(seed + 100).permutation(250)
    metric = PROB_METRICS[name]
    assert metric(y[perm], prob[perm]) == pytest.approx(metric(y, prob), abs=FLOAT64_ATOL)


def test_temperature_does_not_depend_on_sample_order():
    z, y = calibrated_sample(np.random.default_rng(0), 1000, 4)
    perm = np.random.default_rng(1).permutation(1000)
    assert fit_temperature(z[perm], y[perm]) == pytest.approx(fit_temperature(z, y), rel=1e-6)


@pytest.mark.parametrize("name", sorted(PROB_METRICS))
def test_list_and_array_inputs_agree(name):
    y, prob = _sample(1, n=60)
    assert PROB_METRICS[name](y.tolist(), prob.tolist()) == PROB_METRICS[name](y, prob)


@pytest.mark.parametrize("name", sorted(PROB_METRICS))
def test_nan_in_y_prob_is_rejected(name):
    y, prob = _sample(1, n=10)
    prob[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"y_prob.*NaN"):
        PROB_METRICS[name](y, prob)


@pytest.mark.parametrize("name", sorted(PROB_METRICS))
def test_single_sample(name):
    prob, y = np.array([[0.1, 0.7, 0.2]]), np.array([1])
    value = PROB_METRICS[name](y, prob)
    expected = {
        "ece": 0.3,
        "adaptive_ece": 0.3,
        "mce": 0.3,
        "brier": 0.1**2 + 0.3**2 + 0.2**2,
        "nll": -np.log(0.7),
    }[name]
    assert value == pytest.approx(expected, abs=FLOAT64_ATOL)


def test_float32_probabilities_are_accepted():
    y, prob = _sample(2, n=200, n_classes=10)
    p32 = prob.astype(np.float32)
    assert expected_calibration_error(y, p32) == pytest.approx(expected_calibration_error(y, prob), abs=1e-5)


def test_rejected_arguments():
    y, prob = _sample(0, n=10)
    with pytest.raises(ValueError, match=r"strategy.*'uniform' or 'quantile'"):
        expected_calibration_error(y, prob, strategy="equal")
    with pytest.raises(ValueError, match=r"n_bins"):
        expected_calibration_error(y, prob, n_bins=0)
    with pytest.raises(ValueError, match=r"y_true.*\[0, 3\]"):
        brier_score_loss(np.full(10, 4), prob)
    with pytest.raises(ValueError, match=r"temperature"):
        softmax([[0.0, 1.0]], temperature=0.0)
    with pytest.raises(ValueError, match=r"logits.*2-D"):
        fit_temperature([0.0, 1.0], [0, 1])


def test_softmax_is_stable_and_normalised():
    z = np.array([[1000.0, 0.0, -1000.0], [-5.0, -5.0, -5.0]])
    p = softmax(z)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-15)
    np.testing.assert_allclose(p[1], 1 / 3)
    np.testing.assert_allclose(softmax(z, temperature=2.0), softmax(z / 2.0), atol=1e-15)
