"""Fewer bytes per record (issue 14, storage, second pass): room in ``hoc_ba``'s pages for
the row versions of a record's state updates, and the content out of line from the draft.

A record is updated seven times after its draft is written (to review, approve, GVCN,
CBQL, seal, submit, accept), each a new row version. With the default ``fillfactor``
(100) the drafts filled their pages, so every version went to another page and the table
grew with them (after a province run ~93% free space: 3.8 KB of heap per ~230-byte
record), which a plain VACUUM marks reusable but does not give back.

- ``fillfactor = 50``: an INSERT leaves half of each page free, the next version of a
  row is written into its own page and the page's dead versions are pruned the next time
  the page is read, without waiting for VACUUM. The updates are not HOT (``state`` is in
  ``hoc_ba_school_state`` and ``hoc_ba_class_state``, so each adds index entries), but
  their heap space stays within the record's own page.
- ``toast_pad``: 2,100 zero bytes by default, ``STORAGE MAIN``, never read. PostgreSQL
  runs its toaster on a new row only when the row is over ``TOAST_TUPLE_THRESHOLD``
  (~2 KB, a compile-time constant) or already points into a TOAST table;
  ``toast_tuple_target`` (128 since 0014) only sets how far the toaster shrinks a row
  once it runs. A draft is ``INSERT … SELECT`` of ``year_summary.content``, ~1.5–2 KB
  of JSONB that the import already compressed inline (or left plain when its row was
  under the threshold there), so the draft row (~1.1–1.9 KB) stayed under the threshold
  and its content stayed inline until the seal's row pointed into TOAST: three drafts a
  page, copied by each of the five updates before the seal. With the pad every new row
  is over the threshold, so the toaster moves the content out of line at the INSERT and
  compresses the pad to 35 bytes in the row. Later updates carry an 18-byte content
  pointer and the 35-byte pad; nothing reads or writes the column (the ORM model does
  not map it).

Pages written before this migration keep their layout until rewritten (``VACUUM FULL``,
``CLUSTER``). Adding the column does not rewrite the table: rows written before read the
default without storing it, and their next update writes it (compressed), which moves
their content out of line too.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

#: bytes of the pad that makes every new row go through the toaster (see above)
TOAST_PAD_BYTES = 2100

UP = f"""
ALTER TABLE hoc_ba SET (fillfactor = 50);
ALTER TABLE hoc_ba ADD COLUMN toast_pad bytea
    DEFAULT decode(repeat('00', {TOAST_PAD_BYTES}), 'hex');
ALTER TABLE hoc_ba ALTER COLUMN toast_pad SET STORAGE MAIN;
"""

DOWN = """
ALTER TABLE hoc_ba DROP COLUMN toast_pad;
ALTER TABLE hoc_ba RESET (fillfactor);
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
