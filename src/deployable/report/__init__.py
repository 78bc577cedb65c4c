"""Report stage: ``RunResult`` -> ``results.json`` and a self-contained ``report.html``."""

from deployable.report.dataset_card import write_dataset_card
from deployable.report.html import ReportSection, render_report, write_report, write_results_json
from deployable.report.model_card import write_model_card
from deployable.report.rmf import write_rmf

__all__ = [
    "ReportSection",
    "render_report",
    "write_dataset_card",
    "write_model_card",
    "write_report",
    "write_results_json",
    "write_rmf",
]
