"""Optimize: turn the source model into variants (ONNX, fused, INT8, FP16, pruned, distilled), each an artifact
with a sha256, a parent and its recipe, each checked against the source on the tolerance split."""

from __future__ import annotations

from typing import Any

from deployable.core.errors import DeployableError
from deployable.core.plugins import get_plugin
from deployable.core.records import Variant
from deployable.models.sources import load_predictor
from deployable.optimize.base import OptimizeContext, check_tolerance, tolerance_logits


def optimize(ctx: OptimizeContext, source: Variant) -> list[Variant]:
    """Make every variant the config lists (and the ONNX exports they need), in dependency order.

    ``ctx.predictors["source"]`` must hold the source predictor. Each variant is loaded into ``ctx.predictors``
    and marked ``accepted`` or ``rejected`` (with the reason) by the tolerance check.
    """
    from deployable.config import OnnxFp32Recipe

    ctx.variants["source"] = source
    wanted = {(r.name or r.recipe): r for r in ctx.cfg.recipes}
    made: list[Variant] = []
    building: list[str] = []

    def natural_parent(spec: Any) -> str:
        # a recipe on ONNX graphs starts from the ONNX export of a torch source; every other one from the source
        return "onnx-fp32" if spec.input_kind == "onnx" and source.kind != "onnx" else "source"

    def ensure(name: str) -> Variant:
        if name in ctx.variants:
            return ctx.variants[name]
        if name in building:
            raise DeployableError(f"optimize.recipes: parents form a cycle: {' -> '.join([*building, name])}")
        building.append(name)
        if name in wanted:
            spec = wanted[name]
        elif name == "onnx-fp32" or name.endswith("-onnx"):
            spec = OnnxFp32Recipe(
                recipe="onnx-fp32", name=name, parent="source" if name == "onnx-fp32" else name[: -len("-onnx")]
            )
        else:  # config validation makes this unreachable; kept for callers that build configs in code
            raise DeployableError(f"optimize.recipes: unknown parent '{name}'")
        parent = ensure(spec.parent or natural_parent(spec))
        if spec.input_kind == "onnx" and parent.kind != "onnx":
            parent = ensure("onnx-fp32" if parent.name == "source" else f"{parent.name}-onnx")
        recipe_fn = get_plugin("recipe", spec.recipe, field="optimize.recipes")
        variant = recipe_fn(ctx, parent, spec)
        ctx.predictors[variant.name] = load_predictor(variant.spec)
        variant = _judge(ctx, variant)
        ctx.variants[variant.name] = variant
        made.append(variant)
        building.pop()
        return variant

    for name in wanted:
        ensure(name)
    return made


def _judge(ctx: OptimizeContext, variant: Variant) -> Variant:
    result = check_tolerance(ctx, tolerance_logits(ctx, variant.name), tolerance_logits(ctx, "source"))
    recipe: dict[str, Any] = {**variant.recipe, "tolerance_check": result.to_dict()}
    if result.ok:
        return variant.replace(recipe=recipe, status="accepted", reason="")
    return variant.replace(recipe=recipe, status="rejected", reason=f"outside tolerance {result.reason()}")
