"""Rules of uniqueness that the database holds, so that two requests racing past the services'
own checks cannot both write: one active consent per factory and buyer, each supplier code once
within a supply chain, one row per survey period (two imports of one new period at once)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, func, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from src.config import Settings
from src.db import transaction, utcnow
from src.models import (
    Consent,
    Factory,
    Organization,
    Scorecard,
    ScorecardPeriod,
    SupplyChain,
    SupplyChainLink,
)
from src.models.consents import ConsentCreate
from src.models.organizations import OrgKind
from src.models.supply_chains import LinkCreate
from src.services.access import ALL_SUPPLY_CHAINS, Principal
from src.services.consents import grant_consent
from src.services.errors import Conflict
from src.services.supply_chains import create_link
from src.services.surveys import import_survey
from tests.builders import link, make_buyer, make_factory, make_supply_chain


def owner(org: Organization) -> Principal:
    return Principal(
        client_id="cli_test",
        org_id=org.id,
        org_kind=OrgKind.buyer,
        scopes=frozenset({"supply-chains:write"}),
        supply_chain_ids=(ALL_SUPPLY_CHAINS,),
    )


class TestTheDatabaseRefuses:
    def test_a_second_active_consent_for_the_same_pair(self, session: Session) -> None:
        factory, buyer = make_factory(session), make_buyer(session)
        session.add(Consent(factory_id=factory.id, org_id=buyer.id, revoked_at=utcnow()))
        session.add(Consent(factory_id=factory.id, org_id=buyer.id))
        session.flush()  # a revoked consent beside the active one is history, not a clash
        session.add(Consent(factory_id=factory.id, org_id=buyer.id))
        with pytest.raises(IntegrityError):
            session.flush()

    def test_a_supplier_code_twice_in_one_chain(self, session: Session) -> None:
        buyer = make_buyer(session)
        chain, other_chain = make_supply_chain(session, buyer), make_supply_chain(session, buyer)
        first, second = make_factory(session), make_factory(session)
        link(session, chain, first, supplier_code="V-1")
        link(session, other_chain, second, supplier_code="V-1")  # another chain: allowed
        with pytest.raises(IntegrityError, match="supplier_code"):
            link(session, chain, second, supplier_code="V-1")


@pytest.fixture
def racing(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        # SQLite lets one writer at a time and refuses a write from a transaction that read
        # before another one committed, so its check and insert cannot interleave this way.
        pytest.skip("two writers in flight at once need PostgreSQL")


def _wait_until_blocked(engine: Engine) -> None:
    """Until some backend of this database waits on a lock (the second writer, on the first
    one's uncommitted index entry)."""
    deadline = time.monotonic() + 10
    with engine.connect() as connection:
        while time.monotonic() < deadline:
            waiting = connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
            if waiting:
                return
            connection.rollback()
            time.sleep(0.02)
    raise AssertionError("the second writer never waited for the first")


def _race(
    engine: Engine, first_writes: Callable[[Session], None], second: Callable[[], None]
) -> BaseException | None:
    """`first_writes` flushes without committing; `second` runs on a thread meanwhile (its check
    cannot see the uncommitted row) and must wait at the unique index until the first commits.
    Answers what `second` raised."""
    raised: list[BaseException] = []

    def run_second() -> None:
        try:
            second()
        except BaseException as exc:  # handed to the test
            raised.append(exc)

    with Session(engine) as first:
        first_writes(first)
        first.flush()
        thread = threading.Thread(target=run_second)
        thread.start()
        _wait_until_blocked(engine)
        first.commit()
    thread.join(timeout=10)
    assert not thread.is_alive()
    return raised[0] if raised else None


@pytest.mark.usefixtures("racing")
class TestRacingWrites:
    def test_two_grants_of_one_consent_make_one(self, engine: Engine) -> None:
        with transaction(engine) as session:
            factory_id, buyer_id = make_factory(session).id, make_buyer(session).id

        def second() -> None:
            with transaction(engine) as session:
                grant_consent(session, data=ConsentCreate(factory_id=factory_id, org_id=buyer_id))

        raised = _race(
            engine,
            lambda first: first.add(Consent(factory_id=factory_id, org_id=buyer_id)),
            second,
        )
        assert isinstance(raised, Conflict)
        assert str(raised) == f"Factory {factory_id} already consents to {buyer_id}."
        with Session(engine) as session:
            assert session.exec(select(func.count()).select_from(Consent)).one() == 1

    def test_two_links_under_one_supplier_code_make_one(self, engine: Engine) -> None:
        with transaction(engine) as session:
            buyer = make_buyer(session)
            chain_id = make_supply_chain(session, buyer).id
            first_id, second_id = make_factory(session).id, make_factory(session).id
            caller = owner(buyer)

        def second() -> None:
            with transaction(engine) as session:
                create_link(
                    session,
                    principal=caller,
                    chain_id=chain_id,
                    data=LinkCreate(factory_id=second_id, supplier_code="V-RACE"),
                )

        raised = _race(
            engine,
            lambda first: link(
                first,
                first.get_one(SupplyChain, chain_id),
                first.get_one(Factory, first_id),
                supplier_code="V-RACE",
            ),
            second,
        )
        assert isinstance(raised, Conflict)
        assert str(raised) == f"Supplier code V-RACE is already used in supply chain {chain_id}."
        with Session(engine) as session:
            codes = session.exec(
                select(col(SupplyChainLink.factory_id)).where(
                    col(SupplyChainLink.supplier_code) == "V-RACE"
                )
            ).all()
            assert codes == [first_id]

    def test_two_imports_of_one_new_period_both_land(
        self, engine: Engine, settings: Settings
    ) -> None:
        with transaction(engine) as session:
            first_buyer, second_buyer = make_buyer(session).id, make_buyer(session).id
            factory_id = make_factory(session).id

        def survey(session: Session, buyer_id: str) -> None:
            text = f"period,buyer,factory,question,rating\n2031H1,{buyer_id},{factory_id},PF-01,4\n"
            result = import_survey(session, lines=text.splitlines(), settings=settings)
            assert result.errors == []

        def second() -> None:
            with transaction(engine) as session:
                survey(session, second_buyer)

        assert _race(engine, lambda first: survey(first, first_buyer), second) is None
        with Session(engine) as session:
            assert session.exec(select(ScorecardPeriod.period)).all() == ["2031H1"]
            buyers = session.exec(
                select(Scorecard.org_id).where(col(Scorecard.period) == "2031H1")
            ).all()
            assert sorted(buyers) == sorted([first_buyer, second_buyer])
