"""Certificate registry; one open enrolment per pupil and year; signed content frozen.

- ``certificate``: every signing certificate the system knows — schools' organisation
  certificates (the seal; approved by the district, mirroring portal transactions 3/4)
  and staff's personal certificates.
- ``enrolment``: a pupil has at most one open enrolment per school year (a class change
  moves the enrolment instead of adding a second one).
- ``hoc_ba``: once the teacher has signed, the signed data (content, class, result,
  lookup code) cannot change unless the record goes back to review (principal_return).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

FREEZE_SQL = """
CREATE FUNCTION hoc_ba_signed_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.state IN ('teacher_signed', 'principal_signed') AND NEW.state <> 'in_review' AND (
        (NEW.content, NEW.entered_result, NEW.computed_result, NEW.flags, NEW.class_id,
         NEW.grade, NEW.pupil_id, NEW.school_id, NEW.school_year_id, NEW.cohort)
        IS DISTINCT FROM
        (OLD.content, OLD.entered_result, OLD.computed_result, OLD.flags, OLD.class_id,
         OLD.grade, OLD.pupil_id, OLD.school_id, OLD.school_year_id, OLD.cohort)
        OR (OLD.lookup_code IS NOT NULL AND NEW.lookup_code IS DISTINCT FROM OLD.lookup_code)
    ) THEN
        RAISE EXCEPTION 'Học bạ #% đã được ký: muốn sửa phải trả lại GVCN trước', OLD.id
            USING ERRCODE = 'HBL02';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER hoc_ba_signed_guard BEFORE UPDATE ON hoc_ba
    FOR EACH ROW EXECUTE FUNCTION hoc_ba_signed_guard();
"""


def upgrade() -> None:
    op.create_table(
        "certificate",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("owner_kind", sa.String(), nullable=False),
        sa.Column("school_id", sa.Integer(), sa.ForeignKey("school.id"), nullable=True),
        sa.Column("staff_id", sa.Integer(), sa.ForeignKey("staff.id"), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("serial_number", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("issuer", sa.String(), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False, server_default="pending"),
        sa.Column("key_ref", sa.String(), nullable=True),
        sa.Column(
            "registered_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("decided_by", sa.Integer(), sa.ForeignKey("staff.id"), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.String(), nullable=True),
        sa.CheckConstraint("owner_kind IN ('school', 'staff')"),
        sa.CheckConstraint(
            "(owner_kind = 'school' AND school_id IS NOT NULL AND staff_id IS NULL) OR "
            "(owner_kind = 'staff' AND staff_id IS NOT NULL AND school_id IS NULL)",
            name="certificate_owner",
        ),
        sa.CheckConstraint("kind IN ('USB_TOKEN', 'REMOTE_SIGNING', 'HSM', 'SOFTWARE')"),
        sa.CheckConstraint("status IN ('pending', 'approved', 'rejected', 'revoked')"),
    )
    op.create_index("certificate_school", "certificate", ["school_id", "status"])
    op.create_index("certificate_staff", "certificate", ["staff_id"])
    op.drop_constraint("enrolment_pupil_id_school_year_id_class_id_key", "enrolment")
    op.create_index(
        "enrolment_one_open_per_year",
        "enrolment",
        ["pupil_id", "school_year_id"],
        unique=True,
        postgresql_where=sa.text("left_on IS NULL"),
    )
    op.execute(FREEZE_SQL)


def downgrade() -> None:
    op.execute("DROP TRIGGER hoc_ba_signed_guard ON hoc_ba; DROP FUNCTION hoc_ba_signed_guard();")
    op.drop_index("enrolment_one_open_per_year", table_name="enrolment")
    op.create_unique_constraint(
        "enrolment_pupil_id_school_year_id_class_id_key",
        "enrolment",
        ["pupil_id", "school_year_id", "class_id"],
    )
    op.drop_index("certificate_staff", table_name="certificate")
    op.drop_index("certificate_school", table_name="certificate")
    op.drop_table("certificate")
