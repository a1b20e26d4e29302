"""The bundled remote hash-signing service: a stand-in for VNPT SmartCA / Viettel MySign
(HOCBA_SPEC §4), for development, demos and tests; the client is
:class:`hocba.pki.remote.RemoteSigner`, whose docstring has the protocol.

Such services keep the user's key in their HSM and sign *hashes*: a client sends many
SHA-256 digests in one request, the user confirms once in a phone app, and the client
collects one signature per digest. Here: :func:`create_signing_service` (FastAPI, the v1
protocol and the same requests in the shape of the Cloud Signature Consortium API v2), run
with :func:`serve` (``hocba signing-service serve``); the user's phone is played by
:func:`pending_requests` and :func:`answer_request` (``hocba signing-service pending`` /
``confirm``) and by :func:`answer_pending` (tests, the demo).

Security notes: request ids are random UUIDs (RFC 9562 v4), not enumerable; OTPs are
kept only as HMAC-SHA256 tags under a per-process random key and compared in constant
time; after :data:`MAX_OTP_ATTEMPTS` wrong OTPs a request is rejected; no OTP, password,
hash or signature is ever logged (logs name the request id, the user id and a count).
The service has no client authentication: it is a stand-in for the real services, bound
to localhost by default.
"""

from __future__ import annotations

import binascii
import datetime as dt
import hashlib
import hmac
import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI, HTTPException, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from hocba.pki.remote import _SHA256_SIZE, CSC_SHA256, CSC_SIGN_ALGO, _b64, _b64decode
from hocba.pki.signer import (
    SigningError,
    SoftwareSigner,
)

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_HASHES",
    "MAX_OTP_ATTEMPTS",
    "HashSigningService",
    "answer_pending",
    "answer_request",
    "create_signing_service",
    "pending_requests",
    "serve",
]

_log = logging.getLogger(__name__)

DEFAULT_MAX_HASHES = 1000
"""Most digests accepted in one sign request (a school's largest batch is far below)."""
DEFAULT_MAX_BODY_BYTES = 256 * 1024
"""Largest request body accepted (1000 base64 SHA-256 values take about 47 KB)."""
MAX_OTP_ATTEMPTS = 5
"""Wrong OTPs after which a pending request is rejected."""

_Status = Literal["pending", "confirmed", "rejected", "expired", "cancelled"]
_Algorithm = Literal["rsa-sha256", "ecdsa-sha256"]


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


# =============================================================================== service
class SignRequestIn(BaseModel):
    """Body of ``POST /v1/sign-requests``."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=128)
    hashes: list[str] = Field(min_length=1)
    description: str = Field(default="", max_length=500)
    algorithm: _Algorithm


class OtpIn(BaseModel):
    """Body of ``confirm`` / ``reject``: the user's confirmation secret (OTP, PIN)."""

    model_config = ConfigDict(extra="forbid")

    otp: str = Field(min_length=1, max_length=128)


@dataclass
class _SignRequest:
    request_id: str
    user_id: str
    digests: list[bytes]
    description: str
    algorithm: str
    hash_count: int
    created_at: dt.datetime
    expires_at: dt.datetime
    status: _Status = "pending"
    signatures: list[bytes] = field(default_factory=list)
    signed: dict[bytes, bytes] = field(default_factory=dict)  # digest -> value (CSC signHash)
    sad_tag: bytes | None = None  # HMAC of the CSC SAD handed out for this request
    otp_failures: int = 0
    signing: bool = False  # a confirmation is being processed


class HashSigningService:
    """State of the local hash-signing service: keys (loaded once), OTP tags, requests.

    Reachable from the app as ``app.state.service``; :attr:`request_count` tells how many
    sign requests were ever submitted (tests use it to prove "one confirmation").
    """

    def __init__(
        self,
        keys: Mapping[str, tuple[str | Path, str]],
        *,
        otps: Mapping[str, str] | None = None,
        auto_confirm: bool = False,
        request_ttl: float = 300.0,
        max_hashes: int = DEFAULT_MAX_HASHES,
        max_requests: int = 10_000,
    ) -> None:
        """Load every PKCS#12 key now (raises :class:`SigningError` on a bad file/password)."""
        self.signers: dict[str, SoftwareSigner] = {
            user_id: SoftwareSigner.from_pkcs12(path, password)
            for user_id, (path, password) in keys.items()
        }
        self._otp_key = os.urandom(32)
        self._otp_tags = {user: self._otp_tag(otp) for user, otp in (otps or {}).items()}
        self.auto_confirm = auto_confirm
        self.request_ttl = dt.timedelta(seconds=request_ttl)
        self.max_hashes = max_hashes
        self.max_requests = max_requests
        self.request_count = 0
        self._requests: dict[str, _SignRequest] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HashSigningService(users={sorted(self.signers)!r})"

    def _otp_tag(self, otp: str) -> bytes:
        return hmac.new(self._otp_key, otp.encode("utf-8"), hashlib.sha256).digest()

    def _signer(self, user_id: str) -> SoftwareSigner:
        signer = self.signers.get(user_id)
        if signer is None:
            raise HTTPException(404, f"Không có tài khoản ký số {user_id!r}.")
        return signer

    def status_of(self, request_id: str) -> str:
        """Current status of a request (for tests and operators)."""
        with self._lock:
            return self._get(request_id).status

    # ------------------------------------------------------------------ internals
    def _get(self, request_id: str) -> _SignRequest:
        request = self._requests.get(request_id)
        if request is None:
            raise HTTPException(404, "Không tìm thấy yêu cầu ký.")
        if request.status == "pending" and not request.signing:
            if dt.datetime.now(dt.UTC) >= request.expires_at:
                request.status = "expired"
                request.digests = []
        return request

    def _purge(self, now: dt.datetime) -> None:
        """Forget finished requests once they are older than twice the time to live."""
        horizon = now - 2 * self.request_ttl
        for request_id in [k for k, r in self._requests.items() if r.expires_at < horizon]:
            del self._requests[request_id]

    def _sign(self, request: _SignRequest) -> None:
        """Sign every digest of ``request`` (outside the lock) and mark it confirmed.

        The caller has set ``request.signing`` under the lock, so no second confirmation,
        rejection or cancellation can interleave. A key failure leaves the request
        rejected (never half signed) and answers 500.
        """
        try:
            values = self.signers[request.user_id].sign_digests(request.digests)
        except SigningError:
            with self._lock:
                request.status = "rejected"
                request.digests = []
                request.signing = False
            _log.error("Dịch vụ không ký được yêu cầu %s.", request.request_id)
            raise HTTPException(500, "Dịch vụ không ký được yêu cầu này.") from None
        with self._lock:
            request.signatures = values
            request.signed = dict(zip(request.digests, values, strict=True))
            request.status = "confirmed"
            request.digests = []
            request.signing = False
        _log.info("Yêu cầu ký %s đã được xác nhận (%d chữ ký).", request.request_id, len(values))

    # ------------------------------------------------------------------ operations
    def certificate(self, user_id: str) -> dict[str, Any]:
        """``GET /v1/users/{user_id}/certificate``."""
        signer = self._signer(user_id)
        return {
            "user_id": user_id,
            "algorithm": signer.algorithm,
            "certificate": _b64(signer.certificate.public_bytes(serialization.Encoding.DER)),
            "chain": [_b64(c.public_bytes(serialization.Encoding.DER)) for c in signer.chain],
        }

    def create(self, body: SignRequestIn) -> dict[str, Any]:
        """``POST /v1/sign-requests``: store the digests, wait for the user's confirmation."""
        signer = self._signer(body.user_id)
        if len(body.hashes) > self.max_hashes:
            raise HTTPException(
                422, f"Mỗi yêu cầu ký tối đa {self.max_hashes} giá trị băm ({len(body.hashes)})."
            )
        if body.algorithm != signer.algorithm:
            raise HTTPException(
                422,
                f"Khoá của tài khoản ký theo thuật toán {signer.algorithm}, không phải "
                f"{body.algorithm}.",
            )
        try:
            digests = [_b64decode(h) for h in body.hashes]
        except (binascii.Error, ValueError):
            raise HTTPException(422, "Giá trị băm không phải base64 hợp lệ.") from None
        if any(len(d) != _SHA256_SIZE for d in digests):
            raise HTTPException(422, "Mỗi giá trị băm phải là SHA-256 (32 byte).")
        now = dt.datetime.now(dt.UTC)
        request = _SignRequest(
            request_id=str(uuid.uuid4()),
            user_id=body.user_id,
            digests=digests,
            description=body.description,
            algorithm=body.algorithm,
            hash_count=len(digests),
            created_at=now,
            expires_at=now + self.request_ttl,
            signing=self.auto_confirm,
        )
        with self._lock:
            self._purge(now)
            if len(self._requests) >= self.max_requests:
                raise HTTPException(429, "Dịch vụ ký đang quá tải; hãy thử lại sau.")
            self._requests[request.request_id] = request
            self.request_count += 1
        _log.info(
            "Yêu cầu ký %s của %r: %d giá trị băm.",
            request.request_id,
            request.user_id,
            len(digests),
        )
        if self.auto_confirm:
            self._sign(request)
        return {
            "request_id": request.request_id,
            "status": request.status,
            "expires_at": _iso(request.expires_at),
        }

    def read(self, request_id: str) -> dict[str, Any]:
        """``GET /v1/sign-requests/{id}``; signatures only once confirmed."""
        with self._lock:
            request = self._get(request_id)
            signer = self.signers[request.user_id]
            answer: dict[str, Any] = {
                "request_id": request.request_id,
                "user_id": request.user_id,
                "status": request.status,
                "description": request.description,
                "algorithm": request.algorithm,
                "hash_count": request.hash_count,
                "created_at": _iso(request.created_at),
                "expires_at": _iso(request.expires_at),
                "certificate": _b64(signer.certificate.public_bytes(serialization.Encoding.DER)),
            }
            if request.status == "confirmed":
                answer["signatures"] = [_b64(v) for v in request.signatures]
            return answer

    def pending(self, user_id: str) -> dict[str, Any]:
        """``GET /v1/users/{user_id}/sign-requests``: the requests waiting for the user's
        confirmation, oldest first (what the phone app lists)."""
        self._signer(user_id)
        with self._lock:
            waiting = [
                self._get(r.request_id)
                for r in list(self._requests.values())
                if r.user_id == user_id
            ]
            return {
                "requests": [
                    {
                        "request_id": r.request_id,
                        "description": r.description,
                        "hash_count": r.hash_count,
                        "created_at": _iso(r.created_at),
                        "expires_at": _iso(r.expires_at),
                    }
                    for r in sorted(waiting, key=lambda r: r.created_at)
                    if r.status == "pending" and not r.signing
                ]
            }

    def _pending_for_user(self, request_id: str, otp: str) -> _SignRequest:
        """The request if it is pending and ``otp`` is the owner's secret (under the lock)."""
        request = self._get(request_id)
        if request.status == "expired":
            raise HTTPException(410, "Yêu cầu ký đã hết hạn.")
        if request.status != "pending" or request.signing:
            raise HTTPException(409, f"Yêu cầu ký không còn chờ xác nhận ({request.status}).")
        tag = self._otp_tags.get(request.user_id)
        if tag is None or not hmac.compare_digest(tag, self._otp_tag(otp)):
            request.otp_failures += 1
            _log.warning("Mã xác nhận sai cho yêu cầu ký %s.", request.request_id)
            if request.otp_failures >= MAX_OTP_ATTEMPTS:
                request.status = "rejected"
                request.digests = []
                raise HTTPException(403, "Mã xác nhận sai quá nhiều lần; yêu cầu ký bị huỷ.")
            raise HTTPException(403, "Mã xác nhận không đúng.")
        return request

    def confirm(self, request_id: str, otp: str) -> dict[str, Any]:
        """``POST /v1/sign-requests/{id}/confirm``: the user confirms on their phone."""
        with self._lock:
            request = self._pending_for_user(request_id, otp)
            request.signing = True
        self._sign(request)
        return {"request_id": request.request_id, "status": request.status}

    def reject(self, request_id: str, otp: str) -> dict[str, Any]:
        """``POST /v1/sign-requests/{id}/reject``: the user refuses to sign."""
        with self._lock:
            request = self._pending_for_user(request_id, otp)
            request.status = "rejected"
            request.digests = []
        _log.info("Yêu cầu ký %s bị người dùng từ chối.", request_id)
        return {"request_id": request_id, "status": "rejected"}

    def cancel(self, request_id: str) -> dict[str, Any]:
        """``POST /v1/sign-requests/{id}/cancel``: the client gave up; a late confirmation
        can no longer produce signatures nobody will use."""
        with self._lock:
            request = self._get(request_id)
            if request.status == "pending" and not request.signing:
                request.status = "cancelled"
                request.digests = []
                _log.info("Yêu cầu ký %s đã bị huỷ bởi ứng dụng.", request_id)
            return {"request_id": request_id, "status": request.status}

    # ------------------------------------------------------------------ CSC API v2 facade
    def csc_info(self, credential_id: str, certificates: str) -> dict[str, Any]:
        """``credentials/info``: the key's algorithm and the certificate (and chain)."""
        signer = self._signer(credential_id)
        public = signer.certificate.public_key()
        chain = [signer.certificate, *signer.chain] if certificates == "chain" else []
        if certificates == "single":
            chain = [signer.certificate]
        return {
            "key": {
                "status": "enabled",
                "algo": [CSC_SIGN_ALGO[signer.algorithm]],
                "len": getattr(public, "key_size", 0),
            },
            "cert": {
                "status": "valid",
                "certificates": [_b64(c.public_bytes(serialization.Encoding.DER)) for c in chain],
                "serialNumber": format(signer.certificate.serial_number, "x"),
                "subjectDN": signer.certificate.subject.rfc4514_string(),
                "issuerDN": signer.certificate.issuer.rfc4514_string(),
            },
            "authMode": "explicit",
            "SCAL": "2",
            "multisign": self.max_hashes,
            "lang": "vi",
        }

    def csc_authorize(self, body: CscAuthorizeIn) -> dict[str, Any]:
        """``credentials/authorize`` for the given hashes, answered asynchronously: the
        user confirms on the phone, ``credentials/authorizeCheck`` then returns the SAD."""
        if body.hashAlgorithmOID != CSC_SHA256:
            raise HTTPException(422, "Chỉ hỗ trợ giá trị băm SHA-256 (2.16.840.1.101.3.4.2.1).")
        if body.numSignatures != len(body.hashes):
            raise HTTPException(422, "numSignatures phải bằng số giá trị băm.")
        created = self.create(
            SignRequestIn.model_validate(
                {
                    "user_id": body.credentialID,
                    "hashes": body.hashes,
                    "description": body.description,
                    "algorithm": self.signers[body.credentialID].algorithm
                    if body.credentialID in self.signers
                    else "rsa-sha256",
                }
            )
        )
        return {
            "transactionID": created["request_id"],
            "status": created["status"],
            "expiresIn": int(self.request_ttl.total_seconds()),
        }

    def csc_authorize_check(self, credential_id: str, transaction_id: str) -> dict[str, Any]:
        """``credentials/authorizeCheck``: ``pending``, or the SAD once the user confirmed
        (403 when refused, 410 when expired or cancelled)."""
        with self._lock:
            request = self._get(transaction_id)
            if request.user_id != credential_id:
                raise HTTPException(404, "Không tìm thấy yêu cầu ký.")
            if request.status == "rejected":
                raise HTTPException(403, "Người ký đã từ chối yêu cầu ký trên ứng dụng.")
            if request.status in ("expired", "cancelled"):
                raise HTTPException(410, f"Yêu cầu ký không còn hiệu lực ({request.status}).")
            if request.status != "confirmed":
                return {"status": "pending"}
            sad = _b64(os.urandom(32))
            request.sad_tag = self._otp_tag(sad)
            return {"status": "confirmed", "SAD": sad, "expiresIn": 300}

    def csc_sign_hash(self, body: CscSignHashIn) -> dict[str, Any]:
        """``signatures/signHash`` with the SAD of a confirmed transaction: one value per
        hash, each one of the hashes the user authorised; the SAD is then spent."""
        signer = self._signer(body.credentialID)
        if body.signAlgo != CSC_SIGN_ALGO[signer.algorithm]:
            raise HTTPException(422, "signAlgo không khớp khoá của tài khoản ký.")
        tag = self._otp_tag(body.SAD)
        with self._lock:
            request = next(
                (
                    r
                    for r in self._requests.values()
                    if r.sad_tag is not None and hmac.compare_digest(r.sad_tag, tag)
                ),
                None,
            )
            if request is None or request.user_id != body.credentialID:
                raise HTTPException(403, "SAD không hợp lệ hoặc đã dùng.")
            request.sad_tag = None
            try:
                values = [request.signed[_b64decode(h)] for h in body.hashes]
            except (KeyError, binascii.Error, ValueError):
                raise HTTPException(403, "Có giá trị băm người dùng chưa xác nhận.") from None
        return {"signatures": [_b64(v) for v in values]}


class CscCredentialIn(BaseModel):
    """Body of CSC ``credentials/list`` / ``credentials/info``."""

    userID: str | None = Field(default=None, max_length=128)
    credentialID: str | None = Field(default=None, max_length=128)
    certificates: Literal["none", "single", "chain"] = "single"


class CscAuthorizeIn(BaseModel):
    """Body of CSC ``credentials/authorize`` (hashes given: explicit authorisation)."""

    credentialID: str = Field(min_length=1, max_length=128)
    numSignatures: int = Field(ge=1)
    hashes: list[str] = Field(min_length=1)
    hashAlgorithmOID: str
    description: str = Field(default="", max_length=500)


class CscCheckIn(BaseModel):
    credentialID: str = Field(min_length=1, max_length=128)
    transactionID: str = Field(min_length=1, max_length=64)


class CscSignHashIn(BaseModel):
    credentialID: str = Field(min_length=1, max_length=128)
    SAD: str = Field(min_length=1, max_length=256)
    hashes: list[str] = Field(min_length=1)
    hashAlgorithmOID: str = CSC_SHA256
    signAlgo: str


class _BodyLimit:
    """ASGI middleware: 413 for bodies larger than ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = HTTPException(413, "Nội dung yêu cầu quá lớn.")
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                response = _json_error(413, too_large.detail)
                await response(scope, receive, send)
                return
        received = 0

        async def limited() -> Any:
            nonlocal received
            message = await receive()
            if message.get("type") == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise too_large  # FastAPI re-raises HTTPException from body reading
            return message

        await self.app(scope, limited, send)


def _json_error(status: int, detail: str) -> Response:
    return JSONResponse({"detail": detail}, status_code=status)


def create_signing_service(
    keys: Mapping[str, tuple[str | Path, str]],
    auto_confirm: bool = False,
    *,
    otps: Mapping[str, str] | None = None,
    request_ttl: float = 300.0,
    max_hashes: int = DEFAULT_MAX_HASHES,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """Build the local hash-signing service.

    Args:
        keys: ``user_id -> (PKCS#12 path, password)``; every key is decrypted once, now.
        auto_confirm: sign as soon as a request arrives (unattended demos).
        otps: ``user_id -> confirmation secret`` typed by the user "on the phone"; a user
            without one can only be served with ``auto_confirm``.
        request_ttl: seconds a request waits for confirmation before it expires.
        max_hashes: most digests in one request; ``max_body_bytes``: largest body.
    """
    service = HashSigningService(
        keys,
        otps=otps,
        auto_confirm=auto_confirm,
        request_ttl=request_ttl,
        max_hashes=max_hashes,
    )
    app = FastAPI(
        title="hocba — dịch vụ ký số từ xa (thử nghiệm)",
        description="Ký giá trị băm theo lô, một lần xác nhận (kiểu VNPT SmartCA / MySign).",
        version="1",
    )
    app.state.service = service

    @app.get("/v1/users/{user_id}/certificate")
    def get_certificate(user_id: str) -> dict[str, Any]:
        return service.certificate(user_id)

    @app.post("/v1/sign-requests", status_code=201)
    def create_request(body: SignRequestIn) -> dict[str, Any]:
        return service.create(body)

    @app.get("/v1/users/{user_id}/sign-requests")
    def pending_requests(user_id: str) -> dict[str, Any]:
        return service.pending(user_id)

    @app.get("/v1/sign-requests/{request_id}")
    def read_request(request_id: str) -> dict[str, Any]:
        return service.read(request_id)

    @app.post("/v1/sign-requests/{request_id}/confirm")
    def confirm_request(request_id: str, body: OtpIn) -> dict[str, Any]:
        return service.confirm(request_id, body.otp)

    @app.post("/v1/sign-requests/{request_id}/reject")
    def reject_request(request_id: str, body: OtpIn) -> dict[str, Any]:
        return service.reject(request_id, body.otp)

    @app.post("/v1/sign-requests/{request_id}/cancel")
    def cancel_request(request_id: str) -> dict[str, Any]:
        return service.cancel(request_id)

    # Cloud Signature Consortium API v2 shape (docs/SIGNING.md): the same requests.
    @app.post("/csc/v2/info")
    def csc_info() -> dict[str, Any]:
        return {
            "specs": "2.0.0.2",
            "name": "hocba — dịch vụ ký số từ xa (thử nghiệm)",
            "region": "VN",
            "lang": "vi",
            "authType": ["external"],
            "methods": [
                "credentials/list",
                "credentials/info",
                "credentials/authorize",
                "credentials/authorizeCheck",
                "signatures/signHash",
            ],
        }

    @app.post("/csc/v2/credentials/list")
    def csc_list(body: CscCredentialIn) -> dict[str, Any]:
        user = body.userID or ""
        return {"credentialIDs": [user] if user in service.signers else []}

    @app.post("/csc/v2/credentials/info")
    def csc_credential_info(body: CscCredentialIn) -> dict[str, Any]:
        return service.csc_info(body.credentialID or "", body.certificates)

    @app.post("/csc/v2/credentials/authorize")
    def csc_authorize(body: CscAuthorizeIn) -> dict[str, Any]:
        return service.csc_authorize(body)

    @app.post("/csc/v2/credentials/authorizeCheck")
    def csc_authorize_check(body: CscCheckIn) -> dict[str, Any]:
        return service.csc_authorize_check(body.credentialID, body.transactionID)

    @app.post("/csc/v2/signatures/signHash")
    def csc_sign_hash(body: CscSignHashIn) -> dict[str, Any]:
        return service.csc_sign_hash(body)

    app.add_middleware(_BodyLimit, max_bytes=max_body_bytes)
    return app


def serve(
    host: str,
    port: int,
    keys: Mapping[str, tuple[str | Path, str]],
    *,
    otps: Mapping[str, str] | None = None,
    auto_confirm: bool = False,
    request_ttl: float = 300.0,
    log_level: str = "info",
) -> None:
    """Run the local hash-signing service with uvicorn until interrupted (blocking).

    Meant for ``hocba signing-service serve``. Bind to ``127.0.0.1`` unless the service
    really must be reached from other machines: it has no client authentication.
    """
    import uvicorn

    app = create_signing_service(keys, auto_confirm, otps=otps, request_ttl=request_ttl)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


# =============================================================================== the phone
def _refused(response: httpx.Response) -> SigningError:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    return SigningError(f"Dịch vụ ký trả lời: {detail or f'HTTP {response.status_code}'}")


def pending_requests(client: httpx.Client, user_id: str) -> list[dict[str, Any]]:
    """What the phone app shows ``user_id``: the requests waiting for a confirmation
    (``client``: an ``httpx.Client`` on the service's root)."""
    response = client.get(f"/v1/users/{user_id}/sign-requests")
    if response.is_error:
        raise _refused(response)
    return list(response.json()["requests"])


def answer_request(
    client: httpx.Client, request_id: str, otp: str, *, refuse: bool = False
) -> None:
    """The user's answer on the phone: confirm (or refuse) ``request_id`` with ``otp``."""
    action = "reject" if refuse else "confirm"
    response = client.post(f"/v1/sign-requests/{request_id}/{action}", json={"otp": otp})
    if response.is_error:
        raise _refused(response)


def answer_pending(
    base_url: str,
    user_id: str,
    otp: str,
    *,
    refuse: bool = False,
    timeout: float = 30,
    poll_interval: float = 0.2,
) -> str:
    """Play the user's phone: wait for ``user_id``'s next pending request, then confirm
    it (or refuse it) with ``otp``; returns the request id. For tests and the demo."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base_url.rstrip("/"), timeout=10) as client:
        while not (waiting := pending_requests(client, user_id)):
            if time.monotonic() > deadline:
                raise SigningError(f"Không có yêu cầu ký nào chờ {user_id} xác nhận.")
            time.sleep(poll_interval)
        request_id = str(waiting[0]["request_id"])
        answer_request(client, request_id, otp, refuse=refuse)
    return request_id
