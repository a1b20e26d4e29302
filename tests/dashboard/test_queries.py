"""The dashboard's read queries see exactly what the person may see (HOCBA_SPEC §7)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
from dashboard_helpers import viewer_of
from sqlalchemy import event, text
from sqlmodel import Session

from hocba.models import calendar, queries

TODAY = dt.date(2025, 5, 20)


def year_id(d) -> int:  # type: ignore[no-untyped-def]
    return int(d.scalar("SELECT id FROM school_year WHERE name = '2024-2025'"))


def class_id(d, school: str, name: str) -> int:  # type: ignore[no-untyped-def]
    return int(
        d.scalar(
            "SELECT c.id FROM school_class c JOIN school s ON s.id = c.school_id "
            "WHERE s.code = :s AND c.name = :n",
            s=school,
            n=name,
        )
    )


def school_id(d, code: str) -> int:  # type: ignore[no-untyped-def]
    return int(d.scalar("SELECT id FROM school WHERE code = :c", c=code))


def pupil_of(d, school: str, klass: str) -> str:  # type: ignore[no-untyped-def]
    """The full name of a pupil with a record in that class."""
    return str(
        d.scalar(
            "SELECT p.full_name FROM hoc_ba r JOIN pupil p ON p.id = r.pupil_id "
            "JOIN school_class c ON c.id = r.class_id JOIN school s ON s.id = r.school_id "
            "WHERE s.code = :s AND c.name = :k ORDER BY r.id LIMIT 1",
            s=school,
            k=klass,
        )
    )


def test_a_teacher_sees_only_their_class(shared_district) -> None:  # type: ignore[no-untyped-def]
    d = shared_district
    teacher = viewer_of(d.engine, "dh01.gv1a")
    with Session(d.engine) as s:
        mine = queries.class_records(s, teacher, class_id(d, "DH01", "1A"))
        other = queries.class_records(s, teacher, class_id(d, "DH01", "2A"))
        classes = queries.my_classes(s, teacher, year_id(d))
        found_other = queries.find_records(s, teacher, pupil_of(d, "DH01", "2A"))
        found_mine = queries.find_records(s, teacher, pupil_of(d, "DH01", "1A"))
        overview = queries.district_overview(s, teacher, year_id(d), TODAY)
        queue = queries.signing_queue(s, teacher, "CBQL", school_id(d, "DH01"))
    assert mine and {r["class_name"] for r in mine} == {"1A"}
    assert other == [] and found_other == []
    assert found_mine and {r["class_name"] for r in found_mine} == {"1A"}
    assert [c["class_name"] for c in classes] == ["1A"]
    assert overview == [] and queue == []


def test_a_principal_sees_nothing_of_another_school(shared_district) -> None:  # type: ignore[no-untyped-def]
    d = shared_district
    principal = viewer_of(d.engine, "dh02.ht")
    dh01_record = d.record_ids("DH01")[0]
    with Session(d.engine) as s:
        overview = queries.district_overview(s, principal, year_id(d), TODAY)
        found = queries.find_records(s, principal, pupil_of(d, "DH01", "1A"))
        classes = queries.school_classes(s, principal, year_id(d), school_id(d, "DH01"))
        row = queries.record_document_row(s, principal, dh01_record)
        history = queries.record_history(s, principal, dh01_record)
        queue = queries.signing_queue(s, principal, "CBQL", school_id(d, "DH01"))
        own = queries.school_classes(s, principal, year_id(d), school_id(d, "DH02"))
        without = queries.pupils_without_id(s, principal, year_id(d))
    assert {r["code"] for r in overview} == {"DH02"}
    assert found == [] and classes == [] and row is None and history == [] and queue == []
    assert own and all(r["total"] > 0 for r in own)
    assert all(p["school_code"] == "DH02" for p in without)


def test_a_district_officer_sees_every_school_of_the_district(shared_district) -> None:  # type: ignore[no-untyped-def]
    d = shared_district
    officer = viewer_of(d.engine, "phong.dh")
    with Session(d.engine) as s:
        overview = queries.district_overview(s, officer, year_id(d), TODAY)
        found = queries.find_records(s, officer, pupil_of(d, "DH01", "2A"))
    assert [(r["code"], r["cohort"]) for r in overview] == [
        ("DH01", "june"),
        ("DH01", "august"),
        ("DH02", "june"),
        ("DH02", "august"),
    ]
    live = d.scalar("SELECT count(*) FROM hoc_ba")
    assert sum(r["total"] for r in overview) == live
    for r in overview:  # the stage columns add up to the total
        assert sum(r[c] for c in queries.STAGE_COLUMNS) == r["total"]
        due = dt.date(2025, 6, 15) if r["cohort"] == "june" else dt.date(2025, 8, 15)
        assert r["deadline"] == due
    no_id = d.scalar(
        "SELECT count(*) FROM year_summary ys JOIN enrolment e ON e.id = ys.enrolment_id "
        "JOIN pupil p ON p.id = e.pupil_id WHERE p.cccd IS NULL"
    )
    assert sum(r["without_id"] for r in overview if r["cohort"] == "june") == no_id
    assert found


def test_nobody_without_a_role_sees_anything(shared_district) -> None:  # type: ignore[no-untyped-def]
    d = shared_district
    nobody = queries.Viewer(staff_id=-1, username="x", name="X")
    with Session(d.engine) as s:
        assert queries.district_overview(s, nobody, year_id(d), TODAY) == []
        assert queries.find_records(s, nobody, "a") == []
        assert queries.staff_roles(s, nobody) == []


def test_personal_ids_are_masked(shared_district) -> None:  # type: ignore[no-untyped-def]
    d = shared_district
    principal = viewer_of(d.engine, "dh01.ht")
    with Session(d.engine) as s:
        rows = queries.class_records(s, principal, class_id(d, "DH01", "1A"))
        found = queries.find_records(s, principal, rows[0]["full_name"])
        staff = queries.staff_roles(s, principal)
    masked = re.compile(r"^••••••••\d{4}$")
    assert all(masked.match(r["cccd"]) for r in rows + found if r["cccd"])
    assert all(masked.match(p["cccd"]) for p in staff if p["cccd"])
    assert queries.mask_cccd("022012345678") == "••••••••5678"


def test_search_ignores_case_and_diacritics(shared_district) -> None:  # type: ignore[no-untyped-def]
    d = shared_district
    officer = viewer_of(d.engine, "phong.dh")
    name = pupil_of(d, "DH01", "1A")
    code = str(d.scalar("SELECT pupil_code FROM pupil WHERE full_name = :n", n=name))
    with Session(d.engine) as s:
        by_plain = queries.find_records(s, officer, queries.fold(name).upper())
        by_code = queries.find_records(s, officer, code.lower())
    assert name in {r["full_name"] for r in by_plain}
    assert [r["pupil_code"] for r in by_code] == [code]


@pytest.mark.parametrize("cohort,due", [("june", dt.date(2025, 6, 30))])
def test_a_province_deadline_overrides_the_default(shared_district, cohort, due) -> None:  # type: ignore[no-untyped-def]
    d = shared_district
    officer = viewer_of(d.engine, "phong.dh")
    with Session(d.engine) as s:
        province = s.connection().scalar(text("SELECT id FROM org_unit WHERE kind = 'province'"))
        calendar.set_deadline(s, province, year_id(d), cohort, due)
        overview = queries.district_overview(s, officer, year_id(d), TODAY)
        table = queries.deadline_table(s, officer)
        s.rollback()  # the district is shared: leave it as it was
    assert {r["deadline"] for r in overview if r["cohort"] == cohort} == {due}
    assert any(t["override"] == due and t["cohort"] == cohort for t in table)


def test_progress_follows_the_audit_log_in_scope(district) -> None:  # type: ignore[no-untyped-def]
    """Signing events counted per day by the database as they are logged (migration
    0009): the district sees both schools, a principal only theirs; the kept counts equal
    a rebuild from the audit log."""
    from hocba.models import audit
    from hocba.models.lifecycle import VN_TZ

    dh01, dh02 = district.record_ids("DH01"), district.record_ids("DH02")
    with Session(district.engine) as s:
        events = [
            audit.NewEvent(chain="school:DH01", actor="t", action="teacher_sign", record_id=r)
            for r in dh01[:5]
        ]
        events += [
            audit.NewEvent(chain="school:DH01", actor="t", action="principal_sign", record_id=r)
            for r in dh01[:2]
        ]
        events += [
            audit.NewEvent(chain="school:DH02", actor="t", action="teacher_sign", record_id=r)
            for r in dh02[:3]
        ]
        events.append(audit.NewEvent(chain="school:DH02", actor="t", action="view", record_id=1))
        audit.append(s, events)
        s.commit()
    today = dt.datetime.now(VN_TZ).date()
    year = year_id(district)

    def series(username: str) -> dict[str, tuple[int, int]]:
        with Session(district.engine) as s:
            rows = queries.progress_series(s, viewer_of(district.engine, username), year)
        assert {r["day"] for r in rows} <= {today}
        return {r["action"]: (r["n"], r["cumulative"]) for r in rows}

    assert series("phong.dh") == {"teacher_sign": (8, 8), "principal_sign": (2, 2)}
    assert series("dh02.ht") == {"teacher_sign": (3, 3)}
    assert series("dh01.gv1a") == {}  # a teacher sees no school whole
    kept = "SELECT school_id, day, action, n FROM progress_day ORDER BY 1, 2, 3"
    with district.engine.begin() as conn:
        before = conn.execute(text(kept)).all()
        conn.execute(text("SELECT progress_day_rebuild()"))
        assert conn.execute(text(kept)).all() == before


def test_the_overview_counts_every_stage_as_the_records_say(district) -> None:  # type: ignore[no-untyped-def]
    """The district's counts (index-only aggregates, migration 0009) equal the records
    counted one by one, per school and cohort: stages, done, sent, recent, flagged."""
    ids = district.record_ids("DH01") + district.record_ids("DH02")
    states = ["draft", "in_review", "reviewed", "teacher_signed", "principal_signed", "issued"]
    for i, rid in enumerate(ids):
        state = states[i % len(states)] if i != 5 else "principal_signed"
        flags = '[{"code": "X", "message": "m"}]' if i % 7 == 0 else "[]"
        district.force_state(rid, state, flags=flags)
    with district.engine.begin() as conn:  # one issued long ago (not "recent")
        conn.execute(text("SELECT set_config('hocba.lifecycle', 'on', true)"))
        conn.execute(
            text(
                "UPDATE hoc_ba SET state = 'issued', lookup_code = gen_random_uuid(), "
                "signed_xml = 'x'::bytea, xml_sha256 = encode(sha256('x'::bytea), 'hex'), "
                "issued_at = now() - interval '30 days' WHERE id = :i"
            ),
            {"i": ids[5]},
        )
    with district.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT school_id, cohort, state, flags, issued_at FROM hoc_ba")
        ).all()
    today = dt.datetime.now(dt.UTC).date()
    with Session(district.engine) as s:
        overview = queries.district_overview(
            s, viewer_of(district.engine, "phong.dh"), year_id(district), today
        )
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=8)
    issued = {"issued", "submitted", "accepted", "rejected"}
    for o in overview:
        mine = [r for r in rows if (r.school_id, r.cohort) == (o["school_id"], o["cohort"])]
        assert o["total"] == len(mine)
        for state in queries.STAGE_COLUMNS:
            assert o[state] == sum(r.state == state for r in mine), state
        assert o["done"] == sum(r.state in issued for r in mine)
        assert o["done_recent"] == sum(
            r.state in issued and r.issued_at is not None and r.issued_at >= since for r in mine
        )
        assert o["flagged"] == sum(
            r.state in ("draft", "in_review") and len(r.flags) > 0 for r in mine
        )
    assert sum(o["flagged"] for o in overview) > 0 and sum(o["done"] for o in overview) > 1


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


@pytest.mark.parametrize(
    ("username", "one_school"), [("phong.dh", False), ("phong.dh", True), ("admin", False)]
)
def test_the_overview_counts_come_from_an_index_only_scan(  # type: ignore[no-untyped-def]
    district, username: str, one_school: bool
) -> None:
    """The counts per school, cohort and stage, ``issued_at >= :since`` included, read
    ``hoc_ba_year_school`` only (migration 0020: ``issued_at`` in the key, not INCLUDEd):
    an index-only scan without a heap fetch once the table is vacuumed. Sequential and
    bitmap scans are turned off because the test's table is a few pages, where the planner
    would rightly read it whole; what is checked is that the index covers the query."""
    ids = district.record_ids("DH01") + district.record_ids("DH02")
    for i, rid in enumerate(ids):
        district.force_state(rid, ["draft", "reviewed", "issued"][i % 3])
    with district.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE) hoc_ba"))

    def explain(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        return "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters

    with Session(district.engine) as s:
        conn = s.connection()
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        conn.execute(text("SET LOCAL enable_bitmapscan = off"))
        event.listen(conn, "before_cursor_execute", explain, retval=True)
        try:
            rows = queries.district_overview(
                s,
                viewer_of(district.engine, username),
                year_id(district),
                dt.datetime.now(dt.UTC).date(),
                school_id=school_id(district, "DH01") if one_school else None,
            )
        finally:
            event.remove(conn, "before_cursor_execute", explain)
    (plan,) = rows[0]["QUERY PLAN"]
    scans = [n for n in _plan_nodes(plan["Plan"]) if n.get("Relation Name") == "hoc_ba"]
    counts = [n for n in scans if n.get("Index Name") == "hoc_ba_year_school"]
    assert [n["Node Type"] for n in counts] == ["Index Only Scan"], scans
    assert counts[0]["Heap Fetches"] == 0 and counts[0]["Actual Rows"] > 0
    assert all(n["Node Type"] != "Seq Scan" for n in scans)
