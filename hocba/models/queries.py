"""The dashboard's read queries: one SQL statement per view, scoped on the server side.

Every function takes the session, a :class:`Viewer` (who asks, resolved from the roles in
``staff_role`` through :func:`hocba.models.lifecycle.load_grants`) and the view's filters,
and returns plain rows (``list[dict]``). The scope is part of the SQL itself, never a
filter applied afterwards in Python, so a page cannot show more than the person may see
whatever its widgets or the URL say (HOCBA_SPEC §7, least privilege):

* an administrator sees everything;
* a principal, a delegated vice principal and a clerk see their school;
* a district officer sees every school under their unit (any depth);
* a homeroom teacher sees only the classes they are homeroom teacher of;
* anyone else (a subject teacher, a vice principal without delegation) sees nothing.

Personal IDs (CCCD) come back masked (``••••••••1234``) except from
:func:`record_document_row`, whose caller prints the record and masks it itself unless
the job needs the full number. Counting and grouping happen in PostgreSQL (``count(*)
FILTER``, window functions): nothing loads rows into Python to aggregate them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from hocba.models import stored_xml
from hocba.models.calendar import DEADLINE_SQL
from hocba.models.lifecycle import VN_TZ, Actor, load_grants, waiting_state
from hocba.models.lifecycle_states import STATES

#: Roles that see a whole school.
SCHOOL_ROLES = frozenset({"principal", "vice_principal", "clerk", "district_officer"})
#: Roles that sign as CBQL, and the role that seals (KY_PHAT_HANH).
CBQL_ROLES = frozenset({"principal", "vice_principal"})
SEAL_ROLES = frozenset({"clerk"})
LIVE = "r.state NOT IN ('revoked', 'superseded')"
ISSUED_STATES = ("issued", "submitted", "accepted", "rejected")
MASK = "••••••••"
#: Class lists are ordered by given name (the last word of a Vietnamese name), then full name.
GIVEN_NAME = "substring(p.full_name from '([^ ]+)$')"

#: The SQL that masks a 12-digit personal ID, keeping its last 4 digits.
_MASKED = "CASE WHEN {col} IS NULL THEN NULL ELSE '" + MASK + "' || right({col}, 4) END"

#: Vietnamese lower-case letters with diacritics, and their plain letters (for search).
_VI_ACCENTED = "àáảãạăằắẳẵặâầấẩẫậđèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵ"
_VI_PLAIN = "aaaaaaaaaaaaaaaaadeeeeeeeeeeeiiiiiooooooooooooooooouuuuuuuuuuuyyyyy"


#: The content of record ``r``: its own, or (NULL, migration 0022) its enrolment's
#: ``year_summary.content``; the sub-select runs only for a NULL. It is the body of
#: ``hoc_ba_summary_content()`` written out: this runs for every record a batch signs,
#: and PostgreSQL does not inline a SQL function whose SELECT has a FROM.
CONTENT = (
    "COALESCE(r.content, (SELECT ys.content FROM year_summary ys "
    "WHERE ys.enrolment_id = r.enrolment_id))"
)

#: Everything one record document needs (hocba.xml.document maps each row; the
#: print view adds its lifecycle columns). Parameters: ``ids`` (record ids), ``today``.
#: A record's content is its enrolment's ``year_summary.content`` unless it keeps its
#: own (revoked, superseded; migration 0022): :data:`CONTENT`.
DOCUMENT_QUERY = f"""
    SELECT r.id, r.grade, {CONTENT} AS content, r.computed_result, r.lookup_code, r.created_at,
           p.pupil_code, p.full_name, p.cccd, p.gender, p.birth_date, p.birthplace,
           p.hometown, p.address, p.ethnicity, p.nationality, p.father_name,
           p.mother_name, p.guardian_name,
           e.register_no, e.enrolled_on,
           c.name AS class_name, y.name AS year_name, y.start_year,
           s.code AS school_code, s.name AS school_name, s.commune_name, s.place_name,
           prov.code AS province_code, prov.name AS province_name,
           unit.name AS unit_name, unit.kind AS unit_kind,
           gv.full_name AS teacher_name, gv.cccd AS teacher_cccd,
           cbql.full_name AS principal_name, cbql.cccd AS principal_cccd,
           cbql.role AS principal_role
    FROM hoc_ba r
    JOIN pupil p ON p.id = r.pupil_id
    JOIN enrolment e ON e.id = r.enrolment_id
    JOIN school_class c ON c.id = r.class_id
    JOIN school_year y ON y.id = r.school_year_id
    JOIN school s ON s.id = r.school_id
    JOIN org_unit prov ON prov.id = s.province_id
    JOIN org_unit unit ON unit.id = s.unit_id
    LEFT JOIN staff gv ON gv.id = c.homeroom_teacher_id
    LEFT JOIN LATERAL (
        SELECT st.full_name, st.cccd, sr.role
        FROM staff_role sr JOIN staff st ON st.id = sr.staff_id
        WHERE sr.school_id = r.school_id AND st.active
          AND (sr.role = 'principal' OR (sr.role = 'vice_principal' AND sr.delegated))
          AND sr.valid_from <= :today AND (sr.valid_to IS NULL OR sr.valid_to >= :today)
        ORDER BY sr.role = 'principal' DESC, sr.id LIMIT 1
    ) cbql ON true
    WHERE r.id = ANY(:ids)
"""


def mask_cccd(value: str | None) -> str | None:
    """``••••••••1234`` for a personal ID (the last 4 digits only), None for None."""
    return None if not value else MASK + value[-4:]


def fold(value: str) -> str:
    """Lower case without Vietnamese diacritics (the same folding as the search SQL)."""
    import unicodedata

    value = unicodedata.normalize("NFC", value).lower()
    return value.translate(str.maketrans(_VI_ACCENTED, _VI_PLAIN))


@dataclass(frozen=True)
class Viewer:
    """Who is looking, with their roles per school on the day (from ``load_grants``)."""

    staff_id: int
    username: str
    name: str
    admin: bool = False
    roles: Mapping[int, frozenset[str]] = field(default_factory=dict)

    @property
    def actor(self) -> Actor:
        return Actor(self.staff_id, self.name)

    def schools_with(self, roles: Iterable[str]) -> list[int]:
        """Schools where the viewer holds any of ``roles``."""
        wanted = frozenset(roles)
        return sorted(sid for sid, held in self.roles.items() if held & wanted)

    def has_role(self, *roles: str) -> bool:
        return bool(self.schools_with(roles))

    @property
    def full_schools(self) -> list[int]:
        """Schools the viewer sees whole (principal, clerk, district officer...)."""
        return self.schools_with(SCHOOL_ROLES)

    @property
    def class_schools(self) -> list[int]:
        """Schools where the viewer is a homeroom teacher (own classes only)."""
        return self.schools_with({"homeroom_teacher"})

    def params(self) -> dict[str, Any]:
        """The bind parameters of the scope predicates below."""
        return {
            "v_admin": self.admin,
            "v_full": self.full_schools,
            "v_own": self.class_schools,
            "v_staff": self.staff_id,
        }


#: Scope predicates. CLASS_SCOPE needs the alias ``c`` (school_class) and covers records
#: through their class; SCHOOL_SCOPE needs ``s`` (school) and is for whole-school views.
CLASS_SCOPE = (
    "(:v_admin OR c.school_id = ANY(:v_full) "
    "OR (c.school_id = ANY(:v_own) AND c.homeroom_teacher_id = :v_staff))"
)
SCHOOL_SCOPE = "(:v_admin OR s.id = ANY(:v_full))"


def _in_scope(school_id_column: str) -> str:
    """SCHOOL_SCOPE on a table's own ``school_id`` column, without joining ``school``:
    the aggregates over the records then scan in parallel, or by index for a district."""
    return f"(:v_admin OR {school_id_column} = ANY(:v_full))"


def viewer_for(session: Session, staff_id: int, on: dt.date | None = None) -> Viewer | None:
    """The viewer of an active staff member (None when unknown or deactivated)."""
    row = (
        session.connection()
        .execute(
            text("SELECT id, username, full_name FROM staff WHERE id = :i AND active"),
            {"i": staff_id},
        )
        .one_or_none()
    )
    if row is None:
        return None
    actor = Actor(row.id, row.full_name)
    grants = load_grants(session, actor, on or dt.datetime.now(VN_TZ).date())
    return Viewer(row.id, row.username, row.full_name, grants.admin, grants.by_school)


def _rows(session: Session, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    result = session.connection().execute(text(sql), dict(params))
    return [dict(r) for r in result.mappings().all()]


def _first_with_xml(session: Session, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first row, its ``signed_xml`` as signed (``hoc_ba`` stores the certificates by
    reference: :mod:`hocba.models.stored_xml`), or None."""
    if not rows:
        return None
    row = rows[0]
    row["signed_xml"] = stored_xml.unpack_one(session.connection(), row["signed_xml"])
    return row


# ------------------------------------------------------------------------------ lookups
def school_years(session: Session) -> list[dict[str, Any]]:
    """School years that have records, newest first (no personal data: not scoped)."""
    return _rows(
        session,
        """
        SELECT y.id, y.name, y.start_year FROM school_year y
        WHERE EXISTS (SELECT 1 FROM hoc_ba r WHERE r.school_year_id = y.id)
        ORDER BY y.start_year DESC
        """,
        {},
    )


def visible_schools(session: Session, viewer: Viewer) -> list[dict[str, Any]]:
    """The schools the viewer sees whole, by code."""
    return _rows(
        session,
        f"SELECT s.id, s.code, s.name FROM school s WHERE {SCHOOL_SCOPE} ORDER BY s.code",
        viewer.params(),
    )


# ------------------------------------------------------------------------------ district
_STATE_COUNTS = """
    count(*) FILTER (WHERE r.state = 'draft') AS draft,
    count(*) FILTER (WHERE r.state = 'in_review') AS in_review,
    count(*) FILTER (WHERE r.state = 'reviewed') AS reviewed,
    count(*) FILTER (WHERE r.state = 'teacher_signed') AS teacher_signed,
    count(*) FILTER (WHERE r.state = 'principal_signed') AS principal_signed,
    count(*) FILTER (WHERE r.state = 'issued') AS issued,
    count(*) FILTER (WHERE r.state = 'submitted') AS submitted,
    count(*) FILTER (WHERE r.state = 'accepted') AS accepted,
    count(*) FILTER (WHERE r.state = 'rejected') AS rejected
"""
STAGE_COLUMNS = tuple(s for s in STATES if s not in ("revoked", "superseded"))
"""The lifecycle's states a record passes on its way, in order (the columns counted above)."""


def district_overview(
    session: Session,
    viewer: Viewer,
    school_year_id: int,
    today: dt.date,
    window_days: int = 7,
    school_id: int | None = None,
) -> list[dict[str, Any]]:
    """One row per visible school and cohort (June first): counts per stage, records
    issued (and later), submitted (and later), accepted, issued in the last
    ``window_days`` days (the recent signing rate), the deadline in force and the pupils
    without a personal ID. Schools without records get zeros. ``school_id``: only that
    school (the school page), still within the viewer's scope."""
    since = dt.datetime.combine(today - dt.timedelta(days=window_days), dt.time(), VN_TZ)
    return _rows(
        session,
        f"""
        WITH y AS (SELECT id, start_year FROM school_year WHERE id = :year),
        sch AS (SELECT s.id, s.code, s.name, s.province_id FROM school s WHERE {SCHOOL_SCOPE}
                AND (CAST(:school AS int) IS NULL OR s.id = :school)),
        rec AS (
            SELECT r.school_id, r.cohort, count(*) AS total, {_STATE_COUNTS},
                   count(*) FILTER (WHERE r.state IN {ISSUED_STATES}) AS done,
                   count(*) FILTER (WHERE r.state IN ('submitted', 'accepted', 'rejected'))
                       AS sent,
                   count(*) FILTER (WHERE r.state IN {ISSUED_STATES}
                                    AND r.issued_at >= :since) AS done_recent
            FROM hoc_ba r
            WHERE r.school_year_id = :year AND {_in_scope("r.school_id")} AND {LIVE}
              AND (CAST(:school AS int) IS NULL OR r.school_id = :school)
            GROUP BY r.school_id, r.cohort
        ),
        flg AS (  -- apart, so that the counts above read the index only (migration 0009)
            SELECT r.school_id, r.cohort, count(*) AS flagged
            FROM hoc_ba r
            WHERE r.school_year_id = :year AND {_in_scope("r.school_id")}
              AND (CAST(:school AS int) IS NULL OR r.school_id = :school)
              AND r.state IN ('draft', 'in_review') AND r.flags <> '[]'::jsonb
            GROUP BY r.school_id, r.cohort
        ),
        noid AS (
            SELECT e.school_id, count(*) AS n
            FROM year_summary ys JOIN enrolment e ON e.id = ys.enrolment_id
            JOIN pupil p ON p.id = e.pupil_id
            WHERE p.cccd IS NULL AND e.school_year_id = :year AND e.left_on IS NULL
              AND {_in_scope("e.school_id")}
              AND (CAST(:school AS int) IS NULL OR e.school_id = :school)
            GROUP BY e.school_id
        )
        SELECT sch.id AS school_id, sch.code, sch.name, co.cohort,
               COALESCE(rec.total, 0) AS total,
               {", ".join(f"COALESCE(rec.{c}, 0) AS {c}" for c in STAGE_COLUMNS)},
               COALESCE(rec.done, 0) AS done, COALESCE(rec.sent, 0) AS sent,
               COALESCE(rec.done_recent, 0) AS done_recent,
               COALESCE(flg.flagged, 0) AS flagged,
               COALESCE(d.due_date, make_date(y.start_year + 1,
                        CASE co.cohort WHEN 'june' THEN 6 ELSE 8 END, 15)) AS deadline,
               COALESCE(noid.n, 0) AS without_id
        FROM sch CROSS JOIN y CROSS JOIN (VALUES ('june'), ('august')) AS co(cohort)
        LEFT JOIN rec ON rec.school_id = sch.id AND rec.cohort = co.cohort
        LEFT JOIN flg ON flg.school_id = sch.id AND flg.cohort = co.cohort
        LEFT JOIN deadline d ON d.province_id = sch.province_id AND d.school_year_id = y.id
             AND d.cohort = co.cohort
        LEFT JOIN noid ON noid.school_id = sch.id
        ORDER BY sch.code, co.cohort = 'august'
        """,
        {**viewer.params(), "year": school_year_id, "since": since, "school": school_id},
    )


def progress_series(
    session: Session, viewer: Viewer, school_year_id: int, school_id: int | None = None
) -> list[dict[str, Any]]:
    """Per day and milestone (teacher_sign, principal_sign, seal, submit, accept): the
    events of that day and the running total. Read from ``progress_day``, which the
    database keeps from the audit log (migration 0009): a few rows per school and day,
    not every event of the province."""
    return _rows(
        session,
        f"""
        SELECT day, action, n,
               CAST(sum(n) OVER (PARTITION BY action ORDER BY day) AS int) AS cumulative
        FROM (
            SELECT pd.day, pd.action, CAST(sum(pd.n) AS int) AS n
            FROM progress_day pd JOIN school s ON s.id = pd.school_id
            WHERE pd.school_year_id = :year AND {SCHOOL_SCOPE}
              AND (CAST(:school AS int) IS NULL OR pd.school_id = :school)
            GROUP BY 1, 2
        ) per_day
        ORDER BY day, action
        """,
        {**viewer.params(), "year": school_year_id, "school": school_id},
    )


#: Pupils without a personal ID listed at once (the counts come from the overview).
NO_ID_LIMIT = 500


def pupils_without_id(
    session: Session,
    viewer: Viewer,
    school_year_id: int,
    school_id: int | None = None,
    limit: int = NO_ID_LIMIT,
) -> list[dict[str, Any]]:
    """Pupils with year-end data but no personal ID: they get a paper record and the
    district must know who they are (HOCBA_SPEC §2). At most ``limit`` rows: in a
    province they are thousands, and the page shows their count per school from
    :func:`district_overview`."""
    return _rows(
        session,
        f"""
        SELECT s.code AS school_code, s.name AS school_name, c.name AS class_name,
               p.pupil_code, p.full_name, p.birth_date
        FROM year_summary ys JOIN enrolment e ON e.id = ys.enrolment_id
        JOIN pupil p ON p.id = e.pupil_id JOIN school s ON s.id = e.school_id
        JOIN school_class c ON c.id = e.class_id
        WHERE p.cccd IS NULL AND e.school_year_id = :year AND e.left_on IS NULL
          AND {SCHOOL_SCOPE} AND (CAST(:school AS int) IS NULL OR s.id = :school)
        ORDER BY s.code, c.grade, c.name, p.full_name
        LIMIT :limit
        """,
        {**viewer.params(), "year": school_year_id, "school": school_id, "limit": limit},
    )


# ------------------------------------------------------------------------------ school
def school_classes(
    session: Session, viewer: Viewer, school_year_id: int, school_id: int
) -> list[dict[str, Any]]:
    """Progress per class of one school: counts per stage, records flagged by the TT27
    check, and since when the oldest record has waited at the teacher."""
    return _rows(
        session,
        f"""
        SELECT c.id AS class_id, c.name AS class_name, c.grade, st.full_name AS teacher,
               count(r.id) AS total, {_STATE_COUNTS},
               count(r.id) FILTER (WHERE r.state IN {ISSUED_STATES}) AS done,
               count(r.id) FILTER (WHERE r.cohort = 'august') AS august,
               count(r.id) FILTER (WHERE jsonb_array_length(r.flags) > 0
                                   AND r.state IN ('draft', 'in_review')) AS flagged,
               min(r.state_changed_at) FILTER (
                   WHERE r.state IN ('draft', 'in_review', 'reviewed')) AS teacher_since
        FROM school_class c
        LEFT JOIN staff st ON st.id = c.homeroom_teacher_id
        LEFT JOIN hoc_ba r ON r.class_id = c.id AND r.school_year_id = :year AND {LIVE}
        WHERE c.school_id = :school AND c.school_year_id = :year AND {CLASS_SCOPE}
        GROUP BY c.id, c.name, c.grade, st.full_name
        ORDER BY c.grade, c.name
        """,
        {**viewer.params(), "year": school_year_id, "school": school_id},
    )


def school_holders(
    session: Session, viewer: Viewer, school_year_id: int, school_id: int
) -> list[dict[str, Any]]:
    """Who holds which records of a school and since when, longest waiting first:
    the homeroom teacher (draft → reviewed), the principal (teacher_signed), the clerk
    (principal_signed)."""
    return _rows(
        session,
        f"""
        WITH held AS (
            SELECT CASE WHEN r.state IN ('draft', 'in_review', 'reviewed')
                        THEN 'homeroom_teacher'
                        WHEN r.state = 'teacher_signed' THEN 'principal'
                        ELSE 'clerk' END AS holder_role,
                   CASE WHEN r.state IN ('draft', 'in_review', 'reviewed')
                        THEN c.homeroom_teacher_id END AS teacher_id,
                   r.state, r.school_id, c.name AS class_name, c.grade, r.state_changed_at
            FROM hoc_ba r JOIN school_class c ON c.id = r.class_id
            WHERE r.school_id = :school AND r.school_year_id = :year AND {CLASS_SCOPE}
              AND r.state IN ('draft', 'in_review', 'reviewed', 'teacher_signed',
                              'principal_signed')
        )
        SELECT h.holder_role, h.state,
               COALESCE(t.full_name, (
                   SELECT string_agg(st.full_name, ', ' ORDER BY st.full_name)
                   FROM staff_role sr JOIN staff st ON st.id = sr.staff_id AND st.active
                   WHERE sr.school_id = h.school_id AND sr.valid_from <= CURRENT_DATE
                     AND (sr.valid_to IS NULL OR sr.valid_to >= CURRENT_DATE)
                     AND (sr.role = h.holder_role OR (h.holder_role = 'principal'
                          AND sr.role = 'vice_principal' AND sr.delegated)))) AS holder,
               string_agg(DISTINCT h.class_name, ', ') AS classes,
               count(*) AS n, min(h.state_changed_at) AS since
        FROM held h LEFT JOIN staff t ON t.id = h.teacher_id
        GROUP BY h.holder_role, h.state, h.school_id, t.full_name
        ORDER BY since, holder
        """,
        {**viewer.params(), "year": school_year_id, "school": school_id},
    )


def cohort_records(
    session: Session, viewer: Viewer, school_year_id: int, school_id: int, cohort: str = "august"
) -> list[dict[str, Any]]:
    """The records of one cohort of a school (the August cohort: pupils who need the
    summer supplementary assessment, TT27 Điều 11)."""
    return _rows(
        session,
        f"""
        SELECT r.id, p.full_name, p.pupil_code, c.name AS class_name, c.grade, r.state,
               r.computed_result, r.entered_result, jsonb_array_length(r.flags) AS flags
        FROM hoc_ba r JOIN school_class c ON c.id = r.class_id JOIN pupil p ON p.id = r.pupil_id
        WHERE r.school_id = :school AND r.school_year_id = :year AND r.cohort = :cohort
          AND {LIVE} AND {CLASS_SCOPE}
        ORDER BY c.grade, c.name, {GIVEN_NAME}, p.full_name
        """,
        {**viewer.params(), "year": school_year_id, "school": school_id, "cohort": cohort},
    )


# ------------------------------------------------------------------------------ queues
def signing_queue(
    session: Session,
    viewer: Viewer,
    slot: str,
    school_id: int,
    *,
    class_name: str | None = None,
    grade: int | None = None,
    flagged_only: bool = False,
) -> list[dict[str, Any]]:
    """The records waiting for the viewer's signature in ``slot`` (CBQL: principal or
    delegated vice principal; KY_PHAT_HANH: clerk) at one school, soonest deadline first.
    Only schools where the viewer holds that role count (an administrator signs nothing).
    """
    roles = CBQL_ROLES if slot == "CBQL" else SEAL_ROLES
    return _rows(
        session,
        f"""
        SELECT r.id, p.full_name, p.pupil_code, c.name AS class_name, c.grade, r.cohort,
               r.computed_result, r.entered_result, jsonb_array_length(r.flags) AS flags,
               r.flags AS flag_list, r.state_changed_at AS waiting_since,
               gv.full_name AS teacher, {DEADLINE_SQL} AS deadline
        FROM hoc_ba r JOIN school_class c ON c.id = r.class_id
        JOIN pupil p ON p.id = r.pupil_id JOIN school s ON s.id = r.school_id
        JOIN school_year y ON y.id = r.school_year_id
        LEFT JOIN staff gv ON gv.id = c.homeroom_teacher_id
        WHERE r.state = :state AND r.school_id = :school AND r.school_id = ANY(:act)
          AND (CAST(:class AS text) IS NULL OR c.name = :class)
          AND (CAST(:grade AS int) IS NULL OR c.grade = :grade)
          AND (NOT :flagged OR jsonb_array_length(r.flags) > 0)
        ORDER BY deadline, c.grade, c.name, {GIVEN_NAME}, p.full_name, r.id
        """,
        {
            "state": waiting_state(slot),
            "school": school_id,
            "act": viewer.schools_with(roles),
            "class": class_name,
            "grade": grade,
            "flagged": flagged_only,
        },
    )


# ------------------------------------------------------------------------------ teacher
def my_classes(session: Session, viewer: Viewer, school_year_id: int) -> list[dict[str, Any]]:
    """The classes the viewer is homeroom teacher of, with counts per stage."""
    return _rows(
        session,
        f"""
        SELECT c.id AS class_id, c.name AS class_name, c.grade, s.code AS school_code,
               s.name AS school_name, count(r.id) AS total, {_STATE_COUNTS},
               count(r.id) FILTER (WHERE jsonb_array_length(r.flags) > 0
                                   AND r.state IN ('draft', 'in_review')) AS flagged
        FROM school_class c JOIN school s ON s.id = c.school_id
        LEFT JOIN hoc_ba r ON r.class_id = c.id AND {LIVE}
        WHERE c.homeroom_teacher_id = :v_staff AND c.school_year_id = :year
          AND c.school_id = ANY(:v_own)
        GROUP BY c.id, c.name, c.grade, s.code, s.name
        ORDER BY s.code, c.grade, c.name
        """,
        {**viewer.params(), "year": school_year_id},
    )


def class_records(session: Session, viewer: Viewer, class_id: int) -> list[dict[str, Any]]:
    """The live records of one class, by pupil name (masked personal IDs)."""
    return _rows(
        session,
        f"""
        SELECT r.id, p.full_name, p.pupil_code, {_MASKED.format(col="p.cccd")} AS cccd,
               p.birth_date, r.state, r.cohort, r.computed_result, r.entered_result,
               r.flags AS flag_list, jsonb_array_length(r.flags) AS flags, r.return_reason,
               c.name AS class_name, c.grade
        FROM hoc_ba r JOIN school_class c ON c.id = r.class_id JOIN pupil p ON p.id = r.pupil_id
        WHERE r.class_id = :class AND {LIVE} AND {CLASS_SCOPE}
        ORDER BY {GIVEN_NAME}, p.full_name, r.id
        """,
        {**viewer.params(), "class": class_id},
    )


# ------------------------------------------------------------------------------ records
def find_records(
    session: Session, viewer: Viewer, query: str, limit: int = 50
) -> list[dict[str, Any]]:
    """Records matching a pupil's name (case and diacritics ignored), pupil code or
    lookup code, within the viewer's scope; newest school year first."""
    query = (query or "").strip()
    if not query:
        return []
    try:
        code: uuid.UUID | None = uuid.UUID(query)
    except ValueError:
        code = None
    return _rows(
        session,
        f"""
        SELECT r.id, p.full_name, p.pupil_code, {_MASKED.format(col="p.cccd")} AS cccd,
               p.birth_date, c.name AS class_name, s.code AS school_code,
               y.name AS school_year, r.state, r.computed_result,
               CASE WHEN r.xml_sha256 IS NOT NULL THEN r.lookup_code END AS lookup_code
        FROM hoc_ba r JOIN school_class c ON c.id = r.class_id JOIN pupil p ON p.id = r.pupil_id
        JOIN school s ON s.id = r.school_id JOIN school_year y ON y.id = r.school_year_id
        WHERE {CLASS_SCOPE} AND (
            (CAST(:code AS uuid) IS NOT NULL AND r.lookup_code = :code
             AND r.xml_sha256 IS NOT NULL)
            OR (CAST(:code AS uuid) IS NULL AND (
                upper(p.pupil_code) LIKE upper(:code_prefix)
                OR translate(lower(p.full_name), :acc, :plain) LIKE :pattern)))
        ORDER BY y.start_year DESC, p.full_name, r.id
        LIMIT :limit
        """,
        {
            **viewer.params(),
            "code": code,
            "code_prefix": query.replace("%", r"\%").replace("_", r"\_") + "%",
            "acc": _VI_ACCENTED,
            "plain": _VI_PLAIN,
            "pattern": "%" + fold(query).replace("%", r"\%").replace("_", r"\_") + "%",
            "limit": limit,
        },
    )


def record_document_row(
    session: Session, viewer: Viewer, record_id: int, today: dt.date | None = None
) -> dict[str, Any] | None:
    """Everything needed to print one record (the columns of
    :func:`hocba.xml.document.document_of`) plus its lifecycle columns, or None
    when the record does not exist or is outside the viewer's scope. The personal ID is
    NOT masked here: the caller prints the record and masks it unless the job needs it."""
    rows = _rows(
        session,
        f"""
        WITH d AS ({DOCUMENT_QUERY})
        SELECT d.*, r.state, r.cohort, r.school_id, r.class_id, r.flags AS flag_list,
               r.entered_result, r.return_reason,
               COALESCE(r.signed_xml, w.signed_xml) AS signed_xml, r.xml_sha256,
               r.teacher_signed_at, r.principal_signed_at, r.issued_at,
               ts.full_name AS teacher_signer, ps.full_name AS principal_signer,
               se.full_name AS sealer, c.homeroom_teacher_id
        FROM d JOIN hoc_ba r ON r.id = d.id JOIN school_class c ON c.id = r.class_id
        LEFT JOIN hoc_ba_signing w ON w.record_id = r.id
        LEFT JOIN staff ts ON ts.id = r.teacher_signer_id
        LEFT JOIN staff ps ON ps.id = r.principal_signer_id
        LEFT JOIN staff se ON se.id = r.sealer_id
        WHERE {CLASS_SCOPE}
        """,
        {**viewer.params(), "ids": [record_id], "today": today or dt.date.today()},
    )
    return _first_with_xml(session, rows)


def record_history(session: Session, viewer: Viewer, record_id: int) -> list[dict[str, Any]]:
    """Every audit event of one record, oldest first, with who did it."""
    return _rows(
        session,
        f"""
        SELECT ev.at, ev.action, ev.from_state, ev.to_state, ev.reason,
               COALESCE(st.full_name, CASE WHEN ev.actor = 'system' THEN 'Hệ thống'
                                           ELSE ev.actor END) AS who
        FROM audit_event ev JOIN hoc_ba r ON r.id = ev.record_id
        JOIN school_class c ON c.id = r.class_id LEFT JOIN staff st ON st.id = ev.actor_id
        WHERE ev.record_id = :record AND {CLASS_SCOPE}
        ORDER BY ev.at, ev.chain_no, ev.seq
        """,
        {**viewer.params(), "record": record_id},
    )


def issued_xml(session: Session, viewer: Viewer, record_id: int) -> dict[str, Any] | None:
    """The issued XML of a record in the viewer's scope (None if not issued or not seen)."""
    rows = _rows(
        session,
        f"""
        SELECT r.id, r.signed_xml, r.lookup_code, s.code AS school_code, p.pupil_code
        FROM hoc_ba r JOIN school_class c ON c.id = r.class_id JOIN school s ON s.id = r.school_id
        JOIN pupil p ON p.id = r.pupil_id
        WHERE r.id = :record AND r.xml_sha256 IS NOT NULL AND {CLASS_SCOPE}
        """,
        {**viewer.params(), "record": record_id},
    )
    return _first_with_xml(session, rows)


def issued_by_lookup_code(session: Session, code: uuid.UUID) -> dict[str, Any] | None:
    """The issued record with this lookup code, for verification.

    Not scoped by school on purpose: verifying a record received from another school (a
    transfer) is the point of a lookup code. Only signed-in staff reach it, codes are
    random UUIDs (not enumerable), and the caller logs every lookup (HOCBA_SPEC §7)."""
    rows = _rows(
        session,
        """
        SELECT r.id, r.signed_xml, r.state, s.code AS school_code
        FROM hoc_ba r JOIN school s ON s.id = r.school_id
        WHERE r.lookup_code = :code AND r.xml_sha256 IS NOT NULL
        """,
        {"code": code},
    )
    return _first_with_xml(session, rows)


# ------------------------------------------------------------------------------ admin
def staff_roles(session: Session, viewer: Viewer) -> list[dict[str, Any]]:
    """Staff and their current roles: all of them for an administrator; for others, the
    staff holding a role at a school they see whole."""
    return _rows(
        session,
        f"""
        SELECT st.id, st.username, st.full_name, {_MASKED.format(col="st.cccd")} AS cccd,
               st.email, st.active,
               string_agg(sr.role || COALESCE('@' || s.code, '') || COALESCE('@' || u.code, '')
                          || CASE WHEN sr.delegated THEN ' (ủy quyền)' ELSE '' END,
                          ', ' ORDER BY sr.role, s.code) AS roles
        FROM staff st
        LEFT JOIN staff_role sr ON sr.staff_id = st.id AND sr.valid_from <= CURRENT_DATE
             AND (sr.valid_to IS NULL OR sr.valid_to >= CURRENT_DATE)
        LEFT JOIN school s ON s.id = sr.school_id LEFT JOIN org_unit u ON u.id = sr.unit_id
        WHERE :v_admin OR EXISTS (
            SELECT 1 FROM staff_role x WHERE x.staff_id = st.id AND x.school_id = ANY(:v_full))
        GROUP BY st.id ORDER BY st.username
        """,
        viewer.params(),
    )


def school_certificate_list(session: Session, viewer: Viewer) -> list[dict[str, Any]]:
    """The schools' organisation certificates (the seals) and their approval."""
    return _rows(
        session,
        f"""
        SELECT c.id, s.code AS school_code, s.name AS school_name, c.subject, c.serial_number,
               c.kind, c.provider, c.status, c.not_before, c.not_after, c.registered_at,
               c.decided_at, d.full_name AS decided_by, c.decision_reason
        FROM certificate c JOIN school s ON s.id = c.school_id
        LEFT JOIN staff d ON d.id = c.decided_by
        WHERE c.owner_kind = 'school' AND {SCHOOL_SCOPE}
        ORDER BY c.status <> 'pending', s.code, c.id DESC
        """,
        viewer.params(),
    )


def deadline_table(session: Session, viewer: Viewer) -> list[dict[str, Any]]:
    """The deadline in force per province, school year and cohort (the province's own
    row, or the default 15/6 and 15/8), for the provinces of the schools seen."""
    return _rows(
        session,
        f"""
        SELECT pr.id AS province_id, pr.name AS province, y.id AS school_year_id,
               y.name AS school_year, co.cohort, d.due_date AS override,
               COALESCE(d.due_date, make_date(y.start_year + 1,
                        CASE co.cohort WHEN 'june' THEN 6 ELSE 8 END, 15)) AS due_date
        FROM org_unit pr CROSS JOIN school_year y
        CROSS JOIN (VALUES ('june'), ('august')) AS co(cohort)
        LEFT JOIN deadline d ON d.province_id = pr.id AND d.school_year_id = y.id
             AND d.cohort = co.cohort
        WHERE pr.kind = 'province' AND (:v_admin OR EXISTS (
            SELECT 1 FROM school s WHERE s.province_id = pr.id AND {SCHOOL_SCOPE}))
        ORDER BY pr.name, y.start_year DESC, co.cohort = 'august'
        """,
        viewer.params(),
    )


def correction_requests(
    session: Session, viewer: Viewer, status: str | None = "pending"
) -> list[dict[str, Any]]:
    """Correction requests of the schools seen whole (pending ones by default)."""
    return _rows(
        session,
        f"""
        SELECT q.id, q.record_id, q.reason, q.decision_document, q.requested_at, q.status,
               q.decision_reason, rq.full_name AS requested_by, s.code AS school_code,
               p.full_name, c.name AS class_name, y.name AS school_year, r.lookup_code
        FROM correction_request q JOIN hoc_ba r ON r.id = q.record_id
        JOIN school s ON s.id = r.school_id JOIN pupil p ON p.id = r.pupil_id
        JOIN school_class c ON c.id = r.class_id JOIN school_year y ON y.id = r.school_year_id
        JOIN staff rq ON rq.id = q.requested_by
        WHERE {SCHOOL_SCOPE} AND (CAST(:status AS text) IS NULL OR q.status = :status)
        ORDER BY q.requested_at
        """,
        {**viewer.params(), "status": status},
    )


# ------------------------------------------------------------------------------ transfers
def transfers(
    session: Session, viewer: Viewer, school_id: int | None = None
) -> list[dict[str, Any]]:
    """Transfers (chuyển trường) from or to the schools the viewer sees whole, newest
    first; ``direction`` is ``out`` or ``in`` relative to ``school_id`` (or to any school
    seen when None). The pupil's name and birth date are shown; the personal ID never is
    (the row keeps only its hash). Also: the pupil already known under the same ID (for
    the manual review) and the records taken in."""
    return _rows(
        session,
        """
        SELECT t.id, t.from_school_code, fs.name AS from_school_name, t.to_school_code,
               ts.name AS to_school_name, t.pupil_name, t.birth_date, t.leaving_date,
               t.state, t.records, t.review_reason, t.created_at, t.updated_at,
               t.package_sha256, t.receipt IS NOT NULL AS has_receipt,
               CASE WHEN fs.id = COALESCE(CAST(:school AS int), fs.id)
                         AND (:v_admin OR fs.id = ANY(:v_full))
                    THEN 'out' ELSE 'in' END AS direction,
               p.full_name AS known_name, p.birth_date AS known_birth_date,
               (SELECT count(*) FROM received_record rr WHERE rr.transfer_id = t.id)
                   AS received
        FROM transfer t
        LEFT JOIN school fs ON fs.code = t.from_school_code
        LEFT JOIN school ts ON ts.code = t.to_school_code
        LEFT JOIN pupil p ON p.id = t.pupil_id AND t.state = 'needs_review'
        WHERE (:v_admin OR fs.id = ANY(:v_full) OR ts.id = ANY(:v_full))
          AND (CAST(:school AS int) IS NULL OR :school IN (fs.id, ts.id))
        ORDER BY t.updated_at DESC, t.id DESC
        """,
        {**viewer.params(), "school": school_id},
    )


# ------------------------------------------------------------------------------ submission
def submission_status(session: Session, viewer: Viewer, school_id: int) -> dict[str, Any]:
    """One school's submission to the Sở portal: records issued and not yet sent, sent and
    waiting for the portal's answer, accepted, rejected; open transactions."""
    rows = _rows(
        session,
        f"""
        SELECT count(*) FILTER (WHERE r.state = 'issued') AS issued,
               count(*) FILTER (WHERE r.state = 'submitted') AS submitted,
               count(*) FILTER (WHERE r.state = 'accepted') AS accepted,
               count(*) FILTER (WHERE r.state = 'rejected') AS rejected,
               (SELECT count(*) FROM submission x WHERE x.school_id = s.id
                AND x.status IN ('pending', 'sent')) AS open_transactions
        FROM school s LEFT JOIN hoc_ba r ON r.school_id = s.id
        WHERE s.id = :school AND {SCHOOL_SCOPE}
        GROUP BY s.id
        """,
        {**viewer.params(), "school": school_id},
    )
    return rows[0] if rows else {}


def rejected_records(session: Session, viewer: Viewer, school_id: int) -> list[dict[str, Any]]:
    """The school's records the Sở portal rejected, with the portal's latest reason."""
    return _rows(
        session,
        f"""
        SELECT r.id, p.full_name, p.pupil_code, c.name AS class_name, y.name AS school_year,
               pr.error, pr.error_field_title, pr.error_description, pr.received_at
        FROM hoc_ba r JOIN school_class c ON c.id = r.class_id JOIN pupil p ON p.id = r.pupil_id
        JOIN school_year y ON y.id = r.school_year_id
        LEFT JOIN LATERAL (
            SELECT * FROM portal_result x WHERE x.record_id = r.id AND NOT x.accepted
            ORDER BY x.received_at DESC, x.id DESC LIMIT 1
        ) pr ON true
        WHERE r.school_id = :school AND r.state = 'rejected' AND {CLASS_SCOPE}
        ORDER BY c.grade, c.name, {GIVEN_NAME}, p.full_name
        """,
        {**viewer.params(), "school": school_id},
    )
