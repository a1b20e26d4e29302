"""Signing sessions: one batch a person started from the dashboard (migration 0011), signed
— or, with ``purpose = "submit"`` (migration 0013), sent to the Sở portal — by a flow run.

The dashboard creates the row (:func:`create`) and starts a flow run with only its id;
the flow (``hocba/flows/signing_session.py``) moves it through its states and writes each
record's outcome; the page reads it back (:func:`read`) every second. For a USB token the
row is also the mailbox between the flow and the principal's signing agent
(``hocba agent``): the flow posts the digests (:func:`post_digests`), the agent takes the
batches waiting for it (:func:`agent_batches`) and answers with the signatures or an error
(:func:`agent_answer`). Nothing secret is ever stored here.

States: ``queued`` → ``running`` → ``waiting_confirmation`` (remote service: the person
confirms on the phone) | ``waiting_agent`` (token: the agent signs) → ``done`` | ``failed``.

A submission session (:func:`create_submission`, the clerk's "Gửi Sở ngay") lists the
school's records with something to do at the portal; its flow run signs the transactions
with the seal the worker holds (backend ``worker``, as the nightly submission) and writes
each record's outcome at the portal (:func:`portal_outcomes`).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from hocba.errors import HocbaError
from hocba.models.lifecycle import TRANSITIONS, VN_TZ, Actor, load_grants
from hocba.models.lifecycle_states import STATE_LABELS

BACKEND_OF_KIND = {"REMOTE_SIGNING": "remote", "USB_TOKEN": "pkcs11", "HSM": "pkcs11"}
"""The flow backend of a registered certificate's kind (``SOFTWARE`` signs in the page)."""
FINAL = ("done", "failed")
OK = "ok"
"""The outcome of a signed record, or of a record the Sở accepted, in
:attr:`SigningSession.results` (else: the reason, or where it stands at the portal)."""
SENT = "Đã gửi, chờ Sở trả lời."


class SessionError(HocbaError, ValueError):
    """A session cannot be created or answered; the message (Vietnamese) says why."""


@dataclass
class SigningSession:
    id: int
    staff_id: int
    username: str
    full_name: str
    school_code: str
    slot: str
    certificate_id: int
    backend: str
    record_ids: list[int]
    state: str
    message: str | None
    results: dict[str, str] = field(default_factory=dict)
    remote_request_id: str | None = None
    flow_run_id: str | None = None
    wait_until: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    purpose: str = "sign"

    @property
    def finished(self) -> bool:
        return self.state in FINAL

    def outcome(self, record_id: int) -> str | None:
        """``"ok"``, the reason it failed, or None while it waits."""
        return self.results.get(str(record_id))


def create(
    session: Session,
    *,
    staff_id: int,
    school_code: str,
    slot: str,
    certificate_id: int,
    record_ids: Sequence[int],
) -> int:
    """A new queued session for the person's registered certificate ``certificate_id``."""
    if not record_ids:
        raise SessionError("Chưa chọn học bạ nào để ký.")
    conn = session.connection()
    row = conn.execute(
        text(
            "SELECT c.kind, c.status, (c.staff_id = :st OR c.school_id = s.id) FROM certificate c, "
            "school s WHERE c.id = :c AND s.code = :sc"
        ),
        {"c": certificate_id, "st": staff_id, "sc": school_code},
    ).one_or_none()
    if row is None or not row[2] or row[1] != "approved":
        raise SessionError("Chứng thư số này không phải chứng thư đã đăng ký của bạn.")
    backend = BACKEND_OF_KIND.get(row[0])
    if backend is None:
        raise SessionError("Chứng thư số này dùng tệp khóa: hãy ký bằng mật khẩu tệp khóa.")
    return int(
        conn.execute(
            text(
                "INSERT INTO signing_session (staff_id, school_id, slot, certificate_id, "
                "backend, record_ids) SELECT :st, s.id, :slot, :c, :b, :ids FROM school s "
                "WHERE s.code = :sc RETURNING id"
            ),
            {
                "st": staff_id,
                "slot": slot,
                "c": certificate_id,
                "b": backend,
                "ids": list(record_ids),
                "sc": school_code,
            },
        ).scalar_one()
    )


def create_submission(
    session: Session, actor: Actor, school_code: str, *, resubmit_rejected: bool = False
) -> int:
    """A queued submission session: the school's records waiting to be sent (``issued``;
    ``rejected`` too with ``resubmit_rejected``) or waiting for the Sở's answer
    (``submitted``), sent by a flow run with the school's approved seal held by the worker.
    Only who may «Gửi Sở» (:data:`~hocba.models.lifecycle.TRANSITIONS`) starts one."""
    conn = session.connection()
    row = conn.execute(
        text(
            "SELECT s.id, (SELECT c.id FROM certificate c WHERE c.school_id = s.id "
            "AND c.status = 'approved' ORDER BY c.id DESC LIMIT 1), "
            "(SELECT array_agg(r.id ORDER BY r.id) FROM hoc_ba r WHERE r.school_id = s.id "
            "AND r.state = ANY(:states)) FROM school s WHERE s.code = :sc"
        ),
        {
            "sc": school_code,
            "states": ["issued", "submitted", *(["rejected"] if resubmit_rejected else [])],
        },
    ).one_or_none()
    if row is None:
        raise SessionError(f"Không có trường mã {school_code}.")
    school_id, certificate_id, record_ids = row
    submit = TRANSITIONS["submit"]
    grants = load_grants(session, actor, dt.datetime.now(VN_TZ).date())  # roles by local date
    if not grants.roles_at(school_id) & submit.roles:
        raise SessionError(
            f"{actor.name} không có quyền «{submit.label}» của trường {school_code}."
        )
    if certificate_id is None:
        raise SessionError(
            f"Chứng thư số tổ chức (con dấu) của trường {school_code} chưa được Phòng/Sở phê "
            "duyệt: chưa ký được giao dịch gửi Sở. Hãy đề nghị Phòng GDĐT duyệt ở trang Quản "
            "trị › Chứng thư số."
        )
    if not record_ids:
        raise SessionError("Không có học bạ nào chờ gửi Sở hoặc chờ Sở trả lời.")
    return int(
        conn.execute(
            text(
                "INSERT INTO signing_session (staff_id, school_id, slot, certificate_id, "
                "backend, record_ids, purpose) VALUES (:st, :s, 'KY_PHAT_HANH', :c, 'worker', "
                ":ids, 'submit') RETURNING id"
            ),
            {"st": actor.staff_id, "s": school_id, "c": certificate_id, "ids": record_ids},
        ).scalar_one()
    )


def portal_outcomes(
    session: Session, record_ids: Sequence[int], why_not_sent: str | None = None
) -> dict[int, str]:
    """Where each record stands at the Sở portal, as a submission session's outcome:
    :data:`OK` (accepted), the portal's reason (rejected), :data:`SENT`, or (not sent)
    ``why_not_sent`` or else the last error of its transaction."""
    rows = session.connection().execute(
        text(
            "SELECT r.id, r.state, (SELECT coalesce(p.error_description, p.error) "
            "FROM portal_result p WHERE p.record_id = r.id AND NOT p.accepted "
            "ORDER BY p.id DESC LIMIT 1), (SELECT x.last_error FROM submission x "
            "WHERE r.id = ANY(x.record_ids) ORDER BY x.id DESC LIMIT 1) "
            "FROM hoc_ba r WHERE r.id = ANY(:ids)"
        ),
        {"ids": list(record_ids)},
    )
    out: dict[int, str] = {}
    for rid, state, why, last_error in rows:
        if state == "accepted":
            out[rid] = OK
        elif state == "rejected":
            out[rid] = f"Sở từ chối: {why or 'không nêu lý do'}."
        elif state == "submitted":
            out[rid] = SENT
        elif state == "issued":
            why = why_not_sent or last_error
            out[rid] = "Chưa gửi được" + (f": {why}" if why else ".")
        else:
            out[rid] = f"Không gửi: học bạ đang ở trạng thái «{STATE_LABELS[state]}»."
    return out


def read(session: Session, session_id: int) -> SigningSession | None:
    row = (
        session.connection()
        .execute(
            text(
                "SELECT g.id, g.staff_id, st.username, st.full_name, s.code, g.slot, "
                "g.certificate_id, g.backend, g.record_ids, g.state, g.message, g.results, "
                "g.remote_request_id, g.flow_run_id, g.wait_until, g.updated_at, g.purpose "
                "FROM signing_session g "
                "JOIN staff st ON st.id = g.staff_id JOIN school s ON s.id = g.school_id "
                "WHERE g.id = :i"
            ),
            {"i": session_id},
        )
        .one_or_none()
    )
    return SigningSession(*row) if row else None


def update(session: Session, session_id: int, **values: Any) -> None:
    """Set ``state``, ``message``, ``remote_request_id``, ``flow_run_id``, ``wait_until``."""
    allowed = {"state", "message", "remote_request_id", "flow_run_id", "wait_until"}
    if not values or set(values) - allowed:
        raise ValueError(f"cột không cập nhật được: {sorted(set(values) - allowed)}")
    sets = ", ".join(f"{k} = :{k}" for k in values)
    session.connection().execute(
        text(f"UPDATE signing_session SET {sets}, updated_at = now() WHERE id = :i"),
        {"i": session_id, **values},
    )


def add_results(session: Session, session_id: int, results: dict[int, str]) -> None:
    """Merge per-record outcomes (``"ok"`` or the reason) into the session."""
    session.connection().execute(
        text(
            "UPDATE signing_session SET results = results || CAST(:r AS jsonb), "
            "updated_at = now() WHERE id = :i"
        ),
        {"i": session_id, "r": json.dumps({str(k): v for k, v in results.items()})},
    )


def finish(session: Session, session_id: int, message: str, failed_reason: str | None) -> None:
    """End the session: every record without an outcome gets ``failed_reason`` (it stays in
    its queue, retryable) and the token mailbox is emptied."""
    current = read(session, session_id)
    if current is None:
        return
    if failed_reason is not None:
        add_results(
            session,
            session_id,
            {r: failed_reason for r in current.record_ids if current.outcome(r) is None},
        )
    session.connection().execute(
        text(
            "UPDATE signing_session SET state = :s, message = :m, digests = NULL, "
            "signatures = NULL, updated_at = now() WHERE id = :i"
        ),
        {"i": session_id, "s": "failed" if failed_reason else "done", "m": message},
    )


def latest(session: Session, staff_id: int, slot: str) -> int | None:
    """The person's newest session of ``slot`` (the page shows it after a reload)."""
    value = (
        session.connection()
        .execute(
            text(
                "SELECT id FROM signing_session WHERE staff_id = :s AND slot = :slot "
                "ORDER BY id DESC LIMIT 1"
            ),
            {"s": staff_id, "slot": slot},
        )
        .scalar()
    )
    return int(value) if value is not None else None


# ------------------------------------------------------------------ the token agent's mailbox
def post_digests(
    session: Session, session_id: int, digests: Sequence[bytes], wait_until: dt.datetime
) -> None:
    """The flow's batch for the agent: state ``waiting_agent`` until ``wait_until``,
    earlier answers cleared."""
    session.connection().execute(
        text(
            "UPDATE signing_session SET state = 'waiting_agent', digests = CAST(:d AS jsonb), "
            "signatures = NULL, agent_error = NULL, wait_until = :w, updated_at = now() "
            "WHERE id = :i"
        ),
        {
            "i": session_id,
            "d": json.dumps([base64.b64encode(d).decode() for d in digests]),
            "w": wait_until,
        },
    )


def agent_reply(session: Session, session_id: int) -> tuple[list[bytes] | None, str | None]:
    """``(signatures, error)`` the agent posted for the session, both None while it waits."""
    row = (
        session.connection()
        .execute(
            text("SELECT signatures, agent_error FROM signing_session WHERE id = :i"),
            {"i": session_id},
        )
        .one()
    )
    values = [base64.b64decode(v) for v in row[0]] if row[0] is not None else None
    return values, row[1]


@dataclass(frozen=True)
class AgentBatch:
    session_id: int
    certificate_sha256: str
    description: str
    digests: list[bytes]


def agent_batches(session: Session, username: str) -> list[AgentBatch]:
    """The batches waiting for ``username``'s token agent, oldest first."""
    rows = (
        session.connection()
        .execute(
            text(
                "SELECT g.id, c.sha256, g.slot, cardinality(g.record_ids), g.digests "
                "FROM signing_session g JOIN staff st ON st.id = g.staff_id "
                "JOIN certificate c ON c.id = g.certificate_id WHERE st.username = :u "
                "AND g.state = 'waiting_agent' AND g.signatures IS NULL "
                "AND g.agent_error IS NULL ORDER BY g.id"
            ),
            {"u": username},
        )
        .all()
    )
    return [
        AgentBatch(
            sid,
            sha,
            f"Ký {n} học bạ (phiên #{sid}, ô {slot})",
            [base64.b64decode(d) for d in digests],
        )
        for sid, sha, slot, n, digests in rows
    ]


def agent_answer(
    session: Session,
    session_id: int,
    username: str,
    *,
    signatures: Sequence[bytes] | None = None,
    error: str | None = None,
) -> None:
    """Store the agent's signatures (or its Vietnamese error) for a waiting batch of its
    own user; a batch that is not waiting any more is refused."""
    done = session.connection().execute(
        text(
            "UPDATE signing_session g SET signatures = CAST(:s AS jsonb), agent_error = :e, "
            "updated_at = now() FROM staff st WHERE g.id = :i AND st.id = g.staff_id "
            "AND st.username = :u AND g.state = 'waiting_agent' AND g.signatures IS NULL "
            "AND g.agent_error IS NULL"
        ),
        {
            "i": session_id,
            "u": username,
            "s": json.dumps([base64.b64encode(v).decode() for v in signatures])
            if signatures is not None
            else None,
            "e": error,
        },
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise SessionError(f"Phiên ký #{session_id} không còn chờ thiết bị ký của {username}.")
