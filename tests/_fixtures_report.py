"""A realistic :class:`RunResult` built by hand, for the report tests.

A four-class support-ticket classifier with two variants (the float source model and an INT8 ONNX export of it),
two slice columns and two hardware targets, one with two batch sizes. The numbers are internally consistent
(confusion matrices match the per-class support and the accuracy) and include what real runs contain: empty
reliability bins (NaN), a variant over its memory budget, a small slice with a wide interval.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deployable.core.paired import adjusted_wald, decide, difference_n_to_decide, rate_n_to_decide, wilson_bounds
from deployable.core.records import (
    SCHEMA_VERSION,
    AuditCheck,
    AuditResult,
    CalibrationMetrics,
    CheckResult,
    ClassMetrics,
    Comparison,
    DatasetInfo,
    Efficiency,
    Evaluation,
    Faithfulness,
    Finding,
    Interval,
    LatencyStats,
    LeakageStat,
    QualityMetrics,
    ReliabilityBin,
    RunResult,
    Selection,
    SliceMetrics,
    SplitInfo,
    Target,
    Variant,
    Verdict,
)

LABELS = ("billing", "technical_issue", "account & login", "other")
VARIANTS = ("source", "int8-dynamic")
TARGETS = (
    Target(
        name="edge-cpu",
        threads=1,
        batch_sizes=(1,),
        memory_budget_mb=256.0,
        price_per_hour=0.0116,
        description="one core, one request at a time",
    ),
    Target(
        name="cloud-cpu",
        threads=4,
        batch_sizes=(1, 32),
        memory_budget_mb=8192.0,
        price_per_hour=0.085,
        description="all cores of a 4-vCPU instance, batched requests",
    ),
)


def _quality(cm: np.ndarray) -> QualityMetrics:
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    per_class = tuple(
        ClassMetrics(
            label=LABELS[i],
            precision=float(precision[i]),
            recall=float(recall[i]),
            f1=float(f1[i]),
            support=int(support[i]),
        )
        for i in range(len(LABELS))
    )
    return QualityMetrics(
        n=int(cm.sum()),
        accuracy=float(tp.sum() / cm.sum()),
        balanced_accuracy=float(recall.mean()),
        macro_f1=float(f1.mean()),
        per_class=per_class,
        confusion_matrix=tuple(tuple(int(v) for v in row) for row in cm),
    )


def _bins(n: int, overconfidence: float, seed: int) -> tuple[ReliabilityBin, ...]:
    rng = np.random.default_rng(seed)
    edges = np.linspace(0.0, 1.0, 11)
    weights = np.array([0, 0, 1, 3, 5, 8, 12, 18, 30, 60], dtype=float)  # confident model: mass near 1
    counts = np.floor(weights / weights.sum() * n).astype(int)
    counts[-1] += n - counts.sum()
    bins = []
    for b in range(10):
        lo, hi = float(edges[b]), float(edges[b + 1])
        if counts[b] == 0:
            bins.append(ReliabilityBin(lower=lo, upper=hi, count=0, confidence=math.nan, accuracy=math.nan))
            continue
        conf = lo + (hi - lo) * float(rng.uniform(0.4, 0.7))
        acc = float(np.clip(conf - overconfidence * conf + rng.normal(0, 0.02), 0, 1))
        bins.append(ReliabilityBin(lower=lo, upper=hi, count=int(counts[b]), confidence=conf, accuracy=acc))
    return tuple(bins)


def _calibration(n: int, ece: float, ece_t: float, temperature: float, seed: int) -> CalibrationMetrics:
    return CalibrationMetrics(
        n_bins=10,
        ece=ece,
        adaptive_ece=ece * 0.93,
        mce=ece * 3.1,
        brier=0.142,
        nll=0.388,
        reliability=_bins(n, 0.09, seed),
        temperature=temperature,
        temperature_fitted_on="validation",
        ece_after_temperature=ece_t,
        nll_after_temperature=0.331,
        reliability_after_temperature=_bins(n, 0.015, seed + 1),
    )


def _slices(acc: float, seed: int) -> tuple[SliceMetrics, ...]:
    rng = np.random.default_rng(seed)
    rows = (
        ("language", "de", 212, -0.041),
        ("language", "en", 566, 0.018),
        ("language", "fr", 22, -0.09),
        ("length", "long", 296, -0.015),
        ("length", "short", 504, 0.009),
    )
    out = []
    for column, value, n, delta in rows:
        a = float(np.clip(acc + delta + rng.normal(0, 0.004), 0, 1))
        half = 1.96 * math.sqrt(a * (1 - a) / n)
        out.append(
            SliceMetrics(
                column=column,
                value=value,
                n=n,
                accuracy=Interval(value=a, low=max(0.0, a - half), high=min(1.0, a + half)),
                macro_f1=a - 0.03,
                ece=float(0.02 + rng.uniform(0, 0.05)),
            )
        )
    return tuple(out)


def _latency(batch: int, p50: float, price: float | None) -> LatencyStats:
    mean = p50 * 1.06
    throughput = batch / (mean / 1000.0)
    cost = None if price is None else price / (3600.0 * throughput) * 1e6
    return LatencyStats(
        batch_size=batch,
        repetitions=200 if batch == 1 else 40,
        p50_ms=p50,
        p95_ms=p50 * 1.18,
        p99_ms=p50 * 1.41,
        mean_ms=mean,
        throughput_per_s=throughput,
        cost_per_million=cost,
    )


BASE_P50_MS = {"edge-cpu": 9.8, "cloud-cpu": 3.1}  # the source model at batch 1


def _efficiency(
    size_mb: float, speed: float, memory_mb: float, per_target: dict[str, float] | None = None
) -> tuple[Efficiency, ...]:
    """Latency is the source's times ``speed`` (or ``per_target[target]``): 0.3 is 3.3 times faster."""
    out = []
    for t in TARGETS:
        base = BASE_P50_MS[t.name] * (per_target or {}).get(t.name, speed)
        latency = tuple(_latency(b, base * (1 if b == 1 else b * 0.22), t.price_per_hour) for b in t.batch_sizes)
        out.append(
            Efficiency(
                target=t.name,
                threads=t.threads,
                file_size_mb=size_mb,
                load_time_s=0.41 * speed + 0.1,
                peak_memory_mb=memory_mb,
                latency=latency,
                within_memory_budget=memory_mb <= (t.memory_budget_mb or math.inf),
            )
        )
    return tuple(out)


def make_run_result() -> RunResult:
    """The hand-built run: 2 variants × 4 classes × 2 slice columns × 2 targets."""
    cm_source = np.array([[231, 9, 6, 4], [11, 262, 8, 9], [5, 7, 148, 4], [8, 12, 5, 71]])
    cm_int8 = np.array([[228, 11, 6, 5], [12, 259, 9, 10], [6, 8, 145, 5], [9, 13, 6, 68]])
    q_source, q_int8 = _quality(cm_source), _quality(cm_int8)
    n = q_source.n

    source = Variant(
        name="source",
        kind="transformers",
        files=("/models/minilm/model.safetensors", "/models/minilm/config.json", "/models/minilm/tokenizer.json"),
        sha256="3f1c9a0e5b7d2c4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e",
        size_bytes=90_868_376,
        spec={"type": "transformers", "path": "/models/minilm", "max_length": 128},
        parent=None,
        recipe={"recipe": "source"},
    )
    int8 = Variant(
        name="int8-dynamic",
        kind="onnx",
        files=("/runs/tickets/variants/int8-dynamic/model.onnx",),
        sha256="a94d0c1b2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f",
        size_bytes=23_150_112,
        spec={"type": "onnx", "path": "/runs/tickets/variants/int8-dynamic/model.onnx"},
        parent="source",
        recipe={"recipe": "int8-dynamic", "per_channel": True, "weight_type": "QInt8", "opset": 17},
    )

    evaluations = (
        Evaluation(
            variant="source",
            split="test",
            store_key="preds-7d1e2a9b44c0",
            quality=q_source,
            calibration=_calibration(n, 0.0612, 0.0187, 1.62, seed=1),
            slices=_slices(q_source.accuracy, 2),
            efficiency=_efficiency(86.66, 1.0, 412.5),
            predictions_file="predictions/source.parquet",
        ),
        Evaluation(
            variant="int8-dynamic",
            split="test",
            store_key="preds-1b93f0c2d8aa",
            quality=q_int8,
            calibration=_calibration(n, 0.0688, 0.0201, 1.71, seed=3),
            slices=_slices(q_int8.accuracy, 4),
            efficiency=_efficiency(22.08, 0.38, 198.0),
            predictions_file="predictions/int8-dynamic.parquet",
        ),
    )
    splits = (
        SplitInfo(
            name="train",
            n=4000,
            fingerprint="9c2f7e41d0a3b5c6d7e8f90112233445566778899aabbccddeeff00112233445",
            label_counts={"billing": 1250, "technical_issue": 1450, "account & login": 820, "other": 480},
            source="data/train.jsonl",
        ),
        SplitInfo(
            name="validation",
            n=600,
            fingerprint="51aa0c3d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b",
            label_counts={"billing": 188, "technical_issue": 217, "account & login": 123, "other": 72},
            source="data/validation.jsonl",
        ),
        SplitInfo(
            name="test",
            n=n,
            fingerprint="e07d4c2b19f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2",
            label_counts={label: int(s) for label, s in zip(LABELS, cm_source.sum(axis=1), strict=True)},
            source="data/test.jsonl",
        ),
    )
    return RunResult(
        schema_version=SCHEMA_VERSION,
        name="support-tickets",
        created_at="2025-03-14T09:26:53+00:00",
        deployable_version="0.1.0",
        config={
            "name": "support-tickets",
            "model": {"type": "transformers", "path": "models/minilm"},
            "targets": ["edge-cpu", "cloud-cpu"],
            "evaluate": {"n_bins": 10, "n_bootstrap": 1000},
        },
        dataset=DatasetInfo(
            name="support-tickets",
            modality="text",
            label_names=LABELS,
            splits=splits,
            slice_columns=("language", "length"),
        ),
        variants=(source, int8),
        targets=TARGETS,
        evaluations=evaluations,
        environment={
            "python": "3.11.9",
            "platform": "Linux-6.1.0-x86_64-with-glibc2.36",
            "machine": "x86_64",
            "cpu_count": "8",
            "numpy": "1.26.4",
            "torch": "2.3.1",
            "onnxruntime": "1.18.0",
        },
        timings_s={"prepare": 0.02, "load": 1.84, "evaluate": 41.7},
        audit=make_audit(),
        verdict=make_verdict(),
    )


def make_verdict() -> Verdict:
    """int8-dynamic chosen for both targets; the source fails a slice against production."""
    diff = Interval(value=-0.09, low=-0.16, high=-0.03, level=0.94)
    worse = Comparison(
        variant="source",
        group="language=de",
        n=80,
        candidate_accuracy=0.71,
        baseline_accuracy=0.80,
        difference=diff,
        better=1,
        worse=8,
        p_value=0.039,
        p_adjusted=0.04,
        margin=0.0,
        outcome="FAIL",
    )
    ok = Comparison(
        variant="int8-dynamic",
        group="overall",
        n=352,
        candidate_accuracy=0.85,
        baseline_accuracy=0.81,
        difference=Interval(0.04, 0.012, 0.08, 0.94),
        better=20,
        worse=6,
        p_value=0.009,
        p_adjusted=0.02,
        margin=0.01,
        outcome="PASS",
    )
    checks = (
        CheckResult(
            name="calibration.ece <= 0.05",
            status="PASS",
            critical=True,
            variant="int8-dynamic",
            message="calibration.ece = 0.031 <= 0.05",
            metric="calibration.ece",
            value=0.031,
            threshold=0.05,
        ),
        CheckResult(
            name="accuracy vs production (language=de)",
            status="FAIL",
            critical=True,
            variant="source",
            message="worse than the margin: 71.0% vs 80.0% on 80 samples",
            metric="slices.language.de.accuracy",
        ),
        CheckResult(
            name="efficiency.edge-cpu.latency_ms.p95 <= 5",
            status="WARN",
            critical=False,
            variant="source",
            message="efficiency.edge-cpu.latency_ms.p95 = 9.1 > 5 (limit <= 5)",
        ),
    )
    selections = tuple(
        Selection(
            target=t.name,
            variant="int8-dynamic",
            reason="fastest of 1 passing",
            latency_ms=3.1,
            size_bytes=23_150_112,
            passing=("int8-dynamic",),
            pareto=("int8-dynamic", "source"),
        )
        for t in TARGETS
    )
    return Verdict(
        status="PASS",
        checks=checks,
        comparisons=(worse, ok),
        selections=selections,
        baseline="production",
        reasons=("source: accuracy vs production (language=de): worse",),
    )


def make_audit() -> AuditResult:
    """An audit with a leak that props up the score, label errors with text previews, and a flagged model file."""
    leaked = tuple(f"test:t-{i:04d}" for i in range(24))
    return AuditResult(
        findings=(
            Finding(
                check="scan",
                code="unknown-global",
                severity="high",
                message="mymodule.Head is imported and called when this pickle is loaded (not on the allowlist)",
                file="models/minilm/extra_head.pt",
                member="extra_head/data.pkl",
                details={"global": "mymodule.Head", "count": 1},
            ),
            Finding(
                check="leakage",
                code="near-leak",
                severity="high",
                message="24 of 352 test samples (6.8%) are near duplicates (not exact) of train samples",
                evidence=leaked,
                details={"preview": {ref: f"my parcel {ref[-4:]} never arrived, where is it?" for ref in leaked[:3]}},
            ),
            Finding(
                check="label_issues",
                code="label-errors",
                severity="medium",
                message="31 of 1120 labeled samples of train, validation, test (2.8%) are likely mislabeled",
                evidence=tuple(f"train:t-{i:04d}" for i in range(31)),
            ),
        ),
        checks=(
            AuditCheck(
                name="scan", status="ran", method="pickle opcodes against an allowlist", seconds=0.02, n_findings=1
            ),
            AuditCheck(name="duplicates", status="ran", method="MinHash LSH", seconds=0.4, n_findings=1),
            AuditCheck(name="label_issues", status="ran", method="cleanlab", seconds=1.2, n_findings=1),
            AuditCheck(name="poisoning", status="skipped", reason="the model exposes no penultimate features"),
        ),
        leakage=(
            LeakageStat(
                split="test",
                against="train",
                n=352,
                n_exact=0,
                n_near=24,
                rate=24 / 352,
                accuracy=0.81,
                accuracy_leaked=1.0,
                accuracy_clean=0.796,
                n_clean=328,
            ),
        ),
        scanned_files=("models/minilm/model.safetensors", "models/minilm/extra_head.pt"),
    )


# ---------------------------------------------------------------------------------------------------------------------
# A run of the optimize stage: several variants of the same model, one of them rejected
# ---------------------------------------------------------------------------------------------------------------------

OPTIMIZED_VARIANTS = ("source", "onnx-fp32", "onnx-fused", "int8-dynamic", "int8-static", "fp16")
TOLERANCE = {"max_accuracy_drop": 0.01, "min_agreement": 0.95, "split": "validation"}
# latency as a multiple of the source's, per target (edge-cpu, cloud-cpu)
SPEED = {
    "source": (1.0, 1.0),
    "onnx-fp32": (0.82, 0.82),
    "onnx-fused": (0.61, 0.55),
    "int8-dynamic": (0.30, 0.36),
    "int8-static": (0.26, 0.31),
    "fp16": (1.15, 1.24),
}
SIZE_BYTES = {
    "source": 90_868_376,
    "onnx-fp32": 90_977_020,
    "onnx-fused": 90_812_434,
    "int8-dynamic": 23_150_112,
    "int8-static": 23_402_877,
    "fp16": 45_496_310,
}
# Pareto-optimal on both targets: int8-static is faster but rejected; onnx-fused beats source and onnx-fp32 at the
# same accuracy; fp16 is the slowest but gets one more test sample right.
PARETO_FRONT = ("int8-dynamic", "onnx-fused", "fp16")


def _tolerance_check(accuracy: float, agreement: float, n: int = 600, **extra: str) -> dict[str, Any]:
    """A tolerance check as the optimizer records it, judged against ``TOLERANCE`` with the real intervals."""
    source = 535 / 600
    better, worse = max(0, round((accuracy - source) * n)), max(0, round((source - accuracy) * n))
    changed = round((1 - agreement) * n)
    low, high = adjusted_wald(better, worse, n, 0.05, 0.05)
    c_low, c_high = wilson_bounds(changed, n, 0.05, 0.05)
    accuracy_outcome = decide(low, high, -TOLERANCE["max_accuracy_drop"])
    agreement_outcome = decide(-c_high, -c_low, -(1 - TOLERANCE["min_agreement"]))
    outcomes = (accuracy_outcome, agreement_outcome)
    outcome = "FAIL" if "FAIL" in outcomes else "PASS" if outcomes == ("PASS", "PASS") else "UNDECIDED"
    needs = []
    if accuracy_outcome == "UNDECIDED":
        needs.append(difference_n_to_decide(better, worse, n, TOLERANCE["max_accuracy_drop"], 0.05))
    if agreement_outcome == "UNDECIDED":
        needs.append(rate_n_to_decide(changed, n, 1 - TOLERANCE["min_agreement"], 0.05))
    needed = max((k for k in needs if k is not None), default=None) if outcome == "UNDECIDED" else None
    if needed is not None:
        extra = {"n_needed": needed, **extra}
    return {
        "split": "validation",
        "n": n,
        "n_labeled": n,
        "outcome": outcome,
        "ok": outcome == "PASS",
        "accuracy": accuracy,
        "source_accuracy": source,
        "accuracy_drop": source - accuracy,
        "accuracy_change": {"value": (better - worse) / n, "low": low, "high": high, "level": 0.9},
        "better": better,
        "worse": worse,
        "agreement": agreement,
        "changed": changed,
        "changed_share": {"value": changed / n, "low": c_low, "high": c_high, "level": 0.9},
        "accuracy_outcome": accuracy_outcome,
        "agreement_outcome": agreement_outcome,
        "alpha": 0.05,
        **extra,
    }


def make_optimized_run_result() -> RunResult:
    """The same ticket classifier after the optimize stage: 6 variants, one rejected, compared with the source.

    source (torch) -> onnx-fp32 (export with parity) -> onnx-fused (transformer fusions) -> int8-dynamic (accepted
    after the search kept 2 nodes in float); onnx-fp32 -> int8-static (rejected: outside tolerance, no search) and
    fp16 (a note: slower on CPU). Test accuracies: 712, 712, 712, 709, 700 and 713 of 800.
    """
    base = make_run_result()
    cm_source = np.array([[231, 9, 6, 4], [11, 262, 8, 9], [5, 7, 148, 4], [8, 12, 5, 71]])
    cms = {
        "source": cm_source,
        "onnx-fp32": cm_source,
        "onnx-fused": cm_source,
        "int8-dynamic": np.array([[229, 10, 7, 4], [11, 261, 8, 10], [5, 7, 148, 4], [8, 12, 5, 71]]),
        "int8-static": np.array([[228, 11, 6, 5], [12, 259, 9, 10], [6, 8, 145, 5], [9, 13, 6, 68]]),
        "fp16": np.array([[231, 9, 6, 4], [11, 262, 8, 9], [5, 7, 148, 4], [8, 12, 4, 72]]),
    }
    # (agreement, accuracy delta interval, ECE delta, max |logit diff|, mean |logit diff|)
    faith = {
        "onnx-fp32": (1.0, (0.0, 0.0, 0.0), 0.00002, 2.4e-06, 3.1e-07),
        "onnx-fused": (0.99875, (0.0, -0.0025, 0.0025), 0.0004, 0.0183, 0.0011),
        "int8-dynamic": (0.98625, (-0.00375, -0.00875, 0.00125), 0.0163, 1.84, 0.093),
        "int8-static": (0.9625, (-0.015, -0.02375, -0.0075), 0.0241, 3.62, 0.211),
        "fp16": (0.9975, (0.00125, -0.00125, 0.00375), -0.0008, 0.0412, 0.0027),
    }
    memory = {
        "source": 412.5,
        "onnx-fp32": 380.0,
        "onnx-fused": 361.2,
        "int8-dynamic": 198.0,
        "int8-static": 190.4,
        "fp16": 262.3,
    }
    excluded = [
        ("/classifier/MatMul", "MatMul", 0.0412),
        ("/bert/encoder/layer.5/output/dense/MatMul", "MatMul", 0.0187),
    ]
    why = "kept in float: among the most sensitive nodes needed to stay within tolerance"
    recipes = {
        "onnx-fp32": {
            "recipe": "onnx-fp32",
            "opset": 17,
            "parity": {"n": 64, "max_abs_diff": 2.4e-06, "agreement": 1.0, "allowed_abs_diff": 0.0104},
            "tolerance_check": _tolerance_check(535 / 600, 1.0),
        },
        "onnx-fused": {
            "recipe": "onnx-fused",
            "level": "extended",
            "transformer_fusions": {
                "EmbedLayerNormalization": 1,
                "Attention": 6,
                "SkipLayerNormalization": 12,
                "BiasGelu": 6,
            },
            "nodes_before": 1108,
            "nodes_after": 316,
            "op_types_after": {"MatMul": 73, "Add": 49, "Attention": 6, "SkipLayerNormalization": 12, "BiasGelu": 6},
            "tolerance_check": _tolerance_check(535 / 600, 599 / 600),
        },
        "int8-dynamic": {
            "recipe": "int8-dynamic",
            "per_channel": True,
            "reduce_range": False,
            "search": [
                {"excluded": 0, **_tolerance_check(520 / 600, 560 / 600)},
                {"excluded": 1, **_tolerance_check(530 / 600, 581 / 600)},
                {"excluded": 2, **_tolerance_check(534 / 600, 595 / 600)},
            ],
            "excluded_nodes": [{"node": n, "op_type": o, "sensitivity": s, "why": why} for n, o, s in excluded],
            "most_sensitive": [
                *({"node": n, "op_type": o, "sensitivity": s} for n, o, s in excluded),
                {
                    "node": "/bert/encoder/layer.0/attention/self/query/MatMul",
                    "op_type": "MatMul",
                    "sensitivity": 0.0121,
                },
            ],
            "quantized_nodes": 70,
            "tolerance_check": _tolerance_check(534 / 600, 595 / 600),
        },
        "int8-static": {
            "recipe": "int8-static",
            "method": "minmax",
            "per_channel": True,
            "percentile": 99.999,
            "search": False,
            "tolerance_check": _tolerance_check(520 / 600, 560 / 600),
        },
        "fp16": {
            "recipe": "fp16",
            "note": "FP16 halves the file; on CPUs without native FP16 arithmetic onnxruntime inserts casts and it "
            "is rarely faster",
            "keep_io_types": True,
            "op_block_list": ["Softmax", "LayerNormalization"],
            "tolerance_check": _tolerance_check(
                536 / 600,
                598 / 600,
                split="validation+train",
                pooled="validation alone could not decide (on validation (n=160): accuracy +0.00 points [-1.51, "
                "+1.51], agreement 100.0% (0.0% changed, at most 1.7%)); pooled every labeled split except the test "
                "and OOD splits",
            ),
        },
    }
    parents = {
        "onnx-fp32": "source",
        "onnx-fused": "onnx-fp32",
        "int8-dynamic": "onnx-fused",
        "int8-static": "onnx-fp32",
        "fp16": "onnx-fp32",
    }
    reasons = {
        "int8-static": "outside tolerance on validation (n=600): accuracy -2.50 points [-3.61, -1.38] against the "
        "1.00 it may drop; 6.7% of predictions changed [5.2%, 8.5%] against the 5.0% allowed"
    }

    source = base.variants[0]
    variants = [source]
    for i, name in enumerate(OPTIMIZED_VARIANTS[1:], start=1):
        path = f"/runs/tickets/.deployable/variants/{name}/model.onnx"
        variants.append(
            Variant(
                name=name,
                kind="onnx",
                files=(path,),
                sha256=f"{i:x}" * 8 + "9d2c0e4b7a1f3c5e8d0b2a4c6e8f0a1b3c5d7e9f1a2b3c4d5e6f",
                size_bytes=SIZE_BYTES[name],
                spec={"type": "onnx", "path": path, "tokenizer": "/models/minilm"},
                parent=parents[name],
                recipe=recipes[name],
                status="rejected" if name in reasons else "accepted",
                reason=reasons.get(name, ""),
            )
        )

    evaluations = []
    for i, name in enumerate(OPTIMIZED_VARIANTS):
        q = _quality(cms[name])
        faithful = None
        ece_delta = 0.0
        if name in faith:
            agreement, (d, lo, hi), ece_delta, max_diff, mean_diff = faith[name]
            faithful = Faithfulness(
                reference="source",
                split="test",
                n=q.n,
                agreement=agreement,
                accuracy_delta=Interval(value=d, low=lo, high=hi),
                ece_delta=ece_delta,
                max_abs_logit_diff=max_diff,
                mean_abs_logit_diff=mean_diff,
            )
        edge, cloud = SPEED[name]
        evaluations.append(
            Evaluation(
                variant=name,
                split="test",
                store_key=f"preds-{i:02d}{name.replace('-', '')[:6]}",
                quality=q,
                calibration=_calibration(q.n, 0.0612 + ece_delta, 0.0187 + ece_delta / 5, 1.62, seed=1 + 2 * i),
                slices=_slices(q.accuracy, 2 + 2 * i),
                efficiency=_efficiency(
                    SIZE_BYTES[name] / 2**20, edge, memory[name], per_target={"edge-cpu": edge, "cloud-cpu": cloud}
                ),
                predictions_file=f"predictions/{name}.parquet",
                faithfulness=faithful,
            )
        )
    config = {
        **base.config,
        "name": "support-tickets-optimized",
        "optimize": {
            "recipes": [
                {"recipe": "onnx-fused"},
                {"recipe": "int8-dynamic", "parent": "onnx-fused"},
                {"recipe": "int8-static", "search": False},
                {"recipe": "fp16"},
            ],
            "tolerance": TOLERANCE,
        },
    }
    return base.replace(
        name="support-tickets-optimized",
        config=config,
        variants=tuple(variants),
        evaluations=tuple(evaluations),
        timings_s={**base.timings_s, "optimize": 212.4, "evaluate": 138.2},
    )
