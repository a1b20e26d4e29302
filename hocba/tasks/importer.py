"""Import of the data schools already have: pupils and year-end results (CSDL ngành style).

The workbook (.xlsx) has two sheets, documented in ``docs/IMPORT.md`` and shipped as a
template in ``templates/hocba_mau_nhap_lieu.xlsx`` (``hocba import template`` writes it):

``HocSinh`` (required)
    one row per pupil: identity, class, and the TT27 year-end data (levels, scores,
    qualities, competences, comments, result, awards).
``Lop`` (optional)
    one row per class: grade and homeroom teacher (GVCN).

A CSV file holds the ``HocSinh`` sheet alone (UTF-8, with or without BOM).

Rules (HOCBA_SPEC §2, TT27):

* every problem is reported with its sheet, row, column and a Vietnamese message, and the
  whole import is refused: nothing of it is written (all-or-nothing, one transaction);
* importing the same file twice changes nothing (upserts write only what differs);
* a pupil without a 12-digit personal ID is imported and flagged (no digital record is
  made for them), while a malformed personal ID is an error;
* the year result entered by the school is kept as entered and compared with TT27
  Điều 9.2: a disagreement becomes a flag with its reason, never a silent change;
* data of a record that has already left the teacher's hands (reviewed or later) cannot be
  overwritten: the row is refused with what to do instead.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import math
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from hocba.errors import HocbaError
from hocba.models import tt27
from hocba.models.lifecycle import Actor
from hocba.models.tables import Pupil, Staff

PUPIL_SHEET = "HocSinh"
CLASS_SHEET = "Lop"
MAX_ROWS = 20_000
# What a workbook may make the reader hold: its parts inflated (a 20,000-row HocSinh sheet is
# ~60 MB of XML), and the dense grid of cells calamine builds for a sheet, from A1 to its
# farthest cell (20,001 rows of 150 columns; a cell at XFD1048576 would be 17 billion).
MAX_UNZIPPED = 150 << 20
MAX_PARTS = 2_000
MAX_CELLS = (MAX_ROWS + 1) * 150
# Lengths the database holds (varchar columns; a class name is in a unique btree index).
PUPIL_CODE_MAX = Pupil.__table__.c.pupil_code.type.length  # type: ignore[attr-defined]
USERNAME_MAX = Staff.__table__.c.username.type.length  # type: ignore[attr-defined]
CLASS_NAME_MAX = 50
CELL_MAX = 32_767  # characters in one cell: Excel's own limit
CSV_FIELD_MAX = 1 << 20  # what the CSV reader reads into one field before refusing the file


class ImportFailed(HocbaError):
    """The import was refused; ``problems`` lists every problem found (nothing was written)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(self.summary())

    def summary(self, limit: int = 20) -> str:
        lines = [f"Không nhập được: {len(self.problems)} lỗi, chưa ghi gì vào hệ thống."]
        lines += [str(p) for p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"… và {len(self.problems) - limit} lỗi khác.")
        return "\n".join(lines)


@dataclass(frozen=True)
class Problem:
    """One problem: where (sheet, 1-based row as Excel shows it, column header) and what."""

    sheet: str
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = [f"Trang «{self.sheet}»"]
        if self.row is not None:
            where.append(f"dòng {self.row}")
        if self.column:
            where.append(f"cột «{_brief(self.column)}»")
        return ", ".join(where) + f": {self.message}"


class _CellError(ValueError):
    pass


def _brief(value: str, limit: int = 60) -> str:
    """A user's value as quoted in a message: a long one is cut (a 100,000-character cell
    must not make a 100,000-character message)."""
    value = value.strip()
    return (
        value
        if len(value) <= limit
        else f"{value[: limit - 12]}…{value[-10:]} ({len(value)} ký tự)"
    )


# ---------------------------------------------------------------------------------------
# Column definitions: one table, used to read, to write the template and the demo files
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    parse: Callable[[Any], Any]
    required: bool = False
    width: int = 14
    choices: tuple[str, ...] = ()
    text_format: bool = False


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", s)).strip().casefold()


_FORBIDDEN = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    s = unicodedata.normalize("NFC", str(v)).strip()
    if len(s) > CELL_MAX:
        raise _CellError(
            f"dài {len(s)} ký tự, quá {CELL_MAX} ký tự một ô (giới hạn của Excel): «{_brief(s)}»"
        )
    bad = _FORBIDDEN.search(s)
    if bad:  # NUL and control characters: PostgreSQL and the record XML refuse them
        raise _CellError(
            f"có ký tự không hợp lệ (mã U+{ord(bad.group()):04X}); hãy xóa ký tự đó trong ô"
        )
    return s or None


def _required_text(v: Any) -> str:
    s = _text(v)
    if s is None:
        raise _CellError("bắt buộc, không được để trống")
    return s


def _at_most(length: int, parse: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    """``parse``, refusing a text longer than the database column holds."""

    def wrapped(v: Any) -> str | None:
        s = parse(v)
        if s is not None and len(s) > length:
            raise _CellError(f"dài quá {length} ký tự (nhận được: «{_brief(s)}»)")
        return s

    return wrapped


DATE_RANGE = (dt.date(1900, 1, 1), dt.date(2100, 12, 31))


def _date(v: Any) -> dt.date | None:
    d = _any_date(v)
    # Excel's day 0 (30/12/1899) is what a NaN or a zero in a date cell reads as
    if d is not None and not DATE_RANGE[0] <= d <= DATE_RANGE[1]:
        raise _CellError(f"ngày {d:%d/%m/%Y} nằm ngoài khoảng 1900-2100; hãy nhập lại ngày")
    return d


def _any_date(v: Any) -> dt.date | None:
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    s = str(v).strip()
    for fmt in ("%d/%m/%Y", "%d-%m-%Y", "%Y-%m-%d", "%d.%m.%Y"):
        try:
            return dt.datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    raise _CellError(
        f"ngày không hợp lệ: «{_brief(s)}» (dùng dạng ngày/tháng/năm, ví dụ 05/09/2016)"
    )


def _required_date(v: Any) -> dt.date:
    d = _date(v)
    if d is None:
        raise _CellError("bắt buộc, không được để trống")
    return d


def _gender(v: Any) -> str:
    s = _required_text(v)
    n = _norm(s)
    if n in ("nam", "m", "male"):
        return "Nam"
    if n in ("nữ", "nu", "f", "female"):
        return "Nữ"
    raise _CellError(f"giới tính phải là «Nam» hoặc «Nữ» (nhận được: «{_brief(s)}»)")


def mask_id(value: str) -> str:
    """A personal ID shown only by its last 4 digits (HOCBA_SPEC §7)."""
    return "••••••••" + value[-4:]


def _cccd(v: Any) -> str | None:
    if isinstance(v, float) and not math.isfinite(v):
        raise _CellError("mã định danh cá nhân phải gồm đúng 12 chữ số")
    if isinstance(v, int | float) and not isinstance(v, bool):
        # a number cell lost its leading zero(s): the ID is 12 digits, province code first
        v = f"{int(v):012d}"
    s = _text(v)
    if s is None:
        return None
    s = s.replace(" ", "")
    if not re.fullmatch(r"[0-9]{12}", s):
        raise _CellError(f"mã định danh cá nhân phải gồm đúng 12 chữ số (nhận được {len(s)} ký tự)")
    return s


def _grade(v: Any) -> int:
    s = _required_text(v)
    if s not in {"1", "2", "3", "4", "5"}:
        raise _CellError(f"khối phải là một số từ 1 đến 5 (nhận được: «{_brief(s)}»)")
    return int(s)


def _count(v: Any) -> int | None:
    s = _text(v)
    if s is None:
        return None
    if not re.fullmatch(r"[0-9]{1,3}", s):
        raise _CellError(f"phải là số nguyên không âm (nhận được: «{_brief(s)}»)")
    return int(s)


def _measure(lo: float, hi: float, unit: str) -> Callable[[Any], float | None]:
    def parse(v: Any) -> float | None:
        s = _text(v)
        if s is None:
            return None
        try:
            x = round(float(s.replace(",", ".")), 4)
        except ValueError:
            raise _CellError(f"phải là một số (nhận được: «{_brief(s)}»)") from None
        if not lo <= x <= hi:
            raise _CellError(f"phải trong khoảng {lo:g}-{hi:g} {unit} (nhận được: «{_brief(s)}»)")
        return x

    return parse


def _optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def wrapped(v: Any) -> Any:
        s = _text(v)
        if s is None:
            return None
        try:
            return parse(v)
        except tt27.Tt27Error as exc:
            raise _CellError(exc.message.replace(s, _brief(s))) from None

    return wrapped


def _result(v: Any) -> str | None:
    return _optional(tt27.parse_year_result)(v)


def all_subjects() -> list[tt27.Subject]:
    """Every subject of grades 1-5, each once, in the printed order."""
    seen: dict[str, tt27.Subject] = {}
    for g in tt27.GRADES:
        for s in tt27.subjects_for_grade(g):
            seen.setdefault(s.code, s)
    return list(seen.values())


def all_traits() -> list[tt27.Trait]:
    return [*tt27.QUALITIES, *tt27.GENERAL_COMPETENCES, *tt27.SPECIFIC_COMPETENCES]


def _pupil_columns() -> list[Column]:
    cols = [
        Column(
            "pupil_code",
            "Mã học sinh",
            _at_most(PUPIL_CODE_MAX, _required_text),
            required=True,
            text_format=True,
        ),
        Column("full_name", "Họ và tên", _required_text, required=True, width=26),
        Column("birth_date", "Ngày sinh", _required_date, required=True),
        Column("gender", "Giới tính", _gender, required=True, choices=("Nam", "Nữ")),
        Column("cccd", "Mã định danh", _cccd, width=16, text_format=True),
        Column("grade", "Khối", _grade, required=True, width=6, choices=("1", "2", "3", "4", "5")),
        Column(
            "class_name", "Lớp", _at_most(CLASS_NAME_MAX, _required_text), required=True, width=8
        ),
        Column("ethnicity", "Dân tộc", _text),
        Column("nationality", "Quốc tịch", _text),
        Column("birthplace", "Nơi sinh", _text, width=24),
        Column("hometown", "Quê quán", _text, width=24),
        Column("address", "Chỗ ở hiện nay", _text, width=30),
        Column("father_name", "Họ tên cha", _text, width=22),
        Column("mother_name", "Họ tên mẹ", _text, width=22),
        Column("guardian_name", "Người giám hộ", _text, width=22),
        Column("register_no", "Số đăng bộ", _text, text_format=True),
        Column("enrolled_on", "Ngày vào trường", _date),
        Column("height_cm", "Chiều cao (cm)", _measure(50, 200, "cm")),
        Column("weight_kg", "Cân nặng (kg)", _measure(8, 120, "kg")),
        Column("absent_excused", "Nghỉ có phép", _count),
        Column("absent_unexcused", "Nghỉ không phép", _count),
    ]
    for s in all_subjects():
        cols.append(
            Column(
                f"subj:{s.code}:level",
                f"{s.name} - Mức",
                _optional(tt27.parse_subject_level),
                choices=tt27.SUBJECT_LEVELS,
            )
        )
        if any(
            x.has_test for g in s.grades for x in tt27.subjects_for_grade(g) if x.code == s.code
        ):
            cols.append(
                Column(f"subj:{s.code}:score", f"{s.name} - Điểm", _optional(tt27.parse_score))
            )
        cols.append(Column(f"subj:{s.code}:comment", f"{s.name} - Nhận xét", _text, width=24))
    for t in all_traits():
        cols.append(
            Column(
                f"trait:{t.code}",
                t.name,
                _optional(tt27.parse_quality_level),
                choices=tt27.QUALITY_LEVELS,
            )
        )
    cols += [
        Column("comment_qualities", "Nhận xét phẩm chất", _text, width=30),
        Column("comment_general", "Nhận xét năng lực chung", _text, width=30),
        Column("comment_specific", "Nhận xét năng lực đặc thù", _text, width=30),
        Column(
            "entered_result",
            "Kết quả giáo dục",
            _result,
            choices=tuple(r.value for r in tt27.YearResult),
        ),
        Column("outstanding_progress", "Tiến bộ vượt bậc", _text),
        Column("award", "Khen thưởng", _text, width=26),
        Column("award_adhoc", "Khen thưởng đột xuất", _text, width=26),
        Column("comment_homeroom", "Nhận xét của GVCN", _text, width=30),
    ]
    return cols


PUPIL_COLUMNS: list[Column] = _pupil_columns()
CLASS_COLUMNS: list[Column] = [
    Column("class_name", "Lớp", _at_most(CLASS_NAME_MAX, _required_text), required=True, width=8),
    Column("grade", "Khối", _grade, required=True, width=6),
    Column("teacher_name", "Họ tên GVCN", _text, width=26),
    Column("teacher_cccd", "Mã định danh GVCN", _cccd, width=18, text_format=True),
    Column("teacher_username", "Tên đăng nhập GVCN", _at_most(USERNAME_MAX, _text), width=20),
    Column("teacher_email", "Email GVCN", _text, width=26),
]


# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------


@dataclass
class ParsedImport:
    """A whole file, validated cell by cell (no database yet)."""

    pupils: list[dict[str, Any]] = field(default_factory=list)  # each has "_row"
    classes: list[dict[str, Any]] = field(default_factory=list)
    sha256: str = ""
    filename: str = ""


def _parse_sheet(
    sheet: str, rows: Iterable[Sequence[Any]], columns: list[Column], problems: list[Problem]
) -> list[dict[str, Any]]:
    it = iter(rows)
    header_row = next(it, None)
    if header_row is None:
        problems.append(Problem(sheet, 1, None, "trang tính trống, thiếu dòng tiêu đề"))
        return []
    before = len(problems)  # another sheet's problems do not stop this one being read
    by_header = {_norm(c.header): c for c in columns}
    positions: dict[int, Column] = {}
    for i, h in enumerate(header_row):
        if h is None or not str(h).strip():
            continue
        col = by_header.get(_norm(str(h)))
        if col is None:
            problems.append(
                Problem(
                    sheet,
                    1,
                    str(h),
                    "cột không có trong mẫu nhập liệu, hãy xóa cột này hoặc sửa tên cột theo mẫu",
                )
            )
        elif col in positions.values():
            problems.append(Problem(sheet, 1, str(h), "cột bị lặp lại"))
        else:
            positions[i] = col
    present = set(positions.values())
    for c in columns:
        if c.required and c not in present:
            problems.append(Problem(sheet, 1, c.header, "thiếu cột bắt buộc"))
    if len(problems) > before:
        return []
    out: list[dict[str, Any]] = []
    for rowno, row in enumerate(it, start=2):
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in row):
            continue
        if len(out) >= MAX_ROWS:
            problems.append(Problem(sheet, rowno, None, f"quá {MAX_ROWS} dòng; hãy chia tệp"))
            break
        rec: dict[str, Any] = {"_row": rowno}
        for i, col in positions.items():
            value = row[i] if i < len(row) else None
            try:
                rec[col.key] = col.parse(value)
            except _CellError as exc:
                problems.append(Problem(sheet, rowno, col.header, str(exc)))
            except tt27.Tt27Error as exc:
                problems.append(Problem(sheet, rowno, col.header, exc.message))
        for c in columns:
            rec.setdefault(c.key, None)
        out.append(rec)
    return out


class _Panic(Exception):
    """calamine panicked reading this sheet."""


def _is_panic(exc: BaseException) -> bool:
    """A Rust panic inside calamine (pyo3's PanicException, a BaseException: ``except
    Exception`` lets it through), e.g. for a date serial beyond any calendar."""
    return type(exc).__name__ == "PanicException"


def _sheet_rows(wb: Any, name: str) -> list[list[Any]]:
    """All cells of a sheet (leading blank rows kept so row numbers match Excel's); a
    sheet calamine cannot read is a clear error, never a crash."""
    try:
        return wb.get_sheet_by_name(name).to_python(skip_empty_area=False)
    except BaseException as exc:
        if _is_panic(exc):
            raise _Panic(name) from None
        if not isinstance(exc, Exception):
            raise  # KeyboardInterrupt, SystemExit: not the file's fault
        # CalamineError and friends: a damaged or odd workbook
        raise ImportFailed(
            [
                Problem(
                    name,
                    None,
                    None,
                    f"không đọc được trang tính ({exc.__class__.__name__}); "
                    "hãy mở tệp bằng Excel, lưu lại dạng .xlsx rồi nhập lại",
                )
            ]
        ) from None


_CELL = re.compile(rb"<(?:[\w.-]+:)?c(?:\s[^>]*?)?(?<!/)>")  # a cell with content
_CELL_REF = re.compile(
    rb"<(?:[\w.-]+:)?c\s[^>]*?\br=[\"']([A-Z]{1,8})([0-9]{1,15})[\"'][^>]*?(?<!/)>"
)
_ROW = re.compile(rb"<(?:[\w.-]+:)?row[\s/>]")
_ROW_REF = re.compile(rb"<(?:[\w.-]+:)?row\s[^>]*?\br=[\"']([0-9]{1,15})[\"']")
# Quick look first: in a file where every cell starts <c r="..., no reference past column CZ
# (104) nor row 19,999 means a grid within MAX_CELLS; only other files are scanned cell by cell.
_FAR_REF = re.compile(rb' r="(?:[D-Z][A-Z]|[A-Z]{3}|[A-Z]{0,3}(?:[0-9]{6}|[2-9][0-9]{4}))')


def _column_number(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ch - 64
    return n


def _grid_size(sheet_xml: bytes) -> tuple[int, int]:
    """An upper bound of the rows and columns of the dense grid calamine builds for this
    worksheet: its farthest cell with content (cells without a reference counted as if
    they were each one column further)."""
    cells = sheet_xml.count(b"<c ") + sheet_xml.count(b"<c>")
    if cells == sheet_xml.count(b'<c r="') and not _FAR_REF.search(sheet_xml):
        return 19_999, 104  # the usual file (Excel, LibreOffice, openpyxl): ~0.1 s for 20 MB
    refs = _CELL_REF.findall(sheet_xml)
    rows = max((int(r) for _, r in refs), default=0)
    cols = max((_column_number(c) for c in {c for c, _ in refs}), default=0)
    unplaced = len(_CELL.findall(sheet_xml)) - len(refs)
    if unplaced > 0:  # cells without r="": after the previous one, on the current row
        row_refs = [int(r) for r in _ROW_REF.findall(sheet_xml)]
        rows = max(rows, *row_refs, 0) + len(_ROW.findall(sheet_xml)) - len(row_refs)
        cols += unplaced
    return rows, cols


_NUMBER_CELL = re.compile(
    rb"<((?:[\w.-]+:)?c)(\s[^>]*?)?>\s*<((?:[\w.-]+:)?v)>\s*([^<]*?)\s*</\3>\s*</\1>"
)
_TYPE_OR_STYLE = re.compile(rb"""\s[ts]=(?:"[^"]*"|'[^']*')""")


def _as_text_if_no_date(m: re.Match[bytes]) -> bytes:
    """A cell whose number no calendar reaches (calamine panics turning it into a date)
    rewritten as an inline text cell: the column's reader then refuses it by row and column."""
    try:
        value = float(m.group(4))
    except ValueError:
        return m.group()
    if value >= -1e10:  # NaN and +inf too: calamine reads them without panicking
        return m.group()
    attrs = _TYPE_OR_STYLE.sub(b"", m.group(2) or b"")
    return b'<c%s t="inlineStr"><is><t>%s</t></is></c>' % (attrs, m.group(4))


def _checked_xlsx(data: bytes, filename: str, defuse: bool = False) -> bytes:
    """The workbook re-packed for calamine from parts inflated here, within limits: a zip
    bomb or a cell far away (XFD1048576) is refused before calamine allocates for it (a
    failed allocation in Rust aborts the whole process). A part that cannot be inflated is
    passed on empty, so that calamine names the sheet it belongs to. ``defuse``: numbers
    that make calamine panic are rewritten as text (see :func:`_as_text_if_no_date`)."""

    def refuse(message: str) -> ImportFailed:
        return ImportFailed([Problem(filename, None, None, message)])

    parts: dict[str, bytes] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = [i for i in z.infolist() if not i.is_dir()]
            declared = sum(i.file_size for i in infos)
            if len(infos) > MAX_PARTS or declared > MAX_UNZIPPED:
                raise refuse(
                    f"tệp Excel quá lớn khi giải nén ({declared >> 20} MB, {len(infos)} "
                    f"phần; tối đa {MAX_UNZIPPED >> 20} MB); hãy chia tệp hoặc lưu lại "
                    "dạng .xlsx theo mẫu"
                )
            for info in infos:
                try:
                    with z.open(info) as f:
                        parts[info.filename] = f.read(MAX_UNZIPPED + 1)
                except Exception:  # a CRC error, an unknown compression, a password...
                    parts[info.filename] = b""
    except ImportFailed:
        raise
    except Exception as exc:  # not a zip at all
        raise refuse(
            f"không đọc được tệp Excel ({exc.__class__.__name__}); "
            "hãy lưu lại tệp dạng .xlsx theo mẫu"
        ) from None
    if sum(map(len, parts.values())) > MAX_UNZIPPED:
        raise refuse(f"tệp Excel quá lớn khi giải nén (tối đa {MAX_UNZIPPED >> 20} MB)")
    for name, body in parts.items():
        if b"sheetData" not in body:
            continue
        if defuse:
            body = parts[name] = _NUMBER_CELL.sub(_as_text_if_no_date, body)
        rows, cols = _grid_size(body)
        if rows * cols > MAX_CELLS:
            raise refuse(
                f"một trang tính có ô ở quá xa (đến dòng {rows}, cột {cols}): vùng dữ liệu "
                f"quá lớn; hãy xóa các dòng, cột thừa ở cuối trang rồi lưu lại"
            )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name, body in parts.items():
            z.writestr(name, body)
    return out.getvalue()


def _workbook_rows(checked: bytes, filename: str) -> tuple[list[list[Any]], list[list[Any]] | None]:
    """The rows of the HocSinh sheet and of the Lop sheet (None: no such sheet)."""
    # python-calamine (Rust) reads a 5,000-row sheet ~10x faster than openpyxl
    from python_calamine import CalamineWorkbook

    try:
        wb = CalamineWorkbook.from_filelike(io.BytesIO(checked))
    except BaseException as exc:  # a damaged or non-Excel file
        if not isinstance(exc, Exception) and not _is_panic(exc):
            raise
        raise ImportFailed(
            [
                Problem(
                    filename,
                    None,
                    None,
                    f"không đọc được tệp Excel ({exc.__class__.__name__}); "
                    "hãy lưu lại tệp dạng .xlsx theo mẫu",
                )
            ]
        ) from None
    names = {_norm(n): n for n in wb.sheet_names}
    if _norm(PUPIL_SHEET) not in names:
        raise ImportFailed(
            [
                Problem(
                    PUPIL_SHEET,
                    None,
                    None,
                    f"không tìm thấy trang tính «{PUPIL_SHEET}» "
                    f"(tệp có: {', '.join(wb.sheet_names)}); hãy dùng mẫu "
                    "nhập liệu của hocba",
                )
            ]
        )
    pupils = _sheet_rows(wb, names[_norm(PUPIL_SHEET)])
    classes = _sheet_rows(wb, names[_norm(CLASS_SHEET)]) if _norm(CLASS_SHEET) in names else None
    return pupils, classes


def read_file(path: Path) -> ParsedImport:
    """Read and validate a workbook or CSV file; raise :class:`ImportFailed` on any problem."""
    data = path.read_bytes()
    problems: list[Problem] = []
    parsed = ParsedImport(sha256=hashlib.sha256(data).hexdigest(), filename=path.name)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            textdata = data.decode("utf-8-sig", errors="strict")
        except UnicodeDecodeError:
            raise ImportFailed(
                [
                    Problem(
                        path.name,
                        None,
                        None,
                        "tệp CSV không ở dạng UTF-8; trong Excel hãy chọn "
                        "Lưu dưới dạng «CSV UTF-8»",
                    )
                ]
            ) from None
        # a field up to CSV_FIELD_MAX is read, and refused as a cell (by row and column) when
        # longer than a cell holds; the module's limit (128 KiB) only ever grows here
        csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_MAX))
        reader = csv.reader(io.StringIO(textdata, newline=""))
        try:
            parsed.pupils = _parse_sheet(PUPIL_SHEET, reader, PUPIL_COLUMNS, problems)
        except csv.Error as exc:  # a field over CSV_FIELD_MAX, a NUL in old Pythons...
            what = (
                f"có ô dài quá {CSV_FIELD_MAX >> 20} MB"
                if "field larger" in str(exc)
                else f"tệp CSV hỏng ({exc})"
            )
            raise ImportFailed(
                [
                    Problem(
                        PUPIL_SHEET,
                        reader.line_num or None,
                        None,
                        f"{what}; hãy lưu lại dạng «CSV UTF-8» từ Excel theo mẫu",
                    )
                ]
            ) from None
    elif suffix in (".xlsx", ".xlsm"):
        try:
            pupil_rows, class_rows = _workbook_rows(_checked_xlsx(data, path.name), path.name)
        except _Panic:  # a date serial beyond any calendar: read it as the text it is
            pupil_rows, class_rows = _workbook_rows(
                _checked_xlsx(data, path.name, defuse=True), path.name
            )
        parsed.pupils = _parse_sheet(PUPIL_SHEET, pupil_rows, PUPIL_COLUMNS, problems)
        if class_rows is not None:
            parsed.classes = _parse_sheet(CLASS_SHEET, class_rows, CLASS_COLUMNS, problems)
    else:
        raise ImportFailed(
            [Problem(path.name, None, None, "chỉ nhận tệp .xlsx hoặc .csv theo mẫu nhập liệu")]
        )
    _check_consistency(parsed, problems)
    if problems:
        raise ImportFailed(problems)
    return parsed


def _check_consistency(parsed: ParsedImport, problems: list[Problem]) -> None:
    """Checks across rows: duplicates, class grades, subjects of the pupil's grade."""
    seen_code: dict[str, int] = {}
    seen_cccd: dict[str, int] = {}
    class_grade: dict[str, tuple[int, str, int]] = {}
    for c in parsed.classes:
        name = c["class_name"]
        if (c["teacher_cccd"] or c["teacher_email"]) and not c["teacher_username"]:
            problems.append(
                Problem(
                    CLASS_SHEET,
                    c["_row"],
                    "Tên đăng nhập GVCN",
                    "cần tên đăng nhập cho GVCN (không dùng mã định danh làm tên đăng nhập)",
                )
            )
        if c["teacher_username"] and not c["teacher_name"]:
            problems.append(Problem(CLASS_SHEET, c["_row"], "Họ tên GVCN", "cần họ tên GVCN"))
        if name in class_grade and class_grade[name][1] == CLASS_SHEET:
            problems.append(
                Problem(
                    CLASS_SHEET,
                    c["_row"],
                    "Lớp",
                    f"lớp {name} bị lặp lại (đã có ở dòng {class_grade[name][2]})",
                )
            )
        class_grade[name] = (c["grade"], CLASS_SHEET, c["_row"])
    for p in parsed.pupils:
        row = p["_row"]
        code, cccd = p["pupil_code"], p["cccd"]
        if code in seen_code:
            problems.append(
                Problem(
                    PUPIL_SHEET,
                    row,
                    "Mã học sinh",
                    f"học sinh {code} bị lặp lại (đã có ở dòng {seen_code[code]})",
                )
            )
        seen_code.setdefault(code, row)
        if cccd:
            if cccd in seen_cccd:
                problems.append(
                    Problem(
                        PUPIL_SHEET,
                        row,
                        "Mã định danh",
                        f"mã định danh {mask_id(cccd)} trùng với dòng {seen_cccd[cccd]}",
                    )
                )
            seen_cccd.setdefault(cccd, row)
        name, grade = p["class_name"], p["grade"]
        if name and grade:
            known = class_grade.get(name)
            if known and known[0] != grade:
                where = "trang «Lop»" if known[1] == CLASS_SHEET else f"dòng {known[2]}"
                problems.append(
                    Problem(
                        PUPIL_SHEET,
                        row,
                        "Khối",
                        f"lớp {name} là khối {known[0]} ({where}), không phải khối {grade}",
                    )
                )
            class_grade.setdefault(name, (grade, PUPIL_SHEET, row))
        if grade:
            allowed = {s.code for s in tt27.subjects_for_grade(grade)}
            by_code = {s.code: s for s in tt27.subjects_for_grade(grade)}
            for s in all_subjects():
                has_data = any(p.get(f"subj:{s.code}:{k}") is not None for k in ("level", "score"))
                if has_data and s.code not in allowed:
                    problems.append(
                        Problem(
                            PUPIL_SHEET,
                            row,
                            f"{s.name} - Mức",
                            f"khối {grade} không học môn {s.name}; hãy để trống",
                        )
                    )
                elif (
                    p.get(f"subj:{s.code}:score") is not None
                    and s.code in by_code
                    and not by_code[s.code].has_test
                ):
                    problems.append(
                        Problem(
                            PUPIL_SHEET,
                            row,
                            f"{s.name} - Điểm",
                            f"khối {grade} không kiểm tra định kỳ môn {s.name}; "
                            "hãy để trống ô điểm",
                        )
                    )


# ---------------------------------------------------------------------------------------
# From a row to the record content (TT27)
# ---------------------------------------------------------------------------------------


def summary_of(p: dict[str, Any]) -> dict[str, Any]:
    """The TT27 content, computed result, flags and cohort of one validated row."""
    grade: int = p["grade"]
    subjects: dict[str, dict[str, Any]] = {}
    for s in tt27.subjects_for_grade(grade):
        level, score = p.get(f"subj:{s.code}:level"), p.get(f"subj:{s.code}:score")
        comment = p.get(f"subj:{s.code}:comment")
        if level is None and score is None and comment is None and not s.compulsory:
            continue  # elective not taken
        subjects[s.code] = {"level": level, "score": score, "comment": comment}
    traits = {t.code: p.get(f"trait:{t.code}") for t in tt27.traits_for_grade(grade)}
    assessment = tt27.YearAssessment(
        grade=grade,
        subjects={c: (v["level"], v["score"]) for c, v in subjects.items()},
        traits=traits,
    )
    entered = p.get("entered_result")
    computed = tt27.year_result(assessment)
    flags = [
        {"code": f.code, "message": f.message}
        for f in tt27.check(assessment, entered.value if entered else None)
    ]
    content = {
        "subjects": subjects,
        "traits": traits,
        "comments": {
            "qualities": p.get("comment_qualities"),
            "general": p.get("comment_general"),
            "specific": p.get("comment_specific"),
            "homeroom": p.get("comment_homeroom"),
        },
        "awards": {
            "award": p.get("award"),
            "adhoc": p.get("award_adhoc"),
            "outstanding_progress": p.get("outstanding_progress"),
        },
        "health": {"height_cm": p.get("height_cm"), "weight_kg": p.get("weight_kg")},
        "absences": {"excused": p.get("absent_excused"), "unexcused": p.get("absent_unexcused")},
    }
    return {
        "content": content,
        "entered_result": entered.value if entered else None,
        "computed_result": computed.value,
        "flags": flags,
        "cohort": "august" if tt27.is_august_cohort(computed) else "june",
    }


# ---------------------------------------------------------------------------------------
# Writing to the database: one transaction, bulk statements
# ---------------------------------------------------------------------------------------


@dataclass
class ImportReport:
    school_code: str
    year: str
    rows: int
    classes_changed: int = 0
    pupils_changed: int = 0
    enrolments_changed: int = 0
    summaries_changed: int = 0
    without_id: int = 0
    flagged: int = 0

    @property
    def changed(self) -> int:
        return (
            self.classes_changed
            + self.pupils_changed
            + self.enrolments_changed
            + self.summaries_changed
        )

    def text_vi(self) -> str:
        if not self.changed:
            return (
                f"Trường {self.school_code}, năm học {self.year}: {self.rows} dòng, "
                "không có thay đổi (tệp này đã được nhập)."
            )
        return (
            f"Trường {self.school_code}, năm học {self.year}: đã nhập {self.rows} dòng "
            f"({self.pupils_changed} học sinh mới/cập nhật, {self.summaries_changed} kết quả "
            f"cuối năm mới/cập nhật, {self.classes_changed} lớp). {self.without_id} học sinh "
            f"chưa có mã định danh; {self.flagged} học sinh có cảnh báo theo TT27."
        )


def school_year_id(session: Session, name: str) -> int:
    """The id of school year ``name`` ("2024-2025"), created if new."""
    m = re.fullmatch(r"(\d{4})-(\d{4})", name.strip())
    if not m or int(m.group(2)) != int(m.group(1)) + 1:
        raise ImportFailed(
            [Problem("-", None, None, f"năm học «{name}» không hợp lệ (ví dụ đúng: 2024-2025)")]
        )
    conn = session.connection()
    # no conflict target: two imports creating the year at once collide on whichever of
    # its two unique keys (start_year, name) the later one reaches first, and either
    # means the year exists
    conn.execute(
        text("INSERT INTO school_year (start_year, name) VALUES (:y, :n) ON CONFLICT DO NOTHING"),
        {"y": int(m.group(1)), "n": name.strip()},
    )
    return int(
        conn.scalar(
            text("SELECT id FROM school_year WHERE start_year = :y"), {"y": int(m.group(1))}
        )
    )


def apply(
    session: Session, parsed: ParsedImport, school_code: str, year: str, actor: Actor
) -> ImportReport:
    """Write a validated import in the caller's transaction; raise before writing anything
    when the data conflicts with what the database holds."""
    conn = session.connection()
    school = conn.execute(
        text("SELECT id, code FROM school WHERE code = :c"), {"c": school_code}
    ).one_or_none()
    if school is None:
        raise ImportFailed(
            [Problem("-", None, None, f"không có trường mã {school_code} trong hệ thống")]
        )
    year_id = school_year_id(session, year)
    report = ImportReport(school_code, year, rows=len(parsed.pupils))
    summaries = [summary_of(p) for p in parsed.pupils]
    _check_against_database(session, parsed, summaries, school.id, year_id)

    # homeroom teachers and classes
    class_rows = _class_rows(parsed)
    teachers = [c for c in class_rows if c.get("teacher_username")]
    if teachers:
        conn.execute(
            text("""
                INSERT INTO staff (username, full_name, cccd, email, active)
                VALUES (:u, :n, :cccd, :e, true)
                ON CONFLICT (username) DO NOTHING  -- a file never rewrites an existing account
            """),
            [
                {
                    "u": c["teacher_username"],
                    "n": c["teacher_name"] or c["teacher_username"],
                    "cccd": c["teacher_cccd"],
                    "e": c["teacher_email"],
                }
                for c in teachers
            ],
        )
        conn.execute(
            text("""
                INSERT INTO staff_role (staff_id, role, school_id, delegated, valid_from)
                SELECT s.id, 'homeroom_teacher', :school, false, DATE '2000-01-01'
                FROM staff s WHERE s.username = :u AND NOT EXISTS (
                    SELECT 1 FROM staff_role r WHERE r.staff_id = s.id
                    AND r.role = 'homeroom_teacher' AND r.school_id = :school)
            """),
            [{"u": c["teacher_username"], "school": school.id} for c in teachers],
        )
    for c in class_rows:
        res = conn.execute(
            text("""
                INSERT INTO school_class (school_id, school_year_id, name, grade,
                                          homeroom_teacher_id)
                VALUES (:school, :year, :name, :grade,
                        (SELECT id FROM staff WHERE username = :u))
                ON CONFLICT (school_id, school_year_id, name) DO UPDATE
                SET grade = excluded.grade,
                    homeroom_teacher_id = COALESCE(excluded.homeroom_teacher_id,
                                                   school_class.homeroom_teacher_id)
                WHERE (school_class.grade, school_class.homeroom_teacher_id) IS DISTINCT FROM
                      (excluded.grade, COALESCE(excluded.homeroom_teacher_id,
                                                school_class.homeroom_teacher_id))
            """),
            {
                "school": school.id,
                "year": year_id,
                "name": c["class_name"],
                "grade": c["grade"],
                "u": c.get("teacher_username"),
            },
        )
        report.classes_changed += res.rowcount

    # pupils, enrolments, year summaries through a staging table (COPY, then set-based upserts)
    conn.execute(
        text("""
        CREATE TEMP TABLE stage_import (
            pupil_code text, cccd text, full_name text, gender text, birth_date date,
            birthplace text, hometown text, address text, ethnicity text, nationality text,
            father_name text, mother_name text, guardian_name text, class_name text,
            register_no text, enrolled_on date, content jsonb, entered_result text,
            computed_result text, cohort text, flags jsonb
        ) ON COMMIT DROP
    """)
    )
    cols = (
        "pupil_code",
        "cccd",
        "full_name",
        "gender",
        "birth_date",
        "birthplace",
        "hometown",
        "address",
        "ethnicity",
        "nationality",
        "father_name",
        "mother_name",
        "guardian_name",
        "class_name",
        "register_no",
        "enrolled_on",
    )
    driver = conn.connection.driver_connection
    assert driver is not None  # an open connection's psycopg connection
    cur = driver.cursor()
    with cur.copy(
        f"COPY stage_import ({', '.join(cols)}, content, entered_result, "
        "computed_result, cohort, flags) FROM STDIN"
    ) as copy:
        for p, s in zip(parsed.pupils, summaries, strict=True):
            copy.write_row(
                (
                    *(p[c] for c in cols),
                    json.dumps(s["content"], ensure_ascii=False),
                    s["entered_result"],
                    s["computed_result"],
                    s["cohort"],
                    json.dumps(s["flags"], ensure_ascii=False),
                )
            )
    pcols = cols[:13]
    report.pupils_changed = conn.execute(
        text(f"""
        INSERT INTO pupil ({", ".join(pcols)})
        SELECT {", ".join(pcols)} FROM stage_import
        ON CONFLICT (pupil_code) DO UPDATE SET
            {", ".join(f"{c} = excluded.{c}" for c in pcols[1:])}
        WHERE ({", ".join(f"pupil.{c}" for c in pcols[1:])})
              IS DISTINCT FROM ({", ".join(f"excluded.{c}" for c in pcols[1:])})
    """)
    ).rowcount
    report.enrolments_changed = conn.execute(
        text("""
        INSERT INTO enrolment (pupil_id, class_id, school_id, school_year_id, register_no,
                               enrolled_on)
        SELECT p.id, c.id, :school, :year, st.register_no, st.enrolled_on
        FROM stage_import st JOIN pupil p ON p.pupil_code = st.pupil_code
        JOIN school_class c ON c.school_id = :school AND c.school_year_id = :year
                           AND c.name = st.class_name
        ON CONFLICT (pupil_id, school_year_id) WHERE left_on IS NULL DO UPDATE
        SET class_id = excluded.class_id, register_no = excluded.register_no,
            enrolled_on = excluded.enrolled_on
        WHERE (enrolment.class_id, enrolment.register_no, enrolment.enrolled_on)
              IS DISTINCT FROM (excluded.class_id, excluded.register_no, excluded.enrolled_on)
    """),
        {"school": school.id, "year": year_id},
    ).rowcount
    report.summaries_changed = conn.execute(
        text("""
        INSERT INTO year_summary (enrolment_id, content, entered_result, computed_result,
                                  cohort, flags)
        SELECT e.id, st.content, st.entered_result, st.computed_result, st.cohort, st.flags
        FROM stage_import st JOIN pupil p ON p.pupil_code = st.pupil_code
        JOIN enrolment e ON e.pupil_id = p.id AND e.school_year_id = :year
                         AND e.school_id = :school AND e.left_on IS NULL
        ON CONFLICT (enrolment_id) DO UPDATE
        SET content = excluded.content, entered_result = excluded.entered_result,
            computed_result = excluded.computed_result, cohort = excluded.cohort,
            flags = excluded.flags, updated_at = now()
        WHERE (year_summary.content, year_summary.entered_result, year_summary.flags)
              IS DISTINCT FROM (excluded.content, excluded.entered_result, excluded.flags)
    """),
        {"school": school.id, "year": year_id},
    ).rowcount
    report.without_id = sum(1 for p in parsed.pupils if not p["cccd"])
    report.flagged = sum(1 for s in summaries if s["flags"])
    if report.changed:
        conn.execute(
            text(
                "INSERT INTO import_batch (file_sha256, filename, school_id, rows, changed) "
                "VALUES (:h, :f, :s, :r, :c)"
            ),
            {
                "h": parsed.sha256,
                "f": parsed.filename,
                "s": school.id,
                "r": report.rows,
                "c": report.changed,
            },
        )
        actor.append_event(
            session,
            school_code,
            action="import",
            payload={
                "file_sha256": parsed.sha256,
                "year": year,
                "rows": report.rows,
                "changed": report.changed,
            },
        )
    return report


def _class_rows(parsed: ParsedImport) -> list[dict[str, Any]]:
    by_name: dict[str, dict[str, Any]] = {}
    for c in parsed.classes:
        by_name[c["class_name"]] = dict(c)
    for p in parsed.pupils:
        by_name.setdefault(
            p["class_name"],
            {
                "class_name": p["class_name"],
                "grade": p["grade"],
                "teacher_name": None,
                "teacher_cccd": None,
                "teacher_username": None,
                "teacher_email": None,
            },
        )
    return list(by_name.values())


def _check_against_database(
    session: Session,
    parsed: ParsedImport,
    summaries: list[dict[str, Any]],
    school_id: int,
    year_id: int,
) -> None:
    conn = session.connection()
    problems: list[Problem] = []
    rows_by_code = {p["pupil_code"]: p for p in parsed.pupils}
    cccd_rows = {p["cccd"]: p for p in parsed.pupils if p["cccd"]}
    if cccd_rows:
        for code, cccd in conn.execute(
            text("SELECT pupil_code, cccd FROM pupil WHERE cccd = ANY(:c)"),
            {"c": list(cccd_rows)},
        ):
            p = cccd_rows[cccd]
            if code != p["pupil_code"]:
                problems.append(
                    Problem(
                        PUPIL_SHEET,
                        p["_row"],
                        "Mã định danh",
                        f"mã định danh {mask_id(cccd)} đã thuộc một học sinh khác",
                    )
                )
    teacher_ids = [c["teacher_cccd"] for c in parsed.classes if c.get("teacher_cccd")]
    if teacher_ids:
        owners: dict[str, str] = dict(
            conn.execute(
                text("SELECT cccd, username FROM staff WHERE cccd = ANY(:c)"), {"c": teacher_ids}
            ).all()
        )
        for c in parsed.classes:
            u = c.get("teacher_username")
            if c.get("teacher_cccd") in owners and owners[c["teacher_cccd"]] != u:
                problems.append(
                    Problem(
                        CLASS_SHEET,
                        c["_row"],
                        "Mã định danh GVCN",
                        "mã định danh này đã thuộc một tài khoản khác",
                    )
                )
    usernames = [c["teacher_username"] for c in parsed.classes if c.get("teacher_username")]
    if usernames:
        elsewhere = set(
            conn.scalars(
                text(
                    "SELECT DISTINCT st.username FROM staff st JOIN staff_role r "
                    "ON r.staff_id = st.id WHERE st.username = ANY(:u) "
                    "AND (r.school_id IS DISTINCT FROM :s OR r.role <> 'homeroom_teacher')"
                ),
                {"u": usernames, "s": school_id},
            )
        )
        for c in parsed.classes:
            if c.get("teacher_username") in elsewhere:
                problems.append(
                    Problem(
                        CLASS_SHEET,
                        c["_row"],
                        "Tên đăng nhập GVCN",
                        f"tài khoản {c['teacher_username']} là của cán bộ khác (trường, "
                        "vai trò hoặc đơn vị khác); hãy dùng tên đăng nhập khác",
                    )
                )
    other_school = set(
        conn.scalars(
            text(
                "SELECT p.pupil_code FROM enrolment e JOIN pupil p ON p.id = e.pupil_id "
                "WHERE p.pupil_code = ANY(:codes) AND e.school_year_id = :y "
                "AND e.school_id <> :s AND e.left_on IS NULL"
            ),
            {"codes": list(rows_by_code), "y": year_id, "s": school_id},
        )
    )
    for code in sorted(other_school):
        problems.append(
            Problem(
                PUPIL_SHEET,
                rows_by_code[code]["_row"],
                "Mã học sinh",
                f"học sinh {code} đang học ở trường khác trong năm học này; "
                "hãy làm thủ tục chuyển trường trước",
            )
        )
    locked = conn.execute(
        text("""
            SELECT p.pupil_code, r.state, ys.content, ys.entered_result,
                   p.full_name, p.birth_date, p.gender, p.cccd, c.name AS class_name
            FROM hoc_ba r JOIN pupil p ON p.id = r.pupil_id
            JOIN school_class c ON c.id = r.class_id
            JOIN year_summary ys ON ys.enrolment_id = r.enrolment_id
            WHERE r.school_id = :s AND r.school_year_id = :y AND p.pupil_code = ANY(:codes)
              AND r.state NOT IN ('draft', 'in_review', 'revoked', 'superseded')
        """),
        {"s": school_id, "y": year_id, "codes": list(rows_by_code)},
    ).all()
    by_code_summary = {p["pupil_code"]: s for p, s in zip(parsed.pupils, summaries, strict=True)}
    from hocba.models.lifecycle_states import STATE_LABELS

    for code, state, content, entered, *identity in locked:
        new, row = by_code_summary[code], rows_by_code[code]
        new_identity = [row[k] for k in ("full_name", "birth_date", "gender", "cccd", "class_name")]
        if (content, entered, identity) != (new["content"], new["entered_result"], new_identity):
            problems.append(
                Problem(
                    PUPIL_SHEET,
                    rows_by_code[code]["_row"],
                    None,
                    f"học bạ của học sinh {code} đang ở bước «{STATE_LABELS[state]}», "
                    "không thể ghi đè kết quả; hãy để GVCN mở lại học bạ "
                    "(hoặc lập yêu cầu chỉnh lý nếu đã phát hành) rồi nhập lại",
                )
            )
    if problems:
        raise ImportFailed(problems)


def import_file(
    session: Session, path: Path, school_code: str, year: str, actor: Actor
) -> ImportReport:
    """Read, validate and write one file, all or nothing (in the caller's transaction)."""
    return apply(session, read_file(path), school_code, year, actor)


# ---------------------------------------------------------------------------------------
# Writing workbooks: the template, and the demo district's files
# ---------------------------------------------------------------------------------------


def write_workbook(
    path: Path, pupils: Iterable[dict[str, Any]] = (), classes: Iterable[dict[str, Any]] = ()
) -> Path:
    """Write a workbook in the import layout (the template when no rows are given)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    wb = Workbook()
    bold = Font(bold=True)
    fill = PatternFill("solid", fgColor="DDEBF7")
    for idx, (title, columns, rows) in enumerate(
        ((PUPIL_SHEET, PUPIL_COLUMNS, pupils), (CLASS_SHEET, CLASS_COLUMNS, classes))
    ):
        ws = wb.active if idx == 0 else wb.create_sheet()
        ws.title = title
        ws.append([c.header for c in columns])
        for i, c in enumerate(columns, start=1):
            cell = ws.cell(row=1, column=i)
            cell.font, cell.fill = bold, fill
            letter = get_column_letter(i)
            ws.column_dimensions[letter].width = c.width
            if c.text_format:  # keep leading zeros of IDs: the whole column is text
                ws.column_dimensions[letter].number_format = "@"
            if c.choices:
                dv = DataValidation(
                    type="list",
                    formula1='"' + ",".join(c.choices) + '"',
                    allow_blank=True,
                    showErrorMessage=True,
                    errorTitle="Giá trị không hợp lệ",
                    error="Chọn một giá trị trong danh sách",
                )
                dv.add(f"{letter}2:{letter}{MAX_ROWS + 1}")
                ws.add_data_validation(dv)
        ws.freeze_panes = "C2" if title == PUPIL_SHEET else "B2"
        for row in rows:
            ws.append([_cell_value(row.get(c.key)) for c in columns])
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def _cell_value(v: Any) -> Any:
    if isinstance(v, dt.date):
        return v.strftime("%d/%m/%Y")
    return v
