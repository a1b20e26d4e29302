"""Packaging issued records for the province portal (HOCBA_SPEC §6).

Three layers, each a plain function:

* **Content encoding** — :func:`encode_content` / :func:`decode_content`: the XML as UTF-8
  bytes → gzip (RFC 1952) → prefixed with the uncompressed length as a 4-byte
  little-endian unsigned integer → Base64 (RFC 4648 §4, standard alphabet, padded).
  Decoding refuses bad Base64, a declared length above the limit (before inflating
  anything), a gzip stream that inflates beyond the declared length or the limit (a "gzip
  bomb"), trailing bytes, and a length mismatch — each with :class:`ContentError`.
* **Record lists** — :func:`package_records` puts issued record XMLs into
  ``<DANH_SACH_HOC_BA>`` documents (transaction 1), split so that each transaction stays
  within the portal's 10 MB limit; :func:`extract_records` takes them out again. Records
  are embedded **byte for byte**: the bytes of each record after its XML declaration are
  copied verbatim into the list, and extraction re-serialises each ``<HOC_BA>`` element
  with lxml and puts the declaration back. For records written by this project (lxml,
  UTF-8) the extracted bytes equal the issued bytes (same SHA-256); for any record the
  exclusive-c14n form of ``DU_LIEU_HOC_BA`` and of the signatures is unchanged, so every
  XMLDSig signature still verifies after extraction.
* **Revocation lists** — :func:`build_revocation_xml` / :func:`parse_revocation_xml`: the
  ``<DANH_SACH_HOC_BA id="dataDanhSach">`` of transaction 5.

Message ids (choice, see docs/PORTAL.md): a :class:`Package`'s ``message_id`` is a UUID v5
derived from the SHA-256 of the package XML and an optional ``nonce``. Packaging the same
records again gives the same id, so a retried send can never create a second submission
even if the caller lost the id. A *deliberate* new submission of the same content (for
example resending records the portal rejected because the school certificate was not yet
approved) must pass a new ``nonce`` (the flow's attempt number), since the portal answers
a known message id with its first answer. Callers should still persist the id with the
submission before sending.

Size limits of :func:`package_records` (all three hold for every package):

* ``max_bytes`` (10 MiB) — the whole transaction as sent; the Base64 content gets
  ``max_bytes - envelope_reserve`` (the envelope's fields, signature and certificates take
  far less than the 64 KiB reserve);
* ``max_uncompressed`` (32 MiB) — the XML itself, so the portal's gzip-bomb limit
  (:data:`DEFAULT_MAX_UNCOMPRESSED`, 64 MiB) never refuses an honest package: issued
  records share their certificates and compress about 15:1;
* ``max_records`` (1000) — the portal verifies every record synchronously; 1000 records
  are a few seconds of work, well inside any HTTP timeout.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import re
import struct
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from lxml import etree

from hocba.errors import HocbaError
from hocba.xml.record import RecordXmlError, hardened_parser, parse_record_xml_safely

__all__ = [
    "DEFAULT_ENVELOPE_RESERVE",
    "DEFAULT_MAX_RECORDS",
    "DEFAULT_MAX_UNCOMPRESSED",
    "MAX_TRANSACTION_BYTES",
    "ContentError",
    "Package",
    "PackagingError",
    "RevocationItem",
    "build_revocation_xml",
    "decode_content",
    "encode_content",
    "extract_parsed_records",
    "extract_records",
    "package_message_id",
    "package_records",
    "parse_revocation_xml",
]

MAX_TRANSACTION_BYTES = 10 * 1024 * 1024
"""At most 10 MB per transaction (HOCBA_SPEC §6): the request body as sent."""
DEFAULT_ENVELOPE_RESERVE = 64 * 1024
"""Bytes of a transaction kept for everything but the content (auth fields, signature,
certificates, JSON punctuation)."""
DEFAULT_MAX_UNCOMPRESSED = 64 * 1024 * 1024
"""Largest XML :func:`decode_content` inflates by default (gzip-bomb guard)."""
DEFAULT_PACKAGE_UNCOMPRESSED = 32 * 1024 * 1024
"""Largest package XML :func:`package_records` builds by default."""
DEFAULT_MAX_RECORDS = 1000
"""Most records in one package by default."""

LIST_TAG = "DANH_SACH_HOC_BA"
RECORD_TAG = "HOC_BA"
REVOCATION_LIST_ID = "dataDanhSach"
REVOCATION_FIELDS = (
    "MA_TRA_CUU_UUID",
    "HO_VA_TEN",
    "GIOI_TINH",
    "NGAY_SINH",
    "SO_CCCD",
    "TEN_TRUONG",
    "MA_TRUONG",
    "TEN_NAM_HOC",
    "LY_DO",
)
"""Fields of one revocation item: HOCBA_SPEC §6 transaction 5, plus the reason (LY_DO)
that HOCBA_SPEC §5 requires for a correction request."""

_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_LIST_HEAD = _DECLARATION + b"<" + LIST_TAG.encode() + b">\n"
_LIST_TAIL = b"</" + LIST_TAG.encode() + b">\n"
_DECLARATION_RE = re.compile(rb"\A\s*<\?xml\s[^?]*\?>\s*")
_GZIP_LEVEL = 6
_GZIP_WBITS = 31  # zlib: deflate with a gzip (RFC 1952) wrapper
_PACKAGE_NAMESPACE = uuid.UUID("6f1d8d1e-5b0a-4c55-9d8e-2f6b3f0c7a11")
_MAX_TAIL_BYTES = len(_LIST_TAIL) + 64  # deflate of the tail + final block + gzip trailer


class ContentError(HocbaError, ValueError):
    """The ``content`` of a transaction cannot be decoded; ``message_vi`` says why."""

    def __init__(self, message_vi: str) -> None:
        super().__init__(message_vi)
        self.message_vi = message_vi


class PackagingError(HocbaError, ValueError):
    """Records cannot be packaged (not a record, too large alone...); ``index`` is the
    position of the offending record in the input, when there is one."""

    def __init__(self, message_vi: str, index: int | None = None) -> None:
        super().__init__(message_vi)
        self.message_vi = message_vi
        self.index = index


# ============================================================================ encoding
def _b64_length(raw: int) -> int:
    return 4 * ((raw + 2) // 3)


def encode_content(xml: bytes) -> str:
    """``xml`` → gzip → 4-byte little-endian uncompressed length + gzip → Base64.

    Deterministic (gzip header with mtime 0), so the same XML always gives the same text.
    """
    if not isinstance(xml, bytes | bytearray):
        raise TypeError("encode_content expects the XML as bytes")
    if len(xml) > 0xFFFFFFFF:
        raise ContentError("Nội dung quá lớn để ghi độ dài 4 byte (tối đa 4 GiB).")
    compressed = gzip.compress(bytes(xml), compresslevel=_GZIP_LEVEL, mtime=0)
    return base64.b64encode(struct.pack("<I", len(xml)) + compressed).decode("ascii")


def decode_content(s: str, max_uncompressed: int = DEFAULT_MAX_UNCOMPRESSED) -> bytes:
    """Reverse :func:`encode_content`; raises :class:`ContentError` on anything wrong.

    ASCII whitespace in ``s`` is ignored (some senders wrap Base64 lines). The declared
    length is checked against ``max_uncompressed`` before inflating, and inflating stops
    one byte past the declared length, so a gzip bomb costs at most ``max_uncompressed``
    bytes of memory.
    """
    if isinstance(s, bytes | bytearray):
        s = bytes(s).decode("ascii", errors="replace")
    if not isinstance(s, str):
        raise ContentError("Nội dung (content) phải là chuỗi Base64.")
    try:
        raw = base64.b64decode("".join(s.split()).encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise ContentError("Nội dung (content) không phải Base64 hợp lệ.") from None
    if len(raw) < 4:
        raise ContentError("Nội dung (content) quá ngắn: thiếu 4 byte độ dài.")
    (declared,) = struct.unpack("<I", raw[:4])
    if declared > max_uncompressed:
        raise ContentError(
            f"Nội dung khai báo {declared:,} byte sau giải nén, vượt giới hạn "
            f"{max_uncompressed:,} byte."
        )
    inflater = zlib.decompressobj(_GZIP_WBITS)
    try:
        xml = inflater.decompress(raw[4:], declared + 1)
    except zlib.error:
        raise ContentError("Nội dung (content) không phải dữ liệu gzip hợp lệ.") from None
    if len(xml) > declared:
        raise ContentError(
            f"Dữ liệu giải nén dài hơn độ dài khai báo ({declared:,} byte): từ chối "
            "(có thể là gzip bomb)."
        )
    if not inflater.eof:
        raise ContentError(
            "Dữ liệu gzip bị cắt cụt hoặc dài hơn độ dài khai báo "
            f"({declared:,} byte sau giải nén)."
        )
    if inflater.unused_data:
        raise ContentError("Có dữ liệu thừa sau luồng gzip.")
    if len(xml) != declared:
        raise ContentError(
            f"Độ dài sau giải nén ({len(xml):,} byte) khác độ dài khai báo ({declared:,} byte)."
        )
    return xml


# ============================================================================ packages
@dataclass(frozen=True)
class Package:
    """One ``<DANH_SACH_HOC_BA>`` transaction-to-be.

    ``content`` is the encoded XML (what goes into the envelope); ``indexes`` are the
    positions of its records in the input of :func:`package_records`; ``lookup_codes``
    their ``MA_TRA_CUU_UUID`` in the same order.
    """

    message_id: str
    content: str
    xml_sha256: str
    xml_size: int
    indexes: tuple[int, ...]
    lookup_codes: tuple[str | None, ...]

    @property
    def record_count(self) -> int:
        return len(self.indexes)

    @property
    def xml(self) -> bytes:
        """The package XML (decoded from ``content``)."""
        return decode_content(self.content, max(self.xml_size, 1))

    def __repr__(self) -> str:
        return (
            f"Package(message_id={self.message_id!r}, records={self.record_count}, "
            f"xml_size={self.xml_size}, content_size={len(self.content)})"
        )


def package_message_id(xml_sha256: str, nonce: str = "") -> str:
    """The deterministic message id of a package (UUID v5, RFC 9562 §5.5)."""
    return str(uuid.uuid5(_PACKAGE_NAMESPACE, f"{xml_sha256}:{nonce}"))


def _record_body(record: bytes, index: int) -> tuple[bytes, str | None]:
    """The record's bytes without its XML declaration, and its lookup code."""
    if not isinstance(record, bytes | bytearray):
        raise PackagingError(f"Học bạ thứ {index + 1}: dữ liệu phải là bytes", index)
    try:
        root = parse_record_xml_safely(bytes(record))
    except RecordXmlError as exc:
        raise PackagingError(f"Học bạ thứ {index + 1}: {exc.message_vi}", index) from None
    if root.tag != RECORD_TAG:
        raise PackagingError(f"Học bạ thứ {index + 1}: phần tử gốc không phải <HOC_BA>", index)
    if root.getprevious() is not None or root.getnext() is not None:
        raise PackagingError(
            f"Học bạ thứ {index + 1}: có chú thích hoặc chỉ thị xử lý ngoài <HOC_BA>", index
        )
    code = root.findtext("DU_LIEU_HOC_BA/THONG_TIN_CHUNG/MA_TRA_CUU_UUID")
    return _without_declaration(record), (code.strip() if code and code.strip() else None)


def _without_declaration(record: bytes) -> bytes:
    record = bytes(record).removeprefix(b"\xef\xbb\xbf")  # a UTF-8 BOM, if any
    match = _DECLARATION_RE.match(record)
    return (record[match.end() :] if match else record).lstrip()


_CODE_OPEN, _CODE_CLOSE = b"<MA_TRA_CUU_UUID>", b"</MA_TRA_CUU_UUID>"


def _issued_body(record: bytes, index: int) -> tuple[bytes, str | None]:
    """:func:`_record_body` of a record this system issued (``checked=True``): the same
    bytes and code, read without parsing (its one ``MA_TRA_CUU_UUID``, a UUID as
    build_record_xml writes it). Bytes that do not even start as one go the full way."""
    if not isinstance(record, bytes):
        return _record_body(record, index)
    body = _without_declaration(record)
    start = body.find(_CODE_OPEN)
    if not body.startswith(b"<HOC_BA") or start < 0:
        return _record_body(record, index)
    start += len(_CODE_OPEN)
    code = body[start : body.find(_CODE_CLOSE, start)].decode("utf-8", "replace").strip()
    return body, code or None


class _Builder:
    """Streams records into one gzip member, remembering the exact compressed size."""

    def __init__(self) -> None:
        self.compressor = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
        self.chunks = [self.compressor.compress(_LIST_HEAD)]
        self.compressed = len(self.chunks[0])
        self.size = len(_LIST_HEAD)
        self.bodies: list[bytes] = []
        self.indexes: list[int] = []
        self.codes: list[str | None] = []

    def try_add(self, body: bytes, index: int, code: str | None, limits: _Limits) -> bool:
        """Add the record if the package stays within every limit; else leave it as is."""
        if len(self.indexes) >= limits.records:
            return False
        if self.size + len(body) + len(_LIST_TAIL) > limits.uncompressed:
            return False
        # deflate grows incompressible data by far less than this (zlib's deflateBound:
        # ~0.03% + 13 bytes, + 5 per sync flush): when even this fits, nothing can need
        # undoing, so the compressor's state (~270 KB) is not copied for every record
        worst = len(body) + (len(body) >> 3) + 64
        fits = _b64_length(4 + self.compressed + worst + _MAX_TAIL_BYTES) <= limits.content
        before = None if fits else self.compressor.copy()
        chunk = self.compressor.compress(body) + self.compressor.flush(zlib.Z_SYNC_FLUSH)
        total = 4 + self.compressed + len(chunk) + _MAX_TAIL_BYTES
        if _b64_length(total) > limits.content:
            assert before is not None  # (the bound above said it would fit)
            self.compressor = before
            return False
        self.chunks.append(chunk)
        self.compressed += len(chunk)
        self.size += len(body)
        self.bodies.append(body)
        self.indexes.append(index)
        self.codes.append(code)
        return True

    def finish(self, nonce: str) -> Package:
        self.chunks.append(self.compressor.compress(_LIST_TAIL) + self.compressor.flush())
        size = self.size + len(_LIST_TAIL)
        gz = b"".join(self.chunks)
        content = base64.b64encode(struct.pack("<I", size) + gz).decode("ascii")
        digest = hashlib.sha256(_LIST_HEAD)
        for body in self.bodies:
            digest.update(body)
        digest.update(_LIST_TAIL)
        sha = digest.hexdigest()
        return Package(
            message_id=package_message_id(sha, nonce),
            content=content,
            xml_sha256=sha,
            xml_size=size,
            indexes=tuple(self.indexes),
            lookup_codes=tuple(self.codes),
        )


@dataclass(frozen=True)
class _Limits:
    content: int
    uncompressed: int
    records: int


def package_records(
    records: Sequence[bytes],
    max_bytes: int = MAX_TRANSACTION_BYTES,
    *,
    max_records: int = DEFAULT_MAX_RECORDS,
    max_uncompressed: int = DEFAULT_PACKAGE_UNCOMPRESSED,
    envelope_reserve: int = DEFAULT_ENVELOPE_RESERVE,
    nonce: str = "",
    checked: bool = False,
) -> list[Package]:
    """Split issued records into ``<DANH_SACH_HOC_BA>`` packages, in input order.

    Every package's encoded content is at most ``max_bytes - envelope_reserve`` characters
    (so the whole transaction stays within ``max_bytes``), its XML at most
    ``max_uncompressed`` bytes, and it holds at most ``max_records`` records. Each record
    is checked to be one well-formed ``<HOC_BA>`` (parsed safely, no DOCTYPE) and embedded
    byte for byte. Raises :class:`PackagingError` for a record that is not one, or that
    cannot fit in a package even alone. Deterministic: the same records and ``nonce`` give
    the same packages and message ids.

    ``checked=True``: the records are this system's issued records as the database keeps
    them (``hoc_ba.signed_xml`` of issued rows: parsed and verified in full at the seal,
    written since only by an added timestamp the database's guard checks), so they are
    embedded without being parsed again (the parse was a sixth of the submission
    worker's CPU per record); the packages are the same.
    """
    limits = _Limits(max_bytes - envelope_reserve, max_uncompressed, max_records)
    if limits.content <= _b64_length(4 + 64) or max_records < 1:
        raise PackagingError("Giới hạn kích thước gói quá nhỏ.")
    packages: list[Package] = []
    builder = _Builder()
    for index, record in enumerate(records):
        body, code = _issued_body(record, index) if checked else _record_body(record, index)
        if builder.try_add(body, index, code, limits):
            continue
        if not builder.indexes:
            raise PackagingError(
                f"Học bạ thứ {index + 1} ({len(record):,} byte) quá lớn cho một giao dịch "
                f"(giới hạn {max_bytes:,} byte).",
                index,
            )
        packages.append(builder.finish(nonce))
        builder = _Builder()
        if not builder.try_add(body, index, code, limits):
            raise PackagingError(
                f"Học bạ thứ {index + 1} ({len(record):,} byte) quá lớn cho một giao dịch "
                f"(giới hạn {max_bytes:,} byte).",
                index,
            )
    if builder.indexes:
        packages.append(builder.finish(nonce))
    return packages


# ============================================================================ parsing


def _check_list_bytes(xml: bytes, max_bytes: int) -> None:
    """What :func:`_parse_list` refuses before parsing."""
    if not isinstance(xml, bytes | bytearray):
        raise ContentError("Danh sách học bạ phải là bytes.")
    if len(xml) > max_bytes:
        raise ContentError(f"Danh sách học bạ quá lớn ({len(xml):,} > {max_bytes:,} byte).")
    # b"!" first, as in parse_record_xml_safely: one byte is found at memchr speed, and a
    # list rarely holds any "!", while "<" starts every search for "<!DOCTYPE" again
    if b"!" in xml and (b"<!DOCTYPE" in xml or b"<!ENTITY" in xml):
        raise ContentError("Danh sách học bạ không được chứa khai báo DOCTYPE/ENTITY.")


def _parse_list(xml: bytes, max_bytes: int) -> etree._Element:
    """Parse a ``<DANH_SACH_HOC_BA>`` safely (same rules as record files, bigger limit)."""
    _check_list_bytes(xml, max_bytes)
    try:
        root = etree.fromstring(bytes(xml), parser=hardened_parser())
    except etree.XMLSyntaxError as exc:
        raise ContentError(f"Danh sách học bạ sai cú pháp XML: {exc}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise ContentError("Danh sách học bạ không được chứa khai báo DOCTYPE/ENTITY.")
    if (docinfo.encoding or "UTF-8").upper() not in ("UTF-8", "UTF8"):
        raise ContentError("Danh sách học bạ phải mã hoá UTF-8.")
    if root.tag != LIST_TAG:
        raise ContentError(f"Phần tử gốc phải là <{LIST_TAG}>, không phải <{root.tag}>.")
    if (root.text or "").strip() or any((child.tail or "").strip() for child in root):
        raise ContentError(f"<{LIST_TAG}> không được chứa văn bản ngoài các <{RECORD_TAG}>.")
    for child in root:
        if child.tag is etree.Comment or child.tag is etree.PI:
            continue
        if child.tag != RECORD_TAG:
            raise ContentError(f"<{LIST_TAG}> chỉ được chứa <{RECORD_TAG}>, gặp <{child.tag}>.")
    return root


def _record_children(root: etree._Element) -> list[etree._Element]:
    return [child for child in root if child.tag == RECORD_TAG]


def extract_records(xml: bytes, max_bytes: int = DEFAULT_MAX_UNCOMPRESSED) -> list[bytes]:
    """The ``<HOC_BA>`` records of a ``<DANH_SACH_HOC_BA>``, each as a standalone document.

    Each record is re-serialised by lxml (UTF-8, no pretty printing) behind the standard
    declaration, followed by the whitespace that followed it in the list — for records
    packaged by :func:`package_records` from this project's records, exactly the issued
    bytes. Raises :class:`ContentError` when the list is not a safe, well-formed
    ``<DANH_SACH_HOC_BA>`` of ``<HOC_BA>`` elements.
    """
    root = _parse_list(xml, max_bytes)
    records = []
    for child in _record_children(root):
        records.append(
            _DECLARATION
            + etree.tostring(child, encoding="UTF-8", with_tail=False)
            + (child.tail or "").encode("utf-8")
        )
    return records


_RECORD_END = b"</" + RECORD_TAG.encode() + b">"
_RECORD_START = b"<" + RECORD_TAG.encode()
_SEPARATOR = b" \t\n"  # whitespace the parser reads back unchanged (not \r: "\r\n" → "\n")
_MAX_DEPTH = 256  # libxml2's nesting limit without huge_tree (lxml's huge_tree=False)
_TOO_DEEP = etree.XPath("boolean(" + "/*" * (_MAX_DEPTH) + ")")
"""An element at depth 256 of a record (its root at depth 1): the record parses alone but
not inside the list, one level deeper."""


def extract_parsed_records(
    xml: bytes, max_bytes: int = DEFAULT_MAX_UNCOMPRESSED
) -> list[tuple[bytes, etree._Element | None]]:
    """:func:`extract_records`, each record with the tree ``parse_record_xml_safely`` gives
    for its bytes when this function has it (``None``: the caller parses the bytes).

    Same records, same bytes, same refusals as :func:`extract_records`, and each record
    parsed once instead of twice (the list, then the record alone): when the list is laid
    out as :func:`package_records` writes it — the standard declaration and
    ``<DANH_SACH_HOC_BA>`` line, records separated by spaces, tabs or line feeds only, each
    ending in ``</HOC_BA>``, the closing line — the bytes are cut at each ``</HOC_BA>`` and
    every piece is parsed alone with ``parse_record_xml_safely``. That gives the list's
    records exactly when every piece parses to a ``<HOC_BA>`` that lxml serialises back to
    the same bytes (a cut inside a comment, a CDATA section or a processing instruction
    leaves a piece that does not parse) and no element is nested 256 deep (libxml2's limit,
    one level deeper in the list). Anything else — another layout, a record the safe
    parser refuses — goes through :func:`extract_records` with ``None`` trees, so what it
    refuses is refused with the same message.
    """
    _check_list_bytes(xml, max_bytes)
    fast = _cut_records(bytes(xml))
    if fast is not None:
        return fast
    return [(record, None) for record in extract_records(xml, max_bytes)]


def _cut_records(xml: bytes) -> list[tuple[bytes, etree._Element]] | None:
    """The records of a list laid out as :func:`package_records` writes it, parsed alone;
    ``None`` when the list is not (see :func:`extract_parsed_records`)."""
    if not xml.startswith(_LIST_HEAD) or not xml.endswith(_LIST_TAIL):
        return None
    parts = xml[len(_LIST_HEAD) : len(xml) - len(_LIST_TAIL)].split(_RECORD_END)
    if parts[-1].strip(_SEPARATOR):
        return None  # text, a comment... after the last record
    records: list[tuple[bytes, etree._Element]] = []
    for position in range(len(parts) - 1):
        element = parts[position].lstrip(_SEPARATOR)
        if not element.startswith(_RECORD_START):
            return None
        element += _RECORD_END
        following = parts[position + 1]  # the separator before the next record, or the end
        last = position + 2 == len(parts)
        tail = (
            following if last else following[: len(following) - len(following.lstrip(_SEPARATOR))]
        )
        record = _DECLARATION + element + tail
        try:
            root = parse_record_xml_safely(record)
        except RecordXmlError:
            return None
        if (
            root.tag != RECORD_TAG
            or etree.tostring(root, encoding="UTF-8", with_tail=False) != element
            or _TOO_DEEP(root)
        ):
            return None
        records.append((record, root))
    return records


# ============================================================================ revocation
@dataclass(frozen=True)
class RevocationItem:
    """One record whose revocation is requested (transaction 5). ``so_cccd`` is not in the
    ``repr`` (Nghị định 13/2023)."""

    ma_tra_cuu_uuid: str
    ho_va_ten: str
    gioi_tinh: str
    ngay_sinh: str
    so_cccd: str
    ten_truong: str
    ma_truong: str
    ten_nam_hoc: str
    ly_do: str = ""

    def __repr__(self) -> str:
        return (
            f"RevocationItem(ma_tra_cuu_uuid={self.ma_tra_cuu_uuid!r}, "
            f"ma_truong={self.ma_truong!r}, ten_nam_hoc={self.ten_nam_hoc!r})"
        )


def build_revocation_xml(items: Sequence[RevocationItem]) -> bytes:
    """``<DANH_SACH_HOC_BA id="dataDanhSach">`` with one ``<HOC_BA>`` per item; empty
    values omit their tag (HOCBA_SPEC §3)."""
    if not items:
        raise PackagingError("Yêu cầu thu hồi phải có ít nhất một học bạ.")
    root = etree.Element(LIST_TAG, id=REVOCATION_LIST_ID)
    for item in items:
        record = etree.SubElement(root, RECORD_TAG)
        for name in REVOCATION_FIELDS:
            value = getattr(item, name.lower())
            if value is not None and str(value).strip():
                etree.SubElement(record, name).text = str(value).strip()
    return _DECLARATION + etree.tostring(root, encoding="UTF-8", pretty_print=True)


def parse_revocation_xml(
    xml: bytes, max_bytes: int = DEFAULT_MAX_UNCOMPRESSED
) -> list[RevocationItem]:
    """Read a transaction-5 list; raises :class:`ContentError` when an item has no
    ``MA_TRA_CUU_UUID``."""
    root = _parse_list(xml, max_bytes)
    items = []
    for position, element in enumerate(_record_children(root), start=1):
        values = {n.lower(): (element.findtext(n) or "").strip() for n in REVOCATION_FIELDS}
        if not values["ma_tra_cuu_uuid"]:
            raise ContentError(f"Học bạ thứ {position} của yêu cầu thu hồi thiếu MA_TRA_CUU_UUID.")
        items.append(RevocationItem(**values))
    if not items:
        raise ContentError("Yêu cầu thu hồi không có học bạ nào.")
    return items
