"""Cheaper writes per record (issue 14): progress counted per statement, the issued-record
guard without JSON, lz4 compression of the record's content and signed XML.

- ``progress_day_count`` was a row trigger: one ``INSERT … ON CONFLICT`` per audit event
  (eight per record over its life). It is now a statement trigger over the statement's
  new rows (``REFERENCING NEW TABLE``): one grouped upsert per COPY of events, the same
  counts.
- ``hoc_ba_guard`` compared ``to_jsonb(NEW)`` with ``to_jsonb(OLD)`` for every update of an
  issued record (submitting, accepting): both rows, with the content and the signed XML
  hex-encoded, turned into JSON twice per record. It now compares the rows themselves,
  state columns set aside: the same rule (every column, present and future, is locked)
  without building JSON.
- ``content`` and ``signed_xml`` are compressed with lz4 (when the server has it), which is
  both smaller than pglz on this data and several times cheaper to compress; values
  already stored keep their compression until rewritten.
- ``hoc_ba`` (and its TOAST table) is vacuumed after 2% of its rows changed instead of 20%,
  so the three signed XML versions a record goes through reuse each other's space.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

MILESTONES = "('teacher_sign', 'principal_sign', 'seal', 'submit', 'accept')"

UP = f"""
DROP TRIGGER progress_day_count ON audit_event;
DROP FUNCTION progress_day_count();
CREATE FUNCTION progress_day_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO progress_day (school_year_id, school_id, day, action, n)
    SELECT r.school_year_id, r.school_id, (ev.at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date,
           ev.action, count(*)
    FROM new_events ev JOIN hoc_ba r ON r.id = ev.record_id
    WHERE ev.action IN {MILESTONES}
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (school_year_id, school_id, day, action)
    DO UPDATE SET n = progress_day.n + excluded.n;
    RETURN NULL;
END $$;
CREATE TRIGGER progress_day_count AFTER INSERT ON audit_event
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION progress_day_count();

CREATE OR REPLACE FUNCTION hoc_ba_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    locked CONSTANT text[] := ARRAY['issued','submitted','accepted','rejected','revoked','superseded'];
    same record;
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.state = ANY(locked) THEN
            RAISE EXCEPTION 'Học bạ #% đã phát hành, không được xóa', OLD.id USING ERRCODE = 'HBL01';
        END IF;
        RETURN OLD;
    END IF;
    IF NEW.state IS DISTINCT FROM OLD.state
       AND coalesce(current_setting('hocba.lifecycle', true), '') <> 'on' THEN
        RAISE EXCEPTION 'Trạng thái học bạ #% chỉ được đổi qua quy trình (lifecycle)', OLD.id
            USING ERRCODE = 'HBS01';
    END IF;
    IF OLD.state = ANY(locked) THEN
        -- compare the rows themselves (JSON of both hex-encoded the signed XML twice);
        -- the signed XML may change only by added timestamps (migration 0010)
        same := NEW;
        same.state := OLD.state;
        same.state_changed_at := OLD.state_changed_at;
        same.signed_xml := OLD.signed_xml;
        same.xml_sha256 := OLD.xml_sha256;
        IF same IS DISTINCT FROM OLD THEN
            RAISE EXCEPTION 'Học bạ #% đã phát hành (khóa), nội dung không được thay đổi', OLD.id
                USING ERRCODE = 'HBL01';
        END IF;
        IF NEW.signed_xml IS DISTINCT FROM OLD.signed_xml
           OR NEW.xml_sha256 IS DISTINCT FROM OLD.xml_sha256 THEN
            IF NOT hoc_ba_timestamp_upgrade_ok(OLD.id, OLD.signed_xml, NEW.signed_xml,
                                               NEW.xml_sha256) THEN
                RAISE EXCEPTION 'Học bạ #% đã phát hành (khóa): chỉ được bổ sung dấu thời gian, có ghi nhật ký', OLD.id
                    USING ERRCODE = 'HBL01';
            END IF;
            INSERT INTO hoc_ba_xml_history (record_id, xml_sha256) VALUES (OLD.id, OLD.xml_sha256);
        END IF;
        IF NEW.state IS DISTINCT FROM OLD.state AND NOT (
               (OLD.state = 'issued' AND NEW.state IN ('submitted', 'revoked'))
            OR (OLD.state = 'submitted' AND NEW.state IN ('accepted', 'rejected', 'revoked'))
            OR (OLD.state = 'rejected' AND NEW.state IN ('submitted', 'revoked'))
            OR (OLD.state = 'accepted' AND NEW.state = 'revoked')
            OR (OLD.state = 'revoked' AND NEW.state = 'superseded')) THEN
            RAISE EXCEPTION 'Học bạ #% đã phát hành: không thể chuyển từ % sang %',
                OLD.id, OLD.state, NEW.state USING ERRCODE = 'HBL01';
        END IF;
    END IF;
    RETURN NEW;
END $$;

DO $$
BEGIN
    ALTER TABLE hoc_ba ALTER COLUMN content SET COMPRESSION lz4,
        ALTER COLUMN signed_xml SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    NULL;  -- a server built without lz4 keeps pglz
END $$;

-- every record is rewritten with a new signed XML three times (GVCN, CBQL, seal): vacuum
-- early so the next signing reuses the dead versions' space instead of growing the table
ALTER TABLE hoc_ba SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000,
    toast.autovacuum_vacuum_scale_factor = 0.02, toast.autovacuum_vacuum_threshold = 1000);
"""

DOWN = f"""
ALTER TABLE hoc_ba RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
    toast.autovacuum_vacuum_scale_factor, toast.autovacuum_vacuum_threshold);
ALTER TABLE hoc_ba ALTER COLUMN content SET COMPRESSION default,
    ALTER COLUMN signed_xml SET COMPRESSION default;
DROP TRIGGER progress_day_count ON audit_event;
DROP FUNCTION progress_day_count();
CREATE FUNCTION progress_day_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.record_id IS NOT NULL AND NEW.action IN {MILESTONES} THEN
        INSERT INTO progress_day (school_year_id, school_id, day, action, n)
        SELECT r.school_year_id, r.school_id, (NEW.at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date,
               NEW.action, 1
        FROM hoc_ba r WHERE r.id = NEW.record_id
        ON CONFLICT (school_year_id, school_id, day, action)
        DO UPDATE SET n = progress_day.n + 1;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER progress_day_count AFTER INSERT ON audit_event
    FOR EACH ROW EXECUTE FUNCTION progress_day_count();
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
    # the guard as migration 0010 made it (timestamps may be added to an issued record)
    import importlib.util
    from pathlib import Path

    path = Path(__file__).with_name("0010_timestamps.py")
    spec = importlib.util.spec_from_file_location("hocba_migration_0010", path)
    assert spec and spec.loader
    previous = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(previous)
    up: str = previous.UP
    start = up.index("CREATE OR REPLACE FUNCTION hoc_ba_guard()")
    end = up.index("END $$;", start) + len("END $$;")
    op.execute(up[start:end])
