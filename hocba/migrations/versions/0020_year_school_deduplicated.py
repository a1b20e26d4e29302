"""The district page's covering index with ``issued_at`` in its key (issue 14, storage per
record).

Migration 0009's ``hoc_ba_year_school`` is ``(school_year_id, school_id, cohort, state)
INCLUDE (issued_at)``: an index with INCLUDE columns cannot use B-tree deduplication, so
every version of a record is one index tuple of its own. Each state change is a non-HOT
update (``state`` is indexed), so a record enters the index about eight times over a
season, and after VACUUM the index kept ~650 bytes per record of half-empty pages (a
REINDEX of the same table: ~60). With ``issued_at`` as the last key column the index
answers the same queries (the counts per school, cohort and stage stay an index-only
scan, ``issued_at >= :since`` is read from the index) and its equal keys are
deduplicated: before the seal every record of a school, cohort and state has the same
key (``issued_at`` is NULL), after it one ``issued_at`` per seal batch.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("hoc_ba_lookup_code_key", "hoc_ba", type_="unique")
    op.create_index(
        "hoc_ba_lookup_code_key",
        "hoc_ba",
        ["lookup_code"],
        unique=True,
        postgresql_where=sa.text("lookup_code IS NOT NULL"),
    )
    op.drop_index("hoc_ba_year_school", table_name="hoc_ba")
    op.create_index(
        "hoc_ba_year_school",
        "hoc_ba",
        ["school_year_id", "school_id", "cohort", "state", "issued_at"],
    )


def downgrade() -> None:
    op.drop_index("hoc_ba_year_school", table_name="hoc_ba")
    op.create_index(
        "hoc_ba_year_school",
        "hoc_ba",
        ["school_year_id", "school_id", "cohort", "state"],
        postgresql_include=["issued_at"],
    )
    op.drop_index("hoc_ba_lookup_code_key", table_name="hoc_ba")
    op.create_unique_constraint("hoc_ba_lookup_code_key", "hoc_ba", ["lookup_code"])
