"""Long-term validity of issued records in the database (issue 12): timestamp at signing,
the queue when the TSA is down, the upgrade of queued records, and archive renewal.

* :func:`stamp_signed` is the timestamp step of ``sign_batch``: every freshly signed
  document gets RFC 3161 signature timestamps (hocba/xml/timestamps.py). If the TSA cannot be
  reached the documents stay at B level — **a TSA outage costs a conformance level, never
  a signature** — and the caller queues them with :func:`queue_waiting`.
* :func:`upgrade_waiting` works off ``timestamp_queue`` (hocba/flows/timestamps.py, scheduled):
  claim a chunk with ``FOR UPDATE SKIP LOCKED``, add the missing timestamps, write each
  record with its audit event ``timestamp_upgrade``.
* :func:`renew_archive` adds an archive timestamp to every record whose newest time-stamp's
  TSA certificate expires within ``horizon``, after validating the whole chain (signatures,
  every time-stamp, the signers' revocation status by OCSP at the timestamp time);
  each renewal is an audit event ``timestamp_renewal``.

For an issued (locked) record these writes are the only change PostgreSQL allows
(migration 0010 checks that only unsigned time-stamp blocks were added, that
``hocba.timestamp_upgrade`` is on, and that the audit event naming the new hash exists).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import text
from sqlmodel import Session

from hocba.config import load_settings
from hocba.models import stored_xml
from hocba.models.lifecycle import SYSTEM, Actor, BatchResult
from hocba.pki.ocsp import OcspClient, OcspStatus, OcspUnavailable
from hocba.xml.dsig import verify_record_signatures
from hocba.xml.record import SIGNATURE_SLOTS, parse_record_xml_safely
from hocba.xml.timestamps import (
    TimestampError,
    TimestampUnavailable,
    TsaClient,
    add_archive_timestamp,
    add_signature_timestamps,
    check_record_timestamps,
    evidence_expiry,
    missing_timestamp_slots,
)

__all__ = [
    "configured_crl_source",
    "configured_crls",
    "configured_ocsp_source",
    "configured_tsa",
    "queue_waiting",
    "renew_archive",
    "stamp_signed",
    "upgrade_waiting",
    "waiting_count",
]

log = logging.getLogger(__name__)
LOCKED = ("issued", "submitted", "accepted", "rejected", "revoked", "superseded")

_CLIENTS: dict[str, TsaClient] = {}
_CLIENTS_LOCK = threading.Lock()
C = TypeVar("C")


def configured_tsa() -> TsaClient | None:
    """The TSA of ``HOCBA_TSA_URL`` (one pooled client per URL and process), or ``None``."""
    url = load_settings().tsa_url
    return _pooled(_CLIENTS, url, TsaClient) if url else None


_OCSP: dict[str, OcspClient] = {}


def configured_ocsp_source() -> Callable[[x509.Certificate, x509.Certificate], OcspStatus] | None:
    """``ocsp_source`` for :func:`hocba.xml.verify.verify_document` from
    ``HOCBA_OCSP_URL`` (one pooled client per URL and process), or ``None``."""
    url = load_settings().ocsp_url
    return _pooled(_OCSP, url, OcspClient).status if url else None


def _pooled(pool: dict[str, C], url: str, client: Callable[[str], C]) -> C:
    """The process's one client of ``url`` in ``pool`` (made on first use)."""
    with _CLIENTS_LOCK:
        if url not in pool:
            pool[url] = client(url)
        return pool[url]


def _read_configured_crl() -> x509.CertificateRevocationList:
    """The CRL of ``HOCBA_CRL_URL`` (DER or PEM), else the test PKI's CRL file; raises
    ``CrlUnavailable`` with a Vietnamese reason."""
    import httpx

    from hocba.tasks.issuance import crl_source
    from hocba.xml.verify import CrlUnavailable

    settings = load_settings()
    if not settings.crl_url:
        return crl_source(settings.home)(None)  # type: ignore[arg-type]
    try:
        data = httpx.get(settings.crl_url, timeout=10).raise_for_status().content
        if data.startswith(b"-----"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except (OSError, ValueError, httpx.HTTPError) as exc:
        raise CrlUnavailable(f"không tải được danh sách thu hồi (CRL): {exc}") from None


def configured_crl_source() -> Callable[[x509.Certificate], x509.CertificateRevocationList]:
    """``crl_source`` for :func:`hocba.xml.verify.verify_document` (``hocba verify``, the
    Kiểm tra page): :func:`_read_configured_crl`, read afresh on every call."""
    return lambda _certificate: _read_configured_crl()


def configured_crls() -> list[x509.CertificateRevocationList]:
    """:func:`_read_configured_crl` as a list, ``[]`` when it cannot be read now (the
    caller then cannot check revocation by CRL)."""
    from hocba.xml.verify import CrlUnavailable

    try:
        return [_read_configured_crl()]
    except CrlUnavailable:
        return []


def stamp_signed(
    signed: Mapping[int, bytes], tsa: TsaClient | None
) -> tuple[dict[int, bytes], str | None]:
    """Add the missing signature timestamps to every document; ``(documents, None)``, or
    the documents unchanged and why when the TSA is unavailable (or none is configured)."""
    if tsa is None:
        return dict(signed), "chưa cấu hình máy chủ dấu thời gian (HOCBA_TSA_URL)"
    order = list(signed)
    try:
        stamped = add_signature_timestamps([signed[r] for r in order], tsa)
    except TimestampUnavailable as exc:
        log.warning("TSA unavailable, %d records signed at B level", len(order))
        return dict(signed), exc.message_vi
    return dict(zip(order, stamped, strict=True)), None


def queue_waiting(
    session: Session, record_ids: Sequence[int], reason: str, kind: str = "signature"
) -> None:
    """Put records in ``timestamp_queue`` (or note one more failed attempt)."""
    if not record_ids:
        return
    session.connection().execute(
        text(
            "INSERT INTO timestamp_queue (record_id, kind, last_error) "
            "SELECT unnest(CAST(:ids AS integer[])), :kind, :why "
            "ON CONFLICT (record_id) DO UPDATE SET attempts = timestamp_queue.attempts + 1, "
            "last_error = EXCLUDED.last_error"
        ),
        {"ids": list(record_ids), "kind": kind, "why": reason[:500]},
    )


def dequeue(session: Session, record_ids: Sequence[int]) -> None:
    if record_ids:
        session.connection().execute(
            text("DELETE FROM timestamp_queue WHERE record_id = ANY(:ids)"),
            {"ids": list(record_ids)},
        )


def note_expiry(
    session: Session, documents: Mapping[int, bytes], trusted_roots: Sequence[x509.Certificate]
) -> None:
    """Remember, per record, until when its time-stamps protect it (renewal schedule)."""
    rows = []
    for rid, xml in documents.items():
        slots, archives = check_record_timestamps(parse_record_xml_safely(xml), trusted_roots)
        expires = evidence_expiry(slots, archives)
        if expires is not None:
            rows.append({"r": rid, "e": expires})
    if rows:
        session.connection().execute(
            text(
                "INSERT INTO timestamp_expiry (record_id, expires_at, stamped_at) "
                "VALUES (:r, :e, now()) ON CONFLICT (record_id) DO UPDATE "
                "SET expires_at = EXCLUDED.expires_at, stamped_at = now()"
            ),
            rows,
        )


def waiting_count(session: Session, school_codes: Sequence[str] | None = None) -> int:
    """How many records wait for a time-stamp (all, or of these schools)."""
    sql = "SELECT count(*) FROM timestamp_queue q"
    params: dict[str, object] = {}
    if school_codes is not None:
        sql += (
            " JOIN hoc_ba r ON r.id = q.record_id JOIN school s ON s.id = r.school_id "
            "WHERE s.code = ANY(:codes)"
        )
        params["codes"] = list(school_codes)
    return int(session.connection().scalar(text(sql), params) or 0)


def _write_xml(
    session: Session,
    rid: int,
    school_code: str,
    xml: bytes,
    action: str,
    actor: Actor,
    payload: dict[str, object],
) -> None:
    """Store the new XML of a record with its audit event (the order the trigger checks)."""
    sha = hashlib.sha256(xml).hexdigest()
    conn = session.connection()
    # the actor's label ("staff:<id>" / "system"), as every other audit writer records it
    actor.append_event(
        session, school_code, action, record_id=rid, payload={"xml_sha256": sha, **payload}
    )
    # a record still being signed keeps its XML in hoc_ba_signing until the seal
    pending = conn.execute(
        text("UPDATE hoc_ba_signing SET signed_xml = :x WHERE record_id = :r"),
        {"x": xml, "r": rid},
    )
    if pending.rowcount:
        return
    conn.execute(text("SELECT set_config('hocba.timestamp_upgrade', 'on', true)"))
    conn.execute(
        text("UPDATE hoc_ba SET signed_xml = :x, xml_sha256 = :h WHERE id = :r"),
        {"x": stored_xml.pack(conn, [xml])[0], "h": sha, "r": rid},
    )
    conn.execute(text("SELECT set_config('hocba.timestamp_upgrade', 'off', true)"))


def upgrade_waiting(
    session: Session,
    tsa: TsaClient,
    trusted_roots: Sequence[x509.Certificate],
    *,
    limit: int = 200,
    actor: Actor = SYSTEM,
) -> BatchResult:
    """Add the missing signature timestamps to up to ``limit`` queued records (caller's
    transaction). A TSA still down leaves every record queued, with the attempt noted."""
    result = BatchResult("timestamp_upgrade")
    conn = session.connection()
    rows = conn.execute(
        text(
            "SELECT r.id, COALESCE(r.signed_xml, w.signed_xml), s.code FROM timestamp_queue q "
            "JOIN hoc_ba r ON r.id = q.record_id JOIN school s ON s.id = r.school_id "
            "LEFT JOIN hoc_ba_signing w ON w.record_id = r.id "
            "WHERE q.kind = 'signature' ORDER BY q.queued_at, q.record_id LIMIT :n "
            "FOR UPDATE OF q, r SKIP LOCKED"
        ),
        {"n": limit},
    ).all()
    if not rows:
        return result
    # the issued XML (certificates by reference) or the one still being signed (never)
    docs = stored_xml.unpack(conn, [xml for _, xml, _ in rows])
    current = {rid: doc for (rid, _, _), doc in zip(rows, docs, strict=True) if doc is not None}
    stamped, why = stamp_signed(current, tsa)
    if why is not None:
        queue_waiting(session, list(current), why)
        result.failed = dict.fromkeys(current, why)
        return result
    done = []
    for rid, _, school_code in rows:
        if rid not in current:  # nothing signed (anymore): nothing to wait for
            done.append(rid)
            continue
        if stamped[rid] != current[rid]:
            slots = [s for s in missing_timestamp_slots(current[rid]) if s in SIGNATURE_SLOTS]
            _write_xml(
                session,
                rid,
                school_code,
                stamped[rid],
                "timestamp_upgrade",
                actor,
                {"slots": slots},
            )
        done.append(rid)
    note_expiry(session, {r: stamped[r] for r in done if r in stamped}, trusted_roots)
    dequeue(session, done)
    result.ok = done
    return result


def validate_for_renewal(
    xml: bytes,
    trusted_roots: Sequence[x509.Certificate],
    ocsp: OcspClient | None,
    now: dt.datetime,
    crls: Sequence[x509.CertificateRevocationList] = (),
) -> tuple[str | None, list[x509.Certificate], list[bytes]]:
    """Validate the whole chain of evidence before renewing: every signature, every
    time-stamp, and each signer's status at its timestamp time (OCSP, else one of
    ``crls``; neither → not renewed). Returns
    (problem or None, TSA certificates, OCSP responses) — the latter two are embedded."""
    signatures = verify_record_signatures(xml, trusted_roots)
    if not signatures.ok:
        codes = [str(i.code) for s in signatures.slots.values() for i in s.errors]
        return f"chữ ký không hợp lệ ({', '.join(codes[:3])})", [], []
    root = parse_record_xml_safely(xml)
    slots, archives = check_record_timestamps(root, trusted_roots)
    broken = [c for c in [*slots.values(), *archives] if c.info is None]
    if broken:
        return f"dấu thời gian {broken[0].label} không hợp lệ: {broken[0].error}", [], []
    missing = [s for s in SIGNATURE_SLOTS if s not in slots]
    if missing:
        return f"ô {', '.join(missing)} chưa có dấu thời gian chữ ký", [], []
    for checked in [*slots.values(), *archives]:
        assert checked.info is not None
        if checked.info.expires <= now:
            return f"chứng thư TSA của dấu thời gian {checked.label} đã hết hạn", [], []
    tsa_certificates = list(
        {c.info.tsa_certificate for c in [*slots.values(), *archives] if c.info}
    )
    responses: list[bytes] = []
    for slot, outcome in signatures.slots.items():
        certificate = outcome.certificate
        issuer = next(
            (r for r in trusted_roots if certificate and certificate.issuer == r.subject), None
        )
        if certificate is None or issuer is None:
            return f"không xác định được CA cấp chứng thư ô {slot}", [], []
        stamp_time = slots[slot].info.time  # type: ignore[union-attr]
        revoked_at: dt.datetime | None = None
        try:
            if ocsp is None:
                raise OcspUnavailable("chưa cấu hình HOCBA_OCSP_URL")
            status = ocsp.status(certificate, issuer, now)
            revoked_at = status.revoked_at
            responses.append(status.response_der)
        except OcspUnavailable as exc:  # the CRL of the issuer, if it is given and genuine
            crl = next(
                (c for c in crls if c.issuer == issuer.subject and _crl_signed(c, issuer)), None
            )
            if crl is None:
                return f"chưa kiểm tra được tình trạng thu hồi ({exc}; không có CRL)", [], []
            entry = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
            revoked_at = None if entry is None else entry.revocation_date_utc
        if revoked_at is not None and revoked_at <= stamp_time:
            return f"chứng thư ô {slot} bị thu hồi trước dấu thời gian", [], []
    return None, tsa_certificates, responses


def _crl_signed(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    return isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey) and bool(
        crl.is_signature_valid(key)
    )


def renew_archive(
    session: Session,
    tsa: TsaClient,
    trusted_roots: Sequence[x509.Certificate],
    *,
    ocsp: OcspClient | None = None,
    crls: Sequence[x509.CertificateRevocationList] = (),
    horizon: dt.timedelta = dt.timedelta(days=180),
    limit: int = 200,
    now: dt.datetime | None = None,
    actor: Actor = SYSTEM,
) -> BatchResult:
    """Add one archive timestamp to each issued record whose evidence expires within
    ``horizon`` (oldest first, at most ``limit``), after :func:`validate_for_renewal`."""
    now = now or dt.datetime.now(dt.UTC)
    result = BatchResult("timestamp_renewal")
    conn = session.connection()
    rows = conn.execute(
        text(
            "SELECT r.id, r.signed_xml, s.code FROM timestamp_expiry e "
            "JOIN hoc_ba r ON r.id = e.record_id JOIN school s ON s.id = r.school_id "
            "WHERE e.expires_at < :due AND r.state = ANY(:locked) "
            "ORDER BY e.expires_at, r.id LIMIT :n FOR UPDATE OF e, r SKIP LOCKED"
        ),
        {"due": now + horizon, "locked": list(LOCKED), "n": limit},
    ).all()
    renewed: dict[int, bytes] = {}
    docs = stored_xml.unpack(conn, [xml for _, xml, _ in rows])
    for (rid, _, school_code), xml in zip(rows, docs, strict=True):
        assert xml is not None  # an issued record has its XML
        problem, certificates, responses = validate_for_renewal(xml, trusted_roots, ocsp, now, crls)
        if problem is not None:
            result.failed[rid] = problem
            continue
        try:
            new = add_archive_timestamp(
                xml, tsa, certificates=certificates, ocsp_responses=responses
            )
        except TimestampError as exc:
            result.failed[rid] = exc.message_vi
            continue
        slots, archives = check_record_timestamps(parse_record_xml_safely(new), trusted_roots)
        expires = evidence_expiry(slots, archives)
        if expires is None or expires <= now + horizon:  # renewing would not extend anything
            result.failed[rid] = (
                "chứng thư của máy chủ dấu thời gian hiện tại cũng sắp hết hạn: "
                "cần TSA có chứng thư mới để gia hạn"
            )
            continue
        _write_xml(
            session,
            rid,
            school_code,
            new,
            "timestamp_renewal",
            actor,
            {"ocsp_responses": len(responses)},
        )
        renewed[rid] = new
    note_expiry(session, renewed, trusted_roots)
    result.ok = list(renewed)
    return result
