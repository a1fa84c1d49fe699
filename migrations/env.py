"""Alembic environment: the database comes from `WEFT_DATABASE_URL` unless a caller hands a connection."""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import src.models  # noqa: F401  (registers every table on SQLModel.metadata)
from src.config import get_settings
from src.db import UTCDateTime, make_engine

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    if type_ == "type" and isinstance(obj, UTCDateTime):
        autogen_context.imports.add("import src.db")
        return "src.db.UTCDateTime()"
    return False


def run_on(connection: Connection) -> None:
    # SQLite alters a table by copying it and dropping the old one, which foreign keys refuse for
    # a table others reference: they are off while the migrations run and checked before commit
    # (SQLite's own procedure for schema changes).
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        _enforce_sqlite_foreign_keys(connection, enforced=False)
    try:
        context.configure(
            connection=connection,
            target_metadata=SQLModel.metadata,
            compare_type=True,
            render_as_batch=sqlite,
            render_item=render_item,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite and (broken := connection.exec_driver_sql("PRAGMA foreign_key_check").all()):
                raise RuntimeError(f"the migrations left rows with broken foreign keys: {broken}")
    finally:
        if sqlite:
            _enforce_sqlite_foreign_keys(connection, enforced=True)


def _enforce_sqlite_foreign_keys(connection: Connection, *, enforced: bool) -> None:
    # The pragma does nothing inside a transaction, so it is committed on its own.
    connection.exec_driver_sql(f"PRAGMA foreign_keys={'ON' if enforced else 'OFF'}")
    connection.commit()


connection = config.attributes.get("connection")
if connection is not None:
    run_on(connection)
else:
    engine = make_engine(config.attributes.get("database_url") or get_settings().database_url)
    with engine.connect() as new_connection:
        run_on(new_connection)
    engine.dispose()
