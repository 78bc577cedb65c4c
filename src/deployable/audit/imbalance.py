"""Class balance within each labeled split, and label-distribution shift between each split and the first one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deployable.audit.base import CheckOutput, evidence
from deployable.config import ImbalanceConfig
from deployable.core.records import Finding
from deployable.data.dataset import UNLABELED, Split

#: Monte-Carlo draws of the exact (permutation) test used when the chi-square approximation is unreliable.
PERMUTATIONS = 10_000
#: classes listed as "moved most" in a label-shift finding.
TOP_MOVED = 3


def check_imbalance(
    splits: Sequence[Split], cfg: ImbalanceConfig, *, label_names: Sequence[str], max_evidence: int = 1000
) -> CheckOutput:
    """Class counts, missing, rare and imbalanced classes per split, and label shift against the first split.

    Per labeled split (samples with label -1 are ignored; a split with none is not analysed):

    - ``missing-class`` (high): classes with no sample in the split;
    - ``rare-class`` (medium): classes with 1 .. ``cfg.min_class_count`` - 1 samples; evidence: their samples;
    - ``class-imbalance`` (medium): ratio = largest count / smallest non-zero count above ``cfg.max_ratio``.

    Label shift of split s against the reference r (the first labeled split, normally train): chi-square test of
    homogeneity of the 2 x C table of counts (classes absent from both dropped),
    ``X2 = sum_ij (O_ij - E_ij)^2 / E_ij`` with ``E_ij = row_i * col_j / total`` and C - 1 degrees of freedom
    (``scipy.stats.chi2_contingency``, Yates-corrected when C = 2). When over 20% of the expected counts are below 5
    or any is below 1 (Cochran's rule) the chi-square approximation is unreliable and the p-value is instead the
    share of 10,000 random re-assignments of the pooled labels to the two splits (multivariate hypergeometric draws,
    seeded) whose X2 is at least the observed one. ``label-shift`` (medium) when p < ``cfg.alpha``; details give
    the p-value, the total variation distance ``TV = 1/2 sum_j |p_s(j) - p_r(j)|`` and the classes that moved most.

    Args:
        splits: the splits, the reference first.
        cfg: thresholds.
        label_names: (C,) class names.
        max_evidence: sample ids kept per finding (counts are exact).

    Returns:
        The findings; ``details["counts"]`` is the split -> class -> count table for the report, with ``ratio``,
        ``shift`` (per compared split) and the thresholds.
    """
    n_classes = len(label_names)
    findings: list[Finding] = []
    counts: dict[str, dict[str, int]] = {}
    ratios: dict[str, float | None] = {}
    shift: dict[str, dict[str, Any]] = {}
    unlabeled: list[str] = []
    reference: tuple[str, np.ndarray] | None = None

    for split in splits:
        mask = split.labels != UNLABELED
        if not mask.any():
            unlabeled.append(split.name)
            continue
        labels = split.labels[mask]
        if labels.min() < 0 or labels.max() >= n_classes:
            raise ValueError(f"imbalance: split '{split.name}' has labels outside 0..{n_classes - 1}")
        c = np.bincount(labels, minlength=n_classes)
        counts[split.name] = {label_names[j]: int(c[j]) for j in range(n_classes)}
        findings.extend(_balance_findings(split, c, cfg, label_names, max_evidence))
        present = c[c > 0]
        ratios[split.name] = float(present.max() / present.min()) if len(present) else None

        if reference is None:
            reference = (split.name, c)
            continue
        result = label_shift(reference[1], c, seed=len(shift))
        if result is None:
            continue
        moved = np.argsort(-np.abs(result["change"]), kind="stable")[:TOP_MOVED]
        share_r = reference[1] / reference[1].sum()
        share_s = c / c.sum()
        entry = {
            "against": reference[0],
            "p_value": result["p_value"],
            "statistic": result["statistic"],
            "dof": result["dof"],
            "test": result["test"],
            "min_expected": result["min_expected"],
            "total_variation": result["total_variation"],
            "moved": {
                label_names[j]: {
                    "reference": float(share_r[j]),
                    "split": float(share_s[j]),
                    "change": float(share_s[j] - share_r[j]),
                }
                for j in moved.tolist()
            },
        }
        shift[split.name] = entry
        if result["p_value"] < cfg.alpha:
            most = ", ".join(f"{name} {v['reference']:.1%} -> {v['split']:.1%}" for name, v in entry["moved"].items())
            findings.append(
                Finding(
                    check="imbalance",
                    code="label-shift",
                    severity="medium",
                    message=(
                        f"the label distribution of '{split.name}' differs from '{reference[0]}' "
                        f"(p = {result['p_value']:.2g}, total variation {result['total_variation']:.3f}; {most})"
                    ),
                    details={"split": split.name, **entry, "alpha": cfg.alpha},
                )
            )

    if not counts:
        return CheckOutput(skipped="no split has labeled samples")
    details: dict[str, Any] = {
        "counts": counts,
        "ratio": ratios,
        "shift": shift,
        "max_ratio": cfg.max_ratio,
        "min_class_count": cfg.min_class_count,
        "alpha": cfg.alpha,
    }
    if unlabeled:
        details["unlabeled_splits"] = unlabeled
    method = (
        "class counts per labeled split; label shift against "
        f"'{next(iter(counts))}' by a chi-square test of homogeneity (exact permutation test when expected counts "
        "are small)"
    )
    return CheckOutput(findings=findings, method=method, details=details)


def label_shift(reference: np.ndarray, counts: np.ndarray, *, seed: int = 0) -> dict[str, Any] | None:
    """Test whether two count vectors come from the same class distribution.

    Args:
        reference: (C,) class counts of the reference split.
        counts: (C,) class counts of the compared split.
        seed: seed of the permutation test (used only when expected counts are small).

    Returns:
        ``statistic`` (X2), ``dof``, ``p_value``, ``test`` ("chi-square" or "permutation"), ``total_variation`` and
        ``change`` (C,) = share in ``counts`` - share in ``reference``; None when fewer than two classes occur.
    """
    from scipy.stats import chi2_contingency

    reference = np.asarray(reference, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    if reference.sum() == 0 or counts.sum() == 0:
        return None
    change = counts / counts.sum() - reference / reference.sum()
    keep = (reference + counts) > 0
    if keep.sum() < 2:
        return None
    table = np.stack([reference[keep], counts[keep]])
    res = chi2_contingency(table)
    expected = res.expected_freq
    out: dict[str, Any] = {
        "statistic": float(res.statistic),
        "dof": int(res.dof),
        "p_value": float(res.pvalue),
        "test": "chi-square",
        "total_variation": float(0.5 * np.abs(change).sum()),
        "change": change,
        "min_expected": float(expected.min()),
    }
    if (expected < 1).any() or (expected < 5).mean() > 0.2:
        out["p_value"] = _permutation_p_value(table, seed=seed)
        out["statistic"] = float(_x2(table[1:], table.sum(axis=0), table[1].sum(), table.sum())[0])
        out["test"] = "permutation"
    return out


def _x2(second: np.ndarray, pooled: np.ndarray, n2: int, total: int) -> np.ndarray:
    """Pearson X2 (no continuity correction) of 2 x C tables given their second rows (B, C) and the column sums."""
    n1 = total - n2
    first = pooled - second
    e1 = pooled * (n1 / total)
    e2 = pooled * (n2 / total)
    return (((first - e1) ** 2) / e1 + ((second - e2) ** 2) / e2).sum(axis=1)


def _permutation_p_value(table: np.ndarray, *, seed: int) -> float:
    """P(X2 >= observed) when the pooled labels are dealt to the two splits at random (sizes kept)."""
    pooled = table.sum(axis=0)
    total = int(pooled.sum())
    n2 = int(table[1].sum())
    rng = np.random.default_rng([seed, 7919])
    draws = rng.multivariate_hypergeometric(pooled, n2, size=PERMUTATIONS)
    observed = _x2(table[1:], pooled, n2, total)[0]
    null = _x2(draws, pooled, n2, total)
    # the observed table counts as one draw so the p-value is never 0 (Phipson & Smyth 2010)
    return float((1 + np.sum(null >= observed - 1e-9 * max(1.0, observed))) / (PERMUTATIONS + 1))


def _balance_findings(
    split: Split, c: np.ndarray, cfg: ImbalanceConfig, label_names: Sequence[str], max_evidence: int
) -> list[Finding]:
    out: list[Finding] = []
    missing = np.flatnonzero(c == 0)
    if len(missing):
        names = [label_names[j] for j in missing.tolist()]
        out.append(
            Finding(
                check="imbalance",
                code="missing-class",
                severity="high",
                message=f"'{split.name}' has no sample of {len(names)} class(es): {', '.join(names[:10])}"
                + (" ..." if len(names) > 10 else ""),
                details={"split": split.name, "classes": names},
            )
        )
    rare = np.flatnonzero((c > 0) & (c < cfg.min_class_count))
    if len(rare):
        names = [label_names[j] for j in rare.tolist()]
        idx = np.flatnonzero(np.isin(split.labels, rare))
        out.append(
            Finding(
                check="imbalance",
                code="rare-class",
                severity="medium",
                message=f"'{split.name}' has fewer than {cfg.min_class_count} samples of {len(names)} class(es): "
                + ", ".join(f"{label_names[j]} ({int(c[j])})" for j in rare.tolist()[:10])
                + (" ..." if len(names) > 10 else ""),
                evidence=evidence(split.name, split.ids, idx, limit=max_evidence),
                details={
                    "split": split.name,
                    "classes": {label_names[j]: int(c[j]) for j in rare.tolist()},
                    "min_class_count": cfg.min_class_count,
                },
            )
        )
    present = np.flatnonzero(c > 0)
    if len(present) >= 2:
        big, small = present[np.argmax(c[present])], present[np.argmin(c[present])]
        ratio = c[big] / c[small]
        if ratio > cfg.max_ratio:
            out.append(
                Finding(
                    check="imbalance",
                    code="class-imbalance",
                    severity="medium",
                    message=f"'{split.name}' is imbalanced: {label_names[big]} has {int(c[big])} samples, "
                    f"{label_names[small]} {int(c[small])} (ratio {ratio:.1f} > {cfg.max_ratio:g})",
                    details={
                        "split": split.name,
                        "ratio": float(ratio),
                        "largest": label_names[big],
                        "smallest": label_names[small],
                        "max_ratio": cfg.max_ratio,
                    },
                )
            )
    return out
