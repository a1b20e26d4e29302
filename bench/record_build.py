"""Benchmark and byte check: ``build_record_xml`` alone over real record contents (issue 14).

Three steps, each run with the interpreter of the tree it measures (a script of one tree
runs with another tree's ``.venv/bin/python``: it imports that tree's ``hocba``):

* ``contents --out FILE``: the demo district (``hocba.dev.demo.run_demo``: 12 schools of
  420 pupils, the real import, drafts and review) in a throwaway embedded PostgreSQL (or
  ``HOCBA_DATABASE_URL``), every record's content as ``load_documents`` gives it to the
  GVCN signing (``hocba/tasks/issuance.py``), with a lookup code, written as JSON;
* ``build --contents FILE [--out FILE] [--rounds N] [--records N] [--cpu N]``: builds every
  content once (XSD check on) and writes the SHA-256 and size of each document (or the
  error it raised) to ``--out``; then, pinned to one CPU, ``--rounds`` timed rounds over the
  first ``--records`` contents: CPU milliseconds per record, median printed;
* ``compare A B``: the two ``--out`` files record for record; exit 1 on any difference.

Run::

    .venv/bin/python bench/record_build.py contents --out /tmp/contents.json
    .venv/bin/python bench/record_build.py build --contents /tmp/contents.json --out b.json
    (cd ../base && .venv/bin/python ../branch/bench/record_build.py build \\
        --contents /tmp/contents.json --out a.json)
    .venv/bin/python bench/record_build.py compare a.json b.json
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from hocba.xml.record import RecordDocument, RecordXmlError, build_record_xml, take_parsed


def write_contents(out: Path) -> None:
    from sqlalchemy import text

    from hocba import db
    from hocba.dev.demo import run_demo
    from hocba.xml.document import load_documents

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from scratch_db import scratch_database

    with scratch_database() as url, tempfile.TemporaryDirectory() as home:
        engine = db.make_engine(url, "hocba")
        db.upgrade(engine, "hocba")
        scope = functools.partial(db.session_scope, engine)
        report = run_demo(scope, Path(home), year="2024-2025")  # the workbooks go in home
        print(report, file=sys.stderr)
        with scope() as session:
            ids = list(session.connection().scalars(text("SELECT id FROM hoc_ba ORDER BY id")))
            documents = load_documents(session, ids, dt.date(2025, 5, 30))
        engine.dispose()
    for rid, doc in documents.items():
        doc.thong_tin_chung["MA_TRA_CUU_UUID"] = str(uuid.UUID(int=rid, version=4))
    out.write_text(json.dumps([dataclasses.asdict(documents[i]) for i in ids], ensure_ascii=False))
    print(f"{len(ids)} contents -> {out}", file=sys.stderr)


def build(contents: Path, out: Path | None, rounds: int, records: int, cpu: int) -> None:
    docs = [RecordDocument(**d) for d in json.loads(contents.read_text())]
    results: list[dict[str, Any]] = []
    for doc in docs:
        try:
            data = build_record_xml(doc)
        except RecordXmlError as exc:
            results.append({"error": exc.message_vi})
            continue
        take_parsed(data)
        results.append({"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)})
    if out:
        out.write_text(json.dumps(results))
    built = sum("sha256" in r for r in results)
    print(f"{built} built, {len(results) - built} refused", file=sys.stderr)
    os.sched_setaffinity(0, {cpu})
    timed = docs[:records]
    per_record: list[float] = []
    for _ in range(rounds):
        start = time.process_time()
        for doc in timed:
            take_parsed(build_record_xml(doc))  # as the first signature would take the tree
        per_record.append((time.process_time() - start) * 1000 / len(timed))
    print(
        json.dumps(
            {
                "hocba": str(Path(sys.modules["hocba"].__file__ or "").parent),
                "records": len(timed),
                "cpu_ms_per_record": round(statistics.median(per_record), 4),
                "rounds": [round(x, 4) for x in per_record],
            }
        )
    )


def compare(a: Path, b: Path) -> int:
    left, right = json.loads(a.read_text()), json.loads(b.read_text())
    differ = [i for i, (x, y) in enumerate(zip(left, right, strict=True)) if x != y]
    total = sum(r.get("bytes", 0) for r in left)
    print(f"{len(left)} records, {total} bytes, {len(differ)} different: {differ[:10]}")
    return 1 if differ else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("contents")
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("build")
    p.add_argument("--contents", type=Path, required=True)
    p.add_argument("--out", type=Path)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--records", type=int, default=1000)
    p.add_argument("--cpu", type=int, default=sorted(os.sched_getaffinity(0))[-1])
    p = sub.add_parser("compare")
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    args = parser.parse_args()
    if args.step == "contents":
        write_contents(args.out)
        return 0
    if args.step == "build":
        build(args.contents, args.out, args.rounds, args.records, args.cpu)
        return 0
    return compare(args.a, args.b)


if __name__ == "__main__":
    raise SystemExit(main())
