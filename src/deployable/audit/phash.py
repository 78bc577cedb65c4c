"""Images for duplicate search: a canonical layout and value range, exact digests and 64-bit perceptual hashes.

The pHash (Zauner, 2010): grayscale (the mean of the channels), area-resize to 32x32, orthonormal 2-D DCT-II, the
top-left 8x8 block of coefficients (bit 8u+v is coefficient (u, v)); a bit is 1 where a coefficient exceeds the
median of the 63 non-DC ones (the DC bit is always 0, so a uniform brightness change, which only moves the DC
coefficient, leaves the hash unchanged). The hashes are therefore not interchangeable with ``imagehash.phash``
(luma weights, Lanczos resize, unnormalised DCT, median over all 64, DC bit 1): on 32x32 grayscale images every
non-DC bit equals imagehash's with an orthonormal DCT, and stock imagehash differs by 2 bits on some images
(``tests/test_audit_phash_reference.py``). Near duplicates are pairs within
a Hamming distance, found without comparing all pairs by multi-index hashing: two hashes within distance d agree
exactly on at least one of d + 1 disjoint bit chunks (pigeonhole), so only pairs sharing a chunk are compared.
"""

from __future__ import annotations

import hashlib

import numpy as np
from scipy import fft

_CHANNELS = (1, 3, 4)
_SIDE = 32
_MIN_CHUNK_BITS = 8  # below, chunk values are too crowded for multi-index hashing to save anything
_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def channels_last(x: np.ndarray) -> np.ndarray:
    """Images as (N, H, W, C) whatever their layout.

    Args:
        x: (N, H, W), (N, H, W, C) or (N, C, H, W) with C in 1, 3, 4: channels first when axis 1 has 1, 3 or 4
            entries (the layout of the image-folder reader), else channels last.

    Returns:
        (N, H, W, C) view or copy, same dtype.
    """
    if x.ndim == 3:
        return x[..., None]
    if x.ndim != 4:
        raise ValueError(f"images must be (N, H, W), (N, H, W, C) or (N, C, H, W); got shape {x.shape}")
    return np.moveaxis(x, 1, 3) if x.shape[1] in _CHANNELS else x


def canonical_pixels(x: np.ndarray) -> np.ndarray:
    """Pixel values on one integer scale so that the same picture stored differently hashes the same.

    Float images whose values all lie in [0, 1] are scaled by 255; every float image is then rounded to the nearest
    integer (so float noise below half a grey level does not hide a duplicate). Integer images are kept as they are.

    Args:
        x: images in any layout :func:`channels_last` accepts.

    Returns:
        int64 (N, H, W, C).
    """
    x = channels_last(np.asarray(x))
    if np.issubdtype(x.dtype, np.floating):
        finite = x[np.isfinite(x)]
        scale = 255.0 if finite.size and finite.min() >= 0 and finite.max() <= 1 else 1.0
        return np.rint(np.nan_to_num(x.astype(np.float64) * scale)).astype(np.int64)
    return x.astype(np.int64)


def digests(pixels: np.ndarray) -> np.ndarray:
    """8-byte BLAKE2b digest of each image's canonical pixels (and shape), as uint64.

    Args:
        pixels: int64 (N, H, W, C) from :func:`canonical_pixels`.

    Returns:
        uint64 (N,).
    """
    shape = repr(pixels.shape[1:]).encode()
    out = np.empty(len(pixels), dtype=np.uint64)
    for i, image in enumerate(pixels):
        out[i] = int.from_bytes(
            hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=8, key=shape).digest(), "little"
        )
    return out


def _area_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) weights of area resampling: output cell i averages the input span it covers."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    cells = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, cells + 1) - np.maximum(lo, cells), 0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def phash(pixels: np.ndarray, *, chunk: int = 4096) -> np.ndarray:
    """64-bit perceptual hash of each image.

    Args:
        pixels: (N, H, W, C) numbers (e.g. from :func:`canonical_pixels`).
        chunk: images resized at once (bounds memory).

    Returns:
        uint64 (N,).
    """
    n, h, w, _ = pixels.shape
    rows, cols = _area_matrix(_SIDE, h), _area_matrix(_SIDE, w)
    out = np.empty(n, dtype=np.uint64)
    for s in range(0, n, chunk):
        gray = pixels[s : s + chunk].mean(axis=3, dtype=np.float64)
        small = rows @ gray @ cols.T  # (n, 32, 32), area-averaged: no aliasing when shrinking
        coef = fft.dctn(small, type=2, norm="ortho", axes=(1, 2))[:, :8, :8].reshape(-1, 64)
        median = np.median(coef[:, 1:], axis=1, keepdims=True)
        bits = coef > median
        bits[:, 0] = False
        out[s : s + chunk] = np.packbits(bits, axis=1, bitorder="little").view("<u8").ravel()
    return out


def indexed(max_distance: int) -> bool:
    """Whether :func:`near_pairs` uses multi-index hashing at this distance (else it compares all pairs)."""
    return 64 // (max_distance + 1) >= _MIN_CHUNK_BITS


def _all_pairs(hashes: np.ndarray, max_distance: int, *, block: int = 1 << 24) -> tuple[np.ndarray, np.ndarray]:
    """Every pair within ``max_distance``, by blocks of rows against all later hashes (quadratic)."""
    n = len(hashes)
    rows = max(1, block // max(n, 1))
    found_i, found_j, found_d = [], [], []
    for s in range(0, n, rows):
        dist = popcount(hashes[s : s + rows, None] ^ hashes[None, :])
        upper = np.arange(s, min(s + rows, n))[:, None] < np.arange(n)[None, :]
        i, j = np.nonzero(upper & (dist <= max_distance))
        found_i.append(i + s)
        found_j.append(j)
        found_d.append(dist[i, j].astype(np.int64))
    if not found_i:
        return np.empty((0, 2), dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.stack([np.concatenate(found_i), np.concatenate(found_j)], axis=1).astype(np.int64), np.concatenate(
        found_d
    )


def popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each uint64 (``np.bitwise_count`` on numpy >= 2, a byte table before)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    return _POPCOUNT8[x[..., None].view(np.uint8)].sum(axis=-1, dtype=np.uint8)


def near_pairs(hashes: np.ndarray, max_distance: int, *, window: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of hashes within ``max_distance`` bits of each other.

    Multi-index hashing: the 64 bits are cut into ``max_distance + 1`` chunks, pairs agreeing on one chunk are
    candidates, the Hamming distance decides (for distances of 7 and more, chunks would be too short to help and all
    pairs are compared). A chunk value shared by more than ``window + 1`` images (e.g. many
    near-uniform images) gives each image only the ``window`` images after it in the order of the full hash.

    Args:
        hashes: uint64 (N,).
        max_distance: largest Hamming distance of a pair.
        window: bound of the pairs per image and chunk in crowded chunk values.

    Returns:
        ``(pairs, distance)``: int64 (P, 2) unique pairs ``(i, j)``, ``i < j``, sorted; int64 (P,).
    """
    n = len(hashes)
    n_chunks = max_distance + 1
    if not indexed(max_distance):
        return _all_pairs(hashes, max_distance)
    bounds = np.linspace(0, 64, n_chunks + 1).astype(int)
    codes: list[np.ndarray] = []
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        mask = np.uint64(((1 << (hi - lo)) - 1) << lo)
        key = hashes & mask
        order = np.lexsort((hashes, key))
        k = key[order]
        for d in range(1, min(window, n - 1) + 1):
            hit = np.flatnonzero(k[d:] == k[:-d])
            if not len(hit):
                break
            i, j = order[hit], order[hit + d]
            codes.append(np.minimum(i, j).astype(np.int64) * n + np.maximum(i, j))
    if not codes:
        return np.empty((0, 2), dtype=np.int64), np.empty(0, dtype=np.int64)
    code = np.sort(np.concatenate(codes))
    code = code[np.r_[True, code[1:] != code[:-1]]]
    pairs = np.stack([code // n, code % n], axis=1)
    distance = popcount(hashes[pairs[:, 0]] ^ hashes[pairs[:, 1]]).astype(np.int64)
    keep = distance <= max_distance
    return pairs[keep], distance[keep]
