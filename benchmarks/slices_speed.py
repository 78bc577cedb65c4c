"""Speed of ``slice_metrics`` against a plain scikit-learn + scipy implementation of the same numbers.

The work (the size the removed ``test_slice_metrics_is_fast`` timed): 2,000 samples of 5 classes, two slice
columns of 10 values each (20 slices), 1,000 bootstrap resamples per slice, 95% level, 15 ECE bins. In one process,
alternating, several times:
  ours   ``deployable.evaluation.metrics.slice_metrics`` (vectorized percentile bootstrap, confusion-matrix F1,
         binned ECE);
  naive  per slice: a boolean mask, ``sklearn.metrics.accuracy_score`` and ``f1_score(labels=present,
         average="macro")``, ``scipy.stats.bootstrap(method="percentile", vectorized=True)`` of the accuracy with
         1,000 resamples, and ECE by ``np.digitize`` into 15 uniform bins.
Before timing, the point values (accuracy, macro-F1, ECE) of both are checked to agree to 1e-12, so both compute
the same thing. Wall time only, no threads are pinned. Printed: the time of each run, then the best of each and, last,
the ratio naive/ours (above 1: slice_metrics is faster).

Run: .venv/bin/python benchmarks/slices_speed.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import sklearn.metrics as skm
from scipy import stats

from deployable.evaluation.metrics import slice_metrics

N, N_CLASSES, N_BOOTSTRAP, LEVEL, N_BINS = 2000, 5, 1000, 0.95, 15


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=2.0, size=(N, N_CLASSES))
    prob = np.exp(z - z.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    y = prob.argmax(axis=1)
    flip = rng.random(N) > 0.7
    y[flip] = rng.integers(0, N_CLASSES, size=int(flip.sum()))
    slices = {"a": rng.integers(0, 10, N).astype(str), "b": rng.integers(0, 10, N).astype(str)}
    return y, prob, slices


def _ece(y: np.ndarray, prob: np.ndarray) -> float:
    conf, pred = prob.max(axis=1), prob.argmax(axis=1)
    correct = (pred == y).astype(float)
    edges = np.linspace(0.0, 1.0, N_BINS + 1)
    bins = np.clip(np.digitize(conf, edges[1:-1], right=False), 0, N_BINS - 1)
    total = 0.0
    for b in range(N_BINS):
        members = bins == b
        if members.any():
            total += members.sum() / len(y) * abs(correct[members].mean() - conf[members].mean())
    return float(total)


def naive(y: np.ndarray, prob: np.ndarray, slices: dict[str, np.ndarray], seed: int = 0) -> list[tuple]:
    pred = prob.argmax(axis=1)
    rng = np.random.default_rng(seed)
    out = []
    for column, values in slices.items():
        for value in sorted(set(values.tolist())):
            mask = values == value
            yt, yp = y[mask], pred[mask]
            acc = skm.accuracy_score(yt, yp)
            f1 = skm.f1_score(yt, yp, labels=np.unique(yt), average="macro", zero_division=0)
            res = stats.bootstrap(
                ((yt == yp).astype(float),),
                lambda c, axis=-1: c.mean(axis=axis),
                n_resamples=N_BOOTSTRAP,
                confidence_level=LEVEL,
                method="percentile",
                vectorized=True,
                rng=rng,
            )
            ci = res.confidence_interval
            out.append((column, value, acc, f1, _ece(yt, prob[mask]), float(ci.low), float(ci.high)))
    return out


def ours(y: np.ndarray, prob: np.ndarray, slices: dict[str, np.ndarray]) -> list[tuple]:
    result = slice_metrics(y, prob, slices=slices, n_bootstrap=N_BOOTSTRAP, level=LEVEL, n_bins=N_BINS)
    return [(s.column, s.value, s.accuracy.value, s.macro_f1, s.ece, s.accuracy.low, s.accuracy.high) for s in result]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    y, prob, slices = data()
    a, b = ours(y, prob, slices), naive(y, prob, slices)  # also warms up imports and caches
    assert len(a) == len(b) == 20
    for x, z in zip(a, b, strict=True):
        assert x[:2] == z[:2] and np.allclose(x[2:5], z[2:5], rtol=0, atol=1e-12), (x, z)
    ours_times, naive_times = [], []
    for i in range(args.repeats):
        start = time.perf_counter()
        ours(y, prob, slices)
        ours_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        naive(y, prob, slices)
        naive_times.append(time.perf_counter() - start)
        print(f"repeat {i + 1}: ours {ours_times[-1] * 1000:.1f} ms, naive {naive_times[-1] * 1000:.1f} ms")
    o, n = min(ours_times), min(naive_times)
    print(f"slice_metrics, 2,000 samples, 20 slices, 1,000 resamples (best of {args.repeats}): {o * 1000:.1f} ms")
    print(f"scikit-learn + scipy.stats.bootstrap, same work (best of {args.repeats}): {n * 1000:.1f} ms")
    print(f"speed ratio naive/ours: {n / o:.2f}")


if __name__ == "__main__":
    main()
