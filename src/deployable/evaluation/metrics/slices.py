"""Metrics per data slice (one value of one metadata column), with percentile-bootstrap intervals."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from deployable.core.records import Interval, SliceMetrics
from deployable.evaluation.metrics._validation import (
    check_consistent_length,
    check_labels,
    check_level,
    check_n_bins,
    check_n_classes,
    check_n_samples,
    check_probabilities,
)
from deployable.evaluation.metrics.calibration import _bin_sums, _calibration_error, _top_label, _uniform_edges
from deployable.evaluation.metrics.quality import _confusion_matrix, _prf_from_confusion

# Upper bound on the elements of one (resamples x samples) index matrix: 2**21 int64 = 16 MiB per chunk.
_MAX_INDEX_ELEMENTS = 2**21


def bootstrap_interval(
    statistic: Callable[..., Any],
    *arrays: Any,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int | np.random.Generator = 0,
    vectorized: bool = False,
) -> Interval:
    r"""Percentile-bootstrap confidence interval of ``statistic`` over samples.

    Each resample draws ``N`` sample indices with replacement and applies the *same* indices to every array (a
    paired bootstrap), so ``statistic(y_true[idx], y_pred[idx])`` stays aligned. The interval is

    .. math:: \bigl[\hat\theta^*_{(\alpha/2)}, \hat\theta^*_{(1-\alpha/2)}\bigr], \quad \alpha = 1 - \text{level}

    the empirical quantiles of the resampled statistics (scipy's ``method="percentile"``).

    Indices are drawn as an ``(n_resamples, N)`` matrix in chunks of bounded memory. With ``vectorized=True`` the
    statistic receives every array indexed by a whole chunk, i.e. shape ``(b, N, ...)``, and must return shape
    ``(b,)`` (e.g. ``lambda correct: correct.mean(axis=-1)``); otherwise it is called once per resample with
    arrays of shape ``(N, ...)``.

    Args:
        statistic: function of the arrays returning a scalar (or ``(b,)`` when vectorized).
        *arrays: one or more arrays with the same first dimension ``N`` (the samples).
        n_resamples: number of bootstrap resamples.
        level: confidence level in ``(0, 1)``.
        seed: seed or generator; the same seed gives the same interval.
        vectorized: whether ``statistic`` accepts a leading resample axis.

    Returns:
        :class:`~deployable.core.records.Interval` with ``value = statistic(*arrays)`` on the full sample.

    Raises:
        ValueError: no arrays, arrays of different lengths, an empty sample, a bad level or ``n_resamples``, or a
            statistic that returns a non-finite value or the wrong shape.
    """
    if not arrays:
        raise ValueError("arrays: expected at least one array to resample, but none was given")
    level = check_level(level)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"n_resamples: expected a positive integer, but found {n_resamples!r}")
    data = [np.asarray(a) for a in arrays]
    for i, a in enumerate(data):
        if a.ndim == 0:
            raise ValueError(f"arrays[{i}]: expected an array with a sample axis, but found a scalar")
    n = check_consistent_length(**{f"arrays[{i}]": a for i, a in enumerate(data)})
    check_n_samples(n, "arrays")

    value = float(np.asarray(statistic(*data)))
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    chunk = int(max(1, min(n_resamples, _MAX_INDEX_ELEMENTS // n)))
    stats = np.empty(n_resamples, dtype=np.float64)
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        index = rng.integers(0, n, size=(b, n))
        if vectorized:
            out = np.asarray(statistic(*(a[index] for a in data)), dtype=np.float64)
            if out.shape != (b,):
                raise ValueError(
                    f"statistic: with vectorized=True expected an output of shape ({b},) (one value per resample), "
                    f"but found shape {out.shape}; reduce over axis=-1 or pass vectorized=False"
                )
            stats[start : start + b] = out
        else:
            for j in range(b):
                stats[start + j] = statistic(*(a[index[j]] for a in data))
    if not np.all(np.isfinite(stats)):
        bad = int(np.sum(~np.isfinite(stats)))
        raise ValueError(f"statistic: returned a non-finite value on {bad} of {n_resamples} resamples")
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return Interval(value=value, low=float(low), high=float(high), level=level)


def _mean_last_axis(correct: np.ndarray) -> np.ndarray:
    return correct.mean(axis=-1)


def _slice_seed(seed: int, column: str, value: str) -> np.random.Generator:
    # Derived from (seed, column, value) only: a slice's interval does not change when other slices are added.
    return np.random.default_rng([int(seed), zlib.crc32(column.encode()), zlib.crc32(value.encode())])


def slice_metrics(
    y_true: Any,
    y_prob: Any,
    *,
    slices: Mapping[str, Sequence[Any]],
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    n_bins: int = 15,
    n_classes: int | None = None,
) -> tuple[SliceMetrics, ...]:
    """Accuracy (with a bootstrap interval), macro-F1 and ECE on every slice of the data.

    For each column of ``slices`` and each of its distinct values (as strings, sorted), the slice is the set of
    samples with that value. Within a slice:

    - accuracy is the fraction of correct top-1 predictions, with a percentile-bootstrap interval
      (:func:`bootstrap_interval`, ``n_bootstrap`` resamples);
    - macro-F1 is the mean F1 over the classes present in the slice's ``y_true`` (``zero_division=0``; predictions
      of other classes still count as errors), i.e. scikit-learn's ``f1_score(..., labels=present, average="macro")``;
    - ECE uses ``n_bins`` uniform bins.

    Args:
        y_true: true class indices, shape ``(N,)``.
        y_prob: class probabilities, shape ``(N, C)``.
        slices: column name -> one value per sample (length ``N``); values are compared as strings.
        n_bootstrap: bootstrap resamples for the accuracy interval.
        level: confidence level of the interval.
        seed: base seed; each slice derives its own generator from ``(seed, column, value)``.
        n_bins: number of ECE bins.
        n_classes: number of classes; must equal ``C`` when given.

    Returns:
        One :class:`~deployable.core.records.SliceMetrics` per (column, value), columns in the order given.
    """
    prob = check_probabilities(y_prob)
    if n_classes is not None and check_n_classes(n_classes) != prob.shape[1]:
        raise ValueError(f"n_classes: expected {prob.shape[1]} (the columns of y_prob), but found {n_classes}")
    n_classes = prob.shape[1]
    t = check_labels(y_true, "y_true", n_classes=n_classes)
    n = check_consistent_length(y_true=t, y_prob=prob)
    n_bins = check_n_bins(n_bins)
    check_level(level)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, but found {seed!r}")

    pred = prob.argmax(axis=1)
    confidence, correct = _top_label(t, prob)
    edges = _uniform_edges(n_bins)

    results: list[SliceMetrics] = []
    for column, values in slices.items():
        column = str(column)
        labels = np.asarray([str(v) for v in values])
        if labels.shape != (n,):
            raise ValueError(f"slices[{column!r}]: expected {n} values (one per sample), but found {labels.shape[0]}")
        uniques, inverse = np.unique(labels, return_inverse=True)
        for j, value in enumerate(uniques):
            mask = inverse == j
            value = str(value)
            cm = _confusion_matrix(t[mask], pred[mask], n_classes)
            _, _, f1, support = _prf_from_confusion(cm)
            accuracy = bootstrap_interval(
                _mean_last_axis,
                correct[mask],
                n_resamples=n_bootstrap,
                level=level,
                seed=_slice_seed(seed, column, value),
                vectorized=True,
            )
            results.append(
                SliceMetrics(
                    column=column,
                    value=value,
                    n=int(mask.sum()),
                    accuracy=accuracy,
                    macro_f1=float(f1[support > 0].mean()),
                    ece=_calibration_error(*_bin_sums(confidence[mask], correct[mask], edges), "l1"),
                )
            )
    return tuple(results)
