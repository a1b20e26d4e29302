"""The CMS side of a PDF signature (RFC 5652, ETSI EN 319 142-1): :class:`PortSigner`, the
pyHanko signer that signs through the project's :class:`~hocba.pki.signer.Signer` port, and
:class:`_CmsTemplate`, a signer's container built once and filled in per signature.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import hashlib
import logging
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from asn1crypto.algos import SignedDigestAlgorithm
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.sign import signers
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko_certvalidator.registry import SimpleCertificateStore

from hocba.pdf.book import PdfSignError
from hocba.pki.signer import ALGORITHM_ECDSA_SHA256, Signer, SigningError

log = logging.getLogger(__name__)


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
        body: bytes | bytearray = value
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
