"""Reads that skip SQLAlchemy's per-execution work, for the hottest routes.

SQLAlchemy compiles a statement once, but on every execution it still derives the statement's
cache key by walking the whole expression (~150 µs for one carrying the visibility predicate),
expands `IN` parameters, checks a connection out of the pool and opens a transaction (on
PostgreSQL a round trip for `BEGIN`, one for `COMMIT`, one for the pool's ping). A `Reader`
compiles each statement once per dialect, keeps the expanded SQL per count of `IN` values, applies
SQLAlchemy's own type conversions to parameters and results, and runs it on the DBAPI connection
itself: a compliance summary's statement costs ~45 µs on SQLite instead of ~410 µs.

Two kinds: `LoopReader`, the event loop's own connection in autocommit (each statement sees one
snapshot, as it would under READ COMMITTED inside a transaction; it only ever reads), and
`Reader.of_session`, which runs in a session's transaction and sees its pending writes.
`awaited_reader` gives the loop's reads as awaitables: on PostgreSQL a small pool of asyncpg
connections, so that the loop serves other requests while the server answers."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, TypeVar

import asyncpg
from sqlalchemy import Engine, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DataError, DBAPIError, OperationalError, StatementError
from sqlalchemy.pool import PoolProxiedConnection
from sqlmodel import Session

# Each statement is logged here at DEBUG, as SQLAlchemy logs its own on `sqlalchemy.engine`.
logger = logging.getLogger("weft.sql")

Row = tuple[Any, ...]
AnySelect = Select[*tuple[Any, ...]]
T = TypeVar("T")


@dataclass(frozen=True)
class _Expansion:
    sql: str
    names: tuple[str, ...]
    positional: bool


PLAN_WITH_VALUES = "plan_with_values"
"""The execution option (`statement.execution_options(plan_with_values=True)`) of a statement
PostgreSQL must plan with each execution's values."""


class _Prepared:
    """One statement compiled for one dialect, with its parameters' and columns' conversions."""

    def __init__(self, statement: AnySelect, dialect: Dialect) -> None:
        self._compiled = statement.compile(dialect=dialect)
        binds = self._compiled.binds
        if any(bind.literal_execute for bind in binds.values()):
            raise ValueError("a statement rendering values into its SQL cannot be prepared")
        self._fixed: dict[str, Any] = {
            name: bind.effective_value for name, bind in binds.items() if not bind.required
        }
        self._required = tuple(name for name, bind in binds.items() if bind.required)
        self._expanding = tuple(name for name, bind in binds.items() if bind.expanding)
        self._bind_conversions = {
            name: convert
            for name, bind in binds.items()
            if (convert := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        self._result_conversions = [
            (index, convert)
            for index, column in enumerate(statement.selected_columns)
            if (convert := column.type.dialect_impl(dialect).result_processor(dialect, None))
            is not None
        ]
        self._expansions: dict[tuple[int, ...], _Expansion] = {}
        # A statement kept prepared on the server (psycopg's after five executions, asyncpg's at
        # once) may be planned once for any values after its fifth. A statement whose best plan
        # depends on its values (`PLAN_WITH_VALUES`) is sent unprepared by psycopg and prepared
        # for one execution by `PooledAsyncReader`: planned with its values every time.
        self.plan_with_values: bool = statement.get_execution_options().get(PLAN_WITH_VALUES, False)
        self.execute_options: dict[str, Any] = (
            {"prepare": False} if self.plan_with_values and dialect.driver == "psycopg" else {}
        )

    def arguments(self, params: Mapping[str, Any]) -> tuple[str, Any]:
        """The SQL and the driver's parameters for these values (of which it takes only its own:
        callers pass one set of values to several statements)."""
        values: dict[str, Any] = self._fixed | {name: params[name] for name in self._required}
        flat: dict[str, Any] = {}
        for name, value in values.items():
            convert = self._bind_conversions.get(name)
            if name in self._expanding:
                for number, item in enumerate(value, start=1):
                    flat[f"{name}_{number}"] = convert(item) if convert else item
            else:
                flat[name] = convert(value) if convert else value
        shape = tuple(len(values[name]) for name in self._expanding)
        expansion = self._expansions.get(shape) or self._expand(shape, values, flat)
        if expansion.positional:
            return expansion.sql, tuple(flat[name] for name in expansion.names)
        return expansion.sql, {name: flat[name] for name in expansion.names}

    def _expand(
        self, shape: tuple[int, ...], values: dict[str, Any], flat: dict[str, Any]
    ) -> _Expansion:
        state = self._compiled.construct_expanded_state(values)
        positional = state.positiontup is not None
        names = tuple(state.positiontup if positional else state.parameters)  # type: ignore[arg-type]
        if not set(names) <= set(flat):
            raise ValueError(f"parameters named unlike SQLAlchemy's expansion: {names}")
        expansion = self._expansions[shape] = _Expansion(state.statement, names, positional)
        return expansion

    def rows(self, fetched: Sequence[Any]) -> list[Row]:
        if not self._result_conversions:
            return [tuple(row) for row in fetched]
        converted = []
        for row in fetched:
            values = list(row)
            for index, convert in self._result_conversions:
                values[index] = convert(values[index])
            converted.append(tuple(values))
        return converted


# Keyed by the statement object: callers build each statement once (`functools.cache`), and the
# bound keeps a statement built per call from growing the cache, at the price of compiling it.
PREPARED_STATEMENTS = 1024


@lru_cache(maxsize=PREPARED_STATEMENTS)
def _prepared(statement: AnySelect, dialect: Dialect) -> _Prepared:
    return _Prepared(statement, dialect)


def _compiled(
    statement: AnySelect, dialect: Dialect, params: Mapping[str, Any]
) -> tuple[_Prepared, str, Any]:
    prepared = _prepared(statement, dialect)
    sql, arguments = prepared.arguments(params)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(sql)
    return prepared, sql, arguments


def _driver_error(
    dialect: Dialect, sql: str, arguments: Any, error: Exception, disconnected: bool
) -> StatementError:
    """The driver's error as SQLAlchemy raises it, so that callers handle one kind of error."""
    return DBAPIError.instance(
        sql,
        arguments,
        error,
        dialect.loaded_dbapi.Error,
        dialect=dialect,
        connection_invalidated=disconnected,
    )


class Reader:
    """Runs prepared SELECTs on one DBAPI connection, given by `connection()`."""

    def __init__(self, dialect: Dialect, connection: Callable[[], DBAPIConnection]) -> None:
        self._dialect = dialect
        self._connection = connection
        # psycopg reads results as text unless asked: a stored summary's bytes would arrive
        # hex-encoded, twice their size, and be decoded on every read.
        self._cursor_options = {"binary": True} if dialect.driver == "psycopg" else {}

    @classmethod
    def of_session(cls, session: Session) -> Reader:
        """Reads in the session's transaction, after writing what it holds (as autoflush would)."""
        session.flush()
        connection = session.connection()

        def dbapi_connection() -> DBAPIConnection:
            dbapi = connection.connection.dbapi_connection
            assert dbapi is not None, "the session's connection is open for its transaction"
            return dbapi

        return cls(connection.dialect, dbapi_connection)

    def all(self, statement: AnySelect, params: Mapping[str, Any]) -> list[Row]:
        prepared, sql, arguments = _compiled(statement, self._dialect, params)
        connection: DBAPIConnection | None = None
        try:
            connection = self._connection()
            cursor = connection.cursor(**self._cursor_options)
            try:
                cursor.execute(sql, arguments, **prepared.execute_options)
                fetched = cursor.fetchall()
            finally:
                cursor.close()
        except self._dialect.loaded_dbapi.Error as exc:
            disconnected = connection is not None and self._dialect.is_disconnect(
                exc, connection, None
            )
            self._failed()
            raise _driver_error(self._dialect, sql, arguments, exc, disconnected) from exc
        return prepared.rows(fetched)

    def first(self, statement: AnySelect, params: Mapping[str, Any]) -> Row | None:
        rows = self.all(statement, params)
        return rows[0] if rows else None

    def _failed(self) -> None:
        """After a driver error: nothing here; the session's transaction handles it."""


class LoopReader(Reader):
    """The event loop's own connection, taken out of the pool for good and kept in autocommit.
    Every statement runs to completion without awaiting, so requests take turns on it and it never
    waits for a pooled connection; on a driver error it is dropped and the next read connects
    again, and a read that finds its connection ended by the server (a restart, say) runs again
    at once on a new one. Only the thread of the event loop may use it: a route running
    in the threadpool reads through its session instead. When that thread has ended (a test
    client without a lifespan runs each request on a thread of its own), the next thread takes
    the reader over with a connection of its own."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine.dialect, self._dbapi_connection)
        self._engine = engine
        self._pooled: PoolProxiedConnection | None = None
        self._thread: threading.Thread | None = None

    def _dbapi_connection(self) -> DBAPIConnection:
        thread = threading.current_thread()
        if thread is not self._thread:
            if self._thread is not None and self._thread.is_alive():
                raise RuntimeError("a LoopReader is used from the event loop's thread only")
            self.close()
            self._thread = thread
        if self._pooled is None:
            pooled = self._engine.raw_connection()
            driver = pooled.driver_connection
            pooled.detach()
            if self._engine.dialect.name == "sqlite":
                driver.isolation_level = None  # type: ignore[union-attr]
            else:
                driver.autocommit = True  # type: ignore[union-attr]
            self._pooled = pooled
        connection = self._pooled.dbapi_connection
        assert connection is not None
        return connection

    def all(self, statement: AnySelect, params: Mapping[str, Any]) -> list[Row]:
        kept = self._pooled is not None
        try:
            return super().all(statement, params)
        except DBAPIError as exc:
            # A connection kept since an earlier read may have been ended by the server (a
            # restart, an idle timeout): a SELECT is safe to run again, once, on a new one.
            if not (kept and exc.connection_invalidated):
                raise
            return super().all(statement, params)

    def _failed(self) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connection; the next read, from whichever thread, connects again."""
        self._thread = None
        pooled, self._pooled = self._pooled, None
        if pooled is not None:
            pooled.close()


class AwaitedReader(Protocol):
    """The event loop's reads, awaited."""

    async def all(self, statement: AnySelect, params: Mapping[str, Any]) -> list[Row]: ...

    async def first(self, statement: AnySelect, params: Mapping[str, Any]) -> Row | None: ...

    async def close(self) -> None: ...


Reads = Generator[tuple[AnySelect, Mapping[str, Any]], list[Row], T]
"""Reads written once for both kinds of reader: the generator yields each statement with its
values, is sent the rows, and returns its result (`read_with`, `read_awaited`)."""


def read_with(reader: Reader, reads: Reads[T]) -> T:
    """The result of `reads`, each statement run by `reader`."""
    try:
        statement, params = next(reads)
        while True:
            statement, params = reads.send(reader.all(statement, params))
    except StopIteration as done:
        result: T = done.value
        return result


async def read_awaited(reader: AwaitedReader, reads: Reads[T]) -> T:
    """The result of `reads`, each statement awaited on `reader`."""
    try:
        statement, params = next(reads)
        while True:
            statement, params = reads.send(await reader.all(statement, params))
    except StopIteration as done:
        result: T = done.value
        return result


def awaited_reader(engine: Engine, loop_reader: LoopReader, connections: int) -> AwaitedReader:
    if engine.dialect.name == "postgresql":
        return PooledAsyncReader(engine, connections)
    return ReadAtOnce(loop_reader)


class ReadAtOnce:
    """SQLite: the loop's own connection, read without awaiting: a database in the process
    answers in less time than handing the read to another thread would take."""

    def __init__(self, loop_reader: LoopReader) -> None:
        self._reader = loop_reader

    async def all(self, statement: AnySelect, params: Mapping[str, Any]) -> list[Row]:
        return self._reader.all(statement, params)

    async def first(self, statement: AnySelect, params: Mapping[str, Any]) -> Row | None:
        return self._reader.first(statement, params)

    async def close(self) -> None:
        """Nothing of its own: the loop reader is closed with the app."""


class PooledAsyncReader:
    """PostgreSQL: up to `size` asyncpg connections, opened as reads need them and kept. A
    blocking read holds the whole worker for the round trip (~150 µs on loopback for a
    compliance summary); awaited, the loop serves other requests meanwhile. asyncpg rather than
    psycopg's `AsyncConnection`: its protocol is written in Cython, and a read costs the worker
    ~25 µs of CPU against psycopg's ~65 µs (docs/benchmarks.md). Each connection keeps the
    statements it has run prepared on the server; a statement planned with its values is
    prepared for that one execution. A read whose kept connection the server ended runs again,
    once, on a new one. The connections belong to the event loop that opened them: a read from
    another loop (a test client without a lifespan runs one per request) drops them and opens
    its own."""

    def __init__(self, engine: Engine, size: int) -> None:
        # Compiled for asyncpg's `$1` parameters and its own types; connected with the
        # database URL's libpq settings.
        self._dialect = engine.url.set(drivername="postgresql+asyncpg").get_dialect()()
        self._dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._size = size
        self._loop: asyncio.AbstractEventLoop | None = None
        # Each of the `size` places holds a kept connection, or None until one is opened there:
        # a read waits for a place, so a connection dropped frees its place for the next read.
        self._idle: list[asyncpg.Connection | None] = []
        self._waiting: deque[asyncio.Future[asyncpg.Connection | None]] = deque()

    async def first(self, statement: AnySelect, params: Mapping[str, Any]) -> Row | None:
        rows = await self.all(statement, params)
        return rows[0] if rows else None

    async def all(self, statement: AnySelect, params: Mapping[str, Any]) -> list[Row]:
        prepared, sql, arguments = _compiled(statement, self._dialect, params)
        for attempt in range(2):
            try:
                connection, kept = await self._take()
            except _ASYNCPG_ERRORS as exc:
                raise _asyncpg_error(sql, arguments, exc, disconnected=True) from exc
            try:
                if prepared.plan_with_values:
                    fetched = await (await connection.prepare(sql)).fetch(*arguments)
                else:
                    fetched = await connection.fetch(sql, *arguments)
            except _ASYNCPG_ERRORS as exc:
                broken = connection.is_closed()
                self._put_back(connection, usable=not broken)
                if broken and kept and attempt == 0:
                    continue
                raise _asyncpg_error(sql, arguments, exc, disconnected=broken) from exc
            except BaseException:
                # Cancelled mid-read (the client went away): what the connection holds is unknown.
                self._put_back(connection, usable=False)
                raise
            self._put_back(connection, usable=True)
            return prepared.rows(fetched)
        raise AssertionError("unreachable: a second attempt returns or raises")

    async def _take(self) -> tuple[asyncpg.Connection, bool]:
        """A connection, and whether it was kept from an earlier read. Reads are served in the
        order they asked: a place freed goes to the read that has waited longest, never to one
        asking just then (an `asyncio.Queue` lets such a read take it, and a waiting read woken
        for it queues again at the back: under load some waited 350 ms)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._close_kept()
            self._loop, self._idle, self._waiting = loop, [None] * self._size, deque()
        if self._idle:
            place = self._idle.pop()
        else:
            turn: asyncio.Future[asyncpg.Connection | None] = loop.create_future()
            self._waiting.append(turn)
            try:
                place = await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():
                    self._give(turn.result())  # handed over as the read was cancelled
                raise
        if place is not None:
            return place, True
        try:
            connection = await asyncpg.connect(self._dsn)
        except BaseException:
            self._give(None)
            raise
        return connection, False

    def _give(self, place: asyncpg.Connection | None) -> None:
        """Hands a place to the read that has waited longest, or leaves it idle."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():  # a waiting read cancelled has left
                turn.set_result(place)
                return
        self._idle.append(place)

    def _put_back(self, connection: asyncpg.Connection, *, usable: bool) -> None:
        if not usable:
            connection.terminate()
        self._give(connection if usable else None)

    def _close_kept(self) -> None:
        # A closed loop can end nothing: its connections close as they are collected, as
        # asyncpg's own do.
        if self._loop is not None and not self._loop.is_closed():
            for connection in self._idle:
                if connection is not None:
                    connection.terminate()
        self._idle = []

    async def close(self) -> None:
        self._close_kept()
        self._loop = None


# What asyncpg raises for a server's error, a connection it lost and one it could not open.
_ASYNCPG_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


def _asyncpg_error(sql: str, arguments: Any, error: Exception, *, disconnected: bool) -> DBAPIError:
    """asyncpg's error as SQLAlchemy raises psycopg's: a connection lost or refused is an
    `OperationalError` (a dead server is the same 503 on every read), a value the server refuses
    (text holding U+0000, say) or asyncpg cannot send a `DataError` (the caller's to fix)."""
    if disconnected:
        return OperationalError(sql, arguments, error, connection_invalidated=True)
    # asyncpg's own `DataError` for what it cannot encode is a `ValueError` too.
    if isinstance(error, asyncpg.DataError | ValueError):
        return DataError(sql, arguments, error)
    return DBAPIError(sql, arguments, error)
