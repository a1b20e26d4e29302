"""PAdES B-LTA for the paper copy (issue 12): validation data in a DSS, then a document
timestamp, added by pyHanko after the fast two-revision signing of hocba/pdf/sign.py.

Standards: ETSI EN 319 142-1 §5.4-5.5 (PAdES-LT: the Document Security Store with the
certificates, OCSP responses and CRLs of the signatures; PAdES-LTA: a document timestamp,
``/SubFilter /ETSI.RFC3161``, over everything before it), ISO 32000-2 §12.8.4.3 (DSS),
RFC 3161.

What :func:`make_lta` appends to a signed book::

    revision 3   + /DSS << /Certs [...] /OCSPs [...] /CRLs [...] >>    (pyHanko add_dss)
    revision 4   + document timestamp field "DauThoiGian", the TSA token over revisions 0-3
                   (pyHanko PdfTimeStamper, our TSA through :class:`TsaClient`)

Both are the "LTA updates" that the seal's lock (FieldMDP P=1) still permits
(ISO 32000-2 §12.8.2.2.2); hocba/pdf/sign.py's ``PDF_LOCK`` accepts them and nothing else
after the seal. Renewal later is one more document timestamp (``PdfTimeStamper``'s
``update_archival_timestamp_chain``), not implemented for PDFs here: the XML record is the
archived original, the PDF is its copy.

Cost: measured with ``bench/pdf.py --lta`` (docs/PERFORMANCE.md): pyHanko's generic writer
re-reads the file, so this step costs more than the fast signing itself.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable, Sequence

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import tsp as asn1_tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.signers.pdf_signer import PdfTimeStamper
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko.sign.validation.dss import DocumentSecurityStore

from hocba.pki.ocsp import OcspStatus, OcspUnavailable
from hocba.xml.timestamps import TsaClient

__all__ = [
    "DOCUMENT_TIMESTAMP_FIELD",
    "PortTimeStamper",
    "cached_ocsp",
    "lta_from_configuration",
    "make_lta",
]

log = logging.getLogger(__name__)

DOCUMENT_TIMESTAMP_FIELD = "DauThoiGian"


class PortTimeStamper(TimeStamper):
    """pyHanko's TimeStamper over the project's :class:`TsaClient` (one pooled client)."""

    def __init__(self, client: TsaClient) -> None:
        super().__init__(include_nonce=True)
        self._client = client

    async def async_request_tsa_response(
        self, req: asn1_tsp.TimeStampReq
    ) -> asn1_tsp.TimeStampResp:
        return asn1_tsp.TimeStampResp.load(self._client.post(req.dump()))


def cached_ocsp(
    source: Callable[[x509.Certificate, x509.Certificate], OcspStatus],
) -> Callable[[x509.Certificate, x509.Certificate], OcspStatus]:
    """``source`` asked once per certificate: a class's books share their two signers, and
    an OCSP answer is good for minutes (its ``nextUpdate``)."""
    answers: dict[bytes, OcspStatus] = {}

    def ask(certificate: x509.Certificate, issuer: x509.Certificate) -> OcspStatus:
        key = certificate.fingerprint(hashes.SHA256())
        if key not in answers:
            answers[key] = source(certificate, issuer)
        return answers[key]

    return ask


def _signer_certificates(pdf: bytes) -> list[x509.Certificate]:
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    found = []
    for signature in reader.embedded_regular_signatures:
        found.append(x509.load_der_x509_certificate(signature.signer_cert.dump()))
    return found


def make_lta(
    pdf: bytes,
    tsa: TsaClient,
    *,
    roots: Sequence[x509.Certificate],
    ocsp_source: Callable[[x509.Certificate, x509.Certificate], OcspStatus] | None = None,
    crls: Sequence[x509.CertificateRevocationList] = (),
) -> bytes:
    """Append the DSS (signer certificates, their CA, OCSP answers when ``ocsp_source``
    can give them, ``crls``) and a document timestamp; returns the new PDF bytes. Raises
    :class:`~hocba.xml.timestamps.TimestampUnavailable` when the TSA is down (the book
    stays PAdES B-B then)."""
    certificates = _signer_certificates(pdf)
    ocsps = []
    for certificate in certificates:
        issuer = next((r for r in roots if r.subject == certificate.issuer), None)
        if issuer is None or ocsp_source is None:
            continue
        try:
            ocsps.append(asn1_ocsp.OCSPResponse.load(ocsp_source(certificate, issuer).response_der))
        except OcspUnavailable:
            continue
    out = io.BytesIO(pdf)
    DocumentSecurityStore.add_dss(
        out,
        None,
        certs=[
            asn1_x509.Certificate.load(c.public_bytes(Encoding.DER))
            for c in [*certificates, *roots]
        ],
        ocsps=ocsps,
        crls=[asn1_crl.CertificateList.load(c.public_bytes(Encoding.DER)) for c in crls],
        force_write=True,
        embed_roots=True,
    )
    writer = IncrementalPdfFileWriter(out, strict=False)
    stamper = PdfTimeStamper(PortTimeStamper(tsa), field_name=DOCUMENT_TIMESTAMP_FIELD)
    result = asyncio.run(stamper.async_timestamp_pdf(writer, "sha256", in_place=True))
    result.seek(0)
    return result.read()


def lta_from_configuration(pdfs: Sequence[bytes]) -> list[bytes]:
    """The books as PAdES B-LTA when a TSA is configured (``HOCBA_TSA_URL``), with OCSP
    answers (``HOCBA_OCSP_URL``) and the trust anchors' CRL from the test PKI when present;
    a TSA outage leaves them at B-B (logged), as for the XML."""
    from hocba.config import load_settings
    from hocba.tasks.issuance import pki_directory, trust_anchors
    from hocba.tasks.long_term import configured_ocsp_source, configured_tsa
    from hocba.xml.timestamps import TimestampUnavailable

    tsa = configured_tsa()
    if tsa is None:
        return list(pdfs)
    home = load_settings().home
    roots = trust_anchors(home)
    crl_path = pki_directory(home) / "root-ca.crl.pem"
    crls = [x509.load_pem_x509_crl(crl_path.read_bytes())] if crl_path.exists() else []
    ocsp = configured_ocsp_source()
    ocsp = cached_ocsp(ocsp) if ocsp is not None else None
    try:
        return [make_lta(p, tsa, roots=roots, ocsp_source=ocsp, crls=crls) for p in pdfs]
    except TimestampUnavailable:
        log.warning("TSA unavailable: %d books stay PAdES B-B", len(pdfs))
        return list(pdfs)
