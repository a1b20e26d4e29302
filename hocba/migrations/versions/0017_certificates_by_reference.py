"""The issued XML with its certificates by reference (issue 14, storage per record).

``hoc_ba.signed_xml`` stores each ``<ds:X509Certificate>`` whose text is exactly the
single-line Base64 of a registered certificate's DER as ``#<certificate.id>``
(``hocba/models/stored_xml.py`` packs at the seal and unpacks for every reader, in the
worker): three certificates, ~3.5 KB of the 7.8 KB an issued record's XML took
compressed. ``xml_sha256`` stays the SHA-256 of the signed bytes. Base64 has no ``#``, so
a document stored before this migration, or with a certificate that is not registered,
is its own unpacked form.

- ``hoc_ba_xml(bytea)``: the same rebuild in SQL, for the two guards below and the
  downgrade. Readers do not call it (the worker unpacks: no PostgreSQL CPU per read).
- ``hoc_ba_issue_guard`` checks ``xml_sha256`` against the rebuilt bytes (once per
  record, at the seal); ``hoc_ba_timestamp_upgrade_ok`` compares and hashes the rebuilt
  bytes, so a stored document keeps the rules of migration 0010.
- ``certificate_keep``: a certificate's ``der`` and ``sha256`` cannot change and the row
  cannot be deleted (a stored document may name it).
- Existing issued documents are packed here (``hoc_ba_xml`` of each gives its bytes
  back, which the upgrade checks against ``xml_sha256``); the downgrade unpacks them.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

#: the guards that would refuse rewriting a locked record's XML (unchanged bytes, the
#: same xml_sha256: the rewrite here is not an edit)
_GUARDS = ("hoc_ba_guard", "hoc_ba_guard_content")

REBUILD = r"""
CREATE FUNCTION hoc_ba_xml(stored bytea) RETURNS bytea LANGUAGE plpgsql STABLE AS $$
DECLARE
    tag CONSTANT bytea := convert_to('<ds:X509Certificate>#', 'UTF8');
    lt CONSTANT bytea := convert_to('<', 'UTF8');
    done bytea := '';
    rest bytea := stored;
    at integer;
    stop integer;
    b64 text;
BEGIN
    IF stored IS NULL OR position(tag IN stored) = 0 THEN
        RETURN stored;
    END IF;
    LOOP
        at := position(tag IN rest);
        EXIT WHEN at = 0;
        done := done || substring(rest FROM 1 FOR at + 19);  -- through '<ds:X509Certificate>'
        rest := substring(rest FROM at + 21);                 -- after the '#'
        stop := position(lt IN rest);
        -- replace(), not translate(): translate walks the Base64 character by character
        -- (the rebuild cost ~3x as much with it, measured)
        SELECT replace(encode(c.der, 'base64'), E'\n', '') INTO b64 FROM certificate c
            WHERE c.id = convert_from(substring(rest FROM 1 FOR stop - 1), 'UTF8')::integer;
        IF b64 IS NULL THEN
            RAISE EXCEPTION 'Thiếu chứng thư của tệp XML đã lưu' USING ERRCODE = 'HBL01';
        END IF;
        done := done || convert_to(b64, 'UTF8');
        rest := substring(rest FROM stop);
    END LOOP;
    RETURN done || rest;
END $$;
"""

UP = (
    REBUILD
    + r"""
CREATE OR REPLACE FUNCTION hoc_ba_issue_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'issued' AND OLD.state IS DISTINCT FROM 'issued' AND (
           NEW.lookup_code IS NULL OR NEW.signed_xml IS NULL OR NEW.issued_at IS NULL
        OR NEW.xml_sha256 IS DISTINCT FROM encode(sha256(hoc_ba_xml(NEW.signed_xml)), 'hex')) THEN
        RAISE EXCEPTION 'Học bạ #% chưa đủ mã tra cứu, tệp XML đã ký và mã băm để phát hành',
            OLD.id USING ERRCODE = 'HBL01';
    END IF;
    RETURN NEW;
END $$;


CREATE FUNCTION certificate_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'Chứng thư #% đã đăng ký: không được xóa hay đổi nội dung', OLD.id
        USING ERRCODE = 'HBL01';
END $$;
CREATE TRIGGER certificate_keep BEFORE UPDATE OF der, sha256 ON certificate FOR EACH ROW
    WHEN (NEW.der IS DISTINCT FROM OLD.der OR NEW.sha256 IS DISTINCT FROM OLD.sha256)
    EXECUTE FUNCTION certificate_keep();
CREATE TRIGGER certificate_keep_delete BEFORE DELETE ON certificate FOR EACH ROW
    EXECUTE FUNCTION certificate_keep();

-- packs the documents stored before (used once, below)
CREATE FUNCTION hoc_ba_xml_pack_0017(doc bytea) RETURNS bytea LANGUAGE plpgsql AS $$
DECLARE
    t text := convert_from(doc, 'UTF8');
    m text[];
    cid integer;
BEGIN
    IF position(convert_to('<ds:X509Certificate>#', 'UTF8') IN doc) > 0 THEN
        RETURN doc;  -- already a reference: not ours to touch
    END IF;
    FOR m IN SELECT DISTINCT regexp_matches(t,
            '<ds:X509Certificate>([A-Za-z0-9+/=]+)</ds:X509Certificate>', 'g') LOOP
        BEGIN
            SELECT c.id INTO cid FROM certificate c
                WHERE c.sha256 = encode(sha256(decode(m[1], 'base64')), 'hex')
                  AND replace(encode(c.der, 'base64'), E'\n', '') = m[1];
        EXCEPTION WHEN invalid_parameter_value THEN
            cid := NULL;  -- not Base64 after all
        END;
        IF cid IS NOT NULL THEN
            t := replace(t, '<ds:X509Certificate>' || m[1] || '</ds:X509Certificate>',
                         '<ds:X509Certificate>#' || cid || '</ds:X509Certificate>');
        END IF;
    END LOOP;
    RETURN convert_to(t, 'UTF8');
END $$;
"""
)


def _rewrite(sql: str) -> None:
    """Rewrite ``hoc_ba.signed_xml`` past the guards of locked records (same bytes)."""
    for trigger in _GUARDS:
        op.execute(f"ALTER TABLE hoc_ba DISABLE TRIGGER {trigger}")
    op.execute(sql)
    for trigger in _GUARDS:
        op.execute(f"ALTER TABLE hoc_ba ENABLE TRIGGER {trigger}")


def _timestamp_rule() -> str:
    """Migration 0010's ``hoc_ba_timestamp_upgrade_ok``, comparing and hashing the
    documents as signed: the same rules on the rebuilt bytes."""
    rule = _function(
        _migration("0010_timestamps.py").UP, "CREATE FUNCTION hoc_ba_timestamp_upgrade_ok("
    ).replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
    begin = "\nBEGIN\n"
    assert rule.count(begin) == 1
    return rule.replace(
        begin,
        begin
        + "    -- the signed bytes, whether stored with certificates by reference or not (0017)\n"
        + "    old_xml := hoc_ba_xml(old_xml);\n"
        + "    new_xml := hoc_ba_xml(new_xml);\n",
    )


def upgrade() -> None:
    op.execute(UP)
    op.execute(_timestamp_rule())
    _rewrite(
        "UPDATE hoc_ba SET signed_xml = hoc_ba_xml_pack_0017(signed_xml) "
        "WHERE signed_xml IS NOT NULL"
    )
    op.execute(
        """DO $$ BEGIN
            IF EXISTS (SELECT 1 FROM hoc_ba WHERE signed_xml IS NOT NULL
                       AND xml_sha256 IS DISTINCT FROM encode(sha256(hoc_ba_xml(signed_xml)), 'hex'))
            THEN RAISE EXCEPTION 'Đóng gói tệp XML đã lưu không giữ được nguyên văn';
            END IF;
        END $$"""
    )
    op.execute("DROP FUNCTION hoc_ba_xml_pack_0017(bytea)")


def _migration(name: str) -> ModuleType:
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location("hocba_migration_" + name[:4], path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _function(up: str, head: str) -> str:
    start = up.index(head)
    return up[start : up.index("END $$;", start) + len("END $$;")]


def downgrade() -> None:
    _rewrite(
        "UPDATE hoc_ba SET signed_xml = hoc_ba_xml(signed_xml) "
        "WHERE position(convert_to('<ds:X509Certificate>#', 'UTF8') IN signed_xml) > 0"
    )
    op.execute("DROP TRIGGER certificate_keep_delete ON certificate")
    op.execute("DROP TRIGGER certificate_keep ON certificate")
    op.execute("DROP FUNCTION certificate_keep()")
    # the two functions as migrations 0002 and 0010 made them
    op.execute(
        _function(
            _migration("0002_more_guards.py").UP, "CREATE FUNCTION hoc_ba_issue_guard()"
        ).replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
    )
    op.execute(
        _function(
            _migration("0010_timestamps.py").UP, "CREATE FUNCTION hoc_ba_timestamp_upgrade_ok("
        ).replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
    )
    op.execute("DROP FUNCTION hoc_ba_xml(bytea)")
