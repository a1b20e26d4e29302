"""Corrections of issued records (yêu cầu chỉnh lý, HOCBA_SPEC §5).

An issued record is never edited. The school (principal or clerk) files a request with a
reason (and, where civil status changed, the reference of the decision); a district
officer whose unit covers the school approves it. Approval revokes the old record (which
then keeps its content of its own, migration 0022) and drafts a new one from it that
``supersedes`` it — with no content of its own when it is the year-end data's, so the
correction's re-import reaches it (``create_drafts`` refreshes it); the new one goes
through the teacher's review and the three signatures again, and when it is sealed the
old one becomes ``superseded`` (``hocba.tasks.issuance``). Both stay; verifying the old
one names its successor. Every step is an audit event.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text
from sqlmodel import Session

from hocba.db import one_row
from hocba.errors import HocbaError
from hocba.models import audit
from hocba.models.lifecycle import VN_TZ, Actor, load_grants, transition

CORRECTABLE = ("issued", "submitted", "accepted", "rejected")


class CorrectionError(HocbaError, ValueError):
    """A correction step was refused; the message (Vietnamese) says why."""


def request(
    session: Session,
    record_id: int,
    actor: Actor,
    reason: str,
    decision_document: str | None = None,
) -> int:
    """File a correction request for an issued record; returns the request id."""
    if not (reason or "").strip():
        raise CorrectionError("Yêu cầu chỉnh lý cần ghi rõ lý do.")
    conn = session.connection()
    rec = one_row(
        conn,
        "SELECT r.state, r.school_id, s.code FROM hoc_ba r JOIN school s "
        "ON s.id = r.school_id WHERE r.id = :r FOR UPDATE OF r",
        {"r": record_id},
        CorrectionError(f"Không tìm thấy học bạ #{record_id}."),
    )
    if rec.state not in CORRECTABLE:
        raise CorrectionError(
            "Chỉ lập yêu cầu chỉnh lý cho học bạ đã phát hành; học bạ chưa "
            "phát hành thì trả lại GVCN để sửa."
        )
    grants = load_grants(session, actor, dt.datetime.now(VN_TZ).date())
    if not grants.roles_at(rec.school_id) & {"principal", "vice_principal", "clerk"}:
        raise CorrectionError(
            f"{actor.name} không có quyền lập yêu cầu chỉnh lý cho trường {rec.code}."
        )
    if conn.scalar(
        text("SELECT 1 FROM correction_request WHERE record_id = :r AND status = 'pending'"),
        {"r": record_id},
    ):
        raise CorrectionError("Học bạ này đã có một yêu cầu chỉnh lý đang chờ duyệt.")
    req_id = int(
        conn.scalar(
            text(
                "INSERT INTO correction_request (record_id, reason, decision_document, "
                "requested_by) VALUES (:r, :why, :doc, :by) RETURNING id"
            ),
            {"r": record_id, "why": reason.strip(), "doc": decision_document, "by": actor.staff_id},
        )
    )
    actor.append_event(
        session,
        rec.code,
        action="request_correction",
        record_id=record_id,
        reason=reason.strip(),
        payload={"request_id": req_id},
    )
    return req_id


def decide(
    session: Session,
    request_id: int,
    actor: Actor,
    *,
    approve: bool,
    reason: str | None = None,
) -> int | None:
    """A district officer approves (revoke + new draft; returns its id) or rejects."""
    conn = session.connection()
    req = one_row(
        conn,
        "SELECT c.record_id, c.status, c.reason, r.school_id, s.code FROM "
        "correction_request c JOIN hoc_ba r ON r.id = c.record_id JOIN school s "
        "ON s.id = r.school_id WHERE c.id = :i FOR UPDATE OF c",
        {"i": request_id},
        CorrectionError("Không có yêu cầu chỉnh lý này."),
    )
    if req.status != "pending":
        raise CorrectionError("Yêu cầu chỉnh lý này đã được xử lý.")
    grants = load_grants(session, actor, dt.datetime.now(VN_TZ).date())
    if "district_officer" not in grants.roles_at(req.school_id):
        raise CorrectionError(f"{actor.name} không có quyền duyệt chỉnh lý của trường {req.code}.")
    if not approve and not (reason or "").strip():
        raise CorrectionError("Từ chối yêu cầu chỉnh lý cần ghi rõ lý do.")
    new_id = None
    if approve:
        res = transition(
            session, [req.record_id], "revoke", actor, reason=f"Chỉnh lý: {req.reason}"
        )
        if res.failed:
            raise CorrectionError(res.failed[req.record_id])
        new_id = int(
            conn.scalar(
                text("""
            INSERT INTO hoc_ba (pupil_id, school_id, class_id, school_year_id, enrolment_id,
                grade, state, cohort, content, entered_result, computed_result, flags,
                supersedes_id, summary_seen_at)
            SELECT r.pupil_id, r.school_id, r.class_id, r.school_year_id, r.enrolment_id,
                r.grade, 'draft', r.cohort, NULLIF(r.content, ys.content), r.entered_result,
                r.computed_result, r.flags, r.id, ys.updated_at
            FROM hoc_ba r LEFT JOIN year_summary ys ON ys.enrolment_id = r.enrolment_id
            WHERE r.id = :r RETURNING id"""),
                {"r": req.record_id},
            )
        )
    conn.execute(
        text(
            "UPDATE correction_request SET status = :st, decided_by = :by, decided_at = now(),"
            " decision_reason = :why, new_record_id = :new WHERE id = :i"
        ),
        {
            "st": "approved" if approve else "rejected",
            "by": actor.staff_id,
            "why": reason,
            "new": new_id,
            "i": request_id,
        },
    )
    events = [
        actor.event(
            req.code,
            "approve_correction" if approve else "reject_correction",
            record_id=req.record_id,
            reason=reason,
            payload={"request_id": request_id},
        )
    ]
    if new_id is not None:
        events.append(
            actor.event(
                req.code,
                "create_draft",
                record_id=new_id,
                to_state="draft",
                payload={"supersedes": req.record_id},
            )
        )
    audit.append(session, events)
    return new_id
