"""OOD detection of one variant: the OOD set (the user's ``ood`` split, else a synthetic one), its stored
predictions, the Mahalanobis fit on training features, and the metrics of every score."""

from __future__ import annotations

import numpy as np

from deployable.config import EvaluateConfig
from deployable.core.records import OodMetrics, OodScore
from deployable.data.dataset import UNLABELED, Dataset, Split
from deployable.evaluation.metrics.ood import (
    MahalanobisFit,
    aupr,
    auroc,
    fpr_at_tpr,
    histogram,
    ood_scores,
    roc_points,
)

SYNTHETIC_SOURCES = {
    "text": "synthetic: half word salad (test-split words in random order and length), half random-letter strings",
    "image": "synthetic: half uniform noise in the data's value range, half test images with their pixels shuffled",
    "tabular": "synthetic: half rows whose features are drawn independently from the test marginals, half rows "
    "3-6 standard deviations outside each feature's range",
}


def synthetic_ood(dataset: Dataset, test: Split, n: int, seed: int = 0) -> Split:
    """A deterministic synthetic OOD set built from the test split (never from a hub: nothing is downloaded)."""
    rng = np.random.default_rng([seed, 4242])
    half = n // 2
    inputs: object
    if dataset.modality == "text":
        words = [w for t in test.inputs for w in str(t).split()] or ["empty"]
        salad = [" ".join(rng.choice(words, size=int(rng.integers(3, 25)))) for _ in range(half)]
        letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))

        def word() -> str:
            return "".join(rng.choice(letters, size=int(rng.integers(2, 10))))

        gibberish = [" ".join(word() for _ in range(int(rng.integers(3, 20)))) for _ in range(n - half)]
        inputs = salad + gibberish
    else:
        x = np.asarray(test.inputs, dtype=np.float32)
        if dataset.modality == "image":
            lo, hi = float(x.min()), float(x.max())
            noise = rng.uniform(lo, hi, size=(half, *x.shape[1:])).astype(np.float32)
            picks = x[rng.integers(0, len(x), size=n - half)].reshape(n - half, -1).copy()
            shuffled = np.stack([row[rng.permutation(row.size)] for row in picks]).reshape(n - half, *x.shape[1:])
            inputs = np.concatenate([noise, shuffled]).astype(np.float32)
        else:
            cols = [x[rng.integers(0, len(x), size=half), j] for j in range(x.shape[1])]
            independent = np.stack(cols, axis=1)
            std = x.std(axis=0) + 1e-6
            side = rng.choice([-1.0, 1.0], size=(n - half, x.shape[1]))
            far = np.where(side > 0, x.max(axis=0), x.min(axis=0)) + side * std * rng.uniform(3, 6, size=side.shape)
            inputs = np.concatenate([independent, far]).astype(np.float32)
    return Split(
        name="synthetic-ood",
        inputs=inputs,
        labels=np.full(n, UNLABELED, dtype=np.int64),
        ids=np.array([f"synthetic-ood-{i}" for i in range(n)]),
        source="synthetic",
    )


def ood_split(dataset: Dataset, cfg: EvaluateConfig) -> tuple[Split, bool, str] | None:
    """(OOD split, synthetic?, how it was made), or None when OOD is off or there is nothing to score against."""
    ood = cfg.ood
    if not ood.enabled:
        return None
    if ood.split in dataset.splits:
        split = dataset.split(ood.split)
        return split, False, f"the '{split.name}' split of the data"
    if not ood.synthetic:
        return None
    cached = dataset.__dict__.get("_synthetic_ood")
    if cached is None:
        test = dataset.split(cfg.test_split)
        cached = synthetic_ood(dataset, test, ood.n_synthetic, seed=cfg.seed)
        object.__setattr__(dataset, "_synthetic_ood", cached)
    return cached, True, SYNTHETIC_SOURCES[dataset.modality]


def ood_metrics(
    test: Split,
    logits_in: np.ndarray,
    features_in: np.ndarray | None,
    out: tuple[Split, bool, str],
    logits_out: np.ndarray,
    features_out: np.ndarray | None,
    fit: tuple[str, np.ndarray | None, np.ndarray] | None = None,
) -> OodMetrics:
    """Every score's AUROC, AUPR-out, FPR at 95% TPR, ROC points and histogram.

    ``fit`` is (split name, features, labels) of the Mahalanobis fit; Mahalanobis is skipped without features.
    """
    split, synthetic, source = out
    maha = None
    fitted_on = None
    if fit is not None and fit[1] is not None and features_in is not None and features_out is not None:
        maha = MahalanobisFit.fit(fit[1], fit[2])
        fitted_on = fit[0]
    s_in = ood_scores(logits_in, features_in, maha)
    s_out = ood_scores(logits_out, features_out, maha)
    scores = []
    for name in s_in:
        edges, c_in, c_out = histogram(s_in[name], s_out[name])
        scores.append(
            OodScore(
                name=name,
                auroc=auroc(s_in[name], s_out[name]),
                aupr=aupr(s_in[name], s_out[name]),
                fpr_at_95_tpr=fpr_at_tpr(s_in[name], s_out[name], 0.95),
                roc=tuple(roc_points(s_in[name], s_out[name])),
                edges=tuple(edges),
                counts_in=tuple(c_in),
                counts_out=tuple(c_out),
            )
        )
    return OodMetrics(
        in_split=test.name,
        out_split=split.name,
        synthetic=synthetic,
        source=source,
        n_in=len(logits_in),
        n_out=len(logits_out),
        scores=tuple(scores),
        mahalanobis_fitted_on=fitted_on,
    )
