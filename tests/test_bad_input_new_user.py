"""What a new user's first data and model mistakes print: one line naming the file, the place and the fix; exit 2.

Every case goes through the real command line (``deployable.cli.main``) unless it checks what loads correctly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
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


# ---------------------------------------------------------------------------------------------------------------------
# Bad data files: the message names the file, the line (1-based) and what is wrong
# ---------------------------------------------------------------------------------------------------------------------


def _refused(config: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI on a project that must be refused: exit 2, one line, no traceback, no run folder."""
    out = config.parent / "out"
    assert main(["run", str(config), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and "Traceback" not in err and "internal error" not in err, err
    assert not out.exists()
    return err


def test_jsonl_cut_mid_line_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = GOOD * 100  # 300 lines, then a line cut short: a pandas error would name a character position
    (tmp_path / "test.jsonl").write_text(_lines(rows) + '{"text": "where is my par')
    err = _refused(_text_project(tmp_path, {"test": "test.jsonl"}), capsys)
    assert "test.jsonl: line 301 is not valid JSON" in err
    assert "cut short" in err and "position" not in err


def test_jsonl_bad_line_counts_blank_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "test.jsonl").write_text(_lines(GOOD[:1]) + "\n" + '{"text": "x", "label": billing}\n' + _lines(GOOD))
    err = _refused(_text_project(tmp_path, {"test": "test.jsonl"}), capsys)
    assert "test.jsonl: line 3 is not valid JSON (Expecting value at column 24)" in err
    assert "cut short" not in err


def test_jsonl_line_that_is_not_an_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "test.jsonl").write_text(_lines(GOOD[:1]) + '["where is my parcel", "shipping"]\n')
    err = _refused(_text_project(tmp_path, {"test": "test.jsonl"}), capsys)
    assert "test.jsonl: line 2 is a JSON list, not an object" in err


@pytest.mark.parametrize(
    ("name", "content"), [("test.jsonl", ""), ("test.jsonl", "\n  \n"), ("test.csv", ""), ("test.parquet", "")]
)
def test_empty_split_file_says_the_file_is_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: str
) -> None:
    (tmp_path / name).write_text(content)
    err = _refused(_text_project(tmp_path, {"test": name}), capsys)
    assert f"data.splits.test: {tmp_path / name}: the file is empty" in err
    assert "is not in the file" not in err and "valid: )" not in err


def test_csv_with_only_a_header_holds_no_samples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "test.csv").write_text("text,label\n")
    err = _refused(_text_project(tmp_path, {"test": "test.csv"}), capsys)
    assert f"data.splits.test: {tmp_path / 'test.csv'}: the file holds no samples" in err


@pytest.mark.parametrize(
    ("value", "said"), [(42, "the number 42"), (4.5, "the number 4.5"), (True, "the boolean true"), (["a"], "a list")]
)
def test_text_that_is_not_a_string_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: object, said: str
) -> None:
    (tmp_path / "test.jsonl").write_text(_lines(GOOD[:1]) + "\n" + _lines([{"text": value, "label": "shipping"}]))
    err = _refused(_text_project(tmp_path, {"test": "test.jsonl"}), capsys)
    assert f"test.jsonl: line 3: column 'text' (data.text_column) holds {said}, not text" in err


def test_text_that_is_not_a_string_in_parquet_names_the_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd

    pd.DataFrame({"text": [1, 2], "label": ["billing", "shipping"]}).to_parquet(tmp_path / "test.parquet")
    err = _refused(_text_project(tmp_path, {"test": "test.parquet"}), capsys)
    assert "test.parquet: row 1: column 'text' (data.text_column) holds the number 1, not text" in err


def test_csv_text_that_looks_like_a_number_stays_text(tmp_path: Path) -> None:
    """CSV has no types: a text column of digits only (ticket numbers, say) is text, kept as written."""
    (tmp_path / "test.csv").write_text("text,label\n042,billing\n7,shipping\n1234,billing\n")
    project = load_config(_text_project(tmp_path, {"test": "test.csv"}))
    assert load_dataset(project).split("test").inputs == ["042", "7", "1234"]


# ---------------------------------------------------------------------------------------------------------------------
# A model file that is not ONNX at all: broken, not unsafe
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "extra"),
    [
        (b"this is not an onnx model\n", ""),
        (b"PK\x03\x04" + b"\x00" * 40, "starts like a zip archive"),
        (b"\x80\x04K\x01.", "starts like a pickle"),
        (b"", "the file is empty"),
    ],
)
def test_file_that_is_not_onnx_is_not_called_unsafe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, extra: str
) -> None:
    (tmp_path / "test.jsonl").write_text(_lines(GOOD))
    (tmp_path / "model.onnx").write_bytes(content)
    err = _refused(_text_project(tmp_path, {"test": "test.jsonl"}), capsys)
    assert (
        f"model.path: '{tmp_path / 'model.onnx'}' is not a valid ONNX model (corrupt, truncated, or another format)"
        in err
    )
    assert extra in err
    assert "allow_unsafe_files" not in err and "refusing" not in err and "external data" not in err


def test_scan_reports_a_file_that_is_not_onnx(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "model.onnx").write_bytes(b"this is not an onnx model\n")
    assert main(["scan", str(tmp_path / "model.onnx")]) == 1
    out = capsys.readouterr().out
    assert "model.onnx: unparseable-onnx: medium: not a valid ONNX model" in out
