"""Model-source plugins: a config section (or a Variant's spec) -> Predictor."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from deployable.config import (
    OnnxModel,
    Project,
    PyTorchModel,
    SentenceTransformersModel,
    TorchScriptModel,
    TransformersModel,
)
from deployable.core.errors import ModelError
from deployable.core.hashing import sha256_files, total_size
from deployable.core.plugins import get_plugin, register
from deployable.core.records import Variant
from deployable.models.base import Predictor


def resolve_model_path(value: str, base_dir: Path) -> Path:
    """A path from the config; 'package:<module>/<sub/path>' points inside an installed Python package."""
    if value.startswith("package:"):
        ref = value[len("package:") :]
        module, _, sub = ref.partition("/")
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(
                f"model: Python package '{module}' is not installed (from '{value}')",
                hint=f"pip install {module.replace('_', '-')}",
            )
        path = Path(next(iter(spec.submodule_search_locations))) / sub
    else:
        path = Path(value).expanduser()
        path = path if path.is_absolute() else base_dir / path
    if not path.exists():
        raise ModelError(f"model: '{value}' does not exist (resolved to {path})")
    return path.resolve()


@register("model", config=TransformersModel)
def _transformers(spec: dict[str, Any]) -> Predictor:
    from deployable.models.torch_models import TransformersPredictor

    return TransformersPredictor(Path(spec["path"]), max_length=spec.get("max_length", 256))


@register("model", config=SentenceTransformersModel)
def _sentence(spec: dict[str, Any]) -> Predictor:
    from deployable.models.torch_models import SentenceEncoderPredictor

    return SentenceEncoderPredictor(Path(spec["encoder"]), Path(spec["head"]), max_length=spec.get("max_length", 128))


@register("model", config=PyTorchModel)
def _pytorch(spec: dict[str, Any]) -> Predictor:
    from deployable.models.torch_models import ModulePredictor

    return ModulePredictor(
        spec["factory"],
        Path(spec["weights"]),
        kwargs=spec.get("kwargs"),
        feature_layer=spec.get("feature_layer"),
        base_dir=Path(spec["base_dir"]),
        allow_unsafe_files=spec.get("allow_unsafe_files", False),
    )


@register("model", config=TorchScriptModel)
def _torchscript(spec: dict[str, Any]) -> Predictor:
    from deployable.models.torch_models import TorchScriptPredictor

    return TorchScriptPredictor(Path(spec["path"]))


@register("model", config=OnnxModel)
def _onnx(spec: dict[str, Any]) -> Predictor:
    from deployable.models.onnx_model import OnnxPredictor

    tok = spec.get("tokenizer")
    head = spec.get("head")
    return OnnxPredictor(
        Path(spec["path"]),
        tokenizer=Path(tok) if tok else None,
        max_length=spec.get("max_length", 256),
        pooling=spec.get("pooling", "none"),
        head=Path(head) if head else None,
        threads=spec.get("threads", 0),
    )


PATH_KEYS = ("path", "encoder", "head", "weights", "tokenizer")  # spec keys that name files or folders


def model_spec(project: Project) -> dict[str, Any]:
    """The model config with every path made absolute, so any process can rebuild the predictor."""
    return resolve_spec(project.model.model_dump(), Path(project.base_dir))


def resolve_spec(section: dict[str, Any], base: Path) -> dict[str, Any]:
    """A model section (as under ``model:``) with its paths resolved against ``base``."""
    spec = dict(section)
    for key in PATH_KEYS:
        if spec.get(key):
            spec[key] = str(resolve_model_path(spec[key], base))
    if spec["type"] == "pytorch":
        spec["base_dir"] = str(base)
    return spec


def load_predictor(spec: dict[str, Any]) -> Predictor:
    """Build the predictor a spec describes (a config section with absolute paths, or ``Variant.spec``)."""
    factory = get_plugin("model", spec["type"], field="model.type")
    return factory(spec)


def source_variant(predictor: Predictor, name: str = "source") -> Variant:
    """The record of the model as the user gave it: the root of every variant's lineage."""
    return Variant(
        name=name,
        kind=predictor.spec["type"],
        files=tuple(str(f) for f in predictor.files),
        sha256=sha256_files(predictor.files),
        size_bytes=total_size(predictor.files),
        spec=dict(predictor.spec),
        parent=None,
        recipe={"recipe": "source"},
    )
