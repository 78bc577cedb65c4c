"""Likely label errors: confident learning (cleanlab) on out-of-sample probabilities.

Confident learning (Northcutt, Jiang, Chuang, "Confident learning: estimating uncertainty in dataset labels", JAIR
2021) counts, for every (given label i, likely true label j), the samples labelled i whose predicted probability of j
reaches the average self-confidence of class j, and prunes the off-diagonal counts as label issues. It needs
probabilities the model did not fit to the very labels it judges, so they come from either

- a cross-validated probe: logistic regression on the standardised penultimate features, each sample predicted by the
  fold that did not see it (``cfg.probe`` ``features`` or ``auto``); or
- the model's own softmax, only on a split the model was not trained on (``cfg.probe`` ``model`` or ``auto``).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence

import numpy as np

from deployable.audit.base import CheckOutput, evidence
from deployable.config import LabelIssuesConfig
from deployable.core.records import Finding
from deployable.data.dataset import UNLABELED, Split

#: cleanlab's default and recommended pruning rule: remove, per off-diagonal cell of the confident joint, the
#: samples with the largest margin p(suggested) - p(given), as many as the estimated noise rate implies.
FILTER_BY = "prune_by_noise_rate"
#: inverse L2 strength of the probe; a stronger penalty than sklearn's 1.0 keeps its probabilities from being
#: over-confident, which confident learning's per-class thresholds need (digits, 5% flips: precision 0.76-0.86 at
#: C=0.1 against 0.70-0.77 at C=1.0, recall about the same).
PROBE_C = 0.1
#: share of the labeled split from which a label-error finding is high rather than medium.
HIGH_RATE = 0.10  # above the 3-6% label noise typical of curated datasets (Northcutt et al., 2021) by a margin
#: issues listed with their suggested label and probabilities in the finding's details.
TOP_DETAILS = 50


def find_label_issues(
    split: Split,
    cfg: LabelIssuesConfig,
    *,
    features: np.ndarray | None,
    probs: np.ndarray | None,
    n_classes: int,
    label_names: Sequence[str],
    in_sample: bool,
    max_evidence: int = 1000,
) -> CheckOutput:
    """Samples of ``split`` whose given label is likely wrong.

    Args:
        split: the split to check; only its labeled samples (label != -1) are judged.
        cfg: which probabilities to use (``probe``) and the probe's cross-validation folds.
        features: (N, D) penultimate features of the split's samples, in split order, or None.
        probs: (N, C) the model's softmax probabilities, in split order, or None.
        n_classes: C, the number of classes of the dataset.
        label_names: (C,) class names.
        in_sample: True when the model was trained on this split (its ``probs`` are then not out of sample).
        max_evidence: sample ids kept in the finding (the count is exact).

    Returns:
        At most one ``label_issues`` / ``label-errors`` finding listing the suspected ids ranked by self-confidence
        (the out-of-sample probability of the given label, lowest first); severity high when more than 10% of the
        labeled split is suspected, else medium. ``skipped`` says why when no usable probabilities exist.
    """
    n = len(split)
    if features is not None and len(features) != n:
        raise ValueError(f"label issues: {len(features)} feature rows for the {n} samples of split '{split.name}'")
    if probs is not None and (probs.ndim != 2 or probs.shape != (n, n_classes)):
        raise ValueError(
            f"label issues: probabilities of shape {probs.shape} for split '{split.name}' ({n} samples, "
            f"{n_classes} classes)"
        )
    labeled = np.flatnonzero(split.labels != UNLABELED)
    if len(labeled) == 0:
        return CheckOutput(skipped=f"split '{split.name}' has no labeled samples")
    labels = split.labels[labeled]

    use_features = features is not None and cfg.probe in ("auto", "features")
    use_model = probs is not None and cfg.probe in ("auto", "model") and not in_sample
    details: dict = {"split": split.name, "n_labeled": len(labeled), "filter_by": FILTER_BY}
    if use_features and features is not None:
        out = _probe_probabilities(np.asarray(features, dtype=np.float64)[labeled], labels, cfg)
        if isinstance(out, str):
            return CheckOutput(skipped=out)
        pred_probs, classes, folds, excluded = out
        keep = np.isin(labels, classes)
        judged = labeled[keep]
        # cleanlab wants labels 0..K-1 matching the probability columns of the classes the probe could learn
        given = np.searchsorted(classes, labels[keep])
        source = f"{folds}-fold cross-validated logistic regression (C={PROBE_C}) on the standardised features"
        details.update(probabilities="features", folds=folds)
        if excluded:
            details["excluded_classes"] = {label_names[c]: int((labels == c).sum()) for c in excluded}
    elif use_model and probs is not None:
        pred_probs = np.asarray(probs, dtype=np.float64)[labeled]
        judged, given, classes = labeled, labels, np.arange(n_classes)
        source = "the model's own softmax probabilities (the model was not trained on this split)"
        details["probabilities"] = "model"
        absent = [label_names[c] for c in range(n_classes) if not (labels == c).any()]
        if absent:
            # confident learning cannot estimate a threshold for a class with no samples; nothing is moved to it
            details["classes_absent_from_split"] = absent
    else:
        return CheckOutput(skipped=_skip_reason(split.name, cfg, probs, in_sample))

    method = f"cleanlab find_label_issues (filter_by={FILTER_BY}, ranked by self-confidence) on {source}"

    from cleanlab.filter import find_label_issues as cl_find_label_issues

    with warnings.catch_warnings():
        # cleanlab warns about classes too small to estimate their noise rate; those counts are in details
        warnings.simplefilter("ignore", UserWarning)
        ranked = cl_find_label_issues(
            given,
            pred_probs,
            filter_by=FILTER_BY,
            return_indices_ranked_by="self_confidence",
            n_jobs=1,
        )
    ranked = np.asarray(ranked, dtype=np.int64)
    count = len(ranked)
    rate = count / len(labeled)
    details.update(n_issues=count, rate=rate)
    if count == 0:
        return CheckOutput(method=method, details=details)

    best = pred_probs[ranked].argmax(axis=1)
    pairs = Counter(zip(classes[given[ranked]].tolist(), classes[best].tolist(), strict=True))
    top = [
        {
            "id": str(split.ids[judged[i]]),
            "given": label_names[int(classes[given[i]])],
            "suggested": label_names[int(classes[b])],
            "p_suggested": float(pred_probs[i, b]),
            "p_given": float(pred_probs[i, given[i]]),
        }
        for i, b in zip(ranked[:TOP_DETAILS].tolist(), best[:TOP_DETAILS].tolist(), strict=True)
    ]
    finding = Finding(
        check="label_issues",
        code="label-errors",
        severity="high" if rate > HIGH_RATE else "medium",
        message=(
            f"{count} of {len(labeled)} labeled samples of '{split.name}' ({rate:.1%}) are likely mislabeled or "
            "ambiguous"
        ),
        evidence=evidence(split.name, split.ids, judged[ranked], limit=max_evidence),
        details={
            "count": count,
            "rate": rate,
            "n_labeled": len(labeled),
            "pairs": {
                f"{label_names[g]} -> {label_names[s]}": c
                for (g, s), c in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
            },
            "top": top,
            "probabilities": details["probabilities"],
        },
    )
    return CheckOutput(findings=[finding], method=method, details=details)


def _probe_probabilities(
    x: np.ndarray, labels: np.ndarray, cfg: LabelIssuesConfig
) -> tuple[np.ndarray, np.ndarray, int, list[int]] | str:
    """Out-of-fold probabilities of a logistic-regression probe, or why there can be none.

    Args:
        x: (M, D) features of the labeled samples.
        labels: (M,) their class indices.
        cfg: its ``folds`` (the fold assignment is seeded with 0 so reruns agree).

    Returns:
        (pred_probs (M', K), classes (K,) the class index of each column, folds used, classes left out), where M'
        counts the samples of the K classes with at least two samples (a class with one sample cannot appear in a
        training fold and its own fold at once, so its probability would be zero by construction and it would
        always be "mislabeled"). Folds drop to the smallest class count when that is below ``cfg.folds``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    present, counts = np.unique(labels, return_counts=True)
    classes = present[counts >= 2]
    excluded = present[counts < 2].tolist()
    if len(classes) < 2:
        return (
            f"the cross-validated probe needs two classes with at least two labeled samples each; the split has "
            f"{len(classes)}"
        )
    keep = np.isin(labels, classes)
    y = np.searchsorted(classes, labels[keep])
    folds = int(min(cfg.folds, counts[counts >= 2].min()))
    # the scaler sits inside the pipeline so each fold is standardised with its own training statistics
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=PROBE_C, max_iter=1000))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    pred_probs = cross_val_predict(probe, x[keep], y, cv=cv, method="predict_proba")
    return pred_probs, classes, folds, excluded


def _skip_reason(name: str, cfg: LabelIssuesConfig, probs: np.ndarray | None, in_sample: bool) -> str:
    if cfg.probe == "features":
        return f"probe 'features' needs penultimate features, which the model does not expose for '{name}'"
    if probs is None:
        what = "its probabilities" if cfg.probe == "model" else "penultimate features or probabilities"
        return f"no out-of-sample probabilities for '{name}': the model gives no {what} there"
    # here probs exist but are in-sample
    tail = "" if cfg.probe == "model" else ", and it exposes no penultimate features for a cross-validated probe"
    return (
        f"the model was trained on '{name}', so its probabilities there are in-sample (confident learning needs "
        f"out-of-sample ones){tail}"
    )
