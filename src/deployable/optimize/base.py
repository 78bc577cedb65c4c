"""What every recipe gets (the context) and gives back (a variant), and the cache of variant artifacts."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from deployable.config import OptimizeConfig, Tolerance
from deployable.core.hashing import hash_json, sha256_files, total_size
from deployable.core.locks import build_once
from deployable.core.paired import (
    FAIL,
    PASS,
    UNDECIDED,
    bootstrap_differences,
    concordant_n_to_decide,
    decide,
    difference_bounds,
    difference_n_to_decide,
    rate_n_to_decide,
    wilson_bounds,
)
from deployable.core.records import Interval, Variant
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
    held_out: tuple[str, ...] = ("test", "ood")  # splits the tolerance never pools (the test and OOD splits)

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


def accuracy_change_text(value: float, low: float, high: float) -> str:
    """``accuracy -0.37 points [-1.52, +0.61]``."""

    def points(x: float) -> str:
        return f"{0.0 + 100 * x:+.2f}"  # 0.0 + ... so that no change prints +0.00, not -0.00

    return f"accuracy {points(value)} points [{points(low)}, {points(high)}]"


@dataclass(frozen=True)
class ToleranceCheck:
    r"""A variant against the source on the tolerance split(s), judged with one-sided intervals.

    On the ``n_labeled`` labeled samples, ``better`` / ``worse`` count the samples the variant gets right and the
    source wrong and the reverse; the accuracy change ``d = (better - worse) / n_labeled`` gets the paired interval
    the gate uses (hull of the paired bootstrap and the Bonett–Price adjusted Wald bound, each bound one-sided at
    ``alpha``). On all ``n`` samples, ``changed`` predictions (top-1 differs from the source) get a Wilson interval.

    - accuracy: PASS when ``low > -max_accuracy_drop``, FAIL when ``high < -max_accuracy_drop``;
    - agreement: PASS when the share changed has ``high < 1 - min_agreement``, FAIL when ``low > 1 - min_agreement``;
    - a limit of 0 (``max_accuracy_drop: 0``, ``min_agreement: 1``) is exact: PASS when no labeled sample goes
      from right to wrong (no prediction changes), FAIL otherwise;
    - the check PASSes when both pass, FAILs when either fails, and is UNDECIDED otherwise, with ``n_needed``: the
      samples that would decide it at the observed rates (power 0.8).

    ``pooled_from`` is the check on the configured split(s) when it could not decide and this one pooled more.
    """

    split: str
    n: int
    n_labeled: int
    accuracy: float
    source_accuracy: float
    better: int
    worse: int
    changed: int
    accuracy_change: Interval
    changed_share: Interval
    max_accuracy_drop: float
    min_agreement: float
    alpha: float
    pooled_from: ToleranceCheck | None = None

    @property
    def accuracy_drop(self) -> float:
        return self.source_accuracy - self.accuracy

    @property
    def agreement(self) -> float:
        return 1.0 - self.changed / self.n if self.n else 1.0

    @property
    def accuracy_outcome(self) -> str:
        if self.n_labeled == 0:
            return PASS  # nothing to lose accuracy on (an unlabeled split): agreement alone judges
        if self.max_accuracy_drop <= 0:
            return PASS if self.worse == 0 else FAIL
        return decide(self.accuracy_change.low, self.accuracy_change.high, -self.max_accuracy_drop)

    @property
    def agreement_outcome(self) -> str:
        limit = 1.0 - self.min_agreement
        if limit <= 0:
            return PASS if self.changed == 0 else FAIL
        # the share changed must stay below the limit: decide on the negated interval
        return decide(-self.changed_share.high, -self.changed_share.low, -limit)

    @property
    def outcome(self) -> str:
        outcomes = (self.accuracy_outcome, self.agreement_outcome)
        if FAIL in outcomes:
            return FAIL
        return PASS if outcomes == (PASS, PASS) else UNDECIDED

    @property
    def ok(self) -> bool:
        return self.outcome == PASS

    @property
    def n_needed(self) -> int | None:
        """Samples that would decide an UNDECIDED check (the larger of its undecided parts), else None."""
        if self.outcome != UNDECIDED:
            return None
        needs = []
        if self.accuracy_outcome == UNDECIDED:
            if self.better + self.worse == 0:
                needs.append(concordant_n_to_decide(self.max_accuracy_drop, self.alpha))
            else:
                needs.append(
                    difference_n_to_decide(self.better, self.worse, self.n_labeled, self.max_accuracy_drop, self.alpha)
                )
        if self.agreement_outcome == UNDECIDED:
            needs.append(rate_n_to_decide(self.changed, self.n, 1.0 - self.min_agreement, self.alpha))
        known = [n for n in needs if n is not None]
        return max(known) if known else None

    def accuracy_text(self) -> str:
        """``accuracy -0.37 points [-1.52, +0.61]``."""
        return accuracy_change_text(self.accuracy_change.value, self.accuracy_change.low, self.accuracy_change.high)

    def agreement_text(self) -> str:
        """``agreement 97.4% (2.6% changed, at most 4.8%)``."""
        share = self.changed_share
        return f"agreement {self.agreement:.1%} ({share.value:.1%} changed, at most {share.high:.1%})"

    def summary(self) -> str:
        """One line: where, both measures with their intervals, and the outcome."""
        head = f"on {self.split} (n={self.n})"
        parts = [self.agreement_text()]
        if self.n_labeled:
            parts.insert(0, self.accuracy_text())
        return f"{head}: {', '.join(parts)}"

    def reason(self) -> str:
        """Why the check did not pass ("" when it did): the measures that failed (or could not decide) with their
        intervals against their limits, and for an undecided check the samples that would decide it."""
        if self.outcome == PASS:
            return ""
        share, limit = self.changed_share, 1.0 - self.min_agreement
        parts = []
        if self.accuracy_outcome == self.outcome:
            parts.append(f"{self.accuracy_text()} against the {100 * self.max_accuracy_drop:.2f} it may drop")
        if self.agreement_outcome == self.outcome:
            parts.append(
                f"{share.value:.1%} of predictions changed [{share.low:.1%}, {share.high:.1%}] against the "
                f"{limit:.1%} allowed"
            )
        where = f"on {self.split} (n={self.n:,})"
        if self.outcome == FAIL:
            return f"outside tolerance {where}: {'; '.join(parts)}"
        needed = self.n_needed
        more = f"; needs about {needed:,} samples" if needed else ""
        return f"undecidable at this sample size {where}: {'; '.join(parts)}{more}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "split": self.split,
            "n": self.n,
            "n_labeled": self.n_labeled,
            "outcome": self.outcome,
            "ok": self.ok,
            "accuracy": self.accuracy,
            "source_accuracy": self.source_accuracy,
            "accuracy_drop": self.accuracy_drop,
            "accuracy_change": self.accuracy_change.to_dict(),
            "better": self.better,
            "worse": self.worse,
            "agreement": self.agreement,
            "changed": self.changed,
            "changed_share": self.changed_share.to_dict(),
            "accuracy_outcome": self.accuracy_outcome,
            "agreement_outcome": self.agreement_outcome,
            "alpha": self.alpha,
        }
        if self.n_needed is not None:
            out["n_needed"] = self.n_needed
        if self.pooled_from is not None:
            first = self.pooled_from
            out["pooled"] = (
                f"{first.split} alone could not decide ({first.summary()}); pooled every labeled split except the "
                "test and OOD splits"
            )
        return out


def judge(
    logits: np.ndarray,
    source_logits: np.ndarray,
    labels: np.ndarray,
    tol: Tolerance,
    *,
    split: str,
    seed: int = 0,
    n_resamples: int = 2000,
) -> ToleranceCheck:
    """The tolerance check of ``logits`` against ``source_logits`` on the same samples (labels < 0: unlabeled)."""
    pred, source_pred = logits.argmax(1), source_logits.argmax(1)
    labeled = labels >= 0
    hit, source_hit = (pred == labels)[labeled], (source_pred == labels)[labeled]
    n, n_labeled = len(labels), int(labeled.sum())
    better, worse = int(np.count_nonzero(hit & ~source_hit)), int(np.count_nonzero(~hit & source_hit))
    changed = int(np.count_nonzero(pred != source_pred))
    level = 1.0 - 2.0 * tol.alpha
    if n_labeled:
        rng = np.random.default_rng([seed, zlib.crc32(split.encode())])
        replicates = bootstrap_differences(better, worse, n_labeled, n_resamples, rng)
        low, high = difference_bounds(better, worse, n_labeled, tol.alpha, tol.alpha, replicates)
        change = Interval(value=(better - worse) / n_labeled, low=low, high=high, level=level)
    else:
        change = Interval(value=0.0, low=0.0, high=0.0, level=level)
    low, high = wilson_bounds(changed, n, tol.alpha, tol.alpha) if n else (0.0, 0.0)
    return ToleranceCheck(
        split=split,
        n=n,
        n_labeled=n_labeled,
        accuracy=float(hit.mean()) if n_labeled else 1.0,
        source_accuracy=float(source_hit.mean()) if n_labeled else 1.0,
        better=better,
        worse=worse,
        changed=changed,
        accuracy_change=change,
        changed_share=Interval(value=changed / n if n else 0.0, low=low, high=high, level=level),
        max_accuracy_drop=tol.max_accuracy_drop,
        min_agreement=tol.min_agreement,
        alpha=tol.alpha,
    )


def pool_splits(ctx: OptimizeContext) -> list[str]:
    """The splits pooled when the configured ones cannot decide: the configured ones, then every other labeled
    split that is neither held out (test, OOD) nor already configured, in the dataset's order."""
    tol = ctx.cfg.tolerance
    extra = [
        name
        for name, split in ctx.dataset.splits.items()
        if name not in tol.splits
        and name not in ctx.held_out
        and split.labels is not None
        and (split.labels >= 0).any()
    ]
    return [*tol.splits, *extra] if extra else []


def _check_on(ctx: OptimizeContext, name: str, splits: list[str], reference: str) -> ToleranceCheck:
    def logits(who: str) -> np.ndarray:
        return np.concatenate([ctx.logits(who, ctx.dataset.split(s)) for s in splits])

    labels = np.concatenate([ctx.dataset.split(s).labels for s in splits])
    return judge(logits(name), logits(reference), labels, ctx.cfg.tolerance, split="+".join(splits), seed=ctx.cfg.seed)


def check_tolerance(ctx: OptimizeContext, name: str, reference: str = "source") -> ToleranceCheck:
    """Judge the variant ``ctx.predictors[name]`` against ``reference`` on the tolerance split(s); when that is
    undecided and ``tolerance.pool`` is on, judge again on the pooled labeled splits (see :func:`pool_splits`)."""
    tol = ctx.cfg.tolerance
    first = _check_on(ctx, name, tol.splits, reference)
    if first.outcome != UNDECIDED or not tol.pool:
        return first
    pooled = pool_splits(ctx)
    if not pooled:
        return first
    return replace(_check_on(ctx, name, pooled, reference), pooled_from=first)


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
