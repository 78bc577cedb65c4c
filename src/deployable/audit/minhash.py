"""Vectorised text shingling, MinHash signatures and LSH banding for near-duplicate search on 10^5 texts.

Everything is deterministic across processes (no Python ``hash()``): shingles are hashed with a polynomial rolling
hash over Unicode code points, mixed with the splitmix64 finaliser, and permuted by seeded multiply-add hashes on
uint64 (wrapping arithmetic). A text is one contiguous segment of the concatenated corpus, so per-text minima are
one ``np.minimum.reduceat`` per permutation.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_BASE = np.uint64(0x100000001B3)  # FNV prime: odd, so powers never vanish mod 2^64
_CHUNK = 1 << 16  # shingles per block of the MinHash loop: a block of uint64 fits in L2 cache


def normalize_text(text: str) -> str:
    """Unicode NFKC, casefold, whitespace runs collapsed to one space, stripped."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def mix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, elementwise on uint64 (a bijection that spreads every input bit over the output).

    Args:
        x: uint64 array of any shape.

    Returns:
        uint64 array of the same shape.
    """
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * _M1
        x ^= x >> np.uint64(27)
        x *= _M2
        x ^= x >> np.uint64(31)
    return x


def shingle_hashes(texts: Sequence[str], ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of the character n-grams of every text, concatenated text after text.

    A text shorter than ``ngram`` (the empty text included) is one shingle: the whole text. Duplicated n-grams within
    a text are kept (they do not change a minimum).

    Args:
        texts: N already-normalised texts.
        ngram: characters per shingle.

    Returns:
        ``(values, starts)``: uint64 (M,) shingle hashes and int64 (N,) offset of each text's first shingle in
        ``values`` (every text has at least one).
    """
    n_texts = len(texts)
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=n_texts)
    counts = np.maximum(lengths - ngram + 1, 1)
    starts = np.zeros(n_texts, dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    values = np.empty(int(counts.sum()), dtype=np.uint64)
    short = lengths < ngram
    # Blocks of whole texts of about _CHUNK * 4 characters: the temporaries stay in cache, and a block is one string.
    char_end = np.cumsum(lengths)
    cuts = np.unique(
        np.append(np.searchsorted(char_end, np.arange(0, int(char_end[-1]) if n_texts else 0, _CHUNK * 4)), n_texts)
    )
    lo = 0
    for hi in cuts.tolist():
        if hi <= lo:
            continue
        codes = np.frombuffer("".join(texts[lo:hi]).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        out = values[starts[lo] : starts[hi - 1] + counts[hi - 1]]
        n_pos = len(codes) - ngram + 1
        if n_pos > 0:
            # Polynomial hash of every window of the block; windows that straddle two texts are dropped.
            h = np.zeros(n_pos, dtype=np.uint64)
            with np.errstate(over="ignore"):
                for j in range(ngram):
                    h *= _BASE
                    h += codes[j : j + n_pos]
                    h += np.uint64(1)  # a NUL code point still moves the hash
            valid = np.ones(n_pos, dtype=bool)
            ends = char_end[lo:hi] - (char_end[lo] - lengths[lo])
            straddle = (ends[:, None] - np.arange(1, ngram)[None, :]).ravel()
            valid[straddle[(straddle >= 0) & (straddle < n_pos)]] = False
            slot_short = np.zeros(len(out), dtype=bool)
            slot_short[starts[lo:hi][short[lo:hi]] - starts[lo]] = True
            out[~slot_short] = mix64(h[valid])
        for i in np.flatnonzero(short[lo:hi]).tolist():
            out[starts[lo + i] - starts[lo]] = _whole_text_hash(texts[lo + i])
        lo = hi
    return values, starts


def _whole_text_hash(text: str) -> np.uint64:
    """The shingle of a text shorter than the n-gram; the length goes in so that "" and "\\x00" differ."""
    h = len(text) + 0x51ED
    for ch in text:
        h = (h * 0x100000001B3 + ord(ch) + 1) & 0xFFFFFFFFFFFFFFFF
    return mix64(np.array([h ^ 0x9E3779B97F4A7C15], dtype=np.uint64))[0]


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The seeded multiply-add hash family ``h_k(x) = a_k * x + b_k mod 2^64`` (``a_k`` odd).

    Returns:
        ``(a, b)``: uint64 (num_perm,) each.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x6D696E68]))
    top = np.iinfo(np.uint64).max
    a = rng.integers(0, top, size=num_perm, dtype=np.uint64, endpoint=True) | np.uint64(1)
    b = rng.integers(0, top, size=num_perm, dtype=np.uint64, endpoint=True)
    return a, b


def minhash_signatures(values: np.ndarray, starts: np.ndarray, num_perm: int, seed: int = 0) -> np.ndarray:
    """MinHash signature of every text: for each permutation the minimum permuted hash over its shingles.

    The input hashes are already uniformly mixed, so the high bits of an odd multiply-add over uint64 behave as a
    random permutation's order; the top 32 bits of each minimum are kept (a false agreement has odds 2^-32).

    Args:
        values: uint64 (M,) shingle hashes, text after text.
        starts: int64 (N,) first shingle of each text (strictly increasing, every segment non-empty).
        num_perm: permutations (signature length).
        seed: seed of the permutations; the same seed gives the same signatures in every process.

    Returns:
        uint32 (N, num_perm).
    """
    a, b = permutations(num_perm, seed)
    n = len(starts)
    out = np.empty((n, num_perm), dtype=np.uint32)
    if n == 0:
        return out
    # Blocks of whole texts of about _CHUNK shingles so the temporaries stay in cache across permutations.
    ends = np.append(starts[1:], len(values))
    cuts = np.unique(np.append(np.searchsorted(starts, np.arange(0, len(values), _CHUNK)), n))
    buf = np.empty(min(len(values), int((ends[cuts[1:] - 1] - starts[cuts[:-1]]).max())), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for lo, hi in zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True):
            s0, s1 = int(starts[lo]), int(ends[hi - 1])
            x = values[s0:s1]
            seg = starts[lo:hi] - s0
            tmp = buf[: s1 - s0]
            for k in range(num_perm):
                np.multiply(x, a[k], out=tmp)
                tmp += b[k]
                out[lo:hi, k] = np.minimum.reduceat(tmp, seg) >> np.uint64(32)
    return out


def band_keys(signatures: np.ndarray, bands: int) -> np.ndarray:
    """One uint64 bucket key per text and band: a mixed hash of the band's rows.

    Args:
        signatures: uint32 (N, num_perm), num_perm divisible by ``bands``.
        bands: number of bands.

    Returns:
        uint64 (bands, N).
    """
    n, num_perm = signatures.shape
    rows = num_perm // bands
    sig = signatures.astype(np.uint64).reshape(n, bands, rows)
    keys = np.broadcast_to((np.arange(bands, dtype=np.uint64) * _GOLDEN)[None, :], (n, bands)).copy()
    with np.errstate(over="ignore"):
        for r in range(rows):
            keys = mix64(keys ^ (sig[:, :, r] + np.uint64(r + 1) * _M2))
    return np.ascontiguousarray(keys.T)


def lsh_search(
    signatures: np.ndarray,
    bands: int,
    query: np.ndarray,
    *,
    low: float,
    sure: float,
    small: int = 8,
    window: int = 100,
    budget: int = 2000,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of texts that share an LSH bucket in at least one band and whose estimated Jaccard is at least ``low``.

    Bands are searched one after the other; each band's candidate pairs are verified by their signature agreement
    at once. Buckets of templated text can hold thousands of texts and all their pairs would be quadratic, so:

    * a query text (one whose near duplicates matter most, e.g. every text outside the training split) is paired
      with every other member of its bucket, or, in a bucket of more than ``small`` texts, with the ``window``
      members on either side of it in the order of the next two bands' keys (texts that agree there too sit side by
      side). A query stops searching large buckets once one of its pairs reaches ``sure`` or once it has been
      paired ``budget`` times in large buckets: leakage needs one match, not all of them;
    * any other text is paired with every member of buckets of at most ``small`` texts and with its neighbour in
      that order in larger ones (best effort: near duplicates among non-query texts in big buckets may be missed).

    Args:
        signatures: uint32 (N, num_perm) MinHash signatures, num_perm divisible by ``bands``.
        bands: LSH bands.
        query: bool (N,) query texts.
        low: smallest estimated Jaccard kept.
        sure: estimated Jaccard from which a query counts as matched.
        small: largest bucket enumerated in full.
        window: partners on either side of a query in a large bucket.
        budget: large-bucket partners per query over all bands.

    Returns:
        ``(pairs, estimate)``: int64 (P, 2) unique pairs ``(i, j)`` with ``i < j``, sorted, and float64 (P,) their
        estimated Jaccard.
    """
    n = len(signatures)
    keys = band_keys(signatures, bands)
    open_query = query.copy()
    used = np.zeros(n, dtype=np.int64)
    kept_codes: list[np.ndarray] = []
    kept_estimates: list[np.ndarray] = []
    for band in range(bands):
        order = np.lexsort((keys[(band + 2) % bands], keys[(band + 1) % bands], keys[band]))
        k = keys[band][order]
        same = k[1:] == k[:-1]
        if not same.any():
            continue
        # Only members of buckets with two or more texts matter: compress to them.
        member = np.zeros(n, dtype=bool)
        member[:-1] |= same
        member[1:] |= same
        idx = order[member]
        km = k[member]
        head = np.r_[True, km[1:] != km[:-1]]
        run = np.cumsum(head) - 1
        run_start = np.flatnonzero(head)
        run_size = np.diff(np.append(run_start, len(idx)))
        size = run_size[run]
        codes: list[np.ndarray] = []
        for d in range(1, small):
            hit = np.flatnonzero((run[d:] == run[:-d]) & ((d == 1) | (size[d:] <= small)))
            if not len(hit):
                break
            codes.append(_pair_codes(idx[hit], idx[hit + d], n))
        q = np.flatnonzero(open_query[idx] & (size > small) & (used[idx] < budget))
        if len(q):
            lo = np.maximum(run_start[run[q]], q - window)
            hi = np.minimum(run_start[run[q]] + run_size[run[q]], q + window + 1)
            used[idx[q]] += hi - lo - 1
            partner = _ranges(lo, hi - lo)
            me = np.repeat(q, hi - lo)
            keep = partner != me
            codes.append(_pair_codes(idx[me[keep]], idx[partner[keep]], n))
        if not codes:
            continue
        code = sorted_unique(np.concatenate(codes))
        estimate = estimated_jaccard(signatures, np.stack([code // n, code % n], axis=1))
        good = estimate >= low
        kept_codes.append(code[good])
        kept_estimates.append(estimate[good])
        matched = code[estimate >= sure]
        open_query[matched // n] = False
        open_query[matched % n] = False
    if not kept_codes:
        return np.empty((0, 2), dtype=np.int64), np.empty(0, dtype=np.float64)
    # A pair met in several bands has the same estimate each time: keep one.
    code, first = np.unique(np.concatenate(kept_codes), return_index=True)
    return np.stack([code // n, code % n], axis=1), np.concatenate(kept_estimates)[first]


def sorted_unique(x: np.ndarray) -> np.ndarray:
    """``np.unique`` by sorting (numpy 2's hash-based unique is many times slower on 10^7 integers)."""
    x = np.sort(x)
    return x[np.r_[True, x[1:] != x[:-1]]] if len(x) else x


def _pair_codes(i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    return np.minimum(i, j).astype(np.int64) * n + np.maximum(i, j)


def estimated_jaccard(signatures: np.ndarray, pairs: np.ndarray, *, chunk: int = 1 << 14) -> np.ndarray:
    """Share of agreeing signature rows for each pair (the MinHash estimate of their Jaccard similarity).

    Args:
        signatures: uint32 (N, num_perm).
        pairs: int64 (P, 2).

    Returns:
        float64 (P,).
    """
    out = np.empty(len(pairs), dtype=np.float64)
    for s in range(0, len(pairs), chunk):
        p = pairs[s : s + chunk]
        out[s : s + chunk] = (signatures[p[:, 0]] == signatures[p[:, 1]]).mean(axis=1)
    return out


def exact_jaccard(values: np.ndarray, starts: np.ndarray, pairs: np.ndarray, *, batch: int = 1 << 14) -> np.ndarray:
    """Jaccard similarity of the shingle sets of each pair (exact up to collisions of 40-bit shingle hashes).

    A batch of pairs becomes plain uint64 keys ``pair << 41 | side << 40 | hash``: one sort and a drop of repeats
    gives each side's set, a second sort without the side bit shows the shared shingles twice in a row. Sorting
    uint64 is far faster than a lexsort, and a batch needs only its own texts' shingles in memory.

    Args:
        values: uint64 (M,) shingle hashes, text after text.
        starts: int64 (N,) first shingle of each text.
        pairs: int64 (P, 2).
        batch: pairs per sort (at most 2^23; 2^14 pairs of 200-character texts sort 50 MB).

    Returns:
        float64 (P,).
    """
    out = np.empty(len(pairs), dtype=np.float64)
    lengths = np.diff(np.append(starts, len(values)))
    side_bit = np.uint64(1 << 40)
    for s in range(0, len(pairs), batch):
        a, b = pairs[s : s + batch, 0], pairs[s : s + batch, 1]
        pid = np.arange(len(a), dtype=np.uint64) << np.uint64(41)
        keys = np.concatenate(
            [
                np.repeat(pid, lengths[a]) | (values[_ranges(starts[a], lengths[a])] >> np.uint64(24)),
                np.repeat(pid | side_bit, lengths[b]) | (values[_ranges(starts[b], lengths[b])] >> np.uint64(24)),
            ]
        )
        keys = sorted_unique(keys)
        owner = (keys >> np.uint64(41)).astype(np.int64)
        in_b = (keys & side_bit) != 0
        size_a = np.bincount(owner[~in_b], minlength=len(a))
        size_b = np.bincount(owner[in_b], minlength=len(a))
        keys &= ~side_bit
        keys.sort()
        shared = keys[1:][keys[1:] == keys[:-1]]
        inter = np.bincount((shared >> np.uint64(41)).astype(np.int64), minlength=len(a))
        out[s : s + batch] = inter / (size_a + size_b - inter)
    return out


def _ranges(first: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(first[i], first[i] + size[i])`` over i."""
    total = int(size.sum())
    offsets = np.repeat(first - (np.cumsum(size) - size), size)
    return offsets + np.arange(total)
