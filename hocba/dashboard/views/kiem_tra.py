"""Kiểm tra: verify a record from an uploaded XML or signed PDF file, or its lookup code;
the report of :func:`hocba.xml.verify.verify_document` (or, for a PDF,
:func:`hocba.pdf.verify.verify_pdf`: the PDF's signatures, then the record XML it
carries) as a check list. Every check and every lookup is logged."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import streamlit as st

from hocba.config import load_settings
from hocba.dashboard.auth import require
from hocba.dashboard.common import log_event, session
from hocba.models import queries
from hocba.tasks.long_term import configured_crl_source, configured_ocsp_source
from hocba.tasks.registry import DatabaseRegistry

ICONS = {
    "pass": ":green[:material/check_circle:]",
    "fail": ":red[:material/cancel:]",
    "indeterminate": ":orange[:material/help:]",
}
CHECK_TITLES = {
    "SAFE_PARSE": "Tệp an toàn, đọc được",
    "SCHEMA": "Đúng lược đồ học bạ (XSD)",
    "SIGNATURE_GVCN": "Chữ ký giáo viên chủ nhiệm",
    "TIMESTAMP": "Dấu thời gian (RFC 3161)",
    "SIGNATURE_CBQL": "Chữ ký Hiệu trưởng",
    "SIGNATURE_KY_PHAT_HANH": "Chữ ký phát hành (con dấu của trường)",
    "SIGNING_ORDER": "Thứ tự ký",
    "REVOCATION": "Chứng thư số không bị thu hồi",
    "ROLE_GVCN": "Người ký là GVCN của lớp",
    "ROLE_CBQL": "Người ký là Hiệu trưởng (hoặc được ủy quyền)",
    "SCHOOL_CERTIFICATE": "Chứng thư số của trường đã được phê duyệt",
    "REGISTRY_MATCH": "Khớp sổ học bạ đã phát hành",
    "PDF_PARSE": "Tệp PDF đọc được",
    "PDF_SIGNATURE_PRINCIPAL": "Chữ ký số của Hiệu trưởng trên bản PDF",
    "PDF_SIGNATURE_SEAL": "Con dấu số của trường trên bản PDF",
    "PDF_LOCK": "Bản PDF không bị sửa sau khi ký",
    "PDF_REVOCATION": "Chứng thư ký bản PDF không bị thu hồi",
    "PDF_EMBEDDED_XML": "Tệp XML học bạ đính kèm trong bản PDF",
}
MAX_UPLOAD = 5_000_000
MAX_PDF_UPLOAD = 20_000_000

viewer = require()
st.title("Kiểm tra học bạ số")
st.caption(
    "Tải lên tệp XML học bạ hoặc nhập mã số tra cứu: hệ thống kiểm tra chữ ký, chứng thư số, "
    "vai trò người ký, thứ tự ký, con dấu của trường và đối chiếu với sổ học bạ đã phát hành."
)


def verify(data: bytes) -> Any:
    """The verification report of an XML record or of a signed PDF book."""
    from hocba.tasks.issuance import trust_anchors
    from hocba.xml.verify import verify_document

    check: Any = verify_document
    if data.startswith(b"%PDF-"):
        from hocba.pdf.verify import verify_pdf

        check = verify_pdf
    home = load_settings().home
    with session() as s:
        return check(
            data,
            trusted_roots=trust_anchors(home),
            registry=DatabaseRegistry(s),
            crl_source=configured_crl_source(),
            ocsp_source=configured_ocsp_source(),
        )


def _timestamp_times(report: Any) -> str | None:
    """The timestamp times of the report, in Vietnam time (None: no timestamp, level B)."""
    import datetime as dt

    vn = dt.timezone(dt.timedelta(hours=7))
    times = getattr(report, "timestamps", None) or {}
    return (
        "; ".join(
            f"{label} {dt.datetime.fromisoformat(value).astimezone(vn):%d/%m/%Y %H:%M:%S}"
            for label, value in times.items()
        )
        or None
    )


def show_report(report: Any) -> None:
    verdict = report.verdict.value
    if verdict == "VALID":
        st.success("HỢP LỆ — học bạ số đúng như đã phát hành.")
    elif verdict == "INVALID":
        st.error("KHÔNG HỢP LỆ — xem các mục màu đỏ bên dưới.")
    else:
        st.warning("CHƯA KẾT LUẬN ĐƯỢC — một số mục chưa kiểm tra được lúc này; hãy thử lại sau.")
    facts = [
        ("Học sinh", report.pupil_name),
        ("Lớp", report.class_name),
        ("Năm học", report.school_year),
        ("Mã trường", report.school_code),
        ("Mã tra cứu", report.lookup_code),
        ("Dấu thời gian", _timestamp_times(report)),
    ]
    st.markdown("  \n".join(f"{k}: **{v}**" for k, v in facts if v))
    for check in report.checks:
        status = str(check.status)
        title = CHECK_TITLES.get(check.code, check.code)
        st.markdown(f"{ICONS[status]} **{title}** — {check.message_vi}")


tab_file, tab_code = st.tabs(["Tải tệp XML hoặc PDF", "Nhập mã tra cứu"])
with tab_file:
    upload = st.file_uploader("Tệp XML hoặc PDF học bạ", type=["xml", "pdf"], key="kt_file")
    if upload is not None:
        data = upload.getvalue()
        is_pdf = data.startswith(b"%PDF-")
        if len(data) > (MAX_PDF_UPLOAD if is_pdf else MAX_UPLOAD):
            st.error(
                "Tệp quá lớn (XML tối đa 5 MB, PDF tối đa 20 MB): không phải một học bạ. Hãy "
                "chọn đúng tệp học bạ."
            )
        else:
            report = verify(data)
            sha = hashlib.sha256(data).hexdigest()
            if st.session_state.get("kt_logged") != sha:  # once per file, not per rerun
                log_event(
                    viewer,
                    "verify",
                    school_code=None,
                    payload={"file_sha256": sha, "verdict": report.verdict.value},
                )
                st.session_state["kt_logged"] = sha
            show_report(report)
with tab_code:
    with st.form("kt_code_form"):
        raw = st.text_input("Mã số tra cứu học bạ", key="kt_code")
        go = st.form_submit_button("Kiểm tra")
    if go:
        try:
            code = uuid.UUID(raw.strip())
        except ValueError:
            st.error("Mã tra cứu gồm 32 chữ số và chữ cái a-f, dạng 8-4-4-4-12 (UUID).")
        else:
            with session() as s:
                found = queries.issued_by_lookup_code(s, code)
            if found is None:
                log_event(viewer, "lookup", school_code=None, payload={"found": False})
                st.error("Không có học bạ đã phát hành nào với mã tra cứu này.")
            else:
                report = verify(bytes(found["signed_xml"]))
                log_event(
                    viewer,
                    "lookup",
                    school_code=found["school_code"],
                    record_id=found["id"],
                    payload={"verdict": report.verdict.value},
                )
                show_report(report)
