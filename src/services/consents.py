"""Factory consents to full disclosure, granted and revoked by the programme on the factory's
behalf, and the log of full-disclosure reads the programme lists per factory."""

from __future__ import annotations

from sqlmodel import Session, col, select

from src.db import flush_refused, utcnow
from src.models import AccessLogEntry, Consent, Factory, Organization
from src.models.base import row_values
from src.models.consents import AccessLogEntryRead, ConsentCreate, ConsentRead
from src.models.organizations import OrgKind
from src.services.access import not_found_factory
from src.services.errors import Conflict, InvalidInput, NotFound
from src.services.events import EventType, emit
from src.services.pagination import Page, paginate


def consent_read(consent: Consent) -> ConsentRead:
    return ConsentRead.model_validate(row_values(consent) | {"active": consent.revoked_at is None})


def _event_data(consent: Consent) -> dict[str, str]:
    return {"consent_id": consent.id, "factory_id": consent.factory_id, "org_id": consent.org_id}


def grant_consent(session: Session, *, data: ConsentCreate) -> ConsentRead:
    if session.get(Factory, data.factory_id) is None:
        raise InvalidInput.at("factory_id", f"no factory {data.factory_id}")
    org = session.get(Organization, data.org_id)
    if org is None or org.kind != OrgKind.buyer:
        raise InvalidInput.at("org_id", f"{data.org_id} is not a buyer organization")
    active = session.exec(
        select(Consent.id).where(
            col(Consent.factory_id) == data.factory_id,
            col(Consent.org_id) == data.org_id,
            col(Consent.revoked_at).is_(None),
        )
    ).first()
    if active is not None:
        raise Conflict(f"Factory {data.factory_id} already consents to {data.org_id} ({active}).")
    consent = Consent(factory_id=data.factory_id, org_id=data.org_id)
    session.add(consent)
    if flush_refused(session) is not None:  # granted by another request meanwhile
        raise Conflict(f"Factory {data.factory_id} already consents to {data.org_id}.")
    emit(
        session,
        EventType.consent_granted,
        _event_data(consent),
        factory_id=consent.factory_id,
        org_id=consent.org_id,
    )
    return consent_read(consent)


def get_consent(session: Session, *, consent_id: str) -> Consent:
    consent = session.get(Consent, consent_id)
    if consent is None:
        raise NotFound(f"No consent {consent_id}.")
    return consent


def list_consents(
    session: Session,
    *,
    factory_id: str | None,
    org_id: str | None,
    active: bool | None,
    cursor: str | None,
    limit: int,
) -> Page[ConsentRead]:
    statement = select(Consent)
    if factory_id is not None:
        statement = statement.where(col(Consent.factory_id) == factory_id)
    if org_id is not None:
        statement = statement.where(col(Consent.org_id) == org_id)
    if active is not None:
        revoked = col(Consent.revoked_at)
        statement = statement.where(revoked.is_(None) if active else revoked.is_not(None))
    page = paginate(
        session,
        statement,
        kind="consents",
        order_by=[col(Consent.id)],
        types=[str],
        cursor=cursor,
        limit=limit,
    )
    return Page(items=[consent_read(c) for c in page.items], next_cursor=page.next_cursor)


def revoke_consent(session: Session, *, consent_id: str) -> None:
    """Takes effect at once: every read checks consent when it happens. Revoking twice is a no-op."""
    consent = get_consent(session, consent_id=consent_id)
    if consent.revoked_at is not None:
        return
    consent.revoked_at = utcnow()
    session.add(consent)
    session.flush()
    emit(
        session,
        EventType.consent_revoked,
        _event_data(consent),
        factory_id=consent.factory_id,
        org_id=consent.org_id,
    )


def list_access_log(
    session: Session, *, factory_id: str, cursor: str | None, limit: int
) -> Page[AccessLogEntryRead]:
    if session.get(Factory, factory_id) is None:
        raise not_found_factory()
    page = paginate(
        session,
        select(AccessLogEntry).where(col(AccessLogEntry.factory_id) == factory_id),
        kind="access-log",
        order_by=[col(AccessLogEntry.id)],
        types=[int],
        cursor=cursor,
        limit=limit,
    )
    return Page(
        items=[AccessLogEntryRead.model_validate(row_values(e)) for e in page.items],
        next_cursor=page.next_cursor,
    )
