"""Notifications: who must be told what about the deadlines, in Vietnamese, through Apprise.

The pure core (no database, no network) is :func:`decide`: from a
:class:`~hocba.models.notifications.Snapshot` of where the records stand it decides the
messages of the day: homeroom teachers (their class's records to review or sign),
principals (their signing queue), clerks (to seal, to submit, refused by the portal),
district officers (schools at risk or late with a projection, a weekly digest) and the
escalations (a school without progress close to a deadline → its principal, later the
district). Every message says what is waiting, how many, by when ("còn N ngày đến hạn
15/6") and links to the dashboard page where it is done. Messages carry counts, class and
school names only: never a pupil's name or personal ID (Nghị định 13/2023).

Rules against spam (docs/NOTIFICATIONS.md): one message of a kind per recipient per
local day (the log's unique ``dedupe_key``), weekly rather than daily while the deadline
is far, nothing once the work is done, quiet hours (queued, sent at the first run after
them), and one message per recipient per run: everything due for a person goes out as
one digest. Failed deliveries are retried with exponential backoff across runs, then
given up and shown in the dashboard's log.

Delivery goes through Apprise: each staff member's channels (``notification_channel``,
one Apprise URL each) plus, from the Apprise configuration file, the URLs tagged
``staff-<username>``; district-level messages also go to the URLs tagged
``unit-<unit code>`` (district-wide defaults, e.g. the office's shared mailbox).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlencode, urlsplit

from sqlmodel import Session

from hocba.config import default, load_settings
from hocba.errors import HocbaError
from hocba.models import notifications as nm
from hocba.models.lifecycle import VN_TZ
from hocba.models.lifecycle_states import COHORT_LABELS
from hocba.models.notifications import CohortFacts, Person, Planned, Snapshot
from hocba.models.projection import project_completion

log = logging.getLogger(__name__)

#: Dashboard pages the messages link to (Streamlit ``url_path`` under ``HOCBA_BASE_URL``;
#: the query parameters ``truong``, ``lop``, ``don_vi`` preselect the school, class, unit).
PAGES: dict[str, str] = {
    "teacher": "/lop_cua_toi",
    "principal": "/hang_cho_ky",
    "clerk": "/dong_dau",
    "district": "/huyen",
    "log": "/thong_bao",
}
FOOTER = "— Hệ thống Học bạ số (tin nhắn tự động, tối đa một lần mỗi ngày cho mỗi loại)."
STATUS_TEXT = {"late": "Trễ hạn", "at_risk": "Nguy cơ trễ", "on_track": "Đúng tiến độ"}


class NotifyError(HocbaError, ValueError):
    """A notification setting or channel is wrong; the message (Vietnamese) says what."""


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class NotifySettings:
    """What varies by place (ARCHITECTURE rule 7); every field has an environment
    variable ``HOCBA_NOTIFY_<FIELD>`` (see docs/NOTIFICATIONS.md), whose default (in
    :data:`hocba.config.VARS`) is the field's."""

    base_url: str = default("HOCBA_BASE_URL")
    #: Apprise configuration file (YAML/TEXT) with tagged, district-wide URLs
    apprise_config: Path | None = None
    #: quiet hours, local time (Asia/Ho_Chi_Minh); None = no quiet hours
    quiet_start: dt.time | None = default("HOCBA_NOTIFY_QUIET_HOURS")[0]
    quiet_end: dt.time | None = default("HOCBA_NOTIFY_QUIET_HOURS")[1]
    #: a cohort is watched from this many days before its deadline …
    window_days: int = default("HOCBA_NOTIFY_WINDOW_DAYS")
    #: … until this many days after it
    overdue_days: int = default("HOCBA_NOTIFY_OVERDUE_DAYS")
    #: reminders are weekly before this many days are left, daily from then on
    daily_from_days: int = default("HOCBA_NOTIFY_DAILY_FROM_DAYS")
    #: the recent signing rate is measured over this many days
    rate_window_days: int = default("HOCBA_NOTIFY_RATE_WINDOW_DAYS")
    #: with no signature recently, a cohort is at risk when its deadline is this close
    idle_risk_days: int = default("HOCBA_NOTIFY_IDLE_RISK_DAYS")
    #: escalations happen in the last M weeks before a deadline (and after it) …
    escalation_weeks: int = default("HOCBA_NOTIFY_ESCALATION_WEEKS")
    #: … to the principal after N days without progress …
    escalate_principal_days: int = default("HOCBA_NOTIFY_ESCALATE_PRINCIPAL_DAYS")
    #: … and to the district after this many days without progress
    escalate_district_days: int = default("HOCBA_NOTIFY_ESCALATE_DISTRICT_DAYS")
    #: the district's weekly digest goes out on this ISO weekday (1 = Thứ Hai … 7 = Chủ nhật)
    digest_weekday: int = default("HOCBA_NOTIFY_DIGEST_WEEKDAY")
    #: a failing message is tried this many times, then given up
    max_attempts: int = default("HOCBA_NOTIFY_MAX_ATTEMPTS")
    #: backoff after the n-th failure: backoff_minutes × 2^(n-1)
    backoff_minutes: int = default("HOCBA_NOTIFY_BACKOFF_MINUTES")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NotifySettings:
        """From ``HOCBA_BASE_URL``, ``HOCBA_APPRISE_CONFIG`` and ``HOCBA_NOTIFY_*`` (each
        checked by :func:`hocba.config.load_settings`)."""
        base = load_settings(environ)
        values: dict[str, Any] = {"base_url": base.base_url, "apprise_config": base.apprise_config}
        if base.apprise_config is None and (base.home / "apprise.yml").is_file():
            values["apprise_config"] = base.home / "apprise.yml"
        values["quiet_start"], values["quiet_end"] = base.notify_quiet_hours
        for f in fields(cls):
            if f.type in ("int", int):
                values[f.name] = getattr(base, f"notify_{f.name}")
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        if self.escalate_district_days < self.escalate_principal_days:
            raise NotifyError("Báo Phòng phải sau (hoặc cùng lúc) báo Hiệu trưởng.")

    def link(self, page: str, **params: Any) -> str:
        query = urlencode({k: v for k, v in params.items() if v is not None})
        return f"{self.base_url.rstrip('/')}{PAGES[page]}" + (f"?{query}" if query else "")


# --------------------------------------------------------------------------- time rules
def local(t: dt.datetime) -> dt.datetime:
    if t.tzinfo is None:
        raise NotifyError("Thời điểm phải có múi giờ (aware datetime).")
    return t.astimezone(VN_TZ)


def is_quiet(now: dt.datetime, settings: NotifySettings) -> bool:
    """Whether ``now`` falls in the quiet hours (start inclusive, end exclusive)."""
    start, end = settings.quiet_start, settings.quiet_end
    if start is None or end is None or start == end:
        return False
    t = local(now).time().replace(tzinfo=None)
    return (start <= t < end) if start < end else (t >= start or t < end)


def quiet_end(now: dt.datetime, settings: NotifySettings) -> dt.datetime:
    """When the quiet hours that contain ``now`` end (``now`` itself when not quiet)."""
    if not is_quiet(now, settings):
        return now
    assert settings.quiet_end is not None
    here = local(now)
    end = dt.datetime.combine(here.date(), settings.quiet_end, VN_TZ)
    return end if end > here else end + dt.timedelta(days=1)


def backoff(attempts: int, settings: NotifySettings) -> dt.timedelta:
    """Wait after the ``attempts``-th failed try: base × 2^(attempts-1)."""
    return dt.timedelta(minutes=settings.backoff_minutes * 2 ** max(0, attempts - 1))


def resolve_clock(
    today: dt.date | None = None, now: dt.datetime | None = None
) -> tuple[dt.date, dt.datetime]:
    """The run's local date and time. ``today`` alone (``--today``) keeps the time of day."""
    if now is None:
        real = dt.datetime.now(VN_TZ)
        now = real if today is None else dt.datetime.combine(today, real.time(), VN_TZ)
    now = local(now)
    return (today or now.date()), now


# --------------------------------------------------------------------------- wording
def day_month(d: dt.date) -> str:
    """``15/6``, as Vietnamese deadlines are written."""
    return f"{d.day}/{d.month}"


def date_vn(d: dt.date | dt.datetime) -> str:
    if isinstance(d, dt.datetime):
        d = local(d).date()
    return d.strftime("%d/%m/%Y")


def deadline_phrase(due: dt.date, today: dt.date) -> str:
    """E.g. "còn 7 ngày đến hạn 15/6", "hôm nay là hạn 15/6", "đã quá hạn 15/6 3 ngày"."""
    left = (due - today).days
    if left > 0:
        return f"còn {left} ngày đến hạn {day_month(due)}"
    if left == 0:
        return f"hôm nay là hạn {day_month(due)}"
    return f"đã quá hạn {day_month(due)} {-left} ngày"


def cohort_name(cohort: str, school_year: str) -> str:
    return f"{COHORT_LABELS.get(cohort, cohort).lower()}, năm học {school_year}"


def _greeting(name: str | None, school_staff: bool = True) -> str:
    if name is None:
        return "Kính gửi quý đơn vị,"
    return f"Kính gửi {'thầy/cô' if school_staff else 'anh/chị'} {name},"


def _compose(greeting: str, core: str) -> str:
    return f"{greeting}\n\n{core}\n\n{FOOTER}"


def _core(body: str) -> str:
    """The part of a composed body between the greeting and the footer."""
    head, sep, rest = body.partition("\n\n")
    if sep and head.startswith("Kính gửi"):
        body = rest
    return body.removesuffix(FOOTER).rstrip()


# --------------------------------------------------------------------------- projection
@dataclass(frozen=True)
class Projection:
    """Where a cohort is heading: done | on_track | at_risk | late."""

    status: str
    projected: dt.date | None
    rate_per_day: float

    def pace(self, settings: NotifySettings) -> str:
        if self.projected is not None:
            return f"với tốc độ này, xong ngày {day_month(self.projected)}"
        return f"không có chữ ký nào trong {settings.rate_window_days} ngày qua"


def project(c: CohortFacts, today: dt.date, settings: NotifySettings) -> Projection:
    """Project the cohort's completion from its recent signing rate (audit events).

    Each record still needs its remaining signatures (GVCN, Hiệu trưởng, con dấu); at the
    rate of the last ``rate_window_days`` days they are all done on
    ``today + ceil(left / rate)``. Late: past the deadline with records left. At risk:
    projected after the deadline, or no signature lately with the deadline near.
    """
    pr = project_completion(
        c.remaining,
        c.signatures_left,
        c.signatures_recent,
        c.due,
        today,
        window_days=settings.rate_window_days,
        idle_risk_days=settings.idle_risk_days,
    )
    return Projection(pr.status, pr.projected, pr.rate_per_day)


def idle_days(c: CohortFacts, today: dt.date) -> tuple[int, dt.date | None]:
    """Days since the last progress (approve, sign, seal, submit) of the cohort at the
    school, counted from the first record's creation when nothing moved yet."""
    marks = [t for t in (c.last_progress, c.first_created) if t is not None]
    if not marks:
        return 0, None
    since = local(max(marks)).date()
    return max(0, (today - since).days), since


def _interval(nearest: dt.date, today: dt.date, settings: NotifySettings) -> int:
    """Days between repeats of a message whose nearest deadline is `nearest`: daily close to
    it, weekly before."""
    return 1 if (nearest - today).days <= settings.daily_from_days else 7


def unit_tag(unit_code: str) -> str:
    """The Apprise config tag of an org unit's district-wide channels: ``unit-22-dh``."""
    return "unit-" + _slug(unit_code)


def staff_tag(username: str) -> str:
    """The Apprise config tag of one staff member's channels: ``staff-dh01-gv1a``."""
    return "staff-" + _slug(username)


def _slug(value: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", value.lower()).strip("-")


# --------------------------------------------------------------------------- decide
def decide(snap: Snapshot, settings: NotifySettings, tags: Iterable[str] = ()) -> list[Planned]:
    """The messages of ``snap.today``: pure, deterministic, testable without anything.

    ``tags`` are the tags present in the Apprise configuration file: a unit whose tag is
    there gets its district-level messages on those channels too.
    """
    today = snap.today
    tags = set(tags)
    by_school: dict[int, list[CohortFacts]] = defaultdict(list)
    for c in snap.cohorts:
        by_school[c.school_id].append(c)
    school_name = {c.school_id: c.school_name for c in snap.cohorts}
    people_at: dict[tuple[str, int | None], list[Person]] = defaultdict(list)
    for p in snap.people:
        people_at[(p.role, p.school_id if p.school_id is not None else p.unit_id)].append(p)
    out: list[Planned] = []

    # homeroom teachers: their classes' records to review or sign
    by_teacher: dict[int, list[nm.ClassFacts]] = defaultdict(list)
    for k in snap.classes:
        if k.to_review + k.to_sign > 0:
            by_teacher[k.teacher_id].append(k)
    for classes in by_teacher.values():
        out.append(_teacher_message(classes, school_name, today, settings))

    for school_id, cohorts in sorted(by_school.items()):
        principals = people_at[("principal", school_id)]
        signers = principals + [p for p in people_at[("vice_principal", school_id)] if p.delegated]
        queue = [c for c in cohorts if c.principal_queue > 0]
        for person in signers if queue else []:
            out.append(_principal_message(person, queue, today, settings))
        clerks = people_at[("clerk", school_id)]
        pending = [c for c in cohorts if c.to_seal + c.to_submit > 0]
        rejected = [c for c in cohorts if c.rejected > 0]
        for person in clerks:
            if pending:
                out.append(_clerk_message(person, pending, today, settings))
            if rejected:
                out.append(_rejected_message(person, rejected, today, settings))
        stalled = _stalled(cohorts, today, settings, settings.escalate_principal_days)
        for person in (principals or signers) if stalled else []:
            out.append(_escalation_principal(person, stalled, today, settings))

    for unit in snap.units:
        officers = people_at[("district_officer", unit.id)]
        tag = unit_tag(unit.code)
        recipients: list[tuple[int | None, str | None, str | None]] = [
            (p.staff_id, None, p.full_name) for p in officers
        ]
        if tag in tags:
            recipients.append((None, tag, None))
        cohorts = [c for c in snap.cohorts if c.school_id in unit.school_ids]
        if not recipients or not cohorts:
            continue
        heads = {
            sid: ", ".join(p.full_name for p in people_at[("principal", sid)]) or None
            for sid in unit.school_ids
        }
        projections = [(c, project(c, today, settings)) for c in cohorts]
        at_risk = [(c, pr) for c, pr in projections if pr.status in ("late", "at_risk")]
        stalled = _stalled(cohorts, today, settings, settings.escalate_district_days)
        digest = today.isoweekday() == settings.digest_weekday and any(
            c.remaining > 0 for c in cohorts
        )
        for staff_id, tag_, name in recipients:
            if at_risk:
                out.append(_at_risk_message(unit, staff_id, tag_, name, at_risk, today, settings))
            if stalled:
                out.append(
                    _escalation_district(
                        unit, staff_id, tag_, name, stalled, heads, today, settings
                    )
                )
            if digest:
                out.append(
                    _digest_message(unit, staff_id, tag_, name, projections, today, settings)
                )
    return _merge_same_kind(out)


def _merge_same_kind(planned: list[Planned]) -> list[Planned]:
    """One message per kind and recipient: a clerk or principal of two schools, or an
    officer of two units, gets one message covering both (the dedupe key allows one)."""
    groups: dict[tuple[str, str], list[Planned]] = defaultdict(list)
    for p in planned:
        groups[(p.kind, p.recipient)].append(p)
    out = []
    for (kind, _), same in groups.items():
        if len(same) == 1:
            out.append(same[0])
            continue
        first = same[0]
        greeting = first.body.partition("\n\n")[0]
        sections = "\n\n".join(f"■ {p.subject}\n{_core(p.body)}" for p in same)
        schools = {p.school_id for p in same}
        units = {p.unit_id for p in same}
        out.append(
            replace(
                first,
                subject=f"Học bạ số: {nm.KIND_LABELS[kind].lower()} ({len(same)} nơi)",
                body=_compose(greeting, sections),
                school_id=first.school_id if len(schools) == 1 else None,
                unit_id=first.unit_id if len(units) == 1 else None,
                facts={"parts": [p.facts for p in same]},
                min_interval_days=min(p.min_interval_days for p in same),
            )
        )
    return out


def _stalled(
    cohorts: Sequence[CohortFacts], today: dt.date, settings: NotifySettings, after: int
) -> list[tuple[CohortFacts, int, dt.date | None]]:
    out = []
    for c in cohorts:
        if c.remaining <= 0 or (c.due - today).days > 7 * settings.escalation_weeks:
            continue
        idle, since = idle_days(c, today)
        if idle >= after:
            out.append((c, idle, since))
    return out


@dataclass(frozen=True)
class _To:
    """Who a decided message goes to: a school's staff member (school_id) or a district
    unit's officer or Apprise tag (unit_id). One place builds the Planned of every kind."""

    name: str | None
    staff_id: int | None
    tag: str | None = None
    school_id: int | None = None
    unit_id: int | None = None

    def planned(
        self, kind: str, subject: str, core: str, link: str, facts: dict[str, Any], every: int
    ) -> Planned:
        greeting = _greeting(self.name, school_staff=self.unit_id is None)
        return Planned(
            kind=kind,
            subject=subject,
            body=_compose(greeting, core),
            link=link,
            staff_id=self.staff_id,
            tag=self.tag,
            school_id=self.school_id,
            unit_id=self.unit_id,
            facts=facts,
            min_interval_days=every,
        )


def _listing(head: str, lines: Iterable[str], action: str, link: str) -> str:
    """A message's core: its head line, one line per item, and where to act."""
    return f"{head}\n" + "\n".join(lines) + f"\n\n{action}: {link}"


def _teacher_message(
    classes: list[nm.ClassFacts],
    school_name: Mapping[int, str],
    today: dt.date,
    settings: NotifySettings,
) -> Planned:
    first = classes[0]
    total = sum(k.to_review + k.to_sign for k in classes)
    nearest = min(k.due for k in classes)
    lines = []
    for k in sorted(classes, key=lambda k: (k.due, k.class_name)):
        parts = []
        if k.to_review:
            blocked = (
                f" (trong đó {k.blocked} học bạ còn lỗi TT27 cần sửa trước)" if k.blocked else ""
            )
            parts.append(f"{k.to_review} học bạ cần kiểm tra{blocked}")
        if k.to_sign:
            parts.append(f"{k.to_sign} học bạ đã kiểm tra, chờ thầy/cô ký")
        lines.append(
            f"- Lớp {k.class_name}, {school_name.get(k.school_id, '')}, "
            f"{cohort_name(k.cohort, k.school_year)}: {', '.join(parts)} — "
            f"{deadline_phrase(k.due, today)}."
        )
    class_ids = {k.class_id for k in classes}
    link = settings.link("teacher", lop=first.class_id if len(class_ids) == 1 else None)
    names = ", ".join(sorted({k.class_name for k in classes}))
    core = _listing(
        "Học bạ số đang chờ thầy/cô (giáo viên chủ nhiệm):", lines, "Kiểm tra và ký tại", link
    )
    subject = (
        f"Học bạ số: lớp {names} còn {total} học bạ chờ thầy/cô — {deadline_phrase(nearest, today)}"
    )
    to = _To(first.teacher_name, first.teacher_id, school_id=first.school_id)
    return to.planned(
        "teacher_pending",
        subject,
        core,
        link,
        {
            "total": total,
            "due": nearest.isoformat(),
            "items": [
                {
                    "class": k.class_name,
                    "cohort": k.cohort,
                    "to_review": k.to_review,
                    "blocked": k.blocked,
                    "to_sign": k.to_sign,
                    "due": k.due.isoformat(),
                }
                for k in classes
            ],
        },
        _interval(nearest, today, settings),
    )


def _principal_message(
    person: Person, queue: list[CohortFacts], today: dt.date, settings: NotifySettings
) -> Planned:
    total = sum(c.principal_queue for c in queue)
    nearest = min(c.due for c in queue)
    lines = []
    for c in sorted(queue, key=lambda c: c.due):
        oldest = ""
        if c.oldest_queue_at is not None:
            waited = max(0, (today - local(c.oldest_queue_at).date()).days)
            oldest = (
                f"; chờ lâu nhất: lớp {c.oldest_queue_class}, từ {date_vn(c.oldest_queue_at)} "
                f"({waited} ngày)"
            )
        lines.append(
            f"- {cohort_name(c.cohort, c.school_year).capitalize()}: {c.principal_queue} học bạ "
            f"GVCN đã ký, chờ thầy/cô ký{oldest} — {deadline_phrase(c.due, today)}. "
            f"Toàn trường đã phát hành {c.done}/{c.total} học bạ."
        )
    c0 = queue[0]
    link = settings.link("principal", truong=c0.school_code)
    core = _listing(f"Hàng chờ ký của thầy/cô tại {c0.school_name}:", lines, "Ký duyệt tại", link)
    subject = f"Học bạ số: {total} học bạ chờ thầy/cô ký — {deadline_phrase(nearest, today)}"
    items = [
        {
            "cohort": c.cohort,
            "queue": c.principal_queue,
            "oldest_since": c.oldest_queue_at.isoformat() if c.oldest_queue_at else None,
            "done": c.done,
            "total": c.total,
        }
        for c in queue
    ]
    oldest_class = min(queue, key=lambda c: c.due).oldest_queue_class
    facts = {
        "queue": total,
        "due": nearest.isoformat(),
        "oldest_class": oldest_class,
        "items": items,
    }
    return _To(person.full_name, person.staff_id, school_id=c0.school_id).planned(
        "principal_queue", subject, core, link, facts, _interval(nearest, today, settings)
    )


def _clerk_message(
    person: Person, pending: list[CohortFacts], today: dt.date, settings: NotifySettings
) -> Planned:
    to_seal = sum(c.to_seal for c in pending)
    to_submit = sum(c.to_submit for c in pending)
    nearest = min(c.due for c in pending)
    lines = []
    for c in sorted(pending, key=lambda c: c.due):
        parts = []
        if c.to_seal:
            parts.append(f"{c.to_seal} học bạ Hiệu trưởng đã ký, chờ đóng dấu phát hành")
        if c.to_submit:
            parts.append(f"{c.to_submit} học bạ đã phát hành, chờ gửi Sở")
        lines.append(
            f"- {cohort_name(c.cohort, c.school_year).capitalize()}: {'; '.join(parts)} — "
            f"{deadline_phrase(c.due, today)}."
        )
    c0 = pending[0]
    link = settings.link("clerk", truong=c0.school_code)
    core = _listing(
        f"Việc đang chờ văn thư tại {c0.school_name}:", lines, "Đóng dấu và gửi Sở tại", link
    )
    subject_parts = []
    if to_seal:
        subject_parts.append(f"{to_seal} học bạ chờ đóng dấu")
    if to_submit:
        subject_parts.append(f"{to_submit} học bạ chờ gửi Sở")
    return _To(person.full_name, person.staff_id, school_id=c0.school_id).planned(
        "clerk_pending",
        f"Học bạ số: {', '.join(subject_parts)} — {deadline_phrase(nearest, today)}",
        core,
        link,
        {"to_seal": to_seal, "to_submit": to_submit, "due": nearest.isoformat()},
        _interval(nearest, today, settings),
    )


def _rejected_message(
    person: Person, rejected: list[CohortFacts], today: dt.date, settings: NotifySettings
) -> Planned:
    total = sum(c.rejected for c in rejected)
    lines = []
    for c in sorted(rejected, key=lambda c: c.due):
        reasons = "; ".join(f"{_no_ids(r)[:120]} ({n})" for r, n in c.reject_reasons[:3])
        more = " …" if len(c.reject_reasons) > 3 else ""
        lines.append(
            f"- {cohort_name(c.cohort, c.school_year).capitalize()}: {c.rejected} học bạ bị Sở "
            f"từ chối — {deadline_phrase(c.due, today)}. Lý do: {reasons}{more}."
        )
    c0 = rejected[0]
    link = settings.link("clerk", truong=c0.school_code, trang_thai="rejected")
    core = _listing(
        f"Cổng tiếp nhận của Sở đã từ chối học bạ của {c0.school_name}; cần sửa theo lý do "
        "và gửi lại:",
        lines,
        "Xem và gửi lại tại",
        link,
    )
    return _To(person.full_name, person.staff_id, school_id=c0.school_id).planned(
        "clerk_rejected",
        f"Học bạ số: Sở từ chối {total} học bạ — cần sửa và gửi lại",
        core,
        link,
        {"rejected": total, "reasons": [list(r) for c in rejected for r in c.reject_reasons]},
        1,
    )


def _no_ids(reason: str) -> str:
    """The portal's reason without long digit runs (personal IDs, pupil codes)."""
    return re.sub(r"\d{9,}", "…", reason)


def _stall_line(c: CohortFacts, idle: int, since: dt.date | None, today: dt.date) -> str:
    start = f"từ {date_vn(since)} " if since else ""
    return (
        f"{c.school_name} ({c.school_code}), {cohort_name(c.cohort, c.school_year)}: "
        f"{start}đến nay ({idle} ngày) không có học bạ nào được duyệt, ký, đóng dấu hay gửi Sở "
        f"— {deadline_phrase(c.due, today)}; còn {c.remaining}/{c.total} học bạ chưa phát "
        f"hành: {c.to_review} chờ GVCN kiểm tra, {c.to_sign} chờ GVCN ký, "
        f"{c.principal_queue} chờ Hiệu trưởng ký, {c.to_seal} chờ đóng dấu"
        + (f", {c.rejected} bị Sở từ chối" if c.rejected else "")
        + "."
    )


def _escalation_principal(
    person: Person,
    stalled: list[tuple[CohortFacts, int, dt.date | None]],
    today: dt.date,
    settings: NotifySettings,
) -> Planned:
    c0 = stalled[0][0]
    idle = max(i for _, i, _ in stalled)
    nearest = min(c.due for c, _, _ in stalled)
    link = settings.link("principal", truong=c0.school_code)
    core = _listing(
        "Trường chưa có tiến độ học bạ số trong khi hạn nộp đã gần:",
        (f"- {_stall_line(c, i, s, today)}" for c, i, s in stalled),
        "Đề nghị thầy/cô đôn đốc giáo viên chủ nhiệm và văn thư hoàn thành. Theo dõi tại",
        link,
    )
    subject = (
        f"Học bạ số: {c0.school_name} chưa có tiến độ {idle} ngày — "
        f"{deadline_phrase(nearest, today)}"
    )
    items = [{"cohort": c.cohort, "idle_days": i, "remaining": c.remaining} for c, i, _ in stalled]
    return _To(person.full_name, person.staff_id, school_id=c0.school_id).planned(
        "escalation_principal",
        subject,
        core,
        link,
        {"idle_days": idle, "items": items},
        _interval(nearest, today, settings),
    )


def _escalation_district(
    unit: nm.Unit,
    staff_id: int | None,
    tag: str | None,
    name: str | None,
    stalled: list[tuple[CohortFacts, int, dt.date | None]],
    heads: Mapping[int, str | None],
    today: dt.date,
    settings: NotifySettings,
) -> Planned:
    schools = sorted({c.school_code for c, _, _ in stalled})
    nearest = min(c.due for c, _, _ in stalled)
    link = settings.link("district", don_vi=unit.code)
    lines = []
    for c, i, s in sorted(stalled, key=lambda x: (-x[1], x[0].school_code)):
        head = heads.get(c.school_id)
        lines.append(
            f"- {_stall_line(c, i, s, today)}" + (f" Hiệu trưởng: {head}." if head else "")
        )
    core = _listing(
        f"{len(schools)} trường thuộc {unit.name} không có tiến độ học bạ số từ "
        f"{settings.escalate_district_days} ngày trở lên, đã báo Hiệu trưởng:",
        lines,
        "Theo dõi tại",
        link,
    )
    items = [{"school": c.school_code, "cohort": c.cohort, "idle_days": i} for c, i, _ in stalled]
    return _To(name, staff_id, tag=tag, unit_id=unit.id).planned(
        "escalation_district",
        f"Học bạ số: {len(schools)} trường không có tiến độ — {deadline_phrase(nearest, today)}",
        core,
        link,
        {"schools": schools, "items": items},
        _interval(nearest, today, settings),
    )


def _status_line(c: CohortFacts, pr: Projection, today: dt.date, settings: NotifySettings) -> str:
    return (
        f"{c.school_code} {c.school_name}, {cohort_name(c.cohort, c.school_year)}: "
        f"đã phát hành {c.done}/{c.total}, còn {c.remaining} học bạ — "
        f"{deadline_phrase(c.due, today)}; {pr.pace(settings)}"
        + (
            f" (trễ {(pr.projected - c.due).days} ngày)"
            if pr.projected and pr.projected > c.due
            else ""
        )
    )


def _at_risk_message(
    unit: nm.Unit,
    staff_id: int | None,
    tag: str | None,
    name: str | None,
    at_risk: list[tuple[CohortFacts, Projection]],
    today: dt.date,
    settings: NotifySettings,
) -> Planned:
    schools = sorted({c.school_code for c, _ in at_risk})
    late = sorted({c.school_code for c, pr in at_risk if pr.status == "late"})
    nearest = min(c.due for c, _ in at_risk)
    link = settings.link("district", don_vi=unit.code)
    lines = [
        f"- [{STATUS_TEXT[pr.status]}] {_status_line(c, pr, today, settings)}."
        for c, pr in sorted(at_risk, key=lambda x: (x[0].due, x[0].school_code))
    ]
    what = "trễ hạn hoặc có nguy cơ trễ hạn" if late else "có nguy cơ trễ hạn"
    core = _listing(
        f"{len(schools)} trường thuộc {unit.name} {what}:", lines, "Xem tiến độ tại", link
    )
    return _To(name, staff_id, tag=tag, unit_id=unit.id).planned(
        "district_at_risk",
        f"Học bạ số: {len(schools)} trường {what}",
        core,
        link,
        {
            "schools": schools,
            "late": late,
            "items": [
                {
                    "school": c.school_code,
                    "cohort": c.cohort,
                    "status": pr.status,
                    "remaining": c.remaining,
                    "projected": pr.projected.isoformat() if pr.projected else None,
                }
                for c, pr in at_risk
            ],
        },
        _interval(nearest, today, settings),
    )


def _digest_message(
    unit: nm.Unit,
    staff_id: int | None,
    tag: str | None,
    name: str | None,
    projections: list[tuple[CohortFacts, Projection]],
    today: dt.date,
    settings: NotifySettings,
) -> Planned:
    total = sum(c.total for c, _ in projections)
    done = sum(c.done for c, _ in projections)
    counts: dict[str, int] = defaultdict(int)
    lines = []
    for c, pr in sorted(projections, key=lambda x: (x[0].due, x[0].school_code)):
        counts[pr.status] += 1
        pct = round(100 * c.done / c.total) if c.total else 100
        if pr.status == "done":
            lines.append(
                f"- {c.school_code} {c.school_name}, {cohort_name(c.cohort, c.school_year)}: "
                f"xong ({c.done}/{c.total})."
            )
            continue
        lines.append(
            f"- {c.school_code} {c.school_name}, {cohort_name(c.cohort, c.school_year)}: "
            f"{c.done}/{c.total} ({pct}%) — chờ GVCN {c.to_review + c.to_sign}, chờ Hiệu trưởng "
            f"{c.principal_queue}, chờ văn thư {c.to_seal + c.to_submit}"
            + (f", bị Sở từ chối {c.rejected}" if c.rejected else "")
            + f"; {deadline_phrase(c.due, today)}; [{STATUS_TEXT[pr.status]}] "
            f"{pr.pace(settings)}."
        )
    link = settings.link("district", don_vi=unit.code)
    summary = ", ".join(
        f"{n} {label.lower()}"
        for key, label in (
            ("late", "Trễ hạn"),
            ("at_risk", "Nguy cơ trễ"),
            ("on_track", "Đúng tiến độ"),
            ("done", "Đã xong"),
        )
        if (n := counts.get(key))
    )
    core = _listing(
        f"Tổng hợp tuần ({date_vn(today)}) của {unit.name}: đã phát hành {done}/{total} học bạ "
        f"trong các đợt đang theo dõi ({summary}).",
        lines,
        "Chi tiết",
        link,
    )
    return _To(name, staff_id, tag=tag, unit_id=unit.id).planned(
        "district_digest",
        f"Học bạ số: tổng hợp tuần {unit.name} — đã phát hành {done}/{total} học bạ",
        core,
        link,
        {"done": done, "total": total, "statuses": dict(counts)},
        1,
    )


def combine(messages: Sequence[nm.DueMessage], name: str | None, today: dt.date) -> tuple[str, str]:
    """One message (subject, body) for everything due to one recipient in one run."""
    if len(messages) == 1:
        return messages[0].subject, messages[0].body
    school_staff = not any(
        m.kind.startswith("district") or m.kind == "escalation_district" for m in messages
    )
    sections = [f"■ {m.subject}\n{_core(m.body)}" for m in messages]
    subject = f"Học bạ số: {len(messages)} thông báo ngày {date_vn(today)}"
    return subject, _compose(_greeting(name, school_staff), "\n\n".join(sections))


# --------------------------------------------------------------------------- Apprise
def mask_url(url: str) -> str:
    """An Apprise URL fit for display and logs: passwords and tokens hidden."""
    import apprise

    try:
        obj = apprise.Apprise.instantiate(url)
        shown = obj.url(privacy=True) if obj is not None else None
    except Exception:  # pragma: no cover - a plugin that cannot print itself
        shown = None
    if shown:
        return unquote(shown.split("?", 1)[0]).rstrip("/")
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}/…" if parts.scheme else "…"


def _scrub(message: str, secrets: Iterable[str]) -> str:
    for s in secrets:
        if s:
            message = message.replace(s, "****")
    return message


@dataclass(frozen=True)
class ChannelResult:
    channel: str  # masked
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class Delivery:
    """The outcome of sending one message to one recipient over all their channels."""

    ok: bool
    channels: tuple[ChannelResult, ...] = ()
    no_channel: bool = False

    @property
    def error(self) -> str | None:
        if self.no_channel:
            return "Chưa khai báo kênh nhận thông báo (notification_channel hoặc tag Apprise)."
        bad = [f"{c.channel}: {c.error or 'lỗi'}" for c in self.channels if not c.ok]
        return "; ".join(bad)[:2000] or None


class Sender(Protocol):
    def send_staff(
        self, urls: Sequence[str], username: str | None, subject: str, body: str
    ) -> Delivery: ...

    def send_tag(self, tag: str, subject: str, body: str) -> Delivery: ...

    def tags(self) -> set[str]: ...


class AppriseSender:
    """Sends through Apprise: one fresh ``Apprise`` object per channel, plain text."""

    def __init__(self, settings: NotifySettings) -> None:
        self.settings = settings
        self._tags: set[str] | None = None

    def _asset(self) -> Any:
        import apprise

        return apprise.AppriseAsset(
            app_id="hocba", app_desc="Học bạ số", app_url=self.settings.base_url
        )

    def _config(self) -> Any:
        import apprise

        a = apprise.Apprise(asset=self._asset())
        path = self.settings.apprise_config
        if path is not None:
            if not Path(path).is_file():
                raise NotifyError(f"Không thấy tệp cấu hình Apprise {path}.")
            config = apprise.AppriseConfig(asset=self._asset())
            config.add(str(path))
            a.add(config)
        return a

    def tags(self) -> set[str]:
        """The tags present in the Apprise configuration file (read once)."""
        if self._tags is None:
            found: set[str] = set()
            if self.settings.apprise_config is not None:
                for server in self._config():
                    found |= {str(t) for t in getattr(server, "tags", ())}
            self._tags = found
        return self._tags

    def _notify(self, a: Any, subject: str, body: str, tag: str | None) -> tuple[bool, str | None]:
        import apprise

        with apprise.LogCapture(level=logging.WARNING) as captured:
            kwargs: dict[str, Any] = {"body_format": apprise.NotifyFormat.TEXT}
            if tag is not None:
                kwargs.update(tag=tag, match_always=False)
            ok = bool(a.notify(body=body, title=subject, **kwargs))
        text_ = captured.getvalue() if hasattr(captured, "getvalue") else ""
        lines = [re.sub(r"^\S+ \S+ - \w+ - ", "", ln) for ln in text_.splitlines() if ln.strip()]
        return ok, (None if ok else (" | ".join(lines[-3:]) or "gửi không thành công"))

    def send_staff(
        self, urls: Sequence[str], username: str | None, subject: str, body: str
    ) -> Delivery:
        import apprise

        results = []
        for url in urls:
            shown = mask_url(url)
            a = apprise.Apprise(asset=self._asset())
            if not a.add(url):
                results.append(ChannelResult(shown, False, "URL Apprise không hợp lệ"))
                continue
            ok, err = self._notify(a, subject, body, None)
            secrets = [urlsplit(url).password or "", url]
            results.append(ChannelResult(shown, ok, _scrub(err, secrets) if err else None))
        if username is not None and staff_tag(username) in self.tags():
            tag = staff_tag(username)
            ok, err = self._notify(self._config(), subject, body, tag)
            results.append(ChannelResult(f"tag {tag}", ok, err))
        if not results:
            return Delivery(False, no_channel=True)
        return Delivery(any(r.ok for r in results), tuple(results))

    def send_tag(self, tag: str, subject: str, body: str) -> Delivery:
        if tag not in self.tags():
            return Delivery(False, no_channel=True)
        ok, err = self._notify(self._config(), subject, body, tag)
        return Delivery(ok, (ChannelResult(f"tag {tag}", ok, err),))


# --------------------------------------------------------------------------- running
SessionFactory = Callable[[], AbstractContextManager[Session]]


def _default_factory() -> SessionFactory:
    from hocba import db

    return lambda: db.session_scope()


def plan_notifications(
    session: Session,
    today: dt.date,
    now: dt.datetime,
    settings: NotifySettings,
    tags: Iterable[str] | None = None,
) -> dict[str, int]:
    """Decide the day's messages from the database and log them (dedupe, close stale)."""
    snap = nm.snapshot(
        session,
        today,
        now,
        window_days=settings.window_days,
        overdue_days=settings.overdue_days,
        rate_window_days=settings.rate_window_days,
    )
    if tags is None:
        tags = AppriseSender(settings).tags()
    planned = decide(snap, settings, tags)
    report = nm.write_planned(session, planned, today, now, quiet_end(now, settings))
    return {
        "planned": len(planned),
        "created": report.created,
        "duplicates": report.duplicates,
        "too_soon": report.too_soon,
        "closed": report.closed,
    }


def deliver_due(
    now: dt.datetime,
    settings: NotifySettings,
    *,
    session_factory: SessionFactory | None = None,
    sender: Sender | None = None,
) -> dict[str, int]:
    """Send everything due at ``now``: one message per recipient, one transaction each.

    Nothing is sent in the quiet hours (the messages wait). A delivery succeeds when at
    least one of the recipient's channels took it; otherwise every message in it fails,
    and is tried again after the backoff, then given up after ``max_attempts``.
    """
    out = {"quiet": 0, "recipients": 0, "sent": 0, "failed": 0, "gave_up": 0, "messages": 0}
    if is_quiet(now, settings):
        out["quiet"] = 1
        return out
    factory = session_factory or _default_factory()
    sender = sender or AppriseSender(settings)
    today = local(now).date()
    with factory() as session:
        recipients = nm.due_recipients(session, now)
    for staff_id, tag in recipients:
        with factory() as session:
            rows = nm.claim_due(session, staff_id, tag, now)
            if not rows:
                continue  # another worker has them
            out["recipients"] += 1
            out["messages"] += len(rows)
            info = nm.staff_info(session, staff_id) if staff_id is not None else None
            subject, body = combine(rows, info["full_name"] if info else None, today)
            if staff_id is not None:
                urls = [c["apprise_url"] for c in nm.channel_rows(session, staff_id)]
                delivery = sender.send_staff(
                    urls, info["username"] if info else None, subject, body
                )
            else:
                assert tag is not None
                delivery = sender.send_tag(tag, subject, body)
            ids = [r.id for r in rows]
            attempts = max(r.attempts for r in rows) + 1
            if delivery.ok:
                nm.record_outcome(session, ids, status="sent", now=now, error=delivery.error)
                out["sent"] += 1
            elif delivery.no_channel or attempts >= settings.max_attempts:
                nm.record_outcome(
                    session,
                    ids,
                    status="gave_up",
                    now=now,
                    error=delivery.error,
                    count_attempt=not delivery.no_channel,
                )
                out["gave_up"] += 1
            else:
                nm.record_outcome(
                    session,
                    ids,
                    status="failed",
                    now=now,
                    error=delivery.error,
                    next_attempt_at=now + backoff(attempts, settings),
                )
                out["failed"] += 1
    return out


def run_notifications(
    today: dt.date | None = None,
    now: dt.datetime | None = None,
    *,
    settings: NotifySettings | None = None,
    session_factory: SessionFactory | None = None,
    sender: Sender | None = None,
) -> dict[str, int]:
    """Plan the day's messages and send what is due: ``hocba notify run`` without Prefect."""
    today, now = resolve_clock(today, now)
    settings = settings or NotifySettings.from_env()
    factory = session_factory or _default_factory()
    sender = sender or AppriseSender(settings)
    with factory() as session:
        planned = plan_notifications(session, today, now, settings, sender.tags())
    sent = deliver_due(now, settings, session_factory=factory, sender=sender)
    return {**planned, **sent}


# --------------------------------------------------------------------------- admin page
@dataclass(frozen=True)
class TestMessageResult:
    """What the "send a test message" button shows."""

    notification_id: int | None
    ok: bool
    message: str
    channels: tuple[ChannelResult, ...] = ()


def send_test_message(
    session: Session,
    staff_id: int,
    *,
    settings: NotifySettings | None = None,
    sender: Sender | None = None,
    now: dt.datetime | None = None,
) -> TestMessageResult:
    """Send a test message to every channel of ``staff_id`` now (quiet hours do not apply:
    a person asked for it), log it as kind ``test`` and report per channel."""
    settings = settings or NotifySettings.from_env()
    sender = sender or AppriseSender(settings)
    today, now = resolve_clock(None, now)
    info = nm.staff_info(session, staff_id)
    if info is None:
        return TestMessageResult(None, False, f"Không có cán bộ #{staff_id}.")
    link = settings.link("log")
    planned = Planned(
        kind="test",
        subject="Học bạ số: tin nhắn thử",
        body=_compose(
            _greeting(info["full_name"]),
            f"Đây là tin nhắn thử của hệ thống Học bạ số, gửi lúc "
            f"{local(now).strftime('%H:%M %d/%m/%Y')}. Nếu nhận được, kênh này đã sẵn sàng "
            f"nhận nhắc việc.\n\nNhật ký thông báo: {link}",
        ),
        link=link,
        staff_id=staff_id,
    )
    nid = nm.insert_message(session, planned, today, now, f"{now.isoformat()}|{uuid.uuid4()}")
    urls = [c["apprise_url"] for c in nm.channel_rows(session, staff_id)]
    delivery = sender.send_staff(urls, info["username"], planned.subject, planned.body)
    nm.record_outcome(
        session, [nid], status="sent" if delivery.ok else "gave_up", now=now, error=delivery.error
    )
    if delivery.no_channel:
        msg = f"{info['full_name']} chưa có kênh nhận thông báo nào."
    elif delivery.ok:
        good = sum(c.ok for c in delivery.channels)
        msg = f"Đã gửi tin nhắn thử tới {good}/{len(delivery.channels)} kênh."
    else:
        msg = "Không gửi được tới kênh nào: " + (delivery.error or "")
    return TestMessageResult(nid, delivery.ok, msg, delivery.channels)


def add_channel(session: Session, staff_id: int, apprise_url: str, kind: str | None = None) -> int:
    """Store a staff member's channel after Apprise has understood the URL."""
    import apprise

    apprise_url = apprise_url.strip()
    if apprise.Apprise.instantiate(apprise_url) is None:
        scheme = urlsplit(apprise_url).scheme or "?"
        raise NotifyError(f"Apprise không hiểu URL này (loại «{scheme}»): kiểm tra lại cú pháp.")
    return nm.insert_channel(session, staff_id, apprise_url, kind or urlsplit(apprise_url).scheme)


def list_channels(session: Session, staff_id: int) -> list[dict[str, Any]]:
    """The staff member's channels for display: URLs masked, never in clear."""
    return [
        {**{k: v for k, v in c.items() if k != "apprise_url"}, "url": mask_url(c["apprise_url"])}
        for c in nm.channel_rows(session, staff_id, active_only=False)
    ]


__all__ = [
    "AppriseSender",
    "ChannelResult",
    "Delivery",
    "NotifyError",
    "NotifySettings",
    "PAGES",
    "Projection",
    "Sender",
    "TestMessageResult",
    "add_channel",
    "backoff",
    "combine",
    "deadline_phrase",
    "decide",
    "deliver_due",
    "is_quiet",
    "list_channels",
    "mask_url",
    "plan_notifications",
    "project",
    "quiet_end",
    "resolve_clock",
    "run_notifications",
    "send_test_message",
    "staff_tag",
    "unit_tag",
]
