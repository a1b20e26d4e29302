"""Transfers between schools (chuyển trường, HOCBA_SPEC §5).

- ``transfer``: one pupil moving from one school to another, seen by both schools;
- ``received_record``: the issued records a receiving school took in from a transfer
  package, verified and kept read-only (byte-identical XML, never edited).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

READ_ONLY_SQL = """
CREATE FUNCTION received_record_read_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'Học bạ nhận chuyển đến chỉ được đọc (%)', TG_OP USING ERRCODE = 'HBL03';
END $$;
CREATE TRIGGER received_record_read_only BEFORE UPDATE OR DELETE ON received_record
    FOR EACH ROW EXECUTE FUNCTION received_record_read_only();
"""


def upgrade() -> None:
    op.create_table(
        "transfer",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("pupil_cccd_sha256", sa.String(64), nullable=False),
        sa.Column("pupil_name", sa.String(), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("from_school_code", sa.String(), nullable=False),
        sa.Column("to_school_code", sa.String(), nullable=False),
        sa.Column("leaving_date", sa.Date(), nullable=False),
        sa.Column("state", sa.String(), nullable=False, server_default="exported"),
        sa.Column("package_sha256", sa.String(64), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("pupil_id", sa.Integer(), sa.ForeignKey("pupil.id"), nullable=True),
        sa.Column("review_reason", sa.String(), nullable=True),
        sa.Column("receipt", sa.LargeBinary(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.CheckConstraint(
            "state IN ('exported', 'needs_review', 'accepted', 'rejected', 'receipted')"
        ),
        sa.UniqueConstraint("package_sha256", "to_school_code"),
    )
    op.create_table(
        "received_record",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("transfer_id", sa.Integer(), sa.ForeignKey("transfer.id"), nullable=False),
        sa.Column("pupil_id", sa.Integer(), sa.ForeignKey("pupil.id"), nullable=False),
        sa.Column("school_id", sa.Integer(), sa.ForeignKey("school.id"), nullable=False),
        sa.Column("lookup_code", postgresql.UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("school_year", sa.String(), nullable=False),
        sa.Column("origin_school_code", sa.String(), nullable=False),
        sa.Column("xml", sa.LargeBinary(), nullable=False),
        sa.Column("xml_sha256", sa.String(64), nullable=False),
        sa.Column("verdict", sa.String(), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
    )
    op.create_index("received_record_pupil", "received_record", ["pupil_id"])
    op.execute(READ_ONLY_SQL)


def downgrade() -> None:
    op.execute(
        "DROP TRIGGER received_record_read_only ON received_record; "
        "DROP FUNCTION received_record_read_only();"
    )
    op.drop_index("received_record_pupil", table_name="received_record")
    op.drop_table("received_record")
    op.drop_table("transfer")
