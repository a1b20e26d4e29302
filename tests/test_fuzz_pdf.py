"""Property-based fuzzing of PDF verification with *structured* changes (issue 8 item 4).

``tests/test_fuzz_verify.py`` flips, cuts and appends raw bytes of a signed book. Here the
changes are the ones a forger would make with a PDF library: real incremental updates
written by pyHanko after the seal (the attached record replaced by a changed or another
record or by garbage, a page added, a page's content or annotations changed, an
``/OpenAction`` added, the seal's signature value removed), the file cut back to an earlier
revision (the principal's signature alone), bytes put before the header, and such updates
then damaged byte by byte. Every change touches what the signatures cover or comes after
the seal, which must cover the whole file.

The property: :func:`verify_pdf` never raises, answers within the CPU limit, never says
VALID, and says why — an INVALID report has a failed check and every check that did not
pass has a Vietnamese message. ``hocba verify`` on such files exits 1 or 2 with the reason
and no traceback. The signed book and the fixtures come from ``tests/test_fuzz_verify.py``.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import test_cli
import test_fuzz_verify as V
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from typer.testing import CliRunner

from hocba.cli import app
from hocba.pdf.sign import PdfCheckCode, embedded_record_xml
from hocba.xml.record import build_record_xml
from hocba.xml.verify import CheckStatus, Verdict, VerificationReport

# fixtures of tests/test_fuzz_verify.py (and, through it, of tests/tasks/conftest.py)
signing_staff = V.signing_staff
sign_all = V.sign_all
crl_source = V.crl_source
signed = V.signed
signed_pdf = V.signed_pdf
cli = test_cli.cli  # hocba on the test's own schema

VIETNAMESE = re.compile("[àáạảãâầấậẩẫăằắặẳẵèéẹẻẽêềếệểễìíịỉĩòóọỏõôồốộổỗơờớợởỡùúụủũưừứựửữỳýỵỷỹđ]")
PDF_SETTINGS = settings(V.XML_SETTINGS, max_examples=40)


# ======================================================================= changes
def _update(pdf: bytes, edit: Callable[[IncrementalPdfFileWriter], None]) -> bytes:
    """``pdf`` with one incremental update written by pyHanko."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    edit(writer)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _replace_attachment(data: bytes) -> Callable[[IncrementalPdfFileWriter], None]:
    def edit(writer: IncrementalPdfFileWriter) -> None:
        names = writer.root["/Names"]["/EmbeddedFiles"]["/Names"]
        stream_ref = names[1]["/EF"].raw_get("/F")
        stream = stream_ref.get_object()
        replacement = generic.StreamObject(
            {k: v for k, v in stream.items() if k not in ("/Filter", "/DecodeParms")},
            stream_data=data,
        )
        writer.mark_update(stream_ref)
        writer.objects[(stream_ref.generation, stream_ref.idnum)] = replacement

    return edit


def _first_page(writer: IncrementalPdfFileWriter) -> generic.DictionaryObject:
    page_ref = writer.find_page_for_modification(0)[0]
    page = page_ref.get_object()
    writer.mark_update(page_ref)
    return page


def _add_page(writer: IncrementalPdfFileWriter) -> None:
    box = generic.ArrayObject([generic.NumberObject(v) for v in (0, 0, 595, 842)])
    writer.insert_page(
        generic.DictionaryObject(
            {
                generic.pdf_name("/Type"): generic.pdf_name("/Page"),
                generic.pdf_name("/MediaBox"): box,
                generic.pdf_name("/Resources"): generic.DictionaryObject(),
            }
        )
    )


def _new_content(writer: IncrementalPdfFileWriter) -> None:
    page = _first_page(writer)
    stream = generic.StreamObject(stream_data=b"BT /F1 24 Tf 72 400 Td (Diem 10) Tj ET")
    page[generic.pdf_name("/Contents")] = writer.add_object(stream)


def _add_annotation(writer: IncrementalPdfFileWriter) -> None:
    page = _first_page(writer)
    note = generic.DictionaryObject(
        {
            generic.pdf_name("/Type"): generic.pdf_name("/Annot"),
            generic.pdf_name("/Subtype"): generic.pdf_name("/FreeText"),
            generic.pdf_name("/Rect"): generic.ArrayObject(
                [generic.NumberObject(v) for v in (72, 72, 300, 120)]
            ),
            generic.pdf_name("/Contents"): generic.TextStringObject("Đã sửa điểm"),
            generic.pdf_name("/DA"): generic.TextStringObject("/Helv 12 Tf 0 g"),
        }
    )
    annots = page.get("/Annots")
    annots = generic.ArrayObject(list(annots) if annots is not None else [])
    annots.append(writer.add_object(note))
    page[generic.pdf_name("/Annots")] = annots


def _open_action(writer: IncrementalPdfFileWriter) -> None:
    writer.root[generic.pdf_name("/OpenAction")] = generic.DictionaryObject(
        {
            generic.pdf_name("/S"): generic.pdf_name("/JavaScript"),
            generic.pdf_name("/JS"): generic.TextStringObject("app.alert('x')"),
        }
    )
    writer.update_root()


def _drop_seal_value(writer: IncrementalPdfFileWriter) -> None:
    """The seal's field no longer points at its signature (an unsigned field again)."""
    for field_ref in writer.root["/AcroForm"]["/Fields"]:
        field = field_ref.get_object()
        if str(field.get("/T")) == "DauCuaTruong":
            writer.mark_update(field_ref)
            del field["/V"]


def _revision_ends(pdf: bytes) -> list[int]:
    return [m.end() for m in re.finditer(rb"%%EOF\r?\n?", pdf)]


@st.composite
def forgeries(draw: st.DrawFn, book: V.SignedPdf, other_record: bytes) -> tuple[str, bytes]:
    """A changed book: (what was done, the bytes)."""
    pdf = book.pdf
    attached = embedded_record_xml(pdf)
    assert attached is not None
    how = draw(
        st.sampled_from(
            [
                "attachment-byte",
                "attachment-other-record",
                "attachment-garbage",
                "attachment-empty",
                "page-added",
                "content-replaced",
                "annotation",
                "open-action",
                "seal-value-dropped",
                "earlier-revision",
                "prefix",
            ]
        )
    )
    if how == "attachment-byte":  # the same record, one byte of it changed (a score...)
        at = draw(st.integers(0, len(attached) - 1))
        changed = (
            attached[:at] + bytes([attached[at] ^ draw(st.integers(1, 255))]) + attached[at + 1 :]
        )
        data = _update(pdf, _replace_attachment(changed))
    elif how == "attachment-other-record":
        data = _update(pdf, _replace_attachment(other_record))
    elif how == "attachment-garbage":
        data = _update(pdf, _replace_attachment(draw(st.binary(min_size=1, max_size=300))))
    elif how == "attachment-empty":
        data = _update(pdf, _replace_attachment(b""))
    elif how == "page-added":
        data = _update(pdf, _add_page)
    elif how == "content-replaced":
        data = _update(pdf, _new_content)
    elif how == "annotation":
        data = _update(pdf, _add_annotation)
    elif how == "open-action":
        data = _update(pdf, _open_action)
    elif how == "seal-value-dropped":
        data = _update(pdf, _drop_seal_value)
    elif how == "earlier-revision":  # cut at an earlier %%EOF: the seal's revision is gone
        ends = _revision_ends(pdf)[:-1]
        data = pdf[: draw(st.sampled_from(ends))]
    else:
        data = draw(st.sampled_from([b"\n", b"%PDF-1.7\n", b"garbage " * 8])) + pdf
    if how != "earlier-revision" and len(data) > len(pdf) and draw(st.booleans()):
        out = bytearray(data)  # and the appended update damaged too
        for _ in range(draw(st.integers(1, 4))):
            out[draw(st.integers(len(pdf), len(out) - 1))] ^= draw(st.integers(1, 255))
        data, how = bytes(out), how + "+flips"
    return how, data


def check_clear(report: VerificationReport) -> None:
    """Not VALID, and said why (in Vietnamese)."""
    assert report.verdict is not Verdict.VALID, report.render_text()
    not_passed = [c for c in report.checks if c.status is not CheckStatus.PASS]
    assert not_passed, report.render_text()
    if report.verdict is Verdict.INVALID:
        assert any(c.status is CheckStatus.FAIL for c in report.checks)
    for check in not_passed:
        assert check.message_vi.strip() and VIETNAMESE.search(check.message_vi), check


@pytest.fixture(scope="module")
def other_record(sign_all: Any) -> bytes:
    """Another genuinely signed record of the same school (another pupil)."""
    record = V.fixtures._make_record(pupil_name="Học Sinh Khác", cccd="079215999999")
    record.thong_tin_chung["MA_TRA_CUU_UUID"] = str(uuid.uuid4())
    return sign_all([build_record_xml(record)])[0]


# ======================================================================= the properties
@PDF_SETTINGS
@given(data=st.data())
def test_fuzz_forged_books_are_never_valid_and_say_why(
    data: st.DataObject,
    signed_pdf: V.SignedPdf,
    other_record: bytes,
    signing_staff: Any,
    crl_source: Any,
) -> None:
    how, forged = data.draw(forgeries(signed_pdf, other_record), label="forgery")
    report = V.verify_pdf_timed(forged, signing_staff, crl_source)
    failed = [c.code for c in report.checks if c.status is CheckStatus.FAIL]
    event(f"{how.split('+')[0]}: {report.verdict} at {failed[:1]}")
    check_clear(report)


@pytest.mark.parametrize(
    ("how", "failing"),
    [
        ("attachment-other-record", PdfCheckCode.PDF_EMBEDDED_XML),
        ("page-added", PdfCheckCode.PDF_LOCK),
        ("earlier-revision", PdfCheckCode.PDF_LOCK),
        ("seal-value-dropped", PdfCheckCode.PDF_SIGNATURE_SEAL),
    ],
)
def test_each_forgery_fails_the_check_that_guards_it(
    how: str,
    failing: str,
    signed_pdf: V.SignedPdf,
    other_record: bytes,
    signing_staff: Any,
    crl_source: Any,
) -> None:
    """The fuzzed forgeries are refused for the right reason, not by accident."""
    pdf = signed_pdf.pdf
    forged = {
        "attachment-other-record": lambda: _update(pdf, _replace_attachment(other_record)),
        "page-added": lambda: _update(pdf, _add_page),
        "earlier-revision": lambda: pdf[: _revision_ends(pdf)[-2]],
        "seal-value-dropped": lambda: _update(pdf, _drop_seal_value),
    }[how]()
    report = V.verify_pdf_timed(forged, signing_staff, crl_source)
    assert report.verdict is Verdict.INVALID, report.render_text()
    assert report.check(failing).status is CheckStatus.FAIL, report.render_text()
    check_clear(report)


# ======================================================================= hocba verify
def test_hocba_verify_answers_forged_books_with_a_reason(
    cli: CliRunner, tmp_path: Path, signed_pdf: V.SignedPdf, other_record: bytes
) -> None:
    """The command on forged and damaged PDFs: exit 1 (invalid) or 2 (indeterminate), the
    reason in the text and the JSON report, never a traceback."""
    pdf = signed_pdf.pdf
    files = {
        "other-record": _update(pdf, _replace_attachment(other_record)),
        "page-added": _update(pdf, _add_page),
        "earlier-revision": pdf[: _revision_ends(pdf)[-2]],
        "truncated": pdf[: len(pdf) // 2],
        "header-only": b"%PDF-1.7\n",
    }
    for name, data in files.items():
        path = tmp_path / f"{name}.pdf"
        path.write_bytes(data)
        res = cli.invoke(app, ["verify", str(path)])
        assert res.exit_code in (1, 2), (name, res.exit_code, res.output)
        assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
        assert "Traceback" not in res.output and VIETNAMESE.search(res.output), res.output
        res = cli.invoke(app, ["verify", "--json", str(path)])
        report = json.loads(res.output)
        assert report["verdict"] != "VALID", (name, report)
        assert any(c["status"] != "PASS" and c["message_vi"] for c in report["checks"]), report
