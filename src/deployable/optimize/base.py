"""What every recipe gets (the context) and gives back (a variant), and the cache of variant artifacts."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deployable.config import OptimizeConfig
from deployable.core.hashing import hash_json, sha256_files, total_size
from deployable.core.locks import build_once
from deployable.core.records import Variant
from deployable.data.dataset import Dataset, Split
from deployable.evaluation.predict import Progress, predict
from deployable.evaluation.store import PredictionStore
from deployable.models.base import Predictor

# Bump when a recipe's code changes what it makes, so cached artifacts of the old code are not reused.
ARTIFACT_VERSION = 6


@dataclass
class OptimizeContext:
    """Shared state of one optimization run."""

    cfg: OptimizeConfig
    dataset: Dataset
    store: PredictionStore
    workdir: Path
    batch_size: int = 32
    progress: Progress = field(default_factory=Progress)
    predictors: dict[str, Predictor] = field(default_factory=dict)
    variants: dict[str, Variant] = field(default_factory=dict)

    def calibration_inputs(self) -> Any:
        """A seeded sample of the calibration split's inputs (what static quantization calibrates on)."""
        split = self.dataset.split(self.cfg.calibration_split)
        n = min(len(split), self.cfg.calibration_samples)
        index = np.sort(np.random.default_rng(self.cfg.seed).choice(len(split), size=n, replace=False))
        return [split.inputs[i] for i in index] if isinstance(split.inputs, list) else split.inputs[index]

    def logits(self, name: str, split: Split) -> np.ndarray:
        """Logits of a known variant on a split, through the prediction store (one forward pass, ever)."""
        return predict(
            self.predictors[name],
            split,
            self.store,
            batch_size=self.batch_size,
            progress=self.progress,
            label=f"{name} · {split.name}",
        ).logits


@dataclass(frozen=True)
class ToleranceCheck:
    """A variant against the source on the tolerance split(s), pooled."""

    split: str
    n: int
    accuracy: float
    source_accuracy: float
    agreement: float
    max_accuracy_drop: float
    min_agreement: float
    n_labeled: int | None = None  # samples with a label (accuracy); ``n`` counts all (agreement)

    @property
    def accuracy_drop(self) -> float:
        return self.source_accuracy - self.accuracy

    @property
    def ok(self) -> bool:
        return self.accuracy_drop <= self.max_accuracy_drop + 1e-12 and self.agreement >= self.min_agreement - 1e-12

    @property
    def resolution_note(self) -> str:
        """Said when one sample weighs more than the allowed accuracy drop: the bar then forbids any net loss."""
        n = self.n if self.n_labeled is None else self.n_labeled
        if n and 1 / n > self.max_accuracy_drop + 1e-12:
            return (
                f"one sample is {100 / n:.2f} points of accuracy on {self.split} (n={n} labeled), more than the "
                f"{100 * self.max_accuracy_drop:.2f} allowed: any net loss fails; pool more splits in tolerance.split"
            )
        return ""

    def reason(self) -> str:
        parts = []
        if self.accuracy_drop > self.max_accuracy_drop + 1e-12:
            parts.append(f"accuracy drop {100 * self.accuracy_drop:.2f} points > {100 * self.max_accuracy_drop:.2f}")
        if self.agreement < self.min_agreement - 1e-12:
            parts.append(f"agreement {self.agreement:.1%} < {self.min_agreement:.1%}")
        return f"on {self.split} (n={self.n}): " + "; ".join(parts) if parts else ""

    def to_dict(self) -> dict[str, Any]:
        out = {
            "split": self.split,
            "n": self.n,
            "accuracy": self.accuracy,
            "source_accuracy": self.source_accuracy,
            "accuracy_drop": self.accuracy_drop,
            "agreement": self.agreement,
        }
        if self.resolution_note:
            out["note"] = self.resolution_note
        return out


def tolerance_logits(ctx: OptimizeContext, name: str) -> np.ndarray:
    """A variant's logits on the tolerance splits, concatenated in the configured order."""
    return np.concatenate([ctx.logits(name, ctx.dataset.split(s)) for s in ctx.cfg.tolerance.splits])


def check_tolerance(ctx: OptimizeContext, logits: np.ndarray, source_logits: np.ndarray) -> ToleranceCheck:
    """Compare logits on the tolerance splits (see :func:`tolerance_logits`) with the source's."""
    tol = ctx.cfg.tolerance
    y = np.concatenate([ctx.dataset.split(s).labels for s in tol.splits])
    labeled = y >= 0  # an unlabeled split (ood) counts for agreement only
    hit, source_hit = logits.argmax(1) == y, source_logits.argmax(1) == y
    return ToleranceCheck(
        split="+".join(tol.splits),
        n=len(y),
        accuracy=float(hit[labeled].mean()) if labeled.any() else 1.0,
        source_accuracy=float(source_hit[labeled].mean()) if labeled.any() else 1.0,
        n_labeled=int(labeled.sum()),
        agreement=float((logits.argmax(1) == source_logits.argmax(1)).mean()),
        max_accuracy_drop=tol.max_accuracy_drop,
        min_agreement=tol.min_agreement,
    )


def artifact_dir(ctx: OptimizeContext, parent: Variant, recipe: dict[str, Any], extra: Any = None) -> Path:
    """The cache folder of the artifact a recipe makes from ``parent``: same inputs, same folder."""
    key = hash_json({"parent": parent.sha256, "recipe": recipe, "extra": extra, "v": ARTIFACT_VERSION})
    return ctx.workdir / key[:16]


def _read_meta(folder: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((folder / "variant.json").read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def cached_or_build(folder: Path, build: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Run ``build(tmp_folder) -> meta`` unless ``folder`` already holds a finished artifact; return its meta.

    The artifact is built in a uniquely named temporary folder and renamed into place under a lock (see
    :func:`deployable.core.locks.build_once`): two runs sharing the cache build it once (the other waits and
    reuses it), and an interrupted build leaves nothing that looks finished. The meta returned is always the one
    read back from ``variant.json``, so a run that built the artifact and a run that reused it see the same values.
    """

    def build_into(tmp: Path) -> None:
        meta = build(tmp)
        (tmp / "variant.json").write_text(json.dumps(meta, indent=1, default=str))

    build_once(folder, build_into, finished=lambda f: _read_meta(f) is not None)
    meta = _read_meta(folder)
    if meta is None:  # pragma: no cover - deleted by hand between the build and this line
        raise RuntimeError(f"the artifact {folder} vanished right after it was built")
    return meta


def relocate(spec: dict[str, Any], tmp: Path, final: Path) -> dict[str, Any]:
    """A spec written while building in ``tmp`` with its paths moved to ``final``."""
    out = dict(spec)
    for key in ("path", "encoder", "head", "weights"):
        if isinstance(out.get(key), str) and out[key].startswith(str(tmp)):
            out[key] = str(final) + out[key][len(str(tmp)) :]
    return out


def make_variant(
    name: str, spec: dict[str, Any], files: list[Path], parent: Variant, recipe: dict[str, Any]
) -> Variant:
    return Variant(
        name=name,
        kind=spec["type"],
        files=tuple(str(f) for f in files),
        sha256=sha256_files(files),
        size_bytes=total_size(files),
        spec=spec,
        parent=parent.name,
        recipe=recipe,
    )
