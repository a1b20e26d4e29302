"""The database a bench script measures on: ``HOCBA_DATABASE_URL`` when set, otherwise a
throwaway embedded PostgreSQL in a temporary directory, stopped and removed afterwards."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hocba import db


@contextmanager
def scratch_database(database: str = "hocba_bench") -> Iterator[str]:
    """The SQLAlchemy URL of the configured server, or of a fresh embedded one."""
    if os.environ.get("HOCBA_DATABASE_URL"):
        from hocba.config import load_settings

        yield db.database_url(load_settings())
        return
    tmp = Path(tempfile.mkdtemp(prefix="hocba-bench-pg-"))
    try:
        yield db.embedded_server_url(tmp / "pgdata", database=database)
    finally:
        db.stop_embedded_server(tmp / "pgdata")
        shutil.rmtree(tmp, ignore_errors=True)
