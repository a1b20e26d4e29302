"""Cheaper guard triggers on ``hoc_ba`` (issue 14, PostgreSQL CPU per record): the guards
refuse exactly what they refused, but an ordinary state change no longer reads (detoasts)
the record's content JSON and signed XML, nor calls PL/pgSQL functions that have nothing
to check.

What cost: every UPDATE of ``hoc_ba`` ran three PL/pgSQL row triggers. For an issued
record (submit, accept) ``hoc_ba_guard`` compared the whole new row with the old one, and
comparing two equal ``bytea``/``jsonb`` values decompresses both: the signed XML (≈20 KB)
twice, then twice again for its own ``IS DISTINCT FROM``, and the content JSON twice. For a
signed record (CBQL signature, seal) ``hoc_ba_signed_guard`` decompressed the content
JSON twice. ``hoc_ba_issue_guard`` was called for every update to check a condition that
holds only at the seal.

Now:

- ``hoc_ba_guard`` (UPDATE) fires only ``WHEN`` the state changes outside the lifecycle
  (``hocba.lifecycle`` not ``on``: it raises) or the record is locked (issued and
  after). It compares the row with ``content``, ``signed_xml`` and ``xml_sha256`` set
  aside (as ``state`` and ``state_changed_at`` were): every other column, present and
  future, is still locked. A lifecycle state change of a record being drafted or signed
  no longer calls PL/pgSQL at all.
- ``hoc_ba_guard_content`` (``BEFORE UPDATE OF content, signed_xml, xml_sha256``, when the
  record is locked) compares those three, with the time-stamp upgrade rule of migration
  0010 for the XML. A column that is not a target of the UPDATE cannot change, because
  no trigger on ``hoc_ba`` assigns ``NEW`` (an ``UPDATE OF`` trigger does not see a
  change made by a BEFORE trigger; tests/models/test_database_guards.py fails if a
  trigger function on ``hoc_ba`` ever assigns a field of ``NEW``), so an UPDATE that does
  not name them needs no comparison; one that names them, even to the same value, is
  checked as before.
- ``hoc_ba_guard_delete`` is the DELETE half of the former ``hoc_ba_guard`` (same
  function).
- ``hoc_ba_signed_guard`` (migration 0003) fires only ``WHEN`` a signed record's frozen
  columns other than ``content`` differ (a comparison in the trigger's ``WHEN``, no
  PL/pgSQL call), and ``hoc_ba_signed_guard_content`` when its ``content`` is a target of
  the UPDATE; the function (which checks everything and raises) is unchanged.
- ``hoc_ba_issue_guard`` (migration 0002) fires only ``WHEN`` the record enters
  ``issued``; the function is unchanged.

Trigger names keep the order in which PostgreSQL fires them (by name), so an UPDATE that
breaks two rules fails with the same error as before.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

LOCKED = "('issued', 'submitted', 'accepted', 'rejected', 'revoked', 'superseded')"
SIGNED = "('teacher_signed', 'principal_signed')"
#: the columns hoc_ba_signed_guard (migration 0003) freezes, but content
FROZEN_SMALL = (
    "entered_result, computed_result, flags, class_id, grade, pupil_id, school_id, "
    "school_year_id, cohort"
)

UP = f"""
DROP TRIGGER hoc_ba_guard ON hoc_ba;
DROP TRIGGER hoc_ba_issue_guard ON hoc_ba;
DROP TRIGGER hoc_ba_signed_guard ON hoc_ba;

CREATE OR REPLACE FUNCTION hoc_ba_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    locked CONSTANT text[] := ARRAY['issued','submitted','accepted','rejected','revoked','superseded'];
    new_rest hoc_ba;
    old_rest hoc_ba;
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
        -- every column but the state ones and the large ones, which hoc_ba_guard_content
        -- compares when the UPDATE names them (comparing two equal large values
        -- decompresses both)
        new_rest := NEW;
        new_rest.state := OLD.state;
        new_rest.state_changed_at := OLD.state_changed_at;
        new_rest.content := NULL;
        new_rest.signed_xml := NULL;
        new_rest.xml_sha256 := NULL;
        old_rest := OLD;
        old_rest.content := NULL;
        old_rest.signed_xml := NULL;
        old_rest.xml_sha256 := NULL;
        IF new_rest IS DISTINCT FROM old_rest THEN
            RAISE EXCEPTION 'Học bạ #% đã phát hành (khóa), nội dung không được thay đổi', OLD.id
                USING ERRCODE = 'HBL01';
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

CREATE FUNCTION hoc_ba_guard_content() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.content IS DISTINCT FROM OLD.content THEN
        RAISE EXCEPTION 'Học bạ #% đã phát hành (khóa), nội dung không được thay đổi', OLD.id
            USING ERRCODE = 'HBL01';
    END IF;
    -- the signed XML may change only by added timestamps (migration 0010)
    IF NEW.signed_xml IS DISTINCT FROM OLD.signed_xml
       OR NEW.xml_sha256 IS DISTINCT FROM OLD.xml_sha256 THEN
        IF NOT hoc_ba_timestamp_upgrade_ok(OLD.id, OLD.signed_xml, NEW.signed_xml,
                                           NEW.xml_sha256) THEN
            RAISE EXCEPTION 'Học bạ #% đã phát hành (khóa): chỉ được bổ sung dấu thời gian, có ghi nhật ký', OLD.id
                USING ERRCODE = 'HBL01';
        END IF;
        INSERT INTO hoc_ba_xml_history (record_id, xml_sha256) VALUES (OLD.id, OLD.xml_sha256);
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER hoc_ba_guard BEFORE UPDATE ON hoc_ba FOR EACH ROW
    WHEN ((NEW.state IS DISTINCT FROM OLD.state
           AND coalesce(current_setting('hocba.lifecycle', true), '') <> 'on')
          OR OLD.state IN {LOCKED})
    EXECUTE FUNCTION hoc_ba_guard();
CREATE TRIGGER hoc_ba_guard_content BEFORE UPDATE OF content, signed_xml, xml_sha256
    ON hoc_ba FOR EACH ROW WHEN (OLD.state IN {LOCKED})
    EXECUTE FUNCTION hoc_ba_guard_content();
CREATE TRIGGER hoc_ba_guard_delete BEFORE DELETE ON hoc_ba FOR EACH ROW
    EXECUTE FUNCTION hoc_ba_guard();
CREATE TRIGGER hoc_ba_issue_guard BEFORE UPDATE ON hoc_ba FOR EACH ROW
    WHEN (NEW.state = 'issued' AND OLD.state IS DISTINCT FROM 'issued')
    EXECUTE FUNCTION hoc_ba_issue_guard();
CREATE TRIGGER hoc_ba_signed_guard BEFORE UPDATE ON hoc_ba FOR EACH ROW
    WHEN (OLD.state IN {SIGNED} AND NEW.state <> 'in_review' AND (
        ({", ".join(f"NEW.{c.strip()}" for c in FROZEN_SMALL.split(","))})
        IS DISTINCT FROM
        ({", ".join(f"OLD.{c.strip()}" for c in FROZEN_SMALL.split(","))})
        OR (OLD.lookup_code IS NOT NULL AND NEW.lookup_code IS DISTINCT FROM OLD.lookup_code)))
    EXECUTE FUNCTION hoc_ba_signed_guard();
CREATE TRIGGER hoc_ba_signed_guard_content BEFORE UPDATE OF content ON hoc_ba FOR EACH ROW
    WHEN (OLD.state IN {SIGNED} AND NEW.state <> 'in_review')
    EXECUTE FUNCTION hoc_ba_signed_guard();
"""

DOWN = """
DROP TRIGGER hoc_ba_signed_guard_content ON hoc_ba;
DROP TRIGGER hoc_ba_signed_guard ON hoc_ba;
DROP TRIGGER hoc_ba_issue_guard ON hoc_ba;
DROP TRIGGER hoc_ba_guard_delete ON hoc_ba;
DROP TRIGGER hoc_ba_guard_content ON hoc_ba;
DROP TRIGGER hoc_ba_guard ON hoc_ba;
DROP FUNCTION hoc_ba_guard_content();
CREATE TRIGGER hoc_ba_guard BEFORE UPDATE OR DELETE ON hoc_ba
    FOR EACH ROW EXECUTE FUNCTION hoc_ba_guard();
CREATE TRIGGER hoc_ba_issue_guard BEFORE UPDATE ON hoc_ba
    FOR EACH ROW EXECUTE FUNCTION hoc_ba_issue_guard();
CREATE TRIGGER hoc_ba_signed_guard BEFORE UPDATE ON hoc_ba
    FOR EACH ROW EXECUTE FUNCTION hoc_ba_signed_guard();
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
    # the guard function as migration 0012 made it
    import importlib.util
    from pathlib import Path

    path = Path(__file__).with_name("0012_bulk_storage.py")
    spec = importlib.util.spec_from_file_location("hocba_migration_0012", path)
    assert spec and spec.loader
    previous = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(previous)
    up: str = previous.UP
    start = up.index("CREATE OR REPLACE FUNCTION hoc_ba_guard()")
    end = up.index("END $$;", start) + len("END $$;")
    op.execute(up[start:end])
