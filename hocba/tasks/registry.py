"""The verification registry on PostgreSQL: what ``hocba.xml.verify`` asks of the app
database (did this person hold that role then, was this seal approved, what was issued
under this lookup code).

It sits above both the tables (``hocba.models``) and the verifier's protocol
(``hocba.xml.verify.Registry``), so neither has to import the other.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import text
from sqlmodel import Session

from hocba.models import stored_xml
from hocba.models.lifecycle import VN_TZ
from hocba.xml.verify import IssuedRecordInfo, SlotRoles

_VALID_ROLE = (
    "sr.staff_id = who.st AND sr.school_id = who.sch AND sr.valid_from <= :d "
    "AND (sr.valid_to IS NULL OR sr.valid_to >= :d)"
)


#: A record by lookup code, with its successor (``hoc_ba_supersedes``, migration 0023: a
#: lookup reads two index entries, not the year's table) and its hashes before time-stamps.
ISSUED_RECORD_QUERY = (
    "SELECT r.id, r.xml_sha256, r.state, n.lookup_code AS successor, "
    "ARRAY(SELECT h.xml_sha256 FROM hoc_ba_xml_history h "
    "WHERE h.record_id = r.id) AS earlier "
    "FROM hoc_ba r "
    "LEFT JOIN hoc_ba n ON n.supersedes_id = r.id AND n.lookup_code IS NOT NULL "
    "WHERE r.lookup_code = :c AND r.xml_sha256 IS NOT NULL"
)


class DatabaseRegistry(SlotRoles):
    """The verification registry (``hocba.xml.verify.Registry``) on PostgreSQL; which slot
    needs which role is :class:`~hocba.xml.verify.SlotRoles`'.

    Every lookup is logged as an audit-free read; the lookup of a record by its code is
    the caller's to log (``hocba verify`` does).
    """

    def __init__(self, session: Session) -> None:
        self._conn = session.connection()

    def _held(
        self, cccd: str, school_code: str, at: dt.datetime, role_sql: str, **params: str
    ) -> bool | None:
        """Whether the person held a role of that school at ``at`` (``role_sql``: the
        condition on ``staff_role sr`` beyond validity, with its own ``params``); None when
        the person or the school is unknown. One statement."""
        return self._conn.scalar(
            text(f"""
            SELECT CASE WHEN who.st IS NULL OR who.sch IS NULL THEN NULL
                   ELSE EXISTS (SELECT 1 FROM staff_role sr {role_sql}) END
            FROM (SELECT (SELECT id FROM staff WHERE cccd = :c) AS st,
                         (SELECT id FROM school WHERE code = :s) AS sch) who"""),
            {"c": cccd, "s": school_code, "d": _day(at), **params},
        )

    def was_homeroom_teacher(
        self, cccd: str, school_code: str, school_year: str, class_name: str, at: dt.datetime
    ) -> bool | None:
        return self._held(
            cccd,
            school_code,
            at,
            "JOIN school_class c ON c.school_id = sr.school_id AND c.name = :cl "
            "JOIN school_year y ON y.id = c.school_year_id AND y.name = :y "
            f"WHERE {_VALID_ROLE} AND sr.role = 'homeroom_teacher' "
            "AND c.homeroom_teacher_id = sr.staff_id",
            y=school_year,
            cl=class_name,
        )

    def was_school_manager(self, cccd: str, school_code: str, at: dt.datetime) -> bool | None:
        return self._held(
            cccd,
            school_code,
            at,
            f"WHERE {_VALID_ROLE} AND (sr.role = 'principal' "
            "OR (sr.role = 'vice_principal' AND sr.delegated))",
        )

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

    def issued_record(self, lookup_code: str) -> IssuedRecordInfo | None:
        """One statement: hash, state, successor and the hashes before time-stamps were
        added (migration 0010). The issued bytes are read only if the verifier asks for
        them (the document's hash is none of these), by the record's id."""
        try:
            code = uuid.UUID(lookup_code)
        except ValueError:
            return None
        row = self._conn.execute(text(ISSUED_RECORD_QUERY), {"c": code}).one_or_none()
        if row is None:
            return None
        record_id = row.id

        def load_xml() -> bytes | None:
            xml = self._conn.scalar(
                text("SELECT signed_xml FROM hoc_ba WHERE id = :id"), {"id": record_id}
            )
            return stored_xml.unpack_one(self._conn, xml)

        return IssuedRecordInfo(
            row.xml_sha256,
            row.state,
            str(row.successor) if row.successor else None,
            earlier_sha256=tuple(row.earlier or ()),
            load_xml=load_xml,
        )


def _day(at: dt.datetime) -> dt.date:
    """The day in Vietnam that roles are valid on (valid_from / valid_to are dates)."""
    return at.astimezone(VN_TZ).date()
