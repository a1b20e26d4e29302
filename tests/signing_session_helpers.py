"""Signing sessions as the dashboard makes them (a teacher's GVCN batch in DH01), for the
flow tests of the remote service and the token agent."""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlmodel import Session

from hocba.models import certificates, signing_sessions


def new_session(engine: Engine, username: str, ids: list[int]) -> int:
    """A queued session of ``username``'s newest certificate over ``ids`` (slot GVCN)."""
    with Session(engine) as s:
        staff_id = (
            s.connection()
            .execute(text("SELECT id FROM staff WHERE username = :u"), {"u": username})
            .scalar_one()
        )
        cert = certificates.staff_certificate(s, staff_id)
        assert cert is not None
        sid = signing_sessions.create(
            s,
            staff_id=staff_id,
            school_code="DH01",
            slot="GVCN",
            certificate_id=cert.id,
            record_ids=ids,
        )
        s.commit()
    return sid


def read_session(engine: Engine, sid: int) -> signing_sessions.SigningSession:
    with Session(engine) as s:
        got = signing_sessions.read(s, sid)
    assert got is not None
    return got
