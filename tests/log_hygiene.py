"""What counts as a leak in a log line: a 12-digit personal ID, a private key, a known
test secret (used by the check around every test in tests/conftest.py)."""

from __future__ import annotations

import os
import re

_CCCD = re.compile(r"(?<![0-9A-Za-z.-])[0-9]{12}(?![0-9A-Za-z.-])")  # not in a UUID or an id
_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
KNOWN_SECRETS = (
    "hocba-demo",
    "mat-khau-demo",
    "mat-khau-thu",
    "mat-khau-cong",
    "mat-khau-khong-duoc-lo",
    "mat-khau-thu-nghiem",
)


def find_leaks(lines: list[str]) -> list[str]:
    """The log lines holding a 12-digit personal ID, a private key or a known secret."""
    secrets = [
        s
        for s in (
            *KNOWN_SECRETS,
            os.environ.get("HOCBA_KEY_PASSPHRASE"),
            os.environ.get("HOCBA_PORTAL_PASSWORD"),
        )
        if s
    ]
    return [
        line
        for line in lines
        if _CCCD.search(line) or _KEY.search(line) or any(s in line for s in secrets)
    ]
