"""Configuration read from the environment.

Everything that varies by machine or by place comes from here, never from code:

``HOCBA_HOME``
    The project's data directory (embedded PostgreSQL data, generated keys, exports).
    Default: ``./var`` under the current working directory.
``HOCBA_DATABASE_URL``
    Any PostgreSQL server, e.g. ``postgresql+psycopg://user@host:5432/db``. When unset,
    hocba starts its own embedded PostgreSQL in ``$HOCBA_HOME/pgdata``.
``HOCBA_DB_SCHEMA``
    The schema holding the app's tables (default ``hocba``), so that Prefect and other
    tools can share the same server.
``HOCBA_BASE_URL``
    Public address of the dashboard, used in links inside notifications.
``HOCBA_PORTAL_URL``, ``HOCBA_PORTAL_PASSWORD``
    The province portal (Sở) and the schools' portal password (the user name is the
    school code); default: the bundled portal on ``http://127.0.0.1:8800``. Secrets stay
    in the worker's environment, never in a flow run's parameters.
``HOCBA_VERIFY_URL``
    The public verification page printed (as a QR code) on the paper copy; default
    ``$HOCBA_BASE_URL/kiem-tra``.
``HOCBA_TSA_URL``, ``HOCBA_OCSP_URL``, ``HOCBA_CRL_URL``
    Long-term validity (issue 12): the RFC 3161 time-stamping authority, the OCSP responder
    and the CRL of the signers' CA. Unset: no time-stamps are asked and revocation is read
    from the test PKI's CRL file; ``hocba up --demo`` / ``hocba trust-services serve``
    start the project's own test services and set them. Point them at a real CA's services
    in production.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Settings:
    """The resolved configuration of one process."""

    home: Path
    database_url: str | None
    schema: str
    base_url: str
    verify_url: str
    portal_url: str
    tsa_url: str | None = None
    ocsp_url: str | None = None
    crl_url: str | None = None

    @property
    def pgdata(self) -> Path:
        """Where the embedded PostgreSQL keeps its data."""
        return self.home / "pgdata"


def load_settings() -> Settings:
    """Read the settings from the environment (see the module docstring)."""
    home = Path(os.environ.get("HOCBA_HOME", "var")).expanduser().resolve()
    schema = os.environ.get("HOCBA_DB_SCHEMA", "hocba")
    if not _SCHEMA_RE.match(schema):
        raise ValueError(
            f"HOCBA_DB_SCHEMA={schema!r} không hợp lệ: chỉ dùng chữ thường, số và dấu gạch dưới."
        )
    base_url = os.environ.get("HOCBA_BASE_URL", "http://localhost:8501").rstrip("/")
    return Settings(
        home=home,
        database_url=os.environ.get("HOCBA_DATABASE_URL") or None,
        schema=schema,
        base_url=base_url,
        verify_url=os.environ.get("HOCBA_VERIFY_URL", f"{base_url}/kiem-tra"),
        portal_url=os.environ.get("HOCBA_PORTAL_URL", "http://127.0.0.1:8800").rstrip("/"),
        tsa_url=os.environ.get("HOCBA_TSA_URL") or None,
        ocsp_url=os.environ.get("HOCBA_OCSP_URL") or None,
        crl_url=os.environ.get("HOCBA_CRL_URL") or None,
    )
