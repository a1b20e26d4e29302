"""PostgreSQL restarted in the middle of a signing flow (issue 8 §3).

A dedicated embedded PostgreSQL (its own data directory, so the rest of the suite is not
disturbed) is stopped (``pg_ctl stop -m fast``: open transactions are rolled back) while
a worker process runs the principal's signing flow in chunks, then started again. The
interrupted run fails; a re-run in a long-lived process whose connections died with the
server (the pool reconnects) signs exactly what is left: nothing lost, nothing half-signed
or signed twice, and ``hocba audit verify`` passes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from hocba import db
from hocba.cli import app

PASS = "hocba-demo"
DATABASE = "restart"


@pytest.fixture
def own_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:  # type: ignore[type-arg]
    """A private embedded PostgreSQL with one demo school whose teachers have signed."""
    # not under tmp_path: the server runs as another user, who must reach its directory
    base = Path(tempfile.mkdtemp(prefix="hocba-test-pg-restart-"))
    pgdata = base / "pgdata"
    url = db.embedded_server_url(pgdata, database=DATABASE)
    env = {
        "HOCBA_DATABASE_URL": url,
        "HOCBA_DB_SCHEMA": "hocba",
        "HOCBA_HOME": str(tmp_path / "home"),
        "HOCBA_KEY_PASSPHRASE": PASS,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    db.get_engine.cache_clear()
    cli = CliRunner()
    res = cli.invoke(
        app,
        ["demo", "--schools", "1", "--pupils-per-school", "60", "--year", "2024-2025", "--no-sign"],
    )
    assert res.exit_code == 0, res.output
    assert cli.invoke(app, ["pki", "init"]).exit_code == 0
    assert cli.invoke(app, ["cert", "approve", "DH01", "--as", "phong.dh"]).exit_code == 0
    engine = db.make_engine(url, "hocba")
    with engine.connect() as c:
        teachers = list(
            c.scalars(
                text(
                    "SELECT DISTINCT st.username FROM school_class c JOIN staff st "
                    "ON st.id = c.homeroom_teacher_id"
                )
            )
        )
    for t in teachers:
        res = cli.invoke(app, ["sign", "--as", t, "--slot", "gvcn", "--school", "DH01"])
        assert res.exit_code in (0, 1), res.output
    try:
        yield {"engine": engine, "pgdata": pgdata, "env": env, "url": url}
    finally:
        engine.dispose()
        db.get_engine().dispose()
        db.get_engine.cache_clear()
        db.stop_embedded_server(pgdata)
        shutil.rmtree(base, ignore_errors=True)


def _states(engine: Engine) -> dict[str, int]:
    with engine.connect() as c:
        return dict(c.execute(text("SELECT state, count(*) FROM hoc_ba GROUP BY state")).all())


def test_postgres_restarted_mid_flow_then_a_rerun_signs_each_record_once(
    prefect_harness, own_server
) -> None:  # type: ignore[no-untyped-def]
    from prefect.settings import PREFECT_API_URL

    from hocba.flows.signing import sign_records_flow

    engine, pgdata = own_server["engine"], own_server["pgdata"]
    waiting = _states(engine)["teacher_signed"]
    assert waiting >= 40
    # this (long-lived) process holds pooled connections from before the restart
    with db.get_engine().connect() as c:
        assert c.scalar(text("SELECT count(*) FROM hoc_ba")) >= waiting

    script = (
        "from hocba.flows.signing import sign_records_flow\n"
        "sign_records_flow('CBQL', 'dh01.ht', 'DH01', chunk=3)\n"
    )
    log_path = Path(own_server["env"]["HOCBA_HOME"]) / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-c", script],
            env={**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())},
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _states(engine).get("principal_signed", 0) < 6:
            assert worker.poll() is None, log_path.read_text()
            time.sleep(0.02)
        engine.dispose()
        assert db.stop_embedded_server(pgdata)  # fast shutdown, mid-flow
        code = worker.wait(timeout=60)  # the run cannot go on without its database
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    assert code != 0, log_path.read_text()[-3000:]
    restart = (  # a fresh process, as an operator's `hocba` command would start it
        "import sys; from pathlib import Path; from hocba import db; "
        f"print(db.embedded_server_url(Path(sys.argv[1]), database={DATABASE!r}))"
    )
    started = subprocess.run(
        [sys.executable, "-c", restart, str(pgdata)], capture_output=True, text=True, timeout=120
    )
    assert started.stdout.strip() == own_server["url"], started.stderr[-2000:]

    after = _states(engine)
    done = after.get("principal_signed", 0)
    assert 0 < done < waiting, after
    assert after["teacher_signed"] + done == waiting  # a chunk is all or nothing

    out = sign_records_flow("CBQL", "dh01.ht", "DH01", chunk=3)  # the re-run
    assert out == {"ok": waiting - done, "failed": {}}
    assert _states(engine).get("principal_signed") == waiting
    with engine.connect() as c:
        per_record = c.execute(
            text(
                "SELECT record_id, count(*) FROM audit_event WHERE action = 'principal_sign' "
                "GROUP BY record_id"
            )
        ).all()
    assert len(per_record) == waiting and {n for _r, n in per_record} == {1}
    res = CliRunner().invoke(app, ["audit", "verify"])
    assert res.exit_code == 0, res.output
