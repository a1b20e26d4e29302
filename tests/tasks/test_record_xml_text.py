"""``build_record_xml`` writes the record as text and parses it once (issue 14, session 11).

The bytes must stay exactly those lxml wrote when the record was built element by element,
indented and serialised (the signed data must not move): ``_element_by_element`` below is
that builder, and every case compares the two byte for byte — values with the characters
libxml2 escapes (& < > and carriage return), with the ones it does not (quotes, tab,
newline, ``]]>``), outside the BMP, decomposed, padded, empty; items and containers left
empty. The lines remembered between records (per field, per list item) must not let a value
of another type through: ``True == 1 == 1.0`` but only an ``int`` is a test score.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from hocba.xml import record
from hocba.xml.record import (
    MON_HOC_FIELDS,
    QUA_TRINH_FIELDS,
    SIGNATURE_SLOTS,
    THONG_TIN_CHUNG_FIELDS,
    RecordDocument,
    RecordXmlError,
    build_record_xml,
    parse_record_xml_safely,
    take_parsed,
)

MakeRecord = Callable[..., RecordDocument]
_HEAD = record._TONG_KET_HEAD
_TAIL = record._TONG_KET_TAIL


def _fill(
    parent: etree._Element,
    path: str,
    values: Mapping[str, object],
    fields: Sequence[tuple[str, record.Kind]],
) -> None:
    for name, kind in fields:
        text = record._text_of(f"{path}/{name}", kind, values.get(name))
        if text:
            etree.SubElement(parent, name).text = text


def _fill_list(
    parent: etree._Element,
    list_tag: str,
    item_tag: str,
    items: Sequence[Mapping[str, object]],
    fields: Sequence[tuple[str, record.Kind]],
) -> None:
    container = etree.Element(list_tag)
    for item in items:
        element = etree.SubElement(container, item_tag)
        _fill(element, item_tag, item, fields)
        if len(element) == 0:
            container.remove(element)
    if len(container):
        parent.append(container)


def _element_by_element(doc: RecordDocument) -> bytes:
    """The record as build_record_xml wrote it until issue 14's session 11: an lxml tree
    built element by element, indented, serialised."""
    ttc = dict(doc.thong_tin_chung)
    if ttc.get("PHIEN_BAN") in (None, ""):
        ttc["PHIEN_BAN"] = "1.0"
    root = etree.Element("HOC_BA")
    data = etree.SubElement(root, "DU_LIEU_HOC_BA", Id="data")
    _fill(etree.SubElement(data, "THONG_TIN_CHUNG"), "", ttc, THONG_TIN_CHUNG_FIELDS)
    _fill_list(data, "QUA_TRINH_HOC_TAP", "QUA_TRINH", doc.qua_trinh_hoc_tap, QUA_TRINH_FIELDS)
    tong_ket = etree.SubElement(data, "TONG_KET")
    _fill(tong_ket, "", doc.tong_ket, _HEAD)
    _fill_list(tong_ket, "DANH_SACH_MON_HOC", "MON_HOC", doc.mon_hoc, MON_HOC_FIELDS)
    _fill(tong_ket, "", doc.tong_ket, _TAIL)
    if len(tong_ket) == 0:
        data.remove(tong_ket)
    zone = etree.SubElement(root, "DANH_SACH_THONG_TIN_KY")
    for slot in SIGNATURE_SLOTS:
        etree.SubElement(zone, slot)
    etree.indent(root, space="  ")
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(root, encoding="UTF-8") + b"\n"
    )


def _same_bytes_and_tree(doc: RecordDocument, *, validate: bool = True) -> bytes:
    data = build_record_xml(doc, validate=validate)
    assert data == _element_by_element(doc)
    kept = take_parsed(data)
    if validate:  # the tree kept for the first signature is the tree of these bytes
        assert kept is not None
        assert etree.tostring(kept[0]) == etree.tostring(parse_record_xml_safely(data))
    else:
        assert kept is None
    return data


TRICKY = [
    "Nguyễn & Con <Lớp 4A> > 3",
    "a]]>b",
    "dòng 1\r\ndòng 2\rdòng 3\ndòng\t4",
    "\"ngoặc kép\" 'đơn' &amp; &#13; &lt;",
    "Nguye\u0302\u0303n Thi\u0323 Hoa\u0300",  # decomposed (macOS): written NFC
    "  \t đệm hai đầu \r\n",
    "emoji 😀 𠀀 (ngoài BMP)",
    "\u00a0không ngắt\u00a0",
]


@pytest.mark.parametrize("value", TRICKY)
def test_escaped_and_plain_characters_give_the_element_by_element_bytes(
    make_record: MakeRecord, value: str
) -> None:
    doc = make_record()
    doc.tong_ket["NHAN_XET_GVCN"] = value
    doc.thong_tin_chung["NOI_SINH"] = value
    doc.qua_trinh_hoc_tap[0]["TEN_TRUONG"] = value
    doc.mon_hoc[0]["TEN_MON_HOC"] = value
    for _ in range(2):  # the second time from the remembered lines
        data = _same_bytes_and_tree(doc)
    back = record.read_record_document(data)
    assert back.tong_ket["NHAN_XET_GVCN"] == record._text_of("x", "text", value)


def test_records_of_the_shapes_the_builder_omits(make_record: MakeRecord) -> None:
    full = make_record()
    _same_bytes_and_tree(full)
    no_lists = make_record()
    no_lists.qua_trinh_hoc_tap, no_lists.mon_hoc = [], []
    _same_bytes_and_tree(no_lists)
    empty_items = make_record()
    empty_items.qua_trinh_hoc_tap.insert(0, {"TEN_LOP": " ", "TEN_TRUONG": None})
    empty_items.mon_hoc.insert(3, {"MA_MON_HOC": "", "DIEM_KIEM_TRA_DINH_KY": None})
    _same_bytes_and_tree(empty_items)
    only_empty_items = make_record()
    only_empty_items.qua_trinh_hoc_tap = [{"TEN_LOP": ""}, {}]
    only_empty_items.mon_hoc = [{}]
    only_empty_items.tong_ket = {}
    data = _same_bytes_and_tree(only_empty_items, validate=False)
    assert [c.tag for c in parse_record_xml_safely(data)[0]] == ["THONG_TIN_CHUNG"]
    no_version = make_record()
    del no_version.thong_tin_chung["PHIEN_BAN"]
    _same_bytes_and_tree(no_version)


_free_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufffe\uffff"),
    max_size=40,
).filter(lambda s: not record._FORBIDDEN_XML_CHARS.search(s))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=st.lists(_free_text, min_size=4, max_size=4))
def test_any_text_gives_the_element_by_element_bytes(
    make_record: MakeRecord, values: list[str]
) -> None:
    doc = make_record()
    doc.thong_tin_chung["HO_VA_TEN_CHA"] = values[0]
    doc.tong_ket["NHAN_XET_PHAM_CHAT"] = values[1]
    doc.qua_trinh_hoc_tap[1]["TEN_TRUONG"] = values[2]
    doc.mon_hoc[2]["TEN_MON_HOC"] = values[3]
    _same_bytes_and_tree(doc, validate=False)


class _Text(str):
    pass


def test_a_str_subclass_is_written_as_its_text(make_record: MakeRecord) -> None:
    doc = make_record()
    doc.tong_ket["NHAN_XET_GVCN"] = _Text(" Em <ngoan> & chăm ")
    doc.mon_hoc[0]["TEN_MON_HOC"] = _Text("Tiếng Việt")
    _same_bytes_and_tree(doc)


@pytest.mark.parametrize("score", [9.0, True, "9"])
def test_a_remembered_subject_does_not_let_a_score_of_another_type_through(
    make_record: MakeRecord, score: object
) -> None:
    doc = make_record()
    assert doc.mon_hoc[0]["DIEM_KIEM_TRA_DINH_KY"] == 9
    build_record_xml(doc)  # this subject's lines are remembered now
    other = copy.deepcopy(doc)
    other.mon_hoc[0]["DIEM_KIEM_TRA_DINH_KY"] = score  # type: ignore[assignment]
    with pytest.raises(RecordXmlError, match="DIEM_KIEM_TRA_DINH_KY") as info:
        build_record_xml(other)
    assert "MON_HOC[1]" in str(info.value)


@pytest.mark.parametrize(
    ("field", "value"), [("DUOC_LEN_LOP", 1), ("NHAN_XET_GVCN", 12), ("KET_QUA_XEP_LOAI", b"HTT")]
)
def test_a_remembered_line_does_not_let_a_value_of_another_type_through(
    make_record: MakeRecord, field: str, value: object
) -> None:
    doc = make_record()
    build_record_xml(doc)
    doc.tong_ket[field] = value  # type: ignore[assignment]
    with pytest.raises(RecordXmlError, match=field):
        build_record_xml(doc)


def test_a_remembered_item_with_an_unknown_key_is_refused(make_record: MakeRecord) -> None:
    doc = make_record()
    build_record_xml(doc)
    doc.mon_hoc[1]["DIEM_GIUA_KY"] = None
    with pytest.raises(RecordXmlError) as info:
        build_record_xml(doc)
    assert info.value.details == ("TONG_KET/DANH_SACH_MON_HOC/MON_HOC[2]/DIEM_GIUA_KY",)


def test_an_unhashable_value_is_refused_as_before(make_record: MakeRecord) -> None:
    doc = make_record()
    doc.mon_hoc[0]["TEN_MON_HOC"] = ["Tiếng Việt"]  # type: ignore[assignment]
    with pytest.raises(RecordXmlError, match="TEN_MON_HOC phải là chuỗi"):
        build_record_xml(doc)


def test_a_forbidden_character_is_refused_after_the_same_value_was_written(
    make_record: MakeRecord,
) -> None:
    doc = make_record()
    build_record_xml(doc)
    value = doc.tong_ket["NHAN_XET_GVCN"]
    assert isinstance(value, str)
    doc.tong_ket["NHAN_XET_GVCN"] = f"{value[:5]}\x0b{value[5:]}"  # at an end it is stripped
    with pytest.raises(RecordXmlError, match="NHAN_XET_GVCN"):
        build_record_xml(doc)


def test_a_record_the_schema_refuses_is_refused_at_build_with_its_line(
    make_record: MakeRecord,
) -> None:
    doc = make_record()
    build_record_xml(doc)
    doc.mon_hoc[0]["DIEM_KIEM_TRA_DINH_KY"] = 11
    with pytest.raises(RecordXmlError) as info:
        build_record_xml(doc)
    assert info.value.message_vi == "Tệp XML học bạ không đúng lược đồ hoc_ba_v1.xsd"
    lines = build_record_xml(doc, validate=False).decode().splitlines()
    number = lines.index("          <DIEM_KIEM_TRA_DINH_KY>11</DIEM_KIEM_TRA_DINH_KY>") + 1
    assert info.value.details[0].startswith(f"dòng {number}: Element 'DIEM_KIEM_TRA_DINH_KY'")


def test_the_remembered_lines_stay_bounded(make_record: MakeRecord) -> None:
    doc = make_record()
    for i in range(record._LINES_KEPT * 2 + 5):
        doc.thong_tin_chung["HO_VA_TEN"] = f"Học Sinh {i}"
        doc.mon_hoc[0]["TEN_MON_HOC"] = f"Môn {i}"
        build_record_xml(doc, validate=False)
    doc.tong_ket["NHAN_XET_GVCN"] = "x" * (record._LINE_VALUE_MAX + 1)
    build_record_xml(doc, validate=False)
    for fields, depth in (
        (THONG_TIN_CHUNG_FIELDS, 3),
        (_HEAD, 3),
        (MON_HOC_FIELDS, 5),
    ):
        for line in record._field_lines(fields, depth):
            assert len(line[4]) <= record._LINES_KEPT
            assert all(len(value) <= record._LINE_VALUE_MAX for value in line[4])
    assert len(record._item_memo(MON_HOC_FIELDS, "MON_HOC", 3)[2]) <= record._LINES_KEPT
