"""Names shared by the tables and the lifecycle: states, roles, cohorts (HOCBA_SPEC §1, §5)."""

from __future__ import annotations

STATES: tuple[str, ...] = (
    "draft",
    "in_review",
    "reviewed",
    "teacher_signed",
    "principal_signed",
    "issued",
    "submitted",
    "accepted",
    "rejected",
    "revoked",
    "superseded",
)

#: States in which a record's content and signed XML can never change again.
LOCKED_STATES: frozenset[str] = frozenset(
    {"issued", "submitted", "accepted", "rejected", "revoked", "superseded"}
)

STATE_LABELS: dict[str, str] = {
    "draft": "Bản nháp",
    "in_review": "Giáo viên đang kiểm tra",
    "reviewed": "Đã kiểm tra",
    "teacher_signed": "GVCN đã ký",
    "principal_signed": "Hiệu trưởng đã ký",
    "issued": "Đã phát hành (khóa)",
    "submitted": "Đã gửi Sở",
    "accepted": "Sở đã tiếp nhận",
    "rejected": "Sở từ chối",
    "revoked": "Đã thu hồi",
    "superseded": "Đã được thay thế",
}

ROLES: tuple[str, ...] = (
    "homeroom_teacher",
    "subject_teacher",
    "principal",
    "vice_principal",
    "clerk",
    "district_officer",
    "admin",
)

ROLE_LABELS: dict[str, str] = {
    "homeroom_teacher": "Giáo viên chủ nhiệm",
    "subject_teacher": "Giáo viên bộ môn",
    "principal": "Hiệu trưởng",
    "vice_principal": "Phó hiệu trưởng",
    "clerk": "Văn thư",
    "district_officer": "Cán bộ Phòng GDĐT",
    "admin": "Quản trị hệ thống",
}

#: June cohort: completed the grade; August cohort: needed the summer supplementary
#: assessment (TT27 Điều 11). Each has its own deadline (§5).
COHORTS: tuple[str, ...] = ("june", "august")
COHORT_LABELS: dict[str, str] = {"june": "Đợt tháng 6", "august": "Đợt tháng 8"}
