"""Học bạ số — the dashboard (``streamlit run hocba/dashboard/app.py``).

The entry point signs the person in and shows the pages their roles need, one page per
job (ARCHITECTURE "people decide in the dashboard"). Each page checks the permission
again on every run, and every query is scoped on the server side
(:mod:`hocba.models.queries`), so a page that is not in the menu shows nothing either.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from hocba.dashboard import auth
from hocba.logs import configure

configure()  # personal IDs masked in every log line, libraries quiet
HERE = Path(__file__).parent
VIEWS = HERE / "views"

st.set_page_config(page_title="Học bạ số", page_icon="📘", layout="wide")
try:  # no "Deploy" button and developer menu for the people using it
    st.set_option("client.toolbarMode", "viewer")
except Exception:  # noqa: BLE001 - an option Streamlit no longer accepts at run time
    pass


def _page(name: str, title: str, icon: str) -> st.Page:
    return st.Page(VIEWS / f"{name}.py", title=title, icon=icon, url_path=name)


viewer = auth.current_viewer()
if viewer is None:
    nav = st.navigation([st.Page(auth.login_page, title="Đăng nhập", icon=":material/login:")])
    nav.run()
    st.stop()

school_roles = ("principal", "vice_principal", "clerk", "district_officer")
sections: dict[str, list[st.Page]] = {}
work: list[st.Page] = []
if viewer.admin or viewer.has_role("district_officer"):
    work.append(_page("huyen", "Huyện", ":material/map:"))
if viewer.admin or viewer.has_role(*school_roles):
    work.append(_page("truong", "Trường", ":material/school:"))
if viewer.has_role("principal", "vice_principal"):
    work.append(_page("hang_cho_ky", "Hàng chờ ký", ":material/draw:"))
if viewer.has_role("clerk"):
    work.append(_page("dong_dau", "Đóng dấu, phát hành", ":material/approval:"))
if viewer.has_role("homeroom_teacher"):
    work.append(_page("lop_cua_toi", "Lớp của tôi", ":material/groups:"))
if viewer.admin or viewer.has_role(*school_roles):
    work.append(_page("chuyen_truong", "Chuyển trường", ":material/swap_horiz:"))
if work:
    sections["Công việc"] = work
records: list[st.Page] = []
if viewer.admin or viewer.has_role(*school_roles, "homeroom_teacher"):
    records.append(_page("hoc_ba", "Học bạ", ":material/search:"))
records.append(_page("kiem_tra", "Kiểm tra", ":material/verified:"))
sections["Học bạ"] = records
sections["Nhắc việc"] = [_page("thong_bao", "Thông báo", ":material/notifications:")]
if viewer.admin or viewer.has_role("district_officer"):
    sections["Hệ thống"] = [_page("quan_tri", "Quản trị", ":material/settings:")]

with st.sidebar:
    st.markdown(f"**{viewer.name}**  \n`{viewer.username}`")
    for line in auth.roles_summary(viewer, auth.school_codes()):
        st.caption(line)
    if st.button("Đăng xuất", key="sign_out"):
        auth.sign_out()
        st.rerun()

nav = st.navigation(sections)
nav.run()
