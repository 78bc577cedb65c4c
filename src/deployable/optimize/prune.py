"""Recipe ``pruned``: prune with torch's utilities, then fine-tune on the train split against the source's soft labels.

``magnitude`` zeroes the globally smallest weights (by absolute value) of every nn.Linear of the encoder (or of the
whole module), fine-tunes with the masks in place and makes the zeros permanent. The file keeps its dense size and
dense kernels do the same work; the zeros pay off with sparse kernels or compression.

``structured`` removes the same share of FFN neurons from every transformer layer, those with the smallest
``||W_in[i, :]|| * ||W_out[:, i]||`` (how much the neuron can carry from the layer's input to its output), by
replacing both Linear layers with smaller ones; ``intermediate_size`` shrinks in the saved config, so the model is
smaller and faster everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deployable.config import PrunedRecipe
from deployable.core.errors import DeployableError
from deployable.core.plugins import register
from deployable.core.records import Variant
from deployable.optimize.base import OptimizeContext, artifact_dir, cached_or_build, make_variant, relocate
from deployable.optimize.student import (
    Student,
    cache_key,
    check_torch_parent,
    layer_stack,
    load_student,
    teacher_signal,
    train_split,
    train_student,
    variant_files,
)

# Soft labels at T = 1: a pruned model should reproduce the teacher's own distribution, not a softened one.
TEMPERATURE = 1.0
# (input Linear, output Linear, config key of their shared width) of the FFN block in a transformer layer
_FFN_LAYOUTS = (
    ("intermediate.dense", "output.dense", "intermediate_size"),  # BERT, RoBERTa, XLM-R, ELECTRA, MiniLM
    ("ffn.lin1", "ffn.lin2", "hidden_dim"),  # DistilBERT
)


@register("recipe", config=PrunedRecipe)
def pruned(ctx: OptimizeContext, parent: Variant, opts: PrunedRecipe) -> Variant:
    """Prune ``parent`` (magnitude or structured), fine-tune against the source's soft labels, save as a variant."""
    name = opts.name or opts.recipe
    split = train_split(ctx, "pruned")
    check_torch_parent(parent, name)
    if opts.method == "structured" and parent.kind == "pytorch":
        raise DeployableError(
            f"optimize.recipes: {name}: structured pruning supports transformer encoders, but '{parent.name}' is a "
            "pytorch module (use method: magnitude)"
        )
    folder = artifact_dir(ctx, parent, opts.model_dump(), extra=cache_key(ctx, split))

    def build(tmp: Path) -> dict[str, Any]:
        student = load_student(parent, name)
        before = student.n_parameters()
        structured = opts.method == "structured"
        shrunk = shrink_ffn(student.transformer(), opts.amount, name) if structured else {}
        masked = [] if structured else mask_smallest(student, opts.amount)
        report = train_student(
            ctx,
            student,
            split,
            teacher_signal(ctx, split),
            epochs=opts.epochs,
            learning_rate=opts.learning_rate,
            temperature=TEMPERATURE,
            label=name,
        )
        details: dict[str, Any] = {
            "recipe": "pruned",
            **opts.model_dump(exclude={"name", "parent", "recipe"}),
            "seed": ctx.cfg.seed,
            "teacher": "source",
            "parameters_before": before,
        }
        details |= shrunk if structured else make_permanent(student, masked)
        details["parameters_after"] = student.n_parameters()
        details["training"] = report.to_dict()
        spec = student.save(tmp)
        return {"spec": relocate(spec, tmp, folder), "recipe": details}

    meta = cached_or_build(folder, build)
    spec = meta["spec"]
    return make_variant(name, spec, variant_files(spec, parent), parent, meta["recipe"])


def mask_smallest(student: Student, amount: float) -> list[Any]:
    """Global L1 pruning of the student's Linear weights: masks zero the ``amount`` share with smallest |w|.

    Returns the pruned layers; their masks stay in place (and keep the zeros) while the student fine-tunes.
    """
    from torch.nn.utils import prune

    layers = student.prunable()
    prune.global_unstructured([(m, "weight") for m in layers], pruning_method=prune.L1Unstructured, amount=amount)
    return layers


def make_permanent(student: Student, layers: list[Any]) -> dict[str, Any]:
    """Fold the masks into the weights (``prune.remove``) and measure the sparsity reached."""
    from torch.nn.utils import prune

    nonzero_before = sum(int((m.weight_orig != 0).sum()) for m in layers)
    for m in layers:
        prune.remove(m, "weight")
    pruned = sum(m.weight.numel() for m in layers)
    zeros = sum(int((m.weight == 0).sum()) for m in layers)
    total = student.n_parameters()
    all_zeros = sum(int((p == 0).sum()) for p in student.module.parameters())
    return {
        "pruned_layers": len(layers),
        "pruned_weights": pruned,
        "sparsity": zeros / pruned,
        "model_sparsity": all_zeros / total,
        "nonzero_weights_before": nonzero_before,
        "nonzero_weights_after": pruned - zeros,
    }


def shrink_ffn(model: Any, amount: float, recipe: str) -> dict[str, Any]:
    """Remove the ``amount`` share of FFN neurons from every layer of a transformer, in place.

    Every layer keeps the same number of neurons, so the config's single FFN width describes the smaller model and
    ``save_pretrained`` / ``from_pretrained`` round-trip.
    """
    import torch

    owner, _ = layer_stack(model, recipe)
    layout = next((lay for lay in _FFN_LAYOUTS if _has(owner.layer[0], lay[0]) and _has(owner.layer[0], lay[1])), None)
    if layout is None or not hasattr(model.config, layout[2]):
        kind = getattr(model.config, "model_type", type(model).__name__)
        raise DeployableError(
            f"optimize.recipes: {recipe}: structured pruning knows the FFN blocks of BERT-family and DistilBERT "
            f"layers, not those of '{kind}' (use method: magnitude)"
        )
    up_name, down_name, width_key = layout
    width = int(getattr(model.config, width_key))
    keep = max(1, round(width * (1 - amount)))
    with torch.no_grad():
        for layer in owner.layer:
            up, down = layer.get_submodule(up_name), layer.get_submodule(down_name)
            score = up.weight.norm(dim=1) * down.weight.norm(dim=0)
            kept = torch.topk(score, keep).indices.sort().values
            _replace(layer, up_name, _linear_rows(up, kept))
            _replace(layer, down_name, _linear_cols(down, kept))
    setattr(model.config, width_key, keep)
    return {
        "ffn_width_before": width,
        "ffn_width_after": keep,
        "neurons_removed_share": 1 - keep / width,
        "neurons_kept_per_layer": [keep] * len(owner.layer),
    }


def _has(module: Any, path: str) -> bool:
    try:
        module.get_submodule(path)
    except AttributeError:
        return False
    return True


def _replace(root: Any, path: str, new: Any) -> None:
    owner_path, _, attr = path.rpartition(".")
    setattr(root.get_submodule(owner_path) if owner_path else root, attr, new)


def _linear_rows(layer: Any, index: Any) -> Any:
    """A Linear keeping output units ``index`` of ``layer``."""
    import torch

    out = torch.nn.Linear(layer.in_features, len(index), bias=layer.bias is not None).to(layer.weight.dtype)
    out.weight.copy_(layer.weight[index])
    if layer.bias is not None:
        out.bias.copy_(layer.bias[index])
    return out


def _linear_cols(layer: Any, index: Any) -> Any:
    """A Linear keeping input units ``index`` of ``layer``."""
    import torch

    out = torch.nn.Linear(len(index), layer.out_features, bias=layer.bias is not None).to(layer.weight.dtype)
    out.weight.copy_(layer.weight[:, index])
    if layer.bias is not None:
        out.bias.copy_(layer.bias)
    return out
