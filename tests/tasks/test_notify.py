"""Notifications against real receivers: a local SMTP server (aiosmtpd) and a local HTTP
endpoint for Apprise's ``json://``, both started here, on a real PostgreSQL schema.

Dates: the district's events (drafts, signatures) are written at the real time of the
test run, and audit events can never be edited; so the tests choose ``today`` after them
(the next local day, or N days later for "idle" schools) and move the June deadline of
the test year to a week after that ``today``.
"""

from __future__ import annotations

import datetime as dt
import email
import json
import socket
import threading
from collections.abc import Iterator
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from hocba import db, notify
from hocba.config import ConfigError
from hocba.models import notifications as nm
from hocba.models.calendar import set_deadline
from hocba.models.lifecycle import SYSTEM, VN_TZ, transition
from hocba.models.notifications import CohortFacts
from hocba.notify import NotifySettings

BASE = "https://hocba.damha.example.vn"
FROM = "hocba@phong.example.vn"
LOCAL_TODAY = dt.datetime.now(VN_TZ).date()


# --------------------------------------------------------------------------- receivers
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mailbox:
    """aiosmtpd handler: keeps every message (envelope recipients, subject, plain text)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        msg = email.message_from_bytes(envelope.content, policy=policy.default)
        body = msg.get_body(("plain",))
        self.messages.append(
            {
                "to": list(envelope.rcpt_tos),
                "subject": str(msg["subject"]),
                "body": body.get_content() if body is not None else "",
            }
        )
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if address in m["to"]]


class Webhook:
    """A tiny HTTP server recording the JSON bodies POSTed to each path."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.fail: dict[str, int] = {}  # path → how many next requests answer 500
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if hook.fail.get(self.path, 0) > 0:
                    hook.fail[self.path] -= 1
                    self.send_response(500)
                else:
                    hook.posts.append((self.path, data))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[dict[str, Any]]:
        return [d for p, d in self.posts if p == path]


@pytest.fixture(scope="module")
def receivers() -> Iterator[tuple[Mailbox, Webhook, int]]:
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    port = _free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=port)
    smtp.start()
    hook = Webhook()
    yield mailbox, hook, port
    smtp.stop()
    hook.server.shutdown()


@pytest.fixture
def smtp(receivers: tuple[Mailbox, Webhook, int]) -> Mailbox:
    receivers[0].messages.clear()
    return receivers[0]


@pytest.fixture
def web(receivers: tuple[Mailbox, Webhook, int]) -> Webhook:
    receivers[1].posts.clear()
    receivers[1].fail.clear()
    return receivers[1]


def mailto(port: int, to: str) -> str:
    """Apprise URL of a plain local SMTP server: no TLS (``mode=insecure``), no login."""
    return f"mailto://127.0.0.1:{port}?from={FROM}&to={to}&mode=insecure"


# --------------------------------------------------------------------------- the school
class Town:
    """The test district with channels, an Apprise config and helpers to run the rules."""

    def __init__(self, district: Any, tmp: Path, smtp_port: int, web: Webhook) -> None:
        self.d = district
        self.engine: Engine = district.engine
        self.smtp_port = smtp_port
        self.web = web
        self.config = tmp / "apprise.yml"
        self.config.write_text(
            "version: 1\nurls:\n"
            f"  - {web.url('/unit')}:\n      - tag: unit-22-dh\n"
            f"  - {web.url('/dh02gv1a')}:\n      - tag: staff-dh02-gv1a\n",
            encoding="utf-8",
        )

    def settings(self, **kw: Any) -> NotifySettings:
        return NotifySettings(base_url=BASE, apprise_config=self.config, **kw)

    def set_june_deadline(self, due: dt.date) -> None:
        with Session(self.engine) as s:
            province, year = (
                s.connection()
                .execute(text("SELECT s.province_id, y.id FROM school s, school_year y LIMIT 1"))
                .one()
            )
            set_deadline(s, province, year, "june", due)
            s.commit()

    def channel(self, username: str, url: str) -> None:
        with Session(self.engine) as s:
            notify.add_channel(s, self.staff_id(username), url)
            s.commit()

    def staff_id(self, username: str) -> int:
        return int(self.d.scalar("SELECT id FROM staff WHERE username = :u", u=username))

    def class_records(self, school: str, klass: str) -> list[int]:
        with self.engine.connect() as c:
            return list(
                c.scalars(
                    text(
                        "SELECT r.id FROM hoc_ba r JOIN school s ON s.id = r.school_id "
                        "JOIN school_class c ON c.id = r.class_id WHERE s.code = :s "
                        "AND c.name = :c AND r.cohort = 'june' ORDER BY r.id"
                    ),
                    {"s": school, "c": klass},
                )
            )

    def class_id(self, school: str, klass: str) -> int:
        return int(
            self.d.scalar(
                "SELECT c.id FROM school_class c JOIN school s ON s.id = c.school_id "
                "WHERE s.code = :s AND c.name = :c",
                s=school,
                c=klass,
            )
        )

    def advance(self, ids: list[int], to: str) -> None:
        """Move records along the lifecycle, as their teacher and principal would."""
        for rid in ids:
            self.d.force_state(rid, "in_review", flags="[]")
        with Session(self.engine) as s:
            for rid in ids:
                transition(s, [rid], "approve", self.d.homeroom_of(rid))
            if to in ("teacher_signed", "principal_signed"):
                for rid in ids:
                    transition(s, [rid], "teacher_sign", self.d.homeroom_of(rid))
            if to == "principal_signed":
                transition(s, ids, "principal_sign", self.d.actor("dh01.ht"))
            s.commit()

    def reject(self, ids: list[int], reason: str) -> None:
        for rid in ids:
            self.d.force_state(rid, "submitted")
        with Session(self.engine) as s:
            res = transition(s, ids, "reject", SYSTEM, reason=reason)
            assert not res.failed
            s.commit()

    def run(self, today: dt.date, at: dt.time = dt.time(9, 0), **kw: Any) -> dict[str, int]:
        return notify.run_notifications(
            today,
            dt.datetime.combine(today, at, VN_TZ),
            settings=self.settings(**kw),
            session_factory=lambda: db.session_scope(self.engine),
        )

    def rows(self, **where: Any) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            rows = nm.notification_log(s, limit=1000)
        return [r for r in rows if all(r[k] == v for k, v in where.items())]

    def kinds(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows():
            out[r["kind"]] = out.get(r["kind"], 0) + 1
        return out


@pytest.fixture
def town(district: Any, tmp_path: Path, receivers: Any, smtp: Mailbox, web: Webhook) -> Town:
    return Town(district, tmp_path, receivers[2], web)


# --------------------------------------------------------------------------- pure rules
@pytest.mark.parametrize(
    ("due", "today", "phrase"),
    [
        (dt.date(2025, 6, 15), dt.date(2025, 6, 8), "còn 7 ngày đến hạn 15/6"),
        (dt.date(2025, 6, 15), dt.date(2025, 6, 15), "hôm nay là hạn 15/6"),
        (dt.date(2025, 8, 15), dt.date(2025, 8, 18), "đã quá hạn 15/8 3 ngày"),
    ],
)
def test_deadline_phrase(due: dt.date, today: dt.date, phrase: str) -> None:
    assert notify.deadline_phrase(due, today) == phrase


@pytest.mark.parametrize(
    ("clock", "quiet"),
    [("20:59", False), ("21:00", True), ("23:30", True), ("00:10", True), ("06:29", True)]
    + [("06:30", False), ("12:00", False)],
)
def test_quiet_hours_default_21_to_0630(clock: str, quiet: bool) -> None:
    h, m = map(int, clock.split(":"))
    now = dt.datetime(2025, 6, 8, h, m, tzinfo=VN_TZ)
    assert notify.is_quiet(now, NotifySettings()) is quiet
    end = notify.quiet_end(now, NotifySettings())
    assert end == (dt.datetime.combine(end.date(), dt.time(6, 30), VN_TZ) if quiet else now)
    assert end >= now and end - now < dt.timedelta(hours=10)


def test_quiet_hours_setting_and_backoff() -> None:
    quiet = {"HOCBA_NOTIFY_QUIET_HOURS": "22:15-05:00"}
    assert NotifySettings.from_env(quiet).quiet_start == dt.time(22, 15)
    assert NotifySettings.from_env(quiet).quiet_end == dt.time(5, 0)
    off = NotifySettings.from_env({"HOCBA_NOTIFY_QUIET_HOURS": "off"})
    assert (off.quiet_start, off.quiet_end) == (None, None)
    with pytest.raises(ConfigError):
        NotifySettings.from_env({"HOCBA_NOTIFY_QUIET_HOURS": "tối"})
    s = NotifySettings(backoff_minutes=10)
    assert [notify.backoff(n, s).seconds // 60 for n in (1, 2, 3, 4)] == [10, 20, 40, 80]


def test_mask_url_hides_passwords_and_tokens() -> None:
    shown = notify.mask_url("mailtos://gv1a:MatKhau123@smtp.example.vn:587?to=a@b.vn")
    assert "MatKhau123" not in shown and shown.startswith("mailtos://gv1a:")
    token = "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    assert token not in notify.mask_url(f"tgram://123456789:{token}/-100123456")
    assert "p4ss" not in notify.mask_url("json://u:p4ss@127.0.0.1:8080/x")


def _cohort(**kw: Any) -> CohortFacts:
    base: dict[str, Any] = dict(
        school_id=1,
        school_code="DH01",
        school_name="Trường Tiểu học Đầm Hà",
        unit_id=1,
        school_year="2024-2025",
        cohort="june",
        due=dt.date(2025, 6, 15),
        total=100,
        to_review=0,
        to_sign=0,
        principal_queue=0,
        to_seal=0,
        to_submit=0,
        rejected=0,
        done=0,
        first_created=None,
        oldest_queue_at=None,
        oldest_queue_class=None,
    )
    return CohortFacts(**{**base, **kw})


@pytest.mark.parametrize(
    ("kw", "today", "status", "projected"),
    [
        # 30 records × 3 signatures left at 21 signatures / 7 days → 30 days
        (dict(to_review=30, done=70, signatures_recent=21), (2025, 6, 8), "at_risk", (2025, 7, 8)),
        (dict(to_seal=30, done=70, signatures_recent=70), (2025, 6, 8), "on_track", (2025, 6, 11)),
        (dict(to_review=30, done=70), (2025, 6, 8), "at_risk", None),  # idle, 7 days left
        (dict(to_review=30, done=70), (2025, 5, 1), "on_track", None),  # idle but far away
        (dict(to_review=1, done=99), (2025, 6, 16), "late", None),
        (dict(done=100), (2025, 6, 16), "done", None),
    ],
)
def test_projection_from_the_signing_rate(
    kw: dict[str, Any], today: tuple[int, int, int], status: str, projected: Any
) -> None:
    pr = notify.project(_cohort(**kw), dt.date(*today), NotifySettings())
    assert pr.status == status
    assert pr.projected == (dt.date(*projected) if projected else None)


def test_decide_is_pure_one_message_per_kind_and_person() -> None:
    """A clerk of two schools gets one clerk_pending covering both; the portal's reasons
    lose their personal IDs; nothing for a school whose work is done."""
    today = dt.date(2025, 6, 8)
    snap = nm.Snapshot(
        today,
        dt.datetime(2025, 6, 8, 7, 0, tzinfo=VN_TZ),
        cohorts=[
            _cohort(to_seal=3, done=97),
            _cohort(
                school_id=2,
                school_code="DH02",
                school_name="Trường Tiểu học Quảng Tân",
                to_submit=2,
                rejected=1,
                done=97,
                reject_reasons=(("SO_CCCD 022315000123 không khớp", 1),),
            ),
            _cohort(school_id=3, school_code="DH03", done=100),
        ],
        people=[
            nm.Person(7, "cum.vt", "Nguyễn Thị Lan", "clerk", school_id=1),
            nm.Person(7, "cum.vt", "Nguyễn Thị Lan", "clerk", school_id=2),
            nm.Person(8, "dh03.vt", "Trần Văn Bình", "clerk", school_id=3),
            nm.Person(9, "dh03.ht", "Lê Văn Cường", "principal", school_id=3),
        ],
    )
    planned = notify.decide(snap, NotifySettings(base_url=BASE))
    assert sorted((p.kind, p.staff_id) for p in planned) == [
        ("clerk_pending", 7),
        ("clerk_rejected", 7),
    ]
    (pending,) = [p for p in planned if p.kind == "clerk_pending"]
    assert "(2 nơi)" in pending.subject and pending.school_id is None
    assert "3 học bạ chờ đóng dấu" in pending.body and "2 học bạ chờ gửi Sở" in pending.body
    assert "còn 7 ngày đến hạn 15/6" in pending.body and pending.min_interval_days == 1
    (rejected,) = [p for p in planned if p.kind == "clerk_rejected"]
    assert "SO_CCCD … không khớp (1)" in rejected.body and "022315000123" not in rejected.body


# --------------------------------------------------------------------------- end to end
def test_each_person_receives_one_message_with_counts_and_link(town: Town, smtp: Mailbox) -> None:
    today = LOCAL_TODAY + dt.timedelta(days=1)
    due = today + dt.timedelta(days=7)
    town.set_june_deadline(due)
    gv2a, sign3a, seal4a, rej5a = (town.class_records("DH01", k) for k in ("2A", "3A", "4A", "5A"))
    town.advance(gv2a, "reviewed")
    town.advance(sign3a, "teacher_signed")
    town.advance(seal4a, "principal_signed")
    town.reject(rej5a, "SO_CCCD không khớp CSDL dân cư")
    town.channel("dh01.gv1a", mailto(town.smtp_port, "gv1a@truong.example.vn"))
    town.channel("dh01.gv2a", town.web.url("/gv2a"))
    town.channel("dh01.ht", town.web.url("/ht"))
    town.channel("dh01.vt", town.web.url("/vt"))
    town.channel("phong.dh", mailto(town.smtp_port, "phong@damha.example.vn"))

    out = town.run(today, digest_weekday=today.isoweekday())
    assert out["quiet"] == 0 and out["failed"] == 0

    phrase = f"còn 7 ngày đến hạn {due.day}/{due.month}"
    (mail,) = smtp.to("gv1a@truong.example.vn")  # the homeroom teacher of 1A, by email
    n1a = len(town.class_records("DH01", "1A"))
    assert f"lớp 1A còn {n1a} học bạ chờ thầy/cô" in mail["subject"]
    assert f"{n1a} học bạ cần kiểm tra" in mail["body"] and phrase in mail["body"]
    assert f"{BASE}/lop_cua_toi?lop={town.class_id('DH01', '1A')}" in mail["body"]

    (gv2a_msg,) = town.web.at("/gv2a")
    assert f"{len(gv2a)} học bạ đã kiểm tra, chờ thầy/cô ký" in gv2a_msg["message"]

    (ht,) = town.web.at("/ht")  # the principal: queue size, oldest, days left, link
    assert ht["title"].startswith(f"Học bạ số: {len(sign3a)} học bạ chờ thầy/cô ký — {phrase}")
    assert (
        "chờ lâu nhất: lớp 3A" in ht["message"]
        and f"{BASE}/hang_cho_ky?truong=DH01" in (ht["message"])
    )

    (vt,) = town.web.at("/vt")  # the clerk: to seal + portal rejections, one digest
    assert vt["title"].startswith("Học bạ số: 2 thông báo ngày")
    assert f"{len(seal4a)} học bạ Hiệu trưởng đã ký, chờ đóng dấu phát hành" in vt["message"]
    assert f"Sở từ chối {len(rej5a)} học bạ" in vt["message"]
    assert f"SO_CCCD không khớp CSDL dân cư ({len(rej5a)})" in vt["message"]

    (phong,) = smtp.to("phong@damha.example.vn")  # district: at risk + weekly digest
    assert "2 thông báo" in phong["subject"]
    assert "trường thuộc Đầm Hà có nguy cơ trễ hạn" in phong["body"]
    assert "tổng hợp tuần Đầm Hà" in phong["body"] and "DH02" in phong["body"]
    assert "không có chữ ký nào trong 7 ngày qua" in phong["body"]  # DH02 has not started
    assert f"{BASE}/huyen?don_vi=22-DH" in phong["body"]

    (unit,) = town.web.at("/unit")  # the district-wide channel of the Apprise config
    assert "nguy cơ trễ hạn" in unit["message"]
    (tagged,) = town.web.at("/dh02gv1a")  # a teacher reached through a config tag
    assert "Lớp 1A, Trường Tiểu học Quảng Tân" in tagged["message"]

    assert len(smtp.messages) == 2 and len(town.web.posts) == 5  # nobody got two messages
    for row in town.rows(username="dh01.gv3a"):  # no channel: logged, not sent
        assert row["status"] == "gave_up" and "Chưa khai báo kênh" in row["last_error"]
    sent = town.rows(status="sent")
    assert {r["kind"] for r in sent} >= {
        "teacher_pending",
        "principal_queue",
        "clerk_pending",
        "clerk_rejected",
        "district_at_risk",
        "district_digest",
    }
    assert not any(r["kind"].startswith("escalation") for r in town.rows())  # idle 1 day only
    assert not any(
        "gv3a" in str(r["username"]) or "gv4a" in str(r["username"]) for r in sent
    )  # their classes are past them


def test_quiet_hours_queue_then_send_after(town: Town, smtp: Mailbox) -> None:
    today = LOCAL_TODAY + dt.timedelta(days=1)
    town.set_june_deadline(today + dt.timedelta(days=7))
    town.channel("dh01.gv1a", mailto(town.smtp_port, "gv1a@truong.example.vn"))

    night = town.run(today, dt.time(5, 0))
    assert night["quiet"] == 1 and night["created"] > 0
    assert smtp.messages == []
    (row,) = town.rows(username="dh01.gv1a")
    assert row["status"] == "pending"
    assert row["next_attempt_at"] == dt.datetime.combine(today, dt.time(6, 30), VN_TZ)

    assert town.run(today, dt.time(6, 20))["quiet"] == 1  # still quiet: still waiting
    morning = town.run(today, dt.time(6, 45))
    assert morning["created"] == 0 and morning["duplicates"] == night["created"]
    assert len(smtp.to("gv1a@truong.example.vn")) == 1
    assert town.rows(username="dh01.gv1a")[0]["status"] == "sent"


def test_escalation_after_idle_days_to_principal_then_district(
    town: Town, smtp: Mailbox, web: Webhook
) -> None:
    due = LOCAL_TODAY + dt.timedelta(days=10)
    town.set_june_deadline(due)
    town.advance(town.class_records("DH01", "2A"), "reviewed")  # DH01's last progress: today
    town.channel("dh01.ht", web.url("/ht"))
    town.channel("dh02.ht", web.url("/ht2"))
    town.channel("phong.dh", mailto(town.smtp_port, "phong@damha.example.vn"))
    weekday = (LOCAL_TODAY + dt.timedelta(days=3)).isoweekday()  # no digest in this test

    town.run(LOCAL_TODAY + dt.timedelta(days=2), digest_weekday=weekday)
    assert "escalation_principal" not in town.kinds()  # 2 idle days < N = 3

    town.run(LOCAL_TODAY + dt.timedelta(days=4), digest_weekday=weekday)
    (ht,) = [m for m in web.at("/ht") if "chưa có tiến độ" in m["message"]]
    assert "chưa có tiến độ 4 ngày" in ht["title"]
    assert f"từ {LOCAL_TODAY:%d/%m/%Y} đến nay (4 ngày)" in ht["message"]  # the audit's date
    assert any("chưa có tiến độ 4 ngày" in m["title"] for m in web.at("/ht2"))
    assert town.kinds()["escalation_principal"] == 2 and "escalation_district" not in town.kinds()
    assert not any("không có tiến độ" in m["body"] for m in smtp.to("phong@damha.example.vn"))

    town.run(LOCAL_TODAY + dt.timedelta(days=8), digest_weekday=weekday)  # 7+ days: district
    assert town.kinds()["escalation_district"] == 2  # phong.dh and the unit's config tag
    (last,) = [m for m in smtp.to("phong@damha.example.vn") if "không có tiến độ" in m["body"]]
    assert "2 trường thuộc Đầm Hà không có tiến độ học bạ số" in last["body"]
    assert "(8 ngày)" in last["body"] and "Hiệu trưởng:" in last["body"]
    assert any("không có tiến độ" in m["message"] for m in web.at("/unit"))


def test_retry_with_backoff_after_a_receiver_failure(town: Town, web: Webhook) -> None:
    today = LOCAL_TODAY + dt.timedelta(days=1)
    town.set_june_deadline(today + dt.timedelta(days=7))
    town.advance(town.class_records("DH01", "3A"), "teacher_signed")
    town.channel("dh01.ht", web.url("/ht"))
    web.fail["/ht"] = 1  # the receiver answers 500 once

    first = town.run(today, dt.time(9, 0))
    assert first["failed"] == 1 and web.at("/ht") == []
    (row,) = town.rows(username="dh01.ht")
    assert row["status"] == "failed" and row["attempts"] == 1 and "500" in row["last_error"]
    assert row["next_attempt_at"] == dt.datetime.combine(today, dt.time(9, 10), VN_TZ)

    assert town.run(today, dt.time(9, 5))["recipients"] == 0  # not due yet: backoff
    later = town.run(today, dt.time(9, 15))
    assert later["sent"] == 1 and len(web.at("/ht")) == 1
    (row,) = town.rows(username="dh01.ht")
    assert row["status"] == "sent" and row["attempts"] == 2


def test_gives_up_after_max_attempts(town: Town) -> None:
    today = LOCAL_TODAY + dt.timedelta(days=1)
    town.set_june_deadline(today + dt.timedelta(days=7))
    town.channel("dh01.gv1a", f"json://127.0.0.1:{_free_port()}/nobody-listens")
    town.run(today, dt.time(9, 0), max_attempts=2, backoff_minutes=1)
    assert town.rows(username="dh01.gv1a")[0]["status"] == "failed"
    town.run(today, dt.time(9, 2), max_attempts=2, backoff_minutes=1)
    (row,) = town.rows(username="dh01.gv1a")
    assert row["status"] == "gave_up" and row["attempts"] == 2
    with Session(town.engine) as s:  # the dashboard's list of failed deliveries
        failed = nm.notification_log(s, statuses=["failed", "gave_up"], kinds=["teacher_pending"])
    assert row["id"] in {r["id"] for r in failed}


def test_nothing_once_the_work_is_done(town: Town, smtp: Mailbox) -> None:
    today = LOCAL_TODAY + dt.timedelta(days=1)
    town.set_june_deadline(today + dt.timedelta(days=7))
    town.channel("dh01.gv1a", mailto(town.smtp_port, "gv1a@truong.example.vn"))
    assert town.run(today, dt.time(5, 0))["created"] > 0  # queued in the quiet hours
    for rid in town.d.record_ids("DH01") + town.d.record_ids("DH02"):
        town.d.force_state(rid, "accepted")  # meanwhile every record was issued and accepted

    morning = town.run(today, dt.time(7, 0))
    assert morning["created"] == 0 and morning["closed"] > 0 and morning["recipients"] == 0
    assert smtp.messages == []
    (row,) = town.rows(username="dh01.gv1a")
    assert row["status"] == "gave_up" and "đã xong" in row["last_error"]
    nxt = town.run(today + dt.timedelta(days=1), dt.time(9, 0))
    assert nxt["planned"] == 0 and smtp.messages == []


def test_test_message_channels_and_log_scope(town: Town, smtp: Mailbox) -> None:
    with Session(town.engine) as s:
        with pytest.raises(notify.NotifyError):
            notify.add_channel(s, town.staff_id("dh01.vt"), "khong-phai-url")
        notify.add_channel(
            s,
            town.staff_id("dh01.vt"),
            f"mailto://vt:MatKhau9@127.0.0.1:{town.smtp_port}?from={FROM}&to=vt@t.vn&mode=insecure",
        )
        shown = notify.list_channels(s, town.staff_id("dh01.vt"))
        assert len(shown) == 1 and "MatKhau9" not in repr(shown) and shown[0]["kind"] == "mailto"
        s.commit()
    town.channel("dh01.gv1a", mailto(town.smtp_port, "gv1a@truong.example.vn"))
    with db.session_scope(town.engine) as s:
        ok = notify.send_test_message(s, town.staff_id("dh01.gv1a"), settings=town.settings())
        none = notify.send_test_message(s, town.staff_id("dh02.vt"), settings=town.settings())
    assert ok.ok and ok.message == "Đã gửi tin nhắn thử tới 1/1 kênh."
    assert smtp.to("gv1a@truong.example.vn")[0]["subject"] == "Học bạ số: tin nhắn thử"
    assert not none.ok and "chưa có kênh" in none.message

    today = LOCAL_TODAY + dt.timedelta(days=1)
    town.set_june_deadline(today + dt.timedelta(days=7))
    town.run(today)
    dh01 = int(town.d.scalar("SELECT id FROM school WHERE code = 'DH01'"))
    with Session(town.engine) as s:
        scoped = nm.notification_log(s, school_ids=[dh01])
        mine = nm.notification_log(s, staff_ids=[town.staff_id("dh01.gv1a")])
    assert scoped and {r["school_code"] for r in scoped} == {"DH01"}
    assert {r["kind"] for r in mine} == {"test", "teacher_pending"}
    assert all(r["kind_label"] and r["status_label"] for r in mine)


def test_demo_district_a_week_before_15_6(engine: Engine, tmp_path: Path) -> None:
    """The demo district (every record still with its teachers), a week before 15/6."""
    from hocba.dev import demo

    year = demo.current_school_year(LOCAL_TODAY + dt.timedelta(days=60))
    due = dt.date(int(year[:4]) + 1, 6, 15)
    today = due - dt.timedelta(days=7)
    demo.run_demo(
        lambda: db.session_scope(engine),
        tmp_path,
        schools=2,
        pupils_per_school=25,
        year=year,
    )
    with Session(engine) as s:  # DH01's teachers of grade 1 sign: the principal has a queue
        ids = list(
            s.connection().scalars(
                text(
                    "SELECT r.id FROM hoc_ba r JOIN school_class c ON c.id = r.class_id "
                    "JOIN school s ON s.id = r.school_id WHERE s.code = 'DH01' AND c.grade = 1 "
                    "AND r.state = 'reviewed' AND r.cohort = 'june'"
                )
            )
        )
        teacher = (
            s.connection()
            .execute(
                text(
                    "SELECT st.id, st.full_name FROM staff st JOIN school_class c "
                    "ON c.homeroom_teacher_id = st.id JOIN hoc_ba r ON r.class_id = c.id "
                    "WHERE r.id = :r"
                ),
                {"r": ids[0]},
            )
            .one()
        )
        from hocba.models.lifecycle import Actor

        assert not transition(s, ids, "teacher_sign", Actor(*teacher)).failed
        teachers = s.connection().scalar(
            text(
                "SELECT count(DISTINCT c.homeroom_teacher_id) FROM hoc_ba r JOIN school_class c "
                "ON c.id = r.class_id WHERE r.cohort = 'june' "
                "AND r.state IN ('draft', 'in_review', 'reviewed')"
            )
        )
        s.commit()
    out = notify.run_notifications(
        today,
        dt.datetime.combine(today, dt.time(7, 0), VN_TZ),
        settings=NotifySettings(base_url=BASE, digest_weekday=today.isoweekday()),
        session_factory=lambda: db.session_scope(engine),
    )
    with Session(engine) as s:
        log = nm.notification_log(s, since=today)
    kinds: dict[str, int] = {}
    for r in log:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    # Every homeroom teacher with June records to review or sign; DH01's principal (and
    # the vice principal who signs by delegation) has a queue; both schools have been idle
    # for weeks (the demo's events are from the day it ran) → escalations; the district
    # officer: at risk, escalation and the weekly digest. The August cohort (15/8) is not
    # watched yet; no clerk has anything to seal.
    assert kinds == {
        "teacher_pending": teachers,
        "principal_queue": 2,  # the principal and the vice principal signing by delegation
        "escalation_principal": 2,
        "district_at_risk": 1,
        "escalation_district": 1,
        "district_digest": 1,
    }
    assert out["created"] == len(log) and out["gave_up"] > 0  # demo staff have no channels
    queues = [r for r in log if r["kind"] == "principal_queue"]
    assert {r["username"] for r in queues} == {"dh01.ht", "dh01.pht"}
    queue = queues[0]
    assert queue["facts"]["queue"] == len(ids)
    assert "còn 7 ngày đến hạn 15/6" in queue["body"]
    (risk,) = [r for r in log if r["kind"] == "district_at_risk"]
    assert risk["username"] == "phong.dh" and set(risk["facts"]["schools"]) == {"DH01", "DH02"}
