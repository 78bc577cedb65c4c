"""The data audit: runs each check on the dataset and the model's stored outputs (see the package docstring)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from deployable.audit.base import CheckOutput
from deployable.audit.duplicates import split_order
from deployable.config import AuditConfig
from deployable.core.records import AuditCheck, AuditResult, Finding, LeakageStat
from deployable.data.dataset import Dataset, Split
from deployable.evaluation.metrics import softmax

if TYPE_CHECKING:
    from deployable.evaluation import PredictionStore, Progress
    from deployable.models.base import Predictor


_PREVIEW = 5  # samples whose content a finding shows beside their ids


@dataclass
class ModelOutputs:
    """What the audit uses from the model, per split: logits (N, C) and penultimate features (N, D) or None."""

    logits: dict[str, np.ndarray]
    features: dict[str, np.ndarray]
    similarity: bool = False  # the features are embeddings trained for similarity (a sentence encoder's)


def model_outputs(
    predictor: Predictor, dataset: Dataset, store: PredictionStore, *, batch_size: int, progress: Progress | None = None
) -> ModelOutputs:
    """Logits and features of the source model on every split, from the store (or one forward pass that fills it)."""
    from deployable.evaluation.predict import predict

    logits: dict[str, np.ndarray] = {}
    features: dict[str, np.ndarray] = {}
    for name, split in dataset.splits.items():
        if not len(split):
            continue
        out = predict(predictor, split, store, batch_size=batch_size, progress=progress, label=f"{name} (audit)")
        logits[name] = out.logits
        if out.features is not None:
            features[name] = out.features
    return ModelOutputs(logits, features, similarity=predictor.spec.get("type") == "sentence-transformers")


def _raw_features(dataset: Dataset) -> dict[str, np.ndarray]:
    """Tabular inputs are features already: the data-only fallback for label, outlier and poisoning checks."""
    if dataset.modality != "tabular":
        return {}
    return {n: np.asarray(s.inputs, dtype=np.float32).reshape(len(s), -1) for n, s in dataset.splits.items() if len(s)}


def _preview(dataset: Dataset, ref: str, limit: int = 160) -> str | None:
    split_name, _, sample_id = ref.partition(":")
    split = dataset.splits.get(split_name)
    if split is None or dataset.modality != "text":
        return None
    where = np.flatnonzero(split.ids.astype(str) == sample_id)
    if not len(where):
        return None
    text = " ".join(str(split.inputs[int(where[0])]).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _with_previews(dataset: Dataset, finding: Finding) -> Finding:
    if dataset.modality != "text" or not finding.evidence or "preview" in finding.details:
        return finding
    previews = {ref: p for ref in finding.evidence[:_PREVIEW] if (p := _preview(dataset, ref)) is not None}
    return finding.replace(details={**finding.details, "preview": previews}) if previews else finding


def _leakage(
    dataset: Dataset, leaked: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]], logits: dict[str, np.ndarray]
) -> list[LeakageStat]:
    """Leakage rate per split pair and the source's accuracy on all, leaked and clean samples of the later split."""
    stats = []
    for (name, against), (exact, near) in leaked.items():
        split = dataset.splits[name]
        any_leak = exact | near
        acc = acc_leaked = acc_clean = None
        if name in logits and split.labeled:
            correct = logits[name].argmax(axis=1) == split.labels
            acc = float(correct.mean())
            acc_leaked = float(correct[any_leak].mean()) if any_leak.any() else None
            acc_clean = float(correct[~any_leak].mean()) if (~any_leak).any() else None
        stats.append(
            LeakageStat(
                split=name,
                against=against,
                n=len(split),
                n_exact=int(exact.sum()),
                n_near=int(near.sum()),
                rate=float(any_leak.mean()) if len(split) else 0.0,
                accuracy=acc,
                accuracy_leaked=acc_leaked,
                accuracy_clean=acc_clean,
                n_clean=int((~any_leak).sum()),
            )
        )
    return stats


def _leak_findings(stats: list[LeakageStat]) -> list[Finding]:
    """One finding per split pair whose leak inflates the score by more than a point."""
    out = []
    for s in stats:
        if s.accuracy is None or s.accuracy_clean is None or s.n_exact + s.n_near == 0:
            continue
        gap = s.accuracy - s.accuracy_clean
        if gap <= 0.01:
            continue
        out.append(
            Finding(
                check="leakage",
                code="leak-inflates-score",
                severity="high" if gap > 0.02 else "medium",
                message=(
                    f"{s.n_exact + s.n_near} of {s.n} '{s.split}' samples also appear in '{s.against}'; accuracy is "
                    f"{s.accuracy:.1%} on all and {s.accuracy_clean:.1%} without them ({gap * 100:+.1f} points from "
                    "the leak)"
                ),
                details={"split": s.split, "against": s.against, "accuracy": s.accuracy, "clean": s.accuracy_clean},
            )
        )
    return out


def audit_dataset(
    dataset: Dataset,
    cfg: AuditConfig,
    *,
    outputs: ModelOutputs | None = None,
    progress: Progress | None = None,
) -> AuditResult:
    """Run every enabled data check and gather its findings.

    Args:
        dataset: the splits to audit.
        cfg: the ``audit`` section of the config.
        outputs: the source model's logits and features per split (see :func:`model_outputs`); None audits the data
            alone (tabular inputs then stand in for features).
        progress: a :class:`~deployable.evaluation.runner.Progress` for the per-check progress bar.

    Returns:
        An :class:`AuditResult` with no scan findings (the pipeline adds those, see ``audit.scan``).
    """
    outputs = outputs or ModelOutputs({}, {})
    features = outputs.features or _raw_features(dataset)
    feature_source = "the model's penultimate features" if outputs.features else "the raw tabular inputs"
    checks: list[AuditCheck] = []
    findings: list[Finding] = []
    leakage: list[LeakageStat] = []
    task = progress.task("audit", 6) if progress is not None else None

    def step(name: str, fn: Callable[[], CheckOutput | None], enabled: bool) -> CheckOutput | None:
        if progress is not None:
            progress.advance(task, 1)
        if not enabled:
            checks.append(AuditCheck(name=name, status="skipped", reason="disabled in the config"))
            return None
        t = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - t
        if out is None:
            return None
        found = [_with_previews(dataset, f.replace(details=_jsonable(f.details))) for f in out.findings]
        findings.extend(found)
        checks.append(
            AuditCheck(
                name=name,
                status="skipped" if out.skipped else "ran",
                method=out.method,
                reason=out.skipped or "",
                seconds=round(seconds, 3),
                n_findings=len(found),
                details=_jsonable(out.details),
            )
        )
        return out

    labeled = [s for s in dataset.splits.values() if len(s) and s.labeled]
    order = split_order(list(dataset.splits))

    def duplicates() -> CheckOutput:
        from deployable.audit.duplicates import find_duplicates

        mode = cfg.duplicates.embeddings
        use = mode == "on" or (mode == "auto" and outputs.similarity)
        report = find_duplicates(
            dataset, cfg.duplicates, features=(outputs.features or None) if use else None, max_evidence=cfg.max_evidence
        )
        leakage.extend(_leakage(dataset, report.leaked, outputs.logits))
        report.output.findings.extend(_leak_findings(leakage))
        return report.output

    step("duplicates", duplicates, cfg.duplicates.enabled)

    def labels() -> CheckOutput:
        from deployable.audit.labels import find_label_issues

        want = [dataset.split(n) for n in (cfg.labels.splits or [s.name for s in labeled if s.name in order])]
        want = [s for s in want if s.labeled and len(s)]
        use_features = cfg.labels.probe != "model" and all(s.name in features for s in want)
        if use_features and len(want) > 1:
            # One probe cross-validated over every labeled split: each sample still gets a probability from a probe
            # that never saw it, and the small splits (validation) borrow the others' samples instead of being
            # judged by a probe trained on a few dozen examples per class.
            pooled = _pooled(want)
            out = find_label_issues(
                pooled,
                cfg.labels,
                features=np.concatenate([features[s.name] for s in want]),
                probs=None,
                n_classes=dataset.n_classes,
                label_names=dataset.label_names,
                in_sample=True,
                max_evidence=cfg.max_evidence,
            )
            out.findings = [_unpool(f, want) for f in out.findings]
            out.method = f"{out.method}, pooled over {', '.join(s.name for s in want)}"
            return out
        merged = CheckOutput(method="", details={"splits": {}})
        methods = []
        for split in want:
            logits = outputs.logits.get(split.name)
            out = find_label_issues(
                split,
                cfg.labels,
                features=features.get(split.name),
                probs=softmax(logits) if logits is not None else None,
                n_classes=dataset.n_classes,
                label_names=dataset.label_names,
                in_sample=split.name == cfg.labels.train_split,
                max_evidence=cfg.max_evidence,
            )
            merged.findings.extend(out.findings)
            merged.details["splits"][split.name] = {**out.details, **({"skipped": out.skipped} if out.skipped else {})}
            methods.append(
                f"{split.name}: {out.method}" if not out.skipped else f"{split.name}: skipped ({out.skipped})"
            )
        merged.method = "; ".join(methods)
        if methods and all(v.get("skipped") for v in merged.details["splits"].values()):
            merged.skipped = "no split had out-of-sample probabilities (see method)"
        return merged

    step("label_issues", labels, cfg.labels.enabled and bool(labeled))

    def imbalance() -> CheckOutput:
        from deployable.audit.imbalance import check_imbalance

        return check_imbalance(
            [dataset.splits[n] for n in order if dataset.splits[n].labeled and len(dataset.splits[n])],
            cfg.imbalance,
            label_names=dataset.label_names,
            max_evidence=cfg.max_evidence,
        )

    step("imbalance", imbalance, cfg.imbalance.enabled and bool(labeled))

    def outliers() -> CheckOutput:
        if not features:
            return CheckOutput(skipped="the model exposes no penultimate features and the data is not tabular")
        from deployable.audit.outliers import find_outliers

        reference = cfg.poisoning.split if cfg.poisoning.split in features else next(iter(features))
        out = find_outliers(
            {n: s for n, s in dataset.splits.items() if n in features},
            features,
            cfg.outliers,
            reference=reference,
            max_evidence=cfg.max_evidence,
        )
        out.method = f"{out.method} (on {feature_source})" if out.method else out.method
        return out

    step("outliers", outliers, cfg.outliers.enabled)

    def poisoning() -> CheckOutput:
        name = cfg.poisoning.split
        if name not in dataset.splits:
            return CheckOutput(skipped=f"no '{name}' split (audit.poisoning.split)")
        if name not in features:
            return CheckOutput(skipped="the model exposes no penultimate features and the data is not tabular")
        from deployable.audit.poisoning import find_poisoning

        out = find_poisoning(
            dataset.splits[name],
            features[name],
            cfg.poisoning,
            label_names=dataset.label_names,
            max_evidence=cfg.max_evidence,
        )
        out.method = f"{out.method} (on {feature_source})" if out.method else out.method
        return out

    step("poisoning", poisoning, cfg.poisoning.enabled)
    if progress is not None:
        progress.done(task)
    return AuditResult(findings=tuple(findings), checks=tuple(checks), leakage=tuple(leakage))


_POOLED = "labeled splits"


def _pooled(splits: list[Split]) -> Split:
    """The labeled splits as one, with ids ``<split>:<id>`` so the evidence still names each sample's split."""
    return Split(
        name=_POOLED,
        inputs=[None] * sum(len(s) for s in splits),
        labels=np.concatenate([s.labels for s in splits]),
        ids=np.concatenate([np.char.add(f"{s.name}:", s.ids.astype(str)) for s in splits]),
    )


def _unpool(finding: Finding, splits: list[Split]) -> Finding:
    """Evidence back to ``<split>:<id>``, and the count per split in the details."""
    refs = tuple(e.removeprefix(f"{_POOLED}:") for e in finding.evidence)
    per_split = {s.name: sum(r.startswith(f"{s.name}:") for r in refs) for s in splits}
    details = dict(finding.details)
    details["per_split"] = per_split
    if isinstance(details.get("top"), list):
        details["top"] = [{**t, "id": str(t["id"])} if isinstance(t, dict) and "id" in t else t for t in details["top"]]
    message = finding.message.replace(f"'{_POOLED}'", ", ".join(s.name for s in splits))
    return finding.replace(evidence=refs, details=details, message=message)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value
