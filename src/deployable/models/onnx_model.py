"""ONNX models in an onnxruntime session, with threads set by the target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deployable.core._imports import require
from deployable.core.errors import ModelError
from deployable.models.base import ForwardOutput, Predictor, as_float_batch
from deployable.models.text import head_numpy, load_tokenizer, pool_numpy, read_head, run_by_length, tokenize


class OnnxPredictor(Predictor):
    """An onnxruntime ``InferenceSession``.

    Text graphs take ``input_ids``/``attention_mask`` (and ``token_type_ids`` when declared). An output named
    ``logits`` (else the first output) gives the logits; one named ``features`` gives penultimate features.
    Encoder-only graphs (``pooling`` + ``head``) output token states that are pooled and sent through the head.
    """

    def __init__(
        self,
        path: Path,
        *,
        tokenizer: Path | None = None,
        max_length: int = 256,
        pooling: str = "none",
        head: Path | None = None,
        threads: int = 0,
    ):
        self.ort = require("onnxruntime", feature="ONNX models")
        self.spec = {
            "type": "onnx",
            "path": str(path),
            "tokenizer": str(tokenizer) if tokenizer else None,
            "max_length": max_length,
            "pooling": pooling,
            "head": str(head) if head else None,
        }
        self.path = path
        self.files = tuple(p for p in (path, head) if p is not None)
        self.max_length = max_length
        self.tokenizer = load_tokenizer(tokenizer) if tokenizer else None
        self.pooling = pooling
        self.head, self.label_names = read_head(head) if head else (None, None)
        self.normalize = False
        if pooling != "none" and tokenizer is not None:
            from deployable.models.text import pooling_config

            self.normalize = pooling_config(tokenizer)["normalize"]
        self._open(threads)

    def _open(self, threads: int) -> None:
        opts = self.ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.execution_mode = self.ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self.session = self.ort.InferenceSession(
                str(self.path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{self.path}: onnxruntime cannot load this model ({str(exc).splitlines()[0]})") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        if self.head is None and "labels" in meta:  # written by deployable's exporter
            import json

            self.label_names = tuple(json.loads(meta["labels"]))
        self.input_names = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        self.logits_name = "logits" if "logits" in outputs else outputs[0]
        self.output_names = [self.logits_name] + (["features"] if "features" in outputs else [])
        if self.tokenizer is None and len(self.input_names) != 1:
            raise ModelError(
                f"{self.path}: the graph has inputs {self.input_names}; text graphs need "
                "model.tokenizer, others need exactly one input"
            )

    def set_threads(self, n: int) -> None:
        self._open(n)

    def feed(self, batch: Any) -> dict[str, np.ndarray]:
        """The graph's input arrays for a batch of raw inputs (tokenized text, or one float array)."""
        if self.tokenizer is not None:
            enc = tokenize(self.tokenizer, batch, self.max_length, framework="np")
            feed = {k: np.asarray(enc[k], dtype=np.int64) for k in self.input_names if k in enc}
            missing = set(self.input_names) - set(feed)
            if missing:
                raise ModelError(f"{self.path}: graph input(s) {sorted(missing)} are not produced by the tokenizer")
            return feed
        return {self.input_names[0]: as_float_batch(batch)}

    def forward(self, batch: Any) -> ForwardOutput:
        feed = self.feed(batch)
        if self.tokenizer is not None:
            return run_by_length(feed, self._run)
        return self._run(feed)

    def _run(self, feed: dict[str, np.ndarray]) -> ForwardOutput:
        out = self.session.run(self.output_names, feed)
        if self.pooling != "none":
            emb = pool_numpy(out[0], feed["attention_mask"], self.pooling, self.normalize)
            logits = head_numpy(self.head, emb) if self.head is not None else emb
            return ForwardOutput(logits.astype(np.float32), emb)
        features = out[1].astype(np.float32) if len(out) > 1 else None
        return ForwardOutput(np.asarray(out[0], dtype=np.float32), features)
