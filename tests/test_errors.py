"""Every error hocba raises for a person derives from one base carrying its message."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from hocba.errors import HocbaError

PACKAGE = Path(__file__).resolve().parents[1] / "hocba"


def _error_classes() -> list[tuple[str, str]]:
    """(module, class) of every public class under hocba/ whose name says it is an error."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(p for p in rel.parts if p != "__init__")
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if (
                isinstance(node, ast.ClassDef)
                and not node.name.startswith("_")
                and node.name.endswith(("Error", "Unavailable", "Failed", "Refused"))
            ):
                found.append((module, node.name))
    return found


ERRORS = _error_classes()


def test_there_are_errors_to_check() -> None:
    assert len(ERRORS) > 20


@pytest.mark.parametrize(("module", "name"), ERRORS, ids=[f"{m}.{n}" for m, n in ERRORS])
def test_every_error_is_a_hocba_error(module: str, name: str) -> None:
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, HocbaError), f"{module}.{name} does not derive from HocbaError"


def test_the_message_is_the_first_argument_unless_set() -> None:
    from hocba.models.lifecycle import TransitionError
    from hocba.portal.client import PortalUnavailable

    assert PortalUnavailable("Cổng của Sở không trả lời; thử lại sau.").message == (
        "Cổng của Sở không trả lời; thử lại sau."
    )
    err = TransitionError("Không thể ký: học bạ chưa được GVCN duyệt.", {7: "chưa duyệt"})
    assert err.message == "Không thể ký: học bạ chưa được GVCN duyệt."
    assert err.failures == {7: "chưa duyệt"}
    assert HocbaError().message == ""
