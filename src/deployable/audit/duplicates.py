"""Exact and near duplicates within and across splits (train/test leakage), and duplicates whose labels disagree.

Every sample gets a content digest after normalisation (text: NFKC, casefold, whitespace collapsed; image: pixels
on one integer scale; tabular: rows rounded to 6 significant digits); equal digests form an exact-duplicate group.
Near duplicates are then searched between groups (so a thousand copies of one text cost one), per modality:

* text: MinHash over character n-gram shingles, LSH banding for candidates, the estimated Jaccard decides, and the
  exact Jaccard of the shingle sets where the estimate is within 3 standard errors of the threshold;
* image: 64-bit pHash within a Hamming distance (multi-index hashing, no all-pairs comparison);
* tabular: nearest neighbour in the feature space standardised on the earlier split;
* any modality, when the model's penultimate features are given for both splits: cosine of the nearest neighbour.

The split order is train < validation < other splits (config order) < test < ood: a split is compared with every
earlier one; the ood split is compared with all others but never serves as the earlier one. Everything is
deterministic and independent of sample order: groups are ordered by digest, hashes are seeded constants, evidence
is sorted by id.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deployable.audit import minhash, phash
from deployable.audit.base import CheckOutput, evidence
from deployable.config import DuplicatesConfig
from deployable.core.records import Finding
from deployable.data.dataset import UNLABELED, Dataset

OOD_SPLIT = "ood"
SEED = 0  # of the MinHash permutations: a constant, so signatures agree across runs and processes
_MARGIN_SE = 3.0  # estimates this many standard errors around the threshold are checked exactly
_MAX_EXACT = 300_000  # exact Jaccard checks at most (about 5 s); beyond, the estimate decides
_TREE_FEATURES = 16  # up to this many features a k-d tree keeps neighbour search far from quadratic
_WITHIN_BUDGET = 2e11  # rows² × features of a brute-force within-split neighbour search, at most
_SIG_DIGITS = 6  # tabular rows are rounded to this many significant digits before hashing
_COSINE_BLOCK = 1 << 24  # similarities computed at once (64 MB of float32)
_CONTENT, _COSINE = 0, 1  # how a near pair was found


@dataclass
class DuplicateReport:
    """What :func:`find_duplicates` found.

    Attributes:
        output: findings, the one-line method and details (counts per split pair, seconds per stage).
        leaked: ``(split, against) -> (exact, near)``: bool (N_split,) masks over ``split``'s samples, True where
            the sample has an exact (resp. near but not exact) duplicate in ``against``. One entry for every ordered
            pair where ``against`` comes earlier in the split order (the ood split is never ``against``).
    """

    output: CheckOutput
    leaked: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


@dataclass
class _Samples:
    """All samples of all splits, split after split in the split order."""

    order: list[str]
    split: np.ndarray  # int64 (S,) index into order
    ids: np.ndarray  # str (S,)
    labels: np.ndarray  # int64 (S,)
    offsets: np.ndarray  # int64 (len(order) + 1,) first sample of each split
    group: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))  # (S,) exact-duplicate group
    n_groups: int = 0
    member: np.ndarray = field(default_factory=lambda: np.empty((0, 0), dtype=bool))  # (G, splits) group in split

    def of(self, k: int) -> slice:
        return slice(int(self.offsets[k]), int(self.offsets[k + 1]))

    def ref(self, index: np.ndarray) -> list[str]:
        return [
            f"{self.order[s]}:{i}" for s, i in zip(self.split[index].tolist(), self.ids[index].tolist(), strict=True)
        ]


class _Stages:
    """Seconds per stage, for the details."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 4)


def split_order(names: list[str]) -> list[str]:
    """train < validation < the others in their given order < test < ood."""
    first = [n for n in ("train", "validation") if n in names]
    last = [n for n in ("test", OOD_SPLIT) if n in names]
    return first + [n for n in names if n not in first and n not in last] + last


def split_pairs(order: list[str]) -> list[tuple[str, str]]:
    """``(split, against)`` for every split and every earlier non-ood split."""
    return [(s, a) for i, s in enumerate(order) for a in order[:i] if a != OOD_SPLIT]


def find_duplicates(
    dataset: Dataset,
    cfg: DuplicatesConfig,
    *,
    features: dict[str, np.ndarray] | None = None,
    max_evidence: int = 1000,
) -> DuplicateReport:
    """Exact and near duplicates within and across the dataset's splits, leakage masks and label conflicts.

    Args:
        dataset: the splits; inputs are list[str] (text), (N, H, W[, C]) or (N, C, H, W) arrays (image) or (N, F)
            arrays (tabular).
        cfg: thresholds and switches.
        features: split name -> float (N, D) penultimate features of the model, when it exposes them; splits
            missing here are compared by content only.
        max_evidence: sample references (and pairs) kept per finding; counts are always exact.

    Returns:
        The check output and the leakage masks.
    """
    if not cfg.enabled:
        return DuplicateReport(CheckOutput(skipped="audit.duplicates.enabled is false"))
    stages = _Stages()
    order = split_order(list(dataset.splits))
    splits = [dataset.splits[name] for name in order]
    sizes = np.array([len(s) for s in splits], dtype=np.int64)
    samples = _Samples(
        order=order,
        split=np.repeat(np.arange(len(order), dtype=np.int64), sizes),
        ids=np.concatenate([np.asarray(s.ids).astype(str) for s in splits] or [np.empty(0, dtype=str)]),
        labels=np.concatenate([np.asarray(s.labels, dtype=np.int64) for s in splits] or [np.empty(0, np.int64)]),
        offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
    )
    modality = _modality(dataset)
    details: dict[str, Any] = {"modality": modality, "order": order}

    # Exact: one digest per sample; groups numbered in digest order, so independent of sample order.
    if modality == "text":
        with stages("normalise"):
            texts = [minhash.normalize_text(str(t)) for s in splits for t in s.inputs]
        with stages("exact"):
            digest = np.fromiter(
                (int.from_bytes(hashlib.blake2b(t.encode("utf-8"), digest_size=8).digest(), "little") for t in texts),
                dtype=np.uint64,
                count=len(texts),
            )
    elif modality == "image":
        with stages("normalise"):
            pixels = [phash.canonical_pixels(np.asarray(s.inputs)) for s in splits if len(s)]
            pixels = _fill_empty(pixels, sizes, trailing=3)
        with stages("exact"):
            digest = np.concatenate([phash.digests(p) for p in pixels] or [np.empty(0, np.uint64)])
    else:
        with stages("normalise"):
            rows = [
                _round_significant(np.asarray(s.inputs, dtype=np.float64).reshape(len(s), -1)) for s in splits if len(s)
            ]
            rows = _fill_empty(rows, sizes, trailing=1)
        with stages("exact"):
            digest = np.concatenate([_row_digests(r) for r in rows] or [np.empty(0, np.uint64)])
    with stages("exact"):
        keys, first, samples.group = _groups(digest)
        samples.n_groups = len(keys)
        samples.member = np.zeros((len(keys), len(order)), dtype=bool)
        samples.member[samples.group, samples.split] = True

    # Near: pairs of distinct groups (g, h), g < h, with a score and how they were found.
    near = _NearPairs()
    method = _exact_method(modality)
    if cfg.near:
        if modality == "text":
            method += "; " + _near_text(texts, first, samples, cfg, near, stages, details)
        elif modality == "image" and min((p.shape[1:3] for p in pixels if len(p)), default=(32, 32)) < (32, 32):
            # Below pHash's 32x32 working size its bits only say the coarse shape (two different 8x8 scans of a 6
            # agree within 4 bits), so small images are compared pixel by pixel.
            flat = [p.reshape(len(p), -1).astype(np.float64) / 255.0 for p in pixels]
            method += "; " + _near_tabular(
                flat, samples, cfg, near, stages, details, standardise=False, max_rms=cfg.pixel_max_rms
            )
        elif modality == "image":
            method += "; " + _near_image(pixels, samples, cfg, near, stages)
        else:
            method += "; " + _near_tabular(rows, samples, cfg, near, stages, details)
        if features:
            cosine = _near_cosine(features, samples, cfg, near, stages)
            if cosine:
                method += "; " + cosine
    else:
        method += "; near duplicates off (audit.duplicates.near: false)"

    with stages("findings"):
        findings, leaked, pair_details = _findings(samples, near, max_evidence)
    details["split_pairs"] = pair_details
    details["exact_groups"] = int((np.bincount(samples.group, minlength=samples.n_groups) > 1).sum())
    details["near_pairs"] = len(near.g)
    details["thresholds"] = cfg.model_dump()
    details["seconds"] = stages.seconds
    return DuplicateReport(CheckOutput(findings=findings, method=method, details=details), leaked)


# ---------------------------------------------------------------------------------------------------------------------
# exact
# ---------------------------------------------------------------------------------------------------------------------


def _modality(dataset: Dataset) -> str:
    if dataset.modality in ("text", "image", "tabular"):
        return dataset.modality
    inputs = next((s.inputs for s in dataset.splits.values() if len(s)), [])
    if isinstance(inputs, list) and inputs and isinstance(inputs[0], str):
        return "text"
    return "image" if np.asarray(inputs).ndim >= 3 else "tabular"


def _fill_empty(arrays: list[np.ndarray], sizes: np.ndarray, *, trailing: int) -> list[np.ndarray]:
    """The arrays of the non-empty splits, with an empty array of the same trailing shape put in for empty splits."""
    shape = arrays[0].shape[1:] if arrays else (1,) * trailing
    given = iter(arrays)
    return [next(given) if n else np.zeros((0, *shape), dtype=arrays[0].dtype if arrays else np.int64) for n in sizes]


def _exact_method(modality: str) -> str:
    return {
        "text": "exact: BLAKE2b of the text after NFKC, casefold and whitespace collapse",
        "image": "exact: BLAKE2b of the pixels (floats in [0, 1] scaled to 0-255, rounded)",
        "tabular": f"exact: hash of the row rounded to {_SIG_DIGITS} significant digits",
    }[modality]


def _round_significant(x: np.ndarray) -> np.ndarray:
    """Round to _SIG_DIGITS significant digits; -0.0 becomes 0.0 and NaN stays NaN.

    Args:
        x: float64 (N, F).

    Returns:
        float64 (N, F).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        exponent = np.floor(np.log10(np.abs(x)))
        exponent = np.where(np.isfinite(exponent), exponent, 0.0)
        scale = 10.0 ** (_SIG_DIGITS - 1 - exponent)
        out = np.rint(x * scale) / scale
    out = np.where(np.isfinite(out) | ~np.isfinite(x), out, x)  # overflowing scales: keep the value
    return out + 0.0


def _row_digests(rows: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row's float64 bit patterns (splitmix64 folded over the columns).

    Args:
        rows: float64 (N, F).

    Returns:
        uint64 (N,).
    """
    bits = np.ascontiguousarray(rows).view(np.uint64)
    h = np.full(len(rows), rows.shape[1] + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(rows.shape[1]):
            h = minhash.mix64(h * np.uint64(0x100000001B3) + bits[:, j])
    return h


def _groups(digest: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact-duplicate groups numbered in digest order.

    Returns:
        ``(keys, first, group)``: uint64 (G,) digests, int64 (G,) a sample of each group (the first in sample
        order), int64 (S,) group of each sample.
    """
    order = np.argsort(digest, kind="stable")
    d = digest[order]
    head = np.r_[True, d[1:] != d[:-1]] if len(d) else np.zeros(0, dtype=bool)
    group = np.empty(len(d), dtype=np.int64)
    group[order] = np.cumsum(head) - 1
    return d[head], order[head], group


# ---------------------------------------------------------------------------------------------------------------------
# near
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class _NearPairs:
    """Near pairs of groups ``g < h`` with their similarity and how they were found."""

    g: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    h: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    score: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float64))
    how: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def add(self, g: np.ndarray, h: np.ndarray, score: np.ndarray, how: int) -> None:
        keep = g != h
        g, h, score = g[keep], h[keep], score[keep]
        self.g = np.concatenate([self.g, np.minimum(g, h)])
        self.h = np.concatenate([self.h, np.maximum(g, h)])
        self.score = np.concatenate([self.score, score.astype(np.float64)])
        self.how = np.concatenate([self.how, np.full(len(g), how, dtype=np.int64)])


def _near_text(
    texts: list[str],
    first: np.ndarray,
    samples: _Samples,
    cfg: DuplicatesConfig,
    near: _NearPairs,
    stages: _Stages,
    details: dict[str, Any],
) -> str:
    rows = cfg.num_perm // cfg.bands
    with stages("shingle"):
        values, starts = minhash.shingle_hashes([texts[i] for i in first.tolist()], cfg.ngram)
    with stages("minhash"):
        signatures = minhash.minhash_signatures(values, starts, cfg.num_perm, SEED)
    thr = cfg.jaccard_threshold
    margin = _MARGIN_SE * math.sqrt(thr * (1 - thr) / cfg.num_perm)
    with stages("lsh_estimate"):
        # Leakage needs every candidate of a group outside the first split; train-only groups get a lighter search.
        query = samples.member[:, 1:].any(axis=1)
        pairs, estimate = minhash.lsh_search(
            signatures, cfg.bands, query, low=thr - margin, sure=min(thr + margin, 1.0)
        )
    with stages("exact_jaccard"):
        score = estimate.copy()
        border = np.flatnonzero((estimate >= thr - margin) & (estimate < min(thr + margin, 1.0)))
        if len(border) > _MAX_EXACT:
            border = np.sort(border[_exact_priority(pairs[border], estimate[border], query, thr)[:_MAX_EXACT]])
        score[border] = minhash.exact_jaccard(values, starts, pairs[border])
        found = score >= thr
        near.add(pairs[found, 0], pairs[found, 1], score[found], _CONTENT)
    details["text"] = {
        "unique_texts": len(first),
        "shingles": len(values),
        "candidate_pairs_kept": len(pairs),
        "exact_jaccard_checked": len(border),
        "near_pairs": int(found.sum()),
    }
    return (
        f"near: MinHash {cfg.num_perm} perms, LSH {cfg.bands} bands × {rows} rows on {cfg.ngram}-char shingles, "
        f"Jaccard ≥ {thr:g} (estimate; exact Jaccard within ±{margin:.2f} of it)"
    )


def _exact_priority(pairs: np.ndarray, estimate: np.ndarray, query: np.ndarray, thr: float) -> np.ndarray:
    """Order in which borderline pairs get an exact Jaccard when there are too many: pairs of a query text first,
    each query's best estimates before any query's next ones (so every query gets its likeliest match checked),
    then the estimates closest to the threshold.

    Args:
        pairs: int64 (P, 2) text pairs.
        estimate: float64 (P,) their estimated Jaccard.
        query: bool (N,) query texts.
        thr: the Jaccard threshold.

    Returns:
        int64 (P,) a permutation of the pairs.
    """
    owner = np.where(query[pairs[:, 1]], pairs[:, 1], pairs[:, 0])
    by_owner = np.lexsort((-estimate, owner))
    head = np.r_[True, owner[by_owner][1:] != owner[by_owner][:-1]]
    start = np.maximum.accumulate(np.where(head, np.arange(len(head)), 0))
    rank = np.empty(len(pairs), dtype=np.int64)
    rank[by_owner] = np.arange(len(pairs)) - start
    return np.lexsort((np.abs(estimate - thr), rank, ~query[owner]))


def _near_image(
    pixels: list[np.ndarray], samples: _Samples, cfg: DuplicatesConfig, near: _NearPairs, stages: _Stages
) -> str:
    shapes = {p.shape[1:3] for p in pixels if len(p)}
    with stages("phash"):
        hashes = np.concatenate([phash.phash(p) for p in pixels]) if pixels else np.empty(0, np.uint64)
        # One hash per group (its members are the same picture).
        per_group = np.zeros(samples.n_groups, dtype=np.uint64)
        per_group[samples.group] = hashes
    with stages("hamming"):
        pairs, distance = phash.near_pairs(per_group, cfg.phash_max_distance)
        near.add(pairs[:, 0], pairs[:, 1], 1.0 - distance / 64.0, _CONTENT)
    size = "x".join(str(v) for v in sorted(shapes)[0]) if len(shapes) == 1 else "mixed sizes"
    return (
        f"near: 64-bit pHash (gray, area-resized {size} → 32x32, DCT 8x8 > median), Hamming ≤ "
        f"{cfg.phash_max_distance} ({'multi-index hashing' if phash.indexed(cfg.phash_max_distance) else 'all pairs'})"
    )


def _near_tabular(
    rows: list[np.ndarray],
    samples: _Samples,
    cfg: DuplicatesConfig,
    near: _NearPairs,
    stages: _Stages,
    details: dict[str, Any],
    *,
    standardise: bool = True,
    max_rms: float | None = None,
) -> str:
    """Nearest neighbours within ``max_rms * sqrt(n_features)`` (default ``cfg.tabular_max_distance``), in the space
    standardised on the earlier split, or as given when ``standardise`` is False (pixels scaled to [0, 1])."""
    from sklearn.neighbors import NearestNeighbors

    n_features = rows[0].shape[1] if rows else 0
    per_feature = cfg.tabular_max_distance if max_rms is None else max_rms
    radius = per_feature * math.sqrt(max(n_features, 1))
    skipped: list[str] = []
    with stages("neighbours"):
        for k, name in enumerate(samples.order):
            if not len(rows[k]):
                continue
            # The earlier split's unique rows define the scale (its mean and spread).
            idx, groups = _unique_members(samples, k)
            ref = rows[k][idx - samples.offsets[k]]
            mean, std = np.nanmean(ref, axis=0), np.nanstd(ref, axis=0)
            std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
            mean = np.where(np.isfinite(mean), mean, 0.0)
            if not standardise:
                mean, std = np.zeros_like(mean), np.ones_like(std)
            space = np.nan_to_num((ref - mean) / std)
            nn = NearestNeighbors(n_neighbors=1).fit(space)
            if n_features > _TREE_FEATURES and len(space) ** 2 * n_features > _WITHIN_BUDGET:
                skipped.append(name)  # a quadratic brute-force search for one low finding: not worth it
            elif len(space) > 1:
                dist, j = nn.kneighbors(space, n_neighbors=2)  # [:, 0] is the row itself
                hit = dist[:, 1] <= radius
                near.add(groups[hit], groups[j[hit, 1]], -dist[hit, 1], _CONTENT)
            if name == OOD_SPLIT:
                continue
            for later in range(k + 1, len(samples.order)):
                if not len(rows[later]):
                    continue
                lidx, lgroups = _unique_members(samples, later)
                query = np.nan_to_num((rows[later][lidx - samples.offsets[later]] - mean) / std)
                d, j = nn.kneighbors(query, n_neighbors=1)
                hit = d[:, 0] <= radius
                near.add(lgroups[hit], groups[j[hit, 0]], -d[hit, 0], _CONTENT)
    if skipped:
        details["near_within_skipped"] = skipped
    if not standardise:
        return f"near: nearest neighbour by root-mean-square pixel difference ≤ {per_feature:g} of the range"
    return (
        f"near: nearest neighbour in the space standardised on the earlier split, distance ≤ "
        f"{per_feature:g} × √{n_features} = {radius:.3g}"
    )


def _near_cosine(
    features: dict[str, np.ndarray], samples: _Samples, cfg: DuplicatesConfig, near: _NearPairs, stages: _Stages
) -> str:
    done = []
    with stages("embedding"):
        given: dict[int, np.ndarray] = {}
        for k, name in enumerate(samples.order):
            f = features.get(name)
            n = int(samples.offsets[k + 1] - samples.offsets[k])
            if f is None or len(f) != n or n == 0:
                continue
            given[k] = np.asarray(f, dtype=np.float32).reshape(n, -1)
        # Centred first: ReLU features are all non-negative and sentence embeddings share a common direction, so raw
        # cosines of unrelated samples sit near 1; after removing the pooled mean only near copies stay that close.
        centre = np.concatenate(list(given.values())).mean(axis=0) if given else None
        unit: dict[int, np.ndarray] = {}
        for k, f in given.items():
            f = f - centre
            unit[k] = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        for k, a in split_pairs_index(samples.order):
            if k not in unit or a not in unit:
                continue
            ref = unit[a]
            block = max(1, _COSINE_BLOCK // max(len(ref), 1))
            for s in range(0, len(unit[k]), block):
                sim = unit[k][s : s + block] @ ref.T
                j = sim.argmax(axis=1)
                best = sim[np.arange(len(j)), j]
                hit = np.flatnonzero(best >= cfg.cosine_threshold)
                near.add(
                    samples.group[samples.offsets[k] + s + hit],
                    samples.group[samples.offsets[a] + j[hit]],
                    best[hit],
                    _COSINE,
                )
            done.append(f"{samples.order[k]} vs {samples.order[a]}")
    if not done:
        return ""
    return (
        f"embedding cosine ≥ {cfg.cosine_threshold:g} on the model's centred penultimate features ({', '.join(done)})"
    )


def split_pairs_index(order: list[str]) -> list[tuple[int, int]]:
    return [(order.index(s), order.index(a)) for s, a in split_pairs(order)]


def _unique_members(samples: _Samples, k: int) -> tuple[np.ndarray, np.ndarray]:
    """One sample per exact group in split k (its first) and the groups, in group order."""
    part = samples.group[samples.of(k)]
    groups, first = np.unique(part, return_index=True)
    return first + samples.offsets[k], groups


# ---------------------------------------------------------------------------------------------------------------------
# findings
# ---------------------------------------------------------------------------------------------------------------------


def _findings(
    samples: _Samples, near: _NearPairs, max_evidence: int
) -> tuple[list[Finding], dict[tuple[str, str], tuple[np.ndarray, np.ndarray]], list[dict[str, Any]]]:
    order, n_groups = samples.order, samples.n_groups
    # Rank of each sample by (split, id): evidence and tie-breaks follow ids, never sample positions.
    rank = np.empty(len(samples.ids), dtype=np.int64)
    by_id = np.lexsort((samples.ids, samples.split))
    rank[by_id] = np.arange(len(by_id))
    # rep[k][g]: the sample of group g in split k with the smallest id (-1 when g has none there).
    rep = np.full((len(order), n_groups), -1, dtype=np.int64)
    cell, first = np.unique(samples.split[by_id] * n_groups + samples.group[by_id], return_index=True)
    rep.flat[cell] = by_id[first]
    findings: list[Finding] = []
    findings += _within_exact(samples, rank, max_evidence)
    findings += _within_near(samples, near, rep, rank, max_evidence)
    leaked: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    stats: list[dict[str, Any]] = []
    g2 = np.concatenate([near.g, near.h])
    h2 = np.concatenate([near.h, near.g])
    score2 = np.concatenate([near.score, near.score])
    how2 = np.concatenate([near.how, near.how])
    for s_name, a_name in split_pairs(order):
        k, a = order.index(s_name), order.index(a_name)
        sl = samples.of(k)
        group = samples.group[sl]
        exact = samples.member[group, a]
        # Best partner in `a` of every group with a near pair there: highest score, then smallest id.
        there = samples.member[h2, a]
        x, y, sc, hw = g2[there], h2[there], score2[there], how2[there]
        best = np.lexsort((rank[rep[a][y]], -sc, x))
        x, y, hw = x[best], y[best], hw[best]
        head = np.r_[True, x[1:] != x[:-1]] if len(x) else np.zeros(0, dtype=bool)
        partner = np.full(n_groups, -1, dtype=np.int64)
        partner[x[head]] = y[head]
        by_content = np.zeros(n_groups, dtype=bool)
        by_content[x[hw == _CONTENT]] = True
        by_cosine = np.zeros(n_groups, dtype=bool)
        by_cosine[x[hw == _COSINE]] = True
        near_mask = (partner[group] >= 0) & ~exact
        leaked[(s_name, a_name)] = (exact, near_mask)
        n = len(group)
        stat = {
            "split": s_name,
            "against": a_name,
            "n": n,
            "exact": int(exact.sum()),
            "near": int(near_mask.sum()),
            "near_content": int((near_mask & by_content[group]).sum()),
            "near_cosine": int((near_mask & by_cosine[group]).sum()),
            "rate": float((exact | near_mask).mean()) if n else 0.0,
        }
        stats.append(stat)
        for code, mask, match in (
            ("exact-leak", exact, rep[a][group]),
            ("near-leak", near_mask, rep[a][np.maximum(partner[group], 0)]),
        ):
            if mask.any():
                findings.append(
                    _leak_finding(samples, code, sl.start + np.flatnonzero(mask), match[mask], rank, stat, max_evidence)
                )
    findings += _conflicts(samples, near, rank, max_evidence)
    return findings, leaked, stats


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else many or one + 's'}"


def _by_rank(index: np.ndarray, rank: np.ndarray) -> np.ndarray:
    return index[np.argsort(rank[index], kind="stable")]


def _within_exact(samples: _Samples, rank: np.ndarray, max_evidence: int) -> list[Finding]:
    out = []
    for k, name in enumerate(samples.order):
        sl = samples.of(k)
        group = samples.group[sl]
        per = np.bincount(group, minlength=samples.n_groups)
        dup = np.flatnonzero(per > 1)
        if not len(dup):
            continue
        idx = _by_rank(sl.start + np.flatnonzero(per[group] > 1), rank)
        n_redundant = int(per[dup].sum()) - len(dup)
        rate = n_redundant / len(group)
        groups = _group_lists(samples, idx, max_evidence)
        out.append(
            Finding(
                check="duplicates",
                code="exact-duplicate",
                severity="medium" if rate >= 0.05 else "low",
                message=f"{len(idx)} {name} samples are exact duplicates after normalisation: "
                f"{_n(len(dup), 'group')}, {_n(n_redundant, 'redundant copy', 'redundant copies')} "
                f"({rate:.2%} of the split)",
                evidence=evidence(name, samples.ids[sl], idx - sl.start, limit=max_evidence),
                details={
                    "split": name,
                    "n_groups": len(dup),
                    "n_samples": len(idx),
                    "n_redundant": n_redundant,
                    "rate": rate,
                    "groups": groups,
                },
            )
        )
    return out


def _group_lists(samples: _Samples, idx: np.ndarray, limit: int) -> list[list[str]]:
    """The samples ``idx`` (sorted by id) as lists per exact group, groups in the order of their first id."""
    groups: dict[int, list[str]] = {}
    for g, ref in zip(samples.group[idx].tolist(), samples.ref(idx), strict=True):
        if g in groups or len(groups) < limit:
            groups.setdefault(g, []).append(ref)
    return list(groups.values())


def _within_near(
    samples: _Samples, near: _NearPairs, rep: np.ndarray, rank: np.ndarray, max_evidence: int
) -> list[Finding]:
    out = []
    for k, name in enumerate(samples.order):
        both = samples.member[near.g, k] & samples.member[near.h, k]
        if not both.any():
            continue
        g, h = near.g[both], near.h[both]
        a, b = rep[k][g], rep[k][h]
        swap = rank[a] > rank[b]
        a, b = np.where(swap, b, a), np.where(swap, a, b)
        pair_order = np.lexsort((rank[b], rank[a]))
        a, b = a[pair_order], b[pair_order]
        sl = samples.of(k)
        involved = np.zeros(samples.n_groups, dtype=bool)
        involved[g] = involved[h] = True
        idx = _by_rank(sl.start + np.flatnonzero(involved[samples.group[sl]]), rank)
        pairs = [list(p) for p in zip(samples.ref(a[:max_evidence]), samples.ref(b[:max_evidence]), strict=True)]
        out.append(
            Finding(
                check="duplicates",
                code="near-duplicate",
                severity="low",
                message=f"{len(idx)} {name} samples are near duplicates of other {name} samples ({_n(len(g), 'pair')}, "
                f"{len(idx) / (sl.stop - sl.start):.1%} of the split)",
                evidence=evidence(name, samples.ids[sl], idx - sl.start, limit=max_evidence),
                details={"split": name, "n_pairs": len(g), "n_samples": len(idx), "pairs": pairs},
            )
        )
    return out


def _leak_finding(
    samples: _Samples,
    code: str,
    idx: np.ndarray,
    match: np.ndarray,
    rank: np.ndarray,
    stat: dict[str, Any],
    max_evidence: int,
) -> Finding:
    s_name, a_name, n = stat["split"], stat["against"], stat["n"]
    sort = np.argsort(rank[idx], kind="stable")
    idx, match = idx[sort], match[sort]
    count = len(idx)
    rate = count / n
    important = s_name in ("test", "validation")
    if code == "exact-leak":
        severity = "high" if important else "medium"
        what = "exact duplicates (after normalisation)"
    else:
        severity = ("high" if rate >= 0.01 else "medium") if important else "low"
        what = "near duplicates (not exact)"
    shown = max(1, max_evidence // 2)
    first_match = np.unique(match[:shown], return_index=True)[1]
    refs = samples.ref(idx[:shown]) + samples.ref(match[:shown][np.sort(first_match)])
    pairs = [list(p) for p in zip(samples.ref(idx[:max_evidence]), samples.ref(match[:max_evidence]), strict=True)]
    return Finding(
        check="leakage",
        code=code,
        severity=severity,
        message=f"{count} of {n} {s_name} samples ({rate:.1%}) are {what} of {a_name} samples",
        evidence=tuple(refs),
        details={"split": s_name, "against": a_name, "n": n, "count": count, "rate": rate, "pairs": pairs},
    )


def _conflicts(samples: _Samples, near: _NearPairs, rank: np.ndarray, max_evidence: int) -> list[Finding]:
    labeled = np.flatnonzero(samples.labels != UNLABELED)
    lo = np.full(samples.n_groups, np.iinfo(np.int64).max)
    hi = np.full(samples.n_groups, np.iinfo(np.int64).min)
    np.minimum.at(lo, samples.group[labeled], samples.labels[labeled])
    np.maximum.at(hi, samples.group[labeled], samples.labels[labeled])
    has = hi >= lo
    conflicting = has & (hi > lo)
    label = np.where(has & ~conflicting, lo, -1)
    near_bad = (label[near.g] >= 0) & (label[near.h] >= 0) & (label[near.g] != label[near.h])
    if not conflicting.any() and not near_bad.any():
        return []
    involved = conflicting.copy()
    involved[near.g[near_bad]] = involved[near.h[near_bad]] = True
    idx = _by_rank(np.flatnonzero(involved[samples.group]), rank)
    # A group's representative: its member with the smallest (split, id).
    first = np.full(samples.n_groups, -1, dtype=np.int64)
    by = _by_rank(np.arange(len(samples.group)), rank)
    groups, at = np.unique(samples.group[by], return_index=True)
    first[groups] = by[at]
    g, h = near.g[near_bad], near.h[near_bad]
    pair_order = np.lexsort((rank[first[h]], rank[first[g]]))
    g, h = g[pair_order], h[pair_order]
    pairs = [
        [f"{ra}={samples.labels[a]}", f"{rb}={samples.labels[b]}"]
        for a, b, ra, rb in zip(
            first[g[:max_evidence]].tolist(),
            first[h[:max_evidence]].tolist(),
            samples.ref(first[g[:max_evidence]]),
            samples.ref(first[h[:max_evidence]]),
            strict=True,
        )
    ]
    exact_idx = idx[conflicting[samples.group[idx]]]
    n_exact, n_near = int(conflicting.sum()), len(g)
    return [
        Finding(
            check="duplicates",
            code="conflicting-labels",
            severity="high",
            message=f"{len(idx)} samples are duplicates with different labels: "
            f"{_n(n_exact, 'exact-duplicate group')} and {_n(n_near, 'near-duplicate pair')}",
            evidence=tuple(samples.ref(idx[:max_evidence])),
            details={
                "n_samples": len(idx),
                "exact_groups": n_exact,
                "near_pairs": n_near,
                "groups": [
                    [f"{r}={samples.labels[i]}" for r, i in zip(samples.ref(np.asarray(gl)), gl, strict=True)]
                    for gl in _index_groups(samples, exact_idx, max_evidence)
                ],
                "pairs": pairs,
            },
        )
    ]


def _index_groups(samples: _Samples, idx: np.ndarray, limit: int) -> list[list[int]]:
    groups: dict[int, list[int]] = {}
    for g, i in zip(samples.group[idx].tolist(), idx.tolist(), strict=True):
        if g in groups or len(groups) < limit:
            groups.setdefault(g, []).append(i)
    return list(groups.values())
