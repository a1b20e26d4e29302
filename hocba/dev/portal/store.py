"""PostgreSQL storage of the bundled province portal, in its own schema.

SQLAlchemy Core tables, created at start-up (``CREATE SCHEMA IF NOT EXISTS`` + ``CREATE
TABLE IF NOT EXISTS``); every table is qualified with the portal's schema, so the portal
can share a server — even an engine — with the app without touching its tables.

=============================  ===========================================================
``certificate_registration``   transaction 3: one row per (school, certificate SHA-256);
                               ``status`` pending / approved / rejected
``message``                    every processed transaction 1, 3 and 5, unique per
                               (ma_don_vi, messageid), with its answer: a resend returns it
``record``                     the accepted records, unique by lookup code, with their XML;
                               ``state`` accepted / revoked
``submission_result``          transaction 1: the verdict on each record of a message
``revocation_request``         transaction 5; ``trang_thai`` 1 pending, 2 accepted,
                               3 rejected
``revocation_item``            the records of a revocation request
``fault_switch``               the fault-injection switches (one row), shared by every
                               process serving the portal
``process``                    the processes serving the portal (``hocba portal serve
                               --workers N``), by start-up generation: what ``/health``
                               counts before it answers ready
=============================  ===========================================================

Several processes serve one store (docs/PORTAL.md §10): everything that must hold across
them is here, in PostgreSQL: a messageid is claimed by a unique index (the same message
sent to two processes is processed once), records by their unique lookup code, the fault
switches and their countdowns by one row updated under a row lock. :meth:`PortalStore.create`
runs under a transaction-level advisory lock, so processes starting together do not race
on ``CREATE SCHEMA`` / ``CREATE TABLE``.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from hocba.db import unnest_rows

__all__ = ["PortalStore", "StoredMessage"]

_SCHEMA_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")

PENDING, ACCEPTED, REJECTED = 1, 2, 3
T = TypeVar("T")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _tables(schema: str) -> tuple[MetaData, dict[str, Table]]:
    metadata = MetaData(schema=schema)
    ts = DateTime(timezone=True)
    tables = {
        "certificate_registration": Table(
            "certificate_registration",
            metadata,
            Column("id", Integer, primary_key=True),
            Column("ma_dang_ky", Text, nullable=False, unique=True),
            Column("ma_don_vi", Text, nullable=False),
            Column("serial_number", Text, nullable=False),
            Column("sha256", Text, nullable=False),
            Column("subject", Text, nullable=False),
            Column("certificate", LargeBinary, nullable=False),
            Column("ngay_hieu_luc", Text, nullable=False),
            Column("ma_kieu_chu_ky", Text, nullable=False),
            Column("nha_phat_hanh", Text, nullable=False),
            Column("status", Text, nullable=False, server_default="pending"),
            Column("created_at", ts, nullable=False),
            Column("decided_at", ts),
            UniqueConstraint("ma_don_vi", "sha256"),
        ),
        "message": Table(
            "message",
            metadata,
            Column("id", BigInteger, primary_key=True),
            Column("ma_don_vi", Text, nullable=False),
            Column("messageid", Text, nullable=False),
            Column("giao_dich", SmallInteger, nullable=False),
            Column("user_name", Text, nullable=False),
            Column("content_sha256", Text, nullable=False),
            Column("answer", JSONB, nullable=False),
            Column("received_at", ts, nullable=False),
            UniqueConstraint("ma_don_vi", "messageid"),
        ),
        "record": Table(
            "record",
            metadata,
            Column("id", BigInteger, primary_key=True),
            Column("ma_tra_cuu_uuid", Text, nullable=False, unique=True),
            Column("ma_don_vi", Text, nullable=False, index=True),
            Column("nam_hoc", Text, nullable=False),
            Column("ma_hoc_sinh", Text),
            Column("ten_hoc_sinh", Text),
            Column("so_cccd", Text),
            Column("xml", LargeBinary, nullable=False),
            Column("xml_sha256", Text, nullable=False),
            Column("message_id", BigInteger, ForeignKey("message.id"), nullable=False),
            Column("state", Text, nullable=False, server_default="accepted"),
            Column("accepted_at", ts, nullable=False),
            Column("revoked_at", ts),
        ),
        "submission_result": Table(
            "submission_result",
            metadata,
            Column("id", BigInteger, primary_key=True),
            Column("message_id", BigInteger, ForeignKey("message.id"), nullable=False, index=True),
            Column("position", Integer, nullable=False),
            Column("ma_hoc_sinh", Text),
            Column("ten_hoc_sinh", Text),
            Column("so_cccd", Text),
            Column("ma_tra_cuu_uuid", Text),
            Column("trang_thai", SmallInteger, nullable=False),
            Column("error", Text),
            Column("error_field_title", Text),
            Column("error_description", Text),
            UniqueConstraint("message_id", "position"),
        ),
        "revocation_request": Table(
            "revocation_request",
            metadata,
            Column("id", BigInteger, primary_key=True),
            Column("ma_yeu_cau", Text, nullable=False, unique=True),
            Column("message_id", BigInteger, ForeignKey("message.id"), nullable=False),
            Column("ma_don_vi", Text, nullable=False),
            Column("trang_thai", SmallInteger, nullable=False),
            Column("ly_do", Text),
            Column("created_at", ts, nullable=False),
            Column("decided_at", ts),
        ),
        "revocation_item": Table(
            "revocation_item",
            metadata,
            Column("id", BigInteger, primary_key=True),
            Column(
                "request_id",
                BigInteger,
                ForeignKey("revocation_request.id"),
                nullable=False,
                index=True,
            ),
            Column("ma_tra_cuu_uuid", Text, nullable=False),
            Column("ho_va_ten", Text),
            Column("ly_do", Text),
        ),
        "fault_switch": Table(
            "fault_switch",
            metadata,
            Column("id", SmallInteger, primary_key=True),
            Column("faults", JSONB, nullable=False),
            # random draws made so far: the n-th draw is Random((seed, n)), reproducible
            # whichever process makes it
            Column("draws", BigInteger, nullable=False, server_default="0"),
        ),
        "process": Table(
            "process",
            metadata,
            Column("generation", Text, primary_key=True),
            Column("pid", Integer, primary_key=True),
            Column("started_at", ts, nullable=False),
        ),
    }
    return metadata, tables


_RECORD_COLUMNS = (
    ("ma_tra_cuu_uuid", "text"),
    ("ma_don_vi", "text"),
    ("nam_hoc", "text"),
    ("ma_hoc_sinh", "text"),
    ("ten_hoc_sinh", "text"),
    ("so_cccd", "text"),
    ("xml", "bytea"),
    ("xml_sha256", "text"),
    ("message_id", "bigint"),
    ("accepted_at", "timestamptz"),
)
_RESULT_COLUMNS = (
    ("message_id", "bigint"),
    ("position", "integer"),
    ("ma_hoc_sinh", "text"),
    ("ten_hoc_sinh", "text"),
    ("so_cccd", "text"),
    ("ma_tra_cuu_uuid", "text"),
    ("trang_thai", "smallint"),
    ("error", "text"),
    ("error_field_title", "text"),
    ("error_description", "text"),
)
_CONTROL_TABLES = frozenset({"fault_switch", "process"})


@dataclass(frozen=True)
class StoredMessage:
    """A processed transaction: what identifies it and the answer it got."""

    id: int
    transaction: int
    content_sha256: str
    answer: dict[str, Any]


@dataclass(frozen=True)
class KnownRecord:
    ma_tra_cuu_uuid: str
    ma_don_vi: str
    xml_sha256: str
    state: str
    messageid: str


class PortalStore:
    """The portal's tables and the few queries it needs. Thread-safe (one engine)."""

    def __init__(self, engine: Engine, schema: str = "portal") -> None:
        if not _SCHEMA_RE.fullmatch(schema):
            raise ValueError(f"Tên schema không hợp lệ: {schema!r}")
        self.engine = engine
        self.schema = schema
        self.metadata, self.t = _tables(schema)

    def create(self) -> None:
        """Create the schema and the tables if they do not exist (idempotent), under an
        advisory lock: N processes starting together create them once, the others wait
        and find them (without the lock two ``CREATE ... IF NOT EXISTS`` can both pass
        the check and one fails on the unique catalog index)."""
        with self.engine.begin() as conn:
            conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                {"key": f"hocba.dev.portal:{self.schema}"},
            )
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            self.metadata.create_all(conn, checkfirst=True)
            self._xml_storage(conn)
            conn.execute(
                pg_insert(self.t["fault_switch"])
                .values(id=1, faults={})
                .on_conflict_do_nothing(index_elements=["id"])
            )

    def _xml_storage(self, conn: Connection) -> None:
        """How the accepted XML is stored, set once when the table is new (an ALTER takes
        the table's exclusive lock): compressed with lz4 when the server has it (as the
        app's ``hoc_ba.signed_xml``, migration 0012: ~2:1 on signed records for little
        CPU); without lz4, ``STORAGE EXTERNAL`` (out of line, uncompressed) rather than
        pglz, which costs PostgreSQL ~0.15 ms per 15.5 KB record on insert (measured:
        0.28-0.36 against 0.15 ms, docs/PERFORMANCE.md) for 8.4 instead of 16.7 KB on
        disk — the portal's storage is the province's, not the school's."""
        compression, storage = conn.execute(
            text(
                "SELECT attcompression, attstorage FROM pg_attribute "
                "WHERE attrelid = CAST(:table AS regclass) AND attname = 'xml'"
            ),
            {"table": f'"{self.schema}".record'},
        ).one()
        if compression == "l" or storage == "e":  # set before
            return
        table = f'"{self.schema}".record'
        conn.execute(
            text(
                f"DO $$ BEGIN ALTER TABLE {table} ALTER COLUMN xml SET COMPRESSION lz4; "
                "EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN "
                f"ALTER TABLE {table} ALTER COLUMN xml SET STORAGE EXTERNAL; END $$"
            )
        )

    # ------------------------------------------------------------------ processes
    def register_process(self, generation: str, pid: int) -> None:
        """One serving process of ``generation`` is up (see :meth:`processes`)."""
        t = self.t["process"]
        with self.engine.begin() as conn:
            conn.execute(
                pg_insert(t)
                .values(generation=generation, pid=pid, started_at=_now())
                .on_conflict_do_nothing(index_elements=["generation", "pid"])
            )

    def processes(self, generation: str) -> int:
        """How many processes of ``generation`` have registered."""
        t = self.t["process"]
        with self.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).where(t.c.generation == generation)) or 0)

    # ------------------------------------------------------------------ fault switches
    def faults(self) -> dict[str, Any]:
        """The fault switches as stored (``{}``: all off)."""
        t = self.t["fault_switch"]
        with self.engine.connect() as conn:
            return dict(conn.scalar(select(t.c.faults).where(t.c.id == 1)) or {})

    def set_faults(self, faults: dict[str, Any]) -> None:
        t = self.t["fault_switch"]
        with self.engine.begin() as conn:
            conn.execute(update(t).where(t.c.id == 1).values(faults=faults, draws=0))

    def update_faults(
        self, change: Callable[[dict[str, Any], int], tuple[dict[str, Any], int, T]]
    ) -> T:
        """``change(faults, draws) -> (faults, draws, result)`` applied under the row's
        lock (a countdown such as ``fail_next`` is consumed once, by one process)."""
        t = self.t["fault_switch"]
        with self.engine.begin() as conn:
            faults, draws = conn.execute(
                select(t.c.faults, t.c.draws).where(t.c.id == 1).with_for_update()
            ).one()
            new_faults, new_draws, result = change(dict(faults), int(draws))
            if new_faults != faults or new_draws != draws:
                conn.execute(
                    update(t).where(t.c.id == 1).values(faults=new_faults, draws=new_draws)
                )
        return result

    # ------------------------------------------------------------------ certificates
    def register_certificate(
        self,
        conn: Connection,
        *,
        ma_don_vi: str,
        serial_number: str,
        sha256: str,
        subject: str,
        certificate: bytes,
        ngay_hieu_luc: str,
        ma_kieu_chu_ky: str,
        nha_phat_hanh: str,
        approve: bool,
    ) -> dict[str, Any]:
        """Insert a registration, or return the existing one for that certificate."""
        t = self.t["certificate_registration"]
        now = _now()
        conn.execute(
            pg_insert(t)
            .values(
                ma_dang_ky=str(uuid.uuid4()),
                ma_don_vi=ma_don_vi,
                serial_number=serial_number,
                sha256=sha256,
                subject=subject,
                certificate=certificate,
                ngay_hieu_luc=ngay_hieu_luc,
                ma_kieu_chu_ky=ma_kieu_chu_ky,
                nha_phat_hanh=nha_phat_hanh,
                status="approved" if approve else "pending",
                created_at=now,
                decided_at=now if approve else None,
            )
            .on_conflict_do_nothing(index_elements=["ma_don_vi", "sha256"])
        )
        row = conn.execute(select(t).where(t.c.ma_don_vi == ma_don_vi, t.c.sha256 == sha256)).one()
        return dict(row._mapping)

    def registration(
        self, ma_don_vi: str, *, serial_number: str | None = None, sha256: str | None = None
    ) -> dict[str, Any] | None:
        """The newest registration of the school matching the serial or fingerprint."""
        t = self.t["certificate_registration"]
        query = select(t).where(t.c.ma_don_vi == ma_don_vi)
        if serial_number is not None:
            query = query.where(func.upper(t.c.serial_number) == serial_number.upper())
        if sha256 is not None:
            query = query.where(t.c.sha256 == sha256)
        with self.engine.connect() as conn:
            row = conn.execute(query.order_by(t.c.id.desc()).limit(1)).first()
        return None if row is None else dict(row._mapping)

    def approved_fingerprints(self, ma_don_vi: str) -> set[str]:
        t = self.t["certificate_registration"]
        with self.engine.connect() as conn:
            return set(
                conn.scalars(
                    select(t.c.sha256).where(t.c.ma_don_vi == ma_don_vi, t.c.status == "approved")
                )
            )

    def decide_certificate(self, ma_dang_ky: str, approve: bool) -> dict[str, Any] | None:
        t = self.t["certificate_registration"]
        with self.engine.begin() as conn:
            row = conn.execute(
                update(t)
                .where(t.c.ma_dang_ky == ma_dang_ky)
                .values(status="approved" if approve else "rejected", decided_at=_now())
                .returning(t)
            ).first()
        return None if row is None else dict(row._mapping)

    def registrations(self, status: str | None = None) -> list[dict[str, Any]]:
        t = self.t["certificate_registration"]
        query = select(
            t.c.ma_dang_ky,
            t.c.ma_don_vi,
            t.c.serial_number,
            t.c.sha256,
            t.c.subject,
            t.c.ngay_hieu_luc,
            t.c.ma_kieu_chu_ky,
            t.c.nha_phat_hanh,
            t.c.status,
        ).order_by(t.c.id)
        if status:
            query = query.where(t.c.status == status)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    # ------------------------------------------------------------------ messages
    def stored_message(self, ma_don_vi: str, messageid: str) -> StoredMessage | None:
        t = self.t["message"]
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.c.id, t.c.giao_dich, t.c.content_sha256, t.c.answer).where(
                    t.c.ma_don_vi == ma_don_vi, t.c.messageid == messageid
                )
            ).first()
        return None if row is None else StoredMessage(*row)

    def claim_message(
        self,
        conn: Connection,
        *,
        ma_don_vi: str,
        messageid: str,
        transaction: int,
        user_name: str,
        content_sha256: str,
    ) -> int | None:
        """Insert the message row in ``conn``'s transaction; ``None`` when another
        transaction stored the same messageid first (after waiting for it to commit)."""
        t = self.t["message"]
        return conn.execute(
            pg_insert(t)
            .values(
                ma_don_vi=ma_don_vi,
                messageid=messageid,
                giao_dich=transaction,
                user_name=user_name,
                content_sha256=content_sha256,
                answer={},
                received_at=_now(),
            )
            .on_conflict_do_nothing(index_elements=["ma_don_vi", "messageid"])
            .returning(t.c.id)
        ).scalar()

    def set_answer(self, conn: Connection, message_pk: int, answer: dict[str, Any]) -> None:
        t = self.t["message"]
        conn.execute(update(t).where(t.c.id == message_pk).values(answer=answer))

    # ------------------------------------------------------------------ records
    def known_record(self, lookup_code: str) -> KnownRecord | None:
        r, m = self.t["record"], self.t["message"]
        with self.engine.connect() as conn:
            row = conn.execute(
                select(r.c.ma_tra_cuu_uuid, r.c.ma_don_vi, r.c.xml_sha256, r.c.state, m.c.messageid)
                .join(m, m.c.id == r.c.message_id)
                .where(r.c.ma_tra_cuu_uuid == lookup_code)
            ).first()
        return None if row is None else KnownRecord(*row)

    def known_records(self, lookup_codes: Sequence[str]) -> dict[str, KnownRecord]:
        """:meth:`known_record` for a whole transaction's records, in one query."""
        if not lookup_codes:
            return {}
        r, m = self.t["record"], self.t["message"]
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(r.c.ma_tra_cuu_uuid, r.c.ma_don_vi, r.c.xml_sha256, r.c.state, m.c.messageid)
                .join(m, m.c.id == r.c.message_id)
                .where(r.c.ma_tra_cuu_uuid.in_(list(lookup_codes)))
            ).all()
        return {row[0]: KnownRecord(*row) for row in rows}

    def record_xml(self, lookup_code: str) -> bytes | None:
        """The accepted bytes of a record (to tell a resend that differs only outside what
        is signed from another record under the same lookup code)."""
        r = self.t["record"]
        with self.engine.connect() as conn:
            xml = conn.scalar(select(r.c.xml).where(r.c.ma_tra_cuu_uuid == lookup_code))
        return None if xml is None else bytes(xml)

    def insert_records(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> set[str]:
        """Insert accepted records; returns the lookup codes actually inserted (a code
        stored meanwhile by another message is skipped).

        One ``INSERT ... SELECT FROM unnest`` per batch (:meth:`_insert_unnest`, the XML as a
        binary ``bytea[]``), not SQLAlchemy's multi-row ``VALUES``: for a batch of 350
        records psycopg split that statement's 3,150 placeholders in Python each time
        (~0.1 ms per record, docs/PERFORMANCE.md "The portal's record insert (issue 14,
        session 9)")."""
        if not rows:
            return set()
        cursor = self._insert_unnest(
            conn,
            "record",
            _RECORD_COLUMNS,
            rows,
            "ON CONFLICT (ma_tra_cuu_uuid) DO NOTHING RETURNING ma_tra_cuu_uuid",
        )
        return {code for (code,) in cursor.fetchall()}

    def insert_results(
        self, conn: Connection, message_pk: int, results: Iterable[dict[str, Any]]
    ) -> None:
        rows = [{"message_id": message_pk, "position": i, **r} for i, r in enumerate(results, 1)]
        self._insert_unnest(conn, "submission_result", _RESULT_COLUMNS, rows)

    def _insert_unnest(
        self,
        conn: Connection,
        table: str,
        columns: Sequence[tuple[str, str]],
        rows: Sequence[dict[str, Any]],
        suffix: str = "",
    ) -> Any:
        """One ``INSERT ... SELECT FROM unnest(arrays)`` for all ``rows``
        (:func:`hocba.db.unnest_rows`: one statement executed once whatever the number of
        rows, no SQL compiled per row in Python; every array in binary, a ``bytea[]`` of signed
        XML included)."""
        if not rows:
            return None
        names = ", ".join(name for name, _ in columns)
        source, arrays = unnest_rows(rows, columns)
        statement = f'INSERT INTO "{self.schema}".{table} ({names}) SELECT {names} FROM {source} '
        driver = conn.connection.driver_connection  # psycopg 3, in conn's transaction
        assert driver is not None
        cursor = driver.cursor()
        cursor.execute(statement + suffix, arrays)
        return cursor

    def results(self, message_pk: int) -> list[dict[str, Any]]:
        t = self.t["submission_result"]
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    t.c.ma_hoc_sinh,
                    t.c.ten_hoc_sinh,
                    t.c.so_cccd,
                    t.c.ma_tra_cuu_uuid,
                    t.c.trang_thai,
                    t.c.error,
                    t.c.error_field_title,
                    t.c.error_description,
                )
                .where(t.c.message_id == message_pk)
                .order_by(t.c.position)
            )
            return [dict(r._mapping) for r in rows]

    def school_records(self, ma_don_vi: str, codes: Sequence[str]) -> dict[str, str]:
        """Lookup code → state of the given codes accepted for that school."""
        t = self.t["record"]
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.ma_tra_cuu_uuid, t.c.state).where(
                    t.c.ma_don_vi == ma_don_vi, t.c.ma_tra_cuu_uuid.in_(list(codes))
                )
            )
            return {code: state for code, state in rows}

    # ------------------------------------------------------------------ revocations
    def create_revocation(
        self,
        conn: Connection,
        message_pk: int,
        ma_don_vi: str,
        items: Sequence[dict[str, str]],
        accept: bool,
    ) -> dict[str, Any]:
        req, item = self.t["revocation_request"], self.t["revocation_item"]
        now = _now()
        ma_yeu_cau = str(uuid.uuid4())
        request_pk = conn.execute(
            req.insert()
            .values(
                ma_yeu_cau=ma_yeu_cau,
                message_id=message_pk,
                ma_don_vi=ma_don_vi,
                trang_thai=ACCEPTED if accept else PENDING,
                created_at=now,
                decided_at=now if accept else None,
            )
            .returning(req.c.id)
        ).scalar_one()
        conn.execute(item.insert(), [{"request_id": request_pk, **i} for i in items])
        if accept:
            self._revoke_records(conn, request_pk, now)
        return {"ma_yeu_cau": ma_yeu_cau, "trang_thai": ACCEPTED if accept else PENDING}

    def _revoke_records(self, conn: Connection, request_pk: int, now: dt.datetime) -> None:
        r, item = self.t["record"], self.t["revocation_item"]
        codes = select(item.c.ma_tra_cuu_uuid).where(item.c.request_id == request_pk)
        conn.execute(
            update(r)
            .where(r.c.ma_tra_cuu_uuid.in_(codes), r.c.state == "accepted")
            .values(state="revoked", revoked_at=now)
        )

    def revocation(self, ma_yeu_cau: str) -> dict[str, Any] | None:
        req = self.t["revocation_request"]
        with self.engine.connect() as conn:
            row = conn.execute(select(req).where(req.c.ma_yeu_cau == ma_yeu_cau)).first()
        return None if row is None else dict(row._mapping)

    def decide_revocation(
        self, ma_yeu_cau: str, accept: bool, ly_do: str = ""
    ) -> dict[str, Any] | None:
        """Accept (records become revoked) or reject a pending request; a decided request
        is returned unchanged."""
        req = self.t["revocation_request"]
        now = _now()
        with self.engine.begin() as conn:
            row = conn.execute(
                select(req).where(req.c.ma_yeu_cau == ma_yeu_cau).with_for_update()
            ).first()
            if row is None:
                return None
            if row.trang_thai != PENDING:
                return dict(row._mapping)
            row = conn.execute(
                update(req)
                .where(req.c.id == row.id)
                .values(trang_thai=ACCEPTED if accept else REJECTED, ly_do=ly_do, decided_at=now)
                .returning(req)
            ).one()
            if accept:
                self._revoke_records(conn, row.id, now)
        return dict(row._mapping)

    def revocations(self, trang_thai: int | None = None) -> list[dict[str, Any]]:
        req, item = self.t["revocation_request"], self.t["revocation_item"]
        query = select(
            req.c.ma_yeu_cau,
            req.c.ma_don_vi,
            req.c.trang_thai,
            req.c.ly_do,
            func.array_agg(item.c.ma_tra_cuu_uuid).label("ma_tra_cuu_uuid"),
        ).join(item, item.c.request_id == req.c.id)
        if trang_thai is not None:
            query = query.where(req.c.trang_thai == trang_thai)
        query = query.group_by(req.c.id).order_by(req.c.id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    # ------------------------------------------------------------------ statistics
    def counts(self) -> dict[str, int]:
        """Rows per table, and accepted / revoked records (for tests and operators)."""
        with self.engine.connect() as conn:
            counts = {
                name: int(conn.scalar(select(func.count()).select_from(table)) or 0)
                for name, table in self.t.items()
                if name not in _CONTROL_TABLES
            }
            r = self.t["record"]
            for state in ("accepted", "revoked"):
                counts[f"record_{state}"] = int(
                    conn.scalar(select(func.count()).where(r.c.state == state)) or 0
                )
        return counts

    def drop(self) -> None:
        """Drop the portal's schema and everything in it (tests, resets)."""
        with self.engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
