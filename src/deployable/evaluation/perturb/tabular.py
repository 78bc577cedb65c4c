"""Tabular corruptions: measurement noise, missing values as a deployed mean imputer fills them, flipped categories.

Inputs are float arrays ``(N, F)``. Per-feature statistics (spread, means, categories) come from a clean reference
(e.g. the training split) so a corruption of the test split means what it would mean in deployment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

# Index = severity (0 = identity).
NOISE_STD = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)  # multiple of each feature's reference std
MISSING_SHARE = (0.0, 0.05, 0.10, 0.20, 0.30, 0.50)  # share of cells
FLIP_SHARE = (0.0, 0.05, 0.10, 0.20, 0.30, 0.50)  # share of cells of categorical columns

MAX_CATEGORIES = 10

Corruption = Callable[[np.ndarray, int, np.random.Generator, np.ndarray], np.ndarray]


def _finite_mean_std(ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and std over finite values (0 for a column without any)."""
    finite = np.isfinite(ref)
    count = finite.sum(axis=0)
    values = np.where(finite, ref, 0.0)
    mean = np.divide(values.sum(axis=0), count, out=np.zeros(ref.shape[1]), where=count > 0)
    square = np.where(finite, (ref - mean) ** 2, 0.0).sum(axis=0)
    std = np.sqrt(np.divide(square, count, out=np.zeros(ref.shape[1]), where=count > 0))
    return mean, std


def categorical_columns(reference: np.ndarray) -> dict[int, np.ndarray]:
    """Columns that look categorical: at most ``MAX_CATEGORIES`` distinct finite values, all integers.

    Returns:
        column index -> its sorted distinct values in the reference.
    """
    ref = np.asarray(reference, dtype=np.float64)
    out = {}
    for j in range(ref.shape[1]):
        column = ref[:, j]
        values = np.unique(column[np.isfinite(column)])
        if 0 < len(values) <= MAX_CATEGORIES and np.all(values == np.round(values)):
            out[j] = values
    return out


def feature_noise(x: np.ndarray, severity: int, rng: np.random.Generator, ref: np.ndarray) -> np.ndarray:
    """Gaussian noise with sigma a growing multiple of each feature's reference std (constant features stay)."""
    _, std = _finite_mean_std(ref)
    return x + rng.normal(size=x.shape) * (NOISE_STD[severity] * std)


def missing(x: np.ndarray, severity: int, rng: np.random.Generator, ref: np.ndarray) -> np.ndarray:
    """A growing share of cells goes missing and is imputed with the reference's feature mean, as a deployed
    mean imputer would do: the model sees the mean, never a NaN."""
    mean, _ = _finite_mean_std(ref)
    gone = rng.random(x.shape) < MISSING_SHARE[severity]
    return np.where(gone, mean[None, :], x)


def category_flip(x: np.ndarray, severity: int, rng: np.random.Generator, ref: np.ndarray) -> np.ndarray:
    """In categorical columns (see :func:`categorical_columns`), a growing share of cells takes another category
    observed in the reference, uniformly; every other column is left unchanged."""
    flip = rng.random(x.shape) < FLIP_SHARE[severity]
    offsets = rng.random(x.shape)
    out = x.copy()
    for j, values in categorical_columns(ref).items():
        rows = np.flatnonzero(flip[:, j] & np.isfinite(x[:, j]))
        k = len(values)
        if k < 2 or len(rows) == 0:
            continue
        current = x[rows, j]
        pos = np.clip(np.searchsorted(values, current), 0, k - 1)
        known = values[pos] == current
        # a known category moves by 1..k-1 places (uniform over the others); an unseen one takes any category
        shift = np.where(known, 1 + np.floor(offsets[rows, j] * (k - 1)), np.floor(offsets[rows, j] * k))
        new = np.where(known, pos + shift, shift).astype(np.int64) % k
        out[rows, j] = values[new]
    return out


CORRUPTIONS: dict[str, Corruption] = {
    "feature_noise": feature_noise,
    "missing": missing,
    "category_flip": category_flip,
}


def apply(inputs: Any, name: str, severity: int, rng: np.random.Generator, reference: Any = None) -> np.ndarray:
    """Corrupt a table; per-feature statistics come from ``reference`` (``inputs`` when None)."""
    x = np.asarray(inputs)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"tabular inputs: expected a numeric array (N, F), but got shape {x.shape}")
    if severity == 0:
        return np.array(x, copy=True)
    ref = x if reference is None else np.asarray(reference)
    if ref.ndim != 2 or ref.shape[1] != x.shape[1]:
        raise ValueError(f"tabular reference: expected shape (M, {x.shape[1]}) like the inputs, but got {ref.shape}")
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
    out = CORRUPTIONS[name](x.astype(np.float64), severity, rng, ref.astype(np.float64))
    return out.astype(dtype)
