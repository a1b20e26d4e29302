"""The ``hocba`` command (typer). Every command works on the configured database.

Run ``hocba --help``; each command's help is in Vietnamese and English where it helps.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hocba import db
from hocba.config import load_settings
from hocba.errors import HocbaError
from hocba.models.lifecycle import SYSTEM, claim_waiting
from hocba.models.lifecycle_states import COHORT_LABELS, STATE_LABELS, STATES

if TYPE_CHECKING:
    import httpx

    from hocba.dev.portal import PortalFactory


app = typer.Typer(
    help="hocba: Học bạ số cấp tiểu học — lập, ký, phát hành, gửi và chuyển học bạ số.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Cơ sở dữ liệu: nâng cấp lược đồ, dừng máy chủ nhúng.")
audit_app = typer.Typer(help="Nhật ký kiểm toán (chuỗi băm).")
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")

console = Console()
err = Console(stderr=True)


@app.callback()
def _main() -> None:
    """Every command logs through hocba.logs: personal IDs masked, libraries quiet."""
    from hocba.logs import configure

    configure()


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def _school_id(session: Any, code: str) -> int:
    sid = (
        session.connection()
        .exec_driver_sql("SELECT id FROM school WHERE code = %s", (code,))
        .scalar()
    )
    if sid is None:
        err.print(f"[red]Không có trường mã «{code}». Xem danh sách: hocba status.[/red]")
        raise typer.Exit(2)
    return int(sid)


@contextmanager
def _refused(*errors: type[Exception], code: int = 1) -> Iterator[None]:
    """One of ``errors`` ends the command: its message (Vietnamese, for people) in red,
    exit status ``code``."""
    try:
        yield
    except errors as exc:
        err.print(f"[red]{exc.message if isinstance(exc, HocbaError) else exc}[/red]")
        raise typer.Exit(code) from None


def _prepare() -> None:
    """Bring the schema to head (cheap when it already is)."""
    settings = load_settings()
    db.upgrade(db.get_engine(), settings.schema)


def _rows(sql: str, params: tuple[Any, ...]) -> list[Any]:
    """The rows of one read query (``%s`` placeholders) on the configured database."""
    _prepare()
    with db.session_scope() as session:
        return list(session.connection().exec_driver_sql(sql, params).all())


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Tạo/nâng cấp lược đồ dữ liệu (Alembic) lên phiên bản mới nhất."""
    settings = load_settings()
    db.upgrade(db.get_engine(), settings.schema)
    console.print(
        f"Lược đồ «{settings.schema}» ở phiên bản {db.current_revision(db.get_engine())}."
    )


@db_app.command("stop")
def db_stop() -> None:
    """Dừng máy chủ PostgreSQL nhúng (nếu đang chạy)."""
    settings = load_settings()
    stopped = db.stop_embedded_server(settings.pgdata)
    console.print("Đã dừng máy chủ nhúng." if stopped else "Máy chủ nhúng không chạy.")


@app.command("template")
def template(
    out: Annotated[Path, typer.Argument(help="Tệp .xlsx sẽ tạo")] = Path(
        "hocba_mau_nhap_lieu.xlsx"
    ),
) -> None:
    """Tạo tệp Excel mẫu nhập liệu (trang HocSinh và Lop)."""
    from hocba.tasks.importer import write_workbook

    write_workbook(out)
    console.print(f"Đã tạo mẫu nhập liệu: {out}")


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=".xlsx hoặc .csv")],
    school: Annotated[str, typer.Option(help="Mã trường (MA_TRUONG)")],
    year: Annotated[str, typer.Option(help="Năm học, ví dụ 2024-2025")],
    drafts: Annotated[bool, typer.Option(help="Lập bản nháp học bạ ngay sau khi nhập")] = True,
) -> None:
    """Nhập danh sách học sinh và kết quả cuối năm; lỗi nào cũng báo đủ dòng, cột; không
    ghi gì nếu có lỗi."""
    from hocba.models.records import create_drafts
    from hocba.tasks.importer import ImportFailed, import_file

    _prepare()
    try:
        with db.session_scope() as session, err.status(f"Đang đọc và kiểm tra {path.name}…"):
            t0 = time.perf_counter()
            report = import_file(session, path, school, year, SYSTEM)
        if drafts:  # its own transaction: record locks, then audit head (one lock order)
            from hocba.tasks.importer import school_year_id

            with db.session_scope() as session:
                d = create_drafts(
                    session, SYSTEM, [_school_id(session, school)], school_year_id(session, year)
                )
    except ImportFailed as exc:
        err.print(f"[red]{exc.summary(limit=50)}[/red]")
        raise typer.Exit(1) from None
    console.print(report.text_vi() + f" ({time.perf_counter() - t0:.1f} s)")
    if drafts:
        console.print(f"Bản nháp học bạ: {d.created} mới, {d.refreshed} cập nhật.")


@app.command("drafts")
def drafts_cmd(
    school: Annotated[str | None, typer.Option(help="Mã trường; bỏ trống = mọi trường")] = None,
) -> None:
    """Lập bản nháp học bạ từ kết quả cuối năm đã nhập (bước 2)."""
    from hocba.models.records import create_drafts

    _prepare()
    with db.session_scope() as session:
        ids = None
        if school:
            ids = [_school_id(session, school)]
        d = create_drafts(session, SYSTEM, ids)
    console.print(
        f"Bản nháp: {d.created} mới, {d.refreshed} cập nhật; "
        f"{d.without_id} học sinh chưa có mã định danh (không lập học bạ số)."
    )


@app.command("demo")
def demo(
    schools: Annotated[int, typer.Option(min=1, max=200, help="Số trường")] = 12,
    pupils_per_school: Annotated[
        int, typer.Option(min=5, max=5000, help="Số học sinh mỗi trường")
    ] = 420,
    seed: Annotated[
        int, typer.Option(help="Hạt giống ngẫu nhiên (cùng hạt giống, cùng dữ liệu)")
    ] = 2025,
    year: Annotated[str | None, typer.Option(help="Năm học, mặc định năm học hiện tại")] = None,
    sign: Annotated[
        bool,
        typer.Option(
            help="Ký, phát hành, gửi cổng của Sở (chạy nội bộ) và chuyển trường vài học sinh "
            "bằng các luồng Prefect"
        ),
    ] = True,
    submit: Annotated[
        bool, typer.Option(help="Gửi cổng của Sở và chuyển trường (khi không: chỉ phát hành)")
    ] = True,
    workers: Annotated[int, typer.Option(min=1, max=16, help="Số máy chạy (tiến trình)")] = 2,
    transfers: Annotated[int, typer.Option(min=0, help="Số học sinh chuyển trường")] = 3,
) -> None:
    """Tạo một huyện mẫu (Đầm Hà, Quảng Ninh) và chạy cả quy trình: nhập, bản nháp, GVCN
    duyệt và ký, hiệu trưởng ký, đóng dấu, gửi Sở, nhận kết quả, chuyển trường."""
    from hocba.dev.demo import DEMO_PASSWORD, run_demo

    settings = load_settings()
    _prepare()
    t0 = time.perf_counter()
    with _progress() as progress:
        tasks: dict[str, Any] = {}

        def step(name: str, done: int, total: int) -> None:
            label = {
                "import": "Nhập dữ liệu các trường",
                "review": "GVCN duyệt học bạ",
                "sign": "Ký: GVCN, hiệu trưởng, đóng dấu",
                "submit": "Gửi Sở, nhận kết quả",
            }[name]
            if name not in tasks:
                tasks[name] = progress.add_task(label, total=total)
            progress.update(tasks[name], completed=done, total=total)

        report = run_demo(
            db.session_scope, settings.home, schools, pupils_per_school, seed, year, step
        )
        flows_report: dict[str, Any] = {}
        if sign:
            import logging
            import os

            os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # the progress bars speak
            for name in ("hocba.dev.portal", "hocba.portal.client", "hocba.tasks.submission"):
                logging.getLogger(name).setLevel(logging.WARNING)  # one line per transaction
            from hocba.flows.demo import run_demo_workflow

            flows_report = run_demo_workflow(workers, transfers, step, submit)
    console.print(
        f"Huyện mẫu Đầm Hà, năm học {report.year}: {report.schools} trường, {report.pupils} "
        f"học sinh, {report.without_id} chưa có mã định danh, {report.drafts} học bạ mới "
        f"({time.perf_counter() - t0:.1f} s)."
    )
    if flows_report:
        console.print(
            f"Ký, phát hành và gửi Sở với {workers} máy chạy: "
            f"{flows_report['seconds']:.1f} s; {flows_report['transfers']} học sinh chuyển "
            "trường (gói ký bằng con dấu, trường nhận kiểm tra và gửi biên nhận)."
        )
    if report.approve_failures:
        console.print(
            f"{report.approve_failures} học bạ chưa được duyệt vì còn cảnh báo TT27 "
            "(xem `hocba records --state in_review`)."
        )
    _print_status()
    console.print(
        f"Tài khoản mẫu (mật khẩu «{DEMO_PASSWORD}»): phong.dh (Phòng GDĐT), "
        "dh01.ht (Hiệu trưởng), dh01.vt (Văn thư), dh01.gv1a (GVCN lớp 1A)."
    )


def _status_rows() -> tuple[list[dict[str, Any]], dict[str, int]]:
    from hocba.models.records import stage_counts, without_id_counts

    with db.session_scope() as session:
        return stage_counts(session), without_id_counts(session)


def _print_status() -> None:
    rows, no_id = _status_rows()
    per: dict[tuple[str, str, str], dict[str, int]] = defaultdict(dict)
    names: dict[str, str] = {}
    for r in rows:
        per[(r["code"], r["cohort"], r["name"])][r["state"]] = r["n"]
        names[r["code"]] = r["name"]
    used = [s for s in STATES if any(s in v for v in per.values())]
    table = Table(title="Học bạ theo trường, đợt và bước")
    table.add_column("Trường")
    table.add_column("Đợt")
    for s in used:
        table.add_column(STATE_LABELS[s], justify="right")
    table.add_column("Chưa có mã định danh", justify="right")
    totals: dict[str, int] = defaultdict(int)
    for (code, cohort, name), counts in sorted(per.items()):
        table.add_row(
            f"{code} {name.removeprefix('Trường Tiểu học ')}",
            COHORT_LABELS[cohort],
            *(str(counts.get(s, 0)) for s in used),
            str(no_id.get(code, 0)) if cohort == "june" else "",
        )
        for s in used:
            totals[s] += counts.get(s, 0)
    table.add_row(
        "[bold]Tổng[/bold]",
        "",
        *(f"[bold]{totals[s]}[/bold]" for s in used),
        f"[bold]{sum(no_id.values())}[/bold]",
    )
    console.print(table)


@app.command("status")
def status(
    json_out: Annotated[bool, typer.Option("--json", help="In JSON cho máy đọc")] = False,
) -> None:
    """Số học bạ theo từng bước, từng trường và từng đợt."""
    _prepare()
    if not json_out:
        _print_status()
        return
    rows, no_id = _status_rows()
    schools: dict[str, dict[str, Any]] = {}
    for r in rows:
        s = schools.setdefault(
            r["code"],
            {
                "school": r["code"],
                "name": r["name"],
                "without_personal_id": no_id.get(r["code"], 0),
                "cohorts": {},
            },
        )
        s["cohorts"].setdefault(r["cohort"], {})[r["state"]] = r["n"]
    json.dump({"schools": list(schools.values())}, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


@app.command("records")
def records(
    state: Annotated[str | None, typer.Option(help="Lọc theo trạng thái")] = None,
    school: Annotated[str | None, typer.Option(help="Lọc theo mã trường")] = None,
    limit: Annotated[int | None, typer.Option(help="Số dòng tối đa")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="In JSON cho máy đọc")] = False,
) -> None:
    """Danh sách học bạ: học sinh, lớp, trường, trạng thái, mã tra cứu khi đã phát hành."""
    from hocba.models.records import list_records

    if state and state not in STATES:
        err.print(
            f"[red]Trạng thái «{state}» không tồn tại. Chọn một trong: {', '.join(STATES)}.[/red]"
        )
        raise typer.Exit(2)
    _prepare()
    with db.session_scope() as session:
        rows = list_records(session, state, school, limit)
    if json_out:
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=1, default=str)
        sys.stdout.write("\n")
        return
    table = Table(title=f"{len(rows)} học bạ")
    for h in (
        "Mã HS",
        "Họ và tên",
        "Lớp",
        "Trường",
        "Trạng thái",
        "Kết quả",
        "Cảnh báo",
        "Mã tra cứu",
    ):
        table.add_column(h)
    for r in rows:
        table.add_row(
            r["pupil_code"],
            r["full_name"],
            r["class_name"],
            r["school_code"],
            STATE_LABELS[r["state"]],
            r["computed_result"],
            str(r["flags"] or ""),
            r["lookup_code"] or "",
        )
    console.print(table)


@audit_app.command("verify")
def audit_verify() -> None:
    """Kiểm tra chuỗi băm của nhật ký; chỉ ra sự kiện hỏng đầu tiên của mỗi chuỗi."""
    from hocba.models import audit

    _prepare()
    with db.session_scope() as session:
        problems = audit.verify(session)
    if not problems:
        console.print("Nhật ký toàn vẹn: mọi chuỗi băm đều khớp.")
        return
    for p in problems:
        err.print(f"[red]Chuỗi {p.chain}: sự kiện số {p.seq}: {p.message}[/red]")
    raise typer.Exit(1)


# ---------------------------------------------------------------------------------------
# Keys, certificates, signing, verification, export (issue 3)
# ---------------------------------------------------------------------------------------

pki_app = typer.Typer(help="Hạ tầng khóa công khai THỬ NGHIỆM (không dùng thật).")
cert_app = typer.Typer(help="Sổ đăng ký chứng thư số: đăng ký, phê duyệt chứng thư của trường.")
app.add_typer(pki_app, name="pki")
app.add_typer(cert_app, name="cert")

SLOTS = {"gvcn": "GVCN", "cbql": "CBQL", "seal": "KY_PHAT_HANH"}


def _passphrase(prompt: str) -> str:
    value = load_settings().key_passphrase
    if value is None:
        value = typer.prompt(prompt, hide_input=True)
    return value


def _actor(session: Any, username: str) -> Any:
    from hocba.models.lifecycle import Actor

    row = (
        session.connection()
        .exec_driver_sql(
            "SELECT id, full_name FROM staff WHERE username = %s AND active", (username,)
        )
        .one_or_none()
    )
    if row is None:
        err.print(f"[red]Không có tài khoản «{username}».[/red]")
        raise typer.Exit(2)
    return Actor(row[0], row[1])


@pki_app.command("init")
def pki_init() -> None:
    """Cấp chứng thư số THỬ NGHIỆM cho mọi trường và cán bộ ký chưa có, và đăng ký chúng.

    Mật khẩu tệp khóa lấy từ HOCBA_KEY_PASSPHRASE hoặc được hỏi (không lưu, không ghi log).
    """
    from hocba.dev.keys import init_test_keys
    from hocba.tasks.issuance import pki_directory

    settings = load_settings()
    _prepare()
    password = _passphrase("Mật khẩu cho các tệp khóa thử nghiệm")
    with db.session_scope() as session, err.status("Đang cấp chứng thư số thử nghiệm…"):
        counts = init_test_keys(session, settings.home, password, SYSTEM)
    console.print(
        f"Đã cấp {counts['schools']} chứng thư tổ chức (trường) và {counts['staff']} "
        f"chứng thư cá nhân trong {pki_directory(settings.home)} (CA THỬ NGHIỆM)."
    )


@cert_app.command("list")
def cert_list(school: Annotated[str | None, typer.Option(help="Mã trường")] = None) -> None:
    """Chứng thư số tổ chức của các trường và trạng thái phê duyệt."""
    rows = _rows(
        "SELECT c.id, s.code, c.subject, c.serial_number, c.status, c.not_after "
        "FROM certificate c JOIN school s ON s.id = c.school_id "
        "WHERE %s::text IS NULL OR s.code = %s ORDER BY s.code, c.id",
        (school, school),
    )
    table = Table(title="Chứng thư số tổ chức")
    for h in ("Số", "Trường", "Chủ thể", "Số hiệu", "Trạng thái", "Hết hạn"):
        table.add_column(h)
    labels = {
        "pending": "Chờ duyệt",
        "approved": "Đã duyệt",
        "rejected": "Từ chối",
        "revoked": "Thu hồi",
    }
    for r in rows:
        table.add_row(str(r[0]), r[1], r[2], r[3], labels[r[4]], f"{r[5]:%d/%m/%Y}")
    console.print(table)


@cert_app.command("approve")
def cert_approve(
    school: Annotated[str, typer.Argument(help="Mã trường")],
    as_user: Annotated[str, typer.Option("--as", help="Tài khoản cán bộ Phòng/Sở")],
    reject: Annotated[str | None, typer.Option(help="Từ chối, với lý do")] = None,
) -> None:
    """Phê duyệt (hoặc từ chối) chứng thư số tổ chức đang chờ của một trường."""
    from hocba.models import certificates

    _prepare()
    with db.session_scope() as session:
        actor = _actor(session, as_user)
        pending = [
            c for c in certificates.school_certificates(session, school) if c.status == "pending"
        ]
        if not pending:
            err.print(f"[red]Trường {school} không có chứng thư số nào chờ duyệt.[/red]")
            raise typer.Exit(1)
        with _refused(certificates.CertificateError):
            for c in pending:
                certificates.decide(session, c.id, actor, approve=reject is None, reason=reject)
    console.print(
        f"Trường {school}: đã {'từ chối' if reject else 'phê duyệt'} {len(pending)} chứng thư số."
    )


@app.command("sign")
def sign(
    as_user: Annotated[str, typer.Option("--as", help="Tài khoản người ký")],
    slot: Annotated[str, typer.Option(help="gvcn | cbql | seal (đóng dấu, phát hành)")],
    school: Annotated[str, typer.Option(help="Mã trường")],
    class_name: Annotated[str | None, typer.Option("--class", help="Chỉ một lớp")] = None,
    chunk: Annotated[int, typer.Option(min=1, max=2000, help="Số học bạ mỗi lần ký")] = 500,
    pkcs11_module: Annotated[
        str | None, typer.Option(help="Thư viện PKCS#11 của USB token/HSM (.so)")
    ] = None,
    token: Annotated[str | None, typer.Option(help="Nhãn token PKCS#11")] = None,
    key_label: Annotated[str | None, typer.Option(help="Nhãn khóa trên token")] = None,
    remote: Annotated[
        str | None, typer.Option(help="Địa chỉ dịch vụ ký số từ xa (kiểu SmartCA/MySign)")
    ] = None,
    remote_user: Annotated[str | None, typer.Option(help="Mã người dùng ký từ xa")] = None,
) -> None:
    """Ký hàng loạt: GVCN ký lớp mình, hiệu trưởng ký, văn thư đóng dấu phát hành.

    Mỗi lô ký bằng MỘT lần xác nhận; mật khẩu/PIN lấy từ HOCBA_KEY_PASSPHRASE hoặc được hỏi.
    """
    from hocba.pki.backends import signing_key
    from hocba.pki.signer import SigningError
    from hocba.tasks.issuance import IssuanceError, sign_batch, trust_anchors

    if slot not in SLOTS:
        err.print(f"[red]--slot phải là một trong: {', '.join(SLOTS)}.[/red]")
        raise typer.Exit(2)
    xml_slot = SLOTS[slot]
    settings = load_settings()
    _prepare()
    with db.session_scope() as session:
        actor = _actor(session, as_user)
        sid = _school_id(session, school)
        try:
            key = signing_key(session, xml_slot, school, actor.staff_id)
        except SigningError as exc:
            err.print(f"[red]{exc.message_vi}[/red]", soft_wrap=True)
            raise typer.Exit(1) from None
        ids = [
            rid for rid, _ in claim_waiting(session, xml_slot, school_id=sid, class_name=class_name)
        ]
    if not key.key_ref:
        err.print(
            "[red]Chưa có chứng thư số (đã duyệt) cho người/tổ chức ký này: "
            "xem `hocba cert list` hoặc `hocba pki init`.[/red]"
        )
        raise typer.Exit(1)
    if not ids:
        console.print("Không có học bạ nào đang chờ ký ở bước này.")
        return
    try:
        signer = _open_signer(key.key_ref, pkcs11_module, token, key_label, remote, remote_user)
    except SigningError as exc:
        err.print(f"[red]{exc.message_vi}[/red]")
        raise typer.Exit(1) from None
    anchors = trust_anchors(settings.home)
    ok, failed = 0, {}
    with _progress() as progress:
        task = progress.add_task(f"Ký {xml_slot}", total=len(ids))
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            try:
                with db.session_scope() as session:
                    res = sign_batch(session, part, xml_slot, actor, signer, trust_anchors=anchors)
            except IssuanceError as exc:
                err.print(f"[red]{exc.message_vi}[/red]")
                raise typer.Exit(1) from None
            ok += len(res.ok)
            failed.update(res.failed)
            progress.update(task, advance=len(part))
    console.print(f"Đã ký {ok} học bạ; {len(failed)} không ký được.")
    for rid, why in list(failed.items())[:20]:
        err.print(f"  #{rid}: {why}")
    if failed:
        raise typer.Exit(1)


def _open_signer(
    key_ref: str | None,
    pkcs11_module: str | None,
    token: str | None,
    key_label: str | None,
    remote: str | None,
    remote_user: str | None,
) -> Any:
    """The signing backend chosen by the options; PINs and passphrases come from
    HOCBA_KEY_PASSPHRASE or a hidden prompt, never from arguments."""
    from hocba.pki.backends import SignerSpec, open_signer

    kind: Literal["pkcs12", "pkcs11", "remote"] = (
        "pkcs11" if pkcs11_module else "remote" if remote else "pkcs12"
    )
    if kind == "remote":
        console.print("Hãy xác nhận yêu cầu ký trên điện thoại (một lần cho cả lô).")
    spec = SignerSpec(
        kind=kind,
        pkcs11_module=pkcs11_module,
        token=token,
        key_label=key_label,
        remote_url=remote,
        remote_user=remote_user,
    )
    return open_signer(spec, key_ref, _passphrase)


@app.command("verify")
def verify(
    path: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="Tệp XML hoặc PDF học bạ")
    ],
    json_out: Annotated[bool, typer.Option("--json", help="In JSON cho máy đọc")] = False,
) -> None:
    """Kiểm tra một học bạ số: chữ ký, chuỗi chứng thư, vai trò người ký, thứ tự ký, dấu
    của trường, thu hồi, và khớp với sổ học bạ. Mã thoát: 0 hợp lệ, 1 không hợp lệ, 2 chưa
    thể kết luận."""
    import hashlib

    from hocba.models import audit
    from hocba.tasks.issuance import trust_anchors
    from hocba.tasks.long_term import configured_crl_source, configured_ocsp_source
    from hocba.tasks.registry import DatabaseRegistry
    from hocba.xml.verify import verify_document

    settings = load_settings()
    _prepare()
    data = path.read_bytes()
    with db.session_scope() as session:
        if data.startswith(b"%PDF-"):
            from hocba.pdf.verify import verify_pdf

            check = verify_pdf
        else:
            check = verify_document  # type: ignore[assignment]
        report = check(
            data,
            trusted_roots=trust_anchors(settings.home),
            registry=DatabaseRegistry(session),
            crl_source=configured_crl_source(),
            ocsp_source=configured_ocsp_source(),
        )
        audit.append(
            session,
            [
                audit.NewEvent(
                    chain="system",
                    actor="cli",
                    action="verify",
                    payload={
                        "file_sha256": hashlib.sha256(data).hexdigest(),
                        "verdict": report.verdict.value,
                    },
                )
            ],
        )
    if json_out:
        json.dump(report.to_json(), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        console.print(report.render_text())
    raise typer.Exit(report.exit_code)


@app.command("export")
def export(
    lookup_code: Annotated[str, typer.Argument(help="Mã số tra cứu học bạ (UUID)")],
    out: Annotated[Path, typer.Option(help="Thư mục ghi tệp")] = Path("."),
    pdf_as: Annotated[
        str | None,
        typer.Option("--pdf-as", help="Cũng ghi bản PDF, ký bởi hiệu trưởng (tên đăng nhập)"),
    ] = None,
) -> None:
    """Ghi tệp XML đã phát hành của một học bạ; với --pdf-as, cả bản PDF đã ký bên cạnh."""
    import uuid

    from hocba.models import audit, stored_xml

    try:
        code = uuid.UUID(lookup_code)
    except ValueError:
        err.print("[red]Mã tra cứu phải là một UUID, ví dụ 3f1c…-….[/red]")
        raise typer.Exit(2) from None
    _prepare()
    with db.session_scope() as session:
        row = (
            session.connection()
            .exec_driver_sql(
                "SELECT r.id, r.signed_xml, s.code FROM hoc_ba r "
                "JOIN school s ON s.id = r.school_id "
                "WHERE r.lookup_code = %s AND r.xml_sha256 IS NOT NULL",
                (code,),
            )
            .one_or_none()
        )
        if row is None:
            err.print("[red]Không có học bạ đã phát hành với mã tra cứu này.[/red]")
            raise typer.Exit(1)
        xml = stored_xml.unpack_one(session.connection(), row[1]) or b""
        if pdf_as:
            _book_signer(session, row[2], pdf_as)  # refused before anything is written
        audit.append(
            session,
            [
                audit.NewEvent(
                    chain=audit.school_chain(row[2]), actor="cli", action="export", record_id=row[0]
                )
            ],
        )
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{code}.xml"
    target.write_bytes(xml)
    console.print(f"Đã ghi {target}")
    if pdf_as:
        books = _books(row[2], [row[0]], pdf_as)
        pdf_path = out / f"{code}.pdf"
        pdf_path.write_bytes(books[row[0]])
        console.print(f"Đã ghi {pdf_path}")


signing_app = typer.Typer(help="Dịch vụ ký số từ xa THỬ NGHIỆM (kiểu SmartCA/MySign).")
app.add_typer(signing_app, name="signing-service")


@signing_app.command("serve")
def signing_serve(
    host: Annotated[str, typer.Option(help="Địa chỉ lắng nghe")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Cổng")] = 8600,
    auto_confirm: Annotated[bool, typer.Option(help="Tự xác nhận (chỉ để trình diễn)")] = False,
) -> None:
    """Chạy dịch vụ ký số từ xa với các khóa thử nghiệm đã đăng ký (mã người dùng = tên
    đăng nhập; trường: truong-<mã trường>)."""
    from hocba.dev.signing_service import serve

    _prepare()
    password = _passphrase("Mật khẩu các tệp khóa thử nghiệm")
    from hocba.models.certificates import key_refs

    with db.session_scope() as session:
        refs = key_refs(session)
    otp = None
    if not auto_confirm:
        otp = load_settings().signing_otp or typer.prompt(
            "Mã xác nhận (OTP) thử nghiệm của mọi tài khoản", hide_input=True
        )
    serve(
        host,
        port,
        {user: (ref, password) for user, ref in refs.items()},
        otps={user: otp for user in refs} if otp else None,
        auto_confirm=auto_confirm,
    )


def _signing_client(url: str | None, *, timeout: float) -> httpx.Client:
    """An HTTP client on the signing service (``url``, or the configured one)."""
    import httpx

    from hocba.flows.signing_session import signing_service_url

    return httpx.Client(base_url=(url or signing_service_url()).rstrip("/"), timeout=timeout)


@signing_app.command("pending")
def signing_pending(
    user: Annotated[str, typer.Option(help="Mã người dùng ký từ xa (tên đăng nhập)")],
    url: Annotated[str | None, typer.Option(help="Địa chỉ dịch vụ ký")] = None,
) -> None:
    """Các yêu cầu ký đang chờ người dùng xác nhận (như ứng dụng trên điện thoại)."""
    from hocba.dev.signing_service import pending_requests
    from hocba.pki.signer import SigningError

    with _signing_client(url, timeout=10) as client, _refused(SigningError):
        waiting = pending_requests(client, user)
    if not waiting:
        console.print("Không có yêu cầu ký nào đang chờ xác nhận.")
    for r in waiting:
        console.print(f"{r['request_id']}  {r['description']}  ({r['hash_count']} giá trị băm)")


@signing_app.command("confirm")
def signing_confirm(
    request_id: Annotated[str, typer.Argument(help="Mã yêu cầu ký (xem `pending`)")],
    refuse: Annotated[bool, typer.Option(help="Từ chối thay vì xác nhận")] = False,
    url: Annotated[str | None, typer.Option(help="Địa chỉ dịch vụ ký")] = None,
) -> None:
    """Xác nhận (hoặc từ chối) một yêu cầu ký bằng mã OTP, như trên điện thoại. Mã OTP lấy
    từ HOCBA_SIGNING_OTP hoặc được hỏi (không hiện)."""
    from hocba.dev.signing_service import answer_request
    from hocba.pki.signer import SigningError

    otp = load_settings().signing_otp or typer.prompt("Mã xác nhận (OTP)", hide_input=True)
    with _signing_client(url, timeout=30) as client, _refused(SigningError):
        answer_request(client, request_id, otp, refuse=refuse)
    console.print("Đã từ chối yêu cầu ký." if refuse else "Đã xác nhận: dịch vụ đã ký cả lô.")


agent_app = typer.Typer(help="Chương trình ký trên máy của người ký (USB token, PKCS#11).")
app.add_typer(agent_app, name="agent")


@agent_app.command("run")
def agent_run(
    as_user: Annotated[str, typer.Option("--as", help="Tài khoản người ký")],
    pkcs11_module: Annotated[str, typer.Option(help="Thư viện PKCS#11 của USB token (.so/.dll)")],
    token: Annotated[str, typer.Option(help="Nhãn token PKCS#11")],
    key_label: Annotated[str, typer.Option(help="Nhãn khóa trên token")],
    once: Annotated[bool, typer.Option(help="Dừng sau lô đầu tiên")] = False,
    stop_after: Annotated[
        float | None, typer.Option(help="Tự dừng sau số giây này (mặc định: chạy mãi)")
    ] = None,
) -> None:
    """Nhập mã PIN một lần, rồi ký mọi lô học bạ bạn bấm «Ký» trên bảng điều khiển bằng
    USB token cắm trên máy này. Khóa không rời token, mã PIN không rời máy này."""
    from hocba.pki.agent import run_agent
    from hocba.pki.backends import SignerSpec, open_signer
    from hocba.pki.signer import SigningError

    _prepare()
    spec = SignerSpec(kind="pkcs11", pkcs11_module=pkcs11_module, token=token, key_label=key_label)

    def open_token() -> Any:
        pin = load_settings().token_pin or typer.prompt("Mã PIN của USB token", hide_input=True)
        return open_signer(spec, None, lambda _prompt: pin)

    try:
        n = run_agent(as_user, open_token, once=once, stop_after=stop_after, say=console.print)
    except SigningError as exc:
        err.print(f"[red]{exc.message_vi}[/red]")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        n = 0
    console.print(f"Đã ký {n} lô.")


@cert_app.command("register")
def cert_register(
    school: Annotated[str, typer.Argument(help="Mã trường")],
    cert: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Chứng thư (PEM)")],
    kind: Annotated[str, typer.Option(help="USB_TOKEN | REMOTE_SIGNING | HSM | SOFTWARE")] = (
        "USB_TOKEN"
    ),
    provider: Annotated[str, typer.Option(help="VNPT | BKAV | VIETTEL | BAN_CO_YEU | TEST")] = (
        "VNPT"
    ),
    key_ref: Annotated[str | None, typer.Option(help="Nơi giữ khóa (không phải khóa)")] = None,
) -> None:
    """Đăng ký chứng thư số tổ chức của trường (chờ Phòng/Sở phê duyệt)."""
    from cryptography import x509

    from hocba.models import certificates

    _prepare()
    try:
        parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    except ValueError:
        err.print("[red]Tệp không phải chứng thư số dạng PEM.[/red]")
        raise typer.Exit(2) from None
    with _refused(certificates.CertificateError):
        with db.session_scope() as session:
            cid = certificates.register(
                session,
                parsed,
                school_code=school,
                kind=kind,
                provider=provider,
                key_ref=key_ref,
                actor=SYSTEM,
            )
    console.print(
        f"Đã đăng ký chứng thư số #{cid} của trường {school}; chờ Phòng/Sở phê duyệt "
        f"(hocba cert approve {school} --as <cán bộ Phòng>)."
    )


@cert_app.command("kind")
def cert_kind(
    username: Annotated[str, typer.Argument(help="Tên đăng nhập cán bộ")],
    kind: Annotated[str, typer.Option(help="SOFTWARE | REMOTE_SIGNING | USB_TOKEN | HSM")],
    provider: Annotated[str, typer.Option(help="VNPT | BKAV | VIETTEL | BAN_CO_YEU | TEST")] = (
        "TEST"
    ),
) -> None:
    """Ghi cách cán bộ giữ khóa ký (tệp khóa, ký số từ xa, USB token): bảng điều khiển cho
    họ ký bằng cách đó."""
    from hocba.models import certificates

    _prepare()
    with _refused(certificates.CertificateError):
        with db.session_scope() as session:
            certificates.set_kind(session, username, kind, provider, SYSTEM)
    console.print(f"Chứng thư số của {username}: {kind} ({provider}).")


correction_app = typer.Typer(help="Chỉnh lý học bạ đã phát hành.")
app.add_typer(correction_app, name="correction")


def _record_by_code(session: Any, lookup_code: str) -> int:
    import uuid

    try:
        code = uuid.UUID(lookup_code)
    except ValueError:
        err.print("[red]Mã tra cứu phải là một UUID.[/red]")
        raise typer.Exit(2) from None
    rid = (
        session.connection()
        .exec_driver_sql("SELECT id FROM hoc_ba WHERE lookup_code = %s", (code,))
        .scalar()
    )
    if rid is None:
        err.print("[red]Không có học bạ với mã tra cứu này.[/red]")
        raise typer.Exit(1)
    return int(rid)


@correction_app.command("request")
def correction_request(
    lookup_code: Annotated[str, typer.Argument(help="Mã tra cứu của học bạ cần chỉnh lý")],
    as_user: Annotated[str, typer.Option("--as", help="Hiệu trưởng hoặc văn thư")],
    reason: Annotated[str, typer.Option(help="Lý do chỉnh lý")],
    decision: Annotated[str | None, typer.Option(help="Số quyết định hộ tịch (nếu có)")] = None,
) -> None:
    """Lập yêu cầu chỉnh lý một học bạ đã phát hành."""
    from hocba.models import corrections

    _prepare()
    with _refused(corrections.CorrectionError):
        with db.session_scope() as session:
            req = corrections.request(
                session,
                _record_by_code(session, lookup_code),
                _actor(session, as_user),
                reason,
                decision,
            )
    console.print(f"Đã lập yêu cầu chỉnh lý số {req}; chờ Phòng GDĐT duyệt.")


@correction_app.command("decide")
def correction_decide(
    request_id: Annotated[int, typer.Argument(help="Số yêu cầu chỉnh lý")],
    as_user: Annotated[str, typer.Option("--as", help="Cán bộ Phòng/Sở")],
    reject: Annotated[str | None, typer.Option(help="Từ chối, với lý do")] = None,
) -> None:
    """Duyệt (thu hồi học bạ cũ, lập bản nháp mới thay thế) hoặc từ chối yêu cầu chỉnh lý."""
    from hocba.models import corrections

    _prepare()
    with _refused(corrections.CorrectionError):
        with db.session_scope() as session:
            new = corrections.decide(
                session, request_id, _actor(session, as_user), approve=reject is None, reason=reject
            )
    if new is None:
        console.print("Đã từ chối yêu cầu chỉnh lý.")
    else:
        console.print(
            f"Đã duyệt: học bạ cũ bị thu hồi; bản nháp mới #{new} chờ GVCN kiểm tra và ký lại."
        )


def _book_signer(session: Any, school: str, username: str) -> Any:
    """The actor who signs the school's paper books: one who may sign its records at the CBQL
    step (its principal or vice-principal), never someone of another school or district."""
    from hocba.models.lifecycle import TRANSITIONS, load_grants

    actor = _actor(session, username)
    roles = load_grants(session, actor).roles_at(_school_id(session, school))
    if not roles & TRANSITIONS["principal_sign"].roles:
        err.print(f"[red]{actor.name} không có quyền ký bản PDF của trường {school}.[/red]")
        raise typer.Exit(1)
    return actor


def _books(school: str, record_ids: list[int], principal_username: str) -> dict[int, bytes]:
    """Render and sign the books of the given records (principal + the school's seal)."""
    from hocba.tasks.books import make_books

    settings = load_settings()
    with db.session_scope() as session:
        actor = _book_signer(session, school, principal_username)
        principal = _registered_signer(session, "CBQL", school, actor.staff_id)
        seal = _school_seal(session, school)
        with _progress() as progress:
            task = progress.add_task("Lập và ký bản PDF", total=len(record_ids))
            return make_books(
                session,
                record_ids,
                principal=principal,
                seal=seal,
                verify_url=settings.verify_url,
                progress=lambda done, _total: progress.update(task, completed=done),
            )


@app.command("print-class")
def print_class_cmd(
    school: Annotated[str, typer.Option(help="Mã trường")],
    as_user: Annotated[str, typer.Option("--as", help="Hiệu trưởng ký bản PDF")],
    out: Annotated[Path, typer.Option(help="Thư mục ghi tệp")],
    class_name: Annotated[str | None, typer.Option("--class", help="Lớp")] = None,
) -> None:
    """In học bạ của một lớp (hoặc cả trường): mỗi học sinh một tệp PDF đã ký, và một tệp
    gộp để in."""
    from hocba.tasks.books import class_print_file

    rows = _rows(
        "SELECT r.id, p.pupil_code, c.name FROM hoc_ba r JOIN pupil p ON p.id = r.pupil_id "
        "JOIN school_class c ON c.id = r.class_id JOIN school s ON s.id = r.school_id "
        "WHERE s.code = %s AND (%s::text IS NULL OR c.name = %s) "
        "AND r.xml_sha256 IS NOT NULL "
        "AND r.state IN ('issued', 'submitted', 'accepted', 'rejected') "
        "ORDER BY c.name, p.full_name",
        (school, class_name, class_name),
    )
    if not rows:
        console.print("Không có học bạ đã phát hành nào để in.")
        return
    books = _books(school, [r[0] for r in rows], as_user)
    out.mkdir(parents=True, exist_ok=True)
    for rid, pupil_code, klass in rows:
        (out / f"{klass}_{pupil_code}.pdf").write_bytes(books[rid])
    merged = out / f"{school}_{class_name or 'toan-truong'}_de-in.pdf"
    merged.write_bytes(class_print_file([books[r[0]] for r in rows]))
    console.print(f"Đã ghi {len(rows)} tệp PDF đã ký và tệp gộp để in {merged}.")


transfer_app = typer.Typer(help="Chuyển trường: xuất gói, nhận gói, biên nhận.")
app.add_typer(transfer_app, name="transfer")


def _registered_signer(session: Any, slot: str, school: str, staff_id: int | None = None) -> Any:
    """The registered software key that signs ``slot`` (the one decision,
    :func:`hocba.pki.backends.signing_key`), opened with the passphrase of
    HOCBA_KEY_PASSPHRASE or a hidden prompt; a clear message and exit 1 when there is none."""
    from hocba.pki.backends import SignerSpec, open_signer, signing_key
    from hocba.pki.signer import SigningError

    try:
        key = signing_key(session, slot, school, staff_id)
        return open_signer(SignerSpec(), key.key_ref, _passphrase)
    except SigningError as exc:
        err.print(f"[red]{exc.message_vi}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None


def _school_seal(session: Any, school: str) -> Any:
    return _registered_signer(session, "KY_PHAT_HANH", school)


@transfer_app.command("export")
def transfer_export(
    pupil_code: Annotated[str, typer.Argument(help="Mã học sinh")],
    to: Annotated[str, typer.Option(help="Mã trường chuyển đến")],
    leaving_date: Annotated[str, typer.Option(help="Ngày chuyển đi (dd/mm/yyyy)")],
    as_user: Annotated[str, typer.Option("--as", help="Hiệu trưởng hoặc văn thư")],
    out: Annotated[Path, typer.Option(help="Tệp gói chuyển trường (.zip)")],
) -> None:
    """Xuất gói chuyển trường (mọi học bạ đã phát hành của học sinh, ký bằng con dấu)."""
    import datetime as dt

    from hocba.tasks.transfer import TransferError, export_package

    try:
        when = dt.datetime.strptime(leaving_date, "%d/%m/%Y").date()
    except ValueError:
        err.print("[red]Ngày chuyển đi phải có dạng ngày/tháng/năm, ví dụ 15/01/2025.[/red]")
        raise typer.Exit(2) from None
    _prepare()
    with _refused(TransferError):
        with db.session_scope() as session:
            actor = _actor(session, as_user)
            school = (
                session.connection()
                .exec_driver_sql(
                    "SELECT s.code FROM pupil p JOIN enrolment e ON e.pupil_id = p.id "
                    "AND e.left_on IS NULL JOIN school s ON s.id = e.school_id "
                    "WHERE p.pupil_code = %s",
                    (pupil_code,),
                )
                .scalar()
            )
            package, tid = export_package(
                session, pupil_code, to, when, actor, _school_seal(session, school or "")
            )
    out.write_bytes(package)
    console.print(f"Đã xuất gói chuyển trường #{tid}: {out} ({len(package):,} byte).")


@transfer_app.command("receive")
def transfer_receive(
    package: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    school: Annotated[str, typer.Option(help="Mã trường nhận")],
    as_user: Annotated[str, typer.Option("--as", help="Hiệu trưởng hoặc văn thư")],
    identity_confirmed: Annotated[
        bool, typer.Option(help="Đã đối chiếu giấy tờ, nhận dù họ tên/ngày sinh lệch")
    ] = False,
    unverified_confirmed: Annotated[
        bool,
        typer.Option(help="Đã xem xét các mục chưa kiểm tra được, nhận dù chưa xác định được"),
    ] = False,
    receipt_out: Annotated[Path | None, typer.Option(help="Nơi ghi biên nhận")] = None,
) -> None:
    """Nhận gói chuyển trường: kiểm tra mọi học bạ, đối chiếu học sinh, nhận (chỉ đọc)."""
    from hocba.tasks.issuance import crl_source, trust_anchors
    from hocba.tasks.transfer import TransferError, receive_package

    settings = load_settings()
    _prepare()
    with _refused(TransferError):
        with db.session_scope() as session:
            res = receive_package(
                session,
                package.read_bytes(),
                _actor(session, as_user),
                _school_seal(session, school),
                trust_anchors(settings.home),
                school,
                identity_confirmed=identity_confirmed,
                crl_source=crl_source(settings.home),
                unverified_confirmed=unverified_confirmed,
            )
    for note in res.notes:
        console.print(note)
    if res.state == "needs_review":
        console.print(f"Gói #{res.transfer_id} cần đối chiếu thủ công (xem hocba transfer list).")
        raise typer.Exit(3)
    target = receipt_out or package.with_suffix(".bien-nhan.json")
    target.write_bytes(res.receipt or b"")
    console.print(f"Đã nhận {res.records} học bạ; biên nhận: {target}")


@transfer_app.command("receipt")
def transfer_receipt(receipt: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Trường chuyển đi ghi nhận biên nhận đã ký của trường nhận."""
    from hocba.tasks.issuance import trust_anchors
    from hocba.tasks.transfer import TransferError, record_receipt

    settings = load_settings()
    _prepare()
    with _refused(TransferError):
        with db.session_scope() as session:
            tid = record_receipt(session, receipt.read_bytes(), trust_anchors(settings.home))
    console.print(f"Chuyển trường #{tid}: đã có biên nhận của trường nhận.")


@transfer_app.command("list")
def transfer_list(school: Annotated[str | None, typer.Option(help="Mã trường")] = None) -> None:
    """Các lượt chuyển đi/chuyển đến và trạng thái."""
    rows = _rows(
        "SELECT id, from_school_code, to_school_code, pupil_name, leaving_date, state, "
        "records, review_reason FROM transfer WHERE %s::text IS NULL "
        "OR %s IN (from_school_code, to_school_code) ORDER BY id",
        (school, school),
    )
    labels = {
        "exported": "Đã xuất gói",
        "needs_review": "Cần đối chiếu",
        "accepted": "Đã nhận",
        "rejected": "Từ chối",
        "receipted": "Đã có biên nhận",
    }
    table = Table(title="Chuyển trường")
    for h in ("Số", "Từ", "Đến", "Học sinh", "Ngày đi", "Trạng thái", "Học bạ", "Ghi chú"):
        table.add_column(h)
    for r in rows:
        table.add_row(
            str(r[0]), r[1], r[2], r[3], f"{r[4]:%d/%m/%Y}", labels[r[5]], str(r[6]), r[7] or ""
        )
    console.print(table)


notify_app = typer.Typer(help="Thông báo nhắc việc theo hạn nộp (Apprise).")
app.add_typer(notify_app, name="notify")


@notify_app.command("run")
def notify_run(
    today: Annotated[str | None, typer.Option(help="Ngày chạy, dạng YYYY-MM-DD")] = None,
) -> None:
    """Lập thông báo trong ngày và gửi những gì đến hạn (một tin mỗi người mỗi loại mỗi ngày)."""
    import datetime as dt

    from hocba.notify import NotifyError, run_notifications

    _prepare()
    with _refused(ValueError, NotifyError, code=2):
        out = run_notifications(dt.date.fromisoformat(today) if today else None)
    console.print(
        f"{out['created']} thông báo mới; đã gửi {out['sent']}, lỗi {out['failed']}, "
        f"bỏ {out['gave_up']}" + (" (giờ yên lặng: chưa gửi)" if out["quiet"] else "")
    )


@notify_app.command("channel-add")
def notify_channel_add(
    username: Annotated[str, typer.Argument(help="Tên đăng nhập cán bộ")],
    url: Annotated[str, typer.Argument(help="Địa chỉ Apprise, ví dụ mailto://…")],
) -> None:
    """Thêm kênh nhận thông báo (email, SMS, Zalo/Telegram qua Apprise…) cho một cán bộ."""
    from hocba.notify import NotifyError, add_channel

    _prepare()
    with _refused(NotifyError, code=2):
        with db.session_scope() as session:
            add_channel(session, _actor(session, username).staff_id, url)
    console.print(f"Đã thêm kênh thông báo cho {username}.")


@notify_app.command("test")
def notify_test(username: Annotated[str, typer.Argument(help="Tên đăng nhập cán bộ")]) -> None:
    """Gửi thử một tin tới mọi kênh của cán bộ."""
    from hocba.notify import send_test_message

    _prepare()
    with db.session_scope() as session:
        result = send_test_message(session, _actor(session, username).staff_id)
    console.print(result.message)
    if not result.ok:
        raise typer.Exit(1)


portal_app = typer.Typer(help="Cổng tiếp nhận học bạ số của Sở (bản đi kèm, để phát triển và thử).")
app.add_typer(portal_app, name="portal")


@portal_app.command("serve")
def portal_serve(
    host: Annotated[str, typer.Option(help="Địa chỉ lắng nghe")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Cổng")] = 8800,
    auto_approve: Annotated[
        bool, typer.Option(help="Tự phê duyệt chứng thư số các trường đăng ký")
    ] = True,
    workers: Annotated[
        int | None,
        typer.Option(help="Số tiến trình phục vụ (mặc định: số CPU)", min=1),
    ] = None,
) -> None:
    """Chạy cổng tiếp nhận của Sở (giao dịch 1-6) trên PostgreSQL, lược đồ «…_portal».

    Tài khoản: mỗi trường một tài khoản (tên = mã trường, mật khẩu HOCBA_PORTAL_PASSWORD).
    Nhiều tiến trình cùng nghe một cổng; mọi trạng thái dùng chung nằm trong PostgreSQL."""

    from hocba.dev.portal import default_workers, serve

    settings = load_settings()
    _prepare()
    password = settings.portal_password or _passphrase("Mật khẩu tài khoản cổng")
    factory = portal_factory(password, auto_approve)
    serve(factory, host, port, workers=workers or default_workers())


def portal_factory(password: str, auto_approve: bool = True) -> PortalFactory:
    """The bundled portal of this installation (settings from the environment): one
    account per school, acting for its own unit only. ``hocba portal serve`` serves it;
    ``bench/portal_http.py --in-process`` calls it directly."""
    from hocba.dev.portal import PortalFactory, PortalUser
    from hocba.tasks.issuance import trust_anchors

    settings = load_settings()
    with db.session_scope() as session:
        codes = list(session.connection().exec_driver_sql("SELECT code FROM school").scalars())
    return PortalFactory.of(
        db.database_url(settings),
        f"{settings.schema}_portal",
        trust_anchors(settings.home),
        {code: PortalUser.with_password(password, [code]) for code in codes},
        auto_approve_certificates=auto_approve,
    )


trust_app = typer.Typer(help="Dấu thời gian (TSA), OCSP và CRL THỬ NGHIỆM của dự án.")
app.add_typer(trust_app, name="trust-services")
timestamps_app = typer.Typer(help="Dấu thời gian RFC 3161: bổ sung và gia hạn.")
app.add_typer(timestamps_app, name="timestamps")


@trust_app.command("serve")
def trust_serve(
    host: Annotated[str, typer.Option(help="Địa chỉ lắng nghe")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Cổng")] = 8700,
) -> None:
    """Chạy máy chủ dấu thời gian (POST /tsa), OCSP (POST /ocsp) và CRL (GET /crl) của hạ
    tầng khóa THỬ NGHIỆM trong $HOCBA_HOME/pki (tạo nếu chưa có). Không dùng cho học bạ thật:
    đặt HOCBA_TSA_URL / HOCBA_OCSP_URL tới dịch vụ của tổ chức chứng thực."""
    import socket

    import uvicorn

    from hocba.dev.testpki import TestPki
    from hocba.dev.trust_services import trust_services_app
    from hocba.tasks.issuance import pki_directory

    directory = pki_directory(load_settings().home)
    if not (directory / "root-ca.pem").exists():
        TestPki.init(directory)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # see hocba.asgi
    sock.bind((host, port))
    config = uvicorn.Config(trust_services_app(directory), lifespan="off", log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


@timestamps_app.command("status")
def timestamps_status() -> None:
    """Số học bạ đang chờ dấu thời gian."""
    from hocba.tasks.long_term import waiting_count

    _prepare()
    with db.session_scope() as session:
        console.print(f"Học bạ chờ dấu thời gian: {waiting_count(session)}")


@timestamps_app.command("upgrade")
def timestamps_upgrade() -> None:
    """Bổ sung dấu thời gian cho học bạ đã ký khi máy chủ dấu thời gian gián đoạn."""
    from hocba.flows.timestamps import until_done, upgrade_chunk

    _prepare()
    console.print(until_done(lambda: upgrade_chunk.fn(200), 50, console.print))


@timestamps_app.command("renew")
def timestamps_renew(
    horizon_days: Annotated[int, typer.Option(help="Gia hạn nếu hết hạn trong số ngày này")] = 180,
) -> None:
    """Gia hạn dấu thời gian lưu trữ (sau khi kiểm tra lại toàn bộ chuỗi)."""
    from hocba.flows.timestamps import renew_chunk, until_done

    _prepare()
    console.print(until_done(lambda: renew_chunk.fn(horizon_days, 200), 50, console.print))


@app.command("submit")
def submit(
    school: Annotated[str, typer.Option(help="Mã trường")],
    resubmit_rejected: Annotated[
        bool, typer.Option(help="Gửi lại học bạ bị Sở từ chối (lỗi kỹ thuật)")
    ] = False,
) -> None:
    """Gửi các học bạ đã phát hành của trường lên cổng của Sở và lấy kết quả tiếp nhận.

    Mật khẩu cổng: HOCBA_PORTAL_PASSWORD; địa chỉ: HOCBA_PORTAL_URL."""
    from hocba.flows.submission import submit_school
    from hocba.portal.client import PortalError

    _prepare()
    with _refused(PortalError):
        console.print(submit_school.fn(school, resubmit_rejected))


@app.command("up")
def up(
    workers: Annotated[int, typer.Option(min=1, max=16, help="Số máy chạy Prefect")] = 1,
    portal: Annotated[
        bool | None,
        typer.Option(help="Chạy cổng Sở đi kèm (phát triển, thử); mặc định: chỉ khi --demo"),
    ] = None,
    dashboard: Annotated[bool, typer.Option(help="Chạy bảng điều khiển")] = True,
    prefect_port: Annotated[int, typer.Option(help="Cổng máy chủ Prefect")] = 4200,
    portal_port: Annotated[int, typer.Option(help="Cổng của cổng Sở đi kèm")] = 8800,
    dashboard_port: Annotated[int, typer.Option(help="Cổng bảng điều khiển")] = 8501,
    demo: Annotated[
        bool, typer.Option(help="Dùng mật khẩu mẫu «hocba-demo» khi chưa đặt (huyện mẫu)")
    ] = False,
) -> None:
    """Chạy tất cả trên một máy: CSDL, máy chủ Prefect, vùng việc và triển khai, máy chạy,
    cổng Sở đi kèm, bảng điều khiển. Ctrl+C dừng tất cả."""

    from hocba.up import Ports, run

    if demo:
        from hocba.dev.demo import DEMO_PASSWORD

        os.environ.setdefault("HOCBA_KEY_PASSPHRASE", DEMO_PASSWORD)
        os.environ.setdefault("HOCBA_PORTAL_PASSWORD", DEMO_PASSWORD)
    if portal is None:  # a real installation sends to its Sở (HOCBA_PORTAL_URL)
        portal = demo
    if portal and not load_settings().portal_password:
        err.print(
            "[red]Cổng Sở đi kèm cần mật khẩu tài khoản các trường: đặt HOCBA_PORTAL_PASSWORD, "
            "dùng --demo cho huyện mẫu, hoặc --no-portal khi dùng cổng thật của Sở.[/red]"
        )
        raise typer.Exit(2)
    with _refused(RuntimeError):
        code = run(
            Ports(prefect_port, portal_port, dashboard_port),
            workers,
            portal,
            dashboard,
            say=console.print,
        )
    raise typer.Exit(code)


@app.command("dashboard")
def dashboard(
    port: Annotated[int, typer.Option(help="Cổng")] = 8501,
    address: Annotated[str, typer.Option(help="Địa chỉ lắng nghe")] = "127.0.0.1",
) -> None:
    """Mở bảng điều khiển (Streamlit) cho giáo viên, hiệu trưởng, văn thư, cán bộ Phòng."""
    import subprocess
    from pathlib import Path as _Path

    import hocba.dashboard

    _prepare()
    app_path = _Path(hocba.dashboard.__file__).parent / "app.py"
    console.print(f"Bảng điều khiển: http://{address}:{port} (Ctrl+C để dừng)")
    raise typer.Exit(
        subprocess.call(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(app_path),
                "--server.address",
                address,
                "--server.port",
                str(port),
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
            ]
        )
    )


if __name__ == "__main__":  # pragma: no cover
    app()
