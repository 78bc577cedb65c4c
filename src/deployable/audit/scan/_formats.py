"""NumPy (object arrays), safetensors headers, and ONNX external-data paths."""

from __future__ import annotations

import ast
import io
import json
import math
import re
import struct
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from deployable.audit.scan._context import _Ctx
from deployable.audit.scan._kinds import (
    _NPY_MAX_HEADER,
    _SAFETENSORS_MAX_HEADER,
    _ZIP_MAGICS,
    CONVERT_HINT,
    _looks_like_pickle,
)
from deployable.audit.scan._pickles import _scan_pickles

# ---------------------------------------------------------------------------------------------------------------------
# NumPy, safetensors, ONNX
# ---------------------------------------------------------------------------------------------------------------------


def _scan_npy(ctx: _Ctx, f: BinaryIO, *, member: str | None, depth: int) -> None:
    def malformed(why: str) -> None:
        ctx.add("malformed-npy", "medium", f".npy header {why}: not verified", member)

    f.read(6)
    version = f.read(2)
    if len(version) < 2 or version[0] not in (1, 2, 3):
        return malformed(f"has an unknown version {tuple(version)}")
    fmt = "<H" if version[0] == 1 else "<I"
    size_bytes = f.read(struct.calcsize(fmt))
    if len(size_bytes) < struct.calcsize(fmt):
        return malformed("is truncated")
    (hlen,) = struct.unpack(fmt, size_bytes)
    if hlen > _NPY_MAX_HEADER:
        return malformed(f"is {hlen} bytes long")
    raw = f.read(hlen)
    if len(raw) < hlen:
        return malformed("is truncated")
    try:
        # numpy parses the header the same way (ast.literal_eval evaluates literals only)
        header = ast.literal_eval(raw.decode("latin-1" if version[0] < 3 else "utf-8"))
        if not isinstance(header, dict) or not {"descr", "fortran_order", "shape"} <= set(header):
            return malformed("lacks descr, fortran_order or shape")
        from numpy.lib.format import descr_to_dtype

        dtype = descr_to_dtype(header["descr"])
    except Exception as exc:  # SyntaxError, ValueError, TypeError, MemoryError, RecursionError from odd headers
        return malformed(f"cannot be parsed ({type(exc).__name__})")
    if dtype.hasobject:
        # np.load(allow_pickle=True) unpickles everything after the header
        _scan_pickles(ctx, f, member=member, depth=depth, strict=True, torchscript=False)
    return None


_SAFETENSORS_BITS = {
    **dict.fromkeys(("BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0"), 8),
    **dict.fromkeys(("U16", "I16", "F16", "BF16"), 16),
    **dict.fromkeys(("U32", "I32", "F32"), 32),
    **dict.fromkeys(("U64", "I64", "F64", "C64"), 64),
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _safetensors_problems(f: BinaryIO) -> list[str]:
    """Why a safetensors file is malformed (the rules of the safetensors library), empty when it is not."""
    size = f.seek(0, io.SEEK_END)
    f.seek(0)
    if size < 8:
        return [f"file is {size} bytes, shorter than the 8-byte header length"]
    (n,) = struct.unpack("<Q", f.read(8))
    if n > size - 8:
        return [f"header length {n} exceeds the {size - 8} bytes after it"]
    if n > _SAFETENSORS_MAX_HEADER:
        return [f"header length {n} exceeds the {_SAFETENSORS_MAX_HEADER}-byte limit"]
    try:
        header = json.loads(f.read(n).decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return [f"header is not valid JSON ({exc})"]
    if not isinstance(header, dict):
        return ["header is not a JSON object"]
    data_size = size - 8 - n
    problems: list[str] = []
    spans: list[tuple[int, int, str]] = []
    for key, entry in header.items():
        if key == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                problems.append("__metadata__ is not a map of strings")
            continue
        if not isinstance(entry, dict):
            problems.append(f"tensor {key!r} is not an object")
            continue
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        bits = _SAFETENSORS_BITS.get(dtype) if isinstance(dtype, str) else None
        if bits is None:
            problems.append(f"tensor {key!r} has an unknown dtype {dtype!r}")
            continue
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            problems.append(f"tensor {key!r} has an invalid shape {shape!r}")
            continue
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(type(o) is int for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_size
        ):
            problems.append(f"tensor {key!r} has data_offsets {offsets!r} outside the {data_size}-byte data area")
            continue
        nbits = math.prod(shape) * bits
        if nbits % 8 or nbits // 8 != offsets[1] - offsets[0]:
            problems.append(
                f"tensor {key!r} spans {offsets[1] - offsets[0]} bytes but {dtype}{shape} needs {nbits / 8:g}"
            )
        spans.append((offsets[0], offsets[1], key))
    cursor = 0
    previous = ""
    for begin, end, key in sorted(spans):
        if begin < cursor:
            problems.append(f"tensor {key!r} overlaps tensor {previous!r}")
        elif begin > cursor:
            problems.append(f"bytes {cursor}..{begin} before tensor {key!r} are described by no tensor")
        if end >= cursor:
            cursor, previous = end, key
    if not problems and cursor != data_size:
        problems.append(f"{data_size - cursor} bytes after the last tensor are described by no tensor")
    return problems


def _scan_safetensors(ctx: _Ctx, f: BinaryIO, *, member: str | None) -> None:
    problems = _safetensors_problems(f)
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        ctx.add(
            "malformed-safetensors",
            "high",
            f"malformed safetensors file: {problems[0]}{more}",
            member,
            problems=problems[:20],
            hint=CONVERT_HINT["safetensors"],
        )


def _onnx_tensors(graph: Any) -> Iterator[Any]:
    """Every tensor of a graph and its subgraphs: initializers and tensor-valued node attributes."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    yield from _onnx_node_tensors(graph.node)


def _onnx_node_tensors(nodes: Iterable[Any]) -> Iterator[Any]:
    for node in nodes:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("sparse_tensor"):
                yield attr.sparse_tensor.values
                yield attr.sparse_tensor.indices
            for sparse in attr.sparse_tensors:
                yield sparse.values
                yield sparse.indices
            if attr.HasField("g"):
                yield from _onnx_tensors(attr.g)
            for g in attr.graphs:
                yield from _onnx_tensors(g)


NOT_ONNX_HINT = (
    "check that the path names the .onnx file you exported, or export it again: "
    "torch.onnx.export(model, example_input, 'model.onnx')"
)


def _not_onnx(ctx: _Ctx, why: str) -> None:
    """A ``.onnx`` file that is no ONNX model: corrupt, truncated, or another format under that name. Nothing in it
    can be verified (so loading it is refused), but it is a broken file, not an unsafe one: see ``guard``."""
    with open(ctx.path, "rb") as f:
        head = f.read(16)
    other = (
        "; it starts like a zip archive (a torch checkpoint?)"
        if head.startswith(_ZIP_MAGICS)
        else "; it starts like a pickle"
        if _looks_like_pickle(head)
        else ""
    )
    ctx.add(
        "unparseable-onnx",
        "medium",
        f"not a valid ONNX model (corrupt, truncated, or another format): {why}{other}",
        None,
        hint=NOT_ONNX_HINT,
    )


def _scan_onnx(ctx: _Ctx) -> None:
    try:
        import onnx
    except ImportError:
        ctx.add(
            "unverified-onnx",
            "low",
            "onnx is not installed: the external-data paths of this model were not checked",
            None,
        )
        return
    try:
        model = onnx.load(str(ctx.path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return _not_onnx(ctx, f"onnx cannot parse it ({type(exc).__name__}{': ' + detail if detail else ''})")
    if not model.HasField("graph"):  # an empty file, or bytes that happen to decode, parse as a graphless model
        return _not_onnx(ctx, "the file is empty" if ctx.path.stat().st_size == 0 else "it holds no graph")
    tensors = [*_onnx_tensors(model.graph), *(t for fn in model.functions for t in _onnx_node_tensors(fn.node))]
    folder = ctx.path.parent
    boundary = (ctx.root or folder).resolve()
    by_location: dict[str, list[str]] = {}
    for t in tensors:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in t.external_data if e.key == "location"), "")
        by_location.setdefault(location, []).append(t.name)
    for location, names in by_location.items():
        details = {"location": location, "tensors": names[:20], "count": len(names), "hint": CONVERT_HINT["onnx"]}
        if not location:
            ctx.add(
                "missing-external-data", "high", f"tensor {names[0]!r} is external but names no file", None, **details
            )
            continue
        absolute = location.startswith(("/", "\\")) or bool(re.match(r"[A-Za-z]:", location))
        parent_escape = ".." in re.split(r"[\\/]", location)
        target = folder / location
        try:
            resolved = target.resolve()
        except (OSError, RuntimeError):
            resolved = target
        if absolute or parent_escape or not resolved.is_relative_to(boundary):
            why = "an absolute path" if absolute else "a path with '..'" if parent_escape else "a symlink"
            ctx.add(
                "external-data-escape",
                "critical",
                f"external data of tensor {names[0]!r} is read from {location!r}, {why} outside the model's folder",
                None,
                resolved=str(resolved),
                **details,
            )
        elif not resolved.is_file():
            ctx.add(
                "missing-external-data",
                "high",
                f"external data file {location!r} of tensor {names[0]!r} does not exist next to the model",
                None,
                **details,
            )
