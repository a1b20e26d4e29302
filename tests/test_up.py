"""``hocba up``: one command starts the Prefect server (on the app's PostgreSQL server), the
work pool and deployments, a process worker, the bundled portal and the dashboard; a
deployment run is picked up by the worker; stopping stops every process (issue 5 §5)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from hocba import db
from hocba.dev import demo
from hocba.models.lifecycle import SYSTEM
from hocba.tasks import importer


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]  # held together: n different ports
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def test_up_starts_everything_and_a_deployment_runs_on_its_worker(
    engine, pg_url: str, schema_name: str, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from hocba.up import Ports, run

    school = demo.demo_schools(1)[0]
    with Session(engine) as s:
        demo.build_org(s, [school])
        rows, classes = demo.school_rows(school, 8, seed=3, year_start=2024, used_ids=set())
        path = importer.write_workbook(tmp_path / "t.xlsx", rows, classes)
        importer.import_file(s, path, school.code, "2024-2025", SYSTEM)
        s.commit()
    for key, value in {
        "HOCBA_DATABASE_URL": pg_url,
        "HOCBA_DB_SCHEMA": schema_name,
        "HOCBA_HOME": str(tmp_path / "home"),
        "HOCBA_PORTAL_PASSWORD": "mat-khau-cong-up",
    }.items():
        monkeypatch.setenv(key, value)
    db.get_engine.cache_clear()
    ports = Ports(*_free_ports(3))
    seen: dict[str, object] = {}

    def ready(stack, env) -> None:  # type: ignore[no-untyped-def]
        seen["procs"] = dict(stack.procs)
        assert set(stack.procs) == {
            "prefect-server",
            "worker-1",
            "portal",
            "trust-services",
            "dashboard",
        }
        assert httpx.get(f"http://127.0.0.1:{ports.portal}/health").status_code == 200
        page = httpx.get(f"http://127.0.0.1:{ports.dashboard}/")
        assert page.status_code == 200

        async def drafts_run() -> tuple[str, list[str]]:
            async with get_client() as client:
                names = sorted(d.name for d in await client.read_deployments())
                deployment = await client.read_deployment_by_name(
                    "hoc-ba-ban-nhap/ban-nhap-hang-ngay"
                )
                run_ = await client.create_flow_run_from_deployment(deployment.id)
                deadline = time.monotonic() + 240
                while time.monotonic() < deadline:
                    run_ = await client.read_flow_run(run_.id)
                    if run_.state and run_.state.is_final():
                        break
                    await asyncio.sleep(1)
                return str(run_.state.type.value if run_.state else None), names

        with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
            seen["state"], seen["deployments"] = asyncio.run(drafts_run())

    assert run(ports, workers=1, ready=ready, say=lambda _m: None) == 0
    assert seen["state"] == "COMPLETED", (tmp_path / "home" / "logs" / "worker-1.log").read_text()
    assert seen["deployments"] == [
        "ban-nhap-hang-ngay",
        "bo-sung-dau-thoi-gian",
        "gia-han-dau-thoi-gian",
        "gui-so",
        "gui-so-ngay",
        "han-nop-hang-ngay",
        "ky-hoc-ba",
        "ky-hoc-ba-nhieu-truong",
        "ky-phien",
        "nhan-chuyen-truong",
    ]
    with engine.connect() as c:  # the worker's flow run made the drafts and sent them on
        states = dict(c.exec_driver_sql("SELECT state, count(*) FROM hoc_ba GROUP BY 1").all())
    assert states and set(states) == {"in_review"}
    procs = seen["procs"]
    assert all(p.poll() is not None for p in procs.values())  # type: ignore[union-attr]
    # Prefect kept its runs in its own database on the same PostgreSQL server
    prefect_db = make_url(pg_url).set(database=f"prefect_{schema_name}")
    runs = create_engine(prefect_db)
    with runs.connect() as c:
        assert c.execute(text("SELECT count(*) FROM flow_run")).scalar()
    runs.dispose()
    admin = create_engine(make_url(pg_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE "prefect_{schema_name}" WITH (FORCE)'))
    admin.dispose()
    db.get_engine().dispose()
    db.get_engine.cache_clear()
