"""Client of the province portal, "Cổng tiếp nhận học bạ số" (HOCBA_SPEC §6).

Every transaction is one HTTP ``POST`` of a JSON **envelope**::

    {
      "authenticationRequest": {
        "token": "...", "user_name": "...",
        "password": "<SHA-256 of the password, lower-case hex>",
        "ma_don_vi": "<school code>", "nam_hoc": "2024-2025",
        "messageid": "<UUID>", "type": "1".."6", "function": "GuiHocBa"...
      },
      "content": "<Base64 of len32le + gzip(XML)>"   (transactions 1 and 5)
               | {...}                                (transactions 2, 3, 4 and 6),
      "Signature": {
        "SignatureMethod": "rsa-sha256" | "ecdsa-sha256",
        "DigestMethod": "sha256",
        "DigestValue": "<Base64 SHA-256 of the signed bytes>",
        "SignatureValue": "<Base64>",
        "X509Certificate": "<Base64 DER of the school's organisation certificate>",
        "X509Chain": ["<Base64 DER>", ...]
      }
    }

**The transaction signature.** The signed bytes are the canonical JSON (RFC 8785, JCS:
keys sorted, no insignificant whitespace, UTF-8; for JSON without floating-point numbers
— all this contract uses — it is exactly ``json.dumps(sort_keys=True, separators=(",",
":"), ensure_ascii=False)``) of ``{"authenticationRequest": ..., "content": ...}``. The
school's :class:`~hocba.pki.signer.Signer` signs their SHA-256 digest: RSASSA-PKCS1-v1_5
with SHA-256 (RFC 8017 §8.2) for RSA keys, ``r || s`` ECDSA-SHA256 for EC keys — the same
raw values as XMLDSig, so a USB token or a remote hash-signing service signs a transaction
exactly as it signs a record. The certificate travels with the signature; the portal
checks it chains to its trust anchors and is the school's *approved* certificate.

**Retries.** A transaction is built and signed once; network errors (connection refused,
timeouts, a connection closed before the answer), HTTP 5xx and 429 are retried with
exponential backoff and jitter, re-sending the *same bytes* — hence the same
``messageid`` — so the portal recognises a resend and answers it with its first answer:
a lost answer never creates a duplicate submission. Other 4xx answers are not retried
(:class:`PortalRefused`).

**Configuration only.** The base URL and the path of every transaction are parameters
(:data:`DEFAULT_PATHS` are the bundled portal's), so the same client reaches the bundled
portal or a province's real one. The password is hashed when the client is created and
is never kept, logged or put in a ``repr``; CCCDs are masked in logs.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import logging
import os
import random
import ssl
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from types import TracebackType
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from hocba.errors import HocbaError
from hocba.pki.remote import verify_digest_signature
from hocba.pki.signer import Signer, SigningError
from hocba.portal.package import (
    MAX_TRANSACTION_BYTES,
    Package,
    RevocationItem,
    build_revocation_xml,
    encode_content,
)

__all__ = [
    "CertificateStatus",
    "DEFAULT_PATHS",
    "FUNCTIONS",
    "EnvelopeError",
    "PortalAnswer",
    "PortalClient",
    "PortalError",
    "PortalNotFound",
    "PortalRefused",
    "PortalUnavailable",
    "RecordResult",
    "RevocationStatus",
    "build_envelope",
    "canonical_json",
    "certificate_fingerprint",
    "check_envelope_signature",
    "mask_cccd",
    "password_digest",
    "serial_hex",
    "signed_bytes",
]

log = logging.getLogger(__name__)

FUNCTIONS: dict[int, str] = {
    1: "GuiHocBa",
    2: "TraCuuKetQuaGuiHocBa",
    3: "DangKyChungThuSo",
    4: "TraCuuDangKyChungThuSo",
    5: "YeuCauThuHoiHocBa",
    6: "TraCuuYeuCauThuHoi",
}
"""``authenticationRequest.function`` of each transaction (``type`` is its code)."""

DEFAULT_PATHS: dict[int, str] = {
    1: "/hocba/v1/hoc-ba",
    2: "/hocba/v1/hoc-ba/ket-qua",
    3: "/hocba/v1/chung-thu-so",
    4: "/hocba/v1/chung-thu-so/trang-thai",
    5: "/hocba/v1/thu-hoi",
    6: "/hocba/v1/thu-hoi/trang-thai",
}
"""Paths of the bundled portal (it also accepts every transaction on
``/hocba/v1/giao-dich``, dispatched by ``type``)."""

SIGNED_PARTS = ("authenticationRequest", "content")
AUTH_FIELDS = (
    "token",
    "user_name",
    "password",
    "ma_don_vi",
    "nam_hoc",
    "messageid",
    "type",
    "function",
)
"""The fields of ``authenticationRequest``, in the order of the national interface."""
_RETRIABLE_STATUS = {429, 500, 502, 503, 504}


# ============================================================================ errors
class PortalError(HocbaError):
    """Base class; ``message_vi`` is for people and never holds a password."""

    def __init__(self, message_vi: str) -> None:
        super().__init__(message_vi)
        self.message_vi = message_vi


class PortalUnavailable(PortalError):
    """No answer after every retry (network errors, HTTP 5xx): try again later with the
    same ``messageid``."""


class PortalRefused(PortalError):
    """The portal answered and refused (authentication, signature, certificate, content).
    Retrying the same transaction will not help."""

    def __init__(self, message_vi: str, answer: PortalAnswer) -> None:
        super().__init__(message_vi)
        self.answer = answer

    @property
    def status_code(self) -> int:
        return self.answer.status_code

    @property
    def response_code(self) -> str:
        return self.answer.response_code


class PortalNotFound(PortalRefused):
    """The portal does not know the message, registration or request asked about."""


class EnvelopeError(HocbaError, ValueError):
    """An envelope is malformed or its signature does not verify (portal side)."""

    def __init__(self, message_vi: str) -> None:
        super().__init__(message_vi)
        self.message_vi = message_vi


# ============================================================================ answers
@dataclass(frozen=True)
class PortalAnswer:
    """A portal answer: the common fields of HOCBA_SPEC §6 and the whole body."""

    status_code: int
    message_id: str
    response_code: str
    response_description: str
    error: str
    error_description: str
    data: dict[str, Any] = field(repr=False)

    @property
    def ok(self) -> bool:
        return self.response_code == "00"

    @classmethod
    def of(cls, status_code: int, body: Mapping[str, Any]) -> PortalAnswer:
        def text(key: str) -> str:
            value = body.get(key)
            return "" if value is None else str(value)

        return cls(
            status_code=status_code,
            message_id=text("MessageId"),
            response_code=text("ResponseCode"),
            response_description=text("ResponseDescription"),
            error=text("Error"),
            error_description=text("ErrorDescription"),
            data=dict(body),
        )


@dataclass(frozen=True)
class RecordResult:
    """The portal's verdict on one record of a submission (transaction 2)."""

    ma_hoc_sinh: str | None
    ten_hoc_sinh: str | None
    so_cccd: str | None = field(repr=False)
    ma_tra_cuu_uuid: str | None
    trang_thai: int  # 1 accepted, 0 rejected
    error: str | None = None
    error_field_title: str | None = None
    error_description: str | None = None

    @property
    def accepted(self) -> bool:
        return self.trang_thai == 1

    @classmethod
    def of(cls, item: Mapping[str, Any]) -> RecordResult:
        return cls(
            ma_hoc_sinh=item.get("ma_hoc_sinh"),
            ten_hoc_sinh=item.get("ten_hoc_sinh"),
            so_cccd=item.get("so_cccd"),
            ma_tra_cuu_uuid=item.get("ma_tra_cuu_uuid"),
            trang_thai=int(item.get("trang_thai", 0)),
            error=item.get("error"),
            error_field_title=item.get("error_field_title"),
            error_description=item.get("error_description"),
        )


@dataclass(frozen=True)
class CertificateStatus:
    """Transactions 3 and 4: a certificate registration and whether it is approved."""

    ma_dang_ky: str
    serial_number: str
    trang_thai_phe_duyet: int  # 1 approved, 0 not (yet) approved
    trang_thai: str  # pending | approved | rejected

    @property
    def approved(self) -> bool:
        return self.trang_thai_phe_duyet == 1


@dataclass(frozen=True)
class RevocationStatus:
    """Transactions 5 and 6: a revocation request and its state."""

    ma_yeu_cau: str
    trang_thai: int  # 1 pending, 2 accepted, 3 rejected
    ly_do: str = ""

    PENDING = 1
    ACCEPTED = 2
    REJECTED = 3


# ============================================================================ envelope
def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON for values without floating-point numbers (see module)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def password_digest(password: str) -> str:
    """What ``authenticationRequest.password`` carries: SHA-256 hex of the UTF-8 password."""
    return hashlib.sha256(password.encode("utf-8")).hexdigest()


def mask_cccd(value: str | None) -> str:
    """``079215000123`` → ``079*******23`` (for logs, Nghị định 13/2023)."""
    if not value:
        return "-"
    text = str(value)
    if len(text) <= 5:
        return "*" * len(text)
    return text[:3] + "*" * (len(text) - 5) + text[-2:]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def signed_bytes(envelope: Mapping[str, Any]) -> bytes:
    """The bytes the transaction signature covers."""
    return canonical_json({key: envelope.get(key) for key in SIGNED_PARTS})


def build_envelope(
    signer: Signer,
    authentication: Mapping[str, str],
    content: str | Mapping[str, Any],
) -> dict[str, Any]:
    """The signed envelope of one transaction (one ``signer.sign_digests`` call)."""
    missing = [name for name in AUTH_FIELDS if name not in authentication]
    if missing:
        raise ValueError(f"authenticationRequest thiếu trường: {', '.join(missing)}")
    envelope: dict[str, Any] = {
        "authenticationRequest": {name: str(authentication[name]) for name in AUTH_FIELDS},
        "content": content if isinstance(content, str) else dict(content),
    }
    digest = hashlib.sha256(signed_bytes(envelope)).digest()
    (value,) = signer.sign_digests([digest])
    envelope["Signature"] = {
        "SignatureMethod": signer.algorithm,
        "DigestMethod": "sha256",
        "DigestValue": _b64(digest),
        "SignatureValue": _b64(value),
        "X509Certificate": _b64(_der(signer.certificate)),
        "X509Chain": [_b64(_der(c)) for c in signer.chain if c.issuer != c.subject],
    }
    return envelope


def check_envelope_signature(
    envelope: Mapping[str, Any],
) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """Verify the transaction signature with the certificate it carries.

    Returns the signer's certificate and the extra chain certificates. Whether the
    certificate is trusted and approved is the caller's question. Raises
    :class:`EnvelopeError`.
    """
    signature = envelope.get("Signature")
    if not isinstance(signature, Mapping):
        raise EnvelopeError("Giao dịch không có chữ ký số (Signature).")
    try:
        certificate = x509.load_der_x509_certificate(
            base64.b64decode(str(signature["X509Certificate"]), validate=True)
        )
        chain = [
            x509.load_der_x509_certificate(base64.b64decode(str(c), validate=True))
            for c in signature.get("X509Chain") or []
        ]
        value = base64.b64decode(str(signature["SignatureValue"]), validate=True)
        algorithm = str(signature["SignatureMethod"])
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise EnvelopeError("Chữ ký số của giao dịch thiếu trường hoặc sai định dạng.") from None
    digest = hashlib.sha256(signed_bytes(envelope)).digest()
    declared = signature.get("DigestValue")
    if declared is not None and declared != _b64(digest):
        raise EnvelopeError("Giá trị băm của giao dịch không khớp: nội dung đã bị thay đổi.")
    if not verify_digest_signature(certificate, algorithm, digest, value):
        raise EnvelopeError("Chữ ký số của giao dịch không hợp lệ.")
    return certificate, chain


def serial_hex(certificate: x509.Certificate) -> str:
    """A certificate serial number as Vietnamese CAs print it: upper-case hex."""
    return format(certificate.serial_number, "X")


# ============================================================================ client
class PortalClient:
    """One school's client of a province portal: one method per transaction.

    Args:
        base_url: the portal root, e.g. ``"https://hocba.sogd.example.vn"``.
        user_name / password: the account the province issued; the password is hashed
            (SHA-256) at once and the clear text is not kept.
        ma_don_vi: the school's unit code (its ``MA_TRUONG``).
        signer: the school's organisation certificate (:class:`Signer`), which signs
            every transaction.
        timeout: seconds for one HTTP exchange; retries: further attempts after the
            first on network errors / 5xx / 429.
        nam_hoc: default school year (``"2024-2025"``) of the envelopes.
        token: ``authenticationRequest.token`` (issued by some portals; empty otherwise).
        paths: transaction code → path, merged over :data:`DEFAULT_PATHS`.
        backoff / max_backoff: first and largest pause between attempts, in seconds.
        max_transaction_bytes: refuse to send a larger body (the portal's limit).
        transport: an ``httpx`` transport (tests); ``verify``: TLS verification setting.
    """

    def __init__(
        self,
        base_url: str,
        user_name: str,
        password: str,
        ma_don_vi: str,
        signer: Signer,
        timeout: float = 60.0,
        retries: int = 5,
        *,
        nam_hoc: str = "",
        token: str = "",
        paths: Mapping[int, str] | None = None,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_transaction_bytes: int = MAX_TRANSACTION_BYTES,
        transport: httpx.BaseTransport | None = None,
        verify: bool | str = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.user_name = user_name
        self._password_sha256 = password_digest(password)
        self.ma_don_vi = ma_don_vi
        self.signer = signer
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.nam_hoc = nam_hoc
        self._token = token
        self.paths = {**DEFAULT_PATHS, **dict(paths or {})}
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_transaction_bytes = max_transaction_bytes
        self._random = random.Random()
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            verify=_tls_context(
                verify, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
            ),
        )

    def __repr__(self) -> str:
        return (
            f"PortalClient(base_url={self.base_url!r}, user_name={self.user_name!r}, "
            f"ma_don_vi={self.ma_don_vi!r})"
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PortalClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing
    def envelope(
        self,
        code: int,
        content: str | Mapping[str, Any],
        message_id: str,
        nam_hoc: str | None = None,
    ) -> dict[str, Any]:
        """The signed envelope of transaction ``code`` (exposed for tests and tools)."""
        authentication = {
            "token": self._token,
            "user_name": self.user_name,
            "password": self._password_sha256,
            "ma_don_vi": self.ma_don_vi,
            "nam_hoc": self.nam_hoc if nam_hoc is None else nam_hoc,
            "messageid": message_id,
            "type": str(code),
            "function": FUNCTIONS[code],
        }
        try:
            return build_envelope(self.signer, authentication, content)
        except SigningError as exc:
            raise PortalError(f"Không ký được giao dịch: {exc.message_vi}") from exc

    def send(
        self,
        code: int,
        content: str | Mapping[str, Any],
        message_id: str | None = None,
        nam_hoc: str | None = None,
    ) -> PortalAnswer:
        """Build, sign and send transaction ``code``; retry with the same bytes.

        Returns the answer when the portal accepted the transaction (HTTP 2xx); raises
        :class:`PortalRefused` (or :class:`PortalNotFound`) for a 4xx answer and
        :class:`PortalUnavailable` when every attempt failed.
        """
        message_id = message_id or str(uuid.uuid4())
        body = json.dumps(
            self.envelope(code, content, message_id, nam_hoc),
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        if len(body) > self.max_transaction_bytes:
            raise PortalError(
                f"Giao dịch {code} dài {len(body):,} byte, vượt giới hạn "
                f"{self.max_transaction_bytes:,} byte: hãy chia gói nhỏ hơn."
            )
        path = self.paths[code]
        headers = {"Content-Type": "application/json; charset=utf-8"}
        attempts = self.retries + 1
        why = ""
        for attempt in range(1, attempts + 1):
            try:
                response = self._http.post(path, content=body, headers=headers)
            except httpx.TransportError as exc:
                why = type(exc).__name__
                log.warning(
                    "Giao dịch %d (messageid %s), lần %d/%d: lỗi mạng %s.",
                    code,
                    message_id,
                    attempt,
                    attempts,
                    why,
                )
            else:
                if response.status_code not in _RETRIABLE_STATUS:
                    return self._answer(code, message_id, response)
                why = f"HTTP {response.status_code}"
                log.warning(
                    "Giao dịch %d (messageid %s), lần %d/%d: cổng trả lời %s.",
                    code,
                    message_id,
                    attempt,
                    attempts,
                    why,
                )
            if attempt < attempts:
                time.sleep(self._pause(attempt))
        raise PortalUnavailable(
            f"Cổng tiếp nhận không trả lời giao dịch {code} (messageid {message_id}) sau "
            f"{attempts} lần thử ({why}); hãy gửi lại sau với cùng messageid."
        )

    def _pause(self, attempt: int) -> float:
        pause = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return pause * (0.75 + 0.5 * self._random.random())

    def _answer(self, code: int, message_id: str, response: httpx.Response) -> PortalAnswer:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {"ResponseCode": "", "ErrorDescription": f"HTTP {response.status_code}"}
        answer = PortalAnswer.of(response.status_code, body)
        if response.is_success:
            log.info(
                "Giao dịch %d (messageid %s): %s %s.",
                code,
                message_id,
                answer.response_code,
                answer.response_description,
            )
            return answer
        text = answer.error_description or answer.response_description
        message = (
            f"Cổng tiếp nhận từ chối giao dịch {code} (messageid {message_id}): "
            f"HTTP {response.status_code}, mã {answer.response_code or '?'} — {text}"
        )
        log.warning("%s", message)
        if response.status_code == 404:
            raise PortalNotFound(message, answer)
        raise PortalRefused(message, answer)

    # ------------------------------------------------------------------ transactions
    def submit(
        self,
        package: Package | str,
        *,
        message_id: str | None = None,
        nam_hoc: str | None = None,
    ) -> PortalAnswer:
        """Transaction 1: send one ``<DANH_SACH_HOC_BA>`` package.

        ``package`` is a :class:`~hocba.portal.package.Package` (its ``message_id`` is
        used unless one is given) or already-encoded content. The answer carries
        ``so_hoc_ba``, ``so_tiep_nhan`` and ``so_tu_choi``; per-record results come from
        :meth:`query_submission`.
        """
        if isinstance(package, Package):
            content, message_id = package.content, message_id or package.message_id
        else:
            content = package
        if not message_id:
            raise ValueError("submit cần messageid khi gửi nội dung đã mã hoá")
        return self.send(1, content, message_id, nam_hoc)

    def query_submission(
        self, message_id: str, *, nam_hoc: str | None = None
    ) -> list[RecordResult]:
        """Transaction 2: the result of each record of submission ``message_id``.

        Raises :class:`PortalNotFound` when the portal never received that submission.
        """
        answer = self.send(2, {"messageid": message_id}, nam_hoc=nam_hoc)
        items = answer.data.get("ket_qua")
        if not isinstance(items, list):
            raise PortalError("Cổng tiếp nhận trả lời giao dịch 2 không có danh sách kết quả.")
        return [RecordResult.of(item) for item in items]

    def register_certificate(
        self,
        *,
        ma_kieu_chu_ky: str = "USB_TOKEN",
        nha_phat_hanh: str = "VNPT",
        ngay_hieu_luc: dt.date | str | None = None,
        message_id: str | None = None,
    ) -> CertificateStatus:
        """Transaction 3: register the signer's certificate as the school's organisation
        certificate. ``ma_kieu_chu_ky``: REMOTE_SIGNING or USB_TOKEN; ``nha_phat_hanh``:
        VNPT, BKAV, VIETTEL or BAN_CO_YEU. Registering the same certificate again returns
        the existing registration."""
        certificate = self.signer.certificate
        if ngay_hieu_luc is None:
            ngay_hieu_luc = certificate.not_valid_before_utc.date()
        content = {
            "serial_number": serial_hex(certificate),
            "ngay_hieu_luc": str(ngay_hieu_luc),
            "ma_kieu_chu_ky": ma_kieu_chu_ky,
            "nha_phat_hanh": nha_phat_hanh,
        }
        return self._certificate_status(self.send(3, content, message_id))

    def query_registration(self, serial_number: str | None = None) -> CertificateStatus:
        """Transaction 4: the approval state of a registered certificate (by default the
        signer's)."""
        serial = serial_number or serial_hex(self.signer.certificate)
        return self._certificate_status(self.send(4, {"serial_number": serial}))

    @staticmethod
    def _certificate_status(answer: PortalAnswer) -> CertificateStatus:
        data = answer.data
        return CertificateStatus(
            ma_dang_ky=str(data.get("ma_dang_ky", "")),
            serial_number=str(data.get("serial_number", "")),
            trang_thai_phe_duyet=int(data.get("trang_thai_phe_duyet", 0)),
            trang_thai=str(data.get("trang_thai", "")),
        )

    def request_revocation(
        self,
        items: Sequence[RevocationItem],
        *,
        message_id: str | None = None,
        nam_hoc: str | None = None,
    ) -> RevocationStatus:
        """Transaction 5: ask the Sở to revoke issued records (before a correction).

        Pass a ``message_id`` persisted with the correction request so that a retry
        after a lost answer cannot file the request twice."""
        content = encode_content(build_revocation_xml(items))
        answer = self.send(5, content, message_id, nam_hoc)
        return RevocationStatus(
            ma_yeu_cau=str(answer.data.get("ma_yeu_cau", "")),
            trang_thai=int(answer.data.get("trang_thai", RevocationStatus.PENDING)),
        )

    def query_revocation(self, request_id: str) -> RevocationStatus:
        """Transaction 6: 1 pending, 2 accepted, 3 rejected."""
        answer = self.send(6, {"ma_yeu_cau": request_id})
        return RevocationStatus(
            ma_yeu_cau=str(answer.data.get("ma_yeu_cau", request_id)),
            trang_thai=int(answer.data.get("trang_thai", 0)),
            ly_do=str(answer.data.get("ly_do") or ""),
        )


def certificate_fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the DER, lower-case hex (how registrations are keyed)."""
    return certificate.fingerprint(hashes.SHA256()).hex()


@cache
def _tls_context(verify: bool | str, cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    """The TLS settings of ``verify`` (httpx's, honouring ``SSL_CERT_FILE`` and
    ``SSL_CERT_DIR``, whose values are part of the key), made once per process: building
    a context loads the CA bundle, ~40 ms of CPU, and a client is made per school and
    exchange. A context is not changed after it is made, so the clients can share it."""
    if isinstance(verify, str):  # a CA bundle file or directory, as httpx took it
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    return httpx.create_ssl_context(verify=verify)
