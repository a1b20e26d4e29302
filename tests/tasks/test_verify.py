"""The verification report (issue 3 item 7): every way a record can be wrong gives INVALID
with the right check named; what cannot be checked now gives INDETERMINATE, never INVALID.

Signed documents come from the session PKI of conftest.py; the registry is in memory."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from issuing import forge
from lxml import etree

from hocba.xml.dsig import DS_NS, IssueCode
from hocba.xml.record import build_record_xml, parse_record_xml_safely
from hocba.xml.verify import (
    Check,
    CheckCode,
    CheckStatus,
    CrlUnavailable,
    IssuedRecordInfo,
    Verdict,
    VerificationReport,
    first_texts,
    verify_document,
)

DS = f"{{{DS_NS}}}"
SCHOOL = "79000701"
YEAR = "2024-2025"
TEACHER_CCCD = "001190012345"
PRINCIPAL_CCCD = "001080054321"
PUPIL_CCCD = "079215000123"
OTHER_TEACHER_CCCD = "001190099999"
ALL_CODES = [code.value for code in CheckCode]
LONG_AGO = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
FAR_AHEAD = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


# ------------------------------------------------------------------ in-memory registry
@dataclass
class MemoryRegistry:
    """The Registry protocol on dicts: who held which role when, approved school
    certificates, issued records. Unknown person or school → None."""

    people: set[str] = field(default_factory=set)
    schools: set[str] = field(default_factory=set)
    # (cccd, school, year, class) → (from, to)
    homeroom: dict[tuple[str, str, str, str], tuple[dt.datetime, dt.datetime]] = field(
        default_factory=dict
    )
    # (cccd, school) → (from, to): principal or delegated vice principal
    management: dict[tuple[str, str], tuple[dt.datetime, dt.datetime]] = field(default_factory=dict)
    # (school, certificate SHA-256 hex) → (approved from, to)
    certificates: dict[tuple[str, str], tuple[dt.datetime, dt.datetime]] = field(
        default_factory=dict
    )
    issued: dict[str, IssuedRecordInfo] = field(default_factory=dict)
    calls: list[tuple] = field(default_factory=list)

    def signer_held_role(
        self,
        slot: str,
        cccd: str,
        school_code: str,
        school_year: str,
        class_name: str,
        at: dt.datetime,
    ) -> bool | None:
        self.calls.append(("role", slot, cccd, school_code, school_year, class_name, at))
        if cccd not in self.people or school_code not in self.schools:
            return None
        if slot == "GVCN":
            span = self.homeroom.get((cccd, school_code, school_year, class_name))
        elif slot == "CBQL":
            span = self.management.get((cccd, school_code))
        else:
            return False
        return span is not None and span[0] <= at <= span[1]

    def school_certificate_approved(
        self, school_code: str, cert_sha256_hex: str, at: dt.datetime
    ) -> bool | None:
        self.calls.append(("certificate", school_code, cert_sha256_hex, at))
        if school_code not in self.schools:
            return None
        span = self.certificates.get((school_code, cert_sha256_hex))
        return span is not None and span[0] <= at <= span[1]

    def issued_record(self, lookup_code: str) -> IssuedRecordInfo | None:
        self.calls.append(("issued", lookup_code))
        return self.issued.get(lookup_code)

    def register(
        self,
        document: bytes,
        state: str = "issued",
        successor: str | None = None,
        *,
        keep_copy: bool = True,
    ):
        """Record ``document`` as issued, with its bytes (as the app's database keeps them)
        unless ``keep_copy`` is false (a registry that keeps only the hash)."""
        code = _lookup_code(document)
        self.issued[code] = IssuedRecordInfo(
            hashlib.sha256(document).hexdigest(),
            state,
            successor,
            xml=document if keep_copy else None,
        )
        return self


def _fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


def _lookup_code(document: bytes) -> str:
    return parse_record_xml_safely(document).findtext(
        "DU_LIEU_HOC_BA/THONG_TIN_CHUNG/MA_TRA_CUU_UUID"
    )


@pytest.fixture
def registry(signing_staff) -> MemoryRegistry:
    """The school as the registry knows it: the 4A homeroom teacher, the principal, the
    approved RSA organisation certificate (not the ECDSA one)."""
    return MemoryRegistry(
        people={TEACHER_CCCD, PRINCIPAL_CCCD, OTHER_TEACHER_CCCD},
        schools={SCHOOL},
        homeroom={
            (TEACHER_CCCD, SCHOOL, YEAR, "4A"): (LONG_AGO, FAR_AHEAD),
            (OTHER_TEACHER_CCCD, SCHOOL, YEAR, "4B"): (LONG_AGO, FAR_AHEAD),
        },
        management={(PRINCIPAL_CCCD, SCHOOL): (LONG_AGO, FAR_AHEAD)},
        certificates={
            (SCHOOL, _fingerprint(signing_staff.school.certificate)): (LONG_AGO, FAR_AHEAD)
        },
    )


@pytest.fixture
def crl_source(signing_staff) -> Callable[[x509.Certificate], x509.CertificateRevocationList]:
    crl = signing_staff.pki.crl

    def source(certificate: x509.Certificate) -> x509.CertificateRevocationList:
        return crl

    return source


@pytest.fixture
def issue(make_record, sign_all) -> Callable[..., bytes]:
    """``issue(record_changes={...}, **sign_all_kwargs)``: a record with a fresh lookup
    code, signed in the three slots."""

    def make(record_changes: dict | None = None, **kwargs) -> bytes:
        record = make_record()
        record.thong_tin_chung["MA_TRA_CUU_UUID"] = str(uuid.uuid4())
        record.thong_tin_chung.update(record_changes or {})
        return sign_all([build_record_xml(record)], **kwargs)[0]

    return make


@pytest.fixture
def good(issue) -> bytes:
    return issue()


def _verify(document, signing_staff, registry=None, crl_source=None, **kwargs):
    return verify_document(
        document,
        trusted_roots=signing_staff.roots,
        registry=registry,
        crl_source=crl_source,
        **kwargs,
    )


def _statuses(report: VerificationReport) -> dict[str, CheckStatus]:
    return {check.code: check.status for check in report.checks}


def _failed(report: VerificationReport) -> set[str]:
    return {c.code for c in report.checks if c.status is CheckStatus.FAIL}


def _indeterminate(report: VerificationReport) -> set[str]:
    return {c.code for c in report.checks if c.status is CheckStatus.INDETERMINATE}


def _edit(document: bytes, change: Callable[[etree._Element], None]) -> bytes:
    root = parse_record_xml_safely(document)
    change(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(root, encoding="UTF-8")


def _signature(root: etree._Element, slot: str) -> etree._Element:
    element = root.find(f"DANH_SACH_THONG_TIN_KY/{slot}/{DS}Signature")
    assert element is not None
    return element


def _assert_invalid(report: VerificationReport, failed: set[str]) -> None:
    assert report.verdict is Verdict.INVALID and report.exit_code == 1
    assert _failed(report) == failed, report.render_text()


# ------------------------------------------------------------------ valid
def test_a_properly_signed_issued_record_is_valid(
    good: bytes, signing_staff, registry, crl_source, times
) -> None:
    registry.register(good)
    report = _verify(good, signing_staff, registry, crl_source)
    assert report.verdict is Verdict.VALID, report.render_text()
    assert report.exit_code == 0
    assert [c.code for c in report.checks] == ALL_CODES
    assert all(c.status is CheckStatus.PASS for c in report.checks)
    assert report.lookup_code == _lookup_code(good)
    assert (report.school_code, report.school_year, report.class_name) == (SCHOOL, YEAR, "4A")
    assert report.pupil_name == "Lê Minh Anh"
    assert report.document_sha256 == hashlib.sha256(good).hexdigest()
    # the registry was asked about the signers of the certificates, at their signing times
    assert ("role", "GVCN", TEACHER_CCCD, SCHOOL, YEAR, "4A", times.gvcn) in registry.calls
    assert ("role", "CBQL", PRINCIPAL_CCCD, SCHOOL, YEAR, "4A", times.cbql) in registry.calls
    school_fp = _fingerprint(signing_staff.school.certificate)
    assert ("certificate", SCHOOL, school_fp, times.seal) in registry.calls


def test_the_report_carries_no_personal_id(good: bytes, signing_staff, registry, crl_source):
    registry.register(good)
    report = _verify(good, signing_staff, registry, crl_source)
    text = json.dumps(report.to_json(), ensure_ascii=False) + report.render_text()
    for cccd in (PUPIL_CCCD, TEACHER_CCCD, PRINCIPAL_CCCD):
        assert cccd not in text
    assert "Lê Minh Anh" in text and "Nguyễn Thị Hoà" in text


# ------------------------------------------------------------------ tampering
@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("TONG_KET/DANH_SACH_MON_HOC/MON_HOC/DIEM_KIEM_TRA_DINH_KY", "10"),  # a score
        ("THONG_TIN_CHUNG/HO_VA_TEN", "Lê Minh Anh Tuấn"),  # the name
    ],
)
def test_changed_data_is_invalid(
    good: bytes, signing_staff, registry, crl_source, path: str, value: str
) -> None:
    registry.register(good)

    def change(root: etree._Element) -> None:
        element = root.find(f"DU_LIEU_HOC_BA/{path}")
        assert element.text != value
        element.text = value

    report = _verify(_edit(good, change), signing_staff, registry, crl_source)
    _assert_invalid(
        report,
        {"SIGNATURE_GVCN", "SIGNATURE_CBQL", "SIGNATURE_KY_PHAT_HANH", "REGISTRY_MATCH"},
    )
    for slot in ("GVCN", "CBQL", "KY_PHAT_HANH"):
        check = report.check(f"SIGNATURE_{slot}")
        assert check.issue_codes == ("DIGEST_MISMATCH_DATA",)
        assert "[DIGEST_MISMATCH_DATA]" in check.message_vi
        assert "đã bị thay đổi sau khi ký" in check.message_vi


def test_a_tree_parsed_by_the_caller_gives_the_same_report(
    good: bytes, signing_staff, registry, crl_source
) -> None:
    # the portal parses each record once and hands the tree over (verify_document(parsed=))
    registry.register(good)
    tampered = good.replace(
        b"<DIEM_KIEM_TRA_DINH_KY>10</DIEM_KIEM_TRA_DINH_KY>",
        b"<DIEM_KIEM_TRA_DINH_KY>9</DIEM_KIEM_TRA_DINH_KY>",
        1,
    )
    assert tampered != good
    for document in (good, tampered):
        fresh = _verify(document, signing_staff, registry, crl_source)
        given = _verify(
            document, signing_staff, registry, crl_source, parsed=parse_record_xml_safely(document)
        )
        assert [(c.code, c.status, c.message_vi) for c in given.checks] == [
            (c.code, c.status, c.message_vi) for c in fresh.checks
        ]
        assert given.verdict == fresh.verdict
        assert bool(_failed(given)) is (document is tampered)
    # a document over the size limit is refused before the tree is used
    tree = parse_record_xml_safely(good)
    big = _verify(good, signing_staff, registry, crl_source, parsed=tree, max_bytes=10)
    assert _failed(big) == {"SAFE_PARSE"}


def test_a_removed_signature_is_invalid(good, signing_staff, registry, crl_source) -> None:
    def remove(root: etree._Element) -> None:
        signature = _signature(root, "CBQL")
        signature.getparent().remove(signature)

    tampered = _edit(good, remove)
    registry.register(tampered)  # even when the registry would hold these very bytes
    report = _verify(tampered, signing_staff, registry, crl_source)
    _assert_invalid(report, {"SIGNATURE_CBQL"})
    assert report.check("SIGNATURE_CBQL").issue_codes == ("SIGNATURE_MISSING",)
    assert report.check("SIGNATURE_CBQL").slot == "CBQL"
    # no signer, no role to check, no complete order
    assert _indeterminate(report) == {"ROLE_CBQL", "SIGNING_ORDER"}


def test_reordered_signing_times_are_invalid(issue, signing_staff, registry, crl_source, times):
    document = issue(times=(times.cbql, times.gvcn, times.seal))  # principal before teacher
    registry.register(document)
    report = _verify(document, signing_staff, registry, crl_source)
    _assert_invalid(report, {"SIGNING_ORDER"})
    assert "SIGNING_ORDER_INVALID" in report.check("SIGNING_ORDER").message_vi


def test_a_signature_moved_to_another_slot_is_invalid(
    good, signing_staff, registry, crl_source
) -> None:
    def move(root: etree._Element) -> None:
        teacher, principal = _signature(root, "GVCN"), _signature(root, "CBQL")
        teacher.getparent().replace(teacher, principal)

    tampered = _edit(good, move)
    registry.register(tampered)
    report = _verify(tampered, signing_staff, registry, crl_source)
    _assert_invalid(report, {"SIGNATURE_GVCN", "SIGNATURE_CBQL"})
    assert "WRONG_SLOT" in report.check("SIGNATURE_GVCN").issue_codes
    assert report.check("SIGNATURE_CBQL").issue_codes == ("SIGNATURE_MISSING",)


def test_swapped_signatures_are_invalid(good, signing_staff, registry, crl_source) -> None:
    def swap(root: etree._Element) -> None:
        teacher, principal = _signature(root, "GVCN"), _signature(root, "CBQL")
        gvcn, cbql = teacher.getparent(), principal.getparent()
        gvcn.insert(0, principal)
        cbql.insert(0, teacher)

    tampered = _edit(good, swap)
    registry.register(tampered)
    report = _verify(tampered, signing_staff, registry, crl_source)
    # the principal's (later) signing time now sits in the first slot: the order fails too
    _assert_invalid(report, {"SIGNATURE_GVCN", "SIGNATURE_CBQL", "SIGNING_ORDER"})
    for slot in ("GVCN", "CBQL"):
        assert report.check(f"SIGNATURE_{slot}").issue_codes[0] == "WRONG_SLOT"


def test_duplicated_data_id_wrapping_is_invalid(good, signing_staff, registry, crl_source):
    def wrap(root: etree._Element) -> None:
        """Hide the signed data in a ds:Object, put a forged copy with Id="data" in place."""
        original = root.find("DU_LIEU_HOC_BA")
        forged = copy.deepcopy(original)
        forged.find("TONG_KET/KET_QUA_XEP_LOAI").text = "HTXS"
        root.replace(original, forged)
        etree.SubElement(_signature(root, "GVCN"), f"{DS}Object").append(original)

    tampered = _edit(good, wrap)
    registry.register(tampered)
    report = _verify(tampered, signing_staff, registry, crl_source)
    assert report.verdict is Verdict.INVALID
    for slot in ("GVCN", "CBQL", "KY_PHAT_HANH"):
        check = report.check(f"SIGNATURE_{slot}")
        assert check.status is CheckStatus.FAIL
        assert check.issue_codes == ("DATA_ID_AMBIGUOUS",)
    assert {"SIGNATURE_GVCN", "SIGNATURE_CBQL", "SIGNATURE_KY_PHAT_HANH"} <= _failed(report)
    # nothing about the signers is taken from a wrapped document
    assert {"ROLE_GVCN", "ROLE_CBQL", "SCHOOL_CERTIFICATE"} <= _indeterminate(report)


def test_a_second_id_data_in_the_signature_zone_is_invalid(good, signing_staff, registry):
    tampered = _edit(
        good,
        lambda root: etree.SubElement(root.find("DANH_SACH_THONG_TIN_KY"), "X", Id="data"),
    )
    report = _verify(tampered, signing_staff, registry.register(tampered))
    assert report.verdict is Verdict.INVALID
    assert report.check("SIGNATURE_KY_PHAT_HANH").issue_codes == ("DATA_ID_AMBIGUOUS",)


# ------------------------------------------------------------------ who signed
def test_a_teacher_of_another_class_in_gvcn_is_invalid(
    issue, signing_staff, registry, crl_source
) -> None:
    # a record of 4B, signed (and named in the data) by the homeroom teacher of 4A
    document = issue({"TEN_LOP": "4B"})
    registry.register(document)
    report = _verify(document, signing_staff, registry, crl_source)
    _assert_invalid(report, {"ROLE_GVCN"})
    assert "không phải giáo viên chủ nhiệm lớp 4B" in report.check("ROLE_GVCN").message_vi


def test_a_teacher_in_the_principal_slot_is_invalid(
    issue, signing_staff, registry, crl_source
) -> None:
    # the data even names the teacher as the signing principal, so the signature itself
    # is consistent: only the registry knows she is not management
    document = issue(
        {"SO_CCCD_GIAM_HIEU_KY_HOC_BA": TEACHER_CCCD, "TEN_GIAM_HIEU_KY_HOC_BA": "Nguyễn Thị Hoà"},
        principal=signing_staff.teacher,
    )
    registry.register(document)
    report = _verify(document, signing_staff, registry, crl_source)
    _assert_invalid(report, {"ROLE_CBQL"})
    assert "Nguyễn Thị Hoà không phải hiệu trưởng" in report.check("ROLE_CBQL").message_vi


def test_a_teacher_signing_for_the_named_principal_fails_twice(
    issue, signing_staff, registry, crl_source
) -> None:
    document = issue(principal=signing_staff.teacher)
    registry.register(document)
    report = _verify(document, signing_staff, registry, crl_source)
    _assert_invalid(report, {"SIGNATURE_CBQL", "ROLE_CBQL"})
    assert report.check("SIGNATURE_CBQL").issue_codes == ("SIGNER_ID_MISMATCH",)


def test_role_is_judged_at_the_signing_time(
    good, signing_staff, registry, crl_source, times
) -> None:
    registry.register(good)
    # the principal's term ended one minute before he signed
    registry.management[(PRINCIPAL_CCCD, SCHOOL)] = (LONG_AGO, times.cbql - dt.timedelta(minutes=1))
    report = _verify(good, signing_staff, registry, crl_source)
    _assert_invalid(report, {"ROLE_CBQL"})


def test_an_unknown_signer_cannot_be_checked(good, signing_staff, registry, crl_source) -> None:
    registry.register(good)
    registry.people.discard(TEACHER_CCCD)
    report = _verify(good, signing_staff, registry, crl_source)
    assert report.verdict is Verdict.INDETERMINATE and report.exit_code == 2
    assert _indeterminate(report) == {"ROLE_GVCN"}


# ------------------------------------------------------------------ forgeries (issue 16)
# Built as an attacker would (tests/issuing.forge): take an issued record, change the
# pupil, and sign it again with the project's own signer (sign_slots) and test-PKI keys.
def _forged(signing_staff, times, good: bytes, gvcn, cbql, seal, **kwargs) -> bytes:
    return forge(
        good,
        signing_staff.signer(gvcn),
        signing_staff.signer(cbql),
        signing_staff.signer(seal),
        times=(times.gvcn, times.cbql, times.seal),
        **kwargs,
    )


def _sealed_everywhere(good: bytes, signing_staff, times, **kwargs) -> bytes:
    """The clerk's forgery: the school's seal in GVCN, CBQL and KY_PHAT_HANH."""
    seal = signing_staff.school
    return _forged(signing_staff, times, good, seal, seal, seal, **kwargs)


def test_the_seal_in_every_slot_is_invalid_named_by_the_role_checks(
    good, signing_staff, registry, crl_source, times
) -> None:
    registry.register(good)
    forged = _sealed_everywhere(good, signing_staff, times)
    report = _verify(forged, signing_staff, registry, crl_source)
    _assert_invalid(report, {"ROLE_GVCN", "ROLE_CBQL"})
    assert "chứng thư số của tổ chức (trường 79000701)" in report.check("ROLE_GVCN").message_vi
    # what the attacker counted on still holds: each signature verifies on its own...
    assert report.check("SIGNATURE_GVCN").status is CheckStatus.PASS
    assert report.check("REGISTRY_MATCH").status is CheckStatus.PASS  # unknown code
    # ...and no registry is needed to see that a school is not a person
    report = _verify(forged, signing_staff, None, crl_source)
    assert report.verdict is Verdict.INVALID and report.exit_code == 1
    assert {"ROLE_GVCN", "ROLE_CBQL"} <= _failed(report)
    assert ("role", "GVCN") not in {c[:2] for c in registry.calls}  # never asked


def test_the_seal_in_gvcn_claiming_the_teachers_cccd_fails_the_slot_too(
    good, signing_staff, registry, crl_source, times
) -> None:
    forged = _sealed_everywhere(good, signing_staff, times, slot_cccd={"GVCN": TEACHER_CCCD})
    report = _verify(forged, signing_staff, registry, crl_source)
    _assert_invalid(report, {"SIGNATURE_GVCN", "ROLE_GVCN", "ROLE_CBQL"})
    assert report.check("SIGNATURE_GVCN").issue_codes == ("SLOT_CCCD_MISMATCH",)


def test_the_real_teacher_and_a_seal_forged_cbql_is_invalid(
    good, signing_staff, registry, crl_source, times
) -> None:
    seal = signing_staff.school
    forged = _forged(signing_staff, times, good, signing_staff.teacher, seal, seal)
    report = _verify(forged, signing_staff, registry, crl_source)
    _assert_invalid(report, {"ROLE_CBQL"})
    assert report.check("ROLE_GVCN").status is CheckStatus.PASS


def test_a_personal_certificate_as_the_seal_is_invalid(
    good, signing_staff, crl_source, times
) -> None:
    principal = signing_staff.principal
    forged = _forged(signing_staff, times, good, signing_staff.teacher, principal, principal)
    report = _verify(forged, signing_staff, None, crl_source)
    assert report.verdict is Verdict.INVALID
    assert "SCHOOL_CERTIFICATE" in _failed(report)
    assert "chứng thư số cá nhân" in report.check("SCHOOL_CERTIFICATE").message_vi


@pytest.mark.parametrize(
    ("element", "value", "issue_code"),
    [
        ("SO_CCCD", OTHER_TEACHER_CCCD, "SLOT_CCCD_MISMATCH"),
        ("NGAY_KY", "2025-05-20T10:00:00+07:00", "NGAY_KY_MISMATCH"),
    ],
)
def test_a_changed_slot_field_is_invalid(
    good, signing_staff, registry, crl_source, element: str, value: str, issue_code: str
) -> None:
    registry.register(good)
    altered = _edit(
        good,
        lambda root: setattr(root.find(f"DANH_SACH_THONG_TIN_KY/GVCN/{element}"), "text", value),
    )
    report = _verify(altered, signing_staff, registry, crl_source)
    _assert_invalid(report, {"SIGNATURE_GVCN"})
    assert report.check("SIGNATURE_GVCN").issue_codes == (issue_code,)
    assert f"[{issue_code}]" in report.check("SIGNATURE_GVCN").message_vi


def test_a_trailing_newline_is_not_byte_identical_but_not_forged(
    good, signing_staff, registry, crl_source
) -> None:
    registry.register(good)
    report = _verify(good + b"\n", signing_staff, registry, crl_source)
    assert report.verdict is Verdict.VALID, report.render_text()
    match = report.check("REGISTRY_MATCH")
    assert match.status is CheckStatus.PASS and match.issue_codes == ("NOT_BYTE_IDENTICAL",)
    assert "không trùng từng byte" in match.message_vi
    assert "trùng khớp bản đã phát hành" in match.message_vi
    assert report.document_sha256 != hashlib.sha256(good).hexdigest()
    # the issued bytes themselves: no note
    assert (
        _verify(good, signing_staff, registry, crl_source).check("REGISTRY_MATCH").issue_codes == ()
    )


def test_a_record_re_signed_under_the_issued_lookup_code_is_invalid(
    good, signing_staff, registry, crl_source, times
) -> None:
    """Even with every real key (the test PKI's teacher, principal and seal), other data
    under an issued lookup code is not the issued record."""
    registry.register(good)
    staff = signing_staff
    forged = _forged(
        staff,
        times,
        good,
        staff.teacher,
        staff.principal,
        staff.school,
        lookup_code=_lookup_code(good),
    )
    report = _verify(forged, signing_staff, registry, crl_source)
    _assert_invalid(report, {"REGISTRY_MATCH"})
    assert (
        "nội dung đã ký khác bản học bạ đã phát hành" in report.check("REGISTRY_MATCH").message_vi
    )


# ------------------------------------------------------------------ certificates
def test_an_expired_certificate_is_invalid(issue, signing_staff, registry, crl_source) -> None:
    document = issue(teacher=signing_staff.teacher_expired)
    registry.register(document)
    report = _verify(document, signing_staff, registry, crl_source)
    _assert_invalid(report, {"SIGNATURE_GVCN"})
    assert report.check("SIGNATURE_GVCN").issue_codes == ("CERTIFICATE_EXPIRED",)
    assert report.check("ROLE_GVCN").status is CheckStatus.PASS  # the signer is still known


def test_a_certificate_revoked_before_signing_is_invalid(
    issue, signing_staff, registry, crl_source
) -> None:
    document = issue(teacher=signing_staff.teacher_revoked_before)
    registry.register(document)
    report = _verify(document, signing_staff, registry, crl_source)
    _assert_invalid(report, {"REVOCATION"})
    message = report.check("REVOCATION").message_vi
    assert "GVCN: chứng thư số đã bị thu hồi" in message


def test_a_new_crl_object_is_read_afresh(issue, signing_staff, registry) -> None:
    # the revocation dates come from dsig's per-(CRL object, issuer) table: a CRL fetched
    # later, listing the teacher, is a new object and is read, not the older empty one
    document = issue(teacher=signing_staff.teacher_revoked_before)
    registry.register(document)
    listed = signing_staff.pki.crl
    empty = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(listed.issuer)
        .last_update(listed.last_update_utc)
        .next_update(listed.next_update_utc or listed.last_update_utc + dt.timedelta(days=1))
        .sign(signing_staff.pki._root_key, listed.signature_hash_algorithm)
    )
    for _ in range(2):  # the second round is answered from the cached tables
        report = _verify(document, signing_staff, registry, lambda certificate: empty)
        assert report.check("REVOCATION").status is CheckStatus.PASS, report.render_text()
        report = _verify(document, signing_staff, registry, lambda certificate: listed)
        _assert_invalid(report, {"REVOCATION"})


def test_a_certificate_revoked_after_signing_is_still_valid(
    issue, signing_staff, registry, crl_source
) -> None:
    document = issue(teacher=signing_staff.teacher_revoked_after)
    registry.register(document)
    report = _verify(document, signing_staff, registry, crl_source)
    assert report.verdict is Verdict.VALID, report.render_text()
    assert "bị thu hồi sau đó" in report.check("REVOCATION").message_vi


def test_a_certificate_from_an_untrusted_root_is_invalid(
    issue, signing_staff, registry, crl_source
) -> None:
    document = issue(teacher=signing_staff.teacher_untrusted)
    registry.register(document)
    report = _verify(document, signing_staff, registry, crl_source)
    _assert_invalid(report, {"SIGNATURE_GVCN"})
    assert report.check("SIGNATURE_GVCN").issue_codes == ("CERTIFICATE_UNTRUSTED",)
    # an untrusted certificate names nobody: no role question, no CRL of ours applies
    assert _indeterminate(report) == {"ROLE_GVCN", "REVOCATION"}
    # ...and the same document is valid for a verifier that trusts that root
    trusting = verify_document(
        document,
        trusted_roots=[*signing_staff.roots, signing_staff.other_root],
        registry=registry,
    )
    assert trusting.check("SIGNATURE_GVCN").status is CheckStatus.PASS


def test_a_seal_certificate_not_approved_is_invalid(
    issue, signing_staff, registry, crl_source
) -> None:
    document = issue(school=signing_staff.school_ecdsa)  # a real school certificate, unapproved
    registry.register(document)
    report = _verify(document, signing_staff, registry, crl_source)
    _assert_invalid(report, {"SCHOOL_CERTIFICATE"})
    assert report.check("SIGNATURE_KY_PHAT_HANH").status is CheckStatus.PASS
    # approving it makes the same document valid
    registry.certificates[(SCHOOL, _fingerprint(signing_staff.school_ecdsa.certificate))] = (
        LONG_AGO,
        FAR_AHEAD,
    )
    assert _verify(document, signing_staff, registry, crl_source).verdict is Verdict.VALID


# ------------------------------------------------------------------ registry
def test_a_changed_ngay_ky_is_invalid_though_every_signature_verifies(
    good, signing_staff, registry, crl_source
) -> None:
    """NGAY_KY is outside the signature: a slot telling another signing time than its
    signature fails that slot (issue 16), whatever the registry holds."""
    altered = _edit(
        good,
        lambda root: setattr(
            root.find("DANH_SACH_THONG_TIN_KY/KY_PHAT_HANH/NGAY_KY"),
            "text",
            "2025-06-01T08:00:00+07:00",
        ),
    )
    registry.register(good)
    report = _verify(altered, signing_staff, registry, crl_source)
    _assert_invalid(report, {"SIGNATURE_KY_PHAT_HANH"})
    assert report.check("SIGNATURE_KY_PHAT_HANH").issue_codes == ("NGAY_KY_MISMATCH",)
    # the signed parts are the issued ones: the registry says so, and no more
    assert report.check("REGISTRY_MATCH").issue_codes == ("NOT_BYTE_IDENTICAL",)
    # a registry that keeps only the hash cannot tell what differs: the bytes fail too
    only_hash = MemoryRegistry(**{**registry.__dict__, "issued": {}}).register(
        good, keep_copy=False
    )
    report = _verify(altered, signing_staff, only_hash, crl_source)
    _assert_invalid(report, {"SIGNATURE_KY_PHAT_HANH", "REGISTRY_MATCH"})
    assert "SHA-256 không khớp" in report.check("REGISTRY_MATCH").message_vi


def test_a_revoked_record_names_its_successor(good, signing_staff, registry, crl_source):
    successor = str(uuid.uuid4())
    registry.register(good, state="revoked", successor=successor)
    report = _verify(good, signing_staff, registry, crl_source)
    _assert_invalid(report, {"REGISTRY_MATCH"})
    assert (
        f"Học bạ đã bị thu hồi; học bạ thay thế có mã tra cứu {successor}"
        in report.check("REGISTRY_MATCH").message_vi
    )
    assert successor in report.render_text()


def test_a_record_unknown_to_the_registry_is_not_ours(
    good, signing_staff, registry, crl_source
) -> None:
    report = _verify(good, signing_staff, registry, crl_source)  # not registered
    check = report.check("REGISTRY_MATCH")
    assert check.status is CheckStatus.PASS
    assert "không phải học bạ của hệ thống này" in check.message_vi
    assert report.verdict is Verdict.VALID


def test_a_record_without_lookup_code_is_not_issued(
    signed_record, signing_staff, registry, crl_source
) -> None:
    report = _verify(signed_record, signing_staff, registry, crl_source)
    _assert_invalid(report, {"REGISTRY_MATCH"})
    assert report.lookup_code is None


# ------------------------------------------------------------------ cannot check now
def test_crl_outage_is_indeterminate_not_invalid(good, signing_staff, registry) -> None:
    registry.register(good)
    asked: list[x509.Certificate] = []

    def down(certificate: x509.Certificate) -> x509.CertificateRevocationList:
        asked.append(certificate)
        raise CrlUnavailable("máy chủ CRL không phản hồi")

    report = _verify(good, signing_staff, registry, down)
    assert report.verdict is Verdict.INDETERMINATE and report.exit_code == 2
    assert _failed(report) == set()
    assert _indeterminate(report) == {"REVOCATION"}
    assert "kiểm tra lại sau" in report.check("REVOCATION").message_vi
    certificates = {signing_staff.teacher, signing_staff.principal, signing_staff.school}
    assert set(asked) == {identity.certificate for identity in certificates}


def test_crl_outage_does_not_hide_a_failure(good, signing_staff, registry) -> None:
    def down(certificate: x509.Certificate) -> x509.CertificateRevocationList:
        raise CrlUnavailable

    tampered = good.replace("Lê Minh Anh".encode(), "Lê Minh Ánh".encode())
    assert _verify(tampered, signing_staff, registry, down).verdict is Verdict.INVALID


def test_a_stale_or_foreign_crl_is_indeterminate(good, signing_staff, registry, crl_source):
    registry.register(good)
    late = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)  # past the CRL's nextUpdate
    report = _verify(good, signing_staff, registry, crl_source, now=late)
    assert (
        _indeterminate(report) == {"REVOCATION"}
        and "quá hạn" in report.check("REVOCATION").message_vi
    )

    forged = (  # names our root as issuer, signed by another key
        x509.CertificateRevocationListBuilder()
        .issuer_name(signing_staff.pki.root_certificate.subject)
        .last_update(dt.datetime.now(dt.UTC))
        .next_update(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
        .sign(signing_staff.signer(signing_staff.teacher)._key, hashes.SHA256())
    )
    report = _verify(good, signing_staff, registry, lambda certificate: forged)
    assert report.verdict is Verdict.INDETERMINATE
    assert _indeterminate(report) == {"REVOCATION"}


def test_without_a_registry_the_result_is_indeterminate(good, signing_staff, crl_source):
    report = _verify(good, signing_staff, None, crl_source)
    assert report.verdict is Verdict.INDETERMINATE and report.exit_code == 2
    assert _failed(report) == set()
    assert _indeterminate(report) == {
        "ROLE_GVCN",
        "ROLE_CBQL",
        "SCHOOL_CERTIFICATE",
        "REGISTRY_MATCH",
    }


def test_without_a_crl_source_revocation_is_indeterminate(good, signing_staff, registry):
    report = _verify(good, signing_staff, registry.register(good), None)
    assert report.verdict is Verdict.INDETERMINATE
    assert _indeterminate(report) == {"REVOCATION"}


def test_a_registry_that_is_down_is_indeterminate(good, signing_staff, crl_source) -> None:
    class Down:
        def signer_held_role(self, *args):
            raise ConnectionError("database down")

        school_certificate_approved = issued_record = signer_held_role

    report = _verify(good, signing_staff, Down(), crl_source)
    assert report.verdict is Verdict.INDETERMINATE
    assert _indeterminate(report) == {
        "ROLE_GVCN",
        "ROLE_CBQL",
        "SCHOOL_CERTIFICATE",
        "REGISTRY_MATCH",
    }


# ------------------------------------------------------------------ hostile input
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE HOC_BA [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
 <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
]>
<HOC_BA>&f;</HOC_BA>"""
XXE = (
    b'<?xml version="1.0"?><!DOCTYPE HOC_BA [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b"<HOC_BA>&x;</HOC_BA>"
)


@pytest.mark.parametrize("payload", [BILLION_LAUGHS, XXE], ids=["entity-bomb", "xxe"])
def test_dtd_and_entities_are_refused(payload: bytes, signing_staff, registry) -> None:
    started = time.perf_counter()
    report = _verify(payload, signing_staff, registry)
    assert time.perf_counter() - started < 1.0
    _assert_invalid(report, {"SAFE_PARSE"})
    assert [c.code for c in report.checks] == ["SAFE_PARSE"]
    assert "DOCTYPE" in report.check("SAFE_PARSE").message_vi
    assert registry.calls == []


def test_a_50_mb_upload_is_refused_quickly(good: bytes, signing_staff, registry) -> None:
    # a real signed record padded with a 50 MB comment: well-formed, just too big
    big = good + b"<!--" + b"x" * 50_000_000 + b"-->"
    started = time.perf_counter()
    report = _verify(big, signing_staff, registry)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, elapsed
    _assert_invalid(report, {"SAFE_PARSE"})
    assert [c.code for c in report.checks] == ["SAFE_PARSE"]
    assert "quá lớn" in report.check("SAFE_PARSE").message_vi
    assert report.document_sha256 is None


def test_max_bytes_lowers_the_limit(good: bytes, signing_staff) -> None:
    report = _verify(good, signing_staff, max_bytes=len(good) - 1)
    _assert_invalid(report, {"SAFE_PARSE"})
    assert _verify(good, signing_staff, max_bytes=len(good)).check("SAFE_PARSE").status == "pass"


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not xml at all",
        b"\xff\xfe<\x00H\x00",
        "<HOC_BA/>",  # a str, not bytes
        None,
        b"<HOC_BA/>",
        b"<HOC_BA><DU_LIEU_HOC_BA Id='data'/></HOC_BA>",
        '<?xml version="1.0" encoding="ISO-8859-1"?><HOC_BA/>'.encode("latin-1"),
    ],
)
def test_bad_input_never_raises_and_is_invalid(payload, signing_staff, registry) -> None:
    report = _verify(payload, signing_staff, registry, lambda c: signing_staff.pki.crl)
    assert report.verdict is Verdict.INVALID
    assert report.check("SAFE_PARSE") is not None
    json.dumps(report.to_json())
    assert report.render_text()


def test_a_structurally_wrong_record_reports_every_slot(signing_staff, registry) -> None:
    report = _verify(b"<HOC_BA><KHAC/></HOC_BA>", signing_staff, registry)
    assert {"SCHEMA", "SIGNATURE_GVCN", "SIGNATURE_CBQL", "SIGNATURE_KY_PHAT_HANH"} <= _failed(
        report
    )
    assert report.check("SIGNATURE_GVCN").issue_codes == (IssueCode.STRUCTURE_INVALID,)


def test_a_schema_error_is_named(good: bytes, signing_staff, registry, crl_source) -> None:
    def add(root: etree._Element) -> None:
        etree.SubElement(root.find("DANH_SACH_THONG_TIN_KY"), "THUA")

    tampered = _edit(good, add)
    registry.register(tampered)
    report = _verify(tampered, signing_staff, registry, crl_source)
    _assert_invalid(report, {"SCHEMA"})
    assert "THUA" in report.check("SCHEMA").message_vi


# ------------------------------------------------------------------ report
@pytest.mark.parametrize(
    ("statuses", "verdict", "exit_code"),
    [
        (["pass", "pass"], Verdict.VALID, 0),
        (["pass", "indeterminate"], Verdict.INDETERMINATE, 2),
        (["indeterminate", "fail"], Verdict.INVALID, 1),
        (["fail", "pass"], Verdict.INVALID, 1),
        ([], Verdict.INVALID, 1),  # nothing checked is never valid
    ],
)
def test_verdict_and_exit_code(statuses, verdict: Verdict, exit_code: int) -> None:
    checks = [Check(f"C{i}", CheckStatus(s), "x") for i, s in enumerate(statuses)]
    report = VerificationReport.from_checks(checks)
    assert report.verdict is verdict
    assert report.exit_code == exit_code
    assert VerificationReport(checks=checks, verdict=verdict).exit_code == exit_code


def test_render_text_lists_every_check(issue, signing_staff, registry) -> None:
    # a report with all three statuses: no CRL source (?), a wrong class (✗), the rest (✓)
    document = issue({"TEN_LOP": "4B"})
    report = _verify(document, signing_staff, registry.register(document))
    assert {c.status for c in report.checks} == set(CheckStatus)
    text = report.render_text()
    assert text.splitlines()[0].startswith("Kết quả kiểm tra học bạ: KHÔNG HỢP LỆ")
    symbols = {CheckStatus.PASS: "✓", CheckStatus.FAIL: "✗", CheckStatus.INDETERMINATE: "?"}
    for check in report.checks:
        assert f"{symbols[check.status]} {check.code}: {check.message_vi}" in text.splitlines()


def test_to_json_is_stable(good: bytes, signing_staff, registry, crl_source) -> None:
    registry.register(good)
    data = json.loads(json.dumps(_verify(good, signing_staff, registry, crl_source).to_json()))
    assert data["verdict"] == "VALID" and data["exit_code"] == 0
    assert data["lookup_code"] == _lookup_code(good)
    assert [c["code"] for c in data["checks"]] == ALL_CODES
    assert {c["status"] for c in data["checks"]} == {"pass"}
    assert set(data["checks"][0]) == {"code", "status", "slot", "message_vi", "issue_codes"}


def _found(root: etree._Element, names: tuple[str, ...]) -> dict[str, str | None]:
    """What the verifier and the portal read before first_texts: an ElementPath find per
    name under ``root.find("DU_LIEU_HOC_BA/THONG_TIN_CHUNG")``."""
    general = root.find("DU_LIEU_HOC_BA/THONG_TIN_CHUNG")
    values: dict[str, str | None] = {}
    for name in names:
        text = None if general is None else general.findtext(name)
        values[name] = text.strip() if text and text.strip() else None
    return values


@pytest.mark.parametrize(
    "xml",
    [
        b"<HOC_BA><DU_LIEU_HOC_BA><THONG_TIN_CHUNG><MA_TRUONG> 79 </MA_TRUONG>"
        b"<TEN_LOP>5A</TEN_LOP></THONG_TIN_CHUNG></DU_LIEU_HOC_BA></HOC_BA>",
        b"<HOC_BA><DU_LIEU_HOC_BA><THONG_TIN_CHUNG><MA_TRUONG/><MA_TRUONG>79</MA_TRUONG>"
        b"<TEN_LOP>  </TEN_LOP><!-- x --><HO_VA_TEN>An<b/>h</HO_VA_TEN></THONG_TIN_CHUNG>"
        b"</DU_LIEU_HOC_BA></HOC_BA>",
        b'<HOC_BA xmlns:p="urn:p"><DU_LIEU_HOC_BA><THONG_TIN_CHUNG><p:MA_TRUONG>1</p:MA_TRUONG>'
        b"<MA_TRUONG>2</MA_TRUONG></THONG_TIN_CHUNG></DU_LIEU_HOC_BA></HOC_BA>",
        b"<HOC_BA><DU_LIEU_HOC_BA/><DU_LIEU_HOC_BA><THONG_TIN_CHUNG><MA_TRUONG>2</MA_TRUONG>"
        b"</THONG_TIN_CHUNG><THONG_TIN_CHUNG><TEN_LOP>x</TEN_LOP></THONG_TIN_CHUNG>"
        b"</DU_LIEU_HOC_BA><DU_LIEU_HOC_BA><THONG_TIN_CHUNG><TEN_LOP>y</TEN_LOP>"
        b"</THONG_TIN_CHUNG></DU_LIEU_HOC_BA></HOC_BA>",
        b"<HOC_BA><THONG_TIN_CHUNG><MA_TRUONG>1</MA_TRUONG></THONG_TIN_CHUNG></HOC_BA>",
        b'<HOC_BA><DU_LIEU_HOC_BA xmlns="urn:x"><THONG_TIN_CHUNG><MA_TRUONG>1</MA_TRUONG>'
        b"</THONG_TIN_CHUNG></DU_LIEU_HOC_BA></HOC_BA>",
    ],
    ids=["plain", "repeated, empty, mixed", "namespaced", "several data", "no data", "ns data"],
)
def test_first_texts_reads_what_find_reads(xml: bytes) -> None:
    names = ("MA_TRA_CUU_UUID", "MA_TRUONG", "TEN_LOP", "HO_VA_TEN")
    root = etree.fromstring(xml)
    assert first_texts(root, names) == _found(root, names)
