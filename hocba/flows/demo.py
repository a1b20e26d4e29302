"""The demo district's worker flow: the people of each school sign, then the school submits.

In the demo nobody sits at the dashboard, so this flow plays the people: each homeroom
teacher signs their class, the principal signs the school, the clerk seals it (the same
``sign_chunk`` claims as ``hocba/flows/signing.py``: SKIP LOCKED, one signer confirmation per
chunk), then the school's records go to the portal (``submit_school`` of
``hocba/flows/submission.py``). ``hocba demo`` and ``bench/workflow.py`` start several worker
processes, each running this flow for its share of the schools, the way workers on one
work pool share a district; any record another worker holds is skipped, so a school split
between workers or a re-run never signs or submits anything twice.

Run one worker: ``python -m hocba.flows.demo DH01 DH03 ...`` (the environment names the
database, ``HOCBA_KEY_PASSPHRASE``, the portal and ``PREFECT_API_URL``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import text

from hocba import db, freeze_start_up
from hocba.config import load_settings
from hocba.flows.prefect_server import WORKER_ONLY_SERVER_ENV
from hocba.flows.signing import sign_chunk
from hocba.flows.submission import submission_flow, submit_school
from hocba.flows.transfer import transfer_in_flow, transfer_out_flow
from hocba.pki.backends import SignerSpec

CHUNK = 210  # records per claim for the principal and the seal (a school is 2 claims)


def _sign_all(slot: str, username: str, school: str, chunk: int) -> tuple[int, int]:
    ok = failed = 0
    while True:
        out = sign_chunk.fn(slot, username, school, None, None, [], SignerSpec(), chunk)
        ok, failed = ok + len(out["ok"]), failed + len(out["failed"])  # type: ignore[arg-type]
        if out["claimed"] < chunk or out["failed"]:  # type: ignore[operator]
            return ok, failed


@task(name="demo: cả trường ký", cache_policy=NO_CACHE)
def sign_school_task(school_code: str) -> dict[str, float]:
    """Every teacher of the school signs their class's June records, the principal the
    school, the clerk seals; returns counts and the seconds spent (for the overhead
    figure of ``bench/workflow.py``)."""
    start = time.perf_counter()
    with db.session_scope() as session:
        classes = (
            session.connection()
            .exec_driver_sql(
                "SELECT st.username, array_agg(r.id ORDER BY r.id) FROM hoc_ba r "
                "JOIN school s ON s.id = r.school_id JOIN school_class c ON c.id = r.class_id "
                "JOIN staff st ON st.id = c.homeroom_teacher_id WHERE s.code = %s "
                "AND r.state = 'reviewed' AND r.cohort = 'june' GROUP BY st.username ORDER BY 1",
                (school_code,),
            )
            .all()
        )
    counts = {"gvcn": 0, "cbql": 0, "seal": 0, "failed": 0}
    for username, ids in classes:  # the August cohort waits for the summer assessment
        out = sign_chunk.fn("GVCN", username, school_code, None, ids, [], SignerSpec(), len(ids))
        counts["gvcn"] += len(out["ok"])  # type: ignore[arg-type]
        counts["failed"] += len(out["failed"])  # type: ignore[arg-type]
    code = school_code.lower()
    for key, slot, who in (("cbql", "CBQL", f"{code}.ht"), ("seal", "KY_PHAT_HANH", f"{code}.vt")):
        ok, failed = _sign_all(slot, who, school_code, CHUNK)
        counts[key] += ok
        counts["failed"] += failed
    return {**counts, "seconds": time.perf_counter() - start}


@task(name="demo: trường gửi Sở", cache_policy=NO_CACHE)
def submit_school_task(school_code: str) -> tuple[str, float]:
    """``submit_school`` of the nightly flow, timed for the benchmark's overhead figure."""
    start = time.perf_counter()
    return submit_school.fn(school_code), time.perf_counter() - start


@flow(name="demo-may-chay")
def demo_worker_flow(school_codes: list[str], submit: bool = True) -> dict[str, object]:
    """Sign (and submit) every school in ``school_codes``, one task per school and step."""
    freeze_start_up()
    log = get_run_logger()
    signed = {code: sign_school_task(code) for code in school_codes}
    submitted: dict[str, str] = {}
    if submit:
        for code in school_codes:
            submitted[code], seconds = submit_school_task(code)
            signed[code]["seconds"] += seconds
    for code in school_codes:
        s = signed[code]
        log.info(
            "%s: GVCN ký %d, CBQL ký %d, đóng dấu %d, lỗi %d; %s",
            code,
            s["gvcn"],
            s["cbql"],
            s["seal"],
            s["failed"],
            submitted.get(code, "chưa gửi"),
        )
    return {"schools": signed, "submitted": submitted}


@contextlib.contextmanager
def prefect_api() -> Iterator[str]:
    """The configured Prefect API (``PREFECT_API_URL``), or a temporary local server for
    the length of the demo, shared by every worker process."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    configured = PREFECT_API_URL.value()
    if configured:
        yield str(configured)
        return
    from prefect.server.api.server import SubprocessASGIServer

    # The server's child process reads these when it starts; they are set for that start
    # only, so the rest of this process (a test run, say) keeps its own Prefect settings.
    added = [name for name in WORKER_ONLY_SERVER_ENV if name not in os.environ]
    os.environ.update({name: WORKER_ONLY_SERVER_ENV[name] for name in added})
    try:
        server = SubprocessASGIServer()
        server.start(timeout=180)
    finally:
        for name in added:
            os.environ.pop(name, None)
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield str(server.api_url)
    finally:
        _flush_to_api()
        server.stop()


def _flush_to_api(timeout: float = 10) -> None:
    """Send the events and logs this process still holds for the Prefect API, while the
    API still answers: flows run here (the sweep, the transfers) queue them in background
    workers, which would otherwise try at exit and print a traceback to the user."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (EventsWorker, APILogWorker):
        service.drain_all(timeout=timeout)


def _states(codes: list[str]) -> dict[str, int]:
    with db.get_engine().connect() as conn:
        return dict(
            conn.execute(
                text(
                    "SELECT r.state, count(*) FROM hoc_ba r JOIN school s ON s.id = r.school_id "
                    "WHERE s.code = ANY(:c) GROUP BY r.state"
                ),
                {"c": codes},
            ).all()
        )


def run_workers(
    codes: list[str],
    workers: int,
    env: dict[str, str],
    progress: Callable[[str, int, int], None] | None = None,
    submit: bool = True,
) -> dict[str, float]:
    """Start ``workers`` processes running :func:`demo_worker_flow` over their share of
    the schools (round robin) and wait for them, reporting progress from the database."""
    if workers == 1:  # in this process
        start, cpu = time.perf_counter(), time.process_time()
        result = demo_worker_flow(codes, submit)
        return _totals(result, time.perf_counter() - start, time.process_time() - cpu)
    shares = [codes[i::workers] for i in range(workers) if codes[i::workers]]
    home = load_settings(env).home
    logs = [home / f"demo-worker-{i + 1}.log" for i in range(len(shares))]
    procs = []
    for share, log in zip(shares, logs, strict=True):
        with log.open("w") as err:
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "hocba.flows.demo",
                        *([] if submit else ["--no-submit"]),
                        *share,
                    ],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    text=True,
                )
            )
    with db.get_engine().connect() as conn:  # the June cohort: August waits for its assessment
        waiting = int(
            conn.execute(
                text(
                    "SELECT count(*) FROM hoc_ba r JOIN school s ON s.id = r.school_id "
                    "WHERE s.code = ANY(:c) AND r.cohort = 'june' AND r.state IN "
                    "('reviewed', 'teacher_signed', 'principal_signed')"
                ),
                {"c": codes},
            ).scalar()
            or 0
        )
    try:
        while any(p.poll() is None for p in procs):
            if progress:
                states = _states(codes)
                done = sum(states.get(k, 0) for k in ("issued", "submitted", "accepted"))
                progress("sign", min(done, waiting), waiting)
                progress("submit", min(states.get("accepted", 0), waiting), waiting)
            time.sleep(0.5)
    finally:  # never leave workers behind the portal and the Prefect API they use
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
    totals = {"wall": 0.0, "cpu": 0.0, "in_tasks": 0.0, "records": 0.0, "failed": 0.0}
    for proc, log in zip(procs, logs, strict=True):
        out = proc.stdout.read() if proc.stdout else ""
        if proc.returncode != 0 or not out.strip():
            tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise RuntimeError(f"Máy chạy demo dừng lỗi (mã {proc.returncode}):\n{tail}")
        line = json.loads(out.strip().splitlines()[-1])
        for key in totals:
            totals[key] += line[key]
    return totals


def _transfer_some(codes: list[str], how_many: int, year_end: dt.date) -> int:
    """A few pupils (grades 1-4, with a personal ID) move to the next school in summer."""
    if len(codes) < 2 or how_many <= 0:
        return 0
    with db.get_engine().connect() as conn:
        movers = conn.execute(
            text("""
            SELECT DISTINCT ON (s.code) p.pupil_code, s.code FROM hoc_ba r
            JOIN pupil p ON p.id = r.pupil_id JOIN school s ON s.id = r.school_id
            JOIN school_class c ON c.id = r.class_id
            WHERE s.code = ANY(:c) AND r.state = 'accepted' AND c.grade < 5
              AND p.cccd IS NOT NULL
            ORDER BY s.code, p.pupil_code"""),
            {"c": codes},
        ).all()[:how_many]
    for pupil_code, code in movers:
        to = codes[(codes.index(code) + 1) % len(codes)]
        transfer_out_flow(pupil_code, to, year_end, f"{code.lower()}.vt")
    transfer_in_flow(codes)  # the receiving schools take them in, the leaving ones the receipts
    return len(movers)


def run_demo_workflow(
    workers: int = 2,
    transfers: int = 3,
    progress: Callable[[str, int, int], None] | None = None,
    submit: bool = True,
    portal_workers: int | None = None,
) -> dict[str, Any]:
    """Take the demo district (built by ``tasks.demo.run_demo``) from reviewed records to
    accepted, then move a few pupils: test keys, the bundled portal on its own schema
    (served as ``hocba portal serve`` does: ``portal_workers`` processes, by default one
    per CPU), the test trust services (TSA, OCSP, CRL), ``workers`` worker processes on one
    Prefect API, a final submission sweep. ``report["portal_cpu_s"]``: the CPU seconds
    of the portal's processes."""
    from hocba.dev.demo import DEMO_PASSWORD, provision_keys
    from hocba.dev.portal import PortalFactory, PortalUser, serve_in_processes
    from hocba.dev.trust_services import serve_trust_services
    from hocba.tasks.issuance import pki_directory, trust_anchors

    settings = load_settings()
    url = db.database_url(settings)
    with db.get_engine().connect() as conn:
        codes = list(conn.scalars(text("SELECT code FROM school ORDER BY code")))
        year = conn.scalar(text("SELECT max(name) FROM school_year"))
    provision_keys(db.session_scope, settings.home)
    portal = PortalFactory.of(
        url,
        f"{settings.schema}_portal",
        trusted_roots=trust_anchors(settings.home),
        users={c: PortalUser.with_password(DEMO_PASSWORD, [c]) for c in codes},  # own school
        auto_approve_certificates=True,
    )
    report: dict[str, Any] = {}
    with serve_in_processes(portal, portal_workers) as served:
        portal_url = served.url
        with (
            serve_trust_services(pki_directory(settings.home)) as trust_url,
            prefect_api() as api,
        ):
            env = {
                **os.environ,
                "HOCBA_DATABASE_URL": url,
                "HOCBA_DB_SCHEMA": settings.schema,
                "HOCBA_HOME": str(settings.home),
                "HOCBA_KEY_PASSPHRASE": settings.key_passphrase or DEMO_PASSWORD,
                "HOCBA_PORTAL_URL": portal_url,
                "HOCBA_PORTAL_PASSWORD": DEMO_PASSWORD,
                # the test TSA / OCSP / CRL: every signature gets its RFC 3161 timestamp
                "HOCBA_TSA_URL": settings.tsa_url or f"{trust_url}/tsa",
                "HOCBA_OCSP_URL": settings.ocsp_url or f"{trust_url}/ocsp",
                "HOCBA_CRL_URL": settings.crl_url or f"{trust_url}/crl",
                "PREFECT_API_URL": api,
            }
            saved = {k: os.environ.get(k) for k in env if k.startswith(("HOCBA_", "PREFECT_"))}
            os.environ.update(env)  # this process's flows (the sweep, transfers) too
            try:
                start = time.perf_counter()
                report["workers"] = run_workers(codes, workers, env, progress, submit)
                if submit:
                    submission_flow(codes)  # a sweep: what a worker left is sent and polled
                report["seconds"] = time.perf_counter() - start
                year_end = dt.date(int(str(year)[5:9]), 7, 20)
                report["transfers"] = _transfer_some(codes, transfers, year_end) if submit else 0
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
    report["portal_cpu_s"] = served.cpu_s
    report["states"] = _states(codes)
    return report


def _totals(result: dict[str, Any], wall: float, cpu: float) -> dict[str, float]:
    schools = result["schools"].values()
    return {
        "wall": wall,
        "cpu": cpu,
        "in_tasks": sum(float(s["seconds"]) for s in schools),
        "records": sum(int(s["seal"]) for s in schools),
        "failed": sum(int(s["failed"]) for s in schools),
    }


def main(argv: list[str]) -> None:
    """One worker process (``[--no-submit] CODE...``); prints a JSON line: wall seconds of
    the flow, seconds inside the task bodies (signing, building, database, portal), and
    the records sealed."""
    submit = "--no-submit" not in argv
    codes = [a for a in argv if a != "--no-submit"]
    start, cpu = time.perf_counter(), time.process_time()
    result = demo_worker_flow(codes, submit)
    print(json.dumps(_totals(result, time.perf_counter() - start, time.process_time() - cpu)))


if __name__ == "__main__":
    main(sys.argv[1:])
