"""Text corruptions: typos, flipped case, whitespace and punctuation noise, dropped words, truncation.

Character-level corruptions act on each eligible character independently with a per-character rate that grows with
severity; word-level ones drop words or keep a leading fraction. They model what real users type (and what an
upstream pipeline does to it) rather than adversarial edits. A non-empty text never becomes empty.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from typing import Any

import numpy as np

# Index = severity (0 = identity).
CHAR_RATES = (0.0, 0.02, 0.05, 0.08, 0.12, 0.18)
WORD_DROP_RATES = (0.0, 0.05, 0.10, 0.15, 0.20, 0.30)
TRUNCATE_KEEP = (1.0, 0.9, 0.75, 0.6, 0.45, 0.3)

_LETTERS = string.ascii_lowercase
_MARKS = ".,!?;:'-"
_WORD = re.compile(r"\S+")

# Neighbours of each key on a QWERTY keyboard (same row and the rows above and below).
KEYBOARD_NEIGHBOURS = {
    "q": "wa", "w": "qeas", "e": "wrsd", "r": "etdf", "t": "ryfg",
    "y": "tugh", "u": "yihj", "i": "uojk", "o": "ipkl", "p": "ol",
    "a": "qwsz", "s": "weadzx", "d": "erfsxc", "f": "rtgdcv", "g": "tyhfvb",
    "h": "yujgbn", "j": "uikhnm", "k": "iojlm", "l": "opk",
    "z": "asx", "x": "zsdc", "c": "xdfv", "v": "cfgb", "b": "vghn", "n": "bhjm", "m": "njk",
}  # fmt: skip


def _match_case(letter: str, like: str) -> str:
    return letter.upper() if like.isupper() else letter


def typo_swap(text: str, severity: int, rng: np.random.Generator) -> str:
    """Swap two adjacent, different letters, each letter starting a swap with the severity's rate."""
    chars, u = list(text), rng.random(len(text))
    i = 0
    while i < len(chars) - 1:
        a, b = chars[i], chars[i + 1]
        if a.isalpha() and b.isalpha() and a != b and u[i] < CHAR_RATES[severity]:
            chars[i], chars[i + 1] = b, a
            i += 2
        else:
            i += 1
    return "".join(chars)


def typo_drop(text: str, severity: int, rng: np.random.Generator) -> str:
    """Drop letters, each with the severity's rate."""
    u = rng.random(len(text))
    return "".join(c for c, ui in zip(text, u, strict=True) if not (c.isalpha() and ui < CHAR_RATES[severity]))


def typo_insert(text: str, severity: int, rng: np.random.Generator) -> str:
    """Insert a random letter (in the neighbour's case) before letters, each with the severity's rate."""
    u, picks = rng.random(len(text)), rng.integers(0, len(_LETTERS), size=len(text))
    out = []
    for c, ui, k in zip(text, u, picks, strict=True):
        if c.isalpha() and ui < CHAR_RATES[severity]:
            out.append(_match_case(_LETTERS[k], c))
        out.append(c)
    return "".join(out)


def typo_keyboard(text: str, severity: int, rng: np.random.Generator) -> str:
    """Replace ASCII letters by a QWERTY neighbour (a fat-finger typo), each with the severity's rate."""
    u, picks = rng.random(len(text)), rng.random(len(text))
    out = []
    for c, ui, p in zip(text, u, picks, strict=True):
        neighbours = KEYBOARD_NEIGHBOURS.get(c.lower())
        if neighbours and ui < CHAR_RATES[severity]:
            c = _match_case(neighbours[int(p * len(neighbours))], c)
        out.append(c)
    return "".join(out)


def case(text: str, severity: int, rng: np.random.Generator) -> str:
    """Flip the case of letters, each with the severity's rate."""
    u = rng.random(len(text))
    out = []
    for c, ui in zip(text, u, strict=True):
        flipped = c.swapcase()
        out.append(flipped if ui < CHAR_RATES[severity] and len(flipped) == 1 and flipped != c else c)
    return "".join(out)


def whitespace(text: str, severity: int, rng: np.random.Generator) -> str:
    """Whitespace noise with the severity's per-character rate: a space is removed or doubled, any other
    character gets a space inserted after it (splitting a word)."""
    u, coin = rng.random(len(text)), rng.random(len(text))
    out = []
    for c, ui, ci in zip(text, u, coin, strict=True):
        if ui >= CHAR_RATES[severity]:
            out.append(c)
        elif c.isspace():
            out.append(c + c if ci < 0.5 else "")
        else:
            out.append(c + " ")
    return "".join(out)


def punctuation(text: str, severity: int, rng: np.random.Generator) -> str:
    """Punctuation noise with the severity's per-character rate: a punctuation mark is deleted, any other
    character gets a random mark inserted after it."""
    u, picks = rng.random(len(text)), rng.integers(0, len(_MARKS), size=len(text))
    out = []
    for c, ui, k in zip(text, u, picks, strict=True):
        if ui >= CHAR_RATES[severity]:
            out.append(c)
        elif c in string.punctuation:
            out.append("")
        else:
            out.append(c + _MARKS[k])
    return "".join(out)


def word_drop(text: str, severity: int, rng: np.random.Generator) -> str:
    """Drop whole words (with the whitespace after them), each with the severity's rate; at least one word stays."""
    words = list(_WORD.finditer(text))
    keep = rng.random(len(words)) >= WORD_DROP_RATES[severity]
    if not words or keep.all():
        return text
    if not keep.any():
        keep[rng.integers(len(words))] = True
    ends = [w.start() for w in words[1:]] + [len(text)]
    kept = "".join(text[w.start() : end] for w, end, k in zip(words, ends, keep, strict=True) if k)
    return text[: words[0].start()] + kept.rstrip() + text[words[-1].end() :]


def truncate(text: str, severity: int, rng: np.random.Generator) -> str:
    """Keep the leading fraction of words given by the severity (rounded, at least one word); deterministic."""
    words = list(_WORD.finditer(text))
    keep = max(1, int(TRUNCATE_KEEP[severity] * len(words) + 0.5))
    if keep >= len(words):
        return text
    return text[: words[keep - 1].end()]


CORRUPTIONS: dict[str, Callable[[str, int, np.random.Generator], str]] = {
    "typo_swap": typo_swap,
    "typo_drop": typo_drop,
    "typo_insert": typo_insert,
    "typo_keyboard": typo_keyboard,
    "case": case,
    "whitespace": whitespace,
    "punctuation": punctuation,
    "word_drop": word_drop,
    "truncate": truncate,
}


def apply(inputs: Any, name: str, severity: int, rng: np.random.Generator, reference: Any = None) -> list[str]:
    """Corrupt every text of ``inputs`` with one random stream; ``reference`` is unused for text."""
    if isinstance(inputs, str):
        raise ValueError("text inputs: expected a list of strings, but got a single string")
    texts = list(inputs)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"text inputs: expected a list of strings, but item {i} is {type(t).__name__}")
    if severity == 0:
        return texts
    fn = CORRUPTIONS[name]
    out = []
    for t in texts:
        corrupted = fn(t, severity, rng)
        # A corruption that erased a non-empty text (e.g. every letter of "ok" dropped) leaves it as it was.
        out.append(t if t and (not corrupted or (t.strip() and not corrupted.strip())) else corrupted)
    return out
