"""The PL/pgSQL guard and the Python transition table say the same thing.

ARCHITECTURE rules 1 and 2 are enforced twice: by :data:`hocba.models.lifecycle.TRANSITIONS`
(what the application allows) and by the ``hoc_ba_guard`` trigger (what PostgreSQL
allows, whoever writes). These tests read both and fail the day one of them changes without
the other: the locked states, the moves allowed after issue, and the states themselves.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from hocba.models.lifecycle import TRANSITIONS
from hocba.models.lifecycle_states import LOCKED_STATES, STATE_LABELS


def _reachable_from(state: str) -> set[str]:
    seen, todo = {state}, [state]
    while todo:
        here = todo.pop()
        for t in TRANSITIONS.values():
            if here in t.sources and t.target not in seen:
                seen.add(t.target)
                todo.append(t.target)
    return seen


def _table_moves(source: str) -> set[str]:
    return {t.target for t in TRANSITIONS.values() if source in t.sources} - {source}


def test_locked_states_are_issued_and_everything_after_it() -> None:
    assert set(LOCKED_STATES) == _reachable_from("issued")


def test_the_trigger_locks_exactly_the_locked_states(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        source = conn.execute(
            text("SELECT pg_get_functiondef('hoc_ba_guard'::regproc)")
        ).scalar_one()
    m = re.search(r"locked CONSTANT text\[\] := ARRAY\[([^\]]*)\]", source)
    assert m, "hoc_ba_guard no longer declares its locked states"
    assert {s.strip(" '") for s in m.group(1).split(",")} == set(LOCKED_STATES)


def test_the_state_check_constraint_lists_every_state(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        check = conn.execute(
            text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'hoc_ba_state'"
            )
        ).scalar_one()
    assert set(re.findall(r"'(\w+)'", check)) == set(STATE_LABELS)


@pytest.mark.parametrize("source", sorted(LOCKED_STATES))
def test_the_trigger_allows_after_issue_exactly_the_tables_moves(district, source: str) -> None:  # type: ignore[no-untyped-def]
    """Every (locked state → any other state) pair, tried against PostgreSQL in a savepoint."""
    rid = district.record_ids("DH01")[0]
    district.force_state(rid, source)
    allowed: set[str] = set()
    with district.engine.connect() as conn:
        conn.execute(text("SELECT set_config('hocba.lifecycle', 'on', false)"))
        for target in sorted(set(STATE_LABELS) - {source}):
            savepoint = conn.begin_nested() if conn.in_transaction() else conn.begin()
            # a record leaving the live states keeps its content, as transition() writes it
            # (migration 0022: refused with none of its own)
            keep = (
                ", content = COALESCE(content, hoc_ba_summary_content(enrolment_id))"
                if target in ("revoked", "superseded")
                else ""
            )
            try:
                conn.execute(
                    text(f"UPDATE hoc_ba SET state = :s{keep} WHERE id = :id"),
                    {"s": target, "id": rid},
                )
            except DBAPIError as exc:
                assert exc.orig.sqlstate == "HBL01"  # type: ignore[union-attr]
            else:
                allowed.add(target)
            finally:
                savepoint.rollback()
    assert allowed == _table_moves(source)
