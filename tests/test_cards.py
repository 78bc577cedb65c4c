"""The model card (``model_card.md``) and the AI RMF evidence map (``rmf.md``) of a run."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from _fixtures_report import OPTIMIZED_VARIANTS, make_optimized_run_result
from _fixtures_report import make_run_result as _make_run_result
from deployable.core.records import (
    AdversarialMetrics,
    AttackResult,
    CheckResult,
    Comparison,
    CorruptionResult,
    Interval,
    OodMetrics,
    OodScore,
    RobustnessMetrics,
    RunResult,
    SanityCheck,
    Selection,
    Verdict,
)
from deployable.report.model_card import model_card, write_model_card
from deployable.report.rmf import (
    AI_RMF_SUBCATEGORIES,
    EVIDENCE_KINDS,
    FUNCTIONS,
    GAPS,
    RMF_MAP,
    rmf_map,
    write_rmf,
)

SECTIONS = (
    "Model description",
    "Intended use",
    "Out-of-scope use",
    "Gate verdict",
    "Results",
    "Per-slice results",
    "Comparison with the baseline",
    "Robustness",
    "Calibration",
    "Efficiency",
    "Data",
    "Limitations",
    "Provenance",
)

TEXT_THREAT = (
    "black-box, untargeted, score access: a greedy character-level attack on this variant's probabilities, at most "
    "8 edited characters per text (swap, drop, substitute, insert), 100 test texts"
)


# ---------------------------------------------------------------------------------------------------------------------
def make_run_result():
    """The report fixture without its verdict: these tests add (or leave out) the gate themselves."""
    return _make_run_result().replace(verdict=None)


# Records the fixtures do not have: a verdict, corruptions, attacks, OOD
# ---------------------------------------------------------------------------------------------------------------------


def _verdict() -> Verdict:
    """The gate failed: nothing fits the edge target, the INT8 variant misses the accuracy floor."""
    return Verdict(
        status="FAIL",
        baseline="production",
        reasons=("edge-cpu: no variant passes every critical check",),
        checks=(
            CheckResult(
                name="quality.accuracy >= 0.88",
                status="PASS",
                critical=True,
                message="accuracy 0.890 meets 0.88",
                variant="source",
                metric="quality.accuracy",
                value=0.89,
                threshold=0.88,
            ),
            CheckResult(
                name="quality.accuracy >= 0.88",
                status="FAIL",
                critical=True,
                message="accuracy 0.875 is below 0.88",
                variant="int8-dynamic",
                metric="quality.accuracy",
                value=0.875,
                threshold=0.88,
            ),
            CheckResult(
                name="calibration.ece <= 0.065",
                status="WARN",
                critical=False,
                message="ECE 0.0688 is above 0.065",
                variant="int8-dynamic",
                metric="calibration.ece",
                value=0.0688,
                threshold=0.065,
            ),
            CheckResult(
                name="robustness.relative <= 0.9",
                status="ERROR",
                critical=True,
                message="no metric robustness.relative; did you mean robustness.relative_robustness?",
                variant="source",
                metric="robustness.relative",
            ),
            CheckResult(
                name="efficiency.edge-cpu.memory_mb <= 256",
                status="FAIL",
                critical=True,
                message="peak memory 412.5 MB is over 256",
                variant="source",
                value=412.5,
                threshold=256.0,
            ),
        ),
        comparisons=(
            Comparison(
                variant="int8-dynamic",
                group="overall",
                n=800,
                candidate_accuracy=0.875,
                baseline_accuracy=0.8825,
                difference=Interval(value=-0.0075, low=-0.0175, high=0.0025),
                better=9,
                worse=15,
                p_value=0.307,
                p_adjusted=0.307,
                margin=0.01,
                outcome="INCONCLUSIVE",
                n_needed=2400,
            ),
            Comparison(
                variant="int8-dynamic",
                group="language=de",
                n=212,
                candidate_accuracy=0.83,
                baseline_accuracy=0.85,
                difference=Interval(value=-0.02, low=-0.05, high=0.01),
                better=2,
                worse=6,
                p_value=0.289,
                p_adjusted=0.578,
                margin=0.02,
                outcome="FAIL",
            ),
        ),
        selections=(
            Selection(target="edge-cpu", variant=None, reason="no variant passes every critical check"),
            Selection(
                target="cloud-cpu",
                variant="source",
                reason="the only variant that passes every critical check",
                latency_ms=3.66,
                size_bytes=90_868_376,
                passing=("source",),
                pareto=("source", "int8-dynamic"),
            ),
        ),
    )


def _robustness(clean: float) -> RobustnessMetrics:
    results = (
        CorruptionResult("typo_swap", 1, 0.86, 0.05, 0.06),
        CorruptionResult("typo_swap", 5, 0.74, 0.19, 0.11),
        CorruptionResult("word_drop", 1, 0.84, 0.07, 0.07),
        CorruptionResult("word_drop", 5, 0.52, 0.41, 0.19),
    )
    mean = sum(r.accuracy for r in results) / len(results)
    return RobustnessMetrics(
        modality="text",
        n=250,
        seed=0,
        clean_accuracy=clean,
        clean_ece=0.05,
        mean_corruption_accuracy=mean,
        relative_robustness=mean / clean,
        mean_flip_rate=0.18,
        results=results,
    )


def _adversarial(flagged: bool) -> AdversarialMetrics:
    accuracies = (0.71, 0.55, 0.31, 0.12) if not flagged else (0.71, 0.74, 0.31, 0.12)
    return AdversarialMetrics(
        threat_model=TEXT_THREAT,
        n=100,
        clean_accuracy=0.89,
        results=tuple(
            AttackResult("char-edit", "edits", float(b), acc, 0.89 - acc)
            for b, acc in zip((1, 2, 4, 8), accuracies, strict=True)
        ),
        sanity=(
            SanityCheck(
                "char-edit edits: accuracy falls as the budget grows",
                not flagged,
                "accuracy by budget: "
                + ", ".join(f"{b}: {a:.0%}" for b, a in zip((1, 2, 4, 8), accuracies, strict=True)),
            ),
        ),
    )


def _ood(synthetic: bool, energy: float = 0.934) -> OodMetrics:
    def score(name: str, auroc: float, fpr: float) -> OodScore:
        return OodScore(name, auroc, auroc - 0.05, fpr, ((0.0, 0.0), (1.0, 1.0)), (0.0, 1.0), (800,), (300,))

    return OodMetrics(
        in_split="test",
        out_split="synthetic-ood" if synthetic else "ood",
        synthetic=synthetic,
        source="synthetic: half word salad, half random-letter strings" if synthetic else "the 'ood' split of the data",
        n_in=800,
        n_out=300,
        scores=(score("msp", 0.871, 0.52), score("max_logit", 0.915, 0.33), score("energy", energy, 0.21)),
    )


def _full(*, synthetic: bool = False) -> RunResult:
    """The hand-built run with a gate verdict, corruptions, attacks and OOD on both variants, and a data card."""
    base = make_run_result()
    evaluations = []
    for e in base.evaluations:
        source = e.variant == "source"
        evaluations.append(
            e.replace(
                robustness=_robustness(0.892 if source else 0.876),
                adversarial=_adversarial(flagged=not source),
                ood=_ood(synthetic, 0.934 if source else 0.902),
            )
        )
    config = {
        **base.config,
        "description": "Routes incoming support tickets to the team that handles them.",
        "data": {"card": {"license": "cc-by-4.0", "source": "the helpdesk export of 2024", "language": ["en", "de"]}},
    }
    return base.replace(evaluations=tuple(evaluations), verdict=_verdict(), config=config)


def _section(text: str, title: str) -> str:
    """The body of one ``## title`` section of a Markdown document."""
    start = text.index(f"\n## {title}\n") + len(title) + 5
    end = text.find("\n## ", start)
    return text[start : end if end != -1 else len(text)]


def _load(result: RunResult, tmp_path: Path) -> ModelCard:
    path = write_model_card(result, tmp_path / "model_card.md")
    return ModelCard.load(path)


# ---------------------------------------------------------------------------------------------------------------------
# Model card: metadata
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [make_run_result, make_optimized_run_result, _full], ids=["base", "optimized", "full"])
def test_model_index_round_trips_with_the_evaluations_numbers(make, tmp_path: Path) -> None:
    result = make()
    card = _load(result, tmp_path)
    results = card.data.eval_results
    assert len(results) == 3 * len(result.evaluations)
    got = {(r.dataset_config, r.metric_type): r.metric_value for r in results}
    expected = {}
    for e in result.evaluations:
        expected[(e.variant, "accuracy")] = e.quality.accuracy
        expected[(e.variant, "f1")] = e.quality.macro_f1
        expected[(e.variant, "ece")] = e.calibration.ece
    assert got == expected  # exact: the YAML carries the floats' full repr
    test = next(s for s in result.dataset.splits if s.name == "test")
    for r in results:
        assert r.task_type == "text-classification"
        assert r.dataset_name == r.dataset_type == result.dataset.name
        assert r.dataset_split == "test"
        assert r.dataset_revision == test.fingerprint
        assert r.task_name == f"Text classification ({r.dataset_config})"  # survives the grouping by dataset config
    assert {r.metric_args.get("average") for r in results if r.metric_type == "f1"} == {"macro"}
    assert card.data.model_name == result.name
    assert card.data.library_name == "transformers"
    assert card.data.pipeline_tag == "text-classification"
    assert card.data.tags == ["deployable", "text"]
    assert card.data.license is None  # the config has no licence for the model: none is invented


@pytest.mark.parametrize(
    ("model_type", "library", "modality", "pipeline"),
    [
        ("onnx", "onnx", "image", "image-classification"),
        ("torchscript", "pytorch", "image", "image-classification"),
        ("pytorch", "pytorch", "tabular", "tabular-classification"),
        ("sentence-transformers", "sentence-transformers", "text", "text-classification"),
    ],
)
def test_library_and_pipeline_follow_the_model_type_and_modality(
    model_type: str, library: str, modality: str, pipeline: str, tmp_path: Path
) -> None:
    base = make_run_result()
    result = base.replace(
        config={**base.config, "model": {"type": model_type}},
        dataset=base.dataset.replace(modality=modality),
    )
    card = _load(result, tmp_path)
    assert card.data.library_name == library
    assert card.data.pipeline_tag == pipeline
    assert card.data.tags == ["deployable", modality]
    assert {r.task_type for r in card.data.eval_results} == {pipeline}


def test_a_nan_metric_is_left_out_of_the_model_index(tmp_path: Path) -> None:
    base = make_run_result()
    first = base.evaluations[0]
    broken = first.replace(calibration=first.calibration.replace(ece=math.nan))
    card = _load(base.replace(evaluations=(broken, *base.evaluations[1:])), tmp_path)
    kinds = {(r.dataset_config, r.metric_type) for r in card.data.eval_results}
    assert ("source", "ece") not in kinds
    assert ("source", "accuracy") in kinds and ("int8-dynamic", "ece") in kinds


def test_a_run_without_evaluations_still_makes_a_card(tmp_path: Path) -> None:
    result = make_run_result().replace(evaluations=())
    card = _load(result, tmp_path)
    assert not card.data.eval_results
    text = card.content
    assert "No variant was evaluated in this run." in _section(text, "Results")
    assert "no variant was evaluated" in _section(text, "Limitations").lower()


# ---------------------------------------------------------------------------------------------------------------------
# Model card: body
# ---------------------------------------------------------------------------------------------------------------------


def test_sections_say_what_was_not_run() -> None:
    text = model_card(make_run_result())
    for title in SECTIONS:
        assert f"\n## {title}\n" in text
    assert _section(text, "Gate verdict").strip().startswith("No gate was run")
    assert _section(text, "Comparison with the baseline").strip().startswith("No gate was run")
    assert _section(text, "Robustness").strip() == (
        "Robustness to corruptions, adversarial attacks and out-of-distribution detection were not run."
    )
    assert "no OOD detection was run" in _section(text, "Intended use")
    limitations = _section(text, "Limitations")
    for line in ("Robustness to corruptions was not measured.", "No gate was run"):
        assert line in limitations


def test_verdict_shows_failed_checks_and_the_variant_chosen_per_target() -> None:
    result = _full()
    section = _section(model_card(result), "Gate verdict")
    assert section.strip().startswith("**FAIL** (baseline: `production`)")
    assert "- edge-cpu: no variant passes every critical check" in section
    assert "| `edge-cpu` | **none** | no variant passes every critical check |" in section
    assert "| `cloud-cpu` | `source` | the only variant that passes every critical check | 3.66 |" in section
    failed = section[section.index("### Failed checks") : section.index("Warnings")]
    for c in result.verdict.failed_checks():
        assert c.message in failed
    assert "accuracy 0.890 meets 0.88" not in section  # a passing check is not listed as failed
    assert "robustness.relative_robustness?" in failed and "| ERROR |" in failed
    assert "calibration.ece <= 0.065 on `int8-dynamic`: ECE 0.0688 is above 0.065" in section
    assert "1 of 5 checks passed." in section


def test_comparison_with_the_baseline() -> None:
    section = _section(model_card(_full()), "Comparison with the baseline")
    assert "`production`" in section
    overall = next(line for line in section.splitlines() if "| overall |" in line)
    assert "| 87.5% | 88.2% |" in overall
    assert "−0.75 pts [−1.75 pts, +0.25 pts]" in overall
    assert "9 / 15" in overall and "0.307 (0.307)" in overall
    assert "INCONCLUSIVE (n≈2,400 would decide)" in overall
    fr = next(line for line in section.splitlines() if "| language=de |" in line)
    assert "0.289 (0.578)" in fr and fr.rstrip().endswith("| FAIL |")


def test_a_verdict_without_baseline_says_no_comparison_was_run() -> None:
    result = _full()
    result = result.replace(verdict=result.verdict.replace(comparisons=(), baseline=None))
    text = model_card(result)
    assert _section(text, "Comparison with the baseline").strip().startswith("No baseline comparison was run")
    assert "not compared with the one in production" in _section(text, "Limitations")


def test_robustness_attacks_and_ood_are_reported_per_variant() -> None:
    result = _full()
    text = model_card(result)
    section = _section(text, "Robustness")
    corruptions = section[section.index("### Corruptions") : section.index("### Adversarial attacks")]
    source_row = next(line for line in corruptions.splitlines() if line.startswith("| `source` |"))
    mean = _robustness(0.892).mean_corruption_accuracy
    assert f"{100 * mean:.1f}%" in source_row and "89.2%" in source_row
    assert "word_drop (mean 68.0%; 52.0% at severity 5)" in source_row
    attacks = section[section.index("### Adversarial attacks") : section.index("### Out-of-distribution detection")]
    assert TEXT_THREAT in attacks
    assert "| Attack | 1 char | 2 chars | 4 chars | 8 chars |" in attacks
    assert "| char-edit (character edits) | 71.0% | 55.0% | 31.0% | 12.0% |" in attacks
    assert "The check against gradient masking passed." in attacks  # source
    assert "**Flagged**" in attacks and "accuracy by budget: 1: 71%, 2: 74%" in attacks  # int8-dynamic
    ood = section[section.index("### Out-of-distribution detection") :]
    assert "| `source` | `test` (n=800) vs `ood` (n=300) | energy | 0.934 | 0.884 | 21.0% |" in ood
    assert "| `int8-dynamic` | `test` (n=800) vs `ood` (n=300) | energy | 0.902 |" in ood
    intended = _section(text, "Intended use")
    assert "**Inputs unlike the training data:** detected with AUROC 0.934 by energy" in intended
    limitations = _section(text, "Limitations")
    assert "falls from 89.2% to 74.0% on average" in limitations
    assert "(char-edit (character edits), 8 chars, its largest budget) the accuracy of `source` is 12.0%" in limitations
    assert "21.0% are still accepted" in limitations and "synthetic" not in limitations
    assert "could not evaluate `robustness.relative <= 0.9` on `source` (ERROR): no metric" in limitations


def test_parts_of_robustness_not_run_say_so_and_synthetic_ood_is_labelled() -> None:
    base = make_run_result()
    only_ood = base.replace(evaluations=tuple(e.replace(ood=_ood(synthetic=True)) for e in base.evaluations))
    text = model_card(only_ood)
    section = _section(text, "Robustness")
    assert "### Corruptions\n\nNot run." in section
    assert "### Adversarial attacks\n\nNot run." in section
    assert "vs synthetic (synthetic: half word salad" in section
    assert "against a synthetic set" in _section(text, "Intended use")
    assert "measured only against a synthetic set" in _section(text, "Limitations")


def test_optimized_run_shows_every_variant_with_its_lineage_and_files() -> None:
    result = make_optimized_run_result()
    text = model_card(result)
    description = _section(text, "Model description")
    lineage = description[description.index("### Lineage") :]
    for v in result.variants:
        assert f"`{v.sha256}`" in description
        row = next(line for line in lineage.splitlines() if line.startswith(f"| `{v.name}` |"))
        assert (f"| `{v.parent}` |" if v.parent else "| — (the model as given) |") in row
    static = next(line for line in lineage.splitlines() if line.startswith("| `int8-static` |"))
    assert (
        "**rejected**: outside tolerance on validation (n=600): accuracy -2.50 points [-3.61, -1.38] against the 1.00"
        " it may drop; 6.7% of predictions changed [5.2%, 8.5%] against the 5.0% allowed" in static
    )
    assert "`validation` (n=600), accuracy −2.50 pts [−3.61 pts, −1.38 pts], agreement 93.3%: outside" in static
    dynamic = next(line for line in lineage.splitlines() if line.startswith("| `int8-dynamic` |"))
    assert "2 of 72 nodes in float" in dynamic and "| accepted |" in dynamic
    assert "agreement 99.2%: within" in dynamic
    assert "**Variants:** 6 (5 accepted, 1 rejected)" in description
    faithful = next(line for line in description.splitlines() if line.startswith("| `int8-dynamic` | `source` |"))
    assert "98.62%" in faithful and "−0.38 pts [−0.88 pts, +0.12 pts]" in faithful
    results = _section(text, "Results")
    assert sum(line.startswith("| `") for line in results.splitlines()) == len(OPTIMIZED_VARIANTS)
    assert "The variant `int8-static` was rejected" in _section(text, "Limitations")
    slices = _section(text, "Per-slice results")
    assert all(f"### `{name}` (overall accuracy" in slices for name in OPTIMIZED_VARIANTS)


def test_results_calibration_and_efficiency_carry_the_numbers() -> None:
    result = make_run_result()
    text = model_card(result)
    source = result.evaluation("source")
    results = _section(text, "Results")
    assert "| `source` | accepted | 800 | 89.0% | " in results
    assert f"| {source.quality.macro_f1:.3f} | 0.061 | 0.019 (T=1.62) |" in results
    calibration = _section(text, "Calibration")
    assert "| `int8-dynamic` | 0.069 |" in calibration and "| 1.71 (`validation`) | 0.020 |" in calibration
    efficiency = _section(text, "Efficiency")
    edge = efficiency[efficiency.index("### `edge-cpu`") : efficiency.index("### `cloud-cpu`")]
    lat = source.efficiency[0].latency[0]
    assert f"| `source` | 1 | {lat.p50_ms:.2f} | {lat.p95_ms:.2f} |" in edge
    assert "| 412.5 MB | **no** |" in edge  # over the 256 MB budget of the edge target
    cloud = efficiency[efficiency.index("### `cloud-cpu`") :]
    assert sum(line.startswith("| `source` | 32 |") for line in cloud.splitlines()) == 1


def test_slices_below_the_overall_accuracy_are_marked() -> None:
    base = make_run_result()
    source = base.evaluations[0]
    de = source.slices[0].replace(accuracy=Interval(value=0.80, low=0.75, high=0.85))
    result = base.replace(evaluations=(source.replace(slices=(de, *source.slices[1:])), base.evaluations[1]))
    text = model_card(result)
    section = _section(text, "Per-slice results")
    rows = section[: section.index("### `int8-dynamic`")].splitlines()
    assert "**below overall**" in next(line for line in rows if line.startswith("| language=de |"))
    assert "below overall" not in next(line for line in rows if line.startswith("| language=en |"))
    assert "few samples" in next(line for line in rows if line.startswith("| language=fr |"))
    limitations = _section(text, "Limitations")
    assert "Weaker slices of `source`" in limitations and "language=de: 80.0% [75.0%, 85.0%] on 212" in limitations
    # without a slice that is clearly worse, the weakest one is named with the caveat
    plain = _section(model_card(base), "Limitations")
    assert "The weakest slice of `source` is language=fr" in plain and "cannot tell" in plain


def test_missing_information_is_flagged_and_given_information_used() -> None:
    base = model_card(make_run_result())
    assert "> **Missing information.** **description**" in base
    assert "**Licence:** **missing**, not stated" in _section(base, "Model description")
    assert "**Intended users: missing**" in _section(base, "Intended use")
    assert _section(base, "Out-of-scope use").strip().startswith("**Missing:**")
    assert "language: not stated (`data.card.language`)" in _section(base, "Intended use")

    full = model_card(_full())
    assert "**description**" not in full[: full.index("## Model description")]  # the config gives it
    assert "**licence**" in full[: full.index("## Model description")]  # still missing: no config key for it
    assert "Routes incoming support tickets" in _section(full, "Model description")
    assert "language: en, de" in _section(full, "Intended use")
    assert "\nlanguage:\n- en\n- de\n" in full[: full.index("\n---\n", 4)]


def test_data_section_and_limitations_follow_the_audit() -> None:
    text = model_card(make_run_result())
    data = _section(text, "Data")
    assert "[dataset_card.md](dataset_card.md)" in data
    assert "**Audit findings:** 2 high, 1 medium." in data
    assert "poisoning (skipped: the model exposes no penultimate features)" in data
    assert "24 of 352 (6.8%; 0 exact, 24 near); accuracy 81.0% on all of `test`, 79.6% on the 328" in data
    limitations = _section(text, "Limitations")
    assert "Audit, high (scan): mymodule.Head is imported" in limitations
    assert "inflates its accuracy: 81.0% on all, 79.6% without" in limitations
    assert "`poisoning` check was skipped" in limitations
    assert "overconfident" in limitations  # the fixture's reliability bins sit below the diagonal

    no_audit = model_card(make_run_result().replace(audit=None))
    assert "**Audit:** no audit was run." in _section(no_audit, "Data")
    assert "not audited" in _section(no_audit, "Limitations")


def test_provenance_lists_versions_environment_and_fingerprints() -> None:
    result = make_run_result()
    section = _section(model_card(result), "Provenance")
    assert "**deployable:** 0.1.0; results schema 1.0" in section
    assert "2025-03-14T09:26:53+00:00" in section
    for s in result.dataset.splits:
        assert f"{s.name} `{s.fingerprint}`" in section
    assert "| onnxruntime | 1.18.0 |" in section
    assert "`predictions/int8-dynamic.parquet`" in section


# ---------------------------------------------------------------------------------------------------------------------
# Atomic writers
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("writer", [write_model_card, write_rmf], ids=["model_card", "rmf"])
def test_writers_are_atomic(writer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "out.md"
    path.write_text("previous\n")
    assert writer(make_run_result(), path) == path
    assert path.read_text().startswith(("---\n", "# AI RMF"))
    assert [p.name for p in tmp_path.iterdir()] == ["out.md"]

    from deployable.core import locks

    def fail(*args: object) -> None:
        raise OSError("disk full")

    path.write_text("previous\n")
    monkeypatch.setattr(locks.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        writer(make_run_result(), path)
    assert path.read_text() == "previous\n"  # the old file stays whole
    assert [p.name for p in tmp_path.iterdir()] == ["out.md"]  # and no temporary file is left behind


# ---------------------------------------------------------------------------------------------------------------------
# AI RMF map
# ---------------------------------------------------------------------------------------------------------------------

# AI RMF 1.0 (NIST AI 100-1), tables 1-4: the number of subcategories in each category.
RMF_STRUCTURE = {
    "GOVERN": {1: 7, 2: 3, 3: 2, 4: 3, 5: 2, 6: 2},
    "MAP": {1: 6, 2: 3, 3: 5, 4: 2, 5: 2},
    "MEASURE": {1: 3, 2: 13, 3: 3, 4: 3},
    "MANAGE": {1: 4, 2: 4, 3: 2, 4: 3},
}
ROW = re.compile(r"^\| \*\*((?:GOVERN|MAP|MEASURE|MANAGE) \d+\.\d+)\*\*")


def _rows(text: str) -> list[dict[str, str]]:
    """The table rows of the map: function, subcategory id, evidence, why, where, status."""
    rows = []
    function = ""
    for line in text.splitlines():
        if line.startswith("## "):
            function = line[3:]
        m = ROW.match(line)
        if m:
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            assert len(cells) == 5, line
            rows.append(
                {
                    "function": function,
                    "id": m.group(1),
                    "evidence": cells[1],
                    "why": cells[2],
                    "where": cells[3],
                    "status": cells[4].strip("*"),
                }
            )
    return rows


def _row(rows: list[dict[str, str]], sub: str, label: str) -> dict[str, str]:
    found = [r for r in rows if r["id"] == sub and r["evidence"].startswith(label + ":")]
    assert len(found) == 1, (sub, label, [r["evidence"][:40] for r in rows if r["id"] == sub])
    return found[0]


def _missing_ids(text: str) -> list[str]:
    section = text[text.index("## What is missing") :]
    return re.findall(r"^- \*\*([A-Z]+ \d+\.\d+)\*\*", section, flags=re.MULTILINE)


def test_every_subcategory_id_is_a_real_ai_rmf_id() -> None:
    for sub, (function, title) in AI_RMF_SUBCATEGORIES.items():
        name, number = sub.split(" ")
        category, item = (int(p) for p in number.split("."))
        assert name == function
        assert 1 <= item <= RMF_STRUCTURE[function][category], sub
        assert title and title == title.strip()
    used = {link.subcategory for link in RMF_MAP} | set(GAPS)
    assert used <= set(AI_RMF_SUBCATEGORIES)
    assert set(AI_RMF_SUBCATEGORIES) <= used  # the table holds no id the map does not use
    for link in RMF_MAP:
        assert link.function == AI_RMF_SUBCATEGORIES[link.subcategory][0]
        assert link.evidence in EVIDENCE_KINDS and link.ceiling in ("present", "partial")
    assert {link.evidence for link in RMF_MAP} == set(EVIDENCE_KINDS)  # every kind of evidence maps somewhere
    assert not set(GAPS) & {link.subcategory for link in RMF_MAP}  # a gap is never also claimed as covered
    text = rmf_map(_full())
    for found in re.findall(r"\*\*((?:GOVERN|MAP|MEASURE|MANAGE) \d+\.\d+)\*\*", text):
        assert found in AI_RMF_SUBCATEGORIES


def test_map_names_itself_a_map_of_evidence_and_has_every_function() -> None:
    text = rmf_map(make_run_result())
    assert text.startswith("# AI RMF evidence map: support-tickets\n")
    assert "not a compliance statement" in text
    assert "AI RMF 1.0, NIST AI 100-1, January 2023" in text
    positions = [text.index(f"\n## {f}\n") for f in ("GOVERN", "MAP", "MEASURE", "MANAGE", "What is missing")]
    assert positions == sorted(positions)
    rows = _rows(text)
    assert {r["function"] for r in rows} == {"GOVERN", "MAP", "MEASURE", "MANAGE"}
    for r in rows:
        assert r["id"].split(" ")[0] == r["function"]
        assert r["status"] in ("present", "partial", "missing")


def test_each_piece_of_evidence_gives_a_row_with_the_runs_numbers() -> None:
    result = _full()
    rows = _rows(rmf_map(result))
    source = result.evaluation("source")

    calibration = _row(rows, "MEASURE 2.5", "Calibration")
    assert (
        "`source`: ECE 0.061 on 800 `test` samples (10 bins); temperature 1.62 fitted on `validation` gives 0.019"
        in (calibration["evidence"])
    )
    assert calibration["status"] == "present" and "evaluations[].calibration" in calibration["where"]
    assert _row(rows, "MEASURE 2.9", "Calibration")["status"] == "partial"  # no explanation method ran

    quality = _row(rows, "MEASURE 2.5", "Quality on the test split")["evidence"]
    assert f"accuracy 89.0%, macro-F1 {source.quality.macro_f1:.3f}" in quality and "on 800 `test` samples" in quality
    assert _row(rows, "MEASURE 2.3", "Quality on the test split")["status"] == "partial"

    slices = _row(rows, "MEASURE 2.5", "Per-slice quality with intervals")["evidence"]
    assert "5 slices of `language`, `length` with 95% bootstrap intervals" in slices
    assert "lowest language=fr" in slices and "(n=22)" in slices

    leakage = _row(rows, "MEASURE 2.5", "Duplicates and leakage between splits")["evidence"]
    assert "24 of 352 overlap (6.8%; 0 exact, 24 near), accuracy 81.0% on all and 79.6% without them" in leakage
    assert _row(rows, "MAP 2.3", "Duplicates and leakage between splits")["status"] == "present"

    scan = _row(rows, "MEASURE 2.7", "Model-file scan")
    assert "pickle opcodes against an allowlist; 2 files scanned; 1 finding; high: mymodule.Head" in scan["evidence"]
    assert _row(rows, "MAP 4.2", "Model-file scan")["status"] == "present"

    robustness = _row(rows, "MEASURE 2.7", "Corruption robustness")["evidence"]
    assert "`source`: mean corruption accuracy 74.0% against clean 89.2% on 250 test samples" in robustness
    assert "worst word_drop at severity 5: 52.0%" in robustness

    attacks = _row(rows, "MEASURE 2.7", "Adversarial attacks")
    assert "`source`: 12.0% under char-edit at 8 characters (clean 89.0%, 100 samples)" in attacks["evidence"]
    assert TEXT_THREAT in attacks["evidence"]
    assert attacks["status"] == "partial"  # int8-dynamic's attack is flagged
    sanity = _row(rows, "MEASURE 2.13", "Checks against gradient masking")["evidence"]
    assert "`source`: 1 of 1 passed" in sanity and "`int8-dynamic`: 0 of 1 passed (failed:" in sanity

    ood = _row(rows, "MEASURE 2.6", "Out-of-distribution detection")
    assert "`source`: AUROC 0.934 by energy (msp 0.871, max_logit 0.915), FPR at 95% TPR 21.0%" in ood["evidence"]
    assert ood["status"] == "present"
    assert _row(rows, "MAP 2.2", "Out-of-distribution detection")["status"] == "partial"

    efficiency = _row(rows, "MEASURE 2.3", "Efficiency and cost per target")["evidence"]
    p95 = source.efficiency[0].latency[0].p95_ms
    assert f"`edge-cpu` (1 thread): p95 at batch 1 from 4.39 ms (`int8-dynamic`) to {p95:.2f} ms (`source`)" in (
        efficiency
    )
    assert "1 of 2 over the 256.0 MB budget" in efficiency

    verdict = _row(rows, "MANAGE 1.1", "Gate verdict")["evidence"]
    assert verdict.startswith("Gate verdict: **FAIL**; `edge-cpu` → no variant")
    assert "`cloud-cpu` → `source`" in verdict and "3 failed" in verdict and "accuracy 0.875 is below 0.88" in verdict
    comparison = _row(rows, "MANAGE 1.1", "Comparison with the model in production")["evidence"]
    assert "`int8-dynamic` against `production`: 87.5% vs 88.2%" in comparison
    assert "−0.75 pts [−1.75 pts, +0.25 pts] on 800 samples, McNemar p=0.307, INCONCLUSIVE" in comparison
    assert "1 slice comparison (Holm-adjusted): 1 FAIL" in comparison
    assert _row(rows, "MEASURE 3.1", "Comparison with the model in production")["status"] == "partial"

    policy = _row(rows, "GOVERN 1.4", "Release policy")
    assert "4 checks (`quality.accuracy >= 0.88` (critical);" in policy["evidence"]
    assert "evaluated 5 times on 2 variants: 1 PASS, 2 FAIL, 1 WARN, 1 ERROR" in policy["evidence"]
    assert policy["status"] == "partial" and _row(rows, "MAP 1.5", "Release policy")["status"] == "partial"

    licence = _row(rows, "MAP 4.1", "Data source and licence")
    assert "source: the helpdesk export of 2024; licence: cc-by-4.0" in licence["evidence"]
    assert licence["status"] == "present"
    assert "Routes incoming support tickets" in _row(rows, "MAP 1.1", "Purpose statement")["evidence"]

    provenance = _row(rows, "MEASURE 2.1", "Provenance")["evidence"]
    assert "deployable 0.1.0, results schema 1.0" in provenance and "onnxruntime 1.18.0" in provenance
    inventory = _row(rows, "GOVERN 1.6", "Provenance")
    assert "`int8-dynamic` ← `source` sha256 `a94d0c1b2e3f`" in inventory["evidence"]
    assert inventory["status"] == "partial"
    dataset = _row(rows, "MEASURE 2.1", "Test and training data")["evidence"]
    assert "test 800 (`e07d4c2b19f8`)" in dataset


def test_absent_evidence_is_marked_missing_and_listed() -> None:
    text = rmf_map(make_run_result())  # no gate, corruptions, attacks, OOD, description or data card
    rows = _rows(text)
    for sub, label in (
        ("MEASURE 2.6", "Out-of-distribution detection"),
        ("MEASURE 2.7", "Adversarial attacks"),
        ("MEASURE 2.7", "Corruption robustness"),
        ("MANAGE 1.1", "Gate verdict"),
        ("GOVERN 1.4", "Release policy"),
        ("MAP 4.1", "Data source and licence"),
        ("MEASURE 2.10", "Personal-data statement"),
    ):
        row = _row(rows, sub, label)
        assert row["status"] == "missing" and "Not in this run" in row["evidence"]
    poisoning = _row(rows, "MEASURE 2.7", "Poisoning and backdoors")
    assert poisoning["status"] == "missing"
    assert "skipped: the model exposes no penultimate features" in poisoning["evidence"]
    assert _row(rows, "MAP 2.3", "Class imbalance and label shift")["status"] == "missing"  # not among the checks

    missing = _missing_ids(text)
    for sub in ("MEASURE 2.6", "MANAGE 1.1", "MAP 2.2", "MEASURE 2.13", "MAP 4.1", "GOVERN 1.4", "MEASURE 3.1"):
        assert sub in missing  # every piece of evidence for them is absent
    for sub in ("MEASURE 2.5", "MEASURE 2.7", "MEASURE 2.1", "MAP 2.3"):
        assert sub not in missing  # some evidence is present
    for sub in GAPS:
        assert sub in missing  # no run holds evidence for these
    numbers = [(FUNCTIONS.index(m.split()[0]), *(int(p) for p in m.split()[1].split("."))) for m in missing]
    assert numbers == sorted(numbers)  # MEASURE 2.10 after MEASURE 2.9
    section = text[text.index("## What is missing") :]
    assert "This run has per-slice results for `language`, `length`; they are not protected attributes" in section
    assert "re-run deployable on a recent sample of production inputs" in section

    full = _missing_ids(rmf_map(_full()))
    for sub in ("MEASURE 2.6", "MANAGE 1.1", "MAP 2.2", "MEASURE 2.13", "MAP 4.1", "GOVERN 1.4", "MAP 1.1"):
        assert sub not in full
    assert "MEASURE 2.10" in full  # the data card still says nothing about personal data


def test_synthetic_ood_and_missing_slices_lower_the_status() -> None:
    rows = _rows(rmf_map(_full(synthetic=True)))
    ood = _row(rows, "MEASURE 2.6", "Out-of-distribution detection")
    assert ood["status"] == "partial" and "against a synthetic set" in ood["evidence"]
    base = make_run_result()
    no_slices = base.replace(evaluations=tuple(e.replace(slices=()) for e in base.evaluations))
    row = _row(_rows(rmf_map(no_slices)), "MEASURE 2.5", "Per-slice quality with intervals")
    assert row["status"] == "missing" and "set `data.slices`" in row["evidence"]


def test_optimization_faithfulness_is_mapped_only_when_variants_were_made() -> None:
    result = make_optimized_run_result()
    row = _row(_rows(rmf_map(result)), "MEASURE 2.5", "Faithfulness of optimized variants")
    assert row["status"] == "present"
    assert (
        "`int8-dynamic` against `source`: agreement 98.62%, accuracy −0.38 pts [−0.88 pts, +0.12 pts]"
        in (row["evidence"])
    )
    assert "rejected `int8-static`: outside tolerance on validation" in row["evidence"]
    assert sum("against `source`: agreement" in part for part in row["evidence"].split(";")) == 5

    base = make_run_result()
    single = base.replace(variants=base.variants[:1], evaluations=base.evaluations[:1])
    assert not [r for r in _rows(rmf_map(single)) if "Faithfulness" in r["evidence"]]  # does not apply
    # a derived variant without a faithfulness record is a gap, not silence
    derived = _row(_rows(rmf_map(base)), "MEASURE 2.5", "Faithfulness of optimized variants")
    assert derived["status"] == "missing"


def test_not_measured_row_lists_what_the_run_skipped() -> None:
    rows = _rows(rmf_map(make_run_result()))
    row = _row(rows, "MEASURE 1.1", "What was not measured, and why")
    assert row["status"] == "partial"
    for part in ("the `poisoning` check (the model exposes no penultimate features)", "OOD detection", "the gate"):
        assert part in row["evidence"]


def test_subcategory_title_is_shown_once_per_subcategory() -> None:
    text = rmf_map(_full())
    title = AI_RMF_SUBCATEGORIES["MEASURE 2.5"][1]
    lines = [line for line in text.splitlines() if line.startswith("| **MEASURE 2.5**")]
    assert len(lines) >= 5
    assert sum(title in line for line in lines) == 1


def test_the_records_built_here_round_trip() -> None:
    # the hand-made verdict, corruption, attack and OOD records must be valid results.json material
    result = _full()
    assert RunResult.from_json(result.to_json()).to_json() == result.to_json()


def _table_widths(text: str) -> list[set[int]]:
    """For each Markdown table, the set of cell counts of its lines (one count when the table is well formed)."""
    tables: list[set[int]] = []
    previous = False
    for line in text.splitlines():
        is_row = line.startswith("|")
        if is_row:
            if not previous:
                tables.append(set())
            tables[-1].add(len(re.split(r"(?<!\\)\|", line)))
        previous = is_row
    return tables


@pytest.mark.parametrize("render", [model_card, rmf_map], ids=["model_card", "rmf"])
def test_tables_stay_well_formed_when_text_holds_pipes(render) -> None:
    result = _full()
    verdict = result.verdict
    piped = verdict.checks[1].replace(message="accuracy | 0.875 is below 0.88")
    result = result.replace(verdict=verdict.replace(checks=(verdict.checks[0], piped, *verdict.checks[2:])))
    for text in (render(result), render(make_optimized_run_result())):
        widths = _table_widths(text)
        assert widths and all(len(w) == 1 for w in widths)
    assert "accuracy \\| 0.875 is below 0.88" in render(result)
