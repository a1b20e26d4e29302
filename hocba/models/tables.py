"""The app's tables (SQLModel on PostgreSQL).

One record (``hoc_ba``) = one pupil, one school year (HOCBA_SPEC §2). The organisation
hierarchy is configurable (§1): ``org_unit`` rows form a tree province → optional
district/commune unit(s); every school hangs under one unit. Tables carry no schema name:
the connection's ``search_path`` selects the app schema (see ``hocba.db``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlmodel import Field, SQLModel

from hocba.models.lifecycle_states import COHORTS, ROLES, STATES


def _now_column() -> Any:
    return Column(DateTime(timezone=True), nullable=False, server_default=func.now())


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


class OrgUnit(SQLModel, table=True):
    """A node of the administrative tree: province, district or commune unit."""

    __tablename__ = "org_unit"
    __table_args__ = (CheckConstraint(_in("kind", ("province", "district", "commune"))),)

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=20)
    name: str
    kind: str
    parent_id: int | None = Field(default=None, foreign_key="org_unit.id", index=True)


class School(SQLModel, table=True):
    """A primary school (Trường tiểu học)."""

    __tablename__ = "school"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=20)  # MA_TRUONG
    name: str  # TEN_TRUONG
    unit_id: int = Field(foreign_key="org_unit.id", index=True)
    province_id: int = Field(foreign_key="org_unit.id", index=True)
    commune_name: str | None = None  # TEN_XA_PHUONG
    address: str | None = None
    place_name: str | None = None  # DIA_DANH_PHAT_HANH_HOC_BA


class SchoolYear(SQLModel, table=True):
    """A school year, named like ``2024-2025``."""

    __tablename__ = "school_year"

    id: int | None = Field(default=None, primary_key=True)
    start_year: int = Field(unique=True)
    name: str = Field(unique=True)


class Deadline(SQLModel, table=True):
    """A province's submission deadline for one cohort of one school year (§5).

    When a province has no row, the seed's defaults apply: 15/6 (June cohort) and 15/8
    (August cohort) of the year the school year ends (see ``hocba.models.calendar``).
    """

    __tablename__ = "deadline"
    __table_args__ = (
        UniqueConstraint("province_id", "school_year_id", "cohort"),
        CheckConstraint(_in("cohort", COHORTS)),
    )

    id: int | None = Field(default=None, primary_key=True)
    province_id: int = Field(foreign_key="org_unit.id")
    school_year_id: int = Field(foreign_key="school_year.id")
    cohort: str
    due_date: dt.date


class Staff(SQLModel, table=True):
    """A person who works in the system (teacher, principal, clerk, officer, admin)."""

    __tablename__ = "staff"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, max_length=80)
    full_name: str
    cccd: str | None = Field(default=None, unique=True, max_length=12)
    email: str | None = None
    password_hash: str | None = None
    active: bool = True


class StaffRole(SQLModel, table=True):
    """A role held by a staff member at a school or an org unit, for a period.

    A vice principal may sign as CBQL only with ``delegated`` set (ủy quyền).
    """

    __tablename__ = "staff_role"
    __table_args__ = (
        CheckConstraint(_in("role", ROLES)),
        CheckConstraint(
            "(school_id IS NOT NULL) OR (unit_id IS NOT NULL) OR role = 'admin'",
            name="staff_role_scope",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    staff_id: int = Field(foreign_key="staff.id", index=True)
    role: str
    school_id: int | None = Field(default=None, foreign_key="school.id", index=True)
    unit_id: int | None = Field(default=None, foreign_key="org_unit.id")
    delegated: bool = False
    valid_from: dt.date = Field(default_factory=lambda: dt.date(2000, 1, 1))
    valid_to: dt.date | None = None


class SchoolClass(SQLModel, table=True):
    """A class (lớp) of a school in a school year, with its homeroom teacher (GVCN)."""

    __tablename__ = "school_class"
    __table_args__ = (
        UniqueConstraint("school_id", "school_year_id", "name"),
        CheckConstraint("grade BETWEEN 1 AND 5"),
    )

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    school_year_id: int = Field(foreign_key="school_year.id")
    name: str
    grade: int
    homeroom_teacher_id: int | None = Field(default=None, foreign_key="staff.id", index=True)


class Pupil(SQLModel, table=True):
    """A pupil. Without a 12-digit personal ID (``cccd``) no digital record is made (§2)."""

    __tablename__ = "pupil"
    __table_args__ = (
        CheckConstraint("cccd ~ '^[0-9]{12}$'", name="pupil_cccd_format"),
        CheckConstraint(_in("gender", ("Nam", "Nữ")), name="pupil_gender"),
    )

    id: int | None = Field(default=None, primary_key=True)
    pupil_code: str = Field(unique=True, max_length=30)  # MA_HOC_SINH
    cccd: str | None = Field(default=None, unique=True, max_length=12)  # SO_CCCD
    full_name: str
    gender: str
    birth_date: dt.date
    birthplace: str | None = None
    hometown: str | None = None
    address: str | None = None
    ethnicity: str | None = None
    nationality: str | None = None
    father_name: str | None = None
    mother_name: str | None = None
    guardian_name: str | None = None


class Enrolment(SQLModel, table=True):
    """A pupil's place in a class for a school year, with dates (study history)."""

    __tablename__ = "enrolment"
    __table_args__ = (
        Index(
            "enrolment_one_open_per_year",
            "pupil_id",
            "school_year_id",
            unique=True,
            postgresql_where=text("left_on IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    pupil_id: int = Field(foreign_key="pupil.id", index=True)
    class_id: int = Field(foreign_key="school_class.id", index=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    school_year_id: int = Field(foreign_key="school_year.id")
    register_no: str | None = None  # SO_SO_DANG_BO
    enrolled_on: dt.date | None = None
    left_on: dt.date | None = None


class YearSummary(SQLModel, table=True):
    """The school's confirmed year-end data of one enrolment (lifecycle step 1).

    Written by the import; drafts are made from it. ``content`` holds the TT27 data
    (subjects, qualities, competences, comments, awards, health, absences).
    """

    __tablename__ = "year_summary"
    __table_args__ = (CheckConstraint(_in("cohort", COHORTS)),)

    id: int | None = Field(default=None, primary_key=True)
    enrolment_id: int = Field(foreign_key="enrolment.id", unique=True)
    content: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    entered_result: str | None = None
    computed_result: str
    cohort: str
    flags: list[dict[str, str]] = Field(
        default_factory=list, sa_column=Column(JSONB, nullable=False, server_default="[]")
    )
    updated_at: dt.datetime | None = Field(default=None, sa_column=_now_column())


class Record(SQLModel, table=True):
    """The yearly record (học bạ) of one pupil at one school: the unit of the lifecycle."""

    __tablename__ = "hoc_ba"
    __table_args__ = (
        CheckConstraint(_in("state", STATES), name="hoc_ba_state"),
        CheckConstraint(_in("cohort", COHORTS), name="hoc_ba_cohort"),
        Index(
            "hoc_ba_one_live_per_year",
            "pupil_id",
            "school_year_id",
            unique=True,
            postgresql_where=text("state NOT IN ('revoked', 'superseded')"),
        ),
        Index("hoc_ba_school_state", "school_id", "state"),
        Index("hoc_ba_class_state", "class_id", "state"),
        # unique where set (migration 0020): a record has its code from the GVCN signature on
        Index(
            "hoc_ba_lookup_code_key",
            "lookup_code",
            unique=True,
            postgresql_where=text("lookup_code IS NOT NULL"),
        ),
        # a record's successor, for the registry's lookups (migration 0023)
        Index(
            "hoc_ba_supersedes",
            "supersedes_id",
            postgresql_where=text("supersedes_id IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    pupil_id: int = Field(foreign_key="pupil.id")
    school_id: int = Field(foreign_key="school.id")
    class_id: int = Field(foreign_key="school_class.id")
    school_year_id: int = Field(foreign_key="school_year.id")
    enrolment_id: int = Field(foreign_key="enrolment.id")
    grade: int
    state: str = "draft"
    cohort: str = "june"
    #: NULL: the content of this record's enrolment's ``year_summary`` (migration 0022);
    #: a record keeps its own only once revoked or superseded (or drafted from another)
    content: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    entered_result: str | None = None
    computed_result: str
    flags: list[dict[str, str]] = Field(
        default_factory=list, sa_column=Column(JSONB, nullable=False, server_default="[]")
    )
    return_reason: str | None = None
    teacher_signer_id: int | None = Field(default=None, foreign_key="staff.id")
    teacher_signed_at: dt.datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True))
    )
    principal_signer_id: int | None = Field(default=None, foreign_key="staff.id")
    principal_signed_at: dt.datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True))
    )
    sealer_id: int | None = Field(default=None, foreign_key="staff.id")
    issued_at: dt.datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    lookup_code: uuid.UUID | None = Field(default=None, sa_column=Column(UUID(as_uuid=True)))
    #: the issued document, written by the seal (a partly signed one is in HocBaSigning)
    signed_xml: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    xml_sha256: str | None = None
    supersedes_id: int | None = Field(default=None, foreign_key="hoc_ba.id")
    state_changed_at: dt.datetime | None = Field(default=None, sa_column=_now_column())
    created_at: dt.datetime | None = Field(default=None, sa_column=_now_column())
    #: ``year_summary.updated_at`` when the draft was made or last refreshed (0022)
    summary_seen_at: dt.datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True))
    )


class HocBaSigning(SQLModel, table=True):
    """The XML of a record between its first signature and the seal (``teacher_signed``,
    ``principal_signed``); the seal deletes the row and writes ``hoc_ba.signed_xml``
    (migration 0014: the intermediate versions leave no dead copies in ``hoc_ba``)."""

    __tablename__ = "hoc_ba_signing"

    record_id: int = Field(primary_key=True, foreign_key="hoc_ba.id")
    signed_xml: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class AuditEvent(SQLModel, table=True):
    """An append-only, hash-chained event (one chain per school; §7, ARCHITECTURE rule 1).

    ``hash = SHA-256(hex of the previous event's hash || canonical JSON of the event)``,
    stored as 32 bytes (the previous hash is the chain's event ``seq - 1``); the database refuses
    UPDATE, DELETE and TRUNCATE of this table (trigger), and ``hocba audit verify``
    recomputes every chain and names the first broken event. An event is ``(chain_no, seq)``:
    the chain's number is ``audit_head.chain_no``, its name (which the hash covers) is in
    ``audit_head.chain`` (migration 0021). Fixed-width columns first: no alignment padding.
    """

    __tablename__ = "audit_event"
    __table_args__ = (PrimaryKeyConstraint("chain_no", "seq", name="audit_event_pkey"),)

    at: dt.datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    seq: int = Field(sa_column=Column(Integer, nullable=False))
    chain_no: int = Field(sa_column=Column(Integer, nullable=False))
    actor_id: int | None = Field(default=None, foreign_key="staff.id")
    record_id: int | None = Field(default=None, index=True)
    payload: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default="{}")
    )
    actor: str
    action: str
    from_state: str | None = None
    to_state: str | None = None
    reason: str | None = None
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class AuditHead(SQLModel, table=True):
    """The head of each audit chain; locked row-wise so appends to one chain serialise.

    ``chain_no`` numbers the chain for ``audit_event`` (migration 0021); neither it nor
    ``chain`` can change, and a head cannot be deleted (``audit_head_guard``).
    """

    __tablename__ = "audit_head"

    chain: str = Field(primary_key=True, max_length=40)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    chain_no: int | None = Field(
        default=None, sa_column=Column(Integer, Identity(), nullable=False, unique=True)
    )


class ImportBatch(SQLModel, table=True):
    """One applied import of a workbook (for idempotence and the audit trail)."""

    __tablename__ = "import_batch"

    id: int | None = Field(default=None, primary_key=True)
    file_sha256: str = Field(index=True)
    filename: str
    school_id: int = Field(foreign_key="school.id")
    rows: int
    changed: int
    imported_at: dt.datetime | None = Field(default=None, sa_column=_now_column())


class Certificate(SQLModel, table=True):
    """A signing certificate known to the system (migration 0003).

    A school's organisation certificate (``owner_kind='school'``, the seal) must be
    ``approved`` by a district officer before it may seal (HOCBA_SPEC §4, portal
    transactions 3/4). ``key_ref`` says where the private key lives (a PKCS#12 path, a
    PKCS#11 URI or a remote-signing user id), never the key or its PIN.
    """

    __tablename__ = "certificate"

    id: int | None = Field(default=None, primary_key=True)
    owner_kind: str
    school_id: int | None = Field(default=None, foreign_key="school.id")
    staff_id: int | None = Field(default=None, foreign_key="staff.id")
    sha256: str = Field(unique=True, max_length=64)
    serial_number: str
    subject: str
    issuer: str
    not_before: dt.datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    not_after: dt.datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    der: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    kind: str
    provider: str
    status: str = "pending"
    key_ref: str | None = None
    registered_at: dt.datetime | None = Field(default=None, sa_column=_now_column())
    decided_by: int | None = Field(default=None, foreign_key="staff.id")
    decided_at: dt.datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    decision_reason: str | None = None
