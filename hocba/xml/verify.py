"""Verification report of an issued record (issue 3 item 7, HOCBA_SPEC §3-5, §7).

:func:`verify_document` takes the bytes of a record XML and answers with a
:class:`VerificationReport`: a list of named checks, each ``pass`` / ``fail`` /
``indeterminate`` ("cannot check now"), and an overall verdict:

* any check ``fail``                       → ``INVALID``        (exit code 1)
* else any check ``indeterminate``          → ``INDETERMINATE``  (exit code 2)
* else                                      → ``VALID``          (exit code 0)

It never raises on bad input: whatever is wrong with the document ends up in the report.
The XMLDSig work (integrity, ``#data`` pinned to the root's ``DU_LIEU_HOC_BA`` against
wrapping, chain to the trust anchors, validity at signing time, key usage, signer named in
the data) is :func:`hocba.xml.dsig.verify_record_signatures`; this module adds what
needs the outside world — the :class:`Registry` (roles, approved school certificates,
issued records) and the CRLs — and turns everything into checks with stable codes and
Vietnamese messages.

Check codes (stable, for machines; ``message_vi`` is for people):

========================  =================================================================
``SAFE_PARSE``            size limit (checked on ``len`` before anything else, so a 50 MB
                          upload is refused without being parsed or hashed), no DOCTYPE /
                          ENTITY, well-formed UTF-8. When it fails, no other check runs and
                          the report holds this check only.
``SCHEMA``                valid against ``hoc_ba_v1.xsd``.
``SIGNATURE_GVCN``        the slot's signature per ``verify_record_signatures``: exactly one
``SIGNATURE_CBQL``        ``ds:Signature`` covering exactly ``#data`` and its own SigningTime
``SIGNATURE_KY_PHAT_HANH``  (no wrapping, not moved from another slot), digests, value, chain
                          to ``trusted_roots``, validity at the signing time, keyUsage, the
                          certificate's CCCD / school code equals the one in the data, the
                          slot's unsigned ``NGAY_KY`` equals the signed SigningTime and its
                          ``SO_CCCD`` is the certificate's CCCD (``NGAY_KY_MISMATCH``,
                          ``SLOT_CCCD_MISMATCH``: a slot telling another time or person than
                          its signature fails). A missing signature fails (all three are
                          required once issued). The message carries the first failing
                          ``IssueCode`` in brackets; all of them are in ``Check.issue_codes``.
``SIGNING_ORDER``         signing times GVCN ≤ CBQL ≤ KY_PHAT_HANH.
``REVOCATION``            for every signer certificate, the CRL from ``crl_source``: revoked
                          at or before the signing time → fail; revoked later → pass with a
                          note; ``CrlUnavailable`` (or any error of the source), a CRL not
                          signed by the certificate's issuer, or a CRL past its nextUpdate
                          (unless it already shows the revocation) → indeterminate, never
                          fail. No ``crl_source`` → indeterminate.
``ROLE_GVCN``             the certificate can hold a personal role: it names a person (a
                          CCCD) and no organisation (``MATRUONG``) — an organisation
                          certificate (the school's seal) in a personal slot **fails**, with
                          or without a registry (issue 16). Then the registry: the GVCN
                          signer (by the CCCD in their certificate) was homeroom teacher of
                          that class (TEN_LOP) of that school (MA_TRUONG) in that school year
                          (TEN_NAM_HOC) at the signing time.
``ROLE_CBQL``             the same personal-certificate rule, then the registry: the CBQL
                          signer was the principal or a delegated vice principal of that
                          school at the signing time. A teacher there fails.
``SCHOOL_CERTIFICATE``    a certificate naming a person (a CCCD) and no school cannot be the
                          seal → fail. Then the registry: the seal's certificate (SHA-256 of
                          its DER) was approved for that school at the seal's signing time.
                          (This is the "role" check of the KY_PHAT_HANH slot, whose signer
                          is the school.)
``TIMESTAMP``             (issue 12) every RFC 3161 signature timestamp (XAdES-T style, one
                          per slot) and archive timestamp verifies: TSA signature, imprint
                          over the slot's SignatureValue (or the archived content), TSA
                          certificate chains to the trust anchors and was valid at genTime;
                          the timestamp is not before the SigningTime (5 min skew) and lies
                          within the signer certificate's validity (so a certificate that
                          expired *after* the timestamp stays valid). A slot without a
                          timestamp passes with the note "mức B" (a TSA outage costs a
                          conformance level, never a signature). The message gives each
                          timestamp time; ``VerificationReport.timestamps`` has them too.
``REVOCATION`` at the     with a valid signature timestamp, revocation is judged at the
timestamp time            *timestamp* time, not the claimed SigningTime: revoked after it →
                          pass; at or before → fail. OCSP (``ocsp_source``) first, the CRL
                          as fallback; neither reachable → indeterminate, never fail.
``REGISTRY_MATCH``        registry, by the document's lookup code (MA_TRA_CUU_UUID): the
                          SHA-256 of the bytes equals the issued hash (or one it had before
                          time-stamps were added, ``IssuedRecordInfo.earlier_sha256``), and
                          the record is not
                          ``revoked`` / ``superseded`` (the message then names the
                          successor's lookup code). Bytes that differ from the issued copy
                          (``IssuedRecordInfo.issued_xml()``, fetched only then) only
                          *outside what is signed* — the
                          canonical ``DU_LIEU_HOC_BA``, every ``SignedInfo`` and
                          ``SignatureValue`` are the issued ones, e.g. a newline appended by
                          a mail client — **pass** ("signatures valid, not byte-identical to
                          the issued copy": "Tệp không trùng từng byte với bản đã phát
                          hành, nhưng dữ liệu được ký và các chữ ký trùng khớp...") with
                          ``issue_codes`` ``("NOT_BYTE_IDENTICAL",)``: the content is the
                          issued content, not a forgery. Signed parts that differ, or no
                          issued copy to compare with → fail. No lookup code in the
                          document → fail (an issued record always has one). A code the
                          registry does not know → **pass**, with the message "không
                          phải học bạ của hệ thống này": the record comes from another
                          system, and its signatures, chain, roles and CRL are still
                          checked by the other checks.
========================  =================================================================

Choices:

* ``ROLE_*`` and ``SCHOOL_CERTIFICATE`` are only asked when the slot's signer is
  authenticated — the signature value verifies with a certificate that chains to a trust
  anchor, the SigningTime is intact and the signature belongs to the slot. Otherwise
  (missing, forged, untrusted, moved) they are ``indeterminate``: the slot's
  ``SIGNATURE_*`` check already fails. Errors that do not put the signer's identity in
  doubt (data changed afterwards, expired certificate, signer not the one named in the
  data, unsigned slot fields that disagree...) do not stop the role question.
* A role check is ``indeterminate`` only when the answer needs the outside world (no
  registry, registry down, a person the registry does not know). When the certificate
  itself rules the role out (an organisation certificate in GVCN / CBQL, a personal one
  as the seal) it **fails**: no registry could make that signer hold the role.
* ``registry=None``, or a registry answering ``None`` (unknown person / school), or a
  registry raising (database down) → ``indeterminate``.
* Personal data stays minimal (Nghị định 13/2023): the report carries the pupil's name,
  school, class and lookup code as written in the document (not proven by themselves —
  read them with the verdict), the signers' names from their certificates, and never a
  CCCD. ``IssueCode`` details (which may quote IDs) are not copied into messages.
* ``registry`` or ``crl_source`` raising anything (not only :class:`CrlUnavailable`) is
  "cannot check now" → ``indeterminate``, logged with the exception type; never ``fail``.
  ``crl_source`` is called once per distinct signer certificate per document; a CRL's
  signature check is remembered per CRL object, so a source that caches its CRLs is cheap.
* ``max_bytes`` can only lower the limit of :mod:`hocba.xml.record`
  (``DEFAULT_MAX_BYTES``, 5 MB). The document is parsed once
  (``parse_record_xml_safely``); the schema check, the signatures
  (``hocba.xml.dsig.verify_record_tree``), the time-stamps and the registry comparison
  read that one tree.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from lxml import etree

from hocba.errors import HocbaError
from hocba.pki.chain import issued_by
from hocba.pki.ocsp import OcspStatus
from hocba.xml.dsig import (
    DS_NS,
    IssueCode,
    RecordSignaturesVerification,
    SlotVerification,
    crl_revocation_dates,
    verify_record_tree,
)
from hocba.xml.record import (
    DEFAULT_MAX_BYTES,
    SIGNATURE_SLOTS,
    RecordXmlError,
    format_datetime,
    parse_record_xml_safely,
    validate_record_tree,
)
from hocba.xml.timestamps import CheckedTimestamp, check_record_timestamps

__all__ = [
    "Check",
    "CheckCode",
    "CheckStatus",
    "CrlUnavailable",
    "IssuedRecordInfo",
    "NOT_BYTE_IDENTICAL",
    "Registry",
    "SlotRoles",
    "Verdict",
    "VerificationReport",
    "verify_document",
]

log = logging.getLogger(__name__)


class CheckStatus(StrEnum):
    """Outcome of one check."""

    PASS = "pass"
    FAIL = "fail"
    INDETERMINATE = "indeterminate"  # cannot check now (CRL or registry unavailable...)


class Verdict(StrEnum):
    """Overall result: any FAIL → INVALID; else any INDETERMINATE → INDETERMINATE."""

    VALID = "VALID"
    INVALID = "INVALID"
    INDETERMINATE = "INDETERMINATE"

    @classmethod
    def of(cls, checks: Sequence[Check]) -> Verdict:
        statuses = {check.status for check in checks}
        if CheckStatus.FAIL in statuses or not checks:
            return cls.INVALID
        if CheckStatus.INDETERMINATE in statuses:
            return cls.INDETERMINATE
        return cls.VALID


class CheckCode(StrEnum):
    """Stable check codes (see the module docstring)."""

    SAFE_PARSE = "SAFE_PARSE"
    SCHEMA = "SCHEMA"
    SIGNATURE_GVCN = "SIGNATURE_GVCN"
    SIGNATURE_CBQL = "SIGNATURE_CBQL"
    SIGNATURE_KY_PHAT_HANH = "SIGNATURE_KY_PHAT_HANH"
    SIGNING_ORDER = "SIGNING_ORDER"
    TIMESTAMP = "TIMESTAMP"
    REVOCATION = "REVOCATION"
    ROLE_GVCN = "ROLE_GVCN"
    ROLE_CBQL = "ROLE_CBQL"
    SCHOOL_CERTIFICATE = "SCHOOL_CERTIFICATE"
    REGISTRY_MATCH = "REGISTRY_MATCH"


_EXIT_CODES = {Verdict.VALID: 0, Verdict.INVALID: 1, Verdict.INDETERMINATE: 2}
_SYMBOLS = {CheckStatus.PASS: "✓", CheckStatus.FAIL: "✗", CheckStatus.INDETERMINATE: "?"}
_VERDICT_VI = {
    Verdict.VALID: "HỢP LỆ",
    Verdict.INVALID: "KHÔNG HỢP LỆ",
    Verdict.INDETERMINATE: "CHƯA XÁC ĐỊNH ĐƯỢC (chưa kiểm tra được đầy đủ, hãy kiểm tra lại sau)",
}
_SLOT_VI = {
    "GVCN": "giáo viên chủ nhiệm (GVCN)",
    "CBQL": "cán bộ quản lý (CBQL)",
    "KY_PHAT_HANH": "phát hành (chứng thư số của trường)",
}
_REVOKED_STATES = {"revoked", "superseded"}
_TS_SKEW = dt.timedelta(minutes=5)

# Slot errors after which the signer's identity and signing time are still established
# (the SignatureValue verifies with a trusted certificate): role questions make sense.
_SIGNER_STILL_AUTHENTIC = {
    IssueCode.DIGEST_MISMATCH_DATA,
    IssueCode.CERTIFICATE_EXPIRED,
    IssueCode.CERTIFICATE_NOT_YET_VALID,
    IssueCode.CERTIFICATE_KEY_USAGE,
    IssueCode.CERTIFICATE_REVOKED,
    IssueCode.CRL_INVALID,
    IssueCode.SIGNER_ID_MISMATCH,
    IssueCode.NGAY_KY_MISMATCH,
    IssueCode.SLOT_CCCD_MISMATCH,
}
NOT_BYTE_IDENTICAL = "NOT_BYTE_IDENTICAL"
"""``Check.issue_codes`` of a REGISTRY_MATCH that passes although the bytes differ from
the issued copy (only outside what is signed)."""


@dataclass(frozen=True)
class Check:
    """One named check. ``issue_codes`` holds the underlying XMLDSig ``IssueCode`` values
    (errors) for the SIGNATURE_* and SIGNING_ORDER checks, :data:`NOT_BYTE_IDENTICAL` for
    a REGISTRY_MATCH that passes on other bytes, empty otherwise."""

    code: str
    status: CheckStatus
    message_vi: str
    slot: str | None = None
    issue_codes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "status": str(self.status),
            "slot": self.slot,
            "message_vi": self.message_vi,
            "issue_codes": list(self.issue_codes),
        }


@dataclass
class VerificationReport:
    """The checks, the verdict and what identifies the record (as written in it)."""

    checks: list[Check]
    verdict: Verdict
    lookup_code: str | None = None
    school_code: str | None = None
    school_year: str | None = None
    class_name: str | None = None
    pupil_name: str | None = None
    document_sha256: str | None = None
    timestamps: dict[str, str] = field(default_factory=dict)  # slot / ats-n → ISO time

    @classmethod
    def from_checks(cls, checks: list[Check], **info: str | None) -> VerificationReport:
        return cls(checks=checks, verdict=Verdict.of(checks), **info)

    @property
    def exit_code(self) -> int:
        """0 VALID, 1 INVALID, 2 INDETERMINATE (for ``hocba verify``)."""
        return _EXIT_CODES[self.verdict]

    def check(self, code: str) -> Check | None:
        """The check with this code, if it ran."""
        return next((c for c in self.checks if c.code == code), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": str(self.verdict),
            "exit_code": self.exit_code,
            "lookup_code": self.lookup_code,
            "school_code": self.school_code,
            "school_year": self.school_year,
            "class_name": self.class_name,
            "pupil_name": self.pupil_name,
            "document_sha256": self.document_sha256,
            "timestamps": dict(self.timestamps),
            "checks": [check.to_json() for check in self.checks],
        }

    def render_text(self) -> str:
        """A Vietnamese check list, one line per check: ✓ pass, ✗ fail, ? cannot check now."""
        lines = [f"Kết quả kiểm tra học bạ: {_VERDICT_VI[self.verdict]} ({self.verdict})"]
        for label, value in (
            ("Mã tra cứu", self.lookup_code),
            ("Học sinh", self.pupil_name),
            ("Lớp", self.class_name),
            ("Năm học", self.school_year),
            ("Mã trường", self.school_code),
        ):
            if value:
                lines.append(f"  {label}: {value}")
        for check in self.checks:
            lines.append(f"{_SYMBOLS[check.status]} {check.code}: {check.message_vi}")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class IssuedRecordInfo:
    """What the registry holds about an issued record."""

    xml_sha256: str  # hex SHA-256 of the issued XML bytes
    state: str  # issued, submitted, accepted..., revoked, superseded
    successor_lookup_code: str | None = None
    # the issued bytes, when the registry has them: a file that differs only outside what
    # is signed is then told apart from a forgery (REGISTRY_MATCH)
    xml: bytes | None = None
    earlier_sha256: tuple[str, ...] = ()  # hashes before time-stamps were added (0010)
    # or, instead of ``xml``, how to fetch the issued bytes: asked only when the document's
    # hash is none of the issued ones (a registry need not read the copy for every check)
    load_xml: Callable[[], bytes | None] | None = field(default=None, compare=False, repr=False)

    def issued_xml(self) -> bytes | None:
        """The issued bytes: ``xml``, else what ``load_xml`` fetches, else None."""
        if self.xml is not None or self.load_xml is None:
            return self.xml
        return self.load_xml()


class Registry(Protocol):
    """The system's registry (PostgreSQL in production). ``None`` answers mean "unknown
    person / school / code": the check is indeterminate, not failed."""

    def signer_held_role(
        self,
        slot: str,
        cccd: str,
        school_code: str,
        school_year: str,
        class_name: str,
        at: dt.datetime,
    ) -> bool | None:
        """GVCN: homeroom teacher of that class of that school at ``at``; CBQL: principal
        or delegated vice principal of that school at ``at``."""
        ...

    def school_certificate_approved(
        self, school_code: str, cert_sha256_hex: str, at: dt.datetime
    ) -> bool | None: ...

    def issued_record(self, lookup_code: str) -> IssuedRecordInfo | None: ...


class SlotRoles:
    """The one answer to :meth:`Registry.signer_held_role`, which slot needs which role
    (HOCBA_SPEC §4): GVCN → the homeroom teacher of that class (TEN_LOP) of that school in
    that school year; CBQL → the principal or a delegated vice principal of that school;
    any other slot is no person's role (None). A registry subclasses it and answers the
    two questions from its own records (the app's database, the roles a school declares to
    the portal)."""

    def signer_held_role(
        self,
        slot: str,
        cccd: str,
        school_code: str,
        school_year: str,
        class_name: str,
        at: dt.datetime,
    ) -> bool | None:
        if slot == "GVCN":
            return self.was_homeroom_teacher(cccd, school_code, school_year, class_name, at)
        if slot == "CBQL":
            return self.was_school_manager(cccd, school_code, at)
        return None

    def was_homeroom_teacher(
        self, cccd: str, school_code: str, school_year: str, class_name: str, at: dt.datetime
    ) -> bool | None:
        """Was ``cccd`` the homeroom teacher of that class at ``at``? None: unknown."""
        raise NotImplementedError

    def was_school_manager(self, cccd: str, school_code: str, at: dt.datetime) -> bool | None:
        """Was ``cccd`` the principal or a delegated vice principal of that school at
        ``at``? None: unknown."""
        raise NotImplementedError


class CrlUnavailable(HocbaError):
    """Raised by a ``crl_source`` when the CRL cannot be fetched now."""


CrlSource = Callable[[x509.Certificate], x509.CertificateRevocationList]
OcspSource = Callable[[x509.Certificate, x509.Certificate], OcspStatus]
"""``ocsp_source(certificate, issuer)``: a checked OCSP answer, or raises OcspUnavailable."""


# ================================================================================ helpers
_IDENTIFYING = {
    "MA_TRA_CUU_UUID": "lookup_code",
    "MA_TRUONG": "school_code",
    "TEN_NAM_HOC": "school_year",
    "TEN_LOP": "class_name",
    "HO_VA_TEN": "pupil_name",
}


def first_texts(root: etree._Element, names: Iterable[str]) -> dict[str, str | None]:
    """``root.find("DU_LIEU_HOC_BA/THONG_TIN_CHUNG").find(name)``'s text for each name,
    stripped (``None``: no such element, or only whitespace), read in one pass over the
    children instead of an ElementPath search per name: the first ``THONG_TIN_CHUNG``
    under any ``DU_LIEU_HOC_BA`` child of the root, and the first element of each name in
    it, as ``find`` takes them."""
    wanted = tuple(names)
    values: dict[str, str | None] = dict.fromkeys(wanted)
    for data in root.iterchildren("DU_LIEU_HOC_BA"):
        general = next(data.iterchildren("THONG_TIN_CHUNG"), None)
        if general is None:
            continue
        seen: set[str] = set()
        for element in general.iterchildren(*wanted):
            name = element.tag
            if name in seen:
                continue
            seen.add(name)
            text = element.text
            values[name] = text.strip() if text and text.strip() else None
        break
    return values


def _identifying_fields(root: etree._Element) -> dict[str, str | None]:
    """Lookup code, school, year, class and pupil name as written in the document (first
    ``DU_LIEU_HOC_BA`` under the root; not proven by themselves)."""
    values = first_texts(root, _IDENTIFYING)
    return {key: values[name] for name, key in _IDENTIFYING.items()}


def _subject_id(certificate: x509.Certificate, prefix: str, pattern: str) -> str | None:
    """The first ``<prefix>:<value>`` in ``serialNumber`` or ``UID``, as Vietnamese CAs and
    the test PKI write it."""
    for oid in (NameOID.SERIAL_NUMBER, NameOID.USER_ID):
        for attribute in certificate.subject.get_attributes_for_oid(oid):
            match = re.fullmatch(rf"\s*{prefix}\s*:\s*({pattern})\s*", str(attribute.value), re.I)
            if match:
                return match.group(1)
    return None


@lru_cache(maxsize=4096)  # certificates are immutable: read each one once
def cccd_of(certificate: x509.Certificate) -> str | None:
    """The CCCD (``CCCD:<12 digits>``) of a personal certificate, else None: the one reading
    of a signer's personal ID, for the verifier and for the signing checks."""
    return _subject_id(certificate, "CCCD", "[0-9]{12}")


@lru_cache(maxsize=4096)
def _school_code_of(certificate: x509.Certificate) -> str | None:
    """The school code (``MATRUONG:<code>``) of a school's organisation certificate."""
    return _subject_id(certificate, "MATRUONG", r"\S+")


@lru_cache(maxsize=4096)  # certificates are immutable: read each one once
def _common_name(certificate: x509.Certificate | None) -> str:
    if certificate is None:
        return "?"
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else certificate.subject.rfc4514_string()


@lru_cache(maxsize=4096)  # the same few signing times and validity bounds, record after record
def _when(value: dt.datetime | None) -> str:
    if value is None:
        return "?"
    try:
        return format_datetime(value)
    except RecordXmlError:
        return value.isoformat()


def _authenticated(result: SlotVerification) -> bool:
    """Is the slot's signer known for sure (see the module docstring)?"""
    return (
        result.certificate is not None
        and result.signing_time is not None
        and all(issue.code in _SIGNER_STILL_AUTHENTIC for issue in result.errors)
    )


def _call(what: str, function: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
    """Call the registry / CRL source; (False, exception) when it fails."""
    try:
        return True, function(*args)
    except Exception as exc:  # noqa: BLE001 - an outside service down is "cannot check now"
        if not isinstance(exc, CrlUnavailable):
            log.warning("%s failed: %s", what, type(exc).__name__, exc_info=True)
        return False, exc


# ================================================================================ checks
def _safe_parse(data: object, max_bytes: int) -> tuple[Check, etree._Element | None]:
    code = CheckCode.SAFE_PARSE
    if not isinstance(data, bytes | bytearray | memoryview):
        return Check(code, CheckStatus.FAIL, "Dữ liệu vào phải là nội dung tệp (bytes)"), None
    limit = min(max_bytes, DEFAULT_MAX_BYTES)
    if len(data) > limit:  # before parsing, hashing or even copying
        return (
            Check(
                code,
                CheckStatus.FAIL,
                f"Tệp quá lớn: {len(data):,} byte, giới hạn {limit:,} byte; không đọc tệp",
            ),
            None,
        )
    try:
        root = parse_record_xml_safely(bytes(data), limit)
    except RecordXmlError as exc:
        return Check(code, CheckStatus.FAIL, f"Tệp bị từ chối khi đọc: {exc.message_vi}"), None
    except Exception as exc:  # noqa: BLE001 - never raise on bad input
        log.warning("safe parse failed unexpectedly: %s", type(exc).__name__, exc_info=True)
        return Check(code, CheckStatus.FAIL, "Tệp bị từ chối khi đọc: không đọc được tệp"), None
    return _parsed_safely(limit), root


def _parsed_safely(limit: int) -> Check:
    return Check(
        CheckCode.SAFE_PARSE,
        CheckStatus.PASS,
        "Tệp đọc an toàn: không có DOCTYPE/ENTITY, đúng cú pháp XML UTF-8, "
        f"dưới giới hạn {limit:,} byte",
    )


def _schema(root: etree._Element) -> Check:
    code = CheckCode.SCHEMA
    try:
        validate_record_tree(root)
    except RecordXmlError as exc:
        # Element names only: lxml's messages may quote values (IDs, names).
        elements = sorted({m for d in exc.details for m in re.findall(r"Element '([^']+)'", d)})
        where = f"; phần tử: {', '.join(elements[:5])}" if elements else ""
        return Check(
            code,
            CheckStatus.FAIL,
            f"Không đúng lược đồ hoc_ba_v1.xsd ({len(exc.details)} lỗi{where})",
        )
    except Exception as exc:  # noqa: BLE001
        log.warning("schema validation failed unexpectedly: %s", type(exc).__name__, exc_info=True)
        return Check(code, CheckStatus.FAIL, "Không kiểm tra được lược đồ hoc_ba_v1.xsd")
    return Check(code, CheckStatus.PASS, "Đúng lược đồ hoc_ba_v1.xsd (phiên bản 1.0)")


def _signature_check(result: SlotVerification) -> Check:
    slot = result.slot
    code = f"SIGNATURE_{slot}"
    label = _SLOT_VI[slot]
    if result.ok:
        notes = "".join(f"; lưu ý: {w.message_vi}" for w in result.warnings)
        return Check(
            code,
            CheckStatus.PASS,
            f"Chữ ký {label} hợp lệ: {_common_name(result.certificate)}, "
            f"ký lúc {_when(result.signing_time)}{notes}",
            slot,
        )
    errors = result.errors
    if not errors:  # not ok without a reason: never happens, never VALID either
        return Check(code, CheckStatus.FAIL, f"Chữ ký {label} không hợp lệ", slot)
    first = errors[0]
    others = [str(e.code) for e in errors[1:]]
    more = f" (và {len(others)} lỗi khác: {', '.join(others)})" if others else ""
    return Check(
        code,
        CheckStatus.FAIL,
        f"Chữ ký {label} không hợp lệ: {first.message_vi} [{first.code}]{more}",
        slot,
        tuple(str(e.code) for e in errors),
    )


def _signing_order_check(signatures: RecordSignaturesVerification) -> Check:
    code = CheckCode.SIGNING_ORDER
    order = [e for e in signatures.errors if e.code == IssueCode.SIGNING_ORDER_INVALID]
    if order:
        detail = "; ".join(e.detail for e in order if e.detail)
        return Check(
            code,
            CheckStatus.FAIL,
            f"{order[0].message_vi}{f': {detail}' if detail else ''} [{order[0].code}]",
            issue_codes=(str(order[0].code),),
        )
    times = {slot: signatures.slots[slot].signing_time for slot in SIGNATURE_SLOTS}
    missing = [slot for slot, when in times.items() if when is None]
    if missing:
        return Check(
            code,
            CheckStatus.INDETERMINATE,
            f"Không kiểm tra được thứ tự ký: thiếu thời điểm ký của ô {', '.join(missing)}",
        )
    return Check(
        code,
        CheckStatus.PASS,
        "Thứ tự ký đúng: GVCN ("
        + _when(times["GVCN"])
        + ") ≤ CBQL ("
        + _when(times["CBQL"])
        + ") ≤ phát hành ("
        + _when(times["KY_PHAT_HANH"])
        + ")",
    )


@lru_cache(maxsize=4096)
def _sha256_hex(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


def _issuer_of(
    certificate: x509.Certificate, candidates: Iterable[x509.Certificate]
) -> x509.Certificate | None:
    """The candidate that really issued ``certificate``."""
    return next((c for c in candidates if issued_by(certificate, c)), None)


def _keyinfo_certificates(root: etree._Element, slot: str) -> Iterator[x509.Certificate]:
    """Certificates the signature of ``slot`` sends along (intermediate CAs, for finding
    the CRL's issuer when it is not a trust anchor itself)."""
    path = (
        f"DANH_SACH_THONG_TIN_KY/{slot}/{{{DS_NS}}}Signature/{{{DS_NS}}}KeyInfo/"
        f"{{{DS_NS}}}X509Data/{{{DS_NS}}}X509Certificate"
    )
    for element in root.iterfind(path):
        certificate = _keyinfo_certificate(element.text or "")
        if certificate is not None:
            yield certificate


@lru_cache(maxsize=1024)
def _keyinfo_certificate(text: str) -> x509.Certificate | None:
    """An X509Certificate element's text as a certificate, loaded once; None if unreadable."""
    try:
        return x509.load_der_x509_certificate(
            base64.b64decode("".join(text.split()), validate=True)
        )
    except ValueError:
        return None


def _revocation_of_slot(
    result: SlotVerification,
    crl_source: CrlSource | None,
    candidates: Iterable[x509.Certificate],
    now: dt.datetime,
    cache: dict[x509.Certificate, tuple[bool, Any]],
    at: dt.datetime | None = None,
    ocsp_source: OcspSource | None = None,
) -> tuple[CheckStatus, str]:
    """Revocation status of one slot's certificate at ``at`` (its timestamp time, else the
    SigningTime): OCSP first when given, else / on failure complete CRLs issued and signed
    directly by the certificate's issuer (RFC 5280 §6.3, simplified)."""
    certificate = result.certificate
    assert certificate is not None
    label = result.slot
    signing_time = at or result.signing_time
    candidates = list(candidates)
    if ocsp_source is not None:
        by_ocsp = _revocation_by_ocsp(label, certificate, candidates, signing_time, ocsp_source)
        if by_ocsp is not None:
            return by_ocsp
    if crl_source is None:
        return CheckStatus.INDETERMINATE, f"{label}: không lấy được OCSP, chưa cấu hình CRL"
    if certificate not in cache:
        cache[certificate] = _call("crl_source", crl_source, certificate)
    fetched, crl = cache[certificate]
    if not fetched:
        return CheckStatus.INDETERMINATE, f"{label}: không lấy được CRL"
    if not isinstance(crl, x509.CertificateRevocationList):
        return CheckStatus.INDETERMINATE, f"{label}: nguồn CRL trả về dữ liệu không phải CRL"
    issuer = _issuer_of(certificate, candidates)
    if issuer is None:
        return CheckStatus.INDETERMINATE, f"{label}: không tìm thấy CA tin cậy đã cấp chứng thư"
    revocations = crl_revocation_dates(crl, issuer)  # cached per CRL object and issuer
    if revocations is None:
        return CheckStatus.INDETERMINATE, f"{label}: CRL không do CA cấp chứng thư ký hợp lệ"
    when = revocations.get(certificate.serial_number)
    if when is not None:
        if signing_time is None or when <= signing_time:
            return (
                CheckStatus.FAIL,
                f"{label}: chứng thư số đã bị thu hồi từ {_when(when)}, "
                f"trước thời điểm ký {_when(signing_time)}",
            )
    next_update = crl.next_update_utc
    if next_update is not None and next_update < now:
        stale = _when(next_update)
        return CheckStatus.INDETERMINATE, f"{label}: CRL đã quá hạn (nextUpdate {stale})"
    if when is not None:
        later = _when(when)
        return CheckStatus.PASS, f"{label}: chưa bị thu hồi khi ký (bị thu hồi sau đó, {later})"
    return CheckStatus.PASS, f"{label}: chưa bị thu hồi"


def _revocation_by_ocsp(
    label: str,
    certificate: x509.Certificate,
    candidates: Sequence[x509.Certificate],
    at: dt.datetime | None,
    ocsp_source: OcspSource,
) -> tuple[CheckStatus, str] | None:
    """The OCSP answer judged at ``at``; ``None`` when OCSP cannot tell (then the CRL)."""
    issuer = _issuer_of(certificate, candidates)
    if issuer is None:
        return None
    ok, status = _call("ocsp_source", ocsp_source, certificate, issuer)
    if not ok or not isinstance(status, OcspStatus):
        return None
    when = status.revoked_at
    if when is None:
        return CheckStatus.PASS, f"{label}: chưa bị thu hồi (OCSP)"
    if at is None or when <= at:
        return (
            CheckStatus.FAIL,
            f"{label}: chứng thư số đã bị thu hồi từ {_when(when)}, "
            f"trước thời điểm ký/dấu thời gian {_when(at)} (OCSP)",
        )
    return (
        CheckStatus.PASS,
        f"{label}: chưa bị thu hồi tại dấu thời gian {_when(at)} "
        f"(bị thu hồi sau đó, {_when(when)}; OCSP)",
    )


def _timestamp_check(
    signatures: RecordSignaturesVerification,
    slots: dict[str, CheckedTimestamp],
    archives: Sequence[CheckedTimestamp],
) -> Check:
    """TIMESTAMP (issue 12): see the module docstring."""
    code = CheckCode.TIMESTAMP
    problems: list[str] = []
    notes: list[str] = []
    for slot in SIGNATURE_SLOTS:
        checked = slots.get(slot)
        result = signatures.slots[slot]
        if checked is None:
            if result.certificate is not None:
                notes.append(f"{slot}: chưa có dấu thời gian (mức B, đang chờ bổ sung)")
            continue
        if checked.info is None:
            problems.append(f"{slot}: {checked.error}")
            continue
        when = checked.info.time
        certificate = result.certificate
        if result.signing_time is not None and when < result.signing_time - _TS_SKEW:
            problems.append(f"{slot}: dấu thời gian {_when(when)} trước thời điểm ký")
        elif certificate is not None and not (
            certificate.not_valid_before_utc <= when <= certificate.not_valid_after_utc
        ):
            problems.append(
                f"{slot}: dấu thời gian {_when(when)} ngoài thời hạn chứng thư của người ký"
            )
        else:
            notes.append(f"{slot}: {_when(when)} ({checked.info.tsa_name})")
    for checked in archives:
        if checked.info is None:
            problems.append(f"lưu trữ {checked.label}: {checked.error}")
        else:
            notes.append(f"lưu trữ {checked.label}: {_when(checked.info.time)}")
    if problems:
        return Check(code, CheckStatus.FAIL, "Dấu thời gian không hợp lệ — " + "; ".join(problems))
    return Check(code, CheckStatus.PASS, "Dấu thời gian — " + "; ".join(notes or ["không có"]))


def _timestamp_times(
    slots: dict[str, CheckedTimestamp], archives: Sequence[CheckedTimestamp]
) -> dict[str, str]:
    return {c.label: c.info.time.isoformat() for c in [*slots.values(), *archives] if c.info}


def _revocation_check(
    root: etree._Element,
    signatures: RecordSignaturesVerification,
    trusted_roots: Sequence[x509.Certificate],
    crl_source: CrlSource | None,
    now: dt.datetime,
    at_times: dict[str, dt.datetime] | None = None,
    ocsp_source: OcspSource | None = None,
) -> Check:
    code = CheckCode.REVOCATION
    at_times = at_times or {}
    if crl_source is None and ocsp_source is None:
        return Check(
            code,
            CheckStatus.INDETERMINATE,
            "Chưa kiểm tra tình trạng thu hồi chứng thư số: chưa cấu hình nguồn CRL",
        )
    slots = [signatures.slots[s] for s in SIGNATURE_SLOTS if signatures.slots[s].certificate]
    if not slots:
        return Check(
            code,
            CheckStatus.INDETERMINATE,
            "Không kiểm tra được tình trạng thu hồi: học bạ không kèm chứng thư số nào",
        )
    cache: dict[x509.Certificate, tuple[bool, Any]] = {}
    outcomes = []
    for result in slots:
        candidates = itertools.chain(trusted_roots, _keyinfo_certificates(root, result.slot))
        outcomes.append(
            _revocation_of_slot(
                result,
                crl_source,
                candidates,
                now,
                cache,
                at_times.get(result.slot),
                ocsp_source,
            )
        )
    missing = [s for s in SIGNATURE_SLOTS if signatures.slots[s].certificate is None]
    statuses = {status for status, _ in outcomes}
    detail = "; ".join(text for _, text in outcomes)
    if missing:
        detail += f"; ô {', '.join(missing)} không có chứng thư để kiểm tra"
    if CheckStatus.FAIL in statuses:
        return Check(code, CheckStatus.FAIL, f"Chứng thư số bị thu hồi trước khi ký — {detail}")
    if CheckStatus.INDETERMINATE in statuses:
        return Check(
            code,
            CheckStatus.INDETERMINATE,
            f"Chưa xác định được tình trạng thu hồi, hãy kiểm tra lại sau — {detail}",
        )
    return Check(
        code, CheckStatus.PASS, f"Chứng thư số của người ký không bị thu hồi khi ký — {detail}"
    )


def _role_check(
    result: SlotVerification, registry: Registry | None, facts: dict[str, str | None]
) -> Check:
    slot = result.slot
    code = f"ROLE_{slot}"
    role = (
        "giáo viên chủ nhiệm lớp {class_name} của trường {school} năm học {year}"
        if slot == "GVCN"
        else "hiệu trưởng hoặc phó hiệu trưởng được ủy quyền của trường {school}"
    ).format(
        class_name=facts["class_name"] or "?",
        school=facts["school_code"] or "?",
        year=facts["school_year"] or "?",
    )

    def indeterminate(why: str) -> Check:
        return Check(code, CheckStatus.INDETERMINATE, f"Chưa xác định được {role}: {why}", slot)

    if not _authenticated(result):
        return indeterminate(f"chữ ký ô {slot} không hợp lệ nên chưa xác định được người ký")
    assert result.certificate is not None and result.signing_time is not None
    cccd = cccd_of(result.certificate)
    organisation = _school_code_of(result.certificate)
    if cccd is None or organisation is not None:  # no registry could make this a person
        kind = (
            f"chứng thư số của tổ chức (trường {organisation})"
            if organisation is not None
            else "chứng thư số không ghi số CCCD của một người"
        )
        return Check(
            code,
            CheckStatus.FAIL,
            f"Ô ký {slot} được ký bằng {kind} ({_common_name(result.certificate)}): chỉ chứng "
            f"thư số cá nhân của {role} mới được ký ô này",
            slot,
        )
    if registry is None:
        return indeterminate("không có sổ đăng ký để đối chiếu vai trò người ký")
    if not facts["school_code"] or not facts["school_year"] or not facts["class_name"]:
        return indeterminate("học bạ thiếu mã trường, năm học hoặc lớp")
    ok, held = _call(
        "registry.signer_held_role",
        registry.signer_held_role,
        slot,
        cccd,
        facts["school_code"],
        facts["school_year"],
        facts["class_name"],
        result.signing_time,
    )
    name = _common_name(result.certificate)
    when = _when(result.signing_time)
    if not ok:
        return indeterminate("không truy vấn được sổ đăng ký")
    if held is None:
        return indeterminate(f"sổ đăng ký không biết người ký ({name}) hoặc trường này")
    if held:
        return Check(code, CheckStatus.PASS, f"{name} là {role} lúc ký ({when})", slot)
    return Check(code, CheckStatus.FAIL, f"{name} không phải {role} lúc ký ({when})", slot)


def _school_certificate_check(
    result: SlotVerification, registry: Registry | None, school_code: str | None
) -> Check:
    code = CheckCode.SCHOOL_CERTIFICATE
    slot = result.slot

    def indeterminate(why: str) -> Check:
        return Check(
            code,
            CheckStatus.INDETERMINATE,
            f"Chưa xác định được chứng thư số của trường đã được phê duyệt: {why}",
            slot,
        )

    if not _authenticated(result):
        return indeterminate("chữ ký phát hành không hợp lệ")
    assert result.certificate is not None and result.signing_time is not None
    if cccd_of(result.certificate) is not None and _school_code_of(result.certificate) is None:
        return Check(
            code,
            CheckStatus.FAIL,
            f"Ký phát hành bằng chứng thư số cá nhân ({_common_name(result.certificate)}), "
            "không phải chứng thư số của trường",
            slot,
        )
    if registry is None:
        return indeterminate("không có sổ đăng ký chứng thư số")
    if not school_code:
        return indeterminate("học bạ không ghi mã trường")
    fingerprint = _sha256_hex(result.certificate)
    ok, approved = _call(
        "registry.school_certificate_approved",
        registry.school_certificate_approved,
        school_code,
        fingerprint,
        result.signing_time,
    )
    if not ok:
        return indeterminate("không truy vấn được sổ đăng ký")
    if approved is None:
        return indeterminate(f"sổ đăng ký không biết trường {school_code}")
    when = _when(result.signing_time)
    if approved:
        return Check(
            code,
            CheckStatus.PASS,
            f"Chứng thư số dùng để ký phát hành đã được phê duyệt cho trường {school_code} "
            f"lúc ký ({when})",
            slot,
        )
    return Check(
        code,
        CheckStatus.FAIL,
        f"Chứng thư số dùng để ký phát hành chưa được phê duyệt cho trường {school_code} "
        f"lúc ký ({when})",
        slot,
    )


def _signed_parts(root: etree._Element) -> bytes | None:
    """A digest of what the signatures cover, for comparing two copies of a record: the
    exclusive canonical form of ``DU_LIEU_HOC_BA`` and, per slot, the canonical
    ``SignedInfo`` (which holds the SigningTime's digest) and the decoded
    ``SignatureValue``. None when the document lacks any of them."""
    data = root.find("DU_LIEU_HOC_BA")
    if data is None:
        return None
    digest = hashlib.sha256(etree.tostring(data, method="c14n", exclusive=True))
    for slot in SIGNATURE_SLOTS:
        signature = root.find(f"DANH_SACH_THONG_TIN_KY/{slot}/{{{DS_NS}}}Signature")
        signed_info = None if signature is None else signature.find(f"{{{DS_NS}}}SignedInfo")
        value = None if signature is None else signature.find(f"{{{DS_NS}}}SignatureValue")
        if signed_info is None or value is None:
            return None
        try:
            decoded = base64.b64decode("".join((value.text or "").split()), validate=True)
        except ValueError:
            return None
        digest.update(b"\0" + slot.encode() + b"\0")
        digest.update(etree.tostring(signed_info, method="c14n", exclusive=True))
        digest.update(b"\0" + decoded)
    return digest.digest()


def _same_signed_parts(root: etree._Element, issued_xml: bytes | None) -> bool:
    """Do this document and the issued copy carry the same signed content and the same
    signatures (whatever else differs)?"""
    if not issued_xml:
        return False
    try:
        issued = parse_record_xml_safely(bytes(issued_xml))
    except Exception as exc:  # noqa: BLE001 - a broken stored copy compares as different
        log.warning("issued copy unreadable: %s", type(exc).__name__)
        return False
    mine = _signed_parts(root)
    return mine is not None and mine == _signed_parts(issued)


def _registry_match_check(
    root: etree._Element, lookup_code: str | None, document_sha256: str, registry: Registry | None
) -> Check:
    code = CheckCode.REGISTRY_MATCH
    if not lookup_code:
        return Check(
            code,
            CheckStatus.FAIL,
            "Học bạ không có mã tra cứu (MA_TRA_CUU_UUID): không phải học bạ đã phát hành",
        )
    if registry is None:
        return Check(
            code,
            CheckStatus.INDETERMINATE,
            "Chưa đối chiếu với sổ học bạ đã phát hành: không có sổ đăng ký",
        )
    ok, info = _call("registry.issued_record", registry.issued_record, lookup_code)
    if not ok:
        return Check(
            code,
            CheckStatus.INDETERMINATE,
            "Chưa đối chiếu với sổ học bạ đã phát hành: không truy vấn được sổ đăng ký",
        )
    if info is None:
        return Check(
            code,
            CheckStatus.PASS,
            f"Mã tra cứu {lookup_code} không có trong sổ: không phải học bạ của hệ thống này "
            "(chỉ đối chiếu được chữ ký, chứng thư và vai trò)",
        )
    problems = []
    if str(info.state).lower() in _REVOKED_STATES:
        successor = info.successor_lookup_code
        problems.append(
            f"Học bạ đã bị thu hồi; học bạ thay thế có mã tra cứu {successor}"
            if successor
            else "Học bạ đã bị thu hồi; chưa có học bạ thay thế"
        )
    byte_identical = str(info.xml_sha256).strip().lower() == document_sha256 or (
        document_sha256 in {h.strip().lower() for h in info.earlier_sha256}
    )  # a copy exported before time-stamps were added (migration 0010)
    issued_xml = None if byte_identical else info.issued_xml()  # read only when needed
    same_signed = byte_identical or _same_signed_parts(root, issued_xml)
    if not same_signed:
        problems.append(
            "nội dung đã ký khác bản học bạ đã phát hành (mã băm SHA-256 không khớp)"
            if issued_xml
            else "nội dung tệp khác bản học bạ đã phát hành (mã băm SHA-256 không khớp)"
        )
    if problems:
        return Check(code, CheckStatus.FAIL, "; ".join(problems))
    if not byte_identical:
        return Check(
            code,
            CheckStatus.PASS,
            f"Tệp không trùng từng byte với bản đã phát hành (mã tra cứu {lookup_code}), "
            "nhưng dữ liệu được ký và các chữ ký trùng khớp bản đã phát hành: chỉ khác ở "
            "phần không được ký (ví dụ dòng trống hoặc khoảng trắng cuối tệp)",
            issue_codes=(NOT_BYTE_IDENTICAL,),
        )
    return Check(
        code,
        CheckStatus.PASS,
        f"Khớp sổ học bạ đã phát hành: mã tra cứu {lookup_code}, mã băm SHA-256 trùng khớp",
    )


# ================================================================================ entry
def verify_document(
    data: bytes,
    *,
    trusted_roots: Sequence[x509.Certificate],
    registry: Registry | None = None,
    crl_source: CrlSource | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    now: dt.datetime | None = None,
    ocsp_source: OcspSource | None = None,
    parsed: etree._Element | None = None,
) -> VerificationReport:
    """Verify one record XML and report every check (see the module docstring).

    ``trusted_roots``: the trust anchors. ``registry``: the system's registry, or ``None``
    (registry checks are then indeterminate). ``crl_source(certificate)`` returns the CRL
    of the certificate's issuer or raises :class:`CrlUnavailable`. ``now`` is the time CRL
    freshness is judged at (default: now). ``parsed``: what
    ``parse_record_xml_safely(data)`` returned to a caller that read the record first
    (the province portal), so ``data`` is not parsed twice; the tree must not have been
    changed. Never raises on bad input.
    """
    now = now or dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    if (
        parsed is not None
        and isinstance(data, bytes | bytearray)
        and len(data) <= min(max_bytes, DEFAULT_MAX_BYTES)
    ):
        parse_check, root = _parsed_safely(min(max_bytes, DEFAULT_MAX_BYTES)), parsed
    else:
        parse_check, root = _safe_parse(data, max_bytes)
    if root is None:
        return VerificationReport.from_checks([parse_check])
    data = bytes(data)
    info = _identifying_fields(root)
    info["document_sha256"] = hashlib.sha256(data).hexdigest()
    # one parse for every check: the schema and the signatures read the same tree
    checks = [parse_check, _schema(root)]

    try:
        signatures = verify_record_tree(root, trusted_roots, source=data)
    except Exception as exc:  # noqa: BLE001 - never raise on bad input
        log.warning("signature verification failed: %s", type(exc).__name__, exc_info=True)
        checks += [
            Check(
                f"SIGNATURE_{slot}",
                CheckStatus.FAIL,
                f"Không kiểm tra được chữ ký {_SLOT_VI[slot]} (lỗi nội bộ)",
                slot,
            )
            for slot in SIGNATURE_SLOTS
        ]
        return VerificationReport.from_checks(checks, **info)

    checks += [_signature_check(signatures.slots[slot]) for slot in SIGNATURE_SLOTS]
    checks.append(_signing_order_check(signatures))
    stamps, archives = check_record_timestamps(root, trusted_roots)
    checks.append(_timestamp_check(signatures, stamps, archives))
    at_times = {slot: c.info.time for slot, c in stamps.items() if c.info is not None}
    checks.append(
        _revocation_check(root, signatures, trusted_roots, crl_source, now, at_times, ocsp_source)
    )
    checks.append(_role_check(signatures.slots["GVCN"], registry, info))
    checks.append(_role_check(signatures.slots["CBQL"], registry, info))
    checks.append(
        _school_certificate_check(signatures.slots["KY_PHAT_HANH"], registry, info["school_code"])
    )
    checks.append(
        _registry_match_check(root, info["lookup_code"], str(info["document_sha256"]), registry)
    )
    report = VerificationReport.from_checks(checks, **info)
    report.timestamps = _timestamp_times(stamps, archives)
    return report
