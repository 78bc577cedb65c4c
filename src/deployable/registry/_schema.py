"""The registry's tables as SQLAlchemy 2 models. The schema is made and changed only by the Alembic revisions in
``alembic/versions/`` (never ``create_all``); these classes describe the head revision for the queries."""

from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ModelRow(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    created_at: Mapped[str] = mapped_column(String(40), nullable=False)


class VersionRow(Base):
    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("model_id", "number", name="uq_versions_model_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[str] = mapped_column(String(40), nullable=False)
    created_by: Mapped[str] = mapped_column(String(200), nullable=False)
    run_folder: Mapped[str] = mapped_column(Text, nullable=False)
    verdict_status: Mapped[str] = mapped_column(String(20), nullable=False)
    lineage: Mapped[str] = mapped_column(Text, nullable=False)  # JSON
    missing: Mapped[str] = mapped_column(Text, nullable=False)  # JSON list: reference data the run did not have


class TargetRow(Base):
    """What a version ships to one target: the chosen variant and whether the gate passed it there."""

    __tablename__ = "version_targets"

    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), primary_key=True)
    target: Mapped[str] = mapped_column(String(200), primary_key=True)
    variant: Mapped[str | None] = mapped_column(String(200), nullable=True)
    passed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    failed_checks: Mapped[str] = mapped_column(Text, nullable=False)  # JSON list of one-line check results


class FileRow(Base):
    """One file of a version: ``role`` is variant:<name>, evidence or reference; ``path`` is relative."""

    __tablename__ = "version_files"

    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(220), primary_key=True)
    path: Mapped[str] = mapped_column(String(1000), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    size: Mapped[int] = mapped_column(Integer, nullable=False)


class AliasRow(Base):
    __tablename__ = "aliases"

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(200), primary_key=True)
    target: Mapped[str] = mapped_column(String(200), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), nullable=False)


class EventRow(Base):
    """An alias move: appended, never updated or deleted."""

    __tablename__ = "alias_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), nullable=False, index=True)
    at: Mapped[str] = mapped_column(String(40), nullable=False)
    user: Mapped[str] = mapped_column(String(200), nullable=False)
    action: Mapped[str] = mapped_column(String(20), nullable=False)  # promote | rollback
    alias: Mapped[str] = mapped_column(String(200), nullable=False)
    target: Mapped[str] = mapped_column(String(200), nullable=False)
    from_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_version: Mapped[int] = mapped_column(Integer, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    forced: Mapped[bool] = mapped_column(Boolean, nullable=False)
    evidence: Mapped[str] = mapped_column(Text, nullable=False)
