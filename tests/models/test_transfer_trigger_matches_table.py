"""The ``transfer_guard`` trigger and the transfer transition table say the same thing.

:data:`hocba.models.transfer_lifecycle.TRANSFER_TRANSITIONS` is what the application allows;
``transfer_guard`` (migration 0013) is what PostgreSQL allows, whoever writes. These tests
read both, and try every move against PostgreSQL, so the day one changes without the
other they fail.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from hocba.models.transfer_lifecycle import TRANSFER_STATES, TRANSFER_TRANSITIONS

NEW = "new"  # the trigger's name of "no row yet" (a move that creates the transfer)


def _table_moves() -> set[tuple[str, str]]:
    return {
        (source or NEW, t.target)
        for t in TRANSFER_TRANSITIONS.values()
        for source in t.sources
        if source != t.target  # a self-move is not a state change
    }


def test_the_trigger_lists_exactly_the_tables_moves(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        source = conn.execute(
            text("SELECT pg_get_functiondef('transfer_guard'::regproc)")
        ).scalar_one()
    m = re.search(r"moves CONSTANT text\[\] := ARRAY\[([^\]]*)\]", source)
    assert m, "transfer_guard no longer declares its moves"
    listed = {tuple(s.strip(" \n'").split(">")) for s in m.group(1).split(",")}
    assert listed == _table_moves()


def test_the_state_check_constraint_lists_every_state(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        check = conn.execute(
            text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'transfer'::regclass AND contype = 'c'"
            )
        ).scalar_one()
    assert set(re.findall(r"'(\w+)'", check)) == set(TRANSFER_STATES)


def _insert(conn: Connection, state: str) -> int:
    return int(
        conn.execute(
            text(
                "INSERT INTO transfer (pupil_cccd_sha256, pupil_name, birth_date, "
                "from_school_code, to_school_code, leaving_date, state, package_sha256, records) "
                "VALUES (repeat('1', 64), 'Học Sinh Thử', '2016-01-02', 'DH01', 'DH02', "
                "'2025-01-15', :s, md5(random()::text) || md5(random()::text), 1) RETURNING id"
            ),
            {"s": state},
        ).scalar_one()
    )


def _lifecycle(conn: Connection, on: bool) -> None:
    value = "on" if on else "off"
    conn.execute(text("SELECT set_config('hocba.transfer_lifecycle', :v, true)"), {"v": value})


def _tried(conn: Connection, source: str, target: str, *, flag: bool = True) -> str | None:
    """Try ``source → target`` in a savepoint, as the transfer lifecycle does (``flag``) or
    behind its back; None when PostgreSQL allows it, else the SQLSTATE it refused with."""
    savepoint = conn.begin_nested()
    try:
        _lifecycle(conn, True)
        tid = None if source == NEW else _insert(conn, source)
        _lifecycle(conn, flag)
        if tid is None:
            _insert(conn, target)
        else:
            conn.execute(
                text("UPDATE transfer SET state = :s WHERE id = :i"), {"s": target, "i": tid}
            )
    except DBAPIError as exc:
        return str(exc.orig.sqlstate)  # type: ignore[union-attr]
    finally:
        savepoint.rollback()
    return None


@pytest.mark.parametrize("source", [NEW, *TRANSFER_STATES])
def test_the_trigger_allows_exactly_the_tables_moves(engine, source: str) -> None:  # type: ignore[no-untyped-def]
    """Every (state, or no row yet → any other state) pair, tried against PostgreSQL."""
    allowed: set[tuple[str, str]] = set()
    with engine.connect() as conn, conn.begin():
        for target in sorted(set(TRANSFER_STATES) - {source}):
            refused = _tried(conn, source, target)
            if refused is None:
                allowed.add((source, target))
            else:
                assert refused == "HBT02", (source, target, refused)
    assert allowed == {m for m in _table_moves() if m[0] == source}


def test_no_move_is_made_behind_the_lifecycles_back(engine) -> None:  # type: ignore[no-untyped-def]
    """Not even one of the table's: a state change outside ``transition_transfer`` (and a
    deletion) is refused with HBT01."""
    with engine.connect() as conn, conn.begin():
        for source, target in sorted(_table_moves()):
            assert _tried(conn, source, target, flag=False) == "HBT01", (source, target)
        _lifecycle(conn, True)
        tid = _insert(conn, "exported")
        _lifecycle(conn, False)
        conn.execute(
            text("UPDATE transfer SET review_reason = 'ghi chú' WHERE id = :i"), {"i": tid}
        )
        with pytest.raises(DBAPIError) as exc:
            conn.execute(text("DELETE FROM transfer WHERE id = :i"), {"i": tid})
        assert exc.value.orig.sqlstate == "HBT01"  # type: ignore[union-attr]
