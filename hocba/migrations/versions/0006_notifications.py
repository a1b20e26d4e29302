"""Notifications: staff channels (Apprise URLs) and the delivery log.

- ``notification_channel``: where a staff member wants to be told (one Apprise URL per
  row: email, SMS gateway, chat app, webhook). The URL is stored as given (it may carry a
  password or a token) and is only ever shown masked.
- ``notification``: one row per message decided by the deadline flow (or a test message
  from the admin page), with its outcome. ``dedupe_key`` = kind + recipient + local date
  (Asia/Ho_Chi_Minh) is unique: at most one message of a kind per person per day.
  Failed deliveries are retried with backoff (``next_attempt_at``), then ``gave_up``.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

KINDS = (
    "teacher_pending",
    "principal_queue",
    "clerk_pending",
    "clerk_rejected",
    "district_at_risk",
    "district_digest",
    "escalation_principal",
    "escalation_district",
    "test",
)
STATUSES = ("pending", "sent", "failed", "gave_up")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "notification_channel",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("staff_id", sa.Integer(), sa.ForeignKey("staff.id"), nullable=False),
        sa.Column("apprise_url", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.UniqueConstraint("staff_id", "apprise_url", name="notification_channel_once"),
    )
    op.create_index("notification_channel_staff", "notification_channel", ["staff_id"])
    op.create_table(
        "notification",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("staff_id", sa.Integer(), sa.ForeignKey("staff.id"), nullable=True),
        sa.Column("tag", sa.String(80), nullable=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("dedupe_key", sa.Text(), nullable=False, unique=True),
        sa.Column("school_id", sa.Integer(), sa.ForeignKey("school.id"), nullable=True),
        sa.Column("unit_id", sa.Integer(), sa.ForeignKey("org_unit.id"), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("link", sa.Text(), nullable=True),
        sa.Column(
            "facts", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")
        ),
        sa.Column("status", sa.String(12), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(_in("kind", KINDS), name="notification_kind"),
        sa.CheckConstraint(_in("status", STATUSES), name="notification_status"),
        sa.CheckConstraint("(staff_id IS NULL) <> (tag IS NULL)", name="notification_recipient"),
        sa.CheckConstraint("attempts >= 0", name="notification_attempts"),
    )
    op.create_index(
        "notification_due",
        "notification",
        ["next_attempt_at"],
        postgresql_where=sa.text("status IN ('pending', 'failed')"),
    )
    op.create_index("notification_staff_day", "notification", ["staff_id", "local_date"])
    op.create_index("notification_school_day", "notification", ["school_id", "local_date"])


def downgrade() -> None:
    op.drop_index("notification_school_day", table_name="notification")
    op.drop_index("notification_staff_day", table_name="notification")
    op.drop_index("notification_due", table_name="notification")
    op.drop_table("notification")
    op.drop_index("notification_channel_staff", table_name="notification_channel")
    op.drop_table("notification_channel")
