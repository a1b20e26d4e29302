"""What hocba/xml/dsig.py reuses for speed never changes a result: the parsed tree handed from
``build_record_xml`` to the first ``sign_slots``, from one ``sign_slots`` call to the next and
from the seal to ``verify_record_signatures``, and the per-certificate / per-CRL verification
caches."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest
from cryptography import x509
from lxml import etree

from hocba.pki.signer import Signer
from hocba.xml.dsig import (
    IssueCode,
    XmlSignatureError,
    sign_slots,
    verify_record_signatures,
    verify_slot,
)
from hocba.xml.record import build_record_xml, take_parsed

TEACHER_CCCD = "001190012345"  # the session PKI's teacher and principal (conftest.py)
PRINCIPAL_CCCD = "001080054321"


def _copies(documents: Sequence[bytes]) -> list[bytes]:
    """Equal bytes in new objects: sign_slots has to parse them again."""
    return [bytes(bytearray(d)) for d in documents]


def _class(make_record, size: int = 3) -> list[bytes]:  # type: ignore[no-untyped-def]
    return [build_record_xml(make_record(cccd=f"0792150001{i:02d}")) for i in range(size)]


def test_signing_the_returned_bytes_or_copies_gives_the_same_documents(
    make_record, signing_staff, times
) -> None:
    # RSASSA-PKCS1-v1_5 is deterministic: the same input gives the same bytes
    teacher = signing_staff.signer(signing_staff.teacher)
    principal = signing_staff.signer(signing_staff.principal)
    school = signing_staff.signer(signing_staff.school)
    reused = copied = _class(make_record)
    for slot, signer, when, extra in (
        ("GVCN", teacher, times.gvcn, {"SO_CCCD": TEACHER_CCCD}),
        ("CBQL", principal, times.cbql, {"SO_CCCD": PRINCIPAL_CCCD}),
        ("KY_PHAT_HANH", school, times.seal, None),
    ):
        reused = sign_slots(reused, slot, signer, when, extra)
        copied = sign_slots(_copies(copied), slot, signer, when, extra)
        assert reused == copied


def test_a_slot_signed_twice_from_the_same_bytes_is_signed_the_same(
    make_record, signing_staff, times
) -> None:
    teacher = signing_staff.signer(signing_staff.teacher)
    principal = signing_staff.signer(signing_staff.principal)
    signed = sign_slots(_class(make_record), "GVCN", teacher, times.gvcn)
    first = sign_slots(signed, "CBQL", principal, times.cbql)
    second = sign_slots(signed, "CBQL", principal, times.cbql)  # not the tree signed above
    assert first == second
    with pytest.raises(XmlSignatureError, match="đã được ký"):
        sign_slots(first, "CBQL", principal, times.cbql)


def test_a_failed_batch_leaves_the_documents_signable(make_record, signing_staff, times) -> None:
    class Broken:
        def __init__(self, inner: Signer) -> None:
            self.certificate, self.chain = inner.certificate, inner.chain
            self.algorithm, self.inner = inner.algorithm, inner

        def sign_digests(self, digests: Sequence[bytes]) -> list[bytes]:
            return list(reversed(self.inner.sign_digests(digests)))

    teacher = signing_staff.signer(signing_staff.teacher)
    principal = signing_staff.signer(signing_staff.principal)
    signed = sign_slots(_class(make_record), "GVCN", teacher, times.gvcn)
    with pytest.raises(XmlSignatureError, match="không hợp lệ"):
        sign_slots(signed, "CBQL", Broken(principal), times.cbql)
    again = sign_slots(signed, "CBQL", principal, times.cbql)
    assert again == sign_slots(_copies(signed), "CBQL", principal, times.cbql)
    for document in again:
        assert verify_slot(document, "CBQL", signing_staff.roots).ok


def test_verification_caches_follow_the_roots_and_crls_given(
    make_record, signing_staff, sign_all
) -> None:
    (document,) = sign_all(
        [build_record_xml(make_record())], teacher=signing_staff.teacher_revoked_before
    )
    roots, crl = signing_staff.roots, signing_staff.pki.crl
    empty_crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(crl.issuer)
        .last_update(crl.last_update_utc)
        .next_update(crl.next_update_utc or crl.last_update_utc + dt.timedelta(days=1))
        .sign(signing_staff.pki._root_key, crl.signature_hash_algorithm)
    )
    for _ in range(2):  # the second round is answered from the caches
        assert verify_slot(document, "GVCN", roots).ok
        assert verify_slot(document, "GVCN", roots, crls=[empty_crl]).ok
        revoked = verify_slot(document, "GVCN", roots, crls=[crl])
        assert revoked.error_codes == [IssueCode.CERTIFICATE_REVOKED]
        untrusted = verify_slot(document, "GVCN", [signing_staff.other_root])
        assert untrusted.error_codes == [IssueCode.CERTIFICATE_UNTRUSTED]


def test_the_built_bytes_are_the_pretty_printed_record(make_record) -> None:
    # the tree build_record_xml keeps is indented in place: its bytes must stay exactly
    # what pretty-printing the record gave before (the signed data does not move)
    for record in (make_record(), make_record(cccd="079215000199")):
        data = build_record_xml(record)
        kept = take_parsed(data)
        assert kept is not None
        bare = etree.fromstring(data)
        for element in bare.iter():
            if len(element):
                element.text = None
            element.tail = None
        pretty = b'<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(
            bare, encoding="UTF-8", pretty_print=True
        )
        assert data == pretty
        assert etree.tostring(kept[0], method="c14n") == etree.tostring(
            etree.fromstring(data), method="c14n"
        )
        assert take_parsed(data) is None  # a kept tree serves once


def test_verifying_the_sealed_bytes_or_a_copy_gives_the_same_result(
    make_record, signing_staff, sign_all
) -> None:
    roots, crls = signing_staff.roots, [signing_staff.pki.crl]
    for teacher in (signing_staff.teacher, signing_staff.teacher_revoked_before):
        (document,) = sign_all([build_record_xml(make_record())], teacher=teacher)
        kept = verify_record_signatures(document, roots, crls=crls)  # the seal's tree
        parsed = verify_record_signatures(_copies([document])[0], roots, crls=crls)
        again = verify_record_signatures(document, roots, crls=crls)  # parsed: used once
        assert kept == parsed == again
        assert kept.ok is (teacher is signing_staff.teacher)
    assert kept.slots["GVCN"].error_codes == [IssueCode.CERTIFICATE_REVOKED]


def test_a_flow_s_chunk_of_trees_is_kept_whole(make_record) -> None:
    """A flow signs chunks of SIGN_CHUNK records: every tree of a chunk must still be
    there for the next step (with room for 256 and chunks of 350, the first 94 were parsed
    again)."""
    from hocba.flows.signing import SIGN_CHUNK

    record = make_record()
    built = [build_record_xml(record) for _ in range(SIGN_CHUNK)]
    assert all(take_parsed(data) is not None for data in built)
