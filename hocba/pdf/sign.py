"""PAdES signatures on the paper copy of a học bạ, and their verification (HOCBA_SPEC §4).

Standards: ISO 32000-1/-2 (PDF; §12.8 digital signatures, §12.8.2.2 DocMDP, §12.8.2.3
FieldMDP, §7.11.4 embedded files, §14.13 associated files), ETSI EN 319 142-1 (PAdES;
``/SubFilter /ETSI.CAdES.detached``), RFC 5652 (CMS), RFC 5280 (certificates and CRLs).

What :func:`sign_pdf` writes on top of the rendering of :mod:`hocba.pdf.render`::

    revision 0   the rendering (cover, information page, two pages per year)
    revision 1   + the signed record XML of the latest year, embedded file
                   "hoc-ba-<lookup code>.xml" (/AFRelationship /Source)
                 + signature field "ChuKyHieuTruong" on the principal's box
                 + signature field "DauCuaTruong" over the left third of that box,
                   with /Lock << /Action /All /P 1 >>
                 + the principal's signature: a certification signature
                   (DocMDP P=2: only form filling and signing may follow)
    revision 2   + the school seal's signature in "DauCuaTruong" (approval signature
                   with FieldMDP /All and P=1: once it is there, nothing may change)

So the attachment is covered by both signatures, the seal's stamp is drawn over the
principal's box (its widget comes later in ``/Annots``), and after the seal any change —
even one a viewer would call "form filling" — is a violation of the lock.

Signing goes through the project's :class:`~hocba.pki.signer.Signer` port: pyHanko asks
:class:`PortSigner` for a raw signature over the DER of the CMS signed attributes;
:class:`PortSigner` hashes them (SHA-256) and calls ``sign_digests`` — so software keys,
PKCS#11 tokens and remote hash-signing services all work. pyHanko sizes the signature
container with a *dry run*; :class:`PortSigner` answers that with placeholder bytes
without calling the backend, so each signature costs one backend call.

Speed (issue 4: render plus both signatures ≥ 40 books/s/core, ``bench/pdf.py``): a
signer's CMS container is built by pyHanko once, as a template, then filled in per
signature (document digest, signature value: :class:`~hocba.pdf.cms._CmsTemplate`); for a
rendering of :func:`~hocba.pdf.render.render_book` the two revisions are written as bytes
(:mod:`hocba.pdf.direct`, with :mod:`hocba.pdf.incremental`) instead of through pyHanko's
generic writer (:mod:`hocba.pdf.fallback`, for any other PDF); the stamps
(:mod:`hocba.pdf.stamps`) are built once per signer, text and date and kept as relocatable
objects.

This module is the entry point of signing; the pieces, one job each:
:mod:`hocba.pdf.book` (the fields, the attachment, the errors and check codes both sides
share), :mod:`hocba.pdf.cms` (the CMS container through the ``Signer`` port),
:mod:`hocba.pdf.stamps` (appearances and their place), :mod:`hocba.pdf.direct` and
:mod:`hocba.pdf.fallback` (the two ways of writing revisions 1 and 2) and
:mod:`hocba.pdf.verify` (:func:`verify_pdf`). PAdES B-LTA copies are made by
:mod:`hocba.tasks.pdf_lta`.

Batch note: :func:`sign_pdfs` signs many pupils' books with the same two signers, one
backend call per signature (two per pupil). Unlike the XML signatures of
:func:`hocba.xml.dsig.sign_slots`, the PDF signatures are *not* gathered into one
``sign_digests`` call: each digest depends on the finished bytes of its own document, and
the records themselves already carry the batch-signed XML signatures. A remote-signing
service therefore asks for one confirmation per signature when it signs PDFs, unless it
has a session/auto-confirm mode.

:func:`verify_pdf` answers with the same :class:`~hocba.xml.verify.VerificationReport`
as :func:`~hocba.xml.verify.verify_document`. Check codes (stable):

=========================  ================================================================
``PDF_PARSE``              the bytes are a readable PDF under the size limit. When it fails
                           no other check runs.
``PDF_SIGNATURE_PRINCIPAL``  field ``ChuKyHieuTruong``: pyHanko's validator — the signed
``PDF_SIGNATURE_SEAL``     byte ranges are intact, the CMS signature value verifies, the
                           certificate chains to ``trusted_roots`` and was valid at the
                           signing time the signature claims (``/M``; there is no
                           timestamp authority, as for the XML), keyUsage allows signing;
                           and the certificate names the person / school of the embedded
                           record (CCCD of ``SO_CCCD_GIAM_HIEU_KY_HOC_BA``; school code
                           ``MA_TRUONG``). Missing signature → fail.
``PDF_LOCK``               exactly two signatures, principal first; the principal's is a
                           certification signature; the seal's carries a FieldMDP lock with
                           P=1; the seal's signature covers the whole file (nothing was
                           appended after it) and pyHanko's modification analysis finds
                           every earlier revision's later changes allowed.
``PDF_REVOCATION``         as ``REVOCATION`` of the XML, for the two PDF signers' certificates
                           against the CRL of ``crl_source``, at the claimed signing times.
``PDF_TIMESTAMP``          (PAdES B-LTA copies only, issue 12, hocba/tasks/pdf_lta.py) every
                           document timestamp is intact, valid, from a trusted TSA; its
                           time is in the message. ``PDF_LOCK`` then also accepts the DSS
                           and document-timestamp revisions after the seal, nothing else.
``PDF_EMBEDDED_XML``       one attached ``hoc-ba-*.xml`` exists in the revision the
                           principal signed and is byte-identical in the final file; its
                           lookup code equals the one the PDF states (Info ``/Subject``);
                           with a registry, its SHA-256 equals the issued record's.
=========================  ================================================================

Then the embedded XML's own checks from :func:`~hocba.xml.verify.verify_document`
(``SAFE_PARSE``, ``SCHEMA``, ``SIGNATURE_*``, ``SIGNING_ORDER``, ``REVOCATION``,
``ROLE_*``, ``SCHOOL_CERTIFICATE``, ``REGISTRY_MATCH``) follow, with their own codes. The
report's identifying fields come from the embedded XML; ``document_sha256`` is the PDF's.

Merging a class for the printer is :func:`hocba.pdf.render.print_class`.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Sequence

from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.reader import PdfFileReader

from hocba.pdf.book import (
    _VN,
    DEFAULT_MAX_PDF_BYTES,
    PRINCIPAL_FIELD,
    SEAL_FIELD,
    PdfCheckCode,
    PdfSignError,
    _BookSigning,
    _name_attribute,
    _record_facts,
    _vn_time,
    attachment_name,
)
from hocba.pdf.cms import PortSigner, _port_signer
from hocba.pdf.direct import _sign_directly
from hocba.pdf.fallback import _sign_with_pyhanko
from hocba.pdf.render import LOOKUP_SUBJECT_PREFIX
from hocba.pdf.stamps import (
    _SEAL_DIAMETER,
    _principal_appearance,
    _principal_box,
    _seal_appearance,
    seal_box_for,
)
from hocba.pdf.verify import embedded_record_xml, verify_pdf
from hocba.pki.signer import Signer

__all__ = [
    "DEFAULT_MAX_PDF_BYTES",
    "PRINCIPAL_FIELD",
    "SEAL_FIELD",
    "PdfCheckCode",
    "PdfSignError",
    "PortSigner",
    "attachment_name",
    "embedded_record_xml",
    "seal_box_for",
    "sign_pdf",
    "sign_pdfs",
    "verify_pdf",
]


def _rounded(box: Sequence[float]) -> tuple[float, float, float, float]:
    """A box's coordinates to the hundredth of a point, as they are written in the PDF."""
    x1, y1, x2, y2 = (round(v, 2) for v in box)
    return x1, y1, x2, y2


def sign_pdf(
    pdf: bytes,
    *,
    principal: Signer,
    seal: Signer,
    record_xml: bytes,
    when: dt.datetime | None = None,
) -> bytes:
    """Attach ``record_xml`` and sign ``pdf`` (from :func:`~hocba.pdf.render.render_book`)
    as the principal (certification signature, visible box) and then as the school (seal
    stamp over the left third of the principal's box, locking the document).

    ``record_xml``: the issued, signed XML of the latest year (its lookup code must be the
    one the PDF states). ``when``: the time printed in the stamps (default: now); the
    signatures' own time is the signing moment. Raises :class:`PdfSignError` (or the
    port's :class:`~hocba.pki.signer.SigningError`).

    Two ways, one result (the revisions of the module docstring): for a rendering of
    :func:`~hocba.pdf.render.render_book` (one revision, an xref table, no form
    yet) the revisions are written directly (:mod:`hocba.pdf.direct`); any other PDF is
    signed by pyHanko's :class:`~pyhanko.sign.signers.PdfSigner` (:mod:`hocba.pdf.fallback`).
    Both fill the CMS containers from the signer's template
    (:class:`~hocba.pdf.cms._CmsTemplate`).

    pyHanko is asynchronous; this function drives it with :func:`asyncio.run`, so call it
    from synchronous code (a Prefect task, the CLI, a worker thread), not from inside a
    running event loop.
    """
    facts = _record_facts(record_xml)
    lookup_code = facts.get("MA_TRA_CUU_UUID")
    if not lookup_code:
        raise PdfSignError("Học bạ XML chưa có mã số tra cứu (chưa phát hành).")
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        subject = str(reader.trailer_view["/Info"].get("/Subject", ""))
    except Exception as exc:
        raise PdfSignError(f"Không đọc được bản PDF: {type(exc).__name__}") from exc
    if subject != f"{LOOKUP_SUBJECT_PREFIX}{lookup_code}":
        raise PdfSignError("Học bạ XML đính kèm không phải học bạ của bản PDF này.")
    placement = _principal_box(reader, pdf)
    when = when or dt.datetime.now(_VN)
    stamp_time = _vn_time(when)
    principal_box = _rounded(placement.box)
    width, height = principal_box[2] - principal_box[0], principal_box[3] - principal_box[1]
    name = _name_attribute(principal.certificate, NameOID.COMMON_NAME) or facts.get(
        "TEN_GIAM_HIEU_KY_HOC_BA", ""
    )
    role = facts.get("CHUC_VU_GIAM_HIEU_KY_HOC_BA") or (
        _name_attribute(principal.certificate, NameOID.TITLE) or "Hiệu trưởng"
    )
    school = facts.get("TEN_TRUONG", "")
    place = facts.get("TEN_QUAN_HUYEN") or facts.get("TEN_TINH_THANH_PHO") or ""
    book = _BookSigning(
        facts=facts,
        lookup_code=lookup_code,
        placement=placement,
        principal_box=principal_box,
        seal_box=_rounded(seal_box_for(placement.box)),
        name=name,
        school=school,
        location=facts.get("DIA_DANH_PHAT_HANH_HOC_BA"),
        principal_appearance=_principal_appearance(name, role, school, stamp_time, width, height),
        seal_appearance=_seal_appearance(
            school, place, when.astimezone(_VN).strftime("%d/%m/%Y"), _SEAL_DIAMETER
        ),
        when=when,
    )
    principal_signer, seal_signer = _port_signer(principal), _port_signer(seal)
    principal_template = principal_signer.container_template()
    seal_template = seal_signer.container_template()
    if principal_template is not None and seal_template is not None:
        signed = _sign_directly(
            pdf,
            reader,
            record_xml,
            book,
            (principal_signer, principal_template),
            (seal_signer, seal_template),
        )
        if signed is not None:
            return signed
    return _sign_with_pyhanko(pdf, record_xml, book, principal_signer, seal_signer)


def sign_pdfs(
    items: Sequence[tuple[bytes, bytes]],
    *,
    principal: Signer,
    seal: Signer,
    when: dt.datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[bytes]:
    """Sign many pupils' books with the same two signers (``items``: ``(pdf, record_xml)``
    pairs). One backend call per signature — see the module docstring's batch note. The
    stamps use one time for the whole batch (``when``, default now), so their appearances
    are built once and reused. ``progress(done, total)`` is called after each book."""
    when = when or dt.datetime.now(_VN)
    signed: list[bytes] = []
    for index, (pdf, record_xml) in enumerate(items, start=1):
        signed.append(
            sign_pdf(pdf, principal=principal, seal=seal, record_xml=record_xml, when=when)
        )
        if progress is not None:
            progress(index, len(items))
    return signed
