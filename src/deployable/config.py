"""``deployable.yaml``: pydantic models that reject typos, and the loader that turns errors into one line.

Every relative path in the file is resolved against the folder holding the file. ``deployable schema`` prints
:func:`json_schema`; ``docs/config.md`` documents every key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from deployable._config_errors import explain
from deployable._config_plugins import plugin_name, plugin_section
from deployable.core.errors import ConfigError, closest

BUILTIN_TARGETS: dict[str, dict[str, Any]] = {
    "edge-cpu": {
        "threads": 1,
        "batch_sizes": [1],
        "memory_budget_mb": 1024,
        "price_per_hour": 0.0116,
        "description": "one core, one request at a time (a small ARM/x86 box or a 1-vCPU instance)",
    },
    "cloud-cpu": {
        "threads": 0,
        "batch_sizes": [32],
        "memory_budget_mb": 8192,
        "price_per_hour": 0.085,
        "description": "all cores of the host, batched requests (a 2-vCPU general-purpose cloud instance)",
    },
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------------------------------------------------


class _Model(_Strict):
    allow_unsafe_files: bool = Field(
        False,
        description="load model files even when the scan finds code that runs on loading (pickle globals outside the "
        "allowlist); only for files you made yourself",
    )


class TransformersModel(_Model):
    """A Hugging Face transformers folder holding a sequence-classification model and its tokenizer."""

    type: Literal["transformers"]
    path: str = Field(description="folder with config.json, weights and tokenizer files, or 'package:<module>/<sub>'")
    max_length: int = Field(256, ge=1, description="longest tokenized input; batches pad to their longest input")


class SentenceTransformersModel(_Model):
    """A sentence-transformers encoder (transformer + pooling + normalize) plus a classification head."""

    type: Literal["sentence-transformers"]
    encoder: str = Field(description="encoder folder, or 'package:<module>/<sub>' for one a Python package ships")
    head: str = Field(
        description="safetensors file with the head: 'weight' (C, D) and 'bias' (C,), optionally "
        "'hidden.weight'/'hidden.bias' for one hidden ReLU layer"
    )
    max_length: int = Field(128, ge=1, description="longest tokenized input; batches pad to their longest input")


class PyTorchModel(_Model):
    """A torch.nn.Module built by ``module:factory`` with weights from safetensors."""

    type: Literal["pytorch"]
    factory: str = Field(description="'module:callable' returning an nn.Module; the config's folder is importable")
    weights: str = Field(
        description="state dict: a safetensors file (preferred), or a .pt/.pth/.bin/.ckpt file, scanned before loading"
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments for the factory")
    feature_layer: str | None = Field(
        None, description="module whose input is the penultimate feature; default: the last nn.Linear"
    )


class TorchScriptModel(_Model):
    """A TorchScript file (``torch.jit.save``)."""

    type: Literal["torchscript"]
    path: str = Field(description="TorchScript file")


class OnnxModel(_Model):
    """An ONNX file run by onnxruntime. Text models name the tokenizer folder that feeds them."""

    type: Literal["onnx"]
    path: str = Field(description=".onnx file")
    tokenizer: str | None = Field(None, description="tokenizer folder for text models (input_ids/attention_mask)")
    max_length: int = Field(256, ge=1, description="longest tokenized input (text models)")
    pooling: Literal["none", "mean", "cls"] = Field(
        "none", description="for encoder-only ONNX graphs: pool the token embeddings before 'head'"
    )
    head: str | None = Field(None, description="safetensors head applied after pooling (encoder-only graphs)")


class PluginModel(_Model):
    """The section of a model plugin registered without a config model of its own: its keys go to the factory."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: str


ModelConfig = plugin_section("model", "type", PluginModel)


# ---------------------------------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------------------------------


class BinnedSlice(_Strict):
    """A slice made by binning a numeric column, or the length of a text column."""

    name: str = Field(description="slice column name in reports")
    column: str = Field(description="column to bin (the text column, for words/chars)")
    measure: Literal["value", "words", "chars"] = Field(
        "value", description="bin the value itself, or the number of words / characters of a text column"
    )
    bins: list[float] = Field(description="inner edges, ascending; values below the first go to the first bin")
    labels: list[str] | None = Field(None, description="one label per bin (len(bins) + 1); default: ranges")

    @model_validator(mode="after")
    def _check(self) -> BinnedSlice:
        if sorted(self.bins) != list(self.bins) or len(set(self.bins)) != len(self.bins):
            raise ValueError("bins must be strictly ascending")
        if self.labels is not None and len(self.labels) != len(self.bins) + 1:
            raise ValueError(f"labels needs {len(self.bins) + 1} entries (one more than bins), got {len(self.labels)}")
        return self


class DatasetCardConfig(_Strict):
    """What the dataset card says about where the data comes from; missing fields are flagged in the card."""

    pretty_name: str | None = Field(None, description="human name of the dataset; default: the project name")
    description: str | None = Field(None, description="what the data is and how it was collected")
    license: str | None = Field(None, description="SPDX licence id of the data (e.g. cc-by-4.0, bsd-3-clause)")
    source: str | None = Field(None, description="where the data comes from (URL, package, team)")
    language: list[str] | None = Field(None, description="ISO 639-1 codes of text data (e.g. [en])")
    citation: str | None = Field(None, description="how to cite the data")
    personal_data: str | None = Field(None, description="whether the data holds personal data, and how it is handled")


class DataConfig(_Strict):
    """Where the samples are and which columns mean what."""

    format: plugin_name("data", "auto", what="data format") = Field(  # type: ignore[valid-type]
        "auto", description="file format; 'auto' reads it from the extension (a folder means image-folder)"
    )
    splits: dict[str, str] = Field(
        description="split name -> file or folder; needs 'test', usually 'validation', "
        "'train'; 'ood' holds samples that belong to no class (any labels it has are ignored)"
    )
    modality: Literal["auto", "text", "image", "tabular"] = Field(
        "auto", description="what the inputs are; 'auto' infers it from the columns or array shapes"
    )
    text_column: str | None = Field(None, description="column holding the text (text data)")
    feature_columns: list[str] | None = Field(None, description="numeric feature columns (tabular data)")
    label_column: str = Field("label", description="column (or npz array 'y') holding the class")
    id_column: str | None = Field(None, description="unique sample id; default: '<split>-<row number>'")
    labels: list[str] | None = Field(None, description="class names in logit order; default: sorted train labels")
    slices: list[str | BinnedSlice] = Field(
        default_factory=list, description="metadata columns to slice by, or binned slices"
    )
    npz_keys: dict[str, str] = Field(
        default_factory=lambda: {"x": "x", "y": "y"}, description="array names in .npz files (x, y, ids, slice:<c>)"
    )
    image_size: list[int] | None = Field(None, description="[height, width] to resize images from a folder to")
    grayscale: bool = Field(False, description="read folder images as one channel")
    card: DatasetCardConfig = Field(default_factory=DatasetCardConfig, description="see below")

    @field_validator("splits")
    @classmethod
    def _needs_test(cls, v: dict[str, str]) -> dict[str, str]:
        if "test" not in v:
            raise ValueError("a 'test' split is required")
        return v


# ---------------------------------------------------------------------------------------------------------------------
# targets, evaluation, project
# ---------------------------------------------------------------------------------------------------------------------


class TargetConfig(_Strict):
    """A hardware profile. Threads 0 means every core of the machine running the evaluation."""

    name: str = Field(description="how reports and policies refer to this target")
    threads: int = Field(1, ge=0, description="CPU threads for inference; 0 = all cores")
    batch_sizes: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [1], description="batch sizes to time"
    )
    memory_budget_mb: float | None = Field(None, gt=0)
    price_per_hour: float | None = Field(None, ge=0, description="what an hour of this hardware costs, in USD")
    description: str = Field("", description="free text shown in the report")


class EfficiencyConfig(_Strict):
    """Latency, throughput, memory and cost measurement on each target."""

    enabled: bool = Field(True, description="measure efficiency on every target")
    warmup: int = Field(5, ge=0, description="untimed calls before timing")
    min_repetitions: int = Field(30, ge=1, description="timed calls at least")
    max_seconds: float = Field(4.0, gt=0, description="stop timing one batch size after this long (past minimum)")


class OodConfig(_Strict):
    """Out-of-distribution detection: the test split against an OOD set, scored by MSP, max-logit, energy and
    Mahalanobis (on penultimate features, where the model exposes them)."""

    enabled: bool = Field(True, description="score OOD detection for every variant")
    split: str = Field("ood", description="split of inputs that belong to no class")
    synthetic: bool = Field(
        True, description="when that split is missing, score against a synthetic OOD set (labelled synthetic)"
    )
    n_synthetic: int = Field(300, ge=10, description="size of the synthetic OOD set")
    fit_split: str = Field("train", description="split whose features fit the Mahalanobis class means and covariance")


class RobustnessConfig(_Strict):
    """Corruption robustness: every variant on corrupted copies of the test split, five severities each."""

    enabled: bool = Field(True, description="evaluate every variant under the corruption suite of the data's modality")
    corruptions: list[str] | None = Field(
        None, description="corruption names to run; default: the whole suite of the modality (see docs/robustness.md)"
    )
    severities: list[int] = Field([1, 2, 3, 4, 5], description="severities to run, 1 (mild) to 5 (strong)")
    max_samples: int | None = Field(
        250, ge=10, description="corrupt a seeded sample of this many test samples (null: the whole split)"
    )
    seed: int = Field(0, description="seed of the corruptions (the same seed gives the same corrupted inputs)")

    @field_validator("severities")
    @classmethod
    def _severities(cls, v: list[int]) -> list[int]:
        if not v or any(s not in (1, 2, 3, 4, 5) for s in v) or len(set(v)) != len(v):
            raise ValueError("give distinct severities from 1 to 5")
        return sorted(v)


class AdversarialConfig(_Strict):
    """Adversarial robustness under a stated threat model (see docs/robustness.md).

    Images and tables: white-box, untargeted FGSM and PGD (L-inf and L2) on a differentiable PyTorch source, with the
    true labels, through the Adversarial Robustness Toolbox; the source's adversarial inputs are then sent to every
    other variant (transfer). An ONNX-only source gets the score-based black-box Square attack instead. Text: a
    black-box character-level attack on each variant, under an edit budget.
    """

    enabled: bool = Field(True, description="attack every variant")
    max_samples: int = Field(100, ge=5, description="attack a seeded sample of this many test samples")
    epsilons: list[float] = Field(
        [0.01, 0.03, 0.1, 0.3],
        description="L-inf budgets as a share of the input range (images) or of each feature's standard deviation "
        "(tables); the L2 budget is the same times sqrt(number of input values)",
    )
    norms: list[Literal["inf", "2"]] = Field(["inf", "2"], description="norms of the white-box attacks")
    pgd_steps: int = Field(20, ge=1, description="PGD iterations (step size 2.5 * epsilon / steps, Madry et al.)")
    edit_budgets: list[int] = Field([1, 2, 4, 8], description="text: characters the attacker may edit per input")
    seed: int = Field(0, description="seed of the sample and of the attacks' random choices")

    @field_validator("epsilons", "edit_budgets")
    @classmethod
    def _positive_increasing(cls, v: list[Any]) -> list[Any]:
        if not v or any(x <= 0 for x in v):
            raise ValueError("give one or more positive values")
        return sorted(set(v))


class EvaluateConfig(_Strict):
    """How variants are evaluated."""

    test_split: str = Field("test", description="split every metric is computed on")
    calibration_split: str | None = Field(
        "validation", description="split the temperature is fitted on; null fits none"
    )
    batch_size: int = Field(32, ge=1, description="batch size of the evaluation forward passes")
    n_bins: int = Field(15, ge=2, description="reliability bins for ECE/MCE")
    n_bootstrap: int = Field(1000, ge=100, description="resamples for slice confidence intervals")
    confidence_level: float = Field(0.95, gt=0.5, lt=1, description="level of the confidence intervals")
    seed: int = Field(0, description="seed of every random choice (bootstrap)")
    efficiency: EfficiencyConfig = Field(default_factory=EfficiencyConfig, description="see below")
    ood: OodConfig = Field(default_factory=OodConfig, description="see below")
    robustness: RobustnessConfig = Field(default_factory=RobustnessConfig, description="see below")
    adversarial: AdversarialConfig = Field(default_factory=AdversarialConfig, description="see below")


class Tolerance(_Strict):
    """How faithful a variant must stay to the source model, judged with paired statistics on the tolerance split.

    A variant is accepted when two one-sided intervals (level ``1 - alpha`` each) clear their limits: the paired
    interval of its accuracy change stays above ``-max_accuracy_drop`` (non-inferiority, as the gate judges a
    candidate), and the Wilson interval of the share of predictions it changes stays below ``1 - min_agreement``.
    It is rejected when either interval lies wholly on the wrong side, and undecided otherwise.
    """

    max_accuracy_drop: float = Field(
        0.01,
        ge=0,
        le=1,
        description="largest accuracy loss the variant may have (0.01 = one point), judged with a paired interval; "
        "0 demands that no labeled sample goes from right to wrong",
    )
    min_agreement: float = Field(
        0.95,
        ge=0,
        le=1,
        description="smallest share of samples with the source's prediction, judged with an interval on the share "
        "changed; 1 demands identical predictions",
    )
    split: str | list[str] = Field(
        "validation",
        description="split (or splits, pooled) the tolerance is judged on; keep the test split out of it",
    )
    pool: bool = Field(
        True,
        description="when the intervals on `split` are too wide to decide, judge again on every labeled split "
        "except the test and OOD splits pooled (recorded in the check)",
    )
    alpha: float = Field(0.05, gt=0, lt=0.5, description="one-sided error level of each interval")

    @property
    def splits(self) -> list[str]:
        return [self.split] if isinstance(self.split, str) else list(self.split)

    @field_validator("split")
    @classmethod
    def _some_split(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and (not v or len(set(v)) != len(v)):
            raise ValueError("give one or more distinct split names")
        return v


class _Recipe(_Strict):
    # what the recipe transforms: an ONNX graph ("onnx"), a torch model ("torch"), or whatever its parent is ("any")
    input_kind: ClassVar[Literal["onnx", "torch", "any"]] = "any"

    name: str | None = Field(None, description="variant name; default: the recipe name")
    parent: str | None = Field(None, description="variant to start from; default: the recipe's natural parent")


class OnnxFp32Recipe(_Recipe):
    """Export to ONNX (dynamic batch and sequence axes), checked for parity with the source on real inputs."""

    input_kind: ClassVar[Literal["onnx", "torch", "any"]] = "torch"

    recipe: Literal["onnx-fp32"]


class OnnxFusedRecipe(_Recipe):
    """onnxruntime graph optimizations, with the transformer fusions (attention, layer norm, GELU) where they apply."""

    input_kind: ClassVar[Literal["onnx", "torch", "any"]] = "onnx"

    recipe: Literal["onnx-fused"]
    level: Literal["basic", "extended"] = Field(
        "extended",
        description="onnxruntime optimization level saved in the graph (hardware-specific 'all' is "
        "applied by every session at load time anyway)",
    )


class _Int8Recipe(_Recipe):
    """Options both INT8 recipes share."""

    input_kind: ClassVar[Literal["onnx", "torch", "any"]] = "onnx"

    per_channel: bool = Field(True, description="one weight scale per output channel (False: one per tensor)")
    search: bool = Field(True, description="fall back the most sensitive nodes to float until within tolerance")
    smooth: bool | Literal["auto"] = Field(
        "auto",
        description="SmoothQuant: move activation outliers into the weights first (one extra Mul per smoothed "
        "activation, paid at every call); auto: only when the fully quantized graph without it is not within "
        "tolerance",
    )
    smooth_alpha: float | None = Field(
        None, gt=0, le=1, description="migration strength; default: chosen on calibration samples from 0.5-0.9"
    )


class Int8DynamicRecipe(_Int8Recipe):
    """INT8 weights, activations quantized on the fly (onnxruntime ``quantize_dynamic``)."""

    recipe: Literal["int8-dynamic"]
    reduce_range: bool = Field(False, description="7-bit weights, for CPUs without VNNI")


class Int8StaticRecipe(_Int8Recipe):
    """INT8 weights and activations (QDQ), activation ranges calibrated on a sample of the calibration split."""

    recipe: Literal["int8-static"]
    method: Literal["minmax", "entropy", "percentile"] = Field("minmax", description="calibration method")
    percentile: float = Field(99.999, gt=90, lt=100, description="for method: percentile")
    activations: Literal["auto", "uint8", "int8"] = Field(
        "auto",
        description="activation type: uint8 is the fast kernel on x86 (VNNI), int8 on ARM; auto picks for this machine",
    )


class Fp16Recipe(_Recipe):
    """FP16 weights and compute; helps on GPUs and recent ARM CPUs, rarely on x86 CPUs (the report says so)."""

    input_kind: ClassVar[Literal["onnx", "torch", "any"]] = "onnx"

    recipe: Literal["fp16"]


class PrunedRecipe(_Recipe):
    """Pruning with torch's utilities, then a short fine-tune on the train split against the source's soft labels."""

    input_kind: ClassVar[Literal["onnx", "torch", "any"]] = "torch"

    recipe: Literal["pruned"]
    method: Literal["magnitude", "structured"] = Field(
        "structured", description="magnitude: zero the smallest weights; structured: remove whole FFN neurons"
    )
    amount: float = Field(0.3, gt=0, lt=1, description="share of weights (or neurons) removed")
    epochs: int = Field(2, ge=0, description="fine-tuning epochs on the train split")
    learning_rate: float = Field(3e-5, gt=0, description="fine-tuning learning rate")


class DistilledRecipe(_Recipe):
    """A smaller student (for transformers, a subset of layers) trained on the source's soft labels."""

    input_kind: ClassVar[Literal["onnx", "torch", "any"]] = "torch"

    recipe: Literal["distilled"]
    layers: list[int] | None = Field(None, description="encoder layers the student keeps; default: every other one")
    epochs: int = Field(4, ge=1, description="training epochs on the train split")
    learning_rate: float = Field(5e-5, gt=0, description="training learning rate")
    temperature: float = Field(2.0, gt=0, description="softening temperature of the teacher's labels")


class PluginRecipe(_Recipe):
    """An entry of a recipe plugin registered without a config model of its own: its keys go to the recipe."""

    model_config = ConfigDict(extra="allow", frozen=True)
    recipe: str


RecipeConfig = plugin_section("recipe", "recipe", PluginRecipe)


class OptimizeConfig(_Strict):
    """Which variants to make from the source model, and how faithful they must stay."""

    recipes: list[RecipeConfig] = Field(default_factory=list, description="recipes, by name or with options")
    tolerance: Tolerance = Field(default_factory=Tolerance, description="faithfulness a variant must keep")
    calibration_split: str = Field("train", description="split the calibration samples are drawn from")
    calibration_samples: int = Field(256, ge=8, description="samples for static quantization's calibration")
    opset: int = Field(17, ge=13, le=21, description="ONNX opset of exported graphs")
    seed: int = Field(0, description="seed of sampling and training in recipes")
    min_gain: float = Field(
        0.05,
        ge=0,
        lt=1,
        description="smallest relative gain over its parent, in p50 latency (at some batch size on some target) or "
        "in file size, that makes a variant worth shipping; a variant with neither is marked 'no gain' and never "
        "selected",
    )

    @field_validator("recipes", mode="before")
    @classmethod
    def _names_to_mappings(cls, v: Any) -> Any:
        # 'int8-dynamic' is short for {recipe: int8-dynamic}
        return [{"recipe": r} if isinstance(r, str) else r for r in v] if isinstance(v, list) else v

    @model_validator(mode="after")
    def _unique_names(self) -> OptimizeConfig:
        names = [r.name or r.recipe for r in self.recipes]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"two recipes would make a variant named {dup[0]!r}; give one a 'name'")
        if "source" in names:
            raise ValueError("'source' names the model as given; pick another variant name")
        known = {"source", *names}
        for r in self.recipes:
            if r.parent is not None and r.parent not in known:
                hint = closest(r.parent, known)
                raise ValueError(
                    f"parent {r.parent!r} is not a variant of this config"
                    + (f" (did you mean {hint!r}?)" if hint else "")
                )
        return self


class DuplicatesConfig(_Strict):
    """Exact and near duplicates within and across splits, and duplicates whose labels disagree."""

    enabled: bool = Field(True, description="look for duplicates and train/test leakage")
    near: bool = Field(True, description="also look for near duplicates (not only exact ones after normalisation)")
    ngram: int = Field(5, ge=2, description="text: characters per shingle of the MinHash signature")
    num_perm: int = Field(128, ge=16, description="text: MinHash permutations")
    bands: int = Field(32, ge=2, description="text: LSH bands (num_perm / bands rows each)")
    jaccard_threshold: float = Field(
        0.7, gt=0, le=1, description="text: shingle-set Jaccard similarity from which two texts are near duplicates"
    )
    embeddings: Literal["auto", "on", "off"] = Field(
        "auto",
        description="also compare the model's penultimate features by cosine; 'auto': only for sentence encoders "
        "(trained for similarity), since a classifier's features cluster by class and would call any two samples of "
        "a class near copies",
    )
    cosine_threshold: float = Field(
        0.97,
        gt=0,
        le=1,
        description="cosine similarity of the model's penultimate features from which two samples "
        "are near duplicates (when the model exposes features)",
    )
    phash_max_distance: int = Field(
        4, ge=0, le=32, description="image: largest Hamming distance (of 64 bits) between perceptual hashes"
    )
    pixel_max_rms: float = Field(
        0.03,
        ge=0,
        le=1,
        description="images smaller than 32x32 (too small for a perceptual hash): largest root-mean-square pixel "
        "difference, as a share of the pixel range",
    )
    tabular_max_distance: float = Field(
        0.05,
        ge=0,
        description="tabular: largest Euclidean distance in the standardised feature space, per sqrt(feature)",
    )

    @field_validator("embeddings", mode="before")
    @classmethod
    def _yaml_on_off(cls, v: Any) -> Any:
        # YAML 1.1 reads a bare on/off as a boolean
        return {True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v

    @model_validator(mode="after")
    def _bands_divide(self) -> DuplicatesConfig:
        if self.num_perm % self.bands:
            raise ValueError(f"bands ({self.bands}) must divide num_perm ({self.num_perm})")
        return self


class LabelIssuesConfig(_Strict):
    """Confident learning (cleanlab) on out-of-sample probabilities."""

    enabled: bool = Field(True, description="look for likely label errors")
    splits: list[str] | None = Field(None, description="splits to check; default: every labeled split")
    probe: Literal["auto", "features", "model"] = Field(
        "auto",
        description="'features': cross-validated logistic regression on the model's penultimate features; 'model': "
        "the model's own probabilities (only out of sample on splits it was not trained on); 'auto': features when "
        "the model exposes them",
    )
    folds: int = Field(5, ge=2, description="cross-validation folds of the probe")
    train_split: str = Field(
        "train", description="split the model was trained on (its own probabilities are in-sample)"
    )


class ImbalanceConfig(_Strict):
    """Class imbalance within a split and label-distribution shift between splits."""

    enabled: bool = Field(True, description="check class balance and label shift")
    max_ratio: float = Field(10.0, ge=1, description="largest/smallest class count from which a split is imbalanced")
    min_class_count: int = Field(10, ge=0, description="a class with fewer samples than this in a split is flagged")
    alpha: float = Field(0.01, gt=0, lt=1, description="significance of the chi-square test of label shift")


class OutliersConfig(_Strict):
    """Samples far from the rest of their split, scored on the model's penultimate features."""

    enabled: bool = Field(True, description="look for outliers")
    k: int = Field(10, ge=1, description="neighbours of the k-nearest-neighbour outlier score")
    quantile: float = Field(
        0.999,
        gt=0.5,
        lt=1,
        description="a sample is an outlier when its score exceeds this quantile of the train "
        "split's leave-one-out scores by the margin below",
    )
    margin: float = Field(1.5, ge=1, description="multiple of the quantile from which a score is an outlier")


class PoisoningConfig(_Strict):
    """Backdoor and poisoning detectors on the penultimate features of each class."""

    enabled: bool = Field(True, description="look for poisoned samples")
    split: str = Field("train", description="split the model was trained on")
    methods: list[Literal["spectral-signature", "activation-clustering"]] = Field(
        ["spectral-signature", "activation-clustering"], description="detectors to run"
    )
    expected_fraction: float = Field(
        0.05, gt=0, lt=0.5, description="largest share of a class an attacker is assumed to poison"
    )
    min_class_size: int = Field(20, ge=4, description="classes with fewer samples are not analysed")
    seed: int = Field(0, description="seed of clustering")


class AuditConfig(_Strict):
    """The audit of the data (and the scan of the model files, which always runs)."""

    enabled: bool = Field(True, description="audit the data in 'deployable run'")
    duplicates: DuplicatesConfig = Field(default_factory=DuplicatesConfig, description="see below")
    labels: LabelIssuesConfig = Field(default_factory=LabelIssuesConfig, description="see below")
    imbalance: ImbalanceConfig = Field(default_factory=ImbalanceConfig, description="see below")
    outliers: OutliersConfig = Field(default_factory=OutliersConfig, description="see below")
    poisoning: PoisoningConfig = Field(default_factory=PoisoningConfig, description="see below")
    max_evidence: int = Field(1000, ge=1, description="sample ids kept per finding (the count is always exact)")


class PolicyCheck(_Strict):
    """One check: ``metric op value``, absolute or relative to the baseline's value of the same metric."""

    metric: str = Field(
        description="metric path in the results, e.g. calibration.ece or efficiency.edge-cpu.latency_ms.p95"
    )
    op: Literal["<=", "<", ">=", ">", "==", "!="] = Field(description="comparison")
    value: float = Field(description="threshold (with relative: the allowed difference candidate - baseline)")
    relative: bool = Field(
        False, description="compare candidate - baseline (needs policy.baseline) instead of the value"
    )
    critical: bool = Field(True, description="a failed critical check fails the variant; a non-critical one warns")
    name: str | None = Field(None, description="how reports call the check; default: the check as written")


class BaselineConfig(_Strict):
    """The production model the candidates are compared with, on the same test split."""

    run: str | None = Field(None, description="a previous run folder (its predictions/<variant>.parquet are read)")
    variant: str = Field("source", description="which variant of that run is in production")
    model: dict[str, Any] | None = Field(
        None, description="or a model section (as under model:) that is loaded and run on the test split"
    )
    registry: str | None = Field(
        None,
        description="or a released version, NAME@ALIAS or NAME@N, of the project's registry (its stored test "
        "predictions are read; the test split's fingerprint must match)",
    )
    target: str | None = Field(
        None, description="with registry: the target whose shipped variant is the baseline; default: the first target"
    )
    name: str | None = Field(None, description="how reports call the baseline; default: 'production'")

    @model_validator(mode="after")
    def _one_source(self) -> BaselineConfig:
        if sum(x is not None for x in (self.run, self.model, self.registry)) != 1:
            raise ValueError(
                "give exactly one of 'run' (a previous run folder), 'model' (a model section) or 'registry' (a "
                "released version, NAME@ALIAS)"
            )
        if self.target is not None and self.registry is None:
            raise ValueError("'target' chooses a released version's variant: it goes with 'registry'")
        return self


class ComparisonConfig(_Strict):
    """How a candidate is compared with the baseline: paired statistics with a non-inferiority margin."""

    margin: float = Field(
        0.01, ge=0, lt=1, description="accuracy the candidate may lose overall (0.01 = one point) and still pass"
    )
    slice_margin: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="accuracy a slice may lose: 0 fails a slice on any regression the data shows (family-wise "
        "error controlled) and passes it only on a shown improvement; small slices stay inconclusive",
    )
    alpha: float = Field(0.05, gt=0, lt=0.5, description="family-wise error rate (Holm over the slices)")
    n_bootstrap: int = Field(2000, ge=200, description="paired bootstrap resamples")
    min_slice_n: int = Field(20, ge=1, description="slices with fewer test samples are not compared")
    per_class: bool = Field(
        True, description="also compare each class (its test samples) like a slice: a regression on one class"
    )
    inconclusive: Literal["warn", "fail"] = Field(
        "warn", description="what an undecided comparison does to the gate (small samples decide nothing)"
    )
    seed: int = Field(0, description="seed of the bootstrap")


class PolicyConfig(_Strict):
    """The release gate: checks over any metric of the run, and the comparison with production."""

    checks: list[str | PolicyCheck] = Field(
        default_factory=list,
        description="checks, as 'metric op value' strings (critical) or mappings with relative/critical",
    )
    baseline: BaselineConfig | None = Field(None, description="the production model; None: no comparison")
    comparison: ComparisonConfig = Field(default_factory=ComparisonConfig, description="see below")
    variants: list[str] | None = Field(None, description="variants that may be chosen; default: every accepted one")


class RegistryConfig(_Strict):
    """Where `deployable release` registers versions (docs/registry.md)."""

    url: str | None = Field(
        None,
        description="a SQLAlchemy URL (e.g. postgresql+psycopg://user@host/db) or a SQLite file; default: "
        "$DEPLOYABLE_REGISTRY, else <cache_dir>/registry.db",
    )
    artifacts: str | None = Field(
        None,
        description="folder of the registry's content-addressed files; default: $DEPLOYABLE_REGISTRY_ARTIFACTS, "
        "else <registry file>-artifacts beside a SQLite file (required with a server database)",
    )


class PrepareStep(_Strict):
    """A command that makes files the run needs (train a head, write data), rerun when its inputs change."""

    run: list[str] = Field(description="argv, run in the config's folder; 'python' means this interpreter")
    outputs: list[str] = Field(description="files the step makes; the step runs when one is missing or stale")
    inputs: list[str] = Field(default_factory=list, description="files whose content change makes outputs stale")


class Project(_Strict):
    """Keys at the top of the file."""

    name: str = Field(description="project name, used in reports")
    description: str = Field("", description="what the model does, for the report and cards")
    prepare: list[PrepareStep] = Field(default_factory=list, description="steps that make files the run needs")
    model: ModelConfig = Field(description="the model source; 'type' picks one of the sections below")
    data: DataConfig = Field(description="the data source")
    targets: list[str | TargetConfig] = Field(
        default_factory=lambda: ["edge-cpu", "cloud-cpu"],
        description="built-in names (edge-cpu, cloud-cpu) or target definitions",
    )
    optimize: OptimizeConfig = Field(default_factory=OptimizeConfig, description="variants to make and keep")
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig, description="how variants are evaluated")
    audit: AuditConfig = Field(default_factory=AuditConfig, description="data checks and model-file scan")
    policy: PolicyConfig = Field(default_factory=PolicyConfig, description="the release gate")
    registry: RegistryConfig = Field(default_factory=RegistryConfig, description="the release registry")
    cache_dir: str = Field(".deployable-cache", description="prediction store and other caches")
    base_dir: str = Field("", description="set by the loader: the config's folder (relative paths resolve here)")

    @field_validator("targets")
    @classmethod
    def _known_targets(cls, v: list[str | TargetConfig]) -> list[str | TargetConfig]:
        for t in v:
            if isinstance(t, str) and t not in BUILTIN_TARGETS:
                hint = closest(t, BUILTIN_TARGETS)
                extra = f" (did you mean '{hint}'?)" if hint else ""
                raise ValueError(
                    f"unknown built-in target '{t}'{extra}; built-ins: {', '.join(BUILTIN_TARGETS)}, "
                    "or define one with name/threads/batch_sizes"
                )
        return v

    def path(self, p: str) -> Path:
        """Resolve a path from the config against the config's folder."""
        q = Path(p).expanduser()
        return q if q.is_absolute() else Path(self.base_dir) / q


# ---------------------------------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------------------------------


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``deployable.yaml``."""
    schema = Project.model_json_schema()
    schema["properties"].pop("base_dir", None)
    return schema


CONFIG_NAME = "deployable.yaml"


def config_file(path: Path) -> Path:
    """The config a path names: a file as it is, or the ``deployable.yaml`` inside a project folder."""
    if not path.is_dir():
        return path  # load_config reports a missing file, with a did-you-mean
    inside = path / CONFIG_NAME
    if inside.is_file():
        return inside
    yamls = sorted(p.name for p in path.glob("*.y*ml") if p.is_file())
    raise ConfigError(
        f"{path}: is a folder without a {CONFIG_NAME}",
        hint=f"pass one of its config files: {', '.join(yamls)}" if yamls else f"pass the path to a {CONFIG_NAME}",
    )


def load_config(
    source: str | Path | dict[str, Any],
    *,
    base_dir: str | Path | None = None,
    overrides: list[str] | None = None,
) -> Project:
    """Parse a config file (or a dict) into a :class:`Project`, with one-line errors naming the key path.

    Args:
        source: path to ``deployable.yaml`` (or to the folder holding it), or the already-parsed mapping.
        base_dir: folder relative paths resolve against; default: the file's folder (or the working directory).
        overrides: ``key.path=value`` settings applied before validation (``--set`` on the command line); the
            value is read as YAML (``optimize.recipes=[]``, ``evaluate.batch_size=16``, ``model.head=h.safetensors``).
    """
    label = "config"
    if isinstance(source, dict):
        raw = dict(source)
        base = Path(base_dir or ".").resolve()
    else:
        path = config_file(Path(source))
        label = str(path)
        if not path.is_file():
            sibling = closest(path.name, [p.name for p in path.parent.glob("*")]) if path.parent.is_dir() else None
            hint = f"did you mean '{path.parent / sibling}'?" if sibling else "pass the path to a deployable.yaml"
            raise ConfigError(f"{path}: expected a config file, but it does not exist", hint=hint)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "invalid YAML"
            raise ConfigError(f"{path}: invalid YAML{where}: {problem}", hint="fix the YAML syntax") from exc
        if not isinstance(raw, dict):
            raise ConfigError(
                f"{path}: expected a mapping of keys at the top level, found {type(raw).__name__}",
                hint="start the file with 'name:', 'model:', 'data:'",
            )
        base = Path(base_dir).resolve() if base_dir else path.resolve().parent
    for item in overrides or []:
        apply_override(raw, item)
    raw["base_dir"] = str(base)
    try:
        project = Project.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(explain(label, exc, Project)) from exc
    _check_files(label, project)
    return project


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set ``key.path=value`` in a parsed config (the value read as YAML); lists are indexed by number."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set: expected key.path=value, found '{item}'", hint="e.g. --set evaluate.batch_size=16")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: the value '{text}' is not valid YAML") from exc
    node: Any = raw
    parts = key.strip().split(".")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"--set {key}: '{'.'.join(parts[:i])}' is a list; '{part}' is not an index in it")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise ConfigError(f"--set {key}: '{'.'.join(parts[:i])}' is a value, not a section")


def _check_files(label: str, project: Project) -> None:
    """Files the config names must exist, unless a prepare step makes them (or the folder they are written in)."""
    outputs = [project.path(o).resolve() for step in project.prepare for o in step.outputs]
    made = {*outputs, *(parent for o in outputs for parent in o.parents)}

    def check(key: str, value: str | None) -> None:
        if value is None or value.startswith("package:"):
            return
        p = project.path(value)
        if p.exists() or p.resolve() in made:
            return
        sibling = None
        if p.parent.is_dir():
            sibling = closest(p.name, [q.name for q in p.parent.iterdir()])
        fix = (
            f"did you mean '{Path(value).parent / sibling}'?"
            if sibling
            else "check the path; it is relative to the config's folder"
        )
        raise ConfigError(f"{label}: {key}: expected a file, but '{value}' does not exist ({fix})")

    m = project.model
    for name in ("path", "encoder", "head", "weights", "tokenizer"):
        if hasattr(m, name):
            check(f"model.{name}", getattr(m, name))
    for split, p in project.data.splits.items():
        check(f"data.splits.{split}", p)
    for i, step in enumerate(project.prepare):
        for j, p in enumerate(step.inputs):
            check(f"prepare.{i}.inputs.{j}", p)


def resolve_targets(project: Project, cpu_count: int) -> list[Any]:
    """The project's targets as :class:`~deployable.core.records.Target` records (threads 0 -> all cores)."""
    from deployable.core.records import Target

    out = []
    for t in project.targets:
        spec = {"name": t, **BUILTIN_TARGETS[t]} if isinstance(t, str) else t.model_dump()
        threads = spec["threads"] or cpu_count
        out.append(
            Target(
                name=spec["name"],
                threads=int(threads),
                batch_sizes=tuple(spec["batch_sizes"]),
                memory_budget_mb=spec.get("memory_budget_mb"),
                price_per_hour=spec.get("price_per_hour"),
                description=spec.get("description", ""),
            )
        )
    names = [t.name for t in out]
    if len(set(names)) != len(names):
        raise ConfigError("config: targets: two targets share a name (give each target a unique name)")
    return out
