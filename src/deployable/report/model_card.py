"""The model card of a run (``model_card.md``), in the Hugging Face format.

The YAML metadata is made with ``huggingface_hub``'s :class:`ModelCardData` and :class:`EvalResult`, so the Hub and
its tools read the ``model-index``: one ``EvalResult`` per (evaluated variant, metric) for accuracy, macro-F1 and ECE
on the evaluation split. The body is rendered from the run's records alone; what only a person can say (the licence,
the intended users, the out-of-scope uses, the description when the config has none) is flagged as missing.

Where the variant goes in the ``model-index``: ``dataset_config``. ``huggingface_hub`` groups results into
``model-index`` entries by (task type, dataset type, dataset config, split, revision); ``task_name`` is not part of
that key, so variants told apart only by ``task_name`` would be merged into one entry under the first variant's name
and would not survive a round trip through ``ModelCard.load``. ``task_name`` repeats the variant for display, and
``dataset_revision`` holds the evaluation split's fingerprint, which pins the exact samples the numbers come from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deployable.core.records import SEVERITIES, AttackResult, Evaluation, RunResult
from deployable.report._format import (
    DASH,
    atomic_write_text,
    card_config,
    fmt_bytes,
    fmt_int,
    fmt_mb,
    fmt_ms,
    fmt_num,
    fmt_pct,
    fmt_pts,
    fmt_sig,
    fmt_usd,
    kept_in_float,
    md_cell,
)

__all__ = ["missing_model_card_fields", "model_card", "write_model_card"]

_TASKS = {"text": "text-classification", "image": "image-classification", "tabular": "tabular-classification"}

# the config's model.type -> the Hub's library_name (TorchScript is loaded with torch)
_LIBRARIES = {
    "transformers": "transformers",
    "sentence-transformers": "sentence-transformers",
    "pytorch": "pytorch",
    "torchscript": "pytorch",
    "onnx": "onnx",
}

_TEMPLATE = Path(__file__).resolve().parent / "templates" / "model_card.md"

SMALL_SLICE = 30  # below this many test samples a slice's interval is too wide to say much

# What a model card needs that no run can measure: (what, why a person must write it)
PERSON_FIELDS = {
    "licence": "not stated: the config has no licence field for the model; write the licence of the weights and of "
    "any base model they come from",
    "intended users": "who acts on the model's outputs, and for which decisions",
    "out-of-scope uses": "uses the model must not be put to, which only someone who knows the deployment can name",
}


# ---------------------------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------------------------


def missing_model_card_fields(result: RunResult) -> list[tuple[str, str]]:
    """``(field, what it is)`` for every part of the model card a person must write."""
    missing = list(PERSON_FIELDS.items())
    if not result.config.get("description"):
        missing.insert(0, ("description", "what the model does: set `description` in the config"))
    return missing


def model_card(result: RunResult) -> str:
    """The model card of a run as Markdown with YAML metadata (``model-index`` included).

    Args:
        result: the run.

    Returns:
        The card's text; ``huggingface_hub.ModelCard.load`` reads it back.
    """
    from huggingface_hub import ModelCard, ModelCardData

    info = result.dataset
    eval_results = _eval_results(result)
    language = card_config(result).get("language") or None
    metadata = ModelCardData(
        model_name=result.name if eval_results else None,
        eval_results=eval_results or None,
        library_name=_LIBRARIES.get(_model_type(result)),
        pipeline_tag=_TASKS.get(info.modality),
        tags=["deployable", info.modality],
        language=language,
        metrics=["accuracy", "f1", "ece"] if eval_results else None,
    )
    text = ModelCard.from_template(
        metadata,
        template_str=_TEMPLATE.read_text(encoding="utf-8"),
        title=result.name,
        preamble=_preamble(result),
        description=_description(result),
        intended_use=_intended_use(result),
        out_of_scope=_out_of_scope(result),
        verdict=_verdict(result),
        results=_results(result),
        slices=_slices(result),
        comparison=_comparison(result),
        robustness=_robustness(result),
        calibration=_calibration(result),
        efficiency=_efficiency(result),
        data=_data(result),
        limitations=_limitations(result),
        provenance=_provenance(result),
    )
    return str(text).rstrip() + "\n"


def write_model_card(result: RunResult, path: Path) -> Path:
    """Write :func:`model_card` to ``path`` atomically (a reader never sees half a card)."""

    return atomic_write_text(Path(path), model_card(result))


# ---------------------------------------------------------------------------------------------------------------------
# Metadata
# ---------------------------------------------------------------------------------------------------------------------


def _eval_results(result: RunResult) -> list[Any]:
    """Accuracy, macro-F1 and ECE of every evaluated variant; NaN values are left out (YAML would not compare equal)."""
    from huggingface_hub import EvalResult

    info = result.dataset
    task = _TASKS.get(info.modality, f"{info.modality}-classification")
    fingerprints = {s.name: s.fingerprint for s in info.splits}
    out = []
    for e in result.evaluations:
        metrics = (
            ("accuracy", "Accuracy", e.quality.accuracy, None),
            ("f1", "Macro F1", e.quality.macro_f1, {"average": "macro"}),
            (
                "ece",
                f"Expected calibration error ({e.calibration.n_bins} bins, before temperature scaling)",
                e.calibration.ece,
                {"n_bins": e.calibration.n_bins},
            ),
        )
        for metric_type, metric_name, value, args in metrics:
            if not _finite(value):
                continue
            out.append(
                EvalResult(
                    task_type=task,
                    task_name=f"{_task_name(info.modality)} ({e.variant})",
                    dataset_type=info.name,
                    dataset_name=info.name,
                    dataset_config=e.variant,
                    dataset_split=e.split,
                    dataset_revision=fingerprints.get(e.split),
                    metric_type=metric_type,
                    metric_name=metric_name,
                    metric_value=float(value),
                    metric_args=args,
                )
            )
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------------


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _model_type(result: RunResult) -> str:
    model = result.config.get("model") or {}
    if model.get("type"):
        return str(model["type"])
    source = result.source
    return source.kind if source else ""


def _task_name(modality: str) -> str:
    return f"{modality.capitalize()} classification"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """A Markdown table; the columns at ``right`` are right-aligned (numbers)."""
    align = ["---:" if i in right else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(md_cell(h) for h in header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _interval(value: float, low: float, high: float) -> str:
    return f"{fmt_pct(value)} [{fmt_pct(low)}, {fmt_pct(high)}]"


def _bullets(items: Sequence[str]) -> str:
    return "\n".join(f"- {i}" for i in items)


def _quote(name: str) -> str:
    return f"`{name}`"


def _overconfidence(e: Evaluation) -> float | None:
    """Count-weighted mean of confidence minus accuracy over the reliability bins (positive: overconfident)."""
    bins = [b for b in e.calibration.reliability if b.count and _finite(b.confidence) and _finite(b.accuracy)]
    total = sum(b.count for b in bins)
    return sum(b.count * (b.confidence - b.accuracy) for b in bins) / total if total else None


def _worst_corruption(e: Evaluation) -> tuple[str, float, int, float] | None:
    """(corruption, its mean accuracy, its worst severity, accuracy there) for the corruption that hurts most."""
    if e.robustness is None or not e.robustness.results:
        return None
    groups = e.robustness.by_corruption()
    name = min(groups, key=lambda n: sum(r.accuracy for r in groups[n]) / len(groups[n]))
    worst = min(groups[name], key=lambda r: r.accuracy)
    return name, sum(r.accuracy for r in groups[name]) / len(groups[name]), worst.severity, worst.accuracy


def _attack_label(attack: str, norm: str) -> str:
    if norm == "edits":
        return f"{attack} (character edits)"
    return f"{attack.upper()} L{'∞' if norm == 'inf' else norm}"


def _budget_label(norm: str, epsilon: float) -> str:
    if norm == "edits":
        return f"{epsilon:g} char{'' if epsilon == 1 else 's'}"
    return f"ε={epsilon:g}"


def _ood_sentence(e: Evaluation) -> str:
    """'detected with AUROC x by <score>' for one variant, with what it was measured against."""
    assert e.ood is not None and e.ood.scores
    best = e.ood.best()
    against = (
        f"a synthetic set ({e.ood.source}, n={fmt_int(e.ood.n_out)})"
        if e.ood.synthetic
        else f"the `{e.ood.out_split}` split (n={fmt_int(e.ood.n_out)})"
    )
    return (
        f"detected with AUROC {fmt_num(best.auroc)} by {best.name} (variant `{e.variant}`: the `{e.ood.in_split}` "
        f"split, n={fmt_int(e.ood.n_in)}, against {against}); at 95% of in-distribution inputs accepted, "
        f"{fmt_pct(best.fpr_at_95_tpr)} of these inputs are still accepted"
    )


# ---------------------------------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------------------------------


def _preamble(result: RunResult) -> str:
    lines = [
        f"Generated by deployable {result.deployable_version} from the run `{result.name}` ({result.created_at}). "
        "Every number comes from the run's records (`results.json`); the metadata's `model-index` holds accuracy, "
        "macro-F1 and ECE of each evaluated variant, with the variant as the dataset config."
    ]
    missing = missing_model_card_fields(result)
    lines.append(
        "\n> **Missing information.** "
        + "; ".join(f"**{what}** ({why})" for what, why in missing)
        + ". Only a person can write these; fill them in before the card is published."
    )
    return "\n".join(lines)


def _description(result: RunResult) -> str:
    info = result.dataset
    model_type = _model_type(result)
    desc = result.config.get("description")
    rejected = sum(v.status == "rejected" for v in result.variants)
    no_gain = sum(v.status == "no gain" for v in result.variants)
    accepted = len(result.variants) - rejected - no_gain
    parts = [
        desc or "**Missing:** what the model does (set `description` in the config).",
        "",
        _bullets(
            [
                f"**Model type:** `{model_type or DASH}` (library: {_LIBRARIES.get(model_type, 'not known')})",
                f"**Task:** {_task_name(info.modality).lower()} into {len(info.label_names)} classes: "
                + ", ".join(_quote(n) for n in info.label_names),
                f"**Licence:** **missing**, {PERSON_FIELDS['licence']}",
                f"**Variants:** {len(result.variants)} ({accepted} accepted, {rejected} rejected"
                + (f", {no_gain} no gain" if no_gain else "")
                + ")",
            ]
        ),
    ]
    if result.variants:
        parts += [
            "",
            "### Files",
            "",
            _table(
                ["Variant", "Kind", "Files", "sha256 (of the variant's files)", "Size"],
                [
                    [
                        _quote(v.name),
                        v.kind,
                        ", ".join(_quote(f) for f in v.files),
                        _quote(v.sha256),
                        fmt_bytes(v.size_bytes),
                    ]
                    for v in result.variants
                ],
                right=(4,),
            ),
            "",
            "### Lineage",
            "",
            _table(
                ["Variant", "Parent", "Recipe", "Tolerance check", "Status"],
                [
                    [
                        _quote(v.name),
                        _quote(v.parent) if v.parent else "— (the model as given)",
                        _recipe_text(v.recipe) or DASH,
                        _tolerance_text(v.recipe.get("tolerance_check")),
                        f"**{v.status}**: {v.reason}" if v.status in ("rejected", "no gain") else v.status,
                    ]
                    for v in result.variants
                ],
            ),
        ]
    faithful = [e for e in result.evaluations if e.faithfulness is not None]
    if faithful:
        parts += [
            "",
            "How closely each derived variant follows its reference on the same samples:",
            "",
            _table(
                ["Variant", "Reference", "Split", "n", "Agreement", "Accuracy change [CI]", "Max |logit diff|"],
                [
                    [
                        _quote(e.variant),
                        _quote(f.reference),
                        f.split,
                        fmt_int(f.n),
                        fmt_pct(f.agreement, 2),
                        f"{fmt_pts(f.accuracy_delta.value)} [{fmt_pts(f.accuracy_delta.low)}, "
                        f"{fmt_pts(f.accuracy_delta.high)}]",
                        fmt_sig(f.max_abs_logit_diff),
                    ]
                    for e in faithful
                    if (f := e.faithfulness) is not None
                ],
                right=(3, 4, 5, 6),
            ),
        ]
    return "\n".join(parts)


def _recipe_text(recipe: dict[str, Any]) -> str:
    """The recipe's name and its scalar options; nested details (search traces, node lists) stay in results.json."""
    if not recipe:
        return ""
    name = str(recipe.get("recipe", ""))
    options = [
        f"{k}={v}"
        for k, v in recipe.items()
        if k not in ("recipe", "note", "tolerance_check")
        and isinstance(v, (bool, int, float, str))
        and len(str(v)) <= 40
    ]
    kept = kept_in_float(recipe)
    if kept:
        options.append(kept)
    text = name + (f" ({', '.join(options)})" if options else "")
    if recipe.get("note"):
        text += f"; note: {recipe['note']}"
    return text


def _tolerance_text(check: Any) -> str:
    """``validation+train (n=768): accuracy −0.26 pts [−0.91, +0.26], agreement 99.7%: within (pooled)``."""
    if not isinstance(check, dict):
        return DASH
    drop = check.get("accuracy_drop")
    change = check.get("accuracy_change")
    parts = [f"`{check.get('split', '?')}` (n={fmt_int(check.get('n'))})"]
    if isinstance(change, dict) and all(_finite(change.get(k)) for k in ("value", "low", "high")):
        parts.append(f"accuracy {fmt_pts(change['value'])} [{fmt_pts(change['low'])}, {fmt_pts(change['high'])}]")
    elif _finite(drop):
        parts.append(f"accuracy {fmt_pts(-float(drop))}")
    if _finite(check.get("agreement")):
        parts.append(f"agreement {fmt_pct(check['agreement'])}")
    text = ", ".join(parts)
    outcome = {"PASS": "within", "FAIL": "outside", "UNDECIDED": "undecided"}.get(check.get("outcome"))
    if outcome:
        needed = check.get("n_needed")
        text += f": {outcome}" + (f", needs about {fmt_int(needed)} samples" if _finite(needed) else "")
    if check.get("pooled"):
        text += " (pooled: the tolerance split alone could not decide)"
    return text


def _intended_use(result: RunResult) -> str:
    info = result.dataset
    card = card_config(result)
    ref = result.reference
    language = card.get("language")
    test = ref.split if ref else (result.config.get("evaluate") or {}).get("test_split", "test")
    n_test = next((s.n for s in info.splits if s.name == test), None)
    items = [
        f"**Task:** classify {info.modality} inputs into one of {len(info.label_names)} classes ("
        + ", ".join(_quote(n) for n in info.label_names)
        + "). The model always answers one of these labels.",
        f"**Data it was evaluated on:** `{info.name}` ({info.modality}; "
        + (f"language: {', '.join(language)}" if language else "language: not stated (`data.card.language`)")
        + f"), the `{test}` split"
        + (f" of {fmt_int(n_test)} samples" if n_test is not None else "")
        + "; see [dataset_card.md](dataset_card.md).",
    ]
    if card.get("description"):
        items.append(f"**What the data is:** {card['description']}")
    if ref is not None and ref.ood is not None and ref.ood.scores:
        items.append(f"**Inputs unlike the training data:** {_ood_sentence(ref)}.")
    else:
        items.append(
            "**Inputs unlike the training data:** no OOD detection was run, so nothing in this run shows whether such "
            "inputs are noticed."
        )
    if result.targets:
        items.append(
            "**Hardware measured:** "
            + "; ".join(
                f"`{t.name}` ({t.threads} thread{'s' if t.threads != 1 else ''}"
                + (f": {t.description}" if t.description else "")
                + ")"
                for t in result.targets
            )
        )
    items.append(f"**Intended users: missing** ({PERSON_FIELDS['intended users']}).")
    return _bullets(items)


def _out_of_scope(result: RunResult) -> str:
    info = result.dataset
    language = card_config(result).get("language")
    ref = result.reference
    items = [
        f"Inputs that belong to none of the {len(info.label_names)} classes: the model still answers one of them."
        + (
            f" Such inputs are {_ood_sentence(ref)}."
            if ref is not None and ref.ood is not None and ref.ood.scores
            else " No OOD detection was run."
        ),
        f"Inputs that are not {info.modality}"
        + (f", or in a language other than {', '.join(language)}" if language else "")
        + ": nothing in this run measures them.",
    ]
    if ref is not None and ref.adversarial is not None:
        items.append(
            f"Attackers stronger than the threat model measured ({ref.adversarial.threat_model}): beyond it, "
            "no number here holds."
        )
    return (
        f"**Missing:** {PERSON_FIELDS['out-of-scope uses']}.\n\n"
        "What the run itself shows about inputs outside its evidence:\n\n" + _bullets(items)
    )


def _verdict(result: RunResult) -> str:
    v = result.verdict
    if v is None:
        return (
            "No gate was run: nothing in this run decides which variant may ship (add `policy.checks` to the config)."
        )
    parts = [f"**{v.status}**" + (f" (baseline: `{v.baseline}`)" if v.baseline else "")]
    if v.reasons:
        parts += ["", _bullets(list(v.reasons))]
    if v.selections:
        parts += [
            "",
            "### Chosen variant per target",
            "",
            _table(
                ["Target", "Chosen variant", "Why", "Latency (ms)", "Size", "Variants passing"],
                [
                    [
                        _quote(s.target),
                        _quote(s.variant) if s.variant else "**none**",
                        s.reason,
                        fmt_ms(s.latency_ms),
                        fmt_bytes(s.size_bytes),
                        ", ".join(_quote(p) for p in s.passing) or DASH,
                    ]
                    for s in v.selections
                ],
                right=(3, 4),
            ),
        ]
    failed = v.failed_checks()
    parts += ["", "### Failed checks", ""]
    if failed:
        parts.append(
            _table(
                ["Check", "Variant", "Status", "Critical", "Value", "Threshold", "Message"],
                [
                    [
                        c.name,
                        _quote(c.variant) if c.variant else "(run)",
                        c.status,
                        "yes" if c.critical else "no",
                        fmt_sig(c.value, 4),
                        fmt_sig(c.threshold, 4),
                        c.message,
                    ]
                    for c in failed
                ],
                right=(4, 5),
            )
        )
    else:
        parts.append("No check failed.")
    from deployable.gate.summary import summarize

    summary = summarize(v)
    warned = summary.warnings
    if warned:
        parts += ["", "Warnings (non-critical checks that failed; regressions past the margin, not significant):", ""]
        parts.append(
            _bullets([f"{c.name}" + (f" on `{c.variant}`" if c.variant else "") + f": {c.message}" for c in warned])
        )
    undecided = summary.undecided_line()
    if undecided:
        parts += [
            "",
            f"Not decided at this sample size: {undecided} (neither passed nor failed; the full list is in "
            "`results.json`, `verdict.comparisons`, and in the report).",
        ]
    if summary.shared:
        parts += ["", "Shared comparisons: " + "; ".join(summary.shared_lines()) + "."]
    skipped = [c for c in v.checks if c.status == "SKIPPED"]
    if skipped:
        parts += ["", "Skipped checks:", ""]
        parts.append(
            _bullets([f"{c.name}" + (f" on `{c.variant}`" if c.variant else "") + f": {c.message}" for c in skipped])
        )
    passed = sum(c.status == "PASS" for c in v.checks)
    undecided_checks = sum(c.status == "UNDECIDED" for c in v.checks)
    tail = f", {undecided_checks} undecided" if undecided_checks else ""
    if summary.shared:
        tail += " (a shared comparison counts once per variant here)"
    parts += ["", f"{passed} of {len(v.checks)} checks passed{tail}."]
    return "\n".join(parts)


def _results(result: RunResult) -> str:
    if not result.evaluations:
        return "No variant was evaluated in this run."
    status = {v.name: v.status for v in result.variants}
    splits = sorted({e.split for e in result.evaluations})
    return (
        f"On the {', '.join(_quote(s) for s in splits)} split. ECE is the expected calibration error of the top-label "
        "confidence; the temperature is fitted on another split and applied to the test logits.\n\n"
        + _table(
            ["Variant", "Status", "n", "Accuracy", "Balanced accuracy", "Macro-F1", "ECE", "ECE after temperature"],
            [
                [
                    _quote(e.variant),
                    status.get(e.variant, DASH),
                    fmt_int(e.quality.n),
                    fmt_pct(e.quality.accuracy),
                    fmt_pct(e.quality.balanced_accuracy),
                    fmt_num(e.quality.macro_f1),
                    fmt_num(e.calibration.ece),
                    f"{fmt_num(e.calibration.ece_after_temperature)} (T={fmt_num(e.calibration.temperature, 2)})",
                ]
                for e in result.evaluations
            ],
            right=(2, 3, 4, 5, 6, 7),
        )
    )


def _slices(result: RunResult) -> str:
    evaluated = [e for e in result.evaluations if e.slices]
    if not evaluated:
        return "No slices were evaluated (set `data.slices` to break the results down)."
    level = evaluated[0].slices[0].accuracy.level
    parts = [
        f"Accuracy per slice with its {level:.0%} bootstrap interval. **below overall** marks a slice whose whole "
        f"interval lies below the variant's overall accuracy; slices under {SMALL_SLICE} samples are marked as few."
    ]
    for e in evaluated:
        overall = e.quality.accuracy
        rows = []
        for s in e.slices:
            flags = []
            if s.accuracy.high < overall:
                flags.append("**below overall**")
            if s.n < SMALL_SLICE:
                flags.append("few samples")
            rows.append(
                [
                    f"{s.column}={s.value}",
                    fmt_int(s.n),
                    _interval(s.accuracy.value, s.accuracy.low, s.accuracy.high),
                    fmt_num(s.macro_f1),
                    fmt_num(s.ece),
                    ", ".join(flags),
                ]
            )
        parts += [
            "",
            f"### `{e.variant}` (overall accuracy {fmt_pct(overall)})",
            "",
            _table(["Slice", "n", f"Accuracy [{level:.0%} CI]", "Macro-F1", "ECE", "Note"], rows, right=(1, 2, 3, 4)),
        ]
    return "\n".join(parts)


def _comparison(result: RunResult) -> str:
    v = result.verdict
    if v is None:
        return "No gate was run, so nothing was compared with a baseline."
    if not v.comparisons:
        return "No baseline comparison was run (set `policy.baseline` to compare with the model in production)."
    from deployable.gate.summary import summarize

    summary = summarize(v)
    undecided = {(c.variant, c.group) for c in summary.undecided}
    # each shared comparison once; undecided slices and classes in one line below (all of them are in results.json)
    shown = [
        c
        for c in v.comparisons
        if c.same_as is None and (c.group == "overall" or (c.variant, c.group) not in undecided)
    ]
    notes = []
    if summary.shared:
        notes.append("Shared comparisons: " + "; ".join(summary.shared_lines()) + ".")
    folded = summary.undecided_line(slices_only=True)
    if folded:
        notes.append(f"Not in the table: {folded} (in `results.json` and the report).")
    return (
        f"Each candidate against the baseline `{v.baseline or 'production'}` on the same test samples: the difference "
        "is candidate minus baseline accuracy with its paired bootstrap interval; McNemar's exact test on the "
        "discordant pairs, Holm-adjusted over the slices.\n\n"
        + _table(
            [
                "Variant",
                "Group",
                "n",
                "Candidate",
                "Baseline",
                "Difference [CI]",
                "Better / worse",
                "McNemar p (Holm)",
                "Margin",
                "Outcome",
            ],
            [
                [
                    _quote(c.variant),
                    c.group,
                    fmt_int(c.n),
                    fmt_pct(c.candidate_accuracy),
                    fmt_pct(c.baseline_accuracy),
                    f"{fmt_pts(c.difference.value)} [{fmt_pts(c.difference.low)}, {fmt_pts(c.difference.high)}]",
                    f"{c.better} / {c.worse}",
                    f"{fmt_sig(c.p_value)} ({fmt_sig(c.p_adjusted)})",
                    fmt_pts(c.margin, signed=False),
                    c.outcome + (f" (n≈{fmt_int(c.n_needed)} would decide)" if c.n_needed else ""),
                ]
                for c in shown
            ],
            right=(2, 3, 4, 5, 7, 8),
        )
        + "".join(f"\n\n{n}" for n in notes)
    )


def _robustness(result: RunResult) -> str:
    evs = result.evaluations
    corrupted = [e for e in evs if e.robustness is not None]
    attacked = [e for e in evs if e.adversarial is not None]
    ood = [e for e in evs if e.ood is not None and e.ood.scores]
    if not (corrupted or attacked or ood):
        return "Robustness to corruptions, adversarial attacks and out-of-distribution detection were not run."
    parts = ["### Corruptions", ""]
    if corrupted:
        rows = []
        for e in corrupted:
            r = e.robustness
            assert r is not None
            worst = _worst_corruption(e)
            rows.append(
                [
                    _quote(e.variant),
                    fmt_int(r.n),
                    fmt_pct(r.clean_accuracy),
                    fmt_pct(r.mean_corruption_accuracy),
                    fmt_num(r.relative_robustness),
                    fmt_pct(r.mean_flip_rate),
                    f"{worst[0]} (mean {fmt_pct(worst[1])}; {fmt_pct(worst[3])} at severity {worst[2]})"
                    if worst
                    else DASH,
                ]
            )
        parts.append(
            _table(
                [
                    "Variant",
                    "n",
                    "Clean accuracy",
                    "Mean corruption accuracy",
                    "Relative robustness",
                    "Mean flip rate",
                    "Worst corruption",
                ],
                rows,
                right=(1, 2, 3, 4, 5),
            )
        )
    else:
        parts.append("Not run.")
    parts += ["", "### Adversarial attacks", ""]
    if attacked:
        for e in attacked:
            a = e.adversarial
            assert a is not None
            budgets = sorted({(r.norm == "edits", r.epsilon) for r in a.results})
            rows_by: dict[tuple[str, str, bool], dict[float, float]] = {}
            for r in a.results:
                rows_by.setdefault((r.attack, r.norm, r.transferred), {})[r.epsilon] = r.accuracy
            header = ["Attack", *(_budget_label("edits" if edits else "inf", eps) for edits, eps in budgets)]
            rows = [
                [
                    _attack_label(attack, norm) + (" (transferred)" if transferred else ""),
                    *(fmt_pct(acc.get(eps)) if (norm == "edits") == edits else DASH for edits, eps in budgets),
                ]
                for (attack, norm, transferred), acc in rows_by.items()
            ]
            parts += [
                f"**`{e.variant}`**: {a.threat_model}. Accuracy on {fmt_int(a.n)} test samples "
                f"(clean {fmt_pct(a.clean_accuracy)})"
                + (f"; the adversarial inputs were made on `{a.source}`" if a.source else "")
                + ":",
                "",
                _table(header, rows, right=tuple(range(1, len(header)))),
                "",
            ]
            failed = [c for c in a.sanity if not c.passed]
            if failed:
                parts += [
                    "**Flagged** by the checks against gradient masking (the numbers above may overstate robustness):",
                    "",
                    _bullets([f"{c.name}: {c.detail}" for c in failed]),
                    "",
                ]
            elif len(a.sanity) == 1:
                parts += ["The check against gradient masking passed.", ""]
            elif a.sanity:
                parts += [f"All {len(a.sanity)} checks against gradient masking passed.", ""]
        parts.pop()
    else:
        parts.append("Not run.")
    parts += ["", "### Out-of-distribution detection", ""]
    if ood:
        rows = []
        for e in ood:
            o = e.ood
            assert o is not None
            against = f"synthetic ({o.source})" if o.synthetic else f"`{o.out_split}`"
            for s in o.scores:
                rows.append(
                    [
                        _quote(e.variant),
                        f"`{o.in_split}` (n={fmt_int(o.n_in)}) vs {against} (n={fmt_int(o.n_out)})",
                        s.name,
                        fmt_num(s.auroc),
                        fmt_num(s.aupr),
                        fmt_pct(s.fpr_at_95_tpr),
                    ]
                )
        parts.append(
            "Higher AUROC separates the test split from inputs unlike it better; FPR at 95% TPR is the share of such "
            "inputs still accepted when 95% of in-distribution inputs are.\n\n"
            + _table(["Variant", "In vs out", "Score", "AUROC", "AUPR", "FPR at 95% TPR"], rows, right=(3, 4, 5))
        )
    else:
        parts.append("Not run.")
    return "\n".join(parts)


def _calibration(result: RunResult) -> str:
    if not result.evaluations:
        return "Not measured: no variant was evaluated."
    first = result.evaluations[0].calibration
    parts = [
        f"ECE over {first.n_bins} equal-width bins of the top-label confidence; the temperature is fitted on "
        f"`{first.temperature_fitted_on}` and applied to the test logits.",
        "",
        _table(
            ["Variant", "ECE", "Adaptive ECE", "MCE", "Brier", "NLL", "Temperature", "ECE after", "NLL after"],
            [
                [
                    _quote(e.variant),
                    fmt_num(c.ece),
                    fmt_num(c.adaptive_ece),
                    fmt_num(c.mce),
                    fmt_num(c.brier),
                    fmt_num(c.nll),
                    f"{fmt_num(c.temperature, 2)} (`{c.temperature_fitted_on}`)",
                    fmt_num(c.ece_after_temperature),
                    fmt_num(c.nll_after_temperature),
                ]
                for e in result.evaluations
                if (c := e.calibration) is not None
            ],
            right=(1, 2, 3, 4, 5, 6, 7, 8),
        ),
    ]
    return "\n".join(parts)


def _efficiency(result: RunResult) -> str:
    measured = [(e, eff) for e in result.evaluations for eff in e.efficiency]
    if not measured:
        return "Efficiency was not measured (`evaluate.efficiency.enabled`)."
    parts = [
        "Measured in a fresh process pinned to each target's threads; cost per million predictions from the target's "
        "price per hour (USD)."
    ]
    names = [t.name for t in result.targets] + sorted(
        {eff.target for _, eff in measured} - {t.name for t in result.targets}
    )
    targets = {t.name: t for t in result.targets}
    for name in names:
        rows = []
        for e, eff in measured:
            if eff.target != name:
                continue
            within = {True: "yes", False: "**no**", None: DASH}[eff.within_memory_budget]
            for lat in eff.latency:
                rows.append(
                    [
                        _quote(e.variant),
                        lat.batch_size,
                        fmt_ms(lat.p50_ms),
                        fmt_ms(lat.p95_ms),
                        f"{lat.throughput_per_s:,.1f}",
                        fmt_mb(eff.peak_memory_mb),
                        within,
                        fmt_usd(lat.cost_per_million),
                    ]
                )
        if not rows:
            continue
        t = targets.get(name)
        about = []
        if t is not None:
            about.append(f"{t.threads} thread{'s' if t.threads != 1 else ''}")
            if t.description:
                about.append(t.description)
            if t.memory_budget_mb is not None:
                about.append(f"memory budget {fmt_mb(t.memory_budget_mb)}")
            if t.price_per_hour is not None:
                about.append(f"{fmt_usd(t.price_per_hour)} per hour")
        parts += [
            "",
            f"### `{name}`",
            "",
            *([f"{'; '.join(about)}.", ""] if about else []),
            _table(
                [
                    "Variant",
                    "Batch",
                    "p50 (ms)",
                    "p95 (ms)",
                    "Throughput (/s)",
                    "Peak memory",
                    "Within budget",
                    "Cost per million",
                ],
                rows,
                right=(1, 2, 3, 4, 5, 7),
            ),
        ]
    return "\n".join(parts)


def _audit_counts(result: RunResult) -> str:
    audit = result.audit
    assert audit is not None
    counts = audit.counts
    return ", ".join(f"{n} {sev}" for sev, n in counts.items() if n) or "no findings"


def _data(result: RunResult) -> str:
    info = result.dataset
    items = [
        f"**Dataset:** `{info.name}` ({info.modality}, {len(info.label_names)} classes): "
        + ", ".join(f"{s.name} {fmt_int(s.n)}" for s in info.splits)
        + ". Sizes, label distribution, fingerprints and licence are in [dataset_card.md](dataset_card.md)."
    ]
    if info.slice_columns:
        items.append("**Slice columns:** " + ", ".join(_quote(c) for c in info.slice_columns))
    audit = result.audit
    if audit is None:
        items.append("**Audit:** no audit was run.")
        return _bullets(items)
    items.append(f"**Audit findings:** {_audit_counts(result)}.")
    items.append(
        "**Audit checks:** "
        + "; ".join(c.name + (f" (skipped: {c.reason})" if c.status == "skipped" else " (ran)") for c in audit.checks)
    )
    if audit.leakage:
        for s in audit.leakage:
            text = (
                f"**Overlap** of `{s.split}` with `{s.against}`: {fmt_int(s.n_exact + s.n_near)} of {fmt_int(s.n)} "
                f"({fmt_pct(s.rate)}; {s.n_exact} exact, {s.n_near} near)"
            )
            if s.accuracy is not None and s.accuracy_clean is not None:
                text += (
                    f"; accuracy {fmt_pct(s.accuracy)} on all of `{s.split}`, {fmt_pct(s.accuracy_clean)} on the "
                    f"{fmt_int(s.n_clean)} samples without overlap"
                )
            items.append(text)
    else:
        items.append("**Overlap between splits:** not measured.")
    return _bullets(items)


def _limitations(result: RunResult) -> str:
    items: list[str] = []
    ref = result.reference
    if ref is None:
        items.append("No variant was evaluated: nothing in this run measures the model's quality.")
    else:
        overall = ref.quality.accuracy
        below = [s for s in ref.slices if s.accuracy.high < overall]
        if below:
            items.append(
                f"Weaker slices of `{ref.variant}` (the whole interval lies below the overall "
                f"{fmt_pct(overall)}): "
                + "; ".join(
                    f"{s.column}={s.value}: {_interval(s.accuracy.value, s.accuracy.low, s.accuracy.high)} on "
                    f"{fmt_int(s.n)} samples"
                    for s in below
                )
                + "."
            )
        elif ref.slices:
            s = min(ref.slices, key=lambda s: s.accuracy.value)
            items.append(
                f"The weakest slice of `{ref.variant}` is {s.column}={s.value}: "
                f"{_interval(s.accuracy.value, s.accuracy.low, s.accuracy.high)} on {fmt_int(s.n)} samples; its "
                f"interval reaches the overall {fmt_pct(overall)}, so this test set cannot tell whether it is worse."
            )
        small = [s for s in ref.slices if s.n < SMALL_SLICE]
        if small:
            items.append(
                f"Slices with fewer than {SMALL_SLICE} test samples ("
                + ", ".join(f"{s.column}={s.value}: {s.n}" for s in small)
                + ") have intervals too wide to say much."
            )
        c = ref.calibration
        over = _overconfidence(ref)
        lean = "" if over is None or abs(over) < 0.005 else (" overconfident" if over > 0 else " underconfident")
        items.append(
            f"Calibration of `{ref.variant}`: ECE {fmt_num(c.ece)} on the raw probabilities{',' if lean else ''}"
            + (f" which are{lean}" if lean else "")
            + f"; {fmt_num(c.ece_after_temperature)} after temperature scaling (T={fmt_num(c.temperature, 2)}, fitted "
            f"on `{c.temperature_fitted_on}`). Read scores as probabilities only after applying the temperature."
        )
        if ref.robustness is not None:
            r = ref.robustness
            worst = _worst_corruption(ref)
            items.append(
                f"Under corruptions the accuracy of `{ref.variant}` falls from {fmt_pct(r.clean_accuracy)} to "
                f"{fmt_pct(r.mean_corruption_accuracy)} on average "
                f"({fmt_pts(r.mean_corruption_accuracy - r.clean_accuracy)})"
                + (f"; the worst is {worst[0]}: {fmt_pct(worst[3])} at severity {worst[2]}" if worst else "")
                + "."
            )
        if ref.adversarial is not None and ref.adversarial.results:
            a = ref.adversarial
            groups: dict[tuple[str, str], list[AttackResult]] = {}
            for r in a.results:
                groups.setdefault((r.attack, r.norm), []).append(r)
            # each attack at its largest budget, then the one that leaves the least accuracy
            worst_attack = min((max(rs, key=lambda r: r.epsilon) for rs in groups.values()), key=lambda r: r.accuracy)
            items.append(
                f"Under attack ({_attack_label(worst_attack.attack, worst_attack.norm)}, "
                f"{_budget_label(worst_attack.norm, worst_attack.epsilon)}, its largest budget) the accuracy of "
                f"`{ref.variant}` is {fmt_pct(worst_attack.accuracy)} (clean {fmt_pct(a.clean_accuracy)})."
            )
            if a.flagged:
                items.append(
                    "The checks against gradient masking flagged the attack results ("
                    + "; ".join(c.name for c in a.sanity if not c.passed)
                    + "): they may overstate robustness."
                )
        if ref.ood is not None and ref.ood.scores:
            best = ref.ood.best()
            items.append(
                f"Of inputs unlike the training data, {fmt_pct(best.fpr_at_95_tpr)} are still accepted when 95% of "
                f"in-distribution inputs are (best score {best.name}, AUROC {fmt_num(best.auroc)})"
                + (
                    "; this was measured only against a synthetic set, and real shifted inputs may be harder to detect"
                    if ref.ood.synthetic
                    else ""
                )
                + "."
            )
    for v in result.variants:
        if v.status == "rejected":
            items.append(f"The variant `{v.name}` was rejected: {v.reason}.")
        elif v.status == "no gain":
            items.append(f"The variant `{v.name}` is within tolerance but no gain, so never selected: {v.reason}.")
    audit = result.audit
    if audit is not None:
        for f in audit.findings:
            if f.severity in SEVERITIES[:2]:
                where = f" (file `{f.file}`)" if f.file else ""
                items.append(f"Audit, {f.severity} ({f.check}): {f.message.rstrip('.')}{where}.")
        for s in audit.leakage:
            if s.accuracy is not None and s.accuracy_clean is not None and s.accuracy - s.accuracy_clean > 0.01:
                items.append(
                    f"The overlap of `{s.split}` with `{s.against}` inflates its accuracy: {fmt_pct(s.accuracy)} on "
                    f"all, {fmt_pct(s.accuracy_clean)} without the overlapping samples."
                )
        for c in audit.checks:
            if c.status == "skipped":
                items.append(f"The audit's `{c.name}` check was skipped: {c.reason}.")
    else:
        items.append("The data was not audited and the model files were not scanned.")
    evs = result.evaluations
    if evs:
        for label, present in (
            ("Robustness to corruptions", any(e.robustness for e in evs)),
            ("Adversarial robustness", any(e.adversarial for e in evs)),
            ("Out-of-distribution detection", any(e.ood for e in evs)),
            ("Efficiency", any(e.efficiency for e in evs)),
        ):
            if not present:
                items.append(f"{label} was not measured.")
    if result.verdict is None:
        items.append("No gate was run: no policy decided whether any variant may ship.")
    else:
        # a check the gate could not evaluate is a hole in the policy, not a pass
        for c in result.verdict.checks:
            if c.status in ("ERROR", "SKIPPED"):
                on = f" on `{c.variant}`" if c.variant else ""
                items.append(f"The gate could not evaluate `{c.name}`{on} ({c.status}): {c.message.rstrip('.')}.")
    if result.verdict is not None and not result.verdict.comparisons:
        items.append("The model was not compared with the one in production.")
    return _bullets(items)


def _provenance(result: RunResult) -> str:
    info = result.dataset
    items = [
        f"**Run:** `{result.name}`, created {result.created_at}",
        f"**deployable:** {result.deployable_version}; results schema {result.schema_version}",
        "**Split fingerprints:** " + "; ".join(f"{s.name} `{s.fingerprint}`" for s in info.splits),
    ]
    predictions = [f"`{e.predictions_file}`" for e in result.evaluations if e.predictions_file]
    if predictions:
        items.append("**Predictions:** " + ", ".join(predictions))
    if result.timings_s:
        items.append("**Stage timings:** " + ", ".join(f"{k} {v:,.1f} s" for k, v in result.timings_s.items()))
    parts = [_bullets(items)]
    if result.environment:
        parts += ["", _table(["Environment", "Version"], [[k, v] for k, v in result.environment.items()])]
    return "\n".join(parts)
