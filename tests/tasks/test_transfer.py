"""Transfers between schools on the real database: export, verify, match, take in
read-only, receipt; tampered packages and identity mismatches refused or queued; only
VALID records go straight in (issue 16): forgeries are refused, INDETERMINATE waits for a
person."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import zipfile

import pytest
from issuing import forge, issue, reviewed_class, signer_of, teacher_username
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from hocba.models import certificates
from hocba.tasks.issuance import crl_source, trust_anchors
from hocba.tasks.transfer import (
    UNVERIFIED_REASON,
    TransferError,
    _sign_json,
    export_package,
    receive_package,
    record_receipt,
)
from hocba.xml.record import parse_record_xml_safely

LEAVING = dt.date(2025, 1, 15)


@pytest.fixture
def issued_pupil(keyed):  # type: ignore[no-untyped-def]
    """A DH01 pupil with an issued record, DH02's seal approved too."""
    ids, teacher = reviewed_class(keyed)
    issue(keyed, ids[:1], teacher)
    with Session(keyed.engine) as s:
        cert = certificates.school_certificates(s, "DH02")[0]
        certificates.decide(s, cert.id, keyed.actor("phong.dh"), approve=True)
        s.commit()
    code = keyed.scalar(
        "SELECT p.pupil_code FROM hoc_ba r JOIN pupil p ON p.id = r.pupil_id WHERE r.id = :i",
        i=ids[0],
    )
    return keyed, str(code), ids[0]


def export(d, code: str) -> bytes:  # type: ignore[no-untyped-def]
    with Session(d.engine) as s:
        package, _ = export_package(
            s, code, "DH02", LEAVING, d.actor("dh01.vt"), signer_of(d, "truong-DH01")
        )
        s.commit()
    return package


def receive(d, package: bytes, **kw):  # type: ignore[no-untyped-def]
    """DH02's clerk receives ``package``, with the test PKI's CRL unless ``crl_source``."""
    kw.setdefault("crl_source", crl_source(d.home))
    with Session(d.engine) as s:
        res = receive_package(
            s,
            package,
            d.actor("dh02.vt"),
            signer_of(d, "truong-DH02"),
            trust_anchors(d.home),
            "DH02",
            **kw,
        )
        s.commit()
    return res


def test_transfer_round_trip(issued_pupil) -> None:  # type: ignore[no-untyped-def]
    d, code, rid = issued_pupil
    package = export(d, code)
    assert (
        d.scalar(
            "SELECT left_on FROM enrolment e JOIN pupil p ON p.id = e.pupil_id "
            "WHERE p.pupil_code = :c",
            c=code,
        )
        == LEAVING
    )
    res = receive(d, package)
    assert (res.state, res.records) == ("accepted", 1)
    original = d.scalar("SELECT hoc_ba_xml(signed_xml) FROM hoc_ba WHERE id = :i", i=rid)
    assert d.scalar("SELECT xml FROM received_record") == original  # byte-identical
    assert d.scalar("SELECT verdict FROM received_record") == "VALID"
    assert (
        d.scalar("SELECT s.code FROM received_record r JOIN school s ON s.id = r.school_id")
        == "DH02"
    )
    with Session(d.engine) as s:
        tid = record_receipt(s, res.receipt, trust_anchors(d.home))
        s.commit()
    assert tid == res.transfer_id  # one transfer row, seen by both schools
    assert d.scalar("SELECT state FROM transfer WHERE id = :i", i=tid) == "receipted"
    with pytest.raises(DBAPIError), d.engine.begin() as c:
        c.execute(text("UPDATE received_record SET school_year = 'x'"))


def _rezip(package: bytes, change) -> bytes:  # type: ignore[no-untyped-def]
    src = zipfile.ZipFile(io.BytesIO(package))
    files = {n: src.read(n) for n in src.namelist()}
    change(files)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for n, b in files.items():
            z.writestr(n, b)
    return out.getvalue()


def test_tampered_record_refuses_the_package(issued_pupil) -> None:  # type: ignore[no-untyped-def]
    d, code, _ = issued_pupil
    package = export(d, code)

    def change(files):  # type: ignore[no-untyped-def]
        name = next(n for n in files if n.startswith("records/"))
        files[name] = (
            files[name]
            .replace(b"<MUC_DAT_DUOC>H<", b"<MUC_DAT_DUOC>T<", 1)
            .replace(b"<DIEM_KIEM_TRA_DINH_KY>5<", b"<DIEM_KIEM_TRA_DINH_KY>9<", 1)
            + b" "
        )

    with pytest.raises(TransferError, match="không khớp danh mục"):
        receive(d, _rezip(package, change))
    assert d.scalar("SELECT count(*) FROM received_record") == 0


def test_manifest_signed_by_another_school_is_refused(issued_pupil) -> None:  # type: ignore[no-untyped-def]
    d, code, _ = issued_pupil
    package = export(d, code)

    def change(files):  # type: ignore[no-untyped-def]
        manifest = json.loads(files["manifest.json"])
        manifest["pupil"]["name"] = "Người Khác"
        files["manifest.json"] = json.dumps(manifest, ensure_ascii=False, sort_keys=True).encode()

    with pytest.raises(TransferError, match="không hợp lệ"):
        receive(d, _rezip(package, change))


def test_identity_mismatch_goes_to_manual_review(issued_pupil) -> None:  # type: ignore[no-untyped-def]
    d, code, _ = issued_pupil
    package = export(d, code)
    with d.engine.begin() as c:  # the receiving side already knows this ID by another name
        c.execute(
            text("UPDATE pupil SET full_name = 'Tên Khác Hẳn' WHERE pupil_code = :c"), {"c": code}
        )
    res = receive(d, package)
    assert res.state == "needs_review"
    assert d.scalar("SELECT count(*) FROM received_record") == 0
    assert "đối chiếu" in str(d.scalar("SELECT review_reason FROM transfer"))
    res = receive(d, package, identity_confirmed=True)
    assert res.state == "accepted" and d.scalar("SELECT count(*) FROM received_record") == 1


def test_only_staff_of_the_school_may_export(issued_pupil) -> None:  # type: ignore[no-untyped-def]
    d, code, _ = issued_pupil
    with Session(d.engine) as s, pytest.raises(TransferError, match="không có quyền"):
        export_package(s, code, "DH02", LEAVING, d.actor("dh02.vt"), signer_of(d, "truong-DH02"))


# ------------------------------------------------------------------ issue 16
def _with_records(d, package: bytes, records: dict[str, bytes]) -> bytes:  # type: ignore[no-untyped-def]
    """``package`` with ``records`` (lookup code → XML) instead of its own, its manifest
    signed again with DH01's seal by the project's own code: what a clerk holding the
    seal can send."""

    def change(files):  # type: ignore[no-untyped-def]
        for name in [n for n in files if n.startswith("records/")]:
            del files[name]
        manifest = json.loads(files["manifest.json"])
        manifest["records"] = [
            {"lookup_code": code, "sha256": hashlib.sha256(xml).hexdigest()}
            for code, xml in records.items()
        ]
        files["manifest.json"] = json.dumps(manifest, ensure_ascii=False, sort_keys=True).encode()
        files["manifest.sig.json"] = json.dumps(
            _sign_json(manifest, signer_of(d, "truong-DH01"))
        ).encode()
        for code, xml in records.items():
            files[f"records/{code}.xml"] = xml

    return _rezip(package, change)


def _lookup(xml: bytes) -> str:
    return str(
        parse_record_xml_safely(xml).findtext("DU_LIEU_HOC_BA/THONG_TIN_CHUNG/MA_TRA_CUU_UUID")
    )


@pytest.mark.parametrize("real_teacher", [False, True], ids=["seal-everywhere", "seal-as-cbql"])
def test_a_seal_forged_record_refuses_the_package(issued_pupil, real_teacher: bool) -> None:  # type: ignore[no-untyped-def]
    """The clerk's forgery (name and score changed, new lookup code, the seal in the
    personal slots) verified INDETERMINATE and travelled; now the role check refuses it."""
    d, code, rid = issued_pupil
    package = export(d, code)
    original = bytes(d.scalar("SELECT hoc_ba_xml(signed_xml) FROM hoc_ba WHERE id = :i", i=rid))
    seal = signer_of(d, "truong-DH01")
    gvcn = _teacher(d, rid) if real_teacher else seal
    forged = forge(original, gvcn, seal, seal)
    with pytest.raises(TransferError, match=r"\[ROLE_CBQL\]" if real_teacher else r"\[ROLE_GVCN\]"):
        receive(d, _with_records(d, package, {_lookup(forged): forged}))
    assert d.scalar("SELECT count(*) FROM received_record") == 0
    assert (
        d.scalar(
            "SELECT count(*) FROM transfer WHERE to_school_code = 'DH02' AND state <> 'exported'"
        )
        == 0
    )


def test_an_indeterminate_record_waits_in_the_review_queue(issued_pupil) -> None:  # type: ignore[no-untyped-def]
    d, code, _ = issued_pupil
    package = export(d, code)
    res = receive(d, package, crl_source=None)  # revocation cannot be checked
    assert res.state == "needs_review" and res.receipt is None
    assert d.scalar("SELECT count(*) FROM received_record") == 0
    reason = str(d.scalar("SELECT review_reason FROM transfer"))
    assert reason.startswith(UNVERIFIED_REASON) and "REVOCATION" in reason
    # a person looks into it and takes it in; the record keeps its verdict
    res = receive(d, package, crl_source=None, unverified_confirmed=True)
    assert res.state == "accepted" and res.receipt
    assert d.scalar("SELECT verdict FROM received_record") == "INDETERMINATE"
    assert str(d.scalar("SELECT review_reason FROM transfer")).startswith("Đã xem xét thủ công")
    assert (
        d.scalar(
            "SELECT payload->>'unverified' FROM audit_event WHERE action = 'transfer_in' "
            "ORDER BY at DESC, seq DESC LIMIT 1"
        )
        == "1"
    )


def test_received_again_once_the_checks_can_be_made_it_goes_in(issued_pupil) -> None:  # type: ignore[no-untyped-def]
    d, code, _ = issued_pupil
    package = export(d, code)
    assert receive(d, package, crl_source=None).state == "needs_review"
    res = receive(d, package)  # the CRL is reachable again
    assert res.state == "accepted"
    assert d.scalar("SELECT verdict FROM received_record") == "VALID"


def test_identity_and_unchecked_records_are_both_reviewed(issued_pupil) -> None:  # type: ignore[no-untyped-def]
    d, code, _ = issued_pupil
    package = export(d, code)
    with d.engine.begin() as c:
        c.execute(
            text("UPDATE pupil SET full_name = 'Tên Khác Hẳn' WHERE pupil_code = :c"), {"c": code}
        )
    res = receive(d, package, crl_source=None, identity_confirmed=True)
    assert res.state == "needs_review"  # the papers are compared, the records are not
    reason = str(d.scalar("SELECT review_reason FROM transfer"))
    assert reason.startswith("Đã đối chiếu thủ công") and UNVERIFIED_REASON in reason
    res = receive(d, package, crl_source=None, identity_confirmed=True, unverified_confirmed=True)
    assert res.state == "accepted"


def _teacher(d, rid: int):  # type: ignore[no-untyped-def]
    """The signer of the record's real homeroom teacher."""
    return signer_of(d, teacher_username(d, d.homeroom_of(rid)))


def test_a_trailing_newline_is_not_a_forged_record(issued_pupil) -> None:  # type: ignore[no-untyped-def]
    """The leaving school's copy gained a newline (a mail client, an editor): the receiving
    school's registry knows the lookup code and sees the signed parts are the issued ones.
    Other signed content under that lookup code, even signed with every real key, is not."""
    d, code, rid = issued_pupil
    package = export(d, code)
    original = bytes(d.scalar("SELECT hoc_ba_xml(signed_xml) FROM hoc_ba WHERE id = :i", i=rid))
    resigned = forge(
        original,
        _teacher(d, rid),
        signer_of(d, "dh01.ht"),
        signer_of(d, "truong-DH01"),
        lookup_code=_lookup(original),
    )
    with pytest.raises(TransferError, match=r"\[REGISTRY_MATCH\]"):
        receive(d, _with_records(d, package, {_lookup(original): resigned}))
    res = receive(d, _with_records(d, package, {_lookup(original): original + b"\n"}))
    assert res.state == "accepted"
    assert d.scalar("SELECT verdict FROM received_record") == "VALID"


# ------------------------------------------------------------------ issue 15: one table
def test_every_move_goes_through_the_table_with_its_audit_event(issued_pupil) -> None:  # type: ignore[no-untyped-def]
    """Export, receive, receipt: each move is one audit event on the chain of the school
    that made it, with the states it moved between; a receipt recorded again (a re-run)
    is recognised; a move the table does not have is refused in Vietnamese."""
    from hocba.models.lifecycle import SYSTEM
    from hocba.models.transfer_lifecycle import transition_transfer

    d, code, _ = issued_pupil
    res = receive(d, export(d, code))
    with Session(d.engine) as s:
        tid = record_receipt(s, res.receipt, trust_anchors(d.home))
        s.commit()
    with Session(d.engine) as s:  # the receipt again: the same transfer, nothing changes
        assert record_receipt(s, res.receipt, trust_anchors(d.home)) == tid
        s.commit()
    with d.engine.connect() as c:
        events = c.execute(
            text(
                "SELECT h.chain, action, from_state, to_state, actor, "
                "(payload->>'transfer_id')::int FROM audit_event e "
                "JOIN audit_head h ON h.chain_no = e.chain_no "
                "WHERE action LIKE 'transfer%' ORDER BY e.at, e.chain_no, e.seq"
            )
        ).all()
    assert [tuple(e) for e in events] == [
        ("school:DH01", "transfer_out", None, "exported", d.actor("dh01.vt").label, tid),
        ("school:DH02", "transfer_in", "exported", "accepted", d.actor("dh02.vt").label, tid),
        ("school:DH01", "transfer_receipt", "accepted", "receipted", "system", tid),
    ]
    with Session(d.engine) as s, pytest.raises(TransferError, match="Đã có biên nhận"):
        transition_transfer(s, "transfer_refused", SYSTEM, transfer_id=tid, reason="Thử")
    with Session(d.engine) as s, pytest.raises(TransferError, match="cần ghi rõ lý do"):
        transition_transfer(s, "transfer_reject", d.actor("dh02.vt"), transfer_id=tid)


def test_a_receipt_is_recorded_by_the_system_only_on_the_tables_terms(issued_pupil) -> None:  # type: ignore[no-untyped-def]
    """A person cannot make the system's moves, and a receiving school's staff cannot make
    the leaving school's: the roles of the table, at the school of the move's side."""
    from hocba.models.transfer_lifecycle import transition_transfer

    d, code, _ = issued_pupil
    export(d, code)
    tid = int(d.scalar("SELECT id FROM transfer"))
    with Session(d.engine) as s, pytest.raises(TransferError, match="không có quyền"):
        transition_transfer(
            s, "transfer_receipt", d.actor("dh01.vt"), transfer_id=tid, values={"receipt": b"x"}
        )
    with Session(d.engine) as s, pytest.raises(TransferError, match="không có quyền"):
        transition_transfer(
            s, "transfer_review", d.actor("dh01.vt"), transfer_id=tid, reason="Không phải trường"
        )
    assert d.scalar("SELECT state FROM transfer WHERE id = :i", i=tid) == "exported"
