"""Frozen, typed records exchanged between stages. Every record round-trips through JSON.

``results.json`` is ``RunResult.to_dict()`` with :data:`SCHEMA_VERSION`. Later stages (optimize, robustness,
audit, gate) add their own records and optional fields; readers ignore nothing silently: ``from_dict`` rejects
unknown keys so a schema drift is caught.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar, Union

SCHEMA_VERSION = "1.0"

R = TypeVar("R", bound="Record")


class Record:
    """Mixin for frozen dataclasses: ``to_dict``/``from_dict`` driven by the type hints."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _dump(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[R], data: dict[str, Any]) -> R:
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)}")
        return cls(**{k: _load(hints[k], v) for k, v in data.items()})

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls: type[R], text: str) -> R:
        return cls.from_dict(json.loads(text))

    def replace(self: R, **changes: Any) -> R:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def _dump(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _dump(v) for k, v in value.items()}
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, float) and not math.isfinite(value):  # NaN and infinities are not JSON
        return None
    return value


def _load(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _load(non_none[0], value)
        for a in non_none:  # first type that accepts the value
            try:
                return _load(a, value)
            except (TypeError, ValueError):
                continue
        return value
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_load(args[0], v) for v in value)
        return tuple(_load(a, v) for a, v in zip(args, value, strict=True))
    if origin is list:
        return [_load(args[0], v) for v in value]
    if origin is dict:
        return {k: _load(args[1], v) for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, Record):
        if not isinstance(value, dict):
            raise TypeError(f"expected an object for {tp.__name__}")
        return tp.from_dict(value)
    if tp is float:
        return float("nan") if value is None else float(value)
    return value


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitInfo(Record):
    """What a split holds, without its samples."""

    name: str
    n: int
    fingerprint: str
    label_counts: dict[str, int]
    source: str
    slice_counts: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetInfo(Record):
    """The dataset a run used: label names, modality, splits with their fingerprints, slice columns."""

    name: str
    modality: str
    label_names: tuple[str, ...]
    splits: tuple[SplitInfo, ...]
    slice_columns: tuple[str, ...]


# ---------------------------------------------------------------------------------------------------------------------
# Models and targets
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant(Record):
    """A model artifact: the exact files, their digest, where it came from and how it was made.

    ``spec`` is the model-source configuration that loads it (``type`` plus its fields, paths absolute), so any
    process can rebuild the predictor from the record alone.
    """

    name: str
    kind: str
    files: tuple[str, ...]
    sha256: str
    size_bytes: int
    spec: dict[str, Any]
    parent: str | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    status: str = "accepted"  # "rejected" (outside the optimization tolerance) or "no gain" (neither faster nor
    # smaller than its parent), each kept with the reason
    reason: str = ""


@dataclass(frozen=True)
class Target(Record):
    """A named hardware profile: every latency, memory and cost number is measured for one of these.

    ``price_per_hour`` is in USD; ``threads`` is already resolved (never 0).
    """

    name: str
    threads: int
    batch_sizes: tuple[int, ...]
    memory_budget_mb: float | None = None
    price_per_hour: float | None = None
    description: str = ""


# ---------------------------------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassMetrics(Record):
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class QualityMetrics(Record):
    """Top-1 quality. ``confusion_matrix[i][j]`` counts samples of class i predicted as j, in ``per_class`` order."""

    n: int
    accuracy: float
    balanced_accuracy: float
    macro_f1: float
    per_class: tuple[ClassMetrics, ...]
    confusion_matrix: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class ReliabilityBin(Record):
    lower: float
    upper: float
    count: int
    confidence: float
    accuracy: float


@dataclass(frozen=True)
class CalibrationMetrics(Record):
    """Calibration of the top-label confidence, before and after temperature scaling."""

    n_bins: int
    ece: float
    adaptive_ece: float
    mce: float
    brier: float
    nll: float
    reliability: tuple[ReliabilityBin, ...]
    temperature: float
    temperature_fitted_on: str
    ece_after_temperature: float
    nll_after_temperature: float
    reliability_after_temperature: tuple[ReliabilityBin, ...]


@dataclass(frozen=True)
class Interval(Record):
    """A point estimate with a bootstrap confidence interval."""

    value: float
    low: float
    high: float
    level: float = 0.95


@dataclass(frozen=True)
class SliceMetrics(Record):
    column: str
    value: str
    n: int
    accuracy: Interval
    macro_f1: float
    ece: float


@dataclass(frozen=True)
class LatencyStats(Record):
    batch_size: int
    repetitions: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    throughput_per_s: float
    cost_per_million: float | None = None


@dataclass(frozen=True)
class Efficiency(Record):
    """Efficiency of one variant on one target, measured in a fresh process pinned to the target's threads."""

    target: str
    threads: int
    file_size_mb: float
    load_time_s: float
    peak_memory_mb: float
    latency: tuple[LatencyStats, ...]
    within_memory_budget: bool | None = None


@dataclass(frozen=True)
class Faithfulness(Record):
    """How closely a variant follows a reference model (its source) on the same samples.

    ``accuracy_delta`` is variant minus reference, with a paired bootstrap interval; ``agreement`` is the share of
    samples with the same top-1 prediction.
    """

    reference: str
    split: str
    n: int
    agreement: float
    accuracy_delta: Interval
    ece_delta: float
    max_abs_logit_diff: float
    mean_abs_logit_diff: float


@dataclass(frozen=True)
class OodScore(Record):
    """How well one OOD score separates the test split (in) from the OOD set (out).

    ``roc`` is (false positive rate, true positive rate) with OOD positive, thinned for plotting; ``edges`` with
    ``counts_in`` / ``counts_out`` is the score histogram.
    """

    name: str
    auroc: float
    aupr: float
    fpr_at_95_tpr: float
    roc: tuple[tuple[float, float], ...]
    edges: tuple[float, ...]
    counts_in: tuple[int, ...]
    counts_out: tuple[int, ...]


@dataclass(frozen=True)
class OodMetrics(Record):
    """Out-of-distribution detection of one variant: the test split against an OOD set.

    ``synthetic`` is true when deployable made the OOD set itself (no ``ood`` split given); ``source`` says how.
    """

    in_split: str
    out_split: str
    synthetic: bool
    source: str
    n_in: int
    n_out: int
    scores: tuple[OodScore, ...]
    mahalanobis_fitted_on: str | None = None

    def best(self) -> OodScore:
        return max(self.scores, key=lambda s: s.auroc)


@dataclass(frozen=True)
class CorruptionResult(Record):
    """One corruption at one severity: accuracy, share of predictions changed from clean, and ECE."""

    name: str
    severity: int
    accuracy: float
    flip_rate: float
    ece: float


@dataclass(frozen=True)
class RobustnessMetrics(Record):
    """Accuracy of one variant under the corruption suite of its modality, on ``n`` test samples.

    ``mean_corruption_accuracy`` averages every (corruption, severity); ``relative_robustness`` is that over the
    clean accuracy of the same samples.
    """

    modality: str
    n: int
    seed: int
    clean_accuracy: float
    clean_ece: float
    mean_corruption_accuracy: float
    relative_robustness: float
    mean_flip_rate: float
    results: tuple[CorruptionResult, ...]

    def by_corruption(self) -> dict[str, list[CorruptionResult]]:
        out: dict[str, list[CorruptionResult]] = {}
        for r in self.results:
            out.setdefault(r.name, []).append(r)
        return out


@dataclass(frozen=True)
class AttackResult(Record):
    """Accuracy of a variant on adversarial inputs of one attack at one budget.

    ``epsilon`` is the budget as configured (share of the range / of each feature's spread; for text, characters);
    ``success_rate`` is the share of samples correct when clean and wrong under attack.
    """

    attack: str
    norm: str
    epsilon: float
    accuracy: float
    success_rate: float
    transferred: bool = False


@dataclass(frozen=True)
class SanityCheck(Record):
    """One check against gradient masking (Carlini et al., "On evaluating adversarial robustness", 2019)."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class AdversarialMetrics(Record):
    """Adversarial robustness of one variant under ``threat_model``, on ``n`` test samples."""

    threat_model: str
    n: int
    clean_accuracy: float
    results: tuple[AttackResult, ...]
    sanity: tuple[SanityCheck, ...] = ()
    source: str | None = None

    @property
    def flagged(self) -> bool:
        return any(not c.passed for c in self.sanity)


@dataclass(frozen=True)
class Evaluation(Record):
    """Everything measured about one variant on the test split; every metric is computed from stored logits."""

    variant: str
    split: str
    store_key: str
    quality: QualityMetrics
    calibration: CalibrationMetrics
    slices: tuple[SliceMetrics, ...]
    efficiency: tuple[Efficiency, ...]
    predictions_file: str | None = None
    faithfulness: Faithfulness | None = None
    ood: OodMetrics | None = None
    robustness: RobustnessMetrics | None = None
    adversarial: AdversarialMetrics | None = None


# ---------------------------------------------------------------------------------------------------------------------
# Audit and scan
# ---------------------------------------------------------------------------------------------------------------------

SEVERITIES = ("critical", "high", "medium", "low", "info")


@dataclass(frozen=True)
class Finding(Record):
    """One problem an audit of the data or a scan of a model file found.

    Attributes:
        check: the check that found it (``duplicates``, ``leakage``, ``label_issues``, ``imbalance``, ``outliers``,
            ``poisoning``, ``scan``).
        code: a stable machine-readable kind, e.g. ``near-duplicate-across-splits`` or ``unsafe-global``.
        severity: one of :data:`SEVERITIES`.
        message: one line a person reads.
        evidence: the samples involved as ``"<split>:<id>"`` (data findings); empty for file findings.
        file: the model file (scan findings).
        member: the inner member of an archive (``archive/data.pkl``), when the finding is inside one.
        details: numbers behind the message (rates, scores, thresholds).
    """

    check: str
    code: str
    severity: str
    message: str
    evidence: tuple[str, ...] = ()
    file: str | None = None
    member: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"Finding.severity must be one of {SEVERITIES}, got {self.severity!r}")


@dataclass(frozen=True)
class LeakageStat(Record):
    """How much of ``split`` also appears in ``against`` and how much of the score the overlap explains.

    ``accuracy`` is the source model's accuracy on all of ``split``, ``accuracy_clean`` on the samples with no exact
    or near duplicate in ``against`` (None when the split is unlabeled or the model was not run on it).
    """

    split: str
    against: str
    n: int
    n_exact: int
    n_near: int
    rate: float
    accuracy: float | None = None
    accuracy_leaked: float | None = None
    accuracy_clean: float | None = None
    n_clean: int = 0


@dataclass(frozen=True)
class AuditCheck(Record):
    """One check of an audit: ran (with its method and how long it took) or skipped (with why)."""

    name: str
    status: str  # "ran" | "skipped"
    method: str = ""
    reason: str = ""
    seconds: float = 0.0
    n_findings: int = 0
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditResult(Record):
    """Everything the audit of the data and the scan of the model files found."""

    findings: tuple[Finding, ...]
    checks: tuple[AuditCheck, ...]
    leakage: tuple[LeakageStat, ...] = ()
    scanned_files: tuple[str, ...] = ()

    def by_check(self, check: str) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.check == check)

    @property
    def counts(self) -> dict[str, int]:
        """Findings per severity (every severity present, zero when none)."""
        out = dict.fromkeys(SEVERITIES, 0)
        for f in self.findings:
            out[f.severity] += 1
        return out


# ---------------------------------------------------------------------------------------------------------------------
# Gate
# ---------------------------------------------------------------------------------------------------------------------

CHECK_STATUSES = ("PASS", "FAIL", "WARN", "ERROR", "SKIPPED", "UNDECIDED")


@dataclass(frozen=True)
class CheckResult(Record):
    """One policy check on one variant (or on the run, for data and scan checks).

    A non-critical check that fails is a ``WARN``; a check on a metric the run does not have is an ``ERROR`` that
    names the closest metric path; a check whose metric does not apply (no baseline, no robustness run) is
    ``SKIPPED`` with the reason. A comparison with the baseline that this sample size does not decide, and whose
    point estimate is not past the margin, is ``UNDECIDED``: a state, neither a pass nor a warning (one whose point
    estimate is past the margin is a ``WARN``; with ``policy.comparison.inconclusive: fail`` both are ``FAIL``).
    """

    name: str
    status: str
    critical: bool
    message: str
    variant: str | None = None
    metric: str | None = None
    value: float | None = None
    threshold: float | None = None
    baseline_value: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in CHECK_STATUSES:
            raise ValueError(f"CheckResult.status must be one of {CHECK_STATUSES}, got {self.status!r}")


@dataclass(frozen=True)
class Comparison(Record):
    """A candidate against the baseline on the same samples (``group``: ``overall`` or ``<column>=<value>``).

    ``difference`` is candidate minus baseline accuracy with its paired bootstrap interval (at the level the
    multiple-testing correction leaves for this group); ``better``/``worse`` count the discordant pairs (candidate
    right and baseline wrong, and the reverse); ``p_value`` is the exact McNemar test on them and ``p_adjusted`` its
    Holm correction over the slices. ``outcome`` is PASS (no worse than ``margin``), FAIL (worse than ``margin``) or
    INCONCLUSIVE, with ``n_needed`` the test-set size that would decide it. ``same_as`` names an earlier variant
    with the same per-sample correctness on the test split: the comparison is that variant's, computed once.
    """

    variant: str
    group: str
    n: int
    candidate_accuracy: float
    baseline_accuracy: float
    difference: Interval
    better: int
    worse: int
    p_value: float
    p_adjusted: float
    margin: float
    outcome: str
    n_needed: int | None = None
    same_as: str | None = None


@dataclass(frozen=True)
class Selection(Record):
    """The variant chosen for a target: the cheapest (latency, then size) that passes every critical check."""

    target: str
    variant: str | None
    reason: str
    latency_ms: float | None = None
    size_bytes: int | None = None
    passing: tuple[str, ...] = ()
    pareto: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict(Record):
    """The gate's decision: PASS when every target has a variant that passes every critical check, else FAIL."""

    status: str
    checks: tuple[CheckResult, ...]
    comparisons: tuple[Comparison, ...] = ()
    selections: tuple[Selection, ...] = ()
    baseline: str | None = None
    reasons: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.status == "PASS"

    def failed_checks(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.status in ("FAIL", "ERROR"))


@dataclass(frozen=True)
class RunResult(Record):
    """One pass down the pipeline: the serialized form is ``results.json``."""

    schema_version: str
    name: str
    created_at: str
    deployable_version: str
    config: dict[str, Any]
    dataset: DatasetInfo
    variants: tuple[Variant, ...]
    targets: tuple[Target, ...]
    evaluations: tuple[Evaluation, ...]
    environment: dict[str, str]
    timings_s: dict[str, float] = field(default_factory=dict)
    audit: AuditResult | None = None
    verdict: Verdict | None = None

    def evaluation(self, variant: str) -> Evaluation:
        for e in self.evaluations:
            if e.variant == variant:
                return e
        raise KeyError(variant)

    @property
    def source(self) -> Variant | None:
        """The variant every other one derives from (the one without a parent), else the first; None if none."""
        return next((v for v in self.variants if v.parent is None), self.variants[0] if self.variants else None)

    @property
    def reference(self) -> Evaluation | None:
        """The evaluation summaries speak of: the source's, else the first; None when nothing was evaluated."""
        source = self.source
        if source is not None:
            for e in self.evaluations:
                if e.variant == source.name:
                    return e
        return self.evaluations[0] if self.evaluations else None

    @classmethod
    def load(cls, path: str | Path) -> RunResult:
        """Read a ``results.json`` (or a run folder containing one)."""
        path = Path(path)
        if path.is_dir():
            path = path / "results.json"
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
