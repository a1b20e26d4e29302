"""The submission flow: register the seal at the portal, package, send, poll results.

Thin over ``hocba/tasks/submission.py``. Parameters are school codes only; the portal password
and the seal's passphrase are read on the worker (``HOCBA_PORTAL_PASSWORD``,
``HOCBA_KEY_PASSPHRASE`` or a Prefect Secret block). Re-running is always safe: pending
transactions are resent with their persisted messageid, results are applied once.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from hocba import db
from hocba.pki.backends import school_seal
from hocba.portal.client import PortalClient
from hocba.tasks.submission import configured_client, submit_and_collect


def portal_client(school_code: str) -> PortalClient:
    """A client for the configured portal, signing with the school's approved seal."""
    with db.session_scope() as session:
        seal = school_seal(session, school_code)
    return configured_client(school_code, seal)


@task(name="gửi học bạ một trường", cache_policy=NO_CACHE)
def submit_school(school_code: str, resubmit_rejected: bool = False) -> str:
    with portal_client(school_code) as client:
        return submit_and_collect(db.session_scope, school_code, client, resubmit_rejected)


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
    outcomes: list[str] = []
    problems: list[str] = []
    for code in codes:  # one school's problem (its key, its account) stops no other school
        try:
            outcomes.append(submit_school(code, resubmit_rejected))
        except Exception as exc:  # reported below; the run ends failed
            problems.append(f"{code}: {getattr(exc, 'message_vi', None) or exc}")
    for line in outcomes:
        log.info(line)
    if problems:
        raise RuntimeError("Chưa gửi được: " + "; ".join(problems))
    return outcomes
