"""Quality metrics against scikit-learn, on random inputs over several seeds and on edge cases."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import sklearn.metrics as skm

from _reference import labels_correlated_with, random_probs
from deployable.core.records import QualityMetrics
from deployable.evaluation.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    macro_f1_score,
    precision_recall_f1_support,
    quality_metrics,
)

ATOL = 1e-12
SEEDS = [0, 1, 2, 3, 4]


def _sk_prfs(y_true, y_pred, n_classes):
    return skm.precision_recall_fscore_support(
        y_true, y_pred, labels=np.arange(n_classes), average=None, zero_division=0
    )


def _sk_macro_f1(y_true, y_pred, n_classes):
    return skm.f1_score(y_true, y_pred, labels=np.arange(n_classes), average="macro", zero_division=0)


def _sk_balanced(y_true, y_pred):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        return skm.balanced_accuracy_score(y_true, y_pred)


def _assert_all_match_sklearn(y_true, y_pred, n_classes):
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    assert accuracy_score(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=ATOL)
    assert balanced_accuracy_score(y_true, y_pred) == pytest.approx(_sk_balanced(y_true, y_pred), abs=ATOL)
    cm = confusion_matrix(y_true, y_pred, n_classes=n_classes)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, skm.confusion_matrix(y_true, y_pred, labels=np.arange(n_classes)))
    ours = precision_recall_f1_support(y_true, y_pred, n_classes=n_classes)
    for got, want in zip(ours, _sk_prfs(y_true, y_pred, n_classes), strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    assert ours[3].dtype == np.int64
    assert macro_f1_score(y_true, y_pred, n_classes=n_classes) == pytest.approx(
        _sk_macro_f1(y_true, y_pred, n_classes), abs=ATOL
    )


# ---------------------------------------------------------------------------------------------------------------------
# Against scikit-learn
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n_classes", [2, 3, 7])
def test_random_labels_match_sklearn(seed, n_classes):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    y_true = rng.integers(0, n_classes, n)
    # Skewed predictions so per-class numbers differ from each other.
    y_pred = np.where(
        rng.random(n) < 0.6,
        y_true,
        rng.choice(n_classes, n, p=np.arange(1, n_classes + 1) / sum(range(1, n_classes + 1))),
    )
    _assert_all_match_sklearn(y_true, y_pred, n_classes)


@pytest.mark.parametrize("seed", SEEDS)
def test_weighted_accuracy_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y_true, y_pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    w = rng.random(200)
    w[:20] = 0.0
    assert accuracy_score(y_true, y_pred, sample_weight=w) == pytest.approx(
        skm.accuracy_score(y_true, y_pred, sample_weight=w), abs=ATOL
    )


def test_class_never_predicted():
    y_true = [0, 1, 2, 2, 1, 0, 2]
    y_pred = [0, 1, 1, 1, 1, 0, 0]  # class 2 never predicted: precision 0 by zero_division
    _assert_all_match_sklearn(y_true, y_pred, 3)
    precision, recall, f1, _ = precision_recall_f1_support(y_true, y_pred, n_classes=3)
    assert precision[2] == 0.0 and recall[2] == 0.0 and f1[2] == 0.0


def test_class_absent_from_y_true():
    y_true = [0, 0, 1, 1, 0]
    y_pred = [0, 2, 1, 2, 0]  # class 2 predicted but never true
    _assert_all_match_sklearn(y_true, y_pred, 3)
    # Balanced accuracy averages only over classes present in y_true: (2/3 + 1/2) / 2.
    assert balanced_accuracy_score(y_true, y_pred) == pytest.approx((2 / 3 + 1 / 2) / 2, abs=ATOL)


def test_class_neither_true_nor_predicted_counts_as_zero_f1():
    y_true, y_pred = [0, 1, 1, 0], [0, 1, 0, 0]
    _assert_all_match_sklearn(y_true, y_pred, 4)
    _, _, f1, support = precision_recall_f1_support(y_true, y_pred, n_classes=4)
    assert support.tolist() == [2, 2, 0, 0] and f1[2:].tolist() == [0.0, 0.0]


@pytest.mark.parametrize(("y_true", "y_pred"), [([1], [1]), ([1], [0]), ([0], [2])])
def test_single_sample(y_true, y_pred):
    _assert_all_match_sklearn(y_true, y_pred, 3)


def test_all_correct_and_all_wrong():
    y = np.arange(5).repeat(3)
    _assert_all_match_sklearn(y, y, 5)
    assert accuracy_score(y, y) == 1.0 and macro_f1_score(y, y, n_classes=5) == 1.0
    _assert_all_match_sklearn(y, (y + 1) % 5, 5)
    assert accuracy_score(y, (y + 1) % 5) == 0.0


@pytest.mark.parametrize("seed", SEEDS)
def test_quality_metrics_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    prob = random_probs(rng, 300, 4)
    y_true = labels_correlated_with(rng, prob)
    y_pred = prob.argmax(axis=1)
    q = quality_metrics(y_true, prob, label_names=["a", "b", "c", "d"])
    assert q.n == 300
    assert q.accuracy == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=ATOL)
    assert q.balanced_accuracy == pytest.approx(_sk_balanced(y_true, y_pred), abs=ATOL)
    assert q.macro_f1 == pytest.approx(_sk_macro_f1(y_true, y_pred, 4), abs=ATOL)
    assert np.array_equal(np.array(q.confusion_matrix), skm.confusion_matrix(y_true, y_pred, labels=range(4)))
    p, r, f, s = _sk_prfs(y_true, y_pred, 4)
    assert [c.label for c in q.per_class] == ["a", "b", "c", "d"]
    np.testing.assert_allclose([c.precision for c in q.per_class], p, atol=ATOL)
    np.testing.assert_allclose([c.recall for c in q.per_class], r, atol=ATOL)
    np.testing.assert_allclose([c.f1 for c in q.per_class], f, atol=ATOL)
    assert [c.support for c in q.per_class] == s.tolist()


def test_quality_metrics_round_trips_through_json():
    rng = np.random.default_rng(0)
    prob = random_probs(rng, 50, 3)
    q = quality_metrics(labels_correlated_with(rng, prob), prob, label_names=("x", "y", "z"))
    assert QualityMetrics.from_json(q.to_json()) == q
    json.loads(q.to_json())  # plain JSON types only (no numpy scalars)
    assert all(type(v) is int for row in q.confusion_matrix for v in row)


# ---------------------------------------------------------------------------------------------------------------------
# Invariances (scikit-learn style)
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_sample_order_does_not_matter(seed):
    rng = np.random.default_rng(seed)
    prob = random_probs(rng, 120, 5)
    y_true = labels_correlated_with(rng, prob)
    y_pred = prob.argmax(axis=1)
    perm = rng.permutation(120)
    w = rng.random(120)
    assert accuracy_score(y_true, y_pred, sample_weight=w) == pytest.approx(
        accuracy_score(y_true[perm], y_pred[perm], sample_weight=w[perm]), abs=ATOL
    )
    assert balanced_accuracy_score(y_true, y_pred) == pytest.approx(
        balanced_accuracy_score(y_true[perm], y_pred[perm]), abs=ATOL
    )
    np.testing.assert_array_equal(
        confusion_matrix(y_true, y_pred, n_classes=5), confusion_matrix(y_true[perm], y_pred[perm], n_classes=5)
    )
    # Counts do not depend on order, and every number is derived from the counts: exactly equal.
    assert quality_metrics(y_true, prob, label_names="abcde") == quality_metrics(
        y_true[perm], prob[perm], label_names="abcde"
    )


def test_list_and_array_inputs_agree():
    rng = np.random.default_rng(7)
    prob = random_probs(rng, 40, 3)
    y_true = labels_correlated_with(rng, prob)
    y_pred = prob.argmax(axis=1)
    assert accuracy_score(y_true.tolist(), y_pred.tolist()) == accuracy_score(y_true, y_pred)
    assert balanced_accuracy_score(list(y_true), tuple(y_pred)) == balanced_accuracy_score(y_true, y_pred)
    assert macro_f1_score(y_true.tolist(), y_pred.tolist(), n_classes=3) == macro_f1_score(y_true, y_pred, n_classes=3)
    assert quality_metrics(y_true.tolist(), prob.tolist(), label_names="abc") == quality_metrics(
        y_true, prob, label_names="abc"
    )
    # Integral floats are accepted as class indices.
    assert accuracy_score(y_true.astype(float), y_pred) == accuracy_score(y_true, y_pred)


@pytest.mark.parametrize("seed", SEEDS)
def test_macro_f1_is_mean_of_per_class_f1(seed):
    rng = np.random.default_rng(seed)
    y_true, y_pred = rng.integers(0, 6, 90), rng.integers(0, 6, 90)
    _, _, f1, _ = precision_recall_f1_support(y_true, y_pred, n_classes=6)
    assert macro_f1_score(y_true, y_pred, n_classes=6) == pytest.approx(float(np.mean(f1)), abs=ATOL)


# ---------------------------------------------------------------------------------------------------------------------
# Rejected input
# ---------------------------------------------------------------------------------------------------------------------


def test_nan_in_y_prob_is_rejected_naming_the_argument():
    prob = np.full((3, 2), 0.5)
    prob[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"y_prob.*NaN"):
        quality_metrics([0, 1, 0], prob, label_names="ab")


def test_bad_labels_are_rejected():
    with pytest.raises(ValueError, match=r"y_true.*integer class indices.*map label names"):
        accuracy_score(["cat", "dog"], [0, 1])
    with pytest.raises(ValueError, match=r"y_pred.*\[0, 2\].*found 3"):
        confusion_matrix([0, 1], [0, 3], n_classes=3)
    with pytest.raises(ValueError, match=r"y_true.*non-integral"):
        accuracy_score([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match=r"y_true.*NaN"):
        accuracy_score([np.nan, 1.0], [0, 1])
    with pytest.raises(ValueError, match=r"y_true has 3, y_pred has 2"):
        accuracy_score([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match=r"y_true.*at least one sample"):
        accuracy_score([], [])
    with pytest.raises(ValueError, match=r"n_classes"):
        macro_f1_score([0], [0], n_classes=0)


def test_bad_probabilities_and_names_are_rejected():
    with pytest.raises(ValueError, match=r"y_prob.*sum to 1"):
        quality_metrics([0, 1], [[0.5, 0.6], [0.5, 0.5]], label_names="ab")
    with pytest.raises(ValueError, match=r"y_prob.*logits"):
        quality_metrics([0, 1], [[2.0, -1.0], [0.5, 0.5]], label_names="ab")
    with pytest.raises(ValueError, match=r"label_names: expected 2 names"):
        quality_metrics([0, 1], [[0.5, 0.5], [0.5, 0.5]], label_names="abc")
    with pytest.raises(ValueError, match=r"sample_weight.*non-negative"):
        accuracy_score([0, 1], [0, 1], sample_weight=[1.0, -1.0])
