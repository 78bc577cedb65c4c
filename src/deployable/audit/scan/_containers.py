"""Archives (zip: torch, TorchScript, npz) and compressed streams, opened member by member within a budget."""

from __future__ import annotations

import bz2
import io
import lzma
import os
import re
import struct
import zipfile
import zlib
from typing import Any, BinaryIO

from deployable.audit.scan._context import _Ctx, _peek
from deployable.audit.scan._kinds import (
    _CHUNK,
    _COMPRESSED_EXTS,
    _MAX_MEMBERS,
    _PICKLE_EXTS,
    _RATIO_MIN_BYTES,
    _TORCH_EXTS,
    _ZIP_MAGICS,
    MAX_RATIO,
    _compression,
    _ext,
    _sniff_nested,
    _weak_compression,
)

# ---------------------------------------------------------------------------------------------------------------------
# Archives and compressed streams
# ---------------------------------------------------------------------------------------------------------------------


def _escapes(name: str) -> bool:
    """An archive member name that would be written outside the extraction folder."""
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        return True
    return ".." in re.split(r"[\\/]", name)


def _is_torchscript(names: list[str]) -> bool:
    """torch.load hands archives with a ``constants.pkl`` to torch.jit.load; scripted code lives in ``code/``."""
    constants = any(re.fullmatch(r"(?:[^/]+/)?constants\.pkl", n) for n in names)
    code = any(re.match(r"(?:[^/]+/)?code/", n) for n in names)
    return constants and code


def _scan_zip(ctx: _Ctx, f: BinaryIO, *, name: str, member: str | None, depth: int) -> None:
    try:
        zf = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, struct.error) as exc:
        ctx.add("corrupt-archive", "medium", f"zip archive cannot be read ({exc}): not verified", member)
        return
    with zf:
        infos = zf.infolist()
        if len(infos) > _MAX_MEMBERS:
            ctx.add(
                "zip-bomb",
                "high",
                f"zip archive has {len(infos)} members (more than {_MAX_MEMBERS}): refused, not verified",
                member,
                members=len(infos),
            )
            return
        names = [i.filename for i in infos]
        torchscript = _is_torchscript(names)
        if depth == 0:
            if torchscript:
                ctx.fmt = "torchscript"
            elif any(re.fullmatch(r"(?:[^/]+/)?data\.pkl", n) for n in names):
                ctx.fmt = "torch"
            elif _ext(name) == ".npz":
                ctx.fmt = "numpy"
        for info in infos:
            inner = f"{member}!{info.filename}" if member else info.filename
            if _escapes(info.filename):
                ctx.add(
                    "path-traversal",
                    "critical",
                    f"archive member {info.filename!r} would be written outside the folder it is extracted to",
                    inner,
                    name=info.filename,
                )
            if info.is_dir():
                continue
            compressed = info.compress_type != zipfile.ZIP_STORED
            ratio = info.file_size / max(info.compress_size, 1)
            if compressed and info.file_size > _RATIO_MIN_BYTES and ratio > MAX_RATIO:
                ctx.add(
                    "zip-bomb",
                    "high",
                    f"archive member {info.filename!r} claims a {ratio:.0f}:1 compression ratio "
                    f"({info.file_size} bytes): refused as a decompression bomb, not verified",
                    inner,
                    ratio=round(ratio, 1),
                    file_size=info.file_size,
                    compress_size=info.compress_size,
                )
                continue
            try:
                with zf.open(info) as m:
                    head = _peek(m, 16)
                    ext = _ext(info.filename)
                    wanted = (
                        _sniff_nested(head)
                        or _weak_compression(head) is not None
                        or ext in _PICKLE_EXTS
                        or ext in _TORCH_EXTS
                        or ext == ".safetensors"
                    )
                    if not wanted:
                        continue
                    if compressed:
                        ctx.charge(info.file_size)  # ZipExtFile never yields more than the declared size
                    source: BinaryIO = m
                    if head.startswith(_ZIP_MAGICS) and compressed:
                        # zipfile seeks all over a nested archive; seeking back in a deflated member re-inflates it
                        source = io.BytesIO(m.read())
                    ctx.descend(source, name=info.filename, member=inner, depth=depth + 1, torchscript=torchscript)
            except (RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError) as exc:
                # encrypted members, unsupported compression, CRC mismatches
                ctx.add(
                    "unverifiable-member",
                    "medium",
                    f"archive member {info.filename!r} cannot be read ({exc}): not verified",
                    inner,
                )


def _decompressor(kind: str) -> Any:
    if kind == "gunzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if kind == "zlib":
        return zlib.decompressobj()
    if kind == "bunzip2":
        return bz2.BZ2Decompressor()
    return lzma.LZMADecompressor(lzma.FORMAT_AUTO if kind == "unxz" else lzma.FORMAT_ALONE)


def _inflate(ctx: _Ctx, f: BinaryIO, kind: str) -> tuple[bytes, str | None]:
    """Decompress a whole stream within the budget: the bytes, and why it stopped early (None when it ended well).

    A loader decompresses as it unpickles, so what comes out before a corrupt or truncated end is still loaded.
    """
    out = bytearray()
    dec = _decompressor(kind)
    is_zlib = kind in ("gunzip", "zlib")
    pending = b""
    try:
        while True:
            if is_zlib or dec.needs_input:
                if not pending:
                    pending = f.read(_CHUNK)
                    if not pending:
                        return bytes(out), "the stream is truncated"
                # max_length keeps each step small, so a bomb is stopped by the budget, not by running out of memory
                piece = dec.decompress(pending, _CHUNK)
                pending = dec.unconsumed_tail if is_zlib else b""
            else:
                piece = dec.decompress(b"", _CHUNK)
            ctx.charge(len(piece))
            out += piece
            if dec.eof:
                rest = dec.unused_data + pending + f.read(_CHUNK)
                # concatenated members (gzip -c a b, pbzip2, multi-stream xz) are read on by the standard modules
                if kind in ("gunzip", "bunzip2", "unxz") and _compression(rest[:16]) == kind:
                    dec = _decompressor(kind)
                    pending = rest
                    continue
                return bytes(out), None
    except (zlib.error, lzma.LZMAError, EOFError, ValueError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:  # a read error; bz2 reports bad data with no errno
            raise
        return bytes(out), str(exc) or type(exc).__name__


def _scan_compressed(
    ctx: _Ctx, f: BinaryIO, *, kind: str, name: str, member: str | None, depth: int, expected: bool
) -> bool:
    """Scan the decompressed content. False (``f`` rewound) when an unexpected stream yields nothing: raw data.

    Args:
        expected: the name says compressed (``.gz``, or a joblib pickle name). Otherwise the magic number may be
            chance (raw tensor bytes): a stream that does not decompress at all is not one, and a partial one only
            counts for what parses as a pickle in it.
    """
    start = f.tell()
    inner_member = f"{ctx.base(member)}|{kind}"
    stem, ext = os.path.splitext(name)
    inner_name = stem if ext.lower() in _COMPRESSED_EXTS else name
    data, problem = _inflate(ctx, f, kind)
    if problem is not None and not expected:
        if not data:
            f.seek(start)
            return False
        inner_name = ""  # no name: only a complete pickle (or a critical global) found in the fragment counts
    elif problem is not None:
        ctx.add(
            "corrupt-archive",
            "medium",
            f"{kind} stream cannot be fully decompressed ({problem}): what follows byte {len(data)} of its content "
            "was not verified",
            member,
            error=problem,
        )
    ctx.descend(io.BytesIO(data), name=inner_name, member=inner_member, depth=depth + 1)
    return True
