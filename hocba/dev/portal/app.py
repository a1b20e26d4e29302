"""The bundled province portal: transactions 1-6 of HOCBA_SPEC §6, the way a Sở portal
would run them, for development, demos and tests (docs/PORTAL.md).

What a transaction goes through, in order (the first failure answers):

1. **Size**: a body over ``max_transaction_bytes`` (10 MiB) → HTTP 413, code ``07``.
2. **Envelope**: JSON with ``authenticationRequest`` (all eight fields, short strings),
   ``content`` and ``Signature``; ``type`` 1-6 and the endpoint's transaction → ``04``.
3. **Account**: user name and SHA-256 of the password, and the account may act for
   ``ma_don_vi`` → HTTP 401, code ``01`` (one message for all three cases).
4. **Transaction signature** over the canonical JSON (:mod:`hocba.portal.client`)
   → HTTP 403, code ``02``.
5. **Certificate**: it chains to the trust anchors, is valid now and allows signing; for
   transactions 1, 2, 5 and 6 it is the school's **approved** certificate (registered
   through 3, approved by an admin, or by ``auto_approve_certificates`` when its subject
   names the unit, ``serialNumber=MATRUONG:<ma_don_vi>``); for 4 it is a
   registered one; for 3 it is the one being registered → HTTP 403, code ``03``.
6. **Resend**: transactions 1, 3 and 5 are stored per (ma_don_vi, messageid) with their
   answer; the same messageid with the same content gets the stored answer (nothing is
   done twice), with other content HTTP 409, code ``05``.
7. The work, in one database transaction per message.

Transaction 1 verifies every record with :func:`hocba.xml.verify.verify_document`
(safe parse, XSD, the three signatures with chain and validity at signing time, signing
order, revocation, roles, the approved seal certificate, the lookup-code register) and
also checks that the record belongs to ``ma_don_vi`` and ``nam_hoc`` and appears once in
the message. Roles: the portal has no register of teachers and principals, so its
registry **trusts the school's declaration** — the GVCN / CBQL signer must be the person
the record names (``SO_CCCD_GIAO_VIEN_CHU_NHIEM``, ``SO_CCCD_GIAM_HIEU_KY_HOC_BA``, a
principal or vice-principal by ``CHUC_VU_GIAM_HIEU_KY_HOC_BA``), and the school vouches for
that declaration with its approved seal — but never for the seal itself: an organisation
certificate in GVCN / CBQL fails ``ROLE_*`` before any declaration is read (issue 16). The
seal's certificate must be approved for the school at the portal *now* (the portal does
not know when the Phòng approved it). A record is accepted when no check fails and
nothing is indeterminate except ``REVOCATION`` without a CRL source (unless
``require_revocation_check``). A record already accepted (same lookup code, same signed
content — the bytes may differ outside what is signed, e.g. a trailing newline, and the
answer says so) is answered as accepted again and not stored twice; the same lookup code
with other signed content is rejected.

Fault injection (:class:`PortalFaults`, constructor or ``PUT /admin/faults``): latency
(the answer held back after the work is done), HTTP 500 without doing anything (with a
probability or for the next N calls), dropped answers (the work is done and committed,
then the connection is closed before the answer: the client sees a network error), and
partial acceptance (every k-th record of a submission rejected with ``FAULT_INJECTED``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import pickle
import random
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, TypedDict, TypeVar, Unpack

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from lxml import etree
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine
from sqlalchemy.engine import Connection
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from hocba import freeze_start_up
from hocba.dev.portal.store import PortalStore
from hocba.pki.chain import build_chain, is_ca, valid_at
from hocba.portal.client import (
    AUTH_FIELDS,
    DEFAULT_PATHS,
    EnvelopeError,
    canonical_json,
    certificate_fingerprint,
    check_envelope_signature,
    mask_cccd,
    password_digest,
    serial_hex,
)
from hocba.portal.package import (
    DEFAULT_MAX_UNCOMPRESSED,
    MAX_TRANSACTION_BYTES,
    ContentError,
    decode_content,
    extract_parsed_records,
    parse_revocation_xml,
)
from hocba.xml.record import RecordXmlError, parse_record_xml_safely
from hocba.xml.verify import (
    Check,
    CheckStatus,
    CrlSource,
    IssuedRecordInfo,
    SlotRoles,
    VerificationReport,
    first_texts,
    verify_document,
)

__all__ = [
    "GENERIC_PATH",
    "PortalFactory",
    "PortalFaults",
    "PortalUser",
    "ProvincePortal",
    "ResponseCode",
    "ServedPortal",
    "create_portal_app",
    "default_workers",
    "serve",
    "serve_in_processes",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

GENERIC_PATH = "/hocba/v1/giao-dich"
"""One endpoint for every transaction, dispatched by ``authenticationRequest.type``."""


class ResponseCode:
    """``ResponseCode`` values of the bundled portal and their HTTP status."""

    OK = "00"
    AUTHENTICATION = "01"
    SIGNATURE = "02"
    CERTIFICATE = "03"
    INVALID = "04"
    CONFLICT = "05"
    NOT_FOUND = "06"
    TOO_LARGE = "07"
    INTERNAL = "99"

    DESCRIPTION = {
        OK: "Thành công",
        AUTHENTICATION: "Xác thực tài khoản không thành công",
        SIGNATURE: "Chữ ký số của giao dịch không hợp lệ",
        CERTIFICATE: "Chứng thư số chưa được đăng ký hoặc chưa được phê duyệt",
        INVALID: "Dữ liệu giao dịch không hợp lệ",
        CONFLICT: "messageid đã được dùng cho một giao dịch khác",
        NOT_FOUND: "Không tìm thấy dữ liệu được hỏi",
        TOO_LARGE: "Giao dịch vượt quá dung lượng cho phép",
        INTERNAL: "Lỗi hệ thống của cổng tiếp nhận",
    }
    HTTP = {
        OK: 200,
        AUTHENTICATION: 401,
        SIGNATURE: 403,
        CERTIFICATE: 403,
        INVALID: 422,
        CONFLICT: 409,
        NOT_FOUND: 404,
        TOO_LARGE: 413,
        INTERNAL: 500,
    }


SIGNATURE_KINDS = ("REMOTE_SIGNING", "USB_TOKEN")
ISSUERS = ("VNPT", "BKAV", "VIETTEL", "BAN_CO_YEU")
_MAX_FIELD = 200  # characters of one authenticationRequest field
_MAX_CHAIN_DEPTH = 6  # certificates tried against the trust anchors: the leaf and 5 CAs
_TOLERATED_INDETERMINATE = frozenset({"REVOCATION"})
_VERIFY_CHUNK = 50  # records parsed, looked up and verified together (memory: ~50 trees)
_FIELD_OF_CHECK = {
    "SAFE_PARSE": "HOC_BA",
    "SCHEMA": "HOC_BA",
    "SIGNING_ORDER": "DANH_SACH_THONG_TIN_KY",
    "REVOCATION": "DANH_SACH_THONG_TIN_KY",
    "ROLE_GVCN": "SO_CCCD_GIAO_VIEN_CHU_NHIEM",
    "ROLE_CBQL": "SO_CCCD_GIAM_HIEU_KY_HOC_BA",
    "SCHOOL_CERTIFICATE": "DANH_SACH_THONG_TIN_KY/KY_PHAT_HANH",
    "REGISTRY_MATCH": "MA_TRA_CUU_UUID",
}


# ============================================================================ config
@dataclass(frozen=True)
class PortalUser:
    """An account of the portal: SHA-256 hex of its password, and the units
    (``ma_don_vi``) it may act for (``None``: any)."""

    password_sha256: str = field(repr=False)
    units: frozenset[str] | None = None

    @classmethod
    def with_password(cls, password: str, units: Sequence[str] | None = None) -> PortalUser:
        return cls(password_digest(password), None if units is None else frozenset(units))


@dataclass
class PortalFaults:
    """Fault injection switches (all off by default).

    ``latency``: seconds the answer is held back *after* the work is done (a slow portal;
    beyond the client's timeout, the client retries a transaction that was in fact
    processed); ``latency_next``: only for the next N transactions (0: every one).
    ``error_rate`` /
    ``fail_next``: answer HTTP 500 without doing anything, with that probability / for the
    next N transactions. ``drop_rate`` / ``drop_next``: do the work, then close the
    connection without an answer. ``reject_every``: reject every k-th record of a
    submission (``FAULT_INJECTED``). ``transactions``: the transaction codes the switches
    apply to (empty: all). ``seed``: for reproducible probabilities.
    """

    latency: float = 0.0
    latency_next: int = 0
    error_rate: float = 0.0
    fail_next: int = 0
    drop_rate: float = 0.0
    drop_next: int = 0
    reject_every: int = 0
    transactions: tuple[int, ...] = ()
    seed: int | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["transactions"] = list(self.transactions)
        return data


def _faults_from(stored: Mapping[str, Any]) -> PortalFaults:
    data = dict(stored)
    data["transactions"] = tuple(data.get("transactions", ()))
    return PortalFaults(**data)


def _draw(seed: int | None, n: int) -> float:
    """The n-th random draw of the switches: reproducible from ``seed`` whichever process
    makes it (each draw is counted in the store)."""
    return random.Random(f"{seed}:{n}").random() if seed is not None else random.random()


def _decide(
    stored: dict[str, Any], draws: int, code: int | None
) -> tuple[dict[str, Any], int, tuple[float, bool, bool]]:
    """(switches after this transaction, draws, (latency, fail now, drop the answer))."""
    f = _faults_from(stored)
    if f.transactions and code not in f.transactions:
        return stored, draws, (0.0, False, False)
    latency = f.latency
    if f.latency_next > 0:
        f.latency_next -= 1
        if f.latency_next == 0:
            f.latency = 0.0
    fail, draws = _trip(f, "fail_next", f.error_rate, draws)
    drop = False
    if not fail:
        drop, draws = _trip(f, "drop_next", f.drop_rate, draws)
    return f.to_json(), draws, (latency, fail, drop)


def _trip(f: PortalFaults, countdown: str, rate: float, draws: int) -> tuple[bool, int]:
    """One switch for this transaction: its countdown (``fail_next`` / ``drop_next``) first,
    consumed here, else its probability (a numbered draw); (tripped, draws)."""
    left: int = getattr(f, countdown)
    if left > 0:
        setattr(f, countdown, left - 1)
        return True, draws
    if rate > 0:
        draws += 1
        return _draw(f.seed, draws) < rate, draws
    return False, draws


class _FaultSwitch:
    """The live fault settings, shared by the middleware and the handlers — and by every
    process serving the portal: they live in the store (``fault_switch``), so a switch set
    through one process applies to all, and a countdown (``fail_next``, ``drop_next``,
    ``latency_next``) is consumed once in all (under the row's lock)."""

    def __init__(self, store: PortalStore, faults: PortalFaults | None) -> None:
        self.store = store
        if faults is not None:
            self.set(faults)

    @property
    def faults(self) -> PortalFaults:
        """The switches now."""
        return _faults_from(self.store.faults())

    def set(self, faults: PortalFaults) -> None:
        self.store.set_faults(faults.to_json())

    def decide(self, code: int | None) -> tuple[float, bool, bool]:
        """(latency, fail now, drop the answer) for one transaction."""
        f = self.faults
        if f.transactions and code not in f.transactions:
            return 0.0, False, False
        if not (f.latency_next or f.fail_next or f.drop_next or f.error_rate or f.drop_rate):
            return f.latency, False, False  # nothing to count down or draw: no lock
        return self.store.update_faults(lambda stored, draws: _decide(stored, draws, code))

    def reject_every(self, code: int) -> int:
        f = self.faults
        if f.transactions and code not in f.transactions:
            return 0
        return f.reject_every


# ============================================================================ errors
class _Refusal(Exception):
    def __init__(self, code: str, description: str, error: str = "") -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.error = error or code


@dataclass
class _Envelope:
    data: dict[str, Any]
    auth: dict[str, str]
    content: Any
    code: int

    @property
    def messageid(self) -> str:
        return self.auth["messageid"]

    @property
    def ma_don_vi(self) -> str:
        return self.auth["ma_don_vi"]

    @property
    def nam_hoc(self) -> str:
        return self.auth["nam_hoc"]


def _answer(
    message_id: str, code: str, description: str = "", error: str = "", **data: Any
) -> dict[str, Any]:
    return {
        "MessageId": message_id,
        "Error": error if code != ResponseCode.OK else "",
        "ErrorDescription": description if code != ResponseCode.OK else "",
        "ResponseCode": code,
        "ResponseDescription": ResponseCode.DESCRIPTION[code],
        **data,
    }


def _content_sha256(content: Any) -> str:
    return hashlib.sha256(canonical_json(content)).hexdigest()


def _school_ids(certificate: x509.Certificate) -> set[str]:
    """``MATRUONG:<code>`` values in the subject's serialNumber / UID."""
    found = set()
    for oid in (NameOID.SERIAL_NUMBER, NameOID.USER_ID):
        for attribute in certificate.subject.get_attributes_for_oid(oid):
            value = str(attribute.value).strip()
            if value.upper().startswith("MATRUONG:"):
                found.add(value.split(":", 1)[1].strip())
    return found


def _may_sign(certificate: x509.Certificate) -> bool:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return usage.digital_signature or usage.content_commitment


# ============================================================================ registry
class _DeclaredRegistry(SlotRoles):
    """The portal-side :class:`~hocba.xml.verify.Registry` of one record: roles as the
    school declares them in the record (which slot needs which role is
    :class:`~hocba.xml.verify.SlotRoles`'), the school's approved certificates, and the
    portal's register of accepted records."""

    def __init__(
        self,
        school_code: str,
        approved: set[str],
        fields: Mapping[str, str | None],
        known: IssuedRecordInfo | None,
    ) -> None:
        self.school_code = school_code
        self.approved = approved
        self.fields = fields
        self.known = known

    def was_homeroom_teacher(
        self, cccd: str, school_code: str, school_year: str, class_name: str, at: dt.datetime
    ) -> bool | None:
        return school_code == self.school_code and cccd == self.fields.get(
            "SO_CCCD_GIAO_VIEN_CHU_NHIEM"
        )

    def was_school_manager(self, cccd: str, school_code: str, at: dt.datetime) -> bool | None:
        if school_code != self.school_code:
            return False
        title = (self.fields.get("CHUC_VU_GIAM_HIEU_KY_HOC_BA") or "").lower()
        return cccd == self.fields.get("SO_CCCD_GIAM_HIEU_KY_HOC_BA") and (
            not title or "hiệu trưởng" in title
        )

    def school_certificate_approved(
        self, school_code: str, cert_sha256_hex: str, at: dt.datetime
    ) -> bool | None:
        return school_code == self.school_code and cert_sha256_hex in self.approved

    def issued_record(self, lookup_code: str) -> IssuedRecordInfo | None:
        return self.known


_RECORD_FIELDS = (
    "MA_TRA_CUU_UUID",
    "MA_TRUONG",
    "TEN_NAM_HOC",
    "MA_HOC_SINH",
    "HO_VA_TEN",
    "SO_CCCD",
    "SO_CCCD_GIAO_VIEN_CHU_NHIEM",
    "SO_CCCD_GIAM_HIEU_KY_HOC_BA",
    "CHUC_VU_GIAM_HIEU_KY_HOC_BA",
)


def _record_fields(
    data: bytes, root: etree._Element | None = None
) -> tuple[dict[str, str | None], etree._Element | None]:
    """The fields the portal needs, as written in the record (None when unreadable), and
    the safely parsed tree, which verification then reads instead of parsing again.
    ``root``: what ``parse_record_xml_safely(data)`` returned to the caller (the list's
    reader, :func:`~hocba.portal.package.extract_parsed_records`), else it is called here."""
    if root is None:
        try:
            root = parse_record_xml_safely(data)
        except RecordXmlError:
            return dict.fromkeys(_RECORD_FIELDS), None
    return first_texts(root, _RECORD_FIELDS), root


# ============================================================================ the portal
class PortalOptions(TypedDict, total=False):
    """The portal's switches, as :func:`create_portal_app` passes them on to
    :class:`ProvincePortal` (whose keywords give the defaults).

    ``auto_approve_certificates`` / ``auto_accept_revocations``: decide at once, without
    an admin (demos). ``faults``: the fault switches set at start-up, in the store every
    process reads (absent: all off; ``None``: kept as stored — a process joining others
    that serve the same store). ``crl_source``: CRLs for the
    REVOCATION check; ``require_revocation_check``: an unanswered revocation check refuses
    instead of being tolerated. ``max_transaction_bytes`` / ``max_uncompressed``: the size
    limits of a transaction and of what it unpacks to."""

    auto_approve_certificates: bool
    auto_accept_revocations: bool
    faults: PortalFaults | None
    crl_source: CrlSource | None
    require_revocation_check: bool
    max_transaction_bytes: int
    max_uncompressed: int


class ProvincePortal:
    """The portal's logic, independent of HTTP: :meth:`handle` takes a request body and
    returns (HTTP status, answer). Reachable from the app as ``app.state.portal``."""

    def __init__(
        self,
        store: PortalStore,
        trusted_roots: Sequence[x509.Certificate],
        users: Mapping[str, str | PortalUser],
        *,
        auto_approve_certificates: bool = False,
        auto_accept_revocations: bool = False,
        faults: PortalFaults | None = None,
        crl_source: CrlSource | None = None,
        require_revocation_check: bool = False,
        max_transaction_bytes: int = MAX_TRANSACTION_BYTES,
        max_uncompressed: int = DEFAULT_MAX_UNCOMPRESSED,
    ) -> None:
        self.store = store
        self.trusted_roots = list(trusted_roots)
        self.users = {
            name: user if isinstance(user, PortalUser) else PortalUser.with_password(user)
            for name, user in users.items()
        }
        self.auto_approve_certificates = auto_approve_certificates
        self.auto_accept_revocations = auto_accept_revocations
        self.faults = _FaultSwitch(store, faults)
        self.crl_source = crl_source
        self.tolerated = frozenset() if require_revocation_check else _TOLERATED_INDETERMINATE
        self.max_transaction_bytes = max_transaction_bytes
        self.max_uncompressed = max_uncompressed
        self._trusted_cache: dict[tuple[str, ...], bool] = {}
        self._handlers: dict[int, Callable[[_Envelope, x509.Certificate], dict[str, Any]]] = {
            1: self._submit,
            2: self._query_submission,
            3: self._register_certificate,
            4: self._query_registration,
            5: self._request_revocation,
            6: self._query_revocation,
        }

    # ------------------------------------------------------------------ entry point
    def handle(self, body: bytes, expected: int | None = None) -> tuple[int, dict[str, Any]]:
        """Process one transaction body; ``expected`` is the endpoint's transaction code
        (``None`` for the generic endpoint)."""
        message_id = ""
        try:
            envelope = self._parse(body, expected)
            message_id = envelope.messageid
            self._authenticate(envelope)
            try:
                certificate, chain = check_envelope_signature(envelope.data)
            except EnvelopeError as exc:
                raise _Refusal(ResponseCode.SIGNATURE, exc.message_vi) from None
            if not self._trusted(certificate, chain):
                raise _Refusal(
                    ResponseCode.CERTIFICATE,
                    "Chứng thư số ký giao dịch không do CA tin cậy cấp, đã hết hạn hoặc không "
                    "dùng để ký.",
                )
            answer = self._handlers[envelope.code](envelope, certificate)
            return 200, answer
        except _Refusal as refusal:
            log.warning(
                "Từ chối giao dịch (messageid %s): %s — %s",
                message_id or "-",
                refusal.code,
                refusal.description,
            )
            return ResponseCode.HTTP[refusal.code], _answer(
                message_id, refusal.code, refusal.description, refusal.error
            )
        except Exception:
            log.exception("Lỗi xử lý giao dịch (messageid %s)", message_id or "-")
            return 500, _answer(
                message_id, ResponseCode.INTERNAL, "Lỗi hệ thống, hãy gửi lại sau.", "INTERNAL"
            )

    # ------------------------------------------------------------------ checks
    def _parse(self, body: bytes, expected: int | None) -> _Envelope:
        if len(body) > self.max_transaction_bytes:
            raise _Refusal(
                ResponseCode.TOO_LARGE,
                f"Giao dịch dài {len(body):,} byte, vượt {self.max_transaction_bytes:,} byte.",
            )
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise _Refusal(ResponseCode.INVALID, "Giao dịch không phải JSON hợp lệ.") from None
        if not isinstance(data, dict) or not isinstance(data.get("authenticationRequest"), dict):
            raise _Refusal(ResponseCode.INVALID, "Giao dịch thiếu authenticationRequest.")
        raw_auth = data["authenticationRequest"]
        auth: dict[str, str] = {}
        for name in AUTH_FIELDS:
            value = raw_auth.get(name, "")
            if not isinstance(value, str) or len(value) > _MAX_FIELD:
                raise _Refusal(ResponseCode.INVALID, f"Trường {name} không hợp lệ.")
            auth[name] = value
        for name in ("user_name", "password", "ma_don_vi", "messageid", "type"):
            if not auth[name].strip():
                raise _Refusal(ResponseCode.INVALID, f"Thiếu trường {name}.")
        if auth["type"] not in ("1", "2", "3", "4", "5", "6"):
            raise _Refusal(ResponseCode.INVALID, f"Loại giao dịch không hỗ trợ: {auth['type']!r}.")
        code = int(auth["type"])
        if expected is not None and code != expected:
            raise _Refusal(
                ResponseCode.INVALID,
                f"Địa chỉ này nhận giao dịch {expected}, không phải giao dịch {code}.",
            )
        if "content" not in data:
            raise _Refusal(ResponseCode.INVALID, "Giao dịch thiếu content.")
        return _Envelope(data=data, auth=auth, content=data["content"], code=code)

    def _authenticate(self, envelope: _Envelope) -> None:
        user = self.users.get(envelope.auth["user_name"])
        given = envelope.auth["password"].strip().lower()
        expected = user.password_sha256 if user else "0" * 64
        password_ok = hmac.compare_digest(expected.encode(), given.encode())
        if user is None or not password_ok:
            raise _Refusal(ResponseCode.AUTHENTICATION, "Sai tên đăng nhập hoặc mật khẩu.")
        if user.units is not None and envelope.ma_don_vi not in user.units:
            raise _Refusal(
                ResponseCode.AUTHENTICATION,
                f"Tài khoản không được gửi dữ liệu cho đơn vị {envelope.ma_don_vi}.",
            )

    def _trusted(self, certificate: x509.Certificate, chain: Sequence[x509.Certificate]) -> bool:
        """Chains to a trust anchor, every certificate valid now, allowed to sign."""
        now = dt.datetime.now(dt.UTC)
        key = tuple(certificate_fingerprint(c) for c in (certificate, *chain))
        cached = self._trusted_cache.get(key)
        if cached is not None and valid_at(certificate, now):
            return cached
        ok = valid_at(certificate, now) and _may_sign(certificate)
        if ok:
            # Intermediates must be valid now, and so must the root the path ends at.
            usable = [c for c in chain if is_ca(c) and valid_at(c, now)]
            path = build_chain(certificate, usable, self.trusted_roots, _MAX_CHAIN_DEPTH)
            ok = path is not None and valid_at(path[-1], now)
        if len(self._trusted_cache) > 1024:
            self._trusted_cache.clear()
        self._trusted_cache[key] = ok
        return ok

    def _require_approved(self, envelope: _Envelope, certificate: x509.Certificate) -> set[str]:
        approved = self.store.approved_fingerprints(envelope.ma_don_vi)
        if certificate_fingerprint(certificate) not in approved:
            raise _Refusal(
                ResponseCode.CERTIFICATE,
                f"Chứng thư số ký giao dịch (số hiệu {serial_hex(certificate)}) chưa được phê "
                f"duyệt cho đơn vị {envelope.ma_don_vi}.",
            )
        return approved

    def _replay(self, envelope: _Envelope, content_sha256: str) -> dict[str, Any] | None:
        """The stored answer when this messageid was processed before."""
        stored = self.store.stored_message(envelope.ma_don_vi, envelope.messageid)
        if stored is None:
            return None
        if stored.transaction != envelope.code or stored.content_sha256 != content_sha256:
            raise _Refusal(
                ResponseCode.CONFLICT,
                f"messageid {envelope.messageid} đã được dùng cho một giao dịch khác; hãy dùng "
                "messageid mới.",
            )
        log.info(
            "Giao dịch %d messageid %s đã xử lý trước đó: trả lại kết quả cũ.",
            envelope.code,
            envelope.messageid,
        )
        return stored.answer

    def _once(
        self,
        envelope: _Envelope,
        content_sha256: str,
        write: Callable[[Connection, int], dict[str, Any]],
        logged: Callable[[dict[str, Any]], tuple[Any, ...]],
    ) -> dict[str, Any]:
        """The transaction's effect, once per messageid: claims the messageid, runs
        ``write(conn, message_pk)`` (which returns the answer) and stores its answer, all
        in one database transaction, then logs ``logged(answer)`` (message and its
        arguments). The stored answer, unlogged, when the same messageid was processed
        meanwhile (concurrently)."""
        with self.store.engine.begin() as conn:
            message_pk = self.store.claim_message(
                conn,
                ma_don_vi=envelope.ma_don_vi,
                messageid=envelope.messageid,
                transaction=envelope.code,
                user_name=envelope.auth["user_name"],
                content_sha256=content_sha256,
            )
            answer = None
            if message_pk is not None:
                answer = write(conn, message_pk)
                self.store.set_answer(conn, message_pk, answer)
        if answer is not None:  # committed
            log.info(*logged(answer))
            return answer
        replay = self._replay(envelope, content_sha256)
        assert replay is not None
        return replay

    def _content_dict(self, envelope: _Envelope, *required: str) -> dict[str, str]:
        content = envelope.content
        if not isinstance(content, dict):
            raise _Refusal(ResponseCode.INVALID, "content của giao dịch này phải là đối tượng JSON")
        values = {}
        for name in required:
            value = content.get(name)
            if not isinstance(value, str) or not value.strip() or len(value) > _MAX_FIELD:
                raise _Refusal(ResponseCode.INVALID, f"content thiếu hoặc sai trường {name}.")
            values[name] = value.strip()
        return values

    def _parsed(self, envelope: _Envelope, parse: Callable[[bytes, int], T]) -> T:
        """The content (Base64 of gzip'ed XML) decoded, then read by ``parse``; a refusal
        (``CONTENT_INVALID``) when either fails."""
        if not isinstance(envelope.content, str):
            raise _Refusal(ResponseCode.INVALID, "content phải là chuỗi Base64 của XML nén gzip.")
        try:
            xml = decode_content(envelope.content, self.max_uncompressed)
            return parse(xml, self.max_uncompressed)
        except ContentError as exc:
            raise _Refusal(ResponseCode.INVALID, exc.message_vi, "CONTENT_INVALID") from None

    # ------------------------------------------------------------------ transaction 1
    def _submit(self, envelope: _Envelope, certificate: x509.Certificate) -> dict[str, Any]:
        approved = self._require_approved(envelope, certificate)
        content_sha = _content_sha256(envelope.content)
        replay = self._replay(envelope, content_sha)
        if replay is not None:
            return replay
        records = self._parsed(envelope, extract_parsed_records)
        if not records:
            raise _Refusal(ResponseCode.INVALID, "Danh sách học bạ không có học bạ nào.")
        results, rows = self._verify_records(envelope, records, approved)

        def write(conn: Connection, message_pk: int) -> dict[str, Any]:
            for row in rows.values():
                row["message_id"] = message_pk
            inserted = self.store.insert_records(conn, list(rows.values()))
            for position, row in rows.items():
                if row["ma_tra_cuu_uuid"] not in inserted:  # stored meanwhile elsewhere
                    self._stored_elsewhere(results[position - 1], row["xml_sha256"])
            self.store.insert_results(conn, message_pk, results)
            accepted = sum(1 for r in results if r["trang_thai"] == 1)
            return _answer(
                envelope.messageid,
                ResponseCode.OK,
                so_hoc_ba=len(results),
                so_tiep_nhan=accepted,
                so_tu_choi=len(results) - accepted,
            )

        return self._once(
            envelope,
            content_sha,
            write,
            lambda a: (
                "Giao dịch 1 messageid %s của đơn vị %s: %d học bạ, %d tiếp nhận, %d từ chối.",
                envelope.messageid,
                envelope.ma_don_vi,
                len(results),
                a["so_tiep_nhan"],
                a["so_tu_choi"],
            ),
        )

    def _stored_elsewhere(self, result: dict[str, Any], sha: str) -> None:
        known = self.store.known_record(result["ma_tra_cuu_uuid"])
        if known is not None and known.xml_sha256 == sha and known.state == "accepted":
            result["error_description"] = (
                f"Học bạ đã được tiếp nhận trong giao dịch {known.messageid}; không lưu lại."
            )
            return
        result.update(
            trang_thai=0,
            error="REGISTRY_MATCH",
            error_field_title="MA_TRA_CUU_UUID",
            error_description="Mã tra cứu đã được dùng cho một học bạ khác.",
        )

    def _verify_records(
        self,
        envelope: _Envelope,
        records: list[tuple[bytes, etree._Element | None]],
        approved: set[str],
    ) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
        """Per-record results (in order) and the rows to store, by 1-based position.
        ``records``: each record's bytes and, when the list's reader parsed them, their
        tree (:func:`~hocba.portal.package.extract_parsed_records`); a chunk's trees are
        let go once it is verified."""
        results: list[dict[str, Any]] = []
        rows: dict[int, dict[str, Any]] = {}
        seen: set[str] = set()
        reject_every = self.faults.reject_every(1)
        now = dt.datetime.now(dt.UTC)
        # each record is parsed once (by the list's reader, or here: its fields, then
        # every check read the same tree). Records parsed here go by chunks, a chunk's
        # trees dropped before the next chunk is parsed; when the reader parsed them all,
        # they are alive already: one chunk, one query for the known lookup codes
        whole = all(tree is not None for _, tree in records)
        step = max(len(records), 1) if whole else _VERIFY_CHUNK
        for start in range(0, len(records), step):
            batch = records[start : start + step]
            records[start : start + step] = [(data, None) for data, _ in batch]
            chunk = [data for data, _ in batch]
            parsed = [_record_fields(data, tree) for data, tree in batch]
            del batch
            known_codes = self.store.known_records(
                [f["MA_TRA_CUU_UUID"] for f, _ in parsed if f["MA_TRA_CUU_UUID"]]
            )
            for position, (data, (fields, tree)) in enumerate(
                zip(chunk, parsed, strict=True), start=start + 1
            ):
                code = fields["MA_TRA_CUU_UUID"]
                result: dict[str, Any] = {
                    "ma_hoc_sinh": fields["MA_HOC_SINH"],
                    "ten_hoc_sinh": fields["HO_VA_TEN"],
                    "so_cccd": fields["SO_CCCD"],
                    "ma_tra_cuu_uuid": code,
                    "trang_thai": 0,
                    "error": None,
                    "error_field_title": None,
                    "error_description": None,
                }
                results.append(result)
                problem = self._precheck(envelope, fields, seen)
                known = known_codes.get(code) if code and problem is None else None
                sha = hashlib.sha256(data).hexdigest()
                if problem is None:
                    info = None
                    if known is not None:
                        same_school = known.ma_don_vi == envelope.ma_don_vi
                        resent_otherwise = same_school and known.xml_sha256 != sha
                        info = IssuedRecordInfo(
                            xml_sha256=known.xml_sha256 if same_school else "",
                            state=known.state,
                            # only for a resend in other bytes: is it the same signed record?
                            xml=self.store.record_xml(known.ma_tra_cuu_uuid)
                            if resent_otherwise
                            else None,
                        )
                    registry = _DeclaredRegistry(envelope.ma_don_vi, approved, fields, info)
                    report = verify_document(
                        data,
                        trusted_roots=self.trusted_roots,
                        registry=registry,
                        crl_source=self.crl_source,
                        now=now,
                        parsed=tree,  # read once: the fields above and every check
                    )
                    problem = self._failure(report)
                if problem is None and reject_every and position % reject_every == 0:
                    problem = (
                        "FAULT_INJECTED",
                        "HOC_BA",
                        "Cổng tiếp nhận từ chối học bạ này (mô phỏng lỗi tiếp nhận một phần).",
                    )
                if code:
                    seen.add(code)
                if problem is not None:
                    error, field_title, description = problem
                    result.update(
                        error=error, error_field_title=field_title, error_description=description
                    )
                    log.info(
                        "Từ chối học bạ %s (mã HS %s, CCCD %s) trong messageid %s: %s.",
                        code or "-",
                        fields["MA_HOC_SINH"] or "-",
                        mask_cccd(fields["SO_CCCD"]),
                        envelope.messageid,
                        error,
                    )
                    continue
                result["trang_thai"] = 1
                assert code is not None
                if known is not None:  # the same record was accepted before: not stored twice
                    result["error_description"] = (
                        f"Học bạ đã được tiếp nhận trong giao dịch {known.messageid}; "
                        "không lưu lại."
                    )
                    if known.xml_sha256 != sha:
                        result["error_description"] += (
                            " Tệp gửi lại không trùng từng byte với bản đã tiếp nhận, nhưng "
                            "dữ liệu được ký và các chữ ký trùng khớp."
                        )
                    continue
                rows[position] = {
                    "ma_tra_cuu_uuid": code,
                    "ma_don_vi": envelope.ma_don_vi,
                    "nam_hoc": fields["TEN_NAM_HOC"] or envelope.nam_hoc,
                    "ma_hoc_sinh": fields["MA_HOC_SINH"],
                    "ten_hoc_sinh": fields["HO_VA_TEN"],
                    "so_cccd": fields["SO_CCCD"],
                    "xml": data,
                    "xml_sha256": sha,
                    "accepted_at": now,
                }
        return results, rows

    @staticmethod
    def _precheck(
        envelope: _Envelope, fields: Mapping[str, str | None], seen: set[str]
    ) -> tuple[str, str, str] | None:
        if fields["MA_TRUONG"] is not None and fields["MA_TRUONG"] != envelope.ma_don_vi:
            return (
                "SCHOOL_MISMATCH",
                "MA_TRUONG",
                f"Học bạ của trường {fields['MA_TRUONG']}, không phải của đơn vị gửi "
                f"{envelope.ma_don_vi}.",
            )
        if envelope.nam_hoc and fields["TEN_NAM_HOC"] not in (None, envelope.nam_hoc):
            return (
                "YEAR_MISMATCH",
                "TEN_NAM_HOC",
                f"Học bạ năm học {fields['TEN_NAM_HOC']}, giao dịch gửi cho năm học "
                f"{envelope.nam_hoc}.",
            )
        code = fields["MA_TRA_CUU_UUID"]
        if code and code in seen:
            return (
                "DUPLICATE_IN_MESSAGE",
                "MA_TRA_CUU_UUID",
                "Học bạ có cùng mã tra cứu xuất hiện nhiều lần trong giao dịch.",
            )
        return None

    def _failure(self, report: VerificationReport) -> tuple[str, str, str] | None:
        """(error, error_field_title, error_description) of a record that is refused."""
        failed = [c for c in report.checks if c.status == CheckStatus.FAIL]
        if not failed:
            failed = [
                c
                for c in report.checks
                if c.status == CheckStatus.INDETERMINATE and c.code not in self.tolerated
            ]
        if not failed:
            return None
        first = failed[0]
        description = "; ".join(c.message_vi for c in failed[:4])
        return str(first.code), _field_title(first), description[:2000]

    # ------------------------------------------------------------------ transaction 2
    def _query_submission(
        self, envelope: _Envelope, certificate: x509.Certificate
    ) -> dict[str, Any]:
        self._require_approved(envelope, certificate)
        target = self._content_dict(envelope, "messageid")["messageid"]
        stored = self.store.stored_message(envelope.ma_don_vi, target)
        if stored is None or stored.transaction != 1:
            raise _Refusal(
                ResponseCode.NOT_FOUND,
                f"Cổng chưa nhận giao dịch gửi học bạ có messageid {target}.",
            )
        results = self.store.results(stored.id)
        accepted = sum(1 for r in results if r["trang_thai"] == 1)
        return _answer(
            envelope.messageid,
            ResponseCode.OK,
            messageid=target,
            so_hoc_ba=len(results),
            so_tiep_nhan=accepted,
            so_tu_choi=len(results) - accepted,
            ket_qua=results,
        )

    # ------------------------------------------------------------------ transactions 3-4
    def _registration_answer(self, envelope: _Envelope, row: Mapping[str, Any]) -> dict[str, Any]:
        return _answer(
            envelope.messageid,
            ResponseCode.OK,
            ma_dang_ky=row["ma_dang_ky"],
            serial_number=row["serial_number"],
            trang_thai_phe_duyet=1 if row["status"] == "approved" else 0,
            trang_thai=row["status"],
        )

    def _register_certificate(
        self, envelope: _Envelope, certificate: x509.Certificate
    ) -> dict[str, Any]:
        values = self._content_dict(
            envelope, "serial_number", "ngay_hieu_luc", "ma_kieu_chu_ky", "nha_phat_hanh"
        )
        content_sha = _content_sha256(envelope.content)
        replay = self._replay(envelope, content_sha)
        if replay is not None:
            return replay
        serial = serial_hex(certificate)
        given = values["serial_number"].replace(":", "").replace(" ", "").upper().lstrip("0")
        if given != serial.lstrip("0"):
            raise _Refusal(
                ResponseCode.INVALID,
                f"serial_number {values['serial_number']} không phải số hiệu của chứng thư số "
                f"ký giao dịch ({serial}).",
            )
        if values["ma_kieu_chu_ky"] not in SIGNATURE_KINDS:
            raise _Refusal(
                ResponseCode.INVALID,
                f"ma_kieu_chu_ky phải là một trong {', '.join(SIGNATURE_KINDS)}.",
            )
        if values["nha_phat_hanh"] not in ISSUERS:
            raise _Refusal(
                ResponseCode.INVALID, f"nha_phat_hanh phải là một trong {', '.join(ISSUERS)}."
            )
        try:
            dt.date.fromisoformat(values["ngay_hieu_luc"][:10])
        except ValueError:
            raise _Refusal(ResponseCode.INVALID, "ngay_hieu_luc phải có dạng YYYY-MM-DD.") from None
        schools = _school_ids(certificate)
        if schools and envelope.ma_don_vi not in schools:
            raise _Refusal(
                ResponseCode.CERTIFICATE,
                f"Chứng thư số cấp cho trường {', '.join(sorted(schools))}, không phải đơn vị "
                f"{envelope.ma_don_vi}.",
            )

        def write(conn: Connection, message_pk: int) -> dict[str, Any]:
            row = self.store.register_certificate(
                conn,
                ma_don_vi=envelope.ma_don_vi,
                serial_number=serial,
                sha256=certificate_fingerprint(certificate),
                subject=certificate.subject.rfc4514_string(),
                certificate=certificate.public_bytes(serialization.Encoding.DER),
                ngay_hieu_luc=values["ngay_hieu_luc"],
                ma_kieu_chu_ky=values["ma_kieu_chu_ky"],
                nha_phat_hanh=values["nha_phat_hanh"],
                # auto-approval only for a certificate that names this very unit: a
                # person's certificate from the same CA stays pending for the Sở
                approve=self.auto_approve_certificates and envelope.ma_don_vi in schools,
            )
            return self._registration_answer(envelope, row)

        return self._once(
            envelope,
            content_sha,
            write,
            lambda a: (
                "Đơn vị %s đăng ký chứng thư số %s: %s.",
                envelope.ma_don_vi,
                serial,
                a["trang_thai"],
            ),
        )

    def _query_registration(
        self, envelope: _Envelope, certificate: x509.Certificate
    ) -> dict[str, Any]:
        if (
            self.store.registration(envelope.ma_don_vi, sha256=certificate_fingerprint(certificate))
            is None
        ):
            raise _Refusal(
                ResponseCode.CERTIFICATE,
                f"Chứng thư số ký giao dịch chưa được đăng ký cho đơn vị {envelope.ma_don_vi}.",
            )
        serial = self._content_dict(envelope, "serial_number")["serial_number"]
        serial = serial.replace(":", "").replace(" ", "").upper()
        row = self.store.registration(envelope.ma_don_vi, serial_number=serial)
        if row is None:
            raise _Refusal(
                ResponseCode.NOT_FOUND,
                f"Đơn vị {envelope.ma_don_vi} chưa đăng ký chứng thư số có số hiệu {serial}.",
            )
        return self._registration_answer(envelope, row)

    # ------------------------------------------------------------------ transactions 5-6
    def _request_revocation(
        self, envelope: _Envelope, certificate: x509.Certificate
    ) -> dict[str, Any]:
        self._require_approved(envelope, certificate)
        content_sha = _content_sha256(envelope.content)
        replay = self._replay(envelope, content_sha)
        if replay is not None:
            return replay
        items = self._parsed(envelope, parse_revocation_xml)
        codes = [item.ma_tra_cuu_uuid for item in items]
        if len(set(codes)) != len(codes):
            raise _Refusal(ResponseCode.INVALID, "Yêu cầu thu hồi có mã tra cứu trùng nhau.")
        states = self.store.school_records(envelope.ma_don_vi, codes)
        unknown = [c for c in codes if c not in states]
        if unknown:
            raise _Refusal(
                ResponseCode.INVALID,
                f"{len(unknown)} học bạ không có trong kho học bạ đã tiếp nhận của đơn vị "
                f"{envelope.ma_don_vi}: {', '.join(unknown[:5])}.",
                "UNKNOWN_RECORD",
            )
        revoked = [c for c in codes if states[c] != "accepted"]
        if revoked:
            raise _Refusal(
                ResponseCode.INVALID,
                f"Học bạ đã bị thu hồi trước đó: {', '.join(revoked[:5])}.",
                "ALREADY_REVOKED",
            )

        def write(conn: Connection, message_pk: int) -> dict[str, Any]:
            created = self.store.create_revocation(
                conn,
                message_pk,
                envelope.ma_don_vi,
                [
                    {
                        "ma_tra_cuu_uuid": item.ma_tra_cuu_uuid,
                        "ho_va_ten": item.ho_va_ten,
                        "ly_do": item.ly_do,
                    }
                    for item in items
                ],
                accept=self.auto_accept_revocations,
            )
            return _answer(envelope.messageid, ResponseCode.OK, **created)

        return self._once(
            envelope,
            content_sha,
            write,
            lambda a: (
                "Đơn vị %s yêu cầu thu hồi %d học bạ: yêu cầu %s.",
                envelope.ma_don_vi,
                len(items),
                a["ma_yeu_cau"],
            ),
        )

    def _query_revocation(
        self, envelope: _Envelope, certificate: x509.Certificate
    ) -> dict[str, Any]:
        self._require_approved(envelope, certificate)
        request_id = self._content_dict(envelope, "ma_yeu_cau")["ma_yeu_cau"]
        row = self.store.revocation(request_id)
        if row is None or row["ma_don_vi"] != envelope.ma_don_vi:
            raise _Refusal(
                ResponseCode.NOT_FOUND, f"Không có yêu cầu thu hồi {request_id} của đơn vị này."
            )
        return _answer(
            envelope.messageid,
            ResponseCode.OK,
            ma_yeu_cau=row["ma_yeu_cau"],
            trang_thai=row["trang_thai"],
            ly_do=row["ly_do"] or "",
        )


def _field_title(check: Check) -> str:
    if check.code.startswith("SIGNATURE_") and check.slot:
        if "DIGEST_MISMATCH_DATA" in check.issue_codes:
            return "DU_LIEU_HOC_BA"
        return f"DANH_SACH_THONG_TIN_KY/{check.slot}"
    return _FIELD_OF_CHECK.get(str(check.code), "HOC_BA")


# ============================================================================ HTTP
class _FaultMiddleware:
    """ASGI middleware applying :class:`PortalFaults` to the transaction endpoints."""

    def __init__(self, app: ASGIApp, switch: _FaultSwitch, paths: Mapping[str, int | None]) -> None:
        self.app = app
        self.switch = switch
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") not in self.paths:
            await self.app(scope, receive, send)
            return
        # the switches are in PostgreSQL: a blocking query, off the event loop
        latency, fail, drop = await run_in_threadpool(self.switch.decide, self.paths[scope["path"]])
        if fail:
            log.warning("Mô phỏng lỗi: trả HTTP 500 cho %s mà không xử lý.", scope["path"])
            response = JSONResponse(
                _answer("", ResponseCode.INTERNAL, "Lỗi mô phỏng (fault injection).", "FAULT"),
                status_code=500,
            )
            await response(scope, receive, send)
            return
        if not drop and latency <= 0:
            await self.app(scope, receive, send)
            return
        held: list[Any] = []

        async def hold(message: Any) -> None:
            held.append(message)

        await self.app(scope, receive, hold)  # the work is done and committed...
        if latency > 0:
            await asyncio.sleep(latency)  # ...the answer comes late...
        if not drop:
            for message in held:
                await send(message)
            return
        log.warning("Mô phỏng lỗi: bỏ câu trả lời của %s (đóng kết nối).", scope["path"])
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
            }
        )
        # ...or is lost: returning with the body unsent makes the server close the
        # connection, so the client sees a protocol (network) error.


class FaultsIn(BaseModel):
    """Body of ``PUT /admin/faults`` (missing fields are switched off)."""

    model_config = ConfigDict(extra="forbid")

    latency: float = Field(default=0.0, ge=0, le=600)
    latency_next: int = Field(default=0, ge=0)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    fail_next: int = Field(default=0, ge=0)
    drop_rate: float = Field(default=0.0, ge=0, le=1)
    drop_next: int = Field(default=0, ge=0)
    reject_every: int = Field(default=0, ge=0)
    transactions: list[int] = Field(default_factory=list)
    seed: int | None = None


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ly_do: str = Field(default="", max_length=2000)


def _load_body_limit(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return int(value) if value and value.isdigit() else None


def create_portal_app(
    engine_or_url: Engine | str,
    schema: str = "portal",
    trusted_roots: Sequence[x509.Certificate] = (),
    users: Mapping[str, str | PortalUser] | None = None,
    *,
    admin_token: str | None = None,
    paths: Mapping[int, str] | None = None,
    **options: Unpack[PortalOptions],
) -> FastAPI:
    """Build the portal (creates its schema and tables in PostgreSQL now).

    Args:
        engine_or_url: a SQLAlchemy engine or URL of a PostgreSQL server (the portal
            keeps to ``schema``; its tables are schema-qualified).
        trusted_roots: trust anchors for transaction and record signatures.
        users: ``user_name -> password`` (clear text, hashed at once) or
            :class:`PortalUser` (hash and allowed units).
        admin_token: the ``X-Admin-Token`` of the admin endpoints (approvals, faults);
            ``None`` disables them.
        paths: transaction code → path, merged over the defaults.
        options: :class:`PortalOptions`, the :class:`ProvincePortal`'s own keywords.
    """
    if isinstance(engine_or_url, str):
        from hocba.db import make_engine

        engine = make_engine(engine_or_url, schema)
    else:
        engine = engine_or_url
    store = PortalStore(engine, schema)
    store.create()
    options.setdefault("faults", PortalFaults())
    portal = ProvincePortal(store, trusted_roots, users or {}, **options)
    max_transaction_bytes = portal.max_transaction_bytes
    app = FastAPI(
        title="hocba — Cổng tiếp nhận học bạ số (bản đi kèm, thử nghiệm)",
        description="Giao dịch 1-6 của HOCBA_SPEC §6: gửi học bạ, tra cứu kết quả, đăng ký "
        "chứng thư số, thu hồi. Có công tắc mô phỏng lỗi cho kiểm thử.",
        version="1",
    )
    app.state.portal = portal
    all_paths = {**DEFAULT_PATHS, **(paths or {})}
    routes: dict[str, int | None] = {path: code for code, path in all_paths.items()}
    routes[GENERIC_PATH] = None

    async def read_body(request: Request) -> bytes | None:
        declared = _load_body_limit(request)
        if declared is not None and declared > max_transaction_bytes:
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_transaction_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def endpoint(code: int | None) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def transaction(request: Request) -> JSONResponse:
            body = await read_body(request)
            if body is None:
                answer = _answer(
                    "",
                    ResponseCode.TOO_LARGE,
                    f"Giao dịch vượt {max_transaction_bytes:,} byte.",
                )
                return JSONResponse(answer, status_code=413)
            status, answer = await run_in_threadpool(portal.handle, body, code)
            return JSONResponse(answer, status_code=status)

        return transaction

    for path, code in routes.items():
        app.add_api_route(
            path,
            endpoint(code),
            methods=["POST"],
            name=f"giao_dich_{code or 'chung'}",
            summary=f"Giao dịch {code}" if code else "Mọi giao dịch (theo type)",
        )

    def admin(x_admin_token: str | None = Header(default=None)) -> None:
        """Every /admin route's guard: the X-Admin-Token header must match admin_token."""
        if admin_token is None:
            raise HTTPException(403, "Chức năng quản trị bị tắt (không có admin_token).")
        if x_admin_token is None or not hmac.compare_digest(
            x_admin_token.encode(), admin_token.encode()
        ):
            raise HTTPException(403, "Sai mã quản trị (X-Admin-Token).")

    guarded = APIRouter(prefix="/admin", dependencies=[Depends(admin)])

    @app.get("/health")
    def health() -> JSONResponse:
        """``ok``; for a portal served by several processes (:func:`serve`), 503
        ``starting`` until every process of this start-up has registered in the store."""
        generation: str | None = getattr(app.state, "generation", None)
        if generation is None:
            return JSONResponse({"status": "ok"})
        expected: int = app.state.processes
        ready = store.processes(generation)
        body: dict[str, Any] = {"status": "ok" if ready >= expected else "starting"}
        body |= {"processes": ready, "expected": expected}
        return JSONResponse(body, status_code=200 if ready >= expected else 503)

    @guarded.get("/faults")
    def get_faults() -> dict[str, Any]:
        return portal.faults.faults.to_json()

    @guarded.put("/faults")
    def put_faults(body: FaultsIn) -> dict[str, Any]:
        data = body.model_dump()
        data["transactions"] = tuple(data["transactions"])
        portal.faults.set(PortalFaults(**data))
        log.warning("Công tắc mô phỏng lỗi: %s", portal.faults.faults.to_json())
        return portal.faults.faults.to_json()

    @guarded.get("/stats")
    def stats() -> dict[str, int]:
        return store.counts()

    @guarded.get("/certificates")
    def certificates(status: str | None = None) -> list[dict[str, Any]]:
        return store.registrations(status)

    @guarded.post("/certificates/{ma_dang_ky}/{decision}")
    def decide_certificate(
        ma_dang_ky: str, decision: Literal["approve", "reject"]
    ) -> dict[str, Any]:
        row = store.decide_certificate(ma_dang_ky, decision == "approve")
        if row is None:
            raise HTTPException(404, "Không có đăng ký chứng thư số này.")
        log.info("Đăng ký chứng thư số %s: %s.", ma_dang_ky, row["status"])
        return {"ma_dang_ky": ma_dang_ky, "trang_thai": row["status"]}

    @guarded.get("/revocations")
    def revocations(trang_thai: int | None = None) -> list[dict[str, Any]]:
        return store.revocations(trang_thai)

    @guarded.post("/revocations/{ma_yeu_cau}/{decision}")
    def decide_revocation(
        ma_yeu_cau: str, decision: Literal["accept", "reject"], body: DecisionIn | None = None
    ) -> dict[str, Any]:
        row = store.decide_revocation(ma_yeu_cau, decision == "accept", body.ly_do if body else "")
        if row is None:
            raise HTTPException(404, "Không có yêu cầu thu hồi này.")
        log.info("Yêu cầu thu hồi %s: trạng thái %s.", ma_yeu_cau, row["trang_thai"])
        return {"ma_yeu_cau": ma_yeu_cau, "trang_thai": row["trang_thai"]}

    app.include_router(guarded)
    app.add_middleware(_FaultMiddleware, switch=portal.faults, paths=routes)
    return app


_SERVE_FROM_STDIN = (
    "import pickle, sys\n"
    "from hocba.dev.portal import serve\n"
    "factory = pickle.loads(sys.stdin.buffer.read())\n"
    "serve(factory, '127.0.0.1', int(sys.argv[1]), sys.argv[3], workers=int(sys.argv[2]))\n"
)


@dataclass
class ServedPortal:
    """A portal served by :func:`serve_in_processes`: its URL, the supervisor's pid (the
    serving processes are its children) and, once stopped, the CPU seconds the
    supervisor and all its processes used (``cpu_s``, from ``wait4``)."""

    url: str
    pid: int
    cpu_s: float | None = None


@contextmanager
def serve_in_processes(
    factory: PortalFactory,
    workers: int | None = None,
    *,
    log_level: str = "warning",
    timeout: float = 120,
) -> Iterator[ServedPortal]:
    """Serve the portal as ``hocba portal serve --workers N`` does (:func:`serve`), in a
    process of its own on a free port of 127.0.0.1, until the block ends; yields once
    every process is up. The factory travels pickled on the child's stdin (password
    hashes, never a password, and nothing on the command line or in the environment)."""
    import socket
    import subprocess
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    n = workers or default_workers()
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE_FROM_STDIN, str(port), str(n), log_level],
        stdin=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdin is not None
    proc.stdin.write(pickle.dumps(factory))
    proc.stdin.close()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"Cổng tiếp nhận dừng khi khởi động (mã {proc.returncode}).")
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break  # 503 until every process is up
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Cổng tiếp nhận không sẵn sàng sau {timeout:.0f} s.")
            time.sleep(0.1)
        served = ServedPortal(url, proc.pid)
        yield served
        os.killpg(proc.pid, signal.SIGTERM)  # the supervisor stops and reaps its processes
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                served.cpu_s = usage.ru_utime + usage.ru_stime
                break
            time.sleep(0.05)
    finally:
        if proc.returncode is None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def load_certificates(paths: Sequence[str]) -> list[x509.Certificate]:
    """Trust anchors from PEM or DER files (for :func:`serve` and the CLI)."""
    from pathlib import Path

    certificates: list[x509.Certificate] = []
    for path in paths:
        data = Path(path).read_bytes()
        if b"-----BEGIN CERTIFICATE-----" in data:
            certificates.extend(x509.load_pem_x509_certificates(data))
        else:
            certificates.append(x509.load_der_x509_certificate(data))
    return certificates


def default_workers() -> int:
    """The processes ``hocba portal serve`` runs by default: one per CPU it may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class PortalFactory:
    """What a serving process needs to build the portal (:func:`create_portal_app`), in a
    form that can be sent to a new process (pickled: certificates as DER, accounts as
    :class:`PortalUser` — the password hash, never the password). Called, it builds the
    app; :func:`serve` calls it in each of its processes."""

    url: str
    schema: str = "portal"
    trusted_roots: tuple[bytes, ...] = ()
    users: Mapping[str, PortalUser] = field(default_factory=dict)
    admin_token: str | None = field(default=None, repr=False)
    options: Mapping[str, Any] = field(default_factory=dict)
    generation: str | None = None
    processes: int = 1

    @classmethod
    def of(
        cls,
        url: str,
        schema: str = "portal",
        trusted_roots: Sequence[x509.Certificate] = (),
        users: Mapping[str, str | PortalUser] | None = None,
        *,
        admin_token: str | None = None,
        **options: Unpack[PortalOptions],
    ) -> PortalFactory:
        """The factory of ``create_portal_app(url, schema, trusted_roots, users, ...)``."""
        return cls(
            url,
            schema,
            tuple(c.public_bytes(serialization.Encoding.DER) for c in trusted_roots),
            {
                name: u if isinstance(u, PortalUser) else PortalUser.with_password(u)
                for name, u in (users or {}).items()
            },
            admin_token,
            dict(options),
        )

    def prepare(self) -> None:
        """Once, before the processes start: the schema and tables, the initial fault
        switches."""
        from hocba.db import make_engine

        engine = make_engine(self.url, self.schema)
        try:
            store = PortalStore(engine, self.schema)
            store.create()
            store.set_faults((self.options.get("faults") or PortalFaults()).to_json())
        finally:
            engine.dispose()

    def __call__(self) -> FastAPI:
        try:
            # prepare() set the switches once; a process (re)started later keeps them
            options = {**self.options, "faults": None}
            app = create_portal_app(
                self.url,
                self.schema,
                [x509.load_der_x509_certificate(der) for der in self.trusted_roots],
                dict(self.users),
                admin_token=self.admin_token,
                **options,  # type: ignore[arg-type]
            )
            app.state.processes = self.processes
            freeze_start_up(collect_all=True)  # before registering: /health says "up" after
            if self.generation is not None:
                app.state.generation = self.generation
                app.state.portal.store.register_process(self.generation, os.getpid())
            return app
        except Exception:
            log.exception("Không khởi động được tiến trình của cổng tiếp nhận.")
            sys.exit(3)  # uvicorn's STARTUP_FAILURE: the supervisor stops, not restarts


def serve(
    app: FastAPI | PortalFactory,
    host: str = "127.0.0.1",
    port: int = 8800,
    log_level: str = "info",
    workers: int = 1,
) -> None:
    """Run the portal with uvicorn until interrupted (blocking): ``hocba portal serve``.

    ``app``: a built app (one process), or a :class:`PortalFactory` served by ``workers``
    processes on one listening socket (uvicorn's supervisor; it restarts a process that
    dies). Each process builds its own app; everything they share is in PostgreSQL (see
    :mod:`hocba.dev.portal.store`), and ``/health`` answers 503 until all of them are up.

    Bind to ``127.0.0.1`` unless other machines must reach it: it is a stand-in for a
    province's portal, for development, demos and tests.
    """
    import uvicorn

    if isinstance(app, FastAPI):
        if workers != 1:
            raise ValueError("Nhiều tiến trình cần PortalFactory, không phải một app đã dựng.")
        uvicorn.run(app, host=host, port=port, log_level=log_level)
        return
    factory = replace(app, generation=uuid.uuid4().hex, processes=max(1, workers))
    factory.prepare()
    if factory.processes == 1:
        uvicorn.run(factory(), host=host, port=port, log_level=log_level)
        return
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        factory,
        host=host,
        port=port,
        log_level=log_level,
        workers=factory.processes,
        factory=True,
        # the supervisor kills a process that does not answer its ping in time: on a
        # loaded machine a process verifying a 1000-record transaction may answer late,
        # and killing it would only make the school resend (the work is rolled back)
        timeout_worker_healthcheck=60,
    )
    Multiprocess(config, sockets=[config.bind_socket()]).run()
