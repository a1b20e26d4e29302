"""Signing from the dashboard: one confirmation signs the whole selection.

The person types the passphrase of their key once, in a form that clears itself; the key
is opened for that one run (:class:`hocba.pki.signer.SoftwareSigner`) and the selection
is signed through :func:`hocba.tasks.issuance.sign_batch` in chunks (one transaction
each), with a progress bar and a per-record result at the end. The passphrase is never
put in the session state, the audit log or a message.

The principal's queue (CBQL) and the clerk's sealing queue (KY_PHAT_HANH) are the same
page, :func:`queue_page`; the teacher signs their class from their own page with
:func:`sign_selection` too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from hocba.config import load_settings
from hocba.dashboard import logic
from hocba.dashboard.common import flash, forget_view, pick_school, session, show_flash
from hocba.dashboard.record_view import show_record
from hocba.errors import HocbaError
from hocba.models import certificates, queries
from hocba.models.lifecycle import transition
from hocba.models.queries import CBQL_ROLES, SEAL_ROLES, Viewer

CHUNK = 50
OK_PREFIX = "Đã "
SLOT_WORDS = {
    "GVCN": ("ký", "Ký"),
    "CBQL": ("ký", "Ký"),
    "KY_PHAT_HANH": ("đóng dấu phát hành", "Đóng dấu phát hành"),
}


class SignerUnavailable(HocbaError):
    """The key cannot be opened here; the message (Vietnamese) says what to do."""


def registered_key(viewer: Viewer, slot: str, school_code: str) -> Any:
    """The registered certificate to sign ``slot`` with (the one decision,
    :func:`hocba.pki.backends.signing_key`): the person's own, or the school's approved
    organisation certificate for the seal."""
    from hocba.pki.backends import NoSigningKey, signing_key

    try:
        with session() as s:
            return signing_key(s, slot, school_code, viewer.staff_id).registered
    except NoSigningKey as exc:
        raise SignerUnavailable(exc.message_vi) from None


def open_signer(key: Any, passphrase: str) -> Any:
    """Open the registered key with the passphrase typed by the person."""
    from hocba.pki.signer import SigningError, SoftwareSigner

    ref = key.key_ref or ""
    if not ref or not Path(ref).is_file():
        raise SignerUnavailable(
            "Khóa ký của chứng thư này nằm trên USB token hoặc dịch vụ ký số từ xa, chưa ký "
            "được trên trang web. Hãy ký bằng lệnh `hocba sign` trên máy cắm token."
        )
    if not passphrase:
        raise SignerUnavailable("Hãy nhập mật khẩu tệp khóa (hoặc mã PIN) rồi bấm ký lại.")
    try:
        return SoftwareSigner.from_pkcs12(ref, passphrase)
    except SigningError as exc:
        raise SignerUnavailable(
            f"{exc.message_vi} Hãy nhập lại mật khẩu tệp khóa rồi bấm ký lại."
        ) from None


def sign_selection(
    viewer: Viewer,
    slot: str,
    school_code: str,
    ids: list[int],
    passphrase: str,
    labels: dict[int, dict[str, Any]],
    key: Any = None,
) -> list[dict[str, Any]] | None:
    """Sign ``ids`` in ``slot`` with one confirmation, showing progress; returns one
    result row per record (None when nothing could start: the error is shown). ``key`` is
    the registered software key chosen (default: the newest registered one)."""
    from hocba.tasks.issuance import IssuanceError, sign_batch, trust_anchors

    verb = SLOT_WORDS[slot][0]
    try:
        signer = open_signer(key or registered_key(viewer, slot, school_code), passphrase)
    except SignerUnavailable as exc:
        st.error(str(exc))
        return None
    anchors = trust_anchors(load_settings().home) if slot == "KY_PHAT_HANH" else []
    ok: list[int] = []
    failed: dict[int, str] = {}
    stopped: str | None = None
    with st.status(f"Đang {verb} {len(ids)} học bạ…", expanded=True) as status:
        bar = st.progress(0.0, text=f"0/{len(ids)}")
        done = 0
        for part in logic.chunks(ids, CHUNK):
            try:
                with session() as s:
                    res = sign_batch(s, part, slot, viewer.actor, signer, trust_anchors=anchors)
            except IssuanceError as exc:
                stopped = exc.message_vi
                break
            ok += res.ok
            failed.update(res.failed)
            done += len(part)
            bar.progress(done / len(ids), text=f"{done}/{len(ids)} học bạ")
        if stopped:
            status.update(label=f"Dừng: {stopped}", state="error")
        else:
            status.update(
                label=f"Đã {verb} {len(ok)}/{len(ids)} học bạ"
                + (f"; {len(failed)} không {verb} được" if failed else ""),
                state="complete" if not failed else "error",
            )
    if stopped:
        st.error(stopped)
    results = []
    for rid in ids:
        info = labels.get(rid, {})
        outcome = (
            OK_PREFIX + verb
            if rid in ok
            else "Không " + verb + " được: " + failed.get(rid, stopped or "đã dừng")
        )
        results.append(
            {
                "Học sinh": info.get("full_name", f"#{rid}"),
                "Lớp": info.get("class_name", ""),
                "Kết quả": outcome,
            }
        )
    return results


BACKEND_LABELS = {
    "SOFTWARE": "Tệp khóa (nhập mật khẩu tệp khóa)",
    "REMOTE_SIGNING": "Ký số từ xa (xác nhận trên điện thoại)",
    "USB_TOKEN": "USB token (chương trình ký «hocba agent» trên máy của bạn)",
    "HSM": "Thiết bị HSM (chương trình ký «hocba agent»)",
}
WAITING = {
    "queued": "Đang bắt đầu phiên ký…",
    "running": "Đang chuẩn bị ký…",
    "waiting_confirmation": "Đang chờ xác nhận trên điện thoại: mở ứng dụng ký số (SmartCA, "
    "MySign…) và xác nhận yêu cầu «{what}». Một lần xác nhận cho cả lô.",
    "waiting_agent": "Đang chờ USB token: chương trình ký «hocba agent» trên máy của bạn sẽ ký "
    "«{what}» (chạy `hocba agent run` và nhập mã PIN nếu chưa chạy).",
}


def registered_keys(viewer: Viewer, slot: str, school_code: str) -> list[dict[str, Any]]:
    """Every approved certificate the person may sign ``slot`` with, newest first, with
    how its key is held (``kind``): the backends offered on the page."""
    from sqlalchemy import text

    with session() as s:
        rows = (
            s.connection()
            .execute(
                text(
                    "SELECT c.id, c.kind, c.provider, c.key_ref, c.sha256, c.status, c.der "
                    "FROM certificate c LEFT JOIN school sc ON sc.id = c.school_id "
                    "WHERE c.status = 'approved' AND "
                    + ("sc.code = :sc" if slot == "KY_PHAT_HANH" else "c.staff_id = :st")
                    + " ORDER BY c.id DESC"
                ),
                {"sc": school_code, "st": viewer.staff_id},
            )
            .mappings()
            .all()
        )
    return [dict(r) for r in rows if r["kind"] in BACKEND_LABELS]


def backend_choice(viewer: Viewer, slot: str, school_code: str, page: str) -> dict[str, Any] | None:
    """The registered key to sign with: the person picks one when they have several."""
    keys = registered_keys(viewer, slot, school_code)
    if not keys:
        try:
            registered_key(viewer, slot, school_code)  # says what is missing
        except SignerUnavailable as exc:
            st.error(str(exc))
        return None
    kinds = {k["kind"] for k in keys}
    options = [
        next(k for k in keys if k["kind"] == kind) for kind in BACKEND_LABELS if kind in kinds
    ]
    if len(options) == 1:
        st.caption("Ký bằng: " + BACKEND_LABELS[options[0]["kind"]])
        return options[0]
    return st.radio(  # type: ignore[no-any-return]
        "Ký bằng",
        options,
        format_func=lambda k: BACKEND_LABELS[k["kind"]],
        key=f"{page}_backend",
    )


def passphrase_input(key: dict[str, Any], widget_key: str) -> str:
    """The passphrase field for a software key (nothing to type for the other backends:
    the phone or the agent asks)."""
    if key["kind"] != "SOFTWARE":
        st.caption(
            "Không cần nhập gì ở đây: bạn xác nhận trên điện thoại."
            if key["kind"] == "REMOTE_SIGNING"
            else "Mã PIN chỉ nhập ở chương trình ký trên máy của bạn, không nhập trên trang web."
        )
        return ""
    return st.text_input(
        "Mật khẩu tệp khóa / mã PIN",
        type="password",
        key=widget_key,
        help="Chỉ dùng cho lần ký này, không được lưu.",
    )


def sign_with(
    viewer: Viewer,
    slot: str,
    school_code: str,
    ids: list[int],
    key: dict[str, Any],
    passphrase: str,
    labels: dict[int, dict[str, Any]],
    page: str,
) -> list[dict[str, Any]] | None:
    """Sign ``ids`` with the chosen key: a software key here and now (the passphrase is
    the person's, typed for this one batch); a remote service or a token through a
    signing session and its Prefect flow run, which :func:`follow_session` shows."""
    from hocba.flows.signing_session import start
    from hocba.models import signing_sessions

    if key["kind"] == "SOFTWARE":
        software = certificates.RegisteredCertificate(
            key["id"], key["sha256"], key["status"], key["key_ref"], bytes(key["der"])
        )
        return sign_selection(viewer, slot, school_code, ids, passphrase, labels, software)
    try:
        with session() as s:
            sid = signing_sessions.create(
                s,
                staff_id=viewer.staff_id,
                school_code=school_code,
                slot=slot,
                certificate_id=key["id"],
                record_ids=ids,
            )
    except signing_sessions.SessionError as exc:
        st.error(str(exc))
        return None
    start(sid, load_settings().home / "logs")
    st.session_state[f"{page}_session"] = sid
    st.rerun()
    return None  # pragma: no cover - st.rerun does not return


def _names(ids: list[int]) -> dict[int, tuple[str, str]]:
    from sqlalchemy import text

    with session() as s:
        rows = s.connection().execute(
            text(
                "SELECT r.id, p.full_name, c.name FROM hoc_ba r JOIN pupil p ON p.id = r.pupil_id "
                "JOIN school_class c ON c.id = r.class_id WHERE r.id = ANY(:ids)"
            ),
            {"ids": ids},
        )
        return {rid: (name, klass) for rid, name, klass in rows}


def _session_rows(g: Any, verb: str) -> list[dict[str, Any]]:
    names = _names(g.record_ids)
    rows = []
    for rid in g.record_ids:
        outcome = g.outcome(rid)
        rows.append(
            {
                "Học sinh": names.get(rid, (f"#{rid}", ""))[0],
                "Lớp": names.get(rid, ("", ""))[1],
                "Kết quả": OK_PREFIX + verb
                if outcome == "ok"
                else ("Không " + verb + " được: " + outcome)
                if outcome
                else "Đang chờ",
            }
        )
    return rows


def _silent(moment: Any) -> float:
    """Seconds since ``moment`` (negative: still to come)."""
    import datetime as dt

    return (dt.datetime.now(dt.UTC) - moment).total_seconds()


def follow_session(page: str, results_key: str) -> None:
    """Live state of the signing session started on this page (read from the database
    every second): waiting for the phone or the token, then each record's result."""
    from hocba.flows.signing_session import confirm_timeout
    from hocba.models import signing_sessions

    sid = st.session_state.get(f"{page}_session")
    if sid is None:
        return

    @st.fragment(run_every=1.0)
    def live() -> None:
        with session() as s:
            g = signing_sessions.read(s, sid)
        if g is None:
            st.session_state.pop(f"{page}_session", None)
            return
        verb = SLOT_WORDS[g.slot][0]
        if g.finished:
            st.session_state.pop(f"{page}_session", None)
            st.session_state[results_key] = _session_rows(g, verb)
            flash(g.message or "", "success" if g.state == "done" else "error")
            forget_view(page)
            st.rerun()
        what = f"Ký {len(g.record_ids)} học bạ số ({g.full_name})"
        left = -_silent(g.wait_until) if g.wait_until is not None else None
        st.warning(
            WAITING[g.state].format(what=what)
            + (f" Còn {left:.0f} giây." if left is not None and left > 0 else "")
        )
        if g.updated_at is not None and _silent(g.updated_at) > confirm_timeout() + 60:
            st.error(
                f"Phiên ký #{g.id} không có phản hồi từ máy chạy (Prefect worker) đã lâu. "
                "Các học bạ chưa ký vẫn ở hàng chờ; hãy báo quản trị hệ thống."
            )
            if st.button("Bỏ theo dõi phiên ký này", key=f"{page}_forget_session"):
                st.session_state.pop(f"{page}_session", None)
                st.rerun()
        done = sum(1 for r in g.record_ids if g.outcome(r) is not None)
        st.progress(done / len(g.record_ids), text=f"{done}/{len(g.record_ids)} học bạ")
        st.dataframe(pd.DataFrame(_session_rows(g, verb)), hide_index=True, width="stretch")

    live()


def show_results(key: str) -> None:
    """The per-record result of the last signing on this page, if any."""
    results = st.session_state.get(key)
    if not results:
        return
    n_ok = sum(1 for r in results if r["Kết quả"].startswith(OK_PREFIX))
    with st.expander(f"Kết quả lần ký gần nhất: {n_ok}/{len(results)} thành công", expanded=True):
        st.dataframe(pd.DataFrame(results), hide_index=True, width="stretch")
        if st.button("Đóng kết quả", key=f"close_{key}"):
            st.session_state.pop(key, None)
            st.rerun()


def _timestamp_waiting(school: dict[str, Any]) -> None:
    """How many of the school's signed records still wait for an RFC 3161 timestamp."""
    from hocba.tasks.long_term import waiting_count

    with session() as s:
        waiting = waiting_count(s, [school["code"]])
    if waiting:
        st.info(
            f"{waiting} học bạ đã ký đang chờ dấu thời gian (máy chủ dấu thời gian gián đoạn "
            "lúc ký): chữ ký vẫn hợp lệ, hệ thống tự bổ sung khi máy chủ hoạt động lại."
        )


def queue_page(slot: str) -> None:
    """The signing queue of the principal (CBQL) or the clerk's sealing queue."""
    from hocba.dashboard.auth import require

    roles = CBQL_ROLES if slot == "CBQL" else SEAL_ROLES
    viewer = require(*roles, admin=False)
    verb, Verb = SLOT_WORDS[slot]
    page = f"queue_{slot}"
    title = "Hàng chờ ký" if slot == "CBQL" else "Đóng dấu và phát hành"
    st.title(title)
    st.caption(
        "Học bạ GVCN đã ký, chờ Hiệu trưởng ký số. Hạn gần nhất lên trước."
        if slot == "CBQL"
        else "Học bạ Hiệu trưởng đã ký, chờ văn thư đóng dấu (chứng thư số của trường). "
        "Đóng dấu là phát hành: học bạ được cấp mã tra cứu và khóa vĩnh viễn."
    )
    school = pick_school(viewer, viewer.schools_with(roles), key=f"{page}_school")
    if school is None:
        st.info("Bạn không được phân công ký ở trường nào.")
        return
    results_key = f"{page}_results"
    show_flash()
    follow_session(page, results_key)
    show_results(results_key)

    if slot == "KY_PHAT_HANH":
        _submission_panel(viewer, school)
        _timestamp_waiting(school)
    with session() as s:
        everything = queries.signing_queue(s, viewer, slot, school["id"])
    if not everything:
        st.success(f"Không còn học bạ nào chờ {verb} ở {school['name']}.")
        return
    classes = sorted({r["class_name"] for r in everything}, key=lambda c: (len(c), c))
    grades = sorted({r["grade"] for r in everything})
    c1, c2, c3 = st.columns([2, 1, 1])
    class_filter = c1.multiselect("Lớp", classes, key=f"{page}_classes", placeholder="Mọi lớp")
    grade_filter = c2.selectbox(
        "Khối",
        [None, *grades],
        format_func=lambda g: "Mọi khối" if g is None else f"Khối {g}",
        key=f"{page}_grade",
    )
    flagged_only = c3.checkbox("Chỉ học bạ có cảnh báo TT27", key=f"{page}_flagged")
    rows = [
        r
        for r in everything
        if (not class_filter or r["class_name"] in class_filter)
        and (grade_filter is None or r["grade"] == grade_filter)
        and (not flagged_only or r["flags"])
    ]
    soonest = min(r["deadline"] for r in everything)
    m1, m2, m3 = st.columns(3)
    m1.metric("Đang chờ " + verb, len(everything))
    m2.metric("Hạn gần nhất", logic.fmt_date(soonest))
    m3.metric("Có cảnh báo TT27", sum(1 for r in everything if r["flags"]))

    frame = pd.DataFrame(
        [
            {
                "Học sinh": r["full_name"],
                "Lớp": r["class_name"],
                "Kết quả": r["computed_result"],
                "Cảnh báo": f"{r['flags']} cảnh báo" if r["flags"] else "",
                "GVCN": r["teacher"],
                "Hạn nộp": logic.fmt_date(r["deadline"]),
                "Chờ từ": logic.fmt_date(r["waiting_since"]),
            }
            for r in rows
        ]
    )
    mode = st.radio(
        "Chọn học bạ",
        ["all", "one_by_one"],
        format_func=lambda m: {
            "all": f"Tất cả học bạ đang lọc ({len(rows)})",
            "one_by_one": "Chọn từng học bạ trong bảng",
        }[m],
        horizontal=True,
        key=f"{page}_mode",
    )
    if mode == "one_by_one":
        event = st.dataframe(
            frame,
            hide_index=True,
            width="stretch",
            on_select="rerun",
            selection_mode="multi-row",
            key=f"{page}_table",
        )
        positions = list(getattr(getattr(event, "selection", None), "rows", []) or [])
        selected = [rows[i]["id"] for i in positions if i < len(rows)]
    else:
        st.dataframe(frame, hide_index=True, width="stretch")
        selected = [r["id"] for r in rows]

    _preview(viewer, slot, rows, page)

    shown_key = f"{page}_shown"
    confirmed = st.session_state.get(shown_key, [])
    st.subheader(f"{Verb} {len(selected)} học bạ đã chọn")
    key = backend_choice(viewer, slot, school["code"], page)
    if key is None:
        return
    busy = st.session_state.get(f"{page}_session") is not None
    with st.form(f"{page}_confirm", clear_on_submit=True):
        n_classes = len({r["class_name"] for r in rows if r["id"] in set(selected)})
        st.write(
            f"Bạn sắp {verb} **{len(selected)} học bạ** của **{n_classes} lớp** "
            f"({school['name']}) bằng "
            + ("chứng thư số của trường" if slot == "KY_PHAT_HANH" else "chứng thư số của bạn")
            + f" ({BACKEND_LABELS[key['kind']].lower()}). Một lần xác nhận cho cả lựa chọn."
        )
        passphrase = passphrase_input(key, f"{page}_passphrase")
        submit = st.form_submit_button(
            f"{Verb} {len(selected)} học bạ", type="primary", disabled=not selected or busy
        )
    st.session_state[shown_key] = selected
    if submit:
        ids = [i for i in confirmed if i in {r["id"] for r in everything}] or selected
        labels = {r["id"]: r for r in everything}
        results = sign_with(viewer, slot, school["code"], ids, key, passphrase, labels, page)
        del passphrase
        if results is not None:
            st.session_state[results_key] = results
            forget_view(page)
            st.rerun()


def _preview(viewer: Viewer, slot: str, rows: list[dict[str, Any]], page: str) -> None:
    """Open one record as it will print; the principal may return it to the teacher."""
    with st.expander("Xem một học bạ (như khi in) — hoặc trả lại GVCN", expanded=False):
        options = [None, *[r["id"] for r in rows]]
        names = {r["id"]: f"{r['full_name']} — lớp {r['class_name']}" for r in rows}
        rid = st.selectbox(
            "Học bạ",
            options,
            format_func=lambda i: "— chọn học bạ —" if i is None else names[i],
            key=f"{page}_open",
        )
        if rid is None:
            forget_view(page)
            return
        with session() as s:
            row = queries.record_document_row(s, viewer, rid)
        if row is None:
            st.warning("Học bạ này không còn trong hàng chờ của bạn. Hãy tải lại trang.")
            return
        for line in logic.flag_lines(row.get("flag_list")):
            st.warning(line)
        show_record(viewer, row, page, may_reveal_id=True)
        if slot != "CBQL":
            st.caption("Nếu học bạ có sai sót, hãy báo Hiệu trưởng để trả lại GVCN sửa.")
            return
        with st.form(f"{page}_return", clear_on_submit=True):
            reason = st.text_area("Lý do trả lại (GVCN sẽ thấy lý do này)")
            back = st.form_submit_button("Trả lại GVCN")
        if back:
            if not reason.strip():
                st.error("Hãy ghi rõ lý do trả lại để GVCN biết cần sửa gì.")
                return
            with session() as s:
                res = transition(s, [rid], "principal_return", viewer.actor, reason=reason)
            if res.failed:
                st.error(res.failed[rid])
            else:
                flash(f"Đã trả học bạ của {names[rid]} về GVCN; GVCN sẽ sửa và ký lại.")
                forget_view(page)
                st.session_state.pop(f"{page}_open", None)
                st.rerun()


def _send_now_form(viewer: Viewer, school: dict[str, Any]) -> None:
    """Send the school's issued records now (what the nightly flow does), the transactions
    signed with the seal whose passphrase the clerk types here."""
    from hocba import db
    from hocba.portal.client import PortalError, PortalUnavailable
    from hocba.tasks.submission import configured_client, submit_and_collect

    with st.form(f"send_{school['code']}", clear_on_submit=True):
        passphrase = st.text_input(
            "Mật khẩu tệp khóa con dấu", type="password", key=f"send_{school['code']}_pass"
        )
        again = st.checkbox(
            "Gửi lại cả các học bạ bị Sở từ chối (chỉ khi lỗi là lỗi kỹ thuật đã khắc phục; "
            "sai nội dung thì lập yêu cầu chỉnh lý)"
        )
        go = st.form_submit_button("Gửi Sở ngay")
    if not go:
        return
    if not passphrase:
        st.error("Hãy nhập mật khẩu tệp khóa con dấu rồi bấm «Gửi Sở ngay».")
        return
    try:
        seal = open_signer(registered_key(viewer, "KY_PHAT_HANH", school["code"]), passphrase)
    except SignerUnavailable as exc:
        st.error(str(exc))
        return
    with st.status("Đang gửi lên cổng của Sở và lấy kết quả…", expanded=False) as status:
        try:
            with configured_client(school["code"], seal) as client:
                line = submit_and_collect(db.session_scope, school["code"], client, again)
        except PortalUnavailable as exc:
            status.update(label="Cổng của Sở chưa trả lời", state="error")
            st.error(f"{exc.message_vi} Hãy thử lại sau ít phút.")
            return
        except PortalError as exc:  # refused: account, certificate, content
            status.update(label="Cổng của Sở từ chối", state="error")
            st.error(f"{exc.message_vi} Hãy báo quản trị hệ thống hoặc Sở GDĐT.")
            return
        if "chưa được Sở phê duyệt" in line:
            status.update(label="Chưa gửi được", state="error")
            st.error(f"{line} Hãy liên hệ Sở GDĐT để duyệt chứng thư số của trường.")
            return
        status.update(label="Đã gửi", state="complete")
    flash(f"Gửi Sở: {line}")
    st.rerun()


def _submission_panel(viewer: Viewer, school: dict[str, Any]) -> None:
    """Where the school's issued records stand at the Sở portal; the records it rejected
    with the portal's reason (the notifications link here with ``?trang_thai=rejected``).
    Sending runs on its own (the nightly submission flow, or ``hocba submit``); the clerk
    can also send now, signing with the seal."""
    from hocba.dashboard.common import url_param

    with session() as s:
        status = queries.submission_status(s, viewer, school["id"])
        rejected = queries.rejected_records(s, viewer, school["id"])
    if not status:
        return
    linked = url_param("trang_thai") == "rejected"
    label = (
        f"Gửi Sở: {status['issued']} chờ gửi, {status['submitted']} chờ Sở trả lời, "
        f"{status['accepted']} Sở đã tiếp nhận, {status['rejected']} bị từ chối"
    )
    with st.expander(label, expanded=linked or bool(rejected)):
        st.caption(
            "Học bạ đã phát hành được gửi lên cổng của Sở tự động theo lịch (hoặc bằng lệnh "
            "`hocba submit --school " + school["code"] + "`); kết quả tiếp nhận được cập nhật "
            "ở đây. Cần gửi ngay thì ký giao dịch bằng con dấu của trường:"
        )
        _send_now_form(viewer, school)
        if not rejected:
            st.caption("Không có học bạ nào bị Sở từ chối.")
            return
        st.warning(
            f"{len(rejected)} học bạ bị Sở từ chối. Lỗi kỹ thuật: gửi lại bằng "
            "`hocba submit --resubmit-rejected`; sai nội dung: lập yêu cầu chỉnh lý ở trang "
            "Học bạ."
        )
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "Học sinh": r["full_name"],
                        "Mã HS": r["pupil_code"],
                        "Lớp": r["class_name"],
                        "Năm học": r["school_year"],
                        "Lỗi": r["error"] or "",
                        "Trường dữ liệu": r["error_field_title"] or "",
                        "Mô tả của Sở": r["error_description"] or "",
                        "Ngày trả lời": logic.fmt_date(r["received_at"]),
                    }
                    for r in rejected
                ]
            ),
            hide_index=True,
            width="stretch",
        )
