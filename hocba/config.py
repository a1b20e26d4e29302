"""Configuration read from the environment: one typed settings object.

Everything that varies by machine or by place comes from a ``HOCBA_*`` variable, and only
this module reads them: :data:`VARS` lists every one (name, type, default, meaning; README's
Configuration table is the same list), :func:`load_settings` parses them into one frozen
:class:`Settings`. ``tests/test_config.py`` fails when another module reads a ``HOCBA_*``
variable itself or names one that is not here.

Fresh on every call: :func:`load_settings` reads the environment each time it is called
(one look-up per variable, tens of microseconds; the parsing is memoised per distinct
environment), so a variable set at run time (``monkeypatch.setenv``, ``hocba up``
preparing its children, a Prefect worker's own environment) counts at the next call and
there is no cache to reload. Code that loops over records reads the settings once, before
the loop.

A variable set to the empty string counts as unset, except the secrets (an empty
passphrase is still a passphrase) and ``HOCBA_NOTIFY_QUIET_HOURS`` (empty: no quiet hours).
A value that cannot be used raises :class:`ConfigError` naming the variable and what it
expects. Secrets (``HOCBA_KEY_PASSPHRASE``, ``HOCBA_TOKEN_PIN``, ``HOCBA_SIGNING_OTP``,
``HOCBA_PORTAL_PASSWORD``) are read here like any setting and never shown: the repr of
:class:`Settings` masks them (and the password of any URL), errors never quote them.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hocba.errors import HocbaError

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_URL_PASSWORD = re.compile(r"(://[^/@:]*:)[^/@]*@")


class ConfigError(HocbaError, ValueError):
    """A ``HOCBA_*`` variable holds a value hocba cannot use; the message names it."""


# --------------------------------------------------------------------------- parsers
# Each takes the variable's text and returns its value, or raises ValueError whose
# message says, in Vietnamese, what the variable expects.


def _text(raw: str) -> str:
    return raw


def _path(raw: str) -> Path:
    return Path(raw).expanduser()


def _home(raw: str) -> Path:
    return Path(raw).expanduser().resolve()


def _paths(raw: str) -> tuple[Path, ...]:
    return tuple(Path(p).expanduser() for p in raw.split(":") if p)


def _url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("một địa chỉ bắt đầu bằng http:// hoặc https://")
    return raw


def _base_url(raw: str) -> str:
    """A URL other addresses are built on: without its trailing ``/``."""
    return _url(raw).rstrip("/")


def _database_url(raw: str) -> str:
    if not raw.startswith(("postgresql://", "postgresql+", "postgres://")):
        raise ValueError("một địa chỉ PostgreSQL, ví dụ postgresql://user@host:5432/hocba")
    return raw


def _schema(raw: str) -> str:
    if not _SCHEMA_RE.match(raw):
        raise ValueError(
            "tên lược đồ chỉ gồm chữ thường không dấu, số và dấu gạch dưới "
            "(không bắt đầu bằng số, tối đa 63 ký tự)"
        )
    return raw


def _number(low: float, *, strict: bool = False) -> Callable[[str], float]:
    sign = ">" if strict else "≥"

    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < low or (strict and value == low):
            raise ValueError(f"một số {sign} {low:g} (dấu chấm thập phân, ví dụ 2.5)")
        return value

    return parse


def _integer(low: int, high: int | None = None) -> Callable[[str], int]:
    expected = f"số nguyên từ {low} đến {high}" if high is not None else f"số nguyên ≥ {low}"

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"một {expected}") from None
        if value < low or (high is not None and value > high):
            raise ValueError(f"một {expected}")
        return value

    return parse


def _quiet_hours(raw: str) -> tuple[dt.time | None, dt.time | None]:
    """``"21:00-06:30"`` → (21:00, 06:30); ``""``/``"off"`` → no quiet hours."""
    value = raw.strip().lower()
    if value in ("", "off", "none", "khong", "không"):
        return None, None
    expected = "khoảng giờ dạng HH:MM-HH:MM (ví dụ 21:00-06:30) hoặc off"
    m = re.fullmatch(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})", value)
    if not m:
        raise ValueError(expected)
    h1, m1, h2, m2 = (int(x) for x in m.groups())
    try:
        return dt.time(h1, m1), dt.time(h2, m2)
    except ValueError:
        raise ValueError(expected) from None


# --------------------------------------------------------------------------- the variables
@dataclass(frozen=True)
class Var:
    """One ``HOCBA_*`` variable: the :class:`Settings` field it fills, its type and default
    as documented, what it means, and how its text is read."""

    name: str
    field: str
    type: str
    meaning: str
    parse: Callable[[str], Any]
    #: the text used when the variable is unset; ``None``: the field is ``None`` or derived
    #: from other settings (``shown_default`` says how)
    default: str | None = None
    shown_default: str | None = None
    secret: bool = False
    #: the empty string is a value (else it counts as unset)
    keep_empty: bool = False

    @property
    def documented_default(self) -> str:
        if self.shown_default is not None:
            return self.shown_default
        return "unset" if self.default is None else f"`{self.default}`"


def _notify(field: str, meaning: str, default: int, low: int, high: int | None = None) -> Var:
    return Var(
        f"HOCBA_NOTIFY_{field.upper()}",
        f"notify_{field}",
        "integer",
        meaning,
        _integer(low, high),
        str(default),
    )


#: Every ``HOCBA_*`` variable hocba knows, in the order of README's Configuration table.
VARS: tuple[Var, ...] = (
    Var("HOCBA_HOME", "home", "directory",
        "data directory: embedded PostgreSQL (`pgdata/`), keys, logs, demo files",
        _home, "var", "`./var`"),
    Var("HOCBA_DATABASE_URL", "database_url", "PostgreSQL URL",
        "use this PostgreSQL instead of the embedded one, "
        "e.g. `postgresql://user@host:5432/hocba`",
        _database_url),
    Var("HOCBA_DB_SCHEMA", "schema", "schema name",
        "schema of the app's tables (Prefect may share the server)", _schema, "hocba"),
    Var("HOCBA_BASE_URL", "base_url", "URL",
        "the dashboard's public address, for links in messages",
        _base_url, "http://localhost:8501"),
    Var("HOCBA_VERIFY_URL", "verify_url", "URL",
        "the verification page the PDF's QR code points to",
        _url, shown_default="`$HOCBA_BASE_URL/kiem-tra`"),
    Var("HOCBA_TRUST_ANCHORS", "trust_anchors", "paths, `:`-separated",
        "PEM files of the trusted roots", _paths, "",
        shown_default="the test root in `$HOCBA_HOME/pki`"),
    Var("HOCBA_TSA_URL", "tsa_url", "URL",
        "RFC 3161 time-stamping authority (unset: no time-stamps are asked)", _url),
    Var("HOCBA_OCSP_URL", "ocsp_url", "URL",
        "OCSP responder of the signers' CA", _url),
    Var("HOCBA_CRL_URL", "crl_url", "URL",
        "CRL of the signers' CA", _url, shown_default="the test root's CRL in `$HOCBA_HOME/pki`"),
    Var("HOCBA_KEY_PASSPHRASE", "key_passphrase", "secret",
        "passphrase of the software (PKCS#12) signing keys on a worker or the CLI",
        _text, shown_default="unset (asked)", secret=True, keep_empty=True),
    Var("HOCBA_TOKEN_PIN", "token_pin", "secret",
        "PIN of the USB token of `hocba agent run` (the signing agent on the signer's PC)",
        _text, shown_default="unset (asked)", secret=True, keep_empty=True),
    Var("HOCBA_SIGNING_SERVICE_URL", "signing_service_url", "URL",
        "the remote signing service (SmartCA/MySign style)",
        _base_url, "http://127.0.0.1:8600"),
    Var("HOCBA_SIGNING_CONFIRM_TIMEOUT", "signing_confirm_timeout", "seconds",
        "how long a remote signing request waits for the signer's confirmation",
        _number(0, strict=True), "300"),
    Var("HOCBA_SIGNING_OTP", "signing_otp", "secret",
        "OTP of the test signing service (`hocba signing-service serve/confirm`)",
        _text, shown_default="unset (asked)", secret=True, keep_empty=True),
    Var("HOCBA_PORTAL_URL", "portal_url", "URL",
        "the province portal (Sở)", _base_url, "http://127.0.0.1:8800",
        "the bundled portal on `http://127.0.0.1:8800`"),
    Var("HOCBA_PORTAL_PASSWORD", "portal_password", "secret",
        "the schools' portal password (user = school code)",
        _text, secret=True, keep_empty=True),
    Var("HOCBA_PORTAL_TIMEOUT", "portal_timeout", "seconds",
        "seconds per HTTP exchange with the portal", _number(0, strict=True), "60"),
    Var("HOCBA_PORTAL_RETRIES", "portal_retries", "integer",
        "further attempts of a portal transaction (same messageid)", _integer(0), "5"),
    Var("HOCBA_PORTAL_BACKOFF", "portal_backoff", "seconds",
        "first pause between portal attempts (doubles each time)", _number(0), "0.5"),
    Var("HOCBA_TRANSFER_DIR", "transfer_dir", "directory",
        "the transfer exchange folder shared by the schools (packages and receipts)",
        _path, shown_default="`$HOCBA_HOME/chuyen-truong`"),
    Var("HOCBA_APPRISE_CONFIG", "apprise_config", "file",
        "Apprise configuration: district-wide channels by tag (docs/NOTIFICATIONS.md)",
        _path, shown_default="`$HOCBA_HOME/apprise.yml` if present"),
    Var("HOCBA_NOTIFY_QUIET_HOURS", "notify_quiet_hours", "`HH:MM-HH:MM` or `off`",
        "no notifications in these local hours (queued until they end)",
        _quiet_hours, "21:00-06:30", keep_empty=True),
    _notify("window_days", "watch a cohort from this many days before its deadline", 45, 0),
    _notify("overdue_days", "… and until this many days after it", 60, 0),
    _notify("daily_from_days", "daily reminders from this many days left (weekly before)", 14, 0),
    _notify("rate_window_days", "days of the recent signing rate", 7, 1),
    _notify("idle_risk_days", "no signature lately + this close = at risk", 14, 0),
    _notify("escalation_weeks", "escalations in the last M weeks before a deadline", 3, 0),
    _notify("escalate_principal_days", "idle days before the principal is told", 3, 0),
    _notify("escalate_district_days", "idle days before the district is told", 7, 0),
    _notify("digest_weekday", "ISO weekday of the district digest (1 = Thứ Hai … 7)", 1, 1, 7),
    _notify("max_attempts", "tries of a message before giving up", 5, 1),
    _notify("backoff_minutes", "first retry delay of a message (doubles each time)", 10, 0),
    Var("HOCBA_PROJECT_DIR", "project_dir", "directory",
        "the checkout Prefect workers run the flows from (`prefect.yaml`)",
        _path, shown_default="set by `hocba up`"),
)  # fmt: skip

BY_NAME: dict[str, Var] = {v.name: v for v in VARS}


@dataclass(frozen=True, repr=False)
class Settings:
    """The resolved configuration of one process (one field per :data:`VARS` entry)."""

    home: Path
    database_url: str | None
    schema: str
    base_url: str
    verify_url: str
    trust_anchors: tuple[Path, ...]
    tsa_url: str | None
    ocsp_url: str | None
    crl_url: str | None
    key_passphrase: str | None
    token_pin: str | None
    signing_service_url: str
    signing_confirm_timeout: float
    signing_otp: str | None
    portal_url: str
    portal_password: str | None
    portal_timeout: float
    portal_retries: int
    portal_backoff: float
    transfer_dir: Path
    apprise_config: Path | None
    notify_quiet_hours: tuple[dt.time | None, dt.time | None]
    notify_window_days: int
    notify_overdue_days: int
    notify_daily_from_days: int
    notify_rate_window_days: int
    notify_idle_risk_days: int
    notify_escalation_weeks: int
    notify_escalate_principal_days: int
    notify_escalate_district_days: int
    notify_digest_weekday: int
    notify_max_attempts: int
    notify_backoff_minutes: int
    project_dir: Path | None

    @property
    def pgdata(self) -> Path:
        """Where the embedded PostgreSQL keeps its data."""
        return self.home / "pgdata"

    def __repr__(self) -> str:
        secret = {v.field for v in VARS if v.secret}
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in secret and value is not None:
                text = "'***'"
            else:
                text = _URL_PASSWORD.sub(r"\1***@", repr(value))
            shown.append(f"{f.name}={text}")
        return f"Settings({', '.join(shown)})"


def _read(var: Var, raw: str) -> Any:
    try:
        return var.parse(raw)
    except ValueError as exc:
        value = "" if var.secret else "=" + _URL_PASSWORD.sub(r"\1***@", repr(raw))
        raise ConfigError(
            f"Biến môi trường {var.name}{value} không hợp lệ: cần {exc}. "
            "Sửa giá trị, hoặc bỏ biến này để dùng giá trị mặc định."
        ) from None


def default(name: str) -> Any:
    """The value of the variable ``name`` when it is unset (``None`` if it has none)."""
    var = BY_NAME[name]
    return None if var.default is None else _read(var, var.default)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from ``environ`` (default: this process's environment, now)."""
    env = os.environ if environ is None else environ
    try:
        cwd = os.getcwd()
    except OSError:  # the directory was removed: only a relative HOCBA_HOME needs it
        cwd = ""
    return _parse(tuple(env.get(v.name) for v in VARS), cwd)


@lru_cache(maxsize=32)
def _parse(raws: tuple[str | None, ...], cwd: str) -> Settings:
    """The settings of one environment, parsed once (``cwd`` resolves a relative home)."""
    values: dict[str, Any] = {}
    for var, raw in zip(VARS, raws, strict=True):
        if raw is None or (raw == "" and not var.keep_empty):
            raw = var.default
        values[var.field] = None if raw is None else _read(var, raw)
    if values["verify_url"] is None:
        values["verify_url"] = f"{values['base_url']}/kiem-tra"
    if values["transfer_dir"] is None:
        values["transfer_dir"] = values["home"] / "chuyen-truong"
    return Settings(**values)
