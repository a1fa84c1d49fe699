"""Who may see what: the one visibility rule, applied in SQL by every list and every detail.

A programme (`admin`) caller sees everything. Any other caller sees a factory only through an
active link in one of the supply chains named in its token, owned by its organisation (or, for a
partner, by a buyer that delegated to it) while that owner's subscription is active. Full findings
also need the factory's consent for the organisation that owns the chain."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Select,
    String,
    and_,
    bindparam,
    exists,
    literal,
    or_,
    true,
)
from sqlalchemy import select as sa_select
from sqlalchemy.orm import InstrumentedAttribute, Mapped
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
from src.prepared_reads import Reader, Reads, read_with
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


_CLIENT_ROW = (
    sa_select(col(Client.revoked_at), col(Client.org_id), col(Organization.kind))
    .join(Organization, col(Organization.id) == col(Client.org_id))
    .where(col(Client.id) == bindparam("client_id"))
)


CLIENT_STANDS = exists().where(
    col(Client.id) == bindparam("client_id", type_=String), col(Client.revoked_at).is_(None)
)
"""True while the client in the `client_id` parameter is not revoked: a statement that checks
its caller's client itself returns no row once it is (see `standing_client`)."""


def standing_client(client_id: str) -> Reads[tuple[str, str]]:
    """The client's organisation and its kind; `Unauthenticated` once the client is revoked."""
    rows = yield _CLIENT_ROW, {"client_id": client_id}
    if not rows or rows[0][0] is not None:
        raise client_revoked()
    _, org_id, kind = rows[0]
    return org_id, kind


def resolve_principal(reader: Reader, claims: AccessClaims) -> Principal:
    """Checked on every request, so a revoked client is refused at once. The organisation is the
    client's own: a token whose `org` claim names another is refused, never trusted."""
    org_id, kind = read_with(reader, standing_client(claims.client_id))
    if org_id != claims.org_id:
        raise Unauthenticated("The access token names another organization than its client's.")
    return Principal(
        client_id=claims.client_id,
        org_id=org_id,
        org_kind=OrgKind(kind),
        scopes=claims.scopes,
        supply_chain_ids=claims.supply_chain_ids,
    )


def client_revoked() -> Unauthenticated:
    return Unauthenticated("The client behind this token has been revoked.")


def active_on(
    starts: InstrumentedAttribute[dt.date],
    ends: InstrumentedAttribute[dt.date | None],
    day: dt.date | ColumnElement[dt.date],
) -> ColumnElement[bool]:
    return and_(starts <= day, or_(ends.is_(None), ends >= day))


def subscription_active(
    org_id_column: Any, day: dt.date | ColumnElement[dt.date]
) -> ColumnElement[bool]:
    """True where the organisation in `org_id_column` has a subscription running on `day`."""
    return exists().where(
        col(Subscription.org_id) == org_id_column,
        active_on(Subscription.starts_on, Subscription.ends_on, day),  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class Visibility:
    """The shape of a caller's visibility rule; with `visibility_params` it makes the predicate.
    Hot reads build one statement per shape, once, with bind parameters for the caller."""

    admin: bool
    partner: bool
    all_supply_chains: bool


def visibility_of(principal: Principal) -> Visibility:
    return Visibility(
        admin=principal.is_admin,
        partner=principal.org_kind == OrgKind.partner,
        all_supply_chains=principal.all_supply_chains,
    )


VISIBLE_ORG = bindparam("visible_org_id", type_=String)
VISIBLE_CHAINS = bindparam("visible_chain_ids", expanding=True, type_=String)
VISIBLE_ON = bindparam("visible_on", type_=Date)


def visibility_params(principal: Principal) -> dict[str, Any]:
    """The values of the bind parameters in the `*_bound` predicates, for today."""
    return {
        "visible_org_id": principal.org_id,
        "visible_chain_ids": list(principal.supply_chain_ids),
        "visible_on": utcnow().date(),
    }


@dataclass(frozen=True)
class _Operands:
    org_id: str | ColumnElement[str]
    chain_ids: Sequence[str] | ColumnElement[str]
    day: dt.date | ColumnElement[dt.date]


def _literal_operands(principal: Principal) -> _Operands:
    return _Operands(principal.org_id, principal.supply_chain_ids, utcnow().date())


BOUND = _Operands(VISIBLE_ORG, VISIBLE_CHAINS, VISIBLE_ON)


def delegating_buyers(partner_org_id: str | ColumnElement[str]) -> Select[str]:
    """The organisations a partner acts for: the buyers that delegated to it."""
    return sa_select(col(Delegation.buyer_org_id)).where(
        col(Delegation.partner_org_id) == partner_org_id
    )


def chains_usable_by(session: Session, org_id: str, chain_ids: Sequence[str]) -> set[str]:
    """Of these supply chains, the ones an organisation may name: its own, and a partner's
    delegating buyers'."""
    return set(
        session.exec(
            select(SupplyChain.id).where(
                col(SupplyChain.id).in_(chain_ids),
                (col(SupplyChain.org_id) == org_id)
                | col(SupplyChain.org_id).in_(delegating_buyers(org_id)),
            )
        ).all()
    )


def _owner_allowed(shape: Visibility, operands: _Operands) -> ColumnElement[bool]:
    if shape.partner:
        return col(SupplyChain.org_id).in_(delegating_buyers(operands.org_id))
    return col(SupplyChain.org_id) == operands.org_id


def _visible_chain_ids(shape: Visibility, operands: _Operands) -> Select[str]:
    """The supply chains through whose links the caller sees factories."""
    named = true() if shape.all_supply_chains else col(SupplyChain.id).in_(operands.chain_ids)
    return sa_select(col(SupplyChain.id)).where(
        named,
        _owner_allowed(shape, operands),
        subscription_active(col(SupplyChain.org_id), operands.day),
    )


def _visible_links(shape: Visibility, operands: _Operands) -> ColumnElement[bool]:
    """Conditions on a SupplyChainLink row through which the principal sees a factory. The chains
    are an uncorrelated subquery, which the database reads once per statement: checking each
    link's chain and its owner's subscription again took SQLite's page walk twice as long."""
    return and_(
        col(SupplyChainLink.supply_chain_id).in_(_visible_chain_ids(shape, operands)),
        active_on(SupplyChainLink.starts_on, SupplyChainLink.ends_on, operands.day),  # type: ignore[arg-type]
    )


FactoryIdColumn = ColumnElement[str] | InstrumentedAttribute[str]
_Target = FactoryIdColumn | Mapped[str]


def _factory_visible(
    shape: Visibility, operands: _Operands, target: _Target
) -> ColumnElement[bool]:
    if shape.admin:
        return true()
    return exists().where(
        col(SupplyChainLink.factory_id) == target, _visible_links(shape, operands)
    )


def _consent_granted(
    shape: Visibility, operands: _Operands, target: _Target
) -> ColumnElement[bool]:
    if shape.admin:
        return true()
    return exists().where(
        col(Consent.factory_id) == target,
        col(Consent.revoked_at).is_(None),
        col(SupplyChainLink.factory_id) == target,
        col(SupplyChain.id) == col(SupplyChainLink.supply_chain_id),
        col(SupplyChain.org_id) == col(Consent.org_id),
        _visible_links(shape, operands),
    )


def factory_visible(
    principal: Principal, factory_id: FactoryIdColumn | None = None
) -> ColumnElement[bool]:
    """A predicate on a factory id column (default `factories.id`): true where the caller sees it."""
    target = factory_id if factory_id is not None else col(Factory.id)
    return _factory_visible(visibility_of(principal), _literal_operands(principal), target)


def consent_granted(
    principal: Principal, factory_id: FactoryIdColumn | None = None
) -> ColumnElement[bool]:
    """True where the factory consents to full disclosure to an organisation whose supply chain
    lets the caller see it."""
    target = factory_id if factory_id is not None else col(Factory.id)
    return _consent_granted(visibility_of(principal), _literal_operands(principal), target)


def factory_visible_bound(shape: Visibility, factory_id: _Target) -> ColumnElement[bool]:
    """`factory_visible` for a caller of this shape, with `visibility_params` bound at execution."""
    return _factory_visible(shape, BOUND, factory_id)


def consent_granted_bound(shape: Visibility, factory_id: _Target) -> ColumnElement[bool]:
    """`consent_granted` for a caller of this shape, with `visibility_params` bound at execution."""
    return _consent_granted(shape, BOUND, factory_id)


def visible_chain_ids_bound(shape: Visibility) -> Select[str]:
    """The ids of the supply chains through whose links a caller of this shape (not the
    programme) sees factories, with `visibility_params` bound at execution."""
    return _visible_chain_ids(shape, BOUND)


def visible_links_bound(shape: Visibility) -> ColumnElement[bool]:
    """Conditions on a `supply_chain_links` row: the links through which a caller of this shape
    sees factories (every link for the programme), with `visibility_params` bound at execution."""
    if shape.admin:
        return true()
    return _visible_links(shape, BOUND)


def get_visible_factory(session: Session, principal: Principal, factory_id: str) -> Factory:
    """The factory, or NotFound, the same whether it does not exist or is hidden."""
    factory = session.exec(
        select(Factory).where(col(Factory.id) == factory_id, factory_visible(principal))
    ).first()
    if factory is None:
        raise not_found_factory()
    return factory


def not_found_factory() -> NotFound:
    # The same words for every id: the answer for a hidden factory and a missing one must match.
    return NotFound("No factory with this id.")


def has_consent(session: Session, principal: Principal, factory_id: str) -> bool:
    return bool(session.scalar(sa_select(consent_granted(principal, literal(factory_id)))))


def require_consent(session: Session, principal: Principal, factory_id: str) -> None:
    if not has_consent(session, principal, factory_id):
        raise ConsentRequired(
            f"Factory {factory_id} has not consented to show its full findings to your "
            "organisation; its public compliance summary is available."
        )


def disclosure_values(
    principal: Principal, *, factory_id: str, resource: str, resource_id: str
) -> dict[str, Any] | None:
    """The access log row for a read of full findings, stamped now; none for the programme,
    whose own reads are not disclosures."""
    if principal.is_admin:
        return None
    return {
        "factory_id": factory_id,
        "org_id": principal.org_id,
        "client_id": principal.client_id,
        "resource": resource,
        "resource_id": resource_id,
        "created_at": utcnow(),
    }


def log_full_disclosure(
    session: Session, principal: Principal, *, factory_id: str, resource: str, resource_id: str
) -> None:
    """Records a read of full findings in the read's own transaction."""
    values = disclosure_values(
        principal, factory_id=factory_id, resource=resource, resource_id=resource_id
    )
    if values is not None:
        session.add(AccessLogEntry(**values))


def _supply_chain_readable(shape: Visibility, operands: _Operands) -> ColumnElement[bool]:
    if shape.admin:
        return true()
    named = true() if shape.all_supply_chains else col(SupplyChain.id).in_(operands.chain_ids)
    return and_(_owner_allowed(shape, operands), named)


def supply_chain_readable(principal: Principal) -> ColumnElement[bool]:
    """A predicate on `supply_chains`: chains of the caller's organisation (a partner: of buyers
    that delegated to it) named in its token; every chain for the programme."""
    return _supply_chain_readable(visibility_of(principal), _literal_operands(principal))


def supply_chain_readable_bound(shape: Visibility) -> ColumnElement[bool]:
    """`supply_chain_readable` for a caller of this shape, with `visibility_params` bound at
    execution."""
    return _supply_chain_readable(shape, BOUND)
