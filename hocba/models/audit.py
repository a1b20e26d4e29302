"""The append-only, hash-chained audit log.

Each chain (one per school, plus ``org:<code>`` chains for district-level actions and
``system``) is a sequence ``seq = 1, 2, …`` where every event stores the hash of the one
before it. ``hash = SHA-256(hex of the previous hash ‖ canonical JSON of the event)``, so an
edited, deleted or reordered event breaks the chain at that point; the database also
refuses UPDATE, DELETE and TRUNCATE of ``audit_event`` (migration 0001). Hashes are stored
as their 32 bytes (``bytea``) and the previous hash is not stored: it is the ``hash`` of
the chain's event ``seq - 1`` (migration 0014); the formula works on the hex form. An
event names its chain by number (``audit_event.chain_no`` = ``audit_head.chain_no``,
migration 0021); the hash covers the chain's name, read from its head.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

GENESIS = "0" * 64


@dataclass
class NewEvent:
    """An event to append; ``chain`` is usually ``school:<MA_TRUONG>``."""

    chain: str
    actor: str
    action: str
    actor_id: int | None = None
    record_id: int | None = None
    from_state: str | None = None
    to_state: str | None = None
    reason: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChainProblem:
    """The first broken point of a chain."""

    chain: str
    seq: int
    message: str


def _check_payload(value: Any) -> None:
    """Payload values must round-trip through JSONB unchanged (the hash depends on it):
    strings, booleans, None, integers of at most 15 digits, and lists/dicts of them."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError("audit: khóa của payload phải là chuỗi")
            _check_payload(v)
    elif isinstance(value, list):
        for v in value:
            _check_payload(v)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if abs(value) >= 10**15:
            raise ValueError("audit: số nguyên quá lớn trong payload")
    elif isinstance(value, str):
        if "\x00" in value:
            raise ValueError("audit: payload chứa ký tự NUL")
    else:
        raise ValueError(f"audit: kiểu {type(value).__name__} không được dùng trong payload")


def school_chain(school_code: str) -> str:
    return f"school:{school_code}"


#: the canonical JSON of a payload (and of anything nested): keys sorted, no spaces, UTF-8
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode
_string = json.encoder.encode_basestring  # a JSON string, UTF-8 kept (ensure_ascii=False)


def _scalar(value: str | int | None) -> str:
    """The canonical JSON of an event's own column (text, integer or NULL)."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return _string(value)
    if type(value) is int:
        return str(value)
    return _CANONICAL_JSON(value)  # a bool or anything else, as ``json`` would write it


def _at_text(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _canonical(chain: str, seq: int, at: dt.datetime, ev: dict[str, Any]) -> bytes:
    """``json.dumps`` of the event with sorted keys, compact, UTF-8: the bytes the hash
    covers. Written out field by field, in the sorted order of the keys, because
    :func:`append` writes eight events per record: byte for byte the same as the
    ``json.dumps(..., sort_keys=True)`` of the dict (tests/models/test_audit_canonical.py),
    at half its cost."""
    return _canonical_text(chain, seq, _at_text(at), ev, _CANONICAL_JSON(ev["payload"])).encode()


def _canonical_text(
    chain: str, seq: int, at_text: str, ev: dict[str, Any], payload_json: str
) -> str:
    return (
        f'{{"action":{_scalar(ev["action"])},"actor":{_scalar(ev["actor"])},'
        f'"actor_id":{_scalar(ev["actor_id"])},"at":{_string(at_text)},'
        f'"chain":{_string(chain)},"from_state":{_scalar(ev["from_state"])},'
        f'"payload":{payload_json},"reason":{_scalar(ev["reason"])},'
        f'"record_id":{_scalar(ev["record_id"])},"seq":{_scalar(seq)},'
        f'"to_state":{_scalar(ev["to_state"])}}}'
    )


def _link(prev_hash: str, canonical: bytes) -> Any:
    """An event's hash object: SHA-256(hex of the previous hash ‖ its canonical JSON)."""
    return hashlib.sha256(prev_hash.encode() + canonical)


def event_hash(prev_hash: str, chain: str, seq: int, at: dt.datetime, ev: dict[str, Any]) -> str:
    return str(_link(prev_hash, _canonical(chain, seq, at, ev)).hexdigest())


def append(session: Session, events: Sequence[NewEvent], at: dt.datetime | None = None) -> None:
    """Append ``events`` in order, in the caller's transaction, chaining each per chain.

    The heads of the touched chains are locked (``FOR UPDATE``, in a fixed order so two
    writers never deadlock); writers to other schools' chains do not wait.
    """
    if not events:
        return
    at = at or dt.datetime.now(dt.UTC)
    if at.tzinfo is None:
        raise ValueError("audit: thời điểm phải có múi giờ (aware datetime)")
    for ev in events:
        _check_payload(ev.payload)
    by_chain: dict[str, list[NewEvent]] = defaultdict(list)
    for ev in events:
        by_chain[ev.chain].append(ev)
    chains = sorted(by_chain)
    conn = session.connection()
    # a new chain gets its head (and its number); the filter before the insert keeps the
    # identity sequence from being drawn for chains that have one already
    conn.execute(
        text(
            "INSERT INTO audit_head (chain, seq, hash) "
            "SELECT c, 0, :g FROM unnest(CAST(:chains AS text[])) c "
            "WHERE NOT EXISTS (SELECT 1 FROM audit_head h WHERE h.chain = c) "
            "ON CONFLICT (chain) DO NOTHING"
        ),
        {"chains": chains, "g": bytes.fromhex(GENESIS)},
    )
    heads = {
        row.chain: (row.chain_no, row.seq, bytes(row.hash).hex())
        for row in conn.execute(
            text(
                "SELECT chain, chain_no, seq, hash FROM audit_head WHERE chain = ANY(:chains) "
                "ORDER BY chain FOR UPDATE"
            ),
            {"chains": chains},
        )
    }
    rows: list[dict[str, Any]] = []
    new_heads: list[dict[str, Any]] = []
    at_text = _at_text(at)  # one instant for the whole batch
    for chain in chains:
        chain_no, seq, prev = heads[chain]
        for ev in by_chain[chain]:
            seq += 1
            data = {
                "actor_id": ev.actor_id,
                "actor": ev.actor,
                "action": ev.action,
                "record_id": ev.record_id,
                "from_state": ev.from_state,
                "to_state": ev.to_state,
                "reason": ev.reason,
                "payload": ev.payload,
            }
            payload_json = _CANONICAL_JSON(ev.payload)  # hashed, and stored as it is
            digest = _link(prev, _canonical_text(chain, seq, at_text, data, payload_json).encode())
            rows.append(
                {
                    **data,
                    "chain_no": chain_no,
                    "seq": seq,
                    "at": at,
                    "hash": digest.digest(),
                    "payload": payload_json,
                }
            )
            prev = digest.hexdigest()
        new_heads.append({"chain": chain, "seq": seq, "hash": bytes.fromhex(prev)})
    cur = conn.connection.driver_connection.cursor()  # psycopg: COPY is the fastest bulk path
    cols = (  # the table's order (migration 0021)
        "at",
        "seq",
        "chain_no",
        "actor_id",
        "record_id",
        "payload",
        "actor",
        "action",
        "from_state",
        "to_state",
        "reason",
        "hash",
    )
    with cur.copy(f"COPY audit_event ({', '.join(cols)}) FROM STDIN") as copy:
        for r in rows:
            copy.write_row(tuple(r[c] for c in cols))
    conn.execute(
        text("UPDATE audit_head SET seq = :seq, hash = :hash WHERE chain = :chain"), new_heads
    )


def verify(session: Session, chains: Iterable[str] | None = None) -> list[ChainProblem]:
    """Recompute every (or the given) chain; return the first broken event of each."""
    # one consistent snapshot: a writer committing meanwhile must not look like tampering
    with session.get_bind().connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        return _verify(conn, chains)


def _verify(conn: Any, chains: Iterable[str] | None) -> list[ChainProblem]:
    if chains is None:
        heads = conn.execute(
            text("SELECT chain, chain_no, seq, hash FROM audit_head ORDER BY chain")
        ).all()
        wanted = [h.chain for h in heads]
    else:
        wanted = sorted(chains)
        heads = conn.execute(
            text("SELECT chain, chain_no, seq, hash FROM audit_head WHERE chain = ANY(:c)"),
            {"c": wanted},
        ).all()
    by_chain = {h.chain: h for h in heads}
    problems: list[ChainProblem] = []
    for chain in wanted:
        head = by_chain.get(chain)
        if head is None:
            problems.append(ChainProblem(chain, 0, "Mất đầu chuỗi (audit_head) của chuỗi này"))
            continue
        prev, expected_seq, problem = GENESIS, 1, None
        result = conn.execution_options(yield_per=5000).execute(
            text(
                "SELECT seq, at, actor_id, actor, action, record_id, from_state, to_state, "
                "reason, payload, hash FROM audit_event WHERE chain_no = :n ORDER BY seq"
            ),
            {"n": head.chain_no},
        )
        for r in result:
            data = {
                "actor_id": r.actor_id,
                "actor": r.actor,
                "action": r.action,
                "record_id": r.record_id,
                "from_state": r.from_state,
                "to_state": r.to_state,
                "reason": r.reason,
                "payload": r.payload,
            }
            if r.seq != expected_seq:
                problem = ChainProblem(
                    chain, expected_seq, f"Thiếu sự kiện số {expected_seq} (bị xóa?)"
                )
            elif event_hash(prev, chain, r.seq, r.at, data) != bytes(r.hash).hex():
                problem = ChainProblem(chain, r.seq, "Nội dung sự kiện đã bị sửa")
            if problem:
                break
            prev, expected_seq = bytes(r.hash).hex(), expected_seq + 1
        result.close()
        if problem is None and (head.seq, bytes(head.hash).hex()) != (expected_seq - 1, prev):
            problem = ChainProblem(chain, expected_seq - 1, "Sự kiện cuối của chuỗi bị mất")
        if problem:
            problems.append(problem)
    if chains is None:
        # events whose chain has no head (only if the head's guard was bypassed): their
        # chain's name, which their hashes cover, is lost with it
        for no in conn.scalars(
            text(
                "SELECT DISTINCT e.chain_no FROM audit_event e WHERE NOT EXISTS "
                "(SELECT 1 FROM audit_head h WHERE h.chain_no = e.chain_no) ORDER BY 1"
            )
        ):
            problems.append(
                ChainProblem(f"#{no}", 0, f"Mất đầu chuỗi (audit_head) của chuỗi số {no}")
            )
    return problems
