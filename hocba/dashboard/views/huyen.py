"""Huyện: every school of the district against the deadlines, progress over time, pupils
without a personal ID, drill-down to a school, export to Excel/CSV."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from hocba.dashboard import logic
from hocba.dashboard.auth import require
from hocba.dashboard.common import (
    NOT_YOUR_SCHOOL,
    choose,
    csv_bytes,
    excel_bytes,
    from_url,
    pick_year,
    session,
    show_table,
    today,
)
from hocba.dashboard.school_view import render_school
from hocba.models import queries
from hocba.models.lifecycle_states import STATE_LABELS

viewer = require("district_officer")
st.title("Tiến độ học bạ số của các trường")
year = pick_year(key="huyen_year")
if year is None:
    st.stop()
on = today()
with session() as s:
    overview = queries.district_overview(s, viewer, year["id"], on)
    series = queries.progress_series(s, viewer, year["id"])
    no_id = queries.pupils_without_id(s, viewer, year["id"])
if not overview:
    st.info("Không có trường nào trong phạm vi của bạn.")
    st.stop()

st.caption(
    f"Năm học {year['name']} — số liệu lúc {on:%d/%m/%Y}. Tiến độ tính theo học bạ đã phát "
    f"hành (đủ ba chữ ký và con dấu của trường); dự báo theo số học bạ phát hành trong "
    f"{logic.RATE_WINDOW_DAYS} ngày gần nhất. Hạn nộp theo cấu hình của tỉnh."
)

schools: dict[int, dict] = {}
for r in overview:
    s_row = schools.setdefault(
        r["school_id"],
        {"id": r["school_id"], "code": r["code"], "name": r["name"], "cohorts": {}},
    )
    s_row["cohorts"][r["cohort"]] = r
table = []
status_count: dict[str, int] = {}
for sch in schools.values():
    june, aug = sch["cohorts"]["june"], sch["cohorts"]["august"]
    both = [june, aug]
    total = sum(c["total"] for c in both)

    def count(col: str, rows: list = both) -> int:
        return sum(c[col] for c in rows)

    st_june = logic.project_deadline(
        june["total"], june["done"], june["done_recent"], june["deadline"], on
    )
    st_aug = logic.project_deadline(
        aug["total"], aug["done"], aug["done_recent"], aug["deadline"], on
    )
    status_count[st_june.code] = status_count.get(st_june.code, 0) + 1
    table.append(
        {
            "Mã trường": sch["code"],
            "Trường": sch["name"],
            "Học bạ": total,
            "GV đang kiểm tra": count("draft") + count("in_review"),
            "GV đã duyệt": count("reviewed"),
            "GVCN đã ký": count("teacher_signed"),
            "HT đã ký": count("principal_signed"),
            "Đã phát hành": count("done"),
            "% phát hành": logic.percent(count("done"), total),
            "% đã gửi Sở": logic.percent(count("sent"), total),
            "% Sở tiếp nhận": logic.percent(count("accepted"), total),
            "Đợt tháng 6": st_june.label,
            "Dự báo tháng 6": st_june.text,
            "Đợt tháng 8": st_aug.label,
            "Dự báo tháng 8": st_aug.text,
            "Cảnh báo TT27": count("flagged"),
            "Chưa có mã định danh": june["without_id"],
        }
    )
frame = pd.DataFrame(table)

cols = st.columns(5)
cols[0].metric("Trường", len(schools))
total_all = int(frame["Học bạ"].sum())
done_all = int(frame["Đã phát hành"].sum())
cols[1].metric(f"Đã phát hành ({logic.percent(done_all, total_all)}%)", f"{done_all}/{total_all}")
cols[2].metric(
    "Đợt tháng 6: trễ / nguy cơ",
    f"{status_count.get('late', 0)} / {status_count.get('at_risk', 0)}",
)
cols[3].metric("Đợt tháng 6: xong", status_count.get("done", 0))
cols[4].metric("Chưa có mã định danh", int(frame["Chưa có mã định danh"].sum()))

STATUS_COLOURS = {
    logic.STATUS_LABELS["late"]: "background-color: #f8d7da",
    logic.STATUS_LABELS["at_risk"]: "background-color: #fff3cd",
    logic.STATUS_LABELS["done"]: "background-color: #d1e7dd",
}
st.dataframe(
    frame.style.map(lambda v: STATUS_COLOURS.get(v, ""), subset=["Đợt tháng 6", "Đợt tháng 8"]),
    hide_index=True,
    width="stretch",
    column_order=[
        "Mã trường",
        "Trường",
        "Đợt tháng 6",
        "Dự báo tháng 6",
        "% phát hành",
        "Đợt tháng 8",
        "Dự báo tháng 8",
        "Học bạ",
        "GV đang kiểm tra",
        "GV đã duyệt",
        "GVCN đã ký",
        "HT đã ký",
        "Đã phát hành",
        "% đã gửi Sở",
        "% Sở tiếp nhận",
        "Cảnh báo TT27",
        "Chưa có mã định danh",
    ],
    column_config={
        c: st.column_config.ProgressColumn(c, min_value=0, max_value=100, format="%.0f%%")
        for c in ("% phát hành", "% đã gửi Sở", "% Sở tiếp nhận")
    },
)
stages = pd.DataFrame(
    [
        {
            "Mã trường": r["code"],
            "Đợt": "Tháng 6" if r["cohort"] == "june" else "Tháng 8",
            "Hạn nộp": logic.fmt_date(r["deadline"]),
            **{STATE_LABELS[c]: r[c] for c in queries.STAGE_COLUMNS},
        }
        for r in overview
    ]
)
e1, e2 = st.columns(2)
e1.download_button(
    "Tải bảng (Excel)",
    excel_bytes({"Tiến độ": frame, "Theo bước": stages}),
    file_name=f"tien_do_hoc_ba_{year['name']}.xlsx",
    mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    on_click="ignore",
)
e2.download_button(
    "Tải bảng (CSV)",
    csv_bytes(frame),
    file_name=f"tien_do_hoc_ba_{year['name']}.csv",
    mime="text/csv",
    on_click="ignore",
)

st.subheader("Tiến độ theo thời gian")
if series:
    labels = {
        "teacher_sign": "GVCN đã ký",
        "principal_sign": "Hiệu trưởng đã ký",
        "seal": "Đã phát hành",
        "submit": "Đã gửi Sở",
        "accept": "Sở tiếp nhận",
    }
    import altair as alt

    data = pd.DataFrame(series).assign(
        action=lambda d: d["action"].map(labels), day=lambda d: pd.to_datetime(d["day"])
    )
    chart = (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=alt.X("day:T", title="Ngày", axis=alt.Axis(format="%d/%m")),
            y=alt.Y("cumulative:Q", title="Số học bạ (cộng dồn)"),
            color=alt.Color("action:N", title="Bước", sort=list(labels.values())),
            tooltip=[
                alt.Tooltip("day:T", title="Ngày", format="%d/%m/%Y"),
                alt.Tooltip("action:N", title="Bước"),
                alt.Tooltip("n:Q", title="Trong ngày"),
                alt.Tooltip("cumulative:Q", title="Cộng dồn"),
            ],
        )
    )
    st.altair_chart(chart, width="stretch")
else:
    st.caption("Chưa có học bạ nào được ký.")

no_id_total = int(frame["Chưa có mã định danh"].sum())
with st.expander(f"Học sinh chưa có mã định danh cá nhân ({no_id_total}) — học bạ giấy"):
    if len(no_id) < no_id_total:
        st.caption(
            f"Hiện {len(no_id)} học sinh đầu tiên (theo mã trường); xem đủ danh sách ở phần "
            "chi tiết từng trường."
        )
    if no_id:
        show_table(
            [
                {
                    "Trường": p["school_code"],
                    "Lớp": p["class_name"],
                    "Học sinh": p["full_name"],
                    "Mã HS": p["pupil_code"],
                    "Ngày sinh": logic.fmt_date(p["birth_date"]),
                }
                for p in no_id
            ]
        )
    else:
        st.caption("Mọi học sinh đều có mã định danh.")

st.subheader("Xem chi tiết một trường")
from_url(  # ?truong=<code> opens a school of the viewer's scope, never another one
    "truong",
    "huyen_drill",
    list(schools),
    lambda i, v: schools[i]["code"] == v.upper(),
    NOT_YOUR_SCHOOL,
)
pick = choose(
    "Trường",
    {i: f"{s['code']} — {s['name']}" for i, s in schools.items()},
    "— chọn trường —",
    key="huyen_drill",
)
if pick is not None:
    render_school(viewer, year, schools[pick])
