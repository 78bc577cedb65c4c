"""The package's shape: no import cycles, one entry per stage, and plugins the config accepts once registered."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
from pydantic import Field

import deployable
from deployable.config import OptimizeConfig, _Model, _Recipe, load_config
from deployable.core.errors import ConfigError
from deployable.core.plugins import get_plugin, list_plugins, plugin_config, register, unregister
from deployable.data import load_dataset
from deployable.evaluation import PredictionStore, predict
from deployable.models import ForwardOutput, Predictor, load_predictor, source_variant
from deployable.models.sources import model_spec
from deployable.optimize import OptimizeContext, optimize
from deployable.optimize.base import make_variant

SRC = Path(deployable.__file__).resolve().parent
STAGES = ("data", "models", "audit", "optimize", "evaluation", "gate", "report", "registry")


# ---------------------------------------------------------------------------------------------------------------------
# Imports
# ---------------------------------------------------------------------------------------------------------------------


def _modules(root: Path) -> dict[str, Path]:
    out = {}
    for path in root.rglob("*.py"):
        parts = ["deployable", *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package modules it imports, at any depth of the file (inside functions too), except under
    ``if TYPE_CHECKING:``. ``from a import b`` counts as importing ``a.b`` when that is a module, else ``a``."""
    modules = _modules(root)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _type_checking(node)
                   for n in ast.walk(node)}  # fmt: skip
        edges = graph.setdefault(name, set())
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - node.level + 1]
                    target = ".".join([*base, node.module] if node.module else base)
                else:
                    target = node.module or ""
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    if full in modules:
                        edges.add(full)
                    elif target in modules:
                        edges.add(target)
        edges.discard(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = iter(range(sys.maxsize))

    def visit(v: str) -> None:
        index[v] = low[v] = next(counter)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_cycles(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from deployable.b import g\n")
    (pkg / "b.py").write_text("from deployable.sub import c\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("from ..a import f\nfrom typing import TYPE_CHECKING\n")
    (pkg / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from deployable import e\n")
    (pkg / "e.py").write_text("from deployable import d\n")
    graph = import_graph(pkg)
    assert graph["deployable.sub.c"] == {"deployable.a"}
    assert cycles(graph) == [["deployable.a", "deployable.b", "deployable.sub.c"]]


def test_no_import_cycles_among_the_package_modules() -> None:
    graph = import_graph(SRC)
    assert len(graph) > 50 and "deployable.evaluation.predict" in graph["deployable.evaluation.runner"]
    assert cycles(graph) == []


def test_core_imports_no_stage() -> None:
    graph = import_graph(SRC)
    for module, imported in graph.items():
        if module.startswith("deployable.core"):
            assert all(m.startswith("deployable.core") for m in imported), (module, imported)


def _third_party_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_database_libraries_are_imported_only_inside_the_registry() -> None:
    for path in SRC.rglob("*.py"):
        inside = SRC / "registry" in path.parents
        if not inside:
            assert not _third_party_imports(path) & {"sqlalchemy", "alembic", "psycopg"}, path
    import subprocess

    code = "import sys, deployable, deployable.cli; print([m for m in ('sqlalchemy', 'alembic') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_init_only_reexports(stage: str) -> None:
    """``__init__.py`` of a stage holds its docstring, imports and ``__all__``: the logic lives beside it."""
    tree = ast.parse((SRC / stage / "__init__.py").read_text(encoding="utf-8"))
    kinds = {type(node).__name__ for node in tree.body[1:]}
    assert isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, ast.Constant)
    assert kinds <= {"Import", "ImportFrom", "Assign"}, kinds
    names = [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets]
    assert names == ["__all__"]
    module = __import__(f"deployable.{stage}", fromlist=["__all__"])
    assert all(hasattr(module, n) for n in module.__all__)


# ---------------------------------------------------------------------------------------------------------------------
# Plugins: registered once, accepted by the config
# ---------------------------------------------------------------------------------------------------------------------


class ScaledLinearModel(_Model):
    """A linear model whose weights live in an .npy file (a plugin's own config section)."""

    type: Literal["scaled-linear"]
    weights: str = Field(description="an .npy file of shape (n_features, n_classes)")
    scale: float = Field(1.0, gt=0, description="logits are multiplied by this")


class ScaledLinearPredictor(Predictor):
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.files = (Path(spec["weights"]),)
        self.w = np.load(spec["weights"])

    def forward(self, batch: Any) -> ForwardOutput:
        return ForwardOutput(np.asarray(batch, np.float32) @ self.w * np.float32(self.spec["scale"]))

    def set_threads(self, n: int) -> None:
        pass


class HalveRecipe(_Recipe):
    """Halve the logits' scale: a variant that predicts the same classes with less confident logits."""

    input_kind = "any"
    recipe: Literal["halve-scale"]
    factor: float = Field(0.5, gt=0)


@pytest.fixture
def plugins() -> Iterator[None]:
    @register("model", config=ScaledLinearModel)
    def _scaled(spec: dict[str, Any]) -> Predictor:
        return ScaledLinearPredictor(spec)

    @register("recipe", config=HalveRecipe)
    def _halve(ctx: OptimizeContext, parent: Any, opts: HalveRecipe) -> Any:
        spec = {**parent.spec, "scale": parent.spec["scale"] * opts.factor}
        return make_variant(opts.name or opts.recipe, spec, [Path(spec["weights"])], parent, opts.model_dump())

    yield
    unregister("model", "scaled-linear")
    unregister("recipe", "halve-scale")


def _plugin_config(tmp_path: Path, **model: Any) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 2)).astype(np.float32)
    np.save(tmp_path / "w.npy", w)
    # enough samples for the default tolerance to decide on identical predictions (validation + train pooled)
    for split, n in (("train", 200), ("validation", 60), ("test", 30)):
        x = rng.normal(size=(n, 3))
        rows = ["id,a,b,c,label"] + [
            f"{split}-{i},{x[i, 0]},{x[i, 1]},{x[i, 2]},{'yes' if (x[i] @ w).argmax() else 'no'}" for i in range(n)
        ]
        (tmp_path / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return {
        "name": "plugin",
        "model": {"type": "scaled-linear", "weights": "w.npy", **model},
        "data": {
            "splits": {s: f"{s}.csv" for s in ("train", "validation", "test")},
            "feature_columns": ["a", "b", "c"],
            "id_column": "id",
            "labels": ["no", "yes"],
        },
        "optimize": {"recipes": ["halve-scale"]},
    }


def test_the_config_dump_keeps_every_key_of_a_builtin_plugin_section() -> None:
    root = Path(__file__).resolve().parents[1] / "examples" / "support-tickets"
    project = load_config(root / "deployable.yaml")
    dumped = project.model_dump(mode="json")
    assert dumped["model"] == project.model.model_dump(mode="json")
    assert {"encoder", "head", "max_length"} <= set(dumped["model"])
    assert [r["recipe"] for r in dumped["optimize"]["recipes"]] == ["onnx-fp32", "int8-dynamic", "fp16"]
    assert {"per_channel", "smooth"} <= set(dumped["optimize"]["recipes"][1])
    assert type(project).model_validate(dumped) == project


def test_builtin_plugins_carry_the_config_model_named_like_them() -> None:
    for kind in ("model", "recipe"):
        for name in list_plugins(kind):
            config = plugin_config(kind, name)
            assert config is not None, f"{kind}/{name} has no config model"
            assert name in str(config.model_fields["type" if kind == "model" else "recipe"].annotation)


def test_register_takes_the_name_from_the_config_model_and_refuses_a_mismatch() -> None:
    with pytest.raises(ValueError, match="tagged 'scaled-linear'"):
        register("model", "other-name", config=ScaledLinearModel)
    assert "scaled-linear" not in list_plugins("model")


def test_a_model_and_a_recipe_registered_in_a_test_are_accepted_by_the_config(plugins: None, tmp_path: Path) -> None:
    project = load_config(_plugin_config(tmp_path, scale=2.0), base_dir=tmp_path)
    assert isinstance(project.model, ScaledLinearModel) and project.model.scale == 2.0
    assert isinstance(project.optimize.recipes[0], HalveRecipe)
    # the dump (results.json's config) holds every key of the plugin's own model, and validates back to the same
    dumped = project.model_dump(mode="json")
    assert dumped["model"] == {"type": "scaled-linear", "weights": "w.npy", "scale": 2.0, "allow_unsafe_files": False}
    assert dumped["optimize"]["recipes"] == [{"recipe": "halve-scale", "factor": 0.5, "name": None, "parent": None}]
    assert type(project).model_validate(dumped) == project
    dataset = load_dataset(project)
    predictor = load_predictor(model_spec(project))
    store = PredictionStore(tmp_path / "store")
    test = dataset.splits["test"]
    logits = predict(predictor, test, store, batch_size=8).logits
    np.testing.assert_allclose(logits, np.asarray(test.inputs, np.float32) @ np.load(tmp_path / "w.npy") * 2, rtol=1e-6)

    ctx = OptimizeContext(
        cfg=project.optimize,
        dataset=dataset,
        store=store,
        workdir=tmp_path / "variants",
        batch_size=8,
        predictors={"source": predictor},
    )
    (variant,) = optimize(ctx, source_variant(predictor))
    assert variant.name == "halve-scale" and variant.parent == "source" and variant.spec["scale"] == 1.0
    assert variant.status == "accepted"  # same classes, half the logits
    np.testing.assert_allclose(predict(ctx.predictors["halve-scale"], test, store, batch_size=8).logits, logits / 2)


def test_a_plugin_section_reports_errors_like_a_builtin_one(plugins: None, tmp_path: Path) -> None:
    config = _plugin_config(tmp_path, scael=2.0)
    with pytest.raises(ConfigError, match=r"model\.scael: unknown key \(did you mean 'model\.scale'\?\)"):
        load_config(config, base_dir=tmp_path)
    config = _plugin_config(tmp_path, scale=-1)
    with pytest.raises(ConfigError, match=r"model\.scale: Input should be greater than 0"):
        load_config(config, base_dir=tmp_path)
    config["optimize"]["recipes"] = [{"recipe": "halve-scale", "factr": 0.25}]
    config["model"]["scale"] = 1.0
    with pytest.raises(ConfigError, match=r"optimize\.recipes\.0\.factr: unknown key \(did you mean .*factor"):
        load_config(config, base_dir=tmp_path)


def test_an_unknown_plugin_lists_the_registered_ones(plugins: None, tmp_path: Path) -> None:
    config = _plugin_config(tmp_path)
    config["model"]["type"] = "scaled-linaer"
    with pytest.raises(ConfigError, match=r"model\.type: unknown model type 'scaled-linaer' \(did you mean 'scaled"):
        load_config(config, base_dir=tmp_path)
    config["model"]["type"] = "scaled-linear"
    config["optimize"]["recipes"] = ["halve"]
    with pytest.raises(ConfigError, match=r"unknown recipe 'halve'"):
        load_config(config, base_dir=tmp_path)


def test_an_unregistered_plugin_is_refused(tmp_path: Path) -> None:
    """Without the registration (the fixture is not used) the same config is refused: the registry decides."""
    config = _plugin_config(tmp_path)
    with pytest.raises(ConfigError, match=r"unknown recipe 'halve-scale' \(valid: distilled, fp16, "):
        load_config(config, base_dir=tmp_path)
    del config["optimize"]
    with pytest.raises(ConfigError, match=r"unknown model type 'scaled-linear' \(valid: onnx, pytorch, "):
        load_config(config, base_dir=tmp_path)
    with pytest.raises(Exception, match="unknown model 'scaled-linear'"):
        get_plugin("model", "scaled-linear")


def test_the_json_schema_lists_registered_plugins(plugins: None) -> None:
    from deployable.config import json_schema

    schema = json_schema()
    options = schema["properties"]["model"]["oneOf"]
    assert {o["properties"]["type"]["const"] for o in options} >= {"onnx", "pytorch", "scaled-linear"}
    recipes = schema["$defs"]["OptimizeConfig"]["properties"]["recipes"]["items"]["oneOf"]
    assert "halve-scale" in {o["properties"]["recipe"]["const"] for o in recipes}
    assert OptimizeConfig.model_validate({"recipes": ["halve-scale"]}).recipes[0].factor == 0.5


def test_a_data_format_registered_in_a_test_is_accepted_and_reads_the_data(plugins: None, tmp_path: Path) -> None:
    import pandas as pd

    from deployable.data.sources import _table

    config = _plugin_config(tmp_path)
    del config["optimize"]
    for split in ("train", "validation", "test"):  # the same tables, written with ';' between the fields
        text = (tmp_path / f"{split}.csv").read_text()
        (tmp_path / f"{split}.ssv").write_text(text.replace(",", ";"))
    config["data"]["splits"] = {s: f"{s}.ssv" for s in ("train", "validation", "test")}
    config["data"]["format"] = "semicolon-csv"
    with pytest.raises(ConfigError, match=r"data\.format: unknown data format 'semicolon-csv' \(valid: auto, csv, "):
        load_config(config, base_dir=tmp_path)

    @register("data", "semicolon-csv")
    def _read(path: Path, cfg: Any, key: str) -> dict[str, Any]:
        return _table(pd.read_csv(path, sep=";"), path, cfg, key)

    try:
        project = load_config(config, base_dir=tmp_path)
        assert project.data.format == "semicolon-csv"
        from deployable.config import json_schema

        assert "semicolon-csv" in json_schema()["$defs"]["DataConfig"]["properties"]["format"]["enum"]
        test = load_dataset(project).splits["test"]
        expected = pd.read_csv(tmp_path / "test.csv")
        np.testing.assert_allclose(test.inputs, expected[["a", "b", "c"]].to_numpy(np.float32), rtol=1e-6)
        assert list(test.ids) == list(expected["id"])
    finally:
        unregister("data", "semicolon-csv")
    config["data"]["format"] = "jsnol"
    with pytest.raises(ConfigError, match=r"data\.format: unknown data format 'jsnol' \(did you mean 'jsonl'\?\)$"):
        load_config(config, base_dir=tmp_path)
