"""Cost of the robustness and OOD evaluation over the bare forward passes it needs, on the support-tickets example.

In one process, alternating, several times, for the source model:
  full  ``evaluate_variant`` with a cold prediction store and a freshly loaded dataset (so the corrupted copies are
        built again): forward passes through the store, every metric, the OOD set and the Mahalanobis fit on the
        training features, and the whole corruption suite on the seeded test sample;
  bare  the very batches the full run passed to ``forward``, recorded by a proxy around the predictor, replayed in
        the same order through the bare predictor, and nothing else.
The batches are recorded, not re-derived, so whatever the evaluation comes to need (a new split, a new attack) is
counted without touching this file; only forward calls are replayed (a white-box attack's gradient passes through
``module`` would be counted in full alone). Latency measurement on targets is off (it is a separate, deliberate
cost). Torch and the predictor use every core in both. Printed: the forward passes by the part of the evaluation
that asked for them, the time the full run spent outside forward, and last the ratio of the median full run to the
median bare run. Target: at most 1.2.

Run: .venv/bin/python benchmarks/robustness_cost.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from deployable.config import load_config
from deployable.data import load_dataset
from deployable.evaluation.runner import evaluate_variant
from deployable.evaluation.store import PredictionStore
from deployable.models import ForwardOutput, Predictor, load_predictor, source_variant
from deployable.models.sources import model_spec
from deployable.prepare import run_prepare

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "support-tickets" / "deployable.yaml"


class Recording(Predictor):
    """The wrapped predictor, unchanged, that keeps every batch given to ``forward``, the part of the evaluation
    that asked for it (the function ``evaluate_variant`` called) and the seconds the call took."""

    def __init__(self, inner: Predictor):
        self.inner = inner
        self.spec, self.files, self.label_names = inner.spec, inner.files, inner.label_names
        self.calls: list[tuple[str, Any, float]] = []

    def __getattr__(self, name: str) -> Any:  # anything else the evaluation looks for (e.g. ``module``)
        return getattr(self.inner, name)

    @property
    def fingerprint(self) -> str:
        return self.inner.fingerprint

    def set_threads(self, n: int) -> None:
        self.inner.set_threads(n)

    def forward(self, batch: Any) -> ForwardOutput:
        frame = sys._getframe(1)
        while frame.f_back is not None and frame.f_back.f_code.co_name != "evaluate_variant":
            frame = frame.f_back
        start = time.perf_counter()
        out = self.inner.forward(batch)
        self.calls.append((frame.f_code.co_name, batch, time.perf_counter() - start))
        return out


def full(project, cfg, predictor: Predictor) -> tuple[float, Recording]:
    dataset = load_dataset(project)  # fresh: the corrupted inputs are memoized on the dataset
    recording = Recording(predictor)
    folder = Path(tempfile.mkdtemp(prefix="deployable-bench-"))
    start = time.perf_counter()
    evaluate_variant(source_variant(predictor), recording, dataset, cfg, PredictionStore(folder))
    elapsed = time.perf_counter() - start
    shutil.rmtree(folder)
    return elapsed, recording


def bare(predictor: Predictor, calls: list[tuple[str, Any, float]]) -> tuple[float, dict[str, float]]:
    per_part: dict[str, float] = defaultdict(float)
    start = time.perf_counter()
    for part, batch, _ in calls:
        t = time.perf_counter()
        predictor.forward(batch)
        per_part[part] += time.perf_counter() - t
    return time.perf_counter() - start, per_part


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    project = load_config(CONFIG)
    run_prepare(project)
    cfg = project.evaluate
    cfg = cfg.model_copy(update={"efficiency": cfg.efficiency.model_copy(update={"enabled": False})})
    threads = os.cpu_count() or 1
    print(f"cores: {threads}, load average at start: {os.getloadavg()[0]:.2f} (anything else running skews both)")
    torch.set_num_threads(threads)
    predictor = load_predictor(model_spec(project))
    predictor.set_threads(threads)
    _, recording = full(project, cfg, predictor)  # warm-up of both: imports, files, allocator
    bare(predictor, recording.calls)
    full_times, bare_times, outside = [], [], []
    full_parts, bare_parts = [], []
    for i in range(args.repeats):
        elapsed, recording = full(project, cfg, predictor)
        full_times.append(elapsed)
        outside.append(elapsed - sum(seconds for *_, seconds in recording.calls))
        full_parts.append(defaultdict(float))
        for part, _, seconds in recording.calls:
            full_parts[-1][part] += seconds
        elapsed, per_part = bare(predictor, recording.calls)
        bare_times.append(elapsed)
        bare_parts.append(per_part)
        print(f"repeat {i + 1}: full {full_times[-1]:.2f} s, bare {bare_times[-1]:.2f} s")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print(f"forward passes by the part of evaluate_variant that asked (median of {args.repeats}):")
    for part in dict.fromkeys(part for part, *_ in recording.calls):
        n = sum(len(batch) for p, batch, _ in recording.calls if p == part)
        calls = sum(p == part for p, *_ in recording.calls)
        f = statistics.median(parts[part] for parts in full_parts)
        b = statistics.median(parts[part] for parts in bare_parts)
        print(f"  {part}: {calls} calls, {n} samples; forward in full {f:.2f} s, bare {b:.2f} s")
    f, b = statistics.median(full_times), statistics.median(bare_times)
    n = sum(len(batch) for _, batch, _ in recording.calls)
    print(f"full evaluation, {len(recording.calls)} forward calls on {n} samples (median of {args.repeats}): {f:.2f} s")
    print(f"  of which outside forward (median): {statistics.median(outside):.2f} s")
    print(f"bare forward passes of the same batches (median of {args.repeats}): {b:.2f} s")
    print(f"ratio full/bare: {f / b:.3f} (target <= 1.2)")


if __name__ == "__main__":
    main()
