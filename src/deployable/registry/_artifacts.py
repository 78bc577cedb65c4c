"""The artifact folder: files stored once by their sha256 under ``objects/<2>/<sha256>``.

A file is copied to a unique temporary name, fsynced and renamed into place (``core.locks.atomic_write``) before
the row that names it commits, so a row never names a file that is not fully on disk; a release killed before its
commit leaves only unnamed objects, which ``gc`` removes. Paths come only from digests checked to be 64 hex digits,
never from a user string joined onto the folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from deployable.core.hashing import sha256_file
from deployable.core.locks import _fsync_dir, atomic_write

_HEX = re.compile(r"[0-9a-f]{64}")


class ArtifactStore:
    """Content-addressed files under ``root``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        if not _HEX.fullmatch(sha256):
            raise ValueError(f"not a sha256 digest: {sha256!r}")
        return self.root / "objects" / sha256[:2] / sha256

    def put(self, source: Path) -> tuple[str, int]:
        """Store a copy of ``source`` (once per content); returns its sha256 and size."""
        digest = sha256_file(source)
        target = self.path(digest)
        if not (target.is_file() and target.stat().st_size == source.stat().st_size):
            h = hashlib.sha256()

            def copy(fh: object) -> None:
                with open(source, "rb") as src:
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        h.update(chunk)
                        fh.write(chunk)  # type: ignore[attr-defined]

            atomic_write(target, copy)
            if h.hexdigest() != digest:  # the source changed while it was copied: keep nothing under a wrong name
                target.unlink(missing_ok=True)
                raise OSError(f"{source} changed while it was being stored")
            _fsync_dir(target.parent)
        else:
            os.utime(target)  # fresh again: gc keeps young unnamed files, and the row naming this one is not committed
        return digest, source.stat().st_size

    def check(self, sha256: str) -> str | None:
        """The actual sha256 of the stored object ('missing' when absent); None when it matches."""
        p = self.path(sha256)
        if not p.is_file():
            return "missing"
        actual = sha256_file(p)
        return None if actual == sha256 else actual

    def objects(self) -> Iterator[tuple[str, Path]]:
        base = self.root / "objects"
        if not base.is_dir():
            return
        for p in base.glob("*/*"):
            if p.is_file() and _HEX.fullmatch(p.name):
                yield p.name, p

    def remove_unnamed(self, named: set[str], *, min_age_s: float) -> list[str]:
        """Delete objects no row names, older than ``min_age_s`` (a release in flight has written its files but not
        yet committed the rows naming them), and temporary files of writes that died."""
        now = time.time()
        removed = []
        for digest, p in list(self.objects()):
            if digest not in named and now - p.stat().st_mtime >= min_age_s:
                p.unlink(missing_ok=True)
                removed.append(digest)
        base = self.root / "objects"
        if base.is_dir():
            for p in base.glob("*/.*.tmp"):
                if now - p.stat().st_mtime >= min_age_s:
                    p.unlink(missing_ok=True)
        return removed

    def materialize(self, files: list[tuple[str, str]], folder: Path) -> None:
        """Copy objects to ``folder/<relative path>`` (paths checked to stay inside ``folder``)."""
        root = folder.resolve()
        for rel, digest in files:
            dest = (root / rel).resolve()
            if root not in dest.parents:
                raise ValueError(f"registry file path leaves its folder: {rel!r}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.path(digest), dest)
