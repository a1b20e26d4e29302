"""Revocation at the province portal for approved corrections (transactions 5 and 6).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("correction_request", sa.Column("portal_message_id", sa.String(), nullable=True))
    op.add_column("correction_request", sa.Column("portal_request_id", sa.String(), nullable=True))
    op.add_column("correction_request", sa.Column("portal_status", sa.String(), nullable=True))


def downgrade() -> None:
    op.drop_column("correction_request", "portal_status")
    op.drop_column("correction_request", "portal_request_id")
    op.drop_column("correction_request", "portal_message_id")
