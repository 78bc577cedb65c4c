"""The state of the scan of one top-level file, shared by every format it may contain."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from deployable.audit.scan._kinds import CONVERT_HINT, MAX_EXPANDED_BYTES
from deployable.core.records import Finding


class _BudgetExceeded(Exception):
    """More bytes would be decompressed than :data:`MAX_EXPANDED_BYTES` allows."""


@dataclass
class _Ctx:
    """The state of the scan of one top-level file."""

    path: Path
    root: Path | None
    findings: list[Finding] = field(default_factory=list)
    budget: int = field(default_factory=lambda: MAX_EXPANDED_BYTES)
    fmt: str = "pickle"  # which CONVERT_HINT applies
    bomb_reported: bool = False
    # the dispatcher of one stream (``_scan._scan_stream``); archives and pickles reach it through descend()
    scanner: Callable[..., None] | None = None

    def add(self, code: str, severity: str, message: str, member: str | None, **details: Any) -> None:
        self.findings.append(_finding(self, code, severity, message, member, **details))

    def charge(self, n: int) -> None:
        self.budget -= n
        if self.budget < 0:
            raise _BudgetExceeded

    def descend(self, f: BinaryIO, *, name: str, member: str | None, depth: int, torchscript: bool = False) -> None:
        """Scan a stream found inside the one being scanned (an archive member, a decompressed or nested pickle)."""
        assert self.scanner is not None, "a _Ctx is made by scan_file, which sets its scanner"
        self.scanner(self, f, name=name, member=member, depth=depth, torchscript=torchscript)

    def base(self, member: str | None) -> str:
        """The name nested members are derived from."""
        return member if member is not None else self.path.name


def _peek(f: BinaryIO, n: int) -> bytes:
    if isinstance(f, zipfile.ZipExtFile):  # seeking back in a deflated member inflates it again from the start
        return f.peek(n)[:n]
    pos = f.tell()
    head = f.read(n)
    f.seek(pos)
    return head


def _finding(ctx: _Ctx, code: str, severity: str, message: str, member: str | None, **details: Any) -> Finding:
    details.setdefault("format", ctx.fmt)
    details.setdefault("hint", CONVERT_HINT[ctx.fmt])
    return Finding(
        check="scan", code=code, severity=severity, message=message, file=str(ctx.path), member=member, details=details
    )
