"""INT8 (dynamic and static QDQ) and FP16 variants of an ONNX graph, with onnxruntime's quantization tools.

Quantizers follow scikit-learn's habit: the constructor stores options, ``fit`` learns (activation ranges,
per-node sensitivity, the nodes to keep in float), and ``transform`` writes the quantized graph.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deployable.core._imports import require

# Ops whose weights are worth quantizing; everything else stays in float. Dynamic quantization also handles the
# fused transformer Attention op (its packed QKV projection); static QDQ does not.
DYNAMIC_OPS = ("MatMul", "Gemm", "Conv", "Attention", "Gather")  # Gather: embedding tables, most of a text model
STATIC_OPS = ("MatMul", "Gemm", "Conv")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # onnxruntime's quantizer logs a pre-processing suggestion on the root logger at every call, and its histogram
    # calibration prints its progress to stdout
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            yield
    finally:
        root.setLevel(level)


def _tensor_type_options(onnx: Any) -> dict[str, Any]:
    # contrib ops (fused Attention, SkipLayerNormalization) defeat ONNX shape inference; float is their type
    return {"DefaultTensorType": onnx.TensorProto.FLOAT}


@dataclass
class DynamicInt8Quantizer:
    """INT8 weights; activations quantized per batch at run time (``onnxruntime.quantization.quantize_dynamic``).

    Args:
        per_channel: one weight scale per output channel instead of one per tensor.
        reduce_range: 7-bit weights (for CPUs without VNNI, where 8-bit products can saturate).
        nodes_to_exclude: nodes kept in float (set by the accuracy-aware search).
    """

    per_channel: bool = True
    reduce_range: bool = False
    nodes_to_exclude: list[str] = field(default_factory=list)

    def fit(self, model_path: Path, calibration: Any = None) -> DynamicInt8Quantizer:
        self.model_path_ = Path(model_path)
        return self

    def transform(self, out: Path) -> Path:
        onnx = require("onnx", feature="quantization")
        q = require("onnxruntime.quantization", feature="quantization")
        with _quiet():
            q.quantize_dynamic(
                str(self.model_path_),
                str(out),
                per_channel=self.per_channel,
                reduce_range=self.reduce_range,
                weight_type=q.QuantType.QInt8,
                op_types_to_quantize=list(DYNAMIC_OPS),
                # dynamic quantization rewrites Gemm as MatMul + Add named '<gemm>_MatMul' before it excludes
                nodes_to_exclude=[*self.nodes_to_exclude, *(f"{n}_MatMul" for n in self.nodes_to_exclude)],
                extra_options=_tensor_type_options(onnx),
            )
        return out


def pad_feeds(feeds: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """Feeds of one shape: 2-D integer inputs (token ids, masks) zero-padded to the longest sequence over all
    feeds, and, when batch sizes differ, one sample per feed (onnxruntime's histogram calibration stacks batches)."""
    lengths = [a.shape[1] for f in feeds for a in f.values() if a.ndim == 2 and a.dtype.kind in "iu"]
    longest = max(lengths, default=0)
    padded = [
        {
            k: np.pad(a, ((0, 0), (0, longest - a.shape[1]))) if a.ndim == 2 and a.dtype.kind in "iu" else a
            for k, a in f.items()
        }
        for f in feeds
    ]
    if len({len(next(iter(f.values()))) for f in padded}) <= 1:
        return padded
    return [{k: a[i : i + 1] for k, a in f.items()} for f in padded for i in range(len(next(iter(f.values()))))]


class _Reader:
    """onnxruntime's CalibrationDataReader over pre-built feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self.feeds = feeds
        self.i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i >= len(self.feeds):
            return None
        self.i += 1
        return self.feeds[self.i - 1]

    def rewind(self) -> None:
        self.i = 0


@dataclass
class StaticInt8Quantizer:
    """INT8 weights and activations in QDQ format; activation ranges calibrated on real samples.

    Args:
        method: "minmax", "entropy" or "percentile" (onnxruntime's calibration methods).
        per_channel: one weight scale per output channel.
        percentile: the percentile kept by method "percentile".
        activations: "uint8" (onnxruntime's fast U8S8 kernels on x86), "int8" (S8S8, the fast path on ARM) or
            "auto" (by this machine's architecture).
        nodes_to_exclude: nodes kept in float (set by the accuracy-aware search).
    """

    method: str = "minmax"
    per_channel: bool = True
    percentile: float = 99.999
    activations: str = "auto"
    nodes_to_exclude: list[str] = field(default_factory=list)

    def fit(self, model_path: Path, calibration: list[dict[str, np.ndarray]]) -> StaticInt8Quantizer:
        """Store the graph and the calibration feeds (input name -> array, one dict per batch).

        The histogram methods (entropy, percentile) stack every batch's activations, so batches of token ids are
        padded to one common length first (padding positions are masked out by the model's attention mask).
        """
        self.model_path_ = Path(model_path)
        self.calibration_ = calibration if self.method == "minmax" else pad_feeds(calibration)
        return self

    @property
    def activation_type(self) -> str:
        if self.activations != "auto":
            return self.activations
        return "uint8" if platform.machine().lower() in ("x86_64", "amd64", "i686", "x86") else "int8"

    def transform(self, out: Path) -> Path:
        onnx = require("onnx", feature="quantization")
        q = require("onnxruntime.quantization", feature="quantization")
        methods = {
            "minmax": q.CalibrationMethod.MinMax,
            "entropy": q.CalibrationMethod.Entropy,
            "percentile": q.CalibrationMethod.Percentile,
        }
        extra = {**_tensor_type_options(onnx), "CalibPercentile": self.percentile, "CalibMovingAverage": False}
        with _quiet():
            q.quantize_static(
                str(self.model_path_),
                str(out),
                _Reader(self.calibration_),
                quant_format=q.QuantFormat.QDQ,
                per_channel=self.per_channel,
                activation_type=q.QuantType.QUInt8 if self.activation_type == "uint8" else q.QuantType.QInt8,
                weight_type=q.QuantType.QInt8,
                op_types_to_quantize=list(STATIC_OPS),
                nodes_to_exclude=list(self.nodes_to_exclude),
                calibrate_method=methods[self.method],
                extra_options=extra,
            )
        for leftover in Path(out).parent.glob("augmented_model*.onnx"):
            leftover.unlink()
        return out


def to_fp16(model_path: Path, out: Path) -> Path:
    """FP16 weights and compute, float32 inputs and outputs (onnxruntime's float16 converter)."""
    onnx = require("onnx", feature="FP16 conversion")
    f16 = require("onnxruntime.transformers.float16", feature="FP16 conversion")
    model = onnx.load(str(model_path))
    model = f16.convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    onnx.save(model, str(out))
    return out
