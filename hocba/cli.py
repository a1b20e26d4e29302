"""The ``hocba`` command (typer). Every command works on the configured database.

Run ``hocba --help``; each command's help is in Vietnamese and English where it helps.
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hocba import db
from hocba.config import load_settings
from hocba.models.lifecycle import SYSTEM
from hocba.models.lifecycle_states import COHORT_LABELS, STATE_LABELS, STATES

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


def _prepare() -> None:
    """Bring the schema to head (cheap when it already is)."""
    settings = load_settings()
    db.upgrade(db.get_engine(), settings.schema)


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
) -> None:
    """Tạo một huyện mẫu (Đầm Hà, Quảng Ninh) và chạy quy trình xa nhất có thể."""
    from hocba.tasks.demo import DEMO_PASSWORD, run_demo

    settings = load_settings()
    _prepare()
    t0 = time.perf_counter()
    with _progress() as progress:
        tasks: dict[str, Any] = {}

        def step(name: str, done: int, total: int) -> None:
            label = {"import": "Nhập dữ liệu các trường", "review": "GVCN duyệt học bạ"}[name]
            if name not in tasks:
                tasks[name] = progress.add_task(label, total=total)
            progress.update(tasks[name], completed=done)

        report = run_demo(
            db.session_scope, settings.home, schools, pupils_per_school, seed, year, step
        )
    console.print(
        f"Huyện mẫu Đầm Hà, năm học {report.year}: {report.schools} trường, {report.pupils} "
        f"học sinh, {report.without_id} chưa có mã định danh, {report.drafts} học bạ mới "
        f"({time.perf_counter() - t0:.1f} s)."
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
        err.print(f"[red]Chuỗi {p.chain}: sự kiện số {p.seq} (id {p.event_id}): {p.message}[/red]")
    raise typer.Exit(1)


if __name__ == "__main__":  # pragma: no cover
    app()
