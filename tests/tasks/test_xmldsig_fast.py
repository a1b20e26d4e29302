"""The verifier's fast path (issue 14) answers only what the full check would answer.

``_verify_slot_fast`` accepts a signature only when it is laid out exactly as ``sign_slots``
writes it and every check passes; anything else goes to ``_verify_slot_full``. These tests
compare the two on documents changed in the ways the fast path could overlook (comments,
whitespace, extra attributes or elements that canonicalisation hides or shows), and check
that its KeyInfo cache is per root list and per CRL object. The signature zone read from
the bytes (``_verify_zone_bytes``, the first step when the bytes are at hand) is compared
with both, on the same changes and on changes only the bytes show (quotes, character
references, CDATA, CR, comments around the zone)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from lxml import etree

from hocba.xml import dsig
from hocba.xml.dsig import (
    DS_NS,
    HB_NS,
    IssueCode,
    verify_record_signatures,
    verify_record_tree,
    verify_slot,
)
from hocba.xml.record import RecordXmlError, build_record_xml, parse_record_xml_safely

SLOTS = ("GVCN", "CBQL", "KY_PHAT_HANH")
DS = f"{{{DS_NS}}}"


def _signature(root: etree._Element, slot: str) -> etree._Element:
    element = root.find(f"DANH_SACH_THONG_TIN_KY/{slot}/{DS}Signature")
    assert element is not None
    return element


def _both(
    document: bytes, roots: list[x509.Certificate], crls: list[x509.CertificateRevocationList]
) -> dict[str, tuple[dsig.SlotVerification | None, dsig.SlotVerification]]:
    """Per slot: the tree fast path's answer and the full check's; also asserts that the
    zone read from the bytes answers, for the slots it answers, what the full check does."""
    parsed = dsig._Document(parse_record_xml_safely(document))
    from_bytes = dsig._verify_zone_bytes(parsed, document, SLOTS, roots, crls)
    results = {
        slot: (
            None
            if parsed.structure_error is not None
            else dsig._verify_slot_fast(parsed, slot, roots, crls),
            dsig._verify_slot_full(parsed, slot, roots, crls),
        )
        for slot in SLOTS
    }
    for slot, answer in from_bytes.items():
        assert answer == results[slot][1], slot
        assert answer.ok and not answer.warnings, slot
    return results


def _from_bytes(
    document: bytes, roots: list[x509.Certificate], crls: list[x509.CertificateRevocationList]
) -> dict[str, dsig.SlotVerification]:
    return dsig._verify_zone_bytes(
        dsig._Document(parse_record_xml_safely(document)), document, SLOTS, roots, crls
    )


def test_a_signed_record_takes_the_fast_path(signed_record: bytes, signing_staff) -> None:
    crls = [signing_staff.pki.crl]
    for slot, (fast, full) in _both(signed_record, signing_staff.roots, crls).items():
        assert full.ok and not full.warnings, slot
        assert fast == full, slot  # same certificate, signing time, no findings
    # ... and its signature zone is read from the bytes, all three slots
    assert sorted(_from_bytes(signed_record, signing_staff.roots, crls)) == sorted(SLOTS)
    # ... even without parsing the zone
    sealed = dsig._verify_sealed_bytes(signed_record, signing_staff.roots, SLOTS, crls)
    assert sealed is not None and sealed.ok
    assert sealed.slots == {
        slot: full for slot, (_, full) in _both(signed_record, signing_staff.roots, crls).items()
    }


def test_verification_reads_the_zone_from_the_bytes_when_it_has_them(
    signed_record: bytes, signing_staff, monkeypatch: pytest.MonkeyPatch
) -> None:
    crls = [signing_staff.pki.crl]
    reference = verify_record_signatures(signed_record, signing_staff.roots, crls=crls)
    calls: list[str] = []
    original = dsig._verify_slot
    monkeypatch.setattr(
        dsig,
        "_verify_slot",
        lambda document, slot, *a: calls.append(slot) or original(document, slot, *a),
    )
    report = verify_record_signatures(signed_record, signing_staff.roots, crls=crls)
    assert report == reference and report.ok
    assert calls == []  # no slot needed the tree
    parsed: list[bytes] = []
    parse = dsig.parse_record_xml_safely
    monkeypatch.setattr(
        dsig, "parse_record_xml_safely", lambda data: parsed.append(data) or parse(data)
    )
    assert verify_record_signatures(signed_record, signing_staff.roots, crls=crls) == reference
    (head,) = parsed  # only what comes before the signature zone
    assert head == signed_record[: signed_record.rindex(b"<DANH_SACH_THONG_TIN_KY>")] + b"</HOC_BA>"
    tree = verify_record_tree(
        parse_record_xml_safely(signed_record), signing_staff.roots, crls=crls
    )
    assert tree == reference and calls == list(SLOTS)  # without the bytes: the tree paths


def test_a_time_stamped_signature_takes_the_fast_path(signed_record: bytes, signing_staff) -> None:
    # add_signature_timestamps puts each RFC 3161 token in a ds:Object after the others
    root = parse_record_xml_safely(signed_record)
    for slot in SLOTS:
        token = etree.SubElement(_signature(root, slot), f"{DS}Object")
        etree.SubElement(token, "{http://uri.etsi.org/01903/v1.3.2#}EncapsulatedTimeStamp")
    document = etree.tostring(root, encoding="UTF-8", xml_declaration=True)
    for slot, (fast, full) in _both(document, signing_staff.roots, []).items():
        assert full.ok and not full.warnings, slot
        assert fast == full, slot


def _comment_in(path: str) -> Callable[[etree._Element, str], None]:
    def change(root: etree._Element, slot: str) -> None:
        target = _signature(root, slot).find(path.format(DS=DS, HB=f"{{{HB_NS}}}"))
        assert target is not None
        target.insert(0, etree.Comment("x"))

    return change


def _set(path: str, attribute: str | None, value: str) -> Callable[[etree._Element, str], None]:
    def change(root: etree._Element, slot: str) -> None:
        target = _signature(root, slot).find(path.format(DS=DS, HB=f"{{{HB_NS}}}"))
        assert target is not None
        if attribute is None:
            target.text = value
        else:
            target.set(attribute, value)

    return change


def _append(path: str, element: Callable[[], etree._Element]) -> Callable[..., None]:
    def change(root: etree._Element, slot: str) -> None:
        target = root.find(f"DANH_SACH_THONG_TIN_KY/{slot}") if path == "" else None
        if target is None:
            target = _signature(root, slot).find(path.format(DS=DS))
        assert target is not None
        target.append(element())

    return change


def _swap_signature_children(root: etree._Element, slot: str) -> None:
    signature = _signature(root, slot)
    key_info = signature.find(f"{DS}KeyInfo")
    assert key_info is not None
    signature.append(key_info)  # KeyInfo after Object


def _unqualified_signing_time(root: etree._Element, slot: str) -> None:
    element = _signature(root, slot).find(f".//{{{HB_NS}}}SigningTime")
    assert element is not None
    element.tag = "SigningTime"


def _drop_ngay_ky(root: etree._Element, slot: str) -> None:
    element = root.find(f"DANH_SACH_THONG_TIN_KY/{slot}/NGAY_KY")
    assert element is not None
    element.getparent().remove(element)  # type: ignore[union-attr]


CHANGES: dict[str, Callable[[etree._Element, str], None]] = {
    # hidden from the canonical form (comments) but seen by the full check
    "comment in Transforms": _comment_in("{DS}SignedInfo/{DS}Reference/{DS}Transforms"),
    "comment in SignedInfo": _comment_in("{DS}SignedInfo"),
    "comment in SigningTime": _comment_in(".//{HB}SigningTime"),
    "comment in SignatureProperties": _comment_in(".//{DS}SignatureProperties"),
    "comment in X509Data": _comment_in("{DS}KeyInfo/{DS}X509Data"),
    # shown in the canonical form
    "whitespace in DigestValue": _set(
        "{DS}SignedInfo/{DS}Reference/{DS}DigestValue", None, " AAAA "
    ),
    "Id on SignedInfo": _set("{DS}SignedInfo", "Id", "si"),
    "other c14n": _set(
        "{DS}SignedInfo/{DS}CanonicalizationMethod",
        "Algorithm",
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
    ),
    "other transform": _set(
        "{DS}SignedInfo/{DS}Reference/{DS}Transforms/{DS}Transform",
        "Algorithm",
        "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
    ),
    "sha512 digest": _set(
        "{DS}SignedInfo/{DS}Reference/{DS}DigestMethod",
        "Algorithm",
        "http://www.w3.org/2001/04/xmlenc#sha512",
    ),
    "signing time changed": _set(".//{HB}SigningTime", None, "2020-01-01T00:00:00+07:00"),
    "signing time with spaces": _set(".//{HB}SigningTime", None, " 2025-05-20T10:00:00+07:00 "),
    "signature value changed": _set("{DS}SignatureValue", None, "AAAA"),
    "signature value wrapped": _set("{DS}SignatureValue", None, "\n"),
    "subject name of nobody": _set("{DS}KeyInfo/{DS}X509Data/{DS}X509SubjectName", None, "CN=X"),
    "certificate damaged": _set("{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate", None, "AAAA"),
    "Target changed": _set(".//{DS}SignatureProperty", "Target", "#sig-x"),
    "second SigningTime": _append(
        "{DS}Object/{DS}SignatureProperties/{DS}SignatureProperty",
        lambda: etree.Element(f"{{{HB_NS}}}SigningTime"),
    ),
    "second Object": _append("", lambda: etree.Element(f"{DS}Object")),
    "InclusiveNamespaces": _append(
        "{DS}SignedInfo/{DS}CanonicalizationMethod",
        lambda: etree.Element(
            "{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces", PrefixList="ds"
        ),
    ),
    "KeyInfo moved": _swap_signature_children,
    "second SignedInfo at the end": lambda root, slot: _signature(root, slot).append(
        etree.Element(f"{DS}SignedInfo")
    ),
    "comment at the end of Signature": lambda root, slot: _signature(root, slot).append(
        etree.Comment("x")
    ),
    "unqualified SigningTime": _unqualified_signing_time,
    "no NGAY_KY": _drop_ngay_ky,
    "NGAY_KY changed": lambda root, slot: setattr(
        root.find(f"DANH_SACH_THONG_TIN_KY/{slot}/NGAY_KY"), "text", "2020-01-01T00:00:00+07:00"
    ),
    "SO_CCCD changed": lambda root, slot: setattr(
        root.find(f"DANH_SACH_THONG_TIN_KY/{slot}/SO_CCCD")
        if slot != "KY_PHAT_HANH"
        else root.find("DU_LIEU_HOC_BA/THONG_TIN_CHUNG/MA_TRUONG"),
        "text",
        "000000000000",
    ),
    "data changed": lambda root, slot: setattr(
        root.find("DU_LIEU_HOC_BA/THONG_TIN_CHUNG/MA_TRUONG"), "text", "00000000"
    ),
    "Id st-<slot> twice": _append("", lambda: etree.Element("X", Id="st-CBQL")),
    # the Id uniqueness is read from all attribute values first (_Document.single_id)
    "namespaced ID st-<slot> twice": lambda root, slot: root.find("DANH_SACH_THONG_TIN_KY").append(
        etree.Element("X", {"{urn:x}ID": f"st-{slot}"})
    ),
    "lower-case id st-<slot> in the data": lambda root, slot: root.find(
        "DU_LIEU_HOC_BA/THONG_TIN_CHUNG"
    ).set("id", f"st-{slot}"),
    "st-<slot> as another attribute's value": lambda root, slot: root.find(
        "DANH_SACH_THONG_TIN_KY"
    ).set("Note", f"st-{slot}"),
    "data as another attribute's value": lambda root, slot: root.find("DANH_SACH_THONG_TIN_KY").set(
        "Note", "data"
    ),
    "namespaced Id data in the zone": lambda root, slot: root.find("DANH_SACH_THONG_TIN_KY").set(
        "{urn:x}Id", "data"
    ),
}


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_the_fast_path_never_differs_from_the_full_check(
    name: str, signed_record: bytes, signing_staff
) -> None:
    crls = [signing_staff.pki.crl]
    for slot in SLOTS:
        root = parse_record_xml_safely(signed_record)
        CHANGES[name](root, slot)
        document = b'<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(
            root, encoding="UTF-8"
        )
        results = _both(document, signing_staff.roots, crls)
        for checked, (fast, full) in results.items():
            assert fast is None or fast == full, (name, slot, checked)
        fast, full = results[slot]
        # the changed slot: the full check finds something, or the fast path steps aside
        assert fast is None or (full.ok and not full.warnings), (name, slot)
        assert verify_slot(document, slot, signing_staff.roots, crls=crls) == full


def test_a_certificate_checked_under_one_root_is_untrusted_under_another(
    signed_record: bytes, signing_staff
) -> None:
    assert verify_record_signatures(signed_record, signing_staff.roots).ok  # cached now
    other = verify_record_signatures(signed_record, [signing_staff.other_root])
    assert not other.ok
    assert {s: r.error_codes for s, r in other.slots.items()} == {
        s: [IssueCode.CERTIFICATE_UNTRUSTED] for s in SLOTS
    }
    both = [signing_staff.other_root, signing_staff.pki.root_certificate]
    assert verify_record_signatures(signed_record, both).ok


def _crl(
    signing_staff, revoked: list[tuple[int, dt.datetime]], number: int
) -> x509.CertificateRevocationList:
    pki = signing_staff.pki
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(pki.root_certificate.subject)
        .last_update(pki.crl.last_update_utc)
        .next_update(pki.crl.next_update_utc)
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    for serial, when in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    return builder.sign(pki._root_key, hashes.SHA256())


def test_a_revocation_in_a_new_crl_is_seen_after_the_old_crl_was_cached(
    make_record, signing_staff, sign_all, times
) -> None:
    (document,) = sign_all([build_record_xml(make_record())])
    teacher = signing_staff.teacher.serial_number
    before = times.gvcn - dt.timedelta(days=1)
    clean = _crl(signing_staff, [], 900)
    assert verify_record_signatures(document, signing_staff.roots, crls=[clean]).ok  # cached
    assert verify_record_signatures(document, signing_staff.roots, crls=[clean]).ok
    updated = _crl(signing_staff, [(teacher, before)], 901)
    report = verify_record_signatures(document, signing_staff.roots, crls=[updated])
    assert not report.ok
    assert report.slots["GVCN"].error_codes == [IssueCode.CERTIFICATE_REVOKED]
    assert report.slots["CBQL"].ok and report.slots["KY_PHAT_HANH"].ok
    # revoked after the signing time: a warning, so the full check answers (ok, with it)
    later = _crl(signing_staff, [(teacher, times.seal + dt.timedelta(days=1))], 902)
    gvcn = verify_record_signatures(document, signing_staff.roots, crls=[later]).slots["GVCN"]
    assert gvcn.ok
    assert [w.code for w in gvcn.warnings] == [IssueCode.CERTIFICATE_REVOKED_LATER]
    # the clean CRL object again: still its own (cached) answer
    assert verify_record_signatures(document, signing_staff.roots, crls=[clean]).ok


@pytest.mark.parametrize(
    ("name", "codes"),
    [
        ("st-<slot> as another attribute's value", []),
        ("data as another attribute's value", []),
        ("namespaced ID st-<slot> twice", [IssueCode.REFERENCE_INVALID]),
        ("lower-case id st-<slot> in the data", [IssueCode.REFERENCE_INVALID]),
        ("namespaced Id data in the zone", [IssueCode.DATA_ID_AMBIGUOUS]),
    ],
)
def test_ids_are_counted_exactly_when_a_value_repeats(
    name: str, codes: list[IssueCode], signed_record: bytes, signing_staff
) -> None:
    # a value seen on several attributes sends the document to the full Id scan: a
    # harmless repetition (not an Id) still verifies, a second Id is still refused
    root = parse_record_xml_safely(signed_record)
    CHANGES[name](root, "CBQL")
    document = b'<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(root, encoding="UTF-8")
    result = verify_slot(document, "CBQL", signing_staff.roots)
    assert result.error_codes == codes
    parsed = dsig._Document(parse_record_xml_safely(document))
    assert parsed.ids == dsig.Counter(dsig._ID_ATTRIBUTES(parsed.root))


def _first_slot_text(tag: bytes) -> Callable[[bytes], bytes]:
    def change(document: bytes) -> bytes:
        start = document.index(b"<DANH_SACH_THONG_TIN_KY>")
        at = document.index(tag, start) + len(tag)
        return document[:at] + b"<![CDATA[" + document[at : at + 4] + b"]]>" + document[at + 4 :]

    return change


def _char_reference_in(tag: bytes) -> Callable[[bytes], bytes]:
    def change(document: bytes) -> bytes:
        start = document.index(b"<DANH_SACH_THONG_TIN_KY>")
        at = document.index(tag, start) + len(tag)
        return document[:at] + b"&#%d;" % document[at] + document[at + 1 :]

    return change


def _in_zone(old: bytes, new: bytes, count: int = 1) -> Callable[[bytes], bytes]:
    def change(document: bytes) -> bytes:
        start = document.index(b"<DANH_SACH_THONG_TIN_KY>")
        assert old in document[start:]
        return document[:start] + document[start:].replace(old, new, count)

    return change


def _fake_zone_in_data(document: bytes) -> bytes:
    # a CDATA section in the signed data holding a zone's start tag (data changed: the full
    # check fails GVCN, CBQL and the seal on the #data digest)
    at = document.index(b"</PHIEN_BAN>")
    return document[:at] + b"<![CDATA[<DANH_SACH_THONG_TIN_KY>]]>" + document[at:]


def _second_zone(document: bytes) -> bytes:
    start = document.index(b"<DANH_SACH_THONG_TIN_KY>")
    end = document.rindex(b"</HOC_BA>")
    zone = document[start:end]
    empty = b"<DANH_SACH_THONG_TIN_KY><GVCN/><CBQL/><KY_PHAT_HANH/></DANH_SACH_THONG_TIN_KY>"
    return document[:start] + empty + zone + document[end:]


RAW_CHANGES: dict[str, Callable[[bytes], bytes]] = {
    # the same tree, other bytes: the bytes step aside, the tree paths answer (ok)
    "single quotes": _in_zone(b'Id="sig-CBQL"', b"Id='sig-CBQL'"),
    "CDATA in the SignatureValue": _first_slot_text(b"<ds:SignatureValue>"),
    "CDATA in NGAY_KY": _first_slot_text(b"<NGAY_KY>"),
    "character reference in the SignatureValue": _char_reference_in(b"<ds:SignatureValue>"),
    "character reference in X509Certificate": _char_reference_in(b"<ds:X509Certificate>"),
    "character reference in the SigningTime": _char_reference_in(b'xmldsig:1">'),
    "CR LF between slots": _in_zone(b"\n    <CBQL>", b"\r\n    <CBQL>"),
    "space in an end tag": _in_zone(b"</ds:SignedInfo>", b"</ds:SignedInfo >"),
    "xmlns:ds on the zone": _in_zone(
        b"<DANH_SACH_THONG_TIN_KY>", b'<DANH_SACH_THONG_TIN_KY xmlns:ds="' + DS_NS.encode() + b'">'
    ),
    "comment after the zone": lambda d: d.replace(b"</HOC_BA>", b"<!-- x --></HOC_BA>"),
    "PI after the zone": lambda d: d.replace(b"</HOC_BA>", b"<?x y?></HOC_BA>"),
    "comment after the document": lambda d: d + b"<!-- </DANH_SACH_THONG_TIN_KY> -->",
    "empty element NGAY_KY": lambda d: re.sub(
        rb"<NGAY_KY>[^<]*</NGAY_KY>", b"<NGAY_KY/>", d, count=1
    ),
    # other trees: the full check's answer, or the bytes step aside
    "two zones": _second_zone,
    "fake zone in the data": _fake_zone_in_data,
    "greater-than in the SigningTime": _in_zone(b"</hb:SigningTime>", b"&gt;</hb:SigningTime>"),
    "SigningTime changed": _in_zone(b'xmldsig:1">2', b'xmldsig:1">1'),
    "signature value changed": _in_zone(b"<ds:SignatureValue>", b"<ds:SignatureValue>AAAA"),
    "data digest changed": _in_zone(b"<ds:DigestValue>", b"<ds:DigestValue>A"),
    "SO_CCCD changed": _in_zone(b"<SO_CCCD>0", b"<SO_CCCD>9"),
    "NGAY_KY changed": _in_zone(b"<NGAY_KY>2", b"<NGAY_KY>1"),
    "second certificate": _in_zone(
        b"</ds:X509Data>", b"<ds:X509Certificate>AAAA</ds:X509Certificate></ds:X509Data>"
    ),
    "other subject": _in_zone(b"<ds:X509SubjectName>", b"<ds:X509SubjectName>CN=X,"),
    "empty subject": lambda d: re.sub(
        rb"<ds:X509SubjectName>[^<]*</ds:X509SubjectName>",
        b"<ds:X509SubjectName></ds:X509SubjectName>",
        d,
        count=1,
    ),
    "seal with SO_CCCD": _in_zone(
        b"</NGAY_KY></KY_PHAT_HANH>", b"</NGAY_KY><SO_CCCD>001190012345</SO_CCCD></KY_PHAT_HANH>"
    ),
    "ecdsa method on an RSA signature": _in_zone(
        b"xmldsig-more#rsa-sha256", b"xmldsig-more#ecdsa-sha256"
    ),
    "text after the zone": lambda d: d.replace(b"</HOC_BA>", b"x</HOC_BA>"),
    # not well-formed, or not XML characters, in the zone only: the head parses, the
    # document does not
    "not UTF-8 in the subject": _in_zone(b"<ds:X509SubjectName>", b"<ds:X509SubjectName>\xff"),
    # (str.strip() takes \x1f as a space: the name still names the certificate)
    "control character in the subject": _in_zone(
        b"<ds:X509SubjectName>", b"<ds:X509SubjectName>\x1f"
    ),
    "U+FFFE in the subject": _in_zone(
        b"<ds:X509SubjectName>", b"<ds:X509SubjectName>" + "\ufffe".encode()
    ),
    "control character in the SignatureValue": _in_zone(
        b"<ds:SignatureValue>", b"<ds:SignatureValue>\x0b"
    ),
    "CDATA end in the SignatureValue": _in_zone(
        b"</ds:SignatureValue>", b"]]></ds:SignatureValue>"
    ),
    "zone in a CDATA section": lambda d: d.replace(
        b"<DANH_SACH_THONG_TIN_KY>", b"<X><![CDATA[<DANH_SACH_THONG_TIN_KY>"
    ).replace(b"</HOC_BA>", b"]]></X></HOC_BA>"),
    "zone in a comment": lambda d: d.replace(
        b"<DANH_SACH_THONG_TIN_KY>", b"<!--<DANH_SACH_THONG_TIN_KY>"
    ).replace(b"</HOC_BA>", b"--></HOC_BA>"),
    "data left open": lambda d: d.replace(b"</DU_LIEU_HOC_BA>", b""),
    "element left open before the zone": lambda d: d.replace(
        b"<DANH_SACH_THONG_TIN_KY>", b"<X><DANH_SACH_THONG_TIN_KY>"
    ),
    "second root after the zone": lambda d: d + b"<HOC_BA/>",
}


@pytest.mark.parametrize("name", sorted(RAW_CHANGES))
def test_the_zone_read_from_the_bytes_never_differs_from_the_full_check(
    name: str, signed_record: bytes, signing_staff
) -> None:
    crls = [signing_staff.pki.crl]
    document = RAW_CHANGES[name](signed_record)
    assert document != signed_record
    sealed = dsig._verify_sealed_bytes(document, signing_staff.roots, SLOTS, crls)
    report = verify_record_signatures(document, signing_staff.roots, crls=crls)
    try:
        parse_record_xml_safely(document)
    except RecordXmlError:  # not well-formed: the head alone must not pass either
        assert sealed is None
        assert not report.ok
        assert {r.error_codes[0] for r in report.slots.values()} == {IssueCode.XML_INVALID}
        return
    results = _both(document, signing_staff.roots, crls)  # asserts zone bytes == full
    full = dsig._record_result({slot: full for slot, (_, full) in results.items()})
    assert sealed is None or sealed == full
    assert report == full


@pytest.mark.parametrize(
    "name",
    [
        "single quotes",
        "CDATA in the SignatureValue",
        "character reference in X509Certificate",
        "CR LF between slots",
        "comment after the zone",
        "two zones",
    ],
)
def test_bytes_that_differ_from_what_sign_slots_writes_are_read_from_the_tree(
    name: str, signed_record: bytes, signing_staff
) -> None:
    document = RAW_CHANGES[name](signed_record)
    assert _from_bytes(document, signing_staff.roots, [signing_staff.pki.crl]) == {}


@pytest.mark.parametrize(
    ("name", "slot", "code"),
    [
        ("fake zone in the data", "GVCN", IssueCode.DIGEST_MISMATCH_DATA),
        ("SigningTime changed", "GVCN", IssueCode.DIGEST_MISMATCH_PROPERTIES),
        ("signature value changed", "GVCN", IssueCode.SIGNATURE_VALUE_INVALID),
        ("data digest changed", "GVCN", IssueCode.SIGNATURE_VALUE_INVALID),
        ("SO_CCCD changed", "GVCN", IssueCode.SLOT_CCCD_MISMATCH),
        ("NGAY_KY changed", "GVCN", IssueCode.NGAY_KY_MISMATCH),
    ],
)
def test_tampered_bytes_still_fail(
    name: str, slot: str, code: IssueCode, signed_record: bytes, signing_staff
) -> None:
    document = RAW_CHANGES[name](signed_record)
    report = verify_record_signatures(document, signing_staff.roots, crls=[signing_staff.pki.crl])
    assert not report.ok
    assert code in report.slots[slot].error_codes
