"""The issued XML's signature zone by token, subjects by reference (issue 14, storage).

After migration 0017 an issued record's XML took ~4,340 B after pglz: three TOAST chunks
of 1,996 B (the third ~350 B), which leave ~0.9 KB of page tails per record after VACUUM.
Under 3,992 B it takes two. ``hoc_ba.signed_xml`` now also stores (``hocba/models/
stored_xml.py`` packs at the seal, unpacks for every reader, in the worker):

- each fixed text of a signature slot (the ``SignedInfo`` skeleton, the algorithms, the
  closing and opening tags between the values) as ``\\x01`` and a letter (:data:`TOKENS`,
  frozen here: the Python dictionary may only add letters; tests/models/test_stored_xml.py
  proves the two agree). ``\\x01`` cannot occur in an XML 1.0 document;
- each ``<ds:X509SubjectName>`` whose text is exactly the subject of the certificate that
  follows it (``certificate.subject``, ``&``, ``<``, ``>`` escaped as the signer writes
  them) as ``#<certificate.id>``, as 0017 did for the certificate. An RFC 4514 name never
  starts with ``#``.

``xml_sha256`` stays the SHA-256 of the signed bytes.

- ``hoc_ba_xml(bytea)`` expands the tokens (on text: ``convert_from``, nested
  ``replace()``, ``convert_to``; only when ``\\x01`` is present), then the subjects, then
  the certificates (0017's loop). The issue guard and the timestamp-upgrade rule call it.
- ``certificate_keep`` also keeps ``subject`` (a stored document may name it).
- The documents stored before are packed here, each checked to rebuild to its
  ``xml_sha256``; the downgrade expands the tokens and subjects back (0017's form). The
  two guards of locked rows are disabled for those two statements (same bytes).

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_GUARDS = ("hoc_ba_guard", "hoc_ba_guard_content")

_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
_TRANSFORMS = (
    f'<ds:Transforms><ds:Transform Algorithm="{_C14N}"/></ds:Transforms>'
    '<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>'
)
#: letter -> fixed text, as migration 0019 stores them (frozen)
TOKENS: tuple[tuple[str, str], ...] = (
    ("A", '<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Id="sig-'),
    (
        "B",
        f'"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="{_C14N}"/>'
        '<ds:SignatureMethod Algorithm="',
    ),
    ("C", "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"),
    ("D", "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"),
    ("E", '"/><ds:Reference URI="#data">' + _TRANSFORMS),
    ("F", '</ds:DigestValue></ds:Reference><ds:Reference URI="#st-'),
    ("G", '" Type="http://www.w3.org/2000/09/xmldsig#SignatureProperties">' + _TRANSFORMS),
    ("H", "</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>"),
    ("I", "</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509SubjectName>"),
    ("J", "</ds:X509SubjectName><ds:X509Certificate>"),
    (
        "K",
        "</ds:X509Certificate></ds:X509Data></ds:KeyInfo><ds:Object>"
        '<ds:SignatureProperties Id="st-',
    ),
    ("L", '"><ds:SignatureProperty Target="#sig-'),
    ("M", '"><hb:SigningTime xmlns:hb="urn:hocba:xmldsig:1">'),
    (
        "N",
        "</hb:SigningTime></ds:SignatureProperty></ds:SignatureProperties></ds:Object>"
        "</ds:Signature><NGAY_KY>",
    ),
)
assert all("'" not in fixed and "\x01" not in fixed for _, fixed in TOKENS)


def _expand_expr(var: str) -> str:
    """SQL: the text ``var`` with every token replaced by its fixed text."""
    expr = var
    for letter, fixed in TOKENS:
        expr = f"replace({expr}, chr(1) || '{letter}', '{fixed}')"
    return expr


def _pack_expr(var: str) -> str:
    """SQL: the text ``var`` with every fixed text replaced by its token, in order."""
    expr = var
    for letter, fixed in TOKENS:
        expr = f"replace({expr}, '{fixed}', chr(1) || '{letter}')"
    return expr


#: the element text of a certificate's subject as the signer writes it
_SUBJECT_TEXT = "replace(replace(replace(c.subject, '&', '&amp;'), '<', '&lt;'), '>', '&gt;')"

#: PL/pgSQL: ``rest`` (bytea) with its tokens and subject references expanded
_EXPAND_ZONE = f"""
    IF position('\\x01'::bytea IN rest) > 0 THEN
        rest := convert_to({_expand_expr("convert_from(rest, 'UTF8')")}, 'UTF8');
    END IF;
    IF position(subject_tag IN rest) > 0 THEN
        LOOP
            at := position(subject_tag IN rest);
            EXIT WHEN at = 0;
            done := done || substring(rest FROM 1 FOR at + 19);  -- through '<ds:X509SubjectName>'
            rest := substring(rest FROM at + 21);                 -- after the '#'
            stop := position(lt IN rest);
            SELECT {_SUBJECT_TEXT} INTO b64 FROM certificate c
                WHERE c.id = convert_from(substring(rest FROM 1 FOR stop - 1), 'UTF8')::integer;
            IF b64 IS NULL THEN
                RAISE EXCEPTION 'Thiếu chứng thư của tệp XML đã lưu' USING ERRCODE = 'HBL01';
            END IF;
            done := done || convert_to(b64, 'UTF8');
            rest := substring(rest FROM stop);
        END LOOP;
        rest := done || rest;
        done := '';
    END IF;
"""

_DECLARE = """
DECLARE
    tag CONSTANT bytea := convert_to('<ds:X509Certificate>#', 'UTF8');
    subject_tag CONSTANT bytea := convert_to('<ds:X509SubjectName>#', 'UTF8');
    lt CONSTANT bytea := convert_to('<', 'UTF8');
    done bytea := '';
    rest bytea := stored;
    at integer;
    stop integer;
    b64 text;
"""

REBUILD = f"""
CREATE OR REPLACE FUNCTION hoc_ba_xml(stored bytea) RETURNS bytea LANGUAGE plpgsql STABLE AS $$
{_DECLARE}
BEGIN
    IF stored IS NULL THEN
        RETURN NULL;
    END IF;
{_EXPAND_ZONE}
    IF position(tag IN rest) = 0 THEN
        RETURN rest;
    END IF;
    LOOP
        at := position(tag IN rest);
        EXIT WHEN at = 0;
        done := done || substring(rest FROM 1 FOR at + 19);  -- through '<ds:X509Certificate>'
        rest := substring(rest FROM at + 21);                 -- after the '#'
        stop := position(lt IN rest);
        -- replace(), not translate(): translate walks the Base64 character by character
        SELECT replace(encode(c.der, 'base64'), E'\\n', '') INTO b64 FROM certificate c
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

#: 0017's form of a stored document (certificates by reference only), for the downgrade
UNPACK_ZONE = f"""
CREATE FUNCTION hoc_ba_xml_unzone_0019(stored bytea) RETURNS bytea LANGUAGE plpgsql STABLE AS $$
{_DECLARE}
BEGIN
    IF stored IS NULL THEN
        RETURN NULL;
    END IF;
{_EXPAND_ZONE}
    RETURN rest;
END $$;
"""

#: packs the documents stored before (used once, in the upgrade)
PACK = f"""
CREATE FUNCTION hoc_ba_xml_pack_0019(doc bytea) RETURNS bytea LANGUAGE plpgsql STABLE AS $$
DECLARE
    t text;
    m text[];
    expected text;
BEGIN
    IF position('\\x01'::bytea IN doc) > 0
       OR position(convert_to('<ds:X509SubjectName>#', 'UTF8') IN doc) > 0 THEN
        RETURN doc;  -- not a document this migration packs (the check below tells)
    END IF;
    t := convert_from(doc, 'UTF8');
    FOR m IN SELECT DISTINCT regexp_matches(t,
            '<ds:X509SubjectName>([^<#][^<]*)</ds:X509SubjectName><ds:X509Certificate>#([0-9]+)<',
            'g') LOOP
        SELECT {_SUBJECT_TEXT} INTO expected FROM certificate c WHERE c.id = m[2]::integer;
        IF expected = m[1] THEN
            t := replace(t,
                '<ds:X509SubjectName>' || m[1] || '</ds:X509SubjectName><ds:X509Certificate>#'
                    || m[2] || '<',
                '<ds:X509SubjectName>#' || m[2] || '</ds:X509SubjectName><ds:X509Certificate>#'
                    || m[2] || '<');
        END IF;
    END LOOP;
    RETURN convert_to({_pack_expr("t")}, 'UTF8');
END $$;
"""

KEEP = """
DROP TRIGGER certificate_keep ON certificate;
CREATE TRIGGER certificate_keep BEFORE UPDATE OF der, sha256, subject ON certificate
    FOR EACH ROW
    WHEN (NEW.der IS DISTINCT FROM OLD.der OR NEW.sha256 IS DISTINCT FROM OLD.sha256
          OR NEW.subject IS DISTINCT FROM OLD.subject)
    EXECUTE FUNCTION certificate_keep();
"""

KEEP_0017 = """
DROP TRIGGER certificate_keep ON certificate;
CREATE TRIGGER certificate_keep BEFORE UPDATE OF der, sha256 ON certificate FOR EACH ROW
    WHEN (NEW.der IS DISTINCT FROM OLD.der OR NEW.sha256 IS DISTINCT FROM OLD.sha256)
    EXECUTE FUNCTION certificate_keep();
"""

CHECK = """DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM hoc_ba WHERE signed_xml IS NOT NULL
               AND xml_sha256 IS DISTINCT FROM encode(sha256(hoc_ba_xml(signed_xml)), 'hex'))
    THEN RAISE EXCEPTION 'Đóng gói tệp XML đã lưu không giữ được nguyên văn';
    END IF;
END $$"""


def _rewrite(sql: str) -> None:
    """Rewrite ``hoc_ba.signed_xml`` past the guards of locked records (same bytes)."""
    for trigger in _GUARDS:
        op.execute(f"ALTER TABLE hoc_ba DISABLE TRIGGER {trigger}")
    op.execute(sql)
    for trigger in _GUARDS:
        op.execute(f"ALTER TABLE hoc_ba ENABLE TRIGGER {trigger}")


def upgrade() -> None:
    op.execute(REBUILD)
    op.execute(KEEP)
    op.execute(PACK)
    _rewrite(
        "UPDATE hoc_ba SET signed_xml = hoc_ba_xml_pack_0019(signed_xml) "
        "WHERE signed_xml IS NOT NULL"
    )
    op.execute(CHECK)
    op.execute("DROP FUNCTION hoc_ba_xml_pack_0019(bytea)")


def _migration(name: str) -> ModuleType:
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location("hocba_migration_" + name[:4], path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def downgrade() -> None:
    op.execute(UNPACK_ZONE)
    _rewrite(
        "UPDATE hoc_ba SET signed_xml = hoc_ba_xml_unzone_0019(signed_xml) "
        "WHERE position('\\x01'::bytea IN signed_xml) > 0 "
        "OR position(convert_to('<ds:X509SubjectName>#', 'UTF8') IN signed_xml) > 0"
    )
    op.execute("DROP FUNCTION hoc_ba_xml_unzone_0019(bytea)")
    op.execute(KEEP_0017)
    # hoc_ba_xml as migration 0017 made it
    op.execute(
        _migration("0017_certificates_by_reference.py").REBUILD.replace(
            "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1
        )
    )
    op.execute(CHECK)
