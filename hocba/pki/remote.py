"""Remote hash signing in the style of VNPT SmartCA / Viettel MySign (HOCBA_SPEC §4).

Those services keep the user's key in their HSM and sign *hashes*: the client sends many
SHA-256 digests in one request, the user confirms once in a phone app, and the client
collects one signature per digest. That is exactly the :class:`~hocba.pki.signer.Signer`
contract, so a whole class is signed with one confirmation.

This module is the client, :class:`RemoteSigner`, the backend used by
:func:`~hocba.xml.dsig.sign_slots`. A stand-in for such a service, speaking the same small
HTTP/JSON protocol, is bundled for development, demos and tests:
:mod:`hocba.dev.signing_service` (``hocba signing-service serve``).

Protocol (all bodies JSON; binary values base64, RFC 4648 §4)::

    GET  /v1/users/{user_id}/certificate   -> {user_id, algorithm, certificate, chain}
    POST /v1/sign-requests                 {user_id, hashes[], description, algorithm}
                                           -> 201 {request_id, status: "pending", expires_at}
    GET  /v1/sign-requests/{id}            -> {request_id, status, expires_at, hash_count,
                                               certificate, signatures (when confirmed)}
    GET  /v1/users/{user_id}/sign-requests -> {requests: [{request_id, description,
                                               hash_count, expires_at}]}  pending ones: what
                                               the phone app shows the user
    POST /v1/sign-requests/{id}/confirm    {otp}  the user confirms (wrong OTP -> 403)
    POST /v1/sign-requests/{id}/reject     {otp}  the user refuses
    POST /v1/sign-requests/{id}/cancel            the client gives up (timeout)

Status: ``pending`` → ``confirmed`` | ``rejected`` | ``expired`` | ``cancelled``.
Signature values are raw XMLDSig values (XMLDSig 1.1 §6.4): RSASSA-PKCS1-v1_5 for
``rsa-sha256``, ``r || s`` for ``ecdsa-sha256``.

The same requests in the shape of the Cloud Signature Consortium API v2 (``api="csc"``):
``credentials/info``, ``credentials/authorize`` with the hashes (one confirmation),
``credentials/authorizeCheck`` until the SAD is there, then ``signatures/signHash``.

No OTP, hash or signature is ever logged (logs name the request id and a count).
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import httpx
from cryptography import x509

from hocba.pki.signer import (
    ALGORITHM_ECDSA_SHA256,
    ALGORITHM_RSA_SHA256,
    ClosingSigner,
    SigningError,
    check_returned_values,
    verify_digest_signature,
)

__all__ = [
    "CSC_SHA256",
    "CSC_SIGN_ALGO",
    "RemoteSigner",
    "verify_digest_signature",
]

_log = logging.getLogger(__name__)

_SHA256_SIZE = 32


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


CSC_SHA256 = "2.16.840.1.101.3.4.2.1"
CSC_SIGN_ALGO = {"rsa-sha256": "1.2.840.113549.1.1.11", "ecdsa-sha256": "1.2.840.10045.4.3.2"}
"""CSC ``signAlgo`` OIDs of the XMLDSig algorithms (sha256WithRSAEncryption, ecdsa-with-SHA256)."""


# =============================================================================== client
class RemoteSigner(ClosingSigner):
    """A :class:`~hocba.pki.signer.Signer` backed by a remote hash-signing service.

    The certificate is fetched once, when the signer is created. Each
    :meth:`sign_digests` call is **one** sign request (one confirmation by the user), then
    polls until the user confirms, rejects, or time runs out. The caller gets every
    signature (each checked against the certificate) or a :class:`SigningError`, never
    part of a batch.

    Args:
        base_url: the service root, e.g. ``"http://127.0.0.1:8700"``.
        user_id: the signing account at the service.
        poll_interval: seconds between status polls.
        timeout: seconds to wait for the confirmation (from submission).
        confirm: hook called with the request id right after submission; tests and demos
            use it to play the user's part (the real user confirms on the phone).
        description: text shown to the user in the confirmation app.
        client: an ``httpx.Client`` to use (e.g. Starlette's ``TestClient``), with its own
            timeouts; by default one is created (HTTP calls bounded by the confirmation
            deadline) and closed with the signer.
    """

    certificate: x509.Certificate
    chain: list[x509.Certificate]
    algorithm: str

    def __init__(
        self,
        base_url: str,
        user_id: str,
        *,
        poll_interval: float = 0.2,
        timeout: float = 120,
        confirm: Callable[[str], None] | None = None,
        description: str = "Ký học bạ số",
        client: httpx.Client | None = None,
        api: Literal["v1", "csc"] = "v1",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.user_id = user_id
        self.api = api
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.description = description
        self._confirm = confirm
        self._own_client = client is None
        self._client = client or httpx.Client(base_url=self.base_url, timeout=min(timeout, 30))
        try:
            if api == "csc":
                data = self._call(
                    "POST",
                    "/csc/v2/credentials/info",
                    deadline=None,
                    json={"credentialID": user_id, "certificates": "chain"},
                )
                certs = [
                    x509.load_der_x509_certificate(_b64decode(c))
                    for c in data["cert"]["certificates"]
                ]
                self.certificate, self.chain = certs[0], certs[1:]
                by_oid = {oid: name for name, oid in CSC_SIGN_ALGO.items()}
                self.algorithm = by_oid.get(data["key"]["algo"][0], str(data["key"]["algo"][0]))
            else:
                data = self._call("GET", f"/v1/users/{user_id}/certificate", deadline=None)
                self.certificate = x509.load_der_x509_certificate(_b64decode(data["certificate"]))
                self.chain = [x509.load_der_x509_certificate(_b64decode(c)) for c in data["chain"]]
                self.algorithm = str(data["algorithm"])
        except (KeyError, IndexError, TypeError, ValueError, binascii.Error) as exc:
            self.close()
            raise SigningError("Dịch vụ ký số trả về chứng thư số không hợp lệ.") from exc
        except SigningError:
            self.close()
            raise
        if self.algorithm not in (ALGORITHM_RSA_SHA256, ALGORITHM_ECDSA_SHA256):
            self.close()
            raise SigningError(f"Dịch vụ ký số dùng thuật toán không hỗ trợ: {self.algorithm}.")

    def __repr__(self) -> str:
        return (
            f"RemoteSigner(base_url={self.base_url!r}, user_id={self.user_id!r}, "
            f"algorithm={self.algorithm!r})"
        )

    # ------------------------------------------------------------------ HTTP
    def _call(
        self,
        method: str,
        path: str,
        *,
        deadline: float | None,
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if deadline is not None and self._own_client:
            # never wait on one HTTP call past the confirmation deadline
            options["timeout"] = max(0.05, deadline - time.monotonic())
        try:
            response = self._client.request(method, path, json=json, **options)
        except httpx.TimeoutException:
            raise SigningError("Dịch vụ ký số không phản hồi kịp.") from None
        except httpx.HTTPError:
            raise SigningError(f"Không kết nối được dịch vụ ký số tại {self.base_url}.") from None
        if response.status_code == 404 and path.startswith(
            ("/v1/users/", "/csc/v2/credentials/info")
        ):
            raise SigningError(f"Dịch vụ ký số không có tài khoản {self.user_id!r}.")
        if response.is_error:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = None
            text = detail if isinstance(detail, str) else f"HTTP {response.status_code}"
            raise SigningError(f"Dịch vụ ký số từ chối yêu cầu: {text}")
        try:
            data = response.json()
        except ValueError:
            raise SigningError("Dịch vụ ký số trả lời không đúng định dạng.") from None
        if not isinstance(data, dict):
            raise SigningError("Dịch vụ ký số trả lời không đúng định dạng.")
        return data

    def _cancel(self, request_id: str) -> None:
        options: dict[str, Any] = {"timeout": 5} if self._own_client else {}
        try:
            self._client.post(f"/v1/sign-requests/{request_id}/cancel", **options)
        except httpx.HTTPError:
            _log.warning("Không huỷ được yêu cầu ký %s ở dịch vụ.", request_id)

    # ------------------------------------------------------------------ signing
    def sign_digests(self, digests: Sequence[bytes]) -> list[bytes]:
        """Submit all digests in one sign request, wait for the user, return every value.

        Raises :class:`SigningError` (Vietnamese) when the user rejects, the request
        expires, ``timeout`` passes (the request is then cancelled at the service), the
        service is unreachable, or a returned value does not verify with the certificate.
        """
        digests = [bytes(d) for d in digests]
        if any(len(d) != _SHA256_SIZE for d in digests):
            raise SigningError("Giá trị băm cần ký phải là SHA-256 (32 byte).")
        if not digests:
            return []
        deadline = time.monotonic() + self.timeout
        if self.api == "csc":
            return self._sign_csc(digests, deadline)
        state = self._confirmed(
            "/v1/sign-requests",
            {
                "user_id": self.user_id,
                "hashes": [_b64(d) for d in digests],
                "description": self.description,
                "algorithm": self.algorithm,
            },
            ("request_id", "Dịch vụ ký số không trả về mã yêu cầu ký."),
            lambda request_id: self._wait(request_id, deadline),
            deadline,
        )
        return self._signatures(state, digests)

    def _confirmed(
        self,
        path: str,
        body: dict[str, Any],
        id_field: tuple[str, str],
        wait: Callable[[str], dict[str, Any]],
        deadline: float,
    ) -> dict[str, Any]:
        """Submit the sign request (``POST path``), hand its id (``id_field``: the answer's
        key, the error when it is missing) to the confirmation hook, then ``wait(id)`` for
        the user. If anything goes wrong meanwhile (refusal, timeout, interruption) the
        request is cancelled at the service, so a late confirmation signs nothing."""
        created = self._call("POST", path, deadline=deadline, json=body)
        key, missing = id_field
        request_id = str(created.get(key, ""))
        if not request_id:
            raise SigningError(missing)
        _log.info("Đã gửi yêu cầu ký %s (%d giá trị băm).", request_id, len(body["hashes"]))
        try:
            if self._confirm is not None:
                self._confirm(request_id)
            return wait(request_id)
        except BaseException:
            self._cancel(request_id)
            raise

    def _sign_csc(self, digests: list[bytes], deadline: float) -> list[bytes]:
        """CSC v2: ``credentials/authorize`` with the hashes (one confirmation), poll
        ``credentials/authorizeCheck`` for the SAD, then ``signatures/signHash``."""
        hashes = [_b64(d) for d in digests]
        state = self._confirmed(
            "/csc/v2/credentials/authorize",
            {
                "credentialID": self.user_id,
                "numSignatures": len(hashes),
                "hashes": hashes,
                "hashAlgorithmOID": CSC_SHA256,
                "description": self.description,
            },
            ("transactionID", "Dịch vụ ký số không trả về mã giao dịch ký."),
            lambda transaction: self._wait_csc(transaction, deadline),
            deadline,
        )
        signed = self._call(
            "POST",
            "/csc/v2/signatures/signHash",
            deadline=deadline,
            json={
                "credentialID": self.user_id,
                "SAD": state["SAD"],
                "hashes": hashes,
                "hashAlgorithmOID": CSC_SHA256,
                "signAlgo": CSC_SIGN_ALGO[self.algorithm],
            },
        )
        return self._signatures(signed, digests)

    def _wait_csc(self, transaction: str, deadline: float) -> dict[str, Any]:
        while True:
            state = self._call(
                "POST",
                "/csc/v2/credentials/authorizeCheck",
                deadline=deadline,
                json={"credentialID": self.user_id, "transactionID": transaction},
            )
            if state.get("status") == "confirmed" and state.get("SAD"):
                return state
            self._pause(deadline)

    def _wait(self, request_id: str, deadline: float) -> dict[str, Any]:
        path = f"/v1/sign-requests/{request_id}"
        while True:
            state = self._call("GET", path, deadline=deadline)
            status = state.get("status")
            if status == "confirmed":
                return state
            if status == "rejected":
                raise SigningError("Người ký đã từ chối yêu cầu ký trên ứng dụng.")
            if status == "expired":
                raise SigningError("Yêu cầu ký đã hết hạn mà chưa được xác nhận.")
            if status == "cancelled":
                raise SigningError("Yêu cầu ký đã bị huỷ.")
            if status != "pending":
                raise SigningError(f"Dịch vụ ký số báo trạng thái lạ: {status!r}.")
            self._pause(deadline)

    def _pause(self, deadline: float) -> None:
        """Wait one poll interval, or raise once the confirmation deadline has passed."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SigningError(
                f"Quá {self.timeout:g} giây mà người ký chưa xác nhận; chưa học bạ nào "
                "được ký. Hãy gửi lại yêu cầu."
            )
        time.sleep(min(self.poll_interval, remaining))

    def _signatures(self, state: dict[str, Any], digests: list[bytes]) -> list[bytes]:
        try:
            values = [_b64decode(v) for v in state["signatures"]]
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise SigningError("Dịch vụ ký số trả về chữ ký không hợp lệ.") from None
        return check_returned_values(
            self.certificate, self.algorithm, digests, values, "dịch vụ ký số"
        )

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Close the HTTP client if this signer created it."""
        if self._own_client:
            self._client.close()
