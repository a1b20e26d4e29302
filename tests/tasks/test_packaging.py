"""Packaging for the province portal (HOCBA_SPEC §6): the content encoding, the split of
issued records into ``<DANH_SACH_HOC_BA>`` transactions of at most 10 MB, and records that
still verify after they are taken out of a package."""

from __future__ import annotations

import base64
import gzip
import json
import os
import struct
import uuid
import zlib
from collections.abc import Callable

import pytest
from lxml import etree

from hocba.portal.client import PortalClient, check_envelope_signature
from hocba.portal.package import (
    DEFAULT_ENVELOPE_RESERVE,
    MAX_TRANSACTION_BYTES,
    ContentError,
    PackagingError,
    RevocationItem,
    build_revocation_xml,
    decode_content,
    encode_content,
    extract_parsed_records,
    extract_records,
    package_records,
    parse_revocation_xml,
)
from hocba.xml.dsig import verify_record_signatures
from hocba.xml.record import (
    RecordDocument,
    RecordXmlError,
    build_record_xml,
    parse_record_xml_safely,
)
from hocba.xml.verify import CheckStatus, verify_document

CLASS_SIZE = 12


@pytest.fixture
def issued(sign_all, make_record: Callable[..., RecordDocument]) -> list[bytes]:  # type: ignore[no-untyped-def]
    """A class of issued records: each with its lookup code, signed in the three slots."""
    documents = []
    for k in range(CLASS_SIZE):
        record = make_record(pupil_name=f"Nguyễn Văn Học {k}", cccd=f"0792150{k:05d}")
        record.thong_tin_chung["MA_TRA_CUU_UUID"] = str(uuid.uuid4())
        documents.append(build_record_xml(record))
    return sign_all(documents)


def _synthetic(size: int, seed: int) -> bytes:
    """A well-formed <HOC_BA> of about ``size`` bytes of incompressible text (packaging
    does not verify records; the portal does)."""
    noise = base64.b64encode(
        (seed.to_bytes(4, "big") + os.urandom(size * 3 // 4))[: size * 3 // 4]
    ).decode()
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<HOC_BA><DU_LIEU_HOC_BA Id="data">'
        f"<THONG_TIN_CHUNG><MA_TRA_CUU_UUID>{uuid.uuid4()}</MA_TRA_CUU_UUID>"
        f"<GHI_CHU>{noise}</GHI_CHU></THONG_TIN_CHUNG></DU_LIEU_HOC_BA></HOC_BA>"
    ).encode()


# ============================================================================ encoding
@pytest.mark.parametrize(
    "xml",
    [
        b"",
        b"<HOC_BA/>",
        "<HO_VA_TEN>Lê Minh Anh — Đầm Hà</HO_VA_TEN>".encode(),
        os.urandom(300_000),
    ],
    ids=["empty", "ascii", "vietnamese", "random 300 kB"],
)
def test_encoding_round_trips(xml: bytes) -> None:
    assert decode_content(encode_content(xml)) == xml


def test_the_encoding_is_length_prefix_then_gzip_then_base64() -> None:
    xml = "<DANH_SACH_HOC_BA>Học bạ</DANH_SACH_HOC_BA>".encode()
    raw = base64.b64decode(encode_content(xml), validate=True)
    assert struct.unpack("<I", raw[:4]) == (len(xml),)
    assert gzip.decompress(raw[4:]) == xml
    assert encode_content(xml) == encode_content(xml)  # deterministic (mtime 0)


def test_line_wrapped_base64_is_accepted() -> None:
    text = encode_content(b"<HOC_BA>" + b"x" * 500 + b"</HOC_BA>")
    wrapped = "\n".join(text[i : i + 76] for i in range(0, len(text), 76))
    assert decode_content(wrapped).startswith(b"<HOC_BA>")


def _raw(declared: int, body: bytes) -> str:
    return base64.b64encode(struct.pack("<I", declared) + body).decode()


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("not base64 at all!", "Base64"),
        (encode_content(b"<a/>")[:-2], "Base64"),  # padding cut
        ("AAA=", "quá ngắn"),
        (_raw(10, gzip.compress(b"<HOC_BA/>")), "khác độ dài khai báo"),  # 9 declared as 10
        (_raw(8, gzip.compress(b"<HOC_BA/>")), "dài hơn"),  # 9 declared as 8
        (_raw(9, b"this is not gzip"), "gzip"),
        (_raw(9, gzip.compress(b"<HOC_BA/>") + b"tail"), "thừa"),
        (_raw(9, gzip.compress(b"<HOC_BA/>")[:-6]), "cắt cụt"),
    ],
    ids=[
        "not base64",
        "bad padding",
        "too short",
        "length larger than data",
        "length smaller than data",
        "not gzip",
        "trailing bytes",
        "truncated gzip",
    ],
)
def test_bad_content_is_refused_with_a_clear_error(content: str, why: str) -> None:
    with pytest.raises(ContentError) as refused:
        decode_content(content)
    assert why in refused.value.message_vi


def test_a_gzip_bomb_is_refused_without_inflating_it() -> None:
    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)
    stream = bomb.compress(b"\0" * (16 * 1024 * 1024)) + bomb.flush()  # 16 MiB in ~16 kB
    assert len(stream) < 20_000
    with pytest.raises(ContentError, match="khai báo"):  # declared honestly: over the limit
        decode_content(_raw(16 * 1024 * 1024, stream), max_uncompressed=1024 * 1024)
    with pytest.raises(ContentError, match="gzip bomb"):  # declared small: stops at 1 kB
        decode_content(_raw(1024, stream), max_uncompressed=1024 * 1024)


# ============================================================================ packages
def test_records_extracted_from_packages_are_the_issued_bytes_and_still_verify(
    issued: list[bytes], signing_staff
) -> None:  # type: ignore[no-untyped-def]
    packages = package_records(issued, max_bytes=18_000, envelope_reserve=8_000)
    assert len(packages) > 2  # really split
    assert [i for p in packages for i in p.indexes] == list(range(CLASS_SIZE))
    for package in packages:
        assert len(package.content) <= 18_000 - 8_000
        extracted = extract_records(package.xml)
        assert extracted == [issued[i] for i in package.indexes]  # byte for byte
        assert list(package.lookup_codes) == [
            verify_document(r, trusted_roots=signing_staff.roots).lookup_code for r in extracted
        ]
        for record in extracted:
            assert verify_record_signatures(record, signing_staff.roots).ok
            report = verify_document(record, trusted_roots=signing_staff.roots)
            assert not [c.code for c in report.checks if c.status == CheckStatus.FAIL]


def test_issued_records_package_the_same_without_being_parsed_again(
    issued: list[bytes],
) -> None:
    """checked=True (the submission's records, read from hoc_ba) gives the very packages
    the parsing path gives; what is not even a record still gets the full check's error."""
    for kwargs in ({}, {"max_records": 5}, {"nonce": "2"}):
        fast = package_records(issued, checked=True, **kwargs)  # type: ignore[arg-type]
        full = package_records(issued, **kwargs)  # type: ignore[arg-type]
        assert fast == full
        assert all(code for p in fast for code in p.lookup_codes)
    with pytest.raises(PackagingError, match="Học bạ thứ 2"):
        package_records([issued[0], b""], checked=True)
    with pytest.raises(PackagingError, match="không phải <HOC_BA>"):
        package_records([b"<?xml version='1.0'?>\n<KHONG_PHAI/>"], checked=True)


def test_a_reformatted_package_still_yields_verifiable_records(
    issued: list[bytes], signing_staff
) -> None:  # type: ignore[no-untyped-def]
    """Another sender's serialisation (other declaration, spacing between records) changes
    the bytes, never the canonical form the signatures cover."""
    bodies = [r.split(b"?>", 1)[1].strip() for r in issued[:3]]
    xml = (
        b"<?xml version='1.0' encoding='utf-8'?>\r\n<DANH_SACH_HOC_BA>\r\n  "
        + b"\r\n  <!-- hoc sinh -->\r\n  ".join(bodies)
        + b"\r\n</DANH_SACH_HOC_BA>"
    )
    extracted = extract_records(xml)
    assert len(extracted) == 3
    for record in extracted:
        assert verify_record_signatures(record, signing_staff.roots).ok


def test_packages_split_so_every_transaction_stays_within_10_mb(signing_staff) -> None:  # type: ignore[no-untyped-def]
    records = [_synthetic(750_000, seed) for seed in range(16)]  # 12 MB, near incompressible
    packages = package_records(records, max_uncompressed=64 * 1024 * 1024)
    assert len(packages) == 2
    assert sum(p.record_count for p in packages) == len(records)
    client = PortalClient(
        "http://127.0.0.1:9", "u", "p", "79000701", signing_staff.signer(signing_staff.school)
    )
    try:
        for package in packages:
            envelope = client.envelope(1, package.content, package.message_id, "2024-2025")
            body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
            assert len(body) <= MAX_TRANSACTION_BYTES
            check_envelope_signature(json.loads(body))
        first = packages[0]
        assert len(first.content) > MAX_TRANSACTION_BYTES - DEFAULT_ENVELOPE_RESERVE - 1_000_000
    finally:
        client.close()


def test_packages_also_split_by_record_count_and_uncompressed_size(issued: list[bytes]) -> None:
    by_count = package_records(issued, max_records=5)
    assert [p.record_count for p in by_count] == [5, 5, 2]
    one = len(issued[0])
    by_size = package_records(issued, max_uncompressed=3 * one + 200)
    assert all(p.xml_size <= 3 * one + 200 for p in by_size)
    assert sum(p.record_count for p in by_size) == CLASS_SIZE


def test_message_ids_are_deterministic_and_change_with_content_or_nonce(
    issued: list[bytes],
) -> None:
    (first,) = package_records(issued[:4])
    (again,) = package_records(issued[:4])
    (other,) = package_records(issued[:5])
    (resubmission,) = package_records(issued[:4], nonce="2")
    assert first.message_id == again.message_id and first.content == again.content
    assert len({first.message_id, other.message_id, resubmission.message_id}) == 3
    assert uuid.UUID(first.message_id).version == 5


@pytest.mark.parametrize(
    ("record", "why"),
    [
        (b"<DANH_SACH_HOC_BA/>", "<HOC_BA>"),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><HOC_BA/>', "DOCTYPE"),
        (b"<HOC_BA><unclosed></HOC_BA>", "cú pháp"),
        (b"<!-- truoc --><HOC_BA/>", "ngoài <HOC_BA>"),
    ],
)
def test_what_is_not_one_record_cannot_be_packaged(record: bytes, why: str) -> None:
    with pytest.raises(PackagingError) as refused:
        package_records([_synthetic(100, 1), record])
    assert refused.value.index == 1 and why in refused.value.message_vi


def test_a_record_too_large_for_any_transaction_is_refused() -> None:
    with pytest.raises(PackagingError, match="quá lớn"):
        package_records([_synthetic(200_000, 1)], max_bytes=150_000, envelope_reserve=10_000)


@pytest.mark.parametrize(
    "xml",
    [
        b"<HOC_BA/>",
        b"<DANH_SACH_HOC_BA><GVCN/></DANH_SACH_HOC_BA>",
        b"<DANH_SACH_HOC_BA>text<HOC_BA/></DANH_SACH_HOC_BA>",
        b'<!DOCTYPE DANH_SACH_HOC_BA [<!ENTITY x "y">]><DANH_SACH_HOC_BA/>',
    ],
    ids=["not a list", "other element", "stray text", "doctype"],
)
def test_lists_that_are_not_lists_of_records_are_refused(xml: bytes) -> None:
    with pytest.raises(ContentError):
        extract_records(xml)


def _extracted(extract: Callable[[bytes], list], xml: bytes) -> object:  # type: ignore[type-arg]
    try:
        return [r if isinstance(r, bytes) else r[0] for r in extract(xml)]
    except ContentError as exc:
        return exc.message_vi


def _same_tree(record: bytes, tree: etree._Element | None) -> bool:
    """``tree`` is None or what ``parse_record_xml_safely(record)`` gives."""
    if tree is None:
        return True
    try:
        expected = parse_record_xml_safely(record)
    except RecordXmlError:
        return False
    return etree.tostring(tree.getroottree()) == etree.tostring(expected.getroottree())


def test_parsed_extraction_reads_each_issued_record_once(issued: list[bytes]) -> None:
    for package in package_records(issued, max_records=5):
        xml = package.xml
        parsed = extract_parsed_records(xml)
        assert [record for record, _ in parsed] == extract_records(xml)
        assert all(tree is not None for _, tree in parsed)  # the lists package_records writes
        assert all(_same_tree(record, tree) for record, tree in parsed)


_HEAD = b'<?xml version="1.0" encoding="UTF-8"?>\n<DANH_SACH_HOC_BA>\n'
_TAIL = b"</DANH_SACH_HOC_BA>\n"
_R = b'<HOC_BA><DU_LIEU_HOC_BA Id="data"><X>1</X></DU_LIEU_HOC_BA></HOC_BA>'


def _nested(depth: int) -> bytes:
    """A <HOC_BA> whose deepest element is ``depth`` levels down (the root is level 1)."""
    return b"<HOC_BA>" + b"<a>" * (depth - 1) + b"x" + b"</a>" * (depth - 1) + b"</HOC_BA>"


@pytest.mark.parametrize(
    "body",
    [
        _R + b"\n" + _R + b"\n",
        b"",
        b"  \t" + _R + b"\n\n\t" + _R,
        _R + b"\r\n" + _R + b"\r\n",
        _R + b"\n<!-- giua -->\n" + _R + b"\n",
        _R + b"\ntext\n" + _R + b"\n",
        b"<HOC_BA><!-- </HOC_BA> --><X/></HOC_BA>\n" + _R + b"\n",
        b"<HOC_BA><X><![CDATA[</HOC_BA>]]></X></HOC_BA>\n",
        b"<HOC_BA><X>a</X><?pi </HOC_BA>?></HOC_BA>\n",
        b"<HOC_BA a='1'><X>&#65;&gt;</X><Y></Y></HOC_BA>\n" + _R + b"\n",
        b"<HOC_BA><X>a</X></HOC_BA >\n",
        b"<HOC_BA/>\n" + _R + b"\n",
        b'<HOC_BA xmlns="urn:x"><X/></HOC_BA>\n',
        b'<HOC_BA xmlns:p="urn:p"><p:X/></HOC_BA>\n',
        b"<HOC_BA><DU_LIEU_HOC_BA><!-- x --></DU_LIEU_HOC_BA></HOC_BA>\n",
        b"<HOC_BAX></HOC_BA>\n",
        b"<HOC_BA><X></HOC_BA>\n",
        b"<GVCN></GVCN><HOC_BA></HOC_BA>\n",
        _nested(255) + b"\n",
        _nested(256) + b"\n",
        _nested(257) + b"\n",
    ],
    ids=[
        "as written",
        "empty",
        "tabs and blank lines",
        "CRLF",
        "comment between",
        "text between",
        "end tag in a comment",
        "end tag in CDATA",
        "end tag in a PI",
        "other serialisation",
        "space in the end tag",
        "empty element",
        "default namespace",
        "prefixed namespace",
        "comment in the data",
        "other tag",
        "unclosed",
        "other element first",
        "depth 255",
        "depth 256",
        "depth 257",
    ],
)
def test_parsed_extraction_gives_what_extract_records_gives(body: bytes) -> None:
    """Same records, same bytes, same refusals (and messages) as :func:`extract_records`
    for any list, laid out as package_records writes it or not; each tree, when there is
    one, is the record's bytes parsed safely."""
    for xml in (_HEAD + body + _TAIL, _HEAD.replace(b"\n", b"\r\n") + body + _TAIL):
        assert _extracted(extract_parsed_records, xml) == _extracted(extract_records, xml)
        try:
            parsed = extract_parsed_records(xml)
        except ContentError:
            continue
        assert all(_same_tree(record, tree) for record, tree in parsed)


def test_parsed_extraction_refuses_a_record_nested_256_deep_as_the_list_does() -> None:
    """libxml2 parses 256 levels without huge_tree: the record alone, not inside the list."""
    parse_record_xml_safely(_nested(256))
    with pytest.raises(ContentError, match="cú pháp"):
        extract_parsed_records(_HEAD + _R + b"\n" + _nested(256) + b"\n" + _TAIL)
    (_, tree), (_, deep) = extract_parsed_records(_HEAD + _R + b"\n" + _nested(255) + _TAIL)
    assert tree is not None and deep is not None  # read once, as written


def test_revocation_lists_round_trip() -> None:
    items = [
        RevocationItem(
            ma_tra_cuu_uuid=str(uuid.uuid4()),
            ho_va_ten="Lê Minh Anh",
            gioi_tinh="Nữ",
            ngay_sinh="2015-03-02",
            so_cccd="079215000123",
            ten_truong="Trường Tiểu học Kim Đồng",
            ma_truong="79000701",
            ten_nam_hoc="2024-2025",
            ly_do="Sai ngày sinh",
        )
    ]
    xml = build_revocation_xml(items)
    assert b'<DANH_SACH_HOC_BA id="dataDanhSach">' in xml
    assert parse_revocation_xml(xml) == items
    assert "079215000123" not in repr(items[0])
    with pytest.raises(ContentError, match="MA_TRA_CUU_UUID"):
        parse_revocation_xml(
            b"<DANH_SACH_HOC_BA><HOC_BA><HO_VA_TEN>A</HO_VA_TEN></HOC_BA></DANH_SACH_HOC_BA>"
        )
