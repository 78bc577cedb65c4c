"""Input checks shared by every metric, and a numerically stable softmax.

Every check converts its input (list, tuple, NumPy array or CPU tensor) to a NumPy array and raises a
:class:`ValueError` that names the argument, says what was expected and what was found. None of these use
``assert``: checks on user input must survive ``python -O``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Probabilities computed in float32 (or summed over many classes) do not sum to exactly 1.
PROB_SUM_ATOL = 1e-4


def _as_array(x: Any, name: str, *, dtype: Any = None) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a numeric array, but it could not be converted ({exc})") from exc
    if arr.dtype == object:
        raise ValueError(f"{name}: expected a numeric array, but found values of mixed or non-numeric type")
    return arr


def check_finite(arr: np.ndarray, name: str) -> None:
    """Raise a ValueError naming ``name`` if ``arr`` holds NaN or infinity."""
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        n_nan = int(np.isnan(arr).sum())
        n_inf = int(np.isinf(arr).sum())
        raise ValueError(
            f"{name}: expected finite values, but found {n_nan} NaN and {n_inf} infinite value(s); "
            "remove or impute them before computing metrics"
        )


def check_n_samples(n: int, name: str) -> None:
    if n == 0:
        raise ValueError(f"{name}: expected at least one sample, but the array is empty")


def check_labels(y: Any, name: str = "y_true", *, n_classes: int | None = None) -> np.ndarray:
    """Class indices as an int64 array.

    Args:
        y: class indices, shape ``(N,)``; integers, or floats with integral values.
        name: argument name used in error messages.
        n_classes: when given, every label must lie in ``[0, n_classes)``.

    Returns:
        Array of shape ``(N,)`` and dtype int64.

    Raises:
        ValueError: non-numeric (e.g. string) labels, NaN/inf, non-integral values, wrong shape, empty input, or
            labels out of range.
    """
    try:
        arr = np.asarray(y)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a 1-D array of class indices, but could not convert it ({exc})") from exc
    if arr.dtype.kind in "USO":
        example = f" (e.g. {arr.ravel()[:1].tolist()[0]!r})" if arr.size else ""
        raise ValueError(
            f"{name}: expected integer class indices, but found values of dtype {arr.dtype}{example}; "
            "map label names to their column index in y_prob first"
        )
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of class indices of shape (N,), but found shape {arr.shape}")
    check_n_samples(arr.shape[0], name)
    if arr.dtype.kind == "b":
        arr = arr.astype(np.int64)
    elif arr.dtype.kind == "f":
        check_finite(arr, name)
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"{name}: expected integer class indices, but found non-integral values")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected integer class indices, but found dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if n_classes is not None:
        check_n_classes(n_classes)
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= n_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"{name}: expected class indices in [0, {n_classes - 1}] (n_classes={n_classes}), but found {bad}"
            )
    elif arr.min() < 0:
        raise ValueError(f"{name}: expected non-negative class indices, but found {int(arr.min())}")
    return arr


def check_n_classes(n_classes: Any) -> int:
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise ValueError(f"n_classes: expected a positive integer, but found {n_classes!r}")
    return int(n_classes)


def check_logits(logits: Any, name: str = "logits") -> np.ndarray:
    """Logits as a float64 array of shape ``(N, C)``; NaN and infinity are rejected."""
    arr = _as_array(logits, name)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected a float array, but found dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array of shape (N, C), but found shape {arr.shape}")
    check_n_samples(arr.shape[0], name)
    if arr.shape[1] < 1:
        raise ValueError(f"{name}: expected at least one class column, but found shape {arr.shape}")
    check_finite(arr, name)
    return arr


def check_probabilities(y_prob: Any, name: str = "y_prob", *, atol: float = PROB_SUM_ATOL) -> np.ndarray:
    """Class probabilities as a float64 array of shape ``(N, C)`` whose rows sum to 1 within ``atol``.

    Raises:
        ValueError: wrong shape, NaN/inf, values outside ``[0, 1]``, or rows not summing to 1 (the message suggests
            :func:`softmax` when the input looks like logits).
    """
    arr = check_logits(y_prob, name)
    if arr.min() < -atol or arr.max() > 1 + atol:
        raise ValueError(
            f"{name}: expected probabilities in [0, 1], but found values in [{arr.min():.4g}, {arr.max():.4g}]; "
            "if these are logits, apply softmax first"
        )
    sums = arr.sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1.0)))
    if abs(sums[worst] - 1.0) > atol:
        raise ValueError(
            f"{name}: expected every row to sum to 1 (within {atol:g}), but row {worst} sums to {sums[worst]:.6g}; "
            "pass normalised class probabilities (e.g. softmax of the logits)"
        )
    return arr


def check_consistent_length(**arrays: np.ndarray) -> int:
    """The common number of samples (first axis) of ``arrays``, or a ValueError listing every length."""
    lengths = {name: int(np.shape(a)[0]) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        found = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise ValueError(f"expected the same number of samples in every argument, but {found}")
    return next(iter(lengths.values()))


def check_sample_weight(sample_weight: Any, n: int) -> np.ndarray:
    """Non-negative finite weights of shape ``(n,)`` with a positive sum, as float64."""
    arr = _as_array(sample_weight, "sample_weight")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"sample_weight: expected numeric weights, but found dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if arr.shape != (n,):
        raise ValueError(f"sample_weight: expected shape ({n},), but found shape {arr.shape}")
    check_finite(arr, "sample_weight")
    if arr.min() < 0:
        raise ValueError(f"sample_weight: expected non-negative weights, but found {arr.min():.4g}")
    if arr.sum() <= 0:
        raise ValueError("sample_weight: expected a positive total weight, but all weights are zero")
    return arr


def check_n_bins(n_bins: Any) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins: expected a positive integer, but found {n_bins!r}")
    return int(n_bins)


def check_level(level: Any) -> float:
    if not isinstance(level, (int, float, np.floating)) or not 0.0 < float(level) < 1.0:
        raise ValueError(f"level: expected a confidence level strictly between 0 and 1, but found {level!r}")
    return float(level)


def softmax(logits: Any, temperature: float = 1.0) -> np.ndarray:
    r"""Numerically stable softmax of ``logits / temperature`` along the class axis.

    .. math:: p_{ik} = \frac{\exp((z_{ik} - \max_j z_{ij}) / T)}{\sum_l \exp((z_{il} - \max_j z_{ij}) / T)}

    Subtracting the row maximum leaves the result unchanged and keeps ``exp`` from overflowing.

    Args:
        logits: shape ``(N, C)``.
        temperature: ``T > 0``; ``T > 1`` softens, ``T < 1`` sharpens.

    Returns:
        Probabilities of shape ``(N, C)``, float64, rows summing to 1.
    """
    z = check_logits(logits)
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature: expected a positive finite number, but found {temperature!r}")
    z = (z - z.max(axis=1, keepdims=True)) / float(temperature)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def log_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``log(softmax(logits / T))`` computed without forming the probabilities (no ``log(0)``).

    ``logits`` must already be a checked float64 array of shape ``(N, C)``.
    """
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))
