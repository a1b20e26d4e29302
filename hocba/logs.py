"""Logging for every hocba process (CLI, dashboard, flows, portal): children's personal IDs
never reach a log (Nghị định 13/2023; HOCBA_SPEC §7).

:class:`MaskPersonalIds` rewrites any 12-digit number (the CCCD / mã định danh format) in a
log record to ``••••••••1234`` before any handler writes it, whichever library logged it:
signxml logs whole canonicalised documents and pyHanko certificate subjects at DEBUG.
:func:`configure` installs it on the root handlers and keeps those libraries at WARNING.
Passwords, PINs and keys are never passed to a logger in the first place (tested).
"""

from __future__ import annotations

import logging
import re

PERSONAL_ID = re.compile(r"(?<![0-9A-Za-z.-])([0-9]{8})([0-9]{4})(?![0-9A-Za-z.-])")
QUIET_LIBRARIES = ("signxml", "pyhanko", "pyhanko_certvalidator", "mail.log", "httpx")


def mask(text: str) -> str:
    return PERSONAL_ID.sub(lambda m: "••••••••" + m.group(2), text)


class MaskPersonalIds(logging.Filter):
    """Masks 12-digit personal IDs in the formatted message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not format: leave it to logging
            return True
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def configure(level: int = logging.INFO) -> None:
    """Root logging for a hocba process: masked IDs, quiet third-party debug output."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, MaskPersonalIds) for f in handler.filters):
            handler.addFilter(MaskPersonalIds())
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
