"""The single-pass runner and the PredictionStore: one forward pass per (model, sample), reused everywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import Counting
from deployable.config import load_config
from deployable.core.records import Efficiency, Evaluation, Target
from deployable.data import load_dataset
from deployable.evaluation.batching import batch_plan
from deployable.evaluation.metrics import calibration_metrics, quality_metrics, softmax
from deployable.evaluation.predict import predict
from deployable.evaluation.runner import evaluate_variant
from deployable.evaluation.store import PredictionStore, prediction_key
from deployable.evaluation.targets import latency_stats, measure_efficiency
from deployable.models import load_predictor, source_variant
from deployable.models.sources import model_spec


@pytest.fixture
def setup(tabular_project: Path):
    project = load_config(tabular_project)
    dataset = load_dataset(project)
    predictor = load_predictor(model_spec(project))
    return project, dataset, predictor


def test_one_forward_pass_per_sample_then_store_hits(setup, tmp_path: Path) -> None:
    _project, dataset, predictor = setup
    store = PredictionStore(tmp_path / "store")
    counting = Counting(predictor)
    first = predict(counting, dataset.split("test"), store, batch_size=7)
    assert counting.samples == len(dataset.split("test")) and not first.cached
    again = predict(counting, dataset.split("test"), store, batch_size=7)
    assert counting.samples == len(dataset.split("test")) and again.cached
    np.testing.assert_array_equal(first.logits, again.logits)
    np.testing.assert_array_equal(again.ids, dataset.split("test").ids)
    # logits are in sample order whatever the batching
    direct = predictor.forward(dataset.split("test").inputs).logits
    np.testing.assert_allclose(first.logits, direct, rtol=1e-5, atol=1e-6)


def test_evaluation_reads_only_the_store(setup, tmp_path: Path) -> None:
    project, dataset, predictor = setup
    store = PredictionStore(tmp_path / "store")
    counting = Counting(predictor)
    variant = source_variant(predictor)
    # attacks query the model live (tested in test_adversarial.py); everything else reads the store
    cfg = project.evaluate.model_copy(
        update={"adversarial": project.evaluate.adversarial.model_copy(update={"enabled": False})}
    )
    ev = evaluate_variant(variant, counting, dataset, cfg, store)
    # test, validation (temperature), the synthetic OOD set, train (Mahalanobis fit) and every corrupted copy of the
    # test split (3 tabular corruptions x 5 severities): each sample once
    n_test = len(dataset.split("test"))
    n_needed = (
        sum(len(dataset.split(s)) for s in ("test", "validation", "train"))
        + project.evaluate.ood.n_synthetic
        + 3 * 5 * n_test
    )
    assert counting.samples == n_needed
    ev2 = evaluate_variant(variant, counting, dataset, cfg, store)
    assert counting.samples == n_needed, "a second evaluation must not run the model again"
    # records compare through JSON: empty reliability bins hold NaN, which never equals itself
    assert ev2.to_dict() == ev.to_dict()
    assert Evaluation.from_json(ev.to_json()).to_dict() == ev.to_dict()

    # every metric equals the same metric computed from the stored logits
    test = dataset.split("test")
    logits = store.get(ev.store_key).logits
    assert (
        ev.quality.to_dict()
        == quality_metrics(test.labels, softmax(logits), label_names=list(dataset.label_names)).to_dict()
    )
    val_logits = store.get(prediction_key(predictor.fingerprint, dataset.split("validation").fingerprint)).logits
    expected = calibration_metrics(
        test.labels, logits, calib_true=dataset.split("validation").labels, calib_logits=val_logits, n_bins=15
    )
    assert ev.calibration.to_dict() == expected.to_dict()
    assert {(s.column, s.value) for s in ev.slices} == {
        ("region", "north"),
        ("region", "south"),
        ("f0_level", "low"),
        ("f0_level", "high"),
    }


def test_changed_data_is_a_new_key(setup, tmp_path: Path) -> None:
    _project, dataset, predictor = setup
    test = dataset.split("test")
    k1 = prediction_key(predictor.fingerprint, test.fingerprint)
    k2 = prediction_key(predictor.fingerprint, test.fingerprint, {"name": "gaussian-noise", "severity": 1})
    assert k1 != k2
    from deployable.data.dataset import Split

    other = Split("test", test.inputs + 1, test.labels, test.ids, test.slices, test.source)
    assert other.fingerprint != test.fingerprint


def test_damaged_store_entry_is_recomputed(setup, tmp_path: Path) -> None:
    _project, dataset, predictor = setup
    store = PredictionStore(tmp_path / "store")
    first = predict(predictor, dataset.split("test"), store, batch_size=8)
    path = next((tmp_path / "store").rglob("*.npz"))
    path.write_bytes(b"garbage")
    counting = Counting(predictor)
    again = predict(counting, dataset.split("test"), store, batch_size=8)
    assert counting.samples == len(dataset.split("test")) and not again.cached
    np.testing.assert_allclose(again.logits, first.logits)


def test_text_batches_group_by_length() -> None:
    texts = ["a" * n for n in [5, 50, 1, 30, 2, 40]]
    plan = batch_plan(texts, 2)
    assert [sorted(len(texts[i]) for i in b) for b in plan] == [[40, 50], [5, 30], [1, 2]]
    assert sorted(np.concatenate(plan).tolist()) == list(range(6))
    assert [b.tolist() for b in batch_plan(np.zeros((5, 2)), 2)] == [[0, 1], [2, 3], [4]]


def test_latency_stats_against_numpy() -> None:
    rng = np.random.default_rng(0)
    times = rng.gamma(2.0, 0.005, size=400)
    s = latency_stats(times, batch_size=8, price_per_hour=0.36)
    ms = times * 1000
    assert s.p50_ms == pytest.approx(np.median(ms))
    assert s.p95_ms == pytest.approx(np.percentile(ms, 95))
    assert s.p99_ms == pytest.approx(np.percentile(ms, 99))
    assert s.throughput_per_s == pytest.approx(8 / times.mean())
    # 0.36 $/h = 0.0001 $/s; a million predictions take 1e6 / throughput seconds
    assert s.cost_per_million == pytest.approx(0.0001 * 1e6 / s.throughput_per_s)
    assert latency_stats(times, 1, None).cost_per_million is None


def test_efficiency_in_a_child_process(setup) -> None:
    project, dataset, predictor = setup
    variant = source_variant(predictor)
    target = Target(name="box", threads=1, batch_sizes=(1, 4), memory_budget_mb=4096, price_per_hour=0.1)
    eff = measure_efficiency(variant, target, dataset.split("test"), project.evaluate.efficiency)
    assert isinstance(eff, Efficiency) and Efficiency.from_json(eff.to_json()) == eff
    assert [lat.batch_size for lat in eff.latency] == [1, 4]
    assert all(lat.repetitions >= 5 and 0 < lat.p50_ms <= lat.p95_ms <= lat.p99_ms for lat in eff.latency)
    assert eff.peak_memory_mb > 10 and eff.load_time_s > 0 and eff.within_memory_budget is True
    assert eff.file_size_mb == pytest.approx(variant.size_bytes / 2**20)
    tight = Target(name="tiny", threads=1, batch_sizes=(1,), memory_budget_mb=1)
    assert (
        measure_efficiency(variant, tight, dataset.split("test"), project.evaluate.efficiency).within_memory_budget
        is False
    )
