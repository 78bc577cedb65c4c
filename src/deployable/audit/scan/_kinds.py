"""Limits, conversion hints and file kinds: what a file is, judged by its first bytes and its name."""

from __future__ import annotations

import os
from pathlib import Path

from deployable.core.records import Finding

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
