"""End to end: config -> run folder, through the CLI and the Python API, on tiny and real examples."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import deployable
from deployable.cli import main
from deployable.config import load_config
from deployable.core.records import SCHEMA_VERSION, RunResult

ROOT = Path(__file__).resolve().parents[1]
QUICK = {"warmup": 1, "min_repetitions": 3, "max_seconds": 0.05}


def _quick(config: Path) -> object:
    """An example's config with short latency timing and small robustness samples (these tests check the pipeline,
    not the numbers)."""
    data = yaml.safe_load(config.read_text())
    data.setdefault("evaluate", {})["efficiency"] = QUICK
    data["evaluate"]["robustness"] = {"max_samples": 40, "severities": [1, 5]}
    data["evaluate"]["adversarial"] = {"max_samples": 12, "epsilons": [0.03, 0.3], "edit_budgets": [1, 4]}
    return load_config(data, base_dir=config.parent)


def _check_run_folder(out: Path, result: RunResult) -> None:
    assert sorted(p.name for p in out.iterdir()) == [
        "dataset_card.md",
        "model_card.md",
        "predictions",
        "report.html",
        "results.json",
        "rmf.md",
    ]
    loaded = RunResult.load(out)
    assert loaded.schema_version == SCHEMA_VERSION
    assert loaded.to_dict() == json.loads(json.dumps(result.to_dict()))
    for ev in result.evaluations:
        frame = pd.read_parquet(out / ev.predictions_file)
        labels = result.dataset.label_names
        assert list(frame.columns[:4]) == ["id", "label", "predicted", "confidence"]
        assert [c for c in frame.columns if c.startswith("prob_")] == [f"prob_{name}" for name in labels]
        assert len(frame) == ev.quality.n
        probs = frame[[f"prob_{name}" for name in labels]].to_numpy()
        np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
        assert (frame["predicted"] == np.asarray(labels)[probs.argmax(1)]).all()
        assert (frame["label"] == frame["predicted"]).mean() == pytest.approx(ev.quality.accuracy)
    assert "<html" in (out / "report.html").read_text()[:200].lower()


def test_cli_run_writes_the_run_folder(tabular_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    buffer = io.StringIO()
    monkeypatch.setattr("deployable.cli.out_console", Console(file=buffer, width=200))
    out = tabular_project.parent / "runs" / "one"
    assert main(["run", str(tabular_project), "--out", str(out), "-q"]) == 0
    printed = buffer.getvalue()
    assert "accuracy" in printed and "tiny-box" in printed and "batch 4 p50" in printed and "weakest slices" in printed
    result = RunResult.load(out)
    _check_run_folder(out, result)
    ev = result.evaluations[0]
    assert [e.target for e in ev.efficiency] == ["tiny-box"]
    assert result.variants[0].sha256 and result.dataset.splits[0].fingerprint


def test_failed_run_leaves_previous_folder_untouched(tabular_project: Path) -> None:
    out = tabular_project.parent / "runs" / "one"
    assert main(["run", str(tabular_project), "--out", str(out), "-q"]) == 0
    before = (out / "results.json").read_bytes()
    (tabular_project.parent / "test.csv").write_text("id,f0,f1,f2,f3,label,region\nx,1,2,3,4,c9,north\n")
    assert main(["run", str(tabular_project), "--out", str(out), "-q"]) == 2
    assert (out / "results.json").read_bytes() == before
    leftovers = [p.name for p in out.parent.iterdir() if p.name != "one"]
    assert leftovers == [], f"half-written output left behind: {leftovers}"


def test_adhoc_evaluate_onnx_on_csv(tabular_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from deployable.models import load_predictor
    from deployable.models.sources import model_spec

    folder = tabular_project.parent
    module = load_predictor(model_spec(load_config(tabular_project))).module
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.zeros(2, 4),),
            str(folder / "tiny.onnx"),
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}},
            dynamo=False,
        )
    out = folder / "adhoc"
    code = main(
        [
            "evaluate",
            "--model",
            str(folder / "tiny.onnx"),
            "--data",
            str(folder / "test.csv"),
            "--validation",
            str(folder / "validation.csv"),
            "--feature-columns",
            "f0,f1,f2,f3",
            "--labels",
            "c0,c1,c2",
            "--slices",
            "region",
            "--target",
            "edge-cpu",
            "--out",
            str(out),
            "-q",
        ]
    )
    assert code == 0, capsys.readouterr().err
    result = RunResult.load(out)
    assert result.variants[0].kind == "onnx" and result.evaluations[0].calibration.temperature_fitted_on == "validation"
    # the same model through the config gives the same quality numbers
    torch_run = deployable.run(
        load_config({**yaml.safe_load(tabular_project.read_text()), "targets": []}, base_dir=folder)
    )
    assert result.evaluations[0].quality.accuracy == torch_run.evaluations[0].quality.accuracy
    api = deployable.evaluate(
        folder / "tiny.onnx",
        folder / "test.csv",
        feature_columns=["f0", "f1", "f2", "f3"],
        labels=["c0", "c1", "c2"],
        targets=[],
    )
    assert api.evaluations[0].quality.accuracy == torch_run.evaluations[0].quality.accuracy


def test_adhoc_evaluate_bad_input_exit_2(tabular_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tabular_project.parent
    code = main(["evaluate", "--model", str(folder / "tiny.safetensors"), "--data", str(folder / "test.csv")])
    assert code == 2 and "cannot tell the model type" in capsys.readouterr().err


def test_digits_example_end_to_end(tmp_path: Path) -> None:
    config = ROOT / "examples" / "digits" / "deployable.yaml"
    result = deployable.run(_quick(config), tmp_path / "digits")
    _check_run_folder(tmp_path / "digits", result)
    ev = result.evaluations[0]
    assert ev.quality.n == 360 and ev.quality.accuracy > 0.95  # a real CNN on real scans
    assert {s.value for s in ev.slices} == {"faint", "medium", "heavy"}
    assert [e.target for e in ev.efficiency] == ["edge-cpu", "cloud-cpu"]
    assert result.variants[0].kind == "pytorch"


@pytest.mark.slow
def test_support_tickets_example_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = ROOT / "examples" / "support-tickets" / "deployable.yaml"
    result = deployable.run(_quick(config), tmp_path / "tickets")
    _check_run_folder(tmp_path / "tickets", result)
    ev = result.evaluations[0]
    names = result.dataset.label_names
    assert len(names) >= 6
    assert {s.name: s.n for s in result.dataset.splits}["test"] == ev.quality.n >= 250
    assert "ood" in {s.name for s in result.dataset.splits}
    # good but not perfect: hand-written tickets are ambiguous
    assert 0.6 < ev.quality.accuracy < 0.98
    assert {s.column for s in ev.slices} == {"channel", "length"}
    assert all(s.accuracy.low <= s.accuracy.value <= s.accuracy.high for s in ev.slices)
    assert ev.calibration.temperature_fitted_on == "validation"
    # the example's optimization: every variant evaluated and compared with the source
    variants = {v.name: v for v in result.variants}
    assert list(variants) == ["source", "onnx-fp32", "int8-dynamic", "fp16"]
    int8 = variants["int8-dynamic"]
    assert int8.status == "accepted" and int8.size_bytes < variants["source"].size_bytes / 3.5
    assert int8.recipe["tolerance_check"]["split"] == "validation+train"
    # smoothing only when the fully quantized graph needs it (smooth: auto); either way every node is quantized
    smoothing = int8.recipe["smoothing"]
    assert smoothing.get("used") is False or smoothing["alpha"] in (0.5, 0.6, 0.7, 0.8, 0.9)
    assert int8.recipe["quantized_nodes"] == 40 and int8.recipe["excluded_nodes"] == []
    evaluations = {e.variant: e for e in result.evaluations}
    assert evaluations["int8-dynamic"].faithfulness.agreement > 0.97
    assert evaluations["onnx-fp32"].faithfulness.agreement == 1.0
    # a second run reads every prediction from the store: the model is never called
    from deployable.models.torch_models import SentenceEncoderPredictor

    def no_forward(*args: object) -> None:
        raise AssertionError("the model ran although its predictions are stored")

    monkeypatch.setattr(SentenceEncoderPredictor, "forward", no_forward)
    again = deployable.run(_quick(config).model_copy(update={"targets": []}))
    assert again.evaluations[0].store_key == ev.store_key
    assert again.evaluations[0].quality.to_dict() == ev.quality.to_dict()
