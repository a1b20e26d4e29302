"""Shared fixtures: one real PostgreSQL per test run, one fresh schema per test.

By default the suite starts its own embedded PostgreSQL (the same PyPI server the app
uses) in a temporary directory; with ``HOCBA_DATABASE_URL`` set it uses that server
instead. Each test that asks for ``engine`` gets a new schema migrated to head, dropped
afterwards.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
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


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test harness per test run (per xdist worker): a temporary local server."""
    from prefect.logging.configuration import setup_logging
    from prefect.testing.utilities import prefect_test_harness

    # Prefect's console handlers bind to the stderr of the moment they are made: made here,
    # not inside a CliRunner invocation whose captured stream is closed afterwards.
    setup_logging()
    with prefect_test_harness(server_startup_timeout=120):
        yield


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
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema_name}_portal" CASCADE'))
    admin.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as s:
        yield s


# ---------------------------------------------------------------------------------------
# A real small district: two schools of the demo generator, imported through the real path
# ---------------------------------------------------------------------------------------

YEAR = "2024-2025"


class District:
    """Handles on a small district built in the test's schema."""

    def __init__(self, engine: Engine, tmp: Path, pupils: int = 12) -> None:
        from hocba.dev import demo
        from hocba.models.lifecycle import SYSTEM
        from hocba.models.records import create_drafts
        from hocba.tasks import importer

        self.engine = engine
        self.schools = demo.demo_schools(2)
        with Session(engine) as s:
            demo.build_org(s, self.schools)
            s.commit()
        used: set[str] = set()
        for school in self.schools:
            rows, classes = demo.school_rows(school, pupils, seed=7, year_start=2024, used_ids=used)
            path = importer.write_workbook(tmp / f"{school.code}.xlsx", rows, classes)
            with Session(engine) as s:
                importer.import_file(s, path, school.code, YEAR, SYSTEM)
                s.commit()
        with Session(engine) as s:
            create_drafts(s, SYSTEM)
            s.commit()

    def scalar(self, sql: str, **params: object) -> object:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def actor(self, username: str):  # type: ignore[no-untyped-def]
        from hocba.models.lifecycle import Actor

        with self.engine.connect() as conn:
            sid, name = conn.execute(
                text("SELECT id, full_name FROM staff WHERE username = :u"), {"u": username}
            ).one()
        return Actor(sid, name)

    def homeroom_of(self, record_id: int):  # type: ignore[no-untyped-def]
        username = self.scalar(
            "SELECT st.username FROM hoc_ba r JOIN school_class c ON c.id = r.class_id "
            "JOIN staff st ON st.id = c.homeroom_teacher_id WHERE r.id = :r",
            r=record_id,
        )
        return self.actor(str(username))

    def record_ids(self, school_code: str = "DH01", **where: object) -> list[int]:
        cond = " AND ".join(f"r.{k} = :{k}" for k in where) or "true"
        with self.engine.connect() as conn:
            return list(
                conn.scalars(
                    text(
                        f"SELECT r.id FROM hoc_ba r JOIN school s ON s.id = r.school_id "
                        f"WHERE s.code = :code AND {cond} ORDER BY r.id"
                    ),
                    {"code": school_code, **where},
                )
            )

    def force_state(self, record_id: int, state: str, **cols: object) -> None:
        """Put a record straight into ``state`` (test set-up only), as the lifecycle would."""
        from hocba.models.lifecycle_states import LOCKED_STATES

        sets = ", ".join(["state = :state", *(f"{k} = :{k}" for k in cols)])
        if state in LOCKED_STATES:  # an issued record has its code, signed XML and hash
            sets += (
                ", lookup_code = gen_random_uuid(), signed_xml = 'x'::bytea, "
                "xml_sha256 = encode(sha256('x'::bytea), 'hex'), issued_at = now()"
            )
        if state in ("revoked", "superseded") and "content" not in cols:
            # a record that leaves the live states keeps its own content (migration 0022)
            sets += ", content = COALESCE(content, hoc_ba_summary_content(enrolment_id))"
        with self.engine.begin() as conn:
            conn.execute(text("SELECT set_config('hocba.lifecycle', 'on', true)"))
            conn.execute(
                text(f"UPDATE hoc_ba SET {sets} WHERE id = :id"),
                {"id": record_id, "state": state, **cols},
            )

    def state(self, record_id: int) -> str:
        return str(self.scalar("SELECT state FROM hoc_ba WHERE id = :r", r=record_id))


@pytest.fixture
def district(engine: Engine, tmp_path: Path) -> District:
    return District(engine, tmp_path)


@pytest.fixture
def make_district(engine: Engine, tmp_path: Path) -> Callable[[int], District]:
    """A district with ``pupils`` pupils per school instead of 12."""
    return lambda pupils: District(engine, tmp_path, pupils)


@pytest.fixture
def keyed(district: District, tmp_path: Path) -> District:
    """The district with test keys for everyone and DH01's seal approved."""
    from issuing import PASSWORD

    from hocba.dev.keys import init_test_keys
    from hocba.models import certificates
    from hocba.models.lifecycle import SYSTEM

    with Session(district.engine) as s:
        init_test_keys(s, tmp_path, PASSWORD, SYSTEM)
        s.commit()
    with Session(district.engine) as s:
        cert = certificates.school_certificates(s, "DH01")[0]
        certificates.decide(s, cert.id, district.actor("phong.dh"), approve=True)
        s.commit()
    district.home = tmp_path  # type: ignore[attr-defined]
    return district


# ---------------------------------------------------------------------------------------
# No personal ID, PIN, password or key in any log record produced by any test (issue 8 §5)
# ---------------------------------------------------------------------------------------


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(f"{record.name}: {record.getMessage()}")
        except Exception:  # a record whose arguments do not format: keep the raw text
            self.lines.append(f"{record.name}: {record.msg!r}")


@pytest.fixture(autouse=True)
def no_secrets_in_logs() -> Iterator[None]:
    """Fails a test whose code logged a personal ID, a password/PIN or a private key."""
    from hocba.logs import MaskPersonalIds

    handler = _Collect()  # what a production handler would write: the app's own filter on it
    handler.addFilter(MaskPersonalIds())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    from log_hygiene import find_leaks

    leaks = find_leaks(handler.lines)
    assert not leaks, "secrets or personal IDs in the logs:\n" + "\n".join(leaks[:5])
