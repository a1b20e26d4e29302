"""The partly signed XML in ``hoc_ba_signing`` stored without pglz (issue 14, PostgreSQL CPU
per record).

A record's XML is written there twice (GVCN, then CBQL) and read twice (CBQL, seal), and
the seal deletes the row: it is a working copy, not what the school keeps. On a server
built without lz4 (the embedded PostgreSQL from PyPI) migration 0014's ``SET COMPRESSION
lz4`` fell back to pglz, which cost PostgreSQL ~0.3 ms per 15.6 KB document written
against ~0.1 ms stored out of line uncompressed (``STORAGE EXTERNAL``; 350 real GVCN/CBQL
documents, docs/PERFORMANCE.md "Worker and PostgreSQL CPU per record (issue 14, session
9)"): two writes per record. The price is disk while a record is being signed (~15.6
instead of ~7.9 KB per version, dead versions included, until the table's early vacuum
of 0014 empties it after the seal); the issued XML in ``hoc_ba.signed_xml`` stays
compressed. A server with lz4 keeps lz4 (cheap, half the bytes), as the bundled portal
does for its accepted XML.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

UP = """
DO $$
BEGIN
    IF (SELECT attcompression FROM pg_attribute
        WHERE attrelid = 'hoc_ba_signing'::regclass AND attname = 'signed_xml') <> 'l' THEN
        ALTER TABLE hoc_ba_signing ALTER COLUMN signed_xml SET STORAGE EXTERNAL;
    END IF;
END $$;
"""

DOWN = "ALTER TABLE hoc_ba_signing ALTER COLUMN signed_xml SET STORAGE EXTENDED;"


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
