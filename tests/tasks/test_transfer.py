"""Transfers between schools on the real database: export, verify, match, take in
read-only, receipt; tampered packages and identity mismatches refused or queued."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile

import pytest
from issuing import issue, reviewed_class, signer_of
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from hocba.models import certificates
from hocba.tasks.issuance import trust_anchors
from hocba.tasks.transfer import TransferError, export_package, receive_package, record_receipt

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
    original = d.scalar("SELECT signed_xml FROM hoc_ba WHERE id = :i", i=rid)
    assert d.scalar("SELECT xml FROM received_record") == original  # byte-identical
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
