"""The test PKI (hocba/dev/testpki.py) and the software signer (hocba/pki/signer.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from hocba.dev.testpki import PkiError, TestPki
from hocba.pki.signer import Signer, SigningError, SoftwareSigner, clear_signer_cache

PASSWORD = "mat-khau-thu-nghiem"


def _subject(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in cert.subject.get_attributes_for_oid(oid)]


# ----------------------------------------------------------------------------- root and files
def test_root_is_a_clearly_labelled_self_signed_ca(signing_staff) -> None:
    root = signing_staff.pki.root_certificate
    assert _subject(root, NameOID.COMMON_NAME) == ["hocba TEST ROOT CA — KHÔNG DÙNG THẬT"]
    assert root.subject == root.issuer
    root.verify_directly_issued_by(root)
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = root.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign


def test_root_and_crl_are_written_as_pem_and_der(signing_staff) -> None:
    pki = signing_staff.pki
    root = pki.root_certificate
    assert x509.load_pem_x509_certificate(pki.root_cert_path.read_bytes()) == root
    assert x509.load_der_x509_certificate(pki.root_cert_der_path.read_bytes()) == root
    pem_crl = x509.load_pem_x509_crl(pki.crl_path.read_bytes())
    der_crl = x509.load_der_x509_crl(pki.crl_der_path.read_bytes())
    assert pem_crl == der_crl
    assert pem_crl.is_signature_valid(root.public_key())


# ----------------------------------------------------------------------------- certificates
def test_school_certificate_names_the_school_and_its_code(signing_staff) -> None:
    cert = signing_staff.school.certificate
    assert _subject(cert, NameOID.ORGANIZATION_NAME) == ["Trường Tiểu học Kim Đồng"]
    assert _subject(cert, NameOID.COMMON_NAME) == ["Trường Tiểu học Kim Đồng"]
    assert _subject(cert, NameOID.SERIAL_NUMBER) == ["MATRUONG:79000701"]
    cert.verify_directly_issued_by(signing_staff.pki.root_certificate)


def test_personal_certificate_carries_name_with_diacritics_and_cccd(signing_staff) -> None:
    cert = signing_staff.teacher.certificate
    assert _subject(cert, NameOID.COMMON_NAME) == ["Nguyễn Thị Hoà"]
    assert _subject(cert, NameOID.SERIAL_NUMBER) == ["CCCD:001190012345"]
    assert _subject(cert, NameOID.TITLE) == ["Giáo viên chủ nhiệm"]
    cert.verify_directly_issued_by(signing_staff.pki.root_certificate)


@pytest.mark.parametrize("who", ["school", "teacher", "principal", "principal_ecdsa"])
def test_end_entity_key_usage_is_signature_and_non_repudiation(signing_staff, who: str) -> None:
    cert = getattr(signing_staff, who).certificate
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature and usage.value.content_commitment
    assert not usage.value.key_cert_sign
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_keys_are_rsa_2048_by_default_and_ecdsa_p256_on_request(signing_staff) -> None:
    rsa_key = signing_staff.teacher.certificate.public_key()
    assert isinstance(rsa_key, rsa.RSAPublicKey) and rsa_key.key_size == 2048
    ec_key = signing_staff.principal_ecdsa.certificate.public_key()
    assert isinstance(ec_key, ec.EllipticCurvePublicKey) and ec_key.curve.name == "secp256r1"


def test_expired_and_not_yet_valid_certificates(signing_staff, times) -> None:
    expired = signing_staff.teacher_expired.certificate
    assert expired.not_valid_after_utc < times.now
    future = signing_staff.teacher_not_yet_valid.certificate
    assert future.not_valid_before_utc > times.now


def test_each_identity_has_an_encrypted_pkcs12_and_a_pem(signing_staff) -> None:
    identity = signing_staff.teacher
    assert identity.p12_path.suffix == ".p12" and identity.cert_path.suffix == ".pem"
    assert x509.load_pem_x509_certificate(identity.cert_path.read_bytes()) == identity.certificate
    with pytest.raises(ValueError):  # no password: cannot be read
        pkcs12.load_pkcs12(identity.p12_path.read_bytes(), None)


@pytest.mark.parametrize("cccd", ["12345", "0011900123456", "00119001234A"])
def test_personal_id_must_have_12_digits(signing_staff, cccd: str) -> None:
    with pytest.raises(PkiError, match="12 chữ số"):
        signing_staff.pki.issue_person(cccd, "Ai Đó", "Giáo viên", PASSWORD)


def test_init_refuses_an_existing_pki_and_open_reloads_it(signing_staff) -> None:
    pki = signing_staff.pki
    with pytest.raises(PkiError):
        TestPki.init(pki.directory)
    reopened = TestPki.open(pki.directory)
    assert reopened.root_certificate == pki.root_certificate
    assert [r.serial_number for r in reopened.crl] == [r.serial_number for r in pki.crl]


# ----------------------------------------------------------------------------- revocation
def test_revoke_puts_the_serial_on_a_new_crl(tmp_path: Path) -> None:
    pki = TestPki.init(tmp_path / "pki", key_type="ecdsa")  # ECDSA: fast key generation
    person = pki.issue_person(
        "001190099999", "Phạm Văn Em", "Giáo viên", PASSWORD, key_type="ecdsa"
    )
    first = pki.crl
    assert first.get_revoked_certificate_by_serial_number(person.serial_number) is None
    when = dt.datetime(2025, 5, 1, tzinfo=dt.UTC)
    crl = pki.revoke(person.serial_number, revocation_date=when)
    entry = crl.get_revoked_certificate_by_serial_number(person.serial_number)
    assert entry is not None and entry.revocation_date_utc == when
    assert crl.is_signature_valid(pki.root_certificate.public_key())
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number > first.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    on_disk = x509.load_pem_x509_crl(pki.crl_path.read_bytes())
    assert on_disk.get_revoked_certificate_by_serial_number(person.serial_number) is not None
    assert TestPki.open(pki.directory).crl == crl


# ----------------------------------------------------------------------------- SoftwareSigner
def test_software_signer_satisfies_the_signer_protocol(signing_staff) -> None:
    signer = signing_staff.signer(signing_staff.teacher)
    assert isinstance(signer, Signer)
    assert signer.certificate == signing_staff.teacher.certificate
    assert signer.chain == [signing_staff.pki.root_certificate]
    assert signer.algorithm == "rsa-sha256"
    assert "Nguyễn Thị Hoà" in repr(signer) and "key" not in repr(signer).lower()


def test_rsa_batch_signs_digests_with_pkcs1_v15(signing_staff) -> None:
    signer = signing_staff.signer(signing_staff.teacher)
    digests = [hashlib.sha256(f"học bạ {i}".encode()).digest() for i in range(35)]
    values = signer.sign_digests(digests)
    assert len(values) == 35 and len(set(values)) == 35
    public_key = signer.certificate.public_key()
    for digest, value in zip(digests, values, strict=True):
        public_key.verify(value, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


def test_ecdsa_values_are_raw_r_and_s_not_der(signing_staff) -> None:
    signer = signing_staff.signer(signing_staff.principal_ecdsa)
    assert signer.algorithm == "ecdsa-sha256"
    digest = hashlib.sha256(b"hoc ba").digest()
    (value,) = signer.sign_digests([digest])
    assert len(value) == 64
    der = utils.encode_dss_signature(
        int.from_bytes(value[:32], "big"), int.from_bytes(value[32:], "big")
    )
    signer.certificate.public_key().verify(der, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


def test_digests_must_be_sha256(signing_staff) -> None:
    signer = signing_staff.signer(signing_staff.teacher)
    with pytest.raises(SigningError, match="SHA-256"):
        signer.sign_digests([b"\x00" * 20])


def test_pkcs12_is_loaded_once_per_process(signing_staff) -> None:
    path = signing_staff.principal.p12_path
    first = SoftwareSigner.from_pkcs12(path, PASSWORD)
    assert SoftwareSigner.from_pkcs12(str(path), PASSWORD) is first


def test_wrong_password_fails_even_when_the_key_is_cached(signing_staff) -> None:
    path = signing_staff.principal.p12_path
    SoftwareSigner.from_pkcs12(path, PASSWORD)
    with pytest.raises(SigningError, match="Mật khẩu") as info:
        SoftwareSigner.from_pkcs12(path, "sai-mat-khau")
    assert "sai-mat-khau" not in str(info.value)


def test_wrong_password_fails_on_first_load(signing_staff) -> None:
    clear_signer_cache()
    with pytest.raises(SigningError, match="Mật khẩu") as info:
        SoftwareSigner.from_pkcs12(signing_staff.school.p12_path, "sai-mat-khau")
    assert "sai-mat-khau" not in str(info.value)


def test_changed_file_is_reloaded(signing_staff, tmp_path: Path) -> None:
    copy = tmp_path / "k.p12"
    copy.write_bytes(signing_staff.teacher.p12_path.read_bytes())
    first = SoftwareSigner.from_pkcs12(copy, PASSWORD)
    copy.write_bytes(signing_staff.principal.p12_path.read_bytes())
    stat = copy.stat()
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = SoftwareSigner.from_pkcs12(copy, PASSWORD)
    assert second.certificate == signing_staff.principal.certificate != first.certificate


def _p12(
    key: rsa.RSAPrivateKey,
    cert: x509.Certificate | None,
    cas: list[x509.Certificate],
    alg: pkcs12.PBES,
) -> bytes:
    from cryptography.hazmat.primitives import serialization

    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(2048)
        .key_cert_algorithm(alg)
        .build(PASSWORD.encode())
    )
    return pkcs12.serialize_key_and_certificates(b"k", key, cert, cas, encryption)


def _self_signed(key: rsa.RSAPrivateKey, common_name: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def test_pbes2_file_is_read_without_rsa_validation_and_checks_its_values(
    signing_staff, tmp_path: Path
) -> None:
    """The fast path (PBES2 files) gives what ``load_pkcs12`` gives, and such a signer
    verifies every value with the certificate before returning it."""
    path = signing_staff.teacher.p12_path
    clear_signer_cache()
    signer = SoftwareSigner.from_pkcs12(path, PASSWORD)
    bundle = pkcs12.load_pkcs12(path.read_bytes(), PASSWORD.encode())
    assert signer._check_values
    assert signer.certificate == bundle.cert.certificate  # type: ignore[union-attr]
    assert signer.chain == [c.certificate for c in bundle.additional_certs]
    digest = hashlib.sha256(b"hoc ba").digest()
    (value,) = signer.sign_digests([digest])
    signer.certificate.public_key().verify(  # type: ignore[union-attr]
        value, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())
    )


def test_a_key_not_matching_its_certificate_is_refused(signing_staff, tmp_path: Path) -> None:
    """A file whose key is not its certificate's: refused on load (cryptography will not
    write such a file with the certificate in the key's place, so the certificate comes
    as an extra one, which is all the fast path reads)."""
    path = tmp_path / "sai.p12"
    key = rsa.generate_private_key(65537, 2048)
    cas = [signing_staff.teacher.certificate]
    path.write_bytes(_p12(key, None, cas, pkcs12.PBES.PBESv2SHA256AndAES256CBC))
    with pytest.raises(SigningError, match="không khớp"):
        SoftwareSigner.from_pkcs12(path, PASSWORD)
    # the validated path refuses it as well (no certificate for the key)
    legacy = tmp_path / "sai-cu.p12"
    legacy.write_bytes(_p12(key, None, cas, pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC))
    with pytest.raises(SigningError, match="không chứa đủ"):
        SoftwareSigner.from_pkcs12(legacy, PASSWORD)


def test_a_broken_private_key_releases_no_signature(signing_staff, tmp_path: Path) -> None:
    """A key whose private half is wrong but whose public half matches the certificate
    loads (its RSA validation is skipped) and then signs nothing: every value is checked
    with the certificate first."""
    good = rsa.generate_private_key(65537, 2048)
    n = good.private_numbers()
    broken = rsa.RSAPrivateNumbers(
        n.p, n.q, n.d + 2, n.dmp1 + 2, n.dmq1 + 2, n.iqmp, n.public_numbers
    ).private_key(unsafe_skip_rsa_key_validation=True)
    cert = _self_signed(good, "khoa hong")
    path = tmp_path / "hong.p12"
    path.write_bytes(_p12(broken, cert, [], pkcs12.PBES.PBESv2SHA256AndAES256CBC))
    signer = SoftwareSigner.from_pkcs12(path, PASSWORD)
    with pytest.raises(SigningError, match="không khớp chứng thư số"):
        signer.sign_digests([hashlib.sha256(b"hoc ba").digest()])


def test_a_legacy_encrypted_file_takes_the_validated_path(tmp_path: Path) -> None:
    path = tmp_path / "cu.p12"
    key = rsa.generate_private_key(65537, 2048)
    cert = _self_signed(key, "tep cu")
    path.write_bytes(_p12(key, cert, [], pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC))
    signer = SoftwareSigner.from_pkcs12(path, PASSWORD)
    assert not signer._check_values and signer.certificate == cert
    with pytest.raises(SigningError, match="Mật khẩu"):
        clear_signer_cache()
        SoftwareSigner.from_pkcs12(path, "sai-mat-khau")


class _CountedPbkdf2:
    """Counts the PBKDF2 derivations the signer makes (one per decrypted bag group)."""

    calls = 0

    def __init__(self, *args: object) -> None:
        type(self).calls += 1
        self._kdf = PBKDF2HMAC(*args)  # type: ignore[arg-type]

    def derive(self, material: bytes) -> bytes:
        return self._kdf.derive(material)


def _derivations(monkeypatch: pytest.MonkeyPatch, open_file) -> tuple[SoftwareSigner, int]:  # type: ignore[no-untyped-def]
    import cryptography.hazmat.primitives.kdf.pbkdf2 as pbkdf2

    clear_signer_cache()
    _CountedPbkdf2.calls = 0
    with monkeypatch.context() as m:
        m.setattr(pbkdf2, "PBKDF2HMAC", _CountedPbkdf2)
        signer = open_file()
    return signer, _CountedPbkdf2.calls


def test_a_file_opened_for_its_registered_certificate_decrypts_only_the_key(
    signing_staff, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker opens a teacher's file for the registered certificate, issued by a trust
    anchor: one PBKDF2 derivation (the key bag) instead of two, and the signer is the same
    one as from the whole file (certificate, the root as its chain, the same signature
    values), so the signed XML is byte for byte what it was."""
    staff = signing_staff
    path, root = staff.teacher.p12_path, staff.pki.root_certificate
    whole, whole_kdfs = _derivations(
        monkeypatch, lambda: SoftwareSigner.from_pkcs12(path, PASSWORD)
    )
    fast, fast_kdfs = _derivations(
        monkeypatch,
        lambda: SoftwareSigner.from_pkcs12(
            path, PASSWORD, registered=staff.teacher.certificate, issuers=[staff.other_root, root]
        ),
    )
    assert (whole_kdfs, fast_kdfs) == (2, 1)
    assert fast.certificate == whole.certificate == staff.teacher.certificate
    assert fast.chain == whole.chain == [root] and fast._check_values
    digest = hashlib.sha256(b"hoc ba").digest()
    assert fast.sign_digests([digest]) == whole.sign_digests([digest])
    # cached for the certificate it was opened for, and a wrong password still fails
    assert (
        SoftwareSigner.from_pkcs12(
            path, PASSWORD, registered=staff.teacher.certificate, issuers=[root]
        )
        is fast
    )
    with pytest.raises(SigningError, match="Mật khẩu"):
        SoftwareSigner.from_pkcs12(
            path, "sai-mat-khau", registered=staff.teacher.certificate, issuers=[root]
        )
    clear_signer_cache()
    with pytest.raises(SigningError, match="Mật khẩu"):
        SoftwareSigner.from_pkcs12(
            path, "sai-mat-khau", registered=staff.teacher.certificate, issuers=[root]
        )


def test_a_registered_certificate_the_key_does_not_match_is_refused(signing_staff) -> None:
    clear_signer_cache()
    staff = signing_staff
    with pytest.raises(SigningError, match="không khớp với chứng thư số đã đăng ký"):
        SoftwareSigner.from_pkcs12(
            staff.teacher.p12_path,
            PASSWORD,
            registered=staff.principal.certificate,  # the principal's, not this file's key
            issuers=[staff.pki.root_certificate],
        )


def test_without_the_root_that_issued_it_the_whole_file_is_read(
    signing_staff, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registered certificate no given anchor issued (an intermediate CA's, say) needs
    the file's own chain: both derivations, the file's certificate and chain."""
    staff = signing_staff
    signer, kdfs = _derivations(
        monkeypatch,
        lambda: SoftwareSigner.from_pkcs12(
            staff.teacher.p12_path,
            PASSWORD,
            registered=staff.teacher.certificate,
            issuers=[staff.other_root],  # the same kind of root, but not its issuer
        ),
    )
    assert kdfs == 2
    assert signer.chain == [staff.pki.root_certificate]


def test_missing_file_raises_signing_error(tmp_path: Path) -> None:
    with pytest.raises(SigningError, match="Không mở được"):
        SoftwareSigner.from_pkcs12(tmp_path / "absent.p12", PASSWORD)


# ----------------------------------------------------------------------------- chain
def test_the_one_chain_check_finds_the_root_and_refuses_a_stranger(signing_staff) -> None:
    from hocba.pki.chain import build_chain, is_ca, issued_by

    root = signing_staff.pki.root_certificate
    teacher = signing_staff.teacher.certificate
    assert issued_by(teacher, root) and issued_by(root, root)
    assert not issued_by(root, teacher)
    assert not issued_by(teacher, signing_staff.other_root)
    assert is_ca(root) and not is_ca(teacher)
    assert build_chain(teacher, [], [root]) == [teacher, root]
    assert build_chain(root, [], [root]) == [root]
    assert build_chain(teacher, [root], [signing_staff.other_root]) is None
