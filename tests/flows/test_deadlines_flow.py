"""The deadline flow on a real Prefect and PostgreSQL, with a real HTTP receiver for
Apprise's ``json://``: two runs on the same day send each person one message only."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import Session

from hocba import db, notify
from hocba.models import notifications as nm
from hocba.models.calendar import set_deadline
from hocba.models.lifecycle import VN_TZ

BASE = "https://hocba.damha.example.vn"


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    posts: list[tuple[str, dict[str, Any]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            posts.append(
                (self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            )
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"json://127.0.0.1:{server.server_address[1]}", posts
    server.shutdown()


@pytest.fixture
def app(district, webhook, pg_url: str, schema_name: str, tmp_path: Path, monkeypatch):  # type: ignore[no-untyped-def]
    """The district with channels and an Apprise config; the app pointed at its schema."""
    url, _ = webhook
    config = tmp_path / "apprise.yml"
    config.write_text(
        f"version: 1\nurls:\n  - {url}/unit:\n      - tag: unit-22-dh\n", encoding="utf-8"
    )
    with Session(district.engine) as s:
        for username in ("dh01.gv1a", "dh02.gv1a", "dh01.ht", "phong.dh"):
            sid = s.connection().scalar(
                text("SELECT id FROM staff WHERE username = :u"), {"u": username}
            )
            notify.add_channel(s, sid, f"{url}/{username}")
        s.commit()
    monkeypatch.setenv("HOCBA_DATABASE_URL", pg_url)
    monkeypatch.setenv("HOCBA_DB_SCHEMA", schema_name)
    monkeypatch.setenv("HOCBA_HOME", str(tmp_path))
    monkeypatch.setenv("HOCBA_BASE_URL", BASE)
    monkeypatch.setenv("HOCBA_APPRISE_CONFIG", str(config))
    db.get_engine.cache_clear()
    yield district
    db.get_engine().dispose()
    db.get_engine.cache_clear()


def test_deadline_flow_sends_one_message_per_person_per_day(prefect_harness, app, webhook) -> None:  # type: ignore[no-untyped-def]
    from hocba.flows.deadlines import deadline_flow

    _, posts = webhook
    today = dt.datetime.now(VN_TZ).date() + dt.timedelta(days=1)
    due = today + dt.timedelta(days=5)
    with Session(app.engine) as s:
        province, year = (
            s.connection()
            .execute(text("SELECT s.province_id, y.id FROM school s, school_year y LIMIT 1"))
            .one()
        )
        set_deadline(s, province, year, "june", due)
        s.commit()

    first = deadline_flow(today, dt.datetime.combine(today, dt.time(8, 0), VN_TZ))
    assert first["created"] > 0 and first["sent"] >= 3 and first["failed"] == 0
    paths = sorted(p for p, _ in posts)
    assert paths == ["/dh01.gv1a", "/dh02.gv1a", "/phong.dh", "/unit"]  # the principal: no queue
    teacher = dict(posts)["/dh01.gv1a"]
    assert f"còn 5 ngày đến hạn {due.day}/{due.month}" in teacher["message"]
    assert f"{BASE}/lop_cua_toi?lop=" in teacher["message"]

    again = deadline_flow(today, dt.datetime.combine(today, dt.time(15, 0), VN_TZ))
    assert again["created"] == 0 and again["duplicates"] == first["planned"]
    assert again["recipients"] == 0 and len(posts) == 4  # one message per person per day

    with Session(app.engine) as s:
        log = nm.notification_log(s)
    assert {r["status"] for r in log if r["username"] in ("dh01.gv1a", "phong.dh")} == {"sent"}
