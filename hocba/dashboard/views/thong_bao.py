"""Thông báo: the messages sent to me (and, for principals, clerks and district officers,
about their schools and units), their delivery status, and a test message to my own
channels. Failed deliveries are listed first so someone fixes the channel."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from sqlalchemy import text

from hocba.dashboard.auth import require
from hocba.dashboard.common import session
from hocba.models.notifications import notification_log
from hocba.notify import list_channels, send_test_message

viewer = require()
st.title("Thông báo")
st.caption(
    "Tin nhắc việc theo hạn nộp gửi qua email, tin nhắn, ứng dụng chat (Apprise). "
    "Mỗi người nhận tối đa một tin mỗi loại mỗi ngày."
)

with session() as s:
    units = list(
        s.connection().scalars(
            text(
                "SELECT unit_id FROM staff_role WHERE staff_id = :s AND unit_id IS NOT NULL "
                "AND role = 'district_officer'"
            ),
            {"s": viewer.staff_id},
        )
    )
    only_failed = st.toggle("Chỉ tin gửi không thành công", key="tb_failed")
    mine = not viewer.admin  # an administrator sees every message, others their own scope
    rows = notification_log(
        s,
        staff_ids=[viewer.staff_id] if mine else None,
        school_ids=viewer.full_schools if mine else None,
        unit_ids=units if mine else None,
        statuses=["failed", "gave_up"] if only_failed else None,
        limit=300,
    )
    channels = list_channels(s, viewer.staff_id)

if not rows:
    st.info("Chưa có thông báo nào trong phạm vi của bạn.")
else:
    frame = pd.DataFrame(
        [
            {
                "Ngày": r["local_date"],
                "Loại": r.get("kind_label") or r["kind"],
                "Người nhận": r.get("recipient") or r.get("staff_name") or r.get("tag"),
                "Tiêu đề": r["subject"],
                "Trạng thái": r.get("status_label") or r["status"],
                "Số lần gửi": r["attempts"],
                "Lỗi gần nhất": r["last_error"] or "",
            }
            for r in rows
        ]
    )
    st.dataframe(frame, hide_index=True, use_container_width=True)
    with st.expander("Xem nội dung một tin"):
        pick = st.selectbox(
            "Tin",
            range(len(rows)),
            key="tb_pick",
            format_func=lambda i: f"{rows[i]['local_date']} — {rows[i]['subject']}",
        )
        st.text(rows[pick]["body"])

st.subheader("Kênh nhận thông báo của tôi")
if channels:
    for c in channels:
        st.write(f"- {c['url']}")
else:
    st.warning(
        "Bạn chưa có kênh nhận thông báo nào: nhờ quản trị viên thêm email hoặc số "
        "điện thoại (hocba notify channel-add)."
    )
if st.button("Gửi thử một tin tới các kênh của tôi", key="tb_test", disabled=not channels):
    with session() as s:
        result = send_test_message(s, viewer.staff_id)
    (st.success if result.ok else st.error)(result.message)
