"""Deadlines per province, school year and cohort (HOCBA_SPEC §5).

Defaults from the seed district plan (Đàm Hà, Quảng Ninh, 17/01/2025): the June cohort
(pupils who completed the grade or the primary programme) before 15/6, the August cohort
(pupils who needed the summer supplementary assessment) before 15/8, of the year the
school year ends. A ``deadline`` row overrides them for one province and year (e.g. Ho Chi
Minh City: 30/6 and 15/8).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text
from sqlmodel import Session

DEFAULT_DEADLINES: dict[str, tuple[int, int]] = {"june": (6, 15), "august": (8, 15)}


def default_deadline(start_year: int, cohort: str) -> dt.date:
    """The seed's default deadline of ``cohort`` for the school year starting in ``start_year``."""
    month, day = DEFAULT_DEADLINES[cohort]
    return dt.date(start_year + 1, month, day)


def deadline_for(session: Session, province_id: int, school_year_id: int, cohort: str) -> dt.date:
    """The deadline in force: the province's own row, or the default."""
    row = (
        session.connection()
        .execute(
            text(
                "SELECT d.due_date, y.start_year FROM school_year y LEFT JOIN deadline d "
                "ON d.school_year_id = y.id AND d.province_id = :p AND d.cohort = :c "
                "WHERE y.id = :y"
            ),
            {"p": province_id, "y": school_year_id, "c": cohort},
        )
        .one()
    )
    return row.due_date or default_deadline(row.start_year, cohort)


def set_deadline(
    session: Session, province_id: int, school_year_id: int, cohort: str, due: dt.date
) -> None:
    """Override a province's deadline for one year and cohort."""
    session.connection().execute(
        text(
            "INSERT INTO deadline (province_id, school_year_id, cohort, due_date) "
            "VALUES (:p, :y, :c, :d) ON CONFLICT (province_id, school_year_id, cohort) "
            "DO UPDATE SET due_date = excluded.due_date"
        ),
        {"p": province_id, "y": school_year_id, "c": cohort, "d": due},
    )


#: SQL expression for the deadline of a record row ``r`` joined with ``school s`` and
#: ``school_year y`` (used by the status queries so they stay one statement).
DEADLINE_SQL = """
    COALESCE(
        (SELECT d.due_date FROM deadline d WHERE d.province_id = s.province_id
           AND d.school_year_id = y.id AND d.cohort = r.cohort),
        make_date(y.start_year + 1, CASE r.cohort WHEN 'june' THEN 6 ELSE 8 END, 15))
"""
