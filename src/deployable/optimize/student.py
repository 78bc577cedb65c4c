"""What the torch recipes (pruned, distilled) share: a trainable copy of a torch variant, the teacher's signal read
from the prediction store, the distillation loop, and saving the student as a loadable variant.

The teacher is always the source model, and its logits and penultimate features come from the prediction store
(one forward pass, ever); training never runs the teacher.
"""

from __future__ import annotations

import abc
import inspect
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deployable.core._imports import require
from deployable.core.errors import DeployableError
from deployable.core.records import Variant
from deployable.data.dataset import Split
from deployable.evaluation.batching import batch_plan, take
from deployable.evaluation.predict import predict
from deployable.evaluation.store import StoredPredictions
from deployable.optimize.base import OptimizeContext

TRAIN_BATCH_SIZE = 16
# The relative feature error ||f_s - f_t||^2 / ||f_t||^2 is ~1 for unrelated features and ~0 when they match, the same
# order as KL * T^2 early in training, so 1:1 keeps both terms pulling. On support-tickets (MiniLM, 30% structured
# pruning) feature matching raised validation agreement with the source from 0.888 (KL alone) to 0.900; weight 10
# gave 0.900 as well.
FEATURE_WEIGHT = 1.0
# Files of a model folder that are not weights: tokenizer and sentence-transformers settings, copied unchanged.
_SIDE_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
)
TORCH_KINDS = ("sentence-transformers", "transformers", "pytorch")


# ---------------------------------------------------------------------------------------------------------------------
# the teacher's signal
# ---------------------------------------------------------------------------------------------------------------------


def train_split(ctx: OptimizeContext, recipe: str) -> Split:
    """The split students train on; a one-line error naming ``data.splits.train`` when the config has none."""
    if "train" not in ctx.dataset.splits:
        raise DeployableError(
            f"data.splits.train: the {recipe} recipe trains on the train split, which the config does not define "
            "(add data.splits.train, or remove the recipe)"
        )
    return ctx.dataset.splits["train"]


def teacher_signal(ctx: OptimizeContext, split: Split) -> StoredPredictions:
    """The source's logits and features on ``split`` through the prediction store (a forward pass only on a miss)."""
    return predict(
        ctx.predictors["source"],
        split,
        ctx.store,
        batch_size=ctx.batch_size,
        progress=ctx.progress,
        label=f"source · {split.name}",
    )


def cache_key(ctx: OptimizeContext, split: Split) -> dict[str, Any]:
    """What a trained artifact depends on besides its parent and options: the data, the teacher and the seed."""
    return {"train": split.fingerprint, "teacher": ctx.predictors["source"].fingerprint, "seed": ctx.cfg.seed}


# ---------------------------------------------------------------------------------------------------------------------
# students
# ---------------------------------------------------------------------------------------------------------------------


class Student(abc.ABC):
    """A trainable torch model made from a torch variant's files (never the predictor's own module).

    Attributes:
        module: every trainable part (encoder and head), for the optimizer and parameter counts.
        spec: the parent's spec, the template of the saved variant's spec.
    """

    torch: Any
    module: Any
    spec: dict[str, Any]

    @abc.abstractmethod
    def forward(self, batch: Any) -> tuple[Any, Any]:
        """Logits (B, C) and penultimate features (B, D) or None, with gradients."""

    @abc.abstractmethod
    def prunable(self) -> list[Any]:
        """The nn.Linear layers pruning may zero: those of the encoder (or of the whole module)."""

    def transformer(self) -> Any | None:
        """The transformer whose layers and FFN neurons can be removed, or None for a plain nn.Module."""
        return None

    @abc.abstractmethod
    def save(self, folder: Path) -> dict[str, Any]:
        """Write the student into ``folder``; return the spec that loads it."""

    def n_parameters(self) -> int:
        return int(sum(p.numel() for p in self.module.parameters()))


def _holder(torch: Any, **parts: Any) -> Any:
    """One nn.Module over the encoder and the head, so one optimizer and one train()/eval() reach both."""
    holder = torch.nn.Module()
    for name, part in parts.items():
        holder.add_module(name, part)
    return holder


class SentenceStudent(Student):
    """A sentence-transformers encoder (same pooling and normalization) plus its head."""

    def __init__(self, spec: dict[str, Any]):
        from deployable.models.text import read_head
        from deployable.models.torch_models import SentenceEncoder, build_head_module

        self.spec = dict(spec)
        self.folder = Path(spec["encoder"])
        self.encoder = SentenceEncoder(self.folder, max_length=spec.get("max_length", 128))
        self.torch = self.encoder.torch
        tensors, self.label_names = read_head(Path(spec["head"]))
        self.head = build_head_module(self.torch, tensors)
        self.module = _holder(self.torch, encoder=self.encoder.module, head=self.head)

    def forward(self, batch: Any) -> tuple[Any, Any]:
        from deployable.models.text import tokenize
        from deployable.models.torch_models import pool_torch

        enc = tokenize(self.encoder.tokenizer, batch, self.encoder.max_length, framework="pt")
        hidden = self.encoder.module(**enc).last_hidden_state
        emb = pool_torch(self.torch, hidden, enc["attention_mask"], **self.encoder.pooling)
        return self.head(emb), emb

    def prunable(self) -> list[Any]:
        # BERT's pooler is saved with the encoder but unused by sentence pooling: zeros there would be sparsity for show
        return [
            m
            for name, m in self.encoder.module.named_modules()
            if isinstance(m, self.torch.nn.Linear) and not name.startswith("pooler")
        ]

    def transformer(self) -> Any:
        return self.encoder.module

    def save(self, folder: Path) -> dict[str, Any]:
        st = require("safetensors.torch", feature="saving torch variants")
        encoder_dir = folder / "encoder"
        self.encoder.module.save_pretrained(str(encoder_dir))
        copy_side_files(self.folder, encoder_dir)
        linears = [m for m in self.head if isinstance(m, self.torch.nn.Linear)]
        tensors = {"weight": linears[-1].weight, "bias": linears[-1].bias}
        if len(linears) == 2:
            tensors |= {"hidden.weight": linears[0].weight, "hidden.bias": linears[0].bias}
        head = folder / "head.safetensors"
        metadata = {"labels": json.dumps(list(self.label_names))} if self.label_names is not None else None
        st.save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(head), metadata=metadata)
        return {**self.spec, "encoder": str(encoder_dir), "head": str(head)}


class TransformersStudent(Student):
    """A transformers sequence classifier; the classifier's input is the penultimate feature."""

    def __init__(self, spec: dict[str, Any]):
        from deployable.models.text import load_tokenizer, quiet_transformers

        self.torch = require("torch", feature="transformers models")
        self.spec = dict(spec)
        self.folder = Path(spec["path"])
        self.max_length = spec.get("max_length", 256)
        self.tokenizer = load_tokenizer(self.folder)
        auto = quiet_transformers().AutoModelForSequenceClassification
        self.module = auto.from_pretrained(str(self.folder), local_files_only=True).eval()
        self._features = _FeatureHook(getattr(self.module, "classifier", None) or getattr(self.module, "score", None))

    def forward(self, batch: Any) -> tuple[Any, Any]:
        from deployable.models.text import tokenize

        enc = tokenize(self.tokenizer, batch, self.max_length, framework="pt")
        logits = self.module(**enc).logits
        return logits, self._features.pop()

    def prunable(self) -> list[Any]:
        base = getattr(self.module, "base_model", self.module)
        return [m for m in base.modules() if isinstance(m, self.torch.nn.Linear)]

    def transformer(self) -> Any:
        return self.module

    def save(self, folder: Path) -> dict[str, Any]:
        model_dir = folder / "model"
        self._features.remove()
        self.module.save_pretrained(str(model_dir))
        copy_side_files(self.folder, model_dir)
        return {**self.spec, "path": str(model_dir)}


class ModuleStudent(Student):
    """``factory(**kwargs)`` with the parent's weights (or fresh weights, for a student of another size)."""

    def __init__(self, spec: dict[str, Any], *, kwargs: dict[str, Any] | None = None, init_seed: int | None = None):
        from deployable.models.torch_models import import_factory

        self.torch = require("torch", feature="PyTorch models")
        self.spec = dict(spec)
        self.kwargs = dict(spec.get("kwargs") or {}) if kwargs is None else dict(kwargs)
        factory = import_factory(spec["factory"], Path(spec["base_dir"]))
        if init_seed is None:  # the parent's own architecture: start from its weights
            st = require("safetensors.torch", feature="PyTorch models")
            self.module = factory(**self.kwargs)
            self.module.load_state_dict(st.load_file(spec["weights"]))
        else:  # another size: fresh weights, seeded
            self.torch.manual_seed(init_seed)
            self.module = factory(**self.kwargs)
        self.module.eval()
        self._features = _FeatureHook(self._feature_layer(spec.get("feature_layer")))

    def _feature_layer(self, name: str | None) -> Any:
        modules = dict(self.module.named_modules())
        if name is not None:
            return modules.get(name)
        linears = [m for m in modules.values() if isinstance(m, self.torch.nn.Linear)]
        return linears[-1] if linears else None

    def forward(self, batch: Any) -> tuple[Any, Any]:
        from deployable.models.base import as_float_batch

        logits = self.module(self.torch.from_numpy(as_float_batch(batch)))
        return logits, self._features.pop()

    def prunable(self) -> list[Any]:
        return [m for m in self.module.modules() if isinstance(m, self.torch.nn.Linear)]

    def save(self, folder: Path) -> dict[str, Any]:
        st = require("safetensors.torch", feature="saving torch variants")
        self._features.remove()
        weights = folder / "model.safetensors"
        state = {k: v.detach().contiguous() for k, v in self.module.state_dict().items()}
        st.save_file(state, str(weights))
        return {**self.spec, "weights": str(weights), "kwargs": self.kwargs}


class _FeatureHook:
    """Captures the input of one layer (the penultimate feature) during a forward pass, keeping gradients."""

    def __init__(self, layer: Any):
        self.value: Any = None
        self.handle = layer.register_forward_pre_hook(self._capture) if layer is not None else None

    def _capture(self, _module: Any, args: tuple[Any, ...]) -> None:
        x = args[0]
        self.value = x[:, 0] if x.dim() == 3 else x.flatten(1)  # as the predictors capture it

    def pop(self) -> Any:
        value, self.value = self.value, None
        return value

    def remove(self) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None


def check_torch_parent(parent: Variant, recipe: str) -> None:
    """Fail with a one-line error unless ``parent`` is a torch model a student can be made from."""
    if parent.kind not in TORCH_KINDS:
        raise DeployableError(
            f"optimize.recipes: {recipe} trains a torch model, but '{parent.name}' is a {parent.kind} model "
            f"(set parent: to a {', '.join(TORCH_KINDS)} variant, usually 'source')"
        )


def load_student(parent: Variant, recipe: str) -> Student:
    """A trainable copy of ``parent``, loaded from its files."""
    check_torch_parent(parent, recipe)
    if parent.kind == "sentence-transformers":
        return SentenceStudent(parent.spec)
    if parent.kind == "transformers":
        return TransformersStudent(parent.spec)
    return ModuleStudent(parent.spec)


def variant_files(spec: dict[str, Any], parent: Variant) -> list[Path]:
    """The files a saved student's variant consists of (a pytorch variant keeps its parent's factory code)."""
    if spec["type"] == "sentence-transformers":
        return [Path(spec["encoder"]), Path(spec["head"])]
    if spec["type"] == "transformers":
        return [Path(spec["path"])]
    return [Path(spec["weights"]), *(Path(f) for f in parent.files if f.endswith(".py"))]


def copy_side_files(source: Path, target: Path) -> None:
    """Copy tokenizer files, modules.json and the module folders it names (1_Pooling...) from ``source``."""
    target.mkdir(parents=True, exist_ok=True)
    for name in _SIDE_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)
    modules = source / "modules.json"
    if modules.is_file():
        for module in json.loads(modules.read_text()):
            sub = module.get("path") or ""
            if sub and (source / sub).is_dir():
                shutil.copytree(source / sub, target / sub, dirs_exist_ok=True)


def factory_default(spec: dict[str, Any], name: str) -> tuple[bool, Any]:
    """Whether a pytorch factory takes keyword ``name``, and its default (``inspect.Parameter.empty`` if none)."""
    from deployable.models.torch_models import import_factory

    factory = import_factory(spec["factory"], Path(spec["base_dir"]))
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins and some C extensions have no signature
        return False, inspect.Parameter.empty
    if name in params:
        return True, params[name].default
    return False, inspect.Parameter.empty


# ---------------------------------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------------------------------


def distillation_loss(
    student_logits: Any,
    teacher_logits: Any,
    *,
    temperature: float,
    student_features: Any = None,
    teacher_features: Any = None,
    feature_weight: float = FEATURE_WEIGHT,
) -> tuple[Any, dict[str, float]]:
    """Soft-label distillation loss, plus feature matching where both features are given.

    ``T^2 * KL(p_t || p_s)`` with ``p = softmax(logits / T)`` (Hinton et al., 2015; the T^2 keeps gradients of the
    same size across temperatures), plus ``feature_weight * mean ||f_s - f_t||^2 / mean ||f_t||^2``.

    Args:
        student_logits: (B, C) with gradients.
        teacher_logits: (B, C).
        temperature: softening temperature T.
        student_features: (B, D) or None.
        teacher_features: (B, D) or None.
        feature_weight: weight of the relative feature error.

    Returns:
        The scalar loss and its parts as floats.
    """
    import torch.nn.functional as F

    t = temperature
    kl = F.kl_div(
        F.log_softmax(student_logits / t, dim=-1),
        F.log_softmax(teacher_logits / t, dim=-1),
        reduction="batchmean",
        log_target=True,
    ) * (t * t)
    parts = {"kl": float(kl.detach())}
    loss = kl
    if student_features is not None and teacher_features is not None:
        err = ((student_features - teacher_features) ** 2).sum(1).mean()
        rel = err / (teacher_features**2).sum(1).mean().clamp_min(1e-12)
        parts["feature"] = float(rel.detach())
        loss = loss + feature_weight * rel
    return loss, parts


@dataclass
class TrainReport:
    """What a training run did, for the variant's recipe record."""

    epochs: int
    steps: int = 0
    batch_size: int = TRAIN_BATCH_SIZE
    temperature: float = 1.0
    feature_matching: bool = False
    epoch_loss: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "steps": self.steps,
            "batch_size": self.batch_size,
            "temperature": self.temperature,
            "feature_matching": self.feature_matching,
            "epoch_loss": [round(x, 6) for x in self.epoch_loss],
            "final_train_loss": round(self.epoch_loss[-1], 6) if self.epoch_loss else None,
        }


def _train_batches(inputs: Any, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch of index batches: text grouped by length (little padding) in shuffled order, arrays shuffled."""
    if isinstance(inputs, list):
        plan = batch_plan(inputs, TRAIN_BATCH_SIZE)
        return [plan[i] for i in rng.permutation(len(plan))]
    order = rng.permutation(len(inputs))
    return [order[i : i + TRAIN_BATCH_SIZE] for i in range(0, len(order), TRAIN_BATCH_SIZE)]


def train_student(
    ctx: OptimizeContext,
    student: Student,
    split: Split,
    teacher: StoredPredictions,
    *,
    epochs: int,
    learning_rate: float,
    temperature: float,
    label: str,
) -> TrainReport:
    """Fit ``student`` to the teacher's soft labels (and features, when of the same width) on ``split``.

    AdamW with a linearly decaying learning rate, seeded by ``ctx.cfg.seed``. Dropout stays off: the student fits
    the teacher's deterministic outputs, and with dropout on, agreement with the source on the support-tickets
    validation split was no better (structured 30%: 0.900 either way; three-layer student: 0.850 against 0.856).
    """
    torch = student.torch
    report = TrainReport(epochs=epochs, temperature=temperature)
    if epochs == 0:
        return report
    torch.manual_seed(ctx.cfg.seed)
    rng = np.random.default_rng(ctx.cfg.seed)
    params = [p for p in student.module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate)
    steps_per_epoch = -(-len(split) // TRAIN_BATCH_SIZE)
    total = max(1, epochs * steps_per_epoch)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1.0 - step / total))
    t_logits = torch.from_numpy(np.ascontiguousarray(teacher.logits, dtype=np.float32))
    t_features = None
    if teacher.features is not None:
        t_features = torch.from_numpy(np.ascontiguousarray(teacher.features, dtype=np.float32))
    student.module.eval()
    for epoch in range(epochs):
        task = ctx.progress.task(f"{label} · train epoch {epoch + 1}/{epochs}", len(split))
        loss_sum, n_seen = 0.0, 0
        for index in _train_batches(split.inputs, rng):
            logits, features = student.forward(take(split.inputs, index))
            index_t = torch.from_numpy(np.asarray(index))
            matched = t_features is not None and features is not None and features.shape[1] == t_features.shape[1]
            report.feature_matching = report.feature_matching or matched
            loss, _ = distillation_loss(
                logits,
                t_logits[index_t],
                temperature=temperature,
                student_features=features if matched else None,
                teacher_features=t_features[index_t] if matched else None,
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            report.steps += 1
            loss_sum += float(loss.detach()) * len(index)
            n_seen += len(index)
            ctx.progress.advance(task, len(index))
        ctx.progress.done(task)
        report.epoch_loss.append(loss_sum / max(1, n_seen))
    student.module.eval()
    return report


# ---------------------------------------------------------------------------------------------------------------------
# transformer layout
# ---------------------------------------------------------------------------------------------------------------------

# (attribute of the base model holding ``.layer``, config key of the layer count)
_LAYER_STACKS = (("encoder", "num_hidden_layers"), ("transformer", "n_layers"))  # BERT family; DistilBERT


def layer_stack(model: Any, recipe: str) -> tuple[Any, str]:
    """The module whose ``.layer`` ModuleList holds the transformer layers, and the config key counting them."""
    torch = require("torch", feature="transformer models")
    base = getattr(model, "base_model", model)
    for attr, count_key in _LAYER_STACKS:
        owner = getattr(base, attr, None)
        if isinstance(getattr(owner, "layer", None), torch.nn.ModuleList) and hasattr(model.config, count_key):
            return owner, count_key
    kind = getattr(model.config, "model_type", type(model).__name__)
    raise DeployableError(
        f"optimize.recipes: {recipe} supports BERT-family and DistilBERT encoders (layers at encoder.layer or "
        f"transformer.layer), but this model is '{kind}' (use another recipe, e.g. int8-dynamic)"
    )
