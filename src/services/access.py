"""Who may see what: the one visibility rule, applied in SQL by every list and every detail.

A programme (`admin`) caller sees everything. Any other caller sees a factory only through an
active link in one of the supply chains named in its token, owned by its organisation (or, for a
partner, by a buyer that delegated to it) while that owner's subscription is active. Full findings
also need the factory's consent for the organisation that owns the chain."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, literal, or_, true
from sqlalchemy import select as sa_select
from sqlalchemy.orm import InstrumentedAttribute
from sqlmodel import Session, col, select

from src.db import utcnow
from src.models import (
    AccessLogEntry,
    Client,
    Consent,
    Delegation,
    Factory,
    Organization,
    Subscription,
    SupplyChain,
    SupplyChainLink,
)
from src.models.organizations import OrgKind
from src.services.errors import ConsentRequired, InsufficientScope, NotFound, Unauthenticated
from src.services.tokens import ALL_SUPPLY_CHAINS, AccessClaims


@dataclass(frozen=True)
class Principal:
    """The caller of one request: its client, organisation, scopes and supply chains."""

    client_id: str
    org_id: str
    org_kind: OrgKind
    scopes: frozenset[str]
    supply_chain_ids: tuple[str, ...]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes and self.org_kind == OrgKind.programme

    @property
    def all_supply_chains(self) -> bool:
        """A client created without a list of supply chains reads all of its organisation's."""
        return ALL_SUPPLY_CHAINS in self.supply_chain_ids

    def require(self, scope: str) -> None:
        # `admin` counts only on a programme client, whatever a token claims.
        held = self.is_admin or (scope in self.scopes and scope != "admin")
        if not held:
            raise InsufficientScope(f"This call needs the {scope} scope.")


def resolve_principal(session: Session, claims: AccessClaims) -> Principal:
    """Checked on every request, so a revoked client is refused at once. The organisation is the
    client's own: a token whose `org` claim names another is refused, never trusted."""
    row = session.exec(
        select(Client.revoked_at, Client.org_id, Organization.kind)
        .join(Organization, col(Organization.id) == col(Client.org_id))
        .where(col(Client.id) == claims.client_id)
    ).first()
    if row is None or row[0] is not None:
        raise Unauthenticated("The client behind this token has been revoked.")
    _, org_id, kind = row
    if org_id != claims.org_id:
        raise Unauthenticated("The access token names another organization than its client's.")
    return Principal(
        client_id=claims.client_id,
        org_id=org_id,
        org_kind=OrgKind(kind),
        scopes=claims.scopes,
        supply_chain_ids=claims.supply_chain_ids,
    )


def active_on(
    starts: InstrumentedAttribute[dt.date],
    ends: InstrumentedAttribute[dt.date | None],
    day: dt.date,
) -> ColumnElement[bool]:
    return and_(starts <= day, or_(ends.is_(None), ends >= day))


def subscription_active(org_id_column: Any, day: dt.date) -> ColumnElement[bool]:
    """True where the organisation in `org_id_column` has a subscription running on `day`."""
    return exists().where(
        col(Subscription.org_id) == org_id_column,
        active_on(Subscription.starts_on, Subscription.ends_on, day),  # type: ignore[arg-type]
    )


def _owner_allowed(principal: Principal) -> ColumnElement[bool]:
    if principal.org_kind == OrgKind.partner:
        delegated = sa_select(col(Delegation.buyer_org_id)).where(
            col(Delegation.partner_org_id) == principal.org_id
        )
        return col(SupplyChain.org_id).in_(delegated)
    return col(SupplyChain.org_id) == principal.org_id


def _named_chains(principal: Principal) -> ColumnElement[bool]:
    if principal.all_supply_chains:
        return true()
    return col(SupplyChainLink.supply_chain_id).in_(principal.supply_chain_ids)


def _visible_links(principal: Principal, day: dt.date) -> ColumnElement[bool]:
    """Conditions on SupplyChainLink/SupplyChain rows through which the principal sees a factory."""
    return and_(
        _named_chains(principal),
        active_on(SupplyChainLink.starts_on, SupplyChainLink.ends_on, day),  # type: ignore[arg-type]
        _owner_allowed(principal),
        subscription_active(col(SupplyChain.org_id), day),
    )


def factory_visible(
    principal: Principal, factory_id: ColumnElement[str] | InstrumentedAttribute[str] | None = None
) -> ColumnElement[bool]:
    """A predicate on a factory id column (default `factories.id`): true where the caller sees it."""
    if principal.is_admin:
        return true()
    target = factory_id if factory_id is not None else col(Factory.id)
    return exists().where(
        col(SupplyChainLink.factory_id) == target,
        col(SupplyChain.id) == col(SupplyChainLink.supply_chain_id),
        _visible_links(principal, utcnow().date()),
    )


def consent_granted(
    principal: Principal, factory_id: ColumnElement[str] | InstrumentedAttribute[str] | None = None
) -> ColumnElement[bool]:
    """True where the factory consents to full disclosure to an organisation whose supply chain
    lets the caller see it."""
    if principal.is_admin:
        return true()
    target = factory_id if factory_id is not None else col(Factory.id)
    return exists().where(
        col(Consent.factory_id) == target,
        col(Consent.revoked_at).is_(None),
        col(SupplyChainLink.factory_id) == target,
        col(SupplyChain.id) == col(SupplyChainLink.supply_chain_id),
        col(SupplyChain.org_id) == col(Consent.org_id),
        _visible_links(principal, utcnow().date()),
    )


def get_visible_factory(session: Session, principal: Principal, factory_id: str) -> Factory:
    """The factory, or NotFound, the same whether it does not exist or is hidden."""
    factory = session.exec(
        select(Factory).where(col(Factory.id) == factory_id, factory_visible(principal))
    ).first()
    if factory is None:
        raise not_found_factory(factory_id)
    return factory


def not_found_factory(factory_id: str) -> NotFound:
    return NotFound(f"No factory {factory_id}.")


def has_consent(session: Session, principal: Principal, factory_id: str) -> bool:
    return bool(session.scalar(sa_select(consent_granted(principal, literal(factory_id)))))


def require_consent(session: Session, principal: Principal, factory_id: str) -> None:
    if not has_consent(session, principal, factory_id):
        raise ConsentRequired(
            f"Factory {factory_id} has not consented to show its full findings to your "
            "organisation; its public compliance summary is available."
        )


def log_full_disclosure(
    session: Session, principal: Principal, *, factory_id: str, resource: str, resource_id: str
) -> None:
    """Records a read of full findings; the programme's own reads are not disclosures."""
    if principal.is_admin:
        return
    session.add(
        AccessLogEntry(
            factory_id=factory_id,
            org_id=principal.org_id,
            client_id=principal.client_id,
            resource=resource,
            resource_id=resource_id,
        )
    )


def visible_links(principal: Principal) -> ColumnElement[bool]:
    """Conditions on joined `supply_chain_links`/`supply_chains` rows: the links through which the
    caller sees factories (every link for the programme)."""
    if principal.is_admin:
        return col(SupplyChain.id) == col(SupplyChainLink.supply_chain_id)
    return and_(
        col(SupplyChain.id) == col(SupplyChainLink.supply_chain_id),
        _visible_links(principal, utcnow().date()),
    )


def supply_chain_readable(principal: Principal) -> ColumnElement[bool]:
    """A predicate on `supply_chains`: chains of the caller's organisation (a partner: of buyers
    that delegated to it) named in its token; every chain for the programme."""
    if principal.is_admin:
        return true()
    named = (
        true()
        if principal.all_supply_chains
        else col(SupplyChain.id).in_(principal.supply_chain_ids)
    )
    return and_(_owner_allowed(principal), named)
