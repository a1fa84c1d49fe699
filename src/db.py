"""Database engine, session factory, the column types every table shares, and bulk writes."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import (
    Connection,
    Date,
    DateTime,
    Engine,
    Table,
    create_engine,
    event,
    make_url,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, SQLModel

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes everywhere: `timestamptz` on PostgreSQL, naive UTC text on SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self,
        value: dt.datetime | None,
        dialect: Dialect,  # noqa: ARG002 (the interface's)
    ) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class utc_day(FunctionElement[dt.date]):  # noqa: N801 (a SQL function, named as one)
    """The UTC calendar day of a `UTCDateTime` column, in SQL: comparable with a `Date` column."""

    type = Date()
    inherit_cache = True


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(({compiler.process(element.clauses, **kw)} AT TIME ZONE 'UTC') AS DATE)"


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps a `UTCDateTime` as naive UTC text.
    return f"date({compiler.process(element.clauses, **kw)})"


def copy_rows(
    connection: Connection, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Inserts rows on PostgreSQL by COPY, in the connection's transaction: psycopg formats them
    in C, for a fraction of the CPU an executemany of INSERTs spends."""
    driver = connection.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


# Rows per multi-row INSERT on SQLite: 1,000 rows of a few columns stay far under its limit of
# 32,766 parameters a statement.
SQLITE_ROWS_PER_INSERT = 1000


def insert_rows(
    connection: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Inserts rows on SQLite by multi-row INSERTs, each value converted as its column's type
    converts it. sqlite3's executemany steps once per row, handing the GIL to the event loop and
    back each time; SQLAlchemy batches rows only for a statement with RETURNING, whose rows it
    then fetches."""
    dialect = connection.dialect
    converts = [
        table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns
    ]
    row_marks = f"({', '.join('?' * len(columns))})"
    into = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
    for start in range(0, len(rows), SQLITE_ROWS_PER_INSERT):
        batch = rows[start : start + SQLITE_ROWS_PER_INSERT]
        values = tuple(
            convert(value) if convert else value
            for row in batch
            for convert, value in zip(converts, row, strict=True)
        )
        connection.exec_driver_sql(into + ", ".join([row_marks] * len(batch)), values)


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


SQLITE_POOL_SIZE = 40  # one per threadpool worker (anyio's default), so none waits for a connection


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        database = url.split(":///", 1)[-1]
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # Connections are kept rather than reopened (opening one takes the file lock), and WAL
        # mode, which lets readers run beside the writer, is a property of the file: set it once.
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 10},
            pool_size=SQLITE_POOL_SIZE,
            max_overflow=0,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        if database and database != ":memory:":
            with engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA journal_mode=WAL")
        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


@contextmanager
def temporary_database(server_url: str, *, prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the server for as long as the block runs, then dropped
    (tests and benchmarks). Its URL is yielded."""
    server = make_url(server_url).set(drivername="postgresql+psycopg")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    # pool_pre_ping: the server may restart meanwhile (tests/test_faults.py does).
    admin = create_engine(server, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    return make_engine(url)


def flush_refused(session: Session) -> str | None:
    """Flushes; when a unique index refuses a row (another request wrote the same first),
    answers the database's message, which names the index or its columns. The transaction is
    then over: raise at once, reading nothing more from the session (its objects are expired)."""
    try:
        session.flush()
    except IntegrityError as exc:
        return str(exc.orig)
    return None


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit when the block ends normally, roll back when it raises."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
