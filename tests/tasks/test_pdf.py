"""The paper copy of a học bạ (issue 4): rendered, signed (PAdES), read back and verified.

Every test reads the produced PDF the way somebody else would: text through poppler's
``pdftotext``, pixels through ``pdftoppm``, the QR code through zxing-cpp, the signatures
through poppler's ``pdfsig`` (an independent verifier) and through :func:`verify_pdf`.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image, ImageChops
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pypdf import PdfReader

from hocba.pdf import layout
from hocba.pdf.render import RenderError, print_class, render_book
from hocba.pdf.sign import (
    PRINCIPAL_FIELD,
    SEAL_FIELD,
    PdfCheckCode,
    PdfSignError,
    attachment_name,
    embedded_record_xml,
    sign_pdf,
    sign_pdfs,
    verify_pdf,
)
from hocba.xml.record import build_record_xml, read_record_document
from hocba.xml.verify import CheckStatus, IssuedRecordInfo, Verdict

VERIFY_URL = "https://tracuu.hocba.example.vn/xac-thuc"
PUPIL = "Lê Minh Anh"
OTHER_PUPIL = "Đặng Thuỳ Dương"
TEACHER_CCCD = "001190012345"
PRINCIPAL_CCCD = "001080054321"
P12_PASSWORD = "mat-khau-thu-nghiem"  # the session test PKI's (tests/tasks/conftest.py)
SUBJECT_LEVELS = {  # the subjects of the session's grade-4 record, with their levels
    "Tiếng Việt": "T",
    "Toán": "T",
    "Ngoại ngữ 1 (Tiếng Anh)": "H",
    "Đạo đức": "T",
    "Lịch sử và Địa lí": "T",
    "Khoa học": "T",
    "Tin học": "H",
    "Công nghệ": "T",
    "Giáo dục thể chất": "T",
    "Âm nhạc": "T",
    "Mĩ thuật": "T",
    "Hoạt động trải nghiệm": "T",
}
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "pdf"


def _tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        pytest.fail(f"{name} is required: apt-get install poppler-utils")
    return exe


def _run(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [_tool(args[0]), *args[1:]], input=data, capture_output=True, check=False, timeout=60
    )


def _pdfsig(pdf: bytes, tmp_path: Path) -> str:
    """poppler's pdfsig on a file (it does not read standard input)."""
    path = tmp_path / f"{hashlib.sha256(pdf).hexdigest()[:16]}.pdf"
    path.write_bytes(pdf)
    result = _run("pdfsig", str(path))
    return result.stdout.decode("utf-8", "replace") + result.stderr.decode("utf-8", "replace")


def _text(pdf: bytes, first: int | None = None, last: int | None = None) -> str:
    pages = [*(["-f", str(first)] if first else []), *(["-l", str(last)] if last else [])]
    result = _run("pdftotext", "-layout", "-enc", "UTF-8", *pages, "-", "-", data=pdf)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode("utf-8")


def _png(pdf: bytes, page: int, dpi: int = 110) -> Image.Image:
    result = _run(
        "pdftoppm", "-png", "-r", str(dpi), "-f", str(page), "-l", str(page), "-", data=pdf
    )
    assert result.returncode == 0, result.stderr
    return Image.open(io.BytesIO(result.stdout)).convert("RGB")


def _red_pixels(image: Image.Image) -> int:
    """Pixels of the seal's red (not the navy text, not the black ink)."""
    red, green, blue = image.convert("RGB").split()
    mask = ImageChops.multiply(
        red.point(lambda v: 255 if v > 150 else 0),
        ImageChops.multiply(
            green.point(lambda v: 255 if v < 90 else 0), blue.point(lambda v: 255 if v < 90 else 0)
        ),
    )
    return mask.histogram()[255]


def _dark_pixels(image: Image.Image) -> int:
    return sum(image.convert("L").histogram()[:128])


# --------------------------------------------------------------------------- the books
@dataclass(frozen=True)
class Book:
    years: list[bytes]  # issued record XMLs, oldest first
    pdf: bytes  # signed

    @property
    def latest(self) -> bytes:
        return self.years[-1]

    @property
    def lookup_code(self) -> str:
        return str(read_record_document(self.latest).thong_tin_chung["MA_TRA_CUU_UUID"])


def _issue_years(
    sign_all, signed_record: bytes, grades: Sequence[int], name: str = PUPIL
) -> list[bytes]:
    """One issued record per grade (school years 2020-2021 … for grades 1 …), each with a
    fresh lookup code, signed GVCN → CBQL → seal with the session's test PKI."""
    documents = []
    for grade in grades:
        doc = read_record_document(signed_record)
        general = doc.thong_tin_chung
        start = 2019 + grade
        general.update(
            MA_TRA_CUU_UUID=str(uuid.uuid4()),
            MA_KHOI=grade,
            TEN_LOP=f"{grade}A",
            NAM_HOC=start,
            TEN_NAM_HOC=f"{start}-{start + 1}",
            HO_VA_TEN=name,
        )
        if name != PUPIL:
            general.update(SO_CCCD="079215000999", MA_HOC_SINH="2200099999")
        doc.tong_ket["NOI_DUNG_HOAN_THANH_CHUONG_TRINH"] = (
            "Hoàn thành chương trình tiểu học"
            if grade == 5
            else f"Hoàn thành chương trình lớp {grade}; Được lên lớp {grade + 1}"
        )
        doc.qua_trinh_hoc_tap = [
            {"TEN_LOP": f"{grade}A", "TEN_TRUONG": general["TEN_TRUONG"]}  # type: ignore[dict-item]
        ]
        documents.append(build_record_xml(doc))
    return sign_all(documents)


@pytest.fixture(scope="module")
def principal(signing_staff):
    return signing_staff.signer(signing_staff.principal)


@pytest.fixture(scope="module")
def seal(signing_staff):
    return signing_staff.signer(signing_staff.school)


@pytest.fixture(scope="module")
def five_years(sign_all, signed_record, principal, seal) -> Book:
    years = _issue_years(sign_all, signed_record, [1, 2, 3, 4, 5])
    pdf = render_book(years, verify_url=VERIFY_URL)
    return Book(years, sign_pdf(pdf, principal=principal, seal=seal, record_xml=years[-1]))


@pytest.fixture(scope="module")
def one_year(sign_all, signed_record, principal, seal) -> Book:
    years = _issue_years(sign_all, signed_record, [4])
    pdf = render_book(years, verify_url=VERIFY_URL)
    return Book(years, sign_pdf(pdf, principal=principal, seal=seal, record_xml=years[-1]))


class Registry:
    """Just enough of the system's registry: these people held their roles, the school's
    certificate is approved, these records were issued."""

    def __init__(self, *issued: bytes) -> None:
        self.issued = {
            str(read_record_document(xml).thong_tin_chung["MA_TRA_CUU_UUID"]): xml for xml in issued
        }

    def signer_held_role(self, slot, cccd, school_code, school_year, class_name, at):
        return {"GVCN": TEACHER_CCCD, "CBQL": PRINCIPAL_CCCD}.get(slot) == cccd

    def school_certificate_approved(self, school_code, cert_sha256_hex, at):
        return True

    def issued_record(self, lookup_code):
        xml = self.issued.get(lookup_code)
        if xml is None:
            return None
        return IssuedRecordInfo(hashlib.sha256(xml).hexdigest(), "issued")


def _verify(pdf: bytes, signing_staff, registry=None, crl=True):
    return verify_pdf(
        pdf,
        trusted_roots=signing_staff.roots,
        registry=registry,
        crl_source=(lambda certificate: signing_staff.pki.crl) if crl else None,
    )


def _status(report, code: str) -> CheckStatus:
    check = report.check(code)
    assert check is not None, f"{code} did not run:\n{report.render_text()}"
    return check.status


PDF_CODES = [
    PdfCheckCode.PDF_PARSE,
    PdfCheckCode.PDF_SIGNATURE_PRINCIPAL,
    PdfCheckCode.PDF_SIGNATURE_SEAL,
    PdfCheckCode.PDF_LOCK,
    PdfCheckCode.PDF_REVOCATION,
    PdfCheckCode.PDF_EMBEDDED_XML,
]


# --------------------------------------------------------------------------- rendering
@pytest.mark.parametrize(("book", "pages"), [("one_year", 4), ("five_years", 12)])
def test_a_book_has_a_cover_an_information_page_and_two_pages_per_year(book, pages, request):
    signed = request.getfixturevalue(book)
    reader = PdfReader(io.BytesIO(signed.pdf))
    assert len(reader.pages) == pages
    for page in reader.pages:  # A4 portrait, 210 × 297 mm
        assert round(float(page.mediabox.width)) == 595
        assert round(float(page.mediabox.height)) == 842


def test_text_extraction_finds_the_pupil_the_lookup_code_and_every_level(five_years) -> None:
    text = _text(five_years.pdf)
    assert "BỘ GIÁO DỤC VÀ ĐÀO TẠO" in _text(five_years.pdf, 1, 1)
    assert "TIỂU HỌC" in _text(five_years.pdf, 1, 1)
    assert "LÊ MINH ANH" in text and PUPIL in text  # diacritics survive (ToUnicode maps)
    assert five_years.lookup_code in _text(five_years.pdf, 2, 2)
    assert "Mã số tra cứu" in _text(five_years.pdf, 2, 2) or "MÃ SỐ TRA CỨU" in text
    for start in range(2020, 2025):
        assert f"NĂM HỌC {start}-{start + 1}" in text
    latest_year = _text(five_years.pdf, 11, 11)  # first page of grade 5
    for subject, level in SUBJECT_LEVELS.items():
        row = re.compile(rf"^\s*\d+\s+{re.escape(subject)}\s+{level}\b", re.M)
        assert row.search(latest_year), f"{subject}: {level} not found in\n{latest_year}"


def test_every_year_names_its_school_teacher_and_principal(five_years) -> None:
    for first_page in (3, 5, 7, 9, 11):
        year = _text(five_years.pdf, first_page, first_page + 1)
        assert "Trường Tiểu học Kim Đồng" in year
        assert "GIÁO VIÊN CHỦ NHIỆM" in year and "Nguyễn Thị Hoà" in year
        assert "XÁC NHẬN CỦA HIỆU TRƯỞNG" in year and "Trần Văn Đức" in year
        assert "1. Các môn học và hoạt động giáo dục" in year
        assert "6. Hoàn thành chương trình" in year
    assert "Đã ký số trên học bạ số năm học 2020-2021" in _text(five_years.pdf, 4, 4)


def test_rendering_is_deterministic(one_year) -> None:
    first = render_book(one_year.years, verify_url=VERIFY_URL)
    assert render_book(one_year.years, verify_url=VERIFY_URL) == first


def test_operators_replayed_from_other_books_give_the_same_bytes(one_year, five_years) -> None:
    render_book(five_years.years, verify_url=VERIFY_URL)  # records rows, lines, texts
    warm = render_book(one_year.years, verify_url=VERIFY_URL)
    layout._RECORDED.clear()
    assert render_book(one_year.years, verify_url=VERIFY_URL) == warm


def test_fonts_are_embedded(one_year) -> None:
    result = _run("pdffonts", "-", data=one_year.pdf)
    rows = [
        line for line in result.stdout.decode().splitlines()[2:] if "HocBa" in line or "+" in line
    ]
    assert rows, result.stdout.decode()
    for row in rows:  # name, type, encoding, emb, sub, uni, object ID
        assert re.search(r"\byes\s+yes\s+yes\b", row), row


def test_the_qr_code_carries_the_verification_link(five_years) -> None:
    image = _png(five_years.pdf, 2, dpi=150)
    codes = zxingcpp.read_barcodes(image)
    texts = [code.text for code in codes if code.format == zxingcpp.BarcodeFormat.QRCode]
    assert texts == [f"{VERIFY_URL}?ma={five_years.lookup_code}"]


@pytest.mark.parametrize(
    ("years", "message"),
    [
        ("two_pupils", "cùng một học sinh"),
        ("same_year_twice", "Mỗi năm học"),
        ("not_issued", "mã số tra cứu"),
    ],
)
def test_what_cannot_be_one_book_is_refused(years, message, sign_all, signed_record, one_year):
    inputs = {
        "two_pupils": [one_year.latest, *_issue_years(sign_all, signed_record, [5], OTHER_PUPIL)]
        if years == "two_pupils"
        else [],
        "same_year_twice": [one_year.latest, one_year.latest],
        "not_issued": [signed_record],  # the session record has no lookup code
    }[years]
    with pytest.raises(RenderError, match=message):
        render_book(inputs, verify_url=VERIFY_URL)


# --------------------------------------------------------------------------- signing
def _widgets(pdf: bytes) -> dict[str, tuple[int, list[float]]]:
    """Signature widgets: field name → (position in the page's /Annots, /Rect)."""
    reader = PdfReader(io.BytesIO(pdf))
    found = {}
    for page in reader.pages:
        for index, annotation in enumerate(page.get("/Annots") or []):
            annotation = annotation.get_object()
            if annotation.get("/FT") == "/Sig":
                found[str(annotation["/T"])] = (index, [float(v) for v in annotation["/Rect"]])
    return found


def test_pdfsig_reports_both_signatures_valid(five_years, tmp_path) -> None:
    output = _pdfsig(five_years.pdf, tmp_path)
    blocks = re.split(r"^Signature #\d+:", output, flags=re.M)[1:]
    assert len(blocks) == 2, output
    assert f"Signature Field Name: {PRINCIPAL_FIELD}" in blocks[0]
    assert f"Signature Field Name: {SEAL_FIELD}" in blocks[1]
    for block in blocks:
        assert "Signature Validation: Signature is Valid." in block, output
        assert "ETSI.CAdES.detached" in block
    assert "Total document signed" in blocks[1]  # the seal covers every byte


def test_the_seal_stamp_overlaps_the_left_third_of_the_principal_box(five_years) -> None:
    widgets = _widgets(five_years.pdf)
    (p_index, (px1, py1, px2, py2)), (s_index, (sx1, sy1, sx2, sy2)) = (
        widgets[PRINCIPAL_FIELD],
        widgets[SEAL_FIELD],
    )
    assert s_index > p_index  # drawn after, so on top
    assert sx1 <= px1 and sx2 >= px1 + (px2 - px1) / 3  # covers the whole left third
    assert sx2 < px1 + (px2 - px1) / 2  # and not much more
    assert sy1 < (py1 + py2) / 2 < sy2  # across the box's middle line


def test_the_signed_record_travels_inside_the_pdf(five_years) -> None:
    assert embedded_record_xml(five_years.pdf) == five_years.latest
    reader = PdfFileReader(io.BytesIO(five_years.pdf))
    principal = next(s for s in reader.embedded_signatures if s.field_name == PRINCIPAL_FIELD)
    signed_root = reader.get_historical_root(principal.signed_revision)
    names = signed_root["/Names"]["/EmbeddedFiles"]["/Names"]
    assert attachment_name(five_years.lookup_code) in [
        str(names[i]) for i in range(0, len(names), 2)
    ]


def test_signing_goes_through_the_port_once_per_signature(one_year, principal, seal) -> None:
    calls: list[tuple[str, int]] = []

    class Counting:
        def __init__(self, port, label):
            self.port, self.label = port, label
            self.certificate, self.chain, self.algorithm = (
                port.certificate,
                port.chain,
                port.algorithm,
            )

        def sign_digests(self, digests):
            calls.append((self.label, len(digests)))
            return self.port.sign_digests(digests)

    pdf = render_book(one_year.years, verify_url=VERIFY_URL)
    sign_pdf(
        pdf,
        principal=Counting(principal, "principal"),
        seal=Counting(seal, "seal"),
        record_xml=one_year.latest,
    )
    assert calls == [("principal", 1), ("seal", 1)]


def test_ecdsa_keys_sign_valid_pdfs(one_year, signing_staff, tmp_path) -> None:
    pdf = render_book(one_year.years, verify_url=VERIFY_URL)
    signed = sign_pdf(
        pdf,
        principal=signing_staff.signer(signing_staff.principal_ecdsa),
        seal=signing_staff.signer(signing_staff.school_ecdsa),
        record_xml=one_year.latest,
    )
    output = _pdfsig(signed, tmp_path)
    assert output.count("Signature Validation: Signature is Valid.") == 2, output
    report = _verify(signed, signing_staff)
    for code in (PdfCheckCode.PDF_SIGNATURE_PRINCIPAL, PdfCheckCode.PDF_SIGNATURE_SEAL):
        assert _status(report, code) is CheckStatus.PASS, report.render_text()


def test_a_record_of_another_pupil_cannot_be_attached(one_year, five_years, principal, seal):
    pdf = render_book(one_year.years, verify_url=VERIFY_URL)
    with pytest.raises(PdfSignError):
        sign_pdf(pdf, principal=principal, seal=seal, record_xml=five_years.latest)


def test_a_batch_reports_progress_and_signs_every_book(one_year, principal, seal) -> None:
    pdf = render_book(one_year.years, verify_url=VERIFY_URL)
    seen: list[tuple[int, int]] = []
    signed = sign_pdfs(
        [(pdf, one_year.latest)] * 3,
        principal=principal,
        seal=seal,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert all(embedded_record_xml(book) == one_year.latest for book in signed)


def _stamp_text(pdf: bytes) -> str:
    """The text of the signature stamps: the printed copy draws them into the page."""
    return _text(print_class([pdf]), 4, 4)


def test_cached_stamps_name_the_signer_of_each_book(one_year, signing_staff, seal) -> None:
    """Stamps and containers are built once per signer and reused: a book signed by
    another principal (same CCCD, another name) must still show that principal."""
    other = signing_staff.signer(
        signing_staff.pki.issue_person(
            PRINCIPAL_CCCD,
            "Vũ Thị Lan",
            "Hiệu trưởng",
            P12_PASSWORD,
            organization="Trường Tiểu học Kim Đồng",
            label="hieu-truong-moi",
        )
    )
    pdf = render_book(one_year.years, verify_url=VERIFY_URL)
    books = {
        name: sign_pdf(pdf, principal=signer, seal=seal, record_xml=one_year.latest)
        for name, signer in (
            ("Trần Văn Đức", signing_staff.signer(signing_staff.principal)),
            ("Vũ Thị Lan", other),
            ("Trần Văn Đức again", signing_staff.signer(signing_staff.principal)),
        )
    }
    first, second, third = (_stamp_text(book) for book in books.values())
    assert "Ký bởi: Trần Văn Đức" in first and "Ký bởi: Vũ Thị Lan" not in first
    assert "Ký bởi: Vũ Thị Lan" in second and "Ký bởi: Trần Văn Đức" not in second
    assert "Ký bởi: Trần Văn Đức" in third and "Ký bởi: Vũ Thị Lan" not in third
    for book in books.values():
        report = _verify(book, signing_staff, Registry(*one_year.years))
        assert report.verdict is Verdict.VALID, report.render_text()


@pytest.mark.parametrize("keys", ["rsa", "ecdsa"])
def test_a_rendering_updated_after_the_fact_is_still_signed(keys, one_year, signing_staff):
    """A rendering with a later revision is not what the direct writer expects: pyHanko
    signs it, with the same result."""
    suffix = "_ecdsa" if keys == "ecdsa" else ""
    writer = IncrementalPdfFileWriter(
        io.BytesIO(render_book(one_year.years, verify_url=VERIFY_URL))
    )
    writer.trailer["/Info"]["/Keywords"] = generic.pdf_string("học bạ số, bản sửa")
    writer.update_container(writer.trailer["/Info"])
    updated = io.BytesIO()
    writer.write(updated)
    signed = sign_pdf(
        updated.getvalue(),
        principal=signing_staff.signer(getattr(signing_staff, f"principal{suffix}")),
        seal=signing_staff.signer(getattr(signing_staff, f"school{suffix}")),
        record_xml=one_year.latest,
    )
    assert PdfFileReader(io.BytesIO(signed)).total_revisions == 4
    report = _verify(signed, signing_staff, Registry(*one_year.years))
    assert report.verdict is Verdict.VALID, report.render_text()


# --------------------------------------------------------------------------- verification
def test_a_signed_book_is_valid(five_years, signing_staff) -> None:
    report = _verify(five_years.pdf, signing_staff, Registry(*five_years.years))
    assert report.verdict is Verdict.VALID, report.render_text()
    assert [c.code for c in report.checks][: len(PDF_CODES)] == PDF_CODES
    assert {"SIGNATURE_GVCN", "SIGNATURE_CBQL", "SIGNATURE_KY_PHAT_HANH", "REGISTRY_MATCH"} <= {
        c.code for c in report.checks
    }
    assert report.lookup_code == five_years.lookup_code
    assert report.pupil_name == PUPIL
    assert report.document_sha256 == hashlib.sha256(five_years.pdf).hexdigest()


def test_without_registry_or_crl_the_book_is_only_indeterminate(five_years, signing_staff):
    report = _verify(five_years.pdf, signing_staff, crl=False)
    assert report.verdict is Verdict.INDETERMINATE, report.render_text()
    assert _status(report, PdfCheckCode.PDF_REVOCATION) is CheckStatus.INDETERMINATE


def test_an_untrusted_root_fails_both_signatures(five_years, signing_staff) -> None:
    report = verify_pdf(five_years.pdf, trusted_roots=[signing_staff.other_root])
    assert _status(report, PdfCheckCode.PDF_SIGNATURE_PRINCIPAL) is CheckStatus.FAIL
    assert _status(report, PdfCheckCode.PDF_SIGNATURE_SEAL) is CheckStatus.FAIL


def _first_stream_offset(pdf: bytes) -> int:
    """An offset inside the first content stream's data (in the unsigned rendering)."""
    match = re.search(rb"stream\r?\n", pdf)
    assert match is not None
    return match.end() + 40


def test_flipping_a_signed_byte_fails_both_signatures(five_years, signing_staff) -> None:
    tampered = bytearray(five_years.pdf)
    offset = _first_stream_offset(five_years.pdf)
    tampered[offset] ^= 0x01
    report = _verify(bytes(tampered), signing_staff, Registry(*five_years.years))
    assert report.verdict is Verdict.INVALID
    assert _status(report, PdfCheckCode.PDF_PARSE) is CheckStatus.PASS
    assert _status(report, PdfCheckCode.PDF_SIGNATURE_PRINCIPAL) is CheckStatus.FAIL
    assert _status(report, PdfCheckCode.PDF_SIGNATURE_SEAL) is CheckStatus.FAIL
    assert "đã bị thay đổi" in report.check(PdfCheckCode.PDF_SIGNATURE_SEAL).message_vi


def _replace_attachment(pdf: bytes, xml: bytes) -> bytes:
    """An incremental update that swaps the attached record for another one."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    names = writer.root["/Names"]["/EmbeddedFiles"]["/Names"]
    stream_ref = names[1]["/EF"].raw_get("/F")
    stream = stream_ref.get_object()
    replacement = generic.StreamObject(dict(stream.items()), stream_data=xml)
    replacement.compress() if "/Filter" in stream else None
    writer.mark_update(stream_ref)
    writer.objects[(stream_ref.generation, stream_ref.idnum)] = replacement
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_replacing_the_embedded_xml_fails(five_years, one_year, signing_staff) -> None:
    other = one_year.latest  # a genuinely issued record, of another year
    tampered = _replace_attachment(five_years.pdf, other)
    assert embedded_record_xml(tampered) == other
    report = _verify(tampered, signing_staff, Registry(*five_years.years, other))
    assert report.verdict is Verdict.INVALID
    assert _status(report, PdfCheckCode.PDF_EMBEDDED_XML) is CheckStatus.FAIL
    assert _status(report, PdfCheckCode.PDF_LOCK) is CheckStatus.FAIL


def test_appending_a_page_fails_the_lock(five_years, signing_staff) -> None:
    writer = IncrementalPdfFileWriter(io.BytesIO(five_years.pdf))
    page = generic.DictionaryObject(
        {
            generic.pdf_name("/Type"): generic.pdf_name("/Page"),
            generic.pdf_name("/MediaBox"): generic.ArrayObject(
                [generic.NumberObject(v) for v in (0, 0, 595, 842)]
            ),
            generic.pdf_name("/Resources"): generic.DictionaryObject(),
        }
    )
    writer.insert_page(page)
    out = io.BytesIO()
    writer.write(out)
    tampered = out.getvalue()
    assert len(PdfReader(io.BytesIO(tampered)).pages) == 13
    report = _verify(tampered, signing_staff, Registry(*five_years.years))
    assert report.verdict is Verdict.INVALID
    assert _status(report, PdfCheckCode.PDF_LOCK) is CheckStatus.FAIL
    # the signatures themselves still verify over what they signed
    assert _status(report, PdfCheckCode.PDF_SIGNATURE_PRINCIPAL) is CheckStatus.PASS
    assert _status(report, PdfCheckCode.PDF_SIGNATURE_SEAL) is CheckStatus.PASS


def test_an_unsigned_rendering_is_invalid(one_year, signing_staff) -> None:
    report = _verify(render_book(one_year.years, verify_url=VERIFY_URL), signing_staff)
    assert report.verdict is Verdict.INVALID
    for code in PDF_CODES[1:3] + [PdfCheckCode.PDF_LOCK, PdfCheckCode.PDF_EMBEDDED_XML]:
        assert _status(report, code) is CheckStatus.FAIL


@pytest.mark.parametrize("data", [b"", b"%PDF-1.7\n garbage", b"not a pdf at all" * 10])
def test_garbage_is_refused_without_raising(data, signing_staff) -> None:
    report = _verify(data, signing_staff)
    assert report.verdict is Verdict.INVALID
    assert [c.code for c in report.checks] == [PdfCheckCode.PDF_PARSE]


# --------------------------------------------------------------------------- printing
def test_a_class_prints_as_one_file_with_the_stamps_flattened(one_year, five_years) -> None:
    merged = print_class([one_year.pdf, five_years.pdf])
    reader = PdfReader(io.BytesIO(merged))
    assert len(reader.pages) == 4 + 12
    assert not any(page.get("/Annots") for page in reader.pages)
    text = _text(merged)
    assert text.count("BỘ GIÁO DỤC VÀ ĐÀO TẠO") == 2
    stamp_page = _png(merged, 4, dpi=60)
    assert _red_pixels(stamp_page) > 200  # the red seal is printed


# --------------------------------------------------------------------------- looking at it
def test_pages_render_as_pictures_for_people(five_years) -> None:
    """Writes PNGs of the sample pupil's first pages and of the signed page to
    test-artifacts/pdf/ (look at them), and checks they are not blank."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for page in (1, 2, 3, 4, 12):
        image = _png(five_years.pdf, page, dpi=80)
        image.save(ARTIFACTS / f"hoc-ba-trang-{page:02d}.png")
        assert _dark_pixels(image) > 2000, f"page {page} looks blank"
    signed_page = _png(five_years.pdf, 12, dpi=80)
    assert _red_pixels(signed_page) > 200  # the seal is visible on the signed page
    assert _red_pixels(_png(render_book(five_years.years, verify_url=VERIFY_URL), 12, 80)) == 0
    assert (ARTIFACTS / "hoc-ba-trang-12.png").stat().st_size > 10_000
