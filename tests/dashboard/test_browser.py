"""Real-browser tests: ``streamlit run hocba/dashboard/app.py`` on a free localhost port,
Debian's chromium driven by playwright (no downloaded browser).

The district officer downloads the district table (CSV); DH01's principal selects one
class in the signing queue, signs it with one confirmation and sees the per-record
result; the district officer downloads the table again and DH01's numbers have moved by
exactly that class (DH02's have not). Once per backend: a software key (the passphrase
typed in the page), a remote signing service (the bundled one over HTTP; the test
answers the confirmation "on the phone") and a USB token (SoftHSM2, signed by
``hocba agent run``); and a teacher signs their class remotely on Lớp của tôi. The remote
and token batches run as Prefect flow runs reporting to the test's Prefect server.
Screenshots go to ``test-artifacts/``; with ``HOCBA_DOC_SCREENSHOTS=1`` the user guide's
screenshots in ``docs/images/`` are refreshed too.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from district_setup import prepare, transfers

from hocba import db
from hocba.dev.demo import DEMO_PASSWORD

ROOT = Path(__file__).parents[2]
ARTIFACTS = ROOT / "test-artifacts"
DOC_IMAGES = ROOT / "docs" / "images"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
if not Path(CHROMIUM).exists():  # pragma: no cover - scripts/install.sh installs it
    pytest.skip("Debian's chromium is missing: apt-get install chromium", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


DOCS = os.environ.get("HOCBA_DOC_SCREENSHOTS") == "1"


@pytest.fixture
def server(engine, pg_url: str, schema_name: str, tmp_path: Path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A demo district and the app serving it: two schools of 20 pupils, DH01's June
    records waiting for the principal; for the user guide's screenshots
    (``HOCBA_DOC_SCREENSHOTS=1``) three schools of 60, DH02 already issued."""
    home = tmp_path / "home"
    if DOCS:
        prepare(lambda: db.session_scope(engine), home, 3, 60, issued_school="DH02")
        transfers(lambda: db.session_scope(engine), home)
    else:
        prepare(lambda: db.session_scope(engine), home, schools=2, pupils=20)
    with dashboard(pg_url, schema_name, tmp_path, home) as url:
        yield url


@contextlib.contextmanager
def dashboard(
    pg_url: str, schema_name: str, tmp_path: Path, home: Path, **extra_env: str
) -> Iterator[str]:
    """``streamlit run hocba/dashboard/app.py`` on a free port, pointed at the test schema."""
    port = _free_port()
    env = {
        **os.environ,
        "HOCBA_DATABASE_URL": pg_url,
        "HOCBA_DB_SCHEMA": schema_name,
        "HOCBA_HOME": str(home),
        **extra_env,
    }
    log = (tmp_path / "streamlit.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "hocba" / "dashboard" / "app.py"),
            "--server.headless=true",
            f"--server.port={port}",
            "--server.address=127.0.0.1",
            "--server.fileWatcherType=none",
            "--browser.gatherUsageStats=false",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 40
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("streamlit did not start:\n" + (tmp_path / "streamlit.log").read_text())
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextlib.contextmanager
def _chromium() -> Iterator[Any]:
    """A page of Debian's headless chromium (Vietnamese locale, downloads accepted)."""
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(
            viewport={"width": 1400, "height": 1100}, locale="vi-VN", accept_downloads=True
        )
        page.set_default_timeout(20_000)
        # assertions wait as long as actions: the default 5 s of expect() ran out on a
        # loaded 2-core machine (helpers' full runs, session 9) while the page was fine
        playwright.expect.set_options(timeout=20_000)
        try:
            yield page
        finally:
            browser.close()


def _shot(page, name: str, guide: bool = True) -> None:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    if DOCS and guide:
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copy(ARTIFACTS / f"{name}.png", DOC_IMAGES / f"{name}.png")


def _sign_in(page, url: str, username: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(url)
    page.get_by_label("Tên đăng nhập", exact=True).fill(username)
    page.get_by_label("Mật khẩu", exact=True).fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    page.get_by_role("button", name="Đăng xuất").wait_for(timeout=20_000)


def _open(page, title: str) -> None:  # type: ignore[no-untyped-def]
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title).click()
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=20_000)


def _district_table(page) -> dict[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    """The district page's table as the officer downloads it (CSV), by school code."""
    with page.expect_download() as info:
        page.get_by_role("button", name="Tải bảng (CSV)").click()
    data = Path(info.value.path()).read_text(encoding="utf-8-sig")
    return {row["Mã trường"]: row for row in csv.DictReader(io.StringIO(data))}


def _as_officer(page, url: str, shot: str) -> dict[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    _sign_in(page, url, "phong.dh")
    _open(page, "Huyện")
    expect = playwright.expect
    expect(page.get_by_role("heading", name="Tiến độ học bạ số của các trường")).to_be_visible()
    expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible()
    _shot(page, shot, guide=shot == "huyen")
    table = _district_table(page)
    page.get_by_role("button", name="Đăng xuất").click()
    return table


def test_principal_signs_a_class_and_the_district_sees_it(server: str) -> None:
    expect = playwright.expect
    with _chromium() as page:
        page.goto(server)
        expect(page.get_by_text("Học bạ số cấp tiểu học")).to_be_visible()
        _shot(page, "dang_nhap")
        before = _as_officer(page, server, "huyen_truoc")
        assert int(before["DH01"]["GVCN đã ký"]) > 0
        assert int(before["DH01"]["HT đã ký"]) == 0

        _sign_in(page, server, "dh01.ht")
        _open(page, "Hàng chờ ký")
        expect(page.get_by_role("heading", name="Hàng chờ ký")).to_be_visible()
        waiting = int(page.locator('[data-testid="stMetricValue"]').first.inner_text())
        assert waiting == int(before["DH01"]["GVCN đã ký"])
        _shot(page, "hang_cho_ky")
        page.locator('[data-testid="stMultiSelect"]').filter(has_text="Lớp").click()
        page.get_by_role("option", name="1A", exact=True).click()
        page.keyboard.press("Escape")
        page.wait_for_timeout(500)
        page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached")
        sign = page.get_by_role("button", name="Ký ").filter(has_text="học bạ").last
        expect(sign).not_to_have_text(f"Ký {waiting} học bạ")  # one class, not everything
        signed = int(sign.inner_text().split()[1])
        assert 0 < signed < waiting
        expect(page.get_by_text("của 1 lớp")).to_be_visible()
        _shot(page, "hang_cho_ky_chon_lop")
        page.get_by_label("Mật khẩu tệp khóa / mã PIN", exact=True).fill(DEMO_PASSWORD)
        sign.click()  # the one confirmation
        expect(
            page.get_by_text(f"Kết quả lần ký gần nhất: {signed}/{signed} thành công")
        ).to_be_visible(timeout=60_000)
        expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text(
            str(waiting - signed)
        )
        _shot(page, "hang_cho_ky_ket_qua")
        page.get_by_role("button", name="Đăng xuất").click()

        after = _as_officer(page, server, "huyen")
        assert int(after["DH01"]["HT đã ký"]) == signed
        assert int(after["DH01"]["GVCN đã ký"]) == int(before["DH01"]["GVCN đã ký"]) - signed
        assert after["DH02"] == before["DH02"]
        if DOCS:
            _sign_in(page, server, "phong.dh")
            _open(page, "Huyện")
            _guide_screenshots(page, server)


def _guide_screenshots(page, url: str) -> None:  # type: ignore[no-untyped-def]
    """The other pages, as each role sees them (for docs/HUONG_DAN.md)."""
    page.set_viewport_size({"width": 1400, "height": 1500})
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Trường").last.click()
    page.get_by_role("option").filter(has_text="DH03").click()
    page.wait_for_timeout(1500)
    _shot(page, "huyen_truong")
    _open(page, "Quản trị")
    _shot(page, "quan_tri")
    _open(page, "Học bạ")
    page.get_by_label("Tìm theo họ tên, mã học sinh hoặc mã số tra cứu học bạ", exact=True).fill(
        "DH02"
    )
    page.keyboard.press("Enter")
    page.wait_for_timeout(1500)
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Mở học bạ").click()
    page.get_by_role("option").nth(1).click()
    page.wait_for_timeout(2000)
    _shot(page, "hoc_ba")
    page.get_by_role("tab", name="Lịch sử").click()
    page.wait_for_timeout(800)
    _shot(page, "hoc_ba_lich_su")
    code = page.locator('[data-testid="stMain"] code').first.inner_text()
    _open(page, "Kiểm tra")
    page.get_by_role("tab", name="Nhập mã tra cứu").click()
    page.get_by_label("Mã số tra cứu học bạ", exact=True).fill(code)
    page.get_by_role("button", name="Kiểm tra").click()
    page.get_by_text("Khớp sổ học bạ đã phát hành").first.wait_for()
    page.wait_for_timeout(500)
    _shot(page, "kiem_tra")
    page.get_by_role("button", name="Đăng xuất").click()
    _sign_in(page, url, "dh03.gv1a")
    page.wait_for_timeout(1500)
    _shot(page, "lop_cua_toi")
    page.get_by_role("button", name="Đăng xuất").click()
    _sign_in(page, url, "dh01.ht")
    page.wait_for_timeout(1500)
    _shot(page, "truong")
    page.get_by_role("button", name="Đăng xuất").click()
    _sign_in(page, url, "dh02.vt")
    _open(page, "Đóng dấu, phát hành")
    _shot(page, "dong_dau")
    _open(page, "Chuyển trường")
    page.get_by_text("Xuất gói chuyển trường cho một học sinh").wait_for()
    _shot(page, "chuyen_truong")


# ------------------------------------------------------------------ remote service, USB token
OTP = "135790"
REMOTE_USERS = ("dh01.ht", "dh02.gv1a")  # a principal and a teacher sign remotely


@pytest.fixture
def remote_server(
    engine, pg_url: str, schema_name: str, tmp_path: Path, prefect_harness
) -> Iterator[tuple[str, Any, str]]:  # type: ignore[no-untyped-def]
    """The district with DH01's principal registered for remote signing: the bundled
    signing service (real HTTP, with a confirmation step) holds the key; the dashboard's
    flow runs report to the test's Prefect server."""
    from prefect.settings import PREFECT_API_URL

    from hocba.asgi import serve_in_thread
    from hocba.dev.signing_service import create_signing_service
    from hocba.models import certificates

    home = tmp_path / "home"
    prepare(lambda: db.session_scope(engine), home, schools=2, pupils=20)
    with db.session_scope(engine) as s:
        s.connection().exec_driver_sql(
            "UPDATE certificate SET kind = 'REMOTE_SIGNING', provider = 'VNPT' WHERE staff_id IN "
            "(SELECT id FROM staff WHERE username = ANY(%s))",
            (list(REMOTE_USERS),),
        )
        refs = certificates.key_refs(s)
    service = create_signing_service(
        {u: (refs[u], DEMO_PASSWORD) for u in REMOTE_USERS}, otps={u: OTP for u in REMOTE_USERS}
    )
    with serve_in_thread(service) as signing_url:
        with dashboard(
            pg_url,
            schema_name,
            tmp_path,
            home,
            HOCBA_SIGNING_SERVICE_URL=signing_url,
            PREFECT_API_URL=str(PREFECT_API_URL.value()),
        ) as url:
            yield url, service.state.service, signing_url


def test_principal_signs_a_class_with_one_confirmation_on_the_phone(remote_server) -> None:  # type: ignore[no-untyped-def]
    import threading

    from hocba.dev.signing_service import answer_pending

    server, service, signing_url = remote_server
    expect = playwright.expect
    with _chromium() as page:
        before = _as_officer(page, server, "huyen_truoc_tu_xa")
        signed, waiting = _pick_class(page, server)
        expect(page.get_by_text("Ký bằng: Ký số từ xa (xác nhận trên điện thoại)")).to_be_visible()
        expect(page.get_by_label("Mật khẩu tệp khóa / mã PIN", exact=True)).to_have_count(0)
        requests = service.request_count
        page.get_by_role("button", name=f"Ký {signed} học bạ").click()  # the one confirmation
        expect(page.get_by_text("Đang chờ xác nhận trên điện thoại")).to_be_visible(timeout=60_000)
        _shot(page, "hang_cho_ky_cho_xac_nhan", guide=False)
        phone = threading.Thread(target=answer_pending, args=(signing_url, "dh01.ht", OTP))
        phone.start()
        expect(
            page.get_by_text(f"Kết quả lần ký gần nhất: {signed}/{signed} thành công")
        ).to_be_visible(timeout=60_000)
        phone.join(10)
        assert service.request_count == requests + 1  # one confirmation for the class
        expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text(
            str(waiting - signed)
        )
        _shot(page, "hang_cho_ky_tu_xa_ket_qua", guide=False)
        page.get_by_role("button", name="Đăng xuất").click()
        after = _as_officer(page, server, "huyen_sau_tu_xa")
        assert int(after["DH01"]["HT đã ký"]) == signed
        assert int(after["DH01"]["GVCN đã ký"]) == int(before["DH01"]["GVCN đã ký"]) - signed
        assert after["DH02"] == before["DH02"]


def _pick_class(page, server: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """DH01's principal opens the queue and filters class 1A; (its size, all waiting)."""
    expect = playwright.expect
    _sign_in(page, server, "dh01.ht")
    _open(page, "Hàng chờ ký")
    expect(page.get_by_role("heading", name="Hàng chờ ký")).to_be_visible()
    waiting = int(page.locator('[data-testid="stMetricValue"]').first.inner_text())
    page.locator('[data-testid="stMultiSelect"]').filter(has_text="Lớp").click()
    page.get_by_role("option", name="1A", exact=True).click()
    page.keyboard.press("Escape")
    page.wait_for_timeout(500)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached")
    sign = page.get_by_role("button", name="Ký ").filter(has_text="học bạ").last
    expect(sign).not_to_have_text(f"Ký {waiting} học bạ")
    signed = int(sign.inner_text().split()[1])
    assert 0 < signed < waiting
    expect(page.get_by_text("của 1 lớp")).to_be_visible()
    return signed, waiting


@pytest.fixture
def token_server(
    engine, pg_url: str, schema_name: str, tmp_path: Path, prefect_harness
) -> Iterator[tuple[str, dict[str, str]]]:  # type: ignore[no-untyped-def]
    """The district with DH01's principal registered with a USB token (SoftHSM2 holding
    their key); returns the dashboard's URL and the agent's environment."""
    import softhsm_token
    from prefect.settings import PREFECT_API_URL

    from hocba.models import certificates

    home = tmp_path / "home"
    prepare(lambda: db.session_scope(engine), home, schools=2, pupils=20)
    with db.session_scope(engine) as s:
        s.connection().exec_driver_sql(
            "UPDATE certificate SET kind = 'USB_TOKEN', provider = 'BKAV' WHERE staff_id = "
            "(SELECT id FROM staff WHERE username = 'dh01.ht')"
        )
        p12 = certificates.key_refs(s)["dh01.ht"]
    env = {
        "HOCBA_DATABASE_URL": pg_url,
        "HOCBA_DB_SCHEMA": schema_name,
        "HOCBA_HOME": str(home),
        **softhsm_token.token_with_key(tmp_path / "hsm", p12, DEMO_PASSWORD),
    }
    with dashboard(
        pg_url, schema_name, tmp_path, home, PREFECT_API_URL=str(PREFECT_API_URL.value())
    ) as url:
        yield url, env


def test_principal_signs_a_class_with_a_usb_token_and_the_agent(token_server) -> None:  # type: ignore[no-untyped-def]
    import softhsm_token

    server, env = token_server
    expect = playwright.expect
    agent = softhsm_token.agent("dh01.ht", env, softhsm_token.PIN, "--once")
    try:
        with _chromium() as page:
            before = _as_officer(page, server, "huyen_truoc_token")
            signed, waiting = _pick_class(page, server)
            expect(page.get_by_text("Ký bằng: USB token")).to_be_visible()
            expect(page.get_by_label("Mật khẩu tệp khóa / mã PIN", exact=True)).to_have_count(0)
            page.get_by_role("button", name=f"Ký {signed} học bạ").click()
            expect(
                page.get_by_text(f"Kết quả lần ký gần nhất: {signed}/{signed} thành công")
            ).to_be_visible(timeout=90_000)
            expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text(
                str(waiting - signed)
            )
            _shot(page, "hang_cho_ky_token_ket_qua", guide=False)
            page.get_by_role("button", name="Đăng xuất").click()
            after = _as_officer(page, server, "huyen_sau_token")
        output = agent.communicate(timeout=60)[0].decode()
    finally:
        if agent.poll() is None:
            agent.kill()
    assert agent.returncode == 0 and "Đã ký 1 lô" in output  # one PIN entry, one batch
    assert int(after["DH01"]["HT đã ký"]) == signed
    assert int(after["DH01"]["GVCN đã ký"]) == int(before["DH01"]["GVCN đã ký"]) - signed
    assert after["DH02"] == before["DH02"]


def test_teacher_signs_their_class_remotely_on_lop_cua_toi(remote_server) -> None:  # type: ignore[no-untyped-def]
    import threading

    from hocba.dev.signing_service import answer_pending

    server, service, signing_url = remote_server
    expect = playwright.expect
    with _chromium() as page:
        before = _as_officer(page, server, "huyen_truoc_gv")
        _sign_in(page, server, "dh02.gv1a")
        _open(page, "Lớp của tôi")
        reviewed = int(page.locator('[data-testid="stMetricValue"]').nth(2).inner_text())
        assert reviewed > 0
        expect(page.get_by_text("Ký bằng: Ký số từ xa (xác nhận trên điện thoại)")).to_be_visible()
        page.get_by_role("button", name=f"Ký {reviewed} học bạ").click()
        expect(page.get_by_text("Đang chờ xác nhận trên điện thoại")).to_be_visible(timeout=60_000)
        phone = threading.Thread(target=answer_pending, args=(signing_url, "dh02.gv1a", OTP))
        phone.start()
        expect(
            page.get_by_text(f"Kết quả lần ký gần nhất: {reviewed}/{reviewed} thành công")
        ).to_be_visible(timeout=60_000)
        phone.join(10)
        expect(page.get_by_text("Chưa có học bạ nào đã duyệt chờ ký.")).to_be_visible()
        _shot(page, "lop_cua_toi_tu_xa_ket_qua", guide=False)
        page.get_by_role("button", name="Đăng xuất").click()
        after = _as_officer(page, server, "huyen_sau_gv")
    assert int(after["DH02"]["GVCN đã ký"]) == int(before["DH02"]["GVCN đã ký"]) + reviewed
    assert after["DH01"] == before["DH01"]
