"""Model sources -> :class:`Predictor` (float32 logits, and penultimate features where the model exposes them)."""

from deployable.models.base import ForwardOutput, Predictor
from deployable.models.sources import load_predictor, model_spec, source_variant

__all__ = ["ForwardOutput", "Predictor", "load_predictor", "model_spec", "source_variant"]
