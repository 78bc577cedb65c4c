"""The audit stage: checks of the data (duplicates, leakage, label errors, imbalance, outliers, poisoning) and the
scan of the model files, each turned into :class:`~deployable.core.records.Finding` records.

The model's own outputs (penultimate features, probabilities) come from the prediction store, so an audit inside
``deployable run`` costs no forward pass the evaluation would not make anyway (the train split's features also fit
the OOD detector). Without a model (or without features) the checks fall back to what the data alone allows and say
so in their :class:`~deployable.core.records.AuditCheck`.
"""

from deployable.audit._audit import ModelOutputs, audit_dataset, model_outputs
from deployable.audit.guard import scan_model

__all__ = ["ModelOutputs", "audit_dataset", "model_outputs", "scan_model"]
