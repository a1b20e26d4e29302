"""Chuyển trường: the school's outgoing and incoming transfers, the manual review queue
(a package whose pupil does not match the pupil known under that ID, or with a record
whose checks could not all be made — INDETERMINATE), and the actions on top of
:mod:`hocba.tasks.transfer`: export a package, take one in, record a receipt, resolve a
review (take in after comparing the papers and looking into the unchecked items, or
refuse with a reason).

Principals, delegated vice principals and clerks act for their school; a district
officer and an administrator see the transfers of their schools without acting. The
list is scoped in SQL (:func:`hocba.models.queries.transfers`) and every action checks
the role again in :mod:`hocba.tasks.transfer`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pandas as pd
import streamlit as st

from hocba.config import load_settings
from hocba.dashboard import logic
from hocba.dashboard.auth import require
from hocba.dashboard.common import flash, pick_school, session, show_flash
from hocba.dashboard.signing import SignerUnavailable, open_signer, registered_key
from hocba.models import queries
from hocba.models.transfer_lifecycle import TRANSFER_STATE_LABELS

ACT_ROLES = ("principal", "vice_principal", "clerk")
MAX_PACKAGE = 50 * 1024 * 1024

viewer = require(*ACT_ROLES, "district_officer")
st.title("Chuyển trường")
st.caption(
    "Học sinh chuyển đi mang theo mọi học bạ số đã phát hành trong một gói có con dấu số "
    "của trường; trường nhận kiểm tra từng học bạ trước khi nhận (chỉ đọc, không sửa)."
)
show_flash()
school = pick_school(viewer, key="ct_school")
if school is None:
    st.info("Bạn không được phân công ở trường nào.")
    st.stop()
school_code: str = school["code"]
may_act = school["id"] in viewer.schools_with(ACT_ROLES)
if not may_act:
    st.caption(
        "Bạn chỉ xem: Hiệu trưởng, Phó hiệu trưởng được ủy quyền hoặc văn thư của trường "
        "thực hiện việc chuyển trường."
    )

with session() as s:
    rows = queries.transfers(s, viewer, school["id"])
outgoing = [r for r in rows if r["direction"] == "out"]
incoming = [r for r in rows if r["direction"] == "in"]
review = [r for r in incoming if r["state"] == "needs_review"]
m = st.columns(3)
m[0].metric("Chuyển đi", len(outgoing))
m[1].metric("Chuyển đến", len(incoming))
m[2].metric("Cần đối chiếu", len(review))


def _frame(items: list[dict[str, Any]], other: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Số": r["id"],
                "Học sinh": r["pupil_name"],
                "Ngày sinh": logic.fmt_date(r["birth_date"]),
                other: r["to_school_code"] if other == "Chuyển đến" else r["from_school_code"],
                "Ngày chuyển": logic.fmt_date(r["leaving_date"]),
                "Trạng thái": TRANSFER_STATE_LABELS[r["state"]],
                "Số học bạ": r["records"],
                "Ghi chú": r["review_reason"] or "",
                "Cập nhật": logic.fmt_datetime(r["updated_at"]),
            }
            for r in items
        ]
    )


def _seal(passphrase: str) -> Any:
    """The school's approved seal, opened with the passphrase typed once."""
    return open_signer(registered_key(viewer, "KY_PHAT_HANH", school_code), passphrase)


def _receive(
    package: bytes, passphrase: str, confirmed: bool, unverified_confirmed: bool = False
) -> Any:
    from hocba.tasks.issuance import crl_source, trust_anchors
    from hocba.tasks.transfer import receive_package

    seal = _seal(passphrase)
    home = load_settings().home
    with session() as s:
        return receive_package(
            s,
            package,
            viewer.actor,
            seal,
            trust_anchors(home),
            school_code,
            identity_confirmed=confirmed,
            crl_source=crl_source(home),
            unverified_confirmed=unverified_confirmed,
        )


def _review_parts(reason: str | None) -> tuple[bool, bool]:
    """Does a review ask about the pupil's identity, about unchecked records, or both
    (the unchecked part always comes last, see :data:`UNVERIFIED_REASON`)?"""
    from hocba.tasks.transfer import UNVERIFIED_REASON

    text = reason or ""
    identity, _, unverified = text.partition(UNVERIFIED_REASON)
    return bool(identity.strip(" ;")) or not unverified, bool(unverified)


def _upload(label: str, key: str) -> bytes | None:
    upload = st.file_uploader(label, type=["zip"], key=key)
    if upload is None:
        return None
    data = upload.getvalue()
    if len(data) > MAX_PACKAGE:
        st.error("Tệp lớn hơn 50 MB: không phải gói chuyển trường.")
        return None
    return data


tab_out, tab_in, tab_review = st.tabs(["Chuyển đi", "Chuyển đến", f"Cần đối chiếu ({len(review)})"])

with tab_out:
    if outgoing:
        st.dataframe(_frame(outgoing, "Chuyển đến"), hide_index=True, width="stretch")
    else:
        st.caption("Chưa có học sinh nào chuyển đi.")
    if may_act:
        package = st.session_state.get("ct_package")
        if package:
            st.download_button(
                f"Tải gói chuyển trường #{package['id']}",
                package["data"],
                file_name=package["name"],
                mime="application/zip",
                key="ct_package_download",
            )
        with st.expander("Xuất gói chuyển trường cho một học sinh"):
            with st.form("ct_export", clear_on_submit=True):
                pupil_code = st.text_input("Mã học sinh", key="ct_pupil")
                to_code = st.text_input("Mã trường chuyển đến", key="ct_to")
                leaving = st.date_input("Ngày chuyển đi", format="DD/MM/YYYY", key="ct_leaving")
                passphrase = st.text_input(
                    "Mật khẩu tệp khóa con dấu của trường", type="password", key="ct_pass_out"
                )
                go = st.form_submit_button("Xuất gói và ký bằng con dấu", type="primary")
            if go:
                from hocba.tasks.transfer import TransferError, export_package

                try:
                    seal = _seal(passphrase)
                    with session() as s:
                        exported, tid = export_package(
                            s,
                            pupil_code.strip(),
                            to_code.strip().upper(),
                            leaving if isinstance(leaving, dt.date) else dt.date.today(),
                            viewer.actor,
                            seal,
                        )
                except (SignerUnavailable, TransferError) as exc:
                    st.error(str(exc))
                else:
                    st.session_state["ct_package"] = {
                        "id": tid,
                        "data": exported,
                        "name": f"chuyen-truong-{tid}-{pupil_code.strip()}.zip",
                    }
                    flash(f"Đã xuất gói chuyển trường #{tid}; hãy tải gói và gửi trường nhận.")
                    st.rerun()
        with st.expander("Ghi nhận biên nhận của trường nhận"):
            receipt = st.file_uploader("Tệp biên nhận (.json)", type=["json"], key="ct_receipt")
            if receipt is not None and st.button("Ghi nhận biên nhận", key="ct_receipt_go"):
                from hocba.tasks.issuance import trust_anchors
                from hocba.tasks.transfer import TransferError, record_receipt

                try:
                    with session() as s:
                        tid = record_receipt(
                            s, receipt.getvalue(), trust_anchors(load_settings().home)
                        )
                except TransferError as exc:
                    st.error(str(exc))
                else:
                    flash(f"Chuyển trường #{tid}: đã có biên nhận của trường nhận.")
                    st.rerun()

with tab_in:
    if incoming:
        st.dataframe(_frame(incoming, "Chuyển từ"), hide_index=True, width="stretch")
    else:
        st.caption("Chưa có học sinh nào chuyển đến.")
    last = st.session_state.get("ct_receipt_out")
    if last:
        st.download_button(
            f"Tải biên nhận đã ký (#{last['id']}) để gửi trường chuyển đi",
            last["data"],
            file_name=f"bien-nhan-{last['id']}.json",
            mime="application/json",
            key="ct_receipt_download",
        )
    if may_act:
        with st.expander("Nhận gói chuyển trường", expanded=not incoming):
            data = _upload("Gói chuyển trường (.zip)", "ct_in_file")
            with st.form("ct_receive", clear_on_submit=True):
                passphrase = st.text_input(
                    "Mật khẩu tệp khóa con dấu của trường (để ký biên nhận)",
                    type="password",
                    key="ct_pass_in",
                )
                go = st.form_submit_button("Kiểm tra và nhận", type="primary")
            if go:
                from hocba.tasks.transfer import TransferError

                if data is None:
                    st.error("Hãy chọn tệp gói chuyển trường (.zip) trước.")
                else:
                    try:
                        res = _receive(data, passphrase, confirmed=False)
                    except (SignerUnavailable, TransferError) as exc:
                        st.error(str(exc))
                    else:
                        if res.state == "needs_review":
                            flash(
                                f"Gói #{res.transfer_id} cần đối chiếu thủ công: xem thẻ "
                                "«Cần đối chiếu».",
                                "warning",
                            )
                        else:
                            st.session_state["ct_receipt_out"] = {
                                "id": res.transfer_id,
                                "data": res.receipt,
                            }
                            flash(
                                f"Đã nhận {res.records} học bạ (gói #{res.transfer_id}). "
                                + " ".join(res.notes)
                            )
                        st.rerun()

with tab_review:
    if not review:
        st.success("Không có hồ sơ chuyển đến nào chờ đối chiếu.")
    for r in review:
        with st.container(border=True):
            st.markdown(
                f"**#{r['id']} — {r['pupil_name']}** (sinh {logic.fmt_date(r['birth_date'])}), "
                f"chuyển từ {r['from_school_code']}, {r['records']} học bạ  \n"
                f"Lý do cần đối chiếu: {r['review_reason'] or ''}"
            )
            if r["known_name"]:
                st.markdown(
                    f"Hồ sơ đã có cùng mã định danh: **{r['known_name']}** (sinh "
                    f"{logic.fmt_date(r['known_birth_date'])})"
                )
            if not may_act:
                continue
            asks_identity, asks_unverified = _review_parts(r["review_reason"])
            c1, c2 = st.columns(2)
            with c1:
                st.markdown("**Nhận sau khi đã đối chiếu giấy tờ**")
                data = _upload("Gói chuyển trường đã nhận (.zip)", f"ct_rv_file_{r['id']}")
                with st.form(f"ct_accept_{r['id']}", clear_on_submit=True):
                    sure = not asks_identity or st.checkbox(
                        "Tôi đã đối chiếu giấy khai sinh/căn cước: đúng là học sinh này",
                        key=f"ct_rv_sure_{r['id']}",
                    )
                    checked = not asks_unverified or st.checkbox(
                        "Tôi đã xem xét các mục chưa kiểm tra được nêu trên (đã liên hệ trường "
                        "chuyển đi, kiểm tra chứng thư số): nhận các học bạ này",
                        key=f"ct_rv_checked_{r['id']}",
                    )
                    passphrase = st.text_input(
                        "Mật khẩu tệp khóa con dấu của trường",
                        type="password",
                        key=f"ct_rv_pass_{r['id']}",
                    )
                    accept = st.form_submit_button("Nhận học bạ", type="primary")
                if accept:
                    from hocba.tasks.transfer import TransferError

                    if data is None or hashlib.sha256(data).hexdigest() != r["package_sha256"]:
                        st.error(
                            "Hãy tải lên đúng gói chuyển trường của hồ sơ này (tệp khác gói "
                            "đã kiểm tra)."
                        )
                    elif not sure:
                        st.error("Hãy xác nhận đã đối chiếu giấy tờ của học sinh trước khi nhận.")
                    elif not checked:
                        st.error(
                            "Hãy xác nhận đã xem xét các mục chưa kiểm tra được trước khi nhận."
                        )
                    else:
                        try:
                            res = _receive(
                                data,
                                passphrase,
                                confirmed=asks_identity,
                                unverified_confirmed=asks_unverified,
                            )
                        except (SignerUnavailable, TransferError) as exc:
                            st.error(str(exc))
                        else:
                            if res.state == "needs_review":  # another reason came up meanwhile
                                flash(f"Hồ sơ #{r['id']} vẫn cần đối chiếu thủ công.", "warning")
                            else:
                                st.session_state["ct_receipt_out"] = {
                                    "id": res.transfer_id,
                                    "data": res.receipt,
                                }
                                flash(f"Đã nhận {res.records} học bạ của {r['pupil_name']}.")
                            st.rerun()
            with c2:
                st.markdown("**Từ chối**")
                with st.form(f"ct_reject_{r['id']}", clear_on_submit=True):
                    reason = st.text_area(
                        "Lý do từ chối (trường chuyển đi sẽ thấy)", key=f"ct_rv_why_{r['id']}"
                    )
                    refuse = st.form_submit_button("Từ chối hồ sơ")
                if refuse:
                    from hocba.tasks.transfer import TransferError, reject_transfer

                    try:
                        with session() as s:
                            reject_transfer(s, r["id"], viewer.actor, reason)
                    except TransferError as exc:
                        st.error(str(exc))
                    else:
                        flash(f"Đã từ chối hồ sơ chuyển đến #{r['id']}.")
                        st.rerun()
