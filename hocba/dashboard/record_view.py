"""A record laid out as it will print (the Ministry's layout of the paper copy, HOCBA_SPEC
§4): information page with the lookup code, then 1 subjects, 2 qualities,
3 competences, 4 year result, 5 awards, 6 completion, and the signatures.

The data shown is the signed XML when the record has one (what was signed is what
prints), otherwise the document the teacher's signature would sign, built by
:func:`hocba.xml.document.document_of` from the same row. Subject comments are
not part of the XML and come from the record's content. Every value is HTML-escaped.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

import streamlit as st

from hocba.dashboard import logic
from hocba.dashboard.common import log_view
from hocba.models import queries, tt27
from hocba.models.queries import Viewer
from hocba.xml.document import document_of
from hocba.xml.record import RecordDocument, RecordXmlError, read_record_document

_CSS = """
<style>
.hb-page{background:#fff;color:#111;border:1px solid #bbb;border-radius:4px;padding:18px 26px;
 font-family:"Times New Roman",Times,serif;font-size:15px;line-height:1.45;max-width:920px}
.hb-page h3{font-size:17px;margin:14px 0 6px 0;text-transform:uppercase}
.hb-page .hb-head{text-align:center;margin-bottom:8px}
.hb-page .hb-title{font-size:22px;font-weight:bold;letter-spacing:1px;margin:6px 0}
.hb-page table{border-collapse:collapse;width:100%;margin:4px 0 8px 0}
.hb-page td,.hb-page th{border:1px solid #999;padding:3px 6px;vertical-align:top}
.hb-page th{background:#f1f1f1}
.hb-page .hb-kv td{border:none;padding:1px 6px}
.hb-page .hb-sign td{border:none;text-align:center;width:33%}
.hb-page .hb-code{font-family:monospace;font-size:14px}
.hb-page .hb-muted{color:#666;font-style:italic}
</style>
"""


def _e(value: Any) -> str:
    if value is None or value == "":
        return ""
    return html.escape(str(value))


def _date(value: Any) -> str:
    if not value:
        return ""
    try:
        return dt.date.fromisoformat(str(value)[:10]).strftime("%d/%m/%Y")
    except ValueError:
        return _e(value)


def document_for(row: dict[str, Any]) -> RecordDocument:
    """The document to print: the signed XML when there is one, else the one to sign."""
    if row.get("signed_xml"):
        try:
            return read_record_document(bytes(row["signed_xml"]))
        except RecordXmlError:
            pass
    return document_of(row)


def record_html(row: dict[str, Any], *, reveal_id: bool = False) -> str:
    """The printed layout of one record as an HTML fragment."""
    doc = document_for(row)
    info, summary = doc.thong_tin_chung, doc.tong_ket
    grade = int(info.get("MA_KHOI") or row.get("grade") or 1)
    content = row.get("content") or {}
    cccd = info.get("SO_CCCD")
    shown_id = cccd if reveal_id else queries.mask_cccd(None if cccd is None else str(cccd))
    code = info.get("MA_TRA_CUU_UUID") if row.get("xml_sha256") else None
    parts = [_CSS, '<div class="hb-page">']
    parts.append(
        '<div class="hb-head">'
        f"<div>{_e(info.get('TEN_SO_GD'))}</div>"
        f"<div><b>{_e(info.get('TEN_TRUONG'))}</b></div>"
        '<div class="hb-title">HỌC BẠ</div>'
        f"<div>Năm học {_e(info.get('TEN_NAM_HOC'))} — Lớp {_e(info.get('TEN_LOP'))}</div>"
        f"<div>Mã số tra cứu học bạ: <span class='hb-code'>{_e(code)}</span>"
        + ("" if code else "<span class='hb-muted'>(cấp khi phát hành)</span>")
        + "</div></div>"
    )
    kv = [
        ("Họ và tên", info.get("HO_VA_TEN")),
        ("Giới tính", info.get("GIOI_TINH")),
        ("Ngày sinh", _date(info.get("NGAY_SINH"))),
        ("Số định danh cá nhân", shown_id),
        ("Mã học sinh", info.get("MA_HOC_SINH")),
        ("Số đăng bộ", info.get("SO_SO_DANG_BO")),
        ("Dân tộc", info.get("DAN_TOC")),
        ("Quốc tịch", info.get("QUOC_TICH")),
        ("Nơi sinh", info.get("NOI_SINH")),
        ("Quê quán", info.get("QUE_QUAN")),
        ("Chỗ ở hiện nay", info.get("CHO_O_HIEN_NAY")),
        ("Họ và tên cha", info.get("HO_VA_TEN_CHA")),
        ("Họ và tên mẹ", info.get("HO_VA_TEN_ME")),
        ("Người giám hộ", info.get("HO_VA_TEN_NGUOI_GIAM_HO")),
        (
            "Chiều cao (cm) / cân nặng (kg)",
            f"{info.get('CHIEU_CAO', '')} / {info.get('CAN_NANG', '')}",
        ),
        (
            "Số buổi nghỉ có phép / không phép",
            f"{info.get('TONG_SO_BUOI_NGHI_CO_PHEP', 0)} / "
            f"{info.get('THONG_SO_BUOI_NGHI_KHONG_PHEP', 0)}",
        ),
    ]
    parts.append('<table class="hb-kv">')
    parts += [f"<tr><td>{_e(k)}:</td><td><b>{_e(v)}</b></td></tr>" for k, v in kv]
    parts.append("</table>")

    comments_by_xml: dict[str, str] = {}
    for subject_code, value in (content.get("subjects") or {}).items():
        try:
            comments_by_xml[tt27.subject(subject_code, grade).xml_code] = value.get("comment")
        except tt27.Tt27Error:
            continue
    parts.append("<h3>1. Các môn học và hoạt động giáo dục</h3><table>")
    parts.append(
        "<tr><th>Môn học và hoạt động giáo dục</th><th>Mức đạt được</th>"
        "<th>Điểm KTĐK</th><th>Nhận xét</th></tr>"
    )
    for m in doc.mon_hoc:
        level = m.get("MUC_DAT_DUOC")
        parts.append(
            f"<tr><td>{_e(m.get('TEN_MON_HOC'))}</td>"
            f"<td>{_e(logic.SUBJECT_LEVELS.get(str(level), level))}</td>"
            f"<td style='text-align:center'>{_e(m.get('DIEM_KIEM_TRA_DINH_KY'))}</td>"
            f"<td>{_e(comments_by_xml.get(str(m.get('MA_MON_HOC'))))}</td></tr>"
        )
    parts.append("</table>")

    def traits(title: str, group: tuple[tt27.Trait, ...], comment_field: str) -> None:
        rows = [t for t in group if t.from_grade <= grade]
        parts.append(f"<h3>{title}</h3><table><tr><th>Nội dung</th><th>Mức đạt được</th></tr>")
        for t in rows:
            level = summary.get(t.xml_field)
            parts.append(
                f"<tr><td>{_e(t.name)}</td>"
                f"<td>{_e(logic.TRAIT_LEVELS.get(str(level), level))}</td></tr>"
            )
        parts.append("</table>")
        if summary.get(comment_field):
            parts.append(f"<div>Nhận xét: {_e(summary.get(comment_field))}</div>")

    traits("2. Những phẩm chất chủ yếu", tt27.QUALITIES, "NHAN_XET_PHAM_CHAT")
    traits("3a. Năng lực chung", tt27.GENERAL_COMPETENCES, "NHAN_XET_NANG_LUC_CHUNG")
    traits("3b. Năng lực đặc thù", tt27.SPECIFIC_COMPETENCES, "NHAN_XET_NANG_LUC_DAC_THU")
    result = summary.get("KET_QUA_XEP_LOAI")
    parts.append(
        "<h3>4. Đánh giá kết quả giáo dục</h3>"
        f"<div><b>{_e(logic.RESULT_LABELS.get(str(result), result))}</b></div>"
    )
    awards = [summary.get("NOI_DUNG_KHEN_THUONG"), summary.get("NOI_DUNG_KHEN_THUONG_DOT_XUAT")]
    awards_text = "; ".join(_e(a) for a in awards if a) or "<span class='hb-muted'>Không</span>"
    parts.append(f"<h3>5. Khen thưởng</h3><div>{awards_text}</div>")
    parts.append(
        "<h3>6. Hoàn thành chương trình lớp học / chương trình tiểu học</h3>"
        f"<div>{_e(summary.get('NOI_DUNG_HOAN_THANH_CHUONG_TRINH'))}</div>"
    )
    if summary.get("NHAN_XET_GVCN"):
        parts.append(
            f"<div style='margin-top:6px'>Nhận xét của giáo viên chủ nhiệm: "
            f"{_e(summary.get('NHAN_XET_GVCN'))}</div>"
        )

    def signed(name: Any, at: Any) -> str:
        if not at:
            return "<span class='hb-muted'>Chưa ký</span>"
        return f"Đã ký số {logic.fmt_datetime(at)}<br><b>{_e(name)}</b>"

    parts.append(
        f"<p style='text-align:right;margin-top:12px'>{_e(info.get('DIA_DANH_PHAT_HANH_HOC_BA'))}"
        f"{', ngày ' + logic.fmt_date(row['issued_at']) if row.get('issued_at') else ''}</p>"
        '<table class="hb-sign"><tr>'
        "<td><b>Giáo viên chủ nhiệm</b><br>"
        + signed(
            row.get("teacher_signer") or info.get("TEN_GIAO_VIEN_CHU_NHIEM"),
            row.get("teacher_signed_at"),
        )
        + f"</td><td><b>{_e(info.get('CHUC_VU_GIAM_HIEU_KY_HOC_BA') or 'Hiệu trưởng')}</b><br>"
        + signed(
            row.get("principal_signer") or info.get("TEN_GIAM_HIEU_KY_HOC_BA"),
            row.get("principal_signed_at"),
        )
        + "</td><td><b>Dấu của trường (phát hành)</b><br>"
        + signed(info.get("TEN_TRUONG"), row.get("issued_at"))
        + "</td></tr></table></div>"
    )
    return "".join(parts)


def show_record(
    viewer: Viewer, row: dict[str, Any], page: str, *, may_reveal_id: bool = False
) -> None:
    """Show the record as it will print; log the view (and an explicit reveal of the
    personal ID, offered only where the job needs it: the people who sign it)."""
    log_view(viewer, row["id"], row["school_code"], page)
    reveal = False
    if may_reveal_id and row.get("cccd"):
        reveal = st.toggle(
            "Hiện đầy đủ số định danh để đối chiếu (việc xem được ghi nhật ký)",
            key=f"reveal_{page}_{row['id']}",
        )
        if reveal:
            log_view(viewer, row["id"], row["school_code"], page, personal_id=True)
    st.html(record_html(row, reveal_id=reveal))
