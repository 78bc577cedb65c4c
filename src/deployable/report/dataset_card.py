"""The dataset card of a run (``dataset_card.md``), in the Hugging Face format.

The YAML metadata is made with ``huggingface_hub``'s :class:`DatasetCardData`, so the Hub and its tools read it;
the body is rendered from the run's records alone (sizes, label distribution, slices, fingerprints, the audit's
findings). Fields only a person can fill (licence, source, description...) come from ``data.card`` in the config;
each missing one is flagged in the card with the key that fills it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deployable.core.records import SEVERITIES, RunResult
from deployable.report._format import atomic_write_text, card_config, fmt_pct, md_cell

__all__ = ["dataset_card", "missing_card_fields", "write_dataset_card"]

# (config key under data.card, what the card says when it is missing)
REQUIRED_FIELDS = {
    "description": "what the data is and how it was collected",
    "license": "the licence under which the data may be used",
    "source": "where the data comes from",
    "personal_data": "whether the data holds personal data, and how it is handled",
}

_TASKS = {"text": "text-classification", "image": "image-classification", "tabular": "tabular-classification"}

_TEMPLATE = Path(__file__).resolve().parent / "templates" / "dataset_card.md"


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M" if n < 10_000_000 else "n>10M"


def missing_card_fields(result: RunResult) -> list[tuple[str, str]]:
    """``(key under data.card, what it is)`` for every field a dataset card needs that the config leaves empty."""
    card = card_config(result)
    return [(k, what) for k, what in REQUIRED_FIELDS.items() if not card.get(k)]


def dataset_card(result: RunResult) -> str:
    """The dataset card of a run as Markdown with YAML metadata."""
    from huggingface_hub import DatasetCard, DatasetCardData

    card = card_config(result)
    info = result.dataset
    total = sum(s.n for s in info.splits)
    metadata = DatasetCardData(
        pretty_name=card.get("pretty_name") or info.name,
        license=card.get("license") or None,
        language=card.get("language") or None,
        size_categories=[_size_category(total)],
        task_categories=[_TASKS.get(info.modality, "other")],
        tags=["deployable"],
    )
    slices: dict[str, list[str]] = {}
    for s in info.splits:
        for column, counts in s.slice_counts.items():
            values = slices.setdefault(column, [])
            values.extend(v for v in counts if v not in values)
    audit = result.audit
    order = {sev: i for i, sev in enumerate(SEVERITIES)}
    findings = sorted(audit.findings, key=lambda f: order[f.severity]) if audit else []
    counts = audit.counts if audit else {}
    audit_counts = (
        "No findings." if audit and not audit.findings else ", ".join(f"{n} {sev}" for sev, n in counts.items() if n)
    )

    def refs(f: Any) -> str:
        shown = ", ".join(f"`{e}`" for e in f.evidence[:5])
        more = len(f.evidence) - 5
        return shown + (f" and {more} more" if more > 0 else "") if shown else (f.file or "")

    def count(s: Any, label: str) -> str:
        n = s.label_counts.get(label, 0)
        return f"{n:,} ({n / s.n:.0%})" if s.n else "0"

    text = DatasetCard.from_template(
        metadata,
        template_str=_TEMPLATE.read_text(encoding="utf-8"),
        pretty_name=card.get("pretty_name") or info.name,
        missing=missing_card_fields(result),
        description=card.get("description")
        or (
            f"{result.config['description']} (the project's description; the data's is missing)"
            if result.config.get("description")
            else ""
        ),
        source=card.get("source"),
        license=card.get("license"),
        personal_data=card.get("personal_data"),
        language=card.get("language"),
        citation=card.get("citation"),
        modality=info.modality,
        task=_TASKS.get(info.modality, "classification"),
        n_classes=len(info.label_names),
        run_name=result.name,
        version=result.deployable_version,
        created_at=result.created_at,
        splits=info.splits,
        labels=[
            *info.label_names,
            *(["(unlabeled)"] if any("(unlabeled)" in s.label_counts for s in info.splits) else []),
        ],
        slices=slices,
        audit=audit,
        audit_counts=audit_counts,
        findings=findings,
        refs=refs,
        count=count,
        pct=fmt_pct,
        cell=md_cell,
    )
    return str(text).rstrip() + "\n"


def write_dataset_card(result: RunResult, path: Path) -> Path:
    """Write :func:`dataset_card` to ``path`` atomically."""

    return atomic_write_text(Path(path), dataset_card(result))
