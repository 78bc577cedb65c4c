"""Corruption suites: identity at severity 0, monotone severities, determinism, preserved shapes, clear errors."""

from __future__ import annotations

import copy
import hashlib
import os
import string
import subprocess
import sys

import numpy as np
import pytest

from deployable.core.errors import ConfigError
from deployable.evaluation.perturb import MODALITIES, corrupt, corruption_names, perturbation_id
from deployable.evaluation.perturb.tabular import MISSING_SHARE
from deployable.evaluation.perturb.text import KEYBOARD_NEIGHBOURS

TEXTS = [
    "Hi, my order #4521 never arrived and I've been waiting two weeks. Can you help?",
    "I was charged twice for the same subscription this month.",
    "How do I reset my password? The link in the email doesn't work.",
    "Please cancel my account effective immediately.",
    "The app crashes every time I open the settings page on Android 14.",
    "Can I change the delivery address after the order has shipped?",
    "Your support team was fantastic, thanks for sorting this out so quickly!",
    "I received a damaged item - the box was crushed and the screen is cracked.",
    "Is there a student discount available for the premium plan?",
    "Why is my refund still pending after 10 business days?",
    "The tracking number you sent me says 'label created' since Monday.",
    "I'd like to upgrade from the basic plan to the family plan.",
    "Where can I download my invoices for the last quarter?",
    "Two-factor authentication codes are not arriving by SMS.",
    "My discount code SAVE20 is rejected at checkout.",
    "Hello?? Is anyone there? I've been on hold for an hour.",
    "Can you export all my data in CSV format, please?",
    "The product description said waterproof, but it stopped working after one swim.",
    "I want to return these shoes; they are a size too small.",
    "Thanks!",
]
SAMPLE_TEXTS = TEXTS * 10  # 200 texts: one random stream corrupts each copy differently
EDGE_TEXTS = ["a", "I", "ok", "  ", " x ", "!!!", "?", "x y", "ab", "é", "A.", "\tword\n"]

DIGITS = np.random.default_rng(0).random((64, 1, 8, 8), dtype=np.float32)
RGB = np.random.default_rng(1).random((16, 3, 16, 16), dtype=np.float32)
RGB_CASES = ("jpeg", "blur", "rotation")


def _table(seed: int = 0, n: int = 200) -> np.ndarray:
    """Three continuous columns, two integer category codes and one binary flag."""
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [
            rng.normal(50.0, 10.0, n),
            rng.exponential(3.0, n),
            rng.uniform(-1.0, 1.0, n),
            rng.integers(0, 4, n),
            rng.integers(1, 8, n),
            rng.integers(0, 2, n),
        ]
    ).astype(np.float32)


TABLE = _table()
ALL = [(m, n) for m in MODALITIES for n in corruption_names(m)]
DETERMINISTIC = {"truncate", "blur", "contrast", "brightness", "jpeg", "pixelate"}


def _inputs(modality: str):
    return {"text": SAMPLE_TEXTS, "image": DIGITS, "tabular": TABLE}[modality]


def _levenshtein(a: str, b: str) -> int:
    """Edit distance, one DP row at a time; insertions resolved with a running minimum of ``row - j``."""
    if a == b:
        return 0
    cols = np.arange(len(b) + 1)
    codes = np.array([ord(c) for c in b], dtype=np.int64)
    prev = cols.copy()
    for i, ch in enumerate(a, start=1):
        best = np.empty_like(prev)
        best[0] = i
        best[1:] = np.minimum(prev[1:] + 1, prev[:-1] + (codes != ord(ch)))
        prev = np.minimum.accumulate(best - cols) + cols
    return int(prev[-1])


def _distance(modality: str, clean, corrupted) -> float:
    """Mean distance over inputs: normalized edit distance for text, L2 for images and table rows."""
    if modality == "text":
        pairs = zip(clean, corrupted, strict=True)
        return float(np.mean([_levenshtein(a, b) / max(len(a), len(b), 1) for a, b in pairs]))
    diff = (np.asarray(corrupted, dtype=np.float64) - np.asarray(clean, dtype=np.float64)).reshape(len(clean), -1)
    return float(np.linalg.norm(diff, axis=1).mean())


def test_levenshtein_helper():
    assert _levenshtein("kitten", "sitting") == 3
    assert _levenshtein("", "abc") == 3
    assert _levenshtein("abc", "") == 3
    assert _levenshtein("flaw", "lawn") == 2
    assert _levenshtein("ab", "ba") == 2


# 1. severity 0 is the identity, and no severity mutates its input ----------------------------------------------


@pytest.mark.parametrize(("modality", "name"), ALL)
def test_severity_zero_is_identity_and_inputs_never_mutate(modality, name):
    inputs = _inputs(modality)
    snapshot = copy.deepcopy(inputs)
    out = corrupt(inputs, modality, name, 0, seed=3)
    assert out is not inputs
    if modality == "text":
        assert out == snapshot
    else:
        np.testing.assert_array_equal(out, snapshot)
        assert out.dtype == snapshot.dtype
    for severity in (1, 3, 5):
        corrupt(inputs, modality, name, severity, seed=3)
    if modality == "text":
        assert inputs == snapshot
    else:
        np.testing.assert_array_equal(inputs, snapshot)


# 2. severities move inputs monotonically further ----------------------------------------------------------------

MONOTONE_CASES = [(m, n, _inputs(m)) for m, n in ALL] + [("image", n, RGB) for n in RGB_CASES]


@pytest.mark.parametrize(
    ("modality", "name", "inputs"),
    MONOTONE_CASES,
    ids=[f"{m}-{n}" + ("-rgb" if x is RGB else "") for m, n, x in MONOTONE_CASES],
)
def test_severities_are_monotone_in_distance(modality, name, inputs):
    distances = [_distance(modality, inputs, corrupt(inputs, modality, name, s, seed=0)) for s in range(6)]
    assert distances[0] == 0.0
    assert distances[1] > 0.0, distances
    for s in range(5):
        assert distances[s + 1] >= distances[s], (s, distances)
    assert distances[5] > distances[1], distances


# 3. determinism -------------------------------------------------------------------------------------------------


def _same(a, b) -> bool:
    return a == b if isinstance(a, list) else bool(np.array_equal(a, b))


@pytest.mark.parametrize(("modality", "name"), ALL)
def test_same_seed_same_output_and_seed_matters_when_random(modality, name):
    inputs = _inputs(modality)
    first = corrupt(inputs, modality, name, 3, seed=7)
    assert _same(first, corrupt(inputs, modality, name, 3, seed=7))
    other = corrupt(inputs, modality, name, 3, seed=8)
    if name in DETERMINISTIC:
        assert _same(first, other)
    else:
        assert not _same(first, other)


def test_rng_differs_between_severities_and_names():
    # the stream is seeded from (seed, name, severity): the noise draws at two severities are not just rescaled
    x = np.full((8, 1, 8, 8), 0.5, dtype=np.float32)
    reference = np.array([-100.0, 100.0], dtype=np.float32)
    noise2 = corrupt(x, "image", "gaussian_noise", 2, reference=reference) - 0.5
    noise4 = corrupt(x, "image", "gaussian_noise", 4, reference=reference) - 0.5
    assert abs(np.corrcoef(noise2.ravel(), noise4.ravel())[0, 1]) < 0.5
    flips = corrupt(TABLE, "tabular", "category_flip", 3) != TABLE
    gone = corrupt(TABLE, "tabular", "missing", 3) != TABLE
    assert not np.array_equal(flips[:, 3:], gone[:, 3:])


def _digest() -> str:
    parts = [
        corrupt(TEXTS, "text", "typo_keyboard", 4, seed=5),
        corrupt(DIGITS, "image", "rotation", 2, seed=5).tobytes(),
        corrupt(TABLE, "tabular", "missing", 3, seed=5).tobytes(),
    ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def test_output_is_stable_across_processes():
    """A stable seed (not Python's salted hash) gives the same output in a process with another hash seed."""
    code = "import sys; sys.path.insert(0, sys.argv[1]); import test_perturb; print(test_perturb._digest())"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    here = os.path.dirname(os.path.abspath(__file__))
    result = subprocess.run([sys.executable, "-c", code, here], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == _digest()


# 4. shapes, dtypes and ranges -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", corruption_names("image"))
@pytest.mark.parametrize("shape", [(5, 1, 8, 8), (5, 8, 8), (3, 3, 16, 16), (2, 2, 9, 7)])
def test_image_shape_dtype_and_range(name, shape):
    rng = np.random.default_rng(2)
    x = rng.uniform(0.25, 0.75, size=shape).astype(np.float32)
    reference = np.array([0.0, 1.0], dtype=np.float32)
    for severity in (1, 3, 5):
        own = corrupt(x, "image", name, severity, seed=1)
        wide = corrupt(x, "image", name, severity, seed=1, reference=reference)
        for out, lo, hi in ((own, x.min(), x.max()), (wide, 0.0, 1.0)):
            assert out.shape == x.shape and out.dtype == np.float32
            assert np.all(np.isfinite(out))
            assert out.min() >= lo and out.max() <= hi


def test_image_range_comes_from_reference():
    x = np.random.default_rng(3).uniform(0.25, 0.75, size=(4, 1, 8, 8)).astype(np.float32)
    reference = np.array([0.0, 1.0], dtype=np.float32)
    assert corrupt(x, "image", "brightness", 5).max() <= x.max()
    brighter = corrupt(x, "image", "brightness", 5, reference=reference)
    np.testing.assert_allclose(brighter, np.clip(x + 0.5, 0.0, 1.0), atol=1e-6)


def test_image_float64_and_empty_batch():
    x = DIGITS[:3].astype(np.float64)
    assert corrupt(x, "image", "jpeg", 2).dtype == np.float32
    empty = corrupt(np.zeros((0, 1, 8, 8), dtype=np.float32), "image", "rotation", 2)
    assert empty.shape == (0, 1, 8, 8)


@pytest.mark.parametrize("name", ["blur", "pixelate", "rotation", "contrast"])
def test_spatial_corruptions_do_not_mix_channels_or_images(name):
    """Images made of one constant value per (image, channel) stay as they are: only the spatial axes are mixed."""
    values = np.random.default_rng(4).random((6, 3, 1, 1)).astype(np.float32)
    x = np.broadcast_to(values, (6, 3, 12, 12)).copy()
    if name == "contrast":  # contrast pulls toward the image mean, so check only that images are not mixed
        x = np.broadcast_to(values[:, :1], (6, 3, 12, 12)).copy()
    out = corrupt(x, "image", name, 5, reference=np.array([0.0, 1.0]))
    np.testing.assert_allclose(out, x, atol=1e-6)


def test_pixelate_makes_constant_blocks():
    out = corrupt(DIGITS, "image", "pixelate", 5)  # 8 pixels -> 2 boxes of 4 per side
    blocks = out.reshape(64, 1, 2, 4, 2, 4)
    np.testing.assert_allclose(blocks, blocks.mean(axis=(3, 5), keepdims=True).repeat(4, 3).repeat(4, 5), atol=1e-6)
    np.testing.assert_allclose(out.mean(axis=(2, 3)), DIGITS.mean(axis=(2, 3)), atol=1e-5)


@pytest.mark.parametrize("name", corruption_names("tabular"))
def test_tabular_shape_and_dtype(name):
    for x in (TABLE, TABLE.astype(np.float64)):
        for severity in (1, 3, 5):
            out = corrupt(x, "tabular", name, severity, reference=_table(seed=9))
            assert out.shape == x.shape and out.dtype == x.dtype
            assert np.all(np.isfinite(out))


@pytest.mark.parametrize("name", corruption_names("text"))
def test_text_output_is_same_length_list_without_empty_strings(name):
    texts = TEXTS + EDGE_TEXTS
    for severity in range(6):
        for seed in range(5):
            out = corrupt(texts, "text", name, severity, seed=seed)
            assert isinstance(out, list) and len(out) == len(texts)
            assert all(isinstance(t, str) for t in out)
            assert all(t for t in out)
    assert corrupt(["", "b"], "text", name, 5)[0] == ""


def _letters_only_changed(a: str, b: str) -> bool:
    return [c for c in a if not c.isalpha()] == [c for c in b if not c.isalpha()]


def _is_subsequence(small, big) -> bool:
    it = iter(big)
    return all(item in it for item in small)


def _keyboard_ok(a: str, b: str) -> bool:
    if len(a) != len(b):
        return False
    pairs = zip(a, b, strict=True)
    return all(x == y or (y.lower() in KEYBOARD_NEIGHBOURS[x.lower()] and x.isupper() == y.isupper()) for x, y in pairs)


def _no_marks(t: str) -> str:
    return "".join(c for c in t if c not in string.punctuation)


TEXT_INVARIANTS = {
    "typo_swap": lambda a, b: sorted(a) == sorted(b) and _letters_only_changed(a, b),
    "typo_drop": lambda a, b: _is_subsequence(b, a) and _letters_only_changed(a, b),
    "typo_insert": lambda a, b: _is_subsequence(a, b) and _letters_only_changed(a, b),
    "typo_keyboard": _keyboard_ok,
    "case": lambda a, b: a.lower() == b.lower(),
    "whitespace": lambda a, b: "".join(a.split()) == "".join(b.split()),
    "punctuation": lambda a, b: _no_marks(a) == _no_marks(b),
    "word_drop": lambda a, b: _is_subsequence(b.split(), a.split()) and len(b.split()) >= 1,
    "truncate": lambda a, b: a.startswith(b) and a.split()[: len(b.split())] == b.split() and len(b.split()) >= 1,
}


@pytest.mark.parametrize("name", corruption_names("text"))
def test_text_corruptions_do_what_they_say(name):
    out = corrupt(SAMPLE_TEXTS, "text", name, 5)
    assert out != SAMPLE_TEXTS
    for a, b in zip(SAMPLE_TEXTS, out, strict=True):
        assert TEXT_INVARIANTS[name](a, b), (a, b)


def test_truncate_keeps_the_leading_fraction():
    text = " ".join(f"w{i}" for i in range(20))
    kept = [len(corrupt([text], "text", "truncate", s)[0].split()) for s in range(6)]
    assert kept == [20, 18, 15, 12, 9, 6]
    five = [len(corrupt(["one two three four five"], "text", "truncate", s)[0].split()) for s in range(6)]
    assert five == [5, 5, 4, 3, 2, 2]  # rounded half up
    assert corrupt(["one two three"], "text", "truncate", 5) == ["one"]  # 0.9 words rounds to the one kept


# 5. errors ------------------------------------------------------------------------------------------------------


def test_unknown_modality_lists_the_modalities():
    for call in (
        lambda: corrupt([1.0], "audio", "blur", 1),
        lambda: corruption_names("audio"),
        lambda: perturbation_id("audio", "blur", 1, 0),
    ):
        with pytest.raises(ConfigError) as info:
            call()
        assert "'audio'" in str(info.value)
        assert all(repr(m) in str(info.value) for m in MODALITIES)


@pytest.mark.parametrize("modality", MODALITIES)
def test_unknown_name_lists_the_valid_names(modality):
    with pytest.raises(ConfigError) as info:
        corrupt(_inputs(modality), modality, "melt", 1)
    message = str(info.value)
    assert "'melt'" in message and "\n" not in message
    assert all(repr(n) in message for n in corruption_names(modality))


def test_near_miss_suggests_the_closest_name():
    with pytest.raises(ConfigError, match=r"did you mean 'typo_swap'\?"):
        corrupt(TEXTS, "text", "typo_swapp", 1)
    with pytest.raises(ConfigError) as info:
        corrupt(DIGITS, "text", "blur", 1)  # an image corruption asked for text
    assert "'typo_swap'" in str(info.value)


@pytest.mark.parametrize("severity", [-1, 6, 2.5, "3", True, None])
def test_bad_severity(severity):
    with pytest.raises(ConfigError, match=r"0\.\.5") as info:
        corrupt(TEXTS, "text", "case", severity)
    assert repr(severity) in str(info.value)
    with pytest.raises(ConfigError):
        perturbation_id("text", "case", severity, 0)


def test_bad_seed_and_bad_shapes():
    with pytest.raises(ConfigError, match="seed"):
        corrupt(TEXTS, "text", "case", 1, seed=1.5)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        corrupt(np.zeros((4, 8)), "image", "blur", 1)
    with pytest.raises(ValueError, match=r"\(N, F\)"):
        corrupt(np.zeros((4, 2, 2)), "tabular", "missing", 1)
    with pytest.raises(ValueError, match="reference"):
        corrupt(TABLE, "tabular", "missing", 1, reference=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="list of strings"):
        corrupt("a single text", "text", "case", 1)


def test_perturbation_id_is_small_and_json_able():
    import json

    key = perturbation_id("image", "blur", np.int64(3), np.int64(7))
    assert key == {"kind": "corruption", "modality": "image", "name": "blur", "severity": 3, "seed": 7}
    assert json.loads(json.dumps(key)) == key


# 6. category_flip and missing ------------------------------------------------------------------------------------


def test_category_flip_changes_only_categorical_columns():
    rng = np.random.default_rng(5)
    n = 400
    reference = np.column_stack(
        [
            rng.normal(size=n),  # continuous
            rng.integers(0, 4, n),  # categorical, 4 codes
            rng.integers(0, 12, n),  # integers but 12 distinct values: not categorical
            rng.choice([0.5, 1.5, 2.5], n),  # 3 distinct values but not integers: not categorical
            rng.integers(0, 2, n),  # binary flag: categorical
        ]
    ).astype(np.float32)
    x = reference.copy()
    x[:, 1] = rng.integers(0, 2, n)  # the inputs only use codes 0 and 1; the reference also has 2 and 3
    out = corrupt(x, "tabular", "category_flip", 5, reference=reference)
    np.testing.assert_array_equal(out[:, [0, 2, 3]], x[:, [0, 2, 3]])
    for j, codes in ((1, {0, 1, 2, 3}), (4, {0, 1})):
        changed = out[:, j] != x[:, j]
        assert 0.4 < changed.mean() < 0.6  # severity 5 flips half the cells
        assert set(np.unique(out[:, j])) <= codes
    assert set(np.unique(out[:, 1])) == {0, 1, 2, 3}  # categories come from the reference
    flipped = out[:, 4] != x[:, 4]
    np.testing.assert_array_equal(out[flipped, 4], 1 - x[flipped, 4])


def test_category_flip_without_categorical_columns_is_identity():
    x = np.random.default_rng(6).normal(size=(50, 4)).astype(np.float32)
    np.testing.assert_array_equal(corrupt(x, "tabular", "category_flip", 5), x)


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_missing_imputes_with_the_reference_mean(severity):
    reference = _table(seed=11, n=500).astype(np.float64)
    x = np.random.default_rng(7).normal(size=(300, 6)).astype(np.float32) + 1000.0  # never equal to a mean
    out = corrupt(x, "tabular", "missing", severity, reference=reference)
    imputed = out != x
    assert abs(imputed.mean() - MISSING_SHARE[severity]) < 0.03
    means = np.broadcast_to(reference.mean(axis=0).astype(np.float32), x.shape)
    np.testing.assert_array_equal(out[imputed], means[imputed])
    np.testing.assert_array_equal(out[~imputed], x[~imputed])
