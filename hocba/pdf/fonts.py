"""The book's typeface: Liberation Serif (metric-compatible with Times New Roman, every
Vietnamese letter; SIL Open Font License 1.1, in ``hocba/data/fonts`` with its licence),
registered with ReportLab once per process, embedded as subsets.

Speed (issue 4): every document first assigns :data:`FONT_ALPHABET` its codes
(:func:`seed_font_subsets`), so all books embed the same subsets, whose font files, width
tables and ToUnicode maps are made and compressed once per process; and the codes of a
text made only of that alphabet are the same in every book, so :func:`encoded_runs`
computes them once per text.
"""

from __future__ import annotations

import copy
import importlib.resources
import io
import threading
import zlib
from functools import cache, lru_cache, partial
from typing import Any

from reportlab.lib.rl_accel import escapePDF
from reportlab.pdfbase import pdfdoc, pdfmetrics, ttfonts
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

__all__ = [
    "FONT_ALPHABET",
    "FONT_BOLD",
    "FONT_BOLD_ITALIC",
    "FONT_ITALIC",
    "FONT_REGULAR",
    "compact_font_subsets",
    "encoded_runs",
    "has_fixed_codes",
    "is_seeded",
    "of_alphabet",
    "register_fonts",
    "seed_font_subsets",
]

FONT_REGULAR = "HocBaSerif"
FONT_BOLD = "HocBaSerif-Bold"
FONT_ITALIC = "HocBaSerif-Italic"
FONT_BOLD_ITALIC = "HocBaSerif-BoldItalic"
_FONT_FILES = {
    FONT_REGULAR: "LiberationSerif-Regular.ttf",
    FONT_BOLD: "LiberationSerif-Bold.ttf",
    FONT_ITALIC: "LiberationSerif-Italic.ttf",
    FONT_BOLD_ITALIC: "LiberationSerif-BoldItalic.ttf",
}

_FONT_LOCK = threading.Lock()
_FONTS_READY = False


def register_fonts() -> None:
    """Register the embedded serif family with ReportLab once per process."""
    global _FONTS_READY
    with _FONT_LOCK:
        if _FONTS_READY:
            return
        folder = importlib.resources.files("hocba").joinpath("data", "fonts")
        for name, file_name in _FONT_FILES.items():
            data = folder.joinpath(file_name).read_bytes()
            font = TTFont(name, io.BytesIO(data))
            font.face.addSubsetObjects = partial(_add_subset_objects, font.face)
            font.addObjects = partial(_add_font_objects, font)
            font.splitString = partial(_split_string, font)
            pdfmetrics.registerFont(font)
        pdfmetrics.registerFontFamily(
            FONT_REGULAR,
            normal=FONT_REGULAR,
            bold=FONT_BOLD,
            italic=FONT_ITALIC,
            boldItalic=FONT_BOLD_ITALIC,
        )
        _FONTS_READY = True


_ALPHABET = (
    "aàảãáạăằẳẵắặâầẩẫấậbcdđeèẻẽéẹêềểễếệfghiìỉĩíịjklmnoòỏõóọôồổỗốộơờởỡớợpqrstuùủũúụưừửữứựvwxyỳỷỹýỵz"
)
FONT_ALPHABET = "".join(
    dict.fromkeys(
        "".join(map(chr, range(32, 127))) + _ALPHABET + _ALPHABET.upper() + "–—…·“”‘’«»°×÷±≤≥→•"
    )
)
"""Every character the books normally use, in a fixed order: each document assigns them
their codes first (:func:`seed_font_subsets`), so every book embeds the same font subsets
— built and compressed once per process (:func:`_add_subset_objects`) — whatever
characters the pupil's data happens to use first. A character outside the alphabet still
works: it gets the next free code, in a subset of its own document."""


def seed_font_subsets(canv: Canvas) -> None:
    """Assign :data:`FONT_ALPHABET`'s codes in ``canv``'s document for every font of the
    family; call before the first text is drawn. A font the document never draws with is
    not embedded (ReportLab embeds only the fonts that were selected)."""
    doc = canv._doc
    for name in _FONT_FILES:
        font = pdfmetrics.getFont(name)
        if doc in font.state:  # something was drawn already: assign in that order
            font.splitString(FONT_ALPHABET, doc)
            continue
        seeded = _seeded_state(name)  # a copy of the state ReportLab builds, for speed
        state = font.state[doc] = copy.copy(seeded)
        state.assignments = dict(seeded.assignments)
        state.subsets = [list(subset) for subset in seeded.subsets]
    doc.hocba_seeded = True  # an attribute: is_seeded is asked for every text drawn


def compact_font_subsets(canv: Canvas) -> None:
    """Make ``canv``'s document embed only the characters it draws (ReportLab otherwise
    puts all of ASCII into the first subset): for small drawings like the signature
    stamps, whose fonts would otherwise outweigh a whole book's."""
    for name in _FONT_FILES:
        pdfmetrics.getFont(name)._assignState(canv._doc, asciiReadable=False)


@lru_cache(maxsize=64)
def _subset_file(face: Any, subset: tuple[int, ...]) -> tuple[bytes, int]:
    """A TrueType subset of ``face`` (ReportLab's ``makeSubset``), Flate-compressed."""
    raw = face.makeSubset(list(subset))
    return zlib.compress(raw), len(raw)


def _split_string(font: TTFont, text: Any, doc: Any, encoding: str = "utf-8") -> Any:
    """ReportLab's ``TTFont.splitString`` (text → runs of one-byte codes per subset) with
    a shortcut for the usual case, every character already given a code of the first
    subset (:data:`FONT_ALPHABET` is, before the first text is drawn): one run."""
    state = font.state.get(doc)
    if state is not None and isinstance(text, str):
        assignments = state.assignments
        try:
            codes = bytes([assignments[ord(character)] for character in text])
        except (KeyError, ValueError):
            pass  # a new character, or one of a later subset
        else:
            return [(0, codes)] if codes else []
    return TTFont.splitString(font, text, doc, encoding)


@lru_cache(maxsize=64)
def _font_tables(face: Any, base_font_name: str, subset: tuple[int, ...]) -> tuple[bytes, bytes]:
    """A subset's ``/Widths`` array, formatted, and its compressed ``/ToUnicode`` CMap."""
    widths = pdfdoc.PDFArray(list(map(face.getCharWidth, subset))).format(None)
    cmap = zlib.compress(ttfonts.makeToUnicodeCMap(base_font_name, list(subset)).encode("ascii"))
    return widths, cmap


def _add_font_objects(font: TTFont, doc: Any) -> None:
    """ReportLab's ``TTFont.addObjects`` (one simple TrueType font per subset of 256
    characters) with each subset's width table and ``/ToUnicode`` CMap made once per
    process (:func:`_font_tables`); see :func:`_add_subset_objects` for the font file."""
    if not doc.compression:
        TTFont.addObjects(font, doc)
        return
    state = font.state.get(doc) or font._assignState(doc)
    state.frozen = 1
    face = font.face
    for n, subset in enumerate(state.subsets):
        internal_name = font.getSubsetInternalName(n, doc)[1:]
        base_font_name = b"".join((ttfonts.SUBSETN(n), b"+", face.name, face.subfontNameX)).decode(
            "pdfdoc"
        )
        widths, cmap = _font_tables(face, base_font_name, tuple(subset))
        pdf_font = pdfdoc.PDFTrueTypeFont()
        pdf_font.Name = internal_name
        pdf_font.BaseFont = base_font_name
        pdf_font.FirstChar = 0
        pdf_font.LastChar = len(subset) - 1
        pdf_font.Widths = widths  # bytes are written as they are
        cmap_stream = pdfdoc.PDFStream(
            pdfdoc.PDFDictionary({"Filter": pdfdoc.PDFArray([pdfdoc.PDFName("FlateDecode")])}),
            cmap,
        )
        pdf_font.ToUnicode = doc.Reference(cmap_stream, "toUnicodeCMap:" + base_font_name)
        pdf_font.FontDescriptor = face.addSubsetObjects(doc, base_font_name, subset)
        doc.Reference(pdf_font, internal_name)
        doc.idToObject["BasicFonts"].dict[internal_name] = pdf_font
    del font.state[doc]


def _add_subset_objects(face: Any, doc: Any, fontname: str, subset: list[int]) -> Any:
    """ReportLab's ``TTFontFace.addSubsetObjects`` with the subset's font file made and
    compressed once per process (:func:`_subset_file`) instead of once per document."""
    if not doc.compression:
        return type(face).addSubsetObjects(face, doc, fontname, subset)
    data, raw_length = _subset_file(face, tuple(subset))
    font_file = pdfdoc.PDFStream(
        pdfdoc.PDFDictionary(
            {"Length1": raw_length, "Filter": pdfdoc.PDFArray([pdfdoc.PDFName("FlateDecode")])}
        ),
        data,
    )
    reference = doc.Reference(font_file, f"fontFile:{face.filename}({fontname})")
    flags = (face.flags & ~ttfonts.FF_NONSYMBOLIC) | ttfonts.FF_SYMBOLIC
    descriptor = pdfdoc.PDFDictionary(
        {
            "Type": "/FontDescriptor",
            "Ascent": face.ascent,
            "CapHeight": face.capHeight,
            "Descent": face.descent,
            "Flags": flags,
            "FontBBox": pdfdoc.PDFArray(face.bbox),
            "FontName": pdfdoc.PDFName(fontname),
            "ItalicAngle": face.italicAngle,
            "StemV": face.stemV,
            "FontFile2": reference,
            "MissingWidth": face.defaultWidth,
        }
    )
    return doc.Reference(descriptor, "fontDescriptor:" + fontname)


_ALPHABET_SET = frozenset(FONT_ALPHABET)


@cache
def _seeded_state(font_name: str) -> Any:
    """ReportLab's font state of a document in which :data:`FONT_ALPHABET` was the first
    text drawn in ``font_name`` (built in a scratch document; not to be modified)."""

    class _Scratch:  # a document key for ReportLab's per-document font state
        pass

    scratch = _Scratch()
    font = pdfmetrics.getFont(font_name)
    font.splitString(FONT_ALPHABET, scratch)
    return font.state.pop(scratch)


@cache
def _alphabet_codes(font_name: str) -> dict[str, int]:
    """The code :func:`seed_font_subsets` gives each character of :data:`FONT_ALPHABET` in
    ``font_name`` (the same in every seeded document: subset ``code >> 8``, byte
    ``code & 0xFF``)."""
    assignments = _seeded_state(font_name).assignments
    return {character: assignments[ord(character)] for character in FONT_ALPHABET}


@lru_cache(maxsize=16384)
def _alphabet_runs(font_name: str, text: str) -> tuple[tuple[int, str], ...]:
    codes = _alphabet_codes(font_name)
    runs: list[tuple[int, bytearray]] = []
    for character in text:
        code = codes[character]
        subset = code >> 8
        if not runs or runs[-1][0] != subset:
            runs.append((subset, bytearray()))
        runs[-1][1].append(code & 0xFF)
    return tuple((subset, escapePDF(bytes(chunk))) for subset, chunk in runs)


def has_fixed_codes(text: str, doc: Any) -> bool:
    """Whether ``text`` has the same codes in ``doc`` as in every seeded document: ``doc``
    was seeded (:func:`seed_font_subsets`) and every character is of the alphabet."""
    return is_seeded(doc) and of_alphabet(text)


def is_seeded(doc: Any) -> bool:
    """Whether :func:`seed_font_subsets` assigned the alphabet's codes in ``doc``."""
    return getattr(doc, "hocba_seeded", False) is True


def of_alphabet(text: str) -> bool:
    """Whether every character of ``text`` is of :data:`FONT_ALPHABET`."""
    return _ALPHABET_SET.issuperset(text)


def encoded_runs(font_name: str, text: str, doc: Any) -> tuple[tuple[int, str], ...]:
    """``text`` in ``font_name`` as runs of (subset, PDF string body, escaped) for ``doc``:
    what ``TTFont.splitString`` and ReportLab's escaping give, computed once per text when
    ``doc`` was seeded (:func:`seed_font_subsets`) and the text is of the alphabet."""
    if has_fixed_codes(text, doc):
        return _alphabet_runs(font_name, text)
    font = pdfmetrics.getFont(font_name)
    return tuple((subset, escapePDF(chunk)) for subset, chunk in font.splitString(text, doc))
