"""The submission flow: register the seal at the portal, package, send, poll results.

Thin over ``tasks/submission.py``. Parameters are school codes only; the portal password
and the seal's passphrase are read on the worker (``HOCBA_PORTAL_PASSWORD``,
``HOCBA_KEY_PASSPHRASE`` or a Prefect Secret block). Re-running is always safe: pending
transactions are resent with their persisted messageid, results are applied once.
"""

from __future__ import annotations

import os

from prefect import flow, get_run_logger, task

from hocba import db
from hocba.config import load_settings
from hocba.tasks.portal_client import PortalClient
from hocba.tasks.signers import school_seal
from hocba.tasks.submission import (
    plan_revocations,
    plan_submissions,
    poll_results,
    request_revocations,
    send_pending,
)


def portal_client(school_code: str) -> PortalClient:
    """A client for the configured portal, signing with the school's approved seal."""
    settings = load_settings()
    with db.session_scope() as session:
        seal = school_seal(session, school_code)
    env = os.environ
    return PortalClient(
        settings.portal_url,
        school_code,
        env.get("HOCBA_PORTAL_PASSWORD", ""),
        school_code,
        seal,
        timeout=float(env.get("HOCBA_PORTAL_TIMEOUT", "60")),
        retries=int(env.get("HOCBA_PORTAL_RETRIES", "5")),
        backoff=float(env.get("HOCBA_PORTAL_BACKOFF", "0.5")),
    )


@task(name="gửi học bạ một trường")
def submit_school(school_code: str, resubmit_rejected: bool = False) -> str:
    client = portal_client(school_code)
    if not client.register_certificate().approved:  # transactions 3/4
        return f"{school_code}: chứng thư số của trường chưa được Sở phê duyệt."
    with db.session_scope() as session:
        planned = plan_submissions(session, school_code, resubmit_rejected=resubmit_rejected)
    with db.session_scope() as session:
        sent = send_pending(session, school_code, client)
    with db.session_scope() as session:
        polled = poll_results(session, school_code, client)
    with db.session_scope() as session:  # corrections: revoke at the Sở (transactions 5, 6)
        plan_revocations(session, school_code)
    with db.session_scope() as session:
        revoked = request_revocations(session, school_code, client)
    return (
        f"{school_code}: {planned.planned} gói mới, {sent.sent} gói đã gửi, "
        f"{polled.accepted} tiếp nhận, {polled.rejected} từ chối"
        + (f", {sent.waiting} chờ gửi lại" if sent.waiting else "")
        + (
            f"; yêu cầu thu hồi: {revoked.sent} đã gửi, {revoked.accepted} được chấp nhận"
            if revoked.sent or revoked.accepted
            else ""
        )
    )


def schools_with_work() -> list[str]:
    """Schools with records to send, answers to fetch or revocations to request."""
    with db.session_scope() as session:
        return list(
            session.connection()
            .exec_driver_sql(
                "SELECT s.code FROM school s WHERE EXISTS (SELECT 1 FROM hoc_ba r "
                "WHERE r.school_id = s.id AND r.state IN ('issued', 'submitted')) "
                "OR EXISTS (SELECT 1 FROM submission x WHERE x.school_id = s.id "
                "AND x.status IN ('pending', 'sent')) "
                "OR EXISTS (SELECT 1 FROM correction_request c JOIN hoc_ba r "
                "ON r.id = c.record_id WHERE r.school_id = s.id AND c.status = 'approved' "
                "AND (c.portal_request_id IS NULL OR c.portal_status = '1')) ORDER BY s.code"
            )
            .scalars()
        )


@flow(name="gui-so")
def submission_flow(
    school_codes: list[str] | None = None, resubmit_rejected: bool = False
) -> list[str]:
    """Submit every issued record of the given schools (none given: every school with
    something to send or fetch) and collect the portal's results."""
    log = get_run_logger()
    codes = school_codes or schools_with_work()
    outcomes = [submit_school(code, resubmit_rejected) for code in codes]
    for line in outcomes:
        log.info(line)
    return outcomes
