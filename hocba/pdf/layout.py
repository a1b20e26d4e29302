"""The two flowables the book is made of besides ReportLab's own — plain text and grid
tables — and the loop that places a story of flowables on pages (:func:`lay_out`).

ReportLab's ``Paragraph`` and ``Table`` are general (markup, spans of any shape, styles
applied cell by cell, auto sizes) and cost accordingly: laying out and drawing a
five-year book's 110 paragraphs and 23 tables with them was two thirds of its rendering
time (``bench/pdf.py``, issue 14). The book's tables have fixed column widths, one cell
style and full-width spans only, and its paragraphs are of one font (a comment is led by
a few italic words), so:

* :class:`Text` — a paragraph of one font and colour. Its lines are ReportLab's (the same
  line breaks, computed once per text, style and width, or measured directly when the
  text fits on one line) and are drawn where ``Paragraph`` draws them (first baseline
  ``fontSize`` below the top, ``leading`` apart; left, centred or justified; a line a
  little too long squeezed by word spacing). It splits between lines as ``Paragraph``
  does. A comment with its lead is drawn here when it fits on one line, else by
  ``Paragraph``.
* :class:`Grid` — a table of :class:`GridRow` s whose heights are known when the row is
  made (the widths are fixed), drawn as ReportLab's ``Table`` draws a ``GRID`` + ``BOX``
  table (backgrounds, cells, then the lines, segment by segment, round caps) and split
  between rows with the header rows repeated, as ``Table.split`` does.

Both write their text with :func:`text_operators` (``BT … Tj … ET``, the operators of
ReportLab's ``drawString``) in the family's seeded font subsets, and record the operators
of a grid row, of a grid's lines and of a paragraph the first time: the same row or
paragraph at the same place in another book (labels, headings, legends, most levels) is
written by replaying them (:func:`_replay`). ``tests/tasks/test_pdf_layout.py`` compares
both with ReportLab's flowables pixel by pixel.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any, TypeAlias
from xml.sax.saxutils import escape

from reportlab.lib.colors import Color
from reportlab.lib.enums import TA_CENTER, TA_JUSTIFY, TA_LEFT
from reportlab.lib.fonts import ps2tt, tt2ps
from reportlab.lib.rl_accel import fp_str
from reportlab.lib.styles import ParagraphStyle
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import CondPageBreak, Flowable, PageBreak, Paragraph, Spacer
from reportlab.platypus.doctemplate import ActionFlowable

from hocba.errors import HocbaError
from hocba.pdf.fonts import encoded_runs, is_seeded, of_alphabet

__all__ = [
    "CELL_FONT_SIZE",
    "CELL_LEADING",
    "CELL_PADDING",
    "Grid",
    "GridRow",
    "LayoutError",
    "Text",
    "draw_text",
    "draw_translated",
    "font_with",
    "text_operators",
]

CELL_FONT_SIZE = 10.5
CELL_LEADING = 13.0
CELL_PADDING = 5.0  # left and right
CELL_TOP_PADDING = 3.0
CELL_BOTTOM_PADDING = 4.0
GRID_WIDTH = 0.6
BOX_WIDTH = 1.0


# ============================================================================ text
def text_operators(
    canv: Canvas,
    runs: Sequence[tuple[str, str]],
    size: float,
    x: float,
    y: float,
    word_space: float = 0,
) -> str:
    """The content operators that draw ``runs`` ((font name, text) pairs, one after the
    other) with the left end of the baseline at (x, y): ``BT``, the origin, per font and
    subset the font and ``Tj``, ``ET`` — what ``canv.drawString`` writes for a TrueType
    font, without its text object. A ``word_space`` (``Tw``: a justified line, or one
    squeezed to its width) is reset after the text."""
    doc = canv._doc
    size_text = fp_str(size)
    parts = [
        f"{_subset_name(font_name, subset, doc)} {size_text} Tf ({chunk}) Tj"
        for font_name, text in runs
        for subset, chunk in encoded_runs(font_name, text, doc)
    ]
    if word_space:
        return f"BT 1 0 0 1 {fp_str(x, y)} Tm {fp_str(word_space)} Tw {' '.join(parts)} 0 Tw ET"
    return f"BT 1 0 0 1 {fp_str(x, y)} Tm {' '.join(parts)} ET"


def draw_translated(flowable: Flowable, canvas: Canvas, x: float, y: float) -> None:
    """What ``Flowable.drawOn`` writes (``q``, the translation, the drawing, ``Q``) for a
    flowable whose drawing leaves the canvas's state as it found it, without the canvas's
    copy and restore of its state (nor its record of the translation: the drawing must not
    ask the canvas for absolute positions)."""
    code = canvas._code
    code.append("q")
    code.append(f"{fp_str(1, 0, 0, 1, x, y)} cm")
    flowable._drawOn(canvas)
    code.append("Q")


def _subset_name(font_name: str, subset: int, doc: Any) -> str:
    """The resource name (``/F1+0``) of ``font_name``'s ``subset`` in ``doc``."""
    names = _subset_names(doc)
    key = (font_name, subset)
    name = names.get(key)
    if name is None:
        name = names[key] = pdfmetrics.getFont(font_name).getSubsetInternalName(subset, doc)
    return name


def _subset_names(doc: Any) -> dict[tuple[str, int], str]:
    """``doc``'s names of the subsets asked for so far, kept on the document itself (an
    attribute lookup: this is asked for every text drawn)."""
    try:
        names: dict[tuple[str, int], str] = doc.hocba_subset_names
    except AttributeError:
        names = doc.hocba_subset_names = {}
    return names


@lru_cache(maxsize=16384)
def string_width(text: str, font_name: str, size: float) -> float:
    """``pdfmetrics.stringWidth`` (a pure function of its arguments) kept per text, font
    and size: the book measures the same labels, headings and levels in every book (~320
    measures a five-year book, most of them repeats)."""
    return float(pdfmetrics.stringWidth(text, font_name, size))


def draw_text(canv: Canvas, x: float, y: float, text: str, align: str = "left") -> None:
    """``canv.drawString(x, y, text)`` (``align`` ``"centre"``: ``drawCentredString``,
    ``"right"``: ``drawRightString``) in the canvas's current font (a TrueType font of the
    family), through :func:`text_operators`."""
    font = pdfmetrics.getFont(canv._fontname)
    if not getattr(font, "_dynamicFont", False) or not canv.bottomup:
        {"left": canv.drawString, "centre": canv.drawCentredString}.get(
            align, canv.drawRightString
        )(x, y, text)
        return
    if align != "left":
        width = string_width(text, canv._fontname, canv._fontsize)
        x -= width / 2 if align == "centre" else width
    canv._code.append(text_operators(canv, ((canv._fontname, text),), canv._fontsize, x, y))


def font_with(font_name: str, markup: str) -> str:
    """The family member of ``font_name`` with ``markup``'s ``b`` (bold) / ``i`` (italic)
    added — what ``<b>`` / ``<i>`` select in a paragraph of that font."""
    if not markup:
        return font_name
    family, bold, italic = ps2tt(font_name)
    return str(tt2ps(family, bold or "b" in markup, italic or "i" in markup))


_RECORDED: dict[Hashable, tuple[str, ...]] = {}
_RECORDED_MAX = 50_000


def _replay(canv: Canvas, key: Hashable, draw: Callable[[], None]) -> None:
    """Append the content operators recorded for ``key``, or run ``draw`` and record the
    operators it appends. ``key`` must hold everything the operators depend on,
    including the names of the fonts in the document (:func:`_font_names`)."""
    code = canv._code
    recorded = _RECORDED.get(key)
    if recorded is not None:
        code.extend(recorded)
        return
    start = len(code)
    draw()
    if len(_RECORDED) >= _RECORDED_MAX:
        _RECORDED.clear()
    _RECORDED[key] = tuple(code[start:])


def _font_names(runs: Iterable[tuple[str, str]], doc: Any) -> tuple[str, ...] | None:
    """The document's names of the fonts of ``runs`` ((font, text) pairs), or ``None`` if
    the codes of a text are the document's own (:func:`~hocba.pdf.fonts.has_fixed_codes`):
    then its operators cannot be replayed in another document."""
    if not is_seeded(doc):
        return None
    known = _subset_names(doc)
    names = []
    for font_name, text in runs:
        if not of_alphabet(text):
            return None
        name = known.get((font_name, 0))
        names.append(name if name is not None else _subset_name(font_name, 0, doc))
    return tuple(names)


def _names_of_fonts(fonts: tuple[str, ...], doc: Any) -> tuple[str, ...]:
    """The document's names of the first subsets of ``fonts`` (kept on the document)."""
    try:
        known: dict[tuple[str, ...], tuple[str, ...]] = doc.hocba_font_tuple_names
    except AttributeError:
        known = doc.hocba_font_tuple_names = {}
    names = known.get(fonts)
    if names is None:
        names = known[fonts] = tuple(_subset_name(font, 0, doc) for font in fonts)
    return names


Run = tuple[str, str]  # (font name, text)
Line = tuple[float, tuple[Run, ...]]  # (space left on the line, its runs of one font each)


@lru_cache(maxsize=8192)
def _lines(
    text: str, font_name: str, size: float, leading: float, width: float
) -> tuple[Line, ...]:
    """The lines ReportLab's ``Paragraph`` breaks ``text`` (one font) into at ``width``:
    measured directly when it fits on one line, else ReportLab's own line breaking."""
    words = text.split()
    if not words:
        return ()
    line = " ".join(words)
    used = string_width(line, font_name, size)
    if used <= width:
        return ((width - used, ((font_name, line),)),)
    style = ParagraphStyle("t", fontName=font_name, fontSize=size, leading=leading)
    paragraph = Paragraph(escape(text), style)
    paragraph.wrap(width, 1e9)
    return tuple(
        (extra, ((font_name, " ".join(words)),)) for extra, words in paragraph.blPara.lines
    )


class Text(Flowable):
    """A paragraph of one font and colour (see the module), optionally led by a few words
    in another font of the family (``lead``: "*Nhận xét:* …"); ``"\\n"`` breaks a line.

    A led paragraph is drawn here when it fits on one line; a longer one is laid out and
    drawn by ReportLab's ``Paragraph`` (the lead in ``<font face>`` markup), whose line
    breaking across fonts this class does not repeat."""

    def __init__(
        self,
        text: str,
        style: ParagraphStyle,
        font_name: str | None = None,
        *,
        lead: Run | None = None,
        color: Color | None = None,
        lines: tuple[Line, ...] | None = None,
    ) -> None:
        super().__init__()
        if style.alignment not in (TA_LEFT, TA_CENTER, TA_JUSTIFY):
            raise ValueError(f"Text draws left, centred or justified lines, not {style.alignment}")
        self.text = text
        self.style = style
        self.font_name = font_name or style.fontName
        self.lead = lead
        self.color = color or style.textColor
        self._fixed_lines = lines
        self.lines: tuple[Line, ...] = lines or ()
        self._paragraph: Paragraph | None = None
        self.width = self.height = 0.0

    def getSpaceBefore(self) -> float:
        return float(self.style.spaceBefore)

    def getSpaceAfter(self) -> float:
        return float(self.style.spaceAfter)

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        style = self.style
        if self._paragraph is not None:
            return self._paragraph.wrap(availWidth, availHeight)
        if availWidth == self.width and self.lines:
            return self.width, self.height  # wrapped again: by a table's draw, a frame
        self.width = availWidth
        if self._fixed_lines is None:
            width = availWidth - style.leftIndent - style.rightIndent
            if self.lead is None:
                self.lines = tuple(
                    line
                    for part in self.text.split("\n")
                    for line in _lines(part, self.font_name, style.fontSize, style.leading, width)
                )
            else:
                self.lines = self._led_line(width)
                if not self.lines:
                    return self._fallback().wrap(availWidth, availHeight)
        self.height = style.leading * len(self.lines)
        return self.width, self.height

    def _led_line(self, width: float) -> tuple[Line, ...]:
        """The lead and the text as one line, if they fit (else nothing)."""
        assert self.lead is not None
        size = self.style.fontSize
        lead_font, lead = self.lead
        text = " ".join(self.text.split())
        used = string_width(lead, lead_font, size)
        if text:
            text = " " + text
            used += string_width(text, self.font_name, size)
        if used > width:
            return ()
        return ((width - used, ((lead_font, lead), (self.font_name, text))),)

    def _fallback(self) -> Paragraph:
        if self._paragraph is None:
            assert self.lead is not None
            lead_font, lead = self.lead
            body = f"<font face='{lead_font}'>{escape(lead)}</font> {escape(self.text)}"
            self._paragraph = Paragraph(body, self.style)
        return self._paragraph

    def split(self, availWidth: float, availHeight: float) -> list[Flowable]:
        """Between lines, as ``Paragraph.split`` (no single orphan line left behind)."""
        self.wrap(availWidth, availHeight)
        if self._paragraph is not None:
            return list(self._paragraph.split(availWidth, availHeight))
        style = self.style
        fit = int(availHeight / style.leading)
        if not self.lines or fit == 0 or fit == 1 and not style.allowOrphans:
            return []
        if len(self.lines) <= fit:
            return [self]
        return [self._part(self.lines[:fit]), self._part(self.lines[fit:])]

    def _part(self, lines: tuple[Line, ...]) -> Text:
        return Text(self.text, self.style, self.font_name, color=self.color, lines=lines)

    def drawOn(self, canvas: Canvas, x: float, y: float, _sW: float = 0) -> None:
        """``Flowable.drawOn`` (``q``, the translation, the drawing, ``Q``) written directly:
        the lines are operators only, they never change the canvas's state, so the
        canvas need not copy and restore its state (about a hundred Texts a book). The same
        operators; ReportLab's own ``drawOn`` for the ``Paragraph`` fallback."""
        if self._paragraph is not None or getattr(self, "_showBoundary", False):
            super().drawOn(canvas, x, y, _sW)
            return
        draw_translated(self, canvas, self._hAlignAdjust(x, _sW), y)

    def draw(self) -> None:
        canv = self.canv
        if self._paragraph is not None:
            self._paragraph.drawOn(canv, 0, 0)
            return
        names = _font_names((run for _, runs in self.lines for run in runs), canv._doc)
        if names is None:
            self._draw_lines()
            return
        style = self.style
        key = (self.lines, style.fontSize, style.leading, style.alignment, style.leftIndent)
        _replay(canv, ("text", *key, self.height, self.color.rgb(), names), self._draw_lines)

    def _draw_lines(self) -> None:
        canv, style = self.canv, self.style
        code = canv._code
        code.append(f"{fp_str(*self.color.rgb())} rg")
        alignment = style.alignment
        x0 = style.leftIndent
        y = self.height - style.fontSize
        last = len(self.lines) - 1
        for number, (extra, runs) in enumerate(self.lines):
            x, word_space = x0, 0.0
            spaces = sum(text.count(" ") for _, text in runs)
            if spaces and (extra < -1e-8 or alignment == TA_JUSTIFY and number < last):
                word_space = extra / spaces  # squeezed a little, or justified
            elif alignment == TA_CENTER:
                x += 0.5 * extra
            code.append(text_operators(canv, runs, style.fontSize, x, y, word_space))
            y -= style.leading


# ============================================================================ grid
Cell: TypeAlias = str | Flowable


@dataclass(frozen=True)
class GridRow:
    """One row of a :class:`Grid`: its cells (text or a flowable, e.g. :class:`Text`), each
    cell's font (for text cells), alignment (``LEFT`` / ``CENTER``) and background; with
    ``span`` the first cell covers the whole row. ``height`` is computed from the cells
    (ReportLab's rule: tallest cell plus the paddings; a text cell is one ``leading``)."""

    cells: tuple[Cell, ...]
    fonts: tuple[str, ...]
    aligns: tuple[str, ...]
    backgrounds: tuple[Color | None, ...]
    span: bool
    height: float
    text_key: tuple[object, ...] | None = None
    """For a row of text cells only, all of :data:`~hocba.pdf.fonts.FONT_ALPHABET`: what
    its cells' operators depend on besides the place and the document's font names (the
    key they are recorded under, :meth:`Grid.draw`)."""


def grid_row(
    cells: Sequence[Cell],
    widths: Sequence[float],
    *,
    fonts: Sequence[str],
    aligns: Sequence[str] | None = None,
    backgrounds: Sequence[Color | None] | None = None,
    span: bool = False,
) -> GridRow:
    """A :class:`GridRow` for columns of ``widths`` (flowable cells are wrapped here)."""
    count = len(cells)
    height = CELL_LEADING
    texts = True
    for index, cell in enumerate(cells):
        if isinstance(cell, Flowable):
            width = sum(widths) if span else widths[index]
            _, cell_height = cell.wrap(width - 2 * CELL_PADDING, 1e9)
            height = max(height, cell_height)
            texts = False
        elif texts and not of_alphabet(cell):
            texts = False
    row_cells, row_fonts = tuple(cells), tuple(fonts)
    row_aligns = tuple(aligns or ("LEFT",) * count)
    height += CELL_TOP_PADDING + CELL_BOTTOM_PADDING
    return GridRow(
        cells=row_cells,
        fonts=row_fonts,
        aligns=row_aligns,
        backgrounds=tuple(backgrounds or (None,) * count),
        span=span,
        height=height,
        text_key=(row_cells, row_fonts, row_aligns, span, height) if texts else None,
    )


class Grid(Flowable):
    """A table of fixed column widths with a thin grid and a stronger outer box (the
    ``GRID`` 0.6 pt + ``BOX`` 1 pt of the book's tables); ``repeat_rows`` header rows are
    repeated at the top of each part when it is split across pages."""

    def __init__(
        self,
        widths: Sequence[float],
        rows: Sequence[GridRow],
        *,
        grid_color: Color,
        box_color: Color,
        text_color: Color,
        repeat_rows: int = 0,
        continued: bool = False,
    ) -> None:
        super().__init__()
        self.continued = continued
        self.widths = tuple(widths)
        self.rows = tuple(rows)
        self.grid_color, self.box_color, self.text_color = grid_color, box_color, text_color
        self.repeat_rows = repeat_rows
        self.width = sum(self.widths)
        self.height = sum(row.height for row in self.rows)

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        return self.width, self.height

    def split(self, availWidth: float, availHeight: float) -> list[Flowable]:
        """Between rows, never before the header rows' end (ReportLab's ``Table.split``)."""
        fit, used = 0, 0.0
        for row in self.rows:
            if used + row.height > availHeight:
                break
            used += row.height
            fit += 1
        if fit <= self.repeat_rows:
            return []
        if fit == len(self.rows):
            return [self]
        first = self.rows[:fit]
        rest = self.rows[: self.repeat_rows] + self.rows[fit:]
        return [self._part(first, continued=True), self._part(rest, continued=self.continued)]

    def _part(self, rows: Sequence[GridRow], *, continued: bool) -> Grid:
        return Grid(
            self.widths,
            rows,
            grid_color=self.grid_color,
            box_color=self.box_color,
            text_color=self.text_color,
            repeat_rows=self.repeat_rows,
            continued=continued,
        )

    def drawOn(self, canvas: Canvas, x: float, y: float, _sW: float = 0) -> None:
        """:func:`draw_translated`: :meth:`draw` restores the state it changes."""
        draw_translated(self, canvas, x, y)

    def draw(self) -> None:
        """Backgrounds, cells, lines, as ReportLab's ``Table.draw``. The operators of a row
        of text cells, of its backgrounds and of the lines are recorded the first time and
        replayed for the same row at the same place (and the same fonts' names in the
        document): the labels, headings and most levels of a book repeat in every book."""
        canv = self.canv
        doc = canv._doc
        columns = [0.0]
        for width in self.widths:
            columns.append(columns[-1] + width)
        tops = [self.height]  # row boundaries, top down (ReportLab's row positions)
        for row in self.rows:
            tops.append(tops[-1] - row.height)
        canv.saveState()
        for row, top in zip(self.rows, tops, strict=False):
            if any(row.backgrounds):
                place = (row.backgrounds, row.span, top, row.height, self.widths)
                _replay(
                    canv,
                    ("backgrounds", *place),
                    partial(self._draw_backgrounds, row, top, columns),
                )
        canv.setFillColor(self.text_color)
        seeded = is_seeded(doc)
        for row, top in zip(self.rows, tops, strict=False):
            if row.text_key is None or not seeded:
                self._draw_cells(row, top - row.height, columns)
                continue
            key = ("cells", row.text_key, top, self.widths, _names_of_fonts(row.fonts, doc))
            _replay(canv, key, partial(self._draw_cells, row, top - row.height, columns))
        spans = tuple(row.span for row in self.rows)
        heights = tuple(row.height for row in self.rows)
        shape = (self.widths, heights, spans, self.continued, self.grid_color, self.box_color)
        _replay(canv, ("lines", *shape), partial(self._draw_lines, columns, tops))
        canv.restoreState()

    def _draw_backgrounds(self, row: GridRow, top: float, columns: Sequence[float]) -> None:
        code = self.canv._code
        for index, color in enumerate(row.backgrounds):
            if color is not None:
                right = columns[-1] if row.span else columns[index + 1]
                code.append(f"{fp_str(*color.rgb())} rg")
                box = (columns[index], top - row.height, right - columns[index], row.height)
                code.append(f"n {fp_str(*box)} re f")
            if row.span:
                break

    def _draw_cells(self, row: GridRow, bottom: float, columns: Sequence[float]) -> None:
        canv = self.canv
        code = canv._code
        for index, cell in enumerate(row.cells):
            left = columns[index]
            width = (columns[-1] if row.span else columns[index + 1]) - left
            if isinstance(cell, Flowable):
                _, height = cell.wrap(width - 2 * CELL_PADDING, 1e9)
                y = bottom + (row.height + CELL_BOTTOM_PADDING - CELL_TOP_PADDING - height) / 2
                cell.drawOn(canv, left + CELL_PADDING, y)
            elif cell:
                font = row.fonts[index]
                y = (
                    bottom
                    + (CELL_BOTTOM_PADDING + row.height - CELL_TOP_PADDING + CELL_LEADING) / 2
                    - CELL_FONT_SIZE
                )
                if row.aligns[index] == "LEFT":
                    x = left + CELL_PADDING
                else:
                    x = left + width / 2 - string_width(cell, font, CELL_FONT_SIZE) / 2
                code.append(text_operators(canv, ((font, cell),), CELL_FONT_SIZE, x, y))
            if row.span:
                break

    def _draw_lines(self, columns: Sequence[float], tops: Sequence[float]) -> None:
        """The segments ReportLab draws for ``GRID`` then ``BOX``, in its order: outer box,
        inner horizontal lines, inner vertical lines (broken where a row spans), box. A
        part that continues on the next page (``continued``) is closed by the thin line
        only, as ReportLab draws the first part of a split table."""
        code = self.canv._code
        left, right, top, bottom = columns[0], columns[-1], tops[0], tops[-1]

        def line(x1: float, y1: float, x2: float, y2: float) -> None:
            code.append(f"n {fp_str(x1, y1)} m {fp_str(x2, y2)} l S")

        def box(*, closed: bool = True) -> None:
            line(left, top, right, top)
            if not self.continued:
                line(left, bottom, right, bottom)
            line(left, bottom, left, top)
            line(right, bottom, right, top)
            if self.continued and closed:
                line(left, bottom, right, bottom)

        code.append("1 J 1 j")  # round caps and joins
        code.append(f"{fp_str(*self.grid_color.rgb())} RG {fp_str(GRID_WIDTH)} w")
        box()
        for y in tops[1:-1]:
            line(left, y, right, y)
        for x in columns[1:-1]:
            start = None  # the lowest row boundary of the current run of unspanned rows
            for index in range(len(self.rows) - 1, -1, -1):
                if self.rows[index].span:
                    if start is not None:
                        line(x, start, x, tops[index + 1])
                        start = None
                elif start is None:
                    start = tops[index + 1]
            if start is not None:
                line(x, start, x, top)
        code.append(f"{fp_str(*self.box_color.rgb())} RG {fp_str(BOX_WIDTH)} w")
        box(closed=False)


# ============================================================================ pages
_FUZZ = 1e-6  # ReportLab's rl_config._FUZZ: layout arithmetic's tolerance


class LayoutError(HocbaError, ValueError):
    """A flowable does not fit on an empty page (ReportLab's ``LayoutError``)."""

    def __init__(self, flowable: Flowable) -> None:
        super().__init__(
            f"Một phần của học bạ ({type(flowable).__name__}) dài hơn một trang giấy nên "
            "không in được: hãy rút gọn phần nhận xét quá dài, hoặc báo quản trị hệ thống "
            "kèm mã học sinh."
        )
        self.flowable = flowable


def lay_out(
    canv: Canvas,
    story: Sequence[Flowable],
    *,
    frame: tuple[float, float, float, float],
    templates: dict[str, Callable[[Canvas], None]],
    first: str,
) -> None:
    """Place ``story`` on pages of ``canv`` in one frame (left, bottom, width, height), as
    ReportLab's ``BaseDocTemplate.build`` does with one frame of no padding per page, and
    end the last page (``canv.save()`` is the caller's).

    The same operators in the same order as platypus writes for the book's story: each
    page starts with its template's drawing (``templates[name](canv)``: ``first``'s, then
    the template a ``PageBreak(nextTemplate=name)`` names), when the first flowable of the
    page comes; a flowable's ``spaceBefore`` is dropped at the top of the page and
    overlaps the previous one's ``spaceAfter``; each is drawn by its ``drawOn`` at the
    frame's left edge; one that does not fit is split (the first part drawn, the rest
    carried to the next page) or, if it cannot be split, moved to the next page; a
    ``CondPageBreak`` ends the page if less than its height is left. Without platypus's
    document template, frames and page templates — general machinery (frame geometry
    recomputed on every attribute set, action flowables, page-template cycles, a copy of
    the frame for each wrap of a table cell holding flowables) that cost ~8 % of a five-year
    book's rendering (instructions; issue 14, docs/PERFORMANCE.md).
    ``tests/tasks/test_pdf_layout.py`` compares its output with platypus's, byte for byte.
    """
    left, bottom, width, height = frame
    top = bottom + height
    pending = list(reversed(story))  # the next flowable last: popped, split parts pushed
    template = templates[first]
    following: Callable[[Canvas], None] | None = None
    postponed: dict[int, Flowable] = {}  # moved to a new page once (kept: ids stay unique)
    page_open = False
    y = top
    at_top = True
    space_after = 0.0  # the previous flowable's, overlapped by the next one's space before

    def place(flowable: Flowable, *, split: bool) -> list[Flowable] | None:
        """Draw ``flowable`` if it fits (``None``), else its parts (``split``) or ``[]``."""
        nonlocal y, at_top, space_after
        space = 0.0 if at_top else max(flowable.getSpaceBefore() - space_after, 0)
        room = y - bottom - space
        flowable.canv = canv  # as a frame sets it: a table's wrap measures with it
        try:
            if room > 0:
                used_width, used_height = flowable.wrap(width, room)
                drawn_at = y - (used_height + space)
                if drawn_at >= bottom - _FUZZ:
                    if type(flowable) is Spacer:  # draws nothing (platypus writes q cm Q)
                        draw_translated(flowable, canv, left, drawn_at)
                    else:
                        flowable.drawOn(canv, left, drawn_at, width - used_width)
                    space_after = flowable.getSpaceAfter()
                    if drawn_at - space_after != y:
                        at_top = False
                    y = drawn_at - space_after
                    return None
            if not split:
                raise LayoutError(flowable)  # not even its first part fits the room left
            return list(flowable.split(width, room)) if room > 0 else []
        finally:
            flowable.__dict__.pop("canv", None)

    while pending:
        flowable = pending.pop()
        if not page_open:
            template(canv)
            page_open, y, at_top, space_after = True, top, True, 0.0
        if isinstance(flowable, PageBreak):
            if flowable.nextTemplate:
                following = templates[flowable.nextTemplate]
        elif isinstance(flowable, ActionFlowable):
            raise TypeError(f"lay_out places flowables and page breaks, not {flowable!r}")
        elif isinstance(flowable, CondPageBreak):
            if y - bottom > 0:
                draw_translated(flowable, canv, left, y)  # what platypus writes: q cm Q
                space_after = 0.0
                if y - bottom >= flowable.height:
                    continue
            else:  # no room at all: platypus moves it to the next page
                pending.append(flowable)
        else:
            parts = place(flowable, split=True)
            if parts is None:
                continue
            if parts:
                place(parts[0], split=False)
                pending.extend(reversed(parts[1:]))
                continue
            if id(flowable) in postponed:
                raise LayoutError(flowable)  # does not fit an empty page
            postponed[id(flowable)] = flowable
            pending.append(flowable)
        canv.showPage()  # the end of the page: a break, or what follows goes on the next
        page_open = False
        if following is not None:
            template, following = following, None
    if page_open:
        canv.showPage()
