"""The outbox. Every change adds its event through `emit` in the change's own transaction, so a
committed change always has its event and a rolled-back one never does."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlmodel import Session

from src.models import Event


class EventType(StrEnum):
    factory_updated = "factory.updated"
    factory_status_changed = "factory.status_changed"
    supply_chain_factory_linked = "supply_chain.factory_linked"
    supply_chain_factory_unlinked = "supply_chain.factory_unlinked"
    assessment_published = "assessment.published"
    assessment_retracted = "assessment.retracted"
    compliance_summary_updated = "compliance_summary.updated"
    remediation_item_updated = "remediation_item.updated"
    consent_granted = "consent.granted"
    consent_revoked = "consent.revoked"
    scorecard_published = "scorecard.published"
    webhook_endpoint_disabled = "webhook_endpoint.disabled"
    webhook_test = "webhook.test"


def emit(
    session: Session,
    type: EventType,
    data: dict[str, Any],
    *,
    factory_id: str | None = None,
    org_id: str | None = None,
) -> Event:
    """Adds the event to the session; the caller's transaction decides whether it exists.

    `factory_id` ties the event to a factory (only callers that may see it get it); `org_id` ties it
    to one organisation (only that organisation gets it)."""
    event = Event(type=type.value, data=data, factory_id=factory_id, org_id=org_id)
    session.add(event)
    return event
