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


def main(epochs: int = 40, seed: int = 0) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    tr = np.load(HERE / "data" / "train.npz")
    va = np.load(HERE / "data" / "validation.npz")
    xtr, ytr = torch.from_numpy(tr["x"]), torch.from_numpy(tr["y"])
    xva, yva = torch.from_numpy(va["x"]), torch.from_numpy(va["y"])
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
        model.eval()
        with torch.no_grad():
            acc = (model(xva).argmax(1) == yva).float().mean().item()
        if acc > best:
            best, best_state = acc, {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best_state is None:
        raise RuntimeError("training produced no model")
    save_file(best_state, str(HERE / "model.safetensors"))
    print(f"validation accuracy {best:.3f}; saved model.safetensors")


if __name__ == "__main__":
    main()
