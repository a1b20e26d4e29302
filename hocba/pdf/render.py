"""The paper copy of a pupil's học bạ ("bản giấy Học bạ số", HOCBA_SPEC §2 and §4) as A4 PDF.

:func:`render_book` turns the issued record XMLs of one pupil (one per school year, oldest
first, possibly from several schools after a transfer) into the Ministry's paper layout:

1. **cover** — BỘ GIÁO DỤC VÀ ĐÀO TẠO, HỌC BẠ TIỂU HỌC, the pupil, the school and its
   commune / district / province (of the latest year);
2. **information page** — name, sex, date of birth, ethnicity, nationality, personal ID,
   place of birth, home town, address, parents or guardian, the **Mã số tra cứu học bạ**
   of the latest year with a QR code carrying ``f"{verify_url}?ma={lookup_code}"``, the
   study history (one row per year) and the principal who signs the book, with the date;
3. **two pages per school year** — header (class, school, height, weight, absences), then
   the six sections of TT27 Phụ lục 1: 1 subjects and activities (level, periodic test
   score, comment), 2 qualities, 3 competences (general and specific), 4 year result with
   the homeroom teacher's comment, 5 awards, 6 completion / promotion; and the signature
   row: the principal's confirmation (with the school seal) and the homeroom teacher.

So a book has ``2 + 2 × years`` pages (4 for one year, 12 for five) unless a year's
comments are long enough to need more room.

Signatures. The years before the latest one were signed in their own XML (possibly by
another school); their signature row states who signed and when, from the signed
``SigningTime`` of each slot, and draws no stamp — a stamp-like picture without a PDF
signature behind it would mislead. The latest year's principal box is left empty for the
PAdES signatures of :mod:`hocba.pdf.sign`. Its rectangle is published in the
document outline (bookmarks: cover, information page, each year, and the entry
:data:`PRINCIPAL_BOX_TITLE`), as the only destination of type ``/FitR`` left bottom right
top (ISO 32000-1 §12.3.2.2), so the signer finds it without knowing the layout.

Choices:

* Font: Liberation Serif 2.1.5 (SIL Open Font License 1.1, shipped in
  ``hocba/data/fonts`` with its licence), metric-compatible with Times New Roman — the face
  of Vietnamese administrative documents (Nghị định 30/2020/NĐ-CP) — and covering every
  Vietnamese letter. Subsets are embedded; text stays extractable (ToUnicode maps).
* Levels are written as on the paper form — ``T`` / ``H`` / ``C`` for subjects, ``T`` /
  ``Đ`` / ``C`` for qualities and competences — with the legend under each table.
* The record XML has no per-subject comment (``MON_HOC`` carries code, name, level and
  score), so the comment column of section 1 is left blank for the teacher's hand — as on
  paper — unless a future format provides one.
* The PDF's Info dictionary carries the pupil's name (Title), the school (Author) and
  ``Mã số tra cứu học bạ: <code>`` (Subject); :mod:`hocba.pdf.sign` checks the
  attached XML against that code.
* Output is deterministic: the same input gives the same bytes (ReportLab's
  ``invariant`` mode fixes the creation date and the document ID).

Speed (issues 4 and 14, ``bench/pdf.py``): the pages are laid out by
:func:`~hocba.pdf.layout.lay_out` (one frame, page breaks, splits: the bytes platypus's
document template wrote, without its machinery), and the tables and paragraphs are the
two flowables of :mod:`hocba.pdf.layout` — :class:`~hocba.pdf.layout.Grid` and
:class:`~hocba.pdf.layout.Text`, which draw what ReportLab's ``Table`` and ``Paragraph``
drew, pixel for pixel, at a fraction of the cost, and replay the operators of what
repeats from book to book. What every book repeats is done once per process — font
subsets (:mod:`hocba.pdf.fonts`: every document is seeded with :data:`FONT_ALPHABET`'s
codes, so all books embed the same subsets, whose font files, widths and ToUnicode maps
are cached), line breaks, the QR encoder's generator polynomials and module order. This
module also changes ReportLab process-wide: no ASCII85 streams; Flate by ISA-L at its
level 1 (:func:`_flate_fast`); ``PDFDictionary.format`` with the key names formatted
once (:func:`_format_dictionary`, the same bytes); and three functions of the QR encoder
replaced by equivalents (:func:`_qr_encoder`). This package is ReportLab's only user.
"""

from __future__ import annotations

import datetime as dt
import io
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache, partial
from itertools import chain, zip_longest
from typing import Any

from isal import isal_zlib
from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_JUSTIFY
from reportlab.lib.pagesizes import A4
from reportlab.lib.rl_accel import fp_str
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import cm
from reportlab.pdfbase import pdfdoc
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    CondPageBreak,
    Flowable,
    PageBreak,
    Spacer,
    Table,
    TableStyle,
)

from hocba.errors import HocbaError
from hocba.pdf.fonts import (
    FONT_BOLD,
    FONT_ITALIC,
    FONT_REGULAR,
    register_fonts,
    seed_font_subsets,
)
from hocba.pdf.layout import (
    CELL_FONT_SIZE,
    CELL_PADDING,
    Grid,
    GridRow,
    Text,
    draw_text,
    draw_translated,
    font_with,
    grid_row,
    lay_out,
    string_width,
)
from hocba.xml.record import (
    RecordDocument,
    RecordXmlError,
    parse_record_xml_safely,
    read_record_tree,
)

__all__ = [
    "LOOKUP_SUBJECT_PREFIX",
    "PRINCIPAL_BOX_DEST",
    "PRINCIPAL_BOX_TITLE",
    "BookYear",
    "RenderError",
    "print_class",
    "read_book_year",
    "render_book",
]

PRINCIPAL_BOX_DEST = "hocba-chu-ky-hieu-truong"
"""Destination key of the latest year's principal signature box."""

PRINCIPAL_BOX_TITLE = "Chữ ký số của Hiệu trưởng và dấu của trường"
"""Outline (bookmark) entry of that box; its destination is the only ``/FitR`` one."""

LOOKUP_SUBJECT_PREFIX = "Mã số tra cứu học bạ: "
"""The PDF Info ``/Subject`` is this prefix followed by the latest year's lookup code."""


PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN_LEFT = 2.5 * cm
MARGIN_RIGHT = 2.0 * cm
MARGIN_TOP = 1.8 * cm
MARGIN_BOTTOM = 2.0 * cm
CONTENT_WIDTH = PAGE_WIDTH - MARGIN_LEFT - MARGIN_RIGHT

PRINCIPAL_BOX_SIZE = (200.0, 78.0)
"""Width and height (points) of the principal's signature box."""

INK = colors.HexColor("#1a1a1a")
NAVY = colors.HexColor("#1f3a68")
GRID = colors.HexColor("#404040")
SHADE = colors.HexColor("#e8edf5")
MUTED = colors.HexColor("#6b6b6b")

SUBJECT_LEVELS = {"T": "Hoàn thành tốt", "H": "Hoàn thành", "C": "Chưa hoàn thành"}
QUALITY_LEVELS = {"T": "Tốt", "Đ": "Đạt", "C": "Cần cố gắng"}
YEAR_RESULTS = {
    "HTXS": "Hoàn thành xuất sắc",
    "HTT": "Hoàn thành tốt",
    "HT": "Hoàn thành",
    "CHT": "Chưa hoàn thành",
}
QUALITIES = (
    ("PHAM_CHAT_YEU_NUOC", "Yêu nước"),
    ("PHAM_CHAT_NHAN_AI", "Nhân ái"),
    ("PHAM_CHAT_CHAM_CHI", "Chăm chỉ"),
    ("PHAM_CHAT_TRUNG_THUC", "Trung thực"),
    ("PHAM_CHAT_TRACH_NHIEM", "Trách nhiệm"),
)
GENERAL_COMPETENCES = (
    ("NANG_LUC_TU_CHU_TU_HOC", "Tự chủ và tự học"),
    ("NANG_LUC_GIAO_TIEP_HOC_TAC", "Giao tiếp và hợp tác"),
    ("NANG_LUC_GIAI_QUYET_VAN_DE_SANG_TAO", "Giải quyết vấn đề và sáng tạo"),
)
SPECIFIC_COMPETENCES = (
    ("NANG_LUC_NGON_NGU", "Ngôn ngữ"),
    ("NANG_LUC_TINH_TOAN", "Tính toán"),
    ("NANG_LUC_KHOA_HOC", "Khoa học"),
    ("NANG_LUC_CONG_NGHE", "Công nghệ"),
    ("NANG_LUC_TIN_HOC", "Tin học"),
    ("NANG_LUC_THAM_MI", "Thẩm mĩ"),
    ("NANG_LUC_THE_CHAT", "Thể chất"),
)
_SIGNING_TIME_TAG = "SigningTime"


class RenderError(HocbaError, ValueError):
    """The records cannot be rendered as one book; ``message_vi`` is for people."""

    def __init__(self, message_vi: str) -> None:
        super().__init__(message_vi)
        self.message_vi = message_vi


rl_config.useA85 = 0
"""Streams are written Flate-compressed only, not also ASCII85-encoded (ReportLab's
default): a quarter smaller, and ASCII85 costs time for nothing in a binary-safe file.
(A process-wide ReportLab setting; this package is ReportLab's only user here.)"""


def _flate_fast(data: str | bytes) -> bytes:
    """Flate by ISA-L (``isal``) at its level 1: the page content streams, ~100 KB of a
    five-year book, in 0.2 ms instead of zlib's 1.5 ms at its fastest level (ReportLab uses
    zlib's default, 6, slower still), and a little smaller (issue 14). The same Flate
    (ISO 32000-1 §7.4.4) every reader decodes; deterministic, like zlib. Font files, the
    largest streams, are compressed once per process with zlib (:func:`_subset_file`)."""
    return isal_zlib.compress(data.encode("utf8") if isinstance(data, str) else data, 1)


pdfdoc.PDFZCompress.encode = _flate_fast  # the one Flate filter object ReportLab uses

_DICTIONARY_KEYS: dict[str, bytes] = {}
_REPORTLAB_FORMAT_DICTIONARY = pdfdoc.PDFDictionary.format  # kept for the tests


def _format_dictionary(self: pdfdoc.PDFDictionary, document: Any, IND: bytes = b"\n ") -> bytes:
    """ReportLab's ``PDFDictionary.format`` (the same bytes) with each key's name formatted
    once per process instead of character by character for every dictionary written: a
    book writes some 330 keys (page, font, outline and Info dictionaries), from a few
    dozen names."""
    items = self.dict
    keys = list(items.keys())
    if not isinstance(items, OrderedDict):
        keys.sort()
    format_value = pdfdoc.format
    entries = []
    for key in keys:
        name = _DICTIONARY_KEYS.get(key)
        if name is None:
            name = format_value(pdfdoc.PDFName(key), document)
            if type(key) is str and len(_DICTIONARY_KEYS) < 1024:
                _DICTIONARY_KEYS[key] = name
        entries.append(name + b" " + format_value(items[key], document))
    if (self.multiline and rl_config.pdfMultiLine) or self.multiline == "forced":
        body = IND.join(entries)
    else:
        for index in reversed(range(6, len(entries), 6)):  # a line break every 6 entries
            entries.insert(index, b"\n ")
        body = b" ".join(entries)
    return b"<<\n" + body + b"\n>>"


pdfdoc.PDFDictionary.format = _format_dictionary  # type: ignore[method-assign]


# ============================================================================ input
@dataclass(frozen=True)
class BookYear:
    """One issued record as the book needs it: its content and the slots' signing times
    (from the signed ``SigningTime`` of each ``ds:Signature``, else the slot's
    ``NGAY_KY``)."""

    doc: RecordDocument
    signed_at: dict[str, dt.datetime] = field(default_factory=dict)

    def general(self, name: str) -> Any:
        return self.doc.thong_tin_chung.get(name)

    def summary(self, name: str) -> Any:
        return self.doc.tong_ket.get(name)

    @property
    def lookup_code(self) -> str | None:
        value = self.general("MA_TRA_CUU_UUID")
        return str(value) if value else None


def _parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def read_book_year(xml: bytes) -> BookYear:
    """Read one record XML for the book (raises :class:`RenderError` if unreadable)."""
    try:
        root = parse_record_xml_safely(xml)
        doc = read_record_tree(root)
    except RecordXmlError as exc:
        raise RenderError(f"Không đọc được học bạ: {exc.message_vi}") from exc
    signed_at: dict[str, dt.datetime] = {}
    zone = root.find("DANH_SACH_THONG_TIN_KY")
    for slot in ("GVCN", "CBQL", "KY_PHAT_HANH") if zone is not None else ():
        element = zone.find(slot)
        if element is None:
            continue
        signing_time = next(element.iter(f"{{*}}{_SIGNING_TIME_TAG}"), None)
        when = _parse_time(signing_time.text) if signing_time is not None else None
        when = when or _parse_time(element.findtext("NGAY_KY"))
        if when is not None:
            signed_at[slot] = when
    return BookYear(doc=doc, signed_at=signed_at)


def _same_pupil(years: Sequence[BookYear]) -> None:
    def key(year: BookYear) -> str | None:
        return year.general("SO_CCCD") or year.general("MA_HOC_SINH")

    keys = {key(year) for year in years}
    if len(keys) != 1 or None in keys:
        raise RenderError(
            "Các học bạ phải của cùng một học sinh (cùng số định danh cá nhân / mã học sinh)."
        )
    school_years = [year.general("NAM_HOC") for year in years]
    if len(set(school_years)) != len(school_years):
        raise RenderError("Mỗi năm học chỉ được có một học bạ trong cùng một quyển học bạ.")


# ============================================================================ formatting
_VN = dt.timezone(dt.timedelta(hours=7))


def _str(value: object) -> str:
    """Plain text of a value; ``None`` and ``""`` become ``""``."""
    return "" if value is None else str(value)


def _vn_date(value: object) -> str:
    """``2015-03-02`` / a datetime → ``02/03/2015`` (Vietnam time for datetimes)."""
    if isinstance(value, dt.datetime):
        return value.astimezone(_VN).strftime("%d/%m/%Y")
    if isinstance(value, str) and value:
        try:
            return dt.date.fromisoformat(value[:10]).strftime("%d/%m/%Y")
        except ValueError:
            return value
    return ""


def _vn_long_date(value: dt.datetime | None, place: object) -> str:
    """``Đầm Hà, ngày 30 tháng 05 năm 2025`` (the dateline of Vietnamese documents)."""
    prefix = f"{place}, " if place else ""
    if value is None:
        return f"{prefix}ngày … tháng … năm …"
    day = value.astimezone(_VN).date()
    return f"{prefix}ngày {day.day:02d} tháng {day.month:02d} năm {day.year}"


def _legend(levels: dict[str, str]) -> str:
    return "; ".join(f"{code} – {label}" for code, label in levels.items())


def _quantity(value: object, unit: str) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, float):
        text = f"{value:.2f}".rstrip("0").rstrip(".").replace(".", ",")
    else:
        text = str(value)
    return f"{text} {unit}"


# ============================================================================ styles
_BODY = ParagraphStyle("body", fontName=FONT_REGULAR, fontSize=11.5, leading=15, textColor=INK)
_CELL = ParagraphStyle("cell", parent=_BODY, fontSize=10.5, leading=13)
_SMALL = ParagraphStyle("small", parent=_BODY, fontSize=9.5, leading=12)
_HEADING = ParagraphStyle(
    "heading",
    parent=_BODY,
    fontName=FONT_BOLD,
    fontSize=12,
    leading=15,
    spaceBefore=8,
    spaceAfter=4,
    textColor=NAVY,
)
_TITLE = ParagraphStyle(
    "title",
    parent=_BODY,
    fontName=FONT_BOLD,
    fontSize=16,
    leading=20,
    alignment=TA_CENTER,
    textColor=NAVY,
)
_SUBTITLE = ParagraphStyle(
    "subtitle", parent=_BODY, fontName=FONT_ITALIC, fontSize=11, alignment=TA_CENTER
)
_LEGEND = ParagraphStyle(
    "legend",
    parent=_BODY,
    fontName=FONT_ITALIC,
    fontSize=9,
    leading=11,
    textColor=MUTED,
    spaceBefore=2,
)
_JUSTIFIED = ParagraphStyle("justified", parent=_BODY, alignment=TA_JUSTIFY)
_CODE = ParagraphStyle(
    "code", parent=_BODY, fontName=FONT_BOLD, fontSize=13, leading=17, textColor=NAVY
)


def _para(text: object, style: ParagraphStyle = _BODY, markup: str = "") -> Text:
    """A paragraph of ``text`` in ``style``'s font, or its bold / italic (``markup``: ``b``,
    ``i``)."""
    return Text(_str(text), style, font_with(style.fontName, markup))


def _cell(text: object, width: float, *, font: str = FONT_REGULAR) -> str | Flowable:
    """A table cell: a plain string when it fits on one line (cheap to lay out), else a
    wrapping paragraph."""
    value = _str(text)
    if string_width(value, font, CELL_FONT_SIZE) <= width - 2 * CELL_PADDING:
        return value
    return _para(value, _CELL, "b" if font == FONT_BOLD else "")


def _grid(widths: Sequence[float], rows: Sequence[GridRow], *, repeat_rows: int = 0) -> Grid:
    """A table of the book: grey grid, dark box, dark text."""
    return Grid(
        widths, rows, grid_color=GRID, box_color=INK, text_color=INK, repeat_rows=repeat_rows
    )


def _header_row(cells: Sequence[str | Flowable], widths: Sequence[float]) -> GridRow:
    """A table's header row: shaded, bold, centred."""
    count = len(cells)
    return grid_row(
        cells,
        widths,
        fonts=(FONT_BOLD,) * count,
        aligns=("CENTER",) * count,
        backgrounds=(SHADE,) * count,
    )


# ============================================================================ flowables
class _QrCode(Flowable):
    """A QR code (ISO/IEC 18004, error correction level M) drawn as filled rectangles.

    The symbol is encoded with ReportLab's encoder; the eight-mask penalty search, which
    costs about 20 ms per symbol in pure Python, is skipped in favour of one fixed mask —
    every mask decodes, the search only optimises the look of the pattern.
    """

    QUIET_ZONE = 4  # modules (ISO/IEC 18004 §6.3.8)

    def __init__(self, value: str, size: float) -> None:
        super().__init__()
        self.value = value
        self.size = size
        self.modules = _qr_modules(value)

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        return self.size, self.size

    def draw(self) -> None:
        count = len(self.modules)
        unit = self.size / (count + 2 * self.QUIET_ZONE)
        canv = self.canv
        canv.saveState()
        canv.setFillColor(colors.white)
        canv.rect(0, 0, self.size, self.size, stroke=0, fill=1)
        canv.setFillColor(colors.black)
        numbers = _qr_numbers(unit, count + 2 * self.QUIET_ZONE)
        rects = ["n"]  # the path ReportLab's path.rect() calls write, numbers formatted once
        for row, dark in enumerate(self.modules):
            y = fp_str(self.size - (row + 1 + self.QUIET_ZONE) * unit)
            column = 0
            while column < count:  # one rectangle per horizontal run of dark modules
                if not dark[column]:
                    column += 1
                    continue
                start = column
                while column < count and dark[column]:
                    column += 1
                x, width = numbers[start + self.QUIET_ZONE], numbers[column - start]
                rects.append(f"{x} {y} {width} {numbers[1]} re")
        canv._code.append(" ".join(rects))
        canv._strokeAndFill(0, 1)  # what canv.drawPath(path, stroke=0, fill=1) ends with
        canv.restoreState()


@lru_cache(maxsize=8)
def _qr_numbers(unit: float, modules: int) -> tuple[str, ...]:
    """``fp_str(i * unit)`` for i in 0 … ``modules``: the x coordinates, widths and height
    of a symbol's rectangles, formatted once per symbol size."""
    return tuple(fp_str(i * unit) for i in range(modules + 1))


@lru_cache(maxsize=1)
def _qr_encoder() -> Any:
    """ReportLab's QR encoder with two pure functions of the symbol version memoised and
    its Reed-Solomon division done on integer tables (the same codewords; ReportLab
    builds polynomial objects, recursively): the generator polynomial of each block's
    error-correction length, and the order in which data modules are placed. Together
    two thirds of the encoding time."""
    from reportlab.graphics.barcode import qrencoder

    polynomial = qrencoder.QRUtil.getErrorCorrectPolynomial
    if not hasattr(polynomial, "cache_info"):
        polynomial = lru_cache(maxsize=None)(polynomial)
        qrencoder.QRUtil.getErrorCorrectPolynomial = staticmethod(polynomial)
    exp, log = qrencoder.EXP_TABLE, qrencoder.LOG_TABLE

    @cache
    def generator_logs(ec_count: int) -> tuple[int, ...]:
        return tuple(log[c] for c in polynomial(ec_count).num[1:])

    def create_bytes(buffer: Any, rs_blocks: Any) -> list[int]:
        offset = 0
        data_blocks: list[list[int]] = []
        ec_blocks: list[list[int]] = []
        for block in rs_blocks:
            data = buffer.buffer[offset : offset + block.dataCount]
            offset += block.dataCount
            generator = generator_logs(block.totalCount - block.dataCount)
            remainder = [0] * len(generator)
            for value in data:  # polynomial division by the generator, GF(256)
                factor = value ^ remainder[0]
                remainder = remainder[1:] + [0]
                if factor:
                    shift = log[factor]
                    for j, g in enumerate(generator):
                        remainder[j] ^= exp[(shift + g) % 255]
            data_blocks.append(data)
            ec_blocks.append(remainder)
        return [  # interleaved as ISO/IEC 18004 §7.6 (and ReportLab) order them
            v
            for column in chain(zip_longest(*data_blocks), zip_longest(*ec_blocks))
            for v in column
            if v is not None
        ]

    positions: dict[int, list[tuple[int, int]]] = {}
    walk = qrencoder.QRCode._dataPosIterator

    def data_positions(self: Any) -> list[tuple[int, int]]:
        if self.version not in positions:
            positions[self.version] = list(walk(self))
        return positions[self.version]

    qrencoder.QRCode.createBytes = staticmethod(create_bytes)
    qrencoder.QRCode.dataPosIterator = data_positions
    return qrencoder


def _qr_modules(value: str) -> list[list[bool]]:
    qrencoder = _qr_encoder()
    code = qrencoder.QRCode(None, qrencoder.QRErrorCorrectLevel.M)
    code.addData(value)
    try:
        code.version = code.calculate_version()
        code.makeImpl(False, 2)
    except AttributeError:  # a ReportLab without these internals: the full search
        code = qrencoder.QRCode(None, qrencoder.QRErrorCorrectLevel.M)
        code.addData(value)
        code.make()
    return [[bool(dark) for dark in row] for row in code.modules]  # what isDark(r, c) reads


class _Bookmark(Flowable):
    """An outline (bookmark) entry for the page where it lands (ISO 32000-1 §12.3.3)."""

    def __init__(self, key: str, title: str, level: int = 0) -> None:
        super().__init__()
        self.key, self.title, self.level = key, title, level
        self.width = self.height = 0

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        return 0, 0

    def drawOn(self, canvas: Canvas, x: float, y: float, _sW: float = 0) -> None:
        draw_translated(self, canvas, x, y)  # the destination is the page: no position

    def draw(self) -> None:
        self.canv.bookmarkPage(self.key)
        self.canv.addOutlineEntry(self.title, self.key, level=self.level)


class _SignatureRow(Flowable):
    """The signature row of one year: the principal's confirmation with the school seal
    (left) and the homeroom teacher (right).

    For the latest year the principal's box is left empty for the PAdES signatures and its
    page rectangle is published as the outline entry's ``/FitR`` destination.
    """

    HEIGHT = 190.0

    def __init__(self, year: BookYear, *, is_latest: bool) -> None:
        super().__init__()
        self.year = year
        self.is_latest = is_latest
        self.width = CONTENT_WIDTH
        self.height = self.HEIGHT

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        return self.width, self.height

    def _line(self, text: str, x: float, y: float, font: str, size: float, color=INK) -> None:
        canv = self.canv
        canv.setFillColor(color)
        canv.setFont(font, size)
        draw_text(canv, x, y, text, "centre")

    def draw(self) -> None:
        year, canv = self.year, self.canv
        half = self.width / 2
        left_mid, right_mid = half / 2, half + half / 2
        top = self.height
        place = year.general("DIA_DANH_PHAT_HANH_HOC_BA")
        seal_time = year.signed_at.get("KY_PHAT_HANH") or year.signed_at.get("CBQL")
        teacher_time = year.signed_at.get("GVCN")
        canv.saveState()

        # left: the principal's confirmation
        self._line(_vn_long_date(seal_time, place), left_mid, top - 11, FONT_ITALIC, 10.5)
        self._line("XÁC NHẬN CỦA HIỆU TRƯỞNG", left_mid, top - 26, FONT_BOLD, 11.5)
        self._line("(Ký, ghi rõ họ tên và đóng dấu)", left_mid, top - 38, FONT_ITALIC, 9, MUTED)
        box_w, box_h = PRINCIPAL_BOX_SIZE
        box_x = left_mid - box_w / 2 + 12
        box_y = top - 50 - box_h
        if self.is_latest:
            canv.setStrokeColor(colors.HexColor("#9aa5b8"))
            canv.setDash(3, 3)
            canv.setLineWidth(0.6)
            canv.rect(box_x, box_y, box_w, box_h, stroke=1, fill=0)
            canv.setDash()
            middle = box_x + box_w / 2
            for text, dy in (("Vị trí chữ ký số của Hiệu trưởng", 42), ("và dấu của trường", 30)):
                self._line(text, middle, box_y + dy, FONT_ITALIC, 9, MUTED)
            left, bottom = canv.absolutePosition(box_x, box_y)
            right, upper = canv.absolutePosition(box_x + box_w, box_y + box_h)
            canv.bookmarkPage(
                PRINCIPAL_BOX_DEST, fit="FitR", left=left, bottom=bottom, right=right, top=upper
            )
            canv.addOutlineEntry(PRINCIPAL_BOX_TITLE, PRINCIPAL_BOX_DEST, level=1)
        else:
            lines = [f"Đã ký số trên học bạ số năm học {_str(year.general('TEN_NAM_HOC'))}"]
            if year.signed_at.get("CBQL"):
                lines.append(f"Hiệu trưởng ký ngày {_vn_date(year.signed_at['CBQL'])}")
            if year.signed_at.get("KY_PHAT_HANH"):
                lines.append(f"Trường đóng dấu số ngày {_vn_date(year.signed_at['KY_PHAT_HANH'])}")
            canv.setStrokeColor(NAVY)
            canv.setLineWidth(0.6)
            canv.roundRect(box_x, box_y, box_w, box_h, 4, stroke=1, fill=0)
            y = box_y + box_h / 2 + 7 * (len(lines) - 1) - 3
            for text in lines:
                self._line(text, box_x + box_w / 2, y, FONT_REGULAR, 9.5, NAVY)
                y -= 14
        self._line(
            _str(year.general("TEN_GIAM_HIEU_KY_HOC_BA")), left_mid, box_y - 16, FONT_BOLD, 11.5
        )
        role = _str(year.general("CHUC_VU_GIAM_HIEU_KY_HOC_BA")) or "Hiệu trưởng"
        self._line(role, left_mid, box_y - 30, FONT_ITALIC, 10.5)

        # right: the homeroom teacher
        self._line(_vn_long_date(teacher_time, place), right_mid, top - 11, FONT_ITALIC, 10.5)
        self._line("GIÁO VIÊN CHỦ NHIỆM", right_mid, top - 26, FONT_BOLD, 11.5)
        self._line("(Ký và ghi rõ họ tên)", right_mid, top - 38, FONT_ITALIC, 9, MUTED)
        note = f"Đã ký số ngày {_vn_date(teacher_time)}" if teacher_time else "Chưa có chữ ký số"
        self._line(note, right_mid, box_y + box_h / 2 - 3, FONT_REGULAR, 10, NAVY)
        self._line(
            _str(year.general("TEN_GIAO_VIEN_CHU_NHIEM")), right_mid, box_y - 16, FONT_BOLD, 11.5
        )
        canv.restoreState()


# ============================================================================ pages
@dataclass
class _Book:
    years: list[BookYear]
    verify_url: str

    @property
    def latest(self) -> BookYear:
        return self.years[-1]

    @property
    def lookup_code(self) -> str:
        return _str(self.latest.lookup_code)

    @property
    def verify_link(self) -> str:
        return f"{self.verify_url}?ma={self.lookup_code}"

    @property
    def issued_at(self) -> dt.datetime | None:
        """When the latest year was sealed (the document's date)."""
        signed = self.latest.signed_at
        return signed.get("KY_PHAT_HANH") or signed.get("CBQL")


def _pdf_date_formatter(when: dt.datetime | None) -> Callable[..., str]:
    """Info ``/CreationDate`` and ``/ModDate``: the latest seal's time (deterministic)."""
    moment = (when or dt.datetime(2000, 1, 1, tzinfo=dt.UTC)).astimezone(_VN)
    text = moment.strftime("D:%Y%m%d%H%M%S+07'00'")
    return lambda *_: text


def _draw_cover(book: _Book, canv: Canvas) -> None:
    seed_font_subsets(canv)
    canv.setDateFormatter(_pdf_date_formatter(book.issued_at))
    latest = book.latest
    canv.saveState()
    canv.setStrokeColor(NAVY)
    canv.setLineWidth(2.2)
    canv.rect(1.6 * cm, 1.6 * cm, PAGE_WIDTH - 3.2 * cm, PAGE_HEIGHT - 3.2 * cm)
    canv.setLineWidth(0.7)
    canv.rect(1.85 * cm, 1.85 * cm, PAGE_WIDTH - 3.7 * cm, PAGE_HEIGHT - 3.7 * cm)
    middle = PAGE_WIDTH / 2
    canv.setFillColor(INK)
    canv.setFont(FONT_BOLD, 15)
    draw_text(canv, middle, PAGE_HEIGHT - 4.0 * cm, "BỘ GIÁO DỤC VÀ ĐÀO TẠO", "centre")
    canv.setLineWidth(0.8)
    rule_y = PAGE_HEIGHT - 4.35 * cm
    canv.line(middle - 2.2 * cm, rule_y, middle + 2.2 * cm, rule_y)

    canv.setFillColor(NAVY)
    canv.setFont(FONT_BOLD, 64)
    draw_text(canv, middle, PAGE_HEIGHT - 10.2 * cm, "HỌC BẠ", "centre")
    canv.setFont(FONT_BOLD, 30)
    draw_text(canv, middle, PAGE_HEIGHT - 12.0 * cm, "TIỂU HỌC", "centre")
    canv.setFillColor(MUTED)
    canv.setFont(FONT_ITALIC, 12)
    subtitle = "Bản giấy của học bạ số, có chữ ký số của nhà trường"
    draw_text(canv, middle, PAGE_HEIGHT - 13.0 * cm, subtitle, "centre")

    labels = (
        ("Họ và tên học sinh:", _str(latest.general("HO_VA_TEN")).upper(), FONT_BOLD, 15),
        ("Trường:", latest.general("TEN_TRUONG"), FONT_BOLD, 13),
        ("Xã (Phường, Thị trấn):", latest.general("TEN_XA_PHUONG"), FONT_REGULAR, 13),
        ("Huyện (Quận, Thị xã, TP):", latest.general("TEN_QUAN_HUYEN"), FONT_REGULAR, 13),
        ("Tỉnh (Thành phố):", latest.general("TEN_TINH_THANH_PHO"), FONT_REGULAR, 13),
    )
    y = PAGE_HEIGHT - 17.2 * cm
    left = 3.6 * cm
    value_x = left + 5.2 * cm
    for label, value, font, size in labels:
        canv.setFillColor(INK)
        canv.setFont(FONT_REGULAR, 13)
        draw_text(canv, left, y, label)
        canv.setFont(font, size)
        draw_text(canv, value_x, y, _str(value) or "—")
        canv.setStrokeColor(colors.HexColor("#b0b0b0"))
        canv.setDash(1, 2)
        canv.setLineWidth(0.5)
        canv.line(value_x, y - 4, PAGE_WIDTH - 3.6 * cm, y - 4)
        canv.setDash()
        y -= 1.05 * cm
    canv.restoreState()


def _draw_page_frame(book: _Book, canv: Canvas) -> None:
    canv.saveState()
    canv.setStrokeColor(NAVY)
    canv.setLineWidth(0.5)
    rule_y = MARGIN_BOTTOM - 0.45 * cm
    canv.line(MARGIN_LEFT, rule_y, PAGE_WIDTH - MARGIN_RIGHT, rule_y)
    canv.setFillColor(MUTED)
    canv.setFont(FONT_REGULAR, 8.5)
    name = _str(book.latest.general("HO_VA_TEN"))
    text_y = MARGIN_BOTTOM - 0.85 * cm
    draw_text(canv, MARGIN_LEFT, text_y, f"Học bạ số · {name} · Mã số tra cứu: {book.lookup_code}")
    draw_text(canv, PAGE_WIDTH - MARGIN_RIGHT, text_y, f"Trang {canv.getPageNumber()}", "right")
    canv.restoreState()


def _field_table(
    rows: Sequence[Sequence[object]], widths: Sequence[float], *, bold_first: bool = True
) -> Grid:
    """Label / value pairs: labels shaded; with ``bold_first`` the first value in bold."""
    grid_rows = []
    for r, row in enumerate(rows):
        fonts = [
            FONT_BOLD if bold_first and (r, i) == (0, 1) else FONT_REGULAR for i in range(len(row))
        ]
        grid_rows.append(
            grid_row(
                [_cell(value, widths[i], font=fonts[i]) for i, value in enumerate(row)],
                widths,
                fonts=fonts,
                backgrounds=[None if i % 2 else SHADE for i in range(len(row))],
            )
        )
    return _grid(widths, grid_rows)


def _study_history(book: _Book) -> Grid:
    widths = [2.3 * cm, 1.4 * cm, CONTENT_WIDTH - 9.5 * cm, 2.6 * cm, 3.2 * cm]
    rows: list[list[object]] = []
    shown: set[tuple[str, str]] = set()
    for year in book.years:
        place = (_str(year.general("TEN_LOP")), _str(year.general("TEN_TRUONG")))
        shown.add(place)
        moved_in = ""
        for entry in year.doc.qua_trinh_hoc_tap:
            if (_str(entry.get("TEN_LOP")), _str(entry.get("TEN_TRUONG"))) == place:
                moved_in = _vn_date(entry.get("NGAY_TRANG_THAI_CHUYEN_DEN"))
        rows.append(
            [
                year.general("TEN_NAM_HOC"),
                place[0],
                place[1],
                year.general("SO_SO_DANG_BO"),
                moved_in,
            ]
        )
    earlier = [  # history before the years the system holds (from the latest record)
        [
            "—",
            entry.get("TEN_LOP"),
            entry.get("TEN_TRUONG"),
            "",
            _vn_date(entry.get("NGAY_TRANG_THAI_CHUYEN_DEN")),
        ]
        for entry in book.latest.doc.qua_trinh_hoc_tap
        if (_str(entry.get("TEN_LOP")), _str(entry.get("TEN_TRUONG"))) not in shown
    ]
    head = ["Năm học", "Lớp", "Tên trường", "Số đăng bộ", "Ngày chuyển đến"]
    body = [
        grid_row(
            [_cell(value, widths[i]) for i, value in enumerate(row)],
            widths,
            fonts=(FONT_REGULAR,) * 5,
            aligns=("CENTER", "CENTER", "LEFT", "CENTER", "CENTER"),
        )
        for row in earlier + rows
    ]
    return _grid(widths, [_header_row(head, widths), *body], repeat_rows=1)


def _info_page(book: _Book) -> list[Flowable]:
    g = book.latest.general
    label_w, value_w = 3.6 * cm, CONTENT_WIDTH / 2 - 3.6 * cm
    facts = [
        ["Họ và tên", _str(g("HO_VA_TEN")).upper(), "Giới tính", g("GIOI_TINH")],
        ["Ngày sinh", _vn_date(g("NGAY_SINH")), "Dân tộc", g("DAN_TOC")],
        ["Số định danh cá nhân", g("SO_CCCD"), "Quốc tịch", g("QUOC_TICH")],
        ["Mã học sinh", g("MA_HOC_SINH"), "Số đăng bộ", g("SO_SO_DANG_BO")],
    ]
    places = [
        ["Nơi sinh", g("NOI_SINH")],
        ["Quê quán", g("QUE_QUAN")],
        ["Nơi ở hiện nay", g("CHO_O_HIEN_NAY")],
        ["Họ và tên cha", g("HO_VA_TEN_CHA") or "—"],
        ["Họ và tên mẹ", g("HO_VA_TEN_ME") or "—"],
        ["Người giám hộ", g("HO_VA_TEN_NGUOI_GIAM_HO") or "—"],
    ]
    places_table = _field_table(places, [label_w, CONTENT_WIDTH - label_w], bold_first=False)

    qr_size = 3.3 * cm
    lookup_text = [
        _para("MÃ SỐ TRA CỨU HỌC BẠ", _HEADING),
        _para(book.lookup_code, _CODE),
        Spacer(1, 4),
        _para("Quét mã QR hoặc mở địa chỉ dưới đây để tra cứu và xác thực học bạ số:", _SMALL),
        Text(book.verify_link, _SMALL, color=NAVY),
    ]
    lookup = Table(
        [[lookup_text, _QrCode(book.verify_link, qr_size)]],
        colWidths=[CONTENT_WIDTH - qr_size - 0.8 * cm, qr_size + 0.8 * cm],
        style=TableStyle(
            [
                ("BOX", (0, 0), (-1, -1), 1.2, NAVY),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("ALIGN", (1, 0), (1, 0), "CENTER"),
                ("LEFTPADDING", (0, 0), (0, 0), 10),
                ("TOPPADDING", (0, 0), (-1, -1), 5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 5),
            ]
        ),
    )

    role = _str(g("CHUC_VU_GIAM_HIEU_KY_HOC_BA")) or "Hiệu trưởng"
    signer = [
        _para(_vn_long_date(book.issued_at, g("DIA_DANH_PHAT_HANH_HOC_BA")), _SIGN, "i"),
        _para(role.upper(), _SIGN_TITLE),
        _para("(Đã ký số và đóng dấu số trên học bạ số)", _LEGEND_CENTER),
        Spacer(1, 14),
        _para(g("TEN_GIAM_HIEU_KY_HOC_BA"), _SIGN, "b"),
    ]
    return [
        _para("HỌC BẠ", _TITLE),
        _para("THÔNG TIN CHUNG VỀ HỌC SINH", _TITLE),
        Spacer(1, 10),
        _field_table(facts, [label_w, value_w, label_w, value_w]),
        Spacer(1, -0.6),
        places_table,
        Spacer(1, 12),
        lookup,
        Spacer(1, 12),
        _para("QUÁ TRÌNH HỌC TẬP", _HEADING),
        _study_history(book),
        Spacer(1, 16),
        Table(
            [["", signer]],
            colWidths=[CONTENT_WIDTH / 2, CONTENT_WIDTH / 2],
            style=TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]),
        ),
    ]


_SIGN = ParagraphStyle("sign", parent=_BODY, fontSize=10.5, leading=13, alignment=TA_CENTER)
_SIGN_TITLE = ParagraphStyle(
    "signtitle", parent=_BODY, fontName=FONT_BOLD, fontSize=11.5, alignment=TA_CENTER
)
_LEGEND_CENTER = ParagraphStyle("legendc", parent=_LEGEND, alignment=TA_CENTER, spaceBefore=0)


def _levels_table(
    title: str,
    year: BookYear,
    groups: Sequence[tuple[str, Sequence[tuple[str, str]], str]],
) -> Grid:
    """``name | level`` rows (qualities or competences) by group, each group closed by the
    teacher's comment on it."""
    name_w = CONTENT_WIDTH * 0.62
    widths = [name_w, CONTENT_WIDTH - name_w]
    rows = [_header_row([title, "Mức đạt được"], widths)]
    for group_title, items, comment_field in groups:
        if group_title:
            rows.append(
                grid_row([group_title], widths, fonts=[FONT_BOLD], backgrounds=[_GROUP], span=True)
            )
        for field_name, label in items:
            level = year.summary(field_name)
            if level is None and field_name in ("NANG_LUC_CONG_NGHE", "NANG_LUC_TIN_HOC"):
                continue  # assessed from grade 3 only (HOCBA_SPEC §2)
            rows.append(
                grid_row(
                    [label, _str(level) or "—"],
                    widths,
                    fonts=[FONT_REGULAR, FONT_BOLD],
                    aligns=["LEFT", "CENTER"],
                )
            )
        comment = _str(year.summary(comment_field)) or "—"
        rows.append(
            grid_row(
                [Text(comment, _CELL, lead=(FONT_ITALIC, "Nhận xét:"))],
                widths,
                fonts=[FONT_REGULAR],
                span=True,
            )
        )
    return _grid(widths, rows)


_GROUP = colors.HexColor("#f4f6fa")


def _subjects_table(year: BookYear) -> Grid:
    widths = [1.1 * cm, 6.2 * cm, 2.3 * cm, 2.1 * cm]
    widths.append(CONTENT_WIDTH - sum(widths))
    head = [
        "TT",
        "Môn học và hoạt động giáo dục",
        _para("Mức đạt được", _CELL_HEAD),
        _para("Điểm KTĐK", _CELL_HEAD),
        "Nhận xét",
    ]
    rows = [_header_row(head, widths)]
    for index, subject in enumerate(year.doc.mon_hoc, start=1):
        comment = subject.get("NHAN_XET")  # not in format 1.0: left blank for the teacher
        rows.append(
            grid_row(
                [
                    str(index),
                    _cell(subject.get("TEN_MON_HOC"), widths[1]),
                    _str(subject.get("MUC_DAT_DUOC")),
                    _str(subject.get("DIEM_KIEM_TRA_DINH_KY")),
                    _cell(comment, widths[4]),
                ],
                widths,
                fonts=(FONT_REGULAR, FONT_REGULAR, FONT_BOLD, FONT_REGULAR, FONT_REGULAR),
                aligns=("CENTER", "LEFT", "CENTER", "CENTER", "LEFT"),
            )
        )
    return _grid(widths, rows, repeat_rows=1)


_CELL_HEAD = ParagraphStyle("cellhead", parent=_CELL, fontName=FONT_BOLD, alignment=TA_CENTER)


def _completion(year: BookYear) -> str:
    text = year.summary("NOI_DUNG_HOAN_THANH_CHUONG_TRINH")
    if text:
        return str(text)
    grade = year.general("MA_KHOI")
    if year.summary("DA_HOAN_THANH_CHUONG_TRINH_TIEU_HOC"):
        return "Hoàn thành chương trình tiểu học"
    parts = []
    done = year.summary("DA_HOAN_THANH_CHUONG_TRINH_LOP_HOC")
    if done is not None:
        parts.append(f"{'Hoàn thành' if done else 'Chưa hoàn thành'} chương trình lớp {grade}")
    if year.summary("DUOC_LEN_LOP") and isinstance(grade, int):
        parts.append(f"Được lên lớp {grade + 1}")
    return "; ".join(parts) or "—"


def _year_pages(year: BookYear, *, is_latest: bool) -> list[Flowable]:
    g = year.general
    label_w = 3.3 * cm
    value_w = CONTENT_WIDTH / 2 - label_w
    header = [
        ["Họ và tên", g("HO_VA_TEN"), "Lớp", g("TEN_LOP")],
        ["Chiều cao", _quantity(g("CHIEU_CAO"), "cm"), "Cân nặng", _quantity(g("CAN_NANG"), "kg")],
        [
            "Nghỉ có phép",
            _quantity(g("TONG_SO_BUOI_NGHI_CO_PHEP"), "buổi"),
            "Nghỉ không phép",
            _quantity(g("THONG_SO_BUOI_NGHI_KHONG_PHEP"), "buổi"),
        ],
    ]
    school = ", ".join(
        _str(g(name))
        for name in ("TEN_XA_PHUONG", "TEN_QUAN_HUYEN", "TEN_TINH_THANH_PHO")
        if g(name)
    )
    result_code = _str(year.summary("KET_QUA_XEP_LOAI"))
    awards = [
        award
        for award in map(year.summary, ("NOI_DUNG_KHEN_THUONG", "NOI_DUNG_KHEN_THUONG_DOT_XUAT"))
        if award
    ]
    story: list[Flowable] = [
        _para(f"NĂM HỌC {_str(g('TEN_NAM_HOC'))} — LỚP {_str(g('TEN_LOP'))}", _TITLE),
        _para(f"{_str(g('TEN_TRUONG'))} · {school}", _SUBTITLE),
        Spacer(1, 8),
        _field_table(header, [label_w, value_w, label_w, value_w]),
        _para("1. Các môn học và hoạt động giáo dục", _HEADING),
        _subjects_table(year),
        _para(
            f"Mức đạt được: {_legend(SUBJECT_LEVELS)}. "
            "Điểm KTĐK: điểm bài kiểm tra định kỳ cuối năm học (thang điểm 10).",
            _LEGEND,
        ),
        _para("2. Những phẩm chất chủ yếu", _HEADING),
        _levels_table("Phẩm chất", year, [("", QUALITIES, "NHAN_XET_PHAM_CHAT")]),
        _para(f"Mức đạt được: {_legend(QUALITY_LEVELS)}.", _LEGEND),
        PageBreak(),
        _para("3. Những năng lực cốt lõi", _HEADING),
        _levels_table(
            "Năng lực",
            year,
            [
                ("Năng lực chung", GENERAL_COMPETENCES, "NHAN_XET_NANG_LUC_CHUNG"),
                ("Năng lực đặc thù", SPECIFIC_COMPETENCES, "NHAN_XET_NANG_LUC_DAC_THU"),
            ],
        ),
        _para(f"Mức đạt được: {_legend(QUALITY_LEVELS)}.", _LEGEND),
        _para("4. Đánh giá kết quả giáo dục", _HEADING),
        _para(YEAR_RESULTS.get(result_code, result_code or "—"), _BODY, "b"),
    ]
    comment = year.summary("NHAN_XET_GVCN")
    if comment:
        lead = (FONT_ITALIC, "Nhận xét của giáo viên chủ nhiệm:")
        story.append(Text(_str(comment), _JUSTIFIED, lead=lead))
    story += [
        _para("5. Khen thưởng", _HEADING),
        Text("\n".join(f"– {' '.join(str(a).split())}" for a in awards) or "Không", _BODY),
        _para("6. Hoàn thành chương trình lớp học / chương trình tiểu học", _HEADING),
        _para(_completion(year), _BODY, "b"),
        Spacer(1, 14),
        CondPageBreak(_SignatureRow.HEIGHT + 4),
        _SignatureRow(year, is_latest=is_latest),
    ]
    return story


# ============================================================================ entry
def render_book(years: Sequence[bytes], *, verify_url: str) -> bytes:
    """Render a pupil's học bạ (cover, information page, two pages per year) as A4 PDF.

    ``years``: the issued record XMLs of one pupil, one per school year, oldest first
    (they are put in school-year order in any case). ``verify_url``: the public
    verification page; the QR code carries ``f"{verify_url}?ma={lookup_code}"`` with the
    latest year's lookup code. Raises :class:`RenderError` for no records, records of
    different pupils, two records of one school year, or a latest record without a lookup
    code (not issued). Same input, same bytes.
    """
    if not years:
        raise RenderError("Cần ít nhất một học bạ để in.")
    parsed = [read_book_year(bytes(xml)) for xml in years]
    _same_pupil(parsed)
    parsed.sort(key=lambda year: int(year.general("NAM_HOC") or 0))
    if not parsed[-1].lookup_code:
        raise RenderError("Học bạ năm học cuối chưa có mã số tra cứu (chưa phát hành).")
    register_fonts()
    book = _Book(years=parsed, verify_url=verify_url.rstrip("?"))

    out = io.BytesIO()
    canv = Canvas(out, pagesize=A4, invariant=True, pageCompression=1, lang="vi-VN")
    canv.setAuthor(_str(book.latest.general("TEN_TRUONG")))
    canv.setTitle(f"Học bạ tiểu học — {_str(book.latest.general('HO_VA_TEN'))}")
    canv.setSubject(f"{LOOKUP_SUBJECT_PREFIX}{book.lookup_code}")
    canv.setCreator("hocba — Học bạ số cấp tiểu học")
    canv.setProducer("hocba (ReportLab)")
    canv.setKeywords(["học bạ số", "tiểu học", book.lookup_code])
    story: list[Flowable] = [
        _Bookmark("bia", "Bìa học bạ"),
        PageBreak(nextTemplate="page"),
        _Bookmark("thong-tin", "Thông tin chung về học sinh"),
    ]
    story += _info_page(book)
    for index, year in enumerate(book.years):
        title = f"Năm học {_str(year.general('TEN_NAM_HOC'))} — lớp {_str(year.general('TEN_LOP'))}"
        story += [PageBreak(), _Bookmark(f"nam-hoc-{index + 1}", title)]
        story += _year_pages(year, is_latest=index == len(book.years) - 1)
    lay_out(
        canv,
        story,
        frame=(MARGIN_LEFT, MARGIN_BOTTOM, CONTENT_WIDTH, PAGE_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM),
        templates={"cover": partial(_draw_cover, book), "page": partial(_draw_page_frame, book)},
        first="cover",
    )
    canv.save()
    return out.getvalue()


def print_class(pdfs: Sequence[bytes]) -> bytes:
    """Merge many pupils' (signed) books into one PDF for the printer, in the given order.

    The merged file is for printing only: its pages are copies, so **it carries no valid
    signature** (the signatures, the lock and the attached XML stay in each pupil's own
    file). Signature stamps are kept as they appear: each page's annotation appearances
    (the principal's box and the seal) are flattened into the page content, so every
    printer and viewer prints them. Each book starts on an odd page (a blank page is
    inserted after a book with an odd page count), so duplex printing never puts two
    pupils on one sheet.
    """
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for pdf in pdfs:
        reader = PdfReader(io.BytesIO(pdf))
        for page in reader.pages:
            _flatten_annotations(writer.add_page(page))
        if len(reader.pages) % 2:
            box = reader.pages[-1].mediabox
            writer.add_blank_page(width=float(box.width), height=float(box.height))
    writer.add_metadata({"/Title": "Học bạ — bản in cả lớp", "/Producer": "hocba (pypdf)"})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _flatten_annotations(page: Any) -> None:
    """Draw each printable widget's normal appearance into the page content and drop the
    annotations (ISO 32000-1 §12.5.5: the appearance's ``/BBox`` mapped onto ``/Rect``)."""
    from pypdf.generic import ArrayObject, ContentStream, DictionaryObject, NameObject

    if "/Annots" not in page:
        return
    resources = DictionaryObject(page["/Resources"]) if "/Resources" in page else DictionaryObject()
    xobjects = DictionaryObject(resources["/XObject"]) if "/XObject" in resources else None
    xobjects = xobjects if xobjects is not None else DictionaryObject()
    kept = ArrayObject()
    operators = []
    for reference in page["/Annots"]:
        annotation = reference.get_object()
        appearances = annotation.get("/AP")
        normal = appearances.get_object().get("/N") if appearances is not None else None
        printable = int(annotation.get("/F", 0)) & 4
        if annotation.get("/Subtype") != "/Widget" or normal is None or not printable:
            kept.append(reference)
            continue
        stream = normal.get_object()
        rx1, ry1, rx2, ry2 = (float(v) for v in annotation["/Rect"])
        x1, x2, y1, y2 = min(rx1, rx2), max(rx1, rx2), min(ry1, ry2), max(ry1, ry2)
        bx1, by1, bx2, by2 = (float(v) for v in stream.get("/BBox", [0, 0, x2 - x1, y2 - y1]))
        a, b, c, d, e, f = (float(v) for v in stream.get("/Matrix", [1, 0, 0, 1, 0, 0]))
        corners = [(a * x + c * y + e, b * x + d * y + f) for x in (bx1, bx2) for y in (by1, by2)]
        tx1, tx2 = min(x for x, _ in corners), max(x for x, _ in corners)
        ty1, ty2 = min(y for _, y in corners), max(y for _, y in corners)
        sx = (x2 - x1) / ((tx2 - tx1) or 1)
        sy = (y2 - y1) / ((ty2 - ty1) or 1)
        name = f"/HocBaStamp{len(operators)}"
        xobjects[NameObject(name)] = normal
        operators.append(
            f"q {sx:.6f} 0 0 {sy:.6f} {x1 - tx1 * sx:.4f} {y1 - ty1 * sy:.4f} cm {name} Do Q"
        )
    if not operators:
        return
    resources[NameObject("/XObject")] = xobjects
    page[NameObject("/Resources")] = resources
    content = page.get_contents()
    data = content.get_data() if content is not None else b""
    stream = ContentStream(None, None)
    stream.set_data(b"q\n" + data + b"\nQ\n" + "\n".join(operators).encode("ascii") + b"\n")
    page.replace_contents(stream)
    if kept:
        page[NameObject("/Annots")] = kept
    else:
        del page["/Annots"]
