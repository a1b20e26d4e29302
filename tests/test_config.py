"""One settings object: only ``hocba.config`` reads ``HOCBA_*`` variables, it knows every
one the package names, its errors say which variable and what it expects, its secrets are
never shown, and README's Configuration table is its list."""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hocba import config
from hocba.config import VARS, ConfigError, Settings, load_settings
from hocba.errors import HocbaError

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hocba"
#: ``HOCBA_SPEC`` is the name of the domain specification the docstrings cite, not a variable
NOT_VARIABLES = {"HOCBA_SPEC"}
NAMES = {v.name for v in VARS}


# --------------------------------------------------------------------------- one reader
def _is_hocba_key(node: ast.AST) -> bool:
    """A literal ``"HOCBA_…"``, or an f-string that starts with one (``f"HOCBA_X_{n}"``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.startswith("HOCBA_")
    if isinstance(node, ast.JoinedStr) and node.values:
        return _is_hocba_key(node.values[0])
    return False


def env_reads(source: str) -> list[int]:
    """Lines of ``source`` that read a ``HOCBA_*`` key from a mapping or the environment:
    ``x.get("HOCBA_…")``, ``getenv("HOCBA_…")``, ``x.pop("HOCBA_…")``, ``x["HOCBA_…"]``
    (read) and ``"HOCBA_…" in x``; and any name built at run time (``f"HOCBA_X_{n}"``),
    the way to read a family of variables. Writing one (``env["HOCBA_…"] = v``, a dict
    given to a child process, ``setdefault``) is not reading it."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.JoinedStr) and _is_hocba_key(node):
            found.append(node.lineno)
        if isinstance(node, ast.Call) and node.args and _is_hocba_key(node.args[0]):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name in ("get", "getenv", "pop", "getenvb"):
                found.append(node.lineno)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            if _is_hocba_key(node.slice):
                found.append(node.lineno)
        elif isinstance(node, ast.Compare) and _is_hocba_key(node.left):
            if any(isinstance(op, ast.In | ast.NotIn) for op in node.ops):
                found.append(node.lineno)
    return found


def test_the_walker_sees_every_way_of_reading() -> None:
    source = """
import os
a = os.environ.get("HOCBA_X")
b = os.getenv("HOCBA_Y", "1")
c = os.environ["HOCBA_Z"]
d = "HOCBA_W" in os.environ
e = env.get(f"HOCBA_NOTIFY_{name}")
key = f"HOCBA_NOTIFY_{field}"
f = os.environ.pop("HOCBA_V", None)
os.environ["HOCBA_SET"] = "written, not read"
child = {"HOCBA_HOME": "/x"}
child.setdefault("HOCBA_TSA_URL", "http://x")
g = os.environ.get("PREFECT_API_URL")
"""
    assert sorted(env_reads(source)) == [3, 4, 5, 6, 7, 7, 8, 9]


def test_only_config_reads_hocba_variables() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "config.py":
            continue
        for line in env_reads(path.read_text(encoding="utf-8")):
            offenders.append(f"{path.relative_to(ROOT)}:{line}")
    assert offenders == [], "read HOCBA_* through hocba.config.load_settings(), not here"


def _mentioned() -> dict[str, set[str]]:
    """Every ``HOCBA_…`` word in the package's files (code, docstrings, templates) and in
    prefect.yaml → where it occurs. A word ending in ``_`` is a prefix (``HOCBA_NOTIFY_*``)."""
    found: dict[str, set[str]] = {}
    files = [p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    for path in [*files, ROOT / "prefect.yaml"]:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # fonts, images
        for word in re.findall(r"\bHOCBA_[A-Z0-9_]*", text):
            found.setdefault(word, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_hocba_variable_named_in_the_package_is_a_setting() -> None:
    mentioned = _mentioned()
    assert {"HOCBA_HOME", "HOCBA_KEY_PASSPHRASE", "HOCBA_NOTIFY_"} <= set(mentioned)
    unknown = {
        word: sorted(where)
        for word, where in mentioned.items()
        if word not in NOT_VARIABLES
        and not (word in NAMES or (word.endswith("_") and any(n.startswith(word) for n in NAMES)))
    }
    assert unknown == {}, "add these to hocba.config.VARS (name, type, default, meaning)"


# --------------------------------------------------------------------------- the table
def test_every_variable_fills_one_field_of_settings() -> None:
    assert [v.field for v in VARS] == [f.name for f in dataclasses.fields(Settings)]
    assert len(NAMES) == len(VARS)
    for var in VARS:
        assert var.name.startswith("HOCBA_") and var.meaning and var.type
        if var.default is not None:  # the documented default parses
            config.default(var.name)


def test_defaults() -> None:
    s = load_settings({})
    assert s.home == (Path.cwd() / "var").resolve()
    assert s.database_url is None and s.schema == "hocba"
    assert s.base_url == "http://localhost:8501"
    assert s.verify_url == "http://localhost:8501/kiem-tra"
    assert s.transfer_dir == s.home / "chuyen-truong"
    assert s.trust_anchors == () and s.tsa_url is None and s.apprise_config is None
    assert (s.portal_url, s.portal_timeout, s.portal_retries, s.portal_backoff) == (
        "http://127.0.0.1:8800",
        60.0,
        5,
        0.5,
    )
    assert (s.signing_service_url, s.signing_confirm_timeout) == ("http://127.0.0.1:8600", 300.0)
    assert s.key_passphrase is None and s.portal_password is None and s.token_pin is None
    assert s.notify_quiet_hours == (dt.time(21, 0), dt.time(6, 30))
    assert (s.notify_window_days, s.notify_digest_weekday, s.notify_max_attempts) == (45, 1, 5)


def test_values_are_parsed() -> None:
    s = load_settings(
        {
            "HOCBA_HOME": "~/hocba-data",
            "HOCBA_BASE_URL": "https://hocba.example.vn/",
            "HOCBA_TRUST_ANCHORS": "/etc/a.pem::/etc/b.pem",
            "HOCBA_PORTAL_RETRIES": "0",
            "HOCBA_PORTAL_TIMEOUT": "2.5",
            "HOCBA_SIGNING_CONFIRM_TIMEOUT": "1.5",
            "HOCBA_NOTIFY_QUIET_HOURS": "22:15-05:00",
            "HOCBA_NOTIFY_DIGEST_WEEKDAY": "7",
            "HOCBA_TRANSFER_DIR": "/srv/chuyen",
        }
    )
    assert s.home == Path("~/hocba-data").expanduser().resolve()
    assert s.base_url == "https://hocba.example.vn"
    assert s.verify_url == "https://hocba.example.vn/kiem-tra"
    assert s.trust_anchors == (Path("/etc/a.pem"), Path("/etc/b.pem"))
    assert (s.portal_retries, s.portal_timeout, s.signing_confirm_timeout) == (0, 2.5, 1.5)
    assert s.notify_quiet_hours == (dt.time(22, 15), dt.time(5, 0))
    assert s.notify_digest_weekday == 7 and s.transfer_dir == Path("/srv/chuyen")


def test_empty_means_unset_except_secrets_and_quiet_hours() -> None:
    s = load_settings(
        {
            "HOCBA_DATABASE_URL": "",
            "HOCBA_PORTAL_TIMEOUT": "",
            "HOCBA_TSA_URL": "",
            "HOCBA_KEY_PASSPHRASE": "",
            "HOCBA_NOTIFY_QUIET_HOURS": "",
        }
    )
    assert s.database_url is None and s.portal_timeout == 60.0 and s.tsa_url is None
    assert s.key_passphrase == ""  # an empty passphrase is one: not asked again
    assert s.notify_quiet_hours == (None, None)
    assert load_settings({"HOCBA_NOTIFY_QUIET_HOURS": "off"}).notify_quiet_hours == (None, None)


def test_variables_set_at_run_time_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOCBA_TSA_URL", "http://127.0.0.1:1/tsa")
    assert load_settings().tsa_url == "http://127.0.0.1:1/tsa"
    monkeypatch.setenv("HOCBA_TSA_URL", "http://127.0.0.1:2/tsa")
    assert load_settings().tsa_url == "http://127.0.0.1:2/tsa"
    monkeypatch.delenv("HOCBA_TSA_URL")
    assert load_settings().tsa_url is None
    monkeypatch.setenv("HOCBA_PORTAL_RETRIES", "x")
    with pytest.raises(ConfigError):
        load_settings()


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("HOCBA_DB_SCHEMA", "Hoc-Ba", "chữ thường không dấu"),
        ("HOCBA_PORTAL_TIMEOUT", "sáu mươi", "một số > 0"),
        ("HOCBA_PORTAL_TIMEOUT", "0", "một số > 0"),
        ("HOCBA_PORTAL_BACKOFF", "-1", "một số ≥ 0"),
        ("HOCBA_SIGNING_CONFIRM_TIMEOUT", "nan", "một số > 0"),
        ("HOCBA_PORTAL_RETRIES", "2.5", "số nguyên ≥ 0"),
        ("HOCBA_NOTIFY_DIGEST_WEEKDAY", "8", "số nguyên từ 1 đến 7"),
        ("HOCBA_NOTIFY_MAX_ATTEMPTS", "0", "số nguyên ≥ 1"),
        ("HOCBA_NOTIFY_QUIET_HOURS", "tối", "HH:MM-HH:MM"),
        ("HOCBA_NOTIFY_QUIET_HOURS", "25:00-06:00", "HH:MM-HH:MM"),
        ("HOCBA_TSA_URL", "tsa.example.vn", "http:// hoặc https://"),
        ("HOCBA_PORTAL_URL", "ftp://so.example.vn", "http:// hoặc https://"),
        ("HOCBA_DATABASE_URL", "sqlite:///hocba.db", "PostgreSQL"),
    ],
)
def test_a_bad_value_names_its_variable_and_what_it_expects(
    name: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({name: value})
    message = caught.value.message
    assert isinstance(caught.value, HocbaError) and isinstance(caught.value, ValueError)
    assert message.startswith(f"Biến môi trường {name}={value!r} không hợp lệ: cần ")
    assert expected in message and "mặc định" in message


def test_a_bad_database_url_does_not_show_its_password() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"HOCBA_DATABASE_URL": "mysql://hocba:MatKhauCSDL@db/hocba"})
    assert "MatKhauCSDL" not in str(caught.value) and "hocba:***@db" in str(caught.value)


# --------------------------------------------------------------------------- secrets
SECRETS = {
    "HOCBA_KEY_PASSPHRASE": "MatKhauKhoa-1",
    "HOCBA_TOKEN_PIN": "PinToken-2",
    "HOCBA_SIGNING_OTP": "Otp-3",
    "HOCBA_PORTAL_PASSWORD": "MatKhauCong-4",
    "HOCBA_DATABASE_URL": "postgresql://hocba:MatKhauCSDL-5@db:5432/hocba",
}


def test_secrets_are_read_but_never_shown() -> None:
    assert {v.name for v in VARS if v.secret} == set(SECRETS) - {"HOCBA_DATABASE_URL"}
    s = load_settings(SECRETS)
    assert (s.key_passphrase, s.token_pin, s.signing_otp, s.portal_password) == (
        "MatKhauKhoa-1",
        "PinToken-2",
        "Otp-3",
        "MatKhauCong-4",
    )
    assert s.database_url == SECRETS["HOCBA_DATABASE_URL"]
    for shown in (repr(s), str(s), f"{s}", repr([s])):
        for secret in ("MatKhauKhoa-1", "PinToken-2", "Otp-3", "MatKhauCong-4", "MatKhauCSDL-5"):
            assert secret not in shown
        assert "key_passphrase='***'" in shown and "hocba:***@db:5432" in shown
    assert "key_passphrase=None" in repr(load_settings({}))  # unset is shown as unset


# --------------------------------------------------------------------------- README
def readme_table() -> str:
    """README's Configuration table as it must read: one row per :data:`VARS` entry."""
    rows = ["| variable | type | meaning | default |", "|---|---|---|---|"]
    rows += [f"| `{v.name}` | {v.type} | {v.meaning} | {v.documented_default} |" for v in VARS]
    return "\n".join(rows)


def test_readme_configuration_table_is_the_settings_list() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = readme.split("## Configuration\n", 1)[1].lstrip("\n").splitlines()
    table = "\n".join(lines[: next(i for i, x in enumerate(lines) if not x.startswith("|"))])
    assert table == readme_table(), "paste this table into README.md:\n" + readme_table()


def test_a_child_process_reads_its_own_environment(tmp_path: Path) -> None:
    """What ``hocba up`` and the demo rely on: the environment given to a child is the one
    its settings come from."""
    out = subprocess.run(
        [sys.executable, "-c", "from hocba.config import load_settings as l; print(l().home)"],
        env={"HOCBA_HOME": str(tmp_path / "nha"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert out.stdout.strip() == str((tmp_path / "nha").resolve())
