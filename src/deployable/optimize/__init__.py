"""Optimize: turn the source model into variants (ONNX, fused, INT8, FP16, pruned, distilled), each an artifact
with a sha256, a parent and its recipe, each checked against the source on the tolerance split."""

# importing the recipe modules registers them (``list_plugins("recipe")``)
from deployable.optimize import distill, prune, recipes  # noqa: F401
from deployable.optimize._optimize import optimize
from deployable.optimize.base import OptimizeContext
from deployable.optimize.gain import NO_GAIN, judge_gain

__all__ = ["NO_GAIN", "OptimizeContext", "judge_gain", "optimize"]
