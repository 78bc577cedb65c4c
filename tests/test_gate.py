"""The gate inside a run: policy checks, the comparison with a previous run's predictions, the choice per target,
the exit codes of `deployable run` and `deployable gate`, and the verdict leading the report and the model card."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from _reference import torchmetrics_calibration_error
from conftest import tiny_reference
from deployable.cli import main
from deployable.core.records import RunResult
from deployable.pipeline import run

QUICK = {
    "efficiency": {"warmup": 1, "min_repetitions": 3, "max_seconds": 0.05},
    "robustness": {"enabled": False},
    "adversarial": {"enabled": False},
    "ood": {"enabled": False},
}


def _config(project: Path, policy: dict | None = None, **model: object) -> Path:
    data = yaml.safe_load(project.read_text())
    data["evaluate"] = {**data.get("evaluate", {}), **QUICK}
    if policy is not None:
        data["policy"] = policy
    data["model"].update(model)
    project.write_text(yaml.safe_dump(data, sort_keys=False))
    return project


def _test_split(project: Path) -> tuple[np.ndarray, np.ndarray]:
    """The test split's features and labels, read from the CSV without deployable."""
    path = project.parent / "test.csv"
    x = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(1, 2, 3, 4), dtype=np.float32)
    y = np.array([int(label[1:]) for label in np.loadtxt(path, delimiter=",", skiprows=1, usecols=5, dtype=str)])
    return x, y


def _logits(project: Path, weights: str) -> np.ndarray:
    """The tiny model with the weights file ``weights``, run on the test split by a module built here."""
    import torch
    from safetensors.torch import load_file

    with torch.no_grad():
        model = tiny_reference(load_file(str(project.parent / weights)))
        return model(torch.from_numpy(_test_split(project)[0])).numpy()


def _accuracy(project: Path, weights: str) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(_test_split(project)[1], _logits(project, weights).argmax(1)))


def _ece(project: Path, weights: str) -> float:
    from scipy.special import softmax

    return torchmetrics_calibration_error(
        _test_split(project)[1], softmax(_logits(project, weights).astype(np.float64), axis=1), n_bins=15, norm="l1"
    )


def test_policy_checks_decide_the_verdict_and_the_exit_code(tabular_project: Path, capsys):
    config = _config(tabular_project, {"checks": ["quality.accuracy >= 0", "calibration.ece <= 1"]})
    out = tabular_project.parent / "run"
    assert main(["run", str(config), "--out", str(out), "-q"]) == 0
    result = RunResult.load(out)
    assert result.verdict is not None and result.verdict.status == "PASS"
    assert [s.variant for s in result.verdict.selections] == ["source"]
    assert "gate: PASS" in capsys.readouterr().out

    config = _config(tabular_project, {"checks": ["quality.accuracy >= 0.999", "calibration.eec <= 1"]})
    assert main(["run", str(config), "--out", str(out), "-q"]) == 1
    printed = capsys.readouterr().out
    assert "gate: FAIL" in printed
    failed = [line for line in printed.splitlines() if line.strip().startswith(("FAIL", "ERROR"))]
    assert any("quality.accuracy" in line for line in failed)
    assert any("did you mean 'calibration.ece'" in line for line in failed)  # a typo is an ERROR naming the path
    verdict = RunResult.load(out).verdict
    assert verdict.status == "FAIL" and verdict.selections[0].variant is None
    html = (out / "report.html").read_text()
    assert html.index('id="verdict"') < html.index('id="summary"')  # the report leads with the verdict
    card = (out / "model_card.md").read_text()
    assert "FAIL" in card


def test_a_non_critical_failure_warns_and_passes(tabular_project: Path):
    config = _config(
        tabular_project, {"checks": [{"metric": "quality.accuracy", "op": ">=", "value": 0.999, "critical": False}]}
    )
    verdict = run(config).verdict
    assert verdict.status == "PASS"
    assert [c.status for c in verdict.checks] == ["WARN"]


def test_comparison_with_a_previous_run_passes_the_same_model_and_fails_a_broken_one(tabular_project: Path):
    production = tabular_project.parent / "production"
    run(_config(tabular_project), production)
    # the same model against itself on 50 samples: no discordant pair, but 50 samples cannot show it is within a
    # one-point margin, so the comparison is undecided (not a warning), and noise does not fail the release either
    config = _config(tabular_project, {"baseline": {"run": str(production)}})
    verdict = run(config).verdict
    overall = next(c for c in verdict.comparisons if c.group == "overall")
    assert overall.better == overall.worse == 0 and overall.outcome == "INCONCLUSIVE"
    assert overall.difference.low < -overall.margin < 0 < overall.difference.high
    assert verdict.status == "PASS" and verdict.baseline == "production"
    assert next(c for c in verdict.checks if c.name == "accuracy vs production").status == "UNDECIDED"
    groups = {c.group for c in verdict.comparisons}
    assert {"overall", "region=north"} <= groups and "region=south" not in groups  # 17 samples < min_slice_n

    # a candidate that predicts one class only: far worse, found overall and named
    import torch
    from safetensors.torch import load_file, save_file

    state = load_file(str(tabular_project.parent / "tiny.safetensors"))
    last_w = [k for k in state if k.endswith("weight")][-1]
    last_b = last_w.replace("weight", "bias")
    state[last_w] = torch.zeros_like(state[last_w])
    state[last_b] = torch.tensor([5.0, 0.0, 0.0])
    save_file(state, str(tabular_project.parent / "broken.safetensors"))
    config = _config(tabular_project, {"baseline": {"run": str(production)}}, weights="broken.safetensors")
    out = tabular_project.parent / "candidate"
    assert main(["gate", str(config), "--out", str(out), "-q"]) == 1
    verdict = RunResult.load(out).verdict
    overall = next(c for c in verdict.comparisons if c.group == "overall")
    assert overall.outcome == "FAIL" and overall.worse > overall.better
    assert any("accuracy vs production" in r for r in verdict.reasons)
    # the two sides are the two models: production's predictions from its run, the candidate's from this one
    y = _test_split(tabular_project)[1]
    production_right = _logits(tabular_project, "tiny.safetensors").argmax(1) == y
    candidate_right = y == 0  # it always predicts class 0
    assert overall.baseline_accuracy == pytest.approx(_accuracy(tabular_project, "tiny.safetensors"))
    assert overall.candidate_accuracy == pytest.approx((y == 0).mean())
    assert overall.baseline_accuracy != pytest.approx(overall.candidate_accuracy)
    assert (overall.worse, overall.better) == (
        int((production_right & ~candidate_right).sum()),
        int((candidate_right & ~production_right).sum()),
    )


def test_gate_errors_are_user_errors(tabular_project: Path, capsys):
    config = _config(tabular_project)
    assert main(["gate", str(config), "-q"]) == 2  # no policy: nothing to gate
    assert "nothing to gate" in capsys.readouterr().err
    other = tabular_project.parent / "not-a-run"
    other.mkdir()
    config = _config(tabular_project, {"baseline": {"run": str(other)}})
    assert main(["run", str(config), "-q", "--out", str(tabular_project.parent / "x")]) == 2
    assert "policy.baseline.run" in capsys.readouterr().err


def test_baseline_on_other_samples_is_refused(tabular_project: Path, capsys):
    production = tabular_project.parent / "production"
    run(_config(tabular_project), production)
    test = tabular_project.parent / "test.csv"
    lines = test.read_text().splitlines()
    test.write_text("\n".join([lines[0], *[line.replace("test-", "new-", 1) for line in lines[1:]]]) + "\n")
    config = _config(tabular_project, {"baseline": {"run": str(production)}})
    assert main(["run", str(config), "-q", "--out", str(tabular_project.parent / "x")]) == 2
    assert "same test split" in capsys.readouterr().err


def test_selection_takes_the_fastest_passing_variant(tabular_project: Path):
    pytest.importorskip("onnxruntime")
    data = yaml.safe_load(tabular_project.read_text())
    data["optimize"] = {"recipes": ["onnx-fp32"], "tolerance": {"max_accuracy_drop": 0.5, "min_agreement": 0.5}}
    tabular_project.write_text(yaml.safe_dump(data, sort_keys=False))
    config = _config(tabular_project, {"checks": ["quality.accuracy >= 0"]})
    result = run(config)
    verdict = result.verdict
    # onnx-fp32 is a candidate unless the timing found it no faster than the source (then it is never selected)
    candidates = {v.name for v in result.variants if v.status == "accepted"}
    assert candidates in ({"source", "onnx-fp32"}, {"source"})
    for s in verdict.selections:
        latency = {
            e.variant: min(f.latency, key=lambda x: x.batch_size).p50_ms
            for e in result.evaluations
            for f in e.efficiency
            if f.target == s.target and e.variant in candidates
        }
        assert s.variant == min(latency, key=latency.get)
        assert set(s.passing) == candidates


def test_model_card_round_trips_through_huggingface_hub(tabular_project: Path):
    from huggingface_hub import ModelCard

    out = tabular_project.parent / "run"
    result = run(_config(tabular_project, {"checks": ["quality.accuracy >= 0"]}), out)
    card = ModelCard.load(out / "model_card.md")
    accuracy = [r for r in card.data.eval_results if r.metric_type == "accuracy"]
    # the one variant's accuracy, as scikit-learn computes it from the saved weights' predictions
    assert [r.metric_value for r in accuracy] == [pytest.approx(_accuracy(tabular_project, "tiny.safetensors"))]
    assert [r.metric_value for r in accuracy] == [e.quality.accuracy for e in result.evaluations]
    # the RMF map is the run's, and records the policy and the verdict of this gate
    from deployable.report.rmf import rmf_map

    rmf = (out / "rmf.md").read_text()
    assert rmf == rmf_map(RunResult.load(out))
    (selection,) = result.verdict.selections
    assert selection.target == "tiny-box" and selection.variant == "source"
    assert "Gate verdict: **PASS**; `tiny-box` → `source` |" in rmf
    policy = "Release policy: 1 checks (`quality.accuracy >= 0` (critical)) evaluated 1 times on 1 variant: 1 PASS"
    assert f"{policy} |" in rmf


def test_a_model_baseline_gives_relative_checks_its_metrics(tabular_project: Path):
    """The baseline is another model (random weights, 4x larger: overconfident); its metrics in the relative checks
    are its own, computed here from its predictions, not the candidate's."""
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(7)
    state = {k: 2 * torch.randn(v.shape, generator=generator) for k, v in tiny_reference().state_dict().items()}
    save_file(state, str(tabular_project.parent / "v1.safetensors"))
    base = {"type": "pytorch", "factory": "tinymodel:build", "weights": "v1.safetensors"}
    policy = {
        "baseline": {"model": base, "name": "v1"},
        "checks": [
            {"metric": "quality.accuracy", "op": ">=", "value": 0.0, "relative": True},
            {"metric": "calibration.ece", "op": "<=", "value": 0.0, "relative": True},
            {"metric": "efficiency.tiny-box.latency_ms.p95", "op": "<=", "value": 0.0, "relative": True},
        ],
    }
    verdict = run(_config(tabular_project, policy)).verdict
    accuracy, ece, latency = verdict.checks[:3]
    expected = {
        "accuracy": (_accuracy(tabular_project, "tiny.safetensors"), _accuracy(tabular_project, "v1.safetensors")),
        "ece": (_ece(tabular_project, "tiny.safetensors"), _ece(tabular_project, "v1.safetensors")),
    }
    for check, (value, baseline_value) in ((accuracy, expected["accuracy"]), (ece, expected["ece"])):
        assert (check.value, check.baseline_value) == (pytest.approx(value), pytest.approx(baseline_value))
        assert abs(value - baseline_value) > 0.05, check.name  # the test has power: the two models differ
        assert check.details["difference"] == pytest.approx(value - baseline_value)
    # the candidate is more accurate and better calibrated than v1, so both relative checks pass
    assert accuracy.status == ece.status == "PASS"
    assert latency.status == "SKIPPED"  # the baseline's efficiency is not measured
    assert verdict.baseline == "v1" and verdict.status == "PASS"
    with pytest.raises(Exception, match=r"policy\.baseline\.model"):
        run(_config(tabular_project, {"baseline": {"model": {"type": "pytorch"}}}))
