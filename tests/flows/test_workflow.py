"""The whole lifecycle through the Prefect flows, under one test harness, talking HTTP to
the bundled province portal (issue 5): a district from drafts to accepted; a worker killed
with SIGKILL mid signing batch; the portal timing out, failing and dropping answers; a
transfer across two districts with the receipt verified at the sending school."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from issuing import PASSWORD, issue, reviewed_class
from lxml import etree
from servers import serve_asgi
from sqlalchemy import Engine, text
from sqlmodel import Session

from hocba import db
from hocba.dev.keys import init_test_keys
from hocba.dev.portal import PortalFaults, create_portal_app
from hocba.models import certificates, org
from hocba.models.lifecycle import SYSTEM, transition
from hocba.tasks.issuance import trust_anchors

PORTAL_PASSWORD = "mat-khau-cong-so-flow"


class Env:
    """Point the app (and the flows it runs in this process) at one district."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
        self.monkeypatch, self.values = monkeypatch, values

    def use(self) -> None:
        for k, v in self.values.items():
            self.monkeypatch.setenv(k, v)
        db.get_engine.cache_clear()


def _env(pg_url: str, schema: str, home: Path, **more: str) -> dict[str, str]:
    return {
        "HOCBA_DATABASE_URL": pg_url,
        "HOCBA_DB_SCHEMA": schema,
        "HOCBA_HOME": str(home),
        "HOCBA_KEY_PASSPHRASE": PASSWORD,  # the worker's environment, never a parameter
        **more,
    }


def _approve_seals(d) -> None:  # type: ignore[no-untyped-def]
    with Session(d.engine) as s:
        cert = certificates.school_certificates(s, "DH02")[0]  # keyed approved DH01's
        certificates.decide(s, cert.id, d.actor("phong.dh"), approve=True)
        s.commit()


@pytest.fixture
def portal_district(keyed, pg_url: str, schema_name: str, monkeypatch):  # type: ignore[no-untyped-def]
    """The two-school district with keys and approved seals, a running portal, the app's
    environment pointed at both (the way a worker is configured)."""
    _approve_seals(keyed)
    app = create_portal_app(
        pg_url,
        f"{schema_name}_portal",
        trusted_roots=trust_anchors(keyed.home),
        users={"DH01": PORTAL_PASSWORD, "DH02": PORTAL_PASSWORD},
        auto_approve_certificates=True,
    )
    with serve_asgi(app) as url:
        env = Env(
            monkeypatch,
            **_env(
                pg_url,
                schema_name,
                keyed.home,
                HOCBA_PORTAL_URL=url,
                HOCBA_PORTAL_PASSWORD=PORTAL_PASSWORD,
                HOCBA_PORTAL_TIMEOUT="3",
                HOCBA_PORTAL_RETRIES="3",
                HOCBA_PORTAL_BACKOFF="0.01",
            ),
        )
        env.use()
        yield keyed, app.state.portal, env
    db.get_engine().dispose()
    db.get_engine.cache_clear()
    app.state.portal.store.engine.dispose()


def _states(engine: Engine) -> dict[str, int]:
    with engine.connect() as c:
        return dict(c.execute(text("SELECT state, count(*) FROM hoc_ba GROUP BY state")).all())


def _teachers(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as c:
        return [
            (str(u), str(code))
            for u, code in c.execute(
                text(
                    "SELECT DISTINCT st.username, s.code FROM hoc_ba r "
                    "JOIN school s ON s.id = r.school_id JOIN school_class c ON c.id = r.class_id "
                    "JOIN staff st ON st.id = c.homeroom_teacher_id ORDER BY 1"
                )
            )
        ]


def _teachers_approve(d) -> None:  # type: ignore[no-untyped-def]
    """The human gate: each homeroom teacher approves their class (dashboard action)."""
    with d.engine.connect() as c:
        waiting = list(c.scalars(text("SELECT id FROM hoc_ba WHERE state = 'in_review'")))
    with Session(d.engine) as s:
        for rid in waiting:
            assert transition(s, [rid], "approve", d.homeroom_of(rid)).ok == [rid]
        s.commit()


def _issue_all(d, chunk: int = 7) -> None:  # type: ignore[no-untyped-def]
    from hocba.flows.signing import sign_records_flow

    for username, code in _teachers(d.engine):
        assert sign_records_flow("GVCN", username, code, chunk=chunk)["failed"] == {}
    for code in ("DH01", "DH02"):
        assert sign_records_flow("CBQL", f"{code.lower()}.ht", code, chunk=chunk)["failed"] == {}
        out = sign_records_flow("KY_PHAT_HANH", f"{code.lower()}.vt", code, chunk=chunk)
        assert out["failed"] == {}


def _portal_records(portal) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Lookup code -> how many times the portal holds it (accepted)."""
    store = portal.store
    with store.engine.connect() as c:
        return dict(
            c.execute(
                text(
                    f'SELECT ma_tra_cuu_uuid, count(*) FROM "{store.schema}".record '
                    "GROUP BY ma_tra_cuu_uuid"
                )
            ).all()
        )


def _submission_messages(portal) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    store = portal.store
    with store.engine.connect() as c:
        return [
            (str(m), str(h))
            for m, h in c.execute(
                text(
                    f'SELECT messageid, content_sha256 FROM "{store.schema}".message '
                    "WHERE giao_dich = 1"
                )
            )
        ]


def _lookup_codes(engine: Engine) -> set[str]:
    with engine.connect() as c:
        return {
            str(u)
            for u in c.scalars(text("SELECT lookup_code FROM hoc_ba WHERE lookup_code IS NOT NULL"))
        }


def test_a_district_goes_from_drafts_to_accepted_through_the_flows(
    prefect_harness, portal_district
) -> None:  # type: ignore[no-untyped-def]
    from hocba.flows.pipeline import drafts_flow
    from hocba.flows.submission import submission_flow

    d, portal, _env = portal_district
    total = sum(_states(d.engine).values())
    assert _states(d.engine) == {"draft": total}

    out = drafts_flow()
    assert out["sent_to_review"] == total and out["failed"] == 0
    assert drafts_flow()["sent_to_review"] == 0  # nothing twice
    _teachers_approve(d)
    _issue_all(d)
    assert _states(d.engine) == {"issued": total}

    lines = submission_flow()  # the nightly sweep: every school with something to send
    assert [line.split(":")[0] for line in lines] == ["DH01", "DH02"]
    assert all(" 0 từ chối" in line for line in lines), lines
    assert _states(d.engine) == {"accepted": total}
    held = _portal_records(portal)
    assert set(held) == _lookup_codes(d.engine) and set(held.values()) == {1}

    messages = _submission_messages(portal)
    again = submission_flow(["DH01", "DH02"])  # a re-run sends nothing
    assert _submission_messages(portal) == messages and len(again) == 2
    assert _states(d.engine) == {"accepted": total}


def test_the_portal_failing_in_every_way_still_ends_with_each_record_accepted_once(
    prefect_harness, portal_district
) -> None:  # type: ignore[no-untyped-def]
    from hocba.flows.submission import submission_flow

    d, portal, _env = portal_district
    for rid in d.record_ids("DH01") + d.record_ids("DH02"):
        d.force_state(rid, "in_review", flags="[]")
    _teachers_approve(d)
    _issue_all(d, chunk=50)
    issued = _lookup_codes(d.engine)

    # answers lost after the work was done (latency past the timeout, dropped connections),
    # plain failures, and the portal rejecting some records: run the nightly flow until done
    injected: list[tuple[float, bool, bool]] = []
    decide = portal.faults.decide

    def counted(code):  # type: ignore[no-untyped-def]
        injected.append(decide(code))
        return injected[-1]

    portal.faults.decide = counted  # what the portal did to each transaction
    portal.faults.set(  # the first answer comes after the client's 3 s timeout
        PortalFaults(drop_rate=0.4, error_rate=0.3, latency=4.0, latency_next=1, seed=11)
    )
    runs = 0
    while runs < 12 and _states(d.engine).get("accepted", 0) < len(issued):
        runs += 1
        try:
            submission_flow(["DH01", "DH02"])
        except Exception:  # a run may end failed: the next one picks up where it stopped
            pass
        if runs == 5:
            portal.faults.set(PortalFaults())
    assert _states(d.engine) == {"accepted": len(issued)}, runs
    # the faults did happen: failures, dropped answers, an answer later than the timeout
    assert any(fail for _l, fail, _d in injected) and any(drop for _l, _f, drop in injected)
    assert any(latency > 3 for latency, _f, _d in injected)
    held = _portal_records(portal)
    assert set(held) == issued and set(held.values()) == {1}
    shas = [h for _m, h in _submission_messages(portal)]
    assert len(shas) == len(set(shas))  # no package was processed under two messageids


def test_a_worker_killed_mid_batch_and_the_flow_rerun_signs_each_record_once(
    prefect_harness, portal_district
) -> None:  # type: ignore[no-untyped-def]
    from prefect.settings import PREFECT_API_URL

    from hocba.flows.signing import sign_records_flow

    d, _portal, env = portal_district
    for rid in d.record_ids("DH01"):
        d.force_state(rid, "in_review", flags="[]")
    _teachers_approve(d)
    for username, code in _teachers(d.engine):
        if code == "DH01":
            assert sign_records_flow("GVCN", username, code)["failed"] == {}
    waiting = _states(d.engine)["teacher_signed"]
    assert waiting >= 8

    script = (
        "from hocba.flows.signing import sign_records_flow\n"
        "sign_records_flow('CBQL', 'dh01.ht', 'DH01', chunk=2)\n"
    )
    home = Path(env.values["HOCBA_HOME"])
    with (home / "worker.log").open("w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-c", script],
            env={**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())},
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and _states(d.engine).get("principal_signed", 0) < 2:
        assert worker.poll() is None, (home / "worker.log").read_text()
        time.sleep(0.02)
    # hold the audit log: the worker's next chunk signs, then waits inside its transaction
    with d.engine.connect() as holder:
        holder.execute(text("LOCK TABLE audit_event IN EXCLUSIVE MODE"))
        while time.monotonic() < deadline:
            waiting_backends = holder.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND pid <> pg_backend_pid()"
                )
            ).scalar()
            if waiting_backends:
                break
            assert worker.poll() is None, (home / "worker.log").read_text()
            time.sleep(0.02)
        os.killpg(worker.pid, signal.SIGKILL)  # killed inside a chunk
        worker.wait(timeout=10)
        holder.rollback()
    after = _states(d.engine)
    done = after.get("principal_signed", 0)
    assert 0 < done < waiting, (after, (home / "worker.log").read_text())
    assert after["teacher_signed"] + done == waiting  # the cut chunk left nothing behind

    out = sign_records_flow("CBQL", "dh01.ht", "DH01", chunk=2)  # the re-run
    assert out == {"ok": waiting - done, "failed": {}}
    assert _states(d.engine)["principal_signed"] == waiting
    with d.engine.connect() as c:
        per_record = c.execute(
            text(
                "SELECT record_id, count(*) FROM audit_event WHERE action = 'principal_sign' "
                "GROUP BY record_id"
            )
        ).all()
        signed = c.scalars(
            text(
                "SELECT w.signed_xml FROM hoc_ba r JOIN hoc_ba_signing w ON w.record_id = r.id "
                "WHERE r.state = 'principal_signed'"
            )
        ).all()
    cbql = "{*}DANH_SACH_THONG_TIN_KY/{*}CBQL/{http://www.w3.org/2000/09/xmldsig#}Signature"
    signatures = [len(etree.fromstring(bytes(x)).findall(cbql)) for x in signed]
    assert len(per_record) == waiting and {n for _r, n in per_record} == {1}
    assert signatures == [1] * waiting  # one principal signature each, none half-made


# ----------------------------------------------------------------------- two districts
def _take_in_after_review(district, school_code: str) -> None:  # type: ignore[no-untyped-def]
    """The receiving school's clerk looks into the review queue's package and takes it in
    (``unverified_confirmed``), then sends the signed receipt to the leaving school's box."""
    from hocba.flows.transfer import RECEIPTS, _box, _person, _sender, review_package
    from hocba.pki.backends import school_seal
    from hocba.tasks.issuance import crl_source
    from hocba.tasks.transfer import receive_package

    with district.connect() as c:
        sha = str(
            c.scalar(text("SELECT package_sha256 FROM transfer WHERE state = 'needs_review'"))
        )
    path = review_package(school_code, sha)
    assert path is not None
    package = path.read_bytes()
    with db.session_scope() as s:
        res = receive_package(
            s,
            package,
            _person(s, None, school_code),
            school_seal(s, school_code),
            trust_anchors(district.home),
            school_code,
            crl_source=crl_source(district.home),
            unverified_confirmed=True,
        )
    assert res.state == "accepted" and res.receipt
    (_box(_sender(package), RECEIPTS) / f"{sha}.json").write_bytes(res.receipt)


@pytest.fixture
def second_district(pg_url: str, schema_name: str, keyed, tmp_path: Path) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    """Another district of the province (its own database schema and home), one school
    HB01; its keys come from the same (test) CA as the first district's."""
    schema = f"{schema_name}_b"
    engine = db.make_engine(pg_url, schema)
    db.upgrade(engine, schema)
    home = tmp_path / "huyen-b"
    home.mkdir()
    (home / "pki").symlink_to(keyed.home / "pki")
    with Session(engine) as s:
        org.ensure_unit(s, "22", "Tỉnh Quảng Ninh", "province")
        org.ensure_unit(s, "22HB", "Huyện Hải Hà", "district", "22")
        org.ensure_school(
            s, "HB01", "Trường Tiểu học Quảng Hà", "22HB", "Quảng Hà", "Quảng Hà, Hải Hà", "Hải Hà"
        )
        for username, name, role, cccd in (
            ("hb01.ht", "Phạm Văn Hải", "principal", "022080001234"),
            ("hb01.vt", "Ngô Thị Hà", "clerk", "022085004321"),
        ):
            org.ensure_staff(s, username, name, cccd, None, password_hash=None)
            org.grant(s, username, role, school_code="HB01")
        org.ensure_staff(s, "phong.hh", "Trần Văn Hòa", "022078005555", None, password_hash=None)
        org.grant(s, "phong.hh", "district_officer", unit_code="22HB")
        s.commit()
    with Session(engine) as s:
        init_test_keys(s, home, PASSWORD, SYSTEM)
        s.commit()
    with Session(engine) as s:
        officer = (
            s.connection()
            .execute(text("SELECT id, full_name FROM staff WHERE username = 'phong.hh'"))
            .one()
        )
        from hocba.models.lifecycle import Actor

        cert = certificates.school_certificates(s, "HB01")[0]
        certificates.decide(s, cert.id, Actor(*officer), approve=True)
        s.commit()
    engine.home = home  # type: ignore[attr-defined]
    yield engine
    engine.dispose()
    admin = db.make_engine(pg_url, "public")
    with admin.begin() as c:
        c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def test_a_transfer_across_two_districts_ends_with_the_receipt_verified_at_the_sender(
    prefect_harness, keyed, second_district, pg_url: str, schema_name: str, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from hocba.flows.transfer import transfer_in_flow, transfer_out_flow

    exchange = tmp_path / "so-gd-chuyen-truong"  # the province's shared folder
    a = Env(monkeypatch, **_env(pg_url, schema_name, keyed.home, HOCBA_TRANSFER_DIR=str(exchange)))
    b = Env(
        monkeypatch,
        **_env(
            pg_url,
            f"{schema_name}_b",
            second_district.home,  # type: ignore[attr-defined]
            HOCBA_TRANSFER_DIR=str(exchange),
        ),
    )
    ids, teacher = reviewed_class(keyed)
    issue(keyed, ids[:2], teacher)
    pupil_code, lookup, xml = (
        keyed.engine.connect()
        .execute(
            text(
                "SELECT p.pupil_code, r.lookup_code::text, hoc_ba_xml(r.signed_xml) FROM hoc_ba r "
                "JOIN pupil p ON p.id = r.pupil_id WHERE r.id = :i"
            ),
            {"i": ids[0]},
        )
        .one()
    )

    try:
        a.use()
        out = transfer_out_flow(pupil_code, "HB01", dt.date(2025, 1, 15), "dh01.vt")
        assert out["exported"] is True
        again = transfer_out_flow(pupil_code, "HB01", dt.date(2025, 1, 15), "dh01.vt")
        assert again == {"transfer_id": out["transfer_id"], "exported": False}
        assert len(list((exchange / "HB01" / "den").glob("*.zip"))) == 1

        b.use()
        # HB01's registry does not know DH01's teachers, principal or seal: the record is
        # INDETERMINATE, so the package waits for a person (issue 16), never straight in
        got = transfer_in_flow(["HB01"])
        assert got["HB01"]["needs_review"] == 1 and got["HB01"]["refused"] == 0  # type: ignore[index]
        assert transfer_in_flow(["HB01"])["HB01"]["needs_review"] == 0  # type: ignore[index]
        with second_district.connect() as c:
            assert c.scalar(text("SELECT count(*) FROM received_record")) == 0
            why = str(c.scalar(text("SELECT review_reason FROM transfer")))
        assert "ROLE_GVCN" in why and "SCHOOL_CERTIFICATE" in why
        _take_in_after_review(second_district, "HB01")
        with second_district.connect() as c:
            held = c.execute(
                text("SELECT lookup_code::text, xml, verdict FROM received_record")
            ).all()
            state_b = c.scalar(text("SELECT state FROM transfer"))
        assert [(h[0], bytes(h[1])) for h in held] == [(lookup, bytes(xml))]
        assert state_b == "accepted"

        # a forged receipt in the sender's box is refused, the real one recorded
        box = exchange / "DH01" / "bien-nhan"
        (real,) = list(box.glob("*.json"))
        forged = json.loads(real.read_text())
        forged["receipt"]["received"] = []
        (box / "gia-mao.json").write_text(json.dumps(forged, ensure_ascii=False))
        a.use()
        done = transfer_in_flow(["DH01"])["DH01"]
        assert done["recorded"] == 1 and done["receipts_refused"] == 1  # type: ignore[index]
        with keyed.engine.connect() as c:
            state_a, receipt = c.execute(
                text("SELECT state, receipt FROM transfer WHERE id = :i"),
                {"i": out["transfer_id"]},
            ).one()
        assert state_a == "receipted"
        assert json.loads(bytes(receipt))["receipt"]["received"] == [lookup]

        # a package damaged on the way is refused; the leaving school is told why (signed
        # by the receiving school) and can export the pupil again
        second = keyed.scalar(
            "SELECT p.pupil_code FROM hoc_ba r JOIN pupil p ON p.id = r.pupil_id WHERE r.id = :i",
            i=ids[1],
        )
        first = transfer_out_flow(str(second), "HB01", dt.date(2025, 1, 15), "dh01.vt")
        (package,) = list((exchange / "HB01" / "den").glob("*.zip"))
        damaged = io.BytesIO()
        with zipfile.ZipFile(package) as src, zipfile.ZipFile(damaged, "w") as dst:
            for item in src.infolist():
                data = src.read(item)
                if item.filename.startswith("records/"):
                    data = data.replace(b"<HO_VA_TEN>", b"<HO_VA_TEN>X", 1)
                dst.writestr(item, data)
        package.write_bytes(damaged.getvalue())
        b.use()
        got = transfer_in_flow(["HB01"])["HB01"]
        assert got["refused"] == 1 and got["accepted"] == 0  # type: ignore[index]
        a.use()
        told = transfer_in_flow(["DH01"])["DH01"]
        assert told["refused_by_receiver"] == 1  # type: ignore[index]
        with keyed.engine.connect() as c:
            state, why = c.execute(
                text("SELECT state, review_reason FROM transfer WHERE id = :i"),
                {"i": first["transfer_id"]},
            ).one()
        assert state == "rejected" and "không khớp danh mục" in why
        again = transfer_out_flow(str(second), "HB01", dt.date(2025, 1, 15), "dh01.vt")
        assert again["exported"] is True and again["transfer_id"] != first["transfer_id"]
        b.use()
        assert transfer_in_flow(["HB01"])["HB01"]["needs_review"] == 1  # type: ignore[index]
    finally:
        db.get_engine().dispose()
        db.get_engine.cache_clear()
