"""Sign-in against the ``staff`` table, and the permission check every page makes.

Only the staff id is kept in the session (``st.session_state["staff_id"]``). On every run
the person is read again from the database (still active?) and their roles resolved for
today with :func:`hocba.models.lifecycle.load_grants`, so a role that ends or an account
that is deactivated takes effect at the next click, not at the next sign-in.

Passwords are checked with scrypt (:func:`hocba.models.org.check_password`). Sign-in with
the organisation's identity provider (OIDC, ``st.login``) is offered when
``.streamlit/secrets.toml`` has an ``[auth]`` section; the provider's e-mail must then be
the e-mail of an active staff member.
"""

from __future__ import annotations

from typing import Any

import streamlit as st
from sqlalchemy import Row, text

from hocba.dashboard.common import log_event, session
from hocba.models import org, queries
from hocba.models.queries import Viewer

STAFF_KEY = "staff_id"
WRONG_PASSWORD = "Sai tên đăng nhập hoặc mật khẩu. Hãy kiểm tra lại (chú ý chữ hoa, chữ thường)."


def authenticate(username: str, password: str) -> int | None:
    """The id of the active staff member with this username and password, else None."""
    username = (username or "").strip()
    if not username or not password:
        return None
    row = _active_staff("username = :v", username)
    if row is None:
        org.check_password(password, org.hash_password("x"))  # same time as a wrong password
        return None
    return int(row.id) if org.check_password(password, row.password_hash) else None


def _oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no secrets file at all
        return False


def _active_staff(condition: str, value: str) -> Row[Any] | None:
    """The id and password hash of an active staff member matching ``condition`` (SQL
    with the parameter ``:v``; usernames are unique, e-mails need not be), else None."""
    with session() as s:
        return (
            s.connection()
            .execute(
                text(f"SELECT id, password_hash FROM staff WHERE {condition} AND active"),
                {"v": value},
            )
            .first()
        )


def _staff_by_email(email: str) -> int | None:
    row = _active_staff("lower(email) = lower(:v)", email)
    return int(row.id) if row is not None else None


def current_viewer() -> Viewer | None:
    """The signed-in person, re-read from the database; None when nobody is signed in."""
    staff_id = st.session_state.get(STAFF_KEY)
    if staff_id is None and _oidc_configured() and getattr(st.user, "is_logged_in", False):
        email = st.user.get("email")
        staff_id = _staff_by_email(str(email)) if email else None
        if staff_id is not None:
            st.session_state[STAFF_KEY] = staff_id
    if staff_id is None:
        return None
    with session() as s:
        viewer = queries.viewer_for(s, int(staff_id))
    if viewer is None:  # deactivated meanwhile
        st.session_state.pop(STAFF_KEY, None)
    return viewer


def require(*roles: str, admin: bool = True) -> Viewer:
    """The signed-in viewer, who must hold one of ``roles`` somewhere (or be an
    administrator when ``admin``); otherwise the page stops with a message."""
    viewer = current_viewer()
    if viewer is None:
        st.warning("Phiên làm việc đã kết thúc. Hãy đăng nhập lại.")
        st.stop()
    if roles and not (viewer.has_role(*roles) or (admin and viewer.admin)):
        st.error("Bạn không có quyền xem trang này. Nếu cần, hãy liên hệ quản trị hệ thống.")
        st.stop()
    return viewer


def sign_out() -> None:
    st.session_state.clear()
    if _oidc_configured() and getattr(st.user, "is_logged_in", False):
        st.logout()


def login_page() -> None:
    """The sign-in form (the only page before signing in)."""
    st.title("Học bạ số cấp tiểu học")
    st.caption("Đăng nhập bằng tài khoản do nhà trường hoặc Phòng GDĐT cấp.")
    with st.form("login", clear_on_submit=False):
        username = st.text_input("Tên đăng nhập", key="login_username")
        password = st.text_input("Mật khẩu", type="password", key="login_password")
        submitted = st.form_submit_button("Đăng nhập", type="primary")
    if submitted:
        staff_id = authenticate(username, password)
        st.session_state.pop("login_password", None)
        if staff_id is None:
            st.error(WRONG_PASSWORD)
        else:
            st.session_state[STAFF_KEY] = staff_id
            with session() as s:
                viewer = queries.viewer_for(s, staff_id)
            if viewer is not None:
                log_event(viewer, "sign_in", school_code=None)
            st.rerun()
    if _oidc_configured():
        st.divider()
        if st.button("Đăng nhập bằng tài khoản của Sở/Phòng (SSO)"):
            st.login()
        if getattr(st.user, "is_logged_in", False) and st.session_state.get(STAFF_KEY) is None:
            st.error(
                "Tài khoản SSO này chưa gắn với cán bộ nào trong hệ thống (theo địa chỉ e-mail). "
                "Hãy đề nghị quản trị hệ thống cập nhật e-mail của bạn."
            )


def roles_summary(viewer: Viewer, schools: dict[int, str]) -> list[str]:
    """Human lines "Hiệu trưởng — DH01" for the sidebar."""
    from hocba.models.lifecycle_states import ROLE_LABELS

    lines: list[str] = ["Quản trị hệ thống"] if viewer.admin else []
    by_role: dict[str, list[str]] = {}
    for sid, held in viewer.roles.items():
        for role in held:
            by_role.setdefault(role, []).append(schools.get(sid, str(sid)))
    for role, codes in sorted(by_role.items()):
        shown = ", ".join(sorted(codes)[:4]) + (" …" if len(codes) > 4 else "")
        lines.append(f"{ROLE_LABELS.get(role, role)} — {shown}")
    return lines


def school_codes() -> dict[int, str]:
    with session() as s:
        return dict(s.connection().execute(text("SELECT id, code FROM school")).all())
