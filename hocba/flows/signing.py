"""The signing flows: GVCN, CBQL and the school seal over whatever is ready, in batches.

A flow run names the signer and the scope (school, class, or the records a person picked
in the dashboard) and a :class:`~hocba.pki.backends.SignerSpec`; it never carries a PIN or
passphrase (see ``hocba/pki/backends.py``). Work is claimed in chunks with
``SELECT … FOR UPDATE SKIP LOCKED``, so two workers never take the same record; each chunk
is one task, one transaction and one signer confirmation, and reports its per-record
outcome. Re-running a flow signs only what is still waiting.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TypedDict

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from hocba import db, freeze_start_up
from hocba.config import load_settings
from hocba.models.lifecycle import ACTION_OF_SLOT, Actor, claim_waiting
from hocba.pki.backends import SignerSpec, open_registered_signer
from hocba.pki.signer import SigningError
from hocba.tasks.issuance import IssuanceError, sign_batch, trust_anchors
from hocba.xml.record import KEPT_TREES

#: Records claimed per chunk (one task run, one transaction, one confirmation). A school
#: of up to 500 pupils is one task per slot (350 made a school of 420 two, and a task run
#: costs the Prefect server ~16 CPU-ms: docs/PERFORMANCE.md, "Chunks of 500, the
#: submission's packages..."); a thread keeps every tree of a chunk for the next step.
SIGN_CHUNK = 500
assert SIGN_CHUNK <= KEPT_TREES


class ChunkOutcome(TypedDict):
    """What one chunk did: how many records it claimed, which were signed, and why the
    others were not (record id as text: Prefect stores the result as JSON)."""

    claimed: int
    ok: list[int]
    failed: dict[str, str]


@task(name="ký một lô", cache_policy=NO_CACHE)
def sign_chunk(
    slot: str,
    username: str | None,
    school_code: str,
    class_name: str | None,
    record_ids: list[int] | None,
    exclude: list[int],
    signer: SignerSpec,
    chunk: int,
) -> ChunkOutcome:
    """Claim up to ``chunk`` waiting records (SKIP LOCKED) and sign them in one batch.

    ``username=None`` (GVCN only, keys held by the worker): the chunk takes waiting records
    of every class of the school and each homeroom teacher signs their own records in it,
    one ``sign_batch`` per teacher; a teacher whose key cannot be used fails only their
    records (with the reason), the others are signed.
    """
    if username is None and (slot != "GVCN" or signer.kind != "pkcs12"):
        raise ValueError(
            "Chỉ ký GVCN cả trường (không nêu người ký) bằng tệp khóa máy chạy giữ; "
            "ô ký khác hoặc thiết bị ký khác cần nêu người ký."
        )
    settings = load_settings()
    with db.session_scope() as session:
        conn = session.connection()
        actor: Actor | None = None
        if username is not None:
            staff = conn.exec_driver_sql(
                "SELECT id, full_name FROM staff WHERE username = %s AND active", (username,)
            ).one()
            actor = Actor(staff[0], staff[1])
        rows = claim_waiting(
            session,
            slot,
            school_code=school_code,
            class_name=class_name,
            record_ids=record_ids,
            exclude=exclude,
            # a teacher: own classes (every teacher's when none is named)
            own_classes=slot == "GVCN",
            teacher_id=actor.staff_id if actor else None,
            limit=chunk,
        )
        if not rows:
            return {"claimed": 0, "ok": [], "failed": {}}
        anchors = trust_anchors(settings.home)
        if actor is None:  # every teacher of the chunk signs their own records
            ok: list[int] = []
            failed: dict[str, str] = {}
            by_teacher: dict[int | None, list[int]] = defaultdict(list)
            for rid, teacher_id in rows:
                by_teacher[teacher_id].append(rid)
            people: dict[int | None, str] = dict(
                conn.exec_driver_sql(
                    "SELECT id, full_name FROM staff WHERE id = ANY(%s) AND active",
                    (list(by_teacher),),
                ).all()
            )
            for teacher_id, ids in by_teacher.items():
                if teacher_id not in people:
                    failed.update((str(r), "Lớp chưa có GVCN đang làm việc.") for r in ids)
                    continue
                name = people[teacher_id]
                try:
                    with session.begin_nested():  # one teacher's refusal leaves the others
                        res = sign_batch(
                            session,
                            ids,
                            slot,
                            Actor(teacher_id, name),
                            open_registered_signer(
                                session, slot, school_code, teacher_id, signer, anchors
                            ),
                            trust_anchors=anchors,
                        )
                except (IssuanceError, SigningError) as exc:
                    reason = getattr(exc, "message_vi", None) or str(exc)
                    failed.update((str(r), reason) for r in ids)
                    continue
                ok += res.ok
                failed.update((str(k), v) for k, v in res.failed.items())
            return {"claimed": len(rows), "ok": ok, "failed": failed}
        ids = [rid for rid, _ in rows]
        backend = open_registered_signer(
            session, slot, school_code, actor.staff_id if actor else None, signer, anchors
        )
        res = sign_batch(session, ids, slot, actor, backend, trust_anchors=anchors)
    return {"claimed": len(ids), "ok": res.ok, "failed": {str(k): v for k, v in res.failed.items()}}


@flow(name="ky-hoc-ba")
def sign_records_flow(
    slot: str,
    username: str | None,
    school_code: str,
    class_name: str | None = None,
    record_ids: list[int] | None = None,
    signer: SignerSpec | None = None,
    chunk: int = SIGN_CHUNK,
) -> dict[str, object]:
    """Sign ``slot`` (GVCN, CBQL or KY_PHAT_HANH) of every waiting record in scope.

    ``username=None`` with GVCN: every homeroom teacher of the school signs their own
    waiting records, in chunks of ``chunk`` records across classes (one task and one
    transaction each, keys held by the worker): a school is one flow run of a few tasks
    instead of one flow run per teacher. The dashboard's "sign my class" signs at once
    in its own process and needs no flow run.
    """
    freeze_start_up()
    if slot not in ACTION_OF_SLOT:
        raise ValueError(f"Ô ký không tồn tại: {slot}")
    ok, failed = _sign_scope(
        slot, username, school_code, class_name, record_ids, signer or SignerSpec(), chunk
    )
    _log_outcome(slot, ok, failed)
    return {"ok": ok, "failed": failed}


def _sign_scope(
    slot: str,
    username: str | None,
    school_code: str,
    class_name: str | None,
    record_ids: list[int] | None,
    signer: SignerSpec,
    chunk: int,
) -> tuple[int, dict[str, str]]:
    """Claim and sign chunk after chunk (one task each) until nothing waits in scope."""
    ok = 0
    failed: dict[str, str] = {}
    while True:
        out = sign_chunk(
            slot,
            username,
            school_code,
            class_name,
            record_ids,
            [int(k) for k in failed],
            signer,
            chunk,
        )
        ok += len(out["ok"])
        failed.update(out["failed"])
        if out["claimed"] < chunk:
            return ok, failed


def _log_outcome(slot: str, ok: int, failed: dict[str, str]) -> None:
    reasons = sorted(set(failed.values()))
    get_run_logger().info(
        "Ký %s: %s thành công, %s lỗi%s",
        slot,
        ok,
        len(failed),
        (": " + "; ".join(reasons[:3])) if reasons else "",
    )


@flow(name="ky-hoc-ba-nhieu-truong")
def sign_schools_flow(
    slot: str,
    signers: dict[str, str | None],
    signer: SignerSpec | None = None,
    chunk: int = SIGN_CHUNK,
) -> dict[str, object]:
    """Sign ``slot`` of every waiting record of several schools in ONE flow run.

    ``signers`` maps each school code to the username who signs there (``None`` for GVCN:
    every homeroom teacher their own records); the same chunks and tasks as
    :func:`sign_records_flow`, one school after the other, so a district's nightly sweep
    costs one flow run per group of schools instead of one per school. A school whose
    signer cannot sign (no key, wrong certificate) is reported and stops no other school.
    """
    freeze_start_up()
    if slot not in ACTION_OF_SLOT:
        raise ValueError(f"Ô ký không tồn tại: {slot}")
    spec = signer or SignerSpec()
    ok = 0
    failed: dict[str, str] = {}
    problems: dict[str, str] = {}
    for code, username in signers.items():
        try:
            n, bad = _sign_scope(slot, username, code, None, None, spec, chunk)
        except Exception as exc:  # reported below; the other schools go on
            problems[code] = getattr(exc, "message_vi", None) or str(exc)
            continue
        ok += n
        failed.update(bad)
    _log_outcome(slot, ok, failed)
    if problems:
        raise RuntimeError(
            "Chưa ký được: " + "; ".join(f"{c}: {m}" for c, m in sorted(problems.items()))
        )
    return {"ok": ok, "failed": failed}
