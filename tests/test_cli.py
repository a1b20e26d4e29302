"""The ``hocba`` command against a real database (the test's own schema)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from hocba import db
from hocba.cli import app


@pytest.fixture
def cli(engine, pg_url: str, schema_name: str, tmp_path: Path, monkeypatch) -> Iterator[CliRunner]:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HOCBA_DATABASE_URL", pg_url)
    monkeypatch.setenv("HOCBA_DB_SCHEMA", schema_name)
    monkeypatch.setenv("HOCBA_HOME", str(tmp_path / "home"))
    db.get_engine.cache_clear()
    yield CliRunner()
    db.get_engine().dispose()
    db.get_engine.cache_clear()


def test_demo_then_status_and_records(cli: CliRunner, prefect_harness) -> None:  # type: ignore[no-untyped-def]
    """The whole demo: import, drafts, review, then two worker processes on the Prefect
    API sign, seal and submit to the bundled portal; a pupil of each school moves."""
    res = cli.invoke(
        app,
        [
            "demo",
            "--schools",
            "2",
            "--pupils-per-school",
            "30",
            "--seed",
            "5",
            "--year",
            "2024-2025",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "Huyện mẫu Đầm Hà" in res.output and "Tổng" in res.output

    status = json.loads(cli.invoke(app, ["status", "--json"]).output)
    assert [s["school"] for s in status["schools"]] == ["DH01", "DH02"]
    total = sum(n for s in status["schools"] for c in s["cohorts"].values() for n in c.values())
    without = sum(s["without_personal_id"] for s in status["schools"])
    assert total + without == 60
    states = {st for s in status["schools"] for c in s["cohorts"].values() for st in c}
    assert states <= {"in_review", "reviewed", "accepted"} and "accepted" in states
    august = {st for s in status["schools"] for st in s["cohorts"].get("august", {})}
    assert "accepted" not in august  # the August cohort waits for the summer assessment

    assert "với 2 máy chạy" in res.output and "2 học sinh chuyển trường" in res.output
    out = cli.invoke(app, ["transfer", "list"])
    assert out.output.count("Đã có biên") == 2, out.output  # both receipts back

    out = cli.invoke(app, ["records", "--school", "DH02", "--state", "accepted", "--json"])
    rows = json.loads(out.output)
    assert rows and all(r["school_code"] == "DH02" and r["state"] == "accepted" for r in rows)
    assert all(r["lookup_code"] for r in rows)


def test_demo_is_deterministic(cli: CliRunner) -> None:
    args = [
        "demo",
        "--schools",
        "1",
        "--pupils-per-school",
        "15",
        "--seed",
        "9",
        "--year",
        "2024-2025",
        "--no-sign",
    ]
    assert cli.invoke(app, args).exit_code == 0
    first = cli.invoke(app, ["records", "--json"]).output
    assert cli.invoke(app, args).exit_code == 0  # the same seed again changes nothing
    assert cli.invoke(app, ["records", "--json"]).output == first


def test_import_error_exit_code_and_message(cli: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("Mã học sinh,Họ và tên\nHS1,Nguyễn Văn An\n", encoding="utf-8")
    cli.invoke(app, ["demo", "--schools", "1", "--pupils-per-school", "5", "--no-sign"])
    res = cli.invoke(app, ["import", str(bad), "--school", "DH01", "--year", "2024-2025"])
    assert res.exit_code == 1
    assert "thiếu cột bắt buộc" in res.output and "Ngày sinh" in res.output


def test_unknown_state_is_refused(cli: CliRunner) -> None:
    res = cli.invoke(app, ["records", "--state", "signed"])
    assert res.exit_code == 2 and "không tồn tại" in res.output


def test_audit_verify(cli: CliRunner, prefect_harness) -> None:  # type: ignore[no-untyped-def]
    demo = ["demo", "--schools", "2", "--pupils-per-school", "5", "--workers", "1"]
    assert cli.invoke(app, demo).exit_code == 0  # signing, submission and a transfer too
    res = cli.invoke(app, ["audit", "verify"])
    assert res.exit_code == 0 and "toàn vẹn" in res.output


def test_audit_verify_names_the_first_broken_event_of_every_school(cli: CliRunner, engine) -> None:  # type: ignore[no-untyped-def]
    """Events changed in the database by someone who disabled the guard triggers (as a
    superuser can): the command fails and names, for each school, the first broken event."""
    args = ["demo", "--schools", "2", "--pupils-per-school", "5", "--no-sign"]
    assert cli.invoke(app, args).exit_code == 0
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
        for chain, seq in (("school:DH01", 4), ("school:DH01", 6), ("school:DH02", 3)):
            conn.execute(
                text(
                    "UPDATE audit_event SET reason = 'sửa lén' WHERE seq = :s AND chain_no = "
                    "(SELECT chain_no FROM audit_head WHERE chain = :c)"
                ),
                {"c": chain, "s": seq},
            )
        conn.execute(text("ALTER TABLE audit_event ENABLE TRIGGER USER"))
    res = cli.invoke(app, ["audit", "verify"])
    assert res.exit_code == 1, res.output
    lines = " ".join(res.output.split())  # rich wraps long lines
    assert "Chuỗi school:DH01: sự kiện số 4: Nội dung sự kiện đã bị sửa" in lines, lines
    assert "Chuỗi school:DH02: sự kiện số 3: Nội dung sự kiện đã bị sửa" in lines, lines
    assert "số 6" not in lines  # only the first broken event of a chain
    assert lines.count("Chuỗi ") == 2 and "bị sửa" in lines


def test_sign_export_verify_and_tamper(cli: CliRunner, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    args = [
        "demo",
        "--schools",
        "1",
        "--pupils-per-school",
        "20",
        "--year",
        "2024-2025",
        "--no-sign",
    ]
    assert cli.invoke(app, args).exit_code == 0
    monkeypatch.setenv("HOCBA_KEY_PASSPHRASE", "mat-khau-thu")
    assert cli.invoke(app, ["pki", "init"]).exit_code == 0
    # the seal is not approved yet: sealing must be refused, not half-done
    teacher_rows = json.loads(cli.invoke(app, ["records", "--state", "reviewed", "--json"]).output)
    klass = teacher_rows[0]["class_name"]
    res = cli.invoke(
        app,
        [
            "sign",
            "--as",
            f"dh01.gv{klass.lower()}",
            "--slot",
            "gvcn",
            "--school",
            "DH01",
            "--class",
            klass,
        ],
    )
    assert res.exit_code == 0, res.output
    res = cli.invoke(app, ["sign", "--as", "dh01.ht", "--slot", "cbql", "--school", "DH01"])
    assert res.exit_code == 0, res.output
    res = cli.invoke(app, ["sign", "--as", "dh01.vt", "--slot", "seal", "--school", "DH01"])
    assert res.exit_code == 1 and "cert list" in res.output
    res = cli.invoke(app, ["cert", "approve", "DH01", "--as", "dh01.ht"])
    assert res.exit_code == 1 and "không có quyền" in res.output
    assert cli.invoke(app, ["cert", "approve", "DH01", "--as", "phong.dh"]).exit_code == 0
    res = cli.invoke(app, ["sign", "--as", "dh01.vt", "--slot", "seal", "--school", "DH01"])
    assert res.exit_code == 0, res.output

    issued = json.loads(cli.invoke(app, ["records", "--state", "issued", "--json"]).output)
    assert {r["class_name"] for r in issued} == {klass}
    code = issued[0]["lookup_code"]
    assert cli.invoke(app, ["export", code, "--out", str(tmp_path)]).exit_code == 0
    path = tmp_path / f"{code}.xml"
    report = json.loads(cli.invoke(app, ["verify", str(path), "--json"]).output)
    assert report["verdict"] == "VALID", [c for c in report["checks"] if c["status"] != "pass"]
    res = cli.invoke(app, ["verify", str(path)])
    assert res.exit_code == 0 and "HỢP LỆ" in res.output

    # the paper copy: rendered, signed by the principal and sealed, verified the same way
    res = cli.invoke(app, ["export", code, "--out", str(tmp_path), "--pdf-as", "dh01.ht"])
    assert res.exit_code == 0, res.output
    pdf = json.loads(cli.invoke(app, ["verify", str(tmp_path / f"{code}.pdf"), "--json"]).output)
    assert pdf["verdict"] == "VALID", [c for c in pdf["checks"] if c["status"] != "pass"]
    res = cli.invoke(
        app,
        [
            "print-class",
            "--school",
            "DH01",
            "--as",
            "dh01.ht",
            "--out",
            str(tmp_path / "in"),
            "--class",
            klass,
        ],
    )
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "in").glob(f"{klass}_*.pdf"))) == len(issued)
    assert (tmp_path / "in" / f"DH01_{klass}_de-in.pdf").exists()

    data = path.read_bytes()
    name = issued[0]["full_name"].encode()
    path.write_bytes(data.replace(name, name[:-1] + b"X", 1))
    res = cli.invoke(app, ["verify", str(path), "--json"])
    report = json.loads(res.output)
    assert res.exit_code == 1 and report["verdict"] == "INVALID"
    failed = {c["code"] for c in report["checks"] if c["status"] == "fail"}
    assert {"SIGNATURE_GVCN", "SIGNATURE_CBQL", "SIGNATURE_KY_PHAT_HANH"} <= failed

    # each of the three signatures of the exported file also verifies with xmlsec1
    from cryptography.hazmat.primitives.serialization import Encoding
    from issuing import assert_xmlsec1_verifies

    from hocba.tasks.issuance import trust_anchors

    original = tmp_path / "original.xml"
    original.write_bytes(data)
    root_pem = tmp_path / "root.pem"
    root_pem.write_bytes(trust_anchors(tmp_path / "home")[0].public_bytes(Encoding.PEM))
    assert_xmlsec1_verifies(original, root_pem)

    # issue 16: the clerk's forgery (the seal in every slot, name and score changed, a new
    # lookup code) is INVALID by the role checks; a trailing newline is not a forgery
    from issuing import forge

    from hocba.pki.signer import SoftwareSigner

    seal = SoftwareSigner.from_pkcs12(tmp_path / "home" / "pki" / "truong-DH01.p12", "mat-khau-thu")
    forged = tmp_path / "gia-mao.xml"
    forged.write_bytes(forge(data, seal, seal, seal))
    res = cli.invoke(app, ["verify", str(forged), "--json"])
    report = json.loads(res.output)
    assert res.exit_code == 1 and report["verdict"] == "INVALID"
    assert {c["code"] for c in report["checks"] if c["status"] == "fail"} == {
        "ROLE_GVCN",
        "ROLE_CBQL",
    }
    newline = tmp_path / "xuong-dong.xml"
    newline.write_bytes(data + b"\n")
    res = cli.invoke(app, ["verify", str(newline), "--json"])
    report = json.loads(res.output)
    assert res.exit_code == 0 and report["verdict"] == "VALID"
    match = next(c for c in report["checks"] if c["code"] == "REGISTRY_MATCH")
    assert match["issue_codes"] == ["NOT_BYTE_IDENTICAL"]

    # a correction: requested by the clerk, approved by the district, old record revoked
    res = cli.invoke(
        app,
        [
            "correction",
            "request",
            code,
            "--as",
            "dh01.vt",
            "--reason",
            "Sai ngày sinh",
            "--decision",
            "QĐ 45/2025",
        ],
    )
    assert res.exit_code == 0, res.output
    req_id = res.output.split("số ")[1].split(";")[0]
    res = cli.invoke(app, ["correction", "decide", req_id, "--as", "phong.dh"])
    assert res.exit_code == 0 and "thu hồi" in res.output
    report = json.loads(cli.invoke(app, ["verify", str(original), "--json"]).output)
    match = next(c for c in report["checks"] if c["code"] == "REGISTRY_MATCH")
    assert report["verdict"] == "INVALID" and "thu hồi" in match["message_vi"]


def test_transfer_between_two_schools(
    cli: CliRunner, tmp_path: Path, monkeypatch, prefect_harness
) -> None:  # type: ignore[no-untyped-def]
    args = ["demo", "--schools", "2", "--pupils-per-school", "10", "--year", "2024-2025"]
    args += ["--workers", "1", "--transfers", "0"]
    monkeypatch.setenv("HOCBA_KEY_PASSPHRASE", "hocba-demo")  # the demo's key passphrase
    assert cli.invoke(app, args).exit_code == 0
    issued = json.loads(
        cli.invoke(app, ["records", "--school", "DH01", "--state", "accepted", "--json"]).output
    )
    pupil = issued[0]["pupil_code"]
    package = tmp_path / "chuyen.zip"
    res = cli.invoke(
        app,
        [
            "transfer",
            "export",
            pupil,
            "--to",
            "DH02",
            "--leaving-date",
            "20/01/2025",
            "--as",
            "dh01.vt",
            "--out",
            str(package),
        ],
    )
    assert res.exit_code == 0, res.output
    res = cli.invoke(
        app, ["transfer", "receive", str(package), "--school", "DH02", "--as", "dh01.vt"]
    )
    assert res.exit_code == 1 and "không có quyền" in res.output
    res = cli.invoke(
        app, ["transfer", "receive", str(package), "--school", "DH02", "--as", "dh02.vt"]
    )
    assert res.exit_code == 0 and "Đã nhận 1 học bạ" in res.output
    receipt = package.with_suffix(".bien-nhan.json")
    assert cli.invoke(app, ["transfer", "receipt", str(receipt)]).exit_code == 0
    listing = cli.invoke(app, ["transfer", "list", "--school", "DH02"]).output
    assert "Đã có" in listing and "DH01" in listing  # wrapped cell: "Đã có biên nhận"


def test_submit_to_the_bundled_portal(
    cli: CliRunner, pg_url: str, tmp_path: Path, monkeypatch, prefect_harness
) -> None:  # type: ignore[no-untyped-def]
    from servers import serve_asgi

    from hocba.dev.portal import create_portal_app
    from hocba.tasks.issuance import trust_anchors

    monkeypatch.setenv("HOCBA_KEY_PASSPHRASE", "hocba-demo")
    monkeypatch.setenv("HOCBA_PORTAL_PASSWORD", "mat-khau-cong")
    args = [
        "demo",
        "--schools",
        "1",
        "--pupils-per-school",
        "10",
        "--year",
        "2024-2025",
        "--no-submit",
        "--workers",
        "1",
    ]
    assert cli.invoke(app, args).exit_code == 0
    app_ = create_portal_app(
        pg_url,
        f"portal_cli_{os.getpid()}",
        trusted_roots=trust_anchors(tmp_path / "home"),
        users={"DH01": "mat-khau-cong"},
        auto_approve_certificates=True,
    )
    with serve_asgi(app_) as url:
        monkeypatch.setenv("HOCBA_PORTAL_URL", url)
        res = cli.invoke(app, ["submit", "--school", "DH01"])
        assert res.exit_code == 0, res.output
        assert "1 gói đã gửi" in res.output
        status = json.loads(cli.invoke(app, ["status", "--json"]).output)
        june = status["schools"][0]["cohorts"]["june"]
        assert set(june) <= {"accepted", "in_review"} and june["accepted"] > 0
        monkeypatch.setenv("HOCBA_PORTAL_PASSWORD", "sai")
        res = cli.invoke(app, ["submit", "--school", "DH01"])
        assert res.exit_code == 1  # a wrong password is a clear refusal, nothing changes
    app_.state.portal.store.drop()
