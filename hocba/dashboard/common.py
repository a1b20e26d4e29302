"""What every page shares: the database session, the audit of views, the school year
and school pickers, exports. Pages stay thin; the queries are in
:mod:`hocba.models.queries`."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import pandas as pd
import streamlit as st
from sqlmodel import Session

from hocba import db
from hocba.models import audit, queries
from hocba.models.lifecycle import VN_TZ
from hocba.models.queries import Viewer

K = TypeVar("K")


@contextmanager
def session() -> Iterator[Session]:
    """A short transaction (commit on success) on the configured database."""
    with db.session_scope() as s:
        yield s


def show_table(rows: Iterable[Mapping[str, Any]]) -> None:
    """Rows (one mapping a line, its keys the column titles) as a full-width table without
    the index column."""
    st.dataframe(pd.DataFrame(list(rows)), hide_index=True, width="stretch")


def choose(label: str, choices: Mapping[K, str], placeholder: str, key: str) -> K | None:
    """A select box that starts on ``placeholder`` (nothing chosen: ``None``), then offers
    ``choices`` (value -> what the person reads)."""
    return st.selectbox(
        label,
        [None, *choices],
        format_func=lambda k: placeholder if k is None else choices[k],
        key=key,
    )


def today() -> dt.date:
    return dt.datetime.now(VN_TZ).date()


def log_event(
    viewer: Viewer,
    action: str,
    *,
    school_code: str | None,
    record_id: int | None = None,
    payload: dict[str, Any] | None = None,
    reason: str | None = None,
) -> None:
    """Append one audit event as the viewer (school chain, or ``system``)."""
    with session() as s:
        audit.append(
            s,
            [
                audit.NewEvent(
                    chain=audit.school_chain(school_code) if school_code else "system",
                    actor=viewer.actor.label,
                    actor_id=viewer.staff_id,
                    action=action,
                    record_id=record_id,
                    reason=reason,
                    payload=payload or {},
                )
            ],
        )


def log_view(
    viewer: Viewer, record_id: int, school_code: str, page: str, *, personal_id: bool = False
) -> None:
    """Log that the viewer opened a record (once per opening: reruns of the page while
    the same record stays open are the same view). Revealing the full personal ID is an
    event of its own."""
    action = "view_personal_id" if personal_id else "view"
    key = f"_opened_{page}_{action}"
    if st.session_state.get(key) == record_id:
        return
    log_event(viewer, action, school_code=school_code, record_id=record_id, payload={"page": page})
    st.session_state[key] = record_id


def forget_view(page: str) -> None:
    """The record shown on ``page`` was closed: opening it again is a new view."""
    for action in ("view", "view_personal_id"):
        st.session_state.pop(f"_opened_{page}_{action}", None)


def flash(message: str, kind: str = "success") -> None:
    """A message shown once, after the next rerun (e.g. after an action)."""
    st.session_state["_flash"] = (kind, message)


def show_flash() -> None:
    kind, message = st.session_state.pop("_flash", (None, None))
    if message:
        getattr(st, kind)(message)


def pick_year(key: str = "year") -> dict[str, Any] | None:
    """The school year picker (newest first); None when there is no record at all."""
    with session() as s:
        years = queries.school_years(s)
    if not years:
        st.info("Chưa có học bạ nào. Hãy nhập dữ liệu (hocba import) và lập bản nháp trước.")
        return None
    if len(years) == 1:
        return years[0]
    return st.selectbox(
        "Năm học", years, format_func=lambda y: y["name"], key=key, help="Năm học cần xem"
    )


def url_param(name: str) -> str | None:
    """A query parameter of the page's URL (the links in notifications carry ``truong``,
    ``lop``...), stripped; None when absent or empty."""
    value = st.query_params.get(name)
    return value.strip() if value and value.strip() else None


def from_url(
    param: str,
    key: str,
    options: Sequence[Any],
    matches: Callable[[Any, str], bool],
    refusal: str,
) -> Any:
    """The option named by the URL's ``param``, among ``options`` (which the server
    already scoped to the viewer): preselected once in the widget ``key`` (the person may
    change it afterwards) and returned. A value outside the options is refused with
    ``refusal`` (``{value}`` is replaced), every run, and selects nothing: the URL never
    widens what a page shows."""
    value = url_param(param)
    if value is None:
        return None
    hit = next((o for o in options if matches(o, value)), None)
    if hit is None:
        st.warning(refusal.format(value=value))
        return None
    if st.session_state.get(f"_url_{key}") != value:  # once per link, not per rerun
        st.session_state[f"_url_{key}"] = value
        st.session_state[key] = hit
    return hit


NOT_YOUR_SCHOOL = (
    "Bạn không có quyền xem trường «{value}» (hoặc không có trường này). Trang chỉ hiển thị "
    "các trường trong phạm vi của bạn."
)


def pick_school(
    viewer: Viewer, allowed: list[int] | None = None, key: str = "school"
) -> dict[str, Any] | None:
    """A school the viewer sees whole (restricted to ``allowed`` ids when given); the
    URL's ``?truong=<code>`` preselects one of them."""
    with session() as s:
        schools = queries.visible_schools(s, viewer)
    if allowed is not None:
        schools = [x for x in schools if x["id"] in set(allowed)]
    from_url("truong", key, schools, lambda x, v: x["code"] == v.upper(), NOT_YOUR_SCHOOL)
    if not schools:
        return None
    if len(schools) == 1:
        return schools[0]
    return st.selectbox(
        "Trường", schools, format_func=lambda x: f"{x['code']} — {x['name']}", key=key
    )


def excel_bytes(frames: dict[str, Any]) -> bytes:
    """An .xlsx workbook with one sheet per data frame."""
    import pandas as pd

    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as writer:
        for name, frame in frames.items():
            frame.to_excel(writer, sheet_name=name[:31], index=False)
    return buf.getvalue()


def csv_bytes(frame: Any) -> bytes:
    """CSV in UTF-8 with a BOM, so that Excel opens the Vietnamese text correctly."""
    return frame.to_csv(index=False).encode("utf-8-sig")
