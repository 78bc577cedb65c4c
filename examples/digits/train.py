"""Train the small CNN on the digits train split (early stopping on validation); save model.safetensors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from model import build  # noqa: E402


def train(
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 40,
    seed: int = 0,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
) -> torch.nn.Module:
    """AdamW 3e-3 on batches of 64, seeded; with ``validation`` the epoch with the best validation accuracy is kept.

    Args:
        x: float32 (N, 1, 8, 8) scans scaled to [0, 1].
        y: int64 (N,) digit labels.
    """
    torch.manual_seed(seed)
    np.random.seed(seed)
    xtr, ytr = torch.from_numpy(x), torch.from_numpy(y)
    model = build()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    best, best_state = -1.0, None
    gen = torch.Generator().manual_seed(seed)
    for _epoch in range(epochs):
        model.train()
        order = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(order), 64):
            b = order[i : i + 64]
            loss = torch.nn.functional.cross_entropy(model(xtr[b]), ytr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if validation is None:
            continue
        model.eval()
        with torch.no_grad():
            acc = (model(torch.from_numpy(validation[0])).argmax(1) == torch.from_numpy(validation[1])).float().mean()
        if acc.item() > best:
            best, best_state = acc.item(), {k: v.detach().clone() for k, v in model.state_dict().items()}
    if validation is not None:
        if best_state is None:
            raise RuntimeError("training produced no model")
        model.load_state_dict(best_state)
        print(f"validation accuracy {best:.3f}")
    return model.eval()


def main(epochs: int = 40, seed: int = 0) -> None:
    tr = np.load(HERE / "data" / "train.npz")
    va = np.load(HERE / "data" / "validation.npz")
    model = train(tr["x"], tr["y"], epochs=epochs, seed=seed, validation=(va["x"], va["y"]))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(HERE / "model.safetensors"))
    print("saved model.safetensors")


if __name__ == "__main__":
    main()
