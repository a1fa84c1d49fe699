"""Organisations, their subscriptions and partner delegations; and who a token speaks for."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_
from sqlmodel import Session, col, select

from src.db import utcnow
from src.models import Client, Delegation, Organization, Subscription, SupplyChain
from src.models.base import row_values
from src.models.me import MeRead, OrganizationRef
from src.models.organizations import (
    DelegationRead,
    OrganizationCreate,
    OrganizationDetail,
    OrganizationRead,
    OrgKind,
    SubscriptionCreate,
    SubscriptionRead,
)
from src.services.access import Principal, supply_chain_readable
from src.services.errors import InvalidInput, NotFound
from src.services.pagination import Page, paginate


def is_active(subscription: Subscription) -> bool:
    today = utcnow().date()
    ends_on = subscription.ends_on
    return subscription.starts_on <= today and (ends_on is None or ends_on >= today)


def subscription_read(subscription: Subscription) -> SubscriptionRead:
    return SubscriptionRead.model_validate(
        row_values(subscription) | {"active": is_active(subscription)}
    )


def current_subscription(session: Session, org_id: str) -> Subscription | None:
    """The subscription running today (the latest started, if several), else the latest one."""
    subscriptions = session.exec(
        select(Subscription)
        .where(col(Subscription.org_id) == org_id)
        .order_by(col(Subscription.starts_on).desc(), col(Subscription.id).desc())
    ).all()
    running = [subscription for subscription in subscriptions if is_active(subscription)]
    candidates = running or list(subscriptions)
    return candidates[0] if candidates else None


def get_organization_row(session: Session, org_id: str) -> Organization:
    org = session.get(Organization, org_id)
    if org is None:
        raise NotFound(f"No organization {org_id}.")
    return org


def _buyers(session: Session, org_ids: Sequence[str], field: str) -> list[str]:
    """The ids, each checked to name a buyer organisation."""
    wanted = list(dict.fromkeys(org_ids))
    buyers = set(
        session.exec(
            select(Organization.id).where(
                col(Organization.id).in_(wanted), col(Organization.kind) == OrgKind.buyer
            )
        ).all()
    )
    for index, org_id in enumerate(wanted):
        if org_id not in buyers:
            raise InvalidInput.at(f"{field}.{index}", f"{org_id} is not a buyer organization")
    return wanted


def create_organization(session: Session, *, data: OrganizationCreate) -> Organization:
    if data.acts_for and data.kind != OrgKind.partner:
        raise InvalidInput.at("acts_for", "only a partner acts for buyers")
    buyer_ids = _buyers(session, data.acts_for, "acts_for")
    org = Organization(name=data.name, kind=data.kind)
    session.add(org)
    session.flush()
    session.add_all(Delegation(partner_org_id=org.id, buyer_org_id=b) for b in buyer_ids)
    session.flush()
    return org


def list_organizations(
    session: Session, *, kind: OrgKind | None, cursor: str | None, limit: int
) -> Page[OrganizationRead]:
    statement = select(Organization)
    if kind is not None:
        statement = statement.where(col(Organization.kind) == kind)
    page = paginate(
        session,
        statement,
        kind="organizations",
        order_by=[col(Organization.id)],
        types=[str],
        cursor=cursor,
        limit=limit,
    )
    return Page(
        items=[OrganizationRead.model_validate(row_values(org)) for org in page.items],
        next_cursor=page.next_cursor,
    )


def get_organization(session: Session, *, org_id: str) -> OrganizationDetail:
    org = get_organization_row(session, org_id)
    delegations = session.exec(
        select(Delegation)
        .where(
            or_(col(Delegation.partner_org_id) == org.id, col(Delegation.buyer_org_id) == org.id)
        )
        .order_by(col(Delegation.partner_org_id), col(Delegation.buyer_org_id))
    ).all()
    subscription = current_subscription(session, org.id)
    return OrganizationDetail.model_validate(
        row_values(org)
        | {
            "delegations": [DelegationRead.model_validate(row_values(d)) for d in delegations],
            "subscription": None if subscription is None else subscription_read(subscription),
        }
    )


def create_subscription(
    session: Session, *, org_id: str, data: SubscriptionCreate
) -> SubscriptionRead:
    org = get_organization_row(session, org_id)
    if org.kind != OrgKind.buyer:
        raise InvalidInput(
            f"Only buyers subscribe; {org.id} is a {org.kind}.",
        )
    subscription = Subscription(
        org_id=org.id, tier=data.tier, starts_on=data.starts_on, ends_on=data.ends_on
    )
    session.add(subscription)
    session.flush()
    return subscription_read(subscription)


def list_subscriptions(
    session: Session, *, org_id: str, cursor: str | None, limit: int
) -> Page[SubscriptionRead]:
    get_organization_row(session, org_id)
    page = paginate(
        session,
        select(Subscription).where(col(Subscription.org_id) == org_id),
        kind="subscriptions",
        order_by=[col(Subscription.id)],
        types=[str],
        cursor=cursor,
        limit=limit,
    )
    return Page(items=[subscription_read(s) for s in page.items], next_cursor=page.next_cursor)


def describe_principal(session: Session, principal: Principal) -> MeRead:
    client = session.get_one(Client, principal.client_id)
    org = session.get_one(Organization, principal.org_id)
    subscription = current_subscription(session, org.id)
    # The programme reads every chain there is: naming them all would be unbounded.
    chains = (
        []
        if principal.is_admin
        else session.exec(
            select(SupplyChain.id)
            .where(supply_chain_readable(principal))
            .order_by(col(SupplyChain.id))
        ).all()
    )
    return MeRead(
        client_id=client.id,
        client_name=client.name,
        organization=OrganizationRef(id=org.id, name=org.name, kind=org.kind),
        scopes=sorted(principal.scopes),
        supply_chains=list(chains),
        all_supply_chains=principal.is_admin or principal.all_supply_chains,
        subscription=None if subscription is None else subscription_read(subscription),
    )
