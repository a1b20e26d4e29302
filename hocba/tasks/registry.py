"""The verification registry on PostgreSQL: what ``hocba.xml.verify`` asks of the app
database (did this person hold that role then, was this seal approved, what was issued
under this lookup code).

It sits above both the tables (``hocba.models``) and the verifier's protocol
(``hocba.xml.verify.Registry``), so neither has to import the other.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text
from sqlmodel import Session

from hocba.models.lifecycle import VN_TZ
from hocba.xml.verify import IssuedRecordInfo


class DatabaseRegistry:
    """The verification registry (``hocba.xml.verify.Registry``) on PostgreSQL.

    Every lookup is logged as an audit-free read; the lookup of a record by its code is
    the caller's to log (``hocba verify`` does).
    """

    def __init__(self, session: Session) -> None:
        self._conn = session.connection()

    def signer_held_role(
        self,
        slot: str,
        cccd: str,
        school_code: str,
        school_year: str,
        class_name: str,
        at: dt.datetime,
    ) -> bool | None:
        day = at.astimezone(VN_TZ).date()
        staff = self._conn.scalar(text("SELECT id FROM staff WHERE cccd = :c"), {"c": cccd})
        school = self._conn.scalar(
            text("SELECT id FROM school WHERE code = :c"), {"c": school_code}
        )
        if staff is None or school is None:
            return None
        valid = (
            "sr.staff_id = :st AND sr.school_id = :sch AND sr.valid_from <= :d "
            "AND (sr.valid_to IS NULL OR sr.valid_to >= :d)"
        )
        params = {"st": staff, "sch": school, "d": day, "y": school_year, "cl": class_name}
        if slot == "GVCN":
            return bool(
                self._conn.scalar(
                    text(f"""
                SELECT EXISTS (SELECT 1 FROM staff_role sr
                  JOIN school_class c ON c.school_id = sr.school_id AND c.name = :cl
                  JOIN school_year y ON y.id = c.school_year_id AND y.name = :y
                  WHERE {valid} AND sr.role = 'homeroom_teacher'
                    AND c.homeroom_teacher_id = sr.staff_id)"""),
                    params,
                )
            )
        if slot == "CBQL":
            return bool(
                self._conn.scalar(
                    text(f"""
                SELECT EXISTS (SELECT 1 FROM staff_role sr WHERE {valid}
                  AND (sr.role = 'principal' OR (sr.role = 'vice_principal' AND sr.delegated)))
            """),
                    params,
                )
            )
        return None

    def school_certificate_approved(
        self, school_code: str, cert_sha256_hex: str, at: dt.datetime
    ) -> bool | None:
        row = self._conn.execute(
            text(
                "SELECT s.id, c.status, c.decided_at FROM school s LEFT JOIN certificate c "
                "ON c.school_id = s.id AND c.sha256 = :sha WHERE s.code = :code"
            ),
            {"sha": cert_sha256_hex, "code": school_code},
        ).one_or_none()
        if row is None:
            return None
        # signing times carry whole seconds: an approval in the same second counts as before
        return (
            row.status == "approved"
            and row.decided_at is not None
            and row.decided_at.replace(microsecond=0) <= at
        )

    def issued_record(self, lookup_code: str):  # type: ignore[no-untyped-def]
        try:
            import uuid

            code = uuid.UUID(lookup_code)
        except ValueError:
            return None
        row = self._conn.execute(
            text(
                "SELECT r.xml_sha256, r.state, n.lookup_code AS successor, r.signed_xml "
                "FROM hoc_ba r "
                "LEFT JOIN hoc_ba n ON n.supersedes_id = r.id AND n.lookup_code IS NOT NULL "
                "WHERE r.lookup_code = :c AND r.xml_sha256 IS NOT NULL"
            ),
            {"c": code},
        ).one_or_none()
        if row is None:
            return None
        earlier = self._conn.scalars(  # hashes before time-stamps were added (migration 0010)
            text(
                "SELECT h.xml_sha256 FROM hoc_ba_xml_history h JOIN hoc_ba r ON r.id = h.record_id "
                "WHERE r.lookup_code = :c"
            ),
            {"c": code},
        )
        return IssuedRecordInfo(
            row.xml_sha256,
            row.state,
            str(row.successor) if row.successor else None,
            xml=bytes(row.signed_xml) if row.signed_xml is not None else None,
            earlier_sha256=tuple(earlier),
        )
