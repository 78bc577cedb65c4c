"""Faithfulness metrics against scikit-learn and scipy references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score

from deployable.evaluation.metrics import expected_calibration_error, softmax
from deployable.evaluation.metrics.faithfulness import agreement_score, faithfulness


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_faithfulness_against_references(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, c = 400, 5
    y = rng.integers(0, c, n)
    ref = rng.normal(size=(n, c)) + 2.5 * np.eye(c)[y]
    var = ref + rng.normal(scale=0.6, size=(n, c))
    f = faithfulness(y, var, ref, n_bootstrap=4000, seed=seed)
    assert f.agreement == pytest.approx(accuracy_score(ref.argmax(1), var.argmax(1)))
    assert f.agreement == agreement_score(var, ref)
    acc_var, acc_ref = accuracy_score(y, var.argmax(1)), accuracy_score(y, ref.argmax(1))
    assert f.accuracy_delta.value == pytest.approx(acc_var - acc_ref)
    # paired bootstrap: resample samples, not the two models independently
    diff = (var.argmax(1) == y).astype(float) - (ref.argmax(1) == y).astype(float)
    scipy_ci = stats.bootstrap((diff,), np.mean, n_resamples=4000, method="percentile", random_state=seed)
    assert f.accuracy_delta.low == pytest.approx(scipy_ci.confidence_interval.low, abs=0.006)
    assert f.accuracy_delta.high == pytest.approx(scipy_ci.confidence_interval.high, abs=0.006)
    assert f.ece_delta == pytest.approx(
        expected_calibration_error(y, softmax(var)) - expected_calibration_error(y, softmax(ref))
    )
    assert f.max_abs_logit_diff == pytest.approx(np.abs(var - ref).max())
    assert f.n == n


def test_identical_models_are_perfectly_faithful() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 3))
    y = rng.integers(0, 3, 50)
    f = faithfulness(y, logits, logits)
    assert f.agreement == 1.0 and f.accuracy_delta.value == f.accuracy_delta.low == f.accuracy_delta.high == 0.0
    assert f.ece_delta == 0.0 and f.max_abs_logit_diff == 0.0


def test_shapes_must_match() -> None:
    with pytest.raises(ValueError, match="same shape"):
        agreement_score(np.zeros((3, 2)), np.zeros((3, 3)))
