"""Fixtures of the dashboard tests: a read-only district shared by a module, and the app
pointed at a test schema."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import District, set_passwords
from sqlalchemy import text

from hocba import db

_ids = itertools.count()


@pytest.fixture(scope="module")
def shared_district(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The conftest's two-school district, built once per module (tests only read it)."""
    schema = f"dash_{os.getpid()}_{next(_ids)}"
    engine = db.make_engine(pg_url, schema)
    db.upgrade(engine, schema)
    district = District(engine, tmp_path_factory.mktemp("district"))
    district.schema = schema
    set_passwords(engine)
    yield district
    engine.dispose()
    admin = db.make_engine(pg_url, "public")
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def app_env(
    monkeypatch: pytest.MonkeyPatch, pg_url: str, tmp_path: Path
) -> Iterator[Callable[..., None]]:
    """``app_env(schema, home=None)`` points the app (``hocba.db.get_engine``) at a schema."""

    pointed = []

    def point(schema: str, home: Path | None = None) -> None:
        pointed.append(schema)
        monkeypatch.setenv("HOCBA_DATABASE_URL", pg_url)
        monkeypatch.setenv("HOCBA_DB_SCHEMA", schema)
        monkeypatch.setenv("HOCBA_HOME", str(home or tmp_path / "home"))
        db.get_engine.cache_clear()

    yield point
    if pointed:
        db.get_engine().dispose()
    db.get_engine.cache_clear()
