"""Học bạ: find a pupil's record by name, pupil code or lookup code; read it as it will
print, with its history (every event, who and when); download the issued XML; request a
correction of an issued record."""

from __future__ import annotations

import streamlit as st

from hocba.dashboard import logic
from hocba.dashboard.auth import require
from hocba.dashboard.common import (
    choose,
    flash,
    forget_view,
    log_event,
    session,
    show_flash,
    show_table,
    url_param,
)
from hocba.dashboard.record_view import show_record
from hocba.models import corrections, queries

PAGE = "records"
viewer = require("principal", "vice_principal", "clerk", "district_officer", "homeroom_teacher")
st.title("Tra cứu học bạ")
show_flash()
# Links: ?ma=<pupil code, name or lookup code> fills the search box once; ?hoc_ba=<id>
# opens one record. Both go through the same scoped queries as typing would.
linked_query = url_param("ma")
if linked_query and st.session_state.get("_url_hb_query") != linked_query:
    st.session_state["_url_hb_query"] = linked_query
    st.session_state["hb_query"] = linked_query
linked_id = url_param("hoc_ba")
query = st.text_input(
    "Tìm theo họ tên, mã học sinh hoặc mã số tra cứu học bạ",
    key="hb_query",
    placeholder="ví dụ: Nguyễn Văn An, DH01240001, 3f1c…",
    help="Không phân biệt chữ hoa, chữ thường và dấu. Chỉ tìm trong phạm vi bạn được xem.",
)
if not query.strip() and linked_id is None:
    forget_view(PAGE)
    st.stop()
rid: int | None
if not query.strip():  # only the linked record (?hoc_ba=<id>), if the viewer may see it
    rid = int(linked_id) if linked_id and linked_id.isdigit() else -1
else:
    with session() as s:
        found = queries.find_records(s, viewer, query)
    if not found:
        st.info("Không tìm thấy học bạ nào trong phạm vi bạn được xem.")
        forget_view(PAGE)
        st.stop()
    st.caption(f"{len(found)} học bạ" + (" (hiện 50 kết quả đầu)" if len(found) >= 50 else ""))
    show_table(
        [
            {
                "Học sinh": r["full_name"],
                "Mã HS": r["pupil_code"],
                "Số định danh": r["cccd"],
                "Ngày sinh": logic.fmt_date(r["birth_date"]),
                "Lớp": r["class_name"],
                "Trường": r["school_code"],
                "Năm học": r["school_year"],
                "Trạng thái": logic.state_label(r["state"]),
                "Mã tra cứu": str(r["lookup_code"] or ""),
            }
            for r in found
        ]
    )
    by_id = {r["id"]: r for r in found}
    rid = choose(
        "Mở học bạ",
        {
            i: f"{r['full_name']} — lớp {r['class_name']} ({r['school_code']}, {r['school_year']})"
            for i, r in by_id.items()
        },
        "— chọn học bạ —",
        key="hb_open",
    )
if rid is None:
    forget_view(PAGE)
    st.stop()
with session() as s:
    row = queries.record_document_row(s, viewer, rid)
    history = queries.record_history(s, viewer, rid)
    issued = queries.issued_xml(s, viewer, rid)
if row is None:
    st.warning("Không mở được học bạ này (ngoài phạm vi bạn được xem).")
    st.stop()

st.markdown(
    f"**{row['full_name']}** — lớp {row['class_name']}, {row['school_name']}, năm học "
    f"{row['year_name']}  \n"
    f"Trạng thái: **{logic.state_label(row['state'])}** · Kết quả: "
    f"**{logic.RESULT_LABELS.get(row['computed_result'], row['computed_result'])}** · "
    f"Đợt: **{'tháng 6' if row['cohort'] == 'june' else 'tháng 8'}** · Phát hành: "
    f"**{logic.fmt_date(row['issued_at']) or 'chưa'}**"
)
if issued:
    code = str(issued["lookup_code"])
    st.write(f"Mã số tra cứu học bạ: `{code}`")
    issued_school = str(issued["school_code"])

    def _log_export() -> None:
        log_event(
            viewer,
            "export",
            school_code=issued_school,
            record_id=rid,
            payload={"page": PAGE},
        )

    st.download_button(
        "Tải tệp XML đã phát hành",
        bytes(issued["signed_xml"]),
        file_name=f"{code}.xml",
        mime="application/xml",
        on_click=_log_export,
        key="hb_download",
    )
    pdf_key = f"hb_pdf_{rid}"
    if pdf_key not in st.session_state:
        if st.button("Lập bản PDF (bản xem, có mã QR tra cứu)", key="hb_pdf_make"):
            from hocba.config import load_settings
            from hocba.pdf.render import render_book

            with st.spinner("Đang lập bản PDF…"):
                st.session_state[pdf_key] = render_book(
                    [bytes(issued["signed_xml"])], verify_url=load_settings().verify_url
                )
            log_event(
                viewer,
                "export",
                school_code=issued["school_code"],
                record_id=rid,
                payload={"page": PAGE, "format": "pdf"},
            )
            st.rerun()
    else:
        st.download_button(
            "Tải bản PDF",
            st.session_state[pdf_key],
            file_name=f"{code}.pdf",
            mime="application/pdf",
            key="hb_pdf_download",
            on_click="ignore",
        )
    st.caption(
        "Bản PDF có chữ ký số của Hiệu trưởng và con dấu (để in, lưu hồ sơ) do nhà trường lập "
        "bằng lệnh `hocba print-class`."
    )

tab_print, tab_history, tab_fix = st.tabs(["Học bạ (như khi in)", "Lịch sử", "Chỉnh lý"])
with tab_print:
    show_record(viewer, row, PAGE)
with tab_history:
    show_table(
        [
            {
                "Thời điểm": logic.fmt_datetime(h["at"]),
                "Người thực hiện": h["who"],
                "Việc": logic.ACTION_LABELS.get(h["action"], h["action"]),
                "Từ": logic.state_label(h["from_state"]) if h["from_state"] else "",
                "Sang": logic.state_label(h["to_state"]) if h["to_state"] else "",
                "Lý do": h["reason"] or "",
            }
            for h in history
        ]
    )
with tab_fix:
    may_request = row["school_id"] in viewer.schools_with({"principal", "vice_principal", "clerk"})
    if row["state"] not in corrections.CORRECTABLE:
        st.caption(
            "Chỉ học bạ đã phát hành mới cần yêu cầu chỉnh lý; học bạ chưa phát hành thì GVCN "
            "mở lại để sửa (hoặc Hiệu trưởng trả lại GVCN)."
        )
    elif not may_request:
        st.caption("Hiệu trưởng hoặc văn thư của trường lập yêu cầu chỉnh lý; Phòng GDĐT duyệt.")
    else:
        with st.form("hb_correction", clear_on_submit=True):
            reason = st.text_area("Lý do chỉnh lý")
            decision = st.text_input("Số quyết định hộ tịch (nếu có)")
            send = st.form_submit_button("Gửi yêu cầu chỉnh lý lên Phòng GDĐT")
        if send:
            try:
                with session() as s:
                    req = corrections.request(s, rid, viewer.actor, reason, decision or None)
            except corrections.CorrectionError as exc:
                st.error(str(exc))
            else:
                flash(f"Đã gửi yêu cầu chỉnh lý số {req}; chờ Phòng GDĐT duyệt.")
                st.rerun()
