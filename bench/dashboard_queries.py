"""Time the dashboard's read queries on the configured database (not a test).

Build the district first (``hocba demo --schools 12 --pupils-per-school 420``: about
5,000 records), then::

    HOCBA_HOME=… HOCBA_DB_SCHEMA=… python bench/dashboard_queries.py --repeat 20

Each query runs as the district officer (the district page) or DH01's principal, warm,
``--repeat`` times; the median is printed with a baseline measured in the same run (a bare
``count(*)`` of the records), so the ratio travels between machines.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from hocba import db
from hocba.models import queries
from hocba.models.lifecycle import VN_TZ


def _median_ms(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm (plans, caches)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    import datetime as dt

    today = dt.datetime.now(VN_TZ).date()
    with db.session_scope() as s:
        conn = s.connection()
        records = conn.scalar(text("SELECT count(*) FROM hoc_ba"))
        events = conn.scalar(text("SELECT count(*) FROM audit_event"))
        officer_id = conn.scalar(text("SELECT id FROM staff WHERE username = 'phong.dh'"))
        principal_id = conn.scalar(text("SELECT id FROM staff WHERE username = 'dh01.ht'"))
        officer = queries.viewer_for(s, officer_id)
        principal = queries.viewer_for(s, principal_id)
        assert officer and principal
        year = queries.school_years(s)[0]["id"]
        school = conn.scalar(text("SELECT id FROM school WHERE code = 'DH01'"))
        cases: list[tuple[str, Callable[[], Any]]] = [
            (
                "baseline: SELECT count(*) FROM hoc_ba",
                lambda: conn.scalar(text("SELECT count(*) FROM hoc_ba")),
            ),
            (
                "district_overview (Huyện)",
                lambda: queries.district_overview(s, officer, year, today),
            ),
            ("progress_series (Huyện chart)", lambda: queries.progress_series(s, officer, year)),
            ("pupils_without_id (Huyện)", lambda: queries.pupils_without_id(s, officer, year)),
            ("school_classes (Trường)", lambda: queries.school_classes(s, officer, year, school)),
            ("school_holders (Trường)", lambda: queries.school_holders(s, officer, year, school)),
            (
                "signing_queue CBQL (Hàng chờ ký)",
                lambda: queries.signing_queue(s, principal, "CBQL", school),
            ),
            ("find_records 'nguyen' (Học bạ)", lambda: queries.find_records(s, officer, "nguyen")),
        ]
        print(f"{records} records, {events} audit events, repeat {args.repeat} (median, warm)")
        base = None
        for name, fn in cases:
            ms = _median_ms(fn, args.repeat)
            base = base or ms
            print(f"| {name} | {ms:.1f} ms | {ms / base:.1f}× |")


if __name__ == "__main__":
    main()
