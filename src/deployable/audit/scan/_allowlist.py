"""The allowlist of globals checkpoints need, the danger list, and the judgement of one global."""

from __future__ import annotations

import _compat_pickle
import re

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
