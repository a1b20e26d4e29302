"""The pages, driven with Streamlit's AppTest against a real district (read mostly):
sign-in, refusals, what each role sees, views logged."""

from __future__ import annotations

import pytest
from dashboard_helpers import signed_in

from hocba.dashboard.auth import STAFF_KEY, WRONG_PASSWORD


@pytest.fixture
def app(shared_district, app_env):  # type: ignore[no-untyped-def]
    app_env(shared_district.schema)
    return shared_district


def texts(at) -> str:  # type: ignore[no-untyped-def]
    """Everything the page wrote (markdown, messages, metrics), as one string."""
    parts = [
        e.value
        for kind in ("title", "markdown", "caption", "info", "warning", "error", "success")
        for e in getattr(at, kind)
    ]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    return "\n".join(str(p) for p in parts)


def test_wrong_password_is_refused_with_a_message(app) -> None:  # type: ignore[no-untyped-def]
    at = signed_in("dh01.ht", "mat-khau-sai")
    assert not at.exception
    assert [e.value for e in at.error] == [WRONG_PASSWORD]
    assert STAFF_KEY not in at.session_state
    at = signed_in("khong-co-ai", "mat-khau-sai")
    assert [e.value for e in at.error] == [WRONG_PASSWORD]


def test_sign_in_keeps_only_the_staff_id(app) -> None:  # type: ignore[no-untyped-def]
    at = signed_in("dh01.ht")
    assert not at.exception
    staff_id = app.scalar("SELECT id FROM staff WHERE username = 'dh01.ht'")
    assert at.session_state[STAFF_KEY] == staff_id
    assert "login_password" not in at.session_state  # the password is not kept
    assert "Hiệu trưởng — DH01" in [c.value for c in at.sidebar.caption]


def test_a_principal_gets_no_district_page(app) -> None:  # type: ignore[no-untyped-def]
    at = signed_in("dh02.ht")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("views/huyen.py")
    with pytest.raises(ValueError):
        at.switch_page("views/quan_tri.py")


def test_a_principal_finds_no_pupil_of_another_school(app) -> None:  # type: ignore[no-untyped-def]
    name = app.scalar(
        "SELECT p.full_name FROM hoc_ba r JOIN pupil p ON p.id = r.pupil_id "
        "JOIN school s ON s.id = r.school_id WHERE s.code = 'DH01' ORDER BY r.id LIMIT 1"
    )
    at = signed_in("dh02.ht")
    at.switch_page("views/hoc_ba.py").run()
    at.text_input(key="hb_query").input(str(name)).run()
    assert not at.exception
    assert "Không tìm thấy học bạ nào trong phạm vi bạn được xem." in texts(at)


def test_a_teacher_sees_only_their_class(app) -> None:  # type: ignore[no-untyped-def]
    at = signed_in("dh01.gv1a")
    at.switch_page("views/lop_cua_toi.py").run()
    assert not at.exception
    frame = at.dataframe[0].value
    ids = {
        str(x)
        for x in app.engine.connect()
        .exec_driver_sql(
            "SELECT p.pupil_code FROM hoc_ba r JOIN pupil p ON p.id = r.pupil_id "
            "JOIN school_class c ON c.id = r.class_id JOIN school s ON s.id = c.school_id "
            "WHERE s.code = 'DH01' AND c.name = '1A'"
        )
        .scalars()
    }
    assert set(frame["Mã HS"]) == ids
    assert all(v.startswith("••••••••") for v in frame["Số định danh"] if v)
    with pytest.raises(ValueError):
        at.switch_page("views/truong.py")


def test_opening_a_record_is_logged_once(app) -> None:  # type: ignore[no-untyped-def]
    rid = app.record_ids("DH01")[0]
    name = app.scalar(
        "SELECT p.full_name FROM hoc_ba r JOIN pupil p ON p.id = r.pupil_id WHERE r.id = :r", r=rid
    )
    views = "SELECT count(*) FROM audit_event WHERE action = 'view' AND record_id = :r"
    before = app.scalar(views, r=rid)
    at = signed_in("dh01.vt")
    at.switch_page("views/hoc_ba.py").run()
    at.text_input(key="hb_query").input(str(name)).run()
    at.selectbox(key="hb_open").set_value(rid).run()
    assert not at.exception
    assert str(name) in " ".join(h.value for h in at.get("html"))
    at.run()  # a rerun with the same record open is the same view
    assert app.scalar(views, r=rid) == before + 1
    chain = app.scalar(
        "SELECT h.chain FROM audit_event e JOIN audit_head h ON h.chain_no = e.chain_no "
        "WHERE action = 'view' AND record_id = :r ORDER BY e.at DESC, e.seq DESC LIMIT 1",
        r=rid,
    )
    assert chain == "school:DH01"


def test_the_district_page_shows_every_school(app) -> None:  # type: ignore[no-untyped-def]
    at = signed_in("phong.dh")
    at.switch_page("views/huyen.py").run()
    assert not at.exception
    frame = at.dataframe[0].value
    assert list(frame["Mã trường"]) == ["DH01", "DH02"]
    assert "Trường 2" in texts(at)
    at.selectbox(key="huyen_drill").set_value(frame.index.size and _school(app, "DH02")).run()
    assert not at.exception
    assert "Tiến độ theo lớp" in [h.value for h in at.subheader]


def _school(app, code: str) -> int:  # type: ignore[no-untyped-def]
    return int(app.scalar("SELECT id FROM school WHERE code = :c", c=code))


def test_the_admin_page_is_for_officers_and_admins(app) -> None:  # type: ignore[no-untyped-def]
    at = signed_in("phong.dh")
    at.switch_page("views/quan_tri.py").run()
    assert not at.exception
    assert "Quản trị" in texts(at)
    at = signed_in("admin")
    at.switch_page("views/quan_tri.py").run()
    assert not at.exception
    staff = at.dataframe[-1].value
    assert "dh01.ht" in set(staff["Tên đăng nhập"])


def test_the_notification_log_shows_my_messages_and_nobody_elses(app) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text
    from sqlmodel import Session

    with Session(app.engine) as s:
        ht, other = (
            s.connection().scalar(text("SELECT id FROM staff WHERE username = :u"), {"u": u})
            for u in ("dh01.ht", "dh02.ht")
        )
        s.connection().execute(
            text("""
            INSERT INTO notification (staff_id, kind, dedupe_key, subject, body, link, status,
                                      attempts, local_date)
            VALUES (:a, 'principal_queue', 'k1', 'Hàng chờ ký: 12 học bạ', 'nội dung', '/x',
                    'gave_up', 5, CURRENT_DATE),
                   (:b, 'principal_queue', 'k2', 'Tin của trường khác', 'x', '/x', 'sent', 1,
                    CURRENT_DATE)"""),
            {"a": ht, "b": other},
        )
        s.commit()
    at = signed_in("dh01.ht")
    at.switch_page("views/thong_bao.py").run()
    assert not at.exception
    subjects = list(at.dataframe[0].value["Tiêu đề"])
    assert "Hàng chờ ký: 12 học bạ" in subjects and "Tin của trường khác" not in subjects
