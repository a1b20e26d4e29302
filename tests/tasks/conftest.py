"""Shared fixtures for tests/tasks: one test PKI per session, a real school's staff, and
records of a real class (Kim Đồng primary school, grade 4A, school year 2024-2025)."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from hocba.dev.testpki import TestIdentity, TestPki
from hocba.pki.signer import SoftwareSigner
from hocba.xml.dsig import DS_NS, sign_slots
from hocba.xml.record import RecordDocument, build_record_xml

PASSWORD = "mat-khau-thu-nghiem"

SCHOOL_CODE = "79000701"
SCHOOL_NAME = "Trường Tiểu học Kim Đồng"
TEACHER_CCCD = "001190012345"
TEACHER_NAME = "Nguyễn Thị Hoà"
PRINCIPAL_CCCD = "001080054321"
PRINCIPAL_NAME = "Trần Văn Đức"

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
GVCN_TIME = NOW - dt.timedelta(hours=3)
CBQL_TIME = NOW - dt.timedelta(hours=2)
SEAL_TIME = NOW - dt.timedelta(hours=1)

QUALITIES_AND_COMPETENCES = (
    "NANG_LUC_TU_CHU_TU_HOC",
    "NANG_LUC_GIAO_TIEP_HOC_TAC",
    "NANG_LUC_GIAI_QUYET_VAN_DE_SANG_TAO",
    "NANG_LUC_NGON_NGU",
    "NANG_LUC_TINH_TOAN",
    "NANG_LUC_KHOA_HOC",
    "NANG_LUC_CONG_NGHE",
    "NANG_LUC_TIN_HOC",
    "NANG_LUC_THAM_MI",
    "NANG_LUC_THE_CHAT",
    "PHAM_CHAT_YEU_NUOC",
    "PHAM_CHAT_NHAN_AI",
    "PHAM_CHAT_CHAM_CHI",
    "PHAM_CHAT_TRUNG_THUC",
    "PHAM_CHAT_TRACH_NHIEM",
)

GRADE_4_SUBJECTS = (
    ("TV", "Tiếng Việt", "T", 9),
    ("TOAN", "Toán", "T", 10),
    ("NN1", "Ngoại ngữ 1 (Tiếng Anh)", "H", 8),
    ("DD", "Đạo đức", "T", None),
    ("LSDL", "Lịch sử và Địa lí", "T", 9),
    ("KH", "Khoa học", "T", 9),
    ("TH", "Tin học", "H", 7),
    ("CN", "Công nghệ", "T", 8),
    ("GDTC", "Giáo dục thể chất", "T", None),
    ("AN", "Âm nhạc", "T", None),
    ("MT", "Mĩ thuật", "T", None),
    ("HDTN", "Hoạt động trải nghiệm", "T", None),
)


def _make_record(pupil_name: str = "Lê Minh Anh", cccd: str = "079215000123") -> RecordDocument:
    """A complete grade-4 record (TT27 content, HOCBA_SPEC §2-3)."""
    return RecordDocument(
        thong_tin_chung={
            "PHIEN_BAN": "1.0",
            "THONG_TU": "27/2020/TT-BGDĐT",
            "MA_TRA_CUU_UUID": None,
            "TEN_NAM_HOC": "2024-2025",
            "MA_SO_GIAO_DUC": "22",
            "TEN_SO_GD": "Sở GDĐT Quảng Ninh",
            "MA_TRUONG": SCHOOL_CODE,
            "TEN_TRUONG": SCHOOL_NAME,
            "TEN_QUAN_HUYEN": "Huyện Đầm Hà",
            "TEN_XA_PHUONG": "Thị trấn Đầm Hà",
            "TEN_TINH_THANH_PHO": "Quảng Ninh",
            "MA_CAP_HOC": "1",
            "SO_SO_DANG_BO": "125/2021",
            "HO_VA_TEN": pupil_name,
            "SO_CCCD": cccd,
            "MA_HOC_SINH": "2200012345",
            "GIOI_TINH": "Nữ",
            "NGAY_SINH": "2015-03-02",
            "CAN_NANG": 25.5,
            "CHIEU_CAO": 131.25,
            "TONG_SO_BUOI_NGHI_CO_PHEP": 2,
            "THONG_SO_BUOI_NGHI_KHONG_PHEP": 0,
            "NOI_SINH": "Bệnh viện Đa khoa tỉnh Quảng Ninh",
            "QUE_QUAN": "Đầm Hà, Quảng Ninh",
            "CHO_O_HIEN_NAY": "Khu phố 2, thị trấn Đầm Hà",
            "DAN_TOC": "Kinh",
            "QUOC_TICH": "Việt Nam",
            "HO_VA_TEN_CHA": "Lê Văn Bình",
            "HO_VA_TEN_ME": "Phạm Thị Cúc",
            "HO_VA_TEN_NGUOI_GIAM_HO": "",
            "TEN_GIAM_HIEU_KY_HOC_BA": PRINCIPAL_NAME,
            "SO_CCCD_GIAM_HIEU_KY_HOC_BA": PRINCIPAL_CCCD,
            "CHUC_VU_GIAM_HIEU_KY_HOC_BA": "Hiệu trưởng",
            "DIA_DANH_PHAT_HANH_HOC_BA": "Đầm Hà",
            "NGAY_TAO_HOC_BA": "2025-05-26",
            "NGAY_KY_PHAT_HANH_HOC_BA": "2025-05-30",
            "TEN_GIAO_VIEN_CHU_NHIEM": TEACHER_NAME,
            "SO_CCCD_GIAO_VIEN_CHU_NHIEM": TEACHER_CCCD,
            "MA_KHOI": 4,
            "TEN_LOP": "4A",
            "NAM_HOC": 2024,
        },
        qua_trinh_hoc_tap=[
            {
                "TEN_LOP": "3A",
                "TEN_TRUONG": "Trường Tiểu học Quảng Lợi",
                "NGAY_TRANG_THAI_CHUYEN_DEN": None,
            },
            {
                "TEN_LOP": "4A",
                "TEN_TRUONG": SCHOOL_NAME,
                "NGAY_TRANG_THAI_CHUYEN_DEN": "2024-09-05",
            },
        ],
        tong_ket={
            "KET_QUA_XEP_LOAI": "HTT",
            "DUOC_LEN_LOP": True,
            "NOI_DUNG_HOAN_THANH_CHUONG_TRINH": "Hoàn thành chương trình lớp 4; Được lên lớp 5",
            "DA_HOAN_THANH_CHUONG_TRINH_LOP_HOC": True,
            "DA_HOAN_THANH_CHUONG_TRINH_TIEU_HOC": False,
            "NOI_DUNG_KHEN_THUONG": "Học sinh Tiêu biểu hoàn thành tốt trong học tập và rèn luyện",
            "NOI_DUNG_KHEN_THUONG_DOT_XUAT": None,
            "NHAN_XET_GVCN": "Em chăm ngoan, tích cực tham gia các hoạt động của lớp.",
            **{name: "T" for name in QUALITIES_AND_COMPETENCES},
            "PHAM_CHAT_TRACH_NHIEM": "Đ",
            "NHAN_XET_PHAM_CHAT": "Lễ phép, biết giúp đỡ bạn bè.",
            "NHAN_XET_NANG_LUC_CHUNG": "Tự giác học tập, hợp tác tốt khi làm việc nhóm.",
            "NHAN_XET_NANG_LUC_DAC_THU": "Đọc diễn cảm, tính toán nhanh, chính xác.",
        },
        mon_hoc=[
            {
                "MA_MON_HOC": code,
                "TEN_MON_HOC": name,
                "MUC_DAT_DUOC": level,
                "DIEM_KIEM_TRA_DINH_KY": score,
            }
            for code, name, level, score in GRADE_4_SUBJECTS
        ],
    )


@dataclass(frozen=True)
class Staff:
    """The test PKI and the identities of one school (plus a few broken ones)."""

    pki: TestPki
    school: TestIdentity
    teacher: TestIdentity
    principal: TestIdentity
    school_ecdsa: TestIdentity
    principal_ecdsa: TestIdentity
    teacher_expired: TestIdentity
    teacher_not_yet_valid: TestIdentity
    teacher_revoked_before: TestIdentity
    teacher_revoked_after: TestIdentity
    teacher_untrusted: TestIdentity
    other_root: x509.Certificate

    def signer(self, identity: TestIdentity) -> SoftwareSigner:
        return SoftwareSigner.from_pkcs12(identity.p12_path, PASSWORD)

    @property
    def roots(self) -> list[x509.Certificate]:
        return [self.pki.root_certificate]


@pytest.fixture(scope="session")
def signing_staff(tmp_path_factory: pytest.TempPathFactory) -> Staff:
    """One test PKI per session (RSA key generation is slow) with a handful of identities."""
    base = tmp_path_factory.mktemp("pki")
    pki = TestPki.init(base / "hocba")
    teacher_role = "Giáo viên chủ nhiệm"

    def teacher(label: str, **kwargs: object) -> TestIdentity:
        return pki.issue_person(
            TEACHER_CCCD,
            TEACHER_NAME,
            teacher_role,
            PASSWORD,
            organization=SCHOOL_NAME,
            label=label,
            **kwargs,  # type: ignore[arg-type]
        )

    revoked_before = teacher("gv-thu-hoi-truoc")
    revoked_after = teacher("gv-thu-hoi-sau")
    pki.revoke(revoked_before.serial_number, revocation_date=GVCN_TIME - dt.timedelta(days=1))
    pki.revoke(revoked_after.serial_number, revocation_date=NOW - dt.timedelta(minutes=5))
    other = TestPki.init(base / "other", common_name="Other TEST ROOT — not trusted")
    return Staff(
        pki=pki,
        school=pki.issue_school(SCHOOL_CODE, SCHOOL_NAME, PASSWORD),
        teacher=teacher(f"canhan-{TEACHER_CCCD}"),
        principal=pki.issue_person(
            PRINCIPAL_CCCD, PRINCIPAL_NAME, "Hiệu trưởng", PASSWORD, organization=SCHOOL_NAME
        ),
        school_ecdsa=pki.issue_school(
            SCHOOL_CODE, SCHOOL_NAME, PASSWORD, key_type="ecdsa", label="truong-ecdsa"
        ),
        principal_ecdsa=pki.issue_person(
            PRINCIPAL_CCCD,
            PRINCIPAL_NAME,
            "Hiệu trưởng",
            PASSWORD,
            organization=SCHOOL_NAME,
            key_type="ecdsa",
            label="hieu-truong-ecdsa",
        ),
        teacher_expired=teacher(
            "gv-het-han",
            not_before=NOW - dt.timedelta(days=400),
            not_after=NOW - dt.timedelta(days=30),
        ),
        teacher_not_yet_valid=teacher(
            "gv-chua-hieu-luc",
            not_before=NOW + dt.timedelta(days=10),
            not_after=NOW + dt.timedelta(days=400),
        ),
        teacher_revoked_before=revoked_before,
        teacher_revoked_after=revoked_after,
        teacher_untrusted=other.issue_person(
            TEACHER_CCCD, TEACHER_NAME, teacher_role, PASSWORD, organization=SCHOOL_NAME
        ),
        other_root=other.root_certificate,
    )


SignAll = Callable[..., list[bytes]]


def slot_cccd(signer: SoftwareSigner) -> dict[str, str]:
    """The slot's SO_CCCD as issuance writes it: the signer's CCCD from the certificate
    (none for a certificate that names no person)."""
    from issuing import certificate_cccd

    cccd = certificate_cccd(signer.certificate)
    return {"SO_CCCD": cccd} if cccd else {}


@pytest.fixture(scope="session")
def sign_all(signing_staff: Staff) -> SignAll:
    """Sign documents in the three slots, in order, each slot in one batch."""

    def sign(
        documents: list[bytes],
        *,
        teacher: TestIdentity | None = None,
        principal: TestIdentity | None = None,
        school: TestIdentity | None = None,
        times: tuple[dt.datetime, dt.datetime, dt.datetime] = (GVCN_TIME, CBQL_TIME, SEAL_TIME),
    ) -> list[bytes]:
        gvcn = signing_staff.signer(teacher or signing_staff.teacher)
        documents = sign_slots(
            documents, "GVCN", gvcn, times[0], slot_cccd(gvcn), check_certificate_validity=False
        )
        cbql = signing_staff.signer(principal or signing_staff.principal)
        documents = sign_slots(documents, "CBQL", cbql, times[1], slot_cccd(cbql))
        return sign_slots(
            documents,
            "KY_PHAT_HANH",
            signing_staff.signer(school or signing_staff.school),
            times[2],
        )

    return sign


@pytest.fixture(scope="session")
def signed_record(sign_all: SignAll) -> bytes:
    """A complete record signed GVCN → CBQL → KY_PHAT_HANH with RSA-2048 keys."""
    return sign_all([build_record_xml(_make_record())])[0]


@pytest.fixture
def make_record() -> Callable[..., RecordDocument]:
    """Factory of complete grade-4 records; call with ``pupil_name=``, ``cccd=``."""
    return _make_record


@dataclass(frozen=True)
class SigningTimes:
    now: dt.datetime
    gvcn: dt.datetime
    cbql: dt.datetime
    seal: dt.datetime


@pytest.fixture(scope="session")
def times() -> SigningTimes:
    """The signing times used by :func:`sign_all` (GVCN, then CBQL, then the seal)."""
    return SigningTimes(NOW, GVCN_TIME, CBQL_TIME, SEAL_TIME)


@pytest.fixture
def xmlsec1(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``xmlsec1(document, slot, trusted_pem, when)``: the independent xmlsec1 verifier."""

    def run(
        document: bytes, slot: str, trusted_pem: Path, when: dt.datetime
    ) -> subprocess.CompletedProcess[str]:
        return _xmlsec1_verify(document, slot, trusted_pem, when, tmp_path)

    return run


# ------------------------------------------------------------------ independent verifiers
def _xmlsec1_verify(
    document: bytes, slot: str, trusted_pem: Path, when: dt.datetime, workdir: Path
) -> subprocess.CompletedProcess[str]:
    """Verify one slot's signature with the xmlsec1 command-line tool (libxmlsec1/OpenSSL).

    ``--node-xpath`` selects the ds:Signature of that slot; ``--id-attr:Id DU_LIEU_HOC_BA``
    declares the Id attribute the #data reference points to (there is no DTD);
    ``--verification-gmt-time`` checks certificates at the signing time.
    """
    exe = shutil.which("xmlsec1")
    if exe is None:
        pytest.fail("xmlsec1 is required to cross-check signatures: apt-get install xmlsec1")
    path = workdir / f"{slot}-{hashlib.sha256(document).hexdigest()[:16]}.xml"
    path.write_bytes(document)
    xpath = (
        f"/HOC_BA/DANH_SACH_THONG_TIN_KY/{slot}/*[local-name()='Signature' "
        f"and namespace-uri()='{DS_NS}']"
    )
    return subprocess.run(
        [
            exe,
            "--verify",
            "--trusted-pem",
            str(trusted_pem),
            "--id-attr:Id",
            "DU_LIEU_HOC_BA",
            "--node-xpath",
            xpath,
            "--enabled-reference-uris",
            "same-doc",
            "--verification-gmt-time",
            when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
