"""The project's own **test** trust services over HTTP: RFC 3161 time-stamping, OCSP, CRL.

Long-term validity (issue 12) needs a time-stamping authority (TSA) and an OCSP responder
beside the test PKI of :mod:`hocba.dev.testpki`. The protocol work is done by certomancer's
service classes (``certomancer.services.TimeStamper`` and ``SimpleOCSPResponder``, the
services pyHanko's own test-suite runs against); this module only wires them to the test
PKI's keys and revocation state and puts them behind three HTTP endpoints:

================  ===========================================================================
``POST /tsa``     RFC 3161 §3.4 ("Time-Stamp Protocol via HTTP"): body
                  ``application/timestamp-query``, answer ``application/timestamp-reply``
``POST /ocsp``    RFC 6960 Appendix A.1: body ``application/ocsp-request``, answer
                  ``application/ocsp-response``, signed by the delegated responder
                  certificate (``id-kp-OCSPSigning``), status read live from the PKI
``GET /crl``      the root's current CRL, DER (``application/pkix-crl``)
================  ===========================================================================

Run it with ``hocba trust-services serve`` (``hocba up --demo`` starts it too), or in a
thread with :func:`serve_trust_services` (tests). Real installations point
``HOCBA_TSA_URL`` / ``HOCBA_OCSP_URL`` / ``HOCBA_CRL_URL`` at their CA's services instead
(:mod:`hocba.config`). Never trust this TSA for real records: its key is a test key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from asn1crypto import keys as asn1_keys
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import tsp as asn1_tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from hocba.dev.testpki import TestPki

__all__ = ["TrustServices", "serve_trust_services", "trust_services_app"]

TSA_PATH = "/tsa"
OCSP_PATH = "/ocsp"
CRL_PATH = "/crl"


def _asn1_cert(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def _asn1_key(key: Any) -> asn1_keys.PrivateKeyInfo:
    return asn1_keys.PrivateKeyInfo.load(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@lru_cache(maxsize=16)
def _loaded_key(der: bytes) -> Any:
    return serialization.load_der_private_key(der, password=None)


def _install_key_cache() -> None:
    """certomancer's crypto backend re-parses the private key for every signature (with
    RSA key validation: 50-300 ms under load, which made every token cost that much).
    Its backend is pluggable (``certomancer.crypto_utils.CRYPTO_BACKEND``): this subclass
    of its pyca backend parses each key once; the signatures are the same."""
    from certomancer import crypto_utils

    if getattr(crypto_utils.CRYPTO_BACKEND, "hocba_key_cache", False):
        return

    class _CachingBackend(crypto_utils.PycaCryptographyBackend):  # type: ignore[misc]
        hocba_key_cache = True

        def generic_sign(self, private_key: Any, tbs_bytes: bytes, sd_algo: Any) -> bytes:
            key = _loaded_key(private_key.dump())
            hash_algorithm = getattr(hashes, str(sd_algo.hash_algo).upper())()
            if sd_algo.signature_algo == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPrivateKey):
                return key.sign(tbs_bytes, padding.PKCS1v15(), hash_algorithm)
            if sd_algo.signature_algo == "ecdsa" and isinstance(key, ec.EllipticCurvePrivateKey):
                return key.sign(tbs_bytes, ec.ECDSA(hash_algorithm))
            return super().generic_sign(private_key, tbs_bytes, sd_algo)  # type: ignore[no-any-return]

    crypto_utils.CRYPTO_BACKEND = _CachingBackend()


class TrustServices:
    """TSA + OCSP + CRL of one test PKI directory (state re-read on every request, so a
    :meth:`TestPki.revoke` in another process shows at once)."""

    def __init__(self, pki_directory: Path, *, tsa_label: str = "tsa") -> None:
        from certomancer.services import RevocationInfoInterface, TimeStamper

        _install_key_cache()
        self.directory = Path(pki_directory)
        pki = TestPki.open(self.directory)
        tsa_cert, tsa_key = pki.service(tsa_label)
        ocsp_cert, ocsp_key = pki.service("ocsp")
        self._root = _asn1_cert(pki.root_certificate)
        self._timestamper = TimeStamper(
            tsa_cert=_asn1_cert(tsa_cert), tsa_key=_asn1_key(tsa_key), certs_to_embed=[]
        )
        self._ocsp_cert = _asn1_cert(ocsp_cert)
        self._ocsp_key = _asn1_key(ocsp_key)
        services = self

        class _Revocations(RevocationInfoInterface):
            def get_issuer_cert(self) -> asn1_x509.Certificate:
                return services._root

            def check_revocation_status(
                self, cid: asn1_ocsp.CertId, at_time: dt.datetime
            ) -> tuple[asn1_ocsp.CertStatus, list[Any]]:
                revoked = TestPki.revoked_in(services.directory)
                when = revoked.get(int(cid["serial_number"].native))
                if when is None or when > at_time:
                    return asn1_ocsp.CertStatus(name="good", value=None), []
                info = asn1_ocsp.RevokedInfo({"revocation_time": when.replace(microsecond=0)})
                return asn1_ocsp.CertStatus(name="revoked", value=info), []

        self._revocations = _Revocations()

    def timestamp(self, body: bytes) -> bytes:
        """One RFC 3161 TimeStampResp (DER) for a TimeStampReq (DER)."""
        request = asn1_tsp.TimeStampReq.load(body)
        _ = request.native  # parse fully: a damaged request fails here, not half-way
        return bytes(self._timestamper.request_tsa_response(request).dump())

    def ocsp(self, body: bytes) -> bytes:
        """One RFC 6960 OCSPResponse (DER) for an OCSPRequest (DER)."""
        from certomancer.services import SimpleOCSPResponder, choose_signed_digest

        request = asn1_ocsp.OCSPRequest.load(body)
        _ = request.native
        responder = SimpleOCSPResponder(
            responder_cert=self._ocsp_cert,
            responder_key=self._ocsp_key,
            signature_algo=choose_signed_digest("sha256", self._ocsp_cert.public_key),
            at_time=dt.datetime.now(dt.UTC).replace(microsecond=0),
            revinfo_interface=self._revocations,
        )
        return bytes(responder.build_ocsp_response(request).dump())

    def crl(self) -> bytes:
        return (self.directory / "root-ca.crl.der").read_bytes()


def trust_services_app(pki_directory: Path, *, tsa_label: str = "tsa") -> Any:
    """The ASGI app (Starlette) serving ``/tsa``, ``/ocsp`` and ``/crl``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    services = TrustServices(pki_directory, tsa_label=tsa_label)

    def answering(
        answer: Callable[[bytes], bytes], invalid: str, media_type: str
    ) -> Callable[[Request], Awaitable[Response]]:
        """An endpoint answering the DER request in the body (400 when it is not one)."""

        async def endpoint(request: Request) -> Response:
            try:
                der = answer(await request.body())
            except ValueError:
                return Response(invalid, status_code=400)
            return Response(der, media_type=media_type)

        return endpoint

    tsa = answering(
        services.timestamp, "Yêu cầu dấu thời gian không hợp lệ", "application/timestamp-reply"
    )
    ocsp = answering(services.ocsp, "Yêu cầu OCSP không hợp lệ", "application/ocsp-response")

    async def crl(request: Request) -> Response:
        return Response(services.crl(), media_type="application/pkix-crl")

    async def health(request: Request) -> Response:
        return Response("ok", media_type="text/plain")

    return Starlette(
        routes=[
            Route(TSA_PATH, tsa, methods=["POST"]),
            Route(OCSP_PATH, ocsp, methods=["POST"]),
            Route(CRL_PATH, crl, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ]
    )


@contextmanager
def serve_trust_services(pki_directory: Path, *, tsa_label: str = "tsa") -> Iterator[str]:
    """Serve the trust services on a free port of 127.0.0.1 in a thread; yields the base
    URL (``…/tsa``, ``…/ocsp``, ``…/crl``)."""
    from hocba.asgi import serve_in_thread

    with serve_in_thread(trust_services_app(pki_directory, tsa_label=tsa_label)) as url:
        yield url
