"""Benchmark: the paper copy — render a pupil's book and sign it twice (issue 4 target).

Target (issue 4, "Speed"): render plus both signatures at least 40 PDFs/s/core, i.e. at
most 25 ms of CPU per book. Everything runs in this one process, pinned to one CPU, with
software keys from a temporary :class:`~hocba.dev.testpki.TestPki` and records issued by the
real path (GVCN → CBQL → seal XML signatures); each rate comes with baselines measured in
the same run, so the ratios travel between machines:

* ``raw_sign``: signatures per second over prehashed SHA-256 digests with ``cryptography``
  (RSASSA-PKCS1-v1_5 for RSA-2048, ECDSA P-256 otherwise) with the school's key — the
  private-key operation each PDF signature contains once;
* ``plain_page``: A4 pages per second of a plain ReportLab page — a title, a 12-row
  table and three paragraphs in the built-in Helvetica (no font embedding), laid out with
  platypus — the cost of the library itself;
* ``books``: per book, :func:`~hocba.pdf.render.render_book` (the latest year's
  record, or ``--years`` years) then :func:`~hocba.pdf.sign.sign_pdf` (attach the
  XML, the principal's certification signature, the school seal's locking signature).

The per-book CPU time is split into ``render``, ``prepare`` (reading the rendering: the
Info subject, the principal's box; the stamps' appearances, cached), ``principal`` (revision
1: attachment, form, principal's signature) and ``seal`` (revision 2), and the share spent
in the private-key operations is given. Ratios: ``books / (raw_sign / 2)`` (two signatures
per book: the ceiling if signing were all there is) and ``render / plain_page`` (a book's
rendering in plain pages).

Every rate is reported per second of elapsed time (``wall``) and per second of this
process's CPU time (``cpu``); pinned and single-threaded, the CPU clock is the core's time
actually spent, the steady figure when other work shares the machine. The first book of
each run is verified (:func:`~hocba.pdf.sign.verify_pdf`, not timed).

With ``--lta`` (issue 12) the run also measures ``lta``: books per second of
:func:`~hocba.tasks.pdf_lta.make_lta` alone (DSS with the two signers' OCSP answers,
asked once per run as ``make_books`` does once per class, and the CRL, then
the document timestamp from the project's TSA over real HTTP, served by a thread of this
process, so the TSA's CPU is counted too) over signed books of the run, and
``ratio_books_lta``: the rate of render + sign + LTA over the rate of render + sign.

Run: ``.venv/bin/python bench/pdf.py [--books 200] [--years 1] [--repeat 3]
[--key-type rsa] [--cpu N] [--lta]``. Prints JSON on stdout and a short summary on stderr;
``--json-out FILE`` also writes the JSON to a file. Each figure is the median of
``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib.metadata
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import cryptography
import reportlab
from issuance import (
    CLASS_SIZE,
    CLOCKS,
    PASSWORD,
    PRINCIPAL_CCCD,
    SCHOOL_CODE,
    SCHOOL_NAME,
    TEACHER_CCCD,
    Rates,
    TimedSigner,
    _clocks,
    _cpu_model,
    _per_second,
    _rate,
    make_record,
    pin_to_one_cpu,
    raw_rates,
)
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.platypus import Paragraph, SimpleDocTemplate, Table

from hocba.dev.testpki import TestPki
from hocba.dev.trust_services import serve_trust_services
from hocba.pdf import sign as pdf_sign
from hocba.pdf.render import render_book
from hocba.pdf.sign import sign_pdf, verify_pdf
from hocba.pki.ocsp import OcspClient
from hocba.pki.signer import SoftwareSigner
from hocba.tasks.pdf_lta import cached_ocsp, make_lta
from hocba.xml.dsig import sign_slots
from hocba.xml.record import build_record_xml
from hocba.xml.timestamps import TsaClient
from hocba.xml.verify import CheckStatus, Verdict

VERIFY_URL = "https://tracuu.hocba.example.vn/xac-thuc"
PLAIN_SECONDS = 1.0
PHASES = ("render", "prepare", "principal", "seal")


def plain_page() -> bytes:
    """One A4 page of plain ReportLab: title, 12-row table, three paragraphs, Helvetica."""
    styles = getSampleStyleSheet()
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, invariant=True, pageCompression=1)
    rows = [["TT", "Subject", "Level", "Score"]]
    rows += [[str(i), f"Subject number {i}", "T", str(i % 10)] for i in range(1, 13)]
    text = "Plain text paragraph with several words to lay out over a couple of lines. " * 4
    doc.build(
        [
            Paragraph("Plain ReportLab page", styles["Title"]),
            Table(rows, style=[("GRID", (0, 0), (-1, -1), 0.5, (0, 0, 0))]),
            *(Paragraph(text, styles["BodyText"]) for _ in range(3)),
        ]
    )
    return out.getvalue()


def issue_books(
    count: int, years: int, signers: tuple[SoftwareSigner, SoftwareSigner, SoftwareSigner]
) -> list[list[bytes]]:
    """``count`` pupils' issued records, ``years`` school years each (setup, not timed)."""
    teacher, principal, school = signers
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    documents = []
    for pupil in range(count):
        for year in range(years):
            record = make_record(pupil)
            general = record.thong_tin_chung
            start = 2025 - years + year
            grade = 5 - years + 1 + year
            general.update(
                MA_TRA_CUU_UUID=str(uuid.uuid4()),
                NAM_HOC=start,
                TEN_NAM_HOC=f"{start}-{start + 1}",
                MA_KHOI=grade,
                TEN_LOP=f"{grade}A",
            )
            documents.append(build_record_xml(record))
    signed: list[bytes] = []
    for first in range(0, len(documents), CLASS_SIZE):
        batch = documents[first : first + CLASS_SIZE]
        batch = sign_slots(
            batch, "GVCN", teacher, now - dt.timedelta(minutes=30), {"SO_CCCD": TEACHER_CCCD}
        )
        batch = sign_slots(
            batch, "CBQL", principal, now - dt.timedelta(minutes=20), {"SO_CCCD": PRINCIPAL_CCCD}
        )
        signed += sign_slots(batch, "KY_PHAT_HANH", school, now - dt.timedelta(minutes=10))
    return [signed[i : i + years] for i in range(0, len(signed), years)]


#: where the revision writers live (``_certify``/``_seal``: the direct path, ``_sign``:
#: pyHanko's), then the older single module for comparing before / after
_SIGNING_MODULES: tuple[ModuleType, ...] = tuple(
    m
    for m in (
        sys.modules.get("hocba.pdf.direct"),
        sys.modules.get("hocba.pdf.fallback"),
        pdf_sign,
    )
    if m is not None
)


class PhaseClock:
    """Adds the CPU time of the revision writers (or, on pyHanko's path, of each
    of its two ``_sign`` calls) to ``principal`` / ``seal``, by wrapping them while the
    benchmark runs."""

    def __init__(self) -> None:
        self.seconds = {"principal": 0.0, "seal": 0.0}
        self.calls: dict[str, int] = {}
        self._pyhanko_calls = 0
        self._originals: dict[str, tuple[ModuleType, Callable[..., Any]]] = {}

    def _wrap(self, name: str, phase: Callable[[], str]) -> None:
        module = next((m for m in _SIGNING_MODULES if hasattr(m, name)), None)
        if module is None:  # an older pdf_sign (comparing before / after)
            return
        original = getattr(module, name)
        self._originals[name] = (module, original)

        def timed(*args: Any, **kwargs: Any) -> Any:
            label = phase()
            self.calls[name] = self.calls.get(name, 0) + 1
            start = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.process_time() - start

        setattr(module, name, timed)

    def _pyhanko_phase(self) -> str:
        self._pyhanko_calls += 1
        return "principal" if self._pyhanko_calls % 2 else "seal"

    def __enter__(self) -> PhaseClock:
        self._wrap("_certify", lambda: "principal")
        self._wrap("_seal", lambda: "seal")
        self._wrap("_sign", self._pyhanko_phase)
        return self

    def __exit__(self, *exc: object) -> None:
        for name, (module, original) in self._originals.items():
            setattr(module, name, original)


def run_books(
    books: list[list[bytes]],
    principal: TimedSigner,
    seal: TimedSigner,
    when: dt.datetime,
) -> tuple[Rates, dict[str, float], list[bytes], str]:
    """Render and sign every book; returns the rates, the CPU seconds per phase (and in
    the private-key operations), the first PDF of the run and the signing path taken
    (``direct``: the revisions written by hocba.pdf.direct itself; ``pyhanko``)."""
    in_backends = principal.seconds + seal.seconds
    render = sign = 0.0
    first: list[bytes] = []
    with PhaseClock() as clock:
        start = _clocks()
        for years in books:
            t0 = time.process_time()
            pdf = render_book(years, verify_url=VERIFY_URL)
            t1 = time.process_time()
            signed = sign_pdf(pdf, principal=principal, seal=seal, record_xml=years[-1], when=when)
            t2 = time.process_time()
            render += t1 - t0
            sign += t2 - t1
            if not first:
                first.append(signed)
        rates = _per_second(len(books), start)
    phases = {
        "render": render,
        "prepare": sign - clock.seconds["principal"] - clock.seconds["seal"],
        **clock.seconds,
        "private_key": principal.seconds + seal.seconds - in_backends,
    }
    direct, by_pyhanko = clock.calls.get("_certify", 0), clock.calls.get("_sign", 0)
    path = "direct" if direct and not by_pyhanko else "pyhanko" if not direct else "mixed"
    return rates, phases, first, path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--books", type=int, default=200)
    ap.add_argument("--years", type=int, default=1, choices=range(1, 6))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--key-type", choices=("rsa", "ecdsa"), default="rsa")
    ap.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the last)")
    ap.add_argument("--json-out", type=Path, default=None)
    ap.add_argument("--lta", action="store_true", help="also PAdES B-LTA (DSS + doc timestamp)")
    args = ap.parse_args()

    affinity, cpu = pin_to_one_cpu(args.cpu)
    total_start = time.perf_counter()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="hocba-bench-pki-") as tmp:
        pki = TestPki.init(Path(tmp) / "pki", key_type=args.key_type)
        kind = args.key_type
        identities = (
            pki.issue_person(
                TEACHER_CCCD, "Nguyễn Thị Hoà", "Giáo viên chủ nhiệm", PASSWORD, key_type=kind
            ),
            pki.issue_person(
                PRINCIPAL_CCCD, "Trần Văn Đức", "Hiệu trưởng", PASSWORD, key_type=kind
            ),
            pki.issue_school(SCHOOL_CODE, SCHOOL_NAME, PASSWORD, key_type=kind),
        )
        software = tuple(SoftwareSigner.from_pkcs12(i.p12_path, PASSWORD) for i in identities)
        books = issue_books(args.books, args.years, software)  # type: ignore[arg-type]
        principal, seal = TimedSigner(software[1]), TimedSigner(software[2])
        when = dt.datetime.now(dt.UTC)
        # warm-up: fonts, font subsets, stamps, CMS templates, QR polynomials (one class)
        run_books(books[:CLASS_SIZE], principal, seal, when)
        plain_page()

        metrics: tuple[str, ...] = ("raw_sign", "plain_page", "books")
        lta_books: list[bytes] = []
        services = None
        if args.lta:
            services = serve_trust_services(pki.directory)
            trust_url = services.__enter__()
            tsa, ocsp = TsaClient(trust_url + "/tsa"), OcspClient(trust_url + "/ocsp")
            lta_books = [
                sign_pdf(
                    render_book(years, verify_url=VERIFY_URL),
                    principal=principal,
                    seal=seal,
                    record_xml=years[-1],
                    when=when,
                )
                for years in books[: min(len(books), 50)]
            ]

            def lta_all() -> None:
                status = cached_ocsp(ocsp.status)  # once per signer and class, as the app does
                for pdf in lta_books:
                    make_lta(
                        pdf,
                        tsa,
                        roots=[pki.root_certificate],
                        ocsp_source=status,
                        crls=[pki.crl],
                    )

            lta_all()  # warm-up
            metrics += ("lta",)
        runs: dict[str, dict[str, list[float]]] = {c: {m: [] for m in metrics} for c in CLOCKS}
        phase_runs: list[dict[str, float]] = []
        sizes: list[int] = []
        roots, crl = [pki.root_certificate], pki.crl

        def add(metric: str, rates: Rates) -> None:
            for c in CLOCKS:
                runs[c][metric].append(rates[c])

        for _ in range(args.repeat):
            add("raw_sign", raw_rates(identities[2].p12_path, 1.0)[0])
            add("plain_page", _rate(plain_page, 1, PLAIN_SECONDS))
            gc.collect()
            rates, phases, first, path = run_books(books, principal, seal, when)
            add("books", rates)
            phase_runs.append(phases)
            report = verify_pdf(first[0], trusted_roots=roots, crl_source=lambda _c: crl)
            if report.verdict is Verdict.INVALID or any(
                c.status is CheckStatus.FAIL for c in report.checks
            ):  # no registry here, so at best INDETERMINATE: but no check may fail
                raise SystemExit(f"a benchmarked book does not verify:\n{report.render_text()}")
            sizes.append(len(first[0]))
            if lta_books:
                gc.collect()
                start = _clocks()
                lta_all()
                add("lta", _per_second(len(lta_books), start))
        if services is not None:
            services.__exit__(None, None, None)

    results: dict[str, dict[str, object]] = {}
    for c in CLOCKS:
        median = {m: statistics.median(v) for m, v in runs[c].items()}
        results[c] = {
            "rates_per_s": {m: round(v, 1) for m, v in median.items()},
            "runs_per_s": {m: [round(x, 1) for x in v] for m, v in runs[c].items()},
            "ratio_books_to_raw_sign_half": round(median["books"] / (median["raw_sign"] / 2), 4),
        }
        if "lta" in median:
            combined = 1 / (1 / median["books"] + 1 / median["lta"])
            results[c]["ratio_books_lta"] = round(combined / median["books"], 3)
    per_book = {
        k: statistics.median(p[k] for p in phase_runs) * 1e3 / args.books for k in phase_runs[0]
    }
    per_book["total"] = sum(per_book[k] for k in PHASES)
    plain_ms = 1e3 / statistics.median(runs["cpu"]["plain_page"])
    result = {
        "benchmark": "pdf",
        "books": args.books,
        "years_per_book": args.years,
        "pages_per_book": 2 + 2 * args.years,
        "repeat": args.repeat,
        "key_type": "RSA-2048" if args.key_type == "rsa" else "ECDSA P-256",
        "signing_path": path,
        "pinned_cpu": cpu,
        "affinity_before": affinity,
        "load_average_before_after": [round(x, 2) for x in (*load_before, *os.getloadavg())],
        "machine": {
            "python": platform.python_version(),
            "cryptography": cryptography.__version__,
            "pyhanko": importlib.metadata.version("pyHanko"),
            "reportlab": reportlab.Version,
            "rl_accel": _has_rl_accel(),
            "cpu_count": os.cpu_count(),
            "processor": _cpu_model(),
        },
        **results,
        "book_cpu_ms": {k: round(v, 3) for k, v in per_book.items()},
        "plain_page_cpu_ms": round(plain_ms, 3),
        "ratio_render_to_plain_page": round(per_book["render"] / plain_ms, 2),
        "private_key_share_of_book": round(per_book["private_key"] / per_book["total"], 3),
        "signed_pdf_bytes": int(statistics.median(sizes)),
        "target": {"books_per_s": 40, "cpu_ms_per_book": 25},
        "elapsed_s": round(time.perf_counter() - total_start, 1),
    }
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n", encoding="utf-8")
    print(_summary(result), file=sys.stderr)


def _has_rl_accel() -> bool:
    try:
        import _rl_accel  # noqa: F401
    except ImportError:
        return False
    return True


def _summary(r: dict[str, Any]) -> str:
    wall, cpu = r["wall"], r["cpu"]

    def row(label: str, metric: str, unit: str) -> str:
        return (
            f"  {label:11s} {wall['rates_per_s'][metric]:9.1f} {cpu['rates_per_s'][metric]:9.1f}"
            f"  {unit}"
        )

    ms = r["book_cpu_ms"]
    return "\n".join(
        [
            f"\n{r['key_type']} ({r['signing_path']} signing), {r['books']} books of "
            f"{r['years_per_book']} year(s) / {r['pages_per_book']} pages, median of "
            f"{r['repeat']}, pinned to CPU {r['pinned_cpu']} (affinity was "
            f"{r['affinity_before']}), load average {r['load_average_before_after']}",
            f"  {'':11s} {'wall':>9s} {'cpu':>9s}  (per second of elapsed / of CPU time)",
            row("raw sign", "raw_sign", "signatures/s"),
            row("plain page", "plain_page", "pages/s (ReportLab, Helvetica, platypus)"),
            row("books", "books", "PDFs/s: render + 2 signatures (target ≥ 40)"),
            f"  per book, CPU ms: render {ms['render']:.2f}, prepare {ms['prepare']:.2f}, "
            f"principal {ms['principal']:.2f}, seal {ms['seal']:.2f}, total {ms['total']:.2f} "
            f"(target ≤ 25); private-key operations {ms['private_key']:.2f}",
            f"  render = {r['ratio_render_to_plain_page']:.1f} plain pages; books / (raw sign"
            f" / 2) = cpu {cpu['ratio_books_to_raw_sign_half']:.3f}; signed PDF "
            f"{r['signed_pdf_bytes'] / 1024:.0f} KiB",
            f"  elapsed {r['elapsed_s']} s",
        ]
    )


if __name__ == "__main__":
    main()
