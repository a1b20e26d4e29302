"""Submissions to the province portal and its per-record results (HOCBA_SPEC §6).

- ``submission``: one transaction 1 (a package of issued records), with its messageid
  persisted BEFORE it is sent, so a retry after any failure reuses it;
- ``portal_result``: the portal's verdict on each record (transaction 2), with its error
  fields (an issued record itself can never change, so results live here).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "submission",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("school_id", sa.Integer(), sa.ForeignKey("school.id"), nullable=False),
        sa.Column("school_year_id", sa.Integer(), sa.ForeignKey("school_year.id"), nullable=False),
        sa.Column("cohort", sa.String(), nullable=False),
        sa.Column("message_id", sa.String(), nullable=False, unique=True),
        sa.Column("record_ids", postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.Column("status", sa.String(), nullable=False, server_default="pending"),
        sa.Column("response_code", sa.String(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("results_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'sent', 'done', 'refused')"),
    )
    op.create_index("submission_open", "submission", ["school_id", "status"])
    op.create_table(
        "portal_result",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("record_id", sa.Integer(), sa.ForeignKey("hoc_ba.id"), nullable=False),
        sa.Column("submission_id", sa.Integer(), sa.ForeignKey("submission.id"), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("error_field_title", sa.String(), nullable=True),
        sa.Column("error_description", sa.String(), nullable=True),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.UniqueConstraint("record_id", "submission_id"),
    )


def downgrade() -> None:
    op.drop_table("portal_result")
    op.drop_index("submission_open", table_name="submission")
    op.drop_table("submission")
