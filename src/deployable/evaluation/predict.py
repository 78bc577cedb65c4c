"""Forward passes through the prediction store: each (model, split, perturbation) is run once and kept.

Every stage that needs a model's outputs (the audit's probes, the optimize search, the evaluation, the gate's
model baseline) calls :func:`predict`; nothing else runs a predictor over a split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from deployable.core.errors import ModelError
from deployable.data.dataset import Split
from deployable.evaluation.batching import iter_batches
from deployable.evaluation.store import PredictionStore, StoredPredictions, prediction_key
from deployable.models.base import Predictor


@dataclass
class Progress:
    """A thin adapter over rich's progress (or nothing), so the library runs quietly in notebooks and tests."""

    rich: Any = None

    def task(self, description: str, total: int) -> Any:
        return self.rich.add_task(description, total=total) if self.rich is not None else None

    def advance(self, task: Any, n: int = 1) -> None:
        if self.rich is not None and task is not None:
            self.rich.advance(task, n)

    def done(self, task: Any) -> None:
        if self.rich is not None and task is not None:
            self.rich.update(task, visible=False)


def predict(
    predictor: Predictor,
    split: Split,
    store: PredictionStore,
    *,
    batch_size: int,
    perturbation: dict[str, Any] | None = None,
    progress: Progress | None = None,
    label: str = "",
    data_fingerprint: str | None = None,
) -> StoredPredictions:
    """Logits (and features) of ``predictor`` on ``split``, from the store when present, else one forward pass.

    ``data_fingerprint`` keys a perturbed split by its clean split's fingerprint (with ``perturbation``), so a
    stored result is found without rebuilding the perturbed inputs.
    """
    key = prediction_key(predictor.fingerprint, data_fingerprint or split.fingerprint, perturbation)
    hit = store.get(key)
    if hit is not None and len(hit.ids) == len(split) and (hit.ids == split.ids).all():
        return hit
    progress = progress or Progress()
    task = progress.task(f"predict {label or split.name}", len(split))
    n = len(split)
    logits: np.ndarray | None = None
    features: np.ndarray | None = None
    start = time.perf_counter()
    for index, batch in iter_batches(split.inputs, batch_size):
        out = predictor.forward(batch)
        if out.logits.ndim != 2 or out.logits.shape[0] != len(index):
            raise ModelError(
                f"model: expected logits of shape ({len(index)}, n_classes) for a batch, got {tuple(out.logits.shape)}"
            )
        if logits is None:
            logits = np.empty((n, out.logits.shape[1]), np.float32)
            if out.features is not None:
                features = np.empty((n, out.features.shape[1]), np.float32)
        logits[index] = out.logits
        if features is not None and out.features is not None:
            features[index] = out.features
        progress.advance(task, len(index))
    progress.done(task)
    if logits is None:
        raise ModelError(f"data.splits.{split.name}: the split is empty")
    if not np.isfinite(logits).all():
        raise ModelError(f"model: produced non-finite logits on split '{split.name}'")
    meta = {
        "model": predictor.fingerprint,
        "split": split.name,
        "data": data_fingerprint or split.fingerprint,
        "perturbation": perturbation,
        "seconds": time.perf_counter() - start,
        "spec": predictor.spec,
    }
    return store.put(key, logits, features, split.ids, meta)


def predict_perturbed(
    predictor: Predictor,
    clean: Split,
    perturbation: dict[str, Any],
    make_inputs: Any,
    store: PredictionStore,
    *,
    batch_size: int,
) -> StoredPredictions:
    """Predictions on a perturbed copy of ``clean``; ``make_inputs()`` builds the perturbed inputs only on a miss."""
    key = prediction_key(predictor.fingerprint, clean.fingerprint, perturbation)
    hit = store.get(key)
    if hit is not None and len(hit.ids) == len(clean) and (hit.ids == clean.ids).all():
        return hit
    perturbed = Split(name=clean.name, inputs=make_inputs(), labels=clean.labels, ids=clean.ids, source=clean.source)
    return predict(
        predictor,
        perturbed,
        store,
        batch_size=batch_size,
        perturbation=perturbation,
        data_fingerprint=clean.fingerprint,
    )
