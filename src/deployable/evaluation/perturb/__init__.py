"""Deterministic corruption suites for robustness evaluation: text, image and tabular corruptions, five severities each.

``corrupt(inputs, modality, name, severity, seed=...)`` returns a corrupted copy of a whole split and never mutates
its input; severity 0 is the identity. The random stream is seeded from ``(seed, name, severity)`` through a stable
hash (SHA-256, not Python's salted ``hash()``), so the same call gives the same output in every process and the
result can be cached under :func:`perturbation_id`. One stream serves the whole batch, so the corruption of one
input depends on its position: corrupt the whole split in one call.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from deployable.core.errors import ConfigError, closest
from deployable.evaluation.perturb import image, tabular, text

SEVERITIES = (1, 2, 3, 4, 5)
MODALITIES = ("text", "image", "tabular")

_SUITES = {"text": text, "image": image, "tabular": tabular}


def _unknown(what: str, value: object, valid: tuple[str, ...]) -> ConfigError:
    """A one-line error naming the bad value, every valid choice, and the closest one when something is close."""
    match = closest(value, valid) if isinstance(value, str) else None
    listed = ", ".join(repr(v) for v in valid)
    return ConfigError(f"unknown {what} {value!r}; valid: {listed}", hint=f"did you mean {match!r}?" if match else None)


def _check_modality(modality: str) -> None:
    if modality not in MODALITIES:
        raise _unknown("perturbation modality", modality, MODALITIES)


def _check(modality: str, name: str, severity: int, seed: int) -> None:
    """Validate every argument that selects a corruption, so a typo in a config fails before anything runs."""
    names = corruption_names(modality)
    if name not in names:
        raise _unknown(f"{modality} corruption", name, names)
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 0 <= severity <= 5:
        raise ConfigError(f"corruption severity must be an integer in 0..5 (0 = clean), but got {severity!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"corruption seed must be an integer, but got {seed!r}")


def _rng(seed: int, name: str, severity: int) -> np.random.Generator:
    """A generator seeded from ``(seed, name, severity)`` by SHA-256: stable across processes and Python versions."""
    digest = hashlib.sha256(f"{int(seed)}\x1f{name}\x1f{int(severity)}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def corruption_names(modality: str) -> tuple[str, ...]:
    """The corruption names of one modality, in their canonical order."""
    _check_modality(modality)
    return tuple(_SUITES[modality].CORRUPTIONS)


def corrupt(inputs: Any, modality: str, name: str, severity: int, *, seed: int = 0, reference: Any = None) -> Any:
    """A corrupted copy of ``inputs``; severity 0 returns an equal copy.

    Args:
        inputs: ``list[str]`` for text; a float array ``(N, C, H, W)`` or ``(N, H, W)`` for image; a float array
            ``(N, F)`` for tabular.
        modality: one of :data:`MODALITIES`.
        name: one of :func:`corruption_names` of ``modality``.
        severity: 0 (identity) to 5 (strongest).
        seed: seeds the random stream together with ``name`` and ``severity``.
        reference: for image and tabular, the clean reference array (e.g. the training split) that gives the
            value range (image) or the per-feature spread, means and categories (tabular); None uses ``inputs``.
            Ignored for text.

    Returns:
        ``list[str]`` of the same length for text (never an empty string for a non-empty input); for image a
        float32 array of the same shape clipped to the reference's [min, max]; for tabular an array of the same
        shape (float dtype kept, otherwise float32).

    Raises:
        ConfigError: unknown modality or name, severity outside 0..5, or a non-integer seed.
        ValueError: inputs (or reference) of the wrong shape for the modality.
    """
    _check_modality(modality)
    _check(modality, name, severity, seed)
    return _SUITES[modality].apply(inputs, name, int(severity), _rng(seed, name, severity), reference)


def perturbation_id(modality: str, name: str, severity: int, seed: int) -> dict[str, Any]:
    """A small JSON-able description of one corruption, used as a cache key for its predictions."""
    _check_modality(modality)
    _check(modality, name, severity, seed)
    return {"kind": "corruption", "modality": modality, "name": name, "severity": int(severity), "seed": int(seed)}


__all__ = ["MODALITIES", "SEVERITIES", "corrupt", "corruption_names", "perturbation_id"]
