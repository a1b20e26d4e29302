"""The book's own flowables (``hocba.pdf.layout``) draw what ReportLab's would (issue 14).

:class:`~hocba.pdf.layout.Text` and :class:`~hocba.pdf.layout.Grid` replace ReportLab's
``Paragraph`` and ``Table`` in the book for speed; the pages must not change. Each test
draws the same content both ways on a page and compares the pixels poppler renders.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Callable

import pytest
from PIL import Image, ImageChops
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_JUSTIFY, TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    CondPageBreak,
    Flowable,
    PageBreak,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)
from reportlab.platypus.tables import CellStyle

from hocba.pdf.fonts import FONT_BOLD, FONT_ITALIC, FONT_REGULAR, register_fonts
from hocba.pdf.layout import (
    CELL_FONT_SIZE,
    CELL_LEADING,
    CELL_PADDING,
    Grid,
    Text,
    grid_row,
)

GRID, INK, SHADE = (
    colors.HexColor("#404040"),
    colors.HexColor("#1a1a1a"),
    colors.HexColor("#e8edf5"),
)
COMMENT = (
    "Em chăm ngoan, lễ phép, tích cực tham gia các hoạt động của lớp và của trường; biết giúp "
    "đỡ bạn bè, hoàn thành tốt các nhiệm vụ học tập được giao, đọc diễn cảm, tính toán nhanh."
)


@pytest.fixture(autouse=True)
def _fonts() -> None:
    register_fonts()


def _png(draw: Callable[[Canvas], None]) -> Image.Image:
    out = io.BytesIO()
    canv = Canvas(out, pagesize=A4, invariant=True)
    draw(canv)
    canv.showPage()
    canv.save()
    exe = shutil.which("pdftoppm")
    if exe is None:
        pytest.fail("pdftoppm is required: apt-get install poppler-utils")
    result = subprocess.run(
        [exe, "-png", "-r", "110", "-f", "1", "-l", "1", "-"],
        input=out.getvalue(),
        capture_output=True,
        check=True,
    )
    return Image.open(io.BytesIO(result.stdout)).convert("RGB")


def _placed(*flowables: Flowable, width: float = 300) -> Callable[[Canvas], None]:
    """Draw ``flowables`` one under the other from the top of the page."""

    def draw(canv: Canvas) -> None:
        y = A4[1] - 60
        for flowable in flowables:
            _, height = flowable.wrap(width, 1e6)
            y -= height + 12
            flowable.drawOn(canv, 60, y)

    return draw


def _same_pixels(ours: Callable[[Canvas], None], reportlab: Callable[[Canvas], None]) -> None:
    a, b = _png(ours), _png(reportlab)
    assert ImageChops.difference(a, b).getbbox() is None
    assert sum(a.convert("L").histogram()[:128]) > 100  # something was drawn


def _style(alignment: int, font: str = FONT_REGULAR) -> ParagraphStyle:
    return ParagraphStyle(
        f"s{alignment}{font}", fontName=font, fontSize=10.5, leading=13, alignment=alignment
    )


@pytest.mark.parametrize("alignment", [TA_LEFT, TA_CENTER, TA_JUSTIFY])
@pytest.mark.parametrize("width", [120, 300, 467])
def test_text_draws_the_lines_of_reportlabs_paragraph(alignment: int, width: float) -> None:
    texts = ["Những phẩm chất chủ yếu", COMMENT, "Mức đạt được: T – Hoàn thành tốt; " * 5]
    style = _style(alignment)
    _same_pixels(
        _placed(*(Text(t, style) for t in texts), width=width),
        _placed(*(Paragraph(t, style) for t in texts), width=width),
    )


@pytest.mark.parametrize("comment", ["Lễ phép, biết giúp đỡ bạn bè.", COMMENT])
def test_a_led_text_draws_as_a_paragraph_with_an_italic_lead(comment: str) -> None:
    style = _style(TA_JUSTIFY)
    _same_pixels(
        _placed(Text(comment, style, lead=(FONT_ITALIC, "Nhận xét:"))),
        _placed(Paragraph(f"<i>Nhận xét:</i> {comment}", style)),
    )


def test_text_splits_between_lines_as_a_paragraph_does() -> None:
    style = _style(TA_LEFT)
    ours = Text(COMMENT * 3, style).split(300, 3.5 * style.leading)
    theirs = Paragraph(COMMENT * 3, style).split(300, 3.5 * style.leading)
    whole = Text(COMMENT * 3, style)
    whole.wrap(300, 1e6)
    assert [len(part.lines) for part in ours] == [3, len(whole.lines) - 3]
    _same_pixels(_placed(*ours), _placed(*theirs))
    assert Text(COMMENT * 3, style).split(300, 1.5 * style.leading) == []  # no orphan line


class _Cell(CellStyle):
    fontname, fontsize, leading, color, valign = (
        FONT_REGULAR,
        CELL_FONT_SIZE,
        CELL_LEADING,
        INK,
        "MIDDLE",
    )
    topPadding, bottomPadding, leftPadding, rightPadding = 3, 4, CELL_PADDING, CELL_PADDING


def _tables(widths: list[float], rows: int, split_at: float | None = None):
    """The same table as a Grid and as ReportLab's Table: a shaded bold header, a spanned
    group row, rows with a bold centred level, a spanned comment; optionally split."""
    style = _style(TA_LEFT)
    head = ["Phẩm chất", "Mức đạt được"]
    body = [[f"Phẩm chất số {i}", "TĐC"[i % 3]] for i in range(rows)]
    ours = [
        grid_row(
            head, widths, fonts=[FONT_BOLD] * 2, aligns=["CENTER"] * 2, backgrounds=[SHADE] * 2
        )
    ]
    ours.append(
        grid_row(["Năng lực chung"], widths, fonts=[FONT_BOLD], backgrounds=[SHADE], span=True)
    )
    ours += [
        grid_row(r, widths, fonts=[FONT_REGULAR, FONT_BOLD], aligns=["LEFT", "CENTER"])
        for r in body
    ]
    ours.append(grid_row([Text(COMMENT, style)], widths, fonts=[FONT_REGULAR], span=True))
    grid = Grid(widths, ours, grid_color=GRID, box_color=INK, text_color=INK, repeat_rows=1)

    last = rows + 2
    commands = [
        ("GRID", (0, 0), (-1, -1), 0.6, GRID),
        ("BOX", (0, 0), (-1, -1), 1.0, INK),
        ("BACKGROUND", (0, 0), (-1, 0), SHADE),
        ("FONTNAME", (0, 0), (-1, 0), FONT_BOLD),
        ("ALIGN", (0, 0), (-1, 0), "CENTER"),
        ("SPAN", (0, 1), (1, 1)),
        ("BACKGROUND", (0, 1), (1, 1), SHADE),
        ("FONTNAME", (0, 1), (0, 1), FONT_BOLD),
        ("FONTNAME", (1, 2), (1, last - 1), FONT_BOLD),
        ("ALIGN", (1, 2), (1, last - 1), "CENTER"),
        ("SPAN", (0, last), (1, last)),
    ]
    data = [head, ["Năng lực chung", ""], *body, [Paragraph(COMMENT, style), ""]]
    cells = [[_Cell("") for _ in row] for row in data]
    table = Table(
        data, colWidths=widths, style=TableStyle(commands), cellStyles=cells, repeatRows=1
    )
    if split_at is None:
        return [grid], [table]
    table.wrap(sum(widths), 1e6)
    return grid.split(sum(widths), split_at), table.split(sum(widths), split_at)


@pytest.mark.parametrize("rows", [1, 6])
def test_a_grid_draws_what_reportlabs_table_draws(rows: int) -> None:
    ours, theirs = _tables([290, 177.7], rows)
    _same_pixels(_placed(*ours, width=467.7), _placed(*theirs, width=467.7))


def test_a_grid_splits_between_rows_with_its_header_repeated_as_a_table_does() -> None:
    ours, theirs = _tables([290, 177.7], 12, split_at=150)
    assert len(ours) == len(theirs) == 2
    assert [part.wrap(467.7, 1e6)[1] for part in ours] == [
        part.wrap(467.7, 1e6)[1] for part in theirs
    ]
    _same_pixels(_placed(*ours, width=467.7), _placed(*theirs, width=467.7))
    assert _tables([290, 177.7], 12, split_at=30)[0] == []  # not even one row under the header


def _story(variant: int) -> list[Flowable]:
    """A story that exercises what the book's pages need: spaces before and after (dropped
    at the top of a page, overlapped), a negative spacer, text and grids split across
    pages (the grid's header repeated), a ReportLab table with a list of flowables in a
    cell, conditional breaks that fit and that do not, page breaks that change the
    template, and a flowable moved whole to the next page."""
    heading = ParagraphStyle(
        "h", fontName=FONT_BOLD, fontSize=12, leading=15, spaceBefore=8, spaceAfter=4
    )
    body = ParagraphStyle("b", fontName=FONT_REGULAR, fontSize=11.5, leading=15, spaceBefore=2)
    widths = [290.0, 177.7]
    rows = [
        grid_row(
            ["Phẩm chất", "Mức"],
            widths,
            fonts=[FONT_BOLD] * 2,
            aligns=["CENTER"] * 2,
            backgrounds=[SHADE] * 2,
        ),
        *(
            grid_row([f"Dòng {i}", "T"], widths, fonts=[FONT_REGULAR, FONT_BOLD])
            for i in range(12 + 30 * variant)
        ),
    ]
    cell = [Text("Mã số tra cứu", heading), Text(COMMENT, body)]
    table = Table(
        [[cell, "QR"]],
        colWidths=[350, 117.7],
        style=TableStyle(
            [("BOX", (0, 0), (-1, -1), 1.2, INK), ("VALIGN", (0, 0), (-1, -1), "MIDDLE")]
        ),
    )
    story: list[Flowable] = [
        Text("Bìa", heading),
        PageBreak(nextTemplate="page"),
        Text("HỌC BẠ", heading),
        Spacer(1, 10),
        table,
        Spacer(1, -0.6),
        Grid(widths, rows, grid_color=GRID, box_color=INK, text_color=INK, repeat_rows=1),
        Text("Nhận xét", heading),  # its space after overlaps the comment's space before
        Text(COMMENT * (3 + 30 * variant), body),
        CondPageBreak(300 - 200 * variant),  # breaks the page (variant 0)
        Text("Chữ ký", heading),
        Spacer(1, 720),  # then "Sau" does not fit under it: moved to the next page
        Text("Sau", heading),
        PageBreak(),
        CondPageBreak(10),
        Text("Cuối", body),
    ]
    return story


def _templates() -> dict[str, Callable[..., None]]:
    def cover(canv: Canvas, *_: object) -> None:
        canv.setFillColor(SHADE)
        canv.rect(40, 40, 100, 100, stroke=0, fill=1)

    def page(canv: Canvas, *_: object) -> None:
        canv.setFont(FONT_REGULAR, 8.5)
        canv.drawString(70, 30, f"Trang {canv.getPageNumber()}")

    return {"cover": cover, "page": page}


@pytest.mark.parametrize("variant", [0, 1])
def test_lay_out_writes_what_platypus_writes(variant: int) -> None:
    """The book's page loop against platypus's document template with the same frame and
    page templates: the same bytes (so the same pages), over a story that takes every
    way to a new page."""
    from pypdf import PdfReader
    from reportlab.platypus import BaseDocTemplate, Frame, PageTemplate

    from hocba.pdf.layout import lay_out

    frame = (70.0, 56.0, 467.7, 734.0)
    info = {"title": "t", "author": "a", "subject": "s", "creator": "c"}
    theirs = io.BytesIO()
    doc = BaseDocTemplate(theirs, pagesize=A4, invariant=True, **info)
    doc.addPageTemplates(
        [
            PageTemplate(name, frames=[Frame(*frame, 0, 0, 0, 0, id="f")], onPage=draw)
            for name, draw in _templates().items()
        ]
    )
    doc.build(_story(variant))
    ours = io.BytesIO()
    canv = Canvas(ours, pagesize=A4, invariant=True)
    for key, value in info.items():
        getattr(canv, f"set{key.title()}")(value)
    lay_out(canv, _story(variant), frame=frame, templates=_templates(), first="cover")
    canv.save()
    assert ours.getvalue() == theirs.getvalue()

    pages = [page.extract_text() for page in PdfReader(io.BytesIO(ours.getvalue())).pages]
    where = {
        mark: [n for n, text in enumerate(pages, 1) if mark in text]
        for mark in ("Bìa", "Phẩm chất", "Em chăm", "Chữ ký", "Sau", "Cuối", "Trang")
    }
    assert where["Bìa"] == [1] and "Trang" not in pages[0]  # the cover's template, once
    assert where["Trang"] == list(range(2, len(pages) + 1))  # then the page template
    if variant == 0:  # the conditional break ends page 2; "Sau" moves past the spacer
        assert (where["Chữ ký"], where["Sau"], where["Cuối"]) == ([3], [5], [6])
    else:  # the grid (header repeated) and the comment split; the break does not apply
        assert where["Phẩm chất"] == [2, 3] and where["Em chăm"] == [2, 3, 4]
        assert (where["Chữ ký"], where["Sau"], where["Cuối"]) == ([4], [6], [7])


def test_lay_out_refuses_a_flowable_taller_than_an_empty_page() -> None:
    from hocba.pdf.layout import LayoutError, lay_out

    canv = Canvas(io.BytesIO(), pagesize=A4)
    tall = Spacer(1, 800)
    with pytest.raises(LayoutError) as refused:
        lay_out(
            canv,
            [Spacer(1, 100), tall],
            frame=(70.0, 56.0, 467.7, 734.0),
            templates={"page": lambda _canv: None},
            first="page",
        )
    # the person reads what cannot be printed and what to do; the code keeps the flowable
    assert refused.value.flowable is tall
    assert "không in được" in refused.value.message and "rút gọn" in refused.value.message


@pytest.mark.parametrize("multiline", [True, False])
def test_dictionaries_are_written_as_reportlab_writes_them(multiline: bool) -> None:
    from collections import OrderedDict

    from reportlab.pdfbase import pdfdoc

    from hocba.pdf import render

    entries = {f"Key{i}": i * 1.5 for i in range(14)}
    entries |= {"Type": pdfdoc.PDFName("Page"), "Odd #(name)": pdfdoc.PDFString("Học bạ")}
    for items in (entries, OrderedDict(reversed(list(entries.items()))), {}):
        dictionary = pdfdoc.PDFDictionary(items)
        dictionary.multiline = multiline
        for _ in range(2):  # the second time from the names kept
            ours = render._format_dictionary(dictionary, pdfdoc.PDFDocument())
            theirs = render._REPORTLAB_FORMAT_DICTIONARY(dictionary, pdfdoc.PDFDocument())
            assert ours == theirs
            assert b"/Odd#20#23#28name#29" in ours or not items
