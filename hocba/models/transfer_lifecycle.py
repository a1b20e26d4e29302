"""The transfer lifecycle (chuyển trường, HOCBA_SPEC §5): one table of transitions, and the
only code that changes a transfer's state.

Like the records' lifecycle (``models/lifecycle.py``, ARCHITECTURE rule 1): every state
change of a ``transfer`` row — its creation included — goes through
:func:`transition_transfer`, which checks :data:`TRANSFER_TRANSITIONS` (from-state,
to-state, who may do it, what must hold), writes the row and appends the audit event in
the caller's transaction. PostgreSQL backs it up: the ``transfer_guard`` trigger
(migration 0013) refuses a state change made elsewhere (``HBT01``) and any move that is
not in the table (``HBT02``); ``tests/models/test_transfer_trigger_matches_table.py``
proves the two agree.

A transfer row is seen by both schools. Each move is made by one of them (``side``): its
staff's roles are checked at that school and the event goes to that school's audit chain.
The leaving school exports (``exported``); the receiving school takes the package in
(``accepted``) or holds it for a person (``needs_review``), who takes it in or refuses it
(``rejected``); the leaving school records the signed receipt (``receipted``) or the
signed refusal (``rejected``). In one database both schools share the leaving school's
row; between systems each side has its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import text
from sqlmodel import Session

from hocba.errors import HocbaError
from hocba.models.lifecycle import VN_TZ, Actor, load_grants

TRANSFER_STATE_LABELS: dict[str, str] = {
    "exported": "Đã xuất gói, chờ trường nhận",
    "needs_review": "Cần đối chiếu thủ công",
    "accepted": "Đã nhận",
    "rejected": "Từ chối",
    "receipted": "Đã có biên nhận",
}
TRANSFER_STATES: tuple[str, ...] = tuple(TRANSFER_STATE_LABELS)

#: The people of a school who move its pupils in and out.
SCHOOL_STAFF = frozenset({"principal", "vice_principal", "clerk"})

#: The column of the school that makes a move, by side.
_SCHOOL_COLUMN = {"from": "from_school_code", "to": "to_school_code"}

#: The columns a move may write with the state (a new row: every column it is born with).
_COLUMNS = frozenset(
    {
        "pupil_cccd_sha256",
        "pupil_name",
        "birth_date",
        "from_school_code",
        "to_school_code",
        "leaving_date",
        "package_sha256",
        "records",
        "pupil_id",
        "review_reason",
        "receipt",
    }
)


class TransferError(HocbaError, ValueError):
    """A transfer step was refused; the message (Vietnamese) says why and what to do."""


@dataclass(frozen=True)
class TransferTransition:
    """One row of the transfer transition table. ``None`` among the sources: the move
    creates the transfer row."""

    action: str
    label: str
    sources: tuple[str | None, ...]
    target: str
    roles: frozenset[str]
    side: Literal["from", "to"]
    needs_reason: bool = False
    #: columns that must be given a value with the move
    needs: tuple[str, ...] = ()


TRANSFER_TRANSITIONS: dict[str, TransferTransition] = {
    t.action: t
    for t in (
        TransferTransition(
            "transfer_out",
            "Xuất gói chuyển trường",
            (None,),
            "exported",
            SCHOOL_STAFF,
            "from",
            needs=("package_sha256",),
        ),
        TransferTransition(
            "transfer_in",
            "Nhận học bạ chuyển đến",
            (None, "exported", "needs_review"),
            "accepted",
            SCHOOL_STAFF,
            "to",
        ),
        TransferTransition(
            "transfer_review",
            "Chờ đối chiếu thủ công",
            (None, "exported", "needs_review"),
            "needs_review",
            SCHOOL_STAFF,
            "to",
            needs_reason=True,
        ),
        TransferTransition(
            "transfer_reject",
            "Từ chối hồ sơ chuyển đến",
            ("needs_review",),
            "rejected",
            SCHOOL_STAFF,
            "to",
            needs_reason=True,
        ),
        TransferTransition(
            "transfer_refused",
            "Ghi nhận trường nhận từ chối gói",
            ("exported",),
            "rejected",
            frozenset({"system"}),
            "from",
            needs_reason=True,
        ),
        TransferTransition(
            "transfer_receipt",
            "Ghi nhận biên nhận",
            ("exported", "accepted"),
            "receipted",
            frozenset({"system"}),
            "from",
            needs=("receipt",),
        ),
    )
}


def check_may(session: Session, actor: Actor, action: str, school_code: str) -> None:
    """Refuse (:class:`TransferError`) when ``actor`` may not make ``action`` for
    ``school_code`` today: the roles of the table, at the school of the move's side."""
    t = TRANSFER_TRANSITIONS[action]
    school_id = (
        session.connection()
        .execute(text("SELECT id FROM school WHERE code = :c"), {"c": school_code})
        .scalar()
    )
    if school_id is None:
        raise TransferError(f"Không có trường mã {school_code}.")
    grants = load_grants(session, actor, dt.datetime.now(VN_TZ).date())
    if not grants.roles_at(int(school_id)) & t.roles:
        raise TransferError(
            f"{actor.name} không có quyền «{t.label}» ở trường {school_code}: việc này do "
            "Hiệu trưởng, Phó hiệu trưởng được ủy quyền hoặc văn thư của trường làm."
        )


def transition_transfer(
    session: Session,
    action: str,
    actor: Actor,
    *,
    transfer_id: int | None = None,
    values: Mapping[str, Any] | None = None,
    reason: str | None = None,
    payload: Mapping[str, Any] | None = None,
) -> int:
    """Make ``action`` on transfer ``transfer_id`` (None: create the row with ``values``);
    returns the transfer's id.

    ``values`` are the columns written with the state (for a new row, all of them);
    ``payload`` goes into the audit event with the transfer id and the other school.
    Locks the row (``FOR UPDATE``), checks the table's source state, the actor's roles
    at the school of the move's side and what must hold, and raises
    :class:`TransferError` (Vietnamese) when refused. Runs in the caller's transaction.
    """
    t = TRANSFER_TRANSITIONS.get(action)
    if t is None:
        raise TransferError(f"Thao tác chuyển trường không tồn tại: {action!r}.")
    values = dict(values or {})
    if set(values) - _COLUMNS:
        raise ValueError(f"cột không ghi được: {sorted(set(values) - _COLUMNS)}")
    reason = (reason or "").strip() or None
    if t.needs_reason and not reason:
        raise TransferError(f"Thao tác «{t.label}» cần ghi rõ lý do.")
    missing = [c for c in t.needs if not values.get(c)]
    if missing:
        raise TransferError(f"Thao tác «{t.label}» thiếu {', '.join(missing)}.")
    conn = session.connection()
    if transfer_id is None:
        if None not in t.sources:
            raise TransferError(f"Thao tác «{t.label}» cần một lượt chuyển trường đã có.")
        row: dict[str, Any] = {"state": None, **values}
    else:
        found = (
            conn.execute(
                text(
                    "SELECT state, from_school_code, to_school_code FROM transfer "
                    "WHERE id = :i FOR UPDATE"
                ),
                {"i": transfer_id},
            )
            .mappings()
            .one_or_none()
        )
        if found is None:
            raise TransferError(f"Không có lượt chuyển trường số {transfer_id}.")
        row = dict(found)
        if row["state"] not in t.sources:
            raise TransferError(
                f"Lượt chuyển trường #{transfer_id} đang ở trạng thái "
                f"«{TRANSFER_STATE_LABELS[row['state']]}», không thể «{t.label}» (có thể "
                "người khác vừa thao tác; hãy tải lại)."
            )
    school = str(row[_SCHOOL_COLUMN[t.side]])
    other = str(row[_SCHOOL_COLUMN["to" if t.side == "from" else "from"]])
    check_may(session, actor, action, school)
    conn.execute(text("SELECT set_config('hocba.transfer_lifecycle', 'on', true)"))
    if transfer_id is None:
        columns = ", ".join(values)
        transfer_id = int(
            conn.execute(
                text(
                    f"INSERT INTO transfer ({columns}, state) "
                    f"VALUES ({', '.join(':' + c for c in values)}, :state) RETURNING id"
                ),
                {**values, "state": t.target},
            ).scalar_one()
        )
    else:
        sets = "".join(f", {c} = :{c}" for c in values)
        conn.execute(
            text(f"UPDATE transfer SET state = :state, updated_at = now(){sets} WHERE id = :i"),
            {**values, "state": t.target, "i": transfer_id},
        )
    conn.execute(text("SELECT set_config('hocba.transfer_lifecycle', 'off', true)"))
    actor.append_event(
        session,
        school,
        action=t.action,
        from_state=row["state"],
        to_state=t.target,
        reason=reason,
        payload={
            "transfer_id": transfer_id,
            "to" if t.side == "from" else "from": other,
            **(payload or {}),
        },
    )
    return transfer_id
