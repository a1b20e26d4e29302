"""One school's progress: per class, who holds what and since when, the August cohort,
pupils without a personal ID. Used by the school page and by the district page's
drill-down."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import streamlit as st

from hocba.dashboard import logic
from hocba.dashboard.common import session, show_table, today
from hocba.models import queries
from hocba.models.lifecycle_states import COHORT_LABELS, ROLE_LABELS
from hocba.models.queries import Viewer


def cohort_statuses(row_by_cohort: dict[str, dict[str, Any]], on: dt.date) -> dict[str, Any]:
    """The deadline status of each cohort of one school (rows of ``district_overview``)."""
    return {
        cohort: logic.project_deadline(r["total"], r["done"], r["done_recent"], r["deadline"], on)
        for cohort, r in row_by_cohort.items()
    }


def render_school(viewer: Viewer, year: dict[str, Any], school: dict[str, Any]) -> None:
    on = today()
    with session() as s:
        overview = queries.district_overview(s, viewer, year["id"], on, school_id=school["id"])
        classes = queries.school_classes(s, viewer, year["id"], school["id"])
        holders = queries.school_holders(s, viewer, year["id"], school["id"])
        august = queries.cohort_records(s, viewer, year["id"], school["id"], "august")
        no_id = queries.pupils_without_id(s, viewer, year["id"], school["id"])
    if not overview:
        st.warning("Bạn không có quyền xem trường này.")
        return
    by_cohort = {r["cohort"]: r for r in overview}
    statuses = cohort_statuses(by_cohort, on)
    cols = st.columns(4)
    june = by_cohort["june"]
    total = sum(r["total"] for r in overview)
    done = sum(r["done"] for r in overview)
    cols[0].metric("Học bạ", total)
    cols[1].metric("Đã phát hành", f"{done} ({logic.percent(done, total)}%)")
    cols[2].metric("Đợt tháng 8 (chờ đánh giá bổ sung)", by_cohort["august"]["total"])
    cols[3].metric("Chưa có mã định danh", june["without_id"])
    for cohort, status in statuses.items():
        r = by_cohort[cohort]
        line = (
            f"**{COHORT_LABELS[cohort]}** (hạn {logic.fmt_date(r['deadline'])}): "
            f"{status.label} — {status.text}"
        )
        {"late": st.error, "at_risk": st.warning}.get(status.code, st.info)(line)

    st.subheader("Tiến độ theo lớp")
    if classes:
        frame = pd.DataFrame(
            [
                {
                    "Lớp": c["class_name"],
                    "GVCN": c["teacher"],
                    "Học bạ": c["total"],
                    "GV đang kiểm tra": c["draft"] + c["in_review"],
                    "GV đã duyệt": c["reviewed"],
                    "GVCN đã ký": c["teacher_signed"],
                    "HT đã ký": c["principal_signed"],
                    "Đã phát hành": c["done"],
                    "% phát hành": logic.percent(c["done"], c["total"]),
                    "Cảnh báo TT27": c["flagged"],
                    "Đợt tháng 8": c["august"],
                }
                for c in classes
            ]
        )
        st.dataframe(
            frame,
            hide_index=True,
            width="stretch",
            column_config={
                "% phát hành": st.column_config.ProgressColumn(
                    "% phát hành", min_value=0, max_value=100, format="%.0f%%"
                )
            },
        )
    else:
        st.info("Trường chưa có lớp nào trong năm học này.")

    st.subheader("Ai đang giữ học bạ")
    if holders:
        now = dt.datetime.now(dt.UTC)
        show_table(
            [
                {
                    "Người giữ": h["holder"] or "(chưa phân công)",
                    "Vai trò": ROLE_LABELS.get(h["holder_role"], h["holder_role"]),
                    "Việc cần làm": _todo(h["state"]),
                    "Số học bạ": h["n"],
                    "Lớp": h["classes"],
                    "Chờ lâu nhất (ngày)": logic.days_since(h["since"], now),
                }
                for h in holders
            ]
        )
    else:
        st.success("Không còn học bạ nào đang chờ người của trường xử lý.")

    st.subheader(f"Đợt tháng 8 ({len(august)} học sinh chờ đánh giá bổ sung)")
    if august:
        show_table(
            [
                {
                    "Học sinh": a["full_name"],
                    "Mã HS": a["pupil_code"],
                    "Lớp": a["class_name"],
                    "Kết quả": a["computed_result"],
                    "Trạng thái": logic.state_label(a["state"]),
                }
                for a in august
            ]
        )
    if no_id:
        with st.expander(f"Học sinh chưa có mã định danh ({len(no_id)}) — lập học bạ giấy"):
            show_table(
                [
                    {
                        "Học sinh": p["full_name"],
                        "Mã HS": p["pupil_code"],
                        "Lớp": p["class_name"],
                        "Ngày sinh": logic.fmt_date(p["birth_date"]),
                    }
                    for p in no_id
                ]
            )


def _todo(state: str) -> str:
    return {
        "draft": "Nhận bản nháp để kiểm tra",
        "in_review": "Kiểm tra và duyệt",
        "reviewed": "Ký số (GVCN)",
        "teacher_signed": "Ký số (Hiệu trưởng)",
        "principal_signed": "Đóng dấu phát hành",
    }.get(state, logic.state_label(state))
