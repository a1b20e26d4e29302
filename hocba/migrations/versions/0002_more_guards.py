"""More database-level guards (from the review of 0001).

- a record can only be inserted as a draft with nothing signed or issued;
- entering ``issued`` requires the lookup code, the signed XML and its SHA-256;
- TRUNCATE of ``hoc_ba`` is refused;
- ``audit_head`` rows cannot be deleted, truncated, or moved backwards.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UP = """
CREATE FUNCTION hoc_ba_insert_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state <> 'draft' OR NEW.lookup_code IS NOT NULL OR NEW.signed_xml IS NOT NULL
       OR NEW.teacher_signer_id IS NOT NULL OR NEW.principal_signer_id IS NOT NULL
       OR NEW.issued_at IS NOT NULL THEN
        RAISE EXCEPTION 'Học bạ mới phải là bản nháp chưa ký' USING ERRCODE = 'HBS01';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER hoc_ba_insert_guard BEFORE INSERT ON hoc_ba
    FOR EACH ROW EXECUTE FUNCTION hoc_ba_insert_guard();

CREATE FUNCTION hoc_ba_issue_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'issued' AND OLD.state IS DISTINCT FROM 'issued' AND (
           NEW.lookup_code IS NULL OR NEW.signed_xml IS NULL OR NEW.issued_at IS NULL
        OR NEW.xml_sha256 IS DISTINCT FROM encode(sha256(NEW.signed_xml), 'hex')) THEN
        RAISE EXCEPTION 'Học bạ #% chưa đủ mã tra cứu, tệp XML đã ký và mã băm để phát hành',
            OLD.id USING ERRCODE = 'HBL01';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER hoc_ba_issue_guard BEFORE UPDATE ON hoc_ba
    FOR EACH ROW EXECUTE FUNCTION hoc_ba_issue_guard();

CREATE FUNCTION hoc_ba_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'Không được xóa toàn bộ bảng học bạ' USING ERRCODE = 'HBL01';
END $$;
CREATE TRIGGER hoc_ba_no_truncate BEFORE TRUNCATE ON hoc_ba
    FOR EACH STATEMENT EXECUTE FUNCTION hoc_ba_no_truncate();

CREATE FUNCTION audit_head_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.chain = OLD.chain AND NEW.seq > OLD.seq THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'Đầu chuỗi nhật ký chỉ được tiến lên (%)', TG_OP USING ERRCODE = 'HBA01';
END $$;
CREATE TRIGGER audit_head_guard BEFORE UPDATE OR DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_guard();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_head_guard();
"""

DOWN = """
DROP TRIGGER audit_head_no_truncate ON audit_head;
DROP TRIGGER audit_head_guard ON audit_head;
DROP FUNCTION audit_head_guard();
DROP TRIGGER hoc_ba_no_truncate ON hoc_ba;
DROP FUNCTION hoc_ba_no_truncate();
DROP TRIGGER hoc_ba_issue_guard ON hoc_ba;
DROP FUNCTION hoc_ba_issue_guard();
DROP TRIGGER hoc_ba_insert_guard ON hoc_ba;
DROP FUNCTION hoc_ba_insert_guard();
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
