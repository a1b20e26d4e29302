"""The flow behind "Ký" on the dashboard for a remote signing service or a USB token.

The page creates a signing session (``hocba/models/signing_sessions.py``) and starts this flow
with the session id as its only parameter (:func:`start`): no PIN, OTP or passphrase
ever reaches Prefect. The flow claims the session's records (``FOR UPDATE SKIP LOCKED``),
opens the person's registered backend and signs the whole selection in **one** batch,
i.e. one confirmation:

* ``remote``: one authorisation at the signing service, in the Cloud Signature
  Consortium API v2 shape (``credentials/authorize`` with the hashes, then
  ``signatures/signHash`` with the SAD, see docs/SIGNING.md); the session shows
  ``waiting_confirmation`` until the person confirms on the phone. The wait is a poll
  inside the task, bounded by ``HOCBA_SIGNING_CONFIRM_TIMEOUT`` (seconds, default 300);
* ``pkcs11``: the digests go to the person's signing agent (``hocba agent run``), which
  signs them on the token after one PIN entry (:mod:`hocba.pki.agent`).

A refusal, a timeout or a wrong PIN rolls the batch back: every record stays in its queue
with the reason, and can be signed again. The records are signed by
:func:`hocba.tasks.issuance.sign_batch`, like every other signing path.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import FlowRun

from hocba import db, freeze_start_up
from hocba.config import load_settings
from hocba.models import signing_sessions
from hocba.models.lifecycle import Actor, claim_waiting
from hocba.pki.signer import Signer, SigningError
from hocba.tasks.issuance import IssuanceError, sign_batch, trust_anchors

DEPLOYMENT = "ky-phien/ky-phien"
RETRY = " Chưa học bạ nào được ký; các học bạ vẫn ở hàng chờ, có thể ký lại."
NOT_WAITING = "Học bạ không còn chờ ký ở bước này (đã ký, bị trả lại hoặc đang được ký)."


def confirm_timeout() -> float:
    return load_settings().signing_confirm_timeout


def signing_service_url() -> str:
    return load_settings().signing_service_url


def _open(
    info: signing_sessions.SigningSession, der: bytes, anchors: list[x509.Certificate]
) -> Signer:
    """The session's backend, opened on this worker (nothing secret needed here)."""
    if info.backend == "remote":
        from hocba.pki.remote import RemoteSigner

        account = f"truong-{info.school_code}" if info.slot == "KY_PHAT_HANH" else info.username

        def waiting(request_id: str) -> None:
            with db.session_scope() as s:
                signing_sessions.update(
                    s,
                    info.id,
                    state="waiting_confirmation",
                    remote_request_id=request_id,
                    message="Đang chờ xác nhận trên điện thoại (một lần cho cả lô).",
                    wait_until=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=confirm_timeout()),
                )

        return RemoteSigner(
            signing_service_url(),
            account,
            timeout=confirm_timeout(),
            poll_interval=0.5,
            confirm=waiting,
            description=f"Ký {len(info.record_ids)} học bạ số ({info.full_name})",
            api="csc",
        )
    from hocba.pki.agent import AgentSigner

    certificate = x509.load_der_x509_certificate(der)
    chain = [a for a in anchors if a.subject == certificate.issuer and a != certificate]
    return AgentSigner(info.id, certificate, chain, timeout=confirm_timeout())


@task(name="ký một phiên", cache_policy=NO_CACHE)
def sign_session(session_id: int) -> dict[str, int]:
    """Sign the session's records in one batch; every outcome goes to the session row."""
    home = load_settings().home
    with db.session_scope() as s:
        info = signing_sessions.read(s, session_id)
        if info is None or info.finished:
            return {"ok": 0, "failed": 0}
        signing_sessions.update(s, session_id, state="running", message="Đang chuẩn bị ký…")
        der = (
            s.connection()
            .exec_driver_sql("SELECT der FROM certificate WHERE id = %s", (info.certificate_id,))
            .scalar_one()
        )
    anchors = trust_anchors(home)
    try:
        signer = _open(info, bytes(der), anchors)
    except SigningError as exc:
        with db.session_scope() as s:
            signing_sessions.finish(s, session_id, exc.message_vi + RETRY, exc.message_vi)
        return {"ok": 0, "failed": len(info.record_ids)}
    try:
        with db.session_scope() as s:
            ids = [rid for rid, _ in claim_waiting(s, info.slot, record_ids=info.record_ids)]
            skipped = {r: NOT_WAITING for r in info.record_ids if r not in set(ids)}
            result = sign_batch(
                s,
                ids,
                info.slot,
                Actor(info.staff_id, info.full_name),
                signer,
                trust_anchors=anchors,
            )
            outcomes = {**skipped, **result.failed, **{r: signing_sessions.OK for r in result.ok}}
            signing_sessions.add_results(s, session_id, outcomes)
            failed = len(outcomes) - len(result.ok)
            signing_sessions.finish(
                s,
                session_id,
                f"Đã ký {len(result.ok)}/{len(info.record_ids)} học bạ"
                + (f"; {failed} không ký được." if failed else "."),
                None,
            )
        return {"ok": len(result.ok), "failed": failed}
    except (SigningError, IssuanceError) as exc:
        with db.session_scope() as s:
            signing_sessions.finish(s, session_id, exc.message_vi + RETRY, exc.message_vi)
        return {"ok": 0, "failed": len(info.record_ids)}
    except Exception:
        with db.session_scope() as s:
            why = "Lỗi hệ thống khi ký; hãy báo quản trị hệ thống (nhật ký của Prefect)."
            signing_sessions.finish(s, session_id, why + RETRY, why)
        raise
    finally:
        close = getattr(signer, "close", None)
        if close is not None:
            close()


def record_flow_run(session_id: int) -> None:
    """Write the id of the flow run at work on the session (a dashboard session's flow)."""
    from prefect.runtime import flow_run

    with db.session_scope() as s:
        signing_sessions.update(s, session_id, flow_run_id=str(flow_run.get_id() or ""))


@flow(name="ky-phien")
def signing_session_flow(session_id: int) -> dict[str, int]:
    """Sign one signing session started from the dashboard (its id is the only parameter)."""
    freeze_start_up()
    record_flow_run(session_id)
    out = sign_session(session_id)
    get_run_logger().info(
        "Phiên ký #%s: %s thành công, %s không ký được", session_id, out["ok"], out["failed"]
    )
    return out


def start(
    session_id: int,
    log_dir: Path | None = None,
    *,
    deployment: str = DEPLOYMENT,
    module: str = "hocba.flows.signing_session",
) -> str:
    """Start the flow run of a session; returns how ("deployment" or "process").

    With a Prefect server that has the session's deployment (``ky-phien`` for signing,
    ``gui-so-ngay`` for sending to the Sở; ``hocba up``), a run of it goes to the work
    pool's workers. Otherwise (a dashboard run on its own, the tests) the flow runs in a
    child process of its own (``python -m <module> <session id>``), against the same
    Prefect API if one is configured; either way the session id is the run's only
    parameter and the page only follows the session row.
    """
    if os.environ.get("PREFECT_API_URL"):
        try:
            from prefect.deployments import run_deployment

            run: FlowRun = run_deployment(  # type: ignore[assignment]  # sync call
                deployment, parameters={"session_id": session_id}, timeout=0
            )
            with db.session_scope() as s:
                signing_sessions.update(s, session_id, flow_run_id=str(run.id))
            return "deployment"
        except Exception:  # no such deployment / server unreachable: run it here
            pass
    log = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        name = module.rsplit(".", 1)[-1].replace("_", "-")
        log = (log_dir / f"{name}-{session_id}.log").open("ab")
    subprocess.Popen(
        [sys.executable, "-m", module, str(session_id)],
        stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    if log is not None:
        log.close()
    return "process"


if __name__ == "__main__":  # python -m hocba.flows.signing_session <id>
    signing_session_flow(int(sys.argv[1]))
