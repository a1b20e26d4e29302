"""The transition table, role guards, reasons, and the concurrency rule (issue 2 §5)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text
from sqlmodel import Session

from hocba.models.lifecycle import SYSTEM, TRANSITIONS, Actor, TransitionError, transition
from hocba.models.lifecycle_states import STATES

XML = b"<HOC_BA/>"


def permitted_actor(district, action: str, record_id: int) -> Actor:  # type: ignore[no-untyped-def]
    """Someone whom the table lets perform ``action`` on a DH01 record."""
    roles = TRANSITIONS[action].roles
    if "homeroom_teacher" in roles:
        return district.homeroom_of(record_id)
    if "principal" in roles:
        return district.actor("dh01.ht")
    if "clerk" in roles:
        return district.actor("dh01.vt")
    if "district_officer" in roles:
        return district.actor("phong.dh")
    return SYSTEM


@pytest.mark.parametrize("action", sorted(TRANSITIONS))
def test_every_action_from_every_state(district, action: str) -> None:  # type: ignore[no-untyped-def]
    """From each of the 11 states the action succeeds exactly when the table lists the
    state as a source, and lands in the table's target state."""
    t = TRANSITIONS[action]
    ids = district.record_ids("DH01")[: len(STATES)]
    for rid, state in zip(ids, STATES, strict=True):
        district.force_state(rid, state, flags="[]")
    for rid, state in zip(ids, STATES, strict=True):
        actor = permitted_actor(district, action, rid)
        with Session(district.engine) as s:
            res = transition(
                s,
                [rid],
                action,
                actor,
                reason="Lý do kiểm thử",
                payloads={rid: {"signed_xml": XML}},
            )
            s.commit()
        if state in t.sources:
            assert res.ok == [rid], (state, res.failed)
            assert district.state(rid) == t.target
        else:
            assert rid in res.failed and "không thể" in res.failed[rid], (state, res)
            assert district.state(rid) == state


OTHER_SCHOOL_CASES = [
    # action, from-state, username who must be refused
    ("approve", "in_review", "dh01.ht"),  # a principal is not the homeroom teacher
    ("approve", "in_review", "dh02.gv1a"),  # a teacher of another school
    ("teacher_sign", "reviewed", "dh01.vt"),  # a clerk
    ("principal_sign", "teacher_signed", "dh02.ht"),  # another school's principal
    ("principal_sign", "teacher_signed", "dh01.vt"),  # a clerk cannot sign as CBQL
    ("principal_sign", "teacher_signed", "admin"),  # an admin cannot sign
    ("seal", "principal_signed", "dh01.ht"),  # the seal is the clerk's
    ("seal", "principal_signed", "dh02.vt"),  # another school's clerk
    ("revoke", "issued", "dh01.ht"),  # revocation is approved by the district
    ("accept", "submitted", "dh01.vt"),  # only the portal result (system) accepts
]


@pytest.mark.parametrize(("action", "state", "username"), OTHER_SCHOOL_CASES)
def test_role_guards(district, action: str, state: str, username: str) -> None:  # type: ignore[no-untyped-def]
    rid = district.record_ids("DH01")[0]
    district.force_state(rid, state, flags="[]")
    with Session(district.engine) as s:
        res = transition(
            s,
            [rid],
            action,
            district.actor(username),
            reason="x",
            payloads={rid: {"signed_xml": XML}},
        )
        s.commit()
    assert "không có quyền" in res.failed[rid]
    assert district.state(rid) == state


def test_teacher_of_another_class_is_refused(district) -> None:  # type: ignore[no-untyped-def]
    ids = district.record_ids("DH01")
    teachers = {rid: district.homeroom_of(rid) for rid in ids}
    rid, other = next(
        (a, teachers[b]) for a in ids for b in ids if teachers[a].staff_id != teachers[b].staff_id
    )
    district.force_state(rid, "in_review", flags="[]")
    with Session(district.engine) as s:
        res = transition(s, [rid], "approve", other)
    assert rid in res.failed


def test_vice_principal_signs_only_by_delegation(district) -> None:  # type: ignore[no-untyped-def]
    rid = district.record_ids("DH01")[0]
    district.force_state(rid, "teacher_signed", flags="[]")
    vp = district.actor("dh01.pht")
    with district.engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(
            text("UPDATE staff_role SET delegated = false WHERE staff_id = :s"), {"s": vp.staff_id}
        )
    with Session(district.engine) as s:
        assert rid in transition(s, [rid], "principal_sign", vp).failed
    with district.engine.begin() as conn:
        conn.execute(
            text("UPDATE staff_role SET delegated = true WHERE staff_id = :s"), {"s": vp.staff_id}
        )
    with Session(district.engine) as s:
        assert transition(s, [rid], "principal_sign", vp).ok == [rid]


@pytest.mark.parametrize("action", [a for a, t in TRANSITIONS.items() if t.needs_reason])
def test_reason_is_required(district, action: str) -> None:  # type: ignore[no-untyped-def]
    rid = district.record_ids("DH01")[0]
    with Session(district.engine) as s, pytest.raises(TransitionError, match="lý do"):
        transition(s, [rid], action, SYSTEM, reason="   ")


def test_principal_return_clears_the_teacher_signature(district) -> None:  # type: ignore[no-untyped-def]
    rid = district.record_ids("DH01")[0]
    district.force_state(rid, "reviewed", flags="[]")
    teacher = district.homeroom_of(rid)
    with Session(district.engine) as s:
        assert transition(
            s, [rid], "teacher_sign", teacher, payloads={rid: {"signed_xml": XML}}
        ).ok == [rid]
        s.commit()
    assert (
        district.scalar("SELECT teacher_signer_id FROM hoc_ba WHERE id=:r", r=rid)
        == teacher.staff_id
    )
    with Session(district.engine) as s:
        transition(
            s, [rid], "principal_return", district.actor("dh01.ht"), reason="Sai điểm môn Toán"
        )
        s.commit()
    assert district.state(rid) == "in_review"
    assert district.scalar("SELECT teacher_signer_id FROM hoc_ba WHERE id=:r", r=rid) is None
    assert district.scalar("SELECT signed_xml FROM hoc_ba WHERE id=:r", r=rid) is None
    assert district.scalar("SELECT count(*) FROM hoc_ba_signing WHERE record_id=:r", r=rid) == 0
    assert (
        district.scalar("SELECT return_reason FROM hoc_ba WHERE id=:r", r=rid)
        == "Sai điểm môn Toán"
    )


def test_flagged_record_cannot_be_approved(district) -> None:  # type: ignore[no-untyped-def]
    rid = district.record_ids("DH01")[0]
    flags = '[{"code": "RESULT_MISMATCH", "message": "Kết quả nhập là HTT nhưng phải là HT"}]'
    district.force_state(rid, "in_review", flags=flags)
    with Session(district.engine) as s:
        res = transition(s, [rid], "approve", district.homeroom_of(rid))
    assert "phải là HT" in res.failed[rid]


def test_batch_reports_each_record(district) -> None:  # type: ignore[no-untyped-def]
    ids = district.record_ids("DH01")[:3]
    district.force_state(ids[0], "in_review", flags="[]")
    with Session(district.engine) as s:
        res = transition(s, [*ids, 999_999], "send_to_review", SYSTEM)
    assert sorted(res.ok) == ids[1:]
    assert set(res.failed) == {ids[0], 999_999}
    assert res.summary().startswith("2 thành công, 2 lỗi")


def test_two_concurrent_transitions_exactly_one_wins(district) -> None:  # type: ignore[no-untyped-def]
    rid = district.record_ids("DH01")[0]
    district.force_state(rid, "teacher_signed", flags="[]")
    principal, vice = district.actor("dh01.ht"), district.actor("dh01.pht")
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def sign(actor: Actor) -> None:
        with Session(district.engine) as s:
            barrier.wait()
            res = transition(s, [rid], "principal_sign", actor)
            outcomes.append(res)
            s.commit()

    threads = [threading.Thread(target=sign, args=(a,)) for a in (principal, vice)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=30)
    wins = [r for r in outcomes if r.ok]  # type: ignore[attr-defined]
    losses = [r for r in outcomes if r.failed]  # type: ignore[attr-defined]
    assert len(wins) == 1 and len(losses) == 1
    assert "người khác vừa thao tác" in losses[0].failed[rid]  # type: ignore[attr-defined]
    n_events = district.scalar(
        "SELECT count(*) FROM audit_event WHERE record_id = :r AND action = 'principal_sign'", r=rid
    )
    assert n_events == 1


def test_partly_signed_xml_waits_outside_hoc_ba_until_the_seal(district) -> None:  # type: ignore[no-untyped-def]
    """GVCN's and CBQL's versions live in ``hoc_ba_signing`` (migration 0014); the seal
    writes the issued bytes, unchanged, into ``hoc_ba.signed_xml`` with their SHA-256 and
    removes the working copy."""
    import hashlib

    rid = district.record_ids("DH01")[0]
    district.force_state(rid, "reviewed", flags="[]")
    steps = [
        ("teacher_sign", district.homeroom_of(rid), b"<HOC_BA>gvcn</HOC_BA>"),
        ("principal_sign", district.actor("dh01.ht"), b"<HOC_BA>gvcn cbql</HOC_BA>"),
    ]
    for action, actor, xml in steps:
        with Session(district.engine) as s:
            assert transition(s, [rid], action, actor, payloads={rid: {"signed_xml": xml}}).ok
            s.commit()
        assert district.scalar("SELECT signed_xml FROM hoc_ba WHERE id=:r", r=rid) is None
        pending = district.scalar("SELECT signed_xml FROM hoc_ba_signing WHERE record_id=:r", r=rid)
        assert bytes(pending) == xml
    issued = b"<HOC_BA>gvcn cbql seal \xc3\xa1</HOC_BA>"
    with Session(district.engine) as s:
        assert transition(
            s, [rid], "seal", district.actor("dh01.vt"), payloads={rid: {"signed_xml": issued}}
        ).ok == [rid]
        s.commit()
    with district.engine.connect() as conn:
        stored, sha = conn.execute(
            text("SELECT signed_xml, xml_sha256 FROM hoc_ba WHERE id = :r"), {"r": rid}
        ).one()
    assert bytes(stored) == issued and sha == hashlib.sha256(issued).hexdigest()
    assert district.scalar("SELECT count(*) FROM hoc_ba_signing WHERE record_id=:r", r=rid) == 0
