"""Verification of a signed book (HOCBA_SPEC §4): the PDF's own checks (see the codes in
:mod:`hocba.pdf.sign`'s docstring), then the embedded record XML's
(:func:`~hocba.xml.verify.verify_document`), in one
:class:`~hocba.xml.verify.VerificationReport`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import logging
import re
from collections.abc import Sequence
from enum import Enum
from typing import Any

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import PdfSignatureStatus
from pyhanko_certvalidator import ValidationContext

from hocba.pdf.book import (
    ATTACHMENT_PATTERN,
    DEFAULT_MAX_PDF_BYTES,
    PRINCIPAL_FIELD,
    SEAL_FIELD,
    PdfCheckCode,
    PdfSignError,
    _get,
    _name_attribute,
    _record_facts,
    _vn_time,
    attachment_name,
)
from hocba.pdf.cms import _asn1
from hocba.pdf.render import LOOKUP_SUBJECT_PREFIX
from hocba.xml.verify import (
    Check,
    CheckStatus,
    CrlSource,
    CrlUnavailable,
    OcspSource,
    Registry,
    VerificationReport,
    verify_document,
)

log = logging.getLogger(__name__)

# =============================================================================== verification
_KEY_USAGE = KeyUsageConstraints(key_usage={"digital_signature", "non_repudiation"})
_ALLOWED_LATER_CHANGES = {"NONE", "LTA_UPDATES", "FORM_FILLING"}


def _check(code: str, status: CheckStatus, message: str, slot: str | None = None) -> Check:
    return Check(code, status, message, slot)


def _attachments(root: Any) -> dict[str, bytes]:
    """Embedded files named ``hoc-ba-<uuid>.xml`` in the catalog's name tree."""
    found: dict[str, bytes] = {}
    tree = _get(_get(root, "/Names"), "/EmbeddedFiles")
    if tree is None:
        return found

    def walk(node: Any, depth: int) -> None:
        pairs = _get(node, "/Names") or ()
        for i in range(0, len(pairs) - 1, 2):
            name = str(pairs[i])
            if ATTACHMENT_PATTERN.fullmatch(name):
                stream = _get(_get(pairs[i + 1], "/EF"), "/F")
                if stream is not None:
                    found[name] = stream.data
        if depth < 8:
            for kid in _get(node, "/Kids") or ():
                walk(kid, depth + 1)

    walk(tree, 0)
    return found


def embedded_record_xml(pdf: bytes) -> bytes | None:
    """The record XML attached to a signed book (the final revision), or ``None``."""
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    files = _attachments(reader.root)
    return next(iter(files.values())) if len(files) == 1 else None


def _embedded_xml_check(
    reader: PdfFileReader,
    principal: Any,
    registry: Registry | None,
) -> tuple[Check, bytes | None]:
    code = PdfCheckCode.PDF_EMBEDDED_XML
    current = _attachments(reader.root)
    if len(current) != 1:
        what = "không có" if not current else f"có {len(current)}"
        return _check(code, CheckStatus.FAIL, f"Bản PDF {what} tệp học bạ XML đính kèm"), None
    name, xml = next(iter(current.items()))
    if principal is None:
        return (
            _check(code, CheckStatus.FAIL, "Không có chữ ký của Hiệu trưởng bao trùm tệp XML"),
            xml,
        )
    signed = _attachments(reader.get_historical_root(principal.signed_revision))
    if signed.get(name) != xml:
        return (
            _check(
                code,
                CheckStatus.FAIL,
                f"Tệp {name} đính kèm đã bị thay đổi hoặc thêm vào sau khi Hiệu trưởng ký",
            ),
            xml,
        )
    facts = _safe_facts(xml)
    lookup = facts.get("MA_TRA_CUU_UUID")
    if name != attachment_name(str(lookup)):
        return (
            _check(code, CheckStatus.FAIL, f"Tên tệp {name} không khớp mã tra cứu trong XML"),
            xml,
        )
    info = _get(reader.get_historical_resolver(principal.signed_revision).trailer_view, "/Info")
    subject = str(_get(info, "/Subject") or "")
    if subject != f"{LOOKUP_SUBJECT_PREFIX}{lookup}":
        return (
            _check(
                code,
                CheckStatus.FAIL,
                "Mã tra cứu của tệp XML đính kèm khác mã tra cứu ghi trên bản PDF",
            ),
            xml,
        )
    digest = hashlib.sha256(xml).hexdigest()
    if registry is None:
        return (
            _check(
                code,
                CheckStatus.PASS,
                f"Tệp {name} đính kèm được chữ ký bao trùm, không bị thay đổi "
                "(chưa đối chiếu sổ học bạ đã phát hành: không có sổ đăng ký)",
            ),
            xml,
        )
    try:
        issued = registry.issued_record(str(lookup))
    except Exception as exc:  # noqa: BLE001 - registry down: cannot check now
        log.warning("registry.issued_record failed: %s", type(exc).__name__)
        return (
            _check(
                code,
                CheckStatus.INDETERMINATE,
                "Chưa đối chiếu được tệp XML với sổ học bạ đã phát hành (sổ không trả lời)",
            ),
            xml,
        )
    if issued is None:
        return (
            _check(
                code,
                CheckStatus.PASS,
                f"Tệp {name} đính kèm không bị thay đổi; mã tra cứu không có trong sổ: "
                "học bạ của hệ thống khác",
            ),
            xml,
        )
    if str(issued.xml_sha256).strip().lower() != digest:
        return (
            _check(
                code,
                CheckStatus.FAIL,
                "Tệp XML đính kèm khác bản học bạ đã phát hành (mã băm SHA-256 không khớp)",
            ),
            xml,
        )
    return (
        _check(
            code,
            CheckStatus.PASS,
            f"Tệp {name} đính kèm trùng từng byte với học bạ đã phát hành (SHA-256 khớp)",
        ),
        xml,
    )


def _safe_facts(xml: bytes | None) -> dict[str, str]:
    if xml is None:
        return {}
    try:
        return _record_facts(xml)
    except PdfSignError:
        return {}


def _cryptography_cert(certificate: asn1_x509.Certificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(certificate.dump())


def _subject_id(certificate: x509.Certificate, prefix: str) -> str | None:
    for oid in (NameOID.SERIAL_NUMBER, NameOID.USER_ID):
        for attribute in certificate.subject.get_attributes_for_oid(oid):
            match = re.fullmatch(rf"\s*{prefix}\s*:\s*(\S+)\s*", str(attribute.value), re.I)
            if match:
                return match.group(1)
    return None


async def _validate(signature: Any, roots: Sequence[asn1_x509.Certificate]) -> PdfSignatureStatus:
    """pyHanko's validation, at the signing time the signature claims (as for the XML)."""
    claimed = signature.self_reported_timestamp
    context = ValidationContext(
        trust_roots=list(roots),
        moment=claimed,
        allow_fetching=False,
        revocation_mode="soft-fail",
    )
    return await async_validate_pdf_signature(
        signature, signer_validation_context=context, key_usage_settings=_KEY_USAGE
    )


def _signature_check(
    code: str,
    label: str,
    signature: Any,
    status: PdfSignatureStatus | Exception | None,
    expected: tuple[str, str | None],
) -> Check:
    if signature is None:
        return _check(code, CheckStatus.FAIL, f"Không có chữ ký {label} trong bản PDF")
    if isinstance(status, Exception) or status is None:
        return _check(code, CheckStatus.FAIL, f"Không kiểm tra được chữ ký {label} (hỏng)")
    problems = []
    if not status.intact:
        problems.append("nội dung được ký đã bị thay đổi (giá trị băm không khớp)")
    if not status.valid:
        problems.append("giá trị chữ ký không đúng với chứng thư số")
    if not status.trusted:
        indic = status.trust_problem_indic
        why = indic.name if isinstance(indic, Enum) else "?"  # pyHanko's are enums
        problems.append(f"chứng thư số không chuỗi được tới CA tin cậy ({why})")
    certificate = _cryptography_cert(status.signing_cert)
    prefix, wanted = expected
    if wanted:
        have = _subject_id(certificate, prefix)
        if have is not None and have != wanted:
            problems.append(f"chứng thư số không phải của người/đơn vị ghi trong học bạ ({prefix})")
    name = _name_attribute(certificate, NameOID.COMMON_NAME) or "?"
    when = status.signer_reported_dt
    when_text = _vn_time(when) if when else "?"
    if problems:
        return _check(
            code, CheckStatus.FAIL, f"Chữ ký {label} không hợp lệ: " + "; ".join(problems)
        )
    return _check(code, CheckStatus.PASS, f"Chữ ký {label} hợp lệ: {name}, ký lúc {when_text}")


def _lock_check(
    signatures: list[Any], statuses: dict[str, Any], stamped_to_the_end: bool = False
) -> Check:
    code = PdfCheckCode.PDF_LOCK
    names = [s.field_name for s in signatures]
    if names != [PRINCIPAL_FIELD, SEAL_FIELD]:
        return _check(
            code,
            CheckStatus.FAIL,
            "Bản PDF phải có đúng hai chữ ký, Hiệu trưởng rồi dấu của trường; có: "
            + (", ".join(names) or "không có chữ ký nào"),
        )
    principal, seal = signatures
    if principal.docmdp_level is None or principal.sig_object.get("/Reference") is None:
        return _check(code, CheckStatus.FAIL, "Chữ ký của Hiệu trưởng không phải chữ ký chứng nhận")
    if seal.docmdp_level != fields.MDPPerm.NO_CHANGES or seal.fieldmdp is None:
        return _check(code, CheckStatus.FAIL, "Dấu của trường không khoá tài liệu (FieldMDP P=1)")
    seal_status = statuses.get(SEAL_FIELD)
    principal_status = statuses.get(PRINCIPAL_FIELD)
    if not isinstance(seal_status, PdfSignatureStatus) or not isinstance(
        principal_status, PdfSignatureStatus
    ):
        return _check(code, CheckStatus.FAIL, "Không phân tích được các lần sửa đổi của tệp")
    seal_level = seal_status.modification_level
    lta_only = (  # issue 12: DSS + document timestamp may follow the lock (PAdES B-LTA)
        stamped_to_the_end  # a valid document timestamp covers every byte of the file
        and seal_status.coverage is not None
        and seal_status.coverage.name == "ENTIRE_REVISION"
        and seal_status.docmdp_ok
        and seal_level is not None
        and seal_level.name in ("NONE", "LTA_UPDATES")
    )
    if seal_status.coverage is None or (
        seal_status.coverage.name != "ENTIRE_FILE" and not lta_only
    ):
        return _check(
            code,
            CheckStatus.FAIL,
            "Tài liệu đã bị sửa đổi sau khi đóng dấu khoá (có phần được thêm vào sau chữ ký cuối)",
        )
    level = principal_status.modification_level
    if not principal_status.docmdp_ok or level is None or level.name not in _ALLOWED_LATER_CHANGES:
        return _check(
            code,
            CheckStatus.FAIL,
            "Sau chữ ký của Hiệu trưởng có thay đổi không được phép "
            f"({level.name if level else '?'})",
        )
    return _check(
        code,
        CheckStatus.PASS,
        "Tài liệu được Hiệu trưởng chứng nhận và dấu của trường khoá lại; "
        + (
            "sau đó chỉ bổ sung dữ liệu xác thực dài hạn (DSS, dấu thời gian tài liệu)"
            if lta_only
            else "không có thay đổi nào sau chữ ký cuối"
        ),
    )


async def _validate_timestamp(signature: Any, roots: Sequence[asn1_x509.Certificate]) -> Any:
    from pyhanko.sign.validation import async_validate_pdf_timestamp

    context = ValidationContext(
        trust_roots=list(roots), allow_fetching=False, revocation_mode="soft-fail"
    )
    return await async_validate_pdf_timestamp(signature, validation_context=context)


def _document_timestamp_check(
    reader: PdfFileReader, roots: Sequence[asn1_x509.Certificate]
) -> tuple[Check | None, bool]:
    """PDF_TIMESTAMP (issue 12, PAdES B-LTA): every document timestamp is intact, valid
    and from a trusted TSA; the message gives its time. ``(None, False)`` for a B-B copy;
    the flag says the last one is valid and covers the whole file (for ``PDF_LOCK``)."""
    stamps = list(reader.embedded_timestamp_signatures)
    if not stamps:
        return None, False
    code = PdfCheckCode.PDF_TIMESTAMP
    times = []
    status: Any = None
    for stamp in stamps:
        try:
            status = asyncio.run(_validate_timestamp(stamp, roots))
        except Exception as exc:  # noqa: BLE001 - a malformed timestamp is a failed check
            log.info("PDF document timestamp validation failed: %s", type(exc).__name__)
            return _check(code, CheckStatus.FAIL, "Dấu thời gian tài liệu hỏng"), False
        if not (status.intact and status.valid and status.trusted):
            return (
                _check(
                    code,
                    CheckStatus.FAIL,
                    "Dấu thời gian tài liệu không hợp lệ hoặc không do TSA tin cậy cấp",
                ),
                False,
            )
        times.append(_vn_time(status.timestamp))
    to_the_end = status.coverage is not None and status.coverage.name == "ENTIRE_FILE"
    return (
        _check(code, CheckStatus.PASS, "Dấu thời gian tài liệu (PAdES B-LTA): " + ", ".join(times)),
        to_the_end,
    )


def _revocation_check(
    statuses: dict[str, Any],
    roots: Sequence[x509.Certificate],
    crl_source: CrlSource | None,
) -> Check:
    code = PdfCheckCode.PDF_REVOCATION
    if crl_source is None:
        return _check(
            code,
            CheckStatus.INDETERMINATE,
            "Chưa kiểm tra tình trạng thu hồi chứng thư số của chữ ký PDF: chưa cấu hình nguồn CRL",
        )
    outcomes: list[tuple[CheckStatus, str]] = []
    for field, label in ((PRINCIPAL_FIELD, "Hiệu trưởng"), (SEAL_FIELD, "dấu của trường")):
        status = statuses.get(field)
        if not isinstance(status, PdfSignatureStatus):
            outcomes.append((CheckStatus.INDETERMINATE, f"{label}: không có chứng thư"))
            continue
        certificate = _cryptography_cert(status.signing_cert)
        signed_at = status.signer_reported_dt
        try:
            crl = crl_source(certificate)
        except CrlUnavailable:
            outcomes.append((CheckStatus.INDETERMINATE, f"{label}: không lấy được CRL"))
            continue
        except Exception as exc:  # noqa: BLE001 - a CRL service down is "cannot check now"
            log.warning("crl_source failed: %s", type(exc).__name__)
            outcomes.append((CheckStatus.INDETERMINATE, f"{label}: không lấy được CRL"))
            continue
        issuer = next((r for r in roots if r.subject == certificate.issuer), None)
        public_key = issuer.public_key() if issuer is not None else None
        if (
            not isinstance(crl, x509.CertificateRevocationList)
            or not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
            or crl.issuer != certificate.issuer
            or not crl.is_signature_valid(public_key)
        ):
            outcomes.append((CheckStatus.INDETERMINATE, f"{label}: CRL không do CA cấp ký"))
            continue
        revoked = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
        if revoked is not None and (signed_at is None or revoked.revocation_date_utc <= signed_at):
            outcomes.append((CheckStatus.FAIL, f"{label}: chứng thư số đã bị thu hồi trước khi ký"))
        else:
            outcomes.append((CheckStatus.PASS, f"{label}: chưa bị thu hồi khi ký"))
    statuses_seen = {status for status, _ in outcomes}
    detail = "; ".join(text for _, text in outcomes)
    if CheckStatus.FAIL in statuses_seen:
        return _check(code, CheckStatus.FAIL, f"Chứng thư số bị thu hồi — {detail}")
    if CheckStatus.INDETERMINATE in statuses_seen:
        return _check(code, CheckStatus.INDETERMINATE, f"Chưa xác định được — {detail}")
    return _check(code, CheckStatus.PASS, f"Chứng thư số không bị thu hồi khi ký — {detail}")


def verify_pdf(
    data: bytes,
    *,
    trusted_roots: Sequence[x509.Certificate],
    registry: Registry | None = None,
    crl_source: CrlSource | None = None,
    max_bytes: int = DEFAULT_MAX_PDF_BYTES,
    now: dt.datetime | None = None,
    ocsp_source: OcspSource | None = None,
) -> VerificationReport:
    """Verify a signed book and report every check (see :mod:`hocba.pdf.sign`'s
    docstring): the PDF's own checks, then the embedded record XML's. Never raises on bad
    input."""
    parse_code = PdfCheckCode.PDF_PARSE
    if not isinstance(data, bytes | bytearray | memoryview):
        return VerificationReport.from_checks(
            [_check(parse_code, CheckStatus.FAIL, "Dữ liệu vào phải là nội dung tệp (bytes)")]
        )
    if len(data) > max_bytes:
        return VerificationReport.from_checks(
            [
                _check(
                    parse_code,
                    CheckStatus.FAIL,
                    f"Tệp quá lớn: {len(data):,} byte, giới hạn {max_bytes:,} byte; không đọc tệp",
                )
            ]
        )
    data = bytes(data)
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        signatures = list(reader.embedded_regular_signatures)
    except Exception as exc:  # noqa: BLE001 - never raise on bad input
        log.info("unreadable PDF: %s", type(exc).__name__)
        return VerificationReport.from_checks(
            [
                _check(
                    parse_code, CheckStatus.FAIL, "Không đọc được tệp PDF (hỏng hoặc sai định dạng)"
                )
            ]
        )
    checks = [_check(parse_code, CheckStatus.PASS, "Đọc được tệp PDF")]
    by_field = {s.field_name: s for s in signatures}
    principal, seal = by_field.get(PRINCIPAL_FIELD), by_field.get(SEAL_FIELD)

    try:
        xml_check, xml = _embedded_xml_check(reader, principal, registry)
    except Exception as exc:  # noqa: BLE001
        log.warning("embedded XML check failed: %s", type(exc).__name__, exc_info=True)
        xml_check, xml = (
            _check(
                PdfCheckCode.PDF_EMBEDDED_XML,
                CheckStatus.FAIL,
                "Không đọc được tệp học bạ XML đính kèm",
            ),
            None,
        )
    facts = _safe_facts(xml)

    roots = [_asn1(root) for root in trusted_roots]
    statuses: dict[str, PdfSignatureStatus | Exception] = {}
    for field, signature in ((PRINCIPAL_FIELD, principal), (SEAL_FIELD, seal)):
        if signature is None:
            continue
        try:
            statuses[field] = asyncio.run(_validate(signature, roots))
        except Exception as exc:  # noqa: BLE001 - a malformed signature is a failed check
            log.info("PDF signature validation failed: %s", type(exc).__name__)
            statuses[field] = exc
    checks.append(
        _signature_check(
            PdfCheckCode.PDF_SIGNATURE_PRINCIPAL,
            "của Hiệu trưởng",
            principal,
            statuses.get(PRINCIPAL_FIELD),
            ("CCCD", facts.get("SO_CCCD_GIAM_HIEU_KY_HOC_BA")),
        )
    )
    checks.append(
        _signature_check(
            PdfCheckCode.PDF_SIGNATURE_SEAL,
            "đóng dấu của trường",
            seal,
            statuses.get(SEAL_FIELD),
            ("MATRUONG", facts.get("MA_TRUONG")),
        )
    )
    document_timestamp, stamped_to_the_end = _document_timestamp_check(reader, roots)
    checks.append(_lock_check(signatures, statuses, stamped_to_the_end))
    if document_timestamp is not None:
        checks.append(document_timestamp)
    checks.append(_revocation_check(statuses, trusted_roots, crl_source))
    checks.append(xml_check)

    info: dict[str, str | None] = {}
    if xml is not None:
        report = verify_document(
            xml,
            trusted_roots=trusted_roots,
            registry=registry,
            crl_source=crl_source,
            now=now,
            ocsp_source=ocsp_source,
        )
        checks += report.checks
        info = {
            "lookup_code": report.lookup_code,
            "school_code": report.school_code,
            "school_year": report.school_year,
            "class_name": report.class_name,
            "pupil_name": report.pupil_name,
        }
    info["document_sha256"] = hashlib.sha256(data).hexdigest()
    return VerificationReport.from_checks(checks, **info)
