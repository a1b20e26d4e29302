"""Shared fixtures: one real PostgreSQL per test run, one fresh schema per test.

By default the suite starts its own embedded PostgreSQL (the same PyPI server the app
uses) in a temporary directory; with ``HOCBA_DATABASE_URL`` set it uses that server
instead. Each test that asks for ``engine`` gets a new schema migrated to head, dropped
afterwards.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from hocba import db

_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of the PostgreSQL server used by this test run."""
    url = os.environ.get("HOCBA_DATABASE_URL")
    if url:
        from hocba.config import load_settings

        yield db.database_url(load_settings())
        return
    tmp = Path(tempfile.mkdtemp(prefix="hocba-test-pg-"))
    yield db.embedded_server_url(tmp / "pgdata", database="hocba_test")
    db.stop_embedded_server(tmp / "pgdata")
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def schema_name(worker_id: str = "master") -> str:
    return f"t_{os.getpid()}_{next(_counter)}"


@pytest.fixture
def engine(pg_url: str, schema_name: str) -> Iterator[Engine]:
    """An engine on a new, fully migrated schema private to this test."""
    eng = db.make_engine(pg_url, schema_name)
    db.upgrade(eng, schema_name)
    yield eng
    eng.dispose()
    admin = db.make_engine(pg_url, "public")
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema_name}" CASCADE'))
    admin.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as s:
        yield s
