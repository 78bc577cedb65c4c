"""The PredictionStore: one forward pass per (model, data, perturbation), kept on disk and reused by every metric.

A key is the sha256 of the model's fingerprint (file contents and logit-changing settings), the split's content
fingerprint and the perturbation's id, so a changed file, a changed sample or a changed setting is a new key and a
moved folder is not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deployable.core.hashing import hash_json
from deployable.core.locks import atomic_write

STORE_VERSION = 1


@dataclass(frozen=True)
class StoredPredictions:
    """What one forward pass over a split produced.

    Attributes:
        logits: float32 (N, C).
        features: float32 (N, D) or None.
        ids: str (N,), the split's sample ids in the same order.
    """

    key: str
    logits: np.ndarray
    features: np.ndarray | None
    ids: np.ndarray
    cached: bool = False


def prediction_key(model_fingerprint: str, data_fingerprint: str, perturbation: dict[str, Any] | None = None) -> str:
    return hash_json(
        {"v": STORE_VERSION, "model": model_fingerprint, "data": data_fingerprint, "perturbation": perturbation}
    )


class PredictionStore:
    """Stored predictions under ``root/<key[:2]>/<key>.npz`` with a JSON sidecar saying what made them."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def __contains__(self, key: str) -> bool:
        return self._path(key).is_file()

    def get(self, key: str) -> StoredPredictions | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                features = z["features"] if "features" in z.files else None
                return StoredPredictions(key, z["logits"], features, z["ids"].astype(str), cached=True)
        except (OSError, ValueError, KeyError):
            return None  # a damaged entry is recomputed, never trusted

    def put(
        self,
        key: str,
        logits: np.ndarray,
        features: np.ndarray | None,
        ids: np.ndarray,
        meta: dict[str, Any] | None = None,
    ) -> StoredPredictions:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {"logits": np.asarray(logits, np.float32), "ids": np.asarray(ids).astype(str)}
        if features is not None:
            arrays["features"] = np.asarray(features, np.float32)
        # Sidecar first, then the arrays: once the .npz is there its sidecar is too. Both go through a uniquely
        # named temporary file and os.replace, so two runs storing the same key at once each write their own file,
        # the last rename wins (both hold the same forward pass) and a reader never sees half a file.
        if meta is not None:
            atomic_write(
                path.with_suffix(".json"),
                lambda fh: fh.write(json.dumps(meta, indent=1, default=str)),
                binary=False,
                durable=False,
            )
        atomic_write(path, lambda fh: np.savez(fh, **arrays), durable=False)
        return StoredPredictions(key, arrays["logits"], arrays.get("features"), arrays["ids"], cached=False)
