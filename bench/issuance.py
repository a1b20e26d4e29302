"""Benchmark: the signed-record issuance path and verification, per core (issue 3 targets).

Targets (issue 3, "Speed"): issuance at least 500 records/s/core, "about a third of the raw
limit", where the raw limit is the raw sign rate of the key divided by the three
signatures of a record; verification with the trust chain cached at least 800
records/s/core. Everything runs in this one process, pinned to one CPU, with software keys
from a temporary :class:`~hocba.dev.testpki.TestPki`, and each rate comes with its baseline
measured in the same run, so the ratios travel between machines:

* ``raw_sign``: signatures per second over prehashed SHA-256 digests with ``cryptography``
  (RSASSA-PKCS1-v1_5 for RSA-2048, ECDSA P-256 otherwise) with the school's key;
* ``raw_verify``: verifications per second of such signatures with the public key;
* ``issuance``: per record, ``build_record_xml`` (XSD validation on), three ``sign_slots``
  calls GVCN → CBQL → KY_PHAT_HANH in batches of a class (35), the full
  ``verify_record_signatures`` with the test root trusted and its CRL, and the SHA-256 of
  the final bytes (what issuance stores). As in ``hocba/tasks/issuance.py``, each step is
  given the very bytes object the previous one returned, so the record is parsed once
  (by nobody: the tree built is the tree signed and checked, ``record.keep_parsed``);
* ``verification``: ``verify_record_signatures`` alone over the issued documents, with the
  same root and CRL objects reused (the trust chain cached); every document is parsed
  (issuance has used the kept trees).

The memo of signature values found valid (``hocba.pki.signer.clear_verified_signatures``)
is emptied before each issuance run (every run signs the same digests again) and before
each verification run (issuance has just checked these values): both measure first-time
work, all RSA checks included. Within an issuance run the backend's check of each value is
its one RSA check, as in production.

Ratios: ``issuance / (raw_sign / 3)`` and ``verification / (raw_verify / 3)``. Also
``ratio_issuance_in_path``: the share of issuance's CPU time spent inside the signers'
``sign_digests`` (the private-key operations), i.e. the same issuance ratio with the sign
rate measured inside the path, in the same time window — the steadiest of the figures when
other work shares the machine.

Every rate is reported twice: per second of elapsed time (``wall``) and per second of this
process's CPU time (``cpu``). With the process pinned to one core and single-threaded, the
CPU clock is the core's time actually spent, so it stays meaningful when other work shares
the machine (the ``wall`` rates then drop; the load average is in the output). The phase
breakdown of issuance is in CPU milliseconds per record.

With ``--timestamps`` (issue 12) the run also measures ``issuance_timestamps``: the same
path where each slot, right after it is signed, gets its RFC 3161 signature timestamp from
the project's test TSA (hocba/dev/trust_services.py, served over real HTTP on 127.0.0.1 in a
thread of this process, so the TSA's own CPU time is counted too: an upper bound for the
client side), one request per signature on one pooled connection, and the verification
step also checks the three tokens. It reports ``ratio_timestamps`` = issuance with
timestamps / issuance without, same run, and ``ratio_timestamps_client_cpu``: the same with
the CPU time of the issuing thread only (``time.thread_time``), i.e. without the TSA's own
work, what an installation using an external TSA pays.

Run: ``.venv/bin/python bench/issuance.py [--records 2000] [--repeat 3] [--key-type rsa]
[--cpu N] [--timestamps]``. Prints JSON on stdout and a short summary on stderr;
``--json-out FILE`` also writes the JSON to a file. Each figure is the median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import hashlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cryptography
import lxml.etree
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import pkcs12

from hocba.dev.testpki import TestPki
from hocba.dev.trust_services import serve_trust_services
from hocba.pki.signer import SoftwareSigner, clear_verified_signatures
from hocba.xml.dsig import sign_slots, verify_record_signatures
from hocba.xml.record import RecordDocument, build_record_xml, parse_record_xml_safely
from hocba.xml.timestamps import TsaClient, add_signature_timestamps, check_record_timestamps

PASSWORD = "mat-khau-bench"
SCHOOL_CODE = "79000701"
SCHOOL_NAME = "Trường Tiểu học Kim Đồng"
TEACHER_CCCD = "001190012345"
PRINCIPAL_CCCD = "001080054321"
CLASS_SIZE = 35
RAW_SECONDS = 1.0

_COMPETENCES = (
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
_SUBJECTS = (
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
_FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi")
_GIVEN = ("Minh Anh", "Gia Bảo", "Thu Hà", "Đức Huy", "Ngọc Diệp", "Quốc Khánh", "Bảo Ngọc")


def make_record(index: int) -> RecordDocument:
    """A complete grade-4 record (same content as ``tests/tasks/conftest._make_record``),
    with a name, CCCD and pupil code that differ per ``index``."""
    name = f"{_FAMILY[index % len(_FAMILY)]} {_GIVEN[index % len(_GIVEN)]}"
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
            "SO_SO_DANG_BO": f"{index + 1}/2021",
            "HO_VA_TEN": name,
            "SO_CCCD": f"0792150{index:05d}",
            "MA_HOC_SINH": f"22000{index:05d}",
            "GIOI_TINH": "Nữ" if index % 2 else "Nam",
            "NGAY_SINH": "2015-03-02",
            "CAN_NANG": 25.5 + index % 7,
            "CHIEU_CAO": 131.25,
            "TONG_SO_BUOI_NGHI_CO_PHEP": index % 4,
            "THONG_SO_BUOI_NGHI_KHONG_PHEP": 0,
            "NOI_SINH": "Bệnh viện Đa khoa tỉnh Quảng Ninh",
            "QUE_QUAN": "Đầm Hà, Quảng Ninh",
            "CHO_O_HIEN_NAY": "Khu phố 2, thị trấn Đầm Hà",
            "DAN_TOC": "Kinh",
            "QUOC_TICH": "Việt Nam",
            "HO_VA_TEN_CHA": "Lê Văn Bình",
            "HO_VA_TEN_ME": "Phạm Thị Cúc",
            "HO_VA_TEN_NGUOI_GIAM_HO": "",
            "TEN_GIAM_HIEU_KY_HOC_BA": "Trần Văn Đức",
            "SO_CCCD_GIAM_HIEU_KY_HOC_BA": PRINCIPAL_CCCD,
            "CHUC_VU_GIAM_HIEU_KY_HOC_BA": "Hiệu trưởng",
            "DIA_DANH_PHAT_HANH_HOC_BA": "Đầm Hà",
            "NGAY_TAO_HOC_BA": "2025-05-26",
            "NGAY_KY_PHAT_HANH_HOC_BA": "2025-05-30",
            "TEN_GIAO_VIEN_CHU_NHIEM": "Nguyễn Thị Hoà",
            "SO_CCCD_GIAO_VIEN_CHU_NHIEM": TEACHER_CCCD,
            "MA_KHOI": 4,
            "TEN_LOP": "4A",
            "NAM_HOC": 2024,
        },
        qua_trinh_hoc_tap=[
            {"TEN_LOP": "3A", "TEN_TRUONG": "Trường Tiểu học Quảng Lợi"},
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
            "NHAN_XET_GVCN": "Em chăm ngoan, tích cực tham gia các hoạt động của lớp.",
            **{name: "T" for name in _COMPETENCES},
            "PHAM_CHAT_TRACH_NHIEM": "Đ",
            "NHAN_XET_PHAM_CHAT": "Lễ phép, biết giúp đỡ bạn bè.",
            "NHAN_XET_NANG_LUC_CHUNG": "Tự giác học tập, hợp tác tốt khi làm việc nhóm.",
            "NHAN_XET_NANG_LUC_DAC_THU": "Đọc diễn cảm, tính toán nhanh, chính xác.",
        },
        mon_hoc=[
            {
                "MA_MON_HOC": code,
                "TEN_MON_HOC": subject,
                "MUC_DAT_DUOC": level,
                "DIEM_KIEM_TRA_DINH_KY": score,
            }
            for code, subject, level, score in _SUBJECTS
        ],
    )


def pin_to_one_cpu(cpu: int | None) -> tuple[list[int], int]:
    """Pin this process to one CPU; returns (the affinity before, the CPU chosen)."""
    before = sorted(os.sched_getaffinity(0))
    chosen = before[-1] if cpu is None else cpu
    if chosen not in before:
        raise SystemExit(f"CPU {chosen} not in this process's affinity {before}")
    os.sched_setaffinity(0, {chosen})
    return before, chosen


Rates = dict[str, float]  # {"wall": per second of elapsed time, "cpu": per second of CPU time}
CLOCKS = ("wall", "cpu")


def _clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _per_second(count: int, start: tuple[float, float]) -> Rates:
    wall, cpu = _clocks()
    return {"wall": count / (wall - start[0]), "cpu": count / max(cpu - start[1], 1e-9)}


def raw_rates(p12_path: Path, seconds: float) -> tuple[Rates, Rates]:
    """Raw sign and verify rates over prehashed SHA-256 digests, with the file's key."""
    key = pkcs12.load_pkcs12(p12_path.read_bytes(), PASSWORD.encode()).key
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return key_rates(key, seconds)


def key_rates(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, seconds: float
) -> tuple[Rates, Rates]:
    """Raw sign and verify rates of ``key`` over prehashed SHA-256 digests (also the
    machine's speed that ``province.py`` reports beside its CPU per record)."""
    prehashed = utils.Prehashed(hashes.SHA256())
    digests = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(200)]
    if isinstance(key, rsa.RSAPrivateKey):
        pkcs1 = padding.PKCS1v15()
        public = key.public_key()

        def sign(d: bytes) -> bytes:
            return key.sign(d, pkcs1, prehashed)

        def verify(s: bytes, d: bytes) -> None:
            public.verify(s, d, pkcs1, prehashed)
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        algorithm = ec.ECDSA(prehashed)
        public_ec = key.public_key()

        def sign(d: bytes) -> bytes:
            return key.sign(d, algorithm)

        def verify(s: bytes, d: bytes) -> None:
            public_ec.verify(s, d, algorithm)

    signatures = [sign(d) for d in digests]
    pairs = list(zip(signatures, digests, strict=True))
    return (
        _rate(lambda: [sign(d) for d in digests], len(digests), seconds),
        _rate(lambda: [verify(s, d) for s, d in pairs], len(pairs), seconds),
    )


def _rate(step: Callable[[], object], per_step: int, seconds: float) -> Rates:
    """Operations per second of ``step`` repeated for at least ``seconds`` (wall clock)."""
    done = 0
    start = _clocks()
    while True:
        step()
        done += per_step
        if time.perf_counter() - start[0] >= seconds:
            return _per_second(done, start)


class TimedSigner:
    """A :class:`~hocba.pki.signer.Signer` that adds the CPU time its backend spends in
    ``sign_digests`` (the private-key operations) to ``seconds``."""

    def __init__(self, inner: SoftwareSigner) -> None:
        self.inner = inner
        self.certificate, self.chain = inner.certificate, inner.chain
        self.algorithm = inner.algorithm
        self.seconds = 0.0

    def sign_digests(self, digests: Sequence[bytes]) -> list[bytes]:
        start = time.process_time()
        try:
            return self.inner.sign_digests(digests)
        finally:
            self.seconds += time.process_time() - start


def issue(
    records: list[RecordDocument],
    signers: tuple[TimedSigner, TimedSigner, TimedSigner],
    times: tuple[dt.datetime, dt.datetime, dt.datetime],
    pki: TestPki,
    phases: dict[str, float],
    tsa: Any = None,
) -> list[bytes]:
    """The issuance path, class by class; adds each phase's CPU seconds to ``phases``, and
    the part of the signing phases spent in the private-key operations to ``private_key``."""
    teacher, principal, school = signers
    in_backends = sum(s.seconds for s in signers)
    roots, crls = [pki.root_certificate], [pki.crl]
    issued: list[bytes] = []
    clock = time.process_time
    for start in range(0, len(records), CLASS_SIZE):
        t0 = clock()
        documents = [build_record_xml(r) for r in records[start : start + CLASS_SIZE]]
        t1 = clock()
        documents = _stamp(
            sign_slots(documents, "GVCN", teacher, times[0], {"SO_CCCD": TEACHER_CCCD}), tsa, "GVCN"
        )
        t2 = clock()
        documents = _stamp(
            sign_slots(documents, "CBQL", principal, times[1], {"SO_CCCD": PRINCIPAL_CCCD}),
            tsa,
            "CBQL",
        )
        t3 = clock()
        documents = _stamp(
            sign_slots(documents, "KY_PHAT_HANH", school, times[2]), tsa, "KY_PHAT_HANH"
        )
        t4 = clock()
        for document in documents:
            report = verify_record_signatures(document, roots, crls=crls)
            if not report.ok:
                raise SystemExit(f"issued record does not verify: {report}")
            if tsa is not None:
                stamps, _ = check_record_timestamps(parse_record_xml_safely(document), roots)
                if len(stamps) != 3 or any(c.info is None for c in stamps.values()):
                    raise SystemExit("issued record's timestamps do not verify")
        t5 = clock()
        hashes_ = [hashlib.sha256(d).hexdigest() for d in documents]
        t6 = clock()
        assert len(hashes_) == len(documents)
        issued.extend(documents)
        for name, seconds in (
            ("build", t1 - t0),
            ("sign_gvcn", t2 - t1),
            ("sign_cbql", t3 - t2),
            ("sign_seal", t4 - t3),
            ("verify", t5 - t4),
            ("sha256", t6 - t5),
        ):
            phases[name] = phases.get(name, 0.0) + seconds
    private_key = sum(s.seconds for s in signers) - in_backends
    phases["private_key"] = phases.get("private_key", 0.0) + private_key
    return issued


def _stamp(documents: list[bytes], tsa: Any, slot: str) -> list[bytes]:
    return documents if tsa is None else add_signature_timestamps(documents, tsa, [slot])


def verify_all(documents: list[bytes], pki: TestPki) -> None:
    roots, crls = [pki.root_certificate], [pki.crl]
    for document in documents:
        if not verify_record_signatures(document, roots, crls=crls).ok:
            raise SystemExit("issued record does not verify")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--key-type", choices=("rsa", "ecdsa"), default="rsa")
    ap.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the last)")
    ap.add_argument("--json-out", type=Path, default=None)
    ap.add_argument("--timestamps", action="store_true", help="also issuance with RFC 3161")
    args = ap.parse_args()

    affinity, cpu = pin_to_one_cpu(args.cpu)
    total_start = time.perf_counter()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="hocba-bench-pki-") as tmp:
        pki = TestPki.init(Path(tmp) / "pki", key_type=args.key_type)
        kind = args.key_type
        teacher_id = pki.issue_person(
            TEACHER_CCCD, "Nguyễn Thị Hoà", "Giáo viên chủ nhiệm", PASSWORD, key_type=kind
        )
        principal_id = pki.issue_person(
            PRINCIPAL_CCCD, "Trần Văn Đức", "Hiệu trưởng", PASSWORD, key_type=kind
        )
        school_id = pki.issue_school(SCHOOL_CODE, SCHOOL_NAME, PASSWORD, key_type=kind)
        signers = (
            TimedSigner(SoftwareSigner.from_pkcs12(teacher_id.p12_path, PASSWORD)),
            TimedSigner(SoftwareSigner.from_pkcs12(principal_id.p12_path, PASSWORD)),
            TimedSigner(SoftwareSigner.from_pkcs12(school_id.p12_path, PASSWORD)),
        )
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        times = (
            now - dt.timedelta(minutes=30),
            now - dt.timedelta(minutes=20),
            now - dt.timedelta(minutes=10),
        )
        records = [make_record(i) for i in range(args.records)]
        # warm-up: XSD compilation, parser, certificate caches (one class)
        issue(records[:CLASS_SIZE], signers, times, pki, {})

        metrics: tuple[str, ...] = ("raw_sign", "raw_verify", "issuance", "verification")
        services = None
        tsa = None
        client_runs: list[float] = []
        if args.timestamps:
            services = serve_trust_services(pki.directory)
            tsa = TsaClient(services.__enter__() + "/tsa")
            issue(records[:CLASS_SIZE], signers, times, pki, {}, tsa)  # warm-up
            metrics += ("issuance_timestamps",)
        runs: dict[str, dict[str, list[float]]] = {c: {m: [] for m in metrics} for c in CLOCKS}
        phase_runs: list[dict[str, float]] = []

        def add(metric: str, rates: Rates) -> None:
            for c in CLOCKS:
                runs[c][metric].append(rates[c])

        for _ in range(args.repeat):
            raw_sign, raw_verify = raw_rates(school_id.p12_path, RAW_SECONDS)
            add("raw_sign", raw_sign)
            add("raw_verify", raw_verify)
            # each phase starts with no signature value known to be valid: every run signs
            # the same digests again (RSA PKCS#1 v1.5 values are deterministic), and the
            # verification phase verifies documents issuance has just checked
            clear_verified_signatures()
            gc.collect()
            phases: dict[str, float] = {}
            start = _clocks()
            issued = issue(records, signers, times, pki, phases)
            add("issuance", _per_second(len(records), start))
            phase_runs.append(phases)
            clear_verified_signatures()
            gc.collect()
            start = _clocks()
            verify_all(issued, pki)
            add("verification", _per_second(len(issued), start))
            if tsa is not None:
                clear_verified_signatures()
                gc.collect()
                start = _clocks()
                thread_start = time.thread_time()
                issue(records, signers, times, pki, {}, tsa)
                add("issuance_timestamps", _per_second(len(records), start))
                client_runs.append(len(records) / (time.thread_time() - thread_start))
        if services is not None:
            services.__exit__(None, None, None)

    results: dict[str, dict[str, object]] = {}
    for c in CLOCKS:
        median = {m: statistics.median(v) for m, v in runs[c].items()}
        issuance_limit = median["raw_sign"] / 3
        verification_limit = median["raw_verify"] / 3
        results[c] = {
            "rates_per_s": {m: round(v, 1) for m, v in median.items()},
            "runs_per_s": {m: [round(x, 1) for x in v] for m, v in runs[c].items()},
            "issuance_limit_records_per_s": round(issuance_limit, 1),
            "verification_limit_records_per_s": round(verification_limit, 1),
            "ratio_issuance": round(median["issuance"] / issuance_limit, 3),
            "ratio_verification": round(median["verification"] / verification_limit, 3),
        }
        if "issuance_timestamps" in median:
            results[c]["ratio_timestamps"] = round(
                median["issuance_timestamps"] / median["issuance"], 3
            )
    median_phases = {
        k: statistics.median(p[k] for p in phase_runs) * 1e3 / args.records for k in phase_runs[0]
    }
    # the private-key share of issuance's CPU time, both measured in the same window: the
    # ratio issuance / (sign rate / 3) with the sign rate taken inside the path itself
    in_path = statistics.median(
        p["private_key"] / sum(v for k, v in p.items() if k != "private_key") for p in phase_runs
    )
    result = {
        "benchmark": "issuance",
        "records": args.records,
        "repeat": args.repeat,
        "class_size": CLASS_SIZE,
        "key_type": "RSA-2048" if args.key_type == "rsa" else "ECDSA P-256",
        "pinned_cpu": cpu,
        "affinity_before": affinity,
        "load_average_before_after": [round(x, 2) for x in (*load_before, *os.getloadavg())],
        "machine": {
            "python": platform.python_version(),
            "cryptography": cryptography.__version__,
            "lxml": ".".join(map(str, lxml.etree.LXML_VERSION)),
            "libxml2": ".".join(map(str, lxml.etree.LIBXML_VERSION)),
            "cpu_count": os.cpu_count(),
            "processor": _cpu_model(),
        },
        **results,
        "issuance_cpu_ms_per_record": {k: round(v, 4) for k, v in median_phases.items()},
        "ratio_issuance_in_path": round(in_path, 3),
        **(
            {
                # CPU of this thread only: the issuing side without the in-process TSA
                "issuance_timestamps_client_cpu_per_s": round(statistics.median(client_runs), 1),
                "ratio_timestamps_client_cpu": round(
                    statistics.median(client_runs) / statistics.median(runs["cpu"]["issuance"]), 3
                ),
            }
            if client_runs
            else {}
        ),
        "targets": {"issuance_records_per_s": 500, "verification_records_per_s": 800},
        "elapsed_s": round(time.perf_counter() - total_start, 1),
    }
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n", encoding="utf-8")
    print(_summary(result), file=sys.stderr)


def _summary(r: dict[str, Any]) -> str:
    wall, cpu = r["wall"], r["cpu"]

    def row(label: str, metric: str, unit: str) -> str:
        return (
            f"  {label:13s} {wall['rates_per_s'][metric]:9.0f} {cpu['rates_per_s'][metric]:9.0f}"
            f"  {unit}"
        )

    return "\n".join(
        [
            f"\n{r['key_type']}, {r['records']} records in classes of {r['class_size']}, "
            f"median of {r['repeat']}, pinned to CPU {r['pinned_cpu']} (affinity was "
            f"{r['affinity_before']}), load average {r['load_average_before_after']}",
            f"  {'':13s} {'wall':>9s} {'cpu':>9s}  (per second of elapsed / of CPU time)",
            row("raw sign", "raw_sign", "signatures/s"),
            row("raw verify", "raw_verify", "verifications/s"),
            row("issuance", "issuance", "records/s (target ≥ 500)"),
            row("verification", "verification", "records/s (target ≥ 800)"),
            f"  ratio issuance / (raw sign / 3):         wall {wall['ratio_issuance']:.2f}  "
            f"cpu {cpu['ratio_issuance']:.2f}  (target about 1/3)",
            f"  ratio verification / (raw verify / 3):   wall {wall['ratio_verification']:.3f}  "
            f"cpu {cpu['ratio_verification']:.3f}",
            f"  private-key share of issuance CPU time:  {r['ratio_issuance_in_path']:.2f}  "
            "(the issuance ratio with the sign rate measured inside the path)",
            "  issuance, CPU ms per record: "
            + ", ".join(f"{k} {v:.3f}" for k, v in r["issuance_cpu_ms_per_record"].items()),
            f"  elapsed {r['elapsed_s']} s",
        ]
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
