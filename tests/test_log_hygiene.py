"""The log check that runs around every test (tests/conftest.py) really catches leaks."""

from __future__ import annotations

import pytest
from log_hygiene import find_leaks


@pytest.mark.parametrize(
    ("line", "leaks"),
    [
        ("hocba.import: học sinh 022310123456 bị lặp", True),  # a personal ID
        ("mã định danh ••••••••3456 trùng", False),  # masked: fine
        ("lookup 9e81f0c3-b55f-4473-845f-d7e80441702e", False),  # a lookup code is no ID
        ("pin=hocba-demo", True),  # the demo passphrase
        ("-----BEGIN PRIVATE KEY-----", True),
        ("batch 1234567890123 records", False),  # 13 digits: not an ID
    ],
)
def test_find_leaks(line: str, leaks: bool) -> None:
    assert bool(find_leaks([line])) is leaks


def test_a_uuid_ending_in_digits_is_not_an_id() -> None:
    assert find_leaks(["chứng thư 767e70a8-6cef-41db-86c2-424623198980: approved"]) == []


def test_a_mail_message_id_is_not_a_personal_id() -> None:
    assert find_leaks(["Message-ID: <179590199407.29310.1125654067466@127.0.0.1>"]) == []


def test_the_app_filter_masks_personal_ids_from_any_library() -> None:
    import logging

    from hocba.logs import MaskPersonalIds

    record = logging.LogRecord(
        "signxml.processor",
        logging.DEBUG,
        __file__,
        1,
        "Canonicalized: <SO_CCCD>%s</SO_CCCD>",
        ("079215000123",),
        None,
    )
    MaskPersonalIds().filter(record)
    assert record.getMessage() == "Canonicalized: <SO_CCCD>••••••••0123</SO_CCCD>"
    assert find_leaks([record.getMessage()]) == []
