"""The fast way of signing a book (issue 4): for a rendering of
:func:`~hocba.pdf.render.render_book` (one revision, an xref table, no form yet) revisions 1
and 2 of :mod:`hocba.pdf.sign` are written as bytes with :mod:`hocba.pdf.incremental`, the
objects being those pyHanko would write, the CMS containers filled from the signers'
templates.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields

from hocba.pdf.book import (
    _PRINCIPAL_REASON,
    _SEAL_REASON,
    PRINCIPAL_FIELD,
    SEAL_FIELD,
    _attachment_description,
    _BookSigning,
    attachment_name,
)
from hocba.pdf.cms import PortSigner, _CmsTemplate
from hocba.pdf.incremental import (
    RelocatableObjects,
    Revision,
    form_xobject_from_page,
    ref,
    serialize,
)
from hocba.pdf.stamps import _SEAL_DIAMETER


@functools.lru_cache(maxsize=64)
def _appearance_objects(pdf: bytes) -> RelocatableObjects:
    """A stamp's one-page PDF as a relocatable form XObject, built once per stamp."""
    return form_xobject_from_page(pdf)


def _pdf_text(text: str) -> generic.PdfObject:
    return generic.pdf_string(text)


def _pdf_date(when: dt.datetime) -> generic.PdfObject:
    return generic.pdf_date(when)


def _rect(box: Sequence[float]) -> generic.ArrayObject:
    return generic.ArrayObject([generic.FloatObject(v) for v in box])


def _add_signature(
    rev: Revision,
    number: int,
    template: _CmsTemplate,
    name: str | None,
    location: str | None,
    reason: str,
    reference: generic.DictionaryObject,
) -> None:
    """Object ``number`` of ``rev``: a signature dictionary with room for ``template``'s
    container; its entries other than ``/ByteRange`` and ``/Contents`` as pyHanko writes
    them for a PAdES signature (ETSI EN 319 142-1 §5.3)."""
    entries = generic.DictionaryObject(
        {
            generic.pdf_name("/Type"): generic.pdf_name("/Sig"),
            generic.pdf_name("/Filter"): generic.pdf_name("/Adobe.PPKLite"),
            generic.pdf_name("/SubFilter"): generic.pdf_name("/ETSI.CAdES.detached"),
            generic.pdf_name("/M"): _pdf_date(dt.datetime.now(dt.UTC).replace(microsecond=0)),
            generic.pdf_name("/Reason"): _pdf_text(reason),
            generic.pdf_name("/Reference"): generic.ArrayObject([reference]),
        }
    )
    if name:
        entries[generic.pdf_name("/Name")] = _pdf_text(name)
    if location:
        entries[generic.pdf_name("/Location")] = _pdf_text(location)
    # without the dictionary's << >>
    rev.add_signature(number, serialize(entries)[2:-2].strip(), 2 * template.length)


def _transform(method: str, params: dict[str, generic.PdfObject]) -> generic.DictionaryObject:
    """A signature reference dictionary (ISO 32000-1 §12.8.1, Table 253)."""
    transform = generic.DictionaryObject(
        {
            generic.pdf_name("/Type"): generic.pdf_name("/TransformParams"),
            generic.pdf_name("/V"): generic.pdf_name("/1.2"),
        }
    )
    transform.update({generic.pdf_name(k): v for k, v in params.items()})
    return generic.DictionaryObject(
        {
            generic.pdf_name("/Type"): generic.pdf_name("/SigRef"),
            generic.pdf_name("/TransformMethod"): generic.pdf_name(method),
            generic.pdf_name("/TransformParams"): transform,
        }
    )


def _widget(
    name: str, box: Sequence[float], page: generic.IndirectObject, appearance: int
) -> generic.DictionaryObject:
    """A signature field merged with its widget annotation (printed, locked: /F 132)."""
    return generic.DictionaryObject(
        {
            generic.pdf_name("/FT"): generic.pdf_name("/Sig"),
            generic.pdf_name("/T"): _pdf_text(name),
            generic.pdf_name("/Type"): generic.pdf_name("/Annot"),
            generic.pdf_name("/Subtype"): generic.pdf_name("/Widget"),
            generic.pdf_name("/F"): generic.NumberObject(132),
            generic.pdf_name("/Rect"): _rect(box),
            generic.pdf_name("/P"): page,
            generic.pdf_name("/AP"): generic.DictionaryObject(
                {generic.pdf_name("/N"): ref(appearance)}
            ),
        }
    )


def _sign_directly(
    pdf: bytes,
    reader: PdfFileReader,
    record_xml: bytes,
    book: _BookSigning,
    principal: tuple[PortSigner, _CmsTemplate],
    seal: tuple[PortSigner, _CmsTemplate],
) -> bytes | None:
    """Revisions 1 and 2 of :mod:`hocba.pdf.sign` written as bytes, with the objects pyHanko
    would write (the stamps' form XObjects directly as the widgets' appearances). ``None``
    when ``pdf`` is not a single-revision file with an xref table and without a form,
    attachments or annotations on the signature page (then pyHanko signs it)."""
    certified = _certify(pdf, reader, record_xml, book, principal)
    return None if certified is None else _seal(certified, book, seal)


@dataclass(frozen=True)
class _Certified:
    """Revision 1 written and signed, and what revision 2 refers to."""

    pdf: bytes
    startxref: int
    next_number: int
    root: int
    info: int
    first_id: bytes
    page: generic.IndirectObject
    seal_field: int
    lock: int


def _trailer_entries(
    revision: Revision, root: int, info: int, first_id: bytes
) -> dict[str, generic.PdfObject]:
    """The trailer of a revision: the document's first ID kept, the second one new."""
    second = hashlib.md5(b"".join(revision.chunks), usedforsecurity=False).digest()
    return {
        "/Root": ref(root),
        "/Info": ref(info),
        "/ID": generic.ArrayObject(
            [generic.ByteStringObject(first_id), generic.ByteStringObject(second)]
        ),
    }


def _signing(signer: PortSigner, template: _CmsTemplate) -> Callable[[bytes], bytes]:
    return lambda digest: template.fill_der(digest, signer._sign_attributes)


def _certify(
    pdf: bytes,
    reader: PdfFileReader,
    record_xml: bytes,
    book: _BookSigning,
    principal: tuple[PortSigner, _CmsTemplate],
) -> _Certified | None:
    """Revision 1 (``None`` if ``pdf`` is not as :func:`_sign_directly` needs it)."""
    trailer = reader.trailer_view
    root_ref, info_ref = trailer.raw_get("/Root"), trailer.raw_get("/Info")
    page_ref = book.placement.page_ref
    startxref = reader.last_startxref
    if (
        reader.total_revisions != 1
        or "/Encrypt" in trailer
        or not isinstance(root_ref, generic.IndirectObject)
        or not isinstance(info_ref, generic.IndirectObject)
        or page_ref is None
        or startxref is None
        or pdf[startxref : startxref + 4] != b"xref"
    ):
        return None
    catalog = reader.root
    page = page_ref.get_object()
    if any(key in catalog for key in ("/AcroForm", "/Names", "/AF", "/Perms")) or (
        "/Annots" in page
    ):
        return None
    ids = trailer.get("/ID")
    first_id = _string_bytes(ids[0]) if isinstance(ids, generic.ArrayObject) and ids else b""
    first_id = first_id or hashlib.md5(pdf[:4096], usedforsecurity=False).digest()

    # revision 1: the attachment, the form with both fields, the principal's signature
    base = pdf if pdf.endswith(b"\n") else pdf + b"\n"
    rev = Revision(base_length=len(base), next_number=int(trailer["/Size"]))
    embedded, filespec, acroform, principal_field, seal_field, lock, empty = (
        rev.allocate() for _ in range(7)
    )
    principal_objects = _appearance_objects(book.principal_appearance)
    principal_ap = rev.allocate(len(principal_objects))
    signature = rev.allocate()
    name = attachment_name(book.lookup_code)
    data = bytes(record_xml)
    rev.add_stream(
        embedded,
        generic.DictionaryObject(
            {
                generic.pdf_name("/Type"): generic.pdf_name("/EmbeddedFile"),
                generic.pdf_name("/Subtype"): generic.pdf_name("/application/xml"),
                generic.pdf_name("/Filter"): generic.pdf_name("/FlateDecode"),
                generic.pdf_name("/Params"): generic.DictionaryObject(
                    {
                        generic.pdf_name("/Size"): generic.NumberObject(len(data)),
                        generic.pdf_name("/CheckSum"): generic.ByteStringObject(
                            hashlib.md5(data, usedforsecurity=False).digest()
                        ),
                        generic.pdf_name("/CreationDate"): _pdf_date(book.when),
                        generic.pdf_name("/ModDate"): _pdf_date(book.when),
                    }
                ),
            }
        ),
        zlib.compress(data),
    )
    rev.add_object(
        filespec,
        generic.DictionaryObject(
            {
                generic.pdf_name("/Type"): generic.pdf_name("/Filespec"),
                generic.pdf_name("/F"): _pdf_text(name),
                generic.pdf_name("/UF"): _pdf_text(name),
                generic.pdf_name("/EF"): generic.DictionaryObject(
                    {generic.pdf_name("/F"): ref(embedded), generic.pdf_name("/UF"): ref(embedded)}
                ),
                generic.pdf_name("/Desc"): _pdf_text(_attachment_description(book)),
                generic.pdf_name("/AFRelationship"): generic.pdf_name("/Source"),
            }
        ),
    )
    rev.add_object(
        acroform,
        generic.DictionaryObject(
            {
                generic.pdf_name("/Fields"): generic.ArrayObject(
                    [ref(principal_field), ref(seal_field)]
                ),
                generic.pdf_name("/SigFlags"): generic.NumberObject(3),
            }
        ),
    )
    widget = _widget(PRINCIPAL_FIELD, book.principal_box, page_ref, principal_ap)
    widget[generic.pdf_name("/V")] = ref(signature)
    rev.add_object(principal_field, widget)
    seal_widget = _widget(SEAL_FIELD, book.seal_box, page_ref, empty)
    seal_widget[generic.pdf_name("/Lock")] = ref(lock)
    rev.add_object(seal_field, seal_widget)
    rev.add_object(
        lock,
        generic.DictionaryObject(
            {
                generic.pdf_name("/Type"): generic.pdf_name("/SigFieldLock"),
                generic.pdf_name("/Action"): generic.pdf_name("/All"),
                generic.pdf_name("/P"): generic.NumberObject(1),
            }
        ),
    )
    side = _SEAL_DIAMETER
    rev.add_stream(
        empty,
        generic.DictionaryObject(
            {
                generic.pdf_name("/Type"): generic.pdf_name("/XObject"),
                generic.pdf_name("/Subtype"): generic.pdf_name("/Form"),
                generic.pdf_name("/BBox"): _rect((0, 0, side, side)),
                generic.pdf_name("/Resources"): generic.DictionaryObject(),
            }
        ),
        b"",
    )
    principal_objects.write(rev, principal_ap)
    principal_signer, principal_template = principal
    _add_signature(
        rev,
        signature,
        principal_template,
        book.name,
        book.location,
        _PRINCIPAL_REASON,
        _transform("/DocMDP", {"/P": generic.NumberObject(fields.MDPPerm.FILL_FORMS.value)}),
    )
    new_page = generic.DictionaryObject({k: page.raw_get(k) for k in page})
    new_page[generic.pdf_name("/Annots")] = generic.ArrayObject(
        [ref(principal_field), ref(seal_field)]
    )
    rev.add_object(page_ref.idnum, new_page)
    new_catalog = generic.DictionaryObject({k: catalog.raw_get(k) for k in catalog})
    new_catalog.update(
        {
            generic.pdf_name("/Version"): generic.pdf_name("/2.0"),
            generic.pdf_name("/AcroForm"): ref(acroform),
            generic.pdf_name("/Names"): generic.DictionaryObject(
                {
                    generic.pdf_name("/EmbeddedFiles"): generic.DictionaryObject(
                        {
                            generic.pdf_name("/Names"): generic.ArrayObject(
                                [_pdf_text(name), ref(filespec)]
                            )
                        }
                    )
                }
            ),
            generic.pdf_name("/AF"): generic.ArrayObject([ref(filespec)]),
            generic.pdf_name("/Perms"): generic.DictionaryObject(
                {generic.pdf_name("/DocMDP"): ref(signature)}
            ),
        }
    )
    rev.add_object(root_ref.idnum, new_catalog)

    certified = rev.finish(
        base,
        _trailer_entries(rev, root_ref.idnum, info_ref.idnum, first_id),
        startxref,
        _signing(principal_signer, principal_template),
    )
    return _Certified(
        pdf=certified,
        startxref=rev.base_length + rev.length,
        next_number=rev.next_number,
        root=root_ref.idnum,
        info=info_ref.idnum,
        first_id=first_id,
        page=page_ref,
        seal_field=seal_field,
        lock=lock,
    )


def _seal(
    certified: _Certified, book: _BookSigning, seal: tuple[PortSigner, _CmsTemplate]
) -> bytes:
    # revision 2: the seal's signature in its field (FieldMDP /All, P=1: the lock)
    seal_rev = Revision(base_length=len(certified.pdf), next_number=certified.next_number)
    seal_objects = _appearance_objects(book.seal_appearance)
    seal_ap = seal_rev.allocate(len(seal_objects))
    seal_signature = seal_rev.allocate()
    seal_objects.write(seal_rev, seal_ap)
    seal_signer, seal_template = seal
    _add_signature(
        seal_rev,
        seal_signature,
        seal_template,
        book.school,
        book.location,
        _SEAL_REASON,
        _transform(
            "/FieldMDP", {"/Action": generic.pdf_name("/All"), "/P": generic.NumberObject(1)}
        ),
    )
    filled = _widget(SEAL_FIELD, book.seal_box, certified.page, seal_ap)
    filled[generic.pdf_name("/Lock")] = ref(certified.lock)
    filled[generic.pdf_name("/V")] = ref(seal_signature)
    seal_rev.add_object(certified.seal_field, filled)
    return seal_rev.finish(
        certified.pdf,
        _trailer_entries(seal_rev, certified.root, certified.info, certified.first_id),
        certified.startxref,
        _signing(seal_signer, seal_template),
    )


def _string_bytes(value: Any) -> bytes:
    """The bytes of a PDF string object (pyHanko decodes some as text)."""
    original = getattr(value, "original_bytes", None)
    if isinstance(original, bytes):
        return original
    return bytes(value) if isinstance(value, bytes) else str(value).encode("latin-1", "replace")
