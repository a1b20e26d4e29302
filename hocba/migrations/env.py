"""Alembic environment: migrations run inside the app schema chosen by ``hocba.db.upgrade``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlmodel import SQLModel

import hocba.models.tables  # noqa: F401  (registers the tables on SQLModel.metadata)

config = context.config
engine = config.attributes.get("engine")
schema = config.attributes.get("schema")
if engine is None:  # invoked through the plain `alembic` command
    from hocba.config import load_settings
    from hocba.db import get_engine

    engine, schema = get_engine(), load_settings().schema

with engine.connect() as connection:
    connection.execute(text(f'SET search_path TO "{schema}", public'))
    connection.commit()
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        version_table_schema=schema,
        include_schemas=False,
        include_object=lambda obj, name, type_, *_: name != "alembic_version",
    )
    with context.begin_transaction():
        context.run_migrations()
