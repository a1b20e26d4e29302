"""Import of the CSDL-style workbook: clear errors, all-or-nothing, idempotent (issue 2 §6)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine, text
from sqlmodel import Session

from hocba.dev import demo
from hocba.models.lifecycle import SYSTEM, transition
from hocba.models.records import create_drafts
from hocba.tasks import importer
from hocba.tasks.importer import ImportFailed

YEAR = "2024-2025"
SCHOOL = demo.demo_schools(1)[0]


@pytest.fixture
def org(engine: Engine) -> Engine:
    with Session(engine) as s:
        demo.build_org(s, [SCHOOL])
        s.commit()
    return engine


def rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return demo.school_rows(SCHOOL, 20, seed=3, year_start=2024, used_ids=set())


def write(tmp: Path, change: Callable[[list[dict[str, Any]]], None] | None = None) -> Path:
    pupils, classes = rows()
    if change:
        change(pupils)
    return importer.write_workbook(tmp / "truong.xlsx", pupils, classes)


def do_import(engine: Engine, path: Path) -> importer.ImportReport:
    with Session(engine) as s:
        report = importer.import_file(s, path, SCHOOL.code, YEAR, SYSTEM)
        s.commit()
        return report


def counts(engine: Engine) -> tuple[int, ...]:
    with engine.connect() as c:
        return tuple(
            c.scalar(text(f"SELECT count(*) FROM {t}"))
            for t in (
                "pupil",
                "enrolment",
                "year_summary",
                "school_class",
                "import_batch",
                "audit_event",
            )
        )


def test_import_writes_pupils_classes_and_results(org: Engine, tmp_path: Path) -> None:
    report = do_import(org, write(tmp_path))
    assert report.rows == 20 and report.pupils_changed == 20 and report.summaries_changed == 20
    with org.connect() as c:
        name = c.scalar(text("SELECT full_name FROM pupil ORDER BY id LIMIT 1"))
        teachers = c.scalar(
            text("SELECT count(*) FROM school_class WHERE homeroom_teacher_id IS NOT NULL")
        )
    assert name == rows()[0][0]["full_name"]  # diacritics preserved
    assert teachers == len(rows()[1])


def test_same_file_twice_changes_nothing(org: Engine, tmp_path: Path) -> None:
    path = write(tmp_path)
    do_import(org, path)
    before = counts(org)
    report = do_import(org, path)
    assert report.changed == 0
    assert "không có thay đổi" in report.text_vi()
    assert counts(org) == before


def test_changed_row_updates_only_that_pupil(org: Engine, tmp_path: Path) -> None:
    do_import(org, write(tmp_path))

    def change(p: list[dict[str, Any]]) -> None:
        p[3]["address"] = "Thôn 9, Quảng Lâm, Đầm Hà, Quảng Ninh"

    report = do_import(org, write(tmp_path, change))
    assert (report.pupils_changed, report.summaries_changed) == (1, 0)


def _set(key: str, value: Any, row: int = 2) -> Callable[[list[dict[str, Any]]], None]:
    def change(p: list[dict[str, Any]]) -> None:
        p[row][key] = value

    return change


def _duplicate(p: list[dict[str, Any]]) -> None:
    p[7]["pupil_code"] = p[1]["pupil_code"]


ERROR_CASES = [
    # (what, change, sheet row, column header, words in the message)
    ("wrong level code", _set("subj:TV:level", "X"), 4, "Tiếng Việt - Mức", "T (Hoàn thành tốt)"),
    ("score 11", _set("subj:TOAN:score", 11), 4, "Toán - Điểm", "11"),
    ("score 7.5", _set("subj:TOAN:score", 7.5), 4, "Toán - Điểm", "số nguyên"),
    ("missing pupil code", _set("pupil_code", None), 4, "Mã học sinh", "bắt buộc"),
    ("bad personal ID", _set("cccd", "02231234"), 4, "Mã định danh", "12 chữ số"),
    ("bad date", _set("birth_date", "31/02/2016"), 4, "Ngày sinh", "ngày không hợp lệ"),
    ("bad gender", _set("gender", "Khác"), 4, "Giới tính", "Nam"),
    ("duplicate pupil", _duplicate, 9, "Mã học sinh", "lặp lại"),
    ("quality code", _set("trait:YEU_NUOC", "A"), 4, "Yêu nước", "Cần cố gắng"),
    ("result code", _set("entered_result", "Giỏi"), 4, "Kết quả giáo dục", "HTXS"),
]


@pytest.mark.parametrize(
    ("what", "change", "row", "column", "words"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES]
)
def test_bad_row_names_row_column_and_writes_nothing(
    org: Engine, tmp_path: Path, what: str, change: Any, row: int, column: str, words: str
) -> None:
    before = counts(org)
    with pytest.raises(ImportFailed) as exc:
        do_import(org, write(tmp_path, change))
    problems = exc.value.problems
    assert any(
        p.sheet == "HocSinh" and p.row == row and p.column == column and words in p.message
        for p in problems
    ), [str(p) for p in problems]
    assert "chưa ghi gì" in exc.value.summary()
    assert counts(org) == before


def test_subject_not_taught_in_the_grade(org: Engine, tmp_path: Path) -> None:
    pupils, classes = rows()
    first_grade = next(i for i, p in enumerate(pupils) if p["grade"] == 1)
    pupils[first_grade]["subj:KH:level"] = "T"  # Khoa học is taught from grade 4
    path = importer.write_workbook(tmp_path / "x.xlsx", pupils, classes)
    with pytest.raises(ImportFailed) as exc:
        do_import(org, path)
    assert any(
        p.row == first_grade + 2 and "không học môn Khoa học" in p.message
        for p in exc.value.problems
    )


def test_wrong_sheet_name(org: Engine, tmp_path: Path) -> None:
    path = write(tmp_path)
    wb = load_workbook(path)
    wb["HocSinh"].title = "Sheet1"
    wb.save(path)
    with pytest.raises(ImportFailed) as exc:
        do_import(org, path)
    assert "không tìm thấy trang tính «HocSinh»" in exc.value.problems[0].message
    assert "Sheet1" in exc.value.problems[0].message


def test_missing_required_column(org: Engine, tmp_path: Path) -> None:
    path = write(tmp_path)
    wb = load_workbook(path)
    wb["HocSinh"].delete_cols(3)  # Ngày sinh
    wb.save(path)
    with pytest.raises(ImportFailed) as exc:
        do_import(org, path)
    assert any(p.column == "Ngày sinh" and "thiếu cột" in p.message for p in exc.value.problems)


def test_many_errors_are_all_reported(org: Engine, tmp_path: Path) -> None:
    def change(p: list[dict[str, Any]]) -> None:
        for i in (1, 4, 9):
            p[i]["subj:TOAN:score"] = 12

    with pytest.raises(ImportFailed) as exc:
        do_import(org, write(tmp_path, change))
    assert sorted(p.row for p in exc.value.problems) == [3, 6, 11]


def test_conflict_with_the_database_writes_nothing(org: Engine, tmp_path: Path) -> None:
    do_import(org, write(tmp_path))
    before = counts(org)
    pupils, classes = rows()
    pupils[0]["address"] = "Địa chỉ mới"  # a valid change...
    pupils[5]["pupil_code"] = "KHAC0001"  # ...and another pupil's personal ID reused
    pupils[5]["cccd"] = pupils[6]["cccd"] or "022300000001"
    pupils[6]["cccd"] = None
    path = importer.write_workbook(tmp_path / "y.xlsx", pupils, classes)
    with pytest.raises(ImportFailed) as exc:
        do_import(org, path)
    assert any(p.row == 7 and "đã thuộc một học sinh khác" in p.message for p in exc.value.problems)
    assert not any(pupils[5]["cccd"] in str(p) for p in exc.value.problems)  # masked
    assert counts(org) == before
    with org.connect() as c:
        assert c.scalar(text("SELECT count(*) FROM pupil WHERE address = 'Địa chỉ mới'")) == 0


def test_reviewed_record_is_not_overwritten(org: Engine, tmp_path: Path) -> None:
    do_import(org, write(tmp_path))
    with Session(org) as s:
        create_drafts(s, SYSTEM)
        rid = s.connection().scalar(
            text(
                "SELECT r.id FROM hoc_ba r JOIN pupil p ON p.id = r.pupil_id "
                "WHERE p.pupil_code = :c"
            ),
            {"c": rows()[0][2]["pupil_code"]},
        )
        transition(s, [rid], "send_to_review", SYSTEM)
        teacher = s.connection().scalar(
            text(
                "SELECT c.homeroom_teacher_id FROM hoc_ba r "
                "JOIN school_class c ON c.id = r.class_id WHERE r.id = :r"
            ),
            {"r": rid},
        )
        from hocba.models.lifecycle import Actor

        s.connection().execute(text("UPDATE hoc_ba SET flags = '[]' WHERE id = :r"), {"r": rid})
        assert transition(s, [rid], "approve", Actor(teacher, "GV")).ok == [rid]
        s.commit()
    with pytest.raises(ImportFailed) as exc:
        do_import(org, write(tmp_path, _set("comment_homeroom", "Nhận xét mới", row=2)))
    assert exc.value.problems[0].row == 4
    assert "mở lại" in exc.value.problems[0].message


def test_entered_result_disagreeing_with_tt27_is_flagged_not_changed(
    org: Engine, tmp_path: Path
) -> None:
    pupils, classes = rows()
    i = next(i for i, p in enumerate(pupils) if p["entered_result"] == "HT")
    pupils[i]["entered_result"] = "HTXS"
    do_import(org, importer.write_workbook(tmp_path / "z.xlsx", pupils, classes))
    with org.connect() as c:
        entered, computed, flags = c.execute(
            text(
                "SELECT ys.entered_result, ys.computed_result, ys.flags FROM year_summary ys "
                "JOIN enrolment e ON e.id = ys.enrolment_id JOIN pupil p ON p.id = e.pupil_id "
                "WHERE p.pupil_code = :c"
            ),
            {"c": pupils[i]["pupil_code"]},
        ).one()
    assert (entered, computed) == ("HTXS", "HT")
    assert [f["code"] for f in flags] == ["RESULT_MISMATCH"]


def test_csv_import(org: Engine, tmp_path: Path) -> None:
    pupils, _ = rows()
    path = tmp_path / "hocsinh.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow([c.header for c in importer.PUPIL_COLUMNS])
        for p in pupils:
            w.writerow(
                [
                    importer._cell_value(p.get(c.key)) if p.get(c.key) is not None else ""
                    for c in importer.PUPIL_COLUMNS
                ]
            )
    report = do_import(org, path)
    assert report.pupils_changed == 20


def test_template_has_every_column(tmp_path: Path) -> None:
    path = importer.write_workbook(tmp_path / "mau.xlsx")
    wb = load_workbook(path)
    assert wb.sheetnames == ["HocSinh", "Lop"]
    headers = [c.value for c in wb["HocSinh"][1]]
    assert headers == [c.header for c in importer.PUPIL_COLUMNS]
    assert "Tiếng Việt - Điểm" in headers and "Đạo đức - Điểm" not in headers


def test_class_change_moves_the_pupil_and_the_draft(org: Engine, tmp_path: Path) -> None:
    do_import(org, write(tmp_path))
    with Session(org) as s:
        create_drafts(s, SYSTEM)
        s.commit()
    pupils, classes = rows()
    code = pupils[0]["pupil_code"]
    target = f"{pupils[0]['grade']}Z"  # a new class of the same grade
    classes.append(
        {
            **classes[0],
            "class_name": target,
            "grade": pupils[0]["grade"],
            "teacher_username": "dh01.gvz",
            "teacher_cccd": None,
        }
    )
    pupils[0]["class_name"] = target
    do_import(org, importer.write_workbook(tmp_path / "moved.xlsx", pupils, classes))
    with Session(org) as s:
        report = create_drafts(s, SYSTEM)
        s.commit()
        cls, n = (
            s.connection()
            .execute(
                text(
                    "SELECT c.name, count(*) OVER () FROM hoc_ba r "
                    "JOIN pupil p ON p.id = r.pupil_id "
                    "JOIN school_class c ON c.id = r.class_id WHERE p.pupil_code = :c"
                ),
                {"c": code},
            )
            .one()
        )
    assert (cls, n, report.refreshed) == (target, 1, 1)
    with org.connect() as c:
        assert (
            c.scalar(
                text(
                    "SELECT count(*) FROM enrolment e JOIN pupil p ON p.id = e.pupil_id "
                    "WHERE p.pupil_code = :c"
                ),
                {"c": code},
            )
            == 1
        )


def test_identity_of_a_reviewed_record_is_not_overwritten(org: Engine, tmp_path: Path) -> None:
    do_import(org, write(tmp_path))
    with Session(org) as s:
        create_drafts(s, SYSTEM)
        rid = s.connection().scalar(
            text(
                "SELECT r.id FROM hoc_ba r JOIN pupil p ON p.id = r.pupil_id "
                "WHERE p.pupil_code = :c"
            ),
            {"c": rows()[0][1]["pupil_code"]},
        )
        s.connection().execute(text("SELECT set_config('hocba.lifecycle', 'on', true)"))
        s.connection().execute(
            text("UPDATE hoc_ba SET state = 'reviewed' WHERE id = :r"), {"r": rid}
        )
        s.commit()
    with pytest.raises(ImportFailed) as exc:
        do_import(org, write(tmp_path, _set("full_name", "Tên Đã Sửa", row=1)))
    assert exc.value.problems[0].row == 3


def test_imports_create_the_same_school_year_at_once(engine: Engine) -> None:
    """The first imports of a new year in several processes at once all get the same year.
    Each of the year's two unique keys (start_year, name) can be the one a later insert
    meets the earlier's row on; with ``ON CONFLICT (start_year)`` alone, 14 of 600 such
    inserts failed on ``school_year_name_key`` here (bench/province.py's import hit it).
    Six threads start each year's insert together, 60 years."""
    import threading

    from hocba.tasks.importer import school_year_id

    problems: list[str] = []
    for start in range(2040, 2100):
        name = f"{start}-{start + 1}"
        barrier = threading.Barrier(6)
        ids: list[int] = []

        def create(
            name: str = name, barrier: threading.Barrier = barrier, ids: list[int] = ids
        ) -> None:
            try:
                with Session(engine) as s:
                    barrier.wait()
                    ids.append(school_year_id(s, name))
                    s.commit()
            except Exception as exc:  # reported by the test
                problems.append(f"{name}: {exc.__class__.__name__}")

        threads = [threading.Thread(target=create) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(set(ids)) <= 1, (name, ids)
    assert problems == []
