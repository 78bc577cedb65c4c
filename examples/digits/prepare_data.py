"""Write scikit-learn's bundled handwritten digits (real 8x8 scans of 43 writers) as train/validation/test .npz.

Slices: 'ink' (how much of the image is stroke) binned in the config, so the report shows whether faint or heavy
writing is harder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent


def main() -> None:
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8) in [0, 1]
    y = digits.target.astype(np.int64)
    ids = np.array([f"digit-{i:04d}" for i in range(len(y))])
    ink = x.reshape(len(x), -1).mean(axis=1)
    idx = np.arange(len(y))
    train, rest = train_test_split(idx, test_size=0.4, stratify=y, random_state=0)
    val, test = train_test_split(rest, test_size=0.5, stratify=y[rest], random_state=0)
    out = HERE / "data"
    out.mkdir(exist_ok=True)
    for name, part in (("train", train), ("validation", val), ("test", test)):
        np.savez(out / f"{name}.npz", x=x[part], y=y[part], ids=ids[part], ink=ink[part])
        print(f"{name}: {len(part)} images")


if __name__ == "__main__":
    main()
