"""Readers for JSONL, CSV, Parquet, NPZ and image folders, turned into a :class:`Dataset`."""

from __future__ import annotations

import itertools
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


def _table(df: pd.DataFrame, path: Path, cfg: DataConfig, key: str) -> dict[str, Any]:
    """Columns of a table -> raw split fields."""
    import pandas as pd  # pandas takes a second to import: only when a table is read

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
            raise DataError(f"{path}: row {row + 1} has no text in column '{cfg.text_column}' (fill or drop it)")
        inputs: Any = col.astype(str).tolist()
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


@register("data", "jsonl")
def read_jsonl(path: Path, cfg: DataConfig, key: str) -> dict[str, Any]:
    import pandas as pd  # pandas takes a second to import: only when a table is read

    try:
        df = pd.read_json(path, lines=True, dtype=False)
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON Lines ({exc})", hint="one JSON object per line") from exc
    return _table(df, path, cfg, key)


@register("data", "csv")
def read_csv(path: Path, cfg: DataConfig, key: str) -> dict[str, Any]:
    import pandas as pd  # pandas takes a second to import: only when a table is read

    try:
        df = pd.read_csv(path, keep_default_na=True)
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
        fmt = _format_of(path, cfg, key)
        formats.add(fmt)
        reader = get_plugin("data", fmt, field="data.format")
        raw[split] = reader(path, cfg, key)
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
