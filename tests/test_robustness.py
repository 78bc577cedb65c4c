"""Corruption robustness through the evaluation runner: metrics from stored predictions, each corrupted batch once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import Counting
from deployable.config import load_config
from deployable.core.errors import ConfigError
from deployable.core.records import Evaluation, RobustnessMetrics
from deployable.data import load_dataset
from deployable.evaluation.metrics import softmax
from deployable.evaluation.metrics.calibration import expected_calibration_error
from deployable.evaluation.perturb import corrupt
from deployable.evaluation.runner import evaluate_variant
from deployable.evaluation.store import PredictionStore
from deployable.models import load_predictor, source_variant
from deployable.models.sources import model_spec


def _setup(config: Path, **robustness):
    import yaml

    data = yaml.safe_load(config.read_text())
    data.setdefault("evaluate", {})["robustness"] = robustness
    data["evaluate"]["ood"] = {"enabled": False}
    data["evaluate"]["adversarial"] = {"enabled": False}
    data["targets"] = []
    project = load_config(data, base_dir=config.parent)
    return project, load_dataset(project), load_predictor(model_spec(project))


def test_metrics_equal_a_direct_computation(tabular_project: Path, tmp_path: Path) -> None:
    project, dataset, predictor = _setup(tabular_project, max_samples=30, severities=[1, 3, 5], seed=4)
    ev = evaluate_variant(source_variant(predictor), predictor, dataset, project.evaluate, PredictionStore(tmp_path))
    rob = ev.robustness
    assert isinstance(rob, RobustnessMetrics) and rob.modality == "tabular" and rob.n == 30
    assert [(r.name, r.severity) for r in rob.results] == [
        (name, s) for name in ("feature_noise", "missing", "category_flip") for s in (1, 3, 5)
    ]
    # the same seeded sample, corrupted by hand and run directly
    test = dataset.split("test")
    index = np.sort(np.random.default_rng([4, 17]).choice(len(test), size=30, replace=False))
    x, y = test.inputs[index], test.labels[index]
    clean = predictor.forward(x).logits
    reference = dataset.split("train").inputs
    for r in rob.results:
        logits = predictor.forward(corrupt(x, "tabular", r.name, r.severity, seed=4, reference=reference)).logits
        assert r.accuracy == pytest.approx((logits.argmax(1) == y).mean())
        assert r.flip_rate == pytest.approx((logits.argmax(1) != clean.argmax(1)).mean())
        assert r.ece == pytest.approx(expected_calibration_error(y, softmax(logits)), abs=1e-6)
    assert rob.clean_accuracy == pytest.approx((clean.argmax(1) == y).mean())
    assert rob.mean_corruption_accuracy == pytest.approx(np.mean([r.accuracy for r in rob.results]))
    assert rob.relative_robustness == pytest.approx(rob.mean_corruption_accuracy / rob.clean_accuracy)
    assert RobustnessMetrics.from_json(rob.to_json()) == rob
    assert Evaluation.from_json(ev.to_json()).robustness == rob
    # features moved by 1 standard deviation change predictions more than by 0.1
    noise = {r.severity: r.flip_rate for r in rob.results if r.name == "feature_noise"}
    assert noise[5] > noise[1]


def test_each_corrupted_copy_runs_once(tabular_project: Path, tmp_path: Path) -> None:
    project, dataset, predictor = _setup(tabular_project, corruptions=["feature_noise"], severities=[2, 4])
    counting = Counting(predictor)
    store = PredictionStore(tmp_path)
    variant = source_variant(predictor)
    first = evaluate_variant(variant, counting, dataset, project.evaluate, store)
    n = len(dataset.split("test"))
    assert counting.samples == n + len(dataset.split("validation")) + 2 * n
    again = evaluate_variant(variant, counting, dataset, project.evaluate, store)
    assert counting.samples == n + len(dataset.split("validation")) + 2 * n, "a rerun must not predict again"
    assert again.robustness == first.robustness
    # a new seed is a new perturbation: predicted again, once
    project2, _, _ = _setup(tabular_project, corruptions=["feature_noise"], severities=[2, 4], seed=1)
    evaluate_variant(variant, counting, dataset, project2.evaluate, store)
    assert counting.samples == n + len(dataset.split("validation")) + 4 * n


def test_unknown_corruption_is_a_config_error(tabular_project: Path, tmp_path: Path) -> None:
    project, dataset, predictor = _setup(tabular_project, corruptions=["feature_nosie"])
    with pytest.raises(
        ConfigError, match=r"evaluate.robustness.corruptions: unknown tabular corruption 'feature_nosie'"
    ):
        evaluate_variant(source_variant(predictor), predictor, dataset, project.evaluate, PredictionStore(tmp_path))


@pytest.mark.parametrize("severities", [[], [0], [6], [1, 1]])
def test_bad_severities_are_refused(tabular_project: Path, severities: list) -> None:
    with pytest.raises(ConfigError, match="severities"):
        _setup(tabular_project, severities=severities)


def test_a_variant_less_robust_than_its_source_is_flagged() -> None:
    from types import SimpleNamespace

    from deployable.core.records import CorruptionResult
    from deployable.report.html import _robustness_view

    def record(accuracies: list[float]) -> RobustnessMetrics:
        results = tuple(CorruptionResult("blur", s, a, 0.1, 0.05) for s, a in zip((1, 3, 5), accuracies, strict=True))
        mca = float(np.mean(accuracies))
        return RobustnessMetrics("image", 100, 0, 0.9, 0.03, mca, mca / 0.9, 0.1, results)

    source = record([0.88, 0.8, 0.7])
    worse = _robustness_view(SimpleNamespace(robustness=record([0.85, 0.7, 0.5])), source)
    assert worse["less_robust"] and worse["delta"] == pytest.approx(-0.11)
    same = _robustness_view(SimpleNamespace(robustness=record([0.88, 0.79, 0.7])), source)
    assert not same["less_robust"]  # within one point
    assert _robustness_view(SimpleNamespace(robustness=source), None)["delta"] is None
