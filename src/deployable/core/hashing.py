"""Content hashes: every cached prediction and every reported number is traceable to exact bytes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """sha256 hex digest of one file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_files(paths: Iterable[str | Path]) -> str:
    """One digest over several files (or every file under a directory), independent of where they live.

    Each file contributes its path relative to its root and its content digest, in sorted order, so moving a
    model folder does not change its hash while renaming a file inside it does.
    """
    entries: list[tuple[str, str]] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for f in sorted(q for q in p.rglob("*") if q.is_file()):
                entries.append((f"{p.name}/{f.relative_to(p).as_posix()}", sha256_file(f)))
        else:
            entries.append((p.name, sha256_file(p)))
    return hash_json(sorted(entries))


def total_size(paths: Iterable[str | Path]) -> int:
    """Total size in bytes of files and directories."""
    size = 0
    for p in paths:
        p = Path(p)
        size += sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
    return size


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return {
            "__ndarray__": hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest(),
            "dtype": str(obj.dtype),
            "shape": list(obj.shape),
        }
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, Path):
        return obj.as_posix()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"cannot hash object of type {type(obj).__name__}")


def hash_json(obj: Any) -> str:
    """sha256 of a canonical JSON rendering (sorted keys; arrays hashed by dtype, shape and bytes)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_default, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
