"""The release registry: versions of a model (the chosen variant per target, the evidence, the lineage), aliases per
target, gated promotion, rollback and an append-only history; SQLite by default, any SQLAlchemy URL (PostgreSQL)."""

from deployable.registry._api import load, open_registry, registry_of_project, registry_of_run
from deployable.registry._records import AliasMove, ModelVersion, Problem, StoredFile, TargetRelease
from deployable.registry._store import PromotionRefused, Registry

__all__ = [
    "AliasMove",
    "ModelVersion",
    "Problem",
    "PromotionRefused",
    "Registry",
    "StoredFile",
    "TargetRelease",
    "load",
    "open_registry",
    "registry_of_project",
    "registry_of_run",
]
