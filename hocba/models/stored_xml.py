"""The issued XML as ``hoc_ba.signed_xml`` stores it (issue 14): the signature zone's fixed
texts by token, certificates and their subjects by reference.

Each ``<ds:X509Certificate>`` of an issued record is one of the registered certificates
(the GVCN's, the principal's, the school's seal): ~1.3 KB of Base64 each, ~3.5 KB of the
7.8 KB the document took compressed. Since migration 0019 a stored document is:

- the bytes before its first ``\\x01`` as they are (the record's data: the zone starts at
  the first ``<ds:Signature xmlns:ds=…``), then
- the zone, where each fixed text of :data:`ZONE_TOKENS` (the ``SignedInfo`` skeleton, the
  algorithms, the tags between the values) is ``\\x01`` and its letter, and the text that
  follows token ``I`` (``…<ds:X509SubjectName>``) or ``J`` (``…<ds:X509Certificate>``)
  may be ``#<certificate.id>``: that certificate's subject (``&``, ``<``, ``>`` escaped,
  :func:`xml_text`) or the single-line Base64 of its DER.

:func:`pack` (at the seal) makes a reference only of a text that is exactly that; the
packed document fits two TOAST chunks (< 3,992 B after pglz, where 0017's form took three).
:func:`unpack` (every reader) gives the signed bytes back, byte for byte, as
``hoc_ba_xml()`` does in PostgreSQL for the guards (migration 0019): ``xml_sha256`` is the
SHA-256 of the unpacked document.

A document without ``\\x01`` is migration 0017's form: ``<ds:X509Certificate>#<id>
</ds:X509Certificate>`` anywhere is a certificate (a record with no signature zone is
still packed so). ``\\x01`` cannot occur in an XML 1.0 document, Base64 has no ``#`` and an
RFC 4514 name cannot start with one, so a document that was never packed is its own
unpacked form, and a document holding ``\\x01``, ``<ds:X509Certificate>#`` or
``<ds:X509SubjectName>#`` is refused. Only ``hoc_ba.signed_xml`` is ever packed: documents
from elsewhere (``received_record``, ``hoc_ba_signing``) are never given to :func:`unpack`.
A certificate row that a stored document references can neither change its DER or subject
nor be deleted (migrations 0017 and 0019: ``certificate_keep``).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import text

from hocba.errors import HocbaError

_CERT = re.compile(rb"<ds:X509Certificate>([A-Za-z0-9+/=]+)</ds:X509Certificate>")
_REF = re.compile(rb"<ds:X509Certificate>#(\d+)</ds:X509Certificate>")
_OPEN, _CLOSE = b"<ds:X509Certificate>", b"</ds:X509Certificate>"
_MARK = b"\x01"
#: a subject or certificate reference of the zone (the whole text after its token)
_ZONE_REF = re.compile(rb"\x01[IJ]#(\d+)(?=\x01|\Z)")
_REFUSED = (b"<ds:X509Certificate>#", b"<ds:X509SubjectName>#")

_C14N = b"http://www.w3.org/2001/10/xml-exc-c14n#"
_TRANSFORMS = (
    b'<ds:Transforms><ds:Transform Algorithm="' + _C14N + b'"/></ds:Transforms>'
    b'<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>'
)
#: The fixed texts of a signature slot as ``hocba.xml.dsig.sign_slots`` writes them, each
#: stored as ``\x01`` + its letter. A storage format: a letter is never given another
#: text nor taken away, only new letters added (migration 0019 holds the SQL copy, and
#: tests/models/test_stored_xml.py proves they agree). Replaced in this order.
ZONE_TOKENS: tuple[tuple[bytes, bytes], ...] = (
    (b"A", b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Id="sig-'),
    (
        b"B",
        b'"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="'
        + _C14N
        + b'"/><ds:SignatureMethod Algorithm="',
    ),
    (b"C", b"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"),
    (b"D", b"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"),
    (b"E", b'"/><ds:Reference URI="#data">' + _TRANSFORMS),
    (b"F", b'</ds:DigestValue></ds:Reference><ds:Reference URI="#st-'),
    (b"G", b'" Type="http://www.w3.org/2000/09/xmldsig#SignatureProperties">' + _TRANSFORMS),
    (b"H", b"</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>"),
    (b"I", b"</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509SubjectName>"),
    (b"J", b"</ds:X509SubjectName><ds:X509Certificate>"),
    (
        b"K",
        b"</ds:X509Certificate></ds:X509Data></ds:KeyInfo><ds:Object>"
        b'<ds:SignatureProperties Id="st-',
    ),
    (b"L", b'"><ds:SignatureProperty Target="#sig-'),
    (b"M", b'"><hb:SigningTime xmlns:hb="urn:hocba:xmldsig:1">'),
    (
        b"N",
        b"</hb:SigningTime></ds:SignatureProperty></ds:SignatureProperties></ds:Object>"
        b"</ds:Signature><NGAY_KY>",
    ),
)


class StoredXmlError(HocbaError, RuntimeError):
    """A stored document references a certificate the database does not hold, or cannot
    be packed."""


_FIXED = {letter[0]: fixed for letter, fixed in ZONE_TOKENS}
_SUBJECT, _CERTIFICATE = ord("I"), ord("J")
assert _FIXED[_SUBJECT].endswith(b"<ds:X509SubjectName>")
assert _FIXED[_CERTIFICATE].endswith(b"<ds:X509Certificate>")


def xml_text(value: str) -> bytes:
    """``value`` as the signer writes an element's text (lxml: ``&``, ``<``, ``>``
    escaped); migration 0019's ``hoc_ba_xml`` escapes a subject the same way."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").encode()


def pack(conn: Any, documents: Sequence[bytes]) -> list[bytes]:
    """``documents`` as ``hoc_ba.signed_xml`` stores them: the zone's fixed texts by token,
    each registered certificate and the subject before it by reference (one query for the
    batch). A document holding ``\\x01`` or a text that would read as a reference is
    refused: it could not be told apart from a packed one."""
    for doc in documents:
        if _MARK in doc:
            raise StoredXmlError("Tệp XML chứa ký tự điều khiển \\x01, không lưu được")
        if any(r in doc for r in _REFUSED):
            raise StoredXmlError("Tệp XML đã chứa tham chiếu chứng thư, không lưu được")
    texts = {m for doc in documents for m in _CERT.findall(doc)}
    ids: dict[bytes, int] = {}
    subjects: dict[int, bytes] = {}
    if texts:
        by_sha = {hashlib.sha256(base64.b64decode(t)).hexdigest(): t for t in texts}
        for cid, der, subject in conn.execute(
            text("SELECT id, der, subject FROM certificate WHERE sha256 = ANY(:h)"),
            {"h": list(by_sha)},
        ):
            b64 = base64.b64encode(bytes(der))
            if b64 in texts:  # exactly the form in the document, or left as it is
                ids[b64] = cid
                subjects[cid] = xml_text(subject)
    return [_pack_one(doc, ids, subjects) for doc in documents]


def _pack_one(doc: bytes, ids: dict[bytes, int], subjects: dict[int, bytes]) -> bytes:
    start = doc.find(ZONE_TOKENS[0][1])
    if start < 0:  # no signature zone: 0017's form
        if not ids:
            return doc
        return _CERT.sub(
            lambda m: _OPEN + b"#%d" % ids[m[1]] + _CLOSE if m[1] in ids else m[0], doc
        )
    zone = doc[start:]
    for letter, fixed in ZONE_TOKENS:
        zone = zone.replace(fixed, _MARK + letter)
    if not ids:
        return doc[:start] + zone
    parts = zone.split(_MARK)
    for i in range(2, len(parts)):
        part = parts[i]
        if part[0] != _CERTIFICATE or (cid := ids.get(part[1:])) is None:
            continue
        parts[i] = b"J#%d" % cid
        before = parts[i - 1]
        if before[0] == _SUBJECT and before[1:] == subjects[cid]:
            parts[i - 1] = b"I#%d" % cid
    return doc[:start] + _MARK.join(parts)


def unpack(conn: Any, stored: Iterable[bytes | memoryview | None]) -> list[bytes | None]:
    """The signed bytes of ``hoc_ba.signed_xml`` values (one query for the batch)."""
    docs = [bytes(s) if s is not None else None for s in stored]
    wanted: set[int] = set()
    for d in docs:
        if d:
            wanted.update(int(i) for i in (_ZONE_REF if _MARK in d else _REF).findall(d))
    texts: dict[int, bytes] = {}
    subjects: dict[int, bytes] = {}
    if wanted:
        for cid, der, subject in conn.execute(
            text("SELECT id, der, subject FROM certificate WHERE id = ANY(:ids)"),
            {"ids": list(wanted)},
        ):
            texts[cid] = base64.b64encode(bytes(der))
            subjects[cid] = xml_text(subject)
        if missing := wanted - texts.keys():
            raise StoredXmlError(f"Thiếu chứng thư #{min(missing)} của tệp XML đã lưu")
    out: list[bytes | None] = []
    for d in docs:
        if not d:
            out.append(d)
        elif _MARK in d:
            out.append(_expand(d, texts, subjects))
        elif wanted:
            out.append(_REF.sub(lambda m: _OPEN + texts[int(m[1])] + _CLOSE, d))
        else:
            out.append(d)
    return out


def _expand(doc: bytes, texts: dict[int, bytes], subjects: dict[int, bytes]) -> bytes:
    """A zone-packed document's signed bytes (one pass: ``split`` finds ``\\x01`` by
    ``memchr``; fourteen ``replace`` calls of a two-byte needle cost ~100 µs)."""
    parts = doc.split(_MARK)
    out = [parts[0]]
    for part in parts[1:]:
        fixed = _FIXED.get(part[0]) if part else None
        if fixed is None:
            raise StoredXmlError("Tệp XML đã lưu chứa mã rút gọn không biết")
        rest = part[1:]
        if rest[:1] == b"#" and rest[1:].isdigit() and part[0] in (_SUBJECT, _CERTIFICATE):
            rest = (subjects if part[0] == _SUBJECT else texts)[int(rest[1:])]
        out += (fixed, rest)
    return b"".join(out)


def unpack_one(conn: Any, stored: bytes | memoryview | None) -> bytes | None:
    """:func:`unpack` of one value."""
    return unpack(conn, [stored])[0]


def unpack_where(conn: Any, rows: Sequence[tuple[Any, bool]]) -> list[bytes]:
    """Documents of a query that unions ``hoc_ba.signed_xml`` (``True``: unpacked) with
    documents from elsewhere (``False``: ``received_record.xml``, taken as they are)."""
    own = unpack(conn, [xml if stored else None for xml, stored in rows])
    return [
        doc if doc is not None else bytes(xml) for (xml, _s), doc in zip(rows, own, strict=True)
    ]
