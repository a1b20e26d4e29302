"""TT27 (Thông tư 27/2020/TT-BGDĐT) rules, table by table.

Each table is a rule of TT27 or of the 2018 curriculum, one row per case; every test asserts one
behaviour. A "pupil" starts as a perfect record of the grade (every compulsory subject T, every
test 10, every quality and competence T) and each row changes only what it is about.
"""

from __future__ import annotations

import copy
import unicodedata
from decimal import Decimal

import pytest

from hocba.models.tt27 import (
    GENERAL_COMPETENCES,
    QUALITIES,
    QUALITY_LEVEL_NAMES,
    QUALITY_LEVELS,
    SPECIFIC_COMPETENCES,
    SUBJECT_LEVEL_NAMES,
    SUBJECT_LEVELS,
    Flag,
    Tt27Error,
    YearAssessment,
    YearResult,
    award_for,
    check,
    completion_text,
    explain,
    is_august_cohort,
    is_promoted,
    parse_quality_level,
    parse_score,
    parse_subject_level,
    subject,
    subjects_for_grade,
    traits_for_grade,
    year_result,
)

HTXS, HTT, HT, CHT = YearResult.HTXS, YearResult.HTT, YearResult.HT, YearResult.CHT
D = "\u0110"  # Đ, the level "Đạt"
ABSENT = object()  # marks a subject or trait removed from the record
TRAIT_CODES = {t.code for t in QUALITIES + GENERAL_COMPETENCES + SPECIFIC_COMPETENCES}


def pupil(grade: int = 4, **changes: object) -> YearAssessment:
    """A perfect record of the grade, then ``changes``: subject code -> (level, score), trait
    code -> level, either -> ABSENT to remove it."""
    subjects: dict[str, tuple[str | None, int | None]] = {
        s.code: ("T", 10 if s.has_test else None) for s in subjects_for_grade(grade) if s.compulsory
    }
    traits: dict[str, str | None] = {t.code: "T" for t in traits_for_grade(grade)}
    for code, value in changes.items():
        record: dict = traits
        if isinstance(value, tuple) or (value is ABSENT and code not in TRAIT_CODES):
            record = subjects
        if value is ABSENT:
            record.pop(code, None)
        else:
            record[code] = value
    return YearAssessment(grade=grade, subjects=subjects, traits=traits)


def all_tests(grade: int, score: int) -> YearAssessment:
    """A perfect record of the grade in which every end-of-year test has ``score``."""
    return pupil(grade, **{s.code: ("T", score) for s in subjects_for_grade(grade) if s.has_test})


# ============================================================================================
# CTGDPT 2018: subjects and activities per grade
# ============================================================================================

SUBJECT_NAMES = [
    ("TV", "Tiếng Việt"),
    ("TOAN", "Toán"),
    ("DD", "Đạo đức"),
    ("TNXH", "Tự nhiên và Xã hội"),
    ("GDTC", "Giáo dục thể chất"),
    ("AN", "Âm nhạc"),
    ("MT", "Mĩ thuật"),
    ("HDTN", "Hoạt động trải nghiệm"),
    ("NN1", "Ngoại ngữ 1"),
    ("TDT", "Tiếng dân tộc"),
    ("TIN", "Tin học"),
    ("CN", "Công nghệ"),
    ("LSDL", "Lịch sử và Địa lí"),
    ("KH", "Khoa học"),
]


@pytest.mark.parametrize(("code", "name"), SUBJECT_NAMES)
def test_subject_name(code: str, name: str) -> None:
    assert subject(code).name == name


@pytest.mark.parametrize(
    ("grade", "codes"),
    [
        (1, ("TV", "TOAN", "DD", "TNXH", "GDTC", "AN", "MT", "HDTN", "TDT", "NN1")),
        (2, ("TV", "TOAN", "DD", "TNXH", "GDTC", "AN", "MT", "HDTN", "TDT", "NN1")),
        (3, ("TV", "TOAN", "NN1", "DD", "TNXH", "GDTC", "AN", "MT", "HDTN", "TIN", "CN", "TDT")),
        (4, ("TV", "TOAN", "NN1", "DD", "LSDL", "KH", "TIN", "CN", "GDTC", "AN", "MT", "HDTN",
             "TDT")),
        (5, ("TV", "TOAN", "NN1", "DD", "LSDL", "KH", "TIN", "CN", "GDTC", "AN", "MT", "HDTN",
             "TDT")),
    ],
)  # fmt: skip
def test_subjects_of_the_grade_in_printed_order(grade: int, codes: tuple[str, ...]) -> None:
    assert tuple(s.code for s in subjects_for_grade(grade)) == codes


@pytest.mark.parametrize(
    ("grade", "electives"),
    [(1, {"TDT", "NN1"}), (2, {"TDT", "NN1"}), (3, {"TDT"}), (4, {"TDT"}), (5, {"TDT"})],
)
def test_elective_subjects_of_the_grade(grade: int, electives: set[str]) -> None:
    assert {s.code for s in subjects_for_grade(grade) if not s.compulsory} == electives


@pytest.mark.parametrize(
    ("grade", "tested"),
    [
        (1, {"TV", "TOAN"}),
        (2, {"TV", "TOAN"}),
        (3, {"TV", "TOAN", "NN1", "TIN", "CN"}),
        (4, {"TV", "TOAN", "NN1", "LSDL", "KH", "TIN", "CN"}),
        (5, {"TV", "TOAN", "NN1", "LSDL", "KH", "TIN", "CN"}),
    ],
)
def test_subjects_with_a_periodic_test(grade: int, tested: set[str]) -> None:
    assert {s.code for s in subjects_for_grade(grade) if s.has_test} == tested


@pytest.mark.parametrize(
    ("code", "grades"),
    [
        ("TV", (1, 2, 3, 4, 5)),
        ("NN1", (1, 2, 3, 4, 5)),
        ("TDT", (1, 2, 3, 4, 5)),
        ("TNXH", (1, 2, 3)),
        ("TIN", (3, 4, 5)),
        ("CN", (3, 4, 5)),
        ("LSDL", (4, 5)),
        ("KH", (4, 5)),
    ],
)
def test_grades_that_teach_the_subject(code: str, grades: tuple[int, ...]) -> None:
    assert subject(code).grades == grades


@pytest.mark.parametrize(
    ("code", "grade", "compulsory", "has_test"),
    [
        ("NN1", 1, False, False),
        ("NN1", 2, False, False),
        ("NN1", 3, True, True),
        ("NN1", 5, True, True),
        ("TDT", 4, False, False),
        ("DD", 4, True, False),
    ],
)
def test_subject_as_it_stands_in_a_grade(
    code: str, grade: int, compulsory: bool, has_test: bool
) -> None:
    assert (subject(code, grade).compulsory, subject(code, grade).has_test) == (
        compulsory,
        has_test,
    )


def test_subject_without_grade_is_as_in_its_highest_grade() -> None:
    assert subject("NN1") == subject("NN1", 5)


@pytest.mark.parametrize("grade", [0, 6, -1, True, "3", None])
def test_grade_outside_1_to_5_is_a_value_error(grade: object) -> None:
    with pytest.raises(ValueError, match="Khối lớp phải là số nguyên từ 1 đến 5"):
        subjects_for_grade(grade)  # type: ignore[arg-type]


def test_unknown_subject_code_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        subject("HOA")


def test_unknown_subject_code_is_named_in_the_message() -> None:
    with pytest.raises(Tt27Error, match="Mã môn học không hợp lệ: 'HOA'"):
        subject("HOA")


def test_subject_not_taught_in_the_grade_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        subject("LSDL", 3)


# ============================================================================================
# TT27 Điều 5 and Điều 8: qualities, competences and the two level scales
# ============================================================================================

TRAIT_FIELDS = [
    ("YEU_NUOC", "Yêu nước", "PHAM_CHAT_YEU_NUOC"),
    ("NHAN_AI", "Nhân ái", "PHAM_CHAT_NHAN_AI"),
    ("CHAM_CHI", "Chăm chỉ", "PHAM_CHAT_CHAM_CHI"),
    ("TRUNG_THUC", "Trung thực", "PHAM_CHAT_TRUNG_THUC"),
    ("TRACH_NHIEM", "Trách nhiệm", "PHAM_CHAT_TRACH_NHIEM"),
    ("TU_CHU_TU_HOC", "Tự chủ và tự học", "NANG_LUC_TU_CHU_TU_HOC"),
    ("GIAO_TIEP_HOP_TAC", "Giao tiếp và hợp tác", "NANG_LUC_GIAO_TIEP_HOC_TAC"),
    (
        "GIAI_QUYET_VAN_DE_SANG_TAO",
        "Giải quyết vấn đề và sáng tạo",
        "NANG_LUC_GIAI_QUYET_VAN_DE_SANG_TAO",
    ),
    ("NGON_NGU", "Ngôn ngữ", "NANG_LUC_NGON_NGU"),
    ("TINH_TOAN", "Tính toán", "NANG_LUC_TINH_TOAN"),
    ("KHOA_HOC", "Khoa học", "NANG_LUC_KHOA_HOC"),
    ("CONG_NGHE", "Công nghệ", "NANG_LUC_CONG_NGHE"),
    ("TIN_HOC", "Tin học", "NANG_LUC_TIN_HOC"),
    ("THAM_MI", "Thẩm mĩ", "NANG_LUC_THAM_MI"),
    ("THE_CHAT", "Thể chất", "NANG_LUC_THE_CHAT"),
]


def test_five_qualities_three_general_seven_specific_competences() -> None:
    assert (len(QUALITIES), len(GENERAL_COMPETENCES), len(SPECIFIC_COMPETENCES)) == (5, 3, 7)


@pytest.mark.parametrize(("code", "name", "xml_field"), TRAIT_FIELDS)
def test_trait_name_and_xml_field(code: str, name: str, xml_field: str) -> None:
    traits = {t.code: t for t in QUALITIES + GENERAL_COMPETENCES + SPECIFIC_COMPETENCES}
    assert (traits[code].name, traits[code].xml_field) == (name, xml_field)


@pytest.mark.parametrize(
    ("grade", "count", "has_cong_nghe_tin_hoc"),
    [(1, 13, False), (2, 13, False), (3, 15, True), (4, 15, True), (5, 15, True)],
)
def test_traits_of_the_grade(grade: int, count: int, has_cong_nghe_tin_hoc: bool) -> None:
    codes = [t.code for t in traits_for_grade(grade)]
    assert (len(codes), {"CONG_NGHE", "TIN_HOC"} <= set(codes)) == (count, has_cong_nghe_tin_hoc)


@pytest.mark.parametrize(
    ("levels", "expected"),
    [
        (SUBJECT_LEVELS, ("T", "H", "C")),
        (QUALITY_LEVELS, ("T", "\u0110", "C")),
        (SUBJECT_LEVEL_NAMES, {"T": "Hoàn thành tốt", "H": "Hoàn thành", "C": "Chưa hoàn thành"}),
        (QUALITY_LEVEL_NAMES, {"T": "Tốt", "\u0110": "Đạt", "C": "Cần cố gắng"}),
    ],
)
def test_level_scales(levels: object, expected: object) -> None:
    assert levels == expected


@pytest.mark.parametrize(
    ("result", "name"),
    [
        (HTXS, "Hoàn thành xuất sắc"),
        (HTT, "Hoàn thành tốt"),
        (HT, "Hoàn thành"),
        (CHT, "Chưa hoàn thành"),
    ],
)
def test_year_result_vietnamese_name(result: YearResult, name: str) -> None:
    assert result.name_vi == name


@pytest.mark.parametrize("code", ["HTXS", "HTT", "HT", "CHT"])
def test_year_result_value_is_its_code(code: str) -> None:
    assert YearResult(code) == code


# ============================================================================================
# TT27 Điều 8: a test score is a whole number on a 10-point scale, no decimals
# ============================================================================================


@pytest.mark.parametrize(
    ("value", "score"),
    [
        (0, 0),
        (7, 7),
        (10, 10),
        ("7", 7),
        (" 9 ", 9),
        ("10", 10),
        ("0", 0),
        (7.0, 7),
        (Decimal("8"), 8),
        ("7.0", 7),
        ("7,0", 7),
    ],
)
def test_parse_score_accepts_whole_numbers_0_to_10(value: object, score: int) -> None:
    assert parse_score(value) == score


@pytest.mark.parametrize(
    "value",
    [
        7.5,
        "7,5",
        "7.5",
        Decimal("7.5"),
        11,
        "11",
        -1,
        "-1",
        "abc",
        "",
        None,
        True,
        False,
        float("nan"),
        "1e1",
        "100",
        [7],
    ],
)
def test_parse_score_rejects_anything_else(value: object) -> None:
    with pytest.raises(Tt27Error):
        parse_score(value)


def test_parse_score_message_is_vietnamese() -> None:
    with pytest.raises(Tt27Error) as caught:
        parse_score(11)
    assert caught.value.message == "Điểm kiểm tra phải là số nguyên từ 0 đến 10 (nhận được: 11)"


@pytest.mark.parametrize(
    ("value", "level"),
    [
        ("T", "T"),
        ("h", "H"),
        (" C ", "C"),
        ("Hoàn thành tốt", "T"),
        ("hoàn thành", "H"),
        ("Chưa hoàn thành", "C"),
    ],
)
def test_parse_subject_level(value: str, level: str) -> None:
    assert parse_subject_level(value) == level


@pytest.mark.parametrize("value", ["Đ", "X", "TT", "", None, 1, "Tốt"])
def test_parse_subject_level_rejects(value: object) -> None:
    with pytest.raises(Tt27Error, match="Mức đạt được môn học phải là T"):
        parse_subject_level(value)


@pytest.mark.parametrize(
    ("value", "level"),
    [
        ("T", "T"),
        ("\u0110", D),
        ("đ", D),
        ("D", D),
        ("d", D),
        (" c ", "C"),
        ("Tốt", "T"),
        ("Đạt", D),
        (unicodedata.normalize("NFD", "Đạt"), D),
        ("cần cố gắng", "C"),
    ],
)
def test_parse_quality_level(value: str, level: str) -> None:
    assert parse_quality_level(value) == level


@pytest.mark.parametrize("value", ["H", "X", "", None, 1, "Hoàn thành"])
def test_parse_quality_level_rejects(value: object) -> None:
    with pytest.raises(Tt27Error, match="Mức phẩm chất, năng lực phải là T"):
        parse_quality_level(value)


# ============================================================================================
# TT27 Điều 9.2: the year result
# ============================================================================================


@pytest.mark.parametrize("grade", [1, 2, 3, 4, 5])
def test_all_t_and_all_tests_10_is_htxs(grade: int) -> None:
    assert year_result(pupil(grade)) == HTXS


@pytest.mark.parametrize(
    ("score", "expected"),
    [(10, HTXS), (9, HTXS), (8, HTT), (7, HTT), (6, HT), (5, HT), (4, CHT), (0, CHT)],
)
def test_every_test_at_the_same_score(score: int, expected: YearResult) -> None:
    assert year_result(all_tests(4, score)) == expected


YEAR_RESULT_TABLE = [
    # -- the score thresholds, one test enough to fall ---------------------------------------
    pytest.param(4, {"TOAN": ("T", 9)}, HTXS, id="Toán 9 keeps HTXS"),
    pytest.param(4, {"TOAN": ("T", 8)}, HTT, id="Toán 8 gives HTT not HTXS"),
    pytest.param(4, {"TOAN": ("T", 7)}, HTT, id="Toán 7 keeps HTT"),
    pytest.param(4, {"TOAN": ("T", 6)}, HT, id="Toán 6 gives HT"),
    pytest.param(4, {"TOAN": ("T", 5)}, HT, id="Toán 5 keeps HT"),
    pytest.param(4, {"TOAN": ("T", 4)}, CHT, id="Toán 4 gives CHT"),
    pytest.param(4, {"KH": ("T", 8)}, HTT, id="Khoa học 8 gives HTT"),
    pytest.param(4, {"LSDL": ("T", 6)}, HT, id="Lịch sử và Địa lí 6 gives HT"),
    pytest.param(3, {"TIN": ("T", 8)}, HTT, id="grade 3 Tin học 8 gives HTT"),
    pytest.param(3, {"CN": ("T", 4)}, CHT, id="grade 3 Công nghệ 4 gives CHT"),
    # -- subject levels: the teacher's judgement, never derived from the score --------------
    pytest.param(4, {"DD": ("H", None)}, HT, id="one H blocks HTXS and HTT"),
    pytest.param(4, {"HDTN": ("H", None)}, HT, id="H in an activity gives HT"),
    pytest.param(4, {"TOAN": ("H", 10)}, HT, id="H with score 10 stays HT"),
    pytest.param(4, {"TOAN": ("T", 5)}, HT, id="T with score 5 is HT"),
    pytest.param(4, {"TOAN": ("C", 10)}, CHT, id="C with score 10 is CHT"),
    pytest.param(4, {"AN": ("C", None)}, CHT, id="C in Âm nhạc gives CHT"),
    pytest.param(1, {"HDTN": ("C", None)}, CHT, id="C in an activity gives CHT"),
    # -- qualities and competences ---------------------------------------------------------
    pytest.param(4, {"TRUNG_THUC": D}, HT, id="one Đ quality blocks HTXS and HTT"),
    pytest.param(4, {"TU_CHU_TU_HOC": D}, HT, id="one Đ general competence gives HT"),
    pytest.param(4, {"THE_CHAT": D}, HT, id="one Đ specific competence gives HT"),
    pytest.param(4, {"YEU_NUOC": "C"}, CHT, id="C quality gives CHT"),
    pytest.param(4, {"THAM_MI": "C"}, CHT, id="C competence gives CHT"),
    # -- missing data is CHT ---------------------------------------------------------------
    pytest.param(4, {"TOAN": (None, 10)}, CHT, id="missing level gives CHT"),
    pytest.param(4, {"TOAN": ("T", None)}, CHT, id="missing score on a tested subject is CHT"),
    pytest.param(4, {"TV": ABSENT}, CHT, id="compulsory subject absent gives CHT"),
    pytest.param(4, {"NHAN_AI": None}, CHT, id="quality not assessed gives CHT"),
    pytest.param(4, {"NHAN_AI": ABSENT}, CHT, id="quality absent gives CHT"),
    pytest.param(4, {"TOAN": ("T", 11)}, CHT, id="invalid score counts as missing"),
    pytest.param(4, {"TOAN": ("t", 10)}, CHT, id="unparsed level counts as missing"),
    pytest.param(4, {"CHAM_CHI": "D"}, CHT, id="ASCII D is not a level"),
    # -- only end-of-year tests of tested subjects count -----------------------------------
    pytest.param(4, {"DD": ("T", 2)}, HTXS, id="score on Đạo đức does not lower"),
    pytest.param(1, {"GDTC": ("T", 0)}, HTXS, id="score on GDTC does not lower"),
    pytest.param(3, {"TNXH": ("T", 1)}, HTXS, id="score on TNXH does not lower"),
    # -- NN1 in grades 1-2: elective, no test ----------------------------------------------
    pytest.param(2, {"NN1": ("T", None)}, HTXS, id="grade 2 NN1 T without score is fine"),
    pytest.param(2, {"NN1": ("T", 3)}, HTXS, id="grade 2 NN1 score is not used"),
    pytest.param(2, {"NN1": ("H", None)}, HT, id="grade 2 NN1 taken counts for level"),
    pytest.param(1, {"NN1": (None, None)}, HTXS, id="grade 1 NN1 empty row means not taken"),
    pytest.param(2, {"NN1": (None, 8)}, CHT, id="grade 2 NN1 score without level is CHT"),
    # -- NN1 from grade 3: compulsory, tested ----------------------------------------------
    pytest.param(3, {"NN1": ("T", None)}, CHT, id="grade 3 NN1 needs a test score"),
    pytest.param(3, {"NN1": ABSENT}, CHT, id="grade 3 NN1 is compulsory"),
    pytest.param(3, {"NN1": ("T", 6)}, HT, id="grade 3 NN1 score 6 gives HT"),
    # -- Tiếng dân tộc: elective, counted when taken ---------------------------------------
    pytest.param(5, {"TDT": ("T", None)}, HTXS, id="TDT taken with T"),
    pytest.param(5, {"TDT": ("H", None)}, HT, id="TDT taken with H gives HT"),
    # -- competences from grade 3 -----------------------------------------------------------
    pytest.param(1, {"CONG_NGHE": ABSENT, "TIN_HOC": ABSENT}, HTXS, id="grade 1 no CN/TIN fine"),
    pytest.param(3, {"TIN_HOC": ABSENT}, CHT, id="grade 3 requires Tin học competence"),
    pytest.param(3, {"CONG_NGHE": None}, CHT, id="grade 3 requires Công nghệ competence"),
    pytest.param(1, {"TIN_HOC": "C"}, HTXS, id="grade 1 Tin học competence is ignored"),
    # -- codes outside the grade are ignored (and flagged by check) -------------------------
    pytest.param(3, {"LSDL": ("C", 0)}, HTXS, id="grade 3 LSDL is ignored"),
    pytest.param(4, {"HOA": ("C", 0)}, HTXS, id="unknown subject is ignored"),
]


@pytest.mark.parametrize(("grade", "changes", "expected"), YEAR_RESULT_TABLE)
def test_year_result(grade: int, changes: dict[str, object], expected: YearResult) -> None:
    assert year_result(pupil(grade, **changes)) == expected


EXPLAIN_TABLE = [
    pytest.param({}, (HTXS, []), id="HTXS has nothing above"),
    pytest.param({"TOAN": ("T", 8)}, (HTT, ["môn Toán điểm 8 < 9"]), id="not HTXS"),
    pytest.param({"TOAN": ("T", 6)}, (HT, ["môn Toán điểm 6 < 7"]), id="not HTT: score"),
    pytest.param({"DD": ("H", None)}, (HT, ["môn Đạo đức mức H"]), id="not HTT: subject"),
    pytest.param(
        {"HDTN": ("H", None)}, (HT, ["hoạt động trải nghiệm mức H"]), id="not HTT: activity"
    ),
    pytest.param({"TRUNG_THUC": D}, (HT, ["phẩm chất trung thực mức Đ"]), id="not HTT: quality"),
    pytest.param(
        {"TU_CHU_TU_HOC": D}, (HT, ["năng lực tự chủ và tự học mức Đ"]), id="not HTT: competence"
    ),
    pytest.param({"TOAN": ("T", 4)}, (CHT, ["môn Toán điểm 4 < 5"]), id="not HT: score"),
    pytest.param(
        {"TOAN": ("T", None)},
        (CHT, ["môn Toán chưa có điểm kiểm tra cuối năm"]),
        id="not HT: missing score",
    ),
    pytest.param(
        {"KH": (None, 9)}, (CHT, ["môn Khoa học chưa có mức đạt được"]), id="not HT: no level"
    ),
    pytest.param(
        {"YEU_NUOC": None}, (CHT, ["phẩm chất yêu nước chưa được đánh giá"]), id="not HT: trait"
    ),
    pytest.param(
        {"TOAN": ("T", 6), "TV": ("T", 5)},
        (HT, ["môn Tiếng Việt điểm 5 < 7", "môn Toán điểm 6 < 7"]),
        id="every reason, in printed order",
    ),
]


@pytest.mark.parametrize(("changes", "expected"), EXPLAIN_TABLE)
def test_explain_says_why_not_the_level_above(
    changes: dict[str, object], expected: tuple[YearResult, list[str]]
) -> None:
    assert explain(pupil(4, **changes)) == expected


# ============================================================================================
# check(): the record is flagged, never changed
# ============================================================================================

CHECK_TABLE = [
    pytest.param(4, {}, [], id="perfect record"),
    pytest.param(4, {"TV": ABSENT}, ["MISSING_SUBJECT"], id="compulsory subject absent"),
    pytest.param(4, {"TOAN": (None, 8)}, ["MISSING_SUBJECT"], id="level missing"),
    pytest.param(4, {"TOAN": ("T", None)}, ["MISSING_SCORE"], id="score missing"),
    pytest.param(3, {"NN1": ("T", None)}, ["MISSING_SCORE"], id="grade 3 NN1 needs a score"),
    pytest.param(3, {"LSDL": ("T", 9)}, ["UNKNOWN_SUBJECT"], id="LSDL not in grade 3"),
    pytest.param(4, {"HOA": ("T", None)}, ["UNKNOWN_SUBJECT"], id="unknown subject code"),
    pytest.param(4, {"DD": ("T", 8)}, ["UNEXPECTED_SCORE"], id="score on Đạo đức"),
    pytest.param(2, {"NN1": ("T", 9)}, ["UNEXPECTED_SCORE"], id="grade 2 NN1 score"),
    pytest.param(2, {"NN1": ("T", None)}, [], id="grade 2 NN1 without score"),
    pytest.param(2, {"NN1": (None, None)}, [], id="grade 2 NN1 not taken"),
    pytest.param(
        2, {"NN1": (None, 7)}, ["MISSING_SUBJECT", "UNEXPECTED_SCORE"], id="NN1 score only"
    ),
    pytest.param(4, {"TOAN": ("T", 11)}, ["INVALID_SCORE"], id="score out of range"),
    pytest.param(4, {"TOAN": ("X", 9)}, ["INVALID_LEVEL"], id="subject level unknown"),
    pytest.param(4, {"CHAM_CHI": "D"}, ["INVALID_LEVEL"], id="ASCII D as a quality level"),
    pytest.param(4, {"NHAN_AI": None}, ["MISSING_TRAIT"], id="quality not assessed"),
    pytest.param(3, {"CONG_NGHE": ABSENT}, ["MISSING_TRAIT"], id="grade 3 Công nghệ required"),
    pytest.param(1, {"TIN_HOC": "T"}, ["UNKNOWN_TRAIT"], id="grade 1 Tin học competence"),
    pytest.param(4, {"HIEU_THAO": "T"}, ["UNKNOWN_TRAIT"], id="unknown trait code"),
    pytest.param(6, {}, ["INVALID_GRADE"], id="grade 6"),
]


@pytest.mark.parametrize(("grade", "changes", "codes"), CHECK_TABLE)
def test_check_flags(grade: int, changes: dict[str, object], codes: list[str]) -> None:
    record = pupil(min(grade, 5), **changes)
    record.grade = grade
    assert [flag.code for flag in check(record)] == codes


@pytest.mark.parametrize(
    ("grade", "changes", "flag"),
    [
        pytest.param(
            4,
            {"TV": ABSENT},
            Flag("MISSING_SUBJECT", "Thiếu môn Tiếng Việt (bắt buộc ở lớp 4)", "TV"),
            id="missing subject",
        ),
        pytest.param(
            4,
            {"TOAN": ("T", None)},
            Flag("MISSING_SCORE", "Chưa có điểm kiểm tra định kì cuối năm của môn Toán", "TOAN"),
            id="missing score",
        ),
        pytest.param(
            2,
            {"NN1": ("T", 9)},
            Flag(
                "UNEXPECTED_SCORE",
                "Môn Ngoại ngữ 1 lớp 2 không có bài kiểm tra định kì; "
                "điểm 9 không được dùng để đánh giá",
                "NN1",
            ),
            id="unexpected score",
        ),
        pytest.param(
            1,
            {"TIN_HOC": "T"},
            Flag(
                "UNKNOWN_TRAIT",
                "Năng lực tin học chỉ được đánh giá từ lớp 3, không có ở lớp 1",
                "TIN_HOC",
            ),
            id="trait not in grade",
        ),
        pytest.param(
            3,
            {"LSDL": ("T", 9)},
            Flag(
                "UNKNOWN_SUBJECT",
                "Môn học Lịch sử và Địa lí (LSDL) không có trong chương trình lớp 3",
                "LSDL",
            ),
            id="subject not in grade",
        ),
        pytest.param(
            4,
            {"TRACH_NHIEM": None},
            Flag("MISSING_TRAIT", "Chưa đánh giá phẩm chất trách nhiệm", "TRACH_NHIEM"),
            id="missing trait",
        ),
    ],
)
def test_check_message(grade: int, changes: dict[str, object], flag: Flag) -> None:
    assert check(pupil(grade, **changes)) == [flag]


MISMATCH_TABLE = [
    pytest.param(
        {"TOAN": ("T", 6)},
        "HTT",
        "Kết quả nhập là HTT nhưng theo Điều 9.2 TT27 phải là HT: môn Toán điểm 6 < 7",
        id="entered above the data",
    ),
    pytest.param(
        {"TOAN": ("T", 6), "DD": ("H", None)},
        HTXS,
        "Kết quả nhập là HTXS nhưng theo Điều 9.2 TT27 phải là HT: "
        "môn Toán điểm 6 < 9; môn Đạo đức mức H",
        id="reasons name the entered level's conditions",
    ),
    pytest.param(
        {},
        "HT",
        "Kết quả nhập là HT nhưng theo Điều 9.2 TT27 phải là HTXS: đủ điều kiện mức HTXS",
        id="entered below the data",
    ),
]


@pytest.mark.parametrize(("changes", "entered", "message"), MISMATCH_TABLE)
def test_result_mismatch_names_both_results(
    changes: dict[str, object], entered: str, message: str
) -> None:
    assert check(pupil(4, **changes), entered) == [Flag("RESULT_MISMATCH", message)]


@pytest.mark.parametrize(
    ("entered", "codes"),
    [
        (HTXS, []),
        ("HTXS", []),
        (" htxs ", []),
        ("Hoàn thành xuất sắc", []),
        (None, []),
        ("", []),
        ("HTT", ["RESULT_MISMATCH"]),
        ("CHT", ["RESULT_MISMATCH"]),
        ("Giỏi", ["INVALID_RESULT"]),
    ],
)
def test_check_entered_result(entered: YearResult | str | None, codes: list[str]) -> None:
    assert [flag.code for flag in check(pupil(4), entered)] == codes


def test_check_never_changes_the_record() -> None:
    record = pupil(2, TOAN=("T", 6), NN1=("T", 9), TIN_HOC="T", TRUNG_THUC=None)
    before = copy.deepcopy(record)
    check(record, "HTXS")
    assert record == before


# ============================================================================================
# TT27 Điều 11: completion of the grade / of primary school
# ============================================================================================

COMPLETION_TABLE = (
    [
        (grade, result, f"Hoàn thành chương trình lớp {grade}; Được lên lớp {grade + 1}")
        for grade in (1, 2, 3, 4)
        for result in (HTXS, HTT, HT)
    ]
    + [(5, result, "Hoàn thành chương trình tiểu học") for result in (HTXS, HTT, HT)]
    + [(grade, CHT, f"Chưa hoàn thành chương trình lớp {grade}") for grade in (1, 2, 3, 4, 5)]
)


@pytest.mark.parametrize(("grade", "result", "text"), COMPLETION_TABLE)
def test_completion_text(grade: int, result: YearResult, text: str) -> None:
    assert completion_text(grade, result) == text


def test_completion_text_of_grade_1_htt_reads_in_full() -> None:
    assert completion_text(1, HTT) == "Hoàn thành chương trình lớp 1; Được lên lớp 2"


@pytest.mark.parametrize("grade", [0, 6])
def test_completion_text_rejects_a_grade_outside_1_to_5(grade: int) -> None:
    with pytest.raises(ValueError):
        completion_text(grade, HT)


@pytest.mark.parametrize(
    ("result", "promoted"), [(HTXS, True), (HTT, True), (HT, True), (CHT, None)]
)
def test_is_promoted(result: YearResult, promoted: bool | None) -> None:
    assert is_promoted(result) is promoted


@pytest.mark.parametrize(
    ("result", "august"), [(HTXS, False), (HTT, False), (HT, False), (CHT, True)]
)
def test_is_august_cohort(result: YearResult, august: bool) -> None:
    assert is_august_cohort(result) is august


# ============================================================================================
# TT27 Điều 13: year-end awards
# ============================================================================================


@pytest.mark.parametrize(
    ("result", "outstanding_progress", "award"),
    [
        (HTXS, False, "Học sinh Xuất sắc"),
        (HTXS, True, "Học sinh Xuất sắc"),
        (HTT, True, "Học sinh Tiêu biểu hoàn thành tốt trong học tập và rèn luyện"),
        (HTT, False, None),
        (HT, True, None),
        (HT, False, None),
        (CHT, True, None),
    ],
)
def test_award_for(result: YearResult, outstanding_progress: bool, award: str | None) -> None:
    assert award_for(result, outstanding_progress) == award
