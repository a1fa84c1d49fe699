"""The factory list's two plans: walking the programme's factories in page order, checking each,
and reading the caller's own factories through its links. Each caller gets the one that reads
less, and both answer the same pages."""

from __future__ import annotations

import datetime as dt

import orjson
from sqlalchemy import Engine
from sqlmodel import Session

from src.models import Factory, Organization, SupplyChainLink
from src.models.organizations import OrgKind
from src.prepared_reads import Reader
from src.services.access import Principal
from src.services.factories import FactoryFilters, factory_page
from src.services.tokens import ALL_SUPPLY_CHAINS
from tests.builders import (
    link,
    make_buyer,
    make_factory,
    make_partner,
    make_supply_chain,
)
from tests.statements import count_statements

TODAY = dt.date.today()
READ_THROUGH_LINKS = "factories.id IN (SELECT supply_chain_links.factory_id"


def caller(org: Organization, chains: tuple[str, ...] = (ALL_SUPPLY_CHAINS,)) -> Principal:
    return Principal(
        client_id="cli_test",
        org_id=org.id,
        org_kind=OrgKind(org.kind),
        scopes=frozenset({"factories:read"}),
        supply_chain_ids=chains,
    )


def walk(
    session: Session,
    engine: Engine,
    who: Principal,
    limit: int,
    filters: FactoryFilters = FactoryFilters(),  # noqa: B008 (frozen)
) -> tuple[list[str], bool]:
    """Every factory id the caller's pages list, in order, and whether the links plan served."""
    reader = Reader.of_session(session)
    ids: list[str] = []
    cursor = None
    with count_statements(engine) as statements:
        while True:
            page = factory_page(reader, principal=who, filters=filters, cursor=cursor, limit=limit)
            ids += [orjson.loads(item)["id"] for item in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    return ids, any(READ_THROUGH_LINKS in sql for sql in statements)


def page_order(factory: Factory) -> tuple[dt.datetime, str]:
    return factory.updated_at, factory.id


def buyer_seeing(
    session: Session, seen: int, *, of: int
) -> tuple[Organization, list[Factory], list[SupplyChainLink]]:
    """A buyer whose one supply chain links the first `seen` of `of` new factories."""
    buyer = make_buyer(session)
    chain = make_supply_chain(session, buyer)
    factories = [make_factory(session) for _ in range(of)]
    return buyer, factories, [link(session, chain, factory) for factory in factories[:seen]]


class TestPlans:
    def test_a_caller_seeing_few_factories_is_served_through_its_links(
        self, session: Session, engine: Engine
    ) -> None:
        buyer, factories, _ = buyer_seeing(session, 3, of=60)
        ids, through_links = walk(session, engine, caller(buyer), limit=1)  # three pages
        assert through_links
        assert ids == [factory.id for factory in sorted(factories[:3], key=page_order)]

    def test_a_caller_seeing_most_factories_walks_them_in_page_order(
        self, session: Session, engine: Engine
    ) -> None:
        buyer, factories, _ = buyer_seeing(session, 25, of=30)
        ids, through_links = walk(session, engine, caller(buyer), limit=2)
        assert not through_links
        assert sorted(ids) == sorted(factory.id for factory in factories[:25])

    def test_both_plans_list_the_same_factories_in_the_same_order(
        self, session: Session, engine: Engine
    ) -> None:
        buyer = make_buyer(session)
        own, other = make_supply_chain(session, buyer), make_supply_chain(session, buyer)
        factories = [make_factory(session) for _ in range(40)]
        for factory in factories[:20]:
            link(session, own, factory)
        for factory in factories[15:24]:  # five in both chains, listed once
            link(session, other, factory)
        link(session, own, factories[30], ends_on=TODAY - dt.timedelta(days=1))
        link(session, own, factories[31], starts_on=TODAY + dt.timedelta(days=1))
        lapsed = make_buyer(session, active=False)
        link(session, make_supply_chain(session, lapsed), factories[32])
        partner = make_partner(session, buyer)
        for who, expected in [
            (caller(buyer), factories[:24]),
            (caller(buyer, (own.id,)), factories[:20]),
            (caller(partner), factories[:24]),
            (caller(lapsed), []),
        ]:
            walked, through_links_when_walking = walk(session, engine, who, limit=1)
            read, through_links = walk(session, engine, who, limit=500)
            assert through_links
            assert through_links_when_walking == (not expected)  # nothing to walk for
            assert walked == read
            assert sorted(read) == sorted(factory.id for factory in expected)

    def test_a_lookup_by_supplier_code_is_read_through_the_links_that_have_it(
        self, session: Session, engine: Engine
    ) -> None:
        buyer, factories, links = buyer_seeing(session, 25, of=30)
        assert not walk(session, engine, caller(buyer), limit=2)[1]
        filters = FactoryFilters(supplier_code=links[7].supplier_code)
        assert walk(session, engine, caller(buyer), limit=2, filters=filters) == (
            [factories[7].id],
            True,
        )

    def test_each_link_filter_may_be_met_through_a_different_link(
        self, session: Session, engine: Engine
    ) -> None:
        buyer = make_buyer(session)
        first, second = make_supply_chain(session, buyer), make_supply_chain(session, buyer)
        factory, elsewhere = make_factory(session), make_factory(session)
        link(session, first, factory, supplier_code="A-1")
        link(session, second, factory, supplier_code="B-1")
        link(session, second, elsewhere, supplier_code="A-1")
        filters = FactoryFilters(supply_chain=first.id, supplier_code="B-1")
        assert walk(session, engine, caller(buyer), limit=50, filters=filters) == (
            [factory.id],
            True,
        )
