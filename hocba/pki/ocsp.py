"""OCSP (RFC 6960) client: the revocation status of one certificate, signed by its CA.

Verification prefers OCSP and falls back to the CRL (hocba/xml/verify.py). The request and the
response are built and parsed by ``cryptography.x509.ocsp``; this module checks what a
relying party must (RFC 6960 §3.2): the response is signed by the issuing CA itself or by a
responder certificate the CA issued with ``id-kp-OCSPSigning``; it answers for this
certificate (CertID), and it is fresh (``thisUpdate`` not in the future, ``nextUpdate`` not
past). Anything unreachable, unsigned or stale is :class:`OcspUnavailable`: the caller
reports "cannot check now" (INDETERMINATE), never INVALID.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp

from hocba.errors import HocbaError
from hocba.xml.timestamps import no_delay_transport, post_der

__all__ = ["OcspClient", "OcspStatus", "OcspUnavailable"]

_SKEW = dt.timedelta(minutes=5)


class OcspUnavailable(HocbaError):
    """The OCSP status cannot be known now (responder down, bad or stale answer)."""


@dataclass(frozen=True)
class OcspStatus:
    """A checked OCSP answer for one certificate."""

    revoked_at: dt.datetime | None  # None: good
    this_update: dt.datetime
    response_der: bytes  # kept as long-term evidence (archive timestamps, PDF DSS)

    @property
    def good(self) -> bool:
        return self.revoked_at is None


def _signed_by(response: ocsp.OCSPResponse, signer: x509.Certificate) -> bool:
    key = signer.public_key()
    algorithm = response.signature_hash_algorithm
    if algorithm is None:
        return False
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(
                response.signature, response.tbs_response_bytes, padding.PKCS1v15(), algorithm
            )
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _authorised(responder: x509.Certificate, issuer: x509.Certificate) -> bool:
    if responder == issuer:
        return True
    try:
        responder.verify_directly_issued_by(issuer)
        usage = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    return x509.ExtendedKeyUsageOID.OCSP_SIGNING in usage


def check_response(
    der: bytes, certificate: x509.Certificate, issuer: x509.Certificate, now: dt.datetime
) -> OcspStatus:
    """Check one DER OCSPResponse for ``certificate`` (see the module docstring)."""
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        raise OcspUnavailable(f"trả lời OCSP hỏng ({exc})") from None
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise OcspUnavailable(f"máy chủ OCSP trả lời {response.response_status.name}")
    responders = [c for c in response.certificates if _signed_by(response, c)]
    if _signed_by(response, issuer):
        responders.append(issuer)
    if not any(_authorised(r, issuer) for r in responders):
        raise OcspUnavailable("trả lời OCSP không do CA cấp chứng thư (hay người được ủy quyền) ký")
    if response.serial_number != certificate.serial_number:
        raise OcspUnavailable("trả lời OCSP nói về chứng thư khác")
    expected = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1()).build()
    if (
        response.issuer_key_hash != expected.issuer_key_hash
        or response.issuer_name_hash != expected.issuer_name_hash
    ):
        raise OcspUnavailable("trả lời OCSP nói về CA khác")
    this_update = response.this_update_utc
    next_update = response.next_update_utc
    if this_update > now + _SKEW or (next_update is not None and next_update < now - _SKEW):
        raise OcspUnavailable("trả lời OCSP đã quá hạn")
    if response.certificate_status == ocsp.OCSPCertStatus.UNKNOWN:
        raise OcspUnavailable("máy chủ OCSP không biết chứng thư này")
    revoked_at = (
        response.revocation_time_utc
        if response.certificate_status == ocsp.OCSPCertStatus.REVOKED
        else None
    )
    return OcspStatus(revoked_at, this_update, der)


class OcspClient:
    """Ask an OCSP responder by HTTP POST (RFC 6960 Appendix A.1), one pooled connection."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self._http = httpx.Client(timeout=timeout, transport=no_delay_transport())

    def close(self) -> None:
        self._http.close()

    def status(
        self,
        certificate: x509.Certificate,
        issuer: x509.Certificate,
        now: dt.datetime | None = None,
    ) -> OcspStatus:
        """The checked status of ``certificate``; raises :class:`OcspUnavailable`."""
        request = (
            ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1()).build()
        )
        der = request.public_bytes(serialization.Encoding.DER)
        try:
            answer = post_der(self._http, self.url, der, "application/ocsp-request")
        except httpx.HTTPError as exc:
            raise OcspUnavailable(
                f"không kết nối được máy chủ OCSP ({type(exc).__name__})"
            ) from None
        return check_response(answer, certificate, issuer, now or dt.datetime.now(dt.UTC))
