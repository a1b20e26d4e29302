"""Three XMLDSig signatures in their slots (HOCBA_SPEC §4), checked by three verifiers:
ours (hocba/xml/dsig.py), signxml's XMLVerifier and the xmlsec1 command-line tool."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Sequence

import pytest
import signxml
from cryptography import x509
from lxml import etree
from signxml import SignatureConfiguration, XMLVerifier
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidInput, InvalidSignature

from hocba.pki.signer import Signer
from hocba.xml.dsig import (
    DS_NS,
    IssueCode,
    XmlSignatureError,
    sign_slots,
    verify_record_signatures,
    verify_slot,
)
from hocba.xml.record import build_record_xml, parse_record_xml_safely, validate_record_xml

SLOTS = ("GVCN", "CBQL", "KY_PHAT_HANH")
DS = f"{{{DS_NS}}}"
SIGNXML_FAILURES = (InvalidSignature, InvalidDigest, InvalidCertificate, InvalidInput)


# ----------------------------------------------------------------------------- helpers
def _slot_times(times) -> dict[str, dt.datetime]:
    return {"GVCN": times.gvcn, "CBQL": times.cbql, "KY_PHAT_HANH": times.seal}


def signxml_verify(
    document: bytes, slot: str, root_pem: str, when: dt.datetime
) -> list[signxml.VerifyResult]:
    """signxml picks ONE signature through ``SignatureConfiguration.location``: the XPath of
    its parent, here the slot; it must cover two references (#data and the SigningTime)."""
    config = SignatureConfiguration(
        location=f"./DANH_SACH_THONG_TIN_KY/{slot}/",
        expect_references=2,
        verification_time=when,
    )
    results = XMLVerifier().verify(document, ca_pem_file=root_pem, expect_config=config)
    assert isinstance(results, list)
    return results


def _edit(document: bytes, change: Callable[[etree._Element], None]) -> bytes:
    root = parse_record_xml_safely(document)
    change(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(root, encoding="UTF-8")


def _signature(root: etree._Element, slot: str) -> etree._Element:
    element = root.find(f"DANH_SACH_THONG_TIN_KY/{slot}/{DS}Signature")
    assert element is not None
    return element


class CountingSigner:
    """Wraps a signer to count sign_digests calls (one call = one user confirmation)."""

    def __init__(self, inner: Signer) -> None:
        self.inner = inner
        self.certificate = inner.certificate
        self.chain = inner.chain
        self.algorithm = inner.algorithm
        self.calls: list[int] = []

    def sign_digests(self, digests: Sequence[bytes]) -> list[bytes]:
        self.calls.append(len(digests))
        return self.inner.sign_digests(digests)


# ----------------------------------------------------------------------------- happy path
@pytest.mark.parametrize("slot", SLOTS)
def test_each_signature_verifies_on_its_own(
    signed_record: bytes, signing_staff, times, slot: str
) -> None:
    result = verify_slot(signed_record, slot, signing_staff.roots)
    assert result.ok, result.errors
    assert result.errors == [] and result.warnings == []
    assert result.signing_time == _slot_times(times)[slot]
    expected = {"GVCN": "teacher", "CBQL": "principal", "KY_PHAT_HANH": "school"}[slot]
    assert result.certificate == getattr(signing_staff, expected).certificate


def test_record_verification_checks_all_slots_and_their_order(
    signed_record: bytes, signing_staff
) -> None:
    result = verify_record_signatures(signed_record, signing_staff.roots)
    assert result.ok and result.errors == []
    assert set(result.slots) == set(SLOTS)


@pytest.mark.parametrize("slot", SLOTS)
def test_signxml_verifies_each_signature(
    signed_record: bytes, signing_staff, times, slot: str
) -> None:
    results = signxml_verify(
        signed_record, slot, str(signing_staff.pki.root_cert_path), _slot_times(times)[slot]
    )
    signed_data, signing_time = (r.signed_xml for r in results)
    assert signed_data is not None and signed_data.tag == "DU_LIEU_HOC_BA"
    assert signing_time is not None and signing_time.get("Id") == f"st-{slot}"


@pytest.mark.parametrize("slot", SLOTS)
def test_xmlsec1_verifies_each_signature(
    signed_record: bytes, signing_staff, times, xmlsec1, slot: str
) -> None:
    run = xmlsec1(signed_record, slot, signing_staff.pki.root_cert_path, _slot_times(times)[slot])
    assert run.returncode == 0, run.stderr
    assert "SignedInfo References (ok/all): 2/2" in run.stderr + run.stdout


def test_signed_record_still_matches_the_schema(signed_record: bytes) -> None:
    validate_record_xml(signed_record)


def test_slot_layout_and_unsigned_details(signed_record: bytes, times) -> None:
    root = parse_record_xml_safely(signed_record)
    zone = root.find("DANH_SACH_THONG_TIN_KY")
    assert [[c.tag for c in slot] for slot in zone] == [
        [f"{DS}Signature", "NGAY_KY", "SO_CCCD"],
        [f"{DS}Signature", "NGAY_KY", "SO_CCCD"],
        [f"{DS}Signature", "NGAY_KY"],
    ]
    gvcn = zone.find("GVCN")
    assert gvcn.findtext("NGAY_KY") == times.gvcn.astimezone(
        dt.timezone(dt.timedelta(hours=7))
    ).strftime("%Y-%m-%dT%H:%M:%S+07:00")
    assert gvcn.findtext("SO_CCCD") == "001190012345"
    signature = _signature(root, "GVCN")
    uris = [r.get("URI") for r in signature.iter(f"{DS}Reference")]
    assert uris == ["#data", "#st-GVCN"]
    assert signature.findtext(f"{DS}KeyInfo/{DS}X509Data/{DS}X509SubjectName").startswith(
        "2.5.4.5=CCCD:001190012345,CN=Nguyễn Thị Hoà"
    )


def test_a_class_is_signed_with_one_confirmation(make_record, signing_staff, times) -> None:
    documents = [
        build_record_xml(make_record(pupil_name=f"Học Sinh Số {i}", cccd=f"0792150001{i:02d}"))
        for i in range(35)
    ]
    signer = CountingSigner(signing_staff.signer(signing_staff.teacher))
    signed = sign_slots(documents, "GVCN", signer, times.gvcn, {"SO_CCCD": "001190012345"})
    assert signer.calls == [35]
    values = {
        _signature(parse_record_xml_safely(d), "GVCN").findtext(f"{DS}SignatureValue")
        for d in signed
    }
    assert len(values) == 35
    for document in signed[::7]:
        assert verify_slot(document, "GVCN", signing_staff.roots).ok


def test_ecdsa_signatures_verify_with_all_three_verifiers(
    make_record, signing_staff, times, sign_all, xmlsec1
) -> None:
    (document,) = sign_all(
        [build_record_xml(make_record())],
        principal=signing_staff.principal_ecdsa,
        school=signing_staff.school_ecdsa,
    )
    root_pem = signing_staff.pki.root_cert_path
    for slot, when in (("CBQL", times.cbql), ("KY_PHAT_HANH", times.seal)):
        method = _signature(parse_record_xml_safely(document), slot).find(
            f"{DS}SignedInfo/{DS}SignatureMethod"
        )
        assert method.get("Algorithm").endswith("#ecdsa-sha256")
        assert verify_slot(document, slot, signing_staff.roots).ok
        signxml_verify(document, slot, str(root_pem), when)
        run = xmlsec1(document, slot, root_pem, when)
        assert run.returncode == 0, run.stderr


def test_certificate_expired_now_but_valid_when_signed_is_accepted(
    make_record, signing_staff, sign_all, times, xmlsec1
) -> None:
    expired = signing_staff.teacher_expired.certificate
    when = expired.not_valid_after_utc - dt.timedelta(days=1)
    (document,) = sign_all(
        [build_record_xml(make_record())],
        teacher=signing_staff.teacher_expired,
        times=(when, times.cbql, times.seal),
    )
    assert verify_slot(document, "GVCN", signing_staff.roots).ok
    signxml_verify(document, "GVCN", str(signing_staff.pki.root_cert_path), when)
    run = xmlsec1(document, "GVCN", signing_staff.pki.root_cert_path, when)
    assert run.returncode == 0, run.stderr


# ----------------------------------------------------------------------------- tampering
def _all_three_verifiers_reject(
    document: bytes, slot: str, signing_staff, times, xmlsec1
) -> list[IssueCode]:
    result = verify_slot(document, slot, signing_staff.roots)
    assert not result.ok
    when = _slot_times(times)[slot]
    with pytest.raises(SIGNXML_FAILURES):
        signxml_verify(document, slot, str(signing_staff.pki.root_cert_path), when)
    run = xmlsec1(document, slot, signing_staff.pki.root_cert_path, when)
    assert run.returncode != 0, run.stderr
    return result.error_codes


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("TONG_KET/DANH_SACH_MON_HOC/MON_HOC/DIEM_KIEM_TRA_DINH_KY", "10"),  # a score
        ("THONG_TIN_CHUNG/HO_VA_TEN", "Lê Minh Anh Tuấn"),  # a name
        ("TONG_KET/KET_QUA_XEP_LOAI", "HTXS"),
    ],
)
def test_changing_the_data_breaks_all_three_signatures(
    signed_record: bytes, signing_staff, times, xmlsec1, path: str, value: str
) -> None:
    def change(root: etree._Element) -> None:
        element = root.find(f"DU_LIEU_HOC_BA/{path}")
        assert element is not None and element.text != value
        element.text = value

    tampered = _edit(signed_record, change)
    for slot in SLOTS:
        codes = _all_three_verifiers_reject(tampered, slot, signing_staff, times, xmlsec1)
        assert codes == [IssueCode.DIGEST_MISMATCH_DATA]


def test_removing_a_signature_fails_that_slot_only(signed_record: bytes, signing_staff) -> None:
    def remove(root: etree._Element) -> None:
        signature = _signature(root, "CBQL")
        signature.getparent().remove(signature)

    tampered = _edit(signed_record, remove)
    result = verify_record_signatures(tampered, signing_staff.roots)
    assert not result.ok
    assert result.slots["CBQL"].error_codes == [IssueCode.SIGNATURE_MISSING]
    assert result.slots["GVCN"].ok and result.slots["KY_PHAT_HANH"].ok


def test_moving_the_principal_signature_into_the_teacher_slot(
    signed_record: bytes, signing_staff, times, xmlsec1
) -> None:
    def move(root: etree._Element) -> None:
        teacher, principal = _signature(root, "GVCN"), _signature(root, "CBQL")
        slot = teacher.getparent()
        slot.replace(teacher, principal)  # moves it out of CBQL

    tampered = _edit(signed_record, move)
    gvcn = verify_slot(tampered, "GVCN", signing_staff.roots)
    assert not gvcn.ok
    assert IssueCode.WRONG_SLOT in gvcn.error_codes
    assert verify_slot(tampered, "CBQL", signing_staff.roots).error_codes == [
        IssueCode.SIGNATURE_MISSING
    ]
    # The moved signature is still cryptographically intact: only the slot binding
    # (the signed "#st-CBQL" reference) tells it does not belong to GVCN.
    assert signxml_verify(tampered, "GVCN", str(signing_staff.pki.root_cert_path), times.cbql)
    assert xmlsec1(tampered, "GVCN", signing_staff.pki.root_cert_path, times.cbql).returncode == 0


def test_copying_a_signature_into_another_slot_is_refused(
    signed_record: bytes, signing_staff
) -> None:
    def duplicate(root: etree._Element) -> None:
        teacher = _signature(root, "GVCN")
        teacher.getparent().replace(teacher, copy.deepcopy(_signature(root, "CBQL")))

    tampered = _edit(signed_record, duplicate)
    codes = verify_slot(tampered, "GVCN", signing_staff.roots).error_codes
    assert IssueCode.WRONG_SLOT in codes and IssueCode.REFERENCE_INVALID in codes
    assert verify_slot(tampered, "CBQL", signing_staff.roots).error_codes == [
        IssueCode.REFERENCE_INVALID  # "#st-CBQL" is now ambiguous
    ]


def _hide_original_and_forge(root: etree._Element, keep_id_on_forgery: bool) -> None:
    """Classic signature wrapping: the signed DU_LIEU_HOC_BA is moved into a ds:Object of
    the teacher's signature (where ID-based resolution still finds it) and a forged copy
    with better results takes its place under HOC_BA."""
    original = root.find("DU_LIEU_HOC_BA")
    forged = copy.deepcopy(original)
    forged.find("TONG_KET/KET_QUA_XEP_LOAI").text = "HTXS"
    if not keep_id_on_forgery:
        del forged.attrib["Id"]
    root.replace(original, forged)
    hiding_place = etree.SubElement(_signature(root, "GVCN"), f"{DS}Object")
    hiding_place.append(original)


@pytest.mark.parametrize("keep_id", [True, False])
def test_signature_wrapping_is_refused(signed_record: bytes, signing_staff, keep_id: bool) -> None:
    tampered = _edit(signed_record, lambda root: _hide_original_and_forge(root, keep_id))
    expected = IssueCode.DATA_ID_AMBIGUOUS if keep_id else IssueCode.STRUCTURE_INVALID
    for slot in SLOTS:
        assert verify_slot(tampered, slot, signing_staff.roots).error_codes == [expected]


def test_wrapping_that_fools_id_only_resolution(
    signed_record: bytes, signing_staff, times, xmlsec1
) -> None:
    """Why the verifier pins #data to the root's child: a tool that resolves IDs only
    (xmlsec1 with --id-attr) accepts the wrapped document and would show forged data."""
    tampered = _edit(signed_record, lambda root: _hide_original_and_forge(root, False))
    run = xmlsec1(tampered, "GVCN", signing_staff.pki.root_cert_path, times.gvcn)
    assert run.returncode == 0  # xmlsec1 alone is fooled: it checks what the ID points to
    assert verify_slot(tampered, "GVCN", signing_staff.roots).error_codes == [
        IssueCode.STRUCTURE_INVALID
    ]


@pytest.mark.parametrize("where", ["DANH_SACH_THONG_TIN_KY", "DU_LIEU_HOC_BA/TONG_KET"])
def test_a_second_element_with_id_data_is_refused(
    signed_record: bytes, signing_staff, where: str
) -> None:
    def add(root: etree._Element) -> None:
        etree.SubElement(root.find(where), "GHI_CHU", Id="data").text = "x"

    tampered = _edit(signed_record, add)
    for slot in SLOTS:
        codes = verify_slot(tampered, slot, signing_staff.roots).error_codes
        assert codes == [IssueCode.DATA_ID_AMBIGUOUS]
    with pytest.raises(SIGNXML_FAILURES):  # signxml: "Ambiguous reference URI"
        signxml_verify(
            tampered, "GVCN", str(signing_staff.pki.root_cert_path), dt.datetime.now(dt.UTC)
        )


def test_changing_the_signing_time_is_detected(
    signed_record: bytes, signing_staff, times, xmlsec1
) -> None:
    def backdate(root: etree._Element) -> None:
        (element,) = [e for e in _signature(root, "CBQL").iter() if "SigningTime" in str(e.tag)]
        element.text = "2025-05-30T08:00:00+07:00"

    tampered = _edit(signed_record, backdate)
    codes = _all_three_verifiers_reject(tampered, "CBQL", signing_staff, times, xmlsec1)
    assert IssueCode.DIGEST_MISMATCH_PROPERTIES in codes


def test_changing_the_signature_value_is_detected(
    signed_record: bytes, signing_staff, times, xmlsec1
) -> None:
    def flip(root: etree._Element) -> None:
        value = _signature(root, "KY_PHAT_HANH").find(f"{DS}SignatureValue")
        text = value.text
        value.text = ("B" if text[10] == "A" else "A").join((text[:10], text[11:]))

    tampered = _edit(signed_record, flip)
    codes = _all_three_verifiers_reject(tampered, "KY_PHAT_HANH", signing_staff, times, xmlsec1)
    assert codes == [IssueCode.SIGNATURE_VALUE_INVALID]


def test_swapping_the_certificate_is_detected(signed_record: bytes, signing_staff) -> None:
    def swap(root: etree._Element) -> None:
        mine = _signature(root, "GVCN").find(f"{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate")
        theirs = _signature(root, "CBQL").find(f"{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate")
        mine.text = theirs.text

    result = verify_slot(_edit(signed_record, swap), "GVCN", signing_staff.roots)
    assert IssueCode.SIGNATURE_VALUE_INVALID in result.error_codes
    assert IssueCode.KEYINFO_SUBJECT_MISMATCH in [w.code for w in result.warnings]


def test_unsigned_slot_details_must_match_what_is_signed(
    signed_record: bytes, signing_staff
) -> None:
    """NGAY_KY and SO_CCCD are outside the signature: telling another time or person than
    the signature does is an error (issue 16), not a note."""

    def change(root: etree._Element) -> None:
        root.find("DANH_SACH_THONG_TIN_KY/GVCN/NGAY_KY").text = "2020-01-01T00:00:00+07:00"
        root.find("DANH_SACH_THONG_TIN_KY/GVCN/SO_CCCD").text = "999999999999"

    result = verify_slot(_edit(signed_record, change), "GVCN", signing_staff.roots)
    assert not result.ok
    assert result.error_codes == [IssueCode.SLOT_CCCD_MISMATCH, IssueCode.NGAY_KY_MISMATCH]
    assert verify_slot(signed_record, "GVCN", signing_staff.roots).ok  # untouched: fine


# ----------------------------------------------------------------------------- certificates
def test_certificate_from_an_untrusted_root(
    make_record, signing_staff, times, sign_all, xmlsec1
) -> None:
    (document,) = sign_all(
        [build_record_xml(make_record())], teacher=signing_staff.teacher_untrusted
    )
    codes = _all_three_verifiers_reject(document, "GVCN", signing_staff, times, xmlsec1)
    assert codes == [IssueCode.CERTIFICATE_UNTRUSTED]
    # ...and trusted once its root is: the failure really was about trust
    assert verify_slot(document, "GVCN", [signing_staff.other_root]).ok


def test_certificate_expired_at_signing_time(
    make_record, signing_staff, times, sign_all, xmlsec1
) -> None:
    (document,) = sign_all([build_record_xml(make_record())], teacher=signing_staff.teacher_expired)
    codes = _all_three_verifiers_reject(document, "GVCN", signing_staff, times, xmlsec1)
    assert codes == [IssueCode.CERTIFICATE_EXPIRED]


def test_certificate_not_yet_valid_at_signing_time(
    make_record, signing_staff, times, sign_all, xmlsec1
) -> None:
    (document,) = sign_all(
        [build_record_xml(make_record())], teacher=signing_staff.teacher_not_yet_valid
    )
    codes = _all_three_verifiers_reject(document, "GVCN", signing_staff, times, xmlsec1)
    assert codes == [IssueCode.CERTIFICATE_NOT_YET_VALID]


def test_signing_with_an_invalid_certificate_is_refused_by_default(
    make_record, signing_staff, times
) -> None:
    signer = signing_staff.signer(signing_staff.teacher_expired)
    with pytest.raises(XmlSignatureError, match="hiệu lực"):
        sign_slots([build_record_xml(make_record())], "GVCN", signer, times.gvcn)


def test_revocation_before_and_after_signing(make_record, signing_staff, sign_all) -> None:
    crls = [signing_staff.pki.crl]
    (before,) = sign_all(
        [build_record_xml(make_record())], teacher=signing_staff.teacher_revoked_before
    )
    (after,) = sign_all(
        [build_record_xml(make_record())], teacher=signing_staff.teacher_revoked_after
    )
    assert verify_slot(before, "GVCN", signing_staff.roots).ok  # no CRL given: not checked
    revoked = verify_slot(before, "GVCN", signing_staff.roots, crls=crls)
    assert revoked.error_codes == [IssueCode.CERTIFICATE_REVOKED]
    later = verify_slot(after, "GVCN", signing_staff.roots, crls=crls)
    assert later.ok
    assert [w.code for w in later.warnings] == [IssueCode.CERTIFICATE_REVOKED_LATER]


def test_crl_with_a_bad_signature_is_reported(signed_record: bytes, signing_staff) -> None:
    pki = signing_staff.pki
    forged = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(pki.root_certificate.subject)
        .last_update(pki.crl.last_update_utc)
        .next_update(pki.crl.next_update_utc)
        .sign(_any_private_key(signing_staff), pki.crl.signature_hash_algorithm)
    )
    result = verify_slot(signed_record, "GVCN", signing_staff.roots, crls=[forged])
    assert result.error_codes == [IssueCode.CRL_INVALID]


def _any_private_key(signing_staff):  # type: ignore[no-untyped-def]
    return signing_staff.signer(signing_staff.teacher)._key


def test_signer_must_be_the_person_named_in_the_record(
    make_record, signing_staff, sign_all
) -> None:
    # the principal signs in the teacher's slot: a valid signature by the wrong person
    (document,) = sign_all([build_record_xml(make_record())], teacher=signing_staff.principal)
    assert verify_slot(document, "GVCN", signing_staff.roots).error_codes == [
        IssueCode.SIGNER_ID_MISMATCH
    ]


def test_seal_must_be_the_school_named_in_the_record(make_record, signing_staff, times) -> None:
    doc = make_record()
    doc.thong_tin_chung["MA_TRUONG"] = "79000999"
    signer = signing_staff.signer(signing_staff.school)
    (document,) = sign_slots([build_record_xml(doc)], "KY_PHAT_HANH", signer, times.seal)
    assert verify_slot(document, "KY_PHAT_HANH", signing_staff.roots).error_codes == [
        IssueCode.SIGNER_ID_MISMATCH
    ]


def test_signing_order_is_checked(make_record, signing_staff, times, sign_all) -> None:
    (document,) = sign_all(
        [build_record_xml(make_record())], times=(times.cbql, times.gvcn, times.seal)
    )
    result = verify_record_signatures(document, signing_staff.roots)
    assert all(slot.ok for slot in result.slots.values())
    assert not result.ok
    assert [e.code for e in result.errors] == [IssueCode.SIGNING_ORDER_INVALID]


def test_signing_time_in_the_future_is_refused(make_record, signing_staff, times) -> None:
    signer = signing_staff.signer(signing_staff.teacher)
    future = times.now + dt.timedelta(days=1)
    (document,) = sign_slots([build_record_xml(make_record())], "GVCN", signer, future)
    assert verify_slot(document, "GVCN", signing_staff.roots).error_codes == [
        IssueCode.SIGNING_TIME_IN_FUTURE
    ]


# ----------------------------------------------------------------------------- sign_slots input
def test_a_signed_slot_cannot_be_signed_again(signed_record: bytes, signing_staff, times) -> None:
    signer = signing_staff.signer(signing_staff.teacher)
    with pytest.raises(XmlSignatureError, match="đã được ký"):
        sign_slots([signed_record], "GVCN", signer, times.gvcn)


@pytest.mark.parametrize(
    ("slot", "extra", "when", "message"),
    [
        ("HIEU_TRUONG", None, dt.datetime(2025, 5, 30, tzinfo=dt.UTC), "không tồn tại"),
        ("KY_PHAT_HANH", {"SO_CCCD": "001190012345"}, None, "không thuộc"),
        ("GVCN", {"SO_CCCD": "12345"}, None, "12 chữ số"),
        ("GVCN", None, dt.datetime(2025, 5, 30, 8, 0), "múi giờ"),
    ],
)
def test_bad_arguments_are_refused(
    make_record,
    signing_staff,
    times,
    slot: str,
    extra: dict[str, str] | None,
    when: dt.datetime | None,
    message: str,
) -> None:
    signer = signing_staff.signer(signing_staff.teacher)
    with pytest.raises(XmlSignatureError, match=message):
        sign_slots([build_record_xml(make_record())], slot, signer, when or times.gvcn, extra)


def test_documents_with_a_doctype_are_refused(signing_staff, times) -> None:
    payload = b'<?xml version="1.0"?><!DOCTYPE HOC_BA [<!ENTITY a "b">]><HOC_BA>&a;</HOC_BA>'
    signer = signing_staff.signer(signing_staff.teacher)
    with pytest.raises(XmlSignatureError, match="DOCTYPE"):
        sign_slots([payload], "GVCN", signer, times.gvcn)
    result = verify_slot(payload, "GVCN", signing_staff.roots)
    assert result.error_codes == [IssueCode.XML_INVALID]


def test_a_backend_returning_a_wrong_value_is_caught(make_record, signing_staff, times) -> None:
    class Broken(CountingSigner):
        def sign_digests(self, digests: Sequence[bytes]) -> list[bytes]:
            return list(reversed(self.inner.sign_digests(digests)))  # batch order mixed up

    documents = [build_record_xml(make_record(cccd=f"07921500012{i}")) for i in range(2)]
    broken = Broken(signing_staff.signer(signing_staff.teacher))
    with pytest.raises(XmlSignatureError, match="không hợp lệ"):
        sign_slots(documents, "GVCN", broken, times.gvcn)


def test_roots_are_not_copied_into_key_info(signed_record: bytes) -> None:
    root = parse_record_xml_safely(signed_record)
    for slot in SLOTS:
        certificates = _signature(root, slot).findall(
            f"{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate"
        )
        assert len(certificates) == 1
