"""Samples far from the reference (train) data: k-nearest-neighbour distance on standardised features.

The score of a sample is its mean Euclidean distance to its k nearest reference samples,

    s(x) = 1/k * sum_{j=1..k} || z(x) - z(x_(j)) ||_2,   z(x) = (x - mean_ref) / max(std_ref, 0.25 * median std_ref),

leave-one-out on the reference itself (a sample is not its own neighbour). A sample is an outlier when
``s(x) > margin * Q_q(s_ref)``, the ``quantile`` q of the reference's leave-one-out scores times ``margin``.

Standardised rather than L2-normalised features: the norm of a feature vector is itself a sign of an odd sample
(a blank or saturated input keeps its direction but not its norm) and L2 normalisation would discard it; and the
features may be raw tabular columns in unrelated units, which need per-column scaling while the L2 norm of a row
of them means nothing. Measured on the digits pixels: L2-normalised, images at three times their intensity are
never outliers (their direction is a digit's) and uniform noise only 18% of the time; standardised, 100% of both.
"""

from __future__ import annotations

import numpy as np

from deployable.audit.base import CheckOutput, evidence
from deployable.config import OutliersConfig
from deployable.core.records import Finding
from deployable.data.dataset import Split

#: each feature is divided by max(its reference spread, this share of the median spread). A feature that hardly
#: varies on the reference (a border pixel, a rarely active unit) would otherwise dominate every distance, the
#: reference's own leave-one-out scores included, so a handful of rare activations would set the threshold; with
#: no floor, digits images at three times their intensity scored as outliers 2% of the time, with this floor 100%.
SCALE_FLOOR = 0.25


def find_outliers(
    splits: dict[str, Split],
    features: dict[str, np.ndarray],
    cfg: OutliersConfig,
    *,
    reference: str = "train",
    max_evidence: int = 1000,
) -> CheckOutput:
    """Outliers of every split against the reference split, one ``outliers`` finding (low) per split with any.

    Args:
        splits: name -> split.
        features: name -> (N, D) features of that split in split order (penultimate features, or the raw columns
            of a tabular split); splits without an entry are not scored.
        cfg: ``k``, ``quantile`` and ``margin`` of the rule above.
        reference: the split the neighbours come from (the training data).
        max_evidence: sample ids kept per finding (the count is exact).

    Returns:
        Findings with evidence ranked by score (highest first) and ``details["scores"]`` aligned with it;
        ``details`` of the output hold the threshold and per-split counts.
    """
    if reference not in features or reference not in splits:
        return CheckOutput(skipped=f"no features of the reference split '{reference}' to measure distances in")
    ref = np.asarray(features[reference], dtype=np.float64)
    if ref.ndim != 2 or len(ref) != len(splits[reference]):
        raise ValueError(
            f"outliers: features of '{reference}' have shape {ref.shape} for {len(splits[reference])} samples"
        )
    if len(ref) < 3:
        return CheckOutput(skipped=f"the reference split '{reference}' has {len(ref)} samples; outliers need 3")
    from sklearn.neighbors import NearestNeighbors

    k = min(cfg.k, len(ref) - 1)
    mean = ref.mean(axis=0)
    std = ref.std(axis=0)
    varying = std[std > 1e-12 * (np.abs(mean) + 1)]
    typical = float(np.median(varying)) if len(varying) else 1.0
    scale = np.maximum(std, SCALE_FLOOR * typical)

    def z(x: np.ndarray) -> np.ndarray:
        return (x - mean) / scale

    index = NearestNeighbors(n_neighbors=k + 1, n_jobs=1).fit(z(ref))
    dist, _ = index.kneighbors(z(ref), n_neighbors=k + 1)
    # the nearest hit of a reference sample is itself at distance 0 (or an exact duplicate, which is equivalent)
    ref_scores = dist[:, 1:].mean(axis=1)
    base = float(np.quantile(ref_scores, cfg.quantile))
    threshold = cfg.margin * base

    findings: list[Finding] = []
    per_split: dict[str, dict] = {}
    for name, split in splits.items():
        if name not in features:
            continue
        x = np.asarray(features[name], dtype=np.float64)
        if x.ndim != 2 or len(x) != len(split) or x.shape[1] != ref.shape[1]:
            raise ValueError(f"outliers: features of '{name}' have shape {x.shape} for {len(split)} samples")
        if name == reference:
            scores = ref_scores
        elif len(x):
            scores = index.kneighbors(z(x), n_neighbors=k)[0].mean(axis=1)
        else:
            scores = np.zeros(0)
        out = np.flatnonzero(scores > threshold)
        out = out[np.argsort(-scores[out], kind="stable")]
        per_split[name] = {
            "n": len(x),
            "n_outliers": len(out),
            "rate": len(out) / len(x) if len(x) else 0.0,
            "max_score": float(scores.max()) if len(scores) else None,
        }
        if not len(out):
            continue
        findings.append(
            Finding(
                check="outliers",
                code="outlier",
                severity="low",
                message=f"{len(out)} of {len(x)} samples of '{name}' are far from the '{reference}' data "
                f"(k-NN distance above {threshold:.3g})",
                evidence=evidence(name, split.ids, out, limit=max_evidence),
                details={
                    "split": name,
                    "count": len(out),
                    "rate": len(out) / len(x),
                    "threshold": threshold,
                    "scores": [float(s) for s in scores[out[:max_evidence]]],
                },
            )
        )
    method = (
        f"mean distance to the {k} nearest '{reference}' samples in standardised features (leave-one-out on "
        f"'{reference}'); outlier above {cfg.margin:g} x its {cfg.quantile:g} quantile"
    )
    details = {
        "reference": reference,
        "k": k,
        "quantile": cfg.quantile,
        "margin": cfg.margin,
        "reference_quantile": base,
        "threshold": threshold,
        "splits": per_split,
        "not_scored": sorted(set(splits) - set(features)),
    }
    return CheckOutput(findings=findings, method=method, details=details)
