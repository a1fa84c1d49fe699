"""Remediation items (the improvement plan): one per non-compliant finding of a published
assessment, moved along open → in_progress → done → verified by the programme. Every change
recomputes the factory's stored summary, whose remediation figures and risk band depend on it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import Select

from src.db import utcnow
from src.ids import new_id
from src.models import Assessment, Finding, Question, RemediationItem
from src.models.assessments import (
    AssessmentStatus,
    RemediationItemRead,
    RemediationItemUpdate,
    RemediationStatus,
)
from src.models.base import row_values
from src.services.access import (
    Principal,
    factory_visible,
    get_visible_factory,
    log_full_disclosure,
    require_consent,
)
from src.services.compliance_figures import is_overdue
from src.services.compliance_summaries import refresh_summary
from src.services.errors import Conflict, InvalidInput, NotFound
from src.services.events import EventType, emit
from src.services.pagination import Page, paginate

OWNER = "factory management"
CRITICAL_DUE_DAYS = 60
DUE_DAYS = 90
NEXT_STATUS = {
    RemediationStatus.open: RemediationStatus.in_progress,
    RemediationStatus.in_progress: RemediationStatus.done,
    RemediationStatus.done: RemediationStatus.verified,
}
LIST_KIND = "remediation_items"


def action_for(question_text: str) -> str:
    return f"Correct the non-compliance and prevent its recurrence: {question_text}"


def create_remediation_items(session: Session, *, assessment: Assessment) -> int:
    """Adds an open item for each non-compliant finding, in one statement; answers how many."""
    rows = session.execute(
        select(col(Finding.id), col(Question.id), col(Question.text), col(Question.critical))
        .join(Question, col(Question.id) == col(Finding.question_id))
        .where(col(Finding.assessment_id) == assessment.id, col(Finding.compliant).is_(False))
        .order_by(col(Finding.id))
    ).all()
    now = utcnow()
    items = [
        {
            "id": new_id("rem"),
            "factory_id": assessment.factory_id,
            "assessment_id": assessment.id,
            "finding_id": finding_id,
            "question_id": question_id,
            "critical": critical,
            "action": action_for(text),
            "owner": OWNER,
            "due_on": assessment.visit_end
            + dt.timedelta(days=CRITICAL_DUE_DAYS if critical else DUE_DAYS),
            "status": RemediationStatus.open.value,
            "verified_at": None,
            "created_at": now,
            "updated_at": now,
        }
        for finding_id, question_id, text, critical in rows
    ]
    if items:
        session.execute(insert(RemediationItem), items)
    return len(items)


def _statement(principal: Principal) -> Select[RemediationItem, str, str, bool]:
    """Items with their question; outside the programme only those of published assessments."""
    statement = select(
        RemediationItem, col(Question.code), col(Question.text), col(Question.critical)
    ).join(Question, col(Question.id) == col(RemediationItem.question_id))
    if principal.is_admin:
        return statement
    return statement.join(
        Assessment,
        (col(Assessment.id) == col(RemediationItem.assessment_id))
        & (col(Assessment.status) == AssessmentStatus.published),
    )


def _read(row: Any, today: dt.date) -> RemediationItemRead:
    item, code, text, critical = row
    return RemediationItemRead.model_validate(
        row_values(item)
        | {
            "question": code,
            "question_text": text,
            "critical": critical,
            "overdue": is_overdue(RemediationStatus(item.status), item.due_on, today),
        }
    )


def require_full_access(
    session: Session, principal: Principal, *, factory_id: str, resource: str, resource_id: str
) -> None:
    """A visible factory (else 404) that consents to the caller (else 403); logs the read."""
    get_visible_factory(session, principal, factory_id)
    require_consent(session, principal, factory_id)
    log_full_disclosure(
        session, principal, factory_id=factory_id, resource=resource, resource_id=resource_id
    )


def list_factory_remediation_items(
    session: Session,
    *,
    principal: Principal,
    factory_id: str,
    status: RemediationStatus | None,
    cursor: str | None,
    limit: int,
) -> Page[RemediationItemRead]:
    require_full_access(
        session, principal, factory_id=factory_id, resource=LIST_KIND, resource_id=factory_id
    )
    statement = _statement(principal).where(col(RemediationItem.factory_id) == factory_id)
    if status is not None:
        statement = statement.where(col(RemediationItem.status) == status)
    page = paginate(
        session,
        statement,
        kind=LIST_KIND,
        order_by=(col(RemediationItem.id),),
        types=(str,),
        cursor=cursor,
        limit=limit,
        scalars=False,
        key_of=lambda row: [row[0].id],
    )
    today = utcnow().date()
    return Page(items=[_read(row, today) for row in page.items], next_cursor=page.next_cursor)


def get_remediation_item(
    session: Session, *, principal: Principal, item_id: str
) -> RemediationItemRead:
    row = session.execute(
        _statement(principal).where(
            col(RemediationItem.id) == item_id,
            factory_visible(principal, col(RemediationItem.factory_id)),  # type: ignore[arg-type]
        )
    ).first()
    if row is None:
        raise NotFound(f"No remediation item {item_id}.")
    item: RemediationItem = row[0]
    require_consent(session, principal, item.factory_id)
    log_full_disclosure(
        session,
        principal,
        factory_id=item.factory_id,
        resource="remediation_item",
        resource_id=item.id,
    )
    return _read(row, utcnow().date())


def update_remediation_item(
    session: Session, *, item_id: str, data: RemediationItemUpdate
) -> RemediationItem:
    """Applies the programme's edit; a status may only move one step forward (else Conflict)."""
    item = session.exec(
        select(RemediationItem).where(col(RemediationItem.id) == item_id).with_for_update()
    ).first()
    if item is None:
        raise NotFound(f"No remediation item {item_id}.")
    changes = {
        name: value
        for name, value in data.model_dump(exclude_unset=True).items()
        if getattr(item, name) != value
    }
    for name in ("status", "action", "owner"):
        if name in changes and changes[name] is None:
            raise InvalidInput.at(name, f"{name} cannot be null")
    if not changes:
        return item
    if "status" in changes:
        current = RemediationStatus(item.status)
        wanted = RemediationStatus(changes["status"])
        if NEXT_STATUS.get(current) != wanted:
            allowed = NEXT_STATUS.get(current)
            raise Conflict(
                f"A remediation item that is {current} cannot become {wanted}"
                + (f"; it can only become {allowed}." if allowed else "; it is final.")
            )
        if wanted == RemediationStatus.verified:
            item.verified_at = utcnow()
    for name, value in changes.items():
        setattr(item, name, value)
    item.updated_at = utcnow()
    session.add(item)
    session.flush()
    emit(
        session,
        EventType.remediation_item_updated,
        {
            "remediation_item_id": item.id,
            "factory_id": item.factory_id,
            "assessment_id": item.assessment_id,
            "status": RemediationStatus(item.status).value,
            "changed": sorted(changes),
        },
        factory_id=item.factory_id,
    )
    refresh_summary(session, factory_id=item.factory_id)
    return item
