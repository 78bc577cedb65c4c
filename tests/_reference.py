"""Reference implementations the metric tests compare against.

Two kinds: thin wrappers over the established libraries (scikit-learn, torchmetrics, scipy, torch), and plain
Python loops written for readability rather than speed, where no library implements exactly our definition
(ECE with a closed last bin, adaptive/equal-mass ECE).
"""

from __future__ import annotations

import math

import numpy as np
import sklearn.metrics as skm
import torch
import torch.nn.functional as F
from scipy import stats
from torchmetrics.functional.classification import multiclass_calibration_error

# ---------------------------------------------------------------------------------------------------------------------
# Synthetic data
# ---------------------------------------------------------------------------------------------------------------------


def random_probs(rng: np.random.Generator, n: int, n_classes: int, *, scale: float = 2.0) -> np.ndarray:
    """Softmax of Gaussian logits: continuous, distinct confidences, rows summing to 1."""
    z = rng.normal(scale=scale, size=(n, n_classes))
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def calibrated_sample(
    rng: np.random.Generator, n: int, n_classes: int, *, scale: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits): perfectly calibrated by construction (the optimal T is 1)."""
    z = rng.normal(scale=scale, size=(n, n_classes))
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    u = rng.random(n)[:, None]
    y = np.minimum((np.cumsum(p, axis=1) < u).sum(axis=1), n_classes - 1)
    return z, y


def labels_correlated_with(rng: np.random.Generator, y_prob: np.ndarray, accuracy: float = 0.7) -> np.ndarray:
    """Labels that equal the argmax with probability ``accuracy`` and are uniform otherwise."""
    n, c = y_prob.shape
    y = y_prob.argmax(axis=1)
    flip = rng.random(n) > accuracy
    y[flip] = rng.integers(0, c, size=int(flip.sum()))
    return y


# ---------------------------------------------------------------------------------------------------------------------
# Library wrappers
# ---------------------------------------------------------------------------------------------------------------------


def torchmetrics_calibration_error(y_true: np.ndarray, y_prob: np.ndarray, *, n_bins: int, norm: str) -> float:
    """torchmetrics' multiclass top-label calibration error (``norm="l1"`` is ECE, ``"max"`` is MCE).

    torchmetrics casts confidences to float32 and puts a confidence of exactly 1.0 in an extra bin.
    """
    return float(
        multiclass_calibration_error(
            torch.tensor(y_prob, dtype=torch.float64),
            torch.tensor(y_true, dtype=torch.long),
            num_classes=y_prob.shape[1],
            n_bins=n_bins,
            norm=norm,
        )
    )


def sklearn_brier(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """scikit-learn's multiclass Brier score (available since 1.7), un-halved: sum over classes."""
    return float(skm.brier_score_loss(y_true, y_prob, labels=np.arange(y_prob.shape[1]), scale_by_half=False))


def sklearn_log_loss(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    return float(skm.log_loss(y_true, y_prob, labels=np.arange(y_prob.shape[1])))


def torch_fit_temperature(logits: np.ndarray, y_true: np.ndarray) -> float:
    """Temperature by L-BFGS (strong Wolfe line search) on ``log T`` in float64: an independent optimiser."""
    z = torch.tensor(logits, dtype=torch.float64)
    t = torch.tensor(y_true, dtype=torch.long)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [log_t], lr=1.0, max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-15, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), t)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


def scipy_bootstrap(
    statistic,
    *arrays: np.ndarray,
    n_resamples: int,
    level: float,
    seed: int,
    paired: bool = False,
    method: str = "percentile",
):
    """scipy's bootstrap result: ``confidence_interval`` and the ``bootstrap_distribution`` it came from."""
    return stats.bootstrap(
        arrays,
        statistic,
        n_resamples=n_resamples,
        confidence_level=level,
        method=method,
        paired=paired,
        rng=np.random.default_rng(seed),
    )


def scipy_percentile_bootstrap(
    statistic, *arrays: np.ndarray, n_resamples: int, level: float, seed: int, paired: bool = False
) -> tuple[float, float]:
    res = scipy_bootstrap(statistic, *arrays, n_resamples=n_resamples, level=level, seed=seed, paired=paired)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def quantile_mc_tolerance(
    bootstrap_distribution: np.ndarray, q: float, n_resamples: tuple[int, ...], *, grid: float = 0.0
) -> float:
    """How far two independent bootstrap estimates of the ``q`` quantile may differ by Monte Carlo error alone.

    The standard error of an empirical q-quantile from B draws is ``sqrt(q (1 - q) / B) / f(x_q)`` (the normal
    approximation test_gate_stats.py uses, with the density ``f`` read from the distribution itself by the
    quantile spacing ``2h / (x_{q+h} - x_{q-h})``, h = min(0.01, q/2, (1-q)/2), since some distributions here are
    skewed on purpose).
    Two independent estimates with ``n_resamples = (B1, B2)`` differ with variance the sum of theirs: allow four
    standard errors of that difference, plus one step of the statistic's grid (``1/n`` for a mean of 0/1 values,
    whose bootstrap distribution is discrete).
    """
    h = min(0.01, q / 2, (1 - q) / 2)
    lo, hi = np.quantile(bootstrap_distribution, [q - h, q + h])
    spacing = max(float(hi - lo), grid, 1e-300)
    se_one_draw = math.sqrt(q * (1 - q)) * spacing / (2 * h)
    return 4 * se_one_draw * math.sqrt(sum(1 / b for b in n_resamples)) + grid


# ---------------------------------------------------------------------------------------------------------------------
# Plain loops
# ---------------------------------------------------------------------------------------------------------------------


def _top_label(y_true, y_prob):
    conf, correct = [], []
    for row, y in zip(y_prob, y_true, strict=True):
        k = int(np.argmax(row))
        conf.append(float(row[k]))
        correct.append(1.0 if k == int(y) else 0.0)
    return conf, correct


def binned_loop(y_true, y_prob, edges) -> list[tuple[int, float, float]]:
    """Per bin ``(count, mean confidence, accuracy)`` with bins ``[e_b, e_{b+1})``, the last one closed."""
    conf, correct = _top_label(y_true, y_prob)
    n_bins = len(edges) - 1
    out = []
    for b in range(n_bins):
        lo, hi = edges[b], edges[b + 1]
        members = [i for i, c in enumerate(conf) if lo <= c < hi or (b == n_bins - 1 and c == hi)]
        if members:
            out.append(
                (
                    len(members),
                    sum(conf[i] for i in members) / len(members),
                    sum(correct[i] for i in members) / len(members),
                )
            )
        else:
            out.append((0, math.nan, math.nan))
    return out


def ece_loop(y_true, y_prob, edges, *, norm: str = "l1") -> float:
    bins = binned_loop(y_true, y_prob, edges)
    n = len(y_true)
    gaps = [(count, abs(acc - conf)) for count, conf, acc in bins if count]
    if norm == "max":
        return max(g for _, g in gaps)
    return sum(count / n * g for count, g in gaps)


def adaptive_ece_loop(y_true, y_prob, n_bins: int) -> float:
    """Equal-mass ECE by rank: bin b holds the samples of sorted rank ceil(bN/B) .. ceil((b+1)N/B) - 1.

    Defined on ranks, not on edges, so it is an independent check of the quantile edges (for distinct confidences).
    """
    conf, correct = _top_label(y_true, y_prob)
    n = len(conf)
    order = sorted(range(n), key=lambda i: conf[i])
    total = 0.0
    for b in range(n_bins):
        start, stop = math.ceil(b * n / n_bins), math.ceil((b + 1) * n / n_bins)
        members = order[start:stop]
        if not members:
            continue
        acc = sum(correct[i] for i in members) / len(members)
        mean_conf = sum(conf[i] for i in members) / len(members)
        total += len(members) / n * abs(acc - mean_conf)
    return total


def brier_loop(y_true, y_prob) -> float:
    return sum(
        sum((p - (1.0 if k == y else 0.0)) ** 2 for k, p in enumerate(row))
        for row, y in zip(y_prob, y_true, strict=True)
    ) / len(y_true)
