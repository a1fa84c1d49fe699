"""Organisations and their subscriptions."""

from __future__ import annotations

from sqlmodel import Session, col, select

from src.db import utcnow
from src.models import Client, Organization, Subscription
from src.models.me import MeRead, OrganizationRef, SubscriptionRead
from src.services.access import Principal


def latest_subscription(session: Session, org_id: str) -> Subscription | None:
    return session.exec(
        select(Subscription)
        .where(col(Subscription.org_id) == org_id)
        .order_by(col(Subscription.starts_on).desc())
    ).first()


def is_active(subscription: Subscription) -> bool:
    today = utcnow().date()
    ends_on = subscription.ends_on
    return subscription.starts_on <= today and (ends_on is None or ends_on >= today)


def describe_principal(session: Session, principal: Principal) -> MeRead:
    client = session.get_one(Client, principal.client_id)
    org = session.get_one(Organization, principal.org_id)
    subscription = latest_subscription(session, org.id)
    return MeRead(
        client_id=client.id,
        client_name=client.name,
        organization=OrganizationRef(id=org.id, name=org.name, kind=org.kind),
        scopes=sorted(principal.scopes),
        supply_chains=list(principal.supply_chain_ids),
        subscription=None
        if subscription is None
        else SubscriptionRead(
            id=subscription.id,
            tier=subscription.tier,
            starts_on=subscription.starts_on,
            ends_on=subscription.ends_on,
            active=is_active(subscription),
        ),
    )
