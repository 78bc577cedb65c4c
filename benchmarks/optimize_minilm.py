"""Speed, size and faithfulness of deployable's best MiniLM variant against the common baselines, side by side.

On the support-tickets test texts, end to end including tokenization, in one process:
  eager     PyTorch eager FP32 (the source model: all-MiniLM-L6-v2 + the trained head);
  default   the common hand-written recipe: torch.onnx.export, then onnxruntime ``quantize_dynamic`` with its
            default settings;
  best      deployable's fastest variant that its optimization accepted (within tolerance on validation).
For each: p50 latency at batch 1 (1 thread), throughput at batch 32 (all cores), test accuracy, agreement with
eager on the test split, file size. Candidates are timed in interleaved rounds so drift hits them alike.
The ratios are printed last.

Run: .venv/bin/python benchmarks/optimize_minilm.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import yaml

import deployable
from deployable.config import load_config
from deployable.data import load_dataset
from deployable.evaluation.batching import iter_batches
from deployable.models import load_predictor
from deployable.models.sources import model_spec
from deployable.optimize.export import export_onnx

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "support-tickets" / "deployable.yaml"
RECIPES = [
    "onnx-fused",
    {"recipe": "int8-dynamic", "name": "int8-dynamic"},
    {"recipe": "int8-dynamic", "name": "fused-int8-dynamic", "parent": "onnx-fused"},
    {"recipe": "int8-static", "name": "int8-static"},
]


def _logits(predictor, texts: list[str], batch_size: int = 32) -> np.ndarray:
    out = None
    for index, batch in iter_batches(texts, batch_size):
        logits = predictor.forward(batch).logits
        if out is None:
            out = np.empty((len(texts), logits.shape[1]), np.float32)
        out[index] = logits
    return out


def _set_threads(predictor, n: int) -> None:
    import torch

    torch.set_num_threads(n)
    predictor.set_threads(n)


def _time_round(predictor, texts: list[str], batch_size: int, calls: int, offset: int) -> list[float]:
    times = []
    for i in range(calls):
        start = (offset + i) * batch_size
        batch = [texts[(start + j) % len(texts)] for j in range(batch_size)]
        t0 = time.perf_counter()
        predictor.forward(batch)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    data = yaml.safe_load(CONFIG.read_text())
    data["optimize"] = {"recipes": RECIPES}
    data["targets"] = []
    project = load_config(data, base_dir=CONFIG.parent)
    print("optimizing (cached after the first run)...")
    result = deployable.run(project)
    accepted = [v for v in result.variants if v.status == "accepted" and v.kind == "onnx"]
    for v in result.variants[1:]:
        print(f"  {v.name:20s} {v.status:9s} {v.size_bytes / 1e6:6.1f} MB {v.reason}")
    dataset = load_dataset(project)
    test = dataset.split("test")
    texts, labels = test.inputs, test.labels

    eager = load_predictor(model_spec(project))
    tmp = Path(tempfile.mkdtemp(prefix="deployable-bench-"))
    spec = export_onnx(eager, tmp / "fp32.onnx", sample=texts[:4], label_names=dataset.label_names)
    from onnxruntime.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(str(tmp / "fp32.onnx"), str(tmp / "default.onnx"))
    default = load_predictor({**spec, "path": str(tmp / "default.onnx")})
    candidates = {"eager": eager, "default": default}
    sizes = {"eager": result.variants[0].size_bytes, "default": (tmp / "default.onnx").stat().st_size}
    # the fastest accepted variant at batch 1, by a short timing of each
    quick = {}
    for v in accepted:
        p = load_predictor(v.spec)
        _set_threads(p, 1)
        _time_round(p, texts, 1, 10, 0)
        quick[v.name] = (np.median(_time_round(p, texts, 1, 60, 1)), v, p)
    if not quick:
        print("no ONNX variant was accepted: nothing to compare")
        return
    _, best_variant, best = min(quick.values(), key=lambda t: t[0])
    candidates["best"] = best
    sizes["best"] = best_variant.size_bytes
    print(f"best variant: {best_variant.name}")

    ref = _logits(eager, texts)
    stats: dict[str, dict[str, float]] = {}
    for name, p in candidates.items():
        _set_threads(p, os.cpu_count() or 1)
        logits = ref if name == "eager" else _logits(p, texts)
        stats[name] = {
            "accuracy": float((logits.argmax(1) == labels).mean()),
            "agreement": float((logits.argmax(1) == ref.argmax(1)).mean()),
        }
    bs1 = {n: [] for n in candidates}
    bs32 = {n: [] for n in candidates}
    for r in range(args.rounds):
        for name, p in candidates.items():
            _set_threads(p, 1)
            _time_round(p, texts, 1, 5, r)
            bs1[name] += _time_round(p, texts, 1, 60, r * 60)
            _set_threads(p, os.cpu_count() or 1)
            _time_round(p, texts, 32, 1, r)
            bs32[name] += _time_round(p, texts, 32, 3, r * 3)
    print(f"{'':8s} {'p50 bs1 ms':>11s} {'items/s bs32':>13s} {'accuracy':>9s} {'agreement':>10s} {'size MB':>8s}")
    for name in candidates:
        p50 = 1000 * float(np.median(bs1[name]))
        thr = 32 / float(np.mean(bs32[name]))
        stats[name].update(p50=p50, throughput=thr)
        s = stats[name]
        print(f"{name:8s} {p50:11.2f} {thr:13.1f} {s['accuracy']:9.2%} {s['agreement']:10.2%} {sizes[name] / 1e6:8.1f}")
    e, d, b = stats["eager"], stats["default"], stats["best"]
    print(
        f"best vs eager: {e['p50'] / b['p50']:.2f}x faster at batch 1, {b['throughput'] / e['throughput']:.2f}x "
        f"throughput at batch 32, {sizes['eager'] / sizes['best']:.2f}x smaller, accuracy "
        f"{100 * (b['accuracy'] - e['accuracy']):+.2f} points, agreement {b['agreement']:.2%}"
    )
    print(
        f"best vs default quantize_dynamic: {d['p50'] / b['p50']:.2f}x faster at batch 1, "
        f"{b['throughput'] / d['throughput']:.2f}x throughput at batch 32, agreement {b['agreement']:.2%} vs "
        f"{d['agreement']:.2%}"
    )


if __name__ == "__main__":
    main()
