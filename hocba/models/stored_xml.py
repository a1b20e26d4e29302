"""The issued XML as ``hoc_ba.signed_xml`` stores it (issue 14): certificates and their
subjects by reference, the signature zone's fixed text by token.

Each ``<ds:X509Certificate>`` of an issued record is one of the registered certificates
(the GVCN's, the principal's, the school's seal): ~1.3 KB of Base64 each, ~3.5 KB of the
7.8 KB the document takes compressed. :func:`pack` replaces the element's text by
``#<certificate.id>`` when it is exactly the single-line Base64 of that certificate's DER
(what the signer writes), and the ``<ds:X509SubjectName>`` just before it by the same
``#<id>`` when its text is exactly that certificate's ``subject`` as the signer escapes it
(migration 0019). Then the fixed texts of each signature slot (:data:`ZONE_TOKENS`: the
``SignedInfo`` skeleton, the algorithms, the closing tags between the values) become two
bytes each, ``\\x01`` and a letter: the packed document fits two TOAST chunks (< 3,992 B
after pglz) instead of three. :func:`unpack` expands the tokens, then puts the references
back, so the bytes are the signed ones again, byte for byte (``xml_sha256`` is the SHA-256
of the unpacked document, and the issue guard checks it on ``hoc_ba_xml()``, the same
rebuild in SQL: migrations 0017 and 0019).

Base64 has no ``#``, an RFC 4514 name cannot start with one, and ``\\x01`` cannot occur in
an XML 1.0 document, so a document that was never packed (stored before 0017, or a
certificate that is not registered) is its own unpacked form, and a document already
holding a reference or a ``\\x01`` is refused. Only ``hoc_ba.signed_xml`` is ever packed:
documents from elsewhere (``received_record``, ``hoc_ba_signing``) are never given to
:func:`unpack`. A certificate row that a stored document references can neither change its
DER or subject nor be deleted (migrations 0017 and 0019's trigger).
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
#: a subject name followed by the certificate it names (as :func:`pack` sees it, after the
#: certificates became references)
_SUBJECT_CERT = re.compile(
    rb"<ds:X509SubjectName>([^<#][^<]*)</ds:X509SubjectName><ds:X509Certificate>#(\d+)<"
)
_SUBJECT_REF = re.compile(rb"<ds:X509SubjectName>#(\d+)</ds:X509SubjectName>")
_SUBJECT_OPEN, _SUBJECT_CLOSE = b"<ds:X509SubjectName>", b"</ds:X509SubjectName>"
_MARK = b"\x01"

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


def xml_text(value: str) -> bytes:
    """``value`` as the signer writes an element's text (lxml: ``&``, ``<``, ``>``
    escaped); migration 0019's ``hoc_ba_xml`` escapes a subject the same way."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").encode()


def pack(conn: Any, documents: Sequence[bytes]) -> list[bytes]:
    """``documents`` with each registered certificate and its subject name replaced by its
    reference (one query for the batch), then the zone's fixed texts by their tokens. A
    document already holding a reference or a ``\\x01`` is refused: it could not be told
    apart from a packed one."""
    for doc in documents:
        if _REF.search(doc) or _SUBJECT_REF.search(doc):
            raise StoredXmlError("Tệp XML đã chứa tham chiếu chứng thư, không lưu được")
        if _MARK in doc:
            raise StoredXmlError("Tệp XML chứa ký tự điều khiển \\x01, không lưu được")
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
    out = []
    for doc in documents:
        if ids:
            doc = _CERT.sub(
                lambda m: _OPEN + b"#%d" % ids[m[1]] + _CLOSE if m[1] in ids else m[0], doc
            )
            doc = _SUBJECT_CERT.sub(
                lambda m: (
                    _SUBJECT_OPEN + b"#" + m[2] + _SUBJECT_CLOSE + _OPEN + b"#" + m[2] + b"<"
                    if subjects.get(int(m[2])) == m[1]
                    else m[0]
                ),
                doc,
            )
        out.append(_tokens(doc))
    return out


def _tokens(doc: bytes) -> bytes:
    """``doc`` with the zone's fixed texts as tokens, from the first signature on (the
    data before it is not searched: ~35 µs a document instead of ~50)."""
    start = doc.find(ZONE_TOKENS[0][1])
    if start < 0:
        return doc
    zone = doc[start:]
    for letter, fixed in ZONE_TOKENS:
        zone = zone.replace(fixed, _MARK + letter)
    return doc[:start] + zone


_FIXED = {letter[0]: fixed for letter, fixed in ZONE_TOKENS}


def _expand(doc: bytes) -> bytes:
    """``doc`` with its tokens expanded (one pass: ``split`` finds ``\x01`` by ``memchr``;
    fourteen ``replace`` calls of a two-byte needle cost ~100 µs a document)."""
    parts = doc.split(_MARK)
    out = [parts[0]]
    for part in parts[1:]:
        fixed = _FIXED.get(part[0]) if part else None
        if fixed is None:
            raise StoredXmlError("Tệp XML đã lưu chứa mã rút gọn không biết")
        out += (fixed, part[1:])
    return b"".join(out)


def unpack(conn: Any, stored: Iterable[bytes | memoryview | None]) -> list[bytes | None]:
    """The signed bytes of ``hoc_ba.signed_xml`` values (one query for the batch)."""
    docs = [
        (_expand(d) if _MARK in d else d) if d is not None else None
        for d in (bytes(s) if s is not None else None for s in stored)
    ]
    wanted = {int(i) for d in docs if d for i in _REF.findall(d)}
    wanted |= {int(i) for d in docs if d for i in _SUBJECT_REF.findall(d)}
    if not wanted:
        return docs
    texts: dict[int, bytes] = {}
    subjects: dict[int, bytes] = {}
    for cid, der, subject in conn.execute(
        text("SELECT id, der, subject FROM certificate WHERE id = ANY(:ids)"),
        {"ids": list(wanted)},
    ):
        texts[cid] = base64.b64encode(bytes(der))
        subjects[cid] = xml_text(subject)
    if missing := wanted - texts.keys():
        raise StoredXmlError(f"Thiếu chứng thư #{min(missing)} của tệp XML đã lưu")
    return [
        _SUBJECT_REF.sub(
            lambda m: _SUBJECT_OPEN + subjects[int(m[1])] + _SUBJECT_CLOSE,
            _REF.sub(lambda m: _OPEN + texts[int(m[1])] + _CLOSE, d),
        )
        if d
        else d
        for d in docs
    ]


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
