"""Build a small demo district with work waiting in the queues (used by the browser test
and to take the user guide's screenshots).

``prepare(session_factory, home, ...)`` runs the real demo without signing, gives
everyone test keys (and the demo password, which the import does not set for teachers),
has the district approve every school's seal, then: every homeroom teacher of
``teacher_signed_school`` signs their June records (they wait in that principal's
queue), and the June records of ``issued_school`` go all the way to issued.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text

from hocba.dev.demo import DEMO_PASSWORD, run_demo
from hocba.dev.testpki import TestPki
from hocba.models import certificates, org
from hocba.models.lifecycle import SYSTEM, Actor
from hocba.pki.signer import SoftwareSigner
from hocba.tasks.issuance import SIGNING_ROLES, pki_directory, sign_batch, trust_anchors


def prepare(
    session_factory: Callable[[], Any],
    home: Path,
    schools: int = 2,
    pupils: int = 20,
    year: str | None = None,
    teacher_signed_school: str = "DH01",
    issued_school: str | None = None,
) -> str:
    """Returns the school year built."""
    report = run_demo(session_factory, home, schools, pupils, seed=11, year=year)
    with session_factory() as s:
        _ecdsa_keys(s, home)  # fast; RSA (init_test_keys) is what the demo uses
        s.connection().execute(
            text("UPDATE staff SET password_hash = :pw WHERE password_hash IS NULL"),
            {"pw": org.hash_password(DEMO_PASSWORD)},
        )
    with session_factory() as s:
        conn = s.connection()
        officer = Actor(
            *conn.execute(text("SELECT id, full_name FROM staff WHERE username = 'phong.dh'")).one()
        )
        pending = conn.scalars(
            text("SELECT id FROM certificate WHERE owner_kind = 'school' AND status = 'pending'")
        ).all()
        for cert_id in pending:
            certificates.decide(s, cert_id, officer, approve=True)
        keys = certificates.key_refs(s)
        people = {
            u: Actor(i, n)
            for i, u, n in conn.execute(text("SELECT id, username, full_name FROM staff")).all()
        }

    def signer(label: str) -> SoftwareSigner:
        return SoftwareSigner.from_pkcs12(keys[label], DEMO_PASSWORD)

    for code in [c for c in (teacher_signed_school, issued_school) if c]:
        with session_factory() as s:
            batches = (
                s.connection()
                .execute(
                    text("""
                    SELECT st.username, array_agg(r.id ORDER BY r.id)
                    FROM hoc_ba r JOIN school s ON s.id = r.school_id
                    JOIN school_class c ON c.id = r.class_id
                    JOIN staff st ON st.id = c.homeroom_teacher_id
                    WHERE r.state = 'reviewed' AND r.cohort = 'june' AND s.code = :code
                    GROUP BY st.username
                """),
                    {"code": code},
                )
                .all()
            )
        done: list[int] = []
        for username, ids in batches:
            with session_factory() as s:
                done += sign_batch(s, ids, "GVCN", people[username], signer(username)).ok
        if code != issued_school:
            continue
        principal, clerk = f"{code.lower()}.ht", f"{code.lower()}.vt"
        with session_factory() as s:
            done = sign_batch(s, done, "CBQL", people[principal], signer(principal)).ok
        with session_factory() as s:
            sign_batch(
                s,
                done,
                "KY_PHAT_HANH",
                people[clerk],
                signer(f"truong-{code}"),
                trust_anchors=trust_anchors(home),
            )
    return report.year


def _ecdsa_keys(session: Any, home: Path) -> None:
    """Like :func:`hocba.dev.keys.init_test_keys`, with ECDSA P-256 keys."""
    pki = TestPki.init(pki_directory(home), key_type="ecdsa")
    conn = session.connection()
    for code, name in conn.execute(text("SELECT code, name FROM school ORDER BY code")).all():
        ident = pki.issue_school(code, name, DEMO_PASSWORD, key_type="ecdsa")
        certificates.register(
            session, ident.certificate, school_code=code, key_ref=str(ident.p12_path), actor=SYSTEM
        )
    people = conn.execute(
        text("""
            SELECT DISTINCT st.username, st.full_name, st.cccd FROM staff st
            JOIN staff_role r ON r.staff_id = st.id
            WHERE st.cccd IS NOT NULL AND r.role = ANY(:roles) ORDER BY st.username
        """),
        {"roles": list(SIGNING_ROLES)},
    ).all()
    for username, name, cccd in people:
        ident = pki.issue_person(
            cccd, name, "Cán bộ", DEMO_PASSWORD, label=username, key_type="ecdsa"
        )
        certificates.register(
            session, ident.certificate, username=username, key_ref=str(ident.p12_path), actor=SYSTEM
        )


def transfers(session_factory: Callable[[], Any], home: Path, from_school: str = "DH02") -> None:
    """Two pupils of ``from_school`` (issued records) leave for DH01: one package taken in
    (with its receipt recorded), one exported and not yet received — for the screenshot
    of the transfers page."""
    import datetime as dt

    from hocba.models.lifecycle import Actor
    from hocba.tasks.transfer import export_package, receive_package, record_receipt

    with session_factory() as s:
        conn = s.connection()
        keys = certificates.key_refs(s)
        codes = conn.scalars(
            text("""
            SELECT p.pupil_code FROM hoc_ba r JOIN pupil p ON p.id = r.pupil_id
            JOIN school s ON s.id = r.school_id
            WHERE s.code = :code AND r.state = 'issued' AND p.cccd IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM hoc_ba o WHERE o.pupil_id = p.id
                              AND o.state NOT IN ('issued', 'submitted', 'accepted'))
            ORDER BY r.id LIMIT 2"""),
            {"code": from_school},
        ).all()
        people = {
            u: Actor(i, n)
            for i, u, n in conn.execute(text("SELECT id, username, full_name FROM staff")).all()
        }

    def seal(code: str) -> SoftwareSigner:
        return SoftwareSigner.from_pkcs12(keys[f"truong-{code}"], DEMO_PASSWORD)

    clerk = people[f"{from_school.lower()}.vt"]
    packages = []
    for code in codes:
        with session_factory() as s:
            packages.append(
                export_package(s, code, "DH01", dt.date.today(), clerk, seal(from_school))[0]
            )
    with session_factory() as s:
        res = receive_package(
            s, packages[0], people["dh01.vt"], seal("DH01"), trust_anchors(home), "DH01"
        )
    with session_factory() as s:
        record_receipt(s, res.receipt or b"", trust_anchors(home))
