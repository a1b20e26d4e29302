"""The rules of Thông tư 27/2020/TT-BGDĐT ("TT27") that a primary school record obeys.

TT27 is the Ministry's regulation on assessing primary pupils (Quy định đánh giá học sinh tiểu
học, as corrected by QĐ 2904). Articles cited below are articles of that regulation:

- Điều 5: what is assessed: the subjects and activities of the curriculum, the 5 core qualities
  (phẩm chất) and the 10 core competences (3 general, 7 specific năng lực).
- Điều 8: periodic assessment: a subject gets T/H/C, a quality or competence gets T/Đ/C, and
  the tested subjects get a periodic test marked on a 10-point scale without decimals.
- Điều 9.2: the end-of-year result HTXS / HTT / HT / CHT.
- Điều 11: completion of the grade / of primary school, supplementary assessment.
- Điều 13: year-end awards.

The list of subjects per grade comes from the 2018 general curriculum (CTGDPT 2018, Thông tư
32/2018/TT-BGDĐT) as summarised in HOCBA_SPEC.md section 2.

This module is pure: no database, no I/O, no project imports. It never changes a record; it
computes, explains and flags (`year_result`, `explain`, `check`).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from numbers import Real
from typing import TypeGuard

from hocba.errors import HocbaError

__all__ = [
    "GENERAL_COMPETENCES",
    "QUALITIES",
    "QUALITY_LEVELS",
    "QUALITY_LEVEL_NAMES",
    "SPECIFIC_COMPETENCES",
    "SUBJECT_LEVELS",
    "SUBJECT_LEVEL_NAMES",
    "YEAR_RESULT_NAMES",
    "Flag",
    "Subject",
    "Trait",
    "Tt27Error",
    "UnknownCodeError",
    "YearAssessment",
    "YearResult",
    "award_for",
    "check",
    "completion_text",
    "explain",
    "is_august_cohort",
    "is_promoted",
    "parse_quality_level",
    "parse_score",
    "parse_subject_level",
    "parse_year_result",
    "subject",
    "subjects_for_grade",
    "trait",
    "traits_for_grade",
    "year_result",
]

GRADES: tuple[int, ...] = (1, 2, 3, 4, 5)

# --------------------------------------------------------------------------------------------
# Levels (Điều 8)
# --------------------------------------------------------------------------------------------

SUBJECT_LEVELS: tuple[str, ...] = ("T", "H", "C")
"""Levels of a subject or activity at a periodic assessment (TT27 Điều 8)."""

SUBJECT_LEVEL_NAMES: dict[str, str] = {
    "T": "Hoàn thành tốt",
    "H": "Hoàn thành",
    "C": "Chưa hoàn thành",
}

QUALITY_LEVELS: tuple[str, ...] = ("T", "\u0110", "C")
"""Levels of a quality or competence at a periodic assessment (TT27 Điều 8). Đ is U+0110."""

QUALITY_LEVEL_NAMES: dict[str, str] = {
    "T": "Tốt",
    "\u0110": "Đạt",
    "C": "Cần cố gắng",
}

SCORE_MIN = 0
SCORE_MAX = 10


class Tt27Error(HocbaError, ValueError):
    """A value that TT27 does not allow. ``message`` is Vietnamese, fit to show a teacher."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UnknownCodeError(Tt27Error, KeyError):
    """A subject or trait code that TT27 / CTGDPT 2018 does not define.

    It is both a `Tt27Error` (hence a `ValueError`) and a `KeyError`, so callers that look a
    code up like a dictionary key can catch it as such.
    """


# --------------------------------------------------------------------------------------------
# Year result (Điều 9.2)
# --------------------------------------------------------------------------------------------


class YearResult(StrEnum):
    """The end-of-year result of TT27 Điều 9.2, best first."""

    HTXS = "HTXS"
    HTT = "HTT"
    HT = "HT"
    CHT = "CHT"

    @property
    def name_vi(self) -> str:
        """The Vietnamese name, as printed in the record ("Hoàn thành tốt", ...)."""
        return YEAR_RESULT_NAMES[self]


YEAR_RESULT_NAMES: dict[YearResult, str] = {
    YearResult.HTXS: "Hoàn thành xuất sắc",
    YearResult.HTT: "Hoàn thành tốt",
    YearResult.HT: "Hoàn thành",
    YearResult.CHT: "Chưa hoàn thành",
}

_RESULT_ORDER: tuple[YearResult, ...] = tuple(YearResult)


def _rank(result: YearResult) -> int:
    """0 for HTXS (best) .. 3 for CHT."""
    return _RESULT_ORDER.index(result)


# --------------------------------------------------------------------------------------------
# Subjects and activities per grade (CTGDPT 2018; tests per TT27 Điều 8)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """A subject or educational activity as it stands in one grade.

    ``compulsory`` and ``has_test`` depend on the grade (Ngoại ngữ 1 is elective and untested in
    grades 1-2, compulsory and tested from grade 3), so `subjects_for_grade` returns the entry
    for that grade. ``grades`` lists every grade that teaches the subject at all.
    ``xml_code`` is the value written to MA_MON_HOC.
    """

    code: str
    name: str
    xml_code: str
    compulsory: bool
    has_test: bool
    grades: tuple[int, ...]


_NAMES: dict[str, str] = {
    "TV": "Tiếng Việt",
    "TOAN": "Toán",
    "DD": "Đạo đức",
    "TNXH": "Tự nhiên và Xã hội",
    "GDTC": "Giáo dục thể chất",
    "AN": "Âm nhạc",
    "MT": "Mĩ thuật",
    "HDTN": "Hoạt động trải nghiệm",
    "NN1": "Ngoại ngữ 1",
    "TDT": "Tiếng dân tộc",
    "TIN": "Tin học",
    "CN": "Công nghệ",
    "LSDL": "Lịch sử và Địa lí",
    "KH": "Khoa học",
}

_ACTIVITIES: frozenset[str] = frozenset({"HDTN"})
"""Codes that are an educational activity (hoạt động giáo dục), not a subject (môn học)."""

# grade -> (compulsory codes in printed order, elective codes in printed order, tested codes)
_PROGRAMME: dict[int, tuple[tuple[str, ...], tuple[str, ...], frozenset[str]]] = {
    1: (
        ("TV", "TOAN", "DD", "TNXH", "GDTC", "AN", "MT", "HDTN"),
        ("TDT", "NN1"),
        frozenset({"TV", "TOAN"}),
    ),
    3: (
        ("TV", "TOAN", "NN1", "DD", "TNXH", "GDTC", "AN", "MT", "HDTN", "TIN", "CN"),
        ("TDT",),
        frozenset({"TV", "TOAN", "NN1", "TIN", "CN"}),
    ),
    4: (
        ("TV", "TOAN", "NN1", "DD", "LSDL", "KH", "TIN", "CN", "GDTC", "AN", "MT", "HDTN"),
        ("TDT",),
        frozenset({"TV", "TOAN", "NN1", "LSDL", "KH", "TIN", "CN"}),
    ),
}
_PROGRAMME[2] = _PROGRAMME[1]
_PROGRAMME[5] = _PROGRAMME[4]


def _grades_of(code: str) -> tuple[int, ...]:
    return tuple(g for g in GRADES if code in _PROGRAMME[g][0] or code in _PROGRAMME[g][1])


def _build_catalogue() -> dict[int, tuple[Subject, ...]]:
    catalogue: dict[int, tuple[Subject, ...]] = {}
    for grade in GRADES:
        compulsory, elective, tested = _PROGRAMME[grade]
        rows = [(code, True) for code in compulsory] + [(code, False) for code in elective]
        catalogue[grade] = tuple(
            Subject(
                code=code,
                name=_NAMES[code],
                xml_code=code,
                compulsory=is_compulsory,
                has_test=code in tested,
                grades=_grades_of(code),
            )
            for code, is_compulsory in rows
        )
    return catalogue


_CATALOGUE: dict[int, tuple[Subject, ...]] = _build_catalogue()


def _check_grade(grade: object) -> int:
    if isinstance(grade, bool) or not isinstance(grade, int) or grade not in GRADES:
        raise Tt27Error(f"Khối lớp phải là số nguyên từ 1 đến 5 (nhận được: {grade})")
    return grade


def subjects_for_grade(grade: int) -> list[Subject]:
    """The subjects and activities of a grade in the order the record prints them.

    Compulsory ones first, then the electives. Grades 1-2: Nghệ thuật is two rows (Âm nhạc,
    Mĩ thuật); from grade 3 Tin học và Công nghệ is two rows (Tin học, Công nghệ). Tested
    subjects follow TT27 Điều 8: TV and Toán in grades 1-2; plus NN1, Tin học, Công nghệ in
    grade 3; plus Lịch sử và Địa lí, Khoa học in grades 4-5.

    Raises `Tt27Error` (a `ValueError`) for a grade outside 1..5.
    """
    return list(_CATALOGUE[_check_grade(grade)])


def subject(code: str, grade: int | None = None) -> Subject:
    """The subject with this code.

    With ``grade``, the entry for that grade (`UnknownCodeError` if the grade does not teach
    it). Without, the entry as it stands in the highest grade that teaches it (so NN1 is
    compulsory and tested, TNXH is as in grade 3).

    Raises `UnknownCodeError` (a `KeyError` and a `ValueError`) for an unknown code.
    """
    if grade is not None:
        for entry in _CATALOGUE[_check_grade(grade)]:
            if entry.code == code:
                return entry
        name = f"Môn {_NAMES[code]} ({code})" if code in _NAMES else f"Mã môn học '{code}'"
        raise UnknownCodeError(f"{name} không có trong chương trình lớp {grade}")
    if code not in _NAMES:
        known = ", ".join(_NAMES)
        raise UnknownCodeError(f"Mã môn học không hợp lệ: '{code}' (các mã hợp lệ: {known})")
    return subject(code, _grades_of(code)[-1])


# --------------------------------------------------------------------------------------------
# Qualities and competences (Điều 5; levels Điều 8)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trait:
    """A core quality (phẩm chất) or competence (năng lực) of TT27 Điều 5.

    ``xml_field`` is the TONG_KET tag of the pilot spec (typos kept); ``from_grade`` is the first
    grade in which it is assessed (công nghệ and tin học: grade 3).
    """

    code: str
    name: str
    xml_field: str
    from_grade: int = 1


QUALITIES: tuple[Trait, ...] = (
    Trait("YEU_NUOC", "Yêu nước", "PHAM_CHAT_YEU_NUOC"),
    Trait("NHAN_AI", "Nhân ái", "PHAM_CHAT_NHAN_AI"),
    Trait("CHAM_CHI", "Chăm chỉ", "PHAM_CHAT_CHAM_CHI"),
    Trait("TRUNG_THUC", "Trung thực", "PHAM_CHAT_TRUNG_THUC"),
    Trait("TRACH_NHIEM", "Trách nhiệm", "PHAM_CHAT_TRACH_NHIEM"),
)
"""The 5 core qualities (phẩm chất chủ yếu), TT27 Điều 5."""

GENERAL_COMPETENCES: tuple[Trait, ...] = (
    Trait("TU_CHU_TU_HOC", "Tự chủ và tự học", "NANG_LUC_TU_CHU_TU_HOC"),
    # The pilot spec spells the tag HOC_TAC (sic); the spelling is kept on purpose.
    Trait("GIAO_TIEP_HOP_TAC", "Giao tiếp và hợp tác", "NANG_LUC_GIAO_TIEP_HOC_TAC"),
    Trait(
        "GIAI_QUYET_VAN_DE_SANG_TAO",
        "Giải quyết vấn đề và sáng tạo",
        "NANG_LUC_GIAI_QUYET_VAN_DE_SANG_TAO",
    ),
)
"""The 3 general competences (năng lực chung), TT27 Điều 5."""

SPECIFIC_COMPETENCES: tuple[Trait, ...] = (
    Trait("NGON_NGU", "Ngôn ngữ", "NANG_LUC_NGON_NGU"),
    Trait("TINH_TOAN", "Tính toán", "NANG_LUC_TINH_TOAN"),
    Trait("KHOA_HOC", "Khoa học", "NANG_LUC_KHOA_HOC"),
    Trait("CONG_NGHE", "Công nghệ", "NANG_LUC_CONG_NGHE", from_grade=3),
    Trait("TIN_HOC", "Tin học", "NANG_LUC_TIN_HOC", from_grade=3),
    Trait("THAM_MI", "Thẩm mĩ", "NANG_LUC_THAM_MI"),
    Trait("THE_CHAT", "Thể chất", "NANG_LUC_THE_CHAT"),
)
"""The 7 specific competences (năng lực đặc thù), TT27 Điều 5; two only from grade 3."""

_ALL_TRAITS: tuple[Trait, ...] = QUALITIES + GENERAL_COMPETENCES + SPECIFIC_COMPETENCES
_TRAITS_BY_CODE: dict[str, Trait] = {t.code: t for t in _ALL_TRAITS}
_QUALITY_CODES: frozenset[str] = frozenset(t.code for t in QUALITIES)


def traits_for_grade(grade: int) -> list[Trait]:
    """Qualities, then general, then specific competences assessed in this grade.

    13 traits in grades 1-2, 15 from grade 3. Raises `Tt27Error` for a grade outside 1..5.
    """
    grade = _check_grade(grade)
    return [t for t in _ALL_TRAITS if t.from_grade <= grade]


def trait(code: str) -> Trait:
    """The quality or competence with this code; `UnknownCodeError` if there is none."""
    try:
        return _TRAITS_BY_CODE[code]
    except KeyError:
        known = ", ".join(_TRAITS_BY_CODE)
        raise UnknownCodeError(
            f"Mã phẩm chất, năng lực không hợp lệ: '{code}' (các mã hợp lệ: {known})"
        ) from None


# --------------------------------------------------------------------------------------------
# Parsing teacher input (Điều 8)
# --------------------------------------------------------------------------------------------

_WHOLE_NUMBER = re.compile(r"^([0-9]{1,2})(?:[.,]0+)?$")


def _shown(value: object) -> str:
    """How a rejected input is echoed back in a message."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return "ô trống"
    return str(value).strip() if isinstance(value, str) else str(value)


def _score_error(value: object) -> Tt27Error:
    return Tt27Error(
        f"Điểm kiểm tra phải là số nguyên từ {SCORE_MIN} đến {SCORE_MAX} "
        f"(nhận được: {_shown(value)})"
    )


def parse_score(value: object) -> int:
    """A periodic test score: a whole number from 0 to 10 (TT27 Điều 8: thang 10 điểm, không
    cho điểm thập phân).

    Accepts an int, a whole float or Decimal (7.0) and a string of digits ("7", " 7 ", also
    "7.0"/"7,0" as spreadsheets write them). Rejects decimals (7.5, "7,5"), values outside
    0..10, booleans, blanks and anything else with a `Tt27Error`.
    """
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value():
            number = int(value)
    elif isinstance(value, Real):
        as_float = float(value)
        if math.isfinite(as_float) and as_float.is_integer():
            number = int(as_float)
    elif isinstance(value, str):
        match = _WHOLE_NUMBER.match(value.strip())
        if match:
            number = int(match.group(1))
    if number is None or not SCORE_MIN <= number <= SCORE_MAX:
        raise _score_error(value)
    return number


def _normalise_text(value: str) -> str:
    return unicodedata.normalize("NFC", " ".join(value.split())).casefold()


_SUBJECT_LEVEL_INPUTS: dict[str, str] = {
    **{_normalise_text(code): code for code in SUBJECT_LEVELS},
    **{_normalise_text(name): code for code, name in SUBJECT_LEVEL_NAMES.items()},
}

_QUALITY_LEVEL_INPUTS: dict[str, str] = {
    **{_normalise_text(code): code for code in QUALITY_LEVELS},
    **{_normalise_text(name): code for code, name in QUALITY_LEVEL_NAMES.items()},
    "d": "\u0110",
}


def parse_subject_level(value: object) -> str:
    """A subject/activity level of TT27 Điều 8: "T", "H" or "C".

    Case-insensitive and stripped; the full names ("Hoàn thành tốt", ...) are accepted too.
    Anything else raises `Tt27Error`.
    """
    return _parse_level(
        value,
        _SUBJECT_LEVEL_INPUTS,
        "Mức đạt được môn học phải là T (Hoàn thành tốt), H (Hoàn thành) hoặc C (Chưa hoàn thành)",
    )


def parse_quality_level(value: object) -> str:
    """A quality/competence level of TT27 Điều 8: "T", "Đ" (U+0110) or "C".

    Case-insensitive and stripped; "D" and "đ" are normalised to "Đ"; the full names ("Tốt",
    "Đạt", "Cần cố gắng") are accepted too. Anything else raises `Tt27Error`.
    """
    return _parse_level(
        value,
        _QUALITY_LEVEL_INPUTS,
        "Mức phẩm chất, năng lực phải là T (Tốt), Đ (Đạt) hoặc C (Cần cố gắng)",
    )


def _parse_level(value: object, inputs: Mapping[str, str], expected: str) -> str:
    """``value`` read through ``inputs`` (normalised text -> level code), else
    `Tt27Error` with ``expected`` and what was given."""
    if isinstance(value, str) and _normalise_text(value) in inputs:
        return inputs[_normalise_text(value)]
    raise Tt27Error(f"{expected} (nhận được: {_shown(value)})")


def parse_year_result(value: object) -> YearResult:
    """A year result of TT27 Điều 9.2 from its code ("HTT") or Vietnamese name, any case."""
    if isinstance(value, YearResult):
        return value
    if isinstance(value, str):
        text = _normalise_text(value)
        for result in YearResult:
            if text in (result.value.casefold(), _normalise_text(result.name_vi)):
                return result
    raise Tt27Error(f"Kết quả giáo dục phải là HTXS, HTT, HT hoặc CHT (nhận được: {_shown(value)})")


# --------------------------------------------------------------------------------------------
# One pupil's year (Điều 9.2)
# --------------------------------------------------------------------------------------------


@dataclass
class YearAssessment:
    """The end-of-year data of one pupil, as entered.

    ``subjects`` maps a subject code to (level T/H/C or None, end-of-year score or None);
    ``traits`` maps a trait code to T/Đ/C or None. Values are expected already parsed (see
    `parse_subject_level`, `parse_quality_level`, `parse_score`); anything else is flagged by
    `check` and counts as missing for `year_result`.
    """

    grade: int
    subjects: dict[str, tuple[str | None, int | None]]
    traits: dict[str, str | None]


@dataclass(frozen=True)
class Flag:
    """A problem found by `check`: a stable machine ``code`` and a Vietnamese ``message``.

    ``target`` is the subject or trait code concerned, or None for the record as a whole.
    """

    code: str
    message: str
    target: str | None = None


@dataclass(frozen=True)
class _Tier:
    result: YearResult
    subject_levels: frozenset[str]
    trait_levels: frozenset[str]
    min_score: int


_TIERS: tuple[_Tier, ...] = (
    _Tier(YearResult.HTXS, frozenset({"T"}), frozenset({"T"}), 9),
    _Tier(YearResult.HTT, frozenset({"T"}), frozenset({"T"}), 7),
    _Tier(YearResult.HT, frozenset({"T", "H"}), frozenset({"T", "\u0110"}), 5),
)
"""TT27 Điều 9.2 điểm a, one row per level: allowed subject levels, allowed quality and
competence levels, lowest end-of-year test score."""


def _is_valid_score(value: object) -> TypeGuard[int]:
    return (
        isinstance(value, int) and not isinstance(value, bool) and SCORE_MIN <= value <= SCORE_MAX
    )


def _subject_label(entry: Subject) -> str:
    """The subject as named mid-sentence: "môn Toán"; an activity by its own name."""
    if entry.code in _ACTIVITIES:
        return entry.name[0].lower() + entry.name[1:]
    return f"môn {entry.name}"


def _trait_label(entry: Trait) -> str:
    """The trait as named mid-sentence: "phẩm chất trung thực", "năng lực tự học"."""
    group = "phẩm chất" if entry.code in _QUALITY_CODES else "năng lực"
    return f"{group} {entry.name[0].lower()}{entry.name[1:]}"


def _capitalise(text: str) -> str:
    return text[0].upper() + text[1:]


def _is_taken(entry: Subject, value: tuple[str | None, int | None] | None) -> bool:
    """Whether a subject counts in the grade: compulsory ones always; an elective when it has
    a level or a score (an elective row with neither is an elective not taken)."""
    if entry.compulsory:
        return True
    return value is not None and (value[0] is not None or value[1] is not None)


def _counted_subjects(a: YearAssessment) -> list[tuple[Subject, str | None, object]]:
    """(subject, level, score) for every subject that counts in the year result."""
    rows: list[tuple[Subject, str | None, object]] = []
    for entry in _CATALOGUE[_check_grade(a.grade)]:
        value = a.subjects.get(entry.code)
        if _is_taken(entry, value):
            level, score = value if value is not None else (None, None)
            rows.append((entry, level, score))
    return rows


def _shortfalls(a: YearAssessment, tier: _Tier) -> list[str]:
    """Why the assessment does not reach ``tier`` (Vietnamese, one phrase each); [] if it does."""
    reasons: list[str] = []
    for entry, level, score in _counted_subjects(a):
        label = _subject_label(entry)
        missing = "chưa có mức đạt được"
        reasons += _level_shortfall(label, level, SUBJECT_LEVELS, tier.subject_levels, missing)
        if entry.has_test:
            if score is None:
                reasons.append(f"{label} chưa có điểm kiểm tra cuối năm")
            elif not _is_valid_score(score):
                reasons.append(f"{label} điểm không hợp lệ: {score}")
            elif score < tier.min_score:
                reasons.append(f"{label} điểm {score} < {tier.min_score}")
    for trait in traits_for_grade(a.grade):
        label = _trait_label(trait)
        level = a.traits.get(trait.code)
        missing = "chưa được đánh giá"
        reasons += _level_shortfall(label, level, QUALITY_LEVELS, tier.trait_levels, missing)
    return reasons


def _level_shortfall(
    label: str, level: str | None, valid: Collection[str], wanted: Collection[str], missing: str
) -> list[str]:
    """Why a level (of ``valid`` ones) is not one of ``wanted``: [] when it is."""
    if level is None:
        return [f"{label} {missing}"]
    if level not in valid:
        return [f"{label} mức không hợp lệ: {level}"]
    if level not in wanted:
        return [f"{label} mức {level}"]
    return []


def explain(a: YearAssessment) -> tuple[YearResult, list[str]]:
    """The year result of TT27 Điều 9.2 and why it is not the level above.

    The reasons are short Vietnamese phrases ("môn Toán điểm 6 < 7", "phẩm chất trung thực
    mức Đ"); the list is empty for HTXS. Raises `Tt27Error` for a grade outside 1..5.
    """
    above: list[str] = []
    for tier in _TIERS:
        reasons = _shortfalls(a, tier)
        if not reasons:
            return tier.result, above
        above = reasons
    return YearResult.CHT, above


def year_result(a: YearAssessment) -> YearResult:
    """The end-of-year result of TT27 Điều 9.2 điểm a, a strict conjunction.

    - HTXS: every subject/activity T, every quality and competence T, every end-of-year test
      score ≥ 9;
    - HTT: not HTXS; every subject/activity T, every quality/competence T, every test ≥ 7;
    - HT: not above; subjects T or H, qualities/competences T or Đ, every test ≥ 5;
    - CHT: everything else, including a missing level or a missing score on a tested subject.

    Only the subjects and traits of the pupil's grade count: compulsory subjects always,
    electives when taken. A subject's level is the teacher's judgement and is never derived
    from the score; only subjects with a periodic test in that grade (TT27 Điều 8) contribute
    a score, so a score on an untested subject is ignored here and flagged by `check`.
    """
    return explain(a)[0]


def check(a: YearAssessment, entered: YearResult | str | None = None) -> list[Flag]:
    """Everything in the record that TT27 would not accept, as flags; the record is unchanged.

    Codes: MISSING_SUBJECT, UNKNOWN_SUBJECT, MISSING_SCORE, UNEXPECTED_SCORE, INVALID_LEVEL,
    INVALID_SCORE, MISSING_TRAIT, UNKNOWN_TRAIT, RESULT_MISMATCH, INVALID_RESULT,
    INVALID_GRADE. With ``entered`` (the result typed in by the teacher), RESULT_MISMATCH tells
    whether it differs from `year_result` and why (TT27 Điều 9.2).
    """
    try:
        grade = _check_grade(a.grade)
    except Tt27Error as exc:
        return [Flag("INVALID_GRADE", exc.message)]
    flags: list[Flag] = []
    flags += _subject_flags(a, grade)
    flags += _trait_flags(a, grade)
    if entered is not None and not (isinstance(entered, str) and not entered.strip()):
        flags += _result_flags(a, entered)
    return flags


def _subject_flags(a: YearAssessment, grade: int) -> list[Flag]:
    flags: list[Flag] = []
    catalogue = {entry.code: entry for entry in _CATALOGUE[grade]}
    for entry in catalogue.values():
        value = a.subjects.get(entry.code)
        label = _subject_label(entry)
        if not _is_taken(entry, value):
            continue
        if value is None:
            flags.append(
                Flag("MISSING_SUBJECT", f"Thiếu {label} (bắt buộc ở lớp {grade})", entry.code)
            )
            continue
        level, score = value
        if level is None:
            flags.append(
                Flag("MISSING_SUBJECT", f"Chưa có mức đạt được cuối năm của {label}", entry.code)
            )
        elif level not in SUBJECT_LEVELS:
            flags.append(
                Flag(
                    "INVALID_LEVEL",
                    f"Mức đạt được của {label} phải là T, H hoặc C (nhận được: {level})",
                    entry.code,
                )
            )
        if entry.has_test and score is None:
            flags.append(
                Flag(
                    "MISSING_SCORE",
                    f"Chưa có điểm kiểm tra định kì cuối năm của {label}",
                    entry.code,
                )
            )
        elif entry.has_test and not _is_valid_score(score):
            flags.append(
                Flag(
                    "INVALID_SCORE",
                    f"Điểm kiểm tra {label} phải là số nguyên từ {SCORE_MIN} đến {SCORE_MAX} "
                    f"(nhận được: {score})",
                    entry.code,
                )
            )
        elif not entry.has_test and score is not None:
            flags.append(
                Flag(
                    "UNEXPECTED_SCORE",
                    f"{_capitalise(label)} lớp {grade} không có bài kiểm tra định kì; "
                    f"điểm {score} không được dùng để đánh giá",
                    entry.code,
                )
            )
    for code in a.subjects:
        if code not in catalogue:
            name = f"{_NAMES[code]} ({code})" if code in _NAMES else f"mã '{code}'"
            flags.append(
                Flag(
                    "UNKNOWN_SUBJECT",
                    f"Môn học {name} không có trong chương trình lớp {grade}",
                    code,
                )
            )
    return flags


def _trait_flags(a: YearAssessment, grade: int) -> list[Flag]:
    flags: list[Flag] = []
    applicable = {entry.code: entry for entry in traits_for_grade(grade)}
    for entry in applicable.values():
        level = a.traits.get(entry.code)
        label = _trait_label(entry)
        if level is None:
            flags.append(Flag("MISSING_TRAIT", f"Chưa đánh giá {label}", entry.code))
        elif level not in QUALITY_LEVELS:
            flags.append(
                Flag(
                    "INVALID_LEVEL",
                    f"Mức {label} phải là T, Đ hoặc C (nhận được: {level})",
                    entry.code,
                )
            )
    for code in a.traits:
        if code in applicable:
            continue
        if code in _TRAITS_BY_CODE:
            entry = _TRAITS_BY_CODE[code]
            message = (
                f"{_capitalise(_trait_label(entry))} chỉ được đánh giá từ lớp "
                f"{entry.from_grade}, không có ở lớp {grade}"
            )
        else:
            message = f"Mã phẩm chất, năng lực '{code}' không có trong TT27"
        flags.append(Flag("UNKNOWN_TRAIT", message, code))
    return flags


def _result_flags(a: YearAssessment, entered: YearResult | str) -> list[Flag]:
    try:
        typed = parse_year_result(entered)
    except Tt27Error as exc:
        return [Flag("INVALID_RESULT", exc.message)]
    computed, _ = explain(a)
    if typed == computed:
        return []
    if _rank(typed) < _rank(computed):
        # Entered better than the data allows: say which conditions of that level fail.
        tier = next(t for t in _TIERS if t.result == typed)
        why = "; ".join(_shortfalls(a, tier))
    else:
        why = f"đủ điều kiện mức {computed.value}"
    return [
        Flag(
            "RESULT_MISMATCH",
            f"Kết quả nhập là {typed.value} nhưng theo Điều 9.2 TT27 phải là "
            f"{computed.value}: {why}",
        )
    ]


# --------------------------------------------------------------------------------------------
# After the result: completion (Điều 11) and awards (Điều 13)
# --------------------------------------------------------------------------------------------


def completion_text(grade: int, result: YearResult) -> str:
    """The completion line printed in the record (TT27 Điều 11).

    HTXS/HTT/HT: "Hoàn thành chương trình lớp N; Được lên lớp N+1", and in grade 5
    "Hoàn thành chương trình tiểu học" (Điều 11.2). CHT: "Chưa hoàn thành chương trình lớp N"
    (the supplementary assessment of Điều 11.1 điểm b-c is still to come).
    """
    grade = _check_grade(grade)
    if parse_year_result(result) == YearResult.CHT:
        return f"Chưa hoàn thành chương trình lớp {grade}"
    if grade == GRADES[-1]:
        return "Hoàn thành chương trình tiểu học"
    return f"Hoàn thành chương trình lớp {grade}; Được lên lớp {grade + 1}"


def is_promoted(result: YearResult) -> bool | None:
    """Whether the pupil moves up (TT27 Điều 11.1).

    True for HTXS/HTT/HT (điểm a). None for CHT: not decided yet, the teacher helps the pupil
    and runs a supplementary assessment, then if still short the principal decides (điểm b-c).
    """
    return None if parse_year_result(result) == YearResult.CHT else True


AWARD_EXCELLENT = "Học sinh Xuất sắc"
AWARD_EXEMPLARY = "Học sinh Tiêu biểu hoàn thành tốt trong học tập và rèn luyện"


def award_for(result: YearResult, outstanding_progress: bool = False) -> str | None:
    """The year-end award title of TT27 Điều 13.1 điểm a, or None.

    HTXS: "Học sinh Xuất sắc". HTT with outstanding achievement in a subject or outstanding
    progress in a quality or competence, as chosen by the class (``outstanding_progress``):
    "Học sinh Tiêu biểu hoàn thành tốt trong học tập và rèn luyện". Ad-hoc awards (điểm b) are
    not derived from the result.
    """
    result = parse_year_result(result)
    if result == YearResult.HTXS:
        return AWARD_EXCELLENT
    if result == YearResult.HTT and outstanding_progress:
        return AWARD_EXEMPLARY
    return None


def is_august_cohort(result: YearResult) -> bool:
    """Whether the record waits for the summer supplementary assessment (TT27 Điều 11.1 điểm b)
    and so belongs to the August submission (deadline 15/8): exactly the CHT pupils."""
    return parse_year_result(result) == YearResult.CHT
