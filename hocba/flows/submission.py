"""The submission flows: register the seal at the portal, package, send, poll results.

Thin over ``hocba/tasks/submission.py``. ``gui-so`` (nightly, or ``hocba submit``) takes
school codes; ``gui-so-ngay`` is the clerk's "Gửi Sở ngay" on the sealing page: a
submission session (``hocba/models/signing_sessions.py``) started with its id as the only
parameter (:func:`start_send_now`), which the page follows like a signing session. Either
way the portal password and the seal's passphrase are read on the worker
(``HOCBA_PORTAL_PASSWORD``, ``HOCBA_KEY_PASSPHRASE`` or a Prefect Secret block
``hocba-key-truong-<school>``), never passed in a parameter. Re-running is always safe:
pending transactions are resent with their persisted messageid, results are applied once.
"""

from __future__ import annotations

import sys
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from hocba import db, freeze_start_up
from hocba.flows.signing_session import record_flow_run, start
from hocba.models import signing_sessions
from hocba.pki.backends import school_seal
from hocba.pki.signer import SigningError
from hocba.portal.client import PortalClient, PortalError, PortalUnavailable
from hocba.tasks.submission import configured_client, submit_and_collect

SEND_NOW_DEPLOYMENT = "gui-so-ngay/gui-so-ngay"


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
    freeze_start_up()
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


def _send_session(session_id: int) -> dict[str, int]:
    """Send the school of a submission session and write each record's outcome at the
    portal (what failed says what to do, in Vietnamese)."""
    with db.session_scope() as s:
        info = signing_sessions.read(s, session_id)
        if info is None or info.finished or info.purpose != "submit":
            return {"accepted": 0, "other": 0}
        signing_sessions.update(
            s, session_id, state="running", message="Đang gửi lên cổng của Sở và lấy kết quả…"
        )
        resend = bool(  # the clerk asked to resend the rejected records
            s.connection()
            .exec_driver_sql(
                "SELECT count(*) FROM hoc_ba WHERE id = ANY(%s) AND state = 'rejected'",
                (info.record_ids,),
            )
            .scalar()
        )
    problem: str | None = None
    line = ""
    try:
        line = submit_school(info.school_code, resend)
    except PortalUnavailable as exc:
        problem = f"{exc.message_vi} Hãy thử lại sau ít phút."
    except PortalError as exc:  # refused: account, certificate, content
        problem = f"{exc.message_vi} Hãy báo quản trị hệ thống hoặc Sở GDĐT."
    except SigningError as exc:  # the worker cannot open the seal
        problem = f"{exc.message_vi} Hãy báo quản trị hệ thống."
    except Exception:
        problem = "Lỗi hệ thống khi gửi Sở; hãy báo quản trị hệ thống (nhật ký của Prefect)."
        raise
    finally:
        if problem is None and "chưa được Sở phê duyệt" in line:
            problem = f"{line} Hãy liên hệ Sở GDĐT để duyệt chứng thư số của trường."
        with db.session_scope() as s:
            outcomes = signing_sessions.portal_outcomes(s, info.record_ids, problem)
            signing_sessions.add_results(s, session_id, outcomes)
            signing_sessions.finish(
                s,
                session_id,
                f"Chưa gửi Sở được: {problem}" if problem else f"Gửi Sở: {line}",
                problem,
            )
    accepted = sum(1 for v in outcomes.values() if v == signing_sessions.OK)
    return {"accepted": accepted, "other": len(outcomes) - accepted}


@flow(name="gui-so-ngay")
def send_now_flow(session_id: int) -> dict[str, int]:
    """Send one school's records now, for a submission session started on the dashboard
    (its id is the only parameter)."""
    freeze_start_up()
    record_flow_run(session_id)
    out = _send_session(session_id)
    get_run_logger().info(
        "Phiên gửi Sở #%s: %s học bạ Sở đã tiếp nhận, %s học bạ khác",
        session_id,
        out["accepted"],
        out["other"],
    )
    return out


def start_send_now(session_id: int, log_dir: Path | None = None) -> str:
    """Start the flow run of a submission session (see
    :func:`hocba.flows.signing_session.start`: the ``gui-so-ngay`` deployment under
    ``hocba up``, else a child process)."""
    return start(session_id, log_dir, deployment=SEND_NOW_DEPLOYMENT, module=__name__)


if __name__ == "__main__":  # python -m hocba.flows.submission <session id>
    send_now_flow(int(sys.argv[1]))
