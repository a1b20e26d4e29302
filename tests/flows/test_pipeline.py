"""The drafts flow on a real Prefect (test harness) and a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session

from hocba import db
from hocba.dev import demo
from hocba.models.lifecycle import SYSTEM
from hocba.tasks import importer


@pytest.fixture
def imported(engine, pg_url: str, schema_name: str, tmp_path: Path, monkeypatch):  # type: ignore[no-untyped-def]
    schools = demo.demo_schools(2)
    with Session(engine) as s:
        demo.build_org(s, schools)
        s.commit()
    for school in schools:
        rows, classes = demo.school_rows(school, 10, seed=1, year_start=2024, used_ids=set())
        path = importer.write_workbook(tmp_path / f"{school.code}.xlsx", rows, classes)
        with Session(engine) as s:
            importer.import_file(s, path, school.code, "2024-2025", SYSTEM)
            s.commit()
    monkeypatch.setenv("HOCBA_DATABASE_URL", pg_url)
    monkeypatch.setenv("HOCBA_DB_SCHEMA", schema_name)
    db.get_engine.cache_clear()
    yield engine
    db.get_engine().dispose()
    db.get_engine.cache_clear()


def test_drafts_flow_is_idempotent_and_scoped(prefect_harness, imported) -> None:  # type: ignore[no-untyped-def]
    from hocba.flows.pipeline import drafts_flow

    first = drafts_flow(["DH01"])
    with imported.connect() as c:
        per_school = dict(
            c.execute(
                text(
                    "SELECT s.code, count(*) FROM hoc_ba r JOIN school s ON s.id = r.school_id "
                    "GROUP BY s.code"
                )
            ).all()
        )
        states = set(c.scalars(text("SELECT DISTINCT state FROM hoc_ba")))
    assert set(per_school) == {"DH01"}
    assert first["created"] == per_school["DH01"] == first["sent_to_review"]
    assert states == {"in_review"}
    again = drafts_flow(["DH01"])
    assert (again["created"], again["sent_to_review"]) == (0, 0)
