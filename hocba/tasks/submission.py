"""Submission of issued records to the province portal (HOCBA_SPEC §6, lifecycle 8-11).

Three steps, each safe to re-run at any time:

1. :func:`plan_submissions` packages a school's issued records that are in no open
   submission into transactions of at most 10 MB (one school year and cohort each) and
   **persists each messageid before anything is sent**;
2. :func:`send_pending` sends every pending transaction (claimed with ``SKIP LOCKED``);
   a lost answer or a crash is retried with the same messageid, so the portal never
   stores a submission twice; the records move ``issued → submitted``;
3. :func:`poll_results` asks for each sent transaction's per-record results
   (transaction 2): accepted records move to ``accepted``, rejected ones to ``rejected``
   with the portal's error fields kept in ``portal_result`` and shown to the school.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlmodel import Session

from hocba.db import unnest_rows
from hocba.models import stored_xml
from hocba.models.lifecycle import SYSTEM, transition
from hocba.pki.signer import Signer
from hocba.portal.client import (
    PortalClient,
    PortalError,
    PortalNotFound,
    PortalRefused,
    PortalUnavailable,
)
from hocba.portal.package import Package, package_records

#: the per-record columns of ``portal_result`` written from the portal's answer
_RESULT_COLUMNS = (
    ("record_id", "int"),
    ("accepted", "boolean"),
    ("error", "text"),
    ("error_field_title", "text"),
    ("error_description", "text"),
)


@dataclass
class StepReport:
    """What one step did: counts and the reasons of what did not go."""

    planned: int = 0
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    waiting: int = 0
    errors: list[str] = field(default_factory=list)
    #: the packages :func:`plan_submissions` built, by messageid, for :func:`send_pending`
    #: of the same exchange (not persisted: a later send rebuilds them from the records)
    packages: dict[str, Package] = field(default_factory=dict, repr=False)

    def text_vi(self) -> str:
        parts = [
            f"{self.planned} gói mới",
            f"{self.sent} gói đã gửi",
            f"{self.accepted} học bạ được tiếp nhận",
            f"{self.rejected} bị từ chối",
        ]
        if self.waiting:
            parts.append(f"{self.waiting} gói chờ gửi lại")
        text_ = ", ".join(parts)
        return text_ + (": " + "; ".join(self.errors[:3]) if self.errors else "")


def _records_xml(session: Session, record_ids: list[int]) -> list[bytes]:
    conn = session.connection()
    rows: dict[int, bytes] = dict(
        conn.execute(
            text("SELECT id, signed_xml FROM hoc_ba WHERE id = ANY(:ids)"), {"ids": record_ids}
        ).all()
    )
    return [x or b"" for x in stored_xml.unpack(conn, [rows[i] for i in record_ids])]


def plan_submissions(
    session: Session, school_code: str, *, resubmit_rejected: bool = False
) -> StepReport:
    """Package the school's unsubmitted issued records; persist the messageids.

    Two workers planning the same school at once take turns (a lock of that school only,
    held to the end of the transaction), so no record goes into two packages."""
    conn = session.connection()
    conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtext('hocba:plan-submission'), hashtext(:c))"),
        {"c": school_code},
    )
    states = ["issued", "rejected"] if resubmit_rejected else ["issued"]
    groups = conn.execute(
        text("""
        SELECT r.school_id, r.school_year_id, r.cohort, array_agg(r.id ORDER BY r.id)
        FROM hoc_ba r JOIN school s ON s.id = r.school_id
        WHERE s.code = :code AND r.state = ANY(:states) AND NOT EXISTS (
            SELECT 1 FROM submission x WHERE r.id = ANY(x.record_ids)
              AND x.status IN ('pending', 'sent'))
        GROUP BY r.school_id, r.school_year_id, r.cohort
        ORDER BY r.school_year_id, r.cohort"""),
        {"code": school_code, "states": states},
    ).all()
    report = StepReport()
    for school_id, year_id, cohort, ids in groups:
        # a deliberate resend of rejected records needs a new messageid (the same one
        # would only get the first answer back)
        nonce = uuid.uuid4().hex if resubmit_rejected else ""
        for package in package_records(_records_xml(session, ids), nonce=nonce, checked=True):
            conn.execute(
                text("""
                INSERT INTO submission (school_id, school_year_id, cohort, message_id,
                                        record_ids)
                VALUES (:s, :y, :c, :m, :ids) ON CONFLICT (message_id) DO NOTHING"""),
                {
                    "s": school_id,
                    "y": year_id,
                    "c": cohort,
                    "m": package.message_id,
                    "ids": [ids[i] for i in package.indexes],
                },
            )
            report.packages[package.message_id] = package
            report.planned += 1
    return report


def _package(session: Session, record_ids: list[int]) -> Package:
    """Rebuild the persisted transaction: same records, same order, same content (the
    persisted messageid is sent with it, whatever nonce made it)."""
    packages = package_records(_records_xml(session, record_ids), checked=True)
    if len(packages) != 1:
        raise PortalError("Gói đã lập không còn vừa một giao dịch; hãy lập lại.")
    return packages[0]


def _claim(
    conn: Connection, school_code: str, status: str
) -> Sequence[tuple[int, str, list[int], str]]:
    """The school's transactions in ``status``, locked for this run (others skip them):
    ``(id, message_id, record_ids, school year name)``."""
    return conn.execute(  # type: ignore[return-value]  # rows of the four columns above
        text("""
        SELECT x.id, x.message_id, x.record_ids, y.name FROM submission x
        JOIN school s ON s.id = x.school_id JOIN school_year y ON y.id = x.school_year_id
        WHERE s.code = :code AND x.status = :status ORDER BY x.id
        FOR UPDATE OF x SKIP LOCKED"""),
        {"code": school_code, "status": status},
    ).all()


def send_pending(
    session: Session,
    school_code: str,
    client: PortalClient,
    prepared: Mapping[str, Package] | None = None,
) -> StepReport:
    """Send every pending transaction of the school (retries reuse the messageid).

    ``prepared``: packages just built by :func:`plan_submissions` (by messageid), sent as
    they are instead of being read and packaged a second time; issued records are
    immutable, so rebuilding would give the same bytes."""
    conn = session.connection()
    rows = _claim(conn, school_code, "pending")
    report = StepReport()
    for sub_id, message_id, record_ids, year in rows:
        package = (prepared or {}).get(message_id)
        if package is None or package.record_count != len(record_ids):
            package = _package(session, list(record_ids))
        try:
            answer = client.submit(package, message_id=message_id, nam_hoc=year)
        except PortalUnavailable as exc:
            conn.execute(
                text(
                    "UPDATE submission SET attempts = attempts + 1, last_error = :e WHERE id = :i"
                ),
                {"e": exc.message_vi, "i": sub_id},
            )
            report.waiting += 1
            report.errors.append(exc.message_vi)
            continue
        except PortalRefused as exc:
            conn.execute(
                text(
                    "UPDATE submission SET status = 'refused', attempts = attempts + 1,"
                    " response_code = :c, last_error = :e WHERE id = :i"
                ),
                {"c": exc.response_code, "e": exc.message_vi, "i": sub_id},
            )
            report.errors.append(exc.message_vi)
            continue
        transition(session, list(record_ids), "submit", SYSTEM)
        conn.execute(
            text(
                "UPDATE submission SET status = 'sent', attempts = attempts + 1, "
                "response_code = :c, sent_at = :t, last_error = NULL WHERE id = :i"
            ),
            {"c": answer.response_code, "t": dt.datetime.now(dt.UTC), "i": sub_id},
        )
        report.sent += 1
    return report


def poll_results(session: Session, school_code: str, client: PortalClient) -> StepReport:
    """Fetch the per-record results of every sent transaction and apply them."""
    conn = session.connection()
    rows = _claim(conn, school_code, "sent")
    report = StepReport()
    for sub_id, message_id, record_ids, year in rows:
        try:
            results = client.query_submission(message_id, nam_hoc=year)
        except PortalNotFound:  # the portal never got it: send it again, same messageid
            conn.execute(
                text("UPDATE submission SET status = 'pending' WHERE id = :i"), {"i": sub_id}
            )
            report.waiting += 1
            continue
        except PortalError as exc:
            report.errors.append(exc.message_vi)
            continue
        by_code: dict[str, int] = dict(
            conn.execute(
                text("SELECT lookup_code::text, id FROM hoc_ba WHERE id = ANY(:ids)"),
                {"ids": list(record_ids)},
            ).all()
        )
        accepted: list[int] = []
        rejected: dict[str, list[int]] = {}  # the portal's reason → its records
        outcomes: list[dict[str, object]] = []
        for res in results:
            rid = by_code.get(res.ma_tra_cuu_uuid or "")
            if rid is None:
                continue
            outcomes.append(
                {
                    "record_id": rid,
                    "accepted": res.accepted,
                    "error": res.error,
                    "error_field_title": res.error_field_title,
                    "error_description": res.error_description,
                }
            )
            if res.accepted:
                accepted.append(rid)
            else:
                why = res.error_description or res.error or "Sở từ chối"
                rejected.setdefault(why, []).append(rid)
        if outcomes:  # one statement for the transaction's results, not one per record
            source, arrays = unnest_rows(outcomes, _RESULT_COLUMNS)
            conn.exec_driver_sql(
                "INSERT INTO portal_result (record_id, submission_id, accepted, error, "
                "error_field_title, error_description) SELECT record_id, %(s)s, accepted, "
                f"error, error_field_title, error_description FROM {source} "
                "ON CONFLICT DO NOTHING",
                {**arrays, "s": sub_id},
            )
        transition(session, accepted, "accept", SYSTEM)
        for why, rids in rejected.items():  # one transition per reason, each record keeps it
            transition(session, rids, "reject", SYSTEM, reason=why)
        conn.execute(
            text("UPDATE submission SET status = 'done', results_at = now() WHERE id = :i"),
            {"i": sub_id},
        )
        report.accepted += len(accepted)
        report.rejected += len(rejected)
    return report


_CORRECTIONS_AT_PORTAL = """
    FROM correction_request c JOIN hoc_ba r ON r.id = c.record_id
    JOIN school s ON s.id = r.school_id JOIN school_year y ON y.id = r.school_year_id
    WHERE s.code = :code AND c.status = 'approved' AND c.portal_request_id IS NULL
      AND EXISTS (SELECT 1 FROM portal_result p WHERE p.record_id = r.id AND p.accepted)
"""


def plan_revocations(session: Session, school_code: str) -> StepReport:
    """Give every approved correction whose old record reached the portal a messageid for
    its revocation request (transaction 5), persisted before anything is sent."""
    ids = list(
        session.connection().scalars(
            text("SELECT c.id " + _CORRECTIONS_AT_PORTAL + " AND c.portal_message_id IS NULL"),
            {"code": school_code},
        )
    )
    for cid in ids:
        session.connection().execute(
            text("UPDATE correction_request SET portal_message_id = :m WHERE id = :i"),
            {"m": str(uuid.uuid4()), "i": cid},
        )
    return StepReport(planned=len(ids))


def request_revocations(session: Session, school_code: str, client: PortalClient) -> StepReport:
    """Transaction 5 for each planned revocation (same messageid on every retry), then
    transaction 6 for those still pending at the Sở."""
    from hocba.portal.package import RevocationItem
    from hocba.xml.record import parse_record_xml_safely

    conn = session.connection()
    report = StepReport()
    todo = conn.execute(
        text(
            "SELECT c.id, c.reason, c.portal_message_id, r.signed_xml, y.name "
            + _CORRECTIONS_AT_PORTAL
            + " AND c.portal_message_id IS NOT NULL ORDER BY c.id FOR UPDATE OF c SKIP LOCKED"
        ),
        {"code": school_code},
    ).all()
    docs = stored_xml.unpack(conn, [row[3] for row in todo])  # one query for the batch
    for (cid, reason, message_id, _xml, year), xml in zip(todo, docs, strict=True):
        info = parse_record_xml_safely(xml or b"").find("DU_LIEU_HOC_BA/THONG_TIN_CHUNG")
        assert info is not None
        item = RevocationItem(
            ma_tra_cuu_uuid=info.findtext("MA_TRA_CUU_UUID") or "",
            ho_va_ten=info.findtext("HO_VA_TEN") or "",
            gioi_tinh=info.findtext("GIOI_TINH") or "",
            ngay_sinh=info.findtext("NGAY_SINH") or "",
            so_cccd=info.findtext("SO_CCCD") or "",
            ten_truong=info.findtext("TEN_TRUONG") or "",
            ma_truong=school_code,
            ten_nam_hoc=year,
            ly_do=reason,
        )
        try:
            status = client.request_revocation([item], message_id=message_id, nam_hoc=year)
        except PortalError as exc:
            report.errors.append(exc.message_vi)
            report.waiting += 1
            continue
        conn.execute(
            text(
                "UPDATE correction_request SET portal_request_id = :r, "
                "portal_status = :s WHERE id = :i"
            ),
            {"r": status.ma_yeu_cau, "s": str(status.trang_thai), "i": cid},
        )
        report.sent += 1
    for cid, request_id in conn.execute(
        text("""
            SELECT c.id, c.portal_request_id FROM correction_request c
            JOIN hoc_ba r ON r.id = c.record_id JOIN school s ON s.id = r.school_id
            WHERE s.code = :code AND c.portal_request_id IS NOT NULL
              AND c.portal_status = '1'"""),
        {"code": school_code},
    ).all():
        try:
            status = client.query_revocation(request_id)
        except PortalError as exc:
            report.errors.append(exc.message_vi)
            continue
        conn.execute(
            text("UPDATE correction_request SET portal_status = :s WHERE id = :i"),
            {"s": str(status.trang_thai), "i": cid},
        )
        report.accepted += status.trang_thai == status.ACCEPTED
        report.rejected += status.trang_thai == status.REJECTED
    return report


def configured_client(school_code: str, seal: Signer) -> PortalClient:
    """A client for the portal of the configuration (``HOCBA_PORTAL_URL``, ``…_PASSWORD``,
    ``…_TIMEOUT``, ``…_RETRIES``, ``…_BACKOFF``), the school's account, signing with
    ``seal``."""
    from hocba.config import load_settings

    settings = load_settings()
    return PortalClient(
        settings.portal_url,
        school_code,
        settings.portal_password or "",
        school_code,
        seal,
        timeout=settings.portal_timeout,
        retries=settings.portal_retries,
        backoff=settings.portal_backoff,
    )


def submit_and_collect(
    session_scope: Callable[[], AbstractContextManager[Session]],
    school_code: str,
    client: PortalClient,
    resubmit_rejected: bool = False,
) -> str:
    """The whole exchange of one school with the portal, each step its own transaction:
    the seal's registration (transactions 3/4), packages planned and sent (1), results
    fetched (2), revocations of approved corrections (5/6). Returns a Vietnamese summary."""
    if not client.register_certificate().approved:
        return f"{school_code}: chứng thư số của trường chưa được Sở phê duyệt."
    with session_scope() as session:
        planned = plan_submissions(session, school_code, resubmit_rejected=resubmit_rejected)
    with session_scope() as session:
        sent = send_pending(session, school_code, client, planned.packages)
    with session_scope() as session:
        polled = poll_results(session, school_code, client)
    with session_scope() as session:
        plan_revocations(session, school_code)
    with session_scope() as session:
        revoked = request_revocations(session, school_code, client)
    return (
        f"{school_code}: {planned.planned} gói mới, {sent.sent} gói đã gửi, "
        f"{polled.accepted} tiếp nhận, {polled.rejected} từ chối"
        + (f", {sent.waiting} chờ gửi lại" if sent.waiting else "")
        + (
            f"; yêu cầu thu hồi: {revoked.sent} đã gửi, {revoked.accepted} được chấp nhận"
            if revoked.sent or revoked.accepted
            else ""
        )
    )
