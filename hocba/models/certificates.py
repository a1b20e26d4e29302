"""The certificate registry (HOCBA_SPEC §4, portal transactions 3 and 4).

A school registers its organisation certificate (the seal); a district officer whose unit
covers the school approves or rejects it; only an approved certificate may seal
(``KY_PHAT_HANH``). Staff's personal certificates are registered so that signatures can be
matched to people; they are issued by a licensed CA to the person and need no district
approval (status ``approved`` on registration). Every decision is an audit event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import text
from sqlmodel import Session

from hocba.db import one_row
from hocba.errors import HocbaError
from hocba.models import audit
from hocba.models.lifecycle import VN_TZ, Actor, load_grants

KINDS = ("USB_TOKEN", "REMOTE_SIGNING", "HSM", "SOFTWARE")
PROVIDERS = ("VNPT", "BKAV", "VIETTEL", "BAN_CO_YEU", "TEST")


class CertificateError(HocbaError, ValueError):
    """A registry operation was refused; the message (Vietnamese) says why."""


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, hex."""
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


@dataclass(frozen=True)
class RegisteredCertificate:
    id: int
    sha256: str
    status: str
    key_ref: str | None
    der: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)


def register(
    session: Session,
    cert: x509.Certificate,
    *,
    school_code: str | None = None,
    username: str | None = None,
    kind: str = "SOFTWARE",
    provider: str = "TEST",
    key_ref: str | None = None,
    actor: Actor,
) -> int:
    """Register a certificate for a school (``school_code``) or a staff member."""
    if (school_code is None) == (username is None):
        raise CertificateError("Chứng thư số phải thuộc đúng một trường hoặc một người.")
    if kind not in KINDS or provider not in PROVIDERS:
        raise CertificateError(f"Loại chứng thư {kind}/{provider} không hợp lệ.")
    conn = session.connection()
    owner = conn.execute(
        text("SELECT id, code FROM school WHERE code = :c")
        if school_code
        else text(
            "SELECT s.id, COALESCE(sc.code, 'system') FROM staff s LEFT JOIN LATERAL ("
            "SELECT sch.code FROM staff_role r JOIN school sch ON sch.id = r.school_id "
            "WHERE r.staff_id = s.id ORDER BY r.id LIMIT 1) sc ON true "
            "WHERE s.username = :c"
        ),
        {"c": school_code or username},
    ).one_or_none()
    if owner is None:
        raise CertificateError(
            f"Không tìm thấy {'trường' if school_code else 'cán bộ'} «{school_code or username}»."
        )
    sha = fingerprint(cert)
    cert_id = conn.scalar(
        text("""
            INSERT INTO certificate (owner_kind, school_id, staff_id, sha256, serial_number,
                subject, issuer, not_before, not_after, der, kind, provider, status, key_ref)
            VALUES (:ok, :sch, :st, :sha, :serial, :subject, :issuer, :nb, :na, :der, :kind,
                    :provider, :status, :key_ref)
            ON CONFLICT (sha256) DO UPDATE SET key_ref = excluded.key_ref
            RETURNING id
        """),
        {
            "ok": "school" if school_code else "staff",
            "sch": owner[0] if school_code else None,
            "st": owner[0] if username else None,
            "sha": sha,
            "serial": format(cert.serial_number, "x"),
            "subject": cert.subject.rfc4514_string(),
            "issuer": cert.issuer.rfc4514_string(),
            "nb": cert.not_valid_before_utc,
            "na": cert.not_valid_after_utc,
            "der": cert.public_bytes(Encoding.DER),
            "kind": kind,
            "provider": provider,
            "status": "pending" if school_code else "approved",
            "key_ref": key_ref,
        },
    )
    audit.append(
        session,
        [
            audit.NewEvent(
                chain=audit.school_chain(owner[1])
                if school_code or owner[1] != "system"
                else "system",
                actor=actor.label,
                actor_id=actor.staff_id,
                action="register_certificate",
                payload={"certificate_sha256": sha, "owner": "school" if school_code else "staff"},
            )
        ],
    )
    return int(cert_id)


def decide(
    session: Session, cert_id: int, actor: Actor, *, approve: bool, reason: str | None = None
) -> None:
    """A district officer approves or rejects a school's organisation certificate."""
    conn = session.connection()
    row = conn.execute(
        text(
            "SELECT c.owner_kind, c.school_id, c.status, c.sha256, s.code FROM certificate c "
            "LEFT JOIN school s ON s.id = c.school_id WHERE c.id = :i FOR UPDATE OF c"
        ),
        {"i": cert_id},
    ).one_or_none()
    if row is None or row.owner_kind != "school":
        raise CertificateError("Không có chứng thư số tổ chức này.")
    if row.status != "pending":
        raise CertificateError(f"Chứng thư số đã được xử lý (trạng thái: {row.status}).")
    if not approve and not (reason or "").strip():
        raise CertificateError("Từ chối chứng thư số cần ghi rõ lý do.")
    now = dt.datetime.now(dt.UTC)
    grants = load_grants(session, actor, now.astimezone(VN_TZ).date())
    if "district_officer" not in grants.roles_at(row.school_id):
        raise CertificateError(
            f"{actor.name} không có quyền phê duyệt chứng thư số của trường {row.code}."
        )
    conn.execute(
        text(
            "UPDATE certificate SET status = :st, decided_by = :by, decided_at = :at, "
            "decision_reason = :r WHERE id = :i"
        ),
        {
            "st": "approved" if approve else "rejected",
            "by": actor.staff_id,
            "at": now,
            "r": reason,
            "i": cert_id,
        },
    )
    actor.append_event(
        session,
        row.code,
        "approve_certificate" if approve else "reject_certificate",
        at=now,
        reason=reason,
        payload={"certificate_sha256": row.sha256},
    )


def set_kind(session: Session, username: str, kind: str, provider: str, actor: Actor) -> int:
    """Record how a staff member's newest personal certificate is held (a software key, a
    remote signing account, a USB token): what the dashboard offers them to sign with."""
    if kind not in KINDS or provider not in PROVIDERS:
        raise CertificateError(f"Loại chứng thư {kind}/{provider} không hợp lệ.")
    conn = session.connection()
    row = one_row(
        conn,
        "UPDATE certificate SET kind = :k, provider = :p WHERE id = (SELECT c.id FROM "
        "certificate c JOIN staff st ON st.id = c.staff_id WHERE st.username = :u "
        "ORDER BY c.id DESC LIMIT 1) RETURNING id, sha256",
        {"k": kind, "p": provider, "u": username},
        CertificateError(f"Cán bộ «{username}» chưa có chứng thư số cá nhân đã đăng ký."),
    )
    audit.append(
        session,
        [
            audit.NewEvent(
                chain="system",
                actor=actor.label,
                actor_id=actor.staff_id,
                action="certificate_kind",
                payload={"certificate_sha256": row.sha256, "kind": kind, "provider": provider},
            )
        ],
    )
    return int(row[0])


def school_certificates(session: Session, school_code: str) -> list[RegisteredCertificate]:
    """A school's organisation certificates, newest first."""
    rows = (
        session.connection()
        .execute(
            text(
                "SELECT c.id, c.sha256, c.status, c.key_ref, c.der FROM certificate c "
                "JOIN school s ON s.id = c.school_id WHERE s.code = :c ORDER BY c.id DESC"
            ),
            {"c": school_code},
        )
        .all()
    )
    return [RegisteredCertificate(*r) for r in rows]


def staff_certificate(session: Session, staff_id: int) -> RegisteredCertificate | None:
    """The staff member's newest registered personal certificate."""
    row = (
        session.connection()
        .execute(
            text(
                "SELECT id, sha256, status, key_ref, der FROM certificate WHERE staff_id = :s "
                "AND status = 'approved' ORDER BY id DESC LIMIT 1"
            ),
            {"s": staff_id},
        )
        .one_or_none()
    )
    return RegisteredCertificate(*row) if row else None


def key_refs(session: Session) -> dict[str, str]:
    """Where each registered key lives, by signer label: the staff member's username, or
    ``truong-<MA_TRUONG>`` for a school's seal (the label the test PKI and the remote
    signing service use)."""
    rows = (
        session.connection()
        .execute(
            text(
                "SELECT COALESCE(st.username, 'truong-' || sc.code), c.key_ref "
                "FROM certificate c LEFT JOIN staff st ON st.id = c.staff_id "
                "LEFT JOIN school sc ON sc.id = c.school_id WHERE c.key_ref IS NOT NULL "
                "ORDER BY c.id"
            )
        )
        .all()
    )
    return dict(rows)
