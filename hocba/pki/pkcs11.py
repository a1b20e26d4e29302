"""PKCS#11 backend of the signing port: USB tokens and HSMs (HOCBA_SPEC §4, ARCHITECTURE
rule 5).

Standards: PKCS#11 v2.40 / v3.0 (OASIS "Cryptographic Token Interface"), RFC 8017 §9.2
(EMSA-PKCS1-v1_5 ``DigestInfo``), XMLDSig 1.1 §6.4 (signature value formats).

How a batch is signed:

* **RSA** — ``CKM_RSA_PKCS`` over the DER ``DigestInfo`` of the SHA-256 digest
  (``3031300d060960864801650304020105000420 || digest``). The token only pads and
  exponentiates, so the result is exactly an RSASSA-PKCS1-v1_5 / SHA-256 signature, the
  ``rsa-sha256`` XMLDSig value.
* **EC** — ``CKM_ECDSA`` over the 32-byte digest. PKCS#11 returns ``r || s`` with each
  integer padded to the curve size, which is already the XMLDSig ``ecdsa-sha256`` value.

**One login per signer, not per batch.** :meth:`Pkcs11Signer.open` logs in (``C_Login``)
once and keeps a session for the signer's lifetime; every :meth:`~Pkcs11Signer.sign_digests`
call then signs its whole batch in that session without asking for the PIN again. The PIN
is never stored: after the login the signer holds only the session. Call
:meth:`~Pkcs11Signer.close` (or use ``with``) to log out.

PKCS#11 login state is shared by *all* sessions of one process on one token (PKCS#11
§5.6): a second ``C_Login`` on a logged-in token returns ``CKR_USER_ALREADY_LOGGED_IN``
without checking the PIN, and any ``C_Logout`` logs every session out. This module
therefore keeps one login per ``(module, token)`` for the whole process, reference-counted
by the open signers, plus an HMAC of the PIN under a random per-process key: a second
signer on the same token is accepted only with the same PIN (a wrong one is refused
without touching the token, so it does not spend a retry), and the token is logged out
when the last signer closes. A login made by *other* code in the process is refused,
because its PIN cannot be checked.

Keys marked ``CKA_ALWAYS_AUTHENTICATE`` (a PIN for every single signature) cannot sign a
batch with one confirmation and are refused with an explanation.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11

from hocba.pki.signer import (
    ALGORITHM_ECDSA_SHA256,
    ALGORITHM_RSA_SHA256,
    ClosingSigner,
    SigningError,
    verify_digest_signature,
)

__all__ = ["SHA256_DIGEST_INFO_PREFIX", "Pkcs11Signer"]

_log = logging.getLogger(__name__)

SHA256_DIGEST_INFO_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")
"""DER ``DigestInfo`` header for SHA-256 (RFC 8017 §9.2, note 1); the digest follows."""

_SHA256_SIZE = 32
_MAX_CHAIN_DEPTH = 4

_WRONG_PIN = "Mã PIN không đúng. Hãy kiểm tra lại mã PIN của thiết bị ký (USB token/HSM)."
_PIN_LOCKED = "Mã PIN của thiết bị ký đã bị khoá. Hãy liên hệ đơn vị cung cấp chứng thư số."
_PIN_EXPIRED = "Mã PIN của thiết bị ký đã hết hạn. Hãy đổi mã PIN rồi ký lại."
_DEVICE_LOST = (
    "Mất kết nối với thiết bị ký (token đã bị rút hoặc phiên làm việc đã đóng). "
    "Hãy cắm lại thiết bị và mở lại phiên ký."
)


class _Pin:
    """The PIN while it is needed, hidden from ``repr`` (tracebacks that show locals)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def tag(self) -> bytes:
        """HMAC-SHA256 of the PIN under this process's random key (never the PIN itself)."""
        return hmac.new(_LOGIN_SECRET, self._value.encode("utf-8"), hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "<mã PIN đã ẩn>"

    __str__ = __repr__


@dataclass
class _Login:
    """One ``C_Login`` to a token, shared by every signer of this process on that token."""

    session: Any  # pkcs11.Session that performed C_Login; closing it logs out
    pin_tag: bytes
    users: int = 0


_LOGIN_SECRET = os.urandom(32)
_LOGINS_LOCK = threading.Lock()
_LOGINS: dict[tuple[str, bytes], _Login] = {}


def _acquire_login(key: tuple[str, bytes], token: Any, pin: _Pin) -> tuple[bool, str | None]:
    """Make sure the process is logged in to ``token`` with ``pin``; count one more user.

    Returns ``(logged_in_now, error_message)``. Errors are returned, not raised, so that no
    exception (and no traceback frame holding the PIN) outlives this call.
    """
    with _LOGINS_LOCK:
        login = _LOGINS.get(key)
        if login is not None:
            if not hmac.compare_digest(login.pin_tag, pin.tag()):
                return False, _WRONG_PIN
            login.users += 1
            return False, None
        try:
            session = token.open(user_pin=pin.reveal())
        except p11.PinIncorrect:
            return False, _WRONG_PIN
        except (p11.PinInvalid, p11.PinLenRange):
            return False, _WRONG_PIN
        except p11.PinLocked:
            return False, _PIN_LOCKED
        except p11.PinExpired:
            return False, _PIN_EXPIRED
        except p11.UserAlreadyLoggedIn:
            return False, (
                "Thiết bị ký đang được một chương trình khác trong cùng tiến trình đăng nhập; "
                "không kiểm tra được mã PIN. Hãy đóng phiên đó rồi thử lại."
            )
        except (p11.DeviceRemoved, p11.TokenNotPresent, p11.TokenNotRecognised):
            return False, _DEVICE_LOST
        except p11.PKCS11Error as exc:
            return False, f"Không đăng nhập được thiết bị ký ({type(exc).__name__})."
        _LOGINS[key] = _Login(session=session, pin_tag=pin.tag(), users=1)
        return True, None


def _release_login(key: tuple[str, bytes]) -> None:
    """One user fewer; the last one logs the token out (``C_Logout`` + ``C_CloseSession``)."""
    with _LOGINS_LOCK:
        login = _LOGINS.get(key)
        if login is None:
            return
        login.users -= 1
        if login.users > 0:
            return
        del _LOGINS[key]
        try:
            login.session.close()
        except p11.PKCS11Error:
            _log.warning("Không đăng xuất được thiết bị ký (thiết bị có thể đã bị rút).")


def _attribute(obj: Any, attribute: Attribute, default: Any = None) -> Any:
    try:
        return obj[attribute]
    except (p11.AttributeTypeInvalid, p11.AttributeSensitive, KeyError):
        return default


def _token_certificates(session: Any) -> list[x509.Certificate]:
    certificates = []
    for obj in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}):
        value = _attribute(obj, Attribute.VALUE)
        if value:
            try:
                certificates.append(x509.load_der_x509_certificate(bytes(value)))
            except ValueError:
                continue
    return certificates


def _find_certificate(session: Any, key_id: bytes | None, key_label: str) -> x509.Certificate:
    """The certificate object with the key's ``CKA_ID`` (PKCS#11 convention), else its label."""
    searches: list[dict[Attribute, Any]] = []
    if key_id:
        searches.append({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: key_id})
    searches.append({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.LABEL: key_label})
    for search in searches:
        for obj in session.get_objects(search):
            value = _attribute(obj, Attribute.VALUE)
            if value:
                try:
                    return x509.load_der_x509_certificate(bytes(value))
                except ValueError as exc:
                    raise SigningError(
                        f"Chứng thư số của khoá {key_label!r} trên thiết bị bị hỏng."
                    ) from exc
    raise SigningError(
        f"Không tìm thấy chứng thư số của khoá {key_label!r} trên thiết bị ký; "
        "hãy truyền chứng thư số (certificate=...)."
    )


def _issuers(
    certificate: x509.Certificate, candidates: Iterable[x509.Certificate]
) -> list[x509.Certificate]:
    """Issuer certificates of ``certificate`` found among ``candidates``, nearest first."""
    pool = [c for c in candidates if c != certificate]
    chain: list[x509.Certificate] = []
    current = certificate
    for _ in range(_MAX_CHAIN_DEPTH):
        if current.issuer == current.subject:
            break
        issuer = next((c for c in pool if c.subject == current.issuer and c not in chain), None)
        if issuer is None:
            break
        chain.append(issuer)
        current = issuer
    return chain


def _check_key_matches(
    private_key: Any, session: Any, certificate: x509.Certificate, key_label: str
) -> None:
    """Compare the token key with the certificate's public key where the token says enough."""
    public = certificate.public_key()
    mismatch = SigningError(
        f"Khoá {key_label!r} trên thiết bị ký không khớp với chứng thư số được chọn."
    )
    if private_key.key_type == KeyType.RSA:
        if not isinstance(public, rsa.RSAPublicKey):
            raise mismatch
        modulus = _attribute(private_key, Attribute.MODULUS)
        if modulus is not None and int.from_bytes(modulus, "big") != public.public_numbers().n:
            raise mismatch
        return
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise mismatch
    key_id = _attribute(private_key, Attribute.ID)
    search: dict[Attribute, Any] = {Attribute.CLASS: ObjectClass.PUBLIC_KEY}
    search.update({Attribute.ID: key_id} if key_id else {Attribute.LABEL: key_label})
    for obj in session.get_objects(search):
        point = _attribute(obj, Attribute.EC_POINT)
        if point is None:
            continue
        expected = public.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        raw = bytes(point)
        # CKA_EC_POINT is a DER OCTET STRING around the X9.62 point (some tokens omit it)
        wrapped = raw[:1] == b"\x04" and raw.endswith(expected) and len(raw) - len(expected) <= 3
        if raw != expected and not wrapped:
            raise mismatch
        return


class Pkcs11Signer(ClosingSigner):
    """A :class:`~hocba.pki.signer.Signer` whose private key stays on a PKCS#11 token.

    Open with :meth:`open`, use as a context manager or call :meth:`close`::

        with Pkcs11Signer.open("/usr/lib/softhsm/libsofthsm2.so", "T", pin, "gvcn") as s:
            documents = sign_slots(documents, "GVCN", s, now)

    Attributes:
        certificate: the signer's certificate (given, or read from the token).
        chain: issuer certificates (given, or those found on the token).
        algorithm: ``"rsa-sha256"`` or ``"ecdsa-sha256"``, from the key type.
        login_count: ``C_Login`` calls made by this signer: 1 when it logged the token in,
            0 when it joined this process's existing login to the token. Never grows with
            the number of batches.
    """

    certificate: x509.Certificate
    chain: list[x509.Certificate]
    algorithm: str

    def __init__(
        self,
        *,
        login_key: tuple[str, bytes],
        session: Any,
        private_key: Any,
        certificate: x509.Certificate,
        chain: list[x509.Certificate],
        algorithm: str,
        token_label: str,
        key_label: str,
        login_count: int,
    ) -> None:
        """Use :meth:`open`; this constructor only wires an already opened session."""
        self._login_key = login_key
        self._session = session
        self._private_key = private_key
        self.certificate = certificate
        self.chain = chain
        self.algorithm = algorithm
        self.token_label = token_label
        self.key_label = key_label
        self.login_count = login_count
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"Pkcs11Signer(token={self.token_label!r}, key={self.key_label!r}, "
            f"subject={self.certificate.subject.rfc4514_string()!r}, "
            f"algorithm={self.algorithm!r}, closed={self._closed})"
        )

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        module_path: str,
        token_label: str,
        pin: str,
        key_label: str,
        certificate: x509.Certificate | None = None,
        chain: Sequence[x509.Certificate] = (),
    ) -> Pkcs11Signer:
        """Load the PKCS#11 module, log in to the token once and find the signing key.

        ``module_path`` is the vendor's PKCS#11 library (``.so``/``.dll``);
        ``token_label`` selects the token (``CKA_LABEL`` of the token info); ``key_label``
        the private key (``CKA_LABEL``). Without ``certificate`` the certificate object
        with the key's ``CKA_ID`` (else the same label) is read from the token; without
        ``chain`` its issuers found on the token are used.

        Raises :class:`~hocba.pki.signer.SigningError` with a Vietnamese message: wrong
        or locked PIN ("Mã PIN không đúng…"), module/token/key not found, unsupported key,
        key and certificate that do not match. The PIN appears in no message, ``repr`` or
        log, and is not kept after the login.
        """
        secret = _Pin(pin)
        del pin  # from here on only the hidden wrapper is a local of this frame
        if not secret.reveal():
            raise SigningError("Chưa nhập mã PIN của thiết bị ký.")
        module = str(Path(module_path).resolve())
        try:
            library = pkcs11.lib(module)
        except Exception as exc:  # the C loader raises several types; none holds the PIN
            raise SigningError(
                f"Không nạp được thư viện PKCS#11 {Path(module_path).name!r}: "
                "hãy kiểm tra đã cài trình điều khiển của thiết bị ký."
            ) from exc
        try:
            token = library.get_token(token_label=token_label)
        except p11.NoSuchToken:
            raise SigningError(
                f"Không tìm thấy thiết bị ký có nhãn {token_label!r}. Hãy cắm USB token."
            ) from None
        except p11.MultipleTokensReturned:
            raise SigningError(
                f"Có nhiều thiết bị ký cùng nhãn {token_label!r}; hãy chỉ cắm một thiết bị."
            ) from None
        except p11.PKCS11Error as exc:
            raise SigningError(f"Không đọc được thiết bị ký ({type(exc).__name__}).") from None

        login_key = (module, bytes(token.serial))
        logged_in_now, error = _acquire_login(login_key, token, secret)
        del secret
        if error is not None:
            _log.warning("Đăng nhập thiết bị ký %r không thành công.", token_label)
            raise SigningError(error)
        if logged_in_now:
            _log.info("Đã đăng nhập thiết bị ký %r.", token_label)
        try:
            session = token.open()  # shares the process's login (PKCS#11 §5.6)
        except p11.PKCS11Error:
            _release_login(login_key)
            raise SigningError(_DEVICE_LOST) from None
        try:
            return cls._with_session(
                login_key,
                session,
                token_label,
                key_label,
                certificate,
                list(chain),
                login_count=int(logged_in_now),
            )
        except BaseException:
            try:
                session.close()
            except p11.PKCS11Error:
                pass
            _release_login(login_key)
            raise

    @classmethod
    def _with_session(
        cls,
        login_key: tuple[str, bytes],
        session: Any,
        token_label: str,
        key_label: str,
        certificate: x509.Certificate | None,
        chain: list[x509.Certificate],
        *,
        login_count: int,
    ) -> Pkcs11Signer:
        try:
            private_key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=key_label)
        except p11.NoSuchKey:
            raise SigningError(
                f"Không tìm thấy khoá ký có nhãn {key_label!r} trên thiết bị {token_label!r}."
            ) from None
        except p11.MultipleObjectsReturned:
            raise SigningError(
                f"Có nhiều khoá cùng nhãn {key_label!r} trên thiết bị {token_label!r}."
            ) from None
        if private_key.key_type == KeyType.RSA:
            algorithm = ALGORITHM_RSA_SHA256
        elif private_key.key_type == KeyType.EC:
            algorithm = ALGORITHM_ECDSA_SHA256
        else:
            raise SigningError("Chỉ hỗ trợ khoá RSA hoặc ECDSA trên thiết bị ký.")
        if _attribute(private_key, Attribute.ALWAYS_AUTHENTICATE, False):
            raise SigningError(
                f"Khoá {key_label!r} đòi nhập mã PIN cho từng chữ ký (CKA_ALWAYS_AUTHENTICATE) "
                "nên không ký cả lớp bằng một lần xác nhận được."
            )
        if certificate is None:
            certificate = _find_certificate(
                session, _attribute(private_key, Attribute.ID), key_label
            )
        _check_key_matches(private_key, session, certificate, key_label)
        if not chain:
            chain = _issuers(certificate, _token_certificates(session))
        return cls(
            login_key=login_key,
            session=session,
            private_key=private_key,
            certificate=certificate,
            chain=chain,
            algorithm=algorithm,
            token_label=token_label,
            key_label=key_label,
            login_count=login_count,
        )

    # ------------------------------------------------------------------ signing
    def sign_digests(self, digests: Sequence[bytes]) -> list[bytes]:
        """Sign every SHA-256 digest in the open session (no new login, no PIN prompt).

        RSA: ``CKM_RSA_PKCS`` over ``DigestInfo(SHA-256, digest)``; EC: ``CKM_ECDSA`` over
        the digest (raw ``r || s``). Each value is checked against the certificate before
        the batch is returned, so a key/certificate mix-up fails here with a clear message.
        Either every signature is returned or :class:`SigningError` is raised.
        """
        for digest in digests:
            if len(digest) != _SHA256_SIZE:
                raise SigningError("Giá trị băm cần ký phải là SHA-256 (32 byte).")
        if self.algorithm == ALGORITHM_RSA_SHA256:
            mechanism = Mechanism.RSA_PKCS
            inputs = [SHA256_DIGEST_INFO_PREFIX + bytes(d) for d in digests]
        else:
            mechanism = Mechanism.ECDSA
            inputs = [bytes(d) for d in digests]
        with self._lock:
            if self._closed:
                raise SigningError("Phiên ký trên thiết bị đã đóng; hãy mở lại.")
            try:
                values = [bytes(self._private_key.sign(i, mechanism=mechanism)) for i in inputs]
            except (
                p11.DeviceRemoved,
                p11.TokenNotPresent,
                p11.SessionClosed,
                p11.SessionHandleInvalid,
                p11.UserNotLoggedIn,
            ):
                raise SigningError(_DEVICE_LOST) from None
            except p11.PKCS11Error as exc:
                raise SigningError(f"Thiết bị ký từ chối ký ({type(exc).__name__}).") from None
        _log.debug("Thiết bị %r đã ký %d giá trị băm.", self.token_label, len(values))
        for digest, value in zip(digests, values, strict=True):
            if not verify_digest_signature(self.certificate, self.algorithm, bytes(digest), value):
                raise SigningError(
                    f"Chữ ký do thiết bị tạo không khớp chứng thư số của khoá {self.key_label!r}."
                )
        return values

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Close the session; the last signer of this process on the token logs it out."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._session.close()
            except p11.PKCS11Error:
                pass
            _release_login(self._login_key)
