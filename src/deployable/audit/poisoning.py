"""Backdoor (data-poisoning) detectors on the penultimate features of each class of the training split.

A backdoored model learns a trigger feature that only the poisoned samples carry, so inside the class they were
relabelled to, those samples form a small sub-population along a direction the clean data does not vary in. Both
detectors look for that sub-population class by class:

- **Spectral signatures** (Tran, Li, Madry, "Spectral signatures in backdoor attacks", NeurIPS 2018): score each
  sample by its squared projection on the top singular vector of the class's centred features and flag the
  ``1.5 * expected_fraction * n`` highest.
- **Activation clustering** (Chen et al., "Detecting backdoor attacks on deep neural networks by activation
  clustering", 2018): reduce the class's features to 10 dimensions, split them with 2-means, and call the smaller
  cluster poisoned when it holds at most 35% of the class and the split is cohesive (high silhouette).

Both run on features **whitened by the within-class covariance of the other classes** (Ledoit-Wolf estimate of the
pooled covariance of every other class's samples around their own class mean). Natural variation (stroke width,
slant, writing style) is shared across classes, so whitening makes it unit-variance and what remains large in a
class is what is unusual for it. This is close in spirit to SPECTRE (Hayase et al., ICML 2021), which whitens each
class with a robust covariance estimate. On raw features, natural sub-styles of clean classes look exactly like a
poisoned cluster.

Calibration data (the digits CNN of ``examples/digits``): 20 backdoored models (5% of the non-target training images
given a 3x3 full-intensity corner patch and relabelled to a target class 0, 3, 5 or 7; seeds 0-13) and 14 cleanly
trained ones; "clean classes" are the 140 classes of the clean models and the 180 non-target classes of the
backdoored ones. Raw features: clean classes' 2-means silhouettes reach 0.50, as high as the poisoned classes'
(0.31-0.49), and the top singular vector ranks the poisoned samples at AUROC 0.60-0.95. Whitened: the signature's
AUROC is 0.79-1.00 and the silhouettes separate (below).

Reporting rules (a class is reported only when its statistic is anomalous; otherwise every class would raise an
alarm, since both methods always produce a candidate set):

- spectral signature: the projections on the signature direction are bimodal with a small mode: their exact 1-D
  2-means split puts at most 35% of the class in the smaller group and explains at least 85% of their variance
  (a unimodal Gaussian gives 2/pi = 0.64, two separated points 1). Clean classes whose smaller group is <= 35%
  (91 of 320) reach 0.835 but one (0.89); poisoned classes 0.82-0.97, 17 of 20 reported. Unlike a rule on the
  flagged samples' z-scores, it does not depend on expected_fraction, which only sets how many samples are
  flagged (the extreme 7.5% of a heavy-tailed clean class are z-score outliers too).
- activation clustering: smaller cluster <= 35% of the class (the paper's rule) and silhouette >= 0.42: the
  size-suspicious clusters of clean classes (98 of 320) have median 0.25, 90th percentile 0.33 and maximum 0.39;
  poisoned classes 0.31-0.56 (median 0.45), 17 of 20 reported (the same 17 as by the spectral signature).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from deployable.audit.base import CheckOutput, evidence
from deployable.config import PoisoningConfig
from deployable.core.records import Finding
from deployable.data.dataset import UNLABELED, Split

#: spectral signature: flag the top ``EPS_MULTIPLIER * expected_fraction`` of a class (Tran et al.).
EPS_MULTIPLIER = 1.5
#: spectral signature: largest relative size of the smaller group of the projection's 2-means split.
SS_MAX_SIZE = 0.35
#: spectral signature: smallest share of the projection's variance that split must explain (calibrated on digits).
SS_MIN_SPLIT = 0.85
#: activation clustering: dimensions the class's features are reduced to (Chen et al.).
AC_DIMS = 10
#: activation clustering: largest relative size of a poisoned cluster (Chen et al.).
AC_MAX_SIZE = 0.35
#: activation clustering: smallest 2-means silhouette of a poisoned class (calibrated on clean digits classes).
AC_MIN_SILHOUETTE = 0.42
#: features with more dimensions are first projected on their top principal components (keeps whitening cheap;
#: a trigger feature the model relies on carries much variance, so it survives).
MAX_DIMS = 256
#: rows used to estimate the other classes' within-class covariance (a seeded subsample beyond this).
MAX_WHITEN_ROWS = 5000


def find_poisoning(
    split: Split,
    features: np.ndarray,
    cfg: PoisoningConfig,
    *,
    label_names: Sequence[str],
    max_evidence: int = 1000,
) -> CheckOutput:
    """Classes of ``split`` holding a sub-population that looks like a backdoor, and the suspected samples.

    Args:
        split: the split the model was trained on; unlabeled samples are ignored.
        features: (N, D) penultimate features of the split's samples, in split order.
        cfg: detectors to run, ``expected_fraction`` (epsilon), ``min_class_size`` and the clustering ``seed``.
        label_names: (C,) class names.
        max_evidence: sample ids kept per finding and in ``details["suspected"]`` (counts are exact).

    Returns:
        ``poisoning`` findings (high), one per reported class and method: ``spectral-signature`` with the flagged
        samples ranked by score, ``activation-cluster`` with the small cluster ranked by silhouette. ``details``:
        ``suspected`` (union of both methods as ``split:id``), ``counts`` per method, ``per_class`` statistics and
        the thresholds.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(split):
        raise ValueError(f"poisoning: features of shape {x.shape} for the {len(split)} samples of '{split.name}'")
    methods = list(dict.fromkeys(cfg.methods))
    if not methods:
        return CheckOutput(skipped="no poisoning detector selected")
    labeled = np.flatnonzero(split.labels != UNLABELED)
    labels = split.labels[labeled]
    classes, sizes = np.unique(labels, return_counts=True)
    analysed = classes[sizes >= cfg.min_class_size]
    if not len(analysed):
        return CheckOutput(
            skipped=f"no class of '{split.name}' has the {cfg.min_class_size} samples the detectors need"
        )
    z, note = _prepare(x[labeled], cfg.seed)
    if z.shape[1] == 0:
        return CheckOutput(skipped=f"the features of '{split.name}' are constant")
    rng = np.random.default_rng(cfg.seed)

    findings: list[Finding] = []
    per_class: dict[str, dict[str, Any]] = {}
    flagged: dict[str, set[int]] = {m: set() for m in methods}
    for c in analysed.tolist():
        rows = np.flatnonzero(labels == c)
        white, whitened = _whiten(z, labels, c, rng)
        stats: dict[str, Any] = {"n": len(rows), "whitened": whitened}
        name = label_names[c]
        if "spectral-signature" in methods:
            ss = _spectral_signature(white, cfg.expected_fraction)
            stats["spectral_signature"] = {k: v for k, v in ss.items() if k != "order"}
            if ss["reported"]:
                idx = labeled[rows[ss["order"]]]
                flagged["spectral-signature"].update(idx.tolist())
                findings.append(
                    Finding(
                        check="poisoning",
                        code="spectral-signature",
                        severity="high",
                        message=f"class '{name}' of '{split.name}' has a spectral signature of poisoning: "
                        f"its top singular direction splits off {ss['small_group']:.0%} of the class "
                        f"({ss['split_share']:.0%} of the variance along it); {len(idx)} of its {len(rows)} samples "
                        "flagged",
                        evidence=evidence(split.name, split.ids, idx, limit=max_evidence),
                        details={
                            "class": name,
                            "n_class": len(rows),
                            "n_flagged": len(idx),
                            **stats["spectral_signature"],
                        },
                    )
                )
        if "activation-clustering" in methods:
            ac = _activation_clustering(white, cfg.seed)
            stats["activation_clustering"] = {k: v for k, v in ac.items() if k != "order"}
            if ac["reported"]:
                idx = labeled[rows[ac["order"]]]
                flagged["activation-clustering"].update(idx.tolist())
                findings.append(
                    Finding(
                        check="poisoning",
                        code="activation-cluster",
                        severity="high",
                        message=f"class '{name}' of '{split.name}' splits into a small cohesive cluster of "
                        f"{len(idx)} of its {len(rows)} samples ({ac['relative_size']:.0%}, silhouette "
                        f"{ac['silhouette']:.2f} >= {AC_MIN_SILHOUETTE})",
                        evidence=evidence(split.name, split.ids, idx, limit=max_evidence),
                        details={"class": name, "n_class": len(rows), **stats["activation_clustering"]},
                    )
                )
        per_class[name] = stats

    union = np.array(sorted(set().union(*flagged.values())), dtype=np.int64)
    counts = {m: len(s) for m, s in flagged.items()}
    counts["union"] = len(union)
    details: dict[str, Any] = {
        "split": split.name,
        "suspected": list(evidence(split.name, split.ids, union, limit=max_evidence)),
        "n_suspected": len(union),
        "counts": counts,
        "per_class": per_class,
        "skipped_classes": {
            label_names[c]: int(s) for c, s in zip(classes, sizes, strict=True) if s < cfg.min_class_size
        },
        "features": note,
        "thresholds": {
            "expected_fraction": cfg.expected_fraction,
            "eps_multiplier": EPS_MULTIPLIER,
            "spectral_max_group": SS_MAX_SIZE,
            "spectral_min_split_share": SS_MIN_SPLIT,
            "cluster_max_relative_size": AC_MAX_SIZE,
            "cluster_min_silhouette": AC_MIN_SILHOUETTE,
        },
    }
    parts = []
    if "spectral-signature" in methods:
        parts.append(
            f"spectral signatures (top {EPS_MULTIPLIER:g} x {cfg.expected_fraction:g} of the class by squared "
            f"projection on the top singular vector; class reported when 1-D 2-means of the projection splits off "
            f"<= {SS_MAX_SIZE:.0%} of it explaining >= {SS_MIN_SPLIT:.0%} of its variance)"
        )
    if "activation-clustering" in methods:
        parts.append(
            f"activation clustering (PCA to {AC_DIMS} dims, 2-means; cluster <= {AC_MAX_SIZE:.0%} of the class "
            f"with silhouette >= {AC_MIN_SILHOUETTE:g})"
        )
    method = (
        f"per class with >= {cfg.min_class_size} samples, on features whitened by the other classes' "
        "within-class covariance: " + " and ".join(parts)
    )
    return CheckOutput(findings=findings, method=method, details=details)


def _prepare(x: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    """Drop constant dimensions (dead units) and, above ``MAX_DIMS``, keep the top principal components.

    Args:
        x: (M, D) features of the labeled samples.
        seed: seed of the randomized PCA solver (only used above ``MAX_DIMS``).

    Returns:
        (M, D') features and a note saying what was done.
    """
    spread = x.std(axis=0)
    live = spread > 1e-9 * (spread.max() if len(spread) else 0.0)
    x = x[:, live]
    note = f"{int(live.sum())} of {len(live)} dimensions vary"
    if x.shape[1] > MAX_DIMS:
        from sklearn.decomposition import PCA

        x = PCA(n_components=MAX_DIMS, svd_solver="randomized", random_state=seed).fit_transform(x)
        note += f"; projected on their top {MAX_DIMS} principal components"
    return x, note


def _whiten(z: np.ndarray, labels: np.ndarray, c: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Class ``c``'s centred features in the whitening frame of the other classes' within-class covariance.

    Args:
        z: (M, D) features of all labeled samples.
        labels: (M,) their classes.
        c: the class.
        rng: picks the covariance subsample when the other classes have more than ``MAX_WHITEN_ROWS`` samples.

    Returns:
        ((n_c, D) whitened ``(x - mean_c) @ V diag(lambda)^(-1/2)``, whitened?) where ``Sigma = V diag(lambda) V^T``
        is the Ledoit-Wolf covariance of ``x_i - mean_{y_i}`` over the other classes' samples; with no other class
        (or fewer than two of its samples) the class is only centred.
    """
    own = z[labels == c]
    own = own - own.mean(axis=0)
    other = labels != c
    others, inverse = np.unique(labels[other], return_inverse=True)
    if other.sum() < 2 or len(others) == 0:
        return own, False
    zo = z[other]
    means = np.stack([zo[inverse == j].mean(axis=0) for j in range(len(others))])
    resid = zo - means[inverse]
    if len(resid) > MAX_WHITEN_ROWS:
        resid = resid[rng.choice(len(resid), size=MAX_WHITEN_ROWS, replace=False)]
    from sklearn.covariance import LedoitWolf

    # residuals around their class means have zero mean already
    cov = LedoitWolf(assume_centered=True).fit(resid).covariance_
    evals, evecs = np.linalg.eigh(cov)
    evals = np.maximum(evals, 1e-12 * max(float(evals.max()), 1e-300))
    return own @ (evecs / np.sqrt(evals)), True


def _spectral_signature(white: np.ndarray, expected_fraction: float) -> dict[str, Any]:
    """Tran et al.'s scores on one class and the bimodality rule deciding whether the class is reported.

    Scores: ``score_i = (x_i . v)^2`` with v the top right-singular vector of the class's centred features; flagged:
    the ``ceil(1.5 * epsilon * n)`` highest. Class rule: split the projections ``p_i = x_i . v`` into two groups by
    exact 1-D 2-means; the class is reported when the smaller group holds at most 35% of the class and the split
    explains at least 85% of the variance along v, ``1 - (W_1 + W_2) / T >= 0.85`` (within-group over total sum of
    squares). A unimodal Gaussian gives 2/pi = 0.64 and a mixture of two separated points 1.

    Args:
        white: (n, D) the class's centred (whitened) features.
        expected_fraction: epsilon, the largest poisoned share of a class assumed.

    Returns:
        ``order`` (flagged rows, highest score first), ``reported``, ``split_share``, ``small_group`` (relative
        size) and summary numbers.
    """
    n = len(white)
    _, s, vt = np.linalg.svd(white, full_matrices=False)
    proj = white @ vt[0]
    score = proj**2
    n_flag = min(n, max(1, math.ceil(EPS_MULTIPLIER * expected_fraction * n)))
    order = np.argsort(-score, kind="stable")[:n_flag]
    share, small = _two_means_1d(proj)
    var = s**2
    return {
        "order": order,
        "reported": bool(small <= SS_MAX_SIZE and share >= SS_MIN_SPLIT),
        "split_share": share,
        "small_group": small,
        "n_flagged": int(n_flag),
        "explained_variance": float(var[0] / var.sum()) if var.sum() > 0 else 0.0,
        "top_scores": [float(v) for v in score[order[:10]]],
        "median_score": float(np.median(score)),
    }


def _two_means_1d(p: np.ndarray) -> tuple[float, float]:
    """Best split of 1-D values into a lower and an upper group (exact 2-means by prefix sums over the sorted values).

    Args:
        p: (n,) values.

    Returns:
        (share of the total sum of squares between the two groups, relative size of the smaller group); (0, 0.5)
        when the values do not vary.
    """
    q = np.sort(p)
    n = len(q)
    total = float(((q - q.mean()) ** 2).sum()) if n else 0.0
    if n < 2 or total <= 0:
        return 0.0, 0.5
    k = np.arange(1, n)  # size of the lower group
    c1, c2 = np.cumsum(q)[:-1], np.cumsum(q**2)[:-1]
    s1, s2 = q.sum(), (q**2).sum()
    within = (c2 - c1**2 / k) + ((s2 - c2) - (s1 - c1) ** 2 / (n - k))
    best = int(np.argmin(within))
    return float(1.0 - within[best] / total), float(min(k[best], n - k[best]) / n)


def _activation_clustering(white: np.ndarray, seed: int) -> dict[str, Any]:
    """Chen et al.'s 2-means split of one class and the size/silhouette rule.

    Reduction: PCA to 10 dimensions rather than the paper's FastICA. FastICA's components are whitened, and
    2-means with Euclidean distance is rotation-invariant, so 2-means on FastICA output is 2-means on
    variance-equalised principal components; that equalisation lets low-variance noise directions split the class
    and, on the digits backdoor, dropped the recall of the poisoned cluster from 0.77-1.00 (PCA) to 0.19-1.00.

    Args:
        white: (n, D) the class's centred (whitened) features.
        seed: seed of PCA's solver and of 2-means.

    Returns:
        ``order`` (rows of the smaller cluster, most clearly in it first by per-sample silhouette), ``reported``,
        ``sizes``, ``relative_size``, ``silhouette``.
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_samples

    n = len(white)
    dims = min(AC_DIMS, n - 1, white.shape[1])
    reduced = PCA(n_components=dims, random_state=seed).fit_transform(white)
    assign = KMeans(n_clusters=2, n_init=10, random_state=seed).fit_predict(reduced)
    sizes = np.bincount(assign, minlength=2)
    small = int(np.argmin(sizes))
    if sizes.min() == 0:
        return {
            "order": np.zeros(0, dtype=np.int64),
            "reported": False,
            "sizes": sizes.tolist(),
            "relative_size": 0.0,
            "silhouette": 0.0,
        }
    per_sample = silhouette_samples(reduced, assign)
    silhouette = float(per_sample.mean())
    relative = float(sizes[small] / n)
    members = np.flatnonzero(assign == small)
    order = members[np.argsort(-per_sample[members], kind="stable")]
    return {
        "order": order,
        "reported": bool(relative <= AC_MAX_SIZE and silhouette >= AC_MIN_SILHOUETTE),
        "sizes": sorted(sizes.tolist(), reverse=True),
        "relative_size": relative,
        "silhouette": silhouette,
    }
