"""The deadline projection (issue 15: one function per shared decision).

Whether a cohort at a school will make its deadline (15/6, 15/8), from the work still to do,
the work done recently and the days left. Pure: no database, no wording. The dashboard
(:func:`hocba.dashboard.logic.project_deadline`) and the notifications
(:func:`hocba.notify.project`) both call :func:`project_completion` and keep their own labels
and messages.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

#: The recent rate is measured over this many days.
RATE_WINDOW_DAYS = 7
#: With no progress recently, a cohort is "at risk" when its deadline is this close.
IDLE_RISK_DAYS = 14


@dataclass(frozen=True)
class Completion:
    """Where a cohort is heading: ``done`` | ``on_track`` | ``at_risk`` | ``late``."""

    status: str
    projected: dt.date | None
    rate_per_day: float


def project_completion(
    remaining: int,
    left: int,
    recent: int,
    due: dt.date,
    today: dt.date,
    *,
    window_days: int = RATE_WINDOW_DAYS,
    idle_risk_days: int = IDLE_RISK_DAYS,
) -> Completion:
    """Project a cohort's completion against ``due`` from its recent rate.

    ``remaining``: records not done yet (none left: ``done``). ``left``: units of work still
    to do and ``recent``: units done in the last ``window_days`` days, in one unit (records
    or signatures, the caller's choice). At ``recent / window_days`` a day the work is done
    on ``today + ceil(left / rate)``. Late: past ``due`` with records left. With no recent
    progress: at risk once ``due`` is at most ``idle_risk_days`` away, on track before.
    Otherwise at risk when projected after ``due``, on track when on or before it.
    """
    if remaining <= 0:
        return Completion("done", None, 0.0)
    rate = recent / window_days
    projected = today + dt.timedelta(days=math.ceil(left / rate)) if rate > 0 else None
    if today > due:
        return Completion("late", projected, rate)
    if projected is None:
        near = (due - today).days <= idle_risk_days
        return Completion("at_risk" if near else "on_track", None, rate)
    return Completion("at_risk" if projected > due else "on_track", projected, rate)


__all__ = ["IDLE_RISK_DAYS", "RATE_WINDOW_DAYS", "Completion", "project_completion"]
