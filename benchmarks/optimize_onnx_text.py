"""Speed, size and faithfulness of deployable's int8-dynamic variant of a user-exported ONNX text model, side by side.

The model is examples/ticket-channel: all-MiniLM-L6-v2, mean pooling and a logistic-regression head that the user
exported as one ONNX graph (build_model.py, the example's prepare step). On the example's 224 test tickets, end to
end including tokenization, in one process:
  user      the user's graph run as they would run it: the tokenizer saved beside it (padding=True, truncation,
            max_length 256), one onnxruntime session.run per batch;
  source*   the same graph served by deployable's predictor (which splits a batch into runs of similar length);
  int8      deployable's int8-dynamic variant of that graph, made with the example's default settings and accepted
            within the default tolerance, served by deployable's predictor.
For each: p50 latency at batch 1 (1 thread), throughput at batch 32 (all cores), test accuracy (the int8 variant's
change with a paired 95% bootstrap interval), agreement with user's predictions on the test split, file size.

The candidates are timed in interleaved rounds (each round: 5 untimed and 60 timed calls at batch 1, then 1
untimed and 3 timed calls at batch 32, every candidate on the same texts), so drift hits them alike. Each ratio
is computed per round, and printed as its median over the rounds with its spread (min-max) beside it:
  int8 vs user       the whole gain a user sees (model file and runtime);
  int8 vs source*    the model file's own share (same runtime, different graph);
  source* vs user    the runtime's share (deployable's predictor on the user's own graph).

Run: .venv/bin/python benchmarks/optimize_onnx_text.py [--rounds 5]
(the first run builds the model and the variant, a few minutes on 2 cores; later runs reuse the example's cache)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
from _timing import Deployable, faithfulness_stats, time_round

import deployable
from deployable.config import load_config
from deployable.data import load_dataset
from deployable.models import load_predictor
from deployable.models.sources import model_spec

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "ticket-channel" / "deployable.yaml"


class UserSession:
    """The user's graph as they run it: their tokenizer, padding to the batch's longest text, one call per batch."""

    def __init__(self, graph: Path, tokenizer: Path, max_length: int):
        from transformers import AutoTokenizer

        self.graph, self.max_length = graph, max_length
        self.tokenizer = AutoTokenizer.from_pretrained(str(tokenizer))
        self.set_threads(0)

    def set_threads(self, n: int) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = n
        self.session = ort.InferenceSession(str(self.graph), so, providers=["CPUExecutionProvider"])

    def forward(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="np")
        feed = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        return self.session.run(["logits"], feed)[0]


def _spread(ratios: list[float]) -> str:
    """``2.21x (2.05-2.37 across 5 rounds)``: the median of the per-round ratios, then the smallest and largest."""
    return f"{np.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f} across {len(ratios)} rounds)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    project = load_config(CONFIG)
    project = project.model_copy(update={"targets": []})  # this script times them itself
    print("optimizing the example's recipes (cached after the first run)...")
    result = deployable.run(project)
    for v in result.variants[1:]:
        r = v.recipe
        detail = ""
        if "quantized_nodes" in r:
            check = r["tolerance_check"]
            detail = (
                f"{r['quantized_nodes']} nodes quantized, {len(r['excluded_nodes'])} kept in float, tolerance "
                f"{check['outcome']} on {check['split']} (n={check['n']}, agreement {check['agreement']:.1%})"
            )
        print(f"  {v.name:14s} {v.status:9s} {v.size_bytes / 1e6:6.1f} MB {v.reason or detail}")
    int8 = next((v for v in result.variants if v.name == "int8-dynamic"), None)
    if int8 is None or int8.status != "accepted":
        print("int8-dynamic was not accepted: nothing to compare")
        return
    dataset = load_dataset(project)
    texts, labels = dataset.split("test").inputs, dataset.split("test").labels

    spec = model_spec(project)
    candidates = {
        "user": UserSession(Path(spec["path"]), Path(spec["tokenizer"]), spec["max_length"]),
        "source*": Deployable(load_predictor(spec)),
        "int8": Deployable(load_predictor(int8.spec)),
    }
    sizes = {"user": result.variants[0].size_bytes, "source*": result.variants[0].size_bytes, "int8": int8.size_bytes}

    stats = faithfulness_stats(candidates, "user", texts, labels)
    bs1: dict[str, list[list[float]]] = {n: [] for n in candidates}
    bs32: dict[str, list[list[float]]] = {n: [] for n in candidates}
    for r in range(args.rounds):
        for name, p in candidates.items():
            p.set_threads(1)
            time_round(p, texts, 1, 5, r)
            bs1[name].append(time_round(p, texts, 1, 60, r * 60))
            p.set_threads(0)
            time_round(p, texts, 32, 1, r)
            bs32[name].append(time_round(p, texts, 32, 3, r * 3))

    def p50(name: str, r: int) -> float:
        return 1000 * float(np.median(bs1[name][r]))

    def throughput(name: str, r: int) -> float:
        return 32 * len(bs32[name][r]) / float(np.sum(bs32[name][r]))

    print(f"* = served by deployable's predictor (length-grouped batches); user = hand-written; {args.rounds} rounds")
    print(f"{'':8s} {'p50 bs1 ms':>11s} {'items/s bs32':>13s} {'accuracy':>9s} {'agreement':>10s} {'size MB':>8s}")
    for name in candidates:
        pooled_p50 = 1000 * float(np.median(np.concatenate(bs1[name])))
        pooled_thr = 32 * sum(map(len, bs32[name])) / float(np.sum(np.concatenate(bs32[name])))
        s = stats[name]
        print(
            f"{name:8s} {pooled_p50:11.2f} {pooled_thr:13.1f} {s['accuracy']:9.2%} {s['agreement']:10.2%} "
            f"{sizes[name] / 1e6:8.1f}"
        )
    rounds = range(args.rounds)
    for fast, slow, label in (
        ("int8", "user", "the whole gain"),
        ("int8", "source*", "same runtime: the model file's share"),
        ("source*", "user", "same graph: the runtime's share"),
    ):
        faster = [p50(slow, r) / p50(fast, r) for r in rounds]
        more = [throughput(fast, r) / throughput(slow, r) for r in rounds]
        print(
            f"{fast} vs {slow} ({label}): {_spread(faster)} faster at batch 1, {_spread(more)} throughput at "
            f"batch 32, {sizes[slow] / sizes[fast]:.2f}x smaller"
        )
    b = stats["int8"]
    print(
        f"int8 accuracy {100 * (b['accuracy'] - stats['user']['accuracy']):+.2f} points "
        f"[{100 * b['delta_low']:+.2f}, {100 * b['delta_high']:+.2f}] against user (paired 95% interval, "
        f"n={len(labels)}), agreement {b['agreement']:.2%}; source* agreement {stats['source*']['agreement']:.2%}"
    )


if __name__ == "__main__":
    main()
