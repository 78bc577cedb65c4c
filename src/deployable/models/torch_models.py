"""PyTorch-backed predictors: transformers, sentence-transformers + head, nn.Module factories, TorchScript."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import numpy as np

from deployable.core._imports import require
from deployable.core.errors import ModelError
from deployable.models.base import ForwardOutput, Predictor, as_float_batch
from deployable.models.text import (
    load_tokenizer,
    pooling_config,
    quiet_transformers,
    read_head,
    run_by_length,
    tokenize,
)


class _TorchPredictor(Predictor):
    """Runs a module under ``torch.inference_mode``; captures the penultimate features with a hook."""

    module: Any
    _captured: Any = None

    def set_threads(self, n: int) -> None:
        torch = require("torch", feature="PyTorch models")
        torch.set_num_threads(max(1, int(n)))

    def _hook_input_of(self, layer: Any) -> None:
        def hook(_module: Any, args: tuple[Any, ...]) -> None:
            x = args[0]
            self._captured = x[:, 0] if x.dim() == 3 else x.flatten(1)

        layer.register_forward_pre_hook(hook)

    def _features(self) -> np.ndarray | None:
        if self._captured is None:
            return None
        out = self._captured.float().cpu().numpy()
        self._captured = None
        return out


class TransformersPredictor(_TorchPredictor):
    """AutoModelForSequenceClassification + AutoTokenizer from one folder."""

    def __init__(self, path: Path, *, max_length: int = 256):
        torch = require("torch", feature="transformers models")
        transformers = quiet_transformers()
        self.torch = torch
        self.spec = {"type": "transformers", "path": str(path), "max_length": max_length}
        self.files = (path,)
        self.max_length = max_length
        self.tokenizer = load_tokenizer(path)
        try:
            self.module = transformers.AutoModelForSequenceClassification.from_pretrained(
                str(path), local_files_only=True
            ).eval()
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: cannot load a sequence-classification model ({exc})") from exc
        id2label = getattr(self.module.config, "id2label", None) or {}
        names = tuple(str(id2label[i]) for i in sorted(id2label))
        self.label_names = None if all(n.startswith("LABEL_") for n in names) else names
        head = getattr(self.module, "classifier", None) or getattr(self.module, "score", None)
        if head is not None:
            self._hook_input_of(head)

    def forward(self, batch: Any) -> ForwardOutput:
        return run_by_length(tokenize(self.tokenizer, batch, self.max_length, framework="pt"), self._run)

    def _run(self, enc: dict[str, Any]) -> ForwardOutput:
        with self.torch.inference_mode():
            logits = self.module(**enc).logits
        return ForwardOutput(logits.float().numpy(), self._features())


class SentenceEncoder:
    """A sentence-transformers folder (transformer, pooling, normalize) run with transformers alone.

    Pooling mode and normalization are read from the folder's ``modules.json``, so embeddings equal what
    sentence-transformers computes for the same folder.
    """

    def __init__(self, folder: Path, *, max_length: int = 128):
        self.torch = require("torch", feature="sentence-transformers models")
        transformers = quiet_transformers()
        self.folder = folder
        self.max_length = max_length
        self.tokenizer = load_tokenizer(folder)
        try:
            self.module = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
        except (OSError, ValueError) as exc:
            raise ModelError(f"{folder}: cannot load a transformer encoder ({exc})") from exc
        self.pooling = pooling_config(folder)
        self.dim = int(self.module.config.hidden_size)

    def embed(self, texts: list[str]) -> Any:
        """Sentence embeddings (B, H) as a torch tensor."""
        return self.embed_encoded(tokenize(self.tokenizer, texts, self.max_length, framework="pt"))

    def embed_encoded(self, enc: dict[str, Any]) -> Any:
        """Sentence embeddings (B, H) of an already tokenized batch."""
        with self.torch.inference_mode():
            hidden = self.module(**enc).last_hidden_state
            return pool_torch(self.torch, hidden, enc["attention_mask"], **self.pooling)

    def embed_all(self, texts: list[str], *, batch_size: int = 32) -> np.ndarray:
        """Embeddings (N, H) float32 in input order, batched by length to keep padding small."""
        from deployable.evaluation.batching import iter_batches

        out = np.empty((len(texts), self.dim), np.float32)
        for index, batch in iter_batches(list(texts), batch_size):
            out[index] = self.embed(batch).float().numpy()
        return out


class SentenceEncoderPredictor(_TorchPredictor):
    """A sentence encoder plus a safetensors classification head; the embedding is the penultimate feature."""

    def __init__(self, encoder: Path, head: Path, *, max_length: int = 128):
        self.spec = {
            "type": "sentence-transformers",
            "encoder": str(encoder),
            "head": str(head),
            "max_length": max_length,
        }
        self.files = (encoder, head)
        self.encoder = SentenceEncoder(encoder, max_length=max_length)
        self.torch = self.encoder.torch
        self.module = self.encoder.module
        tensors, self.label_names = read_head(head)
        self.head = build_head_module(self.torch, tensors)
        if self.head[0].in_features != self.encoder.dim:
            raise ModelError(
                f"{head}: the head expects {self.head[0].in_features} features but the encoder gives "
                f"{self.encoder.dim} (train the head on this encoder's embeddings)"
            )

    def forward(self, batch: Any) -> ForwardOutput:
        enc = tokenize(self.encoder.tokenizer, batch, self.encoder.max_length, framework="pt")
        return run_by_length(enc, self._run)

    def _run(self, enc: dict[str, Any]) -> ForwardOutput:
        emb = self.encoder.embed_encoded(enc)
        with self.torch.inference_mode():
            logits = self.head(emb)
        return ForwardOutput(logits.float().numpy(), emb.float().numpy())


def pool_torch(torch: Any, hidden: Any, mask: Any, mode: str, normalize: bool) -> Any:
    if mode == "cls":
        out = hidden[:, 0]
    elif mode == "max":
        out = hidden.masked_fill(mask[..., None] == 0, -1e9).max(dim=1).values
    else:
        m = mask[..., None].to(hidden.dtype)
        out = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(out, p=2, dim=1) if normalize else out


def build_head_module(torch: Any, tensors: dict[str, np.ndarray]) -> Any:
    """The head as an nn.Sequential: [Linear] or [Linear, ReLU, Linear]."""
    layers = []
    if "hidden.weight" in tensors:
        w = tensors["hidden.weight"]
        layers += [torch.nn.Linear(w.shape[1], w.shape[0]), torch.nn.ReLU()]
        layers[0].weight.data = torch.from_numpy(np.array(w))
        layers[0].bias.data = torch.from_numpy(np.array(tensors["hidden.bias"]))
    w = tensors["weight"]
    out = torch.nn.Linear(w.shape[1], w.shape[0])
    out.weight.data = torch.from_numpy(np.array(w))
    out.bias.data = torch.from_numpy(np.array(tensors["bias"]))
    return torch.nn.Sequential(*layers, out).eval()


def import_factory(ref: str, base_dir: Path) -> Any:
    """Resolve 'package.module:callable', with the config's folder importable."""
    if ":" not in ref:
        raise ModelError(
            f"model.factory: expected 'module:callable', found '{ref}'",
            hint="for example 'model:SmallCNN' for SmallCNN in model.py next to the config",
        )
    mod_name, attr = ref.split(":", 1)
    if str(base_dir) not in sys.path:
        sys.path.insert(0, str(base_dir))
    try:
        module = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ModelError(
            f"model.factory: cannot import module '{mod_name}' ({exc})",
            hint=f"put {mod_name.replace('.', '/')}.py next to the config or install it",
        ) from exc
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelError(f"model.factory: module '{mod_name}' has no attribute '{attr}'")
        obj = getattr(obj, part)
    return obj


class ModulePredictor(_TorchPredictor):
    """``factory(**kwargs)`` -> nn.Module with a safetensors state dict. Inputs: float arrays (B, ...)."""

    def __init__(
        self,
        factory: str,
        weights: Path,
        *,
        kwargs: dict[str, Any] | None = None,
        feature_layer: str | None = None,
        base_dir: Path,
        allow_unsafe_files: bool = False,
    ):
        torch = require("torch", feature="PyTorch models")
        st = require("safetensors.torch", feature="PyTorch models")
        self.torch = torch
        self.spec = {
            "type": "pytorch",
            "factory": factory,
            "weights": str(weights),
            "kwargs": dict(kwargs or {}),
            "feature_layer": feature_layer,
            "base_dir": str(base_dir),
        }
        module_file = _module_file(factory, base_dir)
        self.files = (weights,) + ((module_file,) if module_file else ())
        build = import_factory(factory, base_dir)
        self.module = build(**(kwargs or {}))
        self.spec["allow_unsafe_files"] = allow_unsafe_files
        state = read_state_dict(torch, st, weights, allow_unsafe=allow_unsafe_files)
        try:
            self.module.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0] if str(exc) else "state dict mismatch"
            raise ModelError(
                f"{weights}: weights do not fit '{factory}': {first}", hint="check model.kwargs or the weights file"
            ) from exc
        self.module.eval()
        layer = self._find_layer(feature_layer)
        if layer is not None:
            self._hook_input_of(layer)

    def _find_layer(self, name: str | None) -> Any:
        modules = dict(self.module.named_modules())
        if name is not None:
            if name not in modules:
                from deployable.core.errors import did_you_mean

                raise ModelError(f"model.feature_layer: no module named '{name}'", hint=did_you_mean(name, modules))
            return modules[name]
        linears = [m for m in modules.values() if isinstance(m, self.torch.nn.Linear)]
        return linears[-1] if linears else None

    def forward(self, batch: Any) -> ForwardOutput:
        x = self.torch.from_numpy(as_float_batch(batch))
        with self.torch.inference_mode():
            logits = self.module(x)
        return ForwardOutput(logits.float().numpy(), self._features())


def read_state_dict(torch: Any, st: Any, weights: Path, *, allow_unsafe: bool = False) -> dict[str, Any]:
    """A state dict from safetensors, or from a torch checkpoint the scan has already passed.

    Pickled checkpoints are read with ``weights_only=True`` (torch's restricted unpickler) even after a clean scan;
    only ``allow_unsafe`` (``model.allow_unsafe_files``) reads them with the full unpickler. A Lightning-style
    checkpoint's ``state_dict`` entry is used when the file holds one.
    """
    if weights.suffix == ".safetensors":
        try:
            return st.load_file(str(weights))
        except Exception as exc:  # safetensors raises its own error types
            raise ModelError(f"{weights}: not a readable safetensors file ({exc})") from exc
    try:
        obj = torch.load(str(weights), map_location="cpu", weights_only=not allow_unsafe)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for a bad file
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(
            f"model.weights: cannot read '{weights}' as a state dict ({first})",
            hint="save it with torch.save(model.state_dict(), path) or, better, safetensors.torch.save_file",
        ) from exc
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(
            f"model.weights: '{weights}' holds a {type(obj).__name__}, not a state dict of tensors",
            hint="save model.state_dict(), not the module",
        )
    return obj


def _module_file(factory: str, base_dir: Path) -> Path | None:
    rel = Path(*factory.split(":", 1)[0].split("."))
    for cand in (base_dir / rel.with_suffix(".py"), base_dir / rel / "__init__.py"):
        if cand.is_file():
            return cand
    return None


class TorchScriptPredictor(_TorchPredictor):
    def __init__(self, path: Path):
        torch = require("torch", feature="TorchScript models")
        self.torch = torch
        self.spec = {"type": "torchscript", "path": str(path)}
        self.files = (path,)
        try:
            self.module = torch.jit.load(str(path), map_location="cpu").eval()
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"{path}: not a loadable TorchScript file ({str(exc).splitlines()[0]})") from exc

    def forward(self, batch: Any) -> ForwardOutput:
        x = self.torch.from_numpy(as_float_batch(batch))
        with self.torch.inference_mode():
            logits = self.module(x)
        return ForwardOutput(logits.float().numpy(), None)
