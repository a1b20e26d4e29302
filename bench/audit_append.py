"""The audit log alone (issue 14): PostgreSQL's and the writer's CPU per event appended,
the table's bytes per event, and ``hocba audit verify``'s time.

A fresh embedded PostgreSQL (a temporary directory), the app schema at the head revision
of the tree whose ``hocba`` is imported, then a record's eight events as
``bench/province.py`` writes them (``create_draft`` … ``accept``, the signatures'
payloads, half of them by staff), step by step: for each step, each school's records in
appends of ``--batch`` records, one transaction each, the schools interleaved (each
school's chain grows in the middle of the key index, as in a run). No ``hoc_ba`` rows:
the progress trigger joins none, and ``actor_id`` is left empty (no ``staff``), the same
in every tree. PostgreSQL's CPU is its backend's (``psutil``), the writer's
``time.process_time``.

Run it with each tree's interpreter to compare them (each imports its own ``hocba``):

    /work/wt/base/.venv/bin/python bench/audit_append.py --records 1638 --repeat 3
    .venv/bin/python bench/audit_append.py --records 1638 --repeat 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import psutil
from sqlalchemy import text
from sqlmodel import Session

from hocba import db
from hocba.models import audit

STEPS = [  # (action, staff?, from, to, payload kind)
    ("create_draft", False, None, "draft", ""),
    ("send_to_review", False, "draft", "in_review", ""),
    ("approve", True, "in_review", "reviewed", ""),
    ("teacher_sign", True, "reviewed", "teacher_signed", "code"),
    ("principal_sign", True, "teacher_signed", "principal_signed", "sha"),
    ("seal", True, "principal_signed", "issued", "code"),
    ("submit", False, "issued", "submitted", ""),
    ("accept", False, "submitted", "accepted", ""),
]


def _payload(kind: str, rid: int) -> dict[str, object]:
    if not kind:
        return {}
    sha = uuid.UUID(int=rid).hex * 2
    return (
        {"xml_sha256": sha}
        if kind == "sha"
        else {"xml_sha256": sha, "lookup_code": str(uuid.UUID(int=rid))}
    )


def one_run(records: int, schools: int, batch: int) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="hocba-audit-bench-"))
    try:
        engine = db.make_engine(db.embedded_server_url(home / "pgdata", database="bench"), "app")
        db.upgrade(engine, "app")
        per_school = -(-records // schools)
        with Session(engine) as session:
            pid = session.connection().scalar(text("SELECT pg_backend_pid()"))
            backend = psutil.Process(pid)
            pg0, py0, t0 = sum(backend.cpu_times()[:2]), time.process_time(), time.perf_counter()
            at = dt.datetime(2026, 5, 20, 3, tzinfo=dt.UTC)
            for action, staff, from_state, to_state, kind in STEPS:
                for start in range(0, per_school, batch):
                    for school in range(schools):
                        rids = range(
                            school * per_school + start,
                            min(school * per_school + min(start + batch, per_school), records),
                        )
                        at += dt.timedelta(seconds=1)
                        audit.append(
                            session,
                            [
                                audit.NewEvent(
                                    chain=f"school:790{school:05d}",
                                    actor=f"staff:{school * 20 + rid % 20}" if staff else "system",
                                    action=action,
                                    record_id=rid + 1,
                                    from_state=from_state,
                                    to_state=to_state,
                                    payload=_payload(kind, rid),
                                )
                                for rid in rids
                            ],
                            at=at,
                        )
                        session.commit()
            pg = sum(backend.cpu_times()[:2]) - pg0
            py, wall = time.process_time() - py0, time.perf_counter() - t0
            events = session.connection().scalar(text("SELECT count(*) FROM audit_event"))
            sizes = (
                session.connection()
                .execute(
                    text("SELECT pg_relation_size('audit_event'), pg_indexes_size('audit_event')")
                )
                .one()
            )
            v0 = time.perf_counter()
            assert audit.verify(session) == []
            verify = time.perf_counter() - v0
        engine.dispose()
    finally:
        db.stop_embedded_server(home / "pgdata")
        shutil.rmtree(home, ignore_errors=True)
    return {
        "events": events,
        "postgres_us_per_event": round(pg / events * 1e6, 1),
        "writer_us_per_event": round(py / events * 1e6, 1),
        "wall_s": round(wall, 2),
        "heap_bytes_per_event": round(sizes[0] / events, 1),
        "index_bytes_per_event": round(sizes[1] / events, 1),
        "verify_us_per_event": round(verify / events * 1e6, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--records", type=int, default=1638)
    ap.add_argument("--schools", type=int, default=4)
    ap.add_argument("--batch", type=int, default=100, help="records per append")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    runs = [one_run(args.records, args.schools, args.batch) for _ in range(args.repeat)]
    for r in runs:
        print(json.dumps(r))
    print(
        json.dumps(
            {k: statistics.median(r[k] for r in runs) for k in runs[0]} | {"median_of": len(runs)}
        )
    )


if __name__ == "__main__":
    main()
