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
PKCS#12 file (RFC 7292) once per worker process. A file protected the modern way (PBES2:
PBKDF2 and AES-CBC, what OpenSSL 3 and the test PKI write) is decrypted here and its key
loaded without OpenSSL's RSA key validation (two thirds of the cost of opening a file, a
teacher's key being opened once per worker); such a signer checks every signature it
makes with the certificate's public key before returning it, and a key that does not
match the certificate is refused. Opened for its registered certificate issued by a trust
anchor (a worker's flows), only the key bag is decrypted: the certificate bags' derivation
is skipped and the registered certificate signs. Any other file goes through
``pkcs12.load_pkcs12``.

Every public-key check of a signature value (:func:`verify_signature_value`: what a
backend returned, and the XML verifier's checks in :mod:`hocba.xml.dsig`) goes through a
memo of the values already found valid in this process, keyed by the public key
(SubjectPublicKeyInfo DER), the algorithm, the digest and the value: the check is a pure
function of those, so issuance's later steps (the slot's own check after the backend's,
the check of the sealed record) do not verify again a value this process has just verified
over the same digest. Only successes are kept (a changed digest or value is another key
and is checked, and fails, every time); at most ``_VERIFIED_MAX`` entries, the least
recently used dropped first; :func:`clear_verified_signatures` empties it (the benchmark
does, so that its verification figure is first-time verification).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Self, runtime_checkable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
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
    "clear_verified_signatures",
    "public_key_id",
    "verify_digest_signature",
    "verify_signature_value",
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
    #: True when the key was loaded without OpenSSL's RSA validation: every value is then
    #: verified with the certificate before it is returned.
    _check_values: bool = field(default=False, repr=False)

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
    def from_pkcs12(
        cls,
        path: str | Path,
        password: str,
        *,
        registered: x509.Certificate | None = None,
        issuers: Sequence[x509.Certificate] = (),
    ) -> SoftwareSigner:
        """Load an encrypted PKCS#12 file (RFC 7292), once per process.

        The decrypted signer is cached per file (resolved path, size and modification
        time), so a worker that signs many batches reads and decrypts the file only once.
        The password is not kept: the cache stores only an HMAC-SHA256 of it under a
        random key generated for this process, so a later call with a *wrong* password
        still fails instead of silently returning the cached key.

        ``registered``: the certificate the registry holds for this key, and ``issuers``
        the trust anchors (self-signed roots) that issued it. With both, a file protected
        the modern way has only its key bag decrypted: the certificate is the registered
        one, its chain those roots (which the XML builder does not embed anyway), and
        the file's encrypted certificate bags, a second PBKDF2 derivation as costly as
        the key's, are not opened. The key must match the registered certificate. A
        certificate issued by an intermediate CA needs the file's chain: without a
        root that issued it, the whole file is read as before.

        Raises :class:`SigningError` (Vietnamese message) when the file is missing or
        unreadable, the password is wrong, or the file holds no usable key/certificate.
        """
        resolved = Path(path).resolve()
        try:
            stat = resolved.stat()
        except OSError as exc:
            raise SigningError(f"Không mở được tệp khoá {resolved.name}.") from exc
        roots = [
            a
            for a in issuers
            if registered is not None and a.subject == a.issuer and _issued(registered, a)
        ]
        own = registered if roots else None
        file_key = (
            str(resolved),
            stat.st_size,
            stat.st_mtime_ns,
            b"" if own is None else own.fingerprint(hashes.SHA256()),
        )
        tag = hmac.new(_CACHE_SECRET, password.encode("utf-8"), hashlib.sha256).digest()
        with _CACHE_LOCK:
            cached = _CACHE.get(file_key)
            if cached is not None:
                if not hmac.compare_digest(cached[0], tag):
                    raise SigningError("Mật khẩu tệp khoá không đúng.")
                return cached[1]
        signer = cls._load(resolved, password, own, roots)
        with _CACHE_LOCK:
            for old in [k for k in _CACHE if k[0] == file_key[0] and k[1:3] != file_key[1:3]]:
                del _CACHE[old]  # the file changed on disk: forget the previous version
            _CACHE[file_key] = (tag, signer)
        return signer

    @classmethod
    def _load(
        cls,
        path: Path,
        password: str,
        registered: x509.Certificate | None = None,
        roots: Sequence[x509.Certificate] = (),
    ) -> SoftwareSigner:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SigningError(f"Không đọc được tệp khoá {path.name}.") from exc
        if registered is not None:
            key_only = _read_pbes2_pkcs12(data, password.encode("utf-8"), certificates=False)
            if key_only is not None:
                if key_only[0].public_key() != registered.public_key():
                    raise SigningError(
                        "Khoá bí mật trong tệp không khớp với chứng thư số đã đăng ký; hãy "
                        "dùng đúng tệp khoá của chứng thư này."
                    )
                return cls(
                    certificate=registered, chain=list(roots), _key=key_only[0], _check_values=True
                )
        fast = _read_pbes2_pkcs12(data, password.encode("utf-8"))
        if fast is not None:
            fast_key, certs = fast
            public = fast_key.public_key()
            own = [c for c in certs if c.public_key() == public]
            if not own:
                raise SigningError("Khoá bí mật không khớp với chứng thư số trong tệp.")
            others = [c for c in certs if c is not own[0]]
            return cls(certificate=own[0], chain=others, _key=fast_key, _check_values=True)
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
        values: list[bytes] = []
        if isinstance(key, rsa.RSAPrivateKey):
            pkcs1 = padding.PKCS1v15()
            values = [key.sign(d, pkcs1, prehashed) for d in digests]
        else:
            size = (key.curve.key_size + 7) // 8
            algorithm = ec.ECDSA(prehashed)
            for digest in digests:
                r, s = utils.decode_dss_signature(key.sign(digest, algorithm))
                values.append(r.to_bytes(size, "big") + s.to_bytes(size, "big"))
        if self._check_values:  # key not validated on load: no value leaves unchecked
            return check_returned_values(
                self.certificate, self.algorithm, digests, values, "tệp khoá"
            )
        return values


def _issued(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s key signed ``certificate`` (names and signature)."""
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _read_pbes2_pkcs12(
    data: bytes, password: bytes, *, certificates: bool = True
) -> tuple[rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, list[x509.Certificate]] | None:
    """The key and certificates of a PKCS#12 file whose bags are all protected with PBES2
    (PBKDF2 + AES-CBC, RFC 8018 §6.2; RFC 7292 §4 for the bags), the key loaded WITHOUT
    OpenSSL's RSA private-key validation (``unsafe_skip_rsa_key_validation``).
    ``certificates=False``: the encrypted content (where such files keep the certificate
    bags) is not decrypted and the list is empty; ``None`` if the key was in it.

    ``None`` for anything else (another cipher, an unexpected structure, a wrong
    password): the caller then takes the validated ``pkcs12.load_pkcs12`` path, which
    gives the authoritative error. The file's MAC is not checked here: what it protects
    is checked anyway (the key must match the certificate, the signer verifies each of
    its signatures with the certificate, the chain is checked against the trust anchors).
    Safe only because of those checks: see :meth:`SoftwareSigner.sign_digests`.
    """
    from asn1crypto import keys as asn1_keys
    from asn1crypto import pkcs12 as asn1_pkcs12
    from cryptography.hazmat.primitives import padding as sym_padding
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    prfs: dict[str, Callable[[], hashes.HashAlgorithm]] = {
        "sha256": hashes.SHA256,
        "sha384": hashes.SHA384,
        "sha512": hashes.SHA512,
    }

    def decrypt(alg: asn1_keys.EncryptionAlgorithm, encrypted: bytes) -> bytes:
        if (
            alg["algorithm"].native != "pbes2"
            or alg.kdf != "pbkdf2"
            or alg.kdf_hmac not in prfs
            or alg.encryption_cipher != "aes"
            or alg.encryption_mode != "cbc"
        ):
            raise ValueError("not PBES2 with PBKDF2 and AES-CBC")
        secret = PBKDF2HMAC(
            prfs[alg.kdf_hmac](), alg.key_length, alg.kdf_salt, alg.kdf_iterations
        ).derive(password)
        decryptor = Cipher(algorithms.AES(secret), modes.CBC(alg.encryption_iv)).decryptor()
        unpadder = sym_padding.PKCS7(128).unpadder()
        padded = decryptor.update(encrypted) + decryptor.finalize()
        return unpadder.update(padded) + unpadder.finalize()

    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None
    certs: list[x509.Certificate] = []
    try:
        for info in asn1_pkcs12.Pfx.load(data).authenticated_safe:
            kind = info["content_type"].native
            if kind == "data":
                plain = info["content"].native
            elif kind == "encrypted_data":
                if not certificates:
                    continue  # the certificate bags: the caller has the certificate
                eci = info["content"]["encrypted_content_info"]
                plain = decrypt(
                    eci["content_encryption_algorithm"], eci["encrypted_content"].native
                )
            else:
                return None
            for bag in asn1_pkcs12.SafeContents.load(plain):
                bag_id = bag["bag_id"].native
                if bag_id == "pkcs8_shrouded_key_bag" and key is None:
                    sealed = bag["bag_value"]
                    der = decrypt(sealed["encryption_algorithm"], sealed["encrypted_data"].native)
                    loaded = serialization.load_der_private_key(
                        der, None, unsafe_skip_rsa_key_validation=True
                    )
                    if not isinstance(loaded, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
                        return None
                    key = loaded
                elif bag_id == "cert_bag" and bag["bag_value"]["cert_id"].native == "x509":
                    if not certificates:
                        continue
                    certs.append(
                        x509.load_der_x509_certificate(bag["bag_value"]["cert_value"].parsed.dump())
                    )
                else:
                    return None
    except Exception:  # anything unexpected, a wrong password included: the slow path
        return None
    if key is None or (certificates and not certs):
        return None
    return key, certs


_CACHE_SECRET = os.urandom(32)
_CACHE_LOCK = threading.Lock()
#: (file, size, modification time, SHA-256 of the registered certificate or b"")
_CACHE: dict[tuple[str, int, int, bytes], tuple[bytes, SoftwareSigner]] = {}


def clear_signer_cache() -> None:
    """Forget every cached :class:`SoftwareSigner` (e.g. after a certificate rotation)."""
    with _CACHE_LOCK:
        _CACHE.clear()


_PKCS1 = padding.PKCS1v15()
_VERIFIED_MAX = 4096
_VERIFIED_LOCK = threading.Lock()
_VERIFIED: OrderedDict[tuple[bytes, str, str, bytes, bytes], None] = OrderedDict()


def clear_verified_signatures() -> None:
    """Forget every signature value :func:`verify_signature_value` found valid."""
    with _VERIFIED_LOCK:
        _VERIFIED.clear()


def public_key_id(public_key: object) -> bytes | None:
    """The key's SubjectPublicKeyInfo (DER): what the memo of verified values is keyed by
    (compute it once per key and pass it to :func:`verify_signature_value`); ``None`` for
    a key that is neither RSA nor EC, which verifies nothing."""
    if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return None
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def verify_signature_value(
    public_key: object,
    kind: str,
    hash_algorithm: hashes.HashAlgorithm,
    digest: bytes,
    value: bytes,
    key_id: bytes | None = None,
    *,
    remember: bool = True,
) -> bool:
    """Does ``value`` sign ``digest`` (of ``hash_algorithm``) with ``public_key``?

    ``kind`` ``"rsa"``: RSASSA-PKCS1-v1_5 (RFC 8017 §8.2); ``"ecdsa"``: ``r || s``, each
    padded to the curve size (XMLDSig 1.1 §6.4.3); a key of the other kind is False.
    ``key_id`` is :func:`public_key_id` of the key (computed here when not given). A value
    found valid is remembered (see the module docstring; not with ``remember=False``, what
    a verifier of documents passes: it only reads the memo, so values it checks once each
    do not push out those of an issuance in progress) and answered from memory the next
    time; an invalid one is checked again every time.
    """
    if key_id is None:
        key_id = public_key_id(public_key)
        if key_id is None:
            return False
    digest, value = bytes(digest), bytes(value)
    key = (key_id, kind, hash_algorithm.name, digest, value)
    if key in _VERIFIED:
        with _VERIFIED_LOCK:
            if key in _VERIFIED:
                _VERIFIED.move_to_end(key)
                return True
    prehashed = utils.Prehashed(hash_algorithm)
    try:
        if kind == "rsa" and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(value, digest, _PKCS1, prehashed)
        elif kind == "ecdsa" and isinstance(public_key, ec.EllipticCurvePublicKey):
            size = (public_key.curve.key_size + 7) // 8
            if len(value) != 2 * size:
                return False
            r, s = int.from_bytes(value[:size], "big"), int.from_bytes(value[size:], "big")
            public_key.verify(utils.encode_dss_signature(r, s), digest, ec.ECDSA(prehashed))
        else:
            return False
    except InvalidSignature:
        return False
    if not remember:
        return True
    with _VERIFIED_LOCK:
        _VERIFIED[key] = None
        while len(_VERIFIED) > _VERIFIED_MAX:
            _VERIFIED.popitem(last=False)
    return True


_KINDS = {ALGORITHM_RSA_SHA256: "rsa", ALGORITHM_ECDSA_SHA256: "ecdsa"}
_SHA256 = hashes.SHA256()


def verify_digest_signature(
    certificate: x509.Certificate,
    algorithm: str,
    digest: bytes,
    value: bytes,
    key_id: bytes | None = None,
) -> bool:
    """Check a raw XMLDSig signature value over a SHA-256 ``digest`` with the certificate.

    ``rsa-sha256``: RSASSA-PKCS1-v1_5 (RFC 8017 §8.2); ``ecdsa-sha256``: ``r || s``, each
    padded to the curve size (XMLDSig 1.1 §6.4.3). Used by every backend to check what a
    device or service returned before it is written into a document
    (:func:`verify_signature_value`; ``key_id``: the certificate key's
    :func:`public_key_id`, when the caller has it).
    """
    kind = _KINDS.get(algorithm)
    if kind is None:
        return False
    return verify_signature_value(certificate.public_key(), kind, _SHA256, digest, value, key_id)


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
    key_id = public_key_id(certificate.public_key())
    for index, (digest, value) in enumerate(zip(digests, values, strict=True)):
        if not verify_digest_signature(certificate, algorithm, bytes(digest), value, key_id):
            raise SigningError(
                f"Chữ ký thứ {index + 1} do {source} trả về không khớp chứng thư số."
            )
    return list(values)
