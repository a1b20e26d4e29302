"""The record lifecycle: one table of transitions, and the only code that changes a state.

ARCHITECTURE rule 1: every state change anywhere (dashboard, flow, CLI) goes through
:func:`transition`, which checks the transition table (from-state, to-state, who may do
it, what must hold), updates the records and appends their audit events in the caller's
transaction. PostgreSQL backs this up: a state change made outside this module is refused
by a trigger (migration 0001), and so is any change to an issued record's content (its
own, or its year_summary's while it has none: migration 0022).

Concurrency: the records are locked with ``SELECT … FOR UPDATE`` (in id order), so of two
concurrent transitions of the same record exactly one wins; the other re-reads the new
state after the winner commits and fails with a clear message.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlmodel import Session

from hocba.db import unnest_rows
from hocba.errors import HocbaError
from hocba.models import audit, stored_xml
from hocba.models.lifecycle_states import STATE_LABELS

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")

#: TT27 flags that stop a teacher from approving a record (data incomplete or wrong).
BLOCKING_FLAGS = frozenset(
    {"MISSING_SUBJECT", "MISSING_SCORE", "MISSING_TRAIT", "UNKNOWN_SUBJECT", "RESULT_MISMATCH"}
)


class TransitionError(HocbaError):
    """A transition was refused; ``message`` (Vietnamese) says why and what to do."""

    def __init__(self, message: str, failures: Mapping[int, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.failures = dict(failures or {})


@dataclass(frozen=True)
class Actor:
    """Who acts: a staff member, or the system (a flow acting on its own)."""

    staff_id: int | None
    name: str
    system: bool = False

    @property
    def label(self) -> str:
        return f"staff:{self.staff_id}" if self.staff_id is not None else "system"

    def event(self, school_code: str, action: str, **details: Any) -> audit.NewEvent:
        """An audit event by this actor on a school's chain (``details``: NewEvent's other
        fields)."""
        return audit.NewEvent(
            chain=audit.school_chain(school_code),
            actor=self.label,
            actor_id=self.staff_id,
            action=action,
            **details,
        )

    def append_event(
        self,
        session: Session,
        school_code: str,
        action: str,
        at: dt.datetime | None = None,
        **details: Any,
    ) -> None:
        """Append one :meth:`event` in the caller's transaction."""
        audit.append(session, [self.event(school_code, action, **details)], at=at)


SYSTEM = Actor(staff_id=None, name="Hệ thống", system=True)


@dataclass(frozen=True)
class RecordRow:
    """What the guards and permission checks see of a locked record."""

    id: int
    state: str
    school_id: int
    school_code: str
    class_id: int
    homeroom_teacher_id: int | None
    flags: list[dict[str, str]]


Guard = Callable[[RecordRow, Mapping[str, Any]], str | None]


def _no_blocking_flags(rec: RecordRow, payload: Mapping[str, Any]) -> str | None:
    bad = [f["message"] for f in rec.flags if f.get("code") in BLOCKING_FLAGS]
    if bad:
        return "Dữ liệu còn lỗi theo TT27, cần sửa trước khi duyệt: " + "; ".join(bad)
    return None


def _has_signed_xml(rec: RecordRow, payload: Mapping[str, Any]) -> str | None:
    if not payload.get("signed_xml"):
        return "Chưa có tệp XML đã ký đủ chữ ký GVCN, Hiệu trưởng và con dấu của trường."
    return None


@dataclass(frozen=True)
class Transition:
    """One row of the transition table."""

    action: str
    label: str
    sources: tuple[str, ...]
    target: str
    roles: frozenset[str]
    needs_reason: bool = False
    guards: tuple[Guard, ...] = ()
    #: guards on the per-record inputs (skipped by a dry run, which has none yet)
    payload_guards: tuple[Guard, ...] = ()
    #: SQL SET fragments applied with the state change, psycopg's placeholders:
    #: ``%(now)s``, ``%(actor_id)s`` and ``%(reason)s`` are the batch's, ``v.<column>`` the
    #: record's (see :data:`_PER_RECORD`)
    sets: tuple[str, ...] = ()
    #: what happens to the partly signed XML in ``hoc_ba_signing`` (migration 0014):
    #: ``"write"`` the payload's ``signed_xml`` there, ``"clear"`` it, ``""`` leave it
    pending_xml: str = ""


#: A record that leaves the live states keeps the content it has (migration 0022: NULL is
#: its enrolment's year_summary's, which a correction may re-import afterwards), read by
#: the same function the content guards compare with.
_KEEP_CONTENT = ("content = COALESCE(hoc_ba.content, hoc_ba_summary_content(hoc_ba.enrolment_id))",)

_CLEAR_SIGNATURES = (
    "teacher_signer_id = NULL",
    "teacher_signed_at = NULL",
    "principal_signer_id = NULL",
    "principal_signed_at = NULL",
    "signed_xml = NULL",
    "return_reason = %(reason)s",
)

TRANSITIONS: dict[str, Transition] = {
    t.action: t
    for t in (
        Transition(
            "send_to_review",
            "Chuyển GVCN kiểm tra",
            ("draft",),
            "in_review",
            frozenset({"homeroom_teacher", "principal", "vice_principal", "system"}),
        ),
        Transition(
            "approve",
            "GVCN duyệt",
            ("in_review",),
            "reviewed",
            frozenset({"homeroom_teacher"}),
            guards=(_no_blocking_flags,),
            sets=("return_reason = NULL",),
        ),
        Transition(
            "reopen",
            "Mở lại để sửa",
            ("reviewed",),
            "in_review",
            frozenset({"homeroom_teacher"}),
            needs_reason=True,
            sets=("return_reason = %(reason)s",),
        ),
        Transition(
            "teacher_sign",
            "GVCN ký",
            ("reviewed",),
            "teacher_signed",
            frozenset({"homeroom_teacher"}),
            sets=(
                "teacher_signer_id = %(actor_id)s",
                "teacher_signed_at = %(now)s",
                "lookup_code = COALESCE(hoc_ba.lookup_code, v.lookup_code)",
            ),
            pending_xml="write",
        ),
        Transition(
            "principal_sign",
            "Hiệu trưởng ký",
            ("teacher_signed",),
            "principal_signed",
            frozenset({"principal", "vice_principal"}),
            sets=(
                "principal_signer_id = %(actor_id)s",
                "principal_signed_at = %(now)s",
            ),
            pending_xml="write",
        ),
        Transition(
            "principal_return",
            "Trả lại GVCN",
            ("teacher_signed", "principal_signed"),
            "in_review",
            frozenset({"principal", "vice_principal"}),
            needs_reason=True,
            sets=_CLEAR_SIGNATURES,
            pending_xml="clear",
        ),
        Transition(
            "seal",
            "Đóng dấu, phát hành",
            ("principal_signed",),
            "issued",
            frozenset({"clerk"}),
            payload_guards=(_has_signed_xml,),
            sets=(
                "sealer_id = %(actor_id)s",
                "issued_at = %(now)s",
                "lookup_code = COALESCE(hoc_ba.lookup_code, v.lookup_code)",
                "signed_xml = v.signed_xml",
                "xml_sha256 = v.xml_sha256",
            ),
            pending_xml="clear",
        ),
        Transition(
            "submit",
            "Gửi Sở",
            ("issued", "rejected"),
            "submitted",
            frozenset({"clerk", "system"}),
        ),
        Transition("accept", "Sở tiếp nhận", ("submitted",), "accepted", frozenset({"system"})),
        Transition(
            "reject",
            "Sở từ chối",
            ("submitted",),
            "rejected",
            frozenset({"system"}),
            needs_reason=True,
        ),
        Transition(
            "revoke",
            "Thu hồi",
            ("issued", "submitted", "accepted", "rejected"),
            "revoked",
            frozenset({"district_officer"}),
            needs_reason=True,
            sets=_KEEP_CONTENT,
        ),
        Transition(
            "supersede",
            "Được thay thế",
            ("revoked",),
            "superseded",
            frozenset({"system"}),
            sets=_KEEP_CONTENT,
        ),
    )
}


#: The signing transition of each signature slot of the record XML.
ACTION_OF_SLOT = {"GVCN": "teacher_sign", "CBQL": "principal_sign", "KY_PHAT_HANH": "seal"}


def waiting_state(slot: str) -> str:
    """The state a record waits in for ``slot``: the source state of the slot's signing
    transition in :data:`TRANSITIONS` (a signing transition has exactly one source)."""
    (source,) = TRANSITIONS[ACTION_OF_SLOT[slot]].sources
    return source


def claim_waiting(
    session: Session,
    slot: str,
    *,
    school_id: int | None = None,
    school_code: str | None = None,
    class_name: str | None = None,
    record_ids: Sequence[int] | None = None,
    exclude: Sequence[int] = (),
    own_classes: bool = False,
    teacher_id: int | None = None,
    limit: int | None = None,
) -> list[tuple[int, int | None]]:
    """Claim the records waiting for ``slot`` in a scope: ``(record id, homeroom teacher id)``.

    ARCHITECTURE rule 3: the records are locked ``FOR UPDATE SKIP LOCKED`` in id order, so
    two concurrent claims never return the same record (each takes what the other has not
    locked). The scope narrows by school (id or code), class name, the picked
    ``record_ids``, minus ``exclude``; ``own_classes`` keeps the classes of ``teacher_id``
    (every class that has a homeroom teacher when ``teacher_id`` is None); ``limit`` caps
    the claim. The locks hold until the caller's transaction ends.
    """
    rows = session.connection().execute(
        text(
            "SELECT r.id, c.homeroom_teacher_id FROM hoc_ba r "
            "JOIN school s ON s.id = r.school_id JOIN school_class c ON c.id = r.class_id "
            "WHERE r.state = :state "
            "AND (CAST(:school_id AS int) IS NULL OR r.school_id = :school_id) "
            "AND (CAST(:school_code AS text) IS NULL OR s.code = :school_code) "
            "AND (CAST(:class_name AS text) IS NULL OR c.name = :class_name) "
            "AND (CAST(:record_ids AS int[]) IS NULL OR r.id = ANY(:record_ids)) "
            "AND NOT (r.id = ANY(:exclude)) "
            "AND (NOT :own_classes "
            "OR c.homeroom_teacher_id = coalesce(:teacher_id, c.homeroom_teacher_id)) "
            "ORDER BY r.id LIMIT :limit FOR UPDATE OF r SKIP LOCKED"
        ),
        {
            "state": waiting_state(slot),
            "school_id": school_id,
            "school_code": school_code,
            "class_name": class_name,
            "record_ids": list(record_ids) if record_ids is not None else None,
            "exclude": list(exclude),
            "own_classes": own_classes,
            "teacher_id": teacher_id,
            "limit": limit,
        },
    )
    return [(rid, teacher) for rid, teacher in rows]


@dataclass
class BatchResult:
    """Per-record outcome of one transition over many records."""

    action: str
    ok: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)

    def summary(self) -> str:
        text_ = f"{len(self.ok)} thành công, {len(self.failed)} lỗi"
        if self.failed:
            reasons = sorted(set(self.failed.values()))
            text_ += ": " + "; ".join(reasons[:3]) + (" …" if len(reasons) > 3 else "")
        return text_


@dataclass(frozen=True)
class Grants:
    """The roles an actor holds on a date, resolved to the schools they cover."""

    system: bool
    admin: bool
    by_school: dict[int, frozenset[str]]

    def roles_at(self, school_id: int) -> frozenset[str]:
        roles = self.by_school.get(school_id, frozenset())
        return roles | {"system"} if self.system else roles


def load_grants(session: Session, actor: Actor, on: dt.date | None = None) -> Grants:
    """Resolve the actor's roles valid on ``on``: school roles directly, a district
    officer's role to every school below their unit (any depth)."""
    if actor.system or actor.staff_id is None:
        return Grants(system=True, admin=False, by_school={})
    on = on or dt.date.today()
    rows = (
        session.connection()
        .execute(
            text(
                """
            WITH RECURSIVE r AS (
                SELECT role, school_id, unit_id, delegated FROM staff_role sr
                JOIN staff s ON s.id = sr.staff_id AND s.active
                WHERE sr.staff_id = :sid AND sr.valid_from <= :on
                  AND (sr.valid_to IS NULL OR sr.valid_to >= :on)
            ), units AS (
                SELECT r.role, u.id AS unit_id FROM r JOIN org_unit u ON u.id = r.unit_id
                UNION
                SELECT units.role, c.id FROM units JOIN org_unit c ON c.parent_id = units.unit_id
            )
            SELECT role, school_id, delegated FROM r WHERE school_id IS NOT NULL
            UNION ALL
            SELECT units.role, s.id, false FROM units JOIN school s ON s.unit_id = units.unit_id
            UNION ALL
            SELECT role, NULL, false FROM r WHERE role = 'admin'
            """
            ),
            {"sid": actor.staff_id, "on": on},
        )
        .all()
    )
    by_school: dict[int, set[str]] = {}
    admin = False
    for role, school_id, delegated in rows:
        if role == "admin":
            admin = True
            continue
        if role == "vice_principal" and not delegated:
            continue  # a vice principal acts as CBQL only by delegation (ủy quyền)
        by_school.setdefault(school_id, set()).add(role)
    return Grants(
        system=False, admin=admin, by_school={k: frozenset(v) for k, v in by_school.items()}
    )


def _may(t: Transition, rec: RecordRow, actor: Actor, grants: Grants) -> bool:
    roles = grants.roles_at(rec.school_id) & t.roles
    if not roles:
        return False
    if roles == {"homeroom_teacher"}:
        return rec.homeroom_teacher_id is not None and rec.homeroom_teacher_id == actor.staff_id
    return True


def transition(
    session: Session,
    record_ids: Sequence[int],
    action: str,
    actor: Actor,
    *,
    reason: str | None = None,
    payloads: Mapping[int, Mapping[str, Any]] | None = None,
    now: dt.datetime | None = None,
    dry_run: bool = False,
) -> BatchResult:
    """Apply ``action`` to every record it is allowed for; report the rest per record.

    ``payloads`` carries per-record inputs (``signed_xml`` for signing and sealing).
    With ``dry_run`` the records are locked and checked (state, permission, guards on the
    record) but nothing changes: signing uses it to sign only what may be signed.
    Runs in the caller's transaction: nothing is committed here.
    """
    t = TRANSITIONS.get(action)
    if t is None:
        raise TransitionError(f"Thao tác không tồn tại: {action!r}.")
    reason = (reason or "").strip() or None
    if t.needs_reason and not reason and not dry_run:
        raise TransitionError(f"Thao tác «{t.label}» cần ghi rõ lý do.")
    payloads = payloads or {}
    now = now or dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        raise TransitionError("Thời điểm thao tác phải có múi giờ.")
    result = BatchResult(action)
    ids = sorted(set(record_ids))
    if not ids:
        return result
    conn = session.connection()
    rows = conn.execute(
        text(
            """
            SELECT r.id, r.state, r.school_id, s.code AS school_code, r.class_id,
                   c.homeroom_teacher_id, r.flags
            FROM hoc_ba r JOIN school s ON s.id = r.school_id
            JOIN school_class c ON c.id = r.class_id
            WHERE r.id = ANY(:ids) ORDER BY r.id FOR UPDATE OF r
            """
        ),
        {"ids": ids},
    ).all()
    found = {row.id: RecordRow(*row) for row in rows}
    grants = load_grants(session, actor, now.astimezone(VN_TZ).date())  # roles by local date
    allowed: list[RecordRow] = []
    for rid in ids:
        rec = found.get(rid)
        if rec is None:
            result.failed[rid] = f"Không tìm thấy học bạ #{rid}."
            continue
        if rec.state not in t.sources:
            result.failed[rid] = (
                f"Học bạ #{rid} đang ở trạng thái «{STATE_LABELS[rec.state]}», không thể "
                f"«{t.label}» (có thể người khác vừa thao tác; hãy tải lại)."
            )
            continue
        if not _may(t, rec, actor, grants):
            result.failed[rid] = f"{actor.name} không có quyền «{t.label}» với học bạ #{rid}."
            continue
        payload = payloads.get(rid, {})
        guards = t.guards if dry_run else (*t.guards, *t.payload_guards)
        problem = next((p for g in guards if (p := g(rec, payload))), None)
        if problem:
            result.failed[rid] = problem
            continue
        allowed.append(rec)
    if dry_run:
        result.ok = [rec.id for rec in allowed]
        return result
    if not allowed:
        return result

    params = [_params(t, rec, payloads.get(rec.id, {})) for rec in allowed]
    _update_records(conn, t, params, actor, reason, now)
    _store_pending_xml(conn, t, params)
    audit.append(
        session,
        [
            actor.event(
                rec.school_code,
                action,
                record_id=rec.id,
                from_state=rec.state,
                to_state=t.target,
                reason=reason,
                payload=_event_payload(p),
            )
            for rec, p in zip(allowed, params, strict=True)
        ],
        at=now,
    )
    result.ok = [rec.id for rec in allowed]
    return result


#: The per-record values a transition's ``sets`` may use (``v.<name>``), with their types.
_PER_RECORD = {"lookup_code": "uuid", "signed_xml": "bytea", "xml_sha256": "text"}


def _update_records(
    conn: Any,
    t: Transition,
    params: list[dict[str, Any]],
    actor: Actor,
    reason: str | None,
    now: dt.datetime,
) -> None:
    """One UPDATE for the whole batch, the per-record values as arrays
    (:func:`hocba.db.unnest_rows`): PostgreSQL plans and runs one statement instead of one
    per record. hoc_ba keeps the issued XML with its certificates by reference
    (:mod:`hocba.models.stored_xml`)."""
    sets = ", ".join(("state = %(to_state)s", "state_changed_at = %(now)s", *t.sets))
    used = [(c, sql_type) for c, sql_type in _PER_RECORD.items() if f"v.{c}" in sets]
    if any(c == "signed_xml" for c, _ in used):
        packed = stored_xml.pack(conn, [p["signed_xml"] for p in params])
        params = [{**p, "signed_xml": x} for p, x in zip(params, packed, strict=True)]
    rows, arrays = unnest_rows(params, [("id", "int"), *used])
    conn.execute(text("SELECT set_config('hocba.lifecycle', 'on', true)"))
    conn.exec_driver_sql(
        f"UPDATE hoc_ba SET {sets} FROM {rows} WHERE hoc_ba.id = v.id",
        {
            **arrays,
            "to_state": t.target,
            "now": now,
            "actor_id": actor.staff_id,
            "reason": reason,
        },
    )
    conn.execute(text("SELECT set_config('hocba.lifecycle', 'off', true)"))


def _store_pending_xml(conn: Any, t: Transition, params: list[dict[str, Any]]) -> None:
    """A partly signed XML (GVCN, then CBQL) lives in ``hoc_ba_signing`` until the seal
    writes the issued one into ``hoc_ba.signed_xml``: each signature no longer leaves a
    dead copy of the whole document in ``hoc_ba``'s TOAST table (migration 0014)."""
    if t.pending_xml == "write":
        written = [p for p in params if p["signed_xml"]]
        if written:
            rows, arrays = unnest_rows(written, [("id", "int"), ("signed_xml", "bytea")])
            conn.exec_driver_sql(
                "INSERT INTO hoc_ba_signing (record_id, signed_xml) "
                f"SELECT id, signed_xml FROM {rows} "
                "ON CONFLICT (record_id) DO UPDATE SET signed_xml = excluded.signed_xml",
                arrays,
            )
    elif t.pending_xml == "clear":
        conn.execute(
            text("DELETE FROM hoc_ba_signing WHERE record_id = ANY(:ids)"),
            {"ids": [p["id"] for p in params]},
        )


def transition_one(session: Session, record_id: int, action: str, actor: Actor, **kw: Any) -> None:
    """Like :func:`transition` for one record; raises :class:`TransitionError` on refusal."""
    res = transition(session, [record_id], action, actor, **kw)
    if res.failed:
        raise TransitionError(res.failed[record_id], res.failed)


def _params(t: Transition, rec: RecordRow, payload: Mapping[str, Any]) -> dict[str, Any]:
    """A record's own values of the transition (the ``v.<column>`` of its ``sets``)."""
    xml: bytes | None = payload.get("signed_xml")
    p: dict[str, Any] = {"id": rec.id, "signed_xml": xml}
    if t.action in ("teacher_sign", "seal"):
        # reserved before the first signature: the code is inside the signed data
        code = payload.get("lookup_code")
        p["lookup_code"] = uuid.UUID(str(code)) if code else uuid.uuid4()  # one array type
    if t.action == "seal":
        p["xml_sha256"] = hashlib.sha256(xml or b"").hexdigest()
    return p


def _event_payload(p: Mapping[str, Any]) -> dict[str, Any]:
    """What of a transition's inputs the audit log keeps (never XML bodies or secrets)."""
    out: dict[str, Any] = {}
    if p.get("lookup_code"):
        out["lookup_code"] = str(p["lookup_code"])
    if p.get("xml_sha256"):
        out["xml_sha256"] = p["xml_sha256"]
    elif p.get("signed_xml"):
        out["xml_sha256"] = hashlib.sha256(p["signed_xml"]).hexdigest()
    return out
