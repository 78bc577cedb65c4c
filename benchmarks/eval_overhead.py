"""Overhead of the full evaluation over the bare forward passes it needs, on the support-tickets example.

OUT OF DATE (to be rebuilt like ``robustness_cost.py``, by recording and replaying every forward call): since the
example gained optimization, robustness, attacks, the audit and a gate, ``full`` below runs all of them while
``bare`` still replays only the test and validation passes, so the printed ratio is not the overhead described here.

In one process, alternating, several times:
  bare  load the model and the texts, run the forward passes the evaluation needs (test + validation splits,
        same batches) and nothing else;
  full  ``deployable.run`` with a cold prediction store: load, forward passes through the store, every metric
        (quality, calibration with temperature scaling, slices with bootstrap intervals), the per-sample
        Parquet files, results.json and the HTML report with its plots.
Latency measurement on targets is switched off in both: it is a separate, deliberate cost (repeated timed
calls in child processes), not overhead. The ratio of the fastest full run to the fastest bare run is the
last line printed. Target: at most 1.15.

Run: .venv/bin/python benchmarks/eval_overhead.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import deployable
from deployable.config import load_config
from deployable.evaluation.batching import iter_batches
from deployable.models import load_predictor
from deployable.models.sources import model_spec
from deployable.prepare import run_prepare

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "support-tickets" / "deployable.yaml"


def bare(project) -> float:
    start = time.perf_counter()
    predictor = load_predictor(model_spec(project))
    for split in (project.evaluate.test_split, project.evaluate.calibration_split):
        path = project.path(project.data.splits[split])
        texts = [json.loads(line)[project.data.text_column] for line in path.read_text(encoding="utf-8").splitlines()]
        for _, batch in iter_batches(texts, project.evaluate.batch_size):
            predictor.forward(batch)
    return time.perf_counter() - start


def full(project) -> float:
    out = Path(tempfile.mkdtemp(prefix="deployable-bench-")) / "run"
    start = time.perf_counter()
    deployable.run(project, out, use_cache=False)
    elapsed = time.perf_counter() - start
    shutil.rmtree(out.parent)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    project = load_config(CONFIG)
    run_prepare(project)
    data = project.model_dump()
    data["evaluate"]["efficiency"]["enabled"] = False
    data.pop("base_dir")
    project = load_config(data, base_dir=CONFIG.parent)
    full(project)  # warm caches of the file system and the libraries' lazy imports
    bare_times, full_times = [], []
    for i in range(args.repeats):
        bare_times.append(bare(project))
        full_times.append(full(project))
        print(f"repeat {i + 1}: bare {bare_times[-1]:.2f} s, full {full_times[-1]:.2f} s")
    b, f = min(bare_times), min(full_times)
    print(f"bare forward passes (best of {args.repeats}): {b:.2f} s")
    print(f"full evaluation incl. metrics and report (best of {args.repeats}): {f:.2f} s")
    print(f"overhead ratio full/bare: {f / b:.3f}")


if __name__ == "__main__":
    main()
