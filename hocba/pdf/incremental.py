"""Incremental updates of a PDF written directly as bytes, with signature placeholders:
the fast path of :mod:`hocba.pdf.sign`.

Standards: ISO 32000-1 §7.5.6 (incremental updates: the new and changed objects, then an
xref section for them and a trailer with ``/Prev``), §7.5.4 (cross-reference table: 20-byte
entries), §12.8.1 (signature dictionary: ``/ByteRange`` covers the whole file except the
``/Contents`` hex string, delimiters included).

pyHanko's :class:`~pyhanko.pdf_utils.incremental_writer.IncrementalPdfFileWriter` does the
same generically; for the two signatures of a book it costs about ten milliseconds each in
parsing, object bookkeeping and serialisation. Here a revision is a list of byte chunks:
objects are serialised once (pyHanko's own ``write_to_stream`` for the dictionaries), the
signature's ``/ByteRange`` and ``/Contents`` are fixed-width placeholders patched in place
once the revision is complete, and objects reused from book to book (a stamp's form
XObject with its fonts) are kept as :class:`RelocatableObjects`, serialised once per process
and given new object numbers per book.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader

__all__ = [
    "RelocatableObjects",
    "Revision",
    "SignaturePlaceholder",
    "form_xobject_from_page",
    "ref",
    "serialize",
]

_BYTE_RANGE_WIDTH = 48  # "0 1234567890 1234567890 1234567890" fits with room to spare
_SENTINEL = 900_000_000  # local object numbers of relocatable objects start here
_SENTINEL_REF = re.compile(rb"(9\d{8}) 0 R")


def serialize(obj: generic.PdfObject) -> bytes:
    """One PDF object's bytes, as pyHanko writes them."""
    out = io.BytesIO()
    obj.write_to_stream(out, None)
    return out.getvalue()


def ref(number: int) -> generic.IndirectObject:
    """A reference to object ``number`` (generation 0) of the file being written."""
    return generic.IndirectObject(number, 0, None)


@dataclass
class SignaturePlaceholder:
    """Where, in its revision, a signature dictionary's ``/ByteRange`` and ``/Contents``
    placeholders are (offsets from the start of the revision)."""

    byte_range_at: int
    contents_at: int  # the "<" of the hex string
    contents_length: int  # hex digits, between "<" and ">"


@dataclass
class Revision:
    """One incremental update being written after ``base_length`` bytes of file whose
    objects are numbered below ``next_number``."""

    base_length: int
    next_number: int
    chunks: list[bytes] = field(default_factory=list)
    offsets: dict[int, int] = field(default_factory=dict)
    length: int = 0
    signature: SignaturePlaceholder | None = None

    def allocate(self, count: int = 1) -> int:
        """Reserve ``count`` consecutive object numbers; returns the first."""
        first = self.next_number
        self.next_number += count
        return first

    def _emit(self, data: bytes) -> None:
        self.chunks.append(data)
        self.length += len(data)

    def add(self, number: int, body: bytes, stream: bytes | None = None) -> None:
        """Object ``number``: ``body`` is a serialised object (for a stream, its dictionary,
        which must carry the right ``/Length``), ``stream`` the stream's encoded data."""
        self.offsets[number] = self.base_length + self.length
        self._emit(b"%d 0 obj\n" % number)
        self._emit(body)
        if stream is not None:
            self._emit(b"\nstream\n")
            self._emit(stream)
            self._emit(b"\nendstream")
        self._emit(b"\nendobj\n")

    def add_object(self, number: int, obj: generic.PdfObject) -> None:
        self.add(number, serialize(obj))

    def add_stream(self, number: int, dictionary: generic.DictionaryObject, data: bytes) -> None:
        """A stream object whose ``data`` is already encoded as ``dictionary`` says."""
        dictionary = generic.DictionaryObject(dictionary)
        dictionary[generic.pdf_name("/Length")] = generic.NumberObject(len(data))
        self.add(number, serialize(dictionary), data)

    def add_signature(self, number: int, entries: bytes, contents_length: int) -> None:
        """A signature dictionary (ISO 32000-1 §12.8.1): ``entries`` are its serialised
        entries other than ``/ByteRange`` and ``/Contents``, which are written as
        placeholders for :meth:`finish` to fill in."""
        if self.signature is not None:
            raise ValueError("one signature per revision")
        self.offsets[number] = self.base_length + self.length
        self._emit(b"%d 0 obj\n<< /ByteRange [" % number)
        byte_range_at = self.length
        self._emit(b" " * _BYTE_RANGE_WIDTH)
        self._emit(b"] /Contents <")
        contents_at = self.length - 1
        self._emit(b"0" * contents_length)
        self._emit(b"> ")
        self._emit(entries)
        self._emit(b" >>\nendobj\n")
        self.signature = SignaturePlaceholder(byte_range_at, contents_at, contents_length)

    def finish(
        self,
        base: bytes,
        trailer: dict[str, generic.PdfObject],
        prev_startxref: int,
        sign: Callable[[bytes], bytes] | None = None,
    ) -> bytes:
        """The whole file: ``base``, the objects, the xref section, the trailer (``trailer``
        entries plus ``/Size`` and ``/Prev``). With a signature placeholder, ``sign`` gets
        the SHA-256 of the signed byte ranges and returns the DER of the CMS container."""
        xref_at = self.base_length + self.length
        numbers = sorted(self.offsets)
        lines = [b"xref\n0 1\n0000000000 65535 f \n"]
        start = 0
        while start < len(numbers):
            end = start
            while end + 1 < len(numbers) and numbers[end + 1] == numbers[end] + 1:
                end += 1
            lines.append(b"%d %d\n" % (numbers[start], end - start + 1))
            lines.extend(b"%010d 00000 n \n" % self.offsets[n] for n in numbers[start : end + 1])
            start = end + 1
        entries = generic.DictionaryObject(
            {generic.pdf_name(key): value for key, value in trailer.items()}
        )
        entries[generic.pdf_name("/Size")] = generic.NumberObject(self.next_number)
        entries[generic.pdf_name("/Prev")] = generic.NumberObject(prev_startxref)
        lines.append(b"trailer\n" + serialize(entries) + b"\nstartxref\n%d\n%%%%EOF\n" % xref_at)
        out = bytearray(base)
        out += b"".join(self.chunks)
        out += b"".join(lines)
        placeholder = self.signature
        if placeholder is None:
            return bytes(out)
        if sign is None:
            raise ValueError("a signature placeholder needs a signer")
        gap_start = self.base_length + placeholder.contents_at
        gap_end = gap_start + placeholder.contents_length + 2
        byte_range = b"0 %d %d %d" % (gap_start, gap_end, len(out) - gap_end)
        at = self.base_length + placeholder.byte_range_at
        out[at : at + len(byte_range)] = byte_range
        digest = hashlib.sha256()
        view = memoryview(out)
        digest.update(view[:gap_start])
        digest.update(view[gap_end:])
        container = sign(digest.digest()).hex().upper().encode("ascii")
        if len(container) > placeholder.contents_length:
            raise ValueError("the signature container does not fit its placeholder")
        out[gap_start + 1 : gap_start + 1 + len(container)] = container
        return bytes(out)


@dataclass(frozen=True)
class RelocatableObjects:
    """Objects serialised once, whose references to each other are renumbered per use:
    ``parts[i]`` alternates literal bytes and local object indices (0 is the top object).
    ``streams[i]`` is object ``i``'s encoded stream data, or ``None``."""

    parts: tuple[tuple[bytes | int, ...], ...]
    streams: tuple[bytes | None, ...]

    def __len__(self) -> int:
        return len(self.parts)

    def write(self, revision: Revision, first: int) -> None:
        """Add the objects as ``first``, ``first + 1``, … (allocated by the caller)."""
        for index, (parts, data) in enumerate(zip(self.parts, self.streams, strict=True)):
            body = b"".join(
                part if isinstance(part, bytes) else b"%d 0 R" % (first + part) for part in parts
            )
            revision.add(first + index, body, data)


def form_xobject_from_page(pdf: bytes, page_index: int = 0) -> RelocatableObjects:
    """A page of ``pdf`` (one made with ReportLab: one content stream) as a form XObject
    (ISO 32000-1 §8.10) with everything its resources reference, ready to be written into
    any file. The XObject's ``/BBox`` is the page's ``/MediaBox``."""
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    page_ref, resources = reader.find_page_for_modification(page_index)
    page = page_ref.get_object()
    contents = page["/Contents"]
    if isinstance(contents, generic.ArrayObject):
        if len(contents) != 1:
            raise ValueError("the page must have one content stream")
        contents = contents[0].get_object()
    if not isinstance(contents, generic.StreamObject):
        raise ValueError("the page has no content stream")

    found: dict[tuple[int, int], int] = {}
    originals: list[generic.PdfObject] = [contents]

    def local(reference: generic.IndirectObject) -> int:
        key = (reference.idnum, reference.generation)
        if key not in found:
            found[key] = len(originals)
            originals.append(reference.get_object())
        return found[key]

    def copy(obj: generic.PdfObject) -> generic.PdfObject:
        if isinstance(obj, generic.IndirectObject):
            return ref(_SENTINEL + local(obj))
        if isinstance(obj, generic.DictionaryObject):  # streams too: their dictionary only
            return generic.DictionaryObject({k: copy(obj.raw_get(k)) for k in obj})
        if isinstance(obj, generic.ArrayObject):
            return generic.ArrayObject([copy(obj.raw_get(i)) for i in range(len(obj))])
        return obj

    top = generic.DictionaryObject(
        {k: v for k, v in contents.items() if k in ("/Filter", "/DecodeParms")}
    )
    top.update(
        {
            generic.pdf_name("/Type"): generic.pdf_name("/XObject"),
            generic.pdf_name("/Subtype"): generic.pdf_name("/Form"),
            generic.pdf_name("/BBox"): copy(page["/MediaBox"]),
            generic.pdf_name("/Resources"): copy(resources),
            generic.pdf_name("/Length"): generic.NumberObject(len(contents.encoded_data)),
        }
    )
    dictionaries: list[generic.PdfObject] = [top]
    streams: list[bytes | None] = [contents.encoded_data]
    index = 1
    while index < len(originals):  # ``copy`` may discover more objects as it goes
        original = originals[index]
        dictionaries.append(copy(original))
        streams.append(
            original.encoded_data if isinstance(original, generic.StreamObject) else None
        )
        index += 1
    parts = []
    for dictionary in dictionaries:
        pieces: list[bytes | int] = []
        data = serialize(dictionary)
        last = 0
        for match in _SENTINEL_REF.finditer(data):
            pieces += [data[last : match.start()], int(match.group(1)) - _SENTINEL]
            last = match.end()
        pieces.append(data[last:])
        parts.append(tuple(pieces))
    return RelocatableObjects(parts=tuple(parts), streams=tuple(streams))
