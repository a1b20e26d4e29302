"""An index on ``hoc_ba.supersedes_id`` where it is set (a record's successor).

``registry.issued_record`` (every verification against the school's registry: the public
lookup, ``hocba verify``, the PDF check) joins a record to the one that supersedes it,
``LEFT JOIN hoc_ba n ON n.supersedes_id = r.id``. Without an index that join read the
whole table: 122–172 ms a lookup at 500k records (found measuring migration 0020). Only
corrections set ``supersedes_id``, so the partial index holds a handful of rows and costs
nothing to the pipeline's writes.

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "hoc_ba_supersedes",
        "hoc_ba",
        ["supersedes_id"],
        postgresql_where=sa.text("supersedes_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("hoc_ba_supersedes", table_name="hoc_ba")
