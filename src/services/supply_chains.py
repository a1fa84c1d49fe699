"""Supply chains and their factory links. A caller reads and writes only the chains of its own
organisation (a partner: of the buyers that delegated to it; the programme: all) that its token
names; any other chain answers NotFound, exactly like a missing one."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from src.db import flush_refused, utc_day, utcnow
from src.models import Delegation, Factory, Organization, SupplyChain, SupplyChainLink
from src.models.base import row_values
from src.models.organizations import OrgKind
from src.models.supply_chains import (
    LinkCreate,
    LinkedFactory,
    LinkRead,
    SupplyChainCreate,
    SupplyChainRead,
    SupplyChainUpdate,
)
from src.services.access import Principal, supply_chain_readable
from src.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from src.services.events import EventType, emit
from src.services.pagination import Page, paginate


def chain_read(chain: SupplyChain) -> SupplyChainRead:
    return SupplyChainRead.model_validate(row_values(chain))


def get_chain_row(session: Session, *, principal: Principal, chain_id: str) -> SupplyChain:
    chain = session.exec(
        select(SupplyChain).where(col(SupplyChain.id) == chain_id, supply_chain_readable(principal))
    ).first()
    if chain is None:
        raise NotFound(f"No supply chain {chain_id}.")
    return chain


def list_supply_chains(
    session: Session, *, principal: Principal, cursor: str | None, limit: int
) -> Page[SupplyChainRead]:
    page = paginate(
        session,
        select(SupplyChain).where(supply_chain_readable(principal)),
        kind="supply-chains",
        order_by=[col(SupplyChain.id)],
        types=[str],
        cursor=cursor,
        limit=limit,
    )
    return Page(items=[chain_read(chain) for chain in page.items], next_cursor=page.next_cursor)


def _owner(session: Session, principal: Principal, org_id: str | None) -> str:
    """The buyer that will own a new chain: the caller's organisation unless it names another it
    may write for (the programme must name one)."""
    if org_id is None:
        if principal.org_kind != OrgKind.buyer:
            raise InvalidInput.at("org_id", "name the buyer organization that owns the chain")
        return principal.org_id
    buyer = session.get(Organization, org_id)
    allowed = (
        principal.is_admin
        or org_id == principal.org_id
        or session.get(Delegation, (principal.org_id, org_id)) is not None
    )
    if buyer is None or buyer.kind != OrgKind.buyer or not allowed:
        raise InvalidInput.at("org_id", f"{org_id} is not a buyer organization you act for")
    return buyer.id


def create_supply_chain(
    session: Session, *, principal: Principal, data: SupplyChainCreate
) -> SupplyChainRead:
    if not (principal.is_admin or principal.all_supply_chains):
        # A token limited to named chains could not read the chain it made.
        raise Forbidden(
            "This client is limited to named supply chains; only a client for all of its "
            "organization's chains can create one."
        )
    chain = SupplyChain(
        org_id=_owner(session, principal, data.org_id),
        name=data.name,
        description=data.description,
    )
    session.add(chain)
    session.flush()
    return chain_read(chain)


def get_supply_chain(session: Session, *, principal: Principal, chain_id: str) -> SupplyChainRead:
    return chain_read(get_chain_row(session, principal=principal, chain_id=chain_id))


def update_supply_chain(
    session: Session, *, principal: Principal, chain_id: str, data: SupplyChainUpdate
) -> SupplyChainRead:
    chain = get_chain_row(session, principal=principal, chain_id=chain_id)
    changes: dict[str, Any] = data.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None:
            raise InvalidInput.at(name, "may not be null")
        setattr(chain, name, value)
    chain.updated_at = utcnow()
    session.add(chain)
    session.flush()
    return chain_read(chain)


def _link_read(link: SupplyChainLink, factory: Factory) -> LinkRead:
    return LinkRead.model_validate(
        row_values(link)
        | {"factory": LinkedFactory(id=factory.id, name=factory.name, country=factory.country)}
    )


def _links_statement(chain_id: str) -> Any:
    return (
        select(SupplyChainLink, Factory)
        .join(Factory, col(Factory.id) == col(SupplyChainLink.factory_id))
        .where(col(SupplyChainLink.supply_chain_id) == chain_id)
    )


def list_links(
    session: Session, *, principal: Principal, chain_id: str, cursor: str | None, limit: int
) -> Page[LinkRead]:
    chain = get_chain_row(session, principal=principal, chain_id=chain_id)
    page = paginate(
        session,
        _links_statement(chain.id),
        kind="supply-chain-links",
        order_by=[col(SupplyChainLink.factory_id)],
        types=[str],
        cursor=cursor,
        limit=limit,
        scalars=False,
        key_of=lambda row: [row[0].factory_id],
    )
    return Page(
        items=[_link_read(link, factory) for link, factory in page.items],
        next_cursor=page.next_cursor,
    )


def _get_link(session: Session, chain_id: str, factory_id: str) -> tuple[SupplyChainLink, Factory]:
    row = session.exec(
        _links_statement(chain_id).where(col(SupplyChainLink.factory_id) == factory_id)
    ).first()
    if row is None:
        raise NotFound(f"Factory {factory_id} is not linked in supply chain {chain_id}.")
    return row[0], row[1]


def get_link(session: Session, *, principal: Principal, chain_id: str, factory_id: str) -> LinkRead:
    chain = get_chain_row(session, principal=principal, chain_id=chain_id)
    return _link_read(*_get_link(session, chain.id, factory_id))


def _find_factory(session: Session, data: LinkCreate) -> Factory:
    """The factory the body names by id, Open Supply Hub id or programme code."""
    for field, column in (
        ("factory_id", Factory.id),
        ("os_id", Factory.os_id),
        ("programme_code", Factory.programme_code),
    ):
        value = getattr(data, field)
        if value:
            factory = session.exec(select(Factory).where(col(column) == value)).first()
            if factory is None:
                raise InvalidInput.at(field, f"no factory has {field} {value}")
            return factory
    raise InvalidInput.at("factory_id", "give one of factory_id, os_id or programme_code")


def _event_data(chain: SupplyChain, link: SupplyChainLink) -> dict[str, Any]:
    return {
        "supply_chain_id": chain.id,
        "org_id": chain.org_id,
        "factory_id": link.factory_id,
        "supplier_code": link.supplier_code,
    }


def create_link(
    session: Session, *, principal: Principal, chain_id: str, data: LinkCreate
) -> LinkRead:
    chain = get_chain_row(session, principal=principal, chain_id=chain_id)
    factory = _find_factory(session, data)
    starts_on = data.starts_on or utcnow().date()
    if data.ends_on is not None and data.ends_on < starts_on:
        raise InvalidInput.at("ends_on", "must be on or after starts_on")
    clash = session.exec(
        select(SupplyChainLink.factory_id, SupplyChainLink.supplier_code).where(
            col(SupplyChainLink.supply_chain_id) == chain.id,
            (col(SupplyChainLink.factory_id) == factory.id)
            | (col(SupplyChainLink.supplier_code) == data.supplier_code),
        )
    ).all()
    chain_id, factory_id = chain.id, factory.id
    if any(linked == factory_id for linked, _ in clash):
        raise _link_conflict(chain_id, factory_id, data.supplier_code, "factory_id")
    if clash:
        raise _link_conflict(chain_id, factory_id, data.supplier_code, "supplier_code")
    link = SupplyChainLink(
        supply_chain_id=chain_id,
        factory_id=factory_id,
        supplier_code=data.supplier_code,
        starts_on=starts_on,
        ends_on=data.ends_on,
    )
    session.add(link)
    if (refused := flush_refused(session)) is not None:  # linked by another request meanwhile
        clashing = "supplier_code" if "supplier_code" in refused else "factory_id"
        raise _link_conflict(chain_id, factory_id, data.supplier_code, clashing)
    _seen_otherwise(session, factory, at=utcnow())
    emit(
        session,
        EventType.supply_chain_factory_linked,
        _event_data(chain, link),
        factory_id=factory.id,
        org_id=chain.org_id,
    )
    return _link_read(link, factory)


def _seen_otherwise(session: Session, factory: Factory, *, at: dt.datetime) -> None:
    """A link written, or come into or out of force, changes what its chain's readers see of the
    factory (whether they see it, its supplier codes): the factory counts as changed, so that a
    sync by `updated_since` (which compares the factory's `updated_at`) fetches it again."""
    factory.updated_at = at
    session.add(factory)


def touch_factories_of_links_turning(session: Session, *, now: dt.datetime) -> int:
    """The factories a link has brought into or out of its chain's view (a link dated to start
    or end later changes what its readers see with no write) whose `updated_at` has not moved
    since that day began: each moves to `now` (`_seen_otherwise`). Answers how many moved. The
    worker runs it hourly; a factory moves once a turn, however long the worker was stopped."""
    link = SupplyChainLink
    today = now.date()
    last_moved = utc_day(col(link.factory_updated_at))
    turned_ids = select(link.factory_id).where(
        or_(
            and_(col(link.starts_on) <= today, last_moved < col(link.starts_on)),
            # In force through `ends_on`: out of view from the day after.
            and_(col(link.ends_on) < today, last_moved <= col(link.ends_on)),
        )
    )
    turned = session.exec(select(Factory).where(col(Factory.id).in_(turned_ids))).all()
    for factory in turned:
        _seen_otherwise(session, factory, at=now)
    session.flush()
    return len(turned)


def _link_conflict(chain_id: str, factory_id: str, supplier_code: str, field: str) -> Conflict:
    if field == "factory_id":
        return Conflict(f"Factory {factory_id} is already linked in supply chain {chain_id}.")
    return Conflict(f"Supplier code {supplier_code} is already used in supply chain {chain_id}.")


def delete_link(session: Session, *, principal: Principal, chain_id: str, factory_id: str) -> None:
    chain = get_chain_row(session, principal=principal, chain_id=chain_id)
    link, factory = _get_link(session, chain.id, factory_id)
    _seen_otherwise(session, factory, at=utcnow())
    # Addressed to the chain's owner only: once unlinked the factory may be invisible to it, and
    # an event tied to the factory would then never reach the one organisation it concerns.
    emit(
        session,
        EventType.supply_chain_factory_unlinked,
        _event_data(chain, link),
        org_id=chain.org_id,
    )
    session.delete(link)
    session.flush()
