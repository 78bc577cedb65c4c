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

from deployable.audit.scan._allowlist import ALLOWED_GLOBALS
from deployable.audit.scan._kinds import (
    CONVERT_HINT,
    MAX_DEPTH,
    MAX_EXPANDED_BYTES,
    MAX_RATIO,
    convert_hint,
    is_model_file,
)
from deployable.audit.scan._scan import ScanReport, scan_file, scan_paths

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
