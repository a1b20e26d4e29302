"""Correction requests (yêu cầu chỉnh lý, HOCBA_SPEC §5).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "correction_request",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("record_id", sa.Integer(), sa.ForeignKey("hoc_ba.id"), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("decision_document", sa.String(), nullable=True),
        sa.Column("requested_by", sa.Integer(), sa.ForeignKey("staff.id"), nullable=False),
        sa.Column(
            "requested_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("status", sa.String(), nullable=False, server_default="pending"),
        sa.Column("decided_by", sa.Integer(), sa.ForeignKey("staff.id"), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.String(), nullable=True),
        sa.Column("new_record_id", sa.Integer(), sa.ForeignKey("hoc_ba.id"), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'approved', 'rejected')"),
    )
    op.create_index(
        "correction_one_pending",
        "correction_request",
        ["record_id"],
        unique=True,
        postgresql_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("correction_one_pending", table_name="correction_request")
    op.drop_table("correction_request")
