"""The embedded PostgreSQL runs with hocba's settings (hocba/db.py, docs/DECISIONS.md):
checkpoints by time, not every 1 GB of WAL, and a buffer cache sized by the RAM. They are
written once into the data directory; a server that has them is not restarted again."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine, text

from hocba import db

GB = 2**30


def test_settings_follow_the_memory() -> None:
    assert db.embedded_settings(1 * GB)["shared_buffers"] == ("128MB", str(128 * 128))
    assert db.embedded_settings(8 * GB)["shared_buffers"] == ("1024MB", str(1024 * 128))
    assert db.embedded_settings(64 * GB)["shared_buffers"] == ("2048MB", str(2048 * 128))
    for memory in (1 * GB, 64 * GB):
        wanted = db.embedded_settings(memory)
        assert wanted["max_wal_size"] == ("4GB", "4096")
        assert wanted["checkpoint_timeout"] == ("15min", "900")


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
                    {"n": ["shared_buffers", "max_wal_size", "checkpoint_timeout"]},
                )
            }
    finally:
        engine.dispose()


def _postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])


def test_a_new_embedded_server_gets_them_once(pgdata: Path) -> None:
    wanted = {
        n: shown for n, (_, shown) in db.embedded_settings(psutil.virtual_memory().total).items()
    }
    url = db.embedded_server_url(pgdata, database="settings")
    assert _settings(url) == wanted
    assert wanted["max_wal_size"] != "1024"  # PostgreSQL's default is not what runs
    pid = _postmaster_pid(pgdata)

    # started again (the next command): already set, no restart
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
