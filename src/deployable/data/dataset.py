"""The in-memory dataset: splits of raw inputs with integer labels, ids and slice values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deployable.core.errors import DataError, did_you_mean
from deployable.core.hashing import hash_json
from deployable.core.records import DatasetInfo, SplitInfo

UNLABELED = -1


@dataclass(frozen=True, eq=False)
class Split:
    """One split.

    Attributes:
        inputs: raw inputs; a list of str (text), an array (N, H, W[, C]) or (N, C, H, W) (image) or (N, F)
            (tabular).
        labels: int64 (N,), class index into the dataset's label names, ``UNLABELED`` (-1) where unknown (ood).
        ids: str (N,), unique within the split.
        slices: column -> str array (N,) of slice values.
    """

    name: str
    inputs: Any
    labels: np.ndarray
    ids: np.ndarray
    slices: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.labels)
        if len(self.inputs) != n or len(self.ids) != n:
            raise DataError(
                f"{self.source}: split '{self.name}' has {len(self.inputs)} inputs, {n} labels and "
                f"{len(self.ids)} ids (every sample needs all three)"
            )
        if len(set(self.ids.tolist())) != n:
            seen: set[str] = set()
            dup = next(i for i in self.ids.tolist() if i in seen or seen.add(i))  # type: ignore[func-returns-value]
            raise DataError(f"{self.source}: id '{dup}' appears twice in split '{self.name}' (ids must be unique)")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def labeled(self) -> bool:
        return bool(len(self.labels)) and bool((self.labels != UNLABELED).all())

    @property
    def fingerprint(self) -> str:
        """Content hash of inputs, labels, ids and slices (cached: splits are immutable)."""
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            inputs = list(self.inputs) if isinstance(self.inputs, list) else np.ascontiguousarray(self.inputs)
            cached = hash_json(
                {
                    "inputs": inputs,
                    "labels": self.labels,
                    "ids": self.ids.astype(str).tolist(),
                    "slices": {k: v.astype(str).tolist() for k, v in self.slices.items()},
                }
            )
            object.__setattr__(self, "_fingerprint", cached)
        return cached

    def batch(self, start: int, stop: int) -> Any:
        return self.inputs[start:stop]


@dataclass(frozen=True, eq=False)
class Dataset:
    """Named splits sharing one label space."""

    name: str
    modality: str
    label_names: tuple[str, ...]
    splits: dict[str, Split]
    slice_columns: tuple[str, ...] = ()

    def split(self, name: str) -> Split:
        if name not in self.splits:
            raise DataError(
                f"data.splits: the run needs a '{name}' split, which the config does not define",
                hint=did_you_mean(name, self.splits),
            )
        return self.splits[name]

    @property
    def n_classes(self) -> int:
        return len(self.label_names)

    def info(self) -> DatasetInfo:
        splits = []
        for s in self.splits.values():
            counts = {name: int((s.labels == i).sum()) for i, name in enumerate(self.label_names)}
            if (s.labels == UNLABELED).any():
                counts["(unlabeled)"] = int((s.labels == UNLABELED).sum())
            slice_counts = {}
            for column, values in s.slices.items():
                kinds, n = np.unique(values.astype(str), return_counts=True)
                slice_counts[column] = {str(k): int(c) for k, c in zip(kinds, n, strict=True)}
            splits.append(
                SplitInfo(
                    name=s.name,
                    n=len(s),
                    fingerprint=s.fingerprint,
                    label_counts=counts,
                    source=s.source,
                    slice_counts=slice_counts,
                )
            )
        return DatasetInfo(
            name=self.name,
            modality=self.modality,
            label_names=self.label_names,
            splits=tuple(splits),
            slice_columns=self.slice_columns,
        )
