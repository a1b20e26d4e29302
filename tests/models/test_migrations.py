import hashlib
import json
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
    assert db.current_revision(engine) == "0023"


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


# every event as (chain's name, seq, hash), at 0021's layout
_EVENTS = (
    "SELECT h.chain, e.seq, e.hash FROM audit_event e JOIN audit_head h USING (chain_no) "
    "ORDER BY 1, 2"
)


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
        stored = conn.execute(text(_EVENTS)).all()
    assert stored and all(isinstance(h, bytes) and len(h) == 32 for _, _, h in stored)
    assert audit.verify(session) == []

    cfg = _alembic(engine, schema_name)
    return_to_head = False
    try:
        command.downgrade(cfg, "0013")
        return_to_head = True
        with engine.connect() as conn:
            old = conn.execute(
                text("SELECT chain, seq, prev_hash, hash FROM audit_event ORDER BY chain, seq")
            ).all()
        by_key = {(chain, seq): h for chain, seq, h in stored}
        assert len(old) == len(by_key)
        prev: dict[str, str] = {}
        for chain, seq, prev_hash, hex_hash in old:
            assert hex_hash == by_key[chain, seq].hex()
            assert prev_hash == prev.get(chain, audit.GENESIS), (chain, seq)
            prev[chain] = hex_hash
        command.upgrade(cfg, "head")
        return_to_head = False
    finally:
        if return_to_head:
            command.upgrade(cfg, "head")
    with engine.connect() as conn:
        assert conn.execute(text(_EVENTS)).all() == stored
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
        "hoc_ba_guard_materialized": True,
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


def _audit_layout(engine: Engine, schema_name: str) -> dict[str, list[tuple[object, ...]]]:
    """audit_event's and audit_head's columns, constraints, indexes and triggers."""
    tables = ("audit_event", "audit_head")
    queries = {
        # in their order (not by number: a down and up leaves a dropped column's number)
        "columns": "SELECT table_name, column_name, data_type, is_nullable, "
        "column_default, is_identity FROM information_schema.columns "
        "WHERE table_schema = :s AND table_name = ANY(:t) ORDER BY table_name, ordinal_position",
        "constraints": "SELECT c.relname, k.conname, pg_get_constraintdef(k.oid) "
        "FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = :s AND c.relname = ANY(:t) ORDER BY 1, 2",
        "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes "
        "WHERE schemaname = :s AND tablename = ANY(:t) ORDER BY 1, 2",
        "triggers": "SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t "
        "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = :s AND c.relname = ANY(:t) AND NOT t.tgisinternal ORDER BY 1, 2",
    }
    with engine.connect() as conn:
        return {
            k: [tuple(r) for r in conn.execute(text(q), {"s": schema_name, "t": list(tables)})]
            for k, q in queries.items()
        }


def test_0021_keeps_audit_chains_verifiable_down_and_up(
    engine: Engine, schema_name: str, session: Session
) -> None:
    """0021 numbers the chains and drops ``id``: events written before it (by 0018's
    layout) verify after it, the chains go on, and a downgrade gives the chain names,
    ``id`` (in time order) and ``bigint`` ``seq`` back. The upgraded schema is the same as
    a fresh one."""
    import datetime as dt

    from alembic import command

    from hocba.models import audit

    t0 = dt.datetime(2026, 5, 20, 3, tzinfo=dt.UTC)
    for i in range(2):
        audit.append(
            session,
            [audit.NewEvent(chain=f"school:T{k}", actor="test", action=f"a{i}") for k in (2, 1)],
            at=t0 + dt.timedelta(minutes=i),
        )
    session.commit()
    fresh = _audit_layout(engine, schema_name)
    assert [c[1] for c in fresh["columns"] if c[0] == "audit_event"][:5] == [
        "at",
        "seq",
        "chain_no",
        "actor_id",
        "record_id",
    ]
    assert [c[1] for c in fresh["indexes"] if c[0] == "audit_event"] == [
        "audit_event_pkey",
        "ix_audit_event_record_id",
    ]
    with engine.connect() as conn:
        before = conn.execute(text(_EVENTS)).all()

    cfg = _alembic(engine, schema_name)
    return_to_head = False
    try:
        command.downgrade(cfg, "0020")
        return_to_head = True
        with engine.begin() as conn:
            old = conn.execute(
                text("SELECT id, chain, seq, hash FROM audit_event ORDER BY id")
            ).all()
            # ids in time order, then chain and seq; the rows are those of 0021
            assert [(c, s) for _, c, s, _ in old] == [
                ("school:T1", 1),
                ("school:T2", 1),
                ("school:T1", 2),
                ("school:T2", 2),
            ]
            assert sorted((c, s, h) for _, c, s, h in old) == before
            assert (
                conn.scalar(
                    text(
                        "SELECT data_type FROM information_schema.columns WHERE table_schema = :s "
                        "AND table_name = 'audit_event' AND column_name = 'seq'"
                    ),
                    {"s": schema_name},
                )
                == "bigint"
            )
            # events written by 0018's code: an old chain goes on, a new one starts
            prev = {c: bytes(h).hex() for _, c, _, h in old}
            prev["school:T3"] = audit.GENESIS
            for chain, seq in (("school:T1", 3), ("school:T3", 1)):
                at = t0 + dt.timedelta(minutes=5)
                data = {
                    "actor_id": None,
                    "actor": "old",
                    "action": "before_0021",
                    "record_id": None,
                    "from_state": None,
                    "to_state": None,
                    "reason": "trước 0021",
                    "payload": {"n": seq},
                }
                h = bytes.fromhex(audit.event_hash(prev[chain], chain, seq, at, data))
                conn.execute(
                    text(
                        "INSERT INTO audit_event (chain, seq, at, actor, action, reason, "
                        "payload, hash) VALUES (:c, :s, :at, 'old', 'before_0021', "
                        "'trước 0021', CAST(:p AS jsonb), :h)"
                    ),
                    {"c": chain, "s": seq, "at": at, "p": json.dumps(data["payload"]), "h": h},
                )
                conn.execute(
                    text(
                        "INSERT INTO audit_head (chain, seq, hash) VALUES (:c, :s, :h) "
                        "ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash"
                    ),
                    {"c": chain, "s": seq, "h": h},
                )
        command.upgrade(cfg, "head")
        return_to_head = False
    finally:
        if return_to_head:
            command.upgrade(cfg, "head")
    assert _audit_layout(engine, schema_name) == fresh
    assert audit.verify(session) == []
    with engine.connect() as conn:
        after = conn.execute(text(_EVENTS)).all()
    assert [e for e in after if e[1] <= 2 and e[0] != "school:T3"] == before
    assert {(c, s) for c, s, _ in after} - {(c, s) for c, s, _ in before} == {
        ("school:T1", 3),
        ("school:T3", 1),
    }
    # the chains go on after it, a new chain gets its own number
    audit.append(
        session,
        [
            audit.NewEvent(chain=c, actor="test", action="after_0021")
            for c in ("school:T1", "school:T4")
        ],
    )
    session.commit()
    assert audit.verify(session) == []
    with engine.connect() as conn:
        heads = dict(conn.execute(text("SELECT chain, seq FROM audit_head")).all())
        numbers = conn.scalars(text("SELECT chain_no FROM audit_head")).all()
    assert heads == {"school:T1": 4, "school:T2": 2, "school:T3": 1, "school:T4": 1}
    assert len(set(numbers)) == 4
    # and an event changed after it is still found
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
        conn.execute(
            text(
                "UPDATE audit_event SET reason = 'sửa' WHERE seq = 3 AND chain_no = "
                "(SELECT chain_no FROM audit_head WHERE chain = 'school:T1')"
            )
        )
        conn.execute(text("ALTER TABLE audit_event ENABLE TRIGGER USER"))
    assert [(p.chain, p.seq) for p in audit.verify(session)] == [("school:T1", 3)]


def test_0022_content_stored_once_up_and_down_in_every_state(district, schema_name: str) -> None:  # type: ignore[no-untyped-def]
    """Down: every record has its content again (NOT NULL, 0016's guards); up: the live
    records whose content is their year_summary's keep none, the others (revoked,
    superseded, a draft not yet refreshed) keep theirs; the effective content of every
    record is the same at each step."""
    from alembic import command

    from hocba.models.lifecycle import SYSTEM
    from hocba.models.lifecycle_states import STATES
    from hocba.models.records import create_drafts

    ids = district.record_ids("DH01") + district.record_ids("DH02")
    states = dict(zip(ids, STATES, strict=False))  # one record in each state
    assert set(states.values()) == set(STATES)
    for rid, state in states.items():
        if state != "draft":
            district.force_state(rid, state, flags="[]")
    effective = (
        "SELECT r.id, COALESCE(r.content, ys.content)::text FROM hoc_ba r "
        "JOIN year_summary ys ON ys.enrolment_id = r.enrolment_id"
    )

    def contents() -> dict[int, str]:
        with district.engine.connect() as c:
            return {int(i): str(t) for i, t in c.execute(text(effective)).all()}

    def own() -> set[int]:  # the records that keep a content of their own
        with district.engine.connect() as c:
            return set(c.scalars(text("SELECT id FROM hoc_ba WHERE content IS NOT NULL")))

    before = contents()
    assert own() == {r for r, s in states.items() if s in ("revoked", "superseded")}
    cfg = _alembic(district.engine, schema_name)
    command.downgrade(cfg, "0021")
    try:
        assert contents() == before and own() == set(contents())
        with district.engine.connect() as c:
            nullable = c.scalar(
                text(
                    "SELECT is_nullable FROM information_schema.columns WHERE table_schema = :s "
                    "AND table_name = 'hoc_ba' AND column_name = 'content'"
                ),
                {"s": schema_name},
            )
            guard = c.scalar(text("SELECT pg_get_functiondef('hoc_ba_guard_content'::regproc)"))
            pad = c.scalar(
                text(
                    "SELECT attstorage FROM pg_attribute WHERE attrelid = 'hoc_ba'::regclass "
                    "AND attname = 'toast_pad' AND NOT attisdropped"
                )
            )
            seen = c.scalar(
                text(
                    "SELECT count(*) FROM information_schema.columns WHERE table_schema = :s "
                    "AND table_name = 'hoc_ba' AND column_name = 'summary_seen_at'"
                ),
                {"s": schema_name},
            )
        assert nullable == "NO" and seen == 0 and "hoc_ba_summary_content" not in guard
        assert pad == "m"  # 0015's toast pad is back
        # a draft whose year_summary was re-imported and not yet refreshed (0018 allows it)
        stale = next(r for r, s in states.items() if s == "draft")
        with district.engine.begin() as c:
            c.execute(
                text(
                    "UPDATE year_summary SET content = content || '{\"awards\": {}}'::jsonb "
                    "WHERE enrolment_id = (SELECT enrolment_id FROM hoc_ba WHERE id = :r)"
                ),
                {"r": stale},
            )
        before = contents()
    finally:
        command.upgrade(cfg, "head")
    assert contents() == before
    assert (
        district.scalar(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'hoc_ba'::regclass "
            "AND attname = 'toast_pad' AND NOT attisdropped"
        )
        == 0
    )
    assert own() == {stale} | {r for r, s in states.items() if s in ("revoked", "superseded")}
    with Session(district.engine) as s:
        report = create_drafts(s, SYSTEM)
        s.commit()
    assert report.refreshed == 1  # the stale draft, now following its year_summary
    assert stale not in own()


def test_0020_index_swap_down_and_up_again(district, schema_name: str) -> None:  # type: ignore[no-untyped-def]
    """0020: ``hoc_ba_year_school`` with ``issued_at`` in its key (deduplicated) and the
    lookup code unique only where it is set; 0018's definitions back on downgrade, and a
    schema upgraded again ends as a fresh one. A lookup code stays unique both ways."""
    import uuid

    import pytest
    from alembic import command
    from sqlalchemy.exc import IntegrityError

    engine = district.engine

    def indexes() -> dict[str, str]:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT indexname, replace(indexdef, :prefix, '') FROM pg_indexes "
                    "WHERE schemaname = :s AND tablename = 'hoc_ba'"
                ),
                {"s": schema_name, "prefix": f"{schema_name}."},
            ).all()
        return dict(rows)

    def constraints() -> set[str]:
        with engine.connect() as conn:
            return set(
                conn.scalars(
                    text(
                        "SELECT c.conname FROM pg_constraint c "
                        "JOIN pg_namespace n ON n.oid = c.connamespace "
                        "WHERE n.nspname = :s AND c.conrelid = 'hoc_ba'::regclass"
                    ),
                    {"s": schema_name},
                )
            )

    def same_code_twice_refused() -> None:
        first, second = district.record_ids("DH01")[:2]
        code = uuid.uuid4()
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE hoc_ba SET lookup_code = :c WHERE id = :r"), {"c": code, "r": first}
            )
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(
                text("UPDATE hoc_ba SET lookup_code = :c WHERE id = :r"), {"c": code, "r": second}
            )
        with engine.begin() as conn:
            conn.execute(text("UPDATE hoc_ba SET lookup_code = NULL WHERE id = :r"), {"r": first})

    fresh = indexes()
    assert fresh["hoc_ba_year_school"].endswith(
        "USING btree (school_year_id, school_id, cohort, state, issued_at)"
    )
    assert fresh["hoc_ba_lookup_code_key"].endswith(
        "USING btree (lookup_code) WHERE (lookup_code IS NOT NULL)"
    )
    assert fresh["hoc_ba_lookup_code_key"].startswith("CREATE UNIQUE INDEX")
    assert "hoc_ba_lookup_code_key" not in constraints()
    same_code_twice_refused()

    cfg = _alembic(engine, schema_name)
    command.downgrade(cfg, "0019")
    try:
        old = indexes()
        assert old["hoc_ba_year_school"].endswith(
            "USING btree (school_year_id, school_id, cohort, state) INCLUDE (issued_at)"
        )
        assert old["hoc_ba_lookup_code_key"].endswith("USING btree (lookup_code)")
        assert "hoc_ba_lookup_code_key" in constraints()
        same_code_twice_refused()
    finally:
        command.upgrade(cfg, "head")
    assert indexes() == fresh
    assert "hoc_ba_lookup_code_key" not in constraints()
