"""The transfer flows (chuyển trường): packages out, packages in, receipts back.

Thin over ``hocba/tasks/transfer.py``. Packages and receipts travel through a **transfer
exchange**: a folder both schools reach (``HOCBA_TRANSFER_DIR``, by default
``$HOCBA_HOME/chuyen-truong``; between districts, a shared folder of the province or any
synced drive). Each school has its own box in it::

    <exchange>/<school>/den/<sha256>.zip          packages waiting for <school>
    <exchange>/<school>/bien-nhan/<sha256>.json   receipts waiting for <school> (the sender),
                                       and signed refusals (``<sha256>.tu-choi.json``)
    <exchange>/<school>/cho-doi-chieu/<sha256>.zip packages whose pupil needs a person's check
    <exchange>/<school>/da-xu-ly/                 what <school> has handled

Nothing in the exchange is trusted: every package and receipt is verified on arrival
(signatures, chain, every record). Every flow can be re-run: a package is written as
``.part`` before its export commits and renamed after, a package or receipt already
handled is moved aside, and one received twice is recognised by its SHA-256.
Parameters carry no secrets and no personal data beyond the pupil's school code.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509
from prefect import flow, get_run_logger, task
from sqlmodel import Session

from hocba import db
from hocba.config import load_settings
from hocba.models.lifecycle import Actor
from hocba.pki.backends import school_seal
from hocba.tasks.issuance import crl_source, trust_anchors
from hocba.tasks.transfer import (
    TransferError,
    export_package,
    receive_package,
    record_receipt,
    record_refusal,
    refusal_notice,
)

INBOX, RECEIPTS, REVIEW, DONE = "den", "bien-nhan", "cho-doi-chieu", "da-xu-ly"


def exchange_dir() -> Path:
    """The transfer exchange shared by the schools (see the module docstring)."""
    return load_settings().transfer_dir


def _box(school_code: str, kind: str) -> Path:
    path = exchange_dir() / school_code / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_durably(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _replace_durably(source: Path, target: Path) -> None:
    os.replace(source, target)
    fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    part = path.with_name(path.name + ".part")
    _write_durably(part, data)
    _replace_durably(part, path)


@contextlib.contextmanager
def _school_box_lock(school_code: str) -> Iterator[bool]:
    """Whether this worker holds the school's box: two runs (the hourly one and a manual
    one, or two workers) never handle the same package or receipt at once."""
    with db.get_engine().connect() as conn:
        held = bool(
            conn.exec_driver_sql(
                "SELECT pg_try_advisory_lock(hashtext('hocba:transfer-box'), hashtext(%s))",
                (school_code,),
            ).scalar()
        )
        conn.commit()
        try:
            yield held
        finally:
            if held:
                conn.exec_driver_sql(
                    "SELECT pg_advisory_unlock(hashtext('hocba:transfer-box'), hashtext(%s))",
                    (school_code,),
                )
                conn.commit()


def _anchors() -> list[x509.Certificate]:
    anchors = trust_anchors(load_settings().home)
    if not anchors:
        raise TransferError(
            "Chưa cấu hình tổ chức cấp chứng thư số tin cậy (HOCBA_TRUST_ANCHORS): không thể "
            "kiểm tra gói và biên nhận chuyển trường."
        )
    return anchors


def _person(session: Session, username: str | None, school_code: str) -> Actor:
    """``username``, or the school's clerk when the flow runs on a schedule."""
    row = (
        session.connection()
        .exec_driver_sql(
            "SELECT st.id, st.full_name FROM staff st JOIN staff_role r ON r.staff_id = st.id "
            "JOIN school s ON s.id = r.school_id WHERE st.active AND s.code = %s "
            "AND r.role IN ('principal', 'vice_principal', 'clerk') "
            "AND r.valid_from <= current_date "
            "AND (r.valid_to IS NULL OR r.valid_to >= current_date) "
            "AND (st.username = %s OR (%s::text IS NULL AND r.role = 'clerk')) "
            "ORDER BY st.id LIMIT 1",
            (school_code, username, username),
        )
        .one_or_none()
    )
    if row is None:
        raise TransferError(
            f"Trường {school_code} không có {username or 'văn thư'} đang có quyền nhận và chuyển "
            "học bạ (hiệu trưởng, phó hiệu trưởng, văn thư)."
        )
    return Actor(row[0], row[1])


@task(name="xuất gói chuyển trường")
def export_task(
    pupil_code: str, to_school_code: str, leaving_date: dt.date, username: str
) -> dict[str, object]:
    """Export one pupil's package into the receiving school's box (once)."""
    box = _box(to_school_code, INBOX)
    written: list[Path] = []
    try:
        return _export(pupil_code, to_school_code, leaving_date, username, box, written)
    except BaseException:
        for part in written:  # the package of an export that did not commit
            part.unlink(missing_ok=True)
        raise


def _export(
    pupil_code: str,
    to_school_code: str,
    leaving_date: dt.date,
    username: str,
    box: Path,
    written: list[Path],
) -> dict[str, object]:
    with db.session_scope() as session:
        conn = session.connection()
        conn.exec_driver_sql(  # two runs exporting one pupil take turns
            "SELECT pg_advisory_xact_lock(hashtext('hocba:transfer-out'), hashtext(%s))",
            (pupil_code,),
        )
        school = conn.exec_driver_sql(
            "SELECT s.code FROM pupil p JOIN enrolment e ON e.pupil_id = p.id "
            "JOIN school s ON s.id = e.school_id WHERE p.pupil_code = %s "
            "ORDER BY e.left_on IS NULL DESC, e.id DESC LIMIT 1",
            (pupil_code,),
        ).scalar()
        if school is None:
            raise TransferError(f"Không có học sinh mã {pupil_code}.")
        done = conn.exec_driver_sql(
            "SELECT t.id, t.package_sha256 FROM transfer t JOIN pupil p ON p.id = t.pupil_id "
            "WHERE p.pupil_code = %s AND t.from_school_code = %s AND t.to_school_code = %s "
            "AND t.state <> 'rejected' ORDER BY t.id DESC LIMIT 1",
            (pupil_code, school, to_school_code),
        ).one_or_none()
        if done is not None:  # exported before: finish a rename a crash may have cut short
            part = box / f"{done[1]}.zip.part"
            if part.exists():
                _replace_durably(part, box / f"{done[1]}.zip")
            return {"transfer_id": done[0], "exported": False}
        actor = _person(session, username, school)
        package, transfer_id = export_package(
            session, pupil_code, to_school_code, leaving_date, actor, school_seal(session, school)
        )
        part = box / f"{hashlib.sha256(package).hexdigest()}.zip.part"
        written.append(part)
        _write_durably(part, package)  # before the commit: never lost
    written.clear()  # committed: from here on the package must not be removed
    _replace_durably(part, part.with_suffix(""))
    return {"transfer_id": transfer_id, "exported": True}


@task(name="nhận gói chuyển trường")
def receive_task(school_code: str, username: str | None) -> dict[str, int]:
    """Take in every package waiting in the school's box; receipts go to the senders.

    A package that fails verification is refused and moved aside with its reason; a
    problem of this side (no person who may receive, no seal, no trust anchors, the
    database down) stops the task and leaves every package where it is for the next run."""
    counts = {"accepted": 0, "needs_review": 0, "refused": 0, "already": 0, "busy": 0}
    done = _box(school_code, DONE)
    if not any(_box(school_code, INBOX).glob("*.zip")):
        return counts
    anchors = _anchors()
    with db.session_scope() as session:
        actor = _person(session, username, school_code)
        seal = school_seal(session, school_code)
    with _school_box_lock(school_code) as held:
        if not held:  # another run is taking this box in right now
            counts["busy"] = 1
            return counts
        for path in sorted(_box(school_code, INBOX).glob("*.zip")):
            if not path.exists():
                continue
            package = path.read_bytes()
            sha = hashlib.sha256(package).hexdigest()
            try:
                with db.session_scope() as session:
                    known = (
                        session.connection()
                        .exec_driver_sql(
                            "SELECT receipt FROM transfer WHERE package_sha256 = %s "
                            "AND to_school_code = %s AND state IN ('accepted', 'receipted') "
                            "ORDER BY id LIMIT 1",
                            (sha, school_code),
                        )
                        .one_or_none()
                    )
                    if known is not None:  # taken in before a crash: only resend the receipt
                        state, receipt = "already", bytes(known[0] or b"")
                    else:
                        res = receive_package(
                            session,
                            package,
                            actor,
                            seal,
                            anchors,
                            school_code,
                            crl_source=crl_source(load_settings().home),
                        )
                        state, receipt = res.state, res.receipt or b""
                    sender = _sender(package)
            except TransferError as exc:
                get_run_logger().warning("Gói %s bị từ chối: %s", path.name, exc)
                counts["refused"] += 1
                (done / f"{path.name}.ly-do.txt").write_text(f"{exc}\n", encoding="utf-8")
                notice = refusal_notice(package, str(exc), school_code, seal)
                if notice is not None:  # the leaving school learns why, and may export again
                    sender = json.loads(notice)["refusal"]["from_school"]
                    _write_atomic(_box(sender, RECEIPTS) / f"{sha}.tu-choi.json", notice)
                _replace_durably(path, done / f"{path.name}.tu-choi")
                continue
            counts[state] += 1
            if receipt:
                _write_atomic(_box(sender, RECEIPTS) / f"{sha}.json", receipt)
            target = _box(school_code, REVIEW) if state == "needs_review" else done
            _replace_durably(path, target / path.name)
    return counts


def review_package(school_code: str, package_sha256: str) -> Path | None:
    """The package of a transfer in the manual review queue (to receive it again with
    ``identity_confirmed`` once a person has compared the papers, or
    ``unverified_confirmed`` once a person has looked into checks that could not be
    made)."""
    path = exchange_dir() / school_code / REVIEW / f"{package_sha256}.zip"
    return path if path.exists() else None


def _sender(package: bytes) -> str:
    """The leaving school named by a package this side has already verified."""
    with zipfile.ZipFile(io.BytesIO(package)) as z:
        return str(json.loads(z.read("manifest.json"))["from_school"])


@task(name="ghi nhận biên nhận")
def receipts_task(school_code: str) -> dict[str, int]:
    """Check and record every receipt the receiving schools sent back to this school, and
    finish moving any package whose export committed just before a crash."""
    counts = {"recorded": 0, "receipts_refused": 0, "refused_by_receiver": 0, "receipts_busy": 0}
    _finish_exports(school_code)
    if not any(_box(school_code, RECEIPTS).glob("*.json")):
        return counts
    anchors = _anchors()
    done = _box(school_code, DONE)
    with _school_box_lock(school_code) as held:
        if not held:
            counts["receipts_busy"] = 1
            return counts
        for path in sorted(_box(school_code, RECEIPTS).glob("*.json")):
            if not path.exists():
                continue
            try:
                data = path.read_bytes()
                with db.session_scope() as session:
                    if _is_refusal(data):
                        record_refusal(session, data, anchors)
                        counts["refused_by_receiver"] += 1
                    else:
                        record_receipt(session, data, anchors)
                        counts["recorded"] += 1
                _replace_durably(path, done / path.name)
            except TransferError as exc:
                get_run_logger().warning("Biên nhận %s bị từ chối: %s", path.name, exc)
                counts["receipts_refused"] += 1
                _replace_durably(path, done / f"{path.name}.tu-choi")
    return counts


def _is_refusal(data: bytes) -> bool:
    try:
        return isinstance(parsed := json.loads(data), dict) and "refusal" in parsed
    except ValueError:
        return False


def _finish_exports(school_code: str) -> None:
    """A package written as ``.part`` whose export committed (the crash came before the
    rename) is renamed into the receiving school's box."""
    with db.session_scope() as session:
        rows = (
            session.connection()
            .exec_driver_sql(
                "SELECT to_school_code, package_sha256 FROM transfer "
                "WHERE from_school_code = %s AND state = 'exported'",
                (school_code,),
            )
            .all()
        )
    for to_school, sha in rows:
        part = exchange_dir() / to_school / INBOX / f"{sha}.zip.part"
        if part.exists():
            _replace_durably(part, part.with_suffix(""))


@flow(name="chuyen-truong-di")
def transfer_out_flow(
    pupil_code: str, to_school_code: str, leaving_date: dt.date, username: str
) -> dict[str, object]:
    """A pupil leaves: export the signed package into the receiving school's box."""
    out = export_task(pupil_code, to_school_code, leaving_date, username)
    get_run_logger().info(
        "Chuyển trường #%s đến %s: %s",
        out["transfer_id"],
        to_school_code,
        "đã xuất gói" if out["exported"] else "gói đã xuất trước đó",
    )
    return out


@flow(name="chuyen-truong-den")
def transfer_in_flow(
    school_codes: list[str] | None = None, username: str | None = None
) -> dict[str, object]:
    """Receive every waiting package of these schools (none given: every school of this
    database) and record every receipt returned to them."""
    log = get_run_logger()
    if not school_codes:
        with db.session_scope() as session:
            conn = session.connection()
            school_codes = list(
                conn.exec_driver_sql("SELECT code FROM school ORDER BY code").scalars()
            )
    received: dict[str, dict[str, int]] = {}
    problems: list[str] = []
    for code in school_codes:  # one school's problem does not stop the others
        try:
            received[code] = receive_task(code, username)
        except Exception as exc:  # reported below; the run ends failed
            problems.append(f"{code}: {exc}")
    result: dict[str, object] = {}
    for code in school_codes:  # after every school received: their receipts are out
        try:
            receipts = receipts_task(code)
        except Exception as exc:  # reported below
            problems.append(f"{code} (biên nhận): {exc}")
            continue
        got = received.get(code, {})
        log.info(
            "%s: nhận %s gói, %s cần đối chiếu, %s từ chối; ghi nhận %s biên nhận, "
            "%s gói bị trường nhận từ chối",
            code,
            got.get("accepted", 0),
            got.get("needs_review", 0),
            got.get("refused", 0),
            receipts["recorded"],
            receipts["refused_by_receiver"],
        )
        result[code] = {**got, **receipts}
    if problems:
        raise TransferError("Chưa xử lý được: " + "; ".join(problems))
    return result
