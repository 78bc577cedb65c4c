"""Export a torch-backed predictor to ONNX with dynamic batch (and sequence) axes, then prove parity.

The graph outputs ``logits`` and, where the source exposes them, the penultimate ``features``, so an exported
variant feeds every metric the source feeds. Transformers are re-loaded with eager attention for export: the
fused scaled-dot-product path traces its padding mask as a constant and gives wrong logits on other batches.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deployable.core._imports import require
from deployable.core.errors import DeployableError, ModelError
from deployable.models.base import Predictor

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class Parity:
    """Exported graph against its torch source on the same real inputs."""

    n: int
    max_abs_diff: float
    agreement: float
    allowed_abs_diff: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.allowed_abs_diff and self.agreement == 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "max_abs_diff": self.max_abs_diff,
            "agreement": self.agreement,
            "allowed_abs_diff": self.allowed_abs_diff,
        }


def _graph_module(predictor: Predictor) -> tuple[Any, list[str], dict[str, Any]]:
    """A torch module returning (logits, features), its input names, and the spec fields of the ONNX variant."""
    torch = require("torch", feature="ONNX export")
    from deployable.models import torch_models as tm

    if isinstance(predictor, tm.SentenceEncoderPredictor):
        transformers = tm.quiet_transformers()
        encoder = transformers.AutoModel.from_pretrained(
            str(predictor.encoder.folder), local_files_only=True, attn_implementation="eager"
        ).eval()
        pooling, head = predictor.encoder.pooling, predictor.head
        names = [n for n in TEXT_INPUTS if n in predictor.encoder.tokenizer.model_input_names]

        class SentenceGraph(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.encoder, self.head = encoder, head

            def forward(self, *inputs: Any) -> Any:
                kw = dict(zip(names, inputs, strict=True))
                hidden = self.encoder(**kw).last_hidden_state
                emb = tm.pool_torch(torch, hidden, kw["attention_mask"], **pooling)
                return self.head(emb), emb

        spec = {"tokenizer": str(predictor.encoder.folder), "max_length": predictor.encoder.max_length}
        return SentenceGraph().eval(), names, spec

    if isinstance(predictor, tm.TransformersPredictor):
        transformers = tm.quiet_transformers()
        path = Path(predictor.spec["path"])
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            str(path), local_files_only=True, attn_implementation="eager"
        ).eval()
        names = [n for n in TEXT_INPUTS if n in predictor.tokenizer.model_input_names]
        head = getattr(model, "classifier", None) or getattr(model, "score", None)

        class ClassifierGraph(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model
                self.captured: Any = None
                if head is not None:
                    head.register_forward_pre_hook(self._capture)

            def _capture(self, _m: Any, args: tuple[Any, ...]) -> None:
                x = args[0]
                self.captured = x[:, 0] if x.dim() == 3 else x

            def forward(self, *inputs: Any) -> Any:
                logits = self.model(**dict(zip(names, inputs, strict=True))).logits
                return (logits, self.captured) if self.captured is not None else logits

        return ClassifierGraph().eval(), names, {"tokenizer": str(path), "max_length": predictor.max_length}

    if isinstance(predictor, (tm.ModulePredictor, tm.TorchScriptPredictor)):
        inner = predictor.module
        layer = (
            predictor._find_layer(predictor.spec.get("feature_layer"))
            if isinstance(predictor, tm.ModulePredictor)
            else None
        )

        class ArrayGraph(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = inner
                self.captured: Any = None
                if layer is not None:
                    layer.register_forward_pre_hook(self._capture)

            def _capture(self, _m: Any, args: tuple[Any, ...]) -> None:
                self.captured = args[0].flatten(1)

            def forward(self, x: Any) -> Any:
                logits = self.inner(x)
                return (logits, self.captured) if self.captured is not None else logits

        return ArrayGraph().eval(), ["x"], {}

    raise ModelError(
        f"model: a '{predictor.spec['type']}' model cannot be exported to ONNX by deployable",
        hint="export it yourself and use model.type: onnx",
    )


def _example_inputs(predictor: Predictor, names: list[str], sample: Any) -> tuple[Any, ...]:
    torch = require("torch", feature="ONNX export")
    from deployable.models.text import tokenize

    if names == ["x"]:
        return (torch.from_numpy(np.ascontiguousarray(np.asarray(sample, dtype=np.float32))),)
    tokenizer = predictor.encoder.tokenizer if hasattr(predictor, "encoder") else predictor.tokenizer
    enc = tokenize(tokenizer, list(sample), 64, framework="pt")
    return tuple(enc[n] for n in names)


_UNSUPPORTED = re.compile(r"operator '([^']+)'")


def export_onnx(
    predictor: Predictor, path: Path, *, sample: Any, opset: int = 17, label_names: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """Write ``path`` (an ONNX graph) for ``predictor`` and return the ONNX variant's spec.

    Args:
        predictor: a torch-backed predictor (transformers, sentence-transformers + head, PyTorch module).
        path: where to write the graph.
        sample: a few real inputs (texts or an array batch) to trace with; batches of other sizes and, for text,
            other lengths run through the same graph (dynamic axes).
        opset: ONNX opset.
        label_names: stored in the graph's metadata, so the graph knows its classes.

    Raises:
        DeployableError: an operator has no ONNX export at this opset (named in the message).
    """
    torch = require("torch", feature="ONNX export")
    onnx = require("onnx", feature="ONNX export")
    module, names, spec = _graph_module(predictor)
    example = _example_inputs(predictor, names, sample)
    with torch.inference_mode():
        outputs = module(*example)
    output_names = ["logits", "features"] if isinstance(outputs, tuple) else ["logits"]
    axes = {n: ({0: "batch", 1: "sequence"} if n != "x" else {0: "batch"}) for n in names}
    axes.update({o: {0: "batch"} for o in output_names})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                example,
                str(tmp),
                input_names=names,
                output_names=output_names,
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
            )
    except Exception as exc:  # torch raises several exporter error types
        tmp.unlink(missing_ok=True)
        match = _UNSUPPORTED.search(str(exc))
        if match and "not supported" in str(exc):
            raise DeployableError(
                f"model: operator '{match.group(1)}' cannot be exported to ONNX opset {opset}",
                hint="raise optimize.opset, or replace that operator in the model",
            ) from exc
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DeployableError(f"model: export to ONNX failed: {first}") from exc
    model = onnx.load(str(tmp))
    if label_names:
        entry = model.metadata_props.add()
        entry.key, entry.value = "labels", json.dumps(list(label_names))
    onnx.save(model, str(tmp))
    tmp.replace(path)
    return {
        "type": "onnx",
        "path": str(path),
        "tokenizer": spec.get("tokenizer"),
        "max_length": spec.get("max_length", 256),
        "pooling": "none",
        "head": None,
    }


def check_parity(
    reference: Predictor, exported: Predictor, inputs: Any, *, batch_size: int = 16, rtol: float = 1e-3
) -> Parity:
    """Max |logit difference| and top-1 agreement of ``exported`` against ``reference`` on real ``inputs``.

    Batches of several sizes and (for text) mixed lengths are used on purpose: a graph that traced a shape as a
    constant passes on the tracing batch and fails here.
    """
    from deployable.evaluation.batching import iter_batches

    batches = [batch for _, batch in iter_batches(inputs, batch_size)] + [inputs[:1], inputs[:3]]
    ref = np.concatenate([reference.forward(b).logits for b in batches])
    out = np.concatenate([exported.forward(b).logits for b in batches])
    scale = max(1.0, float(np.abs(ref).max()))
    return Parity(
        n=len(inputs),
        max_abs_diff=float(np.abs(out - ref).max()),
        agreement=float((out.argmax(1) == ref.argmax(1)).mean()),
        allowed_abs_diff=rtol * scale,
    )
