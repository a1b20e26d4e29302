"""Every page × every role, and the probes: what each person sees, and what they must not
see whatever the URL's query parameters say (HOCBA_SPEC §7, issue 6).

The pages are run one by one with AppTest (``views/<page>.py``) for a signed-in staff id,
so the check the page itself makes on the server is what is tested, not the menu that
hides it. The world: DH01 in the district Đầm Hà (officer ``phong.dh``) and DH02 moved to
the district Hải Hà (officer ``phong.khac``), each with records waiting for the principal
(class 1A) and the clerk (class 2A), transfers between them and from outside, and
messages. Assertions name real content: pupil codes and names, teachers, schools, staff.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import APP, set_passwords, signed_in
from sqlalchemy import text
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from hocba.dashboard.auth import STAFF_KEY
from hocba.models import org

VIEWS = APP.parent / "views"
NO_RIGHT = "Bạn không có quyền xem trang này"
SIGNED_OUT = "Phiên làm việc đã kết thúc. Hãy đăng nhập lại."
NOT_SCHOOL = "Bạn không có quyền xem trường «{}»"
NOT_CLASS = "không phải lớp bạn chủ nhiệm"
NOT_FOUND = "Không tìm thấy học bạ nào trong phạm vi bạn được xem."
NOT_OPEN = "Không mở được học bạ này (ngoài phạm vi bạn được xem)."


@pytest.fixture(scope="module")
def world(shared_district) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The shared district made into two districts, with work in every queue; returns
    the facts the cases name (``code:DH01/1A``, ``qname:DH02``...)."""
    d = shared_district
    with Session(d.engine) as s:
        org.ensure_unit(s, "22-HH", "Hải Hà", "district", "22")
        s.connection().execute(
            text(
                "UPDATE school SET unit_id = (SELECT id FROM org_unit WHERE code = '22-HH') "
                "WHERE code = 'DH02'"
            )
        )
        org.ensure_staff(s, "phong.khac", "Phạm Văn Khác", None, "khac@demo.hocba.vn")
        org.grant(s, "phong.khac", "district_officer", unit_code="22-HH")
        s.commit()
    set_passwords(d.engine)
    facts: dict[str, Any] = {}
    with d.engine.connect() as conn:
        rows = conn.execute(
            text("""
            SELECT s.code, c.name AS klass, c.id AS class_id, r.id, p.pupil_code, p.full_name,
                   st.full_name AS teacher
            FROM hoc_ba r JOIN school s ON s.id = r.school_id
            JOIN school_class c ON c.id = r.class_id JOIN pupil p ON p.id = r.pupil_id
            JOIN staff st ON st.id = c.homeroom_teacher_id ORDER BY r.id""")
        ).all()
    by: dict[tuple[str, str], list[Any]] = {}
    for r in rows:
        by.setdefault((r.code, r.klass), []).append(r)
    for code in ("DH01", "DH02"):
        for klass in ("1A", "2A"):
            first = by[(code, klass)][0]
            facts[f"code:{code}/{klass}"] = first.pupil_code
            facts[f"id:{code}/{klass}"] = str(first.id)
            facts[f"class:{code}/{klass}"] = str(first.class_id)
            facts[f"name:{code}/{klass}"] = first.full_name
        # class 1A waits for the principal, class 2A for the clerk; the Sở rejected 3A
        for r in by[(code, "1A")]:
            d.force_state(r.id, "teacher_signed")
        for r in by[(code, "2A")]:
            d.force_state(r.id, "principal_signed")
        rejected = [r.id for r in by[(code, "3A")]]
        for rid in rejected:
            d.force_state(rid, "rejected")
        facts[f"rname:{code}"] = by[(code, "3A")][0].full_name
        facts[f"reason:{code}"] = f"Ngày sinh không khớp CSDL dân cư ({code})"
        with d.engine.begin() as conn:
            sub = conn.execute(
                text("""
                INSERT INTO submission (school_id, school_year_id, cohort, message_id,
                                        record_ids, status)
                SELECT s.id, y.id, 'june', :m, :ids, 'done' FROM school s, school_year y
                WHERE s.code = :code RETURNING id"""),
                {"m": f"msg-{code}", "ids": rejected, "code": code},
            ).scalar()
            conn.execute(
                text("""
                INSERT INTO portal_result (record_id, submission_id, accepted, error,
                                           error_field_title, error_description)
                SELECT unnest(CAST(:ids AS int[])), :sub, false, 'E12', 'Ngày sinh', :why"""),
                {"ids": rejected, "sub": sub, "why": facts[f"reason:{code}"]},
            )
    once = {n for n in {r.full_name for r in rows} if sum(r.full_name == n for r in rows) == 1}
    teachers = {code: {r.teacher for r in rows if r.code == code} for code in ("DH01", "DH02")}
    for code, other in (("DH01", "DH02"), ("DH02", "DH01")):
        for klass, key in (("1A", "qname"), ("2A", "sname")):
            facts[f"{key}:{code}"] = next(
                r.full_name for r in by[(code, klass)] if r.full_name in once
            )
        facts[f"teacher:{code}"] = next(
            t for t in sorted(teachers[code]) if t not in teachers[other]
        )
        facts[f"school:{code}"] = str(d.scalar("SELECT name FROM school WHERE code = :c", c=code))
    with d.engine.begin() as conn:
        ids = dict(conn.execute(text("SELECT username, id FROM staff")).all())
        # test set-up only: transfers in every state, as the transfer lifecycle would make them
        conn.execute(text("SELECT set_config('hocba.transfer_lifecycle', 'on', true)"))
        conn.execute(
            text("""
            INSERT INTO transfer (pupil_cccd_sha256, pupil_name, birth_date, from_school_code,
                to_school_code, leaving_date, state, package_sha256, records, review_reason)
            VALUES (repeat('1', 64), 'Đỗ Văn Đi Sang', '2016-01-02', 'DH01', 'DH02',
                    '2025-01-15', 'exported', repeat('a', 64), 2, NULL),
                   (repeat('2', 64), 'Lò Thị Cần Đối', '2016-03-04', 'HN07', 'DH02',
                    '2025-02-01', 'needs_review', repeat('b', 64), 1,
                    'Cùng mã định danh nhưng họ tên khác'),
                   (repeat('3', 64), 'Vũ Văn Ra Ngoài', '2016-05-06', 'DH02', 'HP03',
                    '2025-03-01', 'exported', repeat('c', 64), 3, NULL),
                   (repeat('4', 64), 'Mai Thị Từ Xa', '2016-07-08', 'HN07', 'DH01',
                    '2025-03-02', 'accepted', repeat('d', 64), 1, NULL)""")
        )
        conn.execute(  # a receipt is recorded on an exported transfer
            text("UPDATE transfer SET state = 'receipted' WHERE package_sha256 = repeat('c', 64)")
        )
        conn.execute(
            text("""
            INSERT INTO notification (staff_id, kind, dedupe_key, subject, body, link, status,
                                      attempts, local_date)
            SELECT id, 'principal_queue', 'acc-' || username, 'Tin riêng của ' || username,
                   'x', '/x', 'sent', 1, CURRENT_DATE FROM staff
            WHERE username IN ('dh01.ht', 'dh02.ht', 'dh01.gv1a', 'dh01.gv2a')""")
        )
    facts["staff"] = ids
    facts["transfer:DH01->DH02"] = "Đỗ Văn Đi Sang"
    facts["transfer:review@DH02"] = "Lò Thị Cần Đối"
    facts["transfer:DH02->out"] = "Vũ Văn Ra Ngoài"
    facts["transfer:in@DH01"] = "Mai Thị Từ Xa"
    facts["msg:dh01.ht"] = "Tin riêng của dh01.ht"
    facts["msg:dh02.ht"] = "Tin riêng của dh02.ht"
    facts["msg:dh01.gv1a"] = "Tin riêng của dh01.gv1a"
    facts["msg:dh01.gv2a"] = "Tin riêng của dh01.gv2a"
    facts["staff:dh01.ht"] = "dh01.ht"
    facts["staff:dh02.ht"] = "dh02.ht"
    yield facts


@pytest.fixture
def run_page(shared_district, world, app_env):  # type: ignore[no-untyped-def]
    """``run_page(user, page, **params)``: the page run for ``user`` (None: signed out)."""
    app_env(shared_district.schema)

    def run(user: str | None, page: str, **params: str) -> AppTest:
        at = AppTest.from_file(str(VIEWS / f"{page}.py"), default_timeout=60)
        if user is not None:
            at.session_state[STAFF_KEY] = world["staff"][user]
        for k, v in params.items():
            at.query_params[k] = v
        return at.run()

    return run


def content(at: AppTest) -> str:
    """Everything a page shows: text elements, metrics, tables, options, the record."""
    parts: list[str] = []
    for kind in (
        "title",
        "header",
        "subheader",
        "markdown",
        "caption",
        "info",
        "warning",
        "error",
        "success",
        "text",
    ):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    for frame in at.dataframe:
        value = frame.value
        parts.append(value.to_string() if hasattr(value, "to_string") else str(value))
    for kind in ("selectbox", "multiselect", "radio"):
        for w in getattr(at, kind):
            parts += [str(o) for o in w.options]
    parts += [str(h.proto.body) for h in at.get("html")]
    parts += [str(e.label) for e in at.expander]
    return "\n".join(parts)


@dataclasses.dataclass(frozen=True)
class Case:
    user: str | None
    page: str
    see: tuple[str, ...] = ()
    hide: tuple[str, ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    say: str | None = None  # a message (Vietnamese) the page must show

    @property
    def id(self) -> str:
        q = "&".join(f"{k}={v}" for k, v in self.params)
        return f"{self.user or 'anon'}-{self.page}" + (f"?{q}" if q else "")


def refused(user: str | None, page: str) -> Case:
    return Case(user, page, say=SIGNED_OUT if user is None else NO_RIGHT)


T, T2, P, P2, C, OF, OF2, A = (
    "dh01.gv1a",
    "dh01.gv2a",
    "dh01.ht",
    "dh02.ht",
    "dh01.vt",
    "phong.dh",
    "phong.khac",
    "admin",
)
PAGES = (
    "huyen",
    "truong",
    "hang_cho_ky",
    "dong_dau",
    "lop_cua_toi",
    "hoc_ba",
    "kiem_tra",
    "quan_tri",
    "thong_bao",
    "chuyen_truong",
)
DH01 = ("code:DH01/1A", "code:DH01/2A", "qname:DH01", "sname:DH01", "teacher:DH01")
DH02 = ("code:DH02/1A", "code:DH02/2A", "qname:DH02", "sname:DH02", "teacher:DH02", "school:DH02")

CASES = [
    # ---- not signed in: every page refuses
    *(refused(None, page) for page in PAGES),
    # ---- district page: district officers and the administrator only
    Case(OF, "huyen", see=("school:DH01",), hide=("school:DH02",)),
    Case(OF2, "huyen", see=("school:DH02",), hide=("school:DH01",)),
    Case(A, "huyen", see=("school:DH01", "school:DH02")),
    Case(OF, "huyen", params=(("truong", "DH01"),), see=("teacher:DH01", "Tiến độ theo lớp")),
    Case(OF, "huyen", params=(("truong", "DH02"),), hide=DH02, say=NOT_SCHOOL.format("DH02")),
    Case(
        OF2,
        "huyen",
        params=(("truong", "DH01"),),
        hide=(*DH01, "school:DH01"),
        say=NOT_SCHOOL.format("DH01"),
    ),
    *(refused(u, "huyen") for u in (T, P, C)),
    # ---- school page
    Case(P, "truong", see=("teacher:DH01",), hide=DH02),
    Case(
        P,
        "truong",
        params=(("truong", "DH02"),),
        see=("teacher:DH01",),
        hide=DH02,
        say=NOT_SCHOOL.format("DH02"),
    ),
    Case(C, "truong", see=("teacher:DH01",), hide=DH02),
    Case(
        OF,
        "truong",
        params=(("truong", "dh02"),),
        see=("teacher:DH01",),
        hide=DH02,
        say=NOT_SCHOOL.format("dh02"),
    ),
    Case(OF2, "truong", see=("teacher:DH02",), hide=DH01),
    Case(A, "truong", params=(("truong", "DH02"),), see=("teacher:DH02",), hide=("teacher:DH01",)),
    refused(T, "truong"),
    # ---- principal's signing queue: principals (not the administrator, not officers)
    Case(P, "hang_cho_ky", see=("qname:DH01",), hide=(*DH02, "sname:DH01")),
    Case(
        P,
        "hang_cho_ky",
        params=(("truong", "DH02"),),
        see=("qname:DH01",),
        hide=DH02,
        say=NOT_SCHOOL.format("DH02"),
    ),
    Case(P2, "hang_cho_ky", see=("qname:DH02",), hide=DH01),
    *(refused(u, "hang_cho_ky") for u in (T, C, OF, A)),
    # ---- clerk's sealing queue
    Case(C, "dong_dau", see=("sname:DH01",), hide=(*DH02, "qname:DH01")),
    Case(
        C,
        "dong_dau",
        params=(("truong", "DH02"),),
        see=("sname:DH01",),
        hide=DH02,
        say=NOT_SCHOOL.format("DH02"),
    ),
    Case(
        C,
        "dong_dau",
        params=(("trang_thai", "rejected"),),
        see=("reason:DH01", "rname:DH01"),
        hide=("reason:DH02", "rname:DH02"),
    ),
    *(refused(u, "dong_dau") for u in (T, P, OF, A)),
    # ---- teacher's page: my class only, whatever ?lop= says
    Case(T, "lop_cua_toi", see=("code:DH01/1A",), hide=("code:DH01/2A", *DH02)),
    Case(T2, "lop_cua_toi", see=("code:DH01/2A",), hide=("code:DH01/1A", *DH02)),
    Case(
        T,
        "lop_cua_toi",
        params=(("lop", "class:DH01/2A"),),
        see=("code:DH01/1A",),
        hide=("code:DH01/2A",),
        say=NOT_CLASS,
    ),
    Case(
        T,
        "lop_cua_toi",
        params=(("lop", "class:DH02/1A"),),
        see=("code:DH01/1A",),
        hide=DH02,
        say=NOT_CLASS,
    ),
    *(refused(u, "lop_cua_toi") for u in (P, C, OF, A)),
    # ---- records: the linked record opens in scope, never outside it
    Case(T, "hoc_ba", params=(("hoc_ba", "id:DH01/1A"),), see=("name:DH01/1A",)),
    Case(T, "hoc_ba", params=(("hoc_ba", "id:DH01/2A"),), hide=("code:DH01/2A",), say=NOT_OPEN),
    Case(T, "hoc_ba", params=(("ma", "code:DH01/2A"),), hide=("code:DH01/2A",), say=NOT_FOUND),
    Case(T, "hoc_ba", params=(("ma", "code:DH01/1A"),), see=("code:DH01/1A",)),
    Case(P, "hoc_ba", params=(("ma", "code:DH01/2A"),), see=("code:DH01/2A",)),
    Case(P, "hoc_ba", params=(("ma", "code:DH02/1A"),), hide=DH02, say=NOT_FOUND),
    Case(P, "hoc_ba", params=(("hoc_ba", "id:DH02/1A"),), hide=DH02, say=NOT_OPEN),
    Case(C, "hoc_ba", params=(("hoc_ba", "id:DH02/2A"),), hide=DH02, say=NOT_OPEN),
    Case(OF, "hoc_ba", params=(("hoc_ba", "id:DH01/2A"),), see=("name:DH01/2A",)),
    Case(OF, "hoc_ba", params=(("ma", "code:DH02/2A"),), hide=DH02, say=NOT_FOUND),
    Case(OF2, "hoc_ba", params=(("hoc_ba", "id:DH01/1A"),), hide=DH01, say=NOT_OPEN),
    Case(A, "hoc_ba", params=(("hoc_ba", "id:DH02/1A"),), see=("name:DH02/1A",)),
    # ---- verification: anyone signed in (a lookup code is the key, HOCBA_SPEC §7)
    *(Case(u, "kiem_tra", see=("Kiểm tra học bạ số",)) for u in (T, P, C, OF, A)),
    # ---- administration: officers (their schools' staff) and the administrator
    Case(OF, "quan_tri", see=("staff:dh01.ht",), hide=("staff:dh02.ht", "school:DH02")),
    Case(OF2, "quan_tri", see=("staff:dh02.ht",), hide=("staff:dh01.ht", "school:DH01")),
    Case(A, "quan_tri", see=("staff:dh01.ht", "staff:dh02.ht")),
    *(refused(u, "quan_tri") for u in (T, P, C)),
    # ---- notifications: my messages (and my schools')
    Case(T, "thong_bao", see=("msg:dh01.gv1a",), hide=("msg:dh01.gv2a", "msg:dh01.ht")),
    Case(P, "thong_bao", see=("msg:dh01.ht",), hide=("msg:dh02.ht",)),
    Case(P2, "thong_bao", see=("msg:dh02.ht",), hide=("msg:dh01.ht",)),
    Case(A, "thong_bao", see=("msg:dh01.ht", "msg:dh02.ht")),
    Case(OF2, "thong_bao", hide=("msg:dh01.ht", "msg:dh02.ht", "msg:dh01.gv1a")),
    Case(OF, "thong_bao", hide=("msg:dh01.ht", "msg:dh02.ht", "msg:dh01.gv1a")),
    Case(C, "thong_bao", hide=("msg:dh02.ht",)),
    # ---- transfers
    Case(
        P,
        "chuyen_truong",
        see=("transfer:DH01->DH02", "transfer:in@DH01"),
        hide=("transfer:review@DH02", "transfer:DH02->out"),
    ),
    Case(
        P,
        "chuyen_truong",
        params=(("truong", "DH02"),),
        see=("transfer:DH01->DH02",),
        hide=("transfer:review@DH02", "transfer:DH02->out"),
        say=NOT_SCHOOL.format("DH02"),
    ),
    Case(
        P2,
        "chuyen_truong",
        see=("transfer:DH01->DH02", "transfer:review@DH02", "transfer:DH02->out"),
        hide=("transfer:in@DH01",),
    ),
    Case(C, "chuyen_truong", see=("transfer:DH01->DH02",), hide=("transfer:review@DH02",)),
    Case(
        OF,
        "chuyen_truong",
        see=("transfer:in@DH01",),
        hide=("transfer:review@DH02", "transfer:DH02->out"),
    ),
    Case(
        OF2,
        "chuyen_truong",
        params=(("truong", "DH01"),),
        see=("transfer:review@DH02",),
        hide=("transfer:in@DH01",),
        say=NOT_SCHOOL.format("DH01"),
    ),
    Case(
        A,
        "chuyen_truong",
        params=(("truong", "DH02"),),
        see=("transfer:review@DH02",),
        hide=("transfer:in@DH01",),
    ),
    refused(T, "chuyen_truong"),
]


def _resolve(world: dict[str, Any], key: str) -> str:
    return str(world[key]) if key in world else key


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_page_by_role(case: Case, run_page, world) -> None:  # type: ignore[no-untyped-def]
    params = {k: _resolve(world, v) for k, v in case.params}
    at = run_page(case.user, case.page, **params)
    assert not at.exception, at.exception
    shown = content(at)
    for key in case.see:
        assert _resolve(world, key) in shown, f"{key} missing"
    for key in case.hide:
        assert _resolve(world, key) not in shown, f"{key} shown"
    if case.say:
        assert case.say in shown
    if case.say in (NO_RIGHT, SIGNED_OUT):  # a refusal shows nothing else of the page
        assert [e.value for e in at.title] == []
        assert not at.dataframe and not at.metric


def test_every_page_and_role_is_covered() -> None:
    users = {None, T, P, C, OF, A}
    covered = {(c.user, c.page) for c in CASES}
    missing = {(u, p) for u in users for p in PAGES} - covered
    assert not missing, sorted(missing, key=str)


MENUS = {
    T: {"Lớp của tôi", "Học bạ", "Kiểm tra", "Thông báo"},
    P: {"Trường", "Hàng chờ ký", "Chuyển trường", "Học bạ", "Kiểm tra", "Thông báo"},
    C: {"Trường", "Đóng dấu, phát hành", "Chuyển trường", "Học bạ", "Kiểm tra", "Thông báo"},
    OF: {"Huyện", "Trường", "Chuyển trường", "Học bạ", "Kiểm tra", "Thông báo", "Quản trị"},
    A: {"Huyện", "Trường", "Chuyển trường", "Học bạ", "Kiểm tra", "Thông báo", "Quản trị"},
}


@pytest.mark.parametrize("user", [None, *MENUS])
def test_the_menu_lists_the_pages_of_the_role(user, shared_district, world, app_env) -> None:  # type: ignore[no-untyped-def]
    """Signing in through the app shows exactly the pages of the role (signed out: the
    sign-in form and nothing else)."""
    app_env(shared_district.schema)
    if user is None:
        at = AppTest.from_file(str(APP), default_timeout=60).run()
        assert [t.value for t in at.title] == ["Học bạ số cấp tiểu học"]
        for page in PAGES:
            with pytest.raises(ValueError):
                at.switch_page(f"views/{page}.py")
        return
    at = signed_in(user)
    assert not at.exception
    allowed = {f"views/{p}.py" for p in PAGES}
    reachable = set()
    for page in sorted(allowed):
        try:
            at.switch_page(page)
        except ValueError:
            continue
        reachable.add(page)
    titles = {
        "huyen": "Huyện",
        "truong": "Trường",
        "hang_cho_ky": "Hàng chờ ký",
        "dong_dau": "Đóng dấu, phát hành",
        "lop_cua_toi": "Lớp của tôi",
        "hoc_ba": "Học bạ",
        "kiem_tra": "Kiểm tra",
        "quan_tri": "Quản trị",
        "thong_bao": "Thông báo",
        "chuyen_truong": "Chuyển trường",
    }
    assert {titles[Path(p).stem] for p in reachable} == MENUS[user]


def test_notification_channels_admin_adds_officers_see_their_staff(run_page, world) -> None:  # type: ignore[no-untyped-def]
    """The administrator adds a channel (URL kept secret); a district officer sees the
    channels of their schools' staff, masked, and cannot add; another district's officer
    cannot even pick the person."""
    ht = world["staff"]["dh01.ht"]
    at = run_page(A, "quan_tri")
    at.selectbox(key="qt_channel_staff").set_value(ht).run()
    url_box = next(t for t in at.text_input if t.label == "Địa chỉ kênh (Apprise)")
    url_box.input("khong-phai-url")
    at = next(b for b in at.button if b.label == "Thêm kênh").click().run()
    assert "Apprise không hiểu URL này" in content(at)
    url_box = next(t for t in at.text_input if t.label == "Địa chỉ kênh (Apprise)")
    url_box.input("mailto://ht:BiMat123@mail.example.vn?to=ht@truong.example.vn")
    at = next(b for b in at.button if b.label == "Thêm kênh").click().run()
    assert not at.exception, at.exception
    shown = content(at)
    assert "Đã thêm kênh thông báo" in shown and "mailto" in shown and "BiMat123" not in shown

    at = run_page(OF, "quan_tri")
    at.selectbox(key="qt_channel_staff").set_value(ht).run()
    shown = content(at)
    assert "mailto" in shown and "BiMat123" not in shown
    assert not any(t.label == "Địa chỉ kênh (Apprise)" for t in at.text_input)
    at = run_page(OF2, "quan_tri")
    options = " ".join(at.selectbox(key="qt_channel_staff").options)
    assert "(dh02.ht)" in options and "(dh01.ht)" not in options
