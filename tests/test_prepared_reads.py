"""Prepared reads answer what SQLAlchemy's own execution answers, read in a session's transaction
or on the event loop's connection, and that connection recovers from losing its server."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import (
    Date,
    Engine,
    Integer,
    LargeBinary,
    String,
    bindparam,
    column,
    create_engine,
    func,
    literal,
    table,
    text,
)
from sqlalchemy import select as sa_select
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlmodel import Session, col

from src.db import UTCDateTime, utcnow
from src.models import Factory
from src.models.factories import FactoryStatus
from src.prepared_reads import (
    PLAN_WITH_VALUES,
    AwaitedReader,
    LoopReader,
    PooledAsyncReader,
    Reader,
    Reads,
    Row,
    awaited_reader,
    read_awaited,
    read_with,
)
from tests.builders import make_factory
from tests.servers import free_port
from tests.statements import count_statements

STATEMENT = (
    sa_select(
        col(Factory.id),
        col(Factory.name),
        col(Factory.updated_at),
        col(Factory.os_id),
        (col(Factory.workers_total) > bindparam("workers", type_=Integer)).label("large"),
        bindparam("day", type_=Date).label("day"),
        literal(b"\x00weft", LargeBinary).label("bytes"),
    )
    .where(
        col(Factory.id).in_(bindparam("ids", expanding=True)),
        col(Factory.status) == FactoryStatus.active,
        col(Factory.updated_at) >= bindparam("since", type_=UTCDateTime),
    )
    .order_by(col(Factory.id))
)


@pytest.fixture
def reader(engine: Engine) -> Iterator[LoopReader]:
    loop_reader = LoopReader(engine)
    yield loop_reader
    loop_reader.close()


def params(ids: list[str], **overrides: Any) -> dict[str, Any]:
    since = utcnow() - dt.timedelta(hours=1)
    return {"ids": ids, "workers": 1000, "day": dt.date(2026, 3, 31), "since": since} | overrides


class TestSameRowsAsSQLAlchemy:
    def test_expanded_lists_dates_times_booleans_bytes_nulls_and_fixed_values(
        self, session: Session, reader: LoopReader
    ) -> None:
        big = make_factory(session, workers_total=1500)
        small = make_factory(session, workers_total=200, os_id="OS-1")
        make_factory(session, status="suspended")
        session.commit()
        for ids in ([], [big.id], [big.id, small.id, "fac_missing"]):
            expected = [
                tuple(row) for row in session.connection().execute(STATEMENT, params(ids)).all()
            ]
            assert reader.all(STATEMENT, params(ids)) == expected
        rows = reader.all(STATEMENT, params([big.id, small.id]))
        assert [(row[0], row[3], row[4], row[5], row[6]) for row in rows] == sorted(
            [
                (big.id, None, True, dt.date(2026, 3, 31), b"\x00weft"),
                (small.id, "OS-1", False, dt.date(2026, 3, 31), b"\x00weft"),
            ]
        )
        assert rows[0][2].tzinfo == dt.UTC
        later = params([big.id], since=utcnow() + dt.timedelta(hours=1))
        assert reader.first(STATEMENT, later) is None


class TestInTheSessionsTransaction:
    def test_sees_what_the_session_holds_and_has_not_flushed(self, session: Session) -> None:
        pending = Factory(
            name="Pending", country="VN", address="Lot 1", programme_code="BW-PENDING",
            status="active", workers_total=2000,
        )  # fmt: skip
        session.add(pending)
        row = Reader.of_session(session).first(STATEMENT, params([pending.id]))
        assert row is not None
        assert row[1] == "Pending"
        session.rollback()


class TestTheLoopsConnection:
    def test_reads_what_others_committed_since_its_last_read(
        self, session: Session, reader: LoopReader
    ) -> None:
        factory = make_factory(session, workers_total=1500)
        session.commit()
        assert reader.first(STATEMENT, params([factory.id])) is not None
        factory.name = "Renamed"
        session.add(factory)
        session.commit()
        row = reader.first(STATEMENT, params([factory.id]))
        assert row is not None
        assert row[1] == "Renamed"

    def test_is_used_from_one_thread_only(self, reader: LoopReader) -> None:
        assert reader.all(STATEMENT, params([])) == []
        refused: list[BaseException] = []

        def read_elsewhere() -> None:
            try:
                reader.all(STATEMENT, params([]))
            except RuntimeError as exc:
                refused.append(exc)

        thread = threading.Thread(target=read_elsewhere)
        thread.start()
        thread.join()
        assert len(refused) == 1

    def test_a_thread_takes_it_over_once_its_thread_has_ended(self, reader: LoopReader) -> None:
        answers: list[list[Any]] = []

        def read() -> None:
            answers.append(reader.all(sa_select(literal(1)), {}))

        for _ in range(2):
            thread = threading.Thread(target=read)
            thread.start()
            thread.join()
        assert answers == [[(1,)], [(1,)]]
        assert reader.all(sa_select(literal(1)), {}) == [(1,)]

    def test_a_read_whose_connection_the_server_ended_runs_again_on_a_new_one(
        self, engine: Engine, reader: LoopReader
    ) -> None:
        if engine.dialect.name != "postgresql":
            pytest.skip("the server ends the connection: PostgreSQL's pg_terminate_backend")
        pid = reader.first(sa_select(func.pg_backend_pid()), {})
        assert pid is not None
        with engine.begin() as admin:
            admin.execute(sa_select(func.pg_terminate_backend(pid[0])))
        again = reader.first(sa_select(func.pg_backend_pid()), {})
        assert again is not None
        assert again[0] != pid[0]

    def test_a_failing_statement_is_not_run_twice(self, engine: Engine, reader: LoopReader) -> None:
        reader.all(sa_select(literal(1)), {})
        with count_statements(engine) as statements, pytest.raises(DBAPIError) as raised:
            reader.all(sa_select(func.no_such_function()), {})
        assert not raised.value.connection_invalidated
        assert len(statements) == 1

    def test_runs_outside_any_transaction(self, engine: Engine, reader: LoopReader) -> None:
        if engine.dialect.name != "postgresql":
            pytest.skip("pg_stat_activity tells whether a connection holds a transaction")
        pid = reader.first(sa_select(func.pg_backend_pid()), {})
        assert pid is not None
        with engine.connect() as other:
            state = other.exec_driver_sql(
                "SELECT state FROM pg_stat_activity WHERE pid = %(pid)s", {"pid": pid[0]}
            ).scalar()
        assert state == "idle"

    def test_a_statement_planned_with_its_values_is_never_prepared_on_the_server(
        self, engine: Engine, reader: LoopReader
    ) -> None:
        if engine.dialect.name != "postgresql":
            pytest.skip("PostgreSQL's prepared statements are what the option avoids")
        prepared_here = sa_select(
            sa_select(func.count()).select_from(text("pg_prepared_statements")).scalar_subquery()
        )
        planned = prepared_here.where(literal(True)).execution_options(**{PLAN_WITH_VALUES: True})
        before = reader.all(planned, {})
        # psycopg prepares a statement on its sixth execution.
        for _ in range(8):
            reader.all(planned, {})
        assert reader.all(planned, {}) == before
        for _ in range(8):
            reader.all(prepared_here, {})
        assert reader.all(prepared_here, {}) == [(before[0][0] + 1,)]


def test_a_statement_rendering_values_into_its_sql_is_refused(reader: LoopReader) -> None:
    rendered = sa_select(literal(1, literal_execute=True))
    with pytest.raises(ValueError, match="rendering values"):
        reader.all(rendered, {})


def test_driver_errors_come_as_sqlalchemy_errors(reader: LoopReader) -> None:
    with pytest.raises(DBAPIError):
        reader.all(sa_select(func.no_such_function()), {})
    assert reader.all(STATEMENT, params([])) == []


def awaited_first(reader: AwaitedReader, statement: Any, values: dict[str, Any]) -> Any:
    return asyncio.run(reader.first(statement, values))


def _pool(engine: Engine, size: int) -> Iterator[PooledAsyncReader]:
    if engine.dialect.name != "postgresql":
        pytest.skip("the awaited reads have a pool of their own on PostgreSQL only")
    reader = PooledAsyncReader(engine, size=size)
    yield reader
    asyncio.run(reader.close())


@pytest.fixture
def pooled(engine: Engine) -> Iterator[PooledAsyncReader]:
    yield from _pool(engine, size=2)


@pytest.fixture
def one(engine: Engine) -> Iterator[PooledAsyncReader]:
    """A pool of one connection."""
    yield from _pool(engine, size=1)


BACKEND_PID = sa_select(func.pg_backend_pid())


def sleeping_pid(seconds: float) -> Any:
    return sa_select(func.pg_backend_pid(), func.pg_sleep(seconds))


class TestAwaitedReads:
    def test_answer_what_the_loop_reader_answers(
        self, session: Session, engine: Engine, reader: LoopReader
    ) -> None:
        factory = make_factory(session, workers_total=1500)
        session.commit()
        awaited = awaited_reader(engine, reader, connections=2)
        try:
            for values in (params([factory.id]), params(["fac_missing"])):
                assert awaited_first(awaited, STATEMENT, values) == reader.first(STATEMENT, values)
        finally:
            asyncio.run(awaited.close())

    def test_reads_written_once_run_alike_on_either_reader(
        self, session: Session, engine: Engine, reader: LoopReader
    ) -> None:
        factories = [make_factory(session, workers_total=1500) for _ in range(3)]
        session.commit()

        def two_reads() -> Reads[tuple[list[Row], Row | None]]:
            found = yield STATEMENT, params([factory.id for factory in factories])
            again = yield STATEMENT, params([found[-1][0]])
            return found, again[0] if again else None

        awaited = awaited_reader(engine, reader, connections=2)
        try:
            at_once = read_with(reader, two_reads())
            assert asyncio.run(read_awaited(awaited, two_reads())) == at_once
        finally:
            asyncio.run(awaited.close())
        found, again = at_once
        assert [row[0] for row in found] == sorted(factory.id for factory in factories)
        assert again == found[-1]

    def test_reads_overlap_on_as_many_connections_as_the_pool_has(
        self, pooled: PooledAsyncReader
    ) -> None:
        async def three_at_once() -> set[int]:
            rows = await asyncio.gather(*(pooled.first(sleeping_pid(0.2), {}) for _ in range(3)))
            return {row[0] for row in rows if row is not None}

        assert len(asyncio.run(three_at_once())) == 2

    def test_a_read_whose_connection_the_server_ended_runs_again_on_a_new_one(
        self, engine: Engine, pooled: PooledAsyncReader
    ) -> None:
        async def ended_then_read() -> tuple[int, int]:
            first = await pooled.first(BACKEND_PID, {})
            assert first is not None
            with engine.begin() as admin:
                admin.execute(sa_select(func.pg_terminate_backend(first[0])))
            again = await pooled.first(BACKEND_PID, {})
            assert again is not None
            return first[0], again[0]

        ended, new = asyncio.run(ended_then_read())
        assert new != ended

    def test_a_waiting_read_goes_before_one_asking_as_a_connection_is_freed(
        self, one: PooledAsyncReader
    ) -> None:

        async def served_in_turn() -> list[str]:
            served: list[str] = []

            async def two_reads() -> None:
                # As a page's statements: the second asks in the turn the first frees its place.
                await one.first(sleeping_pid(0.2), {})
                served.append("first")
                await one.first(BACKEND_PID, {})
                served.append("second")

            async def waiting() -> None:
                await one.first(BACKEND_PID, {})
                served.append("waiting")

            reading = asyncio.create_task(two_reads())
            await asyncio.sleep(0.1)
            await asyncio.gather(reading, waiting())
            return served

        assert asyncio.run(served_in_turn()) == ["first", "waiting", "second"]

    def test_a_statement_planned_with_its_values_is_never_planned_for_any_values(
        self, pooled: PooledAsyncReader
    ) -> None:
        """The statement reports the plans PostgreSQL made for it so far, this execution's
        included; planned for any values, a statement run often gets a generic plan."""
        plans_of_itself = sa_select(
            column("generic_plans"), column("custom_plans")
        ).select_from(table("pg_prepared_statements")).where(
            column("statement") == func.current_query(), bindparam("one", type_=Integer) == 1
        )  # fmt: skip
        planned = plans_of_itself.execution_options(**{PLAN_WITH_VALUES: True})

        async def plans(statement: Any) -> list[Row | None]:
            return [await pooled.first(statement, {"one": 1}) for _ in range(8)]

        assert asyncio.run(plans(planned)) == [(0, 1)] * 8
        generic, _ = asyncio.run(plans(plans_of_itself))[-1] or (0, 0)
        assert generic > 0

    def test_a_read_cancelled_midway_drops_its_connection_and_a_waiting_read_opens_another(
        self, one: PooledAsyncReader
    ) -> None:

        async def cancel_a_read() -> tuple[int, int]:
            before = await one.first(BACKEND_PID, {})
            slow = asyncio.create_task(one.first(sleeping_pid(5), {}))
            await asyncio.sleep(0.2)
            waiting = asyncio.create_task(one.first(BACKEND_PID, {}))
            await asyncio.sleep(0.1)
            slow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await slow
            after = await asyncio.wait_for(waiting, timeout=5)
            assert before is not None
            assert after is not None
            return before[0], after[0]

        before, after = asyncio.run(cancel_a_read())
        assert after != before

    def test_a_read_from_another_event_loop_opens_connections_of_its_own(
        self, pooled: PooledAsyncReader
    ) -> None:
        first, second = (
            awaited_first(pooled, BACKEND_PID, {}),
            awaited_first(pooled, BACKEND_PID, {}),
        )
        assert first is not None
        assert second is not None
        assert first[0] != second[0]

    def test_errors_come_as_sqlalchemy_errors(self, pooled: PooledAsyncReader) -> None:
        with pytest.raises(DBAPIError) as raised:
            awaited_first(pooled, sa_select(func.no_such_function()), {})
        assert not raised.value.connection_invalidated

    @pytest.mark.parametrize(
        ("value", "type_"),
        [("text holding \x00", String()), (2**40, Integer())],
        ids=["refused by the server", "refused by the driver"],
    )
    def test_a_value_refused_is_a_sqlalchemy_data_error(
        self, pooled: PooledAsyncReader, value: object, type_: Any
    ) -> None:
        with pytest.raises(DataError):
            awaited_first(pooled, sa_select(bindparam("value", type_=type_)), {"value": value})

    def test_an_unreachable_server_is_a_sqlalchemy_operational_error(self, engine: Engine) -> None:
        if engine.dialect.name != "postgresql":
            pytest.skip("the awaited reads have a pool of their own on PostgreSQL only")
        nowhere = create_engine(engine.url.set(port=free_port()))
        with pytest.raises(OperationalError):
            awaited_first(PooledAsyncReader(nowhere, size=1), BACKEND_PID, {})
