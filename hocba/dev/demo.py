"""The demo district: a realistic, deterministic district taken through the workflow.

``hocba demo`` builds Phòng GDĐT huyện Đầm Hà (Quảng Ninh), the seed district of the
project, with N primary schools and M pupils each (grades 1-5, Vietnamese names, about 2%
without a personal ID, about 3% CHT going to the August cohort, a few entered results
that disagree with TT27), writes one import workbook per school, imports them through
the real import path, creates the drafts and moves every record as far as the system can
go. The same seed and year always give the same district.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from hocba.models import org, tt27
from hocba.models.lifecycle import SYSTEM, Actor, transition
from hocba.models.records import create_drafts
from hocba.tasks import importer

DEMO_PASSWORD = "hocba-demo"  # demo accounts only; printed in the README
PROVINCE = ("22", "Quảng Ninh")
DISTRICT = ("22-DH", "Đầm Hà")
COMMUNES = (
    "Thị trấn Đầm Hà",
    "Quảng Tân",
    "Đại Bình",
    "Tân Bình",
    "Dực Yên",
    "Quảng Lâm",
    "Tân Lập",
    "Quảng An",
    "Đầm Hà",
)
FAMILY = (
    "Nguyễn",
    "Trần",
    "Lê",
    "Phạm",
    "Hoàng",
    "Huỳnh",
    "Phan",
    "Vũ",
    "Võ",
    "Đặng",
    "Bùi",
    "Đỗ",
    "Hồ",
    "Ngô",
    "Dương",
    "Lý",
    "Đinh",
    "Lương",
    "Tô",
    "Chu",
)
MIDDLE_M = ("Văn", "Minh", "Đức", "Gia", "Quang", "Hữu", "Thành", "Bảo", "Anh", "Tuấn")
MIDDLE_F = ("Thị", "Ngọc", "Thu", "Minh", "Bảo", "Khánh", "Phương", "Thanh", "Mai", "Hải")
GIVEN_M = (
    "An",
    "Bình",
    "Cường",
    "Dũng",
    "Đạt",
    "Hải",
    "Hiếu",
    "Hoàng",
    "Huy",
    "Khang",
    "Khôi",
    "Long",
    "Minh",
    "Nam",
    "Nghĩa",
    "Phong",
    "Phúc",
    "Quân",
    "Sơn",
    "Thắng",
    "Tiến",
    "Trung",
    "Tú",
    "Tuấn",
    "Việt",
    "Vinh",
)
GIVEN_F = (
    "An",
    "Anh",
    "Châu",
    "Chi",
    "Diệp",
    "Giang",
    "Hà",
    "Hạnh",
    "Hằng",
    "Hoa",
    "Hương",
    "Lan",
    "Linh",
    "Mai",
    "My",
    "Ngân",
    "Ngọc",
    "Nhung",
    "Oanh",
    "Phương",
    "Quỳnh",
    "Thảo",
    "Trang",
    "Uyên",
    "Vân",
    "Vy",
    "Yến",
)
ETHNIC = (("Kinh", 0.86), ("Dao", 0.07), ("Sán Chỉ", 0.04), ("Tày", 0.03))
COMMENTS_HOMEROOM = (
    "Em ngoan, chăm chỉ, tích cực tham gia các hoạt động của lớp.",
    "Em tiến bộ rõ trong học tập, cần rèn thêm chữ viết.",
    "Em hòa đồng với bạn bè, biết giúp đỡ bạn.",
    "Em tự giác học bài, tham gia tốt phong trào của trường.",
)
COMMENTS_QUALITIES = (
    "Lễ phép, trung thực, biết quan tâm người khác.",
    "Chăm chỉ, có trách nhiệm với việc được giao.",
)
COMMENTS_COMPETENCES = (
    "Tự giác học tập, biết hợp tác trong nhóm.",
    "Mạnh dạn trình bày ý kiến, biết tự giải quyết vấn đề.",
)


@dataclass(frozen=True)
class DemoSchool:
    code: str
    name: str
    commune: str


@dataclass
class DemoReport:
    year: str
    schools: int
    pupils: int
    without_id: int
    drafts: int
    counts: dict[str, int]
    approve_failures: int


def current_school_year(today: dt.date) -> str:
    """The school year whose June deadline is the next one on or after ``today``."""
    start = today.year - 1 if today < dt.date(today.year, 6, 16) else today.year
    return f"{start}-{start + 1}"


def demo_schools(n: int) -> list[DemoSchool]:
    schools = []
    for i in range(n):
        commune = COMMUNES[i % len(COMMUNES)]
        suffix = f" số {i // len(COMMUNES) + 1}" if i >= len(COMMUNES) else ""
        base = commune.replace("Thị trấn ", "")
        schools.append(DemoSchool(f"DH{i + 1:02d}", f"Trường Tiểu học {base}{suffix}", commune))
    return schools


def _weighted(rng: random.Random, items: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([i for i, _ in items], weights=[w for _, w in items])[0]


def _person(rng: random.Random, male: bool) -> str:
    middle = MIDDLE_M if male else MIDDLE_F
    given = GIVEN_M if male else GIVEN_F
    return f"{rng.choice(FAMILY)} {rng.choice(middle)} {rng.choice(given)}"


def _cccd(rng: random.Random, male: bool, birth_year: int, used: set[str]) -> str:
    while True:
        century = (0 if male else 1) + (2 if birth_year >= 2000 else 0)
        value = f"022{century}{birth_year % 100:02d}{rng.randrange(10**6):06d}"
        if value not in used:
            used.add(value)
            return value


def _assessment(rng: random.Random, grade: int, target: str) -> dict[str, Any]:
    """Levels, scores and traits consistent with the target TT27 result."""
    row: dict[str, Any] = {}
    subjects = tt27.subjects_for_grade(grade)
    tested = [s for s in subjects if s.has_test]
    for s in subjects:
        if not s.compulsory and (s.code == "TDT" or rng.random() < 0.5):
            continue  # elective not taken
        level = "T" if target in ("HTXS", "HTT") else rng.choice(("T", "T", "H"))
        row[f"subj:{s.code}:level"] = level
        if s.has_test:
            lo = {"HTXS": 9, "HTT": 7, "HT": 5, "CHT": 5}[target]
            row[f"subj:{s.code}:score"] = rng.randint(lo, 10)
        row[f"subj:{s.code}:comment"] = (
            "Hoàn thành tốt nội dung môn học." if level == "T" else "Hoàn thành nội dung môn học."
        )
    if target == "HTT":  # at least one test below 9 so that it is not HTXS
        row[f"subj:{rng.choice(tested).code}:score"] = rng.randint(7, 8)
    for t in tt27.traits_for_grade(grade):
        row[f"trait:{t.code}"] = "T" if target in ("HTXS", "HTT") else rng.choice(("T", "Đ"))
    if target == "HT" and all(row.get(f"subj:{s.code}:level") == "T" for s in subjects):
        row[f"subj:{tested[0].code}:score"] = rng.randint(5, 6)
    if target == "CHT":
        s = rng.choice(tested)
        if rng.random() < 0.5:
            row[f"subj:{s.code}:level"] = "C"
        else:
            row[f"subj:{s.code}:score"] = rng.randint(2, 4)
    return row


def school_rows(
    school: DemoSchool, pupils: int, seed: int, year_start: int, used_ids: set[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The import rows (pupils, classes) of one demo school; deterministic per seed."""
    rng = random.Random(f"{seed}:{school.code}")
    per_grade = [pupils // 5 + (1 if g < pupils % 5 else 0) for g in range(5)]
    classes: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    seq = 0
    for grade, count in enumerate(per_grade, start=1):
        n_classes = max(1, round(count / 35))
        names = [f"{grade}{chr(ord('A') + i)}" for i in range(n_classes)]
        for name in names:
            male = rng.random() < 0.2
            classes.append(
                {
                    "class_name": name,
                    "grade": grade,
                    "teacher_name": _person(rng, male),
                    "teacher_cccd": _cccd(rng, male, rng.randint(1972, 1998), used_ids),
                    "teacher_username": f"{school.code.lower()}.gv{name.lower()}",
                    "teacher_email": f"{school.code.lower()}.gv{name.lower()}@demo.hocba.vn",
                }
            )
        for i in range(count):
            seq += 1
            male = rng.random() < 0.51
            birth_year = year_start - 5 - grade
            birth = dt.date(birth_year, 1, 1) + dt.timedelta(days=rng.randrange(365))
            target = rng.choices(("HTXS", "HTT", "HT", "CHT"), weights=(25, 35, 37, 3))[0]
            father, mother = _person(rng, True), _person(rng, False)
            row: dict[str, Any] = {
                "pupil_code": f"{school.code}{year_start % 100:02d}{seq:04d}",
                "full_name": f"{father.split()[0]} {_person(rng, male).split(' ', 1)[1]}",
                "birth_date": birth,
                "gender": "Nam" if male else "Nữ",
                "cccd": None if rng.random() < 0.02 else _cccd(rng, male, birth_year, used_ids),
                "grade": grade,
                "class_name": names[i % len(names)],
                "ethnicity": _weighted(rng, ETHNIC),
                "nationality": "Việt Nam",
                "birthplace": f"{rng.choice(COMMUNES)}, Đầm Hà, Quảng Ninh",
                "hometown": f"{rng.choice(COMMUNES)}, Đầm Hà, Quảng Ninh",
                "address": f"Thôn {rng.randint(1, 9)}, {school.commune}, Đầm Hà, Quảng Ninh",
                "father_name": father,
                "mother_name": mother,
                "register_no": f"{seq:03d}/{year_start + 1 - grade}",
                "enrolled_on": dt.date(year_start + 1 - grade, 9, 5),
                "height_cm": round(rng.uniform(105, 125) + 5 * grade, 1),
                "weight_kg": round(rng.uniform(17, 24) + 2.5 * grade, 1),
                "absent_excused": rng.choice((0, 0, 0, 1, 2, 3)),
                "absent_unexcused": rng.choice((0, 0, 0, 0, 1)),
                "comment_qualities": rng.choice(COMMENTS_QUALITIES),
                "comment_general": rng.choice(COMMENTS_COMPETENCES),
                "comment_specific": rng.choice(COMMENTS_COMPETENCES),
                "comment_homeroom": rng.choice(COMMENTS_HOMEROOM),
            }
            row.update(_assessment(rng, grade, target))
            a = importer.summary_of({**{c.key: None for c in importer.PUPIL_COLUMNS}, **row})
            result = a["computed_result"]
            if rng.random() < 0.01:  # a school typo that the TT27 check must catch
                result = {"HTXS": "HTT", "HTT": "HTXS", "HT": "HTT", "CHT": "HT"}[result]
            row["entered_result"] = result
            if result == "HTXS":
                row["award"] = tt27.award_for(tt27.YearResult.HTXS)
            rows.append(row)
    return rows, classes


def build_org(session: Session, schools: list[DemoSchool]) -> None:
    """Province, district, schools and the school-level staff with their roles."""
    org.ensure_unit(session, PROVINCE[0], PROVINCE[1], "province")
    org.ensure_unit(session, DISTRICT[0], DISTRICT[1], "district", PROVINCE[0])
    rng = random.Random("staff")
    used: set[str] = set()
    pw = org.hash_password(DEMO_PASSWORD)  # one scrypt for every demo account (same password)
    org.ensure_staff(
        session,
        "phong.dh",
        "Lê Thị Thanh Hương",
        _cccd(rng, False, 1980, used),
        "phong.dh@demo.hocba.vn",
        password_hash=pw,
    )
    org.grant(session, "phong.dh", "district_officer", unit_code=DISTRICT[0])
    org.ensure_staff(session, "admin", "Quản trị hệ thống", None, None, password_hash=pw)
    org.grant(session, "admin", "admin")
    for s in schools:
        org.ensure_school(
            session,
            s.code,
            s.name,
            DISTRICT[0],
            s.commune,
            f"{s.commune}, huyện Đầm Hà, tỉnh Quảng Ninh",
            "Đầm Hà",
        )
        for suffix, role, male, delegated in (
            ("ht", "principal", True, False),
            ("pht", "vice_principal", False, True),
            ("vt", "clerk", False, False),
        ):
            username = f"{s.code.lower()}.{suffix}"
            org.ensure_staff(
                session,
                username,
                _person(rng, male),
                _cccd(rng, male, rng.randint(1970, 1990), used),
                f"{username}@demo.hocba.vn",
                password_hash=pw,
            )
            org.grant(session, username, role, school_code=s.code, delegated=delegated)


def run_demo(
    session_factory: Callable[[], Any],
    home: Path,
    schools: int = 12,
    pupils_per_school: int = 420,
    seed: int = 2025,
    year: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> DemoReport:
    """Build the demo district: schools, staff, imported pupils, drafts, and the teachers'
    review (the people's part). The keys, signing, sealing, submission and transfers are
    the flows' work (``hocba/flows/demo.py``).

    ``session_factory()`` returns a context manager yielding a session that commits on
    exit (``hocba.db.session_scope``): each school's import is its own transaction.
    """
    year = year or current_school_year(dt.date.today())
    start = int(year[:4])
    plan = demo_schools(schools)
    with session_factory() as session:
        build_org(session, plan)
    used: set[str] = set()
    total = without = 0
    files_dir = home / "demo" / year
    for i, s in enumerate(plan, start=1):
        rows, classes = school_rows(s, pupils_per_school, seed, start, used)
        path = importer.write_workbook(files_dir / f"{s.code}.xlsx", rows, classes)
        with session_factory() as session:
            report = importer.import_file(session, path, s.code, year, SYSTEM)
        total += report.rows
        without += report.without_id
        if progress:
            progress("import", i, len(plan))
    with session_factory() as session:  # the homeroom teachers came with the workbooks
        session.connection().execute(
            text("UPDATE staff SET password_hash = :pw WHERE password_hash IS NULL"),
            {"pw": org.hash_password(DEMO_PASSWORD)},
        )
        drafts = create_drafts(session, SYSTEM)
    with session_factory() as session:
        ids = list(
            session.connection().scalars(text("SELECT id FROM hoc_ba WHERE state = 'draft'"))
        )
        transition(session, ids, "send_to_review", SYSTEM)
    failures = 0
    with session_factory() as session:
        teachers = (
            session.connection()
            .execute(
                text("""
            SELECT c.homeroom_teacher_id, st.full_name, array_agg(r.id ORDER BY r.id)
            FROM hoc_ba r JOIN school_class c ON c.id = r.class_id
            JOIN staff st ON st.id = c.homeroom_teacher_id
            WHERE r.state = 'in_review' GROUP BY c.homeroom_teacher_id, st.full_name
        """)
            )
            .all()
        )
    for n, (teacher_id, name, record_ids) in enumerate(teachers, start=1):
        with session_factory() as session:
            res = transition(session, record_ids, "approve", Actor(teacher_id, name))
            failures += len(res.failed)
        if progress:
            progress("review", n, len(teachers))
    with session_factory() as session:
        counts = dict(
            session.connection()
            .execute(text("SELECT state, count(*) FROM hoc_ba GROUP BY state"))
            .all()
        )
    return DemoReport(year, len(plan), total, without, drafts.created, counts, failures)


def iter_demo_rows(
    schools: int, pupils: int, seed: int, year_start: int
) -> Iterator[tuple[DemoSchool, list[dict[str, Any]], list[dict[str, Any]]]]:
    """The rows of every demo school (used by the benchmarks)."""
    used: set[str] = set()
    for s in demo_schools(schools):
        rows, classes = school_rows(s, pupils, seed, year_start, used)
        yield s, rows, classes


def provision_keys(session_factory: Callable[[], Any], home: Path) -> dict[str, int]:
    """Test keys for everyone (``$HOCBA_HOME/pki``) and the district officer approves every
    school's seal: what a district does once, before the signing season."""
    from hocba.dev.keys import init_test_keys
    from hocba.models import certificates

    with session_factory() as session:
        made = init_test_keys(session, home, DEMO_PASSWORD, SYSTEM)
    with session_factory() as session:
        officer = (
            session.connection()
            .execute(text("SELECT id, full_name FROM staff WHERE username = 'phong.dh'"))
            .one()
        )
        pending = (
            session.connection()
            .scalars(
                text(
                    "SELECT id FROM certificate WHERE owner_kind = 'school' AND status = 'pending'"
                )
            )
            .all()
        )
        for cert_id in pending:
            certificates.decide(session, cert_id, Actor(*officer), approve=True)
    return made
