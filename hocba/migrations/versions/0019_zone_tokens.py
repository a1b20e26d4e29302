"""The issued XML's signature zone by token, subjects by reference (issue 14, storage).

After migration 0017 an issued record's XML took ~4,340 B after pglz: three TOAST chunks
of 1,996 B (the third ~350 B), which leave ~0.9 KB of page tails per record after VACUUM.
Under 3,992 B it takes two. ``hoc_ba.signed_xml`` is now stored (``hocba/models/
stored_xml.py`` packs at the seal and unpacks for every reader, in the worker) as:

- the bytes before the first ``\\x01`` as they are (the record's data), then the
  signature zone, where each fixed text of a slot (:data:`TOKENS`: the ``SignedInfo``
  skeleton, the algorithms, the tags between the values; frozen here, the Python
  dictionary may only add letters, tests/models/test_stored_xml.py proves the two agree)
  is ``\\x01`` and its letter. ``\\x01`` cannot occur in an XML 1.0 document;
- the text after token ``I`` (``<ds:X509SubjectName>``) or ``J``
  (``<ds:X509Certificate>``) may be ``#<certificate.id>``: that certificate's subject
  (``&``, ``<``, ``>`` escaped as the signer writes them) or its DER's one-line Base64.

A document without ``\\x01`` keeps 0017's form. ``xml_sha256`` stays the SHA-256 of the
signed bytes.

- ``hoc_ba_xml(bytea)``: the data as it is, the zone split at ``\\x01`` and each piece
  expanded in one loop (a reference looked up); a document without ``\\x01`` by 0017's
  loop. The issue guard and the timestamp-upgrade rule call it. (Nested ``replace()`` of
  the fourteen tokens over the whole document cost ~4x 0017's rebuild, an ordered
  ``string_agg`` over ``unnest`` ~1.5x; measured, docs/PERFORMANCE.md.)
- ``certificate_keep`` also keeps ``subject`` (a stored document may name it).
- The documents stored before are packed here (from their signed bytes), each checked to
  rebuild to its ``xml_sha256``; the downgrade writes 0017's form back. The two guards of
  locked rows are disabled for those two statements (same signed bytes).

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


_LETTERS = [letter for letter, _ in TOKENS]
assert _LETTERS == [chr(ord("A") + i) for i in range(len(TOKENS))]  # fixed[ascii(letter) - 64]
_SUBJECT, _CERTIFICATE = _LETTERS.index("I") + 1, _LETTERS.index("J") + 1
_FIXED = "ARRAY[" + ", ".join(f"'{fixed}'" for _, fixed in TOKENS) + "]"

#: the element text of a certificate's subject as the signer writes it
_SUBJECT_TEXT = "replace(replace(replace(c.subject, '&', '&amp;'), '<', '&lt;'), '>', '&gt;')"


def _migration(name: str) -> ModuleType:
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location("hocba_migration_" + name[:4], path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _0017() -> ModuleType:
    return _migration("0017_certificates_by_reference.py")


def _body(function: str) -> str:
    return function[function.index("\nBEGIN\n") + len("\nBEGIN\n") : function.rindex("END $$;")]


#: 0017's rebuild of a document without tokens (certificates by reference anywhere; its
#: variables are declared below with the same names)
_LOOP_0017 = _body(_0017().REBUILD)
assert _LOOP_0017.lstrip().startswith("IF stored IS NULL OR position(tag IN stored) = 0")

REBUILD = f"""
CREATE OR REPLACE FUNCTION hoc_ba_xml(stored bytea) RETURNS bytea LANGUAGE plpgsql STABLE AS $$
DECLARE
    fixed CONSTANT text[] := {_FIXED};
    tag CONSTANT bytea := convert_to('<ds:X509Certificate>#', 'UTF8');
    lt CONSTANT bytea := convert_to('<', 'UTF8');
    done bytea := '';
    rest bytea := stored;
    at integer;
    stop integer;
    b64 text;
    p text;
    piece text;
    zone text := '';
BEGIN
    IF stored IS NULL THEN
        RETURN NULL;
    END IF;
    at := position('\\x01'::bytea IN stored);
    IF at = 0 THEN
{_LOOP_0017}
    END IF;
    IF at = octet_length(stored) THEN  -- a token without its letter
        RAISE EXCEPTION 'Tệp XML đã lưu có mã rút gọn hay chứng thư không biết'
            USING ERRCODE = 'HBL01';
    END IF;
    -- the zone, one piece per token: its letter, then the text up to the next token
    FOREACH p IN ARRAY string_to_array(convert_from(substring(stored FROM at + 1), 'UTF8'),
                                       chr(1)) LOOP
        IF left(p, 2) = 'I#' AND p ~ '^I#[0-9]+$' THEN
            SELECT fixed[{_SUBJECT}] || {_SUBJECT_TEXT} INTO piece FROM certificate c
                WHERE c.id = substr(p, 3)::integer;
        ELSIF left(p, 2) = 'J#' AND p ~ '^J#[0-9]+$' THEN
            SELECT fixed[{_CERTIFICATE}] || replace(encode(c.der, 'base64'), E'\\n', '')
                INTO piece FROM certificate c WHERE c.id = substr(p, 3)::integer;
        ELSE
            piece := fixed[ascii(p) - 64] || substr(p, 2);
        END IF;
        IF piece IS NULL THEN  -- no such token, or no such certificate
            RAISE EXCEPTION 'Tệp XML đã lưu có mã rút gọn hay chứng thư không biết'
                USING ERRCODE = 'HBL01';
        END IF;
        zone := zone || piece;
    END LOOP;
    RETURN substring(stored FROM 1 FOR at - 1) || convert_to(zone, 'UTF8');
END $$;
"""

#: packs a document stored before (its signed bytes) as hocba/models/stored_xml.py does;
#: used once, in the upgrade
PACK = f"""
CREATE FUNCTION hoc_ba_xml_pack_0019(signed bytea) RETURNS bytea LANGUAGE plpgsql STABLE AS $$
DECLARE
    start integer := position(convert_to('{TOKENS[0][1]}', 'UTF8') IN signed);
    zone text;
    parts text[];
    cid integer;
    subject text;
    b64 text;
BEGIN
    IF start = 0 OR position('\\x01'::bytea IN signed) > 0
       OR position(convert_to('<ds:X509Certificate>#', 'UTF8') IN signed) > 0
       OR position(convert_to('<ds:X509SubjectName>#', 'UTF8') IN signed) > 0 THEN
        RETURN NULL;  -- not a document this migration packs (the caller keeps it)
    END IF;
    zone := convert_from(substring(signed FROM start), 'UTF8');
{"".join(f"    zone := replace(zone, '{fixed}', chr(1) || '{letter}');{chr(10)}" for letter, fixed in TOKENS)}
    parts := string_to_array(zone, chr(1));
    FOR i IN 3 .. coalesce(array_length(parts, 1), 0) LOOP
        CONTINUE WHEN left(parts[i], 1) <> 'J';
        b64 := substr(parts[i], 2);
        CONTINUE WHEN b64 !~ '^[A-Za-z0-9+/=]+$';
        cid := NULL;
        BEGIN
            SELECT c.id, {_SUBJECT_TEXT} INTO cid, subject FROM certificate c
                WHERE c.sha256 = encode(sha256(decode(b64, 'base64')), 'hex')
                  AND replace(encode(c.der, 'base64'), E'\\n', '') = b64;
        EXCEPTION WHEN invalid_parameter_value THEN
            cid := NULL;  -- not Base64 after all
        END;
        CONTINUE WHEN cid IS NULL;
        parts[i] := 'J#' || cid;
        IF left(parts[i - 1], 1) = 'I' AND substr(parts[i - 1], 2) = subject THEN
            parts[i - 1] := 'I#' || cid;
        END IF;
    END LOOP;
    RETURN substring(signed FROM 1 FOR start - 1)
        || convert_to(array_to_string(parts, chr(1)), 'UTF8');
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
    """Rewrite ``hoc_ba.signed_xml`` past the guards of locked records (the same signed
    bytes), as 0017 did."""
    _0017()._rewrite(sql)


def upgrade() -> None:
    op.execute(PACK)  # from the signed bytes, which 0017's hoc_ba_xml still rebuilds
    _rewrite(
        "UPDATE hoc_ba SET signed_xml = packed FROM (SELECT id, "
        "hoc_ba_xml_pack_0019(hoc_ba_xml(signed_xml)) AS packed FROM hoc_ba "
        "WHERE signed_xml IS NOT NULL) p WHERE p.id = hoc_ba.id AND p.packed IS NOT NULL"
    )
    op.execute("DROP FUNCTION hoc_ba_xml_pack_0019(bytea)")
    op.execute(REBUILD)
    op.execute(KEEP)
    op.execute(CHECK)


def downgrade() -> None:
    # 0017's form, from the signed bytes this migration's hoc_ba_xml rebuilds
    op.execute(_0017()._function(_0017().UP, "CREATE FUNCTION hoc_ba_xml_pack_0017("))
    _rewrite(
        "UPDATE hoc_ba SET signed_xml = hoc_ba_xml_pack_0017(hoc_ba_xml(signed_xml)) "
        "WHERE position('\\x01'::bytea IN signed_xml) > 0"
    )
    op.execute("DROP FUNCTION hoc_ba_xml_pack_0017(bytea)")
    op.execute(KEEP_0017)
    op.execute(_0017().REBUILD.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    op.execute(CHECK)
