"""Pure logic of the dashboard (no Streamlit, no database): deadline projections, labels,
formatting. Tested on its own in ``tests/dashboard/test_logic.py``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from hocba.models import tt27
from hocba.models.lifecycle import TRANSITIONS, VN_TZ
from hocba.models.lifecycle_states import STATE_LABELS
from hocba.models.projection import IDLE_RISK_DAYS, RATE_WINDOW_DAYS, project_completion

STATUS_LABELS = {
    "done": "Đã xong",
    "on_track": "Đúng tiến độ",
    "at_risk": "Có nguy cơ trễ",
    "late": "Trễ hạn",
    "empty": "Không có học bạ",
}

ACTION_LABELS: dict[str, str] = {
    **{t.action: t.label for t in TRANSITIONS.values()},
    "create_draft": "Lập bản nháp",
    "refresh_draft": "Cập nhật bản nháp từ dữ liệu nhập",
    "view": "Xem học bạ",
    "view_personal_id": "Xem đầy đủ số định danh",
    "export": "Tải tệp XML",
    "lookup": "Tra cứu bằng mã",
    "verify": "Kiểm tra học bạ",
    "request_correction": "Yêu cầu chỉnh lý",
    "approve_correction": "Duyệt chỉnh lý",
    "reject_correction": "Từ chối chỉnh lý",
}

# the names of TT27's levels and results, as TT27 itself gives them (models/tt27.py)
SUBJECT_LEVELS = tt27.SUBJECT_LEVEL_NAMES
TRAIT_LEVELS = tt27.QUALITY_LEVEL_NAMES
RESULT_LABELS = {result.value: result.name_vi for result in tt27.YearResult}


@dataclass(frozen=True)
class DeadlineStatus:
    """Where a cohort stands against its deadline."""

    code: str  # done | on_track | at_risk | late | empty
    projected: dt.date | None
    text: str

    @property
    def label(self) -> str:
        return STATUS_LABELS[self.code]


def day_month(d: dt.date) -> str:
    """``19/6`` (as Vietnamese deadlines are written)."""
    return f"{d.day}/{d.month}"


def fmt_date(d: dt.date | dt.datetime | None) -> str:
    if d is None:
        return ""
    if isinstance(d, dt.datetime):
        d = d.astimezone(VN_TZ).date()
    return d.strftime("%d/%m/%Y")


def fmt_datetime(t: dt.datetime | None) -> str:
    return "" if t is None else t.astimezone(VN_TZ).strftime("%d/%m/%Y %H:%M")


def days_since(t: dt.datetime | None, now: dt.datetime | None = None) -> int | None:
    if t is None:
        return None
    now = now or dt.datetime.now(dt.UTC)
    return max(0, (now - t).days)


def project_deadline(
    total: int,
    done: int,
    done_recent: int,
    deadline: dt.date,
    today: dt.date,
    window_days: int = RATE_WINDOW_DAYS,
) -> DeadlineStatus:
    """The status of a cohort against its deadline, projected from the recent rate.

    ``done`` counts records issued (sealed) or later; ``done_recent`` those issued in the
    last ``window_days`` days. At that pace the remaining records are done on
    ``today + ceil(remaining / rate)``. With no recent issuance the cohort is "at risk"
    once the deadline is at most ``IDLE_RISK_DAYS`` away, "on track" before that.
    """
    remaining = total - done
    if total == 0:
        return DeadlineStatus("empty", None, "Không có học bạ trong đợt này")
    c = project_completion(
        remaining,
        remaining,
        done_recent,
        deadline,
        today,
        window_days=window_days,
        idle_risk_days=IDLE_RISK_DAYS,
    )
    projected = c.projected
    if c.status == "done":
        return DeadlineStatus("done", None, f"Đã phát hành đủ {total} học bạ")
    pace = ""
    if projected is not None:
        pace = f"với tốc độ này, xong ngày {day_month(projected)}"
    if c.status == "late":
        late_by = (today - deadline).days
        text = f"Đã quá hạn {day_month(deadline)} {late_by} ngày, còn {remaining} học bạ"
        return DeadlineStatus("late", projected, text + (f"; {pace}" if pace else ""))
    days_left = (deadline - today).days
    if projected is None:
        if c.status == "at_risk":
            return DeadlineStatus(
                "at_risk",
                None,
                f"Chưa phát hành học bạ nào trong {window_days} ngày qua; còn {remaining} học "
                f"bạ, {days_left} ngày nữa đến hạn {day_month(deadline)}",
            )
        return DeadlineStatus(
            "on_track",
            None,
            f"Chưa có học bạ nào được phát hành; còn {days_left} ngày đến hạn "
            f"{day_month(deadline)}",
        )
    if c.status == "at_risk":
        late_by = (projected - deadline).days
        return DeadlineStatus("at_risk", projected, f"{pace.capitalize()} — trễ {late_by} ngày")
    early = (deadline - projected).days
    tail = f"sớm {early} ngày" if early else "đúng hạn"
    return DeadlineStatus("on_track", projected, f"{pace.capitalize()} — {tail}")


def percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def state_label(state: str | None) -> str:
    return STATE_LABELS.get(state or "", state or "")


def flag_lines(flags: list[dict[str, Any]] | None) -> list[str]:
    """The TT27 flags of a record as lines, blocking ones marked."""
    from hocba.models.lifecycle import BLOCKING_FLAGS

    lines = []
    for f in flags or []:
        mark = "[Chặn duyệt] " if f.get("code") in BLOCKING_FLAGS else "[Lưu ý] "
        lines.append(mark + str(f.get("message", f.get("code", ""))))
    return lines


def has_blocking_flag(flags: list[dict[str, Any]] | None) -> bool:
    from hocba.models.lifecycle import BLOCKING_FLAGS

    return any(f.get("code") in BLOCKING_FLAGS for f in flags or [])


def chunks(ids: list[int], size: int) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]
