"""Faults survived: a signing worker killed with SIGKILL mid-batch, and a signer that fails
halfway. After each, a re-run finishes the work: nothing lost, nothing signed twice, the
audit chain intact (issue 8 §3)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session
from typer.testing import CliRunner

from hocba import db
from hocba.cli import app
from hocba.models import audit
from hocba.pki.signer import SigningError
from hocba.tasks.issuance import sign_batch

PASS = "hocba-demo"


@pytest.fixture
def school(engine, pg_url: str, schema_name: str, tmp_path: Path, monkeypatch):  # type: ignore[no-untyped-def]
    """One demo school, 60 pupils, every June record signed by its teacher."""
    env = {
        "HOCBA_DATABASE_URL": pg_url,
        "HOCBA_DB_SCHEMA": schema_name,
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
    with engine.connect() as c:
        teachers = (
            c.execute(
                text(
                    "SELECT DISTINCT st.username FROM school_class c JOIN staff st "
                    "ON st.id = c.homeroom_teacher_id"
                )
            )
            .scalars()
            .all()
        )
    for t in teachers:
        res = cli.invoke(app, ["sign", "--as", t, "--slot", "gvcn", "--school", "DH01"])
        assert res.exit_code in (0, 1), res.output
    yield engine, env
    db.get_engine().dispose()
    db.get_engine.cache_clear()


def _counts(engine) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with engine.connect() as c:
        return dict(c.execute(text("SELECT state, count(*) FROM hoc_ba GROUP BY state")).all())


def _events_per_record(engine, action: str) -> dict[int, int]:  # type: ignore[no-untyped-def]
    with engine.connect() as c:
        return dict(
            c.execute(
                text(
                    "SELECT record_id, count(*) FROM audit_event WHERE action = :a "
                    "GROUP BY record_id"
                ),
                {"a": action},
            ).all()
        )


def test_sigkill_mid_batch_loses_nothing_and_signs_nothing_twice(school) -> None:  # type: ignore[no-untyped-def]
    engine, env = school
    waiting = _counts(engine)["teacher_signed"]
    assert waiting >= 40
    cmd = [
        sys.executable,
        "-m",
        "hocba.cli",
        "sign",
        "--as",
        "dh01.ht",
        "--slot",
        "cbql",
        "--school",
        "DH01",
        "--chunk",
        "4",
    ]
    log_path = Path(env["HOCBA_HOME"]) / "killed.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cmd, env={**os.environ, **env}, stdout=log, stderr=log, start_new_session=True
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _counts(engine).get("principal_signed", 0) < 8:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the worker dies mid-run, between or inside chunks
    proc.wait(timeout=10)
    after_kill = _counts(engine)
    done = after_kill.get("principal_signed", 0)
    assert 0 < done < waiting, (after_kill, log_path.read_text())
    assert after_kill["teacher_signed"] + done == waiting  # nothing lost, nothing half-signed
    # every signed record has exactly one principal_sign event and a complete signature
    assert set(_events_per_record(engine, "principal_sign").values()) == {1}

    rerun = subprocess.run(
        cmd[:-2], env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr
    final = _counts(engine)
    assert final.get("principal_signed") == waiting and "teacher_signed" not in final
    per_record = _events_per_record(engine, "principal_sign")
    assert len(per_record) == waiting and set(per_record.values()) == {1}
    with Session(engine) as s:
        assert audit.verify(s) == []


class FailingSigner:
    """A real signer that refuses (wrong PIN, timeout) from its n-th batch on."""

    def __init__(self, inner, fail_from: int) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.fail_from, self.calls = inner, fail_from, 0
        self.certificate, self.chain, self.algorithm = (
            inner.certificate,
            inner.chain,
            inner.algorithm,
        )

    def sign_digests(self, digests):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls >= self.fail_from:
            raise SigningError("Mã PIN không đúng (thiết bị từ chối).")
        return self.inner.sign_digests(digests)


def test_signer_refusing_halfway_leaves_every_record_retryable(school) -> None:  # type: ignore[no-untyped-def]
    from hocba.models import certificates
    from hocba.models.lifecycle import Actor
    from hocba.pki.signer import SoftwareSigner

    engine, _ = school
    with Session(engine) as s:
        sid, name = (
            s.connection()
            .execute(text("SELECT id, full_name FROM staff WHERE username = 'dh01.ht'"))
            .one()
        )
        ref = certificates.staff_certificate(s, sid).key_ref
        ids = list(
            s.connection().scalars(
                text("SELECT id FROM hoc_ba WHERE state = 'teacher_signed' ORDER BY id")
            )
        )
    principal = Actor(sid, name)
    signer = FailingSigner(SoftwareSigner.from_pkcs12(ref, PASS), fail_from=2)
    chunks = [ids[i : i + 10] for i in range(0, len(ids), 10)]
    outcomes = []
    for part in chunks:
        try:
            with Session(engine) as s:
                outcomes.append(len(sign_batch(s, part, "CBQL", principal, signer).ok))
                s.commit()
        except SigningError:
            outcomes.append("refused")
    assert outcomes[0] == 10 and set(outcomes[1:]) == {"refused"}
    assert _counts(engine)["teacher_signed"] == len(ids) - 10  # the refused ones untouched
    good = SoftwareSigner.from_pkcs12(ref, PASS)
    with Session(engine) as s:
        res = sign_batch(s, ids, "CBQL", principal, good)  # re-run over everything
        s.commit()
    assert len(res.ok) == len(ids) - 10 and all("không thể" in m for m in res.failed.values())
    assert set(_events_per_record(engine, "principal_sign").values()) == {1}
    assert _counts(engine).get("principal_signed") == len(ids)
