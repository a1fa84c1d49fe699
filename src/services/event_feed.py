"""The event feed (`GET /v1/events`) and the rules it shares with webhooks: which events an
organisation may receive, and what it may read of each, decided when it reads, not when the event
happened.

- An event with an `org_id` goes only to that organisation, and, for supply-chain links and
  consents, to the partners it delegated to: they see its supply chains, and its consents open
  full findings to them. Its scorecards stay its own.
- An event about a factory goes only to callers that see the factory now; assessment and
  remediation events also need the factory's consent now.
- `compliance_summary.updated` carries the factory's stored summary: the full one with consent,
  the public one without, as `GET /v1/factories/{id}/compliance-summary` would answer.

The feed is ordered by the moment a worker processed each event (`fanned_out_at`), not by when the
change began: a long transaction (an import) can commit its events after later, shorter ones, and
a cursor over creation times would skip them. Workers stamp events one batch at a time, and the
feed only lists events stamped more than `SETTLE` ago, which absorbs clock differences between
worker hosts, so a cursor never passes an event that is yet to appear."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any, cast

import orjson
from sqlalchemy import ColumnElement, and_, delete, literal, or_, true
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from src.db import utcnow
from src.models import ComplianceSummary, Delivery, DeliveryAttempt, Event
from src.models.events import EventRead
from src.models.organizations import OrgKind
from src.services.access import Principal, consent_granted, delegating_buyers, factory_visible
from src.services.events import EventType
from src.services.pagination import decode_cursor, encode_cursor

FULL_DETAIL_TYPES = frozenset(
    {
        EventType.assessment_published.value,
        EventType.assessment_retracted.value,
        EventType.remediation_item_updated.value,
    }
)
RELAYED_TO_PARTNERS = frozenset(
    {
        EventType.supply_chain_factory_linked.value,
        EventType.supply_chain_factory_unlinked.value,
        EventType.consent_granted.value,
        EventType.consent_revoked.value,
    }
)
SETTLE = dt.timedelta(seconds=1)
RETENTION = dt.timedelta(days=30)
CURSOR_KIND = "events"
# SQLite allows at most 500 terms in one compound SELECT.
_UNION_CHUNK = 200
_EVENT_FACTORY = cast(ColumnElement[str], col(Event.factory_id))


def audience(principal: Principal) -> ColumnElement[bool]:
    """A predicate on `events`: true where the principal may receive the event now."""
    if principal.is_admin:
        return true()
    addressed = [col(Event.org_id).is_(None), col(Event.org_id) == principal.org_id]
    if principal.org_kind == OrgKind.partner:
        addressed.append(
            and_(
                col(Event.type).in_(RELAYED_TO_PARTNERS),
                col(Event.org_id).in_(delegating_buyers(principal.org_id)),
            )
        )
    return and_(
        or_(*addressed),
        or_(col(Event.factory_id).is_(None), factory_visible(principal, _EVENT_FACTORY)),
        or_(
            col(Event.type).not_in(FULL_DETAIL_TYPES),
            consent_granted(principal, _EVENT_FACTORY),
        ),
    )


def receivable(
    session: Session,
    wanted: Sequence[tuple[Principal, Sequence[str]]],
    *,
    with_consent: bool = False,
) -> set[tuple[int, str]]:
    """For each (principal, event ids) in `wanted`, the (index in `wanted`, event id) pairs where
    that principal may receive the event now (and, `with_consent`, sees the factory's full
    findings), asked in one query per 200 principals."""
    pairs: set[tuple[int, str]] = set()
    asks = [(index, p, ids) for index, (p, ids) in enumerate(wanted) if ids]
    for start in range(0, len(asks), _UNION_CHUNK):
        selects: list[Any] = []
        for index, principal, event_ids in asks[start : start + _UNION_CHUNK]:
            condition = audience(principal)
            if with_consent:
                condition = and_(condition, consent_granted(principal, _EVENT_FACTORY))
            selects.append(
                sa_select(literal(index).label("ask"), col(Event.id).label("event_id")).where(
                    col(Event.id).in_(list(event_ids)), condition
                )
            )
        statement = selects[0].union_all(*selects[1:]) if len(selects) > 1 else selects[0]
        pairs.update((int(row[0]), str(row[1])) for row in session.execute(statement))
    return pairs


def stored_summaries(session: Session, events: Iterable[Event]) -> dict[str, ComplianceSummary]:
    factory_ids = {
        e.factory_id
        for e in events
        if e.type == EventType.compliance_summary_updated and e.factory_id is not None
    }
    if not factory_ids:
        return {}
    rows = session.exec(
        select(ComplianceSummary).where(col(ComplianceSummary.factory_id).in_(factory_ids))
    ).all()
    return {row.factory_id: row for row in rows}


def event_data(
    event: Event, *, full: bool, summaries: dict[str, ComplianceSummary]
) -> dict[str, Any]:
    """What a receiver gets in `data`: the event's own data, except that a summary update carries
    only the stored summary it may read."""
    if event.type != EventType.compliance_summary_updated:
        return dict(event.data)
    stored = summaries.get(event.factory_id or "")
    summary = None
    if stored is not None:
        summary = orjson.loads(stored.full_json if full else stored.public_json)
    return {
        "factory_id": event.factory_id,
        "disclosure": "full" if full else "public",
        "summary": summary,
    }


def list_events(
    session: Session,
    *,
    principal: Principal,
    after: str | None,
    types: Sequence[str],
    limit: int,
) -> tuple[list[EventRead], str | None, bool]:
    """A page of the feed, the cursor to continue from (also when the page is the last one for
    now) and whether more events are already waiting."""
    horizon = utcnow() - SETTLE
    statement = select(Event).where(
        col(Event.fanned_out_at).is_not(None),
        col(Event.fanned_out_at) <= horizon,
        col(Event.type) != EventType.webhook_test,
        audience(principal),
    )
    if types:
        statement = statement.where(col(Event.type).in_(types))
    if after:
        stamped, event_id = decode_cursor(CURSOR_KIND, after, [dt.datetime, str]).values
        statement = statement.where(
            or_(
                col(Event.fanned_out_at) > stamped,
                and_(col(Event.fanned_out_at) == stamped, col(Event.id) > event_id),
            )
        )
    events = list(
        session.exec(
            statement.order_by(col(Event.fanned_out_at), col(Event.id)).limit(limit + 1)
        ).all()
    )
    has_more = len(events) > limit
    events = events[:limit]
    summary_events = [e.id for e in events if e.type == EventType.compliance_summary_updated]
    full = {
        event_id
        for _, event_id in receivable(session, [(principal, summary_events)], with_consent=True)
    }
    summaries = stored_summaries(session, events)
    data = [
        EventRead(
            id=event.id,
            type=event.type,
            created_at=event.created_at,
            timestamp=event.created_at,
            data=event_data(event, full=event.id in full, summaries=summaries),
        )
        for event in events
    ]
    next_cursor = after
    if events:
        last = events[-1]
        next_cursor = encode_cursor(CURSOR_KIND, [last.fanned_out_at, last.id])
    return data, next_cursor, has_more


def prune_events(session: Session, *, now: dt.datetime | None = None) -> int:
    """Deletes events (with their deliveries and attempts) processed more than 30 days ago."""
    cutoff = (now or utcnow()) - RETENTION
    old_events = select(Event.id).where(col(Event.fanned_out_at) < cutoff)
    old_deliveries = select(Delivery.id).where(col(Delivery.event_id).in_(old_events))
    session.execute(
        delete(DeliveryAttempt).where(col(DeliveryAttempt.delivery_id).in_(old_deliveries))
    )
    session.execute(delete(Delivery).where(col(Delivery.event_id).in_(old_events)))
    result = session.execute(delete(Event).where(col(Event.fanned_out_at) < cutoff))
    session.flush()
    return int(result.rowcount)  # type: ignore[attr-defined]
