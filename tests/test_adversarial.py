"""Adversarial robustness: white-box attacks on a trained tiny model, transfer, the gradient-masking checks, and the
character-level text attack."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import yaml

from deployable.config import load_config
from deployable.core.records import AdversarialMetrics
from deployable.data import load_dataset
from deployable.evaluation.adversarial import text_attack
from deployable.evaluation.runner import evaluate_variant
from deployable.evaluation.store import PredictionStore
from deployable.models import load_predictor, source_variant
from deployable.models.base import ForwardOutput
from deployable.models.sources import model_spec

MASKED = """
import torch
from torch import nn
from tinymodel import Tiny


class Masked(Tiny):
    def forward(self, x):
        # rounding has zero gradient almost everywhere: a textbook case of gradient masking
        return super().forward(torch.round(x * 4) / 4)


def build(**kw):
    torch.manual_seed(0)
    return Masked(**kw)
"""


def _trained(project_file: Path, factory: str = "tinymodel:build") -> Path:
    """Train the project's tiny model on its train split (a random one has nothing to attack) and save it."""
    import sys

    import torch
    from safetensors.torch import save_file

    folder = project_file.parent
    sys.path.insert(0, str(folder))
    try:
        import importlib

        module = importlib.reload(importlib.import_module(factory.split(":")[0]))
        model = module.build()
    finally:
        sys.path.remove(str(folder))
    data = yaml.safe_load(project_file.read_text())
    data["model"] = {"type": "pytorch", "factory": factory, "weights": "trained.safetensors"}
    data["evaluate"] = {
        **data.get("evaluate", {}),
        "ood": {"enabled": False},
        "robustness": {"enabled": False},
        "adversarial": {"max_samples": 40, "epsilons": [0.1, 0.5, 1.5, 4.0], "pgd_steps": 10},
    }
    data["targets"] = []
    project_file.write_text(yaml.safe_dump(data))
    save_file(model.state_dict(), str(folder / "trained.safetensors"))  # the config checks the file exists
    project = load_config(project_file)
    train = load_dataset(project).split("train")
    x, y = torch.tensor(np.asarray(train.inputs)), torch.tensor(train.labels)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    save_file(model.state_dict(), str(folder / "trained.safetensors"))
    return project_file


def _evaluate(project_file: Path, tmp_path: Path):
    project = load_config(project_file)
    dataset = load_dataset(project)
    predictor = load_predictor(model_spec(project))
    ev = evaluate_variant(
        source_variant(predictor), predictor, dataset, project.evaluate, PredictionStore(tmp_path / "store")
    )
    return project, dataset, predictor, ev


def test_white_box_attacks_drive_accuracy_to_zero(tabular_project: Path, tmp_path: Path) -> None:
    _, _, _, ev = _evaluate(_trained(tabular_project), tmp_path)
    adv = ev.adversarial
    assert isinstance(adv, AdversarialMetrics) and adv.n == 40 and adv.clean_accuracy > 0.8
    acc = {(r.attack, r.norm, r.epsilon): r.accuracy for r in adv.results}
    assert len(acc) == 2 * 2 * 4
    for norm in ("inf", "2"):
        assert acc[("pgd", norm, 4.0)] <= 0.05, "a large budget must break a tiny model"
        for eps in (0.1, 0.5, 1.5, 4.0):
            assert acc[("pgd", norm, eps)] <= acc[("fgsm", norm, eps)] + 1 / 40
    assert not adv.flagged, [c for c in adv.sanity if not c.passed]
    assert "white-box" in adv.threat_model and "FGSM and PGD" in adv.threat_model
    assert AdversarialMetrics.from_json(adv.to_json()) == adv
    for r in adv.results:  # success: correct when clean, wrong under attack; never above the clean accuracy
        assert 0 <= r.success_rate <= adv.clean_accuracy + 1e-12
        assert r.accuracy >= adv.clean_accuracy - r.success_rate - 1e-12


def test_a_rerun_attacks_nothing(tabular_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import deployable.evaluation.adversarial as adversarial

    project, dataset, predictor, first = _evaluate(_trained(tabular_project), tmp_path)

    def no_attack(*args: object, **kwargs: object) -> None:
        raise AssertionError("attacked again although every adversarial prediction is stored")

    monkeypatch.setattr(adversarial, "_white_box", no_attack)
    dataset = load_dataset(project)  # a new run: nothing kept in memory, only the store on disk
    again = evaluate_variant(
        source_variant(predictor), predictor, dataset, project.evaluate, PredictionStore(tmp_path / "store")
    )
    assert again.adversarial == first.adversarial


def test_gradient_masking_is_flagged(tabular_project: Path, tmp_path: Path) -> None:
    (tabular_project.parent / "masked.py").write_text(textwrap.dedent(MASKED))
    _, _, _, ev = _evaluate(_trained(tabular_project, "masked:build"), tmp_path)
    adv = ev.adversarial
    failed = [c.name for c in adv.sanity if not c.passed]
    assert adv.flagged and any("near zero" in name for name in failed), adv.sanity


def test_transfer_to_an_exported_variant(tabular_project: Path, tmp_path: Path) -> None:
    import deployable

    project_file = _trained(tabular_project)
    data = yaml.safe_load(project_file.read_text())
    data["optimize"] = {"recipes": ["onnx-fp32"], "tolerance": {"max_accuracy_drop": 1, "min_agreement": 0}}
    project_file.write_text(yaml.safe_dump(data))
    result = deployable.run(project_file)
    source, onnx = (e.adversarial for e in result.evaluations)
    assert onnx.source == "source" and "transferred to this variant from 'source'" in onnx.threat_model
    assert all(r.transferred for r in onnx.results) and onnx.sanity == ()
    # the export computes the same function: the transferred inputs fool it exactly as they fool the source
    for a, b in zip(source.results, onnx.results, strict=True):
        assert (a.attack, a.norm, a.epsilon) == (b.attack, b.norm, b.epsilon)
        assert b.accuracy == pytest.approx(a.accuracy, abs=1 / 40)


class KeywordModel:
    """A text classifier that says 'refund' when the word refund is present, else 'other'."""

    spec: ClassVar[dict] = {"type": "keyword"}
    files = ()
    label_names = ("other", "refund")
    fingerprint = "keyword-model"

    def forward(self, batch):
        hit = np.array([("refund" in t.lower().split()) for t in batch], dtype=np.float32)
        return ForwardOutput(np.stack([1 - 3 * hit, 3 * hit - 1], axis=1).astype(np.float32))

    def set_threads(self, n: int) -> None:
        pass


def test_text_attack_finds_the_decisive_word_within_budget() -> None:
    model = KeywordModel()
    rng = np.random.default_rng(0)
    states = text_attack(model, "please send my refund today", 1, budget=3, rng=rng)
    assert len(states) == 1, "one edit of the decisive word flips this model"
    assert "refund" not in states[0].split() and len(states[0]) in range(len("please send my refund today") - 1, 29)
    assert model.forward(states).logits.argmax(1)[0] == 0
    # a text the model already gets wrong, or that no edit can flip, uses the whole budget at most
    assert len(text_attack(model, "where is my parcel", 0, budget=2, rng=rng)) <= 2


def test_onnx_only_source_gets_a_black_box_score_based_attack(tabular_project: Path, tmp_path: Path) -> None:
    import deployable
    from deployable.optimize.export import export_onnx

    project_file = _trained(tabular_project)
    project = load_config(project_file)
    dataset = load_dataset(project)
    predictor = load_predictor(model_spec(project))
    spec = export_onnx(
        predictor, tabular_project.parent / "model.onnx", sample=dataset.split("train").inputs[:4], label_names=None
    )
    data = yaml.safe_load(project_file.read_text())
    data["model"] = {"type": "onnx", "path": Path(spec["path"]).name}
    data["evaluate"]["adversarial"] = {"max_samples": 30, "epsilons": [0.1, 4.0], "norms": ["inf"]}
    project_file.write_text(yaml.safe_dump(data))
    adv = deployable.run(project_file).evaluations[0].adversarial
    assert "black-box" in adv.threat_model and "SimBA" in adv.threat_model
    acc = {r.epsilon: r.accuracy for r in adv.results if r.attack == "simba"}
    assert set(acc) == {0.1, 4.0} and not any(r.transferred for r in adv.results)
    # only the model's probabilities are used, yet a large budget still breaks the tiny model
    assert acc[4.0] <= 0.2 < adv.clean_accuracy


def test_square_attack_breaks_an_image_model_through_its_scores() -> None:
    from deployable.config import AdversarialConfig
    from deployable.evaluation.adversarial import _black_box

    rng = np.random.default_rng(0)
    w = rng.normal(size=(64, 3)).astype(np.float32)

    class Linear:
        spec: ClassVar[dict] = {"type": "onnx"}

        def forward(self, batch):
            return ForwardOutput((np.asarray(batch).reshape(len(batch), -1) @ w).astype(np.float32))

    x = rng.random((24, 1, 8, 8)).astype(np.float32)
    y = (x.reshape(24, -1) @ w).argmax(1)
    cfg = AdversarialConfig(epsilons=[0.3], norms=["inf"])
    adv = _black_box(Linear(), x, y, 3, x, "image", cfg)[("square", "inf", 0.3)]
    assert adv.shape == x.shape and np.abs(adv - x).max() <= 0.3 * (x.max() - x.min()) + 1e-5
    assert (Linear().forward(adv).logits.argmax(1) == y).mean() < 0.3


# ---------------------------------------------------------------------------------------------------------------------
# The white-box budgets in input units, and ART run directly with them
# ---------------------------------------------------------------------------------------------------------------------

EPSILONS = (0.01, 0.02)
PGD_STEPS = 10


def _smooth_net(n_inputs: int, n_classes: int = 3):
    """Flatten, Linear, tanh, Linear: the input gradient has no zero coordinates (FGSM's sign moves every value)."""
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(n_inputs, 16), torch.nn.Tanh(), torch.nn.Linear(16, n_classes)
    ).eval()


def _predicted(module, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return module(torch.from_numpy(x)).argmax(1).numpy()


def _budgets(eps: float, reference: np.ndarray, modality: str) -> dict[str, np.ndarray | float]:
    """The documented budgets (config.AdversarialConfig.epsilons), computed here in float64: L-inf is eps times the
    value range of the reference inputs (images) or eps times each feature's standard deviation (tables); L2 is the
    L-inf budget (its mean over features, for tables) times sqrt(number of input values)."""
    ref = reference.astype(np.float64)
    per_value = eps * (ref.max() - ref.min()) if modality == "image" else eps * ref.std(axis=0)
    return {"inf": per_value, "2": float(np.mean(per_value) * np.sqrt(ref[0].size))}


def _art_direct(module, x, y, reference, modality, attack: str, norm: str, budget) -> np.ndarray:
    """ART's own FGSM / PGD with the absolute budget, PGD with Madry et al.'s step 2.5 * eps / steps."""
    import torch
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    classifier = PyTorchClassifier(
        model=module,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=tuple(x.shape[1:]),
        nb_classes=3,
        clip_values=(float(reference.min()), float(reference.max())) if modality == "image" else None,
        device_type="cpu",
    )
    order = np.inf if norm == "inf" else 2
    if attack == "fgsm":
        method = FastGradientMethod(classifier, norm=order, eps=budget, eps_step=budget, batch_size=64)
    else:
        method = ProjectedGradientDescent(
            classifier,
            norm=order,
            eps=budget,
            eps_step=budget * 2.5 / PGD_STEPS,
            max_iter=PGD_STEPS,
            batch_size=64,
            verbose=False,
            random_eps=False,
            num_random_init=0,
        )
    return method.generate(x, y=y).astype(np.float32)


def _check_budgets(module, x, reference, modality: str) -> None:
    from deployable.config import AdversarialConfig
    from deployable.evaluation.adversarial import _white_box

    y = _predicted(module, x)
    cfg = AdversarialConfig(epsilons=list(EPSILONS), norms=["inf", "2"], pgd_steps=PGD_STEPS)
    out = _white_box(module, x, y, 3, reference, modality, cfg)
    assert set(out) == {(a, n, e) for a in ("fgsm", "pgd") for n in ("inf", "2") for e in EPSILONS}
    flat = x.reshape(len(x), -1).astype(np.float64)
    for eps in EPSILONS:
        budget = _budgets(eps, reference, modality)
        box = np.broadcast_to(np.reshape(budget["inf"], (1, -1)), flat.shape)  # per value (the same for images)
        for attack in ("fgsm", "pgd"):
            for norm in ("inf", "2"):
                adv = out[(attack, norm, eps)]
                assert adv.shape == x.shape and adv.dtype == np.float32
                delta = adv.reshape(len(x), -1).astype(np.float64) - flat
                where = f"{attack} L{norm} eps={eps} ({modality})"
                if norm == "inf":
                    # never beyond the box; FGSM moves every value by exactly its budget (sign of a non-zero
                    # gradient), PGD ends on the box's boundary in at least one value of every sample
                    ratio = np.abs(delta) / box
                    assert ratio.max() <= 1 + 1e-4, f"{where}: a value moved {ratio.max():.4g} times its budget"
                    if attack == "fgsm":
                        np.testing.assert_allclose(np.abs(delta), box, rtol=1e-4, err_msg=where)
                    else:
                        np.testing.assert_allclose(ratio.max(axis=1), 1.0, rtol=1e-4, err_msg=where)
                else:
                    # FGSM steps exactly the budget along the normalised gradient; PGD (2.5 budgets of travel)
                    # ends on the sphere
                    norms = np.linalg.norm(delta, axis=1)
                    np.testing.assert_allclose(norms, budget["2"], rtol=1e-4, err_msg=where)
                # ART's own attack with the same absolute budget and steps gives the same inputs
                direct = _art_direct(module, x, y, reference, modality, attack, norm, budget[norm])
                np.testing.assert_allclose(adv, direct, rtol=0, atol=1e-5, err_msg=where)


def test_white_box_budgets_are_shares_of_each_features_std_for_tables() -> None:
    rng = np.random.default_rng(0)
    scale = np.array([0.1, 1.0, 10.0, 100.0])  # spreads four orders apart: a budget on the wrong scale shows
    reference = (rng.normal(size=(200, 4)) * scale).astype(np.float32)
    x = (rng.normal(size=(30, 4)) * scale).astype(np.float32)
    _check_budgets(_smooth_net(4), x, reference, "tabular")


def test_white_box_budgets_are_shares_of_the_value_range_for_images() -> None:
    rng = np.random.default_rng(1)
    reference = rng.uniform(-1.0, 1.0, size=(50, 1, 8, 8)).astype(np.float32)
    reference[0, 0, 0, :2] = (-1.0, 1.0)  # the range is exactly 2, not 1: a budget taken as a plain share shows
    # Inside [-0.5, 0.5], so no budget here (at most 0.02 * 2 * sqrt(64) = 0.32) reaches the clip values [-1, 1].
    x = rng.uniform(-0.5, 0.5, size=(30, 1, 8, 8)).astype(np.float32)
    _check_budgets(_smooth_net(64), x, reference, "image")
