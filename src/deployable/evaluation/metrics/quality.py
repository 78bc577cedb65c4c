"""Classification quality from the confusion matrix: accuracy, balanced accuracy, per-class P/R/F1, macro-F1.

Every function builds (or receives) the ``(C, C)`` confusion matrix and derives its numbers from it, so all of them
agree with each other by construction. Semantics follow scikit-learn with ``zero_division=0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deployable.core.records import ClassMetrics, QualityMetrics
from deployable.evaluation.metrics._validation import (
    check_consistent_length,
    check_labels,
    check_n_classes,
    check_probabilities,
    check_sample_weight,
)


def _check_pair(y_true: Any, y_pred: Any, n_classes: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Validated label arrays and the number of classes (inferred from the largest label when not given)."""
    if n_classes is not None:
        n_classes = check_n_classes(n_classes)
    t = check_labels(y_true, "y_true", n_classes=n_classes)
    p = check_labels(y_pred, "y_pred", n_classes=n_classes)
    check_consistent_length(y_true=t, y_pred=p)
    if n_classes is None:
        n_classes = int(max(t.max(), p.max())) + 1
    return t, p, n_classes


def _confusion_matrix(t: np.ndarray, p: np.ndarray, n_classes: int) -> np.ndarray:
    # One bincount over the flattened (true, pred) pair index: O(N + C^2), no Python loop.
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0 where ``den == 0`` (scikit-learn's ``zero_division=0``)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _prf_from_confusion(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0)
    support = cm.sum(axis=1)
    precision = _safe_divide(tp, predicted)
    recall = _safe_divide(tp, support)
    # 2TP / (2TP + FP + FN) equals 2PR / (P + R) wherever the latter is defined, and is 0 (not NaN) when TP = 0.
    f1 = _safe_divide(2 * tp, predicted + support)
    return precision, recall, f1, support.astype(np.int64)


def _balanced_accuracy_from_confusion(cm: np.ndarray) -> float:
    support = cm.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present]))


def confusion_matrix(y_true: Any, y_pred: Any, *, n_classes: int) -> np.ndarray:
    """Counts of (true, predicted) class pairs.

    Args:
        y_true: true class indices, shape ``(N,)``, values in ``[0, n_classes)``.
        y_pred: predicted class indices, shape ``(N,)``.
        n_classes: number of classes ``C``; classes that never occur still get a row and a column.

    Returns:
        Array of shape ``(C, C)``, dtype int64; entry ``[i, j]`` counts samples of true class ``i`` predicted as
        ``j`` (rows = true, columns = predicted, as in scikit-learn).
    """
    t, p, n_classes = _check_pair(y_true, y_pred, n_classes)
    return _confusion_matrix(t, p, n_classes).astype(np.int64, copy=False)


def accuracy_score(y_true: Any, y_pred: Any, *, sample_weight: Any = None) -> float:
    r"""Fraction (or weighted fraction) of correct predictions.

    .. math:: \mathrm{acc} = \frac{\sum_i w_i \, 1[\hat y_i = y_i]}{\sum_i w_i}

    Args:
        y_true: true class indices, shape ``(N,)``.
        y_pred: predicted class indices, shape ``(N,)``.
        sample_weight: optional non-negative weights, shape ``(N,)``; uniform when None.

    Returns:
        Accuracy in ``[0, 1]``.
    """
    t, p, _ = _check_pair(y_true, y_pred, None)
    correct = (t == p).astype(np.float64)
    if sample_weight is None:
        return float(correct.mean())
    w = check_sample_weight(sample_weight, t.shape[0])
    return float(np.dot(w, correct) / w.sum())


def balanced_accuracy_score(y_true: Any, y_pred: Any) -> float:
    r"""Mean recall over the classes that occur in ``y_true`` (scikit-learn semantics).

    .. math:: \mathrm{bacc} = \frac{1}{|K|} \sum_{k \in K} \frac{\mathrm{TP}_k}{\mathrm{TP}_k + \mathrm{FN}_k},
        \quad K = \{k : k \text{ occurs in } y_\text{true}\}

    Classes that are predicted but never true have no recall and are left out of the mean.

    Args:
        y_true: true class indices, shape ``(N,)``.
        y_pred: predicted class indices, shape ``(N,)``.

    Returns:
        Balanced accuracy in ``[0, 1]``.
    """
    t, p, n_classes = _check_pair(y_true, y_pred, None)
    return _balanced_accuracy_from_confusion(_confusion_matrix(t, p, n_classes))


def precision_recall_f1_support(
    y_true: Any, y_pred: Any, *, n_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""Per-class precision, recall, F1 and support, with ``zero_division=0``.

    .. math::
        P_k = \frac{TP_k}{TP_k + FP_k}, \quad R_k = \frac{TP_k}{TP_k + FN_k}, \quad
        F1_k = \frac{2 TP_k}{2 TP_k + FP_k + FN_k}

    A ratio whose denominator is 0 (class never predicted, never true, or both) is 0.

    Args:
        y_true: true class indices, shape ``(N,)``.
        y_pred: predicted class indices, shape ``(N,)``.
        n_classes: number of classes ``C``.

    Returns:
        ``(precision, recall, f1, support)``, each of shape ``(C,)``; the first three float64, support int64
        (the number of true samples of each class).
    """
    t, p, n_classes = _check_pair(y_true, y_pred, n_classes)
    return _prf_from_confusion(_confusion_matrix(t, p, n_classes))


def macro_f1_score(y_true: Any, y_pred: Any, *, n_classes: int) -> float:
    r"""Unweighted mean of the per-class F1 over all ``n_classes`` classes (``zero_division=0``).

    .. math:: \mathrm{F1}_\text{macro} = \frac{1}{C} \sum_{k=0}^{C-1} F1_k

    A class that is neither true nor predicted anywhere counts as F1 = 0, as in scikit-learn's
    ``f1_score(..., labels=range(C), average="macro", zero_division=0)``.

    Args:
        y_true: true class indices, shape ``(N,)``.
        y_pred: predicted class indices, shape ``(N,)``.
        n_classes: number of classes ``C``.

    Returns:
        Macro-F1 in ``[0, 1]``.
    """
    _, _, f1, _ = precision_recall_f1_support(y_true, y_pred, n_classes=n_classes)
    return float(f1.mean())


def quality_metrics(y_true: Any, y_prob: Any, *, label_names: Sequence[str]) -> QualityMetrics:
    """All quality numbers of one prediction set, with the top-1 class as the prediction.

    Args:
        y_true: true class indices, shape ``(N,)``.
        y_prob: class probabilities, shape ``(N, C)``; the prediction is ``argmax`` over classes.
        label_names: the ``C`` class names, in column order.

    Returns:
        A :class:`~deployable.core.records.QualityMetrics` with accuracy, balanced accuracy, macro-F1 (over all
        ``C`` classes), per-class metrics and the confusion matrix (rows = true, columns = predicted).
    """
    prob = check_probabilities(y_prob)
    n_classes = prob.shape[1]
    label_names = tuple(str(name) for name in label_names)
    if len(label_names) != n_classes:
        raise ValueError(
            f"label_names: expected {n_classes} names (one per column of y_prob), but found {len(label_names)}"
        )
    t = check_labels(y_true, "y_true", n_classes=n_classes)
    check_consistent_length(y_true=t, y_prob=prob)
    p = prob.argmax(axis=1)
    cm = _confusion_matrix(t, p, n_classes)
    precision, recall, f1, support = _prf_from_confusion(cm)
    return QualityMetrics(
        n=int(t.shape[0]),
        accuracy=float(np.trace(cm) / t.shape[0]),
        balanced_accuracy=_balanced_accuracy_from_confusion(cm),
        macro_f1=float(f1.mean()),
        per_class=tuple(
            ClassMetrics(
                label=label_names[k],
                precision=float(precision[k]),
                recall=float(recall[k]),
                f1=float(f1[k]),
                support=int(support[k]),
            )
            for k in range(n_classes)
        ),
        confusion_matrix=tuple(tuple(int(v) for v in row) for row in cm),
    )
