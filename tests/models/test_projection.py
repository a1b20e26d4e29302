"""The one deadline projection shared by the dashboard and the notifications (issue 15)."""

from __future__ import annotations

import datetime as dt

import pytest

from hocba.dashboard.logic import project_deadline
from hocba.models.projection import project_completion

DUE = dt.date(2025, 6, 15)


@pytest.mark.parametrize(
    "remaining,left,recent,today,status,projected",
    [
        (0, 0, 5, dt.date(2025, 6, 1), "done", None),
        (126, 126, 49, dt.date(2025, 6, 1), "at_risk", dt.date(2025, 6, 19)),
        (70, 70, 70, dt.date(2025, 6, 1), "on_track", dt.date(2025, 6, 8)),
        (14, 14, 7, dt.date(2025, 6, 1), "on_track", DUE),  # on the day is on track
        (300, 300, 0, dt.date(2025, 5, 31), "on_track", None),  # 15 days: not near yet
        (300, 300, 0, dt.date(2025, 6, 1), "at_risk", None),  # 14 days: idle and near
        (10, 10, 7, dt.date(2025, 6, 20), "late", dt.date(2025, 6, 30)),
        (10, 0, 7, dt.date(2025, 6, 1), "on_track", dt.date(2025, 6, 1)),  # signatures done
    ],
)
def test_project_completion(remaining, left, recent, today, status, projected) -> None:  # type: ignore[no-untyped-def]
    c = project_completion(remaining, left, recent, DUE, today)
    assert (c.status, c.projected) == (status, projected)
    assert c.rate_per_day == (0.0 if status == "done" else recent / 7)


def test_dashboard_status_is_the_shared_projection() -> None:
    today = dt.date(2025, 5, 20)
    for total, done, recent in [(300, 100, 0), (300, 100, 20), (300, 100, 70), (300, 300, 0)]:
        c = project_completion(total - done, total - done, recent, DUE, today)
        s = project_deadline(total, done, recent, DUE, today)
        assert (s.code, s.projected) == (c.status, c.projected)
