"""The image pHash of the duplicate audit against imagehash (``imagehash.phash``), bit for bit.

``deployable.audit.phash.phash`` and ``imagehash.phash`` are the same algorithm (grayscale, 32x32, 2-D DCT-II, the
top-left 8x8 block, a bit where a coefficient exceeds the median) with three choices apart (read from both sources):

1. imagehash converts to grayscale with PIL's luma weights and resizes with Lanczos; the project averages the
   channels and resizes by area. On a 32x32 single-channel uint8 image both are the identity (PIL returns a copy when
   the size does not change), so the DCT sees the same pixels.
2. imagehash takes the median of all 64 coefficients; the project the median of the 63 non-DC ones, with the DC bit
   always 0. For an image of non-negative pixels the DC coefficient lies above the 33rd smallest non-DC one (with
   the unnormalised DCT it is the largest, |c_uv| <= c_00 since |cos| <= 1; with the orthonormal one at least half
   the largest, and in practice far above the median: imagehash's DC bit is asserted to be 1 on every image). Then
   imagehash's median is the mean of the 32nd and 33rd smallest non-DC coefficients and the project's the 32nd:
   both set exactly the 31 non-DC bits of rank 33 to 63 (no ties in real images).
3. imagehash's ``scipy.fftpack.dct`` is unnormalised; the project's ``norm="ortho"``. That scales row 0 and column 0
   by 1/sqrt(2) relative to the other coefficients (and the DC by 1/2), which can move an edge coefficient across
   the median. With imagehash's DCT switched to ``norm="ortho"``, the two hashes agree on every non-DC bit.

Bit layout: bit ``8 * u + v`` of the project's little-endian uint64 is coefficient (u, v), u along the image rows,
which is imagehash's ``hash[u, v]``.
"""

from __future__ import annotations

import functools

import imagehash  # the dev extra's reference: a missing install fails here rather than skipping the comparison
import numpy as np
import pytest
import scipy.fftpack
from PIL import Image

from deployable.audit import phash

EDGE = np.zeros((8, 8), dtype=bool)
EDGE[0, 1:] = EDGE[1:, 0] = True  # row 0 and column 0 without the DC: the coefficients norm="ortho" rescales
INTERIOR = np.zeros((8, 8), dtype=bool)
INTERIOR[1:, 1:] = True


@functools.lru_cache(maxsize=1)
def _gray_images() -> np.ndarray:
    """(500, 32, 32) uint8: 300 scikit-learn digits upscaled (bilinear) and 200 crops of its two sample photos."""
    from sklearn.datasets import load_digits, load_sample_images

    digits = [
        np.asarray(Image.fromarray((d * 255 / 16).astype(np.uint8)).resize((32, 32), Image.Resampling.BILINEAR))
        for d in load_digits().images[:300]
    ]
    photos = load_sample_images().images  # china.jpg and flower.jpg, 427x640 RGB
    rng = np.random.default_rng(0)
    crops = []
    for k in range(200):
        p = photos[k % 2]
        i, j = rng.integers(0, p.shape[0] - 32), rng.integers(0, p.shape[1] - 32)
        crops.append(p[i : i + 32, j : j + 32, 1])  # the green channel as a grayscale picture
    return np.stack(digits + crops)


def _bits(hashes: np.ndarray) -> np.ndarray:
    """(N,) uint64 -> (N, 8, 8) bool, bit 8u + v at [u, v]."""
    as_bytes = np.ascontiguousarray(hashes, dtype="<u8").view(np.uint8).reshape(len(hashes), 8)
    return np.unpackbits(as_bytes, axis=1, bitorder="little").astype(bool).reshape(-1, 8, 8)


def _imagehash(images: np.ndarray, *, ortho: bool, monkeypatch: pytest.MonkeyPatch | None = None) -> np.ndarray:
    """(N, 8, 8) bool: ``imagehash.phash`` of each (32, 32) uint8 image, its DCT optionally orthonormal."""
    if ortho:
        assert monkeypatch is not None
        monkeypatch.setattr(scipy.fftpack, "dct", functools.partial(scipy.fftpack.dct, norm="ortho"))
    try:
        return np.stack([imagehash.phash(Image.fromarray(a)).hash for a in images])
    finally:
        if monkeypatch is not None:
            monkeypatch.undo()


def _ours(images: np.ndarray) -> np.ndarray:
    return _bits(phash.phash(phash.canonical_pixels(images)))


def _assert_same_hashes(ours: np.ndarray, ref: np.ndarray, what: str) -> None:
    mismatched = np.flatnonzero((ours != ref).any(axis=(1, 2)))
    assert len(mismatched) == 0, f"{what}: {len(mismatched)} of {len(ref)} images differ, first {mismatched[:5]}"


def test_phash_equals_imagehash_with_an_orthonormal_dct(monkeypatch: pytest.MonkeyPatch) -> None:
    gray = _gray_images()
    ref = _imagehash(gray, ortho=True, monkeypatch=monkeypatch)
    ours = _ours(gray)
    assert ref[:, 0, 0].all()  # DC above imagehash's median on every image (point 2)
    assert not ours[:, 0, 0].any()
    ref[:, 0, 0] = False
    _assert_same_hashes(ours, ref, "32x32 gray vs imagehash (orthonormal DCT)")
    assert len({h.tobytes() for h in ours}) > 0.9 * len(gray)  # the images are distinct, so is the check


def test_phash_relation_to_stock_imagehash() -> None:
    """Unpatched imagehash: the only difference left is point 3, which swaps an edge bit with another bit."""
    gray = _gray_images()
    ref = _imagehash(gray, ortho=False)
    ours = _ours(gray)
    assert ref[:, 0, 0].all()
    ref[:, 0, 0] = False
    # Both set exactly 31 of the 63 non-DC bits (point 2).
    np.testing.assert_array_equal(ours.sum(axis=(1, 2)), 31)
    np.testing.assert_array_equal(ref.sum(axis=(1, 2)), 31)
    # The 49 interior coefficients keep their order under the rescaling and the threshold rank is fixed, so a
    # different interior bit needs an edge bit moving the other way: interior flips never outnumber edge flips.
    diff = ours != ref
    edge_flips, interior_flips = (diff & EDGE).sum(axis=(1, 2)), (diff & INTERIOR).sum(axis=(1, 2))
    assert (interior_flips <= edge_flips).all()
    assert ((edge_flips + interior_flips) % 2 == 0).all()
    # Measured on these 500 images: 463 identical, 37 at Hamming distance 2.
    distance = diff.sum(axis=(1, 2))
    assert (distance == 0).mean() > 0.9 and distance.max() <= 4, np.bincount(distance)


def test_area_resize_and_channel_mean_against_pil(monkeypatch: pytest.MonkeyPatch) -> None:
    """Larger and colour images: the area resize equals PIL's box filter, the channels are averaged.

    The images are built so that PIL's uint8 box resize is exact: each 2x2 (or 2x3) block of the large image is its
    32x32 base pixel plus a zero-sum pattern, and each colour pixel is its gray value plus zero-sum channel offsets.
    (PIL's box filter equals area averaging for integer factors only; PIL's "L" conversion uses luma weights, not the
    mean, so the colour images are reduced by hand.)
    """
    base = _gray_images()[::5].astype(np.int64)  # 100 images
    rng = np.random.default_rng(1)
    room = np.minimum(base, 255 - base)  # how far a pixel may move either way
    ref = _imagehash(base.astype(np.uint8), ortho=True, monkeypatch=monkeypatch)
    ref[:, 0, 0] = False

    d = rng.integers(0, 21, size=base.shape) % (room + 1)
    big = np.kron(base, np.ones((2, 2), np.int64)) + np.kron(d, np.array([[1, -1], [-1, 1]]))
    d = rng.integers(0, 21, size=base.shape) % (room // 2 + 1)
    wide = np.kron(base, np.ones((2, 3), np.int64)) + np.kron(d, np.array([[1, -1, 0], [-2, 0, 2]]))
    for large in (big, wide):
        large = large.astype(np.uint8)
        size = (32, 32)
        boxed = np.stack([np.asarray(Image.fromarray(a).resize(size, Image.Resampling.BOX)) for a in large])
        np.testing.assert_array_equal(boxed, base)  # the construction: PIL's box resize gives the base back
        _assert_same_hashes(_ours(large), ref, f"{large.shape[1:]} area resize vs PIL box + imagehash")

    d1 = rng.integers(-10, 11, size=base.shape) % (room // 2 + 1)
    d2 = rng.integers(-10, 11, size=base.shape) % (room // 2 + 1)
    rgb = np.stack([base + d1, base - d1 - d2, base + d2], axis=-1).astype(np.uint8)  # (N, 32, 32, 3), mean = base
    assert not (rgb[..., 0] == rgb[..., 1]).all()
    for layout in (rgb, rgb.transpose(0, 3, 1, 2), rgb.astype(np.float32) / 255):
        _assert_same_hashes(_ours(layout), ref, f"colour {layout.shape[1:]} {layout.dtype} vs its channel mean")
