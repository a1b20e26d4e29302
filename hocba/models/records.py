"""Drafts from the confirmed year-end data, and the status queries.

``create_drafts`` is lifecycle step 2 (records initialised): one set-based INSERT … SELECT
from ``year_summary`` for every pupil with a personal ID who has no live record for that
year, plus one audit event per draft; drafts whose summary was re-imported are refreshed.
Pupils without a personal ID get no digital record (HOCBA_SPEC §2) and are reported.

A draft stores no content of its own (NULL, migration 0022): it reads its enrolment's
``year_summary.content``, so it follows a re-import by itself. ``summary_seen_at`` keeps
the summary's ``updated_at`` (set by the database whenever the content changes) as the
draft was made or last refreshed: the refresh reports and audits exactly the drafts whose
summary changed since, and copies the other columns as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from hocba.models import audit
from hocba.models.lifecycle import Actor


@dataclass
class DraftReport:
    created: int
    refreshed: int
    without_id: int


def create_drafts(
    session: Session,
    actor: Actor,
    school_ids: list[int] | None = None,
    school_year_id: int | None = None,
) -> DraftReport:
    """Create (and refresh) the drafts of the given schools (all when None)."""
    conn = session.connection()
    params: dict[str, Any] = {"schools": school_ids, "year": school_year_id}
    scope = (
        "(CAST(:schools AS int[]) IS NULL OR e.school_id = ANY(:schools)) "
        "AND (CAST(:year AS int) IS NULL OR e.school_year_id = :year)"
    )
    created = conn.execute(
        text(f"""
            INSERT INTO hoc_ba (pupil_id, school_id, class_id, school_year_id, enrolment_id,
                                grade, state, cohort, entered_result,
                                computed_result, flags, summary_seen_at)
            SELECT e.pupil_id, e.school_id, e.class_id, e.school_year_id, e.id, c.grade,
                   'draft', ys.cohort, ys.entered_result, ys.computed_result,
                   ys.flags, ys.updated_at
            FROM year_summary ys JOIN enrolment e ON e.id = ys.enrolment_id
            JOIN pupil p ON p.id = e.pupil_id JOIN school_class c ON c.id = e.class_id
            WHERE p.cccd IS NOT NULL AND e.left_on IS NULL AND {scope}
            ORDER BY e.school_id, c.name, p.full_name
            ON CONFLICT (pupil_id, school_year_id) WHERE state NOT IN ('revoked', 'superseded')
            DO NOTHING
            RETURNING id, school_id
        """),
        params,
    ).all()
    # lock the drafts to refresh in id order first, as transition() does: no deadlock
    conn.execute(
        text(f"""
            SELECT r.id FROM hoc_ba r JOIN enrolment e ON e.id = r.enrolment_id
            WHERE r.state IN ('draft', 'in_review') AND {scope}
            ORDER BY r.id FOR UPDATE OF r
        """),
        params,
    )
    refreshed = conn.execute(
        text(f"""
            UPDATE hoc_ba r SET content = NULL, summary_seen_at = ys.updated_at,
                   entered_result = ys.entered_result, computed_result = ys.computed_result,
                   flags = ys.flags, cohort = ys.cohort, class_id = e.class_id, grade = c.grade
            FROM year_summary ys JOIN enrolment e ON e.id = ys.enrolment_id
            JOIN school_class c ON c.id = e.class_id
            WHERE r.enrolment_id = e.id AND r.state IN ('draft', 'in_review') AND {scope}
              AND (CASE WHEN r.content IS NULL
                        THEN r.summary_seen_at IS DISTINCT FROM ys.updated_at
                        ELSE r.content IS DISTINCT FROM ys.content END
                   OR (r.entered_result, r.flags, r.class_id)
                      IS DISTINCT FROM (ys.entered_result, ys.flags, e.class_id))
            RETURNING r.id, r.school_id
        """),
        params,
    ).all()
    without_id = conn.scalar(
        text(f"""
            SELECT count(*) FROM year_summary ys JOIN enrolment e ON e.id = ys.enrolment_id
            JOIN pupil p ON p.id = e.pupil_id WHERE p.cccd IS NULL AND {scope}
        """),
        params,
    )
    codes: dict[int, str] = dict(conn.execute(text("SELECT id, code FROM school")).all())
    audit.append(
        session,
        [
            actor.event(
                codes[sid],
                action,
                record_id=rid,
                to_state="draft" if action == "create_draft" else None,
            )
            for action, rows in (("create_draft", created), ("refresh_draft", refreshed))
            for rid, sid in rows
        ],
    )
    return DraftReport(created=len(created), refreshed=len(refreshed), without_id=without_id or 0)


def stage_counts(session: Session, school_year_id: int | None = None) -> list[dict[str, Any]]:
    """Counts per school, cohort and state, with the deadline in force and pupils without ID."""
    rows = (
        session.connection()
        .execute(
            text("""
            WITH y AS (SELECT id FROM school_year
                       WHERE CAST(:year AS int) IS NULL OR id = :year)
            SELECT s.code, s.name, r.cohort, r.state, count(*) AS n
            FROM hoc_ba r JOIN school s ON s.id = r.school_id
            WHERE r.school_year_id IN (SELECT id FROM y)
            GROUP BY s.code, s.name, r.cohort, r.state
            ORDER BY s.code, r.cohort, r.state
        """),
            {"year": school_year_id},
        )
        .mappings()
        .all()
    )
    return [dict(r) for r in rows]


def without_id_counts(session: Session, school_year_id: int | None = None) -> dict[str, int]:
    """Pupils with year-end data but no personal ID, per school code."""
    return dict(
        session.connection()
        .execute(
            text("""
            SELECT s.code, count(*) FROM year_summary ys JOIN enrolment e ON e.id = ys.enrolment_id
            JOIN pupil p ON p.id = e.pupil_id JOIN school s ON s.id = e.school_id
            WHERE p.cccd IS NULL AND (CAST(:year AS int) IS NULL OR e.school_year_id = :year)
            GROUP BY s.code
        """),
            {"year": school_year_id},
        )
        .all()
    )


def list_records(
    session: Session,
    state: str | None = None,
    school_code: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """One row per record: pupil, class, school, state, lookup code when issued."""
    rows = (
        session.connection()
        .execute(
            text("""
            SELECT r.id, p.pupil_code, p.full_name, c.name AS class_name, s.code AS school_code,
                   y.name AS school_year, r.state, r.cohort, r.computed_result,
                   r.lookup_code, jsonb_array_length(r.flags) AS flags
            FROM hoc_ba r JOIN pupil p ON p.id = r.pupil_id
            JOIN school_class c ON c.id = r.class_id JOIN school s ON s.id = r.school_id
            JOIN school_year y ON y.id = r.school_year_id
            WHERE (CAST(:state AS text) IS NULL OR r.state = :state)
              AND (CAST(:school AS text) IS NULL OR s.code = :school)
            ORDER BY s.code, c.name, p.full_name, r.id
            LIMIT :limit
        """),
            {"state": state, "school": school_code, "limit": limit},
        )
        .mappings()
        .all()
    )
    return [
        {**dict(r), "lookup_code": str(r["lookup_code"]) if r["lookup_code"] else None}
        for r in rows
    ]
