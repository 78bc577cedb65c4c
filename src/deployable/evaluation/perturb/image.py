"""Image corruptions in the spirit of ImageNet-C / CIFAR-10-C (Hendrycks & Dietterich, 2019), sized for small images.

Images are float arrays ``(N, C, H, W)`` or ``(N, H, W)`` in the value range of a clean reference (e.g. the
training split): noise and shifts scale with that range, and every output is clipped to it and returned as float32
of the input's shape. Every corruption works down to 8x8 single-channel digits; blur strength grows with the image
side above 32 pixels so that it means the same thing on larger images.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np

from deployable.core._imports import require

# Index = severity (0 = identity).
GAUSSIAN_SIGMA = (0.0, 0.08, 0.12, 0.18, 0.26, 0.38)  # fraction of the value range
SHOT_PHOTONS = (np.inf, 60.0, 25.0, 12.0, 5.0, 3.0)  # photon count of a full-range pixel
BLUR_SIGMA = (0.0, 0.5, 0.75, 1.0, 1.5, 2.0)  # pixels, times sqrt(side / 32) for sides above 32
CONTRAST = (1.0, 0.75, 0.5, 0.4, 0.3, 0.15)  # factor toward the per-image mean
BRIGHTNESS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)  # fraction of the value range added
JPEG_QUALITY = (100, 80, 60, 40, 25, 10)
PIXELATE = (1.0, 0.75, 0.6, 0.5, 0.375, 0.25)  # side of the downsampled image, fraction of the original
ROTATION_DEGREES = (0.0, 6.0, 12.0, 18.0, 24.0, 30.0)  # sign drawn per image

Corruption = Callable[[np.ndarray, int, np.random.Generator, float, float], np.ndarray]


def _span(lo: float, hi: float) -> float:
    return hi - lo if hi > lo else 1.0


def gaussian_noise(x: np.ndarray, severity: int, rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    """Additive gaussian noise with sigma a growing fraction of the value range (sensor read noise)."""
    return x + rng.normal(0.0, GAUSSIAN_SIGMA[severity] * _span(lo, hi), size=x.shape)


def shot_noise(x: np.ndarray, severity: int, rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    """Poisson (photon) noise: the image rescaled to [0, 1] is a photon rate with a shrinking photon count."""
    span, photons = _span(lo, hi), SHOT_PHOTONS[severity]
    unit = np.clip((x - lo) / span, 0.0, 1.0)
    return rng.poisson(unit * photons) / photons * span + lo


def blur(x: np.ndarray, severity: int, rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    """Gaussian blur over the spatial axes only (channels and images are never mixed); deterministic."""
    side = min(x.shape[-2:])
    sigma = BLUR_SIGMA[severity] * max(1.0, side / 32) ** 0.5
    from scipy import ndimage

    return ndimage.gaussian_filter(x, sigma=(0.0, 0.0, sigma, sigma), mode="nearest")


def contrast(x: np.ndarray, severity: int, rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    """Shrink every pixel toward its image's mean (over channels and pixels); deterministic."""
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return (x - mean) * CONTRAST[severity] + mean


def brightness(x: np.ndarray, severity: int, rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    """Add a growing fraction of the value range (over-exposure; saturates at the top); deterministic."""
    return x + BRIGHTNESS[severity] * _span(lo, hi)


def _jpeg_roundtrip(pil: Any, pixels: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    pil.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with pil.open(buffer) as decoded:
        return np.asarray(decoded)


def jpeg(x: np.ndarray, severity: int, rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    """A JPEG encode/decode round trip with decreasing quality, on the image rescaled to uint8; deterministic.

    Three channels are encoded as one RGB image; any other channel count as separate grayscale images.
    """
    pil = require("PIL.Image", feature="JPEG corruption")
    span, quality = _span(lo, hi), JPEG_QUALITY[severity]
    pixels = np.clip(np.rint((x - lo) / span * 255.0), 0, 255).astype(np.uint8)
    out = np.empty(x.shape, dtype=np.float64)
    for i in range(len(x)):
        if x.shape[1] == 3:
            rgb = np.ascontiguousarray(pixels[i].transpose(1, 2, 0))
            out[i] = _jpeg_roundtrip(pil, rgb, quality).transpose(2, 0, 1)
        else:
            for c in range(x.shape[1]):
                out[i, c] = _jpeg_roundtrip(pil, pixels[i, c], quality)
    return out / 255.0 * span + lo


def _box_then_nearest(n: int, fraction: float) -> np.ndarray:
    """The (n, n) matrix that averages a line of n pixels over ``fraction * n`` contiguous boxes (box downsampling)
    and copies each box's mean back onto its pixels (nearest upsampling)."""
    m = max(1, int(n * fraction + 0.5))
    box = ((np.arange(n) * m) // n)[:, None] == np.arange(m)[None, :]
    return (box / box.sum(axis=0)) @ box.T


def pixelate(x: np.ndarray, severity: int, rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    """Downsample by box averaging to a shrinking fraction of each side, then upsample by nearest; deterministic."""
    rows = _box_then_nearest(x.shape[2], PIXELATE[severity])
    cols = _box_then_nearest(x.shape[3], PIXELATE[severity])
    return rows @ x @ cols.T


def rotation(x: np.ndarray, severity: int, rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    """Rotate each image about its centre by the severity's angle, clockwise or counter-clockwise at random
    (bilinear, same size, edges extended by the nearest pixel)."""
    signs = rng.choice(np.array([-1.0, 1.0]), size=len(x))
    out = np.empty_like(x)
    for sign in (-1.0, 1.0):
        chosen = signs == sign
        if chosen.any():
            angle = sign * ROTATION_DEGREES[severity]
            from scipy import ndimage

            out[chosen] = ndimage.rotate(x[chosen], angle, axes=(3, 2), reshape=False, order=1, mode="nearest")
    return out


CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "blur": blur,
    "contrast": contrast,
    "brightness": brightness,
    "jpeg": jpeg,
    "pixelate": pixelate,
    "rotation": rotation,
}


def apply(inputs: Any, name: str, severity: int, rng: np.random.Generator, reference: Any = None) -> np.ndarray:
    """Corrupt a batch of images; the value range comes from ``reference`` (``inputs`` when None)."""
    x = np.asarray(inputs)
    if x.ndim not in (3, 4) or not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"image inputs: expected a numeric array (N, C, H, W) or (N, H, W), but got shape {x.shape}")
    if severity == 0:
        return np.array(x, copy=True)
    if len(x) == 0:
        return x.astype(np.float32, copy=True)
    ref = x if reference is None else np.asarray(reference)
    if ref.size == 0:
        raise ValueError("image reference: expected a non-empty array to take the value range from")
    lo, hi = float(np.nanmin(ref)), float(np.nanmax(ref))
    batch = x.astype(np.float64)
    if batch.ndim == 3:
        batch = batch[:, None]
    out = CORRUPTIONS[name](batch, severity, rng, lo, hi)
    return np.clip(out, lo, hi).reshape(x.shape).astype(np.float32)
