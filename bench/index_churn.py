"""What a season of state updates costs ``hoc_ba``'s indexes (not a test): bytes after
VACUUM and PostgreSQL CPU, with migration 0009's index set against 0020's.

    .venv/bin/python bench/index_churn.py                 # 20,000 rows, 6 rounds
    .venv/bin/python bench/index_churn.py --rows 50000 --rounds 4

A table with ``hoc_ba``'s indexed columns and its six B-tree indexes (fillfactor 50, as
migration 0015 set), ``--rows`` rows inserted as drafts, then the seven state changes of a
record's season as ``transition()`` writes them: ``UPDATE … FROM unnest(ids)`` in batches
of 350, the lookup code set at the third (GVCN), ``issued_at`` at the fifth (the seal).
Every update changes ``state``, so none is HOT and each version enters every index, as
in the pipeline. Then VACUUM and the size of each index per row. The two index sets
differ in ``hoc_ba_year_school`` (``INCLUDE (issued_at)`` against ``issued_at`` in the
key, deduplicated) and the lookup code's unique index (whole against ``WHERE lookup_code
IS NOT NULL``). CPU: the backend's user + system time (psutil) from the insert to the
last update; the two sets alternate, each round in both orders. On an embedded
PostgreSQL in a temporary directory unless ``HOCBA_DATABASE_URL`` is set (the tables go
to a schema of their own, ``bench_index_churn``, dropped afterwards).
"""

from __future__ import annotations

import argparse
import statistics

import psutil
from scratch_db import scratch_database  # the sibling module (bench/ is on sys.path)
from sqlalchemy import Connection, create_engine, text

SCHEMA = "bench_index_churn"
BATCH = 350
SEASON = ["in_review", "reviewed", "teacher_signed", "principal_signed", "issued"]
SEASON += ["submitted", "accepted"]
INDEXES = {
    "0009": [
        "CREATE UNIQUE INDEX {t}_code ON {t} (lookup_code)",
        "CREATE INDEX {t}_year_school ON {t} (school_year_id, school_id, cohort, state) "
        "INCLUDE (issued_at)",
    ],
    "0020": [
        "CREATE UNIQUE INDEX {t}_code ON {t} (lookup_code) WHERE lookup_code IS NOT NULL",
        "CREATE INDEX {t}_year_school ON {t} (school_year_id, school_id, cohort, state, issued_at)",
    ],
}
COMMON = [
    "CREATE UNIQUE INDEX {t}_one_live ON {t} (pupil_id, school_year_id) "
    "WHERE state NOT IN ('revoked', 'superseded')",
    "CREATE INDEX {t}_school_state ON {t} (school_id, state)",
    "CREATE INDEX {t}_class_state ON {t} (class_id, state)",
]


def season(conn: Connection, variant: str, rows: int) -> tuple[float, dict[str, int]]:
    """(backend CPU ms per row, index bytes per row after VACUUM) of one season."""
    t = f"churn_{variant}"
    conn.execute(text(f"DROP TABLE IF EXISTS {t}"))
    conn.execute(
        text(
            f"CREATE TABLE {t} (id serial PRIMARY KEY, pupil_id int, school_id smallint, "
            "class_id int, school_year_id smallint, cohort varchar, state varchar, "
            "issued_at timestamptz, lookup_code uuid, state_changed_at timestamptz, "
            "rest text) WITH (fillfactor = 50)"
        )
    )
    for sql in INDEXES[variant] + COMMON:
        conn.execute(text(sql.format(t=t)))
    backend = psutil.Process(int(conn.scalar(text("SELECT pg_backend_pid()"))))
    start = sum(backend.cpu_times()[:2])
    conn.execute(
        text(
            f"INSERT INTO {t} (pupil_id, school_id, class_id, school_year_id, cohort, state, "
            "rest) SELECT g, 1 + g / 420, g / 35, 1, "
            "CASE WHEN g % 20 = 0 THEN 'august' ELSE 'june' END, 'draft', repeat('x', 150) "
            "FROM generate_series(1, :n) g"
        ),
        {"n": rows},
    )
    for state in SEASON:
        sets = "state = :s, state_changed_at = now()"
        if state == "teacher_signed":
            sets += ", lookup_code = gen_random_uuid()"
        if state == "issued":
            sets += ", issued_at = now()"
        for low in range(1, rows + 1, BATCH):
            conn.execute(
                text(
                    f"UPDATE {t} SET {sets} FROM unnest(CAST(:ids AS int[])) AS v(id) "
                    f"WHERE {t}.id = v.id"
                ),
                {"s": state, "ids": list(range(low, min(low + BATCH, rows + 1)))},
            )
    cpu_ms = (sum(backend.cpu_times()[:2]) - start) * 1000
    conn.execute(text(f"VACUUM {t}"))
    sizes = conn.execute(
        text(
            "SELECT c.relname, pg_relation_size(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = CAST(:t AS regclass)"
        ),
        {"t": t},
    ).all()
    conn.execute(text(f"DROP TABLE {t}"))
    by_index = {name.removeprefix(t + "_"): size // rows for name, size in sorted(sizes)}
    return cpu_ms / rows, by_index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    cpu: dict[str, list[float]] = {"0009": [], "0020": []}
    with scratch_database() as url:
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"'))
                conn.execute(text(f'SET search_path = "{SCHEMA}"'))
                for n in range(args.rounds):
                    for variant in ("0009", "0020") if n % 2 == 0 else ("0020", "0009"):
                        ms, sizes = season(conn, variant, args.rows)
                        cpu[variant].append(ms)
                        print(f"{variant}: {ms:.4f} CPU-ms per row; bytes per row {sizes}")
                conn.execute(text(f'DROP SCHEMA "{SCHEMA}" CASCADE'))
        finally:
            engine.dispose()
    for variant, values in cpu.items():
        runs = " ".join(f"{v:.4f}" for v in values)
        median = statistics.median(values)
        print(f"{variant} index set: median {median:.4f} CPU-ms per row ({runs})")


if __name__ == "__main__":
    main()
