"""Speed, size and faithfulness of deployable's best MiniLM variant against the common baselines, side by side.

On the support-tickets test texts, end to end including tokenization, in one process:
  eager     PyTorch eager FP32 as commonly written: tokenizer(padding=True), AutoModel, mean pooling, the head;
  default   the common hand-written recipe: torch.onnx.export, onnxruntime ``quantize_dynamic`` with its default
            settings, run the same hand-written way (one session.run per batch);
  best      deployable's fastest variant that its optimization of the example config accepted (within tolerance),
            served by deployable's predictor (which splits a batch into runs of similar length).
For each: p50 latency at batch 1 (1 thread), throughput at batch 32 (all cores), test accuracy, agreement with
eager on the test split, file size. Candidates are timed in interleaved rounds so drift hits them alike; each
ratio is printed as the ratio of the pooled medians with, beside it, its range over the rounds (the same ratio
computed within each round alone), so a reader sees how far from a target it stands. Target: best at least 4x
eager at batch 1 and at batch 32, the whole range above it.

A second table runs eager and default through deployable's predictor as well, so the variant's own share of the
speed-up (same runtime, different model file) is printed apart from the runtime's.

Run: .venv/bin/python benchmarks/optimize_minilm.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from _timing import Deployable, faithfulness_stats, time_round

import deployable
from deployable.config import load_config
from deployable.data import load_dataset
from deployable.models import load_predictor
from deployable.models.sources import model_spec
from deployable.optimize.export import export_onnx

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "support-tickets" / "deployable.yaml"


class HandWritten:
    """The baselines as people write them: pad the batch to its longest text, one forward call per batch."""

    def __init__(self, encoder: str, head: str, onnx_path: Path | None = None, max_length: int = 128):
        import torch
        from safetensors.numpy import load_file
        from transformers import AutoModel, AutoTokenizer

        self.torch = torch
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(encoder)
        h = load_file(head)
        self.w, self.b = h["weight"], h["bias"]
        self.onnx_path = onnx_path
        if onnx_path is None:
            self.model = AutoModel.from_pretrained(encoder).eval()
        else:
            self.set_threads(0)

    def set_threads(self, n: int) -> None:
        if self.onnx_path is None:
            self.torch.set_num_threads(n or os.cpu_count() or 1)
            return
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = n
        self.session = ort.InferenceSession(str(self.onnx_path), so, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def forward(self, texts: list[str]) -> np.ndarray:
        kind = "pt" if self.onnx_path is None else "np"
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors=kind)
        if self.onnx_path is None:
            with self.torch.inference_mode():
                hidden = self.model(**enc).last_hidden_state.numpy()
            mask = enc["attention_mask"].numpy()
        else:
            out = self.session.run(None, {k: np.asarray(enc[k], np.int64) for k in self.inputs})[0]
            if out.ndim == 2:  # the exported graph holds pooling and head: it gives logits
                return out
            hidden, mask = out, enc["attention_mask"]
        m = mask[..., None].astype(np.float32)
        emb = (hidden * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
        emb /= np.clip(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12, None)
        return emb @ self.w.T + self.b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    project = load_config(CONFIG)
    project = project.model_copy(update={"targets": []})
    print("optimizing the example's recipes (cached after the first run)...")
    result = deployable.run(project)
    for v in result.variants[1:]:
        print(f"  {v.name:14s} {v.status:9s} {v.size_bytes / 1e6:6.1f} MB {v.reason}")
    accepted = [v for v in result.variants if v.status == "accepted" and v.kind == "onnx"]
    dataset = load_dataset(project)
    texts, labels = dataset.split("test").inputs, dataset.split("test").labels

    source = load_predictor(model_spec(project))
    tmp = Path(tempfile.mkdtemp(prefix="deployable-bench-"))
    spec = export_onnx(source, tmp / "fp32.onnx", sample=texts[:4], label_names=dataset.label_names)
    from onnxruntime.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)  # its advice to pre-process, printed at every call
        quantize_dynamic(str(tmp / "fp32.onnx"), str(tmp / "default.onnx"))
        logging.disable(logging.NOTSET)
    # the fastest accepted variant at batch 1, by a short timing of each
    quick = {}
    for v in accepted:
        p = Deployable(load_predictor(v.spec))
        p.set_threads(1)
        time_round(p, texts, 1, 10, 0)
        quick[v.name] = (np.median(time_round(p, texts, 1, 60, 1)), v, p)
    if not quick:
        print("no ONNX variant was accepted: nothing to compare")
        return
    _, best_variant, best = min(quick.values(), key=lambda t: t[0])
    print(f"best variant: {best_variant.name}")
    encoder, head = str(source.spec["encoder"]), str(source.spec["head"])
    candidates = {
        "eager": HandWritten(encoder, head),
        "default": HandWritten(encoder, head, tmp / "default.onnx"),
        "best": best,
        "eager*": Deployable(source),
        "default*": Deployable(load_predictor({**spec, "path": str(tmp / "default.onnx")})),
    }
    sizes = {"eager": result.variants[0].size_bytes, "default": (tmp / "default.onnx").stat().st_size}
    sizes.update({"best": best_variant.size_bytes, "eager*": sizes["eager"], "default*": sizes["default"]})

    stats = faithfulness_stats(candidates, "eager", texts, labels)
    bs1 = {n: [] for n in candidates}
    bs32 = {n: [] for n in candidates}
    rounds1 = {n: [] for n in candidates}  # per round: p50 at batch 1 (s), items/s at batch 32
    rounds32 = {n: [] for n in candidates}
    for r in range(args.rounds):
        for name, p in candidates.items():
            p.set_threads(1)
            time_round(p, texts, 1, 5, r)
            times = time_round(p, texts, 1, 60, r * 60)
            bs1[name] += times
            rounds1[name].append(float(np.median(times)))
            p.set_threads(0)
            time_round(p, texts, 32, 1, r)
            times = time_round(p, texts, 32, 3, r * 3)
            bs32[name] += times
            rounds32[name].append(32 / float(np.mean(times)))
    print("* = served by deployable's predictor (length-grouped batches); others as hand-written")
    print(f"{'':9s} {'p50 bs1 ms':>11s} {'items/s bs32':>13s} {'accuracy':>9s} {'agreement':>10s} {'size MB':>8s}")
    for name in candidates:
        p50 = 1000 * float(np.median(bs1[name]))
        thr = 32 / float(np.mean(bs32[name]))
        stats[name].update(p50=p50, throughput=thr)
        s = stats[name]
        print(f"{name:9s} {p50:11.2f} {thr:13.1f} {s['accuracy']:9.2%} {s['agreement']:10.2%} {sizes[name] / 1e6:8.1f}")
    b = stats["best"]

    def spread(other: str, faster: bool) -> str:
        """``(3.91-4.20 across 5 rounds)``: the ratio of one round's numbers, best against ``other``, per round."""
        if faster:
            ratios = [o / x for o, x in zip(rounds1[other], rounds1["best"], strict=True)]
        else:
            ratios = [x / o for o, x in zip(rounds32[other], rounds32["best"], strict=True)]
        return f"({min(ratios):.2f}-{max(ratios):.2f} across {len(ratios)} rounds)"

    for label, e_key, d_key in (("as commonly written", "eager", "default"), ("same runtime", "eager*", "default*")):
        e, d = stats[e_key], stats[d_key]
        print(
            f"best vs {e_key} ({label}): {e['p50'] / b['p50']:.2f}x {spread(e_key, True)} faster at batch 1, "
            f"{b['throughput'] / e['throughput']:.2f}x {spread(e_key, False)} throughput at batch 32, "
            f"{sizes[e_key] / sizes['best']:.2f}x "
            f"smaller, accuracy {100 * (b['accuracy'] - stats['eager']['accuracy']):+.2f} points "
            f"[{100 * b['delta_low']:+.2f}, {100 * b['delta_high']:+.2f}] (paired 95% interval, n={len(labels)}), "
            f"agreement {b['agreement']:.2%}"
        )
        print(
            f"best vs {d_key} quantize_dynamic ({label}): {d['p50'] / b['p50']:.2f}x {spread(d_key, True)} faster at "
            f"batch 1, {b['throughput'] / d['throughput']:.2f}x {spread(d_key, False)} throughput at batch 32, "
            f"agreement {b['agreement']:.2%} vs "
            f"{d['agreement']:.2%}"
        )


if __name__ == "__main__":
    main()
