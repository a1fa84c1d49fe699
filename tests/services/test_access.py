"""The visibility rule (`factory_visible`) and the consent rule (`consent_granted`), in SQL,
against hand-built links, chains, subscriptions, delegations and consents."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest
from sqlmodel import Session, select

from src.db import utcnow
from src.models import Factory, Organization
from src.models.organizations import OrgKind
from src.services.access import Principal, factory_visible, has_consent
from src.services.tokens import ALL_SUPPLY_CHAINS
from tests.builders import (
    delegate,
    grant_consent,
    link,
    make_buyer,
    make_factory,
    make_org,
    make_subscription,
    make_supply_chain,
)

TODAY = dt.date.today()
DAY = dt.timedelta(days=1)


def principal(org: Organization, chains: Sequence[str] = (ALL_SUPPLY_CHAINS,)) -> Principal:
    scopes = ["admin"] if org.kind == OrgKind.programme else ["factories:read", "compliance:read"]
    return Principal(
        client_id="cli_test",
        org_id=org.id,
        org_kind=OrgKind(org.kind),
        scopes=frozenset(scopes),
        supply_chain_ids=tuple(chains),
    )


def visible(session: Session, caller: Principal) -> set[str]:
    return set(session.exec(select(Factory.id).where(factory_visible(caller))).all())


@pytest.fixture
def buyer(session: Session) -> Organization:
    return make_buyer(session)


class TestLinks:
    def test_an_active_link_shows_the_factory(self, session: Session, buyer: Organization) -> None:
        factory = make_factory(session)
        make_factory(session)  # linked nowhere
        link(session, make_supply_chain(session, buyer), factory)
        assert visible(session, principal(buyer)) == {factory.id}

    @pytest.mark.parametrize(
        ("starts_on", "ends_on", "shown"),
        [
            (TODAY - 10 * DAY, TODAY - DAY, False),
            (TODAY - 10 * DAY, TODAY, True),
            (TODAY, None, True),
            (TODAY + DAY, None, False),
            (TODAY + DAY, TODAY + 10 * DAY, False),
        ],
        ids=["ended", "ends today", "starts today", "not yet started", "future window"],
    )
    def test_only_a_link_running_today_counts(
        self,
        session: Session,
        buyer: Organization,
        starts_on: dt.date,
        ends_on: dt.date | None,
        shown: bool,
    ) -> None:
        factory = make_factory(session)
        chain = make_supply_chain(session, buyer)
        link(session, chain, factory, starts_on=starts_on, ends_on=ends_on)
        assert visible(session, principal(buyer)) == ({factory.id} if shown else set())

    def test_an_ended_link_does_not_hide_a_running_one_in_another_chain(
        self, session: Session, buyer: Organization
    ) -> None:
        factory = make_factory(session)
        link(session, make_supply_chain(session, buyer), factory, ends_on=TODAY - DAY)
        link(session, make_supply_chain(session, buyer), factory)
        assert visible(session, principal(buyer)) == {factory.id}


class TestChains:
    def test_only_chains_named_in_the_token(self, session: Session, buyer: Organization) -> None:
        named, other = make_supply_chain(session, buyer), make_supply_chain(session, buyer)
        shown, hidden = make_factory(session), make_factory(session)
        link(session, named, shown)
        link(session, other, hidden)
        assert visible(session, principal(buyer, [named.id])) == {shown.id}
        assert visible(session, principal(buyer)) == {shown.id, hidden.id}

    def test_another_organisations_chain_named_in_the_token_shows_nothing(
        self, session: Session, buyer: Organization
    ) -> None:
        theirs = make_supply_chain(session, make_buyer(session))
        link(session, theirs, make_factory(session))
        assert visible(session, principal(buyer, [theirs.id])) == set()
        assert visible(session, principal(buyer)) == set()


class TestSubscriptions:
    @pytest.mark.parametrize(
        ("starts_on", "ends_on"),
        [(TODAY - 400 * DAY, TODAY - DAY), (TODAY + DAY, None)],
        ids=["ended", "not yet started"],
    )
    def test_without_a_running_subscription_nothing_shows(
        self, session: Session, starts_on: dt.date, ends_on: dt.date | None
    ) -> None:
        buyer = make_org(session, OrgKind.buyer)
        make_subscription(session, buyer, starts_on=starts_on, ends_on=ends_on)
        link(session, make_supply_chain(session, buyer), make_factory(session))
        assert visible(session, principal(buyer)) == set()

    def test_an_open_ended_subscription_runs(self, session: Session) -> None:
        buyer = make_org(session, OrgKind.buyer)
        make_subscription(session, buyer, starts_on=TODAY, ends_on=None)
        factory = make_factory(session)
        link(session, make_supply_chain(session, buyer), factory)
        assert visible(session, principal(buyer)) == {factory.id}


class TestPartners:
    def test_a_partner_sees_through_the_buyers_that_delegated_to_it(
        self, session: Session, buyer: Organization
    ) -> None:
        partner = make_org(session, OrgKind.partner)
        delegate(session, buyer, partner)
        shown, hidden = make_factory(session), make_factory(session)
        link(session, make_supply_chain(session, buyer), shown)
        link(session, make_supply_chain(session, make_buyer(session)), hidden)
        assert visible(session, principal(partner)) == {shown.id}

    def test_a_partner_without_a_delegation_sees_nothing(
        self, session: Session, buyer: Organization
    ) -> None:
        partner = make_org(session, OrgKind.partner)
        delegate(session, make_buyer(session), partner)
        chain = make_supply_chain(session, buyer)
        link(session, chain, make_factory(session))
        assert visible(session, principal(partner)) == set()
        assert visible(session, principal(partner, [chain.id])) == set()

    def test_a_partner_sees_nothing_of_a_buyer_whose_subscription_ended(
        self, session: Session
    ) -> None:
        buyer = make_buyer(session, active=False)
        partner = make_org(session, OrgKind.partner)
        delegate(session, buyer, partner)
        link(session, make_supply_chain(session, buyer), make_factory(session))
        assert visible(session, principal(partner)) == set()


class TestProgramme:
    def test_the_programme_sees_every_factory(self, session: Session) -> None:
        factories = {make_factory(session).id for _ in range(3)}
        programme = make_org(session, OrgKind.programme)
        assert visible(session, principal(programme)) == factories


class TestConsent:
    def test_only_a_consent_to_the_chains_owner_counts(
        self, session: Session, buyer: Organization
    ) -> None:
        factory = make_factory(session)
        link(session, make_supply_chain(session, buyer), factory)
        other = make_buyer(session)
        grant_consent(session, factory, other)
        assert has_consent(session, principal(buyer), factory.id) is False
        grant_consent(session, factory, buyer)
        assert has_consent(session, principal(buyer), factory.id) is True

    def test_another_buyers_consent_does_not_count_through_its_own_chain(
        self, session: Session, buyer: Organization
    ) -> None:
        """The consenting buyer links the factory too, but the caller reads through its own
        chain: the consent belongs to the other buyer."""
        factory = make_factory(session)
        other = make_buyer(session)
        link(session, make_supply_chain(session, buyer), factory)
        link(session, make_supply_chain(session, other), factory)
        grant_consent(session, factory, other)
        assert has_consent(session, principal(buyer), factory.id) is False
        assert has_consent(session, principal(other), factory.id) is True

    def test_a_revoked_consent_no_longer_counts(
        self, session: Session, buyer: Organization
    ) -> None:
        factory = make_factory(session)
        link(session, make_supply_chain(session, buyer), factory)
        consent = grant_consent(session, factory, buyer)
        consent.revoked_at = utcnow()
        session.add(consent)
        session.flush()
        assert has_consent(session, principal(buyer), factory.id) is False

    def test_consent_needs_the_factory_to_be_visible(
        self, session: Session, buyer: Organization
    ) -> None:
        factory = make_factory(session)
        link(session, make_supply_chain(session, buyer), factory, ends_on=TODAY - DAY)
        grant_consent(session, factory, buyer)
        assert has_consent(session, principal(buyer), factory.id) is False

    def test_a_partner_uses_the_consent_given_to_the_buyer_it_acts_for(
        self, session: Session, buyer: Organization
    ) -> None:
        partner = make_org(session, OrgKind.partner)
        delegate(session, buyer, partner)
        factory = make_factory(session)
        link(session, make_supply_chain(session, buyer), factory)
        assert has_consent(session, principal(partner), factory.id) is False
        grant_consent(session, factory, buyer)
        assert has_consent(session, principal(partner), factory.id) is True
