"""INT8 (dynamic and static QDQ) and FP16 variants of an ONNX graph, with onnxruntime's quantization tools.

Quantizers follow scikit-learn's habit: the constructor stores options, ``fit`` learns (activation ranges,
per-node sensitivity, the nodes to keep in float), and ``transform`` writes the quantized graph.
"""

from __future__ import annotations

import contextlib
import logging
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
    # onnxruntime's quantizer logs a pre-processing suggestion on the root logger at every call
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
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
        nodes_to_exclude: nodes kept in float (set by the accuracy-aware search).
    """

    method: str = "minmax"
    per_channel: bool = True
    percentile: float = 99.999
    nodes_to_exclude: list[str] = field(default_factory=list)

    def fit(self, model_path: Path, calibration: list[dict[str, np.ndarray]]) -> StaticInt8Quantizer:
        """Store the graph and the calibration feeds (input name -> array, one dict per batch)."""
        self.model_path_ = Path(model_path)
        self.calibration_ = calibration
        return self

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
                activation_type=q.QuantType.QInt8,
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
