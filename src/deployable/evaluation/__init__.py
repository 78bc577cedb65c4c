"""Evaluation: the single-pass runner over the prediction store, the targets, and every metric read from it.

:func:`evaluate_variant` is the stage's entry; :func:`predict` is the one place any stage runs a model over a split.
"""

from deployable.evaluation.predict import Progress, predict
from deployable.evaluation.runner import evaluate_variant
from deployable.evaluation.store import PredictionStore, StoredPredictions

__all__ = ["PredictionStore", "Progress", "StoredPredictions", "evaluate_variant", "predict"]
