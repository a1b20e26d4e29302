"""PostgreSQL itself refuses what the rules forbid (ARCHITECTURE rules 1 and 2)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from hocba.models import audit
from hocba.models.lifecycle import SYSTEM, transition


def _issued(district) -> int:  # type: ignore[no-untyped-def]
    rid = district.record_ids("DH01")[0]
    district.force_state(rid, "principal_signed", flags="[]")
    with Session(district.engine) as s:
        res = transition(
            s,
            [rid],
            "seal",
            district.actor("dh01.vt"),
            payloads={rid: {"signed_xml": b"<HOC_BA>signed</HOC_BA>"}},
        )
        s.commit()
    assert res.ok == [rid]
    return rid


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE hoc_ba SET content = jsonb_set(content, '{subjects,TOAN,score}', '10') "
        "WHERE id = :id",
        "UPDATE hoc_ba SET signed_xml = 'x'::bytea WHERE id = :id",
        "UPDATE hoc_ba SET computed_result = 'HTXS' WHERE id = :id",
        "UPDATE hoc_ba SET lookup_code = gen_random_uuid() WHERE id = :id",
        "DELETE FROM hoc_ba WHERE id = :id",
    ],
)
def test_issued_record_cannot_be_changed_by_raw_sql(district, sql: str) -> None:  # type: ignore[no-untyped-def]
    rid = _issued(district)
    before = district.scalar("SELECT content::text || xml_sha256 FROM hoc_ba WHERE id=:r", r=rid)
    with pytest.raises(DBAPIError) as exc, district.engine.begin() as conn:
        conn.execute(text("SELECT set_config('hocba.lifecycle', 'on', true)"))  # even so
        conn.execute(text(sql), {"id": rid})
    assert exc.value.orig.sqlstate == "HBL01"  # type: ignore[union-attr]
    after = district.scalar("SELECT content::text || xml_sha256 FROM hoc_ba WHERE id=:r", r=rid)
    assert after == before


def test_issued_record_cannot_go_back_to_draft(district) -> None:  # type: ignore[no-untyped-def]
    rid = _issued(district)
    with pytest.raises(DBAPIError) as exc:
        district.force_state(rid, "draft")
    assert exc.value.orig.sqlstate == "HBL01"  # type: ignore[union-attr]


def test_state_changes_only_through_the_lifecycle(district) -> None:  # type: ignore[no-untyped-def]
    rid = district.record_ids("DH01")[0]
    with pytest.raises(DBAPIError) as exc, district.engine.begin() as conn:
        conn.execute(text("UPDATE hoc_ba SET state = 'reviewed' WHERE id = :id"), {"id": rid})
    assert exc.value.orig.sqlstate == "HBS01"  # type: ignore[union-attr]
    assert district.state(rid) == "draft"


def test_draft_content_may_still_change(district) -> None:  # type: ignore[no-untyped-def]
    rid = district.record_ids("DH01")[0]
    with district.engine.begin() as conn:
        conn.execute(text("UPDATE hoc_ba SET entered_result = 'HT' WHERE id = :id"), {"id": rid})
    assert district.scalar("SELECT entered_result FROM hoc_ba WHERE id=:r", r=rid) == "HT"


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_event SET reason = 'sửa' WHERE id = (SELECT min(id) FROM audit_event)",
        "DELETE FROM audit_event WHERE id = (SELECT max(id) FROM audit_event)",
        "TRUNCATE audit_event",
    ],
)
def test_audit_log_is_append_only(district, sql: str) -> None:  # type: ignore[no-untyped-def]
    n = district.scalar("SELECT count(*) FROM audit_event")
    assert n > 0
    with pytest.raises(DBAPIError) as exc, district.engine.begin() as conn:
        conn.execute(text(sql))
    assert exc.value.orig.sqlstate == "HBA01"  # type: ignore[union-attr]
    assert district.scalar("SELECT count(*) FROM audit_event") == n


def _tamper(district, sql: str) -> None:  # type: ignore[no-untyped-def]
    """What an attacker with superuser rights could do: bypass the trigger."""
    with district.engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
        conn.execute(text(sql))
        conn.execute(text("ALTER TABLE audit_event ENABLE TRIGGER USER"))


def test_hash_chain_is_intact_after_normal_work(district) -> None:  # type: ignore[no-untyped-def]
    with Session(district.engine) as s:
        transition(s, district.record_ids("DH01"), "send_to_review", SYSTEM)
        s.commit()
        assert audit.verify(s) == []


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (
            "UPDATE audit_event SET reason = 'đã sửa' WHERE chain = 'school:DH01' AND seq = 5",
            "bị sửa",
        ),
        (
            "UPDATE audit_event SET at = at + interval '1 day' "
            "WHERE chain = 'school:DH01' AND seq = 5",
            "bị sửa",
        ),
        ("DELETE FROM audit_event WHERE chain = 'school:DH01' AND seq = 5", "Thiếu"),
        (
            "DELETE FROM audit_event WHERE chain = 'school:DH01' AND seq = "
            "(SELECT max(seq) FROM audit_event WHERE chain = 'school:DH01')",
            "cuối",
        ),
    ],
)
def test_hash_chain_names_the_first_broken_event(district, sql: str, message: str) -> None:  # type: ignore[no-untyped-def]
    _tamper(district, sql)
    with Session(district.engine) as s:
        problems = audit.verify(s)
    assert [p.chain for p in problems] == ["school:DH01"]
    assert message in problems[0].message
    if "seq = 5" in sql:
        assert problems[0].seq == 5


def test_a_record_is_born_a_draft(district) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DBAPIError) as exc, district.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO hoc_ba (pupil_id, school_id, class_id, school_year_id, enrolment_id, "
                "grade, state, cohort, content, computed_result) SELECT pupil_id, school_id, "
                "class_id, school_year_id, enrolment_id, grade, 'issued', cohort, content, "
                "computed_result FROM hoc_ba LIMIT 1"
            )
        )
    assert exc.value.orig.sqlstate == "HBS01"  # type: ignore[union-attr]


def test_issuing_needs_code_xml_and_hash(district) -> None:  # type: ignore[no-untyped-def]
    rid = district.record_ids("DH01")[0]
    with pytest.raises(DBAPIError) as exc, district.engine.begin() as conn:
        conn.execute(text("SELECT set_config('hocba.lifecycle', 'on', true)"))  # even so
        conn.execute(
            text(
                "UPDATE hoc_ba SET state = 'issued', lookup_code = gen_random_uuid() WHERE id = :id"
            ),
            {"id": rid},
        )
    assert exc.value.orig.sqlstate == "HBL01"  # type: ignore[union-attr]
    assert district.state(rid) == "draft"


@pytest.mark.parametrize(
    "sql",
    [
        "TRUNCATE hoc_ba CASCADE",
        "DELETE FROM audit_head",
        "UPDATE audit_head SET seq = 0",
        "TRUNCATE audit_head",
    ],
)
def test_tables_cannot_be_emptied_or_heads_moved_back(district, sql: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DBAPIError), district.engine.begin() as conn:
        conn.execute(text(sql))
    assert district.scalar("SELECT count(*) FROM hoc_ba") > 0


def test_signed_content_is_frozen_until_returned(district) -> None:  # type: ignore[no-untyped-def]
    rid = district.record_ids("DH01")[0]
    district.force_state(rid, "teacher_signed", flags="[]")
    with pytest.raises(DBAPIError) as exc, district.engine.begin() as conn:
        conn.execute(text("UPDATE hoc_ba SET entered_result = 'HTXS' WHERE id = :id"), {"id": rid})
    assert exc.value.orig.sqlstate == "HBL02"  # type: ignore[union-attr]
    with Session(district.engine) as s:  # the principal returns it: editable again
        transition(s, [rid], "principal_return", district.actor("dh01.ht"), reason="Sửa kết quả")
        s.commit()
    with district.engine.begin() as conn:
        conn.execute(text("UPDATE hoc_ba SET entered_result = 'HTXS' WHERE id = :id"), {"id": rid})
