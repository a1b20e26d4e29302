"""Property-based fuzzing of the Excel/CSV import (issue 8 item 4).

Workbooks and CSV files are built from the valid rows of the demo generator
(:func:`hocba.dev.demo.school_rows`) and then damaged the way a careless user or an attacker
would: random cell values (Vietnamese text, control characters, huge strings, numbers,
non-finite floats, dates, date serials, booleans, blanks), dropped / duplicated / renamed
headers, extra columns, random sheet names, rows dropped / duplicated / ragged, CSV files in
random encodings, and byte-level damage of the file or of one part inside the .xlsx zip.

The property (HOCBA_SPEC §2, all or nothing): ``import_file`` either succeeds or raises
``ImportFailed`` whose every ``Problem`` says where (a sheet; a row and a column for a cell)
and what (a Vietnamese message); never another exception, never more than a few seconds; and
when it refuses, nothing at all has been written — checked inside the caller's transaction
against a fingerprint (row count and content hash) of every table an import touches, in a
real PostgreSQL schema (one per test function, rolled back after every example).

Workbooks are written by a small raw .xlsx writer below (inline strings, Excel's ``_xHHHH_``
escapes for control characters, ``t="d"`` dates, date-styled serial numbers, raw cells of any
type), so that values openpyxl refuses to write can be tried too; the baseline import of every
test goes through :func:`importer.write_workbook`, the real template writer.

Bugs found here get a regression test below (``xfail(strict=True)`` while open) and their
triggers are kept out of the main generator by ``KNOWN_BUGS`` so that it keeps guarding
everything else; ``test_fuzz_everything`` runs the generator with nothing held back (all the
bugs found so far are fixed, ``KNOWN_BUGS`` is empty). Files
that make the reader allocate without bound (a far-away cell, a zip bomb) are read in a child
process with limited memory and time: a Rust allocation failure aborts the whole process.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import os
import random
import re
import resource
import signal
import subprocess
import sys
import time
import unicodedata
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlmodel import Session

from hocba.dev import demo
from hocba.models.lifecycle import SYSTEM
from hocba.tasks import importer
from hocba.tasks.importer import (
    CLASS_COLUMNS,
    CLASS_SHEET,
    PUPIL_COLUMNS,
    PUPIL_SHEET,
    ImportFailed,
)

YEAR = "2024-2025"
SCHOOL = demo.demo_schools(1)[0]
BASE_PUPILS, BASE_CLASSES = demo.school_rows(SCHOOL, 12, seed=11, year_start=2024, used_ids=set())
BASELINE = 10  # pupils imported before every test: the other rows are new, these are updates
# Seconds of CPU per example, file building included (CPU, not wall-clock time: CI shares its
# two cores with the other test worker; a hang spins the CPU too). The wall clock is cut at
# four times as long (SIGALRM).
TIME_LIMIT = 5.0
WALL = 4
EXAMPLES = 120

# Bugs found by this file (see the regression tests at the end); while one is open the main
# generator leaves its triggers out. All fixed: nonfinite-id, panic (calamine's PanicException
# for a date serial out of range), nul, db-lengths, csv-field, csv-cr; the names stay in
# _bugs_of, which still tags the cases (shown in hypothesis's reports).
KNOWN_BUGS: frozenset[str] = frozenset()

TABLES = (
    "pupil",
    "enrolment",
    "year_summary",
    "school_class",
    "staff",
    "staff_role",
    "school_year",
    "import_batch",
    "audit_event",
)
ORDER = {"audit_event": "t.chain_no, t.seq"}  # its key (no id since migration 0021)
PUPIL_HEADERS = [c.header for c in PUPIL_COLUMNS]
CLASS_HEADERS = [c.header for c in CLASS_COLUMNS]
DB_LIMITS = {"pupil_code": 30, "teacher_username": 80, "class_name": 1000}
VIETNAMESE = re.compile("[àáạảãâầấậẩẫăằắặẳẵèéẹẻẽêềếệểễìíịỉĩòóọỏõôồốộổỗơờớợởỡùúụủũưừứựửữỳýỵỷỹđ]")
XML_FORBIDDEN = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
EXCEL_ESCAPE = re.compile("_x([0-9A-Fa-f]{4})_")


# ======================================================================= the raw .xlsx writer
@dataclass(frozen=True)
class Serial:
    """A number in a date-styled cell: Excel's way of storing a date (days since 1899-12-30)."""

    value: float


@dataclass(frozen=True)
class RawCell:
    """A cell written as is: ``<c r=".." {attrs}>{inner}</c>`` (types and values Excel
    itself never writes)."""

    attrs: str
    inner: str
    unreadable: bool = False  # calamine refuses the whole sheet (without saying where)


def _letters(index: int) -> str:
    out = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        out = chr(65 + rest) + out
    return out


def _xml_text(value: str) -> str:
    """Element text as Excel writes it: XML-escaped, characters XML 1.0 forbids as
    ``_xHHHH_`` (which readers turn back into the character)."""
    value = value.replace("_x", "_x005F_x")  # a literal "_x0041_" stays literal
    value = XML_FORBIDDEN.sub(lambda m: f"_x{ord(m.group()):04X}_", value)
    return escape(value)


def _number(value: float | int) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "INF" if value > 0 else "-INF"
    return repr(value)


def _cell(ref: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, RawCell):
        return f'<c r="{ref}" {value.attrs}>{value.inner}</c>'
    if isinstance(value, bool):
        return f'<c r="{ref}" t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int | float):
        return f'<c r="{ref}" t="n"><v>{_number(value)}</v></c>'
    if isinstance(value, Serial):
        return f'<c r="{ref}" s="1"><v>{_number(value.value)}</v></c>'
    if isinstance(value, dt.date):
        return f'<c r="{ref}" t="d"><v>{value.isoformat()}</v></c>'
    space = ' xml:space="preserve"' if str(value) != str(value).strip() else ""
    return f'<c r="{ref}" t="inlineStr"><is><t{space}>{_xml_text(str(value))}</t></is></c>'


def _sheet_xml(rows: list[list[Any]]) -> bytes:
    out = [
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        "<sheetData>"
    ]
    for r, row in enumerate(rows, start=1):
        cells = "".join(_cell(f"{_letters(c)}{r}", v) for c, v in enumerate(row))
        out.append(f'<row r="{r}">{cells}</row>')
    out.append("</sheetData></worksheet>")
    return "".join(out).encode("utf-8")


_STYLES = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    b'<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
    b'<fills count="1"><fill><patternFill patternType="none"/></fill></fills>'
    b'<borders count="1"><border/></borders>'
    b'<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    b'<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    b'<xf numFmtId="14" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    b"</cellXfs></styleSheet>"
)


def xlsx_bytes(sheets: list[tuple[str, list[list[Any]]]]) -> bytes:
    """A minimal but complete .xlsx (what Excel needs to open it) with these sheets."""
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    pkg = "http://schemas.openxmlformats.org/package/2006/relationships"
    ct = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    sheet_entries = "".join(
        f'<sheet name={quoteattr(_xml_text(name))} sheetId="{i}" r:id="rId{i}"/>'
        for i, (name, _) in enumerate(sheets, start=1)
    )
    rels = "".join(
        f'<Relationship Id="rId{i}" Type="{rel}/worksheet" Target="worksheets/sheet{i}.xml"/>'
        for i in range(1, len(sheets) + 1)
    )
    rels += f'<Relationship Id="rIdS" Type="{rel}/styles" Target="styles.xml"/>'
    overrides = "".join(
        f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{ct}.worksheet+xml"/>'
        for i in range(1, len(sheets) + 1)
    )
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{ct}.sheet.main+xml"/>'
            f'<Override PartName="/xl/styles.xml" ContentType="{ct}.styles+xml"/>{overrides}'
            "</Types>"
        ).encode(),
        "_rels/.rels": (
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{pkg}">'
            f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="xl/workbook.xml"/>'
            "</Relationships>"
        ).encode(),
        "xl/workbook.xml": (
            f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{main}" xmlns:r="{rel}">'
            f"<sheets>{sheet_entries}</sheets></workbook>"
        ).encode(),
        "xl/_rels/workbook.xml.rels": (
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{pkg}">{rels}'
            "</Relationships>"
        ).encode(),
        "xl/styles.xml": _STYLES,
    }
    for i, (_, rows) in enumerate(sheets, start=1):
        parts[f"xl/worksheets/sheet{i}.xml"] = _sheet_xml(rows)
    return _zip(parts)


def _zip(parts: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts.items():
            z.writestr(name, data)
    return out.getvalue()


def _unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {name: z.read(name) for name in z.namelist()}


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, RawCell):
        return re.sub("<[^>]*>", "", value.inner)
    if isinstance(value, Serial):
        return repr(value.value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return str(value)


def csv_bytes(rows: list[list[Any]], encoding: str, newline: str) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=newline)
    for row in rows:
        writer.writerow([_csv_text(v) for v in row])
    return buf.getvalue().encode(encoding, errors="replace")


def _as_written(value: Any) -> Any:
    """A demo value as a school's file holds it (dates as dd/mm/yyyy text, like the template)."""
    return importer._cell_value(value)


# ======================================================================= generated inputs
def _random_text(seed: int, size: int, alphabet: str) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(size))


VIET_LETTERS = "aăâbcdđeêghiklmnoôơpqrstuưvxyàáạảãầấậẩẫằắặẳẵèéẹẻẽềếệểễìíịỉĩòóọỏõồốộổỗờớợởỡ"
VIET = VIET_LETTERS + VIET_LETTERS.upper() + " -/.,0123456789"
CONTROL = "".join(map(chr, range(0, 32))) + "\x7f\u200b\u2028\ufeff\ufffe\uffff\u0301"

texts = st.one_of(
    st.text(alphabet=VIET, max_size=40),
    st.text(max_size=20),  # any code point but surrogates, control characters included
    st.text(alphabet=VIET + CONTROL, max_size=20),
    st.builds(  # huge strings, built outside the example's buffer
        _random_text,
        st.integers(0, 2**32),
        st.sampled_from([300, 3_000, 40_000, 140_000]),
        st.sampled_from([VIET, "x", VIET + CONTROL, "0123456789"]),
    ),
    st.sampled_from(
        [
            "",
            " ",
            "\t",
            "T",
            "h",
            "Đ",
            "D",
            "hoàn thành tốt",
            "Hoàn thành tốt",  # decomposed (NFD)
            "HTXS",
            "htt",
            "Hoàn thành xuất sắc",
            "Nam",
            "nữ",
            "Nữ",
            "Khác",
            "7",
            "7,0",
            "7.5",
            "10",
            "11",
            "-1",
            "1e3",
            "nan",
            "inf",
            "31/02/2016",
            "05/09/2016",
            "2016-09-05",
            "5.9.2016",
            "022318000001",
            " 0223 1800 0001 ",
            "0" * 13,
            "=1+1",
            '=HYPERLINK("http://evil.example")',
            "<script>alert(1)</script>",
            "'; DROP TABLE pupil; --",
            "\\N",
            "\\.",
            "NULL",
        ]
    ),
)
numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(0, 12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0, 250),
)
dates = st.one_of(
    st.dates(),
    st.datetimes(),
    st.builds(Serial, st.one_of(st.floats(allow_nan=True, allow_infinity=True), numbers)),
)
raw_cells = st.sampled_from(
    [
        RawCell('t="n"', "<v>NaN</v>"),  # a bug in an ID column only: see _bugs_of
        RawCell('t="n"', "<v>1e999</v>"),
        RawCell('t="n"', "<v></v>"),
        RawCell('t="b"', "<v>true</v>"),
        RawCell('t="str"', "<f>1+1</f><v>2</v>"),
        RawCell('t="str"', '<f>HYPERLINK("http://x")</f>'),
        RawCell('t="inlineStr"', "<is><r><t>Lê </t></r><r><t>Văn A</t></r></is>"),
        RawCell('t="inlineStr"', ""),
        RawCell('t="e"', "<v>#DIV/0!</v>"),
        RawCell('t="e"', "<v>#N/A</v>"),
        RawCell('s="1"', "<v>abc</v>"),
        RawCell('s="99"', "<v>1</v>"),
        RawCell('t="d"', "<v>2016-02-30</v>"),
        RawCell('t="d"', "<v>99999-01-01</v>"),
        RawCell("", ""),
        # calamine refuses these while reading the sheet: the whole sheet is refused
        RawCell('t="b"', "<v>2</v>", unreadable=True),
        RawCell('t="n"', "<v>abc</v>", unreadable=True),
        RawCell('t="e"', "<v>1</v>", unreadable=True),
        RawCell('t="s"', "<v>999999</v>", unreadable=True),
        RawCell('t="zz"', "<v>1</v>", unreadable=True),
    ]
)
cell_values = st.one_of(st.none(), texts, numbers, dates, st.booleans(), raw_cells)


def plausible(key: str | None, base: list[dict[str, Any]]) -> st.SearchStrategy[Any]:
    """A value another school would have typed in this column: another row's, respelled."""
    if key is None:
        return st.none()
    seen = sorted({str(_as_written(r.get(key))) for r in base if r.get(key) is not None})
    if not seen:
        return st.none()
    return st.sampled_from(seen).flatmap(
        lambda v: st.sampled_from(
            [
                v,
                v.lower(),
                v.upper(),
                f" {v} ",
                unicodedata.normalize("NFD", v),
                v.replace(" ", "  "),
            ]
        )
    )


SHEET_NAMES = st.one_of(
    st.sampled_from(["HocSinh", "hocsinh", " HocSinh ", "HOCSINH", "Học sinh", "Lop", "LOP"]),
    st.text(min_size=1, max_size=31),
)
ENCODINGS = ["utf-16", "utf-16-le", "cp1258", "latin-1", "ascii", "utf-32"]


def pick(draw: st.DrawFn, *options: tuple[int, Any]) -> Any:
    """One of the ``(weight, value)`` options. Hypothesis draws small integers more often
    than others: the first option, the ordinary case, comes even a little more often."""
    n = draw(st.integers(0, sum(weight for weight, _ in options) - 1))
    for weight, value in options:
        if n < weight:
            return value
        n -= weight
    raise AssertionError


@dataclass
class Case:
    """One generated file and what is known about it."""

    name: str
    data: bytes = field(repr=False)
    sheet_rows: dict[str, int] = field(default_factory=dict)  # rows written per sheet
    headers: set[str] = field(default_factory=set, repr=False)  # header texts written
    damaged: bool = False  # byte-level damage: row counts unknown
    bugs: set[str] = field(default_factory=set)  # known bugs this case may trigger

    def __repr__(self) -> str:
        return (
            f"Case({self.name!r}, {len(self.data)} bytes, sheets={self.sheet_rows}, "
            f"damaged={self.damaged}, bugs={sorted(self.bugs)})"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis's reports
        printer.text(repr(self))


def _bugs_of(fmt: str, key: str | None, value: Any) -> set[str]:
    """The known bugs a value in this column may trigger."""
    bugs: set[str] = set()
    if isinstance(value, Serial) and value.value < -1.06e11:  # calamine panics (NaN: 1899)
        bugs.add("panic")
    if isinstance(value, RawCell):
        if key in ("cccd", "teacher_cccd") and value.inner in ("<v>NaN</v>", "<v>1e999</v>"):
            bugs.add("nonfinite-id")
        return bugs
    if (
        fmt == "xlsx"
        and key in ("cccd", "teacher_cccd")
        and isinstance(value, float)
        and not math.isfinite(value)
    ):
        bugs.add("nonfinite-id")
    if isinstance(value, str):
        read = value
        if fmt == "xlsx":  # what the reader makes of Excel's escapes
            read = EXCEL_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value)
        if "\x00" in read:
            bugs.add("nul")
        if key in DB_LIMITS and len(read.strip()) > DB_LIMITS[key]:
            bugs.add("db-lengths")
        if fmt == "csv" and len(value) > 131_072:
            bugs.add("csv-field")
    return bugs


@st.composite
def headers_of(draw: st.DrawFn, headers: list[str]) -> list[tuple[str, str | None]]:
    """The header row: (text, column key or None for an extra column)."""
    keys = [c.key for c in PUPIL_COLUMNS] if headers is PUPIL_HEADERS else []
    keys = keys or [c.key for c in CLASS_COLUMNS]
    cols: list[tuple[str, str | None]] = list(zip(headers, keys, strict=True))
    ops: list[str] = []
    if pick(draw, (5, False), (1, True)):  # most files keep the template's header row
        ops = draw(
            st.lists(
                st.sampled_from(["drop", "dup", "rename", "respell", "extra", "shuffle", "blank"]),
                min_size=1,
                max_size=3,
            )
        )
    for op in ops:
        i = draw(st.integers(0, len(cols) - 1))
        if op == "drop" and len(cols) > 1:
            del cols[i]
        elif op == "dup":
            cols.insert(draw(st.integers(0, len(cols))), cols[i])
        elif op == "rename":
            cols[i] = (draw(st.text(min_size=1, max_size=30)), cols[i][1])
        elif op == "respell":  # the same header as people type it: case, spaces, NFD
            header = cols[i][0]
            spelled = draw(
                st.sampled_from(
                    [
                        header.upper(),
                        f"  {header} ",
                        header.replace(" ", "  "),
                        unicodedata.normalize("NFD", header),
                    ]
                )
            )
            cols[i] = (spelled, cols[i][1])
        elif op == "extra":
            cols.insert(i, (draw(st.text(alphabet=VIET, min_size=1, max_size=20)), None))
        elif op == "shuffle":
            draw(st.randoms(use_true_random=False)).shuffle(cols)
        elif op == "blank":
            cols.insert(i, ("", None))
    return cols


@st.composite
def table_of(
    draw: st.DrawFn, fmt: str, headers: list[str], base: list[dict[str, Any]], safe: bool
) -> tuple[list[list[Any]], set[str], set[str]]:
    """A sheet (header row first) from ``base`` rows, mutated; its header texts; its bugs."""
    cols = draw(headers_of(headers))
    rows = [dict(r) for r in base]
    for op in draw(
        st.lists(st.sampled_from(["drop", "dup", "blank", "move"]), max_size=2) | st.just([])
    ):
        i = draw(st.integers(0, len(rows) - 1)) if rows else 0
        if op == "drop" and rows:
            del rows[i]
        elif op == "dup" and rows:
            rows.insert(i, dict(rows[i]))
        elif op == "blank":
            rows.insert(i, {})
        elif op == "move" and rows:
            rows.append(rows.pop(i))
    grid = [[_as_written(r.get(key)) if key else None for _, key in cols] for r in rows]
    bugs: set[str] = set()
    for _ in range(pick(draw, (3, 0), (4, 1), (2, 2), (1, 6))):
        if not grid:
            break
        r, c = draw(st.integers(0, len(grid) - 1)), draw(st.integers(0, len(cols) - 1))
        value = draw(pick(draw, (1, plausible(cols[c][1], base)), (2, cell_values)))
        found = _bugs_of(fmt, cols[c][1], value)
        if safe and found & KNOWN_BUGS:
            continue
        bugs |= found
        grid[r][c] = value
    if pick(draw, (9, False), (1, True)) and grid:  # a ragged row
        r = draw(st.integers(0, len(grid) - 1))
        grid[r] = grid[r][: draw(st.integers(0, len(cols)))]
    header_row: list[Any] = [h for h, _ in cols]
    if pick(draw, (19, False), (1, True)):
        bugs.add("headerless")  # not a bug: no header row, the first pupil is read as one
        return grid, {h for h, _ in cols}, bugs
    return [header_row, *grid], {h for h, _ in cols}, bugs


def _damage_zip(draw: st.DrawFn, data: bytes) -> bytes:
    """One part inside the .xlsx zip damaged, the zip itself sound."""
    parts = _unzip(data)
    name = draw(st.sampled_from(sorted(parts)))
    how = draw(st.sampled_from(["truncate", "flip", "drop", "garbage", "doctype"]))
    part = parts[name]
    if how == "truncate":
        parts[name] = part[: draw(st.integers(0, max(0, len(part) - 1)))]
    elif how == "flip" and part:
        i = draw(st.integers(0, len(part) - 1))
        parts[name] = part[:i] + bytes([part[i] ^ draw(st.integers(1, 255))]) + part[i + 1 :]
    elif how == "drop":
        del parts[name]
    elif how == "garbage":
        parts[name] = draw(st.binary(max_size=64))
    else:  # an entity bomb in the part
        bomb = (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;'
            b'&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
            b'<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">]>'
        )
        parts[name] = bomb + re.sub(rb"^<\?xml[^>]*\?>", b"", part).replace(b"</", b"&e;</", 1)
    return _zip(parts)


@st.composite
def cases(draw: st.DrawFn, safe: bool = True) -> Case:
    fmt = pick(draw, (3, "xlsx"), (1, "csv"))
    pupils, headers, bugs = draw(table_of(fmt, PUPIL_HEADERS, BASE_PUPILS, safe))
    case = Case(name="hocsinh.csv", data=b"", bugs=bugs, headers=headers)
    if fmt == "csv":
        encoding = pick(draw, (6, "utf-8-sig"), (4, "utf-8"), *((1, e) for e in ENCODINGS))
        newline = pick(draw, (6, "\r\n"), (3, "\n"), (1, "\r"))
        if newline == "\r":
            case.bugs.add("csv-cr")
            if safe and "csv-cr" in KNOWN_BUGS:
                newline = "\r\n"
        if newline == "\n" and any("\r" in _csv_text(v) for row in pupils for v in row):
            case.bugs.add("csv-cr")  # an unquoted bare CR inside a field
            if safe and "csv-cr" in KNOWN_BUGS:
                newline = "\r\n"
        case.data = csv_bytes(pupils, encoding, newline)
        case.headers |= {h.encode(encoding, "replace").decode(encoding) for h in case.headers}
        case.sheet_rows[PUPIL_SHEET] = len(pupils) + sum(
            _csv_text(v).count("\n") + _csv_text(v).count("\r") for row in pupils for v in row
        )
    else:
        classes, class_headers, class_bugs = draw(table_of(fmt, CLASS_HEADERS, BASE_CLASSES, safe))
        case.bugs |= class_bugs
        case.headers |= class_headers
        pupil_name = pick(draw, (9, PUPIL_SHEET), (1, None)) or draw(SHEET_NAMES)
        class_name = pick(draw, (8, CLASS_SHEET), (1, None)) or draw(SHEET_NAMES)
        sheets = [(pupil_name, pupils)]
        if pick(draw, (5, True), (1, False)):
            sheets.append((class_name, classes))
        for _ in range(pick(draw, (8, 0), (1, 1), (1, 2))):
            cell = draw(texts)
            sheets.append((draw(SHEET_NAMES), [[cell]]))
            case.headers.add(cell)  # read as the header row if the sheet is taken as HocSinh
        draw(st.randoms(use_true_random=False)).shuffle(sheets)
        case.data = xlsx_bytes(sheets)
        case.name = draw(st.sampled_from(["hocsinh.xlsx", "HOCSINH.XLSX", "mau.xlsm"]))
        for name, rows in sheets:
            case.sheet_rows[name] = max(case.sheet_rows.get(name, 0), len(rows))
    undamaged = case.data
    damage = pick(
        draw,
        (20, "none"),
        *((1, d) for d in ("truncate", "garbage", "flip", "part", "suffix")),
    )
    if damage == "truncate":  # for an .xlsx: its zip directory is at the end, nothing is left
        case.data = case.data[: draw(st.integers(0, max(0, len(case.data) - 1)))]
        case.damaged = True
    elif damage == "garbage":
        case.data = draw(st.binary(max_size=2000))
        case.damaged = True
    elif damage == "part" and fmt == "xlsx":
        case.data, case.damaged = _damage_zip(draw, case.data), True
    elif damage == "flip" and case.data:
        data = bytearray(case.data)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        case.data, case.damaged = bytes(data), True
    elif damage == "suffix":
        case.name = draw(st.sampled_from(["hocsinh.xls", "hocsinh.txt", "hocsinh", "a.csv.exe"]))
    if fmt == "csv" and case.damaged:
        text_ = case.data.decode("utf-8-sig", errors="ignore")
        found = {"nul"} if "\x00" in text_ else set()
        if re.search("\r(?!\n)", text_):
            found.add("csv-cr")
        if safe and found & KNOWN_BUGS:  # leave this damage out
            case.data, case.damaged = undamaged, False
        else:
            case.bugs |= found
    return case


# ======================================================================= the property
class Hang(BaseException):  # not an Exception: nothing in the importer may swallow it
    pass


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def alarm(signum: int, frame: object) -> None:
        raise Hang(f"no answer after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def fingerprint(conn: Any) -> dict[str, tuple[int, str]]:
    """Row count and content hash of every table an import touches."""
    return {
        table: tuple(
            conn.execute(
                text(
                    "SELECT count(*), md5(coalesce(string_agg(t::text, '|' "
                    f"ORDER BY {ORDER.get(table, 't.id')}), '')) FROM {table} t"
                )
            ).one()
        )
        for table in TABLES
    }


@pytest.fixture
def org(engine: Engine, tmp_path: Path) -> Engine:
    """The demo school with its first ``BASELINE`` pupils already imported (committed)."""
    with Session(engine) as s:
        demo.build_org(s, [SCHOOL])
        s.commit()
    path = importer.write_workbook(tmp_path / "baseline.xlsx", BASE_PUPILS[:BASELINE], BASE_CLASSES)
    with Session(engine) as s:
        importer.import_file(s, path, SCHOOL.code, YEAR, SYSTEM)
        s.commit()
    return engine


def _squash(s: str) -> str:
    return re.sub(r"[\s\x00-\x1f_]+", "", unicodedata.normalize("NFC", s)).casefold()


KNOWN_HEADERS = {_squash(h) for h in PUPIL_HEADERS + CLASS_HEADERS}


def check_problems(exc: ImportFailed, case: Case) -> None:
    assert exc.problems, "ImportFailed without a problem"
    assert "chưa ghi gì" in exc.summary()
    written = {_squash(h) for h in case.headers} | KNOWN_HEADERS
    for p in exc.problems:
        assert isinstance(p.sheet, str) and p.sheet.strip(), p
        assert p.sheet in {PUPIL_SHEET, CLASS_SHEET, case.name, "-", *case.sheet_rows}, p
        assert isinstance(p.message, str) and p.message.strip(), p
        # Vietnamese, also once the user's own quoted values are taken out
        assert VIETNAMESE.search(re.sub("«[^»]*»", "", p.message, flags=re.S)), p
        assert "Traceback" not in p.message, p
        assert p.row is None or (isinstance(p.row, int) and p.row >= 1), p
        assert p.column is None or (isinstance(p.column, str) and p.row is not None), p
        if p.column is not None and not case.damaged and "headerless" not in case.bugs:
            assert _squash(p.column) in written, p
        if p.row is not None and not case.damaged and p.sheet in case.sheet_rows:
            assert p.row <= max(case.sheet_rows[p.sheet], 1), p
        str(p)


def run_import(engine: Engine, tmp: Path, case: Case) -> str:
    """Import ``case`` in a transaction that is always rolled back; check the property."""
    path = tmp / case.name
    with Session(engine) as s:
        before = fingerprint(s.connection())
        cpu = time.process_time()
        path.write_bytes(case.data)
        try:
            with time_limit(WALL * TIME_LIMIT):
                importer.import_file(s, path, SCHOOL.code, YEAR, SYSTEM)
        except ImportFailed as exc:
            check_problems(exc, case)
            assert fingerprint(s.connection()) == before, "refused, but something was written"
            outcome = "refused"
            event(f"refused: {re.sub('«[^»]*»|[0-9]+', '…', exc.problems[0].message)[:60]}")
        else:
            outcome = "imported"
            event("imported")
        finally:
            cpu = time.process_time() - cpu
        s.rollback()
    assert cpu < TIME_LIMIT, f"{cpu:.2f} s CPU"
    return outcome


FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=EXAMPLES,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


@FUZZ
@given(case=cases())
def test_fuzz_import_refuses_cleanly_or_imports(org: Engine, tmp_path: Path, case: Case) -> None:
    """Any damaged file: imported, or refused with clear problems and nothing written."""
    with org.connect() as conn:
        baseline = fingerprint(conn)
    run_import(org, tmp_path, case)
    with org.connect() as conn:
        assert fingerprint(conn) == baseline  # and the rollback left nothing behind


@st.composite
def one_bad_cell(draw: st.DrawFn) -> tuple[Case, int, str, Any]:
    """A valid file with exactly one cell of the HocSinh sheet changed."""
    fmt = draw(st.sampled_from(["xlsx", "csv"]))
    key = draw(st.sampled_from([c.key for c in PUPIL_COLUMNS]))
    row = draw(st.integers(0, len(BASE_PUPILS) - 1))
    value = draw(cell_values)
    if _bugs_of(fmt, key, value) & KNOWN_BUGS:
        value = None
    grid = [[_as_written(p.get(c.key)) for c in PUPIL_COLUMNS] for p in BASE_PUPILS]
    grid[row][[c.key for c in PUPIL_COLUMNS].index(key)] = value
    rows = [PUPIL_HEADERS, *grid]
    if fmt == "csv":
        case = Case("hocsinh.csv", csv_bytes(rows, "utf-8-sig", "\r\n"))
    else:
        classes = [
            CLASS_HEADERS,
            *[[_as_written(c[k.key]) for k in CLASS_COLUMNS] for c in BASE_CLASSES],
        ]
        case = Case("hocsinh.xlsx", xlsx_bytes([(PUPIL_SHEET, rows), (CLASS_SHEET, classes)]))
    case.headers = set(PUPIL_HEADERS)
    case.sheet_rows = {PUPIL_SHEET: len(rows), CLASS_SHEET: len(BASE_CLASSES) + 1}
    return case, row + 2, key, value


@FUZZ
@given(bad=one_bad_cell())
def test_one_bad_cell_is_named_by_its_row_and_column(
    org: Engine, tmp_path: Path, bad: tuple[Case, int, str, Any]
) -> None:
    """One changed cell in a valid file: imported, or refused with the problems on its row,
    each naming a column (a duplicate code or ID is reported on the later of the two rows)."""
    case, row, key, value = bad
    path = tmp_path / case.name
    path.write_bytes(case.data)
    with Session(org) as s:
        try:
            with time_limit(WALL * TIME_LIMIT):
                importer.import_file(s, path, SCHOOL.code, YEAR, SYSTEM)
        except ImportFailed as exc:
            check_problems(exc, case)
            rows = {row}
            if key in ("pupil_code", "cccd"):  # the duplicate is reported on the later row
                rows |= set(range(row, len(BASE_PUPILS) + 2))
            if key in ("grade", "class_name") and case.name.endswith(".csv"):
                # without a Lop sheet a class's grade is its first pupil's: the others differ
                rows |= set(range(2, len(BASE_PUPILS) + 2))
            if isinstance(value, RawCell) and value.unreadable:  # no position to give
                assert [(p.sheet, p.row) for p in exc.problems] == [(PUPIL_SHEET, None)]
                return
            for p in exc.problems:
                assert p.sheet == PUPIL_SHEET and p.row in rows and p.column, (str(p), row, key)
        finally:
            s.rollback()


@settings(FUZZ, max_examples=60, phases=[Phase.explicit, Phase.generate])
@given(case=cases(safe=False))
def test_fuzz_everything(org: Engine, tmp_path: Path, case: Case) -> None:
    """The generator with nothing held back (a bug put in KNOWN_BUGS fails here)."""
    run_import(org, tmp_path, case)


# ======================================================================= bugs found (fixed)
# Each test states what the importer should do (it failed before its fix). All stay out of the
# database:
# the problems surface while reading the file, before anything is written.
def _grid(pupils: list[dict[str, Any]] | None = None) -> list[list[Any]]:
    rows = pupils if pupils is not None else BASE_PUPILS
    return [PUPIL_HEADERS, *[[_as_written(p.get(c.key)) for c in PUPIL_COLUMNS] for p in rows]]


def _classes_grid() -> list[list[Any]]:
    return [CLASS_HEADERS, *[[_as_written(c[k.key]) for k in CLASS_COLUMNS] for c in BASE_CLASSES]]


def _set(grid: list[list[Any]], row: int, header: str, value: Any) -> list[list[Any]]:
    grid = [list(r) for r in grid]
    grid[row][grid[0].index(header)] = value
    return grid


def _read(tmp_path: Path, name: str, data: bytes) -> ImportFailed | None:
    """``read_file`` on these bytes: the ImportFailed it raised, or None if it accepted them."""
    path = tmp_path / name
    path.write_bytes(data)
    try:
        with time_limit(WALL * TIME_LIMIT):
            importer.read_file(path)
    except ImportFailed as exc:
        return exc
    return None


def _cell_problem(exc: ImportFailed | None, sheet: str, row: int, column: str) -> bool:
    return exc is not None and any(
        (p.sheet, p.row, p.column) == (sheet, row, column) for p in exc.problems
    )


@pytest.mark.parametrize("value", ["NaN", "INF", "-INF", "1e999"])
def test_a_non_finite_number_in_an_id_column_is_a_cell_error(tmp_path: Path, value: str) -> None:
    cell = RawCell('t="n"', f"<v>{value}</v>")
    pupils = _set(_grid(), 1, "Mã định danh", cell)
    classes = _set(_classes_grid(), 1, "Mã định danh GVCN", cell)
    exc = _read(tmp_path, "a.xlsx", xlsx_bytes([(PUPIL_SHEET, pupils), (CLASS_SHEET, classes)]))
    assert _cell_problem(exc, PUPIL_SHEET, 2, "Mã định danh")
    assert _cell_problem(exc, CLASS_SHEET, 2, "Mã định danh GVCN")


def _damaged_sheet(how: str) -> bytes:
    parts = _unzip(xlsx_bytes([(PUPIL_SHEET, _grid()), (CLASS_SHEET, _classes_grid())]))
    sheet = "xl/worksheets/sheet1.xml"
    if how == "truncated":
        parts[sheet] = parts[sheet][: len(parts[sheet]) // 2]
    elif how == "garbage":
        parts[sheet] = b"not xml"
    elif how == "missing":
        del parts[sheet]
    elif how == "class-sheet-truncated":
        parts["xl/worksheets/sheet2.xml"] = parts["xl/worksheets/sheet2.xml"][:200]
    elif how == "char-ref-nul":
        parts[sheet] = parts[sheet].replace(b"<t>DH01", b"<t>&#0;DH01", 1)
    elif how != "crc":  # a cell Excel never writes
        cell = {
            "bool-2": '<c r="B2" t="b"><v>2</v></c>',
            "number-abc": '<c r="B2" t="n"><v>abc</v></c>',
            "error-1": '<c r="B2" t="e"><v>1</v></c>',
            "shared-string-999999": '<c r="B2" t="s"><v>999999</v></c>',
            "type-zz": '<c r="B2" t="zz"><v>1</v></c>',
        }[how]
        parts[sheet] = re.sub(rb'<c r="B2"[^>]*>.*?</c>', cell.encode(), parts[sheet], count=1)
    data = _zip(parts)
    if how == "crc":  # one flipped byte in the compressed worksheet: a CRC error on reading
        at = data.index(b"xl/worksheets/sheet1.xml") + len("xl/worksheets/sheet1.xml") + 50
        data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
    return data


@pytest.mark.parametrize(
    "how",
    [
        "truncated",
        "garbage",
        "missing",
        "class-sheet-truncated",
        "char-ref-nul",
        "bool-2",
        "number-abc",
        "error-1",
        "shared-string-999999",
        "type-zz",
        "crc",
    ],
)
def test_a_damaged_sheet_inside_a_readable_zip_is_refused(tmp_path: Path, how: str) -> None:
    """The worksheets are read after the workbook: their errors are problems too (this was
    a bug found by this file: CalamineError/XmlError/WorksheetNotFound escaped)."""
    exc = _read(tmp_path, "truong.xlsx", _damaged_sheet(how))
    assert exc is not None
    sheet = CLASS_SHEET if how.startswith("class") else PUPIL_SHEET
    assert [p.sheet for p in exc.problems] == [sheet] and VIETNAMESE.search(exc.problems[0].message)


@pytest.mark.parametrize("serial", [-1.1e11, -1e300, float("-inf")])
def test_a_date_serial_out_of_range_is_a_cell_error(tmp_path: Path, serial: float) -> None:
    grid = _set(_grid(), 1, "Ngày sinh", Serial(serial))
    try:
        exc = _read(tmp_path, "a.xlsx", xlsx_bytes([(PUPIL_SHEET, grid)]))
    except BaseException as panic:  # noqa: BLE001 - the PanicException is the bug
        pytest.fail(f"{type(panic).__module__}.{type(panic).__name__}: {panic}")
    # calamine panics on the serial (pyo3's PanicException): the cell is read as text instead
    assert _cell_problem(exc, PUPIL_SHEET, 2, "Ngày sinh"), exc


@pytest.mark.parametrize("serial", [float("nan"), 0, -0.5])
def test_excel_day_zero_is_not_a_birth_date(tmp_path: Path, serial: float) -> None:
    """A NaN (or 0) in a date-styled cell reads as 30/12/1899: refused, not imported."""
    grid = _set(_grid(), 1, "Ngày sinh", Serial(serial))
    exc = _read(tmp_path, "a.xlsx", xlsx_bytes([(PUPIL_SHEET, grid)]))
    assert _cell_problem(exc, PUPIL_SHEET, 2, "Ngày sinh"), exc


@pytest.mark.parametrize(
    ("fmt", "header"), [("csv", "Họ và tên"), ("xlsx", "Họ và tên"), ("xlsx", "Nhận xét của GVCN")]
)
def test_a_nul_character_is_refused_not_a_database_crash(
    tmp_path: Path, fmt: str, header: str
) -> None:
    grid = _set(_grid(), 1, header, "Lê Văn\x00 A")
    data = (
        csv_bytes(grid, "utf-8-sig", "\r\n") if fmt == "csv" else xlsx_bytes([(PUPIL_SHEET, grid)])
    )
    assert _cell_problem(_read(tmp_path, f"a.{fmt}", data), PUPIL_SHEET, 2, header)


@pytest.mark.parametrize("char", ["\x01", "\x1b", "\ufffe"])
def test_characters_a_record_cannot_hold_are_refused_at_import(tmp_path: Path, char: str) -> None:
    grid = _set(_grid(), 1, "Họ và tên", f"Lê Văn{char} A")
    exc = _read(tmp_path, "a.csv", csv_bytes(grid, "utf-8-sig", "\r\n"))
    assert _cell_problem(exc, PUPIL_SHEET, 2, "Họ và tên")


@pytest.mark.parametrize(
    ("sheet", "header", "value"),
    [
        (PUPIL_SHEET, "Mã học sinh", "HS" + "1" * 29),
        (PUPIL_SHEET, "Lớp", _random_text(1, 3000, VIET)),
        (CLASS_SHEET, "Tên đăng nhập GVCN", "gv." + "a" * 78),
        (CLASS_SHEET, "Lớp", _random_text(2, 3000, VIET)),
    ],
)
def test_values_longer_than_the_database_allows_are_cell_errors(
    tmp_path: Path, sheet: str, header: str, value: str
) -> None:
    pupils, classes = _grid(), _classes_grid()
    if sheet == PUPIL_SHEET:
        pupils = _set(pupils, 1, header, value)
    else:
        classes = _set(classes, 1, header, value)
    exc = _read(tmp_path, "a.xlsx", xlsx_bytes([(PUPIL_SHEET, pupils), (CLASS_SHEET, classes)]))
    assert _cell_problem(exc, sheet, 2, header)


def test_a_csv_field_over_128_kib_is_refused(tmp_path: Path) -> None:
    grid = _set(_grid(), 1, "Nhận xét của GVCN", "x" * 140_000)
    assert _read(tmp_path, "a.csv", csv_bytes(grid, "utf-8-sig", "\r\n")) is not None


def test_a_csv_with_classic_mac_line_endings_is_read(tmp_path: Path) -> None:
    exc = _read(tmp_path, "a.csv", csv_bytes(_grid(), "utf-8-sig", "\r"))
    assert exc is None, exc


def test_a_huge_rejected_value_is_quoted_briefly(tmp_path: Path) -> None:
    grid = _set(_grid(), 1, "Ngày sinh", "1" * 100_000)
    exc = _read(tmp_path, "a.xlsx", xlsx_bytes([(PUPIL_SHEET, grid)]))
    assert exc is not None
    assert max(len(p.message) for p in exc.problems) < 500
    assert len(exc.summary()) < 20_000


_READ_IN_A_CHILD = """
import sys
from pathlib import Path
from hocba.tasks import importer
try:
    importer.read_file(Path(sys.argv[1]))
    print("imported")
except importer.ImportFailed as exc:
    print("refused:", exc.problems[0].message)
"""


def _read_in_a_child(path: Path, memory: int = 2 << 30, timeout: float = 10) -> tuple[str, float]:
    """``read_file`` in a child process with at most ``memory`` bytes of address space: a
    file that makes the reader allocate without bound fails there, not in the test run."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-c", _READ_IN_A_CHILD, str(path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=limit,
            env={**os.environ, "RUST_BACKTRACE": "0"},
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"no answer after {timeout} s", time.perf_counter() - started
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        return f"exit {done.returncode}: {done.stderr.strip()[-300:]}", elapsed
    return done.stdout.strip(), elapsed


@pytest.mark.parametrize("far", ["XFD20001", "A1048576"])
def test_a_sheet_reaching_far_cells_is_refused_without_exhausting_memory(
    tmp_path: Path, far: str
) -> None:
    grid = _grid()
    parts = _unzip(xlsx_bytes([(PUPIL_SHEET, grid)]))
    row = re.sub("[A-Z]", "", far)
    parts["xl/worksheets/sheet1.xml"] = parts["xl/worksheets/sheet1.xml"].replace(
        b"</sheetData>", f'<row r="{row}">{_cell(far, "x")}</row></sheetData>'.encode()
    )
    path = tmp_path / "xa.xlsx"
    path.write_bytes(_zip(parts))
    answer, _ = _read_in_a_child(path)
    assert answer.startswith("refused:"), answer


def test_a_zip_bomb_is_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "bom.xlsx"
    parts = _unzip(xlsx_bytes([(PUPIL_SHEET, _grid())]))
    head, tail = parts.pop("xl/worksheets/sheet1.xml").split(b"</sheetData>")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name, data in parts.items():
            z.writestr(name, data)
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            sheet.write(head)
            for _ in range(200):
                sheet.write(b"<row/>" * 174_763)  # about 1 MB each
            sheet.write(b"</sheetData>" + tail)
    assert path.stat().st_size < 2_000_000
    answer, elapsed = _read_in_a_child(path, timeout=4)  # Python's start included
    assert answer.startswith("refused:"), (answer, elapsed)


def test_an_import_cannot_rewrite_the_principals_account(org: Engine, tmp_path: Path) -> None:
    classes = _classes_grid()
    for header, value in (
        ("Tên đăng nhập GVCN", "dh01.ht"),  # the school's principal (demo.build_org)
        ("Họ tên GVCN", "Kẻ Giả Mạo"),
        ("Email GVCN", "ke.gia.mao@example.com"),
        ("Mã định danh GVCN", None),
    ):
        classes = _set(classes, 1, header, value)
    path = tmp_path / "truong.xlsx"
    path.write_bytes(xlsx_bytes([(PUPIL_SHEET, _grid()), (CLASS_SHEET, classes)]))
    with Session(org) as s:
        try:
            importer.import_file(s, path, SCHOOL.code, YEAR, SYSTEM)
            s.commit()
        except ImportFailed as exc:
            assert _cell_problem(exc, CLASS_SHEET, 2, "Tên đăng nhập GVCN"), exc.problems
    with org.connect() as c:
        email = c.scalar(text("SELECT email FROM staff WHERE username = 'dh01.ht'"))
    assert email != "ke.gia.mao@example.com"
