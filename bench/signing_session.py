"""Benchmark: what a signing session costs on top of signing a class in the page (issue 13).

A class signed from the dashboard with a remote signing service goes through a signing
session: a row, a Prefect flow run whose only parameter is the row's id, the claim, one
CSC authorisation at the service, ``sign_batch``, the per-record outcomes. This measures,
for classes of the demo district (GVCN slot, the bundled service over HTTP with
``auto_confirm`` so no person's reaction time is counted):

* ``in_page``: the baseline, ``sign_batch`` called directly with the same
  ``RemoteSigner(api="csc")`` — what signing in the web process costs;
* ``flow``: ``signing_session_flow(session_id)`` called in this process (a Prefect flow
  run and task run against this process's Prefect API);
* ``dashboard``: what the page does: ``flows.signing_session.start`` (a child process
  running the flow, as when no ``ky-phien`` deployment exists) and polling the row until
  it is finished, i.e. click to "done" without the person.

Each figure is the median over ``--repeat`` classes per path (a class is signed once), in
one run; the ratios ``flow / in_page`` and ``dashboard / in_page`` are what to compare
between machines.

Run: ``.venv/bin/python bench/signing_session.py [--pupils 420] [--repeat 3]
[--json-out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PASSWORD = "mat-khau-bench"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pupils", type=int, default=420)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="hocba-bench-session-"))
    os.environ["HOCBA_HOME"] = str(tmp)
    os.environ["HOCBA_DB_SCHEMA"] = f"bench_ss_{os.getpid()}"
    os.environ["PREFECT_HOME"] = str(tmp / "prefect")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

    from sqlalchemy import text

    from hocba import db
    from hocba.asgi import serve_in_thread
    from hocba.config import load_settings
    from hocba.dev.demo import run_demo
    from hocba.dev.keys import init_test_keys
    from hocba.dev.signing_service import create_signing_service
    from hocba.flows.signing_session import signing_session_flow, start
    from hocba.models import certificates, signing_sessions
    from hocba.models.lifecycle import SYSTEM, Actor
    from hocba.pki.remote import RemoteSigner
    from hocba.tasks.issuance import sign_batch

    settings = load_settings()
    try:
        db.upgrade(db.get_engine(), settings.schema)
        run_demo(db.session_scope, tmp, 1, args.pupils, year="2024-2025")
        with db.session_scope() as s:
            init_test_keys(s, tmp, PASSWORD, SYSTEM)
            conn = s.connection()
            conn.execute(text("UPDATE certificate SET kind = 'REMOTE_SIGNING' WHERE staff_id > 0"))
            refs = certificates.key_refs(s)
            classes = conn.execute(
                text(
                    "SELECT st.id, st.username, st.full_name, sc.code, c.id, "
                    "array_agg(r.id ORDER BY r.id) FROM hoc_ba r "
                    "JOIN school_class c ON c.id = r.class_id "
                    "JOIN staff st ON st.id = c.homeroom_teacher_id "
                    "JOIN school sc ON sc.id = r.school_id WHERE r.state = 'reviewed' "
                    "GROUP BY 1, 2, 3, 4, 5 ORDER BY 5"
                )
            ).all()
        needed = 3 * args.repeat
        if len(classes) < needed:
            sys.exit(f"{len(classes)} classes waiting; --pupils gives too few for --repeat")
        app = create_signing_service(
            {u: (ref, PASSWORD) for u, ref in refs.items()}, auto_confirm=True
        )
        timings: dict[str, list[float]] = {"in_page": [], "flow": [], "dashboard": []}
        sizes: list[int] = []
        with serve_in_thread(app) as url:
            os.environ["HOCBA_SIGNING_SERVICE_URL"] = url
            signing_session_flow(0)  # warm-up: starts this process's Prefect API (no such row)
            for index, (staff_id, username, name, school, _class_id, ids) in enumerate(
                classes[:needed]
            ):
                path = ("in_page", "flow", "dashboard")[index % 3]
                sizes.append(len(ids))
                began = time.perf_counter()
                if path == "in_page":
                    with RemoteSigner(url, username, api="csc", poll_interval=0.5) as signer:
                        with db.session_scope() as s:
                            res = sign_batch(s, ids, "GVCN", Actor(staff_id, name), signer)
                    assert not res.failed, res.failed
                else:
                    with db.session_scope() as s:
                        cert = certificates.staff_certificate(s, staff_id)
                        assert cert is not None
                        sid = signing_sessions.create(
                            s,
                            staff_id=staff_id,
                            school_code=school,
                            slot="GVCN",
                            certificate_id=cert.id,
                            record_ids=ids,
                        )
                    if path == "flow":
                        out = signing_session_flow(sid)
                        assert out["failed"] == 0, out
                    else:
                        start(sid, tmp / "logs")
                        while True:
                            with db.session_scope() as s:
                                got = signing_sessions.read(s, sid)
                            assert got is not None
                            if got.finished:
                                assert got.state == "done", got.message
                                break
                            time.sleep(0.1)
                timings[path].append(time.perf_counter() - began)
        median = {k: statistics.median(v) for k, v in timings.items()}
        out: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "load": os.getloadavg()[0]},
            "class_sizes": sizes,
            "seconds_per_class": {k: round(v, 3) for k, v in median.items()},
            "all_seconds": {k: [round(x, 3) for x in v] for k, v in timings.items()},
            "ratio_flow_vs_in_page": round(median["flow"] / median["in_page"], 2),
            "ratio_dashboard_vs_in_page": round(median["dashboard"] / median["in_page"], 2),
        }
        print(json.dumps(out, indent=2))
        if args.json_out:
            args.json_out.write_text(json.dumps(out, indent=2))
        print(
            f"class of ~{statistics.median(sizes):.0f}: in page {median['in_page']:.2f} s, "
            f"flow {median['flow']:.2f} s ({out['ratio_flow_vs_in_page']}×), dashboard "
            f"click→done {median['dashboard']:.2f} s ({out['ratio_dashboard_vs_in_page']}×)",
            file=sys.stderr,
        )
    finally:
        db.get_engine().dispose()
        if not settings.database_url:
            db.stop_embedded_server(settings.pgdata)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
