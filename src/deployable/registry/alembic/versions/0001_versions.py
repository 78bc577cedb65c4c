"""models, versions, their targets and files, aliases

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("run_folder", sa.Text, nullable=False),
        sa.Column("verdict_status", sa.String(20), nullable=False),
        sa.Column("lineage", sa.Text, nullable=False),
        sa.Column("missing", sa.Text, nullable=False),
        sa.UniqueConstraint("model_id", "number", name="uq_versions_model_number"),
    )
    op.create_table(
        "version_targets",
        sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), primary_key=True),
        sa.Column("target", sa.String(200), primary_key=True),
        sa.Column("variant", sa.String(200), nullable=True),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("failed_checks", sa.Text, nullable=False),
    )
    op.create_table(
        "version_files",
        sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), primary_key=True),
        sa.Column("role", sa.String(220), primary_key=True),
        sa.Column("path", sa.String(1000), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
    )
    op.create_index("ix_version_files_sha256", "version_files", ["sha256"])
    op.create_table(
        "aliases",
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), primary_key=True),
        sa.Column("alias", sa.String(200), primary_key=True),
        sa.Column("target", sa.String(200), primary_key=True),
        sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), nullable=False),
    )


def downgrade() -> None:
    for table in ("aliases", "version_files", "version_targets", "versions", "models"):
        op.drop_table(table)
