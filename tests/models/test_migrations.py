import hashlib
import re

from alembic.config import Config
from sqlalchemy import Engine, text
from sqlmodel import Session

from hocba import db


def _alembic(engine: Engine, schema_name: str) -> Config:
    """Alembic's configuration for the test's schema (downgrade/upgrade in place)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(db.MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    cfg.attributes["schema"] = schema_name
    return cfg


def test_upgrade_creates_tables_in_the_app_schema(engine: Engine, schema_name: str) -> None:
    with engine.connect() as conn:
        tables = set(
            conn.scalars(
                text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                {"s": schema_name},
            )
        )
    assert {"hoc_ba", "audit_event", "pupil", "school", "progress_day", "alembic_version"} <= tables
    assert db.current_revision(engine) == "0019"


def test_0012_down_and_up_again(engine: Engine, schema_name: str) -> None:
    """0012 goes back to 0009's row trigger and JSON guard, and forward again."""
    from alembic import command

    def level() -> tuple[bool, bool]:  # (progress trigger per row?, guard builds JSON?)
        with engine.connect() as conn:
            tgtype = conn.scalar(
                text(
                    "SELECT t.tgtype FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = :s AND t.tgname = 'progress_day_count'"
                ),
                {"s": schema_name},
            )
            guard = conn.scalar(
                text(
                    "SELECT prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                    "WHERE n.nspname = :s AND p.proname = 'hoc_ba_guard'"
                ),
                {"s": schema_name},
            )
        return bool(tgtype & 1), "to_jsonb" in guard

    assert level() == (False, False)
    cfg = _alembic(engine, schema_name)
    command.downgrade(cfg, "0009")
    assert db.current_revision(engine) == "0009"
    assert level() == (True, True)
    command.upgrade(cfg, "head")
    assert level() == (False, False)


def test_0014_keeps_audit_chains_verifiable_down_and_up(
    engine: Engine, schema_name: str, session: Session
) -> None:
    """0014 stores the hashes as 32 bytes without ``prev_hash``: chains written before it
    verify after it, and a downgrade gives back the hex hashes and the previous-hash
    column of each event."""
    import datetime as dt

    from alembic import command

    from hocba.models import audit

    t0 = dt.datetime(2026, 5, 20, 3, tzinfo=dt.UTC)
    for i in range(3):
        audit.append(
            session,
            [audit.NewEvent(chain=f"school:T{k}", actor="test", action=f"a{i}") for k in (1, 2)],
            at=t0 + dt.timedelta(minutes=i),
        )
    session.commit()
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT id, hash FROM audit_event ORDER BY id")).all()
    assert stored and all(isinstance(h, bytes) and len(h) == 32 for _, h in stored)
    assert audit.verify(session) == []

    cfg = _alembic(engine, schema_name)
    return_to_head = False
    try:
        command.downgrade(cfg, "0013")
        return_to_head = True
        with engine.connect() as conn:
            old = conn.execute(
                text("SELECT id, chain, seq, prev_hash, hash FROM audit_event ORDER BY chain, seq")
            ).all()
        by_id = dict(stored)
        prev: dict[str, str] = {}
        for rid, chain, seq, prev_hash, hex_hash in old:
            assert hex_hash == by_id[rid].hex()
            assert prev_hash == prev.get(chain, audit.GENESIS), (chain, seq)
            prev[chain] = hex_hash
        command.upgrade(cfg, "head")
        return_to_head = False
    finally:
        if return_to_head:
            command.upgrade(cfg, "head")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id, hash FROM audit_event ORDER BY id")).all() == stored
    assert audit.verify(session) == []


def test_0014_moves_partly_signed_xml_both_ways(district, schema_name: str) -> None:  # type: ignore[no-untyped-def]
    """A record being signed when 0014 runs keeps its XML, byte for byte: 0013 kept it in
    ``hoc_ba.signed_xml``, 0014 moves it to ``hoc_ba_signing`` (and back on downgrade);
    issued records keep theirs in ``hoc_ba``."""
    from alembic import command

    signing, issued = district.record_ids("DH01")[:2]
    xml = b"<HOC_BA>GVCN \xc4\x91\xc3\xa3 k\xc3\xbd</HOC_BA>"
    district.force_state(signing, "teacher_signed")
    district.force_state(issued, "issued")
    with district.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO hoc_ba_signing (record_id, signed_xml) VALUES (:r, :x)"),
            {"r": signing, "x": xml},
        )
    cfg = _alembic(district.engine, schema_name)
    command.downgrade(cfg, "0013")
    try:
        with district.engine.connect() as conn:
            rows = dict(
                conn.execute(
                    text("SELECT id, signed_xml FROM hoc_ba WHERE id IN (:a, :b)"),
                    {"a": signing, "b": issued},
                ).all()
            )
        assert bytes(rows[signing]) == xml and bytes(rows[issued]) == b"x"
    finally:
        command.upgrade(cfg, "head")
    with district.engine.connect() as conn:
        rows = dict(
            conn.execute(
                text("SELECT id, signed_xml FROM hoc_ba WHERE id IN (:a, :b)"),
                {"a": signing, "b": issued},
            ).all()
        )
        moved = conn.scalar(
            text("SELECT signed_xml FROM hoc_ba_signing WHERE record_id = :r"), {"r": signing}
        )
    assert rows[signing] is None and bytes(rows[issued]) == b"x"
    assert bytes(moved) == xml


def test_0016_down_and_up_again(engine: Engine, schema_name: str) -> None:
    """0016 goes back to the three guard triggers fired on every UPDATE, and forward."""
    from alembic import command

    def triggers() -> dict[str, bool]:  # name → has a WHEN or a column list
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT t.tgname, t.tgqual IS NOT NULL "
                    "OR coalesce(array_length(t.tgattr::int2[], 1), 0) > 0 FROM pg_trigger t "
                    "JOIN pg_class c ON c.oid = t.tgrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = :s AND c.relname = 'hoc_ba' AND t.tgname LIKE '%guard%' "
                    "AND t.tgname <> 'hoc_ba_insert_guard'"
                ),
                {"s": schema_name},
            ).all()
        return dict(rows)

    after = {
        "hoc_ba_guard": True,
        "hoc_ba_guard_content": True,
        "hoc_ba_guard_delete": False,
        "hoc_ba_issue_guard": True,
        "hoc_ba_signed_guard": True,
        "hoc_ba_signed_guard_content": True,
    }
    assert triggers() == after
    cfg = _alembic(engine, schema_name)
    command.downgrade(cfg, "0015")
    assert triggers() == {
        "hoc_ba_guard": False,
        "hoc_ba_issue_guard": False,
        "hoc_ba_signed_guard": False,
    }
    command.upgrade(cfg, "head")
    assert triggers() == after


def _stored(keyed, rid: int) -> tuple[bytes, bytes, str]:  # type: ignore[no-untyped-def]
    """A record's XML as stored, as signed (``hoc_ba_xml``), and its hash."""
    row = f"FROM hoc_ba WHERE id = {int(rid)}"
    return (
        bytes(keyed.scalar(f"SELECT signed_xml {row}")),
        bytes(keyed.scalar(f"SELECT hoc_ba_xml(signed_xml) {row}")),
        str(keyed.scalar(f"SELECT xml_sha256 {row}")),
    )


def test_0017_down_and_up_again_on_issued_records(keyed, schema_name: str) -> None:  # type: ignore[no-untyped-def]
    """Down: every stored document is the signed bytes again (0016's guard hashes them);
    up: packed again, rebuilt to the same bytes."""
    from alembic import command
    from issuing import issue, reviewed_class

    ids, teacher = reviewed_class(keyed)
    ids = ids[:2]
    issue(keyed, ids, teacher)
    before = {rid: _stored(keyed, rid) for rid in ids}
    assert all(len(b[0]) < len(b[1]) for b in before.values())  # packed at head
    cfg = _alembic(keyed.engine, schema_name)
    command.downgrade(cfg, "0016")
    try:
        with keyed.engine.connect() as c:
            for rid in ids:
                xml, sha = c.execute(
                    text("SELECT signed_xml, xml_sha256 FROM hoc_ba WHERE id = :r"), {"r": rid}
                ).one()
                assert bytes(xml) == before[rid][1]
                assert hashlib.sha256(bytes(xml)).hexdigest() == sha
            assert c.scalar(text("SELECT to_regprocedure('hoc_ba_xml(bytea)')")) is None
    finally:
        command.upgrade(cfg, "head")
    for rid in ids:
        assert _stored(keyed, rid) == before[rid]


def test_0019_down_and_up_again_on_issued_records(keyed, schema_name: str) -> None:  # type: ignore[no-untyped-def]
    """Down: the zone's tokens and the subject references expanded again (0017's form:
    certificates by reference, which 0017's ``hoc_ba_xml`` rebuilds to ``xml_sha256``);
    Up: packed again by the migration's SQL,
    the same stored bytes as the worker packed, rebuilt to the same signed bytes."""
    from alembic import command
    from issuing import issue, reviewed_class

    subjects = re.compile(rb"<ds:X509SubjectName>[^<]*</ds:X509SubjectName>")

    ids, teacher = reviewed_class(keyed)
    ids = ids[:2]
    issue(keyed, ids, teacher)
    before = {rid: _stored(keyed, rid) for rid in ids}
    assert all(b[0].count(b"\x01I#") == 3 for b in before.values())
    cfg = _alembic(keyed.engine, schema_name)
    command.downgrade(cfg, "0018")
    try:
        with keyed.engine.connect() as c:
            for rid in ids:
                xml, rebuilt, sha = c.execute(
                    text(
                        "SELECT signed_xml, hoc_ba_xml(signed_xml), xml_sha256 FROM hoc_ba "
                        "WHERE id = :r"
                    ),
                    {"r": rid},
                ).one()
                xml = bytes(xml)
                assert b"\x01" not in xml and b"<ds:X509SubjectName>#" not in xml
                assert xml.count(b"<ds:X509Certificate>#") == 3  # 0017's form
                assert subjects.findall(xml) == subjects.findall(before[rid][1])  # inline
                assert bytes(rebuilt) == before[rid][1]
                assert hashlib.sha256(bytes(rebuilt)).hexdigest() == sha
    finally:
        command.upgrade(cfg, "head")
    for rid in ids:
        assert _stored(keyed, rid) == before[rid]


def test_0018_signing_xml_not_pglz(engine: Engine, schema_name: str) -> None:
    """0018: the partly signed XML is compressed with lz4 (a server built with it) or
    stored out of line uncompressed, never with pglz; back to the default on downgrade
    (tests/models/test_lifecycle.py reads the stored versions back)."""
    from alembic import command

    def layout() -> tuple[str, str]:  # (attcompression, attstorage)
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT a.attcompression, a.attstorage FROM pg_attribute a "
                    "JOIN pg_class c ON c.oid = a.attrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = :s AND c.relname = 'hoc_ba_signing' "
                    "AND a.attname = 'signed_xml'"
                ),
                {"s": schema_name},
            ).one()
        return str(row[0]), str(row[1])

    compression, storage = layout()
    assert compression == "l" or storage == "e"
    cfg = _alembic(engine, schema_name)
    command.downgrade(cfg, "0017")
    assert layout() == (compression, "x")
    command.upgrade(cfg, "head")
    assert layout() == (compression, storage)
