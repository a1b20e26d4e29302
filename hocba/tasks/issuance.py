"""Signing and issuing records in batches: GVCN → CBQL → school seal (HOCBA_SPEC §4-5).

:func:`sign_batch` is the one operation behind the teacher's "sign my class", the
principal's "sign the selection" and the clerk's "seal and issue": it locks and checks the
records through the lifecycle (a dry run: state and permission), checks that the
signer's certificate belongs to the person (or, for the seal, is the school's *approved*
organisation certificate), signs every document with ONE ``signer.sign_digests`` call, and
then applies the transition with the signed XML. Sealing also verifies every signature of
the finished document before the record is locked. Records that cannot be signed are
reported one by one; the others go on.

:func:`hocba.dev.keys.init_test_keys` gives every school and signing staff member of the database a
certificate from the project's test PKI (``$HOCBA_HOME/pki``), registered in the
certificate registry; it is what ``hocba pki init`` and the demo use.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from sqlalchemy import text
from sqlmodel import Session

from hocba.config import load_settings
from hocba.errors import HocbaError
from hocba.models import certificates
from hocba.models.lifecycle import ACTION_OF_SLOT, Actor, BatchResult, transition
from hocba.pki.signer import Signer
from hocba.tasks.long_term import (
    configured_tsa,
    dequeue,
    note_expiry,
    queue_waiting,
    stamp_signed,
)
from hocba.xml.document import load_documents
from hocba.xml.dsig import sign_slots, verify_record_signatures
from hocba.xml.record import build_record_xml, keep_parsed, parse_record_xml_safely
from hocba.xml.timestamps import TsaClient
from hocba.xml.verify import CrlSource, CrlUnavailable, cccd_of

SIGNING_ROLES = ("homeroom_teacher", "principal", "vice_principal", "clerk")


class IssuanceError(HocbaError):
    """The whole batch was refused (wrong certificate...); the message says what to do."""

    def __init__(self, message_vi: str) -> None:
        super().__init__(message_vi)
        self.message_vi = message_vi


def sign_batch(
    session: Session,
    record_ids: Sequence[int],
    slot: str,
    actor: Actor,
    signer: Signer,
    *,
    trust_anchors: Sequence[x509.Certificate] = (),
    now: dt.datetime | None = None,
    tsa: TsaClient | None = None,
) -> BatchResult:
    """Sign ``slot`` of the given records as ``actor`` with ``signer``, one confirmation.

    Runs in the caller's transaction. ``trust_anchors`` are needed for the seal, whose
    documents are fully verified before they are issued. ``tsa`` (default: the one of
    ``HOCBA_TSA_URL``, if any) adds the RFC 3161 signature timestamps; when it is down the
    records are signed anyway and queued for a timestamp (hocba/tasks/long_term.py).
    """
    action = ACTION_OF_SLOT[slot]
    now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    checked = transition(session, record_ids, action, actor, dry_run=True, now=now)
    result = BatchResult(action, failed=dict(checked.failed))
    if not checked.ok:
        return result
    conn = session.connection()
    signer_sha = certificates.fingerprint(signer.certificate)
    if slot in ("GVCN", "CBQL"):
        staff_cccd = conn.scalar(
            text("SELECT cccd FROM staff WHERE id = :s"), {"s": actor.staff_id}
        )
        registered = conn.scalar(
            text(
                "SELECT 1 FROM certificate WHERE sha256 = :h AND staff_id = :s "
                "AND status = 'approved'"
            ),
            {"h": signer_sha, "s": actor.staff_id},
        )
        if not staff_cccd or cccd_of(signer.certificate) != staff_cccd or not registered:
            raise IssuanceError(
                f"Chứng thư số đang dùng không phải chứng thư đã đăng ký của {actor.name}; "
                "hãy chọn đúng thiết bị ký (USB token, ký số từ xa) của mình."
            )
    ids = checked.ok
    if slot == "GVCN":
        stored: dict[int, uuid.UUID | None] = dict(
            conn.execute(
                text("SELECT id, lookup_code FROM hoc_ba WHERE id = ANY(:ids)"), {"ids": ids}
            ).all()
        )
        codes = {rid: code or uuid.uuid4() for rid, code in stored.items()}
        documents = load_documents(session, ids, now.date())
        unsigned: dict[int, bytes] = {}
        for rid in ids:
            doc = documents[rid]
            doc.thong_tin_chung["MA_TRA_CUU_UUID"] = str(codes[rid])
            unsigned[rid] = build_record_xml(doc)
        extra: dict[str, str] | None = {"SO_CCCD": staff_cccd}
    else:
        rows = conn.execute(
            text(
                "SELECT r.id, w.signed_xml, r.lookup_code, s.code FROM hoc_ba r "
                "JOIN school s ON s.id = r.school_id "
                "LEFT JOIN hoc_ba_signing w ON w.record_id = r.id WHERE r.id = ANY(:ids)"
            ),
            {"ids": ids},
        ).all()
        unsigned, codes = {}, {}
        approved: dict[str, bool] = {}
        for rid, xml, code, school_code in rows:
            codes[rid] = code
            if slot == "CBQL":
                tree = parse_record_xml_safely(xml)
                named = tree.findtext("DU_LIEU_HOC_BA/THONG_TIN_CHUNG/SO_CCCD_GIAM_HIEU_KY_HOC_BA")
                if named != staff_cccd:
                    result.failed[rid] = (
                        f"Học bạ #{rid} ghi người ký là cán bộ quản lý khác; hãy trả lại GVCN "
                        "để lập lại dữ liệu với đúng người ký."
                    )
                    continue
                keep_parsed(xml, tree)  # sign_slots takes this tree instead of parsing again
            else:
                if school_code not in approved:
                    approved[school_code] = any(
                        c.sha256 == signer_sha and c.status == "approved"
                        for c in certificates.school_certificates(session, school_code)
                    )
                if not approved[school_code]:
                    result.failed[rid] = (
                        f"Chứng thư số tổ chức dùng để đóng dấu chưa được Phòng/Sở phê duyệt "
                        f"cho trường {school_code}."
                    )
                    continue
            unsigned[rid] = xml
        extra = {"SO_CCCD": staff_cccd} if slot == "CBQL" else None
    if not unsigned:
        return result
    order = list(unsigned)
    signed = dict(
        zip(order, sign_slots([unsigned[r] for r in order], slot, signer, now, extra), strict=True)
    )
    tsa = tsa or configured_tsa()
    signed, waiting_why = stamp_signed(signed, tsa)
    if slot == "KY_PHAT_HANH":
        for rid in order:
            report = verify_record_signatures(signed[rid], trust_anchors)
            if not report.ok:
                issues = [i.message_vi for s in report.slots.values() for i in s.errors]
                issues += [i.message_vi for i in report.errors]
                result.failed[rid] = "Học bạ không qua được kiểm tra chữ ký: " + "; ".join(
                    issues[:3]
                )
                del signed[rid]
    applied = transition(
        session,
        list(signed),
        action,
        actor,
        now=now,
        payloads={
            rid: {"signed_xml": xml, "lookup_code": codes[rid]} for rid, xml in signed.items()
        },
    )
    result.ok = applied.ok
    result.failed.update(applied.failed)
    if tsa is not None:
        _after_timestamps(session, {r: signed[r] for r in applied.ok}, waiting_why, trust_anchors)
    if slot == "KY_PHAT_HANH" and applied.ok:
        # an issued correction supersedes the revoked record it replaces
        old = list(
            conn.scalars(
                text(
                    "SELECT o.id FROM hoc_ba n JOIN hoc_ba o ON o.id = n.supersedes_id "
                    "WHERE n.id = ANY(:ids) AND o.state = 'revoked'"
                ),
                {"ids": applied.ok},
            )
        )
        if old:
            from hocba.models.lifecycle import SYSTEM

            transition(session, old, "supersede", SYSTEM, now=now)
    return result


def _after_timestamps(
    session: Session,
    signed: dict[int, bytes],
    waiting_why: str | None,
    anchors: Sequence[x509.Certificate],
) -> None:
    """Queue the records left at B level (TSA down), or note the stamped ones' expiry."""
    if waiting_why is None:
        dequeue(session, list(signed))
        note_expiry(session, signed, anchors)
    else:  # signed at B level: a flow upgrades them later
        queue_waiting(session, list(signed), waiting_why)


def pki_directory(home: Path) -> Path:
    return home / "pki"


def trust_anchors(home: Path) -> list[x509.Certificate]:
    """The configured trust anchors: ``HOCBA_TRUST_ANCHORS`` (PEM files, ``:``-separated)
    or, by default, the project's test root in ``$HOCBA_HOME/pki``."""
    paths = list(load_settings().trust_anchors)
    if not paths:
        root = pki_directory(home) / "root-ca.pem"  # the test root (its key is not needed)
        if not root.exists():
            return []
        paths = [root]
    anchors: list[x509.Certificate] = []
    for p in paths:
        anchors.extend(x509.load_pem_x509_certificates(p.read_bytes()))
    return anchors


def crl_source(home: Path) -> CrlSource:
    """The CRL source of the configured trust: the test root's CRL in ``$HOCBA_HOME/pki``,
    read on each call (a revocation issued meanwhile counts); unreadable → the verifier's
    "cannot check now" (:class:`~hocba.xml.verify.CrlUnavailable`)."""
    path = pki_directory(home) / "root-ca.crl.pem"

    def source(_certificate: x509.Certificate) -> x509.CertificateRevocationList:
        try:
            return x509.load_pem_x509_crl(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise CrlUnavailable(f"không tải được danh sách thu hồi (CRL): {exc}") from None

    return source
