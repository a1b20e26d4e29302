from sqlalchemy import Engine, text

from hocba import db


def test_upgrade_creates_tables_in_the_app_schema(engine: Engine, schema_name: str) -> None:
    with engine.connect() as conn:
        tables = set(
            conn.scalars(
                text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                {"s": schema_name},
            )
        )
    assert {"hoc_ba", "audit_event", "pupil", "school", "progress_day", "alembic_version"} <= tables
    assert db.current_revision(engine) == "0010"
