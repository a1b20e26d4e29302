"""Drafts from the imported year-end data (lifecycle step 2) and the status queries."""

from __future__ import annotations

from sqlmodel import Session

from hocba.models.calendar import deadline_for, default_deadline, set_deadline
from hocba.models.lifecycle import SYSTEM
from hocba.models.records import create_drafts, list_records, stage_counts, without_id_counts


def test_drafts_only_for_pupils_with_a_personal_id(district) -> None:  # type: ignore[no-untyped-def]
    pupils = district.scalar("SELECT count(*) FROM year_summary")
    without = district.scalar("SELECT count(*) FROM pupil WHERE cccd IS NULL")
    records = district.scalar("SELECT count(*) FROM hoc_ba")
    assert records == pupils - without
    assert (
        district.scalar(
            "SELECT count(*) FROM hoc_ba r JOIN pupil p ON p.id = r.pupil_id WHERE p.cccd IS NULL"
        )
        == 0
    )


def test_creating_drafts_twice_creates_nothing_more(district) -> None:  # type: ignore[no-untyped-def]
    before = district.scalar("SELECT count(*) FROM hoc_ba")
    events = district.scalar("SELECT count(*) FROM audit_event")
    with Session(district.engine) as s:
        report = create_drafts(s, SYSTEM)
        s.commit()
    assert (report.created, report.refreshed) == (0, 0)
    assert district.scalar("SELECT count(*) FROM hoc_ba") == before
    assert district.scalar("SELECT count(*) FROM audit_event") == events


def test_each_draft_has_a_create_event(district) -> None:  # type: ignore[no-untyped-def]
    assert (
        district.scalar(
            "SELECT count(*) FROM hoc_ba r WHERE NOT EXISTS (SELECT 1 FROM audit_event e "
            "WHERE e.record_id = r.id AND e.action = 'create_draft')"
        )
        == 0
    )


def test_status_counts_add_up(district) -> None:  # type: ignore[no-untyped-def]
    with Session(district.engine) as s:
        rows = stage_counts(s)
        no_id = without_id_counts(s)
        listed = list_records(s, state="draft", school_code="DH02")
    assert sum(r["n"] for r in rows) == district.scalar("SELECT count(*) FROM hoc_ba")
    assert sum(no_id.values()) == district.scalar("SELECT count(*) FROM pupil WHERE cccd IS NULL")
    assert listed and {r["school_code"] for r in listed} == {"DH02"}


def test_deadlines_default_and_override(district) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    province = int(district.scalar("SELECT id FROM org_unit WHERE kind = 'province'"))
    year = int(district.scalar("SELECT id FROM school_year"))
    with Session(district.engine) as s:
        assert deadline_for(s, province, year, "june") == dt.date(2025, 6, 15)
        assert deadline_for(s, province, year, "august") == default_deadline(2024, "august")
        set_deadline(s, province, year, "june", dt.date(2025, 6, 30))  # like Ho Chi Minh City
        assert deadline_for(s, province, year, "june") == dt.date(2025, 6, 30)
        assert deadline_for(s, province, year, "august") == dt.date(2025, 8, 15)


def test_drafts_again_only_where_the_live_record_was_revoked(district) -> None:  # type: ignore[no-untyped-def]
    """A pupil with a live record of the year gets no second draft (the insert skips what
    ``hoc_ba_one_live_per_year`` already holds); one whose record was revoked gets a new
    draft, and only that pupil."""
    revoked = district.record_ids("DH01")[0]
    pupil = district.scalar("SELECT pupil_id FROM hoc_ba WHERE id = :r", r=revoked)
    district.force_state(revoked, "revoked")
    before = district.scalar("SELECT count(*) FROM hoc_ba")
    with Session(district.engine) as s:
        report = create_drafts(s, SYSTEM)
        s.commit()
    assert report.created == 1
    assert district.scalar("SELECT count(*) FROM hoc_ba") == before + 1
    assert (
        district.scalar(
            "SELECT count(*) FROM hoc_ba WHERE pupil_id = :p AND state = 'draft'", p=pupil
        )
        == 1
    )
