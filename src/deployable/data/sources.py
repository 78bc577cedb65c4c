"""Readers for JSONL, CSV, Parquet, NPZ and image folders, turned into a :class:`Dataset`."""

from __future__ import annotations

import itertools
import json
import numbers
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deployable.config import BinnedSlice, DataConfig, Project
from deployable.core._imports import require
from deployable.core.errors import DataError, did_you_mean
from deployable.core.plugins import get_plugin, list_plugins, register
from deployable.data.dataset import UNLABELED, Dataset, Split

if TYPE_CHECKING:
    import pandas as pd

_EXT = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".npz": "npz"}
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


# A reader returns the raw columns of one split: inputs, raw labels (or None), ids (or None), slice columns.
Reader = Callable[[Path, DataConfig, str], dict[str, Any]]


def _format_of(path: Path, cfg: DataConfig, key: str) -> str:
    if cfg.format != "auto":
        return cfg.format
    if path.is_dir():
        return "image-folder"
    fmt = _EXT.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"{key}: cannot tell the format of '{path.name}' from its extension",
            hint=f"set data.format to one of {', '.join(list_plugins('data'))}",
        )
    return fmt


def _describe(value: Any) -> str:
    """A value that is not text, as a user would name it: 'the number 42', 'a list'."""
    if isinstance(value, (bool, np.bool_)):
        return f"the boolean {str(bool(value)).lower()}"
    if isinstance(value, numbers.Number):
        return f"the number {value!r}" if not isinstance(value, np.generic) else f"the number {value.item()!r}"
    if isinstance(value, (list, tuple, np.ndarray)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _table(
    df: pd.DataFrame, path: Path, cfg: DataConfig, key: str, where: Callable[[int], str] | None = None
) -> dict[str, Any]:
    """Columns of a table -> raw split fields; ``where(row)`` names a row (0-based) in messages ("line 3")."""
    import pandas as pd  # pandas takes a second to import: only when a table is read

    where = where or (lambda row: f"row {row + 1}")

    def need(col: str, field: str) -> pd.Series:
        if col not in df.columns:
            raise DataError(
                f"{path}: column '{col}' (data.{field}) is not in the file",
                hint=did_you_mean(col, [str(c) for c in df.columns]),
            )
        return df[col]

    if cfg.text_column:
        col = need(cfg.text_column, "text_column")
        if col.isna().any():
            row = int(np.flatnonzero(col.isna().to_numpy())[0])
            raise DataError(f"{path}: {where(row)} has no text in column '{cfg.text_column}' (fill or drop it)")
        values = col.tolist()
        row = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
        if row is not None:
            raise DataError(
                f"{path}: {where(row)}: column '{cfg.text_column}' (data.text_column) holds "
                f"{_describe(values[row])}, not text",
                hint="store the text as a quoted string, or set data.text_column to the column that holds the text",
            )
        inputs: Any = values
    elif cfg.feature_columns:
        cols = [need(c, "feature_columns") for c in cfg.feature_columns]
        inputs = np.stack([pd.to_numeric(c, errors="coerce").to_numpy(np.float32) for c in cols], axis=1)
    else:
        raise DataError(f"{key}: tabular files need data.text_column (text) or data.feature_columns (tabular)")
    labels = df[cfg.label_column].tolist() if cfg.label_column in df.columns else None
    ids = df[cfg.id_column].astype(str).to_numpy() if cfg.id_column and cfg.id_column in df.columns else None
    slices = {}
    for s in cfg.slices:
        col = s if isinstance(s, str) else s.column
        if col in df.columns:
            slices[col] = df[col].to_numpy()
    return {"inputs": inputs, "labels": labels, "ids": ids, "columns": slices}


_JSON_KINDS = {list: "list", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def _jsonl_records(path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """The objects of a JSON Lines file and the (1-based) line each came from; blank lines are skipped.

    Raises:
        DataError: naming the first line that is not UTF-8, not JSON, or not a JSON object.
    """
    records: list[dict[str, Any]] = []
    lines: list[int] = []
    with open(path, "rb") as f:
        data = f.read()
    raw_lines = data.split(b"\n")
    for number, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{path}: line {number} is not UTF-8 text (byte {exc.start + 1} of the line)",
                hint="save the file as UTF-8",
            ) from exc
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            if number == len(raw_lines):  # the last line, and no newline after it
                hint = "the file ends in the middle of this line: it looks cut short; write it again or drop the line"
            elif not records and text.lstrip().startswith("["):
                hint = "this looks like one JSON array; write one JSON object per line (JSON Lines) instead"
            else:
                hint = "one JSON object per line"
            at = "" if exc.msg.endswith(" at") else " at"
            raise DataError(
                f"{path}: line {number} is not valid JSON ({exc.msg}{at} column {exc.colno})", hint=hint
            ) from exc
        if not isinstance(value, dict):
            kind = _JSON_KINDS.get(type(value), type(value).__name__)
            raise DataError(
                f"{path}: line {number} is a JSON {kind}, not an object",
                hint='one JSON object per line, e.g. {"text": "...", "label": "..."}',
            )
        records.append(value)
        lines.append(number)
    return records, lines


@register("data", "jsonl")
def read_jsonl(path: Path, cfg: DataConfig, key: str) -> dict[str, Any]:
    import pandas as pd  # pandas takes a second to import: only when a table is read

    records, lines = _jsonl_records(path)
    df = pd.DataFrame.from_records(records)
    return _table(df, path, cfg, key, where=lambda row: f"line {lines[row]}")


@register("data", "csv")
def read_csv(path: Path, cfg: DataConfig, key: str) -> dict[str, Any]:
    import pandas as pd  # pandas takes a second to import: only when a table is read

    try:
        # the text column is text even where it looks like a number ("042" stays "042")
        df = pd.read_csv(path, keep_default_na=True, dtype={cfg.text_column: str} if cfg.text_column else None)
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from exc
    return _table(df, path, cfg, key)


@register("data", "parquet")
def read_parquet(path: Path, cfg: DataConfig, key: str) -> dict[str, Any]:
    import pandas as pd  # pandas takes a second to import: only when a table is read

    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc
    return _table(df, path, cfg, key)


@register("data", "npz")
def read_npz(path: Path, cfg: DataConfig, key: str) -> dict[str, Any]:
    try:
        arrays = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})", hint="save arrays with numpy.savez") from exc
    keys = {"x": "x", "y": "y", **cfg.npz_keys}
    if keys["x"] not in arrays:
        raise DataError(f"{path}: no array '{keys['x']}' (data.npz_keys.x)", hint=did_you_mean(keys["x"], arrays))
    x = arrays[keys["x"]].astype(np.float32)
    labels = arrays[keys["y"]].tolist() if keys["y"] in arrays else None
    ids = arrays[keys["ids"]].astype(str) if "ids" in keys and keys["ids"] in arrays else None
    columns = {}
    for s in cfg.slices:
        col = s if isinstance(s, str) else s.column
        name = keys.get(f"slice:{col}", col)
        if name in arrays:
            columns[col] = arrays[name]
    return {"inputs": x, "labels": labels, "ids": ids, "columns": columns}


@register("data", "image-folder")
def read_image_folder(path: Path, cfg: DataConfig, key: str) -> dict[str, Any]:
    """``root/<class name>/<image>``; images are scaled to [0, 1], shape (N, C, H, W)."""
    pil = require("PIL.Image", feature="image-folder data")
    if not path.is_dir():
        raise DataError(f"{key}: expected a folder of class sub-folders, but '{path}' is not a folder")
    files = sorted(f for f in path.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataError(f"{path}: no images found (expected {path}/<class name>/<image>.png)")
    arrays, labels, ids = [], [], []
    for f in files:
        with pil.open(f) as im:
            im = im.convert("L" if cfg.grayscale else "RGB")
            if cfg.image_size:
                im = im.resize((cfg.image_size[1], cfg.image_size[0]))
            a = np.asarray(im, dtype=np.float32) / 255.0
        arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
        rel = f.relative_to(path)
        labels.append(rel.parts[0] if len(rel.parts) > 1 else None)
        ids.append(rel.as_posix())
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise DataError(
            f"{path}: images have different sizes {sorted(shapes)[:3]}", hint="set data.image_size: [height, width]"
        )
    has_labels = any(label is not None for label in labels)
    return {"inputs": np.stack(arrays), "labels": labels if has_labels else None, "ids": np.array(ids), "columns": {}}


def _bin(spec: BinnedSlice, values: Any, path: Path) -> np.ndarray:
    import pandas as pd  # pandas takes a second to import: only when a table is read

    if spec.measure == "words":
        x = np.array([len(str(v).split()) for v in values], dtype=float)
    elif spec.measure == "chars":
        x = np.array([len(str(v)) for v in values], dtype=float)
    else:
        x = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(float)
        if np.isnan(x).any():
            raise DataError(f"{path}: slice '{spec.name}' bins column '{spec.column}', which has non-numeric values")
    edges = list(spec.bins)
    inner = [f"{a:g}-{b:g}" for a, b in itertools.pairwise(edges)]
    labels = spec.labels or [f"<{edges[0]:g}", *inner, f">={edges[-1]:g}"]
    return np.array(labels, dtype=object)[np.searchsorted(edges, x, side="right")].astype(str)


def _labels_to_index(raw: list[Any] | None, names: list[str], n: int, path: Path, split: str) -> np.ndarray:
    if raw is None:
        return np.full(n, UNLABELED, dtype=np.int64)
    index = {name: i for i, name in enumerate(names)}
    out = np.empty(n, dtype=np.int64)
    for row, value in enumerate(raw):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            out[row] = UNLABELED
            continue
        key = str(value)
        if (
            key not in index
            and isinstance(value, (int, np.integer))
            and 0 <= int(value) < len(names)
            and key not in names
        ):
            out[row] = int(value)  # integer labels index into the label names
            continue
        if key not in index:
            raise DataError(
                f"{path}: row {row + 1} of split '{split}' has label '{key}', which is not a known class",
                hint=f"{did_you_mean(key, names)}; or list it in data.labels",
            )
        out[row] = index[key]
    return out


def _is_blank(path: Path) -> bool:
    """Whether a file holds nothing but whitespace (read only until its first other byte)."""
    with open(path, "rb") as f:
        while chunk := f.read(1 << 16):
            if chunk.strip():
                return False
    return True


def load_dataset(project: Project) -> Dataset:
    """Read every split the config names into one :class:`Dataset`."""
    cfg = project.data
    raw: dict[str, dict[str, Any]] = {}
    paths: dict[str, Path] = {}
    formats = set()
    ood_splits = {"ood", project.evaluate.ood.split}
    for split, rel in cfg.splits.items():
        path = project.path(rel)
        key = f"data.splits.{split}"
        if not path.exists():
            raise DataError(
                f"{key}: expected a file, but '{rel}' does not exist",
                hint="check the path; it is relative to the config's folder",
            )
        if path.is_file() and _is_blank(path):
            raise DataError(
                f"{key}: {path}: the file is empty",
                hint=f"put the split's samples in it, or point {key} at the file that holds them",
            )
        fmt = _format_of(path, cfg, key)
        formats.add(fmt)
        reader = get_plugin("data", fmt, field="data.format")
        raw[split] = reader(path, cfg, key)
        if len(raw[split]["inputs"]) == 0:
            raise DataError(
                f"{key}: {path}: the file holds no samples (0 rows)",
                hint=f"put the split's samples in it, or point {key} at the file that holds them",
            )
        if split in ood_splits:
            raw[split]["labels"] = None  # OOD samples belong to no class: a label column there is not a class
        paths[split] = path

    # label space: explicit, else sorted labels of the training split (or of every labelled split)
    if cfg.labels:
        names = list(cfg.labels)
    else:
        pool = raw.get("train", {}).get("labels") or [v for r in raw.values() for v in (r["labels"] or [])]
        uniq = {v for v in pool if v is not None and not (isinstance(v, float) and np.isnan(v))}
        names = [str(v) for v in sorted(uniq, key=lambda v: (isinstance(v, str), v))]
        if not names:
            raise DataError(
                f"data.label_column: no split has a '{cfg.label_column}' column with labels",
                hint="set data.label_column to the column holding the class",
            )

    first = next(iter(raw.values()))["inputs"]
    if cfg.modality != "auto":
        modality = cfg.modality
    elif isinstance(first, list):
        modality = "text"
    else:
        modality = "image" if np.asarray(first).ndim >= 3 else "tabular"

    slice_columns = tuple(s if isinstance(s, str) else s.name for s in cfg.slices)
    splits: dict[str, Split] = {}
    for split, r in raw.items():
        path = paths[split]
        n = len(r["inputs"])
        labels = _labels_to_index(r["labels"], names, n, path, split)
        if split not in ood_splits and (labels == UNLABELED).any():
            row = int(np.flatnonzero(labels == UNLABELED)[0])
            raise DataError(
                f"{path}: row {row + 1} of split '{split}' has no '{cfg.label_column}' "
                "(every sample outside the 'ood' split needs a label)"
            )
        ids = r["ids"] if r["ids"] is not None else np.array([f"{split}-{i}" for i in range(n)])
        slices: dict[str, np.ndarray] = {}
        for s in cfg.slices:
            if isinstance(s, str):
                if s in r["columns"]:
                    slices[s] = np.asarray(r["columns"][s]).astype(str)
                elif split not in ood_splits:
                    raise DataError(
                        f"{path}: slice column '{s}' (data.slices) is not in the file",
                        hint="remove it from data.slices or add the column",
                    )
            else:
                source_col = (
                    r["inputs"] if (s.column == cfg.text_column and modality == "text") else r["columns"].get(s.column)
                )
                if source_col is None:
                    if split in ood_splits:
                        continue
                    raise DataError(f"{path}: slice '{s.name}' needs column '{s.column}', which is not in the file")
                slices[s.name] = _bin(s, source_col, path)
        splits[split] = Split(
            name=split,
            inputs=r["inputs"],
            labels=labels,
            ids=np.asarray(ids).astype(str),
            slices=slices,
            source=str(path),
        )
    return Dataset(
        name=project.name, modality=modality, label_names=tuple(names), splits=splits, slice_columns=slice_columns
    )
