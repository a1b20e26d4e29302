"""Test keys for every school and signing staff member of a database (demo, tests, bench).

A stand-in: a real school's keys come from a CA, on a token or with a remote service, and
are registered with ``hocba cert register``.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlmodel import Session

from hocba.dev.testpki import TestPki
from hocba.models import certificates
from hocba.models.lifecycle import Actor
from hocba.tasks.issuance import SIGNING_ROLES, pki_directory


def init_test_keys(session: Session, home: Path, password: str, actor: Actor) -> dict[str, int]:
    """Issue and register a test certificate for every school and signing staff member
    that has none yet; returns counts. Idempotent."""
    directory = pki_directory(home)
    directory.mkdir(parents=True, exist_ok=True)
    pki = (
        TestPki.open(directory) if (directory / "root-ca.pem").exists() else TestPki.init(directory)
    )
    conn = session.connection()
    schools = conn.execute(
        text(
            "SELECT s.code, s.name FROM school s WHERE NOT EXISTS (SELECT 1 FROM certificate c "
            "WHERE c.school_id = s.id) ORDER BY s.code"
        )
    ).all()
    for code, name in schools:
        ident = pki.issue_school(code, name, password)
        certificates.register(
            session, ident.certificate, school_code=code, key_ref=str(ident.p12_path), actor=actor
        )
    people = conn.execute(
        text("""
        SELECT DISTINCT st.username, st.full_name, st.cccd, r.role FROM staff st
        JOIN staff_role r ON r.staff_id = st.id
        WHERE st.cccd IS NOT NULL AND r.role = ANY(:roles) AND NOT EXISTS (
            SELECT 1 FROM certificate c WHERE c.staff_id = st.id)
        ORDER BY st.username"""),
        {"roles": list(SIGNING_ROLES)},
    ).all()
    done: set[str] = set()
    for username, name, cccd, role in people:
        if username in done:
            continue
        done.add(username)
        ident = pki.issue_person(cccd, name, role, password, label=username)
        certificates.register(
            session, ident.certificate, username=username, key_ref=str(ident.p12_path), actor=actor
        )
    return {"schools": len(schools), "staff": len(done)}
