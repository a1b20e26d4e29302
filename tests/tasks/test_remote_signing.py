"""Remote hash signing (HOCBA_SPEC §4): a class is signed with ONE confirmation.

The main tests run the local service with uvicorn on 127.0.0.1 (real HTTP) and sign
through :class:`RemoteSigner` exactly as a worker would; the user's part ("confirm on the
phone") is played by a hook that calls the service's confirm/reject endpoints. Small edge
cases use Starlette's TestClient against the same app factory.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.x509.oid import NameOID
from fastapi import FastAPI

from hocba.dev.signing_service import (
    MAX_OTP_ATTEMPTS,
    HashSigningService,
    create_signing_service,
)
from hocba.pki.remote import RemoteSigner, verify_digest_signature
from hocba.pki.signer import Signer, SigningError
from hocba.xml.dsig import IssueCode, sign_slots, verify_record_signatures, verify_slot
from hocba.xml.record import RecordDocument, build_record_xml

with warnings.catch_warnings():  # Starlette >= 1.x suggests httpx2 for its TestClient
    warnings.filterwarnings("ignore", message=".*httpx2", category=UserWarning)
    from fastapi.testclient import TestClient

P12_PASSWORD = "mat-khau-thu-nghiem"  # the session test PKI's password (tests/tasks/conftest.py)
PRINCIPAL = "hieu-truong-kim-dong"
SCHOOL = "truong-79000701"
OTP = {PRINCIPAL: "482913", SCHOOL: "730155"}
WRONG_OTP = "000000"
CLASS_SIZE = 35


# ----------------------------------------------------------------------------- fixtures
@dataclass(frozen=True)
class RunningService:
    url: str
    service: HashSigningService

    def post(self, path: str, **kwargs: object) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", timeout=10, **kwargs)  # type: ignore[arg-type]

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=10)

    def user(
        self, action: str, otp: str | None = None, delay: float = 0.0
    ) -> Callable[[str], None]:
        """The user's phone: ``action`` ("confirm"/"reject") the request after ``delay``."""

        def act(request_id: str) -> None:
            def press() -> None:
                secret = otp or OTP[self._owner(request_id)]
                self.post(f"/v1/sign-requests/{request_id}/{action}", json={"otp": secret})

            threading.Timer(delay, press).start()

        return act

    def _owner(self, request_id: str) -> str:
        return str(self.get(f"/v1/sign-requests/{request_id}").json()["user_id"])


def _keys(signing_staff) -> dict[str, tuple[object, str]]:
    return {
        PRINCIPAL: (signing_staff.principal.p12_path, P12_PASSWORD),
        SCHOOL: (signing_staff.school_ecdsa.p12_path, P12_PASSWORD),
    }


@pytest.fixture(scope="module")
def remote(signing_staff) -> Iterator[RunningService]:
    """The service under uvicorn in a background thread, on a free port of 127.0.0.1."""
    app = create_signing_service(_keys(signing_staff), otps=OTP)  # type: ignore[arg-type]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the signing service did not start")
        time.sleep(0.01)
    yield RunningService(f"http://127.0.0.1:{port}", app.state.service)
    server.should_exit = True
    thread.join(10)
    sock.close()


def _class(make_record: Callable[..., RecordDocument], size: int = CLASS_SIZE) -> list[bytes]:
    return [
        build_record_xml(make_record(pupil_name=f"Học Sinh {i:02d}", cccd=f"0792150{i:05d}"))
        for i in range(size)
    ]


def _cccd(certificate: x509.Certificate) -> str:
    serial = certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value
    assert isinstance(serial, str)
    return serial.removeprefix("CCCD:")


@pytest.fixture(scope="module")
def teacher_signed(signing_staff, times) -> Callable[[Callable[..., RecordDocument]], list[bytes]]:
    """A class whose GVCN slot is already signed (software key), ready for the principal."""

    def build(make_record: Callable[..., RecordDocument], size: int = CLASS_SIZE) -> list[bytes]:
        teacher = signing_staff.signer(signing_staff.teacher)
        extra = {"SO_CCCD": _cccd(teacher.certificate)}
        return sign_slots(_class(make_record, size), "GVCN", teacher, times.gvcn, extra)

    return build


def _digest(n: int) -> bytes:
    return hashlib.sha256(f"hoc-ba-{n}".encode()).digest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# ----------------------------------------------------------------------------- real HTTP
def test_a_class_is_signed_with_one_request_per_slot(
    remote: RunningService, signing_staff, make_record, teacher_signed, times
) -> None:
    documents = teacher_signed(make_record)
    principal_cccd = _cccd(signing_staff.principal.certificate)
    before = remote.service.request_count
    with RemoteSigner(
        remote.url, PRINCIPAL, poll_interval=0.05, confirm=remote.user("confirm", delay=0.2)
    ) as principal:
        assert isinstance(principal, Signer)
        assert principal.certificate == signing_staff.principal.certificate
        documents = sign_slots(
            documents, "CBQL", principal, times.cbql, {"SO_CCCD": principal_cccd}
        )
    assert remote.service.request_count == before + 1  # 35 records, one confirmation
    with RemoteSigner(
        remote.url, SCHOOL, poll_interval=0.05, confirm=remote.user("confirm")
    ) as school:
        assert school.algorithm == "ecdsa-sha256"
        documents = sign_slots(documents, "KY_PHAT_HANH", school, times.seal)
    assert remote.service.request_count == before + 2

    assert len(documents) == CLASS_SIZE
    for document in documents:
        result = verify_record_signatures(document, signing_staff.roots)
        assert result.ok, {s: r.errors for s, r in result.slots.items()}
        assert result.slots["CBQL"].certificate == signing_staff.principal.certificate
        assert result.slots["KY_PHAT_HANH"].certificate == signing_staff.school_ecdsa.certificate
        assert verify_slot(document, "CBQL", signing_staff.roots).ok


def test_rejection_raises_and_returns_no_document(
    remote: RunningService, signing_staff, make_record, teacher_signed, times
) -> None:
    documents = teacher_signed(make_record, 3)
    ids: list[str] = []
    reject = remote.user("reject")

    def user_rejects(request_id: str) -> None:
        ids.append(request_id)
        reject(request_id)

    result: list[bytes] | None = None
    with RemoteSigner(remote.url, PRINCIPAL, poll_interval=0.05, confirm=user_rejects) as signer:
        with pytest.raises(SigningError, match="từ chối") as raised:
            result = sign_slots(documents, "CBQL", signer, times.cbql)
    assert result is None
    assert "từ chối" in raised.value.message_vi
    assert remote.service.status_of(ids[0]) == "rejected"
    assert "signatures" not in remote.get(f"/v1/sign-requests/{ids[0]}").json()
    codes = [e.code for e in verify_slot(documents[0], "CBQL", signing_staff.roots).errors]
    assert codes == [IssueCode.SIGNATURE_MISSING]  # the inputs were never touched


def test_timeout_raises_within_the_timeout_and_cancels_the_request(
    remote: RunningService, make_record, teacher_signed, times
) -> None:
    documents = teacher_signed(make_record, 2)
    ids: list[str] = []
    timeout = 0.6
    with RemoteSigner(
        remote.url, PRINCIPAL, poll_interval=0.05, timeout=timeout, confirm=ids.append
    ) as signer:
        started = time.monotonic()
        with pytest.raises(SigningError, match="chưa xác nhận"):
            sign_slots(documents, "CBQL", signer, times.cbql)
        elapsed = time.monotonic() - started
    assert timeout <= elapsed < timeout + 0.5
    assert remote.service.status_of(ids[0]) == "cancelled"
    late = remote.post(f"/v1/sign-requests/{ids[0]}/confirm", json={"otp": OTP[PRINCIPAL]})
    assert late.status_code == 409  # a late confirmation signs nothing
    assert "signatures" not in remote.get(f"/v1/sign-requests/{ids[0]}").json()


def test_wrong_otp_is_403_and_the_request_stays_pending(
    remote: RunningService, signing_staff, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    digests = [_digest(i) for i in range(3)]
    created = remote.post(
        "/v1/sign-requests",
        json={
            "user_id": PRINCIPAL,
            "hashes": [_b64(d) for d in digests],
            "description": "Ký học bạ lớp 4A",
            "algorithm": "rsa-sha256",
        },
    )
    assert created.status_code == 201
    body = created.json()
    assert body["status"] == "pending" and body["expires_at"].endswith("Z")
    path = f"/v1/sign-requests/{body['request_id']}"

    wrong = remote.post(f"{path}/confirm", json={"otp": WRONG_OTP})
    assert wrong.status_code == 403
    assert wrong.json()["detail"] == "Mã xác nhận không đúng."
    state = remote.get(path).json()
    assert state["status"] == "pending" and "signatures" not in state

    assert remote.post(f"{path}/confirm", json={"otp": OTP[PRINCIPAL]}).status_code == 200
    state = remote.get(path).json()
    assert state["status"] == "confirmed" and state["hash_count"] == 3
    certificate = x509.load_der_x509_certificate(base64.b64decode(state["certificate"]))
    assert certificate == signing_staff.principal.certificate
    values = [base64.b64decode(v) for v in state["signatures"]]
    assert all(
        verify_digest_signature(certificate, "rsa-sha256", d, v)
        for d, v in zip(digests, values, strict=True)
    )
    for secret in (WRONG_OTP, OTP[PRINCIPAL], P12_PASSWORD):
        assert secret not in caplog.text


# ----------------------------------------------------------------------------- edge cases
@pytest.fixture(scope="module")
def app(signing_staff) -> FastAPI:
    return create_signing_service(  # type: ignore[arg-type]
        _keys(signing_staff), otps=OTP, request_ttl=0.4, max_body_bytes=64 * 1024
    )


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app)


def _request(client: TestClient, count: int = 2, **overrides: object) -> httpx.Response:
    body: dict[str, object] = {
        "user_id": PRINCIPAL,
        "hashes": [_b64(_digest(i)) for i in range(count)],
        "description": "Ký học bạ",
        "algorithm": "rsa-sha256",
    }
    return client.post("/v1/sign-requests", json={**body, **overrides})


@pytest.mark.parametrize(
    ("overrides", "status", "detail"),
    [
        ({"user_id": "khong-co"}, 404, "Không có tài khoản"),
        ({"hashes": [_b64(b"short")]}, 422, "SHA-256"),
        ({"hashes": ["không phải base64"]}, 422, "base64"),
        ({"algorithm": "ecdsa-sha256"}, 422, "thuật toán"),
        ({"hashes": []}, 422, None),
        ({"extra": 1}, 422, None),
    ],
)
def test_bad_sign_requests_are_refused(
    client: TestClient, overrides: dict, status: int, detail: str | None
) -> None:
    response = _request(client, **overrides)
    assert response.status_code == status
    if detail:
        assert detail in response.json()["detail"]


def test_at_most_1000_hashes_per_request(signing_staff) -> None:
    client = TestClient(create_signing_service(_keys(signing_staff), otps=OTP))  # type: ignore[arg-type]
    assert _request(client, 1000).status_code == 201
    response = _request(client, 1001)
    assert response.status_code == 422 and "1000" in response.json()["detail"]


def test_bodies_over_the_limit_are_413(client: TestClient) -> None:
    big = b'{"user_id": "' + b"x" * 70_000 + b'"}'
    declared = client.post("/v1/sign-requests", content=big)
    assert declared.status_code == 413
    streamed = client.post(
        "/v1/sign-requests",
        content=iter([big[i : i + 4096] for i in range(0, len(big), 4096)]),
    )
    assert streamed.status_code == 413


def test_unknown_request_is_404(client: TestClient) -> None:
    assert client.get("/v1/sign-requests/khong-co").status_code == 404


def test_unconfirmed_request_expires(client: TestClient) -> None:
    path = f"/v1/sign-requests/{_request(client).json()['request_id']}"
    time.sleep(0.45)
    assert client.get(path).json()["status"] == "expired"
    assert client.post(f"{path}/confirm", json={"otp": OTP[PRINCIPAL]}).status_code == 410


def test_client_reports_expiry(client: TestClient) -> None:
    with RemoteSigner("http://testserver", PRINCIPAL, poll_interval=0.05, client=client) as signer:
        with pytest.raises(SigningError, match="hết hạn"):
            signer.sign_digests([_digest(1)])


def test_repeated_wrong_otps_reject_the_request(client: TestClient) -> None:
    path = f"/v1/sign-requests/{_request(client).json()['request_id']}"
    for _ in range(MAX_OTP_ATTEMPTS):
        assert client.post(f"{path}/confirm", json={"otp": WRONG_OTP}).status_code == 403
    assert client.get(path).json()["status"] == "rejected"
    assert client.post(f"{path}/confirm", json={"otp": OTP[PRINCIPAL]}).status_code == 409


def test_auto_confirm_signs_at_once(signing_staff) -> None:
    app = create_signing_service(_keys(signing_staff), auto_confirm=True)  # type: ignore[arg-type]
    client = TestClient(app)
    signer = RemoteSigner("http://testserver", SCHOOL, poll_interval=0.05, client=client)
    digests = [_digest(i) for i in range(4)]
    values = signer.sign_digests(digests)
    assert [len(v) for v in values] == [64] * 4  # P-256 r || s
    assert app.state.service.request_count == 1


def test_client_checks_every_returned_signature(signing_staff) -> None:
    """If the service signs with a key other than the certificate's, nothing is returned."""
    app = create_signing_service(_keys(signing_staff), auto_confirm=True)  # type: ignore[arg-type]
    signer = RemoteSigner("http://testserver", PRINCIPAL, client=TestClient(app))
    service: HashSigningService = app.state.service
    service.signers[PRINCIPAL] = signing_staff.signer(signing_staff.teacher)  # key swapped
    with pytest.raises(SigningError, match="không khớp chứng thư số"):
        signer.sign_digests([_digest(1), _digest(2)])


def test_keys_are_loaded_at_start(signing_staff) -> None:
    with pytest.raises(SigningError, match="Mật khẩu"):
        create_signing_service({PRINCIPAL: (signing_staff.principal.p12_path, "sai")})


def test_unreachable_service_is_a_signing_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connection refused
        with pytest.raises(SigningError, match="Không kết nối được"):
            RemoteSigner(f"http://127.0.0.1:{port}", PRINCIPAL, timeout=2)


def test_unknown_user_is_a_signing_error(remote: RunningService) -> None:
    with pytest.raises(SigningError, match="không có tài khoản"):
        RemoteSigner(remote.url, "khong-co")


# ------------------------------------------------------------------ CSC API v2 shape
def test_csc_authorize_confirm_sign_hash(remote: RunningService, signing_staff) -> None:  # type: ignore[no-untyped-def]
    """The CSC sequence on the same service: list, info (chain), authorize the hashes
    (pending until the user confirms), authorizeCheck → SAD, signHash; the SAD is spent
    once and covers only the hashes the user confirmed."""
    from hocba.pki.remote import CSC_SHA256, CSC_SIGN_ALGO

    assert remote.post("/csc/v2/credentials/list", json={"userID": PRINCIPAL}).json() == {
        "credentialIDs": [PRINCIPAL]
    }
    info = remote.post(
        "/csc/v2/credentials/info", json={"credentialID": PRINCIPAL, "certificates": "chain"}
    ).json()
    certificate = x509.load_der_x509_certificate(base64.b64decode(info["cert"]["certificates"][0]))
    assert certificate == signing_staff.principal.certificate
    assert info["key"]["algo"] == [CSC_SIGN_ALGO["rsa-sha256"]]
    digests = [hashlib.sha256(f"học bạ {i}".encode()).digest() for i in range(3)]
    hashes = [base64.b64encode(d).decode() for d in digests]
    body = {"credentialID": PRINCIPAL, "hashes": hashes, "hashAlgorithmOID": CSC_SHA256}
    assert (
        remote.post("/csc/v2/credentials/authorize", json={**body, "numSignatures": 2}).status_code
        == 422
    )
    tx = remote.post("/csc/v2/credentials/authorize", json={**body, "numSignatures": 3}).json()
    check = {"credentialID": PRINCIPAL, "transactionID": tx["transactionID"]}
    assert remote.post("/csc/v2/credentials/authorizeCheck", json=check).json() == {
        "status": "pending"
    }
    sign = {"credentialID": PRINCIPAL, "hashes": hashes, "signAlgo": CSC_SIGN_ALGO["rsa-sha256"]}
    assert (
        remote.post("/csc/v2/signatures/signHash", json={**sign, "SAD": "doan-bua"}).status_code
        == 403
    )
    remote.post(f"/v1/sign-requests/{tx['transactionID']}/confirm", json={"otp": OTP[PRINCIPAL]})
    sad = remote.post("/csc/v2/credentials/authorizeCheck", json=check).json()["SAD"]
    other = base64.b64encode(hashlib.sha256(b"khac").digest()).decode()
    assert (
        remote.post(
            "/csc/v2/signatures/signHash", json={**sign, "SAD": sad, "hashes": [other]}
        ).status_code
        == 403
    )
    sad = remote.post("/csc/v2/credentials/authorizeCheck", json=check).json()["SAD"]
    values = remote.post("/csc/v2/signatures/signHash", json={**sign, "SAD": sad}).json()
    for digest, value in zip(digests, values["signatures"], strict=True):
        assert verify_digest_signature(certificate, "rsa-sha256", digest, base64.b64decode(value))
    again = remote.post("/csc/v2/signatures/signHash", json={**sign, "SAD": sad})
    assert again.status_code == 403  # a SAD is spent once


def test_remote_signer_speaks_csc(remote: RunningService) -> None:
    digests = [hashlib.sha256(f"lớp {i}".encode()).digest() for i in range(5)]
    with RemoteSigner(remote.url, PRINCIPAL, api="csc", confirm=remote.user("confirm")) as signer:
        before = remote.service.request_count
        values = signer.sign_digests(digests)
        assert remote.service.request_count == before + 1
    assert all(
        verify_digest_signature(signer.certificate, signer.algorithm, d, v)
        for d, v in zip(digests, values, strict=True)
    )
    with RemoteSigner(remote.url, PRINCIPAL, api="csc", confirm=remote.user("reject")) as signer:
        with pytest.raises(SigningError, match="từ chối"):
            signer.sign_digests(digests)


def test_the_phone_on_the_command_line(remote: RunningService, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``hocba signing-service pending`` lists what waits for the user; ``confirm`` (OTP
    from the environment, never an argument) answers it, ``--refuse`` refuses."""
    from typer.testing import CliRunner

    from hocba.cli import app

    cli = CliRunner()
    digest = base64.b64encode(hashlib.sha256(b"lop 5A").digest()).decode()
    body = {"user_id": PRINCIPAL, "hashes": [digest], "algorithm": "rsa-sha256"}
    first = remote.post("/v1/sign-requests", json={**body, "description": "Ký lớp 5A"}).json()
    listed = cli.invoke(
        app, ["signing-service", "pending", "--user", PRINCIPAL, "--url", remote.url]
    )
    assert (
        listed.exit_code == 0 and first["request_id"] in listed.output and "lớp 5A" in listed.output
    )
    monkeypatch.setenv("HOCBA_SIGNING_OTP", "sai-ma")
    wrong = cli.invoke(
        app, ["signing-service", "confirm", first["request_id"], "--url", remote.url]
    )
    assert wrong.exit_code == 1 and "không đúng" in wrong.output
    monkeypatch.setenv("HOCBA_SIGNING_OTP", OTP[PRINCIPAL])
    ok = cli.invoke(app, ["signing-service", "confirm", first["request_id"], "--url", remote.url])
    assert ok.exit_code == 0, ok.output
    assert remote.service.status_of(first["request_id"]) == "confirmed"
    second = remote.post("/v1/sign-requests", json=body).json()
    no = cli.invoke(
        app, ["signing-service", "confirm", second["request_id"], "--refuse", "--url", remote.url]
    )
    assert no.exit_code == 0 and remote.service.status_of(second["request_id"]) == "rejected"
