"""Helpers of the dashboard tests: the root conftest's District builder, sign-in through
the app (AppTest), test keys (ECDSA, fast) for the people who sign."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from hocba.models import certificates, org, queries
from hocba.models.lifecycle import SYSTEM, Actor

APP = Path(__file__).parents[2] / "hocba" / "dashboard" / "app.py"
PASSWORD = "mat-khau-thu"  # staff passwords and key passphrases of these tests
_ids = itertools.count()


def _root_conftest() -> Any:
    """The suite's root conftest (its ``District`` builder), loaded by path."""
    spec = importlib.util.spec_from_file_location(
        "hocba_tests_root_conftest", Path(__file__).parents[1] / "conftest.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


District = _root_conftest().District


def set_passwords(engine: Engine, password: str = PASSWORD) -> None:
    """Every account gets ``password`` (the import creates teachers without one)."""
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE staff SET password_hash = :p"), {"p": org.hash_password(password)}
        )


def viewer_of(engine: Engine, username: str) -> queries.Viewer:
    with Session(engine) as s:
        sid = s.connection().scalar(
            text("SELECT id FROM staff WHERE username = :u"), {"u": username}
        )
        viewer = queries.viewer_for(s, int(sid))
    assert viewer is not None
    return viewer


def signed_in(username: str, password: str = PASSWORD) -> AppTest:
    """The app after signing in through the form."""
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.text_input(key="login_username").input(username)
    at.text_input(key="login_password").input(password)
    at.button[0].click().run()
    return at


def give_keys(engine: Engine, home: Path, usernames: list[str], schools: list[str]) -> None:
    """ECDSA test certificates for these people and schools (registered), schools' seals
    approved by the district officer."""
    from hocba.dev.testpki import TestPki
    from hocba.tasks.issuance import pki_directory

    pki = TestPki.init(pki_directory(home), key_type="ecdsa")
    with Session(engine) as s:
        conn = s.connection()
        for username in usernames:
            name, cccd = conn.execute(
                text("SELECT full_name, cccd FROM staff WHERE username = :u"), {"u": username}
            ).one()
            ident = pki.issue_person(
                cccd, name, "Cán bộ", PASSWORD, label=username, key_type="ecdsa"
            )
            certificates.register(
                s, ident.certificate, username=username, key_ref=str(ident.p12_path), actor=SYSTEM
            )
        officer = Actor(
            *conn.execute(text("SELECT id, full_name FROM staff WHERE username = 'phong.dh'")).one()
        )
        for code in schools:
            ident = pki.issue_school(code, code, PASSWORD, key_type="ecdsa")
            cert_id = certificates.register(
                s, ident.certificate, school_code=code, key_ref=str(ident.p12_path), actor=SYSTEM
            )
            certificates.decide(s, cert_id, officer, approve=True)
        s.commit()
