"""Lớp của tôi: the homeroom teacher checks each record of their class as it will print,
approves or reopens it, sees the TT27 flags, then signs the class in one step."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from hocba.dashboard import logic
from hocba.dashboard.auth import require
from hocba.dashboard.common import (
    flash,
    forget_view,
    from_url,
    pick_year,
    session,
    show_flash,
)
from hocba.dashboard.record_view import show_record
from hocba.dashboard.signing import (
    backend_choice,
    follow_session,
    passphrase_input,
    show_results,
    sign_with,
)
from hocba.models import queries
from hocba.models.lifecycle import TransitionError, transition

PAGE = "teacher"
viewer = require("homeroom_teacher", admin=False)
st.title("Lớp của tôi")
show_flash()
year = pick_year(key="gv_year")
if year is None:
    st.stop()
with session() as s:
    classes = queries.my_classes(s, viewer, year["id"])
if not classes:
    st.info(f"Bạn không chủ nhiệm lớp nào trong năm học {year['name']}.")
    st.stop()
from_url(  # ?lop=<class id> (the notifications' link) picks one of MY classes only
    "lop",
    "gv_class",
    classes,
    lambda c, v: str(c["class_id"]) == v,
    "Lớp «{value}» không phải lớp bạn chủ nhiệm. Trang chỉ hiển thị lớp của bạn.",
)
klass = (
    classes[0]
    if len(classes) == 1
    else st.selectbox(
        "Lớp",
        classes,
        format_func=lambda c: f"{c['class_name']} — {c['school_name']}",
        key="gv_class",
    )
)
with session() as s:
    records = queries.class_records(s, viewer, klass["class_id"])
by_id = {r["id"]: r for r in records}
st.caption(f"Lớp {klass['class_name']} — {klass['school_name']} — năm học {year['name']}")
follow_session(PAGE, "gv_results")
show_results("gv_results")

in_state = {state: [r for r in records if r["state"] == state] for state in logic.STATE_LABELS}
m = st.columns(5)
m[0].metric("Học sinh", len(records))
m[1].metric("Cần kiểm tra", len(in_state["draft"]) + len(in_state["in_review"]))
m[2].metric("Đã duyệt, chờ ký", len(in_state["reviewed"]))
m[3].metric(
    "Đã ký", sum(1 for r in records if r["state"] not in ("draft", "in_review", "reviewed"))
)
m[4].metric("Cảnh báo TT27", sum(1 for r in records if r["flags"]))

if in_state["draft"]:
    if st.button(f"Nhận {len(in_state['draft'])} bản nháp để kiểm tra", type="primary"):
        with session() as s:
            res = transition(
                s, [r["id"] for r in in_state["draft"]], "send_to_review", viewer.actor
            )
        flash(f"Nhận bản nháp: {res.summary()}", "success" if not res.failed else "warning")
        st.rerun()

st.dataframe(
    pd.DataFrame(
        [
            {
                "Học sinh": r["full_name"],
                "Mã HS": r["pupil_code"],
                "Số định danh": r["cccd"],
                "Trạng thái": logic.state_label(r["state"]),
                "Kết quả (TT27)": r["computed_result"],
                "Kết quả nhập": r["entered_result"],
                "Cảnh báo": f"{r['flags']} cảnh báo" if r["flags"] else "",
                "Lý do trả lại": r["return_reason"] or "",
            }
            for r in records
        ]
    ),
    hide_index=True,
    width="stretch",
)

flagged = [r for r in records if r["flags"] and r["state"] in ("draft", "in_review")]
if flagged:
    with st.expander(f"Cảnh báo của kiểm tra TT27 ({len(flagged)} học bạ)", expanded=True):
        st.caption(
            "[Chặn duyệt]: phải sửa dữ liệu (nhập lại tệp Excel) rồi mới duyệt được; "
            "[Lưu ý]: nên xem lại nhưng không chặn duyệt."
        )
        for r in flagged:
            st.markdown(f"**{r['full_name']}**")
            for line in logic.flag_lines(r["flag_list"]):
                st.markdown(f"- {line}")

approvable = [r["id"] for r in in_state["in_review"] if not logic.has_blocking_flag(r["flag_list"])]
if approvable and st.button(f"Duyệt {len(approvable)} học bạ không có lỗi chặn"):
    with session() as s:
        res = transition(s, approvable, "approve", viewer.actor)
    flash(f"Duyệt: {res.summary()}", "success" if not res.failed else "warning")
    st.rerun()

st.subheader("Xem từng học bạ")
options = [None, *[r["id"] for r in records]]
rid = st.selectbox(
    "Học bạ",
    options,
    format_func=lambda i: (
        "— chọn học sinh —"
        if i is None
        else f"{by_id[i]['full_name']} — {logic.state_label(by_id[i]['state'])}"
    ),
    key="gv_open",
)
if rid is None:
    forget_view(PAGE)
else:
    with session() as s:
        row = queries.record_document_row(s, viewer, rid)
    if row is None:
        st.warning("Học bạ này không còn thuộc lớp của bạn. Hãy tải lại trang.")
    else:
        if row.get("return_reason") and row["state"] == "in_review":
            st.warning(f"Học bạ đã bị trả lại: {row['return_reason']}")
        for line in logic.flag_lines(row.get("flag_list")):
            st.warning(line)
        a1, a2 = st.columns(2)
        if row["state"] == "in_review" and a1.button("Duyệt học bạ này", type="primary"):
            with session() as s:
                res = transition(s, [rid], "approve", viewer.actor)
            if res.failed:
                st.error(res.failed[rid])
            else:
                flash(f"Đã duyệt học bạ của {row['full_name']}.")
                st.rerun()
        if row["state"] == "reviewed":
            with a2.form("gv_reopen", clear_on_submit=True):
                reason = st.text_input("Lý do mở lại để sửa")
                if st.form_submit_button("Mở lại để sửa"):
                    try:
                        with session() as s:
                            reopened = transition(s, [rid], "reopen", viewer.actor, reason=reason)
                    except TransitionError as exc:
                        st.error(exc.message)
                    else:
                        if reopened.failed:
                            st.error(reopened.failed[rid])
                        else:
                            flash(f"Đã mở lại học bạ của {row['full_name']}.")
                            st.rerun()
        show_record(viewer, row, PAGE, may_reveal_id=True)

st.subheader("Ký số cả lớp")
to_sign = [r["id"] for r in in_state["reviewed"]]
if not to_sign:
    st.caption("Chưa có học bạ nào đã duyệt chờ ký.")
else:
    key = backend_choice(viewer, "GVCN", klass["school_code"], PAGE)
    with st.form("gv_sign", clear_on_submit=True):
        st.write(
            f"Bạn sắp ký **{len(to_sign)} học bạ đã duyệt** của lớp {klass['class_name']} bằng "
            "chứng thư số của bạn. Một lần xác nhận cho cả lớp."
        )
        passphrase = passphrase_input(key, "gv_passphrase") if key else ""
        go = st.form_submit_button(
            f"Ký {len(to_sign)} học bạ",
            type="primary",
            disabled=key is None or st.session_state.get(f"{PAGE}_session") is not None,
        )
    if go and key is not None:
        results = sign_with(
            viewer, "GVCN", klass["school_code"], to_sign, key, passphrase, by_id, PAGE
        )
        del passphrase
        if results is not None:
            st.session_state["gv_results"] = results
            forget_view(PAGE)
            st.rerun()
