"""The single-pass runner: forward passes go through the PredictionStore; every metric reads from it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deployable.config import EvaluateConfig
from deployable.core.errors import ModelError
from deployable.core.records import Evaluation, Target, Variant
from deployable.data.dataset import Dataset, Split
from deployable.evaluation.adversarial import adversarial_metrics
from deployable.evaluation.metrics import calibration_metrics, quality_metrics, slice_metrics, softmax
from deployable.evaluation.metrics.faithfulness import faithfulness
from deployable.evaluation.ood import ood_metrics, ood_split
from deployable.evaluation.predict import Progress, predict
from deployable.evaluation.robustness import robustness_metrics
from deployable.evaluation.store import PredictionStore
from deployable.models.base import Predictor


def evaluate_variant(
    variant: Variant,
    predictor: Predictor,
    dataset: Dataset,
    cfg: EvaluateConfig,
    store: PredictionStore,
    *,
    targets: Sequence[Target] = (),
    progress: Progress | None = None,
    predictions_dir: Path | None = None,
    reference: tuple[str, np.ndarray] | None = None,
    attack_source: tuple[str, Predictor] | None = None,
) -> Evaluation:
    """Every metric of one variant on the test split (temperature fitted on the calibration split).

    ``reference`` is (name, test-split logits) of the model this variant must stay faithful to; ``attack_source``
    is (name, predictor) of the model whose adversarial inputs are transferred to this variant (default: itself).
    """
    from deployable.evaluation.targets import measure_efficiency

    if predictor.label_names is not None and tuple(predictor.label_names) != tuple(dataset.label_names):
        raise ModelError(
            f"model: the model's classes {list(predictor.label_names)} differ from the data's "
            f"{list(dataset.label_names)}",
            hint="set data.labels in the model's logit order",
        )
    test = dataset.split(cfg.test_split)
    preds = predict(
        predictor, test, store, batch_size=cfg.batch_size, progress=progress, label=f"{variant.name} · {test.name}"
    )
    if preds.logits.shape[1] != dataset.n_classes:
        raise ModelError(
            f"model: gives {preds.logits.shape[1]} logits but the data has {dataset.n_classes} "
            f"classes {list(dataset.label_names)}",
            hint="check data.labels and the model",
        )
    calib_split = cfg.calibration_split if cfg.calibration_split in dataset.splits else None
    if calib_split:
        calib = dataset.split(calib_split)
        cal = predict(
            predictor,
            calib,
            store,
            batch_size=cfg.batch_size,
            progress=progress,
            label=f"{variant.name} · {calib.name}",
        )
        calib_logits, calib_true, fitted_on = cal.logits, calib.labels, calib_split
    else:  # no held-out split: fit on the test split itself, and say so in the record
        calib_logits, calib_true, fitted_on = preds.logits, test.labels, f"{test.name} (no calibration split)"

    y_true = test.labels
    y_prob = softmax(preds.logits)
    quality = quality_metrics(y_true, y_prob, label_names=list(dataset.label_names))
    calibration = calibration_metrics(
        y_true, preds.logits, calib_true=calib_true, calib_logits=calib_logits, fitted_on=fitted_on, n_bins=cfg.n_bins
    )
    slices = slice_metrics(
        y_true,
        y_prob,
        slices=test.slices,
        n_bootstrap=cfg.n_bootstrap,
        level=cfg.confidence_level,
        seed=cfg.seed,
        n_bins=cfg.n_bins,
        n_classes=dataset.n_classes,
    )
    predictions_file = None
    if predictions_dir is not None:
        predictions_file = write_predictions(
            predictions_dir / f"{variant.name}.parquet", test, y_prob, dataset.label_names
        )
    efficiency = ()
    if targets and cfg.efficiency.enabled:
        efficiency = tuple(measure_efficiency(variant, t, test, cfg.efficiency, progress=progress) for t in targets)
    faithful = None
    if reference is not None:
        faithful = faithfulness(
            y_true,
            preds.logits,
            reference[1],
            reference=reference[0],
            split=test.name,
            n_bootstrap=cfg.n_bootstrap,
            level=cfg.confidence_level,
            seed=cfg.seed,
            n_bins=cfg.n_bins,
        )
    ood = None
    out = ood_split(dataset, cfg)
    if out is not None:
        label = f"{variant.name} · {out[0].name}"
        ood_preds = predict(predictor, out[0], store, batch_size=cfg.batch_size, progress=progress, label=label)
        fit = None
        if preds.features is not None and cfg.ood.fit_split in dataset.splits:
            fit_split = dataset.split(cfg.ood.fit_split)
            fitted = predict(
                predictor,
                fit_split,
                store,
                batch_size=cfg.batch_size,
                progress=progress,
                label=f"{variant.name} · {fit_split.name}",
            )
            fit = (fit_split.name, fitted.features, fit_split.labels)
        ood = ood_metrics(test, preds.logits, preds.features, out, ood_preds.logits, ood_preds.features, fit)
    robustness = None
    if cfg.robustness.enabled:
        robustness = robustness_metrics(
            predictor, dataset, cfg, store, preds.logits, progress=progress, label=variant.name
        )
    adversarial = None
    if cfg.adversarial.enabled:
        adversarial = adversarial_metrics(
            predictor,
            dataset,
            cfg,
            store,
            preds.logits,
            attack_source=attack_source,
            progress=progress,
            label=variant.name,
        )
    return Evaluation(
        variant=variant.name,
        split=test.name,
        store_key=preds.key,
        quality=quality,
        calibration=calibration,
        slices=slices,
        efficiency=efficiency,
        predictions_file=predictions_file,
        faithfulness=faithful,
        ood=ood,
        robustness=robustness,
        adversarial=adversarial,
    )


def write_predictions(path: Path, split: Split, y_prob: np.ndarray, label_names: Sequence[str]) -> str:
    """Per-sample predictions as Parquet: id, label, predicted, one probability column per class, slices."""
    import pandas as pd

    names = np.asarray(label_names, dtype=object)
    frame = {
        "id": split.ids,
        "label": names[split.labels],
        "predicted": names[y_prob.argmax(1)],
        "confidence": y_prob.max(1),
    }
    for i, name in enumerate(label_names):
        frame[f"prob_{name}"] = y_prob[:, i]
    for col, values in split.slices.items():
        frame[f"slice_{col}"] = values
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(frame).to_parquet(path, index=False)
    return f"{path.parent.name}/{path.name}"
