"""The signing flows: GVCN, CBQL and the school seal over whatever is ready, in batches.

A flow run names the signer and the scope (school, class, or the records a person picked
in the dashboard) and a :class:`~hocba.tasks.signers.SignerSpec`; it never carries a PIN or
passphrase (see ``tasks/signers.py``). Work is claimed in chunks with
``SELECT … FOR UPDATE SKIP LOCKED``, so two workers never take the same record; each chunk
is one task, one transaction and one signer confirmation, and reports its per-record
outcome. Re-running a flow signs only what is still waiting.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task

from hocba import db
from hocba.config import load_settings
from hocba.models import certificates
from hocba.models.lifecycle import Actor
from hocba.tasks.issuance import ACTION_OF_SLOT, sign_batch, trust_anchors
from hocba.tasks.signers import SignerSpec, open_signer, worker_secret

SOURCE_STATE = {"GVCN": "reviewed", "CBQL": "teacher_signed", "KY_PHAT_HANH": "principal_signed"}


@task(name="ký một lô")
def sign_chunk(
    slot: str,
    username: str,
    school_code: str,
    class_name: str | None,
    record_ids: list[int] | None,
    exclude: list[int],
    signer: SignerSpec,
    chunk: int,
) -> dict[str, object]:
    """Claim up to ``chunk`` waiting records (SKIP LOCKED) and sign them in one batch."""
    settings = load_settings()
    with db.session_scope() as session:
        conn = session.connection()
        staff = conn.exec_driver_sql(
            "SELECT id, full_name FROM staff WHERE username = %s AND active", (username,)
        ).one()
        actor = Actor(staff[0], staff[1])
        ids = list(
            conn.exec_driver_sql(
                "SELECT r.id FROM hoc_ba r JOIN school s ON s.id = r.school_id "
                "JOIN school_class c ON c.id = r.class_id "
                "WHERE s.code = %s AND r.state = %s AND (%s::text IS NULL OR c.name = %s) "
                "AND (%s::int[] IS NULL OR r.id = ANY(%s)) AND NOT (r.id = ANY(%s)) "
                "AND (%s <> 'GVCN' OR c.homeroom_teacher_id = %s) "  # a teacher: own classes
                "ORDER BY r.id LIMIT %s FOR UPDATE OF r SKIP LOCKED",
                (
                    school_code,
                    SOURCE_STATE[slot],
                    class_name,
                    class_name,
                    record_ids,
                    record_ids,
                    exclude,
                    slot,
                    actor.staff_id,
                    chunk,
                ),
            ).scalars()
        )
        if not ids:
            return {"claimed": 0, "ok": [], "failed": {}}
        if slot == "KY_PHAT_HANH":
            key = next(
                (
                    c
                    for c in certificates.school_certificates(session, school_code)
                    if c.status == "approved"
                ),
                None,
            )
            label = f"truong-{school_code}"
        else:
            key = certificates.staff_certificate(session, actor.staff_id)
            label = username
        backend = open_signer(signer, key.key_ref if key else None, worker_secret(label))
        res = sign_batch(
            session, ids, slot, actor, backend, trust_anchors=trust_anchors(settings.home)
        )
    return {"claimed": len(ids), "ok": res.ok, "failed": {str(k): v for k, v in res.failed.items()}}


@flow(name="ky-hoc-ba")
def sign_records_flow(
    slot: str,
    username: str,
    school_code: str,
    class_name: str | None = None,
    record_ids: list[int] | None = None,
    signer: SignerSpec | None = None,
    chunk: int = 350,
) -> dict[str, object]:
    """Sign ``slot`` (GVCN, CBQL or KY_PHAT_HANH) of every waiting record in scope."""
    if slot not in ACTION_OF_SLOT:
        raise ValueError(f"Ô ký không tồn tại: {slot}")
    log = get_run_logger()
    signer = signer or SignerSpec()
    ok: list[int] = []
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
        ok += out["ok"]  # type: ignore[operator]
        failed.update(out["failed"])  # type: ignore[arg-type]
        if out["claimed"] < chunk:  # type: ignore[operator]
            break
    reasons = sorted(set(failed.values()))
    log.info(
        "Ký %s: %s thành công, %s lỗi%s",
        slot,
        len(ok),
        len(failed),
        (": " + "; ".join(reasons[:3])) if reasons else "",
    )
    return {"ok": len(ok), "failed": failed}
