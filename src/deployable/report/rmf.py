"""A map of a run's evidence to the NIST AI Risk Management Framework (``rmf.md``).

AI RMF 1.0 (NIST AI 100-1, January 2023) organizes AI risk management into four functions, GOVERN, MAP, MEASURE and
MANAGE, each split into categories and subcategories (``MEASURE 2.5``). :data:`RMF_MAP` says, for each kind of
evidence a run can hold, which subcategories it bears on and why; :func:`rmf_map` fills that table with the run's
numbers, marks each row present, partial or missing, and lists the subcategories a reviewer would ask about that the
run gives no evidence for, with what would close each gap.

It is a map of evidence, not a compliance statement: the framework is voluntary and describes outcomes for
organizations, which a run can support but not achieve. The titles in :data:`AI_RMF_SUBCATEGORIES` are short
paraphrases of the framework's text, not quotations.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jinja2

from deployable.core.records import CHECK_STATUSES, SEVERITIES, AttackResult, Efficiency, RunResult
from deployable.report._format import (
    atomic_write_text,
    fmt_int,
    fmt_mb,
    fmt_ms,
    fmt_num,
    fmt_pct,
    fmt_pts,
    fmt_sig,
    fmt_usd,
    md_cell,
)

__all__ = [
    "AI_RMF_SUBCATEGORIES",
    "EVIDENCE_KINDS",
    "FUNCTIONS",
    "GAPS",
    "RMF_MAP",
    "RmfLink",
    "rmf_map",
    "write_rmf",
]

FUNCTIONS = ("GOVERN", "MAP", "MEASURE", "MANAGE")

# What each function is for (paraphrased from AI RMF 1.0, section 5).
FUNCTION_PURPOSE = {
    "GOVERN": "A culture of risk management: policies, accountability, inventory and third-party risk.",
    "MAP": "The context is established and the risks of the system and its components are identified.",
    "MEASURE": "The risks are analysed, assessed, benchmarked and tracked with quantitative and qualitative methods.",
    "MANAGE": "The risks are prioritized and acted on: whether to deploy, how to respond, how to monitor.",
}

# Every AI RMF 1.0 subcategory this module names: id -> (function, short paraphrase of its title).
AI_RMF_SUBCATEGORIES: dict[str, tuple[str, str]] = {
    "GOVERN 1.1": ("GOVERN", "legal and regulatory requirements involving AI are understood, managed and documented"),
    "GOVERN 1.4": (
        "GOVERN",
        "the risk management process and its outcomes are established through transparent policies, procedures and "
        "controls",
    ),
    "GOVERN 1.5": ("GOVERN", "ongoing monitoring and periodic review of risk management are planned, roles defined"),
    "GOVERN 1.6": ("GOVERN", "mechanisms are in place to inventory AI systems"),
    "GOVERN 2.1": ("GOVERN", "roles, responsibilities and lines of communication for AI risk are documented and clear"),
    "GOVERN 6.1": ("GOVERN", "policies address the risks of third-party entities, including IP infringement"),
    "MAP 1.1": (
        "MAP",
        "intended purposes, beneficial uses, context, laws, norms and deployment settings are understood and "
        "documented",
    ),
    "MAP 1.5": ("MAP", "organizational risk tolerances are determined and documented"),
    "MAP 2.1": ("MAP", "the specific tasks, and the methods that implement them, are defined"),
    "MAP 2.2": (
        "MAP",
        "the system's knowledge limits, and how its output is used and overseen by humans, are documented",
    ),
    "MAP 2.3": (
        "MAP",
        "scientific integrity and TEVV considerations (experimental design, data selection and representativeness, "
        "construct validation) are identified and documented",
    ),
    "MAP 4.1": ("MAP", "legal risks of components, including third-party data, software and IP, are mapped"),
    "MAP 4.2": ("MAP", "internal risk controls for components, including third-party AI technologies, are documented"),
    "MAP 5.1": ("MAP", "the likelihood and magnitude of each identified impact are identified and documented"),
    "MEASURE 1.1": (
        "MEASURE",
        "metrics for the most significant risks are selected; risks that are not or cannot be measured are documented",
    ),
    "MEASURE 2.1": ("MEASURE", "test sets, metrics and details about the tools used during TEVV are documented"),
    "MEASURE 2.3": (
        "MEASURE",
        "performance or assurance criteria are measured and demonstrated for conditions similar to deployment",
    ),
    "MEASURE 2.4": ("MEASURE", "the system's functionality and behaviour are monitored in production"),
    "MEASURE 2.5": (
        "MEASURE",
        "the system is demonstrated to be valid and reliable; limits of generalizability are documented",
    ),
    "MEASURE 2.6": (
        "MEASURE",
        "safety risks are evaluated; residual risk is within tolerance; the system fails safely beyond its knowledge "
        "limits",
    ),
    "MEASURE 2.7": ("MEASURE", "security and resilience are evaluated and documented"),
    "MEASURE 2.9": ("MEASURE", "the model is explained, validated and documented; output is interpreted in context"),
    "MEASURE 2.10": ("MEASURE", "privacy risk is examined and documented"),
    "MEASURE 2.11": ("MEASURE", "fairness and bias are evaluated and the results documented"),
    "MEASURE 2.12": ("MEASURE", "environmental impact and sustainability are assessed and documented"),
    "MEASURE 2.13": ("MEASURE", "the effectiveness of the TEVV metrics and processes is evaluated and documented"),
    "MEASURE 3.1": (
        "MEASURE",
        "existing, unanticipated and emergent risks are regularly identified and tracked, e.g. intended against "
        "actual performance",
    ),
    "MEASURE 3.3": ("MEASURE", "end users and affected communities can report problems and appeal outcomes"),
    "MANAGE 1.1": (
        "MANAGE",
        "a determination is made whether the system achieves its intended purposes and whether development or "
        "deployment should proceed",
    ),
    "MANAGE 1.4": ("MANAGE", "negative residual risks to downstream acquirers and end users are documented"),
    "MANAGE 2.4": (
        "MANAGE",
        "mechanisms and assigned responsibilities exist to supersede, disengage or deactivate a system whose outcomes "
        "are inconsistent with intended use",
    ),
    "MANAGE 4.1": (
        "MANAGE",
        "post-deployment monitoring plans are implemented (user input, appeal and override, decommissioning, incident "
        "response, recovery, change management)",
    ),
}

# evidence kind -> (what it is, how a run gets it when it is missing)
EVIDENCE_KINDS: dict[str, tuple[str, str]] = {
    "task": ("Task and method", "recorded by every run"),
    "description": ("Purpose statement", "write `description` in the config"),
    "dataset": ("Test and training data", "recorded by every run"),
    "data_card": ("Data source and licence", "fill `data.card.source` and `data.card.license` in the config"),
    "personal_data": ("Personal-data statement", "fill `data.card.personal_data` in the config"),
    "audit.duplicates": ("Duplicates and leakage between splits", "enable `audit.duplicates`"),
    "audit.label_issues": ("Label errors", "enable `audit.labels`"),
    "audit.imbalance": ("Class imbalance and label shift", "enable `audit.imbalance`"),
    "audit.outliers": ("Outliers", "enable `audit.outliers` (needs a model that exposes penultimate features)"),
    "audit.poisoning": (
        "Poisoning and backdoors",
        "enable `audit.poisoning` (needs a model that exposes penultimate features)",
    ),
    "audit.scan": ("Model-file scan", "run the audit stage (`deployable run` or `deployable audit`)"),
    "not_measured": ("What was not measured, and why", "recorded by every run"),
    "quality": ("Quality on the test split", "evaluate at least one variant"),
    "slices": ("Per-slice quality with intervals", "set `data.slices`"),
    "calibration": ("Calibration", "evaluate at least one variant"),
    "robustness": ("Corruption robustness", "enable `evaluate.robustness`"),
    "adversarial": ("Adversarial attacks", "enable `evaluate.adversarial`"),
    "adversarial_sanity": (
        "Checks against gradient masking",
        "enable `evaluate.adversarial`; the checks run on attacks made on the variant itself",
    ),
    "ood": ("Out-of-distribution detection", "enable `evaluate.ood`, ideally with a real `ood` split"),
    "efficiency": ("Efficiency and cost per target", "enable `evaluate.efficiency`; set `price_per_hour` on targets"),
    "faithfulness": (
        "Faithfulness of optimized variants",
        "make variants with `optimize.recipes`: the optimize stage compares each with its source",
    ),
    "policy": ("Release policy", "write `policy.checks` and run the gate"),
    "comparison": ("Comparison with the model in production", "set `policy.baseline` and run the gate"),
    "verdict": ("Gate verdict", "write `policy.checks` and run the gate"),
    "provenance": ("Provenance", "recorded by every run"),
}


@dataclass(frozen=True)
class RmfLink:
    """One row of :data:`RMF_MAP`: a kind of evidence and an AI RMF subcategory it bears on.

    Attributes:
        evidence: a key of :data:`EVIDENCE_KINDS`.
        subcategory: an id of :data:`AI_RMF_SUBCATEGORIES`, e.g. ``MEASURE 2.5``.
        why: how the evidence bears on the subcategory (and, when ``ceiling`` is partial, what it leaves out).
        ceiling: the best status this evidence can earn for the subcategory: ``partial`` when the subcategory asks
            for more than any run can hold (an organization's policy, the deployment context).
    """

    evidence: str
    subcategory: str
    why: str
    ceiling: str = "present"

    @property
    def function(self) -> str:
        """GOVERN, MAP, MEASURE or MANAGE: the function the subcategory belongs to (the first word of its id)."""
        return self.subcategory.split()[0]


RMF_MAP: list[RmfLink] = [
    # GOVERN
    RmfLink(
        "policy",
        "GOVERN 1.4",
        "the release policy is written as checks and every outcome is recorded with the run; whether it reflects the "
        "organization's risk priorities is outside the run",
        "partial",
    ),
    RmfLink(
        "provenance",
        "GOVERN 1.6",
        "each variant is recorded with the sha256 of its files, its parent and its recipe: an inventory entry for "
        "this model, not the organization's inventory",
        "partial",
    ),
    # MAP
    RmfLink(
        "description",
        "MAP 1.1",
        "states what the model is for; the context (users, settings, impacts, laws) is more than that",
        "partial",
    ),
    RmfLink(
        "policy",
        "MAP 1.5",
        "the policy's thresholds are the tolerance applied to this model; the organization's tolerance is not recorded",
        "partial",
    ),
    RmfLink("task", "MAP 2.1", "the task and the method implementing it (a classifier of a given type)"),
    RmfLink(
        "ood",
        "MAP 2.2",
        "measures how well inputs beyond the model's knowledge are noticed; human oversight of outputs is not recorded",
        "partial",
    ),
    RmfLink("dataset", "MAP 2.3", "splits are pinned by fingerprints and their make-up is recorded"),
    RmfLink("audit.duplicates", "MAP 2.3", "overlap between splits undermines the test's integrity"),
    RmfLink("audit.label_issues", "MAP 2.3", "label errors bias both training and the test's verdict"),
    RmfLink("audit.imbalance", "MAP 2.3", "representativeness of the classes, and label shift between splits"),
    RmfLink("audit.outliers", "MAP 2.3", "samples far from the training data"),
    RmfLink("data_card", "MAP 4.1", "where the data comes from and under which licence (third-party data, IP)"),
    RmfLink(
        "audit.scan",
        "MAP 4.2",
        "a control on third-party model files: code that runs on loading is found before anything loads them",
    ),
    # MEASURE
    RmfLink(
        "not_measured",
        "MEASURE 1.1",
        "what was not measured is recorded with the reason; which risks matter most is not",
        "partial",
    ),
    RmfLink("dataset", "MEASURE 2.1", "the test set is identified by its fingerprint and size"),
    RmfLink(
        "provenance",
        "MEASURE 2.1",
        "the tool's version, the results schema and the environment are recorded",
    ),
    RmfLink(
        "quality",
        "MEASURE 2.3",
        "performance measured on held-out data; whether that data resembles production inputs is not shown",
        "partial",
    ),
    RmfLink(
        "efficiency",
        "MEASURE 2.3",
        "latency, memory and cost measured on the hardware profiles the model is meant to run on",
    ),
    RmfLink("quality", "MEASURE 2.5", "accuracy and macro-F1 with the number of samples behind them"),
    RmfLink(
        "slices",
        "MEASURE 2.5",
        "intervals per slice show where results hold and where the test set is too small to tell",
    ),
    RmfLink("calibration", "MEASURE 2.5", "reliability of the confidences the model reports"),
    RmfLink(
        "audit.duplicates",
        "MEASURE 2.5",
        "accuracy with and without the overlap shows whether the score is inflated",
    ),
    RmfLink("robustness", "MEASURE 2.5", "accuracy on corrupted inputs: limits of generalization"),
    RmfLink(
        "faithfulness",
        "MEASURE 2.5",
        "an optimized variant is kept only if it follows its source within a tolerance",
    ),
    RmfLink(
        "ood",
        "MEASURE 2.6",
        "noticing inputs beyond the model's knowledge is what lets it fail safely there",
    ),
    RmfLink("audit.scan", "MEASURE 2.7", "model files are checked for code that runs when they are loaded"),
    RmfLink("audit.poisoning", "MEASURE 2.7", "the training data is checked for poisoned samples"),
    RmfLink("adversarial", "MEASURE 2.7", "accuracy under attack, with the threat model stated"),
    RmfLink("robustness", "MEASURE 2.7", "resilience to degraded inputs"),
    RmfLink(
        "calibration",
        "MEASURE 2.9",
        "calibrated confidences let outputs be read as probabilities; no explanation method was run",
        "partial",
    ),
    RmfLink(
        "personal_data",
        "MEASURE 2.10",
        "a statement about personal data in the data; no privacy testing was run",
        "partial",
    ),
    RmfLink(
        "adversarial_sanity",
        "MEASURE 2.13",
        "the attack evaluation is itself checked against gradient masking, which would make it overstate robustness",
    ),
    RmfLink(
        "comparison",
        "MEASURE 3.1",
        "the candidate is tracked against the model in production on the same samples; not over time in deployment",
        "partial",
    ),
    # MANAGE
    RmfLink("verdict", "MANAGE 1.1", "the gate decides, per target, whether a variant may ship"),
    RmfLink("comparison", "MANAGE 1.1", "non-inferiority to the model in production is part of the decision"),
]

# Subcategories no run can hold evidence for, that a reviewer asks about: id -> what would close the gap.
GAPS: dict[str, str] = {
    "GOVERN 1.1": "list the laws and regulations that apply to this use and how each is met.",
    "GOVERN 1.5": "plan the periodic review: who re-runs the gate on this model, how often, and who reads the result.",
    "GOVERN 2.1": "name the model's owner, who may override the gate, and who acts when it fails.",
    "GOVERN 6.1": "the organization's policy for third-party models and data (licences, IP, provenance); the run "
    "records only the data card's source and licence.",
    "MAP 5.1": "an impact assessment: who is affected when the model errs, how likely and how severe.",
    "MEASURE 2.4": "monitoring in production: re-run deployable on a recent sample of production inputs, with the same "
    "policy, on a schedule; this run is a pre-deployment evaluation.",
    "MEASURE 2.11": "declare the protected attributes and a fairness criterion; slices are evidence of fairness only "
    "for attributes someone has declared protected.",
    "MEASURE 2.12": "the energy of training and serving; the run measures latency and memory, not energy.",
    "MEASURE 3.3": "a way for users and affected people to report problems and appeal outcomes.",
    "MANAGE 1.4": "record which residual risks (the model card's limitations) are accepted for users and downstream "
    "acquirers, and by whom.",
    "MANAGE 2.4": "a mechanism and an owner to roll back, bypass or switch off the deployed model when it misbehaves; "
    "the gate blocks a release but does not act on a running model.",
    "MANAGE 4.1": "a post-deployment monitoring plan: input drift, appeal and override, incident response, "
    "decommissioning, change management.",
}

_STATUS_RANK = {"missing": 0, "partial": 1, "present": 2}

_TEMPLATE = Path(__file__).resolve().parent / "templates" / "rmf.md"


# ---------------------------------------------------------------------------------------------------------------------
# Evidence in a run
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Evidence:
    text: str
    where: str
    status: str = "present"


def _absent(kind: str, reason: str) -> _Evidence:
    return _Evidence(f"Not in this run: {reason}. To get it: {EVIDENCE_KINDS[kind][1]}.", "—", "missing")


def _q(name: str) -> str:
    return f"`{name}`"


def _ev_task(result: RunResult) -> _Evidence:
    info = result.dataset
    model_type = (result.config.get("model") or {}).get("type") or (result.variants[0].kind if result.variants else "?")
    return _Evidence(
        f"{len(info.label_names)}-class {info.modality} classification ({', '.join(_q(n) for n in info.label_names)}); "
        f"model type {_q(model_type)}",
        "`results.json`: `dataset.label_names`, `config.model`",
    )


def _ev_description(result: RunResult) -> _Evidence:
    desc = result.config.get("description")
    if not desc:
        return _absent("description", "the config has no description")
    return _Evidence(f"“{desc}”", "`results.json`: `config.description`")


def _ev_dataset(result: RunResult) -> _Evidence:
    info = result.dataset
    splits = "; ".join(f"{s.name} {fmt_int(s.n)} (`{s.fingerprint[:12]}`)" for s in info.splits)
    return _Evidence(
        f"`{info.name}` ({info.modality}): {splits}; each split pinned by the sha256 of its inputs, labels, ids and "
        "slices, with its label counts",
        "`results.json`: `dataset.splits`; `dataset_card.md`",
    )


def _card(result: RunResult) -> dict[str, object]:
    return dict((result.config.get("data") or {}).get("card") or {})


def _ev_data_card(result: RunResult) -> _Evidence:
    card = _card(result)
    have = {k: card.get(k) for k in ("source", "license") if card.get(k)}
    if not have:
        return _absent("data_card", "`data.card.source` and `data.card.license` are not set")
    text = "; ".join(f"{'licence' if k == 'license' else k}: {v}" for k, v in have.items())
    lacking = [k for k in ("source", "license") if k not in have]
    if lacking:
        text += f"; `data.card.{lacking[0]}` is not set"
    return _Evidence(text, "`dataset_card.md`", "present" if not lacking else "partial")


def _ev_personal_data(result: RunResult) -> _Evidence:
    statement = _card(result).get("personal_data")
    if not statement:
        return _absent("personal_data", "the config says nothing about personal data")
    return _Evidence(f"“{statement}”", "`dataset_card.md`")


def _audit_collector(name: str, finding_checks: tuple[str, ...]) -> Callable[[RunResult], _Evidence]:
    """Evidence of one audit check: how it ran, its findings, and (for duplicates) the overlap between splits."""
    kind = f"audit.{name}"

    def collect(result: RunResult) -> _Evidence:
        audit = result.audit
        if audit is None:
            return _absent(kind, "no audit was run")
        check = next((c for c in audit.checks if c.name == name), None)
        if check is None:
            return _absent(kind, f"the audit did not run the `{name}` check")
        if check.status != "ran":
            return _absent(kind, f"the `{name}` check was skipped: {check.reason or 'no reason given'}")
        findings = [f for f in audit.findings if f.check in finding_checks]
        rank = {sev: i for i, sev in enumerate(SEVERITIES)}
        findings.sort(key=lambda f: rank[f.severity])
        parts = [check.method or name]
        if name == "scan" and audit.scanned_files:
            parts.append(f"{len(audit.scanned_files)} files scanned")
        parts.append(f"{len(findings)} finding{'s' if len(findings) != 1 else ''}")
        parts += [f"{f.severity}: {f.message.rstrip('.')}" + (f" (`{f.file}`)" if f.file else "") for f in findings[:3]]
        if len(findings) > 3:
            parts.append(f"and {len(findings) - 3} more")
        where = "`results.json`: `audit.checks`, `audit.findings`"
        if name == "duplicates":
            for s in audit.leakage:
                text = (
                    f"`{s.split}` against `{s.against}`: {fmt_int(s.n_exact + s.n_near)} of {fmt_int(s.n)} overlap "
                    f"({fmt_pct(s.rate)}; {s.n_exact} exact, {s.n_near} near)"
                )
                if s.accuracy is not None and s.accuracy_clean is not None:
                    text += f", accuracy {fmt_pct(s.accuracy)} on all and {fmt_pct(s.accuracy_clean)} without them"
                parts.append(text)
            where += ", `audit.leakage`"
        return _Evidence("; ".join(parts), where + "; `dataset_card.md` (Audit)")

    return collect


def _not_run(result: RunResult) -> list[str]:
    """What the run skipped or did not run: audit checks with their reasons, whole stages."""
    out = []
    if result.audit is None:
        out.append("the audit of the data and the scan of the model files")
    else:
        out += [
            f"the `{c.name}` check ({c.reason or 'no reason given'})" for c in result.audit.checks if c.status != "ran"
        ]
    evs = result.evaluations
    if not evs:
        out.append("every evaluation (no variant was evaluated)")
    else:
        for label, ran in (
            ("corruption robustness", any(e.robustness for e in evs)),
            ("adversarial attacks", any(e.adversarial for e in evs)),
            ("OOD detection", any(e.ood for e in evs)),
            ("efficiency", any(e.efficiency for e in evs)),
        ):
            if not ran:
                out.append(label)
    if result.verdict is None:
        out.append("the gate")
    elif not result.verdict.comparisons:
        out.append("the comparison with production")
    return out


def _ev_not_measured(result: RunResult) -> _Evidence:
    skipped = _not_run(result)
    text = (
        "not measured: " + "; ".join(skipped) + " (each listed in this file's rows as missing)"
        if skipped
        else "every audit check and evaluation stage ran"
    )
    return _Evidence(text, "`results.json`: `audit.checks[].reason`; this file")


def _ev_quality(result: RunResult) -> _Evidence:
    if not result.evaluations:
        return _absent("quality", "no variant was evaluated")
    rows = [
        f"`{e.variant}`: accuracy {fmt_pct(e.quality.accuracy)}, macro-F1 {fmt_num(e.quality.macro_f1)}, balanced "
        f"accuracy {fmt_pct(e.quality.balanced_accuracy)} on {fmt_int(e.quality.n)} `{e.split}` samples"
        for e in result.evaluations
    ]
    return _Evidence("; ".join(rows), "`results.json`: `evaluations[].quality`; `model_card.md` (Results)")


def _ev_slices(result: RunResult) -> _Evidence:
    ref = result.reference
    if ref is None or not ref.slices:
        return _absent("slices", "no slice columns" if ref is not None else "no variant was evaluated")
    overall = ref.quality.accuracy
    level = ref.slices[0].accuracy.level
    low = min(ref.slices, key=lambda s: s.accuracy.value)
    below = [s for s in ref.slices if s.accuracy.high < overall]
    columns = sorted({s.column for s in ref.slices})
    text = (
        f"`{ref.variant}`: {len(ref.slices)} slices of {', '.join(_q(c) for c in columns)} with {level:.0%} bootstrap "
        f"intervals; lowest {low.column}={low.value} {fmt_pct(low.accuracy.value)} [{fmt_pct(low.accuracy.low)}, "
        f"{fmt_pct(low.accuracy.high)}] (n={fmt_int(low.n)}); {len(below)} slice{'s' if len(below) != 1 else ''} "
        f"entirely below the overall {fmt_pct(overall)}"
    )
    others = sum(1 for e in result.evaluations if e.slices and e is not ref)
    if others:
        text += f"; the same for {others} other variant{'s' if others != 1 else ''}"
    return _Evidence(text, "`results.json`: `evaluations[].slices`; `model_card.md` (Per-slice results)")


def _ev_calibration(result: RunResult) -> _Evidence:
    if not result.evaluations:
        return _absent("calibration", "no variant was evaluated")
    rows = [
        f"`{e.variant}`: ECE {fmt_num(c.ece)} on {fmt_int(e.quality.n)} `{e.split}` samples ({c.n_bins} bins); "
        f"temperature {fmt_num(c.temperature, 2)} fitted on `{c.temperature_fitted_on}` gives "
        f"{fmt_num(c.ece_after_temperature)}"
        for e in result.evaluations
        if (c := e.calibration) is not None
    ]
    return _Evidence("; ".join(rows), "`results.json`: `evaluations[].calibration`")


def _ev_robustness(result: RunResult) -> _Evidence:
    rows = []
    for e in result.evaluations:
        r = e.robustness
        if r is None:
            continue
        groups = r.by_corruption()
        text = (
            f"`{e.variant}`: mean corruption accuracy {fmt_pct(r.mean_corruption_accuracy)} against clean "
            f"{fmt_pct(r.clean_accuracy)} on {fmt_int(r.n)} test samples (relative {fmt_num(r.relative_robustness)}, "
            f"{len(groups)} corruptions)"
        )
        if r.results:
            worst = min(r.results, key=lambda x: x.accuracy)
            text += f"; worst {worst.name} at severity {worst.severity}: {fmt_pct(worst.accuracy)}"
        rows.append(text)
    if not rows:
        return _absent("robustness", "no variant was evaluated under corruptions")
    return _Evidence("; ".join(rows), "`results.json`: `evaluations[].robustness`")


def _strongest(results: tuple[AttackResult, ...]) -> AttackResult:
    """The attack that leaves the least accuracy at its own largest budget."""
    groups: dict[tuple[str, str], list[AttackResult]] = {}
    for r in results:
        groups.setdefault((r.attack, r.norm), []).append(r)
    return min((max(rs, key=lambda r: r.epsilon) for rs in groups.values()), key=lambda r: r.accuracy)


def _ev_adversarial(result: RunResult) -> _Evidence:
    attacked = [e for e in result.evaluations if e.adversarial is not None and e.adversarial.results]
    if not attacked:
        return _absent("adversarial", "no variant was attacked")
    rows = []
    threats: list[str] = []
    flagged = []
    for e in attacked:
        a = e.adversarial
        assert a is not None
        w = _strongest(a.results)
        budget = f"{w.epsilon:g} characters" if w.norm == "edits" else f"L{w.norm} ε={w.epsilon:g}"
        rows.append(
            f"`{e.variant}`: {fmt_pct(w.accuracy)} under {w.attack} at {budget} (clean {fmt_pct(a.clean_accuracy)}, "
            f"{fmt_int(a.n)} samples{', transferred' if w.transferred else ''})"
        )
        if a.threat_model not in threats:
            threats.append(a.threat_model)
        if a.flagged:
            flagged.append(e.variant)
    text = "; ".join(rows) + ". Threat model: " + " / ".join(threats)
    if flagged:
        text += f". Flagged by the gradient-masking checks: {', '.join(_q(v) for v in flagged)}"
    return _Evidence(text, "`results.json`: `evaluations[].adversarial`", "partial" if flagged else "present")


def _ev_adversarial_sanity(result: RunResult) -> _Evidence:
    checked = [e for e in result.evaluations if e.adversarial is not None and e.adversarial.sanity]
    if not checked:
        reason = (
            "every attack was transferred from another variant"
            if any(e.adversarial is not None for e in result.evaluations)
            else "no variant was attacked"
        )
        return _absent("adversarial_sanity", reason)
    rows = []
    for e in checked:
        a = e.adversarial
        assert a is not None
        failed = [c for c in a.sanity if not c.passed]
        text = f"`{e.variant}`: {len(a.sanity) - len(failed)} of {len(a.sanity)} passed"
        if failed:
            text += " (failed: " + "; ".join(f"{c.name}: {c.detail}" for c in failed) + ")"
        rows.append(text)
    return _Evidence("; ".join(rows), "`results.json`: `evaluations[].adversarial.sanity`")


def _ev_ood(result: RunResult) -> _Evidence:
    scored = [e for e in result.evaluations if e.ood is not None and e.ood.scores]
    if not scored:
        return _absent("ood", "no OOD detection was run")
    rows = []
    synthetic = False
    for e in scored:
        o = e.ood
        assert o is not None
        best = o.best()
        others = ", ".join(f"{s.name} {fmt_num(s.auroc)}" for s in o.scores if s is not best)
        against = f"a synthetic set ({o.source})" if o.synthetic else f"the `{o.out_split}` split"
        rows.append(
            f"`{e.variant}`: AUROC {fmt_num(best.auroc)} by {best.name}"
            + (f" ({others})" if others else "")
            + f", FPR at 95% TPR {fmt_pct(best.fpr_at_95_tpr)}; `{o.in_split}` (n={fmt_int(o.n_in)}) against {against} "
            f"(n={fmt_int(o.n_out)})"
        )
        synthetic = synthetic or o.synthetic
    text = "; ".join(rows)
    if synthetic:
        text += ". A synthetic OOD set only shows that obvious junk is noticed, not real shifted inputs"
    return _Evidence(text, "`results.json`: `evaluations[].ood`", "partial" if synthetic else "present")


def _ev_efficiency(result: RunResult) -> _Evidence:
    by_target: dict[str, list[tuple[str, Efficiency]]] = {}
    for e in result.evaluations:
        for eff in e.efficiency:
            by_target.setdefault(eff.target, []).append((e.variant, eff))
    if not by_target:
        return _absent("efficiency", "efficiency was not measured")
    budgets = {t.name: t.memory_budget_mb for t in result.targets}
    rows = []
    for target, items in by_target.items():
        # the smallest batch size each variant was timed at: the latency a single request sees
        timed = [(v, min(eff.latency, key=lambda x: x.batch_size)) for v, eff in items if eff.latency]
        threads = items[0][1].threads
        text = f"`{target}` ({threads} thread{'s' if threads != 1 else ''})"
        if timed:
            fast = min(timed, key=lambda x: x[1].p95_ms)
            slow = max(timed, key=lambda x: x[1].p95_ms)
            text += (
                f": p95 at batch {fast[1].batch_size} from {fmt_ms(fast[1].p95_ms)} ms (`{fast[0]}`) to "
                f"{fmt_ms(slow[1].p95_ms)} ms (`{slow[0]}`)"
            )
            costs = [lat.cost_per_million for _, lat in timed if lat.cost_per_million is not None]
            if costs:
                text += f", cost per million {fmt_usd(min(costs))} to {fmt_usd(max(costs))}"
        memory = [eff.peak_memory_mb for _, eff in items]
        text += f"; peak memory {fmt_mb(min(memory))} to {fmt_mb(max(memory))}"
        if budgets.get(target) is not None:
            over = sum(eff.within_memory_budget is False for _, eff in items)
            text += f", {over} of {len(items)} over the {fmt_mb(budgets[target])} budget"
        rows.append(text)
    return _Evidence("; ".join(rows), "`results.json`: `evaluations[].efficiency`; `model_card.md` (Efficiency)")


def _ev_faithfulness(result: RunResult) -> _Evidence | None:
    derived = [e for e in result.evaluations if e.faithfulness is not None]
    rejected = [v for v in result.variants if v.status == "rejected"]
    if not derived and not rejected:
        if any(v.parent is not None for v in result.variants):
            return _absent("faithfulness", "derived variants were not compared with their source")
        return None  # nothing was optimized: the evidence does not apply to this run
    rows = []
    for e in derived:
        f = e.faithfulness
        assert f is not None
        rows.append(
            f"`{e.variant}` against `{f.reference}`: agreement {fmt_pct(f.agreement, 2)}, accuracy "
            f"{fmt_pts(f.accuracy_delta.value)} [{fmt_pts(f.accuracy_delta.low)}, {fmt_pts(f.accuracy_delta.high)}] on "
            f"{fmt_int(f.n)} `{f.split}` samples"
        )
    rows += [f"rejected `{v.name}`: {v.reason}" for v in rejected]
    return _Evidence(
        "; ".join(rows), "`results.json`: `evaluations[].faithfulness`, `variants[].status`, `variants[].recipe`"
    )


def _ev_policy(result: RunResult) -> _Evidence:
    v = result.verdict
    if v is None or not v.checks:
        return _absent("policy", "no gate was run")
    names: dict[str, bool] = {}
    for c in v.checks:
        names[c.name] = names.get(c.name, False) or c.critical
    counts = {s: sum(c.status == s for c in v.checks) for s in CHECK_STATUSES}
    variants = {c.variant for c in v.checks if c.variant}
    text = (
        f"{len(names)} checks ("
        + "; ".join(f"`{n}`{' (critical)' if crit else ''}" for n, crit in names.items())
        + f") evaluated {len(v.checks)} times on {len(variants)} variant{'s' if len(variants) != 1 else ''}: "
        + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    )
    return _Evidence(text, "`results.json`: `verdict.checks`; `config.policy`")


def _ev_comparison(result: RunResult) -> _Evidence:
    v = result.verdict
    if v is None:
        return _absent("comparison", "no gate was run")
    if not v.comparisons:
        return _absent("comparison", "no baseline was configured")
    rows = []
    for c in v.comparisons:
        if c.group != "overall":
            continue
        rows.append(
            f"`{c.variant}` against `{v.baseline or 'production'}`: {fmt_pct(c.candidate_accuracy)} vs "
            f"{fmt_pct(c.baseline_accuracy)}, {fmt_pts(c.difference.value)} [{fmt_pts(c.difference.low)}, "
            f"{fmt_pts(c.difference.high)}] on {fmt_int(c.n)} samples, McNemar p={fmt_sig(c.p_value)}, {c.outcome}"
        )
    groups = [c for c in v.comparisons if c.group != "overall"]
    if groups:
        outcomes: dict[str, int] = {}
        for c in groups:
            outcomes[c.outcome] = outcomes.get(c.outcome, 0) + 1
        rows.append(
            f"{len(groups)} slice comparison{'s' if len(groups) != 1 else ''} (Holm-adjusted): "
            + ", ".join(f"{n} {o}" for o, n in outcomes.items())
        )
    return _Evidence("; ".join(rows), "`results.json`: `verdict.comparisons`")


def _ev_verdict(result: RunResult) -> _Evidence:
    v = result.verdict
    if v is None:
        return _absent("verdict", "no gate was run")
    parts = [f"**{v.status}**"]
    parts += [
        f"`{s.target}` → " + (f"`{s.variant}`" if s.variant else f"no variant ({s.reason})") for s in v.selections
    ]
    failed = v.failed_checks()
    if failed:
        parts.append(
            f"{len(failed)} failed: "
            + "; ".join(f"`{c.name}`" + (f" on `{c.variant}`" if c.variant else "") + f": {c.message}" for c in failed)
        )
    return _Evidence("; ".join(parts), "`results.json`: `verdict`; `model_card.md` (Gate verdict)")


def _ev_provenance(result: RunResult) -> _Evidence:
    variants = "; ".join(
        f"`{v.name}`" + (f" ← `{v.parent}`" if v.parent else "") + f" sha256 `{v.sha256[:12]}`" for v in result.variants
    )
    env = ", ".join(f"{k} {val}" for k, val in result.environment.items() if k not in ("platform", "machine"))
    return _Evidence(
        f"deployable {result.deployable_version}, results schema {result.schema_version}, created "
        f"{result.created_at}; environment: {env or 'not recorded'}; variants: {variants or 'none'}",
        "`results.json`: `deployable_version`, `schema_version`, `environment`, `variants`",
    )


_COLLECTORS: dict[str, Callable[[RunResult], _Evidence | None]] = {
    "task": _ev_task,
    "description": _ev_description,
    "dataset": _ev_dataset,
    "data_card": _ev_data_card,
    "personal_data": _ev_personal_data,
    "audit.duplicates": _audit_collector("duplicates", ("duplicates", "leakage")),
    "audit.label_issues": _audit_collector("label_issues", ("label_issues",)),
    "audit.imbalance": _audit_collector("imbalance", ("imbalance",)),
    "audit.outliers": _audit_collector("outliers", ("outliers",)),
    "audit.poisoning": _audit_collector("poisoning", ("poisoning",)),
    "audit.scan": _audit_collector("scan", ("scan",)),
    "not_measured": _ev_not_measured,
    "quality": _ev_quality,
    "slices": _ev_slices,
    "calibration": _ev_calibration,
    "robustness": _ev_robustness,
    "adversarial": _ev_adversarial,
    "adversarial_sanity": _ev_adversarial_sanity,
    "ood": _ev_ood,
    "efficiency": _ev_efficiency,
    "faithfulness": _ev_faithfulness,
    "policy": _ev_policy,
    "comparison": _ev_comparison,
    "verdict": _ev_verdict,
    "provenance": _ev_provenance,
}


# ---------------------------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------------------------


def _sort_key(subcategory: str) -> tuple[int, ...]:
    """``MEASURE 2.10`` after ``MEASURE 2.9``."""
    function, number = subcategory.split(" ")
    return (FUNCTIONS.index(function), *(int(p) for p in number.split(".")))


def _title(subcategory: str) -> str:
    return AI_RMF_SUBCATEGORIES[subcategory][1]


def _weaker(status: str, ceiling: str) -> str:
    return status if _STATUS_RANK[status] <= _STATUS_RANK[ceiling] else ceiling


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True
    )


def rmf_map(result: RunResult) -> str:
    """The AI RMF evidence map of a run as Markdown.

    Args:
        result: the run.

    Returns:
        Per function, a table of subcategory, evidence (with the run's numbers), why it bears on the subcategory,
        where it is and its status; then the subcategories without evidence and what would close each gap.
    """
    evidence = {kind: collect(result) for kind, collect in _COLLECTORS.items()}
    rows: dict[str, list[dict[str, str]]] = {f: [] for f in FUNCTIONS}
    best: dict[str, str] = {}
    unmet: dict[str, list[str]] = {}  # subcategory -> how to get its missing evidence
    seen: set[str] = set()
    for link in sorted(RMF_MAP, key=lambda link: _sort_key(link.subcategory)):
        ev = evidence[link.evidence]
        if ev is None:
            continue  # the evidence does not apply to this run (e.g. nothing was optimized)
        status = _weaker(ev.status, link.ceiling)
        best[link.subcategory] = max(best.get(link.subcategory, "missing"), status, key=_STATUS_RANK.__getitem__)
        if status == "missing":
            unmet.setdefault(link.subcategory, []).append(
                f"{EVIDENCE_KINDS[link.evidence][0].lower()}: {EVIDENCE_KINDS[link.evidence][1]}"
            )
        first = link.subcategory not in seen
        seen.add(link.subcategory)
        rows[link.function].append(
            {
                # the title once per subcategory: its further rows are read as continuing it
                "subcategory": f"**{link.subcategory}**" + (f" {_title(link.subcategory)}" if first else ""),
                "evidence": md_cell(f"{EVIDENCE_KINDS[link.evidence][0]}: {ev.text}"),
                "why": md_cell(link.why),
                "where": md_cell(ev.where),
                "status": "**missing**" if status == "missing" else status,
            }
        )
    missing = [
        {"id": sub, "title": _title(sub), "close": "; ".join(dict.fromkeys(how)) + "."}
        for sub, how in unmet.items()
        if best[sub] == "missing"
    ]
    missing += [
        {"id": sub, "title": _title(sub), "close": _gap_text(result, sub, close)} for sub, close in GAPS.items()
    ]
    missing.sort(key=lambda m: _sort_key(m["id"]))
    counts = {s: sum(v == s for v in best.values()) for s in ("present", "partial")}
    summary = (
        f"{len(best)} subcategories mapped: {counts['present']} with evidence present, {counts['partial']} partial, "
        f"{len(best) - counts['present'] - counts['partial']} missing; {len(missing)} subcategories listed under "
        "What is missing."
    )
    functions = [{"name": f, "purpose": FUNCTION_PURPOSE[f], "rows": rows[f]} for f in FUNCTIONS]
    template = _environment().from_string(_TEMPLATE.read_text(encoding="utf-8"))
    text = template.render(
        name=result.name,
        version=result.deployable_version,
        created_at=result.created_at,
        summary=summary,
        functions=functions,
        missing=missing,
    )
    return text.rstrip() + "\n"


def _gap_text(result: RunResult, subcategory: str, close: str) -> str:
    """What closes a gap, with what the run already holds that comes near it."""
    if subcategory == "MEASURE 2.11":
        columns = result.dataset.slice_columns
        if columns:
            return (
                f"{close} This run has per-slice results for {', '.join(_q(c) for c in columns)}; they are not "
                "protected attributes unless someone says so."
            )
    return close


def write_rmf(result: RunResult, path: Path) -> Path:
    """Write :func:`rmf_map` to ``path`` atomically."""

    return atomic_write_text(Path(path), rmf_map(result))
