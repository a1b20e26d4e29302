"""A submission session ("Gửi Sở ngay", issue 15) is started only by who may «Gửi Sở» in the
record lifecycle, with the school's approved seal, over the records with something to do
at the portal; nothing secret is stored."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from hocba.models import signing_sessions
from hocba.models.signing_sessions import SessionError


def test_a_submission_session_lists_the_records_with_something_to_do(keyed) -> None:  # type: ignore[no-untyped-def]
    d = keyed
    ids = d.record_ids("DH01")
    for rid, state in zip(ids[:4], ("issued", "submitted", "rejected", "accepted"), strict=True):
        d.force_state(rid, state)
    with Session(d.engine) as s:
        sid = signing_sessions.create_submission(s, d.actor("dh01.vt"), "DH01")
        again = signing_sessions.create_submission(
            s, d.actor("dh01.vt"), "DH01", resubmit_rejected=True
        )
        got = signing_sessions.read(s, sid)
        resend = signing_sessions.read(s, again)
        s.commit()
    assert got is not None and resend is not None
    assert (got.purpose, got.backend, got.slot, got.state) == (
        "submit",
        "worker",
        "KY_PHAT_HANH",
        "queued",
    )
    assert got.record_ids == ids[:2] and resend.record_ids == ids[:3]


def test_only_who_may_send_starts_one_and_only_with_work_and_a_seal(keyed) -> None:  # type: ignore[no-untyped-def]
    d = keyed
    with Session(d.engine) as s, pytest.raises(SessionError, match="Không có học bạ nào"):
        signing_sessions.create_submission(s, d.actor("dh01.vt"), "DH01")
    d.force_state(d.record_ids("DH01")[0], "issued")
    teacher = d.homeroom_of(d.record_ids("DH01")[0])
    with Session(d.engine) as s, pytest.raises(SessionError, match="không có quyền «Gửi Sở»"):
        signing_sessions.create_submission(s, teacher, "DH01")
    d.force_state(d.record_ids("DH02")[0], "issued")  # DH02's seal is not approved
    with Session(d.engine) as s, pytest.raises(SessionError, match="chưa được Phòng/Sở phê"):
        signing_sessions.create_submission(s, d.actor("dh02.vt"), "DH02")
