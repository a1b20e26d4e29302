"""The signing port: one interface that signs a *batch* of digests (ARCHITECTURE "Signing is
a port").

The XML signature (:mod:`hocba.xml.dsig`) is assembled around whatever a backend
returns, so every backend only has to do one thing: turn SHA-256 digests of canonicalised
``ds:SignedInfo`` elements into raw XMLDSig ``SignatureValue`` octets. This is exactly the
"hash signing" contract of remote-signing services (VNPT SmartCA, Viettel MySign...) and of
PKCS#11 tokens (``CKM_RSA_PKCS`` over a DigestInfo / ``CKM_ECDSA`` over a hash), so those
backends fit the same :class:`Signer` protocol. One call to :meth:`Signer.sign_digests`
signs a whole batch — a class of 35 pupils is one call, i.e. one user confirmation.

Signature value formats (W3C XML Signature 1.1, §6.4):

* ``rsa-sha256`` — RSASSA-PKCS1-v1_5 (RFC 8017 §8.2) over SHA-256
  (``http://www.w3.org/2001/04/xmldsig-more#rsa-sha256``, RFC 6931 §2.3.2);
* ``ecdsa-sha256`` — ECDSA over SHA-256, the value being the raw concatenation ``r || s``,
  each integer left-padded to the curve's byte length — *not* the DER ``Ecdsa-Sig-Value``
  used by X.509/CMS (``http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256``, RFC 6931
  §2.3.6, XMLDSig 1.1 §6.4.3).

This module ships the software backend, :class:`SoftwareSigner`, which reads an encrypted
PKCS#12 file (RFC 7292) once per worker process.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Self, runtime_checkable

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import pkcs12

from hocba.errors import HocbaError

__all__ = [
    "ALGORITHM_ECDSA_SHA256",
    "ALGORITHM_RSA_SHA256",
    "ClosingSigner",
    "Signer",
    "SigningError",
    "SoftwareSigner",
    "clear_signer_cache",
    "verify_digest_signature",
]

ALGORITHM_RSA_SHA256 = "rsa-sha256"
ALGORITHM_ECDSA_SHA256 = "ecdsa-sha256"
_SHA256_SIZE = 32


class SigningError(HocbaError):
    """Signing failed (wrong password, unreadable key file, unsupported key...).

    ``message_vi`` is a Vietnamese message that can be shown to the person signing. It
    never contains a password or PIN.
    """

    def __init__(self, message_vi: str) -> None:
        super().__init__(message_vi)
        self.message_vi = message_vi


@runtime_checkable
class Signer(Protocol):
    """A signing backend: software key, PKCS#11 token/HSM, or remote hash-signing service.

    Attributes:
        certificate: the signer's X.509 certificate (RFC 5280), put in ``ds:KeyInfo``.
        chain: further certificates from the backend (intermediates, possibly the root);
            the XML builder copies the non-self-signed ones into ``ds:X509Data``.
        algorithm: ``"rsa-sha256"`` or ``"ecdsa-sha256"``.
    """

    certificate: x509.Certificate
    chain: list[x509.Certificate]
    algorithm: str

    def sign_digests(self, digests: Sequence[bytes]) -> list[bytes]:
        """Sign SHA-256 digests (32 bytes each) of canonicalised ``SignedInfo`` elements.

        Returns one raw XMLDSig signature value per digest, in order: RSASSA-PKCS1-v1_5
        for RSA, ``r || s`` for ECDSA. The whole batch is one operation (one
        confirmation for remote services). Raises :class:`SigningError` on failure.
        """
        ...


class ClosingSigner:
    """A backend that holds a session or a connection: used as a context manager, it is
    closed (:meth:`close`) at the end of the ``with`` block."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _algorithm_for(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return ALGORITHM_RSA_SHA256 if isinstance(key, rsa.RSAPrivateKey) else ALGORITHM_ECDSA_SHA256


@dataclass(eq=False, repr=False)
class SoftwareSigner:
    """A :class:`Signer` backed by a private key held in memory (loaded from PKCS#12).

    Build it with :meth:`from_pkcs12`. The key object is never exposed through ``repr``.
    """

    certificate: x509.Certificate
    chain: list[x509.Certificate]
    _key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = field(repr=False)
    algorithm: str = field(init=False, default="")

    def __post_init__(self) -> None:
        if not isinstance(self._key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise SigningError("Chỉ hỗ trợ khoá RSA hoặc ECDSA.")
        if self.certificate.public_key() != self._key.public_key():
            raise SigningError("Khoá bí mật không khớp với chứng thư số trong tệp.")
        self.algorithm = _algorithm_for(self._key)

    def __repr__(self) -> str:
        return (
            f"SoftwareSigner(subject={self.certificate.subject.rfc4514_string()!r}, "
            f"algorithm={self.algorithm!r})"
        )

    @classmethod
    def from_pkcs12(cls, path: str | Path, password: str) -> SoftwareSigner:
        """Load an encrypted PKCS#12 file (RFC 7292), once per process.

        The decrypted signer is cached per file (resolved path, size and modification
        time), so a worker that signs many batches reads and decrypts the file only once.
        The password is not kept: the cache stores only an HMAC-SHA256 of it under a
        random key generated for this process, so a later call with a *wrong* password
        still fails instead of silently returning the cached key.

        Raises :class:`SigningError` (Vietnamese message) when the file is missing or
        unreadable, the password is wrong, or the file holds no usable key/certificate.
        """
        resolved = Path(path).resolve()
        try:
            stat = resolved.stat()
        except OSError as exc:
            raise SigningError(f"Không mở được tệp khoá {resolved.name}.") from exc
        file_key = (str(resolved), stat.st_size, stat.st_mtime_ns)
        tag = hmac.new(_CACHE_SECRET, password.encode("utf-8"), hashlib.sha256).digest()
        with _CACHE_LOCK:
            cached = _CACHE.get(file_key)
            if cached is not None:
                if not hmac.compare_digest(cached[0], tag):
                    raise SigningError("Mật khẩu tệp khoá không đúng.")
                return cached[1]
        signer = cls._load(resolved, password)
        with _CACHE_LOCK:
            for old in [k for k in _CACHE if k[0] == file_key[0]]:
                del _CACHE[old]  # the file changed on disk: forget the previous version
            _CACHE[file_key] = (tag, signer)
        return signer

    @classmethod
    def _load(cls, path: Path, password: str) -> SoftwareSigner:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SigningError(f"Không đọc được tệp khoá {path.name}.") from exc
        try:
            bundle = pkcs12.load_pkcs12(data, password.encode("utf-8"))
        except ValueError as exc:
            # cryptography reports a wrong password and a corrupt file alike.
            raise SigningError("Mật khẩu tệp khoá không đúng hoặc tệp PKCS#12 bị hỏng.") from exc
        key = bundle.key
        if bundle.cert is None or key is None:
            raise SigningError("Tệp PKCS#12 không chứa đủ khoá bí mật và chứng thư số.")
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise SigningError("Chỉ hỗ trợ khoá RSA hoặc ECDSA.")
        chain = [c.certificate for c in bundle.additional_certs]
        return cls(certificate=bundle.cert.certificate, chain=chain, _key=key)

    def sign_digests(self, digests: Sequence[bytes]) -> list[bytes]:
        """Sign SHA-256 digests with the in-memory key (see :meth:`Signer.sign_digests`).

        Uses ``utils.Prehashed(SHA256())`` so the digest is not hashed a second time.
        """
        for digest in digests:
            if len(digest) != _SHA256_SIZE:
                raise SigningError("Giá trị băm cần ký phải là SHA-256 (32 byte).")
        prehashed = utils.Prehashed(hashes.SHA256())
        key = self._key
        if isinstance(key, rsa.RSAPrivateKey):
            pkcs1 = padding.PKCS1v15()
            return [key.sign(d, pkcs1, prehashed) for d in digests]
        size = (key.curve.key_size + 7) // 8
        algorithm = ec.ECDSA(prehashed)
        values: list[bytes] = []
        for digest in digests:
            r, s = utils.decode_dss_signature(key.sign(digest, algorithm))
            values.append(r.to_bytes(size, "big") + s.to_bytes(size, "big"))
        return values


_CACHE_SECRET = os.urandom(32)
_CACHE_LOCK = threading.Lock()
_CACHE: dict[tuple[str, int, int], tuple[bytes, SoftwareSigner]] = {}


def clear_signer_cache() -> None:
    """Forget every cached :class:`SoftwareSigner` (e.g. after a certificate rotation)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def verify_digest_signature(
    certificate: x509.Certificate, algorithm: str, digest: bytes, value: bytes
) -> bool:
    """Check a raw XMLDSig signature value over a SHA-256 ``digest`` with the certificate.

    ``rsa-sha256``: RSASSA-PKCS1-v1_5 (RFC 8017 §8.2); ``ecdsa-sha256``: ``r || s``, each
    padded to the curve size (XMLDSig 1.1 §6.4.3). Used by every backend to check what a
    device or service returned before it is written into a document.
    """
    from cryptography.exceptions import InvalidSignature

    public_key = certificate.public_key()
    prehashed = utils.Prehashed(hashes.SHA256())
    try:
        if algorithm == ALGORITHM_RSA_SHA256 and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(value, digest, padding.PKCS1v15(), prehashed)
            return True
        if algorithm == ALGORITHM_ECDSA_SHA256 and isinstance(
            public_key, ec.EllipticCurvePublicKey
        ):
            size = (public_key.curve.key_size + 7) // 8
            if len(value) != 2 * size:
                return False
            r, s = int.from_bytes(value[:size], "big"), int.from_bytes(value[size:], "big")
            public_key.verify(utils.encode_dss_signature(r, s), digest, ec.ECDSA(prehashed))
            return True
    except InvalidSignature:
        return False
    return False


def check_returned_values(
    certificate: x509.Certificate,
    algorithm: str,
    digests: Sequence[bytes],
    values: Sequence[bytes],
    source: str,
) -> list[bytes]:
    """The values a device, service or agent returned for ``digests``, each verified with
    the certificate (:func:`verify_digest_signature`); ``source`` names who returned them
    in the Vietnamese error ("dịch vụ", "USB token"...)."""
    if len(values) != len(digests):
        raise SigningError(
            f"{source[:1].upper()}{source[1:]} trả về {len(values)} chữ ký cho "
            f"{len(digests)} giá trị băm."
        )
    for index, (digest, value) in enumerate(zip(digests, values, strict=True)):
        if not verify_digest_signature(certificate, algorithm, bytes(digest), value):
            raise SigningError(
                f"Chữ ký thứ {index + 1} do {source} trả về không khớp chứng thư số."
            )
    return list(values)
