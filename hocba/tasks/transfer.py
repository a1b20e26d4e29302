"""Transfers between schools (chuyển trường, HOCBA_SPEC §5).

The leaving school exports a **transfer package**: a ZIP holding every issued record of
the pupil (its own and those it inherited), byte for byte, and a manifest (pupil, schools,
leaving date, the SHA-256 of each record) signed by the leaving school's approved seal.
The receiving school, in the same or another district or system:

1. checks the manifest's signature (chain to the trust anchors, the seal belongs to the
   leaving school) and that every file matches the manifest;
2. verifies every record fully (``verify_document``, with the CRLs of ``crl_source``); one
   INVALID record refuses the whole package (nothing is taken in). Only VALID records go
   straight in: a record with checks that cannot be made now (roles of another system's
   staff, a CRL outage — INDETERMINATE) sends the package to the manual review queue
   with the checks named (issue 16); a person takes it in (``unverified_confirmed``,
   audited) or refuses it, or it is received again once the checks can be made;
3. matches the pupil by personal ID, then name and date of birth: a pupil known under the
   same ID with another name or birth date goes to the manual review queue;
4. takes the records in read-only (``received_record``; the database refuses any change)
   and signs a **receipt** with its own seal, which the leaving school records.

Both schools see the transfer's state (one ``transfer`` row per package and destination);
each step is one move of the transfer transition table, made by
:func:`hocba.models.transfer_lifecycle.transition_transfer` with its audit event.
The pupil's later records continue at the new school through its own import. A pupil who
leaves mid-year has this year's record issued (signed and sealed) before the export.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import io
import json
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import text
from sqlmodel import Session

from hocba.db import one_row
from hocba.models import stored_xml
from hocba.models.certificates import fingerprint
from hocba.models.lifecycle import SYSTEM, VN_TZ, Actor
from hocba.models.transfer_lifecycle import TransferError, check_may, transition_transfer
from hocba.pki.chain import issued_by, valid_at
from hocba.pki.signer import Signer, verify_digest_signature
from hocba.tasks.registry import DatabaseRegistry
from hocba.xml.record import parse_record_xml_safely
from hocba.xml.verify import CheckStatus, CrlSource, Verdict, VerificationReport, verify_document

FORMAT = "hocba-transfer/1"
MAX_PACKAGE_BYTES = 50 * 1024 * 1024
UNVERIFIED_REASON = "Chưa kiểm tra được đầy đủ"
"""How the review reason of a package with INDETERMINATE records begins (that part always
comes last in ``transfer.review_reason``)."""


@dataclass
class ReceiveResult:
    transfer_id: int
    state: str
    records: int
    notes: list[str] = field(default_factory=list)
    receipt: bytes | None = None


def _sign_json(payload: dict[str, Any], signer: Signer) -> dict[str, str]:
    body = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()
    value = signer.sign_digests([hashlib.sha256(body).digest()])[0]
    return {
        "algorithm": signer.algorithm,
        "certificate": base64.b64encode(signer.certificate.public_bytes(Encoding.DER)).decode(),
        "signature": base64.b64encode(value).decode(),
    }


def _check_signed_json(
    body: bytes,
    sig: dict[str, str],
    trusted_roots: Sequence[x509.Certificate],
    school_code: str,
    what: str = "gói chuyển trường",
) -> x509.Certificate:
    try:
        cert = x509.load_der_x509_certificate(base64.b64decode(sig["certificate"]))
        value = base64.b64decode(sig["signature"])
    except (KeyError, ValueError, TypeError) as exc:
        raise TransferError(f"Chữ ký của {what} bị hỏng.") from exc
    if not verify_digest_signature(
        cert, sig.get("algorithm", ""), hashlib.sha256(body).digest(), value
    ):
        raise TransferError(f"Chữ ký của {what} không hợp lệ (nội dung đã bị sửa?).")
    now = dt.datetime.now(dt.UTC)
    if not (valid_at(cert, now) and any(issued_by(cert, root) for root in trusted_roots)):
        raise TransferError(f"Chứng thư số ký {what} không thuộc tổ chức cấp tin cậy.")
    serials = [
        str(a.value) for a in cert.subject.get_attributes_for_oid(x509.NameOID.SERIAL_NUMBER)
    ]
    if f"MATRUONG:{school_code}" not in serials:
        raise TransferError(
            f"{what[0].upper()}{what[1:]} không được ký bằng con dấu của trường {school_code}."
        )
    return cert


def _signed_notice(kind: str, body: dict[str, Any], seal: Signer) -> bytes:
    """A receipt or a refusal: ``body`` under ``kind``, signed by the receiving school."""
    signed = {kind: body, "signature": _sign_json(body, seal)}
    return json.dumps(signed, ensure_ascii=False).encode()


def _read_notice(
    data: bytes, kind: str, trusted_roots: Sequence[x509.Certificate], what: str
) -> tuple[dict[str, Any], str]:
    """The body of a :func:`_signed_notice` and the school that signed it, checked: the
    signature, the chain, and that the seal is the school the body names as ``to_school``."""
    try:
        parsed = json.loads(data)
        body = parsed[kind]
        raw = json.dumps(body, ensure_ascii=False, sort_keys=True).encode()
        signature, to_school = parsed["signature"], str(body["to_school"])
    except _MALFORMED as exc:
        raise TransferError(f"{what[0].upper()}{what[1:]} không hợp lệ.") from exc
    _check_signed_json(raw, signature, trusted_roots, to_school, what)
    return body, to_school


def export_package(
    session: Session,
    pupil_code: str,
    to_school_code: str,
    leaving_date: dt.date,
    actor: Actor,
    seal: Signer,
) -> tuple[bytes, int]:
    """Build and sign the transfer package of a pupil leaving the actor's school."""
    conn = session.connection()
    pupil = one_row(
        conn,
        "SELECT p.id, p.full_name, p.birth_date, p.cccd, e.id AS enrolment_id, "
        "s.id AS school_id, s.code AS school_code FROM pupil p "
        "JOIN enrolment e ON e.pupil_id = p.id AND e.left_on IS NULL "
        "JOIN school s ON s.id = e.school_id WHERE p.pupil_code = :c "
        "ORDER BY e.id DESC LIMIT 1",
        {"c": pupil_code},
        TransferError(f"Không có học sinh mã {pupil_code} đang học ở trường nào."),
    )
    check_may(session, actor, "transfer_out", pupil.school_code)
    if not pupil.cccd:
        raise TransferError(
            "Học sinh chưa có mã định danh cá nhân: không có học bạ số để "
            "chuyển; hãy chuyển học bạ giấy."
        )
    if to_school_code == pupil.school_code:
        raise TransferError("Trường chuyển đến trùng với trường hiện tại.")
    pending = conn.scalar(
        text(
            "SELECT count(*) FROM hoc_ba WHERE pupil_id = :p AND state IN "
            "('draft','in_review','reviewed','teacher_signed','principal_signed')"
        ),
        {"p": pupil.id},
    )
    if pending:
        raise TransferError(
            "Học bạ năm học này chưa phát hành: hãy ký và đóng dấu (kết quả "
            "đến ngày chuyển đi) trước khi xuất gói chuyển trường."
        )
    rows = conn.execute(
        text("""
        SELECT lookup_code, signed_xml, true AS stored FROM hoc_ba WHERE pupil_id = :p
          AND state IN ('issued', 'submitted', 'accepted', 'rejected')
        UNION ALL
        SELECT lookup_code, xml, false FROM received_record WHERE pupil_id = :p
        ORDER BY 1"""),
        {"p": pupil.id},
    ).all()
    docs = stored_xml.unpack_where(conn, [(xml, stored) for _c, xml, stored in rows])
    records = [(code, doc) for (code, _x, _s), doc in zip(rows, docs, strict=True)]
    if not records:
        raise TransferError("Học sinh chưa có học bạ số nào đã phát hành để chuyển.")
    manifest = {
        "format": FORMAT,
        "from_school": pupil.school_code,
        "to_school": to_school_code,
        "leaving_date": leaving_date.isoformat(),
        "pupil": {
            "name": pupil.full_name,
            "birth_date": pupil.birth_date.isoformat(),
            "cccd": pupil.cccd,
        },
        "records": [
            {"lookup_code": str(code), "sha256": hashlib.sha256(xml).hexdigest()}
            for code, xml in records
        ],
    }
    body = json.dumps(manifest, ensure_ascii=False, sort_keys=True).encode()
    signature = _sign_json(manifest, seal)
    if fingerprint(seal.certificate) not in set(
        conn.scalars(
            text("SELECT sha256 FROM certificate WHERE school_id = :s AND status = 'approved'"),
            {"s": pupil.school_id},
        )
    ):
        raise TransferError("Con dấu dùng để ký gói chưa được Phòng/Sở phê duyệt.")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", body)
        z.writestr("manifest.sig.json", json.dumps(signature))
        for code, xml in records:
            z.writestr(f"records/{code}.xml", bytes(xml))
    package = buf.getvalue()
    sha = hashlib.sha256(package).hexdigest()
    transfer_id = transition_transfer(
        session,
        "transfer_out",
        actor,
        values={
            "pupil_cccd_sha256": hashlib.sha256(pupil.cccd.encode()).hexdigest(),
            "pupil_name": pupil.full_name,
            "birth_date": pupil.birth_date,
            "from_school_code": pupil.school_code,
            "to_school_code": to_school_code,
            "leaving_date": leaving_date,
            "package_sha256": sha,
            "records": len(records),
            "pupil_id": pupil.id,
        },
        payload={"package_sha256": sha, "records": len(records)},
    )
    conn.execute(
        text("UPDATE enrolment SET left_on = :l WHERE id = :e"),
        {"l": leaving_date, "e": pupil.enrolment_id},
    )
    return package, transfer_id


_MALFORMED = (
    KeyError,
    TypeError,
    AttributeError,
    IndexError,
    ValueError,
    EOFError,
    RuntimeError,
    NotImplementedError,
    zlib.error,
)
P = ParamSpec("P")
R = TypeVar("R")


def _refusing_damage(receive: Callable[P, R]) -> Callable[P, R]:
    """``receive`` with any damage it trips on (:data:`_MALFORMED`) turned into a
    :class:`TransferError` that tells the receiving school what to ask for."""

    @functools.wraps(receive)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return receive(*args, **kwargs)
        except TransferError:
            raise
        except _MALFORMED as exc:
            raise TransferError(
                "Gói chuyển trường bị hỏng hoặc không đúng định dạng: không nhận. Hãy đề nghị "
                "trường chuyển đi xuất lại gói."
            ) from exc

    return guarded


@_refusing_damage
def receive_package(
    session: Session,
    package: bytes,
    actor: Actor,
    seal: Signer,
    trusted_roots: Sequence[x509.Certificate],
    to_school_code: str,
    identity_confirmed: bool = False,
    *,
    crl_source: CrlSource | None = None,
    unverified_confirmed: bool = False,
) -> ReceiveResult:
    """Verify a transfer package and take its records in (all or nothing).

    A package whose pupil does not match (same ID, another name or birth date) goes to
    the manual review queue (``needs_review``); once a person has compared the papers,
    receiving it again with ``identity_confirmed`` takes it in (the decision is audited).
    So does a package with a record that is not VALID but INDETERMINATE (a check that
    cannot be made now; the reason names them): receiving it again takes it in when the
    checks can be made by then, or with ``unverified_confirmed`` once a person has looked
    into them. Without ``crl_source`` revocation cannot be checked, so every package
    waits for a person. A package that is damaged in any way, or with an INVALID record,
    is refused with :class:`TransferError`.
    """
    conn = session.connection()
    check_may(session, actor, "transfer_in", to_school_code)  # before any costly check
    if len(package) > MAX_PACKAGE_BYTES:
        raise TransferError("Gói chuyển trường quá lớn.")
    try:
        z = zipfile.ZipFile(io.BytesIO(package))
        names = set(z.namelist())
        body = z.read("manifest.json")
        signature = json.loads(z.read("manifest.sig.json"))
        manifest = json.loads(body)
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise TransferError("Tệp không phải gói chuyển trường hợp lệ của học bạ số.") from exc
    if manifest.get("format") != FORMAT:
        raise TransferError("Gói chuyển trường không đúng định dạng.")
    if manifest.get("to_school") != to_school_code:
        raise TransferError(
            f"Gói này chuyển đến trường {manifest.get('to_school')}, không phải "
            f"trường {to_school_code}."
        )
    _check_signed_json(body, signature, trusted_roots, manifest["from_school"])
    expected = {f"records/{r['lookup_code']}.xml": r["sha256"] for r in manifest["records"]}
    if names != {"manifest.json", "manifest.sig.json", *expected}:
        raise TransferError("Gói chuyển trường có tệp thừa hoặc thiếu so với danh mục đã ký.")
    registry = DatabaseRegistry(session)
    records: list[tuple[str, bytes, str, Any]] = []
    notes: list[str] = []
    unverified: list[str] = []
    for name, sha in expected.items():
        xml = z.read(name)
        if hashlib.sha256(xml).hexdigest() != sha:
            raise TransferError(f"Tệp {name} không khớp danh mục đã ký.")
        report = verify_document(
            xml, trusted_roots=trusted_roots, registry=registry, crl_source=crl_source
        )
        if report.verdict is Verdict.INVALID:
            bad = [c for c in report.checks if c.status is CheckStatus.FAIL]
            raise TransferError(
                f"Học bạ {report.lookup_code} không hợp lệ: {bad[0].message_vi} [{bad[0].code}]"
            )
        if report.verdict is Verdict.INDETERMINATE:
            unverified.append(_unverified_checks(report))
        records.append((name, xml, report.verdict.value, report))
    pupil = manifest["pupil"]
    package_sha = hashlib.sha256(package).hexdigest()
    state, review_reason, pupil_id = _match_pupil(session, pupil, records)
    if state == "needs_review" and identity_confirmed and pupil_id is not None:
        state, review_reason = "accepted", f"Đã đối chiếu thủ công: {review_reason}"
    if unverified:  # only VALID records go straight in
        why = f"{UNVERIFIED_REASON} (cần cán bộ xem xét trước khi nhận): " + "; ".join(unverified)
        if unverified_confirmed:
            why = f"Đã xem xét thủ công: {why}"
            notes.append(
                f"Nhận {len(unverified)} học bạ chưa kiểm tra được đầy đủ sau khi cán bộ xem xét."
            )
        elif state == "accepted":
            state = "needs_review"
        review_reason = f"{review_reason}; {why}" if review_reason else why
    existing = conn.execute(
        text("SELECT id FROM transfer WHERE package_sha256 = :sha AND to_school_code = :t"),
        {"sha": package_sha, "t": to_school_code},
    ).scalar()
    # same system: the leaving school's row moves on (both schools see one transfer)
    values: dict[str, Any] = {"review_reason": review_reason}
    if not existing:
        values |= {
            "pupil_cccd_sha256": hashlib.sha256(pupil["cccd"].encode()).hexdigest(),
            "pupil_name": pupil["name"],
            "birth_date": dt.date.fromisoformat(pupil["birth_date"]),
            "from_school_code": manifest["from_school"],
            "to_school_code": to_school_code,
            "leaving_date": dt.date.fromisoformat(manifest["leaving_date"]),
            "package_sha256": package_sha,
            "records": len(records),
            "pupil_id": pupil_id,
        }
    transfer_id = transition_transfer(
        session,
        "transfer_in" if state == "accepted" else "transfer_review",
        actor,
        transfer_id=existing,
        values=values,
        reason=review_reason,
        payload={"state": state, "records": len(records), "unverified": len(unverified)},
    )
    result = ReceiveResult(transfer_id, state, len(records), notes)
    if state == "accepted":
        result.receipt = _take_in(
            session,
            transfer_id,
            to_school_code,
            pupil_id,
            records,
            package_sha,
            seal,
            manifest["from_school"],
        )
    return result


def _unverified_checks(report: VerificationReport) -> str:
    """What could not be checked in one INDETERMINATE record, for the review queue."""
    checks = [c for c in report.checks if c.status is CheckStatus.INDETERMINATE]
    listed = ", ".join(f"{c.code} — {c.message_vi[:160]}" for c in checks)
    return f"học bạ {report.lookup_code}: {listed}"


def _match_pupil(
    session: Session, pupil: dict[str, str], records: list[tuple[str, bytes, str, Any]]
) -> tuple[str, str | None, int | None]:
    """Match by personal ID, then name and date of birth (the records must agree too)."""
    conn = session.connection()
    for _name, xml, _verdict, _report in records:
        info = parse_record_xml_safely(xml).find("DU_LIEU_HOC_BA/THONG_TIN_CHUNG")
        if info is None or info.findtext("SO_CCCD") != pupil["cccd"]:
            return "needs_review", "Mã định danh trong học bạ khác với gói chuyển trường.", None
        if (info.findtext("HO_VA_TEN"), info.findtext("NGAY_SINH")) != (
            pupil["name"],
            pupil["birth_date"],
        ):
            return (
                "needs_review",
                "Họ tên hoặc ngày sinh trong học bạ khác nhau giữa các năm.",
                None,
            )
    row = conn.execute(
        text("SELECT id, full_name, birth_date FROM pupil WHERE cccd = :c"), {"c": pupil["cccd"]}
    ).one_or_none()
    if row is None:
        return "accepted", None, None
    if (row.full_name, row.birth_date.isoformat()) != (pupil["name"], pupil["birth_date"]):
        return (
            "needs_review",
            "Cùng mã định danh nhưng họ tên hoặc ngày sinh khác với hồ sơ đã có; "
            "cần cán bộ đối chiếu.",
            row.id,
        )
    return "accepted", None, row.id


def _take_in(
    session: Session,
    transfer_id: int,
    school_code: str,
    pupil_id: int | None,
    records: list[tuple[str, bytes, str, Any]],
    package_sha: str,
    seal: Signer,
    from_school: str,
) -> bytes:
    conn = session.connection()
    if pupil_id is None:
        first = parse_record_xml_safely(records[0][1]).find("DU_LIEU_HOC_BA/THONG_TIN_CHUNG")
        assert first is not None
        pupil_id = int(
            conn.scalar(
                text("""
            INSERT INTO pupil (pupil_code, cccd, full_name, gender, birth_date, birthplace,
                hometown, address, ethnicity, nationality, father_name, mother_name)
            VALUES (:code, :cccd, :n, :g, :b, :bp, :ht, :a, :e, :nat, :f, :m) RETURNING id"""),
                {
                    "code": f"CT-{first.findtext('SO_CCCD')}",
                    "cccd": first.findtext("SO_CCCD"),
                    "n": first.findtext("HO_VA_TEN"),
                    "g": first.findtext("GIOI_TINH"),
                    "b": dt.date.fromisoformat(first.findtext("NGAY_SINH") or ""),
                    "bp": first.findtext("NOI_SINH"),
                    "ht": first.findtext("QUE_QUAN"),
                    "a": first.findtext("CHO_O_HIEN_NAY"),
                    "e": first.findtext("DAN_TOC"),
                    "nat": first.findtext("QUOC_TICH"),
                    "f": first.findtext("HO_VA_TEN_CHA"),
                    "m": first.findtext("HO_VA_TEN_ME"),
                },
            )
        )
        conn.execute(
            text("UPDATE transfer SET pupil_id = :p WHERE id = :i"),
            {"p": pupil_id, "i": transfer_id},
        )
    codes = []
    for _name, xml, verdict, report in records:
        codes.append(report.lookup_code)
        conn.execute(
            text("""
            INSERT INTO received_record (transfer_id, pupil_id, school_id, lookup_code,
                school_year, origin_school_code, xml, xml_sha256, verdict)
            SELECT :t, :p, s.id, :code, :y, :o, :xml, :sha, :v FROM school s WHERE s.code = :s
            ON CONFLICT (lookup_code) DO NOTHING"""),
            {
                "t": transfer_id,
                "p": pupil_id,
                "s": school_code,
                "code": report.lookup_code,
                "y": report.school_year,
                "o": report.school_code,
                "xml": xml,
                "sha": hashlib.sha256(xml).hexdigest(),
                "v": verdict,
            },
        )
    receipt_body = {
        "format": FORMAT + "/receipt",
        "package_sha256": package_sha,
        "from_school": from_school,
        "to_school": school_code,
        "received": sorted(codes),
        "at": dt.datetime.now(VN_TZ).isoformat(timespec="seconds"),
    }
    receipt = _signed_notice("receipt", receipt_body, seal)
    conn.execute(
        text("UPDATE transfer SET receipt = :r WHERE id = :i"), {"r": receipt, "i": transfer_id}
    )
    return receipt


def record_receipt(
    session: Session, receipt: bytes, trusted_roots: Sequence[x509.Certificate]
) -> int:
    """The leaving school checks the receiving school's signed receipt and records it."""
    body, to_school = _read_notice(receipt, "receipt", trusted_roots, "biên nhận")
    try:
        sha, from_school = str(body["package_sha256"]), str(body["from_school"])
    except _MALFORMED as exc:
        raise TransferError("Biên nhận không hợp lệ.") from exc
    row = (
        session.connection()
        .execute(
            text(
                "SELECT id, state, receipt FROM transfer WHERE package_sha256 = :sha "
                "AND to_school_code = :t AND from_school_code = :f"
            ),
            {"sha": sha, "t": to_school, "f": from_school},
        )
        .one_or_none()
    )
    if row is None:
        raise TransferError("Biên nhận không khớp gói chuyển trường nào đã xuất.")
    if row.state == "receipted" and bytes(row.receipt or b"") == receipt:
        return int(row.id)  # recorded before (a re-run after a crash): nothing to do
    return transition_transfer(
        session, "transfer_receipt", SYSTEM, transfer_id=row.id, values={"receipt": receipt}
    )


def reject_transfer(session: Session, transfer_id: int, actor: Actor, reason: str) -> None:
    """The receiving school refuses a package in the manual review queue (the pupil in
    the package is not the pupil it knows under that ID); nothing is taken in and the
    decision is audited with its reason."""
    reason = (reason or "").strip()
    if not reason:
        raise TransferError("Hãy ghi lý do từ chối (trường chuyển đi sẽ cần biết).")
    transition_transfer(
        session,
        "transfer_reject",
        actor,
        transfer_id=transfer_id,
        values={"review_reason": f"Từ chối: {reason}"},
        reason=reason,
    )


def refusal_notice(package: bytes, reason: str, to_school_code: str, seal: Signer) -> bytes | None:
    """A notice, signed with the receiving school's seal, that it refused ``package`` and
    why, for the leaving school's box; None when the package does not even name its
    sender (nothing to tell anyone)."""
    try:
        with zipfile.ZipFile(io.BytesIO(package)) as z:
            manifest = json.loads(z.read("manifest.json"))
        from_school = str(manifest["from_school"])
        pupil = {  # the package may be damaged: the sender matches on these too
            "cccd_sha256": hashlib.sha256(str(manifest["pupil"]["cccd"]).encode()).hexdigest(),
            "leaving_date": str(manifest["leaving_date"]),
        }
    except (*_MALFORMED, zipfile.BadZipFile):
        return None
    body = {
        "format": FORMAT + "/refusal",
        "package_sha256": hashlib.sha256(package).hexdigest(),
        "from_school": from_school,
        "to_school": to_school_code,
        "pupil": pupil,
        "reason": reason,
        "at": dt.datetime.now(VN_TZ).isoformat(timespec="seconds"),
    }
    return _signed_notice("refusal", body, seal)


def record_refusal(
    session: Session, notice: bytes, trusted_roots: Sequence[x509.Certificate]
) -> int:
    """The leaving school learns its package was refused: the transfer is ``rejected``
    with the reason and the pupil's enrolment is open again, so the school can export a
    new package."""
    body, to_school = _read_notice(notice, "refusal", trusted_roots, "thông báo từ chối")
    try:
        sha, reason = str(body["package_sha256"]), str(body["reason"])
        from_school = str(body["from_school"])
        cccd_sha = str(body["pupil"]["cccd_sha256"])
        leaving = dt.date.fromisoformat(str(body["pupil"]["leaving_date"]))
    except _MALFORMED as exc:
        raise TransferError("Thông báo từ chối không hợp lệ.") from exc
    conn = session.connection()
    row = one_row(  # the package as sent, or (damaged on the way) the same pupil's
        conn,
        "SELECT id, from_school_code, pupil_id, leaving_date FROM transfer "
        "WHERE to_school_code = :t AND from_school_code = :f AND state = 'exported' "
        "AND (package_sha256 = :sha OR (pupil_cccd_sha256 = :h AND leaving_date = :l)) "
        "ORDER BY package_sha256 = :sha DESC, id DESC LIMIT 1 FOR UPDATE",
        {"sha": sha, "t": to_school, "f": from_school, "h": cccd_sha, "l": leaving},
        TransferError("Thông báo từ chối không khớp gói chuyển trường nào đang chờ."),
    )
    transition_transfer(
        session,
        "transfer_refused",
        SYSTEM,
        transfer_id=row.id,
        values={"review_reason": reason[:500]},
        reason=reason[:500],
    )
    conn.execute(
        text(
            "UPDATE enrolment e SET left_on = NULL FROM school s WHERE s.id = e.school_id "
            "AND s.code = :f AND e.pupil_id = :p AND e.left_on = :l"
        ),
        {"f": row.from_school_code, "p": row.pupil_id, "l": row.leaving_date},
    )
    return int(row.id)
