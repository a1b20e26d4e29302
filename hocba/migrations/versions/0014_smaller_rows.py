"""Fewer bytes per record (issue 14, storage): the partly signed XML out of ``hoc_ba``, the
audit hashes as 32 bytes, no stored ``prev_hash``, and the record's content JSON out of the
row versions.

- ``hoc_ba_signing (record_id, signed_xml)`` holds the XML of a record between its first
  signature and the seal (``teacher_signed``, ``principal_signed``); ``hoc_ba.signed_xml``
  is written once, by the seal, with the issued document. Before, the GVCN and the CBQL
  versions were each written into ``hoc_ba``'s TOAST table and left there as dead copies
  (≈5 and ≈6.5 KB compressed per record) until a vacuum, and a run of signatures faster
  than autovacuum grew the table by all three versions. Now the dead versions are in a
  small working table whose rows all go at the seal, so a vacuum gives its pages back
  (it is vacuumed after 200 changed rows, whatever its size). Records being signed when
  this runs move their XML there.

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
CREATE TABLE hoc_ba_signing (
    record_id integer PRIMARY KEY REFERENCES hoc_ba (id),
    signed_xml bytea NOT NULL
);
DO $$
BEGIN
    ALTER TABLE hoc_ba_signing ALTER COLUMN signed_xml SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    NULL;  -- a server built without lz4 keeps pglz
END $$;
ALTER TABLE hoc_ba_signing SET (autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 200, toast.autovacuum_vacuum_scale_factor = 0,
    toast.autovacuum_vacuum_threshold = 200);
INSERT INTO hoc_ba_signing (record_id, signed_xml)
    SELECT id, signed_xml FROM hoc_ba
    WHERE state IN ('teacher_signed', 'principal_signed') AND signed_xml IS NOT NULL;
UPDATE hoc_ba SET signed_xml = NULL
    WHERE state IN ('teacher_signed', 'principal_signed') AND signed_xml IS NOT NULL;

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
UPDATE hoc_ba r SET signed_xml = w.signed_xml FROM hoc_ba_signing w WHERE w.record_id = r.id;
DROP TABLE hoc_ba_signing;
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
