"""Transfers move only along their transition table; a dashboard session may also send a
school's records to the Sở (issue 15).

- ``transfer_guard``: a transfer's state (its creation included) changes only through
  ``hocba.models.transfer_lifecycle.transition_transfer``, which sets
  ``hocba.transfer_lifecycle = on`` for the statement (``HBT01`` otherwise), and only along
  a move of ``TRANSFER_TRANSITIONS`` (``HBT02``); a transfer row is never deleted
  (``HBT01``). ``tests/models/test_transfer_trigger_matches_table.py`` ties the moves
  below to the table.
- ``signing_session.purpose``: ``sign`` (what it was) or ``submit`` — the clerk's "Gửi Sở
  ngay", a Prefect flow run that sends the school's records with the seal the worker holds
  (backend ``worker``), followed by the page like a signing session.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

UP = """
CREATE FUNCTION transfer_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    moves CONSTANT text[] := ARRAY['new>exported', 'new>accepted', 'new>needs_review',
        'exported>accepted', 'exported>needs_review', 'needs_review>accepted',
        'needs_review>rejected', 'exported>rejected', 'exported>receipted',
        'accepted>receipted'];
    move text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'Lượt chuyển trường #% không được xóa', OLD.id USING ERRCODE = 'HBT01';
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.state IS NOT DISTINCT FROM OLD.state THEN
        RETURN NEW;
    END IF;
    IF coalesce(current_setting('hocba.transfer_lifecycle', true), '') <> 'on' THEN
        RAISE EXCEPTION 'Trạng thái chuyển trường chỉ được đổi qua quy trình (transfer lifecycle)'
            USING ERRCODE = 'HBT01';
    END IF;
    move := CASE WHEN TG_OP = 'INSERT' THEN 'new' ELSE OLD.state END || '>' || NEW.state;
    IF NOT move = ANY(moves) THEN
        RAISE EXCEPTION 'Lượt chuyển trường không thể chuyển %', move USING ERRCODE = 'HBT02';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER transfer_guard BEFORE INSERT OR UPDATE OR DELETE ON transfer
    FOR EACH ROW EXECUTE FUNCTION transfer_guard();

ALTER TABLE signing_session
    ADD COLUMN purpose text NOT NULL DEFAULT 'sign' CHECK (purpose IN ('sign', 'submit')),
    DROP CONSTRAINT signing_session_backend_check,
    ADD CONSTRAINT signing_session_backend_check
        CHECK (backend IN ('remote', 'pkcs11', 'worker'));
"""

DOWN = """
DELETE FROM signing_session WHERE purpose <> 'sign';
ALTER TABLE signing_session DROP COLUMN purpose,
    DROP CONSTRAINT signing_session_backend_check,
    ADD CONSTRAINT signing_session_backend_check CHECK (backend IN ('remote', 'pkcs11'));
DROP TRIGGER transfer_guard ON transfer;
DROP FUNCTION transfer_guard();
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
