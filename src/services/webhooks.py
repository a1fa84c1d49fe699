"""Webhook endpoints: registration (URL checked against SSRF), secrets and their rotation, the
delivery log and manual retries. An organisation sees only its own endpoints."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from src.config import Settings
from src.db import utcnow
from src.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint
from src.models.webhooks import (
    DeliveryAttemptRead,
    DeliveryRead,
    DeliveryStatus,
    WebhookEndpointCreate,
    WebhookEndpointRead,
    WebhookEndpointUpdate,
    WebhookEndpointWithSecret,
)
from src.services.access import Principal, chains_usable_by
from src.services.errors import Conflict, InvalidInput, NotFound
from src.services.events import EventType
from src.services.pagination import Page, paginate
from src.services.ssrf import UnsafeDestination, resolve_destination

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24
SECRET_OVERLAP = dt.timedelta(hours=24)
RESPONSE_BODY_LIMIT = 1024
SUBSCRIBABLE_TYPES = tuple(t.value for t in EventType if t != EventType.webhook_test)


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signing_secrets(endpoint: WebhookEndpoint, now: dt.datetime) -> list[str]:
    """The current secret, and the one before a rotation while its 24 hours last."""
    keys = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        keys.append(endpoint.previous_secret)
    return keys


def endpoint_read(endpoint: WebhookEndpoint) -> WebhookEndpointRead:
    return WebhookEndpointRead.model_validate(endpoint, from_attributes=True)


def _with_secret(endpoint: WebhookEndpoint) -> WebhookEndpointWithSecret:
    return WebhookEndpointWithSecret.model_validate(endpoint, from_attributes=True)


def _check_url(url: str, settings: Settings) -> None:
    try:
        resolve_destination(url, settings)
    except UnsafeDestination as exc:
        raise InvalidInput.at("url", f"The URL {exc}.") from None


def _check_event_types(event_types: Sequence[str]) -> list[str]:
    for index, event_type in enumerate(event_types):
        if event_type not in SUBSCRIBABLE_TYPES:
            raise InvalidInput.at(
                f"event_types.{index}",
                f"unknown event type {event_type!r}; known: {', '.join(SUBSCRIBABLE_TYPES)}",
            )
    return list(dict.fromkeys(event_types))


def _check_supply_chains(
    session: Session, principal: Principal, chain_ids: Sequence[str]
) -> list[str]:
    """The chains an endpoint may filter on: its organisation's (a partner's: its delegating
    buyers'), and among those only the ones the caller's token names. An empty filter from a
    token limited to some chains becomes those chains, so an endpoint never sees more than the
    client that made it."""
    wanted = list(dict.fromkeys(chain_ids))
    if not wanted:
        return [] if principal.all_supply_chains else list(principal.supply_chain_ids)
    usable = chains_usable_by(session, principal.org_id, wanted)
    if not principal.all_supply_chains:
        usable &= set(principal.supply_chain_ids)
    for index, chain_id in enumerate(wanted):
        if chain_id not in usable:
            raise InvalidInput.at(
                f"supply_chain_ids.{index}", f"{chain_id} is not one of your supply chains"
            )
    return wanted


def create_endpoint(
    session: Session, *, principal: Principal, data: WebhookEndpointCreate, settings: Settings
) -> WebhookEndpointWithSecret:
    _check_url(data.url, settings)
    endpoint = WebhookEndpoint(
        org_id=principal.org_id,
        url=data.url,
        description=data.description,
        event_types=_check_event_types(data.event_types),
        supply_chain_ids=_check_supply_chains(session, principal, data.supply_chain_ids),
        enabled=data.enabled,
        secret=new_secret(),
    )
    session.add(endpoint)
    session.flush()
    return _with_secret(endpoint)


def get_endpoint(session: Session, *, principal: Principal, endpoint_id: str) -> WebhookEndpoint:
    """The organisation's endpoint, or NotFound, the same for another organisation's."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.org_id != principal.org_id:
        raise NotFound(f"No webhook endpoint {endpoint_id}.")
    return endpoint


def list_endpoints(
    session: Session, *, principal: Principal, cursor: str | None, limit: int
) -> Page[WebhookEndpointRead]:
    page = paginate(
        session,
        select(WebhookEndpoint).where(col(WebhookEndpoint.org_id) == principal.org_id),
        kind="webhook-endpoints",
        order_by=[col(WebhookEndpoint.id)],
        types=[str],
        cursor=cursor,
        limit=limit,
    )
    return Page(items=[endpoint_read(e) for e in page.items], next_cursor=page.next_cursor)


def update_endpoint(
    session: Session,
    *,
    principal: Principal,
    endpoint_id: str,
    data: WebhookEndpointUpdate,
    settings: Settings,
) -> WebhookEndpointRead:
    endpoint = get_endpoint(session, principal=principal, endpoint_id=endpoint_id)
    changes: dict[str, Any] = data.model_dump(exclude_unset=True)
    for name in ("url", "event_types", "supply_chain_ids", "enabled", "description"):
        if name in changes and changes[name] is None:
            raise InvalidInput.at(name, "may not be null")
    if "url" in changes:
        _check_url(changes["url"], settings)
    if "event_types" in changes:
        changes["event_types"] = _check_event_types(changes["event_types"])
    if "supply_chain_ids" in changes:
        changes["supply_chain_ids"] = _check_supply_chains(
            session, principal, changes["supply_chain_ids"]
        )
    if changes.get("enabled") and not endpoint.enabled:
        endpoint.disabled_reason = None
        endpoint.failing_since = None
    for name, value in changes.items():
        setattr(endpoint, name, value)
    endpoint.updated_at = utcnow()
    session.add(endpoint)
    session.flush()
    return endpoint_read(endpoint)


def delete_endpoint(session: Session, *, principal: Principal, endpoint_id: str) -> None:
    endpoint = get_endpoint(session, principal=principal, endpoint_id=endpoint_id)
    deliveries = select(Delivery.id).where(col(Delivery.endpoint_id) == endpoint.id)
    session.execute(
        DeliveryAttempt.__table__.delete().where(  # type: ignore[attr-defined]
            col(DeliveryAttempt.delivery_id).in_(deliveries)
        )
    )
    session.execute(
        Delivery.__table__.delete().where(  # type: ignore[attr-defined]
            col(Delivery.endpoint_id) == endpoint.id
        )
    )
    session.delete(endpoint)
    session.flush()


def rotate_secret(
    session: Session, *, principal: Principal, endpoint_id: str
) -> WebhookEndpointWithSecret:
    endpoint = get_endpoint(session, principal=principal, endpoint_id=endpoint_id)
    now = utcnow()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + SECRET_OVERLAP
    endpoint.secret = new_secret()
    endpoint.updated_at = now
    session.add(endpoint)
    session.flush()
    return _with_secret(endpoint)


def _delivery_reads(session: Session, rows: Sequence[Any]) -> list[DeliveryRead]:
    """Deliveries (with their event type) and every attempt of each, in one more query."""
    ids = [delivery.id for delivery, _ in rows]
    history: dict[str, list[DeliveryAttemptRead]] = defaultdict(list)
    if ids:
        attempts = session.exec(
            select(DeliveryAttempt)
            .where(col(DeliveryAttempt.delivery_id).in_(ids))
            .order_by(col(DeliveryAttempt.id))
        ).all()
        for attempt in attempts:
            history[attempt.delivery_id].append(
                DeliveryAttemptRead.model_validate(attempt, from_attributes=True)
            )
    return [
        DeliveryRead(
            id=delivery.id,
            event_id=delivery.event_id,
            event_type=event_type,
            status=delivery.status,
            attempts=delivery.attempts,
            next_attempt_at=delivery.next_attempt_at,
            last_response_code=delivery.last_response_code,
            created_at=delivery.created_at,
            updated_at=delivery.updated_at,
            history=history[delivery.id],
        )
        for delivery, event_type in rows
    ]


def _deliveries_of(endpoint_id: str) -> Any:
    return (
        select(Delivery, Event.type)
        .join(Event, col(Event.id) == col(Delivery.event_id))
        .where(col(Delivery.endpoint_id) == endpoint_id)
    )


def list_deliveries(
    session: Session,
    *,
    principal: Principal,
    endpoint_id: str,
    status: DeliveryStatus | None,
    cursor: str | None,
    limit: int,
) -> Page[DeliveryRead]:
    endpoint = get_endpoint(session, principal=principal, endpoint_id=endpoint_id)
    statement = _deliveries_of(endpoint.id)
    if status is not None:
        statement = statement.where(col(Delivery.status) == status)
    page = paginate(
        session,
        statement,
        kind="deliveries",
        order_by=[col(Delivery.id)],
        types=[str],
        cursor=cursor,
        limit=limit,
        scalars=False,
        key_of=lambda row: [row[0].id],
    )
    return Page(items=_delivery_reads(session, page.items), next_cursor=page.next_cursor)


def get_delivery(
    session: Session, *, principal: Principal, endpoint_id: str, delivery_id: str
) -> DeliveryRead:
    endpoint = get_endpoint(session, principal=principal, endpoint_id=endpoint_id)
    row = session.exec(_deliveries_of(endpoint.id).where(col(Delivery.id) == delivery_id)).first()
    if row is None:
        raise NotFound(f"No delivery {delivery_id} for endpoint {endpoint_id}.")
    return _delivery_reads(session, [row])[0]


def _require_enabled(endpoint: WebhookEndpoint) -> None:
    if not endpoint.enabled:
        raise Conflict(f"Endpoint {endpoint.id} is disabled; enable it before retrying.")


def retry_delivery(
    session: Session, *, principal: Principal, endpoint_id: str, delivery_id: str
) -> DeliveryRead:
    """Makes the delivery due now; the worker sends it with the same `webhook-id`."""
    endpoint = get_endpoint(session, principal=principal, endpoint_id=endpoint_id)
    _require_enabled(endpoint)
    delivery = session.get(Delivery, delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint.id:
        raise NotFound(f"No delivery {delivery_id} for endpoint {endpoint_id}.")
    if delivery.status == DeliveryStatus.succeeded:
        raise Conflict(f"Delivery {delivery_id} has already succeeded.")
    now = utcnow()
    delivery.status = DeliveryStatus.pending
    delivery.next_attempt_at = now
    delivery.updated_at = now
    session.add(delivery)
    session.flush()
    return get_delivery(
        session, principal=principal, endpoint_id=endpoint_id, delivery_id=delivery_id
    )


def retry_failed(
    session: Session, *, principal: Principal, endpoint_id: str, since: dt.datetime
) -> int:
    """Makes every failed delivery created at or after `since` due now; answers how many."""
    endpoint = get_endpoint(session, principal=principal, endpoint_id=endpoint_id)
    _require_enabled(endpoint)
    now = utcnow()
    result = session.execute(
        update(Delivery)
        .where(
            col(Delivery.endpoint_id) == endpoint.id,
            col(Delivery.status) == DeliveryStatus.failed,
            col(Delivery.created_at) >= since,
        )
        .values(status=DeliveryStatus.pending, next_attempt_at=now, updated_at=now)
    )
    session.flush()
    return int(result.rowcount)  # type: ignore[attr-defined]
