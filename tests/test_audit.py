"""The audit stage as a whole: leakage with and without the leaked samples, the run folder's audit section and
dataset card, the model-file guard in front of every load, and the `audit` and `scan` commands."""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import tiny_reference
from deployable.audit import ModelOutputs, audit_dataset
from deployable.cli import main
from deployable.config import AuditConfig, load_config
from deployable.core.records import AuditResult, RunResult
from deployable.data.dataset import Dataset, Split
from deployable.pipeline import run, scan_and_audit

QUICK = {
    "efficiency": {"enabled": False},
    "robustness": {"enabled": False},
    "adversarial": {"enabled": False},
    "ood": {"enabled": False},
}


def _texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    words = np.array(
        [
            "order",
            "refund",
            "card",
            "login",
            "parcel",
            "screen",
            "invoice",
            "password",
            "box",
            "colour",
            "size",
            "late",
            "broken",
        ]
    )
    return [" ".join(rng.choice(words, 9)) + f" ref {seed}-{i}" for i in range(n)]


def _text_dataset() -> Dataset:
    train = _texts(40, 1)
    test = _texts(20, 2)
    test[:4] = [t.upper() for t in train[:4]]  # 4 exact leaks (case only)
    labels_train = np.arange(40) % 2
    labels_test = np.arange(20) % 2
    labels_test[:4] = labels_train[:4]
    split = lambda name, x, y: Split(name, x, np.asarray(y, np.int64), np.array([f"{name}-{i}" for i in range(len(x))]))  # noqa: E731
    return Dataset(
        "t",
        "text",
        ("a", "b"),
        {"train": split("train", train, labels_train), "test": split("test", test, labels_test)},
    )


def test_leakage_accuracy_with_and_without_leaked_samples_matches_a_hand_count():
    ds = _text_dataset()
    test = ds.splits["test"]
    # the model is right on the 4 leaked samples and on 6 of the 16 others
    pred = 1 - test.labels
    pred[:4] = test.labels[:4]
    pred[4:10] = test.labels[4:10]
    logits = {
        "test": np.eye(2, dtype=np.float32)[pred] * 5,
        "train": np.eye(2, dtype=np.float32)[ds.splits["train"].labels],
    }
    cfg = AuditConfig(labels={"enabled": False}, outliers={"enabled": False}, poisoning={"enabled": False})
    result = audit_dataset(ds, cfg, outputs=ModelOutputs(logits, {}))
    (leak,) = [s for s in result.leakage if s.split == "test" and s.against == "train"]
    assert (leak.n_exact, leak.n_near, leak.n, leak.n_clean) == (4, 0, 20, 16)
    assert leak.rate == pytest.approx(4 / 20)
    assert leak.accuracy == pytest.approx(10 / 20)
    assert leak.accuracy_leaked == pytest.approx(1.0)
    assert leak.accuracy_clean == pytest.approx(6 / 16)
    inflated = [f for f in result.findings if f.code == "leak-inflates-score"]
    assert len(inflated) == 1 and inflated[0].severity == "high" and "37.5%" in inflated[0].message
    exact = [f for f in result.findings if f.check in ("duplicates", "leakage") and "test:test-0" in f.evidence]
    assert exact, [f.code for f in result.findings]
    # text findings show the offending samples beside their ids
    assert any(f.details.get("preview") for f in exact)
    assert AuditResult.from_json(result.to_json()) == result


def _quick_config(config: Path, **changes: object) -> Path:
    data = yaml.safe_load(config.read_text())
    data["evaluate"] = {**data.get("evaluate", {}), **QUICK}
    for key, value in changes.items():
        section, _, field = key.partition(".")
        data.setdefault(section, {})[field] = value
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


def test_run_writes_the_audit_section_and_a_dataset_card(tabular_project: Path):
    from huggingface_hub import DatasetCard

    config = _quick_config(tabular_project)
    out = tabular_project.parent / "run"
    result = run(config, out)
    a = result.audit
    assert a is not None
    assert [c.name for c in a.checks] == ["scan", "duplicates", "label_issues", "imbalance", "outliers", "poisoning"]
    assert a.scanned_files and all(Path(f).suffix == ".safetensors" for f in a.scanned_files)
    assert not a.by_check("scan")
    assert RunResult.load(out).audit == a
    card = DatasetCard.load(out / "dataset_card.md")
    assert card.data.task_categories == ["tabular-classification"]
    assert card.data.size_categories == ["n<1K"]
    text = (out / "dataset_card.md").read_text()
    for missing in ("data.card.license", "data.card.source", "data.card.description", "data.card.personal_data"):
        assert missing in text
    for split in result.dataset.splits:
        assert split.fingerprint in text
    html = (out / "report.html").read_text()
    assert 'id="audit"' in html and "Audit of the data and the model files" in html


def test_card_fields_from_the_config_fill_the_card(tabular_project: Path):
    from huggingface_hub import DatasetCard

    card = {"license": "cc-by-4.0", "source": "a sensor log", "description": "rows", "personal_data": "none"}
    config = _quick_config(tabular_project, **{"data.card": card})
    out = tabular_project.parent / "run"
    run(config, out)
    loaded = DatasetCard.load(out / "dataset_card.md")
    assert loaded.data.license == "cc-by-4.0"
    assert "Missing fields" not in loaded.text and "a sensor log" in loaded.text


def _write_unsafe_state_dict(project: Path) -> Path:
    """The tiny model's weights pickled inside a dict subclass from the config's folder: an unknown global."""
    import torch
    from safetensors.torch import load_file

    (project.parent / "mydict.py").write_text(
        "from collections import OrderedDict\n\nclass MyDict(OrderedDict):\n    pass\n"
    )
    import importlib.util

    spec = importlib.util.spec_from_file_location("mydict", project.parent / "mydict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import sys

    sys.modules["mydict"] = module
    try:
        state = module.MyDict(load_file(str(project.parent / "tiny.safetensors")))
        torch.save(state, project.parent / "tiny.pt")
    finally:
        del sys.modules["mydict"]
    return project.parent / "tiny.pt"


def test_a_pickled_state_dict_that_passes_the_scan_loads_like_safetensors(tabular_project: Path):
    import torch
    from safetensors.torch import load_file

    from deployable.audit.guard import scan_model

    state = load_file(str(tabular_project.parent / "tiny.safetensors"))
    torch.save(OrderedDict(state), tabular_project.parent / "tiny.pt")
    from deployable.models import load_predictor
    from deployable.models.sources import model_spec

    base = load_config(tabular_project)
    spec = model_spec(base)
    pt = model_spec(
        load_config(
            {**base.model_dump(), "model": {**base.model.model_dump(), "weights": "tiny.pt"}},
            base_dir=tabular_project.parent,
        )
    )
    findings, scanned, _, blocked = scan_model(pt)
    assert not blocked and not findings and [Path(f).name for f in scanned] == ["tiny.pt"]
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32))
    with torch.no_grad():  # the saved weights, run by a module built and loaded here; the factory starts elsewhere
        ref = tiny_reference(state)(x).numpy()
        assert np.abs(tiny_reference()(x).numpy() - ref).max() > 0.1
    from_safetensors = load_predictor(spec).forward(x.numpy()).logits
    from_pt = load_predictor(pt).forward(x.numpy()).logits
    np.testing.assert_allclose(from_safetensors, ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(from_pt, from_safetensors)


def test_run_refuses_a_model_file_the_scan_flags_and_the_opt_in_loads_it(tabular_project: Path, capsys):
    _write_unsafe_state_dict(tabular_project)
    config = _quick_config(tabular_project, **{"model.weights": "tiny.pt"})
    code = main(["run", str(config), "--out", str(tabular_project.parent / "out"), "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert "model.weights" in err and "mydict.MyDict" in err and "allow_unsafe_files" in err
    assert len([line for line in err.splitlines() if line.strip()]) <= 3  # one message (rich may wrap it)
    assert not (tabular_project.parent / "out").exists()

    config = _quick_config(config, **{"model.allow_unsafe_files": True})
    import sys

    sys.path.insert(0, str(tabular_project.parent))  # the opt-in unpickles mydict.MyDict for real
    try:
        result = run(config)
    finally:
        sys.path.remove(str(tabular_project.parent))
        sys.modules.pop("mydict", None)
    scan = result.audit.by_check("scan")
    assert scan and scan[0].details.get("global") == "mydict.MyDict"
    check = next(c for c in result.audit.checks if c.name == "scan")
    assert check.details["allowed_unsafe"] is True and check.details["blocked"] is False


def test_audit_command_reports_findings_with_exit_codes(tabular_project: Path, capsys):
    # a test row copied into train with another label: an exact leak with conflicting labels (high)
    train = (tabular_project.parent / "train.csv").read_text().splitlines()
    test = (tabular_project.parent / "test.csv").read_text().splitlines()
    row = test[1].split(",")
    row[0] = "train-copy"
    row[5] = "c0" if row[5] != "c0" else "c1"
    (tabular_project.parent / "train.csv").write_text("\n".join([*train, ",".join(row)]) + "\n")
    out = tabular_project.parent / "audit"
    assert main(["audit", str(tabular_project), "--out", str(out), "-q"]) == 1
    printed = capsys.readouterr().out
    assert "conflicting" in printed and "test:test-0" in printed
    assert sorted(p.name for p in out.iterdir()) == ["dataset_card.md", "report.html", "results.json", "rmf.md"]
    loaded = RunResult.load(out)
    assert loaded.evaluations == () and loaded.audit is not None
    assert main(["audit", str(tabular_project), "--out", str(out), "-q", "--fail-on", "never"]) == 0
    assert main(["audit", str(tabular_project), "--out", str(out), "-q", "--fail-on", "sometimes"]) == 2


def test_audit_command_audits_the_data_alone_when_the_model_is_refused(tabular_project: Path):
    _write_unsafe_state_dict(tabular_project)
    config = _quick_config(tabular_project, **{"model.weights": "tiny.pt"})
    result = scan_and_audit(config)
    assert result.variants == ()
    assert result.audit.by_check("scan")[0].severity in ("critical", "high")
    check = next(c for c in result.audit.checks if c.name == "scan")
    assert check.details["blocked"] is True
    # tabular inputs stand in for features, so the feature-based checks still ran
    ran = {c.name for c in result.audit.checks if c.status == "ran"}
    assert {"duplicates", "imbalance", "outliers"} <= ran


def test_scan_command_exit_codes(tmp_path: Path, capsys):
    from safetensors.numpy import save_file

    good = tmp_path / "good.safetensors"
    save_file({"w": np.zeros((2, 2), np.float32)}, str(good))
    assert main(["scan", str(good)]) == 0

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("true",))

    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps({"w": Evil()}))
    capsys.readouterr()
    assert main(["scan", str(good), str(bad)]) == 1
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 1
    assert str(bad) in lines[0] and "system" in lines[0] and "critical" in lines[0]
    assert main(["scan", str(tmp_path / "missing.pt")]) == 2


def test_yaml_on_and_off_are_read_as_the_embedding_modes():
    from deployable.config import DuplicatesConfig

    assert yaml.safe_load("embeddings: on") == {"embeddings": True}  # YAML 1.1 reads a bare on/off as a boolean
    assert DuplicatesConfig(**yaml.safe_load("embeddings: on")).embeddings == "on"
    assert DuplicatesConfig(**yaml.safe_load("embeddings: off")).embeddings == "off"
    assert DuplicatesConfig(embeddings="auto").embeddings == "auto"
