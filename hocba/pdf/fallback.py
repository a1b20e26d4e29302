"""The general way of signing a book: pyHanko's :class:`~pyhanko.sign.signers.PdfSigner`
writes revisions 1 and 2 of :mod:`hocba.pdf.sign` for any PDF that :mod:`hocba.pdf.direct`
does not take (more than one revision, an xref stream, a form already there...).
"""

from __future__ import annotations

import asyncio
import io

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.embed import EmbeddedFileObject, EmbeddedFileParams, FileSpec, embed_file
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.stamp import StaticStampStyle

from hocba.pdf.book import (
    _PRINCIPAL_REASON,
    _SEAL_REASON,
    PRINCIPAL_FIELD,
    SEAL_FIELD,
    PdfSignError,
    _attachment_description,
    _BookSigning,
    attachment_name,
)
from hocba.pdf.cms import PortSigner
from hocba.pdf.stamps import _static_style
from hocba.pki.signer import SigningError


def _sign(
    writer: IncrementalPdfFileWriter,
    meta: signers.PdfSignatureMetadata,
    signer: PortSigner,
    style: StaticStampStyle,
) -> io.BytesIO:
    pdf_signer = signers.PdfSigner(meta, signer=signer, stamp_style=style)
    coroutine = pdf_signer.async_sign_pdf(
        writer, existing_fields_only=True, bytes_reserved=signer.bytes_reserved
    )
    try:
        return asyncio.run(coroutine)  # type: ignore[return-value]
    except SigningError:
        raise
    except PdfSignError:
        raise
    except Exception as exc:
        raise PdfSignError(f"Không ký được bản PDF: {type(exc).__name__}: {exc}") from exc


def _sign_with_pyhanko(
    pdf: bytes,
    record_xml: bytes,
    book: _BookSigning,
    principal_signer: PortSigner,
    seal_signer: PortSigner,
) -> bytes:
    """The revisions written by pyHanko's :class:`~pyhanko.sign.signers.PdfSigner`."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    _embed_record(writer, record_xml, book)
    principal_field = fields.SigFieldSpec(
        PRINCIPAL_FIELD,
        on_page=book.placement.page,
        box=book.principal_box,  # type: ignore[arg-type]  # floats: pyHanko says int
    )
    seal_field = fields.SigFieldSpec(
        SEAL_FIELD,
        on_page=book.placement.page,
        box=book.seal_box,  # type: ignore[arg-type]  # floats: pyHanko says int
        field_mdp_spec=fields.FieldMDPSpec(fields.FieldMDPAction.ALL),
        doc_mdp_update_value=fields.MDPPerm.NO_CHANGES,
    )
    for spec in (principal_field, seal_field):
        fields.append_signature_field(writer, spec)
    certified = _sign(
        writer,
        signers.PdfSignatureMetadata(
            field_name=PRINCIPAL_FIELD,
            md_algorithm="sha256",
            subfilter=fields.SigSeedSubFilter.PADES,
            certify=True,
            docmdp_permissions=fields.MDPPerm.FILL_FORMS,
            reason=_PRINCIPAL_REASON,
            location=book.location,
            name=book.name,
        ),
        principal_signer,
        _static_style(book.principal_appearance),
    )
    sealed = _sign(
        IncrementalPdfFileWriter(certified, strict=False),
        signers.PdfSignatureMetadata(
            field_name=SEAL_FIELD,
            md_algorithm="sha256",
            subfilter=fields.SigSeedSubFilter.PADES,
            docmdp_permissions=fields.MDPPerm.NO_CHANGES,
            reason=_SEAL_REASON,
            location=book.location,
            name=book.school or None,
        ),
        seal_signer,
        _static_style(book.seal_appearance),
    )
    return sealed.getvalue()


def _embed_record(writer: IncrementalPdfFileWriter, record_xml: bytes, book: _BookSigning) -> None:
    """The record XML as an embedded file (ISO 32000-2 §7.11.4) associated with the
    document (§14.13, ``/AFRelationship /Source``: the PDF is rendered from it)."""
    data = EmbeddedFileObject.from_file_data(
        writer,
        bytes(record_xml),
        mime_type="application/xml",
        params=EmbeddedFileParams(
            embed_size=True,
            embed_checksum=True,
            creation_date=book.when,
            modification_date=book.when,
        ),
    )
    name = attachment_name(book.lookup_code)
    embed_file(
        writer,
        FileSpec(
            file_spec_string=name,
            file_name=name,
            embedded_data=data,
            description=_attachment_description(book),
            af_relationship=generic.pdf_name("/Source"),
        ),
    )
