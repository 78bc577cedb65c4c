"""The records the registry returns: a version, an alias, an alias move, a problem found by ``verify``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deployable.core.records import Record


@dataclass(frozen=True)
class TargetRelease(Record):
    """What a version ships to one target."""

    target: str
    variant: str | None
    passed: bool
    failed_checks: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoredFile(Record):
    role: str  # "variant:<name>", "evidence" or "reference"
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ModelVersion(Record):
    """One released version of a model."""

    name: str
    number: int
    created_at: str
    created_by: str
    run_folder: str
    verdict_status: str
    targets: tuple[TargetRelease, ...]
    lineage: dict[str, Any]
    files: tuple[StoredFile, ...] = ()
    missing: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()  # "alias (target)" pointing at this version

    def target(self, name: str) -> TargetRelease | None:
        return next((t for t in self.targets if t.target == name), None)


@dataclass(frozen=True)
class AliasMove(Record):
    """One entry of the append-only history."""

    at: str
    user: str
    action: str
    alias: str
    target: str
    from_version: int | None
    to_version: int
    reason: str
    forced: bool
    evidence: str


@dataclass(frozen=True)
class Problem(Record):
    """Something ``verify`` found wrong."""

    kind: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
