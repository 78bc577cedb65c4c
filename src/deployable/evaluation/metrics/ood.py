"""Out-of-distribution detection: scores from stored logits and features, and how well they separate in from out.

Every score here is an *OOD score*: higher means "more likely out of distribution", so one convention serves
all four and the metrics treat out-of-distribution samples as the positive class:

- ``msp``: minus the maximum softmax probability (Hendrycks & Gimpel, 2017);
- ``max_logit``: minus the largest logit (Hendrycks et al., 2022);
- ``energy``: minus ``T * logsumexp(logits / T)`` with T = 1 (Liu et al., 2020);
- ``mahalanobis``: the smallest Mahalanobis distance of the penultimate features to a class mean, with class
  means and one shared covariance fitted on training features (Lee et al., 2018).

Metrics: AUROC and AUPR with out-of-distribution as positive (AUPR-out), and FPR at 95% TPR: the share of
out-of-distribution samples still accepted as in-distribution when the threshold keeps 95% of the
in-distribution samples (the usual "FPR95"; lower is better).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from deployable.evaluation.metrics._validation import check_logits, softmax

SCORES = ("msp", "max_logit", "energy", "mahalanobis")


def _logsumexp(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=1, keepdims=True)))[:, 0]


def msp_score(logits: Any) -> np.ndarray:
    return -softmax(check_logits(logits)).max(axis=1)


def max_logit_score(logits: Any) -> np.ndarray:
    return -check_logits(logits).astype(np.float64).max(axis=1)


def energy_score(logits: Any, temperature: float = 1.0) -> np.ndarray:
    x = check_logits(logits).astype(np.float64)
    return -temperature * _logsumexp(x / temperature)


@dataclass(frozen=True)
class MahalanobisFit:
    """Class means (C, D) and the shared precision matrix (D, D) of training features."""

    means: np.ndarray
    precision: np.ndarray

    @classmethod
    def fit(cls, features: Any, labels: Any, *, shrinkage: float = 1e-6) -> MahalanobisFit:
        """Fit on labelled training features; classes absent from ``labels`` get no mean (they cannot be nearest).

        The covariance is pooled over classes (each sample minus its class mean) and gets ``shrinkage`` times its
        mean variance on the diagonal, so a feature that never varies does not make it singular.
        """
        f = np.asarray(features, dtype=np.float64)
        y = np.asarray(labels)
        classes = np.unique(y[y >= 0])
        means = np.stack([f[y == c].mean(axis=0) for c in classes])
        centred = np.concatenate([f[y == c] - means[i] for i, c in enumerate(classes)])
        cov = centred.T @ centred / max(len(centred), 1)
        cov += np.eye(cov.shape[0]) * shrinkage * max(float(np.trace(cov)) / cov.shape[0], 1e-12)
        return cls(means=means, precision=np.linalg.pinv(cov, hermitian=True))

    def score(self, features: Any) -> np.ndarray:
        """Smallest squared Mahalanobis distance to a class mean, per sample (higher = more OOD)."""
        f = np.asarray(features, dtype=np.float64)
        best = np.full(len(f), np.inf)
        for mu in self.means:
            d = f - mu
            best = np.minimum(best, ((d @ self.precision) * d).sum(axis=1))  # einsum unoptimized: 45x slower
        return best


def ood_scores(logits: Any, features: Any = None, mahalanobis: MahalanobisFit | None = None) -> dict[str, np.ndarray]:
    """Every OOD score computable from what is stored: logit scores always, Mahalanobis when fitted and given."""
    out = {"msp": msp_score(logits), "max_logit": max_logit_score(logits), "energy": energy_score(logits)}
    if mahalanobis is not None and features is not None:
        out["mahalanobis"] = mahalanobis.score(features)
    return out


def _binary(score_in: Any, score_out: Any) -> tuple[np.ndarray, np.ndarray]:
    s_in = np.asarray(score_in, dtype=np.float64).ravel()
    s_out = np.asarray(score_out, dtype=np.float64).ravel()
    if not len(s_in) or not len(s_out):
        raise ValueError("OOD metrics need at least one in-distribution and one out-of-distribution sample")
    if not (np.isfinite(s_in).all() and np.isfinite(s_out).all()):
        raise ValueError("OOD scores must be finite")
    return s_in, s_out


def auroc(score_in: Any, score_out: Any) -> float:
    """Probability that an OOD sample scores above an in-distribution one (ties count half): Mann-Whitney U."""
    s_in, s_out = _binary(score_in, score_out)
    scores = np.concatenate([s_in, s_out])
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    start = 0
    for end in range(1, len(scores) + 1):
        if end == len(scores) or sorted_scores[end] != sorted_scores[start]:
            ranks[order[start:end]] = (start + end + 1) / 2.0
            start = end
    n_in, n_out = len(s_in), len(s_out)
    u = ranks[n_in:].sum() - n_out * (n_out + 1) / 2.0
    return float(u / (n_in * n_out))


def _curve(s_in: np.ndarray, s_out: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts of OOD (tp) and in-distribution (fp) samples at or above each distinct threshold, descending."""
    scores = np.concatenate([s_out, s_in])
    positive = np.concatenate([np.ones(len(s_out)), np.zeros(len(s_in))])
    order = np.argsort(-scores, kind="mergesort")
    scores, positive = scores[order], positive[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tp = np.cumsum(positive)[last_of_tie]
    fp = np.cumsum(1 - positive)[last_of_tie]
    return tp, fp, scores[last_of_tie]


def aupr(score_in: Any, score_out: Any) -> float:
    """Average precision with OOD as the positive class (AUPR-out), the step-wise sum scikit-learn computes."""
    s_in, s_out = _binary(score_in, score_out)
    tp, fp, _ = _curve(s_in, s_out)
    precision = tp / (tp + fp)
    recall = tp / len(s_out)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def fpr_at_tpr(score_in: Any, score_out: Any, tpr: float = 0.95) -> float:
    """Share of OOD samples accepted as in-distribution at the strictest threshold that keeps ``tpr`` of the
    in-distribution samples (a sample is accepted when its OOD score is at or below the threshold)."""
    s_in, s_out = _binary(score_in, score_out)
    # accept x <= t; the smallest t whose in-distribution acceptance reaches tpr
    t = np.sort(s_in)[int(np.ceil(tpr * len(s_in))) - 1]
    return float((s_out <= t).mean())


def roc_points(score_in: Any, score_out: Any, max_points: int = 101) -> list[tuple[float, float]]:
    """(false positive rate, true positive rate) with OOD positive, from (0, 0) to (1, 1), thinned for plotting."""
    s_in, s_out = _binary(score_in, score_out)
    tp, fp, _ = _curve(s_in, s_out)
    fpr = np.r_[0.0, fp / len(s_in)]
    tpr = np.r_[0.0, tp / len(s_out)]
    if len(fpr) > max_points:
        keep = np.unique(np.r_[np.linspace(0, len(fpr) - 1, max_points).round().astype(int)])
        fpr, tpr = fpr[keep], tpr[keep]
    return [(float(a), float(b)) for a, b in zip(fpr, tpr, strict=True)]


def histogram(score_in: Any, score_out: Any, bins: int = 24) -> tuple[list[float], list[int], list[int]]:
    """Shared bin edges and the in / out counts, for the score histograms of the report."""
    s_in, s_out = _binary(score_in, score_out)
    both = np.concatenate([s_in, s_out])
    lo, hi = np.percentile(both, [0.5, 99.5])
    if hi <= lo:
        lo, hi = float(both.min()), float(both.max()) + 1e-9
    edges = np.linspace(lo, hi, bins + 1)
    c_in = np.histogram(np.clip(s_in, lo, hi), edges)[0]
    c_out = np.histogram(np.clip(s_out, lo, hi), edges)[0]
    return edges.tolist(), c_in.astype(int).tolist(), c_out.astype(int).tolist()
