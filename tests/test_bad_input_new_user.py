"""What a new user's first data and model mistakes print: one line naming the file, the place and the fix; exit 2.

Every case goes through the real command line (``deployable.cli.main``) unless it checks what loads correctly.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from deployable.cli import main
from deployable.config import load_config
from deployable.data import load_dataset
from deployable.data.dataset import UNLABELED

GOOD = [
    {"text": "my card was charged twice", "label": "billing"},
    {"text": "where is my parcel", "label": "shipping"},
    {"text": "refund please, the lamp arrived broken", "label": "billing"},
]


def _lines(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _text_project(tmp_path: Path, splits: dict[str, str], **data) -> Path:
    """A text project whose model file is only a placeholder: every case here fails (or not) before loading it."""
    config = {
        "name": "new-user",
        "model": {"type": "onnx", "path": "model.onnx"},
        "data": {"splits": splits, "text_column": "text", "labels": ["billing", "shipping"], **data},
    }
    (tmp_path / "deployable.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if not (tmp_path / "model.onnx").exists():
        (tmp_path / "model.onnx").write_bytes(b"")
    return tmp_path / "deployable.yaml"


# ---------------------------------------------------------------------------------------------------------------------
# The ood split: its labels are outside the classes by definition
# ---------------------------------------------------------------------------------------------------------------------


def test_ood_labels_outside_the_classes_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "test.jsonl").write_text(_lines(GOOD))
    (tmp_path / "ood.jsonl").write_text(
        _lines([{"text": "what is the capital of peru", "label": "none"}, {"text": "lorem ipsum", "label": 7}])
    )
    project = load_config(_text_project(tmp_path, {"test": "test.jsonl", "ood": "ood.jsonl"}))
    ds = load_dataset(project)
    assert ds.label_names == ("billing", "shipping")
    assert ds.split("ood").labels.tolist() == [UNLABELED, UNLABELED]
    assert ds.split("test").labels.tolist() == [0, 1, 0]


def test_ood_labels_do_not_become_classes(tmp_path: Path) -> None:
    """Without data.labels the classes come from the labelled splits: never from the ood split's label column."""
    (tmp_path / "test.jsonl").write_text(_lines(GOOD))
    (tmp_path / "ood.jsonl").write_text(_lines([{"text": "capital of peru", "label": "none"}]))
    project = load_config(_text_project(tmp_path, {"test": "test.jsonl", "ood": "ood.jsonl"}, labels=None))
    assert load_dataset(project).label_names == ("billing", "shipping")


def test_split_named_by_evaluate_ood_split_is_the_ood_split(tmp_path: Path) -> None:
    (tmp_path / "test.jsonl").write_text(_lines(GOOD))
    (tmp_path / "junk.jsonl").write_text(_lines([{"text": "capital of peru", "label": "none"}]))
    path = _text_project(tmp_path, {"test": "test.jsonl", "junk": "junk.jsonl"})
    project = load_config(path, overrides=["evaluate.ood.split=junk"])
    assert load_dataset(project).split("junk").labels.tolist() == [UNLABELED]


def test_run_with_an_ood_split_labelled_none(tabular_project: Path, tmp_path: Path) -> None:
    """The issue's case end to end: an ood split whose label column says 'none' runs, and OOD is scored on it."""
    folder = tabular_project.parent
    rows = ["f0,f1,f2,f3,label"] + [f"{9 + i},{-9 - i},{9 + i},{-9 - i},none" for i in range(20)]
    (folder / "ood.csv").write_text("\n".join(rows) + "\n")
    config = yaml.safe_load(tabular_project.read_text())
    config["data"]["splits"]["ood"] = "ood.csv"
    tabular_project.write_text(yaml.safe_dump(config, sort_keys=False))
    out = tmp_path / "out"
    assert main(["run", str(tabular_project), "--out", str(out), "-q"]) == 0
    results = json.loads((out / "results.json").read_text())
    ood = results["evaluations"][0]["ood"]
    assert ood is not None and not ood["synthetic"] and ood["out_split"] == "ood" and ood["n_out"] == 20
