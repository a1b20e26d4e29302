"""What both ways of signing a book and its verification share (HOCBA_SPEC §4): the two
signature fields, the attached record XML's name and facts, the time printed in the stamps,
:class:`PdfSignError` and the stable check codes of :mod:`hocba.pdf.verify`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from pyhanko.pdf_utils import generic

from hocba.errors import HocbaError
from hocba.xml.record import RecordXmlError, parse_record_xml_safely

PRINCIPAL_FIELD = "ChuKyHieuTruong"
SEAL_FIELD = "DauCuaTruong"
DEFAULT_MAX_PDF_BYTES = 20_000_000
ATTACHMENT_PATTERN = re.compile(r"hoc-ba-[0-9a-f-]{36}\.xml")
_VN = dt.timezone(dt.timedelta(hours=7))


class PdfSignError(HocbaError):
    """The PDF could not be signed; ``message_vi`` is a Vietnamese message for people."""

    def __init__(self, message_vi: str) -> None:
        super().__init__(message_vi)
        self.message_vi = message_vi


class PdfCheckCode:
    """Stable codes of the PDF-specific checks (see :mod:`hocba.pdf.sign`'s docstring)."""

    PDF_PARSE = "PDF_PARSE"
    PDF_SIGNATURE_PRINCIPAL = "PDF_SIGNATURE_PRINCIPAL"
    PDF_SIGNATURE_SEAL = "PDF_SIGNATURE_SEAL"
    PDF_LOCK = "PDF_LOCK"
    PDF_REVOCATION = "PDF_REVOCATION"
    PDF_EMBEDDED_XML = "PDF_EMBEDDED_XML"
    PDF_TIMESTAMP = "PDF_TIMESTAMP"


# =============================================================================== appearances
def _name_attribute(certificate: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    values = certificate.subject.get_attributes_for_oid(oid)
    return str(values[0].value) if values else None


# =============================================================================== layout
@dataclass(frozen=True)
class _Placement:
    page: int
    box: tuple[float, float, float, float]
    page_ref: generic.IndirectObject | None = None


def _get(dictionary: Any, key: str) -> Any:
    """``dictionary[key]`` resolved (pyHanko's ``.get`` returns indirect references)."""
    return dictionary[key] if dictionary is not None and key in dictionary else None


# =============================================================================== signing
def attachment_name(lookup_code: str) -> str:
    return f"hoc-ba-{lookup_code}.xml"


def _record_facts(record_xml: bytes) -> dict[str, str]:
    try:
        root = parse_record_xml_safely(record_xml)
    except RecordXmlError as exc:
        raise PdfSignError(f"Học bạ XML đính kèm không đọc được: {exc.message_vi}") from exc
    general = root.find("DU_LIEU_HOC_BA/THONG_TIN_CHUNG")
    facts: dict[str, str] = {}
    if general is not None:
        for child in general:
            if isinstance(child.tag, str) and child.text:
                facts[child.tag] = child.text.strip()
    return facts


def _vn_time(when: dt.datetime) -> str:
    return when.astimezone(_VN).strftime("%d/%m/%Y %H:%M (+07:00)")


@dataclass(frozen=True)
class _BookSigning:
    """What both ways of signing a book need, worked out once."""

    facts: dict[str, str]
    lookup_code: str
    placement: _Placement
    principal_box: tuple[float, float, float, float]
    seal_box: tuple[float, float, float, float]
    name: str
    school: str
    location: str | None
    principal_appearance: bytes
    seal_appearance: bytes
    when: dt.datetime


_PRINCIPAL_REASON = "Hiệu trưởng xác nhận học bạ"
_SEAL_REASON = "Đóng dấu số của nhà trường"


def _attachment_description(book: _BookSigning) -> str:
    return (
        f"Học bạ số (XML đã ký số) năm học {book.facts.get('TEN_NAM_HOC', '')}, "
        f"mã số tra cứu {book.lookup_code}"
    )
