"""deployable.yaml parsing: typos, missing files and wrong types give one line, exit code 2, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deployable.cli import main
from deployable.config import Project, json_schema, load_config, resolve_targets
from deployable.core.errors import ConfigError


def _edit(config: Path, change) -> Path:
    data = yaml.safe_load(config.read_text())
    change(data)
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


def test_valid_config_loads_and_resolves_paths(tabular_project: Path) -> None:
    project = load_config(tabular_project)
    assert isinstance(project, Project)
    assert project.path("test.csv") == tabular_project.parent / "test.csv"
    targets = resolve_targets(project, cpu_count=2)
    assert [t.name for t in targets] == ["tiny-box"] and targets[0].batch_sizes == (1, 4)


def test_misspelled_key_names_path_and_closest_key(tabular_project: Path) -> None:
    _edit(tabular_project, lambda d: d["data"].__setitem__("lables", d["data"].pop("labels")))
    with pytest.raises(ConfigError) as err:
        load_config(tabular_project)
    msg = str(err.value)
    assert "data.lables: unknown key" in msg and "did you mean 'data.labels'" in msg
    assert str(tabular_project) in msg and "\n" not in msg


def test_nested_unknown_key_in_union_model(tabular_project: Path) -> None:
    _edit(tabular_project, lambda d: d["model"].__setitem__("wieghts", "x"))
    with pytest.raises(ConfigError, match=r"model\.wieghts: unknown key \(did you mean 'model\.weights'\?\)"):
        load_config(tabular_project)


def test_unknown_model_type_suggests(tabular_project: Path) -> None:
    _edit(tabular_project, lambda d: d["model"].__setitem__("type", "pytroch"))
    with pytest.raises(ConfigError, match=r"model\.type: unknown model type 'pytroch' \(did you mean 'pytorch'\?\)"):
        load_config(tabular_project)


def test_missing_file_suggests_sibling(tabular_project: Path) -> None:
    _edit(tabular_project, lambda d: d["data"]["splits"].__setitem__("test", "tset.csv"))
    with pytest.raises(ConfigError) as err:
        load_config(tabular_project)
    assert "data.splits.test: expected a file, but 'tset.csv' does not exist (did you mean 'test.csv'?)" in str(
        err.value
    )


def test_wrong_type_names_key_and_value(tabular_project: Path) -> None:
    _edit(tabular_project, lambda d: d["evaluate"].__setitem__("batch_size", "large"))
    with pytest.raises(ConfigError, match=r"evaluate\.batch_size: .*found 'large'"):
        load_config(tabular_project)


def test_unknown_builtin_target_suggests(tabular_project: Path) -> None:
    _edit(tabular_project, lambda d: d.__setitem__("targets", ["edge-cpuu"]))
    with pytest.raises(ConfigError, match=r"did you mean 'edge-cpu'"):
        load_config(tabular_project)


def test_missing_required_key(tabular_project: Path) -> None:
    _edit(tabular_project, lambda d: d.pop("model"))
    with pytest.raises(ConfigError, match=r": model: required key is missing"):
        load_config(tabular_project)


def test_invalid_yaml_gives_line(tmp_path: Path) -> None:
    bad = tmp_path / "deployable.yaml"
    bad.write_text("name: x\nmodel: [unclosed\n")
    with pytest.raises(ConfigError, match=r"invalid YAML at line"):
        load_config(bad)


def test_bins_must_ascend(tabular_project: Path) -> None:
    _edit(tabular_project, lambda d: d["data"]["slices"][1].__setitem__("bins", [1.0, 0.0]))
    with pytest.raises(ConfigError, match=r"data\.slices\.1.*ascending"):
        load_config(tabular_project)


def test_cli_config_error_is_one_line_exit_2(tabular_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(tabular_project, lambda d: d.__setitem__("modle", d.pop("model")))
    code = main(["run", str(tabular_project), "--out", str(tabular_project.parent / "out"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert "modle: unknown key (did you mean 'model'?)" in err and "Traceback" not in err
    assert not (tabular_project.parent / "out").exists()


def test_cli_debug_shows_traceback(tabular_project: Path) -> None:
    _edit(tabular_project, lambda d: d.__setitem__("modle", d.pop("model")))
    proc = subprocess.run(
        [sys.executable, "-m", "deployable.cli", "--debug", "run", str(tabular_project)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr and "ConfigError" in proc.stderr


def test_cli_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "deployable.yaml").write_text("name: x\n")
    code = main(["run", str(tmp_path / "deployabel.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and "did you mean" in err and "deployable.yaml" in err


def test_schema_command_prints_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema == json.loads(json.dumps(json_schema()))
    assert {"model", "data", "targets", "evaluate"} <= set(schema["properties"])
    assert "base_dir" not in schema["properties"]


def test_docs_cover_every_key() -> None:
    """docs/config.md documents every key of the schema."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "config.md").read_text()
    missing = []

    def walk(node: dict, defs: dict) -> None:
        if "$ref" in node:
            node = defs[node["$ref"].split("/")[-1]]
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in node.get(key, []):
                walk(sub, defs)
        if "items" in node:
            walk(node["items"], defs)
        for name, sub in node.get("properties", {}).items():
            if f"`{name}`" not in doc:
                missing.append(name)
            walk(sub, defs)
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], defs)

    schema = json_schema()
    walk(schema, schema.get("$defs", {}))
    assert not missing, f"docs/config.md does not document: {sorted(set(missing))}"


def test_docs_are_generated_from_current_models() -> None:
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(root / "scripts" / "gen_config_docs.py"), "--check"], check=False)
    assert proc.returncode == 0, "docs/config.md is stale: run python scripts/gen_config_docs.py"


def test_a_folder_a_prepare_step_writes_into_counts_as_made(tmp_path: Path) -> None:
    """``tokenizer: model`` where the step declares ``model/model.onnx``: the folder is made by the step too."""
    config = {
        "name": "made",
        "prepare": [{"run": ["python", "build.py"], "outputs": ["model/model.onnx", "data/test.jsonl"]}],
        "model": {"type": "onnx", "path": "model/model.onnx", "tokenizer": "model"},
        "data": {"splits": {"test": "data/test.jsonl"}},
    }
    project = load_config(config, base_dir=tmp_path)
    assert project.model.tokenizer == "model" and not (tmp_path / "model").exists()
    # a folder no output is written into still has to exist
    config["model"]["tokenizer"] = "tokenizer"
    with pytest.raises(ConfigError, match=r"model\.tokenizer: expected a file, but 'tokenizer' does not exist"):
        load_config(config, base_dir=tmp_path)
