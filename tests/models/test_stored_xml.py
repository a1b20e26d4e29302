"""The issued XML with its certificates by reference (migration 0017), subjects by reference
and the signature zone's fixed texts by token (migration 0019; ``hocba/models/
stored_xml.py``): stored smaller, rebuilt byte for byte, by the worker and by PostgreSQL
alike; tampering still fails."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import re
from pathlib import Path

import pytest
from issuing import assert_xmlsec1_verifies, issue, reviewed_class
from lxml import etree
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from hocba import db
from hocba.models import stored_xml
from hocba.tasks.issuance import trust_anchors
from hocba.xml.dsig import verify_record_signatures

CERT = re.compile(rb"<ds:X509Certificate>([^<]*)</ds:X509Certificate>")
SUBJECT = re.compile(rb"<ds:X509SubjectName>([^<]*)</ds:X509SubjectName>")


_FIXED = dict(stored_xml.ZONE_TOKENS)


def _zone(slot: bytes, subject: bytes, b64: bytes) -> bytes:
    """A piece of a signature zone: a slot's start, its subject name and certificate."""
    return b"<x>%s%s%s%s%s%s%s</x>" % (
        _FIXED[b"A"],
        slot,
        _FIXED[b"I"],
        subject,
        _FIXED[b"J"],
        b64,
        _FIXED[b"K"],
    )


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
    assert stored.count(b"\x01") == 3 * 13  # the zone's fixed texts by token (0019)
    refs = re.findall(rb"\x01J(#\d+)\x01K", stored)  # each slot's certificate
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
    # each subject name by the reference of the certificate it names
    assert re.findall(rb"\x01I(#\d+)\x01J", stored) == refs
    with keyed.engine.connect() as c:
        names = dict(c.execute(text("SELECT id, subject FROM certificate")).all())
    assert SUBJECT.findall(rebuilt) == [names[int(r[1:])].encode() for r in refs]
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
    gvcn, cbql, _seal = re.findall(rb"\x01J#\d+\x01K", stored)
    swapped = stored.replace(gvcn, cbql, 1)  # the principal's certificate in GVCN's slot
    assert swapped != stored
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
        with pytest.raises(stored_xml.StoredXmlError):
            stored_xml.pack(c, [b"<ds:X509SubjectName>#1</ds:X509SubjectName>"])
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


def _signed_of(keyed, rid: int) -> tuple[bytes, bytes, str]:  # type: ignore[no-untyped-def]
    """(stored, Python's rebuild, xml_sha256)."""
    stored, rebuilt, sha = _stored(keyed.engine, rid)
    with keyed.engine.connect() as c:
        unpacked = stored_xml.unpack_one(c, stored)
    assert unpacked == rebuilt
    return stored, rebuilt, sha


def test_the_zone_tokens_are_the_migrations_and_all_occur_in_an_issued_record(keyed) -> None:  # type: ignore[no-untyped-def]
    """One dictionary: migration 0019's frozen copy is the Python one. Every fixed text is
    what ``sign_slots`` writes today (three times: one per slot; the ECDSA method in the
    ECDSA template), so a template that drifts fails here, not silently in storage."""
    from hocba.xml import dsig

    spec = importlib.util.spec_from_file_location(
        "hocba_migration_0019", db.MIGRATIONS_DIR / "versions" / "0019_zone_tokens.py"
    )
    assert spec and spec.loader
    zone = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(zone)
    assert [(k.encode(), v.encode()) for k, v in zone.TOKENS] == list(stored_xml.ZONE_TOKENS)
    letters = [k for k, _ in stored_xml.ZONE_TOKENS]
    assert len(set(letters)) == len(letters) and all(len(k) == 1 for k in letters)

    rid = _issued(keyed, 1)[0]
    stored, signed, _sha = _signed_of(keyed, rid)
    for letter, fixed in stored_xml.ZONE_TOKENS:
        expected = 0 if letter == b"D" else 3
        assert signed.count(fixed) == expected, letter
        assert stored.count(b"\x01" + letter) == expected, letter
    assert stored.count(b"\x01") == 3 * (len(letters) - 1)
    ecdsa = etree.tostring(dsig._marked_signature("GVCN", dsig._ECDSA_SHA256_URI))
    for letter, fixed in stored_xml.ZONE_TOKENS:
        if letter not in (b"C", b"N"):  # RSA's method; N reaches past the signature
            assert ecdsa.count(fixed) == 1, letter
    assert ecdsa.count(dict(stored_xml.ZONE_TOKENS)[b"N"].split(b"<NGAY_KY>")[0]) == 1


def test_a_document_with_x01_is_refused_and_an_unknown_token_is_an_error(keyed) -> None:  # type: ignore[no-untyped-def]
    with keyed.engine.connect() as c:
        with pytest.raises(stored_xml.StoredXmlError, match="x01"):
            stored_xml.pack(c, [b"<HOC_BA>\x01A</HOC_BA>"])
        for odd in (b"<HOC_BA>\x01z</HOC_BA>", b"<HOC_BA>\x01"):
            with pytest.raises(stored_xml.StoredXmlError, match="mã rút gọn"):
                stored_xml.unpack_one(c, odd)
            with pytest.raises(DBAPIError, match="HBL01|mã rút gọn"), c.begin_nested():
                c.execute(text("SELECT hoc_ba_xml(:d)"), {"d": odd})
        with pytest.raises(DBAPIError, match="HBL01|chứng thư"), c.begin_nested():
            c.execute(text("SELECT hoc_ba_xml(:d)"), {"d": b"<a>\x01J#999999\x01K"})
        with pytest.raises(stored_xml.StoredXmlError, match="Thiếu chứng thư"):
            stored_xml.unpack_one(c, b"<a>\x01J#999999\x01K")
        # a document stored before 0019 (no token) is its own unpacked form
        plain = b"<HOC_BA><ds:X509SubjectName>CN=A</ds:X509SubjectName></HOC_BA>"
        assert stored_xml.unpack_one(c, plain) == plain
        # every token alone: PostgreSQL and the worker expand them alike
        for letter, fixed in stored_xml.ZONE_TOKENS:
            doc = b"<a>\x01" + letter + b"</a>"
            assert stored_xml.unpack_one(c, doc) == b"<a>" + fixed + b"</a>"
            assert (
                bytes(c.scalar(text("SELECT hoc_ba_xml(:d)"), {"d": doc}))
                == b"<a>" + fixed + b"</a>"
            )


def test_subjects_by_reference_only_when_exactly_the_certificates(keyed) -> None:  # type: ignore[no-untyped-def]
    """In the zone, a subject name is a reference only when its text is the subject of the
    certificate that follows it, escaped as the signer writes it; the subject then cannot
    change. (Without a zone, only certificates are references: 0017's form.)"""
    with keyed.engine.connect() as c:
        cid, der, subject = c.execute(
            text("SELECT id, der, subject FROM certificate ORDER BY id LIMIT 1")
        ).one()
    b64 = base64.b64encode(bytes(der))

    def slot(name: bytes) -> bytes:
        return _zone(b"GVCN", name, b64)

    own = stored_xml.xml_text(subject)
    with keyed.engine.connect() as c:
        (packed,) = stored_xml.pack(c, [slot(own)])
        assert packed == b"<x>\x01AGVCN\x01I#%d\x01J#%d\x01K</x>" % (cid, cid)
        for other in (own + b" ", b"CN=someone else", b""):
            (kept,) = stored_xml.pack(c, [slot(other)])
            assert kept == b"<x>\x01AGVCN\x01I%s\x01J#%d\x01K</x>" % (other, cid)
            assert stored_xml.unpack_one(c, kept) == slot(other)
        # no zone: the certificate by reference, the subject as it is (0017's form)
        (bare,) = stored_xml.pack(c, [slot(own).replace(_FIXED[b"A"], b"<y>")])
        assert b"<ds:X509SubjectName>" + own + b"</" in bare and b"#%d<" % cid in bare
        for doc in (packed, bare, *stored_xml.pack(c, [slot(b"CN=x")])):
            assert stored_xml.unpack_one(c, doc) == bytes(
                c.scalar(text("SELECT hoc_ba_xml(:d)"), {"d": doc})
            )
    assert stored_xml.xml_text("CN=A&B <x>") == b"CN=A&amp;B &lt;x&gt;"
    with keyed.engine.begin() as c, pytest.raises(DBAPIError, match="HBL01|Chứng thư"):
        c.execute(text("UPDATE certificate SET subject = 'CN=other' WHERE id = :i"), {"i": cid})


def test_escaped_subjects_rebuild_alike_in_python_and_postgresql(keyed) -> None:  # type: ignore[no-untyped-def]
    """A subject holding ``&``, ``<``, ``>`` (escaped in the XML): the same bytes back from
    both rebuilds (a certificate registered for the test, never signed with)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Trường A&B <Đầm Hà>")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    der = cert.public_bytes(Encoding.DER)
    with keyed.engine.begin() as c:
        cid = c.scalar(
            text(
                "INSERT INTO certificate (owner_kind, school_id, sha256, serial_number, subject, "
                "issuer, not_before, not_after, der, kind, provider, status) "
                "SELECT 'school', id, :sha, '7', :s, :s, :nb, :na, :der, 'SOFTWARE', 'test', "
                "'pending' FROM school ORDER BY id LIMIT 1 RETURNING id"
            ),
            {
                "sha": hashlib.sha256(der).hexdigest(),
                "s": cert.subject.rfc4514_string(),
                "nb": now,
                "na": now + dt.timedelta(days=1),
                "der": der,
            },
        )
    element = etree.Element("n")  # the subject's text as lxml (the signer) writes it
    element.text = cert.subject.rfc4514_string()
    written = etree.tostring(element, encoding="utf-8")[len(b"<n>") : -len(b"</n>")]
    assert b"&amp;" in written and b"&lt;" in written and b"&gt;" in written
    signed = _zone(b"KY_PHAT_HANH", written, base64.b64encode(der))
    with keyed.engine.connect() as c:
        (packed,) = stored_xml.pack(c, [signed])
        assert packed == b"<x>\x01AKY_PHAT_HANH\x01I#%d\x01J#%d\x01K</x>" % (cid, cid)
        assert stored_xml.unpack_one(c, packed) == signed
        assert bytes(c.scalar(text("SELECT hoc_ba_xml(:d)"), {"d": packed})) == signed
