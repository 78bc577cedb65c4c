"""Recipe ``distilled``: a smaller student trained on the train split against the source's soft labels.

For a transformer encoder the student keeps a subset of the layers (every other one by default), initialised from
the teacher's weights, as DistilBERT was; a sentence-transformers student keeps the parent's head, pooling and
normalization. For a pytorch module whose factory takes a ``width`` keyword, the student is the same factory at half
the width, trained from scratch.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from deployable.config import DistilledRecipe
from deployable.core.errors import DeployableError
from deployable.core.plugins import register
from deployable.core.records import Variant
from deployable.optimize.base import OptimizeContext, artifact_dir, cached_or_build, make_variant, relocate
from deployable.optimize.student import (
    ModuleStudent,
    cache_key,
    check_torch_parent,
    factory_default,
    layer_stack,
    load_student,
    teacher_signal,
    train_split,
    train_student,
    variant_files,
)


@register("recipe", config=DistilledRecipe)
def distilled(ctx: OptimizeContext, parent: Variant, opts: DistilledRecipe) -> Variant:
    """Make a smaller student of ``parent`` and train it on the source's soft labels (and embeddings)."""
    name = opts.name or opts.recipe
    split = train_split(ctx, "distilled")
    check_torch_parent(parent, name)
    width = _student_width(parent, opts, name) if parent.kind == "pytorch" else None
    folder = artifact_dir(ctx, parent, opts.model_dump(), extra=cache_key(ctx, split))

    def build(tmp: Path) -> dict[str, Any]:
        details: dict[str, Any] = {
            "recipe": "distilled",
            **opts.model_dump(exclude={"name", "parent", "recipe"}),
            "seed": ctx.cfg.seed,
            "teacher": "source",
        }
        if width is None:
            student = load_student(parent, name)
            details["parameters_before"] = student.n_parameters()
            details |= keep_layers(student.transformer(), opts.layers, name)
        else:
            kwargs = dict(parent.spec.get("kwargs") or {})
            details["parameters_before"] = ModuleStudent(parent.spec).n_parameters()
            student = ModuleStudent(parent.spec, kwargs={**kwargs, "width": width[1]}, init_seed=ctx.cfg.seed)
            details |= {"width_before": width[0], "width_after": width[1]}
        details["parameters_after"] = student.n_parameters()
        report = train_student(
            ctx,
            student,
            split,
            teacher_signal(ctx, split),
            epochs=opts.epochs,
            learning_rate=opts.learning_rate,
            temperature=opts.temperature,
            label=name,
        )
        details["training"] = report.to_dict()
        spec = student.save(tmp)
        return {"spec": relocate(spec, tmp, folder), "recipe": details}

    meta = cached_or_build(folder, build)
    spec = meta["spec"]
    return make_variant(name, spec, variant_files(spec, parent), parent, meta["recipe"])


def keep_layers(model: Any, layers: list[int] | None, recipe: str) -> dict[str, Any]:
    """Keep only ``layers`` (default: every other one, from the first) of a transformer, in place.

    The kept layers keep the teacher's weights; the config's layer count shrinks so the folder round-trips.
    """
    import torch

    owner, count_key = layer_stack(model, recipe)
    n = len(owner.layer)
    kept = list(range(0, n, 2)) if layers is None else sorted(layers)
    if not kept:
        raise DeployableError(f"optimize.recipes: {recipe}: layers is empty (name at least one of 0..{n - 1})")
    if len(set(kept)) != len(kept):
        dup = sorted({i for i in kept if kept.count(i) > 1})
        raise DeployableError(f"optimize.recipes: {recipe}: layers lists {dup} more than once (name each once)")
    bad = [i for i in kept if not 0 <= i < n]
    if bad:
        raise DeployableError(
            f"optimize.recipes: {recipe}: layers {bad} do not exist; the model has {n} layers (use 0..{n - 1})"
        )
    owner.layer = torch.nn.ModuleList([owner.layer[i] for i in kept])
    for new_index, layer in enumerate(owner.layer):
        for sub in layer.modules():  # attention caches index layers by position
            if isinstance(getattr(sub, "layer_idx", None), int):
                sub.layer_idx = new_index
    setattr(model.config, count_key, len(kept))
    if isinstance(getattr(owner, count_key, None), int):  # DistilBERT's Transformer keeps its own count
        setattr(owner, count_key, len(kept))
    return {"layers_before": n, "layers_kept": kept}


def _student_width(parent: Variant, opts: DistilledRecipe, recipe: str) -> tuple[int, int]:
    """(parent width, student width) of a pytorch factory with a ``width`` keyword; a clear error otherwise."""
    if opts.layers is not None:
        raise DeployableError(
            f"optimize.recipes: {recipe}: layers applies to transformer encoders; '{parent.name}' is a pytorch "
            "module, whose student halves model.kwargs.width (remove layers)"
        )
    kwargs = parent.spec.get("kwargs") or {}
    takes, default = factory_default(parent.spec, "width")
    factory = parent.spec["factory"]
    if not takes and "width" not in kwargs:
        raise DeployableError(
            f"optimize.recipes: {recipe}: a pytorch student is '{factory}' at half the width, but the factory has "
            "no 'width' keyword argument (add width= to the factory and pass it on, or remove the recipe)"
        )
    width = kwargs.get("width", default)
    if width is inspect.Parameter.empty or not isinstance(width, int) or isinstance(width, bool) or width < 2:
        found = "no value" if width is inspect.Parameter.empty else repr(width)
        raise DeployableError(
            f"model.kwargs.width: distilling halves the factory's width, which needs an integer >= 2; found {found} "
            "(set model.kwargs.width)"
        )
    return width, width // 2
