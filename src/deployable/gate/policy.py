"""Policy checks over any metric of a run: ``calibration.ece <= 0.05`` becomes a :class:`CheckResult`.

Every number a run measured is reachable by a dotted path (see :func:`variant_metrics` for the scheme). A check
compares one path of one variant with a threshold, or with the baseline's value of the same path, and reports a
status in the manner of Evidently's tests:

* ``PASS`` -- the comparison holds;
* ``FAIL`` -- it does not and the check is critical; ``WARN`` -- it does not and the check is not critical;
* ``ERROR`` -- the path names no metric of the run (the message names the closest one), or the value is NaN;
* ``SKIPPED`` -- the path is a metric this variant does not have (faithfulness of the source model, robustness that
  was not run, a relative check without a baseline), with the reason.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from deployable.config import PolicyCheck, PolicyConfig
from deployable.core.errors import ConfigError, closest, did_you_mean
from deployable.core.records import SEVERITIES, AuditResult, CheckResult, Efficiency, Evaluation, RunResult, Variant

OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    # exact float equality is never what a policy means: 0.1 + 0.2 must equal 0.3
    "==": lambda a, b: math.isclose(a, b, rel_tol=0.0, abs_tol=1e-12),
    "!=": lambda a, b: not math.isclose(a, b, rel_tol=0.0, abs_tol=1e-12),
}
# the relation that holds when a check fails, for the message ("0.071 > 0.05")
_NEGATED = {"<=": ">", "<": ">=", ">=": "<", ">": "<=", "==": "!=", "!=": "=="}

# Class labels and slice values may hold spaces or '<' ("slices.length.<10.accuracy >= 0.8"); the value can hold
# neither, so the operator is the last one on the line.
_CHECK_RE = re.compile(r"^\s*(?P<metric>.*?\S)\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<value>[^\s<>=!]+)\s*$")
_OP_INSIDE = re.compile(r"<=|>=|==|!=|\s[<>]\s")
_FORM = "expected 'metric op value' with op one of <=, <, >=, >, ==, != (e.g. 'calibration.ece <= 0.05')"

_MIB = 2**20
_LATENCY = ("p50", "p95", "p99", "mean")
_DATA_CHECKS = ("duplicates", "leakage", "label_issues", "imbalance", "outliers", "poisoning")

# Leaves of each section whose names do not depend on the run: they make paths of sections a run lacks (robustness
# disabled) recognisable, so a check on them is SKIPPED rather than an ERROR, and they feed the "did you mean" hint.
_FIXED_PATHS = (
    *(f"quality.{k}" for k in ("accuracy", "balanced_accuracy", "macro_f1", "n")),
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
    *(
        f"faithfulness.{k}"
        for k in (
            "agreement",
            "accuracy_delta",
            "accuracy_delta_low",
            "accuracy_delta_high",
            "ece_delta",
            "max_abs_logit_diff",
            "mean_abs_logit_diff",
            "n",
        )
    ),
    *(
        f"robustness.{k}"
        for k in (
            "mean_corruption_accuracy",
            "relative_robustness",
            "mean_flip_rate",
            "clean_accuracy",
            "clean_ece",
            "n",
        )
    ),
    *(f"adversarial.{k}" for k in ("clean_accuracy", "sanity_failed", "n")),
    "ood.best_auroc",
    "size_bytes",
    "size_mb",
    "audit.findings",
    *(f"audit.findings.{s}" for s in SEVERITIES),
    *(f"audit.{c}.findings" for c in _DATA_CHECKS),
    "audit.leakage_rate",
    "audit.label_error_rate",
    "scan.findings",
    *(f"scan.findings.{s}" for s in SEVERITIES),
)
# Paths whose middle parts name things of the run (corruptions, attacks, OOD scores, slices, audited split pairs).
_PATTERNS = {
    "robustness": re.compile(r"^robustness\.[^.]+\.\d+\.(accuracy|flip_rate|ece)$"),
    "adversarial": re.compile(r"^adversarial\.[^.]+\.[^.]+\.[^a-z]+\.(accuracy|success_rate)$"),
    "ood": re.compile(r"^ood\.[^.]+\.(auroc|aupr|fpr_at_95_tpr)$"),
    "slices": re.compile(r"^slices\..+\.(accuracy|accuracy_low|accuracy_high|macro_f1|ece|n)$"),
    "audit": re.compile(r"^audit\.leakage_rate\..+$"),
}
_EFFICIENCY_LEAF = re.compile(
    r"^(latency_ms\.(p50|p95|p99|mean)|batch\d+\.latency_ms\.(p50|p95|p99|mean)|batch\d+\.throughput_per_s"
    r"|batch\d+\.cost_per_million|throughput_per_s|cost_per_million|peak_memory_mb|file_size_mb|load_time_s"
    r"|within_memory_budget)$"
)


# ---------------------------------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------------------------------


def parse_check(check: str | PolicyCheck, index: int | None = None) -> PolicyCheck:
    """Turn a check as written in ``policy.checks`` into a :class:`PolicyCheck`.

    Args:
        check: ``"metric op value"`` (e.g. ``"calibration.ece <= 0.05"``, ``"faithfulness.accuracy_delta >= -5e-3"``),
            or an already parsed check, returned as is. A string check is critical and absolute.
        index: position of the check in ``policy.checks``, named in the error.

    Returns:
        The parsed check.

    Raises:
        ConfigError: the string is not ``metric op value`` with a finite number as value.
    """
    if isinstance(check, PolicyCheck):
        return check
    where = f"policy.checks[{index}]" if index is not None else "policy.checks"
    if not isinstance(check, str):
        raise ConfigError(f"{where}: {_FORM}, found {type(check).__name__} {check!r}")
    m = _CHECK_RE.match(check)
    if m is None:
        raise ConfigError(f"{where}: {_FORM}, found {check!r}")
    metric, op, raw = m.group("metric"), m.group("op"), m.group("value")
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    # an operator character ending the metric is a malformed operator ("ece =< 0.05", "ece >== 1"); an operator
    # inside it is two checks on one line ("ece < 0.05 and brier <= 0.2")
    if math.isnan(value) or metric[-1] in "<>=!" or _OP_INSIDE.search(metric):
        raise ConfigError(f"{where}: {_FORM}, found {check!r}")
    return PolicyCheck(metric=metric, op=op, value=value)  # type: ignore[arg-type]


def check_name(check: PolicyCheck) -> str:
    """How reports call a check: its ``name``, or ``metric op value`` (``vs baseline`` when relative)."""
    if check.name:
        return check.name
    text = f"{check.metric} {check.op} {_fmt(check.value)}"
    return f"{text} vs baseline" if check.relative else text


# ---------------------------------------------------------------------------------------------------------------------
# Metric paths
# ---------------------------------------------------------------------------------------------------------------------


def variant_metrics(result: RunResult, variant: str) -> dict[str, float]:
    """Every numeric metric of one variant as a flat mapping of dotted paths.

    The scheme (``<...>`` is a name from the run; epsilons are written with ``:g``, e.g. ``0.03``):

    * ``quality.{accuracy,balanced_accuracy,macro_f1,n}``, ``quality.per_class.<label>.{precision,recall,f1,support}``
    * ``calibration.{ece,adaptive_ece,mce,brier,nll,temperature,ece_after_temperature,nll_after_temperature}``
    * ``slices.<column>.<value>.{accuracy,accuracy_low,accuracy_high,macro_f1,ece,n}``
    * ``efficiency.<target>.latency_ms.{p50,p95,p99,mean}`` (smallest batch size),
      ``efficiency.<target>.batch<k>.{latency_ms.<p>,throughput_per_s,cost_per_million}``,
      ``efficiency.<target>.{throughput_per_s,cost_per_million}`` (largest batch size),
      ``efficiency.<target>.{peak_memory_mb,file_size_mb,load_time_s,within_memory_budget}`` (budget: 1 or 0)
    * ``faithfulness.{agreement,accuracy_delta,accuracy_delta_low,accuracy_delta_high,ece_delta,max_abs_logit_diff,
      mean_abs_logit_diff,n}``
    * ``robustness.{mean_corruption_accuracy,relative_robustness,mean_flip_rate,clean_accuracy,clean_ece,n}``,
      ``robustness.<corruption>.<severity>.{accuracy,flip_rate,ece}``
    * ``adversarial.{clean_accuracy,sanity_failed,n}``, ``adversarial.<attack>.<norm>.<epsilon>.{accuracy,
      success_rate}``
    * ``ood.<score>.{auroc,aupr,fpr_at_95_tpr}``, ``ood.best_auroc``
    * ``size_bytes``, ``size_mb`` (MiB, like ``file_size_mb``)
    * shared by every variant of the run, from the audit of the data: ``audit.findings``,
      ``audit.findings.<severity>``, ``audit.<check>.findings``, ``audit.leakage_rate`` (largest rate of a split pair
      whose later split is the test split; 0 without overlap), ``audit.leakage_rate.<split>.<against>``,
      ``audit.label_error_rate``; and from the scan of the model files: ``scan.findings``,
      ``scan.findings.<severity>``. ``audit.*`` counts the data findings only: scan findings are ``scan.*``.

    Parts the run lacks (no robustness run, no price for a target, the source's faithfulness) produce no keys.

    Args:
        result: the run.
        variant: the variant's name.

    Returns:
        Path -> value; NaN where the record holds NaN (an empty slice), so a check on it reports it.

    Raises:
        KeyError: the run has no evaluation of ``variant``.
    """
    ev = result.evaluation(variant)
    out: dict[str, float] = {}
    q = ev.quality
    for k in ("accuracy", "balanced_accuracy", "macro_f1", "n"):
        out[f"quality.{k}"] = float(getattr(q, k))
    for c in q.per_class:
        for k in ("precision", "recall", "f1", "support"):
            out[f"quality.per_class.{c.label}.{k}"] = float(getattr(c, k))
    cal = ev.calibration
    for path in _FIXED_PATHS:
        if path.startswith("calibration."):
            out[path] = float(getattr(cal, path.split(".", 1)[1]))
    for s in ev.slices:
        base = f"slices.{s.column}.{s.value}"
        out[f"{base}.accuracy"] = float(s.accuracy.value)
        out[f"{base}.accuracy_low"] = float(s.accuracy.low)
        out[f"{base}.accuracy_high"] = float(s.accuracy.high)
        out[f"{base}.macro_f1"] = float(s.macro_f1)
        out[f"{base}.ece"] = float(s.ece)
        out[f"{base}.n"] = float(s.n)
    for eff in ev.efficiency:
        out.update(_efficiency(eff))
    if (f := ev.faithfulness) is not None:
        out["faithfulness.agreement"] = float(f.agreement)
        out["faithfulness.accuracy_delta"] = float(f.accuracy_delta.value)
        out["faithfulness.accuracy_delta_low"] = float(f.accuracy_delta.low)
        out["faithfulness.accuracy_delta_high"] = float(f.accuracy_delta.high)
        out["faithfulness.ece_delta"] = float(f.ece_delta)
        out["faithfulness.max_abs_logit_diff"] = float(f.max_abs_logit_diff)
        out["faithfulness.mean_abs_logit_diff"] = float(f.mean_abs_logit_diff)
        out["faithfulness.n"] = float(f.n)
    if (r := ev.robustness) is not None:
        for k in ("mean_corruption_accuracy", "relative_robustness", "mean_flip_rate", "clean_accuracy", "clean_ece"):
            out[f"robustness.{k}"] = float(getattr(r, k))
        out["robustness.n"] = float(r.n)
        for c in r.results:
            for k in ("accuracy", "flip_rate", "ece"):
                out[f"robustness.{c.name}.{c.severity}.{k}"] = float(getattr(c, k))
    if (a := ev.adversarial) is not None:
        out["adversarial.clean_accuracy"] = float(a.clean_accuracy)
        out["adversarial.n"] = float(a.n)
        out["adversarial.sanity_failed"] = float(sum(not c.passed for c in a.sanity))
        # a budget attacked twice (white-box and transferred) is judged by the stronger attack
        for att in sorted(a.results, key=lambda x: -x.accuracy):
            base = f"adversarial.{att.attack}.{att.norm}.{att.epsilon:g}"
            out[f"{base}.accuracy"] = float(att.accuracy)
            out[f"{base}.success_rate"] = float(att.success_rate)
    if (o := ev.ood) is not None and o.scores:
        for s in o.scores:
            for k in ("auroc", "aupr", "fpr_at_95_tpr"):
                out[f"ood.{s.name}.{k}"] = float(getattr(s, k))
        out["ood.best_auroc"] = float(o.best().auroc)
    v = _variant(result, variant)
    if v is not None:
        out["size_bytes"] = float(v.size_bytes)
        out["size_mb"] = v.size_bytes / _MIB
    if result.audit is not None:
        out.update(_audit_metrics(result.audit, ev.split))
    return out


def metric_paths(result: RunResult) -> list[str]:
    """Every metric path of the run: the sorted union over its variants (for docs and error hints)."""
    paths: set[str] = set()
    for ev in result.evaluations:
        paths.update(variant_metrics(result, ev.variant))
    return sorted(paths)


def _variant(result: RunResult, name: str) -> Variant | None:
    return next((v for v in result.variants if v.name == name), None)


def _efficiency(eff: Efficiency) -> dict[str, float]:
    out: dict[str, float] = {}
    base = f"efficiency.{eff.target}"
    out[f"{base}.peak_memory_mb"] = float(eff.peak_memory_mb)
    out[f"{base}.file_size_mb"] = float(eff.file_size_mb)
    out[f"{base}.load_time_s"] = float(eff.load_time_s)
    if eff.within_memory_budget is not None:
        out[f"{base}.within_memory_budget"] = float(eff.within_memory_budget)
    stats = sorted(eff.latency, key=lambda s: s.batch_size)
    for s in stats:
        for p in _LATENCY:
            out[f"{base}.batch{s.batch_size}.latency_ms.{p}"] = float(getattr(s, f"{p}_ms"))
        out[f"{base}.batch{s.batch_size}.throughput_per_s"] = float(s.throughput_per_s)
        if s.cost_per_million is not None:
            out[f"{base}.batch{s.batch_size}.cost_per_million"] = float(s.cost_per_million)
    if stats:
        # latency is what one request waits (smallest batch); throughput and cost what the target does flat out
        small, large = stats[0], stats[-1]
        for p in _LATENCY:
            out[f"{base}.latency_ms.{p}"] = float(getattr(small, f"{p}_ms"))
        out[f"{base}.throughput_per_s"] = float(large.throughput_per_s)
        if large.cost_per_million is not None:
            out[f"{base}.cost_per_million"] = float(large.cost_per_million)
    return out


def _scan_ran(audit: AuditResult) -> bool:
    return (
        any(c.name == "scan" and c.status == "ran" for c in audit.checks)
        or bool(audit.scanned_files)
        or any(f.check == "scan" for f in audit.findings)
    )


def _skipped_check(audit: AuditResult, name: str) -> bool:
    return any(c.name == name and c.status != "ran" for c in audit.checks)


def _audit_metrics(audit: AuditResult, test_split: str) -> dict[str, float]:
    out: dict[str, float] = {}
    data = [f for f in audit.findings if f.check != "scan"]
    out["audit.findings"] = float(len(data))
    for sev in SEVERITIES:
        out[f"audit.findings.{sev}"] = float(sum(f.severity == sev for f in data))
    names = {c.name for c in audit.checks if c.status == "ran" and c.name != "scan"} | {f.check for f in data}
    if "duplicates" in names:
        names.add("leakage")  # the duplicates check makes the leakage findings: none found is a count of 0
    for name in names:
        out[f"audit.{name}.findings"] = float(sum(f.check == name for f in data))
    # a skipped duplicates check measured no leakage: a 0 would pass a check it never ran
    if audit.leakage or not _skipped_check(audit, "duplicates"):
        rates = [s.rate for s in audit.leakage if s.split == test_split]
        out["audit.leakage_rate"] = float(max(rates, default=0.0))
        for s in audit.leakage:
            out[f"audit.leakage_rate.{s.split}.{s.against}"] = float(s.rate)
    labels = [f for f in data if f.check == "label_issues"]
    if labels or not _skipped_check(audit, "label_issues"):
        rates = [float(f.details["rate"]) for f in labels if isinstance(f.details.get("rate"), (int, float))]
        out["audit.label_error_rate"] = max(rates, default=0.0)
    if _scan_ran(audit):
        scan = [f for f in audit.findings if f.check == "scan"]
        out["scan.findings"] = float(len(scan))
        for sev in SEVERITIES:
            out[f"scan.findings.{sev}"] = float(sum(f.severity == sev for f in scan))
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Evaluating checks
# ---------------------------------------------------------------------------------------------------------------------


def evaluate_checks(
    result: RunResult,
    policy: PolicyConfig,
    variant: str,
    *,
    baseline: dict[str, float] | None = None,
) -> list[CheckResult]:
    """Run every check of ``policy`` on one variant of a run.

    Args:
        result: the run.
        policy: the ``policy`` section; its string checks are parsed with :func:`parse_check`.
        variant: the variant checked.
        baseline: :func:`variant_metrics` of the baseline, for relative checks (``value - baseline op threshold``);
            None skips them.

    Returns:
        One :class:`CheckResult` per check, in order. ``value`` is the variant's metric, ``baseline_value`` the
        baseline's (relative checks, whose difference is in ``details["difference"]``).

    Raises:
        ConfigError: a check is not ``metric op value``, or the run has no variant ``variant``.
    """
    names = [e.variant for e in result.evaluations]
    if variant not in names:
        raise ConfigError(
            f"policy: no evaluated variant '{variant}' in run '{result.name}'", hint=did_you_mean(variant, names)
        )
    checks = [parse_check(c, i) for i, c in enumerate(policy.checks)]
    values = variant_metrics(result, variant)
    known: set[str] | None = None  # the union over variants, only needed when a path is missing
    out = []
    for check in checks:
        if check.metric not in values and known is None:
            known = set(metric_paths(result))
        out.append(_evaluate(result, variant, check, values, known or set(), baseline))
    return out


def _evaluate(
    result: RunResult,
    variant: str,
    check: PolicyCheck,
    values: dict[str, float],
    known: set[str],
    baseline: dict[str, float] | None,
) -> CheckResult:
    metric, op, threshold = check.metric, check.op, float(check.value)

    def make(status: str, message: str, **kw: object) -> CheckResult:
        if status == "FAIL" and not check.critical:
            status = "WARN"
        details = {"op": op, "relative": check.relative, **kw.pop("details", {})}  # type: ignore[dict-item]
        return CheckResult(
            name=check_name(check),
            status=status,
            critical=check.critical,
            message=message,
            variant=variant,
            metric=metric,
            threshold=threshold,
            details=details,
            **kw,  # type: ignore[arg-type]
        )

    if metric not in values:
        reason = _missing_reason(result, variant, metric, known)
        if reason is not None:
            return make("SKIPPED", f"{metric}: {reason}")
        hint = closest(metric, known | set(_FIXED_PATHS))
        if hint is not None:
            return make("ERROR", f"no metric '{metric}' (did you mean '{hint}'?)", details={"suggestion": hint})
        sections = sorted({p.split(".", 1)[0] for p in known | set(_FIXED_PATHS)})
        return make("ERROR", f"no metric '{metric}' (metric paths start with one of: {', '.join(sections)})")
    value = values[metric]
    if math.isnan(value):
        return make("ERROR", f"{metric}: metric is NaN for '{variant}', nothing to compare", value=value)
    if not check.relative:
        ok = OPS[op](value, threshold)
        v, t = _fmt_pair(value, threshold)
        if ok:
            return make("PASS", f"{metric} = {v} {op} {t}", value=value)
        return make("FAIL", f"{metric} = {v} {_NEGATED[op]} {t} (limit {op} {t})", value=value)
    if baseline is None:
        return make("SKIPPED", f"{metric}: relative check needs a baseline (set policy.baseline)", value=value)
    if metric not in baseline:
        return make("SKIPPED", f"{metric}: the baseline has no such metric, nothing to compare with", value=value)
    base = float(baseline[metric])
    if math.isnan(base):
        return make(
            "ERROR", f"{metric}: metric is NaN for the baseline, nothing to compare", value=value, baseline_value=base
        )
    diff = value - base
    ok = OPS[op](diff, threshold)
    d, t = _fmt_pair(diff, threshold, signed=True)
    rel = "" if ok else f" (limit {op} {t})"
    message = (
        f"{metric} - baseline = {d} {op if ok else _NEGATED[op]} {t}{rel} [{_fmt(value)} vs baseline {_fmt(base)}]"
    )
    return make("PASS" if ok else "FAIL", message, value=value, baseline_value=base, details={"difference": diff})


def _missing_reason(result: RunResult, variant: str, metric: str, known: set[str]) -> str | None:
    """Why ``variant`` has no ``metric`` when it is a metric the run could have, or None for an unknown path."""
    ev = result.evaluation(variant)
    section = metric.split(".", 1)[0]
    if section in ("audit", "scan"):
        return _audit_reason(result.audit, metric, known)
    if section == "efficiency":
        return _efficiency_reason(result, ev, metric, known)
    if metric not in known and metric not in _FIXED_PATHS and not _matches(section, metric):
        return None
    if metric in known and not _section_absent(ev, section):
        # the section is there but this part of it is not (a corruption only another variant was run under)
        return f"measured for other variants but not for '{variant}'"
    if section == "faithfulness" and ev.faithfulness is None:
        is_reference = any(
            e.faithfulness is not None and e.faithfulness.reference == variant for e in result.evaluations
        )
        why = "it is the reference the other variants are compared with" if is_reference else "it has no reference"
        return f"'{variant}' has no faithfulness record ({why})"
    what = {
        "robustness": "robustness (corruptions) was not evaluated",
        "adversarial": "adversarial robustness was not evaluated",
        "ood": "OOD detection was not evaluated",
        "slices": "no slice metrics (the data has no slice columns)",
    }.get(section)
    if what is not None and _section_absent(ev, section):
        return f"{what} for '{variant}'"
    return None


def _section_absent(ev: Evaluation, section: str) -> bool:
    if section == "slices":
        return not ev.slices
    if section == "ood":
        return ev.ood is None or not ev.ood.scores
    if section in ("faithfulness", "robustness", "adversarial"):
        return getattr(ev, section) is None
    return False


def _matches(section: str, metric: str) -> bool:
    pattern = _PATTERNS.get(section)
    return pattern is not None and pattern.match(metric) is not None


def _efficiency_reason(result: RunResult, ev: Evaluation, metric: str, known: set[str]) -> str | None:
    # target names may hold dots ("g4dn.xlarge"), so match them as prefixes rather than splitting the path
    for t in sorted(result.targets, key=lambda t: -len(t.name)):
        prefix = f"efficiency.{t.name}."
        if not metric.startswith(prefix) or not _EFFICIENCY_LEAF.match(metric[len(prefix) :]):
            continue
        if not any(e.target == t.name for e in ev.efficiency):
            return f"efficiency was not measured on target '{t.name}' for '{ev.variant}'"
        if metric.endswith("cost_per_million") and t.price_per_hour is None:
            return f"target '{t.name}' has no price_per_hour, so no cost"
        if metric in known:
            return f"measured for other variants but not for '{ev.variant}'"
        return None
    return None


def _audit_reason(audit: AuditResult | None, metric: str, known: set[str]) -> str | None:
    recognised = metric in _FIXED_PATHS or metric in known or _matches("audit", metric)
    if not recognised:
        return None
    if audit is None:
        return "the run has no audit (run 'deployable audit' or enable the audit)"
    if metric.startswith("scan."):
        return "no model file was scanned"
    check = {"audit.leakage_rate": "duplicates", "audit.label_error_rate": "label_issues"}.get(metric)
    if check is None and metric.startswith("audit.leakage_rate."):
        check = "duplicates"
    if check is None:
        parts = metric.split(".")
        check = parts[1] if len(parts) == 3 and parts[2] == "findings" else None
    if check == "leakage":
        check = "duplicates"
    if check is None:
        return None
    skipped = next((c for c in audit.checks if c.name == check and c.status != "ran"), None)
    if skipped is not None:
        return f"the {check} audit check was skipped ({skipped.reason or 'no reason given'})"
    if metric.startswith("audit.leakage_rate."):
        return None  # the check ran: a split pair it does not list is a typo
    return f"the {check} audit check did not run"


def _fmt(x: float) -> str:
    if math.isfinite(x) and x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.6g}"


def _fmt_pair(value: float, threshold: float, *, signed: bool = False) -> tuple[str, str]:
    """Both numbers for a message, with enough digits that different numbers never print the same."""
    v, t = _fmt(value), _fmt(threshold)
    if v == t and value != threshold:
        v, t = repr(float(value)), repr(float(threshold))
    if signed and not v.startswith("-"):
        v = f"+{v}"
    return v, t
