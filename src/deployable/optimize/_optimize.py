"""Making the variants a config lists, in dependency order, and judging each against the source."""

from __future__ import annotations

from typing import Any

from deployable.core.errors import DeployableError
from deployable.core.plugins import get_plugin
from deployable.core.records import Variant
from deployable.models.sources import load_predictor
from deployable.optimize.base import OptimizeContext, accuracy_change_text, check_tolerance


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
    result = check_tolerance(ctx, variant.name)
    recipe: dict[str, Any] = {**variant.recipe, "tolerance_check": result.to_dict()}
    nothing = nothing_made(variant.recipe)
    if nothing:  # within tolerance only because it is its parent under another name: not a variant to ship
        return variant.replace(recipe=recipe, status="rejected", reason=nothing)
    if result.ok:
        return variant.replace(recipe=recipe, status="accepted", reason="")
    return variant.replace(recipe=recipe, status="rejected", reason=result.reason())


def _step_text(step: dict[str, Any]) -> str:
    """``agreement 97.4%, accuracy +0.37 points [-1.11, +1.85] (undecidable at n=271, needs about 900)``."""
    change = step.get("accuracy_change") or {}
    text = f"agreement {step['agreement']:.1%}"
    if step.get("n_labeled", 1) and change:
        text += ", " + accuracy_change_text(change["value"], change["low"], change["high"])
    outcome = step.get("outcome")
    if outcome == "FAIL":
        text += f" (outside tolerance on {step['split']})"
    elif outcome == "UNDECIDED":
        needed = step.get("n_needed")
        more = f", needs about {needed:,} samples" if needed else ""
        text += f" (undecidable at n={step['n']:,} on {step['split']}{more})"
    return text


def nothing_made(recipe: dict[str, Any]) -> str:
    """Why a quantized variant is its parent under another name (its search kept every node in float), else "".

    The reason gives the fully quantized graph's result (failed, or undecidable and how many samples would decide
    it) and the best partial one the search saw, so a reader sees how far the recipe was from the tolerance.
    """
    if recipe.get("quantized_nodes") != 0:
        return ""
    total = len(recipe.get("excluded_nodes") or [])
    if total == 0:
        return "nothing quantized: the graph has no node of the types this recipe quantizes"
    steps = recipe.get("search") or []
    parts = [f"nothing quantized: the tolerance was met only with all {total} quantizable nodes kept in float"]
    # every node quantized, with and without smoothing: the more faithful of the two
    full = max((s for s in steps if s["excluded"] == 0), key=lambda s: s["agreement"], default=None)
    if full is not None:
        parts.append(f"fully INT8: {_step_text(full)}")
    partial = [s for s in steps if 0 < s["excluded"] < total]
    if partial:
        best = max(partial, key=lambda s: (s["agreement"], -s["accuracy_drop"]))
        parts.append(f"best partial ({best['excluded']} of {total} in float): {_step_text(best)}")
    return "; ".join([*parts, "no subset met the tolerance"])
