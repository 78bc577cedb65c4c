"""Tokenization with dynamic padding, and sentence-embedding pooling, shared by torch and ONNX text models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from deployable.core._imports import require
from deployable.core.errors import ModelError


def quiet_transformers() -> Any:
    """transformers, with its per-load progress bars off (deployable shows its own progress)."""
    transformers = require("transformers", feature="text models")
    transformers.utils.logging.disable_progress_bar()
    return transformers


def load_tokenizer(folder: Path) -> Any:
    transformers = quiet_transformers()
    try:
        return transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"{folder}: no usable tokenizer in this folder ({exc})",
            hint="point to a folder with tokenizer.json or vocab files",
        ) from exc


def tokenize(tokenizer: Any, texts: list[str], max_length: int, *, framework: str = "np") -> dict[str, Any]:
    """Pad to the longest text in the batch (not to ``max_length``), truncating longer ones."""
    return dict(
        tokenizer(list(texts), padding="longest", truncation=True, max_length=max_length, return_tensors=framework)
    )


# Cost of one extra forward call, in padded tokens: what splitting a batch must save to be worth a call.
SPLIT_OVERHEAD_TOKENS = 32


def length_groups(lengths: Any, overhead_tokens: int = SPLIT_OVERHEAD_TOKENS) -> list[np.ndarray]:
    """Split one padded batch into runs of similar length, at the least total cost.

    A run of ``n`` texts padded to ``L`` tokens costs ``overhead_tokens + n * L``; texts sorted by length are
    cut into contiguous runs by dynamic programming (exact, O(B^2)). A batch of ten short texts and one long one
    becomes two calls instead of eleven texts padded to the long one. Returns index arrays into the batch.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    sorted_len = lengths[order]
    n = len(order)
    best = np.zeros(n + 1)
    cut = np.zeros(n + 1, dtype=np.int64)
    for end in range(1, n + 1):
        starts = np.arange(end)
        costs = best[:end] + overhead_tokens + (end - starts) * sorted_len[end - 1]
        cut[end] = int(np.argmin(costs))
        best[end] = costs[cut[end]]
    groups: list[np.ndarray] = []
    end = n
    while end > 0:
        groups.append(order[cut[end] : end])
        end = cut[end]
    return groups[::-1]


def run_by_length(enc: dict[str, Any], run: Any, overhead_tokens: int = SPLIT_OVERHEAD_TOKENS) -> Any:
    """``run(sub_encoding)`` on length groups of a tokenized batch (numpy or torch), outputs back in batch order.

    Each group is cut to its own longest text, so short texts no longer pay for the batch's longest one. ``run``
    returns a :class:`~deployable.models.base.ForwardOutput`; one group means one plain call.
    """
    from deployable.models.base import ForwardOutput

    mask = enc["attention_mask"]
    lengths = np.asarray(mask.sum(1))
    if not bool(np.asarray(mask[:, 0]).all()):  # padded on the left: cutting columns would cut text
        return run(enc)
    groups = length_groups(lengths, overhead_tokens)
    if len(groups) == 1:
        return run(enc)
    logits = features = None
    for index in groups:
        width = int(lengths[index].max())
        rows = index if isinstance(mask, np.ndarray) else _torch_index(mask, index)
        out = run({k: v[rows][:, :width] for k, v in enc.items()})
        if logits is None:
            logits = np.empty((len(lengths), out.logits.shape[1]), np.float32)
            if out.features is not None:
                features = np.empty((len(lengths), out.features.shape[1]), np.float32)
        logits[index] = out.logits
        if features is not None:
            features[index] = out.features
    return ForwardOutput(logits, features)


def _torch_index(like: Any, index: np.ndarray) -> Any:
    torch = require("torch", feature="text models")
    return torch.as_tensor(index, device=like.device)


def pooling_config(encoder: Path) -> dict[str, Any]:
    """Pooling mode and normalization of a sentence-transformers folder (modules.json + 1_Pooling)."""
    modules_file = encoder / "modules.json"
    mode, normalize = "mean", False
    if modules_file.is_file():
        modules = json.loads(modules_file.read_text())
        for m in modules:
            kind = m.get("type", "")
            if kind.endswith("Pooling"):
                cfg_file = encoder / m.get("path", "1_Pooling") / "config.json"
                if cfg_file.is_file():
                    cfg = json.loads(cfg_file.read_text())
                    if cfg.get("pooling_mode_cls_token"):
                        mode = "cls"
                    elif cfg.get("pooling_mode_max_tokens"):
                        mode = "max"
                    elif cfg.get("pooling_mode_mean_tokens"):
                        mode = "mean"
                    else:
                        raise ModelError(f"{cfg_file}: pooling mode not supported (use mean, cls or max)")
            elif kind.endswith("Normalize"):
                normalize = True
    return {"mode": mode, "normalize": normalize}


def pool_numpy(hidden: np.ndarray, mask: np.ndarray, mode: str, normalize: bool) -> np.ndarray:
    """Pool token states (B, L, H) with attention mask (B, L) into (B, H), as sentence-transformers does."""
    if mode == "cls":
        out = hidden[:, 0]
    elif mode == "max":
        out = np.where(mask[..., None] > 0, hidden, -1e9).max(axis=1)
    else:
        m = mask[..., None].astype(hidden.dtype)
        out = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
    if normalize:
        out = out / np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
    return out.astype(np.float32)


def read_head(path: Path) -> tuple[dict[str, np.ndarray], tuple[str, ...] | None]:
    """A classification head in safetensors: 'weight' (C, D), 'bias' (C,), optional 'hidden.*'; label names from
    the file's metadata key 'labels' (a JSON list)."""
    st = require("safetensors.numpy", feature="classification heads")
    try:
        tensors = st.load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise ModelError(f"{path}: not a readable safetensors head ({exc})") from exc
    if "weight" not in tensors or "bias" not in tensors:
        raise ModelError(f"{path}: a head needs tensors 'weight' and 'bias', found {sorted(tensors)}")
    safe_open = require("safetensors", feature="classification heads").safe_open
    with safe_open(str(path), framework="np") as fh:
        meta = fh.metadata() or {}
    labels = tuple(json.loads(meta["labels"])) if "labels" in meta else None
    return tensors, labels


def head_numpy(tensors: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    if "hidden.weight" in tensors:
        x = np.maximum(x @ tensors["hidden.weight"].T + tensors["hidden.bias"], 0)
    return (x @ tensors["weight"].T + tensors["bias"]).astype(np.float32)
