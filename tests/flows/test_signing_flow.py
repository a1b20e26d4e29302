"""The signing flow on a real Prefect and PostgreSQL: chunks, no secrets in parameters."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session

from hocba import db
from hocba.models import certificates
from hocba.models.lifecycle import SYSTEM, transition
from hocba.tasks.issuance import init_test_keys

SECRET = "mat-khau-khong-duoc-lo"


@pytest.fixture
def ready(district, pg_url: str, schema_name: str, tmp_path: Path, monkeypatch):  # type: ignore[no-untyped-def]
    """DH01's records reviewed, keys issued, the seal approved, the app pointed at them."""
    with Session(district.engine) as s:
        init_test_keys(s, tmp_path, SECRET, SYSTEM)
        s.commit()
    with Session(district.engine) as s:
        cert = certificates.school_certificates(s, "DH01")[0]
        certificates.decide(s, cert.id, district.actor("phong.dh"), approve=True)
        ids = district.record_ids("DH01")
        for rid in ids:
            district.force_state(rid, "in_review", flags="[]")
        for rid in ids:
            transition(s, [rid], "approve", district.homeroom_of(rid))
        s.commit()
    monkeypatch.setenv("HOCBA_DATABASE_URL", pg_url)
    monkeypatch.setenv("HOCBA_DB_SCHEMA", schema_name)
    monkeypatch.setenv("HOCBA_HOME", str(tmp_path))
    monkeypatch.setenv("HOCBA_KEY_PASSPHRASE", SECRET)  # the worker's environment
    db.get_engine.cache_clear()
    yield district
    db.get_engine().dispose()
    db.get_engine.cache_clear()


def test_sign_flow_issues_the_school_in_chunks(prefect_harness, ready) -> None:  # type: ignore[no-untyped-def]
    from prefect.client.orchestration import get_client

    from hocba.flows.signing import sign_records_flow

    with ready.engine.connect() as c:
        teachers = (
            c.execute(
                text(
                    "SELECT DISTINCT st.username FROM hoc_ba r JOIN school s ON s.id = r.school_id "
                    "JOIN school_class c ON c.id = r.class_id JOIN staff st ON st.id = "
                    "c.homeroom_teacher_id WHERE s.code = 'DH01'"
                )
            )
            .scalars()
            .all()
        )
    for username in teachers:
        out = sign_records_flow("GVCN", username, "DH01", chunk=4)
        assert not out["failed"]
    assert sign_records_flow("CBQL", "dh01.ht", "DH01", chunk=5)["failed"] == {}
    out = sign_records_flow("KY_PHAT_HANH", "dh01.vt", "DH01", chunk=5)
    assert out["failed"] == {} and out["ok"] == len(ready.record_ids("DH01"))
    assert {ready.state(r) for r in ready.record_ids("DH01")} == {"issued"}
    again = sign_records_flow("KY_PHAT_HANH", "dh01.vt", "DH01", chunk=5)
    assert again == {"ok": 0, "failed": {}}  # a re-run does nothing twice

    async def parameters() -> list[str]:
        async with get_client() as client:
            runs = await client.read_flow_runs()
            return [repr(r.parameters) for r in runs]

    params = asyncio.run(parameters())
    assert params and not any(SECRET in p for p in params)
