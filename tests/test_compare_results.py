"""scripts/compare_results.py: the check that a refactor leaves a run's record as it was."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest

from _fixtures_report import make_run_result

_SPEC = importlib.util.spec_from_file_location(
    "compare_results", Path(__file__).resolve().parents[1] / "scripts" / "compare_results.py"
)
compare_results = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(compare_results)


@pytest.fixture
def record() -> dict:
    return json.loads(json.dumps(make_run_result().to_dict()))


def _write(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_timings_and_roots_are_left_out(record: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = copy.deepcopy(record)
    other["created_at"] = "2000-01-01T00:00:00+00:00"
    other["timings_s"] = {"evaluate": 123.0}
    for e in other["evaluations"]:
        for f in e["efficiency"]:
            for lat in f["latency"]:
                lat["p50_ms"] *= 3
    record["variants"][0]["files"] = ["/checkout-a/model.onnx"]
    other["variants"][0]["files"] = ["/checkout-b/model.onnx"]
    a, b = _write(tmp_path, "a.json", record), _write(tmp_path, "b.json", other)
    argv = [str(a), str(b), "--root-a", "/checkout-a", "--root-b", "/checkout-b"]
    assert compare_results.main(argv) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("0 differences") and "timings_s" in out and "latency" in out


def test_a_changed_metric_a_missing_key_and_a_shorter_list_are_reported(
    record: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = copy.deepcopy(record)
    other["evaluations"][0]["quality"]["accuracy"] += 1e-9
    del other["config"]["name"]
    other["variants"] = other["variants"][:-1]
    assert compare_results.main([str(_write(tmp_path, "a.json", record)), str(_write(tmp_path, "b.json", other))]) == 1
    out = capsys.readouterr().out
    assert ".evaluations[0].quality.accuracy:" in out
    assert ".config.name: missing on one side" in out
    assert ".variants: " in out and "entries" in out
    assert out.rstrip().endswith("3 differences")


def test_nan_equals_nan() -> None:
    count, _, diffs = compare_results.compare({"x": float("nan"), "y": [1, 2]}, {"x": float("nan"), "y": [1, 2]})
    assert (count, diffs) == (3, [])
