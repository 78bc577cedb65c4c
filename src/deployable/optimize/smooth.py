"""SmoothQuant-style smoothing: move activation outliers into the weights before 8-bit quantization.

For every MatMul or Gemm with a constant weight ``W`` (K, N; a Gemm's ``transB`` weight is read as its transpose)
fed by activation ``x`` (..., K), a per-input-channel scale

    s_k = max|x_k|^alpha / max|W_k,:|^(1 - alpha)

gives the same product, ``(x / s) (diag(s) W) = x W``, with an activation whose channels are far more even, so a
per-tensor activation scale no longer rounds the small channels away, while the per-channel weight scales absorb
the larger weight rows. The division is one ``Mul`` per activation, shared by every MatMul that reads it
(Xiao et al., "SmoothQuant", 2023). ``alpha`` is chosen on calibration samples, never on the tolerance split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deployable.core._imports import require


def _attr(node: Any, name: str, default: int = 0) -> int:
    return next((int(a.i) for a in node.attribute if a.name == name), default)


def _consumers(graph: Any, weights: set[str]) -> dict[str, list[Any]]:
    """Activation -> the MatMul and Gemm nodes that multiply it by a constant weight (a Gemm with ``transA`` reads
    its activation transposed, so its input channels are not the last axis: left alone)."""
    by_act: dict[str, list[Any]] = {}
    for n in graph.node:
        if n.op_type not in ("MatMul", "Gemm") or n.input[1] not in weights or n.input[0] in weights:
            continue
        if n.op_type == "Gemm" and _attr(n, "transA"):
            continue
        by_act.setdefault(n.input[0], []).append(n)
    return by_act


def _input_rows(node: Any, w: np.ndarray) -> np.ndarray:
    """The weight as (K, N), K the activation's channels: a Gemm with ``transB`` stores it as (N, K)."""
    return w.T if node.op_type == "Gemm" and _attr(node, "transB") else w


def activation_absmax(model_path: Path, feeds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-channel max |x| of every activation that feeds a weight MatMul, over the calibration feeds."""
    onnx = require("onnx", feature="smoothing")
    ort = require("onnxruntime", feature="smoothing")
    model = onnx.load(str(model_path))
    graph = model.graph
    acts = sorted(_consumers(graph, {i.name for i in graph.initializer}))
    if not acts:  # nothing to smooth (e.g. a graph of Gemm and Conv only)
        return {}
    existing = {o.name for o in graph.output}
    for a in acts:
        if a not in existing:
            graph.output.append(onnx.helper.make_tensor_value_info(a, onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    out: dict[str, np.ndarray] = {}
    for feed in feeds:
        for a, v in zip(acts, session.run(acts, feed), strict=True):
            m = np.abs(v).reshape(-1, v.shape[-1]).max(axis=0)
            out[a] = m if a not in out else np.maximum(out[a], m)
    return out


def smooth_graph(model_path: Path, absmax: dict[str, np.ndarray], alpha: float, out: Path) -> int:
    """Write the smoothed graph to ``out``; returns how many MatMul and Gemm nodes were smoothed (outputs unchanged)."""
    onnx = require("onnx", feature="smoothing")
    from onnx import numpy_helper

    model = onnx.load(str(model_path))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    groups = _consumers(graph, set(inits))
    order = list(graph.node)
    smoothed = 0
    for act, nodes in groups.items():
        if act not in absmax or len({n.input[1] for n in nodes}) != len(nodes):
            continue  # a weight shared by two activations cannot take two scales
        ws = [_input_rows(n, numpy_helper.to_array(inits[n.input[1]])) for n in nodes]
        wmax = np.max([np.abs(w).max(axis=1) for w in ws], axis=0)
        scale = np.maximum(absmax[act], 1e-5) ** alpha / np.maximum(wmax, 1e-5) ** (1 - alpha)
        scale = np.clip(scale, 1e-2, 1e2).astype(np.float32)
        inv = numpy_helper.from_array((1.0 / scale).astype(np.float32), f"{act}__smooth_inv")
        graph.initializer.append(inv)
        mul = onnx.helper.make_node("Mul", [act, inv.name], [f"{act}__smoothed"], name=f"{act}__smooth")
        for n, w in zip(nodes, ws, strict=True):
            scaled = _input_rows(n, (w * scale[:, None]).astype(np.float32))  # back in the node's own layout
            inits[n.input[1]].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(scaled), n.input[1]))
            n.input[0] = mul.output[0]
            smoothed += 1
        order.insert(min(order.index(n) for n in nodes), mul)
    del graph.node[:]
    graph.node.extend(order)
    onnx.save(model, str(out))
    return smoothed
