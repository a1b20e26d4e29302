"""A throw-away **test** PKI for development, demos and tests — never for real records.

Everything here is deliberately labelled as a test: the root's common name says
"KHÔNG DÙNG THẬT" ("do not use for real"), its private key is stored *unencrypted* next to
the certificates, and no real trust store should ever contain it. Real signing keys live on
USB tokens, HSMs or remote-signing services (HOCBA_SPEC §4); this module only exists so
that the pipeline can produce and verify genuine XML signatures end to end.

What it issues (X.509 v3 profile of RFC 5280):

* a self-signed **root CA** — ``basicConstraints cA=TRUE`` (critical), ``keyUsage
  keyCertSign, cRLSign`` (critical), subject/authority key identifiers;
* per school, an **organisation certificate** (the school "seal", slot KY_PHAT_HANH):
  ``C=VN, O=<school name>, CN=<school name>, serialNumber=MATRUONG:<code>``;
* per staff member, a **personal certificate** (slots GVCN and CBQL):
  ``C=VN, [O=<school>], title=<role>, CN=<full name with diacritics>,
  serialNumber=CCCD:<12 digits>`` — the ``CCCD:`` prefix mirrors how Vietnamese CAs put
  the personal identification number in the subject;
* end-entity certificates carry ``keyUsage digitalSignature, nonRepudiation`` (critical,
  RFC 5280 §4.2.1.3; ``nonRepudiation`` is named ``contentCommitment`` in X.509 (2008))
  and ``basicConstraints cA=FALSE``;
* a **CRL** (RFC 5280 §5) re-issued on every :meth:`TestPki.revoke`;
* two service certificates for long-term validity (issue 12), with their keys as
  unencrypted PEM (test only): a **time-stamping authority** (``extendedKeyUsage
  id-kp-timeStamping``, critical, RFC 3161 §2.3) and an **OCSP responder** delegated by the
  root (``extendedKeyUsage id-kp-OCSPSigning`` and ``id-pkix-ocsp-nocheck``, RFC 6960
  §4.2.2.2). :mod:`hocba.dev.trust_services` serves TSA, OCSP and CRL over HTTP.

Each identity is written as an encrypted PKCS#12 file (RFC 7292; PBES2 / AES-256-CBC,
password chosen by the caller) plus its certificate as PEM. The root certificate and the
CRL are written as PEM and DER. Keys are RSA-2048 by default; ECDSA P-256 on request.

The password handed to :meth:`TestPki.issue_school` / :meth:`TestPki.issue_person` is
used to encrypt the PKCS#12 file and then forgotten: it is neither stored nor logged.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from hocba.errors import HocbaError

__all__ = [
    "KeyType",
    "SERVICE_LABELS",
    "TEST_ROOT_COMMON_NAME",
    "PkiError",
    "TestIdentity",
    "TestPki",
    "generate_private_key",
]

KeyType = Literal["rsa", "ecdsa"]
"""``"rsa"`` = RSA-2048 (default), ``"ecdsa"`` = ECDSA on NIST P-256 (secp256r1)."""

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

TEST_ROOT_COMMON_NAME = "hocba TEST ROOT CA — KHÔNG DÙNG THẬT"

_CCCD_RE = re.compile(r"[0-9]{12}")
_SCHOOL_CODE_RE = re.compile(r"[A-Za-z0-9.\-]{1,40}")  # PrintableString-safe (X.520)
_STATE_FILE = "pki-state.json"
_ROOT_KEY_FILE = "root-ca.key.pem"
_ROOT_CERT_FILE = "root-ca.pem"
_ROOT_CERT_DER_FILE = "root-ca.der"
_CRL_FILE = "root-ca.crl.pem"
_CRL_DER_FILE = "root-ca.crl.der"
SERVICE_LABELS = ("tsa", "ocsp")
"""Labels of the service identities (``<label>.pem`` and ``<label>.key.pem``)."""


class PkiError(HocbaError):
    """A test-PKI operation failed; ``message_vi`` is a Vietnamese message for people."""

    def __init__(self, message_vi: str) -> None:
        super().__init__(message_vi)
        self.message_vi = message_vi


@dataclass(frozen=True)
class TestIdentity:
    """One issued identity: where its PKCS#12 and PEM files are, and its certificate."""

    __test__ = False  # not a pytest test class

    label: str
    certificate: x509.Certificate
    p12_path: Path
    cert_path: Path

    @property
    def serial_number(self) -> int:
        """Certificate serial number (RFC 5280 §4.1.2.2), the handle for :meth:`TestPki.revoke`."""
        return self.certificate.serial_number


def generate_private_key(key_type: KeyType = "rsa") -> PrivateKey:
    """Generate an RSA-2048 (e = 65537) or ECDSA P-256 private key."""
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    raise PkiError(f"Loại khoá không được hỗ trợ: {key_type!r} (chỉ 'rsa' hoặc 'ecdsa').")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _pkcs12_encryption(password: str) -> serialization.KeySerializationEncryption:
    """PKCS#12 (RFC 7292) protection: PBES2 with PBKDF2 and AES-256-CBC, HMAC-SHA256 MAC."""
    if not password:
        raise PkiError("Mật khẩu tệp PKCS#12 không được để trống.")
    return (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(50_000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password.encode("utf-8"))
    )


class TestPki:
    """A one-level test PKI on disk: a root CA that directly issues end-entity certificates.

    Create with :meth:`init` (new directory) or :meth:`open` (existing one)::

        pki = TestPki.init(tmp_path / "pki")
        school = pki.issue_school("79000701", "Trường Tiểu học Kim Đồng", password="1234")
        teacher = pki.issue_person("001234567890", "Nguyễn Thị Hoà", "Giáo viên chủ nhiệm",
                                   password="1234")
        pki.revoke(teacher.serial_number)
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        directory: Path,
        root_key: PrivateKey,
        root_certificate: x509.Certificate,
        revoked: dict[int, dt.datetime],
        crl_number: int,
    ) -> None:
        """Use :meth:`init` or :meth:`open`; this constructor only wires loaded state."""
        self.directory = directory
        self._root_key = root_key
        self.root_certificate = root_certificate
        self._revoked = dict(revoked)
        self._crl_number = crl_number
        self.crl: x509.CertificateRevocationList = self._load_crl()

    # ------------------------------------------------------------------ creation
    @classmethod
    def init(
        cls,
        directory: str | Path,
        *,
        common_name: str = TEST_ROOT_COMMON_NAME,
        key_type: KeyType = "rsa",
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> TestPki:
        """Create a new test root CA in ``directory`` (which must not already hold one).

        The root is valid from ``not_before`` (default: 5 years ago) to ``not_after``
        (default: 10 years from now), wide enough to issue back-dated certificates for
        tests of signatures made in the past.
        """
        directory = Path(directory)
        if (directory / _ROOT_CERT_FILE).exists():
            raise PkiError(f"Thư mục {directory} đã có một CA thử nghiệm; hãy dùng TestPki.open.")
        now = _now()
        not_before = not_before or now - dt.timedelta(days=5 * 365)
        not_after = not_after or now + dt.timedelta(days=10 * 365)
        key = generate_private_key(key_type)
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hocba — dữ liệu thử nghiệm"),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                critical=False,
            )
            .sign(key, hashes.SHA256())
        )
        _write(
            directory / _ROOT_KEY_FILE,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),  # TEST ONLY: a throw-away root, see module doc
            ),
        )
        _write(directory / _ROOT_CERT_FILE, cert.public_bytes(serialization.Encoding.PEM))
        _write(directory / _ROOT_CERT_DER_FILE, cert.public_bytes(serialization.Encoding.DER))
        (directory / _CRL_FILE).unlink(missing_ok=True)
        return cls(directory, key, cert, revoked={}, crl_number=0)  # issues the first CRL

    @classmethod
    def open(cls, directory: str | Path) -> TestPki:
        """Load a test PKI previously created with :meth:`init`."""
        directory = Path(directory)
        try:
            key = serialization.load_pem_private_key(
                (directory / _ROOT_KEY_FILE).read_bytes(), password=None
            )
            cert = x509.load_pem_x509_certificate((directory / _ROOT_CERT_FILE).read_bytes())
            state = json.loads((directory / _STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PkiError(f"Không đọc được CA thử nghiệm trong {directory}: {exc}") from exc
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise PkiError("Khoá của CA thử nghiệm không phải RSA hay ECDSA.")
        revoked = {
            int(serial): dt.datetime.fromisoformat(when)
            for serial, when in state.get("revoked", {}).items()
        }
        return cls(directory, key, cert, revoked, int(state.get("crl_number", 0)))

    # ------------------------------------------------------------------ paths
    @property
    def root_cert_path(self) -> Path:
        """Root certificate, PEM."""
        return self.directory / _ROOT_CERT_FILE

    @property
    def root_cert_der_path(self) -> Path:
        """Root certificate, DER."""
        return self.directory / _ROOT_CERT_DER_FILE

    @property
    def crl_path(self) -> Path:
        """Current CRL, PEM."""
        return self.directory / _CRL_FILE

    @property
    def crl_der_path(self) -> Path:
        """Current CRL, DER."""
        return self.directory / _CRL_DER_FILE

    # ------------------------------------------------------------------ issuance
    def issue_school(
        self,
        code: str,
        name: str,
        password: str,
        *,
        key_type: KeyType = "rsa",
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        label: str | None = None,
    ) -> TestIdentity:
        """Issue a school's organisation certificate (the seal used for KY_PHAT_HANH).

        Subject: ``C=VN, O=<name>, CN=<name>, serialNumber=MATRUONG:<code>``. Written to
        ``<label>.p12`` (encrypted with ``password``) and ``<label>.pem``, default label
        ``truong-<code>``.
        """
        if not _SCHOOL_CODE_RE.fullmatch(code):
            raise PkiError(f"Mã trường không hợp lệ: {code!r} (chỉ chữ, số, '.', '-').")
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
                x509.NameAttribute(NameOID.SERIAL_NUMBER, f"MATRUONG:{code}"),
            ]
        )
        return self._issue(
            label or f"truong-{code}", subject, password, key_type, not_before, not_after
        )

    def issue_person(
        self,
        cccd: str,
        name: str,
        role_label: str,
        password: str,
        *,
        organization: str | None = None,
        key_type: KeyType = "rsa",
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        label: str | None = None,
    ) -> TestIdentity:
        """Issue a personal certificate (homeroom teacher, principal...).

        Subject: ``C=VN, [O=<organization>], title=<role_label>, CN=<name>,
        serialNumber=CCCD:<cccd>``. Written to ``<label>.p12`` / ``<label>.pem``
        (default label ``canhan-<cccd>``; pass another label to issue a second
        certificate for the same person, e.g. an expired one).
        """
        if not _CCCD_RE.fullmatch(cccd):
            raise PkiError(f"Số CCCD phải gồm đúng 12 chữ số, nhận được {cccd!r}.")
        attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "VN")]
        if organization:
            attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        attributes += [
            x509.NameAttribute(NameOID.TITLE, role_label),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, f"CCCD:{cccd}"),
        ]
        return self._issue(
            label or f"canhan-{cccd}",
            x509.Name(attributes),
            password,
            key_type,
            not_before,
            not_after,
        )

    def _issue(
        self,
        label: str,
        subject: x509.Name,
        password: str,
        key_type: KeyType,
        not_before: dt.datetime | None,
        not_after: dt.datetime | None,
    ) -> TestIdentity:
        if not re.fullmatch(r"[A-Za-z0-9._\-]{1,80}", label):
            raise PkiError(f"Nhãn tệp không hợp lệ: {label!r}.")
        encryption = _pkcs12_encryption(password)
        key = generate_private_key(key_type)
        cert = self._certificate(subject, key, not_before, not_after, [])
        p12 = pkcs12.serialize_key_and_certificates(
            name=label.encode("utf-8"),
            key=key,
            cert=cert,
            cas=[self.root_certificate],
            encryption_algorithm=encryption,
        )
        p12_path = self.directory / f"{label}.p12"
        cert_path = self.directory / f"{label}.pem"
        _write(p12_path, p12)
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return TestIdentity(label=label, certificate=cert, p12_path=p12_path, cert_path=cert_path)

    # ------------------------------------------------------------------ services
    def issue_service(
        self,
        kind: Literal["tsa", "ocsp"],
        *,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        label: str | None = None,
    ) -> TestIdentity:
        """Issue the time-stamping (``"tsa"``) or OCSP responder (``"ocsp"``) certificate.

        The key is written *unencrypted* to ``<label>.key.pem`` (a test service has no one
        to type a passphrase); ``p12_path`` of the result is that PEM key. Default label =
        ``kind``; pass another one (and ``not_after``) for e.g. a TSA certificate that is
        about to expire.
        """
        label = label or kind
        if kind == "tsa":
            name = "hocba TEST TSA — KHÔNG DÙNG THẬT"
            usage = x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.TIME_STAMPING])
        elif kind == "ocsp":
            name = "hocba TEST OCSP — KHÔNG DÙNG THẬT"
            usage = x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.OCSP_SIGNING])
        else:
            raise PkiError(f"Loại dịch vụ không hợp lệ: {kind!r} (chỉ 'tsa' hoặc 'ocsp').")
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hocba — dữ liệu thử nghiệm"),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        extra: list[tuple[x509.ExtensionType, bool]] = [(usage, True)]
        if kind == "ocsp":
            extra.append((x509.OCSPNoCheck(), False))
        key = generate_private_key("rsa")
        cert = self._certificate(subject, key, not_before, not_after, extra)
        key_path = self.directory / f"{label}.key.pem"
        cert_path = self.directory / f"{label}.pem"
        _write(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),  # TEST ONLY, see module doc
            ),
        )
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return TestIdentity(label=label, certificate=cert, p12_path=key_path, cert_path=cert_path)

    def service(self, label: str) -> tuple[x509.Certificate, PrivateKey]:
        """Certificate and key of a service identity, issuing it on first use (``tsa`` /
        ``ocsp``)."""
        cert_path = self.directory / f"{label}.pem"
        if not cert_path.exists():
            if label not in SERVICE_LABELS:
                raise PkiError(f"Không có chứng thư dịch vụ {label!r} trong {self.directory}.")
            self.issue_service(label)  # type: ignore[arg-type]
        key = serialization.load_pem_private_key(
            (self.directory / f"{label}.key.pem").read_bytes(), password=None
        )
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise PkiError(f"Khoá của dịch vụ {label} không phải RSA hay ECDSA.")
        return x509.load_pem_x509_certificate(cert_path.read_bytes()), key

    @property
    def revoked(self) -> dict[int, dt.datetime]:
        """Serial number → revocation time of every revoked certificate (a copy)."""
        return dict(self._revoked)

    @staticmethod
    def revoked_in(directory: str | Path) -> dict[int, dt.datetime]:
        """The revocations recorded in ``directory``, without loading the root key (what an
        OCSP responder reads per request)."""
        try:
            state = json.loads((Path(directory) / _STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {
            int(serial): dt.datetime.fromisoformat(when)
            for serial, when in state.get("revoked", {}).items()
        }

    def _certificate(
        self,
        subject: x509.Name,
        key: PrivateKey,
        not_before: dt.datetime | None,
        not_after: dt.datetime | None,
        extra: list[tuple[x509.ExtensionType, bool]],
    ) -> x509.Certificate:
        """An end-entity certificate signed by the root (default validity: yesterday to
        three years from now)."""
        now = _now()
        not_before = not_before or now - dt.timedelta(days=1)
        not_after = not_after or now + dt.timedelta(days=3 * 365)
        if not_after <= not_before:
            raise PkiError("Ngày hết hạn phải sau ngày bắt đầu hiệu lực.")
        root_ski = self.root_certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.root_certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=True,  # nonRepudiation
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski), False
            )
        )
        for extension, critical in extra:
            builder = builder.add_extension(extension, critical)
        return builder.sign(self._root_key, hashes.SHA256())

    # ------------------------------------------------------------------ revocation
    def revoke(
        self,
        serial: int,
        *,
        revocation_date: dt.datetime | None = None,
    ) -> x509.CertificateRevocationList:
        """Revoke a certificate by serial number and re-issue the CRL (RFC 5280 §5.3.2).

        ``revocation_date`` defaults to now; pass a past date to model "revoked before the
        signature was made".
        """
        self._revoked[serial] = (revocation_date or _now()).astimezone(dt.UTC)
        self.crl = self._issue_crl()
        return self.crl

    def _issue_crl(self) -> x509.CertificateRevocationList:
        now = _now()
        self._crl_number += 1
        root_ski = self.root_certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.root_certificate.subject)
            .last_update(now)
            .next_update(now + dt.timedelta(days=7))
            .add_extension(x509.CRLNumber(self._crl_number), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski), False
            )
        )
        for serial, when in sorted(self._revoked.items()):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
            )
        crl = builder.sign(self._root_key, hashes.SHA256())
        _write(self.crl_path, crl.public_bytes(serialization.Encoding.PEM))
        _write(self.crl_der_path, crl.public_bytes(serialization.Encoding.DER))
        state = {
            "crl_number": self._crl_number,
            "revoked": {str(s): w.isoformat() for s, w in self._revoked.items()},
        }
        _write(self.directory / _STATE_FILE, json.dumps(state, indent=2).encode("utf-8"))
        return crl

    def _load_crl(self) -> x509.CertificateRevocationList:
        try:
            return x509.load_pem_x509_crl(self.crl_path.read_bytes())
        except (OSError, ValueError):
            return self._issue_crl()
