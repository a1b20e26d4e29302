"""Signing from the pages: the principal selects all and signs with ONE confirmation, the
clerk seals, the record verifies by its lookup code; a record returned needs a reason."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import PASSWORD, give_keys, set_passwords, signed_in
from sqlmodel import Session

from hocba.models.lifecycle import SYSTEM, transition
from hocba.pki.signer import SoftwareSigner
from hocba.tasks.issuance import sign_batch


@pytest.fixture
def waiting(district, app_env, schema_name: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """DH01's 1A and 2A signed by their teachers: waiting in the principal's queue."""
    home = tmp_path / "home"
    set_passwords(district.engine)
    give_keys(district.engine, home, ["dh01.gv1a", "dh01.gv2a", "dh01.ht"], ["DH01"])
    from hocba.models import certificates

    signed: list[int] = []
    for klass in ("1a", "2a"):
        teacher = district.actor(f"dh01.gv{klass}")
        ids = [r for r in district.record_ids("DH01") if district.homeroom_of(r) == teacher]
        for rid in ids:
            district.force_state(rid, "draft", flags="[]")
        with Session(district.engine) as s:
            transition(s, ids, "send_to_review", SYSTEM)
            transition(s, ids, "approve", teacher)
            key = certificates.staff_certificate(s, teacher.staff_id)
            res = sign_batch(
                s, ids, "GVCN", teacher, SoftwareSigner.from_pkcs12(key.key_ref, PASSWORD)
            )
            s.commit()
        assert res.ok == ids
        signed += ids
    app_env(schema_name, home)
    district.waiting = signed
    district.home = home
    return district


def submit(at, label_start: str):  # type: ignore[no-untyped-def]
    button = next(b for b in at.button if str(b.label).startswith(label_start))
    return button.click().run()


def test_principal_signs_everything_with_one_confirmation(waiting) -> None:  # type: ignore[no-untyped-def]
    at = signed_in("dh01.ht")
    at.switch_page("views/hang_cho_ky.py").run()
    assert not at.exception
    assert at.metric[0].value == str(len(waiting.waiting))
    at.text_input(key="queue_CBQL_passphrase").input(PASSWORD)
    at = submit(at, f"Ký {len(waiting.waiting)} học bạ")
    assert not at.exception, at.exception
    assert {waiting.state(r) for r in waiting.waiting} == {"principal_signed"}
    results = at.dataframe[0].value
    assert len(results) == len(waiting.waiting)
    assert set(results["Kết quả"]) == {"Đã ký"}
    assert (
        "queue_CBQL_passphrase" not in at.session_state
        or not at.session_state["queue_CBQL_passphrase"]
    )  # the form cleared the passphrase
    assert any("Không còn học bạ nào chờ ký" in s.value for s in at.success)
    # the clerk seals (issue = lock) from their queue, then the code verifies
    at = signed_in("dh01.vt")
    at.switch_page("views/dong_dau.py").run()
    at.text_input(key="queue_KY_PHAT_HANH_passphrase").input(PASSWORD)
    at = submit(at, "Đóng dấu phát hành")
    assert not at.exception, at.exception
    assert {waiting.state(r) for r in waiting.waiting} == {"issued"}
    code = waiting.scalar("SELECT lookup_code FROM hoc_ba WHERE id = :r", r=waiting.waiting[0])
    at.switch_page("views/kiem_tra.py").run()
    at.text_input(key="kt_code").input(str(code))
    at = submit(at, "Kiểm tra")
    assert not at.exception
    assert [s.value for s in at.success] == ["HỢP LỆ — học bạ số đúng như đã phát hành."]
    # the records page: the issued record as XML and as a PDF (logged as an export)
    at.switch_page("views/hoc_ba.py").run()
    at.text_input(key="hb_query").input(str(code)).run()
    at.selectbox(key="hb_open").set_value(waiting.waiting[0]).run()
    at = submit(at, "Lập bản PDF")
    assert not at.exception, at.exception
    pdf = at.session_state[f"hb_pdf_{waiting.waiting[0]}"]
    assert pdf.startswith(b"%PDF") and b"/Type /Page" in pdf
    assert [b.proto.label for b in at.get("download_button")] == [
        "Tải tệp XML đã phát hành",
        "Tải bản PDF",
    ]
    exports = waiting.scalar(
        "SELECT count(*) FROM audit_event WHERE action = 'export' AND record_id = :r "
        "AND payload->>'format' = 'pdf'",
        r=waiting.waiting[0],
    )
    assert exports == 1
    # the verify page reads PDFs too: the signed book is valid, the unsigned view is not
    from hocba.models import certificates
    from hocba.tasks.books import make_books

    with Session(waiting.engine) as s:
        keys = certificates.key_refs(s)
        book = make_books(
            s,
            [waiting.waiting[0]],
            principal=SoftwareSigner.from_pkcs12(keys["dh01.ht"], PASSWORD),
            seal=SoftwareSigner.from_pkcs12(keys["truong-DH01"], PASSWORD),
            verify_url="https://hocba.example.vn/kiem-tra",
        )[waiting.waiting[0]]
    at.switch_page("views/kiem_tra.py").run()
    at.file_uploader(key="kt_file").set_value(("hoc-ba.pdf", book, "application/pdf")).run()
    assert not at.exception, at.exception
    assert [s.value for s in at.success] == ["HỢP LỆ — học bạ số đúng như đã phát hành."]
    assert any("Con dấu số của trường trên bản PDF" in m.value for m in at.markdown)
    at.file_uploader(key="kt_file").set_value(("ban-xem.pdf", pdf, "application/pdf")).run()
    assert [e.value for e in at.error] == ["KHÔNG HỢP LỆ — xem các mục màu đỏ bên dưới."]


def test_a_wrong_passphrase_signs_nothing_and_says_what_to_do(waiting) -> None:  # type: ignore[no-untyped-def]
    at = signed_in("dh01.ht")
    at.switch_page("views/hang_cho_ky.py").run()
    at.text_input(key="queue_CBQL_passphrase").input("sai-mat-khau")
    at = submit(at, "Ký ")
    assert not at.exception
    assert any("nhập lại mật khẩu" in e.value for e in at.error)
    assert {waiting.state(r) for r in waiting.waiting} == {"teacher_signed"}


def test_principal_returns_one_record_with_a_reason(waiting) -> None:  # type: ignore[no-untyped-def]
    rid = waiting.waiting[0]
    at = signed_in("dh01.ht")
    at.switch_page("views/hang_cho_ky.py").run()
    at.selectbox(key="queue_CBQL_open").set_value(rid).run()
    at = submit(at, "Trả lại GVCN")
    assert any("Hãy ghi rõ lý do" in e.value for e in at.error)
    assert waiting.state(rid) == "teacher_signed"
    at.text_area[0].input("Sai ngày sinh")
    at = submit(at, "Trả lại GVCN")
    assert not at.exception
    assert waiting.state(rid) == "in_review"
    reason = waiting.scalar("SELECT return_reason FROM hoc_ba WHERE id = :r", r=rid)
    assert reason == "Sai ngày sinh"
    assert at.metric[0].value == str(len(waiting.waiting) - 1)


def test_teacher_approves_and_signs_the_class_in_one_step(
    district, app_env, schema_name, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    set_passwords(district.engine)
    give_keys(district.engine, home, ["dh01.gv3a"], [])
    teacher = district.actor("dh01.gv3a")
    ids = [r for r in district.record_ids("DH01") if district.homeroom_of(r) == teacher]
    for rid in ids:
        district.force_state(rid, "draft", flags="[]")
    app_env(schema_name, home)
    at = signed_in("dh01.gv3a")
    at.switch_page("views/lop_cua_toi.py").run()
    at = submit(at, f"Nhận {len(ids)} bản nháp")
    at = submit(at, f"Duyệt {len(ids)} học bạ")
    assert {district.state(r) for r in ids} == {"reviewed"}
    at.text_input(key="gv_passphrase").input(PASSWORD)
    at = submit(at, f"Ký {len(ids)} học bạ")
    assert not at.exception, at.exception
    assert {district.state(r) for r in ids} == {"teacher_signed"}
    assert set(at.dataframe[0].value["Kết quả"]) == {"Đã ký"}


def _session_done(engine, sid: int, seconds: float = 300) -> Any:  # type: ignore[no-untyped-def]
    """The session once its flow run has finished it (the run is another process)."""
    from signing_session_helpers import read_session

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = read_session(engine, sid)
        if got.finished:
            return got
        time.sleep(0.5)
    raise AssertionError(f"phiên #{sid} chưa xong: {read_session(engine, sid)}")


def test_clerk_sends_the_issued_records_to_the_portal_from_the_page(
    prefect_harness, waiting, pg_url: str, schema_name: str, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The sealing page's "Gửi Sở ngay" is a Prefect flow run (issue 15): the page creates a
    submission session, starts the run with the session id as its only parameter, follows
    it and shows each record's result. The run signs the transactions with the seal the
    worker holds, sends them over HTTP to the bundled portal and fetches the results. A
    worker without the seal's passphrase sends nothing and the page says what to do."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL
    from servers import serve_asgi

    from hocba.dev.portal import create_portal_app
    from hocba.models import certificates
    from hocba.tasks.issuance import trust_anchors

    with Session(waiting.engine) as s:
        keys = certificates.key_refs(s)
        assert sign_batch(
            s,
            waiting.waiting,
            "CBQL",
            waiting.actor("dh01.ht"),
            SoftwareSigner.from_pkcs12(keys["dh01.ht"], PASSWORD),
        ).ok
        res = sign_batch(
            s,
            waiting.waiting,
            "KY_PHAT_HANH",
            waiting.actor("dh01.vt"),
            SoftwareSigner.from_pkcs12(keys["truong-DH01"], PASSWORD),
            trust_anchors=trust_anchors(waiting.home),
        )
        s.commit()
    assert res.ok == waiting.waiting
    portal = create_portal_app(
        pg_url,
        f"{schema_name}_portal",
        trusted_roots=trust_anchors(waiting.home),
        users={"DH01": "mat-khau-cong-truong"},
        auto_approve_certificates=True,
    )
    # the run reports to the suite's Prefect server (no deployment here: a child process)
    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))
    monkeypatch.delenv("HOCBA_KEY_PASSPHRASE", raising=False)
    n = len(waiting.waiting)
    with serve_asgi(portal) as url:
        monkeypatch.setenv("HOCBA_PORTAL_URL", url)
        monkeypatch.setenv("HOCBA_PORTAL_PASSWORD", "mat-khau-cong-truong")
        at = signed_in("dh01.vt")
        at.switch_page("views/dong_dau.py").run()
        assert not any(k == "send_DH01_pass" for k in (t.key for t in at.text_input))
        at = submit(at, "Gửi Sở ngay")  # the worker has no passphrase for the seal
        assert not at.exception, at.exception
        first = at.session_state["send_DH01_session"]
        assert any(w.value.startswith("Đang") and "Sở" in w.value for w in at.warning)
        assert _session_done(waiting.engine, first).state == "failed"
        at.run()
        assert not at.exception, at.exception
        assert any(
            "Chưa gửi Sở được" in e.value and "hocba-key-truong-DH01" in e.value for e in at.error
        ), [e.value for e in at.error]
        assert {waiting.state(r) for r in waiting.waiting} == {"issued"}

        monkeypatch.setenv("HOCBA_KEY_PASSPHRASE", PASSWORD)  # the worker's secret
        at = submit(at, "Gửi Sở ngay")
        assert not at.exception, at.exception
        sid = at.session_state["send_DH01_session"]
        assert sid != first
        done = _session_done(waiting.engine, sid)
        assert done.state == "done" and done.purpose == "submit", done
        at.run()
        assert not at.exception, at.exception
    portal.state.portal.store.engine.dispose()
    assert {waiting.state(r) for r in waiting.waiting} == {"accepted"}
    assert any(f"{n} tiếp nhận, 0 từ chối" in m.value for m in at.success), at.success
    table = next(d.value for d in at.dataframe if "Kết quả" in d.value.columns)
    assert list(table["Kết quả"]) == ["Đã gửi, Sở đã tiếp nhận"] * n

    async def runs() -> list[Any]:
        async with get_client() as client:
            return list(await client.read_flow_runs())

    mine = [
        r.parameters
        for r in asyncio.run(runs())
        if r.parameters.get("session_id") in (first, sid) and r.name
    ]
    assert {"session_id": sid} in mine and {"session_id": first} in mine
    assert not any(PASSWORD in repr(p) or "mat-khau-cong-truong" in repr(p) for p in mine)


def test_the_sealing_page_shows_how_many_records_wait_for_a_timestamp(waiting, monkeypatch):  # type: ignore[no-untyped-def]
    """Issue 12: sealed while the TSA was down, the records are issued at B level and the
    clerk's page says how many wait for their timestamp."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        monkeypatch.setenv("HOCBA_TSA_URL", f"http://127.0.0.1:{sock.getsockname()[1]}/tsa")
    at = signed_in("dh01.ht")
    at.switch_page("views/hang_cho_ky.py").run()
    at.text_input(key="queue_CBQL_passphrase").input(PASSWORD)
    submit(at, f"Ký {len(waiting.waiting)} học bạ")
    at = signed_in("dh01.vt")
    at.switch_page("views/dong_dau.py").run()
    at.text_input(key="queue_KY_PHAT_HANH_passphrase").input(PASSWORD)
    at = submit(at, "Đóng dấu phát hành")
    assert not at.exception, at.exception
    assert {waiting.state(r) for r in waiting.waiting} == {"issued"}
    at.switch_page("views/dong_dau.py").run()
    n = len(waiting.waiting)
    assert any(f"{n} học bạ đã ký đang chờ dấu thời gian" in m.value for m in at.info), [
        m.value for m in at.info
    ]
