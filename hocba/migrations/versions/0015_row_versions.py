"""Fewer bytes per record (issue 14, storage, second pass): room in ``hoc_ba``'s pages for
the row versions of a record's state updates.

A record is updated seven times after its draft is written (to review, approve, GVCN,
CBQL, seal, submit, accept), each a new row version. With the default ``fillfactor``
(100) the drafts fill their pages completely, so every version went to another page and
the table grew with them: after a province run it was ~93% free space (3.8 KB of heap per
232-byte record), which a plain VACUUM marks reusable but does not give back.

With ``fillfactor = 50`` an INSERT leaves half of each page free, the next version of a
row is written into its own page and the page's dead versions are pruned the next time
the page is read, without waiting for VACUUM. The updates are not HOT (``state`` is in
``hoc_ba_school_state`` and ``hoc_ba_class_state``, so each one adds index entries),
but their heap space stays within the record's own page. Pages written before this
migration keep their layout until rewritten (``VACUUM FULL``, ``CLUSTER``); nothing else
changes for them.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

#: hoc_ba's fillfactor (tests/models/test_storage.py reads it)
HOC_BA_FILLFACTOR = 50

UP = f"ALTER TABLE hoc_ba SET (fillfactor = {HOC_BA_FILLFACTOR});"

DOWN = "ALTER TABLE hoc_ba RESET (fillfactor);"


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
