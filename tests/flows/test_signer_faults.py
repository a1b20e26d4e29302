"""A signing backend failing halfway through a signing flow (issue 8 §3): the real remote
hash-signing service (``hocba/dev/signing_service.py``, over HTTP) whose user stops confirming
(the request expires: a timeout) or types a wrong PIN until the service refuses. The
flow stops with a clear error; the chunks signed before stay signed, the others are
untouched; a re-run signs only what is left: nothing lost, nothing signed twice, the
audit chain intact (``hocba audit verify``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from issuing import PASSWORD, signer_of
from servers import serve_asgi
from sqlalchemy import text
from sqlmodel import Session
from typer.testing import CliRunner

from hocba import db
from hocba.cli import app as cli_app
from hocba.dev.signing_service import MAX_OTP_ATTEMPTS, create_signing_service
from hocba.models import certificates
from hocba.models.lifecycle import transition
from hocba.pki.backends import SignerSpec
from hocba.tasks.issuance import sign_batch

OTP = "482913"
WRONG_OTP = "000000"
CHUNK = 4


class Phone:
    """The signer's phone app: confirms each sign request (with the OTP over HTTP) until
    told to stop answering or to type a wrong PIN."""

    def __init__(self, url: str, service) -> None:  # type: ignore[no-untyped-def]
        self.url, self.service = url, service
        self.mode = "confirm"  # "confirm" | "silent" | "wrong_pin"
        self.then: str | None = None  # the mode after the next confirmation
        self.answered: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._seen: set[str] = set()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _pending(self) -> list[str]:
        with self.service._lock:  # the push notification a real service would send
            return [
                rid
                for rid, r in self.service._requests.items()
                if r.status == "pending" and not r.signing and rid not in self._seen
            ]

    def _run(self) -> None:
        while not self._stop.is_set():
            for rid in self._pending():
                self._seen.add(rid)
                mode = self.mode
                self.answered.append((rid, mode))
                if mode == "confirm":
                    httpx.post(f"{self.url}/v1/sign-requests/{rid}/confirm", json={"otp": OTP})
                    if self.then:
                        self.mode, self.then = self.then, None
                elif mode == "wrong_pin":
                    for _ in range(MAX_OTP_ATTEMPTS):
                        httpx.post(
                            f"{self.url}/v1/sign-requests/{rid}/confirm", json={"otp": WRONG_OTP}
                        )
            time.sleep(0.02)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.fixture
def remote_school(keyed, pg_url: str, schema_name: str, monkeypatch) -> Iterator[dict]:  # type: ignore[no-untyped-def,type-arg]
    """DH01's June records signed by their teachers, waiting for the principal, whose key
    sits in the remote signing service (requests expire after 4 s unconfirmed: the "phone"
    must get its five wrong PINs in before that even on a loaded machine; with 1.5 s a
    run at load 8 saw the request expire first)."""
    d = keyed
    ids = d.record_ids("DH01")
    for rid in ids:
        d.force_state(rid, "in_review", flags="[]")
    with Session(d.engine) as s:
        for rid in ids:
            assert transition(s, [rid], "approve", d.homeroom_of(rid)).ok == [rid]
        s.commit()
    teachers: dict[int, list[int]] = {}
    for rid in ids:
        teachers.setdefault(d.homeroom_of(rid).staff_id, []).append(rid)
    with Session(d.engine) as s:
        for members in teachers.values():
            teacher = d.homeroom_of(members[0])
            username = d.scalar("SELECT username FROM staff WHERE id = :i", i=teacher.staff_id)
            assert sign_batch(s, members, "GVCN", teacher, signer_of(d, str(username))).ok
        s.commit()
        ref = certificates.staff_certificate(s, d.actor("dh01.ht").staff_id).key_ref
        seal = certificates.school_certificates(s, "DH01")[0].key_ref
    service_app = create_signing_service(
        {"dh01.ht": (ref, PASSWORD), "truong-DH01": (seal, PASSWORD)},
        otps={"dh01.ht": OTP, "truong-DH01": OTP},
        request_ttl=4.0,
    )
    for k, v in {
        "HOCBA_DATABASE_URL": pg_url,
        "HOCBA_DB_SCHEMA": schema_name,
        "HOCBA_HOME": str(d.home),
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("HOCBA_KEY_PASSPHRASE", raising=False)  # a remote key needs no secret
    db.get_engine.cache_clear()
    with serve_asgi(service_app) as url:
        phone = Phone(url, service_app.state.service)
        try:
            yield {"d": d, "ids": ids, "url": url, "phone": phone}
        finally:
            phone.close()
    db.get_engine().dispose()
    db.get_engine.cache_clear()


def _states(d) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with d.engine.connect() as c:
        return dict(
            c.execute(
                text(
                    "SELECT r.state, count(*) FROM hoc_ba r JOIN school s ON s.id = r.school_id "
                    "WHERE s.code = 'DH01' GROUP BY r.state"
                )
            ).all()
        )


def _events(d, action: str) -> dict[int, int]:  # type: ignore[no-untyped-def]
    with d.engine.connect() as c:
        return dict(
            c.execute(
                text(
                    "SELECT record_id, count(*) FROM audit_event WHERE action = :a "
                    "GROUP BY record_id"
                ),
                {"a": action},
            ).all()
        )


def _run_until_failure(phone: Phone, fault: str, flow_args: tuple, **kw) -> str:  # type: ignore[no-untyped-def,type-arg]
    """Run the flow with the phone confirming the first chunk, then failing: the flow run
    must end with the signer's error."""
    from hocba.flows.signing import sign_records_flow

    phone.mode, phone.then = "confirm", fault  # after the first confirmation: the fault
    with pytest.raises(Exception) as failed:
        sign_records_flow(*flow_args, **kw)
    return str(failed.value)


@pytest.mark.parametrize(
    ("fault", "message"),
    [("silent", "hết hạn"), ("wrong_pin", "từ chối")],
)
def test_remote_signer_failing_mid_flow_then_a_rerun_signs_each_record_once(
    prefect_harness, remote_school, fault: str, message: str
) -> None:  # type: ignore[no-untyped-def]
    from hocba.flows.signing import sign_records_flow

    d, phone, url = remote_school["d"], remote_school["phone"], remote_school["url"]
    waiting = _states(d)["teacher_signed"]
    assert waiting > 2 * CHUNK
    spec = SignerSpec(kind="remote", remote_url=url, remote_user="dh01.ht")
    error = _run_until_failure(phone, fault, ("CBQL", "dh01.ht", "DH01"), signer=spec, chunk=CHUNK)
    assert message in error  # the person is told why, in Vietnamese
    after = _states(d)
    assert after == {"principal_signed": CHUNK, "teacher_signed": waiting - CHUNK}
    assert phone.answered[0][1] == "confirm" and phone.answered[1][1] == fault

    phone.mode = "confirm"  # the principal signs again: only what is left
    out = sign_records_flow("CBQL", "dh01.ht", "DH01", signer=spec, chunk=CHUNK)
    assert out == {"ok": waiting - CHUNK, "failed": {}}
    assert _states(d) == {"principal_signed": waiting}
    per_record = _events(d, "principal_sign")
    assert len(per_record) == waiting and set(per_record.values()) == {1}

    # the seal, from the same service: fails halfway the same way, then finishes
    seal = SignerSpec(kind="remote", remote_url=url, remote_user="truong-DH01")
    phone.answered.clear()
    error = _run_until_failure(
        phone, fault, ("KY_PHAT_HANH", "dh01.vt", "DH01"), signer=seal, chunk=CHUNK
    )
    assert message in error
    assert _states(d) == {"issued": CHUNK, "principal_signed": waiting - CHUNK}
    phone.mode = "confirm"
    out = sign_records_flow("KY_PHAT_HANH", "dh01.vt", "DH01", signer=seal, chunk=CHUNK)
    assert out == {"ok": waiting - CHUNK, "failed": {}}
    assert _states(d) == {"issued": waiting}
    assert set(_events(d, "seal").values()) == {1} and len(_events(d, "seal")) == waiting
    with d.engine.connect() as c:
        codes = c.execute(
            text("SELECT count(lookup_code), count(DISTINCT lookup_code) FROM hoc_ba")
        ).one()
    assert codes[0] == codes[1] >= waiting
    res = CliRunner().invoke(cli_app, ["audit", "verify"])
    assert res.exit_code == 0, res.output
