"""The pipeline flows: thin orchestration over ``hocba.models`` and ``hocba.tasks``.

Each flow can be re-run at any time: it takes whatever is ready and leaves the rest.
Parameters carry no secrets and no personal data (school codes only).
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from hocba import db, freeze_start_up
from hocba.models.lifecycle import SYSTEM, transition
from hocba.models.records import create_drafts


def _school_ids(session, school_codes: list[str] | None) -> list[int] | None:  # type: ignore[no-untyped-def]
    if school_codes is None:
        return None
    return list(
        session.connection()
        .exec_driver_sql("SELECT id FROM school WHERE code = ANY(%s)", (school_codes,))
        .scalars()
    )


@task(name="lập bản nháp", cache_policy=NO_CACHE)
def draft_task(school_codes: list[str] | None) -> dict[str, int]:
    """Lifecycle step 2 for the given schools, in one transaction."""
    with db.session_scope() as session:
        report = create_drafts(session, SYSTEM, _school_ids(session, school_codes))
    return {
        "created": report.created,
        "refreshed": report.refreshed,
        "without_id": report.without_id,
    }


@task(name="chuyển GVCN kiểm tra", cache_policy=NO_CACHE)
def send_to_review_task(school_codes: list[str] | None, chunk: int = 500) -> dict[str, int]:
    """Move drafts to the teachers' review, a chunk at a time (SKIP LOCKED claims)."""
    ok = failed = 0
    while True:
        with db.session_scope() as session:
            ids = list(
                session.connection()
                .exec_driver_sql(
                    "SELECT r.id FROM hoc_ba r JOIN school s ON s.id = r.school_id "
                    "WHERE r.state = 'draft' AND (%s::text[] IS NULL OR s.code = ANY(%s)) "
                    "ORDER BY r.id LIMIT %s FOR UPDATE OF r SKIP LOCKED",
                    (school_codes, school_codes, chunk),
                )
                .scalars()
            )
            if not ids:
                break
            res = transition(session, ids, "send_to_review", SYSTEM)
            ok, failed = ok + len(res.ok), failed + len(res.failed)
        if len(ids) < chunk or res.failed:
            break
    return {"ok": ok, "failed": failed}


@flow(name="hoc-ba-ban-nhap", log_prints=False)
def drafts_flow(school_codes: list[str] | None = None) -> dict[str, int]:
    """Make the drafts of the given schools (all when empty) and send them to review."""
    freeze_start_up()
    log = get_run_logger()
    drafts = draft_task(school_codes)
    review = send_to_review_task(school_codes)
    log.info(
        "Bản nháp: %s mới, %s cập nhật; chuyển GVCN: %s thành công, %s lỗi",
        drafts["created"],
        drafts["refreshed"],
        review["ok"],
        review["failed"],
    )
    return {**drafts, "sent_to_review": review["ok"], "failed": review["failed"]}
