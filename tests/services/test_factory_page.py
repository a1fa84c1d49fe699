"""The factory list's three plans: the programme walks every factory in page order, a caller
seeing few links has its factories read through them and sorted, and any other walks its supply
chains' links in page order. Each answers the same pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from sqlalchemy import Engine
from sqlmodel import Session

from src.models import Delegation, Factory, Organization, SupplyChain, SupplyChainLink
from src.models.factories import FactoryUpdate
from src.models.organizations import OrgKind
from src.prepared_reads import Reader, read_with
from src.services.access import Principal
from src.services.factories import (
    WALKED_CHAINS_AT_MOST,
    FactoryFilters,
    factory_page,
    update_factory,
)
from src.services.tokens import ALL_SUPPLY_CHAINS
from tests.builders import (
    link,
    make_buyer,
    make_client,
    make_factory,
    make_org,
    make_partner,
    make_supply_chain,
)
from tests.statements import count_statements

TODAY = dt.date.today()
# What tells the plans apart in the SQL they run, the first that a statement holds.
PLANS = {
    "seen chains": "WITH seen_chains",
    "lateral": "JOIN LATERAL",
    "links": "factories.id IN (SELECT supply_chain_links.factory_id",
    "chains": "ORDER BY supply_chain_links.factory_updated_at",
}


def chain_walk(who: Principal) -> str:
    """The plan walking the caller's chains: those its token names, or for a token naming none,
    those it was seen with, checked by the same statement."""
    return "seen chains" if who.all_supply_chains else "chains"


def chains_found(engine: Engine) -> str:
    """The plan walking the chains a token naming none sees now: found by a first statement, or
    on PostgreSQL by the walk itself."""
    return "lateral" if engine.dialect.name == "postgresql" else "chains"


def caller(session: Session, org: Organization, chains: tuple[str, ...] = ()) -> Principal:
    """A principal of a new client of `org` reading the named chains (all of them by default)."""
    credentials = make_client(
        session, org, supply_chains=[session.get_one(SupplyChain, chain) for chain in chains]
    )
    return Principal(
        client_id=credentials.client.id,
        org_id=org.id,
        org_kind=OrgKind(org.kind),
        scopes=frozenset({"admin" if org.kind == OrgKind.programme else "factories:read"}),
        supply_chain_ids=chains or (ALL_SUPPLY_CHAINS,),
    )


def listed(
    session: Session,
    engine: Engine,
    who: Principal,
    limit: int,
    filters: FactoryFilters = FactoryFilters(),  # noqa: B008 (frozen)
    *,
    postgresql: bool | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """Every factory the caller's pages list, in order, and the plan that served them, or the
    plans, "one then the other" (with PostgreSQL's statements on PostgreSQL, unless told)."""
    if postgresql is None:
        postgresql = engine.dialect.name == "postgresql"
    reader = Reader.of_session(session)
    items: list[dict[str, Any]] = []
    cursor = None
    with count_statements(engine) as statements:
        while True:
            reads = factory_page(
                principal=who, filters=filters, cursor=cursor, limit=limit, postgresql=postgresql
            )
            page = read_with(reader, reads)
            items += [orjson.loads(item) for item in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    plans = {
        next(plan for plan, marker in PLANS.items() if marker in sql)
        for sql in statements
        if any(marker in sql for marker in PLANS.values())
    }
    return items, " then ".join(sorted(plans, key=list(PLANS).index)) or "factories"


def walk(
    session: Session,
    engine: Engine,
    who: Principal,
    limit: int,
    filters: FactoryFilters = FactoryFilters(),  # noqa: B008 (frozen)
) -> tuple[list[str], str]:
    """Every factory id the caller's pages list, in order, and the plan that served them."""
    items, plan = listed(session, engine, who, limit, filters)
    return [item["id"] for item in items], plan


def seen_then_changed(
    session: Session, engine: Engine, who: Principal, change: Callable[[], None]
) -> tuple[list[str], tuple[list[str], str]]:
    """The factory ids of the caller's pages, walked through the chains it is seen with; then,
    after `change` within the minute, those ids again and the plans that served them."""
    before, plan = walk(session, engine, who, limit=2)
    assert plan == "seen chains"
    change()
    session.flush()
    return before, walk(session, engine, who, limit=2)


class RowCountingReader(Reader):
    """A session's reader that keeps how many rows each statement sent back."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rows_sent: list[int] = []

    def all(self, statement: Any, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        rows = super().all(statement, params)
        self.rows_sent.append(len(rows))
        return rows


def page_order(factory: Factory) -> tuple[dt.datetime, str]:
    return factory.updated_at, factory.id


def overlapping_chains(
    session: Session, own: slice, other: slice, of: int
) -> tuple[Organization, SupplyChain, SupplyChain, list[Factory]]:
    """A buyer with two supply chains, linking the `own` and the `other` slices of `of` new
    factories."""
    buyer = make_buyer(session)
    chains = make_supply_chain(session, buyer), make_supply_chain(session, buyer)
    factories = [make_factory(session) for _ in range(of)]
    for chain, linked in zip(chains, (own, other), strict=True):
        for factory in factories[linked]:
            link(session, chain, factory)
    return buyer, *chains, factories


def buyer_seeing(
    session: Session, seen: int, *, of: int
) -> tuple[Organization, list[Factory], list[SupplyChainLink]]:
    """A buyer whose one supply chain links the first `seen` of `of` new factories."""
    buyer = make_buyer(session)
    chain = make_supply_chain(session, buyer)
    factories = [make_factory(session) for _ in range(of)]
    return buyer, factories, [link(session, chain, factory) for factory in factories[:seen]]


class TestPlans:
    def test_a_caller_seeing_few_links_is_served_through_them(
        self, session: Session, engine: Engine
    ) -> None:
        buyer, factories, _ = buyer_seeing(session, 3, of=60)
        expected = [factory.id for factory in sorted(factories[:3], key=page_order)]
        assert walk(session, engine, caller(session, buyer), limit=2) == (expected, "links")

    def test_a_caller_seeing_more_walks_its_chain_in_page_order(
        self, session: Session, engine: Engine
    ) -> None:
        buyer, factories, _ = buyer_seeing(session, 25, of=30)
        who = caller(session, buyer)
        assert walk(session, engine, who, limit=2) == (
            [factory.id for factory in sorted(factories[:25], key=page_order)],
            chain_walk(who),
        )

    def test_the_programme_walks_every_factory_in_page_order(
        self, session: Session, engine: Engine
    ) -> None:
        _, factories, _ = buyer_seeing(session, 3, of=6)
        programme = caller(session, make_org(session, OrgKind.programme))
        ids, plan = walk(session, engine, programme, limit=2)
        assert plan == "factories"
        new = {factory.id for factory in factories}
        assert [id_ for id_ in ids if id_ in new] == [
            factory.id for factory in sorted(factories, key=page_order)
        ]

    def test_every_plan_lists_the_same_factories_with_the_same_codes(
        self, session: Session, engine: Engine
    ) -> None:
        # Five factories in both chains, listed once with both codes.
        buyer, own, other, factories = overlapping_chains(
            session, slice(0, 20), slice(15, 24), of=40
        )
        link(session, own, factories[30], ends_on=TODAY - dt.timedelta(days=1))
        link(session, own, factories[31], starts_on=TODAY + dt.timedelta(days=1))
        lapsed = make_buyer(session, active=False)
        link(session, make_supply_chain(session, lapsed), factories[32])
        partner = make_partner(session, buyer)
        for who, expected in [
            (caller(session, buyer), factories[:24]),
            (caller(session, buyer, (own.id,)), factories[:20]),
            (caller(session, partner), factories[:24]),
            (caller(session, lapsed), []),
        ]:
            walked, plan_when_walking = listed(session, engine, who, limit=1)
            read, plan = listed(session, engine, who, limit=500)
            assert plan == "links"
            assert plan_when_walking == (chain_walk(who) if expected else "links")
            assert walked == read
            assert listed(session, engine, who, limit=1, postgresql=False)[0] == walked
            assert [item["id"] for item in read] == [
                factory.id for factory in sorted(expected, key=page_order)
            ]
        walked = listed(session, engine, caller(session, buyer), limit=1)[0]
        both = next(item for item in walked if item["id"] == factories[15].id)
        assert [code["supply_chain_id"] for code in both["supplier_codes"]] == sorted(
            [own.id, other.id]
        )

    def test_a_supply_chain_filter_walks_that_chain_and_keeps_every_code(
        self, session: Session, engine: Engine
    ) -> None:
        buyer, own, _, factories = overlapping_chains(session, slice(0, 8), slice(6, 12), of=12)
        filters = FactoryFilters(supply_chain=own.id)
        walked, plan = listed(session, engine, caller(session, buyer), limit=2, filters=filters)
        assert plan == "chains"
        assert (
            walked == listed(session, engine, caller(session, buyer), limit=500, filters=filters)[0]
        )
        assert [item["id"] for item in walked] == [
            factory.id for factory in sorted(factories[:8], key=page_order)
        ]
        assert [len(item["supplier_codes"]) for item in walked].count(2) == 2

    def test_a_caller_reading_many_chains_walks_every_factory(
        self, session: Session, engine: Engine
    ) -> None:
        buyer = make_buyer(session)
        factories = [make_factory(session) for _ in range(WALKED_CHAINS_AT_MOST + 3)]
        for factory in factories[:-1]:  # a chain each, the last factory in none
            link(session, make_supply_chain(session, buyer), factory)
        link(session, make_supply_chain(session, buyer), factories[0])  # in two chains
        who = caller(session, buyer)
        walked, plan = listed(session, engine, who, limit=2, postgresql=False)
        assert plan == "factories"
        assert walked == listed(session, engine, who, limit=500)[0]
        if engine.dialect.name == "postgresql":
            # One statement finds and walks the chains, however many: no parameter per chain.
            assert listed(session, engine, who, limit=2) == (walked, "lateral")
        assert [item["id"] for item in walked] == [
            factory.id for factory in sorted(factories[:-1], key=page_order)
        ]
        in_two = next(item for item in walked if item["id"] == factories[0].id)
        assert len(in_two["supplier_codes"]) == 2

    def test_on_postgresql_a_walk_of_several_chains_sends_only_the_page_rows(
        self, session: Session, engine: Engine
    ) -> None:
        # Each chain's walk gives its first `limit + 1` links. PostgreSQL sends only the rows of
        # the page's `limit + 1` factories, whatever the number of chains; SQLite, which walks
        # at most `WALKED_CHAINS_AT_MOST` chains, sends every walk's rows.
        buyer = make_buyer(session)
        chains = [make_supply_chain(session, buyer) for _ in range(WALKED_CHAINS_AT_MOST)]
        factories = [make_factory(session) for _ in range(3 * len(chains))]
        for number, factory in enumerate(factories):
            link(session, chains[number % len(chains)], factory)
        link(session, chains[1], factories[0])  # in two chains
        first = sorted(factories, key=page_order)[:3]
        postgresql = engine.dialect.name == "postgresql"
        named = caller(session, buyer, tuple(chain.id for chain in chains))
        for who in (named, caller(session, buyer)):
            reader = RowCountingReader.of_session(session)
            reads = factory_page(
                principal=who, filters=FactoryFilters(), cursor=None, limit=2,
                postgresql=postgresql,
            )  # fmt: skip
            page = read_with(reader, reads)
            assert [orjson.loads(item)["id"] for item in page.items] == [f.id for f in first[:2]]
            links_of_first = len(first) + (factories[0] in first)
            assert reader.rows_sent[-1] == (links_of_first if postgresql else 3 * len(chains))

    def test_a_walk_of_several_chains_lists_what_its_filters_keep(
        self, session: Session, engine: Engine
    ) -> None:
        buyer, _, _, factories = overlapping_chains(session, slice(0, 20), slice(15, 24), of=24)
        kept = factories[::3]  # 15 and 18 in both chains
        for factory in kept:
            update_factory(session, factory_id=factory.id, data=FactoryUpdate(country="VN"))
        who, filters = caller(session, buyer), FactoryFilters(country="VN")
        walked, plan = listed(session, engine, who, limit=1, filters=filters)
        assert plan == chain_walk(who)
        assert walked == listed(session, engine, who, limit=500, filters=filters)[0]
        assert [item["id"] for item in walked] == [f.id for f in sorted(kept, key=page_order)]
        assert [len(item["supplier_codes"]) for item in walked].count(2) == 2

    def test_a_factory_written_after_its_link_moves_in_its_chain_walk(
        self, session: Session, engine: Engine
    ) -> None:
        buyer, factories, _ = buyer_seeing(session, 25, of=30)
        edited = factories[3]
        update_factory(session, factory_id=edited.id, data=FactoryUpdate(name="Renamed Knits"))
        later = make_factory(session)
        link(session, make_supply_chain(session, buyer), later)
        who = caller(session, buyer)
        ids, plan = walk(session, engine, who, limit=2)
        assert plan == chain_walk(who)
        assert ids[-2:] == [edited.id, later.id]

    # A token naming no chain walks the chains its caller was seen with, kept a minute; the
    # statement finds nothing once they have changed, and the page is walked again through the
    # chains the caller sees now.

    def test_a_chain_added_within_the_minute_is_walked_at_once(
        self, session: Session, engine: Engine
    ) -> None:
        buyer, factories, _ = buyer_seeing(session, 25, of=30)

        def add() -> None:
            link(session, make_supply_chain(session, buyer), factories[27])

        _, (ids, plans) = seen_then_changed(session, engine, caller(session, buyer), add)
        assert ids == [f.id for f in sorted([*factories[:25], factories[27]], key=page_order)]
        assert plans == "seen chains then " + chains_found(engine)

    def test_a_chain_swapped_for_another_within_the_minute_is_walked_at_once(
        self, session: Session, engine: Engine
    ) -> None:
        # As many chains as were seen, but not the same: a count alone would walk the old ones.
        buyer, factories, _ = buyer_seeing(session, 25, of=30)
        removed = make_supply_chain(session, buyer)
        removed_link = link(session, removed, factories[26])

        def swap() -> None:
            session.delete(removed_link)
            session.flush()
            session.delete(removed)
            link(session, make_supply_chain(session, buyer), factories[27])

        _, (ids, plans) = seen_then_changed(session, engine, caller(session, buyer), swap)
        assert ids == [f.id for f in sorted([*factories[:25], factories[27]], key=page_order)]
        assert plans == "seen chains then " + chains_found(engine)

    def test_a_chain_no_longer_seen_is_not_walked_within_the_minute(
        self, session: Session, engine: Engine
    ) -> None:
        # A partner's chains are its delegating buyers'. A delegation withdrawn leaves that
        # buyer's links in place, and the walk's rows do not check their chain.
        staying, factories, _ = buyer_seeing(session, 25, of=30)
        leaving = make_buyer(session)
        link(session, make_supply_chain(session, leaving), factories[28])
        partner = make_partner(session, staying, leaving)

        def withdraw() -> None:
            session.delete(session.get_one(Delegation, (partner.id, leaving.id)))

        before, (ids, plans) = seen_then_changed(
            session, engine, caller(session, partner), withdraw
        )
        assert factories[28].id in before
        assert ids == [f.id for f in sorted(factories[:25], key=page_order)]
        assert plans == "seen chains then " + chains_found(engine)

    def test_a_lookup_by_supplier_code_is_read_through_the_links_that_have_it(
        self, session: Session, engine: Engine
    ) -> None:
        buyer, factories, links = buyer_seeing(session, 25, of=30)
        who = caller(session, buyer)
        assert walk(session, engine, who, limit=2)[1] == chain_walk(who)
        filters = FactoryFilters(supplier_code=links[7].supplier_code)
        assert walk(session, engine, caller(session, buyer), limit=2, filters=filters) == (
            [factories[7].id],
            "links",
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
        assert walk(session, engine, caller(session, buyer), limit=50, filters=filters) == (
            [factory.id],
            "links",
        )
