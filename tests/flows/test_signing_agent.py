"""Signing sessions with a USB token: the flow posts the digests, ``hocba agent run`` (a
child process, a real SoftHSM2 token) signs them after one PIN entry.

A wrong PIN is reported to the waiting session (the page says "Mã PIN không đúng") and
every record stays in its queue; with the right PIN one agent signs two classes' batches
in a row (two sessions) without asking again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import softhsm_token
from signing_session_helpers import new_session, read_session
from sqlalchemy import text
from sqlmodel import Session

from hocba import db
from hocba.dev.keys import init_test_keys
from hocba.models import certificates
from hocba.models.lifecycle import SYSTEM, transition

SECRET = "mat-khau-tep-khoa-thu"


@pytest.fixture
def token(district, pg_url: str, schema_name: str, tmp_path: Path, monkeypatch) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """DH01's records reviewed; the first class's teacher holds their key on a token (their
    certificate registered as USB_TOKEN)."""
    with Session(district.engine) as s:
        init_test_keys(s, tmp_path / "home", SECRET, SYSTEM)
        s.commit()
    with Session(district.engine) as s:
        for rid in district.record_ids("DH01"):
            district.force_state(rid, "in_review", flags="[]")
            transition(s, [rid], "approve", district.homeroom_of(rid))
        s.commit()
    with district.engine.begin() as c:
        teacher, classes = c.execute(
            text(
                "SELECT st.username, array_agg(DISTINCT c.id) FROM school_class c "
                "JOIN staff st ON st.id = c.homeroom_teacher_id "
                "JOIN school s ON s.id = c.school_id "
                "WHERE s.code = 'DH01' GROUP BY st.username ORDER BY st.username LIMIT 1"
            )
        ).one()
        c.execute(
            text(
                "UPDATE certificate SET kind = 'USB_TOKEN' WHERE staff_id = "
                "(SELECT id FROM staff WHERE username = :u)"
            ),
            {"u": teacher},
        )
    with Session(district.engine) as s:
        p12 = certificates.key_refs(s)[teacher]
    district.env = {
        "HOCBA_DATABASE_URL": pg_url,
        "HOCBA_DB_SCHEMA": schema_name,
        "HOCBA_HOME": str(tmp_path / "home"),
        **softhsm_token.token_with_key(tmp_path / "hsm", p12, SECRET),
    }
    for name, value in district.env.items():
        monkeypatch.setenv(name, value)
    db.get_engine.cache_clear()
    district.teacher = teacher
    with district.engine.connect() as c:
        district.classes = [
            list(c.scalars(text("SELECT id FROM hoc_ba WHERE class_id = :k ORDER BY id"), {"k": k}))
            for k in classes
        ]
    yield district
    db.get_engine().dispose()
    db.get_engine.cache_clear()


def _run_flow(sid: int) -> tuple[threading.Thread, dict[str, Any]]:
    from hocba.flows.signing_session import signing_session_flow

    out: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: out.update(signing_session_flow(sid)), daemon=True)
    thread.start()
    return thread, out


def _wait_for(district: Any, sid: int, state: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while read_session(district.engine, sid).state != state:
        assert time.monotonic() < deadline, f"session #{sid} never reached {state}"
        time.sleep(0.2)


def test_wrong_pin_fails_the_batch_and_leaves_it_retryable(prefect_harness, token) -> None:  # type: ignore[no-untyped-def]
    ids = token.classes[0]
    sid = new_session(token.engine, token.teacher, ids)
    flow, out = _run_flow(sid)
    _wait_for(token, sid, "waiting_agent")
    agent = softhsm_token.agent(token.teacher, token.env, softhsm_token.WRONG_PIN, "--once")
    output = agent.communicate(timeout=120)[0].decode()
    assert agent.returncode == 1 and "Mã PIN không đúng" in output
    assert softhsm_token.WRONG_PIN not in output
    flow.join(60)
    assert out == {"ok": 0, "failed": len(ids)}
    failed = read_session(token.engine, sid)
    assert failed.state == "failed" and "Mã PIN không đúng" in (failed.message or "")
    assert all("Mã PIN không đúng" in (failed.outcome(r) or "") for r in ids)
    assert {token.state(r) for r in ids} == {"reviewed"}
    with token.engine.connect() as c:  # the mailbox is emptied
        assert (
            c.scalar(text("SELECT digests FROM signing_session WHERE id = :i"), {"i": sid}) is None
        )


def test_one_pin_entry_signs_every_batch(prefect_harness, token) -> None:  # type: ignore[no-untyped-def]
    agent = softhsm_token.agent(token.teacher, token.env, softhsm_token.PIN, "--stop-after", "90")
    ids = token.classes[0]
    batches = [ids[:2], ids[2:]]
    try:
        for ids in batches:
            sid = new_session(token.engine, token.teacher, ids)
            flow, out = _run_flow(sid)
            flow.join(90)
            assert out == {"ok": len(ids), "failed": 0}
            assert read_session(token.engine, sid).state == "done"
            assert {token.state(r) for r in ids} == {"teacher_signed"}
    finally:
        agent.terminate()
        output = agent.communicate(timeout=30)[0].decode()
    assert output.count("Đã mở thiết bị ký") == 1  # one PIN entry, one login
    assert output.count("đã ký") == len(batches)
    assert softhsm_token.PIN not in output
