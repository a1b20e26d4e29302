"""Issuance's shortcuts (issue 14, session 8) never change a result.

* The memo of signature values already found valid (``hocba.pki.signer``): a value is
  served from it only for the same key, algorithm, digest and value, so a tampered value or
  document is checked, and fails, as before; it is bounded; verifiers only read it.
* ``sign_slots`` splices the signed slot into the previous bytes: the result is the full
  serialisation of the tree, byte for byte, and verifies with xmlsec1.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from lxml import etree

from hocba.pki import signer as signer_module
from hocba.pki.signer import (
    clear_verified_signatures,
    public_key_id,
    verify_digest_signature,
    verify_signature_value,
)
from hocba.xml import dsig
from hocba.xml.dsig import IssueCode, sign_slots, verify_record_signatures
from hocba.xml.record import build_record_xml, parse_record_xml_safely

TEACHER_CCCD = "001190012345"  # the session PKI's teacher and principal (conftest.py)
PRINCIPAL_CCCD = "001080054321"
SLOTS = ("GVCN", "CBQL", "KY_PHAT_HANH")
HEADER = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def _remembered() -> set[tuple[bytes, str, str, bytes, bytes]]:
    return set(signer_module._VERIFIED)


def _signed_digest(signing_staff) -> tuple[object, bytes, bytes]:  # type: ignore[no-untyped-def]
    teacher = signing_staff.signer(signing_staff.teacher)
    digest = hashlib.sha256(b"SignedInfo").digest()
    (value,) = teacher.sign_digests([digest])
    return teacher.certificate.public_key(), digest, value


def test_a_value_found_valid_is_remembered_and_a_changed_one_is_not(signing_staff) -> None:
    clear_verified_signatures()
    public_key, digest, value = _signed_digest(signing_staff)
    sha256 = hashes.SHA256()
    key_id = public_key_id(public_key)
    assert (key_id, "rsa", "sha256", digest, value) in _remembered()  # the signer's own check
    assert verify_signature_value(public_key, "rsa", sha256, digest, value)
    changed_value = value[:-1] + bytes([value[-1] ^ 1])
    other_digest = hashlib.sha256(b"SignedInfo changed").digest()
    before = _remembered()
    assert not verify_signature_value(public_key, "rsa", sha256, digest, changed_value)
    assert not verify_signature_value(public_key, "rsa", sha256, other_digest, value)
    assert not verify_signature_value(public_key, "ecdsa", sha256, digest, value)
    other_key = signing_staff.signer(signing_staff.principal).certificate.public_key()
    assert not verify_signature_value(other_key, "rsa", sha256, digest, value)
    assert _remembered() == before  # failures are never remembered: checked every time
    assert not verify_digest_signature(
        signing_staff.signer(signing_staff.principal).certificate, "rsa-sha256", digest, value
    )


def test_the_memo_is_bounded_least_recently_used_first(
    signing_staff, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_verified_signatures()
    monkeypatch.setattr(signer_module, "_VERIFIED_MAX", 2)
    teacher = signing_staff.signer(signing_staff.teacher)
    public_key = teacher.certificate.public_key()
    digests = [hashlib.sha256(bytes([i])).digest() for i in range(3)]
    values = teacher.sign_digests(digests[:2])  # remembers 0 and 1
    sha256 = hashes.SHA256()
    assert verify_signature_value(public_key, "rsa", sha256, digests[0], values[0])  # 0 used
    (third,) = teacher.sign_digests(digests[2:])  # 1 is the least recently used: dropped
    assert {entry[3] for entry in _remembered()} == {digests[0], digests[2]}
    assert verify_signature_value(public_key, "rsa", sha256, digests[1], values[1])  # checked
    assert len(_remembered()) == 2
    assert third


def test_verifying_documents_reads_the_memo_but_does_not_fill_it(
    make_record, sign_all, signing_staff
) -> None:
    documents = sign_all([build_record_xml(make_record())])
    copy = bytes(bytearray(documents[0]))  # parsed again: not the seal's kept tree
    clear_verified_signatures()
    assert verify_record_signatures(copy, signing_staff.roots).ok
    assert _remembered() == set()


@pytest.mark.parametrize("change", ["signature value", "data", "signing time"])
def test_a_tampered_document_fails_with_its_values_in_the_memo(
    change: str, make_record, signing_staff, times
) -> None:
    # the document is signed in this process, so all three values are remembered as valid
    clear_verified_signatures()
    documents = [build_record_xml(make_record())]
    for slot, identity, when, extra in (
        ("GVCN", signing_staff.teacher, times.gvcn, {"SO_CCCD": TEACHER_CCCD}),
        ("CBQL", signing_staff.principal, times.cbql, {"SO_CCCD": PRINCIPAL_CCCD}),
        ("KY_PHAT_HANH", signing_staff.school, times.seal, None),
    ):
        documents = sign_slots(documents, slot, signing_staff.signer(identity), when, extra)
    assert len(_remembered()) == 3
    root = parse_record_xml_safely(documents[0])
    signature = root.find(f"DANH_SACH_THONG_TIN_KY/CBQL/{{{dsig.DS_NS}}}Signature")
    assert signature is not None
    if change == "signature value":
        value_element = signature.find(f"{{{dsig.DS_NS}}}SignatureValue")
        assert value_element is not None and value_element.text
        value = bytearray(base64.b64decode(value_element.text))
        value[-1] ^= 1
        value_element.text = base64.b64encode(bytes(value)).decode()
        expected = [IssueCode.SIGNATURE_VALUE_INVALID]
    elif change == "data":
        element = root.find("DU_LIEU_HOC_BA/THONG_TIN_CHUNG/HO_VA_TEN")
        assert element is not None
        element.text = "Người Khác"
        expected = [IssueCode.DIGEST_MISMATCH_DATA]
    else:
        element = signature.find(f".//{{{dsig.HB_NS}}}SigningTime")
        assert element is not None
        element.text = times.cbql.replace(minute=1).strftime("%Y-%m-%dT%H:%M:%S+00:00")
        expected = [IssueCode.DIGEST_MISMATCH_PROPERTIES]
    tampered = HEADER + etree.tostring(root, encoding="UTF-8")
    result = verify_record_signatures(tampered, signing_staff.roots)
    assert not result.ok
    assert set(expected) <= set(result.slots["CBQL"].error_codes)
    if change != "data":  # the other two slots are untouched
        assert result.slots["GVCN"].ok and result.slots["KY_PHAT_HANH"].ok


def test_spliced_slots_are_the_full_serialisation_and_verify_with_xmlsec1(
    make_record, signing_staff, times, xmlsec1
) -> None:
    documents = [build_record_xml(make_record(cccd=f"0792150001{i:02d}")) for i in range(3)]
    for slot, identity, when, extra in (
        ("GVCN", signing_staff.teacher, times.gvcn, {"SO_CCCD": TEACHER_CCCD}),
        ("CBQL", signing_staff.principal, times.cbql, {"SO_CCCD": PRINCIPAL_CCCD}),
        ("KY_PHAT_HANH", signing_staff.school, times.seal, None),
    ):
        spliceable = [dsig._splice_point(d, f"<{slot}/>".encode()) for d in documents]
        assert all(point is not None for point in spliceable), slot  # the path under test
        documents = sign_slots(documents, slot, signing_staff.signer(identity), when, extra)
        for document in documents:
            full = HEADER + etree.tostring(parse_record_xml_safely(document), encoding="UTF-8")
            assert document == full, slot
    when = {"GVCN": times.gvcn, "CBQL": times.cbql, "KY_PHAT_HANH": times.seal}
    for slot in SLOTS:
        run = xmlsec1(documents[0], slot, signing_staff.pki.root_cert_path, when[slot])
        assert run.returncode == 0, run.stderr
    assert verify_record_signatures(documents[0], signing_staff.roots).ok


@pytest.mark.parametrize(
    "data",
    [
        b"<HOC_BA><DANH_SACH_THONG_TIN_KY><GVCN/></DANH_SACH_THONG_TIN_KY></HOC_BA>",  # no header
        HEADER + b"<HOC_BA><DU_LIEU_HOC_BA Id='data'/><GVCN/></HOC_BA>",  # no zone
        HEADER
        + b"<HOC_BA><DANH_SACH_THONG_TIN_KY><GVCN/><GVCN/></DANH_SACH_THONG_TIN_KY></HOC_BA>",
        HEADER + b"<HOC_BA><DANH_SACH_THONG_TIN_KY><GVCN></GVCN></DANH_SACH_THONG_TIN_KY></HOC_BA>",
    ],
)
def test_no_splice_unless_the_empty_slot_is_found_once_in_the_zone(data: bytes) -> None:
    assert dsig._splice_point(data, b"<GVCN/>") is None
