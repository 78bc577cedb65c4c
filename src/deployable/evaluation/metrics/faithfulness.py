"""Faithfulness of a variant to its reference: agreement, paired accuracy delta, ECE delta, logit distance."""

from __future__ import annotations

from typing import Any

import numpy as np

from deployable.core.records import Faithfulness
from deployable.evaluation.metrics._validation import check_labels, softmax
from deployable.evaluation.metrics.calibration import expected_calibration_error
from deployable.evaluation.metrics.slices import bootstrap_interval


def agreement_score(logits: Any, ref_logits: Any) -> float:
    """Share of samples whose top-1 class is the same under both models: ``mean(argmax(a) == argmax(b))``."""
    a, b = np.asarray(logits), np.asarray(ref_logits)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"logits: expected two arrays of the same shape (N, C), found {a.shape} and {b.shape}")
    return float((a.argmax(1) == b.argmax(1)).mean())


def faithfulness(
    y_true: Any,
    logits: Any,
    ref_logits: Any,
    *,
    reference: str = "source",
    split: str = "test",
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    n_bins: int = 15,
) -> Faithfulness:
    """Compare a variant's logits with its reference's on the same samples.

    The accuracy delta's interval is a paired percentile bootstrap: each resample draws the same samples for both
    models, so the interval reflects disagreement, not the two accuracies' independent noise.

    Args:
        y_true: class indices (N,).
        logits: the variant's logits (N, C).
        ref_logits: the reference's logits (N, C).
    """
    a = np.asarray(logits, dtype=np.float64)
    b = np.asarray(ref_logits, dtype=np.float64)
    agree = agreement_score(a, b)
    y = check_labels(y_true, n_classes=a.shape[1])
    diff = (a.argmax(1) == y).astype(np.float64) - (b.argmax(1) == y).astype(np.float64)
    delta = bootstrap_interval(
        lambda d: d.mean(axis=-1), diff, n_resamples=n_bootstrap, level=level, seed=seed, vectorized=True
    )
    pa, pb = softmax(a), softmax(b)
    ece_delta = expected_calibration_error(y, pa, n_bins=n_bins) - expected_calibration_error(y, pb, n_bins=n_bins)
    abs_diff = np.abs(a - b)
    return Faithfulness(
        reference=reference,
        split=split,
        n=len(y),
        agreement=agree,
        accuracy_delta=delta,
        ece_delta=float(ece_delta),
        max_abs_logit_diff=float(abs_diff.max()),
        mean_abs_logit_diff=float(abs_diff.mean()),
    )
