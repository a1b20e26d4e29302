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
signature (document digest, signature value: :class:`_CmsTemplate`); for a rendering of
:func:`~hocba.pdf.render.render_book` the two revisions are written as bytes
(:func:`_sign_directly`, :mod:`hocba.pdf.incremental`) instead of through pyHanko's
generic writer; the stamps are built once per signer, text and date and kept as
relocatable objects.

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

import asyncio
import dataclasses
import datetime as dt
import functools
import hashlib
import io
import logging
import math
import os
import re
import threading
import weakref
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from asn1crypto.algos import SignedDigestAlgorithm
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils import content, generic, layout
from pyhanko.pdf_utils.embed import EmbeddedFileObject, EmbeddedFileParams, FileSpec, embed_file
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import PdfSignatureStatus
from pyhanko.stamp import StaticStampStyle
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore
from reportlab.lib import colors
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen.canvas import Canvas

from hocba.errors import HocbaError
from hocba.pdf.incremental import (
    RelocatableObjects,
    Revision,
    form_xobject_from_page,
    ref,
    serialize,
)
from hocba.pdf.render import (
    FONT_BOLD,
    FONT_BOLD_ITALIC,
    FONT_ITALIC,
    FONT_REGULAR,
    LOOKUP_SUBJECT_PREFIX,
    compact_font_subsets,
    register_fonts,
)
from hocba.pki.signer import ALGORITHM_ECDSA_SHA256, Signer, SigningError
from hocba.xml.record import RecordXmlError, parse_record_xml_safely
from hocba.xml.verify import (
    Check,
    CheckStatus,
    CrlSource,
    CrlUnavailable,
    OcspSource,
    Registry,
    VerificationReport,
    verify_document,
)

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

log = logging.getLogger(__name__)

PRINCIPAL_FIELD = "ChuKyHieuTruong"
SEAL_FIELD = "DauCuaTruong"
DEFAULT_MAX_PDF_BYTES = 20_000_000
ATTACHMENT_PATTERN = re.compile(r"hoc-ba-[0-9a-f-]{36}\.xml")
_SEAL_DIAMETER = 96.0
_SEAL_RED = colors.Color(0.80, 0.07, 0.12)
_NAVY = colors.HexColor("#1f3a68")
_VN = dt.timezone(dt.timedelta(hours=7))


class PdfSignError(HocbaError):
    """The PDF could not be signed; ``message_vi`` is a Vietnamese message for people."""

    def __init__(self, message_vi: str) -> None:
        super().__init__(message_vi)
        self.message_vi = message_vi


class PdfCheckCode:
    """Stable codes of the PDF-specific checks (see the module docstring)."""

    PDF_PARSE = "PDF_PARSE"
    PDF_SIGNATURE_PRINCIPAL = "PDF_SIGNATURE_PRINCIPAL"
    PDF_SIGNATURE_SEAL = "PDF_SIGNATURE_SEAL"
    PDF_LOCK = "PDF_LOCK"
    PDF_REVOCATION = "PDF_REVOCATION"
    PDF_EMBEDDED_XML = "PDF_EMBEDDED_XML"
    PDF_TIMESTAMP = "PDF_TIMESTAMP"


# =============================================================================== the port
def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))


class PortSigner(signers.Signer):
    """A pyHanko signer that signs through the project's :class:`Signer` port.

    pyHanko hands :meth:`async_sign_raw` the DER of the CMS ``SignedAttributes``; the port
    signs digests, so the attributes are hashed here (SHA-256) and the port returns
    RSASSA-PKCS1-v1_5 (used as is) or ECDSA ``r || s`` (re-encoded as the DER
    ``Ecdsa-Sig-Value`` that CMS expects, RFC 5753 §7.2). A dry run (pyHanko sizing the
    signature container) gets zero bytes of the right length and never reaches the port.

    The container carries the signer's certificate once and the intermediate CAs of
    ``port.chain``, not the self-signed root (``embed_roots``): a verifier anchors trust
    in its own copy, and an extra certificate in ``/Contents`` would be bytes that no
    signature protects and no check uses.
    """

    def __init__(self, port: Signer, *, embed_roots: bool = False) -> None:
        key = port.certificate.public_key()
        self.port = port
        self._ecdsa = port.algorithm == ALGORITHM_ECDSA_SHA256
        if self._ecdsa:
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise PdfSignError("Chứng thư số không chứa khoá ECDSA như thuật toán đã khai.")
            size = (key.curve.key_size + 7) // 8
            self._placeholder = 2 * (size + 3) + 3  # DER SEQUENCE of two INTEGERs, maximal
            mechanism = "sha256_ecdsa"
        else:
            if not isinstance(key, rsa.RSAPublicKey):
                raise PdfSignError("Chứng thư số không chứa khoá RSA như thuật toán đã khai.")
            self._placeholder = (key.key_size + 7) // 8
            mechanism = "sha256_rsa"
        certificate = _asn1(port.certificate)
        chain = [_asn1(c) for c in port.chain]
        self._dry_run_value: bytes | None = None
        self._templates: dict[tuple[bool, bool], _CmsTemplate | None] = {}
        super().__init__(
            signing_cert=certificate,
            cert_registry=SimpleCertificateStore.from_certs(
                [c for c in chain if c.dump() != certificate.dump()]  # the signer's: once
            ),
            signature_mechanism=SignedDigestAlgorithm({"algorithm": mechanism}),
            embed_roots=embed_roots,
        )

    @functools.cached_property
    def bytes_reserved(self) -> int:
        """Room for the CMS container in the ``/Contents`` hex string: the size of a dry-run
        container (PAdES attributes, the certificates) plus a margin, computed once per
        signer instead of once per document."""
        dummy = asyncio.run(self.async_sign(bytes(32), "sha256", dry_run=True, use_pades=True))
        size = 2 * len(dummy.dump()) + 2048
        return size + size % 2

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        if digest_algorithm.lower() != "sha256":
            raise PdfSignError(f"Chỉ ký với SHA-256 (được yêu cầu {digest_algorithm}).")
        if dry_run:
            return self._dry_run_value or bytes(self._placeholder)
        return self._sign_attributes(data)

    def _sign_attributes(self, data: bytes) -> bytes:
        """The port's signature over the DER of the signed attributes (one backend call)."""
        digest = hashlib.sha256(data).digest()
        values = self.port.sign_digests([digest])
        if len(values) != 1:
            raise SigningError("Dịch vụ ký trả về số chữ ký không khớp số giá trị băm.")
        value = values[0]
        if self._ecdsa:
            half = len(value) // 2
            r, s = int.from_bytes(value[:half], "big"), int.from_bytes(value[half:], "big")
            value = utils.encode_dss_signature(r, s)
        return value

    async def async_sign(  # type: ignore[override]
        self,
        data_digest: bytes,
        digest_algorithm: str,
        dry_run: bool = False,
        use_pades: bool = False,
        timestamper: Any = None,
        signed_attr_settings: PdfCMSSignedAttributes | None = None,
        is_pdf_sig: bool = True,
        encap_content_info: Any = None,
    ) -> cms.ContentInfo:
        """The CMS container of a PDF signature. For RSA keys it is filled in from a
        template built once per signer (see :class:`_CmsTemplate`) instead of being
        assembled by asn1crypto each time; anything the template does not cover (ECDSA,
        timestamps, extra attributes, the dry run) takes pyHanko's own path."""
        settings = signed_attr_settings or PdfCMSSignedAttributes()
        template = None
        if (
            not dry_run
            and timestamper is None
            and encap_content_info is None
            and digest_algorithm.lower() == "sha256"
            and len(data_digest) == 32
            and settings.cades_signed_attrs is None
            and settings.adobe_revinfo_attr is None
        ):
            template = await self._template(use_pades, is_pdf_sig, settings)
        if template is None:
            return await super().async_sign(
                data_digest,
                digest_algorithm,
                dry_run=dry_run,
                use_pades=use_pades,
                timestamper=timestamper,
                signed_attr_settings=signed_attr_settings,
                is_pdf_sig=is_pdf_sig,
                encap_content_info=encap_content_info,
            )
        return template.fill(data_digest, self._sign_attributes)

    def container_template(self) -> _CmsTemplate | None:
        """The template of this signer's PAdES containers (built on first use), or ``None``
        when pyHanko's containers cannot be made into one (see :meth:`_build_template`)."""
        key = (True, True)
        if key not in self._templates:
            asyncio.run(self._template(True, True, PdfCMSSignedAttributes()))
        return self._templates[key]

    async def _template(
        self, use_pades: bool, is_pdf_sig: bool, settings: PdfCMSSignedAttributes
    ) -> _CmsTemplate | None:
        key = (use_pades, is_pdf_sig)
        if key not in self._templates:
            self._templates[key] = await self._build_template(use_pades, is_pdf_sig, settings)
        return self._templates[key]

    async def _build_template(
        self, use_pades: bool, is_pdf_sig: bool, settings: PdfCMSSignedAttributes
    ) -> _CmsTemplate | None:
        """A container built by pyHanko around a marker digest and a marker signature,
        kept only if the signed attributes built for another digest at another signing
        time differ from it in nothing but the digest (so no attribute depends on the
        moment or the document)."""
        first, second = os.urandom(32), os.urandom(32)
        self._dry_run_value = marker = os.urandom(self._placeholder)
        try:
            info = await super().async_sign(
                first,
                "sha256",
                dry_run=True,
                use_pades=use_pades,
                signed_attr_settings=settings,
                is_pdf_sig=is_pdf_sig,
            )
        finally:
            self._dry_run_value = None
        later = dataclasses.replace(
            settings,
            signing_time=(settings.signing_time or dt.datetime.now(dt.UTC))
            + dt.timedelta(days=1, seconds=1),
        )
        other = await self.signed_attrs(
            second, "sha256", attr_settings=later, use_pades=use_pades, is_pdf_sig=is_pdf_sig
        )
        der, attributes = info.dump(), other.dump().replace(second, first)
        body = attributes[1:]  # in SignerInfo the SET OF carries the tag [0] IMPLICIT
        if (
            der.count(first) != 1
            or der.count(marker) != 1
            or attributes.count(first) != 1
            or der.count(body) != 1
            or der[der.find(body) - 1] != 0xA0
        ):
            log.info("PDF signature container template not applicable; pyHanko builds each one")
            return None
        start = der.find(body) - 1
        signature_at = der.find(marker)
        enclosing = _enclosing_headers(der, signature_at)
        if enclosing is None:
            log.info("PDF signature container template: the signature is not last")
            return None
        return _CmsTemplate(
            der=der,
            digest_at=der.find(first),
            attributes=(start, start + len(attributes)),
            signature_at=signature_at,
            signature_length=len(marker),
            exact_length=not self._ecdsa,
            enclosing=enclosing,
        )


def _der_header(der: bytes, at: int) -> tuple[int, int]:
    """(header length, content length) of the DER element at ``at`` (one-byte tags)."""
    first = der[at + 1]
    if first < 0x80:
        return 2, first
    count = first & 0x7F
    return 2 + count, int.from_bytes(der[at + 2 : at + 2 + count], "big")


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(encoded)]) + encoded


def _enclosing_headers(der: bytes, value_at: int) -> tuple[int, ...] | None:
    """Offsets of the elements that contain the signature value, outermost first and the
    value's own OCTET STRING last — if each of them is the last element of its parent
    (then only their lengths change with the value's length), else ``None``."""
    offsets: list[int] = []
    at = 0
    while True:
        header, length = _der_header(der, at)
        if at + header + length != len(der):
            return None
        offsets.append(at)
        if at + header == value_at:
            return tuple(offsets) if der[at] == 0x04 else None
        if not der[at] & 0x20:  # primitive: nothing inside
            return None
        child = at + header
        while True:  # to the last child
            child_header, child_length = _der_header(der, child)
            if child + child_header + child_length == len(der):
                break
            child += child_header + child_length
            if child >= len(der):
                return None
        at = child


@dataclass(frozen=True)
class _CmsTemplate:
    """The DER of a signer's CMS ``ContentInfo`` with the two parts that change from one
    signature to the next located: the ``messageDigest`` attribute value and the
    signature value. An RSASSA-PKCS1-v1_5 signature has the modulus's length, so the
    container's size never changes; an ECDSA ``Ecdsa-Sig-Value`` is a DER SEQUENCE of
    two INTEGERs whose length varies by a byte or two, so the elements that enclose it
    (``enclosing``: each the last of its parent, the signature being the last field of
    the only ``SignerInfo``) get their lengths re-encoded; the template holds the longest.

    The signed attributes are signed as a ``SET OF`` (RFC 5652 §5.4): their DER is the
    template's ``[0]`` element with the tag byte put back to ``0x31``."""

    der: bytes
    digest_at: int
    attributes: tuple[int, int]
    signature_at: int
    signature_length: int
    exact_length: bool
    enclosing: tuple[int, ...]

    @property
    def length(self) -> int:
        """The longest container filled from this template, in bytes."""
        return len(self.der)

    def fill_der(self, digest: bytes, sign: Callable[[bytes], bytes]) -> bytes:
        """The container's DER for a document ``digest``; ``sign`` signs the DER of the
        signed attributes (one backend call)."""
        if len(digest) != 32:
            raise SigningError("Giá trị băm SHA-256 phải dài 32 byte.")
        out = bytearray(self.der)
        out[self.digest_at : self.digest_at + len(digest)] = digest
        start, end = self.attributes
        value = sign(b"\x31" + bytes(out[start + 1 : end]))
        if len(value) == self.signature_length:
            out[self.signature_at :] = value
            return bytes(out)
        if self.exact_length or len(value) > self.signature_length:
            raise SigningError("Chữ ký trả về không đúng độ dài của khoá.")
        body = value
        inner = self.signature_at
        for at in reversed(self.enclosing):  # rebuild the enclosing headers, inside out
            header, _ = _der_header(self.der, at)
            body = (
                out[at : at + 1]
                + _der_length(len(body) + inner - at - header)
                + bytes(out[at + header : inner])
                + body
            )
            inner = at
        return bytes(body)

    def fill(self, digest: bytes, sign: Callable[[bytes], bytes]) -> cms.ContentInfo:
        return cms.ContentInfo.load(self.fill_der(digest, sign))


# =============================================================================== appearances
def _name_attribute(certificate: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    values = certificate.subject.get_attributes_for_oid(oid)
    return str(values[0].value) if values else None


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


# =============================================================================== layout
@dataclass(frozen=True)
class _Placement:
    page: int
    box: tuple[float, float, float, float]
    page_ref: generic.IndirectObject | None = None


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


# =============================================================================== signing
def attachment_name(lookup_code: str) -> str:
    return f"hoc-ba-{lookup_code}.xml"


def _record_facts(record_xml: bytes) -> dict[str, str]:
    try:
        root = parse_record_xml_safely(record_xml)
    except RecordXmlError as exc:
        raise PdfSignError(f"Học bạ XML đính kèm không đọc được: {exc.message_vi}") from exc
    general = root.find("DU_LIEU_HOC_BA/THONG_TIN_CHUNG")
    facts: dict[str, str] = {}
    if general is not None:
        for child in general:
            if isinstance(child.tag, str) and child.text:
                facts[child.tag] = child.text.strip()
    return facts


def _vn_time(when: dt.datetime) -> str:
    return when.astimezone(_VN).strftime("%d/%m/%Y %H:%M (+07:00)")


_PORT_SIGNERS: weakref.WeakKeyDictionary[Any, PortSigner] = weakref.WeakKeyDictionary()
_PORT_SIGNERS_LOCK = threading.Lock()


def _port_signer(port: Signer) -> PortSigner:
    """One :class:`PortSigner` per port object (its certificates parsed once, its
    container size estimated once), for as long as the port lives."""
    try:
        with _PORT_SIGNERS_LOCK:
            cached = _PORT_SIGNERS.get(port)
            if cached is None:
                cached = _PORT_SIGNERS[port] = PortSigner(port)
            return cached
    except TypeError:  # not weak-referenceable: no cache
        return PortSigner(port)


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


@dataclass(frozen=True)
class _BookSigning:
    """What both ways of signing a book need, worked out once."""

    facts: dict[str, str]
    lookup_code: str
    placement: _Placement
    principal_box: tuple[float, float, float, float]
    seal_box: tuple[float, float, float, float]
    name: str
    school: str
    location: str | None
    principal_appearance: bytes
    seal_appearance: bytes
    when: dt.datetime


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
    yet) the revisions are written directly (:func:`_sign_directly`, with
    :mod:`hocba.pdf.incremental`); any other PDF is signed by pyHanko's
    :class:`~pyhanko.sign.signers.PdfSigner`. Both fill the CMS containers from the
    signer's template (:class:`_CmsTemplate`).

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
    principal_box = tuple(round(v, 2) for v in placement.box)
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
        principal_box=principal_box,  # type: ignore[arg-type]
        seal_box=tuple(round(v, 2) for v in seal_box_for(placement.box)),  # type: ignore[arg-type]
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


_PRINCIPAL_REASON = "Hiệu trưởng xác nhận học bạ"
_SEAL_REASON = "Đóng dấu số của nhà trường"


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
    fields.append_signature_field(
        writer,
        fields.SigFieldSpec(
            PRINCIPAL_FIELD,
            on_page=book.placement.page,
            box=book.principal_box,
        ),
    )
    fields.append_signature_field(
        writer,
        fields.SigFieldSpec(
            SEAL_FIELD,
            on_page=book.placement.page,
            box=book.seal_box,
            field_mdp_spec=fields.FieldMDPSpec(fields.FieldMDPAction.ALL),
            doc_mdp_update_value=fields.MDPPerm.NO_CHANGES,
        ),
    )
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


def _signature_entries(
    name: str | None, location: str | None, reason: str, reference: generic.DictionaryObject
) -> bytes:
    """The signature dictionary's entries other than ``/ByteRange`` and ``/Contents``, as
    pyHanko writes them for a PAdES signature (ETSI EN 319 142-1 §5.3)."""
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
    return serialize(entries)[2:-2].strip()  # without the dictionary's << >>


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
    """Revisions 1 and 2 of the module docstring written as bytes, with the objects pyHanko
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
    rev.add_signature(
        signature,
        _signature_entries(
            book.name,
            book.location,
            _PRINCIPAL_REASON,
            _transform("/DocMDP", {"/P": generic.NumberObject(fields.MDPPerm.FILL_FORMS.value)}),
        ),
        2 * principal_template.length,
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
    seal_rev.add_signature(
        seal_signature,
        _signature_entries(
            book.school,
            book.location,
            _SEAL_REASON,
            _transform(
                "/FieldMDP",
                {"/Action": generic.pdf_name("/All"), "/P": generic.NumberObject(1)},
            ),
        ),
        2 * seal_template.length,
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


def _attachment_description(book: _BookSigning) -> str:
    return (
        f"Học bạ số (XML đã ký số) năm học {book.facts.get('TEN_NAM_HOC', '')}, "
        f"mã số tra cứu {book.lookup_code}"
    )


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


# =============================================================================== verification
_KEY_USAGE = KeyUsageConstraints(key_usage={"digital_signature", "non_repudiation"})
_ALLOWED_LATER_CHANGES = {"NONE", "LTA_UPDATES", "FORM_FILLING"}


def _check(code: str, status: CheckStatus, message: str, slot: str | None = None) -> Check:
    return Check(code, status, message, slot)


def _get(dictionary: Any, key: str) -> Any:
    """``dictionary[key]`` resolved (pyHanko's ``.get`` returns indirect references)."""
    return dictionary[key] if dictionary is not None and key in dictionary else None


def _attachments(root: Any) -> dict[str, bytes]:
    """Embedded files named ``hoc-ba-<uuid>.xml`` in the catalog's name tree."""
    found: dict[str, bytes] = {}
    tree = _get(_get(root, "/Names"), "/EmbeddedFiles")
    if tree is None:
        return found

    def walk(node: Any, depth: int) -> None:
        pairs = _get(node, "/Names") or ()
        for i in range(0, len(pairs) - 1, 2):
            name = str(pairs[i])
            if ATTACHMENT_PATTERN.fullmatch(name):
                stream = _get(_get(pairs[i + 1], "/EF"), "/F")
                if stream is not None:
                    found[name] = stream.data
        if depth < 8:
            for kid in _get(node, "/Kids") or ():
                walk(kid, depth + 1)

    walk(tree, 0)
    return found


def embedded_record_xml(pdf: bytes) -> bytes | None:
    """The record XML attached to a signed book (the final revision), or ``None``."""
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    files = _attachments(reader.root)
    return next(iter(files.values())) if len(files) == 1 else None


def _embedded_xml_check(
    reader: PdfFileReader,
    principal: Any,
    registry: Registry | None,
) -> tuple[Check, bytes | None]:
    code = PdfCheckCode.PDF_EMBEDDED_XML
    current = _attachments(reader.root)
    if len(current) != 1:
        what = "không có" if not current else f"có {len(current)}"
        return _check(code, CheckStatus.FAIL, f"Bản PDF {what} tệp học bạ XML đính kèm"), None
    name, xml = next(iter(current.items()))
    if principal is None:
        return (
            _check(code, CheckStatus.FAIL, "Không có chữ ký của Hiệu trưởng bao trùm tệp XML"),
            xml,
        )
    signed = _attachments(reader.get_historical_root(principal.signed_revision))
    if signed.get(name) != xml:
        return (
            _check(
                code,
                CheckStatus.FAIL,
                f"Tệp {name} đính kèm đã bị thay đổi hoặc thêm vào sau khi Hiệu trưởng ký",
            ),
            xml,
        )
    facts = _safe_facts(xml)
    lookup = facts.get("MA_TRA_CUU_UUID")
    if name != attachment_name(str(lookup)):
        return (
            _check(code, CheckStatus.FAIL, f"Tên tệp {name} không khớp mã tra cứu trong XML"),
            xml,
        )
    info = _get(reader.get_historical_resolver(principal.signed_revision).trailer_view, "/Info")
    subject = str(_get(info, "/Subject") or "")
    if subject != f"{LOOKUP_SUBJECT_PREFIX}{lookup}":
        return (
            _check(
                code,
                CheckStatus.FAIL,
                "Mã tra cứu của tệp XML đính kèm khác mã tra cứu ghi trên bản PDF",
            ),
            xml,
        )
    digest = hashlib.sha256(xml).hexdigest()
    if registry is None:
        return (
            _check(
                code,
                CheckStatus.PASS,
                f"Tệp {name} đính kèm được chữ ký bao trùm, không bị thay đổi "
                "(chưa đối chiếu sổ học bạ đã phát hành: không có sổ đăng ký)",
            ),
            xml,
        )
    try:
        issued = registry.issued_record(str(lookup))
    except Exception as exc:  # noqa: BLE001 - registry down: cannot check now
        log.warning("registry.issued_record failed: %s", type(exc).__name__)
        return (
            _check(
                code,
                CheckStatus.INDETERMINATE,
                "Chưa đối chiếu được tệp XML với sổ học bạ đã phát hành (sổ không trả lời)",
            ),
            xml,
        )
    if issued is None:
        return (
            _check(
                code,
                CheckStatus.PASS,
                f"Tệp {name} đính kèm không bị thay đổi; mã tra cứu không có trong sổ: "
                "học bạ của hệ thống khác",
            ),
            xml,
        )
    if str(issued.xml_sha256).strip().lower() != digest:
        return (
            _check(
                code,
                CheckStatus.FAIL,
                "Tệp XML đính kèm khác bản học bạ đã phát hành (mã băm SHA-256 không khớp)",
            ),
            xml,
        )
    return (
        _check(
            code,
            CheckStatus.PASS,
            f"Tệp {name} đính kèm trùng từng byte với học bạ đã phát hành (SHA-256 khớp)",
        ),
        xml,
    )


def _safe_facts(xml: bytes | None) -> dict[str, str]:
    if xml is None:
        return {}
    try:
        return _record_facts(xml)
    except PdfSignError:
        return {}


def _cryptography_cert(certificate: asn1_x509.Certificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(certificate.dump())


def _subject_id(certificate: x509.Certificate, prefix: str) -> str | None:
    for oid in (NameOID.SERIAL_NUMBER, NameOID.USER_ID):
        for attribute in certificate.subject.get_attributes_for_oid(oid):
            match = re.fullmatch(rf"\s*{prefix}\s*:\s*(\S+)\s*", str(attribute.value), re.I)
            if match:
                return match.group(1)
    return None


async def _validate(signature: Any, roots: Sequence[asn1_x509.Certificate]) -> PdfSignatureStatus:
    """pyHanko's validation, at the signing time the signature claims (as for the XML)."""
    claimed = signature.self_reported_timestamp
    context = ValidationContext(
        trust_roots=list(roots),
        moment=claimed,
        allow_fetching=False,
        revocation_mode="soft-fail",
    )
    return await async_validate_pdf_signature(
        signature, signer_validation_context=context, key_usage_settings=_KEY_USAGE
    )


def _signature_check(
    code: str,
    label: str,
    signature: Any,
    status: PdfSignatureStatus | Exception | None,
    expected: tuple[str, str | None],
) -> Check:
    if signature is None:
        return _check(code, CheckStatus.FAIL, f"Không có chữ ký {label} trong bản PDF")
    if isinstance(status, Exception) or status is None:
        return _check(code, CheckStatus.FAIL, f"Không kiểm tra được chữ ký {label} (hỏng)")
    problems = []
    if not status.intact:
        problems.append("nội dung được ký đã bị thay đổi (giá trị băm không khớp)")
    if not status.valid:
        problems.append("giá trị chữ ký không đúng với chứng thư số")
    if not status.trusted:
        why = status.trust_problem_indic.name if status.trust_problem_indic else "?"
        problems.append(f"chứng thư số không chuỗi được tới CA tin cậy ({why})")
    certificate = _cryptography_cert(status.signing_cert)
    prefix, wanted = expected
    if wanted:
        have = _subject_id(certificate, prefix)
        if have is not None and have != wanted:
            problems.append(f"chứng thư số không phải của người/đơn vị ghi trong học bạ ({prefix})")
    name = _name_attribute(certificate, NameOID.COMMON_NAME) or "?"
    when = status.signer_reported_dt
    when_text = _vn_time(when) if when else "?"
    if problems:
        return _check(
            code, CheckStatus.FAIL, f"Chữ ký {label} không hợp lệ: " + "; ".join(problems)
        )
    return _check(code, CheckStatus.PASS, f"Chữ ký {label} hợp lệ: {name}, ký lúc {when_text}")


def _lock_check(
    signatures: list[Any], statuses: dict[str, Any], stamped_to_the_end: bool = False
) -> Check:
    code = PdfCheckCode.PDF_LOCK
    names = [s.field_name for s in signatures]
    if names != [PRINCIPAL_FIELD, SEAL_FIELD]:
        return _check(
            code,
            CheckStatus.FAIL,
            "Bản PDF phải có đúng hai chữ ký, Hiệu trưởng rồi dấu của trường; có: "
            + (", ".join(names) or "không có chữ ký nào"),
        )
    principal, seal = signatures
    if principal.docmdp_level is None or principal.sig_object.get("/Reference") is None:
        return _check(code, CheckStatus.FAIL, "Chữ ký của Hiệu trưởng không phải chữ ký chứng nhận")
    if seal.docmdp_level != fields.MDPPerm.NO_CHANGES or seal.fieldmdp is None:
        return _check(code, CheckStatus.FAIL, "Dấu của trường không khoá tài liệu (FieldMDP P=1)")
    seal_status = statuses.get(SEAL_FIELD)
    principal_status = statuses.get(PRINCIPAL_FIELD)
    if not isinstance(seal_status, PdfSignatureStatus) or not isinstance(
        principal_status, PdfSignatureStatus
    ):
        return _check(code, CheckStatus.FAIL, "Không phân tích được các lần sửa đổi của tệp")
    seal_level = seal_status.modification_level
    lta_only = (  # issue 12: DSS + document timestamp may follow the lock (PAdES B-LTA)
        stamped_to_the_end  # a valid document timestamp covers every byte of the file
        and seal_status.coverage is not None
        and seal_status.coverage.name == "ENTIRE_REVISION"
        and seal_status.docmdp_ok
        and seal_level is not None
        and seal_level.name in ("NONE", "LTA_UPDATES")
    )
    if seal_status.coverage is None or (
        seal_status.coverage.name != "ENTIRE_FILE" and not lta_only
    ):
        return _check(
            code,
            CheckStatus.FAIL,
            "Tài liệu đã bị sửa đổi sau khi đóng dấu khoá (có phần được thêm vào sau chữ ký cuối)",
        )
    level = principal_status.modification_level
    if not principal_status.docmdp_ok or level is None or level.name not in _ALLOWED_LATER_CHANGES:
        return _check(
            code,
            CheckStatus.FAIL,
            "Sau chữ ký của Hiệu trưởng có thay đổi không được phép "
            f"({level.name if level else '?'})",
        )
    return _check(
        code,
        CheckStatus.PASS,
        "Tài liệu được Hiệu trưởng chứng nhận và dấu của trường khoá lại; "
        + (
            "sau đó chỉ bổ sung dữ liệu xác thực dài hạn (DSS, dấu thời gian tài liệu)"
            if lta_only
            else "không có thay đổi nào sau chữ ký cuối"
        ),
    )


async def _validate_timestamp(signature: Any, roots: Sequence[asn1_x509.Certificate]) -> Any:
    from pyhanko.sign.validation import async_validate_pdf_timestamp

    context = ValidationContext(
        trust_roots=list(roots), allow_fetching=False, revocation_mode="soft-fail"
    )
    return await async_validate_pdf_timestamp(signature, validation_context=context)


def _document_timestamp_check(
    reader: PdfFileReader, roots: Sequence[asn1_x509.Certificate]
) -> tuple[Check | None, bool]:
    """PDF_TIMESTAMP (issue 12, PAdES B-LTA): every document timestamp is intact, valid
    and from a trusted TSA; the message gives its time. ``(None, False)`` for a B-B copy;
    the flag says the last one is valid and covers the whole file (for ``PDF_LOCK``)."""
    stamps = list(reader.embedded_timestamp_signatures)
    if not stamps:
        return None, False
    code = PdfCheckCode.PDF_TIMESTAMP
    times = []
    status: Any = None
    for stamp in stamps:
        try:
            status = asyncio.run(_validate_timestamp(stamp, roots))
        except Exception as exc:  # noqa: BLE001 - a malformed timestamp is a failed check
            log.info("PDF document timestamp validation failed: %s", type(exc).__name__)
            return _check(code, CheckStatus.FAIL, "Dấu thời gian tài liệu hỏng"), False
        if not (status.intact and status.valid and status.trusted):
            return (
                _check(
                    code,
                    CheckStatus.FAIL,
                    "Dấu thời gian tài liệu không hợp lệ hoặc không do TSA tin cậy cấp",
                ),
                False,
            )
        times.append(_vn_time(status.timestamp))
    to_the_end = status.coverage is not None and status.coverage.name == "ENTIRE_FILE"
    return (
        _check(code, CheckStatus.PASS, "Dấu thời gian tài liệu (PAdES B-LTA): " + ", ".join(times)),
        to_the_end,
    )


def _revocation_check(
    statuses: dict[str, Any],
    roots: Sequence[x509.Certificate],
    crl_source: CrlSource | None,
) -> Check:
    code = PdfCheckCode.PDF_REVOCATION
    if crl_source is None:
        return _check(
            code,
            CheckStatus.INDETERMINATE,
            "Chưa kiểm tra tình trạng thu hồi chứng thư số của chữ ký PDF: chưa cấu hình nguồn CRL",
        )
    outcomes: list[tuple[CheckStatus, str]] = []
    for field, label in ((PRINCIPAL_FIELD, "Hiệu trưởng"), (SEAL_FIELD, "dấu của trường")):
        status = statuses.get(field)
        if not isinstance(status, PdfSignatureStatus):
            outcomes.append((CheckStatus.INDETERMINATE, f"{label}: không có chứng thư"))
            continue
        certificate = _cryptography_cert(status.signing_cert)
        signed_at = status.signer_reported_dt
        try:
            crl = crl_source(certificate)
        except CrlUnavailable:
            outcomes.append((CheckStatus.INDETERMINATE, f"{label}: không lấy được CRL"))
            continue
        except Exception as exc:  # noqa: BLE001 - a CRL service down is "cannot check now"
            log.warning("crl_source failed: %s", type(exc).__name__)
            outcomes.append((CheckStatus.INDETERMINATE, f"{label}: không lấy được CRL"))
            continue
        issuer = next((r for r in roots if r.subject == certificate.issuer), None)
        public_key = issuer.public_key() if issuer is not None else None
        if (
            not isinstance(crl, x509.CertificateRevocationList)
            or not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
            or crl.issuer != certificate.issuer
            or not crl.is_signature_valid(public_key)
        ):
            outcomes.append((CheckStatus.INDETERMINATE, f"{label}: CRL không do CA cấp ký"))
            continue
        revoked = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
        if revoked is not None and (signed_at is None or revoked.revocation_date_utc <= signed_at):
            outcomes.append((CheckStatus.FAIL, f"{label}: chứng thư số đã bị thu hồi trước khi ký"))
        else:
            outcomes.append((CheckStatus.PASS, f"{label}: chưa bị thu hồi khi ký"))
    statuses_seen = {status for status, _ in outcomes}
    detail = "; ".join(text for _, text in outcomes)
    if CheckStatus.FAIL in statuses_seen:
        return _check(code, CheckStatus.FAIL, f"Chứng thư số bị thu hồi — {detail}")
    if CheckStatus.INDETERMINATE in statuses_seen:
        return _check(code, CheckStatus.INDETERMINATE, f"Chưa xác định được — {detail}")
    return _check(code, CheckStatus.PASS, f"Chứng thư số không bị thu hồi khi ký — {detail}")


def verify_pdf(
    data: bytes,
    *,
    trusted_roots: Sequence[x509.Certificate],
    registry: Registry | None = None,
    crl_source: CrlSource | None = None,
    max_bytes: int = DEFAULT_MAX_PDF_BYTES,
    now: dt.datetime | None = None,
    ocsp_source: OcspSource | None = None,
) -> VerificationReport:
    """Verify a signed book and report every check (see the module docstring): the PDF's
    own checks, then the embedded record XML's. Never raises on bad input."""
    parse_code = PdfCheckCode.PDF_PARSE
    if not isinstance(data, bytes | bytearray | memoryview):
        return VerificationReport.from_checks(
            [_check(parse_code, CheckStatus.FAIL, "Dữ liệu vào phải là nội dung tệp (bytes)")]
        )
    if len(data) > max_bytes:
        return VerificationReport.from_checks(
            [
                _check(
                    parse_code,
                    CheckStatus.FAIL,
                    f"Tệp quá lớn: {len(data):,} byte, giới hạn {max_bytes:,} byte; không đọc tệp",
                )
            ]
        )
    data = bytes(data)
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        signatures = list(reader.embedded_regular_signatures)
    except Exception as exc:  # noqa: BLE001 - never raise on bad input
        log.info("unreadable PDF: %s", type(exc).__name__)
        return VerificationReport.from_checks(
            [
                _check(
                    parse_code, CheckStatus.FAIL, "Không đọc được tệp PDF (hỏng hoặc sai định dạng)"
                )
            ]
        )
    checks = [_check(parse_code, CheckStatus.PASS, "Đọc được tệp PDF")]
    by_field = {s.field_name: s for s in signatures}
    principal, seal = by_field.get(PRINCIPAL_FIELD), by_field.get(SEAL_FIELD)

    try:
        xml_check, xml = _embedded_xml_check(reader, principal, registry)
    except Exception as exc:  # noqa: BLE001
        log.warning("embedded XML check failed: %s", type(exc).__name__, exc_info=True)
        xml_check, xml = (
            _check(
                PdfCheckCode.PDF_EMBEDDED_XML,
                CheckStatus.FAIL,
                "Không đọc được tệp học bạ XML đính kèm",
            ),
            None,
        )
    facts = _safe_facts(xml)

    roots = [_asn1(root) for root in trusted_roots]
    statuses: dict[str, PdfSignatureStatus | Exception] = {}
    for field, signature in ((PRINCIPAL_FIELD, principal), (SEAL_FIELD, seal)):
        if signature is None:
            continue
        try:
            statuses[field] = asyncio.run(_validate(signature, roots))
        except Exception as exc:  # noqa: BLE001 - a malformed signature is a failed check
            log.info("PDF signature validation failed: %s", type(exc).__name__)
            statuses[field] = exc
    checks.append(
        _signature_check(
            PdfCheckCode.PDF_SIGNATURE_PRINCIPAL,
            "của Hiệu trưởng",
            principal,
            statuses.get(PRINCIPAL_FIELD),
            ("CCCD", facts.get("SO_CCCD_GIAM_HIEU_KY_HOC_BA")),
        )
    )
    checks.append(
        _signature_check(
            PdfCheckCode.PDF_SIGNATURE_SEAL,
            "đóng dấu của trường",
            seal,
            statuses.get(SEAL_FIELD),
            ("MATRUONG", facts.get("MA_TRUONG")),
        )
    )
    document_timestamp, stamped_to_the_end = _document_timestamp_check(reader, roots)
    checks.append(_lock_check(signatures, statuses, stamped_to_the_end))
    if document_timestamp is not None:
        checks.append(document_timestamp)
    checks.append(_revocation_check(statuses, trusted_roots, crl_source))
    checks.append(xml_check)

    info: dict[str, str | None] = {}
    if xml is not None:
        report = verify_document(
            xml,
            trusted_roots=trusted_roots,
            registry=registry,
            crl_source=crl_source,
            now=now,
            ocsp_source=ocsp_source,
        )
        checks += report.checks
        info = {
            "lookup_code": report.lookup_code,
            "school_code": report.school_code,
            "school_year": report.school_year,
            "class_name": report.class_name,
            "pupil_name": report.pupil_name,
        }
    info["document_sha256"] = hashlib.sha256(data).hexdigest()
    return VerificationReport.from_checks(checks, **info)
