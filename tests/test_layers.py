"""The floors of docs/ARCHITECTURE.md hold: imports go down, never up, and the stand-ins of
``hocba.dev`` stay out of production code.

Every ``import`` of every module under ``hocba/`` is read (function-level imports too), so a
lazy import cannot hide a dependency that the layout forbids.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hocba"

#: lowest first; a module may import its own floor and the floors below it
FLOORS: list[set[str]] = [
    {"hocba", "hocba.config", "hocba.db", "hocba.logs", "hocba.data", "hocba.errors"},
    {"hocba.models", "hocba.migrations"},
    {"hocba.xml", "hocba.pki"},
    {"hocba.pdf", "hocba.portal", "hocba.notify"},
    {"hocba.tasks"},
    {"hocba.flows", "hocba.dashboard", "hocba.cli", "hocba.up", "hocba.asgi"},
]
#: the stand-ins (bundled portal, test PKI, demo district): they may use everything, and only
#: the outermost floor (commands, demo flow, dashboard) may start them
DEV = "hocba.dev"


def _unit(module: str) -> str:
    """``hocba.tasks.issuance`` -> ``hocba.tasks``; ``hocba.cli`` -> ``hocba.cli``."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def _floor(unit: str) -> int:
    for n, units in enumerate(FLOORS):
        if unit in units:
            return n
    raise AssertionError(f"{unit} is on no floor of docs/ARCHITECTURE.md")


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        if "migrations" in parts and "versions" in parts:
            continue
        out.append((".".join(parts), path))
    return out


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            if name == "hocba":  # `from hocba import notify`
                found.update(f"hocba.{a.name}" for a in node.names)
    return {m for m in found if m == "hocba" or m.startswith("hocba.")}


MODULES = _modules()


def test_every_unit_is_on_a_floor() -> None:
    for module, _ in MODULES:
        unit = _unit(module)
        if unit != DEV:
            _floor(unit)


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_imports_go_down(module: str, path: Path) -> None:
    unit = _unit(module)
    if unit == DEV:
        return
    here = _floor(unit)
    wrong = []
    for target in sorted(_imports(path, module)):
        tunit = _unit(target)
        if tunit == "hocba" and target == "hocba":
            continue
        if tunit == DEV:
            if here < len(FLOORS) - 1:
                wrong.append(f"{target} (a stand-in, from production floor {here})")
            continue
        if tunit in {"hocba.dev"}:
            continue
        try:
            there = _floor(tunit)
        except AssertionError:
            continue  # a top-level module of floor 0 such as hocba.data
        if there > here:
            wrong.append(f"{target} (floor {there} from floor {here})")
    assert not wrong, f"{module} imports upward: {', '.join(wrong)}"
