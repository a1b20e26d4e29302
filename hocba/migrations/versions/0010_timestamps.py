"""Long-term validity (issue 12): the queue of records waiting for a time-stamp, and the
one change an issued record allows — adding unsigned time-stamps to its XML.

``timestamp_queue``: records signed at B level because the TSA could not be reached (or
an archive timestamp renewal that failed); hocba/flows/timestamps.py works it off.

``hoc_ba_guard`` (migration 0001) is replaced: for a locked (issued...) record nothing
changes but its state along the post-issue path, **except** ``signed_xml`` and
``xml_sha256`` together, and only when all of this holds, checked here without trusting
any Python code:

* the transaction set ``hocba.timestamp_upgrade = on`` (as ``hocba.lifecycle`` for states);
* ``xml_sha256`` is the SHA-256 of the new bytes;
* an audit event ``timestamp_upgrade`` or ``timestamp_renewal`` of this record naming the
  new hash was written before (each renewal is an audit event);
* the new XML is the old one plus unsigned time-stamp blocks only: with every
  ``<ds:Object><xades:QualifyingProperties …>…</xades:QualifyingProperties></ds:Object>``
  and the ``<DAU_THOI_GIAN_LUU_TRU>…</DAU_THOI_GIAN_LUU_TRU>`` zone removed, old and new
  are byte-identical (data, SignedInfo, SignatureValue, KeyInfo, SigningTime untouched);
  every old block is still there, and the archive zone only grows at its end.
  (The bundled PostgreSQL has no libxml, so this is text, not xpath: the writer, lxml,
  re-serialises untouched content byte for byte.)

``timestamp_expiry``: per stamped record, when the newest time-stamp's TSA certificate
expires (the renewal flow adds an archive timestamp before that).

Each allowed change keeps the hash it replaced in ``hoc_ba_xml_history``, so a copy
exported before the upgrade still matches the registry (hocba/xml/verify.py REGISTRY_MATCH).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UP = r"""
CREATE TABLE timestamp_queue (
    record_id integer PRIMARY KEY REFERENCES hoc_ba (id),
    kind text NOT NULL DEFAULT 'signature' CHECK (kind IN ('signature', 'archive')),
    queued_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    last_error text
);

CREATE TABLE timestamp_expiry (
    record_id integer PRIMARY KEY REFERENCES hoc_ba (id),
    expires_at timestamptz NOT NULL,
    stamped_at timestamptz NOT NULL
);
CREATE INDEX timestamp_expiry_due ON timestamp_expiry (expires_at);

CREATE TABLE hoc_ba_xml_history (
    id bigserial PRIMARY KEY,
    record_id integer NOT NULL REFERENCES hoc_ba (id),
    xml_sha256 text NOT NULL,
    replaced_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX hoc_ba_xml_history_record ON hoc_ba_xml_history (record_id);
CREATE TRIGGER hoc_ba_xml_history_append_only BEFORE UPDATE OR DELETE ON hoc_ba_xml_history
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();

CREATE FUNCTION hoc_ba_timestamp_upgrade_ok(rid integer, old_xml bytea, new_xml bytea,
                                            new_sha text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    blocks CONSTANT text :=
        '<ds:Object><xades:QualifyingProperties[^>]*?>.*?</xades:QualifyingProperties></ds:Object>';
    zone CONSTANT text := '<DAU_THOI_GIAN_LUU_TRU>.*?</DAU_THOI_GIAN_LUU_TRU>';
    closing CONSTANT text := '</DAU_THOI_GIAN_LUU_TRU>';
    o text;
    n text;
    old_zone text;
    new_zone text;
    m text[];
BEGIN
    IF coalesce(current_setting('hocba.timestamp_upgrade', true), '') <> 'on'
       OR old_xml IS NULL OR new_xml IS NULL
       OR new_sha IS DISTINCT FROM encode(sha256(new_xml), 'hex') THEN
        RETURN false;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM audit_event e WHERE e.record_id = rid
                   AND e.action IN ('timestamp_upgrade', 'timestamp_renewal')
                   AND e.payload ->> 'xml_sha256' = new_sha) THEN
        RETURN false;
    END IF;
    o := convert_from(old_xml, 'UTF8');
    n := convert_from(new_xml, 'UTF8');
    IF regexp_replace(regexp_replace(n, blocks, '', 'g'), zone, '', 'g')
       IS DISTINCT FROM regexp_replace(regexp_replace(o, blocks, '', 'g'), zone, '', 'g') THEN
        RETURN false;
    END IF;
    FOR m IN SELECT regexp_matches(o, blocks, 'g') LOOP
        IF strpos(n, m[1]) = 0 THEN
            RETURN false;
        END IF;
    END LOOP;
    old_zone := substring(o from zone);
    IF old_zone IS NOT NULL THEN
        new_zone := substring(n from zone);
        IF new_zone IS NULL OR left(new_zone, length(old_zone) - length(closing))
                               <> left(old_zone, length(old_zone) - length(closing)) THEN
            RETURN false;
        END IF;
    END IF;
    RETURN true;
END $$;

CREATE OR REPLACE FUNCTION hoc_ba_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    locked CONSTANT text[] := ARRAY['issued','submitted','accepted','rejected','revoked','superseded'];
    free CONSTANT text[] := ARRAY['state', 'state_changed_at', 'signed_xml', 'xml_sha256'];
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
        IF (to_jsonb(NEW) - free) IS DISTINCT FROM (to_jsonb(OLD) - free) THEN
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
"""

DOWN = r"""
CREATE OR REPLACE FUNCTION hoc_ba_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    locked CONSTANT text[] := ARRAY['issued','submitted','accepted','rejected','revoked','superseded'];
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
        IF (to_jsonb(NEW) - 'state' - 'state_changed_at')
           IS DISTINCT FROM (to_jsonb(OLD) - 'state' - 'state_changed_at') THEN
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
DROP FUNCTION hoc_ba_timestamp_upgrade_ok(integer, bytea, bytea, text);
DROP TABLE hoc_ba_xml_history;
DROP TABLE timestamp_expiry;
DROP TABLE timestamp_queue;
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
