"""Evaluation: the single-pass runner, the prediction store, targets and metrics."""
