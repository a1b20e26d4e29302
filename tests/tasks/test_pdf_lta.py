"""PAdES B-LTA of the paper copy (issue 12): DSS + document timestamp from the project's
real TSA / OCSP service over HTTP, checked by poppler's pdfsig and by verify_pdf."""

from __future__ import annotations

import re

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from test_pdf import VERIFY_URL, _issue_years, _pdfsig, _verify

from hocba.dev.trust_services import serve_trust_services
from hocba.pdf.render import render_book
from hocba.pdf.sign import PRINCIPAL_FIELD, SEAL_FIELD, sign_pdf
from hocba.pki.ocsp import OcspClient
from hocba.tasks.pdf_lta import DOCUMENT_TIMESTAMP_FIELD, make_lta
from hocba.xml.timestamps import TimestampUnavailable, TsaClient


@pytest.fixture(scope="module")
def services(signing_staff):  # type: ignore[no-untyped-def]
    with serve_trust_services(signing_staff.pki.directory) as url:
        yield url


@pytest.fixture(scope="module")
def lta_book(sign_all, signed_record, signing_staff, services):  # type: ignore[no-untyped-def]
    years = _issue_years(sign_all, signed_record, [4])
    pdf = sign_pdf(
        render_book(years, verify_url=VERIFY_URL),
        principal=signing_staff.signer(signing_staff.principal),
        seal=signing_staff.signer(signing_staff.school),
        record_xml=years[-1],
    )
    return pdf, make_lta(
        pdf,
        TsaClient(services + "/tsa"),
        roots=signing_staff.roots,
        ocsp_source=OcspClient(services + "/ocsp").status,
        crls=[signing_staff.pki.crl],
    )


def test_the_copy_gets_a_dss_and_a_document_timestamp(lta_book) -> None:  # type: ignore[no-untyped-def]
    import io

    _, lta = lta_book
    reader = PdfFileReader(io.BytesIO(lta), strict=False)
    dss = reader.root["/DSS"]
    assert len(dss["/Certs"]) >= 3 and len(dss["/OCSPs"]) == 2 and len(dss["/CRLs"]) == 1
    assert [s.field_name for s in reader.embedded_timestamp_signatures] == [
        DOCUMENT_TIMESTAMP_FIELD
    ]


def test_pdfsig_still_accepts_every_signature(lta_book, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, lta = lta_book
    output = _pdfsig(lta, tmp_path)
    blocks = re.split(r"^Signature #\d+:", output, flags=re.M)[1:]
    assert len(blocks) == 3, output
    assert f"Signature Field Name: {PRINCIPAL_FIELD}" in blocks[0]
    assert f"Signature Field Name: {SEAL_FIELD}" in blocks[1]
    assert f"Signature Field Name: {DOCUMENT_TIMESTAMP_FIELD}" in blocks[2]
    for block in blocks[:2]:
        assert "Signature Validation: Signature is Valid." in block, output
    # poppler lists the document timestamp with the TSA as signer; it does not validate
    # RFC 3161 document timestamps ("Unimplemented Feature"), verify_pdf does (below)
    assert "TEST TSA" in blocks[2]


def test_verify_pdf_accepts_the_lta_updates_after_the_lock(lta_book, signing_staff) -> None:  # type: ignore[no-untyped-def]
    _, lta = lta_book
    report = _verify(lta, signing_staff)
    for code in ("PDF_SIGNATURE_PRINCIPAL", "PDF_SIGNATURE_SEAL", "PDF_LOCK", "PDF_TIMESTAMP"):
        assert report.check(code).status == "pass", report.render_text()


def test_a_tsa_outage_leaves_the_copy_at_b_level(lta_book, signing_staff) -> None:  # type: ignore[no-untyped-def]
    import socket

    pdf, _ = lta_book
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TimestampUnavailable):
        make_lta(pdf, TsaClient(f"http://127.0.0.1:{port}/tsa"), roots=signing_staff.roots)


@pytest.mark.parametrize("tail", [b"\n", b"%%EOF\n", b"1 0 obj\n<<>>\nendobj\n"])
def test_bytes_appended_after_the_timestamp_break_the_lock(lta_book, signing_staff, tail) -> None:  # type: ignore[no-untyped-def]
    pdf, lta = lta_book
    for damaged in (lta + tail, pdf + tail):
        report = _verify(damaged, signing_staff)
        assert report.verdict.value == "INVALID", report.render_text()
        lock = report.check("PDF_LOCK")  # absent when the file no longer parses
        assert lock is None or lock.status == "fail", report.render_text()
