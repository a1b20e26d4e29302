"""Signing and issuing real records of the demo district, end to end on PostgreSQL:
teacher → principal → school seal, with test-PKI keys, then independent verification."""

from __future__ import annotations

from pathlib import Path

import pytest
from issuing import (
    assert_xmlsec1_verifies,
    issue,
    reviewed_class,
    signer_of,
    teacher_username,
)  # noqa: F401
from sqlalchemy import text
from sqlmodel import Session

from hocba.models import certificates
from hocba.models.lifecycle import SYSTEM, transition
from hocba.tasks.issuance import IssuanceError, sign_batch, trust_anchors
from hocba.xml.record import parse_record_xml_safely


def test_a_class_goes_from_reviewed_to_issued(keyed) -> None:  # type: ignore[no-untyped-def]
    ids, teacher = reviewed_class(keyed)
    issue(keyed, ids, teacher)
    with keyed.engine.connect() as c:
        rows = c.execute(
            text(
                "SELECT state, lookup_code, "
                "xml_sha256 = encode(sha256(hoc_ba_xml(signed_xml)), 'hex'), "
                "hoc_ba_xml(signed_xml) FROM hoc_ba WHERE id = ANY(:ids)"
            ),
            {"ids": ids},
        ).all()
    assert {r[0] for r in rows} == {"issued"}
    assert all(r[2] for r in rows)
    codes = {str(r[1]) for r in rows}
    assert len(codes) == len(ids)  # one lookup code per record, inside the signed data
    for r in rows:
        root = parse_record_xml_safely(r[3])
        assert root.findtext("DU_LIEU_HOC_BA/THONG_TIN_CHUNG/MA_TRA_CUU_UUID") == str(r[1])


def test_issued_xml_verifies_with_xmlsec1(keyed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ids, teacher = reviewed_class(keyed)
    issue(keyed, ids[:2], teacher)
    xml = keyed.scalar("SELECT hoc_ba_xml(signed_xml) FROM hoc_ba WHERE id = :i", i=ids[0])
    path = tmp_path / "hoc_ba.xml"
    path.write_bytes(xml)
    root = trust_anchors(keyed.home)
    root_pem = tmp_path / "root.pem"
    from cryptography.hazmat.primitives.serialization import Encoding

    root_pem.write_bytes(root[0].public_bytes(Encoding.PEM))
    assert_xmlsec1_verifies(path, root_pem)


def test_someone_elses_key_is_refused(keyed) -> None:  # type: ignore[no-untyped-def]
    ids, teacher = reviewed_class(keyed)
    with Session(keyed.engine) as s, pytest.raises(IssuanceError, match="không phải chứng thư"):
        sign_batch(s, ids, "GVCN", teacher, signer_of(keyed, "dh01.ht"))
    assert {keyed.state(r) for r in ids} == {"reviewed"}


def test_unapproved_seal_cannot_issue(keyed) -> None:  # type: ignore[no-untyped-def]
    ids, teacher = reviewed_class(keyed)
    with Session(keyed.engine) as s:
        sign_batch(s, ids, "GVCN", teacher, signer_of(keyed, teacher_username(keyed, teacher)))
        sign_batch(s, ids, "CBQL", keyed.actor("dh01.ht"), signer_of(keyed, "dh01.ht"))
        s.connection().execute(
            text("UPDATE certificate SET status = 'pending' WHERE owner_kind = 'school'")
        )
        res = sign_batch(
            s,
            ids,
            "KY_PHAT_HANH",
            keyed.actor("dh01.vt"),
            signer_of(keyed, "truong-DH01"),
            trust_anchors=trust_anchors(keyed.home),
        )
        s.commit()
    assert res.ok == [] and all("chưa được Phòng/Sở phê duyệt" in m for m in res.failed.values())
    assert {keyed.state(r) for r in ids} == {"principal_signed"}


def test_only_a_district_officer_approves_a_seal(keyed) -> None:  # type: ignore[no-untyped-def]
    with Session(keyed.engine) as s:
        cert = certificates.school_certificates(s, "DH02")[0]
        with pytest.raises(certificates.CertificateError, match="không có quyền"):
            certificates.decide(s, cert.id, keyed.actor("dh02.ht"), approve=True)
        with pytest.raises(certificates.CertificateError, match="lý do"):
            certificates.decide(s, cert.id, keyed.actor("phong.dh"), approve=False)


def test_return_after_signing_discards_the_signature(keyed) -> None:  # type: ignore[no-untyped-def]
    ids, teacher = reviewed_class(keyed)
    with Session(keyed.engine) as s:
        sign_batch(s, ids[:1], "GVCN", teacher, signer_of(keyed, teacher_username(keyed, teacher)))
        code = s.connection().scalar(
            text("SELECT lookup_code FROM hoc_ba WHERE id = :i"), {"i": ids[0]}
        )
        transition(s, ids[:1], "principal_return", keyed.actor("dh01.ht"), reason="Sai tên")
        s.commit()
    assert keyed.scalar("SELECT hoc_ba_xml(signed_xml) FROM hoc_ba WHERE id = :i", i=ids[0]) is None
    # the reserved code was never published: the same record keeps it for its next signing
    assert keyed.scalar("SELECT lookup_code FROM hoc_ba WHERE id = :i", i=ids[0]) == code


def test_correction_revokes_reissues_and_supersedes(keyed) -> None:  # type: ignore[no-untyped-def]
    from hocba.models import corrections
    from hocba.tasks.registry import DatabaseRegistry
    from hocba.xml.verify import verify_document

    ids, teacher = reviewed_class(keyed)
    issue(keyed, ids[:1], teacher)
    old = ids[0]
    old_xml = keyed.scalar("SELECT hoc_ba_xml(signed_xml) FROM hoc_ba WHERE id = :i", i=old)
    with Session(keyed.engine) as s:
        with pytest.raises(corrections.CorrectionError, match="lý do"):
            corrections.request(s, old, keyed.actor("dh01.vt"), "  ")
        with pytest.raises(corrections.CorrectionError, match="không có quyền"):
            corrections.request(s, old, keyed.actor("dh02.ht"), "Sai ngày sinh")
        req = corrections.request(
            s,
            old,
            keyed.actor("dh01.vt"),
            "Sai ngày sinh",
            decision_document="QĐ 12/2025 cải chính hộ tịch",
        )
        with pytest.raises(corrections.CorrectionError, match="không có quyền"):
            corrections.decide(s, req, keyed.actor("dh01.ht"), approve=True)
        new = corrections.decide(s, req, keyed.actor("phong.dh"), approve=True)
        s.commit()
    assert keyed.state(old) == "revoked" and keyed.state(new) == "draft"
    # the new record goes through review and all three signatures again
    with Session(keyed.engine) as s:
        transition(s, [new], "send_to_review", SYSTEM)
        transition(s, [new], "approve", teacher)
        s.commit()
    issue(keyed, [new], teacher)
    assert keyed.state(old) == "superseded" and keyed.state(new) == "issued"
    old_code, new_code = (
        str(keyed.scalar("SELECT lookup_code FROM hoc_ba WHERE id = :i", i=i)) for i in (old, new)
    )
    assert old_code != new_code
    with Session(keyed.engine) as s:
        report = verify_document(
            old_xml, trusted_roots=trust_anchors(keyed.home), registry=DatabaseRegistry(s)
        )
    match = report.check("REGISTRY_MATCH")
    assert report.verdict.value == "INVALID" and match is not None
    assert "thu hồi" in match.message_vi and new_code in match.message_vi


def test_the_database_registry_reads_the_issued_copy_only_when_the_bytes_differ(
    keyed,
) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    from hocba.tasks.registry import DatabaseRegistry
    from hocba.xml.verify import NOT_BYTE_IDENTICAL, CheckStatus, verify_document

    ids, teacher = reviewed_class(keyed)
    issue(keyed, ids[:1], teacher)
    xml = bytes(keyed.scalar("SELECT hoc_ba_xml(signed_xml) FROM hoc_ba WHERE id = :i", i=ids[0]))
    code = str(keyed.scalar("SELECT lookup_code FROM hoc_ba WHERE id = :i", i=ids[0]))
    loads: list[str] = []

    class Counting(DatabaseRegistry):
        def issued_record(self, lookup_code: str):  # type: ignore[no-untyped-def]
            info = super().issued_record(lookup_code)
            if info is None or info.load_xml is None:
                return info
            inner = info.load_xml

            def load_xml() -> bytes | None:
                loads.append(lookup_code)
                return inner()

            return dataclasses.replace(info, load_xml=load_xml)

    with Session(keyed.engine) as s:
        registry = Counting(s)
        info = registry.issued_record(code)
        assert info is not None and info.xml is None and info.state == "issued"
        assert info.issued_xml() == xml  # fetched on demand, the stored bytes
        assert DatabaseRegistry(s).issued_record("not-a-uuid") is None
        loads.clear()
        same = verify_document(xml, trusted_roots=trust_anchors(keyed.home), registry=registry)
        match = same.check("REGISTRY_MATCH")
        assert match is not None and match.status is CheckStatus.PASS and not match.issue_codes
        assert loads == []  # the hash matched: the copy was not read
        other = verify_document(
            xml + b"\n", trusted_roots=trust_anchors(keyed.home), registry=registry
        )
        match = other.check("REGISTRY_MATCH")
        assert match is not None and match.status is CheckStatus.PASS
        assert match.issue_codes == (NOT_BYTE_IDENTICAL,)
        assert loads == [code]  # other bytes: compared with the issued copy, read once
        tampered = xml.replace(b"<HO_VA_TEN>", b"<HO_VA_TEN>X", 1)
        report = verify_document(
            tampered, trusted_roots=trust_anchors(keyed.home), registry=registry
        )
        match = report.check("REGISTRY_MATCH")
        assert match is not None and match.status is CheckStatus.FAIL
        assert "nội dung đã ký khác" in match.message_vi


def test_the_database_registry_answers_roles_by_slot(keyed) -> None:  # type: ignore[no-untyped-def]
    from hocba.tasks.registry import DatabaseRegistry
    from hocba.xml.dsig import verify_record_signatures

    ids, teacher = reviewed_class(keyed)
    issue(keyed, ids[:1], teacher)
    xml = keyed.scalar("SELECT hoc_ba_xml(signed_xml) FROM hoc_ba WHERE id = :i", i=ids[0])
    root = parse_record_xml_safely(xml)
    general = root.find("DU_LIEU_HOC_BA/THONG_TIN_CHUNG")
    assert general is not None
    school, year, class_name = (
        general.findtext(n) or "" for n in ("MA_TRUONG", "TEN_NAM_HOC", "TEN_LOP")
    )
    slots = verify_record_signatures(xml, trust_anchors(keyed.home)).slots
    gvcn, cbql = (
        general.findtext("SO_CCCD_GIAO_VIEN_CHU_NHIEM"),
        general.findtext("SO_CCCD_GIAM_HIEU_KY_HOC_BA"),
    )
    assert gvcn and cbql
    at = slots["CBQL"].signing_time
    assert at is not None
    with Session(keyed.engine) as s:
        registry = DatabaseRegistry(s)
        assert registry.signer_held_role("GVCN", gvcn, school, year, class_name, at) is True
        assert registry.signer_held_role("CBQL", cbql, school, year, class_name, at) is True
        # the teacher is not the principal, nor homeroom teacher of another class
        assert registry.signer_held_role("CBQL", gvcn, school, year, class_name, at) is False
        assert registry.signer_held_role("GVCN", gvcn, school, year, "9Z", at) is False
        # unknown person or school: the registry cannot tell; the seal is no person's role
        assert (
            registry.signer_held_role("GVCN", "000000000000", school, year, class_name, at) is None
        )
        assert registry.signer_held_role("CBQL", cbql, "00000000", year, class_name, at) is None
        assert registry.signer_held_role("KY_PHAT_HANH", cbql, school, year, class_name, at) is None


def test_the_principal_s_check_parses_each_record_once(keyed, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """From reviewed to issued, the signing code parses each record once: the seal's
    input, read from the database. GVCN signs the tree it built, CBQL the tree its check
    of the CBQL named in the data parsed (``keep_parsed``), the seal's verification the
    tree the seal signed; and the issued records verify (``issue`` asserts it)."""
    import hocba.xml.dsig as dsig

    ids, teacher = reviewed_class(keyed)
    parsed: list[int] = []
    real = dsig.parse_record_xml_safely

    def counting(data: bytes, *args, **kwargs):  # type: ignore[no-untyped-def]
        parsed.append(len(data))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(dsig, "parse_record_xml_safely", counting)
    issue(keyed, ids, teacher)
    assert len(parsed) == len(ids)


def test_registry_lookup_finds_the_successor_by_index(keyed) -> None:  # type: ignore[no-untyped-def]
    """The registry's lookup joins a record to its successor through ``hoc_ba_supersedes``
    (migration 0023), not by reading the table: without the index the planner has nothing
    but a scan of ``hoc_ba`` for that join (122-172 ms a lookup at 500k records)."""
    from sqlalchemy import text

    from hocba.tasks.registry import ISSUED_RECORD_QUERY

    ids, teacher = reviewed_class(keyed)
    issue(keyed, ids[:1], teacher)
    code = str(keyed.scalar("SELECT lookup_code FROM hoc_ba WHERE id = :i", i=ids[0]))
    with keyed.engine.begin() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))  # a tiny table: plan as if big
        plan = "\n".join(conn.scalars(text("EXPLAIN " + ISSUED_RECORD_QUERY), {"c": code}).all())
    assert "hoc_ba_supersedes" in plan, plan
