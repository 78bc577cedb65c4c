"""Report stage: ``RunResult`` -> ``results.json`` and a self-contained ``report.html``."""

from deployable.report.html import ReportSection, render_report, write_report, write_results_json

__all__ = ["ReportSection", "render_report", "write_report", "write_results_json"]
