"""How a split is cut into batches. Shared by the runner and the benchmark so both do the same forward passes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from deployable.data.dataset import Dataset, Split


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


def seeded_sample(dataset: Dataset, split: str, n: int | None, seed: int, salt: int) -> tuple[Split, np.ndarray]:
    """A seeded sample of ``n`` samples of a split (all when ``n`` is None or larger) and their row positions.

    Memoized on the dataset, so every variant of a run gets the same sample object (and its fingerprint once).
    ``salt`` keeps the samples of different uses (corruptions, attacks) independent under one seed.
    """
    whole = dataset.split(split)
    key = ("_seeded_sample", whole.fingerprint, n, seed, salt)
    if key in dataset.__dict__:
        return dataset.__dict__[key]
    if n is None or n >= len(whole):
        out = (whole, np.arange(len(whole)))
    else:
        index = np.sort(np.random.default_rng([seed, salt]).choice(len(whole), size=n, replace=False))
        sample = Split(
            name=whole.name,
            inputs=take(whole.inputs, index),
            labels=whole.labels[index],
            ids=whole.ids[index],
            slices={k: v[index] for k, v in whole.slices.items()},
            source=whole.source,
        )
        out = (sample, index)
    dataset.__dict__[key] = out
    return out


def clean_reference(dataset: Dataset, fallback: str) -> np.ndarray:
    """Clean inputs that give the value range (images) or each feature's spread (tables): the training split if any."""
    return np.asarray(dataset.split("train" if "train" in dataset.splits else fallback).inputs)
