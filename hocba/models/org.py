"""The organisation: hierarchy, schools, staff and their roles (HOCBA_SPEC §1).

Idempotent helpers used by the demo, the admin CLI and the tests: calling one twice with
the same arguments leaves the database as it was.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os

from sqlalchemy import text
from sqlmodel import Session

from hocba.errors import HocbaError
from hocba.models.lifecycle_states import ROLES


class OrgError(HocbaError, ValueError):
    """Bad organisation data; the message (Vietnamese) says what is wrong."""


def hash_password(password: str) -> str:
    """scrypt (RFC 7914) with a random salt, as ``scrypt$<salt>$<hash>``."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def check_password(password: str, stored: str | None) -> bool:
    if not stored or not stored.startswith("scrypt$"):
        return False
    _, salt_b64, digest_b64 = stored.split("$")
    digest = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt_b64), n=2**14, r=8, p=1)
    return hmac.compare_digest(digest, base64.b64decode(digest_b64))


def ensure_unit(
    session: Session, code: str, name: str, kind: str, parent_code: str | None = None
) -> int:
    """An org unit (province, district or commune), created or updated; returns its id."""
    conn = session.connection()
    parent_id = None
    if parent_code is not None:
        parent_id = conn.scalar(text("SELECT id FROM org_unit WHERE code = :c"), {"c": parent_code})
        if parent_id is None:
            raise OrgError(f"Không có đơn vị cấp trên mã {parent_code}.")
    elif kind != "province":
        raise OrgError(f"Đơn vị {name} ({kind}) phải thuộc một tỉnh/thành phố.")
    return int(
        conn.scalar(
            text("""
            INSERT INTO org_unit (code, name, kind, parent_id) VALUES (:c, :n, :k, :p)
            ON CONFLICT (code) DO UPDATE SET name = excluded.name, kind = excluded.kind,
                parent_id = excluded.parent_id
            RETURNING id
        """),
            {"c": code, "n": name, "k": kind, "p": parent_id},
        )
    )


def province_of(session: Session, unit_id: int) -> int:
    """The province above (or equal to) ``unit_id``."""
    pid = session.connection().scalar(
        text("""
            WITH RECURSIVE up AS (
                SELECT id, parent_id, kind FROM org_unit WHERE id = :u
                UNION ALL
                SELECT o.id, o.parent_id, o.kind FROM org_unit o JOIN up ON o.id = up.parent_id
            ) SELECT id FROM up WHERE kind = 'province'
        """),
        {"u": unit_id},
    )
    if pid is None:
        raise OrgError("Đơn vị không thuộc tỉnh/thành phố nào.")
    return int(pid)


def ensure_school(
    session: Session,
    code: str,
    name: str,
    unit_code: str,
    commune_name: str | None = None,
    address: str | None = None,
    place_name: str | None = None,
) -> int:
    conn = session.connection()
    unit_id = conn.scalar(text("SELECT id FROM org_unit WHERE code = :c"), {"c": unit_code})
    if unit_id is None:
        raise OrgError(f"Không có đơn vị mã {unit_code}.")
    return int(
        conn.scalar(
            text("""
            INSERT INTO school (code, name, unit_id, province_id, commune_name, address,
                                place_name)
            VALUES (:c, :n, :u, :p, :cn, :a, :pl)
            ON CONFLICT (code) DO UPDATE SET name = excluded.name, unit_id = excluded.unit_id,
                province_id = excluded.province_id, commune_name = excluded.commune_name,
                address = excluded.address, place_name = excluded.place_name
            RETURNING id
        """),
            {
                "c": code,
                "n": name,
                "u": unit_id,
                "p": province_of(session, unit_id),
                "cn": commune_name,
                "a": address,
                "pl": place_name,
            },
        )
    )


def ensure_staff(
    session: Session,
    username: str,
    full_name: str,
    cccd: str | None = None,
    email: str | None = None,
    password: str | None = None,
    password_hash: str | None = None,
) -> int:
    """A staff member by username; the password is stored hashed, only when given."""
    return int(
        session.connection().scalar(
            text("""
            INSERT INTO staff (username, full_name, cccd, email, password_hash, active)
            VALUES (:u, :n, :cccd, :e, :pw, true)
            ON CONFLICT (username) DO UPDATE SET full_name = excluded.full_name,
                cccd = excluded.cccd, email = excluded.email,
                password_hash = COALESCE(excluded.password_hash, staff.password_hash)
            RETURNING id
        """),
            {
                "u": username,
                "n": full_name,
                "cccd": cccd,
                "e": email,
                "pw": password_hash or (hash_password(password) if password else None),
            },
        )
    )


def grant(
    session: Session,
    username: str,
    role: str,
    *,
    school_code: str | None = None,
    unit_code: str | None = None,
    delegated: bool = False,
    valid_from: dt.date = dt.date(2000, 1, 1),
    valid_to: dt.date | None = None,
) -> None:
    """Give ``role`` to a staff member at a school or an org unit (once)."""
    if role not in ROLES:
        raise OrgError(f"Vai trò không tồn tại: {role}.")
    conn = session.connection()
    params = {
        "u": username,
        "r": role,
        "s": school_code,
        "o": unit_code,
        "d": delegated,
        "f": valid_from,
        "t": valid_to,
    }
    conn.execute(
        text("""
            INSERT INTO staff_role (staff_id, role, school_id, unit_id, delegated, valid_from,
                                    valid_to)
            SELECT st.id, CAST(:r AS text), (SELECT id FROM school WHERE code = :s),
                   (SELECT id FROM org_unit WHERE code = :o), :d, :f, CAST(:t AS date)
            FROM staff st WHERE st.username = :u AND NOT EXISTS (
                SELECT 1 FROM staff_role x WHERE x.staff_id = st.id AND x.role = CAST(:r AS text)
                AND x.school_id IS NOT DISTINCT FROM (SELECT id FROM school WHERE code = :s)
                AND x.unit_id IS NOT DISTINCT FROM (SELECT id FROM org_unit WHERE code = :o))
        """),
        params,
    )
