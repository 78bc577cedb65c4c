"""The ONNX recipes: export, graph fusion, INT8 dynamic and static (with the accuracy-aware search), FP16."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from deployable.config import Fp16Recipe, Int8DynamicRecipe, Int8StaticRecipe, OnnxFp32Recipe, OnnxFusedRecipe
from deployable.core._imports import require
from deployable.core.errors import DeployableError, ModelError
from deployable.core.plugins import register
from deployable.core.records import Variant
from deployable.evaluation.batching import iter_batches
from deployable.models.onnx_model import OnnxPredictor
from deployable.models.sources import load_predictor
from deployable.optimize.base import (
    OptimizeContext,
    artifact_dir,
    cached_or_build,
    check_tolerance,
    make_variant,
    relocate,
)
from deployable.optimize.export import check_parity, export_onnx
from deployable.optimize.quantize import (
    DYNAMIC_OPS,
    STATIC_OPS,
    DynamicInt8Quantizer,
    StaticInt8Quantizer,
    to_fp16,
)
from deployable.optimize.search import SearchStep, fallback_search, node_sensitivity
from deployable.optimize.smooth import activation_absmax, smooth_graph


def _onnx_file(variant: Variant) -> Path:
    if variant.kind != "onnx":
        raise DeployableError(
            f"optimize: variant '{variant.name}' is a {variant.kind} model; this recipe needs an "
            "ONNX parent (set parent: to an ONNX variant, or list onnx-fp32 first)"
        )
    return Path(variant.spec["path"])


def _finish(name: str, meta: dict[str, Any], parent: Variant) -> Variant:
    return make_variant(name, meta["spec"], [Path(meta["spec"]["path"])], parent, meta["recipe"])


@register("recipe", config=OnnxFp32Recipe)
def onnx_fp32(ctx: OptimizeContext, parent: Variant, opts: OnnxFp32Recipe) -> Variant:
    """Export a torch parent to ONNX and refuse it unless it reproduces the parent on real inputs."""
    if parent.kind == "onnx":
        raise DeployableError(
            f"optimize.recipes: onnx-fp32 exports a torch model, but '{parent.name}' is already "
            "ONNX (remove the recipe or set another parent)"
        )
    predictor = ctx.predictors[parent.name]
    sample = ctx.calibration_inputs()[:64]
    folder = artifact_dir(ctx, parent, opts.model_dump(), extra=ctx.cfg.opset)

    def build(tmp: Path) -> dict[str, Any]:
        spec = export_onnx(
            predictor, tmp / "model.onnx", sample=sample[:4], opset=ctx.cfg.opset, label_names=ctx.dataset.label_names
        )
        exported = load_predictor(spec)
        parity = check_parity(predictor, exported, sample, batch_size=ctx.batch_size)
        if not parity.ok:
            raise ModelError(
                f"optimize: the ONNX export of '{parent.name}' does not reproduce it: max |logit "
                f"difference| {parity.max_abs_diff:.3g} (allowed {parity.allowed_abs_diff:.3g}), "
                f"top-1 agreement {parity.agreement:.1%} on {parity.n} real inputs",
                hint="the model may trace a shape or a data-dependent branch as a constant",
            )
        return {
            "spec": relocate(spec, tmp, folder),
            "recipe": {"recipe": "onnx-fp32", "opset": ctx.cfg.opset, "parity": parity.to_dict()},
        }

    meta = cached_or_build(folder, build)
    return _finish(opts.name or opts.recipe, meta, parent)


def _transformer_shape(tokenizer_dir: str | None) -> dict[str, int] | None:
    if not tokenizer_dir:
        return None
    cfg_file = Path(tokenizer_dir) / "config.json"
    if not cfg_file.is_file():
        return None
    cfg = json.loads(cfg_file.read_text())
    if "num_attention_heads" in cfg and "hidden_size" in cfg:
        return {"num_heads": int(cfg["num_attention_heads"]), "hidden_size": int(cfg["hidden_size"])}
    return None


def _op_counts(path: Path) -> dict[str, int]:
    onnx = require("onnx", feature="graph fusion")
    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


@register("recipe", config=OnnxFusedRecipe)
def onnx_fused(ctx: OptimizeContext, parent: Variant, opts: OnnxFusedRecipe) -> Variant:
    """onnxruntime graph optimizations, plus the transformer fusions for BERT-family encoders."""
    ort = require("onnxruntime", feature="graph fusion")
    source = _onnx_file(parent)
    folder = artifact_dir(ctx, parent, opts.model_dump())

    def build(tmp: Path) -> dict[str, Any]:
        out = tmp / "model.onnx"
        shape = _transformer_shape(parent.spec.get("tokenizer"))
        fusions: dict[str, int] = {}
        if shape is not None:
            optimizer = require("onnxruntime.transformers.optimizer", feature="transformer fusion")
            model = optimizer.optimize_model(str(source), model_type="bert", opt_level=0, **shape)
            fusions = {k: int(v) for k, v in model.get_fused_operator_statistics().items() if v}
            staged = tmp / "transformer.onnx"
            model.save_model_to_file(str(staged))
        else:
            staged = source
        level = {
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        }[opts.level]
        so = ort.SessionOptions()
        so.graph_optimization_level = level
        so.optimized_model_filepath = str(out)
        ort.InferenceSession(str(staged), so, providers=["CPUExecutionProvider"])
        if staged != source:
            staged.unlink()
        before, after = _op_counts(source), _op_counts(out)
        spec = relocate({**parent.spec, "path": str(out)}, tmp, folder)
        return {
            "spec": spec,
            "recipe": {
                "recipe": "onnx-fused",
                "level": opts.level,
                "transformer_fusions": fusions,
                "nodes_before": sum(before.values()),
                "nodes_after": sum(after.values()),
                "op_types_after": after,
            },
        }

    meta = cached_or_build(folder, build)
    return _finish(opts.name or opts.recipe, meta, parent)


def _feeds(ctx: OptimizeContext, parent: Variant, inputs: Any, batch_size: int = 16) -> list[dict[str, np.ndarray]]:
    predictor = ctx.predictors[parent.name]
    if not isinstance(predictor, OnnxPredictor):
        raise DeployableError(f"optimize: '{parent.name}' is not an ONNX model")
    return [predictor.feed(batch) for _, batch in iter_batches(inputs, batch_size)]


def _quantize_with_search(
    ctx: OptimizeContext, parent: Variant, name: str, opts: Any, quantizer: Any, op_types: tuple[str, ...], static: bool
) -> Variant:
    source = _onnx_file(parent)
    calibration = ctx.calibration_inputs()
    folder = artifact_dir(
        ctx,
        parent,
        opts.model_dump(),
        extra={
            "calibration": ctx.dataset.split(ctx.cfg.calibration_split).fingerprint,
            "n": ctx.cfg.calibration_samples,
            "seed": ctx.cfg.seed,
            "tolerance": ctx.cfg.tolerance.model_dump(),
        },
    )
    feeds = _feeds(ctx, parent, calibration)

    def build(tmp: Path) -> dict[str, Any]:
        out = tmp / "model.onnx"
        built: dict[str, Path] = {}
        graph, smoothing = source, None
        recipe: dict[str, Any] = {"recipe": opts.recipe, **opts.model_dump(exclude={"name", "parent", "recipe"})}

        def make(excluded: list[str]) -> OnnxPredictor:
            quantizer.nodes_to_exclude = list(excluded)
            path = tmp / f"candidate-{len(excluded)}{'-plain' if smoothing is None else ''}.onnx"
            quantizer.transform(path)
            built["last"] = path
            return load_predictor({**parent.spec, "path": str(path)})

        def check(candidate: OnnxPredictor) -> Any:
            key = f"{name} (search)"
            ctx.predictors[key] = candidate
            try:
                return check_tolerance(ctx, key)
            finally:
                del ctx.predictors[key]

        plain: list[SearchStep] = []
        if opts.smooth == "auto":
            # the fastest graph first: every node quantized and no smoothing Mul; smoothing only if it is needed
            quantizer.fit(source, feeds)
            result = check(make([]))
            plain.append(SearchStep(0, {**result.to_dict(), "smoothed": False}))
        if opts.smooth is True or (plain and not plain[0].ok):
            graph, smoothing = _smooth(tmp, source, feeds, quantizer, opts.smooth_alpha)
            recipe["smoothing"] = smoothing
        elif plain:
            recipe["smoothing"] = {
                "used": False,
                "why": "the fully quantized graph without smoothing is within tolerance: no Mul added",
            }
        if plain and plain[0].ok:
            sens = node_sensitivity(source, feeds[:4], per_channel=opts.per_channel, op_types=op_types,
                                    static_ranges=static, weight_nodes_only=not static)  # fmt: skip
            recipe["excluded_nodes"], recipe["search"] = [], [s.to_dict() for s in plain]
            recipe["most_sensitive"] = [vars(s) for s in sens[:10]]
            recipe["quantized_nodes"] = len(sens)
        elif opts.search:
            quantizer.fit(graph, feeds)
            sens = node_sensitivity(
                graph,
                feeds[:4],
                per_channel=opts.per_channel,
                op_types=op_types,
                static_ranges=static,
                weight_nodes_only=not static,
            )
            _, excluded, steps = fallback_search(sens, make, check)
            steps = [*plain, *(SearchStep(s.excluded, {**s.check, "smoothed": smoothing is not None}) for s in steps)]
            by_node = {s.node: s for s in sens}
            recipe["excluded_nodes"] = [
                {
                    "node": n,
                    "op_type": by_node[n].op_type,
                    "sensitivity": by_node[n].sensitivity,
                    "why": "kept in float: among the most sensitive nodes needed to stay within tolerance",
                }
                for n in excluded
            ]
            recipe["search"] = [s.to_dict() for s in steps]
            recipe["most_sensitive"] = [vars(s) for s in sens[:10]]
            recipe["quantized_nodes"] = len(sens) - len(excluded)
        else:
            quantizer.fit(graph, feeds)
            check(make([]))
        shutil.move(str(built["last"]), out)
        for leftover in [*tmp.glob("candidate-*.onnx"), *tmp.glob("smooth-*.onnx")]:
            leftover.unlink()
        spec = relocate({**parent.spec, "path": str(out)}, tmp, folder)
        return {"spec": spec, "recipe": recipe}

    meta = cached_or_build(folder, build)
    return _finish(name, meta, parent)


SMOOTH_ALPHAS = (0.5, 0.6, 0.7, 0.8, 0.9)


def _smooth(
    tmp: Path, source: Path, feeds: list[dict[str, np.ndarray]], quantizer: Any, alpha: float | None
) -> tuple[Path, dict[str, Any]]:
    """The smoothed graph with the alpha whose quantized logits are closest to float on calibration samples."""
    ort = require("onnxruntime", feature="smoothing")
    absmax = activation_absmax(source, feeds)
    probe = feeds[: max(1, len(feeds) // 2)]
    reference = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    want = [reference.get_outputs()[0].name]
    ref = [reference.run(want, f)[0] for f in probe]
    tried: list[dict[str, float]] = []
    for a in [alpha] if alpha is not None else SMOOTH_ALPHAS:
        path = tmp / f"smooth-{a:g}.onnx"
        smooth_graph(source, absmax, a, path)
        quantizer.fit(path, feeds)
        quantizer.nodes_to_exclude = []
        quantized = tmp / f"smooth-{a:g}-q.onnx"
        quantizer.transform(quantized)
        session = ort.InferenceSession(str(quantized), providers=["CPUExecutionProvider"])
        mse = float(np.mean([np.mean((session.run(want, f)[0] - r) ** 2) for f, r in zip(probe, ref, strict=True)]))
        quantized.unlink()
        tried.append({"alpha": a, "calibration_logit_mse": mse})
    chosen = min(tried, key=lambda t: t["calibration_logit_mse"])["alpha"]
    summary = {
        "alpha": chosen,
        "tried": tried,
        "chosen_by": "lowest logit MSE of the fully quantized graph on calibration samples",
    }
    return tmp / f"smooth-{chosen:g}.onnx", summary


@register("recipe", config=Int8DynamicRecipe)
def int8_dynamic(ctx: OptimizeContext, parent: Variant, opts: Int8DynamicRecipe) -> Variant:
    quantizer = DynamicInt8Quantizer(per_channel=opts.per_channel, reduce_range=opts.reduce_range)
    return _quantize_with_search(ctx, parent, opts.name or opts.recipe, opts, quantizer, DYNAMIC_OPS, static=False)


@register("recipe", config=Int8StaticRecipe)
def int8_static(ctx: OptimizeContext, parent: Variant, opts: Int8StaticRecipe) -> Variant:
    quantizer = StaticInt8Quantizer(
        method=opts.method, per_channel=opts.per_channel, percentile=opts.percentile, activations=opts.activations
    )
    return _quantize_with_search(ctx, parent, opts.name or opts.recipe, opts, quantizer, STATIC_OPS, static=True)


@register("recipe", config=Fp16Recipe)
def fp16(ctx: OptimizeContext, parent: Variant, opts: Fp16Recipe) -> Variant:
    """FP16 graph with float32 inputs and outputs. On x86 CPUs without native FP16 it mostly saves file size."""
    source = _onnx_file(parent)
    folder = artifact_dir(ctx, parent, opts.model_dump())

    def build(tmp: Path) -> dict[str, Any]:
        out = to_fp16(source, tmp / "model.onnx")
        spec = relocate({**parent.spec, "path": str(out)}, tmp, folder)
        return {
            "spec": spec,
            "recipe": {
                "recipe": "fp16",
                "note": "FP16 halves the file; on CPUs without native "
                "FP16 arithmetic onnxruntime inserts casts and it is rarely faster",
            },
        }

    meta = cached_or_build(folder, build)
    return _finish(opts.name or opts.recipe, meta, parent)
