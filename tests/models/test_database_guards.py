"""PostgreSQL itself refuses what the rules forbid (ARCHITECTURE rules 1 and 2)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from hocba.models import audit
from hocba.models.lifecycle import SYSTEM, transition

#: a record's effective content: its own, or its year_summary's (migration 0022)
CONTENT = "COALESCE(content, hoc_ba_summary_content(enrolment_id))"
#: that content with one score changed
EDITED = f"jsonb_set({CONTENT}, '{{subjects,TOAN,score}}', '10')"


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
        f"UPDATE hoc_ba SET content = {EDITED} WHERE id = :id",
        "UPDATE year_summary SET content = jsonb_set(content, '{subjects,TOAN,score}', '10') "
        "WHERE enrolment_id = (SELECT enrolment_id FROM hoc_ba WHERE id = :id)",
        "DELETE FROM year_summary "
        "WHERE enrolment_id = (SELECT enrolment_id FROM hoc_ba WHERE id = :id)",
        "UPDATE hoc_ba SET signed_xml = 'x'::bytea WHERE id = :id",
        "UPDATE hoc_ba SET computed_result = 'HTXS' WHERE id = :id",
        "UPDATE hoc_ba SET lookup_code = gen_random_uuid() WHERE id = :id",
        "DELETE FROM hoc_ba WHERE id = :id",
    ],
)
def test_issued_record_cannot_be_changed_by_raw_sql(district, sql: str) -> None:  # type: ignore[no-untyped-def]
    rid = _issued(district)
    # its content is the year_summary's, not a copy (migration 0022)
    assert district.scalar("SELECT content IS NULL FROM hoc_ba WHERE id=:r", r=rid)
    read = f"SELECT {CONTENT}::text || xml_sha256 FROM hoc_ba WHERE id=:r"
    before = district.scalar(read, r=rid)
    with pytest.raises(DBAPIError) as exc, district.engine.begin() as conn:
        conn.execute(text("SELECT set_config('hocba.lifecycle', 'on', true)"))  # even so
        conn.execute(text(sql), {"id": rid})
    assert exc.value.orig.sqlstate == "HBL01"  # type: ignore[union-attr]
    assert district.scalar(read, r=rid) == before


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
        "UPDATE audit_event SET reason = 'sửa' WHERE seq = 1",
        "DELETE FROM audit_event WHERE (chain_no, seq) = "
        "(SELECT chain_no, max(seq) FROM audit_event GROUP BY 1 LIMIT 1)",
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


_DH01 = "(SELECT chain_no FROM audit_head WHERE chain = 'school:DH01')"  # its number


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (
            f"UPDATE audit_event SET reason = 'đã sửa' WHERE chain_no = {_DH01} AND seq = 5",
            "bị sửa",
        ),
        (
            "UPDATE audit_event SET at = at + interval '1 day' "
            f"WHERE chain_no = {_DH01} AND seq = 5",
            "bị sửa",
        ),
        (f"DELETE FROM audit_event WHERE chain_no = {_DH01} AND seq = 5", "Thiếu"),
        (
            f"DELETE FROM audit_event WHERE chain_no = {_DH01} AND seq = "
            f"(SELECT max(seq) FROM audit_event WHERE chain_no = {_DH01})",
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


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_head SET chain_no = chain_no + 100, seq = seq + 1",
        "UPDATE audit_head SET chain = chain || 'x', seq = seq + 1",
    ],
)
def test_a_chain_keeps_its_number_and_name(district, sql: str) -> None:  # type: ignore[no-untyped-def]
    """Events name their chain by number (0021); the hash covers the name, in the head."""
    all_heads = "SELECT string_agg(concat_ws(' ', chain, chain_no, seq), ',') FROM audit_head"
    heads = district.scalar(all_heads)
    with pytest.raises(DBAPIError) as exc, district.engine.begin() as conn:
        conn.execute(text(sql))
    assert exc.value.orig.sqlstate == "HBA01"  # type: ignore[union-attr]
    assert heads and heads == district.scalar(all_heads)


def test_events_whose_head_is_gone_are_reported_by_number(district) -> None:  # type: ignore[no-untyped-def]
    """A head deleted past its guard: the chain's name is lost with it, its events are not."""
    no = district.scalar(f"SELECT {_DH01}")
    with district.engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_head DISABLE TRIGGER USER"))
        conn.execute(text("DELETE FROM audit_head WHERE chain = 'school:DH01'"))
        conn.execute(text("ALTER TABLE audit_head ENABLE TRIGGER USER"))
    with Session(district.engine) as s:
        problems = audit.verify(s)
        assert [(p.chain, p.seq) for p in problems] == [(f"#{no}", 0)]
        assert "Mất đầu chuỗi" in problems[0].message
        assert audit.verify(s, ["school:DH01"])[0].message.startswith("Mất đầu chuỗi")


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


# Migration 0016: the guards fire only when they have something to check (the large
# columns are compared only when an UPDATE names them). They refuse the same as before.


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE hoc_ba SET content = content WHERE id = :id",
        # materializing the year_summary's content: the same effective content
        f"UPDATE hoc_ba SET content = {CONTENT} WHERE id = :id",
        "UPDATE hoc_ba SET signed_xml = signed_xml, xml_sha256 = xml_sha256 WHERE id = :id",
        "UPDATE hoc_ba SET computed_result = computed_result, state = state WHERE id = :id",
    ],
)
def test_issued_record_rewritten_with_the_same_values_is_allowed(district, sql: str) -> None:  # type: ignore[no-untyped-def]
    rid = _issued(district)
    read = (
        f"SELECT {CONTENT}::text || encode(signed_xml, 'hex') || xml_sha256 FROM hoc_ba WHERE id=:r"
    )
    before = district.scalar(read, r=rid)
    with district.engine.begin() as conn:
        conn.execute(text(sql), {"id": rid})
    assert district.scalar(read, r=rid) == before
    assert district.scalar("SELECT count(*) FROM hoc_ba_xml_history WHERE record_id=:r", r=rid) == 0


@pytest.mark.parametrize(
    "sets",
    [
        f"content = {EDITED}",  # with the state change
        "content = NULL",
        "signed_xml = 'x'::bytea",
        "xml_sha256 = encode(sha256('x'::bytea), 'hex')",
        "return_reason = 'sửa'",
        "sealer_id = NULL",
    ],
)
def test_issued_record_cannot_change_while_it_moves_on(district, sets: str) -> None:  # type: ignore[no-untyped-def]
    """A legal post-issue state change (submit) does not carry any other change with it."""
    rid = _issued(district)
    if sets == "content = NULL":  # a record that keeps its own content cannot drop it
        with district.engine.begin() as conn:
            conn.execute(text(f"UPDATE hoc_ba SET content = {CONTENT} WHERE id = :id"), {"id": rid})
    read = (
        f"SELECT content IS NULL, {CONTENT}::text || xml_sha256 || coalesce(return_reason, '') "
        "FROM hoc_ba WHERE id=:r"
    )
    with district.engine.connect() as conn:
        before = conn.execute(text(read), {"r": rid}).one()
    with pytest.raises(DBAPIError) as exc, district.engine.begin() as conn:
        conn.execute(text("SELECT set_config('hocba.lifecycle', 'on', true)"))
        conn.execute(
            text(f"UPDATE hoc_ba SET state = 'submitted', {sets} WHERE id = :id"), {"id": rid}
        )
    assert exc.value.orig.sqlstate == "HBL01"  # type: ignore[union-attr]
    assert district.state(rid) == "issued"
    with district.engine.connect() as conn:
        assert conn.execute(text(read), {"r": rid}).one() == before


@pytest.mark.parametrize("state", ["teacher_signed", "principal_signed"])
@pytest.mark.parametrize(
    ("sets", "refused"),
    [
        (f"content = {EDITED}", True),
        ("content = content", False),
        (f"content = {CONTENT}", False),  # materialized: the same effective content
        ("enrolment_id = (SELECT max(id) FROM enrolment WHERE id <> hoc_ba.enrolment_id)", True),
        ('flags = \'[{"code": "X"}]\'::jsonb', True),
        ("lookup_code = gen_random_uuid()", False),  # the first code is reserved at GVCN
    ],
)
def test_signed_content_is_frozen_in_every_column(
    district, state: str, sets: str, refused: bool
) -> None:  # type: ignore[no-untyped-def]
    rid = district.record_ids("DH01")[0]
    district.force_state(rid, state, flags="[]")
    sql = f"UPDATE hoc_ba SET {sets} WHERE id = :id"
    if not refused:
        with district.engine.begin() as conn:
            conn.execute(text(sql), {"id": rid})
        return
    read = f"SELECT {CONTENT}::text || flags::text || enrolment_id FROM hoc_ba WHERE id=:r"
    before = district.scalar(read, r=rid)
    with pytest.raises(DBAPIError) as exc, district.engine.begin() as conn:
        conn.execute(text(sql), {"id": rid})
    assert exc.value.orig.sqlstate == "HBL02"  # type: ignore[union-attr]
    assert district.scalar(read, r=rid) == before


def test_signed_lookup_code_cannot_change_once_reserved(district) -> None:  # type: ignore[no-untyped-def]
    rid = district.record_ids("DH01")[0]
    district.force_state(rid, "teacher_signed", flags="[]", lookup_code=None)
    with district.engine.begin() as conn:
        conn.execute(
            text("UPDATE hoc_ba SET lookup_code = gen_random_uuid() WHERE id = :id"), {"id": rid}
        )
    with pytest.raises(DBAPIError) as exc, district.engine.begin() as conn:
        conn.execute(
            text("UPDATE hoc_ba SET lookup_code = gen_random_uuid() WHERE id = :id"), {"id": rid}
        )
    assert exc.value.orig.sqlstate == "HBL02"  # type: ignore[union-attr]


def test_the_guards_conditions_name_the_locked_states(engine) -> None:  # type: ignore[no-untyped-def]
    """The triggers' WHEN clauses (migration 0016) list the same locked states as the guard."""
    from hocba.models.lifecycle_states import LOCKED_STATES

    with engine.connect() as conn:
        defs = dict(
            conn.execute(
                text(
                    "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger "
                    "WHERE tgrelid = 'hoc_ba'::regclass AND tgname IN "
                    "('hoc_ba_guard', 'hoc_ba_guard_content')"
                )
            ).all()
        )
    assert set(defs) == {"hoc_ba_guard", "hoc_ba_guard_content"}
    for name, sql in defs.items():
        (array,) = re.findall(r"ARRAY\[(.*?)\]", sql)
        assert set(re.findall(r"'(\w+)'", array)) == set(LOCKED_STATES), name


def test_no_trigger_on_hoc_ba_assigns_new(engine) -> None:  # type: ignore[no-untyped-def]
    """The ``UPDATE OF`` guards (migration 0016) compare the large columns only when an
    UPDATE names them: that is safe only while no trigger on ``hoc_ba`` changes ``NEW``."""
    with engine.connect() as conn:
        sources = dict(
            conn.execute(
                text(
                    "SELECT DISTINCT p.proname, p.prosrc FROM pg_trigger t "
                    "JOIN pg_proc p ON p.oid = t.tgfoid "
                    "WHERE t.tgrelid = 'hoc_ba'::regclass AND NOT t.tgisinternal"
                )
            ).all()
        )
    assert "hoc_ba_guard_content" in sources
    for name, src in sources.items():
        assert not re.search(r"^\s*NEW\s*(\.\s*\w+)?\s*:?=", src, re.M | re.I), name


# Migration 0022: a record's content is stored once. NULL is its enrolment's year_summary's;
# the database keeps that summary from changing under a record that may not change.

_SUMMARY_EDIT = (
    "UPDATE year_summary SET content = jsonb_set(content, '{subjects,TOAN,score}', '10') "
    "WHERE enrolment_id = (SELECT enrolment_id FROM hoc_ba WHERE id = :id)"
)


def _summary(district, rid: int) -> tuple[str, object]:  # type: ignore[no-untyped-def]
    with district.engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT ys.content::text, ys.updated_at FROM year_summary ys "
                "JOIN hoc_ba r ON r.enrolment_id = ys.enrolment_id WHERE r.id = :r"
            ),
            {"r": rid},
        ).one()
    return str(row[0]), row[1]


@pytest.mark.parametrize(
    ("state", "code"),
    [
        ("reviewed", "HBL02"),
        ("teacher_signed", "HBL02"),
        ("principal_signed", "HBL02"),
        ("issued", "HBL01"),
        ("submitted", "HBL01"),
        ("accepted", "HBL01"),
        ("rejected", "HBL01"),
    ],
)
def test_the_year_summary_of_a_reviewed_signed_or_issued_record_cannot_change(
    district, state: str, code: str
) -> None:  # type: ignore[no-untyped-def]
    rid = district.record_ids("DH01")[0]
    district.force_state(rid, state, flags="[]")
    before = _summary(district, rid)
    with pytest.raises(DBAPIError) as exc, district.engine.begin() as conn:
        conn.execute(text(_SUMMARY_EDIT), {"id": rid})
    assert exc.value.orig.sqlstate == code  # type: ignore[union-attr]
    assert f"#{rid}" in str(exc.value.orig)
    assert _summary(district, rid) == before
    # the other columns of the summary are not the record's content (copied at the draft)
    with district.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE year_summary SET computed_result = computed_result "
                "WHERE enrolment_id = (SELECT enrolment_id FROM hoc_ba WHERE id = :id)"
            ),
            {"id": rid},
        )


@pytest.mark.parametrize("state", ["draft", "in_review"])
def test_a_draft_follows_its_year_summary(district, state: str) -> None:  # type: ignore[no-untyped-def]
    """The summary of a draft may change (a re-import); the database moves its
    ``updated_at`` whoever writes it, which ``create_drafts`` compares."""
    rid = district.record_ids("DH01")[0]
    if state != "draft":
        district.force_state(rid, state)
    text_before, at_before = _summary(district, rid)
    with district.engine.begin() as conn:
        conn.execute(text(_SUMMARY_EDIT), {"id": rid})
    text_after, at_after = _summary(district, rid)
    assert text_after != text_before and at_after != at_before
    effective = district.scalar(f"SELECT {CONTENT}::text FROM hoc_ba WHERE id = :r", r=rid)
    assert effective == text_after


def test_a_record_leaving_the_live_states_keeps_its_own_content(district) -> None:  # type: ignore[no-untyped-def]
    rid = _issued(district)
    with pytest.raises(DBAPIError) as exc, district.engine.begin() as conn:  # raw: refused
        conn.execute(text("SELECT set_config('hocba.lifecycle', 'on', true)"))
        conn.execute(text("UPDATE hoc_ba SET state = 'revoked' WHERE id = :id"), {"id": rid})
    assert exc.value.orig.sqlstate == "HBL01"  # type: ignore[union-attr]
    issued = district.scalar(f"SELECT {CONTENT}::text FROM hoc_ba WHERE id = :r", r=rid)
    with Session(district.engine) as s:  # the lifecycle materializes it
        res = transition(s, [rid], "revoke", district.actor("phong.dh"), reason="Chỉnh lý")
        s.commit()
    assert res.ok == [rid]
    assert district.scalar("SELECT content::text FROM hoc_ba WHERE id = :r", r=rid) == issued
    with district.engine.begin() as conn:  # nothing live reads the summary: it may change
        conn.execute(text(_SUMMARY_EDIT), {"id": rid})
    assert _summary(district, rid)[0] != issued
    assert district.scalar(f"SELECT {CONTENT}::text FROM hoc_ba WHERE id = :r", r=rid) == issued


def test_a_draft_without_content_needs_a_year_summary(district) -> None:  # type: ignore[no-untyped-def]
    rid = district.record_ids("DH01")[0]
    with pytest.raises(DBAPIError) as exc, district.engine.begin() as conn:
        eid = conn.scalar(
            text(
                "INSERT INTO enrolment (pupil_id, class_id, school_id, school_year_id, left_on) "
                "SELECT pupil_id, class_id, school_id, school_year_id, current_date "
                "FROM hoc_ba WHERE id = :r RETURNING id"
            ),
            {"r": rid},
        )
        conn.execute(
            text(
                "INSERT INTO hoc_ba (pupil_id, school_id, class_id, school_year_id, "
                "enrolment_id, grade, state, cohort, computed_result) SELECT pupil_id, "
                "school_id, class_id, school_year_id, :e, grade, 'draft', cohort, "
                "computed_result FROM hoc_ba WHERE id = :r"
            ),
            {"r": rid, "e": eid},
        )
    assert exc.value.orig.sqlstate == "HBS01"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM year_summary "
        "WHERE enrolment_id = (SELECT enrolment_id FROM hoc_ba WHERE id = :id)",
        "UPDATE year_summary SET enrolment_id = (SELECT max(id) + 1 FROM enrolment) "
        "WHERE enrolment_id = (SELECT enrolment_id FROM hoc_ba WHERE id = :id)",
        "TRUNCATE year_summary",
    ],
)
def test_a_draft_s_year_summary_cannot_go(district, sql: str) -> None:  # type: ignore[no-untyped-def]
    rid = district.record_ids("DH01")[0]
    before = _summary(district, rid)
    with pytest.raises(DBAPIError) as exc, district.engine.begin() as conn:
        conn.execute(text("SET CONSTRAINTS ALL DEFERRED"))
        conn.execute(text(sql), {"id": rid})
    assert exc.value.orig.sqlstate == "HBL01"  # type: ignore[union-attr]
    assert _summary(district, rid) == before
