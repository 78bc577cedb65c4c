"""Calibration of the top-label confidence: reliability bins, ECE/MCE, Brier, NLL and temperature scaling.

The binned metrics share three private steps, used both by the functions and by
:class:`CalibrationErrorAccumulator` (the torchmetrics pattern):

1. :func:`_top_label` turns ``(y_true, y_prob)`` into per-sample confidence ``max_k p_k`` and correctness;
2. :func:`_uniform_edges` / :func:`_quantile_edges` give the bin edges, :func:`_bin_sums` the per-bin sums;
3. :func:`_calibration_error` reduces the sums to ECE (``norm="l1"``) or MCE (``norm="max"``).

Binning convention: bin ``b`` holds confidences in ``[e_b, e_{b+1})``; the last bin is closed, ``[e_{B-1}, 1]``.
This is the torchmetrics convention except that torchmetrics puts a confidence of exactly 1.0 in an extra,
(B+1)-th bin; here it belongs to the last bin, so a reliability diagram has exactly ``n_bins`` bins.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from deployable.core.records import CalibrationMetrics, ReliabilityBin
from deployable.evaluation.metrics._validation import (
    check_consistent_length,
    check_labels,
    check_logits,
    check_n_bins,
    check_probabilities,
    log_softmax,
    softmax,
)

Strategy = Literal["uniform", "quantile"]
Norm = Literal["l1", "max"]

# Temperature search range; log-spaced because T acts multiplicatively on the logits.
T_MIN, T_MAX = 0.05, 20.0


# ---------------------------------------------------------------------------------------------------------------------
# Shared private steps
# ---------------------------------------------------------------------------------------------------------------------


def _check_prob_pair(y_true: Any, y_prob: Any) -> tuple[np.ndarray, np.ndarray]:
    prob = check_probabilities(y_prob)
    t = check_labels(y_true, "y_true", n_classes=prob.shape[1])
    check_consistent_length(y_true=t, y_prob=prob)
    return t, prob


def _check_logit_pair(y_true: Any, logits: Any, *, true_name: str, logits_name: str) -> tuple[np.ndarray, np.ndarray]:
    z = check_logits(logits, logits_name)
    t = check_labels(y_true, true_name, n_classes=z.shape[1])
    check_consistent_length(**{true_name: t, logits_name: z})
    return t, z


def _top_label(t: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Confidence ``max_k p_k`` and correctness ``1[argmax_k p_k = y]``, both shape ``(N,)`` float64."""
    pred = prob.argmax(axis=1)
    confidence = prob[np.arange(prob.shape[0]), pred]
    return confidence, (pred == t).astype(np.float64)


def _uniform_edges(n_bins: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, n_bins + 1)


def _quantile_edges(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-mass edges: inner edge ``k`` sits at rank ``k N / B`` of the sorted confidences (interpolated).

    With distinct confidences, bin ``b`` then holds exactly the samples of rank ``ceil(bN/B) .. ceil((b+1)N/B) - 1``.
    Outer edges are 0 and 1 so that the bins tile ``[0, 1]``; repeated edges (ties) are merged, so fewer than
    ``n_bins`` bins are returned when many confidences are equal.
    """
    s = np.sort(confidence)
    n = s.shape[0]
    ranks = np.arange(1, n_bins) * n / n_bins
    inner = np.interp(ranks, np.arange(n), s)
    return np.unique(np.concatenate(([0.0], inner, [1.0])))


def _edges(confidence: np.ndarray, n_bins: int, strategy: str) -> np.ndarray:
    if strategy == "uniform":
        return _uniform_edges(n_bins)
    if strategy == "quantile":
        return _quantile_edges(confidence, n_bins)
    raise ValueError(f"strategy: expected 'uniform' or 'quantile', but found {strategy!r}")


def _bin_sums(
    confidence: np.ndarray, correct: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin sample count, confidence sum and correct count, each shape ``(len(edges) - 1,)``.

    Sums (not means) so that batches can be added: the accumulator relies on this.
    """
    n_bins = edges.shape[0] - 1
    index = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins).astype(np.int64)
    conf_sum = np.bincount(index, weights=confidence, minlength=n_bins)
    acc_sum = np.bincount(index, weights=correct, minlength=n_bins)
    return counts, conf_sum, acc_sum


def _calibration_error(counts: np.ndarray, conf_sum: np.ndarray, acc_sum: np.ndarray, norm: str) -> float:
    """ECE (``"l1"``) or MCE (``"max"``) from the per-bin sums; empty bins do not count."""
    nonempty = counts > 0
    gap = np.abs(acc_sum[nonempty] - conf_sum[nonempty]) / counts[nonempty]
    if norm == "l1":
        # sum_b |B_b|/N * |acc_b - conf_b| == sum_b |acc_sum_b - conf_sum_b| / N
        return float(np.sum(gap * counts[nonempty]) / counts.sum())
    if norm == "max":
        return float(gap.max())
    raise ValueError(f"norm: expected 'l1' or 'max', but found {norm!r}")


def _reliability(
    counts: np.ndarray, conf_sum: np.ndarray, acc_sum: np.ndarray, edges: np.ndarray
) -> tuple[ReliabilityBin, ...]:
    bins = []
    for b in range(counts.shape[0]):
        n_b = int(counts[b])
        bins.append(
            ReliabilityBin(
                lower=float(edges[b]),
                upper=float(edges[b + 1]),
                count=n_b,
                confidence=float(conf_sum[b] / n_b) if n_b else float("nan"),
                accuracy=float(acc_sum[b] / n_b) if n_b else float("nan"),
            )
        )
    return tuple(bins)


def _binned(
    y_true: Any, y_prob: Any, n_bins: int, strategy: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate, then ``(counts, conf_sum, acc_sum, edges)`` of the top-label confidences."""
    n_bins = check_n_bins(n_bins)
    t, prob = _check_prob_pair(y_true, y_prob)
    confidence, correct = _top_label(t, prob)
    edges = _edges(confidence, n_bins, strategy)
    return (*_bin_sums(confidence, correct, edges), edges)


def _nll(t: np.ndarray, logits: np.ndarray, temperature: float) -> float:
    return float(-np.mean(log_softmax(logits, temperature)[np.arange(t.shape[0]), t]))


# ---------------------------------------------------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------------------------------------------------


def reliability_bins(
    y_true: Any, y_prob: Any, *, n_bins: int = 15, strategy: Strategy = "uniform"
) -> tuple[ReliabilityBin, ...]:
    """Reliability-diagram bins of the top-label confidence.

    Args:
        y_true: true class indices, shape ``(N,)``.
        y_prob: class probabilities, shape ``(N, C)``.
        n_bins: number of bins ``B``.
        strategy: ``"uniform"``: ``B`` equal-width bins on ``[0, 1]`` (as torchmetrics); ``"quantile"``: equal-mass
            ("adaptive") bins whose edges are quantiles of the confidences (ties can merge bins).

    Returns:
        One :class:`~deployable.core.records.ReliabilityBin` per bin, in increasing order, each with its edges,
        sample count, mean confidence and accuracy; an empty bin has count 0 and NaN confidence and accuracy.
    """
    counts, conf_sum, acc_sum, edges = _binned(y_true, y_prob, n_bins, strategy)
    return _reliability(counts, conf_sum, acc_sum, edges)


def expected_calibration_error(y_true: Any, y_prob: Any, *, n_bins: int = 15, strategy: Strategy = "uniform") -> float:
    r"""Expected calibration error of the top-label confidence.

    .. math:: \mathrm{ECE} = \sum_{b=1}^{B} \frac{|B_b|}{N} \, \bigl|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)\bigr|

    where :math:`\mathrm{acc}(B_b)` is the fraction of correct top-1 predictions in bin :math:`b` and
    :math:`\mathrm{conf}(B_b)` their mean confidence. With ``strategy="quantile"`` this is the adaptive ECE.

    Args:
        y_true: true class indices, shape ``(N,)``.
        y_prob: class probabilities, shape ``(N, C)``.
        n_bins: number of bins ``B``.
        strategy: ``"uniform"`` (equal width) or ``"quantile"`` (equal mass).

    Returns:
        ECE in ``[0, 1]``; lower is better.
    """
    counts, conf_sum, acc_sum, _ = _binned(y_true, y_prob, n_bins, strategy)
    return _calibration_error(counts, conf_sum, acc_sum, "l1")


def maximum_calibration_error(y_true: Any, y_prob: Any, *, n_bins: int = 15, strategy: Strategy = "uniform") -> float:
    r"""Maximum calibration error: the largest gap over non-empty bins.

    .. math:: \mathrm{MCE} = \max_{b : |B_b| > 0} \bigl|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)\bigr|

    Args:
        y_true: true class indices, shape ``(N,)``.
        y_prob: class probabilities, shape ``(N, C)``.
        n_bins: number of bins ``B``.
        strategy: ``"uniform"`` (equal width) or ``"quantile"`` (equal mass).

    Returns:
        MCE in ``[0, 1]``; lower is better.
    """
    counts, conf_sum, acc_sum, _ = _binned(y_true, y_prob, n_bins, strategy)
    return _calibration_error(counts, conf_sum, acc_sum, "max")


def brier_score_loss(y_true: Any, y_prob: Any) -> float:
    r"""Multiclass Brier score: mean squared distance between the probability vector and the one-hot label.

    .. math:: \mathrm{BS} = \frac{1}{N} \sum_{i=1}^{N} \sum_{k=0}^{C-1} \bigl(p_{ik} - 1[y_i = k]\bigr)^2

    It lies in ``[0, 2]`` and is *not* halved: for two classes it is twice the classic binary Brier score
    (scikit-learn's ``brier_score_loss(..., scale_by_half=False)``).

    Args:
        y_true: true class indices, shape ``(N,)``.
        y_prob: class probabilities, shape ``(N, C)``.

    Returns:
        Brier score; lower is better.
    """
    t, prob = _check_prob_pair(y_true, y_prob)
    diff = prob.copy()
    diff[np.arange(t.shape[0]), t] -= 1.0
    return float(np.mean(np.sum(diff * diff, axis=1)))


def log_loss(y_true: Any, y_prob: Any, *, eps: float = 1e-12) -> float:
    r"""Mean negative log-likelihood of the true class.

    .. math:: \mathrm{NLL} = -\frac{1}{N} \sum_{i=1}^{N} \log \max(p_{i, y_i}, \varepsilon)

    Args:
        y_true: true class indices, shape ``(N,)``.
        y_prob: class probabilities, shape ``(N, C)``.
        eps: floor on the true-class probability so a confident mistake costs ``-log(eps)`` instead of infinity.

    Returns:
        NLL in nats; lower is better.
    """
    t, prob = _check_prob_pair(y_true, y_prob)
    p_true = prob[np.arange(t.shape[0]), t]
    return float(-np.mean(np.log(np.maximum(p_true, eps))))


def fit_temperature(logits: Any, y_true: Any) -> float:
    r"""Temperature ``T`` minimising the NLL of ``softmax(logits / T)`` (Guo et al., 2017).

    .. math:: T^* = \arg\min_{T \in [0.05, 20]} -\frac{1}{N} \sum_i \log \mathrm{softmax}(z_i / T)_{y_i}

    The search runs over ``log T`` with bounded Brent (:func:`scipy.optimize.minimize_scalar`), which is
    deterministic. The NLL is convex in ``1/T``, hence unimodal in ``log T``, so the bounded search finds the global
    minimum within the range.

    Args:
        logits: shape ``(N, C)``, from the calibration split (never the test split).
        y_true: true class indices, shape ``(N,)``.

    Returns:
        The fitted temperature; 1.0 when every row of logits is constant (temperature has no effect).
    """
    t, z = _check_logit_pair(y_true, logits, true_name="y_true", logits_name="logits")
    if np.all(np.ptp(z, axis=1) == 0):
        return 1.0
    from scipy.optimize import minimize_scalar  # scipy.optimize takes a second to import: only when fitting

    result = minimize_scalar(
        lambda log_t: _nll(t, z, float(np.exp(log_t))),
        bounds=(np.log(T_MIN), np.log(T_MAX)),
        method="bounded",
        options={"xatol": 1e-7},
    )
    return float(np.exp(result.x))


def calibration_metrics(
    y_true: Any,
    logits: Any,
    *,
    calib_true: Any,
    calib_logits: Any,
    fitted_on: str = "validation",
    n_bins: int = 15,
) -> CalibrationMetrics:
    """Calibration of the test logits, before and after temperature scaling fitted on a separate split.

    ECE, MCE and the reliability bins use ``n_bins`` uniform bins; the adaptive ECE uses ``n_bins`` equal-mass
    bins. The temperature is fitted on ``(calib_true, calib_logits)`` only, then applied to the test logits.

    Args:
        y_true: test true class indices, shape ``(N,)``.
        logits: test logits, shape ``(N, C)``.
        calib_true: calibration-split true class indices, shape ``(M,)``.
        calib_logits: calibration-split logits, shape ``(M, C)``.
        fitted_on: name of the calibration split, recorded as ``temperature_fitted_on``.
        n_bins: number of bins.

    Returns:
        A :class:`~deployable.core.records.CalibrationMetrics`.
    """
    n_bins = check_n_bins(n_bins)
    t, z = _check_logit_pair(y_true, logits, true_name="y_true", logits_name="logits")
    ct, cz = _check_logit_pair(calib_true, calib_logits, true_name="calib_true", logits_name="calib_logits")
    if cz.shape[1] != z.shape[1]:
        raise ValueError(f"calib_logits: expected {z.shape[1]} class columns like logits, but found {cz.shape[1]}")
    prob = softmax(z)
    confidence, correct = _top_label(t, prob)
    uniform = _uniform_edges(n_bins)
    sums = _bin_sums(confidence, correct, uniform)
    adaptive = _bin_sums(confidence, correct, _quantile_edges(confidence, n_bins))

    temperature = fit_temperature(cz, ct)
    prob_t = softmax(z, temperature)
    conf_t, correct_t = _top_label(t, prob_t)
    sums_t = _bin_sums(conf_t, correct_t, uniform)

    return CalibrationMetrics(
        n_bins=n_bins,
        ece=_calibration_error(*sums, "l1"),
        adaptive_ece=_calibration_error(*adaptive, "l1"),
        mce=_calibration_error(*sums, "max"),
        brier=brier_score_loss(t, prob),
        nll=_nll(t, z, 1.0),
        reliability=_reliability(*sums, uniform),
        temperature=temperature,
        temperature_fitted_on=str(fitted_on),
        ece_after_temperature=_calibration_error(*sums_t, "l1"),
        nll_after_temperature=_nll(t, z, temperature),
        reliability_after_temperature=_reliability(*sums_t, uniform),
    )


# ---------------------------------------------------------------------------------------------------------------------
# Stateful accumulator
# ---------------------------------------------------------------------------------------------------------------------


class CalibrationErrorAccumulator:
    """ECE (or MCE) over batches, equal to the one-shot value on the concatenated batches.

    Only uniform bins can be accumulated: equal-mass edges depend on every confidence seen. State is the per-bin
    count, confidence sum and correct count, i.e. ``3 * n_bins`` numbers.

    Example:
        >>> acc = CalibrationErrorAccumulator(n_bins=15)
        >>> for y, p in batches:  # doctest: +SKIP
        ...     acc.update(y, p)
        >>> ece = acc.compute()  # doctest: +SKIP

    Args:
        n_bins: number of equal-width bins on ``[0, 1]``.
        norm: ``"l1"`` for ECE, ``"max"`` for MCE.
    """

    def __init__(self, n_bins: int = 15, *, norm: Norm = "l1") -> None:
        self.n_bins = check_n_bins(n_bins)
        if norm not in ("l1", "max"):
            raise ValueError(f"norm: expected 'l1' or 'max', but found {norm!r}")
        self.norm = norm
        self._edges = _uniform_edges(self.n_bins)
        self.reset()

    def reset(self) -> None:
        """Forget every sample seen."""
        self.counts = np.zeros(self.n_bins, dtype=np.int64)
        self.conf_sum = np.zeros(self.n_bins)
        self.acc_sum = np.zeros(self.n_bins)
        self.n_classes: int | None = None

    def update(self, y_true: Any, y_prob: Any) -> None:
        """Add a batch.

        Args:
            y_true: true class indices, shape ``(n,)``.
            y_prob: class probabilities, shape ``(n, C)``; ``C`` must be the same in every batch.
        """
        t, prob = _check_prob_pair(y_true, y_prob)
        if self.n_classes is not None and prob.shape[1] != self.n_classes:
            raise ValueError(
                f"y_prob: expected {self.n_classes} class columns as in earlier batches, but found {prob.shape[1]}"
            )
        self.n_classes = prob.shape[1]
        counts, conf_sum, acc_sum = _bin_sums(*_top_label(t, prob), self._edges)
        self.counts += counts
        self.conf_sum += conf_sum
        self.acc_sum += acc_sum

    def compute(self) -> float:
        """ECE (``norm="l1"``) or MCE (``norm="max"``) of every sample seen since the last reset."""
        if self.counts.sum() == 0:
            raise ValueError("CalibrationErrorAccumulator: no samples yet; call update(y_true, y_prob) first")
        return _calibration_error(self.counts, self.conf_sum, self.acc_sum, self.norm)

    def reliability(self) -> tuple[ReliabilityBin, ...]:
        """Reliability bins of every sample seen since the last reset."""
        return _reliability(self.counts, self.conf_sum, self.acc_sum, self._edges)
