"""OOD scores and detection metrics against scikit-learn, scipy and plain definitions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sklearn.metrics as skm
from scipy.spatial.distance import mahalanobis as scipy_mahalanobis
from scipy.special import logsumexp, softmax

from deployable.core.records import Evaluation, OodMetrics
from deployable.evaluation.metrics.ood import (
    MahalanobisFit,
    aupr,
    auroc,
    energy_score,
    fpr_at_tpr,
    histogram,
    max_logit_score,
    msp_score,
    roc_points,
)


def _scores(rng: np.random.Generator, n_in: int, n_out: int, shift: float, *, ties: bool = False):
    s_in = rng.normal(size=n_in)
    s_out = rng.normal(loc=shift, size=n_out)
    if ties:  # coarse scores, many ties within and across the two groups
        s_in, s_out = np.round(s_in, 1), np.round(s_out, 1)
    return s_in, s_out


def _labels(n_in: int, n_out: int) -> np.ndarray:
    return np.r_[np.zeros(n_in), np.ones(n_out)]


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("shift", [0.0, 0.7, 3.0, -1.0])
def test_auroc_and_aupr_match_scikit_learn(shift: float, ties: bool) -> None:
    rng = np.random.default_rng(int(10 * abs(shift)) + 2 * ties + (shift < 0))
    s_in, s_out = _scores(rng, 300, 120, shift, ties=ties)
    y, s = _labels(300, 120), np.r_[s_in, s_out]
    assert auroc(s_in, s_out) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert aupr(s_in, s_out) == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)


def _fpr95_reference(s_in: np.ndarray, s_out: np.ndarray) -> float:
    """scikit-learn's ROC with in-distribution as positive (score = minus the OOD score): FPR at the first
    threshold whose TPR reaches 95%."""
    fpr, tpr, _ = skm.roc_curve(_labels(len(s_in), len(s_out)) == 0, -np.r_[s_in, s_out])
    return float(fpr[np.argmax(tpr >= 0.95)])


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("shift", [0.0, 1.5, 4.0])
def test_fpr_at_95_tpr_matches_the_roc_curve(shift: float, ties: bool) -> None:
    rng = np.random.default_rng(7 + ties)
    s_in, s_out = _scores(rng, 401, 157, shift, ties=ties)
    assert fpr_at_tpr(s_in, s_out) == pytest.approx(_fpr95_reference(s_in, s_out), abs=1e-12)


def test_roc_points_lie_on_scikit_learns_curve() -> None:
    rng = np.random.default_rng(3)
    s_in, s_out = _scores(rng, 50, 40, 1.0)
    fpr, tpr, _ = skm.roc_curve(_labels(50, 40), np.r_[s_in, s_out], drop_intermediate=False)
    ours = roc_points(s_in, s_out, max_points=1000)
    assert ours[0] == (0.0, 0.0) and ours[-1] == (1.0, 1.0)
    np.testing.assert_allclose(np.array(ours), np.c_[fpr, tpr], atol=1e-12)
    thin = roc_points(s_in, s_out, max_points=11)
    assert len(thin) <= 11 and thin[0] == (0.0, 0.0) and thin[-1] == (1.0, 1.0)


def test_perfect_and_reversed_separation() -> None:
    s_in, s_out = np.arange(10.0), np.arange(10.0) + 100
    assert auroc(s_in, s_out) == 1.0 and aupr(s_in, s_out) == 1.0 and fpr_at_tpr(s_in, s_out) == 0.0
    assert auroc(s_out, s_in) == 0.0 and fpr_at_tpr(s_out, s_in) == 1.0


def test_logit_scores_match_their_definitions() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(scale=3, size=(50, 6)).astype(np.float32)
    np.testing.assert_allclose(msp_score(z), -softmax(z.astype(np.float64), axis=1).max(1), rtol=1e-6)
    np.testing.assert_allclose(max_logit_score(z), -z.max(1), rtol=1e-6)
    np.testing.assert_allclose(energy_score(z), -logsumexp(z.astype(np.float64), axis=1), rtol=1e-9)
    np.testing.assert_allclose(energy_score(z, 2.0), -2.0 * logsumexp(z / 2.0, axis=1), rtol=1e-6)


def test_mahalanobis_matches_scipy_with_the_pooled_covariance() -> None:
    rng = np.random.default_rng(1)
    means = rng.normal(scale=4, size=(3, 5))
    y = rng.integers(0, 3, size=400)
    f = means[y] + rng.normal(size=(400, 5)) @ rng.normal(size=(5, 5))
    fit = MahalanobisFit.fit(f, y, shrinkage=0.0)
    centred = f - np.stack([f[y == c].mean(0) for c in range(3)])[y]
    precision = np.linalg.inv(np.cov(centred.T, bias=True))
    x = rng.normal(scale=5, size=(20, 5))
    ref = [min(scipy_mahalanobis(row, f[y == c].mean(0), precision) ** 2 for c in range(3)) for row in x]
    np.testing.assert_allclose(fit.score(x), ref, rtol=1e-8)
    # unlabeled rows (-1) take no part in the fit
    with_unlabeled = MahalanobisFit.fit(
        np.r_[f, rng.normal(size=(30, 5)) * 100], np.r_[y, -np.ones(30, int)], shrinkage=0.0
    )
    np.testing.assert_allclose(with_unlabeled.score(x), ref, rtol=1e-8)


def test_histogram_counts_every_sample() -> None:
    rng = np.random.default_rng(2)
    s_in, s_out = _scores(rng, 100, 60, 2.0)
    edges, c_in, c_out = histogram(s_in, s_out, bins=10)
    assert len(edges) == 11 and sum(c_in) == 100 and sum(c_out) == 60
    assert histogram(np.ones(5), np.ones(3))[1] == [5] + [0] * 23  # constant scores: one bin, no crash


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        auroc([], [1.0])
    with pytest.raises(ValueError, match="finite"):
        aupr([np.nan], [1.0])


def test_ood_record_round_trips(tabular_project: Path, tmp_path: Path) -> None:
    """The tabular project has no ood split: the run scores against a synthetic set and says so."""
    import deployable

    result = deployable.run(tabular_project, tmp_path / "run")
    ood = result.evaluations[0].ood
    assert isinstance(ood, OodMetrics) and ood.synthetic and ood.out_split == "synthetic-ood"
    assert ood.source.startswith("synthetic:") and ood.n_out == 300 and ood.n_in == 50
    assert [s.name for s in ood.scores] == ["msp", "max_logit", "energy", "mahalanobis"]
    assert ood.mahalanobis_fitted_on == "train"
    assert OodMetrics.from_json(ood.to_json()) == ood
    assert Evaluation.from_json(result.evaluations[0].to_json()).ood == ood
    # this data has independent features, so the synthetic half drawn from independent marginals is in fact
    # in-distribution; the half lying 3-6 standard deviations out is what the features tell apart
    assert 0.6 < {s.name: s for s in ood.scores}["mahalanobis"].auroc < 0.9


def test_report_shows_the_ood_section(tabular_project: Path, tmp_path: Path) -> None:
    import deployable

    deployable.run(tabular_project, tmp_path / "run")
    page = (tmp_path / "run" / "report.html").read_text()
    assert '<section class="ood" id="v1-source-ood">' in page
    assert "a synthetic OOD set</span> (n = 300): synthetic: half rows whose features" in page
    assert 'aria-label="ROC curves of the OOD scores and score histogram"' in page
    assert "Mahalanobis class means and covariance fitted on the train split" in page
