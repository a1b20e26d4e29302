"""Three XML signatures per record, each in its own slot (HOCBA_SPEC §4).

Standards: W3C XML Signature Syntax and Processing 1.1 ("XMLDSig"), Exclusive XML
Canonicalization 1.0 (W3C REC 2002), RFC 6931 (algorithm identifiers), RFC 5280 (X.509
certificates and CRLs).

Where a signature goes and what it covers::

    <HOC_BA>
      <DU_LIEU_HOC_BA Id="data">...</DU_LIEU_HOC_BA>          <- Reference URI="#data"
      <DANH_SACH_THONG_TIN_KY>
        <GVCN>
          <ds:Signature Id="sig-GVCN">
            <ds:SignedInfo>
              <ds:CanonicalizationMethod Algorithm="...xml-exc-c14n#"/>
              <ds:SignatureMethod Algorithm="...xmldsig-more#rsa-sha256"/>
              <ds:Reference URI="#data">                        exc-c14n, SHA-256
              <ds:Reference URI="#st-GVCN" Type="...#SignatureProperties">
            </ds:SignedInfo>
            <ds:SignatureValue>...</ds:SignatureValue>
            <ds:KeyInfo><ds:X509Data>
              <ds:X509SubjectName>CN=...</ds:X509SubjectName>   (RFC 4514 string)
              <ds:X509Certificate>...</ds:X509Certificate>      (signer first, then
            </ds:X509Data></ds:KeyInfo>                          intermediates if any)
            <ds:Object>
              <ds:SignatureProperties Id="st-GVCN">
                <ds:SignatureProperty Target="#sig-GVCN">      (xmlns:hb="urn:hocba:xmldsig:1")
                  <hb:SigningTime>2025-05-20T10:00:00+07:00</hb:SigningTime>
          </ds:Signature>
          <NGAY_KY>2025-05-20T10:00:00+07:00</NGAY_KY>   unsigned, informative
          <SO_CCCD>001234567890</SO_CCCD>                unsigned, informative (GVCN, CBQL)
        </GVCN>
        <CBQL>...</CBQL> <KY_PHAT_HANH>...</KY_PHAT_HANH>
      </DANH_SACH_THONG_TIN_KY>
    </HOC_BA>

Design notes:

* The signature sits outside the data it references, so no enveloped-signature transform
  is needed and the three signatures coexist: adding one never changes what another
  signed. ``NGAY_KY`` / ``SO_CCCD`` in a slot are *not* signed (as in the pilot layout):
  the verifier compares them with what is signed (the SigningTime, the certificate's
  CCCD) and a disagreement is an error (issue 16: unsigned fields must not tell a story
  the signature does not).
* **Slot binding.** The SigningTime container's Id is ``st-<SLOT>`` and its Reference is
  inside ``SignedInfo``; a signature moved to another slot therefore fails with
  ``WRONG_SLOT`` — the slot name is covered by the signature itself.
* ``SigningTime`` is qualified with the project namespace ``urn:hocba:xmldsig:1`` because
  the XMLDSig schema only admits elements from *other namespaces* inside
  ``ds:SignatureProperty`` (``##other``); the verifier also accepts an unqualified
  ``SigningTime`` as written by other Vietnamese signing tools.
* **Batch signing.** :func:`sign_slots` builds every ``SignedInfo`` itself, hashes the
  canonical forms and asks the :class:`~hocba.pki.signer.Signer` for all values in one
  call (one confirmation on a remote-signing service), then checks each returned value
  with the certificate's public key before writing it.
* **Speed** (bench/issuance.py, docs/PERFORMANCE.md). The bytes ``build_record_xml`` or
  :func:`sign_slots` just returned come with their tree (``record.keep_parsed``, per
  thread, each tree used once): signing the next slot of *that bytes object*, or
  :func:`verify_record_signatures` of the sealed one, takes the tree and its ``#data``
  digest instead of parsing again (issuance: build → GVCN → CBQL → seal → check, one
  tree). Bytes in any other object are parsed. Verification caches, per certificate
  and CRL *object*, what does not depend on the document: parsed facts, the chain to the
  given roots, the CRL's signature check and its revoked serials — so pass the same root
  and CRL objects to verify many records fast. A signature laid out exactly as
  :func:`sign_slots` writes it takes a fast path (issue 14): its canonical ``SignedInfo``
  and ``SignatureProperties`` are compared with the ones sign_slots would write for the
  digests computed here, and what its KeyInfo says is checked once per (KeyInfo texts,
  root objects, CRL objects); any other layout, and any finding at all, is left to the
  full element-by-element check, so the answers are the same. When the bytes are at hand
  (``verify_record_signatures``, ``verify_record_tree(..., source=)``) and the signature
  zone is, byte for byte, what sign_slots writes (one regular expression from the zone's
  start tag to the end of the document), the slots are read from the bytes instead of the
  tree (session 9): the canonical forms are the templates with the zone's texts in them.
  ``verify_record_signatures`` of bytes whose tree is not kept then parses only what
  precedes the zone (well-formed exactly when the whole is, since nothing in the zone can
  close what the head opened); a slot that does not pass sends the record to the paths
  above, parsed whole.
* **Against signature wrapping**, the verifier resolves ``#data`` only to *the*
  ``DU_LIEU_HOC_BA`` child of the root and fails if any other element carries
  ``Id="data"`` (XMLDSig Best Practices, "see what is signed").

Verification issue codes (stable; ``message_vi`` is for people):

==============================  =============================================================
``XML_INVALID``                 not well-formed, DOCTYPE, too big, not UTF-8
``STRUCTURE_INVALID``           not HOC_BA / DU_LIEU_HOC_BA Id="data" / slot layout
``DATA_ID_AMBIGUOUS``           another element also carries Id="data" (wrapping attack)
``SIGNATURE_MISSING``           the slot holds no ds:Signature
``SIGNATURE_MULTIPLE``          the slot holds several ds:Signature
``SIGNATURE_MALFORMED``         a required XMLDSig element is missing or repeated
``ALGORITHM_UNSUPPORTED``       c14n/transform/digest/signature algorithm not accepted
``REFERENCE_INVALID``           references are not exactly #data + this signature's
                                SigningTime
``WRONG_SLOT``                  the SigningTime reference names another slot
``DIGEST_MISMATCH_DATA``        DU_LIEU_HOC_BA changed after signing
``DIGEST_MISMATCH_PROPERTIES``  the SigningTime changed after signing
``SIGNATURE_VALUE_INVALID``     SignatureValue does not verify with the certificate
``SIGNING_TIME_MISSING``        no SigningTime
``SIGNING_TIME_INVALID``        SigningTime not an ISO datetime with offset
``SIGNING_TIME_IN_FUTURE``      SigningTime later than now (+5 min)
``CERTIFICATE_MISSING``         no X509Certificate in KeyInfo
``CERTIFICATE_INVALID``         X509Certificate unreadable
``CERTIFICATE_UNTRUSTED``       no chain to a trusted root
``CERTIFICATE_EXPIRED``         a chain certificate expired before the signing time
``CERTIFICATE_NOT_YET_VALID``   a chain certificate not yet valid at the signing time
``CERTIFICATE_KEY_USAGE``       keyUsage allows neither digitalSignature nor nonRepudiation
``CERTIFICATE_REVOKED``         revoked (given CRL) at or before the signing time
``CRL_INVALID``                 a CRL of the chain's issuer has a bad signature
``SIGNER_ID_MISMATCH``          the certificate's CCCD / school code differs from the data
``NGAY_KY_MISMATCH``            the slot's unsigned NGAY_KY is not the signed SigningTime
``SLOT_CCCD_MISMATCH``          the slot's unsigned SO_CCCD is not the certificate's CCCD
``SIGNING_ORDER_INVALID``       (record level) signing times not GVCN <= CBQL <= KY_PHAT_HANH
==============================  =============================================================

Warnings (do not make ``ok`` false): ``SIGNER_ID_UNCHECKED`` (the certificate carries no
CCCD / school code to compare), ``CERTIFICATE_REVOKED_LATER`` (revoked after the signing
time), ``KEYINFO_SUBJECT_MISMATCH`` (X509SubjectName names no certificate of X509Data; KeyInfo
is not signed).
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import hashlib
import re
import threading
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache, lru_cache, partial
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from hocba.errors import HocbaError
from hocba.pki.chain import build_chain
from hocba.pki.signer import (
    ALGORITHM_ECDSA_SHA256,
    ALGORITHM_RSA_SHA256,
    Signer,
    public_key_id,
    verify_signature_value,
)
from hocba.xml.record import (
    DATA_ID,
    DEFAULT_MAX_BYTES,
    SIGNATURE_SLOTS,
    RecordXmlError,
    format_datetime,
    holds_parsed,
    keep_parsed,
    parse_record_xml_safely,
    take_parsed,
)

__all__ = [
    "DS_NS",
    "HB_NS",
    "IssueCode",
    "RecordSignaturesVerification",
    "SlotVerification",
    "VerificationIssue",
    "XmlSignatureError",
    "crl_revocation_dates",
    "sign_slots",
    "verify_record_signatures",
    "verify_record_tree",
    "verify_slot",
]

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
"""XMLDSig namespace."""
HB_NS = "urn:hocba:xmldsig:1"
"""Namespace of the project's ``SigningTime`` signature property."""

_EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
_EXC_C14N_WC = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"
_C14N10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
_C14N10_WC = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments"
_C14N_ALGORITHMS = {_EXC_C14N, _EXC_C14N_WC, _C14N10, _C14N10_WC}
_EC_NS = _EXC_C14N  # InclusiveNamespaces element namespace
_SIGNATURE_PROPERTIES_TYPE = DS_NS + "SignatureProperties"

_DIGESTS: dict[str, Callable[[bytes], Any]] = {
    "http://www.w3.org/2001/04/xmlenc#sha256": hashlib.sha256,
    "http://www.w3.org/2001/04/xmldsig-more#sha384": hashlib.sha384,
    "http://www.w3.org/2001/04/xmlenc#sha512": hashlib.sha512,
}
_SHA256_URI = "http://www.w3.org/2001/04/xmlenc#sha256"

_RSA_SHA256_URI = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
_ECDSA_SHA256_URI = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
_SIGNATURE_METHODS: dict[str, tuple[str, hashes.HashAlgorithm]] = {
    _RSA_SHA256_URI: ("rsa", hashes.SHA256()),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": ("rsa", hashes.SHA384()),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": ("rsa", hashes.SHA512()),
    _ECDSA_SHA256_URI: ("ecdsa", hashes.SHA256()),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": ("ecdsa", hashes.SHA384()),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": ("ecdsa", hashes.SHA512()),
}
_SIGNER_ALGORITHMS = {
    ALGORITHM_RSA_SHA256: (_RSA_SHA256_URI, rsa.RSAPublicKey),
    ALGORITHM_ECDSA_SHA256: (_ECDSA_SHA256_URI, ec.EllipticCurvePublicKey),
}

_FUTURE_SKEW = dt.timedelta(minutes=5)
_SLOT_EXTRA_KEYS = {"GVCN": {"SO_CCCD"}, "CBQL": {"SO_CCCD"}, "KY_PHAT_HANH": set()}
_CCCD_RE = re.compile(r"[0-9]{12}")
_SIGNING_TIME_TAGS = (f"{{{HB_NS}}}SigningTime", "SigningTime")
_ID_ATTRIBUTES = etree.XPath(
    "//*/@*[local-name()='Id' or local-name()='ID' or local-name()='id']", smart_strings=False
)
_ATTRIBUTE_VALUES = etree.XPath("//@*", smart_strings=False)


@cache
def _ds(name: str) -> str:
    return f"{{{DS_NS}}}{name}"


def _children(parent: etree._Element, tag: str) -> list[etree._Element]:
    """Child elements with this exact (Clark-notation) tag; C-level filtering."""
    return list(parent.iterchildren(tag))


def _child(parent: etree._Element, *path: str) -> etree._Element | None:
    """First child along ``path`` (like ``find("A/B")`` without the ElementPath cost)."""
    element: etree._Element | None = parent
    for tag in path:
        element = next(element.iterchildren(tag), None)
        if element is None:
            return None
    return element


def _index(parent: etree._Element) -> dict[object, list[etree._Element]]:
    """The children of ``parent`` grouped by tag, in document order (one pass instead of one
    ``iterchildren(tag)`` per tag looked up; comments and PIs have non-string tags)."""
    found: dict[object, list[etree._Element]] = {}
    for child in parent:
        tag = child.tag
        group = found.get(tag)
        if group is None:
            found[tag] = [child]
        else:
            group.append(child)
    return found


def _first(index: dict[object, list[etree._Element]], tag: str) -> etree._Element | None:
    """Like :func:`_child` (first child with ``tag``), on an :func:`_index`."""
    group = index.get(tag)
    return group[0] if group else None


def _only(index: dict[object, list[etree._Element]], tag: str) -> etree._Element | None:
    """The child with ``tag`` when there is exactly one, on an :func:`_index`."""
    group = index.get(tag)
    return group[0] if group is not None and len(group) == 1 else None


def _both(
    element: etree._Element, first: str, second: str
) -> tuple[etree._Element, etree._Element, dict[object, list[etree._Element]]] | None:
    """``element``'s only ``ds:first`` and only ``ds:second`` children and its
    :func:`_index`; None when either is missing or repeated (a malformed signature)."""
    index = _index(element)
    one, two = _only(index, _ds(first)), _only(index, _ds(second))
    return None if one is None or two is None else (one, two, index)


def _text(element: etree._Element | None) -> str | None:
    return None if element is None else element.text


class XmlSignatureError(HocbaError):
    """Signing could not be done (bad input document, slot already signed, expired
    certificate...). ``message_vi`` is a Vietnamese message for people."""

    def __init__(self, message_vi: str, details: Sequence[str] = ()) -> None:
        self.message_vi = message_vi
        self.details = tuple(details)
        super().__init__(message_vi if not details else f"{message_vi}: {'; '.join(details)}")


class IssueCode(StrEnum):
    """Stable verification issue codes (see the module docstring)."""

    XML_INVALID = "XML_INVALID"
    STRUCTURE_INVALID = "STRUCTURE_INVALID"
    DATA_ID_AMBIGUOUS = "DATA_ID_AMBIGUOUS"
    SIGNATURE_MISSING = "SIGNATURE_MISSING"
    SIGNATURE_MULTIPLE = "SIGNATURE_MULTIPLE"
    SIGNATURE_MALFORMED = "SIGNATURE_MALFORMED"
    ALGORITHM_UNSUPPORTED = "ALGORITHM_UNSUPPORTED"
    REFERENCE_INVALID = "REFERENCE_INVALID"
    WRONG_SLOT = "WRONG_SLOT"
    DIGEST_MISMATCH_DATA = "DIGEST_MISMATCH_DATA"
    DIGEST_MISMATCH_PROPERTIES = "DIGEST_MISMATCH_PROPERTIES"
    SIGNATURE_VALUE_INVALID = "SIGNATURE_VALUE_INVALID"
    SIGNING_TIME_MISSING = "SIGNING_TIME_MISSING"
    SIGNING_TIME_INVALID = "SIGNING_TIME_INVALID"
    SIGNING_TIME_IN_FUTURE = "SIGNING_TIME_IN_FUTURE"
    CERTIFICATE_MISSING = "CERTIFICATE_MISSING"
    CERTIFICATE_INVALID = "CERTIFICATE_INVALID"
    CERTIFICATE_UNTRUSTED = "CERTIFICATE_UNTRUSTED"
    CERTIFICATE_EXPIRED = "CERTIFICATE_EXPIRED"
    CERTIFICATE_NOT_YET_VALID = "CERTIFICATE_NOT_YET_VALID"
    CERTIFICATE_KEY_USAGE = "CERTIFICATE_KEY_USAGE"
    CERTIFICATE_REVOKED = "CERTIFICATE_REVOKED"
    CRL_INVALID = "CRL_INVALID"
    SIGNER_ID_MISMATCH = "SIGNER_ID_MISMATCH"
    NGAY_KY_MISMATCH = "NGAY_KY_MISMATCH"
    SLOT_CCCD_MISMATCH = "SLOT_CCCD_MISMATCH"
    SIGNING_ORDER_INVALID = "SIGNING_ORDER_INVALID"
    # warnings
    SIGNER_ID_UNCHECKED = "SIGNER_ID_UNCHECKED"
    CERTIFICATE_REVOKED_LATER = "CERTIFICATE_REVOKED_LATER"
    KEYINFO_SUBJECT_MISMATCH = "KEYINFO_SUBJECT_MISMATCH"


_MESSAGES_VI: dict[IssueCode, str] = {
    IssueCode.XML_INVALID: "Tệp XML học bạ không hợp lệ",
    IssueCode.STRUCTURE_INVALID: "Cấu trúc học bạ không đúng đặc tả",
    IssueCode.DATA_ID_AMBIGUOUS: (
        'Có phần tử khác cũng mang Id="data" (nghi ngờ tấn công bọc chữ ký)'
    ),
    IssueCode.SIGNATURE_MISSING: "Ô ký chưa có chữ ký số",
    IssueCode.SIGNATURE_MULTIPLE: "Ô ký có nhiều hơn một chữ ký số",
    IssueCode.SIGNATURE_MALFORMED: "Chữ ký số sai cấu trúc XMLDSig",
    IssueCode.ALGORITHM_UNSUPPORTED: "Thuật toán trong chữ ký không được chấp nhận",
    IssueCode.REFERENCE_INVALID: ("Chữ ký phải tham chiếu đúng #data và thời điểm ký của chính nó"),
    IssueCode.WRONG_SLOT: "Chữ ký này thuộc một ô ký khác (đã bị chuyển chỗ)",
    IssueCode.DIGEST_MISMATCH_DATA: "Dữ liệu học bạ đã bị thay đổi sau khi ký",
    IssueCode.DIGEST_MISMATCH_PROPERTIES: "Thời điểm ký đã bị thay đổi sau khi ký",
    IssueCode.SIGNATURE_VALUE_INVALID: "Giá trị chữ ký số không hợp lệ",
    IssueCode.SIGNING_TIME_MISSING: "Chữ ký thiếu thời điểm ký (SigningTime)",
    IssueCode.SIGNING_TIME_INVALID: "Thời điểm ký không đúng định dạng",
    IssueCode.SIGNING_TIME_IN_FUTURE: "Thời điểm ký nằm trong tương lai",
    IssueCode.CERTIFICATE_MISSING: "Chữ ký không kèm chứng thư số",
    IssueCode.CERTIFICATE_INVALID: "Không đọc được chứng thư số trong chữ ký",
    IssueCode.KEYINFO_SUBJECT_MISMATCH: (
        "Tên chủ thể (X509SubjectName) không khớp với chứng thư số kèm theo"
    ),
    IssueCode.CERTIFICATE_UNTRUSTED: ("Chứng thư số không do tổ chức chứng thực tin cậy cấp"),
    IssueCode.CERTIFICATE_EXPIRED: "Chứng thư số đã hết hạn tại thời điểm ký",
    IssueCode.CERTIFICATE_NOT_YET_VALID: "Chứng thư số chưa có hiệu lực tại thời điểm ký",
    IssueCode.CERTIFICATE_KEY_USAGE: "Chứng thư số không được phép dùng để ký",
    IssueCode.CERTIFICATE_REVOKED: "Chứng thư số đã bị thu hồi trước thời điểm ký",
    IssueCode.CRL_INVALID: "Danh sách chứng thư thu hồi (CRL) không hợp lệ",
    IssueCode.SIGNER_ID_MISMATCH: "Người ký không khớp với thông tin trong học bạ",
    IssueCode.SIGNING_ORDER_INVALID: ("Thứ tự ký không đúng (GVCN, rồi CBQL, rồi ký phát hành)"),
    IssueCode.SIGNER_ID_UNCHECKED: (
        "Không đối chiếu được người ký với học bạ (chứng thư không ghi CCCD/mã trường)"
    ),
    IssueCode.CERTIFICATE_REVOKED_LATER: "Chứng thư số đã bị thu hồi sau thời điểm ký",
    IssueCode.NGAY_KY_MISMATCH: "NGAY_KY trong ô ký khác thời điểm ký đã ký",
    IssueCode.SLOT_CCCD_MISMATCH: "SO_CCCD trong ô ký khác CCCD trong chứng thư số",
}


@dataclass(frozen=True)
class VerificationIssue:
    """One finding of a verification: a stable ``code`` and a Vietnamese message."""

    code: IssueCode
    message_vi: str
    detail: str = ""

    @classmethod
    def of(cls, code: IssueCode, detail: str = "") -> VerificationIssue:
        """Build an issue with the standard Vietnamese message for ``code``."""
        return cls(code, _MESSAGES_VI[code], detail)


@dataclass
class SlotVerification:
    """Result of verifying the signature in one slot (GVCN, CBQL or KY_PHAT_HANH)."""

    slot: str
    ok: bool = False
    certificate: x509.Certificate | None = None
    signing_time: dt.datetime | None = None
    errors: list[VerificationIssue] = field(default_factory=list)
    warnings: list[VerificationIssue] = field(default_factory=list)

    @property
    def error_codes(self) -> list[IssueCode]:
        """The codes of :attr:`errors`, for quick assertions and logs."""
        return [issue.code for issue in self.errors]


@dataclass
class RecordSignaturesVerification:
    """Result of verifying all slots of a record plus the order of signing times."""

    ok: bool
    slots: dict[str, SlotVerification]
    errors: list[VerificationIssue] = field(default_factory=list)


# =============================================================================== helpers
def _c14n(element: etree._Element, algorithm: str, prefixes: list[str] | None = None) -> bytes:
    """Canonical XML 1.0 or Exclusive XML Canonicalization 1.0 of a subtree."""
    return etree.tostring(
        element,
        method="c14n",
        exclusive=algorithm in (_EXC_C14N, _EXC_C14N_WC),
        with_comments=algorithm.endswith("#WithComments"),
        inclusive_ns_prefixes=prefixes,
    )


def _inclusive_prefixes(method_element: etree._Element) -> list[str] | None:
    inclusive = _child(method_element, f"{{{_EC_NS}}}InclusiveNamespaces")
    if inclusive is None:
        return None
    return (inclusive.get("PrefixList") or "").split() or None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str | None) -> bytes:
    return base64.b64decode("".join((text or "").split()), validate=True)


_T = TypeVar("_T")


class _IdentityCache:
    """Results of pure functions of immutable objects (certificates, CRLs), keyed by the
    objects' *identity*: hashing or comparing a certificate by value costs microseconds per
    call, more than most of what is cached. Each entry keeps its objects alive, so their
    ids cannot be reused by other objects while the entry exists. When ``maxsize`` entries
    are held the oldest is dropped. Equal but distinct objects simply get their own entry.
    """

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._entries: dict[tuple[Hashable, ...], tuple[tuple[object, ...], Any]] = {}
        self._lock = threading.Lock()

    def get(
        self, objects: tuple[object, ...], compute: Callable[[], _T], extra: Hashable = None
    ) -> _T:
        """``compute()``, or its earlier result for the same ``objects`` and ``extra``."""
        key = (extra, *map(id, objects))
        entry = self._entries.get(key)
        if entry is not None:
            return entry[1]  # type: ignore[no-any-return]
        value = compute()
        with self._lock:
            while len(self._entries) >= self._maxsize:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = (objects, value)
        return value


@lru_cache(maxsize=4096)
def _certificate_from_b64(text: str) -> x509.Certificate:
    """An X509Certificate element's text (base64 DER, whitespace allowed), parsed once.

    ``cryptography`` parses lazily; a damaged certificate would then fail deep inside the
    verification (duplicate extensions, a bad key). Everything the verifier reads is
    touched here, so any damage is one ``ValueError`` (CERTIFICATE_INVALID)."""
    try:
        certificate = x509.load_der_x509_certificate(_b64decode(text))
        certificate.public_key()
        _ = certificate.subject, certificate.issuer, list(certificate.extensions)
        _ = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    except ValueError:
        raise
    except Exception as exc:  # DuplicateExtension, UnsupportedAlgorithm...
        raise ValueError(f"chứng thư số hỏng: {type(exc).__name__}") from None
    return certificate


def _subject_ids(certificate: x509.Certificate, prefix: str) -> set[str]:
    """Values like ``CCCD:<12 digits>`` or ``MATRUONG:<code>`` in serialNumber or UID."""
    found: set[str] = set()
    for oid in (NameOID.SERIAL_NUMBER, NameOID.USER_ID):
        for attribute in certificate.subject.get_attributes_for_oid(oid):
            value = str(attribute.value).strip()
            if value.upper().startswith(prefix + ":"):
                found.add(value[len(prefix) + 1 :].strip())
    return found


def _parse_signing_time(text: str | None) -> dt.datetime | None:
    try:
        value = dt.datetime.fromisoformat((text or "").strip())
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


_CHAIN_CACHE = _IdentityCache(1024)
_NAME_CACHE = _IdentityCache(4096)
_FACTS_CACHE = _IdentityCache(4096)
_CRL_CACHE = _IdentityCache(16)


def _trusted_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
) -> Sequence[x509.Certificate] | None:
    """:func:`~hocba.pki.chain.build_chain`, computed once per (leaf, X509Data
    certificates, roots) objects; verifying many records with the same root objects
    reuses the chain."""
    return _CHAIN_CACHE.get(
        (leaf, *intermediates, *roots),
        partial(_build_chain_tuple, leaf, intermediates, roots),
        extra=len(intermediates),
    )


def _build_chain_tuple(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
) -> tuple[x509.Certificate, ...] | None:
    chain = build_chain(leaf, intermediates, roots)
    return None if chain is None else tuple(chain)


def _name_matches(text: str, certificate: x509.Certificate) -> bool:
    """Does an X509SubjectName string (RFC 4514, either RDN order) name ``certificate``?"""
    return _NAME_CACHE.get((certificate,), partial(_compute_name_matches, text, certificate), text)


def _compute_name_matches(text: str, certificate: x509.Certificate) -> bool:
    try:
        name = x509.Name.from_rfc4514_string(text.strip())
    except ValueError:
        return False
    subject = certificate.subject
    return name == subject or x509.Name(list(reversed(name.rdns))) == subject


@dataclass(frozen=True)
class _CertificateFacts:
    """What verification needs from a certificate, computed once per certificate."""

    public_key: object
    key_id: bytes | None  # signer.public_key_id (None: neither RSA nor EC)
    subject: str
    not_before: dt.datetime
    not_after: dt.datetime
    may_sign: bool
    cccd: frozenset[str]
    school_codes: frozenset[str]


def _facts(certificate: x509.Certificate) -> _CertificateFacts:
    return _FACTS_CACHE.get((certificate,), partial(_compute_facts, certificate))


def _compute_facts(certificate: x509.Certificate) -> _CertificateFacts:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        may_sign = usage.digital_signature or usage.content_commitment
    except x509.ExtensionNotFound:
        may_sign = True  # RFC 5280 §4.2.1.3: no keyUsage extension, no restriction
    public_key = certificate.public_key()
    return _CertificateFacts(
        public_key=public_key,
        key_id=public_key_id(public_key),
        subject=certificate.subject.rfc4514_string(),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        may_sign=may_sign,
        cccd=frozenset(_subject_ids(certificate, "CCCD")),
        school_codes=frozenset(_subject_ids(certificate, "MATRUONG")),
    )


# =============================================================================== document
class _Document:
    """One parsed record plus what several slot verifications can share."""

    def __init__(self, root: etree._Element) -> None:
        self.root = root
        # every attribute value of the document: a superset of its Id values, read by one
        # XPath without predicates (less than half the time of the Id scan itself)
        self._values: list[str] = _ATTRIBUTE_VALUES(root)  # type: ignore[assignment]
        self._ids: Counter[str] | None = None
        self.data: etree._Element | None = None
        self.structure_error: VerificationIssue | None = None
        self._digests: dict[tuple[str, str, tuple[str, ...] | None], bytes] = {}
        self._zone: etree._Element | None = None
        self._general: etree._Element | None = None
        self._fields: dict[str, str | None] = {}
        if root.tag != "HOC_BA":
            self.structure_error = VerificationIssue.of(
                IssueCode.STRUCTURE_INVALID, f"phần tử gốc là {root.tag}"
            )
            return
        blocks = _children(root, "DU_LIEU_HOC_BA")
        if len(blocks) != 1 or blocks[0].get("Id") != DATA_ID:
            self.structure_error = VerificationIssue.of(
                IssueCode.STRUCTURE_INVALID, 'cần đúng một DU_LIEU_HOC_BA Id="data" dưới HOC_BA'
            )
            return
        if not self.single_id(DATA_ID):  # DU_LIEU_HOC_BA carries one
            self.structure_error = VerificationIssue.of(
                IssueCode.DATA_ID_AMBIGUOUS, f'{self.ids[DATA_ID]} phần tử mang Id="data"'
            )
            return
        self.data = blocks[0]

    @property
    def ids(self) -> Counter[str]:
        """Every Id / ID / id attribute value of the document (any namespace), counted;
        scanned on first use."""
        if self._ids is None:
            self._ids = Counter(_ID_ATTRIBUTES(self.root))  # type: ignore[arg-type]
        return self._ids

    def single_id(self, value: str) -> bool:
        """Given that an Id attribute carries ``value``: is it the only one in the document
        (``ids[value] == 1``)? Answered without the Id scan when no other attribute at
        all has this value."""
        return self._values.count(value) == 1 or self.ids[value] == 1

    def add_signature(self, values: list[str], ids: Counter[str]) -> None:
        """Account for a signature element just added (its attribute values and Ids)."""
        self._values.extend(values)
        if self._ids is not None:
            self._ids.update(ids)

    def data_digest(self, c14n: str, prefixes: list[str] | None, digest_uri: str) -> bytes:
        key = (c14n, digest_uri, tuple(prefixes) if prefixes else None)
        if key not in self._digests:
            assert self.data is not None
            self._digests[key] = _DIGESTS[digest_uri](_c14n(self.data, c14n, prefixes)).digest()
        return self._digests[key]

    def slot(self, slot: str) -> etree._Element | None:
        """``DANH_SACH_THONG_TIN_KY/<slot>`` (first of each), like ``_child(root, ...)``."""
        if self._zone is None:
            self._zone = _child(self.root, "DANH_SACH_THONG_TIN_KY")
            if self._zone is None:
                return None
        return _child(self._zone, slot)

    def field(self, name: str) -> str | None:
        """``THONG_TIN_CHUNG/<name>``'s stripped text (read once per document)."""
        if name in self._fields:
            return self._fields[name]
        assert self.data is not None
        if self._general is None:
            self._general = _child(self.data, "THONG_TIN_CHUNG")
            if self._general is None:
                return None
        element = _child(self._general, name)
        value = element.text.strip() if element is not None and element.text else None
        self._fields[name] = value
        return value


# =============================================================================== signing
def _signature_template(
    slot: str, signer: Signer, signing_time_text: str, method_uri: str
) -> etree._Element:
    """A complete ds:Signature for ``slot`` except the #data DigestValue and SignatureValue."""
    signature = etree.Element(_ds("Signature"), nsmap={"ds": DS_NS}, Id=f"sig-{slot}")
    signed_info = _add_signed_info(signature, slot, method_uri)
    etree.SubElement(signature, _ds("SignatureValue"))
    x509_data = etree.SubElement(etree.SubElement(signature, _ds("KeyInfo")), _ds("X509Data"))
    etree.SubElement(
        x509_data, _ds("X509SubjectName")
    ).text = signer.certificate.subject.rfc4514_string()
    for certificate in [signer.certificate, *signer.chain]:
        if certificate is not signer.certificate and certificate.subject == certificate.issuer:
            continue  # roots are trust anchors, not sent
        etree.SubElement(x509_data, _ds("X509Certificate")).text = _b64(
            certificate.public_bytes(serialization.Encoding.DER)
        )
    properties = _add_signature_properties(signature, slot, signing_time_text)
    signed_info[3].find(_ds("DigestValue")).text = _b64(  # type: ignore[union-attr]
        hashlib.sha256(_c14n(properties, _EXC_C14N)).digest()
    )
    return signature


def _add_signed_info(signature: etree._Element, slot: str, method_uri: str) -> etree._Element:
    """The ``SignedInfo`` of ``slot``'s signature (DigestValues empty), added to ``signature``."""
    signed_info = etree.SubElement(signature, _ds("SignedInfo"))
    etree.SubElement(signed_info, _ds("CanonicalizationMethod"), Algorithm=_EXC_C14N)
    etree.SubElement(signed_info, _ds("SignatureMethod"), Algorithm=method_uri)
    for uri, type_ in ((f"#{DATA_ID}", None), (f"#st-{slot}", _SIGNATURE_PROPERTIES_TYPE)):
        reference = etree.SubElement(signed_info, _ds("Reference"), URI=uri)
        if type_:
            reference.set("Type", type_)
        transforms = etree.SubElement(reference, _ds("Transforms"))
        etree.SubElement(transforms, _ds("Transform"), Algorithm=_EXC_C14N)
        etree.SubElement(reference, _ds("DigestMethod"), Algorithm=_SHA256_URI)
        etree.SubElement(reference, _ds("DigestValue"))
    return signed_info


def _add_signature_properties(
    signature: etree._Element, slot: str, signing_time_text: str
) -> etree._Element:
    """The ``ds:Object`` holding ``slot``'s SigningTime, added to ``signature``; returns its
    ``SignatureProperties`` (the element the second Reference covers)."""
    obj = etree.SubElement(signature, _ds("Object"))
    properties = etree.SubElement(obj, _ds("SignatureProperties"), Id=f"st-{slot}")
    prop = etree.SubElement(properties, _ds("SignatureProperty"), Target=f"#sig-{slot}")
    etree.SubElement(prop, f"{{{HB_NS}}}SigningTime", nsmap={"hb": HB_NS}).text = signing_time_text
    return properties


_HASHLIB: dict[str, Callable[[bytes], Any]] = {
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}


def _check_public_signature(
    public_key: object,
    method_uri: str,
    signed_info_c14n: bytes,
    value: bytes,
    key_id: bytes | None = None,
) -> bool:
    """XMLDSig 1.1 §6.4: RSASSA-PKCS1-v1_5 or ECDSA with ``r || s`` values, over the hash of
    the canonical ``SignedInfo`` (``hocba.pki.signer.verify_signature_value``: a value this
    process already found valid for the same key and digest, e.g. when signing it, is not
    checked again; what is checked here is not remembered)."""
    kind, hash_algorithm = _SIGNATURE_METHODS[method_uri]
    digest = _HASHLIB[hash_algorithm.name](signed_info_c14n).digest()
    return verify_signature_value(
        public_key, kind, hash_algorithm, digest, value, key_id, remember=False
    )


def sign_slots(
    documents: Sequence[bytes],
    slot: str,
    signer: Signer,
    signing_time: dt.datetime,
    extra: dict[str, str] | None = None,
    *,
    check_certificate_validity: bool = True,
) -> list[bytes]:
    """Sign ``slot`` of every document with one ``signer.sign_digests`` call.

    For each document: parse it safely, check the layout (one ``DU_LIEU_HOC_BA Id="data"``
    under the root, no other ``Id="data"``, the slot present and empty), build the
    ``ds:Signature`` (References to ``#data`` and ``#st-<slot>``, exclusive c14n, SHA-256),
    hash the canonical ``SignedInfo``. Then sign all digests in one batch, check every
    returned value with the certificate's public key, insert the ``SignatureValue`` and add
    the slot's unsigned ``NGAY_KY`` (= signing time) and, for GVCN/CBQL, ``SO_CCCD`` from
    ``extra``.

    ``signing_time`` must be timezone-aware; it is written as ``YYYY-MM-DDThh:mm:ss+07:00``.
    With ``check_certificate_validity`` (default) signing is refused when the certificate
    is not valid at ``signing_time``. The documents are not validated against the XSD
    (``build_record_xml`` already did). Raises :class:`XmlSignatureError`; errors of the
    backend propagate as :class:`~hocba.pki.signer.SigningError`.
    """
    if slot not in SIGNATURE_SLOTS:
        raise XmlSignatureError(f"Ô ký không tồn tại: {slot!r}", SIGNATURE_SLOTS)
    extra = dict(extra or {})
    unknown = sorted(set(extra) - _SLOT_EXTRA_KEYS[slot])
    if unknown:
        raise XmlSignatureError(f"Thông tin không thuộc ô ký {slot}", unknown)
    if "SO_CCCD" in extra and not _CCCD_RE.fullmatch(extra["SO_CCCD"]):
        raise XmlSignatureError("SO_CCCD phải gồm đúng 12 chữ số", [extra["SO_CCCD"]])
    try:
        signing_time_text = format_datetime(signing_time)
    except RecordXmlError as exc:
        raise XmlSignatureError(exc.message_vi, exc.details) from None
    if signer.algorithm not in _SIGNER_ALGORITHMS:
        raise XmlSignatureError("Thuật toán ký không được hỗ trợ", [signer.algorithm])
    method_uri, key_class = _SIGNER_ALGORITHMS[signer.algorithm]
    public_key = signer.certificate.public_key()
    if not isinstance(public_key, key_class):
        raise XmlSignatureError("Thuật toán ký không khớp loại khoá của chứng thư số")
    certificate = signer.certificate
    if check_certificate_validity and not (
        certificate.not_valid_before_utc <= signing_time <= certificate.not_valid_after_utc
    ):
        raise XmlSignatureError(
            "Chứng thư số không còn hiệu lực tại thời điểm ký",
            [
                f"hiệu lực {certificate.not_valid_before_utc.isoformat()} → "
                f"{certificate.not_valid_after_utc.isoformat()}",
                f"thời điểm ký {signing_time_text}",
            ],
        )
    template = _signature_template(slot, signer, signing_time_text, method_uri)
    # the canonical SignedInfo of every signature of this call is this template's, with the
    # document's #data digest in it (the same bytes the verifier's fast path rebuilds)
    before_data, between, after, _, _ = _canonical_templates(slot, method_uri)
    properties_digest = template[0][3].find(_ds("DigestValue")).text  # type: ignore[union-attr]
    assert properties_digest is not None
    after_data = between + properties_digest.encode("ascii") + after
    key_id = public_key_id(public_key)
    empty_slot = f"<{slot}/>".encode()

    template_ids = Counter(_ID_ATTRIBUTES(template))
    template_values: list[str] = _ATTRIBUTE_VALUES(template)  # type: ignore[assignment]
    roots: list[etree._Element] = []
    slot_elements: list[etree._Element] = []
    splices: list[tuple[bytes, int, int] | None] = []
    parsed_documents: list[_Document] = []
    signature_values: list[etree._Element] = []
    canonical_signed_infos: list[bytes] = []
    for index, data in enumerate(documents):
        try:
            root, document, kept = _document_of(data)
        except RecordXmlError as exc:
            raise XmlSignatureError(
                f"Học bạ thứ {index + 1}: {exc.message_vi}", exc.details
            ) from None
        if document.structure_error is not None or document.data is None:
            issue = document.structure_error
            raise XmlSignatureError(
                f"Học bạ thứ {index + 1}: {issue.message_vi if issue else ''}",
                [issue.detail] if issue else [],
            )
        slot_element = _child(root, "DANH_SACH_THONG_TIN_KY", slot)
        if slot_element is None:
            raise XmlSignatureError(f"Học bạ thứ {index + 1}: không có ô ký {slot}")
        if len(slot_element) or (slot_element.text or "").strip():
            raise XmlSignatureError(f"Học bạ thứ {index + 1}: ô ký {slot} đã được ký")
        signature = copy.deepcopy(template)
        data_digest = _b64(document.data_digest(_EXC_C14N, None, _SHA256_URI))
        signature[0][2].find(_ds("DigestValue")).text = data_digest  # type: ignore[union-attr]
        splices.append(
            _splice_point(data, empty_slot) if kept and slot_element.text is None else None
        )
        slot_element.text = None
        slot_element.append(signature)
        etree.SubElement(slot_element, "NGAY_KY").text = signing_time_text
        if "SO_CCCD" in extra:
            etree.SubElement(slot_element, "SO_CCCD").text = extra["SO_CCCD"]
        canonical_signed_infos.append(before_data + data_digest.encode("ascii") + after_data)
        document.add_signature(template_values, template_ids)
        roots.append(root)
        slot_elements.append(slot_element)
        parsed_documents.append(document)
        signature_values.append(signature[1])

    if not roots:
        return []
    digests = [hashlib.sha256(c14n).digest() for c14n in canonical_signed_infos]
    values = signer.sign_digests(digests)
    if len(values) != len(digests):
        raise XmlSignatureError(
            "Dịch vụ ký trả về số chữ ký không khớp số học bạ",
            [f"{len(values)} ≠ {len(digests)}"],
        )
    kind, hash_algorithm = _SIGNATURE_METHODS[method_uri]
    output: list[bytes] = []
    for index, (root, slot_element, splice, value_element, digest, value) in enumerate(
        zip(roots, slot_elements, splices, signature_values, digests, values, strict=True)
    ):
        # the backend may have checked it already (signer.verify_signature_value remembers)
        if not verify_signature_value(public_key, kind, hash_algorithm, digest, value, key_id):
            raise XmlSignatureError(
                f"Học bạ thứ {index + 1}: chữ ký do thiết bị/dịch vụ ký trả về không hợp lệ"
            )
        value_element.text = _b64(value)
        if splice is None:
            output.append(_XML_HEADER + etree.tostring(root, encoding="UTF-8"))
        else:
            previous, start, stop = splice
            slot_bytes = etree.tostring(slot_element, encoding="UTF-8", with_tail=False)
            output.append(
                b"".join((previous[:start], slot_bytes, previous[start + len(empty_slot) : stop]))
            )
    for data, root, document in zip(output, roots, parsed_documents, strict=True):
        keep_parsed(data, root, document)  # for the next slot, or the seal's verification
    return output


_XML_HEADER = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_ZONE_START, _ROOT_END = b"<DANH_SACH_THONG_TIN_KY>", b"</HOC_BA>"


def _splice_point(data: bytes, empty_slot: bytes) -> tuple[bytes, int, int] | None:
    """Where, in bytes that are exactly ``_XML_HEADER`` + the serialisation of their kept
    tree (``build_record_xml``'s or this module's output; build_record_xml adds a final
    newline), the empty slot ``<SLOT/>`` is: (the bytes, its offset, the end of the root
    element). The signed slot's own serialisation then replaces it, giving the bytes a
    full serialisation of the tree would give (tests/tasks/test_xmldsig_reuse.py) without
    serialising the whole document again. ``None`` (serialise it all) unless the marker is
    found exactly once in the signature zone, which is the last part of the document."""
    if not data.startswith(_XML_HEADER):
        return None
    zone = data.rfind(_ZONE_START)
    if zone < 0:
        return None
    start = data.find(empty_slot, zone)
    if start < 0 or data.find(empty_slot, start + len(empty_slot)) >= 0:
        return None
    stop = data.rfind(_ROOT_END)
    if stop < start:
        return None
    return data, start, stop + len(_ROOT_END)


def _document_of(data: bytes) -> tuple[etree._Element, _Document, bool]:
    """The parsed tree of ``data``, its :class:`_Document` and whether it was kept: the one
    ``build_record_xml`` or ``sign_slots`` kept for this very bytes object (see
    ``record.keep_parsed``), else ``parse_record_xml_safely`` (raises
    :class:`RecordXmlError`)."""
    kept = take_parsed(data)
    if kept is not None:
        root, document = kept
        if isinstance(document, _Document) and document.root is root:
            return root, document, True
        return root, _Document(root), True
    root = parse_record_xml_safely(data)
    return root, _Document(root), False


# =============================================================================== verifying
def verify_slot(
    document: bytes,
    slot: str,
    trusted_roots: Sequence[x509.Certificate],
    *,
    crls: Sequence[x509.CertificateRevocationList] = (),
) -> SlotVerification:
    """Verify the signature in ``slot`` on its own (XMLDSig core validation + X.509).

    Checks: the slot holds exactly one ``ds:Signature``; its ``SignedInfo`` references
    exactly ``#data`` — resolved only to the ``DU_LIEU_HOC_BA`` child of the root, with no
    other ``Id="data"`` anywhere — and its own ``st-<slot>`` SigningTime container; both
    digests; the ``SignatureValue``; a chain from the signing certificate to one of
    ``trusted_roots`` (directly or through CA certificates in X509Data); validity of every
    chain certificate *at the signing time*; keyUsage; revocation against ``crls`` (a
    revocation at or before the signing time is an error, a later one a warning); that
    the certificate's CCCD (GVCN, CBQL) or school code (KY_PHAT_HANH) matches the data.
    Never raises for a bad document: problems are reported in ``errors``.
    """
    if slot not in SIGNATURE_SLOTS:
        raise XmlSignatureError(f"Ô ký không tồn tại: {slot!r}", SIGNATURE_SLOTS)
    try:
        root = parse_record_xml_safely(document)
    except RecordXmlError as exc:
        result = SlotVerification(slot=slot)
        result.errors.append(VerificationIssue.of(IssueCode.XML_INVALID, str(exc)))
        return result
    return _verify_slot(_Document(root), slot, trusted_roots, crls)


def verify_record_signatures(
    document: bytes,
    trusted_roots: Sequence[x509.Certificate],
    *,
    slots: Sequence[str] = SIGNATURE_SLOTS,
    crls: Sequence[x509.CertificateRevocationList] = (),
) -> RecordSignaturesVerification:
    """Verify every slot in ``slots`` (parsing once) and the order of their signing times.

    ``ok`` is true when every listed slot verifies and the signing times are in the order
    GVCN ≤ CBQL ≤ KY_PHAT_HANH (HOCBA_SPEC §4). Whether each signer held the role at that
    time is a database question, answered by the caller.
    """
    if isinstance(document, bytes) and not holds_parsed(document):
        sealed = _verify_sealed_bytes(document, trusted_roots, slots, crls)
        if sealed is not None:
            return sealed
    try:
        _, parsed, _ = _document_of(document)
    except RecordXmlError as exc:
        issue = VerificationIssue.of(IssueCode.XML_INVALID, str(exc))
        return RecordSignaturesVerification(
            ok=False,
            slots={s: SlotVerification(slot=s, errors=[issue]) for s in slots},
            errors=[issue],
        )
    source = document if isinstance(document, bytes) else None
    return _verify_record(parsed, trusted_roots, slots, crls, source)


def verify_record_tree(
    root: etree._Element,
    trusted_roots: Sequence[x509.Certificate],
    *,
    slots: Sequence[str] = SIGNATURE_SLOTS,
    crls: Sequence[x509.CertificateRevocationList] = (),
    source: bytes | None = None,
) -> RecordSignaturesVerification:
    """:func:`verify_record_signatures` of a tree that ``parse_record_xml_safely`` returned
    (and nobody changed since): for a caller that needs the tree itself too and so parses
    the bytes once (``hocba.xml.verify.verify_document``). ``source``: the bytes the tree
    was parsed from, if the caller has them (the signature zone is then read from them)."""
    return _verify_record(_Document(root), trusted_roots, slots, crls, source)


def _verify_record(
    parsed: _Document,
    trusted_roots: Sequence[x509.Certificate],
    slots: Sequence[str],
    crls: Sequence[x509.CertificateRevocationList],
    source: bytes | None = None,
) -> RecordSignaturesVerification:
    done = {} if source is None else _verify_zone_bytes(parsed, source, slots, trusted_roots, crls)
    results = {
        slot: done[slot] if slot in done else _verify_slot(parsed, slot, trusted_roots, crls)
        for slot in slots
    }
    return _record_result(results)


def _record_result(results: dict[str, SlotVerification]) -> RecordSignaturesVerification:
    """The slots' results and the order of their signing times."""
    errors: list[VerificationIssue] = []
    previous: SlotVerification | None = None
    for slot in SIGNATURE_SLOTS:
        current = results.get(slot)
        if current is None or current.signing_time is None:
            continue
        if previous is not None and previous.signing_time is not None:
            if current.signing_time < previous.signing_time:
                errors.append(
                    VerificationIssue.of(
                        IssueCode.SIGNING_ORDER_INVALID, f"{slot} ký trước {previous.slot}"
                    )
                )
        previous = current
    ok = not errors and all(r.ok for r in results.values())
    return RecordSignaturesVerification(ok=ok, slots=results, errors=errors)


def _verify_slot(
    document: _Document,
    slot: str,
    trusted_roots: Sequence[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList],
) -> SlotVerification:
    if document.structure_error is None:
        result = _verify_slot_fast(document, slot, trusted_roots, crls)
        if result is not None:
            return result
    return _verify_slot_full(document, slot, trusted_roots, crls)


# ------------------------------------------------------------------ fast path (issue 14)
# A signature exactly as sign_slots writes it is verified by comparing canonical forms
# with what sign_slots would have written, instead of reading SignedInfo element by
# element; any other signature, and any signature with an error or a warning, goes through
# _verify_slot_full, which alone writes errors and warnings. The fast path therefore only
# ever answers "ok, no warnings", and only when _verify_slot_full would answer exactly that
# (tests/tasks/test_xmldsig_fast.py compares the two on damaged documents).
_MARK_DATA, _MARK_PROPERTIES, _MARK_TIME = "@HB-DATA@", "@HB-PROPERTIES@", "@HB-TIME@"
_SIGNATURE_CHILDREN = (_ds("SignedInfo"), _ds("SignatureValue"), _ds("KeyInfo"), _ds("Object"))
_X509_DATA, _X509_CERTIFICATE = _ds("X509Data"), _ds("X509Certificate")
_X509_SUBJECT_NAME, _OBJECT = _ds("X509SubjectName"), _ds("Object")
_SIGNATURE = _ds("Signature")
_SIGNER_CACHE = _IdentityCache(1024)


@cache
def _canonical_templates(slot: str, method_uri: str) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """The exclusive canonical ``SignedInfo`` and ``SignatureProperties`` that
    :func:`sign_slots` writes for ``slot`` and ``method_uri``, cut where the ``#data``
    digest, the SigningTime digest (base64) and the signing time go."""
    signature = etree.Element(_ds("Signature"), nsmap={"ds": DS_NS}, Id=f"sig-{slot}")
    signed_info = _add_signed_info(signature, slot, method_uri)
    for reference, mark in zip(signed_info[2:], (_MARK_DATA, _MARK_PROPERTIES), strict=True):
        reference.find(_ds("DigestValue")).text = mark  # type: ignore[union-attr]
    properties = _add_signature_properties(signature, slot, _MARK_TIME)
    before_data, rest = _c14n(signed_info, _EXC_C14N).split(_MARK_DATA.encode())
    between, after = rest.split(_MARK_PROPERTIES.encode())
    before_time, after_time = _c14n(properties, _EXC_C14N).split(_MARK_TIME.encode())
    return before_data, between, after, before_time, after_time


@dataclass(frozen=True)
class _SignerState:
    """What a KeyInfo says, checked against given roots and CRLs, when it has nothing to
    report at any signing time: the certificate verification uses (parsed, the
    X509SubjectName one), a chain to a root, keyUsage allows signing, no CRL of the issuer
    is bad or lists it. Left to check per signature: the validity windows of the chain."""

    certificate: x509.Certificate
    public_key: object
    key_id: bytes | None
    windows: tuple[tuple[dt.datetime, dt.datetime], ...]
    cccd: frozenset[str]
    school_codes: frozenset[str]


def _signer_state(
    subject: str | None,
    texts: tuple[str, ...],
    roots: Sequence[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList],
) -> _SignerState | None:
    """:func:`_compute_signer_state`, once per (X509SubjectName and X509Certificate texts,
    root objects, CRL objects): a new root list or a new CRL object is checked afresh."""
    return _SIGNER_CACHE.get(
        (*roots, *crls),
        partial(_compute_signer_state, subject, texts, roots, crls),
        extra=(subject, texts, len(roots)),
    )


def _compute_signer_state(
    subject: str | None,
    texts: tuple[str, ...],
    roots: Sequence[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList],
) -> _SignerState | None:
    """The same steps and functions as :func:`_verify_slot_full`; ``None`` as soon as one of
    them would report something."""
    if not texts:
        return None
    try:
        certificates = [_certificate_from_b64(text) for text in texts]
    except (binascii.Error, ValueError):
        return None
    certificate = certificates[0]
    if subject is not None:
        named = [c for c in certificates if _name_matches(subject, c)]
        if not named:
            return None
        certificate = named[0]
    chain = _trusted_chain(certificate, certificates, roots)
    facts = _facts(certificate)
    if chain is None or not facts.may_sign:
        return None
    if len(chain) > 1:
        probe = SlotVerification(slot="")
        # no signing time: any listing at all is reported (CERTIFICATE_REVOKED)
        _check_revocation(chain[0], chain[1], None, crls, probe)
        if probe.errors or probe.warnings:
            return None
    return _SignerState(
        certificate=certificate,
        public_key=facts.public_key,
        key_id=facts.key_id,
        windows=tuple((f.not_before, f.not_after) for f in map(_facts, chain)),
        cccd=facts.cccd,
        school_codes=facts.school_codes,
    )


def _verify_slot_fast(
    document: _Document,
    slot: str,
    trusted_roots: Sequence[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList],
) -> SlotVerification | None:
    """An ok result without warnings for a slot laid out exactly as :func:`sign_slots`
    writes it (``ds:Signature``, ``NGAY_KY``, ``SO_CCCD`` except for the seal; the
    signature's children, SignedInfo and SignatureProperties as sign_slots writes them,
    without comments; after them only further ``ds:Object`` elements, as
    ``add_signature_timestamps`` adds) when every check passes; else ``None``: ask
    :func:`_verify_slot_full`."""
    slot_element = document.slot(slot)
    if slot_element is None:
        return None
    slot_cccd: str | None = None
    if slot == "KY_PHAT_HANH":
        if len(slot_element) != 2:
            return None
        signature, ngay_ky_element = slot_element
    else:
        if len(slot_element) != 3:
            return None
        signature, ngay_ky_element, cccd_element = slot_element
        if cccd_element.tag != "SO_CCCD":
            return None
        slot_cccd = cccd_element.text
    if signature.tag != _SIGNATURE or ngay_ky_element.tag != "NGAY_KY":
        return None
    if len(signature) < 4:
        return None
    signed_info, value_element, key_info, obj, *more = signature
    if (signed_info.tag, value_element.tag, key_info.tag, obj.tag) != _SIGNATURE_CHILDREN:
        return None
    if any(extra.tag != _OBJECT for extra in more):  # RFC 3161 tokens: one ds:Object each
        return None
    if len(signed_info) != 4 or len(obj) != 1:
        return None
    method_uri = signed_info[1].get("Algorithm")
    if method_uri not in _SIGNATURE_METHODS:
        return None
    before_data, between, after, before_time, after_time = _canonical_templates(slot, method_uri)

    # ---- the SigningTime: the only Id st-<slot> of the document, as sign_slots writes it
    properties = obj[0]
    property_id = f"st-{slot}"
    if properties.get("Id") != property_id or not document.single_id(property_id):
        return None
    if len(properties) != 1 or len(properties[0]) != 1:
        return None
    time_element = properties[0][0]
    time_text = time_element.text
    if time_text is None or len(time_element):
        return None
    canonical_properties = etree.tostring(
        properties, method="c14n", exclusive=True, with_comments=True
    )
    if canonical_properties != before_time + time_text.encode() + after_time:
        return None
    signing_time = _parse_signing_time(time_text)
    if signing_time is None or signing_time > dt.datetime.now(dt.UTC) + _FUTURE_SKEW:
        return None

    # ---- SignedInfo: sign_slots' own, with the digests computed here
    canonical_signed_info = etree.tostring(
        signed_info, method="c14n", exclusive=True, with_comments=True
    )
    expected = b"".join(
        (
            before_data,
            base64.b64encode(document.data_digest(_EXC_C14N, None, _SHA256_URI)),
            between,
            base64.b64encode(hashlib.sha256(canonical_properties).digest()),
            after,
        )
    )
    if canonical_signed_info != expected:
        return None

    # ---- the certificate (cached per KeyInfo texts, roots and CRLs)
    x509_data = next(key_info.iterchildren(_X509_DATA), None)
    if x509_data is None:
        return None
    texts: list[str] = []
    subject: str | None = None
    for child in x509_data:
        tag = child.tag
        if tag == _X509_CERTIFICATE:
            texts.append(child.text or "")
        elif tag == _X509_SUBJECT_NAME and subject is None:
            subject = child.text or ""
    return _check_signer(
        document,
        slot,
        subject,
        tuple(texts),
        slot_cccd,
        ngay_ky_element.text,
        signing_time,
        time_text,
        value_element.text or "",
        method_uri,
        canonical_signed_info,
        trusted_roots,
        crls,
    )


def _check_signer(
    document: _Document,
    slot: str,
    subject: str | None,
    texts: tuple[str, ...],
    slot_cccd: str | None,
    ngay_ky: str | None,
    signing_time: dt.datetime,
    time_text: str,
    value_text: str,
    method_uri: str,
    canonical_signed_info: bytes,
    trusted_roots: Sequence[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList],
) -> SlotVerification | None:
    """The fast paths' checks after the layout, the SigningTime and ``SignedInfo``: what
    the KeyInfo says (``subject``: the first X509SubjectName's text, ``texts``: the
    X509Certificate texts), the signer named in the data, the unsigned ``NGAY_KY`` and
    ``SO_CCCD`` texts, the ``SignatureValue`` over ``canonical_signed_info``.
    ``signing_time`` is the SigningTime ``time_text`` says."""
    state = _signer_state(subject, texts, trusted_roots, crls)
    if state is None:
        return None
    # the windows are UTC (not_valid_*_utc): compared with a UTC datetime, an instant
    # compares field by field instead of through utcoffset() (~1 µs per comparison)
    instant = signing_time.astimezone(dt.UTC)
    for not_before, not_after in state.windows:
        if instant < not_before or instant > not_after:
            return None

    # ---- the signer is the person/school the data names; NGAY_KY is the signing time
    if slot == "KY_PHAT_HANH":
        expected_id, in_certificate = document.field("MA_TRUONG"), state.school_codes
    else:
        name = "SO_CCCD_GIAO_VIEN_CHU_NHIEM" if slot == "GVCN" else "SO_CCCD_GIAM_HIEU_KY_HOC_BA"
        expected_id, in_certificate = document.field(name), state.cccd
        if slot_cccd and slot_cccd not in in_certificate:
            return None
    if expected_id is not None and expected_id not in in_certificate:
        return None
    # (the same text as the SigningTime's is the same time: sign_slots writes both)
    if (
        ngay_ky is not None
        and ngay_ky != time_text
        and _parse_signing_time(ngay_ky) != signing_time
    ):
        return None

    # ---- the SignatureValue over the canonical SignedInfo (no comments in it: the same
    # bytes as without comments)
    try:  # strict base64 (what sign_slots writes) is valid for _b64decode, same bytes
        value = binascii.a2b_base64(value_text, strict_mode=True)
    except (binascii.Error, ValueError):
        try:
            value = _b64decode(value_text)  # e.g. wrapped lines
        except (binascii.Error, ValueError):
            return None
    if not _check_public_signature(
        state.public_key, method_uri, canonical_signed_info, value, state.key_id
    ):
        return None
    return SlotVerification(
        slot=slot, ok=True, certificate=state.certificate, signing_time=signing_time
    )


# ------------------------------------------------------- the signature zone's bytes (issue 14)
# The bytes a record was parsed from, when their signature zone is exactly what
# build_record_xml and sign_slots write (three slots, each a ds:Signature as sign_slots
# serialises it, NGAY_KY and, for GVCN and CBQL, SO_CCCD, then the end of the document),
# say what the zone's tree is without walking it: every element, attribute and namespace
# declaration is a literal of the pattern, the variable texts hold no "<", and the zone
# holds no "&" or CR, so each text reads as written. The canonical SignedInfo and
# SignatureProperties are then the templates with those texts in them, and each slot goes
# through the same checks as _verify_slot_fast (_check_signer). A zone that differs in any
# byte, and any slot that does not pass, is left to _verify_slot (tree fast path, then the
# full check); tests/tasks/test_xmldsig_fast.py compares the three.
_ZONE_OPEN = b"<DANH_SACH_THONG_TIN_KY>"
_XML_SPACE = rb"[ \t\n]*"  # between the zone's elements, as build_record_xml indents them
_MARK_METHOD, _MARK_VALUE = "@HB-METHOD@", "@HB-VALUE@"
_MARK_SUBJECT, _MARK_CERTIFICATES = "@HB-SUBJECT@", "@HB-CERTIFICATES@"
# The texts: printable ASCII and tab / LF (base64, times, digits) or, for X509SubjectName,
# any character but the C0 controls other than tab / LF; never "<", "&" or ">". Each reads
# as written (no reference, no CR to normalise), is canonical as written, and cannot end a
# comment, CDATA section or PI, nor be a character XML forbids (but U+FFFE / U+FFFF in the
# name, checked where it is decoded).
_ASCII_TEXT = rb"[\t\n\x20-\x25\x27-\x3b\x3d\x3f-\x7e]*"
_NAME_TEXT = rb"[^<&>\x00-\x08\x0b-\x1f]*"
_RAW_CERTIFICATE_OPEN = b"<ds:X509Certificate>"
_RAW_CERTIFICATE_CLOSE = b"</ds:X509Certificate>"


def _marked_signature(slot: str, method_uri: str) -> etree._Element:
    """``slot``'s ``ds:Signature`` with the elements of :func:`_signature_template` (one
    X509Certificate), a mark in each text."""
    signature = etree.Element(_ds("Signature"), nsmap={"ds": DS_NS}, Id=f"sig-{slot}")
    signed_info = _add_signed_info(signature, slot, method_uri)
    for reference, mark in zip(signed_info[2:], (_MARK_DATA, _MARK_PROPERTIES), strict=True):
        reference.find(_ds("DigestValue")).text = mark  # type: ignore[union-attr]
    etree.SubElement(signature, _ds("SignatureValue")).text = _MARK_VALUE
    x509_data = etree.SubElement(etree.SubElement(signature, _ds("KeyInfo")), _ds("X509Data"))
    etree.SubElement(x509_data, _ds("X509SubjectName")).text = _MARK_SUBJECT
    etree.SubElement(x509_data, _ds("X509Certificate")).text = _MARK_CERTIFICATES
    _add_signature_properties(signature, slot, _MARK_TIME)
    return signature


def _raw_signature_pattern(slot: str) -> bytes:
    """The regular expression of ``slot``'s ``ds:Signature`` as :func:`sign_slots` serialises
    it (the elements of :func:`_signature_template`, one X509SubjectName, one or more
    X509Certificate), with named groups for what varies."""
    pattern = re.escape(etree.tostring(_marked_signature(slot, _MARK_METHOD)))
    text = _ASCII_TEXT
    methods = b"|".join(re.escape(uri.encode()) for uri, _ in _SIGNER_ALGORITHMS.values())
    certificates = re.escape(_RAW_CERTIFICATE_OPEN) + text + re.escape(_RAW_CERTIFICATE_CLOSE)
    for mark, group in (
        (_MARK_METHOD, b"(?P<%s_method>" + methods + b")"),
        (_MARK_DATA, b"(?P<%s_data>" + text + b")"),
        (_MARK_PROPERTIES, b"(?P<%s_properties>" + text + b")"),
        (_MARK_VALUE, b"(?P<%s_value>" + text + b")"),
        (_MARK_SUBJECT, b"(?P<%s_subject>" + _NAME_TEXT + b")"),
        (_MARK_TIME, b"(?P<%s_time>" + text + b")"),
    ):
        escaped = re.escape(mark.encode())
        assert pattern.count(escaped) == 1
        pattern = pattern.replace(escaped, group % slot.encode())
    element = re.escape(
        _RAW_CERTIFICATE_OPEN + _MARK_CERTIFICATES.encode() + _RAW_CERTIFICATE_CLOSE
    )
    assert pattern.count(element) == 1
    return pattern.replace(
        element, b"(?P<%s_certificates>(?:" % slot.encode() + certificates + b")+)"
    )


@cache
def _raw_zone_pattern() -> re.Pattern[bytes]:
    """The signature zone of a sealed record as :func:`sign_slots` leaves it, to the end of
    the document (see above)."""
    parts = [re.escape(_ZONE_OPEN)]
    for slot in SIGNATURE_SLOTS:
        name = slot.encode()
        parts += [
            _XML_SPACE,
            re.escape(b"<%s>" % name),
            _raw_signature_pattern(slot),
            b"<NGAY_KY>(?P<%s_ngay_ky>%s)</NGAY_KY>" % (name, _ASCII_TEXT),
            b""
            if slot == "KY_PHAT_HANH"
            else b"<SO_CCCD>(?P<%s_cccd>%s)</SO_CCCD>" % (name, _ASCII_TEXT),
            re.escape(b"</%s>" % name),
        ]
    parts += [_XML_SPACE, rb"</DANH_SACH_THONG_TIN_KY>", _XML_SPACE, rb"</HOC_BA>", _XML_SPACE]
    return re.compile(b"".join(parts) + rb"\Z")


def _verify_zone_bytes(
    document: _Document,
    source: bytes,
    slots: Sequence[str],
    trusted_roots: Sequence[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList],
) -> dict[str, SlotVerification]:
    """The ok results, without warnings, of the slots in ``slots`` whose signature passes
    every check, read from ``source``: the bytes ``document`` was parsed from (or that are
    the serialisation of its tree). Slots not in the answer are for :func:`_verify_slot`.

    The zone found here is the root's last child: it runs from the last ``<DANH_SACH_
    THONG_TIN_KY>`` of the bytes to the root's end tag and the end of the document, and
    nothing in it can close a comment, CDATA section or PI opened before it; with exactly
    two children under the root (``DU_LIEU_HOC_BA`` and it), it is the zone
    ``document.slot`` reads."""
    root = document.root
    if document.structure_error is not None or len(root) != 2:
        return {}
    found = _match_zone(source)
    if found is None:
        return {}
    results: dict[str, SlotVerification] = {}
    for slot in slots:
        result = _verify_slot_bytes(document, slot, found, trusted_roots, crls)
        if result is not None:
            results[slot] = result
    return results


def _verify_sealed_bytes(
    source: bytes,
    trusted_roots: Sequence[x509.Certificate],
    slots: Sequence[str],
    crls: Sequence[x509.CertificateRevocationList],
) -> RecordSignaturesVerification | None:
    """:func:`verify_record_signatures` of bytes whose signature zone :func:`_match_zone`
    matches, parsing only what comes before the zone, when every slot in ``slots`` passes;
    None otherwise (parse it all and verify as usual).

    The bytes up to the zone, closed by ``</HOC_BA>``, are well-formed exactly when the
    whole document is: the zone is one element of the pattern's literals and texts that
    cannot end a comment, CDATA section, PI or tag opened before it (no "<", "&", ">"),
    followed by the root's end tag and spaces; so it is the root's last child (the full
    parse's ``len(root) == 2``, here 1) and the tree of the head is the document's tree
    without it. ``parse_record_xml_safely``'s checks all concern the head (DOCTYPE, the
    encoding, comments in the data) but the size, checked on the whole here. The zone's
    attribute values (Ids ``sig-<slot>``, ``st-<slot>``) are added to the document's, as
    :func:`sign_slots` does when it adds a signature."""
    if len(source) > DEFAULT_MAX_BYTES:
        return None
    found = _match_zone(source)
    if found is None:
        return None
    try:
        root = parse_record_xml_safely(source[: int(found[""])] + _ROOT_END)
    except RecordXmlError:
        return None
    document = _Document(root)
    if document.structure_error is not None or len(root) != 1:
        return None
    for slot in SIGNATURE_SLOTS:
        document.add_signature(*_zone_attributes(slot, found[f"{slot}_method"].decode()))
    results: dict[str, SlotVerification] = {}
    for slot in slots:
        result = _verify_slot_bytes(document, slot, found, trusted_roots, crls)
        if result is None:
            return None
        results[slot] = result
    return _record_result(results)


def _match_zone(source: bytes) -> dict[str, bytes] | None:
    """The groups of :func:`_raw_zone_pattern` matched from the last ``<DANH_SACH_THONG_TIN_KY>``
    of ``source`` to its end (with the zone's offset under ``""``), or None."""
    start = source.rfind(_ZONE_OPEN)
    if start < 0:
        return None
    match = _raw_zone_pattern().match(source, start)
    if match is None:
        return None
    found: dict[str, bytes] = match.groupdict()
    found[""] = b"%d" % start
    return found


@cache
def _zone_attributes(slot: str, method_uri: str) -> tuple[list[str], Counter[str]]:
    """The attribute values and Id counts of ``slot``'s signature as sign_slots writes it
    with ``method_uri`` (what :meth:`_Document.add_signature` takes)."""
    signature = _marked_signature(slot, method_uri)
    values: list[str] = _ATTRIBUTE_VALUES(signature)  # type: ignore[assignment]
    return values, Counter(_ID_ATTRIBUTES(signature))  # type: ignore[arg-type]


def _verify_slot_bytes(
    document: _Document,
    slot: str,
    found: dict[str, bytes],
    trusted_roots: Sequence[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList],
) -> SlotVerification | None:
    """:func:`_verify_slot_fast` of one slot of a zone :func:`_verify_zone_bytes` matched
    (``found``: the pattern's groups)."""
    if slot not in SIGNATURE_SLOTS:
        return None
    method_uri = found[f"{slot}_method"].decode()
    before_data, between, after, before_time, after_time = _canonical_templates(slot, method_uri)

    # ---- the SigningTime: the only Id st-<slot> of the document; canonical as written
    # (no "&", CR or "<" in it; ">" would be escaped by canonicalisation)
    time_bytes = found[f"{slot}_time"]
    if b">" in time_bytes or not document.single_id(f"st-{slot}"):
        return None
    time_text = time_bytes.decode()
    signing_time = _parse_signing_time(time_text)
    if signing_time is None or signing_time > dt.datetime.now(dt.UTC) + _FUTURE_SKEW:
        return None
    canonical_properties = before_time + time_bytes + after_time

    # ---- SignedInfo: sign_slots' own, with the digests computed here
    data_digest = base64.b64encode(document.data_digest(_EXC_C14N, None, _SHA256_URI))
    properties_digest = base64.b64encode(hashlib.sha256(canonical_properties).digest())
    if found[f"{slot}_data"] != data_digest or found[f"{slot}_properties"] != properties_digest:
        return None
    canonical_signed_info = b"".join((before_data, data_digest, between, properties_digest, after))

    # ---- KeyInfo, the unsigned slot fields, the SignatureValue (as the tree fast path)
    certificates = found[f"{slot}_certificates"]
    texts = certificates[len(_RAW_CERTIFICATE_OPEN) : -len(_RAW_CERTIFICATE_CLOSE)].split(
        _RAW_CERTIFICATE_CLOSE + _RAW_CERTIFICATE_OPEN
    )
    cccd = found.get(f"{slot}_cccd")
    ngay_ky = found[f"{slot}_ngay_ky"]
    try:
        subject = found[f"{slot}_subject"].decode()
    except UnicodeDecodeError:  # not UTF-8: not well-formed (_verify_sealed_bytes' parse)
        return None
    if "\ufffe" in subject or "\uffff" in subject:  # not XML characters
        return None
    return _check_signer(
        document,
        slot,
        subject,
        tuple(text.decode() for text in texts),
        cccd.decode() or None if cccd is not None else None,
        ngay_ky.decode() or None,
        signing_time,
        time_text,
        found[f"{slot}_value"].decode(),
        method_uri,
        canonical_signed_info,
        trusted_roots,
        crls,
    )


def _verify_slot_full(
    document: _Document,
    slot: str,
    trusted_roots: Sequence[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList],
) -> SlotVerification:
    """Every check of :func:`verify_slot`, with its errors and warnings."""
    result = SlotVerification(slot=slot)
    errors, warnings = result.errors, result.warnings

    def fail(code: IssueCode, detail: str = "") -> SlotVerification:
        errors.append(VerificationIssue.of(code, detail))
        return result

    if document.structure_error is not None:
        return fail(document.structure_error.code, document.structure_error.detail)
    slot_element = document.slot(slot)
    if slot_element is None:
        return fail(IssueCode.STRUCTURE_INVALID, f"thiếu DANH_SACH_THONG_TIN_KY/{slot}")
    slot_children = _index(slot_element)
    signatures = slot_children.get(_ds("Signature"), [])
    if not signatures:
        return fail(IssueCode.SIGNATURE_MISSING, slot)
    if len(signatures) > 1:
        return fail(IssueCode.SIGNATURE_MULTIPLE, f"{len(signatures)} chữ ký")
    signature = signatures[0]

    # ---- structure of ds:Signature (XMLDSig §4)
    found = _both(signature, "SignedInfo", "SignatureValue")
    if found is None:
        return fail(IssueCode.SIGNATURE_MALFORMED, "SignedInfo/SignatureValue")
    signed_info, value_element, signature_children = found
    found = _both(signed_info, "CanonicalizationMethod", "SignatureMethod")
    if found is None:
        return fail(IssueCode.SIGNATURE_MALFORMED, "CanonicalizationMethod/SignatureMethod")
    c14n_element, method_element, signed_info_children = found
    c14n_uri = c14n_element.get("Algorithm", "")
    method_uri = method_element.get("Algorithm", "")
    if c14n_uri not in _C14N_ALGORITHMS:
        return fail(IssueCode.ALGORITHM_UNSUPPORTED, c14n_uri)
    if method_uri not in _SIGNATURE_METHODS:
        return fail(IssueCode.ALGORITHM_UNSUPPORTED, method_uri)

    # ---- references: exactly #data and this signature's own SigningTime container
    own_property_id = f"st-{slot}"
    references = signed_info_children.get(_ds("Reference"), [])
    uris = [reference.get("URI") for reference in references]
    data_uri = f"#{DATA_ID}"
    property_uris = [u for u in uris if u and u != data_uri]
    if uris.count(data_uri) != 1 or len(references) != 2 or len(property_uris) != 1:
        return fail(IssueCode.REFERENCE_INVALID, ", ".join(str(u) for u in uris))
    property_uri = property_uris[0]
    if property_uri != f"#{own_property_id}":
        match = re.fullmatch(r"#st-(.+)", property_uri)
        if match and match.group(1) in SIGNATURE_SLOTS:
            errors.append(
                VerificationIssue.of(IssueCode.WRONG_SLOT, f"chữ ký của ô {match.group(1)}")
            )
        else:
            return fail(IssueCode.REFERENCE_INVALID, property_uri)
    owned = [
        element
        for obj in signature_children.get(_ds("Object"), [])
        for element in obj.iter()
        if element.get("Id") == property_uri[1:]
    ]
    properties = owned[0] if len(owned) == 1 else None
    if properties is None or document.ids[property_uri[1:]] != 1:
        return fail(IssueCode.REFERENCE_INVALID, f"{property_uri} không thuộc chữ ký này")

    for reference in references:
        is_data = reference.get("URI") == data_uri
        found = _both(reference, "DigestMethod", "DigestValue")
        if found is None:
            return fail(IssueCode.SIGNATURE_MALFORMED, "DigestMethod/DigestValue")
        digest_method, digest_value, reference_children = found
        digest_uri = digest_method.get("Algorithm", "")
        if digest_uri not in _DIGESTS:
            return fail(IssueCode.ALGORITHM_UNSUPPORTED, digest_uri)
        transforms = _first(reference_children, _ds("Transforms"))
        transform_list = [] if transforms is None else list(transforms)
        if len(transform_list) > 1 or any(
            t.tag != _ds("Transform") or t.get("Algorithm") not in _C14N_ALGORITHMS
            for t in transform_list
        ):
            return fail(
                IssueCode.ALGORITHM_UNSUPPORTED,
                " ".join(str(t.get("Algorithm")) for t in transform_list),
            )
        transform_uri = transform_list[0].get("Algorithm", "") if transform_list else _C14N10
        prefixes = _inclusive_prefixes(transform_list[0]) if transform_list else None
        if is_data:
            computed = document.data_digest(transform_uri, prefixes, digest_uri)
        else:
            computed = _DIGESTS[digest_uri](_c14n(properties, transform_uri, prefixes)).digest()
        try:
            expected = _b64decode(digest_value.text)
        except (binascii.Error, ValueError):
            expected = b""
        if computed != expected:
            errors.append(
                VerificationIssue.of(
                    IssueCode.DIGEST_MISMATCH_DATA
                    if is_data
                    else IssueCode.DIGEST_MISMATCH_PROPERTIES,
                    str(reference.get("URI")),
                )
            )

    # ---- signing time (signed, in this signature's own ds:Object)
    times = [e for e in properties.iter() if e.tag in _SIGNING_TIME_TAGS]
    if len(times) != 1:
        errors.append(VerificationIssue.of(IssueCode.SIGNING_TIME_MISSING))
    else:
        result.signing_time = _parse_signing_time(times[0].text)
        if result.signing_time is None:
            errors.append(VerificationIssue.of(IssueCode.SIGNING_TIME_INVALID, str(times[0].text)))
        elif result.signing_time > dt.datetime.now(dt.UTC) + _FUTURE_SKEW:
            errors.append(
                VerificationIssue.of(IssueCode.SIGNING_TIME_IN_FUTURE, str(times[0].text))
            )

    # ---- certificate from KeyInfo/X509Data
    key_info = _first(signature_children, _ds("KeyInfo"))
    x509_data = None if key_info is None else _child(key_info, _ds("X509Data"))
    x509_children = {} if x509_data is None else _index(x509_data)
    certificate_texts = x509_children.get(_ds("X509Certificate"), [])
    if not certificate_texts:
        return fail(IssueCode.CERTIFICATE_MISSING)
    try:
        certificates = [_certificate_from_b64(e.text or "") for e in certificate_texts]
    except (binascii.Error, ValueError) as exc:
        return fail(IssueCode.CERTIFICATE_INVALID, str(exc))
    certificate = certificates[0]
    subject_names = x509_children.get(_ds("X509SubjectName"), [])
    if subject_names:
        named = [c for c in certificates if _name_matches(subject_names[0].text or "", c)]
        if named:
            certificate = named[0]
        else:
            # KeyInfo is not signed: the name is a hint, the key that verifies is what counts
            warnings.append(
                VerificationIssue.of(IssueCode.KEYINFO_SUBJECT_MISMATCH, str(subject_names[0].text))
            )
    result.certificate = certificate

    # ---- SignatureValue over the canonical SignedInfo
    try:
        value = _b64decode(value_element.text)
    except (binascii.Error, ValueError):
        value = b""
    facts = _facts(certificate)
    signed_info_c14n = _c14n(signed_info, c14n_uri, _inclusive_prefixes(c14n_element))
    if not _check_public_signature(
        facts.public_key, method_uri, signed_info_c14n, value, facts.key_id
    ):
        errors.append(VerificationIssue.of(IssueCode.SIGNATURE_VALUE_INVALID))

    # ---- X.509: chain, validity at signing time, key usage, revocation (RFC 5280 §6)
    chain = _trusted_chain(certificate, certificates, trusted_roots)
    if chain is None:
        errors.append(
            VerificationIssue.of(
                IssueCode.CERTIFICATE_UNTRUSTED, certificate.issuer.rfc4514_string()
            )
        )
    signing_time = result.signing_time
    if signing_time is not None:
        for cert_facts in map(_facts, chain or [certificate]):
            if signing_time < cert_facts.not_before:
                errors.append(
                    VerificationIssue.of(IssueCode.CERTIFICATE_NOT_YET_VALID, cert_facts.subject)
                )
            elif signing_time > cert_facts.not_after:
                errors.append(
                    VerificationIssue.of(IssueCode.CERTIFICATE_EXPIRED, cert_facts.subject)
                )
    if not facts.may_sign:
        errors.append(VerificationIssue.of(IssueCode.CERTIFICATE_KEY_USAGE))
    if chain is not None and len(chain) > 1:
        _check_revocation(chain[0], chain[1], signing_time, crls, result)

    # ---- the signer is the person/school the data names
    _check_signer_identity(document, slot, _text(_first(slot_children, "SO_CCCD")), facts, result)
    ngay_ky = _text(_first(slot_children, "NGAY_KY"))
    if ngay_ky is not None and signing_time is not None:
        if _parse_signing_time(ngay_ky) != signing_time:
            errors.append(VerificationIssue.of(IssueCode.NGAY_KY_MISMATCH, ngay_ky))
    result.ok = not errors
    return result


@dataclass(frozen=True)
class _CrlView:
    """What a CRL says for certificates of one issuer, computed once per (CRL, issuer)."""

    issuer: str
    revoked: dict[int, dt.datetime] | None  # serial → revocation date; None: bad signature


def _crl_view(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> _CrlView | None:
    """None when ``crl`` is not ``issuer``'s (name) or its key cannot check CRLs."""
    if crl.issuer != issuer.subject:
        return None
    public_key = issuer.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return None
    name = crl.issuer.rfc4514_string()
    if not crl.is_signature_valid(public_key):
        return _CrlView(name, None)
    revoked: dict[int, dt.datetime] = {}
    for entry in crl:  # like get_revoked_certificate_by_serial_number: the first entry wins
        revoked.setdefault(entry.serial_number, entry.revocation_date_utc)
    return _CrlView(name, revoked)


def crl_revocation_dates(
    crl: x509.CertificateRevocationList, issuer: x509.Certificate
) -> dict[int, dt.datetime] | None:
    """What ``crl`` says for certificates of ``issuer``: serial number → revocation date;
    ``None`` when it is not a CRL issued and validly signed by ``issuer``. Computed once per
    (CRL object, issuer) — the CRL's signature check and its table — and shared with the
    revocation check of :func:`verify_record_signatures` (``hocba.xml.verify`` reads it)."""
    view = _CRL_CACHE.get((crl, issuer), partial(_crl_view, crl, issuer))
    return None if view is None else view.revoked


def _check_revocation(
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    signing_time: dt.datetime | None,
    crls: Sequence[x509.CertificateRevocationList],
    result: SlotVerification,
) -> None:
    """RFC 5280 §6.3 (simplified): complete CRLs issued directly by the certificate's CA."""
    serial_number: int | None = None
    for crl in crls:
        view = _CRL_CACHE.get((crl, issuer), partial(_crl_view, crl, issuer))
        if view is None:
            continue
        if view.revoked is None:
            result.errors.append(VerificationIssue.of(IssueCode.CRL_INVALID, view.issuer))
            continue
        if serial_number is None:
            serial_number = certificate.serial_number
        when = view.revoked.get(serial_number)
        if when is None:
            continue
        if signing_time is None or when <= signing_time:
            result.errors.append(
                VerificationIssue.of(IssueCode.CERTIFICATE_REVOKED, when.isoformat())
            )
        else:
            result.warnings.append(
                VerificationIssue.of(IssueCode.CERTIFICATE_REVOKED_LATER, when.isoformat())
            )


def _check_signer_identity(
    document: _Document,
    slot: str,
    slot_cccd: str | None,
    facts: _CertificateFacts,
    result: SlotVerification,
) -> None:
    """Compare the certificate's CCCD / school code with the signed data."""
    if slot == "KY_PHAT_HANH":
        expected, prefix = document.field("MA_TRUONG"), "MATRUONG"
        in_certificate = facts.school_codes
    else:
        name = "SO_CCCD_GIAO_VIEN_CHU_NHIEM" if slot == "GVCN" else "SO_CCCD_GIAM_HIEU_KY_HOC_BA"
        expected, prefix = document.field(name), "CCCD"
        in_certificate = facts.cccd
    if expected is not None:
        if not in_certificate:
            result.warnings.append(VerificationIssue.of(IssueCode.SIGNER_ID_UNCHECKED, prefix))
        elif expected not in in_certificate:
            result.errors.append(
                VerificationIssue.of(
                    IssueCode.SIGNER_ID_MISMATCH, f"{prefix} {sorted(in_certificate)} ≠ {expected}"
                )
            )
    # the slot's SO_CCCD names the signer: a certificate without that CCCD (another
    # person's, or one naming no person at all) does not match it
    if slot != "KY_PHAT_HANH" and slot_cccd and slot_cccd not in in_certificate:
        result.errors.append(VerificationIssue.of(IssueCode.SLOT_CCCD_MISMATCH, slot_cccd))
