"""RFC 3161 time-stamps on the signed record: signature timestamps and archive timestamps.

Why: a Học bạ must stay verifiable for decades, after its signers' certificates expire or
are revoked. A time-stamp token from a trusted time-stamping authority (TSA) proves that a
signature value existed at the token's ``genTime``; the verifier then judges the
certificate (validity, revocation) *at that time* instead of at the signer's own claim.

Standards: RFC 3161 (Time-Stamp Protocol) and RFC 5816 (ESSCertIDv2), RFC 5652 (CMS),
ETSI EN 319 132-1 (XAdES) for the shape of the unsigned properties, W3C Exclusive XML
Canonicalization 1.0.

**Signature timestamp** (XAdES-T style, one per slot). After the slot's ``ds:Signature`` is
made, the exclusive-c14n of its ``ds:SignatureValue`` element is hashed (SHA-256) and sent
to the TSA; the token goes into a new ``ds:Object`` of *that* signature, which the
signature does not cover (adding it changes nothing any signature signed)::

    <ds:Signature Id="sig-CBQL"> ... SignedInfo, SignatureValue, KeyInfo, Object(st-CBQL)
      <ds:Object>
        <xades:QualifyingProperties Target="#sig-CBQL">     xmlns:xades=ETSI 1.3.2
          <xades:UnsignedProperties><xades:UnsignedSignatureProperties>
            <xades:SignatureTimeStamp Id="ts-CBQL">
              <ds:CanonicalizationMethod Algorithm="…xml-exc-c14n#"/>
              <xades:EncapsulatedTimeStamp>base64 DER ContentInfo</xades:EncapsulatedTimeStamp>

(XAdES proper would also need signed ``xades:SignedProperties``; the project's signed
SigningTime property is kept as it is, hence "XAdES-T style".)

**Archive timestamps** (renewal). ``DANH_SACH_THONG_TIN_KY`` may end with an unsigned
``DAU_THOI_GIAN_LUU_TRU`` holding ``xadesv141:ArchiveTimeStamp`` elements ``Id="ats-1"``,
``"ats-2"``... Archive timestamp *k* is over SHA-256 of the concatenation of the exclusive
c14n of ``DU_LIEU_HOC_BA``, ``GVCN``, ``CBQL``, ``KY_PHAT_HANH`` (with their signature
timestamps) and of ``ats-1`` … ``ats-(k-1)``, in that order: everything that existed when
it was made. Each archive timestamp also carries, in ``xades:CertificateValues`` /
``xades:RevocationValues``, the TSA certificates and the OCSP responses the renewal
validated, so the chain of evidence does not depend on servers that may be gone. A
renewal adds one before the newest timestamp's TSA certificate expires
(:func:`add_archive_timestamp`, hocba/flows/timestamps.py).

:class:`TsaClient` talks RFC 3161 over HTTP (one pooled ``httpx`` connection, one request
per digest); any failure is :class:`TimestampUnavailable`, which issuance turns into
"signed at B level, queued for a timestamp" (hocba/tasks/issuance.py).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import httpx
from asn1crypto import cms as asn1_cms
from asn1crypto import tsp as asn1_tsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from lxml import etree

from hocba.errors import HocbaError
from hocba.pki.chain import build_chain
from hocba.xml.dsig import DS_NS
from hocba.xml.record import SIGNATURE_SLOTS, parse_record_xml_safely

__all__ = [
    "ARCHIVE_ZONE",
    "XADES141_NS",
    "XADES_NS",
    "TimestampError",
    "TimestampInfo",
    "TimestampUnavailable",
    "TsaClient",
    "add_archive_timestamp",
    "add_signature_timestamps",
    "archive_digest",
    "archive_timestamps",
    "missing_timestamp_slots",
    "signature_timestamp_digest",
    "signature_timestamps",
    "verify_token",
]

XADES_NS = "http://uri.etsi.org/01903/v1.3.2#"
XADES141_NS = "http://uri.etsi.org/01903/v1.4.1#"
ARCHIVE_ZONE = "DAU_THOI_GIAN_LUU_TRU"
_EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


def _xades(name: str) -> str:
    return f"{{{XADES_NS}}}{name}"


def _ds(name: str) -> str:
    return f"{{{DS_NS}}}{name}"


class TimestampError(HocbaError):
    """A time-stamp token is unusable (bad signature, wrong imprint, untrusted TSA...)."""

    def __init__(self, message_vi: str) -> None:
        super().__init__(message_vi)
        self.message_vi = message_vi


class TimestampUnavailable(TimestampError):
    """The TSA cannot be reached or refuses now: sign at B level and retry later."""


# =========================================================================== the client
def no_delay_transport() -> httpx.HTTPTransport:
    """An HTTP transport with TCP_NODELAY: a request's headers and body go out as two
    writes, and with Nagle's algorithm the second waits for the server's delayed ACK
    (~40 ms per request) — more than the whole time-stamp costs."""
    return httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])


def post_der(http: httpx.Client, url: str, der: bytes, content_type: str) -> bytes:
    """One binary exchange with a TSA or an OCSP responder: the answer's body. Raises
    ``httpx.HTTPError`` when there is none; the caller says what is unavailable."""
    answer = http.post(url, content=der, headers={"Content-Type": content_type})
    answer.raise_for_status()
    return answer.content


class TsaClient:
    """RFC 3161 over HTTP (§3.4) to ``url``, on one pooled connection.

    ``stamp`` asks one token per digest (with a random nonce and ``certReq``) and checks
    each answer's status, imprint and nonce before returning it.
    """

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self._http = httpx.Client(timeout=timeout, transport=no_delay_transport())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> TsaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stamp(self, digests: Sequence[bytes]) -> list[bytes]:
        """One DER ``TimeStampToken`` per SHA-256 digest, in order."""
        return [self._stamp_one(digest) for digest in digests]

    def post(self, request_der: bytes) -> bytes:
        """One raw RFC 3161 exchange: DER TimeStampReq in, DER TimeStampResp out."""
        try:
            return post_der(self._http, self.url, request_der, "application/timestamp-query")
        except httpx.HTTPError as exc:
            raise TimestampUnavailable(
                f"Không lấy được dấu thời gian từ {self.url}: {type(exc).__name__}"
            ) from None

    def _stamp_one(self, digest: bytes) -> bytes:
        nonce = secrets.randbits(63)
        request = asn1_tsp.TimeStampReq(
            {
                "version": "v1",
                "message_imprint": {
                    "hash_algorithm": {"algorithm": "sha256"},
                    "hashed_message": digest,
                },
                "nonce": nonce,
                "cert_req": True,
            }
        )
        try:
            response = asn1_tsp.TimeStampResp.load(self.post(request.dump()))
            status = response["status"]["status"].native
        except (ValueError, TypeError) as exc:
            raise TimestampUnavailable(
                f"Không lấy được dấu thời gian từ {self.url}: {type(exc).__name__}"
            ) from None
        if status not in ("granted", "granted_with_mods"):
            raise TimestampUnavailable(f"Máy chủ dấu thời gian từ chối yêu cầu ({status}).")
        token = response["time_stamp_token"]
        tst_info = _tst_info(token)
        if (
            tst_info["message_imprint"]["hashed_message"].native != digest
            or tst_info["nonce"].native != nonce
        ):
            raise TimestampUnavailable("Dấu thời gian trả về không khớp yêu cầu (nonce/băm).")
        return bytes(token.dump())


# =========================================================================== tokens
@dataclass(frozen=True)
class TimestampInfo:
    """A verified time-stamp token."""

    time: dt.datetime
    tsa_certificate: x509.Certificate
    certificates: tuple[x509.Certificate, ...]

    @property
    def tsa_name(self) -> str:
        names = self.tsa_certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return str(names[0].value) if names else self.tsa_certificate.subject.rfc4514_string()

    @property
    def expires(self) -> dt.datetime:
        """When the TSA certificate expires: renew the evidence before this."""
        return self.tsa_certificate.not_valid_after_utc


def _tst_info(token: asn1_cms.ContentInfo) -> asn1_tsp.TSTInfo:
    if token["content_type"].native != "signed_data":
        raise ValueError("not SignedData")
    content = token["content"]["encap_content_info"]
    if content["content_type"].native != "tst_info":
        raise ValueError("not TSTInfo")
    return asn1_tsp.TSTInfo.load(content["content"].contents)


def _check_cms_signature(
    public_key: object, signature: bytes, data: bytes, algorithm: str, hash_name: str
) -> bool:
    hash_algorithm = _HASHES.get(hash_name)
    if hash_algorithm is None:
        return False
    try:
        if isinstance(public_key, rsa.RSAPublicKey) and algorithm == "rsassa_pkcs1v15":
            public_key.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
            return True
        if isinstance(public_key, ec.EllipticCurvePublicKey) and algorithm == "ecdsa":
            public_key.verify(signature, data, ec.ECDSA(hash_algorithm))
            return True
    except InvalidSignature:
        return False
    return False


@lru_cache(maxsize=8192)
def _parse_token(
    der: bytes,
) -> tuple[dt.datetime, str, bytes, x509.Certificate, tuple[x509.Certificate, ...]]:  # noqa: E501
    """(genTime, imprint hash name, imprint, TSA certificate, all token certificates) after
    checking the CMS signature (RFC 5652 §5.4) and the signing certificate's EKU."""
    try:
        token = asn1_cms.ContentInfo.load(der)
        signed_data = token["content"]
        tst_info = _tst_info(token)
        raw = signed_data["encap_content_info"]["content"].contents
        (signer_info,) = signed_data["signer_infos"]
        certificates = tuple(
            x509.load_der_x509_certificate(c.chosen.dump())
            for c in (signed_data["certificates"] or [])
        )
        sid = signer_info["sid"]
        if sid.name != "issuer_and_serial_number":
            raise ValueError("sid")
        serial = sid.chosen["serial_number"].native
        tsa = next((c for c in certificates if c.serial_number == serial), None)
        if tsa is None:
            raise TimestampError("Dấu thời gian không kèm chứng thư của TSA.")
        attributes = {a["type"].native: a["values"][0] for a in signer_info["signed_attrs"]}
        digest_name = signer_info["digest_algorithm"]["algorithm"].native
        if digest_name not in _HASHES or "message_digest" not in attributes:
            raise ValueError("digest")
        if hashlib.new(digest_name, raw).digest() != attributes["message_digest"].native:
            raise TimestampError("Dấu thời gian bị sửa (messageDigest không khớp).")
        algorithm = signer_info["signature_algorithm"]
        signed = signer_info["signed_attrs"].untag().dump()
        if not _check_cms_signature(
            tsa.public_key(),
            signer_info["signature"].native,
            signed,
            algorithm.signature_algo,
            digest_name,
        ):
            raise TimestampError("Chữ ký của TSA trên dấu thời gian không hợp lệ.")
        imprint = tst_info["message_imprint"]
        gen_time = tst_info["gen_time"].native
    except TimestampError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise TimestampError(f"Không đọc được dấu thời gian ({type(exc).__name__}).") from None
    try:
        usage = tsa.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is None or x509.ExtendedKeyUsageOID.TIME_STAMPING not in usage:
        raise TimestampError("Chứng thư ký dấu thời gian không dành cho TSA (id-kp-timeStamping).")
    return (
        gen_time.astimezone(dt.UTC),
        imprint["hash_algorithm"]["algorithm"].native,
        imprint["hashed_message"].native,
        tsa,
        certificates,
    )


def verify_token(
    der: bytes, message: bytes, trusted_roots: Sequence[x509.Certificate]
) -> TimestampInfo:
    """Check a time-stamp token over ``message`` (the bytes whose hash was stamped): CMS
    signature, imprint, TSA certificate (EKU, chain to ``trusted_roots``, valid at
    ``genTime``). Raises :class:`TimestampError` with a Vietnamese message."""
    gen_time, hash_name, imprint, tsa, certificates = _parse_token(bytes(der))
    if hash_name not in _HASHES or hashlib.new(hash_name, message).digest() != imprint:
        raise TimestampError("Dấu thời gian không phải của chữ ký/dữ liệu này (băm không khớp).")
    if build_chain(tsa, certificates, trusted_roots) is None:
        raise TimestampError("Chứng thư của TSA không do tổ chức chứng thực tin cậy cấp.")
    if not tsa.not_valid_before_utc <= gen_time <= tsa.not_valid_after_utc:
        raise TimestampError("Chứng thư của TSA không còn hiệu lực tại thời điểm đóng dấu.")
    return TimestampInfo(gen_time, tsa, certificates)


# =========================================================================== XML
def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


def _signature(root: etree._Element, slot: str) -> etree._Element | None:
    zone = root.find("DANH_SACH_THONG_TIN_KY")
    element = None if zone is None else zone.find(slot)
    return None if element is None else element.find(_ds("Signature"))


def signature_timestamp_digest(root: etree._Element, slot: str) -> bytes | None:
    """What the signature timestamp of ``slot`` stamps: exc-c14n of its SignatureValue
    (``None`` when the slot is not signed)."""
    signature = _signature(root, slot)
    value = None if signature is None else signature.find(_ds("SignatureValue"))
    return None if value is None else _c14n(value)


def signature_timestamps(root: etree._Element) -> dict[str, list[bytes]]:
    """Slot → DER tokens of its ``xades:SignatureTimeStamp`` elements (usually one)."""
    found: dict[str, list[bytes]] = {}
    for slot in SIGNATURE_SLOTS:
        signature = _signature(root, slot)
        if signature is None:
            continue
        tokens = [
            base64.b64decode("".join((e.text or "").split()))
            for obj in signature.iterchildren(_ds("Object"))
            for e in obj.iter(_xades("EncapsulatedTimeStamp"))
            if e.getparent() is not None and e.getparent().tag == _xades("SignatureTimeStamp")
        ]
        if tokens:
            found[slot] = tokens
    return found


def missing_timestamp_slots(xml: bytes) -> list[str]:
    """Signed slots of ``xml`` that have no signature timestamp yet."""
    root = parse_record_xml_safely(xml)
    stamped = signature_timestamps(root)
    return [s for s in SIGNATURE_SLOTS if _signature(root, s) is not None and s not in stamped]


def add_signature_timestamps(
    documents: Sequence[bytes], client: TsaClient, slots: Sequence[str] | None = None
) -> list[bytes]:
    """Add a signature timestamp to every signed, not yet stamped slot (or only ``slots``)
    of every document; all tokens are asked before any document changes, so a TSA outage
    leaves the input untouched (:class:`TimestampUnavailable` propagates)."""
    roots = [parse_record_xml_safely(d) for d in documents]
    todo: list[tuple[int, str, bytes]] = []
    for index, root in enumerate(roots):
        stamped = signature_timestamps(root)
        for slot in slots or SIGNATURE_SLOTS:
            message = signature_timestamp_digest(root, slot)
            if message is not None and slot not in stamped:
                todo.append((index, slot, message))
    if not todo:
        return list(documents)
    tokens = client.stamp([hashlib.sha256(message).digest() for _, _, message in todo])
    for (index, slot, _), token in zip(todo, tokens, strict=True):
        _insert_signature_timestamp(roots[index], slot, token)
    changed = {index for index, _, _ in todo}
    return [
        _serialise(root) if index in changed else documents[index]
        for index, root in enumerate(roots)
    ]


def _insert_signature_timestamp(root: etree._Element, slot: str, token: bytes) -> None:
    signature = _signature(root, slot)
    assert signature is not None
    obj = etree.SubElement(signature, _ds("Object"))
    qualifying = etree.SubElement(
        obj,
        _xades("QualifyingProperties"),
        nsmap={"xades": XADES_NS},
        Target=f"#{signature.get('Id', f'sig-{slot}')}",
    )
    unsigned = etree.SubElement(
        etree.SubElement(qualifying, _xades("UnsignedProperties")),
        _xades("UnsignedSignatureProperties"),
    )
    stamp = etree.SubElement(unsigned, _xades("SignatureTimeStamp"), Id=f"ts-{slot}")
    etree.SubElement(stamp, _ds("CanonicalizationMethod"), Algorithm=_EXC_C14N)
    etree.SubElement(stamp, _xades("EncapsulatedTimeStamp")).text = base64.b64encode(token).decode(
        "ascii"
    )


def _serialise(root: etree._Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(root, encoding="UTF-8")


def _archive_elements(root: etree._Element) -> list[etree._Element]:
    zone = root.find("DANH_SACH_THONG_TIN_KY")
    archive = None if zone is None else zone.find(ARCHIVE_ZONE)
    if archive is None:
        return []
    return list(archive.iterchildren(f"{{{XADES141_NS}}}ArchiveTimeStamp"))


def archive_digest(root: etree._Element, count: int) -> bytes:
    """The bytes archive timestamp number ``count + 1`` stamps (see the module docstring):
    c14n of the data, the three slots and the first ``count`` archive timestamps."""
    zone = root.find("DANH_SACH_THONG_TIN_KY")
    data = root.find("DU_LIEU_HOC_BA")
    if zone is None or data is None:
        raise TimestampError("Học bạ thiếu dữ liệu hoặc vùng chữ ký.")
    parts = [_c14n(data)]
    for slot in SIGNATURE_SLOTS:
        element = zone.find(slot)
        if element is None:
            raise TimestampError(f"Học bạ thiếu ô ký {slot}.")
        parts.append(_c14n(element))
    parts += [_c14n(e) for e in _archive_elements(root)[:count]]
    return b"".join(parts)


def archive_timestamps(root: etree._Element) -> list[tuple[int, bytes]]:
    """(number, DER token) of every archive timestamp, in order."""
    found = []
    for element in _archive_elements(root):
        encapsulated = element.find(_xades("EncapsulatedTimeStamp"))
        number = int((element.get("Id") or "ats-0").rpartition("-")[2] or 0)
        text = "" if encapsulated is None else encapsulated.text or ""
        found.append((number, base64.b64decode("".join(text.split()))))
    return found


def add_archive_timestamp(
    xml: bytes,
    client: TsaClient,
    *,
    certificates: Sequence[x509.Certificate] = (),
    ocsp_responses: Sequence[bytes] = (),
) -> bytes:
    """Append one archive timestamp (with the validation data the caller checked)."""
    from cryptography.hazmat.primitives import serialization

    root = parse_record_xml_safely(xml)
    zone = root.find("DANH_SACH_THONG_TIN_KY")
    if zone is None:
        raise TimestampError("Học bạ thiếu vùng chữ ký.")
    count = len(_archive_elements(root))
    archive = zone.find(ARCHIVE_ZONE)
    if archive is None:
        archive = etree.SubElement(zone, ARCHIVE_ZONE)
    (token,) = client.stamp([hashlib.sha256(archive_digest(root, count)).digest()])
    element = etree.SubElement(
        archive,
        f"{{{XADES141_NS}}}ArchiveTimeStamp",
        nsmap={"xadesv141": XADES141_NS, "xades": XADES_NS},
        Id=f"ats-{count + 1}",
    )
    etree.SubElement(element, _ds("CanonicalizationMethod"), Algorithm=_EXC_C14N)
    etree.SubElement(element, _xades("EncapsulatedTimeStamp")).text = base64.b64encode(
        token
    ).decode("ascii")
    if certificates:
        values = etree.SubElement(element, _xades("CertificateValues"))
        for certificate in certificates:
            etree.SubElement(values, _xades("EncapsulatedX509Certificate")).text = base64.b64encode(
                certificate.public_bytes(serialization.Encoding.DER)
            ).decode()
    if ocsp_responses:
        ocsp_values = etree.SubElement(
            etree.SubElement(element, _xades("RevocationValues")), _xades("OCSPValues")
        )
        for response in ocsp_responses:
            etree.SubElement(ocsp_values, _xades("EncapsulatedOCSPValue")).text = base64.b64encode(
                response
            ).decode()
    return _serialise(root)


# =========================================================================== checking
@dataclass(frozen=True)
class CheckedTimestamp:
    """One time-stamp of a record after :func:`verify_token`: ``info`` or ``error``."""

    label: str  # GVCN / CBQL / KY_PHAT_HANH, or ats-<n>
    info: TimestampInfo | None
    error: str | None = None


def check_record_timestamps(
    root: etree._Element, trusted_roots: Sequence[x509.Certificate]
) -> tuple[dict[str, CheckedTimestamp], list[CheckedTimestamp]]:
    """Verify every signature timestamp (by slot) and every archive timestamp (in order)
    of a parsed record. A slot without a timestamp is absent from the first result."""
    slots: dict[str, CheckedTimestamp] = {}
    for slot, tokens in signature_timestamps(root).items():
        message = signature_timestamp_digest(root, slot) or b""
        try:
            slots[slot] = CheckedTimestamp(slot, verify_token(tokens[0], message, trusted_roots))
        except TimestampError as exc:
            slots[slot] = CheckedTimestamp(slot, None, exc.message_vi)
    archives: list[CheckedTimestamp] = []
    for index, (number, token) in enumerate(archive_timestamps(root)):
        label = f"ats-{number}"
        try:
            if number != index + 1:
                raise TimestampError("Dấu thời gian lưu trữ không đúng thứ tự.")
            info = verify_token(token, archive_digest(root, index), trusted_roots)
            archives.append(CheckedTimestamp(label, info))
        except TimestampError as exc:
            archives.append(CheckedTimestamp(label, None, exc.message_vi))
    return slots, archives


def evidence_expiry(
    slots: dict[str, CheckedTimestamp], archives: Sequence[CheckedTimestamp]
) -> dt.datetime | None:
    """Until when the time-stamps protect the record: the newest archive timestamp's TSA
    certificate expiry, else the earliest expiry among the signature timestamps."""
    if archives and archives[-1].info is not None:
        return archives[-1].info.expires
    expiries = [c.info.expires for c in slots.values() if c.info is not None]
    return min(expiries) if expiries else None
