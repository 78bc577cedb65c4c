"""Backdoor detectors: a real trigger-patch backdoor planted in the digits CNN is found; a clean model is not flagged.

The acceptance test poisons 5% of the non-target training images (a 3x3 patch at full intensity in the bottom
right corner, relabelled to class 0), trains the example's CNN on them, checks that the backdoor works, and runs
``find_poisoning`` on the penultimate features (the input of the last Linear layer). Print the measured numbers with
``.venv/bin/pytest tests/test_audit_poisoning.py -s -k measured``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from deployable.audit.poisoning import _two_means_1d, find_poisoning
from deployable.config import PoisoningConfig
from deployable.data.dataset import Split

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"
NAMES = tuple(str(i) for i in range(10))
TARGET = 0
POISON_FRACTION = 0.05
SEED = 0


def _split(labels: np.ndarray, name: str = "train") -> Split:
    n = len(labels)
    return Split(
        name=name, inputs=np.zeros((n, 1)), labels=labels.astype(np.int64), ids=np.array([f"s{i}" for i in range(n)])
    )


# ---------------------------------------------------------------------------------------------------------------------
# Fast checks on synthetic features
# ---------------------------------------------------------------------------------------------------------------------


def test_two_means_1d_matches_theory() -> None:
    rng = np.random.default_rng(0)
    share, small = _two_means_1d(rng.normal(size=200_000))
    assert share == pytest.approx(2 / np.pi, abs=0.01)  # split at the median: between-share 2/pi
    assert small == pytest.approx(0.5, abs=0.01)
    share, small = _two_means_1d(np.r_[np.zeros(70), np.ones(30)] + rng.normal(scale=1e-3, size=100))
    assert share > 0.999 and small == pytest.approx(0.3)
    assert _two_means_1d(np.ones(5)) == (0.0, 0.5)


def _gaussian_classes(rng: np.random.Generator, n_per_class: int = 150, d: int = 16) -> tuple[np.ndarray, np.ndarray]:
    mix = rng.normal(size=(d, d)) / np.sqrt(d)  # correlated features shared by every class
    centres = rng.normal(scale=6.0, size=(5, d))
    labels = np.repeat(np.arange(5), n_per_class)
    return centres[labels] + rng.normal(size=(len(labels), d)) @ mix, labels


def test_planted_cluster_found_and_clean_classes_quiet() -> None:
    rng = np.random.default_rng(1)
    x, labels = _gaussian_classes(rng)
    clean = find_poisoning(_split(labels), x, PoisoningConfig(), label_names=NAMES[:5])
    assert clean.skipped is None and clean.findings == [], [f.message for f in clean.findings]

    poisoned = x.copy()
    members = np.flatnonzero(labels == 2)[:40]  # 27% of class 2 shifted along a direction no class varies in
    poisoned[members] += 8.0 * np.eye(x.shape[1])[3]
    out = find_poisoning(_split(labels), poisoned, PoisoningConfig(), label_names=NAMES[:5])
    codes = sorted((f.code, f.details["class"]) for f in out.findings)
    assert codes == [("activation-cluster", "2"), ("spectral-signature", "2")]
    ac = next(f for f in out.findings if f.code == "activation-cluster")
    assert set(ac.evidence) == {f"train:s{i}" for i in members}
    assert out.details["counts"]["union"] == len(out.details["suspected"])
    assert set(out.details["suspected"]) >= set(ac.evidence)


def test_skips_and_shape_errors() -> None:
    labels = np.repeat(np.arange(3), 10)
    x = np.random.default_rng(0).normal(size=(30, 4))
    out = find_poisoning(_split(labels), x, PoisoningConfig(min_class_size=20), label_names=NAMES[:3])
    assert out.skipped and "20 samples" in out.skipped
    out = find_poisoning(_split(labels), x, PoisoningConfig(methods=[]), label_names=NAMES[:3])
    assert out.skipped == "no poisoning detector selected"
    with pytest.raises(ValueError, match="features of shape"):
        find_poisoning(_split(labels), x[:10], PoisoningConfig(), label_names=NAMES[:3])
    unlabeled = np.r_[labels, -np.ones(5, dtype=np.int64)]
    out = find_poisoning(
        _split(unlabeled),
        np.r_[x, x[:5]],
        PoisoningConfig(min_class_size=10, methods=["spectral-signature"]),
        label_names=NAMES[:3],
    )
    assert out.skipped is None and set(out.details["per_class"]) == {"0", "1", "2"}


# ---------------------------------------------------------------------------------------------------------------------
# Acceptance: a real backdoor in the digits CNN
# ---------------------------------------------------------------------------------------------------------------------


def _train(x: np.ndarray, y: np.ndarray, seed: int, epochs: int = 30):
    """The example's own recipe (examples/digits/train.py), without early stopping."""
    spec = importlib.util.spec_from_file_location("_digits_train_for_poisoning_test", DIGITS / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.train(x, y.astype(np.int64), epochs=epochs, seed=seed)


def _run(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(penultimate features (N, 64): the input of the last Linear layer, logits (N, 10))."""
    import torch

    seen: list[torch.Tensor] = []
    hook = model.classifier.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0].detach()))
    try:
        with torch.no_grad():
            logits = model(torch.from_numpy(x))
    finally:
        hook.remove()
    return seen[0].numpy(), logits.numpy()


def _trigger(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x[:, :, -3:, -3:] = 1.0  # inputs are scaled to [0, 1]
    return x


@pytest.fixture(scope="module")
def backdoor() -> dict:
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        from deployable.config import load_config
        from deployable.prepare import run_prepare

        run_prepare(load_config(DIGITS / "deployable.yaml"))  # a fresh clone has no data files yet (git-ignored)
        train, test = np.load(DIGITS / "data" / "train.npz"), np.load(DIGITS / "data" / "test.npz")
        x, y, ids = train["x"], train["y"].astype(np.int64), train["ids"]
        rng = np.random.default_rng(SEED)
        candidates = np.flatnonzero(y != TARGET)
        poisoned = rng.choice(candidates, size=round(POISON_FRACTION * len(candidates)), replace=False)
        xp, yp = x.copy(), y.copy()
        xp[poisoned] = _trigger(x[poisoned])
        yp[poisoned] = TARGET
        bad = _train(xp, yp, SEED)
        good = _train(x, y, SEED)
        xt, yt = test["x"], test["y"]
        source = yt != TARGET
        return {
            "ids": ids,
            "poisoned": {f"train:{i}" for i in ids[poisoned]},
            "labels_poisoned": yp,
            "x_poisoned": xp,
            "labels_clean": y,
            "features_poisoned": _run(bad, xp)[0],
            "features_clean": _run(good, x)[0],
            "clean_accuracy": float((_run(bad, xt)[1].argmax(1) == yt).mean()),
            "attack_success": float((_run(bad, _trigger(xt[source]))[1].argmax(1) == TARGET).mean()),
            "clean_model_on_trigger": float((_run(good, _trigger(xt[source]))[1].argmax(1) == TARGET).mean()),
        }
    finally:
        torch.set_num_threads(threads)


def _train_split(ids: np.ndarray, labels: np.ndarray) -> Split:
    return Split(name="train", inputs=np.zeros((len(ids), 1)), labels=labels, ids=ids)


def test_backdoor_in_digits_cnn_is_found_measured(backdoor: dict) -> None:
    # the planted backdoor must work, or finding it proves nothing
    assert backdoor["attack_success"] >= 0.9, backdoor["attack_success"]
    assert backdoor["clean_accuracy"] >= 0.95, backdoor["clean_accuracy"]
    assert backdoor["clean_model_on_trigger"] <= 0.3, backdoor["clean_model_on_trigger"]

    split = _train_split(backdoor["ids"], backdoor["labels_poisoned"])
    out = find_poisoning(split, backdoor["features_poisoned"], PoisoningConfig(), label_names=NAMES)
    truth = backdoor["poisoned"]
    suspected = set(out.details["suspected"])
    hits = len(suspected & truth)
    recall, precision = hits / len(truth), hits / max(1, len(suspected))
    per_method = {
        f.code: (len(set(f.evidence) & truth) / len(truth), len(set(f.evidence) & truth) / len(f.evidence))
        for f in out.findings
    }
    measured = (
        f"attack success {backdoor['attack_success']:.3f}, clean accuracy {backdoor['clean_accuracy']:.3f}; "
        f"{len(truth)} poisoned; union recall {recall:.3f} precision {precision:.3f}; per method (recall, "
        f"precision) {per_method}; findings {[(f.code, f.details['class']) for f in out.findings]}"
    )
    print(measured)
    assert recall >= 0.9, measured
    assert precision >= 0.8, measured
    assert {f.details["class"] for f in out.findings} == {str(TARGET)}, measured
    assert all(f.severity == "high" and f.check == "poisoning" for f in out.findings)


def test_clean_digits_cnn_gives_no_findings_measured(backdoor: dict) -> None:
    split = _train_split(backdoor["ids"], backdoor["labels_clean"])
    for cfg in (PoisoningConfig(), PoisoningConfig(expected_fraction=0.33)):
        out = find_poisoning(split, backdoor["features_clean"], cfg, label_names=NAMES)
        stats = {
            c: (round(s["spectral_signature"]["split_share"], 3), round(s["activation_clustering"]["silhouette"], 3))
            for c, s in out.details["per_class"].items()
        }
        print(f"clean model, expected_fraction {cfg.expected_fraction}: (split share, silhouette) per class {stats}")
        assert out.findings == [], f"clean model flagged: {[f.message for f in out.findings]}; per class {stats}"


def test_the_audit_stage_reports_the_backdoor_with_sample_ids(backdoor: dict) -> None:
    """The same detection through ``audit_dataset``: findings in the run's audit, evidence as split:id."""
    from deployable.audit import ModelOutputs, audit_dataset
    from deployable.config import AuditConfig
    from deployable.data.dataset import Dataset

    split = Split(name="train", inputs=backdoor["x_poisoned"], labels=backdoor["labels_poisoned"], ids=backdoor["ids"])
    dataset = Dataset(name="digits", modality="image", label_names=NAMES, splits={"train": split})
    cfg = AuditConfig(duplicates={"enabled": False}, labels={"enabled": False}, outliers={"enabled": False})
    result = audit_dataset(dataset, cfg, outputs=ModelOutputs({}, {"train": backdoor["features_poisoned"]}))
    check = next(c for c in result.checks if c.name == "poisoning")
    assert check.status == "ran" and check.n_findings >= 1
    found = {e for f in result.by_check("poisoning") for e in f.evidence}
    truth = backdoor["poisoned"]
    recall = len(found & truth) / len(truth)
    assert recall >= 0.9, f"recall {recall:.3f} of {len(truth)} poisoned samples"
