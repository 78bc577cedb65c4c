"""The Predictor interface every model source implements."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deployable.core.hashing import hash_json, sha256_files

# settings that do not change the logits (where files are, threads, whether unsafe files may load)
_LOCATION_KEYS = {"path", "encoder", "head", "weights", "tokenizer", "base_dir", "threads", "allow_unsafe_files"}


@dataclass(frozen=True)
class ForwardOutput:
    """Outputs of one batch.

    Attributes:
        logits: float32 (B, C).
        features: float32 (B, D) penultimate features, or None when the model does not expose them.
    """

    logits: np.ndarray
    features: np.ndarray | None = None


class Predictor(abc.ABC):
    """Raw inputs in, float32 logits out. Subclasses set ``spec`` (the config that rebuilds them) and ``files``."""

    spec: dict[str, Any]
    files: tuple[Path, ...]
    label_names: tuple[str, ...] | None = None

    @abc.abstractmethod
    def forward(self, batch: Any) -> ForwardOutput:
        """Logits (and features) for a batch of raw inputs: a list of str, or an array (B, ...)."""

    @abc.abstractmethod
    def set_threads(self, n: int) -> None:
        """Use ``n`` CPU threads for inference from now on."""

    @property
    def fingerprint(self) -> str:
        """Content hash of the model files and of every setting that changes the logits."""
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            settings = {k: v for k, v in self.spec.items() if k not in _LOCATION_KEYS}
            cached = hash_json({"files": sha256_files(self.files), "settings": settings})
            self.__dict__["_fingerprint"] = cached
        return cached


def as_float_batch(batch: Any) -> np.ndarray:
    """An image or tabular batch as a contiguous float32 array."""
    return np.ascontiguousarray(np.asarray(batch, dtype=np.float32))
