"""How a record is stored (issue 14, storage): the tables' storage settings, and what they
do to a record going through its lifecycle — its row versions stay in its own page, its
content is out of line, the issued bytes come back exactly and under the issue guard."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from hocba.models.lifecycle import SYSTEM, transition


def _reloptions(district: Any, table: str) -> set[str]:
    opts = district.scalar("SELECT reloptions FROM pg_class WHERE oid = to_regclass(:t)", t=table)
    return set(opts or [])


def test_storage_settings(district) -> None:  # type: ignore[no-untyped-def]
    """hoc_ba leaves half of each page for its rows' next versions (0015) and keeps a
    content out of line (0014); a draft has no content of its own, and no pad (0022); the
    working table of partly signed XML is vacuumed early."""
    assert {"fillfactor=50", "toast_tuple_target=128"} <= _reloptions(district, "hoc_ba")
    assert {"autovacuum_vacuum_threshold=200", "toast.autovacuum_vacuum_threshold=200"} <= (
        _reloptions(district, "hoc_ba_signing") | _toast_options(district, "hoc_ba_signing")
    )
    # a draft stores no content: it reads its year_summary's, and the pad that moved the
    # content out of line at the INSERT (0015) has nothing left to move (0022)
    assert district.scalar("SELECT count(content) FROM hoc_ba") == 0
    pad = district.scalar(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 'hoc_ba'::regclass "
        "AND attname = 'toast_pad' AND NOT attisdropped"
    )
    assert pad == 0
    # a draft's row is small: ~45 drafts fit in two pages at fillfactor 50
    assert district.scalar("SELECT max(pg_column_size(hoc_ba.*)) FROM hoc_ba") < 400


def _toast_options(district: Any, table: str) -> set[str]:
    opts = district.scalar(
        "SELECT t.reloptions FROM pg_class c JOIN pg_class t ON t.oid = c.reltoastrelid "
        "WHERE c.oid = to_regclass(:t)",
        t=table,
    )
    return {f"toast.{o}" for o in opts or []}


def _block(district: Any, rid: int) -> int:
    """The heap page holding the record's current row version."""
    return int(
        str(district.scalar("SELECT ctid FROM hoc_ba WHERE id = :r", r=rid))
        .strip("()")
        .split(",")[0]
    )


def test_a_record_s_row_versions_stay_in_its_page(make_district) -> None:  # type: ignore[no-untyped-def]
    """Drafts are inserted together, filling their pages: with ``fillfactor = 100`` the
    first page was full and the record's first state update already moved it to another
    page (the table grew by a page of dead versions per ~30 updates). With 50 the seven
    updates of a record's life, and the forced flags before them, all land in the draft's
    own page. A draft has no content of its own (0022: it reads its year_summary's; before,
    the toast pad moved it out of line): ~45 drafts fill four pages at most, half empty, and
    the issued XML comes back byte for byte with its SHA-256."""
    district = make_district(24)
    pages = district.scalar(
        "SELECT pg_relation_size('hoc_ba') / current_setting('block_size')::int"
    )
    drafts = district.scalar("SELECT count(*) FROM hoc_ba")
    in_first = district.scalar("SELECT count(*) FROM hoc_ba WHERE ctid < '(1,0)'::tid")
    assert drafts >= 40 and pages <= 4 and in_first < drafts
    rid = district.record_ids("DH01")[0]
    first = _block(district, rid)
    district.force_state(rid, "in_review", flags="[]")
    teacher = district.homeroom_of(rid)
    # ~20 KB of XML, as compressible as a real one: toasted and compressed
    body = "".join(f"<MON><MA>{i}</MA><DIEM>{i % 10}</DIEM></MON>" for i in range(600))
    issued = f"<HOC_BA>{body}<KY>niêm phong</KY></HOC_BA>".encode()
    steps: list[tuple[str, Any, dict[str, Any]]] = [
        ("approve", teacher, {}),
        ("teacher_sign", teacher, {"signed_xml": b"<HOC_BA>gvcn</HOC_BA>"}),
        ("principal_sign", district.actor("dh01.ht"), {"signed_xml": b"<HOC_BA>cbql</HOC_BA>"}),
        ("seal", district.actor("dh01.vt"), {"signed_xml": issued}),
        ("submit", SYSTEM, {}),
        ("accept", SYSTEM, {}),
    ]
    for action, actor, payload in steps:
        with Session(district.engine) as s:
            res = transition(s, [rid], action, actor, payloads={rid: payload} if payload else None)
            assert res.ok == [rid], res.failed
            s.commit()
        assert _block(district, rid) == first, action
    with district.engine.connect() as conn:
        stored, sha, method = conn.execute(
            text(
                "SELECT signed_xml, xml_sha256, pg_column_compression(signed_xml) "
                "FROM hoc_ba WHERE id = :r"
            ),
            {"r": rid},
        ).one()
    assert bytes(stored) == issued and method is not None
    assert sha == hashlib.sha256(issued).hexdigest()
    # the issue guard still checks the stored bytes: a changed byte is refused
    with pytest.raises(DBAPIError, match="HBL01|đã phát hành"):
        with district.engine.begin() as conn:
            conn.execute(text("SELECT set_config('hocba.lifecycle', 'on', true)"))
            conn.execute(
                text("UPDATE hoc_ba SET signed_xml = signed_xml || '\\x20'::bytea WHERE id = :r"),
                {"r": rid},
            )


def test_an_issued_record_stores_its_xml_in_two_toast_chunks(keyed) -> None:  # type: ignore[no-untyped-def]
    """The issued XML of a real record (three RSA-2048 signatures with their certificates,
    ~15.6 KB) takes < 3,992 B stored, two TOAST chunks of 1,996 B (three left ~0.9 KB of
    page tails per record), and under a quarter of its signed bytes: its three
    certificates and their subjects are references (0017, 0019), the signature zone's
    fixed texts tokens (0019). Before, pglz took it to ~7.8 KB (half), then ~4.3 KB."""
    from issuing import issue, reviewed_class

    ids, teacher = reviewed_class(keyed)
    issue(keyed, ids[:3], teacher)
    with keyed.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT pg_column_size(signed_xml), octet_length(hoc_ba_xml(signed_xml)), "
                "pg_column_compression(signed_xml) FROM hoc_ba WHERE id = ANY(:i)"
            ),
            {"i": ids[:3]},
        ).all()
    assert len(rows) == 3
    for stored, signed, method in rows:
        assert signed > 14_000 and stored * 4 < signed, (stored, signed)
        if method == "pglz":  # the server's default (lz4 compresses less, faster)
            assert stored < 3_992, stored
