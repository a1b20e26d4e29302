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


def _reimport_dh01(district, tmp_path, pupil_code: str, comment: str) -> None:  # type: ignore[no-untyped-def]
    """DH01's workbook again, as the district fixture imported it, with one comment changed."""
    from hocba.dev import demo
    from hocba.tasks import importer

    school = district.schools[0]
    rows, classes = demo.school_rows(school, 12, seed=7, year_start=2024, used_ids=set())
    (row,) = [r for r in rows if r["pupil_code"] == pupil_code]
    row["comment_homeroom"] = comment
    path = importer.write_workbook(tmp_path / "DH01-again.xlsx", rows, classes)
    with Session(district.engine) as s:
        importer.import_file(s, path, school.code, "2024-2025", SYSTEM)
        s.commit()


def _documents(district, ids: list[int]) -> dict[int, dict]:  # type: ignore[no-untyped-def, type-arg]
    from sqlalchemy import text

    from hocba.models.queries import DOCUMENT_QUERY

    with district.engine.connect() as conn:
        rows = conn.execute(text(DOCUMENT_QUERY), {"ids": ids, "today": None}).mappings().all()
    return {r["id"]: r["content"] for r in rows}


def test_drafts_follow_a_reimport_and_are_reported(district, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A draft stores no content (migration 0022): it reads its year_summary, so a
    re-import reaches it at once; ``create_drafts`` still reports and audits it once."""
    rid = district.record_ids("DH01")[0]
    code = district.scalar(
        "SELECT p.pupil_code FROM hoc_ba r JOIN pupil p ON p.id = r.pupil_id WHERE r.id = :r", r=rid
    )
    assert district.scalar("SELECT count(content) FROM hoc_ba") == 0
    _reimport_dh01(district, tmp_path, str(code), "Nhận xét sau khi nhập lại")
    assert _documents(district, [rid])[rid]["comments"]["homeroom"] == "Nhận xét sau khi nhập lại"
    with Session(district.engine) as s:
        report = create_drafts(s, SYSTEM)
        s.commit()
    assert (report.created, report.refreshed) == (0, 1)
    assert (
        district.scalar(
            "SELECT count(*) FROM audit_event WHERE action = 'refresh_draft' AND record_id = :r",
            r=rid,
        )
        == 1
    )
    with Session(district.engine) as s:
        assert create_drafts(s, SYSTEM).refreshed == 0  # seen: not reported twice


def test_a_revoked_record_keeps_the_content_it_was_issued_with(district, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A correction revokes the record (which keeps its content: migration 0022) and drafts
    a new one that reads the year_summary; the correction's re-import changes the new
    draft, never the revoked record (what its print view and DOCUMENT_QUERY show)."""
    from hocba.models import corrections

    old = district.record_ids("DH01")[0]
    district.force_state(old, "issued")
    code = district.scalar(
        "SELECT p.pupil_code FROM hoc_ba r JOIN pupil p ON p.id = r.pupil_id WHERE r.id = :r", r=old
    )
    issued = _documents(district, [old])[old]
    with Session(district.engine) as s:
        req = corrections.request(s, old, district.actor("dh01.vt"), "Sai nhận xét")
        new = corrections.decide(s, req, district.actor("phong.dh"), approve=True)
        s.commit()
    assert new is not None
    assert district.scalar("SELECT content IS NOT NULL FROM hoc_ba WHERE id = :r", r=old)
    assert district.scalar("SELECT content IS NULL FROM hoc_ba WHERE id = :r", r=new)
    _reimport_dh01(district, tmp_path, str(code), "Nhận xét đã chỉnh lý")
    with Session(district.engine) as s:
        report = create_drafts(s, SYSTEM)
        s.commit()
    assert report.refreshed == 1
    docs = _documents(district, [old, new])
    assert docs[old] == issued
    assert docs[new]["comments"]["homeroom"] == "Nhận xét đã chỉnh lý"
    assert issued["comments"]["homeroom"] != "Nhận xét đã chỉnh lý"


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
