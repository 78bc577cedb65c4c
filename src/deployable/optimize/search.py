"""Accuracy-aware quantization: measure each node's sensitivity, keep the most sensitive ones in float.

Sensitivity of a node is the relative error its output takes when its inputs are quantized the way the
quantizer will quantize them (activations: 8-bit asymmetric over the observed range; weights: 8-bit symmetric,
per output channel or per tensor), measured on real calibration samples in one instrumented float run:

    sensitivity = ||Q(x) Q(W) - x W|| / ||x W||

The search then quantizes everything, checks the tolerance on the tolerance split with the real quantized
graph, and keeps the 1, 2, 4, ... most sensitive nodes in float until the variant is within tolerance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deployable.core._imports import require


def _fake_quant_activation(x: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """uint8 asymmetric quantize-dequantize over [min(lo, 0), max(hi, 0)] (onnxruntime's DynamicQuantizeLinear)."""
    lo = float(min(x.min() if lo is None else lo, 0.0))
    hi = float(max(x.max() if hi is None else hi, 0.0))
    scale = (hi - lo) / 255.0 or 1.0
    zero = np.round(-lo / scale)
    return ((np.clip(np.round(x / scale) + zero, 0, 255) - zero) * scale).astype(np.float32)


def _fake_quant_weight(w: np.ndarray, *, per_channel: bool, axis: int) -> np.ndarray:
    """int8 symmetric quantize-dequantize, one scale per channel along ``axis`` (or per tensor)."""
    if per_channel and w.ndim >= 2:
        reduce = tuple(i for i in range(w.ndim) if i != axis)
        amax = np.abs(w).max(axis=reduce, keepdims=True)
    else:
        amax = np.abs(w).max()
    scale = np.where(amax > 0, amax / 127.0, 1.0)
    return (np.clip(np.round(w / scale), -127, 127) * scale).astype(np.float32)


@dataclass(frozen=True)
class NodeSensitivity:
    node: str
    op_type: str
    sensitivity: float


def node_sensitivity(
    model_path: Path,
    feeds: list[dict[str, np.ndarray]],
    *,
    per_channel: bool,
    op_types: tuple[str, ...],
    static_ranges: bool = False,
    weight_nodes_only: bool = False,
) -> list[NodeSensitivity]:
    """Sensitivity of every quantizable node, most sensitive first.

    Args:
        model_path: float ONNX graph.
        feeds: input batches (input name -> array) of real samples.
        per_channel: weights quantized per output channel.
        op_types: the op types the quantizer touches (Attention counts as its packed input projection).
        static_ranges: activation ranges fixed over all feeds (static quantization) instead of per batch.
        weight_nodes_only: only nodes with a constant weight input (what dynamic quantization touches).
    """
    onnx = require("onnx", feature="quantization search")
    ort = require("onnxruntime", feature="quantization search")
    from onnx import numpy_helper

    model = onnx.load(str(model_path))
    graph = model.graph
    weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    nodes = [
        n
        for n in graph.node
        if n.op_type in op_types and (not weight_nodes_only or any(i in weights for i in n.input[:2]))
    ]
    wanted: list[str] = []
    for n in nodes:
        if n.op_type in ("Conv", "Gather"):
            continue  # judged by their weights alone (below)
        for name in n.input[:2]:
            if name and name not in weights and name not in wanted:
                wanted.append(name)
    existing = {o.name for o in graph.output}
    for name in wanted:
        if name not in existing:
            graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep the tensors we ask for
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    runs = [dict(zip(wanted, session.run(wanted, feed), strict=True)) for feed in feeds]

    ranges: dict[str, tuple[float, float]] = {}
    if static_ranges:
        for name in wanted:
            ranges[name] = (min(float(r[name].min()) for r in runs), max(float(r[name].max()) for r in runs))

    def act(name: str, value: np.ndarray) -> np.ndarray:
        lo, hi = ranges.get(name, (None, None))
        return _fake_quant_activation(value, lo, hi)

    out: list[NodeSensitivity] = []
    for n in nodes:
        err, ref = 0.0, 0.0
        for r in runs:
            a_name, b_name = n.input[0], n.input[1]
            if n.op_type in ("Conv", "Gather"):
                # weight error only: a convolution per node would cost as much as the model; a lookup table has
                # no activation to quantize
                w = weights[a_name if n.op_type == "Gather" else b_name]
                qw = _fake_quant_weight(w, per_channel=per_channel, axis=0)
                err += float(np.sum((qw - w) ** 2))
                ref += float(np.sum(w**2))
                continue
            a = r[a_name] if a_name in r else weights[a_name]
            b = r[b_name] if b_name in r else weights[b_name]
            qa = act(a_name, a) if a_name in r else _fake_quant_weight(a, per_channel=per_channel, axis=-1)
            qb = act(b_name, b) if b_name in r else _fake_quant_weight(b, per_channel=per_channel, axis=b.ndim - 1)
            if n.op_type == "Gemm":
                attrs = {at.name: onnx.helper.get_attribute_value(at) for at in n.attribute}
                if attrs.get("transA"):
                    a, qa = a.T, qa.T
                if attrs.get("transB"):
                    b, qb = b.T, qb.T
            y = a @ b
            err += float(np.sum((qa @ qb - y) ** 2))
            ref += float(np.sum(y**2))
        out.append(NodeSensitivity(n.name, n.op_type, float(np.sqrt(err / ref)) if ref > 0 else 0.0))
    return sorted(out, key=lambda s: -s.sensitivity)


@dataclass(frozen=True)
class SearchStep:
    """One candidate of the search: how many nodes it kept in float and its tolerance check (``to_dict`` form)."""

    excluded: int
    check: dict[str, Any]

    @property
    def ok(self) -> bool:
        return bool(self.check.get("ok"))

    def to_dict(self) -> dict[str, Any]:
        return {"excluded": self.excluded, **self.check}


def fallback_search(
    sensitivities: list[NodeSensitivity], build: Callable[[list[str]], Any], check: Callable[[Any], Any]
) -> tuple[Any, list[str], list[SearchStep]]:
    """Keep the k most sensitive nodes in float, k = 0, 1, 2, 4, ..., until ``check(build(excluded)).ok``.

    ``check`` returns a :class:`~deployable.optimize.base.ToleranceCheck`. A step that fails or cannot decide at
    the sample size moves on to the next k (a graph closer to float is closer to the source); every step is
    recorded with its outcome, so a search that ends with nothing quantized says whether the fully quantized graph
    failed or was undecidable, and how many samples would have decided it.

    Returns the last candidate built, the excluded nodes, and every step taken. When no k passes, the last
    candidate (everything excluded) is returned and the caller rejects it.
    """
    n = len(sensitivities)
    steps: list[SearchStep] = []
    ks = [0] + [2**i for i in range(n.bit_length()) if 2**i < n] + [n]
    candidate, excluded = None, []
    for k in ks:
        excluded = [s.node for s in sensitivities[:k]]
        candidate = build(excluded)
        result = check(candidate)
        steps.append(SearchStep(k, result.to_dict()))
        if result.ok:
            break
    return candidate, excluded, steps
