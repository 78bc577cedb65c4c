"""Efficiency on a named hardware target, measured in a fresh process pinned to the target's threads.

A fresh process gives honest load time and peak memory (the resident set a server of this variant would need,
runtime included) and keeps the thread setting from leaking into the rest of the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deployable.config import EfficiencyConfig
from deployable.core.errors import DeployableError
from deployable.core.records import Efficiency, LatencyStats, Target, Variant
from deployable.data.dataset import Split

if TYPE_CHECKING:
    from deployable.evaluation.predict import Progress

MAX_TIMED_CALLS = 2000


def latency_stats(times_s: list[float] | np.ndarray, batch_size: int, price_per_hour: float | None) -> LatencyStats:
    """Percentiles, throughput and cost from per-call wall times.

    ``throughput = batch_size / mean latency``; ``cost per million = price_per_hour / (3600 * throughput) * 1e6``.
    """
    t = np.asarray(times_s, dtype=float) * 1000.0
    mean = float(t.mean())
    throughput = batch_size / (mean / 1000.0)
    cost = None if price_per_hour is None else price_per_hour / (3600.0 * throughput) * 1e6
    p50, p95, p99 = (float(v) for v in np.percentile(t, [50, 95, 99]))
    return LatencyStats(
        batch_size=batch_size,
        repetitions=len(t),
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        mean_ms=mean,
        throughput_per_s=throughput,
        cost_per_million=cost,
    )


def measure_efficiency(
    variant: Variant, target: Target, split: Split, cfg: EfficiencyConfig, *, progress: Progress | None = None
) -> Efficiency:
    """Load ``variant`` in a child process with ``target.threads`` threads and time real inputs from ``split``."""
    task = progress.task(f"latency {variant.name} · {target.name}", 1) if progress is not None else None
    with tempfile.TemporaryDirectory(prefix="deployable-probe-") as tmp:
        inputs = Path(tmp) / "inputs.npz"
        n = min(len(split), max(256, max(target.batch_sizes)))
        sample = split.inputs[:n]
        if isinstance(sample, list):
            np.savez(inputs, text=np.asarray(sample, dtype=str))
        else:
            np.savez(inputs, x=np.asarray(sample, dtype=np.float32))
        request = {
            "spec": variant.spec,
            "threads": target.threads,
            "batch_sizes": list(target.batch_sizes),
            "warmup": cfg.warmup,
            "min_repetitions": cfg.min_repetitions,
            "max_seconds": cfg.max_seconds,
            "inputs": str(inputs),
        }
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(target.threads)
        proc = subprocess.run(
            [sys.executable, "-m", "deployable.evaluation._probe"],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise DeployableError(f"measuring '{variant.name}' on target '{target.name}' failed: {last}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if progress is not None:
        progress.advance(task)
        progress.done(task)
    latency = tuple(latency_stats(r["times"], r["batch_size"], target.price_per_hour) for r in result["runs"])
    within = None if target.memory_budget_mb is None else result["peak_memory_mb"] <= target.memory_budget_mb
    return Efficiency(
        target=target.name,
        threads=target.threads,
        file_size_mb=variant.size_bytes / 2**20,
        load_time_s=result["load_time_s"],
        peak_memory_mb=result["peak_memory_mb"],
        latency=latency,
        within_memory_budget=within,
    )
