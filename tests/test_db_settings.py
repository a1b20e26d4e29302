"""The embedded PostgreSQL runs with hocba's checkpoint settings (hocba/db.py,
docs/DECISIONS.md): checkpoints every 15 minutes or 4 GB of WAL, not every 1 GB. They are
written into the data directory and applied with a reload: the server and its
connections stay up."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from hocba import db


@pytest.fixture
def pgdata() -> Iterator[Path]:
    # not under tmp_path: the server runs as another user, who must reach its directory
    base = Path(tempfile.mkdtemp(prefix="hocba-test-pg-settings-"))
    yield base / "pgdata"
    db.stop_embedded_server(base / "pgdata")
    shutil.rmtree(base, ignore_errors=True)


def _settings(url: str) -> dict[str, str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                name: setting
                for name, setting in conn.execute(
                    text("SELECT name, setting FROM pg_settings WHERE name = ANY(:n)"),
                    {"n": ["max_wal_size", "checkpoint_timeout"]},
                )
            }
    finally:
        engine.dispose()


def _postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])


def test_the_embedded_server_runs_with_them(pgdata: Path) -> None:
    wanted = {n: shown for n, (_, shown) in db.EMBEDDED_SETTINGS.items()}
    url = db.embedded_server_url(pgdata, database="settings")
    assert _settings(url) == wanted
    assert wanted["max_wal_size"] != "1024"  # PostgreSQL's default is not what runs
    pid = _postmaster_pid(pgdata)

    # started again (the next command): already set, nothing to do
    assert _settings(db.embedded_server_url(pgdata, database="settings")) == wanted
    assert _postmaster_pid(pgdata) == pid

    # someone put PostgreSQL's checkpoint defaults back: set again with a reload, the
    # server (and its connections) stays up
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("ALTER SYSTEM SET max_wal_size = '1GB'"))
        conn.execute(text("ALTER SYSTEM SET checkpoint_timeout = '5min'"))
        conn.execute(text("SELECT pg_reload_conf()"))
    admin.dispose()
    assert _settings(url)["max_wal_size"] == "1024"
    assert _settings(db.embedded_server_url(pgdata, database="settings")) == wanted
    assert _postmaster_pid(pgdata) == pid

    # and after a stop, the data directory keeps them
    assert db.stop_embedded_server(pgdata)
    assert _settings(db.embedded_server_url(pgdata, database="settings")) == wanted
