"""Duplicates and leakage: planted exact and near duplicates for text, images and tables are found, and only them."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage

from deployable.audit import minhash, phash
from deployable.audit.duplicates import _exact_priority, find_duplicates, split_order, split_pairs
from deployable.config import DuplicatesConfig
from deployable.data.dataset import Dataset, Split

CFG = DuplicatesConfig()
N = CFG.ngram


def _split(name: str, inputs, labels, prefix: str | None = None) -> Split:
    n = len(labels)
    return Split(
        name=name,
        inputs=inputs,
        labels=np.asarray(labels, dtype=np.int64),
        ids=np.array([f"{prefix or name[:2]}{i}" for i in range(n)]),
    )


def _shingles(text: str) -> set[str]:
    t = minhash.normalize_text(text)
    return {t} if len(t) < N else {t[i : i + N] for i in range(len(t) - N + 1)}


def _jaccard(a: str, b: str) -> float:
    sa, sb = _shingles(a), _shingles(b)
    return len(sa & sb) / len(sa | sb)


def _random_texts(rng: np.random.Generator, n: int, words: int = 14) -> list[str]:
    vocab = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=int(rng.integers(3, 9)))) for _ in range(800)]
    return [" ".join(rng.choice(vocab, size=words)) for _ in range(n)]


def _typos(text: str, positions: list[int]) -> str:
    chars = list(text)
    for p in positions:
        chars[p] = "#"
    return "".join(chars)


# ---------------------------------------------------------------------------------------------------------------------
# text
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def text_data() -> tuple[Dataset, dict[str, object]]:
    """train 60, validation 20, test 30, ood 10 random-word texts with planted duplicates (see ``plan``)."""
    rng = np.random.default_rng(0)
    train = _random_texts(rng, 60)
    validation = _random_texts(rng, 20)
    test = _random_texts(rng, 30)
    ood = _random_texts(rng, 10)
    y_train, y_val, y_test = rng.integers(0, 3, 60), rng.integers(0, 3, 20), rng.integers(0, 3, 30)
    # test 0: train 5 after case, whitespace and Unicode-compatibility changes (full-width letters, NBSP).
    test[0] = "  " + train[5].upper().replace(" ", " \u00a0 ", 3) + "\t"
    test[0] = test[0][:10] + test[0][10:20].translate(str.maketrans("ABCDE", "ＡＢＣＤＥ")) + test[0][20:]
    y_test[0] = y_train[5]
    # test 1: train 7 with two typos (near, same label).
    test[1] = _typos(train[7], [10, 40])
    y_test[1] = y_train[7]
    # test 2: train 9 exactly, with another label (conflict).
    test[2] = train[9]
    y_test[2] = (y_train[9] + 1) % 3
    # test 3: validation 2 with one typo, another label (near leak from validation, near conflict).
    test[3] = _typos(validation[2], [25])
    y_test[3] = (y_val[2] + 1) % 3
    # validation 0: train 11 with different case.
    validation[0] = train[11].title()
    y_val[0] = y_train[11]
    # within train: 30 == 31 after case; 40 ~ 41 (one typo).
    train[31] = train[30].upper()
    y_train[31] = y_train[30]
    train[41] = _typos(train[40], [15])
    y_train[41] = y_train[40]
    # ood 0: test 5 exactly; ood 1: train 13 with a typo (ood is compared with every split).
    ood[0] = test[5]
    ood[1] = _typos(train[13], [30])
    dataset = Dataset(
        name="t",
        modality="text",
        label_names=("a", "b", "c"),
        splits={
            "test": _split("test", test, y_test),
            "ood": _split("ood", ood, [-1] * 10),
            "train": _split("train", train, y_train),
            "validation": _split("validation", validation, y_val),
        },
    )
    plan = {"near_js": [_jaccard(test[1], train[7]), _jaccard(test[3], validation[2]), _jaccard(train[41], train[40])]}
    return dataset, plan


def _mask(n: int, true: list[int]) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[true] = True
    return out


def _by_code(report, code: str, split: str | None = None, against: str | None = None):
    found = [
        f
        for f in report.output.findings
        if f.code == code
        and (split is None or f.details.get("split") == split)
        and (against is None or f.details.get("against") == against)
    ]
    assert len(found) == 1, [f.message for f in report.output.findings]
    return found[0]


def test_planted_near_pairs_are_near_not_trivial(text_data) -> None:
    _, plan = text_data
    assert all(0.7 <= j < 0.95 for j in plan["near_js"]), plan["near_js"]


def test_text_leakage_masks_are_exactly_the_planted_ones(text_data) -> None:
    dataset, _ = text_data
    report = find_duplicates(dataset, CFG)
    assert set(report.leaked) == {
        ("validation", "train"),
        ("test", "train"),
        ("test", "validation"),
        ("ood", "train"),
        ("ood", "validation"),
        ("ood", "test"),
    }
    expected = {
        ("test", "train"): ([0, 2], [1]),
        ("test", "validation"): ([], [3]),
        ("validation", "train"): ([0], []),
        ("ood", "test"): ([0], []),
        ("ood", "train"): ([], [1]),
        ("ood", "validation"): ([], []),
    }
    for key, (exact, near) in expected.items():
        n = len(dataset.splits[key[0]])
        np.testing.assert_array_equal(report.leaked[key][0], _mask(n, exact), err_msg=f"exact {key}")
        np.testing.assert_array_equal(report.leaked[key][1], _mask(n, near), err_msg=f"near {key}")
    stats = {(s["split"], s["against"]): s for s in report.output.details["split_pairs"]}
    assert stats[("test", "train")]["exact"] == 2 and stats[("test", "train")]["near"] == 1
    assert stats[("test", "train")]["rate"] == pytest.approx(3 / 30)


def test_text_findings_have_the_right_evidence(text_data) -> None:
    dataset, _ = text_data
    report = find_duplicates(dataset, CFG)
    exact = _by_code(report, "exact-leak", "test", "train")
    assert exact.check == "leakage" and exact.severity == "high"
    assert exact.evidence == ("test:te0", "test:te2", "train:tr5", "train:tr9")
    assert exact.details["pairs"] == [["test:te0", "train:tr5"], ["test:te2", "train:tr9"]]
    near = _by_code(report, "near-leak", "test", "train")
    assert near.details["pairs"] == [["test:te1", "train:tr7"]] and near.details["count"] == 1
    assert _by_code(report, "near-leak", "test", "validation").details["pairs"] == [["test:te3", "validation:va2"]]
    within = _by_code(report, "exact-duplicate", "train")
    assert within.details["groups"] == [["train:tr30", "train:tr31"]] and within.severity == "low"
    near_within = _by_code(report, "near-duplicate", "train")
    assert near_within.details["pairs"] == [["train:tr40", "train:tr41"]]
    conflict = _by_code(report, "conflicting-labels")
    assert conflict.severity == "high"
    assert conflict.details["exact_groups"] == 1 and conflict.details["near_pairs"] == 1
    assert set(conflict.evidence) == {"train:tr9", "test:te2", "validation:va2", "test:te3"}
    assert {c.code for c in report.output.findings} == {
        "exact-leak",
        "near-leak",
        "exact-duplicate",
        "near-duplicate",
        "conflicting-labels",
    }
    assert "MinHash 128 perms" in report.output.method and "Jaccard ≥ 0.7" in report.output.method


def test_results_are_identical_across_calls_and_sample_orders(text_data) -> None:
    dataset, _ = text_data
    first = find_duplicates(dataset, CFG)
    again = find_duplicates(dataset, CFG)
    rng = np.random.default_rng(1)
    perms = {name: rng.permutation(len(s)) for name, s in dataset.splits.items()}
    shuffled = Dataset(
        name="t",
        modality="text",
        label_names=dataset.label_names,
        splits={
            name: Split(name, [s.inputs[i] for i in perms[name]], s.labels[perms[name]], s.ids[perms[name]])
            for name, s in reversed(dataset.splits.items())
        },
    )
    other = find_duplicates(shuffled, CFG)
    assert [f.to_dict() for f in first.output.findings] == [f.to_dict() for f in again.output.findings]
    assert [f.to_dict() for f in first.output.findings] == [f.to_dict() for f in other.output.findings]
    for key, (exact, near) in first.leaked.items():
        p = perms[key[0]]
        np.testing.assert_array_equal(other.leaked[key][0], exact[p])
        np.testing.assert_array_equal(other.leaked[key][1], near[p])


def test_near_off_finds_exact_only(text_data) -> None:
    dataset, _ = text_data
    report = find_duplicates(dataset, CFG.model_copy(update={"near": False}))
    assert {f.code for f in report.output.findings} == {"exact-leak", "exact-duplicate", "conflicting-labels"}
    assert not report.leaked[("test", "train")][1].any()
    assert find_duplicates(dataset, CFG.model_copy(update={"enabled": False})).output.skipped


def test_embedding_cosine_finds_paraphrases_content_misses() -> None:
    rng = np.random.default_rng(2)
    train, test = _random_texts(rng, 40), _random_texts(rng, 10)
    dataset = Dataset(
        name="t",
        modality="text",
        label_names=("a", "b"),
        splits={"train": _split("train", train, [0] * 40), "test": _split("test", test, [0] * 10)},
    )
    feats = {
        "train": rng.normal(size=(40, 16)).astype(np.float32),
        "test": rng.normal(size=(10, 16)).astype(np.float32),
    }
    feats["test"][4] = 2.0 * feats["train"][17] + rng.normal(scale=0.01, size=16)  # cosine ~1, scale ignored
    without = find_duplicates(dataset, CFG)
    assert not without.leaked[("test", "train")][1].any()
    report = find_duplicates(dataset, CFG, features=feats)
    np.testing.assert_array_equal(report.leaked[("test", "train")][1], _mask(10, [4]))
    assert _by_code(report, "near-leak").details["pairs"] == [["test:te4", "train:tr17"]]
    assert report.output.details["split_pairs"][0]["near_cosine"] == 1
    assert "cosine ≥ 0.97" in report.output.method
    # Features for one split only: the cosine stage has nothing to compare and says nothing.
    assert "cosine" not in find_duplicates(dataset, CFG, features={"test": feats["test"]}).output.method


def test_short_and_empty_texts_are_one_shingle() -> None:
    values, starts = minhash.shingle_hashes(["ab", "", "abcdefg", "ab"], 5)
    np.testing.assert_array_equal(starts, [0, 1, 2, 5])
    assert values[0] == values[5] and values[0] != values[1]
    assert len(set(values[2:5].tolist())) == 3


# ---------------------------------------------------------------------------------------------------------------------
# MinHash internals
# ---------------------------------------------------------------------------------------------------------------------


def test_minhash_estimate_matches_brute_force_jaccard() -> None:
    rng = np.random.default_rng(3)
    base = _random_texts(rng, 150, words=20)
    others = []
    for i, text in enumerate(base):  # partners from unrelated to almost equal
        words = text.split()
        keep = int(len(words) * (i % 10) / 9)
        others.append(" ".join(words[:keep] + _random_texts(rng, 1, words=len(words) - keep)[0].split()))
    texts = [minhash.normalize_text(t) for t in base + others]
    values, starts = minhash.shingle_hashes(texts, N)
    sig = minhash.minhash_signatures(values, starts, CFG.num_perm, seed=0)
    pairs = np.stack([np.arange(150), np.arange(150, 300)], axis=1)
    estimate = minhash.estimated_jaccard(sig, pairs)
    truth = np.array([_jaccard(base[i], others[i]) for i in range(150)])
    assert truth.min() < 0.1 and truth.max() > 0.9
    se = np.sqrt(truth * (1 - truth) / CFG.num_perm)
    assert np.all(np.abs(estimate - truth) <= 4.5 * se + 1.5 / CFG.num_perm), np.abs(estimate - truth).max()
    # No bias: the mean error is within 4 standard errors of the mean.
    assert abs((estimate - truth).mean()) <= 4 * np.sqrt((se**2).sum()) / len(se) + 1e-3
    np.testing.assert_allclose(minhash.exact_jaccard(values, starts, pairs), truth)


def test_signatures_are_identical_in_another_process() -> None:
    texts = ["the printer is on fire", "my order never arrived", "x"]
    here = minhash.minhash_signatures(*minhash.shingle_hashes(texts, 5), 32, seed=7)
    code = (
        "import numpy as np\nfrom deployable.audit import minhash\n"
        f"s = minhash.minhash_signatures(*minhash.shingle_hashes({texts!r}, 5), 32, seed=7)\n"
        "print(','.join(map(str, s.ravel().tolist())))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == ",".join(map(str, here.ravel().tolist()))
    assert not np.array_equal(here, minhash.minhash_signatures(*minhash.shingle_hashes(texts, 5), 32, seed=8))


def test_lsh_finds_every_pair_above_threshold_among_candidates() -> None:
    rng = np.random.default_rng(4)
    texts = [minhash.normalize_text(t) for t in _random_texts(rng, 100)]
    texts += [_typos(t, [5, 30]) for t in texts[:50]]
    values, starts = minhash.shingle_hashes(texts, N)
    sig = minhash.minhash_signatures(values, starts, 128)
    query = np.zeros(len(texts), dtype=bool)  # the non-query path: small buckets enumerated in full
    pairs, _ = minhash.lsh_search(sig, 32, query, low=0.0, sure=1.0)
    got = {tuple(p) for p in pairs.tolist()}
    assert {(i, 100 + i) for i in range(50)} <= got
    assert len(got) < 200  # unrelated texts rarely share a bucket


def test_exact_checks_over_budget_go_to_every_query_first() -> None:
    query = np.array([False, False, True, True])
    pairs = np.array([[0, 2], [1, 2], [0, 3], [0, 1]])
    estimate = np.array([0.6, 0.8, 0.66, 0.7])
    np.testing.assert_array_equal(_exact_priority(pairs, estimate, query, 0.7), [2, 1, 0, 3])


# ---------------------------------------------------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------------------------------------------------


def _smooth_images(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 3, 32, 32) float in [0.1, 0.8]: blurred noise, so pictures have structure at pHash's scale."""
    x = ndimage.gaussian_filter(rng.normal(size=(n, 3, 32, 32)), sigma=(0, 0, 3, 3))
    lo, hi = x.min(axis=(1, 2, 3), keepdims=True), x.max(axis=(1, 2, 3), keepdims=True)
    return (0.1 + 0.7 * (x - lo) / (hi - lo)).astype(np.float32)


def test_image_exact_and_perceptual_duplicates() -> None:
    rng = np.random.default_rng(5)
    train, test = _smooth_images(rng, 30), _smooth_images(rng, 12)
    test[0] = train[3]  # exact copy
    test[1] = train[4] + 0.05  # brighter
    test[2] = train[5] + rng.normal(scale=0.01, size=train[5].shape)  # noisier
    test[3] = np.clip(train[6] * 1.1, 0, 1)  # more contrast
    train[20] = train[21]
    dataset = Dataset(
        name="i",
        modality="image",
        label_names=("a", "b"),
        splits={"train": _split("train", train, [0] * 30), "test": _split("test", test, [1] * 12)},
    )
    report = find_duplicates(dataset, CFG)
    exact, near = report.leaked[("test", "train")]
    np.testing.assert_array_equal(exact, _mask(12, [0]))
    np.testing.assert_array_equal(near, _mask(12, [1, 2, 3]))
    assert _by_code(report, "near-leak").details["pairs"] == [
        ["test:te1", "train:tr4"],
        ["test:te2", "train:tr5"],
        ["test:te3", "train:tr6"],
    ]
    assert _by_code(report, "exact-duplicate", "train").details["groups"] == [["train:tr20", "train:tr21"]]
    assert _by_code(report, "conflicting-labels").details["exact_groups"] == 1  # test 0 is labeled 1, train 3 is 0
    assert "pHash" in report.output.method


def test_image_layouts_and_scales_hash_the_same() -> None:
    x = _smooth_images(np.random.default_rng(6), 4)
    as_uint8 = np.rint(x * 255).astype(np.uint8).transpose(0, 2, 3, 1)  # channels last, 0..255
    d1 = phash.digests(phash.canonical_pixels(x))
    d2 = phash.digests(phash.canonical_pixels(as_uint8))
    np.testing.assert_array_equal(d1, d2)
    assert len(set(d1.tolist())) == 4
    np.testing.assert_array_equal(phash.phash(phash.canonical_pixels(x)), phash.phash(phash.canonical_pixels(as_uint8)))


@pytest.mark.parametrize("max_distance", [4, 10])
def test_multi_index_hashing_equals_brute_force(max_distance: int) -> None:
    rng = np.random.default_rng(7)
    base = rng.integers(0, 2**63, size=300, dtype=np.uint64)
    flips = np.array([sum(1 << int(b) for b in rng.choice(64, size=k, replace=False)) for k in rng.integers(0, 7, 300)])
    hashes = np.concatenate([base, base ^ flips.astype(np.uint64)])
    pairs, distance = phash.near_pairs(hashes, max_distance)
    dist = phash.popcount(hashes[:, None] ^ hashes[None, :])
    i, j = np.nonzero(np.triu(dist <= max_distance, k=1))
    assert len(i) > 100
    np.testing.assert_array_equal(pairs, np.stack([i, j], axis=1))
    np.testing.assert_array_equal(distance, dist[i, j])
    table = phash._POPCOUNT8[hashes[:, None].view(np.uint8)].sum(axis=-1)
    np.testing.assert_array_equal(table, phash.popcount(hashes))


# ---------------------------------------------------------------------------------------------------------------------
# tabular
# ---------------------------------------------------------------------------------------------------------------------


def test_tabular_exact_near_and_far_rows() -> None:
    rng = np.random.default_rng(8)
    train = rng.normal(size=(200, 5)) * [1, 10, 100, 0.1, 1] + [0, 5, 1000, 0, -3]
    test = rng.normal(size=(20, 5)) * [1, 10, 100, 0.1, 1] + [0, 5, 1000, 0, -3]
    test[0] = train[3] * (1 + 1e-12)  # float noise: the same row after rounding
    test[1] = train[4] + train.std(axis=0) * 0.005  # within 0.05 standard deviations per feature
    test[2] = train[5] + train.std(axis=0) * 0.3  # close, but not a duplicate
    train[10] = train[11]
    dataset = Dataset(
        name="tab",
        modality="tabular",
        label_names=("a", "b"),
        splits={"train": _split("train", train, [0] * 200), "test": _split("test", test, [0] * 20)},
    )
    report = find_duplicates(dataset, CFG)
    exact, near = report.leaked[("test", "train")]
    np.testing.assert_array_equal(exact, _mask(20, [0]))
    np.testing.assert_array_equal(near, _mask(20, [1]))
    assert _by_code(report, "exact-leak").details["pairs"] == [["test:te0", "train:tr3"]]
    assert _by_code(report, "exact-duplicate", "train").details["groups"] == [["train:tr10", "train:tr11"]]
    assert not any(f.code == "conflicting-labels" for f in report.output.findings)


def test_empty_splits_are_handled() -> None:
    rng = np.random.default_rng(9)
    train = rng.normal(size=(30, 3))
    test = np.concatenate([train[:2], rng.normal(size=(3, 3))])
    dataset = Dataset(
        name="tab",
        modality="tabular",
        label_names=("a",),
        splits={
            "train": _split("train", train, [0] * 30),
            "validation": _split("validation", np.zeros((0, 3)), []),
            "test": _split("test", test, [0] * 5),
        },
    )
    report = find_duplicates(dataset, CFG)
    assert report.leaked[("validation", "train")][0].shape == (0,)
    np.testing.assert_array_equal(report.leaked[("test", "train")][0], _mask(5, [0, 1]))
    assert not report.leaked[("test", "validation")][0].any()


# ---------------------------------------------------------------------------------------------------------------------
# split order
# ---------------------------------------------------------------------------------------------------------------------


def test_split_order_and_pairs() -> None:
    order = split_order(["test", "ood", "extra", "train", "validation"])
    assert order == ["train", "validation", "extra", "test", "ood"]
    assert split_pairs(order) == [
        ("validation", "train"),
        ("extra", "train"),
        ("extra", "validation"),
        ("test", "train"),
        ("test", "validation"),
        ("test", "extra"),
        ("ood", "train"),
        ("ood", "validation"),
        ("ood", "extra"),
        ("ood", "test"),
    ]
