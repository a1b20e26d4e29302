"""The visible side of the two signatures: the principal's box and the school seal's round
stamp (drawn with ReportLab, cached per signer, text and date), and where they go on the
page (the ``/FitR`` outline destination that :func:`~hocba.pdf.render.render_book` writes).
"""

from __future__ import annotations

import functools
import io
import math
import re
import threading
from collections.abc import Iterator
from typing import Any

from pyhanko.pdf_utils import content, generic, layout
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.stamp import StaticStampStyle
from reportlab.lib import colors
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen.canvas import Canvas

from hocba.pdf.book import PdfSignError, _get, _Placement
from hocba.pdf.fonts import (
    FONT_BOLD,
    FONT_BOLD_ITALIC,
    FONT_ITALIC,
    FONT_REGULAR,
    compact_font_subsets,
    register_fonts,
)

_SEAL_DIAMETER = 96.0
_SEAL_RED = colors.Color(0.80, 0.07, 0.12)
_NAVY = colors.HexColor("#1f3a68")


@functools.lru_cache(maxsize=64)
def _appearance_reader(pdf: bytes) -> tuple[PdfFileReader, threading.Lock]:
    """A stamp's one-page PDF, parsed once (its objects stay resolved in the reader), with
    the lock that serialises imports from it (the reader resolves objects lazily)."""
    return PdfFileReader(io.BytesIO(pdf), strict=False), threading.Lock()


class _ImportedAppearance(content.PdfContent):
    """A one-page PDF (made with ReportLab) imported as the stamp's form XObject.

    The PDF is parsed once per process (:func:`_appearance_reader`, keyed by its bytes,
    which are themselves built once per signer, text and date), so each book only copies
    the already-parsed objects (content stream, font subsets) into its own file."""

    def __init__(self, pdf: bytes) -> None:
        super().__init__()
        self.pdf = pdf

    def render(self) -> bytes:
        writer = self._ensure_writer
        reader, lock = _appearance_reader(self.pdf)
        with lock:
            xobject = writer.import_page_as_xobject(reader, page_ix=0)
        self.resources.xobject["/HocBaAppearance"] = xobject
        x1, y1, x2, y2 = xobject.get_object()["/BBox"]
        self.box = layout.BoxConstraints(width=abs(x2 - x1), height=abs(y2 - y1))
        return b"/HocBaAppearance Do"


def _static_style(pdf: bytes) -> StaticStampStyle:
    return StaticStampStyle(
        background=_ImportedAppearance(pdf),
        border_width=0,
        background_opacity=1.0,
        background_layout=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MID,
            y_align=layout.AxisAlignment.ALIGN_MID,
            margins=layout.Margins.uniform(0),
        ),
    )


def _fit(text: str, font: str, size: float, width: float) -> float:
    """The largest font size ≤ ``size`` at which ``text`` fits in ``width``."""
    natural = pdfmetrics.stringWidth(text, font, size)
    return size if natural <= width else max(5.0, size * width / natural)


@functools.lru_cache(maxsize=256)
def _principal_appearance(
    name: str, role: str, organisation: str, when: str, width: float, height: float
) -> bytes:
    """The principal's signature box: the name written large (the seal will cover its
    start, as a stamp covers a handwritten signature) and the signing details."""
    register_fonts()
    out = io.BytesIO()
    canv = Canvas(out, pagesize=(width, height), invariant=1, pageCompression=1)
    compact_font_subsets(canv)
    canv.setFillColor(colors.white)
    canv.rect(0, 0, width, height, stroke=0, fill=1)
    canv.setStrokeColor(_NAVY)
    canv.setLineWidth(0.8)
    canv.rect(0.4, 0.4, width - 0.8, height - 0.8, stroke=1, fill=0)
    # check mark: "signed" (drawn, no font needed)
    canv.setStrokeColor(colors.HexColor("#1b7f3b"))
    canv.setLineWidth(2.2)
    check = canv.beginPath()
    check.moveTo(width - 22, height - 16)
    check.lineTo(width - 16, height - 22)
    check.lineTo(width - 7, height - 9)
    canv.drawPath(check, stroke=1, fill=0)
    canv.setFillColor(_NAVY)
    size = _fit(name, FONT_BOLD_ITALIC, 17, width - 40)
    canv.setFont(FONT_BOLD_ITALIC, size)
    canv.drawCentredString(width / 2 - 6, height - 26, name)
    left = width / 3 + 2
    lines = (
        (FONT_REGULAR, f"Ký bởi: {name}"),
        (FONT_REGULAR, role),
        (FONT_REGULAR, organisation),
        (FONT_ITALIC, f"Ngày ký: {when}"),
    )
    y = height - 41
    for font, text in lines:
        canv.setFont(font, _fit(text, font, 7.6, width - left - 4))
        canv.drawString(left, y, text)
        y -= 9.4
    canv.showPage()
    canv.save()
    return out.getvalue()


def _arc_text(canv: Canvas, text: str, radius: float, font: str, size: float, *, top: bool):
    """Characters along a circle around the origin: over the top, read left to right;
    along the bottom, read left to right (upright)."""
    widths = [pdfmetrics.stringWidth(ch, font, size) for ch in text]
    total = sum(widths) / radius  # radians
    angle = math.pi / 2 + total / 2 if top else -math.pi / 2 - total / 2
    canv.setFont(font, size)
    for ch, w in zip(text, widths, strict=True):
        step = w / radius
        middle = angle - step / 2 if top else angle + step / 2
        canv.saveState()
        canv.rotate(math.degrees(middle) - 90 if top else math.degrees(middle) + 90)
        canv.drawCentredString(0, radius if top else -radius - size * 0.7, ch)
        canv.restoreState()
        angle = angle - step if top else angle + step


@functools.lru_cache(maxsize=256)
def _seal_appearance(school: str, place: str, when: str, diameter: float) -> bytes:
    """The school's round red seal: the school's name along the top, its place along the
    bottom, a star and the sealing date in the centre; translucent, so the principal's
    box shows through as under a real stamp."""
    register_fonts()
    out = io.BytesIO()
    canv = Canvas(out, pagesize=(diameter, diameter), invariant=1, pageCompression=1)
    compact_font_subsets(canv)
    canv.translate(diameter / 2, diameter / 2)
    canv.setFillColor(_SEAL_RED, alpha=0.85)
    canv.setStrokeColor(_SEAL_RED, alpha=0.85)
    outer = diameter / 2 - 1.5
    canv.setLineWidth(2.4)
    canv.circle(0, 0, outer, stroke=1, fill=0)
    canv.setLineWidth(0.8)
    canv.circle(0, 0, outer - 3.2, stroke=1, fill=0)
    inner = outer - 17
    canv.circle(0, 0, inner, stroke=1, fill=0)
    ring = outer - 11.5
    top_text = school.upper()
    size = min(8.0, 0.80 * math.pi * ring / max(pdfmetrics.stringWidth(top_text, FONT_BOLD, 1), 1))
    _arc_text(canv, top_text, ring, FONT_BOLD, size, top=True)
    bottom_text = f"★ {place.upper()} ★" if place else ""
    if bottom_text:
        plain = bottom_text.replace("★", "")
        bottom_size = min(
            7.0, 0.55 * math.pi * ring / max(pdfmetrics.stringWidth(plain, FONT_BOLD, 1), 1)
        )
        _arc_text(canv, plain.strip(), ring - 0.5, FONT_BOLD, bottom_size, top=False)
    # the star
    star = canv.beginPath()
    spikes, r_out, r_in = 5, 9.5, 3.8
    for i in range(2 * spikes):
        r = r_out if i % 2 == 0 else r_in
        a = math.pi / 2 + i * math.pi / spikes
        point = (r * math.cos(a), r * math.sin(a) + 8)
        if i == 0:
            star.moveTo(*point)
        else:
            star.lineTo(*point)
    star.close()
    canv.drawPath(star, stroke=0, fill=1)
    canv.setFont(FONT_BOLD, 6.4)
    canv.drawCentredString(0, -6, "ĐÃ KÝ SỐ")
    canv.setFont(FONT_REGULAR, 6.0)
    canv.drawCentredString(0, -13.5, when)
    canv.showPage()
    canv.save()
    return out.getvalue()


def _outline_items(node: Any, depth: int = 0) -> Iterator[generic.DictionaryObject]:
    """Every item of a document outline (ISO 32000-1 §12.3.3), depth first."""
    item = _get(node, "/First") if depth < 8 else None
    seen = 0
    while item is not None and seen < 10_000:
        yield item
        yield from _outline_items(item, depth + 1)
        item = _get(item, "/Next")
        seen += 1


def _outline_box(reader: PdfFileReader) -> tuple[int | None, tuple[float, ...]]:
    """The page object number and the rectangle of the only ``/FitR`` outline item."""
    outlines = _get(reader.root, "/Outlines")
    boxes = []
    for item in _outline_items(outlines) if outlines is not None else ():
        dest = _get(item, "/Dest")
        if isinstance(dest, generic.ArrayObject) and len(dest) == 6 and dest[1] == "/FitR":
            boxes.append(dest)
    if len(boxes) != 1:
        raise PdfSignError(
            "Bản PDF không có (đúng một) vị trí chữ ký của Hiệu trưởng: không do hocba tạo ra?"
        )
    dest = boxes[0]
    return getattr(dest.raw_get(0), "idnum", None), tuple(float(dest[i]) for i in range(2, 6))


_FITR_OUTLINE_ITEM = re.compile(
    rb"/Dest \[ (\d+) 0 R /FitR ([-+.\d]+) ([-+.\d]+) ([-+.\d]+) ([-+.\d]+) \] /Parent \d+ 0 R"
)
"""An outline item with a ``/FitR`` destination as ReportLab writes it (uncompressed)."""


def _principal_box(reader: PdfFileReader, pdf: bytes | None = None) -> _Placement:
    """The principal's box: the only outline destination of type ``/FitR`` (written by
    :func:`~hocba.pdf.render.render_book`), as ``[page /FitR left bottom right top]``.

    With ``pdf`` (the file's bytes: one revision, no object streams), an outline item
    written the way ReportLab writes it is looked for in the bytes first: parsing the
    outline costs more than the rest of reading the rendering (its titles are UTF-16
    strings, read character by character); if there is not exactly one, the outline is
    walked."""
    found = []
    target: int | None
    if pdf is not None and b"/ObjStm" not in pdf and reader.total_revisions == 1:
        found = _FITR_OUTLINE_ITEM.findall(pdf)
    if len(found) == 1:
        target = int(found[0][0])
        x1, y1, x2, y2 = (float(v) for v in found[0][1:])
    else:
        target, (x1, y1, x2, y2) = _outline_box(reader)
    pages = reader.root["/Pages"]
    kids = _get(pages, "/Kids")
    if isinstance(kids, generic.ArrayObject) and len(kids) == int(pages["/Count"]):
        for index in range(len(kids)):  # a flat page tree (ReportLab's): no page is parsed
            kid = kids.raw_get(index)
            if isinstance(kid, generic.IndirectObject) and kid.idnum == target:
                if _get(kid.get_object(), "/Type") == "/Page":
                    return _Placement(index, (x1, y1, x2, y2), kid)
    for index in range(int(pages["/Count"])):
        page_ref = reader.find_page_for_modification(index)[0]
        if page_ref.idnum == target:
            return _Placement(index, (x1, y1, x2, y2), page_ref)
    raise PdfSignError("Vị trí chữ ký của Hiệu trưởng trỏ tới một trang không tồn tại.")


def seal_box_for(
    principal_box: tuple[float, float, float, float], diameter: float = _SEAL_DIAMETER
) -> tuple[float, float, float, float]:
    """The seal's square: centred on the middle of the left third of the principal's box,
    so the stamp covers that third (as a paper stamp covers the start of a signature)."""
    x1, y1, x2, y2 = principal_box
    cx = x1 + (x2 - x1) / 6
    cy = (y1 + y2) / 2
    half = diameter / 2
    return (cx - half, cy - half, cx + half, cy + half)
