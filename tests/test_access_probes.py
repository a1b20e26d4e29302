"""Access probes (issue 8 item 5): every CLI command that acts as a user, and every endpoint of
the bundled province portal, tried for the user's own school and for another school or
district. The other school's data must not leak and its actions must be refused; each probe
has a control that the same command works for the user's own school (so a refusal is not
just a broken command).

CLI: a demo district of two schools (DH01, DH02) built once per module by ``hocba demo`` in a
PostgreSQL schema of its own, plus a second district (``phong.khac``). What is checked after a
refused command: its exit code and Vietnamese message, that the other school's records did not
move and that its audit chain did not grow (nothing was done), and that no other school's
pupil name or personal ID appears in the output.

Commands without an acting user (``records``, ``status``, ``submit``, ``notify test``,
``export`` of the XML, ``audit verify``) are operator commands run with the database's own
credentials: they are not probed per user here.

Portal: two schools with their own approved certificates on one portal; every transaction
(1-6) tried by one school against the other's messages, records, registrations and requests,
with the other's unit code and with its own, and with accounts, certificates and admin tokens
that must not be accepted.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session
from typer.testing import CliRunner

from hocba import db
from hocba.cli import app
from hocba.dev.demo import DEMO_PASSWORD, demo_schools, school_rows
from hocba.dev.portal import PortalUser, create_portal_app
from hocba.dev.testpki import TestPki
from hocba.models import org
from hocba.models.lifecycle import SYSTEM
from hocba.models.records import create_drafts
from hocba.pki.signer import SoftwareSigner
from hocba.portal.client import PortalClient, PortalRefused, RevocationStatus
from hocba.tasks import importer

_schemas = itertools.count()


# ============================================================================ CLI
@dataclass
class Demo:
    engine: Engine
    home: Path
    runner: CliRunner

    def run(self, *args: str) -> Any:
        return self.runner.invoke(app, list(args))

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def column(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params).scalars())

    def chain_length(self, school: str) -> int:
        return int(self.scalar("SELECT seq FROM audit_head WHERE chain = :c", c=f"school:{school}"))

    def states(self, school: str) -> dict[int, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT r.id, r.state FROM hoc_ba r JOIN school s ON s.id = r.school_id "
                    "WHERE s.code = :c"
                ),
                {"c": school},
            ).all()
        return dict(rows)  # type: ignore[arg-type]

    def secrets_of(self, school: str) -> list[str]:
        """The other school's pupils' names and personal IDs: never in a refusal."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT p.full_name, p.cccd FROM pupil p JOIN enrolment e ON e.pupil_id = p.id "
                    "JOIN school s ON s.id = e.school_id WHERE s.code = :c"
                ),
                {"c": school},
            ).all()
        return [v for row in rows for v in row if v]


@pytest.fixture(scope="module")
def demo(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """``hocba demo`` with two schools (signed, issued, submitted), and a second district."""
    schema = f"probes_{os.getpid()}_{next(_schemas)}"
    home = tmp_path_factory.mktemp("probes-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOCBA_DATABASE_URL", pg_url)
        mp.setenv("HOCBA_DB_SCHEMA", schema)
        mp.setenv("HOCBA_HOME", str(home))
        mp.setenv("HOCBA_KEY_PASSPHRASE", DEMO_PASSWORD)
        db.get_engine.cache_clear()
        # in a process of its own: the demo's workflow (Prefect) must not leave its logging
        # set up in this one, where each probe runs the command in-process
        done = subprocess.run(
            [str(Path(sys.executable).with_name("hocba")), "demo", "--schools", "2",
             "--pupils-per-school", "12", "--year", "2024-2025"],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        runner = CliRunner()
        engine = db.make_engine(pg_url, schema)
        with Session(engine) as s:
            org.ensure_unit(s, "22-HX", "Huyện Khác", "district", "22")
            org.ensure_staff(s, "phong.khac", "Trần Văn Khác", None, None)
            org.grant(s, "phong.khac", "district_officer", unit_code="22-HX")
            s.commit()
        _pupils_in_review(engine, home, "DH02")
        yield Demo(engine, home, runner)
        engine.dispose()
        db.get_engine().dispose()
        db.get_engine.cache_clear()
    admin = db.make_engine(pg_url, "public")
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}_portal" CASCADE'))
    admin.dispose()


def _pupils_in_review(engine: Engine, home: Path, code: str) -> None:
    """Three new pupils at ``code`` whose records wait at the GVCN step (the demo has signed
    and issued everything): imported and drafted the real way, then moved to ``reviewed``."""
    school = next(s for s in demo_schools(2) if s.code == code)
    with engine.connect() as conn:
        used = set(conn.execute(text("SELECT cccd FROM pupil WHERE cccd IS NOT NULL")).scalars())
    rows, _ = school_rows(school, 3, seed=99, year_start=2024, used_ids=used)
    for i, row in enumerate(rows):
        row["pupil_code"] = f"{code}24X{i:03d}"
        row["entered_result"] = None
    path = importer.write_workbook(home / "them.xlsx", rows, [])
    with Session(engine) as s:
        importer.import_file(s, path, code, "2024-2025", SYSTEM)
        school_id = (
            s.connection()
            .execute(text("SELECT id FROM school WHERE code = :c"), {"c": code})
            .scalar_one()
        )
        create_drafts(s, SYSTEM, [school_id])
        s.commit()
    with engine.begin() as conn:
        conn.execute(text("SELECT set_config('hocba.lifecycle', 'on', true)"))
        moved = conn.execute(
            text(
                "UPDATE hoc_ba SET state = 'reviewed' WHERE state IN ('draft', 'in_review') "
                "AND school_id = :s"
            ),
            {"s": school_id},
        ).rowcount
    assert moved == 3


def _refused(demo: Demo, res: Any, other: str = "DH02", message: str = "không có quyền") -> None:
    assert res.exit_code != 0, res.output
    flat = " ".join(res.output.split())
    assert message in flat, flat
    assert "Traceback" not in flat
    for secret in demo.secrets_of(other):
        assert secret not in res.output, f"{other}'s data in the output: {secret!r}"


def _a_class(demo: Demo, school: str, state: str) -> str:
    name = demo.scalar(
        "SELECT c.name FROM hoc_ba r JOIN school_class c ON c.id = r.class_id "
        "JOIN school s ON s.id = r.school_id WHERE s.code = :s AND r.state = :st "
        "ORDER BY c.name LIMIT 1",
        s=school,
        st=state,
    )
    assert name, f"no {state} record at {school}"
    return str(name)


# an accepted record whose pupil has no other record (not one moved by a transfer: see
# test_a_class_with_a_pupil_who_moved_away_this_year_can_still_be_printed)
_ALONE = (
    "r.state = 'accepted' AND NOT EXISTS (SELECT 1 FROM hoc_ba o "
    "WHERE o.pupil_id = r.pupil_id AND o.id <> r.id) AND NOT EXISTS (SELECT 1 FROM "
    "received_record rr WHERE rr.pupil_id = r.pupil_id)"
)


def _lookup_code(demo: Demo, school: str) -> str:
    code = demo.scalar(
        "SELECT r.lookup_code::text FROM hoc_ba r JOIN school s ON s.id = r.school_id "
        f"WHERE s.code = :s AND {_ALONE} ORDER BY r.id LIMIT 1",
        s=school,
    )
    assert code
    return str(code)


def _printable_class(demo: Demo, school: str) -> str:
    """A class all of whose issued pupils have that one record."""
    name = demo.scalar(
        "SELECT c.name FROM hoc_ba r JOIN school_class c ON c.id = r.class_id "
        "JOIN school s ON s.id = r.school_id WHERE s.code = :s AND r.xml_sha256 IS NOT NULL "
        f"GROUP BY c.name HAVING bool_and({_ALONE}) ORDER BY c.name LIMIT 1",
        s=school,
    )
    assert name, f"no class of {school} to print"
    return str(name)


def test_signing_another_schools_records_is_refused_at_every_step(demo: Demo) -> None:
    """GVCN, CBQL and seal: a DH01 person cannot sign DH02's records (and the DH02 person can)."""
    klass = _a_class(demo, "DH02", "reviewed")
    before, chain = demo.states("DH02"), demo.chain_length("DH02")
    res = demo.run(
        "sign",
        "--as",
        f"dh01.gv{klass.lower()}",
        "--slot",
        "gvcn",
        "--school",
        "DH02",
        "--class",
        klass,
    )
    _refused(demo, res)
    assert demo.states("DH02") == before and demo.chain_length("DH02") == chain

    res = demo.run(
        "sign",
        "--as",
        f"dh02.gv{klass.lower()}",
        "--slot",
        "gvcn",
        "--school",
        "DH02",
        "--class",
        klass,
    )
    assert res.exit_code == 0, res.output  # control: the class's own teacher
    signed = {r for r, s in demo.states("DH02").items() if s == "teacher_signed"}
    assert signed

    for user in ("dh01.ht", "dh01.pht", "dh02.vt", f"dh02.gv{klass.lower()}", "phong.dh"):
        res = demo.run("sign", "--as", user, "--slot", "cbql", "--school", "DH02")
        assert res.exit_code != 0, (user, res.output)
        assert {r for r, s in demo.states("DH02").items() if s == "teacher_signed"} == signed
    res = demo.run("sign", "--as", "dh02.ht", "--slot", "cbql", "--school", "DH02")
    assert res.exit_code == 0, res.output

    chain = demo.chain_length("DH02")
    for user in ("dh01.vt", "dh01.ht", "phong.khac"):
        res = demo.run("sign", "--as", user, "--slot", "seal", "--school", "DH02")
        _refused(demo, res)
        assert demo.chain_length("DH02") == chain
        assert {r for r, s in demo.states("DH02").items() if s == "principal_signed"} == signed
    res = demo.run("sign", "--as", "dh02.vt", "--slot", "seal", "--school", "DH02")
    assert res.exit_code == 0, res.output
    assert {r for r, s in demo.states("DH02").items() if s == "issued"} >= signed


def test_paper_copies_are_signed_only_by_the_records_own_principal(
    demo: Demo, tmp_path: Path
) -> None:
    """``print-class`` and ``export --pdf-as``: another school's principal would put their
    signature (and the school's seal) on DH02's books."""
    code = _lookup_code(demo, "DH02")
    chain = demo.chain_length("DH02")
    for user in ("dh01.ht", "phong.dh", "dh02.gv" + _a_class(demo, "DH02", "accepted").lower()):
        res = demo.run(
            "print-class", "--school", "DH02", "--as", user, "--out", str(tmp_path / user)
        )
        _refused(demo, res)
        assert not (tmp_path / user).exists() or not list((tmp_path / user).iterdir())
        res = demo.run("export", code, "--out", str(tmp_path / f"x-{user}"), "--pdf-as", user)
        _refused(demo, res)
        assert not list(tmp_path.glob(f"x-{user}/*.pdf"))
    assert demo.chain_length("DH02") == chain
    klass = _printable_class(demo, "DH02")
    res = demo.run(
        "print-class",
        "--school",
        "DH02",
        "--class",
        klass,
        "--as",
        "dh02.ht",
        "--out",
        str(tmp_path / "own"),
    )
    assert res.exit_code == 0, res.output  # control
    assert list((tmp_path / "own").glob("*.pdf"))
    res = demo.run("export", code, "--out", str(tmp_path / "own-x"), "--pdf-as", "dh02.ht")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "own-x" / f"{code}.pdf").exists()


def test_corrections_are_requested_and_decided_only_in_scope(demo: Demo) -> None:
    code = _lookup_code(demo, "DH02")
    requests = demo.scalar("SELECT count(*) FROM correction_request")
    for user in ("dh01.ht", "dh01.vt", "phong.dh", "phong.khac"):
        res = demo.run("correction", "request", code, "--as", user, "--reason", "Sai họ tên")
        _refused(demo, res)
    assert demo.scalar("SELECT count(*) FROM correction_request") == requests
    res = demo.run("correction", "request", code, "--as", "dh02.ht", "--reason", "Sai họ tên")
    assert res.exit_code == 0, res.output  # control
    request_id = str(demo.scalar("SELECT max(id) FROM correction_request"))
    for user in ("dh01.ht", "dh02.ht", "phong.khac"):
        res = demo.run("correction", "decide", request_id, "--as", user)
        _refused(demo, res)
        assert (
            demo.scalar("SELECT status FROM correction_request WHERE id = :i", i=int(request_id))
            == "pending"
        )
    res = demo.run("correction", "decide", request_id, "--as", "phong.dh", "--reject", "Thử")
    assert res.exit_code == 0, res.output  # control: the district's officer


def test_transfers_are_exported_and_received_only_by_the_schools_own_staff(
    demo: Demo, tmp_path: Path
) -> None:
    pupil = str(
        demo.scalar(
            "SELECT p.pupil_code FROM hoc_ba r JOIN pupil p ON p.id = r.pupil_id "
            "JOIN school s ON s.id = r.school_id JOIN enrolment e ON e.pupil_id = p.id "
            "AND e.school_id = s.id AND e.left_on IS NULL "
            "WHERE s.code = 'DH01' AND r.state = 'accepted' ORDER BY r.id LIMIT 1"
        )
    )
    transfers = demo.scalar("SELECT count(*) FROM transfer")
    for user in ("dh02.ht", "dh02.vt", "phong.khac"):
        out = tmp_path / f"{user}.zip"
        res = demo.run(
            "transfer",
            "export",
            pupil,
            "--to",
            "DH02",
            "--leaving-date",
            "15/01/2025",
            "--as",
            user,
            "--out",
            str(out),
        )
        _refused(demo, res, other="DH01")
        assert not out.exists()
    assert demo.scalar("SELECT count(*) FROM transfer") == transfers
    package = tmp_path / "own.zip"
    res = demo.run(
        "transfer",
        "export",
        pupil,
        "--to",
        "DH02",
        "--leaving-date",
        "15/01/2025",
        "--as",
        "dh01.ht",
        "--out",
        str(package),
    )
    assert res.exit_code == 0, res.output  # control
    received = demo.scalar("SELECT count(*) FROM received_record")
    for user in ("dh01.ht", "dh01.vt", "phong.khac"):
        res = demo.run(
            "transfer",
            "receive",
            str(package),
            "--school",
            "DH02",
            "--as",
            user,
            "--receipt-out",
            str(tmp_path / f"{user}.json"),
        )
        _refused(demo, res, other="DH01")
        assert demo.scalar("SELECT count(*) FROM received_record") == received
    res = demo.run(
        "transfer",
        "receive",
        str(package),
        "--school",
        "DH02",
        "--as",
        "dh02.vt",
        "--receipt-out",
        str(tmp_path / "receipt.json"),
    )
    assert res.exit_code == 0, res.output  # control
    assert demo.scalar("SELECT count(*) FROM received_record") > received


def test_certificates_are_approved_only_by_the_schools_district(demo: Demo) -> None:
    with demo.engine.begin() as conn:  # a new seal waiting for approval at DH02
        conn.execute(
            text(
                "INSERT INTO certificate (owner_kind, school_id, kind, provider, subject, "
                "issuer, serial_number, sha256, not_before, not_after, der, key_ref, status) "
                "SELECT owner_kind, school_id, kind, provider, subject, issuer, "
                "serial_number || '01', md5(sha256) || md5(sha256 || 'x'), not_before, "
                "not_after, der, key_ref, 'pending' FROM certificate c "
                "WHERE c.school_id = (SELECT id FROM school WHERE code = 'DH02') "
                "AND c.status = 'approved' LIMIT 1"
            )
        )
    pending = "SELECT count(*) FROM certificate WHERE status = 'pending'"
    assert demo.scalar(pending) == 1
    for user in ("dh02.ht", "dh01.ht", "dh02.vt", "phong.khac"):
        _refused(demo, demo.run("cert", "approve", "DH02", "--as", user))
        assert demo.scalar(pending) == 1
    res = demo.run("cert", "approve", "DH02", "--as", "phong.dh", "--reject", "Thử")
    assert res.exit_code == 0, res.output  # control
    assert demo.scalar(pending) == 0


def test_unknown_users_and_json_outputs_do_not_leak(demo: Demo) -> None:
    """An unknown account is refused before anything is read; the scoped listing of one
    school holds no other school's pupils."""
    res = demo.run("sign", "--as", "khong.ton.tai", "--slot", "cbql", "--school", "DH02")
    assert res.exit_code == 2 and "Không có tài khoản" in res.output
    rows = json.loads(demo.run("records", "--school", "DH01", "--json").output)
    assert rows and {r["school_code"] for r in rows} == {"DH01"}
    listing = json.dumps(rows, ensure_ascii=False)
    for secret in demo.secrets_of("DH02"):
        assert secret not in listing


# ============================================================================ portal
def _load_portal_tests() -> Any:
    """tests/portal/test_portal.py, for its test PKI, issued records and served portal."""
    path = Path(__file__).parent / "portal" / "test_portal.py"
    spec = importlib.util.spec_from_file_location("_hocba_probe_portal_tests", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


P = _load_portal_tests()
school = P.school  # fixtures: the test PKI (school A: P.SCHOOL; B: 79000999) ...
issue = P.issue  # ... fully signed records of school A ...
server = P.server  # ... one uvicorn per module
OTHER = "79000999"
SHARED = "so-chung"  # a province-wide account (may act for any unit)


@dataclass
class Portal:
    url: str
    running: Any
    a: Any  # school A's client: its account, its approved seal
    b: Any  # school B's client
    records: list[bytes]  # A's accepted records
    message_a: str  # A's submission
    request_a: str  # A's revocation request
    registration_a: str  # A's certificate registration (ma_dang_ky)
    secrets: list[str]  # names and personal IDs of A's pupils
    clients: list[Any]

    def client(self, user: str, unit: str, signer: Any, password: str = "") -> Any:
        c = PortalClient(
            self.url,
            user,
            password or P.PORTAL_PASSWORD,
            unit,
            signer,
            timeout=10.0,
            retries=0,
            nam_hoc=P.YEAR,
        )
        self.clients.append(c)
        return c

    def refused(self, call: Any, status: int, code: str) -> Any:
        with pytest.raises(PortalRefused) as refused:
            call()
        answer = refused.value.answer
        assert (answer.status_code, answer.response_code) == (status, code), answer
        body = json.dumps(answer.data, ensure_ascii=False)
        for secret in [*self.secrets, self.registration_a]:  # (identifiers asked are echoed)
            assert secret not in body, f"A's {secret!r} in an answer to someone else"
        return answer


@pytest.fixture
def portal(pg_url: str, school: Any, issue: Any, server: Any) -> Iterator[Portal]:
    """A portal with two schools' accounts bound to their units, a province-wide account,
    both schools' seals approved, and A's submission and revocation request on file."""
    url, dispatch = server
    schema = f"probe_portal_{os.getpid()}_{next(_schemas)}"
    app_ = create_portal_app(
        pg_url,
        schema,
        trusted_roots=[school.pki.root_certificate],
        users={
            P.USER: PortalUser.with_password(P.PORTAL_PASSWORD, [P.SCHOOL]),
            "truong-khac": PortalUser.with_password(P.PORTAL_PASSWORD, [OTHER]),
            SHARED: P.PORTAL_PASSWORD,
        },
        admin_token=P.ADMIN,
    )
    dispatch.app = app_
    running = P.RunningPortal(url, app_.state.portal)
    clients: list[Any] = []
    probe = Portal(url, running, None, None, [], "", "", "", [], clients)
    probe.a = probe.client(P.USER, P.SCHOOL, school.seal)
    probe.b = probe.client("truong-khac", OTHER, school.other_school)
    for c in (probe.a, probe.b):
        registration = c.register_certificate()
        running.admin("POST", f"/admin/certificates/{registration.ma_dang_ky}/approve")
    probe.registration_a = probe.a.query_registration().ma_dang_ky
    probe.records = issue(3)
    package = P._one_package(probe.records)
    assert probe.a.submit(package).data["so_tiep_nhan"] == 3
    probe.message_a = package.message_id
    probe.request_a = probe.a.request_revocation([P._revocation_item(probe.records[2])]).ma_yeu_cau
    probe.secrets = [
        v
        for r in probe.a.query_submission(package.message_id)
        for v in (r.ten_hoc_sinh, r.so_cccd)
        if v
    ]
    assert len(probe.secrets) == 6
    yield probe
    for c in clients:
        c.close()
    dispatch.app = None
    running.portal.store.drop()
    running.portal.store.engine.dispose()


def test_portal_another_school_cannot_read_or_act_on_a_schools_data(
    portal: Portal, school: Any
) -> None:
    """School B, with its own approved seal and account, against A's messages, records,
    registration and revocation request: as itself (not found / refused), and naming A's
    unit (its account may not; the province-wide account may, but B's seal is not A's)."""
    a, b, running = portal.a, portal.b, portal.running
    accepted = running.count("record", state="accepted")
    # transaction 2: A's submission
    portal.refused(lambda: b.query_submission(portal.message_a), 404, "06")
    as_a = portal.client("truong-khac", P.SCHOOL, school.other_school)
    portal.refused(lambda: as_a.query_submission(portal.message_a), 401, "01")
    shared_a = portal.client(SHARED, P.SCHOOL, school.other_school)
    portal.refused(lambda: shared_a.query_submission(portal.message_a), 403, "03")
    # transaction 1: A's records sent as B's are all rejected, nothing stored for B
    package = P._one_package(portal.records, nonce="b")
    answer = b.submit(package)
    assert (answer.data["so_tiep_nhan"], answer.data["so_tu_choi"]) == (0, 3)
    results = b.query_submission(package.message_id)
    assert {r.error for r in results} == {"SCHOOL_MISMATCH"}
    assert not any(portal.message_a in (r.error_description or "") for r in results)
    portal.refused(lambda: shared_a.submit(P._one_package(portal.records, nonce="c")), 403, "03")
    # transaction 3: B's seal registered for A
    portal.refused(lambda: shared_a.register_certificate(), 403, "03")
    # transaction 4: A's registration
    serial_a = format(school.seal.certificate.serial_number, "X")
    portal.refused(lambda: b.query_registration(serial_a), 404, "06")
    portal.refused(lambda: shared_a.query_registration(serial_a), 403, "03")
    # transaction 5: revoking A's accepted record
    item = P._revocation_item(portal.records[0])
    refused = portal.refused(lambda: b.request_revocation([item]), 422, "04")
    assert refused.error == "UNKNOWN_RECORD"
    portal.refused(lambda: shared_a.request_revocation([item]), 403, "03")
    # transaction 6: A's revocation request
    portal.refused(lambda: b.query_revocation(portal.request_a), 404, "06")
    portal.refused(lambda: shared_a.query_revocation(portal.request_a), 403, "03")
    assert running.count("record", state="accepted") == accepted
    assert running.count("revocation_request") == 1
    # controls: A itself sees all of it
    assert len(a.query_submission(portal.message_a)) == 3
    assert a.query_revocation(portal.request_a).ma_yeu_cau == portal.request_a
    assert a.query_registration(serial_a).approved


def test_portal_refuses_wrong_accounts_and_certificates(
    portal: Portal, school: Any, tmp_path: Path
) -> None:
    """Wrong password, unknown account, a seal never approved, a person's certificate, a
    certificate of another CA: every transaction refused before any data is read."""
    rogue = TestPki.init(tmp_path / "rogue-ca")  # same names, another CA
    rogue_seal = SoftwareSigner.from_pkcs12(
        rogue.issue_school(P.SCHOOL, P.R.SCHOOL_NAME, P.R.PASSWORD).p12_path, P.R.PASSWORD
    )
    attempts = {
        "wrong password": (portal.client(P.USER, P.SCHOOL, school.seal, "sai"), 401, "01"),
        "unknown account": (portal.client("ai-do", P.SCHOOL, school.seal), 401, "01"),
        "unapproved seal": (portal.client(P.USER, P.SCHOOL, school.seal_2), 403, "03"),
        "a person's certificate": (portal.client(P.USER, P.SCHOOL, school.principal), 403, "03"),
        "another CA": (portal.client(P.USER, P.SCHOOL, rogue_seal), 403, "03"),
    }
    item = P._revocation_item(portal.records[0])
    serial_a = format(school.seal.certificate.serial_number, "X")
    for what, (client, status, code) in attempts.items():
        package = P._one_package(portal.records[:1], nonce=what)
        for call in (
            lambda c=client, p=package: c.submit(p),
            lambda c=client: c.query_submission(portal.message_a),
            lambda c=client: c.query_registration(serial_a),
            lambda c=client: c.request_revocation([item]),
            lambda c=client: c.query_revocation(portal.request_a),
        ):
            portal.refused(call, status, code)
    assert portal.running.count("revocation_request") == 1
    assert portal.running.count("message") == 4  # two registrations, A's submission, A's request
    # a person's certificate (or the rogue seal) registered for A stays pending: no approval
    # without the Sở, so it never acts for the school
    person = portal.client(SHARED, P.SCHOOL, school.principal)
    assert person.register_certificate().trang_thai == "pending"
    portal.refused(lambda: person.query_submission(portal.message_a), 403, "03")


def test_portal_auto_approval_only_for_a_certificate_naming_the_unit(
    pg_url: str, school: Any, server: Any
) -> None:
    """``hocba portal serve`` auto-approves registrations (demo): a person's certificate, or
    another school's, registered for a unit must not become that unit's seal."""
    url, dispatch = server
    schema = f"probe_portal_{os.getpid()}_{next(_schemas)}"
    app_ = create_portal_app(
        pg_url,
        schema,
        trusted_roots=[school.pki.root_certificate],
        users={SHARED: P.PORTAL_PASSWORD},
        admin_token=P.ADMIN,
        auto_approve_certificates=True,
    )
    dispatch.app = app_
    try:
        with (
            PortalClient(
                url,
                SHARED,
                P.PORTAL_PASSWORD,
                P.SCHOOL,
                school.teacher,
                timeout=10.0,
                retries=0,
                nam_hoc=P.YEAR,
            ) as teacher,
            PortalClient(
                url,
                SHARED,
                P.PORTAL_PASSWORD,
                P.SCHOOL,
                school.seal,
                timeout=10.0,
                retries=0,
                nam_hoc=P.YEAR,
            ) as seal,
        ):
            assert teacher.register_certificate().trang_thai == "pending"
            with pytest.raises(PortalRefused) as refused:
                teacher.query_submission("khong-co")
            assert refused.value.answer.response_code == "03"
            assert seal.register_certificate().trang_thai == "approved"  # control
    finally:
        dispatch.app = None
        app_.state.portal.store.drop()
        app_.state.portal.store.engine.dispose()


def test_portal_admin_endpoints_need_the_admin_token(portal: Portal) -> None:
    import httpx

    for method, path in (
        ("GET", "/admin/faults"),
        ("PUT", "/admin/faults"),
        ("GET", "/admin/stats"),
        ("GET", "/admin/certificates"),
        ("POST", f"/admin/certificates/{portal.registration_a}/reject"),
        ("GET", "/admin/revocations"),
        ("POST", f"/admin/revocations/{portal.request_a}/accept"),
    ):
        for headers in ({}, {"X-Admin-Token": "sai"}, {"X-Admin-Token": ""}):
            kwargs: dict[str, Any] = {"json": {}} if method != "GET" else {}
            response = httpx.request(
                method, f"{portal.url}{path}", headers=headers, timeout=10, **kwargs
            )
            assert response.status_code in (401, 403, 422), (method, path, response.text)
            for secret in portal.secrets:
                assert secret not in response.text
    assert portal.a.query_registration().approved  # nothing was decided
    assert portal.a.query_revocation(portal.request_a).trang_thai == RevocationStatus.PENDING


def test_a_class_with_a_pupil_who_moved_away_this_year_can_still_be_printed(
    demo: Demo, tmp_path: Path
) -> None:
    pupil, klass = demo.column(
        "SELECT ARRAY[p.pupil_code, c.name] FROM hoc_ba r JOIN pupil p ON p.id = r.pupil_id "
        "JOIN school_class c ON c.id = r.class_id JOIN school s ON s.id = r.school_id "
        "JOIN enrolment e ON e.pupil_id = p.id AND e.school_id = s.id AND e.left_on IS NULL "
        f"WHERE s.code = 'DH01' AND {_ALONE} ORDER BY r.id DESC LIMIT 1"
    )[0]
    package = tmp_path / "chuyen.zip"
    res = demo.run(
        "transfer", "export", pupil, "--to", "DH02", "--leaving-date", "20/01/2025",
        "--as", "dh01.vt", "--out", str(package),
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    res = demo.run(
        "transfer", "receive", str(package), "--school", "DH02", "--as", "dh02.ht",
        "--receipt-out", str(tmp_path / "bien-nhan.json"),
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    res = demo.run(
        "print-class", "--school", "DH01", "--class", klass, "--as", "dh01.ht",
        "--out", str(tmp_path / "in"),
    )  # fmt: skip
    assert res.exit_code == 0, res.output
