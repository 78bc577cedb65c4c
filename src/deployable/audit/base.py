"""What every audit check returns, and how evidence (sample ids) is written."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deployable.core.records import Finding


@dataclass
class CheckOutput:
    """The result of one audit check before it becomes an :class:`~deployable.core.records.AuditCheck`.

    Attributes:
        findings: what the check found (empty when the data is clean).
        method: one line saying how the check worked (shown in the report), e.g.
            ``"cleanlab find_label_issues on 5-fold logistic-regression probabilities of penultimate features"``.
        details: numbers a reader may want besides the findings (thresholds, per-class counts, recall of planted...).
        skipped: why the check could not run, or None when it ran.
    """

    findings: list[Finding] = field(default_factory=list)
    method: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None


def evidence(
    split: str, ids: np.ndarray | Sequence[str], index: np.ndarray | Sequence[int] | None = None, *, limit: int = 1000
) -> tuple[str, ...]:
    """References ``"<split>:<id>"`` for ``ids[index]`` (all of ``ids`` when ``index`` is None), at most ``limit``.

    Findings always give the exact count in their message or details; the evidence list may be cut at ``limit``.
    """
    ids = np.asarray(ids)
    chosen = ids if index is None else ids[np.asarray(index, dtype=np.int64)]
    return tuple(f"{split}:{i}" for i in chosen[:limit].tolist())
