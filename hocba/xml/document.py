"""From the database to the record document of HOCBA_SPEC §3 (pure mapping + one query).

``load_documents`` reads everything a batch of records needs in one statement and maps
each row to a :class:`~hocba.xml.record.RecordDocument`. Choices (docs/DECISIONS.md):

* the CBQL named in the data (``TEN_GIAM_HIEU_KY_HOC_BA``) is the school's principal on
  the day the data is built (a delegated vice principal when the school has no principal);
  the CBQL signature must come from that person;
* ``NGAY_KY_PHAT_HANH_HOC_BA`` is left out of the signed data (the seal's own signing time
  and ``KY_PHAT_HANH/NGAY_KY`` carry it): the data is signed before the seal exists;
* ``MA_TRA_CUU_UUID`` is the lookup code reserved when the teacher signs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from hocba.models import tt27
from hocba.models.queries import DOCUMENT_QUERY
from hocba.xml.record import RecordDocument, format_date

THONG_TU = "27/2020/TT-BGDĐT"
MA_CAP_HOC = "1"  # primary level (cấp tiểu học)



def load_documents(
    session: Session, record_ids: Sequence[int], today: dt.date | None = None
) -> dict[int, RecordDocument]:
    """The documents of ``record_ids`` (as they stand now), by record id."""
    rows = (
        session.connection()
        .execute(text(DOCUMENT_QUERY), {"ids": list(record_ids), "today": today or dt.date.today()})
        .mappings()
        .all()
    )
    return {row["id"]: document_of(row) for row in rows}


def document_of(row: Any) -> RecordDocument:
    """Map one row of ``DOCUMENT_QUERY`` (hocba.models.queries) to the spec's fields."""
    content: dict[str, Any] = row["content"]
    grade: int = row["grade"]
    result = tt27.YearResult(row["computed_result"])
    health, absences = content.get("health", {}), content.get("absences", {})
    comments, awards = content.get("comments", {}), content.get("awards", {})
    principal_title = "Hiệu trưởng" if row["principal_role"] == "principal" else "Phó hiệu trưởng"
    district = row["unit_name"] if row["unit_kind"] == "district" else None
    info: dict[str, Any] = {
        "PHIEN_BAN": "1.0",
        "THONG_TU": THONG_TU,
        "MA_TRA_CUU_UUID": str(row["lookup_code"]) if row["lookup_code"] else None,
        "TEN_NAM_HOC": row["year_name"],
        "MA_SO_GIAO_DUC": row["province_code"],
        "TEN_SO_GD": f"Sở Giáo dục và Đào tạo {row['province_name']}",
        "MA_TRUONG": row["school_code"],
        "TEN_TRUONG": row["school_name"],
        "TEN_QUAN_HUYEN": district,
        "TEN_XA_PHUONG": row["commune_name"],
        "TEN_TINH_THANH_PHO": row["province_name"],
        "MA_CAP_HOC": MA_CAP_HOC,
        "SO_SO_DANG_BO": row["register_no"],
        "HO_VA_TEN": row["full_name"],
        "SO_CCCD": row["cccd"],
        "MA_HOC_SINH": row["pupil_code"],
        "GIOI_TINH": row["gender"],
        "NGAY_SINH": format_date(row["birth_date"]),
        "CAN_NANG": health.get("weight_kg"),
        "CHIEU_CAO": health.get("height_cm"),
        "TONG_SO_BUOI_NGHI_CO_PHEP": absences.get("excused"),
        "THONG_SO_BUOI_NGHI_KHONG_PHEP": absences.get("unexcused"),
        "NOI_SINH": row["birthplace"],
        "QUE_QUAN": row["hometown"],
        "CHO_O_HIEN_NAY": row["address"],
        "DAN_TOC": row["ethnicity"],
        "QUOC_TICH": row["nationality"],
        "HO_VA_TEN_CHA": row["father_name"],
        "HO_VA_TEN_ME": row["mother_name"],
        "HO_VA_TEN_NGUOI_GIAM_HO": row["guardian_name"],
        "TEN_GIAM_HIEU_KY_HOC_BA": row["principal_name"],
        "SO_CCCD_GIAM_HIEU_KY_HOC_BA": row["principal_cccd"],
        "CHUC_VU_GIAM_HIEU_KY_HOC_BA": principal_title if row["principal_name"] else None,
        "DIA_DANH_PHAT_HANH_HOC_BA": row["place_name"],
        "NGAY_TAO_HOC_BA": format_date(row["created_at"].date()) if row["created_at"] else None,
        "TEN_GIAO_VIEN_CHU_NHIEM": row["teacher_name"],
        "SO_CCCD_GIAO_VIEN_CHU_NHIEM": row["teacher_cccd"],
        "MA_KHOI": grade,
        "TEN_LOP": row["class_name"],
        "NAM_HOC": row["start_year"],
    }
    promoted = tt27.is_promoted(result)
    summary: dict[str, Any] = {
        "KET_QUA_XEP_LOAI": result.value,
        "DUOC_LEN_LOP": promoted if grade < 5 else None,
        "NOI_DUNG_HOAN_THANH_CHUONG_TRINH": tt27.completion_text(grade, result),
        "DA_HOAN_THANH_CHUONG_TRINH_LOP_HOC": bool(promoted),
        "DA_HOAN_THANH_CHUONG_TRINH_TIEU_HOC": bool(promoted) if grade == 5 else None,
        "NOI_DUNG_KHEN_THUONG": awards.get("award"),
        "NOI_DUNG_KHEN_THUONG_DOT_XUAT": awards.get("adhoc"),
        "NHAN_XET_GVCN": comments.get("homeroom"),
        "NHAN_XET_PHAM_CHAT": comments.get("qualities"),
        "NHAN_XET_NANG_LUC_CHUNG": comments.get("general"),
        "NHAN_XET_NANG_LUC_DAC_THU": comments.get("specific"),
    }
    traits = content.get("traits", {})
    for trait in tt27.traits_for_grade(grade):
        summary[trait.xml_field] = traits.get(trait.code)
    subjects = []
    for code, value in content.get("subjects", {}).items():
        subject = tt27.subject(code, grade)
        subjects.append(
            {
                "MA_MON_HOC": subject.xml_code,
                "TEN_MON_HOC": subject.name,
                "MUC_DAT_DUOC": value.get("level"),
                "DIEM_KIEM_TRA_DINH_KY": value.get("score") if subject.has_test else None,
            }
        )
    history = [
        {
            "TEN_LOP": row["class_name"],
            "TEN_TRUONG": row["school_name"],
            "NGAY_TRANG_THAI_CHUYEN_DEN": format_date(row["enrolled_on"])
            if row["enrolled_on"]
            else None,
        }
    ]
    return RecordDocument(
        thong_tin_chung=info, qua_trinh_hoc_tap=history, tong_ket=summary, mon_hoc=subjects
    )
