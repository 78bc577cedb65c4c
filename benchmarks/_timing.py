"""What the text-model speed benchmarks share: a deployable predictor behind ``set_threads``/``forward``, every
logit of a list of texts, and one timed round of calls (imported by the scripts beside it)."""

from __future__ import annotations

import os
import time

import numpy as np

from deployable.evaluation.batching import iter_batches


class Deployable:
    """A deployable predictor behind the same two calls as a hand-written baseline."""

    def __init__(self, predictor):
        self.p = predictor

    def set_threads(self, n: int) -> None:
        import torch  # a PyTorch source reads torch's own thread count

        torch.set_num_threads(n or os.cpu_count() or 1)
        self.p.set_threads(n)

    def forward(self, texts: list[str]) -> np.ndarray:
        return self.p.forward(texts).logits


def logits_of(predictor, texts: list[str], batch_size: int = 32) -> np.ndarray:
    """``predictor.forward`` over ``texts`` in batches, shape (N, C)."""
    out = None
    for index, batch in iter_batches(texts, batch_size):
        logits = predictor.forward(batch)
        if out is None:
            out = np.empty((len(texts), logits.shape[1]), np.float32)
        out[index] = logits
    return out


def time_round(predictor, texts: list[str], batch_size: int, calls: int, offset: int) -> list[float]:
    """Seconds of each of ``calls`` forward calls on consecutive batches of ``texts`` from batch ``offset`` on."""
    times = []
    for i in range(calls):
        start = (offset + i) * batch_size
        batch = [texts[(start + j) % len(texts)] for j in range(batch_size)]
        t0 = time.perf_counter()
        predictor.forward(batch)
        times.append(time.perf_counter() - t0)
    return times


def faithfulness_stats(candidates: dict, reference: str, texts: list[str], labels: np.ndarray) -> dict[str, dict]:
    """Per candidate (all cores): test accuracy, agreement with ``reference`` and the paired bootstrap interval of
    the accuracy change against it (``delta_low``, ``delta_high``)."""
    from deployable.evaluation.metrics.faithfulness import faithfulness

    ref = logits_of(candidates[reference], texts)
    stats: dict[str, dict[str, float]] = {}
    for name, p in candidates.items():
        p.set_threads(0)
        logits = ref if name == reference else logits_of(p, texts)
        delta = faithfulness(labels, logits, ref).accuracy_delta  # paired bootstrap over the test texts
        stats[name] = {
            "accuracy": float((logits.argmax(1) == labels).mean()),
            "agreement": float((logits.argmax(1) == ref.argmax(1)).mean()),
            "delta_low": delta.low,
            "delta_high": delta.high,
        }
    return stats
