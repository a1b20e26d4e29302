"""Where a cohort stands against its deadline, projected from the recent issuance rate."""

from __future__ import annotations

import datetime as dt

import pytest

from hocba.dashboard.logic import project_deadline

DUE = dt.date(2025, 6, 15)


@pytest.mark.parametrize(
    "total,done,recent,today,code,text",
    [
        (0, 0, 0, dt.date(2025, 6, 1), "empty", "Không có học bạ"),
        (300, 300, 50, dt.date(2025, 6, 1), "done", "Đã phát hành đủ 300 học bạ"),
        # 7 a day, 126 left on 1/6: 18 days -> 19/6, 4 days after 15/6
        (300, 174, 49, dt.date(2025, 6, 1), "at_risk", "xong ngày 19/6 — trễ 4 ngày"),
        (300, 230, 70, dt.date(2025, 6, 1), "on_track", "xong ngày 8/6 — sớm 7 ngày"),
        (300, 0, 0, dt.date(2025, 5, 1), "on_track", "Chưa có học bạ nào được phát hành"),
        (300, 0, 0, dt.date(2025, 6, 5), "at_risk", "10 ngày nữa đến hạn 15/6"),
        (300, 290, 7, dt.date(2025, 6, 20), "late", "Đã quá hạn 15/6 5 ngày, còn 10 học bạ"),
    ],
)
def test_deadline_status(total, done, recent, today, code, text) -> None:  # type: ignore[no-untyped-def]
    status = project_deadline(total, done, recent, DUE, today)
    assert status.code == code
    assert text in status.text
