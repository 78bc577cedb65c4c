"""Scan model files before anything loads them: find the code a file would run when it is loaded.

Loading a pickle calls whatever callables it names, so a pickle is never unpickled here: its opcodes are walked with
:func:`pickletools.genops` on a small simulated stack, and every global it imports is judged against an ALLOWLIST of
what legitimate checkpoints need (tensor rebuild functions, storage classes, dtypes, plain containers, numpy
arrays). A global on the danger list (``os``, ``subprocess``, ``builtins.eval``, ``pickle.loads``...) is
``critical``; any other global outside the allowlist is ``high``, since importing and calling an unknown callable runs
its code. Archives (torch zip, TorchScript, ``.npz``), compressed files, nested pickles in bytes constants and
object arrays in ``.npy`` files are opened recursively within a size budget. ``.safetensors`` headers are validated
without loading tensors, and the external-data paths of ONNX models must stay next to the model.

Nothing found in a file is ever imported, called or written to disk.
"""

from __future__ import annotations

import _compat_pickle
import ast
import bz2
import io
import json
import lzma
import math
import os
import pickletools
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from deployable.core.records import Finding

__all__ = [
    "ALLOWED_GLOBALS",
    "CONVERT_HINT",
    "MAX_DEPTH",
    "MAX_EXPANDED_BYTES",
    "MAX_RATIO",
    "ScanReport",
    "convert_hint",
    "is_model_file",
    "scan_file",
    "scan_paths",
]

MAX_DEPTH = 5  # archives, compressed streams and nested pickles inside one another
MAX_EXPANDED_BYTES = 2 * 1024**3  # decompressed bytes one top-level file may expand to
MAX_RATIO = 200  # compression ratio of a zip member above which it is treated as a bomb
_RATIO_MIN_BYTES = 1 << 20  # tiny members compress far better than 200:1 legitimately; bombs are large by design
_MAX_MEMBERS = 100_000  # zip members of one archive (a torch checkpoint has one per tensor storage)
_SAFETENSORS_MAX_HEADER = 100_000_000  # the limit of the safetensors library itself
_NPY_MAX_HEADER = 1 << 20
_KEEP_CONSTANT = 4096  # longer constants are replaced by a placeholder on the simulated stack (memory)
_CHUNK = 1 << 20

CONVERT_HINT: dict[str, str] = {
    "pickle": "re-save without pickle: tensors and arrays with safetensors (safetensors.torch.save_file or "
    "safetensors.numpy.save_file), settings as JSON; unpickle the original only in a sandbox and only if you trust "
    "its source",
    "torch": "convert to safetensors: in a sandbox, sd = torch.load(path, weights_only=True, map_location='cpu') "
    "then safetensors.torch.save_file(sd, 'model.safetensors'); weights_only refuses globals outside torch's "
    "allowlist",
    "torchscript": "export to ONNX instead (torch.onnx.export(model, example_input, 'model.onnx')), or save the "
    "state dict with safetensors.torch.save_file and rebuild the module from code",
    "joblib": "convert scikit-learn models to ONNX with skl2onnx (skl2onnx.to_onnx(model, X[:1])); save plain arrays "
    "with safetensors.numpy.save_file",
    "numpy": "save numeric arrays without objects: np.save(path, array, allow_pickle=False), np.savez, or "
    "safetensors.numpy.save_file({'name': array}, path)",
    "onnx": "keep external data next to the model under a relative name: onnx.save_model(model, path, "
    "save_as_external_data=True, all_tensors_to_one_file=True, location='weights.bin')",
    "safetensors": "re-export with safetensors.torch.save_file or safetensors.numpy.save_file: the header must "
    "describe every byte of the data area exactly once",
}

# ---------------------------------------------------------------------------------------------------------------------
# Allowlist and danger list
# ---------------------------------------------------------------------------------------------------------------------

_TORCH_DTYPES = (
    *("float32", "float", "float64", "double", "float16", "half", "bfloat16"),
    *("complex32", "chalf", "complex64", "cfloat", "complex128", "cdouble"),
    *("uint8", "int8", "int16", "short", "int32", "int", "int64", "long", "bool"),
    *("uint16", "uint32", "uint64", *(f"uint{i}" for i in range(1, 8)), *(f"int{i}" for i in range(1, 8))),
    *("qint8", "quint8", "qint32", "quint4x2", "quint2x4"),
    *("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu", "float4_e2m1fn_x2"),
    *("bits1x8", "bits2x4", "bits4x2", "bits8", "bits16"),
)
_TORCH_LAYOUTS = ("strided", "sparse_coo", "sparse_csr", "sparse_csc", "sparse_bsr", "sparse_bsc", "_mkldnn", "jagged")
_TORCH_MEMORY_FORMATS = ("contiguous_format", "channels_last", "channels_last_3d", "preserve_format")
_TORCH_QSCHEMES = (
    *("per_tensor_affine", "per_tensor_symmetric", "per_channel_affine", "per_channel_symmetric"),
    "per_channel_affine_float_qparams",
)
_TORCH_TENSOR_KINDS = ("Double", "Float", "Long", "Int", "Short", "Char", "Byte", "Bool", "BFloat16", "Half")
_TORCH_STORAGE_KINDS = (
    *_TORCH_TENSOR_KINDS,
    *("ComplexDouble", "ComplexFloat", "QUInt8", "QInt8", "QInt32", "QUInt4x2", "QUInt2x4"),
)
_TORCH_REBUILD = (
    *("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter"),
    *("_rebuild_parameter_with_state", "_rebuild_qtensor", "_rebuild_sparse_tensor", "_rebuild_nested_tensor"),
    *("_rebuild_device_tensor_from_numpy", "_rebuild_device_tensor_from_cpu_tensor"),
    *("_rebuild_meta_tensor_no_storage", "_rebuild_wrapper_subclass"),
)


def _build_allowlist() -> frozenset[str]:
    """Every ``module.name`` a legitimate checkpoint may import.

    The torch part is a superset of ``torch._weights_only_unpickler._get_allowed_globals()`` (the test suite checks
    that), written out so that torch need not be installed, or imported, to scan.
    """
    names = {
        "torch.Size",
        "torch.Tensor",
        "torch.device",
        "torch.nn.parameter.Parameter",
        "torch.serialization._get_layout",
        "torch._tensor._rebuild_from_type_v2",
        "torch.storage.UntypedStorage",
        "torch.storage.TypedStorage",
        *(f"torch._utils.{f}" for f in _TORCH_REBUILD),
        *(f"torch.{n}" for n in (*_TORCH_DTYPES, *_TORCH_LAYOUTS, *_TORCH_MEMORY_FORMATS, *_TORCH_QSCHEMES)),
        *(f"{p}.{k}Storage" for p in ("torch", "torch.cuda") for k in _TORCH_STORAGE_KINDS),
        *(
            f"{p}.{k}Tensor"
            for p in ("torch", "torch.cuda", "torch.sparse", "torch.cuda.sparse")
            for k in _TORCH_TENSOR_KINDS
        ),
        # Plain containers and values: constructing them runs no user code.
        *(f"builtins.{n}" for n in ("set", "frozenset", "slice", "complex", "bytearray", "bytes", "range")),
        *(f"builtins.{n}" for n in ("int", "float", "bool", "str", "dict", "list", "tuple", "object")),
        *("builtins.Ellipsis", "builtins.NotImplemented"),
        *("collections.OrderedDict", "collections.defaultdict", "collections.Counter", "collections.deque"),
        # copyreg._reconstructor only instantiates the class it is given, and that class is a global judged on its own.
        "copyreg._reconstructor",
        "_codecs.encode",  # numpy's protocol-2 pickles turn latin-1 text back into bytes with it
        *(f"numpy.{c}.multiarray.{n}" for c in ("core", "_core") for n in ("_reconstruct", "scalar")),
        *(f"numpy.{c}.numeric._frombuffer" for c in ("core", "_core")),  # protocol-5 arrays
        *("numpy.ndarray", "numpy.dtype"),
        *("argparse.Namespace", "decimal.Decimal", "fractions.Fraction", "uuid.UUID"),
        *(f"datetime.{n}" for n in ("datetime", "date", "time", "timedelta", "timezone")),
        *(f"pathlib.{n}" for n in ("Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath", "PureWindowsPath")),
        *(f"pathlib._local.{n}" for n in ("Path", "PosixPath", "WindowsPath")),  # Python 3.13 moved them
        *(f"pathlib._local.{n}" for n in ("PurePath", "PurePosixPath", "PureWindowsPath")),
        # joblib replaces each array by a wrapper followed by the raw array bytes; the wrapper only reads those bytes.
        *("joblib.numpy_pickle.NumpyArrayWrapper", "joblib.numpy_pickle.NDArrayWrapper"),
        "joblib.numpy_pickle_compat.NDArrayWrapper",
    }
    return frozenset(names)


ALLOWED_GLOBALS: frozenset[str] = _build_allowlist()
_ALLOWED_PATTERNS = (re.compile(r"numpy\.dtypes\.\w+DType"),)

# ``__torch__.*`` names are the classes of scripted modules. Python's unpickler cannot import them (there is no
# ``__torch__`` module): torch.load sends archives holding ``constants.pkl`` to torch.jit.load, whose C++ unpickler
# resolves them against the archive's ``code/`` folder. So they are allowed only inside TorchScript archives
# (``constants.pkl`` and a ``code/`` folder), and everywhere else they are unknown globals like any other.
_TORCHSCRIPT_PREFIXES = ("__torch__.", "torch.jit._pickle.")

# A module here covers its submodules. These run commands, touch files or the network, import or unpickle more
# code, or build callables out of attribute lookups (gadget chains).
_DANGER_MODULES = frozenset(
    {
        *("os", "posix", "nt", "subprocess", "_posixsubprocess", "pty", "signal", "sys", "platform"),
        *("importlib", "imp", "zipimport", "runpy", "pkgutil", "site", "code", "codeop", "inspect", "gc"),
        *("pickle", "_pickle", "cPickle", "pickletools", "copyreg", "copy_reg", "dill", "cloudpickle", "marshal"),
        *("types", "ctypes", "_ctypes", "builtins", "__builtin__", "operator", "_operator", "functools"),
        *("_functools", "codecs", "_codecs", "io", "_io", "shutil", "tempfile", "glob", "fileinput", "zipfile"),
        *("tarfile", "socket", "_socket", "ssl", "http", "urllib", "urllib3", "requests", "ftplib", "smtplib"),
        *("telnetlib", "xmlrpc", "webbrowser", "multiprocessing", "_multiprocessing", "concurrent", "asyncio"),
        *("threading", "_thread", "pdb", "bdb", "timeit", "trace", "profile", "cProfile", "logging.config"),
        *("distutils", "setuptools", "pip", "venv", "ensurepip", "yaml"),
        *("torch.hub", "torch._C", "torch.ops", "torch.jit", "torch.package", "torch.fx", "torch._dynamo"),
        *("torch._inductor", "torch.utils.cpp_extension", "torch.distributed", "torch.multiprocessing"),
        *("numpy.testing", "numpy.f2py", "numpy.distutils", "numpy.ctypeslib", "numpy.lib.npyio"),
        *("numpy.lib._npyio_impl", "numpy.lib.format"),
    }
)
_DANGER_NAMES = frozenset(
    {
        *("torch.load", "torch.save", "torch.from_file", "torch.serialization.load", "torch.serialization.save"),
        *("numpy.load", "numpy.save", "numpy.savez", "numpy.fromfile", "numpy.loadtxt", "numpy.genfromtxt"),
        *("numpy.memmap", "joblib.load", "joblib.dump", "joblib.numpy_pickle.load", "joblib.numpy_pickle.dump"),
        *("pandas.read_pickle", "pandas.io.pickle.read_pickle", "pandas.to_pickle"),
    }
)

_JOBLIB_INLINE_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_LEGACY_PICKLES = 5  # magic number, protocol version, sys info, the object, the storage keys

# ---------------------------------------------------------------------------------------------------------------------
# File kinds
# ---------------------------------------------------------------------------------------------------------------------

_PICKLE_EXTS = frozenset({".pkl", ".pickle", ".joblib"})
_TORCH_EXTS = frozenset({".pt", ".pth", ".bin", ".ckpt"})
_COMPRESSED_EXTS = frozenset({".gz", ".bz2", ".xz", ".lzma", ".z"})
# joblib compresses under pickle names; a file named like this that does not decompress is broken, not raw data
_EXPECT_COMPRESSED = _COMPRESSED_EXTS | _PICKLE_EXTS
_MODEL_EXTS = _PICKLE_EXTS | _TORCH_EXTS | _COMPRESSED_EXTS | {".safetensors", ".onnx", ".npy", ".npz", ".zip"}
_TEXT_EXTS = frozenset(
    {
        *(".json", ".jsonl", ".txt", ".md", ".rst", ".py", ".pyi", ".yaml", ".yml", ".toml", ".cfg", ".ini"),
        *(".csv", ".tsv", ".html", ".htm", ".css", ".js", ".xml", ".log", ".lock", ".ipynb", ".sh"),
        *(".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".pdf"),
    }
)
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_MAGIC = b"\x93NUMPY"
_GZIP_MAGIC = b"\x1f\x8b"
_BZ2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_LZMA_ALONE_MAGIC = b"\x5d\x00\x00"  # joblib's compress="lzma"


def _looks_like_pickle(head: bytes) -> bool:
    """Starts with the PROTO opcode of protocol 2 to 5 (every pickle written by Python 3 with the defaults)."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _looks_like_zlib(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0


def _compression(head: bytes) -> str | None:
    """The compression a loader would undo, by magic number: ``gunzip``, ``bunzip2`` or ``unxz``."""
    if head.startswith(_GZIP_MAGIC):
        return "gunzip"
    if head.startswith(_BZ2_MAGIC) and head[3:4].isdigit():
        return "bunzip2"
    if head.startswith(_XZ_MAGIC):
        return "unxz"
    return None


def _weak_compression(head: bytes) -> str | None:
    """zlib or raw lzma, which joblib writes (and detects by content, whatever the file is named).

    Their headers are two or three bytes that raw data matches by chance, so a failed attempt means "not compressed".
    """
    if _looks_like_zlib(head):
        return "zlib"
    if head.startswith(_LZMA_ALONE_MAGIC):
        return "unlzma"
    return None


def _sniff_nested(data: bytes) -> bool:
    """A bytes constant that is itself a pickle, an archive or a compressed stream."""
    return (
        _looks_like_pickle(data)
        or data.startswith((*_ZIP_MAGICS, _NPY_MAGIC, _GZIP_MAGIC, _XZ_MAGIC))
        or (data.startswith(_BZ2_MAGIC) and len(data) > 3 and data[3:4].isdigit())
    )


def _ext(name: str) -> str:
    return os.path.splitext(name)[1].lower()


def convert_hint(finding: Finding) -> str:
    """How to replace the file a scan finding is about with a safe format (the finding's own hint when it has one)."""
    hint = finding.details.get("hint")
    if hint:
        return str(hint)
    suffix = Path(finding.file or "").suffix.lower()
    return CONVERT_HINT[{".onnx": "onnx", ".safetensors": "safetensors"}.get(suffix, "pickle")]


def is_model_file(path: Path) -> bool:
    """Whether a folder scan looks at ``path``: a model extension, or content that starts like a model format.

    Text, config and image files (``.json``, ``.txt``, ``.md``, ``.py``...) are never model files; any other file is
    sniffed for the pickle, zip, NumPy, gzip, bz2, xz, zlib and lzma magic numbers.
    """
    ext = _ext(path.name)
    if ext in _TEXT_EXTS:
        return False
    if ext in _MODEL_EXTS:
        return True
    try:
        if not path.is_file():  # FIFOs and devices would block or never end
            return False
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return bool(
        _looks_like_pickle(head)
        or head.startswith((*_ZIP_MAGICS, _NPY_MAGIC))
        or _compression(head)
        or _weak_compression(head)
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


# ---------------------------------------------------------------------------------------------------------------------
# One file
# ---------------------------------------------------------------------------------------------------------------------


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

    def add(self, code: str, severity: str, message: str, member: str | None, **details: Any) -> None:
        self.findings.append(_finding(self, code, severity, message, member, **details))

    def charge(self, n: int) -> None:
        self.budget -= n
        if self.budget < 0:
            raise _BudgetExceeded

    def base(self, member: str | None) -> str:
        """The name nested members are derived from."""
        return member if member is not None else self.path.name


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
    ctx = _Ctx(path=path, root=root)
    with open(path, "rb") as f:
        _scan_stream(ctx, f, name=path.name, member=None, depth=0)
    return ctx.findings


def _peek(f: BinaryIO, n: int) -> bytes:
    if isinstance(f, zipfile.ZipExtFile):  # seeking back in a deflated member inflates it again from the start
        return f.peek(n)[:n]
    pos = f.tell()
    head = f.read(n)
    f.seek(pos)
    return head


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
                    _scan_stream(
                        ctx, source, name=info.filename, member=inner, depth=depth + 1, torchscript=torchscript
                    )
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
    _scan_stream(ctx, io.BytesIO(data), name=inner_name, member=inner_member, depth=depth + 1)
    return True


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
        ctx.add("unparseable-onnx", "medium", f"ONNX model cannot be parsed ({type(exc).__name__}): not verified", None)
        return
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


# ---------------------------------------------------------------------------------------------------------------------
# Pickles
# ---------------------------------------------------------------------------------------------------------------------


class _SimError(Exception):
    """The opcodes do something the real unpickler would refuse (stack underflow, unknown memo key...)."""


class _Unverifiable(Exception):
    """A joblib array whose size cannot be worked out, so the rest of the stream cannot be found."""


class _Opaque:
    """A value the scanner does not track (a large constant, a persistent id, a set)."""

    __slots__ = ()


_OPAQUE = _Opaque()


class _Global:
    __slots__ = ("full",)

    def __init__(self, full: str):
        self.full = full


class _Obj:
    """The result of calling ``func`` (REDUCE, NEWOBJ, OBJ, INST), with the state BUILD gave it."""

    __slots__ = ("args", "func", "state")

    def __init__(self, func: Any, args: Any):
        self.func = func
        self.args = args
        self.state: Any = None


class _Dict:
    """A pickled dict: the (key, value) pairs, since keys may be untracked values."""

    __slots__ = ("items",)

    def __init__(self, items: list[tuple[Any, Any]] | None = None):
        self.items = items or []

    def get(self, key: str, default: Any = None) -> Any:
        for k, v in reversed(self.items):
            if isinstance(k, str) and k == key:
                return v
        return default


@dataclass
class _Use:
    """How one global is used in one pickle stream."""

    severity: str
    offset: int
    count: int = 0
    calls: int = 0


@dataclass
class _Tally:
    """What one pickle (or one stream of pickles) references that the allowlist does not cover."""

    uses: dict[str, _Use] = field(default_factory=dict)
    unresolved: list[int] = field(default_factory=list)
    extensions: list[tuple[int, int]] = field(default_factory=list)  # (code, offset)
    joblib: bool = False

    def merge(self, other: _Tally, *, only_critical: bool = False) -> None:
        for g, u in other.uses.items():
            if only_critical and u.severity != "critical":
                continue
            mine = self.uses.setdefault(g, _Use(u.severity, u.offset))
            mine.count += u.count
            mine.calls += u.calls
        if not only_critical:
            self.unresolved += other.unresolved
            self.extensions += other.extensions
        self.joblib = self.joblib or other.joblib


def _map_name(module: str, name: str) -> tuple[str, str]:
    # Protocol 0-2 pickles written by Python 3 use Python 2 names (__builtin__.set); the unpickler maps them back.
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _in_modules(module: str, modules: frozenset[str]) -> bool:
    parts = module.split(".")
    return any(".".join(parts[:i]) in modules for i in range(1, len(parts) + 1))


def _dangerous(module: str, name: str) -> bool:
    if f"{module}.{name}" in _DANGER_NAMES or _in_modules(module, _DANGER_MODULES):
        return True
    parts = name.split(".")
    if len(parts) > 1:
        # Protocol 4 resolves a dotted name attribute by attribute: torch + serialization.os.system is os.system,
        # and a dunder step (__globals__, __builtins__, __subclasses__) reaches anything.
        if any(p.startswith("__") and p.endswith("__") for p in parts):
            return True
        for i in range(len(parts) - 1):
            tail_module, tail_name = ".".join(parts[i:-1]), parts[-1]
            if f"{tail_module}.{tail_name}" in _DANGER_NAMES or _in_modules(tail_module, _DANGER_MODULES):
                return True
    return False


def _judge(module: str, name: str, *, torchscript: bool) -> str | None:
    """None when ``module.name`` is allowed, else the severity of importing it."""
    full = f"{module}.{name}"
    if full in ALLOWED_GLOBALS or any(p.fullmatch(full) for p in _ALLOWED_PATTERNS):
        return None
    if torchscript and full.startswith(_TORCHSCRIPT_PREFIXES):
        return None
    return "critical" if _dangerous(module, name) else "high"


_CONSTANT_OPS = frozenset(
    {
        *("INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT"),
        *("STRING", "BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"),
        *("UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"),
    }
)


@dataclass
class _Outcome:
    complete: bool
    value: Any = None
    error: str = ""
    offset: int = 0
    unverifiable: bool = False


class _Walker:
    """Walks one pickle's opcodes on a simulated stack, recording every global it imports; never unpickles.

    The simulation keeps what the checks need: string constants (so STACK_GLOBAL resolves through the memo like in
    fickling or modelscan), tuples, lists and dicts of them (so a joblib array wrapper's shape and dtype are known),
    which global every call goes to, and placeholders for everything else.
    """

    def __init__(self, ctx: _Ctx, tally: _Tally, *, member: str | None, depth: int, torchscript: bool):
        self.ctx = ctx
        self.tally = tally
        self.member = member
        self.depth = depth
        self.torchscript = torchscript
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}

    def run(self, f: BinaryIO) -> _Outcome:
        """Walk from the current position of ``f`` to the STOP opcode (``f`` is left just after it)."""
        pos = f.tell()
        try:
            for op, arg, pos in pickletools.genops(f):
                if op.name == "STOP":
                    return _Outcome(True, self.stack[-1] if self.stack else None)
                self.step(f, op.name, arg, pos)
        except (OSError, _BudgetExceeded):
            raise
        except _Unverifiable as exc:
            return _Outcome(False, error=str(exc), offset=pos, unverifiable=True)
        except Exception as exc:  # whatever genops or the simulation trips on: from here on it is not a valid pickle
            return _Outcome(False, error=str(exc) or type(exc).__name__, offset=pos)
        return _Outcome(False, error="no STOP opcode", offset=pos)  # pragma: no cover - genops raises first

    # -- stack helpers --------------------------------------------------------------------------------------------

    def pop(self) -> Any:
        if not self.stack:
            raise _SimError("stack underflow")
        return self.stack.pop()

    def top(self) -> Any:
        if not self.stack:
            raise _SimError("stack underflow")
        return self.stack[-1]

    def pop_mark(self) -> list[Any]:
        if not self.metastack:
            raise _SimError("no MARK on the stack")
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def push(self, value: Any) -> None:
        self.stack.append(value)

    # -- globals --------------------------------------------------------------------------------------------------

    def use(self, module: str, name: str, offset: int, *, call: bool) -> _Global:
        module, name = _map_name(module, name)
        full = f"{module}.{name}"
        if full == _JOBLIB_INLINE_WRAPPER:
            self.tally.joblib = True
        severity = _judge(module, name, torchscript=self.torchscript)
        if severity is not None:
            u = self.tally.uses.setdefault(full, _Use(severity, offset))
            u.count += 1
            u.calls += call
        return _Global(full)

    def called(self, func: Any) -> None:
        if isinstance(func, _Global) and func.full in self.tally.uses:
            self.tally.uses[func.full].calls += 1

    # -- opcodes --------------------------------------------------------------------------------------------------

    def step(self, f: BinaryIO, name: str, arg: Any, pos: int) -> None:
        if name in _CONSTANT_OPS:
            if isinstance(arg, (str, bytes, bytearray)):
                self.nested(arg, pos)
                if len(arg) > _KEEP_CONSTANT:
                    arg = _OPAQUE
            self.push(arg)
        elif name == "NONE":
            self.push(None)
        elif name in ("NEWTRUE", "NEWFALSE"):
            self.push(name == "NEWTRUE")
        elif name == "MARK":
            self.metastack.append(self.stack)
            self.stack = []
        elif name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
            self.memo[len(self.memo) if name == "MEMOIZE" else arg] = self.top()
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if arg not in self.memo:
                raise _SimError(f"memo key {arg} was never stored")
            self.push(self.memo[arg])
        elif name == "EMPTY_LIST":
            self.push([])
        elif name == "EMPTY_TUPLE":
            self.push(())
        elif name == "EMPTY_DICT":
            self.push(_Dict())
        elif name == "EMPTY_SET":
            self.push(_OPAQUE)
        elif name == "LIST":
            self.push(self.pop_mark())
        elif name == "TUPLE":
            self.push(tuple(self.pop_mark()))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            if len(self.stack) < n:
                raise _SimError("stack underflow")
            items = tuple(self.stack[-n:])
            del self.stack[-n:]
            self.push(items)
        elif name == "DICT":
            self.push(_Dict(_pairs(self.pop_mark())))
        elif name == "APPEND":
            value = self.pop()
            _extend(self.top(), [value])
        elif name == "APPENDS":
            items = self.pop_mark()
            _extend(self.top(), items)
        elif name == "SETITEM":
            value, key = self.pop(), self.pop()
            _extend(self.top(), [(key, value)])
        elif name == "SETITEMS":
            pairs = _pairs(self.pop_mark())
            _extend(self.top(), pairs)
        elif name == "ADDITEMS":
            self.pop_mark()
            self.top()
        elif name == "FROZENSET":
            self.pop_mark()
            self.push(_OPAQUE)
        elif name == "POP":
            if self.stack:
                self.stack.pop()
            else:
                self.pop_mark()
        elif name == "POP_MARK":
            self.pop_mark()
        elif name == "DUP":
            self.push(self.top())
        elif name == "GLOBAL":
            module, _, gname = arg.partition(" ")
            self.push(self.use(module, gname, pos, call=False))
        elif name == "STACK_GLOBAL":
            gname, module = self.pop(), self.pop()
            if isinstance(module, str) and isinstance(gname, str):
                self.push(self.use(module, gname, pos, call=False))
            else:
                # the real unpickler accepts only str operands, but which str cannot be known without running it
                self.tally.unresolved.append(pos)
                self.push(_OPAQUE)
        elif name == "INST":
            module, _, gname = arg.partition(" ")
            args = self.pop_mark()
            self.push(_Obj(self.use(module, gname, pos, call=True), tuple(args)))
        elif name == "OBJ":
            items = self.pop_mark()
            if not items:
                raise _SimError("OBJ without a class")
            self.called(items[0])
            self.push(_Obj(items[0], tuple(items[1:])))
        elif name == "REDUCE":
            args = self.pop()
            func = self.top()
            self.called(func)
            self.stack[-1] = _Obj(func, args)
        elif name in ("NEWOBJ", "NEWOBJ_EX"):
            if name == "NEWOBJ_EX":
                self.pop()  # keyword arguments
            args, cls = self.pop(), self.pop()
            self.called(cls)
            self.push(_Obj(cls, args))
        elif name == "BUILD":
            state = self.pop()
            obj = self.top()
            if isinstance(obj, _Obj):
                obj.state = state
                if _class_of(obj) == _JOBLIB_INLINE_WRAPPER:
                    self.skip_joblib_array(f, state)
        elif name in ("EXT1", "EXT2", "EXT4"):
            self.tally.extensions.append((arg, pos))
            self.push(_OPAQUE)
        elif name in ("PERSID", "NEXT_BUFFER"):
            self.push(_OPAQUE)  # resolved by the loader (torch: a storage), never an import
        elif name == "BINPERSID":
            self.pop()
            self.push(_OPAQUE)
        elif name in ("PROTO", "FRAME", "READONLY_BUFFER"):
            pass
        else:  # pragma: no cover - every opcode of protocol 5 is handled above
            raise _SimError(f"opcode {name} is not simulated")

    def nested(self, value: str | bytes | bytearray, pos: int) -> None:
        """Scan a constant that is itself a pickle, an archive or a compressed stream (``pickle.loads(b"...")``)."""
        if isinstance(value, str):
            try:
                head = value[:16].encode("latin-1")
            except UnicodeEncodeError:
                return
        else:
            head = bytes(value[:16])
        if not _sniff_nested(head):
            return
        data = value.encode("latin-1") if isinstance(value, str) else bytes(value)
        member = f"{self.ctx.base(self.member)}#bytes@{pos}"
        _scan_stream(self.ctx, io.BytesIO(data), name="", member=member, depth=self.depth + 1)

    def skip_joblib_array(self, f: BinaryIO, state: Any) -> None:
        """Step over the array joblib writes right after each NumpyArrayWrapper (raw bytes or a nested pickle)."""
        if not isinstance(state, _Dict):
            raise _Unverifiable("a NumpyArrayWrapper without its usual state")
        shape, dtype = state.get("shape"), state.get("dtype")
        if not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
            raise _Unverifiable(f"an array shape that cannot be read ({shape!r})")
        if _dtype_has_object(dtype):
            # object arrays are a complete pickle of their own, unpickled with the outer find_class
            outcome = _Walker(self.ctx, self.tally, member=self.member, depth=self.depth, torchscript=False).run(f)
            if not outcome.complete:
                raise _SimError(f"the pickle of an object array: {outcome.error}")
            return
        descr = dtype.args[0]
        dstate = dtype.state
        itemsize = dstate[5] if isinstance(dstate, tuple) and len(dstate) > 5 and type(dstate[5]) is int else -1
        if itemsize <= 0:  # fixed-size dtypes store -1 there
            try:
                import numpy as np

                itemsize = np.dtype(descr).itemsize
            except Exception as exc:  # TypeError/ValueError on a descr numpy does not know
                raise _Unverifiable(f"an array dtype {descr!r} numpy does not know") from exc
        if state.get("numpy_array_alignment_bytes", None) is not None:
            padding = f.read(1)
            if not padding:
                raise _SimError("the file ends inside a joblib array")
            f.seek(padding[0], io.SEEK_CUR)
        f.seek(math.prod(shape) * itemsize, io.SEEK_CUR)  # past the end: the next read fails as truncated


def _dtype_descr(dtype: Any) -> str:
    """The type string of a pickled ``numpy.dtype(descr, align, copy)`` call."""
    if (
        isinstance(dtype, _Obj)
        and isinstance(dtype.func, _Global)
        and dtype.func.full == "numpy.dtype"
        and isinstance(dtype.args, tuple)
        and dtype.args
        and isinstance(dtype.args[0], str)
    ):
        return dtype.args[0]
    raise _Unverifiable("an array dtype that cannot be read")


def _dtype_has_object(dtype: Any, depth: int = 0) -> bool:
    """numpy's ``dtype.hasobject`` on a pickled dtype: an object type, or one inside a subarray or a field.

    The dtype state is ``(version, byteorder, subarray, names, fields, itemsize, alignment, flags)``.
    """
    if depth > 8:
        raise _Unverifiable("an array dtype nested too deep")
    if _dtype_descr(dtype).startswith("O"):
        return True
    state = dtype.state
    if not isinstance(state, tuple) or len(state) < 5:
        return False
    subarray, fields = state[2], state[4]
    if isinstance(subarray, tuple) and subarray and _dtype_has_object(subarray[0], depth + 1):
        return True
    if isinstance(fields, _Dict):
        return any(isinstance(v, tuple) and v and _dtype_has_object(v[0], depth + 1) for _, v in fields.items)
    return False


def _pairs(items: list[Any]) -> list[tuple[Any, Any]]:
    if len(items) % 2:
        raise _SimError("odd number of items for a dict")
    return list(zip(items[::2], items[1::2], strict=True))


def _extend(target: Any, items: list[Any]) -> None:
    """APPEND(S)/SETITEM(S) on a tracked container, up to a size that keeps memory flat."""
    if isinstance(target, list) and len(target) < _KEEP_CONSTANT:
        target.extend(items)
    elif isinstance(target, _Dict) and len(target.items) < _KEEP_CONSTANT:
        target.items.extend(items)
    elif isinstance(target, (tuple, str, bytes, int, float)) or target is None:
        raise _SimError(f"cannot add items to a {type(target).__name__}")


def _class_of(obj: _Obj) -> str | None:
    """The class an object was made from (protocols 0 and 1 go through copyreg._reconstructor)."""
    if not isinstance(obj.func, _Global):
        return None
    if obj.func.full == "copyreg._reconstructor" and isinstance(obj.args, tuple) and obj.args:
        first = obj.args[0]
        return first.full if isinstance(first, _Global) else None
    return obj.func.full


def _scan_pickles(ctx: _Ctx, f: BinaryIO, *, member: str | None, depth: int, strict: bool, torchscript: bool) -> None:
    """Scan the pickles of a stream one after another and report each global once for the stream.

    Args:
        strict: the stream must be a pickle (named like one): a first pickle that does not parse to its STOP is a
            finding. Otherwise the content only started like a pickle: when it does not parse it is taken for data,
            and only critical globals seen before the failure are kept (random bytes do not spell ``os.system``).
    """
    at = len(ctx.findings)
    total = _Tally()
    failure: Finding | None = None
    index, legacy = 0, False
    while True:
        # torch's legacy format is five pickles (magic number, protocol, sys info, the object, storage keys)
        # followed by raw storages; a plain pickle file is one pickle, and a loader reads no further
        required = strict and (index == 0 or (legacy and index < _TORCH_LEGACY_PICKLES))
        start = f.tell()
        tally = _Tally()
        outcome = _Walker(ctx, tally, member=member, depth=depth, torchscript=torchscript).run(f)
        total.merge(tally, only_critical=not (outcome.complete or required))
        if not outcome.complete:
            if required:
                failure = _failure(ctx, member, outcome, start)
            break
        if index == 0 and type(outcome.value) is int and outcome.value == _TORCH_LEGACY_MAGIC:
            legacy = True
        index += 1
        head = _peek(f, 2)
        if legacy and index < _TORCH_LEGACY_PICKLES:
            if not head and strict:
                failure = _failure(ctx, member, _Outcome(False, error="the file ends", offset=start), start)
                break
            continue
        if not _looks_like_pickle(head):
            break
    if total.joblib and ctx.fmt == "pickle":
        ctx.fmt = "joblib"
    found = _tally_findings(ctx, total, member)
    if failure is not None:
        found.append(failure)
    ctx.findings[at:at] = found


def _finding(ctx: _Ctx, code: str, severity: str, message: str, member: str | None, **details: Any) -> Finding:
    details.setdefault("format", ctx.fmt)
    details.setdefault("hint", CONVERT_HINT[ctx.fmt])
    return Finding(
        check="scan", code=code, severity=severity, message=message, file=str(ctx.path), member=member, details=details
    )


def _failure(ctx: _Ctx, member: str | None, outcome: _Outcome, start: int) -> Finding:
    if outcome.unverifiable:
        return _finding(
            ctx,
            "unverifiable-joblib",
            "medium",
            f"joblib file with {outcome.error} at byte {outcome.offset}: the rest of the file cannot be located, "
            "so it was not verified",
            member,
            offset=outcome.offset,
        )
    return _finding(
        ctx,
        "unparseable-pickle",
        "medium",
        f"pickle cannot be parsed to its end ({outcome.error}; pickle starts at byte {start}): what follows byte "
        f"{outcome.offset} was not verified",
        member,
        offset=outcome.offset,
        error=outcome.error,
    )


def _tally_findings(ctx: _Ctx, tally: _Tally, member: str | None) -> list[Finding]:
    out = []
    for full, u in tally.uses.items():
        verb = "is called" if u.calls else "is imported"
        out.append(
            _finding(
                ctx,
                "unsafe-global" if u.severity == "critical" else "unknown-global",
                u.severity,
                f"{full} {verb} when this pickle is loaded (not on the allowlist of checkpoint globals)",
                member,
                # a memoized global is imported once and then called many times: count the larger
                **{"global": full, "count": max(u.count, u.calls), "imports": u.count, "calls": u.calls},
                offset=u.offset,
            )
        )
    if tally.unresolved:
        out.append(
            _finding(
                ctx,
                "unresolvable-global",
                "high",
                f"STACK_GLOBAL imports a name computed while loading, which cannot be checked without running the "
                f"pickle ({len(tally.unresolved)}x, first at byte {tally.unresolved[0]})",
                member,
                count=len(tally.unresolved),
                offset=tally.unresolved[0],
            )
        )
    if tally.extensions:
        codes = sorted({c for c, _ in tally.extensions})
        out.append(
            _finding(
                ctx,
                "extension-global",
                "high",
                f"imports globals by copyreg extension code {', '.join(map(str, codes[:5]))}: whatever the loading "
                "process registered under that code is called, which cannot be checked",
                member,
                codes=codes[:50],
                count=len(tally.extensions),
                offset=tally.extensions[0][1],
            )
        )
    return out
