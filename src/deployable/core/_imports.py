"""Optional imports that fail with the exact install command."""

from __future__ import annotations

import importlib
from types import ModuleType

from deployable.core.errors import MissingDependencyError

# module -> extra of the deployable package that provides it
_EXTRAS = {
    "torch": "torch",
    "safetensors": "torch",
    "transformers": "text",
    "tokenizers": "text",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "PIL": "image",
}


def require(module: str, *, feature: str) -> ModuleType:
    """Import ``module`` or raise a :class:`MissingDependencyError` naming the install command.

    Args:
        module: importable module name, e.g. ``"onnxruntime"``.
        feature: what the user asked for that needs it, for the message.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = _EXTRAS.get(module.split(".")[0])
        command = f"pip install 'deployable[{extra}]'" if extra else f"pip install {module.split('.')[0]}"
        raise MissingDependencyError(
            f"{feature} needs the Python package '{module.split('.')[0]}', which is not installed ({exc})",
            hint=f"install it with: {command} -c constraints.txt",
        ) from exc
