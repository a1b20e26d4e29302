"""Signing sessions on a real Prefect, PostgreSQL and the bundled signing service over HTTP.

A teacher's class is signed through ``signing_session_flow`` with one confirmation on
the "phone" (the service's confirm endpoint, answered by a thread as the user would);
a refusal and a timeout leave every record in its queue with a Vietnamese reason, and the
same records are then signed by a new session (retryable). The flow run's only parameter
is the session id: no secret reaches Prefect.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from signing_session_helpers import new_session, read_session
from sqlalchemy import text
from sqlmodel import Session

from hocba import db
from hocba.asgi import serve_in_thread
from hocba.dev.keys import init_test_keys
from hocba.dev.signing_service import answer_pending, create_signing_service
from hocba.models import certificates, signing_sessions
from hocba.models.lifecycle import SYSTEM, transition

SECRET = "mat-khau-khong-duoc-lo"
OTP = "246810"


@pytest.fixture
def remote(district, pg_url: str, schema_name: str, tmp_path: Path, monkeypatch) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """DH01's records reviewed, the teachers' keys held by the signing service (their
    certificates registered as REMOTE_SIGNING), the app pointed at the schema."""
    with Session(district.engine) as s:
        init_test_keys(s, tmp_path, SECRET, SYSTEM)
        s.commit()
    with Session(district.engine) as s:
        ids = district.record_ids("DH01")
        for rid in ids:
            district.force_state(rid, "in_review", flags="[]")
        for rid in ids:
            transition(s, [rid], "approve", district.homeroom_of(rid))
        s.execute(text("UPDATE certificate SET kind = 'REMOTE_SIGNING' WHERE staff_id IS NOT NULL"))
        refs = certificates.key_refs(s)
        s.commit()
    app = create_signing_service(
        {u: (ref, SECRET) for u, ref in refs.items()}, otps={u: OTP for u in refs}
    )
    monkeypatch.setenv("HOCBA_DATABASE_URL", pg_url)
    monkeypatch.setenv("HOCBA_DB_SCHEMA", schema_name)
    monkeypatch.setenv("HOCBA_HOME", str(tmp_path))
    monkeypatch.delenv("HOCBA_KEY_PASSPHRASE", raising=False)
    db.get_engine.cache_clear()
    with serve_in_thread(app) as url:
        monkeypatch.setenv("HOCBA_SIGNING_SERVICE_URL", url)
        district.service = app.state.service
        district.url = url
        yield district
    db.get_engine().dispose()
    db.get_engine.cache_clear()


def _class_of_teacher(district: Any) -> tuple[str, list[int]]:
    rid = district.record_ids("DH01")[0]
    with district.engine.connect() as c:
        username, class_id = c.execute(
            text(
                "SELECT st.username, c.id FROM hoc_ba r JOIN school_class c ON c.id = r.class_id "
                "JOIN staff st ON st.id = c.homeroom_teacher_id WHERE r.id = :r"
            ),
            {"r": rid},
        ).one()
        ids = list(
            c.scalars(
                text("SELECT id FROM hoc_ba WHERE class_id = :c ORDER BY id"), {"c": class_id}
            )
        )
    return str(username), ids


def _phone(url: str, username: str, refuse: bool = False) -> threading.Thread:
    thread = threading.Thread(
        target=answer_pending, args=(url, username, OTP), kwargs={"refuse": refuse}, daemon=True
    )
    thread.start()
    return thread


def test_one_confirmation_signs_the_class(prefect_harness, remote) -> None:  # type: ignore[no-untyped-def]
    from prefect.client.orchestration import get_client

    from hocba.flows.signing_session import signing_session_flow

    username, ids = _class_of_teacher(remote)
    sid = new_session(remote.engine, username, ids)
    before = remote.service.request_count
    phone = _phone(remote.url, username)
    assert signing_session_flow(sid) == {"ok": len(ids), "failed": 0}
    phone.join(5)
    assert remote.service.request_count == before + 1  # one confirmation for the class
    done = read_session(remote.engine, sid)
    assert done.state == "done" and done.remote_request_id
    assert all(done.outcome(r) == signing_sessions.OK for r in ids)
    assert {remote.state(r) for r in ids} == {"teacher_signed"}

    async def parameters() -> list[dict[str, Any]]:
        async with get_client() as client:
            runs = await client.read_flow_runs()
            return [r.parameters for r in runs if r.name and r.flow_id]

    params = asyncio.run(parameters())
    assert {"session_id": sid} in params
    assert not any(OTP in repr(p) or SECRET in repr(p) for p in params)


@pytest.mark.parametrize(
    ("how", "reason"),
    [("refuse", "từ chối yêu cầu ký"), ("timeout", "chưa xác nhận")],
)
def test_refusal_or_timeout_leaves_every_record_retryable(  # type: ignore[no-untyped-def]
    prefect_harness, remote, monkeypatch, how: str, reason: str
) -> None:
    from hocba.flows.signing_session import signing_session_flow

    username, ids = _class_of_teacher(remote)
    sid = new_session(remote.engine, username, ids)
    if how == "refuse":
        phone = _phone(remote.url, username, refuse=True)
    else:
        monkeypatch.setenv("HOCBA_SIGNING_CONFIRM_TIMEOUT", "1.5")
    assert signing_session_flow(sid) == {"ok": 0, "failed": len(ids)}
    failed = read_session(remote.engine, sid)
    assert failed.state == "failed"
    assert reason in (failed.message or "") and "có thể ký lại" in (failed.message or "")
    assert all(reason in (failed.outcome(r) or "") for r in ids)
    assert {remote.state(r) for r in ids} == {"reviewed"}  # nothing half signed
    if how == "refuse":
        phone.join(5)

    monkeypatch.delenv("HOCBA_SIGNING_CONFIRM_TIMEOUT", raising=False)
    again = new_session(remote.engine, username, ids)
    phone = _phone(remote.url, username)
    assert signing_session_flow(again) == {"ok": len(ids), "failed": 0}
    phone.join(5)
    assert {remote.state(r) for r in ids} == {"teacher_signed"}


def test_a_software_key_is_not_a_flow_session(remote) -> None:  # type: ignore[no-untyped-def]
    username, ids = _class_of_teacher(remote)
    with Session(remote.engine) as s:
        s.execute(text("UPDATE certificate SET kind = 'SOFTWARE'"))
        s.commit()
    with pytest.raises(signing_sessions.SessionError, match="mật khẩu tệp khóa"):
        new_session(remote.engine, username, ids)


def test_cert_kind_sets_how_a_person_signs(remote) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from hocba.cli import app

    username, _ids = _class_of_teacher(remote)
    cli = CliRunner()
    out = cli.invoke(app, ["cert", "kind", username, "--kind", "USB_TOKEN", "--provider", "BKAV"])
    assert out.exit_code == 0, out.output
    with remote.engine.connect() as c:
        kind = c.scalar(
            text(
                "SELECT c.kind FROM certificate c JOIN staff st ON st.id = c.staff_id "
                "WHERE st.username = :u"
            ),
            {"u": username},
        )
    assert kind == "USB_TOKEN"
    bad = cli.invoke(app, ["cert", "kind", username, "--kind", "USB"])
    assert bad.exit_code == 1 and "không hợp lệ" in bad.output
    nobody = cli.invoke(app, ["cert", "kind", "khong.co", "--kind", "USB_TOKEN"])
    assert nobody.exit_code == 1 and "chưa có chứng thư số" in nobody.output
