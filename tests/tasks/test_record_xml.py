"""The record XML (HOCBA_SPEC §3) and its schema hoc_ba_v1.xsd."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

import pytest
from lxml import etree

from hocba.xml.record import (
    MON_HOC_FIELDS,
    THONG_TIN_CHUNG_FIELDS,
    TONG_KET_FIELDS,
    RecordDocument,
    RecordXmlError,
    build_record_xml,
    format_datetime,
    parse_record_xml_safely,
    read_record_document,
    read_record_tree,
    validate_record_xml,
)

MakeRecord = Callable[..., RecordDocument]


def _without_empty(values: dict) -> dict:
    return {k: v for k, v in values.items() if v not in (None, "")}


def _tree(data: bytes) -> etree._Element:
    return parse_record_xml_safely(data)


# ----------------------------------------------------------------------------- building
def test_round_trip_build_then_read(make_record: MakeRecord) -> None:
    doc = make_record()
    back = read_record_document(build_record_xml(doc))
    assert back.thong_tin_chung == _without_empty(doc.thong_tin_chung)
    assert back.tong_ket == _without_empty(doc.tong_ket)
    assert back.mon_hoc == [_without_empty(m) for m in doc.mon_hoc]
    assert back.qua_trinh_hoc_tap == [_without_empty(q) for q in doc.qua_trinh_hoc_tap]


def test_layout_matches_the_spec(make_record: MakeRecord) -> None:
    root = _tree(build_record_xml(make_record()))
    assert root.tag == "HOC_BA"
    assert [c.tag for c in root] == ["DU_LIEU_HOC_BA", "DANH_SACH_THONG_TIN_KY"]
    data = root[0]
    assert data.get("Id") == "data"
    assert [c.tag for c in data] == ["THONG_TIN_CHUNG", "QUA_TRINH_HOC_TAP", "TONG_KET"]
    assert [c.tag for c in root[1]] == ["GVCN", "CBQL", "KY_PHAT_HANH"]
    assert all(len(slot) == 0 for slot in root[1])
    assert [c.tag for c in data.find("QUA_TRINH_HOC_TAP")] == ["QUA_TRINH", "QUA_TRINH"]
    subjects = data.findall("TONG_KET/DANH_SACH_MON_HOC/MON_HOC")
    assert [s.findtext("MA_MON_HOC") for s in subjects][:2] == ["TV", "TOAN"]


def test_field_order_is_the_spec_order_whatever_the_dict_order(make_record: MakeRecord) -> None:
    doc = make_record()
    doc.thong_tin_chung = dict(reversed(list(doc.thong_tin_chung.items())))
    doc.tong_ket = dict(reversed(list(doc.tong_ket.items())))
    data = _tree(build_record_xml(doc))[0]
    spec_order = [name for name, _ in THONG_TIN_CHUNG_FIELDS]
    written = [c.tag for c in data.find("THONG_TIN_CHUNG")]
    assert written == [name for name in spec_order if name in written]
    tong_ket = [c.tag for c in data.find("TONG_KET")]
    expected = [name for name, _ in TONG_KET_FIELDS]
    expected.insert(expected.index("NANG_LUC_TU_CHU_TU_HOC"), "DANH_SACH_MON_HOC")
    assert tong_ket == [name for name in expected if name in tong_ket]
    subject = data.find("TONG_KET/DANH_SACH_MON_HOC/MON_HOC")
    assert [c.tag for c in subject] == [name for name, _ in MON_HOC_FIELDS]


def test_spec_spellings_are_kept_typos_included(make_record: MakeRecord) -> None:
    xml = build_record_xml(make_record())
    assert b"<THONG_SO_BUOI_NGHI_KHONG_PHEP>0</THONG_SO_BUOI_NGHI_KHONG_PHEP>" in xml
    assert b"<NANG_LUC_GIAO_TIEP_HOC_TAC>T</NANG_LUC_GIAO_TIEP_HOC_TAC>" in xml


def test_utf8_with_declaration_and_vietnamese_text(make_record: MakeRecord) -> None:
    xml = build_record_xml(make_record())
    assert xml.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<HOC_BA>')
    assert "<TEN_TRUONG>Trường Tiểu học Kim Đồng</TEN_TRUONG>".encode() in xml


@pytest.mark.parametrize("empty", [None, "", "   "])
def test_empty_value_omits_the_tag(make_record: MakeRecord, empty: str | None) -> None:
    doc = make_record()
    doc.thong_tin_chung["HO_VA_TEN_CHA"] = empty
    assert b"HO_VA_TEN_CHA" not in build_record_xml(doc)


def test_empty_containers_are_omitted(make_record: MakeRecord) -> None:
    doc = make_record()
    doc.qua_trinh_hoc_tap = []
    doc.mon_hoc = []
    doc.tong_ket = {}
    data = _tree(build_record_xml(doc))[0]
    assert [c.tag for c in data] == ["THONG_TIN_CHUNG"]


@pytest.mark.parametrize(
    ("field", "value", "written"),
    [
        ("CAN_NANG", 25.5, "25.5"),
        ("CAN_NANG", 25, "25"),
        ("CAN_NANG", 25.123456, "25.1235"),
        ("CAN_NANG", 30.00001, "30"),
        ("CHIEU_CAO", 131.25, "131.25"),
        ("CHIEU_CAO", 1e-5, "0"),
    ],
)
def test_numbers_have_at_most_four_decimals_with_a_dot(
    make_record: MakeRecord, field: str, value: float, written: str
) -> None:
    doc = make_record()
    doc.thong_tin_chung[field] = value
    assert _tree(build_record_xml(doc)).findtext(f"DU_LIEU_HOC_BA/THONG_TIN_CHUNG/{field}") == (
        written
    )


@pytest.mark.parametrize(("value", "written"), [(True, "1"), (False, "0")])
def test_booleans_are_written_1_or_0(make_record: MakeRecord, value: bool, written: str) -> None:
    doc = make_record()
    doc.tong_ket["DUOC_LEN_LOP"] = value
    xml = build_record_xml(doc)
    assert _tree(xml).findtext("DU_LIEU_HOC_BA/TONG_KET/DUOC_LEN_LOP") == written
    assert read_record_document(xml).tong_ket["DUOC_LEN_LOP"] is value


def test_text_is_normalised_to_nfc_and_stripped(make_record: MakeRecord) -> None:
    doc = make_record()
    decomposed = "Nguye\u0302\u0303n Thi\u0323 Hoa\u0300"  # "Nguyễn Thị Hoà" typed on macOS
    doc.thong_tin_chung["TEN_GIAO_VIEN_CHU_NHIEM"] = f"  {decomposed} "
    back = read_record_document(build_record_xml(doc))
    assert back.thong_tin_chung["TEN_GIAO_VIEN_CHU_NHIEM"] == "Nguyễn Thị Hoà"


@pytest.mark.parametrize(
    ("section", "key"),
    [("thong_tin_chung", "HO_TEN"), ("tong_ket", "MA_MON_HOC"), ("tong_ket", "XEP_LOAI")],
)
def test_unknown_keys_raise(make_record: MakeRecord, section: str, key: str) -> None:
    doc = make_record()
    getattr(doc, section)[key] = "x"
    with pytest.raises(RecordXmlError) as info:
        build_record_xml(doc)
    assert any(key in detail for detail in info.value.details)


def test_unknown_key_in_a_subject_raises(make_record: MakeRecord) -> None:
    doc = make_record()
    doc.mon_hoc[1]["DIEM_GIUA_KY"] = 8
    with pytest.raises(RecordXmlError) as info:
        build_record_xml(doc)
    assert info.value.details == ("TONG_KET/DANH_SACH_MON_HOC/MON_HOC[2]/DIEM_GIUA_KY",)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("thong_tin_chung", "MA_KHOI", "4"),
        ("thong_tin_chung", "MA_KHOI", True),
        ("thong_tin_chung", "HO_VA_TEN", 12),
        ("thong_tin_chung", "CAN_NANG", float("nan")),
        ("tong_ket", "DUOC_LEN_LOP", 1),
    ],
)
def test_values_of_the_wrong_type_raise(
    make_record: MakeRecord, section: str, key: str, value: object
) -> None:
    doc = make_record()
    getattr(doc, section)[key] = value
    with pytest.raises(RecordXmlError, match=key):
        build_record_xml(doc)


@pytest.mark.parametrize("char", ["\x00", "\x0b", "\x1f", "\ufffe", "\ud800"])
def test_characters_forbidden_in_xml_raise_naming_the_field(
    make_record: MakeRecord, char: str
) -> None:
    doc = make_record()
    doc.tong_ket["NHAN_XET_GVCN"] = f"Em chăm{char} ngoan"
    with pytest.raises(RecordXmlError, match="NHAN_XET_GVCN") as info:
        build_record_xml(doc)
    assert "không được phép" in info.value.message_vi


def test_other_schema_version_is_refused(make_record: MakeRecord) -> None:
    doc = make_record()
    doc.thong_tin_chung["PHIEN_BAN"] = "2.0"
    with pytest.raises(RecordXmlError, match="PHIEN_BAN"):
        build_record_xml(doc)


def test_schema_version_is_filled_in(make_record: MakeRecord) -> None:
    doc = make_record()
    del doc.thong_tin_chung["PHIEN_BAN"]
    assert read_record_document(build_record_xml(doc)).thong_tin_chung["PHIEN_BAN"] == "1.0"


def test_format_datetime_is_vietnam_time() -> None:
    instant = dt.datetime(2025, 5, 30, 1, 2, 3, 999, tzinfo=dt.UTC)
    assert format_datetime(instant) == "2025-05-30T08:02:03+07:00"
    with pytest.raises(RecordXmlError):
        format_datetime(dt.datetime(2025, 5, 30, 8, 0))


# ----------------------------------------------------------------------------- schema
def _expect_schema_error(doc: RecordDocument, needle: str) -> None:
    with pytest.raises(RecordXmlError) as info:
        build_record_xml(doc)
    assert info.value.message_vi == "Tệp XML học bạ không đúng lược đồ hoc_ba_v1.xsd"
    assert any(needle in d for d in info.value.details), info.value.details


def test_schema_rejects_score_11(make_record: MakeRecord) -> None:
    doc = make_record()
    doc.mon_hoc[0]["DIEM_KIEM_TRA_DINH_KY"] = 11
    _expect_schema_error(doc, "DIEM_KIEM_TRA_DINH_KY")


@pytest.mark.parametrize("score", [0, 10])
def test_schema_accepts_scores_0_and_10(make_record: MakeRecord, score: int) -> None:
    doc = make_record()
    doc.mon_hoc[0]["DIEM_KIEM_TRA_DINH_KY"] = score
    validate_record_xml(build_record_xml(doc, validate=False))


@pytest.mark.parametrize("cccd", ["07921500012", "0792150001234", "07921500012A"])
def test_schema_rejects_bad_cccd(make_record: MakeRecord, cccd: str) -> None:
    doc = make_record()
    doc.thong_tin_chung["SO_CCCD"] = cccd
    _expect_schema_error(doc, "SO_CCCD")


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("mon_hoc", "MUC_DAT_DUOC", "Đ"),  # subjects are T/H/C
        ("tong_ket", "PHAM_CHAT_YEU_NUOC", "H"),  # qualities are T/Đ/C
        ("tong_ket", "KET_QUA_XEP_LOAI", "GIOI"),
        ("thong_tin_chung", "MA_TRA_CUU_UUID", "6ba7b810-9dad-11d1-80b4-00c04fd430c8"),  # v1
        ("thong_tin_chung", "NGAY_SINH", "2015-02-30"),
        ("thong_tin_chung", "NGAY_SINH", "02/03/2015"),
        ("thong_tin_chung", "MA_KHOI", 6),
        ("thong_tin_chung", "THONG_TU", None),  # required
    ],
)
def test_schema_rejects_invalid_values(
    make_record: MakeRecord, section: str, key: str, value: object
) -> None:
    doc = make_record()
    if section == "mon_hoc":
        doc.mon_hoc[0][key] = value  # type: ignore[assignment]
    else:
        getattr(doc, section)[key] = value
    _expect_schema_error(doc, key)


def test_schema_accepts_quality_level_d_and_a_v4_lookup_code(make_record: MakeRecord) -> None:
    doc = make_record()
    doc.tong_ket["PHAM_CHAT_NHAN_AI"] = "Đ"
    doc.thong_tin_chung["MA_TRA_CUU_UUID"] = "0f8fad5b-d9cb-469f-a165-70867728950e"
    validate_record_xml(build_record_xml(doc))


def test_schema_rejects_a_subject_twice(make_record: MakeRecord) -> None:
    doc = make_record()
    doc.mon_hoc.append(dict(doc.mon_hoc[0]))
    _expect_schema_error(doc, "MonHocKhongTrungLap")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"<NAM_HOC>2024</NAM_HOC>", b"<NAM_HOC>2024</NAM_HOC><GHI_CHU>x</GHI_CHU>"),
        (b"<GVCN/>", b"<GVCN><GHI_CHU>x</GHI_CHU></GVCN>"),
        (b"<HOC_BA>", b'<HOC_BA Id="data">'),
    ],
)
def test_schema_rejects_unknown_tags(make_record: MakeRecord, old: bytes, new: bytes) -> None:
    xml = build_record_xml(make_record())
    assert old in xml
    with pytest.raises(RecordXmlError) as info:
        validate_record_xml(xml.replace(old, new, 1))
    assert info.value.details


# ----------------------------------------------------------------------------- hardened parser
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE HOC_BA [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<HOC_BA>&lol9;</HOC_BA>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE HOC_BA [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<HOC_BA>&xxe;</HOC_BA>"""


@pytest.mark.parametrize(
    "payload", [BILLION_LAUGHS, XXE, b'<!DOCTYPE HOC_BA SYSTEM "x.dtd"><HOC_BA/>']
)
def test_doctype_and_entities_are_refused(payload: bytes) -> None:
    with pytest.raises(RecordXmlError, match="DOCTYPE"):
        parse_record_xml_safely(payload)
    with pytest.raises(RecordXmlError):
        validate_record_xml(payload)


def test_doctype_hidden_by_utf16_is_still_refused() -> None:
    payload = XXE.replace(b'<?xml version="1.0"?>', b'<?xml version="1.0" encoding="UTF-16"?>')
    encoded = payload.decode().encode("utf-16")
    assert b"<!DOCTYPE" not in encoded  # the byte pre-check cannot see it...
    with pytest.raises(RecordXmlError):  # ...the parsed document check does
        parse_record_xml_safely(encoded)


def test_undeclared_entity_is_refused() -> None:
    with pytest.raises(RecordXmlError, match="cú pháp"):
        parse_record_xml_safely(b"<HOC_BA>&xxe;</HOC_BA>")


def test_oversized_input_is_refused(make_record: MakeRecord) -> None:
    xml = build_record_xml(make_record())
    parse_record_xml_safely(xml, max_bytes=len(xml))
    with pytest.raises(RecordXmlError, match="quá lớn"):
        parse_record_xml_safely(xml, max_bytes=len(xml) - 1)
    with pytest.raises(RecordXmlError, match="quá lớn"):
        parse_record_xml_safely(b"<HOC_BA>" + b" " * 5_000_000 + b"</HOC_BA>")


def test_read_record_tree_reads_the_same_and_leaves_the_tree(make_record: MakeRecord) -> None:
    xml = build_record_xml(make_record())
    root = _tree(xml)
    before = etree.tostring(root)
    assert read_record_tree(root) == read_record_document(xml)
    assert etree.tostring(root) == before  # the subjects' list is still in the tree
    assert root.find("DU_LIEU_HOC_BA/TONG_KET/DANH_SACH_MON_HOC/MON_HOC") is not None


def test_a_second_subject_list_is_refused(make_record: MakeRecord) -> None:
    xml = build_record_xml(make_record())
    root = _tree(xml)
    summary = root.find("DU_LIEU_HOC_BA/TONG_KET")
    assert summary is not None
    etree.SubElement(summary, "DANH_SACH_MON_HOC")
    with pytest.raises(RecordXmlError) as info:
        read_record_tree(root)
    assert info.value.details == ("TONG_KET/DANH_SACH_MON_HOC",)


def test_non_utf8_encoding_is_refused() -> None:
    payload = '<?xml version="1.0" encoding="ISO-8859-1"?><HOC_BA>é</HOC_BA>'.encode("latin-1")
    with pytest.raises(RecordXmlError, match="UTF-8"):
        parse_record_xml_safely(payload)


def test_read_refuses_unknown_tags(make_record: MakeRecord) -> None:
    xml = build_record_xml(make_record()).replace(
        b"<NAM_HOC>2024</NAM_HOC>", b"<NAM_HOC>2024</NAM_HOC><GHI_CHU>x</GHI_CHU>"
    )
    with pytest.raises(RecordXmlError) as info:
        read_record_document(xml)
    assert info.value.details == ("THONG_TIN_CHUNG/GHI_CHU",)


def test_record_document_is_a_plain_dataclass() -> None:
    names = [f.name for f in dataclasses.fields(RecordDocument)]
    assert names == ["thong_tin_chung", "qua_trinh_hoc_tap", "tong_ket", "mon_hoc"]
