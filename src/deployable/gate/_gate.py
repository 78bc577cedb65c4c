"""The gate: policy checks and the paired comparison with the baseline, per variant (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deployable.config import PolicyConfig, Project
from deployable.core.errors import ConfigError, DeployableError, did_you_mean
from deployable.core.records import CheckResult, Comparison, RunResult, Verdict
from deployable.gate.select import select

UNDECIDED = "UNDECIDED"

if TYPE_CHECKING:
    from collections.abc import Sequence

    from deployable.core.records import Evaluation, Variant
    from deployable.data.dataset import Dataset, Split
    from deployable.evaluation import PredictionStore, Progress
    from deployable.models.base import Predictor


@dataclass
class Baseline:
    """The production model's results on the test split.

    Attributes:
        name: how reports call it.
        correct: bool (N,), whether it got each test sample right, in the test split's order.
        metrics: its flat metrics from a previous run (for relative checks).
        variant, evaluation: or its record and evaluation on this run's test split (a model baseline).
    """

    name: str
    correct: np.ndarray
    metrics: dict[str, float] | None = None
    variant: Variant | None = None
    evaluation: Evaluation | None = None

    def metrics_in(self, result: RunResult) -> dict[str, float] | None:
        """Its flat metrics; a model baseline's are read like a variant of ``result`` (without the run's audit)."""
        if self.metrics is not None or self.evaluation is None:
            return self.metrics
        from deployable.gate.policy import variant_metrics

        alone = result.replace(variants=(self.variant,), evaluations=(self.evaluation,), audit=None)
        return variant_metrics(alone, self.variant.name)


def load_baseline(
    project: Project, dataset: Dataset, store: PredictionStore, *, progress: Progress | None = None
) -> Baseline | None:
    """The baseline the config names: a previous run folder's predictions, or a model run on the test split."""
    cfg = project.policy.baseline
    if cfg is None:
        return None
    split = dataset.split(project.evaluate.test_split)
    name = cfg.name or "production"
    if cfg.run is not None:
        return _baseline_from_run(project.path(cfg.run), cfg.variant, split, dataset.label_names, name)
    return _baseline_from_model(project, cfg.model or {}, split, dataset, store, name, progress)


def _baseline_from_run(folder: Path, variant: str, split: Split, label_names: Sequence[str], name: str) -> Baseline:
    import pandas as pd

    from deployable.gate.policy import variant_metrics

    if not (folder / "results.json").is_file():
        raise ConfigError(
            f"policy.baseline.run: '{folder}' is not a run folder (no results.json)",
            hint="point it at the folder a previous 'deployable run --out' wrote",
        )
    previous = RunResult.load(folder)
    names = [v.name for v in previous.variants]
    if variant not in names:
        raise ConfigError(f"policy.baseline.variant: the run in '{folder}' has no variant '{variant}'",
                          hint=did_you_mean(variant, names))  # fmt: skip
    path = folder / "predictions" / f"{variant}.parquet"
    if not path.is_file():
        raise ConfigError(f"policy.baseline.run: '{path}' is missing (the run was made without its predictions)")
    frame = pd.read_parquet(path, columns=["id", "label", "predicted"])
    by_id = dict(zip(frame["id"].astype(str), frame["predicted"].astype(str), strict=True))
    ids = split.ids.astype(str)
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise DeployableError(
            f"policy.baseline.run: the baseline's predictions lack {len(missing)} of {len(ids)} '{split.name}' samples "
            f"(e.g. '{missing[0]}')",
            hint="compare on the same test split: rerun the baseline on this data",
        )
    truth = np.asarray(label_names, dtype=object)[split.labels]
    predicted = np.array([by_id[i] for i in ids], dtype=object)
    return Baseline(name=name, correct=predicted == truth, metrics=variant_metrics(previous, variant))


def _baseline_from_model(
    project: Project,
    section: dict[str, Any],
    split: Split,
    dataset: Dataset,
    store: PredictionStore,
    name: str,
    progress: Progress | None,
) -> Baseline:
    from pydantic import TypeAdapter, ValidationError

    from deployable.audit.guard import scan_model
    from deployable.config import ModelConfig
    from deployable.evaluation.predict import predict
    from deployable.models.sources import load_predictor, resolve_spec

    try:
        model = TypeAdapter(ModelConfig).validate_python(section)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"policy.baseline.model.{where}: {first['msg']}") from exc
    spec = resolve_spec(model.model_dump(), Path(project.base_dir))
    scan_model(spec)  # the baseline is loaded too, so it is scanned first
    predictor = load_predictor(spec)
    out = predict(predictor, split, store, batch_size=project.evaluate.batch_size, progress=progress, label="baseline")
    correct = out.logits.argmax(axis=1) == split.labels
    variant, evaluation = _model_evaluation(project, predictor, dataset, store, progress)
    return Baseline(name=name, correct=correct, variant=variant, evaluation=evaluation)


def _model_evaluation(
    project: Project, predictor: Predictor, dataset: Dataset, store: PredictionStore, progress: Progress | None
) -> tuple[Variant, Evaluation]:
    """The baseline model's quality, calibration and slices (for relative checks), from stored predictions.

    Efficiency, robustness, attacks and OOD are not measured for the baseline: relative checks on them are SKIPPED.
    """
    from deployable.evaluation.runner import evaluate_variant
    from deployable.models import source_variant

    parts = ("efficiency", "robustness", "adversarial", "ood")
    off = {name: getattr(project.evaluate, name).model_copy(update={"enabled": False}) for name in parts}
    cfg = project.evaluate.model_copy(update=off)
    variant = source_variant(predictor, name="baseline")
    return variant, evaluate_variant(variant, predictor, dataset, cfg, store, targets=[], progress=progress)


def _groups(split: Split, label_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Slice groups ``<column>=<value>`` and, with ``label_names``, class groups ``class=<name>``."""
    groups = {}
    if label_names is not None:
        for i, name in enumerate(label_names):
            groups[f"class={name}"] = split.labels == i
    for column, values in split.slices.items():
        values = np.asarray(values).astype(str)
        for value in np.unique(values):
            groups[f"{column}={value}"] = values == value
    return groups


def _comparison_check(c: Comparison, policy: PolicyConfig, baseline: str) -> CheckResult:
    name = f"accuracy vs {baseline}" + ("" if c.group == "overall" else f" ({c.group})")
    d = c.difference
    text = (
        f"{c.candidate_accuracy:.1%} vs {c.baseline_accuracy:.1%} on {c.n} samples, difference "
        f"{d.value * 100:+.1f} points [{d.low * 100:+.1f}, {d.high * 100:+.1f}] (margin {c.margin * 100:.1f}), "
        f"{c.worse} worse / {c.better} better, McNemar p={c.p_value:.3g}"
    )
    if c.outcome == "PASS":
        status, message = "PASS", f"no worse than the margin: {text}"
    elif c.outcome == "FAIL":
        status, message = "FAIL", f"worse than the margin: {text}"
    else:
        need = f"; about {c.n_needed:,} samples would decide it" if c.n_needed else ""
        if policy.comparison.inconclusive == "fail":
            status, message = "FAIL", f"inconclusive: {text}{need}"
        elif past_margin(c):
            status, message = "WARN", f"regression past the margin, not yet significant: {text}{need}"
        else:
            status, message = UNDECIDED, f"not decided at this sample size: {text}{need}"
    if c.same_as:
        message += f" (same per-sample results as '{c.same_as}': its comparison)"
    return CheckResult(
        name=name,
        status=status,
        critical=True,
        message=message,
        variant=c.variant,
        metric=_group_metric(c.group),
        value=c.candidate_accuracy,
        threshold=-c.margin,
        baseline_value=c.baseline_accuracy,
        details={
            "group": c.group,
            "outcome": c.outcome,
            "n": c.n,
            "p_adjusted": c.p_adjusted,
            "n_needed": c.n_needed,
            "same_as": c.same_as,
        },
    )


def past_margin(c: Comparison) -> bool:
    """Whether a comparison's point estimate is a regression past its margin (whatever the interval says)."""
    return c.difference.value < -c.margin - 1e-12  # d is k/n: the tolerance only absorbs float rounding


def _group_metric(group: str) -> str:
    if group == "overall":
        return "quality.accuracy"
    column, _, value = group.partition("=")
    return f"quality.per_class.{value}.recall" if column == "class" else f"slices.{column}.{value}.accuracy"


def gate(
    result: RunResult,
    policy: PolicyConfig,
    *,
    baseline: Baseline | None = None,
    split: Any = None,
    correct: dict[str, np.ndarray] | None = None,
) -> Verdict:
    """Judge every candidate variant of a run and choose one per target.

    Args:
        result: the run (evaluations, audit).
        policy: the ``policy`` section.
        baseline: the production model's results on the test split, or None (no comparison).
        split: the test split (its slices define the comparison's groups); needed with a baseline.
        correct: variant -> bool (N,) whether it got each test sample right (from the prediction store); needed
            with a baseline.

    Returns:
        The :class:`Verdict`.
    """
    from deployable.gate.policy import evaluate_checks
    from deployable.gate.stats import compare

    status = {v.name: v.status for v in result.variants}
    evaluated = [e.variant for e in result.evaluations]
    if policy.variants is not None:
        unknown = [v for v in policy.variants if v not in evaluated]
        if unknown:
            raise ConfigError(f"policy.variants: no variant '{unknown[0]}' in this run",
                              hint=did_you_mean(unknown[0], evaluated))  # fmt: skip
    # rejected: outside the optimization tolerance; no gain: neither faster nor smaller than its parent
    candidates = [v for v in (policy.variants or evaluated) if status.get(v) not in ("rejected", "no gain")]
    checks: list[CheckResult] = []
    comparisons: list[Comparison] = []
    names = result.dataset.label_names if policy.comparison.per_class else None
    groups = _groups(split, names) if split is not None else {}
    baseline_metrics = baseline.metrics_in(result) if baseline else None
    first_with: dict[bytes, str] = {}  # per-sample correctness -> the first variant that has it
    computed: dict[str, list[Comparison]] = {}
    for variant in candidates:
        checks += evaluate_checks(result, policy, variant, baseline=baseline_metrics)
        if baseline is not None:
            if correct is None or variant not in correct:
                raise ValueError(f"gate: no per-sample results of variant '{variant}' to compare with the baseline")
            right = np.asarray(correct[variant], dtype=bool)
            first = first_with.setdefault(right.tobytes(), variant)
            if first == variant:
                found = computed[variant] = compare(variant, right, baseline.correct, groups, policy.comparison)
            else:  # the comparison is a function of the correctness alone: the same numbers, computed once
                found = [c.replace(variant=variant, same_as=first) for c in computed[first]]
            comparisons += found
            checks += [_comparison_check(c, policy, baseline.name) for c in found]
    failing = {c.variant for c in checks if c.critical and c.status in ("FAIL", "ERROR")}
    run_level_fail = any(c.variant is None and c.critical and c.status in ("FAIL", "ERROR") for c in checks)
    passing = [] if run_level_fail else [v for v in candidates if v not in failing]
    selections = select(result, passing)
    reasons = []
    for s in selections:
        if s.variant is None:
            reasons.append(f"{s.target}: no variant passes every critical check")
    for c in checks:
        if c.critical and c.status in ("FAIL", "ERROR"):
            reasons.append(f"{c.variant or 'run'}: {c.name}: {c.message}")
    return Verdict(
        status="PASS" if selections and all(s.variant for s in selections) else "FAIL",
        checks=tuple(checks),
        comparisons=tuple(comparisons),
        selections=tuple(selections),
        baseline=baseline.name if baseline else None,
        reasons=tuple(reasons),
    )
