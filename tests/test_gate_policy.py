"""Policy checks: parsing ``metric op value``, the metric path scheme, and every status a check can end in."""

from __future__ import annotations

import json
import math

import pytest

from _fixtures_report import make_optimized_run_result, make_run_result
from deployable.config import PolicyCheck, PolicyConfig
from deployable.core.errors import ConfigError
from deployable.core.records import (
    SEVERITIES,
    AdversarialMetrics,
    AttackResult,
    AuditCheck,
    AuditResult,
    CheckResult,
    CorruptionResult,
    Finding,
    LeakageStat,
    OodMetrics,
    OodScore,
    RobustnessMetrics,
    RunResult,
    SanityCheck,
)
from deployable.gate.policy import evaluate_checks, metric_paths, parse_check, variant_metrics

CANDIDATE = "int8-dynamic"


@pytest.fixture(scope="module")
def run() -> RunResult:
    return make_optimized_run_result()


def _robustness() -> RobustnessMetrics:
    return RobustnessMetrics(
        modality="text",
        n=250,
        seed=0,
        clean_accuracy=0.884,
        clean_ece=0.061,
        mean_corruption_accuracy=0.802,
        relative_robustness=0.802 / 0.884,
        mean_flip_rate=0.093,
        results=(
            CorruptionResult(name="typos", severity=1, accuracy=0.86, flip_rate=0.04, ece=0.07),
            CorruptionResult(name="typos", severity=5, accuracy=0.71, flip_rate=0.19, ece=0.15),
            CorruptionResult(name="case", severity=3, accuracy=0.836, flip_rate=0.05, ece=0.08),
        ),
    )


def _adversarial() -> AdversarialMetrics:
    return AdversarialMetrics(
        threat_model="white-box, untargeted",
        n=100,
        clean_accuracy=0.88,
        results=(
            AttackResult(attack="fgsm", norm="inf", epsilon=0.03, accuracy=0.52, success_rate=0.36),
            AttackResult(attack="pgd", norm="inf", epsilon=0.03, accuracy=0.31, success_rate=0.57),
            AttackResult(attack="pgd", norm="2", epsilon=1.0, accuracy=0.44, success_rate=0.44),
            AttackResult(attack="pgd", norm="inf", epsilon=1e-5, accuracy=0.87, success_rate=0.01),
        ),
        sanity=(
            SanityCheck(name="PGD Linf not weaker than FGSM", passed=True, detail="ok"),
            SanityCheck(name="accuracy near zero at the largest budget", passed=False, detail="31% at 0.03"),
            SanityCheck(name="more budget, lower accuracy", passed=False, detail="not monotone"),
        ),
    )


def _ood() -> OodMetrics:
    def score(name: str, auroc: float, aupr: float, fpr: float) -> OodScore:
        return OodScore(
            name=name,
            auroc=auroc,
            aupr=aupr,
            fpr_at_95_tpr=fpr,
            roc=(),
            edges=(0.0, 1.0),
            counts_in=(1,),
            counts_out=(1,),
        )

    return OodMetrics(
        in_split="test",
        out_split="ood",
        synthetic=True,
        source="shuffled words",
        n_in=800,
        n_out=300,
        scores=(score("msp", 0.81, 0.7, 0.55), score("energy", 0.86, 0.75, 0.41), score("max_logit", 0.84, 0.73, 0.5)),
    )


@pytest.fixture(scope="module")
def robust_run(run: RunResult) -> RunResult:
    """The optimized run with robustness, adversarial and OOD records on the candidate only (the source lacks them)."""
    evaluations = tuple(
        e.replace(robustness=_robustness(), adversarial=_adversarial(), ood=_ood()) if e.variant == CANDIDATE else e
        for e in run.evaluations
    )
    return run.replace(evaluations=evaluations)


def _audit() -> AuditResult:
    return AuditResult(
        findings=(
            Finding(check="leakage", code="near-leak", severity="high", message="leak", evidence=("test:1",)),
            Finding(check="duplicates", code="exact-duplicate", severity="low", message="dups"),
            Finding(check="duplicates", code="exact-duplicate", severity="medium", message="dups"),
            Finding(check="label_issues", code="label-errors", severity="medium", message="l", details={"rate": 0.031}),
            Finding(check="label_issues", code="label-errors", severity="medium", message="l", details={"rate": 0.02}),
            Finding(check="scan", code="unsafe-global", severity="critical", message="os.system", file="m.pt"),
            Finding(check="scan", code="unknown-global", severity="high", message="x.Head", file="m.pt"),
            Finding(check="scan", code="unknown-global", severity="high", message="y.Head", file="m.pt"),
        ),
        checks=(
            AuditCheck(name="scan", status="ran", n_findings=3),
            AuditCheck(name="duplicates", status="ran", n_findings=3),
            AuditCheck(name="label_issues", status="ran", n_findings=2),
            AuditCheck(name="imbalance", status="ran", n_findings=0),
            AuditCheck(name="poisoning", status="skipped", reason="the model exposes no penultimate features"),
        ),
        leakage=(
            LeakageStat(split="test", against="train", n=800, n_exact=10, n_near=30, rate=0.05),
            LeakageStat(split="test", against="validation", n=800, n_exact=64, n_near=0, rate=0.08),
            # the largest rate, but not of the test split: it must not be audit.leakage_rate
            LeakageStat(split="validation", against="train", n=600, n_exact=120, n_near=0, rate=0.2),
        ),
        scanned_files=("m.pt",),
    )


def _policy(*checks: str | PolicyCheck) -> PolicyConfig:
    return PolicyConfig(checks=list(checks))


def _one(result: RunResult, check: str | PolicyCheck, variant: str = CANDIDATE, **kw: object) -> CheckResult:
    (out,) = evaluate_checks(result, _policy(check), variant, **kw)  # type: ignore[arg-type]
    return out


# ---------------------------------------------------------------------------------------------------------------------
# parse_check
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "metric", "op", "value"),
    [
        ("calibration.ece <= 0.05", "calibration.ece", "<=", 0.05),
        ("calibration.ece<=0.05", "calibration.ece", "<=", 0.05),
        ("   calibration.ece   <=   0.05   ", "calibration.ece", "<=", 0.05),
        ("calibration.ece < 5e-2", "calibration.ece", "<", 0.05),
        ("faithfulness.max_abs_logit_diff <= 1E-3", "faithfulness.max_abs_logit_diff", "<=", 0.001),
        ("faithfulness.accuracy_delta >= -0.003", "faithfulness.accuracy_delta", ">=", -0.003),
        ("faithfulness.accuracy_delta>=-3e-3", "faithfulness.accuracy_delta", ">=", -0.003),
        ("quality.accuracy > .9", "quality.accuracy", ">", 0.9),
        ("audit.findings.critical == 0", "audit.findings.critical", "==", 0.0),
        ("scan.findings != 3", "scan.findings", "!=", 3.0),
        ("size_mb <= +25", "size_mb", "<=", 25.0),
        # labels and slice values may hold spaces and '<'
        ("quality.per_class.account & login.f1 >= 0.8", "quality.per_class.account & login.f1", ">=", 0.8),
        ("slices.length.<10 words.accuracy >= 0.75", "slices.length.<10 words.accuracy", ">=", 0.75),
    ],
)
def test_parse_check_strings(text: str, metric: str, op: str, value: float) -> None:
    check = parse_check(text)
    assert (check.metric, check.op) == (metric, op)
    assert check.value == pytest.approx(value, rel=1e-15, abs=0)
    # a string check is critical and absolute
    assert check.critical is True
    assert check.relative is False


def test_parse_check_returns_a_parsed_check_as_is() -> None:
    check = PolicyCheck(metric="quality.accuracy", op=">=", value=-0.01, relative=True, critical=False)
    assert parse_check(check) is check
    assert parse_check("calibration.ece <= 0.05") == PolicyCheck(metric="calibration.ece", op="<=", value=0.05)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "calibration.ece",
        "calibration.ece 0.05",
        "calibration.ece <=",
        "<= 0.05",
        "calibration.ece <= abc",
        "calibration.ece <= 5%",
        "calibration.ece <= nan",
        "calibration.ece = 0.05",
        "calibration.ece =< 0.05",
        "calibration.ece => 0.05",
        "calibration.ece >== 0.05",
        "calibration.ece <= 0.05 0.1",
        "calibration.ece <= 0.05 and quality.accuracy >= 0.9",
    ],
)
def test_parse_check_rejects_bad_strings_with_one_line_naming_the_index(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_check(text, 3)
    message = str(info.value)
    assert message.startswith("policy.checks[3]: ")
    assert "metric op value" in message
    assert repr(text) in message
    assert "\n" not in message


def test_parse_check_rejects_what_is_not_a_string() -> None:
    with pytest.raises(ConfigError, match=r"policy\.checks\[0\].*metric op value"):
        parse_check(0.05, 0)  # type: ignore[arg-type]


def test_evaluate_checks_names_the_index_of_a_bad_string(run: RunResult) -> None:
    policy = _policy("calibration.ece <= 0.05", "quality.accuracy >= 0.9", "calibration.ece lte 0.05")
    with pytest.raises(ConfigError, match=r"^policy\.checks\[2\]: .*'calibration\.ece lte 0\.05'"):
        evaluate_checks(run, policy, CANDIDATE)


# ---------------------------------------------------------------------------------------------------------------------
# variant_metrics: every listed path, with the value of the record field it comes from
# ---------------------------------------------------------------------------------------------------------------------

REQUIRED = [
    "quality.accuracy",
    "quality.balanced_accuracy",
    "quality.macro_f1",
    "quality.n",
    *(f"quality.per_class.account & login.{k}" for k in ("f1", "precision", "recall", "support")),
    *(
        f"calibration.{k}"
        for k in (
            "ece",
            "adaptive_ece",
            "mce",
            "brier",
            "nll",
            "temperature",
            "ece_after_temperature",
            "nll_after_temperature",
        )
    ),
    *(f"slices.language.fr.{k}" for k in ("accuracy", "accuracy_low", "accuracy_high", "macro_f1", "ece", "n")),
    *(f"efficiency.{t}.latency_ms.{p}" for t in ("edge-cpu", "cloud-cpu") for p in ("p50", "p95", "p99", "mean")),
    *(f"efficiency.cloud-cpu.batch{b}.latency_ms.{p}" for b in (1, 32) for p in ("p50", "p95", "p99", "mean")),
    "efficiency.cloud-cpu.batch1.throughput_per_s",
    "efficiency.cloud-cpu.batch32.throughput_per_s",
    "efficiency.edge-cpu.batch1.throughput_per_s",
    *(
        f"efficiency.{t}.{k}"
        for t in ("edge-cpu", "cloud-cpu")
        for k in ("throughput_per_s", "cost_per_million", "peak_memory_mb", "file_size_mb", "load_time_s")
    ),
    "faithfulness.agreement",
    "faithfulness.accuracy_delta",
    "faithfulness.accuracy_delta_low",
    "faithfulness.accuracy_delta_high",
    "faithfulness.ece_delta",
    "faithfulness.max_abs_logit_diff",
    "size_bytes",
    "size_mb",
    "audit.findings",
    *(f"audit.findings.{s}" for s in SEVERITIES),
    "audit.leakage.findings",
    "audit.label_issues.findings",
    "audit.leakage_rate",
    "audit.leakage_rate.test.train",
    "audit.label_error_rate",
    "scan.findings",
    *(f"scan.findings.{s}" for s in SEVERITIES),
]
REQUIRED_ROBUST = [
    "robustness.mean_corruption_accuracy",
    "robustness.relative_robustness",
    "robustness.mean_flip_rate",
    "robustness.clean_accuracy",
    "robustness.typos.5.accuracy",
    "robustness.case.3.accuracy",
    "adversarial.clean_accuracy",
    "adversarial.pgd.inf.0.03.accuracy",
    "adversarial.pgd.2.1.accuracy",
    "adversarial.sanity_failed",
    *(f"ood.{s}.{k}" for s in ("msp", "energy", "max_logit") for k in ("auroc", "aupr", "fpr_at_95_tpr")),
    "ood.best_auroc",
]


@pytest.mark.parametrize("path", REQUIRED)
def test_listed_paths_exist(run: RunResult, path: str) -> None:
    assert path in variant_metrics(run, CANDIDATE)


@pytest.mark.parametrize("path", REQUIRED_ROBUST)
def test_listed_robustness_adversarial_ood_paths_exist(robust_run: RunResult, path: str) -> None:
    assert path in variant_metrics(robust_run, CANDIDATE)


def test_values_equal_quality_calibration_and_slice_records(run: RunResult) -> None:
    m = variant_metrics(run, CANDIDATE)
    ev = run.evaluation(CANDIDATE)
    q, cal = ev.quality, ev.calibration
    assert m["quality.accuracy"] == q.accuracy
    assert m["quality.balanced_accuracy"] == q.balanced_accuracy
    assert m["quality.macro_f1"] == q.macro_f1
    assert m["quality.n"] == q.n == 800
    for c in q.per_class:
        for k in ("precision", "recall", "f1", "support"):
            assert m[f"quality.per_class.{c.label}.{k}"] == getattr(c, k)
    for k in ("ece", "adaptive_ece", "mce", "brier", "nll", "temperature"):
        assert m[f"calibration.{k}"] == getattr(cal, k)
    assert m["calibration.ece_after_temperature"] == cal.ece_after_temperature
    assert m["calibration.nll_after_temperature"] == cal.nll_after_temperature
    fr = next(s for s in ev.slices if (s.column, s.value) == ("language", "fr"))
    assert m["slices.language.fr.accuracy"] == fr.accuracy.value
    assert m["slices.language.fr.accuracy_low"] == fr.accuracy.low
    assert m["slices.language.fr.accuracy_high"] == fr.accuracy.high
    assert m["slices.language.fr.macro_f1"] == fr.macro_f1
    assert m["slices.language.fr.ece"] == fr.ece
    assert m["slices.language.fr.n"] == fr.n == 22
    # one key set per slice, no more
    assert {k.rsplit(".", 1)[0] for k in m if k.startswith("slices.")} == {
        f"slices.{s.column}.{s.value}" for s in ev.slices
    }


def test_efficiency_latency_at_smallest_batch_throughput_and_cost_at_largest(run: RunResult) -> None:
    m = variant_metrics(run, CANDIDATE)
    cloud = next(e for e in run.evaluation(CANDIDATE).efficiency if e.target == "cloud-cpu")
    by_batch = {s.batch_size: s for s in cloud.latency}
    assert set(by_batch) == {1, 32}
    for p in ("p50", "p95", "p99", "mean"):
        assert m[f"efficiency.cloud-cpu.latency_ms.{p}"] == getattr(by_batch[1], f"{p}_ms")
        for b, s in by_batch.items():
            assert m[f"efficiency.cloud-cpu.batch{b}.latency_ms.{p}"] == getattr(s, f"{p}_ms")
    assert m["efficiency.cloud-cpu.throughput_per_s"] == by_batch[32].throughput_per_s
    assert m["efficiency.cloud-cpu.throughput_per_s"] != by_batch[1].throughput_per_s
    assert m["efficiency.cloud-cpu.cost_per_million"] == by_batch[32].cost_per_million
    assert m["efficiency.cloud-cpu.batch1.throughput_per_s"] == by_batch[1].throughput_per_s
    assert m["efficiency.cloud-cpu.peak_memory_mb"] == cloud.peak_memory_mb
    assert m["efficiency.cloud-cpu.file_size_mb"] == cloud.file_size_mb
    assert m["efficiency.cloud-cpu.load_time_s"] == cloud.load_time_s
    variant = next(v for v in run.variants if v.name == CANDIDATE)
    assert m["size_bytes"] == variant.size_bytes
    assert m["size_mb"] == pytest.approx(variant.size_bytes / 2**20, rel=1e-12)


def test_latency_uses_the_smallest_batch_whatever_the_stored_order(run: RunResult) -> None:
    ev = run.evaluation(CANDIDATE)
    shuffled = tuple(e.replace(latency=tuple(reversed(e.latency))) for e in ev.efficiency)
    other = run.replace(evaluations=(ev.replace(efficiency=shuffled),))
    assert variant_metrics(other, CANDIDATE) == variant_metrics(run, CANDIDATE)


def test_faithfulness_values_and_source_has_none(run: RunResult) -> None:
    m = variant_metrics(run, CANDIDATE)
    f = run.evaluation(CANDIDATE).faithfulness
    assert f is not None
    assert m["faithfulness.agreement"] == f.agreement
    assert m["faithfulness.accuracy_delta"] == f.accuracy_delta.value
    assert m["faithfulness.accuracy_delta_low"] == f.accuracy_delta.low
    assert m["faithfulness.accuracy_delta_high"] == f.accuracy_delta.high
    assert m["faithfulness.ece_delta"] == f.ece_delta
    assert m["faithfulness.max_abs_logit_diff"] == f.max_abs_logit_diff
    assert not any(k.startswith("faithfulness.") for k in variant_metrics(run, "source"))


def test_missing_parts_produce_no_keys(run: RunResult) -> None:
    m = variant_metrics(run, CANDIDATE)
    assert not any(k.split(".")[0] in ("robustness", "adversarial", "ood") for k in m)


def test_robustness_adversarial_ood_values(robust_run: RunResult) -> None:
    m = variant_metrics(robust_run, CANDIDATE)
    r, a, o = _robustness(), _adversarial(), _ood()
    for k in ("mean_corruption_accuracy", "relative_robustness", "mean_flip_rate", "clean_accuracy"):
        assert m[f"robustness.{k}"] == getattr(r, k)
    for c in r.results:
        assert m[f"robustness.{c.name}.{c.severity}.accuracy"] == c.accuracy
    assert m["adversarial.clean_accuracy"] == a.clean_accuracy
    assert m["adversarial.pgd.inf.0.03.accuracy"] == 0.31
    assert m["adversarial.fgsm.inf.0.03.accuracy"] == 0.52
    assert m["adversarial.pgd.2.1.accuracy"] == 0.44
    assert m["adversarial.pgd.inf.1e-05.accuracy"] == 0.87
    assert m["adversarial.sanity_failed"] == 2
    for s in o.scores:
        assert m[f"ood.{s.name}.auroc"] == s.auroc
        assert m[f"ood.{s.name}.aupr"] == s.aupr
        assert m[f"ood.{s.name}.fpr_at_95_tpr"] == s.fpr_at_95_tpr
    assert m["ood.best_auroc"] == 0.86
    assert not any(
        k.split(".")[0] in ("robustness", "adversarial", "ood") for k in variant_metrics(robust_run, "source")
    )


def test_a_budget_attacked_twice_reports_the_stronger_attack(robust_run: RunResult) -> None:
    a = _adversarial()
    twice = a.replace(
        results=(
            *a.results,
            AttackResult(attack="pgd", norm="inf", epsilon=0.03, accuracy=0.2, success_rate=0.68, transferred=True),
        )
    )
    ev = robust_run.evaluation(CANDIDATE).replace(adversarial=twice)
    m = variant_metrics(robust_run.replace(evaluations=(ev,)), CANDIDATE)
    assert m["adversarial.pgd.inf.0.03.accuracy"] == 0.2
    assert m["adversarial.pgd.inf.0.03.success_rate"] == 0.68


def test_metric_paths_is_the_sorted_union_over_variants(run: RunResult) -> None:
    paths = metric_paths(run)
    assert paths == sorted(paths)
    union = set().union(*(variant_metrics(run, e.variant) for e in run.evaluations))
    assert set(paths) == union
    # faithfulness only exists for the derived variants, and the union still lists it
    assert "faithfulness.agreement" in paths
    assert "faithfulness.agreement" not in variant_metrics(run, "source")


def test_unknown_variant_is_a_config_error(run: RunResult) -> None:
    with pytest.raises(ConfigError, match="did you mean 'int8-dynamic'"):
        evaluate_checks(run, _policy("quality.accuracy >= 0.5"), "int8-dynamc")


# ---------------------------------------------------------------------------------------------------------------------
# audit and scan metrics
# ---------------------------------------------------------------------------------------------------------------------


def test_audit_and_scan_metrics_from_an_audit_result() -> None:
    result = make_run_result().replace(audit=_audit())
    m = variant_metrics(result, "source")
    assert m["audit.findings"] == 5  # the data findings; scan findings are counted under scan.*
    assert m["audit.findings.high"] == 1
    assert m["audit.findings.medium"] == 3
    assert m["audit.findings.low"] == 1
    assert m["audit.findings.critical"] == 0
    assert m["audit.duplicates.findings"] == 2
    assert m["audit.leakage.findings"] == 1
    assert m["audit.label_issues.findings"] == 2
    assert m["audit.imbalance.findings"] == 0  # ran and found nothing
    assert "audit.poisoning.findings" not in m  # skipped: a 0 would be a claim it never checked
    assert m["audit.leakage_rate"] == 0.08  # the worst pair of the test split, not validation's 0.2
    assert m["audit.leakage_rate.test.train"] == 0.05
    assert m["audit.leakage_rate.test.validation"] == 0.08
    assert m["audit.leakage_rate.validation.train"] == 0.2
    assert m["audit.label_error_rate"] == 0.031
    assert m["scan.findings"] == 3
    assert m["scan.findings.critical"] == 1
    assert m["scan.findings.high"] == 2
    assert m["scan.findings.info"] == 0
    # run-level metrics are shared by every variant
    int8 = variant_metrics(result, "int8-dynamic")
    assert {k: v for k, v in int8.items() if k.startswith(("audit.", "scan."))} == {
        k: v for k, v in m.items() if k.startswith(("audit.", "scan."))
    }


def test_no_overlap_and_no_label_finding_are_zero() -> None:
    audit = AuditResult(
        findings=(),
        checks=(AuditCheck(name="duplicates", status="ran"), AuditCheck(name="label_issues", status="ran")),
        leakage=(LeakageStat(split="test", against="train", n=800, n_exact=0, n_near=0, rate=0.0),),
    )
    m = variant_metrics(make_run_result().replace(audit=audit), "source")
    assert m["audit.leakage_rate"] == 0.0
    assert m["audit.label_error_rate"] == 0.0
    assert m["audit.findings"] == 0
    assert "scan.findings" not in m  # nothing was scanned


def test_leakage_rate_follows_the_run_test_split() -> None:
    run = make_run_result()
    run = run.replace(evaluations=tuple(e.replace(split="holdout") for e in run.evaluations), audit=_audit())
    m = variant_metrics(run, "source")
    assert m["audit.leakage_rate"] == 0.0  # no stat has 'holdout' as its later split


def test_skipped_audit_checks_skip_their_metrics() -> None:
    audit = AuditResult(
        findings=(),
        checks=(
            AuditCheck(name="duplicates", status="skipped", reason="disabled in the config"),
            AuditCheck(name="label_issues", status="skipped", reason="no labeled split"),
        ),
    )
    result = make_run_result().replace(audit=audit)
    assert "audit.leakage_rate" not in variant_metrics(result, "source")
    policy = _policy("audit.leakage_rate <= 0.01", "audit.label_error_rate <= 0.05", "audit.poisoning.findings == 0")
    leak, labels, poison = evaluate_checks(result, policy, "source")
    assert (leak.status, labels.status, poison.status) == ("SKIPPED", "SKIPPED", "SKIPPED")
    assert "duplicates audit check was skipped (disabled in the config)" in leak.message
    assert "no labeled split" in labels.message
    assert "poisoning" in poison.message


def test_audit_checks_pass_fail_and_skip_without_an_audit(run: RunResult) -> None:
    result = run.replace(audit=_audit())
    policy = _policy("audit.leakage_rate <= 0.01", "scan.findings.critical == 0", "audit.label_error_rate <= 0.05")
    leak, scan, labels = evaluate_checks(result, policy, CANDIDATE)
    assert (leak.status, leak.value) == ("FAIL", 0.08)
    assert (scan.status, scan.value) == ("FAIL", 1)
    assert (labels.status, labels.value) == ("PASS", 0.031)
    no_audit = run.replace(audit=None)
    for c in evaluate_checks(no_audit, policy, CANDIDATE):
        assert c.status == "SKIPPED"
        assert "no audit" in c.message
    (typo,) = evaluate_checks(no_audit, _policy("audit.leakge_rate <= 0.01"), CANDIDATE)
    assert typo.status == "ERROR"
    assert "did you mean 'audit.leakage_rate'" in typo.message


# ---------------------------------------------------------------------------------------------------------------------
# evaluate_checks: each status
# ---------------------------------------------------------------------------------------------------------------------


def test_pass_and_fail_with_values_and_messages(run: RunResult) -> None:
    ece = run.evaluation(CANDIDATE).calibration.ece
    ok, bad = evaluate_checks(run, _policy("calibration.ece <= 0.1", "calibration.ece <= 0.05"), CANDIDATE)
    assert ok.status == "PASS"
    assert ok.message == f"calibration.ece = {ece:.6g} <= 0.1"
    assert bad.status == "FAIL"
    assert bad.critical is True
    assert bad.message == f"calibration.ece = {ece:.6g} > 0.05 (limit <= 0.05)"
    assert (bad.name, bad.variant, bad.metric, bad.value, bad.threshold) == (
        "calibration.ece <= 0.05",
        CANDIDATE,
        "calibration.ece",
        ece,
        0.05,
    )
    assert bad.baseline_value is None
    # checks are data: they round-trip through JSON
    assert CheckResult.from_json(bad.to_json()) == bad


@pytest.mark.parametrize(
    ("op", "delta", "holds"),
    [
        ("<=", 0.0, True),
        ("<", 0.0, False),
        (">=", 0.0, True),
        (">", 0.0, False),
        ("<", 1e-9, True),
        (">", -1e-9, True),
        ("==", 0.0, True),
        ("!=", 0.0, False),
        ("==", 1e-9, False),
        ("!=", 1e-9, True),
    ],
)
def test_operators_at_the_boundary(run: RunResult, op: str, delta: float, holds: bool) -> None:
    accuracy = run.evaluation(CANDIDATE).quality.accuracy
    c = _one(run, PolicyCheck(metric="quality.accuracy", op=op, value=accuracy + delta))  # type: ignore[arg-type]
    assert c.status == ("PASS" if holds else "FAIL")


def test_equality_tolerates_float_rounding(run: RunResult) -> None:
    ev = run.evaluation(CANDIDATE)
    odd = ev.replace(calibration=ev.calibration.replace(brier=0.1 + 0.2))
    result = run.replace(evaluations=(odd,))
    assert 0.1 + 0.2 != 0.3
    assert _one(result, "calibration.brier == 0.3").status == "PASS"
    assert _one(result, "calibration.brier != 0.3").status == "FAIL"


def test_a_failed_non_critical_check_warns(run: RunResult) -> None:
    check = PolicyCheck(metric="quality.accuracy", op=">=", value=0.95, critical=False, name="accuracy target")
    c = _one(run, check)
    assert c.status == "WARN"
    assert c.critical is False
    assert c.name == "accuracy target"
    assert c.message.endswith("< 0.95 (limit >= 0.95)")
    # passing stays PASS whatever the criticality
    assert _one(run, check.model_copy(update={"value": 0.5})).status == "PASS"


def test_a_typo_is_an_error_naming_the_closest_path(run: RunResult) -> None:
    c = _one(run, "calibration.eec <= 0.05")
    assert c.status == "ERROR"
    assert c.message == "no metric 'calibration.eec' (did you mean 'calibration.ece'?)"
    assert c.value is None
    c = _one(run, "efficiency.edge-cpu.latncy_ms.p95 <= 10")
    assert c.status == "ERROR"
    assert "did you mean 'efficiency.edge-cpu.latency_ms.p95'?" in c.message
    c = _one(run, "efficiency.edge-cpu.batch64.latency_ms.p95 <= 10")  # a batch size never timed
    assert c.status == "ERROR"
    # a typo is an error even when critical is False: a gate must not pass on a check that never ran
    c = _one(run, PolicyCheck(metric="quality.acuracy", op=">=", value=0.5, critical=False))
    assert c.status == "ERROR"
    assert "'quality.accuracy'" in c.message


def test_an_unrelated_path_lists_the_sections(run: RunResult) -> None:
    c = _one(run, "zzz <= 1")
    assert c.status == "ERROR"
    assert c.message.startswith("no metric 'zzz' (metric paths start with one of: ")
    assert "calibration" in c.message
    assert "\n" not in c.message


def test_nan_is_an_error(run: RunResult) -> None:
    ev = run.evaluation(CANDIDATE)
    nan = ev.replace(calibration=ev.calibration.replace(ece=math.nan))
    c = _one(run.replace(evaluations=(nan,)), "calibration.ece <= 0.05")
    assert c.status == "ERROR"
    assert "metric is NaN" in c.message
    assert math.isnan(c.value)  # type: ignore[arg-type]
    assert json.loads(c.to_json())["value"] is None


def test_faithfulness_on_the_source_is_skipped(run: RunResult) -> None:
    source = _one(run, "faithfulness.agreement >= 0.99", variant="source")
    assert source.status == "SKIPPED"
    assert "reference" in source.message
    candidate = _one(run, "faithfulness.agreement >= 0.99")
    assert candidate.status == "FAIL"  # int8-dynamic agrees on 98.6%
    assert candidate.value == run.evaluation(CANDIDATE).faithfulness.agreement  # type: ignore[union-attr]


def test_robustness_not_run_is_skipped_but_a_bad_corruption_is_an_error(run: RunResult, robust_run: RunResult) -> None:
    check = "robustness.mean_corruption_accuracy >= 0.75"
    assert _one(robust_run, check).status == "PASS"
    skipped = _one(robust_run, check, variant="source")
    assert skipped.status == "SKIPPED"
    assert "robustness" in skipped.message
    # no variant of the run has robustness: the path is still one the run could have had
    none = _one(run, check)
    assert none.status == "SKIPPED"
    assert _one(run, "robustness.typos.5.accuracy >= 0.5").status == "SKIPPED"
    assert _one(run, "adversarial.pgd.inf.0.03.accuracy >= 0.2").status == "SKIPPED"
    assert _one(run, "ood.best_auroc >= 0.8").status == "SKIPPED"
    # robustness ran, but never at severity 4
    bad = _one(robust_run, "robustness.typos.4.accuracy >= 0.5")
    assert bad.status == "ERROR"
    assert "did you mean 'robustness.typos." in bad.message
    typo = _one(run, "robustness.mean_corruption_acuracy >= 0.5")
    assert typo.status == "ERROR"
    assert "did you mean 'robustness.mean_corruption_accuracy'?" in typo.message


def test_adversarial_and_ood_checks(robust_run: RunResult) -> None:
    policy = _policy(
        "adversarial.pgd.inf.0.03.accuracy >= 0.3", "adversarial.sanity_failed == 0", "ood.best_auroc > 0.9"
    )
    pgd, sanity, ood = evaluate_checks(robust_run, policy, CANDIDATE)
    assert (pgd.status, pgd.value) == ("PASS", 0.31)
    assert (sanity.status, sanity.value) == ("FAIL", 2)
    assert (ood.status, ood.value) == ("FAIL", 0.86)


def test_missing_efficiency_and_cost_are_skipped(run: RunResult) -> None:
    ev = run.evaluation(CANDIDATE)
    no_edge = ev.replace(efficiency=tuple(e for e in ev.efficiency if e.target != "cloud-cpu"))
    c = _one(run.replace(evaluations=(no_edge,)), "efficiency.cloud-cpu.latency_ms.p95 <= 10")
    assert c.status == "SKIPPED"
    assert "not measured on target 'cloud-cpu'" in c.message
    # no price for the target: latency is there, cost is not
    targets = tuple(t.replace(price_per_hour=None) for t in run.targets)
    unpriced = ev.replace(
        efficiency=tuple(
            e.replace(latency=tuple(s.replace(cost_per_million=None) for s in e.latency)) for e in ev.efficiency
        )
    )
    free = run.replace(targets=targets, evaluations=(unpriced,))
    assert "efficiency.cloud-cpu.cost_per_million" not in variant_metrics(free, CANDIDATE)
    c = _one(free, "efficiency.cloud-cpu.cost_per_million <= 0.01")
    assert c.status == "SKIPPED"
    assert "price_per_hour" in c.message
    assert _one(free, "efficiency.cloud-cpu.latency_ms.p95 <= 10").status == "PASS"
    assert _one(free, "efficiency.gpu.latency_ms.p95 <= 10").status == "ERROR"


# ---------------------------------------------------------------------------------------------------------------------
# relative checks
# ---------------------------------------------------------------------------------------------------------------------


def test_relative_checks_compare_the_difference_with_the_baseline(run: RunResult) -> None:
    baseline = variant_metrics(run, "source")
    value = run.evaluation(CANDIDATE).quality.accuracy
    base = run.evaluation("source").quality.accuracy
    assert value - base == pytest.approx(-0.00375)
    loose = PolicyCheck(metric="quality.accuracy", op=">=", value=-0.005, relative=True)
    tight = PolicyCheck(metric="quality.accuracy", op=">=", value=-0.001, relative=True)
    ok, bad = evaluate_checks(run, _policy(loose, tight), CANDIDATE, baseline=baseline)
    assert ok.status == "PASS"
    assert bad.status == "FAIL"
    assert (bad.value, bad.baseline_value, bad.threshold) == (value, base, -0.001)
    assert bad.details["difference"] == pytest.approx(value - base, abs=1e-15)
    assert bad.details["relative"] is True
    assert bad.message.startswith("quality.accuracy - baseline = -0.00375 < -0.001 (limit >= -0.001)")
    assert bad.name == "quality.accuracy >= -0.001 vs baseline"
    # an absolute check of the same threshold would judge the value itself
    assert _one(run, tight.model_copy(update={"relative": False}), baseline=baseline).status == "PASS"


def test_relative_check_without_a_baseline_is_skipped(run: RunResult) -> None:
    check = PolicyCheck(metric="quality.accuracy", op=">=", value=-0.005, relative=True)
    c = _one(run, check)
    assert c.status == "SKIPPED"
    assert "baseline" in c.message
    assert c.value == run.evaluation(CANDIDATE).quality.accuracy


def test_relative_check_on_a_metric_the_baseline_lacks_is_skipped(run: RunResult) -> None:
    check = PolicyCheck(metric="faithfulness.agreement", op=">=", value=0.0, relative=True)
    c = _one(run, check, baseline=variant_metrics(run, "source"))
    assert c.status == "SKIPPED"
    assert "the baseline has no such metric" in c.message
    # a typo is reported as a typo, not hidden behind the missing baseline
    typo = _one(run, check.model_copy(update={"metric": "faithfulness.agrement"}))
    assert typo.status == "ERROR"


def test_relative_check_on_a_nan_baseline_is_an_error(run: RunResult) -> None:
    baseline = {**variant_metrics(run, "source"), "calibration.ece": math.nan}
    check = PolicyCheck(metric="calibration.ece", op="<=", value=0.01, relative=True)
    c = _one(run, check, baseline=baseline)
    assert c.status == "ERROR"
    assert "metric is NaN" in c.message


def test_every_status_appears_in_one_policy(run: RunResult) -> None:
    policy = _policy(
        "quality.accuracy >= 0.8",
        "quality.accuracy >= 0.99",
        PolicyCheck(metric="quality.accuracy", op=">=", value=0.99, critical=False),
        "quality.acuracy >= 0.8",
        "robustness.mean_corruption_accuracy >= 0.7",
    )
    statuses = [c.status for c in evaluate_checks(run, policy, CANDIDATE)]
    assert statuses == ["PASS", "FAIL", "WARN", "ERROR", "SKIPPED"]
    assert evaluate_checks(run, PolicyConfig(), CANDIDATE) == []
