"""Evaluation metrics on stored predictions: quality, calibration and per-slice numbers.

Functions take ``y_true`` first (class indices of shape ``(N,)``), then ``y_prob`` (shape ``(N, C)``) or
``logits``. ``*_score`` is higher-is-better, ``*_error`` and ``*_loss`` lower-is-better (scikit-learn's vocabulary).
Nothing here imports torch or scikit-learn.
"""

from deployable.evaluation.metrics._validation import softmax
from deployable.evaluation.metrics.calibration import (
    CalibrationErrorAccumulator,
    brier_score_loss,
    calibration_metrics,
    expected_calibration_error,
    fit_temperature,
    log_loss,
    maximum_calibration_error,
    reliability_bins,
)
from deployable.evaluation.metrics.quality import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    macro_f1_score,
    precision_recall_f1_support,
    quality_metrics,
)
from deployable.evaluation.metrics.slices import bootstrap_interval, slice_metrics

__all__ = [
    "CalibrationErrorAccumulator",
    "accuracy_score",
    "balanced_accuracy_score",
    "bootstrap_interval",
    "brier_score_loss",
    "calibration_metrics",
    "confusion_matrix",
    "expected_calibration_error",
    "fit_temperature",
    "log_loss",
    "macro_f1_score",
    "maximum_calibration_error",
    "precision_recall_f1_support",
    "quality_metrics",
    "reliability_bins",
    "slice_metrics",
    "softmax",
]
