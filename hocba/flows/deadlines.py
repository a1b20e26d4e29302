"""The deadline flow: every day, tell each person what waits for them before 15/6 and 15/8.

A table of contents over ``hocba.models.notifications`` (where records stand, the log) and
``hocba.notify`` (who is told what, in Vietnamese, through Apprise): plan the day's
messages (one per kind, person and day: re-running the flow the same day adds nothing),
then send what is due (quiet hours respected, one message per person, retries with
backoff). Parameters carry no secrets and no personal data: a date and a time at most.
"""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from hocba import db, notify


@task(name="lập thông báo trong ngày", cache_policy=NO_CACHE)
def plan_task(today: dt.date, now: dt.datetime) -> dict[str, int]:
    """Where records stand against their deadlines → the day's messages, logged (dedupe)."""
    settings = notify.NotifySettings.from_env()
    with db.session_scope() as session:
        return notify.plan_notifications(session, today, now, settings)


@task(name="gửi thông báo đến hạn", cache_policy=NO_CACHE)
def deliver_task(now: dt.datetime) -> dict[str, int]:
    """Send what is due now: one message per person, one transaction per person."""
    return notify.deliver_due(now, notify.NotifySettings.from_env())


@flow(name="han-nop-hoc-ba")
def deadline_flow(today: dt.date | None = None, now: dt.datetime | None = None) -> dict[str, int]:
    """Remind, escalate and digest against the deadlines, then send what is due.

    ``today`` (local date, Asia/Ho_Chi_Minh) defaults to the current one; ``now`` to the
    current time (on ``today`` when only ``today`` is given).
    """
    log = get_run_logger()
    today, now = notify.resolve_clock(today, now)
    planned = plan_task(today, now)
    sent = deliver_task(now)
    log.info(
        "Thông báo ngày %s: %s mới (%s đã có hôm nay, %s chưa đến kỳ, %s đóng); "
        "gửi %s người nhận: %s thành công, %s lỗi sẽ thử lại, %s bỏ%s",
        today.strftime("%d/%m/%Y"),
        planned["created"],
        planned["duplicates"],
        planned["too_soon"],
        planned["closed"],
        sent["recipients"],
        sent["sent"],
        sent["failed"],
        sent["gave_up"],
        " (giờ yên lặng: chưa gửi)" if sent["quiet"] else "",
    )
    return {**planned, **sent}
