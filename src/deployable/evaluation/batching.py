"""How a split is cut into batches. Shared by the runner and the benchmark so both do the same forward passes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np


def batch_plan(inputs: Any, batch_size: int) -> list[np.ndarray]:
    """Index arrays, one per batch.

    Text is grouped by length (longest first) so that dynamic padding pads little; other inputs keep their order.
    """
    n = len(inputs)
    order = np.argsort([-len(t) for t in inputs], kind="stable") if isinstance(inputs, list) else np.arange(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def take(inputs: Any, index: np.ndarray) -> Any:
    """The inputs at ``index``: a list for text, an array otherwise."""
    if isinstance(inputs, list):
        return [inputs[i] for i in index]
    return inputs[index]


def iter_batches(inputs: Any, batch_size: int) -> Iterator[tuple[np.ndarray, Any]]:
    for index in batch_plan(inputs, batch_size):
        yield index, take(inputs, index)
