"""The timestamp flows on a real Prefect and PostgreSQL with the project's TSA over HTTP:
records signed while the TSA was down are upgraded by ``bo-sung-dau-thoi-gian``, then
archive-timestamped by ``gia-han-dau-thoi-gian``."""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

from issuing import issue, reviewed_class
from sqlalchemy import text

from hocba import db
from hocba.dev.testpki import TestPki
from hocba.dev.trust_services import serve_trust_services
from hocba.tasks.issuance import pki_directory


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_flows_upgrade_then_renew(prefect_harness, keyed, pg_url, schema_name, monkeypatch):  # type: ignore[no-untyped-def]
    from hocba.flows.timestamps import renew_timestamps_flow, upgrade_timestamps_flow

    monkeypatch.setenv("HOCBA_DATABASE_URL", pg_url)
    monkeypatch.setenv("HOCBA_DB_SCHEMA", schema_name)
    monkeypatch.setenv("HOCBA_HOME", str(Path(keyed.home)))
    db.get_engine.cache_clear()
    try:
        monkeypatch.setenv("HOCBA_TSA_URL", f"http://127.0.0.1:{_closed_port()}/tsa")
        ids, teacher = reviewed_class(keyed)
        issue(keyed, ids, teacher)
        assert keyed.scalar("SELECT count(*) FROM timestamp_queue") == len(ids)
        pki = TestPki.open(pki_directory(keyed.home))
        pki.issue_service(  # the TSA back after the outage, its certificate about to expire
            "tsa", label="tsa-old", not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=100)
        )
        with serve_trust_services(pki.directory, tsa_label="tsa-old") as url:
            monkeypatch.setenv("HOCBA_TSA_URL", url + "/tsa")
            assert upgrade_timestamps_flow(chunk=2) == {"ok": len(ids), "failed": 0}
        assert keyed.scalar("SELECT count(*) FROM timestamp_queue") == 0
        with serve_trust_services(pki.directory) as url:  # a TSA with a fresh certificate
            monkeypatch.setenv("HOCBA_TSA_URL", url + "/tsa")
            monkeypatch.setenv("HOCBA_OCSP_URL", url + "/ocsp")
            renewed = renew_timestamps_flow(chunk=2)
        assert renewed == {"ok": len(ids), "failed": 0}
        with keyed.engine.connect() as conn:
            actions = dict(
                conn.execute(
                    text(
                        "SELECT action, count(*) FROM audit_event WHERE action LIKE 'timestamp%' "
                        "GROUP BY 1"
                    )
                ).all()
            )
        assert actions == {"timestamp_upgrade": len(ids), "timestamp_renewal": len(ids)}
    finally:
        db.get_engine().dispose()
        db.get_engine.cache_clear()
