"""The signing flow on a real Prefect and PostgreSQL: chunks, no secrets in parameters."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session

from hocba import db
from hocba.dev.keys import init_test_keys
from hocba.models import certificates
from hocba.models.lifecycle import SYSTEM, transition

SECRET = "mat-khau-khong-duoc-lo"


@pytest.fixture
def ready(district, pg_url: str, schema_name: str, tmp_path: Path, monkeypatch):  # type: ignore[no-untyped-def]
    """DH01's records reviewed, keys issued, the seal approved, the app pointed at them."""
    with Session(district.engine) as s:
        init_test_keys(s, tmp_path, SECRET, SYSTEM)
        s.commit()
    with Session(district.engine) as s:
        cert = certificates.school_certificates(s, "DH01")[0]
        certificates.decide(s, cert.id, district.actor("phong.dh"), approve=True)
        ids = district.record_ids("DH01")
        for rid in ids:
            district.force_state(rid, "in_review", flags="[]")
        for rid in ids:
            transition(s, [rid], "approve", district.homeroom_of(rid))
        s.commit()
    monkeypatch.setenv("HOCBA_DATABASE_URL", pg_url)
    monkeypatch.setenv("HOCBA_DB_SCHEMA", schema_name)
    monkeypatch.setenv("HOCBA_HOME", str(tmp_path))
    monkeypatch.setenv("HOCBA_KEY_PASSPHRASE", SECRET)  # the worker's environment
    db.get_engine.cache_clear()
    yield district
    db.get_engine().dispose()
    db.get_engine.cache_clear()


def test_sign_flow_issues_the_school_in_chunks(prefect_harness, ready) -> None:  # type: ignore[no-untyped-def]
    from prefect.client.orchestration import get_client

    from hocba.flows.signing import sign_records_flow

    with ready.engine.connect() as c:
        teachers = (
            c.execute(
                text(
                    "SELECT DISTINCT st.username FROM hoc_ba r JOIN school s ON s.id = r.school_id "
                    "JOIN school_class c ON c.id = r.class_id JOIN staff st ON st.id = "
                    "c.homeroom_teacher_id WHERE s.code = 'DH01'"
                )
            )
            .scalars()
            .all()
        )
    for username in teachers:
        out = sign_records_flow("GVCN", username, "DH01", chunk=4)
        assert not out["failed"]
    assert sign_records_flow("CBQL", "dh01.ht", "DH01", chunk=5)["failed"] == {}
    out = sign_records_flow("KY_PHAT_HANH", "dh01.vt", "DH01", chunk=5)
    assert out["failed"] == {} and out["ok"] == len(ready.record_ids("DH01"))
    assert {ready.state(r) for r in ready.record_ids("DH01")} == {"issued"}
    again = sign_records_flow("KY_PHAT_HANH", "dh01.vt", "DH01", chunk=5)
    assert again == {"ok": 0, "failed": {}}  # a re-run does nothing twice

    async def parameters() -> list[str]:
        async with get_client() as client:
            runs = await client.read_flow_runs()
            return [repr(r.parameters) for r in runs]

    params = asyncio.run(parameters())
    assert params and not any(SECRET in p for p in params)


def test_gvcn_for_the_whole_school_is_one_flow_run_of_chunks(prefect_harness, ready) -> None:  # type: ignore[no-untyped-def]
    """``username=None``: every teacher signs their own records in chunks that span classes;
    a teacher whose key cannot be used fails only their records; the re-run signs the rest
    and nothing twice."""
    from prefect.client.orchestration import get_client

    from hocba.flows.signing import sign_records_flow

    ids = ready.record_ids("DH01")
    with ready.engine.begin() as c:
        homeroom = dict(
            c.execute(
                text(
                    "SELECT r.id, c.homeroom_teacher_id FROM hoc_ba r JOIN school_class c "
                    "ON c.id = r.class_id WHERE r.id = ANY(:ids)"
                ),
                {"ids": ids},
            ).all()
        )
        assert len(set(homeroom.values())) >= 2
        blocked = min(homeroom.values())  # this teacher's certificate is withdrawn for now
        c.execute(
            text("UPDATE certificate SET status = 'pending' WHERE staff_id = :s"), {"s": blocked}
        )
    theirs = {r for r, t in homeroom.items() if t == blocked}

    async def runs() -> tuple[int, int]:
        async with get_client() as client:
            return len(await client.read_flow_runs()), len(await client.read_task_runs())

    flows0, tasks0 = asyncio.run(runs())
    chunk = 3
    out = sign_records_flow("GVCN", None, "DH01", chunk=chunk)
    assert {int(k) for k in out["failed"]} == theirs
    assert all("chứng thư" in v.lower() or "khóa" in v.lower() for v in out["failed"].values())
    assert out["ok"] == len(ids) - len(theirs)
    flows1, tasks1 = asyncio.run(runs())
    assert flows1 - flows0 == 1  # the whole school in one flow run
    assert tasks1 - tasks0 == len(ids) // chunk + 1  # a task per chunk, the last one short
    with ready.engine.begin() as c:
        signed = dict(
            c.execute(
                text("SELECT id, teacher_signer_id FROM hoc_ba WHERE id = ANY(:ids)"),
                {"ids": ids},
            ).all()
        )
        assert {r: signed[r] for r in ids if r not in theirs} == {
            r: homeroom[r] for r in ids if r not in theirs
        }  # each record by its own homeroom teacher
        assert all(signed[r] is None for r in theirs)
        c.execute(
            text("UPDATE certificate SET status = 'approved' WHERE staff_id = :s"), {"s": blocked}
        )
    again = sign_records_flow("GVCN", None, "DH01", chunk=chunk)
    assert again == {"ok": len(theirs), "failed": {}}
    assert {ready.state(r) for r in ids} == {"teacher_signed"}
    with ready.engine.connect() as c:
        twice = c.scalar(
            text(
                "SELECT count(*) FROM (SELECT record_id FROM audit_event WHERE action = "
                "'teacher_sign' AND record_id = ANY(:ids) GROUP BY 1 HAVING count(*) > 1) t"
            ),
            {"ids": ids},
        )
    assert twice == 0


def test_whole_school_signing_is_only_for_gvcn_with_worker_keys(prefect_harness, ready) -> None:  # type: ignore[no-untyped-def]
    from hocba.flows.signing import sign_records_flow
    from hocba.pki.backends import SignerSpec

    with pytest.raises(Exception, match="cần nêu người ký"):
        sign_records_flow("CBQL", None, "DH01")
    with pytest.raises(Exception, match="cần nêu người ký"):
        sign_records_flow("GVCN", None, "DH01", signer=SignerSpec(kind="remote"))
    assert {ready.state(r) for r in ready.record_ids("DH01")} == {"reviewed"}


def test_several_schools_in_one_flow_run(prefect_harness, ready) -> None:  # type: ignore[no-untyped-def]
    """``sign_schools_flow``: each slot of a group of schools is one flow run; a school whose
    signer cannot sign is reported and stops no other school; a re-run does nothing twice."""
    from prefect.client.orchestration import get_client

    from hocba.flows.signing import sign_schools_flow

    ids = ready.record_ids("DH01")

    async def flow_runs() -> int:
        async with get_client() as client:
            return len(await client.read_flow_runs())

    before = asyncio.run(flow_runs())
    assert sign_schools_flow("GVCN", {"DH01": None}, chunk=4) == {"ok": len(ids), "failed": {}}
    with pytest.raises(Exception, match="Chưa ký được: DH02"):
        sign_schools_flow("CBQL", {"DH02": "khong.co.ai", "DH01": "dh01.ht"}, chunk=5)
    assert {ready.state(r) for r in ids} == {"principal_signed"}  # DH01 went on
    out = sign_schools_flow("KY_PHAT_HANH", {"DH01": "dh01.vt"}, chunk=5)
    assert out == {"ok": len(ids), "failed": {}}
    assert {ready.state(r) for r in ids} == {"issued"}
    assert sign_schools_flow("KY_PHAT_HANH", {"DH01": "dh01.vt"}) == {"ok": 0, "failed": {}}
    assert asyncio.run(flow_runs()) - before == 4


def test_a_secret_block_gives_the_passphrase_the_environment_lacks(  # type: ignore[no-untyped-def]
    prefect_harness, ready, monkeypatch
) -> None:
    """The list of Secret blocks is read once (per minute); a listed block is used, an
    unlisted label falls back to ``HOCBA_KEY_PASSPHRASE``."""
    from prefect.blocks.system import Secret

    from hocba.flows.signing import sign_schools_flow
    from hocba.pki import backends as signers

    monkeypatch.setattr(signers, "_blocks", (0.0, frozenset()))
    monkeypatch.setenv("HOCBA_KEY_PASSPHRASE", "sai-mat-khau")  # wrong for every key
    Secret(value=SECRET).save("hocba-key-dh01-ht", overwrite=True)
    try:
        assert sign_schools_flow("GVCN", {"DH01": None})["ok"] == 0  # env: wrong passphrase
        monkeypatch.setenv("HOCBA_KEY_PASSPHRASE", SECRET)
        assert sign_schools_flow("GVCN", {"DH01": None})["ok"] == len(ready.record_ids("DH01"))
        monkeypatch.setenv("HOCBA_KEY_PASSPHRASE", "sai-mat-khau")
        out = sign_schools_flow("CBQL", {"DH01": "dh01.ht"})  # the block, not the env
        assert out == {"ok": len(ready.record_ids("DH01")), "failed": {}}
        assert "hocba-key-dh01-ht" in signers._secret_block_names()
    finally:  # the Prefect server is shared by the session's tests
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            doc = client.read_block_document_by_name("hocba-key-dh01-ht", "secret")
            client.delete_block_document(doc.id)


def test_one_decision_of_the_key_that_signs_a_slot(ready) -> None:  # type: ignore[no-untyped-def]
    """``signing_key`` is what dashboard, flows and CLI ask: the school's newest approved
    seal, or the person's newest approved certificate; a Vietnamese refusal otherwise."""
    from hocba.pki.backends import NoSigningKey, open_registered_signer, signing_key

    teacher = ready.homeroom_of(ready.record_ids("DH01")[0])
    with Session(ready.engine) as s:
        seal = signing_key(s, "KY_PHAT_HANH", "DH01")
        assert seal.label == "truong-DH01" and seal.registered.status == "approved"
        assert seal.registered == certificates.school_certificates(s, "DH01")[0]
        own = signing_key(s, "GVCN", "DH01", teacher.staff_id)
        assert own.registered == certificates.staff_certificate(s, teacher.staff_id)
        assert own.label == ready.scalar(
            "SELECT username FROM staff WHERE id = :s", s=teacher.staff_id
        )
        signer = open_registered_signer(s, "GVCN", "DH01", teacher.staff_id)
        assert certificates.fingerprint(signer.certificate) == own.registered.sha256
        with pytest.raises(NoSigningKey, match="chưa được Phòng/Sở phê duyệt") as seal_info:
            signing_key(s, "KY_PHAT_HANH", "DH02")  # its seal is registered, not approved
        assert "cert list" in seal_info.value.message_vi
        s.connection().execute(
            text("UPDATE certificate SET status = 'pending' WHERE staff_id = :s"),
            {"s": teacher.staff_id},
        )
        with pytest.raises(NoSigningKey, match="chưa có chứng thư số cá nhân") as info:
            signing_key(s, "CBQL", "DH01", teacher.staff_id)
        assert teacher.name in info.value.message_vi
        s.rollback()
