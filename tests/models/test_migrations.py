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
    assert db.current_revision(engine) == "0013"


def test_0012_down_and_up_again(engine: Engine, schema_name: str) -> None:
    """0012 goes back to 0009's row trigger and JSON guard, and forward again."""
    from alembic import command
    from alembic.config import Config

    def level() -> tuple[bool, bool]:  # (progress trigger per row?, guard builds JSON?)
        with engine.connect() as conn:
            tgtype = conn.scalar(
                text(
                    "SELECT t.tgtype FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = :s AND t.tgname = 'progress_day_count'"
                ),
                {"s": schema_name},
            )
            guard = conn.scalar(
                text(
                    "SELECT prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                    "WHERE n.nspname = :s AND p.proname = 'hoc_ba_guard'"
                ),
                {"s": schema_name},
            )
        return bool(tgtype & 1), "to_jsonb" in guard

    assert level() == (False, False)
    cfg = Config()
    cfg.set_main_option("script_location", str(db.MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    cfg.attributes["schema"] = schema_name
    command.downgrade(cfg, "0009")
    assert db.current_revision(engine) == "0009"
    assert level() == (True, True)
    command.upgrade(cfg, "head")
    assert level() == (False, False)
