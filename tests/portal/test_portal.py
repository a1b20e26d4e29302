"""The bundled province portal (HOCBA_SPEC §6), over real HTTP and a real PostgreSQL.

Each test gets a fresh portal in a PostgreSQL schema of its own (dropped afterwards),
served by uvicorn in a thread on 127.0.0.1 (one server per module), and talks to it
through :class:`PortalClient` exactly as a school's worker would. Records are real: built
from the TT27 record of tests/tasks/conftest.py and signed GVCN → CBQL → seal with a test
PKI made here.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import itertools
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from issuing import forge
from sqlalchemy import func, select, text

from hocba.db import make_engine
from hocba.dev.portal import (
    PortalFactory,
    PortalFaults,
    ProvincePortal,
    ServedPortal,
    create_portal_app,
    serve_in_processes,
)
from hocba.dev.portal.store import PortalStore
from hocba.dev.testpki import TestPki
from hocba.pki.signer import Signer, SoftwareSigner
from hocba.portal.client import (
    DEFAULT_PATHS,
    PortalClient,
    PortalNotFound,
    PortalRefused,
    PortalUnavailable,
    RecordResult,
    RevocationStatus,
    password_digest,
    signed_bytes,
)
from hocba.portal.package import (
    Package,
    RevocationItem,
    decode_content,
    encode_content,
    package_records,
)
from hocba.xml.dsig import sign_slots
from hocba.xml.record import build_record_xml


def _load_record_fixtures() -> Any:
    """tests/tasks/conftest.py, for its complete TT27 record and the school's staff."""
    path = Path(__file__).parents[1] / "tasks" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_hocba_portal_record_fixtures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


R = _load_record_fixtures()
SCHOOL = R.SCHOOL_CODE
YEAR = "2024-2025"
USER = "kimdong"
PORTAL_PASSWORD = "mat-khau-cong-so"
ADMIN = "admin-thu-nghiem"
_schemas = itertools.count()


# ============================================================================ fixtures
@dataclass(frozen=True)
class School:
    pki: TestPki
    seal: SoftwareSigner  # the school's organisation certificate (approved)
    seal_2: SoftwareSigner  # a second organisation certificate of the school (never approved)
    other_school: SoftwareSigner  # another school's certificate
    teacher: SoftwareSigner
    principal: SoftwareSigner


@pytest.fixture(scope="module")
def school(tmp_path_factory: pytest.TempPathFactory) -> School:
    pki = TestPki.init(tmp_path_factory.mktemp("portal-pki") / "ca")
    pw = R.PASSWORD

    def signer(identity: Any) -> SoftwareSigner:
        return SoftwareSigner.from_pkcs12(identity.p12_path, pw)

    return School(
        pki=pki,
        seal=signer(pki.issue_school(SCHOOL, R.SCHOOL_NAME, pw)),
        seal_2=signer(pki.issue_school(SCHOOL, R.SCHOOL_NAME, pw, label="truong-2")),
        other_school=signer(pki.issue_school("79000999", "Trường Tiểu học Khác", pw)),
        teacher=signer(
            pki.issue_person(
                R.TEACHER_CCCD, R.TEACHER_NAME, "Giáo viên", pw, organization=R.SCHOOL_NAME
            )
        ),
        principal=signer(
            pki.issue_person(
                R.PRINCIPAL_CCCD, R.PRINCIPAL_NAME, "Hiệu trưởng", pw, organization=R.SCHOOL_NAME
            )
        ),
    )


_pupils = itertools.count(1)


@pytest.fixture(scope="module")
def issue(school: School) -> Callable[..., list[bytes]]:
    """``issue(n)``: n new issued records (new pupils, new lookup codes), fully signed;
    ``issue(1, lookup_code=...)`` reuses a lookup code."""

    def make(n: int, lookup_code: str | None = None) -> list[bytes]:
        documents = []
        for _ in range(n):
            k = next(_pupils)
            record = R._make_record(pupil_name=f"Học Sinh Số {k}", cccd=f"079215{k:06d}")
            record.thong_tin_chung["MA_TRA_CUU_UUID"] = lookup_code or str(uuid.uuid4())
            record.thong_tin_chung["MA_HOC_SINH"] = f"22{k:08d}"
            documents.append(build_record_xml(record))
        documents = sign_slots(
            documents, "GVCN", school.teacher, R.GVCN_TIME, {"SO_CCCD": R.TEACHER_CCCD}
        )
        documents = sign_slots(
            documents, "CBQL", school.principal, R.CBQL_TIME, {"SO_CCCD": R.PRINCIPAL_CCCD}
        )
        return sign_slots(documents, "KY_PHAT_HANH", school.seal, R.SEAL_TIME)

    return make


@pytest.fixture(scope="module")
def batch(issue: Callable[[int], list[bytes]]) -> list[bytes]:
    """Eight issued records of class 4A, shared by tests that only read them."""
    return issue(8)


@dataclass
class RunningPortal:
    url: str
    portal: ProvincePortal

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = httpx.request(
            method, f"{self.url}{path}", headers={"X-Admin-Token": ADMIN}, timeout=10, **kwargs
        )
        response.raise_for_status()
        return response

    def faults(self, **switches: Any) -> None:
        self.admin("PUT", "/admin/faults", json=switches)

    def count(self, table: str, **where: Any) -> int:
        t = self.portal.store.t[table]
        query = select(func.count()).select_from(t)
        for column, value in where.items():
            query = query.where(t.c[column] == value)
        with self.portal.store.engine.connect() as conn:
            return int(conn.scalar(query) or 0)


class _Dispatch:
    """The ASGI app the module's uvicorn serves: forwards to the current test's portal."""

    app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, _Dispatch]]:
    """One uvicorn on a free port of 127.0.0.1 per module (stopping one takes 0.2 s)."""
    dispatch = _Dispatch()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(dispatch, lifespan="off", log_level="critical"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the portal did not start")
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", dispatch
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture
def running(pg_url: str, school: School, server: tuple[str, _Dispatch]) -> Iterator[RunningPortal]:
    """A fresh portal, in a PostgreSQL schema of its own, served over real HTTP."""
    url, dispatch = server
    schema = f"portal_{os.getpid()}_{next(_schemas)}"
    app = create_portal_app(
        pg_url,
        schema,
        trusted_roots=[school.pki.root_certificate],
        users={USER: PORTAL_PASSWORD},
        admin_token=ADMIN,
    )
    dispatch.app = app
    portal: ProvincePortal = app.state.portal
    yield RunningPortal(url, portal)
    dispatch.app = None
    portal.store.drop()
    portal.store.engine.dispose()


@pytest.fixture
def connect(running: RunningPortal, school: School) -> Iterator[Callable[..., PortalClient]]:
    clients: list[PortalClient] = []

    def make(signer: Signer | None = None, **overrides: Any) -> PortalClient:
        options: dict[str, Any] = {
            "password": PORTAL_PASSWORD,
            "timeout": 10.0,
            "retries": 4,
            "backoff": 0.01,
            "nam_hoc": YEAR,
        }
        options.update(overrides)
        password = options.pop("password")
        client = PortalClient(running.url, USER, password, SCHOOL, signer or school.seal, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(connect: Callable[..., PortalClient], running: RunningPortal) -> PortalClient:
    """A client whose organisation certificate is registered (3) and approved by an admin."""
    client = connect()
    registration = client.register_certificate(ma_kieu_chu_ky="USB_TOKEN", nha_phat_hanh="VNPT")
    running.admin("POST", f"/admin/certificates/{registration.ma_dang_ky}/approve")
    return client


def _one_package(records: list[bytes], nonce: str = "") -> Package:
    (package,) = package_records(records, nonce=nonce)
    return package


def _tamper(record: bytes) -> bytes:
    """Change a test score inside the signed data (the issued record is "corrected")."""
    changed = record.replace(
        b"<DIEM_KIEM_TRA_DINH_KY>10</DIEM_KIEM_TRA_DINH_KY>",
        b"<DIEM_KIEM_TRA_DINH_KY>9</DIEM_KIEM_TRA_DINH_KY>",
        1,
    )
    assert changed != record
    return changed


def _code(record: bytes) -> str:
    start = record.index(b"<MA_TRA_CUU_UUID>") + len(b"<MA_TRA_CUU_UUID>")
    return record[start : record.index(b"</MA_TRA_CUU_UUID>")].decode()


# ============================================================================ certificates
def test_a_certificate_is_registered_then_approved_by_the_sở(
    connect: Callable[..., PortalClient], running: RunningPortal
) -> None:
    client = connect()
    registered = client.register_certificate(ma_kieu_chu_ky="REMOTE_SIGNING", nha_phat_hanh="VNPT")
    assert (registered.trang_thai_phe_duyet, registered.trang_thai) == (0, "pending")
    assert client.query_registration().trang_thai_phe_duyet == 0
    again = client.register_certificate(ma_kieu_chu_ky="REMOTE_SIGNING", nha_phat_hanh="VNPT")
    assert again.ma_dang_ky == registered.ma_dang_ky  # the same certificate, one registration
    assert running.count("certificate_registration") == 1

    running.admin("POST", f"/admin/certificates/{registered.ma_dang_ky}/approve")
    status = client.query_registration()
    assert (status.trang_thai_phe_duyet, status.approved) == (1, True)
    assert status.serial_number == format(client.signer.certificate.serial_number, "X")


def test_another_schools_certificate_cannot_be_registered(
    connect: Callable[..., PortalClient], school: School
) -> None:
    with pytest.raises(PortalRefused) as refused:
        connect(school.other_school).register_certificate()
    assert (refused.value.status_code, refused.value.response_code) == (403, "03")


def test_unknown_issuer_kind_is_refused(connect: Callable[..., PortalClient]) -> None:
    with pytest.raises(PortalRefused) as refused:
        connect().register_certificate(nha_phat_hanh="CA_LA")
    assert refused.value.response_code == "04"


# ============================================================================ submission
def test_a_signed_submission_is_accepted_and_queryable_per_record(
    client: PortalClient, running: RunningPortal, batch: list[bytes]
) -> None:
    package = _one_package(batch)
    answer = client.submit(package)
    assert answer.ok and answer.message_id == package.message_id
    assert (answer.data["so_hoc_ba"], answer.data["so_tiep_nhan"]) == (8, 8)

    results = client.query_submission(package.message_id)
    assert [r.ma_tra_cuu_uuid for r in results] == [_code(r) for r in batch]
    assert all(r.accepted and r.error is None for r in results)
    first = results[0]
    assert first.ten_hoc_sinh and first.ten_hoc_sinh.startswith("Học Sinh Số")
    assert first.so_cccd and len(first.so_cccd) == 12 and first.ma_hoc_sinh
    assert first.so_cccd not in repr(first)
    assert running.count("record", state="accepted") == 8
    assert running.count("message") == 2  # the registration and the submission


def test_a_tampered_record_is_rejected_with_error_fields_the_others_accepted(
    client: PortalClient,
    running: RunningPortal,
    batch: list[bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    records = list(batch[:4])
    records[2] = _tamper(records[2])
    package = _one_package(records)
    with caplog.at_level("INFO", logger="hocba.dev.portal"):
        answer = client.submit(package)
    assert (answer.data["so_tiep_nhan"], answer.data["so_tu_choi"]) == (3, 1)

    results = client.query_submission(package.message_id)
    assert [r.trang_thai for r in results] == [1, 1, 0, 1]
    rejected = results[2]
    assert rejected.ma_tra_cuu_uuid == _code(records[2])
    assert rejected.error == "SIGNATURE_GVCN"
    assert rejected.error_field_title == "DU_LIEU_HOC_BA"
    assert rejected.error_description and "GVCN" in rejected.error_description
    assert rejected.so_cccd and rejected.so_cccd[-2:] in caplog.text  # logged masked...
    assert rejected.so_cccd not in caplog.text  # ...never in clear (Nghị định 13/2023)
    assert rejected.ma_tra_cuu_uuid in caplog.text
    assert running.count("record") == 3
    assert running.count("record", ma_tra_cuu_uuid=_code(records[2])) == 0


def test_records_of_another_school_year_are_rejected(
    client: PortalClient, batch: list[bytes]
) -> None:
    package = _one_package(batch[:2])
    client.submit(package, nam_hoc="2025-2026")
    results = client.query_submission(package.message_id, nam_hoc="2025-2026")
    assert {(r.error, r.error_field_title) for r in results} == {("YEAR_MISMATCH", "TEN_NAM_HOC")}


@pytest.mark.parametrize(
    ("how", "status", "code"),
    [
        ("wrong password", 401, "01"),
        ("unknown user", 401, "01"),
        ("content changed after signing", 403, "02"),
        ("certificate registered but not approved", 403, "03"),
        ("certificate never registered", 403, "03"),
    ],
)
def test_refused_transactions_store_nothing(
    how: str,
    status: int,
    code: str,
    client: PortalClient,
    connect: Callable[..., PortalClient],
    running: RunningPortal,
    school: School,
    batch: list[bytes],
) -> None:
    package = _one_package(batch[:2])
    if how == "wrong password":
        sender = connect(password="mat-khau-sai")
    elif how == "unknown user":
        sender = connect()
        sender.user_name = "nguoi-la"
    elif how == "certificate registered but not approved":
        sender = connect(school.seal_2)
        sender.register_certificate()
    elif how == "certificate never registered":
        sender = connect(school.seal_2)
    else:
        sender = client
    if how == "content changed after signing":
        envelope = client.envelope(1, package.content, package.message_id)
        xml = decode_content(envelope["content"]).replace(
            "<HO_VA_TEN>Học Sinh".encode(), b"<HO_VA_TEN>Hoc Sinh", 1
        )
        envelope["content"] = encode_content(xml)
        # a forger can recompute the digest, not the signature value
        digest = hashlib.sha256(signed_bytes(envelope)).digest()
        envelope["Signature"]["DigestValue"] = base64.b64encode(digest).decode()
        response = httpx.post(f"{running.url}{DEFAULT_PATHS[1]}", json=envelope, timeout=10)
        refusal = (response.status_code, response.json()["ResponseCode"])
    else:
        with pytest.raises(PortalRefused) as refused:
            sender.submit(package)
        refusal = (refused.value.status_code, refused.value.response_code)
    assert refusal == (status, code)
    assert running.count("record") == 0
    assert running.count("message", giao_dich=1) == 0


def test_the_password_travels_hashed_and_is_never_logged(
    client: PortalClient, batch: list[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    package = _one_package(batch[:1])
    envelope = client.envelope(1, package.content, package.message_id)
    assert envelope["authenticationRequest"]["password"] == password_digest(PORTAL_PASSWORD)
    with caplog.at_level("DEBUG"):
        client.submit(package)
        client.query_submission(package.message_id)
    assert PORTAL_PASSWORD not in caplog.text
    assert password_digest(PORTAL_PASSWORD) not in caplog.text
    assert PORTAL_PASSWORD not in repr(client)


def test_a_resend_with_the_same_messageid_returns_the_first_answer(
    client: PortalClient, running: RunningPortal, batch: list[bytes]
) -> None:
    package = _one_package(batch)
    first = client.submit(package)
    counts = (running.count("message"), running.count("record"), running.count("submission_result"))
    second = client.submit(package)
    assert second.data == first.data
    assert package_records(batch)[0].message_id == package.message_id  # a retry re-derives it
    assert counts == (
        running.count("message"),
        running.count("record"),
        running.count("submission_result"),
    )
    assert running.count("record") == len(batch)


def test_concurrent_sends_of_one_message_store_it_once(
    client: PortalClient,
    connect: Callable[..., PortalClient],
    running: RunningPortal,
    batch: list[bytes],
) -> None:
    """Two workers (or a retry racing the first attempt) send the same package at once:
    both verify it, one stores it, the other gets the stored answer."""
    package = _one_package(batch)
    senders = [client, connect()]
    answers: list[Any] = [None, None]
    barrier = threading.Barrier(2)

    def send(i: int) -> None:
        barrier.wait()
        answers[i] = senders[i].submit(package).data

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers[0] == answers[1] and answers[0]["so_tiep_nhan"] == len(batch)
    assert running.count("message", messageid=package.message_id) == 1
    assert running.count("submission_result") == len(batch)
    assert running.count("record") == len(batch)


def test_a_messageid_reused_for_other_content_is_a_conflict(
    client: PortalClient, batch: list[bytes]
) -> None:
    package = _one_package(batch[:2])
    client.submit(package)
    with pytest.raises(PortalRefused) as refused:
        client.submit(_one_package(batch[2:4]).content, message_id=package.message_id)
    assert (refused.value.status_code, refused.value.response_code) == (409, "05")


def test_the_same_record_in_two_messages_is_stored_once(
    client: PortalClient, running: RunningPortal, batch: list[bytes]
) -> None:
    first = _one_package(batch[:3])
    second = _one_package(batch[2:5])  # batch[2] in both
    client.submit(first)
    answer = client.submit(second)
    assert answer.data["so_tiep_nhan"] == 3
    again = client.query_submission(second.message_id)[0]
    assert again.accepted and first.message_id in (again.error_description or "")
    assert running.count("record") == 5
    assert running.count("record", ma_tra_cuu_uuid=_code(batch[2])) == 1


def test_the_same_lookup_code_with_other_content_is_rejected(
    client: PortalClient,
    running: RunningPortal,
    batch: list[bytes],
    issue: Callable[..., list[bytes]],
) -> None:
    client.submit(_one_package(batch[:1]))
    # another properly signed record reusing the lookup code (a correction needs a new one)
    package = _one_package(issue(1, lookup_code=_code(batch[0])))
    client.submit(package)
    (result,) = client.query_submission(package.message_id)
    assert (result.trang_thai, result.error, result.error_field_title) == (
        0,
        "REGISTRY_MATCH",
        "MA_TRA_CUU_UUID",
    )
    assert running.count("record") == 1


# ------------------------------------------------------------------ forgeries (issue 16)
def _submit_one(client: PortalClient, record: bytes) -> RecordResult:
    package = _one_package([record], nonce=uuid.uuid4().hex)
    client.submit(package)
    (result,) = client.query_submission(package.message_id)
    return result


@pytest.mark.parametrize("real_teacher", [False, True], ids=["seal-everywhere", "seal-as-cbql"])
def test_a_record_forged_with_the_seal_is_rejected_by_the_role_check(
    client: PortalClient, running: RunningPortal, batch: list[bytes], school: School, real_teacher
) -> None:
    """The clerk holds only the approved seal: name and score changed, a new lookup code,
    the seal in the personal slots — re-signed with the project's own signer."""
    gvcn = school.teacher if real_teacher else school.seal
    forged = forge(batch[0], gvcn, school.seal, school.seal)
    result = _submit_one(client, forged)
    assert result.trang_thai == 0
    assert result.error == ("ROLE_CBQL" if real_teacher else "ROLE_GVCN")
    assert result.error_description and "chứng thư số của tổ chức" in result.error_description
    assert running.count("record") == 0


@pytest.mark.parametrize(
    ("element", "value"),
    [("SO_CCCD", "001190099999"), ("NGAY_KY", "2025-05-20T10:00:00+07:00")],
)
def test_a_changed_unsigned_slot_field_is_rejected(
    client: PortalClient, running: RunningPortal, batch: list[bytes], element: str, value: str
) -> None:
    start = batch[1].index(b"<GVCN>")
    head, tail = batch[1][:start], batch[1][start:]
    opening, closing = f"<{element}>".encode(), f"</{element}>".encode()
    i = tail.index(opening) + len(opening)
    changed = head + tail[:i] + value.encode() + tail[tail.index(closing, i) :]
    result = _submit_one(client, changed)
    assert (result.trang_thai, result.error) == (0, "SIGNATURE_GVCN")
    assert running.count("record") == 0


def test_a_resend_with_a_trailing_newline_is_the_same_record(
    client: PortalClient, running: RunningPortal, batch: list[bytes], school: School
) -> None:
    first = _submit_one(client, batch[2])
    assert first.accepted
    again = _submit_one(client, batch[2] + b"\n")
    assert again.accepted and again.error is None
    assert "không trùng từng byte" in (again.error_description or "")
    assert running.count("record") == 1
    # other signed content under that lookup code, every real key: not the same record
    resigned = forge(
        batch[2], school.teacher, school.principal, school.seal, lookup_code=_code(batch[2])
    )
    other = _submit_one(client, resigned)
    assert (other.trang_thai, other.error) == (0, "REGISTRY_MATCH")
    assert running.count("record") == 1


def test_an_unknown_submission_is_not_found(client: PortalClient) -> None:
    with pytest.raises(PortalNotFound):
        client.query_submission(str(uuid.uuid4()))


# ============================================================================ faults
@pytest.mark.parametrize(
    ("faults", "timeout"),
    [
        pytest.param({"fail_next": 3}, 10.0, id="three HTTP 500s"),
        pytest.param({"error_rate": 0.6, "seed": 7}, 10.0, id="random HTTP 500s"),
        pytest.param({"drop_next": 2}, 10.0, id="two dropped answers"),
        pytest.param({"drop_rate": 0.5, "seed": 3}, 10.0, id="random dropped answers"),
        pytest.param({"latency": 0.2}, 10.0, id="a slow portal"),
        pytest.param({"latency": 1.5, "latency_next": 1}, 0.5, id="an answer after the timeout"),
    ],
)
def test_each_fault_is_survived_by_retries_with_one_stored_submission(
    faults: dict[str, Any],
    timeout: float,
    client: PortalClient,
    connect: Callable[..., PortalClient],
    running: RunningPortal,
    batch: list[bytes],
) -> None:
    package = _one_package(batch[:4])
    sender = connect(timeout=timeout, retries=8, backoff=0.05) if timeout < 10 else client
    running.faults(**faults, transactions=[1])
    answer = sender.submit(package)
    running.faults()  # all off
    assert answer.ok and answer.data["so_tiep_nhan"] == 4
    assert running.count("message", messageid=package.message_id) == 1
    assert running.count("submission_result") == 4
    assert running.count("record") == 4
    assert all(r.accepted for r in client.query_submission(package.message_id))


def test_a_dropped_answer_then_the_same_messageid_gives_exactly_one_submission(
    client: PortalClient, running: RunningPortal, batch: list[bytes]
) -> None:
    package = _one_package(batch[:3])
    running.faults(drop_next=1, transactions=[1])
    client.retries = 0
    with pytest.raises(PortalUnavailable):
        client.submit(package)  # the portal did the work; the answer was lost
    assert running.count("record") == 3
    client.retries = 2
    answer = client.submit(package)  # the flow's retry, later, with the same messageid
    assert answer.data["so_tiep_nhan"] == 3
    assert running.count("message", messageid=package.message_id) == 1
    assert running.count("record") == 3


def test_partial_acceptance_then_a_new_message_for_the_rejected_records(
    client: PortalClient, running: RunningPortal, batch: list[bytes]
) -> None:
    running.faults(reject_every=3)
    package = _one_package(batch)
    client.submit(package)
    results = client.query_submission(package.message_id)
    rejected = [i for i, r in enumerate(results) if not r.accepted]
    assert rejected == [2, 5]
    assert {results[i].error for i in rejected} == {"FAULT_INJECTED"}
    running.faults()
    retry = _one_package([batch[i] for i in rejected], nonce="lan-2")
    assert client.submit(retry).data["so_tiep_nhan"] == 2
    assert running.count("record") == len(batch)


def test_a_portal_that_never_answers_is_unavailable(
    connect: Callable[..., PortalClient], running: RunningPortal, batch: list[bytes]
) -> None:
    running.faults(fail_next=100)
    sender = connect(retries=2)
    with pytest.raises(PortalUnavailable) as unavailable:
        sender.submit(_one_package(batch[:1]))
    assert "3 lần" in unavailable.value.message_vi
    running.faults()


def test_faults_are_switched_by_the_admin_only(running: RunningPortal) -> None:
    response = httpx.put(f"{running.url}/admin/faults", json={"latency": 1}, timeout=10)
    assert response.status_code == 403
    running.faults(latency=0.2, reject_every=4, transactions=[1])
    current = running.admin("GET", "/admin/faults").json()
    assert (current["latency"], current["reject_every"], current["transactions"]) == (0.2, 4, [1])
    assert running.portal.faults.faults == PortalFaults(
        latency=0.2, reject_every=4, transactions=(1,)
    )


def test_a_transaction_over_10_mb_is_refused(running: RunningPortal) -> None:
    body = b"{" + b" " * (10 * 1024 * 1024) + b"}"
    response = httpx.post(f"{running.url}{DEFAULT_PATHS[1]}", content=body, timeout=30)
    assert (response.status_code, response.json()["ResponseCode"]) == (413, "07")


def test_the_generic_endpoint_dispatches_by_type(
    client: PortalClient, running: RunningPortal
) -> None:
    serial = format(client.signer.certificate.serial_number, "X")
    envelope = client.envelope(4, {"serial_number": serial}, "q-1")
    response = httpx.post(f"{running.url}/hocba/v1/giao-dich", json=envelope, timeout=10)
    assert response.status_code == 200 and response.json()["trang_thai_phe_duyet"] == 1
    wrong = httpx.post(f"{running.url}{DEFAULT_PATHS[1]}", json=envelope, timeout=10)
    assert (wrong.status_code, wrong.json()["ResponseCode"]) == (422, "04")


# ============================================================================ revocation
def _revocation_item(record: bytes) -> RevocationItem:
    return RevocationItem(
        ma_tra_cuu_uuid=_code(record),
        ho_va_ten="Học Sinh",
        gioi_tinh="Nữ",
        ngay_sinh="2015-03-02",
        so_cccd="079215000001",
        ten_truong=R.SCHOOL_NAME,
        ma_truong=SCHOOL,
        ten_nam_hoc=YEAR,
        ly_do="Sai ngày sinh theo quyết định hộ tịch số 12/QĐ",
    )


def test_revocation_is_requested_queried_and_decided(
    client: PortalClient, running: RunningPortal, batch: list[bytes]
) -> None:
    client.submit(_one_package(batch[:3]))
    message_id = str(uuid.uuid4())
    request = client.request_revocation(
        [_revocation_item(batch[0]), _revocation_item(batch[1])], message_id=message_id
    )
    assert request.trang_thai == RevocationStatus.PENDING
    again = client.request_revocation(
        [_revocation_item(batch[0]), _revocation_item(batch[1])], message_id=message_id
    )
    assert again.ma_yeu_cau == request.ma_yeu_cau  # a resend files nothing new
    assert running.count("revocation_request") == 1
    assert client.query_revocation(request.ma_yeu_cau).trang_thai == RevocationStatus.PENDING

    running.admin("POST", f"/admin/revocations/{request.ma_yeu_cau}/accept", json={})
    assert client.query_revocation(request.ma_yeu_cau).trang_thai == RevocationStatus.ACCEPTED
    assert running.count("record", state="revoked") == 2

    resent = _one_package(batch[:1], nonce="sau-thu-hoi")
    client.submit(resent)
    (result,) = client.query_submission(resent.message_id)
    assert (result.trang_thai, result.error) == (0, "REGISTRY_MATCH")


def test_a_rejected_revocation_and_unknown_records(
    client: PortalClient, running: RunningPortal, batch: list[bytes]
) -> None:
    client.submit(_one_package(batch[:1]))
    request = client.request_revocation([_revocation_item(batch[0])])
    running.admin(
        "POST", f"/admin/revocations/{request.ma_yeu_cau}/reject", json={"ly_do": "Thiếu hồ sơ"}
    )
    decided = client.query_revocation(request.ma_yeu_cau)
    assert (decided.trang_thai, decided.ly_do) == (RevocationStatus.REJECTED, "Thiếu hồ sơ")
    assert running.count("record", state="accepted") == 1
    with pytest.raises(PortalRefused) as refused:
        client.request_revocation([_revocation_item(batch[5])])  # never submitted
    assert refused.value.answer.error == "UNKNOWN_RECORD"
    with pytest.raises(PortalNotFound):
        client.query_revocation(str(uuid.uuid4()))


def test_results_parse_into_record_results() -> None:
    item = {
        "ma_hoc_sinh": "2200000001",
        "ten_hoc_sinh": "Lê Minh Anh",
        "so_cccd": "079215000123",
        "ma_tra_cuu_uuid": "x",
        "trang_thai": 0,
        "error": "SCHEMA",
        "error_field_title": "HOC_BA",
        "error_description": "…",
    }
    result = RecordResult.of(json.loads(json.dumps(item)))
    assert not result.accepted and "079215000123" not in repr(result)


# ============================================================================ several processes
class _Served:
    """Portals served as ``hocba portal serve`` runs them (:func:`serve_in_processes`),
    each on its own port, all on one store."""

    def __init__(self, factory: PortalFactory) -> None:
        self.factory = factory
        self.stack = ExitStack()
        self.lock = threading.Lock()

    def start(self, workers: int = 1) -> ServedPortal:
        """A portal of ``workers`` processes, once all of them are up."""
        context = serve_in_processes(self.factory, workers)
        served = context.__enter__()
        with self.lock:
            self.stack.push(context.__exit__)
        return served


@pytest.fixture
def served(pg_url: str, school: School) -> Iterator[_Served]:
    schema = f"portal_{os.getpid()}_{next(_schemas)}"
    factory = PortalFactory.of(
        pg_url,
        schema,
        [school.pki.root_certificate],
        {USER: PORTAL_PASSWORD},
        admin_token=ADMIN,
    )
    running = _Served(factory)
    with running.stack:
        yield running
    engine = make_engine(pg_url, schema)
    PortalStore(engine, schema).drop()
    engine.dispose()


@pytest.fixture
def two(served: _Served) -> list[str]:
    """Two portal processes on one store, each at its own URL."""
    return [served.start().url, served.start().url]


def _store(served: _Served) -> PortalStore:
    return PortalStore(
        make_engine(served.factory.url, served.factory.schema), served.factory.schema
    )


def _client_at(url: str, school: School, **options: Any) -> PortalClient:
    options = {"timeout": 30.0, "retries": 0, "nam_hoc": YEAR, **options}
    return PortalClient(url, USER, PORTAL_PASSWORD, SCHOOL, school.seal, **options)


def test_one_message_sent_to_two_processes_is_processed_once(
    two: list[str], served: _Served, school: School, issue: Callable[[int], list[bytes]]
) -> None:
    first, second = (_client_at(url, school) for url in two)
    registered = first.register_certificate(ma_kieu_chu_ky="USB_TOKEN", nha_phat_hanh="VNPT")
    httpx.post(
        f"{two[1]}/admin/certificates/{registered.ma_dang_ky}/approve",
        headers={"X-Admin-Token": ADMIN},
        timeout=10,
    ).raise_for_status()  # approved through the other process
    assert second.query_registration().approved

    package = _one_package(issue(5))
    answers: list[Any] = []
    threads = [
        threading.Thread(target=lambda c=c: answers.append(c.submit(package)))
        for c in (first, second)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == 2
    assert [a.data["so_tiep_nhan"] for a in answers] == [5, 5]  # the same answer, twice
    store = _store(served)
    try:
        counts = store.counts()
        assert counts["record_accepted"] == 5 and counts["submission_result"] == 5
        assert counts["message"] == 2  # the registration and ONE submission
    finally:
        store.engine.dispose()
    results = second.query_submission(package.message_id)
    assert [r.accepted for r in results] == [True] * 5
    first.close()
    second.close()


def test_fault_switches_set_through_one_process_apply_to_the_other(
    two: list[str], school: School
) -> None:
    client = _client_at(two[1], school)
    client.register_certificate(ma_kieu_chu_ky="USB_TOKEN", nha_phat_hanh="VNPT")
    headers = {"X-Admin-Token": ADMIN}
    put = httpx.put(
        f"{two[0]}/admin/faults",
        json={"fail_next": 1, "reject_every": 2, "transactions": [4]},
        headers=headers,
        timeout=10,
    )
    put.raise_for_status()
    seen = httpx.get(f"{two[1]}/admin/faults", headers=headers, timeout=10).json()
    assert (seen["fail_next"], seen["reject_every"], seen["transactions"]) == (1, 2, [4])

    with pytest.raises(PortalUnavailable):  # the other process fails the next transaction 4
        client.query_registration()
    # ...once: the countdown was consumed in the store, for both processes
    assert _client_at(two[0], school).query_registration().trang_thai == "pending"
    assert client.query_registration().trang_thai == "pending"
    after = httpx.get(f"{two[0]}/admin/faults", headers=headers, timeout=10).json()
    assert after["fail_next"] == 0 and after["reject_every"] == 2
    client.close()


def test_processes_started_together_create_the_store_once(served: _Served) -> None:
    # a fresh schema: two single processes and a supervisor of three start at once,
    # and all of them create (or find) the portal's tables
    with ThreadPoolExecutor(3) as pool:
        portals = list(pool.map(served.start, [1, 1, 3]))
    health = [httpx.get(f"{p.url}/health", timeout=10).json() for p in portals]
    assert health[2] == {"status": "ok", "processes": 3, "expected": 3}
    assert health[0]["processes"] == health[0]["expected"] == 1
    store = _store(served)
    try:
        assert store.counts()["message"] == 0
        assert store.faults() == PortalFaults().to_json()
        with store.engine.connect() as conn:  # the accepted XML: lz4, or not compressed
            storage = conn.execute(
                text(
                    "SELECT attcompression, attstorage FROM pg_attribute "
                    "WHERE attrelid = CAST(:t AS regclass) AND attname = 'xml'"
                ),
                {"t": f'"{store.schema}".record'},
            ).one()
        assert tuple(storage) in {("l", "x"), ("", "e")}
    finally:
        store.engine.dispose()
