"""The record document: one pupil, one school year, as the XML of HOCBA_SPEC §3.

Layout (element names and their spellings — typos included, e.g.
``THONG_SO_BUOI_NGHI_KHONG_PHEP``, ``NANG_LUC_GIAO_TIEP_HOC_TAC`` — come from the pilot
specification, Phụ lục 1 of Công văn 2088/BGDĐT-GDTH; no namespace is used)::

    <?xml version="1.0" encoding="UTF-8"?>
    <HOC_BA>
      <DU_LIEU_HOC_BA Id="data">            the signed data (ds:Reference URI="#data")
        <THONG_TIN_CHUNG>...</THONG_TIN_CHUNG>       fields in the spec's order
        <QUA_TRINH_HOC_TAP>                          one QUA_TRINH per entry
          <QUA_TRINH><TEN_LOP/><TEN_TRUONG/><NGAY_TRANG_THAI_CHUYEN_DEN/></QUA_TRINH>
        </QUA_TRINH_HOC_TAP>
        <TONG_KET>
          KET_QUA_XEP_LOAI ... NHAN_XET_GVCN
          <DANH_SACH_MON_HOC>                        one MON_HOC per subject/activity
            <MON_HOC><MA_MON_HOC/><TEN_MON_HOC/><MUC_DAT_DUOC/><DIEM_KIEM_TRA_DINH_KY/></MON_HOC>
          </DANH_SACH_MON_HOC>
          NANG_LUC_* (10) PHAM_CHAT_* (5) NHAN_XET_PHAM_CHAT ... NHAN_XET_NANG_LUC_DAC_THU
        </TONG_KET>
      </DU_LIEU_HOC_BA>
      <DANH_SACH_THONG_TIN_KY>              signature zone, outside the signed data
        <GVCN/> <CBQL/> <KY_PHAT_HANH/>     empty slots, filled by hocba.xml.dsig
      </DANH_SACH_THONG_TIN_KY>
    </HOC_BA>

Choices where the spec is silent (also enforced by ``hocba/data/hoc_ba_v1.xsd``):

* Repeated structures get a list element and an item element:
  ``QUA_TRINH_HOC_TAP/QUA_TRINH`` and ``TONG_KET/DANH_SACH_MON_HOC/MON_HOC``. The subject
  list sits where the spec lists the per-subject fields: after ``NHAN_XET_GVCN`` and
  before ``NANG_LUC_TU_CHU_TU_HOC``.
* Empty values (``None``, ``""`` or only whitespace) omit the tag; a container left with
  no child is omitted too (``QUA_TRINH_HOC_TAP``, ``DANH_SACH_MON_HOC``, ``TONG_KET``, an
  all-empty ``QUA_TRINH``). ``THONG_TIN_CHUNG`` always exists (it holds ``PHIEN_BAN``).
* Text is stripped at both ends and normalised to Unicode NFC, so that the same name typed
  on Windows (NFC) or macOS (NFD) gives the same signed bytes. Characters that XML 1.0
  forbids (control characters other than tab/newline/carriage return, lone surrogates,
  U+FFFE/U+FFFF) raise :class:`RecordXmlError` naming the field.
* Numbers: integers as written; decimals (``CAN_NANG`` in kg, ``CHIEU_CAO`` in cm) rounded
  to at most 4 decimals, ``.`` separator, no exponent, trailing zeros dropped.
* Booleans (``DUOC_LEN_LOP``, ``DA_HOAN_THANH_CHUONG_TRINH_LOP_HOC``,
  ``DA_HOAN_THANH_CHUONG_TRINH_TIEU_HOC``) are written ``1`` (true) / ``0`` (false).
* Dates are ``YYYY-MM-DD`` strings and datetimes ``YYYY-MM-DDThh:mm:ss+07:00``; use
  :func:`format_date` / :func:`format_datetime` to produce them from Python objects.
* ``NAM_HOC`` is the starting calendar year (2024 for "2024-2025", held in
  ``TEN_NAM_HOC``); ``MA_KHOI`` is the grade, 1..5.
* ``PHIEN_BAN`` (schema version) is filled in as ``"1.0"`` when absent; ``MA_TRA_CUU_UUID``
  (lookup code, a lowercase UUID v4) is optional because it is assigned at issuance.
* Values must have the Python type of their field: text fields take ``str``; integer
  fields ``int``; decimal fields ``int`` or ``float``; boolean fields ``bool``. Unknown
  keys raise :class:`RecordXmlError` — nothing is dropped silently.

Parsing untrusted XML goes through :func:`parse_record_xml_safely`, which refuses any
DOCTYPE (and so DTD-based entity expansion, "billion laughs", XXE) and oversized input.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import math
import re
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from lxml import etree

from hocba.errors import HocbaError

__all__ = [
    "DATA_ID",
    "MON_HOC_FIELDS",
    "PHIEN_BAN",
    "QUA_TRINH_FIELDS",
    "SIGNATURE_SLOTS",
    "THONG_TIN_CHUNG_FIELDS",
    "TONG_KET_FIELDS",
    "VN_TZ",
    "RecordDocument",
    "RecordXmlError",
    "build_record_xml",
    "format_date",
    "format_datetime",
    "keep_parsed",
    "parse_record_xml_safely",
    "read_record_document",
    "read_record_tree",
    "take_parsed",
    "validate_record_tree",
    "validate_record_xml",
]

PHIEN_BAN = "1.0"
"""Version of this document format and of ``hoc_ba_v1.xsd``."""

DATA_ID = "data"
"""Value of the ``Id`` attribute of ``DU_LIEU_HOC_BA``, referenced by every signature."""

SIGNATURE_SLOTS = ("GVCN", "CBQL", "KY_PHAT_HANH")
"""Signature slots in ``DANH_SACH_THONG_TIN_KY``, in signing order (HOCBA_SPEC §4)."""

VN_TZ = dt.timezone(dt.timedelta(hours=7), "ICT")
"""Vietnam time (UTC+07:00, no daylight saving)."""

DEFAULT_MAX_BYTES = 5_000_000

Kind = Literal["text", "int", "decimal", "bool"]

THONG_TIN_CHUNG_FIELDS: tuple[tuple[str, Kind], ...] = (
    ("PHIEN_BAN", "text"),
    ("THONG_TU", "text"),
    ("MA_TRA_CUU_UUID", "text"),
    ("TEN_NAM_HOC", "text"),
    ("MA_SO_GIAO_DUC", "text"),
    ("TEN_SO_GD", "text"),
    ("MA_TRUONG", "text"),
    ("TEN_TRUONG", "text"),
    ("TEN_QUAN_HUYEN", "text"),
    ("TEN_XA_PHUONG", "text"),
    ("TEN_TINH_THANH_PHO", "text"),
    ("MA_CAP_HOC", "text"),
    ("SO_SO_DANG_BO", "text"),
    ("HO_VA_TEN", "text"),
    ("SO_CCCD", "text"),
    ("MA_HOC_SINH", "text"),
    ("GIOI_TINH", "text"),
    ("NGAY_SINH", "text"),
    ("CAN_NANG", "decimal"),
    ("CHIEU_CAO", "decimal"),
    ("TONG_SO_BUOI_NGHI_CO_PHEP", "int"),
    ("THONG_SO_BUOI_NGHI_KHONG_PHEP", "int"),
    ("NOI_SINH", "text"),
    ("QUE_QUAN", "text"),
    ("CHO_O_HIEN_NAY", "text"),
    ("DAN_TOC", "text"),
    ("QUOC_TICH", "text"),
    ("HO_VA_TEN_CHA", "text"),
    ("HO_VA_TEN_ME", "text"),
    ("HO_VA_TEN_NGUOI_GIAM_HO", "text"),
    ("TEN_GIAM_HIEU_KY_HOC_BA", "text"),
    ("SO_CCCD_GIAM_HIEU_KY_HOC_BA", "text"),
    ("CHUC_VU_GIAM_HIEU_KY_HOC_BA", "text"),
    ("DIA_DANH_PHAT_HANH_HOC_BA", "text"),
    ("NGAY_TAO_HOC_BA", "text"),
    ("NGAY_KY_PHAT_HANH_HOC_BA", "text"),
    ("TEN_GIAO_VIEN_CHU_NHIEM", "text"),
    ("SO_CCCD_GIAO_VIEN_CHU_NHIEM", "text"),
    ("MA_KHOI", "int"),
    ("TEN_LOP", "text"),
    ("NAM_HOC", "int"),
)
"""``THONG_TIN_CHUNG`` children in document order, with their value kind."""

QUA_TRINH_FIELDS: tuple[tuple[str, Kind], ...] = (
    ("TEN_LOP", "text"),
    ("TEN_TRUONG", "text"),
    ("NGAY_TRANG_THAI_CHUYEN_DEN", "text"),
)
"""Children of each ``QUA_TRINH_HOC_TAP/QUA_TRINH``."""

MON_HOC_FIELDS: tuple[tuple[str, Kind], ...] = (
    ("MA_MON_HOC", "text"),
    ("TEN_MON_HOC", "text"),
    ("MUC_DAT_DUOC", "text"),
    ("DIEM_KIEM_TRA_DINH_KY", "int"),
)
"""Children of each ``TONG_KET/DANH_SACH_MON_HOC/MON_HOC``."""

_TONG_KET_HEAD: tuple[tuple[str, Kind], ...] = (
    ("KET_QUA_XEP_LOAI", "text"),
    ("DUOC_LEN_LOP", "bool"),
    ("NOI_DUNG_HOAN_THANH_CHUONG_TRINH", "text"),
    ("DA_HOAN_THANH_CHUONG_TRINH_LOP_HOC", "bool"),
    ("DA_HOAN_THANH_CHUONG_TRINH_TIEU_HOC", "bool"),
    ("NOI_DUNG_KHEN_THUONG", "text"),
    ("NOI_DUNG_KHEN_THUONG_DOT_XUAT", "text"),
    ("NHAN_XET_GVCN", "text"),
)
_TONG_KET_TAIL: tuple[tuple[str, Kind], ...] = (
    ("NANG_LUC_TU_CHU_TU_HOC", "text"),
    ("NANG_LUC_GIAO_TIEP_HOC_TAC", "text"),
    ("NANG_LUC_GIAI_QUYET_VAN_DE_SANG_TAO", "text"),
    ("NANG_LUC_NGON_NGU", "text"),
    ("NANG_LUC_TINH_TOAN", "text"),
    ("NANG_LUC_KHOA_HOC", "text"),
    ("NANG_LUC_CONG_NGHE", "text"),
    ("NANG_LUC_TIN_HOC", "text"),
    ("NANG_LUC_THAM_MI", "text"),
    ("NANG_LUC_THE_CHAT", "text"),
    ("PHAM_CHAT_YEU_NUOC", "text"),
    ("PHAM_CHAT_NHAN_AI", "text"),
    ("PHAM_CHAT_CHAM_CHI", "text"),
    ("PHAM_CHAT_TRUNG_THUC", "text"),
    ("PHAM_CHAT_TRACH_NHIEM", "text"),
    ("NHAN_XET_PHAM_CHAT", "text"),
    ("NHAN_XET_NANG_LUC_CHUNG", "text"),
    ("NHAN_XET_NANG_LUC_DAC_THU", "text"),
)
TONG_KET_FIELDS: tuple[tuple[str, Kind], ...] = _TONG_KET_HEAD + _TONG_KET_TAIL
"""Non-subject ``TONG_KET`` fields; ``DANH_SACH_MON_HOC`` goes between head and tail."""

_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
# XML 1.0 §2.2 Char production, negated.
_FORBIDDEN_XML_CHARS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_normalize = unicodedata.normalize
_SCHEMA_RESOURCE = ("hocba", "data/hoc_ba_v1.xsd")


class RecordXmlError(HocbaError, ValueError):
    """A record document could not be built, parsed or validated.

    ``message_vi`` is a Vietnamese sentence for people; ``details`` lists the precise
    problems (schema errors with line numbers, offending field names...).
    """

    def __init__(self, message_vi: str, details: Sequence[str] = ()) -> None:
        self.message_vi = message_vi
        self.details: tuple[str, ...] = tuple(details)
        text = message_vi if not self.details else f"{message_vi}: " + "; ".join(self.details)
        super().__init__(text)


@dataclass
class RecordDocument:
    """The content of one record, keyed by the spec's element names (HOCBA_SPEC §3)."""

    thong_tin_chung: dict[str, str | int | float | None]
    qua_trinh_hoc_tap: list[dict[str, str | None]] = field(default_factory=list)
    tong_ket: dict[str, str | int | bool | None] = field(default_factory=dict)
    mon_hoc: list[dict[str, str | int | None]] = field(default_factory=list)


# --------------------------------------------------------------------------- formatting
def format_date(value: dt.date) -> str:
    """``YYYY-MM-DD`` (ISO 8601 calendar date, XML Schema ``xs:date`` without timezone)."""
    if isinstance(value, dt.datetime):
        value = value.date()
    return value.isoformat()


def format_datetime(value: dt.datetime) -> str:
    """``YYYY-MM-DDThh:mm:ss+07:00``: the instant in Vietnam time, whole seconds.

    A naive datetime is refused — its instant is ambiguous.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise RecordXmlError("Thời điểm phải có múi giờ (ví dụ +07:00).", [repr(value)])
    return value.astimezone(VN_TZ).replace(microsecond=0).isoformat()


def _format_decimal(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _text_of(path: str, kind: Kind, value: object) -> str | None:
    """Render one value for element ``path``; ``None`` means "omit the tag"."""
    if value is None:
        return None
    if kind == "text":
        if not isinstance(value, str):
            raise RecordXmlError(
                f"Trường {path} phải là chuỗi ký tự", [f"{path}: {type(value).__name__}"]
            )
        text = unicodedata.normalize("NFC", value.strip())
        bad = _FORBIDDEN_XML_CHARS.search(text)
        if bad:
            raise RecordXmlError(
                f"Trường {path} chứa ký tự không được phép trong XML",
                [f"{path}: U+{ord(bad.group()):04X} tại vị trí {bad.start()}"],
            )
        return text or None
    if kind == "bool":
        if not isinstance(value, bool):
            raise RecordXmlError(
                f"Trường {path} phải là giá trị đúng/sai (bool)",
                [f"{path}: {type(value).__name__}"],
            )
        return "1" if value else "0"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordXmlError(f"Trường {path} phải là số", [f"{path}: {type(value).__name__}"])
    if kind == "int":
        if not isinstance(value, int):
            raise RecordXmlError(f"Trường {path} phải là số nguyên", [f"{path}: {value!r}"])
        return str(value)
    try:
        return _format_decimal(float(value))
    except ValueError:
        raise RecordXmlError(
            f"Trường {path} không phải số hữu hạn", [f"{path}: {value!r}"]
        ) from None


@cache
def _field_names(fields: tuple[tuple[str, Kind], ...]) -> frozenset[str]:
    return frozenset(name for name, _ in fields)


def _check_keys(
    path: str, values: Mapping[str, object], fields: Sequence[tuple[str, Kind]]
) -> None:
    names = _field_names(fields) if isinstance(fields, tuple) else {n for n, _ in fields}
    if values.keys() <= names:
        return
    unknown = sorted(set(values) - names)
    if unknown:
        raise RecordXmlError(
            f"Có trường không thuộc {path} theo đặc tả học bạ số",
            [f"{path}/{name}" for name in unknown],
        )


# The document is written as text, then parsed once: the parsed tree is the one the schema
# checks and the one kept for the first signature (issue 14, session 11). Writing the lines
# in Python and letting libxml2 parse them costs less than building the same tree element by
# element with lxml, indenting and serialising it (bench/issuance.py, docs/PERFORMANCE.md).
# The text is byte for byte what lxml's serialiser wrote for that tree before
# (tests/tasks/test_record_xml_text.py compares the two): two spaces of indentation per
# level, empty elements as <X/>, and in text the characters libxml2 escapes escaped the same
# way: & < > and carriage return (&#13;, which parsing gives back as the carriage return).
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
# In a value: a character to escape, or one XML 1.0 forbids (then _text_of raises).
_SPECIAL_CHARS = re.compile("[&<>\r]|[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Text values seen before, per field, with their line (and list items with theirs): most
# values are the same for every record of a school, class or grade (names of the school,
# district and teacher, levels, subjects). At most _LINES_KEPT values (items) of at most
# _LINE_VALUE_MAX characters each per field (list); a full memo is emptied. The memos are
# shared by the threads of a process: a dict's get, set and clear are each atomic, and what
# they hold never changes.
_LINES_KEPT = 256
_LINE_VALUE_MAX = 200
_SIGNATURE_ZONE = "".join(
    ["  </DU_LIEU_HOC_BA>\n  <DANH_SACH_THONG_TIN_KY>\n"]
    + [f"    <{slot}/>\n" for slot in SIGNATURE_SLOTS]
    + ["  </DANH_SACH_THONG_TIN_KY>\n</HOC_BA>\n"]
)

_FieldLine = tuple[str, Kind, str, str, dict[str, str]]


@cache
def _field_lines(fields: tuple[tuple[str, Kind], ...], depth: int) -> tuple[_FieldLine, ...]:
    """Per field of ``fields`` at ``depth`` levels: name, kind, opening (indented) and
    closing tag, and the memo of its text values' lines."""
    indent = "  " * depth
    return tuple((name, kind, f"{indent}<{name}>", f"</{name}>", {}) for name, kind in fields)


def _line(path: str, name: str, kind: Kind, value: object, open_tag: str, close_tag: str) -> str:
    """The line of one value ("" to omit the tag): ``_text_of`` rendered and escaped."""
    text = _text_of(f"{path}/{name}", kind, value)
    if not text:
        return ""
    if _SPECIAL_CHARS.search(text) is not None:
        text = text.translate(_ESCAPES)
    return f"{open_tag}{text}{close_tag}"


def _fill(
    out: list[str],
    path: str,
    values: Mapping[str, object],
    fields: tuple[tuple[str, Kind], ...],
    depth: int,
) -> None:
    """Append the lines of ``fields`` (in order, empty values omitted) to ``out``."""
    get = values.get
    for name, kind, open_tag, close_tag, memo in _field_lines(fields, depth):
        value = get(name)
        if value is None:
            continue
        if kind == "text" and type(value) is str:  # the common case of _text_of, inlined
            line = memo.get(value)
            if line is None:
                text = _normalize("NFC", value.strip())
                if _SPECIAL_CHARS.search(text) is not None:
                    if _FORBIDDEN_XML_CHARS.search(text) is not None:
                        _text_of(f"{path}/{name}", kind, value)  # raises with the details
                    text = text.translate(_ESCAPES)
                line = f"{open_tag}{text}{close_tag}" if text else ""
                if len(value) <= _LINE_VALUE_MAX:
                    if len(memo) >= _LINES_KEPT:
                        memo.clear()
                    memo[value] = line
        elif kind == "int" and type(value) is int:
            line = f"{open_tag}{value}{close_tag}"
        elif kind == "bool" and type(value) is bool:
            line = f"{open_tag}1{close_tag}" if value else f"{open_tag}0{close_tag}"
        else:
            line = _line(path, name, kind, value, open_tag, close_tag)
        if line:
            out.append(line)


@cache
def _item_memo(
    fields: tuple[tuple[str, Kind], ...], item_tag: str, depth: int
) -> tuple[tuple[str, ...], frozenset[str], dict[object, tuple[str, ...]]]:
    """For the items of a list: their field names, as a tuple and a set, and the memo of
    the lines of the items seen before."""
    names = tuple(name for name, _ in fields)
    return names, frozenset(names), {}


def _fill_list(
    out: list[str],
    list_tag: str,
    item_tag: str,
    items: Sequence[Mapping[str, object]],
    fields: tuple[tuple[str, Kind], ...],
    path: str,
    depth: int,
) -> None:
    """Append the list element of ``items`` at ``depth`` (omitted when no item has a value;
    an item without value is omitted).

    An item's lines are remembered by its values *and their types* (``True == 1 == 1.0``,
    but only an ``int`` is a test score): the same subject with the same level and score,
    or the same class of the same school, comes back for many pupils.
    """
    names, known, memo = _item_memo(fields, item_tag, depth)
    first = len(out)
    out.append(f"{'  ' * depth}<{list_tag}>")
    for index, item in enumerate(items, start=1):
        values = tuple(map(item.get, names))
        key = (values, tuple(map(type, values)))
        try:
            lines = memo.get(key) if item.keys() <= known else None
        except TypeError:  # an unhashable value: _fill refuses its type
            key, lines = None, None
        if lines is None:
            item_path = f"{path}/{list_tag}/{item_tag}[{index}]".lstrip("/")
            _check_keys(item_path, item, fields)
            item_lines = [f"{'  ' * (depth + 1)}<{item_tag}>"]
            _fill(item_lines, item_path, item, fields, depth + 2)
            item_lines.append(f"{'  ' * (depth + 1)}</{item_tag}>")
            lines = tuple(item_lines) if len(item_lines) > 2 else ()
            if key is not None and all(
                len(v) <= _LINE_VALUE_MAX for v in values if isinstance(v, str)
            ):
                if len(memo) >= _LINES_KEPT:
                    memo.clear()
                memo[key] = lines
        out.extend(lines)
    if len(out) == first + 1:
        out.pop()
    else:
        out.append(f"{'  ' * depth}</{list_tag}>")


# --------------------------------------------------------------------------- build
def build_record_xml(doc: RecordDocument, *, validate: bool = True) -> bytes:
    """Serialise ``doc`` as the record XML of HOCBA_SPEC §3 (UTF-8, with declaration).

    With ``validate`` (the default) the result is checked against ``hoc_ba_v1.xsd`` and
    :class:`RecordXmlError` is raised instead of returning an invalid document; the tree
    the check parsed is kept for the first signature (:func:`keep_parsed`). Without
    ``validate`` the bytes are the same, no tree is kept (nothing has parsed them).
    """
    ttc = dict(doc.thong_tin_chung)
    _check_keys("THONG_TIN_CHUNG", ttc, THONG_TIN_CHUNG_FIELDS)
    if ttc.get("PHIEN_BAN") in (None, ""):
        ttc["PHIEN_BAN"] = PHIEN_BAN
    elif ttc["PHIEN_BAN"] != PHIEN_BAN:
        raise RecordXmlError(
            f"Phiên bản định dạng học bạ không được hỗ trợ (chỉ {PHIEN_BAN})",
            [f"PHIEN_BAN: {ttc['PHIEN_BAN']!r}"],
        )
    _check_keys("TONG_KET", doc.tong_ket, TONG_KET_FIELDS)

    out = ["<HOC_BA>", f'  <DU_LIEU_HOC_BA Id="{DATA_ID}">', "    <THONG_TIN_CHUNG>"]
    _fill(out, "THONG_TIN_CHUNG", ttc, THONG_TIN_CHUNG_FIELDS, 3)  # PHIEN_BAN at least
    out.append("    </THONG_TIN_CHUNG>")
    _fill_list(
        out, "QUA_TRINH_HOC_TAP", "QUA_TRINH", doc.qua_trinh_hoc_tap, QUA_TRINH_FIELDS, "", 2
    )
    tong_ket = len(out)
    out.append("    <TONG_KET>")
    _fill(out, "TONG_KET", doc.tong_ket, _TONG_KET_HEAD, 3)
    _fill_list(out, "DANH_SACH_MON_HOC", "MON_HOC", doc.mon_hoc, MON_HOC_FIELDS, "TONG_KET", 3)
    _fill(out, "TONG_KET", doc.tong_ket, _TONG_KET_TAIL, 3)
    if len(out) == tong_ket + 1:
        out.pop()
    else:
        out.append("    </TONG_KET>")
    out.append(_SIGNATURE_ZONE)
    data = _XML_DECLARATION + "\n".join(out).encode()
    if validate:
        # The tree parsed from the bytes is what the first signature takes (keep_parsed);
        # without validation nothing is kept and the signature parses the bytes itself.
        root = etree.fromstring(data, parser=hardened_parser())
        _assert_valid(root)
        keep_parsed(data, root)
    return data


# --------------------------------------------------------------------------- parse
_PARSER_LOCAL = threading.local()


def hardened_parser() -> etree.XMLParser:
    """A hardened parser per thread (lxml parsers must not be shared between threads): no
    entities, DTDs, network or huge trees; whitespace kept, since it is signed data."""
    parser: etree.XMLParser | None = getattr(_PARSER_LOCAL, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_blank_text=False,  # whitespace is signed data
            collect_ids=False,
        )
        _PARSER_LOCAL.parser = parser
    return parser


def parse_record_xml_safely(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """Parse untrusted record XML and return its root element.

    Refuses (with :class:`RecordXmlError`): input larger than ``max_bytes``; any DOCTYPE
    declaration, internal or external (the document type is the XSD, never a DTD, so
    entity-expansion and XXE attacks are excluded up front); encodings other than UTF-8
    (HOCBA_SPEC §3); malformed XML. The parser itself never resolves entities, never loads
    a DTD, never touches the network and keeps libxml2's size limits (``huge_tree=False``).
    """
    if not isinstance(data, bytes | bytearray):
        raise TypeError("parse_record_xml_safely expects bytes")
    if len(data) > max_bytes:
        raise RecordXmlError(
            "Tệp XML học bạ quá lớn", [f"{len(data)} byte > giới hạn {max_bytes} byte"]
        )
    # b"!" first: one byte is found at memchr speed, and a record rarely holds any "!"
    if b"!" in data and (b"<!DOCTYPE" in data or b"<!ENTITY" in data):
        raise RecordXmlError("Tệp XML học bạ không được chứa khai báo DOCTYPE/ENTITY")
    try:
        root = etree.fromstring(bytes(data), parser=hardened_parser())
    except etree.XMLSyntaxError as exc:
        raise RecordXmlError("Tệp XML học bạ sai cú pháp", [str(exc)]) from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise RecordXmlError("Tệp XML học bạ không được chứa khai báo DOCTYPE/ENTITY")
    if (docinfo.encoding or "UTF-8").upper() not in ("UTF-8", "UTF8"):
        raise RecordXmlError("Tệp XML học bạ phải mã hoá UTF-8", [str(docinfo.encoding)])
    # Canonicalisation drops comments and processing instructions, so one inside a signed
    # value (<HO_VA_TEN>Lê M<!---->inh Anh</HO_VA_TEN>) would leave the signature valid while
    # the value read back is cut short. The builder never writes either: refuse them.
    data_element = next(root.iterchildren("DU_LIEU_HOC_BA"), None)  # = find(), without ElementPath
    if (
        data_element is not None
        and next(data_element.iter(etree.Comment, etree.ProcessingInstruction), None) is not None
    ):
        raise RecordXmlError(
            "Dữ liệu học bạ không được chứa chú thích hoặc chỉ thị xử lý (<!-- -->, <? ?>)"
        )
    return root


# --------------------------------------------------------------------------- parsed trees
# The trees of record bytes this thread has just produced (build_record_xml, sign_slots)
# or parsed (issuance's CBQL check), keyed by the identity of the bytes object: the next
# step given *that same object* (build → GVCN → CBQL → KY_PHAT_HANH → verification) takes
# the tree instead of parsing the bytes again. An entry holds its bytes object, so the id
# cannot be reused while it exists; it is taken out when used (a tree serves once); only
# bytes that parse_record_xml_safely accepts are kept (the producers never write DOCTYPE,
# comments in the data or another encoding; size and DOCTYPE are checked here). At most
# KEPT_TREES trees per thread (about 80 kB each), the oldest dropped first: at least a
# flow's chunk (hocba.flows.signing.SIGN_CHUNK), or the first trees of a chunk are dropped
# before their next step and parsed again (with 256 and chunks of 350, a quarter of the
# seal's verifications were). Equal bytes in another object are parsed.
KEPT_TREES = 512
_KEPT = threading.local()


def _kept() -> dict[int, tuple[bytes, etree._Element, object]]:
    trees: dict[int, tuple[bytes, etree._Element, object]] | None = getattr(_KEPT, "trees", None)
    if trees is None:
        trees = _KEPT.trees = {}
    return trees


def keep_parsed(data: bytes, root: etree._Element, extra: object = None) -> None:
    """Remember that ``data`` (this bytes object, just serialised from ``root``, or just
    parsed into it by :func:`parse_record_xml_safely`) parses to ``root``; ``extra``
    travels with it (what the caller derived from the tree)."""
    if len(data) > DEFAULT_MAX_BYTES or (
        b"!" in data and (b"<!DOCTYPE" in data or b"<!ENTITY" in data)
    ):  # b"!" first, as in parse_record_xml_safely: one byte is found at memchr speed
        return  # parse_record_xml_safely would refuse these bytes: never bypass it
    trees = _kept()
    while len(trees) >= KEPT_TREES:
        del trees[next(iter(trees))]
    trees[id(data)] = (data, root, extra)


def holds_parsed(data: bytes) -> bool:
    """Is a tree kept for this very bytes object (what :func:`take_parsed` would take)?"""
    entry = _kept().get(id(data))
    return entry is not None and entry[0] is data


def take_parsed(data: bytes) -> tuple[etree._Element, object] | None:
    """The tree :func:`keep_parsed` remembered for this very bytes object (and its
    ``extra``), taken out; ``None`` when there is none: parse the bytes."""
    trees = _kept()
    entry = trees.pop(id(data), None) if trees else None
    if entry is None or entry[0] is not data:
        return None
    return entry[1], entry[2]


# --------------------------------------------------------------------------- validate
_SCHEMA_LOCK = threading.Lock()


@cache
def _schema() -> etree.XMLSchema:
    """The compiled ``hoc_ba_v1.xsd``, loaded once per process."""
    package, name = _SCHEMA_RESOURCE
    source = importlib.resources.files(package).joinpath(name).read_bytes()
    return etree.XMLSchema(etree.fromstring(source, parser=hardened_parser()))


def _assert_valid(root: etree._Element) -> None:
    schema = _schema()
    with _SCHEMA_LOCK:  # an XMLSchema keeps its error log on the instance
        if schema.validate(root):
            return
        details = [f"dòng {e.line}: {e.message}" for e in schema.error_log]
    raise RecordXmlError("Tệp XML học bạ không đúng lược đồ hoc_ba_v1.xsd", details)


def validate_record_xml(data: bytes) -> None:
    """Parse ``data`` safely and validate it against ``hoc_ba_v1.xsd`` (XML Schema 1.0).

    Raises :class:`RecordXmlError` with a Vietnamese message and the schema errors in
    ``details``.
    """
    _assert_valid(parse_record_xml_safely(data))


def validate_record_tree(root: etree._Element) -> None:
    """:func:`validate_record_xml` of a tree ``parse_record_xml_safely`` returned (for a
    caller that has parsed the bytes already)."""
    _assert_valid(root)


# --------------------------------------------------------------------------- read
def _value_of(path: str, kind: Kind, text: str) -> str | int | float | bool:
    try:
        if kind == "text":
            return text
        if kind == "bool":
            if text not in ("0", "1"):
                raise ValueError(text)
            return text == "1"
        if kind == "int":
            return int(text)
        return float(text) if "." in text else int(text)
    except ValueError:
        raise RecordXmlError(f"Giá trị của {path} không hợp lệ", [f"{path}: {text!r}"]) from None


def _read_fields(
    element: etree._Element,
    path: str,
    fields: Sequence[tuple[str, Kind]],
    skip: etree._Element | None = None,
) -> dict[str, Any]:
    kinds = dict(fields)
    values: dict[str, Any] = {}
    for child in element:
        if not isinstance(child.tag, str) or child is skip:
            continue  # comments and processing instructions carry no data; skip is read apart
        if child.tag not in kinds or child.tag in values or len(child):
            raise RecordXmlError("Tệp XML học bạ có thẻ không hợp lệ", [f"{path}/{child.tag}"])
        values[child.tag] = _value_of(f"{path}/{child.tag}", kinds[child.tag], child.text or "")
    return values


def read_record_document(data: bytes) -> RecordDocument:
    """Read a record XML back into a :class:`RecordDocument` (inverse of :func:`build_record_xml`).

    Signature slots are ignored. Unknown or repeated tags raise :class:`RecordXmlError`.
    The input is parsed with :func:`parse_record_xml_safely` but not schema-validated; call
    :func:`validate_record_xml` first when the source is not trusted.
    """
    return read_record_tree(parse_record_xml_safely(data))


def read_record_tree(root: etree._Element) -> RecordDocument:
    """:func:`read_record_document` of a tree ``parse_record_xml_safely`` returned (for a
    caller that reads more from the same tree: parse once). The tree is left unchanged."""
    if root.tag != "HOC_BA":
        raise RecordXmlError("Phần tử gốc phải là HOC_BA", [str(root.tag)])
    blocks = root.findall("DU_LIEU_HOC_BA")
    if len(blocks) != 1:
        raise RecordXmlError("Tệp phải có đúng một DU_LIEU_HOC_BA", [f"{len(blocks)}"])
    doc = RecordDocument(thong_tin_chung={})
    for section in blocks[0]:
        if not isinstance(section.tag, str):
            continue
        if section.tag == "THONG_TIN_CHUNG":
            doc.thong_tin_chung.update(
                _read_fields(section, "THONG_TIN_CHUNG", THONG_TIN_CHUNG_FIELDS)
            )
        elif section.tag == "QUA_TRINH_HOC_TAP":
            for item in _items(section, "QUA_TRINH", "QUA_TRINH_HOC_TAP"):
                doc.qua_trinh_hoc_tap.append(
                    _read_fields(item, "QUA_TRINH_HOC_TAP/QUA_TRINH", QUA_TRINH_FIELDS)
                )
        elif section.tag == "TONG_KET":
            subjects = section.find("DANH_SACH_MON_HOC")  # the first; another is refused
            if subjects is not None:
                for item in _items(subjects, "MON_HOC", "TONG_KET/DANH_SACH_MON_HOC"):
                    doc.mon_hoc.append(
                        _read_fields(item, "TONG_KET/DANH_SACH_MON_HOC/MON_HOC", MON_HOC_FIELDS)
                    )
            doc.tong_ket.update(_read_fields(section, "TONG_KET", TONG_KET_FIELDS, subjects))
        else:
            raise RecordXmlError("Tệp XML học bạ có thẻ không hợp lệ", [str(section.tag)])
    return doc


def _items(container: etree._Element, item_tag: str, path: str) -> list[etree._Element]:
    items: list[etree._Element] = []
    for child in container:
        if not isinstance(child.tag, str):
            continue
        if child.tag != item_tag:
            raise RecordXmlError("Tệp XML học bạ có thẻ không hợp lệ", [f"{path}/{child.tag}"])
        items.append(child)
    return items
