"""Quản trị: staff and roles (administrator), the schools' certificates and their approval
(district officer), deadlines per province, correction requests to decide, the staff's
notification channels (URLs masked; the administrator adds them)."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from hocba.dashboard import logic
from hocba.dashboard.auth import require
from hocba.dashboard.common import choose, flash, log_event, session, show_flash, show_table
from hocba.models import calendar, certificates, corrections, org, queries
from hocba.models.lifecycle_states import COHORT_LABELS, ROLE_LABELS, ROLES

CERT_STATUS = {
    "pending": "Chờ duyệt",
    "approved": "Đã duyệt",
    "rejected": "Từ chối",
    "revoked": "Thu hồi",
}

viewer = require("district_officer")
st.title("Quản trị")
show_flash()
is_officer = viewer.has_role("district_officer")
tabs = st.tabs(["Chứng thư số", "Chỉnh lý", "Hạn nộp", "Cán bộ và vai trò", "Kênh thông báo"])

with tabs[0]:
    with session() as s:
        certs = queries.school_certificate_list(s, viewer)
    if not certs:
        st.info("Chưa có chứng thư số tổ chức nào được đăng ký.")
    else:
        show_table(
            [
                {
                    "Trường": f"{c['school_code']} — {c['school_name']}",
                    "Trạng thái": CERT_STATUS.get(c["status"], c["status"]),
                    "Chủ thể": c["subject"],
                    "Số hiệu": c["serial_number"],
                    "Loại": f"{c['kind']} / {c['provider']}",
                    "Hiệu lực đến": logic.fmt_date(c["not_after"]),
                    "Người duyệt": c["decided_by"] or "",
                    "Lý do": c["decision_reason"] or "",
                }
                for c in certs
            ]
        )
        pending = [c for c in certs if c["status"] == "pending"]
        if pending and is_officer:
            st.subheader("Phê duyệt chứng thư số của trường")
            with st.form("qt_cert"):
                cert_id = st.selectbox(
                    "Chứng thư chờ duyệt",
                    [c["id"] for c in pending],
                    format_func=lambda i: next(
                        f"{c['school_code']} — {c['subject']}" for c in pending if c["id"] == i
                    ),
                )
                reason = st.text_input("Lý do (bắt buộc khi từ chối)")
                b1, b2 = st.columns(2)
                approve = b1.form_submit_button("Phê duyệt", type="primary")
                reject = b2.form_submit_button("Từ chối")
            if approve or reject:
                try:
                    with session() as s:
                        certificates.decide(
                            s, cert_id, viewer.actor, approve=approve, reason=reason or None
                        )
                except certificates.CertificateError as exc:
                    st.error(str(exc))
                else:
                    flash("Đã phê duyệt chứng thư số." if approve else "Đã từ chối chứng thư số.")
                    st.rerun()

with tabs[1]:
    with session() as s:
        pending_fix = queries.correction_requests(s, viewer)
    if not pending_fix:
        st.info("Không có yêu cầu chỉnh lý nào đang chờ.")
    else:
        show_table(
            [
                {
                    "Số": q["id"],
                    "Trường": q["school_code"],
                    "Học sinh": q["full_name"],
                    "Lớp": q["class_name"],
                    "Năm học": q["school_year"],
                    "Lý do": q["reason"],
                    "Quyết định hộ tịch": q["decision_document"] or "",
                    "Người đề nghị": q["requested_by"],
                    "Ngày": logic.fmt_date(q["requested_at"]),
                }
                for q in pending_fix
            ]
        )
        if is_officer:
            with st.form("qt_fix"):
                req_id = st.selectbox("Yêu cầu", [q["id"] for q in pending_fix])
                why = st.text_input("Lý do từ chối (nếu từ chối)")
                b1, b2 = st.columns(2)
                ok = b1.form_submit_button(
                    "Duyệt: thu hồi học bạ cũ, lập bản nháp thay thế", type="primary"
                )
                no = b2.form_submit_button("Từ chối")
            if ok or no:
                try:
                    with session() as s:
                        new = corrections.decide(
                            s, req_id, viewer.actor, approve=ok, reason=why or None
                        )
                except corrections.CorrectionError as exc:
                    st.error(str(exc))
                else:
                    flash(
                        f"Đã duyệt: học bạ cũ bị thu hồi; bản nháp mới #{new} chờ GVCN kiểm tra."
                        if ok
                        else "Đã từ chối yêu cầu chỉnh lý."
                    )
                    st.rerun()

with tabs[2]:
    with session() as s:
        deadlines = queries.deadline_table(s, viewer)
    show_table(
        [
            {
                "Tỉnh/thành phố": d["province"],
                "Năm học": d["school_year"],
                "Đợt": COHORT_LABELS[d["cohort"]],
                "Hạn nộp": logic.fmt_date(d["due_date"]),
                "Nguồn": "Tỉnh quy định" if d["override"] else "Mặc định (15/6, 15/8)",
            }
            for d in deadlines
        ]
    )
    if viewer.admin and deadlines:
        provinces = {d["province_id"]: d["province"] for d in deadlines}
        years = {d["school_year_id"]: d["school_year"] for d in deadlines}
        with st.form("qt_deadline"):
            c1, c2, c3, c4 = st.columns(4)
            province = c1.selectbox("Tỉnh", list(provinces), format_func=provinces.__getitem__)
            year_id = c2.selectbox("Năm học", list(years), format_func=years.__getitem__)
            cohort = c3.selectbox("Đợt", ["june", "august"], format_func=COHORT_LABELS.__getitem__)
            due = c4.date_input("Hạn nộp", value=dt.date.today(), format="DD/MM/YYYY")
            if st.form_submit_button("Lưu hạn nộp"):
                with session() as s:
                    calendar.set_deadline(s, province, year_id, cohort, due)
                log_event(
                    viewer,
                    "set_deadline",
                    school_code=None,
                    payload={
                        "province_id": province,
                        "school_year_id": year_id,
                        "cohort": cohort,
                        "due_date": due.isoformat(),
                    },
                )
                flash(
                    f"Đã đặt hạn {COHORT_LABELS[cohort]} của {provinces[province]}: {due:%d/%m/%Y}."
                )
                st.rerun()

with tabs[3]:
    with session() as s:
        staff = queries.staff_roles(s, viewer)
    show_table(
        [
            {
                "Tên đăng nhập": p["username"],
                "Họ và tên": p["full_name"],
                "Số định danh": p["cccd"] or "",
                "E-mail": p["email"] or "",
                "Hoạt động": "có" if p["active"] else "đã khóa",
                "Vai trò": p["roles"] or "",
            }
            for p in staff
        ]
    )
    if not viewer.admin:
        st.caption("Thêm cán bộ và phân quyền do quản trị hệ thống thực hiện.")
    else:
        c1, c2 = st.columns(2)
        with c1.form("qt_staff", clear_on_submit=True):
            st.markdown("**Thêm / cập nhật cán bộ**")
            username = st.text_input("Tên đăng nhập")
            full_name = st.text_input("Họ và tên")
            cccd = st.text_input("Số định danh (12 chữ số)")
            email = st.text_input("E-mail")
            password = st.text_input("Mật khẩu mới (để trống: giữ nguyên)", type="password")
            if st.form_submit_button("Lưu cán bộ"):
                if not username.strip() or not full_name.strip():
                    st.error("Cần tên đăng nhập và họ tên.")
                elif cccd and not (cccd.isdigit() and len(cccd) == 12):
                    st.error("Số định danh phải gồm đúng 12 chữ số.")
                else:
                    with session() as s:
                        org.ensure_staff(
                            s,
                            username.strip(),
                            full_name.strip(),
                            cccd or None,
                            email or None,
                            password=password or None,
                        )
                    log_event(
                        viewer, "staff_update", school_code=None, payload={"username": username}
                    )
                    flash(f"Đã lưu cán bộ {username}.")
                    st.rerun()
        with c2.form("qt_role", clear_on_submit=True):
            st.markdown("**Giao vai trò**")
            who = st.text_input("Tên đăng nhập của cán bộ")
            role = st.selectbox("Vai trò", list(ROLES), format_func=ROLE_LABELS.__getitem__)
            school_code = st.text_input("Mã trường (vai trò ở trường)")
            unit_code = st.text_input("Mã đơn vị (cán bộ Phòng/Sở)")
            delegated = st.checkbox("Được ủy quyền ký thay Hiệu trưởng (Phó hiệu trưởng)")
            if st.form_submit_button("Giao vai trò"):
                try:
                    with session() as s:
                        org.grant(
                            s,
                            who.strip(),
                            role,
                            school_code=school_code.strip() or None,
                            unit_code=unit_code.strip() or None,
                            delegated=delegated,
                        )
                except Exception as exc:  # noqa: BLE001 - shown to the administrator
                    st.error(f"Không giao được vai trò: {exc}")
                else:
                    log_event(
                        viewer,
                        "grant_role",
                        school_code=None,
                        payload={"username": who, "role": role, "school": school_code or None},
                    )
                    flash(f"Đã giao vai trò {ROLE_LABELS[role]} cho {who}.")
                    st.rerun()

with tabs[4]:
    with session() as s:
        people = {p["id"]: p for p in queries.staff_roles(s, viewer)}
    st.caption(
        "Kênh nhận tin nhắc việc của từng cán bộ (email, tin nhắn, ứng dụng chat — cú pháp "
        "Apprise). Mật khẩu và mã bí mật trong địa chỉ luôn được che."
    )
    staff_id = choose(
        "Cán bộ",
        {i: f"{p['full_name']} ({p['username']})" for i, p in people.items()},
        "— chọn cán bộ —",
        key="qt_channel_staff",
    )
    if staff_id is not None:
        from hocba.notify import NotifyError, add_channel, list_channels

        with session() as s:
            channels = list_channels(s, staff_id)
        if channels:
            show_table(
                [
                    {
                        "Loại": c["kind"],
                        "Địa chỉ (đã che)": c["url"],
                        "Hoạt động": "có" if c["active"] else "tắt",
                        "Ngày thêm": logic.fmt_date(c["created_at"]),
                    }
                    for c in channels
                ]
            )
        else:
            st.info(f"{people[staff_id]['full_name']} chưa có kênh nhận thông báo nào.")
        if not viewer.admin:
            st.caption("Thêm kênh do quản trị hệ thống thực hiện.")
        else:
            with st.form("qt_channel", clear_on_submit=True):
                url = st.text_input(
                    "Địa chỉ kênh (Apprise)",
                    type="password",
                    placeholder="mailtos://tai-khoan:mat-khau@mail.truong.edu.vn?to=...",
                )
                add = st.form_submit_button("Thêm kênh")
            if add:
                try:
                    with session() as s:
                        add_channel(s, staff_id, url)
                except NotifyError as exc:
                    st.error(str(exc))
                else:
                    log_event(
                        viewer,
                        "channel_add",
                        school_code=None,
                        payload={"username": people[staff_id]["username"]},
                    )
                    flash(f"Đã thêm kênh thông báo cho {people[staff_id]['full_name']}.")
                    st.rerun()
