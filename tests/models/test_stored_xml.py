"""The issued XML with its certificates by reference (migration 0017,
``hocba/models/stored_xml.py``): stored smaller, rebuilt byte for byte, by the worker and
by PostgreSQL alike; tampering still fails."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest
from issuing import assert_xmlsec1_verifies, issue, reviewed_class
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from hocba.models import stored_xml
from hocba.tasks.issuance import trust_anchors
from hocba.xml.dsig import verify_record_signatures

CERT = re.compile(rb"<ds:X509Certificate>([^<]*)</ds:X509Certificate>")


def _issued(keyed, n: int = 2) -> list[int]:  # type: ignore[no-untyped-def]
    ids, teacher = reviewed_class(keyed)
    issue(keyed, ids[:n], teacher)
    return ids[:n]


def _stored(engine: Engine, rid: int) -> tuple[bytes, bytes, str]:
    """(stored bytes, PostgreSQL's rebuild, xml_sha256) of a record."""
    with engine.connect() as c:
        stored, rebuilt, sha = c.execute(
            text("SELECT signed_xml, hoc_ba_xml(signed_xml), xml_sha256 FROM hoc_ba WHERE id = :r"),
            {"r": rid},
        ).one()
    return bytes(stored), bytes(rebuilt), sha


def test_issued_xml_is_stored_by_reference_and_rebuilt_byte_for_byte(keyed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rid = _issued(keyed)[0]
    stored, rebuilt, sha = _stored(keyed.engine, rid)
    refs = CERT.findall(stored)
    with keyed.engine.connect() as c:
        ids = {
            cid: base64.b64encode(bytes(der))
            for cid, der in c.execute(text("SELECT id, der FROM certificate"))
        }
        unpacked = stored_xml.unpack_one(c, stored)
    # the three signers' certificates, each by its registry id, none of their Base64 left
    assert len(refs) == 3 and all(r.startswith(b"#") and int(r[1:]) in ids for r in refs)
    assert not any(b64 in stored for b64 in ids.values())
    assert len(stored) < len(rebuilt) - 3 * 1000
    # the worker and PostgreSQL rebuild the same bytes: the signed ones
    assert unpacked == rebuilt
    assert hashlib.sha256(rebuilt).hexdigest() == sha
    assert [int(r[1:]) for r in refs] and [ids[int(r[1:])] for r in refs] == CERT.findall(rebuilt)
    assert verify_record_signatures(rebuilt, trust_anchors(keyed.home)).ok
    path = tmp_path / "hoc_ba.xml"
    path.write_bytes(rebuilt)
    root_pem = tmp_path / "root.pem"
    from cryptography.hazmat.primitives.serialization import Encoding

    root_pem.write_bytes(trust_anchors(keyed.home)[0].public_bytes(Encoding.PEM))
    assert_xmlsec1_verifies(path, root_pem)


def test_a_swapped_reference_fails_verification_and_the_locked_row_refuses_it(keyed) -> None:  # type: ignore[no-untyped-def]
    rid = _issued(keyed)[0]
    stored, _, _ = _stored(keyed.engine, rid)
    gvcn, cbql, _seal = CERT.findall(stored)
    swapped = stored.replace(gvcn, cbql, 1)  # the principal's certificate in GVCN's slot
    with keyed.engine.connect() as c:
        tampered = stored_xml.unpack_one(c, swapped)
    assert tampered is not None
    report = verify_record_signatures(tampered, trust_anchors(keyed.home))
    assert not report.ok
    with keyed.engine.begin() as c, pytest.raises(DBAPIError, match="HBL01|khóa"):
        c.execute(text("UPDATE hoc_ba SET signed_xml = :x WHERE id = :r"), {"x": swapped, "r": rid})


def test_the_issue_guard_hashes_the_rebuilt_document(keyed) -> None:  # type: ignore[no-untyped-def]
    """A seal whose stored bytes do not rebuild to ``xml_sha256`` is refused by PostgreSQL,
    even though the stored (packed) bytes are what the row holds."""
    ids, teacher = reviewed_class(keyed)
    issue(keyed, ids[:1], teacher)
    stored, rebuilt, sha = _stored(keyed.engine, ids[0])
    rid = ids[1]
    keyed.force_state(rid, "principal_signed")
    with keyed.engine.begin() as c, pytest.raises(DBAPIError, match="HBL01|mã băm"):
        c.execute(text("SELECT set_config('hocba.lifecycle', 'on', true)"))
        c.execute(  # the hash of the packed bytes is not the document's
            text(
                "UPDATE hoc_ba SET state = 'issued', issued_at = now(), "
                "lookup_code = gen_random_uuid(), signed_xml = :x, xml_sha256 = :h WHERE id = :r"
            ),
            {"x": stored, "h": hashlib.sha256(stored).hexdigest(), "r": rid},
        )
    with keyed.engine.begin() as c:  # the document's own hash passes
        c.execute(text("SELECT set_config('hocba.lifecycle', 'on', true)"))
        c.execute(
            text(
                "UPDATE hoc_ba SET state = 'issued', issued_at = now(), "
                "lookup_code = gen_random_uuid(), signed_xml = :x, xml_sha256 = :h WHERE id = :r"
            ),
            {"x": stored, "h": sha, "r": rid},
        )
    assert hashlib.sha256(rebuilt).hexdigest() == sha


def test_unregistered_certificates_stay_inline_and_references_are_refused(keyed) -> None:  # type: ignore[no-untyped-def]
    doc = (
        b"<HOC_BA><ds:X509Certificate>" + base64.b64encode(b"not registered") + b"</ds:X509"
        b"Certificate></HOC_BA>"
    )
    with keyed.engine.connect() as c:
        der = bytes(c.scalar(text("SELECT der FROM certificate ORDER BY id LIMIT 1")))
        cid = c.scalar(text("SELECT id FROM certificate ORDER BY id LIMIT 1"))
        assert stored_xml.pack(c, [doc]) == [doc]
        assert stored_xml.unpack_one(c, doc) == doc
        # a registered certificate split over lines is not the signer's form: left alone
        wrapped = base64.encodebytes(der)
        odd = b"<ds:X509Certificate>" + wrapped + b"</ds:X509Certificate>"
        assert stored_xml.pack(c, [odd]) == [odd]
        plain = b"<ds:X509Certificate>" + base64.b64encode(der) + b"</ds:X509Certificate>"
        assert stored_xml.pack(c, [plain]) == [
            b"<ds:X509Certificate>#%d</ds:X509Certificate>" % cid
        ]
        with pytest.raises(stored_xml.StoredXmlError):
            stored_xml.pack(c, [b"<ds:X509Certificate>#1</ds:X509Certificate>"])
        # documents from elsewhere are never unpacked
        foreign = b"<ds:X509Certificate>#%d</ds:X509Certificate>" % cid
        assert stored_xml.unpack_where(c, [(foreign, False), (foreign, True)]) == [
            foreign,
            plain,
        ]
        with pytest.raises(stored_xml.StoredXmlError):
            stored_xml.unpack_one(c, b"<ds:X509Certificate>#999999</ds:X509Certificate>")


def test_a_registered_certificate_cannot_change_or_go(keyed) -> None:  # type: ignore[no-untyped-def]
    with keyed.engine.connect() as c:
        cid = c.scalar(text("SELECT id FROM certificate ORDER BY id LIMIT 1"))
    for sql in (
        "UPDATE certificate SET der = der || '\\x00'::bytea WHERE id = :i",
        "UPDATE certificate SET sha256 = 'x' WHERE id = :i",
        "DELETE FROM certificate WHERE id = :i",
    ):
        with keyed.engine.begin() as c, pytest.raises(DBAPIError, match="HBL01|Chứng thư"):
            c.execute(text(sql), {"i": cid})
    with Session(keyed.engine) as s:  # its status still moves (suspension, approval)
        s.execute(text("UPDATE certificate SET status = 'pending' WHERE id = :i"), {"i": cid})
        s.rollback()
