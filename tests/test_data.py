"""Data sources: every format gives the same Dataset; labels, slices and fingerprints behave."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import write_jsonl
from deployable.config import load_config
from deployable.core.errors import DataError
from deployable.core.records import DatasetInfo
from deployable.data import load_dataset
from deployable.data.dataset import UNLABELED

ROWS = [
    {"id": "a", "text": "my card was charged twice", "label": "billing", "channel": "email"},
    {"id": "b", "text": "where is my parcel", "label": "shipping", "channel": "chat"},
    {
        "id": "c",
        "text": "refund please, the lamp arrived broken and I want my money back",
        "label": "billing",
        "channel": "chat",
    },
    {"id": "d", "text": "tracking has not moved in a week", "label": "shipping", "channel": "phone"},
]


def _project(tmp_path: Path, splits: dict[str, str], **data) -> object:
    cfg = {"name": "t", "model": {"type": "onnx", "path": "m.onnx"}, "data": {"splits": splits, **data}}
    (tmp_path / "m.onnx").write_bytes(b"")
    return load_config(cfg, base_dir=tmp_path)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_table_formats_agree(tmp_path: Path, fmt: str) -> None:
    df = pd.DataFrame(ROWS)
    path = tmp_path / f"test.{fmt}"
    {
        "jsonl": lambda: df.to_json(path, orient="records", lines=True),
        "csv": lambda: df.to_csv(path, index=False),
        "parquet": lambda: df.to_parquet(path),
    }[fmt]()
    ds = load_dataset(
        _project(
            tmp_path,
            {"test": path.name},
            text_column="text",
            id_column="id",
            slices=[
                "channel",
                {"name": "length", "column": "text", "measure": "words", "bins": [5], "labels": ["short", "long"]},
            ],
        )
    )
    test = ds.split("test")
    assert ds.modality == "text"
    assert ds.label_names == ("billing", "shipping")
    assert test.inputs == [r["text"] for r in ROWS]
    assert test.labels.tolist() == [0, 1, 0, 1]
    assert test.ids.tolist() == ["a", "b", "c", "d"]
    assert test.slices["channel"].tolist() == ["email", "chat", "chat", "phone"]
    assert test.slices["length"].tolist() == ["long", "short", "long", "long"]


# Binned slices by hand. Inner edges [0.5, 2, 10] make four bins, each closed on the left and open on the right:
# (-inf, 0.5) "<0.5", [0.5, 2) "0.5-2", [2, 10) "2-10", [10, inf) ">=10". A value exactly on an edge belongs to the
# bin the edge opens.
SCORES_AND_BINS = [
    (-3.0, "<0.5"),
    (0.0, "<0.5"),
    (0.4999, "<0.5"),
    (0.5, "0.5-2"),  # on the first edge
    (1.25, "0.5-2"),
    (1.9999, "0.5-2"),
    (2.0, "2-10"),  # on the middle edge
    (9.99, "2-10"),
    (10.0, ">=10"),  # on the last edge
    (250.0, ">=10"),
]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "npz"])
def test_binned_value_slice_puts_each_row_in_its_hand_computed_bin(tmp_path: Path, fmt: str) -> None:
    scores = [s for s, _ in SCORES_AND_BINS]
    # Rows in a shuffled order, so a bin assignment that ignored the values (or sorted them) would show.
    order = [7, 2, 9, 0, 5, 3, 8, 1, 6, 4]
    rows = [{"id": f"r{i}", "text": f"row {i}", "label": "billing", "score": scores[i]} for i in order]
    path = tmp_path / f"test.{fmt}"
    if fmt == "npz":
        n = len(rows)
        np.savez(path, x=np.zeros((n, 2), np.float32), y=np.zeros(n, np.int64), score=[r["score"] for r in rows])
        columns: dict = {}
    else:
        df = pd.DataFrame(rows)
        {
            "jsonl": lambda: df.to_json(path, orient="records", lines=True),
            "csv": lambda: df.to_csv(path, index=False),
            "parquet": lambda: df.to_parquet(path),
        }[fmt]()
        columns = {"text_column": "text", "id_column": "id"}
    ds = load_dataset(
        _project(
            tmp_path,
            {"test": path.name},
            labels=["billing"],
            slices=[
                {"name": "score_bin", "column": "score", "bins": [0.5, 2, 10]},
                {"name": "tier", "column": "score", "bins": [0.5, 2, 10], "labels": ["low", "mid", "high", "top"]},
            ],
            **columns,
        )
    )
    test = ds.split("test")
    expected = [SCORES_AND_BINS[i][1] for i in order]
    assert test.slices["score_bin"].tolist() == expected
    names = {"<0.5": "low", "0.5-2": "mid", "2-10": "high", ">=10": "top"}
    assert test.slices["tier"].tolist() == [names[b] for b in expected]


def test_binned_text_length_slices_count_words_and_characters(tmp_path: Path) -> None:
    texts = [
        "one two",  # 2 words, 7 characters
        "one two three",  # 3 words (on the edge), 13 characters
        "  one   two  three four ",  # 4 words (split on runs of whitespace), 24 characters (spaces count)
        "one two three four five",  # 5 words (on the edge), 23 characters
        "a b c d e f",  # 6 words, 11 characters
        "abcdefghij",  # 1 word, 10 characters (on the edge)
        "abcdefghi",  # 1 word, 9 characters
    ]
    write_jsonl(tmp_path / "test.jsonl", [{"text": t, "label": "billing"} for t in texts])
    ds = load_dataset(
        _project(
            tmp_path,
            {"test": "test.jsonl"},
            text_column="text",
            slices=[
                {"name": "words", "column": "text", "measure": "words", "bins": [3, 5]},
                {"name": "chars", "column": "text", "measure": "chars", "bins": [10, 20], "labels": ["s", "m", "l"]},
            ],
        )
    )
    test = ds.split("test")
    assert test.slices["words"].tolist() == ["<3", "3-5", "3-5", ">=5", ">=5", "<3", "<3"]
    assert test.slices["chars"].tolist() == ["s", "m", "l", "l", "m", "m", "s"]


def test_fingerprint_tracks_content_not_location(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_jsonl(tmp_path / "a" / "test.jsonl", ROWS)
    write_jsonl(tmp_path / "b" / "test.jsonl", ROWS)
    fa = load_dataset(_project(tmp_path, {"test": "a/test.jsonl"}, text_column="text")).split("test").fingerprint
    fb = load_dataset(_project(tmp_path, {"test": "b/test.jsonl"}, text_column="text")).split("test").fingerprint
    assert fa == fb
    changed = [dict(r) for r in ROWS]
    changed[0]["label"] = "shipping"
    write_jsonl(tmp_path / "b" / "test.jsonl", changed)
    fc = (
        load_dataset(_project(tmp_path, {"test": "b/test.jsonl"}, text_column="text", labels=["billing", "shipping"]))
        .split("test")
        .fingerprint
    )
    assert fc != fa


def test_ood_split_may_be_unlabelled(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "test.jsonl", ROWS)
    write_jsonl(tmp_path / "ood.jsonl", [{"text": "what is the capital of peru", "channel": "chat"}])
    ds = load_dataset(
        _project(tmp_path, {"test": "test.jsonl", "ood": "ood.jsonl"}, text_column="text", slices=["channel"])
    )
    assert ds.split("ood").labels.tolist() == [UNLABELED]
    info = ds.info()
    assert DatasetInfo.from_json(info.to_json()) == info
    assert {s.name: s.n for s in info.splits} == {"test": 4, "ood": 1}


def test_unknown_label_names_row_and_fix(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "test.jsonl", ROWS)
    with pytest.raises(
        DataError,
        match=r"test.jsonl: row 2 of split 'test' has label 'shipping', which is not a known "
        r"class",
    ):
        load_dataset(_project(tmp_path, {"test": "test.jsonl"}, text_column="text", labels=["billing", "refund"]))


def test_missing_column_suggests(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "test.jsonl", ROWS)
    with pytest.raises(DataError, match=r"column 'txt' \(data.text_column\) is not in the file \(did you mean 'text'"):
        load_dataset(_project(tmp_path, {"test": "test.jsonl"}, text_column="txt"))


def test_duplicate_ids_rejected(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "test.jsonl", [ROWS[0], ROWS[0]])
    with pytest.raises(DataError, match=r"id 'a' appears twice"):
        load_dataset(_project(tmp_path, {"test": "test.jsonl"}, text_column="text", id_column="id"))


def test_npz_and_image_folder(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    x = rng.random((6, 1, 4, 4)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    # Set by hand, two of them exactly on the edge: a value equal to an edge opens the upper bin.
    ink = np.array([0.1, 0.5, 0.49, 0.75, 0.5, 0.0])
    np.savez(tmp_path / "test.npz", x=x, y=y, ink=ink)
    ds = load_dataset(
        _project(
            tmp_path,
            {"test": "test.npz"},
            labels=["zero", "one", "two"],
            slices=[{"name": "ink", "column": "ink", "bins": [0.5]}],
        )
    )
    assert ds.modality == "image" and ds.split("test").inputs.shape == (6, 1, 4, 4)
    assert ds.split("test").labels.tolist() == y.tolist()
    assert ds.split("test").slices["ink"].tolist() == ["<0.5", ">=0.5", "<0.5", ">=0.5", ">=0.5", "<0.5"]

    root = tmp_path / "images"
    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        (root / f"class{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray((img[0] * 255).astype(np.uint8)).save(root / f"class{label}" / f"{i}.png")
    ds = load_dataset(_project(tmp_path, {"test": "images"}, grayscale=True))
    test = ds.split("test")
    assert ds.label_names == ("class0", "class1", "class2")
    assert test.inputs.shape == (6, 1, 4, 4)
    order = np.argsort([f"class{label}/{i}.png" for i, label in enumerate(y)])
    np.testing.assert_allclose(test.inputs, (x[order] * 255).astype(np.uint8) / 255.0, atol=1e-6)


def test_tabular_features(tabular_project: Path) -> None:
    ds = load_dataset(load_config(tabular_project))
    test = ds.split("test")
    assert ds.modality == "tabular" and test.inputs.shape == (50, 4) and test.inputs.dtype == np.float32
    assert set(test.slices) == {"region", "f0_level"}
    assert (test.slices["f0_level"] == np.where(test.inputs[:, 0] >= 0, "high", "low")).all()
