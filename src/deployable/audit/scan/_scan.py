"""Scanning one file (the dispatcher by content and name) and many (folders, the report)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from deployable.audit.scan._containers import _scan_compressed, _scan_zip
from deployable.audit.scan._context import _BudgetExceeded, _Ctx, _peek
from deployable.audit.scan._formats import _scan_npy, _scan_onnx, _scan_safetensors
from deployable.audit.scan._kinds import (
    _EXPECT_COMPRESSED,
    _NPY_MAGIC,
    _PICKLE_EXTS,
    _TORCH_EXTS,
    _ZIP_MAGICS,
    MAX_DEPTH,
    MAX_EXPANDED_BYTES,
    _compression,
    _ext,
    _looks_like_pickle,
    _weak_compression,
    is_model_file,
)
from deployable.audit.scan._pickles import _scan_pickles
from deployable.core.records import Finding

# ---------------------------------------------------------------------------------------------------------------------
# One file
# ---------------------------------------------------------------------------------------------------------------------


def scan_file(path: Path, *, root: Path | None = None) -> list[Finding]:
    """Scan one model file without loading it.

    Args:
        path: the file. Its content decides the format (zip, compressed, NumPy, pickle), then its extension
            (``.safetensors``, ``.onnx``, pickle and torch extensions).
        root: the folder a folder scan started from; ONNX external data reached through symlinks must stay inside it
            (default: the model file's folder).

    Returns:
        The findings, empty when the file is clean.

    Raises:
        OSError: the file cannot be read (missing, no permission, not a regular file).
    """
    path = Path(path)
    st = path.stat()
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(21, "is a directory", str(path))
    if not stat.S_ISREG(st.st_mode):
        raise OSError(f"not a regular file: {path}")
    ctx = _Ctx(path=path, root=root, scanner=_scan_stream)
    with open(path, "rb") as f:
        _scan_stream(ctx, f, name=path.name, member=None, depth=0)
    return ctx.findings


def _scan_stream(
    ctx: _Ctx, f: BinaryIO, *, name: str, member: str | None, depth: int, torchscript: bool = False
) -> None:
    """Scan a seekable stream positioned at its start; ``name`` is the file or member name a loader sees."""
    if depth > MAX_DEPTH:
        ctx.add(
            "nesting-too-deep",
            "medium",
            f"archives or pickles nested more than {MAX_DEPTH} deep: the innermost content was not verified",
            member,
            depth=depth,
        )
        return
    head = _peek(f, 16)
    ext = _ext(name)
    top = depth == 0
    try:
        if ext == ".safetensors":  # its first bytes are a header length, which may spell any magic number
            if top:
                ctx.fmt = "safetensors"
            _scan_safetensors(ctx, f, member=member)
        elif ext == ".onnx" and top:
            ctx.fmt = "onnx"
            _scan_onnx(ctx)
        elif head.startswith(_ZIP_MAGICS):
            _scan_zip(ctx, f, name=name, member=member, depth=depth)
        elif head.startswith(_NPY_MAGIC):
            if top:
                ctx.fmt = "numpy"
            _scan_npy(ctx, f, member=member, depth=depth)
        elif (kind := _compression(head) or _weak_compression(head)) and _scan_compressed(
            ctx, f, kind=kind, name=name, member=member, depth=depth, expected=ext in _EXPECT_COMPRESSED
        ):
            pass
        elif _looks_like_pickle(head) or ext in _PICKLE_EXTS or ext in _TORCH_EXTS:
            if top and ext == ".joblib":
                ctx.fmt = "joblib"
            elif top and ext in _TORCH_EXTS:
                ctx.fmt = "torch"
            # A file named like a pickle, or a torch file starting like one, must parse; anything else that merely
            # starts like a pickle (raw tensor data does by chance) counts only when it parses as one.
            strict = ext in _PICKLE_EXTS or (ext in _TORCH_EXTS and _looks_like_pickle(head))
            _scan_pickles(ctx, f, member=member, depth=depth, strict=strict, torchscript=torchscript)
        # Anything else (text, raw tensor data) runs no code when loaded.
    except _BudgetExceeded:
        if not ctx.bomb_reported:  # the budget stays spent: every enclosing level would report it again
            ctx.bomb_reported = True
            ctx.add(
                "zip-bomb",
                "high",
                f"expands to more than {MAX_EXPANDED_BYTES / 1024**3:g} GiB when decompressed: refused as a "
                "decompression bomb, the rest was not verified",
                member,
                limit_bytes=MAX_EXPANDED_BYTES,
            )


# ---------------------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class ScanReport:
    """What a scan of model files found.

    Attributes:
        findings: one per problem, ``check="scan"``, ``file`` the scanned file, ``member`` the inner member.
        scanned: every file that was scanned (as given, or found in a folder).
        unreadable: ``(path, reason)`` for what could not be read at all: missing, no permission, not a regular file,
            a directory loop, a broken symlink, a symlinked folder outside the scanned folder (not followed).
    """

    findings: list[Finding] = field(default_factory=list)
    scanned: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True when every file was read and nothing above ``info`` was found (``low`` means "not verified")."""
        return not self.unreadable and all(f.severity == "info" for f in self.findings)


def scan_paths(paths: Iterable[str | Path]) -> ScanReport:
    """Scan files and folders.

    A file given explicitly is always scanned; a folder is walked recursively and every file for which
    :func:`is_model_file` is true is scanned. Symlinked folders are not followed (one pointing outside the folder is
    reported unreadable, one pointing back up is a directory loop); a symlinked file is scanned at its target, since
    that is what a loader would read.

    Args:
        paths: model files or folders.

    Returns:
        The findings, the scanned files and what could not be read.
    """
    report = ScanReport()
    done: set[Path] = set()
    for p in paths:
        p = Path(p)
        try:
            st = p.stat()
        except (OSError, RuntimeError) as exc:
            report.unreadable.append((str(p), _reason(exc)))
            continue
        if stat.S_ISDIR(st.st_mode):
            for file in _walk(p, report):
                _scan_into(report, file, root=p, done=done)
        else:
            _scan_into(report, p, root=None, done=done)
    return report


def _scan_into(report: ScanReport, path: Path, *, root: Path | None, done: set[Path]) -> None:
    try:
        key = path.resolve()
        if key in done:
            return
        done.add(key)
        findings = scan_file(path, root=root)
    except (OSError, RuntimeError) as exc:  # RuntimeError: symlink loop on older Pythons
        report.unreadable.append((str(path), _reason(exc)))
        return
    report.scanned.append(str(path))
    report.findings.extend(findings)


def _reason(exc: BaseException) -> str:
    """``no such file or directory``, ``permission denied``..."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    return str(exc) or type(exc).__name__


def _walk(root: Path, report: ScanReport) -> Iterator[Path]:
    """Model files under ``root`` in name order, depth first, never leaving ``root`` through a symlinked folder."""
    real_root = root.resolve()
    seen: set[tuple[int, int]] = set()
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            st = folder.stat()
            if (st.st_dev, st.st_ino) in seen:  # a bind mount or similar showing a folder twice
                report.unreadable.append((str(folder), "directory loop"))
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            report.unreadable.append((str(folder), _reason(exc)))
            continue
        subfolders = []
        for entry in entries:
            p = Path(entry.path)
            try:
                if entry.is_symlink():
                    try:
                        target = p.resolve(strict=True)
                    except RuntimeError:
                        report.unreadable.append((str(p), "symlink loop"))
                        continue
                    except OSError as exc:
                        report.unreadable.append((str(p), f"broken symlink ({_reason(exc)})"))
                        continue
                    if target.is_dir():
                        real_parent = p.parent.resolve()
                        if target == real_parent or target in real_parent.parents:
                            report.unreadable.append((str(p), "directory loop"))
                        elif not target.is_relative_to(real_root):
                            report.unreadable.append(
                                (str(p), f"symlink to a folder outside the scanned folder ({target}), not followed")
                            )
                        # else: inside the folder, its files are reached through their real path
                    elif target.is_file() and is_model_file(p):
                        yield p
                elif entry.is_dir(follow_symlinks=False):
                    subfolders.append(p)
                elif entry.is_file(follow_symlinks=False) and is_model_file(p):
                    yield p
            except OSError as exc:
                report.unreadable.append((str(p), _reason(exc)))
        pending.extend(reversed(subfolders))
