"""Fewer bytes per record (issue 14, storage): the audit hashes as 32 bytes, no stored
``prev_hash``, and the record's content JSON out of the row versions.

- ``audit_event.hash`` and ``audit_head.hash`` were 64-character hex text (65 bytes on
  disk); they are ``bytea`` of the 32-byte digest. The chain's formula does not change
  (``hash = SHA-256(hex of the previous hash ‖ canonical JSON)``, ``hocba.models.audit``),
  so every chain written before verifies the same after.
- ``audit_event.prev_hash`` is gone: it was always the ``hash`` of the chain's event
  ``seq - 1`` (the genesis value for ``seq = 1``), which ``hocba audit verify`` reads
  anyway; an edited, deleted or reordered event still breaks the chain where it happened,
  because each hash covers the previous one. About 130 of an event's ~300 bytes, eight
  events per record.
- ``hoc_ba`` gets ``toast_tuple_target = 128``: the content JSON (≈1.1 KB compressed, under
  the default 2 KB threshold) used to sit inline in the row, so each of a record's eight
  updates (review, approve, three signatures, submit, accept…) copied it into a new row
  version. Out of line, an update copies only its 18-byte pointer; the content is written
  once per draft. Rows already stored move out of line when they are next rewritten with
  a new content (a refreshed draft); nothing else changes for them.

The audit table is rewritten once (``ALTER … TYPE``; its UPDATE/DELETE triggers do not
fire on a rewrite). Downgrade recomputes ``prev_hash`` from the chain order.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

UP = """
ALTER TABLE audit_event DROP COLUMN prev_hash,
    ALTER COLUMN hash TYPE bytea USING decode(hash, 'hex');
ALTER TABLE audit_head ALTER COLUMN hash TYPE bytea USING decode(hash, 'hex');
ALTER TABLE hoc_ba SET (toast_tuple_target = 128);
"""

DOWN = """
ALTER TABLE hoc_ba RESET (toast_tuple_target);
ALTER TABLE audit_head ALTER COLUMN hash TYPE varchar USING encode(hash, 'hex');
ALTER TABLE audit_event ADD COLUMN prev_hash varchar,
    ALTER COLUMN hash TYPE varchar USING encode(hash, 'hex');
-- the trigger refuses UPDATE of audit_event: rebuild the column without it
ALTER TABLE audit_event DISABLE TRIGGER USER;
UPDATE audit_event e SET prev_hash = coalesce(p.prev, repeat('0', 64))
FROM (SELECT id, lag(hash) OVER (PARTITION BY chain ORDER BY seq) AS prev
      FROM audit_event) p
WHERE p.id = e.id;
ALTER TABLE audit_event ENABLE TRIGGER USER;
ALTER TABLE audit_event ALTER COLUMN prev_hash SET NOT NULL;
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
