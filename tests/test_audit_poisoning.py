"""Backdoor detectors: a real trigger-patch backdoor planted in the digits CNN is found; a clean model is not flagged.

The acceptance test poisons 5% of the non-target training images (a 3x3 patch at full intensity in the bottom
right corner, relabelled to class 0), trains the example's CNN on them, checks that the backdoor works, and runs
``find_poisoning`` on the penultimate features (the input of the last Linear layer). Print the measured numbers with
``.venv/bin/pytest tests/test_audit_poisoning.py -s -k measured``.

Both detectors are also compared with the Adversarial Robustness Toolbox's own defences
(``SpectralSignatureDefense``, ``ActivationDefence``), run on the same features after an independent whitening.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import linalg
from sklearn.covariance import LedoitWolf
from sklearn.metrics import silhouette_score

from deployable.audit.poisoning import AC_MIN_SILHOUETTE, _two_means_1d, find_poisoning
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
# Against ART's defences on the same features
# ---------------------------------------------------------------------------------------------------------------------


class _Features:
    """All ART's poison defences ask of a classifier: ``nb_classes``, ``layer_names`` and ``get_activations`` of the
    last layer (``len(layer_names) - 1``). It hands the inputs back, so ART analyses exactly the given features."""

    layer_names = ("features",)

    def __init__(self, nb_classes: int) -> None:
        self.nb_classes = nb_classes

    def get_activations(self, x: np.ndarray, layer: int, batch_size: int = 128, framework: bool = False) -> np.ndarray:
        assert layer == 0
        return np.asarray(x)


def _whitened_by_other_classes(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each class's centred features whitened by the other classes' pooled within-class covariance, written apart.

    As poisoning.py documents: constant dimensions dropped, residuals of the other classes' samples around their own
    class means, Ledoit-Wolf covariance of those (assumed centred). Whitened here by the symmetric inverse square root
    (``scipy.linalg.sqrtm``) where the project uses the eigenvector basis: the two differ by a rotation, which changes
    neither the projections on the top singular vector nor PCA + 2-means.
    """
    x = np.asarray(x, dtype=np.float64)  # the project computes in float64 too (CNN features are float32)
    x = x[:, x.std(axis=0) > 0]
    out = np.empty_like(x)
    for c in np.unique(labels):
        other = labels != c
        frame = pd.DataFrame(x[other])
        resid = (frame - frame.groupby(labels[other]).transform("mean")).to_numpy()
        cov = LedoitWolf(assume_centered=True).fit(resid).covariance_
        inv_sqrt = np.real(linalg.inv(linalg.sqrtm(cov)))
        own = x[labels == c]
        out[labels == c] = (own - own.mean(axis=0)) @ inv_sqrt
    return out


def _art_spectral_signature(features: np.ndarray, labels: np.ndarray, expected_fraction: float) -> dict[int, float]:
    """ART's flagged samples with their scores |v . x_i| (computed on uncentred rows: ours are centred already)."""
    from art.defences.detector.poison import SpectralSignatureDefense

    # ART's default eps_multiplier is Tran et al.'s 1.5, the project's EPS_MULTIPLIER
    defence = SpectralSignatureDefense(
        _Features(int(labels.max()) + 1), features, labels, expected_pp_poison=expected_fraction
    )
    report, is_clean = defence.detect_poison()
    assert set(report) == set(np.flatnonzero(np.asarray(is_clean) == 0).tolist())
    return {int(i): float(v) for i, v in report.items()}


def _art_activation_clusters(features: np.ndarray, labels: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per class, ART's 2-means labels and the 10-D PCA coordinates they were found in."""
    from art.defences.detector.poison import ActivationDefence

    state = np.random.get_state()
    np.random.seed(0)  # ART's KMeans draws its initial centres from numpy's global generator
    try:
        defence = ActivationDefence(_Features(int(labels.max()) + 1), features, labels)
        defence.detect_poison(nb_clusters=2, nb_dims=10, reduce="PCA", cluster_analysis="smaller")
    finally:
        np.random.set_state(state)
    return list(zip(defence.clusters_by_class, defence.red_activations_by_class, strict=True))


def _n_flagged_by_art(n: int, expected_fraction: float) -> int:
    """ART keeps ``score < np.quantile(score, 1 - m)``, m = 1.5 epsilon: 1 + floor(m (n - 1)) flagged, against the
    project's ceil(m n); the two differ by one when an integer lies strictly between m (n - 1) and m n."""
    return 1 + math.floor(1.5 * expected_fraction * (n - 1))


def _compare_with_art(
    x: np.ndarray, labels: np.ndarray, cfg: PoisoningConfig, names: tuple[str, ...]
) -> dict[tuple[str, str], set[str]]:
    """Run the project and ART on the same (independently whitened) features, assert that they agree class by class,
    and return the project's findings as {(code, class): evidence}."""
    from art.defences.detector.poison import SpectralSignatureDefense

    n = len(labels)
    out = find_poisoning(_split(labels), x, cfg, label_names=names)
    white = _whitened_by_other_classes(x, labels)
    art_flags = _art_spectral_signature(white, labels, cfg.expected_fraction)
    clusters = _art_activation_clusters(white, labels)
    ids = np.array([f"train:s{i}" for i in range(n)])
    evidence = {(f.code, f.details["class"]): set(f.evidence) for f in out.findings}
    for c, name in enumerate(names):
        rows = np.flatnonzero(labels == c)
        stats = out.details["per_class"][name]
        # Spectral signature: the same scores (ART's |v . x| squared), the same flagged samples.
        ss = stats["spectral_signature"]
        flagged = [i for i in art_flags if labels[i] == c]
        ranked = sorted(flagged, key=lambda i: -art_flags[i])
        assert len(flagged) == _n_flagged_by_art(len(rows), cfg.expected_fraction)
        assert ss["n_flagged"] == math.ceil(1.5 * cfg.expected_fraction * len(rows))
        top = [art_flags[i] ** 2 for i in ranked[:10]]
        assert len(ss["top_scores"]) == min(10, ss["n_flagged"])
        np.testing.assert_allclose(ss["top_scores"][: len(top)], top, rtol=1e-6, err_msg=f"class {name}")
        all_scores = SpectralSignatureDefense.spectral_signature_scores(white[rows])[:, 0]
        assert ss["median_score"] == pytest.approx(float(np.median(all_scores**2)), rel=1e-6)
        if ("spectral-signature", name) in evidence:
            ours = evidence[("spectral-signature", name)]
            assert set(ids[ranked]) <= ours and len(ours) - len(ranked) in (0, 1), name
        # Activation clustering: ART's smaller cluster and its silhouette, under the project's reporting rule (the
        # paper's size rule, 35% as in ART's silhouette analysis, and the silhouette threshold calibrated on digits).
        assign, reduced = clusters[c]
        sizes = np.bincount(assign, minlength=2)
        small = int(np.argmin(sizes))
        silhouette = silhouette_score(reduced, assign)
        reported = sizes[small] / len(rows) <= 0.35 and silhouette >= AC_MIN_SILHOUETTE
        assert reported == (("activation-cluster", name) in evidence), (name, sizes, silhouette)
        if reported:
            assert evidence[("activation-cluster", name)] == set(ids[rows[assign == small]]), name
            ac = stats["activation_clustering"]
            assert ac["sizes"] == sorted(sizes.tolist(), reverse=True)
            assert ac["silhouette"] == pytest.approx(silhouette, abs=1e-6)
    return evidence


def _shared_nuisance(rng: np.random.Generator, n_per_class: int = 150, d: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Five classes sharing one strong nuisance direction (sd 5, like stroke width): larger than any trigger."""
    x, labels = _gaussian_classes(rng, n_per_class, d)
    u = rng.normal(size=d)
    return x + 5.0 * rng.normal(size=(len(labels), 1)) * (u / np.linalg.norm(u)), labels


def test_detectors_flag_what_arts_defences_flag_on_the_same_whitened_features() -> None:
    rng = np.random.default_rng(3)
    x, labels = _shared_nuisance(rng)
    planted = np.flatnonzero(labels == 2)[:30]  # 20% of class 2, shifted by 4 along a direction no class varies in
    x[planted] += 4.0 * np.eye(x.shape[1])[3]
    cfg = PoisoningConfig()
    evidence = _compare_with_art(x, labels, cfg, NAMES[:5])
    truth = {f"train:s{i}" for i in planted}
    assert sorted(evidence) == [("activation-cluster", "2"), ("spectral-signature", "2")]
    assert evidence[("activation-cluster", "2")] == truth
    assert evidence[("spectral-signature", "2")] <= truth and len(evidence[("spectral-signature", "2")]) == 12

    # ART on the raw features: the class's top singular direction is the shared nuisance, so its spectral
    # signature flags the extremes of that direction, not the planted samples, and 2-means splits along it.
    # This is the difference the project's whitening makes.
    raw_flags = [i for i in _art_spectral_signature(x, labels, cfg.expected_fraction) if labels[i] == 2]
    assert len(raw_flags) == 12 and len(set(raw_flags) & set(planted)) <= 6
    assign, _ = _art_activation_clusters(x, labels)[2]
    small = np.flatnonzero(labels == 2)[assign == np.argmin(np.bincount(assign))]
    assert len(small) > 45 and len(set(small) & set(planted)) < 0.5 * len(small)


def test_clean_classes_agree_with_art_and_flag_counts_follow_each_rule() -> None:
    # Class sizes where the two flag-count rules agree (150: 12 and 12) and differ (134: ceil(10.05) = 11 against
    # 1 + floor(9.975) = 10), no planted samples.
    rng = np.random.default_rng(4)
    x, labels = _shared_nuisance(rng)
    keep = np.ones(len(labels), bool)
    keep[np.flatnonzero(labels == 1)[:16]] = False
    x, labels = x[keep], labels[keep]
    assert _n_flagged_by_art(150, 0.05) == math.ceil(0.075 * 150) == 12
    assert (_n_flagged_by_art(134, 0.05), math.ceil(0.075 * 134)) == (10, 11)
    evidence = _compare_with_art(x, labels, PoisoningConfig(), NAMES[:5])
    assert evidence == {}


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


def test_backdoor_in_digits_cnn_agrees_with_art_measured(backdoor: dict) -> None:
    """The real backdoor: the project and ART's defences on the same whitened penultimate features agree class by
    class; ART's activation clustering on the raw features splits the target class along natural variation instead
    (the difference the project's whitening makes)."""
    labels, x = backdoor["labels_poisoned"], backdoor["features_poisoned"]
    evidence = _compare_with_art(x, labels, PoisoningConfig(), NAMES)
    assert {c for _, c in evidence} == {str(TARGET)}
    poisoned = set(np.flatnonzero(np.isin(backdoor["ids"], [i.split(":", 1)[1] for i in backdoor["poisoned"]])))
    rows = np.flatnonzero(labels == TARGET)
    assign, _ = _art_activation_clusters(x, labels)[TARGET]
    raw_small = set(rows[assign == np.argmin(np.bincount(assign))].tolist())
    ours = {int(e[len("train:s") :]) for e in evidence[("activation-cluster", str(TARGET))]}
    measured = (
        f"target class: {len(rows)} samples, {len(poisoned)} poisoned; smaller 2-means cluster: project (= ART on "
        f"whitened features) {len(ours)} samples, {len(ours & poisoned)} poisoned; ART on raw features "
        f"{len(raw_small)}, {len(raw_small & poisoned)} poisoned"
    )
    print(measured)
    assert len(ours & poisoned) >= 0.9 * len(ours), measured
    assert len(raw_small & poisoned) < 0.5 * len(raw_small), measured

    clean = _compare_with_art(backdoor["features_clean"], backdoor["labels_clean"], PoisoningConfig(), NAMES)
    assert clean == {}
