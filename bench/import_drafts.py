"""Benchmark: import a 5,000-pupil workbook and create 5,000 drafts (issue 2 targets).

Targets: import under 10 s, drafts under 5 s. Each is reported with a baseline measured
in the same run on the same machine, so that the ratio means something on any machine:

* import vs. reading the same workbook's cells with no validation (python-calamine);
* drafts vs. a bare ``INSERT … SELECT`` copying the same 5,000 JSONB contents.

Run: ``.venv/bin/python bench/import_drafts.py [--pupils 5000] [--repeat 3]``
(uses the embedded PostgreSQL in a temporary directory, or ``HOCBA_DATABASE_URL``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from python_calamine import CalamineWorkbook
from sqlalchemy import text
from sqlmodel import Session

from hocba import db
from hocba.dev import demo
from hocba.models.lifecycle import SYSTEM
from hocba.models.records import create_drafts
from hocba.tasks import importer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pupils", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hocba-bench-"))
    if os.environ.get("HOCBA_DATABASE_URL"):
        url = db.database_url()
    else:
        url = db.embedded_server_url(tmp / "pgdata", database="bench")
    school = demo.demo_schools(1)[0]
    rows, classes = demo.school_rows(school, args.pupils, seed=1, year_start=2024, used_ids=set())
    path = importer.write_workbook(tmp / "school.xlsx", rows, classes)
    results: dict[str, list[float]] = {k: [] for k in ("read", "import", "insert", "drafts")}
    for i in range(args.repeat):
        schema = f"bench_{os.getpid()}_{i}"
        engine = db.make_engine(url, schema)
        db.upgrade(engine, schema)
        with Session(engine) as s:
            demo.build_org(s, [school])
            s.commit()
        t = time.perf_counter()
        CalamineWorkbook.from_path(str(path)).get_sheet_by_name("HocSinh").to_python()
        results["read"].append(time.perf_counter() - t)
        with Session(engine) as s:
            t = time.perf_counter()
            importer.import_file(s, path, school.code, "2024-2025", SYSTEM)
            s.commit()
            results["import"].append(time.perf_counter() - t)
        with Session(engine) as s:
            t = time.perf_counter()
            s.connection().execute(
                text(
                    "CREATE TABLE scratch AS SELECT enrolment_id, content, flags FROM year_summary"
                )
            )
            s.commit()
            results["insert"].append(time.perf_counter() - t)
        with Session(engine) as s:
            t = time.perf_counter()
            report = create_drafts(s, SYSTEM)
            s.commit()
            results["drafts"].append(time.perf_counter() - t)
            assert report.created == s.connection().scalar(text("SELECT count(*) FROM hoc_ba"))
        with engine.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
    med = {k: statistics.median(v) for k, v in results.items()}
    out = {
        "pupils": args.pupils,
        "repeat": args.repeat,
        "import_s": round(med["import"], 3),
        "import_baseline_read_s": round(med["read"], 3),
        "import_ratio": round(med["import"] / med["read"], 1),
        "drafts_s": round(med["drafts"], 3),
        "drafts_baseline_insert_s": round(med["insert"], 3),
        "drafts_ratio": round(med["drafts"] / med["insert"], 1),
        "drafts_created": report.created,
    }
    print(json.dumps(out, indent=2))
    if not os.environ.get("HOCBA_DATABASE_URL"):
        db.stop_embedded_server(tmp / "pgdata")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
