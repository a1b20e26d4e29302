"""Notifications in the database: where records stand, the channels, the delivery log.

Three jobs, all plain SQL over the app schema (migration 0006):

- :func:`snapshot` reads, in one consistent pass, where every record of every *open*
  cohort stands (a cohort is open from ``window_days`` before its deadline until
  ``overdue_days`` after it): counts per school, cohort and class, who holds which role,
  and from the audit log the last progress and the recent signing rate. What to tell whom
  is decided from it by pure code (``hocba.notify.decide``).
- :func:`write_planned` logs the decided messages. ``dedupe_key`` (kind, recipient, local
  date) is unique, so a message of a kind reaches a person at most once a day however
  often the flow runs; unsent messages that no longer match the plan (the work is done,
  or a newer day replaced them) are closed as ``gave_up``.
- the delivery side: which recipients have messages due, claiming them row-locked
  (``FOR UPDATE SKIP LOCKED``: two workers never send the same message), recording the
  outcome, and :func:`notification_log` for the dashboard.

Channel URLs (Apprise URLs, possibly with passwords or tokens) are read here only to
send; anything that displays them goes through ``hocba.notify.list_channels``,
which masks them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlmodel import Session

from hocba.models.calendar import DEADLINE_SQL
from hocba.models.lifecycle import BLOCKING_FLAGS

KINDS: tuple[str, ...] = (
    "teacher_pending",
    "principal_queue",
    "clerk_pending",
    "clerk_rejected",
    "district_at_risk",
    "district_digest",
    "escalation_principal",
    "escalation_district",
    "test",
)
KIND_LABELS: dict[str, str] = {
    "teacher_pending": "Nhắc GVCN: học bạ chờ kiểm tra/ký",
    "principal_queue": "Nhắc Hiệu trưởng: hàng chờ ký",
    "clerk_pending": "Nhắc văn thư: chờ đóng dấu/gửi Sở",
    "clerk_rejected": "Sở từ chối học bạ",
    "district_at_risk": "Trường có nguy cơ trễ hạn",
    "district_digest": "Tổng hợp tuần của Phòng",
    "escalation_principal": "Báo Hiệu trưởng: trường chưa có tiến độ",
    "escalation_district": "Báo Phòng: trường chưa có tiến độ",
    "test": "Tin nhắn thử",
}
STATUSES: tuple[str, ...] = ("pending", "sent", "failed", "gave_up")
STATUS_LABELS: dict[str, str] = {
    "pending": "Chờ gửi",
    "sent": "Đã gửi",
    "failed": "Lỗi, sẽ thử lại",
    "gave_up": "Không gửi",
}

#: A record counts as done for its deadline once the school has issued it (and the portal
#: has not refused it).
DONE_STATES = ("issued", "submitted", "accepted")
#: Audit actions that move a record forward: the school is making progress.
PROGRESS_ACTIONS = ("approve", "teacher_sign", "principal_sign", "seal", "submit")
#: The signatures of a record (GVCN, CBQL, school seal): the "signing rate" counts them.
SIGNING_ACTIONS = ("teacher_sign", "principal_sign", "seal")
#: Signatures a record in each state still needs before it is issued.
SIGNATURES_LEFT: dict[str, int] = {
    "draft": 3,
    "in_review": 3,
    "reviewed": 3,
    "teacher_signed": 2,
    "principal_signed": 1,
}


@dataclass(frozen=True)
class CohortFacts:
    """Where one cohort of one school year stands at one school."""

    school_id: int
    school_code: str
    school_name: str
    unit_id: int
    school_year: str
    cohort: str
    due: dt.date
    total: int
    to_review: int  # draft or in_review: waiting for the homeroom teacher's review
    to_sign: int  # reviewed: waiting for the homeroom teacher's signature
    principal_queue: int  # teacher_signed: waiting for the principal
    to_seal: int  # principal_signed: waiting for the clerk's seal
    to_submit: int  # issued: waiting for the submission to the Sở portal
    rejected: int  # refused by the portal: to fix and submit again
    done: int
    first_created: dt.datetime | None
    oldest_queue_at: dt.datetime | None
    oldest_queue_class: str | None
    last_progress: dt.datetime | None = None
    signatures_recent: int = 0
    reject_reasons: tuple[tuple[str, int], ...] = ()

    @property
    def remaining(self) -> int:
        return self.total - self.done

    @property
    def signatures_left(self) -> int:
        return 3 * (self.to_review + self.to_sign) + 2 * self.principal_queue + 1 * self.to_seal


@dataclass(frozen=True)
class ClassFacts:
    """The records of one class waiting for its homeroom teacher."""

    school_id: int
    school_year: str
    cohort: str
    due: dt.date
    class_id: int
    class_name: str
    teacher_id: int
    teacher_name: str
    to_review: int
    blocked: int  # of to_review: records with a blocking TT27 flag to fix first
    to_sign: int


@dataclass(frozen=True)
class Person:
    """A staff member holding a role at a school or an org unit."""

    staff_id: int
    username: str
    full_name: str
    role: str
    school_id: int | None = None
    unit_id: int | None = None
    delegated: bool = False


@dataclass(frozen=True)
class Unit:
    id: int
    code: str
    name: str
    school_ids: frozenset[int]


@dataclass
class Snapshot:
    """Everything the decision needs, read at one time."""

    today: dt.date
    now: dt.datetime
    cohorts: list[CohortFacts] = field(default_factory=list)
    classes: list[ClassFacts] = field(default_factory=list)
    people: list[Person] = field(default_factory=list)
    units: list[Unit] = field(default_factory=list)


@dataclass(frozen=True)
class Planned:
    """A message decided for one recipient (a staff member or an Apprise config tag)."""

    kind: str
    subject: str
    body: str
    link: str | None
    staff_id: int | None = None
    tag: str | None = None
    school_id: int | None = None
    unit_id: int | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    #: do not repeat a message of this kind to this recipient within this many days
    min_interval_days: int = 1

    @property
    def recipient(self) -> str:
        return recipient_key(self.staff_id, self.tag)


def recipient_key(staff_id: int | None, tag: str | None) -> str:
    if (staff_id is None) == (tag is None):
        raise ValueError("notification: cần đúng một người nhận (staff_id hoặc tag)")
    return f"staff:{staff_id}" if staff_id is not None else f"tag:{tag}"


def dedupe_key(kind: str, recipient: str, day: dt.date) -> str:
    return f"{kind}|{recipient}|{day.isoformat()}"


# --------------------------------------------------------------------------- snapshot
_OPEN_RECORDS = f"""
    WITH live AS (
        SELECT r.id, r.school_id, r.school_year_id, r.cohort, r.state, r.class_id,
               r.state_changed_at, r.created_at, r.flags, y.name AS year_name,
               {DEADLINE_SQL} AS due
        FROM hoc_ba r JOIN school s ON s.id = r.school_id
        JOIN school_year y ON y.id = r.school_year_id
        WHERE r.state NOT IN ('revoked', 'superseded')
    ), o AS (
        SELECT * FROM live
        WHERE due BETWEEN CAST(:today AS date) - CAST(:overdue AS int)
                      AND CAST(:today AS date) + CAST(:window AS int)
    )
"""


def snapshot(
    session: Session,
    today: dt.date,
    now: dt.datetime,
    *,
    window_days: int = 45,
    overdue_days: int = 60,
    rate_window_days: int = 7,
) -> Snapshot:
    """Read where the records of every open cohort stand on ``today`` (events up to ``now``)."""
    conn = session.connection()
    p: dict[str, Any] = {"today": today, "window": window_days, "overdue": overdue_days}
    rows = conn.execute(
        text(
            _OPEN_RECORDS
            + """
            SELECT o.school_id, s.code, s.name, s.unit_id, o.school_year_id, o.year_name,
                   o.cohort, o.due, count(*) AS total,
                   count(*) FILTER (WHERE o.state IN ('draft', 'in_review')) AS to_review,
                   count(*) FILTER (WHERE o.state = 'reviewed') AS to_sign,
                   count(*) FILTER (WHERE o.state = 'teacher_signed') AS principal_queue,
                   count(*) FILTER (WHERE o.state = 'principal_signed') AS to_seal,
                   count(*) FILTER (WHERE o.state = 'issued') AS to_submit,
                   count(*) FILTER (WHERE o.state = 'rejected') AS rejected,
                   count(*) FILTER (WHERE o.state IN ('issued', 'submitted', 'accepted'))
                       AS done,
                   min(o.created_at) AS first_created,
                   min(o.state_changed_at) FILTER (WHERE o.state = 'teacher_signed')
                       AS oldest_queue_at,
                   (array_agg(c.name ORDER BY o.state_changed_at, o.id)
                       FILTER (WHERE o.state = 'teacher_signed'))[1] AS oldest_queue_class
            FROM o JOIN school s ON s.id = o.school_id JOIN school_class c ON c.id = o.class_id
            GROUP BY o.school_id, s.code, s.name, s.unit_id, o.school_year_id, o.year_name,
                     o.cohort, o.due
            ORDER BY s.code, o.year_name, o.cohort
            """
        ),
        p,
    ).mappings()
    cohort_rows = [dict(r) for r in rows]
    activity = {
        (r.school_id, r.school_year_id, r.cohort): (r.last_progress, r.signatures_recent)
        for r in conn.execute(
            text(
                _OPEN_RECORDS
                + """
                SELECT o.school_id, o.school_year_id, o.cohort,
                       max(e.at) FILTER (WHERE e.action = ANY(:progress)) AS last_progress,
                       count(*) FILTER (WHERE e.action = ANY(:signing) AND e.at > :since)
                           AS signatures_recent
                FROM audit_event e JOIN o ON o.id = e.record_id
                WHERE e.at <= :now AND e.action = ANY(:progress)
                GROUP BY o.school_id, o.school_year_id, o.cohort
                """
            ),
            {
                **p,
                "now": now,
                "since": now - dt.timedelta(days=rate_window_days),
                "progress": list(PROGRESS_ACTIONS),
                "signing": list(SIGNING_ACTIONS),
            },
        )
    }
    reasons: dict[tuple[int, int, str], list[tuple[str, int]]] = {}
    for r in conn.execute(
        text(
            _OPEN_RECORDS
            + """
            SELECT o.school_id, o.school_year_id, o.cohort,
                   COALESCE(ev.reason, 'không rõ lý do') AS reason, count(*) AS n
            FROM o LEFT JOIN LATERAL (
                SELECT e.reason FROM audit_event e
                WHERE e.record_id = o.id AND e.action = 'reject'
                ORDER BY e.at DESC, e.seq DESC LIMIT 1
            ) ev ON true
            WHERE o.state = 'rejected'
            GROUP BY 1, 2, 3, 4 ORDER BY n DESC, reason
            """
        ),
        p,
    ):
        reasons.setdefault((r.school_id, r.school_year_id, r.cohort), []).append(
            (str(r.reason), int(r.n))
        )
    cohorts = []
    for row in cohort_rows:
        key = (row["school_id"], row["school_year_id"], row["cohort"])
        last_progress, recent = activity.get(key, (None, 0))
        cohorts.append(
            CohortFacts(
                school_id=row["school_id"],
                school_code=row["code"],
                school_name=row["name"],
                unit_id=row["unit_id"],
                school_year=row["year_name"],
                cohort=row["cohort"],
                due=row["due"],
                total=row["total"],
                to_review=row["to_review"],
                to_sign=row["to_sign"],
                principal_queue=row["principal_queue"],
                to_seal=row["to_seal"],
                to_submit=row["to_submit"],
                rejected=row["rejected"],
                done=row["done"],
                first_created=row["first_created"],
                oldest_queue_at=row["oldest_queue_at"],
                oldest_queue_class=row["oldest_queue_class"],
                last_progress=last_progress,
                signatures_recent=int(recent or 0),
                reject_reasons=tuple(reasons.get(key, ())),
            )
        )
    classes = [
        ClassFacts(**dict(r))
        for r in conn.execute(
            text(
                _OPEN_RECORDS
                + """
                SELECT o.school_id, o.year_name AS school_year, o.cohort, o.due,
                       o.class_id, c.name AS class_name, st.id AS teacher_id,
                       st.full_name AS teacher_name,
                       count(*) FILTER (WHERE o.state IN ('draft', 'in_review')) AS to_review,
                       count(*) FILTER (WHERE o.state IN ('draft', 'in_review') AND EXISTS (
                           SELECT 1 FROM jsonb_array_elements(o.flags) f
                           WHERE f->>'code' = ANY(:blocking))) AS blocked,
                       count(*) FILTER (WHERE o.state = 'reviewed') AS to_sign
                FROM o JOIN school_class c ON c.id = o.class_id
                JOIN staff st ON st.id = c.homeroom_teacher_id AND st.active
                WHERE o.state IN ('draft', 'in_review', 'reviewed')
                GROUP BY o.school_id, o.year_name, o.cohort, o.due, o.class_id, c.name, st.id,
                         st.full_name
                ORDER BY st.id, c.name, o.cohort
                """
            ),
            {**p, "blocking": sorted(BLOCKING_FLAGS)},
        ).mappings()
    ]
    people = [
        Person(**dict(r))
        for r in conn.execute(
            text(
                """
                SELECT st.id AS staff_id, st.username, st.full_name, sr.role, sr.school_id,
                       sr.unit_id, sr.delegated
                FROM staff_role sr JOIN staff st ON st.id = sr.staff_id AND st.active
                WHERE sr.valid_from <= :today AND (sr.valid_to IS NULL OR sr.valid_to >= :today)
                  AND sr.role IN ('principal', 'vice_principal', 'clerk', 'district_officer')
                ORDER BY st.id, sr.role, sr.school_id, sr.unit_id
                """
            ),
            {"today": today},
        ).mappings()
    ]
    under: dict[int, set[int]] = {}
    for root, school_id in conn.execute(
        text(
            """
            WITH RECURSIVE down AS (
                SELECT id AS root, id FROM org_unit
                UNION ALL
                SELECT d.root, c.id FROM down d JOIN org_unit c ON c.parent_id = d.id
            )
            SELECT d.root, s.id FROM down d JOIN school s ON s.unit_id = d.id
            """
        )
    ):
        under.setdefault(root, set()).add(school_id)
    units = [
        Unit(uid, code, name, frozenset(under[uid]))
        for uid, code, name in conn.execute(text("SELECT id, code, name FROM org_unit ORDER BY id"))
        if uid in under
    ]
    return Snapshot(today, now, cohorts, classes, people, units)


# --------------------------------------------------------------------------- the log
@dataclass
class WriteReport:
    created: int = 0
    duplicates: int = 0  # already logged today (the one-per-day rule)
    too_soon: int = 0  # logged within the kind's interval on an earlier day
    closed: int = 0  # unsent messages closed: work done, or replaced by a newer day


def write_planned(
    session: Session,
    planned: Sequence[Planned],
    today: dt.date,
    now: dt.datetime,
    first_attempt_at: dt.datetime,
) -> WriteReport:
    """Log ``planned`` for ``today`` (dedupe), close unsent messages no longer planned."""
    conn = session.connection()
    report = WriteReport()
    keys = {dedupe_key(p.kind, p.recipient, today) for p in planned}
    closed = conn.execute(
        text(
            """
            UPDATE notification SET status = 'gave_up',
                last_error = CASE WHEN local_date < :today
                    THEN 'Đã thay bằng thông báo của ngày mới hơn (hoặc không còn việc cần nhắc)'
                    ELSE 'Không còn việc cần nhắc: công việc đã xong' END
            WHERE status IN ('pending', 'failed') AND kind <> 'test'
              AND (local_date < :today OR NOT (dedupe_key = ANY(:keys)))
            """
        ),
        {"today": today, "keys": sorted(keys)},
    )
    report.closed = closed.rowcount or 0
    for p in planned:
        key = dedupe_key(p.kind, p.recipient, today)
        if p.min_interval_days > 1:
            recent = conn.scalar(
                text(
                    """
                    SELECT 1 FROM notification WHERE kind = :kind
                      AND staff_id IS NOT DISTINCT FROM :staff AND tag IS NOT DISTINCT FROM :tag
                      AND local_date < :today AND local_date > :today - CAST(:days AS int)
                      AND status <> 'gave_up' LIMIT 1
                    """
                ),
                {
                    "kind": p.kind,
                    "staff": p.staff_id,
                    "tag": p.tag,
                    "today": today,
                    "days": p.min_interval_days,
                },
            )
            if recent:
                report.too_soon += 1
                continue
        inserted = _insert(conn, p, today, key, first_attempt_at, now, skip_duplicate=True)
        if inserted is None:
            report.duplicates += 1
        else:
            report.created += 1
    return report


def insert_message(
    session: Session, p: Planned, today: dt.date, now: dt.datetime, unique: str
) -> int:
    """Log one message outside the daily plan (a test message); ``unique`` makes its key."""
    key = f"{p.kind}|{p.recipient}|{unique}"
    inserted = _insert(session.connection(), p, today, key, now, now, skip_duplicate=False)
    assert inserted is not None  # without ON CONFLICT, INSERT … RETURNING returns the row
    return inserted


def _insert(
    conn: Connection,
    p: Planned,
    today: dt.date,
    key: str,
    next_attempt_at: dt.datetime,
    now: dt.datetime,
    *,
    skip_duplicate: bool,
) -> int | None:
    """Log one message, pending, first tried at ``next_attempt_at``; its id. With
    ``skip_duplicate``, ``None`` when a message with the same ``key`` is already logged."""
    conflict = "ON CONFLICT (dedupe_key) DO NOTHING" if skip_duplicate else ""
    return conn.scalar(
        text(
            f"""
            INSERT INTO notification (staff_id, tag, kind, local_date, dedupe_key, school_id,
                unit_id, subject, body, link, facts, status, attempts, next_attempt_at,
                created_at)
            VALUES (:staff, :tag, :kind, :today, :key, :school, :unit, :subject, :body,
                :link, CAST(:facts AS jsonb), 'pending', 0, :next, :now)
            {conflict} RETURNING id
            """
        ),
        {
            "staff": p.staff_id,
            "tag": p.tag,
            "kind": p.kind,
            "today": today,
            "key": key,
            "school": p.school_id,
            "unit": p.unit_id,
            "subject": p.subject,
            "body": p.body,
            "link": p.link,
            "facts": json.dumps(p.facts, ensure_ascii=False, default=str),
            "next": next_attempt_at,
            "now": now,
        },
    )


@dataclass(frozen=True)
class DueMessage:
    id: int
    kind: str
    staff_id: int | None
    tag: str | None
    subject: str
    body: str
    link: str | None
    attempts: int


def due_recipients(session: Session, now: dt.datetime) -> list[tuple[int | None, str | None]]:
    """(staff_id, tag) of every recipient with a message due at ``now``."""
    return [
        (r.staff_id, r.tag)
        for r in session.connection().execute(
            text(
                """
                SELECT DISTINCT staff_id, tag FROM notification
                WHERE status IN ('pending', 'failed') AND next_attempt_at <= :now
                ORDER BY staff_id NULLS LAST, tag
                """
            ),
            {"now": now},
        )
    ]


def claim_due(
    session: Session, staff_id: int | None, tag: str | None, now: dt.datetime
) -> list[DueMessage]:
    """Lock the recipient's due messages (SKIP LOCKED: another worker has them)."""
    return [
        DueMessage(*r)
        for r in session.connection().execute(
            text(
                """
                SELECT id, kind, staff_id, tag, subject, body, link, attempts FROM notification
                WHERE status IN ('pending', 'failed') AND next_attempt_at <= :now
                  AND staff_id IS NOT DISTINCT FROM :staff AND tag IS NOT DISTINCT FROM :tag
                ORDER BY id FOR UPDATE SKIP LOCKED
                """
            ),
            {"now": now, "staff": staff_id, "tag": tag},
        )
    ]


def record_outcome(
    session: Session,
    ids: Iterable[int],
    *,
    status: str,
    now: dt.datetime,
    error: str | None = None,
    next_attempt_at: dt.datetime | None = None,
    count_attempt: bool = True,
) -> None:
    """Store the outcome of one delivery of ``ids`` (they went out as one message)."""
    if status not in STATUSES:
        raise ValueError(f"notification: trạng thái không hợp lệ {status!r}")
    session.connection().execute(
        text(
            """
            UPDATE notification SET status = CAST(:status AS text), last_error = :error,
                attempts = attempts + CAST(:inc AS int), next_attempt_at = :next,
                sent_at = CASE WHEN CAST(:status AS text) = 'sent'
                               THEN CAST(:now AS timestamptz) ELSE sent_at END
            WHERE id = ANY(:ids)
            """
        ),
        {
            "status": status,
            "error": error,
            "inc": 1 if count_attempt else 0,
            "next": next_attempt_at,
            "now": now,
            "ids": list(ids),
        },
    )


def retry_now(session: Session, notification_id: int, now: dt.datetime) -> bool:
    """Put a failed or abandoned message back in the queue (the dashboard's "gửi lại")."""
    res = session.connection().execute(
        text(
            """
            UPDATE notification SET status = 'pending', attempts = 0, next_attempt_at = :now,
                last_error = NULL
            WHERE id = :id AND status IN ('failed', 'gave_up')
            """
        ),
        {"id": notification_id, "now": now},
    )
    return bool(res.rowcount)


# --------------------------------------------------------------------------- channels
def insert_channel(session: Session, staff_id: int, apprise_url: str, kind: str) -> int:
    """Store a channel (or re-activate the same URL); returns its id."""
    return int(
        session.connection().scalar(
            text(
                """
                INSERT INTO notification_channel (staff_id, apprise_url, kind, active)
                VALUES (:s, :u, :k, true)
                ON CONFLICT (staff_id, apprise_url) DO UPDATE SET active = true,
                    kind = excluded.kind
                RETURNING id
                """
            ),
            {"s": staff_id, "u": apprise_url, "k": kind},
        )
    )


def set_channel_active(session: Session, channel_id: int, active: bool) -> None:
    session.connection().execute(
        text("UPDATE notification_channel SET active = :a WHERE id = :id"),
        {"a": active, "id": channel_id},
    )


def channel_rows(session: Session, staff_id: int, active_only: bool = True) -> list[dict[str, Any]]:
    """The channels of a staff member, URLs in clear: for sending and masking only."""
    rows = session.connection().execute(
        text(
            """
            SELECT id, staff_id, apprise_url, kind, active, created_at
            FROM notification_channel
            WHERE staff_id = :s AND (active OR NOT :active_only) ORDER BY id
            """
        ),
        {"s": staff_id, "active_only": active_only},
    )
    return [dict(r) for r in rows.mappings()]


def staff_info(session: Session, staff_id: int) -> dict[str, Any] | None:
    row = (
        session.connection()
        .execute(
            text("SELECT id, username, full_name, active FROM staff WHERE id = :s"),
            {"s": staff_id},
        )
        .mappings()
        .one_or_none()
    )
    return dict(row) if row else None


# --------------------------------------------------------------------------- the dashboard
def notification_log(
    session: Session,
    *,
    staff_ids: Sequence[int] | None = None,
    school_ids: Sequence[int] | None = None,
    unit_ids: Sequence[int] | None = None,
    statuses: Sequence[str] | None = None,
    kinds: Sequence[str] | None = None,
    since: dt.date | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """The delivery log, newest first, within a scope.

    The scope is the union of what is given: messages *to* ``staff_ids``, messages about
    ``school_ids``, and district messages of ``unit_ids``; nothing given = everything (the
    administrator). ``statuses`` (e.g. ``["failed", "gave_up"]`` for the failed-delivery
    list), ``kinds`` and ``since`` (local date) filter further.
    """
    scoped = any(x is not None for x in (staff_ids, school_ids, unit_ids))
    rows = (
        session.connection()
        .execute(
            text(
                """
            SELECT n.id, n.created_at, n.local_date, n.kind, n.staff_id, st.username,
                   st.full_name AS staff_name, n.tag, n.school_id, s.code AS school_code,
                   n.unit_id, u.code AS unit_code, n.subject, n.body, n.link, n.facts,
                   n.status, n.attempts, n.next_attempt_at, n.last_error, n.sent_at
            FROM notification n LEFT JOIN staff st ON st.id = n.staff_id
            LEFT JOIN school s ON s.id = n.school_id LEFT JOIN org_unit u ON u.id = n.unit_id
            WHERE (NOT :scoped OR n.staff_id = ANY(:staff) OR n.school_id = ANY(:schools)
                   OR n.unit_id = ANY(:units))
              AND (CAST(:statuses AS text[]) IS NULL OR n.status = ANY(:statuses))
              AND (CAST(:kinds AS text[]) IS NULL OR n.kind = ANY(:kinds))
              AND (CAST(:since AS date) IS NULL OR n.local_date >= :since)
            ORDER BY n.created_at DESC, n.id DESC LIMIT :limit
            """
            ),
            {
                "scoped": scoped,
                "staff": list(staff_ids or []),
                "schools": list(school_ids or []),
                "units": list(unit_ids or []),
                "statuses": list(statuses) if statuses is not None else None,
                "kinds": list(kinds) if kinds is not None else None,
                "since": since,
                "limit": limit,
            },
        )
        .mappings()
    )
    out = []
    for r in rows:
        d = dict(r)
        d["kind_label"] = KIND_LABELS.get(d["kind"], d["kind"])
        d["status_label"] = STATUS_LABELS.get(d["status"], d["status"])
        d["recipient"] = d["staff_name"] or f"tag {d['tag']}"
        out.append(d)
    return out
