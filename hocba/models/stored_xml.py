"""The issued XML as ``hoc_ba.signed_xml`` stores it: certificates by reference (issue 14).

Each ``<ds:X509Certificate>`` of an issued record is one of the registered certificates
(the GVCN's, the principal's, the school's seal): ~1.3 KB of Base64 each, ~3.5 KB of the
7.8 KB the document takes compressed. :func:`pack` replaces the element's text by
``#<certificate.id>`` when it is exactly the single-line Base64 of that certificate's DER
(what the signer writes); :func:`unpack` puts the Base64 back, so the bytes are the signed
ones again, byte for byte (``xml_sha256`` is the SHA-256 of the unpacked document, and the
issue guard checks it on ``hoc_ba_xml()``, the same rebuild in SQL: migration 0017).

Base64 has no ``#``, so a document that was never packed (stored before 0017, or a
certificate that is not registered) is its own unpacked form. Only ``hoc_ba.signed_xml``
is ever packed: documents from elsewhere (``received_record``, ``hoc_ba_signing``) are
never given to :func:`unpack`. A certificate row that a stored document references can
neither change its DER nor be deleted (migration 0017's trigger).
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


class StoredXmlError(HocbaError, RuntimeError):
    """A stored document references a certificate the database does not hold."""


def pack(conn: Any, documents: Sequence[bytes]) -> list[bytes]:
    """``documents`` with each registered certificate replaced by its reference (one query
    for the batch). A document already holding a reference is refused: it could not be
    told apart from a packed one."""
    texts = {m for doc in documents for m in _CERT.findall(doc)}
    ids: dict[bytes, int] = {}
    if texts:
        by_sha = {hashlib.sha256(base64.b64decode(t)).hexdigest(): t for t in texts}
        for cid, der in conn.execute(
            text("SELECT id, der FROM certificate WHERE sha256 = ANY(:h)"), {"h": list(by_sha)}
        ):
            b64 = base64.b64encode(bytes(der))
            if b64 in texts:  # exactly the form in the document, or left as it is
                ids[b64] = cid
    out = []
    for doc in documents:
        if _REF.search(doc):
            raise StoredXmlError("Tệp XML đã chứa tham chiếu chứng thư, không lưu được")
        out.append(
            _CERT.sub(lambda m: _OPEN + b"#%d" % ids[m[1]] + _CLOSE if m[1] in ids else m[0], doc)
            if ids
            else doc
        )
    return out


def unpack(conn: Any, stored: Iterable[bytes | memoryview | None]) -> list[bytes | None]:
    """The signed bytes of ``hoc_ba.signed_xml`` values (one query for the batch)."""
    docs = [bytes(s) if s is not None else None for s in stored]
    wanted = {int(i) for d in docs if d for i in _REF.findall(d)}
    if not wanted:
        return docs
    texts = {
        cid: base64.b64encode(bytes(der))
        for cid, der in conn.execute(
            text("SELECT id, der FROM certificate WHERE id = ANY(:ids)"), {"ids": list(wanted)}
        )
    }
    if missing := wanted - texts.keys():
        raise StoredXmlError(f"Thiếu chứng thư #{min(missing)} của tệp XML đã lưu")
    return [_REF.sub(lambda m: _OPEN + texts[int(m[1])] + _CLOSE, d) if d else d for d in docs]


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
