"""Long-term validity (issue 12) against real servers: the project's TSA + OCSP + CRL
service over HTTP (certomancer's responders), real PostgreSQL, the real test PKI, xmlsec1.

Rules tested: every slot carries an RFC 3161 signature timestamp; a TSA outage signs at B
level and queues the record, the upgrade fixes it; an issued record accepts no change but
added time-stamps (with their audit event); revocation is judged at the timestamp time;
OCSP down is INDETERMINATE, never INVALID; a certificate that expired after its timestamp
stays valid; archive renewal validates first and is audited.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
from pathlib import Path

import pytest
from issuing import assert_xmlsec1_verifies, issue, reviewed_class
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session
from typer.testing import CliRunner

import hocba.flows.timestamps  # noqa: F401 - Prefect sets its logging up when imported:
from hocba import db  # here, with the real stderr, not inside a CliRunner's (closed after)
from hocba.cli import app
from hocba.dev.testpki import TestPki
from hocba.dev.trust_services import serve_trust_services
from hocba.models import audit
from hocba.pki.ocsp import OcspClient
from hocba.tasks import long_term
from hocba.tasks.issuance import pki_directory, trust_anchors
from hocba.tasks.registry import DatabaseRegistry
from hocba.xml.dsig import sign_slots, verify_record_signatures
from hocba.xml.record import build_record_xml, parse_record_xml_safely
from hocba.xml.timestamps import (
    TsaClient,
    add_signature_timestamps,
    archive_timestamps,
    check_record_timestamps,
    signature_timestamps,
)
from hocba.xml.verify import verify_document


def _closed_port_url() -> str:
    """A URL where nothing listens (the TSA / OCSP responder is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def services(keyed):  # type: ignore[no-untyped-def]
    with serve_trust_services(pki_directory(keyed.home)) as url:
        yield url


def _records(district, ids):  # type: ignore[no-untyped-def]
    with district.engine.connect() as conn:
        return {
            rid: bytes(xml)
            for rid, xml in conn.execute(
                text(
                    "SELECT r.id, COALESCE(hoc_ba_xml(r.signed_xml), w.signed_xml) FROM hoc_ba r "
                    "LEFT JOIN hoc_ba_signing w ON w.record_id = r.id WHERE r.id = ANY(:i)"
                ),
                {"i": ids},
            )
        }


def _verify(district, xml, ocsp_url, **kw):  # type: ignore[no-untyped-def]
    ocsp = OcspClient(ocsp_url)
    with Session(district.engine) as s:
        return verify_document(
            xml,
            trusted_roots=trust_anchors(district.home),
            registry=DatabaseRegistry(s),
            ocsp_source=ocsp.status,
            **kw,
        )


def test_every_slot_of_an_issued_record_carries_a_signature_timestamp(
    keyed, services, monkeypatch, tmp_path
):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HOCBA_TSA_URL", services + "/tsa")
    ids, teacher = reviewed_class(keyed)
    issue(keyed, ids, teacher)
    xml = _records(keyed, ids)[ids[0]]
    tokens = signature_timestamps(parse_record_xml_safely(xml))
    assert sorted(tokens) == ["CBQL", "GVCN", "KY_PHAT_HANH"]
    report = _verify(keyed, xml, services + "/ocsp")
    assert report.verdict.value == "VALID", report.render_text()
    assert report.check("TIMESTAMP").status == "pass"
    assert sorted(report.timestamps) == ["CBQL", "GVCN", "KY_PHAT_HANH"]
    assert "(OCSP)" in report.check("REVOCATION").message_vi
    path = tmp_path / "hb.xml"
    path.write_bytes(xml)
    assert_xmlsec1_verifies(path, pki_directory(keyed.home) / "root-ca.pem")
    assert keyed.scalar("SELECT count(*) FROM timestamp_expiry") == len(ids)
    assert keyed.scalar("SELECT count(*) FROM timestamp_queue") == 0


def test_tsa_down_signs_at_b_level_and_the_upgrade_adds_the_timestamps_later(
    keyed, services, monkeypatch
):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HOCBA_TSA_URL", _closed_port_url() + "/tsa")
    ids, teacher = reviewed_class(keyed)
    issue(keyed, ids, teacher)  # asserts every record is issued despite the outage
    before = _records(keyed, ids)
    assert all(keyed.state(r) == "issued" for r in ids)
    assert not signature_timestamps(parse_record_xml_safely(before[ids[0]]))
    with Session(keyed.engine) as s:
        assert long_term.waiting_count(s) == len(ids)
        assert long_term.waiting_count(s, ["DH01"]) == len(ids)
    report = _verify(keyed, before[ids[0]], services + "/ocsp")
    assert report.verdict.value == "VALID", report.render_text()
    assert "mức B" in report.check("TIMESTAMP").message_vi

    with Session(keyed.engine) as s:  # still down: nothing changes, attempt noted
        down = long_term.upgrade_waiting(
            s, TsaClient(_closed_port_url()), trust_anchors(keyed.home)
        )
        s.commit()
    assert down.ok == [] and len(down.failed) == len(ids)
    assert _records(keyed, ids) == before

    with Session(keyed.engine) as s:
        done = long_term.upgrade_waiting(s, TsaClient(services + "/tsa"), trust_anchors(keyed.home))
        s.commit()
    assert sorted(done.ok) == sorted(ids), done.summary()
    after = _records(keyed, ids)
    assert sorted(signature_timestamps(parse_record_xml_safely(after[ids[0]]))) == [
        "CBQL",
        "GVCN",
        "KY_PHAT_HANH",
    ]
    assert keyed.scalar("SELECT count(*) FROM timestamp_queue") == 0
    assert keyed.scalar(
        "SELECT count(*) FROM audit_event WHERE action = 'timestamp_upgrade'"
    ) == len(ids)
    # recorded by the system's label, as every other writer records its actor
    assert keyed.scalar(
        "SELECT array_agg(DISTINCT actor) FROM audit_event WHERE action = 'timestamp_upgrade'"
    ) == [long_term.SYSTEM.label]
    assert _verify(keyed, after[ids[0]], services + "/ocsp").verdict.value == "VALID"
    # a copy exported before the upgrade still matches the registry
    old = _verify(keyed, before[ids[0]], services + "/ocsp")
    assert old.check("REGISTRY_MATCH").status == "pass", old.render_text()
    with Session(keyed.engine) as s:
        assert audit.verify(s) == []


def _force_xml(district, rid, xml, action="timestamp_upgrade"):  # type: ignore[no-untyped-def]
    import hashlib

    with Session(district.engine) as s:
        long_term._write_xml(s, rid, "DH01", xml, action, long_term.SYSTEM, {})
        s.commit()
    return hashlib.sha256(xml).hexdigest()


def test_an_issued_record_accepts_added_timestamps_only(keyed, services, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HOCBA_TSA_URL", _closed_port_url())
    ids, teacher = reviewed_class(keyed)
    issue(keyed, ids, teacher)
    rid = ids[0]
    xml = _records(keyed, [rid])[rid]
    tampered = xml.replace(b"<KET_QUA_XEP_LOAI>", b"<KET_QUA_XEP_LOAI>X", 1)
    assert tampered != xml
    with pytest.raises(DBAPIError, match="chỉ được bổ sung dấu thời gian"):
        _force_xml(keyed, rid, tampered)
    # a real timestamp block smuggling a data change is refused too
    (stamped,) = add_signature_timestamps([xml], TsaClient(services + "/tsa"))
    with pytest.raises(DBAPIError, match="chỉ được bổ sung dấu thời gian"):
        _force_xml(keyed, rid, stamped.replace(b"<KET_QUA_XEP_LOAI>", b"<KET_QUA_XEP_LOAI>X", 1))
    # without the audit event (or the flag) the real upgrade is refused as well
    with Session(keyed.engine) as s, pytest.raises(DBAPIError):
        conn = s.connection()
        conn.execute(text("SELECT set_config('hocba.timestamp_upgrade', 'on', true)"))
        conn.execute(
            text(
                "UPDATE hoc_ba SET signed_xml = :x, xml_sha256 = encode(sha256(:x), 'hex') "
                "WHERE id = :r"
            ),
            {"x": stamped, "r": rid},
        )
    _force_xml(keyed, rid, stamped)  # with its audit event: allowed
    assert _records(keyed, [rid])[rid] == stamped
    # removing a timestamp again is not "adding"
    with pytest.raises(DBAPIError, match="chỉ được bổ sung dấu thời gian"):
        _force_xml(keyed, rid, xml)


@pytest.mark.parametrize(
    ("revoked", "verdict"),
    [("before", "INVALID"), ("after", "VALID")],
)
def test_revocation_is_judged_at_the_timestamp_time(keyed, services, monkeypatch, revoked, verdict):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HOCBA_TSA_URL", services + "/tsa")
    ids, teacher = reviewed_class(keyed)
    issue(keyed, ids, teacher)
    xml = _records(keyed, ids)[ids[0]]
    report = _verify(keyed, xml, services + "/ocsp")
    stamp_time = dt.datetime.fromisoformat(report.timestamps["GVCN"])
    pki = TestPki.open(pki_directory(keyed.home))
    assert report.check("SIGNATURE_GVCN").status == "pass"
    certificate = verify_record_signatures(xml, trust_anchors(keyed.home)).slots["GVCN"].certificate
    when = (
        stamp_time - dt.timedelta(hours=1)
        if revoked == "before"
        else dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    )
    pki.revoke(certificate.serial_number, revocation_date=when)
    if revoked == "after":
        time.sleep(1.5)  # the revocation is in the past now, but after the timestamp
    report = _verify(keyed, xml, services + "/ocsp")
    assert report.verdict.value == verdict, report.render_text()
    assert report.check("REVOCATION").status == ("fail" if revoked == "before" else "pass")


def test_ocsp_down_is_indeterminate_never_invalid(keyed, services, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HOCBA_TSA_URL", services + "/tsa")
    ids, teacher = reviewed_class(keyed)
    issue(keyed, ids, teacher)
    xml = _records(keyed, ids)[ids[0]]
    report = _verify(keyed, xml, _closed_port_url() + "/ocsp")
    assert report.verdict.value == "INDETERMINATE", report.render_text()
    assert report.check("REVOCATION").status == "indeterminate"


LIFETIME_S = 8  # long enough to sign and stamp on a loaded machine, short to wait for


def _short_lived_signature(tmp_path: Path, record, wait_before_stamp: bool):  # type: ignore[no-untyped-def]
    """A record signed in all three slots, the GVCN certificate valid for 3 more seconds;
    the timestamps are asked before it expires, or (``wait_before_stamp``) after."""
    from hocba.pki.signer import SoftwareSigner

    password = "mat-khau-thu"

    pki = TestPki.init(tmp_path / "pki")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    teacher = pki.issue_person(
        record.thong_tin_chung["SO_CCCD_GIAO_VIEN_CHU_NHIEM"],
        "GV",
        "Giáo viên chủ nhiệm",
        password,
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(seconds=LIFETIME_S),
    )
    principal = pki.issue_person(
        record.thong_tin_chung["SO_CCCD_GIAM_HIEU_KY_HOC_BA"], "HT", "Hiệu trưởng", password
    )
    school = pki.issue_school(record.thong_tin_chung["MA_TRUONG"], "Trường", password)
    doc = build_record_xml(record)
    for slot, ident in (("GVCN", teacher), ("CBQL", principal), ("KY_PHAT_HANH", school)):
        extra = None
        if slot != "KY_PHAT_HANH":
            field = (
                "SO_CCCD_GIAO_VIEN_CHU_NHIEM" if slot == "GVCN" else "SO_CCCD_GIAM_HIEU_KY_HOC_BA"
            )
            extra = {"SO_CCCD": record.thong_tin_chung[field]}
        (doc,) = sign_slots(
            [doc], slot, SoftwareSigner.from_pkcs12(ident.p12_path, password), now, extra
        )
    expires = teacher.certificate.not_valid_after_utc

    def wait_until_expired() -> None:  # the machine may be slow: wait for the clock
        while dt.datetime.now(dt.UTC) <= expires + dt.timedelta(seconds=1):
            time.sleep(0.2)

    if wait_before_stamp:
        wait_until_expired()
    with serve_trust_services(pki.directory) as services_url:
        (doc,) = add_signature_timestamps([doc], TsaClient(services_url + "/tsa"))
        if not wait_before_stamp:
            stamps, _ = check_record_timestamps(
                parse_record_xml_safely(doc), [pki.root_certificate]
            )
            assert stamps["GVCN"].info.time < expires, "set-up too slow: stamped after expiry"
            wait_until_expired()  # now the certificate has expired, after its timestamp
        report = verify_document(
            doc,
            trusted_roots=[pki.root_certificate],
            ocsp_source=OcspClient(services_url + "/ocsp").status,
        )
    return report


def test_a_certificate_expired_after_its_timestamp_stays_valid(tmp_path, make_record):  # type: ignore[no-untyped-def]
    report = _short_lived_signature(tmp_path, make_record(), wait_before_stamp=False)
    for code in ("SIGNATURE_GVCN", "TIMESTAMP", "REVOCATION", "SIGNING_ORDER"):
        assert report.check(code).status == "pass", report.render_text()


def test_a_timestamp_made_after_the_certificate_expired_is_refused(tmp_path, make_record):  # type: ignore[no-untyped-def]
    report = _short_lived_signature(tmp_path, make_record(), wait_before_stamp=True)
    assert report.check("TIMESTAMP").status == "fail", report.render_text()
    assert report.verdict.value == "INVALID"


def test_renewal_validates_the_chain_then_adds_an_audited_archive_timestamp(keyed, monkeypatch):  # type: ignore[no-untyped-def]
    pki = TestPki.open(pki_directory(keyed.home))
    pki.issue_service(  # the TSA of the issuance: its certificate expires in 100 days
        "tsa",
        label="tsa-old",
        not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=100),
    )
    with serve_trust_services(pki.directory, tsa_label="tsa-old") as old_url:
        monkeypatch.setenv("HOCBA_TSA_URL", old_url + "/tsa")
        ids, teacher = reviewed_class(keyed)
        issue(keyed, ids, teacher)
    roots = trust_anchors(keyed.home)
    with serve_trust_services(pki.directory) as url:  # today's TSA: a 3-year certificate
        tsa, ocsp = TsaClient(url + "/tsa"), OcspClient(url + "/ocsp")
        with Session(keyed.engine) as s:  # nothing is due within 30 days
            assert (
                long_term.renew_archive(s, tsa, roots, ocsp=ocsp, horizon=dt.timedelta(days=30)).ok
                == []
            )
        with Session(keyed.engine) as s:  # due within 180 days: renewed
            result = long_term.renew_archive(s, tsa, roots, ocsp=ocsp)
            s.commit()
        assert sorted(result.ok) == sorted(ids), result.summary()
        renewed = _records(keyed, ids)[ids[0]]
        assert [n for n, _ in archive_timestamps(parse_record_xml_safely(renewed))] == [1]
        report = _verify(keyed, renewed, url + "/ocsp")
        assert report.verdict.value == "VALID", report.render_text()
        assert "ats-1" in report.timestamps
        assert keyed.scalar(
            "SELECT count(*) FROM audit_event WHERE action = 'timestamp_renewal'"
        ) == len(ids)
        with Session(keyed.engine) as s:  # renewed: not due any more
            assert long_term.renew_archive(s, tsa, roots, ocsp=ocsp).ok == []
        # a renewal by a TSA whose own certificate expires soon would extend nothing
        with Session(keyed.engine) as s:
            again = long_term.renew_archive(
                s, tsa, roots, ocsp=ocsp, horizon=dt.timedelta(days=5 * 365)
            )
        assert again.ok == [] and "sắp hết hạn" in next(iter(again.failed.values()))
        # a signer revoked before the timestamps breaks the chain: no renewal, reported why
        principal = verify_record_signatures(renewed, roots).slots["CBQL"].certificate
        pki.revoke(principal.serial_number, revocation_date=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
        with Session(keyed.engine) as s:
            broken = long_term.renew_archive(
                s, tsa, roots, ocsp=ocsp, horizon=dt.timedelta(days=5 * 365)
            )
        assert broken.ok == [] and "thu hồi" in next(iter(broken.failed.values()))
        five_years = dt.timedelta(days=5 * 365)
        with Session(keyed.engine) as s:  # without OCSP the CRL says the same
            by_crl = long_term.renew_archive(
                s, tsa, roots, crls=[TestPki.open(pki.directory).crl], horizon=five_years
            )
        assert by_crl.ok == [] and "thu hồi" in next(iter(by_crl.failed.values()))
        with Session(keyed.engine) as s:  # and with neither, nothing is renewed blindly
            blind = long_term.renew_archive(s, tsa, roots, horizon=five_years)
        assert blind.ok == [] and "không có CRL" in next(iter(blind.failed.values()))


def test_the_cli_reports_and_upgrades_the_waiting_records(keyed, services, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HOCBA_TSA_URL", _closed_port_url() + "/tsa")
    ids, teacher = reviewed_class(keyed)
    issue(keyed, ids, teacher)
    url = keyed.engine.url.render_as_string(hide_password=False)
    schema = keyed.scalar("SELECT current_schema()")
    monkeypatch.setenv("HOCBA_DATABASE_URL", url)
    monkeypatch.setenv("HOCBA_DB_SCHEMA", str(schema))
    monkeypatch.setenv("HOCBA_HOME", str(keyed.home))
    db.get_engine.cache_clear()
    try:
        runner = CliRunner()
        out = runner.invoke(app, ["timestamps", "status"])
        assert out.exit_code == 0 and f"Học bạ chờ dấu thời gian: {len(ids)}" in out.output
        monkeypatch.setenv("HOCBA_TSA_URL", services + "/tsa")
        out = runner.invoke(app, ["timestamps", "upgrade"])
        assert out.exit_code == 0, out.output
        assert f"{len(ids)} thành công" in out.output
        out = runner.invoke(app, ["timestamps", "status"])
        assert "Học bạ chờ dấu thời gian: 0" in out.output
    finally:
        db.get_engine().dispose()
        db.get_engine.cache_clear()
