"""PKCS#11 signing (HOCBA_SPEC §4, ARCHITECTURE rule 5) on a real SoftHSM2 token.

The keys are generated *on* the token (they never leave it); the session test PKI issues
their certificates, which are stored on the token next to the keys, as a CA would deliver
a USB token. No mocks: every signature below is made by libsofthsm2 through PKCS#11.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import subprocess
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters
from pkcs11.util.x509 import decode_x509_certificate
from signxml import SignatureConfiguration, XMLVerifier

from hocba.pki.pkcs11 import Pkcs11Signer
from hocba.pki.signer import Signer, SigningError
from hocba.xml.dsig import sign_slots, verify_record_signatures, verify_slot
from hocba.xml.record import RecordDocument, build_record_xml

TOKEN = "T"
PIN = "ma-pin-T-8642"
SO_PIN = "5678"
SPARE_TOKEN = "T-PIN"  # nobody logs in to it before the wrong-PIN test
SPARE_PIN = "ma-pin-du-phong-2468"
WRONG_PIN = "97531-sai"
TEACHER_KEY = "gvcn"
SCHOOL_KEY = "truong"
STRICT_KEY = "pin-moi-lan"  # CKA_ALWAYS_AUTHENTICATE
CLASS_SIZE = 35

_MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
)


# ----------------------------------------------------------------------------- fixtures
@dataclass(frozen=True)
class Hsm:
    """A SoftHSM2 token holding the teacher's RSA key and the school's EC key."""

    module: str
    teacher_certificate: x509.Certificate
    school_certificate: x509.Certificate
    root: x509.Certificate

    def open(self, key: str = TEACHER_KEY, pin: str = PIN, **kwargs: Any) -> Pkcs11Signer:
        return Pkcs11Signer.open(self.module, kwargs.pop("token", TOKEN), pin, key, **kwargs)


def _softhsm_module() -> str:
    configured = os.environ.get("HOCBA_TEST_PKCS11_MODULE")
    for candidate in ([configured] if configured else []) + list(_MODULE_CANDIDATES):
        if Path(candidate).is_file():
            return candidate
    pytest.fail(
        "SoftHSM2 is required for the PKCS#11 tests (libsofthsm2.so not found): "
        "apt-get install -y softhsm2, or set HOCBA_TEST_PKCS11_MODULE"
    )


def _issue_for_token_key(
    pki_directory: Path, root: x509.Certificate, public_key: Any, subject: x509.Name
) -> x509.Certificate:
    """Issue an end-entity certificate from the test root for a key generated elsewhere,
    with the same profile as TestPki (which only issues for keys it generates itself)."""
    root_key = serialization.load_pem_private_key(
        (pki_directory / "root-ca.key.pem").read_bytes(), password=None
    )
    assert isinstance(root_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(root.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )


def _store_certificate(session: Any, certificate: x509.Certificate, key_id: bytes, label: str):
    der = certificate.public_bytes(serialization.Encoding.DER)
    template = decode_x509_certificate(der)
    template.update({Attribute.TOKEN: True, Attribute.ID: key_id, Attribute.LABEL: label})
    session.create_object(template)


@pytest.fixture(scope="session")
def hsm(tmp_path_factory: pytest.TempPathFactory, signing_staff) -> Iterator[Hsm]:
    """Two fresh SoftHSM2 tokens in a temporary directory; keys generated on token ``T``."""
    module = _softhsm_module()
    util = shutil.which("softhsm2-util")
    if util is None:
        pytest.fail("softhsm2-util is required for the PKCS#11 tests: apt-get install -y softhsm2")
    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\n"
        "log.level = ERROR\nslots.removable = false\n",
        encoding="utf-8",
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOFTHSM2_CONF", str(conf))
        for label, pin in ((TOKEN, PIN), (SPARE_TOKEN, SPARE_PIN)):
            subprocess.run(
                [util, "--init-token", "--free", "--label", label, "--pin", pin]
                + ["--so-pin", SO_PIN],
                check=True,
                capture_output=True,
                timeout=60,
            )
        # SoftHSM reads its configuration and tokens at C_Initialize: load it only now.
        pkcs11.unload(str(Path(module).resolve()))
        token = pkcs11.lib(str(Path(module).resolve())).get_token(token_label=TOKEN)
        staff = signing_staff
        root = staff.pki.root_certificate
        with token.open(rw=True, user_pin=PIN) as session:
            rsa_public, _ = session.generate_keypair(
                KeyType.RSA, 2048, id=b"\x01", label=TEACHER_KEY, store=True
            )
            curve = encode_named_curve_parameters("secp256r1")
            parameters = session.create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: curve}, local=True
            )
            ec_public, _ = parameters.generate_keypair(id=b"\x02", label=SCHOOL_KEY, store=True)
            parameters.generate_keypair(
                id=b"\x03",
                label=STRICT_KEY,
                store=True,
                private_template={Attribute.ALWAYS_AUTHENTICATE: True},
            )
            teacher_public = rsa.RSAPublicNumbers(
                int.from_bytes(rsa_public[Attribute.PUBLIC_EXPONENT], "big"),
                int.from_bytes(rsa_public[Attribute.MODULUS], "big"),
            ).public_key()
            school_public = serialization.load_der_public_key(encode_ec_public_key(ec_public))
            teacher_cert = _issue_for_token_key(
                staff.pki.directory, root, teacher_public, staff.teacher.certificate.subject
            )
            school_cert = _issue_for_token_key(
                staff.pki.directory, root, school_public, staff.school.certificate.subject
            )
            _store_certificate(session, teacher_cert, b"\x01", TEACHER_KEY)
            _store_certificate(session, school_cert, b"\x02", SCHOOL_KEY)
            _store_certificate(session, root, b"\xca", "root")
        yield Hsm(module, teacher_cert, school_cert, root)
        pkcs11.unload(str(Path(module).resolve()))


class CountingSigner:
    """Our own thin wrapper: counts ``sign_digests`` calls, i.e. requests to the token."""

    def __init__(self, inner: Pkcs11Signer) -> None:
        self.inner = inner
        self.certificate = inner.certificate
        self.chain = inner.chain
        self.algorithm = inner.algorithm
        self.calls: list[int] = []

    def sign_digests(self, digests: Sequence[bytes]) -> list[bytes]:
        self.calls.append(len(digests))
        return self.inner.sign_digests(digests)


def _cccd(certificate: x509.Certificate) -> str:
    serial = certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value
    assert isinstance(serial, str)
    return serial.removeprefix("CCCD:")


def _class(make_record: Callable[..., RecordDocument], size: int, start: int = 0) -> list[bytes]:
    return [
        build_record_xml(make_record(pupil_name=f"Học Sinh {i:02d}", cccd=f"0792150{i:05d}"))
        for i in range(start, start + size)
    ]


def _signxml(document: bytes, slot: str, root_pem: Path, when: dt.datetime) -> None:
    config = SignatureConfiguration(
        location=f"./DANH_SACH_THONG_TIN_KY/{slot}/", expect_references=2, verification_time=when
    )
    XMLVerifier().verify(document, ca_pem_file=str(root_pem), expect_config=config)


def _no_pin_anywhere(error: BaseException, pin: str) -> None:
    """The PIN is in no message, repr, formatted traceback or local variable of our frames."""
    assert pin not in str(error) and pin not in repr(error)
    assert pin not in "".join(traceback.format_exception(error))
    assert error.__cause__ is None and error.__context__ is None
    tb = error.__traceback__
    while tb is not None:  # the frames of the module under test, as a debugger shows them
        if Path(tb.tb_frame.f_code.co_filename).name == "signing_pkcs11.py":
            for value in tb.tb_frame.f_locals.values():
                assert value != pin and pin not in repr(value)
        tb = tb.tb_next


# ----------------------------------------------------------------------------- signing
def test_a_class_is_signed_on_the_token_with_one_login_and_one_request_per_batch(
    hsm: Hsm, signing_staff, make_record, times
) -> None:
    documents = _class(make_record, CLASS_SIZE)
    with hsm.open(TEACHER_KEY) as teacher, hsm.open(SCHOOL_KEY) as school:
        gvcn, seal = CountingSigner(teacher), CountingSigner(school)
        documents = sign_slots(
            documents, "GVCN", gvcn, times.gvcn, {"SO_CCCD": _cccd(hsm.teacher_certificate)}
        )
        documents = sign_slots(
            documents,
            "CBQL",
            signing_staff.signer(signing_staff.principal),
            times.cbql,
            {"SO_CCCD": _cccd(signing_staff.principal.certificate)},
        )
        documents = sign_slots(documents, "KY_PHAT_HANH", seal, times.seal)
        next_class = sign_slots(
            _class(make_record, 5, start=CLASS_SIZE),
            "GVCN",
            gvcn,
            times.gvcn,
            {"SO_CCCD": _cccd(hsm.teacher_certificate)},
        )

        assert gvcn.calls == [CLASS_SIZE, 5]  # one token request per batch
        assert seal.calls == [CLASS_SIZE]
        assert teacher.login_count == 1  # the PIN was presented once, for both batches
        assert school.login_count == 0  # joined the process's login to the same token
    assert len(next_class) == 5
    for document in documents:
        result = verify_record_signatures(document, signing_staff.roots)
        assert result.ok, {s: r.errors for s, r in result.slots.items()}
        assert result.slots["GVCN"].certificate == hsm.teacher_certificate
        assert result.slots["KY_PHAT_HANH"].certificate == hsm.school_certificate
        assert result.slots["GVCN"].warnings == []  # the CCCD of the token cert was checked
    root_pem = signing_staff.pki.root_cert_path
    for document in documents:
        _signxml(document, "GVCN", root_pem, times.gvcn)
        _signxml(document, "KY_PHAT_HANH", root_pem, times.seal)
    assert verify_slot(next_class[0], "GVCN", signing_staff.roots).ok


@pytest.mark.parametrize(
    ("key", "algorithm", "signature_size"),
    [(TEACHER_KEY, "rsa-sha256", 256), (SCHOOL_KEY, "ecdsa-sha256", 64)],
)
def test_certificate_and_chain_are_read_from_the_token(
    hsm: Hsm, key: str, algorithm: str, signature_size: int
) -> None:
    with hsm.open(key) as signer:
        assert isinstance(signer, Signer)
        expected = hsm.teacher_certificate if key == TEACHER_KEY else hsm.school_certificate
        assert signer.certificate == expected
        assert signer.chain == [hsm.root]
        assert signer.algorithm == algorithm
        values = signer.sign_digests([bytes(32), b"\x01" * 32])
        assert [len(v) for v in values] == [signature_size] * 2
        assert PIN not in repr(signer) and key in repr(signer)


def test_rsa_value_is_a_standard_pkcs1_v15_sha256_signature(hsm: Hsm) -> None:
    """CKM_RSA_PKCS over the DigestInfo = RSASSA-PKCS1-v1_5/SHA-256 over the message."""
    from cryptography.hazmat.primitives.asymmetric import padding

    message = "Học bạ số".encode()
    digest = hashes.Hash(hashes.SHA256())
    digest.update(message)
    with hsm.open(TEACHER_KEY) as signer:
        (value,) = signer.sign_digests([digest.finalize()])
    public_key = hsm.teacher_certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(value, message, padding.PKCS1v15(), hashes.SHA256())


# ----------------------------------------------------------------------------- the PIN
def test_wrong_pin_raises_signing_error_without_the_pin(
    hsm: Hsm, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SigningError) as raised:
        hsm.open(TEACHER_KEY, pin=WRONG_PIN, token=SPARE_TOKEN)
    assert raised.value.message_vi.startswith("Mã PIN không đúng")
    _no_pin_anywhere(raised.value, WRONG_PIN)
    assert WRONG_PIN not in caplog.text
    # the token itself refused the PIN; the right one still works afterwards
    with pytest.raises(SigningError, match="Không tìm thấy khoá"):
        hsm.open(TEACHER_KEY, pin=SPARE_PIN, token=SPARE_TOKEN)
    assert PIN not in caplog.text and SPARE_PIN not in caplog.text


def test_wrong_pin_is_refused_while_the_token_is_logged_in(hsm: Hsm) -> None:
    """A second C_Login would not check the PIN (CKR_USER_ALREADY_LOGGED_IN): still refused."""
    with hsm.open(TEACHER_KEY) as signer:
        with pytest.raises(SigningError, match="^Mã PIN không đúng") as raised:
            hsm.open(SCHOOL_KEY, pin=WRONG_PIN)
        _no_pin_anywhere(raised.value, WRONG_PIN)
        assert len(signer.sign_digests([bytes(32)])) == 1  # the first signer is unaffected


def test_close_logs_the_token_out(hsm: Hsm) -> None:
    signer = hsm.open(TEACHER_KEY)
    signer.close()
    signer.close()  # idempotent
    with pytest.raises(SigningError, match="đã đóng"):
        signer.sign_digests([bytes(32)])
    token = pkcs11.lib(str(Path(hsm.module).resolve())).get_token(token_label=TOKEN)
    with token.open() as public_session:  # not logged in: private keys are invisible
        assert list(public_session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})) == []


# ----------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"token": "KHONG-CO"}, "Không tìm thấy thiết bị ký"),
        ({"key": "khong-co"}, "Không tìm thấy khoá ký"),
        ({"key": STRICT_KEY}, "từng chữ ký"),
        ({"pin": ""}, "Chưa nhập mã PIN"),
    ],
)
def test_open_refuses_with_a_vietnamese_message(hsm: Hsm, kwargs: dict, message: str) -> None:
    with pytest.raises(SigningError, match=message):
        hsm.open(**kwargs)


def test_certificate_of_another_key_is_refused(hsm: Hsm, signing_staff) -> None:
    for certificate in (signing_staff.teacher.certificate, hsm.school_certificate):
        with pytest.raises(SigningError, match="không khớp"):
            hsm.open(TEACHER_KEY, certificate=certificate)
    with pytest.raises(SigningError, match="không khớp"):
        hsm.open(SCHOOL_KEY, certificate=signing_staff.school_ecdsa.certificate)


def test_missing_module_is_a_signing_error(tmp_path: Path) -> None:
    with pytest.raises(SigningError, match="thư viện PKCS#11"):
        Pkcs11Signer.open(str(tmp_path / "khong-co.so"), TOKEN, PIN, TEACHER_KEY)


def test_digests_must_be_sha256(hsm: Hsm) -> None:
    with hsm.open(TEACHER_KEY) as signer, pytest.raises(SigningError, match="SHA-256"):
        signer.sign_digests([b"short"])
