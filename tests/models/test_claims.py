"""The waiting state of each signature slot and the one claim of waiting records (issue 15)."""

from __future__ import annotations

import threading

import pytest
from sqlmodel import Session

from hocba.models.lifecycle import ACTION_OF_SLOT, TRANSITIONS, claim_waiting, waiting_state

SLOTS = ("GVCN", "CBQL", "KY_PHAT_HANH")


@pytest.mark.parametrize("slot", SLOTS)
def test_waiting_state_is_the_source_of_the_slots_signing_transition(slot: str) -> None:
    assert set(ACTION_OF_SLOT) == set(SLOTS)
    assert (waiting_state(slot),) == TRANSITIONS[ACTION_OF_SLOT[slot]].sources


def test_each_slot_waits_where_the_previous_signature_lands() -> None:
    """GVCN signs first, then CBQL, then the seal: the table chains them."""
    for before, after in zip(SLOTS, SLOTS[1:], strict=False):
        assert waiting_state(after) == TRANSITIONS[ACTION_OF_SLOT[before]].target
    assert waiting_state("GVCN") == TRANSITIONS["approve"].target


def _reviewed(district, n: int) -> list[int]:  # type: ignore[no-untyped-def]
    ids = district.record_ids("DH01")[:n]
    for rid in ids:
        district.force_state(rid, waiting_state("GVCN"), flags="[]")
    return ids


def test_claim_takes_only_waiting_records_of_the_scope_in_id_order(district) -> None:  # type: ignore[no-untyped-def]
    ids = _reviewed(district, 6)
    other = district.record_ids("DH02")[0]
    district.force_state(other, waiting_state("GVCN"), flags="[]")
    school = district.scalar("SELECT id FROM school WHERE code = 'DH01'")
    with Session(district.engine) as s:
        by_code = [r for r, _ in claim_waiting(s, "GVCN", school_code="DH01")]
        s.rollback()
        by_id = [r for r, _ in claim_waiting(s, "GVCN", school_id=school, limit=4)]
        s.rollback()
        picked = [r for r, _ in claim_waiting(s, "GVCN", record_ids=[other, *ids[:2]])]
        s.rollback()
        assert claim_waiting(s, "CBQL", school_code="DH01") == []
    assert by_code == sorted(ids)
    assert by_id == sorted(ids)[:4]
    assert picked == sorted([other, *ids[:2]])


def test_two_claims_on_two_connections_never_share_a_record(district) -> None:  # type: ignore[no-untyped-def]
    ids = _reviewed(district, 6)
    with Session(district.engine) as a, Session(district.engine) as b:
        first = [r for r, _ in claim_waiting(a, "GVCN", school_code="DH01", limit=4)]
        second = [r for r, _ in claim_waiting(b, "GVCN", school_code="DH01")]
        assert first == sorted(ids)[:4]
        assert second == sorted(ids)[4:]  # A's locks are skipped, not waited for
        a.rollback()
        assert [r for r, _ in claim_waiting(a, "GVCN", school_code="DH01")] == sorted(ids)[:4]
        b.rollback()


def test_concurrent_claims_split_the_records(district) -> None:  # type: ignore[no-untyped-def]
    ids = _reviewed(district, 8)
    barrier = threading.Barrier(2)
    done = threading.Barrier(2)
    got: list[list[int]] = []

    def claim() -> None:
        with Session(district.engine) as s:
            barrier.wait()
            got.append([r for r, _ in claim_waiting(s, "GVCN", school_code="DH01", limit=4)])
            done.wait()  # hold the locks until both have claimed
            s.rollback()

    threads = [threading.Thread(target=claim) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(got) == 2
    assert not set(got[0]) & set(got[1])
    assert sorted(got[0] + got[1]) == sorted(ids)
