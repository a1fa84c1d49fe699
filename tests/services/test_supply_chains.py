"""Links dated to start or end later: on the day one comes into or out of force its factory's
`updated_at` moves, so that a sync by `updated_since` fetches what its readers now see."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from src.config import Settings
from src.db import utcnow
from src.models import Factory, SupplyChainLink
from src.services.supply_chains import touch_factories_of_links_turning
from src.worker import Worker
from tests.builders import link, make_buyer, make_factory, make_supply_chain

TODAY = utcnow().date()


def at(day: dt.date, hour: int = 1) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), dt.UTC)


def days(count: int) -> dt.timedelta:
    return dt.timedelta(days=count)


def dated_links(session: Session) -> tuple[Factory, Factory, Factory]:
    """A factory whose link starts in two days, one whose link ends tomorrow (in force through
    it), one whose link stays in force."""
    chain = make_supply_chain(session, make_buyer(session))
    starting, ending, steady = make_factory(session), make_factory(session), make_factory(session)
    link(session, chain, starting, starts_on=TODAY + days(2))
    link(session, chain, ending, starts_on=TODAY - days(10), ends_on=TODAY + days(1))
    link(session, chain, steady, starts_on=TODAY - days(10))
    return starting, ending, steady


def links_copy(session: Session, factory: Factory) -> dt.datetime:
    return session.exec(
        select(SupplyChainLink.factory_updated_at).where(
            col(SupplyChainLink.factory_id) == factory.id
        )
    ).one()


class TestLinksTurning:
    def test_a_factory_moves_once_when_its_link_comes_into_or_out_of_force(
        self, session: Session
    ) -> None:
        starting, ending, steady = dated_links(session)
        unmoved = steady.updated_at
        assert touch_factories_of_links_turning(session, now=at(TODAY + days(1))) == 0
        # A worker stopped for two days catches both turns up.
        later = at(TODAY + days(4))
        assert touch_factories_of_links_turning(session, now=later) == 2
        assert starting.updated_at == ending.updated_at == later
        assert links_copy(session, starting) == links_copy(session, ending) == later
        assert steady.updated_at == unmoved
        assert touch_factories_of_links_turning(session, now=at(TODAY + days(4), 2)) == 0

    def test_a_worker_stopped_for_months_catches_every_turn_up(self, session: Session) -> None:
        starting, ending, steady = dated_links(session)
        unmoved = steady.updated_at
        long_after = at(TODAY + days(120))
        assert touch_factories_of_links_turning(session, now=long_after) == 2
        assert starting.updated_at == ending.updated_at == long_after
        assert steady.updated_at == unmoved

    def test_a_factory_moved_since_its_link_turned_is_left(self, session: Session) -> None:
        starting, _, _ = dated_links(session)
        # Edited the day its link started: a sync since then fetches it already.
        starting.updated_at = at(TODAY + days(2), 9)
        session.add(starting)
        session.flush()
        assert touch_factories_of_links_turning(session, now=at(TODAY + days(3))) == 1

    def test_the_worker_moves_them_in_its_hourly_housekeeping(
        self, session: Session, engine: Engine, settings: Settings
    ) -> None:
        starting, ending, _ = dated_links(session)
        session.commit()
        later = at(TODAY + days(2))

        async def run_briefly() -> None:
            stop = asyncio.Event()
            async with Worker(engine, settings, clock=lambda: later) as worker:
                asyncio.get_running_loop().call_later(0.5, stop.set)
                await worker.run(stop)

        asyncio.run(run_briefly())
        for factory in (starting, ending):
            session.refresh(factory)
            assert factory.updated_at == later
