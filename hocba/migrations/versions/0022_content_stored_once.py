"""A record's content stored once (issue 14, storage per record): ``hoc_ba.content`` NULL
means "the content of this record's enrolment's ``year_summary``".

The TT27 content JSON of each record was stored twice: ``year_summary.content`` (the
import's confirmed data, lifecycle step 1) and ``hoc_ba.content`` (copied from it by
``create_drafts``, refreshed from it while the record is a draft or in review). The
importer already refuses changing the summary of a record past review, so the copy was
the same bytes for every live record (~0.9 KB in ``hoc_ba``'s TOAST per record, plus its
chunk and page-tail share).

- ``hoc_ba.content`` is nullable. ``create_drafts`` inserts NULL; readers take
  ``COALESCE(r.content, ys.content)`` (``ys.enrolment_id = r.enrolment_id``).
- A record keeps a content of its own (materialized) when the summary may change under
  it: ``transition()`` sets ``content = COALESCE(content, <the summary's>)`` in the UPDATE
  that revokes or supersedes it, and ``hoc_ba_guard_materialized`` refuses a revoked or
  superseded row with NULL content (so the summary's guard below need look only at live
  records, through the ``hoc_ba_one_live_per_year`` index).
- ``hoc_ba.summary_seen_at``: the summary's ``updated_at`` when the draft was made or last
  refreshed, so that ``create_drafts`` still reports and audits the drafts whose content
  changed (NULL content follows the summary by itself).
- ``year_summary_guard`` (UPDATE OF content, enrolment_id; DELETE; TRUNCATE): the summary
  of a live record with NULL content cannot change while that record is reviewed, signed
  or issued (the importer's rule, now in the database: ARCHITECTURE rule 2 for the
  effective content), nor move to another enrolment or be deleted while such a record
  exists in any live state; a change of ``content`` sets ``updated_at`` to
  ``clock_timestamp()`` whoever writes it.
- ``hoc_ba_guard_content`` and ``hoc_ba_signed_guard`` refuse any change of the effective
  content as before; the one change they allow is materializing it (``OLD.content`` NULL,
  ``NEW.content`` equal to the summary's). ``hoc_ba_signed_guard`` also freezes
  ``enrolment_id`` (it decides the content now). ``hoc_ba_insert_guard`` refuses a draft
  with NULL content and no summary.
- ``hoc_ba.toast_pad`` (0015) is dropped: it made every new row go through the toaster
  so that the draft's content went out of line at the INSERT; a draft has no content now,
  and the pad's 35 compressed bytes per row version were all it still did (``hoc_ba``'s
  heap 545 → 470 B per record after VACUUM in bench/province.py, docs/PERFORMANCE.md).
  A record that materializes its content (revoke) already points into TOAST (its signed
  XML), so the toaster moves the content out of line there (``toast_tuple_target``).
- Existing live records whose content equals their summary's are set to NULL here (the
  guards of locked and signed rows disabled for that one statement: the effective
  content does not change); the downgrade materializes every NULL back and restores
  NOT NULL, the pad and the guards as migrations 0002, 0003, 0015 and 0016 made them.

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

#: the guards that would refuse rewriting a locked or signed record's content (the
#: rewrite here keeps the effective content)
_GUARDS = (
    "hoc_ba_guard",
    "hoc_ba_guard_content",
    "hoc_ba_signed_guard",
    "hoc_ba_signed_guard_content",
    "hoc_ba_guard_materialized",
)
SIGNED = "('teacher_signed', 'principal_signed')"
#: migration 0015's pad, put back by the downgrade
TOAST_PAD_BYTES = 2100
#: the columns hoc_ba_signed_guard freezes, but content (0016's list, with enrolment_id)
FROZEN_SMALL = (
    "entered_result, computed_result, flags, class_id, grade, pupil_id, school_id, "
    "school_year_id, cohort, enrolment_id"
)


def _cols(prefix: str) -> str:
    return ", ".join(f"{prefix}.{c.strip()}" for c in FROZEN_SMALL.split(","))


#: OLD -> NEW of the content is a change of the effective content (anything but
#: materializing the summary's)
_CONTENT_CHANGES = """NEW.content IS DISTINCT FROM OLD.content AND (
               OLD.content IS NOT NULL
            OR NEW.content IS DISTINCT FROM hoc_ba_summary_content(OLD.enrolment_id))"""

UP = f"""
ALTER TABLE hoc_ba ALTER COLUMN content DROP NOT NULL;
ALTER TABLE hoc_ba ADD COLUMN summary_seen_at timestamptz;
ALTER TABLE hoc_ba DROP COLUMN toast_pad;

CREATE FUNCTION hoc_ba_summary_content(enrolment integer) RETURNS jsonb
    LANGUAGE sql STABLE AS $$
    SELECT content FROM year_summary WHERE enrolment_id = enrolment
$$;

CREATE OR REPLACE FUNCTION hoc_ba_guard_content() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- NULL content is the year_summary's (0022): materializing it is not a change
    IF {_CONTENT_CHANGES} THEN
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

CREATE OR REPLACE FUNCTION hoc_ba_signed_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.state IN {SIGNED} AND NEW.state <> 'in_review' AND (
        ({_cols("NEW")})
        IS DISTINCT FROM
        ({_cols("OLD")})
        OR ({_CONTENT_CHANGES})
        OR (OLD.lookup_code IS NOT NULL AND NEW.lookup_code IS DISTINCT FROM OLD.lookup_code)
    ) THEN
        RAISE EXCEPTION 'Học bạ #% đã được ký: muốn sửa phải trả lại GVCN trước', OLD.id
            USING ERRCODE = 'HBL02';
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER hoc_ba_signed_guard ON hoc_ba;
CREATE TRIGGER hoc_ba_signed_guard BEFORE UPDATE ON hoc_ba FOR EACH ROW
    WHEN (OLD.state IN {SIGNED} AND NEW.state <> 'in_review' AND (
        ({_cols("NEW")}) IS DISTINCT FROM ({_cols("OLD")})
        OR (OLD.lookup_code IS NOT NULL AND NEW.lookup_code IS DISTINCT FROM OLD.lookup_code)))
    EXECUTE FUNCTION hoc_ba_signed_guard();

CREATE OR REPLACE FUNCTION hoc_ba_insert_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state <> 'draft' OR NEW.lookup_code IS NOT NULL OR NEW.signed_xml IS NOT NULL
       OR NEW.teacher_signer_id IS NOT NULL OR NEW.principal_signer_id IS NOT NULL
       OR NEW.issued_at IS NOT NULL THEN
        RAISE EXCEPTION 'Học bạ mới phải là bản nháp chưa ký' USING ERRCODE = 'HBS01';
    END IF;
    IF NEW.content IS NULL AND NOT EXISTS (
            SELECT 1 FROM year_summary WHERE enrolment_id = NEW.enrolment_id) THEN
        RAISE EXCEPTION 'Học bạ mới chưa có nội dung: chưa có dữ liệu cuối năm của học sinh'
            USING ERRCODE = 'HBS01';
    END IF;
    RETURN NEW;
END $$;

CREATE FUNCTION hoc_ba_guard_materialized() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'Học bạ #% thu hồi hoặc được thay thế phải giữ nội dung của chính nó', OLD.id
        USING ERRCODE = 'HBL01';
END $$;
CREATE TRIGGER hoc_ba_guard_materialized BEFORE UPDATE ON hoc_ba FOR EACH ROW
    WHEN (NEW.state IN ('revoked', 'superseded') AND NEW.content IS NULL)
    EXECUTE FUNCTION hoc_ba_guard_materialized();

CREATE FUNCTION year_summary_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    rid integer;
    st text;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        IF EXISTS (SELECT 1 FROM hoc_ba WHERE content IS NULL) THEN
            RAISE EXCEPTION 'Dữ liệu cuối năm đang là nội dung của học bạ, không được xóa'
                USING ERRCODE = 'HBL01';
        END IF;
        RETURN NULL;
    END IF;
    -- the live record of the enrolment's pupil and year (hoc_ba_one_live_per_year), if it
    -- reads its content here
    SELECT r.id, r.state INTO rid, st
    FROM enrolment e JOIN hoc_ba r ON r.pupil_id = e.pupil_id
        AND r.school_year_id = e.school_year_id AND r.state NOT IN ('revoked', 'superseded')
    WHERE e.id = OLD.enrolment_id AND r.enrolment_id = OLD.enrolment_id AND r.content IS NULL;
    IF rid IS NOT NULL THEN
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'Dữ liệu cuối năm đang là nội dung của học bạ #%, không được xóa', rid
                USING ERRCODE = 'HBL01';
        ELSIF NEW.enrolment_id IS DISTINCT FROM OLD.enrolment_id THEN
            RAISE EXCEPTION 'Dữ liệu cuối năm đang là nội dung của học bạ #%, không được chuyển sang lượt học khác', rid
                USING ERRCODE = 'HBL01';
        ELSIF st IN ('issued', 'submitted', 'accepted', 'rejected') THEN
            RAISE EXCEPTION 'Học bạ #% đã phát hành (khóa), không thể ghi đè kết quả cuối năm; hãy lập yêu cầu chỉnh lý', rid
                USING ERRCODE = 'HBL01';
        ELSIF st IN ('reviewed', 'teacher_signed', 'principal_signed') THEN
            RAISE EXCEPTION 'Học bạ #% đã được kiểm tra hoặc ký, không thể ghi đè kết quả cuối năm; hãy để GVCN mở lại học bạ', rid
                USING ERRCODE = 'HBL02';
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    IF NEW.content IS DISTINCT FROM OLD.content THEN
        NEW.updated_at := clock_timestamp();  -- what create_drafts compares (summary_seen_at)
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER year_summary_guard BEFORE UPDATE OF content, enrolment_id ON year_summary
    FOR EACH ROW WHEN (NEW.content IS DISTINCT FROM OLD.content
                       OR NEW.enrolment_id IS DISTINCT FROM OLD.enrolment_id)
    EXECUTE FUNCTION year_summary_guard();
CREATE TRIGGER year_summary_guard_delete BEFORE DELETE ON year_summary FOR EACH ROW
    EXECUTE FUNCTION year_summary_guard();
CREATE TRIGGER year_summary_guard_truncate BEFORE TRUNCATE ON year_summary
    FOR EACH STATEMENT EXECUTE FUNCTION year_summary_guard();
"""

DOWN = """
DROP TRIGGER year_summary_guard_truncate ON year_summary;
DROP TRIGGER year_summary_guard_delete ON year_summary;
DROP TRIGGER year_summary_guard ON year_summary;
DROP FUNCTION year_summary_guard();
DROP TRIGGER hoc_ba_guard_materialized ON hoc_ba;
DROP FUNCTION hoc_ba_guard_materialized();
"""


def _rewrite(sql: str) -> None:
    """Rewrite ``hoc_ba.content`` past the guards of locked and signed records (the
    effective content stays the same)."""
    for trigger in _GUARDS:
        op.execute(f"ALTER TABLE hoc_ba DISABLE TRIGGER {trigger}")
    op.execute(sql)
    for trigger in _GUARDS:
        op.execute(f"ALTER TABLE hoc_ba ENABLE TRIGGER {trigger}")


def upgrade() -> None:
    op.execute(UP)
    _rewrite(
        """UPDATE hoc_ba r SET content = NULL, summary_seen_at = ys.updated_at
        FROM year_summary ys
        WHERE ys.enrolment_id = r.enrolment_id AND r.state NOT IN ('revoked', 'superseded')
          AND r.content = ys.content"""
    )


def _migration(name: str) -> ModuleType:
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location("hocba_migration_" + name[:4], path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _function(up: str, head: str) -> str:
    start = up.index(head)
    body = up[start : up.index("END $$;", start) + len("END $$;")]
    return body.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def downgrade() -> None:
    _rewrite(
        """UPDATE hoc_ba r SET content = ys.content FROM year_summary ys
        WHERE r.content IS NULL AND ys.enrolment_id = r.enrolment_id"""
    )
    op.execute(DOWN)
    op.execute("ALTER TABLE hoc_ba ALTER COLUMN content SET NOT NULL")
    op.execute("ALTER TABLE hoc_ba DROP COLUMN summary_seen_at")
    op.execute(
        "ALTER TABLE hoc_ba ADD COLUMN toast_pad bytea "
        f"DEFAULT decode(repeat('00', {TOAST_PAD_BYTES}), 'hex')"
    )
    op.execute("ALTER TABLE hoc_ba ALTER COLUMN toast_pad SET STORAGE MAIN")
    # the guards as migrations 0002, 0003 and 0016 made them
    op.execute(
        _function(_migration("0002_more_guards.py").UP, "CREATE FUNCTION hoc_ba_insert_guard()")
    )
    op.execute(
        _function(
            _migration("0003_certificates.py").FREEZE_SQL, "CREATE FUNCTION hoc_ba_signed_guard()"
        )
    )
    m16 = _migration("0016_cheaper_guard_writes.py")
    op.execute(_function(m16.UP, "CREATE FUNCTION hoc_ba_guard_content()"))
    start = m16.UP.index("CREATE TRIGGER hoc_ba_signed_guard BEFORE")
    end = "EXECUTE FUNCTION hoc_ba_signed_guard();"
    op.execute("DROP TRIGGER hoc_ba_signed_guard ON hoc_ba")
    op.execute(m16.UP[start : m16.UP.index(end, start) + len(end)])
    op.execute("DROP FUNCTION hoc_ba_summary_content(integer)")
