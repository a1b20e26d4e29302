"""Property-based fuzzing of record verification, XML and PDF (issue 8 item 4).

A real record, signed GVCN → CBQL → KY_PHAT_HANH with the session's test PKI (the fixtures
of ``tests/tasks/conftest.py``, loaded here), and a real signed PDF book made from it, are
damaged the way an attacker would: byte flips, truncations, inserted snippets, elements
removed / duplicated / edited, ``Id="data"`` put anywhere, signature wrapping (the signed
``DU_LIEU_HOC_BA`` moved into a ``ds:Object`` or a new parent, a forged twin before or after
it), signatures moved between slots, entity expansion, external entities (file and http),
DOCTYPE variants (also in UTF-16/UTF-32), XInclude, huge attributes, deep nesting and
oversized documents.

Properties:

* :func:`verify_document` / :func:`verify_pdf` never raise and answer within ``LIMIT``
  seconds of CPU (oversized and deeply nested input is refused well within it);
* a document with a DTD or an entity declaration is always refused at ``SAFE_PARSE`` and
  nothing else runs (and no file or URL it names is ever read: canaries below);
* VALID only for a document whose signed record reads exactly as the one that was signed:
  same canonical ``DU_LIEU_HOC_BA``, same content through :func:`read_record_document`, same
  lookup code, pupil, school, class and year in the report. The registry used answers
  "unknown record" (REGISTRY_MATCH passes, "not ours"), so that VALID stays reachable for
  documents that differ from the issued bytes and the signature checks alone are tested;
* a PDF whose signed byte ranges were changed (or cut) is never VALID.

Known bugs (reported, with an ``xfail(strict=True)`` test each at the end) are kept out of
the main generators through ``KNOWN_BUGS``; ``test_fuzz_xml_everything`` runs with nothing
held back and is expected to fail until they are fixed.
"""

from __future__ import annotations

import copy
import hashlib
import http.server
import importlib.util
import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, currently_in_test_context, event, given, settings
from hypothesis import strategies as st
from lxml import etree

from hocba.pdf.render import render_book
from hocba.pdf.sign import sign_pdf, verify_pdf
from hocba.xml import dsig
from hocba.xml.dsig import DS_NS
from hocba.xml.record import (
    RecordXmlError,
    build_record_xml,
    parse_record_xml_safely,
    read_record_document,
)
from hocba.xml.verify import (
    CheckCode,
    CheckStatus,
    IssuedRecordInfo,
    Verdict,
    VerificationReport,
    verify_document,
)

# The signing fixtures of tests/tasks/conftest.py (a conftest only reaches its own folder).
_spec = importlib.util.spec_from_file_location(
    "hocba_fuzz_signing_fixtures", Path(__file__).parent / "tasks" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
fixtures = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = fixtures
_spec.loader.exec_module(fixtures)
signing_staff = fixtures.signing_staff  # session PKI and identities
sign_all = fixtures.sign_all  # GVCN → CBQL → KY_PHAT_HANH

# Seconds of CPU per verification (CPU, not wall-clock time: CI shares its two cores with the
# other test worker; a hang spins the CPU too), and a wall-clock bound four times as long.
LIMIT = 2.0
PDF_LIMIT = 3.0
WALL = 4
DS = f"{{{DS_NS}}}"
CANARY_TOKEN = f"canary-{uuid.uuid4()}"

# Bugs found by this file (see the xfail tests at the end); the main generator leaves their
# triggers out while they are open.
# "comment-in-signed-text" is fixed (parse_record_xml_safely refuses comments inside the
# signed data); it stays listed so that the main generator keeps its shape, while
# test_fuzz_xml_everything and the two regression tests below cover it.
KNOWN_BUGS = frozenset({"comment-in-signed-text"})


# ======================================================================= fixtures
class OpenRegistry:
    """The school's people held their roles, its certificate is approved, and the record is
    not one of this system's (REGISTRY_MATCH passes): VALID depends on the signatures only."""

    def __init__(self, issued: dict[str, IssuedRecordInfo] | None = None) -> None:
        self.issued = issued or {}

    def signer_held_role(self, slot, cccd, school_code, school_year, class_name, at):
        return {"GVCN": fixtures.TEACHER_CCCD, "CBQL": fixtures.PRINCIPAL_CCCD}.get(slot) == cccd

    def school_certificate_approved(self, school_code, cert_sha256_hex, at):
        return True

    def issued_record(self, lookup_code: str) -> IssuedRecordInfo | None:
        return self.issued.get(lookup_code)


@dataclass(frozen=True)
class Signed:
    xml: bytes = field(repr=False)
    lookup_code: str
    reading: Any = field(repr=False)  # read_record_document(xml)
    c14n: bytes = field(repr=False)  # canonical DU_LIEU_HOC_BA
    facts: tuple[str | None, ...]  # what the report shows of the record

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis's reports
        printer.text(f"Signed(lookup_code={self.lookup_code!r}, {len(self.xml)} bytes)")


def _facts(report: VerificationReport) -> tuple[str | None, ...]:
    return (
        report.lookup_code,
        report.pupil_name,
        report.school_code,
        report.class_name,
        report.school_year,
    )


def _c14n_data(document: bytes) -> bytes | None:
    try:
        root = etree.fromstring(document, parser=_plain_parser())
    except etree.XMLSyntaxError:
        return None
    blocks = [c for c in root if c.tag == "DU_LIEU_HOC_BA"]
    if root.tag != "HOC_BA" or len(blocks) != 1:
        return None
    return etree.tostring(blocks[0], method="c14n", exclusive=True, with_comments=False)


def _plain_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


@pytest.fixture(scope="module")
def crl_source(signing_staff):
    crl = signing_staff.pki.crl
    return lambda certificate: crl


@pytest.fixture(scope="module")
def signed(sign_all, signing_staff, crl_source) -> Signed:
    record = fixtures._make_record()
    record.thong_tin_chung["MA_TRA_CUU_UUID"] = str(uuid.uuid4())
    xml = sign_all([build_record_xml(record)])[0]
    report = verify_document(
        xml, trusted_roots=signing_staff.roots, registry=OpenRegistry(), crl_source=crl_source
    )
    assert report.verdict is Verdict.VALID, report.render_text()  # the property is not vacuous
    c14n = _c14n_data(xml)
    assert c14n is not None
    return Signed(
        xml,
        str(record.thong_tin_chung["MA_TRA_CUU_UUID"]),
        read_record_document(xml),
        c14n,
        _facts(report),
    )


class _Canary(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        _Canary.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'<!ENTITY x "' + CANARY_TOKEN.encode() + b'">')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A local HTTP server and a file, both holding a token: no verification may read them."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Canary)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    path = tmp_path_factory.mktemp("canary") / "secret.txt"
    path.write_text(CANARY_TOKEN)
    _Canary.hits.clear()
    yield {"http": f"http://127.0.0.1:{server.server_address[1]}", "file": path.as_uri()}
    server.shutdown()
    server.server_close()
    assert _Canary.hits == [], f"the verifier fetched {_Canary.hits}"


def _with_canary(data: bytes, canary: dict[str, str]) -> bytes:
    return data.replace(b"__HTTP__", canary["http"].encode()).replace(
        b"__FILE__", canary["file"].encode()
    )


# ======================================================================= the XML property
def verify_timed(
    data: bytes,
    signing_staff,
    crl_source,
    registry: OpenRegistry | None = None,
) -> VerificationReport:
    started, cpu = time.perf_counter(), time.process_time()
    report = verify_document(
        data,
        trusted_roots=signing_staff.roots,
        registry=registry or OpenRegistry(),
        crl_source=crl_source,
    )
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert cpu < LIMIT and elapsed < WALL * LIMIT, f"{cpu:.2f} s CPU, {elapsed:.2f} s"
    return report


def has_dtd(data: bytes) -> bool:
    """A DOCTYPE or ENTITY declaration, in any of the encodings an XML parser detects."""
    if len(data) > 6_000_000:
        return False  # refused for its size in any case
    for encoding in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
        text = data.decode(encoding, errors="ignore")
        if "<!DOCTYPE" in text or "<!ENTITY" in text:
            return True
    return False


def _outcome(report: VerificationReport) -> str:
    failed = [c.code for c in report.checks if c.status is CheckStatus.FAIL]
    return f"{report.verdict}" + (f" at {failed[0]}" if failed else "")


def check_report(report: VerificationReport, data: bytes, signed: Signed) -> None:
    """The properties every verification report must have."""
    if currently_in_test_context():
        event(_outcome(report))
    assert isinstance(report.verdict, Verdict)
    text = json.dumps(report.to_json(), ensure_ascii=False) + report.render_text()
    assert CANARY_TOKEN not in text and "root:x:0:0" not in text
    for check in report.checks:
        assert check.message_vi and isinstance(check.status, CheckStatus)
        # verify_document's last-resort handlers: an exception inside a check is a bug
        assert "lỗi nội bộ" not in check.message_vi, report.render_text()
        assert "Không kiểm tra được lược đồ" not in check.message_vi, report.render_text()
    parse = report.check(CheckCode.SAFE_PARSE)
    assert parse is not None and report.checks[0] is parse
    if parse.status is CheckStatus.PASS:
        assert [c.code for c in report.checks] == [c.value for c in CheckCode]
    if has_dtd(data):
        assert [(c.code, c.status) for c in report.checks] == [
            (CheckCode.SAFE_PARSE, CheckStatus.FAIL)
        ], report.render_text()
    if report.verdict is Verdict.VALID:
        # what was verified reads exactly as what was signed
        assert _c14n_data(data) == signed.c14n, "VALID, but the signed data changed"
        try:
            reading = read_record_document(data)
        except RecordXmlError as exc:
            pytest.fail(f"VALID, but read_record_document refuses the document: {exc}")
        assert reading == signed.reading, "VALID, but it reads differently"
        assert _facts(report) == signed.facts, "VALID, but the report shows other facts"


# ----------------------------------------------------------------------- mutations
def pick(draw: st.DrawFn, *options: tuple[int, Any]) -> Any:
    """One of the ``(weight, value)`` options (hypothesis favours small integers: the first
    option comes a little more often than its weight says)."""
    n = draw(st.integers(0, sum(weight for weight, _ in options) - 1))
    for weight, value in options:
        if n < weight:
            return value
        n -= weight
    raise AssertionError


@dataclass
class Mutant:
    data: bytes = field(repr=False)
    how: str
    bugs: set[str] = field(default_factory=set)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis's reports
        printer.text(f"Mutant({self.how!r}, {len(self.data)} bytes, bugs={sorted(self.bugs)})")


def _region(xml: bytes, start: bytes, end: bytes) -> tuple[int, int]:
    a = xml.index(start)
    return a, xml.index(end, a) + len(end)


SNIPPETS = [
    b"<!-- x -->",
    b"<!---->",
    b"<?pi x?>",
    b"<![CDATA[x]]>",
    b"<![CDATA[",
    b"]]>",
    b"&amp;",
    b"&#0;",
    b"&#x110000;",
    b"&x;",
    b"\x00",
    b"\xff\xfe",
    b"\xc3",
    b"<X/>",
    b'<X Id="data"/>',
    b' Id="data"',
    b' xmlns="urn:x"',
    b' xmlns:ds="urn:x"',
    b" ",
    b"\n",
    b"</HOC_BA>",
    b"<HOC_BA>",
    b"<!DOCTYPE HOC_BA>",
    b'<!ENTITY x "y">',
    b'<!DOCTYPE HOC_BA [<!ENTITY x SYSTEM "__FILE__">]>',
]

FORGED_VALUES = {
    "KET_QUA_XEP_LOAI": "HTXS",
    "HO_VA_TEN": "Lê Minh Anh Tuấn",
    "DIEM_KIEM_TRA_DINH_KY": "10",
    "MA_TRA_CUU_UUID": str(uuid.UUID(int=1, version=4)),
    "TEN_LOP": "4B",
}


def _forged(data: etree._Element, draw: st.DrawFn) -> etree._Element:
    twin = copy.deepcopy(data)
    tag = draw(st.sampled_from(sorted(FORGED_VALUES)))
    element = twin.find(f".//{tag}")
    if element is not None:
        element.text = FORGED_VALUES[tag]
    return twin


def _tree_mutation(draw: st.DrawFn, xml: bytes) -> tuple[bytes, str]:
    root = etree.fromstring(xml, parser=_plain_parser())
    data = root.find("DU_LIEU_HOC_BA")
    zone = root.find("DANH_SACH_THONG_TIN_KY")
    signatures = root.findall(f"DANH_SACH_THONG_TIN_KY/*/{DS}Signature")
    elements = [e for e in root.iter() if isinstance(e.tag, str) and e is not root]
    how = draw(
        st.sampled_from(
            [
                "remove",
                "duplicate",
                "text",
                "attribute",
                "id-elsewhere",
                "wrap-in-object",
                "twin-before",
                "twin-after",
                "wrap-in-parent",
                "move-data",
                "move-signature",
                "swap-signatures",
                "forge",
                "rename-root",
                "comment-between",
            ]
        )
    )
    pick = draw(st.integers(0, len(elements) - 1))
    element = elements[pick]
    if how == "remove" and element.getparent() is not None:
        element.getparent().remove(element)
    elif how == "duplicate" and element.getparent() is not None:
        element.addnext(copy.deepcopy(element))
    elif how == "text":
        value = draw(st.text(max_size=30))
        element.text = re.sub("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]", "", value)
    elif how == "attribute":
        name = draw(
            st.sampled_from(
                ["Id", "ID", "id", "URI", "Algorithm", "{http://www.w3.org/XML/1998/namespace}id"]
            )
        )
        value = draw(
            st.one_of(
                st.sampled_from(["data", "#data", "st-GVCN", "st-CBQL", "", "x" * 1_000_000]),
                st.text(alphabet="abcdef#-_0123456789", max_size=12),
            )
        )
        element.set(name, value)
    elif how == "id-elsewhere":
        element.set("Id", "data")
    elif how == "wrap-in-object":  # the classic wrapping: forged data in place, original hidden
        root.replace(data, _forged(data, draw))
        holder = draw(st.sampled_from(signatures))
        etree.SubElement(holder, f"{DS}Object").append(data)
    elif how in ("twin-before", "twin-after"):
        twin = _forged(data, draw) if draw(st.booleans()) else copy.deepcopy(data)
        if draw(st.booleans()):
            twin.attrib.pop("Id", None)
        (data.addprevious if how == "twin-before" else data.addnext)(twin)
    elif how == "wrap-in-parent":
        parent = etree.Element(draw(st.sampled_from(["WRAP", f"{DS}Object", "DU_LIEU_HOC_BA"])))
        data.addprevious(parent)
        parent.append(data)
        if draw(st.booleans()):
            parent.addprevious(_forged(data, draw))
    elif how == "move-data":
        draw(st.sampled_from([zone, root, *signatures])).append(data)
    elif how == "move-signature":
        signature = draw(st.sampled_from(signatures))
        draw(st.sampled_from(list(zone))).append(signature)
    elif how == "swap-signatures":
        a, b = signatures[0], signatures[draw(st.integers(1, len(signatures) - 1))]
        pa, pb = a.getparent(), b.getparent()
        pa.insert(0, b)
        pb.insert(0, a)
    elif how == "forge":
        root.replace(data, _forged(data, draw))
    elif how == "rename-root":
        root.tag = draw(st.sampled_from(["hoc_ba", "HOC_BA_X", f"{DS}HOC_BA"]))
    elif how == "comment-between":  # between elements: not inside a value
        element.addprevious(etree.Comment(" x "))
    out = b'<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(root, encoding="UTF-8")
    return out, how


@st.composite
def mutants(draw: st.DrawFn, xml: bytes, safe: bool = True) -> Mutant:
    kinds = [(6, "tree"), (3, "flip"), (2, "insert"), (1, "truncate")]
    if not safe or "comment-in-signed-text" not in KNOWN_BUGS:
        kinds.append((2, "comment-in-value"))
    kind = pick(draw, *kinds)
    data_start, data_end = _region(xml, b"<DU_LIEU_HOC_BA", b"</DU_LIEU_HOC_BA>")
    zone_start, zone_end = _region(xml, b"<DANH_SACH_THONG_TIN_KY", b"</DANH_SACH_THONG_TIN_KY>")
    regions = {
        "anywhere": (0, len(xml)),
        "data": (data_start, data_end),
        "zone": (zone_start, zone_end),
    }
    if kind == "flip":
        lo, hi = regions[draw(st.sampled_from(sorted(regions)))]
        out = bytearray(xml)
        for _ in range(draw(st.integers(1, 4))):
            # mostly one bit: the document often stays well-formed and reaches the signatures
            out[draw(st.integers(lo, hi - 1))] ^= pick(
                draw,
                (8, draw(st.sampled_from([1, 2, 4, 8, 16, 32]))),
                (1, draw(st.integers(1, 255))),
            )
        return Mutant(bytes(out), "flip")
    if kind == "truncate":
        return Mutant(xml[: draw(st.integers(0, len(xml) - 1))], "truncate")
    if kind == "insert":
        lo, hi = regions[draw(st.sampled_from(sorted(regions)))]
        at = draw(st.integers(lo, hi))
        snippet = draw(st.one_of(st.sampled_from(SNIPPETS), st.binary(min_size=1, max_size=8)))
        bugs = set()
        if snippet.startswith(b"<!--") and data_start < at < data_end:
            bugs.add("comment-in-signed-text")  # maybe inside a value
            if safe and "comment-in-signed-text" in KNOWN_BUGS:
                snippet, bugs = b"<?pi x?>", set()
        return Mutant(xml[:at] + snippet + xml[at:], f"insert {snippet[:20]!r}", bugs)
    if kind == "comment-in-value":  # c14n drops comments: the digests still match
        # a value of two characters or more (the comment goes strictly inside it); drawn as
        # a position, since the first element of the same tag may hold one character only
        values = [
            m.span(1) for m in re.finditer(rb"<[A-Z_]+>([^<]{2,})</", xml[data_start:data_end])
        ]
        start, end = draw(st.sampled_from(values))
        at = data_start + start + draw(st.integers(1, end - start - 1))
        return Mutant(
            xml[:at] + b"<!---->" + xml[at:], "comment-in-value", {"comment-in-signed-text"}
        )
    out, how = _tree_mutation(draw, xml)
    return Mutant(out, how)


XML_SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@XML_SETTINGS
@given(data=st.data())
def test_fuzz_xml_never_raises_never_hangs_never_valid_when_changed(
    data: st.DataObject,
    signed: Signed,
    signing_staff,
    crl_source,
    canary,
) -> None:
    mutant = data.draw(mutants(signed.xml), label="mutant")
    document = _with_canary(mutant.data, canary)
    report = verify_timed(document, signing_staff, crl_source)
    check_report(report, document, signed)


@settings(XML_SETTINGS, max_examples=80, phases=[Phase.explicit, Phase.generate])
@given(data=st.data())
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")  # large fixture reprs
def test_fuzz_xml_everything(
    data: st.DataObject,
    signed: Signed,
    signing_staff,
    crl_source,
    canary,
) -> None:
    """The generator with nothing held back: fails until every bug of KNOWN_BUGS is fixed."""
    mutant = data.draw(mutants(signed.xml, safe=False), label="mutant")
    document = _with_canary(mutant.data, canary)
    check_report(verify_timed(document, signing_staff, crl_source), document, signed)


@XML_SETTINGS
@given(data=st.data())
def test_fuzz_the_fast_signature_path_answers_as_the_full_check(
    data: st.DataObject, signed: Signed, signing_staff
) -> None:
    """hocba/xml/dsig.py answers a signature laid out as sign_slots writes it without the
    element-by-element check (issue 14): on any damaged document it either steps aside or
    gives exactly the full check's answer."""
    # safe=True: the comments inside values that safe=False adds are refused by the parser
    mutant = data.draw(mutants(signed.xml), label="mutant")
    try:
        parsed = dsig._Document(parse_record_xml_safely(mutant.data))
    except RecordXmlError:
        event("not parsed")
        return
    roots, crls = signing_staff.roots, [signing_staff.pki.crl]
    for slot in ("GVCN", "CBQL", "KY_PHAT_HANH"):
        full = dsig._verify_slot_full(parsed, slot, roots, crls)
        if parsed.structure_error is not None:
            continue
        fast = dsig._verify_slot_fast(parsed, slot, roots, crls)
        event(f"{slot}: {'full' if fast is None else 'fast'}, ok={full.ok}")
        assert fast is None or fast == full, (slot, mutant.how)


def test_the_canaries_see_a_parser_that_follows_external_entities(canary) -> None:
    """The canaries are not vacuous: a permissive parser does read the file (and the URL,
    when libxml2 was built with its HTTP client: 2.14 as shipped with lxml 6 has none)."""
    permissive = etree.XMLParser(resolve_entities=True, load_dtd=True, no_network=False)
    read = etree.fromstring(_with_canary(XXE_CANARY_FILE, canary), parser=permissive)
    assert read.text == CANARY_TOKEN
    try:
        etree.fromstring(_with_canary(XXE_HTTP, canary), parser=permissive)
    except etree.XMLSyntaxError:
        pass
    assert _Canary.hits == (["/hocba.dtd"] if "http" in etree.LIBXML_FEATURES else [])
    _Canary.hits.clear()


# ----------------------------------------------------------------------- hostile documents
BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE HOC_BA [\n <!ENTITY a "'
    + b"a" * 50
    + b'">\n'
    + b"".join(
        b' <!ENTITY %s "%s">\n' % (bytes([c]), (b"&%s;" % bytes([c - 1])) * 20)
        for c in range(ord("b"), ord("j"))
    )
    + b"]>\n<HOC_BA>&i;</HOC_BA>"
)
QUADRATIC = (
    b'<?xml version="1.0"?><!DOCTYPE HOC_BA [<!ENTITY a "'
    + b"x" * 100_000
    + b'">]><HOC_BA>'
    + b"&a;" * 10_000
    + b"</HOC_BA>"
)
XXE_FILE = (
    b'<?xml version="1.0"?><!DOCTYPE HOC_BA [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b"<HOC_BA>&x;</HOC_BA>"
)
XXE_CANARY_FILE = (
    b'<?xml version="1.0"?><!DOCTYPE HOC_BA [<!ENTITY x SYSTEM "__FILE__">]><HOC_BA>&x;</HOC_BA>'
)
XXE_HTTP = b'<?xml version="1.0"?><!DOCTYPE HOC_BA SYSTEM "__HTTP__/hocba.dtd"><HOC_BA/>'
XXE_PARAMETER = (
    b'<?xml version="1.0"?><!DOCTYPE HOC_BA [<!ENTITY % p SYSTEM "__HTTP__/p.dtd"> %p;]>'
    b"<HOC_BA>&x;</HOC_BA>"
)
XXE_PUBLIC = (
    b'<?xml version="1.0"?><!DOCTYPE HOC_BA PUBLIC "-//X//Y" "__HTTP__/public.dtd"><HOC_BA/>'
)
XINCLUDE = (
    b'<?xml version="1.0"?><HOC_BA xmlns:xi="http://www.w3.org/2001/XInclude">'
    b'<xi:include href="__FILE__" parse="text"/><xi:include href="__HTTP__/xi.xml"/></HOC_BA>'
)


def _doctype_in_front(signed_xml: bytes, doctype: bytes) -> bytes:
    body = signed_xml.split(b"?>", 1)[1]
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + doctype + body


def _in_utf(xml: bytes, encoding: str, declared: str, doctype: bytes | None = None) -> bytes:
    text = (_doctype_in_front(xml, doctype) if doctype else xml).decode("utf-8")
    return text.replace('encoding="UTF-8"', f'encoding="{declared}"').encode(encoding)


def _with_entity(xml: bytes) -> bytes:
    doctype = b'<!DOCTYPE HOC_BA [<!ENTITY ten "L\xc3\xaa Minh Anh">]>\n'
    return _doctype_in_front(xml, doctype).replace("Lê Minh Anh".encode(), b"&ten;", 1)


# name → (how the verifier must answer: "parse" refused at SAFE_PARSE alone, "invalid",
# "any" (only quickly and without raising), the document made from the signed record).
# ``__HTTP__`` / ``__FILE__`` become the canaries.
HOSTILE: dict[str, tuple[str, Callable[[bytes], bytes | bytearray]]] = {
    "billion-laughs": ("parse", lambda xml: BILLION_LAUGHS),
    "quadratic-blowup": ("parse", lambda xml: QUADRATIC[:4_900_000]),
    "xxe-file-passwd": ("parse", lambda xml: XXE_FILE),
    "xxe-file-canary": ("parse", lambda xml: XXE_CANARY_FILE),
    "xxe-http-external-dtd": ("parse", lambda xml: XXE_HTTP),
    "xxe-parameter-entity": ("parse", lambda xml: XXE_PARAMETER),
    "xxe-public-id": ("parse", lambda xml: XXE_PUBLIC),
    "entity-in-a-signed-record": ("parse", _with_entity),
    "empty-doctype-on-a-signed-record": (
        "parse",
        lambda xml: _doctype_in_front(xml, b"<!DOCTYPE HOC_BA []>\n"),
    ),
    "doctype-with-system-id": (
        "parse",
        lambda xml: _doctype_in_front(xml, b'<!DOCTYPE HOC_BA SYSTEM "__HTTP__/hocba.dtd">\n'),
    ),
    "doctype-utf16-bom": (
        "parse",
        lambda xml: _in_utf(xml, "utf-16", "UTF-16", b"<!DOCTYPE HOC_BA>"),
    ),
    "doctype-utf16-le-no-bom": (
        "parse",
        lambda xml: _in_utf(xml, "utf-16-le", "UTF-16", b"<!DOCTYPE HOC_BA>"),
    ),
    "doctype-utf16-be-no-bom": (
        "parse",
        lambda xml: _in_utf(xml, "utf-16-be", "UTF-16", b"<!DOCTYPE HOC_BA>"),
    ),
    "doctype-utf32": ("parse", lambda xml: _in_utf(xml, "utf-32", "UTF-32", b"<!DOCTYPE HOC_BA>")),
    "signed-record-in-utf16": ("parse", lambda xml: _in_utf(xml, "utf-16", "UTF-16")),
    "bom-then-doctype": (
        "parse",
        lambda xml: b"\xef\xbb\xbf" + _doctype_in_front(xml, b"<!DOCTYPE HOC_BA>\n"),
    ),
    "xinclude": ("invalid", lambda xml: XINCLUDE),
    "deep-nesting-100k": (
        "parse",
        lambda xml: b"<HOC_BA>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</HOC_BA>",
    ),
    "huge-attribute": (
        "invalid",
        lambda xml: xml.replace(
            b"<DU_LIEU_HOC_BA ", b'<DU_LIEU_HOC_BA x="' + b"A" * 4_900_000 + b'" ', 1
        ),
    ),
    "many-id-attributes": (
        "invalid",
        lambda xml: xml.replace(
            b"</DANH_SACH_THONG_TIN_KY>", b'<X Id="data"/>' * 300_000 + b"</DANH_SACH_THONG_TIN_KY>"
        ),
    ),
    "many-signatures-in-a-slot": (
        "invalid",
        lambda xml: xml.replace(
            b"<GVCN>", b"<GVCN>" + b'<ds:Signature xmlns:ds="' + DS_NS.encode() + b'"/>' * 60_000
        ),
    ),
    "many-elements": (
        "invalid",
        lambda xml: xml.replace(b"</HOC_BA>", b"<x/>" * 1_200_000 + b"</HOC_BA>"),
    ),
    "huge-certificate": (
        "invalid",
        lambda xml: re.sub(rb"(<ds:X509Certificate>)", rb"\1" + b"QUFB" * 1_100_000, xml, count=1),
    ),
    "many-certificates": (  # KeyInfo is not signed: VALID may stay VALID, but quickly
        "any",
        lambda xml: re.sub(
            rb"(<ds:X509Certificate>[^<]*</ds:X509Certificate>)", rb"\1" * 1_500, xml, count=1
        ),
    ),
    "50-mb": ("parse", lambda xml: xml + b"<!--" + b"x" * 50_000_000 + b"-->"),
    "50-mb-bytearray": ("parse", lambda xml: bytearray(b" " * 50_000_000)),
    "just-over-the-limit": ("parse", lambda xml: xml + b" " * (5_000_001 - len(xml))),
    "empty": ("parse", lambda xml: b""),
    "nul-bytes": ("parse", lambda xml: b"\x00" * 1000),
    "not-xml": ("parse", lambda xml: b"%PDF-1.7\n" + b"\xff" * 100),
}
HOSTILE_NAMES = list(HOSTILE)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_documents_are_refused_quickly(
    name: str,
    signed: Signed,
    signing_staff,
    crl_source,
    canary,
) -> None:
    expected, make = HOSTILE[name]
    document = make(signed.xml)
    if isinstance(document, bytes):
        document = _with_canary(document, canary)
    report = verify_timed(document, signing_staff, crl_source)
    check_report(report, bytes(document), signed)
    if expected != "any":
        assert report.verdict is Verdict.INVALID, report.render_text()
    if expected == "parse":
        assert [(c.code, c.status) for c in report.checks] == [
            (CheckCode.SAFE_PARSE, CheckStatus.FAIL)
        ], report.render_text()
        assert report.document_sha256 is None  # refused before hashing


@settings(XML_SETTINGS, max_examples=100)
@given(data=st.data())
def test_fuzz_hostile_documents_combined_with_mutations(
    data: st.DataObject,
    signed: Signed,
    signing_staff,
    crl_source,
    canary,
) -> None:
    """A DTD or entity declaration put anywhere into a (mutated) signed record: refused at
    SAFE_PARSE, whatever else is wrong with it."""
    base = data.draw(st.one_of(st.just(Mutant(signed.xml, "none")), mutants(signed.xml))).data
    declaration = data.draw(
        st.sampled_from(
            [
                b"<!DOCTYPE HOC_BA>",
                b"<!DOCTYPE HOC_BA []>",
                b'<!DOCTYPE HOC_BA [<!ENTITY x "y">]>',
                b'<!DOCTYPE HOC_BA [<!ENTITY x SYSTEM "__FILE__">]>',
                b'<!DOCTYPE HOC_BA SYSTEM "__HTTP__/d.dtd">',
                b'<!ENTITY x "y">',
                b'<!DOCTYPE HOC_BA [<!ENTITY % p SYSTEM "__HTTP__/p.dtd"> %p;]>',
            ]
        )
    )
    at = data.draw(st.integers(0, len(base)))
    document = _with_canary(base[:at] + declaration + base[at:], canary)
    if data.draw(st.booleans()):  # also in UTF-16, where a byte search for "<!DOCTYPE" fails
        text = document.decode("utf-8", errors="replace").replace('encoding="UTF-8"', "")
        document = text.encode(data.draw(st.sampled_from(["utf-16", "utf-16-le", "utf-16-be"])))
    report = verify_timed(document, signing_staff, crl_source)
    check_report(report, document, signed)
    assert [(c.code, c.status) for c in report.checks] == [
        (CheckCode.SAFE_PARSE, CheckStatus.FAIL)
    ], report.render_text()


# ======================================================================= PDF
@dataclass(frozen=True)
class SignedPdf:
    pdf: bytes = field(repr=False)
    unsigned_gap: tuple[int, int]  # the seal's /Contents: the only bytes no signature covers
    padding_from: int  # where the zero padding after the seal's CMS starts (inside the gap)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis's reports
        printer.text(f"SignedPdf({len(self.pdf)} bytes, unsigned_gap={self.unsigned_gap})")


@pytest.fixture(scope="module")
def signed_pdf(signed: Signed, signing_staff, crl_source) -> SignedPdf:
    pdf = sign_pdf(
        render_book([signed.xml], verify_url="https://tracuu.hocba.example.vn/xac-thuc"),
        principal=signing_staff.signer(signing_staff.principal),
        seal=signing_staff.signer(signing_staff.school),
        record_xml=signed.xml,
    )
    report = verify_pdf(
        pdf, trusted_roots=signing_staff.roots, registry=OpenRegistry(), crl_source=crl_source
    )
    assert report.verdict is Verdict.VALID, report.render_text()
    ranges = [
        tuple(map(int, m.groups()))
        for m in re.finditer(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]", pdf)
    ]
    assert len(ranges) == 2
    a, b, c, d = ranges[-1]  # the seal's, the last signature: it covers all but its Contents
    assert a == 0 and c + d == len(pdf)
    der = bytes.fromhex(pdf[b + 1 : c - 1].decode())
    length = der[1] if der[1] < 0x80 else int.from_bytes(der[2 : 2 + (der[1] & 0x7F)], "big")
    header = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    return SignedPdf(pdf, (b, c), b + 1 + 2 * (header + length))


def verify_pdf_timed(data: bytes, signing_staff, crl_source) -> VerificationReport:
    started, cpu = time.perf_counter(), time.process_time()
    report = verify_pdf(
        data, trusted_roots=signing_staff.roots, registry=OpenRegistry(), crl_source=crl_source
    )
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert cpu < PDF_LIMIT and elapsed < WALL * PDF_LIMIT, f"{cpu:.2f} s CPU, {elapsed:.2f} s"
    assert isinstance(report.verdict, Verdict)
    json.dumps(report.to_json(), ensure_ascii=False)
    report.render_text()
    return report


@st.composite
def pdf_mutants(draw: st.DrawFn, signed_pdf: SignedPdf) -> Mutant:
    """A damaged PDF; ``bugs`` holds "signed" when a signed byte was changed or cut, or when
    bytes were appended after the seal (which must cover the whole file)."""
    pdf = signed_pdf.pdf
    gap_start, gap_end = signed_pdf.unsigned_gap
    how = pick(draw, (5, "flip"), (2, "truncate"), (1, "append"))
    if how == "truncate":
        return Mutant(pdf[: draw(st.integers(0, len(pdf) - 1))], "truncate", {"signed"})
    if how == "append":
        tail = draw(
            st.sampled_from(
                [
                    b"\n",
                    b"%%EOF\n",
                    b"\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n",
                    b"\nxref\n0 1\n0000000000 65535 f \ntrailer\n<< /Size 1 >>\n%%EOF\n",
                ]
            )
            | st.binary(min_size=1, max_size=64)
        )
        return Mutant(pdf + tail, f"append {tail[:20]!r}", {"signed"})
    out = bytearray(pdf)
    where = draw(st.sampled_from(["anywhere", "head", "tail", "seal-contents", "attachment"]))
    lo, hi = {
        "anywhere": (0, len(pdf)),
        "head": (0, 2000),
        "tail": (len(pdf) - 3000, len(pdf)),
        "seal-contents": (gap_start, gap_end),
        "attachment": _attachment_region(pdf),
    }[where]
    positions = draw(st.lists(st.integers(lo, hi - 1), min_size=1, max_size=3, unique=True))
    for position in positions:
        out[position] ^= draw(st.integers(1, 255))
    signed_change = any(
        not (gap_start <= p < gap_end) or p < signed_pdf.padding_from for p in positions
    )
    return Mutant(bytes(out), f"flip {where} {positions}", {"signed"} if signed_change else set())


def _attachment_region(pdf: bytes) -> tuple[int, int]:
    at = pdf.find(b"/EmbeddedFile")
    at = at if at >= 0 else len(pdf) // 2
    return at, min(len(pdf), at + 4000)


@settings(XML_SETTINGS, max_examples=60)
@given(data=st.data())
def test_fuzz_pdf_never_raises_and_a_changed_signed_range_is_never_valid(
    data: st.DataObject,
    signed_pdf: SignedPdf,
    signing_staff,
    crl_source,
) -> None:
    damaged = data.draw(pdf_mutants(signed_pdf), label="pdf")
    report = verify_pdf_timed(damaged.data, signing_staff, crl_source)
    event(f"{_outcome(report)}{' (signed bytes changed)' if 'signed' in damaged.bugs else ''}")
    if "signed" in damaged.bugs:
        assert report.verdict is not Verdict.VALID, report.render_text()


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"%PDF-1.7\n",
        b"%PDF-1.7\n" + b"1 0 obj << /Length 99999999999 >> stream\n" + b"\x00" * 1000,
        b"%PDF-1.7\n" + b"[" * 100_000,
        b"%PDF-1.7\n" + b"<<" * 100_000,
        b"%PDF-1.7\ntrailer << /Root 1 0 R /Size 999999999 >>\nstartxref\n0\n%%EOF",
    ],
    ids=["empty", "header-only", "huge-length", "deep-arrays", "deep-dicts", "huge-xref"],
)
def test_hostile_pdfs_are_refused_quickly(damage: bytes, signing_staff, crl_source) -> None:
    report = verify_pdf_timed(damage, signing_staff, crl_source)
    assert report.verdict is Verdict.INVALID, report.render_text()


def test_an_oversized_pdf_is_refused_before_parsing(signing_staff, crl_source) -> None:
    report = verify_pdf_timed(b"%PDF-1.7\n" + b"0" * 60_000_000, signing_staff, crl_source)
    assert [c.code for c in report.checks] == ["PDF_PARSE"]


# ======================================================================= known bugs
def _comment_in(xml: bytes, tag: bytes, at: int) -> bytes:
    start = xml.index(b"<" + tag + b">") + len(tag) + 2
    return xml[: start + at] + b"<!---->" + xml[start + at :]


@pytest.mark.parametrize("tag", [b"HO_VA_TEN", b"MA_TRA_CUU_UUID", b"TEN_LOP"])
def test_a_comment_inside_a_signed_value_is_not_valid(
    tag: bytes,
    signed: Signed,
    signing_staff,
    crl_source,
) -> None:
    tampered = _comment_in(signed.xml, tag, 4 if tag != b"TEN_LOP" else 1)
    report = verify_timed(tampered, signing_staff, crl_source)
    assert report.verdict is not Verdict.VALID, report.render_text()


def test_a_revoked_record_cannot_hide_its_lookup_code_behind_a_comment(
    signed: Signed,
    signing_staff,
    crl_source,
) -> None:
    registry = OpenRegistry(
        {
            signed.lookup_code: IssuedRecordInfo(
                hashlib.sha256(signed.xml).hexdigest(), "revoked", None
            )
        }
    )
    assert verify_timed(signed.xml, signing_staff, crl_source, registry).verdict is Verdict.INVALID
    tampered = _comment_in(signed.xml, b"MA_TRA_CUU_UUID", 8)
    report = verify_timed(tampered, signing_staff, crl_source, registry)
    assert report.verdict is Verdict.INVALID, report.render_text()
