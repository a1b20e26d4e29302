"""Two Prefect process workers on one work pool run the pipeline of one district, several
schools at once (issue 8 §1): both take flow runs, their runs overlap in time (no global
lock), and no record is signed or submitted twice.

The workers are real ``prefect worker start --type process`` subprocesses; each flow run
is a process of its own, started from deployments of the flows in ``hocba/flows/``
(``flow.from_source`` on this checkout). Their Prefect server is a temporary one on the test
PostgreSQL (its own database), as in production: the harness's SQLite server answers
"database is locked" under two polling workers on this machine.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from issuing import PASSWORD
from lxml import etree
from servers import serve_asgi
from sqlalchemy import Engine, text
from sqlmodel import Session

from hocba.dev import demo
from hocba.dev.keys import init_test_keys
from hocba.dev.portal import create_portal_app
from hocba.models import audit, certificates
from hocba.models.lifecycle import SYSTEM, Actor, transition
from hocba.tasks import importer
from hocba.tasks.issuance import trust_anchors

ROOT = Path(__file__).resolve().parents[2]
SCHOOLS = 3
PUPILS = 10
PORTAL_PASSWORD = "mat-khau-cong-so-workers"


@pytest.fixture
def district3(engine: Engine, pg_url: str, schema_name: str, tmp_path: Path) -> Iterator[dict]:  # type: ignore[type-arg]
    """Three imported schools (one homeroom teacher each, so one GVCN run per school),
    test keys for every signer, every seal approved, a portal on HTTP."""
    schools = demo.demo_schools(SCHOOLS)
    with Session(engine) as s:
        demo.build_org(s, schools)
        s.commit()
    used: set[str] = set()
    for school in schools:
        rows, classes = demo.school_rows(school, PUPILS, seed=3, year_start=2024, used_ids=used)
        first = classes[0]
        for c in classes:  # the same teacher keeps every class of the school
            for key in ("teacher_name", "teacher_cccd", "teacher_username", "teacher_email"):
                c[key] = first[key]
        path = importer.write_workbook(tmp_path / f"{school.code}.xlsx", rows, classes)
        with Session(engine) as s:
            importer.import_file(s, path, school.code, "2024-2025", SYSTEM)
            s.commit()
    home = tmp_path / "home"
    with Session(engine) as s:
        init_test_keys(s, home, PASSWORD, SYSTEM)
        s.commit()
    with Session(engine) as s:
        officer = Actor(
            *s.connection()
            .execute(text("SELECT id, full_name FROM staff WHERE username = 'phong.dh'"))
            .one()
        )
        for school in schools:
            cert = certificates.school_certificates(s, school.code)[0]
            certificates.decide(s, cert.id, officer, approve=True)
        s.commit()
    codes = [s.code for s in schools]
    app = create_portal_app(
        pg_url,
        f"{schema_name}_portal",
        trusted_roots=trust_anchors(home),
        users=dict.fromkeys(codes, PORTAL_PASSWORD),
        auto_approve_certificates=True,
    )
    with serve_asgi(app) as url:
        yield {
            "engine": engine,
            "codes": codes,
            "portal": app.state.portal,
            "env": {
                "HOCBA_DATABASE_URL": pg_url,
                "HOCBA_DB_SCHEMA": schema_name,
                "HOCBA_HOME": str(home),
                "HOCBA_KEY_PASSPHRASE": PASSWORD,  # the workers' environment
                "HOCBA_PORTAL_URL": url,
                "HOCBA_PORTAL_PASSWORD": PORTAL_PASSWORD,
            },
        }
    app.state.portal.store.engine.dispose()


@pytest.fixture(scope="module")
def prefect_on_pg(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A temporary Prefect server whose database is on the test PostgreSQL server."""
    import httpx
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    name = f"prefect_{os.getpid()}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_url).set(drivername="postgresql+asyncpg", database=name)
    home = tmp_path_factory.mktemp("prefect")
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": url.render_as_string(hide_password=False),
        "PREFECT_API_URL": api,
    }
    log = (home / "server.log").open("w")
    server = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (home / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the Prefect server did not start"
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        with temporary_settings(updates={PREFECT_API_URL: api}):
            yield api
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PREFECT = str(Path(sys.executable).parent / "prefect")
DEPLOYMENTS = {
    "drafts": "hocba/flows/pipeline.py:drafts_flow",
    "sign": "hocba/flows/signing.py:sign_records_flow",
    "submit": "hocba/flows/submission.py:submission_flow",
}


async def _deploy(pool: str) -> dict[str, str]:
    """The work pool and one deployment per flow, from this checkout."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    names = {}
    for key, entrypoint in DEPLOYMENTS.items():
        loaded = await flow.from_source(source=str(ROOT), entrypoint=entrypoint)
        await loaded.deploy(name=f"{key}-{pool}", work_pool_name=pool, print_next_steps=False)
        names[key] = f"{loaded.name}/{key}-{pool}"
    return names


def _run_all(name: str, parameter_sets: list[dict[str, Any]], timeout: float = 240) -> list[Any]:
    """Create one flow run per parameter set at once, wait until every one is final."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    runs = [run_deployment(name, parameters=p, timeout=0) for p in parameter_sets]

    async def wait() -> list[Any]:
        deadline = time.monotonic() + timeout
        async with get_client() as client:
            while True:
                now = [await client.read_flow_run(r.id) for r in runs]
                if all(r.state and r.state.is_final() for r in now):
                    return now
                assert time.monotonic() < deadline, [r.state for r in now]
                await asyncio.sleep(0.5)

    done = asyncio.run(wait())
    assert [r.state.type.value for r in done] == ["COMPLETED"] * len(done), [r.state for r in done]
    return done


def _taken_by(logs: dict[str, Path]) -> dict[str, set[str]]:
    """The flow runs each worker ran: those it submitted, less those the server refused it
    (two workers may both try a run; the server lets only one move it to Pending)."""
    taken = {}
    for worker, path in logs.items():
        out = path.read_text()
        submitted = set(re.findall(r"submitting flow run '([0-9a-f-]{36})'", out))
        aborted = set(re.findall(r"Aborted submission of flow run '([0-9a-f-]{36})'", out))
        taken[worker] = submitted - aborted
    return taken


def _state_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as c:
        return dict(c.execute(text("SELECT state, count(*) FROM hoc_ba GROUP BY state")).all())


def test_two_process_workers_share_a_district_and_never_take_a_record_twice(
    prefect_on_pg: str, district3, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    engine, codes = district3["engine"], district3["codes"]
    pool = f"hocba-test-{os.getpid()}"
    names = asyncio.run(_deploy(pool))
    env = {
        **os.environ,
        **district3["env"],
        "PREFECT_API_URL": prefect_on_pg,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "1",
        "COLUMNS": "400",  # one log line per message in the workers' output
    }
    workers, logs = [], []
    paths = {name: tmp_path / f"{name}.log" for name in ("w1", "w2")}
    for name, path in paths.items():
        log = path.open("w")
        logs.append(log)
        workers.append(
            subprocess.Popen(
                [
                    PREFECT,
                    "worker",
                    "start",
                    "--pool",
                    pool,
                    "--type",
                    "process",
                    "--name",
                    name,
                    "--limit",
                    "2",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
                start_new_session=True,
            )
        )
    runs: list[Any] = []
    try:
        runs += _run_all(names["drafts"], [{"school_codes": [c]} for c in codes])
        drafts = _state_counts(engine)
        assert set(drafts) == {"in_review"}
        with engine.connect() as c:
            waiting = list(
                c.execute(
                    text(
                        "SELECT c.homeroom_teacher_id, st.full_name, array_agg(r.id) FROM hoc_ba r "
                        "JOIN school_class c ON c.id = r.class_id JOIN staff st "
                        "ON st.id = c.homeroom_teacher_id GROUP BY 1, 2"
                    )
                )
            )
        for teacher_id, name, ids in waiting:  # the human gate: each teacher approves
            with Session(engine) as s:
                transition(s, ids, "approve", Actor(teacher_id, name))
                s.commit()
        reviewed = _state_counts(engine).get("reviewed", 0)
        assert reviewed >= SCHOOLS * PUPILS * 0.8
        with engine.connect() as c:
            teachers = dict(
                c.execute(
                    text(
                        "SELECT DISTINCT s.code, st.username FROM school_class c "
                        "JOIN school s ON s.id = c.school_id "
                        "JOIN staff st ON st.id = c.homeroom_teacher_id"
                    )
                ).all()
            )
        sign = names["sign"]
        runs += _run_all(
            sign,
            [
                {"slot": "GVCN", "username": teachers[c], "school_code": c, "chunk": 3}
                for c in codes
            ],
        )
        # two runs over the SAME school and slot at once: SKIP LOCKED splits its records
        runs += _run_all(
            sign,
            [
                {"slot": "CBQL", "username": f"{c.lower()}.ht", "school_code": c, "chunk": 2}
                for c in codes + codes[:1]
            ],
        )
        runs += _run_all(
            sign,
            [
                {"slot": "KY_PHAT_HANH", "username": f"{c.lower()}.vt", "school_code": c}
                for c in codes + codes[:1]
            ],
        )
        runs += _run_all(names["submit"], [{"school_codes": [c]} for c in codes])
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(timeout=20)
            except subprocess.TimeoutExpired:
                w.kill()
        for log in logs:
            log.close()

    # every approved record went all the way, once
    assert _state_counts(engine) == {"accepted": reviewed}
    with engine.connect() as c:
        per_action = c.execute(
            text(
                "SELECT action, count(*), count(DISTINCT record_id) FROM audit_event "
                "WHERE action IN ('teacher_sign', 'principal_sign', 'seal') GROUP BY action"
            )
        ).all()
        codes_ = c.execute(
            text("SELECT count(lookup_code), count(DISTINCT lookup_code) FROM hoc_ba")
        ).one()
        results = c.execute(
            text("SELECT count(*), count(DISTINCT record_id) FROM portal_result WHERE accepted")
        ).one()
        documents = list(c.scalars(text("SELECT hoc_ba_xml(signed_xml) FROM hoc_ba")))
    assert sorted(per_action) == [
        ("principal_sign", reviewed, reviewed),
        ("seal", reviewed, reviewed),
        ("teacher_sign", reviewed, reviewed),
    ]
    assert tuple(codes_) == (reviewed, reviewed)
    assert tuple(results) == (reviewed, reviewed)
    value = "{http://www.w3.org/2000/09/xmldsig#}SignatureValue"
    signatures = {len(etree.fromstring(bytes(x)).findall(f".//{value}")) for x in documents}
    assert signatures == {3}  # GVCN, CBQL, seal: three signatures per document, no more
    store = district3["portal"].store
    with store.engine.connect() as c:
        held = c.execute(
            text(f'SELECT count(*), count(DISTINCT ma_tra_cuu_uuid) FROM "{store.schema}".record')
        ).one()
    assert tuple(held) == (reviewed, reviewed)  # the Sở holds each record once
    with Session(engine) as s:
        assert audit.verify(s) == []

    # both workers took runs, each run was taken by one worker, and their runs overlapped
    taken = _taken_by(paths)
    ids = {str(r.id) for r in runs}
    assert taken["w1"] and taken["w2"], taken  # both workers ran flow runs
    assert not taken["w1"] & taken["w2"] and taken["w1"] | taken["w2"] == ids
    spans = {r.id: (r.start_time, r.end_time) for r in runs if r.start_time and r.end_time}
    assert len(spans) == len(runs)

    def overlap(a: tuple[dt.datetime, dt.datetime], b: tuple[dt.datetime, dt.datetime]) -> bool:
        return a[0] < b[1] and b[0] < a[1]

    by_worker = {w: [spans[uuid.UUID(i)] for i in taken[w]] for w in ("w1", "w2")}
    assert any(overlap(a, b) for a in by_worker["w1"] for b in by_worker["w2"])
