"""Webhook delivery: fan events out into deliveries, lease the due ones, build their messages, and
record each attempt with its retry (sending one is `src.services.webhook_sending`'s).

Every step that touches the database is a plain function over a session, so the worker
(`src.worker`) can run them in short transactions and a test can drive them with its own clock.
Several workers share the work on PostgreSQL: a claim locks due rows with `FOR UPDATE SKIP LOCKED`
and leases them until `lease_expires_at`; a worker that dies leaves its leases to expire, and
another sends those deliveries again (delivery is at least once; receivers dedupe on
`webhook-id`). On SQLite the claim is one atomic `UPDATE`, but SQLite has a single writer, so run
one worker there."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import bindparam, insert, or_, select, text, update
from sqlmodel import Session, col

from src.config import Settings
from src.db import utcnow
from src.models import Delivery, DeliveryAttempt, Event, Organization, WebhookEndpoint
from src.models.organizations import OrgKind
from src.models.webhooks import DeliveryRead, DeliveryStatus
from src.services.access import Principal
from src.services.event_feed import RELAYED_TO_PARTNERS, event_data, receivable, stored_summaries
from src.services.events import EventType, emit
from src.services.tokens import ALL_SUPPLY_CHAINS
from src.services.webhook_sending import MAX_RETRY_AFTER, Outcome, Outgoing, deliver_alone
from src.services.webhooks import (
    get_delivery,
    get_endpoint,
    signing_secrets,
)

FAN_OUT_BATCH = 500
FAILING_LIMIT = dt.timedelta(days=5)
DELIVERIES = Delivery.__table__  # type: ignore[attr-defined]
# Any constant works; it names the one fan-out that may run at a time across workers.
_FAN_OUT_LOCK = 0x77656674


@dataclass(frozen=True)
class RetryPolicy:
    """Waits before attempts 2 to 8 (the first is immediate), each varied by ±`jitter`."""

    delays: tuple[dt.timedelta, ...] = (
        dt.timedelta(seconds=5),
        dt.timedelta(minutes=5),
        dt.timedelta(minutes=30),
        dt.timedelta(hours=2),
        dt.timedelta(hours=5),
        dt.timedelta(hours=10),
        dt.timedelta(hours=10),
    )
    jitter: float = 0.1

    def next_delay(self, attempts: int, retry_after: dt.timedelta | None) -> dt.timedelta | None:
        """The wait after `attempts` failed attempts, or None when they are used up."""
        if attempts > len(self.delays):
            return None
        delay = self.delays[attempts - 1] * random.uniform(1 - self.jitter, 1 + self.jitter)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        return delay


ONE_ATTEMPT = RetryPolicy(delays=())


def endpoint_principal(endpoint: WebhookEndpoint, org_kind: str) -> Principal:
    """The endpoint's organisation as a reader, narrowed to the endpoint's supply chains."""
    kind = OrgKind(org_kind)
    return Principal(
        client_id="webhooks",
        org_id=endpoint.org_id,
        org_kind=kind,
        scopes=frozenset({"admin"}) if kind == OrgKind.programme else frozenset(),
        supply_chain_ids=tuple(endpoint.supply_chain_ids) or (ALL_SUPPLY_CHAINS,),
    )


def _wants(endpoint: WebhookEndpoint, org_kind: str, event: Event) -> bool:
    """The endpoint's own filters, and no event addressed to another organisation unless a
    partner may receive it (`audience`); what the organisation may see is checked in SQL after."""
    if endpoint.event_types and event.type not in endpoint.event_types:
        return False
    if event.org_id is not None and event.org_id != endpoint.org_id:
        relayable = org_kind == OrgKind.partner and event.type in RELAYED_TO_PARTNERS
        if not relayable:
            return False
    chain = event.data.get("supply_chain_id")
    return not (endpoint.supply_chain_ids and chain and chain not in endpoint.supply_chain_ids)


def _visible_pairs(
    session: Session,
    pairs: Sequence[tuple[WebhookEndpoint, str, Event]],
    *,
    with_consent: bool = False,
) -> set[tuple[str, str]]:
    """Which (endpoint id, event id) pairs the endpoints' organisations may receive now."""
    asks: dict[Principal, list[str]] = {}
    for endpoint, org_kind, event in pairs:
        asks.setdefault(endpoint_principal(endpoint, org_kind), []).append(event.id)
    index = {principal: i for i, principal in enumerate(asks)}
    allowed = receivable(session, list(asks.items()), with_consent=with_consent)
    return {
        (endpoint.id, event.id)
        for endpoint, org_kind, event in pairs
        if (index[endpoint_principal(endpoint, org_kind)], event.id) in allowed
    }


def fan_out(session: Session, *, now: dt.datetime, limit: int = FAN_OUT_BATCH) -> int:
    """Turns up to `limit` new events into deliveries due now; answers how many it processed.

    One fan-out runs at a time (a PostgreSQL advisory lock), so the `fanned_out_at` stamps that
    order the event feed only grow."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql" and not session.scalar(
        text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _FAN_OUT_LOCK}
    ):
        return 0
    events = list(
        session.execute(
            select(Event)
            .where(col(Event.fanned_out_at).is_(None))
            .order_by(col(Event.created_at), col(Event.id))
            .limit(limit)
        ).scalars()
    )
    if not events:
        return 0
    endpoints = session.execute(
        select(WebhookEndpoint, col(Organization.kind))
        .join(Organization, col(Organization.id) == col(WebhookEndpoint.org_id))
        .where(col(WebhookEndpoint.enabled).is_(True))
    ).all()
    candidates = [
        (endpoint, kind, event)
        for event in events
        for endpoint, kind in endpoints
        if _wants(endpoint, kind, event)
    ]
    visible = _visible_pairs(session, candidates)
    rows = [
        {"endpoint_id": endpoint.id, "event_id": event.id}
        for endpoint, _, event in candidates
        if (endpoint.id, event.id) in visible
    ]
    if rows:
        # A Core insert of the models' values: the ORM's bulk path cost more than the rows.
        session.execute(
            insert(DELIVERIES),
            [Delivery(**row, next_attempt_at=now, created_at=now, updated_at=now).model_dump()
             for row in rows],
        )  # fmt: skip
    session.execute(
        update(Event).where(col(Event.id).in_([e.id for e in events])).values(fanned_out_at=now)
    )
    return len(events)


def claim(session: Session, *, now: dt.datetime, lease_seconds: int, limit: int) -> list[str]:
    """Leases up to `limit` due deliveries to the caller until `now + lease_seconds`."""
    due = (
        select(col(Delivery.id))
        .where(
            col(Delivery.status) == DeliveryStatus.pending,
            col(Delivery.next_attempt_at) <= now,
            or_(col(Delivery.lease_expires_at).is_(None), col(Delivery.lease_expires_at) <= now),
        )
        .order_by(col(Delivery.next_attempt_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = session.execute(
        update(Delivery)
        .where(col(Delivery.id).in_(due.scalar_subquery()))
        .values(lease_expires_at=now + dt.timedelta(seconds=lease_seconds))
        .returning(col(Delivery.id)),
        execution_options={"synchronize_session": False},
    )
    return [row[0] for row in result]


def _not_sent(delivery: Delivery, endpoint_id: str, reason: str) -> Outcome:
    return Outcome(
        delivery_id=delivery.id,
        lease=delivery.lease_expires_at,
        attempt=delivery.attempts + 1,
        endpoint_id=endpoint_id,
        error=f"not sent: {reason}",
        sent=False,
    )


def prepare(
    session: Session,
    delivery_ids: Sequence[str],
    *,
    now: dt.datetime,
    include_disabled: bool = False,
) -> tuple[list[Outgoing], list[Outcome]]:
    """The messages to send, built from what each organisation may read right now, and the
    deliveries that must not be sent any more (endpoint disabled, event no longer visible)."""
    rows = session.execute(
        select(Delivery, Event, WebhookEndpoint, col(Organization.kind))
        .join(Event, col(Event.id) == col(Delivery.event_id))
        .join(WebhookEndpoint, col(WebhookEndpoint.id) == col(Delivery.endpoint_id))
        .join(Organization, col(Organization.id) == col(WebhookEndpoint.org_id))
        .where(col(Delivery.id).in_(delivery_ids))
    ).all()
    triples = [(endpoint, kind, event) for _, event, endpoint, kind in rows]
    visible = _visible_pairs(session, triples)
    summaries = [t for t in triples if t[2].type == EventType.compliance_summary_updated]
    full = _visible_pairs(session, summaries, with_consent=True)
    stored = stored_summaries(session, [event for _, event, _, _ in rows])
    outgoing: list[Outgoing] = []
    dropped: list[Outcome] = []
    for delivery, event, endpoint, _ in rows:
        key = (endpoint.id, event.id)
        if not endpoint.enabled and not include_disabled:
            dropped.append(_not_sent(delivery, endpoint.id, "the endpoint is disabled"))
            continue
        if key not in visible:
            dropped.append(
                _not_sent(delivery, endpoint.id, "your organisation may no longer receive it")
            )
            continue
        body = {
            "type": event.type,
            "timestamp": event.created_at,
            "data": event_data(event, full=key in full, summaries=stored),
        }
        outgoing.append(
            Outgoing(
                delivery_id=delivery.id,
                lease=delivery.lease_expires_at,
                attempt=delivery.attempts + 1,
                endpoint_id=endpoint.id,
                url=endpoint.url,
                secrets=tuple(signing_secrets(endpoint, now)),
                body=orjson.dumps(body, option=orjson.OPT_UTC_Z),
            )
        )
    return outgoing, dropped


def _disable(session: Session, endpoint: WebhookEndpoint, reason: str, now: dt.datetime) -> None:
    """Disables the endpoint and tells its organisation through its other endpoints."""
    endpoint.enabled = False
    endpoint.disabled_reason = reason
    endpoint.updated_at = now
    session.add(endpoint)
    emit(
        session,
        EventType.webhook_endpoint_disabled,
        {"endpoint_id": endpoint.id, "url": endpoint.url, "reason": reason},
        org_id=endpoint.org_id,
    )


def _update_endpoints(session: Session, outcomes: Sequence[Outcome], now: dt.datetime) -> None:
    sent = [o for o in outcomes if o.sent]
    ids = {o.endpoint_id for o in sent}
    if not ids:
        return
    endpoints = {
        e.id: e
        for e in session.execute(
            select(WebhookEndpoint).where(col(WebhookEndpoint.id).in_(ids))
        ).scalars()
    }
    for outcome in sent:
        endpoint = endpoints[outcome.endpoint_id]
        if not endpoint.enabled:
            continue
        if outcome.succeeded:
            endpoint.failing_since = None
        elif outcome.response_code == 410:
            _disable(session, endpoint, "the endpoint answered 410 Gone", now)
        elif endpoint.failing_since is None:
            endpoint.failing_since = now
        elif now - endpoint.failing_since >= FAILING_LIMIT:
            _disable(session, endpoint, "every delivery failed for 5 days", now)
        session.add(endpoint)


def _next_state(outcome: Outcome, now: dt.datetime, policy: RetryPolicy) -> dict[str, Any]:
    status, next_attempt_at = DeliveryStatus.failed, None
    if outcome.succeeded:
        status = DeliveryStatus.succeeded
    elif outcome.sent and outcome.response_code != 410:
        delay = policy.next_delay(outcome.attempt, outcome.retry_after)
        if delay is not None:
            status, next_attempt_at = DeliveryStatus.pending, now + delay
    return {
        "b_id": outcome.delivery_id,
        "b_lease": outcome.lease,
        "b_status": status.value,
        "b_attempts": outcome.attempt,
        "b_next_attempt_at": next_attempt_at,
        "b_last_response_code": outcome.response_code,
    }


def record(
    session: Session, outcomes: Sequence[Outcome], *, now: dt.datetime, policy: RetryPolicy
) -> None:
    """Logs every attempt and moves each delivery on: done, retry later, or failed for good.

    A delivery is updated only while it still holds the lease its attempt began with: if that
    lease expired and another worker took the delivery over, the newer attempt decides."""
    if not outcomes:
        return
    session.execute(
        insert(DeliveryAttempt),
        [
            {
                "delivery_id": o.delivery_id,
                "attempt": o.attempt,
                "started_at": o.started_at,
                "duration_ms": o.duration_ms,
                "response_code": o.response_code,
                "response_body": o.response_body,
                "error": o.error,
            }
            for o in outcomes
        ],
    )
    session.connection().execute(
        DELIVERIES.update()
        .where(
            DELIVERIES.c.id == bindparam("b_id"),
            DELIVERIES.c.lease_expires_at == bindparam("b_lease"),
        )
        .values(
            status=bindparam("b_status"),
            attempts=bindparam("b_attempts"),
            next_attempt_at=bindparam("b_next_attempt_at"),
            last_response_code=bindparam("b_last_response_code"),
            lease_expires_at=None,
            updated_at=now,
        ),
        [_next_state(o, now, policy) for o in outcomes],
    )
    _update_endpoints(session, outcomes, now)
    session.flush()


def send_test_event(
    session: Session, *, principal: Principal, endpoint_id: str, settings: Settings
) -> DeliveryRead:
    """Sends a `webhook.test` event to this one endpoint now (once, no retries) and answers the
    delivery with its attempt. Blocks until the attempt ends: call it outside an event loop."""
    endpoint = get_endpoint(session, principal=principal, endpoint_id=endpoint_id)
    now = utcnow()
    event = emit(
        session,
        EventType.webhook_test,
        {"endpoint_id": endpoint.id, "message": "A test event from Weft."},
        org_id=endpoint.org_id,
    )
    event.fanned_out_at = now
    delivery = Delivery(
        endpoint_id=endpoint.id,
        event_id=event.id,
        next_attempt_at=now,
        lease_expires_at=now + dt.timedelta(seconds=settings.webhook_lease_seconds),
    )
    session.add(delivery)
    session.flush()
    messages, dropped = prepare(session, [delivery.id], now=now, include_disabled=True)
    outcomes = dropped + [asyncio.run(deliver_alone(message, settings)) for message in messages]
    record(session, outcomes, now=utcnow(), policy=ONE_ATTEMPT)
    session.expire_all()
    return get_delivery(
        session, principal=principal, endpoint_id=endpoint.id, delivery_id=delivery.id
    )
