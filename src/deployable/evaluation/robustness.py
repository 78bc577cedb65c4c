"""Corruption robustness of one variant: accuracy, flip rate and ECE under every corruption and severity.

Every corrupted copy of the test sample goes through the PredictionStore under a key made of the clean split's
fingerprint and the corruption's id, so a rerun neither corrupts nor predicts again, and the corrupted inputs of one
(corruption, severity) are built once per run and shared by every variant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from deployable.config import EvaluateConfig
from deployable.core.errors import ConfigError, closest
from deployable.core.records import CorruptionResult, RobustnessMetrics
from deployable.data.dataset import Dataset, Split
from deployable.evaluation.batching import clean_reference, seeded_sample
from deployable.evaluation.metrics import softmax
from deployable.evaluation.metrics.calibration import expected_calibration_error
from deployable.evaluation.perturb import corrupt, corruption_names, perturbation_id
from deployable.evaluation.store import PredictionStore
from deployable.models.base import Predictor

if TYPE_CHECKING:
    from deployable.evaluation.predict import Progress


def selected_corruptions(dataset: Dataset, cfg: EvaluateConfig) -> tuple[str, ...]:
    """The corruptions the config asks for, checked against the data's modality."""
    suite = corruption_names(dataset.modality)
    wanted = cfg.robustness.corruptions
    if wanted is None:
        return suite
    for name in wanted:
        if name not in suite:
            match = closest(name, suite)
            raise ConfigError(
                f"evaluate.robustness.corruptions: unknown {dataset.modality} corruption '{name}'; valid: "
                + ", ".join(suite),
                hint=f"did you mean '{match}'?" if match else None,
            )
    return tuple(wanted)


def robustness_sample(dataset: Dataset, cfg: EvaluateConfig) -> tuple[Split, np.ndarray]:
    """The seeded sample of the test split the corruptions are applied to, and its row positions in the split."""
    return seeded_sample(dataset, cfg.test_split, cfg.robustness.max_samples, cfg.robustness.seed, salt=17)


def robustness_metrics(
    predictor: Predictor,
    dataset: Dataset,
    cfg: EvaluateConfig,
    store: PredictionStore,
    clean_logits: np.ndarray,
    *,
    progress: Progress | None = None,
    label: str = "",
) -> RobustnessMetrics:
    """Every selected corruption at every severity on the test sample. ``clean_logits`` are the whole test split's."""
    from deployable.evaluation.predict import predict_perturbed

    names = selected_corruptions(dataset, cfg)
    rob = cfg.robustness
    sample, index = robustness_sample(dataset, cfg)
    y = sample.labels
    clean = np.asarray(clean_logits)[index]
    clean_pred = clean.argmax(1)
    reference = None if dataset.modality == "text" else clean_reference(dataset, cfg.test_split)
    built: dict[str, Any] = dataset.__dict__.setdefault("_corrupted_inputs", {})
    task = progress.task(f"robustness {label}", len(names) * len(rob.severities)) if progress is not None else None
    results = []
    for name in names:
        for severity in rob.severities:
            pid = {**perturbation_id(dataset.modality, name, severity, rob.seed), "sample": sample.fingerprint}
            memo = f"{sample.fingerprint}:{name}:{severity}:{rob.seed}"

            def make(name: str = name, severity: int = severity, memo: str = memo) -> Any:
                if memo not in built:
                    built[memo] = corrupt(
                        sample.inputs, dataset.modality, name, severity, seed=rob.seed, reference=reference
                    )
                return built[memo]

            logits = predict_perturbed(predictor, sample, pid, make, store, batch_size=cfg.batch_size).logits
            pred = logits.argmax(1)
            results.append(
                CorruptionResult(
                    name=name,
                    severity=severity,
                    accuracy=float((pred == y).mean()),
                    flip_rate=float((pred != clean_pred).mean()),
                    ece=expected_calibration_error(y, softmax(logits), n_bins=cfg.n_bins),
                )
            )
            if progress is not None:
                progress.advance(task)
    if progress is not None:
        progress.done(task)
    clean_accuracy = float((clean_pred == y).mean())
    mca = float(np.mean([r.accuracy for r in results]))
    return RobustnessMetrics(
        modality=dataset.modality,
        n=len(sample),
        seed=rob.seed,
        clean_accuracy=clean_accuracy,
        clean_ece=expected_calibration_error(y, softmax(clean), n_bins=cfg.n_bins),
        mean_corruption_accuracy=mca,
        relative_robustness=mca / clean_accuracy if clean_accuracy > 0 else float("nan"),
        mean_flip_rate=float(np.mean([r.flip_rate for r in results])),
        results=tuple(results),
    )
